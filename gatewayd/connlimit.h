/* connlimit: a cap on the connections a listening ZeroMQ socket holds at once.
 *
 * Prefix connlimit_. Every connection costs a file descriptor, and file descriptors are shared
 * with the modems, the store and corosync: a client that opens a thousand idle connections must
 * not leave a replugged modem unable to open its port. libzmq has no option for this, so a
 * ConnLimit watches the socket's monitor (accepted and disconnected events, in order); for each
 * connection accepted beyond the cap it ends the oldest silent one (no ZeroMQ greeting yet), or
 * else the newcomer, at once, logging it (rate-limited).
 *
 * Threads: main thread only. Ownership: the caller frees with connlimit_free(), before it
 * closes the socket. */
#pragma once

#include <systemd/sd-event.h>

typedef struct ConnLimit ConnLimit;

/* Watches sock (a socket of zmq_ctx, before its bind) and caps it at max connections. name
 * ("submit", "events", "control") names the section of its max_clients key in the log. */
int connlimit_new(sd_event *event, void *zmq_ctx, void *sock, const char *name, unsigned max,
                  ConnLimit **ret);
ConnLimit *connlimit_free(ConnLimit *l);

/* Connections open now, refused ones included until they are gone (for tests and status). */
unsigned connlimit_open(const ConnLimit *l);
