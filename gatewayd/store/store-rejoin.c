/* store-rejoin: export and merge, how two replicas meet again.
 *
 * After a partition both halves kept accepting and delivering, and a node that restarts with an
 * empty disk has nothing; either way the two replicas meet again by sending each other their
 * rows and merging what they receive. A merge is a join in a semilattice: every field only moves
 * up an order that both nodes share (a delivery's state by rank, then a fixed tie-break;
 * attempts, calls and inbox messages by set union; the earliest acknowledgment and the earliest
 * resolve; the earliest
 * dedupe row), so the same items applied in any order, once or twice, leave identical rows on
 * both nodes. The alert's summary is derived again by alert_refresh(), with final_at the latest
 * that either side recorded, and never before acceptance (the fallback when the alert became
 * final only in the merge): a join too, while the time of the merge itself would differ between
 * the nodes.
 *
 * An item carries everything about one row of the cursor's table (an alert with its
 * deliveries, attempts and calls), so an export is a walk along the primary key that one call
 * takes as far as one payload goes. The field tables name the keys and types; each export
 * SELECT, and each statement the merge binds an item to, lists its columns in the same order. */
#include "store-internal.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "util.h"
#include "validate.h"

typedef enum FieldType {
	FIELD_TEXT,
	FIELD_TEXT_OR_NULL,
	FIELD_INT,
	FIELD_INT_OR_NULL,
} FieldType;

typedef struct Field {
	const char *name;
	FieldType type;
} Field;

/* The first 8 are SQL_ALERT_INSERT's ?1..?8. */
static const Field alert_fields[] = {
        {"id", FIELD_TEXT},
        {"key", FIELD_TEXT},
        {"text", FIELD_TEXT},
        {"prio", FIELD_INT},
        {"src", FIELD_TEXT_OR_NULL},
        {"node", FIELD_TEXT},
        {"acc", FIELD_INT},
        {"exp", FIELD_INT},
        {"fin", FIELD_INT_OR_NULL},
        {"ack_by", FIELD_TEXT_OR_NULL},
        {"ack_via", FIELD_TEXT_OR_NULL},
        {"ack_at", FIELD_INT_OR_NULL},
        {"esc_step", FIELD_INT_OR_NULL},
        {"esc_next", FIELD_INT_OR_NULL},
        {"res_by", FIELD_TEXT_OR_NULL},
        {"res_via", FIELD_TEXT_OR_NULL},
        {"res_at", FIELD_INT_OR_NULL},
        {"esc_timer", FIELD_INT_OR_NULL},
        {"silence", FIELD_TEXT_OR_NULL},
};
#define ALERT_INSERT_FIELDS 8
#define ALERT_ACK_FIELDS    9  /* ack_by, ack_via, ack_at: SQL_MERGE_ACK's ?2..?4 */
#define ALERT_ESC_FIELDS    12 /* esc_step, esc_next */
#define ALERT_RES_FIELDS    14 /* res_by, res_via, res_at: SQL_MERGE_RESOLVE's ?2..?4 */
#define ALERT_TIMER_FIELD   17 /* esc_timer: SQL_MERGE_ESCALATION's ?4 */

/* SQL_MERGE_DELIVERY_INSERT's ?2..?11. */
static const Field delivery_fields[] = {
        {"to", FIELD_TEXT},
        {"kind", FIELD_TEXT},
        {"seq", FIELD_INT},
        {"state", FIELD_TEXT},
        {"next", FIELD_INT},
        {"node", FIELD_TEXT_OR_NULL},
        {"modem", FIELD_TEXT_OR_NULL},
        {"pf", FIELD_INT},
        {"acc", FIELD_INT},
        {"prio", FIELD_INT},
        {"round", FIELD_INT},
        {"bundle", FIELD_INT},
};

/* SQL_HISTORY_INSERT's ?2..?6. */
static const Field history_fields[] = {
        {"at", FIELD_INT},
        {"what", FIELD_TEXT},
        {"node", FIELD_TEXT},
        {"detail", FIELD_TEXT},
};

