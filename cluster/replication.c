/* replication: the backend-independent part, and the loopback (solo) backend.
 *
 * Every backend shares one local delivery path: a FIFO drained from a defer event source, i.e. on
 * a later turn of the event loop and never from inside publish(). Loopback is nothing but that
 * path. The corosync backend falls back to it while its corosync is unreachable, so a node cut
 * off from its cluster engine keeps applying its own changes in the order it made them.
 * Delivering later rather than at once keeps the gateway honest: code that works in solo mode
 * cannot rely on a change being applied before publish() returns, which is exactly what the
 * corosync backend cannot offer.
 *
 * The view is kept here too, with its storage, so replication_get_view() reads the same in every
 * backend, and the callbacks are called from one place each. */
#include "replication-backend.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"

void payload_queue_push(PayloadQueue *q, Payload *p)
{
	p->next = NULL;
	if (q->tail)
		q->tail->next = p;
	else
		q->head = p;
	q->tail = p;
	q->n++;
}

Payload *payload_queue_pop(PayloadQueue *q)
{
	Payload *p = q->head;

	if (!p)
		return NULL;
	q->head = p->next;
	if (!q->head)
		q->tail = NULL;
	q->n--;
	p->next = NULL;
	return p;
}

void payload_queue_move(PayloadQueue *dst, PayloadQueue *src, unsigned flags)
{
	Payload *p;

	while ((p = payload_queue_pop(src))) {
		p->flags |= flags;
		payload_queue_push(dst, p);
	}
}

void replication_payload_free(Replication *r, Payload *p)
{
	if (!p)
		return;
	r->backlog--;
	r->backlog_bytes -= p->len;
	free(p);
}

void replication_deliver(Replication *r, uint32_t from_nodeid, const void *data, size_t len,
                         unsigned flags)
{
	r->stats.delivered++;
	if (flags & REPLICATION_DELIVERY_LOCAL)
		r->stats.delivered_local++;
	r->delivery_flags = flags;
	r->cb.deliver(r->userdata, from_nodeid, data, len);
	r->delivery_flags = 0;
}

static void deliver_local_one(Replication *r)
{
	Payload *p = payload_queue_pop(&r->local);

	replication_deliver(r, r->nodeid, p->data, p->len, p->flags);
	replication_payload_free(r, p);
}

static void local_dispatch(Replication *r)
{
	/* Deliver only what was queued before this turn, so that payloads published by the
	 * callbacks wait for the next turn (they form the next group commit). */
	size_t n = r->local.n;

	r->local_dispatching = true;
	while (n-- > 0 && r->local.head)
		deliver_local_one(r);
	r->local_dispatching = false;
	(void)sd_event_source_set_enabled(r->local_defer, SD_EVENT_OFF);
	/* What the callbacks published goes on from a timer due at once: sd-event (252) never
	 * polls while a defer source re-enables itself from its own handler, so a deliver ->
	 * publish chain would starve every fd of the loop (measured). A timer takes turns. */
	if (r->local.head) {
		(void)sd_event_source_set_time_relative(r->local_timer, 0);
		(void)sd_event_source_set_enabled(r->local_timer, SD_EVENT_ONESHOT);
	}
}

static int local_on_defer(sd_event_source *s, void *userdata)
{
	local_dispatch(userdata);
	return 0;
}

static int local_on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	local_dispatch(userdata);
	return 0;
}

void replication_queue_local(Replication *r, Payload *p)
{
	payload_queue_push(&r->local, p);
	if (!r->local_dispatching)
		(void)sd_event_source_set_enabled(r->local_defer, SD_EVENT_ONESHOT);
}

void replication_queue_local_all(Replication *r, PayloadQueue *q, unsigned flags)
{
	payload_queue_move(&r->local, q, flags);
	if (r->local.head && !r->local_dispatching)
		(void)sd_event_source_set_enabled(r->local_defer, SD_EVENT_ONESHOT);
}

void replication_drain_local(Replication *r)
{
	if (r->local.head)
		local_dispatch(r);
}

static int member_cmp(const void *a, const void *b)
{
	const ReplicationMember *x = a, *y = b;

	if (x->nodeid != y->nodeid)
		return x->nodeid < y->nodeid ? -1 : 1;
	if (x->pid != y->pid)
		return x->pid < y->pid ? -1 : 1;
	return 0;
}

