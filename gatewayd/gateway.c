/* gateway: the life cycle of the Gateway, and the wiring between its rooms.
 *
 * The Gateway is a replicated state machine over the store, fed by clients and modems. A request
 * or a modem result becomes a change in the outbox (gateway-publish.c); the changes of a loop turn
 * leave as one payload through the replication layer; when a payload comes back in agreed order
 * it is applied to the store in one transaction and committed (gateway-apply.c, with the
 * handlers of gateway-alerts.c and the other rooms) before anything is said about it: the
 * "queued" replies, the events, the jobs handed to modems (gateway-dispatch.c,
 * gateway-modems.c). The loopback layer of solo mode and the corosync layer of a cluster look the
 * same from here, so one code path serves both.
 *
 * This file only creates the rooms, starts them in order and takes them down again. */
#include "gateway-internal.h"

static int on_exit_check(sd_event_source *s, uint64_t usec, void *userdata)
{
	Gateway *g = userdata;

	/* Exit once the last results have been published and applied (committed); or at once
	 * when the store cannot commit: what waits for it was never answered "queued", and a
	 * send whose result is lost is resumed after the restart. */
	if (json_array_size(g->publish.outbox) == 0 &&
	    (!g->publish.batches_head || stall_active(g))) {
		if (stall_active(g))
			log_warning("Stopping while the store cannot commit: %zu payload(s) not "
			            "applied here",
			            g->apply.n_stalled);
		return sd_event_exit(g->event, 0);
	}
	sd_event_source_set_time_relative(s, USEC_PER_MSEC);
	sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	return 0;
}

void gateway_reload(Gateway *g)
{
	(void)gateway_reload_config(g, g->config->path);
}

void gateway_stop(Gateway *g)
{
	int r;

	if (g->stopping)
		return;
	g->stopping = true;
	sd_notify(0, "STOPPING=1\nSTATUS=Stopping: finishing sends in progress");
	modems_stop(g);
	r = sd_event_add_time_relative(g->event, &g->exit_check, CLOCK_MONOTONIC, 0, 0,
	                               on_exit_check, g);
	if (r < 0)
		sd_event_exit(g->event, 0);
}

static int resume_one(const char *alert_id, const char *number, const char *modem, void *userdata)
{
	Gateway *g = userdata;

	/* We cannot know whether the modem sent it before we died: send again (at least once). */
	log_ctx(LOG_NOTICE, &((LogContext){.alert_id = alert_id, .modem = modem}),
	        "Resuming the send to %s interrupted by a restart", number);
	return cluster_requeue(g, alert_id, number, g->config->node_name, modem,
	                       "interrupted by a restart");
}

int gateway_new(sd_event *event, const Config *config, Gateway **ret)
{
	Gateway *g;
	int r;

	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->event = sd_event_ref(event);
	g->config = config;
	g->reload.loaded_at = now_realtime_usec();
	g->nodeid = SOLO_NODEID;
	g->publish.next_seq = 1;
	g->publish.outbox = json_array();
	g->publish.events = json_array();
	g->tokens = json_array();
	g->voice.checks = json_array();
	g->cluster.confirm_due = json_object();
	g->escalation.published = json_object();
	g->check.digests_due = json_object();
	g->check.digests_mine = json_object();
	g->check.orphans = json_object();
	g->hooks.due = json_array();
	g->heartbeats.since = now_realtime_usec();
	g->heartbeats.published = json_object();
	members_init(&g->members, config->node_name);
	if (members_self(&g->members))
		members_self(&g->members)->nodeid = SOLO_NODEID;
	if (!g->publish.outbox || !g->publish.events || !g->tokens || !g->voice.checks ||
	    !g->cluster.confirm_due || !g->escalation.published || !g->check.digests_due ||
	    !g->check.digests_mine || !g->check.orphans || !g->hooks.due ||
	    !g->heartbeats.published || !members_self(&g->members)) {
		gateway_free(g);
		return -ENOMEM;
	}
	r = store_open(config->state_dir, &g->store);
	if (r < 0) {
		gateway_free(g);
		return r;
	}
	*ret = g;
	return 0;
}

int gateway_start(Gateway *g)
{
	int r;

	r = publish_start(g);
	if (r < 0)
		return r;
	r = dispatch_start(g);
	if (r < 0)
		return r;
	r = health_start(g);
	if (r < 0)
		return r;

	r = apply_start(g);
	if (r < 0)
		return r;
	r = gateway_start_cluster(g);
	if (r < 0)
		return r;
	r = check_start(g);
	if (r < 0)
		return r;

	r = requests_start(g);
	if (r < 0)
		return r;

	r = modems_start(g);
	if (r < 0)
		return r;
	r = voice_start(g);
	if (r < 0)
		return r;
	r = selftest_start(g);
	if (r < 0)
		return r;
	r = metrics_start(g);
	if (r < 0)
		return r;

	/* Alone, sends a crash interrupted are resumed at once; in a cluster once caught up. */
	if (!g->cluster.resume_pending) {
		r = store_sending_on_node(g->store, g->config->node_name, resume_one, g);
		if (r < 0)
			return r;
	}
	dispatch_schedule(g);
	sd_event_source_set_enabled(g->dispatch.defer, SD_EVENT_ONESHOT);
	log_info("Node '%s' serving on %s, events on %s, %zu modem(s), %llu alert(s) open",
	         g->config->node_name, g->config->submit_bind, g->config->events_bind, g->n_modems,
	         (unsigned long long)store_open_alerts(g->store));
	return 0;
}

Gateway *gateway_free(Gateway *g)
{
	if (!g)
		return NULL;
	metrics_stop(g);
	hooks_free(g);
	health_free(g);
	check_stop(g);
	apply_stop(g);
	reload_free(g);
	voice_free(g);
	selftest_free(g);
	modems_free(g);
	dispatch_free(g);
	publish_free(g);
	sd_event_source_disable_unref(g->cluster.grace_timer);
	sd_event_source_disable_unref(g->cluster.rev_timer);
	free(g->cluster.revs);
	sd_event_source_disable_unref(g->sync.timer);
	free(g->sync.key_cursor);
	json_decref(g->cluster.confirm_due);
	members_done(&g->members);
	sd_event_source_disable_unref(g->exit_check);
	requests_free(g);
	replication_free(g->replication);
	store_close(g->store);
	json_decref(g->tokens);
	json_decref(g->escalation.published);
	json_decref(g->heartbeats.published);
	json_decref(g->check.digests_due);
	json_decref(g->check.digests_mine);
	json_decref(g->check.orphans);
	sd_event_unref(g->event);
	free(g);
	return NULL;
}
