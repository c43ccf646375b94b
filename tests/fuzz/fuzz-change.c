/* fuzz-change: the store's apply and merge layer (gatewayd/store/) on arbitrary replicated
 * payloads. A payload is what a peer multicasts, {"v":4,"seq":N,"node":"a","changes":[...]}
 * (a bare change object or an array of them is taken too); each change that passes the schema
 * (change_check(), as gatewayd's apply_payload() checks it) is handed to the store functions
 * that its handler calls, with the same field mapping and the example config's settings, and a
 * "merge" change's items to the rejoin merges. The handlers themselves need a whole Gateway;
 * their store calls are what a bad payload reaches.
 *
 * The store lives in a temporary folder ($TMPDIR, else /dev/shm or /tmp) for the whole run,
 * and each input is applied in one transaction that is then rolled back, so every input starts
 * from an empty store and a crash replays from its file alone. After the changes, the alerts
 * are read back, exported, and merged again: a merge of what the store itself exported must
 * be accepted and, applied twice, change nothing the second time (the merges are joins). */
#include "store.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "change.h"
#include "log.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* gatewayd.conf defaults, as apply_submit()/apply_result() read them from the config */
#define DEDUPE_WINDOW      600
#define ESCALATION_TIMEOUT 300
#define BUNDLE_THRESHOLD   5
#define BUNDLE_WINDOW      60
#define RETRY_MIN          5
#define RETRY_MAX          300
#define MAX_PERM_FAILURES  3
#define CHANGES_MAX        64

static Store *store;
static char dir[256];

static const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

static uint64_t ju64(json_t *o, const char *k)
{
	json_int_t v = json_integer_value(json_object_get(o, k));
	return v > 0 ? (uint64_t)v : 0;
}

static const char **strings(json_t *array, size_t *ret_n)
{
	size_t n = json_array_size(array), i;
	const char **v = calloc(n + 1, sizeof(char *));
	json_t *item;

	assert(v);
	json_array_foreach(array, i, item) v[i] = json_string_value(item);
	*ret_n = n;
	return v;
}

static void apply_submit(json_t *c)
{
	char first_id[33];
	NewAlert a = {
	        .id = jstr(c, "id"),
	        .key = jstr(c, "key"),
	        .text = jstr(c, "text"),
	        .source = json_string_value(json_object_get(c, "source")),
	        .node = jstr(c, "node"),
	        .critical = json_is_true(json_object_get(c, "critical")),
	        .accepted_at = ju64(c, "at"),
	        .bundle_threshold = BUNDLE_THRESHOLD,
	        .bundle_window = BUNDLE_WINDOW * USEC_PER_SEC,
	};
	const char **to, **copy;

	a.expires_at = a.accepted_at + ju64(c, "ttl") * USEC_PER_SEC;
	if (json_is_true(json_object_get(c, "escalate")))
		a.esc_next_at = a.accepted_at + ESCALATION_TIMEOUT * USEC_PER_SEC;
	if (store_dedupe_find(store, a.key, a.accepted_at, DEDUPE_WINDOW * USEC_PER_SEC, first_id) >
	    0) {
		(void)store_history_add(store, first_id, a.accepted_at, "duplicate", a.node, "");
		return;
	}
	to = strings(json_object_get(c, "to"), &a.n_to);
	copy = strings(json_object_get(c, "copy"), &a.n_copy);
	a.to = to;
	a.copy = copy;
	(void)store_alert_insert(store, &a);
	free(to);
	free(copy);
}

static void apply_result(json_t *c)
{
	SendResult res = {
	        .node = jstr(c, "node"),
	        .modem = jstr(c, "modem"),
	        .at = ju64(c, "at"),
	        .ok = json_is_true(json_object_get(c, "ok")),
	        .permanent = json_is_true(json_object_get(c, "permanent")),
	        .error = json_string_value(json_object_get(c, "error")),
	        .message_ref = json_object_get(c, "ref") ? (int)ju64(c, "ref") : -1,
	        .retry_min = json_is_true(json_object_get(c, "retry_now")) ? 0 : RETRY_MIN,
	        .retry_max = RETRY_MAX,
	        .max_permanent_failures = MAX_PERM_FAILURES,
	};
	DeliveryChange change;

	if (store_delivery_result(store, jstr(c, "id"), jstr(c, "to"), &res, &change) > 0)
		assert(change.new_state < _DELIVERY_STATE_MAX);
}

