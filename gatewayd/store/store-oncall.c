/* store-oncall: the on-call overrides, one row per role.
 *
 * An override is replicated state like an alert: it is written while applying a change in
 * agreed order, and exchanged and merged after a rejoin. Both paths go through one upsert whose
 * WHERE clause is the join: a write replaces the row only when it is greater in the total order
 * (set_at, contact, until, set_by), with a cleared contact (NULL) sorting first. Two halves of a
 * partition that each set or cleared an override therefore end with the same row, whichever
 * merges first, and a change applied twice changes nothing the second time. No history is kept:
 * the latest word on a role is all that decides who is paged.
 *
 * Times are realtime microseconds carried by the changes; nothing here reads a clock. */
#include "store-internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "macro.h"

static const char sql_override_set[] =
        "INSERT INTO overrides(role, contact, until, set_at, set_by) VALUES (?1, ?2, ?3, ?4, ?5) "
        "ON CONFLICT(role) DO UPDATE SET contact = excluded.contact, until = excluded.until, "
        "set_at = excluded.set_at, set_by = excluded.set_by "
        "WHERE (excluded.set_at, coalesce(excluded.contact, ''), excluded.until, "
        "coalesce(excluded.set_by, '')) > (overrides.set_at, coalesce(overrides.contact, ''), "
        "overrides.until, coalesce(overrides.set_by, ''))";

/* The columns of the three queries below, in this order. */
#define OVERRIDE_COLUMNS "role, contact, until, set_at, set_by"

static const char sql_override_get[] = "SELECT " OVERRIDE_COLUMNS " FROM overrides "
                                       "WHERE role = ?1 AND contact IS NOT NULL AND until > ?2";
static const char sql_override_list[] = "SELECT " OVERRIDE_COLUMNS " FROM overrides "
                                        "ORDER BY role";
static const char sql_override_export[] = "SELECT " OVERRIDE_COLUMNS " FROM overrides "
                                          "WHERE role > ?1 ORDER BY role";

static bool name_fits(const char *s, bool may_be_empty)
{
	size_t n = s ? strlen(s) : 0;

	return (may_be_empty || n > 0) && n <= OVERRIDE_NAME_MAX;
}

int store_override_set(Store *s, const char *role, const char *contact, uint64_t until,
                       uint64_t set_at, const char *set_by)
{
	sqlite3_stmt *st;
	int r;

	if (!name_fits(role, false) || (contact && !name_fits(contact, false)) ||
	    (set_by && !name_fits(set_by, true)))
		return STORE_INVALID;
	st = store_cached(s, sql_override_set);
	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, role);
	store_bind_text(st, 2, contact);
	store_bind_u64(st, 3, contact ? until : 0);
	store_bind_u64(st, 4, set_at);
	store_bind_text(st, 5, set_by);
	r = store_step_done(s, st, "setting an on-call override");
	return r < 0 ? r : sqlite3_changes(s->db) > 0;
}

static void column_copy(sqlite3_stmt *st, int i, char ret[static OVERRIDE_NAME_MAX + 1])
{
	const char *v = (const char *)sqlite3_column_text(st, i);

	snprintf(ret, OVERRIDE_NAME_MAX + 1, "%s", v ? v : "");
}

static void row_override(sqlite3_stmt *st, Override *ret)
{
	column_copy(st, 0, ret->role);
	column_copy(st, 1, ret->contact);
	ret->until = (uint64_t)sqlite3_column_int64(st, 2);
	ret->set_at = (uint64_t)sqlite3_column_int64(st, 3);
	column_copy(st, 4, ret->set_by);
}

static int get_row(sqlite3_stmt *st, void *ctx)
{
	row_override(st, ctx);
	return 0;
}

int store_override_get(Store *s, const char *role, uint64_t at, Override *ret)
{
	sqlite3_stmt *st = store_cached(s, sql_override_get);
	Override o = {0};
	int r;

	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, role);
	store_bind_u64(st, 2, at);
	r = store_each_row(s, st, "reading an on-call override", get_row, &o);
	if (r < 0)
		return r;
	if (!o.role[0])
		return 0;
	*ret = o;
	return 1;
}

