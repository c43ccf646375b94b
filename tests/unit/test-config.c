/* Unit tests of config: every error names file:line and the cause; defaults are filled; the
 * table of keys agrees with gatewayd.conf(5). */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "macro.h"
#include "util.h"
#include "validate.h"
#include "test.h"

static char path[] = "/tmp/test-config-XXXXXX";

static int load(const char *text, Config **ret, char **ret_error)
{
	FILE *f = fopen(path, "w");

	fputs(text, f);
	fclose(f);
	*ret = NULL;
	*ret_error = NULL;
	return config_load(path, ret, ret_error);
}

/* Expects failure with an error that ends in "file:LINE: <reason...>" containing `what`. */
static void expect_error(const char *text, unsigned line, const char *what)
{
	Config *c;
	char *err, prefix[128];

	check(load(text, &c, &err) < 0);
	check(c == NULL);
	snprintf(prefix, sizeof(prefix), "%s:%u: ", path, line);
	if (!err || strncmp(err, prefix, strlen(prefix)) != 0 || !strstr(err, what)) {
		fprintf(stderr, "  got '%s', expected '%s...%s'\n", err ? err : "(null)", prefix,
		        what);
		test_failures++;
	}
	free(err);
}

static void test_defaults(void)
{
	Config *c;
	char *err;

	check_int(load("[node]\nname = a\nstate_dir = /tmp/x\n", &c, &err), 0);
	if (!c)
		return;
	check_str(c->node_name, "a");
	check_str(c->submit_bind, "tcp://127.0.0.1:5570");
	check_str(c->events_bind, "tcp://127.0.0.1:5571");
	check_int(c->max_parts, 10);
	check_int(c->dedupe_window, 600);
	check_int(c->retention, 30 * 86400);
	check(!c->cluster_enabled);
	config_free(c);
}

static void test_design_example(void)
{
	/* The example of DESIGN.md, as users will copy it. */
	static const char text[] =
	        "[node]\nname = a\nstate_dir = /var/lib/gatewayd\n\n"
	        "[submit]\nbind = tcp://127.0.0.1:5570\n\n"
	        "[events]\nbind = tcp://127.0.0.1:5571\n\n"
	        "# false: solo mode\n[cluster]\nenabled = true\ngroup = gatewayd\n\n"
	        "; a modem\n[modem gsm0]\ndevice = /dev/ttyUSB0\n"
	        "connection = at115200\npin = 1234\n\n"
	        "[voice]\nmodem = gsm0\ncontact_center = +3222000000\n"
	        "ring_timeout = 45\n\n[dedupe]\nwindow = 600\n\n"
	        "[contact alice]\nnumber = +32470100001\n"
	        "[contact bob]\nnumber = +32470100002\n\n"
	        "[role primary]\ncontacts = alice, bob\nrotation = weekly\n"
	        "handoff = mon 09:00\n\n[escalation]\nsteps = primary\n"
	        "step_timeout = 300\n";
	Config *c;
	char *err;

	check_int(load(text, &c, &err), 0);
	if (err)
		fprintf(stderr, "  %s\n", err);
	if (!c)
		return;
	check_int(c->n_modems, 1);
	check_str(c->modems[0].device, "/dev/ttyUSB0");
	check_str(c->modems[0].connection, "at115200");
	check_str(c->modems[0].pin, "1234");
	check_int(c->modems[0].send_timeout, 60);
	check_str(c->voice_modem, "gsm0");
	check_int(c->n_roles, 1);
	check_int(c->roles[0].n_contacts, 2);
	check_str(c->roles[0].contacts[1], "bob");
	check(c->cluster_enabled);
	config_free(c);
}

