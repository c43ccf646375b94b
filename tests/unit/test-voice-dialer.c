/* test-voice-dialer: the dialer (voicefallback/dialer.c) against modems the simulator does not
 * play, scripted here on a pseudo-terminal in the same event loop: no +CLCC reports (AT+CLCC
 * polled), no AT+CLCC at all (AT+CPAS polled), echo that stays on, ATH refused (AT+CHUP), ATD
 * whose result never comes, a modem that goes mute in the middle of a call, and a call that will
 * not hang up. Each checks the outcome, the report and the commands the modem received. Every
 * wait is bounded; about 16 s. */
#include "dialer.h" /* first: the header compiles on its own */

#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <termios.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "test.h"
#include "util.h"

#define NUMBER "+32470000001"
#define MSEC   USEC_PER_MSEC
#define SEC    USEC_PER_SEC

static sd_event *event;

/* A scripted modem: its behaviour flags, and what it was told. */
typedef struct Fake {
	int master, slave;
	char path[128];
	sd_event_source *io, *end_timer;
	char line[256];
	size_t len;

	bool echo, sticky_echo;
	bool clcc_urc_ok, ddet_ok, clcc_ok, cpas_ok, ath_ok;
	bool atd_holds;        /* never answers ATD */
	bool mute_after_atd;   /* answers nothing after ATD's OK */
	bool call_sticks;      /* hang-ups are answered OK but the call stays */
	const char *atd_reply; /* NULL: OK */
	int answer_after_ms;   /* -1: never */
	int end_after_ms;      /* -1: never; else the call ends with end_result, unsolicited */
	const char *end_result;

	bool muted;
	bool call_up;
	uint64_t atd_mono;
	char log[4096]; /* commands received, joined by '|' */
} Fake;

static Fake fake;

static void fake_say(const char *s)
{
	size_t len = strlen(s);

	if (write(fake.master, s, len) != (ssize_t)len)
		fprintf(stderr, "# fake: short write\n");
}

static void fake_final(const char *result)
{
	char buf[128];

	snprintf(buf, sizeof(buf), "\r\n%s\r\n", result);
	fake_say(buf);
}

static int fake_stat(void)
{
	uint64_t el = (now_monotonic_usec() - fake.atd_mono) / MSEC;

	if (el < 200)
		return 2;
	if (fake.answer_after_ms >= 0 && el >= (uint64_t)fake.answer_after_ms)
		return 0;
	return 3;
}

static int fake_on_end(sd_event_source *s, uint64_t usec, void *userdata)
{
	if (fake.call_up) {
		fake.call_up = false;
		fake_final(fake.end_result);
	}
	return 0;
}

static void fake_command(const char *cmd)
{
	size_t n = strlen(fake.log);
	char buf[300];

	snprintf(fake.log + n, sizeof(fake.log) - n, "%s%s", n ? "|" : "", cmd);
	if (fake.muted)
		return;
	if (fake.echo) {
		snprintf(buf, sizeof(buf), "%s\r", cmd);
		fake_say(buf);
	}
	if (streq(cmd, "AT") || streq(cmd, "AT+CMEE=1")) {
		fake_final("OK");
	} else if (streq(cmd, "ATE0")) {
		if (!fake.sticky_echo)
			fake.echo = false;
		fake_final("OK");
	} else if (streq(cmd, "AT+CLCC=1") || streq(cmd, "AT+CLCC=0")) {
		fake_final(fake.clcc_urc_ok ? "OK" : "ERROR");
	} else if (streq(cmd, "AT+DDET=1") || streq(cmd, "AT+DDET=0")) {
		fake_final(fake.ddet_ok ? "OK" : "ERROR");
	} else if (strncmp(cmd, "ATD", 3) == 0) {
		if (fake.call_up) { /* a modem already in a call, like the SIM800 */
			fake_final("+CME ERROR: 3");
			return;
		}
		fake.call_up = true;
		fake.atd_mono = now_monotonic_usec();
		if (fake.end_after_ms >= 0)
			sd_event_add_time_relative(event, &fake.end_timer, CLOCK_MONOTONIC,
			                           (uint64_t)fake.end_after_ms * MSEC, 1000,
			                           fake_on_end, NULL);
		if (fake.atd_holds)
			return;
		if (fake.atd_reply && !streq(fake.atd_reply, "OK"))
			fake.call_up = false;
		fake_final(fake.atd_reply ? fake.atd_reply : "OK");
		if (fake.mute_after_atd)
			fake.muted = true;
	} else if (streq(cmd, "AT+CLCC")) {
		if (!fake.clcc_ok) {
			fake_final("+CME ERROR: 4");
			return;
		}
		if (fake.call_up) {
			snprintf(buf, sizeof(buf), "\r\n+CLCC: 1,0,%d,0,0,\"%s\",145\r\n",
			         fake_stat(), NUMBER);
			fake_say(buf);
		}
		fake_final("OK");
	} else if (streq(cmd, "AT+CPAS")) {
		if (!fake.cpas_ok) {
			fake_final("ERROR");
			return;
		}
		fake_say(fake.call_up ? "\r\n+CPAS: 4\r\n" : "\r\n+CPAS: 0\r\n");
		fake_final("OK");
	} else if (streq(cmd, "ATH") || streq(cmd, "AT+CHUP")) {
		if (streq(cmd, "ATH") && !fake.ath_ok) {
			fake_final("ERROR");
			return;
		}
		if (!fake.call_sticks)
			fake.call_up = false;
		fake_final("OK");
	} else
		fake_final("ERROR");
}

