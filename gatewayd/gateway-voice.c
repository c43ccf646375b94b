/* gateway-voice: the voice fallback, when every SMS path for a critical alert has failed.
 *
 * One call at a time, from a queue, on the dialer of voicefallback/. With [voice] modem the SMS
 * modem of that name is stopped while idle, lent to the dialer, and started afresh afterwards. */
#include "gateway-internal.h"

/* The alerts one call covers at most (their call records are one change each). */
#define VOICE_COVER_MAX 200

static void voice_consider(Gateway *g, const char *alert_id, const char *number);
static void voice_next(Gateway *g);
static void voice_grace_until(Gateway *g, uint64_t until);
static bool voice_call_about(const VoiceCall *v, const char *alert_id);

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

static void voice_call_free(VoiceCall *v)
{
	if (v)
		free(v->about);
	free(v);
}

/* Leaves alert_id out of a call; true when the call is about nothing any more. */
static bool voice_call_drop(VoiceCall *v, const char *alert_id)
{
	for (size_t i = 0; i < v->n_about;)
		if (streq(v->about[i].alert_id, alert_id)) {
			memmove(&v->about[i], &v->about[i + 1],
			        (v->n_about - i - 1) * sizeof(*v->about));
			v->n_about--;
		} else
			i++;
	return v->n_about == 0;
}

/* An acknowledged alert needs no more calls. */
unsigned voice_drop_alert(Gateway *g, const char *alert_id)
{
	unsigned n = 0;

	for (VoiceCall **p = &g->voice.calls; *p;) {
		VoiceCall *v = *p;

		if (!voice_call_about(v, alert_id)) {
			p = &v->next;
			continue;
		}
		n++;
		if (voice_call_drop(v, alert_id)) {
			*p = v->next;
			voice_call_free(v);
		} else
			p = &v->next;
	}
	return n;
}

static bool voice_call_about(const VoiceCall *v, const char *alert_id)
{
	for (size_t i = 0; v && i < v->n_about; i++)
		if (streq(v->about[i].alert_id, alert_id))
			return true;
	return false;
}

static bool voice_queued(Gateway *g, const char *alert_id, const char *number)
{
	if (g->voice.call && streq(g->voice.call->number, number) &&
	    voice_call_about(g->voice.call, alert_id))
		return true;
	for (VoiceCall *v = g->voice.calls; v; v = v->next)
		if (streq(v->number, number) && voice_call_about(v, alert_id))
			return true;
	return false;
}

static int voice_call_add(VoiceCall *v, const char *alert_id, const char *recipient)
{
	VoiceAbout *about;

	if (voice_call_about(v, alert_id))
		return 0;
	about = realloc(v->about, (v->n_about + 1) * sizeof(*about));
	if (!about)
		return -ENOMEM;
	v->about = about;
	snprintf(about[v->n_about].alert_id, sizeof(about->alert_id), "%s", alert_id);
	snprintf(about[v->n_about].recipient, sizeof(about->recipient), "%s", recipient);
	v->n_about++;
	return 0;
}

/* Queues a call to number about alert_id, or adds the alert to the call to that number that
 * waits already: one call covers all of a person's pending alerts. A waiting retry or recall
 * is brought forward to the earlier need: a new alert's first call is not held back by the
 * recall of an older one. */
