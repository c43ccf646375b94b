/* gateway-selftest: test SMS between the nodes' SIMs, so that a dead path shows before an alarm
 * needs it. */
#include "gateway-internal.h"

/* Every [selftest] interval, each modem of this node sends a short SMS to the SIM of each
 * modem of the other node(s) that has a number (`number =` in its section): the only numbers
 * a test SMS ever goes to, so no human gets one. The receiving modem's inbox replicates it like
 * any SMS; when it comes back here the path is proven. One that does not arrive within
 * [selftest] timeout marks the sending modem degraded with the reason, and publishes path_down,
 * so that a dead SIM or an expired prepaid card is found before an alarm needs it. */

static void selftest_arm_check(Gateway *g)
{
	uint64_t next = 0;

	for (SelfTest *t = g->selftest.tests; t; t = t->next)
		if (t->deadline && (!next || t->deadline < next))
			next = t->deadline;
	if (!next) {
		sd_event_source_set_enabled(g->selftest.check, SD_EVENT_OFF);
		return;
	}
	sd_event_source_set_time(g->selftest.check, next);
	sd_event_source_set_enabled(g->selftest.check, SD_EVENT_ONESHOT);
}

static void selftest_remove(Gateway *g, SelfTest *t)
{
	for (SelfTest **p = &g->selftest.tests; *p; p = &(*p)->next)
		if (*p == t) {
			*p = t->next;
			break;
		}
	free(t);
	selftest_arm_check(g);
}

static void path_set(Gateway *g, ModemSlot *slot, const char *problem)
{
	if (streq(slot->path_problem, problem ? problem : ""))
		return;
	snprintf(slot->path_problem, sizeof(slot->path_problem), "%s", problem ? problem : "");
	modems_self_health_changed(g);
}

static void selftest_failed(Gateway *g, SelfTest *t, const char *why)
{
	ModemSlot *slot = &g->modems[t->modem];
	char problem[sizeof(slot->path_problem)];

	snprintf(problem, sizeof(problem), "self-test SMS to %.32s/%.32s %.80s", t->to_node,
	         t->to_modem, why);
	log_ctx(LOG_WARNING,
	        &((LogContext){.modem = slot->config->name, .message_id = MESSAGE_ID_PATH_DOWN}),
	        "Path down: %s", problem);
	publish_event(g, "path_down",
	              json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "node", g->config->node_name,
	                        "modem", slot->config->name, "to_node", t->to_node, "to_modem",
	                        t->to_modem, "number", t->number, "reason", problem));
	publish_events(g);
	path_set(g, slot, problem);
	selftest_remove(g, t);
}

void selftest_arrived(Gateway *g, const InboxMessage *m)
{
	const char *token = strrchr(m->text, ' ');

	for (SelfTest *t = g->selftest.tests; token && t; t = t->next)
		if (streq(t->token, token + 1)) {
			ModemSlot *slot = &g->modems[t->modem];

			log_ctx(LOG_INFO, &((LogContext){.modem = slot->config->name}),
			        "Path self-test to %s/%s passed", t->to_node, t->to_modem);
			path_set(g, slot, NULL);
			if (t->job && !t->deadline) {
				/* Here before its modem said it was sent: the modem's job slot is
				 * freed when it does (selftest_sent()), which must still find the
				 * test. */
				t->arrived = true;
				return;
			}
			selftest_remove(g, t);
			return;
		}
}

/* Starts the self-tests waiting for their modem, on modems with nothing in flight. */
void selftest_pump(Gateway *g)
{
	for (SelfTest *t = g->selftest.tests, *next; t; t = next) {
		ModemSlot *slot = &g->modems[t->modem];
		char text[128];
		int r;

		next = t->next;
		if (t->job || g->stopping || !slot->modem || !modems_usable(slot) ||
		    slot->inflight >= MODEM_INFLIGHT)
			continue;
		snprintf(text, sizeof(text), SELFTEST_PREFIX "%s/%s to %s/%s %s",
		         g->config->node_name, slot->config->name, t->to_node, t->to_modem,
		         t->token);
		t->job = ++g->dispatch.next_job;
		r = modem_send(slot->modem, t->job, t->number, text);
		if (r < 0) {
			selftest_failed(g, t, "could not be handed to the modem");
			continue;
		}
		slot->inflight++;
	}
}

