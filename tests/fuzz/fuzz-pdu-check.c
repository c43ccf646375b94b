/* fuzz-pdu-check: libFuzzer target for pdu_check(), the bounds check every received PDU passes
 * before libgammu decodes it. It must never read outside its input, whatever the input; and a PDU
 * it accepts must really hold the fields it vouched for, which the walk below re-checks.
 *
 * Built with -DFUZZ_WITH_GAMMU (and -lGammu, gammu's include directory), every PDU it accepts is
 * then decoded the way the worker decodes it (GSM_DecodePDUFrame; a status report gets one zero
 * octet of padding):
 * libgammu is not instrumented, but its stack protector aborts on the overflows that pdu_check()
 * exists to prevent, and ASan sees its writes into our buffers. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "pdu-check.h"

#ifdef FUZZ_WITH_GAMMU
#include <gammu.h>
#include <stdbool.h>
#include <string.h>

static void fuzz_decode(const uint8_t *pdu, size_t len)
{
	static GSM_SMSMessage sms;
	unsigned char buf[PDU_MAX_LEN + 1] = {0};

	memcpy(buf, pdu, len);
	if ((pdu[1 + pdu[0]] & 0x03) == 0x02)
		len++; /* a status report: libgammu wants an octet after TP-ST */
	memset(&sms, 0, sizeof(sms));
	(void)GSM_DecodePDUFrame(NULL, &sms, buf, len, NULL, true);
}
#endif

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
#ifdef FUZZ_WITH_GAMMU
		fuzz_decode(copy, size);
#endif
	}
	(void)pdu_problem_to_string(p);
	free(copy);
	return 0;
}
