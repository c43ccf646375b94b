/* handlers: the kinds of change_kinds[] bound to the gateway's functions; see handlers.h.
 *
 * The binding used to be a field of the schema table itself, which tied the wire contract to
 * the Gateway. It is by name so that the schema (gatewayd/protocol/change.c) can be read, tested
 * and fuzzed without the gateway, while a kind added there without a handler here still fails a
 * unit test rather than reaching a node. */
#include "handlers.h"

#include <errno.h>

#include "gateway-internal.h"

static const struct {
	const char *name;
	ChangeHandler apply;
} handlers[] = {
        {"submit", apply_submit},
        {"assign", apply_assign},
        {"result", apply_result},
        {"expire", apply_expire},
        {"ack", apply_ack},
        {"resolve", apply_resolve},
        {"silence", apply_silence},
        {"unsilence", apply_unsilence},
        {"escalate", apply_escalate},
        {"sms_in", apply_sms_in},
        {"report", apply_report},
        {"sms_quarantined", apply_sms_quarantined},
        {"call", apply_call},
        {"override", apply_override},
        {"hello", apply_hello},
        {"health", apply_health},
        {"confirm", apply_confirm},
        {"merge", apply_merge},
        {"synced", apply_synced},
        {"check", apply_check},
        {"digest", apply_digest},
        {"resync", apply_resync},
        {"hold", apply_hold},
        {"hook", apply_hook},
        {"heartbeat", apply_heartbeat},
        {"missed", apply_missed},
};

ChangeHandler handlers_find(const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(handlers); i++)
		if (streq(handlers[i].name, name))
			return handlers[i].apply;
	return NULL;
}

int handlers_apply(Gateway *g, const ChangeKind *kind, json_t *c, const ChangeOrigin *origin)
{
	ChangeHandler apply = handlers_find(kind->name);

	if (!apply) {
		log_error("Bug: no handler for change '%s' in this build", kind->name);
		return -EINVAL;
	}
	return apply(g, c, origin);
}
