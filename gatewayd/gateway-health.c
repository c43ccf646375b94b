/* gateway-health: the gateway pages about itself ([health]), and drills its own path ([drill]).
 *
 * An alerting path is trusted only if its own failures page someone. Every HEALTH_TICK this
 * node looks at what it can see: another node offline or unable to commit to its store, one of
 * its modems failed or absent, no usable modem at all, a due delivery that does not leave, the
 * local corosync gone, a clock apart. Each condition has a stable key (health/NODE/CONDITION); one
 * that has held its threshold opens one alert through the normal route (replicated, sent by
 * whichever node still has a modem, escalated, called when critical and no SMS path is left), and
 * one that has been gone for [health] clear resolves its alert, so a flapping modem pages once, not
 * every minute. What is watched lives here, in memory: after a restart a condition starts its
 * threshold again, and an alert still open for it is found by its key. */
#include "gateway-internal.h"

#define HEALTH_TICK_USEC (5 * USEC_PER_SEC)
#define HEALTH_TTL       86400 /* seconds an alert about the gateway lives */
#define HEALTH_TEXT_MAX  200

/* One condition seen now: its key and what the alert says. */
typedef struct Finding {
	char key[96];
	char text[HEALTH_TEXT_MAX];
	unsigned hold; /* seconds it must hold before paging */
} Finding;

/* More than a node can have at once (its peers, two per modem, three of its own), but for a
 * node with dozens of modems: the rest wait for the next tick's room. */
typedef struct Findings {
	Finding v[64];
	size_t n;
} Findings;

static void found(Findings *f, unsigned hold, const char *key, const char *fmt, ...) _printf_(4, 5);

/* key: "health/" then what names the condition. */
static void found(Findings *f, unsigned hold, const char *key, const char *fmt, ...)
{
	va_list ap;
	Finding *x;

	if (f->n >= ELEMENTSOF(f->v))
		return;
	x = &f->v[f->n++];
	snprintf(x->key, sizeof(x->key), "health/%s", key);
	va_start(ap, fmt);
	vsnprintf(x->text, sizeof(x->text), fmt, ap);
	va_end(ap);
	x->hold = hold;
}

static void look(Gateway *g, Findings *f)
{
	const Config *c = g->config;
	const char *self = c->node_name;
	char key[96];
	size_t usable = 0;
	uint64_t oldest = 0, now = now_realtime_usec();

	for (size_t i = 0; i < g->members.n; i++) {
		const MemberNode *n = &g->members.nodes[i];
		int64_t skew = n->clock_skew_usec < 0 ? -n->clock_skew_usec : n->clock_skew_usec;
		bool first = strcmp(self, n->name) < 0;

		if (n->self)
			continue;
		if (n->store_error[0]) {
			/* Its own page could never commit: the peer pages for it, and goes on
			 * while it is out of sight with the last word it said. */
			snprintf(key, sizeof(key), "%s/store", n->name);
			found(f, c->health_store_fail, key,
			      "gateway node %s: its store cannot commit (%s), seen from %s",
			      n->name, n->store_error, self);
		}
		if (!cluster_member_online(n)) {
			snprintf(key, sizeof(key), "%s/offline", n->name);
			if (n->remembered)
				found(f, c->health_peer_offline, key,
				      "gateway node %s is offline (seen from %s)", n->name, self);
			continue;
		}
		if (skew > (int64_t)c->health_clock_skew * (int64_t)USEC_PER_SEC) {
			/* One key for the pair, whichever node notices. */
			snprintf(key, sizeof(key), "%s-%s/clock", first ? self : n->name,
			         first ? n->name : self);
			found(f, c->health_clear, key,
			      "gateway clocks apart: %s is %+.1f s from %s (run NTP)", n->name,
			      (double)n->clock_skew_usec / USEC_PER_SEC, self);
		}
	}
	for (size_t i = 0; i < g->n_modems; i++) {
		const ModemSlot *slot = &g->modems[i];

		if (modems_usable(slot))
			usable++;
		if (slot->status.state == MODEM_STATE_FAILED ||
		    slot->status.state == MODEM_STATE_ABSENT) {
			snprintf(key, sizeof(key), "%s/modem-%s", self, slot->config->name);
			found(f, c->health_modem_down, key, "gateway %s: modem %s is %s: %s", self,
			      slot->config->name, modem_state_to_string(slot->status.state),
			      slot->status.reason[0] ? slot->status.reason : "no reason given");
		} else if (slot->path_problem[0]) {
			snprintf(key, sizeof(key), "%s/path-%s", self, slot->config->name);
			found(f, c->health_modem_down, key, "gateway %s: modem %s: %s", self,
			      slot->config->name, slot->path_problem);
		} else if (slot->report_problem[0]) {
			snprintf(key, sizeof(key), "%s/reports-%s", self, slot->config->name);
			found(f, c->health_modem_down, key, "gateway %s: modem %s: %s", self,
			      slot->config->name, slot->report_problem);
		}
	}
	if (g->n_modems > 0 && usable == 0) {
		snprintf(key, sizeof(key), "%s/no-sms-path", self);
		found(f, c->health_no_path, key, "gateway %s has no working SMS modem", self);
	}
	if (replication_is_clustered(g->replication) && !replication_is_connected(g->replication)) {
		snprintf(key, sizeof(key), "%s/corosync", self);
		found(f, c->health_peer_offline, key,
		      "gateway %s cannot reach its local corosync: working alone", self);
	}
	if (store_oldest_waiting(g->store, &oldest) >= 0 && oldest &&
	    now > oldest + (uint64_t)c->health_queue_age * USEC_PER_SEC) {
		snprintf(key, sizeof(key), "%s/queue", self);
		found(f, 0, key, "gateway %s: a delivery has waited %llu s to leave", self,
		      (unsigned long long)((now - oldest) / USEC_PER_SEC));
	}
}

