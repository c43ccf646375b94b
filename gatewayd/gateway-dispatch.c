/* gateway-dispatch: the jobs in flight, and what hands due deliveries to the modems.
 *
 * Dispatch keeps no queue in memory: after each commit, and when the earliest retry or expiry
 * falls due (one realtime timer), it asks the store for the next due deliveries, keeps those this
 * node owns (members.h: computed alike on every node) and assigns each to the least loaded
 * healthy modem. Only the handful of jobs in flight live in memory: a job is created with its
 * "assign" change and handed to its modem only once that change is committed
 * (dispatch_start_assigned()). */
#include "gateway-internal.h"

static bool job_covers(const Job *j, const char *alert_id)
{
	if (j->n_bundle == 0)
		return streq(j->alert_id, alert_id);
	for (size_t i = 0; i < j->n_bundle; i++)
		if (streq(j->bundle[i], alert_id))
			return true;
	return false;
}

Job *job_find_delivery(Gateway *g, const char *alert_id, const char *number)
{
	for (Job *j = g->dispatch.jobs; j; j = j->next)
		if (streq(j->number, number) && job_covers(j, alert_id))
			return j;
	return NULL;
}

/* Leaves a delivery out of a summary job (handled meanwhile); false when none is left. */
bool job_uncover(Job *j, const char *alert_id)
{
	for (size_t i = 0; i < j->n_bundle; i++)
		if (streq(j->bundle[i], alert_id)) {
			memmove(j->bundle[i], j->bundle[i + 1],
			        (j->n_bundle - i - 1) * sizeof(j->bundle[0]));
			j->n_bundle--;
			break;
		}
	return j->n_bundle > 0;
}

static void job_free(Job *job)
{
	free(job->text);
	free(job->bundle);
	free(job);
}

Job *job_find(Gateway *g, uint64_t id)
{
	for (Job *j = g->dispatch.jobs; j; j = j->next)
		if (j->id == id)
			return j;
	return NULL;
}

void job_remove(Gateway *g, Job *job)
{
	for (Job **p = &g->dispatch.jobs; *p; p = &(*p)->next)
		if (*p == job) {
			*p = job->next;
			break;
		}
	if (job->modem < g->n_modems && g->modems[job->modem].inflight > 0)
		g->modems[job->modem].inflight--;
	job_free(job);
}

/* One result change per delivery the job carried (one, or each of a summary's). */
int job_results(Gateway *g, Job *job, json_t *result)
{
	int r = 0;

	if (!result)
		return -ENOMEM;
	for (size_t i = 0; i < MAX(job->n_bundle, 1u) && r >= 0; i++) {
		json_t *c = json_deep_copy(result);

		if (c && job->n_bundle > 0)
			json_object_set_new(c, "id", json_string(job->bundle[i]));
		r = publish_outbox_add(g, c, NULL);
	}
	json_decref(result);
	return r;
}

void dispatch_start_assigned(Gateway *g)
{
	for (Job *j = g->dispatch.jobs, *next; j; j = next) {
		ModemSlot *slot;
		int r;

		next = j->next;
		if (!j->assigned || !j->text)
			continue;
		slot = &g->modems[j->modem];
		r = modem_send(slot->modem, j->id, j->number, j->text);
		free(j->text);
		j->text = NULL; /* handed over; the job now waits for the modem's answer */
		if (r < 0) {
			log_ctx_errno(LOG_ERR, r, &((LogContext){.modem = slot->config->name}),
			              "Modem refused a job: %m");
			/* Treated like a failed send: the result change requeues it. */
			job_results(g, j,
			            change_pack("result",
			                        "{s:s, s:s, s:s, s:s, s:I, s:b, s:b, s:s}", "id",
			                        j->alert_id, "to", j->number, "node",
			                        g->config->node_name, "modem", slot->config->name,
			                        "at", (json_int_t)now_realtime_usec(), "ok", 0,
			                        "permanent", 0, "error", "modem queue full"));
			job_remove(g, j);
		}
	}
}

void gateway_kick(Gateway *g)
{
	sd_event_source_set_enabled(g->dispatch.defer, SD_EVENT_ONESHOT);
	dispatch_schedule(g);
}

#define PICK_WAIT (-2)

/* Whether slot is a better pick than best: not the modem to avoid, healthy, less loaded. */
static bool better_pick(const ModemSlot *slot, const ModemSlot *best, const char *avoid)
{
	bool avoided = streq(avoid, slot->config->name),
	     best_avoided = streq(avoid, best->config->name);

	if (avoided != best_avoided)
		return !avoided;
	if (modems_degraded(slot) != modems_degraded(best))
		return !modems_degraded(slot);
	return slot->inflight < best->inflight;
}

