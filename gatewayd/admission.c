/* admission: ops served per socket, and token buckets per submitter for sends and for reads.
 *
 * An op the submit socket does not serve is answered "unknown_op": the contract's error codes
 * are a closed list that clients already handle, and to a client of that socket the op is
 * indeed unknown; the detail says it is served elsewhere, so an operator is not left guessing.
 *
 * Sends and reads have a bucket each. Sends are what fills the store and the modems' queues;
 * reads (status, queue, get, inbox, oncall...) fill nothing, but each costs a walk of the store
 * on the main loop, so a client asking in a tight loop would slow everyone's alerts. Separate
 * buckets keep a monitoring check that asks for status now and then from ever costing an
 * alert its place, and the default read rate (20/s, burst 40) is far above what a monitoring
 * check or an operator asks. */
#include "admission.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "macro.h"
#include "ratelimit.h"
#include "util.h"

struct Admission {
	unsigned submit_ops;
	unsigned rate, burst;
	RateLimit *ratelimit; /* NULL: no limit */
	unsigned read_rate, read_burst;
	RateLimit *read_ratelimit; /* NULL: no limit */
};

int admission_new(const Config *config, Admission **ret)
{
	Admission *a = calloc(1, sizeof(*a));
	int r;

	if (!a)
		return -ENOMEM;
	a->submit_ops = config->submit_ops;
	a->rate = config->submit_rate;
	a->burst = config->submit_burst;
	a->read_rate = config->submit_read_rate;
	a->read_burst = config->submit_read_burst;
	if (a->rate > 0) {
		r = ratelimit_new(a->rate, a->burst, &a->ratelimit);
		if (r < 0) {
			free(a);
			return r;
		}
	}
	if (a->read_rate > 0) {
		r = ratelimit_new(a->read_rate, a->read_burst, &a->read_ratelimit);
		if (r < 0) {
			admission_free(a);
			return r;
		}
	}
	*ret = a;
	return 0;
}

Admission *admission_free(Admission *a)
{
	if (!a)
		return NULL;
	ratelimit_free(a->ratelimit);
	ratelimit_free(a->read_ratelimit);
	free(a);
	return NULL;
}

int admission_check(Admission *a, const ServerPeer *peer, const Request *req,
                    RequestError *ret_error)
{
	if (!a || peer->channel != SERVER_SUBMIT)
		return 0;
	if (!(a->submit_ops & (1u << req->op))) {
		ret_error->code = "unknown_op";
		snprintf(ret_error->detail, sizeof(ret_error->detail),
		         "op '%s' is not served on this socket ([submit] ops); use the control "
		         "socket",
		         request_op_to_string(req->op));
		return -EPERM;
	}
	if (req->op == OP_SEND &&
	    !ratelimit_take(a->ratelimit, peer->submitter, now_monotonic_usec())) {
		ret_error->code = "rate_limited";
		snprintf(ret_error->detail, sizeof(ret_error->detail),
		         "more than %u sends per second (burst %u) from %s; try again later",
		         a->rate, a->burst, peer->submitter);
		log_debug("Rate limited a send from %s", peer->submitter);
		return -EPERM;
	}
	if (!request_op_writes(req->op) &&
	    !ratelimit_take(a->read_ratelimit, peer->submitter, now_monotonic_usec())) {
		ret_error->code = "rate_limited";
		snprintf(ret_error->detail, sizeof(ret_error->detail),
		         "more than %u reads per second (burst %u) from %s ([submit] read_rate); "
		         "try again later",
		         a->read_rate, a->read_burst, peer->submitter);
		log_debug("Rate limited a '%s' from %s", request_op_to_string(req->op),
		          peer->submitter);
		return -EPERM;
	}
	return 0;
}