static void test_errors(void)
{
	expect_error("[node]\nname = a\n[bogus]\nx = 1\n", 3, "unknown section [bogus]");
	expect_error("[node]\nname = a\nfoo = 1\n", 3, "unknown key 'foo' in [node]");
	expect_error("[submit]\n\nmax_parts = zero\n", 3, "bad value 'zero' for max_parts");
	expect_error("[modem gsm0]\nconnection = at\n", 1, "[modem gsm0] needs 'device ='");
	expect_error("[modem gsm0]\ndevice = /dev/x\n[modem gsm0]\ndevice = /dev/y\n", 3,
	             "appears twice");
	expect_error("[modem gsm0]\ndevice = /dev/x\npin = 12\n", 3, "a PIN is 4 to 8 digits");
	expect_error("[voice]\nmodem = nope\n", 2, "names no [modem]");
	expect_error("[modem a]\ndevice = /x\n[voice]\nmodem = a\ndevice = /y\n", 5, "not both");
	expect_error("[contact alice]\nnumber = 0470\n", 2, "E.164");
	expect_error("[contact a]\nnumber = +32470100001\n[role x]\ncontacts = a, zed\n", 3,
	             "unknown contact 'zed'");
	expect_error("name = a\n", 1, "outside of any section");
	expect_error("[node]\nthis line is not a key\n", 2, "syntax error");
	expect_error("[cluster]\nenabled = maybe\n", 2, "true or false");
	expect_error("[dedupe]\nwindow = 10x\n", 2, "duration");
	expect_error("[node]\nstate_dir = relative/path\n", 2, "absolute path");
	expect_error("[modem a]\ndevice = /dev/ttyUSB0\n  pin = 1234\n", 3, "indented line");
	expect_error("[contact a]\n\n[node]\nname = x\n", 1, "needs 'number ='");
	expect_error("[delivery]\nretry_min = 60\nretry_max = 10\n\n", 3, "below retry_min");
	expect_error("[modem a]\ndevice = /x\nsend_timeout = 2h\n", 3, "5s to 1h");
	expect_error("[voice]\ndevice = /x\nretries = 50\n", 3, "0 to 20");
	expect_error("[voice]\ndevice = /x\nhold = 0\n", 3, "1s to 5m");
	expect_error("[modem a]\ndevice = /x\nimei = 12ab\n", 3, "14 to 17 digits");
	expect_error("[modem a]\ndevice = /x\ndelivery_reports = maybe\n", 3, "yes or no");
}

static void test_bom_and_durations(void)
{
	Config *c;
	char *err;

	check_int(load("\xEF\xBB\xBF[node]\nname = a\n[modem m]\ndevice = /x\n"
	               "send_timeout = 2m\n  # an indented comment is fine\n",
	               &c, &err),
	          0);
	if (!c)
		return;
	check_int(c->modems[0].send_timeout, 120);
	config_free(c);
}

static void test_missing_file(void)
{
	Config *c;
	char *err = NULL;

	check(config_load("/nonexistent/gatewayd.conf", &c, &err) == -ENOENT);
	check(err && strstr(err, "/nonexistent/gatewayd.conf: cannot open"));
	free(err);
}

static void test_helpers(void)
{
	uint64_t d;

	check(validate_phone_number("+32470123456"));
	check(validate_phone_number("+123456"));
	check(!validate_phone_number("+12345"));
	check(!validate_phone_number("+1234567890123456"));
	check(!validate_phone_number("32470123456"));
	check(!validate_phone_number("+3247012345a"));
	check(parse_duration("600", &d) == 0 && d == 600);
	check(parse_duration("10m", &d) == 0 && d == 600);
	check(parse_duration("30d", &d) == 0 && d == 30 * 86400);
	check(parse_duration("1h", &d) == 0 && d == 3600);
	check(parse_duration("-1", &d) < 0);
	check(parse_duration("5x", &d) < 0);
	check(parse_duration("", &d) < 0);
}

static void test_rotation(void)
{
	static const char text[] = "[contact alice]\nnumber = +32470100001\n"
	                           "[contact bob]\nnumber = +32470100002\n"
	                           "[role primary]\ncontacts = alice, bob\nrotation = daily\n"
	                           "handoff = 09:00\n"
	                           "[role fixed]\ncontacts = bob, alice\n";
	Config *c;
	char *err;
	const ContactConfig *a, *b;
	uint64_t t = 1800000000ULL * 1000000ULL; /* some instant in 2027 */

	check_int(load(text, &c, &err), 0);
	if (!c)
		return;
	a = config_role_on_duty(c, config_find_role(c, "primary"), t);
	b = config_role_on_duty(c, config_find_role(c, "primary"), t + 86400ULL * 1000000ULL);
	check(a && b && a != b); /* daily rotation: the next day, the other person */
	check_str(config_role_on_duty(c, config_find_role(c, "fixed"), t)->name, "bob");
	config_free(c);
}