/* SQL_ATTEMPT_INSERT's ?2..?8 (all but the report); the first 4 name the attempt. */
static const Field attempt_fields[] = {
        {"to", FIELD_TEXT},         {"node", FIELD_TEXT},           {"modem", FIELD_TEXT},
        {"at", FIELD_INT},          {"result", FIELD_TEXT},         {"error", FIELD_TEXT_OR_NULL},
        {"ref", FIELD_INT_OR_NULL}, {"report", FIELD_TEXT_OR_NULL},
};
#define ATTEMPT_KEY_FIELDS 4

/* SQL_CALL_INSERT's ?2..?9. */
static const Field call_fields[] = {
        {"to", FIELD_TEXT},
        {"node", FIELD_TEXT},
        {"modem", FIELD_TEXT},
        {"at", FIELD_INT},
        {"outcome", FIELD_TEXT},
        {"dur", FIELD_INT},
        {"error", FIELD_TEXT_OR_NULL},
        {"dtmf", FIELD_INT},
};

/* SQL_MERGE_DEDUPE's ?1..?3. */
static const Field dedupe_fields[] = {
        {"key", FIELD_TEXT},
        {"alert_id", FIELD_TEXT},
        {"first_at", FIELD_INT},
};

/* SQL_EXPORT_SILENCES's columns, SQL_SILENCE_PUT's ?1..?11. */
static const Field silence_fields[] = {
        {"id", FIELD_TEXT},
        {"field", FIELD_TEXT},
        {"value", FIELD_TEXT},
        {"except_critical", FIELD_INT},
        {"created_at", FIELD_INT},
        {"until", FIELD_INT},
        {"by", FIELD_TEXT},
        {"reason", FIELD_TEXT},
        {"node", FIELD_TEXT},
        {"removed_at", FIELD_INT_OR_NULL},
        {"removed_by", FIELD_TEXT_OR_NULL},
};

/* SQL_EXPORT_HEARTBEATS's columns, SQL_HEARTBEAT_PUT's ?1..?3. */
static const Field heartbeat_fields[] = {
        {"name", FIELD_TEXT},
        {"last_at", FIELD_INT},
        {"missed_at", FIELD_INT},
};

/* SQL_INBOX_INSERT's ?1..?9. */
static const Field inbox_fields[] = {
        {"key", FIELD_TEXT},
        {"node", FIELD_TEXT},
        {"modem", FIELD_TEXT},
        {"sender", FIELD_TEXT},
        {"text", FIELD_TEXT},
        {"parts", FIELD_INT},
        {"smsc_at", FIELD_INT_OR_NULL},
        {"received_at", FIELD_INT},
        {"quarantine", FIELD_TEXT_OR_NULL},
};

/* The lists inside an alert item. */
static const struct {
	const char *name;
	int sql;
	const Field *fields;
	size_t n_fields;
} alert_lists[] = {
        {"dl", SQL_EXPORT_DELIVERIES, delivery_fields, ELEMENTSOF(delivery_fields)},
        {"att", SQL_EXPORT_ATTEMPTS, attempt_fields, ELEMENTSOF(attempt_fields)},
        {"calls", SQL_EXPORT_CALLS, call_fields, ELEMENTSOF(call_fields)},
        {"hist", SQL_EXPORT_HISTORY, history_fields, ELEMENTSOF(history_fields)},
};

static bool field_is_int(FieldType t)
{
	return t == FIELD_INT || t == FIELD_INT_OR_NULL;
}

/* Column i as fields[i]: typed by the field, NULL as null. */
static int row_json(sqlite3_stmt *st, const Field *fields, size_t n_fields, json_t **ret)
{
	json_t *o = json_object();

	if (!o)
		return -ENOMEM;
	for (size_t i = 0; i < n_fields; i++) {
		const char *text = NULL;
		json_t *v;

		if (sqlite3_column_type(st, (int)i) == SQLITE_NULL)
			v = json_null();
		else if (field_is_int(fields[i].type))
			v = json_integer((json_int_t)sqlite3_column_int64(st, (int)i));
		else {
			text = (const char *)sqlite3_column_text(st, (int)i);
			v = text ? json_string(text) : NULL;
		}
		if (!v || json_object_set_new(o, fields[i].name, v) < 0) {
			json_decref(o);
			if (text && !utf8_is_valid(text, strlen(text)))
				return log_error_errno(EILSEQ, "Store: '%s' is not valid UTF-8",
				                       fields[i].name);
			return -ENOMEM;
		}
	}
	*ret = o;
	return 0;
}

