/* config: the gatewayd.conf INI file, parsed and validated in one go.
 *
 * config_load() either returns a complete Config with every default filled in, or fails with a
 * message of the form "file:line: reason" (stored in ret_error) that start-up prints as is.
 * Unknown sections and keys are errors, so a typo never silently changes behaviour.
 *
 * Threads: main thread. Ownership: the caller frees the Config with config_free(). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "validate.h"

#define CONFIG_DEFAULT_PATH "/etc/gatewayd/gatewayd.conf"
#define CONFIG_NAME_MAX     VALIDATE_NAME_MAX

typedef struct ModemConfig {
	char *name;
	char *device;
	char *connection;
	char *pin;
	unsigned send_timeout;    /* seconds */
	unsigned command_timeout; /* seconds */
	unsigned health_interval; /* seconds */
	unsigned inbox_interval;  /* seconds between reads of the SIM's received SMS */
	char *imei;               /* find the modem by IMEI among the serial ports; NULL: don't */
	int min_signal;           /* CSQ below this: degraded; -1 never */
	unsigned max_consecutive_failures;
	bool delivery_reports;
	char *number;  /* this SIM's own number: the other node's self-test sends here */
	unsigned line; /* where the section starts, for later errors */
} ModemConfig;

/* CURVE on one socket: both set, or neither (plain, anyone who can connect gets in). */
typedef struct CurveConfig {
	char *secret_key_file; /* the server's certificate, as zcert_save_secret() writes it */
	char *clients_dir;     /* public certificates of the clients let in */
	unsigned line;         /* of the first of the two keys, for later errors */
} CurveConfig;

typedef struct ContactConfig {
	char *name;
	char *number;
	unsigned line;
} ContactConfig;

typedef enum Rotation { ROTATION_NONE, ROTATION_DAILY, ROTATION_WEEKLY } Rotation;

typedef struct RoleConfig {
	char *name;
	char **contacts; /* names of [contact] sections, in rotation order */
	size_t n_contacts;
	Rotation rotation;
	int handoff_wday;    /* 0 = Sunday .. 6, for weekly rotation */
	int handoff_minutes; /* minutes after local midnight */
	unsigned line;
} RoleConfig;

/* [heartbeat NAME]: a dead-man monitor; an alert when no ping came for interval + grace. */
typedef struct HeartbeatConfig {
	char *name;
	unsigned interval; /* seconds between the pings expected */
	unsigned grace;    /* seconds past a missed ping before the alert */
	char **to;         /* E.164 numbers and role:NAME */
	size_t n_to;
	bool critical;
	char *text; /* NULL: "No heartbeat from NAME since ..." */
	unsigned line;
} HeartbeatConfig;

/* "5/15m": at most `count` per `window` seconds; a count of 0 is no limit. */
typedef struct RateLimit {
	unsigned count;
	unsigned window;
} RateLimit;

typedef struct Config {
	char *path;

	char *node_name;
	char *state_dir;

	char *submit_bind;
	unsigned max_parts;
	unsigned max_queue;         /* non-final alerts before queue_full */
	unsigned submit_rate;       /* sends per second per submitter; 0: no limit */
	unsigned submit_burst;      /* sends a submitter may make at once */
	unsigned submit_ops;        /* (1u << RequestOp) for each op the submit socket serves */
	unsigned submit_read_rate;  /* reads (every op but send) per second per submitter; 0: off */
	unsigned submit_read_burst; /* reads a submitter may make at once */
	CurveConfig submit_curve;

	/* Per listening socket: connections at once (0: no cap), and whether a TCP bind beyond
	 * loopback may go without CURVE (config_load() refuses it otherwise). */
	unsigned submit_max_clients;
	bool submit_insecure_remote;

	char *events_bind;
	CurveConfig events_curve;
	unsigned events_max_clients;
	bool events_insecure_remote;

	char *control_bind; /* NULL: no control socket */
	unsigned control_max_clients;
	bool control_insecure_remote;

	bool cluster_enabled;
	char *cluster_group;
	unsigned peer_grace;     /* seconds alone after a (re)connect before taking a peer's work */
	unsigned check_interval; /* seconds between digest checks of the replicas; 0: off */
	unsigned rejoin_margin;  /* seconds in step after which a node holds all older changes */
	unsigned exchange_timeout;  /* seconds a state exchange waits without progress */
	unsigned selftest_interval; /* seconds between path self-tests; 0 = off */
	unsigned selftest_timeout;  /* seconds a self-test SMS may take to arrive */

	ModemConfig *modems;
	size_t n_modems;

	char *voice_modem;
	char *voice_device;
	char *voice_contact_center;
	unsigned voice_ring_timeout;
	unsigned voice_hold;          /* seconds an answered call stays up */
	unsigned voice_connect_grace; /* seconds a modem (re)connecting is not a failed path */
	unsigned voice_retries;       /* busy/no answer: calls again this many times */
	unsigned voice_retry_delay;   /* seconds before the first retry; doubles each time */
	unsigned voice_recall;        /* seconds between calls once retries are spent; 0: none */

	uint64_t dedupe_window; /* seconds */
	uint64_t retention;     /* seconds */

	unsigned retry_min; /* seconds before the first retry of a delivery */
	unsigned retry_max; /* cap of the exponential backoff */
	unsigned max_permanent_failures;

	ContactConfig *contacts;
	size_t n_contacts;
	RoleConfig *roles;
	size_t n_roles;
	char **escalation_steps;
	size_t n_escalation_steps;
	unsigned escalation_step_timeout;
	unsigned escalation_repeat;      /* rounds of the whole chain after the first */
	bool escalation_notify_resolved; /* all-clear SMS to those a resolved alert reached */

	unsigned bundle_threshold; /* alerts for one number within the window before holding */
	unsigned bundle_window;    /* seconds */

	HeartbeatConfig *heartbeats;
	size_t n_heartbeats;

	/* [drill]: a test page at a set time that must be acknowledged; off without `at` */
	int drill_wday;    /* 0 sunday .. 6 saturday; -1 every day */
	int drill_seconds; /* the second of the (local) day; -1: no drill */
	char **drill_to;
	size_t n_drill_to;
	unsigned drill_ack_within; /* seconds */

	/* [health]: the gateway pages about itself; off without `to` */
	char **health_to;
	size_t n_health_to;
	bool health_critical;
	unsigned health_peer_offline; /* seconds a peer is offline before paging */
	unsigned health_modem_down;   /* seconds a modem is failed or absent */
	unsigned health_no_path;      /* seconds this node has no usable modem */
	unsigned health_queue_age;    /* seconds a due delivery has waited */
	unsigned health_store_fail;   /* seconds another node's store cannot commit */
	unsigned health_clock_skew;   /* seconds the clocks may differ */
	unsigned health_clear;        /* seconds a condition must be gone before it resolves */
	unsigned health_report_wait;  /* seconds a sent SMS may wait for its delivery report */

	RateLimit limit_sms;   /* SMS per phone number per window; count 0: no limit */
	RateLimit limit_calls; /* voice calls per phone number per window; count 0: no limit */

	char *metrics_textfile;    /* Prometheus text file rewritten every interval; NULL: off */
	unsigned metrics_interval; /* seconds */

	char *hooks_on_ack;     /* a command line, split at blanks, no shell; NULL: none */
	unsigned hooks_timeout; /* seconds a hook may run before it is killed */
} Config;

