/* gateway-apply: every delivered payload is applied, in the agreed order, exactly once.
 *
 * The replicated state machine holds only if each node applies the same sequence. A commit can
 * fail for reasons of this node alone: another process holds the database's lock (a backup, an
 * operator's sqlite3 shell), the disk is full, an I/O error. Skipping the payload would let the
 * replicas diverge silently, and confirming the next one would tell its origin that this node
 * holds changes it never stored (confirmations are cumulative). So a payload that fails stays
 * at the head of a queue, everything delivered after it waits behind it, and the head is tried
 * again with a backoff; while anything waits, this node confirms nothing new, dispatches
 * nothing and decides nothing. A lock that goes away is thus a delay, not a loss.
 *
 * A store that stays broken must not stall the cluster: after STALL_GIVE_UP_USEC the clients
 * waiting on this node are answered storage_error, and a clustered node leaves its CPG group
 * (replication_hold()). The other node then answers its own clients (the view changed) and
 * carries on alone; what this node had not applied is dropped, since every member of the
 * group delivered it and the others have it. Only payloads delivered locally (published while
 * out of the group, or in flight when it was left) exist nowhere else: those are kept and
 * retried for as long as it takes. Once the store takes writes again (store_probe()), the node
 * rejoins, and the state exchange that every join starts brings back what it missed. */
#include "gateway-internal.h"

/* Past this, nobody waits on the store any more: a lock held too long, or an error that no
 * wait cures (a full disk, an I/O error). */
static bool stall_hopeless(const Gateway *g, uint64_t now)
{
	return g->apply.stall_error != STORE_LOCKED ||
	       now - g->apply.stall_since >= STALL_GIVE_UP_USEC ||
	       g->apply.stalled_bytes >= STALL_BYTES_MAX;
}

static void stall_arm(Gateway *g, uint64_t usec)
{
	sd_event_source_set_time_relative(g->apply.stall_timer, usec);
	sd_event_source_set_enabled(g->apply.stall_timer, SD_EVENT_ONESHOT);
}

bool stall_active(const Gateway *g)
{
	return g->apply.stalled_head || g->apply.held;
}

static int stall_push(Gateway *g, uint32_t from_nodeid, unsigned flags, const void *data,
                      size_t len)
{
	Stalled *p = malloc(sizeof(*p) + len);

	if (!p)
		return -ENOMEM;
	*p = (Stalled){.from_nodeid = from_nodeid,
	               .flags = flags,
	               .since = now_monotonic_usec(),
	               .len = len};
	memcpy(p->data, data, len);
	if (g->apply.stalled_tail)
		g->apply.stalled_tail->next = p;
	else
		g->apply.stalled_head = p;
	g->apply.stalled_tail = p;
	g->apply.n_stalled++;
	g->apply.stalled_bytes += len;
	return 0;
}

static void stall_pop(Gateway *g)
{
	Stalled *p = g->apply.stalled_head;

	g->apply.stalled_head = p->next;
	if (!g->apply.stalled_head)
		g->apply.stalled_tail = NULL;
	g->apply.n_stalled--;
	g->apply.stalled_bytes -= p->len;
	free(p);
}

/* The batch of clients waiting on our payload p, taken off the list; NULL when none waits. */
static PendingBatch *stalled_batch_take(Gateway *g, const Stalled *p)
{
	_cleanup_(json_decrefp) json_t *payload = json_loadb(p->data, p->len, 0, NULL);
	uint64_t seq = ju64(payload, "seq");
	PendingBatch *prev = NULL;

	if (!payload || p->from_nodeid != g->nodeid ||
	    !streq(jstr(payload, "node"), g->config->node_name) || seq == 0)
		return NULL;
	for (PendingBatch *b = g->publish.batches_head; b; prev = b, b = b->next) {
		if (b->seq != seq)
			continue;
		if (prev)
			prev->next = b->next;
		else
			g->publish.batches_head = b->next;
		if (g->publish.batches_tail == b)
			g->publish.batches_tail = prev;
		b->next = NULL;
		return b;
	}
	return NULL;
}

static void stall_give_up(Gateway *g, uint64_t now);

