/* fuzz-pdu-check: libFuzzer target for pdu_check(), the bounds check every received PDU passes
 * before libgammu decodes it. It must never read outside its input, whatever the input; and a PDU
 * it accepts must really hold the fields it vouched for, which the walk below re-checks. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "pdu-check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;
	PduProblem p;

	/* An exact-size heap copy, so that ASan sees any read one byte past the end. */
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	for (size_t i = 0; i < size; i++)
		copy[i] = data[i];
	p = pdu_check(size ? copy : NULL, size);
	if ((unsigned)p >= _PDU_PROBLEM_MAX)
		abort();
	if (p == PDU_OK) {
		/* What libgammu trusts: the SMS centre length and the first octet are there. */
		if (size < 2 || copy[0] > 12 || (size_t)copy[0] + 1 >= size)
			abort();
	}
	(void)pdu_problem_to_string(p);
	free(copy);
	return 0;
}
