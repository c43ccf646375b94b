/* store: SQLite tables for alerts, their deliveries (one per recipient), the append-only list
 * of send attempts, and the dedupe keys.
 *
 * Why SQLite and not an append-only log of our own: the appliance must answer "where did alert X
 * go" and "what is still queued" at any time, across 100,000 queued alerts, in a few megabytes of
 * memory; an indexed table on disk does that, and WAL with synchronous=FULL gives a durable,
 * group-committed write path for free. Dispatch never keeps the queue in memory: it asks for the
 * next due deliveries, in priority order, a few at a time.
 *
 * Statements are prepared once, lazily, and reset after use; the schema carries a version in
 * PRAGMA user_version and migrates forward on open. */
#include "store.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "macro.h"
#include "util.h"

#define SCHEMA_VERSION 3
#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

enum {
	SQL_DEDUPE_FIND,
	SQL_DEDUPE_SET,
	SQL_ALERT_INSERT,
	SQL_DELIVERY_INSERT,
	SQL_ALERT_EXISTS,
	SQL_COUNT_OPEN,
	SQL_DELIVERY_GET,
	SQL_DELIVERY_SET,
	SQL_ATTEMPT_INSERT,
	SQL_ATTEMPT_COUNT,
	SQL_ALERT_DELIVERY_STATES,
	SQL_ALERT_SET_STATE,
	SQL_ALERT_FINAL,
	SQL_ALERT_ACK_GET,
	SQL_ALERT_ACK_SET,
	SQL_DUE,
	SQL_NEXT_DUE,
	SQL_NEXT_EXPIRY,
	SQL_EXPIRED,
	SQL_SENDING_ON_NODE,
	SQL_ALERT_GET,
	SQL_ALERT_DELIVERIES,
	SQL_ALERT_ATTEMPTS,
	SQL_QUEUE,
	SQL_COUNTS,
	SQL_MODEM_COUNTERS,
	SQL_MODEM_LAST_ERROR,
	SQL_INBOX_INSERT,
	SQL_CALL_INSERT,
	_SQL_MAX,
};

static const char *const sql_text[_SQL_MAX] = {
	[SQL_DEDUPE_FIND] = "SELECT alert_id, first_at FROM dedupe WHERE key = ?1",
	[SQL_DEDUPE_SET] = "INSERT OR REPLACE INTO dedupe(key, alert_id, first_at) VALUES (?1, ?2, ?3)",
	[SQL_ALERT_INSERT] = "INSERT OR IGNORE INTO alerts(id, key, text, priority, source, node, "
			     "accepted_at, expires_at, state, final) "
			     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued', 0)",
	[SQL_DELIVERY_INSERT] = "INSERT OR IGNORE INTO deliveries(alert_id, number, kind, seq, state, "
				"priority, accepted_at, next_try_at) "
				"VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?6, ?6)",
	[SQL_ALERT_EXISTS] = "SELECT 1 FROM alerts WHERE id = ?1",
	[SQL_COUNT_OPEN] = "SELECT COUNT(*) FROM alerts WHERE final = 0",
	[SQL_DELIVERY_GET] = "SELECT state, permanent_failures FROM deliveries "
			     "WHERE alert_id = ?1 AND number = ?2",
	[SQL_DELIVERY_SET] = "UPDATE deliveries SET state = ?3, next_try_at = ?4, node = ?5, "
			     "modem = ?6, permanent_failures = ?7 WHERE alert_id = ?1 AND number = ?2",
	[SQL_ATTEMPT_INSERT] = "INSERT OR IGNORE INTO attempts(alert_id, number, node, modem, at, "
			       "result, error, message_ref) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[SQL_ATTEMPT_COUNT] = "SELECT COUNT(*) FROM attempts WHERE alert_id = ?1 AND number = ?2",
	[SQL_ALERT_DELIVERY_STATES] = "SELECT state FROM deliveries WHERE alert_id = ?1",
	[SQL_ALERT_SET_STATE] = "UPDATE alerts SET state = ?2, final = ?3, final_at = ?4 "
				"WHERE id = ?1",
	[SQL_ALERT_FINAL] = "SELECT final FROM alerts WHERE id = ?1",
	[SQL_ALERT_ACK_GET] = "SELECT ack_at FROM alerts WHERE id = ?1",
	[SQL_ALERT_ACK_SET] = "UPDATE alerts SET ack_by = ?2, ack_via = ?3, ack_at = ?4 "
			      "WHERE id = ?1 AND ack_at IS NULL",
	[SQL_DUE] = "SELECT d.alert_id, d.number, a.text, d.priority, d.modem, "
		    "(SELECT COUNT(*) FROM attempts t WHERE t.alert_id = d.alert_id AND "
		    "t.number = d.number) "
		    "FROM deliveries d JOIN alerts a ON a.id = d.alert_id "
		    "WHERE d.state = 'queued' AND d.next_try_at <= ?1 "
		    "ORDER BY d.priority DESC, d.accepted_at, d.seq LIMIT ?2",
	[SQL_NEXT_DUE] = "SELECT MIN(next_try_at) FROM deliveries WHERE state = 'queued'",
	[SQL_NEXT_EXPIRY] = "SELECT MIN(expires_at) FROM alerts WHERE final = 0",
	[SQL_EXPIRED] = "SELECT id FROM alerts WHERE final = 0 AND expires_at <= ?1 LIMIT ?2",
	[SQL_SENDING_ON_NODE] = "SELECT alert_id, number, modem FROM deliveries "
				"WHERE state = 'sending' AND node = ?1",
	[SQL_ALERT_GET] = "SELECT id, state, priority, text, key, source, accepted_at, node, ack_by, "
			  "ack_via, ack_at, expires_at FROM alerts WHERE id = ?1",
	[SQL_ALERT_DELIVERIES] = "SELECT number, state, kind FROM deliveries WHERE alert_id = ?1 "
				 "ORDER BY seq",
	[SQL_ALERT_ATTEMPTS] = "SELECT node, modem, at, result, error, report FROM attempts "
			       "WHERE alert_id = ?1 AND number = ?2 ORDER BY at",
	[SQL_QUEUE] = "SELECT id FROM alerts WHERE final = 0 ORDER BY accepted_at DESC LIMIT ?1",
	[SQL_COUNTS] = "SELECT state, COUNT(*) FROM alerts GROUP BY state",
	[SQL_MODEM_COUNTERS] = "SELECT SUM(result = 'sent'), SUM(result != 'sent'), "
			       "MAX(CASE WHEN result = 'sent' THEN at END) FROM attempts "
			       "WHERE node = ?1 AND modem = ?2",
	[SQL_INBOX_INSERT] = "INSERT OR IGNORE INTO inbox(key, node, modem, sender, text, parts, "
			     "smsc_at, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[SQL_CALL_INSERT] = "INSERT OR IGNORE INTO calls(alert_id, number, node, modem, at, outcome, "
			    "duration, error, dtmf_ack) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[SQL_MODEM_LAST_ERROR] = "SELECT error FROM attempts WHERE node = ?1 AND modem = ?2 AND "
				 "result != 'sent' ORDER BY at DESC LIMIT 1",
};

struct Store {
	sqlite3 *db;
	sqlite3_stmt *stmt[_SQL_MAX];
	uint64_t open_alerts;
	bool in_transaction;
};

static int store_recount(Store *s);

static const char *const delivery_state_table[_DELIVERY_STATE_MAX] = {
	[DELIVERY_QUEUED] = "queued", [DELIVERY_SENDING] = "sending", [DELIVERY_SENT] = "sent",
	[DELIVERY_FAILED] = "failed", [DELIVERY_EXPIRED] = "expired",
	[DELIVERY_DELIVERED] = "delivered",
};

const char *delivery_state_to_string(DeliveryState s)
{
	return s < _DELIVERY_STATE_MAX ? delivery_state_table[s] : "unknown";
}

static DeliveryState delivery_state_from_string(const char *s)
{
	for (int i = 0; i < _DELIVERY_STATE_MAX; i++)
		if (s && streq(s, delivery_state_table[i]))
			return (DeliveryState)i;
	return DELIVERY_QUEUED;
}

bool delivery_state_is_final(DeliveryState s)
{
	return s == DELIVERY_SENT || s == DELIVERY_FAILED || s == DELIVERY_EXPIRED ||
	       s == DELIVERY_DELIVERED;
}

/* How far a delivery got: the alert shows the furthest of its deliveries. */
static int delivery_state_rank(DeliveryState s)
{
	static const int rank[_DELIVERY_STATE_MAX] = {
		[DELIVERY_QUEUED] = 0, [DELIVERY_SENDING] = 1, [DELIVERY_EXPIRED] = 2,
		[DELIVERY_FAILED] = 3, [DELIVERY_SENT] = 4, [DELIVERY_DELIVERED] = 5,
	};
	return rank[s];
}

static int sqlite_to_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EROFS;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_NOTFOUND:
		return -ENOENT;
	default:
		return -EIO;
	}
}