static int fake_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	char buf[256];
	ssize_t k = read(fd, buf, sizeof(buf));

	for (ssize_t i = 0; i < k; i++) {
		if (buf[i] == '\r') {
			fake.line[fake.len] = 0;
			if (fake.len)
				fake_command(fake.line);
			fake.len = 0;
		} else if (buf[i] >= 0x20 && fake.len < sizeof(fake.line) - 1)
			fake.line[fake.len++] = buf[i];
	}
	return 0;
}

/* A new scripted modem that answers everything, with +CLCC polling and no reports. */
static bool fake_start(void)
{
	struct termios raw;

	memset(&fake, 0, sizeof(fake));
	if (openpty(&fake.master, &fake.slave, fake.path, NULL, NULL) < 0) {
		printf("# openpty: %s\n", strerror(errno));
		return false;
	}
	tcgetattr(fake.slave, &raw);
	cfmakeraw(&raw);
	tcsetattr(fake.slave, TCSANOW, &raw);
	fcntl(fake.master, F_SETFL, O_NONBLOCK);
	fake.echo = true;
	fake.clcc_ok = fake.cpas_ok = fake.ath_ok = true;
	fake.answer_after_ms = fake.end_after_ms = -1;
	return sd_event_add_io(event, &fake.io, fake.master, EPOLLIN, fake_on_io, NULL) >= 0;
}

static void fake_stop(void)
{
	fake.io = sd_event_source_disable_unref(fake.io);
	fake.end_timer = sd_event_source_disable_unref(fake.end_timer);
	close(fake.master);
	close(fake.slave); /* held like the simulator does, so the master never reads EIO */
}

static struct {
	bool done;
	DialerReport r;
	char error[DIALER_ERROR_MAX];
	uint64_t t0, done_mono;
} res;

static void on_done(Dialer *d, const DialerReport *r, void *userdata)
{
	res.done = true;
	res.r = *r;
	snprintf(res.error, sizeof(res.error), "%s", r->error);
	res.r.error = res.error;
	res.r.dtmf = NULL;
	res.r.number = NULL;
	res.done_mono = now_monotonic_usec();
	printf("# %s: %s%s%s after %.2f s, %s\n    modem got: %s\n", (const char *)userdata,
	       call_outcome_to_string(r->outcome), r->error[0] ? " - " : "", r->error,
	       (double)(res.done_mono - res.t0) / SEC,
	       r->hung_up ? "hung up" : "hang-up not confirmed", fake.log);
}

