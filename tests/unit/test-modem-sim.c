/* test-modem-sim: modem/ end to end, through libgammu, against the modem simulator on ptys.
 *
 * Three simulated modems: gsm0 without PIN, gsm1 asking for PIN 1234 (we give it), gsm2 asking
 * for it too (we give a wrong one). Checks status reports, sends (plain, Unicode, multipart)
 * compared with what the simulator decoded, +CMS errors and their classification, a hung modem
 * (watchdog, reconnect) and an unplugged one (absent, reconnect on replug). Every wait is
 * bounded. Exits 77 when python3 or the simulator is missing. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "modem.h"
#include "test.h"
#include "util.h"

#ifndef MODEMSIM
#define MODEMSIM "tests/modemsim/modemsim.py"
#endif
#define PYTHON "/usr/bin/python3"
#define NUMBER "+32470000001"

#define run_arg(fn, arg)                                                                           \
	do {                                                                                       \
		int _before = test_failures;                                                       \
		fn(arg);                                                                           \
		printf("%s %s\n", test_failures == _before ? "ok  " : "FAIL", #fn);                \
	} while (0)

static char sim_dir[] = "/tmp/test-modem-sim.XXXXXX";
static pid_t sim_pid = -1;

static void sim_path(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", sim_dir, name);
}

static int sim_start(const char *script)
{
	uint64_t end = now_monotonic_usec() + 15 * USEC_PER_SEC;
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
		execl(PYTHON, "python3", script, "--dir", sim_dir, "--modem", "gsm0", "--modem",
		      "gsm1", "--modem", "gsm2", (char *)NULL);
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
	uint64_t end = now_monotonic_usec() + 5 * USEC_PER_SEC;
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
	if (getenv("KEEP_SIM_DIR")) {
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

/* Sends one JSON line to the control socket; returns whether it answered "ok": true. */
static bool sim_control(const char *line)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char reply[4096] = "";
	size_t n = 0;
	bool ok;
	int fd;

	sim_path(sa.sun_path, sizeof(sa.sun_path), "control.sock");
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    write(fd, line, strlen(line)) != (ssize_t)strlen(line) || write(fd, "\n", 1) != 1) {
		close(fd);
		return false;
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
	ok = strstr(reply, "\"ok\": true") != NULL;
	if (!ok)
		fprintf(stderr, "# control %s -> %s\n", line, reply);
	return ok;
}

/* The states each modem reported since they were last waited for, and the latest of each. */
static struct {
	const Modem *modem;
	unsigned seen;
	ModemStatus last[_MODEM_STATE_MAX];
} tracks[4];

static void track(const Modem *m, const ModemStatus *s)
{
	for (size_t i = 0; i < ELEMENTSOF(tracks); i++)
		if (tracks[i].modem == m || !tracks[i].modem) {
			tracks[i].modem = m;
			tracks[i].seen |= 1u << s->state;
			tracks[i].last[s->state] = *s;
			return;
		}
}

/* Takes a tracked state in mask, if one was seen. */
static bool tracked(const Modem *m, unsigned mask, ModemStatus *ret)
{
	for (size_t i = 0; i < ELEMENTSOF(tracks); i++) {
		if (tracks[i].modem != m || !(tracks[i].seen & mask))
			continue;
		for (unsigned st = 0; st < _MODEM_STATE_MAX; st++)
			if (tracks[i].seen & mask & (1u << st)) {
				if (ret)
					*ret = tracks[i].last[st];
				tracks[i].seen &= ~mask;
				return true;
			}
	}
	return false;
}

static void untrack(const Modem *m)
{
	for (size_t i = 0; i < ELEMENTSOF(tracks); i++)
		if (tracks[i].modem == m)
			tracks[i].seen = 0;
}

/* Waits up to timeout_ms for an event of the given type from m; status events are tracked. */
static bool wait_event(Modem *m, ModemEventType type, ModemEvent *ev, int timeout_ms)
{
	uint64_t end = now_monotonic_usec() + (uint64_t)timeout_ms * 1000;

	for (;;) {
		uint64_t now = now_monotonic_usec();
		struct pollfd p = {.fd = modem_fd(m), .events = POLLIN};

		while (modem_next_event(m, ev) > 0) {
			if (ev->type == MODEM_EVENT_STATUS) {
				printf("# %s: %s%s%s signal %d operator '%s' model '%s' imei "
				       "'%s'\n",
				       modem_name(m), modem_state_to_string(ev->status.state),
				       ev->status.reason[0] ? " - " : "", ev->status.reason,
				       ev->status.signal, ev->status.operator_name,
				       ev->status.model, ev->status.imei);
				track(m, &ev->status);
			} else
				printf("# %s: job %llu result %d%s parts %u ref %d error '%s'\n",
				       modem_name(m), (unsigned long long)ev->job, ev->result,
				       ev->permanent ? " (permanent)" : "", ev->parts,
				       ev->message_ref, ev->error);
			if (ev->type == type)
				return true;
		}
		if (now >= end)
			return false;
		poll(&p, 1, (int)((end - now) / 1000) + 1);
	}
}

