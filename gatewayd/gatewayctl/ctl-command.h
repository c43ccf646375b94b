/* ctl_command: what every gatewayctl command shares. The run's settings (Ctl), the row of the
 * table of commands (CtlCommand), the usage errors in one format, the option parsing of the
 * commands that only look, and the one request a command makes (ctl_command_call).
 *
 * gatewayctl is single-threaded; these run on its one thread. Strings a command is given stay the
 * caller's; a reply returned through ret_reply is the caller's to json_decref(). Functions return
 * 0 when done, -errno when failed (already reported), or one of the positive codes below. */
#pragma once

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>

#include "ctl-curve.h"
#include "ctl-format.h"
#include "macro.h"
#include "util.h"

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
	const char *options;   /* help lines of the command's options, or NULL */
	const char *optstring; /* for getopt_long(): "-:" first, see ctl_command_parse() */
	const struct option *long_options; /* ends with a zero row; --help is 'h' */
	int (*run)(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv);
};

#define FIELD(o, k) CTL_J(json_object_get((o), (k)))

int ctl_command_oom(void);

/* Reports a usage error of cmd (NULL: of gatewayctl itself) and returns -EINVAL. */
int ctl_command_usage_error(const CtlCommand *cmd, const char *format, ...) _printf_(2, 3);
int ctl_command_option_error(const CtlCommand *cmd, int c, char **argv);
void ctl_command_help(const CtlCommand *cmd);
int ctl_command_check_utf8(const CtlCommand *cmd, const char *what, const char *s);
int ctl_command_take_positional(const CtlCommand *cmd, const char *name, const char **slot,
                                const char *arg);
/* Called by ctl_command_parse() once per option, in command-line order: c is what getopt_long()
 * returned for it (a short letter or an ARG_*), or 1 for a positional argument. Returns 0 or
 * -errno (reported). */
typedef int (*CtlOptionFn)(const CtlCommand *cmd, int c, const char *arg, void *userdata);

/* The one option loop of the commands: hands every option and positional argument of argv, with
 * the option set optstring/long_options, to fn; answers --help (CTL_HELP) and reports unknown
 * options and missing values itself. optstring starts with "-:" so that positionals come in
 * order (`send TO... -m TEXT` whatever POSIXLY_CORRECT says) and getopt stays quiet. */
int ctl_command_parse(const CtlCommand *cmd, const char *optstring,
                      const struct option *long_options, int argc, char **argv, CtlOptionFn fn,
                      void *userdata);
/* ctl_command_parse() with the command's own row of the table. */
int ctl_command_parse_row(const CtlCommand *cmd, int argc, char **argv, CtlOptionFn fn,
                          void *userdata);
/* The options of the commands that only look, for their rows of the table: --json and --help.
 * ctl_command_parse_look_options() parses them with the row, and takes at most one positional
 * argument called pos_name (NULL: none), which is then required. */
extern const struct option ctl_command_look_options[];
#define CTL_LOOK_OPTSTRING "-:h"
int ctl_command_parse_look_options(const CtlCommand *cmd, int argc, char **argv,
                                   const char *pos_name, const char **ret_pos, bool *ret_json);
int ctl_command_parse_id(const CtlCommand *cmd, const char *arg, char ret[static ID_HEX_LEN + 1]);
int ctl_command_call(Ctl *ctl, json_t *request_owned, json_t **ret_reply);
int ctl_command_print_json(const json_t *reply);
int ctl_command_print_block(const json_t *text, unsigned indent);
const char *ctl_command_default_by(void);

/* The commands, one group per file: ctl-status.c, ctl-alerts.c, ctl-submit.c, ctl-oncall.c,
 * ctl-curve.c. Each has the signature of CtlCommand.run. */
int ctl_status_command(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv);
int ctl_status_inbox_command(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv);
int ctl_alerts_queue_command(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv);
int ctl_alerts_show_command(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv);
int ctl_submit_send_command(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv);
int ctl_submit_ack_command(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv);
int ctl_submit_resolve_command(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv);
int ctl_submit_heartbeat_command(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv);
int ctl_oncall_command(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv);
int ctl_silence_command(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv);
int ctl_curve_keygen_command(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv);