typedef struct RowsJson {
	json_t *list;
	const Field *fields;
	size_t n_fields;
} RowsJson;

static int rows_json_row(sqlite3_stmt *st, void *ctx)
{
	RowsJson *rj = ctx;
	json_t *o;
	int r;

	r = row_json(st, rj->fields, rj->n_fields, &o);
	if (r < 0)
		return r;
	return json_array_append_new(rj->list, o) < 0 ? -ENOMEM : 0;
}

/* Adds the alert's deliveries, attempts and calls to its item. */
static int alert_item_complete(Store *s, json_t *item)
{
	const char *id = json_string_value(json_object_get(item, "id"));

	for (size_t l = 0; l < ELEMENTSOF(alert_lists); l++) {
		sqlite3_stmt *st = store_stmt(s, alert_lists[l].sql);
		RowsJson ctx = {.list = json_array(),
		                .fields = alert_lists[l].fields,
		                .n_fields = alert_lists[l].n_fields};
		int r;

		if (!st || !ctx.list) {
			json_decref(ctx.list);
			return st ? -ENOMEM : STORE_IO;
		}
		store_bind_text(st, 1, id);
		r = store_each_row(s, st, "exporting an alert", rows_json_row, &ctx);
		if (r >= 0 && json_object_set_new(item, alert_lists[l].name, ctx.list) < 0)
			r = -ENOMEM;
		else if (r < 0)
			json_decref(ctx.list);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Walks the query (column 0 is the cursor, ?1 the cursor to start after, ?2 if it has one the
 * first revision wanted) and gathers items while the compact JSON array of them stays within
 * max_bytes; the first always goes in. */
static int export_rows(Store *s, int id, const char *after, uint64_t since, const Field *fields,
                       size_t n_fields, int (*complete)(Store *s, json_t *item), size_t max_bytes,
                       json_t **ret_items, char **ret_last)
{
	sqlite3_stmt *st = store_stmt(s, id);
	json_t *list = json_array();
	const char *last = NULL;
	size_t used = 2; /* [] */
	char *cursor;
	int rc, r = 0;

	if (!st || !list) {
		json_decref(list);
		return st ? -ENOMEM : STORE_IO;
	}
	store_bind_text(st, 1, after ? after : "");
	if (sqlite3_bind_parameter_count(st) >= 2)
		store_bind_u64(st, 2, since);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		bool first = json_array_size(list) == 0;
		json_t *item = NULL;
		size_t size;

		r = row_json(st, fields, n_fields, &item);
		if (r >= 0 && complete)
			r = complete(s, item);
		size = r >= 0 ? json_dumpb(item, NULL, 0, JSON_COMPACT) : 0;
		if (r >= 0 && size == 0)
			r = -ENOMEM;
		if (r < 0) {
			json_decref(item);
			break;
		}
		size += first ? 0 : 1; /* , */
		if (!first && used + size > max_bytes) {
			json_decref(item); /* the next payload's first */
			break;
		}
		if (json_array_append_new(list, item) < 0) {
			r = -ENOMEM;
			break;
		}
		last = json_string_value(json_object_get(item, fields[0].name));
		used += size;
		if (used >= max_bytes)
			break;
	}
	store_stmt_done(st);
	if (r >= 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
		r = store_fail(s, rc, "exporting");
	cursor = r >= 0 ? strdup(last ? last : after ? after : "") : NULL;
	if (r >= 0 && !cursor)
		r = -ENOMEM;
	if (r < 0) {
		json_decref(list);
		return r;
	}
	*ret_items = list;
	*ret_last = cursor;
	return (int)json_array_size(list);
}

int store_export_alerts(Store *s, const char *after_id, uint64_t since, size_t max_bytes,
                        json_t **ret_items, char ret_last_id[static 33])
{
	_cleanup_free_ char *last = NULL;
	json_t *items;
	int n;

	n = export_rows(s, SQL_EXPORT_ALERTS, after_id, since, alert_fields,
	                ELEMENTSOF(alert_fields), alert_item_complete, max_bytes, &items, &last);
	if (n < 0)
		return n;
	/* last is a copy: ret_last_id may be the after_id that was bound above */
	snprintf(ret_last_id, 33, "%s", last);
	*ret_items = items;
	return n;
}

int store_export_dedupe(Store *s, const char *after_key, uint64_t since, size_t max_bytes,
                        json_t **ret_items, char **ret_last_key)
{
	return export_rows(s, SQL_EXPORT_DEDUPE, after_key, since, dedupe_fields,
	                   ELEMENTSOF(dedupe_fields), NULL, max_bytes, ret_items, ret_last_key);
}

int store_export_inbox(Store *s, const char *after_key, size_t max_bytes, json_t **ret_items,
                       char **ret_last_key)
{
	return export_rows(s, SQL_EXPORT_INBOX, after_key, 0, inbox_fields,
	                   ELEMENTSOF(inbox_fields), NULL, max_bytes, ret_items, ret_last_key);
}

int store_export_silences(Store *s, const char *after_id, size_t max_bytes, json_t **ret_items,
                          char **ret_last_id)
{
	return export_rows(s, SQL_EXPORT_SILENCES, after_id, 0, silence_fields,
	                   ELEMENTSOF(silence_fields), NULL, max_bytes, ret_items, ret_last_id);
}

int store_export_heartbeats(Store *s, const char *after_name, size_t max_bytes, json_t **ret_items,
                            char **ret_last_name)
{
	return export_rows(s, SQL_EXPORT_HEARTBEATS, after_name, 0, heartbeat_fields,
	                   ELEMENTSOF(heartbeat_fields), NULL, max_bytes, ret_items, ret_last_name);
}

/* Items come from the peer: every field is checked before anything is written. Integers are
 * never negative; unknown keys are ignored, for the next protocol version. */
static bool item_valid(json_t *o, const Field *fields, size_t n_fields)
{
	if (!json_is_object(o))
		return false;
	for (size_t i = 0; i < n_fields; i++) {
		json_t *v = json_object_get(o, fields[i].name);

		if (json_is_null(v) &&
		    (fields[i].type == FIELD_TEXT_OR_NULL || fields[i].type == FIELD_INT_OR_NULL))
			continue;
		if (field_is_int(fields[i].type) ? !json_is_integer(v) || json_integer_value(v) < 0
		                                 : !json_is_string(v))
			return false;
	}
	return true;
}

static const char *item_text(json_t *o, const char *name)
{
	return json_string_value(json_object_get(o, name));
}

/* 0 for null. */
static uint64_t item_u64(json_t *o, const char *name)
{
	return (uint64_t)json_integer_value(json_object_get(o, name));
}

/* Binds fields[0..n_fields) of a checked item to ?first... */
static void bind_item(sqlite3_stmt *st, int first, json_t *o, const Field *fields, size_t n_fields)
{
	for (size_t i = 0; i < n_fields; i++) {
		json_t *v = json_object_get(o, fields[i].name);
		int at = first + (int)i;

		if (json_is_string(v))
			store_bind_text(st, at, json_string_value(v));
		else if (json_is_integer(v))
			sqlite3_bind_int64(st, at, (sqlite3_int64)json_integer_value(v));
		else
			sqlite3_bind_null(st, at);
	}
}

/* Unlike store_delivery_state_from_string(), refuses what it does not know. */
static int delivery_state_parse(const char *s)
{
	for (int i = 0; i < _DELIVERY_STATE_MAX; i++)
		if (s && streq(s, store_delivery_state_to_string((DeliveryState)i)))
			return i;
	return STORE_INVALID;
}

static int alert_item_check(json_t *item)
{
	json_t *e;
	size_t i;

	if (!item_valid(item, alert_fields, ELEMENTSOF(alert_fields)) ||
	    !id_is_valid(item_text(item, "id")))
		return STORE_INVALID;
	for (size_t l = 0; l < ELEMENTSOF(alert_lists); l++) {
		json_t *list = json_object_get(item, alert_lists[l].name);

		if (!json_is_array(list))
			return STORE_INVALID;
		json_array_foreach(list, i, e)
		{
			if (!item_valid(e, alert_lists[l].fields, alert_lists[l].n_fields) ||
			    (alert_lists[l].fields[0].name[0] == 't' && !*item_text(e, "to")))
				return STORE_INVALID;
		}
	}
	json_array_foreach(json_object_get(item, "dl"), i, e)
	{
		const char *kind = item_text(e, "kind");

		if (delivery_state_parse(item_text(e, "state")) < 0 ||
		    !(streq(kind, "to") || streq(kind, "copy")))
			return STORE_INVALID;
	}
	return 0;
}

/* What the merge compares before and after, to tell whether the alert's summary changed. */
typedef struct AlertSummary {
	bool exists, final, has_final_at;
	char state[16];
	uint64_t final_at, accepted_at;
} AlertSummary;

static int alert_summary(Store *s, const char *id, AlertSummary *ret)
{
	sqlite3_stmt *st = store_stmt(s, SQL_MERGE_ALERT_GET);
	AlertSummary a = {0};
	int rc;

	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		a.exists = true;
		snprintf(a.state, sizeof(a.state), "%s", sqlite3_column_text(st, 0));
		a.final = sqlite3_column_int(st, 1) != 0;
		a.has_final_at = sqlite3_column_type(st, 2) != SQLITE_NULL;
		a.final_at = (uint64_t)sqlite3_column_int64(st, 2);
		a.accepted_at = (uint64_t)sqlite3_column_int64(st, 3);
	}
	store_stmt_done(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_fail(s, rc, "reading an alert to merge");
	*ret = a;
	return 0;
}

static bool alert_summary_equal(const AlertSummary *a, const AlertSummary *b)
{
	return a->exists == b->exists && a->final == b->final &&
	       a->has_final_at == b->has_final_at && a->final_at == b->final_at &&
	       streq(a->state, b->state);
}

/* A delivery's place in the join: the state's rank first (delivered > sent > failed > cancelled >
 * expired > sending > queued), then a tie-break between equal states that both nodes make alike: a
 * queued delivery keeps its later retry, a sending one the (node, modem) that sorts greater. */
typedef struct DeliveryRow {
	uint64_t round; /* a later round (an escalation paging the number again) wins whole */
	DeliveryState state;
	uint64_t next_try_at;
	const char *node, *modem;
} DeliveryRow;

/* NULL sorts first. */
static int strcmp_null(const char *a, const char *b)
{
	if (!a || !b)
		return (a != NULL) - (b != NULL);
	return strcmp(a, b);
}

static int cmp_u64(uint64_t a, uint64_t b)
{
	return (a > b) - (a < b);
}

static int delivery_row_cmp(const DeliveryRow *a, const DeliveryRow *b)
{
	int c = cmp_u64(a->round, b->round);

	if (c == 0)
		c = store_delivery_state_rank(a->state) - store_delivery_state_rank(b->state);
	if (c == 0 && a->state == DELIVERY_QUEUED)
		c = cmp_u64(a->next_try_at, b->next_try_at);
	if (c == 0)
		c = strcmp_null(a->node, b->node);
	if (c == 0)
		c = strcmp_null(a->modem, b->modem);
	if (c == 0)
		c = cmp_u64(a->next_try_at, b->next_try_at);
	return c;
}

/* The row that wins the comparison is kept whole; permanent failures only grow. */
static int merge_delivery(Store *s, const char *alert_id, json_t *d)
{
	sqlite3_stmt *st = store_stmt(s, SQL_MERGE_DELIVERY_GET);
	DeliveryRow remote = {.state = (DeliveryState)delivery_state_parse(item_text(d, "state")),
	                      .next_try_at = item_u64(d, "next"),
	                      .node = item_text(d, "node"),
	                      .modem = item_text(d, "modem"),
	                      .round = item_u64(d, "round")},
	            local;
	uint64_t permanent = item_u64(d, "pf"), local_permanent;
	bool wins, earlier;
	int rc, r;

	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, alert_id);
	store_bind_text(st, 2, item_text(d, "to"));
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		store_stmt_done(st);
		if (rc != SQLITE_DONE)
			return store_fail(s, rc, "reading a delivery to merge");
		st = store_stmt(s, SQL_MERGE_DELIVERY_INSERT);
		if (!st)
			return STORE_IO;
		store_bind_text(st, 1, alert_id);
		bind_item(st, 2, d, delivery_fields, ELEMENTSOF(delivery_fields));
		r = store_step_done(s, st, "merging a delivery");
		return r < 0 ? r : sqlite3_changes(s->db) > 0;
	}
	local = (DeliveryRow){
	        .state = store_delivery_state_from_string((const char *)sqlite3_column_text(st, 0)),
	        .next_try_at = (uint64_t)sqlite3_column_int64(st, 1),
	        .node = (const char *)sqlite3_column_text(st, 2),
	        .modem = (const char *)sqlite3_column_text(st, 3),
	        .round = (uint64_t)sqlite3_column_int64(st, 5)};
	local_permanent = (uint64_t)sqlite3_column_int64(st, 4);
	wins = delivery_row_cmp(&remote, &local) > 0;
	store_stmt_done(st); /* local's strings end here */

	/* The earlier acceptance (of an alert both sides made, see SQL_MERGE_ALERT_ORIGIN). */
	st = store_stmt(s, SQL_MERGE_DELIVERY_ORIGIN);
	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, alert_id);
	store_bind_text(st, 2, item_text(d, "to"));
	store_bind_u64(st, 3, item_u64(d, "acc"));
	r = store_step_done(s, st, "merging a delivery's acceptance");
	if (r < 0)
		return r;
	earlier = sqlite3_changes(s->db) > 0;

	/* Held for one message ([limits], a flood) on either side: held (a join). */
	if (item_u64(d, "bundle") != 0) {
		static const char hold_sql[] =
		        "UPDATE deliveries SET bundle = 1 WHERE alert_id = ?1 "
		        "AND number = ?2 AND bundle = 0";

		st = store_cached(s, hold_sql);
		if (!st)
			return STORE_IO;
		store_bind_text(st, 1, alert_id);
		store_bind_text(st, 2, item_text(d, "to"));
		r = store_step_done(s, st, "merging a held delivery");
		if (r < 0)
			return r;
		earlier = earlier || sqlite3_changes(s->db) > 0;
	}

	if (wins) {
		r = store_delivery_set(s, alert_id, item_text(d, "to"), remote.state,
		                       remote.next_try_at, remote.node, remote.modem,
		                       (unsigned)MAX(permanent, local_permanent));
		if (r >= 0 && remote.round > local.round)
			r = store_delivery_set_round(s, alert_id, item_text(d, "to"), remote.round);
		return r < 0 ? r : 1;
	}
	if (permanent <= local_permanent)
		return earlier;
	st = store_stmt(s, SQL_MERGE_DELIVERY_FAILURES);
	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, alert_id);
	store_bind_text(st, 2, item_text(d, "to"));
	store_bind_u64(st, 3, permanent);
	r = store_step_done(s, st, "merging permanent failures");
	return r < 0 ? r : 1;
}

