/* Unit tests of config: every error names file:line and the cause; defaults are filled. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
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
	static const char text[] = "[node]\nname = a\nstate_dir = /var/lib/gatewayd\n\n"
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

	check(phone_number_is_valid("+32470123456"));
	check(phone_number_is_valid("+123456"));
	check(!phone_number_is_valid("+12345"));
	check(!phone_number_is_valid("+1234567890123456"));
	check(!phone_number_is_valid("32470123456"));
	check(!phone_number_is_valid("+3247012345a"));
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
	run(test_rotation);
	unlink(path);
	return test_exit();
}
