/* gateway-voice: the voice fallback, when every SMS path for a critical alert has failed.
 *
 * One call at a time, from a queue, on the dialer of voicefallback/. With [voice] modem the SMS
 * modem of that name is stopped while idle, lent to the dialer, and started afresh afterwards. */
#include "gateway-internal.h"

static void voice_consider(Gateway *g, const char *alert_id, const char *number);
static void voice_next(Gateway *g);
static void voice_grace_until(Gateway *g, uint64_t until);

/* After the commit, see whether this recipient's SMS paths have all failed (voice_consider). */
void voice_check_later(Gateway *g, const char *alert_id, const char *number)
{
	if (g->voice.dialer)
		json_array_append_new(g->voice.checks, json_pack("[s, s]", alert_id, number));
}

int apply_call(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
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
	char at[RFC3339_MAX];
	int r;

	r = store_call_insert(g->store, &rec);
	if (r <= 0)
		return r;
	/* Every SMS path failed and voice took over: the step's timer starts with the call. */
	r = escalation_page_left(g, rec.alert_id, rec.number, rec.at, rec.node, "voice call");
	if (r < 0)
		return r;
	log_ctx(LOG_NOTICE,
	        &((LogContext){.alert_id = rec.alert_id,
	                       .modem = rec.modem,
	                       .message_id = MESSAGE_ID_VOICE_CALL}),
	        "Voice call to %s: %s%s%s", rec.number, rec.outcome, rec.error ? " — " : "",
	        rec.error ? rec.error : "");
	publish_event(g, "voice_call",
	              json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:b}", "id", rec.alert_id,
	                        "number", rec.number, "node", rec.node, "modem", rec.modem, "at",
	                        format_rfc3339(rec.at, at), "outcome", rec.outcome, "duration",
	                        (json_int_t)rec.duration_sec, "acknowledged", rec.dtmf_ack));
	return 0;
}

/* An acknowledged alert needs no more calls. */
unsigned voice_drop_alert(Gateway *g, const char *alert_id)
{
	unsigned n = 0;

	for (VoiceCall **p = &g->voice.calls; *p;) {
		VoiceCall *v = *p;

		if (streq(v->alert_id, alert_id)) {
			*p = v->next;
			free(v);
			n++;
		} else
			p = &v->next;
	}
	return n;
}

static bool voice_queued(Gateway *g, const char *alert_id, const char *number)
{
	if (g->voice.call && streq(g->voice.call->alert_id, alert_id) &&
	    streq(g->voice.call->number, number))
		return true;
	for (VoiceCall *v = g->voice.calls; v; v = v->next)
		if (streq(v->alert_id, alert_id) && streq(v->number, number))
			return true;
	return false;
}

static void voice_enqueue(Gateway *g, const char *alert_id, const char *number,
                          const char *recipient, bool center, unsigned attempt, uint64_t not_before)
{
	VoiceCall *v = calloc(1, sizeof(*v)), **tail;

	if (!v) {
		log_error("Out of memory: no voice call to %s", number);
		return;
	}
	snprintf(v->alert_id, sizeof(v->alert_id), "%s", alert_id);
	snprintf(v->number, sizeof(v->number), "%s", number);
	snprintf(v->recipient, sizeof(v->recipient), "%s", recipient);
	v->contact_center = center;
	v->attempt = attempt;
	v->not_before = not_before;
	for (tail = &g->voice.calls; *tail; tail = &(*tail)->next)
		;
	*tail = v;
}

/* The SMS paths of one node for a delivery: its usable modems, how many of them have failed
 * this delivery, and the earliest end of a connect_grace among those still connecting (0: none
 * is; a path that may come up soon is not a failed one). */
typedef struct VoicePaths {
	size_t usable, failed;
	uint64_t connecting_until;
} VoicePaths;

