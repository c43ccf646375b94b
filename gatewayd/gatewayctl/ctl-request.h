/* ctl-request: one JSON request to gatewayd's submit socket, one JSON reply back.
 *
 * Prefix ctl_request_. Single-threaded; each call opens and closes its own ZeroMQ context, which
 * suits a command-line tool that asks one question per run. The reply returned through
 * ret_reply is the caller's (json_decref()). Failures are logged here, where the endpoint and
 * the timeout are known; callers only pass the error on.
 */
#pragma once

#include <jansson.h>

#include "ctl-curve.h"

/* Sends request to endpoint over a REQ socket (a CURVE client when curve is not NULL; a
 * server that refuses our key never answers, which ends as -ETIMEDOUT) and waits at most
 * timeout_sec seconds for the answer. Returns 0 and the reply, a JSON object whatever its "ok"
 * says; -ETIMEDOUT when no answer came in time ("no answer from ENDPOINT within N s"); -EPROTO when
 * the answer is not a JSON object; -EINVAL (or another -errno from zmq_connect) for an endpoint
 * ZeroMQ refuses; -ENOMEM. */
int ctl_request_call(const char *endpoint, double timeout_sec, const CtlCurve *curve,
                     const json_t *request, json_t **ret_reply);
