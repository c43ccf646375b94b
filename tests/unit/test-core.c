/* Unit tests of the core state machine: two gateways in one process, fed the same replicated
 * payloads through the real apply path (apply_payload(), the handlers of change_kinds[], the
 * store), with time read from a fake clock (now_usec_hook). No corosync, no sockets, no modems,
 * no sleeps; each node's replication is the loop-back backend, whose view the test reports by
 * hand (replication_report_view()) to play a peer leaving.
 *
 * What a node publishes (escalation steps, takeover's requeues) is taken from its outbox and
 * applied to both nodes in one agreed order, as the replication layer would; changes that a
 * request or a modem would cause are built here in the shapes the gateway builds them and must
 * pass the schema (change_check()) before they are applied.
 *
 * Checked: two stores that apply the same sequence end equal (digest and full export), even
 * with their clocks apart while they apply; payloads applied twice change no alert, delivery,
 * attempt, key or line of an alert's story, and a state exchange applied twice changes
 * nothing; two histories merged in either order end equal;
 * which node owns a delivery, before and after its peer leaves; a departed node's send taken
 * over; escalation steps after N seconds of fake time, one node publishing each, none after
 * an acknowledgment, and none after the last round of the chain ([escalation] repeat).
 *
 * Not here: dispatch to modems (no modem), the grace period after a reconnect and the state
 * exchange that a newcomer starts (both need the corosync backend), voice and SMS replies. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gateway-internal.h"
#include "replication-backend.h"
#include "test.h"

#define SEC        1000000ULL
#define T0         (1780000000ULL * SEC) /* 2026-05-28, a Thursday */
#define STEP       300                   /* [escalation] step_timeout */
#define DUMP_BYTES (1u << 20)

static char base[] = "/tmp/test-core-XXXXXX";

/* ---- the fake clock ---- */

static uint64_t fake_now = T0;
/* While a node applies a payload its clock is off by this much (each node by another amount):
 * a decision taken from the applying node's clock instead of the change's own timestamps would
 * make the stores differ. */
static uint64_t apply_skew;

static uint64_t fake_clock(int clock)
{
	/* Monotonic time only measures intervals here: the same value does. */
	return (clock == CLOCK_REALTIME ? fake_now : fake_now - T0 + SEC) + apply_skew;
}

/* ---- a node: a Gateway without sockets or modems ---- */

typedef struct Node {
	const char *name;
	uint32_t nodeid;
	char dir[128];
	Config *config;
	sd_event *event;
	Gateway *g;
	uint64_t seq;
} Node;

static const char config_text[] = "[node]\n"
                                  "name = %s\n"
                                  "state_dir = %s\n"
                                  "[cluster]\n"
                                  "enabled = false\n"
                                  "[dedupe]\n"
                                  "window = 600\n"
                                  "[delivery]\n"
                                  "retry_min = 5\n"
                                  "retry_max = 300\n"
                                  "[contact alice]\n"
                                  "number = +32470100001\n"
                                  "[contact bob]\n"
                                  "number = +32470100002\n"
                                  "[contact carol]\n"
                                  "number = +32470100003\n"
                                  "[role primary]\n"
                                  "contacts = alice\n"
                                  "[role secondary]\n"
                                  "contacts = bob\n"
                                  "[role management]\n"
                                  "contacts = carol\n"
                                  "[escalation]\n"
                                  "steps = primary, secondary, management\n"
                                  "step_timeout = 300\n"
                                  "repeat = 1\n"
                                  "[heartbeat cron]\n"
                                  "interval = 600\n"
                                  "grace = 60\n"
                                  "to = role:primary\n"
                                  "priority = critical\n";

static int noop_defer(sd_event_source *s, void *userdata)
{
	return 0;
}

static int noop_time(sd_event_source *s, uint64_t usec, void *userdata)
{
	return 0;
}

static void node_open(Node *n, const char *name, uint32_t nodeid)
{
	char conf[160], *err = NULL;
	FILE *f;

	static unsigned opened;

	*n = (Node){.name = name, .nodeid = nodeid};
	snprintf(n->dir, sizeof(n->dir), "%s/%s%u", base, name, ++opened);
	check(mkdir(n->dir, 0700) == 0);
	snprintf(conf, sizeof(conf), "%s.conf", n->dir);
	f = fopen(conf, "we");
	check(f != NULL);
	if (!f)
		abort();
	fprintf(f, config_text, name, n->dir);
	fclose(f);
	check_int(config_load(conf, &n->config, &err), 0);
	if (err)
		fprintf(stderr, "%s\n", err);
	free(err);
	check_int(sd_event_new(&n->event), 0);
	check_int(gateway_new(n->event, n->config, &n->g), 0);
	if (!n->g)
		abort();
	n->g->nodeid = nodeid;
	members_self(&n->g->members)->nodeid = nodeid;
	/* What modems_self_health_changed() says of a node with one healthy modem. */
	members_self(&n->g->members)->usable_modems = 1;
	/* The sources apply_payload() and on_view() poke; the loop never runs here. */
	check_int(sd_event_add_defer(n->event, &n->g->dispatch.defer, noop_defer, NULL), 0);
	sd_event_source_set_enabled(n->g->dispatch.defer, SD_EVENT_OFF);
	check_int(sd_event_add_time(n->event, &n->g->dispatch.timer, CLOCK_REALTIME, 0, 0,
	                            noop_time, NULL),
	          0);
	sd_event_source_set_enabled(n->g->dispatch.timer, SD_EVENT_OFF);
	/* [cluster] enabled = false: the loop-back backend, with the gateway's own callbacks. */
	check_int(gateway_start_cluster(n->g), 0);
}

static void node_close(Node *n)
{
	n->g = gateway_free(n->g);
	n->event = sd_event_unref(n->event);
	n->config = config_free(n->config);
}

/* ---- replication by hand ---- */

/* Applies one payload of `from` to each of `to` in turn, as its delivery in agreed order.
 * Takes changes. */
