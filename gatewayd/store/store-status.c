/* store-status: what the store answers about an alert, the queue, the inbox and the nodes, as
 * JSON for status and get, and as figures for the counters.
 *
 * Read-only; the JSON built here belongs to the caller. */
#include "store-internal.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "util.h"

static int alert_attempts_json(Store *s, const char *id, const char *number, json_t **ret)
{
	sqlite3_stmt *st = store_stmt(s, SQL_ALERT_ATTEMPTS);
	json_t *list = json_array();
	int rc;

	if (!st || !list) {
		json_decref(list);
		return -ENOMEM;
	}
	store_bind_text(st, 1, id);
	store_bind_text(st, 2, number);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *a = json_pack(
		        "{s:o, s:o, s:o, s:o, s:o}", "node", store_column_string(st, 0), "modem",
		        store_column_string(st, 1), "at",
		        store_json_time_or_null((uint64_t)sqlite3_column_int64(st, 2)), "result",
		        store_column_string(st, 3), "error", store_column_string(st, 4));
		if (a && sqlite3_column_type(st, 5) != SQLITE_NULL)
			json_object_set_new(a, "report", store_column_string(st, 5));
		if (!a || json_array_append_new(list, a) < 0) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	store_stmt_done(st);
	if (rc != SQLITE_DONE) {
		json_decref(list);
		return store_fail(s, rc, "reading attempts");
	}
	*ret = list;
	return 0;
}

static int store_calls_json(Store *s, const char *id, json_t **ret)
{
	static const char sql[] = "SELECT number, node, modem, at, outcome, duration, error, "
	                          "dtmf_ack FROM calls WHERE alert_id = ?1 ORDER BY at";
	_cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;
	json_t *list = json_array();
	int rc;

	if (!list)
		return -ENOMEM;
	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		json_decref(list);
		return store_fail(s, rc, "preparing calls");
	}
	store_bind_text(st, 1, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *c = json_pack(
		        "{s:o, s:o, s:o, s:o, s:o, s:I, s:o, s:b}", "number",
		        store_column_string(st, 0), "node", store_column_string(st, 1), "modem",
		        store_column_string(st, 2), "at",
		        store_json_time_or_null((uint64_t)sqlite3_column_int64(st, 3)), "outcome",
		        store_column_string(st, 4), "duration",
		        (json_int_t)sqlite3_column_int64(st, 5), "error",
		        store_column_string(st, 6), "acknowledged", sqlite3_column_int(st, 7) != 0);
		if (!c || json_array_append_new(list, c) < 0) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	if (rc != SQLITE_DONE) {
		json_decref(list);
		return store_fail(s, rc, "reading calls");
	}
	*ret = list;
	return 0;
}

static int history_row(sqlite3_stmt *st, void *ctx)
{
	json_t *h = json_pack("{s:o, s:o, s:o, s:o}", "at",
	                      store_json_time_or_null((uint64_t)sqlite3_column_int64(st, 0)),
	                      "what", store_column_string(st, 1), "node",
	                      store_column_string(st, 2), "detail", store_column_string(st, 3));

	return h && json_array_append_new(ctx, h) == 0 ? 0 : -ENOMEM;
}

static int history_json(Store *s, const char *id, json_t **ret)
{
	sqlite3_stmt *st = store_stmt(s, SQL_EXPORT_HISTORY);
	json_t *list = json_array();
	int r;

	if (!st || !list) {
		json_decref(list);
		return -ENOMEM;
	}
	store_bind_text(st, 1, id);
	r = store_each_row(s, st, "reading history", history_row, list);
	if (r < 0) {
		json_decref(list);
		return r;
	}
	*ret = list;
	return 0;
}

