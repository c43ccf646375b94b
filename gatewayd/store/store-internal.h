/* store-internal: what the store's source files share; private to the store.
 *
 * store.c opens the database (schema, migrations, transactions) and holds the helpers below;
 * store-alert.c the alerts and deliveries, store-status.c and store-voice.c what is asked of
 * them, store-rejoin.c the export/merge, store-oncall.c and store-escalation.c the on-call rows.
 * Statements are prepared once and kept: the indexed ones (SQL_*, their text in store.c) through
 * store_stmt(), the others by their (static) SQL text through store_cached(). */
#pragma once

#include "store.h"

#include <sqlite3.h>

#include "macro.h"

#define STORE_CACHED_MAX 32

struct Store {
	sqlite3 *db;
	sqlite3_stmt **stmt; /* store.c's statements, by index */
	struct {
		const char *sql; /* compared by address: static strings only */
		sqlite3_stmt *st;
	} cached[STORE_CACHED_MAX];
	uint64_t open_alerts;
	bool in_transaction;
	uint64_t rev;      /* store_rev(): stamps every change to an alert or a dedupe row */
	uint64_t store_id; /* meta.store_id: who this store is, for the peers' rejoin */
};

DEFINE_TRIVIAL_CLEANUP_FUNC(sqlite3_stmt, sqlite3_finalize)

/* The statements kept by index (their SQL text is in store.c), for store_stmt(). */
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
	SQL_MERGE_RESOLVE,
	SQL_SILENCE_PUT,
	SQL_EXPORT_SILENCES,
	SQL_HEARTBEAT_PUT,
	SQL_EXPORT_HEARTBEATS,
	SQL_MERGE_ALERT_ORIGIN,
	SQL_MERGE_DELIVERY_ORIGIN,
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

/* The prepared statement by index, prepared on first use; NULL on error (logged). */
sqlite3_stmt *store_stmt(Store *s, int id);

/* The prepared statement for a static SQL text, prepared on first use; NULL on error (logged). */
sqlite3_stmt *store_cached(Store *s, const char *sql);
/* Logs what failed and returns the matching -errno. */
int store_fail(Store *s, int rc, const char *what);
int store_exec(Store *s, const char *sql);
/* Resets a statement and clears its bindings for the next use. */
void store_stmt_done(sqlite3_stmt *st);
void store_bind_text(sqlite3_stmt *st, int i, const char *v); /* NULL binds NULL */
void store_bind_u64(sqlite3_stmt *st, int i, uint64_t v);
/* Runs a statement that returns no rows, and resets it. */
int store_step_done(Store *s, sqlite3_stmt *st, const char *what);
/* Steps a bound statement through its rows, handing each to row(); row() returns <0 to stop
 * early (that value is returned). Resets the statement in every case. */
int store_each_row(Store *s, sqlite3_stmt *st, const char *what,
                   int (*row)(sqlite3_stmt *st, void *ctx), void *ctx);
/* Runs the cached statement `sql` that writes, with ?1 = a, ?2 = b (text, NULL binds NULL) and
 * ?3 = v: the number of rows it changed, or -errno. */
int store_write_text2_u64(Store *s, const char *sql, const char *what, const char *a, const char *b,
                          uint64_t v);
/* Steps a bound statement that returns one number (a COUNT, a MIN: 0 when NULL or no row), and
 * resets it. */
int store_step_u64(Store *s, sqlite3_stmt *st, const char *what, uint64_t *ret);
/* A row callback's user function and its data, for store_each_row(). */
typedef struct RowCallback {
	void *cb;
	void *userdata;
} RowCallback;
json_t *store_json_time_or_null(uint64_t usec);       /* RFC 3339, or null for 0 */
json_t *store_column_string(sqlite3_stmt *st, int i); /* text, or null */
/* Raises a delivery's round (never lowers it). */
int store_delivery_set_round(Store *s, const char *alert_id, const char *number, uint64_t round);
/* The state a stored text names; "queued" for one it does not know. */
DeliveryState store_delivery_state_from_string(const char *s);
/* How far a delivery got: the alert shows the furthest of its deliveries. */
int store_delivery_state_rank(DeliveryState s);
/* Counts the open alerts again (after a rollback, on open). */
int store_recount(Store *s);
/* Writes a delivery's state and where it stands; the caller refreshes the alert. */
int store_delivery_set(Store *s, const char *alert_id, const char *number, DeliveryState state,
                       uint64_t next_try_at, const char *node, const char *modem,
                       unsigned permanent);
/* Stops an alert's escalation: 1 when the alert was escalating. */
int store_escalation_stop(Store *s, const char *alert_id);
