/* replication-cluster: the corosync backend of replication: a CPG group (group.c) carrying
 * frames of payloads (frame.c), with quorum alongside (membership.c).
 *
 * Sending. publish() only queues; a defer source flushes the queue on a coming turn of the loop,
 * so a burst of publications (the gateway's callbacks run in bursts) leaves as few multicasts:
 * each takes as many queued payloads as fit in FLUSH_BATCH_BYTES/FLUSH_BATCH_COUNT (a payload
 * larger than that goes alone). cpg_mcast_joined() is an IPC round trip to the local corosync and
 * never blocks here; when corosync answers CS_ERR_TRY_AGAIN the frame stays queued, and a short
 * timer dispatches what corosync holds for us (our own messages among it: they must drain for
 * the backlog to shrink) and tries again. A flush sends at most FLUSH_MESSAGES_PER_TURN messages
 * before giving the loop a turn, for the same reason.
 *
 * Our own payloads come back through CPG like everyone else's and are delivered only then, in
 * the agreed order. Until then they stay in `inflight`, tagged with their frame's sequence
 * number, because of what happens when the local corosync goes away:
 *
 * Disconnected. Every payload this process published and has not seen delivered back (in flight
 * or still queued) is delivered locally, in publication order, flagged
 * REPLICATION_DELIVERY_LOCAL, and so is everything published until the group is joined again.
 * The gateway thereby keeps working solo, as DESIGN.md asks, and knows which changes its peers
 * may lack. A payload that was in flight may in fact have reached the peer before corosync died;
 * the gateway's merge is idempotent, so a repeat is harmless, whereas dropping it would lose an
 * accepted change. The view reported on a loss is this process alone with connected = false and
 * every former member in `left` with reason DISCONNECTED; once joined again, corosync's own
 * views follow. Payloads published before the very first connection attempt has an outcome wait
 * for it, so a gateway starting next to a healthy corosync never delivers locally. */
#include "replication-backend.h"

#include <corosync/cpg.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "group.h"
#include "log.h"
#include "macro.h"
#include "membership.h"

#define FLUSH_BATCH_BYTES       (64u * 1024u)
#define FLUSH_BATCH_COUNT       1024u
#define FLUSH_MESSAGES_PER_TURN 32u
#define FLUSH_RETRY_USEC        (2 * 1000ULL)

typedef enum LinkState {
	LINK_STARTING, /* first connection attempt under way: publications wait */
	LINK_UP,
	LINK_DOWN,
} LinkState;

typedef struct ClusterReplication {
	Replication base;
	Group *group;
	Membership *membership;
	sd_event_source *flush;
	sd_event_source *retry;
	LinkState link;
	bool flushing;
	PayloadQueue queued;   /* published, not yet multicast */
	PayloadQueue inflight; /* multicast, not yet delivered back; tag = frame sequence */
	uint64_t next_seq;
	uint8_t *buf;
	size_t buf_size;
} ClusterReplication;

static ClusterReplication *cluster_of(Replication *r)
{
	return (ClusterReplication *)r;
}

static void cluster_schedule_flush(ClusterReplication *c)
{
	int retrying = SD_EVENT_OFF;

	if (c->link != LINK_UP || c->flushing)
		return; /* a flush in progress looks at the queue again when it ends */
	(void)sd_event_source_get_enabled(c->retry, &retrying);
	if (retrying != SD_EVENT_OFF)
		return; /* the retry timer flushes */
	(void)sd_event_source_set_enabled(c->flush, SD_EVENT_ONESHOT);
}

/* Flushes again from the timer, after usec. Never by re-enabling the defer source from inside
 * its own handler: sd-event (252) then stops polling, and the CPG fd, whose deliveries must
 * drain, would starve with every other fd of the loop (measured). */
static void cluster_flush_later(ClusterReplication *c, uint64_t usec)
{
	(void)sd_event_source_set_enabled(c->flush, SD_EVENT_OFF);
	(void)sd_event_source_set_time_relative(c->retry, usec);
	(void)sd_event_source_set_enabled(c->retry, SD_EVENT_ONESHOT);
}

