/* ratelimit: token buckets kept as GCRA (the "virtual scheduling" form of a token bucket).
 *
 * Each bucket holds one number, the theoretical arrival time: when the submitter's next send
 * would be exactly on rate. A send is allowed while that time is no more than burst - 1
 * intervals ahead of now, and moves it one interval on. A bucket whose time has passed is full,
 * which is the state of a bucket never seen, so it can be forgotten at any moment: that is what
 * keeps memory bounded without a timer. Integer microseconds throughout, no drift.
 *
 * Buckets live in a chained hash table; when it holds RATELIMIT_MAX_BUCKETS, a sweep drops the
 * full ones, and if every one is busy (a flood from that many submitters), the one seen least
 * recently. */
#include "ratelimit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

#define RATELIMIT_SLOTS 1024 /* hash chains; a power of two */

typedef struct Bucket Bucket;
struct Bucket {
	Bucket *next;
	uint64_t tat;  /* theoretical arrival time of the next send, usec */
	uint64_t seen; /* last request, usec */
	char name[RATELIMIT_NAME_MAX];
};

struct RateLimit {
	uint64_t interval; /* usec per token */
	uint64_t tolerance;
	unsigned n;
	Bucket *slots[RATELIMIT_SLOTS];
};

int ratelimit_new(unsigned rate, unsigned burst, RateLimit **ret)
{
	RateLimit *rl = calloc(1, sizeof(*rl));

	if (!rl)
		return -ENOMEM;
	if (rate > 0) {
		rl->interval = USEC_PER_SEC / rate;
		if (rl->interval == 0)
			rl->interval = 1;
		rl->tolerance = (uint64_t)(burst > 0 ? burst - 1 : 0) * rl->interval;
	}
	*ret = rl;
	return 0;
}

RateLimit *ratelimit_free(RateLimit *rl)
{
	if (!rl)
		return NULL;
	for (size_t i = 0; i < RATELIMIT_SLOTS; i++)
		for (Bucket *b = rl->slots[i], *next; b; b = next) {
			next = b->next;
			free(b);
		}
	free(rl);
	return NULL;
}

static size_t slot_of(const char *name)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 1099511628211ULL;
	return (size_t)(h & (RATELIMIT_SLOTS - 1));
}

/* Drops the full buckets; if none is, the least recently seen one. */
static void ratelimit_sweep(RateLimit *rl, uint64_t now)
{
	Bucket **oldest = NULL;

	for (size_t i = 0; i < RATELIMIT_SLOTS; i++)
		for (Bucket **pb = &rl->slots[i]; *pb;) {
			Bucket *b = *pb;

			if (b->tat <= now) {
				*pb = b->next;
				free(b);
				rl->n--;
				continue;
			}
			if (!oldest || b->seen < (*oldest)->seen)
				oldest = pb;
			pb = &b->next;
		}
	if (rl->n >= RATELIMIT_MAX_BUCKETS && oldest) {
		Bucket *b = *oldest;

		*oldest = b->next;
		free(b);
		rl->n--;
	}
}

bool ratelimit_take(RateLimit *rl, const char *name, uint64_t now)
{
	size_t slot;
	Bucket *b;

	if (!rl || rl->interval == 0)
		return true;
	slot = slot_of(name);
	for (b = rl->slots[slot]; b; b = b->next)
		if (strncmp(b->name, name, sizeof(b->name) - 1) == 0)
			break;
	if (!b) {
		if (rl->n >= RATELIMIT_MAX_BUCKETS) {
			ratelimit_sweep(rl, now);
			slot = slot_of(name);
		}
		b = calloc(1, sizeof(*b));
		if (!b)
			return true; /* out of memory is no reason to refuse an alert */
		snprintf(b->name, sizeof(b->name), "%s", name);
		b->tat = now;
		b->next = rl->slots[slot];
		rl->slots[slot] = b;
		rl->n++;
	}
	b->seen = now;
	if (b->tat < now)
		b->tat = now;
	if (b->tat - now > rl->tolerance)
		return false;
	b->tat += rl->interval;
	return true;
}

unsigned ratelimit_size(const RateLimit *rl)
{
	return rl ? rl->n : 0;
}
