/* change: one table says what each replicated change carries, and everything reads it.
 *
 * The changes are the product's most important contract: two nodes of different releases must
 * read each other's. They used to be written by json_pack formats in several rooms and read by
 * helpers that turn a missing key into "" or 0, so a change that lost a field was applied as if
 * it had said nothing. Here each kind lists its fields once: apply_payload() refuses a change
 * that does not match (skipped alike on every node, since all apply the same check to the same
 * bytes), change_pack() checks what this node builds, and doc/replication.md is printed from
 * it.
 * The handlers still read with jstr()/ju64(), which can no longer meet a missing field.
 *
 * The table is pure schema: it lives in the protocol room with no I/O and nothing of the
 * Gateway, so the unit tests and fuzz targets link it alone; gatewayd/handlers.c says which
 * gateway function applies each kind. */
#include "change.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "log.h"
#include "macro.h"

#define S(k)                                                                                       \
	{                                                                                          \
		k, CHANGE_STRING, false                                                            \
	}
#define SN(k)                                                                                      \
	{                                                                                          \
		k, CHANGE_STRING_OR_NULL, false                                                    \
	}
#define I(k)                                                                                       \
	{                                                                                          \
		k, CHANGE_INTEGER, false                                                           \
	}
#define B(k)                                                                                       \
	{                                                                                          \
		k, CHANGE_BOOLEAN, false                                                           \
	}
#define A(k)                                                                                       \
	{                                                                                          \
		k, CHANGE_ARRAY, false                                                             \
	}

