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
 * PRAGMA user_version and migrates forward on open. This file opens the database and holds the
 * schema, its migrations, the transactions and the helpers the other store files share
 * (store-internal.h says which file does what). */
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

#define SCHEMA_VERSION 11
/* How long a write waits for another process's lock (a backup, an operator's sqlite3 shell)
 * before the commit fails with STORE_LOCKED and the gateway retries it later: short, since the loop
 * waits with it. */
#define STORE_BUSY_TIMEOUT_MS 200
#define STRINGIFY_(x)         #x
#define STRINGIFY(x)          STRINGIFY_(x)

static const char *const sql_text[_SQL_MAX] = {
        [SQL_DEDUPE_FIND] = "SELECT alert_id, first_at FROM dedupe WHERE key = ?1",
        [SQL_DEDUPE_SET] = "INSERT OR REPLACE INTO dedupe(key, alert_id, first_at, rev) "
                           "VALUES (?1, ?2, ?3, store_rev())",
        [SQL_ALERT_INSERT] = "INSERT OR IGNORE INTO alerts(id, key, text, priority, source, node, "
                             "accepted_at, expires_at, state, final, esc_step, esc_next_at, rev) "
                             "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued', 0, ?9, ?10, "
                             "store_rev())",
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
        /* Only when it changes: a write that changes nothing would stamp a revision. */
        [SQL_ALERT_SET_STATE] = "UPDATE alerts SET state = ?2, final = ?3, final_at = ?4 "
                                "WHERE id = ?1 AND (state IS NOT ?2 OR final IS NOT ?3 "
                                "OR final_at IS NOT ?4)",
        [SQL_ALERT_FINAL] = "SELECT final, esc_next_at IS NOT NULL, res_at IS NOT NULL, "
                            "silence IS NOT NULL FROM alerts WHERE id = ?1",
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
                "ack_via, ack_at, expires_at, esc_step, esc_next_at, res_by, res_via, res_at, "
                "silence FROM alerts WHERE id = ?1",
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
        [SQL_NODES] = "SELECT name, nodeid, last_seen, store_id, since FROM nodes ORDER BY name",
        /* The export SELECTs list their columns in the order of the field tables further down. */
        [SQL_EXPORT_ALERTS] =
                "SELECT id, key, text, priority, source, node, accepted_at, "
                "expires_at, final_at, ack_by, ack_via, ack_at, esc_step, esc_next_at, "
                "res_by, res_via, res_at, esc_timer, silence FROM alerts WHERE id > ?1 "
                "AND rev >= ?2 ORDER BY id",
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
                              "AND rev >= ?2 ORDER BY key",
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
        /* An alert both sides made on their own (a reply or all-clear, whose id derives from
         * what it answers) keeps the earlier origin; a submitted alert has one already. */
        [SQL_MERGE_ALERT_ORIGIN] = "UPDATE alerts SET accepted_at = ?2, expires_at = ?3, "
                                   "node = ?4 WHERE id = ?1 AND (?2, ?4) < (accepted_at, node)",
        [SQL_MERGE_DELIVERY_ORIGIN] = "UPDATE deliveries SET accepted_at = ?3 WHERE "
                                      "alert_id = ?1 AND number = ?2 AND accepted_at > ?3",
        /* The earlier resolve wins, as the earlier acknowledgment does. */
        [SQL_MERGE_RESOLVE] = "UPDATE alerts SET res_by = ?2, res_via = ?3, res_at = ?4 "
                              "WHERE id = ?1 AND (res_at IS NULL OR "
                              "(?4, ifnull(?2, -1), ifnull(?3, -1)) < "
                              "(res_at, ifnull(res_by, -1), ifnull(res_via, -1)))",
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
        [SQL_MERGE_DEDUPE] = "INSERT INTO dedupe(key, alert_id, first_at, rev) "
                             "VALUES (?1, ?2, ?3, store_rev()) "
                             "ON CONFLICT(key) DO UPDATE SET alert_id = excluded.alert_id, "
                             "first_at = excluded.first_at, rev = excluded.rev "
                             "WHERE (excluded.first_at, excluded.alert_id) < "
                             "(dedupe.first_at, dedupe.alert_id)",
        /* The further step wins; at the same step the earlier deadline (a step's timer starts
         * when its page leaves, which one side may have seen first), a stopped one, NULL,
         * earliest of all; an acknowledged or resolved alert escalates no more. */
        [SQL_MERGE_ESCALATION] =
                "UPDATE alerts SET esc_step = ?2, esc_next_at = "
                "CASE WHEN ack_at IS NULL AND res_at IS NULL THEN ?3 END, esc_timer = ?4 "
                "WHERE id = ?1 AND ?2 IS NOT NULL AND (esc_step IS NULL OR ?2 > esc_step OR "
                "(?2 = esc_step AND ((?3 IS NULL) * 2 + (?4 IS ?2), -ifnull(?3, 0)) > "
                "((esc_next_at IS NULL) * 2 + (esc_timer IS esc_step), -ifnull(esc_next_at, 0))))",
        /* A silence once, or its earlier removal (a merge of a row both sides have); the
         * columns are those of SQL_EXPORT_SILENCES. */
        [SQL_SILENCE_PUT] = "INSERT INTO silences(id, field, value, except_critical, created_at, "
                            "until, set_by, reason, node, removed_at, removed_by) VALUES (?1, "
                            "?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT(id) DO "
                            "UPDATE SET removed_at = excluded.removed_at, removed_by = "
                            "excluded.removed_by WHERE excluded.removed_at IS NOT NULL AND "
                            "(silences.removed_at IS NULL OR (excluded.removed_at, "
                            "excluded.removed_by) < (silences.removed_at, silences.removed_by))",
        [SQL_EXPORT_SILENCES] = "SELECT id, field, value, except_critical, created_at, until, "
                                "set_by, reason, node, removed_at, removed_by FROM silences "
                                "WHERE id > ?1 ORDER BY id",
        /* Both times only grow: a ping once, a deadline fired once, a merge keeps the later. */
        [SQL_HEARTBEAT_PUT] =
                "INSERT INTO heartbeats(name, last_at, missed_at) VALUES (?1, ?2, ?3) "
                "ON CONFLICT(name) DO UPDATE SET last_at = MAX(last_at, "
                "excluded.last_at), missed_at = MAX(missed_at, excluded.missed_at) "
                "WHERE excluded.last_at > last_at OR excluded.missed_at > missed_at",
        [SQL_EXPORT_HEARTBEATS] = "SELECT name, last_at, missed_at FROM heartbeats WHERE name > ?1 "
                                  "ORDER BY name",
        [SQL_EXPORT_HISTORY] = "SELECT at, what, node, detail FROM history WHERE alert_id = ?1 "
                               "ORDER BY at, what, node, detail",
        [SQL_HISTORY_INSERT] = "INSERT OR IGNORE INTO history(alert_id, at, what, node, detail) "
                               "VALUES (?1, ?2, ?3, ?4, ?5)",
};

