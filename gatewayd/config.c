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

/* A listening socket's keys as the parser sees them: where they stand, for later errors. */
typedef struct Listener {
	unsigned bind_line;
	unsigned *max_clients;
	bool *insecure_remote;
} Listener;

typedef struct Parser {
	Config *config;
	FILE *file;
	const char *path;
	unsigned line;
	char *error; /* first error, "file:line: reason" */
	/* The section being read: kind and, for [modem x] etc., the object it fills. */
	char section[128];
	ModemConfig *modem;
	ContactConfig *contact;
	RoleConfig *role;
	unsigned voice_modem_line, voice_device_line;
	unsigned escalation_line;
	unsigned retry_line;
	Listener submit, events, control;
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

bool phone_number_is_valid(const char *s)
{
	size_t n;

	if (!s || s[0] != '+')
		return false;
	n = strlen(s + 1);
	if (n < 6 || n > 15)
		return false;
	for (const char *c = s + 1; *c; c++)
		if (!isdigit((unsigned char)*c))
			return false;
	return true;
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

static bool name_is_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > CONFIG_NAME_MAX)
		return false;
	for (const char *c = s; *c; c++)
		if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_' && *c != '.')
			return false;
	return true;
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

/* Sections whose name carries an object: [modem NAME], [contact NAME], [role NAME]. */
static int begin_section(Parser *p, const char *section)
{
	const char *space = strchr(section, ' ');
	char kind[32];
	const char *name;

	p->modem = NULL;
	p->contact = NULL;
	p->role = NULL;
	snprintf(p->section, sizeof(p->section), "%s", section);

	if (!space) {
		static const char *plain[] = {"node",     "submit",   "events", "cluster",
		                              "voice",    "dedupe",   "store",  "escalation",
		                              "delivery", "selftest", "bundle", "control",
		                              "metrics"};
		for (size_t i = 0; i < ELEMENTSOF(plain); i++)
			if (streq(section, plain[i]))
				return 1;
		return parser_fail(p, p->line, "unknown section [%s]", section);
	}

	snprintf(kind, sizeof(kind), "%.*s", (int)(space - section), section);
	name = space + 1;
	if (!name_is_valid(name))
		return parser_fail(
		        p, p->line,
		        "bad name '%s' in [%s]: use up to %d letters, digits, '-', '_', '.'", name,
		        section, CONFIG_NAME_MAX);

	if (streq(kind, "modem")) {
		ModemConfig *v;

		if (config_find_modem(p->config, name))
			return parser_fail(p, p->line, "[modem %s] appears twice", name);
		v = realloc(p->config->modems, (p->config->n_modems + 1) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		p->config->modems = v;
		p->modem = &v[p->config->n_modems++];
		*p->modem = (ModemConfig){
		        .name = strdup(name),
		        .send_timeout = 60,
		        .command_timeout = 10,
		        .health_interval = 30,
		        .inbox_interval = 15,
		        .min_signal = 5,
		        .max_consecutive_failures = 3,
		        .line = p->line,
		};
		return p->modem->name ? 1 : -ENOMEM;
	}
	if (streq(kind, "contact")) {
		ContactConfig *v;

		if (config_find_contact(p->config, name))
			return parser_fail(p, p->line, "[contact %s] appears twice", name);
		v = realloc(p->config->contacts, (p->config->n_contacts + 1) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		p->config->contacts = v;
		p->contact = &v[p->config->n_contacts++];
		*p->contact = (ContactConfig){.name = strdup(name), .line = p->line};
		return p->contact->name ? 1 : -ENOMEM;
	}
	if (streq(kind, "role")) {
		RoleConfig *v;

		if (config_find_role(p->config, name))
			return parser_fail(p, p->line, "[role %s] appears twice", name);
		v = realloc(p->config->roles, (p->config->n_roles + 1) * sizeof(*v));
		if (!v)
			return -ENOMEM;
		p->config->roles = v;
		p->role = &v[p->config->n_roles++];
		*p->role = (RoleConfig){.name = strdup(name),
		                        .handoff_wday = 1,
		                        .handoff_minutes = 9 * 60,
		                        .line = p->line};
		return p->role->name ? 1 : -ENOMEM;
	}
	return parser_fail(p, p->line, "unknown section [%s]", section);
}

#define BAD_VALUE(what) parser_fail(p, p->line, "bad value '%s' for %s: %s", value, key, what)

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

static int parse_ops(Parser *p, const char *key, const char *value)
{
	_cleanup_free_ char **ops = NULL;
	size_t n = 0;
	unsigned mask = 0;
	int op;

	if (parse_list(value, &ops, &n) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		op = request_op_from_string(ops[i]);
		if (op < 0) {
			parser_fail(p, p->line, "bad value '%s' for %s: unknown op '%s'", value,
			            key, ops[i]);
			break;
		}
		mask |= 1u << op;
	}
	for (size_t i = 0; i < n; i++)
		free(ops[i]);
	if (p->error)
		return 0;
	if (mask == 0)
		return parser_fail(p, p->line, "bad value '%s' for %s: name at least one op", value,
		                   key);
	p->config->submit_ops = mask;
	return 1;
}

/* The CURVE keys of [submit] and [events]; false when key is not one of them. */
static bool parse_curve_key(Parser *p, CurveConfig *curve, const char *key, const char *value,
                            int *ret)
{
	char **field;

	if (streq(key, "curve_secret_key_file"))
		field = &curve->secret_key_file;
	else if (streq(key, "curve_clients_dir"))
		field = &curve->clients_dir;
	else
		return false;
	if (!curve->line)
		curve->line = p->line;
	if (value[0] != '/')
		*ret = parser_fail(p, p->line, "bad value '%s' for %s: an absolute path", value,
		                   key);
	else
		*ret = set_string(field, value) < 0 ? -ENOMEM : 1;
	return true;
}

/* max_clients and allow_insecure_remote, the keys every listening section has. */
static bool parse_listener_key(Parser *p, Listener *l, const char *key, const char *value, int *ret)
{
	if (streq(key, "max_clients")) {
		if (parse_uint(value, 1, 100000, l->max_clients) < 0)
			*ret = parser_fail(p, p->line,
			                   "bad value '%s' for %s: 1 to 100000 connections", value,
			                   key);
		else
			*ret = 1;
		return true;
	}
	if (streq(key, "allow_insecure_remote")) {
		if (parse_bool(value, l->insecure_remote) < 0)
			*ret = parser_fail(p, p->line, "bad value '%s' for %s: true or false",
			                   value, key);
		else
			*ret = 1;
		return true;
	}
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

static int handle_key(Parser *p, const char *section, const char *key, const char *value)
{
	Config *c = p->config;
	uint64_t d;
	bool b;
	int r;

	if (!streq(section, p->section))
		return parser_fail(p, p->line, "internal: section mismatch");

	if (p->modem) {
		ModemConfig *m = p->modem;

		if (streq(key, "device"))
			return set_string(&m->device, value) < 0 ? -ENOMEM : 1;
		if (streq(key, "connection"))
			return set_string(&m->connection, value) < 0 ? -ENOMEM : 1;
		if (streq(key, "pin")) {
			size_t n = strlen(value);
			if (n < 4 || n > 8 || strspn(value, "0123456789") != n)
				return BAD_VALUE("a PIN is 4 to 8 digits");
			return set_string(&m->pin, value) < 0 ? -ENOMEM : 1;
		}
		if (streq(key, "send_timeout"))
			return parse_seconds(value, 5, 3600, &m->send_timeout) < 0
			               ? BAD_VALUE("a duration from 5s to 1h")
			               : 1;
		if (streq(key, "command_timeout"))
			return parse_seconds(value, 1, 600, &m->command_timeout) < 0
			               ? BAD_VALUE("a duration from 1s to 10m")
			               : 1;
		if (streq(key, "inbox_interval"))
			return parse_seconds(value, 1, 3600, &m->inbox_interval) < 0
			               ? BAD_VALUE("a duration from 1s to 1h")
			               : 1;
		if (streq(key, "imei")) {
			size_t n = strlen(value);
			if (n < 14 || n > 17 || strspn(value, "0123456789") != n)
				return BAD_VALUE("an IMEI is 14 to 17 digits");
			return set_string(&m->imei, value) < 0 ? -ENOMEM : 1;
		}
		if (streq(key, "min_signal")) {
			unsigned v;
			if (streq(value, "none")) {
				m->min_signal = -1;
				return 1;
			}
			if (parse_uint(value, 0, 31, &v) < 0)
				return BAD_VALUE("a CSQ value from 0 to 31, or none");
			m->min_signal = (int)v;
			return 1;
		}
		if (streq(key, "max_consecutive_failures"))
			return parse_uint(value, 1, 100, &m->max_consecutive_failures) < 0
			               ? BAD_VALUE("1 to 100")
			               : 1;
		if (streq(key, "delivery_reports")) {
			bool b2;
			if (parse_bool(value, &b2) < 0)
				return BAD_VALUE("yes or no");
			m->delivery_reports = b2;
			return 1;
		}
		if (streq(key, "health_interval"))
			return parse_seconds(value, 1, 3600, &m->health_interval) < 0
			               ? BAD_VALUE("a duration from 1s to 1h")
			               : 1;
		if (streq(key, "number")) {
			if (!phone_number_is_valid(value))
				return BAD_VALUE("an E.164 number is '+' and 6 to 15 digits");
			return set_string(&m->number, value) < 0 ? -ENOMEM : 1;
		}
	} else if (p->contact) {
		if (streq(key, "number")) {
			if (!phone_number_is_valid(value))
				return BAD_VALUE("an E.164 number is '+' and 6 to 15 digits");
			return set_string(&p->contact->number, value) < 0 ? -ENOMEM : 1;
		}
	} else if (p->role) {
		RoleConfig *role = p->role;

		if (streq(key, "contacts")) {
			free_list(role->contacts, role->n_contacts);
			role->contacts = NULL;
			role->n_contacts = 0;
			if (parse_list(value, &role->contacts, &role->n_contacts) < 0)
				return -ENOMEM;
			if (role->n_contacts == 0)
				return BAD_VALUE("a list of [contact] names");
			return 1;
		}
		if (streq(key, "rotation")) {
			if (streq(value, "none"))
				role->rotation = ROTATION_NONE;
			else if (streq(value, "daily"))
				role->rotation = ROTATION_DAILY;
			else if (streq(value, "weekly"))
				role->rotation = ROTATION_WEEKLY;
			else
				return BAD_VALUE("none, daily or weekly");
			return 1;
		}
		if (streq(key, "handoff")) {
			if (parse_handoff(value, &role->handoff_wday, &role->handoff_minutes) < 0)
				return BAD_VALUE("'HH:MM' or 'mon HH:MM'");
			return 1;
		}
	} else if (streq(section, "node")) {
		if (streq(key, "name")) {
			if (!name_is_valid(value))
				return BAD_VALUE("up to 32 letters, digits, '-', '_', '.'");
			return set_string(&c->node_name, value) < 0 ? -ENOMEM : 1;
		}
		if (streq(key, "state_dir")) {
			if (value[0] != '/')
				return BAD_VALUE("an absolute path");
			return set_string(&c->state_dir, value) < 0 ? -ENOMEM : 1;
		}
	} else if (streq(section, "submit")) {
		if (streq(key, "bind")) {
			p->submit.bind_line = p->line;
			return set_string(&c->submit_bind, value) < 0 ? -ENOMEM : 1;
		}
		if (streq(key, "max_parts"))
			return parse_uint(value, 1, 255, &c->max_parts) < 0
			               ? BAD_VALUE("1 to 255 SMS parts")
			               : 1;
		if (streq(key, "max_queue"))
			return parse_uint(value, 1, 10000000, &c->max_queue) < 0
			               ? BAD_VALUE("1 to 10000000 alerts")
			               : 1;
		if (streq(key, "rate"))
			return parse_rate(value, &c->submit_rate) < 0
			               ? BAD_VALUE("sends per second, e.g. '20/s', 0 for no limit")
			               : 1;
		if (streq(key, "burst"))
			return parse_uint(value, 1, 1000000, &c->submit_burst) < 0
			               ? BAD_VALUE("1 to 1000000 sends")
			               : 1;
		if (streq(key, "ops"))
			return parse_ops(p, key, value);
		if (streq(key, "read_rate"))
			return parse_rate(value, &c->submit_read_rate) < 0
			               ? BAD_VALUE("reads per second, e.g. '20/s', 0 for no limit")
			               : 1;
		if (streq(key, "read_burst"))
			return parse_uint(value, 1, 1000000, &c->submit_read_burst) < 0
			               ? BAD_VALUE("1 to 1000000 reads")
			               : 1;
		if (parse_curve_key(p, &c->submit_curve, key, value, &r))
			return r;
		if (parse_listener_key(p, &p->submit, key, value, &r))
			return r;
	} else if (streq(section, "events")) {
		if (streq(key, "bind")) {
			p->events.bind_line = p->line;
			return set_string(&c->events_bind, value) < 0 ? -ENOMEM : 1;
		}
		if (parse_curve_key(p, &c->events_curve, key, value, &r))
			return r;
		if (parse_listener_key(p, &p->events, key, value, &r))
			return r;
	} else if (streq(section, "control")) {
		if (streq(key, "bind")) {
			p->control.bind_line = p->line;
			return set_string(&c->control_bind, value) < 0 ? -ENOMEM : 1;
		}
		if (parse_listener_key(p, &p->control, key, value, &r))
			return r;
	} else if (streq(section, "cluster")) {
		if (streq(key, "enabled")) {
			if (parse_bool(value, &b) < 0)
				return BAD_VALUE("true or false");
			c->cluster_enabled = b;
			return 1;
		}
		if (streq(key, "group")) {
			if (!name_is_valid(value))
				return BAD_VALUE("up to 32 letters, digits, '-', '_', '.'");
			return set_string(&c->cluster_group, value) < 0 ? -ENOMEM : 1;
		}
		if (streq(key, "peer_grace"))
			return parse_seconds(value, 0, 3600, &c->peer_grace) < 0
			               ? BAD_VALUE("a duration from 0s to 1h")
			               : 1;
		if (streq(key, "check_interval"))
			return parse_seconds(value, 0, 86400, &c->check_interval) < 0
			               ? BAD_VALUE("a duration from 0s (off) to 1d")
			               : 1;
	} else if (streq(section, "voice")) {
		if (streq(key, "modem")) {
			p->voice_modem_line = p->line;
			return set_string(&c->voice_modem, value) < 0 ? -ENOMEM : 1;
		}
		if (streq(key, "device")) {
			p->voice_device_line = p->line;
			return set_string(&c->voice_device, value) < 0 ? -ENOMEM : 1;
		}
		if (streq(key, "contact_center")) {
			if (!phone_number_is_valid(value))
				return BAD_VALUE("an E.164 number is '+' and 6 to 15 digits");
			return set_string(&c->voice_contact_center, value) < 0 ? -ENOMEM : 1;
		}
		if (streq(key, "ring_timeout"))
			return parse_seconds(value, 2, 300, &c->voice_ring_timeout) < 0
			               ? BAD_VALUE("a duration from 2s to 5m")
			               : 1;
		if (streq(key, "hold"))
			return parse_seconds(value, 1, 300, &c->voice_hold) < 0
			               ? BAD_VALUE("a duration from 1s to 5m")
			               : 1;
		if (streq(key, "retry_delay"))
			return parse_seconds(value, 1, 3600, &c->voice_retry_delay) < 0
			               ? BAD_VALUE("a duration from 1s to 1h")
			               : 1;
		if (streq(key, "retries"))
			return parse_uint(value, 0, 20, &c->voice_retries) < 0
			               ? BAD_VALUE("0 to 20")
			               : 1;
	} else if (streq(section, "dedupe")) {
		if (streq(key, "window")) {
			if (parse_duration(value, &d) < 0 || d > 7 * 86400)
				return BAD_VALUE("a duration up to 7d (e.g. 600, 10m)");
			c->dedupe_window = d;
			return 1;
		}
	} else if (streq(section, "store")) {
		if (streq(key, "retention")) {
			if (parse_duration(value, &d) < 0 || d < 3600)
				return BAD_VALUE("a duration of at least 1h (e.g. 30d)");
			c->retention = d;
			return 1;
		}
	} else if (streq(section, "selftest")) {
		if (streq(key, "interval")) {
			if (parse_duration(value, &d) < 0 || (d != 0 && (d < 10 || d > 30 * 86400)))
				return BAD_VALUE("0 (off) or a duration from 10s to 30d");
			c->selftest_interval = (unsigned)d;
			return 1;
		}
		if (streq(key, "timeout"))
			return parse_seconds(value, 5, 86400, &c->selftest_timeout) < 0
			               ? BAD_VALUE("a duration from 5s to 1d")
			               : 1;
	} else if (streq(section, "delivery")) {
		unsigned *field = NULL;

		if (streq(key, "retry_min"))
			field = &c->retry_min;
		else if (streq(key, "retry_max"))
			field = &c->retry_max;
		if (field) {
			p->retry_line = p->line;
			if (parse_duration(value, &d) < 0 || d < 1 || d > 86400)
				return BAD_VALUE("a duration from 1s to 1d");
			*field = (unsigned)d;
			return 1;
		}
		if (streq(key, "max_permanent_failures"))
			return parse_uint(value, 1, 100, &c->max_permanent_failures) < 0
			               ? BAD_VALUE("1 to 100")
			               : 1;
	} else if (streq(section, "escalation")) {
		if (streq(key, "steps")) {
			p->escalation_line = p->line;
			free_list(c->escalation_steps, c->n_escalation_steps);
			c->escalation_steps = NULL;
			c->n_escalation_steps = 0;
			r = parse_list(value, &c->escalation_steps, &c->n_escalation_steps);
			return r < 0 ? r : 1;
		}
		if (streq(key, "step_timeout")) {
			if (parse_duration(value, &d) < 0 || d < 5 || d > 86400)
				return BAD_VALUE("a duration from 5s to 1d");
			c->escalation_step_timeout = (unsigned)d;
			return 1;
		}
	} else if (streq(section, "bundle")) {
		if (streq(key, "threshold"))
			return parse_uint(value, 0, 1000, &c->bundle_threshold) < 0
			               ? BAD_VALUE("0 (off) to 1000")
			               : 1;
		if (streq(key, "window")) {
			if (parse_duration(value, &d) < 0 || d < 1 || d > 3600)
				return BAD_VALUE("a duration from 1s to 1h");
			c->bundle_window = (unsigned)d;
			return 1;
		}
	} else if (streq(section, "metrics")) {
		if (streq(key, "textfile")) {
			if (value[0] != '/')
				return BAD_VALUE("an absolute path");
			return set_string(&c->metrics_textfile, value) < 0 ? -ENOMEM : 1;
		}
		if (streq(key, "interval"))
			return parse_seconds(value, 1, 3600, &c->metrics_interval) < 0
			               ? BAD_VALUE("a duration from 1s to 1h")
			               : 1;
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
                             const CurveConfig *curve, const Listener *l)
{
	if (!bind || !config_endpoint_is_remote(bind) || *l->insecure_remote)
		return 0;
	if (curve && curve->secret_key_file)
		return 0;
	return parser_fail(p, l->bind_line ? l->bind_line : p->line,
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

static int config_validate(Parser *p)
{
	Config *c = p->config;

	validate_curve(p, "submit", &c->submit_curve);
	validate_curve(p, "events", &c->events_curve);
	if (p->error)
		return 0;
	validate_exposure(p, "submit", c->submit_bind, &c->submit_curve, &p->submit);
	validate_exposure(p, "events", c->events_bind, &c->events_curve, &p->events);
	validate_exposure(p, "control", c->control_bind, NULL, &p->control);
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
		if (!m->connection && set_string(&m->connection, "at") < 0)
			return -ENOMEM;
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
			return parser_fail(p, p->escalation_line,
			                   "escalation step '%s' names no [role]",
			                   c->escalation_steps[i]);
	if (c->voice_modem && c->voice_device)
		return parser_fail(p, p->voice_device_line,
		                   "[voice] takes either 'modem =' or 'device =', not both");
	if (c->voice_modem && !config_find_modem(c, c->voice_modem))
		return parser_fail(p, p->voice_modem_line, "[voice] modem '%s' names no [modem]",
		                   c->voice_modem);
	if (c->retry_max < c->retry_min)
		return parser_fail(p, p->retry_line, "[delivery] retry_max is below retry_min");
	return 0;
}

static int config_defaults(Config *c)
{
	char host[256];

	if (gethostname(host, sizeof(host)) < 0 || !name_is_valid(host))
		snprintf(host, sizeof(host), "gateway");
	host[strcspn(host, ".")] = 0;
	if (!c->node_name && set_string(&c->node_name, host) < 0)
		return -ENOMEM;
	if (!c->state_dir && set_string(&c->state_dir, "/var/lib/gatewayd") < 0)
		return -ENOMEM;
	if (!c->submit_bind && set_string(&c->submit_bind, "tcp://127.0.0.1:5570") < 0)
		return -ENOMEM;
	if (!c->events_bind && set_string(&c->events_bind, "tcp://127.0.0.1:5571") < 0)
		return -ENOMEM;
	if (!c->cluster_group && set_string(&c->cluster_group, "gatewayd") < 0)
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
	c->max_parts = 10;
	c->max_queue = 1000000;
	c->submit_ops = ~0u;
	c->submit_read_rate = 20;
	c->submit_max_clients = 256;
	c->events_max_clients = 128;
	c->control_max_clients = 32;
	c->voice_ring_timeout = 45;
	c->voice_hold = 10;
	c->voice_retries = 3;
	c->voice_retry_delay = 30;
	c->dedupe_window = 600;
	c->retention = 30 * 86400;
	c->retry_min = 5;
	c->peer_grace = 10;
	c->check_interval = 60;
	c->selftest_interval = 86400;
	c->selftest_timeout = 600;
	c->retry_max = 300;
	c->max_permanent_failures = 3;
	c->escalation_step_timeout = 300;
	c->bundle_threshold = 5;
	c->bundle_window = 60;
	c->metrics_interval = 5;
	p.config = c;
	p.submit = (Listener){.max_clients = &c->submit_max_clients,
	                      .insecure_remote = &c->submit_insecure_remote};
	p.events = (Listener){.max_clients = &c->events_max_clients,
	                      .insecure_remote = &c->events_insecure_remote};
	p.control = (Listener){.max_clients = &c->control_max_clients,
	                       .insecure_remote = &c->control_insecure_remote};

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
	fprintf(f, "escalation %u", c->escalation_step_timeout);
	for (size_t i = 0; i < c->n_escalation_steps; i++)
		fprintf(f, " %s", c->escalation_steps[i]);
	fprintf(f, "\ndedupe %llu\ndelivery %u %u %u\n", (unsigned long long)c->dedupe_window,
	        c->retry_min, c->retry_max, c->max_permanent_failures);
	fclose(f);
	hash128_hex(buf ? buf : "", buf ? len : 0, ret);
}
