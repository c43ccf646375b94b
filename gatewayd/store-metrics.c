/* store-metrics: the few figures the metrics file needs beyond status.
 *
 * Each is one aggregate over an index (alerts_accepted for the oldest open alert), cheap enough
 * to run every few seconds on a store of 100,000 alerts. */
#include "store-internal.h"

#include <errno.h>

int store_metrics(Store *s, StoreMetrics *ret)
{
	static const char sql[] = "SELECT (SELECT MIN(accepted_at) FROM alerts WHERE final = 0), "
				  "(SELECT COUNT(*) FROM history WHERE what = 'escalated'), "
				  "(SELECT COUNT(*) FROM alerts WHERE ack_at IS NOT NULL)";
	sqlite3_stmt *st = store_cached(s, sql);
	StoreMetrics m = {0};
	int rc;

	if (!st)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		m.oldest_open_at = (uint64_t)sqlite3_column_int64(st, 0); /* NULL reads as 0 */
		m.escalations = (uint64_t)sqlite3_column_int64(st, 1);
		m.acknowledged = (uint64_t)sqlite3_column_int64(st, 2);
	}
	stmt_done(st);
	if (rc != SQLITE_ROW)
		return store_fail(s, rc, "reading the metrics");
	*ret = m;
	return 0;
}
