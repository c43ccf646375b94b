/* gateway-escalation: on-call work on top of the state machine — escalation steps, the
 * acknowledgment codes and the gateway's own short replies (confirmations, all-clears); the
 * commands engineers text back are gateway-commands.c's, the message that carries several alerts
 * gateway-limits.c's.
 *
 * Everything here is decided while applying replicated changes, from the data inside them and
 * the store as it stands at that point of the agreed order, so every node decides alike without
 * talking: an SMS received on either node acknowledges the same alert everywhere and queues the
 * same reply (its id derived from the received message), and an escalation step is one change
 * that moves the alert from step N-1 to N once, whichever node published it first. Only the
 * publishing is owned: the node that owns the alert (members_owner over the alert id) publishes
 * its due steps, so after a node fails the other one carries on from the replicated deadline. */
#include "gateway-internal.h"

#include "ackcode.h"

#define REPLY_TTL_USEC (3600 * USEC_PER_SEC)
/* Answers to messages that did nothing: after this many to one contact's number within the
 * window, the gateway answers that number no more until the oldest of them leaves the window
 * (GoAlert's rule). Acknowledgment confirmations are not counted: one per acknowledged alert at
 * most. The count is read from the replies in the store, which every node holds alike. */
#define REFUSAL_LIMIT             5
#define REFUSAL_LIMIT_WINDOW_USEC (3600 * USEC_PER_SEC)
#define ESCALATE_BATCH            256
/* "RESOLVED: " and the alert's text in one SMS of 160 GSM characters. */
#define ALL_CLEAR_QUOTE_CHARS 140

/* ---- who is who ---- */

const ContactConfig *contact_by_number(Gateway *g, const char *number)
{
	for (size_t i = 0; i < g->config->n_contacts; i++)
		if (streq(g->config->contacts[i].number, number))
			return &g->config->contacts[i];
	return NULL;
}

/* A contact named by name or by number (what `op ack`'s "by" may carry). */
const ContactConfig *contact_by_word(Gateway *g, const char *word)
{
	const ContactConfig *c = config_find_contact(g->config, word);

	return c ? c : contact_by_number(g, word);
}

bool escalation_wanted(Gateway *g, const Request *req)
{
	if (!req->critical || g->config->n_escalation_steps == 0)
		return false;
	for (size_t i = 0; i < req->n_to; i++)
		if (strncmp(req->to[i], "role:", 5) == 0 &&
		    streq(req->to[i] + 5, g->config->escalation_steps[0]))
			return true;
	return false;
}

/* ---- acknowledgment codes ---- */

void ackable_list_done(AckableList *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].text);
	free(l->v);
	*l = (AckableList){0};
}