static int cluster_reserve(ClusterReplication *c, size_t size)
{
	uint8_t *p;

	if (size <= c->buf_size)
		return 0;
	p = realloc(c->buf, size);
	if (!p)
		return -ENOMEM;
	c->buf = p;
	c->buf_size = size;
	return 0;
}

/* Multicasts one frame from the head of the queue: 0 sent, -EAGAIN, or another -errno. */
static int cluster_send_one(ClusterReplication *c)
{
	size_t limit = MIN((size_t)FLUSH_BATCH_BYTES, group_max_message(c->group));
	size_t size = FRAME_HEADER_SIZE;
	uint32_t count = 0;
	uint8_t *at;
	Payload *p;
	int r;

	for (p = c->queued.head; p && count < FLUSH_BATCH_COUNT; p = p->next) {
		if (count > 0 && size + frame_cost(p->len) > limit)
			break;
		size += frame_cost(p->len);
		count++;
	}
	r = cluster_reserve(c, size);
	if (r < 0)
		return r;
	frame_put_header(c->buf, count, c->next_seq);
	at = c->buf + FRAME_HEADER_SIZE;
	p = c->queued.head;
	for (uint32_t i = 0; i < count; i++, p = p->next)
		at = frame_put_payload(at, p->data, (uint32_t)p->len);

	r = group_send(c->group, c->buf, size);
	if (r == -EAGAIN)
		c->base.stats.try_again++;
	if (r < 0)
		return r;

	c->base.stats.messages_sent++;
	for (uint32_t i = 0; i < count; i++) {
		p = payload_queue_pop(&c->queued);
		p->tag = c->next_seq;
		payload_queue_push(&c->inflight, p);
	}
	c->next_seq++;
	return 0;
}

static void cluster_flush(ClusterReplication *c)
{
	unsigned sent = 0;
	int r = 0;

	if (c->link != LINK_UP)
		return;
	c->flushing = true;
	/* Whatever was delivered locally while disconnected was published before anything still
	 * queued; it goes first, so the order of publication holds across the change. */
	replication_drain_local(&c->base);

	while (c->queued.head && sent < FLUSH_MESSAGES_PER_TURN && c->link == LINK_UP) {
		r = cluster_send_one(c);
		if (r < 0)
			break;
		sent++;
	}
	c->flushing = false;

	if (r == -EAGAIN)
		cluster_flush_later(c, FLUSH_RETRY_USEC);
	else if (r == -EMSGSIZE || r == -ENOMEM) {
		/* Cannot happen with REPLICATION_PAYLOAD_MAX below corosync's limit; keep the
		 * order intact and try again later rather than drop a change. */
		log_error_errno(r, "Cannot multicast %zu queued payloads: %m", c->queued.n);
		cluster_flush_later(c, 100 * 1000ULL);
	} else if (r < 0)
		return; /* the connection broke; its loss arrives from the loop */
	else if (c->queued.head && c->link == LINK_UP)
		cluster_flush_later(c, 0);
}

static int cluster_on_flush(sd_event_source *s, void *userdata)
{
	cluster_flush(userdata);
	return 0;
}

static int cluster_on_retry(sd_event_source *s, uint64_t usec, void *userdata)
{
	ClusterReplication *c = userdata;

	(void)sd_event_source_set_enabled(c->retry, SD_EVENT_OFF);
	/* Our own deliveries are part of what has to drain before corosync takes more. */
	group_dispatch(c->group);
	cluster_flush(c);
	return 0;
}