static int voice_paths(Gateway *g, const char *alert_id, const char *number, const char *node,
                       json_t *modems, VoiceCandidate *ret, VoicePaths *paths)
{
	uint64_t now = now_realtime_usec();
	size_t i;
	json_t *m;
	int r;

	*ret = (VoiceCandidate){.node = node};
	r = store_voice_candidate(g->store, alert_id, number, ret);
	if (r < 0)
		return r;
	json_array_foreach(modems, i, m)
	{
		const char *state = jstr(m, "state"), *name = jstr(m, "name");
		uint64_t until;

		if (!streq(state, "ok") && !streq(state, "degraded")) {
			/* Announced by its node as an absolute time: it ends even if that node says
			 * nothing more. */
			if (parse_rfc3339(jstr(m, "connecting_until"), &until) == 0 &&
			    until > now &&
			    (!paths->connecting_until || until < paths->connecting_until))
				paths->connecting_until = until;
			continue;
		}
		paths->usable++;
		for (size_t j = 0; j < ret->n_failed_modems; j++)
			if (streq(ret->failed_modems[j], name)) {
				paths->failed++;
				break;
			}
	}
	return 0;
}

/* A critical, unacknowledged delivery whose SMS paths have all failed: every usable modem of
 * every online node has made an attempt that ended in error, or no modem is usable at all.
 * Then the recipient is called, and after them the contact center — by one node only, the
 * dialer members_dialer() picks, so that a cluster does not ring the engineer twice. */
static void voice_consider(Gateway *g, const char *alert_id, const char *number)
{
	VoiceCandidate v = {0};
	VoicePaths paths = {0};
	const char *dialer;

	if (!g->voice.dialer || g->stopping || voice_queued(g, alert_id, number))
		return;
	dialer = members_dialer(&g->members, alert_id, number, true);
	if (!dialer || !streq(dialer, g->config->node_name))
		return;
	for (size_t i = 0; i < g->members.n; i++) {
		MemberNode *n = &g->members.nodes[i];
		_cleanup_(json_decrefp) json_t *modems = NULL;

		if (!cluster_member_online(n))
			continue;
		modems = n->self ? modems_local_json(g) : json_incref(n->modems);
		if (voice_paths(g, alert_id, number, n->name, modems, &v, &paths) < 0)
			return;
	}
	if (!v.critical || v.acknowledged || v.copy || v.calls > 0 || v.state == DELIVERY_SENT ||
	    v.state == DELIVERY_DELIVERED)
		return;
	if (paths.usable > 0 && paths.failed < paths.usable)
		return;
	if (paths.connecting_until) {
		/* Right after a start or a reconnect the modems are still coming up: the SMS goes
		 * out once one is, a call now would take its place (and, after a reboot with a
		 * backlog, ring every engineer at once). Looked at again when the grace ends. */
		log_ctx(LOG_INFO, &((LogContext){.alert_id = alert_id}),
		        "No SMS path to %s yet, modems still connecting: not calling before the "
		        "connect grace ends",
		        number);
		voice_grace_until(g, paths.connecting_until);
		return;
	}
	log_ctx(LOG_WARNING, &((LogContext){.alert_id = alert_id}),
	        "Every SMS path to %s failed: calling", number);
	voice_enqueue(g, alert_id, number, number, false, 0, 0);
	if (g->config->voice_contact_center &&
	    !voice_queued(g, alert_id, g->config->voice_contact_center))
		voice_enqueue(g, alert_id, g->config->voice_contact_center, number, true, 0, 0);
	voice_next(g);
}

void voice_run_checks(Gateway *g)
{
	size_t i;
	json_t *c;

	json_array_foreach(g->voice.checks, i, c)
	        voice_consider(g, json_string_value(json_array_get(c, 0)),
	                       json_string_value(json_array_get(c, 1)));
	json_array_clear(g->voice.checks);
}

int voice_consider_one(const char *alert_id, const char *number, void *userdata)
{
	voice_check_later(userdata, alert_id, number);
	return 0;
}

