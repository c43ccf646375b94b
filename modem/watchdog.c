/* watchdog: deadlines for libgammu, from outside.
 *
 * libgammu 1.42 restarts its reply timeout on every byte it receives and waits up to ~40 s of
 * silence per command, so a modem that chatters or hangs can hold a call far past any deadline
 * we would choose, and nothing inside the blocked worker can intervene. GSM_AbortOperation()
 * only sets a flag that libgammu's read loops test every few milliseconds, so it is safe to call
 * from another thread; that is what this small thread does when an armed deadline passes. It
 * sleeps on a condition variable (CLOCK_MONOTONIC) until then, so it costs nothing while idle.
 *
 * The lock also protects the state machine's lifetime: the worker disarms (under the lock)
 * before it frees a state machine, so an abort can never touch freed memory. */
#include "watchdog.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "macro.h"
#include "util.h"

struct Watchdog {
	char *name;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool stop;
	bool shutdown;
	GSM_StateMachine *sm; /* armed when non-NULL */
	uint64_t deadline;    /* CLOCK_MONOTONIC usec */
	bool fired;
};

static void watchdog_timespec(uint64_t usec, struct timespec *ret)
{
	ret->tv_sec = (time_t)(usec / USEC_PER_SEC);
	ret->tv_nsec = (long)((usec % USEC_PER_SEC) * 1000);
}

/* Called with the lock held. */
static void watchdog_fire(Watchdog *w)
{
	if (!w->sm || w->fired)
		return;
	GSM_AbortOperation(w->sm);
	w->fired = true;
}

static void *watchdog_thread(void *userdata)
{
	Watchdog *w = userdata;

	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		if (w->sm && !w->fired) {
			uint64_t now = now_monotonic_usec();
			struct timespec ts;

			if (now >= w->deadline) {
				log_ctx(LOG_WARNING, &(LogContext){.modem = w->name},
				        "Modem did not answer in time, aborting the operation");
				watchdog_fire(w);
				continue;
			}
			watchdog_timespec(w->deadline, &ts);
			pthread_cond_timedwait(&w->cond, &w->lock, &ts);
		} else
			pthread_cond_wait(&w->cond, &w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int watchdog_new(const char *name, Watchdog **ret)
{
	_cleanup_free_ Watchdog *w = NULL;
	pthread_condattr_t attr;
	sigset_t all, saved;
	char thread_name[16];
	int r;

	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->name = strdup(name ? name : "");
	if (!w->name)
		return -ENOMEM;

	r = -pthread_condattr_init(&attr);
	if (r < 0)
		goto fail_name;
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	r = -pthread_cond_init(&w->cond, &attr);
	pthread_condattr_destroy(&attr);
	if (r < 0)
		goto fail_name;
	pthread_mutex_init(&w->lock, NULL);

	/* Signals belong to the main loop. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &saved);
	r = -pthread_create(&w->thread, NULL, watchdog_thread, w);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (r < 0)
		goto fail_sync;
	snprintf(thread_name, sizeof(thread_name), "wd-%s", w->name);
	pthread_setname_np(w->thread, thread_name);

	*ret = TAKE_PTR(w);
	return 0;

fail_sync:
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
fail_name:
	free(w->name);
	return r;
}

Watchdog *watchdog_free(Watchdog *w)
{
	if (!w)
		return NULL;

	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);

	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w->name);
	free(w);
	return NULL;
}

void watchdog_arm(Watchdog *w, GSM_StateMachine *sm, uint64_t timeout_usec)
{
	pthread_mutex_lock(&w->lock);
	w->sm = sm;
	w->fired = false;
	w->deadline = now_monotonic_usec() + timeout_usec;
	if (w->shutdown)
		watchdog_fire(w);
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

bool watchdog_disarm(Watchdog *w)
{
	bool fired;

	pthread_mutex_lock(&w->lock);
	fired = w->fired;
	w->sm = NULL;
	w->fired = false;
	pthread_mutex_unlock(&w->lock);
	return fired;
}

bool watchdog_fired(Watchdog *w)
{
	bool fired;

	pthread_mutex_lock(&w->lock);
	fired = w->fired;
	pthread_mutex_unlock(&w->lock);
	return fired;
}

void watchdog_shutdown(Watchdog *w)
{
	pthread_mutex_lock(&w->lock);
	w->shutdown = true;
	watchdog_fire(w);
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}
