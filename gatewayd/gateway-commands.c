/* gateway-commands: running an incident by SMS. A configured contact texts the gateway from
 * their own phone: ACK, RES or ESC with an alert's code, WHO, TAKE [duration] or HELP; anything
 * else gets the help text. Like everything applied from a replicated change, each command is
 * decided while applying the received SMS (sms_in), from the message and the store at that
 * point of the agreed order, so both nodes act alike and queue the same confirmation (its id
 * derived from the message). A number that is no contact's is recorded and nothing more: never
 * obeyed, never answered. */
#include "gateway-internal.h"

#include "ackcode.h"

static int ack_publish_now(Gateway *g, const char *alert_id, const ContactConfig *contact,
                           const InboxMessage *m)
{
	char detail[160];
	json_t *c =
	        change_pack("ack", "{s:s, s:s, s:s, s:s, s:I}", "id", alert_id, "by", contact->name,
	                    "via", "sms", "node", m->node, "at", (json_int_t)m->received_at);
	int r;

	if (!c)
		return -ENOMEM;
	/* Applied here and now, inside the same transaction as the message: the decision is part
	 * of applying the message, on every node alike. */
	r = apply_ack(g, c, NULL); /* no origin: apply_ack() reads none */
	json_decref(c);
	if (r < 0)
		return r;
	/* Who sent it, in the alert's story (replicated with it): the contact and the number the
	 * acknowledgment came from, and where it was received. */
	utf8_snprintf(detail, sizeof(detail), "by %s from %s via sms (modem %s)", contact->name,
	              m->sender, m->modem);
	return store_history_add(g->store, alert_id, m->received_at, "acknowledged", m->node,
	                         detail);
}

/* Lists the matches with the codes that tell them apart. */
static int reply_choices(Gateway *g, const InboxMessage *m, const AckableList *l,
                         const Ackable *const *matches, size_t n, const char *verb,
                         const char *intro)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return -ENOMEM;
	fputs(intro, f);
	for (size_t i = 0; i < n && i < 4; i++) {
		char code[ACK_CODE_MAX + 1], q[BUNDLE_QUOTE_CHARS + 4];

		ack_code_unique(l, matches[i]->id, true, code);
		reply_quote(matches[i]->text, q);
		fprintf(f, "%s %s %s (%s)", i ? "," : "", verb, code, q);
	}
	if (n > 4)
		fprintf(f, " and %zu more", n - 4);
	if (fclose(f) != 0)
		return -ENOMEM;
	return reply_refusal(g, m, text);
}

/* The first role of the escalation chain, which TAKE takes over (else the first role). */
static const RoleConfig *take_role(Gateway *g)
{
	const RoleConfig *role = escalation_step_role(g, 0);

	return role ? role : g->config->n_roles > 0 ? &g->config->roles[0] : NULL;
}

static int reply_help(Gateway *g, const InboxMessage *m, bool asked)
{
	const RoleConfig *role = take_role(g);
	char text[200];

	utf8_snprintf(text, sizeof(text),
	              "%sReply ACK <code>, RES <code>, ESC <code> (page the next step now), WHO, "
	              "MAINT <key-prefix> 2h%s%s%s, HELP.",
	              asked ? "" : "Not understood. ", role ? ", TAKE [2h] (take over " : "",
	              role ? role->name : "", role ? ")" : "");
	return reply_refusal(g, m, text);
}

/* Tells the contact what their command did: one answer per received message. */
static int reply_done(Gateway *g, const ContactConfig *contact, const InboxMessage *m,
                      const char *text)
{
	_cleanup_free_ char *seed = NULL;

	if (asprintf(&seed, "done\n%s", m->key) < 0)
		return -ENOMEM;
	return reply_queue(g, "reply", seed, contact->number, text, m->node, m->received_at);
}

static int reply_who(Gateway *g, const ContactConfig *contact, const InboxMessage *m)
{
	_cleanup_free_ char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	if (!f)
		return -ENOMEM;
	fputs("On call:", f);
	for (size_t i = 0; i < g->config->n_roles; i++) {
		const RoleConfig *role = &g->config->roles[i];
		bool override = false;
		const ContactConfig *c = oncall_on_duty(g, role, m->received_at, &override);

		fprintf(f, "%s %s %s %s%s", i ? "," : "", role->name, c ? c->name : "nobody",
		        c ? c->number : "", override ? " (override)" : "");
	}
	if (g->config->n_roles == 0)
		fputs(" no roles configured", f);
	if (fclose(f) != 0)
		return -ENOMEM;
	return reply_done(g, contact, m, text);
}

/* TAKE: an override of the first role for the sender, until the duration asked for or else the
 * role's next hand-over (12 hours when it never hands over). */