static void deliver(Node *from, json_t *changes, Node **to, size_t n_to)
{
	_cleanup_(json_decrefp) json_t *payload = NULL;
	_cleanup_free_ char *text = NULL;

	check(changes != NULL);
	payload = json_pack("{s:i, s:I, s:s, s:o}", "v", PROTOCOL_VERSION, "seq",
	                    (json_int_t)++from->seq, "node", from->name, "changes", changes);
	text = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
	check(text != NULL);
	for (size_t i = 0; text && i < n_to; i++) {
		apply_skew = to[i]->nodeid * 700 * (SEC / 1000);
		check_int(apply_payload(to[i]->g, from->nodeid, text, strlen(text)), 0);
	}
	apply_skew = 0;
}

/* Takes what `from` published this turn (its outbox) and delivers it; returns how many changes
 * there were. */
static size_t flush(Node *from, Node **to, size_t n_to)
{
	Gateway *g = from->g;
	size_t n = json_array_size(g->publish.outbox);
	json_t *changes;

	if (n == 0)
		return 0;
	changes = json_deep_copy(g->publish.outbox);
	for (size_t i = 0; i < n; i++) {
		free(g->publish.pending[i]);
		g->publish.pending[i] = NULL;
	}
	json_array_clear(g->publish.outbox);
	deliver(from, changes, to, n_to);
	return n;
}

/* One change built here: it must pass the schema, as gatewayd's own do. */
static json_t *valid(json_t *c)
{
	char why[200] = "";

	check(c != NULL);
	if (change_check(c, NULL, why, sizeof(why)) < 0) {
		fprintf(stderr, "invalid change: %s\n", why);
		test_failures++;
	}
	return c;
}

/* The changes in the shapes handle_send(), dispatch_one(), job_results() and handle_ack()
 * (gateway-requests.c, gateway-dispatch.c) give them. */
static json_t *submit(const char *id, const char *key, bool critical, const char *to,
                      const char *node, uint64_t at, bool escalate)
{
	json_t *c = change_pack("submit", "{s:s, s:s, s:s, s:b, s:I, s:[s], s:[], s:s, s:s, s:I}",
	                        "id", id, "key", key, "text", "db01 is DOWN", "critical", critical,
	                        "ttl", (json_int_t)3600, "to", to, "copy", "source", "nagios-1",
	                        "node", node, "at", (json_int_t)at);

	if (c && escalate)
		json_object_set_new(c, "escalate", json_true());
	return valid(c);
}

static json_t *assign(const char *id, const char *to, const char *node, uint64_t at)
{
	return valid(change_pack("assign", "{s:s, s:s, s:s, s:s, s:I}", "id", id, "to", to, "node",
	                         node, "modem", "gsm0", "at", (json_int_t)at));
}

static json_t *result(const char *id, const char *to, const char *node, uint64_t at, bool ok,
                      bool permanent)
{
	return valid(change_pack("result", "{s:s, s:s, s:s, s:s, s:I, s:b, s:b, s:b, s:s?}", "id",
	                         id, "to", to, "node", node, "modem", "gsm0", "at", (json_int_t)at,
	                         "ok", ok, "permanent", permanent, "retry_now", 0, "error",
	                         ok ? NULL : "+CMS ERROR: 500"));
}

static json_t *ack(const char *id, const char *by, const char *node, uint64_t at)
{
	return valid(change_pack("ack", "{s:s, s:s, s:s, s:s, s:I}", "id", id, "by", by, "via",
	                         "api", "node", node, "at", (json_int_t)at));
}

static json_t *resolve(const char *id, const char *by, const char *node, uint64_t at)
{
	return valid(change_pack("resolve", "{s:s, s:s, s:s, s:s, s:I}", "id", id, "by", by, "via",
	                         "api", "node", node, "at", (json_int_t)at));
}

static json_t *expire(const char *id, uint64_t at)
{
	return valid(change_pack("expire", "{s:s, s:I}", "id", id, "at", (json_int_t)at));
}

static json_t *hello(const Node *n)
{
	return valid(change_pack("hello", "{s:s, s:I, s:I, s:s, s:i, s:b, s:[{s:s, s:s, s:s}]}",
	                         "node", n->name, "nodeid", (json_int_t)n->nodeid, "at",
	                         (json_int_t)fake_now, "fingerprint", "", "version",
	                         PROTOCOL_VERSION, "voice", 0, "modems", "node", n->name, "name",
	                         "gsm0", "state", "ok"));
}

/* A payload of one or more changes (the array takes them). */
#define changes(fmt, ...) json_pack("[" fmt "]", __VA_ARGS__)

static void publish1(Node *from, json_t *c, Node **to, size_t n_to)
{
	json_t *v = json_array();

	json_array_append_new(v, c);
	deliver(from, v, to, n_to);
}

/* ---- what a store holds ---- */

/* Everything a node would hand over in a state exchange: alerts with their deliveries,
 * attempts, calls and escalation, the dedupe keys, the inbox and the overrides. */
static json_t *dump(Node *n)
{
	json_t *all = json_object(), *items = NULL;
	char last_id[33] = "";
	char *last = NULL;

	check_int(store_export_alerts(n->g->store, "", 0, DUMP_BYTES, &items, last_id) >= 0, 1);
	json_object_set_new(all, "alerts", items ? items : json_null());
	items = NULL;
	check_int(store_export_dedupe(n->g->store, "", 0, DUMP_BYTES, &items, &last) >= 0, 1);
	json_object_set_new(all, "dedupe", items ? items : json_null());
	free(last);
	last = NULL;
	items = NULL;
	check_int(store_export_inbox(n->g->store, "", DUMP_BYTES, &items, &last) >= 0, 1);
	json_object_set_new(all, "inbox", items ? items : json_null());
	free(last);
	last = NULL;
	items = NULL;
	check_int(store_export_overrides(n->g->store, "", DUMP_BYTES, &items, &last) >= 0, 1);
	json_object_set_new(all, "overrides", items ? items : json_null());
	free(last);
	return all;
}

static void digest(Node *n, char ret[static 33])
{
	uint64_t open = 0;

	check_int(store_digest(n->g->store, ret, &open), 0);
}

static bool same_dump(Node *a, Node *b, bool verbose)
{
	_cleanup_(json_decrefp) json_t *da = dump(a), *db = dump(b);
	bool same = json_equal(da, db);

	if (!same && verbose) {
		_cleanup_free_ char *ta = json_dumps(da, JSON_SORT_KEYS | JSON_INDENT(1));
		_cleanup_free_ char *tb = json_dumps(db, JSON_SORT_KEYS | JSON_INDENT(1));

		fprintf(stderr, "--- %s:\n%s\n--- %s:\n%s\n", a->name, ta, b->name, tb);
	}
	return same;
}

