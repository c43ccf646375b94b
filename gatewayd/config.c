/* config: gatewayd.conf through inih, with line numbers.
 *
 * inih does the lexing (sections, "key = value", comments, BOM). It does not tell its handler on
 * which line a key stands, and it never calls the handler for a section that has no keys; so we
 * feed it through our own line reader, which counts lines and notices section headers itself.
 * That gives every error its "file:line: reason" and lets an empty "[modem x]" be caught too.
 * Cross-checks that need the whole file (a voice modem that names no [modem], a role naming an
 * unknown contact) run after parsing and point at the line of the offending key. */
#include "config-internal.h"

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
#include "util.h"
#include "validate.h"

int config_parser_fail(Parser *p, unsigned line, const char *format, ...)
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

/* Where a key of a section without a name was last (or first) given; 0: not in the file. */
static unsigned parser_key_line(const Parser *p, const char *section, const char *key, bool first)
{
	size_t n_items;
	const ConfigItem *items = config_items(&n_items);

	for (size_t i = 0; i < n_items; i++)
		if (streq(items[i].section, section) && streq(items[i].key, key))
			return first ? p->first_line[i] : p->last_line[i];
	return 0;
}

/* The table's defaults of one section into its object. A default that does not parse is a bug
 * of the table, which the unit test would catch first. */
static int apply_defaults(Parser *p, const char *section, void *object)
{
	size_t n_items;
	const ConfigItem *items = config_items(&n_items);

	for (size_t i = 0; i < n_items; i++) {
		const ConfigItem *item = &items[i];
		int r;

		if (!item->def || !streq(item->section, section))
			continue;
		r = item->parse(p, item, (char *)object + item->offset, item->def);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			return config_parser_fail(p, 0, "internal: bad default '%s' for %s in [%s]",
			                          item->def, item->key, section);
	}
	return 0;
}

