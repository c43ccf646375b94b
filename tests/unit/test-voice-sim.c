/* test-voice-sim: the dialer (voicefallback/dialer.c) end to end against the modem simulator
 * (tests/modemsim) on a pseudo-terminal: answered and held then hung up, DTMF acknowledgment,
 * busy, no answer at the ring timeout, rejected, failed (NO CARRIER, +CME ERROR, a hung modem),
 * the far end hanging up, a cancelled call and a modem unplugged in the middle of a call. After
 * each call the simulator's calls.jsonl and its state must show the call ended and no call up,
 * and our process must hold no fd on the port. One Dialer serves every call, reopening the port.
 * Every wait is bounded; about 28 s. Exits 77 when python3 or the simulator is missing.
 * KEEP_SIM_DIR=1 keeps the simulator's logs; TEST_DEBUG=1 shows the AT dialogue. */
#include "call.h" /* first: the header compiles on its own */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dialer.h"
#include "log.h"
#include "macro.h"
#include "test.h"
#include "util.h"

#ifndef MODEMSIM
#define MODEMSIM "tests/modemsim/modemsim.py"
#endif
#define PYTHON "/usr/bin/python3"
#define NUMBER "+32470000001"
#define SEC    USEC_PER_SEC
#define MSEC   USEC_PER_MSEC

static char sim_dir[] = "/tmp/test-voice-sim.XXXXXX";
static pid_t sim_pid = -1;
static sd_event *event;
static Dialer *dialer;

static void sim_path(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", sim_dir, name);
}

static int sim_start(void)
{
	uint64_t end = now_monotonic_usec() + 15 * SEC;
	char ready[512], log_path[512];

	sim_path(ready, sizeof(ready), "ready");
	sim_path(log_path, sizeof(log_path), "sim.log");
	sim_pid = fork();
	if (sim_pid < 0)
		return -errno;
	if (sim_pid == 0) {
		int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		execl(PYTHON, "python3", MODEMSIM, "--dir", sim_dir, "--modem", "gsm0",
		      (char *)NULL);
		_exit(127);
	}
	while (access(ready, F_OK) < 0) {
		if (now_monotonic_usec() > end || waitpid(sim_pid, NULL, WNOHANG) == sim_pid)
			return -ETIMEDOUT;
		usleep(20 * 1000);
	}
	return 0;
}

static void sim_stop(void)
{
	uint64_t end = now_monotonic_usec() + 5 * SEC;
	DIR *d;

	if (sim_pid > 0) {
		kill(sim_pid, SIGTERM);
		while (waitpid(sim_pid, NULL, WNOHANG) != sim_pid) {
			if (now_monotonic_usec() > end) {
				kill(sim_pid, SIGKILL);
				waitpid(sim_pid, NULL, 0);
				break;
			}
			usleep(20 * 1000);
		}
		sim_pid = -1;
	}
	if (getenv("KEEP_SIM_DIR") || test_failures) {
		fprintf(stderr, "# simulator files kept in %s\n", sim_dir);
		return;
	}
	d = opendir(sim_dir);
	if (d) {
		struct dirent *de;

		while ((de = readdir(d)))
			if (!streq(de->d_name, ".") && !streq(de->d_name, ".."))
				unlinkat(dirfd(d), de->d_name, 0);
		closedir(d);
		rmdir(sim_dir);
	}
}

