/* test-modem: what modem/ does without a modem: part counting through libgammu, cause
 * classification, argument checks, the job queue and its answers, and a worker facing a device
 * that does not exist. */
#include <errno.h>
#include <poll.h>
#include <string.h>

#include "log.h"
#include "modem.h"
#include "sms.h"
#include "test.h"
#include "util.h"

static char *repeat(const char *s, unsigned n)
{
	size_t len = strlen(s);
	char *r = malloc(len * n + 1);

	if (!r)
		abort();
	for (unsigned i = 0; i < n; i++)
		memcpy(r + i * len, s, len);
	r[len * n] = 0;
	return r;
}

static int parts_of(const char *s, unsigned n)
{
	unsigned parts = 0;
	char *text = repeat(s, n);
	int r = modem_count_parts(text, &parts);

	free(text);
	return r < 0 ? r : (int)parts;
}

static void test_count_parts(void)
{
	unsigned parts = 0;

	check_int(modem_count_parts("hello", &parts), 0);
	check_int(parts, 1);
	check_int(parts_of("", 1), 1);

	/* GSM 7-bit: 160 in one part, 153 per part after. */
	check_int(parts_of("a", 160), 1);
	check_int(parts_of("a", 161), 2);
	check_int(parts_of("a", 306), 2);
	check_int(parts_of("a", 307), 3);
	check_int(parts_of("a", 400), 3);
	/* Extension-table characters take two septets, and stay 7-bit. */
	check_int(parts_of("€", 80), 1);
	check_int(parts_of("€", 81), 2);
	/* Capital omega is in the GSM alphabet: no switch to UCS-2. */
	check_int(parts_of("Ω", 160), 1);

	/* UCS-2: 70 in one part, 67 per part after. */
	check_int(parts_of("ωμέγα", 14), 1); /* 70 characters */
	{
		char *t = repeat("ωμέγα", 14);
		char buf[256];

		snprintf(buf, sizeof(buf), "%sx", t);
		check_int(modem_count_parts(buf, &parts), 0);
		check_int(parts, 2); /* 71 */
		free(t);
	}
	check_int(parts_of("ω", 134), 2);
	check_int(parts_of("ω", 135), 3);
	/* One non-GSM character turns the whole text to UCS-2. */
	{
		char *t = repeat("a", 100);
		char buf[256];

		snprintf(buf, sizeof(buf), "%s\xe2\x98\x83", t); /* snowman */
		check_int(modem_count_parts(buf, &parts), 0);
		check_int(parts, 2);
		free(t);
	}
	/* Outside the BMP: a surrogate pair, two UCS-2 units. */
	check_int(parts_of("\xf0\x9f\x94\xa5", 35), 1);
	check_int(parts_of("\xf0\x9f\x94\xa5", 36), 2);

	/* The limits where libgammu would cut: 50 parts, and 5000 septets for 7-bit. */
	check_int(parts_of("ω", 49 * 67), 49);
	check_int(parts_of("ω", 49 * 67 + 1), -EMSGSIZE);
	check_int(parts_of("a", 5000), 33);
	check_int(parts_of("a", 5001), -EMSGSIZE);
	check_int(parts_of("a", SMS_TEXT_MAX + 1), -EMSGSIZE);

	check_int(modem_count_parts("\xff\xfe", &parts), -EINVAL);
	check_int(modem_count_parts("caf\xc3", &parts), -EINVAL);
	check_int(modem_count_parts(NULL, &parts), -EINVAL);
	check_int(modem_count_parts("x", NULL), -EINVAL);
}

static void test_state_to_string(void)
{
	check_str(modem_state_to_string(MODEM_STATE_OK), "ok");
	check_str(modem_state_to_string(MODEM_STATE_DEGRADED), "degraded");
	check_str(modem_state_to_string(MODEM_STATE_FAILED), "failed");
	check_str(modem_state_to_string(MODEM_STATE_ABSENT), "absent");
	check(modem_state_to_string(_MODEM_STATE_MAX) == NULL);
	check(modem_state_to_string((ModemState)-1) == NULL);
}

static void test_causes(void)
{
	static const int permanent[] = {1, 8, 10, 21, 28, 29, 30, 50, 96, 127, 0x80, 0xC1, 0xC3};
	static const int transient[] = {-1,   0,    27,   38,  41,  42,  47,  0xC0,
	                                0xC2, 0xD0, 0xFF, 300, 304, 330, 500, 512};

	for (size_t i = 0; i < ELEMENTSOF(permanent); i++)
		check(sms_cause_is_permanent(permanent[i]));
	for (size_t i = 0; i < ELEMENTSOF(transient); i++)
		check(!sms_cause_is_permanent(transient[i]));

	check(sms_number_is_valid("+32470123456"));
	check(sms_number_is_valid("1234"));
	check(!sms_number_is_valid(""));
	check(!sms_number_is_valid("+"));
	check(!sms_number_is_valid("+32 470"));
	check(!sms_number_is_valid("+3247012345678901234567"));
	check(!sms_number_is_valid(NULL));
}

