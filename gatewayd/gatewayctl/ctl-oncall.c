/* ctl-oncall: the oncall command: who is on duty for each role (now or --at TIME), and the
 * overrides that put someone else on duty until a time, or end that early. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-command.h"
#include "ctl-format.h"
#include "ctl-table.h"
#include "ctl-time.h"
#include "log.h"
#include "macro.h"
#include "util.h"

/* A TIME argument (see ctl-time.h) as Unix seconds for the request. */
static int parse_time_arg(const CtlCommand *cmd, const char *what, const char *arg, json_int_t *ret)
{
	uint64_t usec;
	int r;

	r = ctl_time_parse(arg, now_realtime_usec(), &usec);
	if (r == -ENOENT)
		return ctl_command_usage_error(
		        cmd, "%s '%s' does not exist in local time (the clock skips it)", what,
		        arg);
	if (r < 0)
		return ctl_command_usage_error(
		        cmd,
		        "%s wants 'YYYY-MM-DD HH:MM' (local time), an RFC 3339 time "
		        "or a duration such as 8h or 3d, not '%s'",
		        what, arg);
	*ret = (json_int_t)(usec / USEC_PER_SEC);
	return 0;
}

/* An RFC 3339 time of a reply in local time, else the value as it came. */
static char *local_time(const json_t *v, char *buf, size_t size)
{
	uint64_t usec;

	if (json_is_string(v) && parse_rfc3339(json_string_value(v), &usec) >= 0)
		return ctl_time_format_local(usec, buf, size);
	return ctl_format_json(v, buf, size);
}

static void print_escalation(const json_t *escalation)
{
	const json_t *steps = json_object_get(escalation, "steps");
	size_t i;

	printf("Escalation: ");
	if (json_array_size(steps) == 0) {
		printf("none\n");
		return;
	}
	for (i = 0; i < json_array_size(steps); i++)
		printf("%s%s", i > 0 ? " -> " : "", CTL_J(json_array_get(steps, i)));
	printf(", %s s per step without acknowledgment\n", FIELD(escalation, "step_timeout"));
}

static int print_oncall(const json_t *reply, bool at_given)
{
	static const char *const headers[] = {"ROLE", "ON DUTY", "SOURCE", "NEXT HAND-OVER"};
	_cleanup_(ctl_table_freep) CtlTable *table = NULL;
	const json_t *roles = json_object_get(reply, "roles");
	char when[CTL_TIME_MAX];
	size_t i;
	int r;

	if (!json_is_array(roles))
		return log_error_errno(EPROTO, "malformed reply: no \"roles\" list");
	if (at_given)
		printf("On duty at %s:\n\n",
		       local_time(json_object_get(reply, "at"), when, sizeof(when)));
	if (json_array_size(roles) == 0)
		printf("No roles configured.\n");
	else {
		r = ctl_table_new(ELEMENTSOF(headers), headers, &table);
		if (r < 0)
			return ctl_command_oom();
	}
	for (i = 0; i < json_array_size(roles); i++) {
		const json_t *role = json_array_get(roles, i);
		const json_t *next = json_object_get(role, "next");
		char duty[2 * CTL_FORMAT_MAX + 4], source[CTL_FORMAT_MAX + CTL_TIME_MAX + 8];
		char handover[CTL_FORMAT_MAX + CTL_TIME_MAX + 8];

		snprintf(duty, sizeof(duty), "%s (%s)", FIELD(role, "contact"),
		         FIELD(role, "number"));
		if (json_is_string(json_object_get(role, "until")))
			snprintf(source, sizeof(source), "%s until %s", FIELD(role, "source"),
			         local_time(json_object_get(role, "until"), when, sizeof(when)));
		else
			snprintf(source, sizeof(source), "%s", FIELD(role, "source"));
		if (json_is_object(next))
			snprintf(handover, sizeof(handover), "%s, %s", FIELD(next, "contact"),
			         local_time(json_object_get(next, "at"), when, sizeof(when)));
		else
			snprintf(handover, sizeof(handover), "-");
		r = ctl_table_add_row(
		        table, (const char *[]){FIELD(role, "role"), duty, source, handover});
		if (r < 0)
			return ctl_command_oom();
	}
	if (table) {
		r = ctl_table_print(table, stdout, 0);
		if (r == -ENOMEM)
			return ctl_command_oom();
	}
	putchar('\n');
	print_escalation(json_object_get(reply, "escalation"));
	return 0;
}

/* ROLE, then CONTACT (override only). */
static int oncall_positional(const CtlCommand *cmd, bool clear, const char **role,
                             const char **contact, const char *arg)
{
	if (!*role)
		return ctl_command_take_positional(cmd, "ROLE", role, arg);
	return ctl_command_take_positional(cmd, clear ? NULL : "CONTACT", contact, arg);
}

