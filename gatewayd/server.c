#include "server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "auth.h"
#include "connlimit.h"
#include "log.h"
#include "macro.h"
#include "request.h"
#include "util.h"

/* Requests read per loop turn. A turn's requests become one replicated payload, which must stay
 * under the replication layer's 1000 KiB: 96 sends of the largest text (8 KiB) fit. */
#define SERVER_BATCH 96
/* A subscription message is a topic prefix: event names are short. */
#define SERVER_MAX_SUBSCRIPTION 1024
/* A peer that connects and never completes its ZeroMQ handshake holds a connection (and a slot
 * under max_clients) this long; libzmq's default is 30 s. A CURVE handshake takes milliseconds. */
#define SERVER_HANDSHAKE_MSEC 10000

struct Server {
	void *ctx;
	void *routers[_SERVER_CHANNEL_MAX]; /* NULL: not configured */
	void *pub;
	Auth *auth; /* NULL: no CURVE anywhere */
	ConnLimit *limits[_SERVER_CHANNEL_MAX];
	ConnLimit *pub_limit;
	sd_event_source *io[_SERVER_CHANNEL_MAX];
	sd_event_source *more; /* re-runs the reader when a turn's batch was full */
	ServerRequestFn on_request;
	void *userdata;
};

static int server_drain(Server *s);
static bool router_readable(void *router);

static int on_router_io(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
	return server_drain(userdata);
}

static int on_more(sd_event_source *src, uint64_t usec, void *userdata)
{
	return server_drain(userdata);
}

static bool router_readable(void *router)
{
	int events = 0;
	size_t len = sizeof(events);

	if (!router)
		return false;
	if (zmq_getsockopt(router, ZMQ_EVENTS, &events, &len) < 0)
		return false;
	return events & ZMQ_POLLIN;
}

/* Who sent a request, for the rate limit: the CURVE key ZAP let in (the "User-Id" auth.c
 * answers), else the peer's IP address, else (ipc) the connection's routing id. */
static void peer_submitter(ServerPeer *peer, zmq_msg_t *body)
{
	const char *v = zmq_msg_gets(body, "User-Id");
	size_t n;

	if (v && *v) {
		snprintf(peer->submitter, sizeof(peer->submitter), "key:%s", v);
		return;
	}
	v = zmq_msg_gets(body, "Peer-Address");
	if (v && *v) {
		snprintf(peer->submitter, sizeof(peer->submitter), "addr:%s", v);
		return;
	}
	n = snprintf(peer->submitter, sizeof(peer->submitter), "id:");
	for (size_t i = 0; i < peer->id_len && n + 3 <= sizeof(peer->submitter); i++)
		n += snprintf(peer->submitter + n, sizeof(peer->submitter) - n, "%02x",
		              peer->id[i]);
}

/* Answers a message whose envelope is wrong, in the envelope the client used (a DEALER that sent
 * no delimiter gets none back). Never blocks; a client that does not read is dropped by the
 * high-water mark like any other. */
