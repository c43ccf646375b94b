/* ctl-status: the commands that show the gateway itself: status (this node, the cluster, every
 * modem, the queue and the voice fallback) and inbox (the SMS the modems received). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-command.h"
#include "ctl-format.h"
#include "ctl-table.h"
#include "log.h"
#include "macro.h"

/* Width of the cut text column of `inbox`, in characters. */
#define INBOX_TEXT_WIDTH 80

static void print_members(const json_t *members)
{
	size_t i;

	printf("Members:  ");
	if (json_array_size(members) == 0)
		printf("-");
	for (i = 0; i < json_array_size(members); i++) {
		const json_t *m = json_array_get(members, i);
		const json_t *online = json_object_get(m, "online");

		printf("%s%s (id %s, %s", i > 0 ? ", " : "", FIELD(m, "name"), FIELD(m, "id"),
		       json_is_true(online)    ? "online"
		       : json_is_false(online) ? "offline"
		                               : "state unknown");
		if (json_is_true(json_object_get(m, "self")))
			printf(", this node");
		else if (json_is_false(online) && json_object_get(m, "last_seen"))
			printf(", last seen %s", FIELD(m, "last_seen"));
		if (json_is_string(json_object_get(m, "store_error")))
			printf(", store cannot commit: %s", FIELD(m, "store_error"));
		putchar(')');
	}
	putchar('\n');
}

static int print_modems(const json_t *modems)
{
	static const char *const headers[] = {"NODE",     "NAME", "STATE",  "REASON",    "SIGNAL",
	                                      "OPERATOR", "SENT", "FAILED", "LAST ERROR"};
	_cleanup_(ctl_table_freep) CtlTable *table = NULL;
	size_t i;
	int r;

	if (json_array_size(modems) == 0) {
		printf("Modems:   none\n");
		return 0;
	}
	printf("Modems:\n");
	r = ctl_table_new(ELEMENTSOF(headers), headers, &table);
	if (r < 0)
		return ctl_command_oom();
	for (i = 0; i < json_array_size(modems); i++) {
		const json_t *m = json_array_get(modems, i);
		const json_t *signal = json_object_get(m, "signal");

		/* 99 is 27.007's "not known or not detectable". */
		r = ctl_table_add_row(
		        table, (const char *[]){FIELD(m, "node"), FIELD(m, "name"),
		                                FIELD(m, "state"), FIELD(m, "reason"),
		                                json_integer_value(signal) == 99 ? "unknown"
		                                                                 : CTL_J(signal),
		                                FIELD(m, "operator"), FIELD(m, "sent"),
		                                FIELD(m, "failed"), FIELD(m, "last_error")});
		if (r < 0)
			return ctl_command_oom();
	}
	r = ctl_table_print(table, stdout, 2);
	if (r == -ENOMEM)
		return ctl_command_oom();
	/* What a technician needs beside the table: which port, which SIM slot, since when. */
	for (i = 0; i < json_array_size(modems); i++) {
		const json_t *m = json_array_get(modems, i);
		const json_t *reports = json_object_get(m, "delivery_reports");

		printf("  %s/%s: device %s, IMEI %s, model %s, registration %s, last sent %s",
		       FIELD(m, "node"), FIELD(m, "name"), FIELD(m, "device"), FIELD(m, "imei"),
		       FIELD(m, "model"), FIELD(m, "registration"), FIELD(m, "last_sent_at"));
		if (json_is_true(reports))
			printf(", delivery reports %s",
			       json_is_true(json_object_get(m, "delivery_reports_supported"))
			               ? "on"
			               : "requested but not supported by the modem");
		putchar('\n');
	}
	return 0;
}