int ackable_add(const AckableAlert *a, void *userdata)
{
	AckableList *l = userdata;

	if (l->n == l->cap) {
		size_t cap = MAX(16u, l->cap * 2);
		Ackable *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	Ackable *e = &l->v[l->n];
	snprintf(e->id, sizeof(e->id), "%s", a->alert_id);
	snprintf(e->number, sizeof(e->number), "%s", a->number);
	e->acked = a->acked;
	e->text = strdup(a->text ? a->text : "");
	if (!e->text)
		return -ENOMEM;
	l->n++;
	return 0;
}

/* The shortest code of `id` that no other alert of the list shares (unacknowledged ones, or
 * all of them with `all`). */
void ack_code_unique(const AckableList *l, const char *id, bool all,
                     char ret[static ACK_CODE_MAX + 1])
{
	for (unsigned digits = ACK_CODE_MIN; digits <= ACK_CODE_MAX; digits++) {
		bool clash = false;

		ackcode_for(id, digits, ret);
		for (size_t i = 0; i < l->n && !clash; i++)
			clash = !streq(l->v[i].id, id) && (all || !l->v[i].acked) &&
			        ackcode_matches(l->v[i].id, ret);
		if (!clash)
			return;
	}
}

const char *ack_instruction_call(const Gateway *g)
{
	/* A call may follow when the SMS paths fail: say now what its keys do. */
	return g->config->voice_device || g->config->voice_modem
	               ? " (on a call: 1 acknowledges, 2 passes it on)"
	               : "";
}

int ack_instruction(Gateway *g, const char *alert_id, const char *text, char **ret)
{
	_cleanup_(ackable_list_done) AckableList l = {0};
	char code[ACK_CODE_MAX + 1];
	int r;

	r = store_ackable(g->store, now_realtime_usec(), ackable_add, &l);
	if (r < 0)
		return r;
	ack_code_unique(&l, alert_id, false, code);
	return asprintf(ret, "%s\nReply ACK %s to acknowledge%s", text, code,
	                ack_instruction_call(g)) < 0
	               ? -ENOMEM
	               : 0;
}

/* An acknowledgment by SMS names the number it came from ("from"), as its line in the alert's
 * history ("by NAME from NUMBER via sms ...") records it. */
static void ack_add_sender(json_t *alert)
{
	json_t *ack = json_object_get(alert, "ack"), *e;
	size_t i;

	if (!json_is_object(ack))
		return;
	json_array_foreach(json_object_get(alert, "history"), i, e)
	{
		const char *detail = jstr(e, "detail"), *from = strstr(detail, " from ");

		if (!streq(jstr(e, "what"), "acknowledged") || !from)
			continue;
		from += strlen(" from ");
		json_object_set_new(ack, "from", json_stringn(from, strcspn(from, " ")));
		return;
	}
}

void escalation_alert_oncall(Gateway *g, json_t *alert)
{
	_cleanup_(ackable_list_done) AckableList l = {0};
	json_t *esc = json_object_get(alert, "escalation");
	char code[ACK_CODE_MAX + 1];

	/* Steps as people count them: the first step is 1. */
	if (json_is_object(esc)) {
		unsigned step = (unsigned)ju64(esc, "step");
		const RoleConfig *role = escalation_step_role(g, step);

		json_object_set_new(esc, "step", json_integer((json_int_t)step + 1));
		json_object_set_new(esc, "role", role ? json_string(role->name) : json_null());
	}
	ack_add_sender(alert);
	if (!streq(jstr(alert, "priority"), "critical") ||
	    store_ackable(g->store, now_realtime_usec(), ackable_add, &l) < 0)
		return;
	ack_code_unique(&l, jstr(alert, "id"), false, code);
	json_object_set_new(alert, "ack_code", json_string(code));
}

/* ---- the gateway's own SMS ---- */

/* Queues an SMS from the gateway itself: an alert of source "gatewayd" whose id derives from
 * `seed`, so every node applying the same change queues the same one. Its key starts with
 * `kind` ("reply" for a confirmation, "refusal" for an answer to a message that did nothing),
 * which is what the refusal limit counts. */
int reply_queue(Gateway *g, const char *kind, const char *seed, const char *number,
                const char *text, const char *node, uint64_t at)
{
	char id[ID_HEX_LEN + 1], key[48];
	const char *to[] = {number};
	NewAlert a = {
	        .id = id,
	        .key = key,
	        .text = text,
	        .source = "gatewayd",
	        .node = node,
	        .accepted_at = at,
	        .expires_at = at + REPLY_TTL_USEC,
	        .to = to,
	        .n_to = 1,
	};
	int r;

	hash128_hex(seed, strlen(seed), id);
	snprintf(key, sizeof(key), "%s:%s", kind, id);
	r = store_alert_insert(g->store, &a);
	if (r < 0)
		return r;
	/* The text quotes alerts and what was received: the journal gets it at debug level only. */
	log_ctx(LOG_INFO, &((LogContext){.alert_id = id}), "Replying to %s (%zu bytes)", number,
	        strlen(text));
	log_ctx(LOG_DEBUG, &((LogContext){.alert_id = id}), "Reply to %s: %s", number, text);
	publish_event(g, "queued",
	              json_pack("{s:s, s:[s], s:[], s:s, s:s, s:s, s:s}", "id", id, "to", number,
	                        "copy", "priority", "normal", "source", "gatewayd", "node", node,
	                        "text", text));
	g->dispatch.wanted = true;
	return 0;
}

/* An answer to a message from a contact that did nothing. Only ever to a configured contact's
 * number (the caller checks), never to one that cannot take a reply, and no more once
 * REFUSAL_LIMIT such answers went to it within the window: no loops with an automatic sender,
 * no cost surprises. */
int reply_refusal(Gateway *g, const InboxMessage *m, const char *text)
{
	_cleanup_free_ char *seed = NULL;
	uint64_t recent = 0;
	int r;

	if (!ackcode_sender_answerable(m->sender)) {
		log_info("Not answering %s: not a phone number that can take a reply", m->sender);
		return 0;
	}
	r = store_refusals_since(g->store, m->sender,
	                         m->received_at > REFUSAL_LIMIT_WINDOW_USEC
	                                 ? m->received_at - REFUSAL_LIMIT_WINDOW_USEC
	                                 : 0,
	                         &recent);
	if (r < 0)
		return r;
	if (recent >= REFUSAL_LIMIT) {
		log_notice("Not answering %s again: %" PRIu64
		           " messages that did nothing answered within an hour",
		           m->sender, recent);
		return 0;
	}
	if (asprintf(&seed, "reply\n%s", m->key) < 0)
		return -ENOMEM;
	return reply_queue(g, "refusal", seed, m->sender, text, m->node, m->received_at);
}

/* A short quote of an alert's text for a reply: at most BUNDLE_QUOTE_CHARS bytes of whole UTF-8
 * characters, "..." when cut, on one line. */
static void quote_max(const char *text, size_t max, char *ret)
{
	size_t bytes = 0;

	while (text[bytes]) {
		size_t len = 1;

		while ((text[bytes + len] & 0xc0) == 0x80)
			len++;
		if (bytes + len > max)
			break;
		bytes += len;
	}
	memcpy(ret, text, bytes);
	strcpy(ret + bytes, text[bytes] ? "..." : "");
	for (char *p = ret; *p; p++)
		if (*p == '\n')
			*p = ' ';
}

void reply_quote(const char *text, char ret[static BUNDLE_QUOTE_CHARS + 4])
{
	quote_max(text, BUNDLE_QUOTE_CHARS, ret);
}

/* ---- acknowledgment ---- */

/* Tells the acknowledger that it worked; one confirmation per alert (its id derives from the
 * alert's). */
int ack_confirm(Gateway *g, const char *alert_id, const char *by, const char *node, uint64_t at)
{
	const ContactConfig *contact = contact_by_word(g, by);
	_cleanup_free_ char *seed = NULL, *text = NULL;
	_cleanup_(json_decrefp) json_t *alert = NULL;
	char code[ACK_CODE_MAX + 1], q[BUNDLE_QUOTE_CHARS + 4];
	int r;

	if (!contact)
		return 0; /* acknowledged by someone who is not a contact: nobody to tell */
	r = store_alert_json(g->store, alert_id, false, &alert);
	if (r < 0)
		return r == STORE_NOT_FOUND ? 0 : r;
	reply_quote(jstr(alert, "text"), q);
	ackcode_for(alert_id, ACK_CODE_MIN, code);
	if (asprintf(&seed, "ack\n%s", alert_id) < 0 ||
	    asprintf(&text, "Acknowledged (%s) by %s: %s. Escalation stopped.", code, contact->name,
	             q) < 0)
		return -ENOMEM;
	return reply_queue(g, "reply", seed, contact->number, text, node, at);
}

/* ---- resolve ---- */

int escalation_all_clear(Gateway *g, const char *alert_id, const char *number, const char *node,
                         uint64_t at)
{
	_cleanup_free_ char *seed = NULL, *text = NULL;
	_cleanup_(json_decrefp) json_t *alert = NULL;
	char q[ALL_CLEAR_QUOTE_CHARS + 4];
	int r;

	if (!g->config->escalation_notify_resolved)
		return 0;
	r = store_alert_json(g->store, alert_id, false, &alert);
	if (r < 0)
		return r == STORE_NOT_FOUND ? 0 : r;
	if (streq_ptr(jstr(alert, "source"), "gatewayd"))
		return 0; /* the gateway's own replies and summaries get no all-clear */
	quote_max(jstr(alert, "text"), ALL_CLEAR_QUOTE_CHARS, q);
	if (asprintf(&seed, "resolved\n%s\n%s", alert_id, number) < 0 ||
	    asprintf(&text, "RESOLVED: %s", q) < 0)
		return -ENOMEM;
	r = reply_queue(g, "reply", seed, number, text, node, at);
	if (r < 0)
		return r;
	return store_history_add(g->store, alert_id, at, "all-clear", node, number);
}

/* ---- escalation ---- */

/* The chain is the configured steps, then the whole of it again `repeat` times: step N (from
 * 0) pages steps[N % n], and the last of all is followed by nothing. */
size_t escalation_chain_length(Gateway *g)
{
	return g->config->n_escalation_steps * (1 + (size_t)g->config->escalation_repeat);
}

const RoleConfig *escalation_step_role(Gateway *g, unsigned step)
{
	size_t n = g->config->n_escalation_steps;

	if (n == 0)
		return NULL;
	return config_find_role(g->config, g->config->escalation_steps[step % n]);
}

uint64_t escalation_next_at(Gateway *g, unsigned step, uint64_t at)
{
	if ((size_t)step + 1 >= escalation_chain_length(g))
		return 0;
	return at +
	       ESCALATION_BACKSTOP * (uint64_t)g->config->escalation_step_timeout * USEC_PER_SEC;
}

int escalation_page_left(Gateway *g, const char *alert_id, const char *number, uint64_t at,
                         const char *node, const char *how)
{
	uint64_t timeout = (uint64_t)g->config->escalation_step_timeout * USEC_PER_SEC;
	char detail[160];
	int r;

	r = store_escalation_page_left(g->store, alert_id, number, at + timeout);
	if (r <= 0)
		return r;
	g->dispatch.wanted = true; /* the timer moves */
	utf8_snprintf(detail, sizeof(detail), "step_timeout (%u s) from the %s to %s",
	              g->config->escalation_step_timeout, how, number);
	return store_history_add(g->store, alert_id, at, "timer started", node, detail);
}

json_t *escalation_next_change(Gateway *g, const char *alert_id, unsigned step, const char *node,
                               uint64_t at, const ContactConfig **ret_contact,
                               const RoleConfig **ret_role)
{
	const RoleConfig *role = escalation_step_role(g, step + 1);
	const ContactConfig *contact;

	if ((size_t)step + 1 >= escalation_chain_length(g) || !role)
		return NULL;
	contact = oncall_on_duty(g, role, at, NULL); /* overrides included */
	if (!contact)
		return NULL;
	if (ret_contact)
		*ret_contact = contact;
	if (ret_role)
		*ret_role = role;
	return change_pack("escalate", "{s:s, s:i, s:s, s:s, s:s, s:s, s:I}", "id", alert_id,
	                   "step", (int)step + 1, "role", role->name, "contact", contact->name,
	                   "to", contact->number, "node", node, "at", (json_int_t)at);
}

/* Publishes the change to the next step, once until it is applied. */
static int escalate_publish(Gateway *g, const char *alert_id, unsigned step, json_t *c)
{
	json_object_set_new(g->escalation.published, alert_id, json_integer((json_int_t)step + 1));
	return publish_outbox_add(g, c, NULL);
}

static int escalate_one(const char *alert_id, unsigned step, void *userdata)
{
	Gateway *g = userdata;
	const char *owner = members_owner(&g->members, alert_id, "escalation", "", false);
	json_t *c;

	/* With no usable modem anywhere nobody owns it: every node moves it on (the step is
	 * applied once), for the voice fallback of the next step's contact. */
	if (owner && !streq(owner, g->config->node_name))
		return 0;
	if (json_integer_value(json_object_get(g->escalation.published, alert_id)) ==
	    (json_int_t)step + 1)
		return 0; /* published already, not applied yet */
	c = escalation_next_change(g, alert_id, step, g->config->node_name, now_realtime_usec(),
	                           NULL, NULL);
	return c ? escalate_publish(g, alert_id, step, c) : 0;
}

void escalation_now(Gateway *g, const char *alert_id, uint64_t now)
{
	unsigned step = 0;
	bool active = false;
	const RoleConfig *role = NULL;
	json_t *c;

	if (store_alert_escalation(g->store, alert_id, &step, &active) <= 0 || !active)
		return;
	c = escalation_next_change(g, alert_id, step, g->config->node_name, now, NULL, &role);
	if (!c)
		return;
	log_ctx(LOG_NOTICE, &((LogContext){.alert_id = alert_id}),
	        "Passed on by key press: escalating to step %u (%s) now", step + 2, role->name);
	escalate_publish(g, alert_id, step, c);
}

void escalation_run(Gateway *g)
{
	if (g->stopping || !cluster_settled(g) || g->config->n_escalation_steps == 0)
		return;
	store_escalations_due(g->store, now_realtime_usec(), ESCALATE_BATCH, escalate_one, g);
}

void escalation_forget(Gateway *g)
{
	json_object_clear(g->escalation.published);
}

int apply_escalate(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
	const char *id = jstr(c, "id"), *to = jstr(c, "to");
	unsigned step = (unsigned)ju64(c, "step");
	uint64_t at = ju64(c, "at");
	char detail[160];
	bool paged;
	int r;

	json_object_del(g->escalation.published, id);
	utf8_snprintf(detail, sizeof(detail), "step %u: %s, %s %s", step + 1, jstr(c, "role"),
	              jstr(c, "contact"), to);
	r = store_escalate(g->store, id, step, to, at, escalation_next_at(g, step, at),
	                   jstr(c, "node"), detail, &paged);
	if (r <= 0)
		return r;
	log_ctx(LOG_NOTICE, &((LogContext){.alert_id = id, .message_id = MESSAGE_ID_ESCALATED}),
	        "Not acknowledged: escalated to %s%s", detail,
	        escalation_next_at(g, step, at)
	                ? ""
	                : " (the last step of the last round: no further page)");
	publish_event(g, "escalated",
	              json_pack("{s:s, s:i, s:s, s:s, s:s}", "id", id, "step", (int)step + 1,
	                        "role", jstr(c, "role"), "contact", jstr(c, "contact"), "to", to));
	if (paged) {
		g->dispatch.wanted = true;
		voice_check_later(g, id, to);
	}
	return 0;
}
