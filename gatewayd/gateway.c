/* gateway: a replicated state machine over the store, fed by clients and modems.
 *
 * Nothing is applied where it is decided. A request or a modem result becomes a change (a small
 * JSON object carrying its own timestamp); the changes made during one loop turn are published
 * as one payload through the replication layer; when a payload comes back in agreed order it is
 * applied to the store in one transaction and committed (fsync'd) before anything is said about
 * it: the "queued" replies, the events, the jobs handed to modems. The loopback layer of solo
 * mode and the corosync layer of a cluster look the same from here, so one code path serves both,
 * and decisions that must agree cluster-wide (dedupe, the order of state changes) are taken while
 * applying, from data inside the changes, never from the local clock at apply time.
 *
 * Dispatch keeps no queue in memory: after each commit, and when the earliest retry or expiry
 * falls due (one realtime timer), it asks the store for the next due deliveries, keeps those this
 * node owns (members.h: computed alike on every node) and assigns each to the least loaded
 * healthy modem. Only the handful of jobs in flight live in memory. */
#include "gateway-internal.h"

static void gateway_schedule(Gateway *g);

/* ---- outbox: changes made this turn ---- */

int outbox_add(Gateway *g, json_t *change, Pending *pending)
{
	size_t i = json_array_size(g->outbox);

	if (!change) {
		free(pending);
		return -ENOMEM;
	}
	change_check_own(change);
	if (i >= g->outbox_pending_cap) {
		size_t cap = MAX(64u, g->outbox_pending_cap * 2);
		Pending **v = realloc(g->outbox_pending, cap * sizeof(Pending *));

		if (!v) {
			json_decref(change);
			free(pending);
			return -ENOMEM;
		}
		memset(v + g->outbox_pending_cap, 0, (cap - g->outbox_pending_cap) * sizeof(*v));
		g->outbox_pending = v;
		g->outbox_pending_cap = cap;
	}
	if (json_array_append_new(g->outbox, change) < 0) {
		free(pending);
		return -ENOMEM;
	}
	g->outbox_pending[i] = pending;
	return 0;
}

static void reply_pending_error(Gateway *g, Pending *p, const char *code, const char *detail)
{
	_cleanup_free_ char *reply = request_reply_error(code, detail);

	if (reply && p)
		server_reply(g->server, &p->peer, reply);
}

/* One payload: the envelope around changes already encoded, joined by commas. */
static char *payload_text(Gateway *g, bool waited, const char *changes)
{
	char *text = NULL;

	/* Node names are letters, digits, '-', '_' and '.' (config.c): nothing to escape. */
	if (asprintf(&text,
	             "{\"v\":%d,\"seq\":%llu,\"node\":\"%s\",\"confirm\":%s,\"changes\":[%s]}",
	             PROTOCOL_VERSION, (unsigned long long)g->next_seq, g->config->node_name,
	             waited ? "true" : "false", changes) < 0)
		return NULL;
	return text;
}

/* Publishes outbox changes [from, to) as one payload (with `extra`, the confirmations, at its
 * end); their clients wait in a batch for its commit. */
static int publish_range(Gateway *g, size_t from, size_t to, const char *joined, const char *extra)
{
	_cleanup_free_ char *changes = NULL, *text = NULL;
	PendingBatch *batch;
	bool waited = false;
	int r;

	for (size_t i = from; i < to; i++)
		waited |= g->outbox_pending[i] != NULL;
	if (asprintf(&changes, "%s%s%s", joined, *joined && *extra ? "," : "", extra) < 0)
		return -ENOMEM;
	text = payload_text(g, waited, changes);
	batch = calloc(1, sizeof(PendingBatch) + (to - from) * sizeof(Pending *));
	r = text && batch ? replication_publish(g->replication, text, strlen(text)) : -ENOMEM;
	if (r < 0) {
		free(batch);
		return r;
	}
	batch->seq = g->next_seq++;
	batch->n = to - from;
	for (size_t i = from; i < to; i++) {
		batch->by_index[i - from] = g->outbox_pending[i];
		g->outbox_pending[i] = NULL;
	}
	if (g->batches_tail)
		g->batches_tail->next = batch;
	else
		g->batches_head = batch;
	g->batches_tail = batch;
	return 0;
}

static int on_flush_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
	return 0; /* the post source (gateway_flush) runs after this and publishes what waits */
}

/* Puts confirmations that did not leave back, for the next turn. */
static void confirmations_restore(Gateway *g, json_t *confirms)
{
	size_t i;
	json_t *c;

	json_array_foreach(confirms, i, c)
	        json_object_set(g->confirm_due, jstr(c, "origin"), json_object_get(c, "seq"));
}

/* Runs after the other sources of a loop turn: whatever was decided this turn leaves in as few
 * payloads as fit the replication layer (REPLICATION_PAYLOAD_MAX, JSON escaping included), so a
 * burst of requests costs one message and one commit, and a burst of long texts a few. A change
 * that cannot be published is never dropped silently: its client is answered storage_error, and
 * a change no client waits for (a send result, a received SMS) stays for a later turn. */