static void check_same(Node *a, Node *b)
{
	char da[33], db[33];

	digest(a, da);
	digest(b, db);
	check_str(da, db);
	check(same_dump(a, b, true));
}

/* The exported record of one alert (the caller's), NULL when the store has none. */
static json_t *alert_record(Node *n, const char *id)
{
	_cleanup_(json_decrefp) json_t *items = NULL;
	json_t *item;
	char last[33] = "";
	size_t i;

	if (store_export_alerts(n->g->store, "", 0, DUMP_BYTES, &items, last) < 0)
		return NULL;
	json_array_foreach(items, i, item)
	{
		if (streq(jstr(item, "id"), id))
			return json_incref(item);
	}
	return NULL;
}

static const char *delivery_state(Node *n, const char *id, const char *to, char buf[static 16])
{
	_cleanup_(json_decrefp) json_t *a = alert_record(n, id);
	json_t *d;
	size_t i;

	snprintf(buf, 16, "(none)");
	json_array_foreach(json_object_get(a, "dl"), i, d)
	{
		if (streq(jstr(d, "to"), to)) {
			json_t *state = json_object_get(d, "state");

			if (json_is_string(state))
				snprintf(buf, 16, "%s", json_string_value(state));
			else if (json_is_integer(state))
				snprintf(buf, 16, "%s",
				         store_delivery_state_to_string(
				                 (DeliveryState)json_integer_value(state)));
		}
	}
	return buf;
}

/* The escalation step an alert is on (0: none taken), -1 without escalation. */
static long long esc_step(Node *n, const char *id)
{
	_cleanup_(json_decrefp) json_t *a = alert_record(n, id);
	json_t *step = json_object_get(a, "esc_step");

	return json_is_integer(step) ? json_integer_value(step) : -1;
}

/* ---- the scenarios ---- */

#define ID_X  "0000000000000000000000000000000a"
#define ID_Y  "0000000000000000000000000000000b"
#define ID_Z  "0000000000000000000000000000000c"
#define ID_W  "0000000000000000000000000000000d"
#define ID_V  "0000000000000000000000000000000e"
#define ALICE "+32470100001"
#define BOB   "+32470100002"
#define CAROL "+32470100003"
#define N1    "+32470000001"
#define N2    "+32470000002"

static void open_pair(Node *a, Node *b)
{
	Node *both[] = {a, b};
	ReplicationMember view[] = {{.nodeid = 1, .pid = 100}, {.nodeid = 2, .pid = 200}};

	node_open(a, "a", 1);
	node_open(b, "b", 2);
	/* Both see both, then each announces itself in agreed order (REASON_NONE: nobody new,
	 * so no state exchange starts). */
	check_int(replication_report_view(a->g->replication, view, 2, NULL, 0, true), 0);
	check_int(replication_report_view(b->g->replication, view, 2, NULL, 0, true), 0);
	publish1(a, hello(a), both, 2);
	publish1(b, hello(b), both, 2);
}

/* A history of every kind the store keeps for an alert: submit, duplicate, assign, results,
 * ack, expiry; from both nodes, interleaved. */
static void history(Node *a, Node *b, Node **to, size_t n_to)
{
	deliver(a,
	        changes("o, o, o", submit(ID_X, "db01/ping", true, N1, "a", T0, true),
	                submit(ID_Y, "web/http", false, N2, "a", T0 + 1, false),
	                submit(ID_Z, "db01/ping", true, N1, "a", T0 + 2, true)),
	        to, n_to);
	publish1(b, assign(ID_X, N1, "b", T0 + SEC), to, n_to);
	publish1(b, result(ID_X, N1, "b", T0 + 2 * SEC, false, false), to, n_to);
	deliver(a,
	        changes("o, o", assign(ID_Y, N2, "a", T0 + 3 * SEC),
	                assign(ID_X, N1, "a", T0 + 8 * SEC)),
	        to, n_to);
	publish1(a, result(ID_X, N1, "a", T0 + 9 * SEC, true, false), to, n_to);
	publish1(b, ack(ID_X, "alice", "b", T0 + 10 * SEC), to, n_to);
	publish1(a, result(ID_Y, N2, "a", T0 + 11 * SEC, false, true), to, n_to);
	publish1(b, expire(ID_Y, T0 + 3601 * SEC), to, n_to);
}

/* The schema (change.c) and the gateway's handlers (handlers.c) are two tables: a kind on the
 * wire that no handler applies would be skipped by every node. */
static void test_every_kind_has_a_handler(void)
{
	for (size_t i = 0; i < change_kinds_n; i++)
		if (!handlers_find(change_kinds[i].name)) {
			fprintf(stderr, "change '%s' has no handler\n", change_kinds[i].name);
			check(handlers_find(change_kinds[i].name));
		}
	check(!handlers_find("no-such-kind"));
}

static void test_same_changes_same_store(void)
{
	Node a, b, c;
	Node *both[2] = {&a, &b};
	char state[16], dc[33], da[33];

	fake_now = T0;
	open_pair(&a, &b);
	history(&a, &b, both, 2);

	check_same(&a, &b);
	/* And what they agree on is the history's outcome, not just anything alike. */
	check_str(delivery_state(&a, ID_X, N1, state), "sent");
	check_str(delivery_state(&b, ID_Y, N2, state), "expired");
	check_str(delivery_state(&b, ID_Z, N1, state), "(none)"); /* a duplicate of X */
	{
		char first[33] = "";

		check_int(
		        store_dedupe_find(b.g->store, "db01/ping", T0 + 5 * SEC, 600 * SEC, first),
		        1);
		check_str(first, ID_X);
	}
	{
		_cleanup_(json_decrefp) json_t *x = alert_record(&b, ID_X);

		check_str(jstr(x, "ack_by"), "alice");
		check_int(json_array_size(json_object_get(x, "att")), 2);
	}

	/* The comparison can tell: a third store that stopped after the assignment differs. */
	node_open(&c, "c", 3);
	{
		Node *one[] = {&c};

		deliver(&a, changes("o", submit(ID_X, "db01/ping", true, N1, "a", T0, true)), one,
		        1);
		publish1(&a, assign(ID_X, N1, "a", T0 + 8 * SEC), one, 1);
	}
	digest(&a, da);
	digest(&c, dc);
	check(strcmp(da, dc) != 0);
	check(!same_dump(&a, &c, false));
	node_close(&c);
	node_close(&a);
	node_close(&b);
}

