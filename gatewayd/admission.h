/* admission: whether a parsed request is served, before the gateway looks at it.
 *
 * Prefix admission_. Two rules, both about the submit socket only (the control socket is the
 * operators', protected by its file mode): the ops it serves ([submit] ops) and the rates of
 * sends ([submit] rate, burst) and of reads ([submit] read_rate, read_burst) per submitter. A
 * refusal is answered at once and stores nothing.
 *
 * Threads: main thread. Ownership: the caller frees with admission_free(). */
#pragma once

#include "config.h"
#include "request.h"
#include "server.h"

typedef struct Admission Admission;

int admission_new(const Config *config, Admission **ret);
Admission *admission_free(Admission *a);

/* 0 to serve req from peer; -EPERM with *ret_error filled ("unknown_op" for an op the socket
 * does not serve, "rate_limited") to refuse it. */
int admission_check(Admission *a, const ServerPeer *peer, const Request *req,
                    RequestError *ret_error);
