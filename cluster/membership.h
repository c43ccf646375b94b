/* membership: whether the cluster this node's corosync belongs to is quorate, and which nodes
 * the quorum counts (libquorum), followed in the event loop.
 *
 * Prefix membership_. Main thread only; the callback comes from the loop, never from inside a
 * membership_* call. The node list handed to it lives until it returns. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#define MEMBERSHIP_RECONNECT_USEC (500 * 1000ULL)

typedef struct Membership Membership;

/* quorate: 1, 0, or -ENOTCONN when the local corosync is unreachable (nodes then empty). */
typedef void (*MembershipFn)(void *userdata, int quorate, const uint32_t *nodes, size_t n_nodes);

/* Connects from the loop, at once and then every MEMBERSHIP_RECONNECT_USEC while corosync is
 * unreachable. */
int membership_new(sd_event *event, MembershipFn fn, void *userdata, Membership **ret);
Membership *membership_free(Membership *m);

/* Retry now rather than at the next period (the caller has just seen corosync come back). */
void membership_kick(Membership *m);
int membership_quorate(const Membership *m);