static void cluster_on_deliver(void *userdata, uint32_t nodeid, uint32_t pid, const void *msg,
                               size_t len)
{
	ClusterReplication *c = userdata;
	bool own = nodeid == group_nodeid(c->group) && pid == c->base.pid;
	FrameReader reader;
	const void *data;
	size_t n;
	int r;

	r = frame_reader_init(&reader, msg, len);
	if (r < 0) {
		log_error_errno(r, "Dropping a %zu-byte message from node %u pid %u: %m", len,
		                nodeid, pid);
		return;
	}
	if (own) {
		/* Our frames come back in the order sent (agreed order keeps each sender's
		 * order), so the head of inflight is this frame. */
		uint32_t popped = 0;

		while (c->inflight.head && c->inflight.head->tag == reader.seq &&
		       popped < reader.count) {
			replication_payload_free(&c->base, payload_queue_pop(&c->inflight));
			popped++;
		}
		if (popped != reader.count)
			log_error("Own replication frame %llu came back with %u payloads; %u were "
			          "in flight under it",
			          (unsigned long long)reader.seq, reader.count, popped);
	}
	while (frame_reader_next(&reader, &data, &n) > 0)
		replication_deliver(&c->base, nodeid, data, n, 0);
}

static ReplicationReason reason_of(uint32_t nodeid, uint32_t pid, const GroupMember *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (list[i].nodeid == nodeid && list[i].pid == pid)
			return (ReplicationReason)list[i].reason;
	return REPLICATION_REASON_NONE;
}

static void cluster_on_members(void *userdata, const GroupMember *members, size_t n_members,
                               const GroupMember *left, size_t n_left, const GroupMember *joined,
                               size_t n_joined)
{
	ClusterReplication *c = userdata;
	ReplicationMember m[CPG_MEMBERS_MAX], l[CPG_MEMBERS_MAX];

	for (size_t i = 0; i < n_members; i++) {
		const GroupMember *g = &members[i];
		ReplicationReason why = reason_of(g->nodeid, g->pid, joined, n_joined);

		/* New to us without a CPG reason: it was in the group when we (re)joined. */
		if (why == REPLICATION_REASON_NONE &&
		    !replication_view_has(&c->base, g->nodeid, g->pid))
			why = REPLICATION_REASON_JOIN;
		m[i] = (ReplicationMember){g->nodeid, g->pid, why};
	}
	for (size_t i = 0; i < n_left; i++)
		l[i] = (ReplicationMember){left[i].nodeid, left[i].pid,
		                           (ReplicationReason)left[i].reason};
	log_info("CPG view: %zu member(s), %zu joined, %zu left", n_members, n_joined, n_left);
	(void)replication_report_view(&c->base, m, n_members, l, n_left, true);
}

static void cluster_on_ring(void *userdata, uint64_t ring_seq, const uint32_t *nodes, size_t n)
{
	ClusterReplication *c = userdata;

	(void)replication_set_ring(&c->base, nodes, n);
}

static void cluster_report_alone(ClusterReplication *c)
{
	const ReplicationView *v = &c->base.view;
	ReplicationMember self = {
	        .nodeid = c->base.nodeid,
	        .pid = c->base.pid,
	        .reason = replication_view_has(&c->base, c->base.nodeid, c->base.pid)
	                          ? REPLICATION_REASON_NONE
	                          : REPLICATION_REASON_JOIN,
	};
	_cleanup_free_ ReplicationMember *left = NULL;
	size_t n_left = 0;

	left = calloc(MAX(v->n_members, (size_t)1), sizeof(*left));
	if (left)
		for (size_t i = 0; i < v->n_members; i++) {
			if (v->members[i].nodeid == self.nodeid && v->members[i].pid == self.pid)
				continue;
			left[n_left++] =
			        (ReplicationMember){v->members[i].nodeid, v->members[i].pid,
			                            REPLICATION_REASON_DISCONNECTED};
		}
	(void)replication_set_ring(&c->base, NULL, 0);
	(void)replication_report_view(&c->base, &self, 1, left, n_left, false);
}

