/* store-escalation: the on-call rows of the store: escalation steps, what an SMS reply may
 * acknowledge, the gateway's own replies, and flood bundles.
 *
 * Like everything the store writes, these are applied from replicated changes with their own
 * timestamps, so every node takes the same decisions at the same point of the agreed order. */
#include "store-internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

static int due_row(sqlite3_stmt *st, void *ctx)
{
	RowCallback *rc = ctx;
	int (*cb)(const char *, unsigned, void *) = rc->cb;

	return cb((const char *)sqlite3_column_text(st, 0), (unsigned)sqlite3_column_int(st, 1),
	          rc->userdata);
}

int store_escalations_due(Store *s, uint64_t now, size_t limit,
                          int (*cb)(const char *alert_id, unsigned step, void *userdata),
                          void *userdata)
{
	static const char sql[] = "SELECT id, esc_step FROM alerts WHERE esc_next_at IS NOT NULL "
	                          "AND esc_next_at <= ?1 ORDER BY esc_next_at LIMIT ?2";
	sqlite3_stmt *st = store_cached(s, sql);
	RowCallback ctx = {.cb = (void *)cb, .userdata = userdata};

	if (!st)
		return STORE_IO;
	store_bind_u64(st, 1, now);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
	return store_each_row(s, st, "listing due escalations", due_row, &ctx);
}

int store_next_escalation(Store *s, uint64_t after, uint64_t *ret)
{
	static const char sql[] = "SELECT MIN(esc_next_at) FROM alerts WHERE esc_next_at > ?1";
	sqlite3_stmt *st = store_cached(s, sql);

	if (!st)
		return STORE_IO;
	store_bind_u64(st, 1, after);
	return store_step_u64(s, st, "finding the next escalation", ret);
}

/* Runs one of page()'s statements: ?1 alert, ?2 number, ?3 time, ?4 step. */
static int page_step(Store *s, const char *sql, const char *alert_id, const char *number,
                     unsigned step, uint64_t at, const char *what)
{
	sqlite3_stmt *st = store_cached(s, sql);

	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, alert_id);
	store_bind_text(st, 2, number);
	store_bind_u64(st, 3, at);
	sqlite3_bind_int(st, 4, (int)step);
	return store_step_done(s, st, what);
}

/* Queues the page of one step: a new delivery, or the number's earlier one again. */
static int page(Store *s, const char *alert_id, const char *number, unsigned step, uint64_t at,
                bool *ret_paged)
{
	static const char insert_sql[] =
	        "INSERT OR IGNORE INTO deliveries(alert_id, number, kind, seq, state, priority, "
	        "accepted_at, next_try_at, round) SELECT ?1, ?2, 'to', "
	        "(SELECT ifnull(MAX(seq), -1) + 1 FROM deliveries WHERE alert_id = ?1), 'queued', "
	        "priority, ?3, ?3, ?4 FROM alerts WHERE id = ?1";
	/* Still queued or sending from an earlier step: that page is under way already. */
	static const char rearm_sql[] =
	        "UPDATE deliveries SET state = 'queued', next_try_at = ?3, round = ?4, "
	        "permanent_failures = 0 WHERE alert_id = ?1 AND number = ?2 AND round < ?4 AND "
	        "state NOT IN ('queued', 'sending')";
	int r;

	r = page_step(s, insert_sql, alert_id, number, step, at, "paging a step");
	if (r < 0)
		return r;
	if (sqlite3_changes(s->db) > 0) {
		*ret_paged = true;
		return 0;
	}
	r = page_step(s, rearm_sql, alert_id, number, step, at, "paging a step again");
	if (r < 0)
		return r;
	*ret_paged = sqlite3_changes(s->db) > 0;
	if (!*ret_paged)
		return store_delivery_set_round(s, alert_id, number, step);
	return 0;
}

int store_escalation_page_left(Store *s, const char *alert_id, const char *number,
                               uint64_t deadline)
{
	/* The first page of the step to leave replaces the backstop, even with a later deadline;
	 * another (a second recipient, a second send) only brings it forward. */
	static const char sql[] =
	        "UPDATE alerts SET esc_next_at = ?3, esc_timer = esc_step WHERE id = ?1 AND "
	        "esc_next_at IS NOT NULL AND (esc_timer IS NOT esc_step OR esc_next_at > ?3) AND "
	        "esc_step = (SELECT round FROM deliveries WHERE alert_id = ?1 AND number = ?2 AND "
	        "kind = 'to')";
	int r = store_write_text2_u64(s, sql, "starting a step's timer", alert_id, number,
	                              deadline);

	return r < 0 ? r : r > 0;
}

int store_alert_escalation(Store *s, const char *alert_id, unsigned *ret_step, bool *ret_active)
{
	static const char sql[] = "SELECT esc_step, esc_next_at IS NOT NULL FROM alerts "
	                          "WHERE id = ?1";
	sqlite3_stmt *st = store_cached(s, sql);
	int rc, r = STORE_NOT_FOUND;

	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, alert_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		r = sqlite3_column_type(st, 0) != SQLITE_NULL;
		*ret_step = (unsigned)sqlite3_column_int(st, 0);
		*ret_active = sqlite3_column_int(st, 1) != 0;
	} else if (rc != SQLITE_DONE)
		r = store_fail(s, rc, "reading an escalation");
	store_stmt_done(st);
	return r;
}