static int on_voice_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	voice_next(userdata);
	return 0;
}

/* A connect grace has ended: the open critical alerts are looked at again. */
static int on_voice_grace(sd_event_source *s, uint64_t usec, void *userdata)
{
	Gateway *g = userdata;

	store_open_critical(g->store, voice_consider_one, g);
	voice_run_checks(g);
	return 0;
}

/* Wakes on_voice_grace() just after `until` (realtime usec), or earlier if it is set to. */
static void voice_grace_until(Gateway *g, uint64_t until)
{
	uint64_t wake = until + 100 * USEC_PER_MSEC, current = 0;
	int enabled = SD_EVENT_OFF;

	if (!g->voice.grace)
		return;
	sd_event_source_get_enabled(g->voice.grace, &enabled);
	if (enabled != SD_EVENT_OFF && sd_event_source_get_time(g->voice.grace, &current) >= 0 &&
	    current <= wake)
		return;
	sd_event_source_set_time(g->voice.grace, wake);
	sd_event_source_set_enabled(g->voice.grace, SD_EVENT_ONESHOT);
}

/* The modem named by [voice] modem is lent to the dialer only while idle; it is stopped (its
 * worker gone, its port closed) and started afresh after the call. */
static int voice_borrow(Gateway *g)
{
	ModemSlot *slot;

	if (!g->config->voice_modem)
		return 0;
	slot = modems_slot_by_name(g, g->config->voice_modem);
	if (!slot || !slot->modem)
		return 0;
	if (slot->inflight > 0)
		return -EBUSY;
	slot->io = sd_event_source_disable_unref(slot->io);
	slot->modem = modem_free(slot->modem);
	slot->status.state = MODEM_STATE_ABSENT;
	snprintf(slot->status.reason, sizeof(slot->status.reason), "lent to a voice call");
	g->voice.lent = slot;
	modems_self_health_changed(g);
	return 0;
}

static void voice_give_back(Gateway *g)
{
	if (!g->voice.lent)
		return;
	modems_slot_start(g, (size_t)(g->voice.lent - g->modems));
	g->voice.lent = NULL;
}

static void on_call_done(Dialer *dialer, const DialerReport *rep, void *userdata)
{
	Gateway *g = userdata;
	VoiceCall *v = g->voice.call;
	const char *outcome = call_outcome_to_string(rep->outcome);
	json_t *c;

	g->voice.call = NULL;
	voice_give_back(g);
	if (!v)
		return;
	c = change_pack("call", "{s:s, s:s, s:s, s:s, s:I, s:s, s:I, s:s?, s:b}", "id", v->alert_id,
	                "number", v->number, "node", g->config->node_name, "modem",
	                g->config->voice_modem ? g->config->voice_modem : "voice", "at",
	                (json_int_t)rep->started_at, "outcome", outcome, "duration",
	                (json_int_t)(rep->duration_usec / USEC_PER_SEC), "error",
	                rep->error && *rep->error ? rep->error : NULL, "dtmf_ack",
	                rep->acknowledged_by_dtmf);
	publish_outbox_add(g, c, NULL);
	if (rep->acknowledged_by_dtmf) {
		voice_drop_alert(g, v->alert_id);
		publish_outbox_add(g,
		                   change_pack("ack", "{s:s, s:s, s:s, s:s, s:I}", "id",
		                               v->alert_id, "by", v->number, "via", "voice", "node",
		                               g->config->node_name, "at",
		                               (json_int_t)now_realtime_usec()),
		                   NULL);
	} else if ((rep->outcome == CALL_BUSY || rep->outcome == CALL_NO_ANSWER ||
	            rep->outcome == CALL_FAILED) &&
	           v->attempt < g->config->voice_retries)
		/* An answered call is not an acknowledgment, but a line that did not answer is
		 * tried again, with backoff, while the alert stays unacknowledged. */
		voice_enqueue(g, v->alert_id, v->number, v->recipient, v->contact_center,
		              v->attempt + 1,
		              now_realtime_usec() +
		                      ((uint64_t)g->config->voice_retry_delay << v->attempt) *
		                              USEC_PER_SEC);
	free(v);
	voice_next(g);
}

