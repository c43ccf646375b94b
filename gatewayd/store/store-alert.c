/* store-alert: the alerts and their deliveries, the state machine's transitions.
 *
 * Each write is one transition of an alert or of one delivery, applied inside the caller's
 * transaction; a delivery's change is followed by store_alert_refresh(), which derives the
 * alert's summary from its deliveries, so the summary is never written on its own. The queries
 * the dispatcher runs (what is due, what expired, what a node was sending) and the retention
 * purge live here too: they read the same rows by the same indexes. */
#include "store-internal.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "util.h"

int store_dedupe_find(Store *s, const char *key, uint64_t at, uint64_t window_usec,
                      char ret_id[static 33])
{
	sqlite3_stmt *st = store_stmt(s, SQL_DEDUPE_FIND);
	int rc, found = 0;

	if (!st)
		return STORE_IO;
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
		return STORE_IO;
	store_bind_text(st, 1, number);
	store_bind_u64(st, 2, at - MIN(at, window));
	store_bind_u64(st, 3, at);
	r = store_step_u64(s, st, "counting recent alerts", &count);
	if (r < 0 || count < threshold)
		return r;

	st = store_cached(s, due_sql);
	if (!st)
		return STORE_IO;
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
		return STORE_INVALID;
	st = store_stmt(s, SQL_ALERT_INSERT);
	if (!st)
		return STORE_IO;
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
			st = store_stmt(s, SQL_DELIVERY_INSERT);
			if (!st)
				return STORE_IO;
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

	st = store_stmt(s, SQL_DEDUPE_SET);
	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, a->key);
	store_bind_text(st, 2, a->id);
	store_bind_u64(st, 3, a->accepted_at);
	return store_step_done(s, st, "recording a dedupe key");
}

static int query_u64(Store *s, int id, const char *arg, uint64_t *ret)
{
	sqlite3_stmt *st = store_stmt(s, id);
	int rc;

	if (!st)
		return STORE_IO;
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

int store_recount(Store *s)
{
	int r = query_u64(s, SQL_COUNT_OPEN, NULL, &s->open_alerts);

	return r < 0 ? r : 0;
}

uint64_t store_open_alerts(const Store *s)
{
	return s->open_alerts;
}

/* Recomputes the alert's summary state after one of its deliveries changed. */
/* Cancels the alert's deliveries that wait to be sent; returns how many. */
static int cancel_queued(Store *s, const char *alert_id)
{
	static const char sql[] = "UPDATE deliveries SET state = 'cancelled' WHERE alert_id = ?1 "
	                          "AND state = 'queued'";
	sqlite3_stmt *st = store_cached(s, sql);
	int r;

	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, alert_id);
	r = store_step_done(s, st, "cancelling deliveries");
	return r < 0 ? r : sqlite3_changes(s->db);
}

int store_alert_refresh(Store *s, const char *alert_id, uint64_t at)
{
	sqlite3_stmt *st = store_stmt(s, SQL_ALERT_DELIVERY_STATES);
	DeliveryState furthest = DELIVERY_QUEUED;
	sqlite3_stmt *fst = store_stmt(s, SQL_ALERT_FINAL);
	bool final = true, was_final = false, resolved = false, silenced = false;
	int rc;

	if (!st || !fst)
		return STORE_IO;
	store_bind_text(fst, 1, alert_id);
	rc = sqlite3_step(fst);
	if (rc == SQLITE_ROW) {
		was_final = sqlite3_column_int(fst, 0) != 0;
		final = sqlite3_column_int(fst, 1) == 0; /* escalating: open until it stops */
		resolved = sqlite3_column_int(fst, 2) != 0;
		silenced = sqlite3_column_int(fst, 3) != 0;
	}
	store_stmt_done(fst);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_fail(s, rc, "reading an alert's state");
	if (resolved || silenced) {
		/* Whatever queued a delivery of a resolved or silenced alert again (a retry, a
		 * takeover, a merge) is undone here, in the same transaction. */
		rc = cancel_queued(s, alert_id);
		if (rc < 0)
			return rc;
	}
	store_bind_text(st, 1, alert_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		DeliveryState d =
		        store_delivery_state_from_string((const char *)sqlite3_column_text(st, 0));

		if (store_delivery_state_rank(d) > store_delivery_state_rank(furthest))
			furthest = d;
		if (!store_delivery_state_is_final(d))
			final = false;
	}
	store_stmt_done(st);
	if (rc != SQLITE_DONE)
		return store_fail(s, rc, "reading delivery states");

	if (resolved || silenced)
		final = true; /* a final state of its own; what is still sending ends as it ends */
	st = store_stmt(s, SQL_ALERT_SET_STATE);
	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, alert_id);
	store_bind_text(st, 2,
	                resolved   ? "resolved"
	                : silenced ? "silenced"
	                           : store_delivery_state_to_string(furthest));
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
	sqlite3_stmt *st = store_stmt(s, SQL_DELIVERY_GET);
	int rc;

	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, alert_id);
	store_bind_text(st, 2, number);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ret_state =
		        store_delivery_state_from_string((const char *)sqlite3_column_text(st, 0));
		*ret_permanent = (unsigned)sqlite3_column_int(st, 1);
	}
	store_stmt_done(st);
	if (rc == SQLITE_DONE)
		return STORE_NOT_FOUND;
	if (rc != SQLITE_ROW)
		return store_fail(s, rc, "reading a delivery");
	return 0;
}

