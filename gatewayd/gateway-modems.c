/* gateway-modems: this node's modem slots, and what their events become.
 *
 * Each configured modem has a slot: its Modem (one worker thread, modem.h), its last status and
 * the jobs it has in flight. A modem's events wake the loop through its fd: a status change is
 * announced to the cluster (ownership depends on usable modems), a received SMS or report
 * becomes a replicated change, and a send's result becomes a result change for its job. */
#include "gateway-internal.h"

bool modems_usable(const ModemSlot *slot)
{
	return slot->status.state == MODEM_STATE_OK || slot->status.state == MODEM_STATE_DEGRADED;
}

bool modems_degraded(const ModemSlot *slot)
{
	return slot->status.state == MODEM_STATE_DEGRADED ||
	       (modems_usable(slot) && (slot->path_problem[0] || slot->report_problem[0]));
}

void modems_check_reports(Gateway *g)
{
	uint64_t now = now_realtime_usec(),
	         wait = (uint64_t)g->config->health_report_wait * USEC_PER_SEC;

	for (size_t i = 0; i < g->n_modems; i++) {
		ModemSlot *slot = &g->modems[i];
		char problem[sizeof(slot->report_problem)] = "", since[RFC3339_MAX];

		if (!slot->config->delivery_reports)
			continue;
		if (store_modem_reports(g->store, g->config->node_name, slot->config->name,
		                        now - MIN(now, wait), 50, &slot->reports) < 0)
			continue;
		if (slot->reports.missing_in_a_row >= MODEM_REPORTS_MISSING)
			snprintf(problem, sizeof(problem),
			         "no delivery report for its last %u SMS, sent since %s (out of "
			         "credit, "
			         "or blocked by the operator?)",
			         slot->reports.missing_in_a_row,
			         format_rfc3339(slot->reports.missing_since, since));
		if (streq(problem, slot->report_problem))
			continue;
		if (problem[0])
			log_ctx(LOG_WARNING, &((LogContext){.modem = slot->config->name}),
			        "Degraded: %s", problem);
		else
			log_ctx(LOG_NOTICE, &((LogContext){.modem = slot->config->name}),
			        "Delivery reports are coming again");
		snprintf(slot->report_problem, sizeof(slot->report_problem), "%s", problem);
		modems_self_health_changed(g);
	}
}

uint64_t modems_connecting_until(Gateway *g, const ModemSlot *slot)
{
	uint64_t grace = (uint64_t)g->config->voice_connect_grace * USEC_PER_SEC,
	         since = now_monotonic_usec() - slot->unusable_since;

	if (modems_usable(slot) || !slot->modem || g->voice.lent == slot || since >= grace)
		return 0;
	return now_realtime_usec() + (grace - since);
}

ModemSlot *modems_slot_by_name(Gateway *g, const char *name)
{
	for (size_t i = 0; i < g->n_modems; i++)
		if (streq(g->modems[i].config->name, name))
			return &g->modems[i];
	return NULL;
}

/* This node's modem may now delete the message behind token from its SIM. */
void modems_token_confirm_later(Gateway *g, json_t *c)
{
	if (streq(jstr(c, "node"), g->config->node_name) && ju64(c, "token"))
		json_array_append_new(g->tokens, json_pack("[s, I]", jstr(c, "modem"),
		                                           (json_int_t)ju64(c, "token")));
}

void modems_confirm_tokens(Gateway *g)
{
	size_t i;
	json_t *t;

	json_array_foreach(g->tokens, i, t)
	{
		ModemSlot *slot = modems_slot_by_name(g, json_string_value(json_array_get(t, 0)));

		if (slot)
			modem_sms_stored(slot->modem,
			                 (uint64_t)json_integer_value(json_array_get(t, 1)));
	}
	json_array_clear(g->tokens);
}

/* This node's modems as the cluster sees them: recounted for ownership, and announced to the
 * other nodes whenever one changes state, or the store stops or starts committing again (a node
 * whose store cannot commit sends nothing, so its peer counts none of its modems). */