/* What this node remembers of a condition: when it was first and last seen (monotonic). */
static json_t *watch_get(Gateway *g, const char *key)
{
	json_t *w = json_object_get(g->health.watched, key);

	if (!w) {
		w = json_pack("{s:I, s:I, s:b}", "first", (json_int_t)0, "last", (json_int_t)0,
		              "paged", 0);
		if (!w || json_object_set_new(g->health.watched, key, w) < 0)
			return NULL;
	}
	return w;
}

static void page(Gateway *g, const Finding *x)
{
	const Config *c = g->config;
	char id[ID_HEX_LEN + 1], open_id[ID_HEX_LEN + 1];
	RequestError err = {0};
	Request req = {.op = OP_SEND,
	               .to = c->health_to,
	               .n_to = c->n_health_to,
	               .text = (char *)x->text,
	               .critical = c->health_critical,
	               .ttl = HEALTH_TTL,
	               .source = (char *)"health"};
	json_t *change = NULL;
	int r;

	if (store_alert_resolvable_by_key(g->store, x->key, open_id) > 0)
		return; /* paged already (by this node before a restart, or by the other) */
	if (id_new(id) < 0)
		return;
	r = requests_submit_change(g, &req, id, x->key, now_realtime_usec(), &change, &err);
	if (r < 0) {
		log_error("Cannot page about '%s': %s", x->text,
		          r == -EINVAL ? err.detail : "no contact on duty");
		return;
	}
	log_ctx(LOG_ERR, &((LogContext){.alert_id = id}), "Paging about this gateway: %s", x->text);
	publish_outbox_add(g, change, NULL);
}

static void resolve(Gateway *g, const char *key)
{
	char id[ID_HEX_LEN + 1];

	if (store_alert_resolvable_by_key(g->store, key, id) <= 0)
		return;
	log_ctx(LOG_NOTICE, &((LogContext){.alert_id = id}), "Health condition %s cleared", key);
	publish_outbox_add(g,
	                   change_pack("resolve", "{s:s, s:s, s:s, s:s, s:I}", "id", id, "by",
	                               g->config->node_name, "via", "health", "node",
	                               g->config->node_name, "at", (json_int_t)now_realtime_usec()),
	                   NULL);
}