/* Runs one call against the fake; false if it did not end within timeout_ms. */
static bool run_call(const DialerOptions *o, const char *label, int timeout_ms)
{
	Dialer *d = NULL;
	uint64_t end = now_monotonic_usec() + (uint64_t)timeout_ms * MSEC;

	memset(&res, 0, sizeof(res));
	res.t0 = now_monotonic_usec();
	if (dialer_new(event, fake.path, "fake", &d) < 0 ||
	    dialer_call(d, NUMBER, o, on_done, (void *)label) < 0) {
		dialer_free(d);
		return false;
	}
	while (!res.done && now_monotonic_usec() < end)
		sd_event_run(event, 20 * MSEC);
	dialer_free(d);
	return res.done;
}

static const DialerOptions quick = {
        .ring_timeout_usec = 3 * SEC,
        .hold_usec = 1 * SEC,
        .command_timeout_usec = 300 * MSEC,
};

/* No +CLCC reports, echo that ATE0 does not stop, ATH refused: polled, answered, AT+CHUP. */
static void test_polled_answered(void)
{
	if (!fake_start())
		return;
	fake.sticky_echo = true;
	fake.ath_ok = false;
	fake.answer_after_ms = 700;
	check(run_call(&quick, "polled, answered", 6000));
	check_int(res.r.outcome, CALL_ANSWERED);
	check(res.r.hung_up);
	check_str(res.r.error, "");
	check(res.r.duration_usec >= 900 * MSEC && res.r.duration_usec < 1500 * MSEC);
	/* answer seen within a poll interval and a bit */
	check(res.r.answered_at - res.r.dialed_at < 1400 * MSEC);
	check(strstr(fake.log, "AT+CLCC=1|AT+DDET=1|ATD+32470000001;|AT+CLCC|") != NULL);
	check(strstr(strstr(fake.log, "ATD"), "|ATH|AT+CHUP|AT+CLCC") != NULL);
	/* nothing to switch off: the reports were refused */
	check(strstr(fake.log, "AT+CLCC=0") == NULL);
	fake_stop();
}

/* A call left up on the modem by a gateway killed mid-call is hung up before dialling. */
static void test_leftover_call(void)
{
	if (!fake_start())
		return;
	fake.call_up = true;
	fake.answer_after_ms = 300;
	check(run_call(&quick, "leftover call", 6000));
	check_int(res.r.outcome, CALL_ANSWERED);
	check(strstr(fake.log, "ATH|AT+CHUP|AT+CLCC=1|AT+DDET=1|ATD+32470000001;") != NULL);
	fake_stop();
}

/* No AT+CLCC: AT+CPAS polled; the call ends with BUSY. */
static void test_cpas_busy(void)
{
	if (!fake_start())
		return;
	fake.clcc_ok = false;
	fake.end_after_ms = 1200;
	fake.end_result = "BUSY";
	check(run_call(&quick, "CPAS, busy", 6000));
	check_int(res.r.outcome, CALL_BUSY);
	check(res.r.hung_up);
	check(strstr(fake.log, "|AT+CLCC|AT+CPAS|") != NULL);
	check(strstr(fake.log, "|ATH|AT+CPAS") != NULL);
	fake_stop();
}

/* AT+CPAS only: rings out at the ring timeout (no way to tell alerting: no_answer). */
static void test_cpas_no_answer(void)
{
	if (!fake_start())
		return;
	fake.clcc_ok = false;
	check(run_call(&quick, "CPAS, no answer", 6000));
	check_int(res.r.outcome, CALL_NO_ANSWER);
	check(res.done_mono - res.t0 >= 3 * SEC);
	check(res.r.hung_up);
	check(!fake.call_up);
	fake_stop();
}

/* Polled: the call disappears while alerting, with no final result: rejected. */
static void test_polled_disappears(void)
{
	if (!fake_start())
		return;
	fake.end_after_ms = 1000;
	fake.end_result = "+CREG: 1"; /* the call goes, and no NO CARRIER comes */
	check(run_call(&quick, "polled, gone while alerting", 6000));
	check_int(res.r.outcome, CALL_REJECTED);
	check(res.r.hung_up);
	fake_stop();
}