/* Waits until m has reported a state in mask (a set of 1 << state) since the last such wait. */
static bool wait_state(Modem *m, unsigned mask, ModemStatus *ret, int timeout_ms)
{
	uint64_t end = now_monotonic_usec() + (uint64_t)timeout_ms * 1000;
	ModemEvent ev;

	for (;;) {
		uint64_t now = now_monotonic_usec();

		if (tracked(m, mask, ret))
			return true;
		if (now >= end)
			return false;
		wait_event(m, MODEM_EVENT_STATUS, &ev, (int)((end - now) / 1000) + 1);
	}
}

static Modem *new_modem(const char *name, const char *pin, unsigned health_interval,
                        unsigned send_timeout, unsigned command_timeout)
{
	char device[512];
	Modem *m = NULL;

	sim_path(device, sizeof(device), name);
	check_int(modem_new(&(ModemSettings){.name = name,
	                                     .device = device,
	                                     .connection = "at",
	                                     .pin = pin,
	                                     .health_interval_sec = health_interval,
	                                     .send_timeout_sec = send_timeout,
	                                     .command_timeout_sec = command_timeout},
	                    &m),
	          0);
	if (m)
		check_int(modem_start(m), 0);
	return m;
}

/* Whether the simulator logged a completed SMS to NUMBER with this text. */
static bool sim_got(const char *text)
{
	char path[512], line[65536];
	bool found = false;
	FILE *f;

	sim_path(path, sizeof(path), "sent.jsonl");
	f = fopen(path, "re");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		json_t *j = json_loads(line, 0, NULL);

		if (j && streq_ptr(json_string_value(json_object_get(j, "event")), "sms") &&
		    streq_ptr(json_string_value(json_object_get(j, "to")), NUMBER) &&
		    streq_ptr(json_string_value(json_object_get(j, "text")), text))
			found = true;
		json_decref(j);
	}
	fclose(f);
	return found;
}

static const char unicode_text[] = "Ωμέγα ✓ alarm: žluťoučký kůň, 🔥 db01 DOWN";
static char long_text[401];

static void test_sends(Modem *m0)
{
	const char *texts[] = {"hello", unicode_text, long_text};
	const unsigned expect_parts[] = {1, 1, 3};
	bool answered[3] = {false, false, false};
	uint64_t t0 = now_monotonic_usec();
	ModemEvent ev;

	for (unsigned i = 0; i < 3; i++) {
		unsigned parts = 0;

		check_int(modem_count_parts(texts[i], &parts), 0);
		check_int(parts, expect_parts[i]);
		check_int(modem_send(m0, 10 + i, NUMBER, texts[i]), 0);
	}
	check(modem_queue_length(m0) >= 1);
	for (unsigned n = 0; n < 3; n++) {
		if (!wait_event(m0, MODEM_EVENT_SENT, &ev, 60000)) {
			check(!"no answer to a job within 60 s");
			break;
		}
		check(ev.job >= 10 && ev.job < 13);
		if (ev.job < 10 || ev.job >= 13)
			continue;
		answered[ev.job - 10] = true;
		check_int(ev.result, 0);
		check_int(ev.parts, expect_parts[ev.job - 10]);
		check(ev.message_ref >= 0);
		check_str(ev.error, "");
	}
	printf("# 3 jobs (5 parts) in %.1f s\n", (double)(now_monotonic_usec() - t0) / 1e6);
	check(answered[0] && answered[1] && answered[2]);
	check_int(modem_queue_length(m0), 0);
	for (unsigned i = 0; i < 3; i++)
		check(sim_got(texts[i]));
}

