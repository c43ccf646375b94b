/* store-limits: what a phone number has had lately, for the per-person limits of [limits].
 *
 * Everything here is read from replicated data (attempts, calls, deliveries), so both nodes count
 * alike; the decisions themselves are gateway-limits.c's. */
#include "store-internal.h"

#include <limits.h>

typedef struct Window {
	unsigned seen;
	unsigned want; /* the row whose time to keep, from 0 */
	uint64_t at;
} Window;

static int window_row(sqlite3_stmt *st, void *ctx)
{
	Window *w = ctx;

	if (w->seen++ == w->want)
		w->at = (uint64_t)sqlite3_column_int64(st, 0);
	return 0;
}

/* Counts the rows of `sql` (times, oldest first) for number since `since`; with `count` or more,
 * the number is below its limit again once the (seen - count + 1)-th oldest has left the
 * window. The rows are few (about `count`): the second walk costs less than a statement of its
 * own. */
static int count_window(Store *s, const char *sql, const char *what, const char *number,
                        uint64_t since, unsigned count, uint64_t window, unsigned *ret_seen,
                        uint64_t *ret_room_at)
{
	Window w = {.want = UINT_MAX};

	for (int pass = 0; pass < 2; pass++) {
		sqlite3_stmt *st = store_cached(s, sql);
		int r;

		if (!st)
			return STORE_IO;
		store_bind_text(st, 1, number);
		store_bind_u64(st, 2, since);
		r = store_each_row(s, st, what, window_row, &w);
		if (r < 0)
			return r;
		if (pass == 0) {
			*ret_seen = w.seen;
			*ret_room_at = 0;
			if (count == 0 || w.seen < count)
				return 0;
			w = (Window){.want = w.seen - count};
		}
	}
	*ret_room_at = w.at + window;
	return 0;
}

int store_limit_sent(Store *s, const char *number, uint64_t since, unsigned count, uint64_t window,
                     unsigned *ret_sent, uint64_t *ret_room_at)
{
	static const char sql[] = "SELECT at FROM attempts WHERE number = ?1 AND at > ?2 AND "
	                          "result = 'sent' GROUP BY node, modem, at ORDER BY at";

	return count_window(s, sql, "counting the SMS to a number", number, since, count, window,
	                    ret_sent, ret_room_at);
}

int store_limit_calls(Store *s, const char *number, uint64_t since, unsigned count, uint64_t window,
                      unsigned *ret_calls, uint64_t *ret_room_at)
{
	static const char sql[] = "SELECT at FROM calls WHERE number = ?1 AND at > ?2 "
	                          "GROUP BY node, at ORDER BY at";

	return count_window(s, sql, "counting the calls to a number", number, since, count, window,
	                    ret_calls, ret_room_at);
}

int store_limit_sending(Store *s, const char *number, const char *node, unsigned *ret)
{
	static const char sql[] = "SELECT COUNT(*) FROM deliveries WHERE number = ?1 AND "
	                          "state = 'sending' AND node IS NOT ?2";
	sqlite3_stmt *st = store_cached(s, sql);
	uint64_t n = 0;
	int r;

	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, number);
	store_bind_text(st, 2, node);
	r = store_step_u64(s, st, "counting the SMS on their way to a number", &n);
	*ret = (unsigned)MIN(n, (uint64_t)UINT_MAX);
	return r;
}

int store_delivery_hold(Store *s, const char *alert_id, const char *number, uint64_t until)
{
	static const char sql[] = "UPDATE deliveries SET bundle = 1, next_try_at = "
	                          "MAX(next_try_at, ?3) WHERE alert_id = ?1 AND number = ?2 AND "
	                          "state = 'queued' AND (bundle = 0 OR next_try_at < ?3)";

	return store_write_text2_u64(s, sql, "holding a delivery", alert_id, number, until);
}

int store_oldest_waiting(Store *s, uint64_t *ret_accepted_at)
{
	static const char sql[] = "SELECT MIN(accepted_at) FROM deliveries WHERE state = 'queued' "
	                          "AND bundle = 0";
	sqlite3_stmt *st = store_cached(s, sql);

	*ret_accepted_at = 0;
	if (!st)
		return STORE_IO;
	return store_step_u64(s, st, "finding the oldest waiting delivery", ret_accepted_at);
}

typedef struct ReportScan {
	StoreModemReports *r;
	bool reported_seen;
} ReportScan;

static int report_row(sqlite3_stmt *st, void *ctx)
{
	ReportScan *scan = ctx;
	bool reported = sqlite3_column_int(st, 0) != 0;
	uint64_t at = (uint64_t)sqlite3_column_int64(st, 1);

	scan->r->sent++;
	if (reported) {
		scan->r->reported++;
		if (at > scan->r->last_reported_at)
			scan->r->last_reported_at = at;
		scan->reported_seen = true;
	} else if (!scan->reported_seen) {
		scan->r->missing_in_a_row++;
		scan->r->missing_since = at; /* the rows come newest first */
	}
	return 0;
}

int store_modem_reports(Store *s, const char *node, const char *modem, uint64_t before,
                        unsigned limit, StoreModemReports *ret)
{
	static const char sql[] = "SELECT report IS NOT NULL, at FROM attempts WHERE node = ?1 AND "
	                          "modem = ?2 AND result = 'sent' AND at <= ?3 ORDER BY at DESC "
	                          "LIMIT ?4";
	sqlite3_stmt *st = store_cached(s, sql);
	ReportScan scan = {.r = ret};

	*ret = (StoreModemReports){0};
	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, node);
	store_bind_text(st, 2, modem);
	store_bind_u64(st, 3, before);
	sqlite3_bind_int(st, 4, (int)limit);
	return store_each_row(s, st, "reading a modem's delivery reports", report_row, &scan);
}