/* Rotation against an injected clock: TZ is set here, instants are written as Unix seconds
 * (computed independently, with Python's zoneinfo), and each hand-over is checked one minute
 * before and one minute after. */
static const char rotation_text[] = "[contact alice]\nnumber = +32470100001\n"
                                    "[contact bob]\nnumber = +32470100002\n"
                                    "[contact carol]\nnumber = +32470100003\n"
                                    "[role daily]\ncontacts = alice, bob, carol\nrotation = daily\n"
                                    "handoff = 09:00\n"
                                    "[role weekly]\ncontacts = alice, bob\nrotation = weekly\n"
                                    "handoff = mon 09:00\n"
                                    "[role night]\ncontacts = alice, bob, carol\n"
                                    "rotation = weekly\nhandoff = sun 02:30\n"
                                    "[role fixed]\ncontacts = bob, alice\n"
                                    "[role single]\ncontacts = carol\nrotation = daily\n";

#define SEC(t) ((uint64_t)(t)*1000000ULL)
#define MINUTE 60

static void set_tz(const char *tz)
{
	if (tz)
		setenv("TZ", tz, 1);
	else
		unsetenv("TZ");
	tzset();
}

static const char *duty(Config *c, const char *role, uint64_t t)
{
	const ContactConfig *who = config_role_on_duty(c, config_find_role(c, role), SEC(t));

	return who ? who->name : "(none)";
}

static uint64_t next_handoff(Config *c, const char *role, uint64_t t)
{
	return config_role_next_handoff(config_find_role(c, role), SEC(t)) / 1000000ULL;
}

/* Who is on duty one minute before and one minute after hand-over t, and that the hand-over
 * is found as the next one from a minute before. */
static void expect_handoff(Config *c, const char *role, uint64_t t, const char *before,
                           const char *after)
{
	check_str(duty(c, role, t - MINUTE), before);
	check_str(duty(c, role, t - 1), before);
	check_str(duty(c, role, t), after);
	check_str(duty(c, role, t + MINUTE), after);
	check_int(next_handoff(c, role, t - MINUTE), t);
}

static void test_rotation_dst(void)
{
	Config *c;
	char *err;

	set_tz("Europe/Brussels");
	check_int(load(rotation_text, &c, &err), 0);
	if (!c) {
		set_tz(NULL);
		return;
	}
	/* Daily at 09:00 local. 2026-03-28 is the last day of CET (UTC+1), 2026-03-29 the first
	 * of CEST (UTC+2): the hand-over stays at 09:00 on the wall clock, 23 hours later. */
	expect_handoff(c, "daily", 1774684800, "alice", "bob");   /* Sat 2026-03-28 09:00 CET */
	expect_handoff(c, "daily", 1774767600, "bob", "carol");   /* Sun 2026-03-29 09:00 CEST */
	expect_handoff(c, "daily", 1774854000, "carol", "alice"); /* wrap-around, Mon 03-30 */
	check_int(next_handoff(c, "daily", 1774684800 + MINUTE), 1774767600); /* 23 h later */
	check_int(next_handoff(c, "daily", 1774684800), 1774767600);          /* strictly after */

	/* Weekly on Monday 09:00 local, across the change: Mon 2026-03-30 09:00 CEST. */
	expect_handoff(c, "weekly", 1774854000, "alice", "bob");
	check_int(next_handoff(c, "weekly", 1774440000), 1774854000); /* from Wed 03-25 13:00 */
	expect_handoff(c, "weekly", 1774854000 + 7 * 86400, "bob", "alice"); /* wrap-around */

	/* 02:30 does not exist on 2026-03-29 (02:00 CET jumps to 03:00 CEST): the hand-over is
	 * at 03:00 CEST, the first instant past 02:30 on the wall clock. */
	expect_handoff(c, "night", 1774746000, "bob", "carol");
	check_int(next_handoff(c, "night", 1774684800), 1774746000);
	/* 02:30 happens twice on 2026-10-25 (03:00 CEST goes back to 02:00 CET): the hand-over is
	 * at the first, and the second changes nothing. */
	expect_handoff(c, "night", 1792888200, "bob", "carol");
	check_str(duty(c, "night", 1792890000 + 15 * MINUTE), "carol"); /* 02:15 CET, again */
	check_str(duty(c, "night", 1792891800 + MINUTE), "carol");
	check_int(next_handoff(c, "night", 1792888200), 1793496600); /* Sun 11-01 02:30 CET */

	/* No rotation, or a single contact: always the same, and no hand-over. */
	check_str(duty(c, "fixed", 1774767600), "bob");
	check_int(next_handoff(c, "fixed", 1774767600), 0);
	check_str(duty(c, "single", 1774767600), "carol");
	check_int(next_handoff(c, "single", 1774767600), 0);
	config_free(c);
	set_tz(NULL);
}

