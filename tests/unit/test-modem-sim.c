/* test-modem-sim: modem/ end to end, through libgammu, against the modem simulator on ptys.
 *
 * Five simulated modems: gsm0 without PIN, gsm1 asking for PIN 1234 (we give it), gsm2 asking
 * for it too (we give a wrong one), gsm3 receiving SMS and delivery reports, gsm4 refusing
 * new-message indications (AT+CNMI). Checks status reports, sends (plain, Unicode, multipart)
 * compared with what the simulator decoded, +CMS errors and their classification, health
 * (signal threshold, roaming, registration), a hung modem (watchdog, reconnect), an unplugged
 * one, received SMS (single, multipart, GSM and UCS-2, a set missing a part) reported once per
 * connection and deleted only once confirmed, again after a reconnect with the same key, and
 * status reports. Every wait is bounded. Exits 77 when python3 or the simulator is missing.
 * Recovery, IMEI and failure thresholds are in test-modem-recovery.c. */
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
#define NUMBER "+32470000001"

#define run_arg(fn, arg)                                                                           \
	do {                                                                                       \
		int _before = test_failures;                                                       \
		fn(arg);                                                                           \
		printf("%s %s\n", test_failures == _before ? "ok  " : "FAIL", #fn);                \
	} while (0)

#define wait_event harness_wait_event
#define wait_state harness_wait_state
#define untrack    harness_untrack

static Modem *new_modem(const char *name, const char *pin, unsigned health_interval,
                        unsigned send_timeout, unsigned command_timeout)
{
	char device[512];

	sim_path(device, sizeof(device), name);
	return harness_modem(&(ModemSettings){.name = name,
	                                      .device = device,
	                                      .connection = "at",
	                                      .pin = pin,
	                                      .health_interval_sec = health_interval,
	                                      .send_timeout_sec = send_timeout,
	                                      .command_timeout_sec = command_timeout});
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
		check(sim_got(NUMBER, texts[i]));
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
	check(sim_got(NUMBER, "after the failures"));
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
	check_str(st.registration, "home");
	/* min_signal 5 (the default): below it is weak, 5 itself is not. */
	check(sim_control("{\"cmd\":\"set\",\"modem\":\"gsm0\",\"signal\":5}"));
	check(wait_state(m0, 1u << MODEM_STATE_OK, &st, 10000));
	check_int(st.signal, 5);

	check(sim_control("{\"cmd\":\"set\",\"modem\":\"gsm0\",\"signal\":20,"
	                  "\"roaming\":true}"));
	check(wait_state(m0, 1u << MODEM_STATE_DEGRADED, &st, 10000));
	check_str(st.reason, "roaming");
	check_str(st.registration, "roaming");
	/* Degraded still sends. */
	check_int(modem_send(m0, 50, NUMBER, "while roaming"), 0);
	check(wait_event(m0, MODEM_EVENT_SENT, &ev, 30000));
	check_int(ev.result, 0);

	check(sim_control("{\"cmd\":\"set\",\"modem\":\"gsm0\",\"registered\":false}"));
	check(wait_state(m0, 1u << MODEM_STATE_FAILED, &st, 10000));
	check_str(st.reason, "not registered");
	check_str(st.registration, "none");
	check_str(st.operator_name, "");
	check_int(modem_send(m0, 51, NUMBER, "nowhere to go"), 0);
	check(wait_event(m0, MODEM_EVENT_SENT, &ev, 5000));
	check_int(ev.result, -ENOTCONN);

	/* +CREG: 3 */
	check(sim_control("{\"cmd\":\"set\",\"modem\":\"gsm0\",\"registered\":true,"
	                  "\"creg\":3}"));
	check(wait_state(m0, 1u << MODEM_STATE_FAILED, &st, 10000));
	check_str(st.reason, "registration denied");
	check_str(st.registration, "denied");
	check(sim_control("{\"cmd\":\"set\",\"modem\":\"gsm0\",\"creg\":null}"));

	check(sim_control("{\"cmd\":\"set\",\"modem\":\"gsm0\",\"registered\":true,"
	                  "\"roaming\":false}"));
	check(wait_state(m0, 1u << MODEM_STATE_OK, &st, 10000));
	check_str(st.reason, "");
	check_str(st.registration, "home");
	check(st.last_send_usec > 0 && st.last_send_usec <= now_realtime_usec());
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

/* A modem that speaks text mode only refuses AT+CMGF=0: libgammu sends for it, in text mode,
 * instead of the PDU exchange. Replugged around the change, so that the new connection is the
 * first to ask. */
static void test_text_mode_only(Modem *m1)
{
	ModemEvent ev;

	untrack(m1);
	check(sim_control("{\"cmd\":\"set\",\"modem\":\"gsm1\",\"pdu\":false}"));
	check(sim_control("{\"cmd\":\"unplug\",\"modem\":\"gsm1\"}"));
	check(wait_state(m1, 1u << MODEM_STATE_ABSENT | 1u << MODEM_STATE_FAILED, NULL, 30000));
	check(sim_control("{\"cmd\":\"replug\",\"modem\":\"gsm1\"}"));
	check(wait_state(m1, 1u << MODEM_STATE_OK, NULL, 60000));
	check_int(modem_send(m1, 32, NUMBER, "from a text mode modem"), 0);
	check(wait_event(m1, MODEM_EVENT_SENT, &ev, 30000));
	check_int(ev.job, 32);
	check_int(ev.result, 0);
	check(sim_got(NUMBER, "from a text mode modem"));
	check(sim_control("{\"cmd\":\"set\",\"modem\":\"gsm1\",\"pdu\":true}"));
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
	check(sim_got(NUMBER, "replugged"));
}

/* ---- receiving ---- */

static const ModemEvent *received(Modem *m, size_t i)
{
	return harness_received(m, MODEM_EVENT_SMS_RECEIVED, i);
}

static bool key_is_hex(const char *key)
{
	return strlen(key) == MODEM_KEY_LEN && strspn(key, "0123456789abcdef") == MODEM_KEY_LEN;
}

/* Injects an SMS into name's SIM (extra: more JSON members, starting with a comma, or ""). */
static bool inject(const char *name, const char *from, const char *text, const char *extra)
{
	json_t *t = json_string(text);
	char *quoted = t ? json_dumps(t, JSON_ENCODE_ANY) : NULL;
	bool ok = quoted && sim_control("{\"cmd\":\"inject_sms\",\"modem\":\"%s\",\"from\":\"%s\","
	                                "\"text\":%s%s}",
	                                name, from, quoted, extra);

	free(quoted);
	json_decref(t);
	return ok;
}

/* Waits until the simulator's storage of name holds count messages of kind. */
static bool wait_stored(Modem *m, const char *name, const char *kind, int count, int timeout_ms)
{
	uint64_t end = now_monotonic_usec() + (uint64_t)timeout_ms * 1000;

	for (;;) {
		int n = sim_stored(name, kind);

		if (n == count)
			return true;
		if (now_monotonic_usec() >= end) {
			printf("# %s holds %d %s message(s), expected %d\n", name, n,
			       kind ? kind : "", count);
			return false;
		}
		harness_idle(m, 50);
	}
}

/* Whether the simulator still stores a message with this text (of a part) for name. */
static bool sim_has_text(const char *name, const char *text)
{
	json_t *j = sim_request("{\"cmd\":\"stats\",\"modem\":\"%s\"}", name), *msg;
	bool found = false;
	size_t i;

	json_array_foreach(json_object_get(j, "messages"), i,
	                   msg) if (streq_ptr(json_string_value(json_object_get(msg, "text")),
	                                      text)) found = true;
	json_decref(j);
	return found;
}

static char long_gsm[401], long_ucs2[600];
static uint64_t tokens[8];
static char keys[8][MODEM_KEY_LEN + 1];

/* Single and multipart, GSM 7-bit and UCS-2, an alphanumeric sender, a set missing a part:
 * each reported once, with its parts joined, and left on the SIM. */
static void test_receive(Modem *m3)
{
	const char *texts[] = {"ACK 1234", long_gsm, unicode_text, long_ucs2, long_gsm};
	const char *froms[] = {"+32470100001", "+32470100002", "MyBank", "+32470100004",
	                       "+32470100005"};
	const unsigned parts[] = {1, 3, 1, 3, 3};
	uint64_t t0 = now_realtime_usec();
	const ModemEvent *ev;

	check(inject("gsm3", froms[0], texts[0], ""));
	check(harness_wait_received(m3, MODEM_EVENT_SMS_RECEIVED, 1, 5000));
	check(inject("gsm3", froms[1], texts[1], ""));
	check(harness_wait_received(m3, MODEM_EVENT_SMS_RECEIVED, 2, 5000));
	check(inject("gsm3", froms[2], texts[2], ""));
	check(harness_wait_received(m3, MODEM_EVENT_SMS_RECEIVED, 3, 5000));
	check(inject("gsm3", froms[3], texts[3], ",\"unicode\":true,\"ref\":4660,\"ref16\":true"));
	check(harness_wait_received(m3, MODEM_EVENT_SMS_RECEIVED, 4, 5000));

	/* Parts 1 and 3 only: the set waits for part 2. */
	check(inject("gsm3", froms[4], texts[4], ",\"ref\":77,\"parts\":[1,3]"));
	harness_idle(m3, 1500);
	check_int(harness_received_count(m3, MODEM_EVENT_SMS_RECEIVED), 4);
	check(inject("gsm3", froms[4], texts[4], ",\"ref\":77,\"parts\":[2]"));
	check(harness_wait_received(m3, MODEM_EVENT_SMS_RECEIVED, 5, 5000));

	/* Every scan (one per +CMTI) saw the earlier ones again: still one event each. */
	harness_idle(m3, 500);
	check_int(harness_received_count(m3, MODEM_EVENT_SMS_RECEIVED), 5);
	for (size_t i = 0; i < 5; i++) {
		ev = received(m3, i);
		if (!ev)
			break;
		check_str(ev->from, froms[i]);
		check_str(ev->text, texts[i]);
		check_int(ev->parts, parts[i]);
		check(key_is_hex(ev->key));
		check(ev->token != 0);
		check(ev->smsc_time_usec + 120 * USEC_PER_SEC > t0 &&
		      ev->smsc_time_usec < now_realtime_usec() + 120 * USEC_PER_SEC);
		check(ev->received_usec >= t0 && ev->received_usec <= now_realtime_usec());
		for (size_t j = 0; j < i; j++) {
			check(!streq(ev->key, keys[j]));
			check(ev->token != tokens[j]);
		}
		tokens[i] = ev->token;
		memcpy(keys[i], ev->key, sizeof(keys[i]));
	}
	/* Nothing is deleted before it is confirmed. */
	check_int(sim_stored("gsm3", "deliver"), 11);
}

/* modem_sms_stored() deletes; a reconnect reports the rest again with the same keys; a late
 * confirmation of an older report still gets the message deleted. */
static void test_receive_confirm(Modem *m3)
{
	size_t before;

	check_int(modem_sms_stored(m3, 0), -ENOENT);
	check_int(modem_sms_stored(m3, UINT64_MAX), -ENOENT);
	check_int(modem_sms_stored(m3, tokens[0]), 0);
	check(wait_stored(m3, "gsm3", "deliver", 10, 5000));
	check(!sim_has_text("gsm3", "ACK 1234"));
	check_int(modem_sms_stored(m3, tokens[1]), 0); /* its 3 parts */
	check(wait_stored(m3, "gsm3", "deliver", 7, 5000));
	check_int(modem_sms_stored(m3, tokens[0]), 0); /* again: nothing left to do */

	/* A new connection reports the three unconfirmed ones again, same keys, new tokens. */
	untrack(m3);
	before = harness_received_count(m3, MODEM_EVENT_SMS_RECEIVED);
	check(sim_control("{\"cmd\":\"unplug\",\"modem\":\"gsm3\"}"));
	check(wait_state(m3, 1u << MODEM_STATE_ABSENT, NULL, 5000));
	check(sim_control("{\"cmd\":\"replug\",\"modem\":\"gsm3\"}"));
	check(wait_state(m3, 1u << MODEM_STATE_OK, NULL, 15000));
	check(harness_wait_received(m3, MODEM_EVENT_SMS_RECEIVED, before + 3, 5000));
	harness_idle(m3, 300);
	check_int(harness_received_count(m3, MODEM_EVENT_SMS_RECEIVED), before + 3);
	for (size_t i = 0; i < 3; i++) {
		const ModemEvent *ev = received(m3, before + i);
		bool known = false;

		if (!ev)
			break;
		for (size_t j = 2; j < 5; j++) {
			const char *text = j == 2 ? unicode_text : j == 3 ? long_ucs2 : long_gsm;

			if (!streq(ev->key, keys[j]))
				continue;
			known = true;
			check(ev->token != tokens[j]);
			check_str(ev->text, text);
			if (j != 2) /* #2 keeps the token of the old connection */
				tokens[j] = ev->token;
		}
		check(known);
	}
	/* #3 and #4 by their new tokens: deleted now. #2 by its token of the old connection:
	 * deleted when next seen, without being reported again. */
	check_int(modem_sms_stored(m3, tokens[3]), 0);
	check_int(modem_sms_stored(m3, tokens[4]), 0);
	check_int(modem_sms_stored(m3, tokens[2]), 0);
	check(wait_stored(m3, "gsm3", "deliver", 1, 5000));
	check(sim_has_text("gsm3", unicode_text));
	check(inject("gsm3", "+32470100009", "next one", ""));
	check(harness_wait_received(m3, MODEM_EVENT_SMS_RECEIVED, before + 4, 5000));
	check(wait_stored(m3, "gsm3", "deliver", 1, 5000));
	check(!sim_has_text("gsm3", unicode_text));
	harness_idle(m3, 300);
	check_int(harness_received_count(m3, MODEM_EVENT_SMS_RECEIVED), before + 4);
	if (received(m3, before + 3)) {
		check_str(received(m3, before + 3)->text, "next one");
		check_int(modem_sms_stored(m3, received(m3, before + 3)->token), 0);
	}
	check(wait_stored(m3, "gsm3", "deliver", 0, 5000));
}

/* Status reports asked for with TP-SRR come back stored (+CDSI) and are deleted once
 * confirmed. */
static void test_delivery_reports(Modem *m3)
{
	static const struct {
		const char *sim_status;
		bool delivered, permanent;
		const char *words;
	} cases[] = {
	        {"delivered", true, false, "delivered"},
	        {"failed", false, true, "failed: not obtainable"},
	        {"pending", false, false, "pending: recipient busy"},
	};
	ModemStatus st = harness_last_status(m3);

	check(st.delivery_reports_supported);
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		const ModemEvent *rep;
		ModemEvent ev;

		check(sim_control("{\"cmd\":\"status_reports\",\"modem\":\"gsm3\","
		                  "\"status\":\"%s\",\"delay\":0.2}",
		                  cases[i].sim_status));
		check_int(modem_send(m3, 70 + i, NUMBER, "report me"), 0);
		check(wait_event(m3, MODEM_EVENT_SENT, &ev, 30000));
		check_int(ev.result, 0);
		check(harness_wait_received(m3, MODEM_EVENT_DELIVERY_REPORT, i + 1, 5000));
		rep = harness_received(m3, MODEM_EVENT_DELIVERY_REPORT, i);
		if (!rep)
			continue;
		check_int(rep->message_ref, ev.message_ref);
		check_str(rep->number, NUMBER);
		check_int(rep->delivered, cases[i].delivered);
		check_int(rep->permanent, cases[i].permanent);
		check_str(rep->delivery_status, cases[i].words);
		check(key_is_hex(rep->key));
		check(rep->at_usec > 0 && rep->at_usec < now_realtime_usec() + 120 * USEC_PER_SEC);
		check(rep->token != 0); /* stored on the SIM (+CDSI): to be confirmed */
		check_int(sim_stored("gsm3", "status_report"), 1);
		check_int(modem_sms_stored(m3, rep->token), 0);
		check(wait_stored(m3, "gsm3", "status_report", 0, 5000));
	}
	harness_idle(m3, 300);
	check_int(harness_received_count(m3, MODEM_EVENT_DELIVERY_REPORT), ELEMENTSOF(cases));
}

/* Without AT+CNMI: the inbox is read on a timer, and no status reports are asked for. */
static void test_no_indications(Modem *m4)
{
	ModemStatus st = harness_last_status(m4);
	uint64_t t0;
	ModemEvent ev;

	check(!st.delivery_reports_supported);
	t0 = now_monotonic_usec();
	check(inject("gsm4", "+32470100011", "polled", ""));
	check(harness_wait_received(m4, MODEM_EVENT_SMS_RECEIVED, 1, 6000));
	printf("# read by the periodic scan after %.1f s\n",
	       (double)(now_monotonic_usec() - t0) / 1e6);
	if (received(m4, 0))
		check_str(received(m4, 0)->text, "polled");
	check_int(modem_send(m4, 80, NUMBER, "no report wanted"), 0);
	check(wait_event(m4, MODEM_EVENT_SENT, &ev, 30000));
	check_int(ev.result, 0);
	harness_idle(m4, 500);
	check_int(sim_stat("gsm4", "status_reports"), 0);
	check_int(harness_received_count(m4, MODEM_EVENT_DELIVERY_REPORT), 0);
}

int main(void)
{
	static const char *const names[] = {"gsm0", "gsm1", "gsm2", "gsm3", "gsm4", NULL};
	const char *script = getenv("MODEMSIM") ? getenv("MODEMSIM") : MODEMSIM;
	Modem *m0, *m1, *m2, *m3, *m4;
	char dev3[512], dev4[512];
	uint64_t t0, t_all = now_monotonic_usec();
	ModemStatus st;
	ModemEvent ev;

	log_setup("test-modem-sim");
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
	memset(long_text, 'x', 400);
	for (unsigned i = 0; i < 400; i += 50)
		long_text[i] = (char)('A' + i / 50);
	for (unsigned i = 0; i < 400; i++)
		long_gsm[i] = (char)('a' + i % 26);
	/* 150 UCS-2 characters: 3 parts of at most 66 with a 16-bit reference. */
	for (unsigned i = 0, n = 0; i < 150; i++)
		n += (unsigned)snprintf(long_ucs2 + n, sizeof(long_ucs2) - n, "%s",
		                        i % 3 == 0   ? "ж"
		                        : i % 3 == 1 ? "✓"
		                                     : "z");

	check(sim_control(
	        "{\"cmd\":\"pin\",\"modem\":\"gsm1\",\"required\":true,\"pin\":\"1234\"}"));
	check(sim_control(
	        "{\"cmd\":\"pin\",\"modem\":\"gsm2\",\"required\":true,\"pin\":\"1234\"}"));
	check(sim_control("{\"cmd\":\"set\",\"modem\":\"gsm4\",\"cnmi\":false}"));

	t0 = now_monotonic_usec();
	m0 = new_modem("gsm0", NULL, 2, 20, 10);
	m1 = new_modem("gsm1", "1234", 0, 4, 3);
	m2 = new_modem("gsm2", "0000", 0, 20, 10);
	sim_path(dev3, sizeof(dev3), "gsm3");
	m3 = harness_modem(&(ModemSettings){.name = "gsm3",
	                                    .device = dev3,
	                                    .inbox_interval_sec = 600, /* indications only */
	                                    .delivery_reports = true});
	sim_path(dev4, sizeof(dev4), "gsm4");
	m4 = harness_modem(&(ModemSettings){
	        .name = "gsm4", .device = dev4, .inbox_interval_sec = 2, .delivery_reports = true});
	if (!m0 || !m1 || !m2 || !m3 || !m4) {
		check(!"modems created");
		goto finish;
	}

	check(wait_state(m0, 1u << MODEM_STATE_OK, &st, 30000));
	printf("# gsm0 ok after %.1f s\n", (double)(now_monotonic_usec() - t0) / 1e6);
	check(st.signal >= 0 && st.signal <= 31);
	check(st.operator_name[0] != 0);
	check(st.imei[0] != 0);
	check(st.delivery_reports_supported); /* AT+CNMI accepted, reports or not */
	check(wait_state(m1, 1u << MODEM_STATE_OK, NULL, 30000));
	check(wait_state(m2, 1u << MODEM_STATE_FAILED, &st, 30000));
	check_str(st.reason, "wrong PIN");
	check_int(modem_send(m2, 1, NUMBER, "refused"), 0);
	check(wait_event(m2, MODEM_EVENT_SENT, &ev, 5000));
	check_int(ev.result, -ENOTCONN);
	m2 = modem_free(m2);
	check(wait_state(m3, 1u << MODEM_STATE_OK, NULL, 30000));
	check(wait_state(m4, 1u << MODEM_STATE_OK, NULL, 30000));

	run_arg(test_sends, m0);
	run_arg(test_errors, m0);
	run_arg(test_status, m0);
	run_arg(test_hang, m1);
	run_arg(test_text_mode_only, m1);
	run_arg(test_unplug, m0);
	run_arg(test_receive, m3);
	run_arg(test_receive_confirm, m3);
	run_arg(test_delivery_reports, m3);
	run_arg(test_no_indications, m4);
	/* gsm0 never asked for a status report. */
	check_int(sim_stat("gsm0", "status_reports"), 0);

finish:
	t0 = now_monotonic_usec();
	modem_free(m0);
	modem_free(m1);
	modem_free(m2);
	modem_free(m3);
	modem_free(m4);
	check(now_monotonic_usec() - t0 < 15 * USEC_PER_SEC);
	printf("# all done in %.1f s\n", (double)(now_monotonic_usec() - t_all) / 1e6);
	if (test_failures)
		setenv("KEEP_SIM_DIR", "1", 1);
	sim_stop();
	return test_exit();
}
