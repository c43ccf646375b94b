/* gateway-silences: planned quiet. A silence holds back, for a while, the alerts whose dedupe
 * key starts with a prefix, whose source is a name, or whose text contains some words: they
 * are accepted and recorded (state "silenced", the silence's id in their story), and not sent.
 * Critical alerts are held back too, unless the silence says except_critical.
 *
 * Silences are replicated changes ("silence", "unsilence") and rows of the store, exchanged on
 * a rejoin like overrides; whether one holds is decided while applying each submit, from the
 * submit's own time and the silences the store holds at that point of the agreed order, so both
 * nodes hold back the same alerts. A silence ends by itself at its `until`. */
#include "gateway-internal.h"

void silences_handle_silence(Gateway *g, const ServerPeer *peer, Request *req)
{
	uint64_t now = now_realtime_usec();
	char id[ID_HEX_LEN + 1];
	Pending *p;

	if (stall_refuses(g, peer))
		return;
	if (id_new(id) < 0) {
		reply_err(g, peer, "storage_error", "no random id");
		return;
	}
	p = requests_pending_new(peer, PENDING_SILENCE, id);
	if (!p) {
		reply_err(g, peer, "storage_error", "out of memory");
		return;
	}
	p->until = now + req->duration * USEC_PER_SEC;
	if (publish_outbox_add(
	            g,
	            change_pack("silence", "{s:s, s:s, s:s, s:b, s:I, s:s, s:s, s:s, s:I}", "id",
	                        id, "field", req->match_field, "value", req->match_value,
	                        "except_critical", req->except_critical, "until",
	                        (json_int_t)p->until, "by", req->by ? req->by : "unknown", "reason",
	                        req->reason ? req->reason : "", "node", g->config->node_name, "at",
	                        (json_int_t)now),
	            p) < 0)
		reply_err(g, peer, "storage_error", "out of memory");
}

json_t *silences_reply(const Pending *p)
{
	char until[RFC3339_MAX];

	if (p->kind == PENDING_UNSILENCE)
		return json_pack("{s:b, s:s, s:b}", "ok", 1, "silence", p->id, "removed", 1);
	return json_pack("{s:b, s:s, s:s}", "ok", 1, "silence", p->id, "until",
	                 format_rfc3339(p->until, until));
}

static int list_add(const Silence *si, void *userdata)
{
	return json_array_append_new(userdata, store_silence_json(si, false)) < 0 ? -ENOMEM : 0;
}

void silences_handle_list(Gateway *g, const ServerPeer *peer)
{
	json_t *list = json_array();
	int r;

	r = list ? store_silences_at(g->store, now_realtime_usec(), list_add, list) : -ENOMEM;
	if (r < 0) {
		json_decref(list);
		reply_err(g, peer, "storage_error", "the store could not be read");
		return;
	}
	requests_reply_now(g, peer, json_pack("{s:o}", "silences", list));
}

void silences_handle_unsilence(Gateway *g, const ServerPeer *peer, Request *req)
{
	uint64_t now = now_realtime_usec();
	Silence si;
	Pending *p;
	int r;

	if (stall_refuses(g, peer))
		return;
	r = store_silence_get(g->store, req->id, &si);
	if (r < 0 && r != STORE_NOT_FOUND) {
		reply_err(g, peer, "storage_error", "the store could not be read");
		return;
	}
	if (r == STORE_NOT_FOUND || si.removed_at || si.until <= now) {
		reply_err(g, peer, "unknown_id",
		          r == STORE_NOT_FOUND ? "no silence with this id"
		                               : "the silence has ended already");
		return;
	}
	p = requests_pending_new(peer, PENDING_UNSILENCE, req->id);
	if (!p) {
		reply_err(g, peer, "storage_error", "out of memory");
		return;
	}
	if (publish_outbox_add(g,
	                       change_pack("unsilence", "{s:s, s:s, s:s, s:I}", "id", req->id, "by",
	                                   req->by ? req->by : "unknown", "node",
	                                   g->config->node_name, "at", (json_int_t)now),
	                       p) < 0)
		reply_err(g, peer, "storage_error", "out of memory");
}

