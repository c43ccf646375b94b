/* modem: the main thread's handle on one GSM modem.
 *
 * libgammu blocks: connecting takes seconds, every SMS part sleeps ~0.7 s inside the library, and
 * a hung modem can hold a call for half a minute. None of that may reach the main loop, which
 * also serves the cluster and the submit socket. So each modem gets a worker thread (worker.c)
 * that alone owns its GSM_StateMachine, the way redis hands slow work to its bio threads: the
 * main thread only appends a job to a queue and bumps the worker's eventfd; the worker sends,
 * puts the answer on an event queue and bumps another eventfd, which the main loop watches like any
 * other fd and drains with modem_next_event(). The worker sleeps in poll() rather than on a
 * condition variable because it has more to wait for than jobs: its modem's port (a new-message
 * indication, a hang-up) and the directory where a lost port will reappear.
 *
 * Four promises shape the data structures:
 *  - Every job gets exactly one SENT event, whatever happens (sent, refused, modem gone, modem
 *    stopped). The job's own allocation is reused for its event, so answering needs no memory
 *    and cannot fail; the one status event is preallocated too and is overwritten in place while
 *    the main loop has not read it, so a flapping modem cannot grow the queue.
 *  - Nothing grows without bound: jobs are capped (MODEM_QUEUE_MAX), texts too (SMS_TEXT_MAX).
 *  - Waiting costs nothing: the worker sleeps in poll() until the next job, a byte from the modem,
 *    a port appearing or its next timer, so an idle modem burns no CPU and a new job starts within
 *    microseconds.
 *  - Received messages leave the SIM only when the main thread has stored them: events carry a
 *    token, modem_sms_stored() queues it back to the worker (bounded, like the jobs).
 *
 * A worker stuck inside libgammu cannot be interrupted by a flag; the watchdog (watchdog.c) aborts
 * its call at a deadline. If even that does not free it, modem_stop() abandons the thread: the
 * Modem is reference counted, so the late worker still finds its queues and frees them itself. */
#include "modem.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>

#include "log.h"
#include "macro.h"
#include "modem-internal.h"
#include "probe.h"
#include "sms.h"
#include "util.h"
#include "watchdog.h"
#include "worker.h"

#define MODEM_QUEUE_MAX   1024
#define MODEM_CONFIRM_MAX 1024
/* modem_stop() lets a send in progress finish for its send timeout and this long, then aborts
 * it: aborted earlier, an SMS the modem has already taken is sent again after the restart. */
#define MODEM_STOP_GRACE_USEC  (5 * USEC_PER_SEC)
#define MODEM_ABORT_GRACE_USEC (2 * USEC_PER_SEC)

struct Modem {
	atomic_int n_ref;
	ModemSettings settings;
	LogContext log_ctx;
	Watchdog *watchdog;
	int event_fd; /* the main loop's: events pending */
	int wake_fd;  /* the worker's: jobs, confirmations or stop */

	pthread_mutex_t lock;
	bool sync_initialized;
	bool stop;
	bool started;
	bool joined;
	pthread_t thread;

	ModemJob *jobs_head, *jobs_tail;
	size_t n_jobs;    /* queued */
	size_t n_current; /* taken by the worker, not yet answered */
	ModemJob *events_head, *events_tail;
	ModemJob *status_event; /* preallocated; in the event list while status_queued */
	bool status_queued;

	uint64_t *confirmed; /* tokens given to modem_sms_stored(), not yet taken by the worker */
	size_t n_confirmed;
	atomic_uint_least64_t last_token;
};

static const char *const modem_state_table[_MODEM_STATE_MAX] = {
        [MODEM_STATE_ABSENT] = "absent",
        [MODEM_STATE_FAILED] = "failed",
        [MODEM_STATE_DEGRADED] = "degraded",
        [MODEM_STATE_OK] = "ok",
};

const char *modem_state_to_string(ModemState s)
{
	if ((unsigned)s >= _MODEM_STATE_MAX)
		return NULL;
	return modem_state_table[s];
}

static void modem_free_list(ModemJob *j, const ModemJob *keep)
{
	while (j) {
		ModemJob *next = j->next;

		if (j != keep) {
			modem_event_clear(&j->event);
			free(j);
		}
		j = next;
	}
}