static void apply_merge(json_t *c)
{
	const char *kind = jstr(c, "kind");
	json_t *item;
	size_t i;

	json_array_foreach(json_object_get(c, "items"), i, item)
	{
		if (streq(kind, "alerts"))
			(void)store_merge_alert(store, item);
		else if (streq(kind, "dedupe"))
			(void)store_merge_dedupe(store, item);
		else if (streq(kind, "inbox"))
			(void)store_merge_inbox(store, item);
		else if (streq(kind, "overrides"))
			(void)store_merge_override(store, item);
		else if (streq(kind, "silences"))
			(void)store_merge_silence(store, item);
		else if (streq(kind, "heartbeats"))
			(void)store_merge_heartbeat(store, item);
	}
}

static void apply_change(json_t *c)
{
	const char *t = jstr(c, "t");
	DeliveryChange change;

	if (change_check(c, NULL, NULL, 0) < 0)
		return; /* skipped by gatewayd too */
	if (streq(t, "submit"))
		apply_submit(c);
	else if (streq(t, "assign"))
		(void)store_delivery_assign(store, jstr(c, "id"), jstr(c, "to"), jstr(c, "node"),
		                            jstr(c, "modem"), ju64(c, "at"), &change);
	else if (streq(t, "result"))
		apply_result(c);
	else if (streq(t, "hold"))
		(void)store_delivery_hold(store, jstr(c, "id"), jstr(c, "to"), ju64(c, "until"));
	else if (streq(t, "heartbeat"))
		(void)store_heartbeat_put(store, jstr(c, "name"), ju64(c, "at"), 0);
	else if (streq(t, "missed"))
		(void)store_heartbeat_put(store, jstr(c, "name"), 0, ju64(c, "due"));
	else if (streq(t, "hook"))
		(void)store_history_add(store, jstr(c, "id"), ju64(c, "at"), "write-back",
		                        jstr(c, "node"), jstr(c, "outcome"));
	else if (streq(t, "expire"))
		(void)store_alert_expire(store, jstr(c, "id"), ju64(c, "at"));
	else if (streq(t, "ack"))
		(void)store_alert_ack(store, jstr(c, "id"), jstr(c, "by"), jstr(c, "via"),
		                      ju64(c, "at"));
	else if (streq(t, "resolve")) {
		unsigned cancelled;

		(void)store_alert_resolve(store, jstr(c, "id"), jstr(c, "by"), jstr(c, "via"),
		                          ju64(c, "at"), &cancelled);
	} else if (streq(t, "escalate")) {
		bool paged;
		uint64_t at = ju64(c, "at");

		(void)store_escalate(store, jstr(c, "id"), (unsigned)ju64(c, "step"), jstr(c, "to"),
		                     at, at + ESCALATION_TIMEOUT * USEC_PER_SEC, jstr(c, "node"),
		                     jstr(c, "role"), &paged);
	} else if (streq(t, "sms_in")) {
		InboxMessage m = {
		        .key = jstr(c, "key"),
		        .node = jstr(c, "node"),
		        .modem = jstr(c, "modem"),
		        .sender = jstr(c, "from"),
		        .text = jstr(c, "text"),
		        .parts = (unsigned)ju64(c, "parts"),
		        .smsc_at = ju64(c, "smsc_at"),
		        .received_at = ju64(c, "at"),
		};
		(void)store_inbox_insert(store, &m);
	} else if (streq(t, "report")) {
		char id[33], number[20];
		DeliveryReport rep = {
		        .node = jstr(c, "node"),
		        .modem = jstr(c, "modem"),
		        .message_ref = (int)ju64(c, "ref"),
		        .delivered = json_is_true(json_object_get(c, "delivered")),
		        .status = jstr(c, "status"),
		        .at = ju64(c, "at"),
		};
		(void)store_delivery_report(store, &rep, id, number);
	} else if (streq(t, "call")) {
		CallRecord rec = {
		        .alert_id = jstr(c, "id"),
		        .number = jstr(c, "number"),
		        .node = jstr(c, "node"),
		        .modem = jstr(c, "modem"),
		        .at = ju64(c, "at"),
		        .outcome = jstr(c, "outcome"),
		        .duration_sec = ju64(c, "duration"),
		        .error = json_string_value(json_object_get(c, "error")),
		        .dtmf_ack = json_is_true(json_object_get(c, "dtmf_ack")),
		};
		(void)store_call_insert(store, &rec);
	} else if (streq(t, "override"))
		(void)store_override_set(store, jstr(c, "role"),
		                         json_string_value(json_object_get(c, "contact")),
		                         ju64(c, "until"), ju64(c, "at"), jstr(c, "by"));
	else if (streq(t, "silence")) {
		/* What apply_silence() hands the store (it refuses oversized strings first). */
		Silence si = {.except_critical =
		                      json_is_true(json_object_get(c, "except_critical")),
		              .created_at = ju64(c, "at"),
		              .until = ju64(c, "until")};

		snprintf(si.id, sizeof(si.id), "%s", jstr(c, "id"));
		snprintf(si.field, sizeof(si.field), "%s", jstr(c, "field"));
		snprintf(si.value, sizeof(si.value), "%s", jstr(c, "value"));
		snprintf(si.by, sizeof(si.by), "%s", jstr(c, "by"));
		snprintf(si.reason, sizeof(si.reason), "%s", jstr(c, "reason"));
		snprintf(si.node, sizeof(si.node), "%s", jstr(c, "node"));
		(void)store_silence_put(store, &si);
	} else if (streq(t, "unsilence"))
		(void)store_silence_remove(store, jstr(c, "id"), ju64(c, "at"), jstr(c, "by"));
	else if (streq(t, "merge"))
		apply_merge(c);
}