int store_alert_json(Store *s, const char *id, bool with_attempts, json_t **ret)
{
	sqlite3_stmt *st = store_stmt(s, SQL_ALERT_GET);
	json_t *alert = NULL, *deliveries = NULL, *ack, *resolved, *calls = NULL;
	int rc, r;

	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, id);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		store_stmt_done(st);
		return rc == SQLITE_DONE ? STORE_NOT_FOUND : store_fail(s, rc, "reading an alert");
	}
	if (sqlite3_column_type(st, 16) == SQLITE_NULL)
		resolved = json_null();
	else
		resolved =
		        json_pack("{s:o, s:o, s:o}", "by", store_column_string(st, 14), "via",
		                  store_column_string(st, 15), "at",
		                  store_json_time_or_null((uint64_t)sqlite3_column_int64(st, 16)));
	if (sqlite3_column_type(st, 10) == SQLITE_NULL)
		ack = json_null();
	else
		ack = json_pack("{s:o, s:o, s:o}", "by", store_column_string(st, 8), "via",
		                store_column_string(st, 9), "at",
		                store_json_time_or_null((uint64_t)sqlite3_column_int64(st, 10)));
	alert = json_pack("{s:o, s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:[]}", "id",
	                  store_column_string(st, 0), "state", store_column_string(st, 1),
	                  "priority", sqlite3_column_int(st, 2) ? "critical" : "normal", "text",
	                  store_column_string(st, 3), "key", store_column_string(st, 4), "source",
	                  store_column_string(st, 5), "accepted_at",
	                  store_json_time_or_null((uint64_t)sqlite3_column_int64(st, 6)), "node",
	                  store_column_string(st, 7), "expires_at",
	                  store_json_time_or_null((uint64_t)sqlite3_column_int64(st, 11)), "ack",
	                  ack ? ack : json_null(), "calls");
	if (alert && sqlite3_column_type(st, 12) != SQLITE_NULL)
		json_object_set_new(
		        alert, "escalation",
		        json_pack("{s:i, s:b, s:o}", "step", sqlite3_column_int(st, 12), "active",
		                  sqlite3_column_type(st, 13) != SQLITE_NULL, "next_at",
		                  store_json_time_or_null((uint64_t)sqlite3_column_int64(st, 13))));
	else if (alert)
		json_object_set_new(alert, "escalation", json_null());
	if (alert)
		json_object_set_new(
		        alert, "silence",
		        sqlite3_column_type(st, 17) == SQLITE_NULL
		                ? json_null()
		                : json_string((const char *)sqlite3_column_text(st, 17)));
	if (alert)
		json_object_set_new(alert, "resolved", resolved ? resolved : json_null());
	else
		json_decref(resolved);
	store_stmt_done(st);
	if (!alert)
		return -ENOMEM;

	deliveries = json_array();
	st = store_stmt(s, SQL_ALERT_DELIVERIES);
	if (!deliveries || !st) {
		r = -ENOMEM;
		goto fail;
	}
	store_bind_text(st, 1, id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *d =
		        json_pack("{s:o, s:o, s:o}", "to", store_column_string(st, 0), "state",
		                  store_column_string(st, 1), "kind", store_column_string(st, 2));
		if (!d || json_array_append_new(deliveries, d) < 0) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	store_stmt_done(st);
	if (rc != SQLITE_DONE) {
		r = store_fail(s, rc, "reading deliveries");
		goto fail;
	}
	if (with_attempts) {
		size_t i;
		json_t *d;

		json_array_foreach(deliveries, i, d)
		{
			json_t *attempts = NULL;

			r = alert_attempts_json(s, id, json_string_value(json_object_get(d, "to")),
			                        &attempts);
			if (r < 0)
				goto fail;
			json_object_set_new(d, "attempts", attempts);
		}
	}
	json_object_set_new(alert, "deliveries", deliveries);
	deliveries = NULL;
	r = store_calls_json(s, id, &calls);
	if (r < 0)
		goto fail;
	json_object_set_new(alert, "calls", calls);
	if (with_attempts) {
		r = history_json(s, id, &calls);
		if (r < 0)
			goto fail;
		json_object_set_new(alert, "history", calls);
	}
	*ret = alert;
	return 0;
fail:
	json_decref(deliveries);
	json_decref(alert);
	return r;
}

int store_queue_json(Store *s, size_t limit, json_t **ret)
{
	sqlite3_stmt *st = store_stmt(s, SQL_QUEUE);
	json_t *list = json_array();
	char **ids = NULL;
	size_t n = 0;
	int rc, r = 0;

	if (!st || !list) {
		json_decref(list);
		return -ENOMEM;
	}
	/* Collect ids first: store_alert_json() reuses prepared statements. */
	sqlite3_bind_int64(st, 1, (sqlite3_int64)limit);
	ids = calloc(limit ? limit : 1, sizeof(char *));
	if (!ids) {
		store_stmt_done(st);
		json_decref(list);
		return -ENOMEM;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < limit) {
		ids[n] = strdup((const char *)sqlite3_column_text(st, 0));
		if (!ids[n])
			break;
		n++;
	}
	store_stmt_done(st);
	for (size_t i = 0; i < n && r >= 0; i++) {
		json_t *a;

		r = store_alert_json(s, ids[i], false, &a);
		if (r == STORE_NOT_FOUND) {
			r = 0;
			continue;
		}
		if (r >= 0 && json_array_append_new(list, a) < 0)
			r = -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
	if (r < 0) {
		json_decref(list);
		return r;
	}
	*ret = list;
	return 0;
}

int store_counts(Store *s, QueueCounts *ret)
{
	sqlite3_stmt *st = store_stmt(s, SQL_COUNTS);
	QueueCounts c = {0};
	int rc;

	if (!st)
		return STORE_IO;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *state = (const char *)sqlite3_column_text(st, 0);
		uint64_t n = (uint64_t)sqlite3_column_int64(st, 1);

		if (streq(state, "resolved")) { /* an alert's own final state */
			c.resolved += n;
			continue;
		}
		if (streq(state, "silenced")) {
			c.silenced += n;
			continue;
		}
		switch (store_delivery_state_from_string(state)) {
		case DELIVERY_QUEUED:
			c.queued += n;
			break;
		case DELIVERY_SENDING:
			c.sending += n;
			break;
		case DELIVERY_SENT:
			c.sent += n;
			break;
		case DELIVERY_DELIVERED:
			c.delivered += n;
			break;
		case DELIVERY_FAILED:
			c.failed += n;
			break;
		case DELIVERY_EXPIRED:
			c.expired += n;
			break;
		default:
			break;
		}
	}
	store_stmt_done(st);
	if (rc != SQLITE_DONE)
		return store_fail(s, rc, "counting alerts");
	*ret = c;
	return 0;
}