/* One request on the control socket; returns the parsed reply (NULL on any failure). */
static json_t *sim_vrequest(const char *format, va_list ap) _printf_(1, 0);
static json_t *sim_vrequest(const char *format, va_list ap)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char line[1024], reply[8192] = "";
	size_t n = 0, len;
	json_t *j;
	int fd;

	vsnprintf(line, sizeof(line) - 1, format, ap);
	len = strlen(line);
	line[len++] = '\n';
	sim_path(sa.sun_path, sizeof(sa.sun_path), "control.sock");
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    write(fd, line, len) != (ssize_t)len) {
		close(fd);
		return NULL;
	}
	while (n < sizeof(reply) - 1 && !memchr(reply, '\n', n)) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t k;

		if (poll(&p, 1, 5000) != 1)
			break;
		k = read(fd, reply + n, sizeof(reply) - 1 - n);
		if (k <= 0)
			break;
		n += (size_t)k;
		reply[n] = 0;
	}
	close(fd);
	j = json_loads(reply, 0, NULL);
	if (!j || !json_is_true(json_object_get(j, "ok"))) {
		fprintf(stderr, "# control %.*s -> %s\n", (int)len - 1, line, reply);
		json_decref(j);
		return NULL;
	}
	return j;
}

static json_t *sim_request(const char *format, ...) _printf_(1, 2);
static json_t *sim_request(const char *format, ...)
{
	va_list ap;
	json_t *j;

	va_start(ap, format);
	j = sim_vrequest(format, ap);
	va_end(ap);
	return j;
}

/* Whether the simulator answered "ok": true. */
static bool sim_control(const char *format, ...) _printf_(1, 2);
static bool sim_control(const char *format, ...)
{
	va_list ap;
	json_t *j;
	bool ok;

	va_start(ap, format);
	j = sim_vrequest(format, ap);
	va_end(ap);
	ok = j != NULL;
	json_decref(j);
	return ok;
}

/* The simulator's view of the call on gsm0: "none" when no call is up. */
static const char *sim_call_state(char buf[static 32])
{
	json_t *j = sim_request("{\"cmd\": \"stats\", \"modem\": \"gsm0\"}");
	json_t *call = j ? json_object_get(j, "call") : NULL;

	snprintf(buf, 32, "%s",
	         !j                     ? "(no answer)"
	         : json_is_string(call) ? json_string_value(call)
	                                : "none");
	json_decref(j);
	return buf;
}

/* calls.jsonl, records from index skip on: a JSON array (the caller decrefs). */
static json_t *calls_log(size_t skip)
{
	char path[512], line[4096];
	json_t *all = json_array();
	size_t i = 0;
	FILE *f;

	sim_path(path, sizeof(path), "calls.jsonl");
	f = fopen(path, "re");
	if (!f)
		return all;
	while (fgets(line, sizeof(line), f)) {
		json_t *rec = json_loads(line, 0, NULL);

		if (rec && i++ >= skip)
			json_array_append(all, rec);
		json_decref(rec);
	}
	fclose(f);
	return all;
}

static size_t calls_count(void)
{
	json_t *all = calls_log(0);
	size_t n = json_array_size(all);

	json_decref(all);
	return n;
}

/* The first record from skip on with this event (and, if field is given, field == value). */
static json_t *calls_find(json_t *recs, const char *event_name, const char *field,
                          const char *value)
{
	size_t i;
	json_t *rec;

	json_array_foreach(recs, i, rec)
	{
		const char *e = json_string_value(json_object_get(rec, "event"));
		const char *v = field ? json_string_value(json_object_get(rec, field)) : NULL;

		if (e && streq(e, event_name) && (!field || (v && streq(v, value))))
			return rec;
	}
	return NULL;
}

static double rec_number(json_t *rec, const char *field)
{
	return rec ? json_number_value(json_object_get(rec, field)) : -1;
}

static const char *rec_string(json_t *rec, const char *field)
{
	const char *s = rec ? json_string_value(json_object_get(rec, field)) : NULL;

	return s ? s : "(none)";
}

/* Open fds of this process that point at the pty behind DIR/gsm0 (the dialer must hold none
 * between calls). */
static int fds_on_port(void)
{
	char link[512], target[256], fdpath[300], fdtarget[256];
	int n = 0;
	ssize_t k;
	DIR *d;
	struct dirent *de;

	sim_path(link, sizeof(link), "gsm0");
	k = readlink(link, target, sizeof(target) - 1);
	if (k <= 0)
		return -1;
	target[k] = 0;
	d = opendir("/proc/self/fd");
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%s", de->d_name);
		k = readlink(fdpath, fdtarget, sizeof(fdtarget) - 1);
		if (k > 0) {
			fdtarget[k] = 0;
			if (streq(fdtarget, target))
				n++;
		}
	}
	closedir(d);
	return n;
}