static void server_reply_framing(Server *s, ServerChannel channel, zmq_msg_t *id, bool delimiter,
                                 const char *detail)
{
	void *router = s->routers[channel];
	_cleanup_free_ char *json = request_reply_error("bad_request", detail);

	if (!json || zmq_msg_size(id) > SERVER_PEER_ID_MAX)
		return;
	if (zmq_send(router, zmq_msg_data(id), zmq_msg_size(id), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
	    (delimiter && zmq_send(router, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) ||
	    zmq_send(router, json, strlen(json), ZMQ_DONTWAIT) < 0)
		log_debug_errno(errno, "Cannot answer a client: %m");
}

/* Reads one multipart message: routing id, empty delimiter, one body frame. A message of another
 * shape is answered "bad_request", naming what is wrong with it; only its first frames are kept,
 * the rest are closed as they are read, so its size costs nothing beyond what libzmq held. */
static int server_read_one(Server *s, ServerChannel channel)
{
	void *router = s->routers[channel];
	zmq_msg_t frames[4];
	size_t n = 0, total = 0;
	int more = 1, r = 0;

	while (more) {
		size_t len = sizeof(more);
		zmq_msg_t dummy;
		zmq_msg_t *m = n < ELEMENTSOF(frames) ? &frames[n] : &dummy;

		zmq_msg_init(m);
		if (zmq_msg_recv(m, router, ZMQ_DONTWAIT) < 0) {
			r = -errno;
			zmq_msg_close(m);
			break;
		}
		total++;
		if (zmq_getsockopt(router, ZMQ_RCVMORE, &more, &len) < 0)
			more = 0;
		if (m == &dummy)
			zmq_msg_close(m);
		else
			n++;
	}
	if (r == -EAGAIN && n == 0)
		return 0;
	if (r >= 0 && n >= 2) {
		zmq_msg_t *id = &frames[0];
		/* A REQ (or a well-behaved DEALER) puts an empty frame before the body. */
		bool delimiter = zmq_msg_size(&frames[1]) == 0;
		size_t bodies = total - (delimiter ? 2 : 1);
		char detail[160];

		if (!delimiter) {
			snprintf(detail, sizeof(detail),
			         "framing: no empty delimiter frame before the request; a DEALER "
			         "must "
			         "send an empty frame, then the JSON frame");
			server_reply_framing(s, channel, id, false, detail);
		} else if (bodies != 1) {
			snprintf(
			        detail, sizeof(detail),
			        "framing: %zu frames after the delimiter; send the JSON request as "
			        "exactly one frame",
			        bodies);
			server_reply_framing(s, channel, id, true, detail);
		} else if (zmq_msg_size(id) > SERVER_PEER_ID_MAX) {
			log_debug("Dropping a request with a routing id of %zu bytes",
			          zmq_msg_size(id));
		} else {
			zmq_msg_t *body = &frames[2];
			ServerPeer peer = {.id_len = zmq_msg_size(id), .channel = channel};
			char *text = malloc(zmq_msg_size(body) + 1);

			memcpy(peer.id, zmq_msg_data(id), peer.id_len);
			peer_submitter(&peer, body);
			if (text) {
				memcpy(text, zmq_msg_data(body), zmq_msg_size(body));
				text[zmq_msg_size(body)] = 0;
				s->on_request(s->userdata, &peer, text, zmq_msg_size(body));
				free(text);
			}
		}
	} else if (n > 0)
		log_debug("Dropping a message of %zu frames without a body", total);
	for (size_t i = 0; i < n; i++)
		zmq_msg_close(&frames[i]);
	return 1;
}

static int server_drain(Server *s)
{
	/* Read until EAGAIN, then ask ZMQ_EVENTS: processing the socket's commands there can
	 * attach a new peer's pipe that already holds a request, and the fd will not signal that
	 * again. Only when both say "nothing" is it safe to wait for the fd. */
	bool full = false;

	for (ServerChannel c = 0; c < _SERVER_CHANNEL_MAX; c++) {
		int i;

		if (!s->routers[c])
			continue;
		for (i = 0; i < SERVER_BATCH; i++) {
			if (server_read_one(s, c) > 0)
				continue;
			if (!router_readable(s->routers[c]))
				break;
		}
		if (i == SERVER_BATCH)
			full = true;
	}
	if (!full)
		return 0;
	/* More is waiting: continue on a later turn, after this turn's commit. A zero-delay
	 * timer rather than a defer source: sd-event would let a defer that keeps re-arming
	 * itself starve every fd (the modems', corosync's). */
	sd_event_source_set_time(s->more, 0);
	sd_event_source_set_enabled(s->more, SD_EVENT_ONESHOT);
	return 0;
}

static int socket_bind(void *sock, const char *endpoint, const char *what)
{
	if (zmq_bind(sock, endpoint) < 0)
		return log_error_errno(errno, "Cannot bind the %s socket to '%s': %s%s", what,
		                       endpoint, errno_fd_prefix(errno), zmq_strerror(errno));
	return 0;
}

/* An ipc socket file is created with the process umask: bind under a umask that leaves the
 * group its access and others none, and set the mode again in case the file existed. */
static int bind_control(void *sock, const char *endpoint)
{
	const char *path;
	mode_t old;
	int r;

	if (strncmp(endpoint, "ipc://", 6) != 0 || endpoint[6] == '@')
		return socket_bind(sock, endpoint, "control");
	path = endpoint + 6;
	old = umask(0117);
	r = socket_bind(sock, endpoint, "control");
	umask(old);
	if (r < 0)
		return r;
	if (chmod(path, 0660) < 0)
		return log_error_errno(errno, "Cannot make the control socket '%s' mode 0660: %m",
		                       path);
	return 0;
}

static void socket_harden(void *sock, int64_t maxmsg)
{
	int linger = 0, handshake = SERVER_HANDSHAKE_MSEC;

	zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger));
	zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof(maxmsg));
	zmq_setsockopt(sock, ZMQ_HANDSHAKE_IVL, &handshake, sizeof(handshake));
}

