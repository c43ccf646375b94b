/* members: what this node knows of every gateway node of its cluster, and who sends what.
 *
 * Each node announces itself ("hello": name, corosync nodeid, clock, config fingerprint, its
 * modems) whenever the view changes, and its modems' health whenever a modem goes up or down.
 * These announcements travel in agreed order like every other change, so every node holds the
 * same picture at the same point of the sequence, and members_sender() — a pure function of that
 * picture and of the delivery — gives the same answer everywhere: one node sends each delivery.
 * Where the pictures briefly differ (a health change in flight), both nodes may claim the same
 * delivery; the assignment that comes first in agreed order wins and the other is dropped, so
 * a delivery is never sent twice while the nodes see each other.
 *
 * Threads: main thread only. Ownership: a Members is embedded by its user; members_done()
 * releases what it holds. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MEMBERS_MAX     16
#define MEMBER_NAME_MAX 32

typedef struct MemberNode {
	char name[MEMBER_NAME_MAX + 1];
	uint32_t nodeid;
	bool self;
	bool in_view;    /* a process of its nodeid is in the current view (self: always) */
	bool announced;  /* its hello arrived since it (re)joined the view */
	bool remembered; /* seen before (the store's node list): may be alive while out of view */
	uint64_t last_seen;      /* realtime usec of the last payload from it */
	int64_t clock_skew_usec; /* its clock minus ours, at its last hello */
	char fingerprint[33];
	unsigned version;
	bool voice; /* it can dial out */
	unsigned usable_modems;
	json_t *modems; /* its modems as it last announced them (status objects) */
	/* Why its store cannot commit, as it last announced; "" when it can. */
	char store_error[128];
	/* Rejoin (gateway-cluster.c): the identity of its store as its last hello said (0:
	 * unknown); the first revision of our store it may lack (store_rev()); since when
	 * (monotonic usec) it has been in step with us, without a break (0: it is not now). */
	uint64_t store_id;
	uint64_t since;
	uint64_t whole_since;
	bool since_dirty; /* store_id/since changed: written with the next batch */
	bool said_hello;  /* its hello of the current state exchange has arrived */
} MemberNode;

typedef struct Members {
	MemberNode nodes[MEMBERS_MAX];
	size_t n;
} Members;

void members_init(Members *m, const char *self_name);
void members_done(Members *m);

MemberNode *members_self(Members *m);
/* The node of that name; with create, added when missing (NULL when full or name too long). */
MemberNode *members_get(Members *m, const char *name, bool create);
MemberNode *members_by_nodeid(Members *m, uint32_t nodeid);

/* The current view, as corosync nodeids. Nodes that left lose their announcement; they are
 * eligible again only after their next hello. */
void members_set_view(Members *m, const uint32_t *nodeids, size_t n);

/* Which node sends this delivery: among the nodes in the view that announced themselves and
 * have a usable modem — and, while `grace` is true, the remembered nodes out of view, which may
 * still be alive — the one picked by a hash of the alert id and the number; after a failure on
 * `last_node` another eligible node is preferred. NULL when no node can send. */
const char *members_owner(const Members *m, const char *alert_id, const char *number,
                          const char *last_node, bool grace);
/* Which node sends this delivery: as members_owner(), but each node weighs as many usable modems
 * as it has, so that a burst spreads over every modem of the cluster alike (a node with three
 * modems sends three times as many as a node with one). With one modem per node, the same
 * answer as members_owner(). */
const char *members_sender(const Members *m, const char *alert_id, const char *number,
                           const char *last_node, bool grace);
/* Which node dials for this delivery when its SMS paths have failed: among the online nodes
 * that can dial (self: `self_can_dial`), by the same kind of hash. NULL when none can. */
const char *members_dialer(const Members *m, const char *alert_id, const char *number,
                           bool self_can_dial);
/* Whether `name` could send at all (eligible as above). */
bool members_eligible(const Members *m, const MemberNode *n, bool grace);
/* How many nodes are eligible. */
size_t members_count_eligible(const Members *m, bool grace);