/* ---- running a call ---- */

static struct {
	bool done;
	int calls;
	DialerReport r;
	char error[DIALER_ERROR_MAX];
	char dtmf[DIALER_DTMF_MAX + 1];
	uint64_t done_mono;
} res;

static void on_done(Dialer *d, const DialerReport *r, void *userdata)
{
	res.done = true;
	res.calls++;
	res.r = *r;
	snprintf(res.error, sizeof(res.error), "%s", r->error);
	snprintf(res.dtmf, sizeof(res.dtmf), "%s", r->dtmf);
	res.r.error = res.error;
	res.r.dtmf = res.dtmf;
	res.r.number = NULL;
	res.done_mono = now_monotonic_usec();
	printf("# %s: %s%s%s, duration %.2f s, dtmf '%s'%s, %s\n", (const char *)userdata,
	       call_outcome_to_string(r->outcome), r->error[0] ? " - " : "", r->error,
	       (double)r->duration_usec / SEC, r->dtmf, r->acknowledged_by_dtmf ? " (ack)" : "",
	       r->hung_up ? "hung up" : "hang-up not confirmed");
}

/* Runs the loop until the call reports, or timeout_ms. */
static bool wait_done(int timeout_ms)
{
	uint64_t end = now_monotonic_usec() + (uint64_t)timeout_ms * MSEC;

	while (!res.done && now_monotonic_usec() < end)
		if (sd_event_run(event, 50 * MSEC) < 0)
			return false;
	return res.done;
}

static void run_for(int ms)
{
	uint64_t end = now_monotonic_usec() + (uint64_t)ms * MSEC;

	while (!res.done && now_monotonic_usec() < end)
		sd_event_run(event, 10 * MSEC);
}

static bool start_call(const DialerOptions *o, const char *label)
{
	memset(&res, 0, sizeof(res));
	return dialer_call(dialer, NUMBER, o, on_done, (void *)label) == 0;
}

static bool call(const DialerOptions *o, const char *label, int timeout_ms)
{
	if (!start_call(o, label))
		return false;
	return wait_done(timeout_ms);
}

/* After every call: no call up in the simulator, the port closed by us, one report. */
static void check_call_over(const char *label)
{
	char state[32];

	check_int(res.calls, 1);
	check(!dialer_is_busy(dialer));
	run_for(100); /* let a late report of the simulator's show, if any */
	sim_call_state(state);
	if (!streq(state, "none"))
		fprintf(stderr, "# %s: the simulator still has a call: %s\n", label, state);
	check_str(state, "none");
	check_int(fds_on_port(), 0);
}

static const DialerOptions fast = {
        .ring_timeout_usec = 10 * SEC,
        .hold_usec = 2 * SEC,
        .command_timeout_usec = 2 * SEC,
        .alert_id = "0123456789abcdef0123456789abcdef",
};

/* ---- the scenarios ---- */