/* A payload delivered twice (a local delivery that had reached the peer after all) and a state
 * exchange applied twice change nothing. */
static void test_replay_is_idempotent(void)
{
	Node a, b, c;
	Node *both[2] = {&a, &b}, *only_b[] = {&b}, *only_c[] = {&c};
	_cleanup_(json_decrefp) json_t *before = NULL, *after = NULL, *items = NULL;
	char last[33] = "", da[33], dc[33];

	fake_now = T0;
	open_pair(&a, &b);
	history(&a, &b, both, 2);

	/* The same history again, to b alone: no alert, delivery, attempt, key, story line or
	 * digest moves (a submit applied again finds its own key: not a duplicate of itself). */
	digest(&b, da);
	before = dump(&b);
	history(&a, &b, only_b, 1);
	after = dump(&b);
	check(json_equal(before, after));
	digest(&b, dc);
	check_str(da, dc);
	json_decref(TAKE_PTR(after));
	json_decref(TAKE_PTR(before));
	before = dump(&b);

	/* A state exchange of a's alerts into b, which holds them already: nothing moves. */
	check(store_export_alerts(a.g->store, "", 0, DUMP_BYTES, &items, last) > 0);
	publish1(&a,
	         valid(change_pack("merge", "{s:s, s:i, s:s, s:O}", "node", "a", "round", 1, "kind",
	                           "alerts", "items", items)),
	         only_b, 1);
	after = dump(&b);
	check(json_equal(before, after));
	json_decref(TAKE_PTR(after));

	/* Into an empty node c, twice: it ends as a after the first, and the second is a no-op. */
	node_open(&c, "c", 3);
	for (int round = 1; round <= 2; round++) {
		_cleanup_(json_decrefp) json_t *dedupe = NULL;
		char *key = NULL;

		check(store_export_dedupe(a.g->store, "", 0, DUMP_BYTES, &dedupe, &key) > 0);
		free(key);
		deliver(&a,
		        changes("o, o",
		                valid(change_pack("merge", "{s:s, s:i, s:s, s:O}", "node", "a",
		                                  "round", round, "kind", "alerts", "items",
		                                  items)),
		                valid(change_pack("merge", "{s:s, s:i, s:s, s:O}", "node", "a",
		                                  "round", round, "kind", "dedupe", "items",
		                                  dedupe))),
		        only_c, 1);
		check(same_dump(&a, &c, true));
	}
	digest(&a, da);
	digest(&c, dc);
	check_str(da, dc);
	node_close(&c);
	node_close(&a);
	node_close(&b);
}

/* The state exchange of one node into the other, as merge changes. */
static void exchange(Node *from, Node *to)
{
	Node *dest[] = {to};
	_cleanup_(json_decrefp) json_t *alerts = NULL, *dedupe = NULL;
	char last[33] = "", *key = NULL;

	check(store_export_alerts(from->g->store, "", 0, DUMP_BYTES, &alerts, last) >= 0);
	check(store_export_dedupe(from->g->store, "", 0, DUMP_BYTES, &dedupe, &key) >= 0);
	free(key);
	deliver(from,
	        changes("o, o",
	                valid(change_pack("merge", "{s:s, s:i, s:s, s:O}", "node", from->name,
	                                  "round", 1, "kind", "alerts", "items", alerts)),
	                valid(change_pack("merge", "{s:s, s:i, s:s, s:O}", "node", from->name,
	                                  "round", 1, "kind", "dedupe", "items", dedupe))),
	        dest, 1);
}

/* A partition: each half takes the same alert over and sends it (so it may go out twice), and
 * each has an alert of its own. Merged both ways, in either order, the halves end equal, with
 * "sent" winning over the other half's failure. */
static void test_partition_merge_order_independent(void)
{
	Node a, b, a2, b2;
	Node *both[2] = {&a, &b}, *pair2[2] = {&a2, &b2};
	Node *halves[2][2] = {{&a, &a2}, {&b, &b2}};
	char state[16];

	fake_now = T0;
	open_pair(&a, &b);
	open_pair(&a2, &b2);
	/* Before the cut, both pairs hold the same alert X. */
	publish1(&a, submit(ID_X, "k/x", true, N1, "a", T0, false), both, 2);
	publish1(&a2, submit(ID_X, "k/x", true, N1, "a", T0, false), pair2, 2);
	/* The cut: a's half and b's half (each as two copies, to merge in both orders). */
	for (int i = 0; i < 2; i++) {
		Node *ha = halves[0][i], *hb = halves[1][i];
		Node *only_a[] = {ha}, *only_b[] = {hb};

		publish1(ha, assign(ID_X, N1, "a", T0 + SEC), only_a, 1);
		publish1(ha, result(ID_X, N1, "a", T0 + 2 * SEC, false, true), only_a, 1);
		publish1(ha, submit(ID_Y, "k/y", false, N2, "a", T0 + 3 * SEC, false), only_a, 1);
		publish1(hb, assign(ID_X, N1, "b", T0 + SEC), only_b, 1);
		publish1(hb, result(ID_X, N1, "b", T0 + 4 * SEC, true, false), only_b, 1);
		publish1(hb, submit(ID_W, "k/w", false, N2, "b", T0 + 5 * SEC, false), only_b, 1);
		/* One key to both halves: each queued it; the merge keeps the first. */
		publish1(ha, submit(ID_Z, "k/z", false, N1, "a", T0 + 6 * SEC, false), only_a, 1);
		publish1(hb, submit(ID_V, "k/z", false, N1, "b", T0 + 7 * SEC, false), only_b, 1);
	}
	check(!same_dump(&a, &b, false));
	/* Heal: pair 1 exchanges a then b, pair 2 b then a. */
	exchange(&a, &b);
	exchange(&b, &a);
	exchange(&b2, &a2);
	exchange(&a2, &b2);
	check_same(&a, &b);
	check_same(&a2, &b2);
	check_same(&a, &a2);
	check_str(delivery_state(&a, ID_X, N1, state), "sent");
	check_str(delivery_state(&b, ID_Y, N2, state), "queued");
	check_str(delivery_state(&a, ID_W, N2, state), "queued");
	{
		char first[33] = "";

		check_int(store_dedupe_find(b.g->store, "k/z", T0 + 8 * SEC, 600 * SEC, first), 1);
		check_str(first, ID_Z);
		check_int(store_dedupe_find(a2.g->store, "k/z", T0 + 8 * SEC, 600 * SEC, first), 1);
		check_str(first, ID_Z);
	}
	{
		_cleanup_(json_decrefp) json_t *x = alert_record(&b, ID_X);

		/* Attempts are append-only: both halves' are kept. */
		check_int(json_array_size(json_object_get(x, "att")), 2);
	}
	node_close(&a);
	node_close(&b);
	node_close(&a2);
	node_close(&b2);
}

