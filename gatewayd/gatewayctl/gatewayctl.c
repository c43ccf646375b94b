/* gatewayctl: the operator's and the script's way into the gateway cluster.
 *
 * It is a thin client on purpose. Each run asks one question over the same ZeroMQ socket and
 * JSON protocol that upstream alert systems use (ctl-request), so whatever gatewayctl can do a
 * Nagios plugin can do too, and the daemon keeps one front door. The tool holds no state and no
 * knowledge of the cluster beyond what a reply says; printing is all it adds.
 *
 * Commands are rows of one table: name, synopsis, help text and a function that parses the
 * command's own options, builds one request, and prints the reply either for a human (aligned,
 * sanitised against terminal escapes, see ctl-format) or, with --json, as the daemon sent it.
 * A new op of the daemon is a new row and one function.
 *
 * Scripts depend on the exit status, so it means exactly three things: 0 the request was done (a
 * duplicate submission included), 1 the daemon answered and refused, 2 gatewayctl could not get
 * an answer it understands: a usage error, no answer within -t, or a garbled one. A send that
 * timed out may still have been queued; repeating it is safe, because dedupe folds it into the
 * first. */
#include <ctype.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl-curve.h"
#include "ctl-endpoint.h"
#include "ctl-format.h"
#include "ctl-request.h"
#include "ctl-table.h"
#include "ctl-time.h"
#include "log.h"
#include "macro.h"
#include "util.h"

#ifndef VERSION
#define VERSION "unknown"
#endif

#define TIMEOUT_DEFAULT_SEC 5.0
#define TIMEOUT_MAX_SEC     86400.0

/* Widths of the cut columns of `queue`, in characters. */
#define QUEUE_TO_WIDTH   32
#define QUEUE_TEXT_WIDTH 40

/* The exit statuses scripts rely on. */
#define EXIT_DONE      0
#define EXIT_REFUSED   1
#define EXIT_NO_ANSWER 2 /* also usage errors */

/* Positive results of a command, beside 0 (done) and -errno (failed, already reported). */
#define CTL_REFUSED 1 /* the daemon answered "ok": false; already reported */
#define CTL_HELP    2 /* --help was printed; nothing else to do */

/* Long-only options. */
enum {
	ARG_VERSION = 0x100,
	ARG_JSON,
	ARG_KEY,
	ARG_PRIORITY,
	ARG_TTL,
	ARG_COPY,
	ARG_SOURCE,
	ARG_BY,
	ARG_AT,
	ARG_UNTIL,
	ARG_FORCE,
	ARG_SERVER_KEY,
	ARG_CLIENT_KEY,
};

typedef struct Ctl {
	const char *endpoint_arg; /* -e */
	const char *config_path;  /* -c */
	double timeout_sec;       /* -t */
	char *endpoint;           /* resolved on the first request */
	const char *server_key;   /* --server-key: CURVE with these two */
	const char *client_key;   /* --key */
	CtlCurve curve;
} Ctl;

typedef struct CtlCommand CtlCommand;
struct CtlCommand {
	const char *name;
	const char *synopsis;
	const char *summary;
	const char *options; /* help lines of the command's options, or NULL */
	int (*run)(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv);
};

#define FIELD(o, k) CTL_J(json_object_get((o), (k)))

static int log_oom(void)
{
	return log_error_errno(ENOMEM, "Out of memory.");
}

static int usage_error(const CtlCommand *cmd, const char *format, ...) _printf_(2, 3);
static int usage_error(const CtlCommand *cmd, const char *format, ...)
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
static int option_error(const CtlCommand *cmd, int c, char **argv)
{
	const char *arg = argv[optind - 1];

	if (c == ':')
		return usage_error(cmd, "option '%s' needs a value", arg);
	if (optopt > 0 && optopt < 0x80 && isprint(optopt))
		return usage_error(cmd, "unknown option '-%c'", optopt);
	return usage_error(cmd, "unknown or misused option '%s'", arg);
}

static void command_help(const CtlCommand *cmd)
{
	printf("Usage: gatewayctl [GLOBAL OPTIONS] %s %s\n\n%s\n", cmd->name, cmd->synopsis,
	       cmd->summary);
	if (cmd->options)
		printf("\nOptions:\n%s", cmd->options);
}

static int check_utf8(const CtlCommand *cmd, const char *what, const char *s)
{
	if (!utf8_is_valid(s, strlen(s)))
		return usage_error(cmd, "%s is not valid UTF-8", what);
	return 0;
}

/* Positional arguments reach the option loops in order (optstring "-..."), so that `send TO...
 * -m TEXT` works whatever POSIXLY_CORRECT says. */
static int take_positional(const CtlCommand *cmd, const char *name, const char **slot,
                           const char *arg)
{
	if (!name || *slot)
		return usage_error(cmd, "unexpected argument '%s'", arg);
	*slot = arg;
	return 0;
}