static int store_fail(Store *s, int rc, const char *what)
{
	int r = sqlite_to_errno(rc);

	log_error_errno(r, "Store: %s failed: %s", what, sqlite3_errmsg(s->db));
	return r;
}

static sqlite3_stmt *stmt(Store *s, int id)
{
	if (!s->stmt[id]) {
		int rc = sqlite3_prepare_v3(s->db, sql_text[id], -1, SQLITE_PREPARE_PERSISTENT,
					    &s->stmt[id], NULL);
		if (rc != SQLITE_OK) {
			log_error("Store: cannot prepare '%s': %s", sql_text[id],
				  sqlite3_errmsg(s->db));
			return NULL;
		}
	}
	return s->stmt[id];
}

DEFINE_TRIVIAL_CLEANUP_FUNC(sqlite3_stmt, sqlite3_finalize)

static void stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

static void bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
	sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

/* Runs a statement that returns no rows. */
static int step_done(Store *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	stmt_done(st);
	if (rc != SQLITE_DONE)
		return store_fail(s, rc, what);
	return 0;
}

static int exec(Store *s, const char *sql)
{
	char *err = NULL;
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, &err);

	if (rc != SQLITE_OK) {
		int r = sqlite_to_errno(rc);
		log_error_errno(r, "Store: '%.60s...' failed: %s", sql, err ? err : "?");
		sqlite3_free(err);
		return r;
	}
	return 0;
}

static const char schema_v1[] =
	"CREATE TABLE alerts("
	" id TEXT PRIMARY KEY, key TEXT NOT NULL, text TEXT NOT NULL,"
	" priority INTEGER NOT NULL, source TEXT, node TEXT NOT NULL,"
	" accepted_at INTEGER NOT NULL, expires_at INTEGER NOT NULL,"
	" state TEXT NOT NULL, final INTEGER NOT NULL, final_at INTEGER,"
	" ack_by TEXT, ack_via TEXT, ack_at INTEGER);"
	"CREATE INDEX alerts_open ON alerts(final, expires_at);"
	"CREATE INDEX alerts_accepted ON alerts(final, accepted_at);"
	"CREATE INDEX alerts_final_at ON alerts(final_at) WHERE final = 1;"
	"CREATE TABLE deliveries("
	" alert_id TEXT NOT NULL, number TEXT NOT NULL, kind TEXT NOT NULL, seq INTEGER NOT NULL,"
	" state TEXT NOT NULL, priority INTEGER NOT NULL, accepted_at INTEGER NOT NULL,"
	" next_try_at INTEGER NOT NULL, node TEXT, modem TEXT,"
	" permanent_failures INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY(alert_id, number)) WITHOUT ROWID;"
	"CREATE INDEX deliveries_order ON deliveries(state, priority DESC, accepted_at, seq);"
	"CREATE INDEX deliveries_due ON deliveries(state, next_try_at);"
	"CREATE TABLE attempts("
	" alert_id TEXT NOT NULL, number TEXT NOT NULL, node TEXT NOT NULL, modem TEXT NOT NULL,"
	" at INTEGER NOT NULL, result TEXT NOT NULL, error TEXT,"
	" UNIQUE(alert_id, number, node, modem, at));"
	"CREATE INDEX attempts_modem ON attempts(node, modem, at);"
	"CREATE TABLE dedupe(key TEXT PRIMARY KEY, alert_id TEXT NOT NULL,"
	" first_at INTEGER NOT NULL) WITHOUT ROWID;";

