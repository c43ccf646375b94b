/* store-internal: what the store's source files share; private to the store.
 *
 * store.c holds the alerts, deliveries and the rejoin export/merge; store-oncall.c the on-call
 * overrides. Statements are prepared once and kept: store.c's by index, the others by their
 * (static) SQL text through store_cached(). */
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
};

DEFINE_TRIVIAL_CLEANUP_FUNC(sqlite3_stmt, sqlite3_finalize)

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
