/* fdbudget: the descriptor arithmetic of fdbudget.h.
 *
 * Measured before the caps existed: a thousand idle TCP connections took all 1,024 descriptors,
 * libzmq's listener then spun on accept() failing with EMFILE, and a replugged modem could not
 * open its port. The caps end surplus connections as they arrive, the raised soft limit gives
 * the surplus room to arrive and be ended without accept() ever failing, and this check makes
 * sure the caps an operator writes leave the modems their share. */
#include "fdbudget.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/select.h>

#include "macro.h"

int fdbudget_raise(uint64_t *ret_before, uint64_t *ret_after)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	*ret_before = rl.rlim_cur;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			return -errno;
	}
	*ret_after = rl.rlim_cur;
	return 0;
}

uint64_t fdbudget_hard_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 1024;
	return rl.rlim_max;
}

uint64_t fdbudget_needed(const Config *c)
{
	uint64_t n = FDBUDGET_RESERVE + FDBUDGET_PER_MODEM * (uint64_t)(c->n_modems + 1);

	n += c->submit_max_clients + c->events_max_clients;
	if (c->control_bind)
		n += c->control_max_clients;
	return n;
}

int fdbudget_check(const Config *c, uint64_t limit, char **ret_reason)
{
	uint64_t needed = fdbudget_needed(c);
	uint64_t room = MIN(limit, (uint64_t)FD_SETSIZE);
	int r;

	if (needed <= room)
		return 0;
	r = asprintf(ret_reason,
	             "the connection caps need %llu file descriptors ([submit] max_clients %u + "
	             "[events] max_clients %u%s + %u reserved for %zu modem(s), the store and "
	             "corosync) but only %llu are available (%s): lower max_clients",
	             (unsigned long long)needed, c->submit_max_clients, c->events_max_clients,
	             c->control_bind ? " + [control] max_clients" : "",
	             (unsigned)(needed - c->submit_max_clients - c->events_max_clients -
	                        (c->control_bind ? c->control_max_clients : 0)),
	             c->n_modems, (unsigned long long)room,
	             limit < FD_SETSIZE
	                     ? "RLIMIT_NOFILE; raise LimitNOFILE= or ulimit -n"
	                     : "libgammu select()s on its ports, which stops at FD_SETSIZE");
	if (r < 0)
		*ret_reason = NULL;
	return -EMFILE;
}
