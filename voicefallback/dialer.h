/* dialer: one voice call at a time on one modem, supervised from dial to hang-up.
 *
 * dialer_call() opens the modem's port, talks to it through a Chat (chat.h), dials, follows the
 * call until it is answered, busy, rejected, unanswered or failed, keeps an answered call up for
 * the hold time while listening for DTMF, hangs up, closes the port and reports. Every path ends
 * with a hang-up (ATH, else AT+CHUP, checked with AT+CLCC or AT+CPAS) unless the port is gone,
 * and every path ends: each AT command has a deadline and the whole call has one too.
 *
 * The port is the Dialer's only while a call runs, from dialer_call() until just before the
 * done handler is called; then it is closed, so gatewayd can hand a GSM modem's port to the
 * dialer and take it back (DESIGN: Voice hand-over). The dialer knows nothing of modem/.
 *
 * Threads: only the thread that runs the sd_event given to dialer_new() may call these.
 *
 * Ownership: strings passed in are copied. The DialerReport given to the done handler, and its
 * strings, live only during that call. The done handler may call dialer_call() again (the port
 * is closed by then) or dialer_free().
 *
 * Returns: ≥0 on success, -errno on failure. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "call.h"

#define DIALER_NUMBER_MAX 32 /* digits of a number, not counting a leading '+' */
#define DIALER_DTMF_MAX   16 /* DTMF digits kept per call */
#define DIALER_ERROR_MAX  160

#define DIALER_RING_TIMEOUT_DEFAULT_USEC    (45 * 1000 * 1000ULL)
#define DIALER_HOLD_DEFAULT_USEC            (10 * 1000 * 1000ULL)
#define DIALER_COMMAND_TIMEOUT_DEFAULT_USEC (5 * 1000 * 1000ULL)
#define DIALER_POLL_INTERVAL_USEC           (500 * 1000ULL) /* AT+CLCC / AT+CPAS without URCs */
#define DIALER_POLL_INTERVAL_URC_USEC       (2 * 1000 * 1000ULL) /* safety net beside +CLCC URCs */

typedef struct Dialer Dialer;

/* All zero means the defaults. */
typedef struct DialerOptions {
	uint64_t ring_timeout_usec;    /* from ATD until no_answer (then hang-up); 0: 45 s */
	uint64_t hold_usec;            /* an answered call stays up this long; 0: 10 s */
	uint64_t command_timeout_usec; /* deadline of one AT command; 0: 5 s */
	char ack_digit;                /* the DTMF digit that acknowledges; 0: '1' */
	bool hangup_on_ack;            /* end the hold as soon as ack_digit arrives */
	const char *alert_id;          /* for log context only; may be NULL */
} DialerOptions;

typedef struct DialerReport {
	const char *number;
	CallOutcome outcome;
	/* Why, in words, when something went wrong: the modem's final result ("+CME ERROR: 11",
	 * "NO CARRIER"), "port gone: ...", "deadline", "cancelled"; also set beside an outcome
	 * other than failed when the end was not clean ("hang-up not confirmed"). "" if none. */
	const char *error;
	uint64_t started_at;  /* CLOCK_REALTIME µs: dialer_call() */
	uint64_t dialed_at;   /* ATD written; 0 if it never was */
	uint64_t answered_at; /* 0 unless answered */
	uint64_t ended_at;    /* the call ended: hung up by us or the far end, or the port closed */
	uint64_t duration_usec;    /* answer to hang-up; 0 unless answered */
	bool acknowledged_by_dtmf; /* ack_digit arrived while the call was up */
	char dtmf_digit;           /* the first digit received, 0 if none */
	const char *dtmf;          /* every digit received, in order (at most DIALER_DTMF_MAX) */
	/* The modem reports key presses: it took AT+DDET=1, or reported one. Without it, an
	 * answered call without a digit says nothing of whether a human heard it. */
	bool dtmf_detection;
	/* No call of ours is left up: none was dialled, or the modem said so after the hang-up
	 * (AT+CLCC lists none, AT+CPAS is not 4, or where neither works, ATH was answered OK).
	 * False when the port went away or the modem stopped answering after ATD. */
	bool hung_up;
} DialerReport;

typedef void (*DialerDoneHandler)(Dialer *dialer, const DialerReport *report, void *userdata);

/* device_path: the modem's serial port (opened at each call, closed after); name: for logs (the
 * [modem] name), may be NULL. */
int dialer_new(sd_event *event, const char *device_path, const char *name, Dialer **ret);
/* Accepts NULL; returns NULL. During a call it writes one last ATH (best effort) and closes the
 * port without calling the done handler: prefer dialer_cancel() and waiting for it. */
Dialer *dialer_free(Dialer *dialer);

/* Another port for later calls (a modem that came back under another name); -EBUSY during a
 * call. */
int dialer_set_device(Dialer *dialer, const char *device_path);

/* Starts a call to number ('+' optional, then 3-32 digits; nothing else reaches the modem).
 * opt may be NULL. done is called exactly once, later, from the loop, with the outcome; also
 * when the port cannot even be opened (failed). -EINVAL bad number or options, -EBUSY a call is
 * running. */
int dialer_call(Dialer *dialer, const char *number, const DialerOptions *opt,
                DialerDoneHandler done, void *userdata);

/* Ends the running call early: hang-up, then done with the outcome so far (failed, "cancelled",
 * unless it was already answered or decided). -ESRCH when no call runs. */
int dialer_cancel(Dialer *dialer);

bool dialer_is_busy(const Dialer *dialer);

/* Whether number is acceptable to dialer_call(). */
bool dialer_number_is_valid(const char *number);
