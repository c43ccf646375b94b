/* ctl-request: one JSON request to gatewayd's submit socket, one JSON reply back.
 *
 * A REQ socket is the natural client of the daemon's ROUTER: it adds the empty delimiter frame
 * and enforces one reply per request. Its weakness is that it waits forever for a peer that is
 * not there, so nothing here blocks: the connect is asynchronous, the send and the receive are
 * non-blocking, and the waiting happens in zmq_poll() against one deadline on the monotonic
 * clock that covers the whole exchange, so a signal that interrupts the poll does not stretch
 * the -t the operator asked for. ZMQ_LINGER 0 lets us exit at once when the daemon never
 * answered, instead of holding the unsent request in the background. */
#include "ctl-request.h"

#include <errno.h>
#include <string.h>
#include <zmq.h>

#include "log.h"
#include "macro.h"
#include "util.h"

static void zmq_ctx_termp(void **ctx)
{
	if (*ctx)
		zmq_ctx_term(*ctx);
}

static void zmq_closep(void **sock)
{
	if (*sock)
		zmq_close(*sock);
}

static void zmq_msg_closep(zmq_msg_t *msg)
{
	zmq_msg_close(msg);
}

/* Waits until socket is ready for events or deadline (monotonic usec) passes. */
static int wait_for(void *sock, short events, uint64_t deadline)
{
	for (;;) {
		zmq_pollitem_t item = {.socket = sock, .events = events};
		uint64_t now = now_monotonic_usec();
		long timeout_ms;
		int r;

		if (now >= deadline)
			return -ETIMEDOUT;
		/* Round up, or we would spin on the last sub-millisecond. */
		timeout_ms = (long)((deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC);
		r = zmq_poll(&item, 1, timeout_ms);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (item.revents & events)
			return 0;
	}
}

int ctl_request_call(const char *endpoint, double timeout_sec, const CtlCurve *curve,
                     const json_t *request, json_t **ret_reply)
{
	_cleanup_free_ char *payload = NULL;
	_cleanup_(zmq_ctx_termp) void *ctx = NULL;
	_cleanup_(zmq_closep) void *sock = NULL;
	_cleanup_(zmq_msg_closep) zmq_msg_t msg;
	uint64_t deadline;
	json_error_t error;
	json_t *reply;
	int linger = 0, r;

	/* Closing an uninitialised message in the cleanup would be undefined. */
	zmq_msg_init(&msg);

	payload = json_dumps(request, JSON_COMPACT);
	if (!payload)
		return log_error_errno(ENOMEM, "Out of memory.");

	ctx = zmq_ctx_new();
	if (!ctx)
		return log_error_errno(errno, "cannot create a ZeroMQ context: %s",
		                       zmq_strerror(errno));
	sock = zmq_socket(ctx, ZMQ_REQ);
	if (!sock)
		return log_error_errno(errno, "cannot create a ZeroMQ socket: %s",
		                       zmq_strerror(errno));
	if (zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof(linger)) < 0)
		return log_error_errno(errno, "cannot set ZMQ_LINGER: %s", zmq_strerror(errno));
	if (strncmp(endpoint, "tcp://[", 7) == 0) {
		int ipv6 = 1;

		if (zmq_setsockopt(sock, ZMQ_IPV6, &ipv6, sizeof(ipv6)) < 0)
			return log_error_errno(errno, "cannot set ZMQ_IPV6: %s",
			                       zmq_strerror(errno));
	}
	if (curve && ctl_curve_apply(curve, sock) < 0)
		return -EINVAL;
	if (zmq_connect(sock, endpoint) < 0)
		return log_error_errno(errno, "cannot connect to %s: %s", endpoint,
		                       zmq_strerror(errno));

	deadline = now_monotonic_usec() + (uint64_t)(timeout_sec * (double)USEC_PER_SEC + 0.5);
	log_debug("-> %s: %s", endpoint, payload);

	/* The pipe to a connecting peer exists at once, so this rarely has to wait. */
	for (;;) {
		if (zmq_send(sock, payload, strlen(payload), ZMQ_DONTWAIT) >= 0)
			break;
		if (errno != EAGAIN && errno != EINTR)
			return log_error_errno(errno, "cannot send to %s: %s", endpoint,
			                       zmq_strerror(errno));
		r = wait_for(sock, ZMQ_POLLOUT, deadline);
		if (r < 0)
			goto fail_wait;
	}

	for (;;) {
		r = wait_for(sock, ZMQ_POLLIN, deadline);
		if (r < 0)
			goto fail_wait;
		if (zmq_msg_recv(&msg, sock, ZMQ_DONTWAIT) >= 0)
			break;
		if (errno != EAGAIN && errno != EINTR)
			return log_error_errno(errno, "cannot receive from %s: %s", endpoint,
			                       zmq_strerror(errno));
	}

	/* The protocol has one reply frame; further frames are not ours to read. */
	log_debug("<- %s: %.*s", endpoint, (int)MIN(zmq_msg_size(&msg), (size_t)65536),
	          (const char *)zmq_msg_data(&msg));
	reply = json_loadb(zmq_msg_data(&msg), zmq_msg_size(&msg), 0, &error);
	if (!reply)
		return log_error_errno(EPROTO, "malformed reply from %s: %s", endpoint, error.text);
	if (!json_is_object(reply)) {
		json_decref(reply);
		return log_error_errno(EPROTO, "malformed reply from %s: not a JSON object",
		                       endpoint);
	}
	*ret_reply = reply;
	return 0;

fail_wait:
	if (r == -ETIMEDOUT)
		return log_error_errno(r, "no answer from %s within %g s", endpoint, timeout_sec);
	return log_error_errno(r, "cannot wait for %s: %s", endpoint, zmq_strerror(-r));
}