static int gateway_flush(sd_event_source *s, void *userdata)
{
	Gateway *g = userdata;
	size_t n = json_array_size(g->outbox), from = 0;
	_cleanup_(json_decrefp) json_t *confirms = NULL, *keep = NULL;
	_cleanup_free_ char *extra = NULL;
	bool extra_sent = false;
	char **texts;
	int r = 0;

	if (n == 0 || (g->syncing && !g->stopping)) {
		publish_confirmations(g);
		return 0;
	}
	/* The confirmations ride in the last payload: one message less per turn on a busy pair. */
	confirms = confirmations_take(g);
	extra = confirms ? json_dumps(confirms, JSON_COMPACT) : strdup("[]");
	texts = calloc(n, sizeof(char *));
	keep = json_array();
	if (!extra || !texts || !keep) {
		free(texts);
		if (confirms)
			confirmations_restore(g, confirms);
		log_error("Out of memory publishing %zu change(s): trying again", n);
		sd_event_source_set_time_relative(g->flush_retry, 10 * USEC_PER_MSEC);
		sd_event_source_set_enabled(g->flush_retry, SD_EVENT_ONESHOT);
		return 0;
	}
	extra[strlen(extra) - 1] = 0; /* the array's items, without its brackets */
	memmove(extra, extra + 1, strlen(extra));

	for (size_t i = 0; i < n && r >= 0; i++)
		if (!(texts[i] = json_dumps(json_array_get(g->outbox, i), JSON_COMPACT)))
			r = -ENOMEM;
	while (r >= 0 && from < n) {
		_cleanup_free_ char *joined = NULL;
		size_t end = from, used = 0, at = 0;
		bool with_extra;

		while (end < n &&
		       (end == from || used + strlen(texts[end]) + 1 <= PAYLOAD_CHANGES_MAX))
			used += strlen(texts[end++]) + 1;
		if (used > PAYLOAD_CHANGES_MAX) {
			r = -EMSGSIZE; /* one change alone: it can never be replicated */
			break;
		}
		joined = malloc(used + 1);
		if (!joined) {
			r = -ENOMEM;
			break;
		}
		for (size_t k = from; k < end; k++)
			at += (size_t)sprintf(joined + at, "%s%s", k > from ? "," : "", texts[k]);
		joined[at] = 0;
		with_extra =
		        end == n && extra[0] && used + strlen(extra) + 1 <= PAYLOAD_CHANGES_MAX;
		r = publish_range(g, from, end, joined, with_extra ? extra : "");
		if (r < 0)
			break;
		extra_sent |= with_extra;
		from = end;
	}
	if (r < 0) {
		/* What could not be published: clients are told, the rest tries again. */
		log_error_errno(r, "Cannot publish %zu change(s): %m", n - from);
		for (size_t i = from; i < n; i++) {
			Pending *p = g->outbox_pending[i];

			if (p) {
				reply_pending_error(g, p, "storage_error",
				                    r == -EMSGSIZE
				                            ? "the change is larger than the "
				                              "cluster carries; nothing was stored"
				                            : "the change could not be replicated "
				                              "now; nothing was stored");
				free(p);
				continue;
			}
			if (r == -EMSGSIZE && i == from) {
				log_full_errno(
				        LOG_CRIT, 0,
				        "A change of %zu bytes that no client waits for exceeds "
				        "what "
				        "the cluster carries: stopping rather than dropping it",
				        strlen(texts[i]));
				sd_event_exit(g->event, -EMSGSIZE);
			}
			json_array_append(keep, json_array_get(g->outbox, i));
		}
	}
	for (size_t i = 0; i < n; i++)
		free(texts[i]);
	free(texts);
	if (confirms && !extra_sent) {
		confirmations_restore(g, confirms);
		if (r >= 0)
			publish_confirmations(g);
	}
	memset(g->outbox_pending, 0, n * sizeof(Pending *));
	json_array_clear(g->outbox);
	if (json_array_size(keep) > 0) {
		json_array_extend(g->outbox, keep);
		sd_event_source_set_time_relative(g->flush_retry, 10 * USEC_PER_MSEC);
		sd_event_source_set_enabled(g->flush_retry, SD_EVENT_ONESHOT);
	}
	return 0;
}

/* ---- events ---- */

void event_add(Gateway *g, const char *topic, json_t *object)
{
	if (!object)
		return;
	json_array_append_new(g->events, json_pack("[s, o]", topic, object));
}

void events_publish(Gateway *g)
{
	size_t i;
	json_t *e;

	json_array_foreach(g->events, i, e)
	{
		_cleanup_free_ char *text =
		        json_dumps(json_array_get(e, 1), JSON_COMPACT | JSON_SORT_KEYS);

		/* No server: a Gateway that a unit test drives without sockets. */
		if (text && g->server)
			server_publish(g->server, json_string_value(json_array_get(e, 0)), text);
	}
	json_array_clear(g->events);
}

/* ---- jobs ---- */

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
	for (Job *j = g->jobs; j; j = j->next)
		if (streq(j->number, number) && job_covers(j, alert_id))
			return j;
	return NULL;
}

/* Leaves a delivery out of a summary job (handled meanwhile); false when none is left. */
static bool job_uncover(Job *j, const char *alert_id)
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

static Job *job_find(Gateway *g, uint64_t id)
{
	for (Job *j = g->jobs; j; j = j->next)
		if (j->id == id)
			return j;
	return NULL;
}

static void job_remove(Gateway *g, Job *job)
{
	for (Job **p = &g->jobs; *p; p = &(*p)->next)
		if (*p == job) {
			*p = job->next;
			break;
		}
	if (job->modem < g->n_modems && g->modems[job->modem].inflight > 0)
		g->modems[job->modem].inflight--;
	job_free(job);
}

/* One result change per delivery the job carried (one, or each of a summary's). */
static int job_results(Gateway *g, Job *job, json_t *result)
{
	int r = 0;

	if (!result)
		return -ENOMEM;
	for (size_t i = 0; i < MAX(job->n_bundle, 1u) && r >= 0; i++) {
		json_t *c = json_deep_copy(result);

		if (c && job->n_bundle > 0)
			json_object_set_new(c, "id", json_string(job->bundle[i]));
		r = outbox_add(g, c, NULL);
	}
	json_decref(result);
	return r;
}

/* ---- applying changes ---- */

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

static int string_vector(json_t *array, const char ***ret, size_t *ret_n)
{
	size_t n = json_array_size(array), i;
	const char **v = calloc(n + 1, sizeof(char *));
	json_t *item;

	if (!v)
		return -ENOMEM;
	json_array_foreach(array, i, item) v[i] = json_string_value(item);
	*ret = v;
	*ret_n = n;
	return 0;
}

int apply_submit(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
	char first_id[ID_HEX_LEN + 1];
	_cleanup_free_ const char **to = NULL, **copy = NULL;
	NewAlert a = {
	        .id = jstr(c, "id"),
	        .key = jstr(c, "key"),
	        .text = jstr(c, "text"),
	        .source = json_string_value(json_object_get(c, "source")),
	        .node = jstr(c, "node"),
	        .critical = json_is_true(json_object_get(c, "critical")),
	        .accepted_at = ju64(c, "at"),
	};
	int r;

	a.expires_at = a.accepted_at + ju64(c, "ttl") * USEC_PER_SEC;
	if (json_is_true(json_object_get(c, "escalate")))
		a.esc_next_at = escalation_next_at(g, 0, a.accepted_at);
	a.bundle_threshold = g->config->bundle_threshold;
	a.bundle_window = (uint64_t)g->config->bundle_window * USEC_PER_SEC;
	r = store_dedupe_find(g->store, a.key, a.accepted_at,
	                      g->config->dedupe_window * USEC_PER_SEC, first_id);
	if (r < 0)
		return r;
	if (r > 0) {
		char detail[160];

		utf8_snprintf(detail, sizeof(detail), "from %s", a.source ? a.source : "?");
		r = store_history_add(g->store, first_id, a.accepted_at, "duplicate", a.node,
		                      detail);
		if (r < 0)
			return r;
		if (origin->pending) {
			origin->pending->duplicate = true;
			snprintf(origin->pending->first_id, sizeof(origin->pending->first_id), "%s",
			         first_id);
		}
		log_ctx(LOG_INFO, &((LogContext){.alert_id = first_id}),
		        "Duplicate of key '%s' from %s dropped", a.key, a.source ? a.source : "?");
		return 0;
	}
	if (string_vector(json_object_get(c, "to"), (const char ***)&to, &a.n_to) < 0 ||
	    string_vector(json_object_get(c, "copy"), (const char ***)&copy, &a.n_copy) < 0)
		return -ENOMEM;
	a.to = to;
	a.copy = copy;
	r = store_alert_insert(g->store, &a);
	if (r < 0)
		return r;
	g->dispatch_wanted = true;
	event_add(g, "queued",
	          json_pack("{s:s, s:O, s:O, s:s, s:s?, s:s, s:s}", "id", a.id, "to",
	                    json_object_get(c, "to"), "copy", json_object_get(c, "copy"),
	                    "priority", a.critical ? "critical" : "normal", "source", a.source,
	                    "node", a.node, "text", a.text));
	log_ctx(LOG_INFO, &((LogContext){.alert_id = a.id, .message_id = MESSAGE_ID_ALERT_QUEUED}),
	        "Queued for %zu recipient(s) from %s", a.n_to + a.n_copy,
	        a.source ? a.source : "?");
	for (size_t i = 0; a.critical && i < a.n_to; i++)
		voice_check_later(g, a.id, a.to[i]);
	return 0;
}

