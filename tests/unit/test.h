/* test: a tiny harness for the unit tests. A failed check prints where and what, marks the
 * test failed and continues; main() returns 1 if anything failed, 77 to skip. */
#pragma once

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures;

#define check(expr)                                                                                \
	do {                                                                                       \
		if (!(expr)) {                                                                     \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #expr);   \
			test_failures++;                                                           \
		}                                                                                  \
	} while (0)

#define check_int(a, b)                                                                            \
	do {                                                                                       \
		long long _a = (long long)(a), _b = (long long)(b);                                \
		if (_a != _b) {                                                                    \
			fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__,  \
			        #a, _a, _b);                                                       \
			test_failures++;                                                           \
		}                                                                                  \
	} while (0)

#define check_str(a, b)                                                                            \
	do {                                                                                       \
		const char *_a = (a), *_b = (b);                                                   \
		if (!_a || !_b || strcmp(_a, _b) != 0) {                                           \
			fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__,        \
			        __LINE__, #a, _a ? _a : "(null)", _b ? _b : "(null)");             \
			test_failures++;                                                           \
		}                                                                                  \
	} while (0)

#define run(fn)                                                                                    \
	do {                                                                                       \
		int _before = test_failures;                                                       \
		fn();                                                                              \
		printf("%s %s\n", test_failures == _before ? "ok  " : "FAIL", #fn);                \
	} while (0)

#define test_exit() (test_failures ? EXIT_FAILURE : EXIT_SUCCESS)