static void health_tick(Gateway *g)
{
	const Config *c = g->config;
	uint64_t now = now_monotonic_usec();
	Findings f = {.n = 0};
	const char *key;
	json_t *w;
	void *tmp;

	if (c->n_health_to == 0 || g->stopping || !cluster_settled(g) || stall_active(g))
		return;
	look(g, &f);
	for (size_t i = 0; i < f.n; i++) {
		const Finding *x = &f.v[i];

		w = watch_get(g, x->key);
		if (!w)
			return;
		if (!ju64(w, "first") || !ju64(w, "last"))
			json_object_set_new(w, "first", json_integer((json_int_t)now));
		json_object_set_new(w, "last", json_integer((json_int_t)now));
		if (!json_is_true(json_object_get(w, "paged")) &&
		    now - ju64(w, "first") >= (uint64_t)x->hold * USEC_PER_SEC) {
			page(g, x);
			json_object_set_new(w, "paged", json_true());
		}
	}
	/* Gone for [health] clear: resolved, and forgotten. */
	json_object_foreach_safe(g->health.watched, tmp, key, w)
	{
		if (now - ju64(w, "last") < (uint64_t)c->health_clear * USEC_PER_SEC)
			continue;
		if (json_is_true(json_object_get(w, "paged")))
			resolve(g, key);
		json_object_del(g->health.watched, key);
	}
}

/* ---- drills ([drill]) ---- */

#define DRILL_TEXT                                                                                 \
	"DRILL: a test page from the alert gateway, nothing is wrong. Acknowledge it to prove "    \
	"this path works."

/* At [drill] at, a critical test page to [drill] to (the id derived from the scheduled instant,
 * so nodes that both send it make one alert). One still unacknowledged after ack_within moves to
 * its next escalation step, like a real alert nobody answered. A drill whose time passed while
 * the gateway was down goes out late, within ack_within. */
static void drills_run(Gateway *g)
{
	const Config *c = g->config;
	uint64_t now = now_realtime_usec(), at = config_drill_last(c, now),
	         within = (uint64_t)c->drill_ack_within * USEC_PER_SEC;
	char id[ID_HEX_LEN + 1], seed[48], key[48];
	const char *owner;
	unsigned step = 0;
	bool active = false;
	int r;

	if (!at || c->n_drill_to == 0 || g->stopping || !cluster_settled(g) || stall_active(g))
		return;
	snprintf(seed, sizeof(seed), "drill/%llu", (unsigned long long)(at / USEC_PER_SEC));
	hash128_hex(seed, strlen(seed), id);
	r = store_alert_exists(g->store, id);
	if (r < 0)
		return;
	if (r == 0) {
		RequestError err = {0};
		Request req = {.op = OP_SEND,
		               .to = c->drill_to,
		               .n_to = c->n_drill_to,
		               .text = (char *)DRILL_TEXT,
		               .critical = true,
		               .ttl = c->drill_ack_within + 3600,
		               .source = (char *)"drill"};
		json_t *change = NULL;

		owner = members_owner(&g->members, "drill", "", "", false);
		if (now - at > within || g->health.drill_sent == at ||
		    (owner && !streq(owner, c->node_name)))
			return;
		snprintf(key, sizeof(key), "%s", seed);
		r = requests_submit_change(g, &req, id, key, now, &change, &err);
		if (r < 0) {
			log_error("Cannot send the drill: %s",
			          r == -EINVAL ? err.detail : "no contact on duty");
			return;
		}
		log_ctx(LOG_NOTICE, &((LogContext){.alert_id = id}), "Drill: test page sent");
		publish_outbox_add(g, change, NULL);
		g->health.drill_sent = at;
		return;
	}
	if (now < at + within || g->health.drill_escalated == at)
		return;
	g->health.drill_escalated = at;
	if (store_alert_escalation(g->store, id, &step, &active) > 0 && active && step == 0) {
		log_ctx(LOG_WARNING, &((LogContext){.alert_id = id}),
		        "Drill not acknowledged within %u s: escalating like a real alert",
		        c->drill_ack_within);
		escalation_now(g, id, now);
	}
}

static int on_health_tick(sd_event_source *s, uint64_t usec, void *userdata)
{
	if (tz_refresh())
		log_notice("/etc/localtime changed: local times (the on-call rota) follow the new "
		           "time zone");
	modems_check_reports(userdata);
	drills_run(userdata);
	health_tick(userdata);
	sd_event_source_set_time_relative(s, HEALTH_TICK_USEC);
	sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	return 0;
}

int health_start(Gateway *g)
{
	g->health.watched = json_object();
	if (!g->health.watched)
		return -ENOMEM;
	return sd_event_add_time_relative(g->event, &g->health.timer, CLOCK_MONOTONIC,
	                                  HEALTH_TICK_USEC, USEC_PER_SEC / 10, on_health_tick, g);
}

void health_free(Gateway *g)
{
	g->health.timer = sd_event_source_disable_unref(g->health.timer);
	json_decref(g->health.watched);
	g->health.watched = NULL;
}
