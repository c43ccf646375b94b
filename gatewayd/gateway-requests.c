/* gateway-requests: the requests of the submit socket.
 *
 * A request is parsed (request.h) and admitted (admission.h) here; one that changes state (send,
 * ack, resolve, override) becomes a change in the outbox with a Pending for its client, answered
 * once the change is committed everywhere (gateway-publish.c); one that reads (status, get, inbox,
 * queue, oncall) is answered at once from the store. */
#include "gateway-internal.h"

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

int requests_submit_change(Gateway *g, Request *req, const char *id, const char *key, uint64_t at,
                           json_t **ret, RequestError *err)
{
	_cleanup_(json_decrefp) json_t *to = NULL, *copy = json_array();
	json_t *c;
	int r;

	if (!copy)
		return -ENOMEM;
	r = resolve_recipients(g, req, at, &to, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < req->n_copy; i++)
		if (json_array_append_new(copy, json_string(req->copy[i])) < 0)
			return -ENOMEM;
	c = change_pack("submit", "{s:s, s:s, s:s, s:b, s:I, s:O, s:O, s:s?, s:s, s:I}", "id", id,
	                "key", key, "text", req->text, "critical", req->critical, "ttl",
	                (json_int_t)req->ttl, "to", to, "copy", copy, "source", req->source, "node",
	                g->config->node_name, "at", (json_int_t)at);
	if (!c)
		return -ENOMEM;
	if (escalation_wanted(g, req))
		json_object_set_new(c, "escalate", json_true());
	*ret = c;
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

Pending *requests_pending_new(const ServerPeer *peer, PendingKind kind, const char *id)
{
	Pending *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->peer = *peer;
	p->kind = kind;
	snprintf(p->id, sizeof(p->id), "%s", id);
	return p;
}

void requests_reply_now(Gateway *g, const ServerPeer *peer, json_t *reply)
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
	char id[ID_HEX_LEN + 1], key[40];
	uint64_t at = now_realtime_usec();
	unsigned parts = 0;
	Pending *p;
	json_t *c;
	int r;

	if (stall_refuses(g, peer))
		return;
	if (g->sync.active && json_array_size(g->publish.outbox) >= OUTBOX_HELD_MAX) {
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

		r = asprintf(&with_ack, "%s\nReply ACK 000000000000 to acknowledge%s", req->text,
		             ack_instruction_call(g));
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
	if (id_new(id) < 0 || (!req->key && default_key(req, key) < 0)) {
		reply_err(g, peer, "storage_error", "out of resources");
		return;
	}
	r = requests_submit_change(g, req, id, req->key ? req->key : key, at, &c, &err);
	if (r == -EINVAL) {
		reply_err(g, peer, err.code, err.detail);
		return;
	}
	if (r < 0) {
		reply_err(g, peer, "storage_error", "out of resources");
		return;
	}

	p = requests_pending_new(peer, PENDING_SEND, id);
	if (!p) {
		json_decref(c);
		reply_err(g, peer, "storage_error", "out of memory");
		return;
	}
	if (publish_outbox_add(g, c, p) < 0)
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
	p = requests_pending_new(peer, PENDING_ACK, req->id);
	if (!p) {
		reply_err(g, peer, "storage_error", "out of memory");
		return;
	}
	if (publish_outbox_add(g,
	                       change_pack("ack", "{s:s, s:s, s:s, s:s, s:I}", "id", req->id, "by",
	                                   req->by ? req->by : "unknown", "via", "api", "node",
	                                   g->config->node_name, "at",
	                                   (json_int_t)now_realtime_usec()),
	                       p) < 0)
		reply_err(g, peer, "storage_error", "out of memory");
}

/* The alert a resolve names, by id or by dedupe key: one not yet resolved or expired. */
static int resolve_target(Gateway *g, const Request *req, char ret_id[static ID_HEX_LEN + 1],
                          const char **ret_why)
{
	int r;

	if (req->key) {
		r = store_alert_resolvable_by_key(g->store, req->key, ret_id);
		*ret_why = "no open alert with this key";
		return r;
	}
	r = store_alert_resolvable(g->store, req->id);
	*ret_why = r == STORE_NOT_FOUND ? "no alert with this id"
	                                : "the alert is resolved or expired already";
	if (r > 0)
		snprintf(ret_id, ID_HEX_LEN + 1, "%s", req->id);
	return r == STORE_NOT_FOUND ? 0 : r;
}

static void handle_resolve(Gateway *g, const ServerPeer *peer, Request *req)
{
	char id[ID_HEX_LEN + 1];
	const char *why;
	Pending *p;
	int r;

	if (stall_refuses(g, peer))
		return;
	r = resolve_target(g, req, id, &why);
	if (r <= 0) {
		reply_err(g, peer, r < 0 ? "storage_error" : "unknown_id",
		          r < 0 ? "the store could not be read" : why);
		return;
	}
	p = requests_pending_new(peer, PENDING_RESOLVE, id);
	if (!p) {
		reply_err(g, peer, "storage_error", "out of memory");
		return;
	}
	if (publish_outbox_add(g,
	                       change_pack("resolve", "{s:s, s:s, s:s, s:s, s:I}", "id", id, "by",
	                                   req->by ? req->by : "unknown", "via", "api", "node",
	                                   g->config->node_name, "at",
	                                   (json_int_t)now_realtime_usec()),
	                       p) < 0)
		reply_err(g, peer, "storage_error", "out of memory");
}

json_t *requests_status_json(Gateway *g)
{
	json_t *modems = modems_local_json(g), *status;
	QueueCounts counts = {0};
	uint64_t voice_calls = 0;
	char last_outcome[16] = "";

	store_counts(g->store, &counts);
	store_voice_summary(g->store, &voice_calls, last_outcome);
	status = json_pack("{s:{s:s, s:I}, s:o, s:O, "
	                   "s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}, s:{s:i, s:n}}",
	                   "node", "name", g->config->node_name, "id", (json_int_t)g->nodeid,
	                   "cluster", cluster_json(g, modems), "modems", modems, "queue", "queued",
	                   (json_int_t)counts.queued, "sending", (json_int_t)counts.sending, "sent",
	                   (json_int_t)counts.sent, "delivered", (json_int_t)counts.delivered,
	                   "failed", (json_int_t)counts.failed, "expired",
	                   (json_int_t)counts.expired, "resolved", (json_int_t)counts.resolved,
	                   "silenced", (json_int_t)counts.silenced, "voice", "calls",
	                   (int)voice_calls, "last_outcome");
	json_decref(modems);
	if (status)
		json_object_set_new(status, "store", stall_json(g));
	if (status)
		json_object_set_new(status, "config", reload_status_json(g));
	if (status)
		json_object_set_new(status, "heartbeats", heartbeats_status_json(g));
	if (status && last_outcome[0])
		json_object_set_new(json_object_get(status, "voice"), "last_outcome",
		                    json_string(last_outcome));
	/* Whether an answered call can prove a human heard it (a key press), as seen here. */
	if (status && g->voice.dialer)
		json_object_set_new(json_object_get(status, "voice"), "key_presses",
		                    g->voice.key_presses < 0 ? json_null()
		                                             : json_boolean(g->voice.key_presses));
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
	case OP_RESOLVE:
		handle_resolve(g, peer, req);
		break;
	case OP_SILENCE:
		silences_handle_silence(g, peer, req);
		break;
	case OP_SILENCES:
		silences_handle_list(g, peer);
		break;
	case OP_UNSILENCE:
		silences_handle_unsilence(g, peer, req);
		break;
	case OP_HEARTBEAT:
		heartbeats_handle(g, peer, req);
		break;
	case OP_STATUS:
		requests_reply_now(g, peer, requests_status_json(g));
		break;
	case OP_GET:
		r = store_alert_json(g->store, req->id, true, &o);
		if (r == STORE_NOT_FOUND)
			reply_err(g, peer, "unknown_id", "no alert with this id");
		else if (r < 0)
			reply_err(g, peer, "storage_error", "the store could not be read");
		else {
			escalation_alert_oncall(g, o);
			requests_reply_now(g, peer, o);
		}
		break;
	case OP_INBOX:
		r = store_inbox_json(g->store, 1000, &o);
		if (r < 0)
			reply_err(g, peer, "storage_error", "the store could not be read");
		else
			requests_reply_now(g, peer, json_pack("{s:o}", "messages", o));
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
			requests_reply_now(g, peer, json_pack("{s:o}", "alerts", o));
		break;
	}
}

int requests_start(Gateway *g)
{
	int r;

	r = admission_new(g->config, &g->admission);
	if (r < 0)
		return r;
	return server_new(g->event, g->config, on_request, g, &g->server);
}

void requests_free(Gateway *g)
{
	g->server = server_free(g->server);
	g->admission = admission_free(g->admission);
}
