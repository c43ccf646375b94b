/* gatewayctl: the operator's and the script's way into the gateway cluster.
 *
 * It is a thin client on purpose. Each run asks one question over the same ZeroMQ socket and
 * JSON protocol that upstream alert systems use (ctl-request), so whatever gatewayctl can do a
 * Nagios plugin can do too, and the daemon keeps one front door. The tool holds no state and no
 * knowledge of the cluster beyond what a reply says; printing is all it adds.
 *
 * Commands are rows of one table: name, synopsis, help text, the command's options and a
 * function that takes those options through the one shared loop (ctl_command_parse), builds one
 * request, and prints the reply either for a human (aligned, sanitised against terminal escapes,
 * see ctl-format) or, with --json, as the daemon sent it.
 * A new op of the daemon is a new row and one function. The functions live one group per file
 * (ctl-status, ctl-alerts, ctl-submit, ctl-oncall, and keygen in ctl-curve); what they share,
 * from usage errors to the request itself, is ctl-command. This file holds the table, the global
 * options and the exit status.
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

#include "ctl-command.h"
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

/* The exit statuses scripts rely on. */
#define EXIT_DONE      0
#define EXIT_REFUSED   1
#define EXIT_NO_ANSWER 2 /* also usage errors */

/* The options of each command, beside its help lines in the table; the command's file says what
 * each does. */
static const struct option send_options[] = {
        {"message", required_argument, NULL, 'm'},
        {"key", required_argument, NULL, ARG_KEY},
        {"priority", required_argument, NULL, ARG_PRIORITY},
        {"ttl", required_argument, NULL, ARG_TTL},
        {"copy", required_argument, NULL, ARG_COPY},
        {"source", required_argument, NULL, ARG_SOURCE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
};
static const struct option ack_options[] = {
        {"by", required_argument, NULL, ARG_BY},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
};
static const struct option resolve_options[] = {
        {"key", required_argument, NULL, ARG_KEY},
        {"by", required_argument, NULL, ARG_BY},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
};
static const struct option oncall_options[] = {
        {"at", required_argument, NULL, ARG_AT},
        {"json", no_argument, NULL, ARG_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
};
static const struct option help_options[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
};
static const struct option keygen_options[] = {
        {"force", no_argument, NULL, ARG_FORCE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
};

static const CtlCommand commands[] = {
        {
                .name = "status",
                .synopsis = "[--json]",
                .summary = "Show this node, the cluster, every modem, the queue and the voice "
                           "fallback.",
                .options = "      --json    print the daemon's reply as JSON\n",
                .optstring = CTL_LOOK_OPTSTRING,
                .long_options = ctl_command_look_options,
                .run = ctl_status_command,
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
                .optstring = "-:m:h",
                .long_options = send_options,
                .run = ctl_submit_send_command,
        },
        {
                .name = "show",
                .synopsis = "[--json] ID",
                .summary = "Show one alert: its deliveries with every attempt, voice calls and "
                           "acknowledgment.",
                .options = "      --json    print the daemon's reply as JSON\n",
                .optstring = CTL_LOOK_OPTSTRING,
                .long_options = ctl_command_look_options,
                .run = ctl_alerts_show_command,
        },
        {
                .name = "ack",
                .synopsis = "[--by WHO] ID",
                .summary = "Acknowledge an alert, which stops its escalation.",
                .options = "      --by=WHO   who acknowledges (default: the login name)\n",
                .optstring = "-:h",
                .long_options = ack_options,
                .run = ctl_submit_ack_command,
        },
        {
                .name = "resolve",
                .synopsis = "[--by WHO] ID | --key KEY",
                .summary = "Resolve an alert: its escalation stops, what was not sent is "
                           "cancelled, those it reached get an all-clear.",
                .options = "      --key=KEY  the open alert with this dedupe key, instead of ID\n"
                           "      --by=WHO   who resolves (default: the login name)\n",
                .optstring = "-:h",
                .long_options = resolve_options,
                .run = ctl_submit_resolve_command,
        },
        {
                .name = "heartbeat",
                .synopsis = "NAME",
                .summary = "Ping the dead-man monitor [heartbeat NAME]: the system it watches "
                           "is alive.",
                .optstring = "-:h",
                .long_options = help_options,
                .run = ctl_submit_heartbeat_command,
        },
        {
                .name = "queue",
                .synopsis = "[--json]",
                .summary = "List the alerts not yet final, newest first.",
                .options = "      --json    print the daemon's reply as JSON\n",
                .optstring = CTL_LOOK_OPTSTRING,
                .long_options = ctl_command_look_options,
                .run = ctl_alerts_queue_command,
        },
        {
                .name = "inbox",
                .synopsis = "[--json]",
                .summary = "List the SMS the modems received, newest first.",
                .options = "      --json    print the daemon's reply as JSON\n",
                .optstring = CTL_LOOK_OPTSTRING,
                .long_options = ctl_command_look_options,
                .run = ctl_status_inbox_command,
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
                .optstring = "-:h",
                .long_options = oncall_options,
                .run = ctl_oncall_command,
        },
        {
                .name = "silence",
                .synopsis = "[list] [--json] | add (--key-prefix P | --source S | "
                            "--text-contains WORDS) --for DURATION [--reason TEXT] "
                            "[--except-critical] [--by WHO] | remove SILENCE [--by WHO]",
                .summary = "List the silences in force; or hold back, for DURATION (2h, 90m, "
                           "1d), the alerts\n"
                           "whose key starts with P, whose source is S, or whose text "
                           "contains WORDS\n"
                           "(recorded, not sent); or end a silence early.",
                .options = "      --json              print the daemon's reply as JSON\n"
                           "      --for=DURATION      how long (1m to 90d)\n"
                           "      --reason=TEXT       why, shown in the list and the alerts' "
                           "story\n"
                           "      --except-critical   critical alerts still go out\n"
                           "      --by=WHO            who (default: the login name)\n",
                .optstring = CTL_LOOK_OPTSTRING,
                .long_options = ctl_command_look_options,
                .run = ctl_silence_command,
        },
        {
                .name = "keygen",
                .synopsis = "[--force] BASENAME",
                .summary = "Make a CURVE key pair: BASENAME holds the public key (give it to "
                           "the other side),\n"
                           "BASENAME_secret both keys (mode 0600). Asks no daemon.",
                .options = "      --force   replace existing files\n",
                .optstring = "-:h",
                .long_options = keygen_options,
                .run = ctl_curve_keygen_command,
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
		return ctl_command_usage_error(
		        NULL, "-t wants a number of seconds above 0 and up to %g, not '%s'",
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
			return exit_status(ctl_command_option_error(NULL, c, argv));
		}
	}
	if (ctl.config_path && ctl.endpoint_arg)
		return exit_status(ctl_command_usage_error(NULL, "-c and -e exclude each other"));
	if (!ctl.server_key != !ctl.client_key)
		return exit_status(
		        ctl_command_usage_error(NULL, "--server-key and --key go together"));
	if (optind >= argc)
		return exit_status(ctl_command_usage_error(NULL, "no command given"));

	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		if (streq(commands[i].name, argv[optind]))
			cmd = &commands[i];
	if (!cmd)
		return exit_status(
		        ctl_command_usage_error(NULL, "unknown command '%s'", argv[optind]));

	r = cmd->run(&ctl, cmd, argc - optind, argv + optind);
	free(ctl.endpoint);

	if (fflush(stdout) != 0 || ferror(stdout)) {
		log_error_errno(EIO, "cannot write to standard output: %s",
		                strerror(errno ? errno : EIO));
		return EXIT_NO_ANSWER;
	}
	return exit_status(r);
}
