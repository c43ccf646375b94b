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
#include "store-internal.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "macro.h"
#include "util.h"

#define SCHEMA_VERSION 7
/* How long a write waits for another process's lock (a backup, an operator's sqlite3 shell)
 * before the commit fails with -EBUSY and the gateway retries it later: short, since the loop
 * waits with it. */
#define STORE_BUSY_TIMEOUT_MS 200
#define STRINGIFY_(x)         #x
#define STRINGIFY(x)          STRINGIFY_(x)

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
	SQL_DELIVERY_SENDING_ELSEWHERE,
	SQL_NODE_SEEN,
	SQL_NODES,
	SQL_EXPORT_ALERTS,
	SQL_EXPORT_DELIVERIES,
	SQL_EXPORT_ATTEMPTS,
	SQL_EXPORT_CALLS,
	SQL_EXPORT_DEDUPE,
	SQL_EXPORT_INBOX,
	SQL_MERGE_ALERT_GET,
	SQL_MERGE_ACK,
	SQL_MERGE_DELIVERY_GET,
	SQL_MERGE_DELIVERY_INSERT,
	SQL_MERGE_DELIVERY_FAILURES,
	SQL_MERGE_ATTEMPT_REPORT,
	SQL_MERGE_DEDUPE,
	SQL_MERGE_ESCALATION,
	SQL_EXPORT_HISTORY,
	SQL_HISTORY_INSERT,
	_SQL_MAX,
};

static const char *const sql_text[_SQL_MAX] = {
        [SQL_DEDUPE_FIND] = "SELECT alert_id, first_at FROM dedupe WHERE key = ?1",
        [SQL_DEDUPE_SET] =
                "INSERT OR REPLACE INTO dedupe(key, alert_id, first_at) VALUES (?1, ?2, ?3)",
        [SQL_ALERT_INSERT] = "INSERT OR IGNORE INTO alerts(id, key, text, priority, source, node, "
                             "accepted_at, expires_at, state, final, esc_step, esc_next_at) "
                             "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued', 0, ?9, ?10)",
        [SQL_DELIVERY_INSERT] =
                "INSERT OR IGNORE INTO deliveries(alert_id, number, kind, seq, state, "
                "priority, accepted_at, next_try_at, bundle) "
                "VALUES (?1, ?2, ?3, ?4, 'queued', ?5, ?6, ?7, ?8)",
        [SQL_ALERT_EXISTS] = "SELECT 1 FROM alerts WHERE id = ?1",
        [SQL_COUNT_OPEN] = "SELECT COUNT(*) FROM alerts WHERE final = 0",
        [SQL_DELIVERY_GET] = "SELECT state, permanent_failures FROM deliveries "
                             "WHERE alert_id = ?1 AND number = ?2",
        [SQL_DELIVERY_SET] =
                "UPDATE deliveries SET state = ?3, next_try_at = ?4, node = ?5, "
                "modem = ?6, permanent_failures = ?7 WHERE alert_id = ?1 AND number = ?2",
        [SQL_ATTEMPT_INSERT] =
                "INSERT OR IGNORE INTO attempts(alert_id, number, node, modem, at, "
                "result, error, message_ref) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        [SQL_ATTEMPT_COUNT] = "SELECT COUNT(*) FROM attempts WHERE alert_id = ?1 AND number = ?2",
        [SQL_ALERT_DELIVERY_STATES] = "SELECT state FROM deliveries WHERE alert_id = ?1",
        [SQL_ALERT_SET_STATE] = "UPDATE alerts SET state = ?2, final = ?3, final_at = ?4 "
                                "WHERE id = ?1",
        [SQL_ALERT_FINAL] = "SELECT final, esc_next_at IS NOT NULL FROM alerts WHERE id = ?1",
        [SQL_ALERT_ACK_GET] = "SELECT ack_at FROM alerts WHERE id = ?1",
        [SQL_ALERT_ACK_SET] = "UPDATE alerts SET ack_by = ?2, ack_via = ?3, ack_at = ?4 "
                              "WHERE id = ?1 AND ack_at IS NULL",
        [SQL_DUE] = "SELECT d.alert_id, d.number, a.text, d.priority, d.modem, "
                    "(SELECT COUNT(*) FROM attempts t WHERE t.alert_id = d.alert_id AND "
                    "t.number = d.number), d.node, d.kind = 'to' AND a.ack_at IS NULL, d.bundle "
                    "FROM deliveries d JOIN alerts a ON a.id = d.alert_id "
                    "WHERE d.state = 'queued' AND d.next_try_at <= ?1 "
                    "ORDER BY d.priority DESC, d.accepted_at, d.seq LIMIT ?2",
        [SQL_NEXT_DUE] = "SELECT MIN(next_try_at) FROM deliveries WHERE state = 'queued'",
        [SQL_NEXT_EXPIRY] = "SELECT MIN(expires_at) FROM alerts WHERE final = 0",
        [SQL_EXPIRED] = "SELECT id FROM alerts WHERE final = 0 AND expires_at <= ?1 LIMIT ?2",
        [SQL_SENDING_ON_NODE] = "SELECT alert_id, number, modem FROM deliveries "
                                "WHERE state = 'sending' AND node = ?1",
        [SQL_ALERT_GET] =
                "SELECT id, state, priority, text, key, source, accepted_at, node, ack_by, "
                "ack_via, ack_at, expires_at, esc_step, esc_next_at FROM alerts "
                "WHERE id = ?1",
        [SQL_ALERT_DELIVERIES] = "SELECT number, state, kind FROM deliveries WHERE alert_id = ?1 "
                                 "ORDER BY seq",
        [SQL_ALERT_ATTEMPTS] = "SELECT node, modem, at, result, error, report FROM attempts "
                               "WHERE alert_id = ?1 AND number = ?2 ORDER BY at",
        [SQL_QUEUE] = "SELECT id FROM alerts WHERE final = 0 ORDER BY accepted_at DESC LIMIT ?1",
        [SQL_COUNTS] = "SELECT substr(name, 7), n FROM tallies WHERE name LIKE 'state:%'",
        [SQL_MODEM_COUNTERS] = "SELECT sent, failed, last_sent_at FROM modem_tallies "
                               "WHERE node = ?1 AND modem = ?2",
        [SQL_INBOX_INSERT] = "INSERT OR IGNORE INTO inbox(key, node, modem, sender, text, parts, "
                             "smsc_at, received_at, quarantine) "
                             "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        [SQL_CALL_INSERT] =
                "INSERT OR IGNORE INTO calls(alert_id, number, node, modem, at, outcome, "
                "duration, error, dtmf_ack) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        [SQL_MODEM_LAST_ERROR] = "SELECT last_error FROM modem_tallies WHERE node = ?1 AND "
                                 "modem = ?2",
        [SQL_DELIVERY_SENDING_ELSEWHERE] = "SELECT 1 FROM deliveries WHERE alert_id = ?1 AND "
                                           "number = ?2 AND state = 'sending' AND "
                                           "(node IS NOT ?3 OR modem IS NOT ?4)",
        [SQL_NODE_SEEN] = "INSERT INTO nodes(name, nodeid, last_seen) VALUES (?1, ?2, ?3) "
                          "ON CONFLICT(name) DO UPDATE SET "
                          "nodeid = CASE WHEN excluded.last_seen >= nodes.last_seen "
                          "THEN excluded.nodeid ELSE nodes.nodeid END, "
                          "last_seen = MAX(nodes.last_seen, excluded.last_seen)",
        [SQL_NODES] = "SELECT name, nodeid, last_seen FROM nodes ORDER BY name",
        /* The export SELECTs list their columns in the order of the field tables further down. */
        [SQL_EXPORT_ALERTS] =
                "SELECT id, key, text, priority, source, node, accepted_at, "
                "expires_at, final_at, ack_by, ack_via, ack_at, esc_step, esc_next_at "
                "FROM alerts WHERE id > ?1 ORDER BY id",
        [SQL_EXPORT_DELIVERIES] = "SELECT number, kind, seq, state, next_try_at, node, modem, "
                                  "permanent_failures, accepted_at, priority, round, bundle "
                                  "FROM deliveries "
                                  "WHERE alert_id = ?1 ORDER BY seq, number",
        [SQL_EXPORT_ATTEMPTS] = "SELECT number, node, modem, at, result, error, message_ref, "
                                "report FROM attempts WHERE alert_id = ?1 "
                                "ORDER BY number, at, node, modem",
        [SQL_EXPORT_CALLS] = "SELECT number, node, modem, at, outcome, duration, error, dtmf_ack "
                             "FROM calls WHERE alert_id = ?1 ORDER BY number, at, node, modem",
        [SQL_EXPORT_DEDUPE] = "SELECT key, alert_id, first_at FROM dedupe WHERE key > ?1 "
                              "ORDER BY key",
        [SQL_EXPORT_INBOX] = "SELECT key, node, modem, sender, text, parts, smsc_at, received_at, "
                             "quarantine FROM inbox WHERE key > ?1 ORDER BY key",
        [SQL_MERGE_ALERT_GET] = "SELECT state, final, final_at, accepted_at FROM alerts "
                                "WHERE id = ?1",
        /* The earlier acknowledgment wins, then the smaller names. ifnull(x, -1): in SQLite an
         * integer sorts before any text, so a missing name is the smallest and never ties with an
         * empty one. */
        [SQL_MERGE_ACK] = "UPDATE alerts SET ack_by = ?2, ack_via = ?3, ack_at = ?4 WHERE id = ?1 "
                          "AND (ack_at IS NULL OR (?4, ifnull(?2, -1), ifnull(?3, -1)) < "
                          "(ack_at, ifnull(ack_by, -1), ifnull(ack_via, -1)))",
        [SQL_MERGE_DELIVERY_GET] = "SELECT state, next_try_at, node, modem, permanent_failures, "
                                   "round FROM deliveries WHERE alert_id = ?1 AND number = ?2",
        [SQL_MERGE_DELIVERY_INSERT] = "INSERT OR IGNORE INTO deliveries(alert_id, number, kind, "
                                      "seq, state, next_try_at, node, modem, permanent_failures, "
                                      "accepted_at, priority, round, bundle) "
                                      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, "
                                      "?13)",
        [SQL_MERGE_DELIVERY_FAILURES] = "UPDATE deliveries SET permanent_failures = ?3 "
                                        "WHERE alert_id = ?1 AND number = ?2 AND "
                                        "permanent_failures < ?3",
        [SQL_MERGE_ATTEMPT_REPORT] = "UPDATE attempts SET report = ?6 WHERE alert_id = ?1 AND "
                                     "number = ?2 AND node = ?3 AND modem = ?4 AND at = ?5 AND "
                                     "(report IS NULL OR report < ?6)",
        [SQL_MERGE_DEDUPE] = "INSERT INTO dedupe(key, alert_id, first_at) VALUES (?1, ?2, ?3) "
                             "ON CONFLICT(key) DO UPDATE SET alert_id = excluded.alert_id, "
                             "first_at = excluded.first_at "
                             "WHERE (excluded.first_at, excluded.alert_id) < "
                             "(dedupe.first_at, dedupe.alert_id)",
        /* The further escalation wins (a stopped one, NULL, below a running one at the same
         * step); an acknowledged alert escalates no more. */
        [SQL_MERGE_ESCALATION] = "UPDATE alerts SET esc_step = ?2, esc_next_at = "
                                 "CASE WHEN ack_at IS NULL THEN ?3 END WHERE id = ?1 AND "
                                 "?2 IS NOT NULL AND (esc_step IS NULL OR (?2, ifnull(?3, -1)) > "
                                 "(esc_step, ifnull(esc_next_at, -1)))",
        [SQL_EXPORT_HISTORY] = "SELECT at, what, node, detail FROM history WHERE alert_id = ?1 "
                               "ORDER BY at, what, node, detail",
        [SQL_HISTORY_INSERT] = "INSERT OR IGNORE INTO history(alert_id, at, what, node, detail) "
                               "VALUES (?1, ?2, ?3, ?4, ?5)",
};