/* A usable modem with room for a job: a healthy one before a degraded one (modems_degraded()),
 * then the least loaded; -1 when every usable one is busy; PICK_WAIT when only `avoid` (the
 * modem that just failed this delivery) is free while another usable modem is busy: better wait
 * a moment for that one than fail again on the same modem. */
static ssize_t pick_modem(Gateway *g, const char *avoid)
{
	ssize_t best = -1;
	bool other_usable = false;

	for (size_t i = 0; i < g->n_modems; i++) {
		ModemSlot *slot = &g->modems[i];
		bool avoided = streq(avoid, slot->config->name);

		if (!modems_usable(slot))
			continue;
		if (!avoided)
			other_usable = true;
		if (slot->inflight >= MODEM_INFLIGHT)
			continue;
		if (best < 0 || better_pick(slot, &g->modems[best], avoid))
			best = (ssize_t)i;
	}
	if (best >= 0 && other_usable && streq(avoid, g->modems[best].config->name))
		return PICK_WAIT;
	return best;
}

static int dispatch_one(const DueDelivery *d, void *userdata)
{
	Gateway *g = userdata;
	ssize_t m;
	Job *job;
	json_t *c;
	int r;

	LimitsVerdict verdict;
	const char *owner;

	if (job_find_delivery(g, d->alert_id, d->number))
		return 0;
	verdict = limits_sms(g, d);
	if (verdict == LIMITS_WAIT)
		return 0;
	/* What goes out in one message for a number goes out from one node: the number's. */
	owner = verdict == LIMITS_BUNDLE
	                ? limits_number_owner(g, d->number)
	                : members_sender(&g->members, d->alert_id, d->number, d->last_node, false);
	if (!owner || !streq(owner, g->config->node_name))
		return 0; /* another node's, or nobody's until a modem comes up */
	m = pick_modem(g, streq(d->last_node, g->config->node_name) ? d->last_modem : "");
	if (m == PICK_WAIT)
		return 0;
	if (m < 0)
		return -ENOSPC; /* every modem is busy: stop until one answers */

	job = calloc(1, sizeof(*job));
	if (!job)
		return -ENOMEM;
	job->id = ++g->dispatch.next_job;
	snprintf(job->alert_id, sizeof(job->alert_id), "%s", d->alert_id);
	snprintf(job->number, sizeof(job->number), "%s", d->number);
	job->modem = (size_t)m;
	job->attempts = d->attempts;
	if (d->ackable)
		r = ack_instruction(g, d->alert_id, d->text, &job->text);
	else
		r = (job->text = strdup(d->text)) ? 0 : -ENOMEM;
	if (r >= 0 && verdict == LIMITS_BUNDLE)
		r = limits_bundle_fill(g, job);
	if (r < 0) {
		job_free(job);
		return r;
	}
	for (size_t i = 0; i < MAX(job->n_bundle, 1u); i++) {
		c = change_pack("assign", "{s:s, s:s, s:s, s:s, s:I}", "id",
		                job->n_bundle ? job->bundle[i] : d->alert_id, "to", d->number,
		                "node", g->config->node_name, "modem", g->modems[m].config->name,
		                "at", (json_int_t)now_realtime_usec());
		if (publish_outbox_add(g, c, NULL) < 0) {
			job_free(job);
			return -ENOMEM;
		}
	}
	job->next = g->dispatch.jobs;
	g->dispatch.jobs = job;
	g->modems[m].inflight++;
	return 0;
}

static void gateway_dispatch(Gateway *g)
{
	size_t capacity = 0, inflight = 0;

	if (g->stopping || !cluster_settled(g))
		return;
	escalation_run(g);
	for (size_t i = 0; i < g->n_modems; i++)
		if (modems_usable(&g->modems[i])) {
			capacity += MODEM_INFLIGHT - MIN(g->modems[i].inflight, MODEM_INFLIGHT);
		}
	if (capacity == 0)
		return;
	for (Job *j = g->dispatch.jobs; j; j = j->next)
		inflight++;
	/* Deliveries already in flight come back from the query too, and so do those another
	 * node owns: ask for enough. */
	store_due_deliveries(g->store, now_realtime_usec(),
	                     (capacity + inflight) * members_count_eligible(&g->members, false) * 2,
	                     dispatch_one, g);
}

static int on_dispatch_defer(sd_event_source *s, void *userdata)
{
	selftest_pump(userdata); /* a self-test waiting for its modem goes before new work */
	gateway_dispatch(userdata);
	return 0;
}