static void test_new_invalid(void)
{
	Modem *m = NULL;

	check_int(modem_new(NULL, &m), -EINVAL);
	check_int(modem_new(&(ModemSettings){.name = "gsm0"}, &m), -EINVAL);
	check_int(modem_new(&(ModemSettings){.device = "/dev/null"}, &m), -EINVAL);
	check_int(modem_new(&(ModemSettings){.name = "gsm0", .device = "/dev/null", .pin = "12a4"},
	                    &m),
	          -EINVAL);
	check_int(
	        modem_new(&(ModemSettings){.name = "gsm0", .device = "/dev/null", .pin = "12"}, &m),
	        -EINVAL);
	check(m == NULL);
	check(modem_free(NULL) == NULL);
}

static bool fd_readable(int fd, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, timeout_ms) == 1;
}

/* Without a worker: queue bounds, and every job answered at modem_stop(). */
static void test_queue(void)
{
	Modem *m = NULL;
	ModemEvent ev;
	unsigned n = 0;

	check_int(modem_new(&(ModemSettings){.name = "q0", .device = "/nonexistent/tty"}, &m), 0);
	if (!m)
		return;
	check_str(modem_name(m), "q0");
	check(modem_fd(m) >= 0);
	check(!fd_readable(modem_fd(m), 0));
	check_int(modem_next_event(m, &ev), 0);

	check_int(modem_send(m, 1, "not a number", "hi"), -EINVAL);
	check_int(modem_send(m, 1, "+32470000000", "bad \xff utf8"), -EINVAL);
	check_int(modem_send(m, 1, "+32470000000", NULL), -EINVAL);
	{
		char *big = repeat("a", SMS_TEXT_MAX + 1);

		check_int(modem_send(m, 1, "+32470000000", big), -EMSGSIZE);
		free(big);
	}
	check_int(modem_queue_length(m), 0);

	for (unsigned i = 0; i < 1024; i++)
		check_int(modem_send(m, 100 + i, "+32470000000", "hello"), 0);
	check_int(modem_queue_length(m), 1024);
	check_int(modem_send(m, 5000, "+32470000000", "hello"), -ENOBUFS);

	check_int(modem_stop(m), 0);
	check_int(modem_queue_length(m), 0);
	check_int(modem_send(m, 5001, "+32470000000", "hello"), -ESHUTDOWN);
	check(fd_readable(modem_fd(m), 0));
	while (modem_next_event(m, &ev) > 0) {
		if (ev.type != MODEM_EVENT_SENT)
			continue;
		check_int(ev.job, 100 + n);
		check_int(ev.result, -ESHUTDOWN);
		check(!ev.permanent);
		check_str(ev.error, "modem stopped");
		n++;
	}
	check_int(n, 1024);
	check(!fd_readable(modem_fd(m), 0));
	m = modem_free(m);
	check(m == NULL);
}

/* Waits for the next event, bounded. */
static int next_event(Modem *m, ModemEvent *ev, int timeout_ms)
{
	uint64_t end = now_monotonic_usec() + (uint64_t)timeout_ms * 1000;

	for (;;) {
		uint64_t now = now_monotonic_usec();
		int r = modem_next_event(m, ev);

		if (r != 0)
			return r;
		if (now >= end)
			return 0;
		fd_readable(modem_fd(m), (int)((end - now) / 1000) + 1);
	}
}

/* A worker on a device that is not there reports absent and refuses jobs at once. */
static void test_absent(void)
{
	Modem *m = NULL;
	ModemEvent ev;
	uint64_t t0;

	check_int(modem_new(&(ModemSettings){.name = "gsm9", .device = "/nonexistent/ttyGSM9"}, &m),
	          0);
	if (!m)
		return;
	check_int(modem_start(m), 0);
	check_int(modem_start(m), -EBUSY);

	check_int(next_event(m, &ev, 5000), 1);
	check_int(ev.type, MODEM_EVENT_STATUS);
	check_int(ev.status.state, MODEM_STATE_ABSENT);
	check(strstr(ev.status.reason, "/nonexistent/ttyGSM9") != NULL);
	check_int(ev.status.signal, 99);
	printf("# absent: %s\n", ev.status.reason);

	t0 = now_monotonic_usec();
	check_int(modem_send(m, 7, "+32470000000", "hello"), 0);
	check_int(next_event(m, &ev, 5000), 1);
	check_int(ev.type, MODEM_EVENT_SENT);
	check_int(ev.job, 7);
	check_int(ev.result, -ENODEV);
	check(!ev.permanent);
	check(strstr(ev.error, "absent") != NULL);
	check(now_monotonic_usec() - t0 < 500 * 1000);
	check_int(modem_queue_length(m), 0);

	t0 = now_monotonic_usec();
	check_int(modem_stop(m), 0);
	check(now_monotonic_usec() - t0 < 500 * 1000);
	/* The last word is the worker's: stopped. */
	while (next_event(m, &ev, 0) > 0)
		if (ev.type == MODEM_EVENT_STATUS)
			check_str(ev.status.reason, "stopped");
	modem_free(m);
}

int main(void)
{
	log_setup("test-modem");
	run(test_count_parts);
	run(test_state_to_string);
	run(test_causes);
	run(test_new_invalid);
	run(test_queue);
	run(test_absent);
	return test_exit();
}
