/* ratelimit: the token bucket per submitter, on an injected clock. */
#include <stdio.h>
#include <stdlib.h>

#include "macro.h"
#include "ratelimit.h"
#include "test.h"

#define T0 (1000 * USEC_PER_SEC)

static void test_burst_then_rate(void)
{
	RateLimit *rl = NULL;
	unsigned ok = 0;

	check_int(ratelimit_new(2, 5, &rl), 0);
	/* At one instant: the burst and not one more. */
	for (int i = 0; i < 20; i++)
		ok += ratelimit_take(rl, "addr:10.0.0.1", T0);
	check_int(ok, 5);
	/* Another submitter has its own bucket. */
	check(ratelimit_take(rl, "addr:10.0.0.2", T0));
	/* Two per second: half a second later one more, then none. */
	check(ratelimit_take(rl, "addr:10.0.0.1", T0 + USEC_PER_SEC / 2));
	check(!ratelimit_take(rl, "addr:10.0.0.1", T0 + USEC_PER_SEC / 2));
	/* Idle long enough, the whole burst again. */
	ok = 0;
	for (int i = 0; i < 20; i++)
		ok += ratelimit_take(rl, "addr:10.0.0.1", T0 + 10 * USEC_PER_SEC);
	check_int(ok, 5);
	ratelimit_free(rl);
}

static void test_off(void)
{
	RateLimit *rl = NULL;

	check_int(ratelimit_new(0, 1, &rl), 0);
	for (int i = 0; i < 1000; i++)
		check(ratelimit_take(rl, "x", T0));
	check_int(ratelimit_size(rl), 0);
	ratelimit_free(rl);
}

static void test_bounded(void)
{
	RateLimit *rl = NULL;
	char name[32];

	check_int(ratelimit_new(1, 1, &rl), 0);
	/* A flood from more submitters than buckets: memory stays bounded. */
	for (unsigned i = 0; i < 3 * RATELIMIT_MAX_BUCKETS; i++) {
		snprintf(name, sizeof(name), "addr:%u", i);
		check(ratelimit_take(rl, name, T0 + i));
	}
	check(ratelimit_size(rl) <= RATELIMIT_MAX_BUCKETS);
	/* Once their buckets have refilled they are forgotten at the next sweep. */
	for (unsigned i = 0; i < RATELIMIT_MAX_BUCKETS + 1; i++) {
		snprintf(name, sizeof(name), "later:%u", i);
		ratelimit_take(rl, name, T0 + 100 * USEC_PER_SEC);
	}
	check(ratelimit_size(rl) <= RATELIMIT_MAX_BUCKETS);
	ratelimit_free(rl);
}

int main(void)
{
	run(test_burst_then_rate);
	run(test_off);
	run(test_bounded);
	return test_exit();
}