int store_delivery_set(Store *s, const char *alert_id, const char *number, DeliveryState state,
                       uint64_t next_try_at, const char *node, const char *modem,
                       unsigned permanent)
{
	sqlite3_stmt *st = store_stmt(s, SQL_DELIVERY_SET);

	if (!st)
		return STORE_IO;
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
		return STORE_IO;
	store_bind_text(st, 1, alert_id);
	store_bind_text(st, 2, number);
	store_bind_u64(st, 3, round);
	return store_step_done(s, st, "setting a delivery's round");
}

int store_history_add(Store *s, const char *alert_id, uint64_t at, const char *what,
                      const char *node, const char *detail)
{
	sqlite3_stmt *st = store_stmt(s, SQL_HISTORY_INSERT);

	if (!st)
		return STORE_IO;
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
		return r == STORE_NOT_FOUND ? 0 : r;
	if (state != DELIVERY_QUEUED)
		return 0;
	r = store_delivery_set(s, alert_id, number, DELIVERY_SENDING, at, node, modem, permanent);
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
	sqlite3_stmt *st = store_stmt(s, SQL_DELIVERY_SENDING_ELSEWHERE);
	int rc;

	if (!st)
		return STORE_IO;
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
		return r == STORE_NOT_FOUND ? 0 : r;

	/* The attempt is history whatever the state: append it (idempotently). */
	st = store_stmt(s, SQL_ATTEMPT_INSERT);
	if (!st)
		return STORE_IO;
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
			st = store_stmt(s, SQL_ATTEMPT_COUNT);
			if (!st)
				return STORE_IO;
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
	r = store_delivery_set(s, alert_id, number, new_state, next_try_at, res->node, res->modem,
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
		return r == STORE_NOT_FOUND ? 0 : r;
	if (state == DELIVERY_DELIVERED)
		return 0;
	r = store_delivery_set(s, ret_alert_id, ret_number, DELIVERY_DELIVERED, rep->at, rep->node,
	                       rep->modem, permanent);
	if (r < 0)
		return r;
	r = store_alert_refresh(s, ret_alert_id, rep->at);
	return r < 0 ? r : 1;
}

int store_inbox_insert(Store *s, const InboxMessage *m)
{
	sqlite3_stmt *st = store_stmt(s, SQL_INBOX_INSERT);
	int r;

	if (!st)
		return STORE_IO;
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
int store_escalation_stop(Store *s, const char *alert_id)
{
	static const char sql[] = "UPDATE alerts SET esc_next_at = NULL WHERE id = ?1 AND "
	                          "esc_next_at IS NOT NULL";
	sqlite3_stmt *st = store_cached(s, sql);
	int r;

	if (!st)
		return STORE_IO;
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
	r = store_escalation_stop(s, alert_id);
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
	sqlite3_stmt *st = store_stmt(s, SQL_ALERT_ACK_GET);
	bool acked;
	int rc;

	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		store_stmt_done(st);
		return STORE_NOT_FOUND;
	}
	if (rc != SQLITE_ROW) {
		store_stmt_done(st);
		return store_fail(s, rc, "reading an acknowledgment");
	}
	acked = sqlite3_column_type(st, 0) != SQLITE_NULL;
	store_stmt_done(st);
	if (acked)
		return 0;

	st = store_stmt(s, SQL_ALERT_ACK_SET);
	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, id);
	store_bind_text(st, 2, by);
	store_bind_text(st, 3, via);
	store_bind_u64(st, 4, at);
	rc = store_step_done(s, st, "acknowledging");
	if (rc < 0)
		return rc;
	rc = store_escalation_stop(s, id);
	if (rc > 0)
		rc = store_alert_refresh(s, id, at);
	return rc < 0 ? rc : 1;
}