static int store_recount(Store *s);

static const char *const delivery_state_table[_DELIVERY_STATE_MAX] = {
        [DELIVERY_QUEUED] = "queued",   [DELIVERY_SENDING] = "sending",
        [DELIVERY_SENT] = "sent",       [DELIVERY_FAILED] = "failed",
        [DELIVERY_EXPIRED] = "expired", [DELIVERY_DELIVERED] = "delivered",
};

const char *store_delivery_state_to_string(DeliveryState s)
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

bool store_delivery_state_is_final(DeliveryState s)
{
	return s == DELIVERY_SENT || s == DELIVERY_FAILED || s == DELIVERY_EXPIRED ||
	       s == DELIVERY_DELIVERED;
}

/* How far a delivery got: the alert shows the furthest of its deliveries. */
static int delivery_state_rank(DeliveryState s)
{
	static const int rank[_DELIVERY_STATE_MAX] = {
	        [DELIVERY_QUEUED] = 0, [DELIVERY_SENDING] = 1, [DELIVERY_EXPIRED] = 2,
	        [DELIVERY_FAILED] = 3, [DELIVERY_SENT] = 4,    [DELIVERY_DELIVERED] = 5,
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

int store_fail(Store *s, int rc, const char *what)
{
	int r = sqlite_to_errno(rc);

	log_error_errno(r, "Store: %s failed: %s", what, sqlite3_errmsg(s->db));
	return r;
}

sqlite3_stmt *store_cached(Store *s, const char *sql)
{
	size_t i;

	for (i = 0; i < STORE_CACHED_MAX && s->cached[i].sql; i++)
		if (s->cached[i].sql == sql)
			return s->cached[i].st;
	if (i == STORE_CACHED_MAX) {
		log_error("Store: more than %d cached statements", STORE_CACHED_MAX);
		return NULL;
	}
	int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->cached[i].st,
	                            NULL);
	if (rc != SQLITE_OK) {
		log_error("Store: cannot prepare '%s': %s", sql, sqlite3_errmsg(s->db));
		return NULL;
	}
	s->cached[i].sql = sql;
	return s->cached[i].st;
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

void store_stmt_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

void store_bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

void store_bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
	/* Saturates: a time past INT64_MAX usec (a replicated "at" plus a huge ttl) would be
	 * stored negative, which every later comparison, the export and a peer's merge get
	 * wrong. */
	sqlite3_bind_int64(st, i, (sqlite3_int64)MIN(v, (uint64_t)INT64_MAX));
}

/* Runs a statement that returns no rows. */
int store_step_done(Store *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	store_stmt_done(st);
	if (rc != SQLITE_DONE)
		return store_fail(s, rc, what);
	return 0;
}

static int store_exec_full(Store *s, const char *sql, bool quiet)
{
	char *err = NULL;
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, &err);

	if (rc != SQLITE_OK) {
		int r = sqlite_to_errno(rc);

		if (quiet) {
			sqlite3_free(err);
			return r; /* the caller says so, once, and retries */
		}
		log_error_errno(r, "Store: '%.60s...' failed: %s", sql, err ? err : "?");
		sqlite3_free(err);
		return r;
	}
	return 0;
}