bool selftest_sent(Gateway *g, ModemSlot *slot, const ModemEvent *ev)
{
	for (SelfTest *t = g->selftest.tests; t; t = t->next) {
		if (t->job != ev->job)
			continue;
		if (slot->inflight > 0)
			slot->inflight--;
		sd_event_source_set_enabled(g->dispatch.defer, SD_EVENT_ONESHOT);
		if (t->arrived) {
			selftest_remove(g, t); /* passed already */
			return true;
		}
		if (ev->result < 0) {
			char why[160];

			snprintf(why, sizeof(why), "could not be sent: %.100s",
			         ev->error[0] ? ev->error : "send failed");
			selftest_failed(g, t, why);
		} else {
			t->deadline =
			        now_monotonic_usec() + g->config->selftest_timeout * USEC_PER_SEC;
			selftest_arm_check(g);
		}
		return true;
	}
	return false;
}

static int on_selftest_check(sd_event_source *s, uint64_t usec, void *userdata)
{
	Gateway *g = userdata;
	uint64_t now = now_monotonic_usec();
	char why[64];

	snprintf(why, sizeof(why), "did not arrive within %u s", g->config->selftest_timeout);
	for (SelfTest *t = g->selftest.tests, *next; t; t = next) {
		next = t->next;
		if (t->deadline && t->deadline <= now)
			selftest_failed(g, t, why);
	}
	selftest_arm_check(g);
	return 0;
}

static void selftest_add(Gateway *g, size_t modem, const MemberNode *n, json_t *target)
{
	SelfTest *t;
	char id[ID_HEX_LEN + 1];

	for (t = g->selftest.tests; t; t = t->next)
		if (t->modem == modem && streq(t->to_node, n->name) &&
		    streq(t->to_modem, jstr(target, "name")))
			return; /* the previous one is still under way */
	t = calloc(1, sizeof(*t));
	if (!t || id_new(id) < 0) {
		free(t);
		return;
	}
	snprintf(t->token, sizeof(t->token), "%.16s", id);
	t->modem = modem;
	snprintf(t->to_node, sizeof(t->to_node), "%s", n->name);
	snprintf(t->to_modem, sizeof(t->to_modem), "%s", jstr(target, "name"));
	snprintf(t->number, sizeof(t->number), "%s", jstr(target, "number"));
	t->next = g->selftest.tests;
	g->selftest.tests = t;
}

static int on_selftest_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	Gateway *g = userdata;

	sd_event_source_set_time_relative(s, g->config->selftest_interval * USEC_PER_SEC);
	sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	if (g->stopping || !cluster_settled(g))
		return 0;
	for (size_t i = 0; i < g->members.n; i++) {
		const MemberNode *n = &g->members.nodes[i];
		size_t j;
		json_t *target;

		if (n->self || !cluster_member_online(n))
			continue;
		json_array_foreach(n->modems, j, target)
		{
			const char *state = jstr(target, "state");

			/* A target that is down would fail our modem for the peer's fault. */
			if (!*jstr(target, "number") ||
			    (!streq(state, "ok") && !streq(state, "degraded")))
				continue;
			for (size_t m = 0; m < g->n_modems; m++)
				if (modems_usable(&g->modems[m]))
					selftest_add(g, m, n, target);
		}
	}
	selftest_pump(g);
	return 0;
}

int selftest_start(Gateway *g)
{
	unsigned first;
	int r;

	if (!replication_is_clustered(g->replication) || g->config->selftest_interval == 0)
		return 0;
	/* The first round soon after start (the peer's modems must be known), then each interval.
	 */
	first = MIN(g->config->selftest_interval, 300u);
	r = sd_event_add_time_relative(g->event, &g->selftest.timer, CLOCK_MONOTONIC,
	                               first * USEC_PER_SEC, USEC_PER_SEC, on_selftest_timer, g);
	if (r < 0)
		return r;
	r = sd_event_add_time(g->event, &g->selftest.check, CLOCK_MONOTONIC, 0, USEC_PER_MSEC,
	                      on_selftest_check, g);
	if (r < 0)
		return r;
	sd_event_source_set_enabled(g->selftest.check, SD_EVENT_OFF);
	return 0;
}

void selftest_free(Gateway *g)
{
	g->selftest.timer = sd_event_source_disable_unref(g->selftest.timer);
	g->selftest.check = sd_event_source_disable_unref(g->selftest.check);
	while (g->selftest.tests) {
		SelfTest *t = g->selftest.tests;
		g->selftest.tests = t->next;
		free(t);
	}
}