static void test_rotation_utc(void)
{
	Config *c;
	char *err;

	set_tz("UTC");
	check_int(load(rotation_text, &c, &err), 0);
	if (!c) {
		set_tz(NULL);
		return;
	}
	expect_handoff(c, "daily", 1774774800, "bob", "carol"); /* Sun 2026-03-29 09:00 UTC */
	expect_handoff(c, "daily", 1774774800 + 86400, "carol", "alice");
	expect_handoff(c, "weekly", 1774861200, "alice", "bob"); /* Mon 2026-03-30 09:00 UTC */
	check_int(next_handoff(c, "weekly", 1774861200), 1774861200 + 7 * 86400);
	expect_handoff(c, "weekly", 1774861200 + 7 * 86400, "bob", "alice");
	/* The first turn: Mon 2024-01-01 09:00, the first contact. */
	expect_handoff(c, "weekly", 1704099600, "bob", "alice");
	config_free(c);
	set_tz(NULL);
}

static void test_drill_schedule(void)
{
	/* Mon 2026-03-30 10:00 UTC, and in Brussels (CEST since the day before) 08:00 UTC. */
	const uint64_t monday = 1774864800ULL * 1000000;
	Config *c;
	char *err;

	set_tz("UTC");
	check_int(load("[drill]\nat = mon 10:00\nto = +4912345678\n", &c, &err), 0);
	if (c) {
		check_int((long long)config_drill_last(c, monday), (long long)monday);
		check_int((long long)config_drill_last(c, monday - 1),
		          (long long)(monday - 7ULL * 86400 * 1000000));
		check_int((long long)config_drill_last(c, monday + 3ULL * 86400 * 1000000),
		          (long long)monday);
		config_free(c);
	}
	set_tz("Europe/Brussels");
	check_int(load("[drill]\nat = 10:00:30\nto = +4912345678\n", &c, &err), 0);
	if (c) {
		check_int((long long)config_drill_last(c, monday),
		          (long long)(monday - 2ULL * 3600 * 1000000 + 30 * 1000000));
		config_free(c);
	}
	set_tz(NULL);
	/* A drill needs someone to page. */
	check_int(load("[drill]\nat = mon 10:00\n", &c, &err), -EINVAL);
	check(err && strstr(err, "[drill] needs 'to ='"));
	free(err);
	config_free(c);
}