int store_exec(Store *s, const char *sql)
{
	return store_exec_full(s, sql, false);
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

/* v4: the cluster's nodes as seen here, for status and for the rejoin exchange. */
static const char schema_v4[] = "CREATE TABLE nodes(name TEXT PRIMARY KEY, nodeid INTEGER NOT NULL,"
                                " last_seen INTEGER NOT NULL) WITHOUT ROWID;";

/* v5: on-call. An alert's escalation (the step reached, the deadline of the next; NULL when it
 * does not escalate or has stopped), a delivery's round (an escalation step that pages the same
 * number again re-arms its delivery) and flood bundling (held for a "+N more" summary), the
 * alert's history beyond attempts and calls (duplicates, escalation steps, acknowledgments,
 * replies), and the on-call overrides. */
static const char schema_v5[] =
        "ALTER TABLE alerts ADD COLUMN esc_step INTEGER;"
        "ALTER TABLE alerts ADD COLUMN esc_next_at INTEGER;"
        "CREATE INDEX alerts_escalation ON alerts(esc_next_at) WHERE esc_next_at IS NOT NULL;"
        "ALTER TABLE deliveries ADD COLUMN round INTEGER NOT NULL DEFAULT 0;"
        "ALTER TABLE deliveries ADD COLUMN bundle INTEGER NOT NULL DEFAULT 0;"
        "CREATE INDEX deliveries_number ON deliveries(number, accepted_at);"
        "CREATE TABLE history("
        " alert_id TEXT NOT NULL, at INTEGER NOT NULL, what TEXT NOT NULL, node TEXT NOT NULL,"
        " detail TEXT NOT NULL DEFAULT '', UNIQUE(alert_id, at, what, node, detail));"
        "CREATE INDEX history_alert ON history(alert_id);"
        "CREATE INDEX alerts_critical ON alerts(priority, expires_at);"
        "CREATE TABLE overrides("
        " role TEXT PRIMARY KEY, contact TEXT, until INTEGER NOT NULL, set_at INTEGER NOT NULL,"
        " set_by TEXT) WITHOUT ROWID;";

/* v6: running tallies, kept by triggers in the same transactions as the rows they count, so
 * that status, metrics and the modems' counters cost the same at a million alerts as at ten
 * (they used to scan alerts and attempts). Purged rows leave the tallies as they leave the
 * tables. */
static const char schema_v6[] =
        "CREATE TABLE tallies(name TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;"
        "CREATE TABLE modem_tallies(node TEXT NOT NULL, modem TEXT NOT NULL,"
        " sent INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,"
        " last_sent_at INTEGER, last_error TEXT, last_error_at INTEGER,"
        " PRIMARY KEY(node, modem)) WITHOUT ROWID;"
        "INSERT INTO tallies SELECT 'state:' || state, COUNT(*) FROM alerts GROUP BY state;"
        "INSERT INTO tallies SELECT 'acked', COUNT(*) FROM alerts WHERE ack_at IS NOT NULL;"
        "INSERT INTO tallies SELECT 'escalated', COUNT(*) FROM history WHERE what = 'escalated';"
        "INSERT INTO tallies SELECT 'calls', COUNT(*) FROM calls;"
        "INSERT INTO modem_tallies(node, modem, sent, failed, last_sent_at)"
        " SELECT node, modem, SUM(result = 'sent'), SUM(result != 'sent'),"
        " MAX(CASE WHEN result = 'sent' THEN at END) FROM attempts GROUP BY node, modem;"
        "UPDATE modem_tallies SET (last_error, last_error_at) = (SELECT error, at FROM attempts a"
        " WHERE a.node = modem_tallies.node AND a.modem = modem_tallies.modem"
        " AND a.result != 'sent' ORDER BY at DESC LIMIT 1);"
        "CREATE TRIGGER tally_alert_insert AFTER INSERT ON alerts BEGIN"
        " INSERT INTO tallies VALUES ('state:' || NEW.state, 1)"
        "  ON CONFLICT(name) DO UPDATE SET n = n + 1;"
        " INSERT INTO tallies SELECT 'acked', 1 WHERE NEW.ack_at IS NOT NULL"
        "  ON CONFLICT(name) DO UPDATE SET n = n + 1;"
        "END;"
        "CREATE TRIGGER tally_alert_state AFTER UPDATE OF state ON alerts"
        " WHEN OLD.state IS NOT NEW.state BEGIN"
        " UPDATE tallies SET n = n - 1 WHERE name = 'state:' || OLD.state;"
        " INSERT INTO tallies VALUES ('state:' || NEW.state, 1)"
        "  ON CONFLICT(name) DO UPDATE SET n = n + 1;"
        "END;"
        "CREATE TRIGGER tally_alert_ack AFTER UPDATE OF ack_at ON alerts"
        " WHEN (OLD.ack_at IS NULL) != (NEW.ack_at IS NULL) BEGIN"
        " INSERT INTO tallies VALUES ('acked', CASE WHEN NEW.ack_at IS NULL THEN -1 ELSE 1 END)"
        "  ON CONFLICT(name) DO UPDATE SET n = n + excluded.n;"
        "END;"
        "CREATE TRIGGER tally_alert_delete AFTER DELETE ON alerts BEGIN"
        " UPDATE tallies SET n = n - 1 WHERE name = 'state:' || OLD.state;"
        " UPDATE tallies SET n = n - 1 WHERE name = 'acked' AND OLD.ack_at IS NOT NULL;"
        "END;"
        "CREATE TRIGGER tally_escalated AFTER INSERT ON history WHEN NEW.what = 'escalated' BEGIN"
        " INSERT INTO tallies VALUES ('escalated', 1) ON CONFLICT(name) DO UPDATE SET n = n + 1;"
        "END;"
        "CREATE TRIGGER tally_escalated_delete AFTER DELETE ON history"
        " WHEN OLD.what = 'escalated' BEGIN"
        " UPDATE tallies SET n = n - 1 WHERE name = 'escalated';"
        "END;"
        "CREATE TRIGGER tally_call AFTER INSERT ON calls BEGIN"
        " INSERT INTO tallies VALUES ('calls', 1) ON CONFLICT(name) DO UPDATE SET n = n + 1;"
        "END;"
        "CREATE TRIGGER tally_call_delete AFTER DELETE ON calls BEGIN"
        " UPDATE tallies SET n = n - 1 WHERE name = 'calls';"
        "END;"
        "CREATE TRIGGER tally_attempt AFTER INSERT ON attempts BEGIN"
        " INSERT INTO modem_tallies(node, modem) VALUES (NEW.node, NEW.modem)"
        "  ON CONFLICT(node, modem) DO NOTHING;"
        " UPDATE modem_tallies SET"
        "  sent = sent + (NEW.result = 'sent'), failed = failed + (NEW.result != 'sent'),"
        "  last_sent_at = CASE WHEN NEW.result = 'sent' AND (last_sent_at IS NULL OR"
        "   NEW.at > last_sent_at) THEN NEW.at ELSE last_sent_at END,"
        "  last_error = CASE WHEN NEW.result != 'sent' AND (last_error_at IS NULL OR"
        "   NEW.at >= last_error_at) THEN NEW.error ELSE last_error END,"
        "  last_error_at = CASE WHEN NEW.result != 'sent' AND (last_error_at IS NULL OR"
        "   NEW.at >= last_error_at) THEN NEW.at ELSE last_error_at END"
        "  WHERE node = NEW.node AND modem = NEW.modem;"
        "END;"
        "CREATE TRIGGER tally_attempt_delete AFTER DELETE ON attempts BEGIN"
        " UPDATE modem_tallies SET sent = sent - (OLD.result = 'sent'),"
        "  failed = failed - (OLD.result != 'sent') WHERE node = OLD.node AND modem = OLD.modem;"
        "END;";
/* v7: quarantined received messages (never decoded) live in the inbox too: the reason here,
 * the raw PDU as the text. */
static const char schema_v7[] = "ALTER TABLE inbox ADD COLUMN quarantine TEXT;";

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

	r = store_exec(s, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	if (version < 1) {
		r = store_exec(s, schema_v1);
		if (r < 0)
			goto fail;
	}
	if (version < 2) {
		r = store_exec(s, schema_v2);
		if (r < 0)
			goto fail;
	}
	if (version < 3) {
		r = store_exec(s, schema_v3);
		if (r < 0)
			goto fail;
	}
	if (version < 4) {
		r = store_exec(s, schema_v4);
		if (r < 0)
			goto fail;
	}
	if (version < 5) {
		r = store_exec(s, schema_v5);
		if (r < 0)
			goto fail;
	}
	if (version < 6) {
		r = store_exec(s, schema_v6);
		if (r < 0)
			goto fail;
	}
	if (version < 7) {
		r = store_exec(s, schema_v7);
		if (r < 0)
			goto fail;
	}
	/* Later versions add their steps here, each guarded by version < N. */
	r = store_exec(s, "PRAGMA user_version = " STRINGIFY(SCHEMA_VERSION));
	if (r < 0)
		goto fail;
	return store_exec(s, "COMMIT");
fail:
	store_exec(s, "ROLLBACK");
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
	s->stmt = calloc(_SQL_MAX, sizeof(sqlite3_stmt *));
	if (!s->stmt) {
		free(s);
		return -ENOMEM;
	}
	rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		r = log_error_errno(sqlite_to_errno(rc), "Cannot open store '%s': %s", path,
		                    s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		store_close(s);
		return r;
	}
	sqlite3_extended_result_codes(s->db, 1);
	/* A lock held by another process is a delay: wait a little, then fail the commit with
	 * -EBUSY so that the gateway retries it from its loop (gateway-apply.c). */
	sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
	/* WAL + FULL: each COMMIT fsyncs the WAL before returning; this is the durability promise
	 * behind every "queued" reply. */
	r = store_exec(s, "PRAGMA journal_mode = WAL");
	if (r >= 0)
		r = store_exec(s, "PRAGMA synchronous = FULL");
	if (r >= 0)
		r = store_exec(s, "PRAGMA foreign_keys = OFF");
	if (r >= 0)
		r = store_exec(s, "PRAGMA cache_size = -2000"); /* 2 MB: the queue lives on disk */
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
	for (int i = 0; s->stmt && i < _SQL_MAX; i++)
		sqlite3_finalize(s->stmt[i]);
	free(s->stmt);
	for (size_t i = 0; i < STORE_CACHED_MAX; i++)
		sqlite3_finalize(s->cached[i].st);
	sqlite3_close(s->db);
	free(s);
	return NULL;
}

int store_begin(Store *s)
{
	int r = store_exec_full(s, "BEGIN IMMEDIATE", true);

	if (r >= 0)
		s->in_transaction = true;
	return r;
}

int store_commit(Store *s)
{
	int r = store_exec_full(s, "COMMIT", true);

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
		store_exec(s, "ROLLBACK");
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
	store_bind_text(st, 1, key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		uint64_t first_at = (uint64_t)sqlite3_column_int64(st, 1);

		/* The window is fixed from the first alert's acceptance, not sliding. */
		if (at < first_at + window_usec) {
			snprintf(ret_id, 33, "%s", (const char *)sqlite3_column_text(st, 0));
			found = 1;
		}
	} else if (rc != SQLITE_DONE) {
		store_stmt_done(st);
		return store_fail(s, rc, "dedupe lookup");
	}
	store_stmt_done(st);
	return found;
}

/* Flood bundling: with `threshold` or more alerts for this number accepted within the window
 * before `at`, the new delivery is held (1) until the summary's time: the time of the held ones
 * already waiting, else one window from now. Decided from replicated data alone, so every node
 * holds the same deliveries. */
static int bundle_hold(Store *s, const char *number, uint64_t at, unsigned threshold,
                       uint64_t window, uint64_t *ret_due)
{
	static const char count_sql[] = "SELECT COUNT(*) FROM deliveries WHERE number = ?1 AND "
	                                "kind = 'to' AND accepted_at > ?2 AND accepted_at <= ?3";
	static const char due_sql[] = "SELECT MIN(next_try_at) FROM deliveries WHERE number = ?1 "
	                              "AND bundle = 1 AND state = 'queued'";
	sqlite3_stmt *st = store_cached(s, count_sql);
	uint64_t count = 0, due = 0;
	int r;

	if (!st)
		return -EIO;
	store_bind_text(st, 1, number);
	store_bind_u64(st, 2, at - MIN(at, window));
	store_bind_u64(st, 3, at);
	r = store_step_u64(s, st, "counting recent alerts", &count);
	if (r < 0 || count < threshold)
		return r;

	st = store_cached(s, due_sql);
	if (!st)
		return -EIO;
	store_bind_text(st, 1, number);
	r = store_step_u64(s, st, "reading a bundle", &due);
	if (r < 0)
		return r;
	*ret_due = due ? due : at + window;
	return 1;
}

/* What store_merge_alert() would refuse must not get in by the replicated submit either: an
 * alert stored here that the peers cannot merge would split the cluster's histories. */
static bool new_alert_valid(const NewAlert *a)
{
	if (!id_is_valid(a->id))
		return false;
	for (size_t i = 0; i < a->n_to + a->n_copy; i++) {
		const char *number = i < a->n_to ? a->to[i] : a->copy[i - a->n_to];

		if (!number || !*number)
			return false;
	}
	return true;
}

int store_alert_insert(Store *s, const NewAlert *a)
{
	sqlite3_stmt *st;
	int r, seq = 0;

	if (!new_alert_valid(a))
		return -EINVAL;
	st = stmt(s, SQL_ALERT_INSERT);
	if (!st)
		return -EIO;
	store_bind_text(st, 1, a->id);
	store_bind_text(st, 2, a->key);
	store_bind_text(st, 3, a->text);
	sqlite3_bind_int(st, 4, a->critical ? 1 : 0);
	store_bind_text(st, 5, a->source);
	store_bind_text(st, 6, a->node);
	store_bind_u64(st, 7, a->accepted_at);
	store_bind_u64(st, 8, a->expires_at);
	if (a->esc_next_at) {
		sqlite3_bind_int(st, 9, 0);
		store_bind_u64(st, 10, a->esc_next_at);
	}
	r = store_step_done(s, st, "inserting an alert");
	if (r < 0)
		return r;
	if (sqlite3_changes(s->db) == 0)
		return 0; /* applied before: inserting is idempotent */
	s->open_alerts++;

	for (int kind = 0; kind < 2; kind++) {
		const char *const *v = kind == 0 ? a->to : a->copy;
		size_t n = kind == 0 ? a->n_to : a->n_copy;

		for (size_t i = 0; i < n; i++) {
			uint64_t next_try_at = a->accepted_at;
			bool held = false;

			if (kind == 0 && !a->critical && a->bundle_threshold > 0) {
				r = bundle_hold(s, v[i], a->accepted_at, a->bundle_threshold,
				                a->bundle_window, &next_try_at);
				if (r < 0)
					return r;
				held = r > 0;
			}
			st = stmt(s, SQL_DELIVERY_INSERT);
			if (!st)
				return -EIO;
			store_bind_text(st, 1, a->id);
			store_bind_text(st, 2, v[i]);
			store_bind_text(st, 3, kind == 0 ? "to" : "copy");
			sqlite3_bind_int(st, 4, seq++);
			sqlite3_bind_int(st, 5, a->critical ? 1 : 0);
			store_bind_u64(st, 6, a->accepted_at);
			store_bind_u64(st, 7, next_try_at);
			sqlite3_bind_int(st, 8, held);
			r = store_step_done(s, st, "inserting a delivery");
			if (r < 0)
				return r;
		}
	}

	st = stmt(s, SQL_DEDUPE_SET);
	if (!st)
		return -EIO;
	store_bind_text(st, 1, a->key);
	store_bind_text(st, 2, a->id);
	store_bind_u64(st, 3, a->accepted_at);
	return store_step_done(s, st, "recording a dedupe key");
}

static int query_u64(Store *s, int id, const char *arg, uint64_t *ret)
{
	sqlite3_stmt *st = stmt(s, id);
	int rc;

	if (!st)
		return -EIO;
	if (arg)
		store_bind_text(st, 1, arg);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		store_stmt_done(st);
		return store_fail(s, rc, "query");
	}
	*ret = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
	store_stmt_done(st);
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
int store_alert_refresh(Store *s, const char *alert_id, uint64_t at)
{
	sqlite3_stmt *st = stmt(s, SQL_ALERT_DELIVERY_STATES);
	DeliveryState furthest = DELIVERY_QUEUED;
	sqlite3_stmt *fst = stmt(s, SQL_ALERT_FINAL);
	bool final = true, was_final = false;
	int rc;

	if (!st || !fst)
		return -EIO;
	store_bind_text(fst, 1, alert_id);
	rc = sqlite3_step(fst);
	if (rc == SQLITE_ROW) {
		was_final = sqlite3_column_int(fst, 0) != 0;
		final = sqlite3_column_int(fst, 1) == 0; /* escalating: open until it stops */
	}
	store_stmt_done(fst);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_fail(s, rc, "reading an alert's state");
	store_bind_text(st, 1, alert_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		DeliveryState d =
		        delivery_state_from_string((const char *)sqlite3_column_text(st, 0));

		if (delivery_state_rank(d) > delivery_state_rank(furthest))
			furthest = d;
		if (!store_delivery_state_is_final(d))
			final = false;
	}
	store_stmt_done(st);
	if (rc != SQLITE_DONE)
		return store_fail(s, rc, "reading delivery states");

	st = stmt(s, SQL_ALERT_SET_STATE);
	if (!st)
		return -EIO;
	store_bind_text(st, 1, alert_id);
	store_bind_text(st, 2, store_delivery_state_to_string(furthest));
	sqlite3_bind_int(st, 3, final);
	if (final)
		store_bind_u64(st, 4, at);
	else
		sqlite3_bind_null(st, 4);
	rc = store_step_done(s, st, "updating an alert's state");
	if (rc >= 0 && final != was_final) {
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
	store_bind_text(st, 1, alert_id);
	store_bind_text(st, 2, number);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ret_state = delivery_state_from_string((const char *)sqlite3_column_text(st, 0));
		*ret_permanent = (unsigned)sqlite3_column_int(st, 1);
	}
	store_stmt_done(st);
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
	store_bind_text(st, 1, alert_id);
	store_bind_text(st, 2, number);
	store_bind_text(st, 3, store_delivery_state_to_string(state));
	store_bind_u64(st, 4, next_try_at);
	store_bind_text(st, 5, node);
	store_bind_text(st, 6, modem);
	sqlite3_bind_int(st, 7, (int)permanent);
	return store_step_done(s, st, "updating a delivery");
}

int store_delivery_set_round(Store *s, const char *alert_id, const char *number, uint64_t round)
{
	static const char sql[] = "UPDATE deliveries SET round = ?3 WHERE alert_id = ?1 AND "
	                          "number = ?2 AND round < ?3";
	sqlite3_stmt *st = store_cached(s, sql);

	if (!st)
		return -EIO;
	store_bind_text(st, 1, alert_id);
	store_bind_text(st, 2, number);
	store_bind_u64(st, 3, round);
	return store_step_done(s, st, "setting a delivery's round");
}

int store_history_add(Store *s, const char *alert_id, uint64_t at, const char *what,
                      const char *node, const char *detail)
{
	sqlite3_stmt *st = stmt(s, SQL_HISTORY_INSERT);

	if (!st)
		return -EIO;
	store_bind_text(st, 1, alert_id);
	store_bind_u64(st, 2, at);
	store_bind_text(st, 3, what);
	store_bind_text(st, 4, node);
	store_bind_text(st, 5, detail ? detail : "");
	return store_step_done(s, st, "recording history");
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
	r = store_alert_refresh(s, alert_id, at);
	if (r < 0)
		return r;
	*ret_change = (DeliveryChange){.old_state = state, .new_state = DELIVERY_SENDING};
	return 1;
}

static int delivery_sending_elsewhere(Store *s, const char *alert_id, const char *number,
                                      const char *node, const char *modem)
{
	sqlite3_stmt *st = stmt(s, SQL_DELIVERY_SENDING_ELSEWHERE);
	int rc;

	if (!st)
		return -EIO;
	store_bind_text(st, 1, alert_id);
	store_bind_text(st, 2, number);
	store_bind_text(st, 3, node);
	store_bind_text(st, 4, modem);
	rc = sqlite3_step(st);
	store_stmt_done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_fail(s, rc, "checking who sends a delivery");
	return rc == SQLITE_ROW;
}

static uint64_t backoff_usec(unsigned attempts, unsigned min_sec, unsigned max_sec)
{
	uint64_t d = min_sec;

	for (unsigned i = 1; i < attempts && d < max_sec; i++)
		d *= 2;
	return MIN(d, (uint64_t)max_sec) * USEC_PER_SEC;
}

int store_delivery_result(Store *s, const char *alert_id, const char *number, const SendResult *res,
                          DeliveryChange *ret_change)
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
	store_bind_text(st, 1, alert_id);
	store_bind_text(st, 2, number);
	store_bind_text(st, 3, res->node);
	store_bind_text(st, 4, res->modem);
	store_bind_u64(st, 5, res->at);
	store_bind_text(st, 6, res->ok ? "sent" : "error");
	store_bind_text(st, 7, res->ok ? NULL : res->error);
	if (res->ok && res->message_ref >= 0)
		sqlite3_bind_int(st, 8, res->message_ref);
	else
		sqlite3_bind_null(st, 8);
	r = store_step_done(s, st, "recording an attempt");
	if (r < 0)
		return r;

	if (res->ok) {
		if (state == DELIVERY_SENT || state == DELIVERY_DELIVERED)
			return 0;
		new_state = DELIVERY_SENT; /* sent beats failed and expired */
	} else {
		if (store_delivery_state_is_final(state))
			return 0;
		if (state == DELIVERY_SENDING) {
			/* Another modem has it now: this failure belongs to an earlier attempt, and
			 * requeuing would let two modems send it at once. */
			r = delivery_sending_elsewhere(s, alert_id, number, res->node, res->modem);
			if (r != 0)
				return r < 0 ? r : 0;
		}
		if (res->permanent)
			permanent++;
		if (permanent >= res->max_permanent_failures)
			new_state = DELIVERY_FAILED;
		else {
			new_state = DELIVERY_QUEUED;
			st = stmt(s, SQL_ATTEMPT_COUNT);
			if (!st)
				return -EIO;
			store_bind_text(st, 1, alert_id);
			store_bind_text(st, 2, number);
			attempts = sqlite3_step(st) == SQLITE_ROW
			                   ? (uint64_t)sqlite3_column_int64(st, 0)
			                   : 1;
			store_stmt_done(st);
			next_try_at = res->at + backoff_usec((unsigned)attempts, res->retry_min,
			                                     res->retry_max);
		}
	}
	r = delivery_set(s, alert_id, number, new_state, next_try_at, res->node, res->modem,
	                 permanent);
	if (r < 0)
		return r;
	r = store_alert_refresh(s, alert_id, res->at);
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
	store_bind_text(st, 1, rep->node);
	store_bind_text(st, 2, rep->modem);
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
	store_bind_text(up, 1, rep->node);
	store_bind_text(up, 2, rep->modem);
	sqlite3_bind_int(up, 3, rep->message_ref);
	store_bind_text(up, 4, ret_alert_id);
	store_bind_text(up, 5, rep->status);
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
	r = store_alert_refresh(s, ret_alert_id, rep->at);
	return r < 0 ? r : 1;
}