typedef struct ListCallback {
	int (*cb)(const Override *o, void *userdata);
	void *userdata;
} ListCallback;

static int list_row(sqlite3_stmt *st, void *ctx)
{
	ListCallback *lc = ctx;
	Override o;

	row_override(st, &o);
	return lc->cb(&o, lc->userdata);
}

int store_overrides(Store *s, int (*cb)(const Override *o, void *userdata), void *userdata)
{
	sqlite3_stmt *st = store_cached(s, sql_override_list);
	ListCallback ctx = {.cb = cb, .userdata = userdata};

	if (!st)
		return STORE_IO;
	return store_each_row(s, st, "listing on-call overrides", list_row, &ctx);
}

static json_t *override_item(const Override *o)
{
	return json_pack("{s:s, s:s?, s:I, s:I, s:s?}", "role", o->role, "contact",
	                 o->contact[0] ? o->contact : NULL, "until", (json_int_t)o->until, "set_at",
	                 (json_int_t)o->set_at, "set_by", o->set_by[0] ? o->set_by : NULL);
}

typedef struct Export {
	json_t *items;
	size_t used, max_bytes;
	char last[OVERRIDE_NAME_MAX + 1];
} Export;

/* Stops with -ENOBUFS once the next item would not fit. */
static int export_row(sqlite3_stmt *st, void *ctx)
{
	Export *e = ctx;
	bool first = json_array_size(e->items) == 0;
	json_t *item;
	size_t size;
	Override o;

	row_override(st, &o);
	item = override_item(&o);
	size = item ? json_dumpb(item, NULL, 0, JSON_COMPACT) + !first : 0;
	if (!item || size == 0) {
		json_decref(item);
		return -ENOMEM;
	}
	if (!first && e->used + size > e->max_bytes) {
		json_decref(item);
		return -ENOBUFS;
	}
	if (json_array_append_new(e->items, item) < 0)
		return -ENOMEM;
	e->used += size;
	memcpy(e->last, o.role, sizeof(e->last));
	return 0;
}

int store_export_overrides(Store *s, const char *after_role, size_t max_bytes, json_t **ret_items,
                           char **ret_last_role)
{
	sqlite3_stmt *st = store_cached(s, sql_override_export);
	Export e = {.items = json_array(), .used = 2, .max_bytes = max_bytes};
	char *cursor;
	int r;

	if (!st || !e.items) {
		json_decref(e.items);
		return st ? -ENOMEM : STORE_IO;
	}
	snprintf(e.last, sizeof(e.last), "%s", after_role ? after_role : "");
	store_bind_text(st, 1, after_role ? after_role : "");
	r = store_each_row(s, st, "exporting on-call overrides", export_row, &e);
	if (r == -ENOBUFS)
		r = 0; /* the rest goes in the next payload */
	cursor = r >= 0 ? strdup(e.last) : NULL;
	if (r >= 0 && !cursor)
		r = -ENOMEM;
	if (r < 0) {
		json_decref(e.items);
		return r;
	}
	*ret_items = e.items;
	*ret_last_role = cursor;
	return (int)json_array_size(e.items);
}

/* A string field of an item from the peer: a string, or null where allowed. */
static bool item_string(json_t *item, const char *name, bool nullable, const char **ret)
{
	json_t *v = json_object_get(item, name);

	if (nullable && (!v || json_is_null(v))) {
		*ret = NULL;
		return true;
	}
	*ret = json_string_value(v);
	return *ret != NULL;
}

static bool item_time(json_t *item, const char *name, uint64_t *ret)
{
	json_t *v = json_object_get(item, name);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*ret = (uint64_t)json_integer_value(v);
	return true;
}

int store_merge_override(Store *s, json_t *item)
{
	const char *role, *contact, *set_by;
	uint64_t until, set_at;

	/* Checked before anything is written; unknown keys are left for later versions. */
	if (!json_is_object(item) || !item_string(item, "role", false, &role) ||
	    !item_string(item, "contact", true, &contact) ||
	    !item_string(item, "set_by", true, &set_by) || !item_time(item, "until", &until) ||
	    !item_time(item, "set_at", &set_at))
		return STORE_INVALID;
	return store_override_set(s, role, contact, until, set_at, set_by);
}