static int router_new(Server *s, ServerChannel channel, sd_event *event, const Config *config)
{
	int hwm = 100000, fd, r;
	size_t len = sizeof(fd);
	void *router;

	router = s->routers[channel] = zmq_socket(s->ctx, ZMQ_ROUTER);
	if (!router)
		return -errno;
	/* The largest valid request: a larger frame is refused unread and its connection closed. */
	socket_harden(router, (int64_t)request_max_size(config->max_parts));
	zmq_setsockopt(router, ZMQ_RCVHWM, &hwm, sizeof(hwm));
	zmq_setsockopt(router, ZMQ_SNDHWM, &hwm, sizeof(hwm));
	r = connlimit_new(event, s->ctx, router, channel == SERVER_SUBMIT ? "submit" : "control",
	                  channel == SERVER_SUBMIT ? config->submit_max_clients
	                                           : config->control_max_clients,
	                  &s->limits[channel]);
	if (r < 0)
		return r;
	if (zmq_getsockopt(router, ZMQ_FD, &fd, &len) < 0)
		return -errno;
	r = sd_event_add_io(event, &s->io[channel], fd, EPOLLIN, on_router_io, s);
	if (r < 0)
		return r;
	sd_event_source_set_description(s->io[channel],
	                                channel == SERVER_SUBMIT ? "zmq-submit" : "zmq-control");
	return 0;
}

static void warn_insecure(const char *section, const char *bind, bool insecure)
{
	if (insecure && bind && config_endpoint_is_remote(bind))
		log_warning(
		        "[%s] bind = %s listens beyond loopback without CURVE "
		        "(allow_insecure_remote = true): anyone who reaches it can send requests "
		        "and make this daemon hold any amount of memory",
		        section, bind);
}

