/* modem-internal: the side of a Modem that its worker thread sees. Internal to modem/.
 *
 * Only the worker calls these (modem_settings() and modem_watchdog() are constant and may be read
 * by anyone). A ModemJob popped by the worker is the worker's until it hands it back with
 * modem_finish_job(); the same allocation then carries the SENT event, so answering a job never
 * needs memory and can never fail. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "log.h"
#include "modem.h"
#include "watchdog.h"

typedef struct ModemJob {
	struct ModemJob *next;
	uint64_t id;
	const char *number; /* point into data[] */
	const char *text;
	ModemEvent event; /* filled by the worker, then queued as the answer */
	char data[];
} ModemJob;

/* Settings with defaults applied; strings live as long as the Modem. */
const ModemSettings *modem_settings(const Modem *m);
const LogContext *modem_log_context(const Modem *m);
Watchdog *modem_watchdog(const Modem *m);

/* Readable when the worker has something to look at: a job, a confirmation, modem_stop(). The
 * worker clears it with modem_clear_wake() before it looks, so nothing that arrives later is
 * missed. */
int modem_wake_fd(const Modem *m);
void modem_clear_wake(Modem *m);
bool modem_stopping(Modem *m);
bool modem_has_jobs(Modem *m);
/* Takes the oldest queued job, or NULL. It still counts in modem_queue_length(). */
ModemJob *modem_pop_job(Modem *m);
/* Queues job->event (type MODEM_EVENT_SENT, job id set here) and wakes the main loop. */
void modem_finish_job(Modem *m, ModemJob *job);
/* Queues a MODEM_EVENT_STATUS; a status not yet taken by the main loop is replaced. */
void modem_publish_status(Modem *m, const ModemStatus *status);
/* Queues any other event and wakes the main loop; ev->text (if any) becomes the queue's and is
 * set to NULL. Returns 0 or -ENOMEM (then ev is untouched). */
int modem_queue_event(Modem *m, ModemEvent *ev);
/* A token for a received message, never 0, unique for the life of the Modem. */
uint64_t modem_new_token(Modem *m);
/* Takes up to max tokens given to modem_sms_stored(), oldest first. */
size_t modem_take_confirmed(Modem *m, uint64_t *ret, size_t max);
/* Drops a reference; the worker holds one while it runs. */
void modem_unref(Modem *m);