int store_inbox_insert(Store *s, const InboxMessage *m)
{
	sqlite3_stmt *st = stmt(s, SQL_INBOX_INSERT);
	int r;

	if (!st)
		return -EIO;
	store_bind_text(st, 1, m->key);
	store_bind_text(st, 2, m->node);
	store_bind_text(st, 3, m->modem);
	store_bind_text(st, 4, m->sender);
	store_bind_text(st, 5, m->text);
	sqlite3_bind_int(st, 6, (int)m->parts);
	if (m->smsc_at)
		store_bind_u64(st, 7, m->smsc_at);
	else
		sqlite3_bind_null(st, 7);
	store_bind_u64(st, 8, m->received_at);
	store_bind_text(st, 9, m->quarantine);
	r = store_step_done(s, st, "storing a received SMS");
	return r < 0 ? r : sqlite3_changes(s->db) > 0;
}

/* 1 when the alert was escalating. */
static int escalation_stop(Store *s, const char *alert_id)
{
	static const char sql[] = "UPDATE alerts SET esc_next_at = NULL WHERE id = ?1 AND "
	                          "esc_next_at IS NOT NULL";
	sqlite3_stmt *st = store_cached(s, sql);
	int r;

	if (!st)
		return -EIO;
	store_bind_text(st, 1, alert_id);
	r = store_step_done(s, st, "stopping an escalation");
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
	store_bind_text(st, 1, alert_id);
	r = sqlite3_step(st);
	sqlite3_finalize(st);
	if (r != SQLITE_DONE)
		return store_fail(s, r, "expiring an alert");
	changed = sqlite3_changes(s->db);
	r = escalation_stop(s, alert_id);
	if (r < 0)
		return r;
	if (changed > 0 || r > 0) {
		r = store_alert_refresh(s, alert_id, at);
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
	store_bind_text(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		store_stmt_done(st);
		return -ENOENT;
	}
	if (rc != SQLITE_ROW) {
		store_stmt_done(st);
		return store_fail(s, rc, "reading an acknowledgment");
	}
	acked = sqlite3_column_type(st, 0) != SQLITE_NULL;
	store_stmt_done(st);
	if (acked)
		return 0;

	st = stmt(s, SQL_ALERT_ACK_SET);
	if (!st)
		return -EIO;
	store_bind_text(st, 1, id);
	store_bind_text(st, 2, by);
	store_bind_text(st, 3, via);
	store_bind_u64(st, 4, at);
	rc = store_step_done(s, st, "acknowledging");
	if (rc < 0)
		return rc;
	rc = escalation_stop(s, id);
	if (rc > 0)
		rc = store_alert_refresh(s, id, at);
	return rc < 0 ? rc : 1;
}

/* Steps a bound statement through its rows, handing each to row(); row() returns <0 to stop
 * early (that value is returned). Resets the statement in every case. */
int store_step_u64(Store *s, sqlite3_stmt *st, const char *what, uint64_t *ret)
{
	int rc = sqlite3_step(st);

	*ret = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
	store_stmt_done(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : store_fail(s, rc, what);
}

int store_each_row(Store *s, sqlite3_stmt *st, const char *what,
                   int (*row)(sqlite3_stmt *st, void *ctx), void *ctx)
{
	int rc, r = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = row(st, ctx);
		if (r < 0)
			break;
	}
	store_stmt_done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_fail(s, rc, what);
	return r < 0 ? r : 0;
}

static int due_row(sqlite3_stmt *st, void *ctx)
{
	RowCallback *rc = ctx;
	int (*cb)(const DueDelivery *d, void *userdata) = rc->cb;
	const char *modem = (const char *)sqlite3_column_text(st, 4);
	const char *node = (const char *)sqlite3_column_text(st, 6);
	DueDelivery d = {0};

	snprintf(d.alert_id, sizeof(d.alert_id), "%s", sqlite3_column_text(st, 0));
	snprintf(d.number, sizeof(d.number), "%s", sqlite3_column_text(st, 1));
	d.text = (char *)sqlite3_column_text(st, 2);
	d.critical = sqlite3_column_int(st, 3) != 0;
	snprintf(d.last_modem, sizeof(d.last_modem), "%s", modem ? modem : "");
	snprintf(d.last_node, sizeof(d.last_node), "%s", node ? node : "");
	d.attempts = (unsigned)sqlite3_column_int(st, 5);
	d.ackable = d.critical && sqlite3_column_int(st, 7) != 0;
	d.bundle = sqlite3_column_int(st, 8) != 0;
	return cb(&d, rc->userdata);
}

int store_due_deliveries(Store *s, uint64_t now, size_t limit,
                         int (*cb)(const DueDelivery *d, void *userdata), void *userdata)
{
	sqlite3_stmt *st = stmt(s, SQL_DUE);
	RowCallback ctx = {.cb = (void *)cb, .userdata = userdata};

	if (!st)
		return -EIO;
	store_bind_u64(st, 1, now);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
	return store_each_row(s, st, "listing due deliveries", due_row, &ctx);
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
	store_bind_u64(st, 1, now);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
	return store_each_row(s, st, "listing expired alerts", expired_row, &ctx);
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
	store_bind_text(st, 1, node);
	return store_each_row(s, st, "listing interrupted sends", sending_row, &ctx);
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
			store_bind_u64(st, 1, before);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return store_fail(s, rc, "purging");
		if (i == 2)
			purged = sqlite3_changes(s->db);
	}
	return purged;
}