static void cluster_on_connection(void *userdata, bool joined)
{
	ClusterReplication *c = userdata;

	if (joined) {
		c->link = LINK_UP;
		c->base.nodeid = group_nodeid(c->group);
		c->base.stats.connections++;
		replication_set_connected(&c->base, true);
		membership_kick(c->membership);
		(void)sd_event_source_set_enabled(c->flush, SD_EVENT_ONESHOT);
		return;
	}

	c->link = LINK_DOWN;
	(void)sd_event_source_set_enabled(c->flush, SD_EVENT_OFF);
	(void)sd_event_source_set_enabled(c->retry, SD_EVENT_OFF);
	if (c->inflight.n + c->queued.n > 0)
		log_notice("Delivering %zu in-flight and %zu queued payload(s) locally",
		           c->inflight.n, c->queued.n);
	replication_queue_local_all(&c->base, &c->inflight, REPLICATION_DELIVERY_LOCAL);
	replication_queue_local_all(&c->base, &c->queued, REPLICATION_DELIVERY_LOCAL);
	/* The connection callback comes first; is_connected() is already false in the view's. */
	replication_set_connected(&c->base, false);
	cluster_report_alone(c);
}

static void cluster_on_quorum(void *userdata, int quorate, const uint32_t *nodes, size_t n)
{
	ClusterReplication *c = userdata;

	replication_set_quorate(&c->base, quorate);
}

static int cluster_publish(Replication *r, Payload *p)
{
	ClusterReplication *c = cluster_of(r);

	if (c->link == LINK_DOWN) {
		p->flags |= REPLICATION_DELIVERY_LOCAL;
		replication_queue_local(r, p);
		return 0;
	}
	payload_queue_push(&c->queued, p);
	cluster_schedule_flush(c);
	return 0;
}

static void cluster_free(Replication *r)
{
	ClusterReplication *c = cluster_of(r);
	Payload *p;

	c->group = group_free(c->group);
	c->membership = membership_free(c->membership);
	while ((p = payload_queue_pop(&c->inflight)))
		replication_payload_free(r, p);
	while ((p = payload_queue_pop(&c->queued)))
		replication_payload_free(r, p);
	sd_event_source_disable_unref(c->flush);
	sd_event_source_disable_unref(c->retry);
	free(c->buf);
}

static void cluster_hold(Replication *r, bool hold)
{
	group_hold(cluster_of(r)->group, hold);
}

static const ReplicationOps cluster_ops = {
        .publish = cluster_publish,
        .free = cluster_free,
        .hold = cluster_hold,
};

int replication_new_corosync(sd_event *event, const char *group, const ReplicationCallbacks *cb,
                             void *userdata, Replication **ret)
{
	static const GroupCallbacks group_cb = {
	        .deliver = cluster_on_deliver,
	        .members = cluster_on_members,
	        .ring = cluster_on_ring,
	        .connection = cluster_on_connection,
	};
	_cleanup_(replication_freep) Replication *r = NULL;
	ClusterReplication *c;
	int rc;

	if (!group || strlen(group) == 0 || strlen(group) >= CPG_MAX_NAME_LENGTH)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	r = &c->base;
	rc = replication_init(r, &cluster_ops, event, cb, userdata);
	if (rc < 0)
		return rc;
	r->clustered = true;
	c->link = LINK_STARTING;
	c->next_seq = 1;

	rc = sd_event_add_defer(event, &c->flush, cluster_on_flush, c);
	if (rc < 0)
		return rc;
	(void)sd_event_source_set_enabled(c->flush, SD_EVENT_OFF);
	(void)sd_event_source_set_description(c->flush, "replication-flush");
	rc = sd_event_add_time_relative(event, &c->retry, CLOCK_MONOTONIC, FLUSH_RETRY_USEC, 0,
	                                cluster_on_retry, c);
	if (rc < 0)
		return rc;
	(void)sd_event_source_set_enabled(c->retry, SD_EVENT_OFF);
	(void)sd_event_source_set_description(c->retry, "replication-retry");

	rc = group_new(event, group, &group_cb, c, &c->group);
	if (rc < 0)
		return rc;
	rc = membership_new(event, cluster_on_quorum, c, &c->membership);
	if (rc < 0)
		return rc;

	*ret = TAKE_PTR(r);
	return 0;
}
