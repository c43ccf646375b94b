/* config-table: the sections and keys of gatewayd.conf, and the parsers of their values.
 *
 * One row per key (config.h's ConfigItem): where its value goes, how it is parsed, its range,
 * its default and one line of documentation. config.c walks the table to read a file and to fill
 * the defaults; tests/unit/test-config.c holds it against gatewayd.conf(5). A value parser
 * returns -EINVAL for a bad value, which the reader reports with the row's `what`, or reports
 * something more precise itself through config_parser_fail(). */
#include "config-internal.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "request.h"
#include "util.h"
#include "validate.h"

static int parse_bool(const char *s, bool *ret)
{
	if (streq(s, "true") || streq(s, "yes") || streq(s, "on") || streq(s, "1"))
		*ret = true;
	else if (streq(s, "false") || streq(s, "no") || streq(s, "off") || streq(s, "0"))
		*ret = false;
	else
		return -EINVAL;
	return 0;
}

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *ret)
{
	unsigned long v;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end || v < min || v > max)
		return -ERANGE;
	*ret = (unsigned)v;
	return 0;
}

/* A duration (see parse_duration) within [min, max] seconds. */
static int parse_seconds(const char *s, unsigned min, unsigned max, unsigned *ret)
{
	uint64_t d;

	if (parse_duration(s, &d) < 0 || d < min || d > max)
		return -ERANGE;
	*ret = (unsigned)d;
	return 0;
}

int config_set_string(char **field, const char *value)
{
	char *s = strdup(value);

	if (!s)
		return -ENOMEM;
	free(*field);
	*field = s;
	return 0;
}

/* Splits "a, b ,c" into a malloc'd vector of names. */
static int parse_list(const char *value, char ***ret, size_t *ret_n)
{
	_cleanup_free_ char *copy = strdup(value);
	char **v = NULL, *save = NULL;
	size_t n = 0;

	if (!copy)
		return -ENOMEM;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char **nv;

		while (isspace((unsigned char)*tok))
			tok++;
		for (char *e = tok + strlen(tok); e > tok && isspace((unsigned char)e[-1]); e--)
			e[-1] = 0;
		if (!*tok)
			continue;
		nv = realloc(v, (n + 1) * sizeof(char *));
		if (!nv)
			goto oom;
		v = nv;
		v[n] = strdup(tok);
		if (!v[n])
			goto oom;
		n++;
	}
	*ret = v;
	*ret_n = n;
	return 0;
oom:
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
	return -ENOMEM;
}