void modems_self_health_changed(Gateway *g)
{
	MemberNode *self = members_self(&g->members);
	unsigned usable = 0;

	for (size_t i = 0; i < g->n_modems; i++)
		usable += modems_usable(&g->modems[i]);
	if (self)
		self->usable_modems = usable;
	if (replication_is_clustered(g->replication) && !g->stopping)
		publish_outbox_add(g,
		                   change_pack("health", "{s:s, s:o, s:s*}", "node",
		                               g->config->node_name, "modems", modems_local_json(g),
		                               "store", stall_reason(g)),
		                   NULL);
}

static void modem_status_changed(Gateway *g, ModemSlot *slot, const ModemStatus *st)
{
	bool was = modems_usable(slot), is, changed = slot->status.state != st->state;

	slot->status = *st;
	is = modems_usable(slot);
	if (was && !is)
		slot->unusable_since = now_monotonic_usec(); /* reconnecting: see connect_grace */
	if (changed)
		modems_self_health_changed(g);
	if (was != is) {
		LogContext ctx = {.modem = slot->config->name};

		if (is)
			log_ctx(LOG_INFO, log_ctx_id(&ctx, MESSAGE_ID_MODEM_UP),
			        "Modem up (%s, signal %d)", st->operator_name, st->signal);
		else
			log_ctx(LOG_WARNING, log_ctx_id(&ctx, MESSAGE_ID_MODEM_DOWN),
			        "Modem down: %s (%s)", modem_state_to_string(st->state),
			        st->reason);
		json_t *e = json_pack("{s:s, s:s, s:s, s:s}", "node", g->config->node_name, "modem",
		                      slot->config->name, "state", modem_state_to_string(st->state),
		                      "reason", st->reason);
		if (e) {
			_cleanup_free_ char *text = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS);
			if (text)
				server_publish(g->server, is ? "modem_up" : "modem_down", text);
			json_decref(e);
		}
		if (is)
			sd_event_source_set_enabled(g->dispatch.defer, SD_EVENT_ONESHOT);
		else if (g->voice.dialer) {
			/* Maybe the last healthy modem: the open critical alerts may need a call.
			 */
			store_open_critical(g->store, voice_consider_one, g);
			voice_run_checks(g);
		}
	}
}

/* A received SMS or status report becomes a replicated change; the modem deletes it from the
 * SIM only once that change is committed (see modems_confirm_tokens()). */
static int modem_message(Gateway *g, ModemSlot *slot, const ModemEvent *ev)
{
	json_t *c;

	if (ev->type == MODEM_EVENT_SMS_RECEIVED)
		c = change_pack(
		        "sms_in", "{s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:I}", "key", ev->key,
		        "node", g->config->node_name, "modem", slot->config->name, "from", ev->from,
		        "text", ev->text ? ev->text : "", "parts", (int)ev->parts, "smsc_at",
		        (json_int_t)ev->smsc_time_usec, "at",
		        (json_int_t)(ev->received_usec ? ev->received_usec : now_realtime_usec()),
		        "token", (json_int_t)ev->token);
	else
		c = change_pack("report", "{s:s, s:s, s:s, s:i, s:b, s:b, s:s, s:I, s:I}", "key",
		                ev->key, "node", g->config->node_name, "modem", slot->config->name,
		                "ref", ev->message_ref, "delivered", ev->delivered, "permanent",
		                ev->permanent, "status", ev->delivery_status, "at",
		                (json_int_t)(ev->at_usec ? ev->at_usec : now_realtime_usec()),
		                "token", (json_int_t)ev->token);
	return publish_outbox_add(g, c, NULL);
}

