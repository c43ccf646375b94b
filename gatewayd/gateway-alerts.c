/* gateway-alerts: the replicated changes of an alert's life, as applied to the store.
 *
 * Submitted, assigned to a modem, sent or failed, expired, acknowledged; and what this node's
 * modems receive: SMS and delivery reports. These are handlers of change_kinds[] (change.h),
 * run inside the transaction of their payload (gateway-apply.c): decisions that must agree
 * cluster-wide (dedupe, the order of state changes) are taken here from data inside the
 * changes, never from the local clock. What follows a commit (events, jobs for the modems,
 * voice checks) is only collected. */
#include "gateway-internal.h"

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
	if (r > 0 && streq(first_id, a.id))
		return 0; /* this very submit, applied again (a replay, an exchange): nothing new */
	if (r > 0) {
		/* The problem came back after its alert was resolved or silenced: that is news,
		 * not a duplicate of an alert that is over or that nobody heard of. */
		r = store_alert_is_over(g->store, first_id);
		if (r < 0)
			return r;
		if (r > 0)
			log_ctx(LOG_INFO, &((LogContext){.alert_id = a.id}),
			        "Key '%s' fires again after alert %s was resolved or silenced: a "
			        "new alert",
			        a.key, first_id);
		r = !r;
	}
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
	r = silences_apply_to(g, &a, origin);
	if (r != 0)
		return r < 0 ? r : 0; /* recorded, held back: no event "queued", no voice check */
	g->dispatch.wanted = true;
	publish_event(g, "queued",
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
		g->dispatch.wanted = true;
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
	uint64_t resolved_at = 0;
	int r;

	r = store_delivery_result(g->store, id, to, &res, &change);
	if (r <= 0)
		return r;
	g->dispatch.wanted = true;
	if (change.new_state == DELIVERY_SENT) {
		log_ctx(LOG_INFO, log_ctx_id(&ctx, MESSAGE_ID_SENT), "Sent to %s", to);
		publish_event(g, "sent",
		              json_pack("{s:s, s:s, s:s, s:s, s:I}", "id", id, "to", to, "node",
		                        res.node, "modem", res.modem, "at",
		                        (json_int_t)(res.at / USEC_PER_MSEC)));
		/* The step this page belongs to waits step_timeout from now. */
		r = escalation_page_left(g, id, to, res.at, res.node, "SMS");
		if (r < 0)
			return r;
		/* A page that was on its way when the alert was resolved reached someone: they
		 * get the all-clear too. It follows the resolve even when the modem finished the
		 * page (res.at) before the resolve was applied. */
		r = store_alert_resolved_at(g->store, id, &resolved_at);
		if (r > 0)
			r = escalation_all_clear(g, id, to, res.node,
			                         MAX(res.at, resolved_at + ALL_CLEAR_AFTER_USEC));
		if (r < 0)
			return r;
	} else if (change.new_state == DELIVERY_FAILED) {
		log_ctx(LOG_WARNING, log_ctx_id(&ctx, MESSAGE_ID_FAILED),
		        "Failed for good to %s: %s", to, res.error ? res.error : "?");
		publish_event(g, "failed",
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
	publish_event(g, "expired", json_pack("{s:s, s:i}", "id", id, "deliveries", r));
	return 0;
}

int apply_ack(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
	const char *id = jstr(c, "id");
	int r;

	r = store_alert_ack(g->store, id, jstr(c, "by"), jstr(c, "via"), ju64(c, "at"));
	if (r == STORE_NOT_FOUND)
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
		r = hooks_ack_later(g, c);
		if (r < 0)
			return r;
		publish_event(g, "acknowledged",
		              json_pack("{s:s, s:s, s:s, s:s}", "id", id, "by", jstr(c, "by"),
		                        "via", jstr(c, "via"), "at",
		                        format_rfc3339(ju64(c, "at"), at)));
	}
	return 0;
}

static int collect_number(const char *number, void *userdata)
{
	return json_array_append_new(userdata, json_string(number)) < 0 ? -ENOMEM : 0;
}

int apply_resolve(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
	const char *id = jstr(c, "id"), *by = jstr(c, "by"), *via = jstr(c, "via"),
	           *node = jstr(c, "node");
	uint64_t at = ju64(c, "at");
	const ContactConfig *resolver = streq(via, "sms") ? contact_by_word(g, by) : NULL;
	_cleanup_(json_decrefp) json_t *paged = json_array();
	char detail[192], when[RFC3339_MAX];
	unsigned cancelled, calls;
	size_t i;
	json_t *v;
	int r;

	if (!paged)
		return -ENOMEM;
	r = store_alert_resolve(g->store, id, by, via, at, &cancelled);
	if (r == STORE_NOT_FOUND || r == 0)
		return 0; /* unknown here, or resolved already: once only */
	if (r < 0)
		return r;
	calls = voice_drop_alert(g, id);
	r = store_alert_paged(g->store, id, collect_number, paged);
	if (r < 0)
		return r;
	utf8_snprintf(detail, sizeof(detail), "by %s via %s; %u delivery(ies) cancelled", by, via,
	              cancelled);
	r = store_history_add(g->store, id, at, "resolved", node, detail);
	if (r < 0)
		return r;
	json_array_foreach(paged, i, v)
	{
		/* Who resolved it by SMS gets a confirmation instead (gateway-commands.c). */
		if (resolver && streq(resolver->number, json_string_value(v)))
			continue;
		r = escalation_all_clear(g, id, json_string_value(v), node,
		                         at + ALL_CLEAR_AFTER_USEC);
		if (r < 0)
			return r;
	}
	log_ctx(LOG_INFO, &((LogContext){.alert_id = id, .message_id = MESSAGE_ID_RESOLVED}),
	        "Resolved by %s via %s: %u delivery(ies) and %u voice call(s) not made, %zu "
	        "number(s) it reached to be told",
	        by, via, cancelled, calls,
	        g->config->escalation_notify_resolved ? json_array_size(paged) : 0);
	publish_event(g, "resolved",
	              json_pack("{s:s, s:s, s:s, s:s, s:i}", "id", id, "by", by, "via", via, "at",
	                        format_rfc3339(at, when), "cancelled", (int)cancelled));
	return 0;
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
		modems_token_confirm_later(g, c);
		selftest_arrived(g, &m);
		return 0;
	}
	r = store_inbox_insert(g->store, &m);
	if (r < 0)
		return r;
	modems_token_confirm_later(g, c);
	if (r == 0)
		return 0; /* read again after a reconnect: stored already */
	/* What people write stays out of the journal but at debug level. */
	log_ctx(LOG_INFO, &((LogContext){.modem = m.modem}), "SMS from %s (%zu bytes)", m.sender,
	        strlen(m.text));
	log_ctx(LOG_DEBUG, &((LogContext){.modem = m.modem}), "SMS from %s: %s", m.sender, m.text);
	publish_event(g, "sms_received",
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
	modems_token_confirm_later(g, c);
	if (r > 0) {
		log_ctx(LOG_INFO, &((LogContext){.alert_id = id, .modem = rep.modem}),
		        "Delivered to %s's handset", number);
		publish_event(g, "delivered",
		              json_pack("{s:s, s:s, s:s, s:s}", "id", id, "to", number, "node",
		                        rep.node, "modem", rep.modem));
	}
	return 0;
}