static void test_answered(void)
{
	size_t mark = calls_count();
	json_t *recs, *hangup;

	check(sim_control(
	        "{\"cmd\": \"call_outcome\", \"modem\": \"gsm0\", \"outcome\": \"answer\", "
	        "\"after\": 1.0}"));
	check(call(&fast, "answered", 15000));
	check_int(res.r.outcome, CALL_ANSWERED);
	check_str(res.r.error, "");
	check(res.r.hung_up);
	check(!res.r.acknowledged_by_dtmf);
	check_int(res.r.dtmf_digit, 0);
	check(res.r.duration_usec >= 1900 * MSEC && res.r.duration_usec < 3000 * MSEC);
	check(res.r.started_at > 0 && res.r.dialed_at >= res.r.started_at);
	check(res.r.answered_at >= res.r.dialed_at + 800 * MSEC);
	check(res.r.ended_at >= res.r.answered_at + 1900 * MSEC);
	check_call_over("answered");

	recs = calls_log(mark);
	check(calls_find(recs, "dial", "number", NUMBER) != NULL);
	check(calls_find(recs, "state", "state", "alerting") != NULL);
	check(calls_find(recs, "outcome", "outcome", "answered") != NULL);
	hangup = calls_find(recs, "hangup", NULL, NULL);
	check_str(rec_string(hangup, "by"), "local");
	check_str(rec_string(hangup, "state"), "active");
	check(rec_number(hangup, "duration") >= 1.9 && rec_number(hangup, "duration") < 3.0);
	json_decref(recs);
}

static void test_dtmf(void)
{
	size_t mark = calls_count();
	DialerOptions o = fast;
	json_t *recs;

	/* the far end presses 1 half a second after answering: acknowledged, held to the end */
	o.hold_usec = 3 * SEC;
	check(sim_control(
	        "{\"cmd\": \"call_outcome\", \"modem\": \"gsm0\", \"outcome\": \"answer\", "
	        "\"after\": 0.5, \"dtmf\": \"1\"}"));
	check(call(&o, "dtmf 1", 15000));
	check_int(res.r.outcome, CALL_ANSWERED);
	check(res.r.acknowledged_by_dtmf);
	check_int(res.r.dtmf_digit, '1');
	check_str(res.r.dtmf, "1");
	check(res.r.duration_usec >= 2900 * MSEC);
	check(res.r.hung_up);
	check_call_over("dtmf 1");
	recs = calls_log(mark);
	check(calls_find(recs, "dtmf", "digits", "1") != NULL);
	check_str(rec_string(calls_find(recs, "hangup", NULL, NULL), "by"), "local");
	json_decref(recs);

	/* another digit is reported, not taken for the acknowledgment */
	check(sim_control(
	        "{\"cmd\": \"call_outcome\", \"modem\": \"gsm0\", \"outcome\": \"answer\", "
	        "\"after\": 0.5, \"dtmf\": \"52\"}"));
	o.hold_usec = 2 * SEC;
	check(call(&o, "dtmf 52", 15000));
	check_int(res.r.outcome, CALL_ANSWERED);
	check(!res.r.acknowledged_by_dtmf);
	check_int(res.r.dtmf_digit, '5');
	check_str(res.r.dtmf, "52");
	check_call_over("dtmf 52");

	/* hangup_on_ack: the call ends at the digit, long before the hold time */
	o.hold_usec = 20 * SEC;
	o.hangup_on_ack = true;
	check(sim_control(
	        "{\"cmd\": \"call_outcome\", \"modem\": \"gsm0\", \"outcome\": \"answer\", "
	        "\"after\": 0.5, \"dtmf\": \"1\"}"));
	check(call(&o, "dtmf 1, hang up on ack", 10000));
	check_int(res.r.outcome, CALL_ANSWERED);
	check(res.r.acknowledged_by_dtmf);
	check(res.r.duration_usec >= 300 * MSEC && res.r.duration_usec < 2 * SEC);
	check_call_over("dtmf 1, hang up on ack");
}

static void test_busy(void)
{
	size_t mark = calls_count();
	json_t *recs;

	check(sim_control("{\"cmd\": \"call_outcome\", \"modem\": \"gsm0\", \"outcome\": \"busy\", "
	                  "\"after\": 1.0}"));
	check(call(&fast, "busy", 10000));
	check_int(res.r.outcome, CALL_BUSY);
	check_int(res.r.duration_usec, 0);
	check_int(res.r.answered_at, 0);
	check(res.r.hung_up);
	check_call_over("busy");
	recs = calls_log(mark);
	check(calls_find(recs, "outcome", "outcome", "busy") != NULL);
	json_decref(recs);
}

