/* gateway-quarantine: received messages that were never decoded.
 *
 * The modem room refuses to decode a stored PDU whose lengths break TS 23.040 (libgammu's decoder
 * would overflow its buffers on it) or that crashed the decoder once; it reports it raw instead,
 * as MODEM_EVENT_SMS_QUARANTINED. Such a message is replicated and stored like any received SMS
 * (change "sms_quarantined", a row of the inbox with its reason in the quarantine column and the
 * raw PDU as its text), so that an operator sees on either node what came in and why it was set
 * aside; the modem deletes it from the SIM once that change is committed, exactly as for sms_in,
 * and it is never decoded or acted on. A journal warning and the event sms_quarantined say so. */
#include "gateway-internal.h"

int quarantine_modem_event(Gateway *g, ModemSlot *slot, const ModemEvent *ev)
{
	json_t *c = change_pack(
	        "sms_quarantined", "{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:I}", "key", ev->key,
	        "node", g->config->node_name, "modem", slot->config->name, "pdu",
	        ev->text ? ev->text : "", "reason", ev->error[0] ? ev->error : "not decoded",
	        "slot", ev->slot, "at",
	        (json_int_t)(ev->received_usec ? ev->received_usec : now_realtime_usec()), "token",
	        (json_int_t)ev->token);

	return publish_outbox_add(g, c, NULL);
}

int apply_sms_quarantined(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
	char at[RFC3339_MAX];
	InboxMessage m = {
	        .key = jstr(c, "key"),
	        .node = jstr(c, "node"),
	        .modem = jstr(c, "modem"),
	        .sender = "",
	        .text = jstr(c, "pdu"),
	        .parts = 1,
	        .received_at = ju64(c, "at"),
	        .quarantine = jstr(c, "reason"),
	};
	const char *where = jstr(c, "slot");
	int r;

	if (!m.quarantine[0])
		m.quarantine = "not decoded";
	r = store_inbox_insert(g->store, &m);
	if (r < 0)
		return r;
	modems_token_confirm_later(g, c);
	if (r == 0)
		return 0; /* read again after a reconnect: stored already */
	log_ctx(LOG_WARNING,
	        &((LogContext){.modem = m.modem,
	                       .node = m.node,
	                       .message_id = MESSAGE_ID_SMS_QUARANTINED}),
	        "SMS quarantined on node %s, modem %s (%s), not decoded: %s; raw PDU %.80s%s",
	        m.node, m.modem, where, m.quarantine, m.text, strlen(m.text) > 80 ? "..." : "");
	publish_event(g, "sms_quarantined",
	              json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "key", m.key, "node", m.node,
	                        "modem", m.modem, "slot", where, "reason", m.quarantine, "pdu",
	                        m.text, "received_at", format_rfc3339(m.received_at, at)));
	return 0;
}