/* Attempts are a set; a report known on one side only is taken (on both, the greater). */
static int merge_attempt(Store *s, const char *alert_id, json_t *a)
{
	sqlite3_stmt *st = store_stmt(s, SQL_ATTEMPT_INSERT);
	const char *report = item_text(a, "report");
	int r, changed;

	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, alert_id);
	bind_item(st, 2, a, attempt_fields, ELEMENTSOF(attempt_fields) - 1);
	r = store_step_done(s, st, "merging an attempt");
	if (r < 0)
		return r;
	changed = sqlite3_changes(s->db) > 0;
	if (!report)
		return changed;

	st = store_stmt(s, SQL_MERGE_ATTEMPT_REPORT);
	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, alert_id);
	bind_item(st, 2, a, attempt_fields, ATTEMPT_KEY_FIELDS);
	store_bind_text(st, 6, report);
	r = store_step_done(s, st, "merging a report");
	if (r < 0)
		return r;
	return changed || sqlite3_changes(s->db) > 0;
}

/* Lists that are sets: an item is inserted unless it is there (1 when it was not). */
static int merge_insert(Store *s, int sql, const char *alert_id, json_t *item, const Field *fields,
                        size_t n_fields)
{
	sqlite3_stmt *st = store_stmt(s, sql);
	int r;

	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, alert_id);
	bind_item(st, 2, item, fields, n_fields);
	r = store_step_done(s, st, "merging an alert's list");
	return r < 0 ? r : sqlite3_changes(s->db) > 0;
}