static void test_no_answer(void)
{
	size_t mark = calls_count();
	DialerOptions o = fast;
	json_t *recs, *hangup;
	uint64_t t0 = now_monotonic_usec();

	o.ring_timeout_usec = 3 * SEC;
	check(sim_control("{\"cmd\": \"call_outcome\", \"modem\": \"gsm0\", \"outcome\": "
	                  "\"no_answer\"}"));
	check(call(&o, "no answer", 10000));
	check_int(res.r.outcome, CALL_NO_ANSWER);
	check(res.done_mono - t0 >= 3 * SEC && res.done_mono - t0 < 5 * SEC);
	check(res.r.hung_up);
	check_call_over("no answer");
	recs = calls_log(mark);
	hangup = calls_find(recs, "hangup", NULL, NULL);
	check_str(rec_string(hangup, "by"), "local");
	check_str(rec_string(hangup, "state"), "alerting");
	check(rec_number(hangup, "elapsed") >= 2.9 && rec_number(hangup, "elapsed") < 4.0);
	check(calls_find(recs, "outcome", "outcome", "no_answer") != NULL);
	json_decref(recs);
}

static void test_rejected(void)
{
	check(sim_control(
	        "{\"cmd\": \"call_outcome\", \"modem\": \"gsm0\", \"outcome\": \"reject\", "
	        "\"after\": 1.0}"));
	check(call(&fast, "rejected", 10000));
	check_int(res.r.outcome, CALL_REJECTED);
	check(res.r.hung_up);
	check_call_over("rejected");
}

static void test_failed(void)
{
	/* NO CARRIER before the phone rang */
	check(sim_control("{\"cmd\": \"call_outcome\", \"modem\": \"gsm0\", \"outcome\": "
	                  "\"no_carrier\", \"after\": 0.5}"));
	check(call(&fast, "no carrier", 10000));
	check_int(res.r.outcome, CALL_FAILED);
	check_str(res.r.error, "NO CARRIER");
	check(res.r.hung_up);
	check_call_over("no carrier");

	/* ATD refused: a SIM locked by its PIN answers +CME ERROR: 11 */
	check(sim_control("{\"cmd\": \"pin\", \"modem\": \"gsm0\", \"required\": true}"));
	check(call(&fast, "sim locked", 10000));
	check_int(res.r.outcome, CALL_FAILED);
	check_str(res.r.error, "+CME ERROR: 11");
	check_call_over("sim locked");
	check(sim_control("{\"cmd\": \"pin\", \"modem\": \"gsm0\", \"required\": false}"));

	/* not registered: NO CARRIER at once */
	check(sim_control("{\"cmd\": \"set\", \"modem\": \"gsm0\", \"registered\": false}"));
	check(call(&fast, "no network", 10000));
	check_int(res.r.outcome, CALL_FAILED);
	check_str(res.r.error, "NO CARRIER");
	check_call_over("no network");
	check(sim_control("{\"cmd\": \"set\", \"modem\": \"gsm0\", \"registered\": true}"));

	/* nothing but digits reaches the modem */
	check_int(dialer_call(dialer, "+3247;H", &fast, on_done, NULL), -EINVAL);
	check_int(dialer_call(dialer, "12\r", &fast, on_done, NULL), -EINVAL);
	check_int(dialer_call(dialer, "", &fast, on_done, NULL), -EINVAL);
}

/* A modem that stops answering: failed within the sync deadlines, nothing dialled. */
static void test_hung_modem(void)
{
	size_t mark = calls_count();
	uint64_t t0 = now_monotonic_usec();

	check(sim_control("{\"cmd\": \"hang\", \"modem\": \"gsm0\", \"on\": true}"));
	check(call(&fast, "hung modem", 15000));
	check_int(res.r.outcome, CALL_FAILED);
	check_str(res.r.error, "the modem does not answer AT");
	check_int(res.r.dialed_at, 0);
	check(res.done_mono - t0 < 5 * SEC);
	check_int(calls_count(), mark);
	check(sim_control("{\"cmd\": \"hang\", \"modem\": \"gsm0\", \"on\": false}"));
	check_call_over("hung modem");
}

