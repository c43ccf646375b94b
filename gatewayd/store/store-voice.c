/* store-voice: the voice calls made for alerts, and the questions the voice fallback asks (which
 * delivery may be called, which critical alerts are still open). */
#include "store-internal.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"
#include "util.h"

int store_call_insert(Store *s, const CallRecord *c)
{
	sqlite3_stmt *st;
	int r;

	if (!c->number || !*c->number)
		return STORE_INVALID; /* a call to nobody: a peer's merge would refuse the alert */
	st = store_stmt(s, SQL_CALL_INSERT);
	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, c->alert_id);
	store_bind_text(st, 2, c->number);
	store_bind_text(st, 3, c->node);
	store_bind_text(st, 4, c->modem);
	store_bind_u64(st, 5, c->at);
	store_bind_text(st, 6, c->outcome);
	store_bind_u64(st, 7, c->duration_sec);
	store_bind_text(st, 8, c->error && *c->error ? c->error : NULL);
	sqlite3_bind_int(st, 9, c->dtmf_ack);
	r = store_step_done(s, st, "recording a call");
	return r < 0 ? r : sqlite3_changes(s->db) > 0;
}

int store_voice_summary(Store *s, uint64_t *ret_calls, char ret_last[static 16])
{
	static const char sql[] = "SELECT (SELECT n FROM tallies WHERE name = 'calls'), "
	                          "(SELECT outcome FROM calls ORDER BY at DESC LIMIT 1)";
	sqlite3_stmt *st = store_cached(s, sql);
	int rc;

	if (!st)
		return STORE_IO;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		store_stmt_done(st);
		return store_fail(s, rc, "reading the voice summary");
	}
	*ret_calls = (uint64_t)sqlite3_column_int64(st, 0);
	snprintf(ret_last, 16, "%s",
	         sqlite3_column_text(st, 1) ? (const char *)sqlite3_column_text(st, 1) : "");
	store_stmt_done(st);
	return 0;
}

int store_voice_candidate(Store *s, const char *alert_id, const char *number, VoiceCandidate *ret)
{
	static const char sql[] =
	        "SELECT a.priority, a.ack_at IS NOT NULL OR a.res_at IS NOT NULL, d.state, d.kind, "
	        "COUNT(c.at), COUNT(CASE WHEN c.outcome = 'answered' OR c.dtmf_ack THEN 1 END), "
	        "MAX(c.at) "
	        "FROM alerts a JOIN deliveries d ON d.alert_id = a.id "
	        "LEFT JOIN calls c ON c.alert_id = a.id AND c.number = d.number "
	        "WHERE a.id = ?1 AND d.number = ?2 GROUP BY a.id, d.number";
	static const char failed_sql[] = "SELECT DISTINCT modem FROM attempts WHERE alert_id = ?1 "
	                                 "AND number = ?2 AND node = ?3 AND result = 'error'";
	_cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL, *fs = NULL;
	VoiceCandidate v = {0};
	int rc;

	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "preparing a voice check");
	store_bind_text(st, 1, alert_id);
	store_bind_text(st, 2, number);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return STORE_NOT_FOUND;
	if (rc != SQLITE_ROW)
		return store_fail(s, rc, "checking for a voice call");
	v.critical = sqlite3_column_int(st, 0) != 0;
	v.acknowledged = sqlite3_column_int(st, 1) != 0;
	v.state = store_delivery_state_from_string((const char *)sqlite3_column_text(st, 2));
	v.copy = streq_ptr((const char *)sqlite3_column_text(st, 3), "copy");
	v.calls = (unsigned)sqlite3_column_int(st, 4);
	v.reached = sqlite3_column_int(st, 5) > 0;
	v.last_call_at = (uint64_t)sqlite3_column_int64(st, 6);

	rc = sqlite3_prepare_v2(s->db, failed_sql, -1, &fs, NULL);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "preparing failed modems");
	store_bind_text(fs, 1, alert_id);
	store_bind_text(fs, 2, number);
	store_bind_text(fs, 3, ret->node);
	while ((rc = sqlite3_step(fs)) == SQLITE_ROW && v.n_failed_modems < VOICE_MAX_MODEMS)
		snprintf(v.failed_modems[v.n_failed_modems++], sizeof(v.failed_modems[0]), "%s",
		         sqlite3_column_text(fs, 0));
	v.node = ret->node;
	*ret = v;
	return 0;
}

int store_open_critical(Store *s,
                        int (*cb)(const char *alert_id, const char *number, void *userdata),
                        void *userdata)
{
	static const char sql[] = "SELECT d.alert_id, d.number FROM deliveries d "
	                          "JOIN alerts a ON a.id = d.alert_id "
	                          "WHERE d.state IN ('queued', 'sending') AND d.priority = 1 AND "
	                          "d.kind = 'to' AND a.ack_at IS NULL AND a.res_at IS NULL "
	                          "LIMIT 1000";
	_cleanup_(sqlite3_finalizep) sqlite3_stmt *st = NULL;
	int rc, r = 0;

	rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "preparing open critical deliveries");
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = cb((const char *)sqlite3_column_text(st, 0),
		       (const char *)sqlite3_column_text(st, 1), userdata);
		if (r < 0)
			break;
	}
	return r < 0 ? r : 0;
}

int store_voice_pending(Store *s, const char *number, size_t limit,
                        int (*cb)(const char *alert_id, void *userdata), void *userdata)
{
	static const char sql[] = "SELECT d.alert_id FROM deliveries d "
	                          "JOIN alerts a ON a.id = d.alert_id "
	                          "WHERE d.number = ?1 AND d.state IN ('queued', 'sending') AND "
	                          "d.priority = 1 AND d.kind = 'to' AND a.ack_at IS NULL AND "
	                          "a.res_at IS NULL ORDER BY d.accepted_at, d.alert_id LIMIT ?2";
	sqlite3_stmt *st = store_cached(s, sql);
	int rc, r = 0;

	if (!st)
		return STORE_IO;
	store_bind_text(st, 1, number);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		r = cb((const char *)sqlite3_column_text(st, 0), userdata);
		if (r < 0)
			break;
	}
	if (r >= 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
		r = store_fail(s, rc, "listing a number's pending critical alerts");
	store_stmt_done(st);
	return r;
}
