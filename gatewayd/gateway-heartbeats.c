/* gateway-heartbeats: dead-man monitors ([heartbeat NAME]).
 *
 * When the monitoring system itself dies, nothing is submitted, and the gateway would stay quiet
 * exactly when it matters. So a monitored system pings (op heartbeat, gatewayctl heartbeat): a
 * ping is a replicated "heartbeat" change. The node that judges a monitor (members_owner() of its
 * name; any node when none is eligible) fires when no ping came for interval + grace: a "missed"
 * change, applied alike on every node, records that deadline and queues the alert (key
 * heartbeat/NAME, its recipients resolved at the change's time, its id derived from the name and
 * the deadline, so two nodes that both fire in a partition make one alert). The next ping
 * resolves it, and those it reached get the all-clear. Nothing is judged before this node is in
 * step with its cluster (cluster_settled()): a node that just rejoined has not yet heard the
 * pings of its absence. */
#include "gateway-internal.h"

#define HEARTBEAT_TTL 86400 /* seconds its alert lives when nothing can send it */

static uint64_t window_usec(const HeartbeatConfig *hb)
{
	return ((uint64_t)hb->interval + hb->grace) * USEC_PER_SEC;
}

/* The deadline of the monitor: its last ping (or this node's start) + interval + grace. */
static uint64_t heartbeat_due(Gateway *g, const HeartbeatConfig *hb, uint64_t last_at)
{
	return (last_at ? last_at : g->heartbeats.since) + window_usec(hb);
}

void heartbeats_handle(Gateway *g, const ServerPeer *peer, Request *req)
{
	const HeartbeatConfig *hb = config_find_heartbeat(g->config, req->name);
	uint64_t now = now_realtime_usec();
	Pending *p;

	if (!hb) {
		char detail[96];

		snprintf(detail, sizeof(detail), "no [heartbeat %s] in the configuration",
		         req->name);
		reply_err(g, peer, "unknown_name", detail);
		return;
	}
	if (stall_refuses(g, peer))
		return;
	p = requests_pending_new(peer, PENDING_HEARTBEAT, hb->name);
	if (!p) {
		reply_err(g, peer, "storage_error", "out of memory");
		return;
	}
	p->until = now + (uint64_t)hb->interval * USEC_PER_SEC;
	if (publish_outbox_add(g,
	                       change_pack("heartbeat", "{s:s, s:s, s:I}", "name", hb->name, "node",
	                                   g->config->node_name, "at", (json_int_t)now),
	                       p) < 0)
		reply_err(g, peer, "storage_error", "out of memory");
}

json_t *heartbeats_reply(const Pending *p)
{
	char due[RFC3339_MAX];

	return json_pack("{s:b, s:s, s:s}", "ok", 1, "name", p->id, "next_due",
	                 format_rfc3339(p->until, due));
}

int apply_heartbeat(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
	const char *name = jstr(c, "name");
	char key[CONFIG_NAME_MAX + 16], id[ID_HEX_LEN + 1];
	_cleanup_(json_decrefp) json_t *resolve = NULL;
	int r;

	r = store_heartbeat_put(g->store, name, ju64(c, "at"), 0);
	if (r <= 0)
		return r; /* an older ping: nothing new */
	json_object_del(g->heartbeats.published, name);
	/* The system is back: its alarm is over. */
	snprintf(key, sizeof(key), "heartbeat/%s", name);
	r = store_alert_resolvable_by_key(g->store, key, id);
	if (r <= 0)
		return r == STORE_NOT_FOUND ? 0 : r;
	resolve = json_pack("{s:s, s:s, s:s, s:s, s:I}", "id", id, "by", name, "via", "heartbeat",
	                    "node", jstr(c, "node"), "at", (json_int_t)ju64(c, "at"));
	return resolve ? apply_resolve(g, resolve, origin) : -ENOMEM;
}