const ChangeKind change_kinds[] = {
        {"submit",
         "An alert accepted by node `node` at `at`: queued for `to` and `copy` unless its `key` "
         "was seen within the dedupe window (then recorded as a duplicate of the first).",
         {S("id"),
          S("key"),
          S("text"),
          B("critical"),
          I("ttl"),
          A("to"),
          A("copy"),
          SN("source"),
          S("node"),
          I("at"),
          {"escalate", CHANGE_BOOLEAN, true}}},
        {"assign",
         "Node `node` hands the delivery of alert `id` to `to` to its modem `modem`.",
         {S("id"), S("to"), S("node"), S("modem"), I("at")}},
        {"result",
         "A send attempt of the delivery of alert `id` to `to` ended: sent (`ok`), failed for good "
         "(`permanent`) or to be retried (at once with `retry_now`).",
         {S("id"),
          S("to"),
          S("node"),
          S("modem"),
          I("at"),
          B("ok"),
          B("permanent"),
          B("retry_now"),
          SN("error"),
          {"ref", CHANGE_INTEGER, true}}},
        {"hold",
         "The delivery of alert `id` to `to` waits until `until`: its number had its [limits] "
         "sms. Then it goes out in one message with everything else waiting for that number.",
         {S("id"), S("to"), I("until"), S("node"), I("at")}},
        {"expire",
         "Alert `id`'s time to live ran out: its deliveries not yet final expire.",
         {S("id"), I("at")}},
        {"ack",
         "Alert `id` is acknowledged by `by` via `api`, `sms` or `voice`; once only.",
         {S("id"), S("by"), S("via"), {"node", CHANGE_STRING, true}, I("at")}},
        {"resolve",
         "Alert `id` is resolved by `by` via `api` or `sms`; once only (the earlier wins in a "
         "merge). Its escalation stops, its deliveries not yet sent become `cancelled`, and "
         "those it reached get an all-clear.",
         {S("id"), S("by"), S("via"), S("node"), I("at")}},
        {"silence",
         "Silence `id`, made by `by` on `node` at `at`, holds back the alerts accepted until "
         "`until` whose `field` (`key_prefix`, `source` or `text_contains`) matches `value`, "
         "critical ones too unless `except_critical`; such an alert is recorded, marked "
         "`silenced`, and not sent.",
         {S("id"), S("field"), S("value"), B("except_critical"), I("until"), S("by"), S("reason"),
          S("node"), I("at")}},
        {"unsilence",
         "Silence `id` ends at `at`, ended by `by`; the earlier end wins in a merge.",
         {S("id"), S("by"), S("node"), I("at")}},
        {"heartbeat",
         "The monitor `name` ([heartbeat NAME]) pinged `node` at `at`: its deadline moves, and "
         "its open alert (key `heartbeat/NAME`) is resolved.",
         {S("name"), S("node"), I("at")}},
        {"missed",
         "The monitor `name` had no ping by `due`: once per deadline, and unless a ping "
         "applied before moved it, its alert is queued (key `heartbeat/NAME`, id from the name "
         "and `due`, accepted by `node` at `at`).",
         {S("name"), I("due"), S("node"), I("at")}},
        {"hook",
         "The [hooks] command `hook` (`on_ack`) run on `node` for alert `id` ended with "
         "`outcome`: a `write-back` line of the alert's story.",
         {S("id"), S("hook"), S("node"), I("at"), S("outcome")}},
        {"escalate",
         "Alert `id` moves to escalation step `step` (from 1): `contact` of `role` is paged at "
         "`to`.",
         {S("id"), I("step"), S("role"), S("contact"), S("to"), S("node"), I("at")}},
        {"sms_in",
         "An SMS received by `modem` of `node`; the modem deletes it from the SIM (`token`) once "
         "this is committed.",
         {S("key"), S("node"), S("modem"), S("from"), S("text"), I("parts"), I("smsc_at"), I("at"),
          I("token")}},
        {"report",
         "A delivery report received by `modem` of `node` for the message with reference `ref`.",
         {S("key"), S("node"), S("modem"), I("ref"), B("delivered"), B("permanent"), S("status"),
          I("at"), I("token")}},
        {"sms_quarantined",
         "A received message that was never decoded, kept as its raw `pdu` with the `reason`.",
         {S("key"), S("node"), S("modem"), S("pdu"), S("reason"), S("slot"), I("at"), I("token")}},
        {"call",
         "A voice call about alert `id` to `number` ended with `outcome`; `dtmf_ack` when the "
         "callee acknowledged by key press.",
         {S("id"), S("number"), S("node"), S("modem"), I("at"), S("outcome"), I("duration"),
          SN("error"), B("dtmf_ack")}},
        {"override",
         "`contact` is on duty for `role` until `until`, set by `by`; a null `contact` clears the "
         "override.",
         {S("role"), SN("contact"), I("until"), S("by"), S("node"), I("at")}},
        {"hello",
         "Node `node` announces itself: protocol `version`, configuration `fingerprint`, voice, "
         "its modems; `store` while its store cannot commit, and why; `store_id`, the identity "
         "of its store (a node back with another store is sent everything in the exchange).",
         {S("node"),
          I("nodeid"),
          I("at"),
          S("fingerprint"),
          I("version"),
          B("voice"),
          A("modems"),
          {"store", CHANGE_STRING, true},
          {"store_id", CHANGE_INTEGER, true}}},
        {"health",
         "Node `node`'s modems changed state, or its store stopped or started committing again: "
         "`store` says why it cannot, and is absent when it can. A node whose store cannot "
         "commit sends nothing; its peer takes its deliveries and pages about it.",
         {S("node"), A("modems"), {"store", CHANGE_STRING, true}}},
        {"confirm",
         "Node `node` has committed the payloads of node `origin` up to `seq` (cumulative).",
         {S("node"), S("origin"), I("seq")}},
        {"merge",
         "A chunk of node `node`'s state in exchange round `round`: `items` of `kind` `alerts`, "
         "`dedupe`, `inbox`, `overrides`, `silences` or `heartbeats`, merged as joins.",
         {S("node"), I("round"), S("kind"), A("items")}},
        {"synced",
         "Node `node` has sent all its state (`records` records) in exchange round `round`.",
         {S("node"), I("round"), I("records")}},
        {"check",
         "Node `node` asks every node for the digest of its store at this point of the order.",
         {S("node"), S("round"), I("at")}},
        {"digest",
         "Node `node`'s store digest `value` (and `open` alerts) for the check `check` "
         "(`node/round` of the check).",
         {S("node"), S("check"), S("value"), I("open")}},
        {"resync",
         "Node `node` found the stores apart: every node exchanges its state.",
         {S("node")}},
};