/* v2: received SMS, and the message reference of each attempt for delivery reports. */
static const char schema_v2[] =
	"CREATE TABLE inbox("
	" key TEXT PRIMARY KEY, node TEXT NOT NULL, modem TEXT NOT NULL, sender TEXT NOT NULL,"
	" text TEXT NOT NULL, parts INTEGER NOT NULL, smsc_at INTEGER,"
	" received_at INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE INDEX inbox_received ON inbox(received_at);"
	"ALTER TABLE attempts ADD COLUMN message_ref INTEGER;"
	"ALTER TABLE attempts ADD COLUMN report TEXT;"
	"CREATE INDEX attempts_ref ON attempts(node, modem, message_ref);";

/* v3: voice calls made for an alert. */
static const char schema_v3[] =
	"CREATE TABLE calls("
	" alert_id TEXT NOT NULL, number TEXT NOT NULL, node TEXT NOT NULL, modem TEXT NOT NULL,"
	" at INTEGER NOT NULL, outcome TEXT NOT NULL, duration INTEGER NOT NULL, error TEXT,"
	" dtmf_ack INTEGER NOT NULL DEFAULT 0, UNIQUE(alert_id, number, node, at));"
	"CREATE INDEX calls_alert ON calls(alert_id);"
	"CREATE INDEX calls_at ON calls(at);";

static int store_migrate(Store *s)
{
	sqlite3_stmt *st;
	int version, r;

	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		return store_fail(s, sqlite3_errcode(s->db), "reading the schema version");
	version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
	sqlite3_finalize(st);

	if (version > SCHEMA_VERSION)
		return log_error_errno(EPROTO,
				       "Store: schema version %d is newer than this gatewayd (%d); "
				       "refusing to touch it",
				       version, SCHEMA_VERSION);
	if (version == SCHEMA_VERSION)
		return 0;

	r = exec(s, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	if (version < 1) {
		r = exec(s, schema_v1);
		if (r < 0)
			goto fail;
	}
	if (version < 2) {
		r = exec(s, schema_v2);
		if (r < 0)
			goto fail;
	}
	if (version < 3) {
		r = exec(s, schema_v3);
		if (r < 0)
			goto fail;
	}
	/* Later versions add their steps here, each guarded by version < N. */
	r = exec(s, "PRAGMA user_version = " STRINGIFY(SCHEMA_VERSION));
	if (r < 0)
		goto fail;
	return exec(s, "COMMIT");
fail:
	exec(s, "ROLLBACK");
	return r;
}

int store_open(const char *state_dir, Store **ret)
{
	_cleanup_free_ char *path = NULL;
	Store *s;
	int rc, r;

	if (mkdir(state_dir, 0750) < 0 && errno != EEXIST)
		return log_error_errno(errno, "Cannot create state directory '%s': %m", state_dir);
	if (asprintf(&path, "%s/gatewayd.db", state_dir) < 0)
		return -ENOMEM;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		r = log_error_errno(sqlite_to_errno(rc), "Cannot open store '%s': %s", path,
				    s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		store_close(s);
		return r;
	}
	sqlite3_extended_result_codes(s->db, 1);
	/* WAL + FULL: each COMMIT fsyncs the WAL before returning; this is the durability promise
	 * behind every "queued" reply. */
	r = exec(s, "PRAGMA journal_mode = WAL");
	if (r >= 0)
		r = exec(s, "PRAGMA synchronous = FULL");
	if (r >= 0)
		r = exec(s, "PRAGMA foreign_keys = OFF");
	if (r >= 0)
		r = exec(s, "PRAGMA cache_size = -2000"); /* 2 MB: the queue lives on disk */
	if (r >= 0)
		r = store_migrate(s);
	if (r >= 0)
		r = store_recount(s);
	if (r < 0) {
		store_close(s);
		return r;
	}
	*ret = s;
	return 0;
}

Store *store_close(Store *s)
{
	if (!s)
		return NULL;
	if (s->in_transaction)
		store_rollback(s);
	for (int i = 0; i < _SQL_MAX; i++)
		sqlite3_finalize(s->stmt[i]);
	sqlite3_close(s->db);
	free(s);
	return NULL;
}

int store_begin(Store *s)
{
	int r = exec(s, "BEGIN IMMEDIATE");

	if (r >= 0)
		s->in_transaction = true;
	return r;
}

int store_commit(Store *s)
{
	int r = exec(s, "COMMIT");

	if (r < 0) {
		store_rollback(s);
		return r;
	}
	s->in_transaction = false;
	return 0;
}

void store_rollback(Store *s)
{
	if (sqlite3_get_autocommit(s->db) == 0)
		exec(s, "ROLLBACK");
	s->in_transaction = false;
	store_recount(s);
}

int store_dedupe_find(Store *s, const char *key, uint64_t at, uint64_t window_usec,
		      char ret_id[static 33])
{
	sqlite3_stmt *st = stmt(s, SQL_DEDUPE_FIND);
	int rc, found = 0;

	if (!st)
		return -EIO;
	bind_text(st, 1, key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		uint64_t first_at = (uint64_t)sqlite3_column_int64(st, 1);

		/* The window is fixed from the first alert's acceptance, not sliding. */
		if (at < first_at + window_usec) {
			snprintf(ret_id, 33, "%s", (const char *)sqlite3_column_text(st, 0));
			found = 1;
		}
	} else if (rc != SQLITE_DONE) {
		stmt_done(st);
		return store_fail(s, rc, "dedupe lookup");
	}
	stmt_done(st);
	return found;
}

int store_alert_insert(Store *s, const NewAlert *a)
{
	sqlite3_stmt *st;
	int r, seq = 0;

	st = stmt(s, SQL_ALERT_INSERT);
	if (!st)
		return -EIO;
	bind_text(st, 1, a->id);
	bind_text(st, 2, a->key);
	bind_text(st, 3, a->text);
	sqlite3_bind_int(st, 4, a->critical ? 1 : 0);
	bind_text(st, 5, a->source);
	bind_text(st, 6, a->node);
	bind_u64(st, 7, a->accepted_at);
	bind_u64(st, 8, a->expires_at);
	r = step_done(s, st, "inserting an alert");
	if (r < 0)
		return r;
	if (sqlite3_changes(s->db) == 0)
		return 0; /* applied before: inserting is idempotent */
	s->open_alerts++;

	for (int kind = 0; kind < 2; kind++) {
		const char *const *v = kind == 0 ? a->to : a->copy;
		size_t n = kind == 0 ? a->n_to : a->n_copy;

		for (size_t i = 0; i < n; i++) {
			st = stmt(s, SQL_DELIVERY_INSERT);
			if (!st)
				return -EIO;
			bind_text(st, 1, a->id);
			bind_text(st, 2, v[i]);
			bind_text(st, 3, kind == 0 ? "to" : "copy");
			sqlite3_bind_int(st, 4, seq++);
			sqlite3_bind_int(st, 5, a->critical ? 1 : 0);
			bind_u64(st, 6, a->accepted_at);
			r = step_done(s, st, "inserting a delivery");
			if (r < 0)
				return r;
		}
	}

	st = stmt(s, SQL_DEDUPE_SET);
	if (!st)
		return -EIO;
	bind_text(st, 1, a->key);
	bind_text(st, 2, a->id);
	bind_u64(st, 3, a->accepted_at);
	return step_done(s, st, "recording a dedupe key");
}

static int query_u64(Store *s, int id, const char *arg, uint64_t *ret)
{
	sqlite3_stmt *st = stmt(s, id);
	int rc;

	if (!st)
		return -EIO;
	if (arg)
		bind_text(st, 1, arg);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		stmt_done(st);
		return store_fail(s, rc, "query");
	}
	*ret = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
	stmt_done(st);
	return rc == SQLITE_ROW;
}