static void modem_destroy(Modem *m)
{
	watchdog_free(m->watchdog);
	modem_free_list(m->jobs_head, NULL);
	modem_free_list(m->events_head, m->status_event);
	free(m->status_event);
	if (m->event_fd >= 0)
		close(m->event_fd);
	if (m->wake_fd >= 0)
		close(m->wake_fd);
	if (m->sync_initialized)
		pthread_mutex_destroy(&m->lock);
	free(m->confirmed);
	free((char *)m->settings.name);
	free((char *)m->settings.device);
	free((char *)m->settings.connection);
	free((char *)m->settings.pin);
	free((char *)m->settings.imei);
	free((char *)m->settings.state_dir);
	free(m);
}

void modem_unref(Modem *m)
{
	if (m && atomic_fetch_sub(&m->n_ref, 1) == 1)
		modem_destroy(m);
}

static void modem_unrefp(Modem **m)
{
	modem_unref(*m);
}

static bool modem_pin_is_valid(const char *pin)
{
	size_t n = strlen(pin);

	if (n < 4 || n > GSM_SECURITY_CODE_LEN)
		return false;
	return strspn(pin, "0123456789") == n;
}

int modem_new(const ModemSettings *settings, Modem **ret)
{
	_cleanup_(modem_unrefp) Modem *m = NULL;
	const char *connection, *pin, *imei;

	if (!settings || !ret || !settings->name || !settings->name[0] || !settings->device ||
	    !settings->device[0])
		return -EINVAL;
	connection = settings->connection && settings->connection[0] ? settings->connection : "at";
	pin = settings->pin && settings->pin[0] ? settings->pin : NULL;
	if (pin && !modem_pin_is_valid(pin))
		return log_error_errno(EINVAL, "Modem %s: the PIN must be 4 to %d digits",
		                       settings->name, GSM_SECURITY_CODE_LEN);
	imei = settings->imei && settings->imei[0] ? settings->imei : NULL;
	if (imei && !probe_imei_is_valid(imei))
		return log_error_errno(EINVAL, "Modem %s: the IMEI must be 14 to 17 digits",
		                       settings->name);

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	atomic_init(&m->n_ref, 1);
	atomic_init(&m->last_token, 0);
	m->event_fd = m->wake_fd = -1;

	m->settings.name = strdup(settings->name);
	m->settings.device = strdup(settings->device);
	m->settings.connection = strdup(connection);
	m->settings.pin = pin ? strdup(pin) : NULL;
	m->settings.imei = imei ? strdup(imei) : NULL;
	m->settings.state_dir = settings->state_dir ? strdup(settings->state_dir) : NULL;
	if (!m->settings.name || !m->settings.device || !m->settings.connection ||
	    (pin && !m->settings.pin) || (imei && !m->settings.imei) ||
	    (settings->state_dir && !m->settings.state_dir))
		return -ENOMEM;
	m->settings.health_interval_sec =
	        settings->health_interval_sec > 0 ? settings->health_interval_sec : 30;
	m->settings.send_timeout_sec =
	        settings->send_timeout_sec > 0 ? settings->send_timeout_sec : 60;
	m->settings.command_timeout_sec =
	        settings->command_timeout_sec > 0 ? settings->command_timeout_sec : 10;
	m->settings.inbox_interval_sec =
	        settings->inbox_interval_sec > 0 ? settings->inbox_interval_sec : 15;
	m->settings.min_signal = settings->min_signal != 0 ? settings->min_signal : 5;
	m->settings.max_consecutive_failures =
	        settings->max_consecutive_failures > 0 ? settings->max_consecutive_failures : 3;
	m->settings.delivery_reports = settings->delivery_reports;
	m->log_ctx.modem = m->settings.name;

	m->status_event = calloc(1, sizeof(ModemJob));
	if (!m->status_event)
		return -ENOMEM;

	m->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	m->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->event_fd < 0 || m->wake_fd < 0)
		return log_error_errno(errno, "Modem %s: failed to create eventfd: %m",
		                       m->settings.name);

	pthread_mutex_init(&m->lock, NULL);
	m->sync_initialized = true;

	*ret = TAKE_PTR(m);
	return 0;
}

