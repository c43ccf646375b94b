/* watchdog: a deadline on the blocking libgammu call a modem worker is making, enforced from
 * another thread with GSM_AbortOperation(). Internal to modem/.
 *
 * The worker arms and disarms; any thread may call watchdog_shutdown(). The state machine given
 * to watchdog_arm() stays the caller's; it must stay allocated until watchdog_disarm() returns.
 * An aborted state machine answers ERR_ABORTED from then on and must be freed. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <gammu.h>

typedef struct Watchdog Watchdog;

/* Starts the watchdog's thread; name (copied) is only for logs and the thread name. */
int watchdog_new(const char *name, Watchdog **ret);
/* Stops and joins the thread. Accepts NULL. */
Watchdog *watchdog_free(Watchdog *w);

/* From now until watchdog_disarm(), sm is aborted if timeout_usec pass. */
void watchdog_arm(Watchdog *w, GSM_StateMachine *sm, uint64_t timeout_usec);
/* Returns true if the deadline passed (or shutdown came) and sm was aborted. */
bool watchdog_disarm(Watchdog *w);
/* Whether the current arming has fired already; lets a polling loop stop early. */
bool watchdog_fired(Watchdog *w);

/* Aborts the armed call now, and every later one as soon as it is armed. */
void watchdog_shutdown(Watchdog *w);