static int merge_history(Store *s, const char *alert_id, json_t *h)
{
	return merge_insert(s, SQL_HISTORY_INSERT, alert_id, h, history_fields,
	                    ELEMENTSOF(history_fields));
}

static int merge_call(Store *s, const char *alert_id, json_t *c)
{
	return merge_insert(s, SQL_CALL_INSERT, alert_id, c, call_fields, ELEMENTSOF(call_fields));
}

int store_merge_alert(Store *s, json_t *item)
{
	static int (*const merge_list[])(Store *, const char *, json_t *) = {
	        merge_delivery, merge_attempt, merge_call, merge_history};
	AlertSummary before, after;
	sqlite3_stmt *st;
	const char *id;
	uint64_t at;
	int r, changed = 0;

	_Static_assert(ELEMENTSOF(merge_list) == ELEMENTSOF(alert_lists), "one merge a list");
	r = alert_item_check(item);
	if (r < 0)
		return r;
	id = item_text(item, "id");
	r = alert_summary(s, id, &before);
	if (r < 0)
		return r;

	if (!before.exists) {
		st = store_stmt(s, SQL_ALERT_INSERT);
		if (!st)
			return STORE_IO;
		bind_item(st, 1, item, alert_fields, ALERT_INSERT_FIELDS);
		r = store_step_done(s, st, "merging an alert");
		if (r < 0)
			return r;
		s->open_alerts++; /* inserted open: alert_refresh() below settles it */
		changed = 1;
	} else {
		st = store_stmt(s, SQL_MERGE_ALERT_ORIGIN);
		if (!st)
			return STORE_IO;
		store_bind_text(st, 1, id);
		store_bind_u64(st, 2, item_u64(item, "acc"));
		store_bind_u64(st, 3, item_u64(item, "exp"));
		store_bind_text(st, 4, item_text(item, "node"));
		r = store_step_done(s, st, "merging an alert's origin");
		if (r < 0)
			return r;
		if (sqlite3_changes(s->db) > 0)
			changed = 1;
	}
	if (!json_is_null(json_object_get(item, "ack_at"))) {
		st = store_stmt(s, SQL_MERGE_ACK);
		if (!st)
			return STORE_IO;
		store_bind_text(st, 1, id);
		bind_item(st, 2, item, alert_fields + ALERT_ACK_FIELDS, 3);
		r = store_step_done(s, st, "merging an acknowledgment");
		if (r < 0)
			return r;
		if (sqlite3_changes(s->db) > 0)
			changed = 1;
	}
	st = store_stmt(s, SQL_MERGE_ESCALATION);
	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, id);
	bind_item(st, 2, item, alert_fields + ALERT_ESC_FIELDS, 2);
	bind_item(st, 4, item, alert_fields + ALERT_TIMER_FIELD, 1);
	r = store_step_done(s, st, "merging an escalation");
	if (r < 0)
		return r;
	if (sqlite3_changes(s->db) > 0)
		changed = 1;
	if (!json_is_null(json_object_get(item, "res_at"))) {
		st = store_stmt(s, SQL_MERGE_RESOLVE);
		if (!st)
			return STORE_IO;
		store_bind_text(st, 1, id);
		bind_item(st, 2, item, alert_fields + ALERT_RES_FIELDS, 3);
		r = store_step_done(s, st, "merging a resolve");
		if (r < 0)
			return r;
		if (sqlite3_changes(s->db) > 0)
			changed = 1;
	}
	if (json_is_string(json_object_get(item, "silence"))) {
		r = store_alert_silence(s, id, item_text(item, "silence"), item_u64(item, "acc"));
		if (r < 0)
			return r;
		if (r > 0)
			changed = 1;
	}
	if (!json_is_null(json_object_get(item, "ack_at")) ||
	    !json_is_null(json_object_get(item, "res_at"))) {
		/* acknowledged or resolved on the other side; alert_refresh() below cancels what
		 * a resolved alert still had queued */
		r = store_escalation_stop(s, id);
		if (r < 0)
			return r;
	}
	for (size_t l = 0; l < ELEMENTSOF(alert_lists); l++) {
		json_t *e;
		size_t i;

		json_array_foreach(json_object_get(item, alert_lists[l].name), i, e)
		{
			r = merge_list[l](s, id, e);
			if (r < 0)
				return r;
			if (r > 0)
				changed = 1;
		}
	}

	at = MAX(item_u64(item, "fin"), before.has_final_at ? before.final_at : 0);
	at = MAX(at, before.exists ? before.accepted_at : item_u64(item, "acc"));
	r = store_alert_refresh(s, id, at);
	if (r < 0)
		return r;
	r = alert_summary(s, id, &after);
	if (r < 0)
		return r;
	return changed || !alert_summary_equal(&before, &after);
}

