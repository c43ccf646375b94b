/* test-modem-harness: see test-modem-harness.h. */
#include "test-modem-harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "macro.h"
#include "util.h"

char sim_dir[] = "/tmp/test-modem-sim.XXXXXX";
static pid_t sim_pid = -1;

void sim_path(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", sim_dir, name);
}

int sim_start(const char *script, const char *const *modems, const char *const *extra)
{
	uint64_t end = now_monotonic_usec() + 15 * USEC_PER_SEC;
	char ready[512], log_path[512];
	const char *argv[64];
	size_t n = 0;

	if (!mkdtemp(sim_dir))
		return -errno;
	argv[n++] = "python3";
	argv[n++] = script;
	argv[n++] = "--dir";
	argv[n++] = sim_dir;
	for (size_t i = 0; modems[i] && n < ELEMENTSOF(argv) - 3; i++) {
		argv[n++] = "--modem";
		argv[n++] = modems[i];
	}
	for (size_t i = 0; extra && extra[i] && n < ELEMENTSOF(argv) - 1; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;

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
		execv(PYTHON, (char *const *)argv);
		_exit(127);
	}
	while (access(ready, F_OK) < 0) {
		if (now_monotonic_usec() > end || waitpid(sim_pid, NULL, WNOHANG) == sim_pid)
			return -ETIMEDOUT;
		usleep(20 * 1000);
	}
	return 0;
}

void sim_stop(void)
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

static json_t *sim_vrequest(const char *format, va_list ap)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char line[4096], reply[65536] = "";
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
		line[len - 1] = 0;
		fprintf(stderr, "# control %s -> %s\n", line, reply);
		json_decref(j);
		return NULL;
	}
	return j;
}

json_t *sim_request(const char *format, ...)
{
	va_list ap;
	json_t *j;

	va_start(ap, format);
	j = sim_vrequest(format, ap);
	va_end(ap);
	return j;
}

bool sim_control(const char *format, ...)
{
	va_list ap;
	json_t *j;

	va_start(ap, format);
	j = sim_vrequest(format, ap);
	va_end(ap);
	json_decref(j);
	return j != NULL;
}

long long sim_stat(const char *modem, const char *field)
{
	json_t *j = sim_request("{\"cmd\":\"stats\",\"modem\":\"%s\"}", modem);
	json_t *v = j ? json_object_get(j, field) : NULL;
	long long r = json_is_integer(v) ? (long long)json_integer_value(v) : -1;

	json_decref(j);
	return r;
}

int sim_stored(const char *modem, const char *kind)
{
	json_t *j = sim_request("{\"cmd\":\"stats\",\"modem\":\"%s\"}", modem);
	json_t *msgs = j ? json_object_get(j, "messages") : NULL, *m;
	size_t i;
	int n = 0;

	if (!json_is_array(msgs)) {
		json_decref(j);
		return -1;
	}
	json_array_foreach(
	        msgs, i,
	        m) if (!kind || streq_ptr(json_string_value(json_object_get(m, "kind")), kind)) n++;
	json_decref(j);
	return n;
}

bool sim_got(const char *number, const char *text)
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
		    streq_ptr(json_string_value(json_object_get(j, "to")), number) &&
		    streq_ptr(json_string_value(json_object_get(j, "text")), text))
			found = true;
		json_decref(j);
	}
	fclose(f);
	return found;
}

Modem *harness_modem(const ModemSettings *settings)
{
	Modem *m = NULL;
	int r = modem_new(settings, &m);

	if (r < 0) {
		fprintf(stderr, "modem_new(%s): %s\n", settings->name, strerror(-r));
		return NULL;
	}
	r = modem_start(m);
	if (r < 0) {
		fprintf(stderr, "modem_start(%s): %s\n", settings->name, strerror(-r));
		return modem_free(m);
	}
	return m;
}

/* The states each modem reported since they were last waited for, and the latest of each. */
#define HARNESS_MODEMS 8
static struct {
	const Modem *modem;
	unsigned seen;
	ModemStatus last[_MODEM_STATE_MAX];
	ModemStatus latest;
} tracks[HARNESS_MODEMS];

static int track_index(const Modem *m)
{
	for (int i = 0; i < HARNESS_MODEMS; i++)
		if (tracks[i].modem == m || !tracks[i].modem) {
			tracks[i].modem = m;
			return i;
		}
	abort();
}

static void track(const Modem *m, const ModemStatus *s)
{
	int i = track_index(m);

	tracks[i].seen |= 1u << s->state;
	tracks[i].last[s->state] = *s;
	tracks[i].latest = *s;
}

static bool tracked(const Modem *m, unsigned mask, ModemStatus *ret)
{
	int i = track_index(m);

	if (!(tracks[i].seen & mask))
		return false;
	for (unsigned st = 0; st < _MODEM_STATE_MAX; st++)
		if (tracks[i].seen & mask & (1u << st)) {
			if (ret)
				*ret = tracks[i].last[st];
			tracks[i].seen &= ~mask;
			return true;
		}
	return false;
}

void harness_untrack(const Modem *m)
{
	tracks[track_index(m)].seen = 0;
}