/* The far end hangs up during the hold: still answered, the call's end is its end. */
static void test_remote_hangup(void)
{
	size_t mark = calls_count();
	DialerOptions o = fast;
	json_t *recs;

	o.hold_usec = 10 * SEC;
	check(sim_control(
	        "{\"cmd\": \"call_outcome\", \"modem\": \"gsm0\", \"outcome\": \"answer\", "
	        "\"after\": 0.5, \"duration\": 1.0}"));
	check(call(&o, "remote hang-up", 10000));
	check_int(res.r.outcome, CALL_ANSWERED);
	check(res.r.duration_usec >= 800 * MSEC && res.r.duration_usec < 2500 * MSEC);
	check(res.r.hung_up);
	check_call_over("remote hang-up");
	recs = calls_log(mark);
	check_str(rec_string(calls_find(recs, "hangup", NULL, NULL), "by"), "remote");
	json_decref(recs);
}

/* dialer_cancel() while it rings: hung up, reported failed "cancelled". */
static void test_cancel(void)
{
	size_t mark = calls_count();
	json_t *recs;

	check(sim_control("{\"cmd\": \"call_outcome\", \"modem\": \"gsm0\", \"outcome\": "
	                  "\"no_answer\"}"));
	check(start_call(&fast, "cancelled"));
	check_int(dialer_call(dialer, NUMBER, &fast, on_done, NULL), -EBUSY);
	run_for(1500);
	check(!res.done);
	check_int(dialer_cancel(dialer), 0);
	check(wait_done(5000));
	check_int(res.r.outcome, CALL_FAILED);
	check_str(res.r.error, "cancelled");
	check(res.r.hung_up);
	check_call_over("cancelled");
	check_int(dialer_cancel(dialer), -ESRCH);
	recs = calls_log(mark);
	check_str(rec_string(calls_find(recs, "hangup", NULL, NULL), "by"), "local");
	json_decref(recs);
}

/* The modem is unplugged while the phone rings: failed at once, port closed; back after replug. */
static void test_unplug(void)
{
	size_t mark = calls_count();
	DialerOptions o = fast;
	json_t *recs;
	uint64_t t;

	o.ring_timeout_usec = 30 * SEC;
	check(sim_control("{\"cmd\": \"call_outcome\", \"modem\": \"gsm0\", \"outcome\": "
	                  "\"no_answer\"}"));
	check(start_call(&o, "unplugged"));
	run_for(1500);
	check(!res.done);
	t = now_monotonic_usec();
	check(sim_control("{\"cmd\": \"unplug\", \"modem\": \"gsm0\"}"));
	check(wait_done(3000));
	check(res.done_mono - t < 1 * SEC);
	check_int(res.r.outcome, CALL_FAILED);
	check(strstr(res.r.error, "port gone") != NULL);
	check(!res.r.hung_up);
	recs = calls_log(mark);
	check_str(rec_string(calls_find(recs, "hangup", NULL, NULL), "by"), "unplug");
	json_decref(recs);

	/* unplugged: the port cannot even be opened */
	check(call(&fast, "while unplugged", 5000));
	check_int(res.r.outcome, CALL_FAILED);
	check(strstr(res.r.error, "cannot open") != NULL);
	check_int(res.r.dialed_at, 0);

	check(sim_control("{\"cmd\": \"replug\", \"modem\": \"gsm0\"}"));
	check(sim_control("{\"cmd\": \"call_outcome\", \"modem\": \"gsm0\", \"outcome\": \"busy\", "
	                  "\"after\": 0.5}"));
	check(call(&fast, "after replug", 10000));
	check_int(res.r.outcome, CALL_BUSY);
	check_call_over("after replug");

	/* unplugged during the hold: the human was reached, the port's end is noted */
	o.hold_usec = 10 * SEC;
	check(sim_control(
	        "{\"cmd\": \"call_outcome\", \"modem\": \"gsm0\", \"outcome\": \"answer\", "
	        "\"after\": 0.3}"));
	check(start_call(&o, "unplugged while held"));
	run_for(1000);
	check(!res.done);
	check(sim_control("{\"cmd\": \"unplug\", \"modem\": \"gsm0\"}"));
	check(wait_done(3000));
	check_int(res.r.outcome, CALL_ANSWERED);
	check(strstr(res.r.error, "port gone") != NULL);
	check(!res.r.hung_up);
	check(res.r.duration_usec >= 500 * MSEC && res.r.duration_usec < 1500 * MSEC);
	check(sim_control("{\"cmd\": \"replug\", \"modem\": \"gsm0\"}"));
	check_call_over("unplugged while held");
}