int store_alert_resolve(Store *s, const char *id, const char *by, const char *via, uint64_t at,
                        unsigned *ret_cancelled)
{
	static const char set_sql[] = "UPDATE alerts SET res_by = ?2, res_via = ?3, res_at = ?4 "
	                              "WHERE id = ?1 AND res_at IS NULL";
	sqlite3_stmt *st;
	int r;

	*ret_cancelled = 0;
	r = store_alert_exists(s, id);
	if (r <= 0)
		return r < 0 ? r : STORE_NOT_FOUND;
	st = store_cached(s, set_sql);
	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, id);
	store_bind_text(st, 2, by);
	store_bind_text(st, 3, via);
	store_bind_u64(st, 4, at);
	r = store_step_done(s, st, "resolving");
	if (r < 0)
		return r;
	if (sqlite3_changes(s->db) == 0)
		return 0;
	r = store_escalation_stop(s, id);
	if (r < 0)
		return r;
	r = cancel_queued(s, id);
	if (r < 0)
		return r;
	*ret_cancelled = (unsigned)r;
	r = store_alert_refresh(s, id, at);
	return r < 0 ? r : 1;
}

int store_alert_resolvable(Store *s, const char *id)
{
	static const char sql[] = "SELECT res_at IS NULL AND state != 'expired' FROM alerts "
	                          "WHERE id = ?1";
	sqlite3_stmt *st = store_cached(s, sql);
	int rc, r = STORE_NOT_FOUND;

	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		r = sqlite3_column_int(st, 0) != 0;
	else if (rc != SQLITE_DONE)
		r = store_fail(s, rc, "reading an alert");
	store_stmt_done(st);
	return r;
}

int store_alert_resolvable_by_key(Store *s, const char *key, char ret_id[static 33])
{
	static const char sql[] = "SELECT id FROM alerts WHERE key = ?1 AND res_at IS NULL AND "
	                          "state != 'expired' ORDER BY accepted_at DESC, id DESC LIMIT 1";
	sqlite3_stmt *st = store_cached(s, sql);
	int rc, r = 0;

	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		snprintf(ret_id, 33, "%s", (const char *)sqlite3_column_text(st, 0));
		r = 1;
	} else if (rc != SQLITE_DONE)
		r = store_fail(s, rc, "finding an alert by its key");
	store_stmt_done(st);
	return r;
}

/* 1 when the query, bound to the alert id, has a row (its first column in *ret_first unless
 * NULL); 0 when not. */
static int alert_has(Store *s, const char *sql, const char *id, uint64_t *ret_first)
{
	sqlite3_stmt *st = store_cached(s, sql);
	int rc, r = 0;

	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (ret_first)
			*ret_first = (uint64_t)sqlite3_column_int64(st, 0);
		r = 1;
	} else if (rc != SQLITE_DONE)
		r = store_fail(s, rc, "reading an alert");
	store_stmt_done(st);
	return r;
}

int store_alert_is_over(Store *s, const char *id)
{
	return alert_has(s,
	                 "SELECT 1 FROM alerts WHERE id = ?1 AND (res_at IS NOT NULL OR "
	                 "silence IS NOT NULL)",
	                 id, NULL);
}

int store_alert_resolved_at(Store *s, const char *id, uint64_t *ret_at)
{
	return alert_has(s, "SELECT res_at FROM alerts WHERE id = ?1 AND res_at IS NOT NULL", id,
	                 ret_at);
}

