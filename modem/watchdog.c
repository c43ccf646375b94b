/* watchdog: deadlines for libgammu, from outside.
 *
 * libgammu 1.42 restarts its reply timeout on every byte it receives and waits up to ~40 s of
 * silence per command, so a modem that chatters or hangs can hold a call far past any deadline
 * we would choose, and nothing inside the blocked worker can intervene. GSM_AbortOperation()
 * only sets a flag that libgammu's read loops test every few milliseconds, so it is safe to call
 * from another thread; that is what this small thread does when an armed deadline passes.
 *
 * A port that hangs up under a call (a USB modem unplugged, a reset) is no better: reads return
 * end of file, which libgammu takes for silence, so the call would only end at the deadline and
 * the modem would look hung instead of gone. While a call is armed the thread therefore also
 * polls the port's fd with no events requested, which wakes it only for POLLHUP/POLLERR, and
 * aborts the call at once, saying why.
 *
 * The thread sleeps in poll() on an eventfd (poked by arm, disarm and shutdown), the port and the
 * deadline, so it costs nothing while idle. The lock protects the state machine's lifetime: the
 * worker disarms (under the lock) before it frees a state machine, so an abort can never touch
 * freed memory; and an fd is acted on only if it is still the one named, while armed. */
#include "watchdog.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "util.h"

struct Watchdog {
	char *name;
	pthread_t thread;
	pthread_mutex_t lock;
	int wake_fd;
	bool stop;
	bool shutdown;
	GSM_StateMachine *sm; /* armed when non-NULL */
	uint64_t deadline;    /* CLOCK_MONOTONIC usec */
	int port_fd;
	WatchdogFired fired;
};

static void watchdog_wake(Watchdog *w)
{
	uint64_t one = 1;

	(void)!write(w->wake_fd, &one, sizeof(one));
}

/* Called with the lock held. */
static void watchdog_fire(Watchdog *w, WatchdogFired why)
{
	if (!w->sm || w->fired)
		return;
	GSM_AbortOperation(w->sm);
	w->fired = why;
}

static void *watchdog_thread(void *userdata)
{
	Watchdog *w = userdata;

	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		bool armed = w->sm && !w->fired;
		int port = armed ? w->port_fd : -1, timeout = -1, n = 1;
		struct pollfd p[2] = {{.fd = w->wake_fd, .events = POLLIN}};
		uint64_t now = now_monotonic_usec(), n_wake;

		if (armed) {
			if (now >= w->deadline) {
				log_ctx(LOG_WARNING, &(LogContext){.modem = w->name},
				        "Modem did not answer in time, aborting the operation");
				watchdog_fire(w, WATCHDOG_TIMEOUT);
				continue;
			}
			timeout = (int)MIN((w->deadline - now + 999) / 1000, (uint64_t)INT_MAX);
			if (port >= 0)
				p[n++] = (struct pollfd){.fd = port, .events = 0};
		}
		pthread_mutex_unlock(&w->lock);

		(void)poll(p, (nfds_t)n, timeout);
		if (p[0].revents & POLLIN)
			(void)!read(w->wake_fd, &n_wake, sizeof(n_wake));

		pthread_mutex_lock(&w->lock);
		if (n > 1 && (p[1].revents & POLLNVAL) && w->port_fd == port)
			w->port_fd = -1; /* closed under us: stop looking at it */
		/* Acted on only if still armed on the same port: the fd may have been closed and
		 * reused since poll() looked at it. */
		if (n > 1 && (p[1].revents & (POLLHUP | POLLERR)) && w->sm && !w->fired &&
		    w->port_fd == port) {
			log_ctx(LOG_WARNING, &(LogContext){.modem = w->name},
			        "The port hung up, aborting the operation");
			watchdog_fire(w, WATCHDOG_HANGUP);
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

int watchdog_new(const char *name, Watchdog **ret)
{
	_cleanup_free_ Watchdog *w = NULL;
	sigset_t all, saved;
	char thread_name[16];
	int r;

	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->port_fd = -1;
	w->name = strdup(name ? name : "");
	if (!w->name)
		return -ENOMEM;
	w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->wake_fd < 0) {
		r = -errno;
		goto fail_name;
	}
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
	pthread_mutex_destroy(&w->lock);
	close(w->wake_fd);
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
	watchdog_wake(w);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);

	pthread_mutex_destroy(&w->lock);
	close(w->wake_fd);
	free(w->name);
	free(w);
	return NULL;
}

void watchdog_set_port(Watchdog *w, int fd)
{
	pthread_mutex_lock(&w->lock);
	w->port_fd = fd;
	watchdog_wake(w);
	pthread_mutex_unlock(&w->lock);
}

void watchdog_arm(Watchdog *w, GSM_StateMachine *sm, uint64_t timeout_usec)
{
	pthread_mutex_lock(&w->lock);
	w->sm = sm;
	w->fired = WATCHDOG_QUIET;
	w->deadline = now_monotonic_usec() + timeout_usec;
	if (w->shutdown)
		watchdog_fire(w, WATCHDOG_TIMEOUT);
	watchdog_wake(w);
	pthread_mutex_unlock(&w->lock);
}

WatchdogFired watchdog_disarm(Watchdog *w)
{
	WatchdogFired fired;

	pthread_mutex_lock(&w->lock);
	fired = w->fired;
	w->sm = NULL;
	w->fired = WATCHDOG_QUIET;
	pthread_mutex_unlock(&w->lock);
	return fired;
}

bool watchdog_fired(Watchdog *w)
{
	bool fired;

	pthread_mutex_lock(&w->lock);
	fired = w->fired != WATCHDOG_QUIET;
	pthread_mutex_unlock(&w->lock);
	return fired;
}

void watchdog_shutdown(Watchdog *w)
{
	pthread_mutex_lock(&w->lock);
	w->shutdown = true;
	watchdog_fire(w, WATCHDOG_TIMEOUT);
	watchdog_wake(w);
	pthread_mutex_unlock(&w->lock);
}