static void voice_next(Gateway *g)
{
	uint64_t now = now_realtime_usec(), wake = 0;
	VoiceCandidate cand = {.node = g->config->node_name};
	VoiceCall **p;
	int r;

	if (!g->voice.dialer || g->voice.call || g->stopping)
		return;
	for (p = &g->voice.calls; *p;) {
		VoiceCall *v = *p;
		DialerOptions opt = {
		        .ring_timeout_usec = g->config->voice_ring_timeout * USEC_PER_SEC,
		        .hold_usec = g->config->voice_hold * USEC_PER_SEC,
		        .alert_id = v->alert_id,
		};

		if (v->not_before > now) {
			if (!wake || v->not_before < wake)
				wake = v->not_before;
			p = &v->next;
			continue;
		}
		/* Acknowledged meanwhile, or the SMS got through after all: no call. */
		if (store_voice_candidate(g->store, v->alert_id, v->recipient, &cand) == 0 &&
		    (cand.acknowledged || cand.state == DELIVERY_SENT ||
		     cand.state == DELIVERY_DELIVERED)) {
			*p = v->next;
			free(v);
			continue;
		}
		if (voice_borrow(g) < 0) {
			wake = now + USEC_PER_SEC; /* the modem is busy sending: soon */
			break;
		}
		*p = v->next;
		g->voice.call = v;
		r = dialer_call(g->voice.dialer, v->number, &opt, on_call_done, g);
		if (r < 0) {
			log_error_errno(r, "Cannot start a voice call to %s: %m", v->number);
			g->voice.call = NULL;
			voice_give_back(g);
			free(v);
			continue;
		}
		return;
	}
	if (wake) {
		sd_event_source_set_time(g->voice.timer, wake);
		sd_event_source_set_enabled(g->voice.timer, SD_EVENT_ONESHOT);
	}
}

int voice_start(Gateway *g)
{
	const char *device = g->config->voice_device;
	const ModemConfig *mc;
	int r;

	if (g->config->voice_modem) {
		mc = config_find_modem(g->config, g->config->voice_modem);
		device = mc ? mc->device : NULL;
	}
	if (!device)
		return 0;
	r = dialer_new(g->event, device, g->config->voice_modem ? g->config->voice_modem : "voice",
	               &g->voice.dialer);
	if (r < 0)
		return log_error_errno(r, "Cannot set up voice dial-out on '%s': %m", device);
	r = sd_event_add_time(g->event, &g->voice.timer, CLOCK_REALTIME, 0, USEC_PER_MSEC,
	                      on_voice_timer, g);
	if (r < 0)
		return r;
	sd_event_source_set_enabled(g->voice.timer, SD_EVENT_OFF);
	r = sd_event_add_time(g->event, &g->voice.grace, CLOCK_REALTIME, 0, USEC_PER_MSEC,
	                      on_voice_grace, g);
	if (r < 0)
		return r;
	sd_event_source_set_enabled(g->voice.grace, SD_EVENT_OFF);
	/* Critical alerts left open by a restart are looked at again. */
	store_open_critical(g->store, voice_consider_one, g);
	log_info("Voice fallback dials out on %s", device);
	return 0;
}

void voice_free(Gateway *g)
{
	g->voice.dialer = dialer_free(g->voice.dialer);
	free(g->voice.call);
	g->voice.call = NULL;
	while (g->voice.calls) {
		VoiceCall *v = g->voice.calls;
		g->voice.calls = v->next;
		free(v);
	}
	g->voice.timer = sd_event_source_disable_unref(g->voice.timer);
	g->voice.grace = sd_event_source_disable_unref(g->voice.grace);
	json_decref(g->voice.checks);
	g->voice.checks = NULL;
}
