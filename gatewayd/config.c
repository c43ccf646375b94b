/* config: gatewayd.conf through inih, with line numbers.
 *
 * inih does the lexing (sections, "key = value", comments, BOM). It does not tell its handler on
 * which line a key stands, and it never calls the handler for a section that has no keys; so we
 * feed it through our own line reader, which counts lines and notices section headers itself.
 * That gives every error its "file:line: reason" and lets an empty "[modem x]" be caught too.
 * Cross-checks that need the whole file (a voice modem that names no [modem], a role naming an
 * unknown contact) run after parsing and point at the line of the offending key. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "log.h"
#include "macro.h"
#include "request.h"
#include "util.h"
#include "validate.h"

/* Rows of the table, with room to grow (a static assertion below keeps it true). */
#define CONFIG_ITEMS_MAX 96

typedef struct ConfigParser {
	Config *config;
	FILE *file;
	const char *path;
	unsigned line;
	char *error; /* first error, "file:line: reason" */
	/* The section being read, its kind ("modem" for [modem x]) and, for a section with a name,
	 * the object it fills. */
	char section[128];
	char kind[128];
	void *object;
	/* Where each row of the table was first and last given, for the checks after parsing. */
	unsigned first_line[CONFIG_ITEMS_MAX];
	unsigned last_line[CONFIG_ITEMS_MAX];
} Parser;

static int parser_fail(Parser *p, unsigned line, const char *format, ...) _printf_(3, 4);
static int parser_fail(Parser *p, unsigned line, const char *format, ...)
{
	char reason[512];
	va_list ap;

	if (p->error)
		return 0;
	va_start(ap, format);
	vsnprintf(reason, sizeof(reason), format, ap);
	va_end(ap);
	if (asprintf(&p->error, "%s:%u: %s", p->path, line, reason) < 0)
		p->error = NULL;
	return 0; /* inih: stop treating this line as good */
}

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

