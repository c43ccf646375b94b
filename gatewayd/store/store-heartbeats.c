/* store-heartbeats: the dead-man monitors of [heartbeat NAME]: when each was last pinged, and the
 * last deadline that fired its alert. Both times only grow, so a ping or a firing applied twice,
 * or merged from a peer, changes nothing more. */
#include "store-internal.h"

int store_heartbeat_put(Store *s, const char *name, uint64_t last_at, uint64_t missed_at)
{
	sqlite3_stmt *st = store_stmt(s, SQL_HEARTBEAT_PUT);
	int r;

	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, name);
	store_bind_u64(st, 2, last_at);
	store_bind_u64(st, 3, missed_at);
	r = store_step_done(s, st, "recording a heartbeat");
	return r < 0 ? r : sqlite3_changes(s->db) > 0;
}

int store_heartbeat_get(Store *s, const char *name, uint64_t *ret_last_at, uint64_t *ret_missed_at)
{
	static const char sql[] = "SELECT last_at, missed_at FROM heartbeats WHERE name = ?1";
	sqlite3_stmt *st = store_cached(s, sql);
	int rc;

	*ret_last_at = *ret_missed_at = 0;
	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, name);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ret_last_at = (uint64_t)sqlite3_column_int64(st, 0);
		*ret_missed_at = (uint64_t)sqlite3_column_int64(st, 1);
	}
	store_stmt_done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_fail(s, rc, "reading a heartbeat");
	return 0;
}