int store_alert_paged(Store *s, const char *id, int (*cb)(const char *number, void *userdata),
                      void *userdata)
{
	static const char sql[] = "SELECT number FROM deliveries WHERE alert_id = ?1 AND "
	                          "state IN ('sent', 'delivered') ORDER BY seq, number";
	sqlite3_stmt *st = store_cached(s, sql);
	int rc, r = 0;

	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, id);
	while (r >= 0 && (rc = sqlite3_step(st)) == SQLITE_ROW)
		r = cb((const char *)sqlite3_column_text(st, 0), userdata);
	if (r >= 0 && rc != SQLITE_DONE)
		r = store_fail(s, rc, "listing who was paged");
	store_stmt_done(st);
	return r;
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
	sqlite3_stmt *st = store_stmt(s, SQL_DUE);
	RowCallback ctx = {.cb = (void *)cb, .userdata = userdata};

	if (!st)
		return STORE_IO;
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
	sqlite3_stmt *st = store_stmt(s, SQL_EXPIRED);
	RowCallback ctx = {.cb = (void *)cb, .userdata = userdata};

	if (!st)
		return STORE_IO;
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
	sqlite3_stmt *st = store_stmt(s, SQL_SENDING_ON_NODE);
	RowCallback ctx = {.cb = (void *)cb, .userdata = userdata};

	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, node);
	return store_each_row(s, st, "listing interrupted sends", sending_row, &ctx);
}

/* One step of the purge: every statement goes by index, from the ids picked first, so that a
 * step costs what it deletes, not what the store holds. The planner is told so twice: left to
 * itself it walks alerts_accepted over every final alert to find the old ones (all of them when
 * none is old enough), and takes the dedupe keys by scanning alerts for the ids rather than
 * looking the ids up (36 ms a step with 300,000 alerts, whatever the step's size). */
static int purge_step(Store *s, uint64_t before, unsigned max, bool *ret_more)
{
	static const char *const sql[] = {
	        "DELETE FROM temp.purge_ids",
	        "INSERT INTO temp.purge_ids SELECT id FROM alerts INDEXED BY alerts_final_at "
	        "WHERE final = 1 AND final_at < ?1 LIMIT ?2",
	        "DELETE FROM attempts WHERE alert_id IN (SELECT id FROM temp.purge_ids)",
	        "DELETE FROM deliveries WHERE alert_id IN (SELECT id FROM temp.purge_ids)",
	        "DELETE FROM calls WHERE alert_id IN (SELECT id FROM temp.purge_ids)",
	        "DELETE FROM history WHERE alert_id IN (SELECT id FROM temp.purge_ids)",
	        "DELETE FROM dedupe WHERE key IN (SELECT a.key FROM temp.purge_ids p "
	        "CROSS JOIN alerts a ON a.id = p.id) "
	        "AND alert_id IN (SELECT id FROM temp.purge_ids)",
	        "DELETE FROM alerts WHERE id IN (SELECT id FROM temp.purge_ids)",
	        "DELETE FROM inbox WHERE key IN "
	        "(SELECT key FROM inbox WHERE received_at < ?1 LIMIT ?2)",
	};
	int purged = 0, received = 0;

	for (size_t i = 0; i < ELEMENTSOF(sql); i++) {
		sqlite3_stmt *st;
		int rc = sqlite3_prepare_v2(s->db, sql[i], -1, &st, NULL);

		if (rc != SQLITE_OK)
			return store_fail(s, rc, "preparing purge");
		if (sqlite3_bind_parameter_count(st) > 0) {
			store_bind_u64(st, 1, before);
			sqlite3_bind_int64(st, 2, max);
		}
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return store_fail(s, rc, "purging");
		if (i == 1)
			purged = sqlite3_changes(s->db);
		else if (i == ELEMENTSOF(sql) - 1)
			received = sqlite3_changes(s->db);
	}
	*ret_more = (unsigned)purged >= max || (unsigned)received >= max;
	return purged;
}

int store_purge(Store *s, uint64_t before, unsigned max, bool *ret_more)
{
	bool more = false;
	int r, n;

	if (max == 0)
		return -EINVAL;
	r = store_begin(s);
	if (r < 0)
		return r;
	n = purge_step(s, before, max, &more);
	r = store_end(s, n);
	if (r < 0)
		return r;
	if (ret_more)
		*ret_more = more;
	return n;
}