int store_alert_exists(Store *s, const char *id)
{
	uint64_t v;

	return query_u64(s, SQL_ALERT_EXISTS, id, &v);
}

static int store_recount(Store *s)
{
	int r = query_u64(s, SQL_COUNT_OPEN, NULL, &s->open_alerts);

	return r < 0 ? r : 0;
}

uint64_t store_open_alerts(const Store *s)
{
	return s->open_alerts;
}

/* Recomputes the alert's summary state after one of its deliveries changed. */
static int alert_refresh(Store *s, const char *alert_id, uint64_t at)
{
	sqlite3_stmt *st = stmt(s, SQL_ALERT_DELIVERY_STATES);
	DeliveryState furthest = DELIVERY_QUEUED;
	bool final = true;
	uint64_t was_final = 0;
	int rc;

	rc = query_u64(s, SQL_ALERT_FINAL, alert_id, &was_final);
	if (rc < 0)
		return rc;
	if (!st)
		return -EIO;
	bind_text(st, 1, alert_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		DeliveryState d = delivery_state_from_string(
			(const char *)sqlite3_column_text(st, 0));

		if (delivery_state_rank(d) > delivery_state_rank(furthest))
			furthest = d;
		if (!delivery_state_is_final(d))
			final = false;
	}
	stmt_done(st);
	if (rc != SQLITE_DONE)
		return store_fail(s, rc, "reading delivery states");

	st = stmt(s, SQL_ALERT_SET_STATE);
	if (!st)
		return -EIO;
	bind_text(st, 1, alert_id);
	bind_text(st, 2, delivery_state_to_string(furthest));
	sqlite3_bind_int(st, 3, final);
	if (final)
		bind_u64(st, 4, at);
	else
		sqlite3_bind_null(st, 4);
	rc = step_done(s, st, "updating an alert's state");
	if (rc >= 0 && final != (was_final != 0)) {
		if (final && s->open_alerts > 0)
			s->open_alerts--;
		else if (!final)
			s->open_alerts++;
	}
	return rc;
}

static int delivery_get(Store *s, const char *alert_id, const char *number,
			DeliveryState *ret_state, unsigned *ret_permanent)
{
	sqlite3_stmt *st = stmt(s, SQL_DELIVERY_GET);
	int rc;

	if (!st)
		return -EIO;
	bind_text(st, 1, alert_id);
	bind_text(st, 2, number);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ret_state = delivery_state_from_string((const char *)sqlite3_column_text(st, 0));
		*ret_permanent = (unsigned)sqlite3_column_int(st, 1);
	}
	stmt_done(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return store_fail(s, rc, "reading a delivery");
	return 0;
}

static int delivery_set(Store *s, const char *alert_id, const char *number, DeliveryState state,
			uint64_t next_try_at, const char *node, const char *modem,
			unsigned permanent)
{
	sqlite3_stmt *st = stmt(s, SQL_DELIVERY_SET);

	if (!st)
		return -EIO;
	bind_text(st, 1, alert_id);
	bind_text(st, 2, number);
	bind_text(st, 3, delivery_state_to_string(state));
	bind_u64(st, 4, next_try_at);
	bind_text(st, 5, node);
	bind_text(st, 6, modem);
	sqlite3_bind_int(st, 7, (int)permanent);
	return step_done(s, st, "updating a delivery");
}

int store_delivery_assign(Store *s, const char *alert_id, const char *number, const char *node,
			  const char *modem, uint64_t at, DeliveryChange *ret_change)
{
	DeliveryState state;
	unsigned permanent;
	int r;

	r = delivery_get(s, alert_id, number, &state, &permanent);
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	if (state != DELIVERY_QUEUED)
		return 0;
	r = delivery_set(s, alert_id, number, DELIVERY_SENDING, at, node, modem, permanent);
	if (r < 0)
		return r;
	r = alert_refresh(s, alert_id, at);
	if (r < 0)
		return r;
	*ret_change = (DeliveryChange){.old_state = state, .new_state = DELIVERY_SENDING};
	return 1;
}

static uint64_t backoff_usec(unsigned attempts, unsigned min_sec, unsigned max_sec)
{
	uint64_t d = min_sec;

	for (unsigned i = 1; i < attempts && d < max_sec; i++)
		d *= 2;
	return MIN(d, (uint64_t)max_sec) * USEC_PER_SEC;
}