/* The options of the commands that only look: --json and --help, and at most one positional
 * argument called pos_name (NULL: none), which is then required. */
static int parse_look_options(const CtlCommand *cmd, int argc, char **argv, const char *pos_name,
                              const char **ret_pos, bool *ret_json)
{
	static const struct option options[] = {
	        {"json", no_argument, NULL, ARG_JSON},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *pos = NULL;
	bool json = false;
	int c, r;

	optind = 0;
	while ((c = getopt_long(argc, argv, "-:h", options, NULL)) >= 0) {
		switch (c) {
		case 1:
			r = take_positional(cmd, pos_name, &pos, optarg);
			if (r < 0)
				return r;
			break;
		case ARG_JSON:
			json = true;
			break;
		case 'h':
			command_help(cmd);
			return CTL_HELP;
		default:
			return option_error(cmd, c, argv);
		}
	}
	for (; optind < argc; optind++) {
		r = take_positional(cmd, pos_name, &pos, argv[optind]);
		if (r < 0)
			return r;
	}
	if (pos_name && !pos)
		return usage_error(cmd, "missing %s", pos_name);

	if (ret_pos)
		*ret_pos = pos;
	*ret_json = json;
	return 0;
}

/* Alert ids are 32 lowercase hex digits; an id pasted in capitals is accepted too. */
static int parse_id(const CtlCommand *cmd, const char *arg, char ret[static ID_HEX_LEN + 1])
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
	return usage_error(cmd, "'%s' is not an alert id (32 hex digits)", arg);
}

/* Sends request (taking it over) and returns the reply when it says "ok": true. A refusal is
 * reported here, as "gatewayctl: <error>: <detail>", and returns CTL_REFUSED. Takes a NULL
 * request as the allocation failure it is, so callers may build requests inline. */