int store_merge_dedupe(Store *s, json_t *item)
{
	sqlite3_stmt *st;
	int r;

	if (!item_valid(item, dedupe_fields, ELEMENTSOF(dedupe_fields)) ||
	    !id_is_valid(item_text(item, "alert_id")))
		return STORE_INVALID;
	st = store_stmt(s, SQL_MERGE_DEDUPE);
	if (!st)
		return STORE_IO;
	bind_item(st, 1, item, dedupe_fields, ELEMENTSOF(dedupe_fields));
	r = store_step_done(s, st, "merging a dedupe key");
	return r < 0 ? r : sqlite3_changes(s->db) > 0;
}

int store_merge_inbox(Store *s, json_t *item)
{
	size_t n_fields = ELEMENTSOF(inbox_fields);
	sqlite3_stmt *st;
	int r;

	/* A peer before schema 6 sends no "quarantine" (the last field): a received SMS. */
	if (json_is_object(item) && !json_object_get(item, "quarantine"))
		n_fields--;
	if (!item_valid(item, inbox_fields, n_fields))
		return STORE_INVALID;
	st = store_stmt(s, SQL_INBOX_INSERT);
	if (!st)
		return STORE_IO;
	bind_item(st, 1, item, inbox_fields, ELEMENTSOF(inbox_fields));
	r = store_step_done(s, st, "merging a received SMS");
	return r < 0 ? r : sqlite3_changes(s->db) > 0;
}