static const char *const delivery_state_table[_DELIVERY_STATE_MAX] = {
        [DELIVERY_QUEUED] = "queued",       [DELIVERY_SENDING] = "sending",
        [DELIVERY_SENT] = "sent",           [DELIVERY_FAILED] = "failed",
        [DELIVERY_EXPIRED] = "expired",     [DELIVERY_DELIVERED] = "delivered",
        [DELIVERY_CANCELLED] = "cancelled",
};

const char *store_delivery_state_to_string(DeliveryState s)
{
	return s < _DELIVERY_STATE_MAX ? delivery_state_table[s] : "unknown";
}

DeliveryState store_delivery_state_from_string(const char *s)
{
	for (int i = 0; i < _DELIVERY_STATE_MAX; i++)
		if (s && streq(s, delivery_state_table[i]))
			return (DeliveryState)i;
	return DELIVERY_QUEUED;
}

bool store_delivery_state_is_final(DeliveryState s)
{
	return s == DELIVERY_SENT || s == DELIVERY_FAILED || s == DELIVERY_EXPIRED ||
	       s == DELIVERY_DELIVERED || s == DELIVERY_CANCELLED;
}

/* How far a delivery got: the alert shows the furthest of its deliveries. */
int store_delivery_state_rank(DeliveryState s)
{
	static const int rank[_DELIVERY_STATE_MAX] = {
	        [DELIVERY_QUEUED] = 0,    [DELIVERY_SENDING] = 1, [DELIVERY_EXPIRED] = 2,
	        [DELIVERY_CANCELLED] = 3, [DELIVERY_FAILED] = 4,  [DELIVERY_SENT] = 5,
	        [DELIVERY_DELIVERED] = 6,
	};
	return rank[s];
}

static int sqlite_to_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:
		return STORE_FULL;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return STORE_READ_ONLY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return STORE_LOCKED;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_NOTFOUND:
		return STORE_NOT_FOUND;
	default:
		return STORE_IO;
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

sqlite3_stmt *store_stmt(Store *s, int id)
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
 * number again re-arms its delivery) and flood bundling (held for one "N alerts: ..." message), the
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

/* v8: resolved alerts (who, how, when; once only like an acknowledgment), found by their key;
 * silences, and the one that held an alert back;
 * the escalation step whose timer started from its page's send (esc_timer = esc_step: the
 * deadline is that send + step_timeout, else the step's backstop). */