static bool section_is_known(const char *section)
{
	size_t n_items;
	const ConfigItem *items = config_items(&n_items);

	for (size_t i = 0; i < n_items; i++)
		if (streq(items[i].section, section))
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

/* One more zeroed element at the end of a vector of n elements of size bytes; NULL when out of
 * memory (the vector is left as it was). */
static void *grow(void **v, size_t *n, size_t size)
{
	char *nv = realloc(*v, (*n + 1) * size);

	if (!nv)
		return NULL;
	*v = nv;
	memset(nv + *n * size, 0, size);
	return nv + (*n)++ * size;
}

static bool is_object_kind(const char *section)
{
	return streq(section, "modem") || streq(section, "contact") || streq(section, "role") ||
	       streq(section, "heartbeat");
}

/* Sections whose name carries an object: [modem NAME], [contact NAME], [role NAME],
 * [heartbeat NAME]. Each new object starts from the table's defaults of its kind. */
static int begin_section(Parser *p, const char *section)
{
	const char *space = strchr(section, ' ');
	const char *name;
	Config *c = p->config;

	p->object = NULL;
	snprintf(p->section, sizeof(p->section), "%s", section);
	snprintf(p->kind, sizeof(p->kind), "%s", section);

	if (!space) {
		if (!is_object_kind(section) && section_is_known(section))
			return 1;
		return config_parser_fail(p, p->line, "unknown section [%s]", section);
	}

	snprintf(p->kind, sizeof(p->kind), "%.*s", (int)(space - section), section);
	name = space + 1;
	if (!validate_name(name))
		return config_parser_fail(
		        p, p->line,
		        "bad name '%s' in [%s]: use up to %d letters, digits, '-', '_', '.'", name,
		        section, CONFIG_NAME_MAX);

	if (streq(p->kind, "modem")) {
		ModemConfig *v;

		if (config_find_modem(c, name))
			return config_parser_fail(p, p->line, "[modem %s] appears twice", name);
		v = grow((void **)&c->modems, &c->n_modems, sizeof(*v));
		if (!v)
			return -ENOMEM;
		*v = (ModemConfig){.name = strdup(name), .line = p->line};
		p->object = v;
		return v->name ? apply_defaults(p, "modem", v) : -ENOMEM;
	}
	if (streq(p->kind, "contact")) {
		ContactConfig *v;

		if (config_find_contact(c, name))
			return config_parser_fail(p, p->line, "[contact %s] appears twice", name);
		v = grow((void **)&c->contacts, &c->n_contacts, sizeof(*v));
		if (!v)
			return -ENOMEM;
		*v = (ContactConfig){.name = strdup(name), .line = p->line};
		p->object = v;
		return v->name ? apply_defaults(p, "contact", v) : -ENOMEM;
	}
	if (streq(p->kind, "role")) {
		RoleConfig *v;

		if (config_find_role(c, name))
			return config_parser_fail(p, p->line, "[role %s] appears twice", name);
		v = grow((void **)&c->roles, &c->n_roles, sizeof(*v));
		if (!v)
			return -ENOMEM;
		*v = (RoleConfig){.name = strdup(name), .line = p->line};
		p->object = v;
		return v->name ? apply_defaults(p, "role", v) : -ENOMEM;
	}
	if (streq(p->kind, "heartbeat")) {
		HeartbeatConfig *v;

		if (config_find_heartbeat(c, name))
			return config_parser_fail(p, p->line, "[heartbeat %s] appears twice", name);
		v = grow((void **)&c->heartbeats, &c->n_heartbeats, sizeof(*v));
		if (!v)
			return -ENOMEM;
		*v = (HeartbeatConfig){.name = strdup(name), .line = p->line};
		p->object = v;
		return v->name ? apply_defaults(p, "heartbeat", v) : -ENOMEM;
	}
	return config_parser_fail(p, p->line, "unknown section [%s]", section);
}

/* One key: its row of the table, in the section's kind ([modem x] is "modem"). */
static int handle_key(Parser *p, const char *section, const char *key, const char *value)
{
	size_t n_items;
	const ConfigItem *items = config_items(&n_items);
	void *object = p->object ? p->object : (void *)p->config;

	if (!streq(section, p->section))
		return config_parser_fail(p, p->line, "internal: section mismatch");

	for (size_t i = 0; i < n_items; i++) {
		const ConfigItem *item = &items[i];
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
			return config_parser_fail(p, p->line, "bad value '%s' for %s: %s", value,
			                          key, item->what ? item->what : "not valid here");
		return 1;
	}
	return config_parser_fail(p, p->line, "unknown key '%s' in [%s]", key, section);
}

static int config_ini_handler(void *user, const char *section, const char *key, const char *value)
{
	Parser *p = user;
	int r;

	if (p->error)
		return 1;
	r = handle_key(p, section, key, value);
	if (r < 0) {
		config_parser_fail(p, p->line, "out of memory");
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
		config_parser_fail(p, p->line, "line longer than %d characters", num - 2);
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
			config_parser_fail(p, p->line,
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
			config_parser_fail(p, p->line, "bad section header");
			return s;
		}
		snprintf(name, sizeof(name), "%.*s", (int)(end - start - 1), start + 1);
		if (begin_section(p, name) < 0)
			config_parser_fail(p, p->line, "out of memory");
	} else if (*start && *start != '#' && *start != ';' && !p->section[0] && !p->error) {
		config_parser_fail(p, p->line, "key outside of any section");
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
		return config_parser_fail(p, curve->line,
		                          "[%s] needs both 'curve_secret_key_file =' and "
		                          "'curve_clients_dir ='",
		                          section);
	if (auth_check_secret_key_file(curve->secret_key_file, &reason) < 0)
		return config_parser_fail(p, curve->line, "[%s] curve_secret_key_file %s", section,
		                          reason ? reason : "cannot be read");
	free(reason);
	reason = NULL;
	if (auth_check_clients_dir(curve->clients_dir, &reason) < 0)
		return config_parser_fail(p, curve->line, "[%s] curve_clients_dir %s", section,
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
	return config_parser_fail(
	        p, line ? line : p->line,
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

/* A recipient of the gateway's own alerts: an E.164 number, or role:NAME of a [role]. */
static bool recipient_valid(const Config *c, const char *to)
{
	return strncmp(to, "role:", 5) == 0 ? config_find_role(c, to + 5) != NULL
	                                    : validate_phone_number(to);
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
			return config_parser_fail(p, m->line, "[modem %s] needs 'device ='",
			                          m->name);
	}
	for (size_t i = 0; i < c->n_contacts; i++)
		if (!c->contacts[i].number)
			return config_parser_fail(p, c->contacts[i].line,
			                          "[contact %s] needs 'number ='",
			                          c->contacts[i].name);
	for (size_t i = 0; i < c->n_roles; i++) {
		RoleConfig *role = &c->roles[i];

		if (role->n_contacts == 0)
			return config_parser_fail(p, role->line, "[role %s] needs 'contacts ='",
			                          role->name);
		for (size_t j = 0; j < role->n_contacts; j++)
			if (!config_find_contact(c, role->contacts[j]))
				return config_parser_fail(p, role->line,
				                          "[role %s] names unknown contact '%s'",
				                          role->name, role->contacts[j]);
		if (role->rotation == ROTATION_WEEKLY && role->handoff_wday < 0)
			return config_parser_fail(
			        p, role->line,
			        "[role %s] weekly rotation needs a day: 'handoff = mon "
			        "09:00'",
			        role->name);
	}
	for (size_t i = 0; i < c->n_heartbeats; i++) {
		HeartbeatConfig *hb = &c->heartbeats[i];

		if (hb->n_to == 0)
			return config_parser_fail(p, hb->line, "[heartbeat %s] needs 'to ='",
			                          hb->name);
		for (size_t j = 0; j < hb->n_to; j++) {
			const char *to = hb->to[j];

			if (!recipient_valid(c, to))
				return config_parser_fail(p, hb->line,
				                          "[heartbeat %s] to '%s' is neither a "
				                          "[role] as role:NAME nor "
				                          "an E.164 number",
				                          hb->name, to);
		}
	}
	if (c->drill_seconds >= 0 && c->n_drill_to == 0)
		return config_parser_fail(p, parser_key_line(p, "drill", "at", false),
		                          "[drill] needs 'to =' beside 'at ='");
	for (size_t j = 0; j < c->n_drill_to; j++)
		if (!recipient_valid(c, c->drill_to[j]))
			return config_parser_fail(
			        p, parser_key_line(p, "drill", "to", false),
			        "[drill] to '%s' is neither a [role] as role:NAME "
			        "nor an E.164 number",
			        c->drill_to[j]);
	for (size_t j = 0; j < c->n_health_to; j++) {
		const char *to = c->health_to[j];

		if (!recipient_valid(c, to))
			return config_parser_fail(
			        p, parser_key_line(p, "health", "to", false),
			        "[health] to '%s' is neither a [role] as role:NAME "
			        "nor an E.164 number",
			        to);
	}
	for (size_t i = 0; i < c->n_escalation_steps; i++)
		if (!config_find_role(c, c->escalation_steps[i]))
			return config_parser_fail(
			        p, parser_key_line(p, "escalation", "steps", false),
			        "escalation step '%s' names no [role]", c->escalation_steps[i]);
	if (c->voice_modem && c->voice_device)
		return config_parser_fail(p, parser_key_line(p, "voice", "device", false),
		                          "[voice] takes either 'modem =' or 'device =', not both");
	if (c->voice_modem && !config_find_modem(c, c->voice_modem))
		return config_parser_fail(p, parser_key_line(p, "voice", "modem", false),
		                          "[voice] modem '%s' names no [modem]", c->voice_modem);
	if (c->retry_max < c->retry_min)
		return config_parser_fail(p,
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
	if (!c->node_name && config_set_string(&c->node_name, host) < 0)
		return -ENOMEM;
	return 0;
}

int config_load(const char *path, Config **ret, char **ret_error)
{
	size_t n_items;
	const ConfigItem *items = config_items(&n_items);
	Parser p = {.path = path};
	Config *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->submit_ops = ~0u;
	c->drill_seconds = -1;
	p.config = c;
	for (size_t i = 0; i < n_items; i++) {
		const char *section = items[i].section;

		if (is_object_kind(section))
			continue;
		if (i > 0 && streq(section, items[i - 1].section))
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
		config_parser_fail(&p, (unsigned)r,
		                   "syntax error (expected '[section]' or 'key = value')");
	if (!p.error) {
		r = config_defaults(c);
		if (r < 0)
			config_parser_fail(&p, p.line, "out of memory");
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
	free(c->hooks_on_ack);
	for (size_t i = 0; i < c->n_contacts; i++) {
		free(c->contacts[i].name);
		free(c->contacts[i].number);
	}
	free(c->contacts);
	for (size_t i = 0; i < c->n_roles; i++) {
		free(c->roles[i].name);
		config_free_list(c->roles[i].contacts, c->roles[i].n_contacts);
	}
	free(c->roles);
	for (size_t i = 0; i < c->n_heartbeats; i++) {
		free(c->heartbeats[i].name);
		free(c->heartbeats[i].text);
		config_free_list(c->heartbeats[i].to, c->heartbeats[i].n_to);
	}
	free(c->heartbeats);
	config_free_list(c->health_to, c->n_health_to);
	config_free_list(c->drill_to, c->n_drill_to);
	config_free_list(c->escalation_steps, c->n_escalation_steps);
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

const HeartbeatConfig *config_find_heartbeat(const Config *c, const char *name)
{
	for (size_t i = 0; i < c->n_heartbeats; i++)
		if (streq(c->heartbeats[i].name, name))
			return &c->heartbeats[i];
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

uint64_t config_drill_last(const Config *c, uint64_t usec)
{
	time_t now = (time_t)(usec / USEC_PER_SEC);

	if (c->drill_seconds < 0)
		return 0;
	/* Today's, then each day before, back a week: the first at or before now on its day. */
	for (int back = 0; back <= 7; back++) {
		time_t day = now - (time_t)back * 86400;
		struct tm tm;
		time_t t;

		if (!localtime_r(&day, &tm))
			return 0;
		tm.tm_hour = c->drill_seconds / 3600;
		tm.tm_min = c->drill_seconds / 60 % 60;
		tm.tm_sec = c->drill_seconds % 60;
		tm.tm_isdst = -1;
		t = mktime(&tm);
		if (t == (time_t)-1 || t > now)
			continue;
		if (c->drill_wday >= 0 && tm.tm_wday != c->drill_wday)
			continue;
		return (uint64_t)t * USEC_PER_SEC;
	}
	return 0;
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
	for (size_t i = 0; i < c->n_heartbeats; i++) {
		const HeartbeatConfig *hb = &c->heartbeats[i];

		fprintf(f, "heartbeat %s %u %u %d %s", hb->name, hb->interval, hb->grace,
		        (int)hb->critical, hb->text ? hb->text : "");
		for (size_t j = 0; j < hb->n_to; j++)
			fprintf(f, " %s", hb->to[j]);
		fputc('\n', f);
	}
	fprintf(f, "bundle %u %u\n", c->bundle_threshold, c->bundle_window);
	fprintf(f, "limits %u %u %u %u\n", c->limit_sms.count, c->limit_sms.window,
	        c->limit_calls.count, c->limit_calls.window);
	fprintf(f, "escalation %u %u %d", c->escalation_step_timeout, c->escalation_repeat,
	        (int)c->escalation_notify_resolved);
	for (size_t i = 0; i < c->n_escalation_steps; i++)
		fprintf(f, " %s", c->escalation_steps[i]);
	fprintf(f, "\ndedupe %llu\ndelivery %u %u %u\n", (unsigned long long)c->dedupe_window,
	        c->retry_min, c->retry_max, c->max_permanent_failures);
	fclose(f);
	hash128_hex(buf ? buf : "", buf ? len : 0, ret);
}
