/* gateway-check: proof that the replicas agree, and that no send is forgotten.
 *
 * Applying the same changes in the same order should leave every node's store alike; this room
 * checks instead of trusting it. One node (the online one with the lowest corosync nodeid)
 * publishes a "check" every [cluster] check_interval and after every state exchange. Each node
 * applies it at the same point of the agreed order, computes store_digest() there and
 * publishes the value in a "digest"; each compares the others' values with its own. A
 * difference is logged, shown in status, and repaired by a state exchange ("resync", applied
 * everywhere at the same point), at most once per RESYNC_MIN_USEC so that a difference the
 * exchange cannot settle is reported rather than looped on.
 *
 * The sweep: a delivery this node has "sending" while no job of this node carries it can
 * only be a result that was lost (it is published as soon as the modem answers). Seen so at
 * two sweeps in a row, it is queued again, visibly, so that no lost result wedges a modem or an
 * alert. */
#include "gateway-internal.h"

#define CHECKS_KEPT     8
#define RESYNC_MIN_USEC (5 * 60 * USEC_PER_SEC)
#define SWEEP_USEC      (30 * USEC_PER_SEC)

static bool others_online(Gateway *g)
{
	for (size_t i = 0; i < g->members.n; i++)
		if (!g->members.nodes[i].self && cluster_member_online(&g->members.nodes[i]))
			return true;
	return false;
}

void check_request(Gateway *g)
{
	char round[32];

	if (!replication_is_clustered(g->replication) ||
	    !replication_is_connected(g->replication) || g->sync.active || stall_active(g) ||
	    g->stopping || !others_online(g) || !cluster_is_lowest(g))
		return;
	snprintf(round, sizeof(round), "%llu", (unsigned long long)++g->check.round);
	publish_outbox_add(g,
	                   change_pack("check", "{s:s, s:s, s:I}", "node", g->config->node_name,
	                               "round", round, "at", (json_int_t)now_realtime_usec()),
	                   NULL);
}

static int check_id(json_t *c, char ret[static 96])
{
	return snprintf(ret, 96, "%s/%s", jstr(c, "node"), jstr(c, "round")) < 96 ? 0 : -EINVAL;
}

int apply_check(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
	char id[96], digest[33];
	uint64_t open = 0;
	int r;

	if (check_id(c, id) < 0)
		return 0;
	r = store_digest(g->store, digest, &open);
	if (r < 0)
		return r;
	/* Ours, to compare the others' with; kept for the last few checks only. */
	while (json_object_size(g->check.digests_mine) >= CHECKS_KEPT) {
		void *it = json_object_iter(g->check.digests_mine);

		json_object_del(g->check.digests_mine, json_object_iter_key(it));
	}
	json_object_set_new(g->check.digests_mine, id, json_string(digest));
	json_object_set_new(g->check.digests_due, id,
	                    json_pack("[s, I]", digest, (json_int_t)open));
	return 0;
}

int apply_digest(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
	const char *node = jstr(c, "node"), *check = jstr(c, "check");
	const char *mine = json_string_value(json_object_get(g->check.digests_mine, check));
	char prefix[96];

	if (streq(node, g->config->node_name) || !mine)
		return 0; /* ours, or a check made before we were there */
	if (streq(mine, jstr(c, "value"))) {
		g->check.digest_problem[0] = 0;
		g->check.digest_agreed_at = now_realtime_usec();
		return 0;
	}
	snprintf(g->check.digest_problem, sizeof(g->check.digest_problem),
	         "the stores of this node and node %s differ (%llu open alert(s) there)", node,
	         (unsigned long long)ju64(c, "open"));
	log_ctx(LOG_ERR, &((LogContext){.message_id = MESSAGE_ID_DIGEST_MISMATCH}),
	        "Digest check %s: %s; exchanging state to repair it", check,
	        g->check.digest_problem);
	/* The node that asked for the check asks for the repair: one resync, not one per node. */
	snprintf(prefix, sizeof(prefix), "%s/", g->config->node_name);
	if (strncmp(check, prefix, strlen(prefix)) == 0 &&
	    (g->check.resync_at == 0 ||
	     now_monotonic_usec() - g->check.resync_at >= RESYNC_MIN_USEC))
		g->check.resync_wanted = true;
	return 0;
}

int apply_resync(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
	log_notice("Node '%s' found the stores apart: exchanging state", jstr(c, "node"));
	cluster_resync(g);
	return 0;
}