/* How many lines of the alert's story say what. */
static size_t story_count(Node *n, const char *id, const char *what)
{
	_cleanup_(json_decrefp) json_t *a = alert_record(n, id);
	json_t *h;
	size_t i, count = 0;

	json_array_foreach(json_object_get(a, "hist"), i, h) count += streq(jstr(h, "what"), what);
	return count;
}

/* Resolve: stops the escalation, cancels what waits (and what a retry queues later), tells the
 * number that was reached, including one reached by a page already on its way; a resolve in each
 * half of a partition merges to the earlier one, in either order. */
static void test_resolve(void)
{
	Node a, b, a2, b2;
	Node *both[2] = {&a, &b}, *pair2[2] = {&a2, &b2};
	Node *halves[2][2] = {{&a, &a2}, {&b, &b2}};
	char state[16];

	fake_now = T0;
	open_pair(&a, &b);
	open_pair(&a2, &b2);
	for (int i = 0; i < 2; i++) {
		Node **to = i == 0 ? both : pair2;
		Node *na = halves[0][i];

		/* X reached N1; Y failed once and waits for its retry; Z is on its way to N1. */
		deliver(na,
		        changes("o, o, o", submit(ID_X, "k/x", true, N1, "a", T0, true),
		                submit(ID_Y, "k/y", false, N2, "a", T0 + 1, false),
		                submit(ID_Z, "k/z", false, N1, "a", T0 + 2, false)),
		        to, 2);
		publish1(na, assign(ID_X, N1, "a", T0 + SEC), to, 2);
		publish1(na, result(ID_X, N1, "a", T0 + 2 * SEC, true, false), to, 2);
		publish1(na, assign(ID_Y, N2, "a", T0 + SEC), to, 2);
		publish1(na, result(ID_Y, N2, "a", T0 + 2 * SEC, false, false), to, 2);
		publish1(na, assign(ID_Z, N1, "a", T0 + 3 * SEC), to, 2);
		publish1(na, resolve(ID_Z, "nagios", "a", T0 + 4 * SEC), to, 2);
		publish1(na, result(ID_Z, N1, "a", T0 + 5 * SEC, true, false), to, 2);
	}
	check_same(&a, &b);
	check_str(delivery_state(&a, ID_Z, N1, state), "sent");
	check_int(story_count(&b, ID_Z, "resolved"), 1);
	check_int(story_count(&b, ID_Z, "all-clear"), 1); /* the page on its way landed */

	/* The cut: each half resolves X, b a little later; only b resolves Y, and a's retry of Y
	 * fails again and queues it once more. */
	for (int i = 0; i < 2; i++) {
		Node *ha = halves[0][i], *hb = halves[1][i];
		Node *only_a[] = {ha}, *only_b[] = {hb};

		publish1(ha, resolve(ID_X, "nagios", "a", T0 + 10 * SEC), only_a, 1);
		publish1(hb, resolve(ID_X, "zabbix", "b", T0 + 12 * SEC), only_b, 1);
		publish1(hb, resolve(ID_Y, "zabbix", "b", T0 + 13 * SEC), only_b, 1);
		publish1(ha, assign(ID_Y, N2, "a", T0 + 14 * SEC), only_a, 1);
		publish1(ha, result(ID_Y, N2, "a", T0 + 15 * SEC, false, false), only_a, 1);
		/* Resolved already: once only. */
		publish1(hb, resolve(ID_X, "again", "b", T0 + 16 * SEC), only_b, 1);
	}
	check_str(delivery_state(&a, ID_Y, N2, state), "queued");
	check_str(delivery_state(&b, ID_Y, N2, state), "cancelled");
	check_int(story_count(&a, ID_X, "all-clear"), 1);
	check_int(story_count(&b, ID_X, "resolved"), 1);
	check_int(esc_step(&b, ID_X), 0);
	exchange(&a, &b);
	exchange(&b, &a);
	exchange(&b2, &a2);
	exchange(&a2, &b2);
	check_same(&a, &b);
	check_same(&a2, &b2);
	check_same(&a, &a2);
	/* The resolve of b reached a: what a queued again is cancelled there too. */
	check_str(delivery_state(&a, ID_Y, N2, state), "cancelled");
	{
		_cleanup_(json_decrefp) json_t *x = alert_record(&a, ID_X);

		check_str(jstr(x, "res_by"), "nagios"); /* the earlier of the two */
		check_int(json_integer_value(json_object_get(x, "res_at")),
		          (long long)(T0 + 10 * SEC));
	}
	node_close(&a);
	node_close(&b);
	node_close(&a2);
	node_close(&b2);
}

static json_t *silence(const char *id, const char *prefix, uint64_t at, uint64_t until)
{
	return valid(change_pack("silence", "{s:s, s:s, s:s, s:b, s:I, s:s, s:s, s:s, s:I}", "id",
	                         id, "field", "key_prefix", "value", prefix, "except_critical", 0,
	                         "until", (json_int_t)until, "by", "alice", "reason", "swap",
	                         "node", "a", "at", (json_int_t)at));
}

/* A silence holds back what it matches on both nodes alike, from the submit's own time; its
 * early end made in one half of a cut reaches the other in the exchange. */