int store_modem_counters(Store *s, const char *node, const char *modem, ModemCounters *ret)
{
	sqlite3_stmt *st = store_stmt(s, SQL_MODEM_COUNTERS);
	ModemCounters c = {0};
	int rc;

	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, node);
	store_bind_text(st, 2, modem);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		c.sent = (uint64_t)sqlite3_column_int64(st, 0);
		c.failed = (uint64_t)sqlite3_column_int64(st, 1);
		c.last_sent_at = (uint64_t)sqlite3_column_int64(st, 2);
	}
	store_stmt_done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_fail(s, rc, "counting a modem's sends");

	st = store_stmt(s, SQL_MODEM_LAST_ERROR);
	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, node);
	store_bind_text(st, 2, modem);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(c.last_error, sizeof(c.last_error), "%s", sqlite3_column_text(st, 0));
	store_stmt_done(st);
	*ret = c;
	return 0;
}

int store_inbox_json(Store *s, size_t limit, json_t **ret)
{
	static const char sql[] = "SELECT key, node, modem, sender, text, parts, smsc_at, "
	                          "received_at, quarantine FROM inbox "
	                          "ORDER BY received_at DESC LIMIT ?1";
	_cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;
	json_t *list = json_array();
	int rc;

	if (!list)
		return -ENOMEM;
	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK) {
		json_decref(list);
		return store_fail(s, rc, "preparing the inbox");
	}
	sqlite3_bind_int64(st, 1, (sqlite3_int64)limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *m = json_pack(
		        "{s:o, s:o, s:o, s:o, s:o, s:i, s:o, s:o}", "key",
		        store_column_string(st, 0), "node", store_column_string(st, 1), "modem",
		        store_column_string(st, 2), "from", store_column_string(st, 3), "text",
		        store_column_string(st, 4), "parts", sqlite3_column_int(st, 5), "sent_at",
		        store_json_time_or_null((uint64_t)sqlite3_column_int64(st, 6)),
		        "received_at",
		        store_json_time_or_null((uint64_t)sqlite3_column_int64(st, 7)));
		if (m && sqlite3_column_type(st, 8) != SQLITE_NULL &&
		    json_object_set_new(m, "quarantined", store_column_string(st, 8)) < 0) {
			json_decref(m);
			m = NULL;
		}
		if (!m || json_array_append_new(list, m) < 0) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	if (rc != SQLITE_DONE) {
		json_decref(list);
		return store_fail(s, rc, "reading the inbox");
	}
	*ret = list;
	return 0;
}

static int node_row(sqlite3_stmt *st, void *ctx)
{
	RowCallback *rc = ctx;
	int (*cb)(const StoreNode *, void *) = rc->cb;
	StoreNode n = {
	        .name = (const char *)sqlite3_column_text(st, 0),
	        .nodeid = (uint32_t)sqlite3_column_int64(st, 1),
	        .last_seen = (uint64_t)sqlite3_column_int64(st, 2),
	        .store_id = (uint64_t)sqlite3_column_int64(st, 3),
	        .since = (uint64_t)sqlite3_column_int64(st, 4),
	};

	return cb(&n, rc->userdata);
}

int store_node_seen(Store *s, const char *name, uint32_t nodeid, uint64_t at)
{
	sqlite3_stmt *st = store_stmt(s, SQL_NODE_SEEN);

	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, name);
	store_bind_u64(st, 2, nodeid);
	store_bind_u64(st, 3, at);
	return store_step_done(s, st, "recording a node");
}

int store_node_rejoin(Store *s, const char *name, uint64_t store_id, uint64_t since)
{
	static const char sql[] = "INSERT INTO nodes(name, nodeid, last_seen, store_id, since)"
	                          " VALUES (?1, 0, 0, ?2, ?3) ON CONFLICT(name) DO UPDATE SET"
	                          " store_id = excluded.store_id, since = excluded.since";
	sqlite3_stmt *st = store_cached(s, sql);

	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, name);
	store_bind_u64(st, 2, store_id);
	store_bind_u64(st, 3, since);
	return store_step_done(s, st, "recording what a node has");
}

int store_nodes(Store *s, int (*cb)(const StoreNode *node, void *userdata), void *userdata)
{
	sqlite3_stmt *st = store_stmt(s, SQL_NODES);
	RowCallback ctx = {.cb = (void *)cb, .userdata = userdata};

	if (!st)
		return STORE_IO;
	return store_each_row(s, st, "listing nodes", node_row, &ctx);
}