int store_delivery_result(Store *s, const char *alert_id, const char *number,
			  const SendResult *res, DeliveryChange *ret_change)
{
	DeliveryState state, new_state;
	unsigned permanent;
	uint64_t attempts = 0, next_try_at = res->at;
	sqlite3_stmt *st;
	int r;

	r = delivery_get(s, alert_id, number, &state, &permanent);
	if (r < 0)
		return r == -ENOENT ? 0 : r;

	/* The attempt is history whatever the state: append it (idempotently). */
	st = stmt(s, SQL_ATTEMPT_INSERT);
	if (!st)
		return -EIO;
	bind_text(st, 1, alert_id);
	bind_text(st, 2, number);
	bind_text(st, 3, res->node);
	bind_text(st, 4, res->modem);
	bind_u64(st, 5, res->at);
	bind_text(st, 6, res->ok ? "sent" : "error");
	bind_text(st, 7, res->ok ? NULL : res->error);
	if (res->ok && res->message_ref >= 0)
		sqlite3_bind_int(st, 8, res->message_ref);
	else
		sqlite3_bind_null(st, 8);
	r = step_done(s, st, "recording an attempt");
	if (r < 0)
		return r;

	if (res->ok) {
		if (state == DELIVERY_SENT || state == DELIVERY_DELIVERED)
			return 0;
		new_state = DELIVERY_SENT; /* sent beats failed and expired */
	} else {
		if (delivery_state_is_final(state))
			return 0;
		if (res->permanent)
			permanent++;
		if (permanent >= res->max_permanent_failures)
			new_state = DELIVERY_FAILED;
		else {
			new_state = DELIVERY_QUEUED;
			st = stmt(s, SQL_ATTEMPT_COUNT);
			if (!st)
				return -EIO;
			bind_text(st, 1, alert_id);
			bind_text(st, 2, number);
			attempts = sqlite3_step(st) == SQLITE_ROW
					   ? (uint64_t)sqlite3_column_int64(st, 0)
					   : 1;
			stmt_done(st);
			next_try_at = res->at +
				      backoff_usec((unsigned)attempts, res->retry_min, res->retry_max);
		}
	}
	r = delivery_set(s, alert_id, number, new_state, next_try_at, res->node, res->modem,
			 permanent);
	if (r < 0)
		return r;
	r = alert_refresh(s, alert_id, res->at);
	if (r < 0)
		return r;
	*ret_change = (DeliveryChange){
		.old_state = state, .new_state = new_state, .next_try_at = next_try_at};
	return 1;
}

int store_delivery_report(Store *s, const DeliveryReport *rep, char ret_alert_id[static 33],
			  char ret_number[static 20])
{
	static const char find[] = "SELECT alert_id, number FROM attempts WHERE node = ?1 AND "
				   "modem = ?2 AND message_ref = ?3 AND result = 'sent' "
				   "ORDER BY at DESC LIMIT 1";
	static const char mark[] = "UPDATE attempts SET report = ?5 WHERE node = ?1 AND "
				   "modem = ?2 AND message_ref = ?3 AND alert_id = ?4 AND "
				   "result = 'sent'";
	_cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL, *up = NULL;
	DeliveryState state;
	unsigned permanent;
	int rc, r;

	rc = sqlite3_prepare_v2(s->db, find, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "preparing a report lookup");
	bind_text(st, 1, rep->node);
	bind_text(st, 2, rep->modem);
	sqlite3_bind_int(st, 3, rep->message_ref);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return 0; /* a report for something we do not know (purged, or not ours) */
	if (rc != SQLITE_ROW)
		return store_fail(s, rc, "looking up a report");
	snprintf(ret_alert_id, 33, "%s", sqlite3_column_text(st, 0));
	snprintf(ret_number, 20, "%s", sqlite3_column_text(st, 1));

	rc = sqlite3_prepare_v2(s->db, mark, -1, &up, NULL);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "preparing a report");
	bind_text(up, 1, rep->node);
	bind_text(up, 2, rep->modem);
	sqlite3_bind_int(up, 3, rep->message_ref);
	bind_text(up, 4, ret_alert_id);
	bind_text(up, 5, rep->status);
	rc = sqlite3_step(up);
	if (rc != SQLITE_DONE)
		return store_fail(s, rc, "recording a report");

	if (!rep->delivered)
		return 0;
	r = delivery_get(s, ret_alert_id, ret_number, &state, &permanent);
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	if (state == DELIVERY_DELIVERED)
		return 0;
	r = delivery_set(s, ret_alert_id, ret_number, DELIVERY_DELIVERED, rep->at, rep->node,
			 rep->modem, permanent);
	if (r < 0)
		return r;
	r = alert_refresh(s, ret_alert_id, rep->at);
	return r < 0 ? r : 1;
}

int store_inbox_insert(Store *s, const InboxMessage *m)
{
	sqlite3_stmt *st = stmt(s, SQL_INBOX_INSERT);
	int r;

	if (!st)
		return -EIO;
	bind_text(st, 1, m->key);
	bind_text(st, 2, m->node);
	bind_text(st, 3, m->modem);
	bind_text(st, 4, m->sender);
	bind_text(st, 5, m->text);
	sqlite3_bind_int(st, 6, (int)m->parts);
	if (m->smsc_at)
		bind_u64(st, 7, m->smsc_at);
	else
		sqlite3_bind_null(st, 7);
	bind_u64(st, 8, m->received_at);
	r = step_done(s, st, "storing a received SMS");
	return r < 0 ? r : sqlite3_changes(s->db) > 0;
}

int store_alert_expire(Store *s, const char *alert_id, uint64_t at)
{
	static const char sql[] = "UPDATE deliveries SET state = 'expired' WHERE alert_id = ?1 "
				  "AND state IN ('queued', 'sending')";
	sqlite3_stmt *st;
	int r, changed;

	r = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (r != SQLITE_OK)
		return store_fail(s, r, "preparing expiry");
	bind_text(st, 1, alert_id);
	r = sqlite3_step(st);
	sqlite3_finalize(st);
	if (r != SQLITE_DONE)
		return store_fail(s, r, "expiring an alert");
	changed = sqlite3_changes(s->db);
	if (changed > 0) {
		r = alert_refresh(s, alert_id, at);
		if (r < 0)
			return r;
	}
	return changed;
}

int store_alert_ack(Store *s, const char *id, const char *by, const char *via, uint64_t at)
{
	sqlite3_stmt *st = stmt(s, SQL_ALERT_ACK_GET);
	bool acked;
	int rc;

	if (!st)
		return -EIO;
	bind_text(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		stmt_done(st);
		return -ENOENT;
	}
	if (rc != SQLITE_ROW) {
		stmt_done(st);
		return store_fail(s, rc, "reading an acknowledgment");
	}
	acked = sqlite3_column_type(st, 0) != SQLITE_NULL;
	stmt_done(st);
	if (acked)
		return 0;

	st = stmt(s, SQL_ALERT_ACK_SET);
	if (!st)
		return -EIO;
	bind_text(st, 1, id);
	bind_text(st, 2, by);
	bind_text(st, 3, via);
	bind_u64(st, 4, at);
	rc = step_done(s, st, "acknowledging");
	return rc < 0 ? rc : 1;
}

