/* group: the CPG connection, in the event loop, surviving corosync restarts.
 *
 * libcpg is built for a blocking loop of its own; here its fd sits in sd-event instead, and each
 * wakeup dispatches with CS_DISPATCH_ONE_NONBLOCKING in a bounded loop, so a busy peer cannot
 * starve the other sources (the fd stays readable, and the next turn goes on) while our own
 * messages are drained promptly: corosync buffers undelivered messages for a client without
 * bound, so a client that stops dispatching makes its corosync grow.
 *
 * When corosync goes away the fd reports POLLHUP|POLLIN and cpg_dispatch() answers CS_ERR_LIBRARY
 * (measured: within about 35 ms of kill -9). The handle must still be finalised, which releases
 * it even though that call fails too. Every failure, wherever it is seen (dispatch, send, join),
 * goes through one deferred path, group_fail() -> group_on_lose(), so that the connection
 * callback never runs inside a call of our caller's (a send from the middle of its flush). Then
 * a timer reconnects every GROUP_RECONNECT_USEC; cpg_initialize fails at once while corosync is
 * down, and a restarted corosync accepts clients about 0.4 s after it starts.
 *
 * States: DISCONNECTED (no handle; timer armed) -> JOINING (handle, cpg_join answered
 * TRY_AGAIN; timer armed) -> JOINED -> BROKEN (failure seen; lose defer pending) ->
 * DISCONNECTED. */
#include "group.h"

#include <corosync/cpg.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/uio.h>

#include "cs-errno.h"
#include "log.h"
#include "macro.h"
#include "util.h"

/* Messages dispatched per wakeup before the loop gets a turn, and the time they may take: a
 * run of state-exchange chunks (a newcomer catching up on 100,000 alerts is sent hundreds of
 * them) once took the whole catch-up, 25 s, in one wakeup, while status requests, timers and
 * the watchdog waited (WatchdogSec=30s). */
#define GROUP_DISPATCH_MAX  256
#define GROUP_DISPATCH_USEC (50 * USEC_PER_MSEC)

typedef enum GroupState {
	GROUP_DISCONNECTED,
	GROUP_JOINING,
	GROUP_JOINED,
	GROUP_BROKEN,
} GroupState;

struct Group {
	sd_event *event;
	sd_event_source *io;
	sd_event_source *timer;
	sd_event_source *lose;
	GroupCallbacks cb;
	void *userdata;
	struct cpg_name name;
	cpg_handle_t handle;
	bool have_handle;
	GroupState state;
	int reported; /* last connection state reported: -1 none yet, 0, 1 */
	bool held;    /* group_hold(): out of the group until released */
	unsigned join_attempts;
	unsigned failed_attempts;
	uint32_t nodeid;
	size_t max_message;
};

static void group_report(Group *g, bool joined)
{
	if (g->reported == (int)joined)
		return;
	g->reported = joined;
	if (g->cb.connection)
		g->cb.connection(g->userdata, joined);
}

static void group_arm(Group *g, uint64_t usec)
{
	(void)sd_event_source_set_time_relative(g->timer, usec);
	(void)sd_event_source_set_enabled(g->timer, SD_EVENT_ONESHOT);
}

/* Drops the handle, if any. cpg_finalize() on a dead connection answers CS_ERR_LIBRARY after a
 * short IPC timeout but still releases the handle, so its answer does not matter. */
static void group_close(Group *g)
{
	g->io = sd_event_source_disable_unref(g->io);
	if (g->have_handle) {
		(void)cpg_finalize(g->handle);
		g->have_handle = false;
	}
}

static void group_fail(Group *g)
{
	if (g->state == GROUP_BROKEN || g->state == GROUP_DISCONNECTED)
		return;
	g->state = GROUP_BROKEN;
	(void)sd_event_source_set_enabled(g->io, SD_EVENT_OFF);
	(void)sd_event_source_set_enabled(g->timer, SD_EVENT_OFF);
	(void)sd_event_source_set_enabled(g->lose, SD_EVENT_ONESHOT);
}

static int group_on_lose(sd_event_source *s, void *userdata)
{
	Group *g = userdata;

	if (g->state != GROUP_BROKEN)
		return 0;
	if (g->reported == 1)
		log_warning("Lost the local corosync (CPG group %s); replicating locally until it "
		            "is back",
		            g->name.value);
	group_close(g);
	g->state = GROUP_DISCONNECTED;
	if (!g->held)
		group_arm(g, GROUP_RECONNECT_USEC);
	group_report(g, false);
	return 0;
}