json_t *store_json_time_or_null(uint64_t usec)
{
	char buf[RFC3339_MAX];

	return usec ? json_string(format_rfc3339(usec, buf)) : json_null();
}

json_t *store_column_string(sqlite3_stmt *st, int i)
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
	store_bind_text(st, 1, id);
	store_bind_text(st, 2, number);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *a = json_pack(
		        "{s:o, s:o, s:o, s:o, s:o}", "node", store_column_string(st, 0), "modem",
		        store_column_string(st, 1), "at",
		        store_json_time_or_null((uint64_t)sqlite3_column_int64(st, 2)), "result",
		        store_column_string(st, 3), "error", store_column_string(st, 4));
		if (a && sqlite3_column_type(st, 5) != SQLITE_NULL)
			json_object_set_new(a, "report", store_column_string(st, 5));
		if (!a || json_array_append_new(list, a) < 0) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	store_stmt_done(st);
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
	store_bind_text(st, 1, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *c = json_pack(
		        "{s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:b}", "number",
		        store_column_string(st, 0), "node", store_column_string(st, 1), "modem",
		        store_column_string(st, 2), "at",
		        store_json_time_or_null((uint64_t)sqlite3_column_int64(st, 3)), "outcome",
		        store_column_string(st, 4), "duration",
		        (json_int_t)sqlite3_column_int64(st, 5), "error",
		        store_column_string(st, 6), "acknowledged", sqlite3_column_int(st, 7) != 0);
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

static int history_row(sqlite3_stmt *st, void *ctx)
{
	json_t *h = json_pack("{s:o, s:o, s:o, s:o}", "at",
	                      store_json_time_or_null((uint64_t)sqlite3_column_int64(st, 0)),
	                      "what", store_column_string(st, 1), "node",
	                      store_column_string(st, 2), "detail", store_column_string(st, 3));

	return h && json_array_append_new(ctx, h) == 0 ? 0 : -ENOMEM;
}

static int history_json(Store *s, const char *id, json_t **ret)
{
	sqlite3_stmt *st = stmt(s, SQL_EXPORT_HISTORY);
	json_t *list = json_array();
	int r;

	if (!st || !list) {
		json_decref(list);
		return -ENOMEM;
	}
	store_bind_text(st, 1, id);
	r = store_each_row(s, st, "reading history", history_row, list);
	if (r < 0) {
		json_decref(list);
		return r;
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
	store_bind_text(st, 1, id);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		store_stmt_done(st);
		return rc == SQLITE_DONE ? -ENOENT : store_fail(s, rc, "reading an alert");
	}
	if (sqlite3_column_type(st, 10) == SQLITE_NULL)
		ack = json_null();
	else
		ack = json_pack("{s:o, s:o, s:o}", "by", store_column_string(st, 8), "via",
		                store_column_string(st, 9), "at",
		                store_json_time_or_null((uint64_t)sqlite3_column_int64(st, 10)));
	alert = json_pack("{s:o, s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:[]}", "id",
	                  store_column_string(st, 0), "state", store_column_string(st, 1),
	                  "priority", sqlite3_column_int(st, 2) ? "critical" : "normal", "text",
	                  store_column_string(st, 3), "key", store_column_string(st, 4), "source",
	                  store_column_string(st, 5), "accepted_at",
	                  store_json_time_or_null((uint64_t)sqlite3_column_int64(st, 6)), "node",
	                  store_column_string(st, 7), "expires_at",
	                  store_json_time_or_null((uint64_t)sqlite3_column_int64(st, 11)), "ack",
	                  ack ? ack : json_null(), "calls");
	if (alert && sqlite3_column_type(st, 12) != SQLITE_NULL)
		json_object_set_new(
		        alert, "escalation",
		        json_pack("{s:i, s:b, s:o}", "step", sqlite3_column_int(st, 12), "active",
		                  sqlite3_column_type(st, 13) != SQLITE_NULL, "next_at",
		                  store_json_time_or_null((uint64_t)sqlite3_column_int64(st, 13))));
	else if (alert)
		json_object_set_new(alert, "escalation", json_null());
	store_stmt_done(st);
	if (!alert)
		return -ENOMEM;

	deliveries = json_array();
	st = stmt(s, SQL_ALERT_DELIVERIES);
	if (!deliveries || !st) {
		r = -ENOMEM;
		goto fail;
	}
	store_bind_text(st, 1, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *d =
		        json_pack("{s:o, s:o, s:o}", "to", store_column_string(st, 0), "state",
		                  store_column_string(st, 1), "kind", store_column_string(st, 2));
		if (!d || json_array_append_new(deliveries, d) < 0) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	store_stmt_done(st);
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

			r = alert_attempts_json(s, id, json_string_value(json_object_get(d, "to")),
			                        &attempts);
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
	if (with_attempts) {
		r = history_json(s, id, &calls);
		if (r < 0)
			goto fail;
		json_object_set_new(alert, "history", calls);
	}
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
		store_stmt_done(st);
		json_decref(list);
		return -ENOMEM;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < limit) {
		ids[n] = strdup((const char *)sqlite3_column_text(st, 0));
		if (!ids[n])
			break;
		n++;
	}
	store_stmt_done(st);
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
	store_stmt_done(st);
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
	store_bind_text(st, 1, node);
	store_bind_text(st, 2, modem);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		c.sent = (uint64_t)sqlite3_column_int64(st, 0);
		c.failed = (uint64_t)sqlite3_column_int64(st, 1);
		c.last_sent_at = (uint64_t)sqlite3_column_int64(st, 2);
	}
	store_stmt_done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_fail(s, rc, "counting a modem's sends");

	st = stmt(s, SQL_MODEM_LAST_ERROR);
	if (!st)
		return -EIO;
	store_bind_text(st, 1, node);
	store_bind_text(st, 2, modem);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(c.last_error, sizeof(c.last_error), "%s", sqlite3_column_text(st, 0));
	store_stmt_done(st);
	*ret = c;
	return 0;
}

