/* gateway-publish: the outbox, and the payloads it leaves in.
 *
 * Nothing is applied where it is decided. A request or a modem result becomes a change (a small
 * JSON object carrying its own timestamp) added to the outbox; the changes made during one loop
 * turn are published as one payload through the replication layer by a post source, so a burst
 * costs one message and one commit. The clients whose changes went out wait in a batch, by
 * sequence number, until the payload comes back committed (publish_answer_batch()). The events of a
 * commit (sent, failed, acknowledged, ...) are collected while applying and published here
 * afterwards. */
#include "gateway-internal.h"

int publish_outbox_add(Gateway *g, json_t *change, Pending *pending)
{
	size_t i = json_array_size(g->publish.outbox);

	if (!change) {
		free(pending);
		return -ENOMEM;
	}
	if (i >= g->publish.pending_cap) {
		size_t cap = MAX(64u, g->publish.pending_cap * 2);
		Pending **v = realloc(g->publish.pending, cap * sizeof(Pending *));

		if (!v) {
			json_decref(change);
			free(pending);
			return -ENOMEM;
		}
		memset(v + g->publish.pending_cap, 0, (cap - g->publish.pending_cap) * sizeof(*v));
		g->publish.pending = v;
		g->publish.pending_cap = cap;
	}
	if (json_array_append_new(g->publish.outbox, change) < 0) {
		free(pending);
		return -ENOMEM;
	}
	g->publish.pending[i] = pending;
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

	/* Node names are letters, digits, '-', '_' and '.' (config-table.c): nothing to escape. */
	if (asprintf(&text,
	             "{\"v\":%d,\"seq\":%llu,\"node\":\"%s\",\"confirm\":%s,\"changes\":[%s]}",
	             PROTOCOL_VERSION, (unsigned long long)g->publish.next_seq,
	             g->config->node_name, waited ? "true" : "false", changes) < 0)
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
		waited |= g->publish.pending[i] != NULL;
	if (asprintf(&changes, "%s%s%s", joined, *joined && *extra ? "," : "", extra) < 0)
		return -ENOMEM;
	text = payload_text(g, waited, changes);
	batch = calloc(1, sizeof(PendingBatch) + (to - from) * sizeof(Pending *));
	r = text && batch ? replication_publish(g->replication, text, strlen(text)) : -ENOMEM;
	if (r < 0) {
		free(batch);
		return r;
	}
	batch->seq = g->publish.next_seq++;
	batch->n = to - from;
	for (size_t i = from; i < to; i++) {
		batch->by_index[i - from] = g->publish.pending[i];
		g->publish.pending[i] = NULL;
	}
	if (g->publish.batches_tail)
		g->publish.batches_tail->next = batch;
	else
		g->publish.batches_head = batch;
	g->publish.batches_tail = batch;
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

	json_array_foreach(confirms, i, c) json_object_set(
	        g->cluster.confirm_due, jstr(c, "origin"), json_object_get(c, "seq"));
}

/* Runs after the other sources of a loop turn: whatever was decided this turn leaves in as few
 * payloads as fit the replication layer (REPLICATION_PAYLOAD_MAX, JSON escaping included), so a
 * burst of requests costs one message and one commit, and a burst of long texts a few. A change
 * that cannot be published is never dropped silently: its client is answered storage_error, and
 * a change no client waits for (a send result, a received SMS) stays for a later turn. */
static int gateway_flush(sd_event_source *s, void *userdata)
{
	Gateway *g = userdata;
	size_t n = json_array_size(g->publish.outbox), from = 0;
	_cleanup_(json_decrefp) json_t *confirms = NULL, *keep = NULL;
	_cleanup_free_ char *extra = NULL;
	bool extra_sent = false;
	char **texts;
	int r = 0;

	if (n == 0 || (g->sync.active && !g->stopping)) {
		publish_confirmations(g);
		return 0;
	}
	/* The confirmations ride in the last payload: one message less per turn on a busy pair. */
	confirms = cluster_confirmations_take(g);
	extra = confirms ? json_dumps(confirms, JSON_COMPACT) : strdup("[]");
	texts = calloc(n, sizeof(char *));
	keep = json_array();
	if (!extra || !texts || !keep) {
		free(texts);
		if (confirms)
			confirmations_restore(g, confirms);
		log_error("Out of memory publishing %zu change(s): trying again", n);
		sd_event_source_set_time_relative(g->publish.flush_retry, 10 * USEC_PER_MSEC);
		sd_event_source_set_enabled(g->publish.flush_retry, SD_EVENT_ONESHOT);
		return 0;
	}
	extra[strlen(extra) - 1] = 0; /* the array's items, without its brackets */
	memmove(extra, extra + 1, strlen(extra));

	for (size_t i = 0; i < n && r >= 0; i++)
		if (!(texts[i] = json_dumps(json_array_get(g->publish.outbox, i), JSON_COMPACT)))
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
			Pending *p = g->publish.pending[i];

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
			json_array_append(keep, json_array_get(g->publish.outbox, i));
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
	memset(g->publish.pending, 0, n * sizeof(Pending *));
	json_array_clear(g->publish.outbox);
	if (json_array_size(keep) > 0) {
		json_array_extend(g->publish.outbox, keep);
		sd_event_source_set_time_relative(g->publish.flush_retry, 10 * USEC_PER_MSEC);
		sd_event_source_set_enabled(g->publish.flush_retry, SD_EVENT_ONESHOT);
	}
	return 0;
}

