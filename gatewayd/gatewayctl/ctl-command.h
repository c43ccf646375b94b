/* ctl_command: what every gatewayctl command shares. The run's settings (Ctl), the row of the
 * table of commands (CtlCommand), the usage errors in one format, the option parsing of the
 * commands that only look, and the one request a command makes (ctl_command_call).
 *
 * gatewayctl is single-threaded; these run on its one thread. Strings a command is given stay the
 * caller's; a reply returned through ret_reply is the caller's to json_decref(). Functions return
 * 0 when done, -errno when failed (already reported), or one of the positive codes below. */
#pragma once

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
	const char *options; /* help lines of the command's options, or NULL */
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
int ctl_oncall_command(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv);
int ctl_curve_keygen_command(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv);
