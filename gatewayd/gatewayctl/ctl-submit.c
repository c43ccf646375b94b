/* ctl-submit: the commands that change an alert: send (submit one, as an upstream system would),
 * ack (acknowledge one, which stops its escalation), resolve (the problem is gone) and
 * heartbeat (a monitored system is alive). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl-command.h"
#include "log.h"
#include "macro.h"
#include "util.h"

typedef struct AckArgs {
	const char *id;
	const char *by;
} AckArgs;

static int ack_option(const CtlCommand *cmd, int c, const char *arg, void *userdata)
{
	AckArgs *args = userdata;
	int r;

	if (c == ARG_BY) {
		r = ctl_command_check_utf8(cmd, "--by", arg);
		if (r < 0)
			return r;
		args->by = arg;
		return 0;
	}
	return ctl_command_take_positional(cmd, "ID", &args->id, arg);
}

int ctl_submit_ack_command(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv)
{
	_cleanup_(json_decrefp) json_t *reply = NULL;
	AckArgs args = {.id = NULL};
	const char *arg, *by;
	const json_t *ack;
	char id[ID_HEX_LEN + 1];
	int r;

	r = ctl_command_parse_row(cmd, argc, argv, ack_option, &args);
	if (r != 0)
		return r;
	arg = args.id;
	by = args.by;
	if (!arg)
		return ctl_command_usage_error(cmd, "missing ID");
	r = ctl_command_parse_id(cmd, arg, id);
	if (r < 0)
		return r;

	r = ctl_command_call(ctl,
	                     json_pack("{s:s, s:s, s:s}", "op", "ack", "id", id, "by",
	                               by ? by : ctl_command_default_by()),
	                     &reply);
	if (r != 0)
		return r;

	/* A repeated ack changes nothing; if the daemon says who acknowledged first, show that. */
	ack = json_object_get(reply, "ack");
	if (json_is_object(ack))
		printf("%s acknowledged by %s at %s\n", id, FIELD(ack, "by"), FIELD(ack, "at"));
	else
		printf("%s acknowledged\n", id);
	return 0;
}

typedef struct ResolveArgs {
	const char *id;
	const char *key;
	const char *by;
} ResolveArgs;

static int resolve_option(const CtlCommand *cmd, int c, const char *arg, void *userdata)
{
	ResolveArgs *args = userdata;
	int r;

	if (c == ARG_BY || c == ARG_KEY) {
		r = ctl_command_check_utf8(cmd, c == ARG_BY ? "--by" : "--key", arg);
		if (r < 0)
			return r;
		if (c == ARG_KEY && !*arg)
			return ctl_command_usage_error(cmd, "--key is empty");
		*(c == ARG_BY ? &args->by : &args->key) = arg;
		return 0;
	}
	return ctl_command_take_positional(cmd, "ID", &args->id, arg);
}

int ctl_submit_resolve_command(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv)
{
	_cleanup_(json_decrefp) json_t *reply = NULL;
	ResolveArgs args = {.id = NULL};
	const char *by;
	char id[ID_HEX_LEN + 1];
	int r;

	r = ctl_command_parse_row(cmd, argc, argv, resolve_option, &args);
	if (r != 0)
		return r;
	if (!args.id == !args.key)
		return ctl_command_usage_error(cmd, args.id ? "give ID or --key, not both"
		                                            : "missing ID (or --key KEY)");
	if (args.id) {
		r = ctl_command_parse_id(cmd, args.id, id);
		if (r < 0)
			return r;
	}
	by = args.by ? args.by : ctl_command_default_by();
	r = ctl_command_call(
	        ctl,
	        args.id ? json_pack("{s:s, s:s, s:s}", "op", "resolve", "id", id, "by", by)
	                : json_pack("{s:s, s:s, s:s}", "op", "resolve", "key", args.key, "by", by),
	        &reply);
	if (r != 0)
		return r;
	printf("%s resolved\n", FIELD(reply, "id"));
	return 0;
}

static int heartbeat_option(const CtlCommand *cmd, int c, const char *arg, void *userdata)
{
	return ctl_command_take_positional(cmd, "NAME", userdata, arg);
}

int ctl_submit_heartbeat_command(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv)
{
	_cleanup_(json_decrefp) json_t *reply = NULL;
	const char *name = NULL;
	int r;

	r = ctl_command_parse_row(cmd, argc, argv, heartbeat_option, &name);
	if (r != 0)
		return r;
	if (!name)
		return ctl_command_usage_error(cmd, "missing NAME");
	r = ctl_command_check_utf8(cmd, "NAME", name);
	if (r < 0)
		return r;
	r = ctl_command_call(ctl, json_pack("{s:s, s:s}", "op", "heartbeat", "name", name), &reply);
	if (r != 0)
		return r;
	printf("%s pinged; next ping due by %s\n", FIELD(reply, "name"), FIELD(reply, "next_due"));
	return 0;
}

