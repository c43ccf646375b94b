/* group: this process's seat in a corosync process group (CPG), kept across corosync restarts.
 *
 * Prefix group_. Main thread only. Callbacks come from the sd-event loop (the CPG fd, timers),
 * never from inside group_new(), group_send() or group_free(); group_dispatch() runs them on
 * purpose. Lists handed to callbacks live until the callback returns. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

/* Retry periods, in microseconds: connecting to an absent corosync, and joining while corosync
 * answers CS_ERR_TRY_AGAIN (it does during its own synchronisation). */
#define GROUP_RECONNECT_USEC  (200 * 1000ULL)
#define GROUP_JOIN_RETRY_USEC (50 * 1000ULL)
#define GROUP_JOIN_ATTEMPTS   60

typedef struct Group Group;

typedef struct GroupMember {
	uint32_t nodeid;
	uint32_t pid;
	uint32_t reason; /* CPG_REASON_* */
} GroupMember;

typedef struct GroupCallbacks {
	/* A message in agreed order, from (nodeid, pid); this process's own come back too. */
	void (*deliver)(void *userdata, uint32_t nodeid, uint32_t pid, const void *msg, size_t len);
	/* The group's membership changed (CPG confchg). */
	void (*members)(void *userdata, const GroupMember *members, size_t n_members,
	                const GroupMember *left, size_t n_left, const GroupMember *joined,
	                size_t n_joined);
	/* The totem ring changed: the nodes whose corosync forms a ring with ours. */
	void (*ring)(void *userdata, uint64_t ring_seq, const uint32_t *nodes, size_t n_nodes);
	/* Joined the group (true), or could not connect / lost the connection (false). Reported
	 * once per change; the first attempt's outcome is always reported. */
	void (*connection)(void *userdata, bool joined);
} GroupCallbacks;

/* Connects and joins from the loop, at once and then every GROUP_RECONNECT_USEC while corosync
 * is unreachable. -EINVAL when name is empty or longer than 127 bytes. */
int group_new(sd_event *event, const char *name, const GroupCallbacks *cb, void *userdata,
              Group **ret);
/* Leaves the group and disconnects. Accepts NULL; returns NULL. */
Group *group_free(Group *g);

/* Multicasts msg in agreed order (never fragmented: len <= group_max_message()): 0; -EAGAIN when
 * corosync asks to retry later (dispatch, then retry); -ENOTCONN when not joined, or when the
 * connection just broke (the loss is reported from the loop); -EMSGSIZE. */
int group_send(Group *g, const void *msg, size_t len);
/* Runs what corosync has queued for this process (at most a bounded number of messages). */
void group_dispatch(Group *g);

/* Held: leaves the group (reported as a lost connection, from the loop) and does not come back
 * until released; released: connects and joins again. */
void group_hold(Group *g, bool hold);
bool group_is_joined(const Group *g);
/* corosync's id of this node, from the latest connection; 0 before the first. */
uint32_t group_nodeid(const Group *g);
/* The largest message sent in one piece (cpg_max_atomic_msgsize_get). */
size_t group_max_message(const Group *g);
