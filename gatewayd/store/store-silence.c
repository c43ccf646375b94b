/* store-silence: silences, one row each, and the alerts they held back.
 *
 * A silence is replicated state like an override: written while applying its change in agreed
 * order, exchanged and merged after a rejoin. Its fields never change once made (its id comes
 * from the request that made it); only its removal does, and the merge keeps the earliest
 * removal, so two halves of a partition end with the same row whichever merges first. Whether a
 * silence holds at an instant is read from the row (made before it, ends after it, not removed
 * by then): expiry needs no timer and no change. Times are realtime microseconds from the
 * changes; nothing here reads a clock. */
#include "store-internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "util.h"

/* The columns of the queries below, in this order (those of SQL_EXPORT_SILENCES too). */
#define SILENCE_COLUMNS                                                                            \
	"id, field, value, except_critical, created_at, until, set_by, reason, node, removed_at, " \
	"removed_by"

bool store_silence_field_valid(const char *field)
{
	return streq_ptr(field, "key_prefix") || streq_ptr(field, "source") ||
	       streq_ptr(field, "text_contains");
}

static bool fits(const char *s, size_t max, bool may_be_empty)
{
	size_t n = s ? strlen(s) : 0;

	return s && (may_be_empty || n > 0) && n <= max;
}

int store_silence_put(Store *s, const Silence *si)
{
	sqlite3_stmt *st;
	int r;

	if (!id_is_valid(si->id) || !store_silence_field_valid(si->field) ||
	    !fits(si->value, SILENCE_VALUE_MAX, false) || !fits(si->by, SILENCE_NAME_MAX, true) ||
	    !fits(si->reason, SILENCE_VALUE_MAX, true) || !fits(si->node, SILENCE_NAME_MAX, true) ||
	    !fits(si->removed_by, SILENCE_NAME_MAX, true) || si->until <= si->created_at)
		return STORE_INVALID;
	st = store_stmt(s, SQL_SILENCE_PUT);
	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, si->id);
	store_bind_text(st, 2, si->field);
	store_bind_text(st, 3, si->value);
	sqlite3_bind_int(st, 4, si->except_critical);
	store_bind_u64(st, 5, si->created_at);
	store_bind_u64(st, 6, si->until);
	store_bind_text(st, 7, si->by);
	store_bind_text(st, 8, si->reason);
	store_bind_text(st, 9, si->node);
	if (si->removed_at) {
		store_bind_u64(st, 10, si->removed_at);
		store_bind_text(st, 11, si->removed_by);
	} else {
		sqlite3_bind_null(st, 10);
		sqlite3_bind_null(st, 11);
	}
	r = store_step_done(s, st, "storing a silence");
	return r < 0 ? r : sqlite3_changes(s->db) > 0;
}

int store_silence_remove(Store *s, const char *id, uint64_t at, const char *by)
{
	static const char sql[] = "UPDATE silences SET removed_at = ?2, removed_by = ?3 "
	                          "WHERE id = ?1 AND removed_at IS NULL AND until > ?2";
	sqlite3_stmt *st = store_cached(s, sql);
	int r;

	if (!fits(by, SILENCE_NAME_MAX, true))
		return STORE_INVALID;
	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, id);
	store_bind_u64(st, 2, at);
	store_bind_text(st, 3, by);
	r = store_step_done(s, st, "removing a silence");
	return r < 0 ? r : sqlite3_changes(s->db) > 0;
}

static void copy_column(sqlite3_stmt *st, int i, char *ret, size_t size)
{
	const char *v = (const char *)sqlite3_column_text(st, i);

	snprintf(ret, size, "%s", v ? v : "");
}