static void test_silences(void)
{
	Node a, b;
	Node *both[2] = {&a, &b}, *only_a[1] = {&a};
	char state[16];
	Silence si;

	fake_now = T0;
	open_pair(&a, &b);
	publish1(&a, silence(ID_V, "db01/", T0, T0 + 3600 * SEC), both, 2);
	publish1(&b, submit(ID_X, "db01/ping", true, N1, "b", T0 + SEC, true), both, 2);
	publish1(&b, submit(ID_Y, "web01/http", false, N2, "b", T0 + 2 * SEC, false), both, 2);
	/* Accepted before the silence began: not held back. */
	publish1(&b, submit(ID_W, "db01/disk", false, N2, "b", T0 - SEC, false), both, 2);
	check_str(delivery_state(&a, ID_X, N1, state), "cancelled");
	check_str(delivery_state(&b, ID_Y, N2, state), "queued");
	check_str(delivery_state(&b, ID_W, N2, state), "queued");
	check_int(esc_step(&a, ID_X), 0);
	check_int(story_count(&a, ID_X, "silenced"), 1);
	check_same(&a, &b);
	/* Ended early in a's half only; the exchange brings it to b. */
	publish1(&a,
	         valid(change_pack("unsilence", "{s:s, s:s, s:s, s:I}", "id", ID_V, "by", "bob",
	                           "node", "a", "at", (json_int_t)(T0 + 60 * SEC))),
	         only_a, 1);
	check_int(store_silence_get(b.g->store, ID_V, &si), 0);
	check_int(si.removed_at, 0);
	exchange(&a, &b);
	{
		_cleanup_(json_decrefp) json_t *items = NULL;
		char *last = NULL;

		check(store_export_silences(a.g->store, "", DUMP_BYTES, &items, &last) == 1);
		free(last);
		for (size_t i = 0; i < json_array_size(items); i++)
			check(store_merge_silence(b.g->store, json_array_get(items, i)) >= 0);
	}
	check_int(store_silence_get(b.g->store, ID_V, &si), 0);
	check_int(si.removed_at, (long long)(T0 + 60 * SEC));
	check_str(si.removed_by, "bob");
	/* After its end, the same key is news: a new alert, queued. */
	publish1(&b, submit(ID_Z, "db01/ping", false, N2, "b", T0 + 61 * SEC, false), both, 2);
	check_str(delivery_state(&a, ID_Z, N2, state), "queued");
	node_close(&a);
	node_close(&b);
}

/* A delivery field of one alert's exported record (the caller's number), -1 when none. */
static long long delivery_field(Node *n, const char *id, const char *to, const char *field)
{
	_cleanup_(json_decrefp) json_t *a = alert_record(n, id);
	json_t *d;
	size_t i;

	json_array_foreach(json_object_get(a, "dl"), i, d)
	{
		if (streq(jstr(d, "to"), to))
			return json_integer_value(json_object_get(d, field));
	}
	return -1;
}

static json_t *hold(const char *id, const char *to, const char *node, uint64_t until, uint64_t at)
{
	return valid(change_pack("hold", "{s:s, s:s, s:I, s:s, s:I}", "id", id, "to", to, "until",
	                         (json_int_t)until, "node", node, "at", (json_int_t)at));
}

static void test_hold(void)
{
	Node a, b;
	Node *both[2] = {&a, &b}, *only_a[1] = {&a};
	char state[16];

	fake_now = T0;
	open_pair(&a, &b);
	publish1(&b, submit(ID_X, "db01/ping", true, N1, "b", T0, false), both, 2);
	publish1(&b, submit(ID_Y, "db02/ping", true, N1, "b", T0 + SEC, false), both, 2);
	check_same(&a, &b);
	/* Held in a's half only: later, once, and never earlier again. */
	publish1(&a, hold(ID_X, N1, "a", T0 + 900 * SEC, T0 + 2 * SEC), only_a, 1);
	publish1(&a, hold(ID_X, N1, "a", T0 + 600 * SEC, T0 + 3 * SEC), only_a, 1);
	check_int(delivery_field(&a, ID_X, N1, "bundle"), 1);
	check_int(delivery_field(&a, ID_X, N1, "next"), (long long)(T0 + 900 * SEC));
	check_int(delivery_field(&b, ID_X, N1, "bundle"), 0);
	check_int(story_count(&a, ID_X, "held"), 1);
	check_str(delivery_state(&a, ID_X, N1, state), "queued");
	/* A hold of a delivery that went out changes nothing. */
	publish1(&b, result(ID_Y, N1, "b", T0 + 2 * SEC, true, false), both, 2);
	publish1(&a, hold(ID_Y, N1, "a", T0 + 900 * SEC, T0 + 3 * SEC), only_a, 1);
	check_int(delivery_field(&a, ID_Y, N1, "bundle"), 0);
	check_int(story_count(&a, ID_Y, "held"), 0);
	/* The halves meet: held on either side is held on both. */
	exchange(&a, &b);
	exchange(&b, &a);
	check_int(delivery_field(&b, ID_X, N1, "bundle"), 1);
	check_int(delivery_field(&b, ID_X, N1, "next"), (long long)(T0 + 900 * SEC));
	node_close(&a);
	node_close(&b);
}

static json_t *ping(const char *name, const char *node, uint64_t at)
{
	return valid(change_pack("heartbeat", "{s:s, s:s, s:I}", "name", name, "node", node, "at",
	                         (json_int_t)at));
}

static json_t *missed(const char *name, uint64_t due, const char *node, uint64_t at)
{
	return valid(change_pack("missed", "{s:s, s:I, s:s, s:I}", "name", name, "due",
	                         (json_int_t)due, "node", node, "at", (json_int_t)at));
}