/* ATD answered with ERROR or NO DIALTONE: failed with the modem's words, hung up anyway. */
static void test_atd_refused(void)
{
	if (!fake_start())
		return;
	fake.atd_reply = "ERROR";
	check(run_call(&quick, "ATD ERROR", 4000));
	check_int(res.r.outcome, CALL_FAILED);
	check_str(res.r.error, "ERROR");
	check(strstr(fake.log, "|ATH|") != NULL);
	fake_stop();

	if (!fake_start())
		return;
	fake.atd_reply = "NO DIALTONE";
	check(run_call(&quick, "ATD NO DIALTONE", 4000));
	check_int(res.r.outcome, CALL_FAILED);
	check_str(res.r.error, "NO DIALTONE");
	fake_stop();
}

/* A modem that keeps ATD's result until the call connects: the ring timeout ends it. */
static void test_atd_held(void)
{
	if (!fake_start())
		return;
	fake.atd_holds = true;
	check(run_call(&quick, "ATD held", 6000));
	check_int(res.r.outcome, CALL_NO_ANSWER);
	check(res.r.hung_up);
	check(!fake.call_up);
	fake_stop();
}

/* Mute after ATD's OK: polls time out, failed; the hang-up times out too; the port is freed. */
static void test_mute(void)
{
	if (!fake_start())
		return;
	fake.mute_after_atd = true;
	check(run_call(&quick, "mute after ATD", 8000));
	check_int(res.r.outcome, CALL_FAILED);
	check(strstr(res.r.error, "stopped answering") != NULL);
	check(strstr(res.r.error, "hang-up not confirmed") != NULL);
	check(!res.r.hung_up);
	check(res.done_mono - res.t0 < 4 * SEC);
	fake_stop();
}

/* Hang-ups are answered OK but the call stays listed: retried, then reported not hung up. */
static void test_call_sticks(void)
{
	if (!fake_start())
		return;
	fake.call_sticks = true;
	fake.answer_after_ms = 300;
	check(run_call(&quick, "call sticks", 6000));
	check_int(res.r.outcome, CALL_ANSWERED);
	check(!res.r.hung_up);
	check(strstr(res.r.error, "still up") != NULL);
	check(strstr(fake.log, "|ATH|AT+CLCC|AT+CHUP|AT+CLCC|ATH|AT+CLCC") != NULL);
	fake_stop();
}

/* A port that is not there: failed at once, from the loop, with the reason. */
static void test_no_port(void)
{
	Dialer *d = NULL;

	memset(&res, 0, sizeof(res));
	memset(&fake, 0, sizeof(fake));
	res.t0 = now_monotonic_usec();
	check_int(dialer_new(event, "/nonexistent/ttyUSB7", NULL, &d), 0);
	check_int(dialer_call(d, "0470123456", NULL, on_done, "no port"), 0);
	check(!res.done); /* never from inside dialer_call() */
	check(dialer_is_busy(d));
	for (int i = 0; i < 20 && !res.done; i++)
		sd_event_run(event, 10 * MSEC);
	check(res.done);
	check_int(res.r.outcome, CALL_FAILED);
	check(strstr(res.error, "cannot open /nonexistent/ttyUSB7") != NULL);
	check(!dialer_is_busy(d));
	check_int(dialer_set_device(d, "/dev/null"), 0);
	dialer_free(d);

	check(dialer_number_is_valid("+32470000001"));
	check(dialer_number_is_valid("112"));
	check(!dialer_number_is_valid("+"));
	check(!dialer_number_is_valid("12"));
	check(!dialer_number_is_valid("+32 470"));
	check(!dialer_number_is_valid("123;H"));
	check(!dialer_number_is_valid(NULL));
}

int main(void)
{
	log_setup("test-voice-dialer");
	if (getenv("TEST_DEBUG"))
		log_set_max_level(LOG_DEBUG);
	else
		log_set_max_level(LOG_ERR);
	if (sd_event_new(&event) < 0)
		return EXIT_FAILURE;
	run(test_polled_answered);
	run(test_leftover_call);
	run(test_cpas_busy);
	run(test_cpas_no_answer);
	run(test_polled_disappears);
	run(test_atd_refused);
	run(test_atd_held);
	run(test_mute);
	run(test_call_sticks);
	run(test_no_port);
	sd_event_unref(event);
	return test_exit();
}