/* Steps a bound statement through its rows, handing each to row(); row() returns <0 to stop
 * early (that value is returned). Resets the statement in every case. */
static int each_row(Store *s, sqlite3_stmt *st, const char *what,
		    int (*row)(sqlite3_stmt *st, void *ctx), void *ctx)
{
	int rc, r = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = row(st, ctx);
		if (r < 0)
			break;
	}
	stmt_done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_fail(s, rc, what);
	return r < 0 ? r : 0;
}

typedef struct RowCallback {
	void *cb;
	void *userdata;
} RowCallback;

static int due_row(sqlite3_stmt *st, void *ctx)
{
	RowCallback *rc = ctx;
	int (*cb)(const DueDelivery *d, void *userdata) = rc->cb;
	const char *modem = (const char *)sqlite3_column_text(st, 4);
	DueDelivery d = {0};

	snprintf(d.alert_id, sizeof(d.alert_id), "%s", sqlite3_column_text(st, 0));
	snprintf(d.number, sizeof(d.number), "%s", sqlite3_column_text(st, 1));
	d.text = (char *)sqlite3_column_text(st, 2);
	d.critical = sqlite3_column_int(st, 3) != 0;
	snprintf(d.last_modem, sizeof(d.last_modem), "%s", modem ? modem : "");
	d.attempts = (unsigned)sqlite3_column_int(st, 5);
	return cb(&d, rc->userdata);
}

int store_due_deliveries(Store *s, uint64_t now, size_t limit,
			 int (*cb)(const DueDelivery *d, void *userdata), void *userdata)
{
	sqlite3_stmt *st = stmt(s, SQL_DUE);
	RowCallback ctx = {.cb = (void *)cb, .userdata = userdata};

	if (!st)
		return -EIO;
	bind_u64(st, 1, now);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
	return each_row(s, st, "listing due deliveries", due_row, &ctx);
}

int store_next_due(Store *s, uint64_t *ret)
{
	int r = query_u64(s, SQL_NEXT_DUE, NULL, ret);

	return r < 0 ? r : 0;
}

int store_next_expiry(Store *s, uint64_t *ret)
{
	int r = query_u64(s, SQL_NEXT_EXPIRY, NULL, ret);

	return r < 0 ? r : 0;
}

static int expired_row(sqlite3_stmt *st, void *ctx)
{
	RowCallback *rc = ctx;
	int (*cb)(const char *id, void *userdata) = rc->cb;

	return cb((const char *)sqlite3_column_text(st, 0), rc->userdata);
}

int store_expired_alerts(Store *s, uint64_t now, size_t limit,
			 int (*cb)(const char *id, void *userdata), void *userdata)
{
	sqlite3_stmt *st = stmt(s, SQL_EXPIRED);
	RowCallback ctx = {.cb = (void *)cb, .userdata = userdata};

	if (!st)
		return -EIO;
	bind_u64(st, 1, now);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
	return each_row(s, st, "listing expired alerts", expired_row, &ctx);
}

static int sending_row(sqlite3_stmt *st, void *ctx)
{
	RowCallback *rc = ctx;
	int (*cb)(const char *, const char *, const char *, void *) = rc->cb;
	const char *modem = (const char *)sqlite3_column_text(st, 2);

	return cb((const char *)sqlite3_column_text(st, 0),
		  (const char *)sqlite3_column_text(st, 1), modem ? modem : "", rc->userdata);
}

int store_sending_on_node(Store *s, const char *node,
			  int (*cb)(const char *alert_id, const char *number, const char *modem,
				    void *userdata),
			  void *userdata)
{
	sqlite3_stmt *st = stmt(s, SQL_SENDING_ON_NODE);
	RowCallback ctx = {.cb = (void *)cb, .userdata = userdata};

	if (!st)
		return -EIO;
	bind_text(st, 1, node);
	return each_row(s, st, "listing interrupted sends", sending_row, &ctx);
}

int store_purge(Store *s, uint64_t before)
{
	static const char *const sql[] = {
		"DELETE FROM attempts WHERE alert_id IN "
		"(SELECT id FROM alerts WHERE final = 1 AND final_at < ?1)",
		"DELETE FROM deliveries WHERE alert_id IN "
		"(SELECT id FROM alerts WHERE final = 1 AND final_at < ?1)",
		"DELETE FROM alerts WHERE final = 1 AND final_at < ?1",
		"DELETE FROM dedupe WHERE alert_id NOT IN (SELECT id FROM alerts)",
		"DELETE FROM inbox WHERE received_at < ?1",
	};
	int purged = 0;

	for (size_t i = 0; i < ELEMENTSOF(sql); i++) {
		sqlite3_stmt *st;
		int rc = sqlite3_prepare_v2(s->db, sql[i], -1, &st, NULL);

		if (rc != SQLITE_OK)
			return store_fail(s, rc, "preparing purge");
		if (i != 3)
			bind_u64(st, 1, before);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return store_fail(s, rc, "purging");
		if (i == 2)
			purged = sqlite3_changes(s->db);
	}
	return purged;
}

static json_t *json_time_or_null(uint64_t usec)
{
	char buf[RFC3339_MAX];

	return usec ? json_string(format_rfc3339(usec, buf)) : json_null();
}

static json_t *column_string(sqlite3_stmt *st, int i)
{
	const char *v = (const char *)sqlite3_column_text(st, i);

	return v ? json_string(v) : json_null();
}

static int alert_attempts_json(Store *s, const char *id, const char *number, json_t **ret)
{
	sqlite3_stmt *st = stmt(s, SQL_ALERT_ATTEMPTS);
	json_t *list = json_array();
	int rc;

	if (!st || !list) {
		json_decref(list);
		return -ENOMEM;
	}
	bind_text(st, 1, id);
	bind_text(st, 2, number);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *a = json_pack("{s:o, s:o, s:o, s:o, s:o}", "node", column_string(st, 0),
				      "modem", column_string(st, 1), "at",
				      json_time_or_null((uint64_t)sqlite3_column_int64(st, 2)),
				      "result", column_string(st, 3), "error",
				      column_string(st, 4));
		if (a && sqlite3_column_type(st, 5) != SQLITE_NULL)
			json_object_set_new(a, "report", column_string(st, 5));
		if (!a || json_array_append_new(list, a) < 0) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	stmt_done(st);
	if (rc != SQLITE_DONE) {
		json_decref(list);
		return store_fail(s, rc, "reading attempts");
	}
	*ret = list;
	return 0;
}

