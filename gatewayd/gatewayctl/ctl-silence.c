/* ctl-silence: planned quiet. `silence add` holds back the alerts that match (a key prefix, a
 * source, words of the text) for a while, `silence list` shows those in force, `silence remove`
 * ends one early. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-command.h"
#include "ctl-table.h"
#include "ctl-time.h"
#include "macro.h"
#include "util.h"

enum {
	ARG_KEY_PREFIX = 0x200,
	ARG_MATCH_SOURCE,
	ARG_TEXT_CONTAINS,
	ARG_FOR,
	ARG_REASON,
	ARG_EXCEPT_CRITICAL,
};

static const struct option add_options[] = {
        {"key-prefix", required_argument, NULL, ARG_KEY_PREFIX},
        {"source", required_argument, NULL, ARG_MATCH_SOURCE},
        {"text-contains", required_argument, NULL, ARG_TEXT_CONTAINS},
        {"for", required_argument, NULL, ARG_FOR},
        {"reason", required_argument, NULL, ARG_REASON},
        {"by", required_argument, NULL, ARG_BY},
        {"except-critical", no_argument, NULL, ARG_EXCEPT_CRITICAL},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
};

static const struct option remove_options[] = {
        {"by", required_argument, NULL, ARG_BY},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
};

typedef struct SilenceArgs {
	const char *field, *value, *duration, *reason, *by, *id;
	bool except_critical, json;
} SilenceArgs;

static int add_option(const CtlCommand *cmd, int c, const char *arg, void *userdata)
{
	SilenceArgs *a = userdata;
	int r = arg ? ctl_command_check_utf8(cmd, "an argument", arg) : 0;

	if (r < 0)
		return r;
	switch (c) {
	case ARG_KEY_PREFIX:
	case ARG_MATCH_SOURCE:
	case ARG_TEXT_CONTAINS:
		if (a->field)
			return ctl_command_usage_error(cmd,
			                               "match one thing: --key-prefix, --source "
			                               "or --text-contains");
		a->field = c == ARG_KEY_PREFIX     ? "key_prefix"
		           : c == ARG_MATCH_SOURCE ? "source"
		                                   : "text_contains";
		a->value = arg;
		return 0;
	case ARG_FOR:
		a->duration = arg;
		return 0;
	case ARG_REASON:
		a->reason = arg;
		return 0;
	case ARG_BY:
		a->by = arg;
		return 0;
	case ARG_EXCEPT_CRITICAL:
		a->except_critical = true;
		return 0;
	default:
		return ctl_command_usage_error(cmd, "'%s' is not an argument of silence add", arg);
	}
}

static int silence_add(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv)
{
	_cleanup_(json_decrefp) json_t *reply = NULL;
	SilenceArgs a = {.field = NULL};
	uint64_t now = now_realtime_usec(), until;
	char when[CTL_TIME_MAX];
	int r;

	r = ctl_command_parse(cmd, "-:h", add_options, argc, argv, add_option, &a);
	if (r != 0)
		return r;
	if (!a.field || !*a.value)
		return ctl_command_usage_error(cmd,
		                               "say what to silence: --key-prefix P, --source S "
		                               "or --text-contains WORDS");
	if (!a.duration)
		return ctl_command_usage_error(cmd,
		                               "--for DURATION is required (e.g. 2h, 90m, 1d)");
	if (ctl_time_parse(a.duration, now, &until) < 0 || until <= now)
		return ctl_command_usage_error(
		        cmd, "--for '%s' is not a duration (e.g. 2h, 90m, 1d)", a.duration);
	r = ctl_command_call(
	        ctl,
	        json_pack("{s:s, s:{s:s}, s:I, s:s, s:s, s:b}", "op", "silence", "match", a.field,
	                  a.value, "duration",
	                  (json_int_t)((until - now + USEC_PER_SEC / 2) / USEC_PER_SEC), "by",
	                  a.by ? a.by : ctl_command_default_by(), "reason",
	                  a.reason ? a.reason : "", "except_critical", a.except_critical),
	        &reply);
	if (r != 0)
		return r;
	r = ctl_time_parse(CTL_J(json_object_get(reply, "until")), now, &until);
	printf("%s silences %s '%s'%s until %s\n", FIELD(reply, "silence"),
	       streq(a.field, "key_prefix") ? "keys starting with"
	       : streq(a.field, "source")   ? "the source"
	                                    : "texts containing",
	       CTL_S(a.value), a.except_critical ? " (not critical alerts)" : "",
	       r < 0 ? FIELD(reply, "until") : ctl_time_format_local(until, when, sizeof(when)));
	return 0;
}

static int remove_option(const CtlCommand *cmd, int c, const char *arg, void *userdata)
{
	SilenceArgs *a = userdata;

	if (c == ARG_BY) {
		a->by = arg;
		return ctl_command_check_utf8(cmd, "--by", arg);
	}
	return ctl_command_take_positional(cmd, "SILENCE", &a->id, arg);
}

static int silence_remove(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv)
{
	_cleanup_(json_decrefp) json_t *reply = NULL;
	SilenceArgs a = {.field = NULL};
	char id[ID_HEX_LEN + 1];
	int r;

	r = ctl_command_parse(cmd, "-:h", remove_options, argc, argv, remove_option, &a);
	if (r != 0)
		return r;
	if (!a.id)
		return ctl_command_usage_error(cmd, "missing SILENCE (the id silence list shows)");
	r = ctl_command_parse_id(cmd, a.id, id);
	if (r < 0)
		return r;
	r = ctl_command_call(ctl,
	                     json_pack("{s:s, s:s, s:s}", "op", "unsilence", "silence", id, "by",
	                               a.by ? a.by : ctl_command_default_by()),
	                     &reply);
	if (r != 0)
		return r;
	printf("%s removed\n", id);
	return 0;
}

static int print_silences(const json_t *reply)
{
	static const char *const headers[] = {"SILENCE", "MATCH", "UNTIL", "BY", "REASON"};
	_cleanup_(ctl_table_freep) CtlTable *t = NULL;
	const json_t *list = json_object_get(reply, "silences"), *s;
	size_t i;
	int r;

	if (json_array_size(list) == 0) {
		printf("No silences.\n");
		return 0;
	}
	r = ctl_table_new(ELEMENTSOF(headers), headers, &t);
	json_array_foreach(list, i, s)
	{
		const json_t *match = json_object_get(s, "match");
		const char *field = json_object_iter_key(json_object_iter((json_t *)match));
		_cleanup_free_ char *m = NULL;
		uint64_t until;
		char when[CTL_TIME_MAX];

		if (r < 0)
			break;
		if (asprintf(&m, "%s=%s%s", field ? field : "?",
		             CTL_J(json_object_iter_value(json_object_iter((json_t *)match))),
		             json_is_true(json_object_get(s, "except_critical")) ? " (not critical)"
		                                                                 : "") < 0)
			return ctl_command_oom();
		r = ctl_table_add_row(
		        t, (const char *const[]){
		                   FIELD(s, "silence"), m,
		                   ctl_time_parse(CTL_J(json_object_get(s, "until")), 0, &until) < 0
		                           ? FIELD(s, "until")
		                           : ctl_time_format_local(until, when, sizeof(when)),
		                   FIELD(s, "by"), FIELD(s, "reason")});
	}
	if (r < 0)
		return ctl_command_oom();
	return ctl_table_print(t, stdout, 0) < 0 ? -EIO : 0;
}

int ctl_silence_command(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv)
{
	_cleanup_(json_decrefp) json_t *reply = NULL;
	const char *pos = NULL;
	bool json = false;
	int r;

	if (argc > 1 && streq(argv[1], "add"))
		return silence_add(ctl, cmd, argc - 1, argv + 1);
	if (argc > 1 && streq(argv[1], "remove"))
		return silence_remove(ctl, cmd, argc - 1, argv + 1);
	if (argc > 1 && streq(argv[1], "list")) {
		argc--;
		argv++;
	}
	r = ctl_command_parse_look_options(cmd, argc, argv, NULL, &pos, &json);
	if (r != 0)
		return r;
	r = ctl_command_call(ctl, json_pack("{s:s}", "op", "silences"), &reply);
	if (r != 0)
		return r;
	return json ? ctl_command_print_json(reply) : print_silences(reply);
}
