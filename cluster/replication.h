/* replication: the one path every state change of the gateway takes.
 *
 * The gateway never applies a change where it makes it. It publishes the change here, and applies
 * it when the change comes back through the deliver callback, in the order this layer agrees on
 * for every member. That makes each node's store a replica of one replicated state machine: the
 * same sequence applied everywhere. Two backends stand behind this interface:
 *   - loopback (solo mode): delivers to itself on the next turn of the event loop;
 *   - corosync (cluster mode): agreed-order multicast in a CPG process group. When the local
 *     corosync is unreachable it falls back to delivering locally, like loopback, and says so.
 * Payloads are opaque bytes to this layer; the gateway batches several changes per payload, and
 * the corosync backend batches several payloads per message when its queue is long.
 *
 * Threads: main thread only. Callbacks run from the sd-event loop given at creation, never from
 * inside a call into this API; a callback may publish, but must not free the Replication.
 * Ownership: publish() copies the payload. What a callback is handed (payload bytes, member
 * lists) lives until the callback returns; replication_get_view() until the next view callback
 * or replication_free(). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

typedef struct Replication Replication;

/* The largest payload publish() takes (-EMSGSIZE beyond): one payload always fits one atomic CPG
 * message (1 MiB less corosync's own header), so libcpg never fragments, which would block. */
#define REPLICATION_PAYLOAD_MAX (1000u * 1024u)
/* What publish() holds before it answers -ENOBUFS: payloads not yet delivered back. */
#define REPLICATION_BACKLOG_MAX       65536u
#define REPLICATION_BACKLOG_BYTES_MAX (64u * 1024u * 1024u)

/* Why a member is in a view, or left it. 1-5 have CPG's values (enum cpg_reason_codes). */
typedef enum ReplicationReason {
	REPLICATION_REASON_NONE = 0,     /* in the previous view too */
	REPLICATION_REASON_JOIN = 1,     /* new in this view: joined the group, or was already in
	                                  * it when this process (re)joined */
	REPLICATION_REASON_LEAVE = 2,    /* left the group cleanly (replication_free) */
	REPLICATION_REASON_NODEDOWN = 3, /* its node fell out of the ring: crash, kill -9 of its
	                                  * corosync, network cut; seen after token + consensus */
	REPLICATION_REASON_NODEUP = 4,   /* arrived with its node when the rings merged (restart,
	                                  * healed cut) */
	REPLICATION_REASON_PROCDOWN = 5, /* the process died or lost its corosync, or that corosync
	                                  * stopped cleanly */
	REPLICATION_REASON_DISCONNECTED = 6, /* this node lost its local corosync and sees nobody */
} ReplicationReason;

typedef struct ReplicationMember {
	uint32_t nodeid;
	uint32_t pid;
	ReplicationReason reason;
} ReplicationMember;

typedef struct ReplicationView {
	uint64_t seq;                     /* 1 for the first view of this object, then +1 */
	const ReplicationMember *members; /* sorted by nodeid, then pid; this process included */
	size_t n_members;
	const ReplicationMember *left; /* who left with this change, and why */
	size_t n_left;
	/* false: the local corosync is unreachable; members holds this process alone, and what
	 * is published is delivered here only (REPLICATION_DELIVERY_LOCAL). */
	bool connected;
} ReplicationView;

typedef struct ReplicationCallbacks {
	/* Required. A payload in agreed order, from the member that published it. */
	void (*deliver)(void *userdata, uint32_t from_nodeid, const void *data, size_t len);
	/* Optional. The view changed; members sorted by nodeid, this node included. More about
	 * the change (who left and why, connected or not): replication_get_view(). */
	void (*view)(void *userdata, const ReplicationMember *members, size_t n_members);
	/* Optional. This process joined its group on the local corosync (true) or lost it (false).
	 * On a loss it comes first, then a view of this node alone with connected = false. On a
	 * (re)join the views follow as corosync reports them: first often this node alone (a
	 * restarted corosync sees itself alone for about a second), then the merged ring. */
	void (*connection)(void *userdata, bool connected);
	/* Optional. The local corosync's quorum changed (false also when it is unreachable). */
	void (*quorum)(void *userdata, bool quorate);
} ReplicationCallbacks;

