/* Unit tests of store: the state machine's transitions are monotonic and idempotent, dedupe
 * windows are fixed from the first acceptance, and the database is durable (WAL + FULL). */
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "store-internal.h"
#include "store.h"
#include "test.h"

#define SEC 1000000ULL
static char dir[] = "/tmp/test-store-XXXXXX";

static const char *to1[] = {"+32470000001", "+32470000002"};

static void insert_in(Store *s, const char *id, const char *key, uint64_t at)
{
	NewAlert a = {.id = id,
	              .key = key,
	              .text = "db01 DOWN",
	              .node = "a",
	              .accepted_at = at,
	              .expires_at = at + 3600 * SEC,
	              .to = to1,
	              .n_to = 2};

	check_int(store_alert_insert(s, &a), 0);
}

static void insert(Store *s, const char *id, const char *key, uint64_t at)
{
	check_int(store_begin(s), 0);
	insert_in(s, id, key, at);
	check_int(store_commit(s), 0);
}

static SendResult result(bool ok, bool permanent, uint64_t at)
{
	return (SendResult){.node = "a",
	                    .modem = "gsm0",
	                    .at = at,
	                    .ok = ok,
	                    .permanent = permanent,
	                    .error = ok ? NULL : "+CMS ERROR: 500",
	                    .retry_min = 5,
	                    .retry_max = 300,
	                    .max_permanent_failures = 2};
}

