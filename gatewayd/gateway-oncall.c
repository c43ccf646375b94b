/* gateway-oncall: who is on duty, and the overrides that change it.
 *
 * Two things decide who a "role:NAME" pages. The rotation is a pure function of the
 * configuration and the instant (config_role_on_duty()), so every node computes it alike without
 * keeping state. An override ("carol covers primary until Friday 18:00") is state an operator
 * sets, so it is replicated like an acknowledgment: the request becomes an "override" change in
 * the outbox, every node applies it in agreed order (store-oncall.c keeps the greater write, so
 * replays and merges agree), and the client is answered once it is committed everywhere.
 *
 * The person is chosen when an alert is accepted, on the node that accepts it, and the resolved
 * number travels inside the submit change: nothing is resolved again while applying, so a
 * hand-over or an override between acceptance and delivery never splits the nodes. An override
 * ends by itself: it is in force while its end lies after the instant asked about, so no timer
 * and no change is needed when it runs out. */
#include "gateway-internal.h"

#include <time.h>

/* An override is for covering a shift or a holiday, not a new rotation. */
#define OVERRIDE_MAX_AHEAD_USEC (90 * 86400 * USEC_PER_SEC)

static void override_refusal(Gateway *g, const ServerPeer *peer, const char *code,
                             const char *detail)
{
	_cleanup_free_ char *text = request_reply_error(code, detail);

	if (text)
		server_reply(g->server, peer, text);
}

static const ContactConfig *on_duty(Gateway *g, const RoleConfig *role, uint64_t at,
                                    Override *ret_override, bool *ret_overridden)
{
	Override o;
	int r;

	*ret_overridden = false;
	r = store_override_get(g->store, role->name, at, &o);
	if (r < 0)
		log_error_errno(r,
		                "Cannot read the override of role '%s', following its rotation: %m",
		                role->name);
	if (r > 0) {
		const ContactConfig *c = config_find_contact(g->config, o.contact);

		if (c) {
			*ret_overridden = true;
			if (ret_override)
				*ret_override = o;
			return c;
		}
		/* Removed from gatewayd.conf since: paging nobody would be worse than the rota. */
		log_warning("Override of role '%s' names contact '%s', which is not configured: "
		            "following the rotation",
		            role->name, o.contact);
	}
	return config_role_on_duty(g->config, role, at);
}

const ContactConfig *oncall_on_duty(Gateway *g, const RoleConfig *role, uint64_t at,
                                    bool *ret_override)
{
	bool overridden;
	const ContactConfig *c = on_duty(g, role, at, NULL, &overridden);

	if (ret_override)
		*ret_override = overridden;
	return c;
}

static json_t *time_json(uint64_t usec)
{
	char buf[RFC3339_MAX];

	return usec ? json_string(format_rfc3339(usec, buf)) : json_null();
}

static const char *rotation_to_string(Rotation r)
{
	return r == ROTATION_DAILY ? "daily" : r == ROTATION_WEEKLY ? "weekly" : "none";
}

/* The hand-over as configured ("mon 09:00", "09:00"); null without a rotation. */
static json_t *handoff_json(const RoleConfig *role)
{
	static const char *const days[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};
	int h = role->handoff_minutes / 60, m = role->handoff_minutes % 60;

	if (role->rotation == ROTATION_NONE)
		return json_null();
	if (role->rotation == ROTATION_WEEKLY && role->handoff_wday >= 0 &&
	    role->handoff_wday < (int)ELEMENTSOF(days))
		return json_sprintf("%s %02d:%02d", days[role->handoff_wday], h, m);
	return json_sprintf("%02d:%02d", h, m);
}

static json_t *contact_json(const ContactConfig *c, uint64_t at)
{
	json_t *o = json_pack("{s:s, s:s}", "contact", c->name, "number", c->number);

	if (o && at)
		json_object_set_new(o, "at", time_json(at));
	return o;
}

static json_t *role_json(Gateway *g, const RoleConfig *role, uint64_t at)
{
	Override o = {0};
	bool overridden;
	const ContactConfig *who = on_duty(g, role, at, &o, &overridden), *next_who = NULL;
	uint64_t next = config_role_next_handoff(role, at);
	json_t *contacts = json_array();

	if (next)
		next_who = config_role_on_duty(g->config, role, next);
	for (size_t i = 0; contacts && i < role->n_contacts; i++)
		json_array_append_new(contacts, json_string(role->contacts[i]));
	return json_pack("{s:s, s:s?, s:s?, s:s, s:o, s:o, s:o, s:s, s:o}", "role", role->name,
	                 "contact", who ? who->name : NULL, "number", who ? who->number : NULL,
	                 "source", overridden ? "override" : "rotation", "until",
	                 overridden ? time_json(o.until) : json_null(), "next",
	                 next_who ? contact_json(next_who, next) : json_null(), "contacts",
	                 contacts, "rotation", rotation_to_string(role->rotation), "handoff",
	                 handoff_json(role));
}

