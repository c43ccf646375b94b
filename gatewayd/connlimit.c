/* connlimit: connections counted from the socket monitor, the surplus ended on arrival.
 *
 * The other places that see a connection come too late or not at all: a ZAP handler is asked
 * only once the peer has sent its greeting and handshake, so an idle TCP connection that never
 * speaks ZMTP holds its descriptor until the handshake interval ends without ever being asked
 * about. The monitor reports ZMQ_EVENT_ACCEPTED with the new descriptor as soon as libzmq's I/O
 * thread has accepted it, and ZMQ_EVENT_DISCONNECTED whenever an engine ends, for any reason; the
 * monitor's PAIR socket keeps them in order, so accepted minus disconnected is the number of
 * descriptors the socket holds. A connection accepted beyond the cap is shut down (shutdown(2),
 * never close(2): the descriptor stays libzmq's, which sees the end of the stream, closes it and
 * reports it disconnected like any other).
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
#include <zmq.h>

#include "log.h"
#include "macro.h"
#include "util.h"

#define CONNLIMIT_LOG_BURST       5
#define CONNLIMIT_LOG_WINDOW_USEC (10 * USEC_PER_SEC)

struct ConnLimit {
	void *pair; /* reads the monitor's events */
	void *sock;
	sd_event_source *io;
	char name[16];
	unsigned max, open;
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

static void connlimit_event(ConnLimit *l, uint16_t event, uint32_t value, const char *endpoint)
{
	int fd = (int)value;
	char peer[INET6_ADDRSTRLEN + 16];

	switch (event) {
	case ZMQ_EVENT_ACCEPTED:
		l->open++;
		if (l->open <= l->max)
			return;
		if (!fd_is_ours(fd, endpoint))
			return; /* already gone: its disconnect event follows */
		peer_text(fd, peer, sizeof(peer));
		if (shutdown(fd, SHUT_RDWR) < 0)
			return;
		l->refused++;
		connlimit_log(
		        l,
		        "Refused a %s connection from %s: %u connections are open, the cap is "
		        "%u ([%s] max_clients)",
		        l->name, peer, l->open - 1, l->max, l->name);
		return;
	case ZMQ_EVENT_DISCONNECTED:
		if (l->open > 0)
			l->open--;
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
	free(l);
	return NULL;
}

unsigned connlimit_open(const ConnLimit *l)
{
	return l ? l->open : 0;
}
