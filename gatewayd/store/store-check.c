/* store-check: what the store says about itself, for the gateway to compare and to wait on.
 *
 * The digest is a hash of the replicated state that matters for delivery: every open alert, its
 * acknowledgment and escalation step, and each of its deliveries' state and round. Two nodes
 * that applied the same changes in the same order compute the same digest at the same point of
 * that order, so a difference means their replicas diverged (a change one of them could not
 * apply, a store edited behind the gateway's back): the gateway repairs that by a state
 * exchange. Open alerts only: purging finished ones is each node's own business, and the cost
 * stays with what is live.
 *
 * The probe is the smallest real write (a row updated, committed and fsync'd): after a commit
 * failed, it tells whether the database takes writes again. */
#include "store-internal.h"

#include <errno.h>
#include <stdio.h>

#include "util.h"

int store_digest(Store *s, char ret[static 33], uint64_t *ret_open)
{
	static const char sql[] =
	        "SELECT a.id, a.ack_at IS NOT NULL, ifnull(a.esc_step, -1), d.number, d.state, "
	        "d.round FROM alerts a JOIN deliveries d ON d.alert_id = a.id WHERE a.final = 0 "
	        "ORDER BY a.id, d.number";
	sqlite3_stmt *st = store_cached(s, sql);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	uint64_t open = 0;
	char last[33] = "";
	FILE *f;
	int rc;

	if (!st)
		return STORE_IO;
	f = open_memstream(&buf, &len);
	if (!f) {
		store_stmt_done(st);
		return -ENOMEM;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 0);

		if (id && strcmp(id, last) != 0) {
			open++;
			snprintf(last, sizeof(last), "%s", id);
		}
		fprintf(f, "%s %d %lld %s %s %lld\n", id ? id : "", sqlite3_column_int(st, 1),
		        (long long)sqlite3_column_int64(st, 2),
		        (const char *)sqlite3_column_text(st, 3),
		        (const char *)sqlite3_column_text(st, 4),
		        (long long)sqlite3_column_int64(st, 5));
	}
	store_stmt_done(st);
	if (fclose(f) != 0)
		return -ENOMEM;
	if (rc != SQLITE_DONE)
		return store_fail(s, rc, "computing the digest");
	hash128_hex(buf ? buf : "", len, ret);
	if (ret_open)
		*ret_open = open;
	return 0;
}

int store_probe(Store *s, uint64_t now)
{
	static const char sql[] = "INSERT INTO tallies VALUES ('probe', ?1) "
	                          "ON CONFLICT(name) DO UPDATE SET n = excluded.n";
	sqlite3_stmt *st;
	int r;

	r = store_begin(s);
	if (r < 0)
		return r;
	st = store_cached(s, sql);
	if (!st) {
		store_rollback(s);
		return STORE_IO;
	}
	store_bind_u64(st, 1, now);
	r = sqlite3_step(st) == SQLITE_DONE ? 0 : STORE_IO;
	store_stmt_done(st);
	if (r < 0) {
		store_rollback(s);
		return r;
	}
	return store_commit(s);
}
