/* replication-backend: what a replication backend is made of; private to cluster/.
 *
 * A backend embeds Replication as its first member and fills in ReplicationOps. The common part
 * (replication.c) owns the payload accounting, the local delivery queue (all of loopback, and the
 * corosync backend's fallback while it is disconnected), the current view and the callbacks,
 * so every backend reports the same way. Main thread only, like replication.h. */
#pragma once

#include "replication.h"

typedef struct Payload {
	struct Payload *next;
	uint64_t tag; /* the backend's: the corosync backend keeps the frame's sequence number */
	unsigned flags;
	size_t len;
	uint8_t data[];
} Payload;

typedef struct PayloadQueue {
	Payload *head, *tail;
	size_t n;
} PayloadQueue;

void payload_queue_push(PayloadQueue *q, Payload *p);
Payload *payload_queue_pop(PayloadQueue *q);
/* Moves every payload of src to the end of dst, setting flags on each. */
void payload_queue_move(PayloadQueue *dst, PayloadQueue *src, unsigned flags);

typedef struct ReplicationOps {
	/* Takes p (already accounted) on success; on failure the caller frees it. */
	int (*publish)(Replication *r, Payload *p);
	/* Frees what the backend added; replication.c then frees the common part. */
	void (*free)(Replication *r);
	/* Optional: leave the group and stay out (true), or come back (false). */
	void (*hold)(Replication *r, bool hold);
} ReplicationOps;

struct Replication {
	const ReplicationOps *ops;
	sd_event *event;
	ReplicationCallbacks cb;
	void *userdata;
	uint32_t nodeid;
	uint32_t pid;
	bool clustered;
	bool connected;
	bool connection_reported;
	int quorate;
	unsigned delivery_flags;

	/* Payloads to deliver here, from a defer source, in the order queued. */
	PayloadQueue local;
	sd_event_source *local_defer;
	sd_event_source *local_timer; /* goes on when callbacks published during delivery */
	bool local_dispatching;
	/* A backend's first view when it is synthesised (loopback, corosync unreachable). */
	sd_event_source *announce;
	size_t backlog, backlog_bytes;

	ReplicationView view;
	ReplicationMember *members, *left;
	uint32_t *ring_nodes;
	size_t n_ring_nodes;

	ReplicationStats stats;
};

int replication_init(Replication *r, const ReplicationOps *ops, sd_event *event,
                     const ReplicationCallbacks *cb, void *userdata);
/* Frees a payload held by the backend and releases its share of the backlog. */
void replication_payload_free(Replication *r, Payload *p);
/* Hands a payload to the deliver callback, with flags visible to replication_delivery_flags(). */
void replication_deliver(Replication *r, uint32_t from_nodeid, const void *data, size_t len,
                         unsigned flags);
/* Queues payloads for local delivery on a coming turn of the loop. */
void replication_queue_local(Replication *r, Payload *p);
void replication_queue_local_all(Replication *r, PayloadQueue *q, unsigned flags);
/* Delivers the locally queued payloads now (those queued by the callbacks meanwhile later). */
void replication_drain_local(Replication *r);
/* Records a new view (copied, sorted) and calls the view callback. */
int replication_report_view(Replication *r, const ReplicationMember *members, size_t n_members,
                            const ReplicationMember *left, size_t n_left, bool connected);
/* Records the ring, for replication_get_ring(). */
int replication_set_ring(Replication *r, const uint32_t *nodes, size_t n);
void replication_set_connected(Replication *r, bool connected);
void replication_set_quorate(Replication *r, int quorate);
/* Whether (nodeid, pid) is in the current view. */
bool replication_view_has(const Replication *r, uint32_t nodeid, uint32_t pid);