static int parse_ttl(const CtlCommand *cmd, const char *arg, json_int_t *ret)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(arg, &end, 10);
	if (errno != 0 || end == arg || *end != '\0' || v <= 0)
		return ctl_command_usage_error(
		        cmd, "--ttl wants a positive number of seconds, not '%s'", arg);
	*ret = (json_int_t)v;
	return 0;
}

static int add_string(const CtlCommand *cmd, json_t *array, const char *what, const char *s)
{
	int r;

	r = ctl_command_check_utf8(cmd, what, s);
	if (r < 0)
		return r;
	if (json_array_append_new(array, json_string(s)) < 0)
		return ctl_command_oom();
	return 0;
}

typedef struct SendArgs {
	json_t *to;
	json_t *copy;
	const char *text, *key, *priority, *source;
	json_int_t ttl;
} SendArgs;

static int send_option(const CtlCommand *cmd, int c, const char *arg, void *userdata)
{
	SendArgs *args = userdata;
	int r;

	switch (c) {
	case 1:
		return add_string(cmd, args->to, "a recipient", arg);
	case 'm':
		if (args->text)
			return ctl_command_usage_error(cmd, "-m given twice");
		r = ctl_command_check_utf8(cmd, "the text", arg);
		if (r < 0)
			return r;
		args->text = arg;
		return 0;
	case ARG_KEY:
		r = ctl_command_check_utf8(cmd, "--key", arg);
		if (r < 0)
			return r;
		args->key = arg;
		return 0;
	case ARG_PRIORITY:
		r = ctl_command_check_utf8(cmd, "--priority", arg);
		if (r < 0)
			return r;
		args->priority = arg;
		return 0;
	case ARG_TTL:
		return parse_ttl(cmd, arg, &args->ttl);
	case ARG_COPY:
		return add_string(cmd, args->copy, "--copy", arg);
	case ARG_SOURCE:
		r = ctl_command_check_utf8(cmd, "--source", arg);
		if (r < 0)
			return r;
		args->source = arg;
		return 0;
	default:
		return -EINVAL; /* not in the row's options */
	}
}

int ctl_submit_send_command(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv)
{
	_cleanup_(json_decrefp) json_t *to = json_array();
	_cleanup_(json_decrefp) json_t *copy = json_array();
	_cleanup_(json_decrefp) json_t *request = json_object();
	_cleanup_(json_decrefp) json_t *reply = NULL;
	const char *text, *key, *priority, *source;
	char default_source[sizeof("gatewayctl@") + HOST_NAME_MAX + 1];
	json_int_t ttl;
	SendArgs args = {.to = to, .copy = copy};
	const json_t *id, *status;
	int r;

	if (!to || !copy || !request)
		return ctl_command_oom();

	r = ctl_command_parse_row(cmd, argc, argv, send_option, &args);
	if (r != 0)
		return r;
	text = args.text;
	key = args.key;
	priority = args.priority;
	source = args.source;
	ttl = args.ttl;
	if (json_array_size(to) == 0)
		return ctl_command_usage_error(cmd, "no recipient given");
	if (!text)
		return ctl_command_usage_error(cmd, "-m TEXT is required");

	if (!source) {
		char host[HOST_NAME_MAX + 1];

		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		snprintf(default_source, sizeof(default_source), "gatewayctl@%s", host);
		source = utf8_is_valid(default_source, strlen(default_source)) ? default_source
		                                                               : "gatewayctl";
	}

	/* Fields left out take the daemon's defaults, so that those live in one place. */
	if (json_object_set_new(request, "op", json_string("send")) < 0 ||
	    json_object_set(request, "to", to) < 0 ||
	    json_object_set_new(request, "text", json_string(text)) < 0 ||
	    (key && json_object_set_new(request, "key", json_string(key)) < 0) ||
	    (priority && json_object_set_new(request, "priority", json_string(priority)) < 0) ||
	    (ttl > 0 && json_object_set_new(request, "ttl", json_integer(ttl)) < 0) ||
	    (json_array_size(copy) > 0 && json_object_set(request, "copy", copy) < 0) ||
	    json_object_set_new(request, "source", json_string(source)) < 0)
		return ctl_command_oom();

	r = ctl_command_call(ctl, json_incref(request), &reply);
	if (r != 0)
		return r;

	id = json_object_get(reply, "id");
	status = json_object_get(reply, "status");
	if (!json_is_string(id) || !json_is_string(status))
		return log_error_errno(EPROTO, "malformed reply from %s: no \"id\" or \"status\"",
		                       ctl->endpoint);
	printf("%s %s\n", CTL_J(id), CTL_J(status));
	return 0;
}
