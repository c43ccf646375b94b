/* store-metrics: the few figures the metrics file needs beyond status.
 *
 * Each is one look-up: the oldest open alert through the alerts_accepted index, the rest from
 * the tallies the store's triggers keep (schema v6), so the cost does not grow with history. */
#include "store-internal.h"

#include <errno.h>

int store_metrics(Store *s, StoreMetrics *ret)
{
	static const char sql[] = "SELECT (SELECT MIN(accepted_at) FROM alerts WHERE final = 0), "
	                          "(SELECT n FROM tallies WHERE name = 'escalated'), "
	                          "(SELECT n FROM tallies WHERE name = 'acked')";
	sqlite3_stmt *st = store_cached(s, sql);
	StoreMetrics m = {0};
	int rc;

	if (!st)
		return STORE_IO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		m.oldest_open_at = (uint64_t)sqlite3_column_int64(st, 0); /* NULL reads as 0 */
		m.escalations = (uint64_t)sqlite3_column_int64(st, 1);
		m.acknowledged = (uint64_t)sqlite3_column_int64(st, 2);
	}
	store_stmt_done(st);
	if (rc != SQLITE_ROW)
		return store_fail(s, rc, "reading the metrics");
	*ret = m;
	return 0;
}
