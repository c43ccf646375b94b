/* server: the ZeroMQ sockets of the external contract, driven by the sd-event loop.
 *
 * A ROUTER at [submit] bind takes one-frame JSON requests from REQ clients (or DEALERs that send
 * an empty delimiter frame) and a PUB at [events] bind publishes two-frame events (topic, JSON).
 * A second ROUTER at [control] bind, when set, takes the same requests from the operators; each
 * request says which socket it came on, and its reply goes back there. With CURVE keys set
 * for [submit] or [events], that socket lets in only the clients its directory lists (auth.h),
 * and each request names its submitter by CURVE key, else by peer address.
 * A message of another shape (no delimiter, several body frames) is answered "bad_request" here,
 * naming the framing problem; a frame larger than request_max_size() is refused by libzmq, which
 * closes that connection. Each listening socket holds at most its max_clients connections
 * (connlimit.h); a peer that never completes the ZeroMQ handshake is dropped after 10 s.
 * Requests are handed to the callback with the peer's routing envelope, which the gateway keeps
 * until it can answer (a "queued" reply waits for the commit); answering a peer that has gone is
 * harmless. ZMQ_FD is edge-triggered, so after every wakeup and every send the socket is drained
 * while ZMQ_EVENTS reports input, a bounded number of messages per loop turn so that one busy
 * client cannot starve commits and modems.
 *
 * Threads: main thread only. Ownership: the callback's data is valid during the call only. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "config.h"

typedef struct Server Server;

#define SERVER_PEER_ID_MAX   256
#define SERVER_SUBMITTER_MAX 64

typedef enum ServerChannel {
	SERVER_SUBMIT,
	SERVER_CONTROL,
	_SERVER_CHANNEL_MAX,
} ServerChannel;

typedef struct ServerPeer {
	uint8_t id[SERVER_PEER_ID_MAX];
	size_t id_len;
	ServerChannel channel;                /* the socket the request came on */
	char submitter[SERVER_SUBMITTER_MAX]; /* "key:<Z85>", "addr:<IP>" or "id:<hex>" */
} ServerPeer;

typedef void (*ServerRequestFn)(void *userdata, const ServerPeer *peer, const char *data,
                                size_t len);

/* Binds [submit], [events] and [control] of config (borrowed for the call only). */
int server_new(sd_event *event, const Config *config, ServerRequestFn on_request, void *userdata,
               Server **ret);
Server *server_free(Server *s);
/* Re-reads the CURVE client directories (SIGHUP). */
int server_reload(Server *s);

/* Sends one reply frame (NUL-terminated JSON) to peer; never blocks. */
int server_reply(Server *s, const ServerPeer *peer, const char *json);
/* Publishes an event; dropped (never blocks) when a subscriber is too slow. */
int server_publish(Server *s, const char *topic, const char *json);
/* Whether a client is connected to the events socket. With none, an event need not even be
 * encoded: a subscriber that connects later never receives what was published before its
 * subscription reached the socket anyway. */
bool server_has_subscribers(const Server *s);
