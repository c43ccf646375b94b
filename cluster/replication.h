/* replication: the one path every state change of the gateway takes.
 *
 * The gateway never applies a change where it makes it. It publishes the change here, and applies
 * it when the change comes back through the deliver callback, in the order this layer agrees on
 * for every member. That makes each node's store a replica of one replicated state machine: the
 * same sequence applied everywhere. Two backends stand behind this interface:
 *   - loopback (solo mode): delivers to itself on the next turn of the event loop;
 *   - the corosync CPG backend (cluster mode, added with the cluster).
 * Payloads are opaque bytes to this layer; the gateway batches several changes per payload.
 *
 * Threads: main thread only; callbacks run from the sd-event loop given at creation.
 * Ownership: publish() copies the payload. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

typedef struct Replication Replication;

typedef struct ReplicationMember {
	uint32_t nodeid;
} ReplicationMember;

typedef struct ReplicationCallbacks {
	/* A payload in agreed order, from the member that published it. */
	void (*deliver)(void *userdata, uint32_t from_nodeid, const void *data, size_t len);
	/* The view changed; members sorted by nodeid, this node included. */
	void (*view)(void *userdata, const ReplicationMember *members, size_t n_members);
} ReplicationCallbacks;

int replication_new_loopback(sd_event *event, uint32_t nodeid, const ReplicationCallbacks *cb,
			     void *userdata, Replication **ret);
Replication *replication_free(Replication *r);

/* Queues a payload for agreed delivery; 0 or -errno (-ENOBUFS when the backlog is full). */
int replication_publish(Replication *r, const void *data, size_t len);

uint32_t replication_nodeid(const Replication *r);
/* True when this backend replicates to other nodes (false for loopback). */
int replication_is_clustered(const Replication *r);