static int store_calls_json(Store *s, const char *id, json_t **ret)
{
	static const char sql[] = "SELECT number, node, modem, at, outcome, duration, error, "
				  "dtmf_ack FROM calls WHERE alert_id = ?1 ORDER BY at";
	_cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;
	json_t *list = json_array();
	int rc;

	if (!list)
		return -ENOMEM;
	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		json_decref(list);
		return store_fail(s, rc, "preparing calls");
	}
	bind_text(st, 1, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *c = json_pack("{s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:b}", "number",
				      column_string(st, 0), "node", column_string(st, 1), "modem",
				      column_string(st, 2), "at",
				      json_time_or_null((uint64_t)sqlite3_column_int64(st, 3)),
				      "outcome", column_string(st, 4), "duration",
				      (json_int_t)sqlite3_column_int64(st, 5), "error",
				      column_string(st, 6), "acknowledged",
				      sqlite3_column_int(st, 7) != 0);
		if (!c || json_array_append_new(list, c) < 0) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	if (rc != SQLITE_DONE) {
		json_decref(list);
		return store_fail(s, rc, "reading calls");
	}
	*ret = list;
	return 0;
}

int store_alert_json(Store *s, const char *id, bool with_attempts, json_t **ret)
{
	sqlite3_stmt *st = stmt(s, SQL_ALERT_GET);
	json_t *alert = NULL, *deliveries = NULL, *ack, *calls = NULL;
	int rc, r;

	if (!st)
		return -EIO;
	bind_text(st, 1, id);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		stmt_done(st);
		return rc == SQLITE_DONE ? -ENOENT : store_fail(s, rc, "reading an alert");
	}
	if (sqlite3_column_type(st, 10) == SQLITE_NULL)
		ack = json_null();
	else
		ack = json_pack("{s:o, s:o, s:o}", "by", column_string(st, 8), "via",
				column_string(st, 9),
				"at", json_time_or_null((uint64_t)sqlite3_column_int64(st, 10)));
	alert = json_pack("{s:o, s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:[]}", "id",
			  column_string(st, 0), "state", column_string(st, 1), "priority",
			  sqlite3_column_int(st, 2) ? "critical" : "normal", "text",
			  column_string(st, 3), "key", column_string(st, 4), "source",
			  column_string(st, 5), "accepted_at",
			  json_time_or_null((uint64_t)sqlite3_column_int64(st, 6)), "node",
			  column_string(st, 7), "expires_at",
			  json_time_or_null((uint64_t)sqlite3_column_int64(st, 11)), "ack",
			  ack ? ack : json_null(), "calls");
	stmt_done(st);
	if (!alert)
		return -ENOMEM;

	deliveries = json_array();
	st = stmt(s, SQL_ALERT_DELIVERIES);
	if (!deliveries || !st) {
		r = -ENOMEM;
		goto fail;
	}
	bind_text(st, 1, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *d = json_pack("{s:o, s:o, s:o}", "to", column_string(st, 0), "state",
				      column_string(st, 1), "kind", column_string(st, 2));
		if (!d || json_array_append_new(deliveries, d) < 0) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	stmt_done(st);
	if (rc != SQLITE_DONE) {
		r = store_fail(s, rc, "reading deliveries");
		goto fail;
	}
	if (with_attempts) {
		size_t i;
		json_t *d;

		json_array_foreach(deliveries, i, d)
		{
			json_t *attempts = NULL;

			r = alert_attempts_json(
				s, id, json_string_value(json_object_get(d, "to")), &attempts);
			if (r < 0)
				goto fail;
			json_object_set_new(d, "attempts", attempts);
		}
	}
	json_object_set_new(alert, "deliveries", deliveries);
	deliveries = NULL;
	r = store_calls_json(s, id, &calls);
	if (r < 0)
		goto fail;
	json_object_set_new(alert, "calls", calls);
	*ret = alert;
	return 0;
fail:
	json_decref(deliveries);
	json_decref(alert);
	return r;
}

int store_queue_json(Store *s, size_t limit, json_t **ret)
{
	sqlite3_stmt *st = stmt(s, SQL_QUEUE);
	json_t *list = json_array();
	char **ids = NULL;
	size_t n = 0;
	int rc, r = 0;

	if (!st || !list) {
		json_decref(list);
		return -ENOMEM;
	}
	/* Collect ids first: store_alert_json() reuses prepared statements. */
	sqlite3_bind_int64(st, 1, (sqlite3_int64)limit);
	ids = calloc(limit ? limit : 1, sizeof(char *));
	if (!ids) {
		stmt_done(st);
		json_decref(list);
		return -ENOMEM;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < limit) {
		ids[n] = strdup((const char *)sqlite3_column_text(st, 0));
		if (!ids[n])
			break;
		n++;
	}
	stmt_done(st);
	for (size_t i = 0; i < n && r >= 0; i++) {
		json_t *a;

		r = store_alert_json(s, ids[i], false, &a);
		if (r == -ENOENT) {
			r = 0;
			continue;
		}
		if (r >= 0 && json_array_append_new(list, a) < 0)
			r = -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	if (r < 0) {
		json_decref(list);
		return r;
	}
	*ret = list;
	return 0;
}

int store_counts(Store *s, QueueCounts *ret)
{
	sqlite3_stmt *st = stmt(s, SQL_COUNTS);
	QueueCounts c = {0};
	int rc;

	if (!st)
		return -EIO;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *state = (const char *)sqlite3_column_text(st, 0);
		uint64_t n = (uint64_t)sqlite3_column_int64(st, 1);

		switch (delivery_state_from_string(state)) {
		case DELIVERY_QUEUED:
			c.queued += n;
			break;
		case DELIVERY_SENDING:
			c.sending += n;
			break;
		case DELIVERY_SENT:
			c.sent += n;
			break;
		case DELIVERY_DELIVERED:
			c.delivered += n;
			break;
		case DELIVERY_FAILED:
			c.failed += n;
			break;
		case DELIVERY_EXPIRED:
			c.expired += n;
			break;
		default:
			break;
		}
	}
	stmt_done(st);
	if (rc != SQLITE_DONE)
		return store_fail(s, rc, "counting alerts");
	*ret = c;
	return 0;
}