int store_inbox_json(Store *s, size_t limit, json_t **ret)
{
	static const char sql[] = "SELECT key, node, modem, sender, text, parts, smsc_at, "
	                          "received_at, quarantine FROM inbox "
	                          "ORDER BY received_at DESC LIMIT ?1";
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
		        "{s:o, s:o, s:o, s:o, s:o, s:i, s:o, s:o}", "key",
		        store_column_string(st, 0), "node", store_column_string(st, 1), "modem",
		        store_column_string(st, 2), "from", store_column_string(st, 3), "text",
		        store_column_string(st, 4), "parts", sqlite3_column_int(st, 5), "sent_at",
		        store_json_time_or_null((uint64_t)sqlite3_column_int64(st, 6)),
		        "received_at",
		        store_json_time_or_null((uint64_t)sqlite3_column_int64(st, 7)));
		if (m && sqlite3_column_type(st, 8) != SQLITE_NULL &&
		    json_object_set_new(m, "quarantined", store_column_string(st, 8)) < 0) {
			json_decref(m);
			m = NULL;
		}
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
	sqlite3_stmt *st;
	int r;

	if (!c->number || !*c->number)
		return -EINVAL; /* a call to nobody: a peer's merge would refuse the alert */
	st = stmt(s, SQL_CALL_INSERT);
	if (!st)
		return -EIO;
	store_bind_text(st, 1, c->alert_id);
	store_bind_text(st, 2, c->number);
	store_bind_text(st, 3, c->node);
	store_bind_text(st, 4, c->modem);
	store_bind_u64(st, 5, c->at);
	store_bind_text(st, 6, c->outcome);
	store_bind_u64(st, 7, c->duration_sec);
	store_bind_text(st, 8, c->error && *c->error ? c->error : NULL);
	sqlite3_bind_int(st, 9, c->dtmf_ack);
	r = store_step_done(s, st, "recording a call");
	return r < 0 ? r : sqlite3_changes(s->db) > 0;
}

int store_voice_summary(Store *s, uint64_t *ret_calls, char ret_last[static 16])
{
	static const char sql[] = "SELECT (SELECT n FROM tallies WHERE name = 'calls'), "
	                          "(SELECT outcome FROM calls ORDER BY at DESC LIMIT 1)";
	sqlite3_stmt *st = store_cached(s, sql);
	int rc;

	if (!st)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		store_stmt_done(st);
		return store_fail(s, rc, "reading the voice summary");
	}
	*ret_calls = (uint64_t)sqlite3_column_int64(st, 0);
	snprintf(ret_last, 16, "%s",
	         sqlite3_column_text(st, 1) ? (const char *)sqlite3_column_text(st, 1) : "");
	store_stmt_done(st);
	return 0;
}

int store_voice_candidate(Store *s, const char *alert_id, const char *number, VoiceCandidate *ret)
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
	store_bind_text(st, 1, alert_id);
	store_bind_text(st, 2, number);
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
	store_bind_text(fs, 1, alert_id);
	store_bind_text(fs, 2, number);
	store_bind_text(fs, 3, ret->node);
	while ((rc = sqlite3_step(fs)) == SQLITE_ROW && v.n_failed_modems < VOICE_MAX_MODEMS)
		snprintf(v.failed_modems[v.n_failed_modems++], sizeof(v.failed_modems[0]), "%s",
		         sqlite3_column_text(fs, 0));
	v.node = ret->node;
	*ret = v;
	return 0;
}

