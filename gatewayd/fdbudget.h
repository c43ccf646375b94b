/* fdbudget: the process's file descriptors, shared by clients, modems, the store and corosync.
 *
 * Prefix fdbudget_. At start the soft RLIMIT_NOFILE is raised to the hard one (systemd's
 * LimitNOFILE=), and the connection caps of the listening sockets ([submit], [events],
 * [control] max_clients) must leave FDBUDGET_RESERVE descriptors plus FDBUDGET_PER_MODEM per
 * modem for everything else. libgammu select()s on its serial port's descriptor, and select()
 * cannot watch a descriptor numbered FD_SETSIZE (1024) or above, so the caps and the reserve
 * must also fit below FD_SETSIZE: the kernel hands out the lowest free number, so while the
 * caps hold, a modem's port always gets a number select() can take.
 *
 * Threads: main thread, at start. */
#pragma once

#include "config.h"

#define FDBUDGET_RESERVE   64 /* loop, signals, timers, libzmq's own, the store, corosync, logs */
#define FDBUDGET_PER_MODEM 8  /* the port, a probe, the worker's eventfds, the voice dialer */

/* Raises the soft limit to the hard one; 0 with the limits before and after, or -errno. */
int fdbudget_raise(uint64_t *ret_before, uint64_t *ret_after);

/* The hard limit now (what fdbudget_raise() would raise to). */
uint64_t fdbudget_hard_limit(void);

/* Descriptors config needs at most: its caps plus the reserve. */
uint64_t fdbudget_needed(const Config *config);

/* 0 when config fits under limit (and FD_SETSIZE), else -EMFILE with *ret_reason (malloc'd)
 * saying which keys to lower or which limit to raise. */
int fdbudget_check(const Config *config, uint64_t limit, char **ret_reason);