ModemStatus harness_last_status(const Modem *m)
{
	return tracks[track_index(m)].latest;
}

#define HARNESS_RECEIVED 128
static struct {
	const Modem *modem;
	ModemEvent ev;
} received[HARNESS_RECEIVED];
static size_t n_received;

static void harness_log(Modem *m, ModemEvent *ev)
{
	if (ev->type == MODEM_EVENT_SMS_RECEIVED)
		printf("# %s: received from '%s' %u part(s) token %llu key %.12s... text '%s'\n",
		       modem_name(m), ev->from, ev->parts, (unsigned long long)ev->token, ev->key,
		       ev->text ? ev->text : "(null)");
	else
		printf("# %s: delivery report ref %d to %s: %s%s%s token %llu\n", modem_name(m),
		       ev->message_ref, ev->number, ev->delivery_status,
		       ev->delivered ? " (delivered)" : "", ev->permanent ? " (permanent)" : "",
		       (unsigned long long)ev->token);
	if (n_received == HARNESS_RECEIVED) {
		modem_event_clear(ev);
		return;
	}
	received[n_received].modem = m;
	received[n_received].ev = *ev; /* the text is the log's now */
	n_received++;
}

static void harness_handle(Modem *m, ModemEvent *ev)
{
	switch (ev->type) {
	case MODEM_EVENT_STATUS:
		printf("# %s: %s%s%s signal %d reg %s operator '%s' device '%s' imei '%s'%s\n",
		       modem_name(m), modem_state_to_string(ev->status.state),
		       ev->status.reason[0] ? " - " : "", ev->status.reason, ev->status.signal,
		       ev->status.registration, ev->status.operator_name, ev->status.device,
		       ev->status.imei, ev->status.delivery_reports_supported ? " reports" : "");
		track(m, &ev->status);
		break;
	case MODEM_EVENT_SENT:
		printf("# %s: job %llu result %d%s parts %u ref %d error '%s'\n", modem_name(m),
		       (unsigned long long)ev->job, ev->result, ev->permanent ? " (permanent)" : "",
		       ev->parts, ev->message_ref, ev->error);
		break;
	case MODEM_EVENT_SMS_RECEIVED:
	case MODEM_EVENT_DELIVERY_REPORT:
	case MODEM_EVENT_SMS_QUARANTINED:
		harness_log(m, ev);
		break;
	}
}

bool harness_wait_event(Modem *m, ModemEventType type, ModemEvent *ev, int timeout_ms)
{
	uint64_t end = now_monotonic_usec() + (uint64_t)timeout_ms * 1000;

	for (;;) {
		uint64_t now = now_monotonic_usec();
		struct pollfd p = {.fd = modem_fd(m), .events = POLLIN};

		while (modem_next_event(m, ev) > 0) {
			ModemEventType t = ev->type;

			harness_handle(m, ev);
			if (t == type && (t == MODEM_EVENT_STATUS || t == MODEM_EVENT_SENT))
				return true;
		}
		if (now >= end)
			return false;
		poll(&p, 1, (int)((end - now) / 1000) + 1);
	}
}

void harness_drain(Modem *m)
{
	ModemEvent ev;

	while (modem_next_event(m, &ev) > 0)
		harness_handle(m, &ev);
}

void harness_idle(Modem *m, int ms)
{
	uint64_t end = now_monotonic_usec() + (uint64_t)ms * 1000;

	for (;;) {
		uint64_t now = now_monotonic_usec();
		struct pollfd p = {.fd = modem_fd(m), .events = POLLIN};

		harness_drain(m);
		if (now >= end)
			return;
		poll(&p, 1, (int)((end - now) / 1000) + 1);
	}
}

bool harness_wait_state(Modem *m, unsigned mask, ModemStatus *ret, int timeout_ms)
{
	uint64_t end = now_monotonic_usec() + (uint64_t)timeout_ms * 1000;
	ModemEvent ev;

	for (;;) {
		uint64_t now = now_monotonic_usec();

		if (tracked(m, mask, ret))
			return true;
		if (now >= end)
			return false;
		harness_wait_event(m, MODEM_EVENT_STATUS, &ev, (int)((end - now) / 1000) + 1);
	}
}

size_t harness_received_count(const Modem *m, ModemEventType type)
{
	size_t n = 0;

	for (size_t i = 0; i < n_received; i++)
		if (received[i].modem == m && received[i].ev.type == type)
			n++;
	return n;
}

const ModemEvent *harness_received(const Modem *m, ModemEventType type, size_t index)
{
	for (size_t i = 0; i < n_received; i++)
		if (received[i].modem == m && received[i].ev.type == type && index-- == 0)
			return &received[i].ev;
	return NULL;
}

bool harness_wait_received(Modem *m, ModemEventType type, size_t count, int timeout_ms)
{
	uint64_t end = now_monotonic_usec() + (uint64_t)timeout_ms * 1000;

	for (;;) {
		uint64_t now = now_monotonic_usec();

		harness_drain(m);
		if (harness_received_count(m, type) >= count)
			return true;
		if (now >= end)
			return false;
		harness_idle(m, (int)MIN((end - now) / 1000 + 1, 50));
	}
}