static void test_heartbeats(void)
{
	const uint64_t window = (600 + 60) * SEC;
	Node a, b;
	Node *both[2] = {&a, &b};
	char id[33], other[33], state[16];

	fake_now = T0;
	open_pair(&a, &b);
	publish1(&a, ping("cron", "a", T0), both, 2);
	/* A deadline a later ping moved: not missed, whoever thought so. */
	publish1(&b, missed("cron", T0 - SEC, "b", T0), both, 2);
	check_int(store_alert_resolvable_by_key(a.g->store, "heartbeat/cron", id), 0);
	/* Missed: one alert on both, to the role on duty, escalating; fired twice (a partition,
	 * both nodes judging), still one. */
	publish1(&b, missed("cron", T0 + window, "b", T0 + window + SEC), both, 2);
	publish1(&a, missed("cron", T0 + window, "a", T0 + window + 2 * SEC), both, 2);
	check_int(store_alert_resolvable_by_key(a.g->store, "heartbeat/cron", id), 1);
	check_int(store_alert_resolvable_by_key(b.g->store, "heartbeat/cron", other), 1);
	check_str(id, other);
	check_int((long long)store_open_alerts(a.g->store), 1);
	check_str(delivery_state(&a, id, "+32470100001", state), "queued");
	check_int(esc_step(&a, id), 0);
	check_same(&a, &b);
	/* The next ping resolves it, on both. */
	publish1(&b, ping("cron", "b", T0 + window + 60 * SEC), both, 2);
	check_int(store_alert_resolvable_by_key(a.g->store, "heartbeat/cron", other), 0);
	check_int(story_count(&b, id, "resolved"), 1);
	check_same(&a, &b);
	node_close(&a);
	node_close(&b);
}

static void test_ownership_and_takeover(void)
{
	Node a, b;
	Node *both[2] = {&a, &b}, *only_a[] = {&a};
	ReplicationMember alone[] = {{.nodeid = 1, .pid = 100}};
	ReplicationMember gone[] = {
	        {.nodeid = 2, .pid = 200, .reason = REPLICATION_REASON_NODEDOWN}};
	char id[33], state[16];
	unsigned owned_a = 0, owned_b = 0, disagree = 0;
	const char *victim = NULL;
	char victim_id[33] = "";

	fake_now = T0;
	open_pair(&a, &b);
	/* Both nodes name the same owner for every delivery, and each owns a share. */
	for (unsigned i = 0; i < 64; i++) {
		const char *oa, *ob;

		snprintf(id, sizeof(id), "%032x", i + 1);
		oa = members_owner(&a.g->members, id, N1, "", false);
		ob = members_owner(&b.g->members, id, N1, "", false);
		if (!oa || !ob || !streq(oa, ob)) {
			disagree++;
			continue;
		}
		owned_a += streq(oa, "a");
		owned_b += streq(oa, "b");
		if (streq(oa, "b") && !victim) {
			victim = "b";
			snprintf(victim_id, sizeof(victim_id), "%s", id);
		}
	}
	check_int(disagree, 0);
	check(owned_a > 0 && owned_b > 0);
	check_int(owned_a + owned_b, 64);
	check(victim != NULL);

	/* b owns victim_id's delivery and has it in hand. */
	publish1(&a, submit(victim_id, "k/victim", true, N1, "a", T0, false), both, 2);
	publish1(&b, assign(victim_id, N1, "b", T0 + SEC), both, 2);
	check_str(delivery_state(&a, victim_id, N1, state), "sending");
	check_int(json_array_size(a.g->publish.outbox), 0);

	/* b dies: a's view loses it. a now owns everything, and publishes b's send back to the
	 * queue, to be sent again at once. */
	fake_now = T0 + 5 * SEC;
	check_int(replication_report_view(a.g->replication, alone, 1, gone, 1, true), 0);
	check(!members_get(&a.g->members, "b", false)->in_view);
	check_str(members_owner(&a.g->members, victim_id, N1, "", false), "a");
	for (unsigned i = 0; i < 64; i++) {
		snprintf(id, sizeof(id), "%032x", i + 1);
		check_str(members_owner(&a.g->members, id, N1, "", false), "a");
	}
	check_int(json_array_size(a.g->publish.outbox), 1);
	{
		json_t *c = json_array_get(a.g->publish.outbox, 0);

		check_str(jstr(c, "t"), "result");
		check_str(jstr(c, "id"), victim_id);
		check_str(jstr(c, "node"), "b");
		check(json_is_true(json_object_get(c, "retry_now")));
	}
	check_int(flush(&a, only_a, 1), 1);
	check_str(delivery_state(&a, victim_id, N1, state), "queued");
	{
		uint64_t due = 0;

		check_int(store_next_due(a.g->store, &due), 0);
		check_int(due, T0 + 5 * SEC); /* at once, not after a backoff */
	}
	/* The view changing again with nothing in hand elsewhere publishes nothing more. */
	check_int(replication_report_view(a.g->replication, alone, 1, NULL, 0, true), 0);
	check_int(json_array_size(a.g->publish.outbox), 0);
	node_close(&a);
	node_close(&b);
}

/* Runs escalation on both nodes at fake time t and replicates what they publish; returns how
 * many escalate changes were published in all. */
static size_t escalate_at(Node *a, Node *b, uint64_t t)
{
	Node *both[2] = {a, b};
	size_t n;

	fake_now = t;
	escalation_run(a->g);
	escalation_run(b->g);
	n = flush(a, both, 2);
	n += flush(b, both, 2);
	return n;
}

/* The page of a step leaves: assigned to a's modem and sent at t. */
static void page_sent(Node *a, Node *b, const char *id, const char *to, uint64_t t)
{
	Node *both[2] = {a, b};

	fake_now = t;
	publish1(a, assign(id, to, "a", t), both, 2);
	publish1(a, result(id, to, "a", t, true, false), both, 2);
}

/* A step's timeout counts from when its page left, not from acceptance; a page that never
 * leaves escalates at the backstop, ESCALATION_BACKSTOP step_timeouts after its step began. */