int apply_assign(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
	const char *id = jstr(c, "id"), *to = jstr(c, "to"), *node = jstr(c, "node");
	DeliveryChange change;
	Job *job;
	int r;

	r = store_delivery_assign(g->store, id, to, node, jstr(c, "modem"), ju64(c, "at"), &change);
	if (r < 0)
		return r;
	if (!streq(node, g->config->node_name))
		return 0;
	job = job_find_delivery(g, id, to);
	if (!job)
		return 0;
	if (r == 0 && job->n_bundle > 0 && job_uncover(job, id))
		return 0; /* the summary goes out for the others */
	if (r == 0) {
		/* Expired or handled meanwhile: the job is moot. */
		job_remove(g, job);
		g->dispatch_wanted = true;
		return 0;
	}
	job->assigned = true; /* handed to the modem after the commit */
	return 0;
}

int apply_result(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
	const char *id = jstr(c, "id"), *to = jstr(c, "to");
	SendResult res = {
	        .node = jstr(c, "node"),
	        .modem = jstr(c, "modem"),
	        .at = ju64(c, "at"),
	        .ok = json_is_true(json_object_get(c, "ok")),
	        .permanent = json_is_true(json_object_get(c, "permanent")),
	        .error = json_string_value(json_object_get(c, "error")),
	        .message_ref = json_object_get(c, "ref") ? (int)ju64(c, "ref") : -1,
	        .retry_min =
	                json_is_true(json_object_get(c, "retry_now")) ? 0 : g->config->retry_min,
	        .retry_max = g->config->retry_max,
	        .max_permanent_failures = g->config->max_permanent_failures,
	};
	LogContext ctx = {.alert_id = id, .modem = res.modem};
	DeliveryChange change;
	int r;

	r = store_delivery_result(g->store, id, to, &res, &change);
	if (r <= 0)
		return r;
	g->dispatch_wanted = true;
	if (change.new_state == DELIVERY_SENT) {
		log_ctx(LOG_INFO, log_ctx_id(&ctx, MESSAGE_ID_SENT), "Sent to %s", to);
		event_add(g, "sent",
		          json_pack("{s:s, s:s, s:s, s:s, s:I}", "id", id, "to", to, "node",
		                    res.node, "modem", res.modem, "at",
		                    (json_int_t)(res.at / USEC_PER_MSEC)));
	} else if (change.new_state == DELIVERY_FAILED) {
		log_ctx(LOG_WARNING, log_ctx_id(&ctx, MESSAGE_ID_FAILED),
		        "Failed for good to %s: %s", to, res.error ? res.error : "?");
		event_add(g, "failed",
		          json_pack("{s:s, s:s, s:s, s:s, s:s?}", "id", id, "to", to, "node",
		                    res.node, "modem", res.modem, "error", res.error));
	} else
		log_ctx(LOG_NOTICE, log_ctx_id(&ctx, MESSAGE_ID_SEND_FAILED),
		        "Send to %s failed (%s), retrying in %llu s", to,
		        res.error ? res.error : "?",
		        (unsigned long long)((change.next_try_at - res.at) / USEC_PER_SEC));
	if (!res.ok)
		voice_check_later(g, id, to);
	return 0;
}

int apply_expire(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
	const char *id = jstr(c, "id");
	int r;

	r = store_alert_expire(g->store, id, ju64(c, "at"));
	if (r <= 0)
		return r;
	log_ctx(LOG_WARNING, &((LogContext){.alert_id = id, .message_id = MESSAGE_ID_EXPIRED}),
	        "Expired: its time to live ran out before %d delivery(ies) went out", r);
	event_add(g, "expired", json_pack("{s:s, s:i}", "id", id, "deliveries", r));
	return 0;
}

int apply_ack(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
	const char *id = jstr(c, "id");
	int r;

	r = store_alert_ack(g->store, id, jstr(c, "by"), jstr(c, "via"), ju64(c, "at"));
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (r > 0) {
		char at[RFC3339_MAX];

		voice_drop_alert(g, id);
		log_ctx(LOG_INFO,
		        &((LogContext){.alert_id = id, .message_id = MESSAGE_ID_ACKNOWLEDGED}),
		        "Acknowledged by %s via %s", jstr(c, "by"), jstr(c, "via"));
		r = ack_confirm(g, id, jstr(c, "by"), jstr(c, "node"), ju64(c, "at"));
		if (r < 0)
			return r;
		event_add(g, "acknowledged",
		          json_pack("{s:s, s:s, s:s, s:s}", "id", id, "by", jstr(c, "by"), "via",
		                    jstr(c, "via"), "at", format_rfc3339(ju64(c, "at"), at)));
	}
	return 0;
}

ModemSlot *slot_by_name(Gateway *g, const char *name)
{
	for (size_t i = 0; i < g->n_modems; i++)
		if (streq(g->modems[i].config->name, name))
			return &g->modems[i];
	return NULL;
}

/* This node's modem may now delete the message behind token from its SIM. */
void token_confirm_later(Gateway *g, json_t *c)
{
	if (streq(jstr(c, "node"), g->config->node_name) && ju64(c, "token"))
		json_array_append_new(g->tokens, json_pack("[s, I]", jstr(c, "modem"),
		                                           (json_int_t)ju64(c, "token")));
}

static void confirm_tokens(Gateway *g)
{
	size_t i;
	json_t *t;

	json_array_foreach(g->tokens, i, t)
	{
		ModemSlot *slot = slot_by_name(g, json_string_value(json_array_get(t, 0)));

		if (slot)
			modem_sms_stored(slot->modem,
			                 (uint64_t)json_integer_value(json_array_get(t, 1)));
	}
	json_array_clear(g->tokens);
}