static void test_durability_settings(void)
{
	char path[256];
	sqlite3 *db;
	sqlite3_stmt *st;
	Store *s;

	check_int(store_open(dir, &s), 0);
	store_close(s);
	snprintf(path, sizeof(path), "%s/gatewayd.db", dir);
	check(sqlite3_open(path, &db) == SQLITE_OK);
	check(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK);
	check(sqlite3_step(st) == SQLITE_ROW);
	check_str((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

static void test_lifecycle(void)
{
	Store *s;
	DeliveryChange ch;
	QueueCounts c;
	char id[33];
	uint64_t t0 = 1000 * SEC;
	SendResult r;

	check_int(store_open(dir, &s), 0);
	insert(s, "00000000000000000000000000000001", "k1", t0);
	check_int(store_open_alerts(s), 1);

	/* dedupe: inside the window from the first acceptance, then not */
	check_int(store_dedupe_find(s, "k1", t0 + 599 * SEC, 600 * SEC, id), 1);
	check_str(id, "00000000000000000000000000000001");
	check_int(store_dedupe_find(s, "k1", t0 + 600 * SEC, 600 * SEC, id), 0);
	check_int(store_dedupe_find(s, "other", t0, 600 * SEC, id), 0);

	check_int(store_begin(s), 0);
	check_int(store_delivery_assign(s, "00000000000000000000000000000001", "+32470000001", "a",
	                                "gsm0", t0 + SEC, &ch),
	          1);
	check_int(ch.new_state, DELIVERY_SENDING);
	/* assigning again changes nothing */
	check_int(store_delivery_assign(s, "00000000000000000000000000000001", "+32470000001", "a",
	                                "gsm0", t0 + SEC, &ch),
	          0);
	/* a transient failure requeues with backoff */
	r = result(false, false, t0 + 2 * SEC);
	check_int(store_delivery_result(s, "00000000000000000000000000000001", "+32470000001", &r,
	                                &ch),
	          1);
	check_int(ch.new_state, DELIVERY_QUEUED);
	check_int(ch.next_try_at, t0 + 7 * SEC);
	/* success */
	r = result(true, false, t0 + 8 * SEC);
	check_int(store_delivery_result(s, "00000000000000000000000000000001", "+32470000001", &r,
	                                &ch),
	          1);
	check_int(ch.new_state, DELIVERY_SENT);
	/* a late failure never undoes "sent" */
	r = result(false, true, t0 + 9 * SEC);
	check_int(store_delivery_result(s, "00000000000000000000000000000001", "+32470000001", &r,
	                                &ch),
	          0);
	/* permanent failures of the second recipient: failed after max_permanent_failures */
	r = result(false, true, t0 + 3 * SEC);
	check_int(store_delivery_result(s, "00000000000000000000000000000001", "+32470000002", &r,
	                                &ch),
	          1);
	check_int(ch.new_state, DELIVERY_QUEUED);
	r = result(false, true, t0 + 4 * SEC);
	check_int(store_delivery_result(s, "00000000000000000000000000000001", "+32470000002", &r,
	                                &ch),
	          1);
	check_int(ch.new_state, DELIVERY_FAILED);
	check_int(store_commit(s), 0);
	check_int(store_open_alerts(s), 0);

	check_int(store_counts(s, &c), 0);
	check_int(c.sent, 1); /* the alert shows its furthest state */

	/* ack is once-only */
	check_int(store_begin(s), 0);
	check_int(store_alert_ack(s, "00000000000000000000000000000001", "me", "api", t0), 1);
	check_int(store_alert_ack(s, "00000000000000000000000000000001", "you", "api", t0), 0);
	check_int(store_alert_ack(s, "0000000000000000000000000000ffff", "me", "api", t0), -ENOENT);
	check_int(store_commit(s), 0);
	store_close(s);
}

static void test_expiry_and_purge(void)
{
	Store *s;
	uint64_t t0 = 5000 * SEC, next = 0;
	json_t *o = NULL;

	check_int(store_open(dir, &s), 0);
	insert(s, "00000000000000000000000000000002", "k2", t0);
	check_int(store_next_expiry(s, &next), 0);
	check_int(next, t0 + 3600 * SEC);
	check_int(store_begin(s), 0);
	check_int(store_alert_expire(s, "00000000000000000000000000000002", t0 + 3600 * SEC), 2);
	check_int(store_alert_expire(s, "00000000000000000000000000000002", t0 + 3600 * SEC), 0);
	check_int(store_commit(s), 0);
	check_int(store_alert_json(s, "00000000000000000000000000000002", true, &o), 0);
	check_str(json_string_value(json_object_get(o, "state")), "expired");
	json_decref(o);
	check(store_purge(s, t0 + 3601 * SEC, 100, NULL) >= 1);
	check_int(store_alert_json(s, "00000000000000000000000000000002", true, &o), -ENOENT);
	store_close(s);
}

static void test_reopen_keeps_data(void)
{
	Store *s;
	uint64_t t0 = 9000 * SEC;
	json_t *o = NULL;

	check_int(store_open(dir, &s), 0);
	insert(s, "00000000000000000000000000000003", "k3", t0);
	store_close(s);
	check_int(store_open(dir, &s), 0);
	check_int(store_open_alerts(s), 1);
	check_int(store_alert_json(s, "00000000000000000000000000000003", false, &o), 0);
	check_int(json_array_size(json_object_get(o, "deliveries")), 2);
	json_decref(o);
	store_close(s);
}

static void test_newer_schema_is_refused(void)
{
	char path[256];
	sqlite3 *db;
	Store *s;

	check_int(store_open(dir, &s), 0);
	store_close(s);
	snprintf(path, sizeof(path), "%s/gatewayd.db", dir);
	sqlite3_stmt *st;
	int version = 0;
	char restore[64];

	check(sqlite3_open(path, &db) == SQLITE_OK);
	check(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	check(version > 0);
	check(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	check_int(store_open(dir, &s), -EPROTO);
	check(sqlite3_open(path, &db) == SQLITE_OK);
	snprintf(restore, sizeof(restore), "PRAGMA user_version = %d", version);
	check(sqlite3_exec(db, restore, NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
}

static void test_inbox_and_reports(void)
{
	Store *s;
	DeliveryChange ch;
	json_t *o = NULL;
	char id[33], number[20];
	uint64_t t0 = 20000 * SEC;
	SendResult r = result(true, false, t0 + SEC);
	InboxMessage m = {.key = "k1",
	                  .node = "a",
	                  .modem = "gsm0",
	                  .sender = "+32470100001",
	                  .text = "ACK 1234",
	                  .parts = 1,
	                  .received_at = t0};
	DeliveryReport rep = {.node = "a",
	                      .modem = "gsm0",
	                      .message_ref = 42,
	                      .delivered = true,
	                      .status = "delivered",
	                      .at = t0 + 5 * SEC};

	if (store_open(dir, &s) < 0) {
		check(!"the store opens");
		return;
	}
	insert(s, "00000000000000000000000000000004", "k4", t0);
	check_int(store_begin(s), 0);
	r.message_ref = 42;
	check_int(store_delivery_result(s, "00000000000000000000000000000004", "+32470000001", &r,
	                                &ch),
	          1);
	check_int(store_delivery_report(s, &rep, id, number), 1);
	check_str(id, "00000000000000000000000000000004");
	check_str(number, "+32470000001");
	check_int(store_delivery_report(s, &rep, id, number), 0); /* once */
	/* a later "sent" never undoes "delivered" */
	check_int(store_delivery_result(s, "00000000000000000000000000000004", "+32470000001", &r,
	                                &ch),
	          0);
	check_int(store_inbox_insert(s, &m), 1);
	check_int(store_inbox_insert(s, &m), 0); /* the same message read again */
	check_int(store_commit(s), 0);
	check_int(store_alert_json(s, "00000000000000000000000000000004", true, &o), 0);
	check_str(json_string_value(json_object_get(o, "state")), "delivered");
	json_decref(o);
	check_int(store_inbox_json(s, 10, &o), 0);
	check_int(json_array_size(o), 1);
	check_str(json_string_value(json_object_get(json_array_get(o, 0), "text")), "ACK 1234");
	json_decref(o);
	store_close(s);
}

static Store *open_sub(const char *name)
{
	char path[300];
	Store *s = NULL;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	check_int(store_open(path, &s), 0);
	return s;
}

/* Every alert, in chunks of at most max_bytes (one item may be larger on its own). */
static json_t *export_all(Store *s, size_t max_bytes, int *ret_chunks)
{
	json_t *all = json_array(), *items;
	char cursor[33] = "";
	int n, chunks = 0;

	while ((n = store_export_alerts(s, cursor, 0, max_bytes, &items, cursor)) > 0) {
		char *text = json_dumps(items, JSON_COMPACT);

		check_int(json_array_size(items), n);
		check(n == 1 || strlen(text) <= max_bytes);
		check_str(json_string_value(
		                  json_object_get(json_array_get(items, (size_t)n - 1), "id")),
		          cursor);
		free(text);
		json_array_extend(all, items);
		json_decref(items);
		chunks++;
	}
	check_int(n, 0);
	check_int(json_array_size(items), 0);
	json_decref(items);
	if (ret_chunks)
		*ret_chunks = chunks;
	return all;
}

/* Merges every item in one transaction; returns how many changed something. */
static int merge_all(Store *s, json_t *items)
{
	json_t *item;
	size_t i;
	int changed = 0;

	check_int(store_begin(s), 0);
	json_array_foreach(items, i, item)
	{
		int r = store_merge_alert(s, item);

		check(r >= 0);
		changed += r > 0;
	}
	check_int(store_commit(s), 0);
	return changed;
}

/* Both stores hold the same rows: the exports (every column but the derived ones), the views
 * (with the derived state) and the counts agree. */
static void check_same(Store *a, Store *b)
{
	json_t *ea = export_all(a, 1 << 20, NULL), *eb = export_all(b, 1 << 20, NULL), *item;
	QueueCounts ca, cb;
	size_t i;

	check(json_equal(ea, eb));
	json_array_foreach(ea, i, item)
	{
		const char *id = json_string_value(json_object_get(item, "id"));
		json_t *va = NULL, *vb = NULL;

		check_int(store_alert_json(a, id, true, &va), 0);
		check_int(store_alert_json(b, id, true, &vb), 0);
		check(json_equal(va, vb));
		json_decref(va);
		json_decref(vb);
	}
	check_int(store_open_alerts(a), store_open_alerts(b));
	check_int(store_counts(a, &ca), 0);
	check_int(store_counts(b, &cb), 0);
	check(memcmp(&ca, &cb, sizeof(ca)) == 0);
	json_decref(ea);
	json_decref(eb);
}

static const char *state_of(Store *s, const char *id, size_t delivery)
{
	static char state[16];
	json_t *o = NULL;

	state[0] = '\0';
	if (store_alert_json(s, id, true, &o) < 0)
		return state;
	if (delivery == (size_t)-1)
		snprintf(state, sizeof(state), "%s",
		         json_string_value(json_object_get(o, "state")));
	else
		snprintf(state, sizeof(state), "%s",
		         json_string_value(json_object_get(
		                 json_array_get(json_object_get(o, "deliveries"), delivery),
		                 "state")));
	json_decref(o);
	return state;
}

static SendResult result_on(const char *node, const char *modem, bool ok, bool permanent,
                            uint64_t at)
{
	SendResult r = result(ok, permanent, at);

	r.node = node;
	r.modem = modem;
	return r;
}

#define ID(n) "000000000000000000000000000000" n

static void test_export_merge_copy(void)
{
	Store *a = open_sub("copy-a"), *b = open_sub("copy-b");
	uint64_t t0 = 30000 * SEC;
	DeliveryChange ch;
	DeliveryReport rep = {.node = "a",
	                      .modem = "gsm0",
	                      .message_ref = 7,
	                      .delivered = true,
	                      .status = "delivered",
	                      .at = t0 + 9 * SEC};
	CallRecord call = {.alert_id = ID("06"),
	                   .number = "+32470000001",
	                   .node = "a",
	                   .modem = "gsm1",
	                   .at = t0 + 20 * SEC,
	                   .outcome = "answered",
	                   .duration_sec = 12,
	                   .dtmf_ack = true};
	InboxMessage m = {.node = "a",
	                  .modem = "gsm0",
	                  .sender = "+32470100001",
	                  .text = "ACK",
	                  .parts = 1,
	                  .received_at = t0};
	json_t *ea, *eb, *items;
	char id[33], number[20], *cursor = NULL;
	SendResult r;
	int chunks = 0;

	if (!a || !b)
		return;
	/* an alert in every state */
	for (int i = 1; i <= 7; i++) {
		char alert_id[33], key[8];

		snprintf(alert_id, sizeof(alert_id), "%032x", i);
		snprintf(key, sizeof(key), "copy%d", i);
		insert(a, alert_id, key, t0 + (uint64_t)i * SEC);
	}
	check_int(store_begin(a), 0);
	/* 02: sending */
	check_int(
	        store_delivery_assign(a, ID("02"), "+32470000001", "a", "gsm0", t0 + 3 * SEC, &ch),
	        1);
	/* 03: requeued after a permanent failure */
	r = result(false, true, t0 + 4 * SEC);
	check_int(store_delivery_result(a, ID("03"), "+32470000001", &r, &ch), 1);
	/* 04: delivered and failed */
	r = result(true, false, t0 + 5 * SEC);
	r.message_ref = 7;
	check_int(store_delivery_result(a, ID("04"), "+32470000001", &r, &ch), 1);
	check_int(store_delivery_report(a, &rep, id, number), 1);
	r = result(false, true, t0 + 6 * SEC);
	check_int(store_delivery_result(a, ID("04"), "+32470000002", &r, &ch), 1);
	r = result(false, true, t0 + 7 * SEC);
	check_int(store_delivery_result(a, ID("04"), "+32470000002", &r, &ch), 1);
	/* 05: expired */
	check_int(store_alert_expire(a, ID("05"), t0 + 3600 * SEC), 2);
	/* 06: acknowledged after a call */
	check_int(store_call_insert(a, &call), 1);
	check_int(store_alert_ack(a, ID("06"), "alice", "dtmf", t0 + 21 * SEC), 1);
	/* 07: sent */
	r = result(true, false, t0 + 8 * SEC);
	check_int(store_delivery_result(a, ID("07"), "+32470000001", &r, &ch), 1);
	check_int(store_delivery_result(a, ID("07"), "+32470000002", &r, &ch), 1);
	for (int i = 0; i < 3; i++) {
		char key[8];

		snprintf(key, sizeof(key), "in%d", i);
		m.key = key;
		/* the last one quarantined: raw PDU as text, the reason beside it */
		m.quarantine = i == 2 ? "SMSC address longer than 12 octets" : NULL;
		check_int(store_inbox_insert(a, &m), 1);
	}
	check_int(store_commit(a), 0);
	check_str(state_of(a, ID("04"), (size_t)-1), "delivered");
	check_str(state_of(a, ID("05"), (size_t)-1), "expired");

	/* small payloads: several chunks, and the same items as one big export */
	ea = export_all(a, 600, &chunks);
	check(chunks > 1);
	check_int(json_array_size(ea), 7);
	eb = export_all(a, 1 << 20, &chunks);
	check_int(chunks, 1);
	check(json_equal(ea, eb));
	json_decref(eb);
	/* a tiny payload still carries one item */
	check_int(store_export_alerts(a, "", 0, 1, &items, id), 1);
	check_str(id, ID("01"));
	json_decref(items);
	/* past the end: nothing, and the cursor stays */
	check_int(store_export_alerts(a, ID("07"), 0, 1000, &items, id), 0);
	check_str(id, ID("07"));
	json_decref(items);

	check_int(merge_all(b, ea), 7);
	check_same(a, b);
	check_int(store_open_alerts(b), 4); /* 01 queued, 02 sending, 03 requeued, 06 acked */
	/* merging again changes nothing */
	check_int(merge_all(b, ea), 0);
	check_same(a, b);
	/* and so does merging an alert into the store it came from */
	check_int(merge_all(a, ea), 0);
	json_decref(ea);

	/* dedupe keys and the inbox, in small chunks */
	for (int kind = 0; kind < 2; kind++) {
		int total = 0, n;

		free(cursor);
		cursor = strdup("");
		for (;;) {
			char *next = NULL;
			json_t *item;
			size_t i;

			n = kind == 0 ? store_export_dedupe(a, cursor, 0, 60, &items, &next)
			              : store_export_inbox(a, cursor, 60, &items, &next);
			check(n >= 0 && next);
			free(cursor);
			cursor = next;
			if (n <= 0) {
				json_decref(items);
				break;
			}
			total += n;
			check_int(store_begin(b), 0);
			json_array_foreach(items, i, item)
			{
				check_int(kind == 0 ? store_merge_dedupe(b, item)
				                    : store_merge_inbox(b, item),
				          1);
				check_int(kind == 0 ? store_merge_dedupe(b, item)
				                    : store_merge_inbox(b, item),
				          0);
			}
			check_int(store_commit(b), 0);
			json_decref(items);
		}
		check_int(total, kind == 0 ? 7 : 3);
	}
	free(cursor);
	check_int(store_dedupe_find(b, "copy4", t0, 600 * SEC, id), 1);
	check_str(id, ID("04"));
	check_int(store_inbox_json(b, 10, &items), 0);
	check_int(json_array_size(items), 3);
	{
		int quarantined = 0;
		size_t i;
		json_t *item;

		json_array_foreach(items, i, item)
		{
			const char *q = json_string_value(json_object_get(item, "quarantined"));

			if (q) {
				check_str(q, "SMSC address longer than 12 octets");
				quarantined++;
			}
		}
		check_int(quarantined, 1);
	}
	json_decref(items);
	store_close(a);
	store_close(b);
}

/* Two halves of a partition each worked on the same alerts; any store that applies the same
 * records, in any order, ends with the same rows. */
static void test_merge_converges(void)
{
	static const char *const names[] = {"conv-a",   "conv-b",   "conv-e",
	                                    "conv-abe", "conv-eba", "conv-bea"};
	static const int order[3][3] = {{0, 1, 2}, {2, 1, 0}, {1, 2, 0}};
	Store *s[6];
	json_t *e[3];
	uint64_t t0 = 40000 * SEC;
	DeliveryChange ch;
	SendResult r;
	json_t *o = NULL;

	for (size_t i = 0; i < ELEMENTSOF(names); i++) {
		s[i] = open_sub(names[i]);
		if (!s[i])
			return;
	}
	for (int i = 0; i < 3; i++) {
		insert(s[i], ID("10"), "conv10", t0);
		insert(s[i], ID("11"), "conv11", t0);
		insert(s[i], ID("12"), "conv12", t0);
		insert(s[i], ID("13"), "conv13", t0);
	}

	/* a: sent 10's first recipient, requeued its second, acknowledged late; failed 11's first
	 * recipient for good; has 12 on its own modem and retries 12's second later; sent 13's
	 * first recipient */
	check_int(store_begin(s[0]), 0);
	r = result_on("a", "gsm0", true, false, t0 + 2 * SEC);
	check_int(store_delivery_result(s[0], ID("10"), "+32470000001", &r, &ch), 1);
	check_int(store_delivery_assign(s[0], ID("10"), "+32470000002", "a", "gsm0", t0 + 2 * SEC,
	                                &ch),
	          1);
	r = result_on("a", "gsm0", false, false, t0 + 3 * SEC);
	check_int(store_delivery_result(s[0], ID("10"), "+32470000002", &r, &ch), 1);
	check_int(store_alert_ack(s[0], ID("10"), "alice", "api", t0 + 10 * SEC), 1);
	r = result_on("a", "gsm0", false, true, t0 + 2 * SEC);
	check_int(store_delivery_result(s[0], ID("11"), "+32470000001", &r, &ch), 1);
	r = result_on("a", "gsm0", false, true, t0 + 3 * SEC);
	check_int(store_delivery_result(s[0], ID("11"), "+32470000001", &r, &ch), 1);
	check_int(store_delivery_assign(s[0], ID("12"), "+32470000001", "a", "gsm0", t0 + SEC, &ch),
	          1);
	r = result_on("a", "gsm0", false, false, t0 + 60 * SEC);
	check_int(store_delivery_result(s[0], ID("12"), "+32470000002", &r, &ch), 1);
	r = result_on("a", "gsm0", true, false, t0 + 2 * SEC);
	check_int(store_delivery_result(s[0], ID("13"), "+32470000001", &r, &ch), 1);
	check_int(store_commit(s[0]), 0);

	/* b: acknowledged 10 early, then let 10 and 11 expire; has 12 on its own modem and
	 * retries 12's second sooner, after a permanent failure; failed 13's second recipient */
	check_int(store_begin(s[1]), 0);
	check_int(store_alert_ack(s[1], ID("10"), "bob", "sms", t0 + 5 * SEC), 1);
	check_int(store_delivery_assign(s[1], ID("10"), "+32470000001", "b", "gsm1", t0 + SEC, &ch),
	          1);
	check_int(store_alert_expire(s[1], ID("10"), t0 + 3600 * SEC), 2);
	check_int(store_alert_expire(s[1], ID("11"), t0 + 3601 * SEC), 2);
	check_int(store_delivery_assign(s[1], ID("12"), "+32470000001", "b", "gsm0", t0 + SEC, &ch),
	          1);
	r = result_on("b", "gsm0", false, true, t0 + 2 * SEC);
	check_int(store_delivery_result(s[1], ID("12"), "+32470000002", &r, &ch), 1);
	for (int i = 0; i < 2; i++) {
		r = result_on("b", "gsm0", false, true, t0 + (3 + (uint64_t)i) * SEC);
		check_int(store_delivery_result(s[1], ID("13"), "+32470000002", &r, &ch), 1);
	}
	check_int(store_commit(s[1]), 0);

	/* e: sent 10's first recipient too (a duplicate of the partition), and acknowledged at
	 * the same instant as b, by another name */
	check_int(store_begin(s[2]), 0);
	r = result_on("e", "gsm2", true, false, t0 + 4 * SEC);
	check_int(store_delivery_result(s[2], ID("10"), "+32470000001", &r, &ch), 1);
	check_int(store_alert_ack(s[2], ID("10"), "bea", "sms", t0 + 5 * SEC), 1);
	check_int(store_commit(s[2]), 0);

	for (int i = 0; i < 3; i++)
		e[i] = export_all(s[i], 1 << 20, NULL);
	for (int k = 0; k < 3; k++)
		for (int j = 0; j < 3; j++)
			merge_all(s[3 + k], e[order[k][j]]);
	/* the halves themselves, each taking the others' records */
	for (int i = 0; i < 3; i++)
		for (int j = 0; j < 3; j++)
			if (i != j)
				merge_all(s[i], e[j]);
	for (size_t i = 1; i < ELEMENTSOF(names); i++)
		check_same(s[0], s[i]);

	/* sent beats expired, expired beats queued, failed beats expired */
	check_str(state_of(s[3], ID("10"), 0), "sent");
	check_str(state_of(s[3], ID("10"), 1), "expired");
	check_str(state_of(s[3], ID("10"), (size_t)-1), "sent");
	check_str(state_of(s[3], ID("11"), 0), "failed");
	check_str(state_of(s[3], ID("11"), 1), "expired");
	check_str(state_of(s[3], ID("12"), 0), "sending");
	check_str(state_of(s[3], ID("12"), 1), "queued");
	check_str(state_of(s[3], ID("13"), 0), "sent");
	check_str(state_of(s[3], ID("13"), 1), "failed");
	for (size_t i = 0; i < ELEMENTSOF(names); i++)
		check_int(store_open_alerts(s[i]), 1);
	check_int(store_alert_json(s[4], ID("10"), true, &o), 0);
	/* the earliest acknowledgment, then the smaller name */
	check_str(json_string_value(json_object_get(json_object_get(o, "ack"), "by")), "bea");
	/* every attempt of both halves */
	check_int(json_array_size(json_object_get(
	                  json_array_get(json_object_get(o, "deliveries"), 0), "attempts")),
	          2);
	json_decref(o);
	/* the sending tie goes to the greater (node, modem); the queued one to the later retry,
	 * with the most permanent failures; 13 became final only in the merge, and no side knew
	 * when: final_at falls back to its acceptance */
	o = export_all(s[5], 1 << 20, NULL);
	for (size_t i = 0; i < json_array_size(o); i++) {
		json_t *item = json_array_get(o, i), *dl = json_object_get(item, "dl");
		const char *id = json_string_value(json_object_get(item, "id"));

		if (streq(id, ID("13")))
			check_int(json_integer_value(json_object_get(item, "fin")), t0);
		if (!streq(id, ID("12")))
			continue;
		check(json_is_null(json_object_get(item, "fin")));
		check_str(json_string_value(json_object_get(json_array_get(dl, 0), "node")), "b");
		check_str(json_string_value(json_object_get(json_array_get(dl, 1), "node")), "a");
		check_int(json_integer_value(json_object_get(json_array_get(dl, 1), "next")),
		          t0 + 65 * SEC);
		check_int(json_integer_value(json_object_get(json_array_get(dl, 1), "pf")), 1);
	}
	json_decref(o);

	/* once is enough */
	for (int i = 0; i < 3; i++) {
		check_int(merge_all(s[3], e[i]), 0);
		json_decref(e[i]);
	}
	for (size_t i = 0; i < ELEMENTSOF(names); i++)
		store_close(s[i]);
}

static void test_merge_dedupe(void)
{
	Store *s = open_sub("dedupe");
	uint64_t t0 = 50000 * SEC;
	json_t *late = json_pack("{s:s, s:s, s:I}", "key", "k", "alert_id", ID("22"), "first_at",
	                         (json_int_t)(t0 + 5 * SEC)),
	       *early = json_pack("{s:s, s:s, s:I}", "key", "k", "alert_id", ID("23"), "first_at",
	                          (json_int_t)t0),
	       *tie = json_pack("{s:s, s:s, s:I}", "key", "k", "alert_id", ID("21"), "first_at",
	                        (json_int_t)t0);
	char id[33];

	if (!s)
		return;
	check_int(store_begin(s), 0);
	check_int(store_merge_dedupe(s, late), 1);
	check_int(store_merge_dedupe(s, early), 1);
	check_int(store_merge_dedupe(s, late), 0);
	check_int(store_merge_dedupe(s, early), 0);
	check_int(store_commit(s), 0);
	check_int(store_dedupe_find(s, "k", t0 + SEC, 600 * SEC, id), 1);
	check_str(id, ID("23"));
	/* the same instant: the smaller alert id */
	check_int(store_begin(s), 0);
	check_int(store_merge_dedupe(s, tie), 1);
	check_int(store_merge_dedupe(s, early), 0);
	check_int(store_commit(s), 0);
	check_int(store_dedupe_find(s, "k", t0 + SEC, 600 * SEC, id), 1);
	check_str(id, ID("21"));
	json_decref(late);
	json_decref(early);
	json_decref(tie);
	store_close(s);
}

static void test_merge_rejects_malformed(void)
{
	static const char *const bad_alerts[] = {
	        "[]",
	        "{}",
	        "{\"id\": \"nothex\"}",
	};
	/* each replaces one field of a good item */
	static const char *const bad_fields[][2] = {
	        {"id", "\"0000000000000000000000000000003Z\""},
	        {"id", "null"},
	        {"text", "42"},
	        {"prio", "\"critical\""},
	        {"acc", "-1"},
	        {"exp", "1.5"},
	        {"fin", "\"soon\""},
	        {"ack_at", "true"},
	        {"dl", "null"},
	        {"dl", "[{}]"},
	        {"dl", "[{\"to\": \"+1\", \"kind\": \"to\", \"seq\": 0, \"state\": \"lost\", "
	               "\"next\": 0, \"node\": null, \"modem\": null, \"pf\": 0, \"acc\": 0, "
	               "\"prio\": 0}]"},
	        {"dl", "[{\"to\": \"+1\", \"kind\": \"bcc\", \"seq\": 0, \"state\": \"queued\", "
	               "\"next\": 0, \"node\": null, \"modem\": null, \"pf\": 0, \"acc\": 0, "
	               "\"prio\": 0}]"},
	        {"att", "[{\"to\": \"+1\", \"node\": null, \"modem\": \"gsm0\", \"at\": 1, "
	                "\"result\": \"sent\", \"error\": null, \"ref\": null, \"report\": null}]"},
	        {"att", "{}"},
	        {"calls", "[1]"},
	        {"calls", "[{\"to\": \"\", \"node\": \"a\", \"modem\": \"gsm0\", \"at\": 1, "
	                  "\"outcome\": \"busy\", \"dur\": 0, \"error\": null, \"dtmf\": 0}]"},
	};
	Store *a = open_sub("bad-a"), *b = open_sub("bad-b");
	json_t *items = NULL, *good, *o;
	char id[33];

	if (!a || !b)
		return;
	insert(a, ID("30"), "bad", 60000 * SEC);
	check_int(store_export_alerts(a, "", 0, 1 << 20, &items, id), 1);
	good = json_array_get(items, 0);

	check_int(store_begin(b), 0);
	for (size_t i = 0; i < ELEMENTSOF(bad_alerts); i++) {
		o = json_loads(bad_alerts[i], 0, NULL);
		check_int(store_merge_alert(b, o), -EINVAL);
		json_decref(o);
	}
	check_int(store_merge_alert(b, NULL), -EINVAL);
	for (size_t i = 0; i < ELEMENTSOF(bad_fields); i++) {
		o = json_deep_copy(good);
		json_object_set_new(o, bad_fields[i][0],
		                    json_loads(bad_fields[i][1], JSON_DECODE_ANY, NULL));
		if (store_merge_alert(b, o) != -EINVAL)
			fprintf(stderr, "accepted a bad \"%s\": %s\n", bad_fields[i][0],
			        bad_fields[i][1]);
		check_int(store_merge_alert(b, o), -EINVAL);
		json_decref(o);
	}
	o = json_deep_copy(good);
	json_object_del(o, "src");
	check_int(store_merge_alert(b, o), -EINVAL);
	json_decref(o);
	check_int(store_alert_exists(b, ID("30")), 0); /* nothing was written */
	check_int(store_open_alerts(b), 0);

	o = json_pack("{s:s, s:s, s:I}", "key", "k", "alert_id", "x", "first_at", (json_int_t)1);
	check_int(store_merge_dedupe(b, o), -EINVAL);
	json_decref(o);
	o = json_pack("{s:s, s:i}", "key", "k", "first_at", 1);
	check_int(store_merge_dedupe(b, o), -EINVAL);
	json_decref(o);
	o = json_pack("{s:s, s:s}", "key", "k", "text", "hi");
	check_int(store_merge_inbox(b, o), -EINVAL);
	json_decref(o);
	check_int(store_merge_inbox(b, NULL), -EINVAL);
	/* a peer before schema 7 sends no "quarantine": still a good item */
	o = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:n, s:I}", "key", "old-peer", "node", "b",
	              "modem", "gsm0", "sender", "+32470100001", "text", "hi", "parts", 1,
	              "smsc_at", "received_at", (json_int_t)1);
	check_int(store_merge_inbox(b, o), 1);
	json_decref(o);

	/* the good one still goes in */
	check_int(store_merge_alert(b, good), 1);
	check_int(store_commit(b), 0);
	check_int(store_open_alerts(b), 1);
	json_decref(items);
	store_close(a);
	store_close(b);
}

static void test_stale_failure(void)
{
	Store *s = open_sub("stale");
	uint64_t t0 = 70000 * SEC;
	DeliveryChange ch;
	SendResult r;
	json_t *o = NULL;

	if (!s)
		return;
	insert(s, ID("40"), "stale", t0);
	check_int(store_begin(s), 0);
	check_int(store_delivery_assign(s, ID("40"), "+32470000001", "a", "gsm1", t0 + SEC, &ch),
	          1);
	/* an earlier attempt's failure, from another modem or another node: kept, not applied */
	r = result_on("a", "gsm0", false, false, t0 + 2 * SEC);
	check_int(store_delivery_result(s, ID("40"), "+32470000001", &r, &ch), 0);
	r = result_on("b", "gsm1", false, true, t0 + 3 * SEC);
	check_int(store_delivery_result(s, ID("40"), "+32470000001", &r, &ch), 0);
	check_str(state_of(s, ID("40"), 0), "sending");
	/* the modem that has it fails: requeued */
	r = result_on("a", "gsm1", false, false, t0 + 4 * SEC);
	check_int(store_delivery_result(s, ID("40"), "+32470000001", &r, &ch), 1);
	check_int(ch.new_state, DELIVERY_QUEUED);
	/* a success wins from anywhere */
	check_int(store_delivery_assign(s, ID("40"), "+32470000002", "a", "gsm1", t0 + SEC, &ch),
	          1);
	r = result_on("b", "gsm0", true, false, t0 + 5 * SEC);
	check_int(store_delivery_result(s, ID("40"), "+32470000002", &r, &ch), 1);
	check_int(ch.new_state, DELIVERY_SENT);
	check_int(store_commit(s), 0);
	check_int(store_alert_json(s, ID("40"), true, &o), 0);
	check_int(json_array_size(json_object_get(
	                  json_array_get(json_object_get(o, "deliveries"), 0), "attempts")),
	          3);
	json_decref(o);
	store_close(s);
}

typedef struct SeenNode {
	char name[8];
	uint32_t nodeid;
	uint64_t last_seen;
	uint64_t store_id, since;
} SeenNode;

static int node_cb(const StoreNode *node, void *userdata)
{
	SeenNode *n = userdata;

	for (; n->name[0]; n++)
		;
	snprintf(n->name, sizeof(n->name), "%s", node->name);
	n->nodeid = node->nodeid;
	n->last_seen = node->last_seen;
	n->store_id = node->store_id;
	n->since = node->since;
	return 0;
}

static int node_stop(const StoreNode *node, void *userdata)
{
	(void)node, (void)userdata;
	return -ECANCELED;
}

static void test_nodes(void)
{
	char path[300];
	SeenNode seen[4] = {0};
	sqlite3 *db;
	Store *s = open_sub("nodes");

	if (!s)
		return;
	check_int(store_begin(s), 0);
	check_int(store_node_seen(s, "b", 2, 50), 0);
	check_int(store_node_seen(s, "a", 1, 100), 0);
	check_int(store_node_seen(s, "a", 3, 80), 0); /* older: changes nothing */
	check_int(store_commit(s), 0);
	check_int(store_nodes(s, node_cb, seen), 0);
	check_str(seen[0].name, "a");
	check_int(seen[0].nodeid, 1);
	check_int(seen[0].last_seen, 100);
	check_str(seen[1].name, "b");
	check_int(seen[1].nodeid, 2);
	check_int(seen[2].name[0], 0);
	check_int(store_node_seen(s, "a", 4, 200), 0);
	memset(seen, 0, sizeof(seen));
	check_int(store_nodes(s, node_cb, seen), 0);
	check_int(seen[0].nodeid, 4);
	check_int(seen[0].last_seen, 200);
	check_int(store_nodes(s, node_stop, NULL), -ECANCELED);
	store_close(s);

	/* a version 3 database migrates to the current one and keeps its rows */
	snprintf(path, sizeof(path), "%s/nodes/gatewayd.db", dir);
	check(sqlite3_open(path, &db) == SQLITE_OK);
	check(sqlite3_exec(db,
	                   "DROP TRIGGER tally_alert_insert; DROP TRIGGER tally_alert_state;"
	                   "DROP TRIGGER tally_alert_ack; DROP TRIGGER tally_alert_delete;"
	                   "DROP TRIGGER tally_call; DROP TRIGGER tally_call_delete;"
	                   "DROP TRIGGER tally_attempt; DROP TRIGGER tally_attempt_delete;"
	                   "DROP TABLE tallies; DROP TABLE modem_tallies;"
	                   "DROP TABLE nodes; DROP TABLE history; DROP TABLE overrides;"
	                   "DROP INDEX alerts_escalation; DROP INDEX alerts_critical;"
	                   "DROP INDEX deliveries_number; ALTER TABLE alerts DROP COLUMN esc_step;"
	                   "ALTER TABLE alerts DROP COLUMN esc_next_at;"
	                   "ALTER TABLE deliveries DROP COLUMN round;"
	                   "ALTER TABLE deliveries DROP COLUMN bundle;"
	                   "ALTER TABLE inbox DROP COLUMN quarantine; DROP INDEX alerts_key;"
	                   "ALTER TABLE alerts DROP COLUMN res_by;"
	                   "ALTER TABLE alerts DROP COLUMN res_via;"
	                   "ALTER TABLE alerts DROP COLUMN res_at;"
	                   "ALTER TABLE alerts DROP COLUMN esc_timer;"
	                   "ALTER TABLE alerts DROP COLUMN silence; DROP TABLE silences;"
	                   "DROP INDEX attempts_number; DROP INDEX calls_number;"
	                   "DROP TABLE heartbeats; DROP TABLE meta;"
	                   "ALTER TABLE alerts DROP COLUMN rev; ALTER TABLE dedupe DROP COLUMN rev;"
	                   "PRAGMA user_version = 3",
	                   NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	s = open_sub("nodes");
	if (!s)
		return;
	check_int(store_node_seen(s, "a", 1, 100), 0);
	check_int(store_override_set(s, "primary", "carol", 300, 200, "alice"), 1);
	/* what a node holds of this store: kept beside what was seen of it */
	check(store_id(s) > 0);
	check_int(store_node_rejoin(s, "a", 77, 5), 0);
	check_int(store_node_seen(s, "a", 1, 150), 0);
	memset(seen, 0, sizeof(seen));
	check_int(store_nodes(s, node_cb, seen), 0);
	check_str(seen[0].name, "a");
	check_int(seen[0].last_seen, 150);
	check_int(seen[0].store_id, 77);
	check_int(seen[0].since, 5);
	store_close(s);
}

/* The ids (their last two digits) of the alerts an export since `since` holds, as "01,02,". */
static void exported_ids(Store *s, uint64_t since, char *buf, size_t size)
{
	json_t *items, *item;
	char cursor[33] = "";
	size_t i, len = 0;

	buf[0] = 0;
	check(store_export_alerts(s, cursor, since, 1 << 20, &items, cursor) >= 0);
	json_array_foreach(items, i, item) len += (size_t)snprintf(
	        buf + len, size - len, "%s,", json_string_value(json_object_get(item, "id")) + 30);
	json_decref(items);
}

/* A rejoin sends what changed since a revision: a new alert, and an old one that got an attempt,
 * an acknowledgment or a merged row; the revision goes on across a reopen; each store has an
 * identity of its own. */
static void test_revisions(void)
{
	Store *s = open_sub("rev"), *other = open_sub("rev-other");
	uint64_t t0 = 50000 * SEC, r1, r2, id;
	DeliveryChange ch;
	SendResult r = result(true, false, t0 + 5 * SEC);
	json_t *items;
	char ids[64], *key = NULL;

	if (!s || !other)
		return;
	check(store_id(s) > 0 && store_id(other) > 0 && store_id(s) != store_id(other));
	insert(s, ID("01"), "r1", t0);
	insert(s, ID("02"), "r2", t0);
	insert(s, ID("03"), "r3", t0);
	exported_ids(s, 0, ids, sizeof(ids));
	check_str(ids, "01,02,03,");
	store_rev_next(s);
	r1 = store_rev(s);
	exported_ids(s, r1, ids, sizeof(ids));
	check_str(ids, "");
	check_int(store_export_dedupe(s, "", r1, 1 << 20, &items, &key), 0);
	json_decref(items);
	key = mfree(key);

	insert(s, ID("04"), "r4", t0 + SEC);
	check_int(store_begin(s), 0);
	check_int(store_delivery_result(s, ID("02"), "+32470000001", &r, &ch), 1);
	check_int(store_commit(s), 0);
	exported_ids(s, r1, ids, sizeof(ids));
	check_str(ids, "02,04,");
	check_int(store_export_dedupe(s, "", r1, 1 << 20, &items, &key), 1);
	check_str(json_string_value(json_object_get(json_array_get(items, 0), "key")), "r4");
	json_decref(items);
	key = mfree(key);

	/* an acknowledgment (the alert's own row) */
	store_rev_next(s);
	r2 = store_rev(s);
	check_int(store_begin(s), 0);
	check_int(store_alert_ack(s, ID("03"), "alice", "sms", t0 + 9 * SEC), 1);
	check_int(store_commit(s), 0);
	exported_ids(s, r2, ids, sizeof(ids));
	check_str(ids, "03,");

	/* a merge that changes an alert stamps it; one that changes nothing does not */
	check_int(store_export_alerts(s, "", 0, 1 << 20, &items, ids), 4);
	store_rev_next(other);
	check_int(store_begin(other), 0);
	for (size_t i = 0; i < json_array_size(items); i++)
		check_int(store_merge_alert(other, json_array_get(items, i)), 1);
	check_int(store_commit(other), 0);
	store_rev_next(other);
	r1 = store_rev(other);
	check_int(store_begin(other), 0);
	for (size_t i = 0; i < json_array_size(items); i++)
		check_int(store_merge_alert(other, json_array_get(items, i)), 0);
	check_int(store_commit(other), 0);
	exported_ids(other, r1, ids, sizeof(ids));
	check_str(ids, "");
	json_decref(items);

	/* reopened: the revision goes on from above every stamp; the identity stays */
	id = store_id(s);
	r2 = store_rev(s);
	store_close(s);
	s = open_sub("rev");
	if (!s)
		return;
	check(store_rev(s) > r2);
	check_int(store_id(s), id);
	store_close(s);
	store_close(other);
}

static int count_steps(void *userdata)
{
	(*(unsigned long *)userdata)++;
	return 0;
}

/* What status, metrics and the modems' counters read, counted in SQLite VM steps. */
static unsigned long read_cost(Store *s)
{
	unsigned long steps = 0;
	QueueCounts c;
	ModemCounters mc;
	StoreMetrics m;
	uint64_t calls;
	char last[16];

	sqlite3_progress_handler(s->db, 1, count_steps, &steps);
	check_int(store_counts(s, &c), 0);
	check_int(store_modem_counters(s, "a", "gsm0", &mc), 0);
	check_int(store_metrics(s, &m), 0);
	check_int(store_voice_summary(s, &calls, last), 0);
	sqlite3_progress_handler(s->db, 0, NULL, NULL);
	return steps;
}

static uint64_t direct_count(Store *s, const char *sql)
{
	sqlite3_stmt *st;
	uint64_t n = 0;

	check(sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		n = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* The tallies behind status agree with the rows through every transition, a purge and a
 * rollback, and reading them costs the same at 4,000 alerts as at 40. */
static void test_tallies(void)
{
	Store *s = open_sub("tallies");
	uint64_t t0 = 50000 * SEC;
	unsigned long small = 0, large;
	DeliveryChange ch;
	QueueCounts c;
	ModemCounters mc;
	StoreMetrics m;
	char id[33];

	if (!s)
		return;
	for (int round = 0; round < 2; round++) {
		int n = round == 0 ? 40 : 4000;

		check_int(store_begin(s), 0);
		for (int i = 0; i < n; i++) {
			NewAlert a = {.id = id,
			              .key = id,
			              .text = "disk full",
			              .node = "a",
			              .accepted_at = t0 + (uint64_t)i,
			              .expires_at = t0 + 3600 * SEC,
			              .to = to1,
			              .n_to = 2};
			SendResult ok = result(true, false, t0 + SEC),
			           bad = result(false, true, t0 + SEC);

			snprintf(id, sizeof(id), "%08x%024d", round, i);
			check_int(store_alert_insert(s, &a), 0);
			if (i % 2 ==
			    0) /* a call and a line of story, on open and finished alerts */
				check_int(
				        store_call_insert(s, &(CallRecord){.alert_id = id,
				                                           .number = to1[0],
				                                           .node = "a",
				                                           .modem = "voice",
				                                           .at = t0 + SEC,
				                                           .outcome = "no_answer"}),
				        1);
			if (i % 2 == 0)
				check(store_history_add(s, id, t0 + SEC, "escalated", "a",
				                        "step 2") >= 0);
			if (i % 4 == 0)
				continue; /* stays queued */
			check_int(store_delivery_assign(s, id, to1[0], "a", "gsm0", t0, &ch), 1);
			check_int(store_delivery_assign(s, id, to1[1], "a", "gsm0", t0, &ch), 1);
			if (i % 4 == 1) {
				check_int(store_delivery_result(s, id, to1[0], &ok, &ch), 1);
				check_int(store_delivery_result(s, id, to1[1], &ok, &ch), 1);
			} else if (i % 4 == 2) {
				bad.error = i % 8 == 2 ? "+CMS ERROR: 38" : "+CMS ERROR: 500";
				bad.at = t0 + 2 * SEC + (uint64_t)i;
				check(store_delivery_result(s, id, to1[0], &bad, &ch) >= 0);
				check(store_alert_expire(s, id, t0 + 3 * SEC) >= 1);
			}
			if (i % 3 == 0)
				check_int(store_alert_ack(s, id, "alice", "sms", t0 + 2 * SEC), 1);
		}
		check_int(store_commit(s), 0);
		if (round == 0)
			small = read_cost(s);
	}
	large = read_cost(s);
	check(large <= small + 20);

	check_int(store_counts(s, &c), 0);
	check_int(c.queued, direct_count(s, "SELECT COUNT(*) FROM alerts WHERE state = 'queued'"));
	check_int(c.sending,
	          direct_count(s, "SELECT COUNT(*) FROM alerts WHERE state = 'sending'"));
	check_int(c.sent, direct_count(s, "SELECT COUNT(*) FROM alerts WHERE state = 'sent'"));
	check_int(c.expired,
	          direct_count(s, "SELECT COUNT(*) FROM alerts WHERE state = 'expired'"));
	check_int(c.queued + c.sending + c.sent + c.expired + c.failed + c.delivered, 4040);
	check_int(store_modem_counters(s, "a", "gsm0", &mc), 0);
	check_int(mc.sent, direct_count(s, "SELECT COUNT(*) FROM attempts WHERE result = 'sent'"));
	check_int(mc.failed,
	          direct_count(s, "SELECT COUNT(*) FROM attempts WHERE result != 'sent'"));
	check_str(mc.last_error, "+CMS ERROR: 500"); /* the latest failure, i = 3998 */
	check_int(mc.last_sent_at, t0 + SEC);
	check_int(store_metrics(s, &m), 0);
	check_int(m.acknowledged,
	          direct_count(s, "SELECT COUNT(*) FROM alerts WHERE ack_at IS NOT NULL"));

	/* a rolled-back transaction leaves the tallies as they were */
	check_int(store_begin(s), 0);
	check_int(store_alert_expire(s, "00000001000000000000000000000000", t0 + 4 * SEC), 2);
	store_rollback(s);
	check_int(store_counts(s, &c), 0);
	check_int(c.queued, direct_count(s, "SELECT COUNT(*) FROM alerts WHERE state = 'queued'"));

	/* purging the finished ones takes them out of the tallies too, in bounded steps, with
	 * every row that hangs off them: nothing of a purged alert is left behind */
	{
		static const char *const orphans[] = {
		        "SELECT COUNT(*) FROM attempts WHERE alert_id NOT IN (SELECT id FROM "
		        "alerts)",
		        "SELECT COUNT(*) FROM deliveries WHERE alert_id NOT IN (SELECT id FROM "
		        "alerts)",
		        "SELECT COUNT(*) FROM calls WHERE alert_id NOT IN (SELECT id FROM alerts)",
		        "SELECT COUNT(*) FROM history WHERE alert_id NOT IN (SELECT id FROM "
		        "alerts)",
		        "SELECT COUNT(*) FROM dedupe WHERE alert_id NOT IN (SELECT id FROM alerts)",
		};
		uint64_t finished = direct_count(s, "SELECT COUNT(*) FROM alerts WHERE final = 1"),
		         calls = direct_count(s, "SELECT COUNT(*) FROM calls"),
		         history = direct_count(s, "SELECT COUNT(*) FROM history");
		unsigned steps = 0, total = 0;
		bool more = true;
		int r;

		check(finished > 1000);
		check(calls > 0 && history > 0);
		while (more && steps < 100) {
			r = store_purge(s, t0 + 100 * SEC, 500, &more);
			check(r >= 0 && r <= 500);
			if (r < 0)
				break;
			total += (unsigned)r;
			steps++;
		}
		check_int(total, finished);
		check_int(steps, finished / 500 + 1);
		for (size_t i = 0; i < ELEMENTSOF(orphans); i++)
			check_int(direct_count(s, orphans[i]), 0);
		check(direct_count(s, "SELECT COUNT(*) FROM calls") < calls);
		check(direct_count(s, "SELECT COUNT(*) FROM history") < history);
	}
	check_int(store_counts(s, &c), 0);
	check_int(c.sent + c.expired + c.failed, 0);
	check_int(c.queued, 1010);
	check_int(store_modem_counters(s, "a", "gsm0", &mc), 0);
	check_int(mc.sent + mc.failed, direct_count(s, "SELECT COUNT(*) FROM attempts"));
	store_close(s);
}

/* Two stores that applied the same transitions have the same digest; one that missed a
 * transition has another. The probe writes. */
static void test_digest_and_probe(void)
{
	Store *a = open_sub("digest-a"), *b = open_sub("digest-b");
	char da[33], db[33];
	uint64_t open_a = 0, open_b = 0, t0 = 60000 * SEC;
	DeliveryChange ch;

	if (!a || !b)
		return;
	for (int i = 0; i < 2; i++) {
		Store *s = i ? b : a;

		check_int(store_begin(s), 0);
		insert_in(s, "00000000000000000000000000000011", "k11", t0);
		insert_in(s, "00000000000000000000000000000012", "k12", t0);
		check_int(store_delivery_assign(s, "00000000000000000000000000000011", to1[0], "a",
		                                "gsm0", t0, &ch),
		          1);
		check_int(store_commit(s), 0);
	}
	check_int(store_digest(a, da, &open_a), 0);
	check_int(store_digest(b, db, &open_b), 0);
	check_str(da, db);
	check_int(open_a, 2);
	check_int(open_b, 2);
	check_int(store_begin(b), 0);
	check_int(store_delivery_assign(b, "00000000000000000000000000000012", to1[1], "b", "gsm1",
	                                t0, &ch),
	          1);
	check_int(store_commit(b), 0);
	check_int(store_digest(b, db, NULL), 0);
	check(strcmp(da, db) != 0);
	check_int(store_probe(a, t0), 0);
	check_int(store_digest(a, db, NULL), 0);
	check_str(da, db); /* the probe is not replicated state */
	store_close(a);
	store_close(b);
}

/* A database another process has locked is a delay: the commit fails with -EBUSY (after the
 * busy timeout), nothing is half-written, and the same transaction succeeds once it is free. */
static void test_locked_database(void)
{
	Store *s = open_sub("locked");
	char path[300];
	sqlite3 *other;
	uint64_t open_before;

	if (!s)
		return;
	snprintf(path, sizeof(path), "%s/locked/gatewayd.db", dir);
	check(sqlite3_open(path, &other) == SQLITE_OK);
	check(sqlite3_exec(other, "BEGIN EXCLUSIVE", NULL, NULL, NULL) == SQLITE_OK);
	open_before = store_open_alerts(s);
	check_int(store_begin(s), -EBUSY);
	check_int(store_probe(s, 1), -EBUSY);
	check_int(store_open_alerts(s), open_before);
	check(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(other);
	check_int(store_probe(s, 2), 0);
	check_int(store_begin(s), 0);
	insert_in(s, "00000000000000000000000000000021", "k21", 70000 * SEC);
	check_int(store_commit(s), 0);
	check_int(store_open_alerts(s), open_before + 1);
	store_close(s);
}

/* The store writes no temporary files: SQLite keeps its statement journals in memory (they
 * spilled at 64 KiB to an unlinked file in the temporary directory: a file opened, written page by
 * page and deleted every few commits, and a commit that fails when that directory is full or
 * read-only). main() points SQLITE_TMPDIR at an empty directory before the first test; run last,
 * this checks that no test's inserts, merges or purges created a file in it. */
static char tmp_dir[300];
static struct stat tmp_dir_before;

static void test_no_temp_files(void)
{
	struct stat now;

	check(stat(tmp_dir, &now) == 0);
	check(now.st_mtim.tv_sec == tmp_dir_before.st_mtim.tv_sec &&
	      now.st_mtim.tv_nsec == tmp_dir_before.st_mtim.tv_nsec);
}

static int due_cb(const DueDelivery *d, void *userdata)
{
	DueDelivery *out = userdata;

	for (; out->alert_id[0]; out++)
		;
	*out = *d;
	out->text = NULL;
	return 0;
}

static void test_due_last_node(void)
{
	Store *s = open_sub("due");
	uint64_t t0 = 80000 * SEC;
	DueDelivery due[4] = {0};
	DeliveryChange ch;
	SendResult r;

	if (!s)
		return;
	insert(s, ID("50"), "due", t0);
	check_int(store_begin(s), 0);
	check_int(store_delivery_assign(s, ID("50"), "+32470000001", "b", "gsm1", t0, &ch), 1);
	r = result_on("b", "gsm1", false, false, t0 + SEC);
	check_int(store_delivery_result(s, ID("50"), "+32470000001", &r, &ch), 1);
	check_int(store_commit(s), 0);
	check_int(store_due_deliveries(s, t0 + 3600 * SEC, 10, due_cb, due), 0);
	check_str(due[0].number, "+32470000001");
	check_str(due[0].last_node, "b");
	check_str(due[0].last_modem, "gsm1");
	check_int(due[0].attempts, 1);
	check_str(due[1].number, "+32470000002");
	check_str(due[1].last_node, "");
	check_str(due[1].last_modem, "");
	store_close(s);
}

static int override_cb(const Override *o, void *userdata)
{
	char **text = userdata;
	char *old = *text;

	if (asprintf(text, "%s%s=%s,%llu,%llu,%s;", old ? old : "", o->role, o->contact,
	             (unsigned long long)o->until, (unsigned long long)o->set_at, o->set_by) < 0)
		*text = NULL;
	free(old);
	return 0;
}

/* Every override row as one string, to compare stores. */
static char *overrides_text(Store *s)
{
	char *text = NULL;

	check_int(store_overrides(s, override_cb, &text), 0);
	return text ? text : strdup("");
}

static void test_overrides(void)
{
	Store *s = open_sub("overrides");
	char long_name[OVERRIDE_NAME_MAX + 2];
	_cleanup_free_ char *text = NULL;
	Override o;

	if (!s)
		return;
	check_int(store_override_get(s, "primary", 100, &o), 0);
	check_int(store_begin(s), 0);
	check_int(store_override_set(s, "primary", "carol", 1000, 100, "alice"), 1);
	check_int(store_override_set(s, "primary", "carol", 1000, 100, "alice"), 0); /* replayed */
	check_int(store_override_set(s, "primary", "bob", 5000, 50, "bob"), 0);      /* older */
	check_int(store_override_set(s, "secondary", "bob", 2000, 100, NULL), 1);
	check_int(store_commit(s), 0);

	/* In force while until lies ahead of the instant asked about, and only then. */
	check_int(store_override_get(s, "primary", 999, &o), 1);
	check_str(o.role, "primary");
	check_str(o.contact, "carol");
	check_int(o.until, 1000);
	check_int(o.set_at, 100);
	check_str(o.set_by, "alice");
	check_int(store_override_get(s, "primary", 1000, &o), 0);
	check_int(store_override_get(s, "secondary", 1500, &o), 1);
	check_str(o.set_by, "");
	check_int(store_override_get(s, "tertiary", 10, &o), 0);

	/* A clear is a row without a contact; a later write beats it, an earlier one does not. */
	check_int(store_begin(s), 0);
	check_int(store_override_set(s, "primary", NULL, 0, 200, "bob"), 1);
	check_int(store_override_set(s, "primary", "carol", 3000, 150, "alice"), 0);
	check_int(store_commit(s), 0);
	check_int(store_override_get(s, "primary", 500, &o), 0);
	text = overrides_text(s);
	check_str(text, "primary=,0,200,bob;secondary=bob,2000,100,;");
	check_int(store_begin(s), 0);
	check_int(store_override_set(s, "primary", "carol", 3000, 300, "alice"), 1);
	check_int(store_commit(s), 0);
	check_int(store_override_get(s, "primary", 500, &o), 1);
	check_str(o.contact, "carol");

	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = 0;
	check_int(store_override_set(s, "", "carol", 1, 1, NULL), -EINVAL);
	check_int(store_override_set(s, long_name, "carol", 1, 1, NULL), -EINVAL);
	check_int(store_override_set(s, "primary", long_name, 1, 1, NULL), -EINVAL);
	check_int(store_override_set(s, "primary", "", 1, 1, NULL), -EINVAL);
	store_close(s);
}

/* The same writes, applied in any order, leave the same rows: the join of the rejoin merge. */
static void test_overrides_converge(void)
{
	static const struct {
		const char *role, *contact;
		uint64_t until, set_at;
		const char *by;
	} w[] = {
	        {"primary", "carol", 900, 100, "alice"}, {"primary", NULL, 0, 100, "bob"},
	        {"primary", "bob", 800, 100, "alice"},   {"primary", "bob", 700, 100, "alice"},
	        {"primary", "bob", 800, 100, "zed"},     {"primary", NULL, 0, 90, "carol"},
	        {"secondary", "alice", 500, 10, NULL},   {"secondary", NULL, 0, 20, NULL},
	};
	static const int orders[][ELEMENTSOF(w)] = {
	        {0, 1, 2, 3, 4, 5, 6, 7},
	        {7, 6, 5, 4, 3, 2, 1, 0},
	        {3, 5, 0, 7, 2, 6, 4, 1},
	};
	char *texts[ELEMENTSOF(orders)] = {0};

	for (size_t k = 0; k < ELEMENTSOF(orders); k++) {
		char name[32];
		Store *s;

		snprintf(name, sizeof(name), "converge-overrides-%zu", k);
		s = open_sub(name);
		if (!s)
			return;
		check_int(store_begin(s), 0);
		for (size_t i = 0; i < ELEMENTSOF(w); i++) {
			int j = orders[k][i];

			check(store_override_set(s, w[j].role, w[j].contact, w[j].until,
			                         w[j].set_at, w[j].by) >= 0);
		}
		check_int(store_commit(s), 0);
		texts[k] = overrides_text(s);
		store_close(s);
	}
	/* The greatest (set_at, contact, until, set_by) wins: at the same set_at carol beats bob
	 * and both beat a clear. */
	check_str(texts[0], "primary=carol,900,100,alice;secondary=,0,20,;");
	for (size_t k = 1; k < ELEMENTSOF(orders); k++)
		check_str(texts[k], texts[0]);
	for (size_t k = 0; k < ELEMENTSOF(orders); k++)
		free(texts[k]);
}

static void test_overrides_export_merge(void)
{
	Store *a = open_sub("overrides-a"), *b = open_sub("overrides-b");
	_cleanup_free_ char *ta = NULL, *tb = NULL, *cursor = NULL;
	int total = 0, chunks = 0;
	json_t *bad[5];

	if (!a || !b)
		return;
	check_int(store_begin(a), 0);
	for (int i = 0; i < 7; i++) {
		char role[16];

		snprintf(role, sizeof(role), "role%d", i);
		check_int(store_override_set(a, role, i % 3 ? "carol" : NULL, 1000 + (uint64_t)i,
		                             100, i % 2 ? "alice" : NULL),
		          1);
	}
	check_int(store_commit(a), 0);
	/* b has a later word on one role, which the merge must keep. */
	check_int(store_begin(b), 0);
	check_int(store_override_set(b, "role1", "bob", 5000, 400, "bob"), 1);
	check_int(store_commit(b), 0);

	cursor = strdup("");
	for (;;) {
		json_t *items = NULL, *item;
		char *next = NULL;
		size_t i;
		int n;

		n = store_export_overrides(a, cursor, 100, &items, &next);
		check(n >= 0 && next);
		free(cursor);
		cursor = next;
		if (n <= 0) {
			json_decref(items);
			break;
		}
		total += n;
		chunks++;
		check_int(store_begin(b), 0);
		json_array_foreach(items, i, item)
		{
			bool later_in_b =
			        streq(json_string_value(json_object_get(item, "role")), "role1");

			check_int(store_merge_override(b, item), later_in_b ? 0 : 1);
			check_int(store_merge_override(b, item), 0);
		}
		check_int(store_commit(b), 0);
		json_decref(items);
	}
	check_int(total, 7);
	check(chunks > 1); /* 100 bytes hold one or two items */
	ta = overrides_text(a);
	tb = overrides_text(b);
	check_str(tb, "role0=,0,100,;role1=bob,5000,400,bob;role2=carol,1002,100,;"
	              "role3=,0,100,alice;role4=carol,1004,100,;role5=carol,1005,100,alice;"
	              "role6=,0,100,;");
	check(!streq(ta, tb));

	bad[0] = json_pack("{s:s, s:I}", "contact", "carol", "until", (json_int_t)1);
	bad[1] = json_pack("{s:s, s:i, s:I, s:I}", "role", "r", "contact", 5, "until",
	                   (json_int_t)1, "set_at", (json_int_t)1);
	bad[2] = json_pack("{s:s, s:s, s:I, s:I}", "role", "r", "contact", "carol", "until",
	                   (json_int_t)-1, "set_at", (json_int_t)1);
	bad[3] = json_pack("{s:s, s:s, s:I}", "role", "r", "contact", "carol", "until",
	                   (json_int_t)1);
	bad[4] = json_pack("[s]", "r");
	check_int(store_begin(b), 0);
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		check_int(store_merge_override(b, bad[i]), -EINVAL);
		json_decref(bad[i]);
	}
	check_int(store_commit(b), 0);
	store_close(a);
	store_close(b);
}

/* Found by fuzz-change: replicated changes the store took but no peer could merge back (an
 * alert id not in hex, an empty recipient, a call or escalation to nobody, a negative time). */
static void test_writes_refuse_unmergeable(void)
{
	static const char *const empty_to[] = {"+32470000001", ""};
	static const char *const null_copy[] = {NULL};
	char last[33] = "";
	json_t *items = NULL, *copy;
	Store *s;
	NewAlert a = {.key = "unmergeable",
	              .text = "db01 DOWN",
	              .node = "a",
	              .accepted_at = 1000 * SEC,
	              .to = to1,
	              .n_to = 2};

	check_int(store_open(dir, &s), 0);
	check_int(store_begin(s), 0);
	a.id = "0123456789abcdef012X456789abcdef"; /* not hex */
	check_int(store_alert_insert(s, &a), -EINVAL);
	a.id = ID("600"); /* 33 digits */
	check_int(store_alert_insert(s, &a), -EINVAL);
	a.id = ID("60");
	a.to = empty_to;
	check_int(store_alert_insert(s, &a), -EINVAL);
	a.to = to1;
	a.copy = null_copy;
	a.n_copy = 1;
	check_int(store_alert_insert(s, &a), -EINVAL);
	a.n_copy = 0;
	check_int(store_alert_exists(s, ID("60")), 0);
	a.esc_next_at = a.accepted_at + 300 * SEC;
	check_int(store_alert_insert(s, &a), 0);
	CallRecord call = {.alert_id = ID("60"),
	                   .number = "",
	                   .node = "a",
	                   .modem = "gsm0",
	                   .at = a.accepted_at,
	                   .outcome = "answered"};
	check_int(store_call_insert(s, &call), -EINVAL);
	bool paged;
	check_int(store_escalate(s, ID("60"), 1, "", a.accepted_at, a.esc_next_at, "a", "", &paged),
	          -EINVAL);
	store_rollback(s);
	check_int(store_begin(s), 0);
	a.esc_next_at = 0;

	/* an expiry past INT64_MAX (a huge replicated ttl) saturates instead of going negative */
	a.expires_at = (uint64_t)INT64_MAX + 1000 * SEC;
	check_int(store_alert_insert(s, &a), 0);
	check_int(store_commit(s), 0);
	check(store_export_alerts(s, "", 0, 1 << 20, &items, last) >= 1);
	check(json_integer_value(json_object_get(json_array_get(items, 0), "exp")) > 0);
	copy = json_deep_copy(json_array_get(items, 0));
	check_int(store_begin(s), 0);
	check_int(store_merge_alert(s, copy), 0); /* its own export merges, changing nothing */
	check_int(store_commit(s), 0);
	json_decref(copy);
	json_decref(items);
	store_close(s);
}

int main(void)
{
	if (!mkdtemp(dir))
		return 77;
	/* before SQLite starts: it reads the variable once */
	snprintf(tmp_dir, sizeof(tmp_dir), "%s/tmp", dir);
	if (mkdir(tmp_dir, 0700) < 0 || setenv("SQLITE_TMPDIR", tmp_dir, 1) < 0 ||
	    stat(tmp_dir, &tmp_dir_before) < 0)
		return 99;
	run(test_durability_settings);
	run(test_lifecycle);
	run(test_expiry_and_purge);
	run(test_reopen_keeps_data);
	run(test_newer_schema_is_refused);
	run(test_inbox_and_reports);
	run(test_export_merge_copy);
	run(test_merge_converges);
	run(test_merge_dedupe);
	run(test_merge_rejects_malformed);
	run(test_stale_failure);
	run(test_nodes);
	run(test_revisions);
	run(test_due_last_node);
	run(test_overrides);
	run(test_overrides_converge);
	run(test_overrides_export_merge);
	run(test_tallies);
	run(test_digest_and_probe);
	run(test_locked_database);
	run(test_writes_refuse_unmergeable);
	run(test_no_temp_files);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	return test_exit();
}