static int nodeid_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void *memdup_or_empty(const void *p, size_t n, size_t size)
{
	/* calloc(1, ...) for an empty list, so that a view never holds NULL arrays. */
	void *q = calloc(n ? n : 1, size);

	if (q && n)
		memcpy(q, p, n * size);
	return q;
}

bool replication_view_has(const Replication *r, uint32_t nodeid, uint32_t pid)
{
	for (size_t i = 0; i < r->view.n_members; i++)
		if (r->members[i].nodeid == nodeid && r->members[i].pid == pid)
			return true;
	return false;
}

int replication_report_view(Replication *r, const ReplicationMember *members, size_t n_members,
                            const ReplicationMember *left, size_t n_left, bool connected)
{
	ReplicationMember *m, *l;

	m = memdup_or_empty(members, n_members, sizeof(*m));
	l = memdup_or_empty(left, n_left, sizeof(*l));
	if (!m || !l) {
		free(m);
		free(l);
		return log_error_errno(ENOMEM, "Cannot record a view of %zu members: %m",
		                       n_members);
	}
	qsort(m, n_members, sizeof(*m), member_cmp);
	qsort(l, n_left, sizeof(*l), member_cmp);
	free(r->members);
	free(r->left);
	r->members = m;
	r->left = l;
	r->view.seq++;
	r->view.members = m;
	r->view.n_members = n_members;
	r->view.left = l;
	r->view.n_left = n_left;
	r->view.connected = connected;
	if (r->cb.view)
		r->cb.view(r->userdata, m, n_members);
	return 0;
}

int replication_set_ring(Replication *r, const uint32_t *nodes, size_t n)
{
	uint32_t *copy = memdup_or_empty(nodes, n, sizeof(*copy));

	if (!copy)
		return log_error_errno(ENOMEM, "Cannot record a ring of %zu nodes: %m", n);
	qsort(copy, n, sizeof(*copy), nodeid_cmp);
	free(r->ring_nodes);
	r->ring_nodes = copy;
	r->n_ring_nodes = n;
	return 0;
}

void replication_set_connected(Replication *r, bool connected)
{
	/* The first state is reported even when it is "not connected", so a gateway that starts
	 * beside a dead corosync hears of it. */
	if (r->connection_reported && r->connected == connected)
		return;
	r->connection_reported = true;
	r->connected = connected;
	if (r->cb.connection)
		r->cb.connection(r->userdata, connected);
}

void replication_set_quorate(Replication *r, int quorate)
{
	bool was = r->quorate > 0;

	r->quorate = quorate;
	if (was != (quorate > 0) && r->cb.quorum)
		r->cb.quorum(r->userdata, quorate > 0);
}

int replication_init(Replication *r, const ReplicationOps *ops, sd_event *event,
                     const ReplicationCallbacks *cb, void *userdata)
{
	int rc;

	if (!cb || !cb->deliver)
		return -EINVAL;
	r->ops = ops;
	r->event = sd_event_ref(event);
	r->cb = *cb;
	r->userdata = userdata;
	r->pid = (uint32_t)getpid();
	r->quorate = -ENOTCONN;

	rc = sd_event_add_defer(event, &r->local_defer, local_on_defer, r);
	if (rc < 0)
		return rc;
	(void)sd_event_source_set_enabled(r->local_defer, SD_EVENT_OFF);
	(void)sd_event_source_set_description(r->local_defer, "replication-local");
	rc = sd_event_add_time_relative(event, &r->local_timer, CLOCK_MONOTONIC, 0, 0,
	                                local_on_timer, r);
	if (rc < 0)
		return rc;
	(void)sd_event_source_set_enabled(r->local_timer, SD_EVENT_OFF);
	(void)sd_event_source_set_description(r->local_timer, "replication-local-more");

	r->members = calloc(1, sizeof(*r->members));
	r->left = calloc(1, sizeof(*r->left));
	r->ring_nodes = calloc(1, sizeof(*r->ring_nodes));
	if (!r->members || !r->left || !r->ring_nodes)
		return -ENOMEM;
	r->view.members = r->members;
	r->view.left = r->left;
	return 0;
}

