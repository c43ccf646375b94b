/* ctl-command: the parts every gatewayctl command shares, so that each command's file holds only
 * what the command itself decides: its options, its request and how its reply is printed.
 * Usage errors come out in one format ("gatewayctl: CMD: message" and a hint at --help) and the
 * one request of a run goes through ctl_command_call(), which reports a refusal itself. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl-command.h"
#include "ctl-endpoint.h"
#include "ctl-format.h"
#include "ctl-request.h"
#include "log.h"
#include "macro.h"
#include "util.h"

int ctl_command_oom(void)
{
	return log_error_errno(ENOMEM, "Out of memory.");
}

int ctl_command_usage_error(const CtlCommand *cmd, const char *format, ...)
{
	char message[512];
	va_list ap;

	va_start(ap, format);
	vsnprintf(message, sizeof(message), format, ap);
	va_end(ap);

	if (cmd) {
		log_error("%s: %s", cmd->name, message);
		fprintf(stderr, "Try 'gatewayctl %s --help' for more information.\n", cmd->name);
	} else {
		log_error("%s", message);
		fprintf(stderr, "Try 'gatewayctl --help' for more information.\n");
	}
	return -EINVAL;
}

/* Reports what getopt_long() returned ':' or '?' for; optstrings start with ':' so that
 * getopt stays quiet and the message comes out in our format. */
int ctl_command_option_error(const CtlCommand *cmd, int c, char **argv)
{
	const char *arg = argv[optind - 1];

	if (c == ':')
		return ctl_command_usage_error(cmd, "option '%s' needs a value", arg);
	if (optopt > 0 && optopt < 0x80 && isprint(optopt))
		return ctl_command_usage_error(cmd, "unknown option '-%c'", optopt);
	return ctl_command_usage_error(cmd, "unknown or misused option '%s'", arg);
}

void ctl_command_help(const CtlCommand *cmd)
{
	printf("Usage: gatewayctl [GLOBAL OPTIONS] %s %s\n\n%s\n", cmd->name, cmd->synopsis,
	       cmd->summary);
	if (cmd->options)
		printf("\nOptions:\n%s", cmd->options);
}

int ctl_command_check_utf8(const CtlCommand *cmd, const char *what, const char *s)
{
	if (!utf8_is_valid(s, strlen(s)))
		return ctl_command_usage_error(cmd, "%s is not valid UTF-8", what);
	return 0;
}

int ctl_command_take_positional(const CtlCommand *cmd, const char *name, const char **slot,
                                const char *arg)
{
	if (!name || *slot)
		return ctl_command_usage_error(cmd, "unexpected argument '%s'", arg);
	*slot = arg;
	return 0;
}

int ctl_command_parse(const CtlCommand *cmd, const char *optstring,
                      const struct option *long_options, int argc, char **argv, CtlOptionFn fn,
                      void *userdata)
{
	int c, r;

	optind = 0;
	while ((c = getopt_long(argc, argv, optstring, long_options, NULL)) >= 0) {
		switch (c) {
		case 'h':
			ctl_command_help(cmd);
			return CTL_HELP;
		case ':':
		case '?':
			return ctl_command_option_error(cmd, c, argv);
		default:
			r = fn(cmd, c, optarg, userdata);
			if (r < 0)
				return r;
		}
	}
	for (; optind < argc; optind++) {
		r = fn(cmd, 1, argv[optind], userdata);
		if (r < 0)
			return r;
	}
	return 0;
}

int ctl_command_parse_row(const CtlCommand *cmd, int argc, char **argv, CtlOptionFn fn,
                          void *userdata)
{
	return ctl_command_parse(cmd, cmd->optstring, cmd->long_options, argc, argv, fn, userdata);
}