static const char schema_v8[] = "ALTER TABLE alerts ADD COLUMN esc_timer INTEGER;"
                                "ALTER TABLE alerts ADD COLUMN silence TEXT;"
                                "CREATE TABLE silences(id TEXT PRIMARY KEY, field TEXT NOT NULL,"
                                " value TEXT NOT NULL, except_critical INTEGER NOT NULL,"
                                " created_at INTEGER NOT NULL, until INTEGER NOT NULL,"
                                " set_by TEXT NOT NULL, reason TEXT NOT NULL, node TEXT NOT NULL,"
                                " removed_at INTEGER, removed_by TEXT) WITHOUT ROWID;"
                                "ALTER TABLE alerts ADD COLUMN res_by TEXT;"
                                "ALTER TABLE alerts ADD COLUMN res_via TEXT;"
                                "ALTER TABLE alerts ADD COLUMN res_at INTEGER;"
                                "CREATE INDEX alerts_key ON alerts(key, accepted_at);";

/* v9: what a phone number had lately, for the per-person limits ([limits]). */
static const char schema_v9[] = "CREATE INDEX attempts_number ON attempts(number, at);"
                                "CREATE INDEX calls_number ON calls(number, at);";

/* v10: dead-man monitors ([heartbeat NAME]): the last ping, and the last deadline that fired. */
static const char schema_v10[] = "CREATE TABLE heartbeats(name TEXT PRIMARY KEY,"
                                 " last_at INTEGER NOT NULL, missed_at INTEGER NOT NULL)"
                                 " WITHOUT ROWID;";

/* v11: a rejoin sends what the other node lacks. Every alert (with what hangs off it) and every
 * dedupe row carries the store revision of its last change (store_rev(): this node's own
 * counter, not replicated); the nodes table keeps, per node, the identity of its store and the
 * first revision it may not have (nodes.since); meta holds this store's own identity. */
static const char schema_v11[] = "ALTER TABLE alerts ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;"
                                 "ALTER TABLE dedupe ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;"
                                 "ALTER TABLE nodes ADD COLUMN store_id INTEGER NOT NULL"
                                 " DEFAULT 0;"
                                 "ALTER TABLE nodes ADD COLUMN since INTEGER NOT NULL DEFAULT 0;"
                                 "CREATE TABLE meta(name TEXT PRIMARY KEY, n INTEGER NOT NULL)"
                                 " WITHOUT ROWID;"
                                 "INSERT INTO meta VALUES ('store_id',"
                                 " abs(random() % 9007199254740991) + 1);";

/* Per connection (TEMP: not in the file, so that an operator's sqlite3 shell, which has no
 * store_rev(), can still write): a change to an alert, its deliveries, attempts, calls or
 * history stamps the alert with the current revision. Inserts of alerts and dedupe rows carry
 * it in their own statement. */
static const char rev_triggers[] =
        "CREATE TEMP TRIGGER rev_alert AFTER UPDATE ON main.alerts"
        " WHEN NEW.rev IS NOT store_rev() BEGIN"
        " UPDATE alerts SET rev = store_rev() WHERE rowid = NEW.rowid;"
        "END;"
        "CREATE TEMP TRIGGER rev_delivery_insert AFTER INSERT ON main.deliveries BEGIN"
        " UPDATE alerts SET rev = store_rev() WHERE id = NEW.alert_id"
        "  AND rev IS NOT store_rev();"
        "END;"
        "CREATE TEMP TRIGGER rev_delivery_update AFTER UPDATE ON main.deliveries BEGIN"
        " UPDATE alerts SET rev = store_rev() WHERE id = NEW.alert_id"
        "  AND rev IS NOT store_rev();"
        "END;"
        "CREATE TEMP TRIGGER rev_attempt_insert AFTER INSERT ON main.attempts BEGIN"
        " UPDATE alerts SET rev = store_rev() WHERE id = NEW.alert_id"
        "  AND rev IS NOT store_rev();"
        "END;"
        "CREATE TEMP TRIGGER rev_attempt_update AFTER UPDATE ON main.attempts BEGIN"
        " UPDATE alerts SET rev = store_rev() WHERE id = NEW.alert_id"
        "  AND rev IS NOT store_rev();"
        "END;"
        "CREATE TEMP TRIGGER rev_call_insert AFTER INSERT ON main.calls BEGIN"
        " UPDATE alerts SET rev = store_rev() WHERE id = NEW.alert_id"
        "  AND rev IS NOT store_rev();"
        "END;"
        "CREATE TEMP TRIGGER rev_call_update AFTER UPDATE ON main.calls BEGIN"
        " UPDATE alerts SET rev = store_rev() WHERE id = NEW.alert_id"
        "  AND rev IS NOT store_rev();"
        "END;"
        "CREATE TEMP TRIGGER rev_history_insert AFTER INSERT ON main.history BEGIN"
        " UPDATE alerts SET rev = store_rev() WHERE id = NEW.alert_id"
        "  AND rev IS NOT store_rev();"
        "END;"
        "CREATE TEMP TRIGGER rev_dedupe AFTER UPDATE ON main.dedupe"
        " WHEN NEW.rev IS NOT store_rev() BEGIN"
        " UPDATE dedupe SET rev = store_rev() WHERE key = NEW.key;"
        "END;";

