/* connlimit: connections counted from the socket monitor, the surplus ended on arrival.
 *
 * The other places that see a connection come too late or not at all: a ZAP handler is asked
 * only once the peer has sent its greeting and handshake, so an idle TCP connection that never
 * speaks ZMTP holds its descriptor until the handshake interval ends without ever being asked
 * about. The monitor reports ZMQ_EVENT_ACCEPTED with the new descriptor as soon as libzmq's I/O
 * thread has accepted it, and ZMQ_EVENT_DISCONNECTED whenever an engine ends, for any reason; the
 * monitor's PAIR socket keeps them in order, so the descriptors accepted and not yet
 * disconnected are exactly the ones the socket holds: a ConnLimit keeps that list, oldest first.
 * A connection is ended with shutdown(2), never close(2): the descriptor stays libzmq's, which
 * sees the end of the stream, closes it and reports it disconnected like any other.
 *
 * Which one to end when a connection arrives beyond the cap: refusing the newcomer alone would
 * let anyone who can open TCP connections, key or no key, keep every place taken with
 * connections that never say a word (each for the handshake interval, again and again), and
 * every real client out. So the oldest connection that has not even sent its 64-byte ZeroMQ
 * greeting (TCP_INFO's bytes received) a second after it was accepted gives its place to the
 * newcomer; only when every place is
 * held by a peer that spoke is the newcomer refused. An ipc socket has no TCP_INFO: there the
 * newcomer is refused.
 *
 * The descriptor number in the event may have been closed and reused by the time the main loop
 * reads the event. Before the shutdown the descriptor is checked to be a connected stream socket
 * of the same family and local port as the listener, so the worst a reuse can do is end another
 * connection of this same listener while it is over its cap — never a modem's, corosync's or the
 * store's descriptor. */
#include "connlimit.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <linux/tcp.h>
#include <zmq.h>

#include "log.h"
#include "macro.h"
#include "util.h"

#define CONNLIMIT_LOG_BURST       5
#define CONNLIMIT_LOG_WINDOW_USEC (10 * USEC_PER_SEC)
#define ZMTP_GREETING             64 /* bytes every ZeroMQ peer sends first */
/* A peer greets within a round trip of connecting; one silent this long is not about to. */
#define CONNLIMIT_SILENT_USEC USEC_PER_SEC

typedef struct Conn {
	int fd;
	uint64_t accepted_at; /* monotonic usec, when the main loop saw it */
	bool ended;           /* shut down by us; its disconnect is on the way */
} Conn;

struct ConnLimit {
	void *pair; /* reads the monitor's events */
	void *sock;
	sd_event_source *io;
	char name[16];
	unsigned max;
	Conn *conns; /* open connections, oldest first */
	size_t n_conns, allocated;
	unsigned ended;   /* of those, shut down by us */
	uint64_t refused; /* since start */
	uint64_t log_window_start;
	unsigned logged, suppressed;
};

static void connlimit_log(ConnLimit *l, const char *format, ...) _printf_(2, 3);
static void connlimit_log(ConnLimit *l, const char *format, ...)
{
	uint64_t now = now_monotonic_usec();
	char text[256];
	va_list ap;

	va_start(ap, format);
	vsnprintf(text, sizeof(text), format, ap);
	va_end(ap);
	if (now - l->log_window_start >= CONNLIMIT_LOG_WINDOW_USEC) {
		if (l->suppressed > 0)
			log_warning("%u more %s connection(s) refused or failed were not logged "
			            "(%llu refused since start)",
			            l->suppressed, l->name, (unsigned long long)l->refused);
		l->log_window_start = now;
		l->logged = l->suppressed = 0;
	}
	if (l->logged < CONNLIMIT_LOG_BURST) {
		l->logged++;
		log_warning("%s", text);
	} else {
		l->suppressed++;
		log_debug("%s", text);
	}
}

/* The local port of a tcp:// endpoint ("tcp://127.0.0.1:5570"), or -1. */
static int endpoint_port(const char *endpoint)
{
	const char *colon = strrchr(endpoint, ':');

	if (strncmp(endpoint, "tcp://", 6) != 0 || !colon)
		return -1;
	return atoi(colon + 1);
}