/* The done handler may free the dialer; freeing it mid-call writes a last ATH. */
static void on_done_free(Dialer *d, const DialerReport *r, void *userdata)
{
	res.done = true;
	res.calls++;
	res.r.outcome = r->outcome;
	dialer_free(d);
}

static void test_free(void)
{
	char device[512], state[32];
	Dialer *d = NULL;

	sim_path(device, sizeof(device), "gsm0");
	check_int(dialer_new(event, device, "gsm0", &d), 0);
	memset(&res, 0, sizeof(res));
	check(sim_control("{\"cmd\": \"call_outcome\", \"modem\": \"gsm0\", \"outcome\": \"busy\", "
	                  "\"after\": 0.3}"));
	check_int(dialer_call(d, NUMBER, &fast, on_done_free, NULL), 0);
	check(wait_done(5000));
	check_int(res.r.outcome, CALL_BUSY);

	check_int(dialer_new(event, device, "gsm0", &d), 0);
	memset(&res, 0, sizeof(res));
	check(sim_control("{\"cmd\": \"call_outcome\", \"modem\": \"gsm0\", \"outcome\": "
	                  "\"no_answer\"}"));
	check_int(dialer_call(d, NUMBER, &fast, on_done, "freed"), 0);
	run_for(1500);
	check_str(sim_call_state(state), "alerting");
	dialer_free(d);
	check_int(res.calls, 0);
	usleep(200 * 1000);
	check_str(sim_call_state(state), "none");
	check_int(fds_on_port(), 0);
}

int main(void)
{
	char device[512];
	int r;

	log_setup("test-voice-sim");
	if (getenv("TEST_DEBUG"))
		log_set_max_level(LOG_DEBUG);
	if (access(PYTHON, X_OK) < 0) {
		printf("# %s missing, skipped\n", PYTHON);
		return 77;
	}
	if (access(MODEMSIM, R_OK) < 0) {
		printf("# simulator %s missing, skipped\n", MODEMSIM);
		return 77;
	}
	if (!mkdtemp(sim_dir)) {
		printf("# mkdtemp: %s\n", strerror(errno));
		return EXIT_FAILURE;
	}
	r = sim_start();
	if (r < 0) {
		printf("# the simulator did not start (%s); see %s/sim.log\n", strerror(-r),
		       sim_dir);
		test_failures++;
		sim_stop();
		return test_exit();
	}
	if (sd_event_new(&event) < 0)
		return EXIT_FAILURE;
	sim_path(device, sizeof(device), "gsm0");
	check_int(dialer_new(event, device, "gsm0", &dialer), 0);
	if (dialer) {
		run(test_answered);
		run(test_dtmf);
		run(test_busy);
		run(test_no_answer);
		run(test_rejected);
		run(test_failed);
		run(test_hung_modem);
		run(test_remote_hangup);
		run(test_cancel);
		run(test_unplug);
		run(test_free);
	}
	dialer_free(dialer);
	sd_event_unref(event);
	sim_stop();
	return test_exit();
}