int server_new(sd_event *event, const Config *config, ServerRequestFn on_request, void *userdata,
               Server **ret)
{
	Server *s;
	int r;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->on_request = on_request;
	s->userdata = userdata;
	s->ctx = zmq_ctx_new();
	if (!s->ctx) {
		free(s);
		return -ENOMEM;
	}
	/* The ZAP handler first: libzmq lets CURVE clients in unchecked while none is bound. */
	if (config->submit_curve.clients_dir || config->events_curve.clients_dir) {
		r = auth_new(event, s->ctx, &s->auth);
		if (r < 0)
			goto fail;
	}
	if (config->submit_curve.clients_dir) {
		r = auth_add_domain(s->auth, "submit", config->submit_curve.clients_dir);
		if (r < 0)
			goto fail;
	}
	if (config->events_curve.clients_dir) {
		r = auth_add_domain(s->auth, "events", config->events_curve.clients_dir);
		if (r < 0)
			goto fail;
	}

	warn_insecure("submit", config->submit_bind,
	              config->submit_insecure_remote && !config->submit_curve.secret_key_file);
	warn_insecure("events", config->events_bind,
	              config->events_insecure_remote && !config->events_curve.secret_key_file);
	warn_insecure("control", config->control_bind, config->control_insecure_remote);

	r = router_new(s, SERVER_SUBMIT, event, config);
	if (r < 0)
		goto fail;
	if (config->submit_curve.secret_key_file) {
		r = auth_setup_server(s->routers[SERVER_SUBMIT],
		                      config->submit_curve.secret_key_file, "submit");
		if (r < 0)
			goto fail;
	}
	r = socket_bind(s->routers[SERVER_SUBMIT], config->submit_bind, "submit");
	if (r < 0)
		goto fail;

	s->pub = zmq_socket(s->ctx, ZMQ_PUB);
	if (!s->pub) {
		r = -errno;
		goto fail;
	}
	socket_harden(s->pub, SERVER_MAX_SUBSCRIPTION);
	r = connlimit_new(event, s->ctx, s->pub, "events", config->events_max_clients,
	                  &s->pub_limit);
	if (r < 0)
		goto fail;
	if (config->events_curve.secret_key_file) {
		r = auth_setup_server(s->pub, config->events_curve.secret_key_file, "events");
		if (r < 0)
			goto fail;
	}
	r = socket_bind(s->pub, config->events_bind, "events");
	if (r < 0)
		goto fail;

	if (config->control_bind) {
		r = router_new(s, SERVER_CONTROL, event, config);
		if (r < 0)
			goto fail;
		r = bind_control(s->routers[SERVER_CONTROL], config->control_bind);
		if (r < 0)
			goto fail;
	}

	/* Requests may already be waiting, and the edge is gone: drain once at the start. */
	r = sd_event_add_time(event, &s->more, CLOCK_MONOTONIC, 0, 0, on_more, s);
	if (r < 0)
		goto fail;
	*ret = s;
	return 0;
fail:
	server_free(s);
	return r;
}

Server *server_free(Server *s)
{
	if (!s)
		return NULL;
	for (ServerChannel c = 0; c < _SERVER_CHANNEL_MAX; c++) {
		sd_event_source_disable_unref(s->io[c]);
		connlimit_free(s->limits[c]);
		if (s->routers[c])
			zmq_close(s->routers[c]);
	}
	sd_event_source_disable_unref(s->more);
	connlimit_free(s->pub_limit);
	if (s->pub)
		zmq_close(s->pub);
	auth_free(s->auth);
	if (s->ctx)
		zmq_ctx_term(s->ctx);
	free(s);
	return NULL;
}

int server_reload(Server *s)
{
	return s ? auth_reload(s->auth) : 0;
}

int server_reply(Server *s, const ServerPeer *peer, const char *json)
{
	void *router = s->routers[peer->channel];
	int r = 0;

	if (!router)
		return -ENOTCONN;
	if (zmq_send(router, peer->id, peer->id_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
	    zmq_send(router, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
	    zmq_send(router, json, strlen(json), ZMQ_DONTWAIT) < 0)
		r = log_debug_errno(errno, "Cannot answer a client: %m");
	/* Sending may consume the edge that announced pending input. */
	if (router_readable(router)) {
		sd_event_source_set_time(s->more, 0);
		sd_event_source_set_enabled(s->more, SD_EVENT_ONESHOT);
	}
	return r;
}

bool server_has_subscribers(const Server *s)
{
	return connlimit_open(s->pub_limit) > 0;
}

int server_publish(Server *s, const char *topic, const char *json)
{
	if (zmq_send(s->pub, topic, strlen(topic), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
	    zmq_send(s->pub, json, strlen(json), ZMQ_DONTWAIT) < 0)
		return log_debug_errno(errno, "Cannot publish a '%s' event: %m", topic);
	return 0;
}
