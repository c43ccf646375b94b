/* gateway-limits: what one phone number gets — the per-person limits of [limits], and the one
 * message that carries several alerts (flood bundles, and what is over a limit).
 *
 * No number gets more than `sms` messages per window. What is over is never dropped: the
 * number's node (members_owner() of the number alone, computed alike on every node) holds its
 * due deliveries with a replicated "hold" change until the window has room again, and then sends
 * everything held for the number as one message ("3 critical alerts: ..."). A burst larger than
 * the room left goes out as one message at once, so that the last messages of a window are not
 * spent one alert each. The count is read from the replicated attempts plus the messages on
 * their way, so both nodes count alike; in a partition each half counts what it sees.
 *
 * Voice calls are limited the same way (`calls`), by gateway-voice.c with limits_call_room(). */
#include "gateway-internal.h"

#define BUNDLE_QUOTED_MAX  8
#define BUNDLE_MEMBERS_MAX 500

const char *limits_number_owner(Gateway *g, const char *number)
{
	return members_owner(&g->members, "bundle", number, "", false);
}

/* The messages on their way to number: this node's jobs (one message each, a bundle too) and
 * the deliveries sending on the other nodes (each counted as a message: never fewer). */
static int on_their_way(Gateway *g, const char *number, unsigned *ret)
{
	unsigned n = 0;
	int r;

	r = store_limit_sending(g->store, number, g->config->node_name, &n);
	if (r < 0)
		return r;
	for (Job *j = g->dispatch.jobs; j; j = j->next)
		if (streq(j->number, number))
			n++;
	*ret = n;
	return 0;
}

/* Whether this node published a hold of the delivery until `until` already (not applied yet). */
static bool hold_published(Gateway *g, const char *alert_id, const char *number, uint64_t until)
{
	for (size_t i = 0; i < ELEMENTSOF(g->dispatch.held); i++)
		if (streq(g->dispatch.held[i].alert_id, alert_id) &&
		    streq(g->dispatch.held[i].number, number) && g->dispatch.held[i].until >= until)
			return true;
	return false;
}

typedef struct HoldBuild {
	Gateway *g;
	const char *number;
	uint64_t until, now;
} HoldBuild;

static int hold_one(const BundleMember *m, void *userdata)
{
	HoldBuild *h = userdata;
	Gateway *g = h->g;
	size_t slot;
	int r;

	if (m->next_try_at >= h->until || hold_published(g, m->alert_id, h->number, h->until) ||
	    job_find_delivery(g, m->alert_id, h->number))
		return 0;
	r = publish_outbox_add(g,
	                       change_pack("hold", "{s:s, s:s, s:I, s:s, s:I}", "id", m->alert_id,
	                                   "to", h->number, "until", (json_int_t)h->until, "node",
	                                   g->config->node_name, "at", (json_int_t)h->now),
	                       NULL);
	if (r < 0)
		return r;
	slot = g->dispatch.held_next++ % ELEMENTSOF(g->dispatch.held);
	snprintf(g->dispatch.held[slot].alert_id, sizeof(g->dispatch.held[slot].alert_id), "%s",
	         m->alert_id);
	snprintf(g->dispatch.held[slot].number, sizeof(g->dispatch.held[slot].number), "%s",
	         h->number);
	g->dispatch.held[slot].until = h->until;
	return 0;
}

/* The number is at its limit: what waits for it is held until there is room (a failure is
 * logged, and looked at again on the next dispatch). */
static void hold_number(Gateway *g, const char *number, uint64_t until, uint64_t now)
{
	HoldBuild h = {.g = g, .number = number, .until = until, .now = now};
	uint64_t total = 0;

	store_bundle(g->store, number, now, BUNDLE_MEMBERS_MAX, hold_one, &h, &total);
}

LimitsVerdict limits_sms(Gateway *g, const DueDelivery *d)
{
	const RateLimit *l = &g->config->limit_sms;
	uint64_t now = now_realtime_usec(), window, room_at = 0, pending = 0;
	unsigned sent = 0, going = 0, room;
	const char *owner;

	if (l->count == 0)
		return d->bundle ? LIMITS_BUNDLE : LIMITS_ALONE;
	window = (uint64_t)l->window * USEC_PER_SEC;
	/* A store that cannot count does not hold alerts back: alerting beats silence. */
	if (store_limit_sent(g->store, d->number, now - MIN(now, window), l->count, window, &sent,
	                     &room_at) < 0 ||
	    on_their_way(g, d->number, &going) < 0 ||
	    store_bundle(g->store, d->number, now, 0, NULL, NULL, &pending) < 0)
		return d->bundle ? LIMITS_BUNDLE : LIMITS_ALONE;
	owner = limits_number_owner(g, d->number);
	if (sent >= l->count) {
		/* Full: held until the oldest message leaves the window. */
		if (owner && streq(owner, g->config->node_name))
			hold_number(g, d->number, MAX(room_at, now + USEC_PER_SEC), now);
		return LIMITS_WAIT;
	}
	if (sent + going >= l->count)
		return LIMITS_WAIT; /* full once those on their way are sent: decided when they are
		                     */
	room = l->count - sent - going;
	if (d->bundle || (pending > 1 && pending >= room))
		return LIMITS_BUNDLE;
	return LIMITS_ALONE;
}