static void stall_begin(Gateway *g, int error)
{
	g->apply.stall_since = now_monotonic_usec();
	g->apply.stall_error = error;
	g->apply.stall_tries = 0;
	log_ctx_errno(LOG_ERR, error, &((LogContext){.message_id = MESSAGE_ID_STORE_STALLED}),
	              "The store cannot commit (%m): applying nothing further until it can; "
	              "retrying, and leaving the cluster group after %llu s",
	              (unsigned long long)(STALL_GIVE_UP_USEC / USEC_PER_SEC));
	sd_notifyf(0, "STATUS=The store cannot commit: %s; retrying", stall_reason(g));
	modems_self_health_changed(g);          /* the peer takes over our deliveries and pages */
	stall_give_up(g, g->apply.stall_since); /* answers at once unless it is a lock */
	stall_arm(g, STALL_RETRY_MIN_USEC);
}

static void stall_end(Gateway *g)
{
	uint64_t took = now_monotonic_usec() - g->apply.stall_since;

	log_ctx(LOG_NOTICE, &((LogContext){.message_id = MESSAGE_ID_STORE_RESUMED}),
	        "The store commits again after %.1f s and %u retries: applying in order",
	        (double)took / USEC_PER_SEC, g->apply.stall_tries);
	sd_notify(0, "STATUS=Serving");
	g->apply.stall_since = 0;
	g->apply.stall_error = 0;
	g->apply.stall_tries = 0;
	sd_event_source_set_enabled(g->apply.stall_timer, SD_EVENT_OFF);
	modems_self_health_changed(g);
	gateway_kick(g);
}

/* The store has failed for too long: nobody waits on it any more. */
static void stall_give_up(Gateway *g, uint64_t now)
{
	bool leave = replication_is_clustered(g->replication) &&
	             replication_is_connected(g->replication) && !g->apply.held;

	for (Stalled *p = g->apply.stalled_head; p; p = p->next) {
		PendingBatch *b;

		if (p->answered ||
		    (g->apply.stall_error == STORE_LOCKED && now - p->since < STALL_GIVE_UP_USEC))
			continue;
		p->answered = true;
		b = stalled_batch_take(g, p);
		if (b)
			publish_answer_batch(g, b, g->apply.stall_error);
	}
	if (!leave || (now - g->apply.stall_since < STALL_GIVE_UP_USEC &&
	               g->apply.stalled_bytes < STALL_BYTES_MAX))
		return;

	log_ctx_errno(LOG_CRIT, g->apply.stall_error,
	              &((LogContext){.message_id = MESSAGE_ID_STORE_STALLED}),
	              "The store has not committed for %.0f s (%m): leaving the cluster group "
	              "until it does; the other node carries on, and this one catches up when it "
	              "rejoins",
	              (double)(now - g->apply.stall_since) / USEC_PER_SEC);
	/* What the group delivered, every member has: this node gets it back from them. */
	for (Stalled **pp = &g->apply.stalled_head; *pp;) {
		Stalled *p = *pp;
		PendingBatch *b;

		if (p->flags & REPLICATION_DELIVERY_LOCAL) {
			pp = &p->next;
			continue;
		}
		b = p->answered ? NULL : stalled_batch_take(g, p);
		if (b)
			publish_answer_batch(g, b, g->apply.stall_error);
		*pp = p->next;
		g->apply.n_stalled--;
		g->apply.stalled_bytes -= p->len;
		free(p);
	}
	g->apply.stalled_tail = NULL;
	for (Stalled *p = g->apply.stalled_head; p; p = p->next)
		g->apply.stalled_tail = p;
	g->apply.held = true;
	replication_hold(g->replication, true);
	sd_notifyf(0, "STATUS=Out of the cluster: the store cannot commit (%s)",
	           strerror(-g->apply.stall_error));
}

static int on_stall_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	Gateway *g = userdata;
	uint64_t now = now_monotonic_usec();
	unsigned n = 0;
	int r = 0;

	/* The probe first: a store that still fails costs no attempt (and no log) per payload. */
	if (n == 0 && g->apply.stall_since)
		r = store_probe(g->store, now_realtime_usec());
	while (r >= 0 && g->apply.stalled_head && n < STALL_APPLY_PER_TURN) {
		Stalled *p = g->apply.stalled_head;

		r = apply_payload(g, p->from_nodeid, p->data, p->len);
		if (r < 0)
			break;
		stall_pop(g);
		n++;
	}
	if (r >= 0 && g->apply.stalled_head) {
		stall_arm(g, 0); /* more applied on the next turn: the loop gets its turn */
		return 0;
	}
	if (r >= 0 && g->apply.held) {
		log_notice("The store takes writes again: rejoining the cluster group");
		g->apply.held = false;
		replication_hold(g->replication, false);
	}
	if (r >= 0) {
		stall_end(g);
		return 0;
	}
	g->apply.stall_error = r;
	g->apply.stall_tries++;
	stall_give_up(g, now);
	stall_arm(g,
	          MIN(STALL_RETRY_MIN_USEC << MIN(g->apply.stall_tries, 8u), STALL_RETRY_MAX_USEC));
	return 0;
}