static int modem_event(Gateway *g, ModemSlot *slot, const ModemEvent *ev)
{
	Job *job;
	json_t *c;
	int r;

	if (ev->type == MODEM_EVENT_STATUS) {
		modem_status_changed(g, slot, &ev->status);
		return 0;
	}
	if (ev->type == MODEM_EVENT_SMS_RECEIVED || ev->type == MODEM_EVENT_DELIVERY_REPORT)
		return modem_message(g, slot, ev);
	if (ev->type == MODEM_EVENT_SMS_QUARANTINED)
		return quarantine_modem_event(g, slot, ev);
	job = job_find(g, ev->job);
	if (!job && selftest_sent(g, slot, ev))
		return 0;
	if (!job)
		return 0;
	/* A job the modem never tried (stopped, or not connected) is no reason to wait, and
	 * neither is a failure while another modem can try at once: each modem gets one
	 * immediate try before the backoff applies. */
	bool elsewhere = false;
	if (ev->result < 0 && job->attempts + 1 < g->n_modems)
		for (size_t i = 0; i < g->n_modems; i++)
			if (&g->modems[i] != slot && modems_usable(&g->modems[i]))
				elsewhere = true;
	for (size_t i = 0; ev->result < 0 && i < g->members.n; i++)
		if (!g->members.nodes[i].self &&
		    members_eligible(&g->members, &g->members.nodes[i], false))
			elsewhere = true; /* the other node's modems take the next try */
	c = change_pack("result", "{s:s, s:s, s:s, s:s, s:I, s:b, s:b, s:b, s:s?}", "id",
	                job->alert_id, "to", job->number, "node", g->config->node_name, "modem",
	                slot->config->name, "at", (json_int_t)now_realtime_usec(), "ok",
	                ev->result >= 0, "permanent", ev->permanent, "retry_now",
	                elsewhere || ev->result == -ESHUTDOWN || ev->result == -ENODEV ||
	                        ev->result == -ENOTCONN,
	                "error",
	                ev->result >= 0 ? NULL : (ev->error[0] ? ev->error : "send failed"));
	if (c && ev->result >= 0 && ev->message_ref >= 0)
		json_object_set_new(c, "ref", json_integer(ev->message_ref));
	r = job_results(g, job, c);
	job_remove(g, job);
	sd_event_source_set_enabled(g->dispatch.defer, SD_EVENT_ONESHOT);
	return r;
}

typedef struct ModemIo {
	Gateway *g;
	size_t index;
} ModemIo;

static int on_modem_fd(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	ModemIo *io = userdata;
	Gateway *g = io->g;
	ModemSlot *slot = &g->modems[io->index];
	ModemEvent ev;

	while (modem_next_event(slot->modem, &ev) > 0) {
		modem_event(g, slot, &ev);
		modem_event_clear(&ev);
	}
	return 0;
}

/* Creates and starts the Modem of slot i (again, after it was lent to a voice call). */
int modems_slot_start(Gateway *g, size_t i)
{
	ModemSlot *slot = &g->modems[i];
	const ModemConfig *mc = slot->config;
	ModemSettings settings = {
	        .name = mc->name,
	        .device = mc->device,
	        .connection = mc->connection,
	        .pin = mc->pin,
	        .health_interval_sec = mc->health_interval,
	        .inbox_interval_sec = mc->inbox_interval,
	        .imei = mc->imei,
	        .min_signal = mc->min_signal == 0 ? -1 : mc->min_signal,
	        .max_consecutive_failures = mc->max_consecutive_failures,
	        .delivery_reports = mc->delivery_reports,
	        .send_timeout_sec = mc->send_timeout,
	        .command_timeout_sec = mc->command_timeout,
	        .state_dir = g->config->state_dir,
	};
	ModemIo *io;
	int r;

	slot->status.state = MODEM_STATE_ABSENT;
	snprintf(slot->status.reason, sizeof(slot->status.reason), "starting");
	slot->status.signal = 99;
	slot->inflight = 0;
	slot->unusable_since = now_monotonic_usec();
	r = modem_new(&settings, &slot->modem);
	if (r < 0)
		return log_error_errno(r, "Cannot set up modem '%s': %m", mc->name);
	io = calloc(1, sizeof(*io));
	if (!io)
		return -ENOMEM;
	*io = (ModemIo){.g = g, .index = i};
	r = sd_event_add_io(g->event, &slot->io, modem_fd(slot->modem), EPOLLIN, on_modem_fd, io);
	if (r < 0) {
		free(io);
		return r;
	}
	sd_event_source_set_destroy_callback(slot->io, free);
	r = modem_start(slot->modem);
	if (r < 0)
		return log_error_errno(r, "Cannot start modem '%s': %m", mc->name);
	return 0;
}