static Group *group_from_handle(cpg_handle_t handle)
{
	void *ctx = NULL;

	if (cpg_context_get(handle, &ctx) != CS_OK)
		return NULL;
	return ctx;
}

static void on_cpg_deliver(cpg_handle_t handle, const struct cpg_name *name, uint32_t nodeid,
                           uint32_t pid, void *msg, size_t msg_len)
{
	Group *g = group_from_handle(handle);

	if (g && g->state == GROUP_JOINED && g->cb.deliver)
		g->cb.deliver(g->userdata, nodeid, pid, msg, msg_len);
}

static size_t copy_members(GroupMember *to, const struct cpg_address *from, size_t n)
{
	for (size_t i = 0; i < n; i++)
		to[i] = (GroupMember){from[i].nodeid, from[i].pid, from[i].reason};
	return n;
}

static void on_cpg_confchg(cpg_handle_t handle, const struct cpg_name *name,
                           const struct cpg_address *member_list, size_t n_members,
                           const struct cpg_address *left_list, size_t n_left,
                           const struct cpg_address *joined_list, size_t n_joined)
{
	Group *g = group_from_handle(handle);
	GroupMember members[CPG_MEMBERS_MAX], left[CPG_MEMBERS_MAX], joined[CPG_MEMBERS_MAX];

	if (!g || g->state != GROUP_JOINED || !g->cb.members)
		return;
	n_members = copy_members(members, member_list, MIN(n_members, (size_t)CPG_MEMBERS_MAX));
	n_left = copy_members(left, left_list, MIN(n_left, (size_t)CPG_MEMBERS_MAX));
	n_joined = copy_members(joined, joined_list, MIN(n_joined, (size_t)CPG_MEMBERS_MAX));
	g->cb.members(g->userdata, members, n_members, left, n_left, joined, n_joined);
}

static void on_cpg_totem_confchg(cpg_handle_t handle, struct cpg_ring_id ring_id,
                                 uint32_t n_members, const uint32_t *member_list)
{
	Group *g = group_from_handle(handle);

	if (!g || g->state == GROUP_BROKEN || !g->cb.ring)
		return;
	log_debug("Totem ring %u.%llu: %u node(s)", ring_id.nodeid, (unsigned long long)ring_id.seq,
	          n_members);
	g->cb.ring(g->userdata, ring_id.seq, member_list, n_members);
}

void group_dispatch(Group *g)
{
	uint64_t until = now_monotonic_usec() + GROUP_DISPATCH_USEC;

	if (g->state != GROUP_JOINED && g->state != GROUP_JOINING)
		return;
	for (unsigned i = 0; i < GROUP_DISPATCH_MAX && now_monotonic_usec() < until; i++) {
		cs_error_t cs = cpg_dispatch(g->handle, CS_DISPATCH_ONE_NONBLOCKING);

		if (cs == CS_OK)
			continue;
		if (cs == CS_ERR_TRY_AGAIN)
			return;
		log_debug("cpg_dispatch: cs_error %d", cs);
		group_fail(g);
		return;
	}
}

static int group_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	Group *g = userdata;

	group_dispatch(g);
	/* After a hang-up the fd stays readable: what was queued has been delivered above, and
	 * nothing more will come. */
	if (revents & (EPOLLHUP | EPOLLERR)) {
		log_debug("CPG fd hung up (revents 0x%x)", revents);
		group_fail(g);
	}
	return 0;
}

static void group_join(Group *g)
{
	cs_error_t cs = cpg_join(g->handle, &g->name);
	int r = errno_from_cs(cs);

	if (r == 0) {
		g->state = GROUP_JOINED;
		g->failed_attempts = 0;
		log_info("Joined CPG group %s as node %u", g->name.value, g->nodeid);
		group_report(g, true);
		return;
	}
	if (r == -EAGAIN && ++g->join_attempts < GROUP_JOIN_ATTEMPTS) {
		group_arm(g, GROUP_JOIN_RETRY_USEC);
		return;
	}
	log_warning_errno(r, "Cannot join CPG group %s (cs_error %d, %u attempts): %m",
	                  g->name.value, cs, g->join_attempts);
	group_fail(g);
}