int modem_start(Modem *m)
{
	sigset_t all, saved;
	char thread_name[16];
	int r;

	if (!m)
		return -EINVAL;
	if (m->started || m->stop)
		return -EBUSY;

	r = watchdog_new(m->settings.name, &m->watchdog);
	if (r < 0)
		return log_error_errno(r, "Modem %s: failed to start its watchdog: %m",
		                       m->settings.name);

	atomic_fetch_add(&m->n_ref, 1); /* the worker's */
	/* Signals belong to the main loop (sd-event's signalfd); the worker must not take them. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &saved);
	r = -pthread_create(&m->thread, NULL, worker_main, m);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (r < 0) {
		atomic_fetch_sub(&m->n_ref, 1);
		m->watchdog = watchdog_free(m->watchdog);
		return log_error_errno(r, "Modem %s: failed to start its worker thread: %m",
		                       m->settings.name);
	}
	snprintf(thread_name, sizeof(thread_name), "modem-%s", m->settings.name);
	pthread_setname_np(m->thread, thread_name);
	m->started = true;
	return 0;
}

/* Called with the lock held (or not: an eventfd write is atomic). */
static void modem_wake_worker(Modem *m)
{
	uint64_t one = 1;

	if (write(m->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_ctx_errno(LOG_ERR, errno, &m->log_ctx, "Failed to wake the worker: %m");
}

/* Called with the lock held. */
static void modem_wake_loop(Modem *m)
{
	uint64_t one = 1;

	if (write(m->event_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_ctx_errno(LOG_ERR, errno, &m->log_ctx, "Failed to signal the eventfd: %m");
}

/* Called with the lock held. */
static void modem_push_event(Modem *m, ModemJob *j)
{
	j->next = NULL;
	if (m->events_tail)
		m->events_tail->next = j;
	else
		m->events_head = j;
	m->events_tail = j;
	modem_wake_loop(m);
}

static void modem_answer(ModemJob *j, int result, const char *error)
{
	j->event = (ModemEvent){
	        .type = MODEM_EVENT_SENT,
	        .job = j->id,
	        .result = result,
	        .message_ref = -1,
	};
	snprintf(j->event.error, sizeof(j->event.error), "%s", error);
}

static int modem_join(Modem *m, uint64_t timeout_usec)
{
	/* pthread_clockjoin_np() would take CLOCK_MONOTONIC, but sanitizers do not know it yet; a
	 * wall clock step only stretches or shortens this grace period. */
	uint64_t deadline = now_realtime_usec() + timeout_usec;
	struct timespec ts = {
	        .tv_sec = (time_t)(deadline / USEC_PER_SEC),
	        .tv_nsec = (long)((deadline % USEC_PER_SEC) * 1000),
	};

	return -pthread_timedjoin_np(m->thread, NULL, &ts);
}

void modem_request_stop(Modem *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	m->stop = true;
	modem_wake_worker(m);
	pthread_mutex_unlock(&m->lock);
}

int modem_stop(Modem *m)
{
	uint64_t grace;
	ModemJob *j;

	if (!m)
		return 0;

	modem_request_stop(m);
	grace = (uint64_t)m->settings.send_timeout_sec * USEC_PER_SEC + MODEM_STOP_GRACE_USEC;
	if (m->started && !m->joined) {
		int r = modem_join(m, grace);

		if (r == -ETIMEDOUT) {
			log_ctx(LOG_WARNING, &m->log_ctx,
			        "Worker still busy after %llu s, aborting its operation",
			        (unsigned long long)(grace / USEC_PER_SEC));
			watchdog_shutdown(m->watchdog);
			r = modem_join(m, MODEM_ABORT_GRACE_USEC);
		}
		if (r == -ETIMEDOUT) {
			/* It holds its own reference and frees what is left when it returns. */
			log_ctx(LOG_ERR, &m->log_ctx,
			        "Worker stuck inside libgammu, abandoning it; its current job "
			        "will not be answered");
			pthread_detach(m->thread);
		}
		m->joined = true;
	}

	/* Whatever the worker did not take is answered here. */
	pthread_mutex_lock(&m->lock);
	while ((j = m->jobs_head)) {
		m->jobs_head = j->next;
		m->n_jobs--;
		modem_answer(j, -ESHUTDOWN, "modem stopped");
		modem_push_event(m, j);
	}
	m->jobs_tail = NULL;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

Modem *modem_free(Modem *m)
{
	if (!m)
		return NULL;
	modem_stop(m);
	modem_unref(m);
	return NULL;
}

const char *modem_name(const Modem *m)
{
	return m->settings.name;
}

int modem_fd(const Modem *m)
{
	return m->event_fd;
}

int modem_send(Modem *m, uint64_t job, const char *number, const char *text)
{
	size_t number_len, text_len;
	ModemJob *j;

	if (!m || !number || !text)
		return -EINVAL;
	if (!sms_number_is_valid(number))
		return -EINVAL;
	text_len = strlen(text);
	if (text_len > SMS_TEXT_MAX)
		return -EMSGSIZE;
	if (!utf8_is_valid(text, text_len))
		return -EINVAL;
	number_len = strlen(number);

	j = calloc(1, sizeof(ModemJob) + number_len + 1 + text_len + 1);
	if (!j)
		return -ENOMEM;
	j->id = job;
	memcpy(j->data, number, number_len + 1);
	memcpy(j->data + number_len + 1, text, text_len + 1);
	j->number = j->data;
	j->text = j->data + number_len + 1;

	pthread_mutex_lock(&m->lock);
	if (m->stop || m->n_jobs + m->n_current >= MODEM_QUEUE_MAX) {
		bool stopped = m->stop;

		pthread_mutex_unlock(&m->lock);
		free(j);
		return stopped ? -ESHUTDOWN : -ENOBUFS;
	}
	if (m->jobs_tail)
		m->jobs_tail->next = j;
	else
		m->jobs_head = j;
	m->jobs_tail = j;
	m->n_jobs++;
	modem_wake_worker(m);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

size_t modem_queue_length(const Modem *m)
{
	Modem *mm = (Modem *)m; /* the lock is not part of the observable state */
	size_t n;

	pthread_mutex_lock(&mm->lock);
	n = m->n_jobs + m->n_current;
	pthread_mutex_unlock(&mm->lock);
	return n;
}

/* Called with the lock held: the counter is zero exactly when the event queue is empty. */
static void modem_drain_fd(Modem *m)
{
	uint64_t n;

	if (read(m->event_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_ctx_errno(LOG_ERR, errno, &m->log_ctx, "Failed to read the eventfd: %m");
}

int modem_next_event(Modem *m, ModemEvent *ret)
{
	ModemJob *j;

	if (!m || !ret)
		return -EINVAL;

	pthread_mutex_lock(&m->lock);
	j = m->events_head;
	if (!j) {
		modem_drain_fd(m);
		pthread_mutex_unlock(&m->lock);
		return 0;
	}
	m->events_head = j->next;
	if (!m->events_head) {
		m->events_tail = NULL;
		modem_drain_fd(m);
	}
	*ret = j->event; /* with its text: the caller's now */
	if (j == m->status_event)
		m->status_queued = false;
	else
		free(j);
	pthread_mutex_unlock(&m->lock);
	return 1;
}

void modem_event_clear(ModemEvent *ev)
{
	if (!ev)
		return;
	free(ev->text);
	ev->text = NULL;
}

int modem_sms_stored(Modem *m, uint64_t token)
{
	int r = 0;

	if (!m)
		return -EINVAL;
	if (token == 0 || token > atomic_load(&m->last_token))
		return -ENOENT;

	pthread_mutex_lock(&m->lock);
	if (m->stop)
		r = -ESHUTDOWN;
	else if (m->n_confirmed >= MODEM_CONFIRM_MAX)
		r = -ENOBUFS;
	else {
		if (!m->confirmed) {
			m->confirmed = calloc(MODEM_CONFIRM_MAX, sizeof(uint64_t));
			if (!m->confirmed)
				r = -ENOMEM;
		}
		if (r == 0) {
			m->confirmed[m->n_confirmed++] = token;
			modem_wake_worker(m);
		}
	}
	pthread_mutex_unlock(&m->lock);
	return r;
}

/* Up to 70 characters of printable ASCII and line breaks are one part whatever libgammu picks:
 * GSM 7-bit takes at most two septets for each (the extension table's), 140 of 160, and UCS-2 one
 * unit for each, 70 of 70. Most alerts are that short, and skip an encoding into the 50 parts'
 * worth of buffers sms_encode() zeroes. */
static bool one_short_part(const char *text)
{
	size_t n = 0;

	for (const char *p = text; *p; p++, n++)
		if (n >= 70 || !((*p >= 0x20 && *p <= 0x7e) || *p == '\n' || *p == '\r'))
			return false;
	return true;
}

int modem_count_parts(const char *text, unsigned *ret_parts)
{
	_cleanup_free_ GSM_MultiSMSMessage *sms = NULL;
	int r;

	if (!text || !ret_parts)
		return -EINVAL;
	if (one_short_part(text)) {
		*ret_parts = 1;
		return 0;
	}
	r = sms_encode(text, &sms);
	if (r < 0)
		return r;
	*ret_parts = (unsigned)sms->Number;
	return 0;
}

/* The worker's side. */

const ModemSettings *modem_settings(const Modem *m)
{
	return &m->settings;
}

const LogContext *modem_log_context(const Modem *m)
{
	return &m->log_ctx;
}

Watchdog *modem_watchdog(const Modem *m)
{
	return m->watchdog;
}

bool modem_stopping(Modem *m)
{
	bool stop;

	pthread_mutex_lock(&m->lock);
	stop = m->stop;
	pthread_mutex_unlock(&m->lock);
	return stop;
}

int modem_wake_fd(const Modem *m)
{
	return m->wake_fd;
}

void modem_clear_wake(Modem *m)
{
	uint64_t n;

	if (read(m->wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_ctx_errno(LOG_ERR, errno, &m->log_ctx, "Failed to read the wake eventfd: %m");
}

bool modem_has_jobs(Modem *m)
{
	bool any;

	pthread_mutex_lock(&m->lock);
	any = m->jobs_head != NULL;
	pthread_mutex_unlock(&m->lock);
	return any;
}

size_t modem_take_confirmed(Modem *m, uint64_t *ret, size_t max)
{
	size_t n;

	pthread_mutex_lock(&m->lock);
	n = MIN(max, m->n_confirmed);
	if (n > 0) {
		memcpy(ret, m->confirmed, n * sizeof(uint64_t));
		memmove(m->confirmed, m->confirmed + n, (m->n_confirmed - n) * sizeof(uint64_t));
		m->n_confirmed -= n;
	}
	pthread_mutex_unlock(&m->lock);
	return n;
}

uint64_t modem_new_token(Modem *m)
{
	return atomic_fetch_add(&m->last_token, 1) + 1;
}

int modem_queue_event(Modem *m, ModemEvent *ev)
{
	ModemJob *j = calloc(1, sizeof(ModemJob));

	if (!j)
		return -ENOMEM;
	j->event = *ev;
	ev->text = NULL; /* the queue's now */
	pthread_mutex_lock(&m->lock);
	modem_push_event(m, j);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

ModemJob *modem_pop_job(Modem *m)
{
	ModemJob *j;

	pthread_mutex_lock(&m->lock);
	j = m->jobs_head;
	if (j) {
		m->jobs_head = j->next;
		if (!m->jobs_head)
			m->jobs_tail = NULL;
		j->next = NULL;
		m->n_jobs--;
		m->n_current++;
	}
	pthread_mutex_unlock(&m->lock);
	return j;
}

void modem_finish_job(Modem *m, ModemJob *job)
{
	pthread_mutex_lock(&m->lock);
	job->event.type = MODEM_EVENT_SENT;
	job->event.job = job->id;
	m->n_current--;
	modem_push_event(m, job);
	pthread_mutex_unlock(&m->lock);
}

void modem_publish_status(Modem *m, const ModemStatus *status)
{
	pthread_mutex_lock(&m->lock);
	m->status_event->event = (ModemEvent){
	        .type = MODEM_EVENT_STATUS,
	        .message_ref = -1,
	        .status = *status,
	};
	if (!m->status_queued) {
		m->status_queued = true;
		modem_push_event(m, m->status_event);
	}
	pthread_mutex_unlock(&m->lock);
}