static void test_listeners(void)
{
	Config *c;
	char *err;

	check_int(load("[node]\nstate_dir = /tmp/x\n", &c, &err), 0);
	if (c) {
		check_int(c->submit_max_clients, 256);
		check_int(c->events_max_clients, 128);
		check_int(c->control_max_clients, 32);
		check_int(c->submit_read_rate, 20);
		check_int(c->submit_read_burst, 40);
		check(!c->submit_insecure_remote);
		config_free(c);
	}
	check_int(load("[submit]\nread_rate = 5/s\nmax_clients = 10\n", &c, &err), 0);
	if (c) {
		check_int(c->submit_read_burst, 10);
		check_int(c->submit_max_clients, 10);
		config_free(c);
	}
	check_int(load("[submit]\nbind = tcp://*:5570\nallow_insecure_remote = yes\n", &c, &err),
	          0);
	if (c) {
		check(c->submit_insecure_remote);
		config_free(c);
	}
	expect_error("[submit]\nbind = tcp://0.0.0.0:5570\n", 2, "listens beyond loopback");
	expect_error("[node]\nname = a\n[events]\nbind = tcp://eth0:5571\n", 4,
	             "[events] bind = tcp://eth0:5571 listens beyond loopback without CURVE");
	expect_error("[control]\nbind = tcp://[::]:5572\nallow_insecure_remote = maybe\n", 3,
	             "bad value 'maybe'");
	expect_error("[submit]\nmax_clients = 0\n", 2, "bad value '0' for max_clients");

	check(!config_endpoint_is_remote("tcp://127.0.0.1:5570"));
	check(!config_endpoint_is_remote("tcp://127.1.2.3:5570"));
	check(!config_endpoint_is_remote("tcp://[::1]:5570"));
	check(!config_endpoint_is_remote("tcp://localhost:5570"));
	check(!config_endpoint_is_remote("tcp://lo:5570"));
	check(!config_endpoint_is_remote("ipc:///run/gatewayd/control"));
	check(!config_endpoint_is_remote("ipc://@abstract"));
	check(config_endpoint_is_remote("tcp://*:5570"));
	check(config_endpoint_is_remote("tcp://0.0.0.0:5570"));
	check(config_endpoint_is_remote("tcp://[::]:5570"));
	check(config_endpoint_is_remote("tcp://127.evil.example:5570"));
	check(config_endpoint_is_remote("tcp://192.0.2.1:5570"));
	check(config_endpoint_is_remote("ws://127.0.0.1:5570"));
}

/* gatewayd.conf(5) and the table agree: every key in one is in the other, and where the man page
 * states a default in a key's paragraph, the table's default is written there. */
typedef struct ManKey {
	char section[32];
	char key[64];
	char text[4096]; /* the paragraph, troff stripped */
	bool seen;
} ManKey;

/* Appends a troff line to text without its request name, quotes and font escapes. */
static void man_append(char *text, size_t size, const char *line)
{
	size_t n = strlen(text);

	if (line[0] == '.') {
		line += strcspn(line, " \n");
		if (*line == ' ')
			line++;
	}
	for (const char *s = line; *s && *s != '\n' && n + 2 < size; s++) {
		if (*s == '"')
			continue;
		if (s[0] == '\\' && s[1] == 'f' && s[2]) {
			s += 2;
			continue;
		}
		if (s[0] == '\\' && s[1] == '(' && s[2] && s[3]) {
			s += 3;
			text[n++] = ' ';
			continue;
		}
		if (s[0] == '\\' && s[1]) {
			s++;
			text[n++] = *s;
			continue;
		}
		text[n++] = *s;
	}
	text[n++] = ' ';
	text[n] = 0;
}

/* Whether word occurs in text with no letter or digit right before or after it. */
static bool man_has_word(const char *text, const char *word)
{
	size_t n = strlen(word);

	for (const char *s = strstr(text, word); s; s = strstr(s + 1, word)) {
		bool before = s > text && isalnum((unsigned char)s[-1]);
		bool after = isalnum((unsigned char)s[n]);

		if (!before && !after)
			return true;
	}
	return false;
}