static int set_string(char **field, const char *value)
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

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static const char *weekdays[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

/* "mon 09:00" (weekly) or "09:00" (daily). */
static int parse_handoff(const char *s, int *ret_wday, int *ret_minutes)
{
	int wday = -1, h, m;
	char extra;

	for (size_t i = 0; i < ELEMENTSOF(weekdays); i++)
		if (strncasecmp(s, weekdays[i], 3) == 0 && s[3] == ' ') {
			wday = (int)i;
			s += 4;
			break;
		}
	if (sscanf(s, "%d:%d%c", &h, &m, &extra) != 2 || h < 0 || h > 23 || m < 0 || m > 59)
		return -EINVAL;
	*ret_wday = wday;
	*ret_minutes = h * 60 + m;
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
	return set_string(field, value);
}

static int config_parse_path(ConfigParser *p, const ConfigItem *item, void *field,
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

	free_list(*v, *n);
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
			parser_fail(p, p->line, "bad value '%s' for %s: unknown op '%s'", value,
			            item->key, ops[i]);
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
        {MAIN("voice", "retries", uint, voice_retries), RANGE(0, 20), .def = "3", .what = "0 to 20",
         .doc = "calls again on busy or no answer"},
        {MAIN("voice", "retry_delay", seconds, voice_retry_delay), RANGE(1, 3600), .def = "30",
         .what = DURATION_WHAT("1s", "1h"), .doc = "before the first retry; doubles each time"},

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

        {MAIN("bundle", "threshold", uint, bundle_threshold), RANGE(0, 1000), .def = "5",
         .what = "0 (off) to 1000", .doc = "alerts for one number before holding"},
        {MAIN("bundle", "window", seconds, bundle_window), RANGE(1, 3600), .def = "60",
         .what = DURATION_WHAT("1s", "1h"), .doc = "the window of the threshold"},

        {MAIN("metrics", "textfile", path, metrics_textfile), .what = "an absolute path",
         .doc = "the Prometheus text file rewritten every interval"},
        {MAIN("metrics", "interval", seconds, metrics_interval), RANGE(1, 3600), .def = "5",
         .what = DURATION_WHAT("1s", "1h"), .doc = "how often the file is rewritten"},
};

_Static_assert(ELEMENTSOF(config_table) <= CONFIG_ITEMS_MAX, "raise CONFIG_ITEMS_MAX");

const ConfigItem *config_items(size_t *ret_n)
{
	*ret_n = ELEMENTSOF(config_table);
	return config_table;
}

/* Where a key of a section without a name was last (or first) given; 0: not in the file. */
static unsigned parser_key_line(const Parser *p, const char *section, const char *key, bool first)
{
	for (size_t i = 0; i < ELEMENTSOF(config_table); i++)
		if (streq(config_table[i].section, section) && streq(config_table[i].key, key))
			return first ? p->first_line[i] : p->last_line[i];
	return 0;
}

/* The table's defaults of one section into its object. A default that does not parse is a bug
 * of the table, which the unit test would catch first. */
static int apply_defaults(Parser *p, const char *section, void *object)
{
	for (size_t i = 0; i < ELEMENTSOF(config_table); i++) {
		const ConfigItem *item = &config_table[i];
		int r;

		if (!item->def || !streq(item->section, section))
			continue;
		r = item->parse(p, item, (char *)object + item->offset, item->def);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			return parser_fail(p, 0, "internal: bad default '%s' for %s in [%s]",
			                   item->def, item->key, section);
	}
	return 0;
}

static bool section_is_known(const char *section)
{
	for (size_t i = 0; i < ELEMENTSOF(config_table); i++)
		if (streq(config_table[i].section, section))
			return true;
	return false;
}

bool config_endpoint_is_remote(const char *endpoint)
{
	static const char *const local[] = {"localhost", "lo", "[::1]", "::1"};
	char host[256];
	const char *h, *colon;
	size_t n;

	if (strncmp(endpoint, "ipc://", 6) == 0 || strncmp(endpoint, "inproc://", 9) == 0)
		return false;
	if (strncmp(endpoint, "tcp://", 6) != 0)
		return true; /* ws, tipc, vmci, pgm...: assume the network */
	h = endpoint + 6;
	colon = strrchr(h, ':');
	n = colon ? (size_t)(colon - h) : strlen(h);
	if (n == 0 || n >= sizeof(host))
		return true;
	memcpy(host, h, n);
	host[n] = 0;
	for (size_t i = 0; i < ELEMENTSOF(local); i++)
		if (streq(host, local[i]))
			return false;
	/* 127.0.0.0/8, written as a dotted quad */
	if (strncmp(host, "127.", 4) == 0 && strspn(host, "0123456789.") == n)
		return false;
	return true;
}

/* Sections whose name carries an object: [modem NAME], [contact NAME], [role NAME]. Each new
 * object starts from the table's defaults of its kind. */
static int begin_section(Parser *p, const char *section)
{
	const char *space = strchr(section, ' ');
	const char *name;
	Config *c = p->config;

	p->object = NULL;
	snprintf(p->section, sizeof(p->section), "%s", section);
	snprintf(p->kind, sizeof(p->kind), "%s", section);

	if (!space) {
		if (!streq(section, "modem") && !streq(section, "contact") &&
		    !streq(section, "role") && section_is_known(section))
			return 1;
		return parser_fail(p, p->line, "unknown section [%s]", section);
	}

	snprintf(p->kind, sizeof(p->kind), "%.*s", (int)(space - section), section);
	name = space + 1;
	if (!validate_name(name))
		return parser_fail(
		        p, p->line,
		        "bad name '%s' in [%s]: use up to %d letters, digits, '-', '_', '.'", name,
		        section, CONFIG_NAME_MAX);

	if (streq(p->kind, "modem")) {
		ModemConfig *v;

		if (config_find_modem(c, name))
			return parser_fail(p, p->line, "[modem %s] appears twice", name);
		v = realloc(c->modems, (c->n_modems + 1) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		c->modems = v;
		v = &v[c->n_modems++];
		*v = (ModemConfig){.name = strdup(name), .line = p->line};
		p->object = v;
		return v->name ? apply_defaults(p, "modem", v) : -ENOMEM;
	}
	if (streq(p->kind, "contact")) {
		ContactConfig *v;

		if (config_find_contact(c, name))
			return parser_fail(p, p->line, "[contact %s] appears twice", name);
		v = realloc(c->contacts, (c->n_contacts + 1) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		c->contacts = v;
		v = &v[c->n_contacts++];
		*v = (ContactConfig){.name = strdup(name), .line = p->line};
		p->object = v;
		return v->name ? apply_defaults(p, "contact", v) : -ENOMEM;
	}
	if (streq(p->kind, "role")) {
		RoleConfig *v;

		if (config_find_role(c, name))
			return parser_fail(p, p->line, "[role %s] appears twice", name);
		v = realloc(c->roles, (c->n_roles + 1) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		c->roles = v;
		v = &v[c->n_roles++];
		*v = (RoleConfig){.name = strdup(name), .line = p->line};
		p->object = v;
		return v->name ? apply_defaults(p, "role", v) : -ENOMEM;
	}
	return parser_fail(p, p->line, "unknown section [%s]", section);
}

/* One key: its row of the table, in the section's kind ([modem x] is "modem"). */
static int handle_key(Parser *p, const char *section, const char *key, const char *value)
{
	void *object = p->object ? p->object : (void *)p->config;

	if (!streq(section, p->section))
		return parser_fail(p, p->line, "internal: section mismatch");

	for (size_t i = 0; i < ELEMENTSOF(config_table); i++) {
		const ConfigItem *item = &config_table[i];
		int r;

		if (!streq(item->section, p->kind) || !streq(item->key, key))
			continue;
		if (!p->first_line[i])
			p->first_line[i] = p->line;
		p->last_line[i] = p->line;
		r = item->parse(p, item, (char *)object + item->offset, value);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			return parser_fail(p, p->line, "bad value '%s' for %s: %s", value, key,
			                   item->what ? item->what : "not valid here");
		return 1;
	}
	return parser_fail(p, p->line, "unknown key '%s' in [%s]", key, section);
}

static int config_ini_handler(void *user, const char *section, const char *key, const char *value)
{
	Parser *p = user;
	int r;

	if (p->error)
		return 1;
	r = handle_key(p, section, key, value);
	if (r < 0) {
		parser_fail(p, p->line, "out of memory");
		return 0;
	}
	return p->error ? 0 : 1;
}

/* fgets() for inih that also counts lines and sees section headers before inih does. */
static char *config_ini_reader(char *str, int num, void *stream)
{
	Parser *p = stream;
	char *s, *start, *end;

	s = fgets(str, num, p->file);
	if (!s)
		return NULL;
	p->line++;
	if (!strchr(s, '\n') && !feof(p->file)) {
		parser_fail(p, p->line, "line longer than %d characters", num - 2);
		return s;
	}
	start = s;
	if (p->line == 1 && strncmp(start, "\xEF\xBB\xBF", 3) == 0)
		start += 3; /* a UTF-8 byte order mark, which inih skips too */
	if ((*start == ' ' || *start == '\t') && !p->error) {
		/* inih would glue an indented line onto the previous value ("multi-line"), so that
		 * an indented "pin = 1234" would silently become part of the device path. */
		const char *t = start;
		while (*t == ' ' || *t == '\t')
			t++;
		if (*t && *t != '\n' && *t != '\r' && *t != '#' && *t != ';') {
			parser_fail(p, p->line,
			            "indented line: start keys and sections at the "
			            "beginning of the line");
			return s;
		}
	}
	while (isspace((unsigned char)*start))
		start++;
	if (*start == '[' && !p->error) {
		char name[128];

		end = strchr(start, ']');
		if (!end || (size_t)(end - start - 1) >= sizeof(name)) {
			parser_fail(p, p->line, "bad section header");
			return s;
		}
		snprintf(name, sizeof(name), "%.*s", (int)(end - start - 1), start + 1);
		if (begin_section(p, name) < 0)
			parser_fail(p, p->line, "out of memory");
	} else if (*start && *start != '#' && *start != ';' && !p->section[0] && !p->error) {
		parser_fail(p, p->line, "key outside of any section");
	}
	return s;
}

/* Both keys or neither, and both usable now: a typo must stop start-up, not open the door. */
static int validate_curve(Parser *p, const char *section, const CurveConfig *curve)
{
	_cleanup_free_ char *reason = NULL;

	if (!curve->secret_key_file && !curve->clients_dir)
		return 0;
	if (!curve->secret_key_file || !curve->clients_dir)
		return parser_fail(p, curve->line,
		                   "[%s] needs both 'curve_secret_key_file =' and "
		                   "'curve_clients_dir ='",
		                   section);
	if (auth_check_secret_key_file(curve->secret_key_file, &reason) < 0)
		return parser_fail(p, curve->line, "[%s] curve_secret_key_file %s", section,
		                   reason ? reason : "cannot be read");
	free(reason);
	reason = NULL;
	if (auth_check_clients_dir(curve->clients_dir, &reason) < 0)
		return parser_fail(p, curve->line, "[%s] curve_clients_dir %s", section,
		                   reason ? reason : "cannot be read");
	return 0;
}

/* A socket that listens beyond loopback without CURVE lets anyone who reaches the port submit,
 * and, because libzmq holds every frame of a multipart message until its last (the frame limit
 * is per frame), make the daemon hold any amount of memory. Refused unless the operator says so
 * in so many words. */
static int validate_exposure(Parser *p, const char *section, const char *bind,
                             const CurveConfig *curve, bool insecure_remote)
{
	unsigned line = parser_key_line(p, section, "bind", false);

	if (!bind || !config_endpoint_is_remote(bind) || insecure_remote)
		return 0;
	if (curve && curve->secret_key_file)
		return 0;
	return parser_fail(p, line ? line : p->line,
	                   "[%s] bind = %s listens beyond loopback without CURVE: anyone who "
	                   "reaches it could send requests and flood the daemon's memory; %s"
	                   "bind to 127.0.0.1, or set 'allow_insecure_remote = true' in [%s] to "
	                   "take that risk",
	                   section, bind,
	                   curve ? "set curve_secret_key_file and curve_clients_dir (gatewayctl "
	                           "keygen), "
	                         : "use an ipc:// path, ",
	                   section);
}

/* The line of the first of the two CURVE keys of section, for the errors about the pair. */
static unsigned curve_line(const Parser *p, const char *section)
{
	unsigned a = parser_key_line(p, section, "curve_secret_key_file", true);
	unsigned b = parser_key_line(p, section, "curve_clients_dir", true);

	return a && b ? MIN(a, b) : MAX(a, b);
}

static int config_validate(Parser *p)
{
	Config *c = p->config;

	c->submit_curve.line = curve_line(p, "submit");
	c->events_curve.line = curve_line(p, "events");
	validate_curve(p, "submit", &c->submit_curve);
	validate_curve(p, "events", &c->events_curve);
	if (p->error)
		return 0;
	validate_exposure(p, "submit", c->submit_bind, &c->submit_curve, c->submit_insecure_remote);
	validate_exposure(p, "events", c->events_bind, &c->events_curve, c->events_insecure_remote);
	validate_exposure(p, "control", c->control_bind, NULL, c->control_insecure_remote);
	if (p->error)
		return 0;
	if (c->submit_burst == 0)
		c->submit_burst = MAX(c->submit_rate, 1u);
	if (c->submit_read_burst == 0)
		c->submit_read_burst = MAX(2 * c->submit_read_rate, 1u);

	for (size_t i = 0; i < c->n_modems; i++) {
		ModemConfig *m = &c->modems[i];

		if (!m->device)
			return parser_fail(p, m->line, "[modem %s] needs 'device ='", m->name);
	}
	for (size_t i = 0; i < c->n_contacts; i++)
		if (!c->contacts[i].number)
			return parser_fail(p, c->contacts[i].line, "[contact %s] needs 'number ='",
			                   c->contacts[i].name);
	for (size_t i = 0; i < c->n_roles; i++) {
		RoleConfig *role = &c->roles[i];

		if (role->n_contacts == 0)
			return parser_fail(p, role->line, "[role %s] needs 'contacts ='",
			                   role->name);
		for (size_t j = 0; j < role->n_contacts; j++)
			if (!config_find_contact(c, role->contacts[j]))
				return parser_fail(p, role->line,
				                   "[role %s] names unknown contact '%s'",
				                   role->name, role->contacts[j]);
		if (role->rotation == ROTATION_WEEKLY && role->handoff_wday < 0)
			return parser_fail(p, role->line,
			                   "[role %s] weekly rotation needs a day: 'handoff = mon "
			                   "09:00'",
			                   role->name);
	}
	for (size_t i = 0; i < c->n_escalation_steps; i++)
		if (!config_find_role(c, c->escalation_steps[i]))
			return parser_fail(p, parser_key_line(p, "escalation", "steps", false),
			                   "escalation step '%s' names no [role]",
			                   c->escalation_steps[i]);
	if (c->voice_modem && c->voice_device)
		return parser_fail(p, parser_key_line(p, "voice", "device", false),
		                   "[voice] takes either 'modem =' or 'device =', not both");
	if (c->voice_modem && !config_find_modem(c, c->voice_modem))
		return parser_fail(p, parser_key_line(p, "voice", "modem", false),
		                   "[voice] modem '%s' names no [modem]", c->voice_modem);
	if (c->retry_max < c->retry_min)
		return parser_fail(p,
		                   MAX(parser_key_line(p, "delivery", "retry_min", false),
		                       parser_key_line(p, "delivery", "retry_max", false)),
		                   "[delivery] retry_max is below retry_min");
	return 0;
}

/* The one default the table cannot hold: the host's name. */
static int config_defaults(Config *c)
{
	char host[256];

	if (gethostname(host, sizeof(host)) < 0 || !validate_name(host))
		snprintf(host, sizeof(host), "gateway");
	host[strcspn(host, ".")] = 0;
	if (!c->node_name && set_string(&c->node_name, host) < 0)
		return -ENOMEM;
	return 0;
}

int config_load(const char *path, Config **ret, char **ret_error)
{
	Parser p = {.path = path};
	Config *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->submit_ops = ~0u;
	p.config = c;
	for (size_t i = 0; i < ELEMENTSOF(config_table); i++) {
		const char *section = config_table[i].section;

		if (streq(section, "modem") || streq(section, "contact") || streq(section, "role"))
			continue;
		if (i > 0 && streq(section, config_table[i - 1].section))
			continue;
		r = apply_defaults(&p, section, c);
		if (r < 0 || p.error) {
			if (r >= 0 && ret_error) {
				*ret_error = p.error;
				p.error = NULL;
			}
			free(p.error);
			config_free(c);
			return r < 0 ? r : -EINVAL;
		}
	}

	c->path = strdup(path);
	if (!c->path) {
		config_free(c);
		return -ENOMEM;
	}

	p.file = fopen(path, "re");
	if (!p.file) {
		r = -errno;
		if (asprintf(ret_error, "%s: cannot open: %s", path, strerror(errno)) < 0)
			*ret_error = NULL;
		config_free(c);
		return r;
	}
	r = ini_parse_stream(config_ini_reader, &p, config_ini_handler, &p);
	fclose(p.file);
	if (r > 0 && !p.error)
		parser_fail(&p, (unsigned)r,
		            "syntax error (expected '[section]' or 'key = value')");
	if (!p.error) {
		r = config_defaults(c);
		if (r < 0)
			parser_fail(&p, p.line, "out of memory");
	}
	if (!p.error)
		config_validate(&p);
	if (p.error) {
		*ret_error = p.error;
		config_free(c);
		return -EINVAL;
	}
	*ret = c;
	return 0;
}

Config *config_free(Config *c)
{
	if (!c)
		return NULL;
	free(c->path);
	free(c->node_name);
	free(c->state_dir);
	free(c->submit_bind);
	free(c->events_bind);
	free(c->control_bind);
	free(c->submit_curve.secret_key_file);
	free(c->submit_curve.clients_dir);
	free(c->events_curve.secret_key_file);
	free(c->events_curve.clients_dir);
	free(c->cluster_group);
	for (size_t i = 0; i < c->n_modems; i++) {
		free(c->modems[i].name);
		free(c->modems[i].device);
		free(c->modems[i].connection);
		free(c->modems[i].pin);
		free(c->modems[i].imei);
		free(c->modems[i].number);
	}
	free(c->modems);
	free(c->voice_modem);
	free(c->voice_device);
	free(c->voice_contact_center);
	free(c->metrics_textfile);
	for (size_t i = 0; i < c->n_contacts; i++) {
		free(c->contacts[i].name);
		free(c->contacts[i].number);
	}
	free(c->contacts);
	for (size_t i = 0; i < c->n_roles; i++) {
		free(c->roles[i].name);
		free_list(c->roles[i].contacts, c->roles[i].n_contacts);
	}
	free(c->roles);
	free_list(c->escalation_steps, c->n_escalation_steps);
	free(c);
	return NULL;
}

const ContactConfig *config_find_contact(const Config *c, const char *name)
{
	for (size_t i = 0; i < c->n_contacts; i++)
		if (streq(c->contacts[i].name, name))
			return &c->contacts[i];
	return NULL;
}

const RoleConfig *config_find_role(const Config *c, const char *name)
{
	for (size_t i = 0; i < c->n_roles; i++)
		if (streq(c->roles[i].name, name))
			return &c->roles[i];
	return NULL;
}

const ModemConfig *config_find_modem(const Config *c, const char *name)
{
	for (size_t i = 0; i < c->n_modems; i++)
		if (streq(c->modems[i].name, name))
			return &c->modems[i];
	return NULL;
}

/* Rotation: hand-overs happen at the configured wall-clock time, so turns are counted in calendar
 * days of the local time zone, never in seconds. A day with a DST change lasts 23 or 25 hours;
 * counting fixed periods of 86400 s would move the hand-over by an hour for half of the year.
 * Turns start at the first hand-over on or after 2024-01-01 (local time), when the first contact
 * is on duty, so every node finds the same person for the same instant without keeping state.
 * Everything derives from the instant asked about through localtime_r(), so tests inject any
 * instant and any TZ. */

static int64_t floor_div(int64_t a, int64_t b)
{
	return a >= 0 ? a / b : -((-a + b - 1) / b);
}

/* The local day on which the first turn starts. */
static int64_t rotation_first_day(const RoleConfig *role)
{
	int64_t day = days_from_civil(2024, 1, 1);

	if (role->rotation == ROTATION_WEEKLY)
		day += (role->handoff_wday - 1 + 7) % 7; /* 2024-01-01 was a Monday */
	return day;
}

/* The turn by the wall clock alone: hand-overs since the first one (negative before it). A
 * local day counts as the day before while its wall clock reads earlier than the hand-over
 * time, so a hand-over falls on the first instant whose wall clock reads that time or later
 * (when the clock jumps over it: at the end of the gap). */
static int64_t rotation_turn_at(const RoleConfig *role, time_t t, struct tm *ret_tm)
{
	int64_t day;

	if (!localtime_r(&t, ret_tm))
		return 0;
	day = days_from_civil((int64_t)ret_tm->tm_year + 1900, (unsigned)ret_tm->tm_mon + 1,
	                      (unsigned)ret_tm->tm_mday);
	if (ret_tm->tm_hour * 60 + ret_tm->tm_min < role->handoff_minutes)
		day--;
	day -= rotation_first_day(role);
	return role->rotation == ROTATION_WEEKLY ? floor_div(day, 7) : day;
}

/* Which turn is on at t. When DST ends the wall clock goes back and repeats up to an hour or
 * two; a hand-over time inside the repeat was passed before the jump and must not be taken back,
 * so the turn is at least the one of the last second before the jump. */
static int64_t rotation_turn(const RoleConfig *role, time_t t)
{
	const time_t window = 3 * 3600; /* longer than any backward jump of a time zone */
	struct tm now, before;
	int64_t turn = rotation_turn_at(role, t, &now);
	time_t lo = t - window, hi = t;

	if (!localtime_r(&lo, &before) || before.tm_gmtoff <= now.tm_gmtoff)
		return turn;
	/* The jump is the first second of the current offset after lo. */
	while (hi - lo > 1) {
		time_t mid = lo + (hi - lo) / 2;

		if (!localtime_r(&mid, &before))
			return turn;
		if (before.tm_gmtoff == now.tm_gmtoff)
			hi = mid;
		else
			lo = mid;
	}
	return MAX(turn, rotation_turn_at(role, hi - 1, &before));
}

static bool rotation_turns(const RoleConfig *role)
{
	return role->rotation != ROTATION_NONE && role->n_contacts > 1;
}

const ContactConfig *config_role_on_duty(const Config *c, const RoleConfig *role, uint64_t usec)
{
	int64_t turn, n = (int64_t)role->n_contacts;

	if (!rotation_turns(role))
		return config_find_contact(c, role->contacts[0]);
	turn = rotation_turn(role, (time_t)(usec / USEC_PER_SEC));
	return config_find_contact(c, role->contacts[((turn % n) + n) % n]);
}

uint64_t config_role_next_handoff(const RoleConfig *role, uint64_t usec)
{
	time_t now = (time_t)(usec / USEC_PER_SEC), guess, lo, hi;
	int64_t turn, day;
	struct tm tm = {.tm_year = 124, .tm_mon = 0, .tm_isdst = -1};

	if (!rotation_turns(role))
		return 0;
	turn = rotation_turn(role, now);
	day = (turn + 1) * (role->rotation == ROTATION_WEEKLY ? 7 : 1) + rotation_first_day(role);
	/* mktime() finds the instant of the wall-clock time on that day (it normalises the day of
	 * the month), but in a DST gap or overlap it may be an hour off: the exact second is the
	 * first one within a few hours around it where the next turn is on. */
	tm.tm_mday = (int)(1 + day - days_from_civil(2024, 1, 1));
	tm.tm_hour = role->handoff_minutes / 60;
	tm.tm_min = role->handoff_minutes % 60;
	guess = mktime(&tm);
	if (guess == (time_t)-1)
		return 0;
	lo = MAX(now, guess - 3 * 3600);
	hi = guess + 3 * 3600;
	if (rotation_turn(role, lo) != turn || rotation_turn(role, hi) <= turn)
		return (uint64_t)MAX(guess, now + 1) * USEC_PER_SEC;
	while (hi - lo > 1) {
		time_t mid = lo + (hi - lo) / 2;

		if (rotation_turn(role, mid) > turn)
			hi = mid;
		else
			lo = mid;
	}
	return (uint64_t)hi * USEC_PER_SEC;
}

void config_fingerprint(const Config *c, char ret[static 33])
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	FILE *f;

	f = open_memstream(&buf, &len);
	if (!f) {
		snprintf(ret, 33, "%032d", 0);
		return;
	}
	/* Sections are kept in file order; the order of the file is part of the fingerprint. */
	for (size_t i = 0; i < c->n_contacts; i++)
		fprintf(f, "contact %s %s\n", c->contacts[i].name, c->contacts[i].number);
	for (size_t i = 0; i < c->n_roles; i++) {
		const RoleConfig *r = &c->roles[i];

		fprintf(f, "role %s %d %d %d", r->name, (int)r->rotation, r->handoff_wday,
		        r->handoff_minutes);
		for (size_t j = 0; j < r->n_contacts; j++)
			fprintf(f, " %s", r->contacts[j]);
		fputc('\n', f);
	}
	fprintf(f, "bundle %u %u\n", c->bundle_threshold, c->bundle_window);
	fprintf(f, "escalation %u %u", c->escalation_step_timeout, c->escalation_repeat);
	for (size_t i = 0; i < c->n_escalation_steps; i++)
		fprintf(f, " %s", c->escalation_steps[i]);
	fprintf(f, "\ndedupe %llu\ndelivery %u %u %u\n", (unsigned long long)c->dedupe_window,
	        c->retry_min, c->retry_max, c->max_permanent_failures);
	fclose(f);
	hash128_hex(buf ? buf : "", buf ? len : 0, ret);
}