int apply_hold(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
	const char *id = jstr(c, "id"), *to = jstr(c, "to");
	uint64_t until = ju64(c, "until");
	char at[RFC3339_MAX], detail[160];
	int r;

	r = store_delivery_hold(g->store, id, to, until);
	if (r <= 0)
		return r;
	snprintf(detail, sizeof(detail),
	         "%s had its %u SMS per %u s: grouped into one message at %s", to,
	         g->config->limit_sms.count, g->config->limit_sms.window,
	         format_rfc3339(until, at));
	return store_history_add(g->store, id, ju64(c, "at"), "held", jstr(c, "node"), detail);
}

/* ---- one message for several alerts ---- */

typedef struct BundleBuild {
	FILE *f;
	Job *job;
	AckableList ackable;
	size_t quoted, critical;
} BundleBuild;

static int bundle_add(const BundleMember *m, void *userdata)
{
	BundleBuild *b = userdata;
	char(*ids)[ID_HEX_LEN + 1];

	ids = realloc(b->job->bundle, (b->job->n_bundle + 1) * sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	b->job->bundle = ids;
	snprintf(ids[b->job->n_bundle++], ID_HEX_LEN + 1, "%s", m->alert_id);
	b->critical += m->critical;
	if (b->quoted < BUNDLE_QUOTED_MAX) {
		char q[BUNDLE_QUOTE_CHARS + 4], code[ACK_CODE_MAX + 1];

		reply_quote(m->text, q);
		fprintf(b->f, "%s%s", b->quoted ? " | " : " ", q);
		if (m->ackable) {
			ack_code_unique(&b->ackable, m->alert_id, false, code);
			fprintf(b->f, " (ACK %s)", code);
		}
		b->quoted++;
	}
	return 0;
}

int limits_bundle_fill(Gateway *g, Job *job)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	uint64_t total = 0, now = now_realtime_usec();
	BundleBuild b = {.job = job};
	int r;

	r = store_ackable(g->store, now, ackable_add, &b.ackable);
	if (r < 0) {
		ackable_list_done(&b.ackable);
		return r;
	}
	b.f = open_memstream(&text, &len);
	if (!b.f) {
		ackable_list_done(&b.ackable);
		return -ENOMEM;
	}
	r = store_bundle(g->store, job->number, now, BUNDLE_MEMBERS_MAX, bundle_add, &b, &total);
	if (fclose(b.f) != 0 && r >= 0)
		r = -ENOMEM;
	ackable_list_done(&b.ackable);
	if (r < 0)
		return r;
	if (job->n_bundle <= 1) {
		/* Alone after all: the job goes out as the alert's own message. */
		free(job->bundle);
		job->bundle = NULL;
		job->n_bundle = 0;
		return 0;
	}
	free(job->text);
	job->text = NULL;
	/* The count is fixed once the members are known: written last, in front. */
	if (asprintf(&job->text, "%zu %salerts:%s%s", job->n_bundle,
	             b.critical == job->n_bundle ? "critical " : "", text,
	             job->n_bundle > b.quoted ? " ..." : "") < 0)
		return -ENOMEM;
	snprintf(job->alert_id, sizeof(job->alert_id), "%s", job->bundle[0]);
	return (int)job->n_bundle;
}

/* ---- voice calls ---- */

bool limits_call_room(Gateway *g, const char *number, uint64_t *ret_room_at)
{
	const RateLimit *l = &g->config->limit_calls;
	uint64_t now = now_realtime_usec(), window, room_at = 0;
	unsigned calls = 0;

	*ret_room_at = 0;
	if (l->count == 0)
		return true;
	window = (uint64_t)l->window * USEC_PER_SEC;
	if (store_limit_calls(g->store, number, now - MIN(now, window), l->count, window, &calls,
	                      &room_at) < 0)
		return true; /* alerting beats silence */
	if (calls < l->count)
		return true;
	*ret_room_at = MAX(room_at, now + USEC_PER_SEC);
	return false;
}
