/* membership: quorum as the local corosync sees it, for display and for the gateway's decisions.
 *
 * A connection of its own to corosync's quorum service, with its fd in the loop: one
 * notification per change (quorum_trackstart with CS_TRACK_CHANGES also sends the current state
 * at once), plus quorum_getquorate() right after connecting so the state is known before the
 * first notification. It has its own reconnect timer rather than riding on the CPG connection:
 * the two connections fail together in practice, but nothing guarantees it, and the replication
 * backend only has to kick it when CPG comes back so quorum is known again promptly.
 *
 * Note for the reader of "quorate": with two_node (and wait_for_all: 0) a lone node is quorate,
 * and both halves of a cut stay quorate. Quorum here is information, not a fence. */
#include "membership.h"

#include <corosync/quorum.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>

#include "cs-errno.h"
#include "log.h"
#include "macro.h"

#define MEMBERSHIP_DISPATCH_MAX 64

struct Membership {
	sd_event *event;
	sd_event_source *io;
	sd_event_source *timer;
	MembershipFn fn;
	void *userdata;
	quorum_handle_t handle;
	bool have_handle;
	bool reported_down;
	int quorate;
};

static void membership_report(Membership *m, int quorate, const uint32_t *nodes, size_t n)
{
	m->quorate = quorate;
	if (m->fn)
		m->fn(m->userdata, quorate, nodes, n);
}

static void membership_close(Membership *m)
{
	m->io = sd_event_source_disable_unref(m->io);
	if (m->have_handle) {
		(void)quorum_finalize(m->handle);
		m->have_handle = false;
	}
}

static void membership_lose(Membership *m)
{
	membership_close(m);
	(void)sd_event_source_set_time_relative(m->timer, MEMBERSHIP_RECONNECT_USEC);
	(void)sd_event_source_set_enabled(m->timer, SD_EVENT_ONESHOT);
	if (!m->reported_down) {
		m->reported_down = true;
		membership_report(m, -ENOTCONN, NULL, 0);
	}
}

static void on_quorum_notify(quorum_handle_t handle, uint32_t quorate, uint64_t ring_seq,
                             uint32_t n_nodes, uint32_t *nodes)
{
	const void *ctx = NULL;
	Membership *m;

	if (quorum_context_get(handle, &ctx) != CS_OK || !ctx)
		return;
	m = (Membership *)ctx;
	log_debug("Quorum: %s, ring %llu, %u node(s)", quorate ? "quorate" : "not quorate",
	          (unsigned long long)ring_seq, n_nodes);
	membership_report(m, quorate ? 1 : 0, nodes, n_nodes);
}

static int membership_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	Membership *m = userdata;

	for (unsigned i = 0; i < MEMBERSHIP_DISPATCH_MAX; i++) {
		cs_error_t cs = quorum_dispatch(m->handle, CS_DISPATCH_ONE_NONBLOCKING);

		if (cs == CS_OK)
			continue;
		if (cs == CS_ERR_TRY_AGAIN)
			break;
		membership_lose(m);
		return 0;
	}
	if (revents & (EPOLLHUP | EPOLLERR))
		membership_lose(m);
	return 0;
}

static void membership_connect(Membership *m)
{
	quorum_callbacks_t callbacks = {.quorum_notify_fn = on_quorum_notify};
	uint32_t type = 0;
	int quorate = 0, fd = -1, r;

	r = errno_from_cs(quorum_initialize(&m->handle, &callbacks, &type));
	if (r < 0)
		goto fail;
	m->have_handle = true;
	r = errno_from_cs(quorum_context_set(m->handle, m));
	if (r >= 0)
		r = errno_from_cs(quorum_fd_get(m->handle, &fd));
	if (r >= 0)
		r = errno_from_cs(quorum_getquorate(m->handle, &quorate));
	if (r >= 0)
		r = errno_from_cs(quorum_trackstart(m->handle, CS_TRACK_CHANGES));
	if (r >= 0)
		r = sd_event_add_io(m->event, &m->io, fd, EPOLLIN, membership_on_io, m);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_description(m->io, "quorum");

	/* Without a quorum provider (QUORUM_FREE) corosync calls every partition quorate. */
	m->reported_down = false;
	membership_report(m, type == QUORUM_FREE ? 1 : quorate ? 1 : 0, NULL, 0);
	return;
fail:
	log_debug_errno(r, "Cannot reach corosync's quorum service: %m");
	membership_lose(m);
}

static int membership_on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	Membership *m = userdata;

	if (!m->have_handle)
		membership_connect(m);
	return 0;
}

int membership_new(sd_event *event, MembershipFn fn, void *userdata, Membership **ret)
{
	Membership *m;
	int r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->event = sd_event_ref(event);
	m->fn = fn;
	m->userdata = userdata;
	m->quorate = -ENOTCONN;
	r = sd_event_add_time_relative(event, &m->timer, CLOCK_MONOTONIC, 0, 0, membership_on_timer,
	                               m);
	if (r < 0) {
		membership_free(m);
		return r;
	}
	(void)sd_event_source_set_description(m->timer, "quorum-retry");
	*ret = m;
	return 0;
}

Membership *membership_free(Membership *m)
{
	if (!m)
		return NULL;
	membership_close(m);
	sd_event_source_disable_unref(m->timer);
	sd_event_unref(m->event);
	free(m);
	return NULL;
}

void membership_kick(Membership *m)
{
	if (m->have_handle)
		return;
	(void)sd_event_source_set_time_relative(m->timer, 0);
	(void)sd_event_source_set_enabled(m->timer, SD_EVENT_ONESHOT);
}

int membership_quorate(const Membership *m)
{
	return m->quorate;
}
