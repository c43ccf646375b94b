/* watchdog: a deadline on the blocking libgammu call a modem worker is making, enforced from
 * another thread with GSM_AbortOperation(); and the same abort, at once, when the modem's port
 * hangs up under the call. Internal to modem/.
 *
 * The worker arms and disarms, and names the port's fd (watchdog_set_port()); any thread may call
 * watchdog_shutdown(). The state machine given to watchdog_arm() stays the caller's; it must stay
 * allocated until watchdog_disarm() returns. An aborted state machine answers ERR_ABORTED from
 * then on and must be freed. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <gammu.h>

typedef struct Watchdog Watchdog;

typedef enum WatchdogFired {
	WATCHDOG_QUIET,   /* the call ended by itself */
	WATCHDOG_TIMEOUT, /* the deadline passed, or shutdown came */
	WATCHDOG_HANGUP,  /* the port hung up (POLLHUP/POLLERR) */
} WatchdogFired;

/* Starts the watchdog's thread; name (copied) is only for logs and the thread name. */
int watchdog_new(const char *name, Watchdog **ret);
/* Stops and joins the thread. Accepts NULL. */
Watchdog *watchdog_free(Watchdog *w);

/* The fd of the port libgammu has open, watched for a hang-up while a call is armed; -1 for none.
 * Set it to -1 before the fd may be closed (before GSM_TerminateConnection()). */
void watchdog_set_port(Watchdog *w, int fd);
/* From now until watchdog_disarm(), sm is aborted if timeout_usec pass or the port hangs up. */
void watchdog_arm(Watchdog *w, GSM_StateMachine *sm, uint64_t timeout_usec);
/* Whether and why sm was aborted during this arming. */
WatchdogFired watchdog_disarm(Watchdog *w);
/* Whether the current arming has fired already; lets a polling loop stop early. */
bool watchdog_fired(Watchdog *w);

/* Aborts the armed call now, and every later one as soon as it is armed. */
void watchdog_shutdown(Watchdog *w);