static int take_now(Gateway *g, const ContactConfig *contact, const InboxMessage *m,
                    unsigned seconds)
{
	const RoleConfig *role = take_role(g);
	uint64_t until;
	char when[RFC3339_MAX], text[200];
	json_t *c;
	int r;

	if (!role)
		return reply_refusal(g, m, "TAKE: no role is configured to take over.");
	until = seconds ? m->received_at + (uint64_t)seconds * USEC_PER_SEC
	                : config_role_next_handoff(role, m->received_at);
	if (until <= m->received_at)
		until = m->received_at + TAKE_DEFAULT_USEC;
	c = change_pack("override", "{s:s, s:s, s:I, s:s, s:s, s:I}", "role", role->name, "contact",
	                contact->name, "until", (json_int_t)until, "by", contact->name, "node",
	                m->node, "at", (json_int_t)m->received_at);
	if (!c)
		return -ENOMEM;
	r = apply_override(g, c, NULL); /* no origin: apply_override() reads none */
	json_decref(c);
	if (r < 0)
		return r;
	log_info("TAKE by SMS from %s (%s): on duty for role '%s' until %s", contact->name,
	         m->sender, role->name, format_rfc3339(until, when));
	utf8_snprintf(text, sizeof(text), "TAKE: you are on call for %s until %s.", role->name,
	              when);
	return reply_done(g, contact, m, text);
}

/* RES: resolved by the contact; they get a confirmation instead of the all-clear. */
static int resolve_now(Gateway *g, const Ackable *a, const ContactConfig *contact,
                       const InboxMessage *m, const char *code)
{
	char q[BUNDLE_QUOTE_CHARS + 4], text[200];
	json_t *c = change_pack("resolve", "{s:s, s:s, s:s, s:s, s:I}", "id", a->id, "by",
	                        contact->name, "via", "sms", "node", m->node, "at",
	                        (json_int_t)m->received_at);
	int r;

	if (!c)
		return -ENOMEM;
	r = apply_resolve(g, c, NULL); /* no origin: apply_resolve() reads none */
	json_decref(c);
	if (r < 0)
		return r;
	log_ctx(LOG_INFO, &((LogContext){.alert_id = a->id}), "Resolved by SMS from %s (%s)",
	        contact->name, m->sender);
	reply_quote(a->text, q);
	utf8_snprintf(text, sizeof(text), "Resolved (%s) by %s: %s. Escalation stopped.", code,
	              contact->name, q);
	return reply_done(g, contact, m, text);
}

/* ESC: the next step of the chain is paged now instead of at its deadline. */
static int escalate_now(Gateway *g, const Ackable *a, const ContactConfig *contact,
                        const InboxMessage *m, const char *code)
{
	const RoleConfig *role = NULL;
	const ContactConfig *next = NULL;
	unsigned step = 0;
	bool active = false;
	char text[200];
	json_t *c;
	int r;

	r = store_alert_escalation(g->store, a->id, &step, &active);
	if (r < 0 && r != STORE_NOT_FOUND)
		return r;
	if (r <= 0 || !active) {
		utf8_snprintf(text, sizeof(text), "ESC %s: %s; nobody else was paged.", code,
		              r <= 0 ? "this alert does not escalate" : "its escalation has ended");
		return reply_refusal(g, m, text);
	}
	c = escalation_next_change(g, a->id, step, m->node, m->received_at, &next, &role);
	if (!c && next)
		return -ENOMEM; /* there is a next step; its change could not be built */
	if (!c) {
		utf8_snprintf(text, sizeof(text), "ESC %s: there is no next step to page.", code);
		return reply_refusal(g, m, text);
	}
	r = apply_escalate(g, c, NULL); /* no origin: apply_escalate() reads none */
	json_decref(c);
	if (r < 0)
		return r;
	utf8_snprintf(text, sizeof(text), "by %s from %s via sms", contact->name, m->sender);
	r = store_history_add(g->store, a->id, m->received_at, "escalation asked", m->node, text);
	if (r < 0)
		return r;
	utf8_snprintf(text, sizeof(text), "ESC %s: paging %s (%s) now.", code, next->name,
	              role->name);
	return reply_done(g, contact, m, text);
}

/* MAINT: a silence of the keys starting with prefix, its id derived from the message, so every
 * node makes the same one. */
static int maint_now(Gateway *g, const ContactConfig *contact, const InboxMessage *m,
                     const char *prefix, unsigned seconds)
{
	_cleanup_free_ char *seed = NULL;
	uint64_t until = m->received_at + (uint64_t)seconds * USEC_PER_SEC;
	char id[ID_HEX_LEN + 1], reason[96], when[RFC3339_MAX], text[200];
	json_t *c;
	int r;

	if (asprintf(&seed, "maint\n%s", m->key) < 0)
		return -ENOMEM;
	hash128_hex(seed, strlen(seed), id);
	utf8_snprintf(reason, sizeof(reason), "MAINT by SMS from %s", m->sender);
	c = change_pack("silence", "{s:s, s:s, s:s, s:b, s:I, s:s, s:s, s:s, s:I}", "id", id,
	                "field", "key_prefix", "value", prefix, "except_critical", 0, "until",
	                (json_int_t)until, "by", contact->name, "reason", reason, "node", m->node,
	                "at", (json_int_t)m->received_at);
	if (!c)
		return -ENOMEM;
	r = apply_silence(g, c, NULL); /* no origin: apply_silence() reads none */
	json_decref(c);
	if (r < 0)
		return r;
	utf8_snprintf(text, sizeof(text),
	              "MAINT: alerts with keys starting with %s are held back until %s (silence "
	              "%.8s).",
	              prefix, format_rfc3339(until, when), id);
	return reply_done(g, contact, m, text);
}

