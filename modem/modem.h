/* modem: one GSM modem, driven through libgammu by a worker thread that alone owns its
 * GSM_StateMachine.
 *
 * Threads: every function here is called from the main thread only, except
 * modem_count_parts() and modem_event_clear(), which any thread may call. The worker never calls
 * back into the caller: it queues ModemEvents and makes modem_fd() readable (an eventfd); the main
 * loop drains them with modem_next_event(). Nothing here blocks the caller: modem_send() and
 * modem_sms_stored() only queue.
 *
 * Ownership: a Modem is created by modem_new() and freed by modem_free(), which stops the worker
 * (joining it; a worker stuck inside libgammu is abandoned at the deadline, not waited for).
 * Strings passed in are copied. An event taken with modem_next_event() may own memory (the text
 * of a received SMS): the caller releases it with modem_event_clear().
 *
 * Received SMS are deleted from the SIM only once the caller says it has stored them durably
 * (modem_sms_stored()); until then they stay on the SIM, and a reconnect or a restart may report
 * them again, with the same key. Every stored PDU is read raw and bounds-checked before libgammu
 * decodes it; one that fails is never decoded but reported as MODEM_EVENT_SMS_QUARANTINED (and
 * deleted the same way, once stored). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Modem Modem;

typedef struct ModemSettings {
	const char *name;       /* [modem NAME] */
	const char *device;     /* e.g. /dev/ttyUSB0; with imei set, where to look first */
	const char *connection; /* libgammu connection name, e.g. "at115200" (default "at") */
	const char *pin;        /* SIM PIN, or NULL */
	/* NULL: use device, whatever modem answers there. Else the modem's IMEI (14-17 digits, as
	 * AT+CGSN prints it): the modem is looked for among the serial ports (device first, then
	 * /dev/serial/by-id/, ttyUSB and ttyACM ports beside device and in /dev), skipping ports
	 * another Modem of this process has open; a modem answering another IMEI is never used. */
	const char *imei;
	unsigned health_interval_sec; /* signal/registration poll; default 30 */
	unsigned send_timeout_sec;    /* default 60 */
	unsigned command_timeout_sec; /* default 10 */
	unsigned inbox_interval_sec;  /* how often the SIM is read for received SMS; default 15 */
	/* CSQ (0-31) below this makes the modem degraded; 0 means the default, 5; negative:
	 * never. */
	int min_signal;
	/* Send errors in a row that are not the destination's fault (not permanent) before the
	 * modem is failed and re-initialised; default 3. */
	unsigned max_consecutive_failures;
	/* Ask the network for a status report on every SMS sent (MODEM_EVENT_DELIVERY_REPORT). */
	bool delivery_reports;
	/* Where the worker notes which stored message it is decoding (decoding-NAME), so that one
	 * that crashes the decoder is quarantined after the restart instead of decoded again. NULL:
	 * no note. */
	const char *state_dir;
} ModemSettings;

typedef enum ModemState {
	MODEM_STATE_ABSENT,   /* device missing or not yet opened */
	MODEM_STATE_FAILED,   /* opened but unusable: no SIM, PIN, not registered, ... */
	MODEM_STATE_DEGRADED, /* usable, with a warning (weak signal, roaming) */
	MODEM_STATE_OK,
	_MODEM_STATE_MAX,
} ModemState;

const char *modem_state_to_string(ModemState s);

typedef struct ModemStatus {
	ModemState state;
	/* Empty when state is ok. Failed: "SIM PIN required", "wrong PIN", "no SIM", "not
	 * registered", "registration denied", "3 consecutive send errors", "IMEI mismatch: found X
	 * on DEVICE, expected Y", "modem not responding: ..."; absent: "device lost: hung up",
	 * "device DEVICE not present", "no modem with IMEI Y found", ... */
	char reason[128];
	int signal; /* 27.007 CSQ value 0-31, 99 unknown */
	char operator_name[64];
	char imei[32];
	char model[64];
	char device[256];        /* the port in use, or the configured one while none is */
	char registration[16];   /* "home", "roaming", "searching", "denied", "none", "unknown" */
	uint64_t last_send_usec; /* CLOCK_REALTIME of the last successful send, 0 if none yet */
	/* The modem accepted new-message indications (AT+CNMI), through which status reports
	 * arrive; false also while not connected. */
	bool delivery_reports_supported;
} ModemStatus;

typedef enum ModemEventType {
	MODEM_EVENT_STATUS,          /* status changed (state, signal, operator...) */
	MODEM_EVENT_SENT,            /* a job finished: result says how */
	MODEM_EVENT_SMS_RECEIVED,    /* an SMS arrived; text is the caller's to free */
	MODEM_EVENT_DELIVERY_REPORT, /* a status report for a message sent with delivery_reports */
	/* A stored message that is never decoded: its PDU failed the bounds check (or crashed the
	 * decoder before). text is its raw PDU in hex, error the reason, slot where it was. */
	MODEM_EVENT_SMS_QUARANTINED,
} ModemEventType;

#define MODEM_KEY_LEN 64