const size_t change_kinds_n = ELEMENTSOF(change_kinds);

static const char *const type_names[] = {
        [CHANGE_STRING] = "string",   [CHANGE_STRING_OR_NULL] = "string or null",
        [CHANGE_INTEGER] = "integer", [CHANGE_BOOLEAN] = "boolean",
        [CHANGE_ARRAY] = "array",
};

static bool type_matches(ChangeType type, const json_t *v)
{
	switch (type) {
	case CHANGE_STRING:
		return json_is_string(v);
	case CHANGE_STRING_OR_NULL:
		return json_is_string(v) || json_is_null(v);
	case CHANGE_INTEGER:
		return json_is_integer(v);
	case CHANGE_BOOLEAN:
		return json_is_boolean(v);
	case CHANGE_ARRAY:
		return json_is_array(v);
	}
	return false;
}

static int refuse(char *err, size_t errsize, const char *format, ...) _printf_(3, 4);

static int refuse(char *err, size_t errsize, const char *format, ...)
{
	va_list ap;

	if (err && errsize > 0) {
		va_start(ap, format);
		vsnprintf(err, errsize, format, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int change_check(const json_t *c, const ChangeKind **ret_kind, char *err, size_t errsize)
{
	const char *name = json_string_value(json_object_get(c, "t"));
	const ChangeKind *kind = NULL;

	if (!json_is_object(c))
		return refuse(err, errsize, "a change that is not a JSON object");
	if (!name)
		return refuse(err, errsize, "a change without a kind (string 't')");
	for (size_t i = 0; i < change_kinds_n && !kind; i++)
		if (streq(change_kinds[i].name, name))
			kind = &change_kinds[i];
	if (!kind)
		return refuse(err, errsize, "change of unknown kind '%s'", name);
	for (const ChangeField *f = kind->fields; f->key; f++) {
		const json_t *v = json_object_get(c, f->key);

		if (!v && !f->optional)
			return refuse(err, errsize, "change '%s': field '%s' missing", name,
			              f->key);
		if (v && !type_matches(f->type, v))
			return refuse(err, errsize, "change '%s': field '%s' is not of type %s",
			              name, f->key, type_names[f->type]);
	}
	if (ret_kind)
		*ret_kind = kind;
	return 0;
}

json_t *change_pack(const char *kind, const char *fmt, ...)
{
	char why[200];
	json_t *c;
	va_list ap;

	va_start(ap, fmt);
	c = json_vpack_ex(NULL, 0, fmt, ap);
	va_end(ap);
	if (!c)
		return NULL;
	if (json_object_set_new(c, "t", json_string(kind)) < 0) {
		json_decref(c);
		return NULL;
	}
	if (change_check(c, NULL, why, sizeof(why)) < 0)
		log_error("Bug: this node built a change that breaks the replication schema, which "
		          "every node will skip: %s",
		          why);
	return c;
}

int change_doc(FILE *f)
{
	for (size_t i = 0; i < change_kinds_n; i++) {
		const ChangeKind *k = &change_kinds[i];

		fprintf(f, "### `%s`\n\n%s\n\n| key | type | |\n|---|---|---|\n", k->name,
		        k->meaning);
		for (const ChangeField *fl = k->fields; fl->key; fl++)
			fprintf(f, "| `%s` | %s | %s |\n", fl->key, type_names[fl->type],
			        fl->optional ? "optional" : "required");
		fputc('\n', f);
	}
	return ferror(f) ? -EIO : 0;
}