int apply_silence(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
	Silence si = {.except_critical = json_is_true(json_object_get(c, "except_critical")),
	              .created_at = ju64(c, "at"),
	              .until = ju64(c, "until")};
	char until[RFC3339_MAX];
	int r;

	snprintf(si.id, sizeof(si.id), "%s", jstr(c, "id"));
	snprintf(si.field, sizeof(si.field), "%s", jstr(c, "field"));
	if (strlen(jstr(c, "value")) > SILENCE_VALUE_MAX ||
	    strlen(jstr(c, "by")) > SILENCE_NAME_MAX ||
	    strlen(jstr(c, "reason")) > SILENCE_VALUE_MAX ||
	    strlen(jstr(c, "node")) > SILENCE_NAME_MAX)
		return STORE_INVALID;
	snprintf(si.value, sizeof(si.value), "%s", jstr(c, "value"));
	snprintf(si.by, sizeof(si.by), "%s", jstr(c, "by"));
	snprintf(si.reason, sizeof(si.reason), "%s", jstr(c, "reason"));
	snprintf(si.node, sizeof(si.node), "%s", jstr(c, "node"));
	r = store_silence_put(g->store, &si);
	if (r <= 0)
		return r;
	log_notice("Silence %s by %s: alerts whose %s %s '%s'%s are held back until %s (%s)", si.id,
	           si.by, streq(si.field, "key_prefix") ? "key" : si.field,
	           streq(si.field, "key_prefix") ? "starts with"
	           : streq(si.field, "source")   ? "is"
	                                         : "contains",
	           si.value, si.except_critical ? ", critical ones excepted," : "",
	           format_rfc3339(si.until, until), si.reason[0] ? si.reason : "no reason given");
	return 0;
}

int apply_unsilence(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
	int r;

	r = store_silence_remove(g->store, jstr(c, "id"), ju64(c, "at"), jstr(c, "by"));
	if (r > 0)
		log_notice("Silence %s ended by %s", jstr(c, "id"), jstr(c, "by"));
	return r < 0 ? r : 0;
}

typedef struct Match {
	const NewAlert *alert;
	bool matched;
	Silence found; /* the oldest that matches */
} Match;

static int match_one(const Silence *si, void *userdata)
{
	Match *m = userdata;
	const NewAlert *a = m->alert;
	bool hit;

	if (m->matched || (si->except_critical && a->critical))
		return 0;
	if (streq(si->field, "key_prefix"))
		hit = strncmp(a->key, si->value, strlen(si->value)) == 0;
	else if (streq(si->field, "source"))
		hit = streq_ptr(a->source, si->value);
	else
		hit = strstr(a->text, si->value) != NULL;
	if (!hit)
		return 0;
	m->found = *si;
	m->matched = true;
	return 0;
}

int silences_apply_to(Gateway *g, const NewAlert *a, const ChangeOrigin *origin)
{
	Match m = {.alert = a};
	char detail[400];
	int r;

	r = store_silences_at(g->store, a->accepted_at, match_one, &m);
	if (r < 0 || !m.matched)
		return r;
	r = store_alert_silence(g->store, a->id, m.found.id, a->accepted_at);
	if (r < 0)
		return r;
	utf8_snprintf(detail, sizeof(detail), "by silence %s (%s '%s', by %s%s%s)", m.found.id,
	              m.found.field, m.found.value, m.found.by, m.found.reason[0] ? ": " : "",
	              m.found.reason);
	r = store_history_add(g->store, a->id, a->accepted_at, "silenced", a->node, detail);
	if (r < 0)
		return r;
	log_ctx(LOG_INFO, &((LogContext){.alert_id = a->id}),
	        "Held back by silence %s: recorded, not sent", m.found.id);
	publish_event(g, "silenced",
	              json_pack("{s:s, s:s, s:s, s:s?}", "id", a->id, "silence", m.found.id, "text",
	                        a->text, "source", a->source));
	if (origin && origin->pending)
		snprintf(origin->pending->silence, sizeof(origin->pending->silence), "%s",
		         m.found.id);
	return 1;
}
