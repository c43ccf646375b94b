/* modem: one GSM modem, driven through libgammu by a worker thread that alone owns its
 * GSM_StateMachine.
 *
 * Threads: every function here is called from the main thread only, except
 * modem_count_parts(), which any thread may call. The worker never calls back into the caller:
 * it queues ModemEvents and makes modem_fd() readable (an eventfd); the main loop drains them
 * with modem_next_event(). Nothing here blocks the caller: modem_send() only queues.
 *
 * Ownership: a Modem is created by modem_new() and freed by modem_free(), which stops the worker
 * (joining it; a worker stuck inside libgammu is abandoned at the deadline, not waited for).
 * Strings passed in are copied. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Modem Modem;

typedef struct ModemSettings {
	const char *name;             /* [modem NAME] */
	const char *device;           /* e.g. /dev/ttyUSB0 */
	const char *connection;       /* libgammu connection name, e.g. "at115200" (default "at") */
	const char *pin;              /* SIM PIN, or NULL */
	unsigned health_interval_sec; /* signal/registration poll; default 30 */
	unsigned send_timeout_sec;    /* default 60 */
	unsigned command_timeout_sec; /* default 10 */
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
	char reason[128]; /* empty when state is ok */
	int signal;       /* 27.007 CSQ value 0-31, 99 unknown */
	char operator_name[64];
	char imei[32];
	char model[64];
} ModemStatus;

typedef enum ModemEventType {
	MODEM_EVENT_STATUS, /* status changed (state, signal, operator...) */
	MODEM_EVENT_SENT,   /* a job finished: result says how */
} ModemEventType;

typedef struct ModemEvent {
	ModemEventType type;
	/* MODEM_EVENT_SENT */
	uint64_t job;    /* the id given to modem_send() */
	int result;      /* 0 accepted by the SMS centre, <0 -errno-style failure */
	bool permanent;  /* the network refused this destination for good (CMS 1, 21, 28...) */
	int message_ref; /* TP-MR of the last part, -1 if unknown */
	unsigned parts;  /* SMS parts sent */
	char error[128]; /* words for the operator, e.g. "+CMS ERROR: 500", empty on success */
	/* MODEM_EVENT_STATUS */
	ModemStatus status;
} ModemEvent;

int modem_new(const ModemSettings *settings, Modem **ret);
/* Starts the worker thread (which connects, enters the PIN and reports status). */
int modem_start(Modem *m);
/* Stops the worker (a send in progress gets a few seconds to finish, then is aborted) but keeps
 * the Modem, so that the caller can still drain the last events: every job not yet answered is
 * answered by then (result -ESHUTDOWN, "modem stopped"), except the one of a worker abandoned
 * inside libgammu. Later modem_send() calls fail with -ESHUTDOWN. modem_free() calls it. */
int modem_stop(Modem *m);
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

/* Takes the next pending event: 1 with *ret filled, 0 when there is none. */
int modem_next_event(Modem *m, ModemEvent *ret);

/* How many SMS parts libgammu would use for text (GSM 7-bit, or UCS-2 when needed). */
int modem_count_parts(const char *text, unsigned *ret_parts);
