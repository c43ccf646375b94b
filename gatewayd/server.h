/* server: the ZeroMQ sockets of the external contract, driven by the sd-event loop.
 *
 * A ROUTER at [submit] bind takes one-frame JSON requests from REQ clients (or DEALERs that send
 * an empty delimiter frame) and a PUB at [events] bind publishes two-frame events (topic, JSON).
 * Requests are handed to the callback with the peer's routing envelope, which the gateway keeps
 * until it can answer (a "queued" reply waits for the commit); answering a peer that has gone is
 * harmless. ZMQ_FD is edge-triggered, so after every wakeup and every send the socket is drained
 * while ZMQ_EVENTS reports input, a bounded number of messages per loop turn so that one busy
 * client cannot starve commits and modems.
 *
 * Threads: main thread only. Ownership: the callback's data is valid during the call only. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

typedef struct Server Server;

#define SERVER_PEER_ID_MAX 256

typedef struct ServerPeer {
	uint8_t id[SERVER_PEER_ID_MAX];
	size_t id_len;
} ServerPeer;

typedef void (*ServerRequestFn)(void *userdata, const ServerPeer *peer, const char *data,
				size_t len);

int server_new(sd_event *event, const char *submit_bind, const char *events_bind,
	       ServerRequestFn on_request, void *userdata, Server **ret);
Server *server_free(Server *s);

/* Sends one reply frame (NUL-terminated JSON) to peer; never blocks. */
int server_reply(Server *s, const ServerPeer *peer, const char *json);
/* Publishes an event; dropped (never blocks) when a subscriber is too slow. */
int server_publish(Server *s, const char *topic, const char *json);