int apply_sms_in(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
	char at[RFC3339_MAX];
	InboxMessage m = {
	        .key = jstr(c, "key"),
	        .node = jstr(c, "node"),
	        .modem = jstr(c, "modem"),
	        .sender = jstr(c, "from"),
	        .text = jstr(c, "text"),
	        .parts = (unsigned)ju64(c, "parts"),
	        .smsc_at = ju64(c, "smsc_at"),
	        .received_at = ju64(c, "at"),
	};
	int r;

	if (strncmp(m.text, SELFTEST_PREFIX, strlen(SELFTEST_PREFIX)) == 0) {
		/* A path self-test arrived: not a message for anyone's inbox. */
		token_confirm_later(g, c);
		selftest_arrived(g, &m);
		return 0;
	}
	r = store_inbox_insert(g->store, &m);
	if (r < 0)
		return r;
	token_confirm_later(g, c);
	if (r == 0)
		return 0; /* read again after a reconnect: stored already */
	/* What people write stays out of the journal but at debug level. */
	log_ctx(LOG_INFO, &((LogContext){.modem = m.modem}), "SMS from %s (%zu bytes)", m.sender,
	        strlen(m.text));
	log_ctx(LOG_DEBUG, &((LogContext){.modem = m.modem}), "SMS from %s: %s", m.sender, m.text);
	event_add(g, "sms_received",
	          json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:s}", "key", m.key, "node", m.node,
	                    "modem", m.modem, "from", m.sender, "text", m.text, "parts",
	                    (int)m.parts, "received_at", format_rfc3339(m.received_at, at)));
	return oncall_sms_received(g, &m);
}

int apply_report(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
	char id[ID_HEX_LEN + 1] = "", number[20] = "";
	DeliveryReport rep = {
	        .node = jstr(c, "node"),
	        .modem = jstr(c, "modem"),
	        .message_ref = (int)ju64(c, "ref"),
	        .delivered = json_is_true(json_object_get(c, "delivered")),
	        .status = jstr(c, "status"),
	        .at = ju64(c, "at"),
	};
	int r;

	r = store_delivery_report(g->store, &rep, id, number);
	if (r < 0)
		return r;
	token_confirm_later(g, c);
	if (r > 0) {
		log_ctx(LOG_INFO, &((LogContext){.alert_id = id, .modem = rep.modem}),
		        "Delivered to %s's handset", number);
		event_add(g, "delivered",
		          json_pack("{s:s, s:s, s:s, s:s}", "id", id, "to", number, "node",
		                    rep.node, "modem", rep.modem));
	}
	return 0;
}

void answer_batch(Gateway *g, PendingBatch *batch, int commit_result)
{
	for (size_t i = 0; batch && i < batch->n; i++) {
		Pending *p = batch->by_index[i];
		_cleanup_(json_decrefp) json_t *reply = NULL;
		_cleanup_free_ char *text = NULL;

		if (!p)
			continue;
		if (commit_result < 0) {
			reply_pending_error(
			        g, p, "storage_error",
			        commit_result == -ENOSPC ? "the disk is full; nothing was stored"
			        : commit_result == -EBUSY
			                ? "the database is locked by another process; "
			                  "nothing was stored"
			                : "the store could not commit; nothing was stored");
		} else {
			if (p->kind == PENDING_SEND)
				reply = json_pack("{s:b, s:s, s:s}", "ok", 1, "id",
				                  p->duplicate ? p->first_id : p->id, "status",
				                  p->duplicate ? "duplicate" : "queued");
			else if (p->kind == PENDING_OVERRIDE)
				reply = oncall_override_reply(p);
			else
				reply = json_pack("{s:b, s:s, s:b}", "ok", 1, "id", p->id,
				                  "acknowledged", 1);
			text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
			if (text)
				server_reply(g->server, &p->peer, text);
		}
		free(p);
	}
	free(batch);
}

static void start_assigned_jobs(Gateway *g)
{
	for (Job *j = g->jobs, *next; j; j = next) {
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
			            json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:b, s:b, s:s}", "t",
			                      "result", "id", j->alert_id, "to", j->number, "node",
			                      g->config->node_name, "modem", slot->config->name,
			                      "at", (json_int_t)now_realtime_usec(), "ok", 0,
			                      "permanent", 0, "error", "modem queue full"));
			job_remove(g, j);
		}
	}
}

/* Applies one delivered payload in one transaction. 0 when applied (or refused as
 * incompatible: payload_compatible() said why); <0 when the store could not commit it: then
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
	if (!payload_compatible(g, payload, from_nodeid, len, &err))
		return 0;
	from_self = from_nodeid == g->nodeid && streq(jstr(payload, "node"), g->config->node_name);
	if (from_self && g->batches_head && g->batches_head->seq == ju64(payload, "seq"))
		batch = g->batches_head; /* taken off the list only once committed */
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
			if (r == -EINVAL)
				snprintf(why, sizeof(why), "change '%s': refused by the store",
				         kind->name);
		}
		if (r == -EINVAL) {
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
		r = store_commit(g->store);
	else
		store_rollback(g->store);

	if (r < 0) {
		/* Nothing of this payload is stored: forget its side effects; it is applied again
		 * later, whole, and its clients wait until then. */
		json_array_clear(g->events);
		json_array_clear(g->tokens);
		json_array_clear(g->voice_checks);
		json_object_clear(g->digests_due);
		g->resync_wanted = false;
		escalation_forget(g);
		for (Job *j = g->jobs, *next; j; j = next) {
			next = j->next;
			if (j->assigned && j->text)
				j->assigned = false;
		}
		for (size_t k = 0; batch && k < batch->n; k++)
			if (batch->by_index[k])
				batch->by_index[k]->duplicate = false;
		return r;
	}
	g->changes_skipped += skipped;
	if (batch) {
		g->batches_head = batch->next;
		if (!g->batches_head)
			g->batches_tail = NULL;
		/* Committed here; "queued" once every other member has committed it too. */
		batch->n_waiting = view_others(g, batch->waiting);
		if (batch->n_waiting == 0)
			answer_batch(g, batch, 0);
		else {
			batch->next = g->awaiting;
			g->awaiting = batch;
		}
	}
	/* Confirmed only now, and payloads are applied in order and never skipped: the sequence
	 * number confirmed covers exactly what this node has committed. */
	if (!from_self && json_is_true(json_object_get(payload, "confirm")))
		json_object_set_new(g->confirm_due, jstr(payload, "node"),
		                    json_integer((json_int_t)ju64(payload, "seq")));
	events_publish(g);
	confirm_tokens(g);
	voice_run_checks(g);
	start_assigned_jobs(g);
	check_after_commit(g);
	if (g->sync_chunk_back) {
		g->sync_chunk_back = false;
		sync_continue(g);
	}
	if (g->dispatch_wanted) {
		g->dispatch_wanted = false;
		sd_event_source_set_enabled(g->dispatch_defer, SD_EVENT_ONESHOT);
	}
	gateway_schedule(g);
	return 0;
}