int store_escalate(Store *s, const char *alert_id, unsigned step, const char *number, uint64_t at,
                   uint64_t next_at, const char *node, const char *detail, bool *ret_paged)
{
	static const char sql[] = "UPDATE alerts SET esc_step = ?2, esc_next_at = ?3 WHERE id = ?1 "
	                          "AND esc_next_at IS NOT NULL AND esc_step = ?2 - 1";
	sqlite3_stmt *st = store_cached(s, sql);
	int r;

	*ret_paged = false;
	if (!number || !*number)
		return STORE_INVALID; /* paging nobody: a peer's merge would refuse the alert */
	if (!st)
		return STORE_IO;
	if (step == 0)
		return 0;
	store_bind_text(st, 1, alert_id);
	sqlite3_bind_int(st, 2, (int)step);
	if (next_at)
		store_bind_u64(st, 3, next_at);
	else
		sqlite3_bind_null(st, 3); /* the chain's last step: nothing after it */
	r = store_step_done(s, st, "escalating");
	if (r < 0)
		return r;
	if (sqlite3_changes(s->db) == 0)
		return 0; /* moved on already, acknowledged or expired */
	r = page(s, alert_id, number, step, at, ret_paged);
	if (r < 0)
		return r;
	r = store_history_add(s, alert_id, at, "escalated", node, detail);
	if (r < 0)
		return r;
	r = store_alert_refresh(s, alert_id, at);
	return r < 0 ? r : 1;
}

static int ackable_row(sqlite3_stmt *st, void *ctx)
{
	RowCallback *rc = ctx;
	int (*cb)(const AckableAlert *, void *) = rc->cb;
	AckableAlert a = {
	        .alert_id = (const char *)sqlite3_column_text(st, 0),
	        .number = (const char *)sqlite3_column_text(st, 1),
	        .text = (const char *)sqlite3_column_text(st, 2),
	        .acked = sqlite3_column_int(st, 3) != 0,
	};

	return cb(&a, rc->userdata);
}

int store_ackable(Store *s, uint64_t at, int (*cb)(const AckableAlert *a, void *userdata),
                  void *userdata)
{
	static const char sql[] =
	        "SELECT a.id, d.number, a.text, a.ack_at IS NOT NULL "
	        "FROM alerts a JOIN deliveries d ON d.alert_id = a.id "
	        "WHERE a.priority = 1 AND a.expires_at > ?1 AND d.kind = 'to' AND "
	        "a.res_at IS NULL "
	        "ORDER BY a.accepted_at, a.id, d.seq";
	sqlite3_stmt *st = store_cached(s, sql);
	RowCallback ctx = {.cb = (void *)cb, .userdata = userdata};

	if (!st)
		return STORE_IO;
	store_bind_u64(st, 1, at);
	return store_each_row(s, st, "listing what may be acknowledged", ackable_row, &ctx);
}

int store_refusals_since(Store *s, const char *number, uint64_t since, uint64_t *ret)
{
	static const char sql[] = "SELECT COUNT(*) FROM deliveries d JOIN alerts a ON "
	                          "a.id = d.alert_id WHERE d.number = ?1 AND d.accepted_at > ?2 "
	                          "AND a.source = 'gatewayd' AND a.key LIKE 'refusal:%'";
	sqlite3_stmt *st = store_cached(s, sql);

	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, number);
	store_bind_u64(st, 2, since);
	return store_step_u64(s, st, "counting refusals", ret);
}

static int bundle_row(sqlite3_stmt *st, void *ctx)
{
	RowCallback *rc = ctx;
	int (*cb)(const BundleMember *, void *) = rc->cb;
	BundleMember m = {
	        .alert_id = (const char *)sqlite3_column_text(st, 0),
	        .text = (const char *)sqlite3_column_text(st, 1),
	        .critical = sqlite3_column_int(st, 2) != 0,
	        .ackable = sqlite3_column_int(st, 2) != 0 && sqlite3_column_int(st, 3) != 0,
	        .next_try_at = (uint64_t)sqlite3_column_int64(st, 4),
	};

	return cb(&m, rc->userdata);
}

#define BUNDLE_WHERE                                                                               \
	"d.number = ?1 AND d.state = 'queued' AND (d.bundle = 1 OR d.next_try_at <= ?2)"

int store_bundle(Store *s, const char *number, uint64_t now, size_t limit,
                 int (*cb)(const BundleMember *m, void *userdata), void *userdata,
                 uint64_t *ret_total)
{
	static const char list_sql[] = "SELECT d.alert_id, a.text, d.priority, d.kind = 'to' AND "
	                               "a.ack_at IS NULL, d.next_try_at FROM deliveries d JOIN "
	                               "alerts a ON "
	                               "a.id = d.alert_id WHERE " BUNDLE_WHERE
	                               " ORDER BY d.priority DESC, d.accepted_at, d.alert_id "
	                               "LIMIT ?3";
	static const char count_sql[] = "SELECT COUNT(*) FROM deliveries d WHERE " BUNDLE_WHERE;
	RowCallback ctx = {.cb = (void *)cb, .userdata = userdata};
	sqlite3_stmt *st = store_cached(s, count_sql);
	int r;

	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, number);
	store_bind_u64(st, 2, now);
	r = store_step_u64(s, st, "counting a bundle", ret_total);
	if (r < 0 || !cb)
		return r;
	st = store_cached(s, list_sql);
	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, number);
	store_bind_u64(st, 2, now);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)limit);
	return store_each_row(s, st, "listing a bundle", bundle_row, &ctx);
}