/* A string of the item no longer than max bytes (NULL and absent pass for an optional one). */
static bool item_fits(json_t *item, const char *name, size_t max)
{
	json_t *v = json_object_get(item, name);

	return !json_is_string(v) || json_string_length(v) <= max;
}

int store_merge_silence(Store *s, json_t *item)
{
	sqlite3_stmt *st;
	int r;

	if (!item_valid(item, silence_fields, ELEMENTSOF(silence_fields)) ||
	    !id_is_valid(item_text(item, "id")) ||
	    !store_silence_field_valid(item_text(item, "field")) ||
	    !item_fits(item, "value", SILENCE_VALUE_MAX) || !*item_text(item, "value") ||
	    !item_fits(item, "by", SILENCE_NAME_MAX) ||
	    !item_fits(item, "reason", SILENCE_VALUE_MAX) ||
	    !item_fits(item, "node", SILENCE_NAME_MAX) ||
	    !item_fits(item, "removed_by", SILENCE_NAME_MAX) ||
	    item_u64(item, "until") <= item_u64(item, "created_at"))
		return STORE_INVALID;
	st = store_stmt(s, SQL_SILENCE_PUT);
	if (!st)
		return STORE_IO;
	bind_item(st, 1, item, silence_fields, ELEMENTSOF(silence_fields));
	r = store_step_done(s, st, "merging a silence");
	return r < 0 ? r : sqlite3_changes(s->db) > 0;
}

int store_merge_heartbeat(Store *s, json_t *item)
{
	if (!item_valid(item, heartbeat_fields, ELEMENTSOF(heartbeat_fields)) ||
	    !validate_name(item_text(item, "name")))
		return STORE_INVALID;
	return store_heartbeat_put(s, item_text(item, "name"), item_u64(item, "last_at"),
	                           item_u64(item, "missed_at"));
}