int store_open_critical(Store *s,
                        int (*cb)(const char *alert_id, const char *number, void *userdata),
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

static int node_row(sqlite3_stmt *st, void *ctx)
{
	RowCallback *rc = ctx;
	int (*cb)(const char *, uint32_t, uint64_t, void *) = rc->cb;

	return cb((const char *)sqlite3_column_text(st, 0), (uint32_t)sqlite3_column_int64(st, 1),
	          (uint64_t)sqlite3_column_int64(st, 2), rc->userdata);
}

int store_node_seen(Store *s, const char *name, uint32_t nodeid, uint64_t at)
{
	sqlite3_stmt *st = stmt(s, SQL_NODE_SEEN);

	if (!st)
		return -EIO;
	store_bind_text(st, 1, name);
	store_bind_u64(st, 2, nodeid);
	store_bind_u64(st, 3, at);
	return store_step_done(s, st, "recording a node");
}

int store_nodes(Store *s,
                int (*cb)(const char *name, uint32_t nodeid, uint64_t last_seen, void *userdata),
                void *userdata)
{
	sqlite3_stmt *st = stmt(s, SQL_NODES);
	RowCallback ctx = {.cb = (void *)cb, .userdata = userdata};

	if (!st)
		return -EIO;
	return store_each_row(s, st, "listing nodes", node_row, &ctx);
}

/* Rejoin: export and merge.
 *
 * After a partition both halves kept accepting and delivering, and a node that restarts with an
 * empty disk has nothing; either way the two replicas meet again by sending each other their
 * rows and merging what they receive. A merge is a join in a semilattice: every field only moves
 * up an order that both nodes share (a delivery's state by rank, then a fixed tie-break;
 * attempts, calls and inbox messages by set union; the earliest acknowledgment; the earliest
 * dedupe row), so the same items applied in any order, once or twice, leave identical rows on
 * both nodes. The alert's summary is derived again by alert_refresh(), with final_at the latest
 * that either side recorded, and never before acceptance (the fallback when the alert became
 * final only in the merge): a join too, while the time of the merge itself would differ between
 * the nodes.
 *
 * An item carries everything about one row of the cursor's table (an alert with its
 * deliveries, attempts and calls), so an export is a walk along the primary key that one call
 * takes as far as one payload goes. The field tables name the keys and types; each export
 * SELECT, and each statement the merge binds an item to, lists its columns in the same order. */

typedef enum FieldType {
	FIELD_TEXT,
	FIELD_TEXT_OR_NULL,
	FIELD_INT,
	FIELD_INT_OR_NULL,
} FieldType;

typedef struct Field {
	const char *name;
	FieldType type;
} Field;

/* The first 8 are SQL_ALERT_INSERT's ?1..?8. */
static const Field alert_fields[] = {
        {"id", FIELD_TEXT},
        {"key", FIELD_TEXT},
        {"text", FIELD_TEXT},
        {"prio", FIELD_INT},
        {"src", FIELD_TEXT_OR_NULL},
        {"node", FIELD_TEXT},
        {"acc", FIELD_INT},
        {"exp", FIELD_INT},
        {"fin", FIELD_INT_OR_NULL},
        {"ack_by", FIELD_TEXT_OR_NULL},
        {"ack_via", FIELD_TEXT_OR_NULL},
        {"ack_at", FIELD_INT_OR_NULL},
        {"esc_step", FIELD_INT_OR_NULL},
        {"esc_next", FIELD_INT_OR_NULL},
};
#define ALERT_INSERT_FIELDS 8
#define ALERT_ACK_FIELDS    9  /* ack_by, ack_via, ack_at: SQL_MERGE_ACK's ?2..?4 */
#define ALERT_ESC_FIELDS    12 /* esc_step, esc_next */

/* SQL_MERGE_DELIVERY_INSERT's ?2..?11. */
static const Field delivery_fields[] = {
        {"to", FIELD_TEXT},
        {"kind", FIELD_TEXT},
        {"seq", FIELD_INT},
        {"state", FIELD_TEXT},
        {"next", FIELD_INT},
        {"node", FIELD_TEXT_OR_NULL},
        {"modem", FIELD_TEXT_OR_NULL},
        {"pf", FIELD_INT},
        {"acc", FIELD_INT},
        {"prio", FIELD_INT},
        {"round", FIELD_INT},
        {"bundle", FIELD_INT},
};

/* SQL_HISTORY_INSERT's ?2..?6. */
static const Field history_fields[] = {
        {"at", FIELD_INT},
        {"what", FIELD_TEXT},
        {"node", FIELD_TEXT},
        {"detail", FIELD_TEXT},
};

/* SQL_ATTEMPT_INSERT's ?2..?8 (all but the report); the first 4 name the attempt. */
static const Field attempt_fields[] = {
        {"to", FIELD_TEXT},         {"node", FIELD_TEXT},           {"modem", FIELD_TEXT},
        {"at", FIELD_INT},          {"result", FIELD_TEXT},         {"error", FIELD_TEXT_OR_NULL},
        {"ref", FIELD_INT_OR_NULL}, {"report", FIELD_TEXT_OR_NULL},
};
#define ATTEMPT_KEY_FIELDS 4

/* SQL_CALL_INSERT's ?2..?9. */
static const Field call_fields[] = {
        {"to", FIELD_TEXT},
        {"node", FIELD_TEXT},
        {"modem", FIELD_TEXT},
        {"at", FIELD_INT},
        {"outcome", FIELD_TEXT},
        {"dur", FIELD_INT},
        {"error", FIELD_TEXT_OR_NULL},
        {"dtmf", FIELD_INT},
};

/* SQL_MERGE_DEDUPE's ?1..?3. */
static const Field dedupe_fields[] = {
        {"key", FIELD_TEXT},
        {"alert_id", FIELD_TEXT},
        {"first_at", FIELD_INT},
};

/* SQL_INBOX_INSERT's ?1..?9. */
static const Field inbox_fields[] = {
        {"key", FIELD_TEXT},
        {"node", FIELD_TEXT},
        {"modem", FIELD_TEXT},
        {"sender", FIELD_TEXT},
        {"text", FIELD_TEXT},
        {"parts", FIELD_INT},
        {"smsc_at", FIELD_INT_OR_NULL},
        {"received_at", FIELD_INT},
        {"quarantine", FIELD_TEXT_OR_NULL},
};

/* The lists inside an alert item. */
static const struct {
	const char *name;
	int sql;
	const Field *fields;
	size_t n_fields;
} alert_lists[] = {
        {"dl", SQL_EXPORT_DELIVERIES, delivery_fields, ELEMENTSOF(delivery_fields)},
        {"att", SQL_EXPORT_ATTEMPTS, attempt_fields, ELEMENTSOF(attempt_fields)},
        {"calls", SQL_EXPORT_CALLS, call_fields, ELEMENTSOF(call_fields)},
        {"hist", SQL_EXPORT_HISTORY, history_fields, ELEMENTSOF(history_fields)},
};

static bool field_is_int(FieldType t)
{
	return t == FIELD_INT || t == FIELD_INT_OR_NULL;
}

/* Column i as fields[i]: typed by the field, NULL as null. */
static int row_json(sqlite3_stmt *st, const Field *fields, size_t n_fields, json_t **ret)
{
	json_t *o = json_object();

	if (!o)
		return -ENOMEM;
	for (size_t i = 0; i < n_fields; i++) {
		const char *text = NULL;
		json_t *v;

		if (sqlite3_column_type(st, (int)i) == SQLITE_NULL)
			v = json_null();
		else if (field_is_int(fields[i].type))
			v = json_integer((json_int_t)sqlite3_column_int64(st, (int)i));
		else {
			text = (const char *)sqlite3_column_text(st, (int)i);
			v = text ? json_string(text) : NULL;
		}
		if (!v || json_object_set_new(o, fields[i].name, v) < 0) {
			json_decref(o);
			if (text && !utf8_is_valid(text, strlen(text)))
				return log_error_errno(EILSEQ, "Store: '%s' is not valid UTF-8",
				                       fields[i].name);
			return -ENOMEM;
		}
	}
	*ret = o;
	return 0;
}

typedef struct RowsJson {
	json_t *list;
	const Field *fields;
	size_t n_fields;
} RowsJson;

static int rows_json_row(sqlite3_stmt *st, void *ctx)
{
	RowsJson *rj = ctx;
	json_t *o;
	int r;

	r = row_json(st, rj->fields, rj->n_fields, &o);
	if (r < 0)
		return r;
	return json_array_append_new(rj->list, o) < 0 ? -ENOMEM : 0;
}

/* Adds the alert's deliveries, attempts and calls to its item. */
static int alert_item_complete(Store *s, json_t *item)
{
	const char *id = json_string_value(json_object_get(item, "id"));

	for (size_t l = 0; l < ELEMENTSOF(alert_lists); l++) {
		sqlite3_stmt *st = stmt(s, alert_lists[l].sql);
		RowsJson ctx = {.list = json_array(),
		                .fields = alert_lists[l].fields,
		                .n_fields = alert_lists[l].n_fields};
		int r;

		if (!st || !ctx.list) {
			json_decref(ctx.list);
			return st ? -ENOMEM : -EIO;
		}
		store_bind_text(st, 1, id);
		r = store_each_row(s, st, "exporting an alert", rows_json_row, &ctx);
		if (r >= 0 && json_object_set_new(item, alert_lists[l].name, ctx.list) < 0)
			r = -ENOMEM;
		else if (r < 0)
			json_decref(ctx.list);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Walks the query (column 0 is the cursor, ?1 the cursor to start after) and gathers items
 * while the compact JSON array of them stays within max_bytes; the first always goes in. */
static int export_rows(Store *s, int id, const char *after, const Field *fields, size_t n_fields,
                       int (*complete)(Store *s, json_t *item), size_t max_bytes,
                       json_t **ret_items, char **ret_last)
{
	sqlite3_stmt *st = stmt(s, id);
	json_t *list = json_array();
	const char *last = NULL;
	size_t used = 2; /* [] */
	char *cursor;
	int rc, r = 0;

	if (!st || !list) {
		json_decref(list);
		return st ? -ENOMEM : -EIO;
	}
	store_bind_text(st, 1, after ? after : "");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		bool first = json_array_size(list) == 0;
		json_t *item = NULL;
		size_t size;

		r = row_json(st, fields, n_fields, &item);
		if (r >= 0 && complete)
			r = complete(s, item);
		size = r >= 0 ? json_dumpb(item, NULL, 0, JSON_COMPACT) : 0;
		if (r >= 0 && size == 0)
			r = -ENOMEM;
		if (r < 0) {
			json_decref(item);
			break;
		}
		size += first ? 0 : 1; /* , */
		if (!first && used + size > max_bytes) {
			json_decref(item); /* the next payload's first */
			break;
		}
		if (json_array_append_new(list, item) < 0) {
			r = -ENOMEM;
			break;
		}
		last = json_string_value(json_object_get(item, fields[0].name));
		used += size;
		if (used >= max_bytes)
			break;
	}
	store_stmt_done(st);
	if (r >= 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
		r = store_fail(s, rc, "exporting");
	cursor = r >= 0 ? strdup(last ? last : after ? after : "") : NULL;
	if (r >= 0 && !cursor)
		r = -ENOMEM;
	if (r < 0) {
		json_decref(list);
		return r;
	}
	*ret_items = list;
	*ret_last = cursor;
	return (int)json_array_size(list);
}

int store_export_alerts(Store *s, const char *after_id, size_t max_bytes, json_t **ret_items,
                        char ret_last_id[static 33])
{
	_cleanup_free_ char *last = NULL;
	json_t *items;
	int n;

	n = export_rows(s, SQL_EXPORT_ALERTS, after_id, alert_fields, ELEMENTSOF(alert_fields),
	                alert_item_complete, max_bytes, &items, &last);
	if (n < 0)
		return n;
	/* last is a copy: ret_last_id may be the after_id that was bound above */
	snprintf(ret_last_id, 33, "%s", last);
	*ret_items = items;
	return n;
}

int store_export_dedupe(Store *s, const char *after_key, size_t max_bytes, json_t **ret_items,
                        char **ret_last_key)
{
	return export_rows(s, SQL_EXPORT_DEDUPE, after_key, dedupe_fields,
	                   ELEMENTSOF(dedupe_fields), NULL, max_bytes, ret_items, ret_last_key);
}

int store_export_inbox(Store *s, const char *after_key, size_t max_bytes, json_t **ret_items,
                       char **ret_last_key)
{
	return export_rows(s, SQL_EXPORT_INBOX, after_key, inbox_fields, ELEMENTSOF(inbox_fields),
	                   NULL, max_bytes, ret_items, ret_last_key);
}

/* Items come from the peer: every field is checked before anything is written. Integers are
 * never negative; unknown keys are ignored, for the next protocol version. */
static bool item_valid(json_t *o, const Field *fields, size_t n_fields)
{
	if (!json_is_object(o))
		return false;
	for (size_t i = 0; i < n_fields; i++) {
		json_t *v = json_object_get(o, fields[i].name);

		if (json_is_null(v) &&
		    (fields[i].type == FIELD_TEXT_OR_NULL || fields[i].type == FIELD_INT_OR_NULL))
			continue;
		if (field_is_int(fields[i].type) ? !json_is_integer(v) || json_integer_value(v) < 0
		                                 : !json_is_string(v))
			return false;
	}
	return true;
}

static const char *item_text(json_t *o, const char *name)
{
	return json_string_value(json_object_get(o, name));
}

/* 0 for null. */
static uint64_t item_u64(json_t *o, const char *name)
{
	return (uint64_t)json_integer_value(json_object_get(o, name));
}

/* Binds fields[0..n_fields) of a checked item to ?first... */
static void bind_item(sqlite3_stmt *st, int first, json_t *o, const Field *fields, size_t n_fields)
{
	for (size_t i = 0; i < n_fields; i++) {
		json_t *v = json_object_get(o, fields[i].name);
		int at = first + (int)i;

		if (json_is_string(v))
			store_bind_text(st, at, json_string_value(v));
		else if (json_is_integer(v))
			sqlite3_bind_int64(st, at, (sqlite3_int64)json_integer_value(v));
		else
			sqlite3_bind_null(st, at);
	}
}

/* Unlike delivery_state_from_string(), refuses what it does not know. */
static int delivery_state_parse(const char *s)
{
	for (int i = 0; i < _DELIVERY_STATE_MAX; i++)
		if (s && streq(s, delivery_state_table[i]))
			return i;
	return -EINVAL;
}

static int alert_item_check(json_t *item)
{
	json_t *e;
	size_t i;

	if (!item_valid(item, alert_fields, ELEMENTSOF(alert_fields)) ||
	    !id_is_valid(item_text(item, "id")))
		return -EINVAL;
	for (size_t l = 0; l < ELEMENTSOF(alert_lists); l++) {
		json_t *list = json_object_get(item, alert_lists[l].name);

		if (!json_is_array(list))
			return -EINVAL;
		json_array_foreach(list, i, e)
		{
			if (!item_valid(e, alert_lists[l].fields, alert_lists[l].n_fields) ||
			    (alert_lists[l].fields[0].name[0] == 't' && !*item_text(e, "to")))
				return -EINVAL;
		}
	}
	json_array_foreach(json_object_get(item, "dl"), i, e)
	{
		const char *kind = item_text(e, "kind");

		if (delivery_state_parse(item_text(e, "state")) < 0 ||
		    !(streq(kind, "to") || streq(kind, "copy")))
			return -EINVAL;
	}
	return 0;
}

/* What the merge compares before and after, to tell whether the alert's summary changed. */
typedef struct AlertSummary {
	bool exists, final, has_final_at;
	char state[16];
	uint64_t final_at, accepted_at;
} AlertSummary;

static int alert_summary(Store *s, const char *id, AlertSummary *ret)
{
	sqlite3_stmt *st = stmt(s, SQL_MERGE_ALERT_GET);
	AlertSummary a = {0};
	int rc;

	if (!st)
		return -EIO;
	store_bind_text(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		a.exists = true;
		snprintf(a.state, sizeof(a.state), "%s", sqlite3_column_text(st, 0));
		a.final = sqlite3_column_int(st, 1) != 0;
		a.has_final_at = sqlite3_column_type(st, 2) != SQLITE_NULL;
		a.final_at = (uint64_t)sqlite3_column_int64(st, 2);
		a.accepted_at = (uint64_t)sqlite3_column_int64(st, 3);
	}
	store_stmt_done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_fail(s, rc, "reading an alert to merge");
	*ret = a;
	return 0;
}

static bool alert_summary_equal(const AlertSummary *a, const AlertSummary *b)
{
	return a->exists == b->exists && a->final == b->final &&
	       a->has_final_at == b->has_final_at && a->final_at == b->final_at &&
	       streq(a->state, b->state);
}

/* A delivery's place in the join: the state's rank first (delivered > sent > failed > expired >
 * sending > queued), then a tie-break between equal states that both nodes make alike: a queued
 * delivery keeps its later retry, a sending one the (node, modem) that sorts greater. */
typedef struct DeliveryRow {
	uint64_t round; /* a later round (an escalation paging the number again) wins whole */
	DeliveryState state;
	uint64_t next_try_at;
	const char *node, *modem;
} DeliveryRow;

/* NULL sorts first. */
static int strcmp_null(const char *a, const char *b)
{
	if (!a || !b)
		return (a != NULL) - (b != NULL);
	return strcmp(a, b);
}

static int cmp_u64(uint64_t a, uint64_t b)
{
	return (a > b) - (a < b);
}

static int delivery_row_cmp(const DeliveryRow *a, const DeliveryRow *b)
{
	int c = cmp_u64(a->round, b->round);

	if (c == 0)
		c = delivery_state_rank(a->state) - delivery_state_rank(b->state);
	if (c == 0 && a->state == DELIVERY_QUEUED)
		c = cmp_u64(a->next_try_at, b->next_try_at);
	if (c == 0)
		c = strcmp_null(a->node, b->node);
	if (c == 0)
		c = strcmp_null(a->modem, b->modem);
	if (c == 0)
		c = cmp_u64(a->next_try_at, b->next_try_at);
	return c;
}

/* The row that wins the comparison is kept whole; permanent failures only grow. */
static int merge_delivery(Store *s, const char *alert_id, json_t *d)
{
	sqlite3_stmt *st = stmt(s, SQL_MERGE_DELIVERY_GET);
	DeliveryRow remote = {.state = (DeliveryState)delivery_state_parse(item_text(d, "state")),
	                      .next_try_at = item_u64(d, "next"),
	                      .node = item_text(d, "node"),
	                      .modem = item_text(d, "modem"),
	                      .round = item_u64(d, "round")},
	            local;
	uint64_t permanent = item_u64(d, "pf"), local_permanent;
	bool wins;
	int rc, r;

	if (!st)
		return -EIO;
	store_bind_text(st, 1, alert_id);
	store_bind_text(st, 2, item_text(d, "to"));
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		store_stmt_done(st);
		if (rc != SQLITE_DONE)
			return store_fail(s, rc, "reading a delivery to merge");
		st = stmt(s, SQL_MERGE_DELIVERY_INSERT);
		if (!st)
			return -EIO;
		store_bind_text(st, 1, alert_id);
		bind_item(st, 2, d, delivery_fields, ELEMENTSOF(delivery_fields));
		r = store_step_done(s, st, "merging a delivery");
		return r < 0 ? r : sqlite3_changes(s->db) > 0;
	}
	local = (DeliveryRow){
	        .state = delivery_state_from_string((const char *)sqlite3_column_text(st, 0)),
	        .next_try_at = (uint64_t)sqlite3_column_int64(st, 1),
	        .node = (const char *)sqlite3_column_text(st, 2),
	        .modem = (const char *)sqlite3_column_text(st, 3),
	        .round = (uint64_t)sqlite3_column_int64(st, 5)};
	local_permanent = (uint64_t)sqlite3_column_int64(st, 4);
	wins = delivery_row_cmp(&remote, &local) > 0;
	store_stmt_done(st); /* local's strings end here */

	if (wins) {
		r = delivery_set(s, alert_id, item_text(d, "to"), remote.state, remote.next_try_at,
		                 remote.node, remote.modem,
		                 (unsigned)MAX(permanent, local_permanent));
		if (r >= 0 && remote.round > local.round)
			r = store_delivery_set_round(s, alert_id, item_text(d, "to"), remote.round);
		return r < 0 ? r : 1;
	}
	if (permanent <= local_permanent)
		return 0;
	st = stmt(s, SQL_MERGE_DELIVERY_FAILURES);
	if (!st)
		return -EIO;
	store_bind_text(st, 1, alert_id);
	store_bind_text(st, 2, item_text(d, "to"));
	store_bind_u64(st, 3, permanent);
	r = store_step_done(s, st, "merging permanent failures");
	return r < 0 ? r : 1;
}

/* Attempts are a set; a report known on one side only is taken (on both, the greater). */
static int merge_attempt(Store *s, const char *alert_id, json_t *a)
{
	sqlite3_stmt *st = stmt(s, SQL_ATTEMPT_INSERT);
	const char *report = item_text(a, "report");
	int r, changed;

	if (!st)
		return -EIO;
	store_bind_text(st, 1, alert_id);
	bind_item(st, 2, a, attempt_fields, ELEMENTSOF(attempt_fields) - 1);
	r = store_step_done(s, st, "merging an attempt");
	if (r < 0)
		return r;
	changed = sqlite3_changes(s->db) > 0;
	if (!report)
		return changed;

	st = stmt(s, SQL_MERGE_ATTEMPT_REPORT);
	if (!st)
		return -EIO;
	store_bind_text(st, 1, alert_id);
	bind_item(st, 2, a, attempt_fields, ATTEMPT_KEY_FIELDS);
	store_bind_text(st, 6, report);
	r = store_step_done(s, st, "merging a report");
	if (r < 0)
		return r;
	return changed || sqlite3_changes(s->db) > 0;
}

/* Lists that are sets: an item is inserted unless it is there (1 when it was not). */
static int merge_insert(Store *s, int sql, const char *alert_id, json_t *item, const Field *fields,
                        size_t n_fields)
{
	sqlite3_stmt *st = stmt(s, sql);
	int r;

	if (!st)
		return -EIO;
	store_bind_text(st, 1, alert_id);
	bind_item(st, 2, item, fields, n_fields);
	r = store_step_done(s, st, "merging an alert's list");
	return r < 0 ? r : sqlite3_changes(s->db) > 0;
}

static int merge_history(Store *s, const char *alert_id, json_t *h)
{
	return merge_insert(s, SQL_HISTORY_INSERT, alert_id, h, history_fields,
	                    ELEMENTSOF(history_fields));
}

static int merge_call(Store *s, const char *alert_id, json_t *c)
{
	return merge_insert(s, SQL_CALL_INSERT, alert_id, c, call_fields, ELEMENTSOF(call_fields));
}

int store_merge_alert(Store *s, json_t *item)
{
	static int (*const merge_list[])(Store *, const char *, json_t *) = {
	        merge_delivery, merge_attempt, merge_call, merge_history};
	AlertSummary before, after;
	sqlite3_stmt *st;
	const char *id;
	uint64_t at;
	int r, changed = 0;

	_Static_assert(ELEMENTSOF(merge_list) == ELEMENTSOF(alert_lists), "one merge a list");
	r = alert_item_check(item);
	if (r < 0)
		return r;
	id = item_text(item, "id");
	r = alert_summary(s, id, &before);
	if (r < 0)
		return r;

	if (!before.exists) {
		st = stmt(s, SQL_ALERT_INSERT);
		if (!st)
			return -EIO;
		bind_item(st, 1, item, alert_fields, ALERT_INSERT_FIELDS);
		r = store_step_done(s, st, "merging an alert");
		if (r < 0)
			return r;
		s->open_alerts++; /* inserted open: alert_refresh() below settles it */
		changed = 1;
	}
	if (!json_is_null(json_object_get(item, "ack_at"))) {
		st = stmt(s, SQL_MERGE_ACK);
		if (!st)
			return -EIO;
		store_bind_text(st, 1, id);
		bind_item(st, 2, item, alert_fields + ALERT_ACK_FIELDS, 3);
		r = store_step_done(s, st, "merging an acknowledgment");
		if (r < 0)
			return r;
		if (sqlite3_changes(s->db) > 0)
			changed = 1;
	}
	st = stmt(s, SQL_MERGE_ESCALATION);
	if (!st)
		return -EIO;
	store_bind_text(st, 1, id);
	bind_item(st, 2, item, alert_fields + ALERT_ESC_FIELDS, 2);
	r = store_step_done(s, st, "merging an escalation");
	if (r < 0)
		return r;
	if (sqlite3_changes(s->db) > 0)
		changed = 1;
	if (!json_is_null(json_object_get(item, "ack_at"))) {
		r = escalation_stop(s, id); /* acknowledged on the other side */
		if (r < 0)
			return r;
	}
	for (size_t l = 0; l < ELEMENTSOF(alert_lists); l++) {
		json_t *e;
		size_t i;

		json_array_foreach(json_object_get(item, alert_lists[l].name), i, e)
		{
			r = merge_list[l](s, id, e);
			if (r < 0)
				return r;
			if (r > 0)
				changed = 1;
		}
	}

	at = MAX(item_u64(item, "fin"), before.has_final_at ? before.final_at : 0);
	at = MAX(at, before.exists ? before.accepted_at : item_u64(item, "acc"));
	r = store_alert_refresh(s, id, at);
	if (r < 0)
		return r;
	r = alert_summary(s, id, &after);
	if (r < 0)
		return r;
	return changed || !alert_summary_equal(&before, &after);
}

int store_merge_dedupe(Store *s, json_t *item)
{
	sqlite3_stmt *st;
	int r;

	if (!item_valid(item, dedupe_fields, ELEMENTSOF(dedupe_fields)) ||
	    !id_is_valid(item_text(item, "alert_id")))
		return -EINVAL;
	st = stmt(s, SQL_MERGE_DEDUPE);
	if (!st)
		return -EIO;
	bind_item(st, 1, item, dedupe_fields, ELEMENTSOF(dedupe_fields));
	r = store_step_done(s, st, "merging a dedupe key");
	return r < 0 ? r : sqlite3_changes(s->db) > 0;
}

int store_merge_inbox(Store *s, json_t *item)
{
	size_t n_fields = ELEMENTSOF(inbox_fields);
	sqlite3_stmt *st;
	int r;

	/* A peer before schema 6 sends no "quarantine" (the last field): a received SMS. */
	if (json_is_object(item) && !json_object_get(item, "quarantine"))
		n_fields--;
	if (!item_valid(item, inbox_fields, n_fields))
		return -EINVAL;
	st = stmt(s, SQL_INBOX_INSERT);
	if (!st)
		return -EIO;
	bind_item(st, 1, item, inbox_fields, ELEMENTSOF(inbox_fields));
	r = store_step_done(s, st, "merging a received SMS");
	return r < 0 ? r : sqlite3_changes(s->db) > 0;
}