Replication *replication_free(Replication *r)
{
	Payload *p;

	if (!r)
		return NULL;
	if (r->ops && r->ops->free)
		r->ops->free(r);
	while ((p = payload_queue_pop(&r->local)))
		replication_payload_free(r, p);
	sd_event_source_disable_unref(r->local_defer);
	sd_event_source_disable_unref(r->local_timer);
	sd_event_source_disable_unref(r->announce);
	sd_event_unref(r->event);
	free(r->members);
	free(r->left);
	free(r->ring_nodes);
	free(r);
	return NULL;
}

int replication_publish(Replication *r, const void *data, size_t len)
{
	Payload *p;
	int rc;

	if (len > REPLICATION_PAYLOAD_MAX)
		return -EMSGSIZE;
	if (r->backlog >= REPLICATION_BACKLOG_MAX ||
	    r->backlog_bytes + len > REPLICATION_BACKLOG_BYTES_MAX)
		return -ENOBUFS;
	p = malloc(sizeof(*p) + len);
	if (!p)
		return -ENOMEM;
	*p = (Payload){.len = len};
	if (len > 0)
		memcpy(p->data, data, len);
	r->backlog++;
	r->backlog_bytes += len;

	rc = r->ops->publish(r, p);
	if (rc < 0) {
		replication_payload_free(r, p);
		return rc;
	}
	r->stats.published++;
	return 0;
}

void replication_hold(Replication *r, bool hold)
{
	if (r->ops->hold)
		r->ops->hold(r, hold);
}

uint32_t replication_nodeid(const Replication *r)
{
	return r->nodeid;
}

int replication_is_clustered(const Replication *r)
{
	return r->clustered;
}

bool replication_is_connected(const Replication *r)
{
	return r->connected;
}

int replication_is_quorate(const Replication *r)
{
	return r->quorate;
}

const ReplicationView *replication_get_view(const Replication *r)
{
	return &r->view;
}

size_t replication_get_ring(const Replication *r, const uint32_t **ret_nodes)
{
	*ret_nodes = r->ring_nodes;
	return r->n_ring_nodes;
}

unsigned replication_delivery_flags(const Replication *r)
{
	return r->delivery_flags;
}

void replication_get_stats(const Replication *r, ReplicationStats *ret)
{
	*ret = r->stats;
	ret->backlog = r->backlog;
}

const char *replication_reason_to_string(ReplicationReason reason)
{
	switch (reason) {
	case REPLICATION_REASON_NONE:
		return "none";
	case REPLICATION_REASON_JOIN:
		return "join";
	case REPLICATION_REASON_LEAVE:
		return "leave";
	case REPLICATION_REASON_NODEDOWN:
		return "nodedown";
	case REPLICATION_REASON_NODEUP:
		return "nodeup";
	case REPLICATION_REASON_PROCDOWN:
		return "procdown";
	case REPLICATION_REASON_DISCONNECTED:
		return "disconnected";
	}
	return "unknown";
}

/* ---- loopback ---- */

static int loopback_publish(Replication *r, Payload *p)
{
	replication_queue_local(r, p);
	return 0;
}

static const ReplicationOps loopback_ops = {
        .publish = loopback_publish,
};

static int loopback_announce(sd_event_source *s, void *userdata)
{
	Replication *r = userdata;
	ReplicationMember self = {
	        .nodeid = r->nodeid, .pid = r->pid, .reason = REPLICATION_REASON_JOIN};

	(void)replication_set_ring(r, &r->nodeid, 1);
	(void)replication_report_view(r, &self, 1, NULL, 0, true);
	return 0;
}

int replication_new_loopback(sd_event *event, uint32_t nodeid, const ReplicationCallbacks *cb,
                             void *userdata, Replication **ret)
{
	_cleanup_(replication_freep) Replication *r = NULL;
	int rc;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	rc = replication_init(r, &loopback_ops, event, cb, userdata);
	if (rc < 0)
		return rc;
	r->nodeid = nodeid;
	r->connected = true;
	r->quorate = 1;

	/* The first view, like a cluster's first configuration change, arrives from the loop. */
	rc = sd_event_add_defer(event, &r->announce, loopback_announce, r);
	if (rc < 0)
		return rc;
	sd_event_source_set_enabled(r->announce, SD_EVENT_ONESHOT);

	*ret = TAKE_PTR(r);
	return 0;
}
