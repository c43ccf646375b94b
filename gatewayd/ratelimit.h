/* ratelimit: a token bucket per submitter, for [submit] rate and burst.
 *
 * Prefix ratelimit_. A submitter is whatever string the caller names it by (a CURVE key, a peer
 * address). Memory is bounded: buckets that have refilled are forgotten (they are the same as
 * new ones), and past RATELIMIT_MAX_BUCKETS the least recently seen is dropped, which at worst
 * gives that submitter a fresh burst.
 *
 * Threads: one at a time. Ownership: the caller frees with ratelimit_free(). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define RATELIMIT_MAX_BUCKETS 4096
#define RATELIMIT_NAME_MAX    64

typedef struct RateLimit RateLimit;

/* rate per second, burst at once; rate 0 is no limit (ratelimit_take() always says yes). */
int ratelimit_new(unsigned rate, unsigned burst, RateLimit **ret);
RateLimit *ratelimit_free(RateLimit *rl);

/* Takes one token from name's bucket at monotonic time now_usec: true when there was one. */
bool ratelimit_take(RateLimit *rl, const char *name, uint64_t now_usec);
/* Buckets held now (for tests). */
unsigned ratelimit_size(const RateLimit *rl);