int modems_start(Gateway *g)
{
	int r;

	g->modems = calloc(MAX(g->config->n_modems, 1u), sizeof(ModemSlot));
	if (!g->modems)
		return -ENOMEM;
	for (size_t i = 0; i < g->config->n_modems; i++) {
		g->modems[i].config = &g->config->modems[i];
		g->n_modems++;
		r = modems_slot_start(g, i);
		if (r < 0)
			return r;
	}
	return 0;
}

/* This node's modems as status objects (also announced to the other nodes). */
json_t *modems_local_json(Gateway *g)
{
	json_t *modems = json_array();

	for (size_t i = 0; modems && i < g->n_modems; i++) {
		ModemSlot *slot = &g->modems[i];
		ModemCounters mc = {0};
		char last[RFC3339_MAX], connecting[RFC3339_MAX];
		uint64_t connecting_until = modems_connecting_until(g, slot);

		store_modem_counters(g->store, g->config->node_name, slot->config->name, &mc);
		if (slot->status.last_send_usec > mc.last_sent_at)
			mc.last_sent_at = slot->status.last_send_usec;
		const char *problem =
		        slot->path_problem[0] ? slot->path_problem : slot->report_problem;
		bool path_down = problem[0] && slot->status.state == MODEM_STATE_OK;
		json_t *m = json_pack(
		        "{s:s, s:s, s:s, s:s, s:s?, s:i, s:s?, s:s?, s:s?, s:I, s:I, s:s?, s:s?, "
		        "s:s?, s:b, s:b, s:s?}",
		        "node", g->config->node_name, "name", slot->config->name, "device",
		        slot->status.device[0] ? slot->status.device : slot->config->device,
		        "state", path_down ? "degraded" : modem_state_to_string(slot->status.state),
		        "reason",
		        path_down                ? problem
		        : slot->status.reason[0] ? slot->status.reason
		                                 : NULL,
		        "signal", slot->status.signal, "operator",
		        slot->status.operator_name[0] ? slot->status.operator_name : NULL, "imei",
		        slot->status.imei[0] ? slot->status.imei : NULL, "model",
		        slot->status.model[0] ? slot->status.model : NULL, "sent",
		        (json_int_t)mc.sent, "failed", (json_int_t)mc.failed, "last_error",
		        mc.last_error[0] ? mc.last_error : NULL, "last_sent_at",
		        mc.last_sent_at ? format_rfc3339(mc.last_sent_at, last) : NULL,
		        "registration",
		        slot->status.registration[0] ? slot->status.registration : NULL,
		        "delivery_reports", slot->config->delivery_reports,
		        "delivery_reports_supported", slot->status.delivery_reports_supported,
		        "number", slot->config->number);
		if (m && slot->config->delivery_reports) {
			/* Over its last sends old enough to have their report: the SIM cannot fake
			 * these. */
			json_object_set_new(m, "delivery_report_ratio",
			                    slot->reports.sent
			                            ? json_real((double)slot->reports.reported /
			                                        slot->reports.sent)
			                            : json_null());
			json_object_set_new(m, "last_reported_send_at",
			                    slot->reports.last_reported_at
			                            ? json_string(format_rfc3339(
			                                      slot->reports.last_reported_at, last))
			                            : json_null());
		}
		if (m)
			json_object_set_new(
			        m, "connecting_until",
			        connecting_until
			                ? json_string(format_rfc3339(connecting_until, connecting))
			                : json_null());
		json_array_append_new(modems, m);
	}
	return modems ? modems : json_array();
}

/* Stops the modems (a send in progress may finish) and turns their last events into changes. */
void modems_stop(Gateway *g)
{
	ModemEvent ev;

	for (size_t i = 0; i < g->n_modems; i++)
		modem_request_stop(g->modems[i].modem);
	for (size_t i = 0; i < g->n_modems; i++)
		modem_stop(g->modems[i].modem);
	for (size_t i = 0; i < g->n_modems; i++)
		while (modem_next_event(g->modems[i].modem, &ev) > 0) {
			modem_event(g, &g->modems[i], &ev);
			modem_event_clear(&ev);
		}
}

void modems_free(Gateway *g)
{
	for (size_t i = 0; i < g->n_modems; i++) {
		sd_event_source_disable_unref(g->modems[i].io);
		modem_free(g->modems[i].modem);
	}
	free(g->modems);
	g->modems = NULL;
	g->n_modems = 0;
}