static int call(Ctl *ctl, json_t *request_owned, json_t **ret_reply)
{
	_cleanup_(json_decrefp) json_t *request = request_owned;
	_cleanup_(json_decrefp) json_t *reply = NULL;
	const json_t *ok, *error, *detail;
	int r;

	if (!request)
		return log_oom();
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

static int print_json(const json_t *reply)
{
	if (json_dumpf(reply, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0)
		return log_error_errno(EIO, "cannot write the reply");
	putchar('\n');
	return 0;
}

/* Prints text with every line after the first indented by indent spaces. */
static int print_block(const json_t *text, unsigned indent)
{
	_cleanup_free_ char *s = NULL;

	if (!json_is_string(text)) {
		printf("%s\n", CTL_J(text));
		return 0;
	}
	s = ctl_format_text(json_string_value(text), 0, true);
	if (!s)
		return log_oom();
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
		return log_oom();
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
			return log_oom();
	}
	r = ctl_table_print(table, stdout, 2);
	if (r == -ENOMEM)
		return log_oom();
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
	else
		printf("Cluster:  group %s, %s%s%s\n", FIELD(cluster, "group"),
		       json_is_true(quorate)    ? "quorate"
		       : json_is_false(quorate) ? "NOT quorate"
		                                : "quorum unknown",
		       json_is_false(json_object_get(cluster, "connected"))
		               ? ", local corosync unreachable"
		               : "",
		       json_is_true(json_object_get(cluster, "syncing")) ? ", exchanging state"
		                                                         : "");
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
	return 0;
}

static int print_deliveries(const json_t *deliveries)
{
	size_t i;

	if (json_array_size(deliveries) == 0) {
		printf("Deliveries: none\n");
		return 0;
	}
	printf("Deliveries:\n");
	for (i = 0; i < json_array_size(deliveries); i++) {
		const json_t *d = json_array_get(deliveries, i);
		const json_t *attempts = json_object_get(d, "attempts");

		printf("  %s: %s%s, %zu attempt%s\n", FIELD(d, "to"), FIELD(d, "state"),
		       streq_ptr(json_string_value(json_object_get(d, "kind")), "copy") ? " (copy)"
		                                                                        : "",
		       json_array_size(attempts), json_array_size(attempts) == 1 ? "" : "s");
	}
	return 0;
}

/* One line of the story: [at, what, node, detail], all strings. */
static int story_add(json_t *story, const json_t *at, const char *what, const char *node,
                     const char *detail)
{
	char when[CTL_FORMAT_MAX];

	snprintf(when, sizeof(when), "%s", CTL_J(at));
	return json_array_append_new(story, json_pack("[s, s, s, s]", when, what, node, detail));
}

static int story_cmp(const void *a, const void *b)
{
	/* RFC 3339 UTC with milliseconds: in time order as strings. Equal times keep their
	 * order (received first), which qsort does not promise: the index breaks the tie. */
	const json_t *x = *(const json_t *const *)a, *y = *(const json_t *const *)b;
	int c = strcmp(json_string_value(json_array_get(x, 0)),
	               json_string_value(json_array_get(y, 0)));

	return c ? c
	         : (int)(json_integer_value(json_array_get(x, 4)) -
	                 json_integer_value(json_array_get(y, 4)));
}

/* The alert's whole story in time order: received, duplicates, each SMS attempt, each
 * escalation step, each call, the acknowledgment. */
static int print_story(const json_t *alert)
{
	static const char *const headers[] = {"WHEN", "WHAT", "NODE", "DETAIL"};
	_cleanup_(ctl_table_freep) CtlTable *table = NULL;
	_cleanup_(json_decrefp) json_t *story = json_array();
	_cleanup_free_ const json_t **order = NULL;
	const json_t *deliveries = json_object_get(alert, "deliveries"), *ack, *e;
	char detail[CTL_FORMAT_MAX * 3];
	bool ack_told = false;
	size_t i, j;
	int r = 0;

	if (!story)
		return log_oom();
	snprintf(detail, sizeof(detail), "from %s", FIELD(alert, "source"));
	r |= story_add(story, json_object_get(alert, "accepted_at"), "received",
	               FIELD(alert, "node"), detail);
	json_array_foreach(json_object_get(alert, "history"), i, e)
	{
		r |= story_add(story, json_object_get(e, "at"), FIELD(e, "what"), FIELD(e, "node"),
		               FIELD(e, "detail"));
		ack_told |=
		        streq_ptr(json_string_value(json_object_get(e, "what")), "acknowledged");
	}
	json_array_foreach(deliveries, i, e)
	{
		const json_t *a;

		json_array_foreach(json_object_get(e, "attempts"), j, a)
		{
			bool ok =
			        streq_ptr(json_string_value(json_object_get(a, "result")), "sent");

			snprintf(detail, sizeof(detail), "to %s on modem %s%s%s", FIELD(e, "to"),
			         FIELD(a, "modem"), ok ? "" : ": ", ok ? "" : FIELD(a, "error"));
			r |= story_add(story, json_object_get(a, "at"), ok ? "sent" : "failed",
			               FIELD(a, "node"), detail);
		}
	}
	json_array_foreach(json_object_get(alert, "calls"), i, e)
	{
		snprintf(detail, sizeof(detail), "voice call to %s on modem %s: %s, %s s",
		         FIELD(e, "number"), FIELD(e, "modem"), FIELD(e, "outcome"),
		         FIELD(e, "duration"));
		r |= story_add(story, json_object_get(e, "at"), "called", FIELD(e, "node"), detail);
	}
	ack = json_object_get(alert, "ack");
	/* An acknowledgment by SMS has its own history line, with the sender's number. */
	if (json_is_object(ack) && !ack_told) {
		snprintf(detail, sizeof(detail), "by %s via %s", FIELD(ack, "by"),
		         FIELD(ack, "via"));
		r |= story_add(story, json_object_get(ack, "at"), "acknowledged", "-", detail);
	}
	if (r < 0)
		return log_oom();

	order = calloc(json_array_size(story) + 1, sizeof(*order));
	if (!order)
		return log_oom();
	json_array_foreach(story, i, e)
	{
		json_array_append_new((json_t *)e, json_integer((json_int_t)i));
		order[i] = e;
	}
	qsort(order, json_array_size(story), sizeof(*order), story_cmp);

	printf("Story:\n");
	r = ctl_table_new(ELEMENTSOF(headers), headers, &table);
	if (r < 0)
		return log_oom();
	for (i = 0; i < json_array_size(story); i++) {
		const char *cells[4];

		for (j = 0; j < 4; j++)
			cells[j] = json_string_value(json_array_get(order[i], j));
		r = ctl_table_add_row(table, cells);
		if (r < 0)
			return log_oom();
	}
	r = ctl_table_print(table, stdout, 2);
	return r == -ENOMEM ? log_oom() : 0;
}

static int print_alert(const json_t *alert)
{
	const json_t *ack = json_object_get(alert, "ack");
	int r;

	printf("%12s: %s\n", "Id", FIELD(alert, "id"));
	printf("%12s: %s\n", "State", FIELD(alert, "state"));
	printf("%12s: %s\n", "Priority", FIELD(alert, "priority"));
	printf("%12s: %s\n", "Key", FIELD(alert, "key"));
	printf("%12s: %s\n", "Source", FIELD(alert, "source"));
	printf("%12s: %s\n", "Accepted at", FIELD(alert, "accepted_at"));
	printf("%12s: %s\n", "Node", FIELD(alert, "node"));
	printf("%12s: ", "Text");
	r = print_block(json_object_get(alert, "text"), 14);
	if (r < 0)
		return r;
	if (json_is_object(ack) && json_is_string(json_object_get(ack, "from")))
		printf("%12s: by %s from %s via %s at %s\n", "Acknowledged", FIELD(ack, "by"),
		       FIELD(ack, "from"), FIELD(ack, "via"), FIELD(ack, "at"));
	else if (json_is_object(ack))
		printf("%12s: by %s via %s at %s\n", "Acknowledged", FIELD(ack, "by"),
		       FIELD(ack, "via"), FIELD(ack, "at"));
	else
		printf("%12s: no\n", "Acknowledged");

	if (json_is_object(json_object_get(alert, "escalation"))) {
		const json_t *esc = json_object_get(alert, "escalation");

		printf("%12s: step %s%s%s\n", "Escalation", FIELD(esc, "step"),
		       json_is_true(json_object_get(esc, "active")) ? ", next at " : ", stopped",
		       json_is_true(json_object_get(esc, "active")) ? FIELD(esc, "next_at") : "");
	}
	if (json_is_string(json_object_get(alert, "ack_code")))
		printf("%12s: reply ACK %s\n", "Ack code", FIELD(alert, "ack_code"));

	putchar('\n');
	r = print_deliveries(json_object_get(alert, "deliveries"));
	if (r < 0)
		return r;
	putchar('\n');
	return print_story(alert);
}

/* The recipients of a queued alert, comma-separated: the "to" of its deliveries. Returns a
 * string to free(), or NULL when out of memory. */
static char *join_recipients(const json_t *alert)
{
	_cleanup_free_ char *s = NULL;
	const json_t *deliveries = json_object_get(alert, "deliveries");
	size_t i, size = 0;
	char *ret;
	FILE *f;

	f = open_memstream(&s, &size);
	if (!f)
		return NULL;
	for (i = 0; i < json_array_size(deliveries); i++) {
		const json_t *to = json_object_get(json_array_get(deliveries, i), "to");

		fprintf(f, "%s%s", i > 0 ? "," : "",
		        json_is_string(to) ? json_string_value(to) : "?");
	}
	if (fclose(f) != 0)
		return NULL;
	ret = s;
	s = NULL;
	return ret;
}

static int print_queue(const json_t *reply)
{
	static const char *const headers[] = {"ID", "STATE", "PRIORITY", "TO", "TEXT"};
	_cleanup_(ctl_table_freep) CtlTable *table = NULL;
	const json_t *alerts = json_object_get(reply, "alerts");
	size_t i;
	int r;

	if (!json_is_array(alerts))
		return log_error_errno(EPROTO, "malformed reply: no \"alerts\" list");
	if (json_array_size(alerts) == 0) {
		printf("No pending alerts.\n");
		return 0;
	}

	r = ctl_table_new(ELEMENTSOF(headers), headers, &table);
	if (r < 0)
		return log_oom();
	for (i = 0; i < json_array_size(alerts); i++) {
		const json_t *a = json_array_get(alerts, i);
		_cleanup_free_ char *all = NULL, *to = NULL, *text = NULL;
		const json_t *t = json_object_get(a, "text");

		all = join_recipients(a);
		if (!all)
			return log_oom();
		to = ctl_format_text(all, QUEUE_TO_WIDTH, false);
		text = ctl_format_text(json_is_string(t) ? json_string_value(t) : "-",
		                       QUEUE_TEXT_WIDTH, false);
		if (!to || !text)
			return log_oom();
		r = ctl_table_add_row(table, (const char *[]){FIELD(a, "id"), FIELD(a, "state"),
		                                              FIELD(a, "priority"),
		                                              to[0] ? to : NULL, text});
		if (r < 0)
			return log_oom();
	}
	r = ctl_table_print(table, stdout, 0);
	if (r == -ENOMEM)
		return log_oom();
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
		return log_oom();
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
				return log_oom();
			shown = quarantined;
		}
		text = ctl_format_text(shown, QUEUE_TEXT_WIDTH * 2, false);
		if (!text)
			return log_oom();
		r = ctl_table_add_row(
		        table, (const char *[]){FIELD(m, "received_at"),
		                                quarantined ? "(quarantined)" : FIELD(m, "from"),
		                                FIELD(m, "node"), FIELD(m, "modem"), text});
		if (r < 0)
			return log_oom();
	}
	r = ctl_table_print(table, stdout, 0);
	return r == -ENOMEM ? log_oom() : 0;
}