/* Flags of the payload being delivered, for replication_delivery_flags(). */
enum {
	/* Published while this process was not connected to its corosync (or in flight when the
	 * connection was lost): delivered here only and never sent. A payload that was in flight
	 * may nevertheless have reached the peers; applying it twice must be harmless. The
	 * gateway re-announces such state when a peer joins its view again. */
	REPLICATION_DELIVERY_LOCAL = 1u << 0,
};

int replication_new_loopback(sd_event *event, uint32_t nodeid, const ReplicationCallbacks *cb,
                             void *userdata, Replication **ret);
/* Joins CPG group `group` (1-127 bytes) on the local corosync, from the loop: this returns at once
 * and never fails because corosync is down; it then retries every 200 ms. -EINVAL for a bad
 * group name, -ENOMEM. */
int replication_new_corosync(sd_event *event, const char *group, const ReplicationCallbacks *cb,
                             void *userdata, Replication **ret);
/* Leaves the group; payloads not yet delivered are dropped. Accepts NULL; returns NULL. */
Replication *replication_free(Replication *r);

/* Leaves the group and stays out of it while held: the node cannot apply what the group
 * delivers (its store fails). Reported like a lost corosync (connection false, a view of this
 * process alone), and what is published meanwhile is delivered here only. Released, it joins
 * again, and the others see a newcomer. The loopback backend has no group: nothing happens. */
void replication_hold(Replication *r, bool hold);

/* Queues a payload for agreed delivery: 0, or -EMSGSIZE beyond REPLICATION_PAYLOAD_MAX, -ENOBUFS
 * when the backlog is full, -ENOMEM. */
int replication_publish(Replication *r, const void *data, size_t len);

/* This node's id: the loopback's own, or corosync's (cpg_local_get); 0 for corosync until the
 * first connection succeeds. Local deliveries carry it as their sender. */
uint32_t replication_nodeid(const Replication *r);
/* True when this backend replicates to other nodes (false for loopback). */
int replication_is_clustered(const Replication *r);
/* True while joined to the group on the local corosync (always true for loopback). */
bool replication_is_connected(const Replication *r);
/* 1 quorate, 0 not, -ENOTCONN when the local corosync cannot say (loopback: 1). */
int replication_is_quorate(const Replication *r);
/* The latest view; before the first view callback an empty one (seq 0). */
const ReplicationView *replication_get_view(const Replication *r);
/* The nodes whose corosync forms a ring with ours (totem membership), sorted, as last reported:
 * empty while disconnected, this node alone for loopback. corosync reports a ring change just
 * after the CPG view it causes, so read this when needed (status), not in the view callback. A
 * node in the ring but in no member of the view runs corosync without a gateway in the group.
 * Returns the count; *ret_nodes lives until the next change. */
size_t replication_get_ring(const Replication *r, const uint32_t **ret_nodes);
/* Inside the deliver callback: REPLICATION_DELIVERY_* flags of that payload; 0 elsewhere. */
unsigned replication_delivery_flags(const Replication *r);

typedef struct ReplicationStats {
	uint64_t published;       /* payloads accepted by publish() */
	uint64_t delivered;       /* payloads handed to deliver, from any member */
	uint64_t delivered_local; /* of those, with REPLICATION_DELIVERY_LOCAL */
	uint64_t messages_sent;   /* CPG messages multicast (several payloads each under load) */
	uint64_t try_again;       /* CS_ERR_TRY_AGAIN answers to a multicast */
	uint64_t connections;     /* successful joins of the group */
	size_t backlog;           /* payloads held now, not yet delivered back */
} ReplicationStats;

void replication_get_stats(const Replication *r, ReplicationStats *ret);
const char *replication_reason_to_string(ReplicationReason reason);

static inline void replication_freep(Replication **r)
{
	replication_free(*r);
}