void config_free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static const char *weekdays[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

/* "mon 09:00" (weekly) or "09:00" (daily), seconds ("09:00:30") where `with_seconds`: the day
 * (-1: every day) and the second of the day. */
static int parse_day_time(const char *s, bool with_seconds, int *ret_wday, int *ret_seconds)
{
	int wday = -1, h, m, sec = 0, n;
	char extra;

	for (size_t i = 0; i < ELEMENTSOF(weekdays); i++)
		if (strncasecmp(s, weekdays[i], 3) == 0 && s[3] == ' ') {
			wday = (int)i;
			s += 4;
			break;
		}
	n = sscanf(s, "%d:%d:%d%c", &h, &m, &sec, &extra);
	if (n == 3 && !with_seconds)
		return -EINVAL;
	if (n != 3 && sscanf(s, "%d:%d%c", &h, &m, &extra) != 2)
		return -EINVAL;
	if (h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec > 59)
		return -EINVAL;
	*ret_wday = wday;
	*ret_seconds = h * 3600 + m * 60 + sec;
	return 0;
}

/* "mon 09:00" (weekly) or "09:00" (daily). */
static int parse_handoff(const char *s, int *ret_wday, int *ret_minutes)
{
	int seconds, r;

	r = parse_day_time(s, false, ret_wday, &seconds);
	if (r < 0)
		return r;
	*ret_minutes = seconds / 60;
	return 0;
}

/* "20/s", "20 per second" or "20"; 0 turns the limit off. */
static int parse_rate(const char *value, unsigned *ret)
{
	char number[16];
	size_t n = strspn(value, "0123456789");
	const char *unit = value + n;

	if (n == 0 || n >= sizeof(number))
		return -EINVAL;
	while (*unit == ' ')
		unit++;
	if (*unit && !streq(unit, "/s") && !streq(unit, "per second"))
		return -EINVAL;
	snprintf(number, sizeof(number), "%.*s", (int)n, value);
	return parse_uint(number, 0, 1000000, ret);
}

/* The parse callbacks of the table. Each gets the field at the row's offset. */

static int config_parse_string(ConfigParser *p, const ConfigItem *item, void *field,
                               const char *value)
{
	return config_set_string(field, value);
}

static int config_parse_path(ConfigParser *p, const ConfigItem *item, void *field,
                             const char *value)
{
	if (value[0] != '/')
		return -EINVAL;
	return config_parse_string(p, item, field, value);
}

/* A command line: an absolute program path and its arguments, split at blanks when it runs
 * (no shell, no quoting), so that nothing in it is ever interpreted. */
static int config_parse_command(ConfigParser *p, const ConfigItem *item, void *field,
                                const char *value)
{
	if (value[0] != '/')
		return -EINVAL;
	return config_parse_string(p, item, field, value);
}

static int config_parse_name(ConfigParser *p, const ConfigItem *item, void *field,
                             const char *value)
{
	if (!validate_name(value))
		return -EINVAL;
	return config_parse_string(p, item, field, value);
}

static int config_parse_phone(ConfigParser *p, const ConfigItem *item, void *field,
                              const char *value)
{
	if (!validate_phone_number(value))
		return -EINVAL;
	return config_parse_string(p, item, field, value);
}

/* min to max digits: a PIN, an IMEI. */
static int config_parse_digits(ConfigParser *p, const ConfigItem *item, void *field,
                               const char *value)
{
	size_t n = strlen(value);

	if (n < item->min || n > item->max || strspn(value, "0123456789") != n)
		return -EINVAL;
	return config_parse_string(p, item, field, value);
}

static int config_parse_boolean(ConfigParser *p, const ConfigItem *item, void *field,
                                const char *value)
{
	return parse_bool(value, field) < 0 ? -EINVAL : 0;
}

static int config_parse_uint(ConfigParser *p, const ConfigItem *item, void *field,
                             const char *value)
{
	return parse_uint(value, (unsigned)item->min, (unsigned)item->max, field) < 0 ? -EINVAL : 0;
}

/* A duration (see parse_duration) within [min, max] seconds, into an unsigned. */
static int config_parse_seconds(ConfigParser *p, const ConfigItem *item, void *field,
                                const char *value)
{
	return parse_seconds(value, (unsigned)item->min, (unsigned)item->max, field) < 0 ? -EINVAL
	                                                                                 : 0;
}

/* The same into a uint64_t. */
static int config_parse_duration(ConfigParser *p, const ConfigItem *item, void *field,
                                 const char *value)
{
	uint64_t d;

	if (parse_duration(value, &d) < 0 || d < item->min || d > item->max)
		return -EINVAL;
	*(uint64_t *)field = d;
	return 0;
}

/* 0 turns it off; otherwise a duration within [min, max]. */
static int config_parse_seconds_or_off(ConfigParser *p, const ConfigItem *item, void *field,
                                       const char *value)
{
	uint64_t d;

	if (parse_duration(value, &d) < 0 || (d != 0 && (d < item->min || d > item->max)))
		return -EINVAL;
	*(unsigned *)field = (unsigned)d;
	return 0;
}

static int config_parse_rate(ConfigParser *p, const ConfigItem *item, void *field,
                             const char *value)
{
	return parse_rate(value, field) < 0 ? -EINVAL : 0;
}

/* "normal" or "critical": whether the field (a bool) is critical. */
static int config_parse_priority(ConfigParser *p, const ConfigItem *item, void *field,
                                 const char *value)
{
	if (!streq(value, "normal") && !streq(value, "critical"))
		return -EINVAL;
	*(bool *)field = streq(value, "critical");
	return 0;
}

/* "5/15m" (a count, then a duration from min to max), or "off" / "0". */
static int config_parse_limit(ConfigParser *p, const ConfigItem *item, void *field,
                              const char *value)
{
	RateLimit *l = field;
	char count[16];
	size_t n = strspn(value, "0123456789");
	unsigned c, w;

	if (streq(value, "off") || streq(value, "0")) {
		*l = (RateLimit){0};
		return 0;
	}
	if (n == 0 || n >= sizeof(count) || value[n] != '/')
		return -EINVAL;
	snprintf(count, sizeof(count), "%.*s", (int)n, value);
	if (parse_uint(count, 1, 1000, &c) < 0 ||
	    parse_seconds(value + n + 1, (unsigned)item->min, (unsigned)item->max, &w) < 0)
		return -EINVAL;
	*l = (RateLimit){.count = c, .window = w};
	return 0;
}

/* [drill] at: "mon 10:00" (weekly), "10:00" (daily), seconds allowed ("10:00:30"). */
static int config_parse_drill_at(ConfigParser *p, const ConfigItem *item, void *field,
                                 const char *value)
{
	Config *c = field;

	return parse_day_time(value, true, &c->drill_wday, &c->drill_seconds);
}

static int config_parse_min_signal(ConfigParser *p, const ConfigItem *item, void *field,
                                   const char *value)
{
	unsigned v;

	if (streq(value, "none")) {
		*(int *)field = -1;
		return 0;
	}
	if (parse_uint(value, (unsigned)item->min, (unsigned)item->max, &v) < 0)
		return -EINVAL;
	*(int *)field = (int)v;
	return 0;
}

/* "a, b, c" into a vector at offset and its count at offset_n; at least min names. */
static int config_parse_list(ConfigParser *p, const ConfigItem *item, void *field,
                             const char *value)
{
	char ***v = field;
	size_t *n = (size_t *)((char *)field - item->offset + item->offset_n);

	config_free_list(*v, *n);
	*v = NULL;
	*n = 0;
	if (parse_list(value, v, n) < 0)
		return -ENOMEM;
	return *n < item->min ? -EINVAL : 0;
}

static int config_parse_rotation(ConfigParser *p, const ConfigItem *item, void *field,
                                 const char *value)
{
	Rotation *rotation = field;

	if (streq(value, "none"))
		*rotation = ROTATION_NONE;
	else if (streq(value, "daily"))
		*rotation = ROTATION_DAILY;
	else if (streq(value, "weekly"))
		*rotation = ROTATION_WEEKLY;
	else
		return -EINVAL;
	return 0;
}

/* The row's offset is 0: the whole RoleConfig, for its two fields. */
static int config_parse_handoff(ConfigParser *p, const ConfigItem *item, void *field,
                                const char *value)
{
	RoleConfig *role = field;

	return parse_handoff(value, &role->handoff_wday, &role->handoff_minutes);
}

static int config_parse_ops(ConfigParser *p, const ConfigItem *item, void *field, const char *value)
{
	_cleanup_free_ char **ops = NULL;
	size_t n = 0;
	unsigned mask = 0;
	int op, r = 0;

	if (parse_list(value, &ops, &n) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < n && r == 0; i++) {
		op = request_op_from_string(ops[i]);
		if (op < 0) {
			config_parser_fail(p, p->line, "bad value '%s' for %s: unknown op '%s'",
			                   value, item->key, ops[i]);
			r = -EINVAL;
		}
		mask |= op < 0 ? 0 : 1u << op;
	}
	for (size_t i = 0; i < n; i++)
		free(ops[i]);
	if (r < 0)
		return r;
	if (mask == 0)
		return -EINVAL;
	*(unsigned *)field = mask;
	return 0;
}

#define ITEM(sect, k, fn, type, field)                                                             \
	.section = sect, .key = k, .parse = config_parse_##fn, .offset = offsetof(type, field)
#define MAIN(sect, k, fn, field) ITEM(sect, k, fn, Config, field)
#define MODEM(k, fn, field)      ITEM("modem", k, fn, ModemConfig, field)
#define RANGE(lo, hi)            .min = (lo), .max = (hi)
#define DURATION_WHAT(lo, hi)    "a duration from " lo " to " hi
#define E164_WHAT                "an E.164 number is '+' and 6 to 15 digits"
#define NAME_WHAT                "up to 32 letters, digits, '-', '_', '.'"
#define LISTENER(sect, prefix, clients)                                                            \
	{MAIN(sect, "max_clients", uint, prefix##_max_clients), RANGE(1, 100000), .def = clients,  \
	 .what = "1 to 100000 connections", .doc = "connections the socket holds at once"},        \
	{                                                                                          \
		MAIN(sect, "allow_insecure_remote", boolean, prefix##_insecure_remote),            \
		        .def = "false", .what = "true or false",                                   \
		        .doc = "listen beyond loopback without CURVE, at the operator's risk"      \
	}
#define CURVE(sect, prefix)                                                                        \
	{MAIN(sect, "curve_secret_key_file", path, prefix##_curve.secret_key_file),                \
	 .what = "an absolute path",                                                               \
	 .doc = "the server's CURVE certificate, as gatewayctl keygen writes it"},                 \
	{                                                                                          \
		MAIN(sect, "curve_clients_dir", path, prefix##_curve.clients_dir),                 \
		        .what = "an absolute path",                                                \
		        .doc = "the public certificates of the clients let in"                     \
	}

static const ConfigItem config_table[] = {
        {MAIN("node", "name", name, node_name), .what = NAME_WHAT,
         .doc = "the node's name; the default is the host name up to its first dot"},
        {MAIN("node", "state_dir", path, state_dir), .def = "/var/lib/gatewayd",
         .what = "an absolute path", .doc = "the directory of the store"},

        {MAIN("submit", "bind", string, submit_bind), .def = "tcp://127.0.0.1:5570",
         .doc = "the endpoint of the request socket"},
        LISTENER("submit", submit, "256"),
        {MAIN("submit", "read_rate", rate, submit_read_rate), .def = "20/s",
         .what = "reads per second, e.g. '20/s', 0 for no limit",
         .doc = "reads per second per submitter"},
        {MAIN("submit", "read_burst", uint, submit_read_burst), RANGE(1, 1000000),
         .what = "1 to 1000000 reads",
         .doc = "reads a submitter may make at once; the default is twice the read rate"},
        {MAIN("submit", "max_parts", uint, max_parts), RANGE(1, 255), .def = "10",
         .what = "1 to 255 SMS parts", .doc = "the longest text accepted, in SMS parts"},
        {MAIN("submit", "max_queue", uint, max_queue), RANGE(1, 10000000), .def = "1000000",
         .what = "1 to 10000000 alerts", .doc = "alerts waiting before queue_full"},
        {MAIN("submit", "rate", rate, submit_rate), .def = "0",
         .what = "sends per second, e.g. '20/s', 0 for no limit",
         .doc = "sends per second per submitter"},
        {MAIN("submit", "burst", uint, submit_burst), RANGE(1, 1000000),
         .what = "1 to 1000000 sends",
         .doc = "sends a submitter may make at once; the default is the rate"},
        {MAIN("submit", "ops", ops, submit_ops), .what = "name at least one op",
         .doc = "the ops this socket serves; the default is all of them"},
        CURVE("submit", submit),

        {MAIN("events", "bind", string, events_bind), .def = "tcp://127.0.0.1:5571",
         .doc = "the endpoint of the event socket"},
        LISTENER("events", events, "128"),
        CURVE("events", events),

        {MAIN("control", "bind", string, control_bind),
         .doc = "the endpoint of the control socket; none by default"},
        LISTENER("control", control, "32"),

        {MAIN("cluster", "enabled", boolean, cluster_enabled), .def = "false",
         .what = "true or false", .doc = "whether this node is part of a cluster"},
        {MAIN("cluster", "group", name, cluster_group), .def = "gatewayd", .what = NAME_WHAT,
         .doc = "the corosync CPG group of the cluster"},
        {MAIN("cluster", "peer_grace", seconds, peer_grace), RANGE(0, 3600), .def = "10s",
         .what = DURATION_WHAT("0s", "1h"),
         .doc = "how long a lone node leaves the other node's deliveries to it"},
        {MAIN("cluster", "rejoin_margin", seconds, rejoin_margin), RANGE(5, 3600), .def = "60s",
         .what = DURATION_WHAT("5s", "1h"),
         .doc = "how long a node must have been in step before a rejoin sends it only what "
                "changed since"},
        {MAIN("cluster", "exchange_timeout", seconds, exchange_timeout), RANGE(2, 3600),
         .def = "15s", .what = DURATION_WHAT("2s", "1h"),
         .doc = "how long a state exchange goes on without progress before it ends"},
        {MAIN("cluster", "check_interval", seconds, check_interval), RANGE(0, 86400), .def = "60s",
         .what = DURATION_WHAT("0s (off)", "1d"),
         .doc = "how often the nodes compare a digest of their stores"},

        {MODEM("device", string, device), .doc = "the modem's serial device; required"},
        {MODEM("connection", string, connection), .def = "at",
         .doc = "the libgammu connection type"},
        {MODEM("pin", digits, pin), RANGE(4, 8), .what = "a PIN is 4 to 8 digits",
         .doc = "the SIM PIN"},
        {MODEM("send_timeout", seconds, send_timeout), RANGE(5, 3600), .def = "60",
         .what = DURATION_WHAT("5s", "1h"), .doc = "the longest one SMS may take"},
        {MODEM("command_timeout", seconds, command_timeout), RANGE(1, 600), .def = "10",
         .what = DURATION_WHAT("1s", "10m"), .doc = "the longest any other command may take"},
        {MODEM("health_interval", seconds, health_interval), RANGE(1, 3600), .def = "30",
         .what = DURATION_WHAT("1s", "1h"),
         .doc = "how often the SIM, signal and registration are read"},
        {MODEM("inbox_interval", seconds, inbox_interval), RANGE(1, 3600), .def = "15",
         .what = DURATION_WHAT("1s", "1h"), .doc = "how often the SIM is read for received SMS"},
        {MODEM("imei", digits, imei), RANGE(14, 17), .what = "an IMEI is 14 to 17 digits",
         .doc = "find this modem by its IMEI among the serial ports"},
        {MODEM("min_signal", min_signal, min_signal), RANGE(0, 31), .def = "5",
         .what = "a CSQ value from 0 to 31, or none",
         .doc = "the signal below which the modem is degraded"},
        {MODEM("max_consecutive_failures", uint, max_consecutive_failures), RANGE(1, 100),
         .def = "3", .what = "1 to 100",
         .doc = "send errors in a row before the modem is re-initialised"},
        {MODEM("delivery_reports", boolean, delivery_reports), .def = "no", .what = "yes or no",
         .doc = "ask the network for a status report on every SMS"},
        {MODEM("number", phone, number), .what = E164_WHAT,
         .doc = "this SIM's number, the target of the other node's self-test"},

        {MAIN("selftest", "interval", seconds_or_off, selftest_interval), RANGE(10, 30 * 86400),
         .def = "24h", .what = "0 (off) or a duration from 10s to 30d",
         .doc = "how often the path self-test runs"},
        {MAIN("selftest", "timeout", seconds, selftest_timeout), RANGE(5, 86400), .def = "10m",
         .what = DURATION_WHAT("5s", "1d"), .doc = "how long a test SMS may take to arrive"},

        {MAIN("voice", "modem", string, voice_modem),
         .doc = "the [modem] that dials when every SMS path failed"},
        {MAIN("voice", "device", string, voice_device),
         .doc = "a serial device of its own for dialling"},
        {MAIN("voice", "contact_center", phone, voice_contact_center), .what = E164_WHAT,
         .doc = "the number called after the recipient"},
        {MAIN("voice", "ring_timeout", seconds, voice_ring_timeout), RANGE(2, 300), .def = "45",
         .what = DURATION_WHAT("2s", "5m"), .doc = "how long a call rings"},
        {MAIN("voice", "hold", seconds, voice_hold), RANGE(1, 300), .def = "10",
         .what = DURATION_WHAT("1s", "5m"), .doc = "how long an answered call stays up"},
        {MAIN("voice", "connect_grace", seconds, voice_connect_grace), RANGE(0, 600), .def = "30",
         .what = DURATION_WHAT("0s", "10m"),
         .doc = "a modem (re)connecting this long is not a failed SMS path"},
        {MAIN("voice", "retries", uint, voice_retries), RANGE(0, 20), .def = "3", .what = "0 to 20",
         .doc = "calls again on busy or no answer"},
        {MAIN("voice", "retry_delay", seconds, voice_retry_delay), RANGE(1, 3600), .def = "30",
         .what = DURATION_WHAT("1s", "1h"), .doc = "before the first retry; doubles each time"},
        {MAIN("voice", "recall", seconds, voice_recall), RANGE(0, 86400), .def = "5m",
         .what = DURATION_WHAT("0s (off)", "1d"),
         .doc = "after the retries, calls again this often until a human is reached"},

        {MAIN("dedupe", "window", duration, dedupe_window), RANGE(0, 7 * 86400), .def = "600",
         .what = "a duration up to 7d (e.g. 600, 10m)",
         .doc = "how long a dedupe key makes a new alert a duplicate"},

        {MAIN("store", "retention", duration, retention), RANGE(3600, UINT64_MAX), .def = "30d",
         .what = "a duration of at least 1h (e.g. 30d)", .doc = "how long final alerts are kept"},

        {MAIN("delivery", "retry_min", seconds, retry_min), RANGE(1, 86400), .def = "5",
         .what = DURATION_WHAT("1s", "1d"), .doc = "before the first retry of a delivery"},
        {MAIN("delivery", "retry_max", seconds, retry_max), RANGE(1, 86400), .def = "300",
         .what = DURATION_WHAT("1s", "1d"), .doc = "the cap of the exponential backoff"},
        {MAIN("delivery", "max_permanent_failures", uint, max_permanent_failures), RANGE(1, 100),
         .def = "3", .what = "1 to 100", .doc = "permanent refusals before a delivery is failed"},

        {ITEM("contact", "number", phone, ContactConfig, number), .what = E164_WHAT,
         .doc = "the contact's phone number; required"},

        {ITEM("role", "contacts", list, RoleConfig, contacts),
         .offset_n = offsetof(RoleConfig, n_contacts), RANGE(1, 0),
         .what = "a list of [contact] names", .doc = "the contacts who take turns, in order"},
        {ITEM("role", "rotation", rotation, RoleConfig, rotation), .def = "none",
         .what = "none, daily or weekly", .doc = "how the duty passes on"},
        {.section = "role",
         .key = "handoff",
         .parse = config_parse_handoff,
         .offset = 0,
         .def = "mon 09:00",
         .what = "'HH:MM' or 'mon HH:MM'",
         .doc = "the hand-over, in local time"},

        {MAIN("escalation", "steps", list, escalation_steps),
         .offset_n = offsetof(Config, n_escalation_steps),
         .doc = "the [role] sections to go through, in order"},
        {MAIN("escalation", "step_timeout", seconds, escalation_step_timeout), RANGE(5, 86400),
         .def = "300", .what = DURATION_WHAT("5s", "1d"),
         .doc = "how long each step waits for an acknowledgment"},
        {MAIN("escalation", "repeat", uint, escalation_repeat), RANGE(0, 100), .def = "2",
         .what = "0 to 100", .doc = "rounds of the whole chain after the first"},
        {MAIN("escalation", "notify_resolved", boolean, escalation_notify_resolved), .def = "yes",
         .what = "yes or no", .doc = "an all-clear to those an alert reached, when it is resolved"},

        {MAIN("bundle", "threshold", uint, bundle_threshold), RANGE(0, 1000), .def = "5",
         .what = "0 (off) to 1000", .doc = "alerts for one number before holding"},
        {MAIN("bundle", "window", seconds, bundle_window), RANGE(1, 3600), .def = "60",
         .what = DURATION_WHAT("1s", "1h"), .doc = "the window of the threshold"},

        {ITEM("heartbeat", "interval", seconds, HeartbeatConfig, interval), RANGE(10, 2592000),
         .def = "3600", .what = DURATION_WHAT("10s", "30d"),
         .doc = "how often the monitored system pings"},
        {ITEM("heartbeat", "grace", seconds, HeartbeatConfig, grace), RANGE(0, 86400), .def = "300",
         .what = DURATION_WHAT("0s", "1d"), .doc = "how long past a missed ping before the alert"},
        {ITEM("heartbeat", "to", list, HeartbeatConfig, to),
         .offset_n = offsetof(HeartbeatConfig, n_to), RANGE(1, 0),
         .what = "E.164 numbers and role:NAME, separated by commas",
         .doc = "whom the alert pages; required"},
        {ITEM("heartbeat", "priority", priority, HeartbeatConfig, critical), .def = "normal",
         .what = "normal or critical", .doc = "the alert's priority"},
        {ITEM("heartbeat", "text", string, HeartbeatConfig, text),
         .doc = "the alert's text; by default it names the monitor and its last ping"},

        {MAIN("health", "to", list, health_to), .offset_n = offsetof(Config, n_health_to),
         RANGE(1, 0), .what = "E.164 numbers and role:NAME, separated by commas",
         .doc = "whom the gateway pages about itself; none by default (off)"},
        {MAIN("health", "priority", priority, health_critical), .def = "critical",
         .what = "normal or critical", .doc = "the priority of those alerts"},
        {MAIN("health", "peer_offline", seconds, health_peer_offline), RANGE(1, 86400), .def = "60",
         .what = DURATION_WHAT("1s", "1d"),
         .doc = "how long another node is offline before paging"},
        {MAIN("health", "modem_down", seconds, health_modem_down), RANGE(1, 86400), .def = "120",
         .what = DURATION_WHAT("1s", "1d"),
         .doc = "how long a modem is failed or absent before paging"},
        {MAIN("health", "no_path", seconds, health_no_path), RANGE(1, 86400), .def = "60",
         .what = DURATION_WHAT("1s", "1d"),
         .doc = "how long this node has no usable modem before paging"},
        {MAIN("health", "queue_age", seconds, health_queue_age), RANGE(1, 86400), .def = "300",
         .what = DURATION_WHAT("1s", "1d"),
         .doc = "how long a delivery waits to leave before paging"},
        {MAIN("health", "store_fail", seconds, health_store_fail), RANGE(1, 86400), .def = "30",
         .what = DURATION_WHAT("1s", "1d"),
         .doc = "how long another node's store cannot commit before paging"},
        {MAIN("health", "clock_skew", seconds, health_clock_skew), RANGE(1, 3600), .def = "2",
         .what = DURATION_WHAT("1s", "1h"), .doc = "how far the nodes' clocks may differ"},
        {MAIN("health", "clear", seconds, health_clear), RANGE(1, 86400), .def = "60",
         .what = DURATION_WHAT("1s", "1d"),
         .doc = "how long a condition is gone before its alert resolves"},
        {MAIN("health", "report_wait", seconds, health_report_wait), RANGE(1, 86400), .def = "600",
         .what = DURATION_WHAT("1s", "1d"),
         .doc = "how long a sent SMS may wait for its delivery report"},

        {.section = "drill",
         .key = "at",
         .parse = config_parse_drill_at,
         .offset = 0,
         .what = "'mon 10:00' (weekly) or '10:00' (daily), local time",
         .doc = "when the test page goes out; none by default (no drill)"},
        {MAIN("drill", "to", list, drill_to), .offset_n = offsetof(Config, n_drill_to), RANGE(1, 0),
         .what = "E.164 numbers and role:NAME, separated by commas",
         .doc = "whom the test page goes to; required with at"},
        {MAIN("drill", "ack_within", seconds, drill_ack_within), RANGE(1, 86400), .def = "1800",
         .what = DURATION_WHAT("1s", "1d"),
         .doc = "how long the test page may wait for its acknowledgment"},

        {MAIN("limits", "sms", limit, limit_sms), RANGE(10, 86400), .def = "5/15m",
         .what = "a count from 1 to 1000, '/', a duration from 10s to 1d; or off",
         .doc = "SMS per phone number per window; more are grouped, never dropped"},
        {MAIN("limits", "calls", limit, limit_calls), RANGE(10, 86400), .def = "3/15m",
         .what = "a count from 1 to 1000, '/', a duration from 10s to 1d; or off",
         .doc = "voice calls per phone number per window; one call covers all pending"},

        {MAIN("metrics", "textfile", path, metrics_textfile), .what = "an absolute path",
         .doc = "the Prometheus text file rewritten every interval"},
        {MAIN("metrics", "interval", seconds, metrics_interval), RANGE(1, 3600), .def = "5",
         .what = DURATION_WHAT("1s", "1h"), .doc = "how often the file is rewritten"},

        {MAIN("hooks", "on_ack", command, hooks_on_ack),
         .what = "an absolute path, then arguments separated by blanks",
         .doc = "the command this node runs when an alert is acknowledged here"},
        {MAIN("hooks", "timeout", seconds, hooks_timeout), RANGE(1, 3600), .def = "10",
         .what = DURATION_WHAT("1s", "1h"), .doc = "how long a hook may run before it is killed"},
};

_Static_assert(ELEMENTSOF(config_table) <= CONFIG_ITEMS_MAX, "raise CONFIG_ITEMS_MAX");

const ConfigItem *config_items(size_t *ret_n)
{
	*ret_n = ELEMENTSOF(config_table);
	return config_table;
}
