/* fuzz-request: libFuzzer target for request_parse(), the first code every submitted frame
 * reaches. Any input must come back as a Request or as an error code from the contract's list,
 * without a crash, a leak or undefined behaviour; the sanitizers do the rest.
 *
 * Seeds: tests/fuzz/corpus/request/ (valid requests of every op and typical mistakes). By hand:
 *   clang-14 -g -O1 -fsanitize=fuzzer,address,undefined -std=c17 -D_GNU_SOURCE -Icommon \
 *     -Igatewayd/protocol tests/fuzz/fuzz-request.c gatewayd/protocol/request.c \
 *     common/validate.c common/util.c common/log.c -ljansson -lsystemd -o fuzz-request
 *   ./fuzz-request -max_total_time=30 -max_len=70000 NEW_CORPUS tests/fuzz/corpus/request */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

static const char *const codes[] = {
        "bad_json",     "bad_request", "unknown_op",   "invalid_number", "text_too_long",
        "unknown_role", "unknown_id",  "rate_limited", "queue_full",     "storage_error",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Request *r = NULL;
	RequestError e = {0};
	int rc = request_parse(data, size, &r, &e);

	if (rc == 0) {
		if (!r)
			abort();
		/* What the gateway relies on: a send has recipients and a text. */
		if (r->op == OP_SEND && (r->n_to == 0 || !r->text))
			abort();
		request_free(r);
	} else if (rc == -EINVAL) {
		bool known = false;

		for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
			if (e.code && strcmp(e.code, codes[i]) == 0)
				known = true;
		if (!known || memchr(e.detail, 0, sizeof(e.detail)) == NULL)
			abort();
	} else if (rc != -ENOMEM)
		abort();
	return 0;
}