static void voice_enqueue(Gateway *g, const char *alert_id, const char *number,
                          const char *recipient, bool center, unsigned attempt, uint64_t not_before)
{
	VoiceCall *v, **tail;

	for (tail = &g->voice.calls; *tail; tail = &(*tail)->next)
		if (streq((*tail)->number, number)) {
			v = *tail;
			if (voice_call_add(v, alert_id, recipient) < 0)
				log_error("Out of memory: no voice call to %s", number);
			v->not_before = MIN(v->not_before, not_before);
			v->attempt = MIN(v->attempt, attempt);
			return;
		}
	v = calloc(1, sizeof(*v));
	if (!v || voice_call_add(v, alert_id, recipient) < 0) {
		voice_call_free(v);
		log_error("Out of memory: no voice call to %s", number);
		return;
	}
	snprintf(v->number, sizeof(v->number), "%s", number);
	v->contact_center = center;
	v->attempt = attempt;
	v->not_before = not_before;
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

/* Whether a delivery still wants calls after some: not sent, not expired, not cancelled (a
 * permanently failed SMS, to a number that takes none, does). */
static bool voice_still_wanted(DeliveryState state)
{
	return state == DELIVERY_QUEUED || state == DELIVERY_SENDING || state == DELIVERY_FAILED;
}

/* The wait before call number `attempt` + 1 to a number: retry_delay doubling while retries
 * are left, then [voice] recall; false when there is to be none. */
static bool voice_delay(Gateway *g, unsigned attempt, uint64_t *ret_usec)
{
	const Config *c = g->config;

	if (attempt <= c->voice_retries) {
		*ret_usec =
		        ((uint64_t)c->voice_retry_delay << MIN(attempt - 1, 20u)) * USEC_PER_SEC;
		return attempt > 0;
	}
	*ret_usec = (uint64_t)c->voice_recall * USEC_PER_SEC;
	return c->voice_recall > 0;
}

/* Called before and nobody reached: when the next call is due, from the recorded ones. */
static bool voice_again_at(Gateway *g, const VoiceCandidate *v, unsigned *ret_attempt,
                           uint64_t *ret_at)
{
	uint64_t delay;

	if (v->reached || !voice_still_wanted(v->state) || !voice_delay(g, v->calls, &delay))
		return false;
	*ret_attempt = v->calls;
	*ret_at = v->last_call_at + delay;
	return true;
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
	unsigned attempt = 0;
	uint64_t not_before = 0;

	if (!g->voice.dialer || g->stopping || voice_queued(g, alert_id, number))
		return;
	/* One node calls a number, so that one call covers all that number's alerts. */
	dialer = members_dialer(&g->members, "call", number, true);
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
	if (!v.critical || v.acknowledged || v.copy || v.state == DELIVERY_SENT ||
	    v.state == DELIVERY_DELIVERED)
		return;
	if (v.calls > 0 && !voice_again_at(g, &v, &attempt, &not_before))
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
	if (v.calls > 0) {
		/* Called before (by this node before a restart, or by one that is gone) and
		 * nobody was reached: the calls go on from the recorded ones. */
		log_ctx(LOG_NOTICE, &((LogContext){.alert_id = alert_id}),
		        "%u call(s) to %s reached nobody: calling again", v.calls, number);
	} else {
		log_ctx(LOG_WARNING, &((LogContext){.alert_id = alert_id}),
		        "Every SMS path to %s failed: calling", number);
	}
	voice_enqueue(g, alert_id, number, number, false, attempt, not_before);
	/* The contact center after the recipient, and as often. */
	if (g->config->voice_contact_center &&
	    !voice_queued(g, alert_id, g->config->voice_contact_center))
		voice_enqueue(g, alert_id, g->config->voice_contact_center, number, true, attempt,
		              not_before);
}

void voice_run_checks(Gateway *g)
{
	size_t i;
	json_t *c;

	if (!g->voice.checks || json_array_size(g->voice.checks) == 0)
		return;
	json_array_foreach(g->voice.checks, i, c)
	        voice_consider(g, json_string_value(json_array_get(c, 0)),
	                       json_string_value(json_array_get(c, 1)));
	json_array_clear(g->voice.checks);
	/* Called once all are looked at: a call then covers every alert of its number. */
	voice_next(g);
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

/* What a call proved. With a modem that reports key presses, only a key proves that a human
 * heard it: answered without one is "answered_no_key" (a voicemail, a pocket), treated like no
 * answer. 1 acknowledges; 2 passes the alerts to their next escalation step now. */
typedef enum CallProof {
	PROOF_NONE,    /* not answered, or answered without a key */
	PROOF_HEARD,   /* answered, and the modem cannot say more */
	PROOF_ACK,     /* 1 */
	PROOF_PASS_ON, /* 2 */
} CallProof;

static CallProof call_proof(const DialerReport *rep)
{
	if (rep->outcome != CALL_ANSWERED)
		return PROOF_NONE;
	if (rep->acknowledged_by_dtmf)
		return PROOF_ACK;
	if (rep->dtmf && strchr(rep->dtmf, '2'))
		return PROOF_PASS_ON;
	return rep->dtmf_detection ? PROOF_NONE : PROOF_HEARD;
}

static void on_call_done(Dialer *dialer, const DialerReport *rep, void *userdata)
{
	Gateway *g = userdata;
	VoiceCall *v = g->voice.call;
	CallProof proof = call_proof(rep);
	const char *outcome = rep->outcome == CALL_ANSWERED && proof == PROOF_NONE
	                              ? "answered_no_key"
	                              : call_outcome_to_string(rep->outcome);
	uint64_t now = now_realtime_usec(), delay = 0;

	g->voice.call = NULL;
	g->voice.key_presses = rep->outcome == CALL_ANSWERED ? (rep->dtmf_detection ? 1 : 0)
	                                                     : g->voice.key_presses;
	voice_give_back(g);
	if (!v)
		return;
	/* One record per alert the call covered: each alert's story shows it, and the limit counts
	 * it once (same node, same start). */
	for (size_t i = 0; i < v->n_about; i++) {
		const char *id = v->about[i].alert_id;

		publish_outbox_add(
		        g,
		        change_pack("call", "{s:s, s:s, s:s, s:s, s:I, s:s, s:I, s:s?, s:b}", "id",
		                    id, "number", v->number, "node", g->config->node_name, "modem",
		                    g->config->voice_modem ? g->config->voice_modem : "voice", "at",
		                    (json_int_t)rep->started_at, "outcome", outcome, "duration",
		                    (json_int_t)(rep->duration_usec / USEC_PER_SEC), "error",
		                    rep->error && *rep->error ? rep->error : NULL, "dtmf_ack",
		                    proof == PROOF_ACK),
		        NULL);
		if (proof == PROOF_ACK)
			publish_outbox_add(g,
			                   change_pack("ack", "{s:s, s:s, s:s, s:s, s:I}", "id", id,
			                               "by", v->number, "via", "voice", "node",
			                               g->config->node_name, "at", (json_int_t)now),
			                   NULL);
		else if (proof == PROOF_PASS_ON)
			escalation_now(g, id, now);
	}
	if (proof == PROOF_ACK || proof == PROOF_PASS_ON) {
		for (size_t i = 0; i < v->n_about; i++)
			voice_drop_alert(g, v->about[i].alert_id);
	} else if ((rep->outcome == CALL_BUSY || rep->outcome == CALL_NO_ANSWER ||
	            rep->outcome == CALL_FAILED || proof == PROOF_NONE) &&
	           voice_delay(g, v->attempt + 1, &delay))
		/* Neither an answer nor a key is an acknowledgment, but a line that did not answer,
		 * or answered without a key, is tried again, with backoff, then every [voice]
		 * recall, until a human is reached or the alerts need no call any more
		 * (voice_call_prune). */
		for (size_t i = 0; i < v->n_about; i++)
			voice_enqueue(g, v->about[i].alert_id, v->number, v->about[i].recipient,
			              v->contact_center, v->attempt + 1, now + delay);
	voice_call_free(v);
	voice_next(g);
}

static int cover_one(const char *alert_id, void *userdata)
{
	VoiceCall *v = userdata;

	return voice_call_add(v, alert_id, v->number);
}

/* A call to a person covers all their pending critical alerts, those whose SMS may still be
 * trying too: one call, not one per alert. */
static void voice_call_cover_pending(Gateway *g, VoiceCall *v)
{
	store_voice_pending(g->store, v->number, VOICE_COVER_MAX, cover_one, v);
}

/* Leaves out of a call the alerts that need it no more: acknowledged or resolved meanwhile, or
 * their SMS got through after all, or expired (a recall goes on no longer than the alert). */
static void voice_call_prune(Gateway *g, VoiceCall *v)
{
	VoiceCandidate cand = {.node = g->config->node_name};

	for (size_t i = 0; i < v->n_about;) {
		if (store_voice_candidate(g->store, v->about[i].alert_id, v->about[i].recipient,
		                          &cand) == 0 &&
		    (cand.acknowledged || !voice_still_wanted(cand.state))) {
			memmove(&v->about[i], &v->about[i + 1],
			        (v->n_about - i - 1) * sizeof(*v->about));
			v->n_about--;
		} else
			i++;
	}
}

static void voice_next(Gateway *g)
{
	uint64_t now = now_realtime_usec(), wake = 0, room_at;
	VoiceCall **p;
	int r;

	if (!g->voice.dialer || g->voice.call || g->stopping)
		return;
	for (p = &g->voice.calls; *p;) {
		VoiceCall *v = *p;
		DialerOptions opt = {
		        .ring_timeout_usec = g->config->voice_ring_timeout * USEC_PER_SEC,
		        .hold_usec = g->config->voice_hold * USEC_PER_SEC,
		};

		if (v->not_before <= now && !limits_call_room(g, v->number, &room_at)) {
			/* The number had its calls for the window: this one waits, and what else
			 * needs a call to it meanwhile joins it. */
			log_ctx(LOG_NOTICE, &((LogContext){.alert_id = v->about[0].alert_id}),
			        "%s had its %u voice calls per %u s: the call about %zu alert(s) "
			        "waits",
			        v->number, g->config->limit_calls.count,
			        g->config->limit_calls.window, v->n_about);
			v->not_before = room_at;
		}
		if (v->not_before > now) {
			if (!wake || v->not_before < wake)
				wake = v->not_before;
			p = &v->next;
			continue;
		}
		if (!v->contact_center)
			voice_call_cover_pending(g, v);
		voice_call_prune(g, v);
		if (v->n_about == 0) {
			*p = v->next;
			voice_call_free(v);
			continue;
		}
		if (voice_borrow(g) < 0) {
			wake = now + USEC_PER_SEC; /* the modem is busy sending: soon */
			break;
		}
		*p = v->next;
		g->voice.call = v;
		opt.alert_id = v->about[0].alert_id;
		r = dialer_call(g->voice.dialer, v->number, &opt, on_call_done, g);
		if (r < 0) {
			log_error_errno(r, "Cannot start a voice call to %s: %m", v->number);
			g->voice.call = NULL;
			voice_give_back(g);
			voice_call_free(v);
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
	g->voice.key_presses = -1;
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
	voice_call_free(g->voice.call);
	g->voice.call = NULL;
	while (g->voice.calls) {
		VoiceCall *v = g->voice.calls;
		g->voice.calls = v->next;
		voice_call_free(v);
	}
	g->voice.timer = sd_event_source_disable_unref(g->voice.timer);
	g->voice.grace = sd_event_source_disable_unref(g->voice.grace);
	json_decref(g->voice.checks);
	g->voice.checks = NULL;
}
