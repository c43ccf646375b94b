/* test-modem-recovery: modem/ losing and finding its modem, against the modem simulator.
 *
 * Four simulated modems: gsm0 (found by its path), gsm1 (found by its IMEI), gsm2 (configured
 * with an IMEI it does not have) and ttyACM0 (held by a fourth Modem, so that the IMEI searches
 * of the others must leave it alone). Checks: a weak signal below min_signal degrades; send
 * errors in a row fail the modem, which comes back after a re-initialisation, while a
 * destination's refusal does not count; an unplugged port makes the modem absent at once, and
 * its return (after the backoff has grown) brings it back and sending within 10 s; a port
 * renumbered (replugged under DIR/ttyUSB7, its configured path gone) is found again by IMEI
 * within 10 s without a byte sent to the port another Modem holds; a modem answering the wrong
 * IMEI is failed and never used. Every wait is bounded; exits 77 when python3 or the simulator is
 * missing. */
#include <errno.h>
#include <jansson.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "modem.h"
#include "test-modem-harness.h"
#include "test.h"
#include "util.h"

#ifndef MODEMSIM
#define MODEMSIM "tests/modemsim/modemsim.py"
#endif
#define NUMBER     "+32470000001"
#define WRONG_IMEI "356938035643800"
/* The bound the gateway promises for a modem coming back. */
#define RECOVERY_MAX_USEC (10 * USEC_PER_SEC)