static void test_errors(Modem *m0)
{
	ModemEvent ev;

	check(sim_control("{\"cmd\":\"fail_sends\",\"modem\":\"gsm0\",\"count\":1,\"cms\":500}"));
	check_int(modem_send(m0, 20, NUMBER, "fail 500"), 0);
	check(wait_event(m0, MODEM_EVENT_SENT, &ev, 30000));
	check_int(ev.job, 20);
	check_int(ev.result, -EREMOTEIO);
	check(!ev.permanent);
	check_str(ev.error, "+CMS ERROR: 500");

	check(sim_control("{\"cmd\":\"fail_sends\",\"modem\":\"gsm0\",\"count\":1,\"cms\":28}"));
	check_int(modem_send(m0, 21, NUMBER, "fail 28"), 0);
	check(wait_event(m0, MODEM_EVENT_SENT, &ev, 30000));
	check_int(ev.job, 21);
	check_int(ev.result, -EREMOTEIO);
	check(ev.permanent);
	check_str(ev.error, "+CMS ERROR: 28");

	/* The modem is still fine. */
	check_int(modem_send(m0, 22, NUMBER, "after the failures"), 0);
	check(wait_event(m0, MODEM_EVENT_SENT, &ev, 30000));
	check_int(ev.job, 22);
	check_int(ev.result, 0);
	check(sim_got("after the failures"));
}

/* Health checks (every 2 s on gsm0) follow the network: weak signal, roaming, registration. */
static void test_status(Modem *m0)
{
	ModemStatus st;
	ModemEvent ev;

	untrack(m0);
	check(sim_control("{\"cmd\":\"set\",\"modem\":\"gsm0\",\"signal\":3}"));
	check(wait_state(m0, 1u << MODEM_STATE_DEGRADED, &st, 10000));
	check_str(st.reason, "weak signal (CSQ 3)");
	check_int(st.signal, 3);

	check(sim_control("{\"cmd\":\"set\",\"modem\":\"gsm0\",\"signal\":20,"
	                  "\"roaming\":true}"));
	check(wait_state(m0, 1u << MODEM_STATE_DEGRADED, &st, 10000));
	check_str(st.reason, "roaming");
	/* Degraded still sends. */
	check_int(modem_send(m0, 50, NUMBER, "while roaming"), 0);
	check(wait_event(m0, MODEM_EVENT_SENT, &ev, 30000));
	check_int(ev.result, 0);

	check(sim_control("{\"cmd\":\"set\",\"modem\":\"gsm0\",\"registered\":false}"));
	check(wait_state(m0, 1u << MODEM_STATE_FAILED, &st, 10000));
	check_str(st.reason, "not registered to a network");
	check_str(st.operator_name, "");
	check_int(modem_send(m0, 51, NUMBER, "nowhere to go"), 0);
	check(wait_event(m0, MODEM_EVENT_SENT, &ev, 5000));
	check_int(ev.result, -ENOTCONN);

	check(sim_control("{\"cmd\":\"set\",\"modem\":\"gsm0\",\"registered\":true,"
	                  "\"roaming\":false}"));
	check(wait_state(m0, 1u << MODEM_STATE_OK, &st, 10000));
	check_str(st.reason, "");
}

/* A hung modem: the watchdog ends the send, the worker reconnects once the modem is back. */
static void test_hang(Modem *m1)
{
	uint64_t t0;
	ModemEvent ev;

	/* A first send reads the SMSC, so that the hang catches the send itself. */
	check_int(modem_send(m1, 29, NUMBER, "before the hang"), 0);
	check(wait_event(m1, MODEM_EVENT_SENT, &ev, 30000));
	check_int(ev.result, 0);

	untrack(m1);
	check(sim_control("{\"cmd\":\"hang\",\"modem\":\"gsm1\",\"on\":true}"));
	t0 = now_monotonic_usec();
	check_int(modem_send(m1, 30, NUMBER, "into the void"), 0);
	check(wait_event(m1, MODEM_EVENT_SENT, &ev, 30000));
	check_int(ev.job, 30);
	check_int(ev.result, -ETIMEDOUT);
	check(!ev.permanent);
	printf("# hung send answered after %.1f s\n", (double)(now_monotonic_usec() - t0) / 1e6);
	check(now_monotonic_usec() - t0 < 10 * USEC_PER_SEC);
	check(wait_state(m1, 1u << MODEM_STATE_FAILED, NULL, 10000));

	check(sim_control("{\"cmd\":\"hang\",\"modem\":\"gsm1\",\"on\":false}"));
	check(wait_state(m1, 1u << MODEM_STATE_OK, NULL, 60000));
	check_int(modem_send(m1, 31, NUMBER, "back from the hang"), 0);
	check(wait_event(m1, MODEM_EVENT_SENT, &ev, 30000));
	check_int(ev.job, 31);
	check_int(ev.result, 0);
}