/* oncall override ROLE CONTACT --until TIME [--by WHO] and oncall clear ROLE [--by WHO]. */
typedef struct ChangeArgs {
	bool clear;
	const char *role, *contact, *by, *until;
} ChangeArgs;

static int change_option(const CtlCommand *cmd, int c, const char *arg, void *userdata)
{
	ChangeArgs *args = userdata;
	int r;

	switch (c) {
	case 1:
		return oncall_positional(cmd, args->clear, &args->role, &args->contact, arg);
	case ARG_UNTIL:
		if (args->clear)
			return ctl_command_usage_error(cmd, "clear takes no --until");
		args->until = arg;
		return 0;
	case ARG_BY:
		r = ctl_command_check_utf8(cmd, "--by", arg);
		if (r < 0)
			return r;
		args->by = arg;
		return 0;
	default:
		return -EINVAL; /* not in change_options */
	}
}

/* oncall override ROLE CONTACT --until TIME [--by WHO] and oncall clear ROLE [--by WHO]: options
 * of their own, beside those of the table's row (which only looks). */
static const struct option change_options[] = {
        {"until", required_argument, NULL, ARG_UNTIL},
        {"by", required_argument, NULL, ARG_BY},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
};

static int oncall_change(Ctl *ctl, const CtlCommand *cmd, bool clear, int argc, char **argv)
{
	_cleanup_(json_decrefp) json_t *reply = NULL;
	ChangeArgs args = {.clear = clear};
	const char *role, *contact, *by, *until_arg;
	char when[CTL_TIME_MAX];
	json_int_t until = 0;
	json_t *request;
	int r;

	r = ctl_command_parse(cmd, "-:h", change_options, argc, argv, change_option, &args);
	if (r != 0)
		return r;
	role = args.role;
	contact = args.contact;
	by = args.by;
	until_arg = args.until;
	if (!role)
		return ctl_command_usage_error(cmd, "missing ROLE");
	r = ctl_command_check_utf8(cmd, "ROLE", role);
	if (r < 0)
		return r;
	if (clear)
		request = json_pack("{s:s, s:s, s:b, s:s}", "op", "override", "role", role, "clear",
		                    1, "by", by ? by : ctl_command_default_by());
	else {
		if (!contact)
			return ctl_command_usage_error(cmd, "missing CONTACT");
		r = ctl_command_check_utf8(cmd, "CONTACT", contact);
		if (r < 0)
			return r;
		if (!until_arg)
			return ctl_command_usage_error(cmd, "--until TIME is required");
		r = parse_time_arg(cmd, "--until", until_arg, &until);
		if (r < 0)
			return r;
		request = json_pack("{s:s, s:s, s:s, s:I, s:s}", "op", "override", "role", role,
		                    "contact", contact, "until", until, "by",
		                    by ? by : ctl_command_default_by());
	}

	r = ctl_command_call(ctl, request, &reply);
	if (r != 0)
		return r;
	if (clear)
		printf("%s: override cleared, the rotation applies\n", CTL_S(role));
	else
		printf("%s: %s on duty until %s (override)\n", FIELD(reply, "role"),
		       FIELD(reply, "contact"),
		       local_time(json_object_get(reply, "until"), when, sizeof(when)));
	return 0;
}

typedef struct ShowArgs {
	json_int_t at;
	bool at_given;
	bool json;
} ShowArgs;

static int show_option(const CtlCommand *cmd, int c, const char *arg, void *userdata)
{
	ShowArgs *args = userdata;
	int r;

	switch (c) {
	case ARG_AT:
		r = parse_time_arg(cmd, "--at", arg, &args->at);
		if (r < 0)
			return r;
		args->at_given = true;
		return 0;
	case ARG_JSON:
		args->json = true;
		return 0;
	default:
		return ctl_command_usage_error(cmd, "unexpected argument '%s'", arg);
	}
}

int ctl_oncall_command(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv)
{
	_cleanup_(json_decrefp) json_t *reply = NULL;
	_cleanup_(json_decrefp) json_t *request = NULL;
	ShowArgs args = {.at_given = false};
	json_int_t at;
	bool json, at_given;
	int r;

	/* The sub-commands that change something come first, like the commands themselves. */
	if (argc > 1 && streq(argv[1], "override"))
		return oncall_change(ctl, cmd, false, argc - 1, argv + 1);
	if (argc > 1 && streq(argv[1], "clear"))
		return oncall_change(ctl, cmd, true, argc - 1, argv + 1);

	r = ctl_command_parse_row(cmd, argc, argv, show_option, &args);
	if (r != 0)
		return r;
	at = args.at;
	at_given = args.at_given;
	json = args.json;

	request = json_pack("{s:s}", "op", "oncall");
	if (!request || (at_given && json_object_set_new(request, "at", json_integer(at)) < 0))
		return ctl_command_oom();
	r = ctl_command_call(ctl, json_incref(request), &reply);
	if (r != 0)
		return r;
	return json ? ctl_command_print_json(reply) : print_oncall(reply, at_given);
}