#define run_arg(fn, arg)                                                                           \
	do {                                                                                       \
		int _before = test_failures;                                                       \
		fn(arg);                                                                           \
		printf("%s %s\n", test_failures == _before ? "ok  " : "FAIL", #fn);                \
	} while (0)

static char imei1[32], imei2[32];
static Modem *acm;

static bool sim_imei(const char *name, char *ret, size_t size)
{
	json_t *j = sim_request("{\"cmd\":\"stats\",\"modem\":\"%s\"}", name);
	const char *imei = json_string_value(json_object_get(j, "imei"));

	snprintf(ret, size, "%s", imei ? imei : "");
	json_decref(j);
	return ret[0] != 0;
}

/* Sends one SMS and waits for its answer; returns the result (or -ETIME without one). */
static int send_one(Modem *m, uint64_t job, const char *text)
{
	ModemEvent ev;
	int r = modem_send(m, job, NUMBER, text);

	if (r < 0)
		return r;
	for (;;) {
		if (!harness_wait_event(m, MODEM_EVENT_SENT, &ev, 30000))
			return -ETIME;
		if (ev.job == job)
			return ev.result;
	}
}

static void test_weak_signal(Modem *m0)
{
	ModemStatus st;

	harness_untrack(m0);
	check(sim_control("{\"cmd\":\"set\",\"modem\":\"gsm0\",\"signal\":9}"));
	check(harness_wait_state(m0, 1u << MODEM_STATE_DEGRADED, &st, 5000));
	check_str(st.reason, "weak signal (CSQ 9)");
	check_int(st.signal, 9);
	/* Degraded still sends. */
	check_int(send_one(m0, 100, "weak but working"), 0);
	check(sim_control("{\"cmd\":\"set\",\"modem\":\"gsm0\",\"signal\":10}"));
	check(harness_wait_state(m0, 1u << MODEM_STATE_OK, &st, 5000));
	check_int(st.signal, 10);
	check_str(st.reason, "");
}

/* max_consecutive_failures is 3; the network refusing a number (CMS 21) is not the modem's
 * fault and breaks the row. */
static void test_consecutive_failures(Modem *m0)
{
	ModemStatus st;
	uint64_t t0;

	harness_untrack(m0);
	check(sim_control("{\"cmd\":\"fail_sends\",\"modem\":\"gsm0\",\"count\":2,\"cms\":500}"));
	check_int(send_one(m0, 110, "fail 1"), -EREMOTEIO);
	check_int(send_one(m0, 111, "fail 2"), -EREMOTEIO);
	check(sim_control("{\"cmd\":\"fail_number\",\"modem\":\"gsm0\",\"number\":\"+32470000099\","
	                  "\"cms\":21}"));
	check_int(modem_send(m0, 112, "+32470000099", "refused for good"), 0);
	{
		ModemEvent ev;

		check(harness_wait_event(m0, MODEM_EVENT_SENT, &ev, 30000));
		check(ev.permanent);
	}
	check(sim_control("{\"cmd\":\"fail_sends\",\"modem\":\"gsm0\",\"count\":2,\"cms\":500}"));
	check_int(send_one(m0, 113, "fail 3"), -EREMOTEIO);
	check_int(send_one(m0, 114, "fail 4"), -EREMOTEIO);
	harness_drain(m0);
	check(harness_last_status(m0).state == MODEM_STATE_OK);
	check(!harness_wait_state(m0, 1u << MODEM_STATE_FAILED, NULL, 0));

	/* A success resets the count; then three in a row fail the modem. */
	check_int(send_one(m0, 115, "works again"), 0);
	check(sim_control("{\"cmd\":\"fail_sends\",\"modem\":\"gsm0\",\"count\":3,\"cms\":500}"));
	check_int(send_one(m0, 116, "fail 5"), -EREMOTEIO);
	check_int(send_one(m0, 117, "fail 6"), -EREMOTEIO);
	check_int(send_one(m0, 118, "fail 7"), -EREMOTEIO);
	check(harness_wait_state(m0, 1u << MODEM_STATE_FAILED, &st, 2000));
	check_str(st.reason, "3 consecutive send errors");
	t0 = now_monotonic_usec();
	harness_untrack(m0);
	check_int(send_one(m0, 119, "while failed"), -ENODEV);

	/* Re-initialised after the backoff, and ok again. */
	check(harness_wait_state(m0, 1u << MODEM_STATE_OK, NULL, 20000));
	printf("# ok again %.1f s after the failure\n", (double)(now_monotonic_usec() - t0) / 1e6);
	check_int(send_one(m0, 120, "after the re-init"), 0);
	check(sim_got(NUMBER, "after the re-init"));
}

/* Unplugged in the middle of a send: the job is answered and the modem absent at once, not at
 * the deadline. Replugged after the backoff has grown to 8 s: back and sending within 10 s,
 * which only an immediate wakeup (inotify) achieves. */
static void test_unplug_replug(Modem *m0)
{
	uint64_t t0, t_ok, t_sent;
	ModemStatus st;
	ModemEvent ev;

	/* The network takes 5 s to take the message: the send below waits for +CMGS when the port
	 * goes. */
	check(sim_control("{\"cmd\":\"set\",\"modem\":\"gsm0\",\"send_delay\":5}"));
	check_int(modem_send(m0, 130, NUMBER, "unplugged mid-send"), 0);
	harness_idle(m0, 700);
	harness_untrack(m0);
	t0 = now_monotonic_usec();
	check(sim_control("{\"cmd\":\"unplug\",\"modem\":\"gsm0\"}"));
	check(sim_control("{\"cmd\":\"set\",\"modem\":\"gsm0\",\"send_delay\":0}"));
	check(harness_wait_event(m0, MODEM_EVENT_SENT, &ev, 15000));
	check_int(ev.job, 130);
	check(ev.result < 0);
	check(harness_wait_state(m0, 1u << MODEM_STATE_ABSENT, &st, 3000));
	printf("# unplugged mid-send: answered and absent %.2f s later: %s\n",
	       (double)(now_monotonic_usec() - t0) / 1e6, st.reason);
	check(now_monotonic_usec() - t0 < 2 * USEC_PER_SEC);
	check(strncmp(st.reason, "device lost: ", 13) == 0);
	check_int(send_one(m0, 132, "nobody there"), -ENODEV);

	/* Attempts at +1, +3, +7 s find nothing; the next would be at +15 s. */
	harness_idle(m0, 7600);
	st = harness_last_status(m0);
	check(st.state == MODEM_STATE_ABSENT);
	check(strstr(st.reason, "not present") != NULL);

	harness_untrack(m0);
	t0 = now_monotonic_usec();
	check(sim_control("{\"cmd\":\"replug\",\"modem\":\"gsm0\"}"));
	check(harness_wait_state(m0, 1u << MODEM_STATE_OK, NULL, 20000));
	t_ok = now_monotonic_usec();
	check_int(send_one(m0, 131, "replugged"), 0);
	t_sent = now_monotonic_usec();
	printf("# replug -> ok in %.1f s, -> sent in %.1f s\n", (double)(t_ok - t0) / 1e6,
	       (double)(t_sent - t0) / 1e6);
	check(t_sent - t0 < RECOVERY_MAX_USEC);
	check(sim_got(NUMBER, "replugged"));
}

/* gsm1 comes back as DIR/ttyUSB7, DIR/gsm1 gone: found by its IMEI. The Modem holding ttyACM0
 * must not see a single command meanwhile. */
static void test_renumbered(Modem *m1)
{
	char dir7[512];
	long long acm_commands = sim_stat("ttyACM0", "commands");
	uint64_t t0, t_ok;
	ModemStatus st;

	sim_path(dir7, sizeof(dir7), "ttyUSB7");
	harness_untrack(m1);
	check(sim_control("{\"cmd\":\"unplug\",\"modem\":\"gsm1\"}"));
	check(harness_wait_state(m1, 1u << MODEM_STATE_ABSENT, &st, 3000));
	harness_idle(m1, 1500);
	st = harness_last_status(m1);
	printf("# while gone: %s\n", st.reason);
	check(strstr(st.reason, "no modem with IMEI") != NULL);

	harness_untrack(m1);
	t0 = now_monotonic_usec();
	check(sim_control("{\"cmd\":\"replug\",\"modem\":\"gsm1\",\"path\":\"ttyUSB7\"}"));
	check(harness_wait_state(m1, 1u << MODEM_STATE_OK, &st, 20000));
	t_ok = now_monotonic_usec();
	check_str(st.device, dir7);
	check_str(st.imei, imei1);
	check_int(send_one(m1, 140, "renumbered"), 0);
	printf("# renumbered port found by IMEI: ok in %.1f s, sent in %.1f s\n",
	       (double)(t_ok - t0) / 1e6, (double)(now_monotonic_usec() - t0) / 1e6);
	check(now_monotonic_usec() - t0 < RECOVERY_MAX_USEC);
	check(sim_got(NUMBER, "renumbered"));

	harness_drain(acm);
	check_int(sim_stat("ttyACM0", "commands"), acm_commands);
	check(harness_last_status(acm).state == MODEM_STATE_OK);
	check_int(send_one(acm, 141, "undisturbed"), 0);
}

/* gsm2 answers another IMEI than configured: failed, never used. */
static void test_wrong_imei(Modem *m2)
{
	char expect[1200], dev2[512];
	ModemStatus st = harness_last_status(m2);

	sim_path(dev2, sizeof(dev2), "gsm2");
	snprintf(expect, sizeof(expect), "IMEI mismatch: found %s on %s, expected %s", imei2, dev2,
	         WRONG_IMEI);
	check(st.state == MODEM_STATE_FAILED);
	check_str(st.reason, expect);
	check(send_one(m2, 150, "must not go out") < 0);
	check_int(sim_stat("gsm2", "sms"), 0);
	check_int(sim_stat("gsm2", "parts"), 0);
}

int main(void)
{
	static const char *const names[] = {"gsm0", "gsm1", "gsm2", "ttyACM0", NULL};
	const char *script = getenv("MODEMSIM") ? getenv("MODEMSIM") : MODEMSIM;
	char dev0[512], dev1[512], dev2[512], devacm[512];
	uint64_t t0, t_all = now_monotonic_usec();
	Modem *m0 = NULL, *m1 = NULL, *m2 = NULL;
	ModemStatus st;

	log_setup("test-modem-recovery");
	if (access(PYTHON, X_OK) < 0) {
		printf("# skip: %s not found\n", PYTHON);
		return 77;
	}
	if (access(script, R_OK) < 0) {
		printf("# skip: modem simulator %s not found\n", script);
		return 77;
	}
	if (sim_start(script, names, NULL) < 0) {
		fprintf(stderr, "The simulator did not start; see %s/sim.log\n", sim_dir);
		setenv("KEEP_SIM_DIR", "1", 1);
		sim_stop();
		return EXIT_FAILURE;
	}
	check(sim_imei("gsm1", imei1, sizeof(imei1)));
	check(sim_imei("gsm2", imei2, sizeof(imei2)));
	check(!streq(imei2, WRONG_IMEI));

	sim_path(dev0, sizeof(dev0), "gsm0");
	sim_path(dev1, sizeof(dev1), "gsm1");
	sim_path(dev2, sizeof(dev2), "gsm2");
	sim_path(devacm, sizeof(devacm), "ttyACM0");
	m0 = harness_modem(&(ModemSettings){.name = "gsm0",
	                                    .device = dev0,
	                                    .health_interval_sec = 1,
	                                    .send_timeout_sec = 20,
	                                    .min_signal = 10,
	                                    .max_consecutive_failures = 3});
	m1 = harness_modem(&(ModemSettings){.name = "gsm1", .device = dev1, .imei = imei1});
	m2 = harness_modem(&(ModemSettings){.name = "gsm2", .device = dev2, .imei = WRONG_IMEI});
	acm = harness_modem(&(ModemSettings){.name = "acm",
	                                     .device = devacm,
	                                     .health_interval_sec = 600,
	                                     .inbox_interval_sec = 600});
	if (!m0 || !m1 || !m2 || !acm) {
		check(!"modems created");
		goto finish;
	}

	t0 = now_monotonic_usec();
	check(harness_wait_state(m0, 1u << MODEM_STATE_OK, &st, 30000));
	check_str(st.device, dev0);
	check(harness_wait_state(m1, 1u << MODEM_STATE_OK, &st, 30000));
	printf("# gsm1 found by IMEI in %.1f s\n", (double)(now_monotonic_usec() - t0) / 1e6);
	check_str(st.device, dev1);
	check_str(st.imei, imei1);
	check(harness_wait_state(acm, 1u << MODEM_STATE_OK, NULL, 30000));
	check(harness_wait_state(m2, 1u << MODEM_STATE_FAILED, NULL, 30000));

	run_arg(test_wrong_imei, m2);
	run_arg(test_weak_signal, m0);
	run_arg(test_renumbered, m1);
	run_arg(test_consecutive_failures, m0);
	run_arg(test_unplug_replug, m0);
	/* Still refused after all that probing. */
	harness_drain(m2);
	run_arg(test_wrong_imei, m2);

finish:
	t0 = now_monotonic_usec();
	modem_free(m0);
	modem_free(m1);
	modem_free(m2);
	modem_free(acm);
	check(now_monotonic_usec() - t0 < 15 * USEC_PER_SEC);
	printf("# all done in %.1f s\n", (double)(now_monotonic_usec() - t_all) / 1e6);
	if (test_failures)
		setenv("KEEP_SIM_DIR", "1", 1);
	sim_stop();
	return test_exit();
}