void check_after_commit(Gateway *g)
{
	const char *id;
	json_t *v;

	json_object_foreach(g->check.digests_due, id, v) publish_outbox_add(
	        g,
	        change_pack("digest", "{s:s, s:s, s:O, s:O}", "node", g->config->node_name, "check",
	                    id, "value", json_array_get(v, 0), "open", json_array_get(v, 1)),
	        NULL);
	json_object_clear(g->check.digests_due);
	if (g->check.resync_wanted) {
		g->check.resync_wanted = false;
		g->check.resync_at = now_monotonic_usec();
		publish_outbox_add(g, change_pack("resync", "{s:s}", "node", g->config->node_name),
		                   NULL);
	}
}

void check_json(Gateway *g, json_t *warnings, json_t *cluster)
{
	char at[RFC3339_MAX];

	if (g->check.digest_problem[0])
		json_array_append_new(warnings, json_string(g->check.digest_problem));
	json_object_set_new(
	        cluster, "digest",
	        json_pack("{s:b, s:s?}", "agreed", g->check.digest_problem[0] == 0, "checked_at",
	                  g->check.digest_agreed_at ? format_rfc3339(g->check.digest_agreed_at, at)
	                                            : NULL));
}

/* ---- the sweep of orphaned sends ---- */

typedef struct Sweep {
	Gateway *g;
	json_t *seen; /* this sweep's orphans */
} Sweep;

static int sweep_one(const char *alert_id, const char *number, const char *modem, void *userdata)
{
	Sweep *w = userdata;
	Gateway *g = w->g;
	_cleanup_free_ char *key = NULL;

	if (job_find_delivery(g, alert_id, number))
		return 0;
	if (asprintf(&key, "%s %s", alert_id, number) < 0)
		return -ENOMEM;
	if (!json_object_get(g->check.orphans, key)) {
		json_object_set_new(w->seen, key, json_true());
		return 0; /* maybe its result is on the way: look again next time */
	}
	log_ctx(LOG_WARNING,
	        &((LogContext){.alert_id = alert_id,
	                       .modem = modem,
	                       .message_id = MESSAGE_ID_ORPHAN_REQUEUED}),
	        "The send to %s is marked sending on this node, but no modem here has it: "
	        "queued again",
	        number);
	return cluster_requeue(g, alert_id, number, g->config->node_name, modem,
	                       "no send was in progress for it on this node");
}

static void sweep(Gateway *g)
{
	Sweep w = {.g = g, .seen = json_object()};

	if (!w.seen)
		return;
	if (!g->stopping && !stall_active(g) && cluster_settled(g) && !g->cluster.resume_pending)
		store_sending_on_node(g->store, g->config->node_name, sweep_one, &w);
	json_decref(g->check.orphans);
	g->check.orphans = w.seen;
}

/* Every SWEEP_USEC, or every check_interval when that is shorter. */
static uint64_t sweep_interval(const Gateway *g)
{
	uint64_t check = (uint64_t)g->config->check_interval * USEC_PER_SEC;

	return check > 0 && check < SWEEP_USEC ? check : SWEEP_USEC;
}

static int on_sweep_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	sweep(userdata);
	sd_event_source_set_time_relative(s, sweep_interval(userdata));
	sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	return 0;
}

static int on_check_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	Gateway *g = userdata;

	check_request(g);
	sd_event_source_set_time_relative(s, (uint64_t)g->config->check_interval * USEC_PER_SEC);
	sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	return 0;
}

int check_start(Gateway *g)
{
	int r;

	r = sd_event_add_time_relative(g->event, &g->check.sweep_timer, CLOCK_MONOTONIC,
	                               sweep_interval(g), USEC_PER_MSEC, on_sweep_timer, g);
	if (r < 0)
		return r;
	if (!replication_is_clustered(g->replication) || g->config->check_interval == 0)
		return 0;
	return sd_event_add_time_relative(g->event, &g->check.timer, CLOCK_MONOTONIC,
	                                  (uint64_t)g->config->check_interval * USEC_PER_SEC,
	                                  USEC_PER_MSEC, on_check_timer, g);
}

void check_stop(Gateway *g)
{
	g->check.sweep_timer = sd_event_source_disable_unref(g->check.sweep_timer);
	g->check.timer = sd_event_source_disable_unref(g->check.timer);
}