const struct option ctl_command_look_options[] = {
        {"json", no_argument, NULL, ARG_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
};

typedef struct LookArgs {
	const char *pos_name;
	const char *pos;
	bool json;
} LookArgs;

static int look_option(const CtlCommand *cmd, int c, const char *arg, void *userdata)
{
	LookArgs *look = userdata;

	if (c == ARG_JSON) {
		look->json = true;
		return 0;
	}
	return ctl_command_take_positional(cmd, look->pos_name, &look->pos, arg);
}

int ctl_command_parse_look_options(const CtlCommand *cmd, int argc, char **argv,
                                   const char *pos_name, const char **ret_pos, bool *ret_json)
{
	LookArgs look = {.pos_name = pos_name};
	int r;

	r = ctl_command_parse_row(cmd, argc, argv, look_option, &look);
	if (r != 0)
		return r;
	if (pos_name && !look.pos)
		return ctl_command_usage_error(cmd, "missing %s", pos_name);

	if (ret_pos)
		*ret_pos = look.pos;
	*ret_json = look.json;
	return 0;
}

/* Alert ids are 32 lowercase hex digits; an id pasted in capitals is accepted too. */
int ctl_command_parse_id(const CtlCommand *cmd, const char *arg, char ret[static ID_HEX_LEN + 1])
{
	char id[ID_HEX_LEN + 1];
	size_t len = strlen(arg);

	if (len == ID_HEX_LEN) {
		for (size_t i = 0; i <= len; i++)
			id[i] = (char)tolower((unsigned char)arg[i]);
		if (id_is_valid(id)) {
			memcpy(ret, id, sizeof(id));
			return 0;
		}
	}
	return ctl_command_usage_error(cmd, "'%s' is not an alert id (32 hex digits)", arg);
}

/* Sends request (taking it over) and returns the reply when it says "ok": true. A refusal is
 * reported here, as "gatewayctl: <error>: <detail>", and returns CTL_REFUSED. Takes a NULL
 * request as the allocation failure it is, so callers may build requests inline. */
int ctl_command_call(Ctl *ctl, json_t *request_owned, json_t **ret_reply)
{
	_cleanup_(json_decrefp) json_t *request = request_owned;
	_cleanup_(json_decrefp) json_t *reply = NULL;
	const json_t *ok, *error, *detail;
	int r;

	if (!request)
		return ctl_command_oom();
	if (!ctl->endpoint) {
		r = ctl_endpoint_resolve(ctl->endpoint_arg, ctl->config_path, &ctl->endpoint);
		if (r < 0)
			return r;
	}

	if (ctl->server_key) {
		r = ctl_curve_load(ctl->server_key, ctl->client_key, &ctl->curve);
		if (r < 0)
			return r;
	}
	r = ctl_request_call(ctl->endpoint, ctl->timeout_sec, ctl->server_key ? &ctl->curve : NULL,
	                     request, &reply);
	if (r < 0)
		return r;

	ok = json_object_get(reply, "ok");
	if (!json_is_boolean(ok))
		return log_error_errno(EPROTO, "malformed reply from %s: no \"ok\"", ctl->endpoint);
	if (json_is_false(ok)) {
		error = json_object_get(reply, "error");
		detail = json_object_get(reply, "detail");
		if (json_is_string(detail) && json_string_length(detail) > 0)
			log_error("%s: %s", CTL_J(error), CTL_J(detail));
		else
			log_error("%s", CTL_J(error));
		return CTL_REFUSED;
	}

	*ret_reply = reply;
	reply = NULL;
	return 0;
}

int ctl_command_print_json(const json_t *reply)
{
	if (json_dumpf(reply, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0)
		return log_error_errno(EIO, "cannot write the reply");
	putchar('\n');
	return 0;
}

/* Prints text with every line after the first indented by indent spaces. */
int ctl_command_print_block(const json_t *text, unsigned indent)
{
	_cleanup_free_ char *s = NULL;

	if (!json_is_string(text)) {
		printf("%s\n", CTL_J(text));
		return 0;
	}
	s = ctl_format_text(json_string_value(text), 0, true);
	if (!s)
		return ctl_command_oom();
	for (char *line = s, *next; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (line != s)
			printf("%*s", (int)indent, "");
		printf("%s\n", line);
	}
	return 0;
}

/* Who acknowledges when --by is not given: the login name survives sudo, which is what the
 * record should show. */
const char *ctl_command_default_by(void)
{
	const char *s = getlogin();

	if (s && *s && utf8_is_valid(s, strlen(s)))
		return s;
	s = getenv("USER");
	if (s && *s && utf8_is_valid(s, strlen(s)))
		return s;
	return "gatewayctl";
}