void apply_on_deliver(void *userdata, uint32_t from_nodeid, const void *data, size_t len)
{
	Gateway *g = userdata;
	unsigned flags = replication_delivery_flags(g->replication);
	int r;

	if (stall_active(g)) {
		r = stall_push(g, from_nodeid, flags, data, len);
		if (r < 0)
			goto fatal;
		if (!g->apply.held && g->apply.stalled_bytes >= STALL_BYTES_MAX)
			stall_give_up(g, now_monotonic_usec());
		return;
	}
	r = apply_payload(g, from_nodeid, data, len);
	if (r >= 0)
		return;
	r = stall_push(g, from_nodeid, flags, data, len) < 0 ? -ENOMEM : r;
	if (r == -ENOMEM)
		goto fatal;
	stall_begin(g, r);
	return;
fatal:
	/* A payload that can be neither applied nor kept would be a silent hole in the history. */
	log_error_errno(-ENOMEM, "Cannot keep a payload the store could not commit: %m; stopping");
	sd_event_exit(g->event, -ENOMEM);
}

bool stall_refuses(Gateway *g, const ServerPeer *peer)
{
	char detail[200];
	uint64_t now = now_monotonic_usec();

	if (!stall_active(g))
		return false;
	if (!g->apply.held && !stall_hopeless(g, now))
		return false; /* a lock that goes away is a delay: wait behind it */
	snprintf(detail, sizeof(detail),
	         "this node's store cannot commit (%s) for %.0f s; nothing was stored%s",
	         strerror(-g->apply.stall_error),
	         (double)(now - g->apply.stall_since) / USEC_PER_SEC,
	         replication_is_clustered(g->replication) ? ": submit to the other node" : "");
	reply_err(g, peer, "storage_error", detail);
	return true;
}

const char *stall_reason(const Gateway *g)
{
	if (!stall_active(g))
		return NULL;
	if (g->apply.stall_error == STORE_LOCKED)
		return "the database is locked by another process";
	return strerror(-g->apply.stall_error);
}

json_t *stall_json(Gateway *g)
{
	if (!stall_active(g))
		return json_pack("{s:b, s:I}", "ok", 1, "skipped_changes",
		                 (json_int_t)g->apply.changes_skipped);
	return json_pack("{s:b, s:s, s:f, s:I, s:b, s:I}", "ok", 0, "error", stall_reason(g),
	                 "failing_for",
	                 (double)(now_monotonic_usec() - g->apply.stall_since) / USEC_PER_SEC,
	                 "waiting", (json_int_t)g->apply.n_stalled, "out_of_cluster", g->apply.held,
	                 "skipped_changes", (json_int_t)g->apply.changes_skipped);
}

int apply_start(Gateway *g)
{
	int r = sd_event_add_time_relative(g->event, &g->apply.stall_timer, CLOCK_MONOTONIC,
	                                   STALL_RETRY_MIN_USEC, USEC_PER_MSEC, on_stall_timer, g);

	if (r < 0)
		return r;
	sd_event_source_set_enabled(g->apply.stall_timer, SD_EVENT_OFF);
	return 0;
}

void apply_stop(Gateway *g)
{
	while (g->apply.stalled_head)
		stall_pop(g);
	g->apply.stall_timer = sd_event_source_disable_unref(g->apply.stall_timer);
}