/* An unplugged modem: absent, jobs refused, back after replug. */
static void test_unplug(Modem *m0)
{
	ModemEvent ev;

	untrack(m0);
	check(sim_control("{\"cmd\":\"unplug\",\"modem\":\"gsm0\"}"));
	check_int(modem_send(m0, 40, NUMBER, "nobody there"), 0);
	check(wait_event(m0, MODEM_EVENT_SENT, &ev, 30000));
	check_int(ev.job, 40);
	check(ev.result < 0);
	check(wait_state(m0, 1u << MODEM_STATE_ABSENT | 1u << MODEM_STATE_FAILED, NULL, 30000));

	check(sim_control("{\"cmd\":\"replug\",\"modem\":\"gsm0\"}"));
	check(wait_state(m0, 1u << MODEM_STATE_OK, NULL, 60000));
	check_int(modem_send(m0, 41, NUMBER, "replugged"), 0);
	check(wait_event(m0, MODEM_EVENT_SENT, &ev, 30000));
	check_int(ev.job, 41);
	check_int(ev.result, 0);
	check(sim_got("replugged"));
}

int main(void)
{
	const char *script = getenv("MODEMSIM") ? getenv("MODEMSIM") : MODEMSIM;
	Modem *m0, *m1, *m2;
	ModemStatus st;
	ModemEvent ev;
	uint64_t t0;

	log_setup("test-modem-sim");
	if (access(PYTHON, X_OK) < 0) {
		printf("# skip: %s not found\n", PYTHON);
		return 77;
	}
	if (access(script, R_OK) < 0) {
		printf("# skip: modem simulator %s not found\n", script);
		return 77;
	}
	if (!mkdtemp(sim_dir)) {
		perror("mkdtemp");
		return EXIT_FAILURE;
	}
	if (sim_start(script) < 0) {
		fprintf(stderr, "The simulator did not start; see %s/sim.log\n", sim_dir);
		setenv("KEEP_SIM_DIR", "1", 1);
		sim_stop();
		return EXIT_FAILURE;
	}
	memset(long_text, 'x', 400);
	for (unsigned i = 0; i < 400; i += 50)
		long_text[i] = (char)('A' + i / 50);

	check(sim_control(
	        "{\"cmd\":\"pin\",\"modem\":\"gsm1\",\"required\":true,\"pin\":\"1234\"}"));
	check(sim_control(
	        "{\"cmd\":\"pin\",\"modem\":\"gsm2\",\"required\":true,\"pin\":\"1234\"}"));

	t0 = now_monotonic_usec();
	m0 = new_modem("gsm0", NULL, 2, 20, 10);
	m1 = new_modem("gsm1", "1234", 0, 4, 3);
	m2 = new_modem("gsm2", "0000", 0, 20, 10);
	if (!m0 || !m1 || !m2)
		goto finish;

	check(wait_state(m0, 1u << MODEM_STATE_OK, &st, 30000));
	printf("# gsm0 ok after %.1f s\n", (double)(now_monotonic_usec() - t0) / 1e6);
	check(st.signal >= 0 && st.signal <= 31);
	check(st.operator_name[0] != 0);
	check(st.imei[0] != 0);
	check(wait_state(m1, 1u << MODEM_STATE_OK, NULL, 30000));
	check(wait_state(m2, 1u << MODEM_STATE_FAILED, &st, 30000));
	check_str(st.reason, "wrong PIN");
	check_int(modem_send(m2, 1, NUMBER, "refused"), 0);
	check(wait_event(m2, MODEM_EVENT_SENT, &ev, 5000));
	check_int(ev.result, -ENOTCONN);
	m2 = modem_free(m2);

	run_arg(test_sends, m0);
	run_arg(test_errors, m0);
	run_arg(test_status, m0);
	run_arg(test_hang, m1);
	run_arg(test_unplug, m0);

finish:
	t0 = now_monotonic_usec();
	modem_free(m0);
	modem_free(m1);
	modem_free(m2);
	check(now_monotonic_usec() - t0 < 15 * USEC_PER_SEC);
	if (test_failures)
		setenv("KEEP_SIM_DIR", "1", 1);
	sim_stop();
	return test_exit();
}
