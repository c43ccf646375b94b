/* Unit tests of store: the state machine's transitions are monotonic and idempotent, dedupe
 * windows are fixed from the first acceptance, and the database is durable (WAL + FULL). */
#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include "store.h"
#include "test.h"

#define SEC 1000000ULL
static char dir[] = "/tmp/test-store-XXXXXX";

static const char *to1[] = {"+32470000001", "+32470000002"};

static void insert(Store *s, const char *id, const char *key, uint64_t at)
{
	NewAlert a = {.id = id,
		      .key = key,
		      .text = "db01 DOWN",
		      .node = "a",
		      .accepted_at = at,
		      .expires_at = at + 3600 * SEC,
		      .to = to1,
		      .n_to = 2};

	check_int(store_begin(s), 0);
	check_int(store_alert_insert(s, &a), 0);
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
	check_int(store_alert_ack(s, "0000000000000000000000000000ffff", "me", "api", t0),
		  -ENOENT);
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
	check(store_purge(s, t0 + 3601 * SEC) >= 1);
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
	InboxMessage m = {.key = "k1", .node = "a", .modem = "gsm0", .sender = "+32470100001",
			  .text = "ACK 1234", .parts = 1, .received_at = t0};
	DeliveryReport rep = {.node = "a", .modem = "gsm0", .message_ref = 42, .delivered = true,
			      .status = "delivered", .at = t0 + 5 * SEC};

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

int main(void)
{
	if (!mkdtemp(dir))
		return 77;
	run(test_durability_settings);
	run(test_lifecycle);
	run(test_expiry_and_purge);
	run(test_reopen_keeps_data);
	run(test_newer_schema_is_refused);
	run(test_inbox_and_reports);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	return test_exit();
}