static void sql_store_rev(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	Store *s = sqlite3_user_data(ctx);

	sqlite3_result_int64(ctx, (sqlite3_int64)s->rev);
}

/* The revision counter goes on from above every stamp in the file; the store's identity. */
static int store_rev_open(Store *s)
{
	sqlite3_stmt *st;
	uint64_t top = 0;
	int r;

	if (sqlite3_create_function_v2(s->db, "store_rev", 0, SQLITE_UTF8, s, sql_store_rev, NULL,
	                               NULL, NULL) != SQLITE_OK)
		return store_fail(s, sqlite3_errcode(s->db), "registering store_rev()");
	st = store_cached(s, "SELECT max(ifnull((SELECT max(rev) FROM alerts), 0),"
	                     " ifnull((SELECT max(rev) FROM dedupe), 0))");
	r = st ? store_step_u64(s, st, "reading the store revision", &top) : STORE_IO;
	if (r < 0)
		return r;
	s->rev = top + 1;
	st = store_cached(s, "SELECT n FROM meta WHERE name = 'store_id'");
	r = st ? store_step_u64(s, st, "reading the store identity", &s->store_id) : STORE_IO;
	if (r < 0)
		return r;
	return store_exec(s, rev_triggers);
}

uint64_t store_rev(const Store *s)
{
	return s->rev;
}

void store_rev_next(Store *s)
{
	s->rev++;
}

uint64_t store_id(const Store *s)
{
	return s->store_id;
}

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
	if (version < 8) {
		r = store_exec(s, schema_v8);
		if (r < 0)
			goto fail;
	}
	if (version < 9) {
		r = store_exec(s, schema_v9);
		if (r < 0)
			goto fail;
	}
	if (version < 10) {
		r = store_exec(s, schema_v10);
		if (r < 0)
			goto fail;
	}
	if (version < 11) {
		r = store_exec(s, schema_v11);
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
	/* Only the loop's thread touches the store: no SQLite mutex per call, no global memory
	 * statistics (a mutex per allocation). The configuration holds if SQLite is not yet
	 * initialized in this process, and is only an optimization if it is. */
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	rc = sqlite3_open_v2(path, &s->db,
	                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
	                     NULL);
	if (rc != SQLITE_OK) {
		r = log_error_errno(sqlite_to_errno(rc), "Cannot open store '%s': %s", path,
		                    s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
		store_close(s);
		return r;
	}
	sqlite3_extended_result_codes(s->db, 1);
	/* A lock held by another process is a delay: wait a little, then fail the commit with
	 * STORE_LOCKED so that the gateway retries it from its loop (gateway-apply.c). */
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
	/* Statement journals (the undo of one statement inside a transaction) in memory: on disk
	 * they spilled at 64 KiB into a temporary file, created, written a page per syscall and
	 * deleted every few commits, and a full or read-only temporary directory failed the commit.
	 * They hold the pages one statement changes: bounded by the size of a batch. */
	if (r >= 0)
		r = store_exec(s, "PRAGMA temp_store = MEMORY");
	if (r >= 0)
		r = store_migrate(s);
	if (r >= 0)
		r = store_recount(s);
	if (r >= 0)
		r = store_rev_open(s);
	/* The ids one step of the purge works on (store_purge()); private to this connection. */
	if (r >= 0)
		r = store_exec(s, "CREATE TEMP TABLE IF NOT EXISTS purge_ids(id TEXT PRIMARY KEY)");
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

int store_end(Store *s, int r)
{
	if (r < 0) {
		store_rollback(s);
		return r;
	}
	return store_commit(s);
}

void store_rollback(Store *s)
{
	if (sqlite3_get_autocommit(s->db) == 0)
		store_exec(s, "ROLLBACK");
	s->in_transaction = false;
	store_recount(s);
}

/* Steps a bound statement through its rows, handing each to row(); row() returns <0 to stop
 * early (that value is returned). Resets the statement in every case. */
int store_write_text2_u64(Store *s, const char *sql, const char *what, const char *a, const char *b,
                          uint64_t v)
{
	sqlite3_stmt *st = store_cached(s, sql);
	int r;

	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, a);
	store_bind_text(st, 2, b);
	store_bind_u64(st, 3, v);
	r = store_step_done(s, st, what);
	return r < 0 ? r : sqlite3_changes(s->db);
}

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