/* Whether fd is, still, a connection accepted by the listener at endpoint (see the top). */
static bool fd_is_ours(int fd, const char *endpoint)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int v = 0, port;
	socklen_t vlen = sizeof(v);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &vlen) < 0 || v != SOCK_STREAM)
		return false;
	vlen = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &vlen) < 0 || v != 0)
		return false;
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return false;
	if (strncmp(endpoint, "ipc://", 6) == 0)
		return ss.ss_family == AF_UNIX;
	port = endpoint_port(endpoint);
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port) == port;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) == port;
	return false;
}

static void peer_text(int fd, char *buf, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char addr[INET6_ADDRSTRLEN] = "?";

	snprintf(buf, size, "a local client");
	if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
		return;
	if (ss.ss_family == AF_INET) {
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, addr, sizeof(addr));
		snprintf(buf, size, "%s", addr);
	} else if (ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, addr, sizeof(addr));
		snprintf(buf, size, "%s", addr);
	}
}

/* Whether a TCP connection has not yet received a whole ZeroMQ greeting from its peer. */
static bool fd_is_silent(int fd)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
	    len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received))
		return false;
	return ti.tcpi_bytes_received < ZMTP_GREETING;
}

static int conn_add(ConnLimit *l, int fd)
{
	if (l->n_conns == l->allocated) {
		size_t n = l->allocated * 2 + 64;
		Conn *v = realloc(l->conns, n * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->conns = v;
		l->allocated = n;
	}
	l->conns[l->n_conns++] = (Conn){.fd = fd, .accepted_at = now_monotonic_usec()};
	return 0;
}

static void conn_remove(ConnLimit *l, int fd)
{
	/* The newest entry with that number: an older one would have been disconnected first. */
	for (size_t i = l->n_conns; i-- > 0;)
		if (l->conns[i].fd == fd) {
			if (l->conns[i].ended)
				l->ended--;
			memmove(&l->conns[i], &l->conns[i + 1],
			        (l->n_conns - i - 1) * sizeof(*l->conns));
			l->n_conns--;
			return;
		}
}

/* Ends c, if its descriptor is still one of ours. */
static bool conn_end(ConnLimit *l, Conn *c, const char *endpoint, char *peer, size_t size)
{
	if (!fd_is_ours(c->fd, endpoint))
		return false; /* already gone: its disconnect event follows */
	peer_text(c->fd, peer, size);
	if (shutdown(c->fd, SHUT_RDWR) < 0)
		return false;
	c->ended = true;
	l->ended++;
	return true;
}

/* A connection arrived beyond the cap: the oldest silent one makes room for it, or it goes. */
static void connlimit_over(ConnLimit *l, const char *endpoint)
{
	Conn *newest = &l->conns[l->n_conns - 1];
	char peer[INET6_ADDRSTRLEN + 16];
	bool tcp = strncmp(endpoint, "tcp://", 6) == 0;
	uint64_t now = now_monotonic_usec();

	/* Oldest first: the first one too young to judge ends the search. */
	for (size_t i = 0; tcp && i + 1 < l->n_conns; i++) {
		Conn *c = &l->conns[i];

		if (now - c->accepted_at < CONNLIMIT_SILENT_USEC)
			break;
		if (c->ended || !fd_is_silent(c->fd) ||
		    !conn_end(l, c, endpoint, peer, sizeof(peer)))
			continue;
		l->refused++;
		connlimit_log(l,
		              "Dropped a silent %s connection from %s for a new one: the cap is %u "
		              "([%s] max_clients)",
		              l->name, peer, l->max, l->name);
		return;
	}
	if (!conn_end(l, newest, endpoint, peer, sizeof(peer)))
		return;
	l->refused++;
	connlimit_log(l,
	              "Refused a %s connection from %s: %zu connections are open, the cap is %u "
	              "([%s] max_clients)",
	              l->name, peer, l->n_conns - l->ended, l->max, l->name);
}

static void connlimit_event(ConnLimit *l, uint16_t event, uint32_t value, const char *endpoint)
{
	int fd = (int)value;

	switch (event) {
	case ZMQ_EVENT_ACCEPTED:
		if (conn_add(l, fd) < 0) {
			/* Out of memory: end it rather than lose count. */
			Conn c = {.fd = fd};
			char peer[INET6_ADDRSTRLEN + 16];

			(void)conn_end(l, &c, endpoint, peer, sizeof(peer));
			l->ended -= c.ended;
			return;
		}
		if (l->n_conns - l->ended > l->max)
			connlimit_over(l, endpoint);
		return;
	case ZMQ_EVENT_DISCONNECTED:
		conn_remove(l, fd);
		return;
	case ZMQ_EVENT_ACCEPT_FAILED:
		/* EMFILE here means the process is out of descriptors: say so by name. */
		connlimit_log(l, "Cannot accept a %s connection on %s: %s%s", l->name, endpoint,
		              value == EMFILE   ? "EMFILE, "
		              : value == ENFILE ? "ENFILE, "
		                                : "",
		              strerror((int)value));
		return;
	default:
		return;
	}
}

/* One event: two frames, (uint16 event, uint32 value) and the endpoint. */
static int connlimit_read_one(ConnLimit *l)
{
	zmq_msg_t head, addr;
	char endpoint[256] = "";
	uint16_t event;
	uint32_t value;
	int more = 0;
	size_t len = sizeof(more);

	zmq_msg_init(&head);
	if (zmq_msg_recv(&head, l->pair, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&head);
		return 0;
	}
	zmq_getsockopt(l->pair, ZMQ_RCVMORE, &more, &len);
	zmq_msg_init(&addr);
	if (more && zmq_msg_recv(&addr, l->pair, 0) >= 0)
		snprintf(endpoint, sizeof(endpoint), "%.*s", (int)MIN(zmq_msg_size(&addr), 255u),
		         (const char *)zmq_msg_data(&addr));
	if (zmq_msg_size(&head) == 6) {
		memcpy(&event, zmq_msg_data(&head), sizeof(event));
		memcpy(&value, (const uint8_t *)zmq_msg_data(&head) + 2, sizeof(value));
		connlimit_event(l, event, value, endpoint);
	}
	zmq_msg_close(&head);
	zmq_msg_close(&addr);
	return 1;
}

static int on_monitor_io(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
	ConnLimit *l = userdata;

	/* Edge-triggered (see server.c): drain, then ask ZMQ_EVENTS. */
	for (;;) {
		int events = 0;
		size_t len = sizeof(events);

		if (connlimit_read_one(l) > 0)
			continue;
		if (zmq_getsockopt(l->pair, ZMQ_EVENTS, &events, &len) < 0 ||
		    !(events & ZMQ_POLLIN))
			return 0;
	}
}

int connlimit_new(sd_event *event, void *zmq_ctx, void *sock, const char *name, unsigned max,
                  ConnLimit **ret)
{
	char endpoint[64];
	int fd, linger = 0, hwm = 0, r;
	size_t len = sizeof(fd);
	ConnLimit *l;

	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->max = max;
	l->sock = sock;
	snprintf(endpoint, sizeof(endpoint), "inproc://gatewayd-monitor-%s", name);
	if (zmq_socket_monitor(sock, endpoint,
	                       ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
	                               ZMQ_EVENT_ACCEPT_FAILED) < 0) {
		r = log_error_errno(errno, "Cannot monitor the %s socket: %s", name,
		                    zmq_strerror(errno));
		goto fail;
	}
	l->pair = zmq_socket(zmq_ctx, ZMQ_PAIR);
	if (!l->pair) {
		r = -errno;
		goto fail;
	}
	/* No high-water mark: a dropped "disconnected" would leave the count high for good. */
	zmq_setsockopt(l->pair, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(l->pair, ZMQ_RCVHWM, &hwm, sizeof(hwm));
	if (zmq_connect(l->pair, endpoint) < 0 || zmq_getsockopt(l->pair, ZMQ_FD, &fd, &len) < 0) {
		r = -errno;
		goto fail;
	}
	r = sd_event_add_io(event, &l->io, fd, EPOLLIN, on_monitor_io, l);
	if (r < 0)
		goto fail;
	sd_event_source_set_description(l->io, "zmq-monitor");
	/* A pipe whose reader never found it empty does not signal new messages: read once now. */
	on_monitor_io(l->io, fd, EPOLLIN, l);
	*ret = l;
	return 0;
fail:
	connlimit_free(l);
	return r;
}

ConnLimit *connlimit_free(ConnLimit *l)
{
	if (!l)
		return NULL;
	sd_event_source_disable_unref(l->io);
	if (l->sock)
		zmq_socket_monitor(l->sock, NULL, 0);
	if (l->pair)
		zmq_close(l->pair);
	free(l->conns);
	free(l);
	return NULL;
}

unsigned connlimit_open(const ConnLimit *l)
{
	return l ? (unsigned)l->n_conns : 0;
}