static void row_silence(sqlite3_stmt *st, Silence *ret)
{
	Silence si = {0};

	copy_column(st, 0, si.id, sizeof(si.id));
	copy_column(st, 1, si.field, sizeof(si.field));
	copy_column(st, 2, si.value, sizeof(si.value));
	si.except_critical = sqlite3_column_int(st, 3) != 0;
	si.created_at = (uint64_t)sqlite3_column_int64(st, 4);
	si.until = (uint64_t)sqlite3_column_int64(st, 5);
	copy_column(st, 6, si.by, sizeof(si.by));
	copy_column(st, 7, si.reason, sizeof(si.reason));
	copy_column(st, 8, si.node, sizeof(si.node));
	si.removed_at = (uint64_t)sqlite3_column_int64(st, 9); /* 0 for NULL */
	copy_column(st, 10, si.removed_by, sizeof(si.removed_by));
	*ret = si;
}

typedef struct SilenceCallback {
	int (*cb)(const Silence *si, void *userdata);
	void *userdata;
} SilenceCallback;

static int silence_row(sqlite3_stmt *st, void *ctx)
{
	SilenceCallback *c = ctx;
	Silence si;

	row_silence(st, &si);
	return c->cb(&si, c->userdata);
}

int store_silences_at(Store *s, uint64_t at, int (*cb)(const Silence *si, void *userdata),
                      void *userdata)
{
	static const char sql[] = "SELECT " SILENCE_COLUMNS " FROM silences WHERE "
	                          "created_at <= ?1 AND until > ?1 AND "
	                          "(removed_at IS NULL OR removed_at > ?1) "
	                          "ORDER BY created_at, id LIMIT 1000";
	sqlite3_stmt *st = store_cached(s, sql);
	SilenceCallback c = {.cb = cb, .userdata = userdata};

	if (!st)
		return STORE_IO;
	store_bind_u64(st, 1, at);
	return store_each_row(s, st, "listing silences", silence_row, &c);
}

static int get_row(const Silence *si, void *userdata)
{
	*(Silence *)userdata = *si;
	return 0;
}

int store_silence_get(Store *s, const char *id, Silence *ret)
{
	static const char sql[] = "SELECT " SILENCE_COLUMNS " FROM silences WHERE id = ?1";
	sqlite3_stmt *st = store_cached(s, sql);
	SilenceCallback c = {.cb = get_row, .userdata = ret};
	int r;

	if (!st)
		return STORE_IO;
	ret->id[0] = 0;
	store_bind_text(st, 1, id);
	r = store_each_row(s, st, "reading a silence", silence_row, &c);
	if (r < 0)
		return r;
	return ret->id[0] ? 0 : STORE_NOT_FOUND;
}

json_t *store_silence_json(const Silence *si, bool with_removal)
{
	json_t *o = json_pack("{s:s, s:{s:s}, s:b, s:o, s:o, s:s, s:s, s:s}", "silence", si->id,
	                      "match", si->field, si->value, "except_critical", si->except_critical,
	                      "created_at", store_json_time_or_null(si->created_at), "until",
	                      store_json_time_or_null(si->until), "by", si->by, "reason",
	                      si->reason, "node", si->node);

	if (o && with_removal)
		json_object_set_new(o, "removed",
		                    si->removed_at
		                            ? json_pack("{s:o, s:s}", "at",
		                                        store_json_time_or_null(si->removed_at),
		                                        "by", si->removed_by)
		                            : json_null());
	return o;
}

int store_alert_silence(Store *s, const char *alert_id, const char *silence_id, uint64_t at)
{
	static const char sql[] = "UPDATE alerts SET silence = ?2 WHERE id = ?1 AND "
	                          "(silence IS NULL OR silence > ?2)";
	sqlite3_stmt *st = store_cached(s, sql);
	int r;

	if (!id_is_valid(silence_id))
		return STORE_INVALID;
	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, alert_id);
	store_bind_text(st, 2, silence_id);
	r = store_step_done(s, st, "silencing an alert");
	if (r < 0 || sqlite3_changes(s->db) == 0)
		return r < 0 ? r : 0;
	r = store_escalation_stop(s, alert_id);
	if (r < 0)
		return r;
	r = store_alert_refresh(s, alert_id, at);
	return r < 0 ? r : 1;
}