void oncall_handle_query(Gateway *g, const ServerPeer *peer, Request *req)
{
	uint64_t at = req->at ? req->at : now_realtime_usec();
	_cleanup_(json_decrefp) json_t *roles = json_array(), *steps = json_array();
	_cleanup_(json_decrefp) json_t *reply = NULL;
	_cleanup_free_ char *text = NULL;

	for (size_t i = 0; roles && i < g->config->n_roles; i++) {
		json_t *r = role_json(g, &g->config->roles[i], at);

		if (!r || json_array_append_new(roles, r) < 0) {
			override_refusal(g, peer, "storage_error", "out of memory");
			return;
		}
	}
	for (size_t i = 0; steps && i < g->config->n_escalation_steps; i++)
		json_array_append_new(steps, json_string(g->config->escalation_steps[i]));
	if (roles && steps)
		reply = json_pack("{s:b, s:o, s:O, s:{s:O, s:I}}", "ok", 1, "at", time_json(at),
		                  "roles", roles, "escalation", "steps", steps, "step_timeout",
		                  (json_int_t)g->config->escalation_step_timeout);
	text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
	if (!text) {
		override_refusal(g, peer, "storage_error", "out of memory");
		return;
	}
	server_reply(g->server, peer, text);
}

void oncall_handle_override(Gateway *g, const ServerPeer *peer, Request *req)
{
	const RoleConfig *role = config_find_role(g->config, req->role);
	const ContactConfig *contact = NULL;
	uint64_t now = now_realtime_usec();
	char detail[160];
	Pending *p;
	json_t *c;

	if (stall_refuses(g, peer))
		return;
	if (!role) {
		utf8_snprintf(detail, sizeof(detail), "no role named '%s'", req->role);
		override_refusal(g, peer, "unknown_role", detail);
		return;
	}
	if (!req->clear) {
		char until[RFC3339_MAX];

		contact = config_find_contact(g->config, req->contact);
		if (!contact) {
			utf8_snprintf(
			        detail, sizeof(detail),
			        "no contact named '%s' (a [contact] section of gatewayd.conf)",
			        req->contact);
			override_refusal(g, peer, "bad_request", detail);
			return;
		}
		if (req->until <= now || req->until > now + OVERRIDE_MAX_AHEAD_USEC) {
			snprintf(detail, sizeof(detail), "'until' (%s) is %s",
			         format_rfc3339(req->until, until),
			         req->until <= now ? "in the past" : "more than 90 days ahead");
			override_refusal(g, peer, "bad_request", detail);
			return;
		}
	}

	p = calloc(1, sizeof(*p));
	if (!p) {
		override_refusal(g, peer, "storage_error", "out of memory");
		return;
	}
	p->peer = *peer;
	p->kind = PENDING_OVERRIDE;
	snprintf(p->role, sizeof(p->role), "%s", role->name);
	snprintf(p->contact, sizeof(p->contact), "%s", contact ? contact->name : "");
	p->until = contact ? req->until : 0;
	c = change_pack("override", "{s:s, s:s?, s:I, s:s, s:s, s:I}", "role", role->name,
	                "contact", contact ? contact->name : NULL, "until", (json_int_t)p->until,
	                "by", req->by ? req->by : "unknown", "node", g->config->node_name, "at",
	                (json_int_t)now);
	if (publish_outbox_add(g, c, p) < 0)
		override_refusal(g, peer, "storage_error", "out of memory");
}

int apply_override(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
	const char *role = jstr(c, "role"), *by = jstr(c, "by");
	const char *contact = json_string_value(json_object_get(c, "contact"));
	uint64_t until = ju64(c, "until");
	char at[RFC3339_MAX];
	int r;

	r = store_override_set(g->store, role, contact, until, ju64(c, "at"), by);
	if (r == STORE_INVALID) {
		log_warning("Ignoring a malformed on-call override from node '%s'",
		            jstr(c, "node"));
		return 0;
	}
	if (r <= 0)
		return r; /* an error, or a later override of the role is stored already */
	if (contact)
		log_info("On-call override: %s is on duty for role '%s' until %s (set by %s on %s)",
		         contact, role, format_rfc3339(until, at), by, jstr(c, "node"));
	else
		log_info("On-call override of role '%s' cleared by %s on %s: the rotation applies",
		         role, by, jstr(c, "node"));
	publish_event(g, "oncall_override",
	              json_pack("{s:s, s:s?, s:o, s:s}", "role", role, "contact", contact, "until",
	                        contact ? time_json(until) : json_null(), "by", by));
	return 0;
}

json_t *oncall_override_reply(const Pending *p)
{
	return json_pack("{s:b, s:s, s:s?, s:o}", "ok", 1, "role", p->role, "contact",
	                 p->contact[0] ? p->contact : NULL, "until",
	                 p->contact[0] ? time_json(p->until) : json_null());
}