/* A field of a change or payload: "" and 0 when absent or of another type. */
const char *jstr(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

uint64_t ju64(json_t *o, const char *k)
{
	json_int_t v = json_integer_value(json_object_get(o, k));
	return v > 0 ? (uint64_t)v : 0;
}

/* Applies one delivered payload in one transaction. 0 when applied (or refused as
 * incompatible: cluster_payload_compatible() said why); <0 when the store could not commit it: then
 * nothing of it is stored, its side effects are forgotten and its clients still wait, for the
 * caller to try the same payload again (gateway-apply.c). */
int apply_payload(Gateway *g, uint32_t from_nodeid, const void *data, size_t len)
{
	_cleanup_(json_decrefp) json_t *payload = NULL;
	PendingBatch *batch = NULL;
	json_error_t err;
	json_t *changes, *c;
	MemberNode *sender;
	bool from_self;
	size_t i, skipped = 0;
	int r;

	payload = json_loadb(data, len, 0, &err);
	if (!cluster_payload_compatible(g, payload, from_nodeid, len, &err))
		return 0;
	from_self = from_nodeid == g->nodeid && streq(jstr(payload, "node"), g->config->node_name);
	if (from_self && g->publish.batches_head &&
	    g->publish.batches_head->seq == ju64(payload, "seq"))
		batch = g->publish.batches_head; /* taken off the list only once committed */
	sender = from_self ? NULL : members_get(&g->members, jstr(payload, "node"), false);
	if (sender && !sender->self)
		sender->last_seen = now_realtime_usec();

	changes = json_object_get(payload, "changes");
	r = store_begin(g->store);
	json_array_foreach(changes, i, c)
	{
		ChangeOrigin origin = {.pending = batch && i < batch->n ? batch->by_index[i] : NULL,
		                       .nodeid = from_nodeid,
		                       .self = from_self};
		const ChangeKind *kind;
		char why[200];

		if (r < 0)
			break;
		r = change_check(c, &kind, why, sizeof(why));
		if (r >= 0) {
			r = handlers_apply(g, kind, c, &origin);
			if (r == STORE_INVALID)
				snprintf(why, sizeof(why), "change '%s': refused by the store",
				         kind->name);
		}
		if (r == STORE_INVALID) {
			/* Malformed, or of a kind this build does not know: refused alike on every
			 * node, so skipping it keeps the replicas equal, while a retry would stall
			 * this node for nothing. */
			log_warning("Skipping a change from node '%s': %s", jstr(payload, "node"),
			            why);
			skipped++;
			r = 0;
		}
	}
	if (r >= 0)
		r = cluster_rejoin_save(g);
	r = store_end(g->store, r);

	if (r < 0) {
		/* Nothing of this payload is stored: forget its side effects; it is applied again
		 * later, whole, and its clients wait until then. */
		json_array_clear(g->publish.events);
		json_array_clear(g->tokens);
		json_array_clear(g->voice.checks);
		json_object_clear(g->check.digests_due);
		g->check.resync_wanted = false;
		escalation_forget(g);
		hooks_forget(g);
		for (Job *j = g->dispatch.jobs, *next; j; j = next) {
			next = j->next;
			if (j->assigned && j->text)
				j->assigned = false;
		}
		for (size_t k = 0; batch && k < batch->n; k++)
			if (batch->by_index[k])
				batch->by_index[k]->duplicate = false;
		return r;
	}
	g->apply.changes_skipped += skipped;
	if (batch) {
		g->publish.batches_head = batch->next;
		if (!g->publish.batches_head)
			g->publish.batches_tail = NULL;
		/* Committed here; "queued" once every other member has committed it too. */
		batch->n_waiting = cluster_view_others(g, batch->waiting);
		if (batch->n_waiting == 0)
			publish_answer_batch(g, batch, 0);
		else {
			batch->next = g->publish.awaiting;
			g->publish.awaiting = batch;
		}
	}
	/* Confirmed only now, and payloads are applied in order and never skipped: the sequence
	 * number confirmed covers exactly what this node has committed. */
	if (!from_self && json_is_true(json_object_get(payload, "confirm")))
		json_object_set_new(g->cluster.confirm_due, jstr(payload, "node"),
		                    json_integer((json_int_t)ju64(payload, "seq")));
	publish_events(g);
	modems_confirm_tokens(g);
	voice_run_checks(g);
	hooks_run(g);
	dispatch_start_assigned(g);
	check_after_commit(g);
	if (g->sync.chunk_back) {
		g->sync.chunk_back = false;
		cluster_sync_continue(g);
	}
	if (g->dispatch.wanted) {
		g->dispatch.wanted = false;
		sd_event_source_set_enabled(g->dispatch.defer, SD_EVENT_ONESHOT);
	}
	dispatch_schedule(g);
	return 0;
}