/* The keys of gatewayd.conf, one row each: config_load() walks this table to parse a key and to
 * fill the defaults, and tests/unit/test-config.c holds it against gatewayd.conf(5). Keys with
 * their own grammar (lists, handoff, ops) have a parse callback of their own in the row. */
typedef struct ConfigParser ConfigParser;
typedef struct ConfigItem ConfigItem;

/* Parses value into field (the Config, or the [modem]/[contact]/[role] object, at the row's
 * offset). Returns 0; -EINVAL for a bad value, which the caller reports as "bad value 'V' for K:
 * <what>" unless the callback reported something more precise itself; -ENOMEM. */
typedef int (*ConfigParseFn)(ConfigParser *p, const ConfigItem *item, void *field,
                             const char *value);

struct ConfigItem {
	const char *section; /* "submit", or "modem" for every [modem NAME], etc. */
	const char *key;
	ConfigParseFn parse;
	size_t offset;     /* of the field in Config, ModemConfig, ContactConfig or RoleConfig */
	size_t offset_n;   /* lists: of the element count beside the vector */
	uint64_t min, max; /* numbers and durations (seconds): the range; text: its length */
	const char *def;   /* the default as it would be written in the file; NULL: none, or
	                    * derived from other keys (gatewayd.conf(5) says how) */
	const char *what;  /* why a value is bad: "a duration from 1s to 1h" */
	const char *doc;   /* one line, as gatewayd.conf(5) describes it */
};

/* The table, in the order of gatewayd.conf(5); static storage. */
const ConfigItem *config_items(size_t *ret_n);

/* Returns 0, or -errno with *ret_error set to a malloc'd "file:line: reason". */
int config_load(const char *path, Config **ret, char **ret_error);
Config *config_free(Config *c);

const ContactConfig *config_find_contact(const Config *c, const char *name);
const RoleConfig *config_find_role(const Config *c, const char *name);
const HeartbeatConfig *config_find_heartbeat(const Config *c, const char *name);
/* The last instant, realtime usec, at or before `usec` that [drill] at names (local time,
 * DST changes included); 0 when there is no drill. */
uint64_t config_drill_last(const Config *c, uint64_t usec);
const ModemConfig *config_find_modem(const Config *c, const char *name);

/* The contact of role on duty at realtime `usec` by its rotation, or NULL. Hand-overs happen at
 * the configured local wall-clock time (TZ, /etc/localtime), DST changes included. */
const ContactConfig *config_role_on_duty(const Config *c, const RoleConfig *role, uint64_t usec);
/* The realtime usec of the first hand-over after `usec`; 0 when the duty never changes hands
 * (rotation none, or a single contact). */
uint64_t config_role_next_handoff(const RoleConfig *role, uint64_t usec);

/* A hash of what the nodes of a cluster must agree on (contacts, roles, escalation, dedupe
 * window, retries), as 32 hex digits: nodes compare it to warn of a config that drifted apart. */
void config_fingerprint(const Config *c, char ret[static 33]);

/* Whether endpoint listens beyond this host: any tcp:// (or other network transport) whose
 * host is not a loopback address, "localhost" or "lo". ipc:// and inproc:// are local. */
bool config_endpoint_is_remote(const char *endpoint);