static int expire_one(const char *id, void *userdata)
{
	Gateway *g = userdata;

	return publish_outbox_add(g,
	                          change_pack("expire", "{s:s, s:I}", "id", id, "at",
	                                      (json_int_t)now_realtime_usec()),
	                          NULL);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	Gateway *g = userdata;

	if (stall_active(g))
		return 0; /* decided from the store once it is in step again (gateway_kick()) */
	store_expired_alerts(g->store, now_realtime_usec(), EXPIRE_BATCH, expire_one, g);
	heartbeats_run(g);
	escalation_run(g);
	gateway_dispatch(g);
	dispatch_schedule(g);
	return 0;
}

/* One realtime timer for the earliest retry, expiry, escalation step or heartbeat deadline;
 * re-armed after every commit. */
void dispatch_schedule(Gateway *g)
{
	uint64_t due = 0, expiry = 0, step = 0, next = 0, now = now_realtime_usec(),
	         heartbeat = heartbeats_next_due(g);

	store_next_due(g->store, &due);
	store_next_expiry(g->store, &expiry);
	store_next_escalation(g->store, now, &step);
	/* Deliveries already due wait for a modem to come up or free up, and each of those
	 * events runs dispatch: only future retries need the timer. */
	if (due > now)
		next = due;
	if (expiry && (!next || expiry < next))
		next = expiry;
	if (step && (!next || step < next))
		next = step;
	if (heartbeat && (!next || heartbeat < next))
		next = heartbeat;
	if (!next) {
		sd_event_source_set_enabled(g->dispatch.timer, SD_EVENT_OFF);
		return;
	}
	sd_event_source_set_time(g->dispatch.timer, MAX(next, now));
	sd_event_source_set_enabled(g->dispatch.timer, SD_EVENT_ONESHOT);
}

/* The retention purge, in steps with a pause between them, so that a store with a million
 * finished alerts is emptied without the loop ever waiting long on it. What a step costs depends
 * on the disk, the store's size and the rows each alert has, so its size follows the time the
 * last one took (PURGE_STEP_USEC), and the pause is at least that time: the purge takes at most
 * half of the loop. */
static int on_purge(sd_event_source *s, uint64_t usec, void *userdata)
{
	Gateway *g = userdata;
	uint64_t now = now_realtime_usec(), next = PURGE_INTERVAL_USEC, t0, took;
	unsigned *step = &g->dispatch.purge_step;
	bool more = false;
	int r = 0;

	if (*step == 0)
		*step = PURGE_STEP_FIRST;
	if (!stall_active(g)) {
		t0 = now_monotonic_usec();
		r = store_purge(g->store, now - MIN(now, g->config->retention * USEC_PER_SEC),
		                *step, &more);
		took = now_monotonic_usec() - t0;
		if (took > PURGE_STEP_USEC && *step > PURGE_STEP_MIN)
			*step /= 2;
		else if (took < PURGE_STEP_USEC / 2 && more && *step < PURGE_STEP_MAX)
			*step *= 2;
		if (r > 0 && more)
			next = MAX(PURGE_PAUSE_USEC, took);
	}
	if (r > 0)
		g->dispatch.purged += (unsigned)r;
	if (g->dispatch.purged > 0 && next == PURGE_INTERVAL_USEC) {
		log_info("Purged %u final alert(s) older than the retention", g->dispatch.purged);
		g->dispatch.purged = 0;
	}
	sd_event_source_set_time_relative(s, next);
	sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	return 0;
}

int dispatch_start(Gateway *g)
{
	int r;

	r = sd_event_add_defer(g->event, &g->dispatch.defer, on_dispatch_defer, g);
	if (r < 0)
		return r;
	sd_event_source_set_enabled(g->dispatch.defer, SD_EVENT_OFF);
	r = sd_event_add_time(g->event, &g->dispatch.timer, CLOCK_REALTIME, 0, USEC_PER_MSEC,
	                      on_timer, g);
	if (r < 0)
		return r;
	sd_event_source_set_enabled(g->dispatch.timer, SD_EVENT_OFF);
	/* 1 ms accuracy: the pauses between the purge's steps are a few ms (sd-event may defer a
	 * timer by up to its accuracy). */
	r = sd_event_add_time_relative(g->event, &g->dispatch.purge_timer, CLOCK_MONOTONIC,
	                               60 * USEC_PER_SEC, USEC_PER_MSEC, on_purge, g);
	if (r < 0)
		return r;
	return 0;
}

void dispatch_free(Gateway *g)
{
	while (g->dispatch.jobs) {
		Job *j = g->dispatch.jobs;
		g->dispatch.jobs = j->next;
		job_free(j);
	}
	g->dispatch.defer = sd_event_source_disable_unref(g->dispatch.defer);
	g->dispatch.timer = sd_event_source_disable_unref(g->dispatch.timer);
	g->dispatch.purge_timer = sd_event_source_disable_unref(g->dispatch.purge_timer);
}