static void test_man_page(void)
{
	static ManKey keys[128];
	size_t n_keys = 0, n_items;
	const ConfigItem *items = config_items(&n_items);
	FILE *f = fopen(MAN_PATH, "re");
	char line[1024], section[32] = "";
	size_t first = 0; /* the keys of the paragraph being read: [first, n_keys) */

	check(f != NULL);
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, ".SH", 3) == 0 || strncmp(line, ".SS", 3) == 0) {
			const char *b = strchr(line, '[');

			section[0] = 0;
			if (strncmp(line, ".SS [", 5) == 0 && b)
				snprintf(section, sizeof(section), "%.*s",
				         (int)strcspn(b + 1, " ]"), b + 1);
			first = n_keys;
			continue;
		}
		if (strncmp(line, ".TP", 3) == 0) {
			first = n_keys;
			continue;
		}
		/* ".BI "key = " value" right after .TP names the keys of the paragraph. */
		if (section[0] && first == n_keys && strncmp(line, ".BI \"", 5) == 0 &&
		    strstr(line, " = ")) {
			for (const char *s = line + 4; (s = strstr(s, " = ")); s += 3) {
				const char *k = s;

				while (k > line && (islower((unsigned char)k[-1]) || k[-1] == '_'))
					k--;
				if (k == s || n_keys >= ELEMENTSOF(keys))
					continue;
				snprintf(keys[n_keys].section, sizeof(keys[n_keys].section), "%s",
				         section);
				snprintf(keys[n_keys].key, sizeof(keys[n_keys].key), "%.*s",
				         (int)(s - k), k);
				n_keys++;
			}
			continue;
		}
		for (size_t i = first; i < n_keys; i++)
			man_append(keys[i].text, sizeof(keys[i].text), line);
	}
	fclose(f);
	check(n_keys > 0);

	for (size_t i = 0; i < n_items; i++) {
		const ConfigItem *item = &items[i];
		ManKey *m = NULL;

		check(item->doc && item->doc[0]);
		for (size_t j = 0; j < n_keys; j++)
			if (streq(keys[j].section, item->section) && streq(keys[j].key, item->key))
				m = &keys[j];
		if (!m) {
			fprintf(stderr, "  [%s] %s is not in gatewayd.conf(5)\n", item->section,
			        item->key);
			test_failures++;
			continue;
		}
		m->seen = true;
		if (item->def && strcasestr(m->text, "default") &&
		    !man_has_word(m->text, item->def)) {
			fprintf(stderr,
			        "  [%s] %s: the default '%s' is not what gatewayd.conf(5) says: "
			        "%s\n",
			        item->section, item->key, item->def, m->text);
			test_failures++;
		}
	}
	for (size_t j = 0; j < n_keys; j++)
		if (!keys[j].seen) {
			fprintf(stderr, "  [%s] %s is in gatewayd.conf(5) but not in the table\n",
			        keys[j].section, keys[j].key);
			test_failures++;
		}
}

/* Every default of the table parses as its own key would in a file, and gives what a file
 * without the key gives: a table row whose default drifted from its range fails here. */
static void test_table_defaults(void)
{
	size_t n_items;
	const ConfigItem *items = config_items(&n_items);

	for (size_t i = 0; i < n_items; i++) {
		const ConfigItem *item = &items[i];
		char text[512];
		Config *c;
		char *err;

		if (!item->def)
			continue;
		if (streq(item->section, "modem"))
			snprintf(text, sizeof(text), "[modem m]\ndevice = /dev/null\n%s = %s\n",
			         item->key, item->def);
		else if (streq(item->section, "contact"))
			snprintf(text, sizeof(text), "[contact c]\nnumber = +4912345678\n%s = %s\n",
			         item->key, item->def);
		else if (streq(item->section, "role"))
			snprintf(text, sizeof(text),
			         "[contact c]\nnumber = +4912345678\n[role r]\ncontacts = c\n%s = "
			         "%s\n",
			         item->key, item->def);
		else if (streq(item->section, "heartbeat"))
			snprintf(text, sizeof(text), "[heartbeat h]\nto = +4912345678\n%s = %s\n",
			         item->key, item->def);
		else
			snprintf(text, sizeof(text), "[%s]\n%s = %s\n", item->section, item->key,
			         item->def);
		if (load(text, &c, &err) < 0) {
			fprintf(stderr, "  [%s] %s = %s: %s\n", item->section, item->key, item->def,
			        err ? err : "(null)");
			test_failures++;
		}
		free(err);
		config_free(c);
	}
}

int main(void)
{
	int fd = mkstemp(path);

	if (fd < 0)
		return 77;
	close(fd);
	run(test_defaults);
	run(test_design_example);
	run(test_errors);
	run(test_bom_and_durations);
	run(test_missing_file);
	run(test_helpers);
	run(test_listeners);
	run(test_table_defaults);
	run(test_man_page);
	run(test_rotation);
	run(test_rotation_dst);
	run(test_rotation_utc);
	run(test_drill_schedule);
	unlink(path);
	return test_exit();
}