static int print_status(const json_t *reply)
{
	const json_t *node = json_object_get(reply, "node");
	const json_t *cluster = json_object_get(reply, "cluster");
	const json_t *quorate = json_object_get(cluster, "quorate");
	const json_t *queue = json_object_get(reply, "queue");
	const json_t *voice = json_object_get(reply, "voice");
	const json_t *warnings = json_object_get(cluster, "warnings");
	const json_t *value, *calls;
	const char *key;
	size_t i;
	int r;

	printf("Node:     %s (id %s)\n", FIELD(node, "name"), FIELD(node, "id"));
	if (json_is_false(json_object_get(cluster, "enabled")))
		printf("Cluster:  disabled (solo mode)\n");
	else {
		json_t *exchange = json_object_get(cluster, "exchange");
		char progress[96] = "";

		if (exchange)
			snprintf(progress, sizeof(progress), " (%lld records sent, %lld received)",
			         (long long)json_integer_value(json_object_get(exchange, "sent")),
			         (long long)json_integer_value(
			                 json_object_get(exchange, "received")));
		printf("Cluster:  group %s, %s%s%s%s\n", FIELD(cluster, "group"),
		       json_is_true(quorate)    ? "quorate"
		       : json_is_false(quorate) ? "NOT quorate"
		                                : "quorum unknown",
		       json_is_false(json_object_get(cluster, "connected"))
		               ? ", local corosync unreachable"
		               : "",
		       json_is_true(json_object_get(cluster, "syncing")) ? ", exchanging state"
		                                                         : "",
		       progress);
	}
	print_members(json_object_get(cluster, "members"));

	/* What an operator should look at: a peer offline, clocks or configs apart. */
	for (i = 0; i < json_array_size(warnings); i++)
		printf("Warning:  %s\n", CTL_J(json_array_get(warnings, i)));
	/* A refused reload: the file on disk is not what runs. */
	value = json_object_get(json_object_get(reply, "config"), "reload_refused");
	if (json_is_string(value))
		printf("Warning:  configuration reload refused: %s\n", json_string_value(value));

	putchar('\n');
	r = print_modems(json_object_get(reply, "modems"));
	if (r < 0)
		return r;
	putchar('\n');

	printf("Queue:    ");
	if (json_object_size(queue) == 0)
		printf("-");
	i = 0;
	for (void *it = json_object_iter((json_t *)queue); it;
	     it = json_object_iter_next((json_t *)queue, it)) {
		key = json_object_iter_key(it);
		value = json_object_iter_value(it);
		printf("%s%s %s", i++ > 0 ? ", " : "", CTL_J(value), CTL_S(key));
	}
	putchar('\n');
	calls = json_object_get(voice, "calls");
	printf("Voice:    %s call%s, last outcome %s\n", CTL_J(calls),
	       json_integer_value(calls) == 1 ? "" : "s", FIELD(voice, "last_outcome"));
	/* The dead-man monitors: a late one is a system that stopped pinging. */
	value = json_object_get(reply, "heartbeats");
	for (i = 0; i < json_array_size(value); i++) {
		const json_t *hb = json_array_get(value, i);

		printf("%s %s: %s, last ping %s, next due %s\n",
		       i == 0 ? "Heartbeat:" : "         ", FIELD(hb, "name"), FIELD(hb, "state"),
		       FIELD(hb, "last"), FIELD(hb, "next_due"));
	}
	return 0;
}

static int print_inbox(const json_t *reply)
{
	static const char *const headers[] = {"RECEIVED", "FROM", "NODE", "MODEM", "TEXT"};
	_cleanup_(ctl_table_freep) CtlTable *table = NULL;
	const json_t *messages = json_object_get(reply, "messages");
	size_t i;
	int r;

	if (!json_is_array(messages))
		return log_error_errno(EPROTO, "malformed reply: no \"messages\" list");
	if (json_array_size(messages) == 0) {
		printf("No received messages.\n");
		return 0;
	}
	r = ctl_table_new(ELEMENTSOF(headers), headers, &table);
	if (r < 0)
		return ctl_command_oom();
	for (i = 0; i < json_array_size(messages); i++) {
		const json_t *m = json_array_get(messages, i);
		const json_t *t = json_object_get(m, "text");
		const json_t *q = json_object_get(m, "quarantined");
		const char *shown = json_is_string(t) ? json_string_value(t) : "-";
		_cleanup_free_ char *quarantined = NULL;
		_cleanup_free_ char *text = NULL;

		/* Never decoded: the reason, then the raw PDU, so that nobody takes it for text. */
		if (json_is_string(q)) {
			if (asprintf(&quarantined, "QUARANTINED (%s) PDU %s", json_string_value(q),
			             shown) < 0)
				return ctl_command_oom();
			shown = quarantined;
		}
		text = ctl_format_text(shown, INBOX_TEXT_WIDTH, false);
		if (!text)
			return ctl_command_oom();
		r = ctl_table_add_row(
		        table, (const char *[]){FIELD(m, "received_at"),
		                                quarantined ? "(quarantined)" : FIELD(m, "from"),
		                                FIELD(m, "node"), FIELD(m, "modem"), text});
		if (r < 0)
			return ctl_command_oom();
	}
	r = ctl_table_print(table, stdout, 0);
	return r == -ENOMEM ? ctl_command_oom() : 0;
}

int ctl_status_inbox_command(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv)
{
	_cleanup_(json_decrefp) json_t *reply = NULL;
	bool json;
	int r;

	r = ctl_command_parse_look_options(cmd, argc, argv, NULL, NULL, &json);
	if (r != 0)
		return r;
	r = ctl_command_call(ctl, json_pack("{s:s}", "op", "inbox"), &reply);
	if (r != 0)
		return r;
	return json ? ctl_command_print_json(reply) : print_inbox(reply);
}

int ctl_status_command(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv)
{
	_cleanup_(json_decrefp) json_t *reply = NULL;
	bool json;
	int r;

	r = ctl_command_parse_look_options(cmd, argc, argv, NULL, NULL, &json);
	if (r != 0)
		return r;
	r = ctl_command_call(ctl, json_pack("{s:s}", "op", "status"), &reply);
	if (r != 0)
		return r;
	return json ? ctl_command_print_json(reply) : print_status(reply);
}