void gateway_kick(Gateway *g)
{
	sd_event_source_set_enabled(g->dispatch_defer, SD_EVENT_ONESHOT);
	gateway_schedule(g);
}

/* ---- dispatch ---- */

bool modem_usable(const ModemSlot *slot)
{
	return slot->status.state == MODEM_STATE_OK || slot->status.state == MODEM_STATE_DEGRADED;
}

#define PICK_WAIT (-2)

/* A healthy modem with room for a job (the least loaded); -1 when every healthy one is busy;
 * PICK_WAIT when only `avoid` (the modem that just failed this delivery) is free while another
 * healthy modem is busy: better wait a moment for that one than fail again on the same modem. */
static ssize_t pick_modem(Gateway *g, const char *avoid)
{
	ssize_t best = -1;
	bool other_usable = false;

	for (size_t i = 0; i < g->n_modems; i++) {
		ModemSlot *slot = &g->modems[i];
		bool avoided = streq(avoid, slot->config->name);

		if (!modem_usable(slot))
			continue;
		if (!avoided)
			other_usable = true;
		if (slot->inflight >= MODEM_INFLIGHT)
			continue;
		if (best < 0 || (streq(avoid, g->modems[best].config->name) && !avoided) ||
		    (slot->inflight < g->modems[best].inflight &&
		     avoided == streq(avoid, g->modems[best].config->name)))
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

	const char *owner;

	if (job_find_delivery(g, d->alert_id, d->number))
		return 0;
	/* A flood's held deliveries to one number go out together, from one node. */
	owner = members_owner(&g->members, d->bundle ? "bundle" : d->alert_id, d->number,
	                      d->bundle ? "" : d->last_node, false);
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
	job->id = ++g->next_job;
	snprintf(job->alert_id, sizeof(job->alert_id), "%s", d->alert_id);
	snprintf(job->number, sizeof(job->number), "%s", d->number);
	job->modem = (size_t)m;
	job->attempts = d->attempts;
	if (d->ackable)
		r = ack_instruction(g, d->alert_id, d->text, &job->text);
	else
		r = (job->text = strdup(d->text)) ? 0 : -ENOMEM;
	if (r >= 0 && d->bundle)
		r = bundle_fill(g, job);
	if (r < 0) {
		job_free(job);
		return r;
	}
	for (size_t i = 0; i < MAX(job->n_bundle, 1u); i++) {
		c = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "t", "assign", "id",
		              job->n_bundle ? job->bundle[i] : d->alert_id, "to", d->number, "node",
		              g->config->node_name, "modem", g->modems[m].config->name, "at",
		              (json_int_t)now_realtime_usec());
		if (outbox_add(g, c, NULL) < 0) {
			job_free(job);
			return -ENOMEM;
		}
	}
	job->next = g->jobs;
	g->jobs = job;
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
		if (modem_usable(&g->modems[i])) {
			capacity += MODEM_INFLIGHT - MIN(g->modems[i].inflight, MODEM_INFLIGHT);
		}
	if (capacity == 0)
		return;
	for (Job *j = g->jobs; j; j = j->next)
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

	return outbox_add(g,
	                  json_pack("{s:s, s:s, s:I}", "t", "expire", "id", id, "at",
	                            (json_int_t)now_realtime_usec()),
	                  NULL);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	Gateway *g = userdata;

	if (store_stalled(g))
		return 0; /* decided from the store once it is in step again (gateway_kick()) */
	store_expired_alerts(g->store, now_realtime_usec(), EXPIRE_BATCH, expire_one, g);
	escalation_run(g);
	gateway_dispatch(g);
	gateway_schedule(g);
	return 0;
}

/* One realtime timer for the earliest retry or expiry; re-armed after every commit. */
static void gateway_schedule(Gateway *g)
{
	uint64_t due = 0, expiry = 0, step = 0, next = 0, now = now_realtime_usec();

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
	if (!next) {
		sd_event_source_set_enabled(g->timer, SD_EVENT_OFF);
		return;
	}
	sd_event_source_set_time(g->timer, MAX(next, now));
	sd_event_source_set_enabled(g->timer, SD_EVENT_ONESHOT);
}

static int on_purge(sd_event_source *s, uint64_t usec, void *userdata)
{
	Gateway *g = userdata;
	uint64_t now = now_realtime_usec();
	int r;

	r = store_purge(g->store, now - MIN(now, g->config->retention * USEC_PER_SEC));
	if (r > 0)
		log_info("Purged %d final alert(s) older than the retention", r);
	sd_event_source_set_time_relative(s, PURGE_INTERVAL_USEC);
	sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	return 0;
}

/* ---- modems ---- */

/* This node's modems as the cluster sees them: recounted for ownership, and announced to the
 * other nodes whenever one changes state. */
void self_health_changed(Gateway *g)
{
	MemberNode *self = members_self(&g->members);
	unsigned usable = 0;

	for (size_t i = 0; i < g->n_modems; i++)
		usable += modem_usable(&g->modems[i]);
	if (self)
		self->usable_modems = usable;
	if (replication_is_clustered(g->replication) && !g->stopping)
		outbox_add(g,
		           json_pack("{s:s, s:s, s:o}", "t", "health", "node", g->config->node_name,
		                     "modems", local_modems_json(g)),
		           NULL);
}

static void modem_status_changed(Gateway *g, ModemSlot *slot, const ModemStatus *st)
{
	bool was = modem_usable(slot), is, changed = slot->status.state != st->state;

	slot->status = *st;
	is = modem_usable(slot);
	if (changed)
		self_health_changed(g);
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
			sd_event_source_set_enabled(g->dispatch_defer, SD_EVENT_ONESHOT);
		else if (g->dialer) {
			/* Maybe the last healthy modem: the open critical alerts may need a call.
			 */
			store_open_critical(g->store, consider_one, g);
			voice_run_checks(g);
		}
	}
}

/* A received SMS or status report becomes a replicated change; the modem deletes it from the
 * SIM only once that change is committed (see confirm_tokens()). */
