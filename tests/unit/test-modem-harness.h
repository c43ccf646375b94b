/* test-modem-harness: the modem simulator and event helpers shared by the modem/ integration
 * tests (test-modem-sim.c, test-modem-recovery.c).
 *
 * One simulator per test program, in a temporary directory (kept when KEEP_SIM_DIR is set or a
 * test failed). Events are read from Modems only through harness_wait_event() and friends: status
 * events are tracked per modem (harness_wait_state()), received SMS and delivery reports are
 * logged (harness_received()), the harness owning their texts. Every wait is bounded. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "modem.h"

#define PYTHON "/usr/bin/python3"

extern char sim_dir[];

/* Starts the simulator with --modem NAME for each of modems (NULL-terminated), then the extra
 * arguments (NULL-terminated, may be NULL). 0, or -errno; the log is sim_dir/sim.log. */
int sim_start(const char *script, const char *const *modems, const char *const *extra);
void sim_stop(void);
void sim_path(char *buf, size_t size, const char *name);
/* One control request (printf-style JSON line); the reply when it says "ok": true, else NULL
 * (printed). json_decref() it. */
json_t *sim_request(const char *format, ...) __attribute__((format(printf, 1, 2)));
bool sim_control(const char *format, ...) __attribute__((format(printf, 1, 2)));
/* An integer field of {"cmd":"stats"} for modem, -1 if missing. */
long long sim_stat(const char *modem, const char *field);
/* How many messages the modem's storage holds of kind ("deliver", "status_report", NULL: any). */
int sim_stored(const char *modem, const char *kind);
/* Whether the simulator logged a completed SMS to number with this text. */
bool sim_got(const char *number, const char *text);

Modem *harness_modem(const ModemSettings *settings);

/* Waits up to timeout_ms for an event of type (MODEM_EVENT_STATUS or MODEM_EVENT_SENT) from m;
 * every event seen on the way is printed, tracked or logged. */
bool harness_wait_event(Modem *m, ModemEventType type, ModemEvent *ev, int timeout_ms);
/* Waits until m has reported a state in mask (a set of 1 << state) since the last such wait. */
bool harness_wait_state(Modem *m, unsigned mask, ModemStatus *ret, int timeout_ms);
/* Forgets the states m reported so far. */
void harness_untrack(const Modem *m);
/* The latest status m reported (zeroes if none). */
ModemStatus harness_last_status(const Modem *m);
/* Reads pending events of m without waiting. */
void harness_drain(Modem *m);

/* Received SMS / delivery reports of m logged so far, oldest first. */
size_t harness_received_count(const Modem *m, ModemEventType type);
const ModemEvent *harness_received(const Modem *m, ModemEventType type, size_t i);
/* Waits until at least count of them were logged. */
bool harness_wait_received(Modem *m, ModemEventType type, size_t count, int timeout_ms);
/* Events of m that arrived in the next ms milliseconds (drains while waiting). */
void harness_idle(Modem *m, int ms);