typedef struct ModemEvent {
	ModemEventType type;
	/* MODEM_EVENT_SENT */
	uint64_t job; /* the id given to modem_send() */
	int result;   /* 0 accepted by the SMS centre, <0 -errno-style failure */
	/* SENT: the network refused this destination for good (CMS 1, 21, 28...).
	 * DELIVERY_REPORT: the SMS centre gave up (TP-ST 0x40-0x7F), the message will not
	 * arrive. */
	bool permanent;
	/* SENT: TP-MR of the last part, -1 if unknown. DELIVERY_REPORT: the TP-MR it reports on
	 * (a multipart message gets one report per part; the SENT event names the last one). */
	int message_ref;
	unsigned parts;  /* SENT: SMS parts sent. SMS_RECEIVED: parts joined into text */
	char error[128]; /* words for the operator, e.g. "+CMS ERROR: 500", empty on success */
	/* MODEM_EVENT_STATUS */
	ModemStatus status;
	/* MODEM_EVENT_SMS_QUARANTINED: the memory and index it was stored at, e.g. "SM 3"; error
	 * holds the reason, text the PDU as hex digits (owned like an SMS's text), and key, token
	 * and received_usec are set as for SMS_RECEIVED. */
	char slot[16];
	/* MODEM_EVENT_SMS_RECEIVED */
	char from[64];           /* the sender as given by the network: "+3247...", "MyBank" */
	char *text;              /* UTF-8, malloc'd: owned by the caller, see modem_event_clear() */
	uint64_t smsc_time_usec; /* CLOCK_REALTIME from the SMS centre's timestamp, 0 if unknown */
	uint64_t received_usec;  /* CLOCK_REALTIME when the worker read it */
	/* SMS_RECEIVED and DELIVERY_REPORT: the same message read again (after a reconnect or a
	 * restart) has the same key, 64 lowercase hex digits; the caller dedupes by it. */
	char key[MODEM_KEY_LEN + 1];
	/* Confirm with modem_sms_stored() (also for a key already known); 0: nothing to confirm. */
	uint64_t token;
	/* MODEM_EVENT_DELIVERY_REPORT */
	char number[32];          /* the recipient the report is about */
	bool delivered;           /* TP-ST 0x00-0x1F; else see permanent (false: still trying) */
	char delivery_status[64]; /* words, e.g. "delivered", "failed: not obtainable" */
	uint64_t at_usec;         /* CLOCK_REALTIME of the outcome (TP-DT), 0 if unknown */
} ModemEvent;

int modem_new(const ModemSettings *settings, Modem **ret);
/* Starts the worker thread (which connects, enters the PIN and reports status). */
int modem_start(Modem *m);
/* Stops the worker (a send in progress gets its send timeout plus a few seconds to finish, then
 * is aborted) but keeps the Modem, so that the caller can still drain the last events: every job
 * not yet answered is answered by then (result -ESHUTDOWN, "modem stopped"), except the one of a
 * worker abandoned inside libgammu. Later modem_send() calls fail with -ESHUTDOWN. modem_free()
 * calls it. */
int modem_stop(Modem *m);
/* Tells the worker to stop without waiting: call it for every modem before modem_stop() on each,
 * so that their sends in progress finish side by side rather than one after another. */
void modem_request_stop(Modem *m);
Modem *modem_free(Modem *m);

const char *modem_name(const Modem *m);
/* Readable while events are pending; never changes for the life of the Modem. */
int modem_fd(const Modem *m);

/* Queues one SMS (UTF-8 text; multipart and Unicode are chosen by libgammu). Returns 0, or
 * -ENOBUFS when the modem's queue is full. Exactly one MODEM_EVENT_SENT answers every job.
 * Also -EINVAL (number not '+' and 1-20 digits, text not UTF-8), -EMSGSIZE (text over 32000
 * bytes; a text that needs 50 parts or more is answered with a permanent failure), -ESHUTDOWN
 * (after modem_stop()), -ENOMEM. A job is answered at once with an error while the modem is not
 * ok or degraded. */
int modem_send(Modem *m, uint64_t job, const char *number, const char *text);
/* Jobs queued or in progress. */
size_t modem_queue_length(const Modem *m);

/* Takes the next pending event: 1 with *ret filled, 0 when there is none. ret->text, if not NULL,
 * is handed over to the caller: release it with modem_event_clear(ret). */
int modem_next_event(Modem *m, ModemEvent *ret);
/* Frees what an event owns (ev->text) and sets it to NULL; accepts NULL and a cleared event. */
void modem_event_clear(ModemEvent *ev);

/* The SMS (or stored status report) behind the event carrying token is durably stored: the worker
 * deletes it from the SIM. Call it for every event with a non-zero token, including ones whose
 * key was already known. Returns 0 (also for a token already confirmed or no longer on the SIM),
 * -ENOENT for a token never given out, -ENOBUFS when too many confirmations wait (retry later),
 * -ESHUTDOWN after modem_stop(). */
int modem_sms_stored(Modem *m, uint64_t token);

/* How many SMS parts libgammu would use for text (GSM 7-bit, or UCS-2 when needed). */
int modem_count_parts(const char *text, unsigned *ret_parts);