static int modem_message(Gateway *g, ModemSlot *slot, const ModemEvent *ev)
{
	json_t *c;

	if (ev->type == MODEM_EVENT_SMS_RECEIVED)
		c = json_pack(
		        "{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:I, s:I, s:I}", "t", "sms_in", "key",
		        ev->key, "node", g->config->node_name, "modem", slot->config->name, "from",
		        ev->from, "text", ev->text ? ev->text : "", "parts", (int)ev->parts,
		        "smsc_at", (json_int_t)ev->smsc_time_usec, "at",
		        (json_int_t)(ev->received_usec ? ev->received_usec : now_realtime_usec()),
		        "token", (json_int_t)ev->token);
	else
		c = json_pack("{s:s, s:s, s:s, s:s, s:i, s:b, s:b, s:s, s:I, s:I}", "t", "report",
		              "key", ev->key, "node", g->config->node_name, "modem",
		              slot->config->name, "ref", ev->message_ref, "delivered",
		              ev->delivered, "permanent", ev->permanent, "status",
		              ev->delivery_status, "at",
		              (json_int_t)(ev->at_usec ? ev->at_usec : now_realtime_usec()),
		              "token", (json_int_t)ev->token);
	return outbox_add(g, c, NULL);
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
			if (&g->modems[i] != slot && modem_usable(&g->modems[i]))
				elsewhere = true;
	for (size_t i = 0; ev->result < 0 && i < g->members.n; i++)
		if (!g->members.nodes[i].self &&
		    members_eligible(&g->members, &g->members.nodes[i], false))
			elsewhere = true; /* the other node's modems take the next try */
	c = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:b, s:b, s:b, s:s?}", "t", "result", "id",
	              job->alert_id, "to", job->number, "node", g->config->node_name, "modem",
	              slot->config->name, "at", (json_int_t)now_realtime_usec(), "ok",
	              ev->result >= 0, "permanent", ev->permanent, "retry_now",
	              elsewhere || ev->result == -ESHUTDOWN || ev->result == -ENODEV ||
	                      ev->result == -ENOTCONN,
	              "error", ev->result >= 0 ? NULL : (ev->error[0] ? ev->error : "send failed"));
	if (c && ev->result >= 0 && ev->message_ref >= 0)
		json_object_set_new(c, "ref", json_integer(ev->message_ref));
	r = job_results(g, job, c);
	job_remove(g, job);
	sd_event_source_set_enabled(g->dispatch_defer, SD_EVENT_ONESHOT);
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
int modem_slot_start(Gateway *g, size_t i)
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