static int cmd_inbox(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv)
{
	_cleanup_(json_decrefp) json_t *reply = NULL;
	bool json;
	int r;

	r = parse_look_options(cmd, argc, argv, NULL, NULL, &json);
	if (r != 0)
		return r;
	r = call(ctl, json_pack("{s:s}", "op", "inbox"), &reply);
	if (r != 0)
		return r;
	return json ? print_json(reply) : print_inbox(reply);
}

static int cmd_status(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv)
{
	_cleanup_(json_decrefp) json_t *reply = NULL;
	bool json;
	int r;

	r = parse_look_options(cmd, argc, argv, NULL, NULL, &json);
	if (r != 0)
		return r;
	r = call(ctl, json_pack("{s:s}", "op", "status"), &reply);
	if (r != 0)
		return r;
	return json ? print_json(reply) : print_status(reply);
}

static int cmd_queue(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv)
{
	_cleanup_(json_decrefp) json_t *reply = NULL;
	bool json;
	int r;

	r = parse_look_options(cmd, argc, argv, NULL, NULL, &json);
	if (r != 0)
		return r;
	r = call(ctl, json_pack("{s:s}", "op", "queue"), &reply);
	if (r != 0)
		return r;
	return json ? print_json(reply) : print_queue(reply);
}

static int cmd_keygen(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv)
{
	static const struct option options[] = {
	        {"force", no_argument, NULL, ARG_FORCE},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	const char *basename = NULL;
	bool force = false;
	int c, r;

	optind = 0;
	while ((c = getopt_long(argc, argv, "-:h", options, NULL)) >= 0) {
		switch (c) {
		case 1:
			r = take_positional(cmd, "BASENAME", &basename, optarg);
			if (r < 0)
				return r;
			break;
		case ARG_FORCE:
			force = true;
			break;
		case 'h':
			command_help(cmd);
			return CTL_HELP;
		default:
			return option_error(cmd, c, argv);
		}
	}
	if (!basename || !*basename)
		return usage_error(cmd, "BASENAME is missing");
	r = ctl_curve_keygen(basename, force);
	if (r < 0)
		return r;
	printf("%s\n%s_secret\n", basename, basename);
	return 0;
}

static int cmd_show(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv)
{
	_cleanup_(json_decrefp) json_t *reply = NULL;
	char id[ID_HEX_LEN + 1];
	const char *arg;
	bool json;
	int r;

	r = parse_look_options(cmd, argc, argv, "ID", &arg, &json);
	if (r != 0)
		return r;
	r = parse_id(cmd, arg, id);
	if (r < 0)
		return r;
	r = call(ctl, json_pack("{s:s, s:s}", "op", "get", "id", id), &reply);
	if (r != 0)
		return r;
	return json ? print_json(reply) : print_alert(reply);
}

/* Who acknowledges when --by is not given: the login name survives sudo, which is what the
 * record should show. */
static const char *default_by(void)
{
	const char *s = getlogin();

	if (s && *s && utf8_is_valid(s, strlen(s)))
		return s;
	s = getenv("USER");
	if (s && *s && utf8_is_valid(s, strlen(s)))
		return s;
	return "gatewayctl";
}

static int cmd_ack(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv)
{
	static const struct option options[] = {
	        {"by", required_argument, NULL, ARG_BY},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	_cleanup_(json_decrefp) json_t *reply = NULL;
	const char *arg = NULL, *by = NULL;
	const json_t *ack;
	char id[ID_HEX_LEN + 1];
	int c, r;

	optind = 0;
	while ((c = getopt_long(argc, argv, "-:h", options, NULL)) >= 0) {
		switch (c) {
		case 1:
			r = take_positional(cmd, "ID", &arg, optarg);
			if (r < 0)
				return r;
			break;
		case ARG_BY:
			r = check_utf8(cmd, "--by", optarg);
			if (r < 0)
				return r;
			by = optarg;
			break;
		case 'h':
			command_help(cmd);
			return CTL_HELP;
		default:
			return option_error(cmd, c, argv);
		}
	}
	for (; optind < argc; optind++) {
		r = take_positional(cmd, "ID", &arg, argv[optind]);
		if (r < 0)
			return r;
	}
	if (!arg)
		return usage_error(cmd, "missing ID");
	r = parse_id(cmd, arg, id);
	if (r < 0)
		return r;

	r = call(ctl,
	         json_pack("{s:s, s:s, s:s}", "op", "ack", "id", id, "by", by ? by : default_by()),
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

static int parse_ttl(const CtlCommand *cmd, const char *arg, json_int_t *ret)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(arg, &end, 10);
	if (errno != 0 || end == arg || *end != '\0' || v <= 0)
		return usage_error(cmd, "--ttl wants a positive number of seconds, not '%s'", arg);
	*ret = (json_int_t)v;
	return 0;
}

static int add_string(const CtlCommand *cmd, json_t *array, const char *what, const char *s)
{
	int r;

	r = check_utf8(cmd, what, s);
	if (r < 0)
		return r;
	if (json_array_append_new(array, json_string(s)) < 0)
		return log_oom();
	return 0;
}

static int cmd_send(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv)
{
	static const struct option options[] = {
	        {"message", required_argument, NULL, 'm'},
	        {"key", required_argument, NULL, ARG_KEY},
	        {"priority", required_argument, NULL, ARG_PRIORITY},
	        {"ttl", required_argument, NULL, ARG_TTL},
	        {"copy", required_argument, NULL, ARG_COPY},
	        {"source", required_argument, NULL, ARG_SOURCE},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	_cleanup_(json_decrefp) json_t *to = json_array();
	_cleanup_(json_decrefp) json_t *copy = json_array();
	_cleanup_(json_decrefp) json_t *request = json_object();
	_cleanup_(json_decrefp) json_t *reply = NULL;
	const char *text = NULL, *key = NULL, *priority = NULL, *source = NULL;
	char default_source[sizeof("gatewayctl@") + HOST_NAME_MAX + 1];
	json_int_t ttl = 0;
	const json_t *id, *status;
	int c, r;

	if (!to || !copy || !request)
		return log_oom();

	optind = 0;
	while ((c = getopt_long(argc, argv, "-:m:h", options, NULL)) >= 0) {
		switch (c) {
		case 1:
			r = add_string(cmd, to, "a recipient", optarg);
			if (r < 0)
				return r;
			break;
		case 'm':
			if (text)
				return usage_error(cmd, "-m given twice");
			r = check_utf8(cmd, "the text", optarg);
			if (r < 0)
				return r;
			text = optarg;
			break;
		case ARG_KEY:
			r = check_utf8(cmd, "--key", optarg);
			if (r < 0)
				return r;
			key = optarg;
			break;
		case ARG_PRIORITY:
			r = check_utf8(cmd, "--priority", optarg);
			if (r < 0)
				return r;
			priority = optarg;
			break;
		case ARG_TTL:
			r = parse_ttl(cmd, optarg, &ttl);
			if (r < 0)
				return r;
			break;
		case ARG_COPY:
			r = add_string(cmd, copy, "--copy", optarg);
			if (r < 0)
				return r;
			break;
		case ARG_SOURCE:
			r = check_utf8(cmd, "--source", optarg);
			if (r < 0)
				return r;
			source = optarg;
			break;
		case 'h':
			command_help(cmd);
			return CTL_HELP;
		default:
			return option_error(cmd, c, argv);
		}
	}
	for (; optind < argc; optind++) {
		r = add_string(cmd, to, "a recipient", argv[optind]);
		if (r < 0)
			return r;
	}
	if (json_array_size(to) == 0)
		return usage_error(cmd, "no recipient given");
	if (!text)
		return usage_error(cmd, "-m TEXT is required");

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
		return log_oom();

	r = call(ctl, json_incref(request), &reply);
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

/* A TIME argument (see ctl-time.h) as Unix seconds for the request. */
static int parse_time_arg(const CtlCommand *cmd, const char *what, const char *arg, json_int_t *ret)
{
	uint64_t usec;
	int r;

	r = ctl_time_parse(arg, now_realtime_usec(), &usec);
	if (r == -ENOENT)
		return usage_error(cmd, "%s '%s' does not exist in local time (the clock skips it)",
		                   what, arg);
	if (r < 0)
		return usage_error(cmd,
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
			return log_oom();
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
			return log_oom();
	}
	if (table) {
		r = ctl_table_print(table, stdout, 0);
		if (r == -ENOMEM)
			return log_oom();
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
		return take_positional(cmd, "ROLE", role, arg);
	return take_positional(cmd, clear ? NULL : "CONTACT", contact, arg);
}

/* oncall override ROLE CONTACT --until TIME [--by WHO] and oncall clear ROLE [--by WHO]. */
static int oncall_change(Ctl *ctl, const CtlCommand *cmd, bool clear, int argc, char **argv)
{
	static const struct option options[] = {
	        {"until", required_argument, NULL, ARG_UNTIL},
	        {"by", required_argument, NULL, ARG_BY},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	_cleanup_(json_decrefp) json_t *reply = NULL;
	const char *role = NULL, *contact = NULL, *by = NULL, *until_arg = NULL;
	char when[CTL_TIME_MAX];
	json_int_t until = 0;
	json_t *request;
	int c, r;

	optind = 0;
	while ((c = getopt_long(argc, argv, "-:h", options, NULL)) >= 0) {
		switch (c) {
		case 1:
			r = oncall_positional(cmd, clear, &role, &contact, optarg);
			if (r < 0)
				return r;
			break;
		case ARG_UNTIL:
			if (clear)
				return usage_error(cmd, "clear takes no --until");
			until_arg = optarg;
			break;
		case ARG_BY:
			r = check_utf8(cmd, "--by", optarg);
			if (r < 0)
				return r;
			by = optarg;
			break;
		case 'h':
			command_help(cmd);
			return CTL_HELP;
		default:
			return option_error(cmd, c, argv);
		}
	}
	for (; optind < argc; optind++) {
		r = oncall_positional(cmd, clear, &role, &contact, argv[optind]);
		if (r < 0)
			return r;
	}
	if (!role)
		return usage_error(cmd, "missing ROLE");
	r = check_utf8(cmd, "ROLE", role);
	if (r < 0)
		return r;
	if (clear)
		request = json_pack("{s:s, s:s, s:b, s:s}", "op", "override", "role", role, "clear",
		                    1, "by", by ? by : default_by());
	else {
		if (!contact)
			return usage_error(cmd, "missing CONTACT");
		r = check_utf8(cmd, "CONTACT", contact);
		if (r < 0)
			return r;
		if (!until_arg)
			return usage_error(cmd, "--until TIME is required");
		r = parse_time_arg(cmd, "--until", until_arg, &until);
		if (r < 0)
			return r;
		request =
		        json_pack("{s:s, s:s, s:s, s:I, s:s}", "op", "override", "role", role,
		                  "contact", contact, "until", until, "by", by ? by : default_by());
	}

	r = call(ctl, request, &reply);
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

static int cmd_oncall(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv)
{
	static const struct option options[] = {
	        {"at", required_argument, NULL, ARG_AT},
	        {"json", no_argument, NULL, ARG_JSON},
	        {"help", no_argument, NULL, 'h'},
	        {NULL, 0, NULL, 0},
	};
	_cleanup_(json_decrefp) json_t *reply = NULL;
	_cleanup_(json_decrefp) json_t *request = NULL;
	json_int_t at = 0;
	bool json = false, at_given = false;
	int c, r;

	/* The sub-commands that change something come first, like the commands themselves. */
	if (argc > 1 && streq(argv[1], "override"))
		return oncall_change(ctl, cmd, false, argc - 1, argv + 1);
	if (argc > 1 && streq(argv[1], "clear"))
		return oncall_change(ctl, cmd, true, argc - 1, argv + 1);

	optind = 0;
	while ((c = getopt_long(argc, argv, "-:h", options, NULL)) >= 0) {
		switch (c) {
		case 1:
			return usage_error(cmd, "unexpected argument '%s'", optarg);
		case ARG_AT:
			r = parse_time_arg(cmd, "--at", optarg, &at);
			if (r < 0)
				return r;
			at_given = true;
			break;
		case ARG_JSON:
			json = true;
			break;
		case 'h':
			command_help(cmd);
			return CTL_HELP;
		default:
			return option_error(cmd, c, argv);
		}
	}
	if (optind < argc)
		return usage_error(cmd, "unexpected argument '%s'", argv[optind]);

	request = json_pack("{s:s}", "op", "oncall");
	if (!request || (at_given && json_object_set_new(request, "at", json_integer(at)) < 0))
		return log_oom();
	r = call(ctl, json_incref(request), &reply);
	if (r != 0)
		return r;
	return json ? print_json(reply) : print_oncall(reply, at_given);
}

static const CtlCommand commands[] = {
        {
                .name = "status",
                .synopsis = "[--json]",
                .summary = "Show this node, the cluster, every modem, the queue and the voice "
                           "fallback.",
                .options = "      --json    print the daemon's reply as JSON\n",
                .run = cmd_status,
        },
        {
                .name = "send",
                .synopsis = "[--key K] [--priority P] [--ttl S] [--copy NUMBER]... [--source S] "
                            "TO... -m TEXT",
                .summary = "Submit an alert to TO (E.164 numbers or role:NAME); print its id and\n"
                           "\"queued\", or \"duplicate\" with the first alert's id.",
                .options = "  -m, --message=TEXT   the text of the alert (required)\n"
                           "      --key=K          dedupe key (default: derived from recipients "
                           "and text)\n"
                           "      --priority=P     critical or normal (default: normal)\n"
                           "      --ttl=S          seconds to live (default: 3600)\n"
                           "      --copy=NUMBER    also send a copy to NUMBER, never escalated "
                           "(repeatable)\n"
                           "      --source=S       where the alert comes from (default: "
                           "gatewayctl@HOSTNAME)\n",
                .run = cmd_send,
        },
        {
                .name = "show",
                .synopsis = "[--json] ID",
                .summary = "Show one alert: its deliveries with every attempt, voice calls and "
                           "acknowledgment.",
                .options = "      --json    print the daemon's reply as JSON\n",
                .run = cmd_show,
        },
        {
                .name = "ack",
                .synopsis = "[--by WHO] ID",
                .summary = "Acknowledge an alert, which stops its escalation.",
                .options = "      --by=WHO   who acknowledges (default: the login name)\n",
                .run = cmd_ack,
        },
        {
                .name = "queue",
                .synopsis = "[--json]",
                .summary = "List the alerts not yet final, newest first.",
                .options = "      --json    print the daemon's reply as JSON\n",
                .run = cmd_queue,
        },
        {
                .name = "inbox",
                .synopsis = "[--json]",
                .summary = "List the SMS the modems received, newest first.",
                .options = "      --json    print the daemon's reply as JSON\n",
                .run = cmd_inbox,
        },
        {
                .name = "oncall",
                .synopsis = "[--at TIME] [--json] | override ROLE CONTACT --until TIME "
                            "[--by WHO] | clear ROLE [--by WHO]",
                .summary = "Show who is on duty for each role, by rotation or override, and "
                           "the next hand-over;\n"
                           "or put CONTACT on duty for ROLE until TIME; or end that "
                           "override.\n"
                           "TIME is 'YYYY-MM-DD HH:MM' (local time), an RFC 3339 time, or a "
                           "duration\n"
                           "from now such as 8h or 3d.",
                .options = "      --at=TIME      who is on duty then (default: now)\n"
                           "      --json         print the daemon's reply as JSON\n"
                           "      --until=TIME   when the override ends (required; within 90 "
                           "days)\n"
                           "      --by=WHO       who sets the override (default: the login "
                           "name)\n",
                .run = cmd_oncall,
        },
        {
                .name = "keygen",
                .synopsis = "[--force] BASENAME",
                .summary = "Make a CURVE key pair: BASENAME holds the public key (give it to "
                           "the other side),\n"
                           "BASENAME_secret both keys (mode 0600). Asks no daemon.",
                .options = "      --force   replace existing files\n",
                .run = cmd_keygen,
        },
};

static void help(void)
{
	printf("Usage: gatewayctl [-c CONFIG | -e ENDPOINT] [-t SECONDS] COMMAND [ARGS]\n"
	       "\n"
	       "Ask the SMS alert gateway cluster through the submit socket of a gatewayd.\n"
	       "\n"
	       "Options:\n"
	       "  -c, --config=FILE        read [control] or [submit] bind from FILE (default: "
	       "%s)\n"
	       "  -e, --endpoint=ADDRESS   talk to ADDRESS (default: from the config, else %s)\n"
	       "  -t, --timeout=SECONDS    wait at most SECONDS for the answer (default: 5)\n"
	       "      --server-key=FILE    use CURVE: the server's public certificate\n"
	       "      --key=FILE           use CURVE: our own secret certificate\n"
	       "  -h, --help               show this help\n"
	       "      --version            show the version\n"
	       "\n"
	       "Commands:\n",
	       GATEWAYD_CONFIG_FILE, CTL_ENDPOINT_DEFAULT);
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		printf("  %s %s\n", commands[i].name, commands[i].synopsis);
	printf("\n"
	       "'gatewayctl COMMAND --help' describes a command. Exit status: 0 done, 1 refused "
	       "by\n"
	       "the daemon, 2 usage error or no answer. See gatewayctl(8).\n");
}

static int parse_timeout(const char *arg, double *ret)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	/* Written so that NaN fails too. */
	if (errno != 0 || end == arg || *end != '\0' || !(v > 0 && v <= TIMEOUT_MAX_SEC))
		return usage_error(NULL,
		                   "-t wants a number of seconds above 0 and up to %g, not '%s'",
		                   TIMEOUT_MAX_SEC, arg);
	*ret = v;
	return 0;
}

static int exit_status(int r)
{
	if (r < 0)
		return EXIT_NO_ANSWER;
	if (r == CTL_REFUSED)
		return EXIT_REFUSED;
	return EXIT_DONE;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
	        {"config", required_argument, NULL, 'c'},
	        {"endpoint", required_argument, NULL, 'e'},
	        {"timeout", required_argument, NULL, 't'},
	        {"server-key", required_argument, NULL, ARG_SERVER_KEY},
	        {"key", required_argument, NULL, ARG_CLIENT_KEY},
	        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, ARG_VERSION},
	        {NULL, 0, NULL, 0},
	};
	Ctl ctl = {.timeout_sec = TIMEOUT_DEFAULT_SEC};
	const CtlCommand *cmd = NULL;
	int c, r;

	log_setup("gatewayctl");

	/* '+': stop at the command; its options are its own. */
	while ((c = getopt_long(argc, argv, "+:c:e:t:h", options, NULL)) >= 0) {
		switch (c) {
		case 'c':
			ctl.config_path = optarg;
			break;
		case 'e':
			ctl.endpoint_arg = optarg;
			break;
		case 't':
			r = parse_timeout(optarg, &ctl.timeout_sec);
			if (r < 0)
				return exit_status(r);
			break;
		case ARG_SERVER_KEY:
			ctl.server_key = optarg;
			break;
		case ARG_CLIENT_KEY:
			ctl.client_key = optarg;
			break;
		case 'h':
			help();
			return EXIT_DONE;
		case ARG_VERSION:
			printf("gatewayctl %s\n", VERSION);
			return EXIT_DONE;
		default:
			return exit_status(option_error(NULL, c, argv));
		}
	}
	if (ctl.config_path && ctl.endpoint_arg)
		return exit_status(usage_error(NULL, "-c and -e exclude each other"));
	if (!ctl.server_key != !ctl.client_key)
		return exit_status(usage_error(NULL, "--server-key and --key go together"));
	if (optind >= argc)
		return exit_status(usage_error(NULL, "no command given"));

	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		if (streq(commands[i].name, argv[optind]))
			cmd = &commands[i];
	if (!cmd)
		return exit_status(usage_error(NULL, "unknown command '%s'", argv[optind]));

	r = cmd->run(&ctl, cmd, argc - optind, argv + optind);
	free(ctl.endpoint);

	if (fflush(stdout) != 0 || ferror(stdout)) {
		log_error_errno(EIO, "cannot write to standard output: %s",
		                strerror(errno ? errno : EIO));
		return EXIT_NO_ANSWER;
	}
	return exit_status(r);
}