/* An SMS arrived (stored, and new): a command, or something to answer with the help.
 *
 * Only a configured contact's own number is acted on or answered; anything else stays in the
 * inbox and nothing more. The coded commands act only on an alert the contact was paged for:
 * one with a delivery (not a copy) to their number, which the deliveries table holds alike on
 * every node. */
int oncall_sms_received(Gateway *g, const InboxMessage *m)
{
	_cleanup_(ackable_list_done) AckableList l = {0};
	_cleanup_free_ const Ackable **matches = NULL;
	const ContactConfig *contact = contact_by_number(g, m->sender);
	char code[ACK_CODE_MAX + 1], detail[160];
	unsigned seconds;
	ReplyKind kind = ackcode_parse(m->text, code, &seconds);
	const char *verb = kind == REPLY_RESOLVE ? "RES" : kind == REPLY_ESCALATE ? "ESC" : "ACK";
	size_t n = 0, n_open = 0;
	int r;

	if (!contact) {
		log_info(
		        "SMS from %s: not an on-call contact; recorded, not acted on, not answered",
		        m->sender);
		return 0;
	}
	{
		char prefix[REPLY_MAINT_PREFIX_MAX + 1];
		unsigned maint;

		if (ackcode_parse_maint(m->text, prefix, &maint))
			return maint_now(g, contact, m, prefix, maint);
	}
	switch (kind) {
	case REPLY_OTHER:
	case REPLY_HELP:
		return reply_help(g, m, kind == REPLY_HELP);
	case REPLY_WHO:
		return reply_who(g, contact, m);
	case REPLY_TAKE:
		return take_now(g, contact, m, seconds);
	default:
		break;
	}

	r = store_ackable(g->store, m->received_at, ackable_add, &l);
	if (r < 0)
		return r;
	matches = calloc(l.n + 1, sizeof(*matches));
	if (!matches)
		return -ENOMEM;
	/* The alerts paged to this contact that the reply names, open ones first: an acknowledged
	 * alert that shares the digits does not make the code ambiguous. For RES an acknowledged
	 * alert is as open as any (resolved ones are not in the list). */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < l.n; i++) {
			bool done = kind == REPLY_RESOLVE ? false : l.v[i].acked, dup = false;

			if (done != (pass == 1) || !streq(l.v[i].number, contact->number) ||
			    (kind == REPLY_ACK_BARE ? done : !ackcode_matches(l.v[i].id, code)))
				continue;
			for (size_t j = 0; j < n; j++)
				dup |= streq(matches[j]->id, l.v[i].id);
			if (!dup) {
				matches[n++] = &l.v[i];
				n_open += pass == 0;
			}
		}

	if (kind == REPLY_ACK_BARE && n_open == 0)
		return reply_refusal(g, m, "No open alert of yours to acknowledge.");
	if (kind == REPLY_ACK_BARE && n_open > 1) {
		utf8_snprintf(detail, sizeof(detail),
		              "You have %zu open alerts; reply with a code:", n_open);
		return reply_choices(g, m, &l, matches, n_open, verb, detail);
	}
	if (n == 0) {
		log_info("%s %s from %s (%s): no alert paged to this contact has this code", verb,
		         code, contact->name, m->sender);
		utf8_snprintf(detail, sizeof(detail),
		              "%s %s: no alert sent to you has this code; nothing was %s.", verb,
		              code,
		              kind == REPLY_RESOLVE    ? "resolved"
		              : kind == REPLY_ESCALATE ? "escalated"
		                                       : "acknowledged");
		return reply_refusal(g, m, detail);
	}
	if (n_open > 1) {
		utf8_snprintf(detail, sizeof(detail), "%s %s fits %zu open alerts; reply", verb,
		              code, n_open);
		return reply_choices(g, m, &l, matches, n_open, verb, detail);
	}
	if (n_open == 0) {
		_cleanup_(json_decrefp) json_t *alert = NULL;

		r = store_alert_json(g->store, matches[0]->id, false, &alert);
		if (r < 0)
			return r;
		utf8_snprintf(detail, sizeof(detail), "%s %s: already acknowledged by %s.", verb,
		              code, jstr(json_object_get(alert, "ack"), "by"));
		return reply_refusal(g, m, detail);
	}
	if (kind == REPLY_RESOLVE)
		return resolve_now(g, matches[0], contact, m, code);
	if (kind == REPLY_ESCALATE)
		return escalate_now(g, matches[0], contact, m, code);
	log_ctx(LOG_INFO, &((LogContext){.alert_id = matches[0]->id}),
	        "Acknowledged by SMS from %s (%s)", contact->name, m->sender);
	return ack_publish_now(g, matches[0]->id, contact, m);
}