static int gateway_start_modems(Gateway *g)
{
	int r;

	g->modems = calloc(MAX(g->config->n_modems, 1u), sizeof(ModemSlot));
	if (!g->modems)
		return -ENOMEM;
	for (size_t i = 0; i < g->config->n_modems; i++) {
		g->modems[i].config = &g->config->modems[i];
		g->n_modems++;
		r = modem_slot_start(g, i);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- requests ---- */

static int resolve_recipients(Gateway *g, Request *req, uint64_t at, json_t **ret,
                              RequestError *err)
{
	_cleanup_(json_decrefp) json_t *to = json_array();

	if (!to)
		return -ENOMEM;
	for (size_t i = 0; i < req->n_to; i++) {
		const char *number = req->to[i];

		if (strncmp(number, "role:", 5) == 0) {
			const RoleConfig *role = config_find_role(g->config, number + 5);
			const ContactConfig *contact;

			if (!role) {
				err->code = "unknown_role";
				utf8_snprintf(err->detail, sizeof(err->detail),
				              "no role named '%s'", number + 5);
				return -EINVAL;
			}
			contact = oncall_on_duty(g, role, at, NULL);
			if (!contact)
				return -ENOENT;
			number = contact->number;
		}
		/* Two roles may resolve to the same person: one delivery. */
		bool dup = false;
		size_t j;
		json_t *v;
		json_array_foreach(to, j, v) dup |= streq(json_string_value(v), number);
		if (!dup && json_array_append_new(to, json_string(number)) < 0)
			return -ENOMEM;
	}
	*ret = TAKE_PTR(to);
	return 0;
}

static int compare_strings(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The default dedupe key: the sorted recipients and the text. */
static int default_key(Request *req, char ret[static 40])
{
	_cleanup_free_ char **sorted = calloc(req->n_to + req->n_copy + 1, sizeof(char *));
	_cleanup_free_ char *buf = NULL;
	size_t n = 0, len = strlen(req->text) + 1;
	char hash[33];
	FILE *f;

	if (!sorted)
		return -ENOMEM;
	for (size_t i = 0; i < req->n_to; i++)
		sorted[n++] = req->to[i];
	for (size_t i = 0; i < req->n_copy; i++)
		sorted[n++] = req->copy[i];
	qsort(sorted, n, sizeof(char *), compare_strings);
	f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s\n", sorted[i]);
	fprintf(f, "\n%s", req->text);
	fclose(f);
	hash128_hex(buf, len, hash);
	snprintf(ret, 40, "auto:%s", hash);
	return 0;
}

static Pending *pending_new(const ServerPeer *peer, PendingKind kind, const char *id)
{
	Pending *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->peer = *peer;
	p->kind = kind;
	snprintf(p->id, sizeof(p->id), "%s", id);
	return p;
}

static void reply_now(Gateway *g, const ServerPeer *peer, json_t *reply)
{
	_cleanup_free_ char *text = NULL;

	if (!reply) {
		text = request_reply_error("storage_error", "out of memory");
	} else {
		json_object_set_new(reply, "ok", json_true());
		text = json_dumps(reply, JSON_COMPACT);
		json_decref(reply);
	}
	if (text)
		server_reply(g->server, peer, text);
}

void reply_err(Gateway *g, const ServerPeer *peer, const char *code, const char *detail)
{
	_cleanup_free_ char *text = request_reply_error(code, detail);

	if (text)
		server_reply(g->server, peer, text);
}

static void handle_send(Gateway *g, const ServerPeer *peer, Request *req)
{
	RequestError err = {0};
	_cleanup_(json_decrefp) json_t *to = NULL, *copy = NULL;
	char id[ID_HEX_LEN + 1], key[40];
	uint64_t at = now_realtime_usec();
	unsigned parts = 0;
	Pending *p;
	json_t *c;
	int r;

	if (stall_refuses(g, peer))
		return;
	if (g->syncing && json_array_size(g->outbox) >= OUTBOX_HELD_MAX) {
		reply_err(g, peer, "queue_full",
		          "the cluster is exchanging state with a node that joined; try again in a "
		          "moment");
		return;
	}
	if (store_open_alerts(g->store) >= g->config->max_queue) {
		char detail[160];

		snprintf(detail, sizeof(detail),
		         "%u or more alerts are waiting ([submit] max_queue); try again later",
		         g->config->max_queue);
		reply_err(g, peer, "queue_full", detail);
		return;
	}
	if (req->critical) {
		/* Its SMS carry the acknowledgment line too (ack_instruction()). */
		_cleanup_free_ char *with_ack = NULL;

		r = asprintf(&with_ack, "%s\nReply ACK 000000000000 to acknowledge", req->text);
		r = r < 0 ? -ENOMEM : modem_count_parts(with_ack, &parts);
	} else
		r = modem_count_parts(req->text, &parts);
	if (r == -EINVAL) {
		reply_err(g, peer, "bad_request", "the text cannot be encoded as SMS");
		return;
	}
	if (r < 0 || parts > g->config->max_parts) {
		char detail[128];

		snprintf(detail, sizeof(detail), "the text needs %u SMS parts, more than %u", parts,
		         g->config->max_parts);
		reply_err(g, peer, "text_too_long", detail);
		return;
	}
	r = resolve_recipients(g, req, at, &to, &err);
	if (r == -EINVAL) {
		reply_err(g, peer, err.code, err.detail);
		return;
	}
	copy = json_array();
	for (size_t i = 0; copy && i < req->n_copy; i++)
		json_array_append_new(copy, json_string(req->copy[i]));
	if (r < 0 || !copy || id_random(id) < 0 || (!req->key && default_key(req, key) < 0)) {
		reply_err(g, peer, "storage_error", "out of resources");
		return;
	}

	p = pending_new(peer, PENDING_SEND, id);
	if (!p) {
		reply_err(g, peer, "storage_error", "out of memory");
		return;
	}
	c = json_pack("{s:s, s:s, s:s, s:s, s:b, s:I, s:O, s:O, s:s?, s:s, s:I}", "t", "submit",
	              "id", id, "key", req->key ? req->key : key, "text", req->text, "critical",
	              req->critical, "ttl", (json_int_t)req->ttl, "to", to, "copy", copy, "source",
	              req->source, "node", g->config->node_name, "at", (json_int_t)at);
	if (c && escalation_wanted(g, req))
		json_object_set_new(c, "escalate", json_true());
	if (outbox_add(g, c, p) < 0)
		reply_err(g, peer, "storage_error", "out of memory");
}

static void handle_ack(Gateway *g, const ServerPeer *peer, Request *req)
{
	Pending *p;
	int r;

	if (stall_refuses(g, peer))
		return;
	r = store_alert_exists(g->store, req->id);
	if (r <= 0) {
		reply_err(g, peer, r < 0 ? "storage_error" : "unknown_id",
		          r < 0 ? "the store could not be read" : "no alert with this id");
		return;
	}
	p = pending_new(peer, PENDING_ACK, req->id);
	if (!p) {
		reply_err(g, peer, "storage_error", "out of memory");
		return;
	}
	if (outbox_add(g,
	               json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "t", "ack", "id", req->id, "by",
	                         req->by ? req->by : "unknown", "via", "api", "node",
	                         g->config->node_name, "at", (json_int_t)now_realtime_usec()),
	               p) < 0)
		reply_err(g, peer, "storage_error", "out of memory");
}

/* This node's modems as status objects (also announced to the other nodes). */
json_t *local_modems_json(Gateway *g)
{
	json_t *modems = json_array();

	for (size_t i = 0; modems && i < g->n_modems; i++) {
		ModemSlot *slot = &g->modems[i];
		ModemCounters mc = {0};
		char last[RFC3339_MAX];

		store_modem_counters(g->store, g->config->node_name, slot->config->name, &mc);
		if (slot->status.last_send_usec > mc.last_sent_at)
			mc.last_sent_at = slot->status.last_send_usec;
		bool path_down = slot->path_problem[0] && slot->status.state == MODEM_STATE_OK;
		json_t *m = json_pack(
		        "{s:s, s:s, s:s, s:s, s:s?, s:i, s:s?, s:s?, s:s?, s:I, s:I, s:s?, s:s?, "
		        "s:s?, s:b, s:b, s:s?}",
		        "node", g->config->node_name, "name", slot->config->name, "device",
		        slot->status.device[0] ? slot->status.device : slot->config->device,
		        "state", path_down ? "degraded" : modem_state_to_string(slot->status.state),
		        "reason",
		        path_down                ? slot->path_problem
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
		json_array_append_new(modems, m);
	}
	return modems ? modems : json_array();
}

json_t *status_json(Gateway *g)
{
	json_t *modems = local_modems_json(g), *status;
	QueueCounts counts = {0};
	uint64_t voice_calls = 0;
	char last_outcome[16] = "";

	store_counts(g->store, &counts);
	store_voice_summary(g->store, &voice_calls, last_outcome);
	status = json_pack("{s:{s:s, s:I}, s:o, s:O, "
	                   "s:{s:I, s:I, s:I, s:I, s:I, s:I}, s:{s:i, s:n}}",
	                   "node", "name", g->config->node_name, "id", (json_int_t)g->nodeid,
	                   "cluster", cluster_json(g, modems), "modems", modems, "queue", "queued",
	                   (json_int_t)counts.queued, "sending", (json_int_t)counts.sending, "sent",
	                   (json_int_t)counts.sent, "delivered", (json_int_t)counts.delivered,
	                   "failed", (json_int_t)counts.failed, "expired",
	                   (json_int_t)counts.expired, "voice", "calls", (int)voice_calls,
	                   "last_outcome");
	json_decref(modems);
	if (status)
		json_object_set_new(status, "store", stall_json(g));
	if (status)
		json_object_set_new(status, "config", reload_status_json(g));
	if (status && last_outcome[0])
		json_object_set_new(json_object_get(status, "voice"), "last_outcome",
		                    json_string(last_outcome));
	return status;
}

static void on_request(void *userdata, const ServerPeer *peer, const char *data, size_t len)
{
	Gateway *g = userdata;
	_cleanup_(request_freep) Request *req = NULL;
	RequestError err = {0};
	json_t *o;
	int r;

	r = request_parse(data, len, &req, &err);
	if (r < 0) {
		reply_err(g, peer, r == -ENOMEM ? "storage_error" : err.code,
		          r == -ENOMEM ? "out of memory" : err.detail);
		return;
	}
	if (admission_check(g->admission, peer, req, &err) < 0) {
		reply_err(g, peer, err.code, err.detail);
		return;
	}
	switch (req->op) {
	case OP_SEND:
		handle_send(g, peer, req);
		break;
	case OP_ACK:
		handle_ack(g, peer, req);
		break;
	case OP_STATUS:
		reply_now(g, peer, status_json(g));
		break;
	case OP_GET:
		r = store_alert_json(g->store, req->id, true, &o);
		if (r == -ENOENT)
			reply_err(g, peer, "unknown_id", "no alert with this id");
		else if (r < 0)
			reply_err(g, peer, "storage_error", "the store could not be read");
		else {
			alert_add_oncall(g, o);
			reply_now(g, peer, o);
		}
		break;
	case OP_INBOX:
		r = store_inbox_json(g->store, 1000, &o);
		if (r < 0)
			reply_err(g, peer, "storage_error", "the store could not be read");
		else
			reply_now(g, peer, json_pack("{s:o}", "messages", o));
		break;
	case OP_ONCALL:
		oncall_handle_query(g, peer, req);
		break;
	case OP_OVERRIDE:
		oncall_handle_override(g, peer, req);
		break;
	case OP_QUEUE:
		r = store_queue_json(g->store, 1000, &o);
		if (r < 0)
			reply_err(g, peer, "storage_error", "the store could not be read");
		else
			reply_now(g, peer, json_pack("{s:o}", "alerts", o));
		break;
	}
}

/* ---- life cycle ---- */

static int on_exit_check(sd_event_source *s, uint64_t usec, void *userdata)
{
	Gateway *g = userdata;

	/* Exit once the last results have been published and applied (committed); or at once
	 * when the store cannot commit: what waits for it was never answered "queued", and a
	 * send whose result is lost is resumed after the restart. */
	if (json_array_size(g->outbox) == 0 && (!g->batches_head || store_stalled(g))) {
		if (store_stalled(g))
			log_warning("Stopping while the store cannot commit: %zu payload(s) not "
			            "applied here",
			            g->n_stalled);
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
	ModemEvent ev;
	int r;

	if (g->stopping)
		return;
	g->stopping = true;
	sd_notify(0, "STOPPING=1\nSTATUS=Stopping: finishing sends in progress");
	for (size_t i = 0; i < g->n_modems; i++)
		modem_request_stop(g->modems[i].modem);
	for (size_t i = 0; i < g->n_modems; i++)
		modem_stop(g->modems[i].modem);
	for (size_t i = 0; i < g->n_modems; i++)
		while (modem_next_event(g->modems[i].modem, &ev) > 0) {
			modem_event(g, &g->modems[i], &ev);
			modem_event_clear(&ev);
		}
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
	return requeue(g, alert_id, number, g->config->node_name, modem,
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
	g->config_loaded_at = now_realtime_usec();
	g->nodeid = SOLO_NODEID;
	g->next_seq = 1;
	g->outbox = json_array();
	g->events = json_array();
	g->tokens = json_array();
	g->voice_checks = json_array();
	g->confirm_due = json_object();
	g->escalating = json_object();
	g->digests_due = json_object();
	g->digests_mine = json_object();
	g->orphans = json_object();
	members_init(&g->members, config->node_name);
	if (members_self(&g->members))
		members_self(&g->members)->nodeid = SOLO_NODEID;
	if (!g->outbox || !g->events || !g->tokens || !g->voice_checks || !g->confirm_due ||
	    !g->escalating || !g->digests_due || !g->digests_mine || !g->orphans ||
	    !members_self(&g->members)) {
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

	/* Always on: sd-event marks post sources pending only if they are enabled when another
	 * source is dispatched, i.e. before the request that fills the outbox is read. */
	r = sd_event_add_post(g->event, &g->flush, gateway_flush, g);
	if (r < 0)
		return r;
	r = sd_event_add_time_relative(g->event, &g->flush_retry, CLOCK_MONOTONIC,
	                               10 * USEC_PER_MSEC, USEC_PER_MSEC, on_flush_retry, g);
	if (r < 0)
		return r;
	sd_event_source_set_enabled(g->flush_retry, SD_EVENT_OFF);
	r = sd_event_add_defer(g->event, &g->dispatch_defer, on_dispatch_defer, g);
	if (r < 0)
		return r;
	sd_event_source_set_enabled(g->dispatch_defer, SD_EVENT_OFF);
	r = sd_event_add_time(g->event, &g->timer, CLOCK_REALTIME, 0, USEC_PER_MSEC, on_timer, g);
	if (r < 0)
		return r;
	sd_event_source_set_enabled(g->timer, SD_EVENT_OFF);
	r = sd_event_add_time_relative(g->event, &g->purge_timer, CLOCK_MONOTONIC,
	                               60 * USEC_PER_SEC, USEC_PER_SEC, on_purge, g);
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

	r = admission_new(g->config, &g->admission);
	if (r < 0)
		return r;
	r = server_new(g->event, g->config, on_request, g, &g->server);
	if (r < 0)
		return r;

	r = gateway_start_modems(g);
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
	if (!g->resume_pending) {
		r = store_sending_on_node(g->store, g->config->node_name, resume_one, g);
		if (r < 0)
			return r;
	}
	gateway_schedule(g);
	sd_event_source_set_enabled(g->dispatch_defer, SD_EVENT_ONESHOT);
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
	check_stop(g);
	apply_stop(g);
	reload_free(g);
	dialer_free(g->dialer);
	free(g->call);
	while (g->calls) {
		VoiceCall *v = g->calls;
		g->calls = v->next;
		free(v);
	}
	sd_event_source_disable_unref(g->voice_timer);
	sd_event_source_disable_unref(g->selftest_timer);
	sd_event_source_disable_unref(g->selftest_check);
	while (g->selftests) {
		SelfTest *t = g->selftests;
		g->selftests = t->next;
		free(t);
	}
	for (size_t i = 0; i < g->n_modems; i++) {
		sd_event_source_disable_unref(g->modems[i].io);
		modem_free(g->modems[i].modem);
	}
	free(g->modems);
	while (g->jobs) {
		Job *j = g->jobs;
		g->jobs = j->next;
		job_free(j);
	}
	while (g->batches_head) {
		PendingBatch *b = g->batches_head;
		g->batches_head = b->next;
		for (size_t i = 0; i < b->n; i++)
			free(b->by_index[i]);
		free(b);
	}
	while (g->awaiting) {
		PendingBatch *b = g->awaiting;
		g->awaiting = b->next;
		for (size_t i = 0; i < b->n; i++)
			free(b->by_index[i]);
		free(b);
	}
	sd_event_source_disable_unref(g->grace_timer);
	sd_event_source_disable_unref(g->sync_timer);
	free(g->sync_key_cursor);
	json_decref(g->confirm_due);
	members_done(&g->members);
	for (size_t i = 0; i < json_array_size(g->outbox); i++)
		free(g->outbox_pending[i]);
	free(g->outbox_pending);
	sd_event_source_disable_unref(g->flush);
	sd_event_source_disable_unref(g->flush_retry);
	sd_event_source_disable_unref(g->dispatch_defer);
	sd_event_source_disable_unref(g->timer);
	sd_event_source_disable_unref(g->purge_timer);
	sd_event_source_disable_unref(g->exit_check);
	server_free(g->server);
	admission_free(g->admission);
	replication_free(g->replication);
	store_close(g->store);
	json_decref(g->outbox);
	json_decref(g->events);
	json_decref(g->tokens);
	json_decref(g->voice_checks);
	json_decref(g->escalating);
	json_decref(g->digests_due);
	json_decref(g->digests_mine);
	json_decref(g->orphans);
	sd_event_unref(g->event);
	free(g);
	return NULL;
}