static int count_due(const DueDelivery *d, void *userdata)
{
	assert(strlen(d->alert_id) < sizeof(d->alert_id) && d->text);
	(*(size_t *)userdata)++;
	return 0;
}

/* What the store holds now must read back, export, and merge again as a join. */
static void read_back(void)
{
	char last[33] = "";
	QueueCounts counts;
	json_t *items = NULL, *item, *view = NULL;
	size_t due = 0, i;
	int n;

	assert(store_counts(store, &counts) >= 0);
	assert(store_due_deliveries(store, UINT64_MAX / 2, 100, count_due, &due) >= 0);
	assert(store_queue_json(store, 100, &view) >= 0);
	json_decref(view);
	view = NULL;
	assert(store_inbox_json(store, 100, &view) >= 0);
	json_decref(view);

	n = store_export_alerts(store, "", 0, 1 << 20, &items, last);
	assert(n >= 0);
	json_array_foreach(items, i, item)
	{
		json_t *again = json_deep_copy(item);

		view = NULL;
		if (store_alert_json(store, json_string_value(json_object_get(item, "id")), true,
		                     &view) >= 0)
			json_decref(view);
		assert(again);
		assert(store_merge_alert(store, again) >= 0);
		assert(store_merge_alert(store, again) == 0);
		json_decref(again);
	}
	json_decref(items);
}

static void cleanup(void)
{
	char path[320];

	store = store_close(store);
	for (const char *const *f = (const char *const[]){"gatewayd.db", "gatewayd.db-wal",
	                                                  "gatewayd.db-shm", NULL};
	     *f; f++) {
		snprintf(path, sizeof(path), "%s/%s", dir, *f);
		unlink(path);
	}
	rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *payload, *changes, *c;
	size_t i;

	if (!store) {
		log_set_max_level(LOG_CRIT);
		const char *tmp = getenv("TMPDIR");

		if (!tmp || strlen(tmp) > sizeof(dir) - 32)
			tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
		snprintf(dir, sizeof(dir), "%s/fuzz-change.XXXXXX", tmp);
		assert(mkdtemp(dir));
		assert(store_open(dir, &store) >= 0);
		atexit(cleanup);
	}
	payload = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
	if (!payload)
		return 0;
	if (json_is_array(payload))
		changes = payload;
	else if (json_is_object(json_object_get(payload, "changes")) ||
	         json_is_array(json_object_get(payload, "changes")))
		changes = json_object_get(payload, "changes");
	else
		changes = payload;

	assert(store_begin(store) >= 0);
	if (json_is_object(changes))
		apply_change(changes);
	else
		json_array_foreach(changes, i, c)
		{
			if (i >= CHANGES_MAX)
				break;
			apply_change(c);
		}
	read_back();
	store_rollback(store);
	json_decref(payload);
	return 0;
}