int apply_missed(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
	const char *name = jstr(c, "name");
	const HeartbeatConfig *hb = config_find_heartbeat(g->config, name);
	uint64_t due = ju64(c, "due"), at = ju64(c, "at"), last_at = 0, missed_at = 0;
	char key[CONFIG_NAME_MAX + 16], seed[CONFIG_NAME_MAX + 48], id[ID_HEX_LEN + 1],
	        since[RFC3339_MAX];
	_cleanup_free_ char *text = NULL;
	_cleanup_(json_decrefp) json_t *submit = NULL;
	RequestError err = {0};
	Request req;
	int r;

	if (!hb) {
		log_warning("Heartbeat '%s' missed, but no [heartbeat %s] is configured here: no "
		            "alert",
		            name, name);
		return 0;
	}
	r = store_heartbeat_get(g->store, name, &last_at, &missed_at);
	if (r < 0)
		return r;
	/* A ping applied before this (in the agreed order) moved the deadline: not missed. */
	if (last_at && last_at + window_usec(hb) > due)
		return 0;
	r = store_heartbeat_put(g->store, name, 0, due);
	if (r <= 0)
		return r; /* fired for this deadline already */
	if (hb->text)
		text = strdup(hb->text);
	else if (last_at)
		r = asprintf(&text, "No heartbeat from %s since %s", name,
		             format_rfc3339(last_at, since));
	else
		r = asprintf(&text, "No heartbeat from %s: never pinged", name);
	if (!text || r < 0)
		return -ENOMEM;
	snprintf(key, sizeof(key), "heartbeat/%s", name);
	snprintf(seed, sizeof(seed), "heartbeat/%s/%llu", name, (unsigned long long)due);
	hash128_hex(seed, strlen(seed), id);
	req = (Request){.op = OP_SEND,
	                .to = hb->to,
	                .n_to = hb->n_to,
	                .text = text,
	                .critical = hb->critical,
	                .ttl = HEARTBEAT_TTL,
	                /* Not "gatewayd": its all-clear is wanted, unlike a reply's. */
	                .source = (char *)"heartbeat"};
	r = requests_submit_change(g, &req, id, key, at, &submit, &err);
	if (r < 0) {
		log_warning("Heartbeat '%s' missed, but its alert cannot be made: %s", name,
		            r == -EINVAL ? err.detail : "no contact on duty");
		return r == -ENOMEM ? r : 0;
	}
	/* The node that fired, not this one, is where it was accepted. */
	json_object_set_new(submit, "node", json_string(jstr(c, "node")));
	log_ctx(LOG_WARNING, &((LogContext){.alert_id = id}),
	        "Heartbeat '%s' missed: no ping for %u s", name, hb->interval + hb->grace);
	publish_event(g, "heartbeat_missed", json_pack("{s:s, s:s}", "name", name, "id", id));
	return apply_submit(g, submit, origin);
}

/* Fires the monitors past their deadline that this node judges. */
void heartbeats_run(Gateway *g)
{
	uint64_t now = now_realtime_usec();

	if (g->stopping || !cluster_settled(g) || stall_active(g))
		return;
	for (size_t i = 0; i < g->config->n_heartbeats; i++) {
		const HeartbeatConfig *hb = &g->config->heartbeats[i];
		uint64_t last_at, missed_at, due;
		const char *owner;

		if (store_heartbeat_get(g->store, hb->name, &last_at, &missed_at) < 0)
			return;
		due = heartbeat_due(g, hb, last_at);
		if (now < due || missed_at >= due ||
		    json_integer_value(json_object_get(g->heartbeats.published, hb->name)) ==
		            (json_int_t)due)
			continue;
		owner = members_owner(&g->members, "heartbeat", hb->name, "", false);
		if (owner && !streq(owner, g->config->node_name))
			continue;
		if (publish_outbox_add(g,
		                       change_pack("missed", "{s:s, s:I, s:s, s:I}", "name",
		                                   hb->name, "due", (json_int_t)due, "node",
		                                   g->config->node_name, "at", (json_int_t)now),
		                       NULL) < 0)
			return;
		json_object_set_new(g->heartbeats.published, hb->name,
		                    json_integer((json_int_t)due));
	}
}

uint64_t heartbeats_next_due(Gateway *g)
{
	uint64_t next = 0, now = now_realtime_usec();

	for (size_t i = 0; i < g->config->n_heartbeats; i++) {
		const HeartbeatConfig *hb = &g->config->heartbeats[i];
		uint64_t last_at, missed_at, due;

		if (store_heartbeat_get(g->store, hb->name, &last_at, &missed_at) < 0)
			continue;
		due = heartbeat_due(g, hb, last_at);
		if (missed_at >= due)
			continue;
		/* Past, not fired yet: another node's to fire, or this one's once it is in step
		 * with the cluster. Looked at again each second, not in a busy loop. */
		if (due <= now)
			due = now + USEC_PER_SEC;
		if (!next || due < next)
			next = due;
	}
	return next;
}

json_t *heartbeats_status_json(Gateway *g)
{
	json_t *list = json_array();
	uint64_t now = now_realtime_usec();

	for (size_t i = 0; list && i < g->config->n_heartbeats; i++) {
		const HeartbeatConfig *hb = &g->config->heartbeats[i];
		uint64_t last_at = 0, missed_at = 0, next;
		char last[RFC3339_MAX], due[RFC3339_MAX];

		store_heartbeat_get(g->store, hb->name, &last_at, &missed_at);
		next = (last_at ? last_at : g->heartbeats.since) +
		       (uint64_t)hb->interval * USEC_PER_SEC;
		json_array_append_new(list,
		                      json_pack("{s:s, s:s?, s:s, s:s}", "name", hb->name, "last",
		                                last_at ? format_rfc3339(last_at, last) : NULL,
		                                "next_due", format_rfc3339(next, due), "state",
		                                !last_at      ? "never"
		                                : now >= next ? "late"
		                                              : "ok"));
	}
	return list;
}