static void group_connect(Group *g)
{
	cpg_model_v1_data_t model = {
	        .model = CPG_MODEL_V1,
	        .cpg_deliver_fn = on_cpg_deliver,
	        .cpg_confchg_fn = on_cpg_confchg,
	        .cpg_totem_confchg_fn = on_cpg_totem_confchg,
	        .flags = CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF,
	};
	unsigned int nodeid = 0;
	uint32_t max = 0;
	cs_error_t cs;
	int fd = -1, r;

	cs = cpg_model_initialize(&g->handle, CPG_MODEL_V1, (cpg_model_data_t *)&model, g);
	r = errno_from_cs(cs);
	if (r < 0)
		goto fail;
	g->have_handle = true;

	cs = cpg_local_get(g->handle, &nodeid);
	r = errno_from_cs(cs);
	if (r < 0)
		goto fail;
	cs = cpg_fd_get(g->handle, &fd);
	r = errno_from_cs(cs);
	if (r < 0)
		goto fail;
	if (cpg_max_atomic_msgsize_get(g->handle, &max) != CS_OK || max == 0)
		max = 64 * 1024;
	r = sd_event_add_io(g->event, &g->io, fd, EPOLLIN, group_on_io, g);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_description(g->io, "cpg");

	g->nodeid = nodeid;
	g->max_message = max;
	g->state = GROUP_JOINING;
	g->join_attempts = 0;
	group_join(g);
	return;

fail:
	if (g->failed_attempts++ == 0)
		log_warning_errno(r,
		                  "Cannot reach the local corosync (cs_error %d): %m; "
		                  "retrying every %llu ms",
		                  cs, (unsigned long long)(GROUP_RECONNECT_USEC / 1000));
	group_close(g);
	g->state = GROUP_DISCONNECTED;
	group_arm(g, GROUP_RECONNECT_USEC);
	group_report(g, false);
}

static int group_on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	Group *g = userdata;

	if (g->held)
		return 0;
	if (g->state == GROUP_DISCONNECTED)
		group_connect(g);
	else if (g->state == GROUP_JOINING)
		group_join(g);
	return 0;
}

int group_new(sd_event *event, const char *name, const GroupCallbacks *cb, void *userdata,
              Group **ret)
{
	Group *g;
	size_t len = name ? strlen(name) : 0;
	int r;

	if (len == 0 || len >= CPG_MAX_NAME_LENGTH)
		return -EINVAL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->event = sd_event_ref(event);
	g->cb = *cb;
	g->userdata = userdata;
	g->reported = -1;
	g->state = GROUP_DISCONNECTED;
	g->max_message = 64 * 1024;
	memcpy(g->name.value, name, len);
	g->name.length = (uint32_t)len;

	r = sd_event_add_time_relative(event, &g->timer, CLOCK_MONOTONIC, 0, 0, group_on_timer, g);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_description(g->timer, "cpg-retry");
	r = sd_event_add_defer(event, &g->lose, group_on_lose, g);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_enabled(g->lose, SD_EVENT_OFF);
	(void)sd_event_source_set_description(g->lose, "cpg-lost");

	*ret = g;
	return 0;
fail:
	group_free(g);
	return r;
}

Group *group_free(Group *g)
{
	if (!g)
		return NULL;
	if (g->have_handle && g->state == GROUP_JOINED)
		(void)cpg_leave(g->handle, &g->name);
	group_close(g);
	sd_event_source_disable_unref(g->timer);
	sd_event_source_disable_unref(g->lose);
	sd_event_unref(g->event);
	free(g);
	return NULL;
}

int group_send(Group *g, const void *msg, size_t len)
{
	struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
	cs_error_t cs;
	int r;

	if (g->state != GROUP_JOINED)
		return -ENOTCONN;
	if (len > g->max_message)
		return -EMSGSIZE;
	cs = cpg_mcast_joined(g->handle, CPG_TYPE_AGREED, &iov, 1);
	r = errno_from_cs(cs);
	if (r == 0 || r == -EAGAIN)
		return r;
	log_warning_errno(r, "cpg_mcast_joined (cs_error %d): %m", cs);
	group_fail(g);
	return -ENOTCONN;
}

void group_hold(Group *g, bool hold)
{
	if (g->held == hold)
		return;
	g->held = hold;
	if (!hold) {
		if (g->state == GROUP_DISCONNECTED)
			group_arm(g, 0);
		return;
	}
	log_notice("Leaving CPG group %s until released", g->name.value);
	if (g->have_handle && g->state == GROUP_JOINED)
		(void)cpg_leave(g->handle, &g->name);
	if (g->state == GROUP_DISCONNECTED)
		(void)sd_event_source_set_enabled(g->timer, SD_EVENT_OFF);
	else
		group_fail(g); /* closes and reports from the loop (group_on_lose) */
}

bool group_is_joined(const Group *g)
{
	return g->state == GROUP_JOINED;
}

uint32_t group_nodeid(const Group *g)
{
	return g->nodeid;
}

size_t group_max_message(const Group *g)
{
	return g->max_message;
}