static void test_escalation_by_the_clock(void)
{
	Node a, b;
	Node *both[2] = {&a, &b};
	_cleanup_(json_decrefp) json_t *x = NULL;
	char state[16];
	uint64_t t;

	fake_now = T0;
	open_pair(&a, &b);
	/* To role:primary, resolved when accepted: alice is paged first (step 0). Y, a minute
	 * later, is never acknowledged, and its first pages never leave (no modem takes them). */
	publish1(&a, submit(ID_X, "k/esc", true, ALICE, "a", T0, true), both, 2);
	publish1(&b, submit(ID_Y, "k/esc2", true, ALICE, "b", T0 + 60 * SEC, true), both, 2);
	check_int(esc_step(&a, ID_X), 0);
	check_int(esc_step(&b, ID_Y), 0);

	/* X's page leaves 100 s late (the modem was busy): its step waits step_timeout from
	 * then, not from acceptance. */
	page_sent(&a, &b, ID_X, ALICE, T0 + 100 * SEC);
	check_int(escalate_at(&a, &b, T0 + STEP * SEC), 0);
	check_int(escalate_at(&a, &b, T0 + (STEP + 99) * SEC), 0);
	check_int(esc_step(&a, ID_X), 0);

	/* At send + step_timeout exactly one node (the owner) publishes step 1: bob. */
	check_int(escalate_at(&a, &b, T0 + (STEP + 100) * SEC), 1);
	check_int(esc_step(&a, ID_X), 1);
	check_int(esc_step(&b, ID_X), 1);
	check_str(delivery_state(&b, ID_X, BOB, state), "queued");
	check_str(delivery_state(&b, ID_X, CAROL, state), "(none)");
	/* Running again at the same instant changes nothing: the step is taken. */
	check_int(escalate_at(&a, &b, T0 + (STEP + 100) * SEC), 0);

	/* Bob's page leaves 50 s after its step began: step 2 (carol) one step_timeout later. */
	page_sent(&a, &b, ID_X, BOB, T0 + (STEP + 150) * SEC);
	check_int(escalate_at(&a, &b, T0 + (2 * STEP + 149) * SEC), 0);
	check_int(escalate_at(&a, &b, T0 + (2 * STEP + 150) * SEC), 1);
	check_int(esc_step(&a, ID_X), 2);
	check_str(delivery_state(&a, ID_X, CAROL, state), "queued");
	check_same(&a, &b);

	/* X acknowledged: no further step for it, however long it waits. */
	publish1(&b, ack(ID_X, "bob", "b", T0 + (2 * STEP + 160) * SEC), both, 2);

	/* Y's page never left: the backstop moves it on. */
	t = T0 + (60 + ESCALATION_BACKSTOP * STEP) * SEC;
	check_int(escalate_at(&a, &b, t - SEC), 0);
	check_int(esc_step(&b, ID_Y), 0);
	check_int(escalate_at(&a, &b, t), 1);
	check_int(esc_step(&b, ID_Y), 1);
	/* Then each step's page leaves 10 s after the step begins: management, then the whole
	 * chain once more ([escalation] repeat = 1): primary, secondary, management; then it
	 * stops. */
	{
		static const char *const paged[] = {BOB, CAROL, ALICE, BOB, CAROL};

		for (unsigned step = 1; step <= 5; step++) {
			page_sent(&a, &b, ID_Y, paged[step - 1], t + 10 * SEC);
			if (step == 5)
				break;
			check_int(escalate_at(&a, &b, t + (STEP + 9) * SEC), 0);
			t += (STEP + 10) * SEC;
			check_int(escalate_at(&a, &b, t), 1);
			check_int(esc_step(&a, ID_Y), step + 1);
			check_int(esc_step(&b, ID_Y), step + 1);
		}
	}
	{
		_cleanup_(json_decrefp) json_t *y = alert_record(&b, ID_Y);

		check(json_is_null(json_object_get(y, "esc_next"))); /* the chain is over */
		check_int(story_count(&b, ID_Y, "timer started"), 4);
		check_int(story_count(&a, ID_X, "timer started"), 2);
	}
	check_int(escalate_at(&a, &b, t + (6 * STEP) * SEC), 0);
	check_int(escalate_at(&a, &b, T0 + (100 * STEP) * SEC), 0);
	check_int(esc_step(&b, ID_Y), 5);
	check_int(esc_step(&a, ID_X), 2);
	check_int(esc_step(&b, ID_X), 2);
	x = alert_record(&a, ID_X);
	check_str(jstr(x, "ack_by"), "bob");
	check_same(&a, &b);
	node_close(&a);
	node_close(&b);
}

/* After a cut, the half that saw a step's page leave has the earlier deadline: the merge keeps
 * it, in either order. */
static void test_escalation_deadline_merges_to_the_earlier(void)
{
	Node a, b;
	Node *both[2] = {&a, &b}, *only_a[1] = {&a};

	fake_now = T0;
	open_pair(&a, &b);
	publish1(&a, submit(ID_X, "k/esc", true, ALICE, "a", T0, true), both, 2);
	fake_now = T0 + 20 * SEC;
	publish1(&a, assign(ID_X, ALICE, "a", T0 + 20 * SEC), only_a, 1);
	publish1(&a, result(ID_X, ALICE, "a", T0 + 20 * SEC, true, false), only_a, 1);
	{
		_cleanup_(json_decrefp) json_t *xa = alert_record(&a, ID_X);
		_cleanup_(json_decrefp) json_t *xb = alert_record(&b, ID_X);

		check_int(json_integer_value(json_object_get(xa, "esc_next")),
		          (long long)(T0 + (20 + STEP) * SEC));
		check_int(json_integer_value(json_object_get(xb, "esc_next")),
		          (long long)(T0 + ESCALATION_BACKSTOP * STEP * SEC));
	}
	exchange(&b, &a);
	exchange(&a, &b);
	check_same(&a, &b);
	{
		_cleanup_(json_decrefp) json_t *xb = alert_record(&b, ID_X);

		check_int(json_integer_value(json_object_get(xb, "esc_next")),
		          (long long)(T0 + (20 + STEP) * SEC));
	}
	node_close(&a);
	node_close(&b);
}

static void cleanup(void)
{
	char cmd[64];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", base);
}

int main(void)
{
	log_set_max_level(LOG_CRIT);
	if (!mkdtemp(base)) {
		perror("mkdtemp");
		return EXIT_FAILURE;
	}
	now_usec_hook = fake_clock;
	run(test_every_kind_has_a_handler);
	run(test_same_changes_same_store);
	run(test_replay_is_idempotent);
	run(test_partition_merge_order_independent);
	run(test_resolve);
	run(test_silences);
	run(test_hold);
	run(test_heartbeats);
	run(test_ownership_and_takeover);
	run(test_escalation_by_the_clock);
	run(test_escalation_deadline_merges_to_the_earlier);
	now_usec_hook = NULL;
	cleanup();
	return test_exit();
}