/* ---- events ---- */

void publish_event(Gateway *g, const char *topic, json_t *object)
{
	if (!object)
		return;
	json_array_append_new(g->publish.events, json_pack("[s, o]", topic, object));
}

void publish_events(Gateway *g)
{
	size_t i;
	json_t *e;

	/* No server: a Gateway that a unit test drives without sockets. No subscriber: nobody to
	 * encode them for (under load, one "queued" event per alert on every node). */
	if (!g->server || !server_has_subscribers(g->server)) {
		json_array_clear(g->publish.events);
		return;
	}
	json_array_foreach(g->publish.events, i, e)
	{
		_cleanup_free_ char *text =
		        json_dumps(json_array_get(e, 1), JSON_COMPACT | JSON_SORT_KEYS);

		if (text)
			server_publish(g->server, json_string_value(json_array_get(e, 0)), text);
	}
	json_array_clear(g->publish.events);
}

void publish_answer_batch(Gateway *g, PendingBatch *batch, int commit_result)
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
			        commit_result == STORE_FULL ? "the disk is full; nothing was stored"
			        : commit_result == STORE_LOCKED
			                ? "the database is locked by another process; "
			                  "nothing was stored"
			                : "the store could not commit; nothing was stored");
		} else {
			if (p->kind == PENDING_SEND && p->silence[0])
				reply = json_pack("{s:b, s:s, s:s, s:s}", "ok", 1, "id", p->id,
				                  "status", "silenced", "silence", p->silence);
			else if (p->kind == PENDING_SEND)
				reply = json_pack("{s:b, s:s, s:s}", "ok", 1, "id",
				                  p->duplicate ? p->first_id : p->id, "status",
				                  p->duplicate ? "duplicate" : "queued");
			else if (p->kind == PENDING_SILENCE || p->kind == PENDING_UNSILENCE)
				reply = silences_reply(p);
			else if (p->kind == PENDING_OVERRIDE)
				reply = oncall_override_reply(p);
			else if (p->kind == PENDING_HEARTBEAT)
				reply = heartbeats_reply(p);
			else if (p->kind == PENDING_RESOLVE)
				reply = json_pack("{s:b, s:s, s:s}", "ok", 1, "id", p->id, "status",
				                  "resolved");
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

int publish_start(Gateway *g)
{
	int r;

	/* Always on: sd-event marks post sources pending only if they are enabled when another
	 * source is dispatched, i.e. before the request that fills the outbox is read. */
	r = sd_event_add_post(g->event, &g->publish.flush, gateway_flush, g);
	if (r < 0)
		return r;
	r = sd_event_add_time_relative(g->event, &g->publish.flush_retry, CLOCK_MONOTONIC,
	                               10 * USEC_PER_MSEC, USEC_PER_MSEC, on_flush_retry, g);
	if (r < 0)
		return r;
	sd_event_source_set_enabled(g->publish.flush_retry, SD_EVENT_OFF);
	return 0;
}

static void batches_free(PendingBatch *b)
{
	while (b) {
		PendingBatch *next = b->next;

		for (size_t i = 0; i < b->n; i++)
			free(b->by_index[i]);
		free(b);
		b = next;
	}
}

void publish_free(Gateway *g)
{
	batches_free(g->publish.batches_head);
	g->publish.batches_head = g->publish.batches_tail = NULL;
	batches_free(g->publish.awaiting);
	g->publish.awaiting = NULL;
	for (size_t i = 0; i < json_array_size(g->publish.outbox); i++)
		free(g->publish.pending[i]);
	free(g->publish.pending);
	g->publish.pending = NULL;
	g->publish.flush = sd_event_source_disable_unref(g->publish.flush);
	g->publish.flush_retry = sd_event_source_disable_unref(g->publish.flush_retry);
	json_decref(g->publish.outbox);
	g->publish.outbox = NULL;
	json_decref(g->publish.events);
	g->publish.events = NULL;
}