int store_modem_counters(Store *s, const char *node, const char *modem, ModemCounters *ret)
{
	sqlite3_stmt *st = stmt(s, SQL_MODEM_COUNTERS);
	ModemCounters c = {0};
	int rc;

	if (!st)
		return -EIO;
	bind_text(st, 1, node);
	bind_text(st, 2, modem);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		c.sent = (uint64_t)sqlite3_column_int64(st, 0);
		c.failed = (uint64_t)sqlite3_column_int64(st, 1);
		c.last_sent_at = (uint64_t)sqlite3_column_int64(st, 2);
	}
	stmt_done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_fail(s, rc, "counting a modem's sends");

	st = stmt(s, SQL_MODEM_LAST_ERROR);
	if (!st)
		return -EIO;
	bind_text(st, 1, node);
	bind_text(st, 2, modem);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(c.last_error, sizeof(c.last_error), "%s", sqlite3_column_text(st, 0));
	stmt_done(st);
	*ret = c;
	return 0;
}

int store_inbox_json(Store *s, size_t limit, json_t **ret)
{
	static const char sql[] = "SELECT key, node, modem, sender, text, parts, smsc_at, "
				  "received_at FROM inbox ORDER BY received_at DESC LIMIT ?1";
	_cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;
	json_t *list = json_array();
	int rc;

	if (!list)
		return -ENOMEM;
	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		json_decref(list);
		return store_fail(s, rc, "preparing the inbox");
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *m = json_pack(
			"{s:o, s:o, s:o, s:o, s:o, s:i, s:o, s:o}", "key", column_string(st, 0),
			"node", column_string(st, 1), "modem", column_string(st, 2), "from",
			column_string(st, 3), "text", column_string(st, 4), "parts",
			sqlite3_column_int(st, 5), "sent_at",
			json_time_or_null((uint64_t)sqlite3_column_int64(st, 6)), "received_at",
			json_time_or_null((uint64_t)sqlite3_column_int64(st, 7)));
		if (!m || json_array_append_new(list, m) < 0) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	if (rc != SQLITE_DONE) {
		json_decref(list);
		return store_fail(s, rc, "reading the inbox");
	}
	*ret = list;
	return 0;
}

int store_call_insert(Store *s, const CallRecord *c)
{
	sqlite3_stmt *st = stmt(s, SQL_CALL_INSERT);
	int r;

	if (!st)
		return -EIO;
	bind_text(st, 1, c->alert_id);
	bind_text(st, 2, c->number);
	bind_text(st, 3, c->node);
	bind_text(st, 4, c->modem);
	bind_u64(st, 5, c->at);
	bind_text(st, 6, c->outcome);
	bind_u64(st, 7, c->duration_sec);
	bind_text(st, 8, c->error && *c->error ? c->error : NULL);
	sqlite3_bind_int(st, 9, c->dtmf_ack);
	r = step_done(s, st, "recording a call");
	return r < 0 ? r : sqlite3_changes(s->db) > 0;
}

int store_voice_summary(Store *s, uint64_t *ret_calls, char ret_last[static 16])
{
	static const char sql[] = "SELECT (SELECT COUNT(*) FROM calls), (SELECT outcome FROM calls "
				  "ORDER BY at DESC LIMIT 1)";
	_cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "preparing the voice summary");
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return store_fail(s, rc, "reading the voice summary");
	*ret_calls = (uint64_t)sqlite3_column_int64(st, 0);
	snprintf(ret_last, 16, "%s",
		 sqlite3_column_text(st, 1) ? (const char *)sqlite3_column_text(st, 1) : "");
	return 0;
}

int store_voice_candidate(Store *s, const char *alert_id, const char *number,
			  VoiceCandidate *ret)
{
	static const char sql[] =
		"SELECT a.priority, a.ack_at IS NOT NULL, d.state, d.kind, "
		"(SELECT COUNT(*) FROM calls c WHERE c.alert_id = a.id AND c.number = d.number) "
		"FROM alerts a JOIN deliveries d ON d.alert_id = a.id "
		"WHERE a.id = ?1 AND d.number = ?2";
	static const char failed_sql[] = "SELECT DISTINCT modem FROM attempts WHERE alert_id = ?1 "
					 "AND number = ?2 AND node = ?3 AND result = 'error'";
	_cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL, *fs = NULL;
	VoiceCandidate v = {0};
	int rc;

	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "preparing a voice check");
	bind_text(st, 1, alert_id);
	bind_text(st, 2, number);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return store_fail(s, rc, "checking for a voice call");
	v.critical = sqlite3_column_int(st, 0) != 0;
	v.acknowledged = sqlite3_column_int(st, 1) != 0;
	v.state = delivery_state_from_string((const char *)sqlite3_column_text(st, 2));
	v.copy = streq_ptr((const char *)sqlite3_column_text(st, 3), "copy");
	v.calls = (unsigned)sqlite3_column_int(st, 4);

	rc = sqlite3_prepare_v2(s->db, failed_sql, -1, &fs, NULL);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "preparing failed modems");
	bind_text(fs, 1, alert_id);
	bind_text(fs, 2, number);
	bind_text(fs, 3, ret->node);
	while ((rc = sqlite3_step(fs)) == SQLITE_ROW && v.n_failed_modems < VOICE_MAX_MODEMS)
		snprintf(v.failed_modems[v.n_failed_modems++], sizeof(v.failed_modems[0]), "%s",
			 sqlite3_column_text(fs, 0));
	v.node = ret->node;
	*ret = v;
	return 0;
}

int store_open_critical(Store *s, int (*cb)(const char *alert_id, const char *number,
					    void *userdata),
			void *userdata)
{
	static const char sql[] = "SELECT d.alert_id, d.number FROM deliveries d "
				  "JOIN alerts a ON a.id = d.alert_id "
				  "WHERE d.state IN ('queued', 'sending') AND d.priority = 1 AND "
				  "d.kind = 'to' AND a.ack_at IS NULL LIMIT 1000";
	_cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;
	int rc, r = 0;

	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "preparing open critical deliveries");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = cb((const char *)sqlite3_column_text(st, 0),
		       (const char *)sqlite3_column_text(st, 1), userdata);
		if (r < 0)
			break;
	}
	return r < 0 ? r : 0;
}
