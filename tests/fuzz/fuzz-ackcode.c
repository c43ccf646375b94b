/* fuzz-ackcode: the SMS reply parser (gatewayd/protocol/ackcode.c) on arbitrary reply texts and
 * senders, as a modem hands them over (any bytes, a NUL ends the text). An acknowledgment's
 * code must be 4 to 12 digits, and an alert whose code it is must match it. */
#include "ackcode.h"

#include <assert.h>
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char code[ACK_CODE_MAX + 1], again[ACK_CODE_MAX + 1];
	char *text = malloc(size + 1);
	ReplyKind kind;
	unsigned seconds;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = 0;

	kind = ackcode_parse(text, code, &seconds);
	assert(kind >= REPLY_OTHER && kind <= REPLY_HELP);
	assert(kind == REPLY_TAKE ? seconds <= REPLY_TAKE_MAX : seconds == 0);
	assert((kind == REPLY_ACK || kind == REPLY_RESOLVE || kind == REPLY_ESCALATE) ==
	       (code[0] != 0));
	if (kind == REPLY_ACK) {
		size_t n = strlen(code);
		char id[33];

		assert(n >= ACK_CODE_MIN && n <= ACK_CODE_MAX);
		for (size_t i = 0; i < n; i++)
			assert(isdigit((unsigned char)code[i]));
		/* The same reply parses the same way twice. */
		assert(ackcode_parse(text, again, NULL) == REPLY_ACK && strcmp(code, again) == 0);
		/* The code of an id made of the input's bytes, as hex, matches that id. */
		for (size_t i = 0; i < 32; i++)
			id[i] = "0123456789abcdef"[i < size ? data[i] & 15 : 0];
		id[32] = 0;
		ackcode_for(id, (unsigned)n, again);
		assert(ackcode_matches(id, again));
	}
	{
		char prefix[REPLY_MAINT_PREFIX_MAX + 1];
		unsigned maint;

		if (ackcode_parse_maint(text, prefix, &maint))
			assert(prefix[0] && strlen(prefix) <= REPLY_MAINT_PREFIX_MAX && maint > 0 &&
			       maint <= REPLY_TAKE_MAX);
		else
			assert(!prefix[0] && maint == 0);
	}
	/* The text as a sender, and as an alert id (any bytes: ack_code must not care). */
	(void)ackcode_sender_answerable(text);
	(void)ackcode_matches(text, code);
	ackcode_for(text, (unsigned)(size % 16), again);
	assert(strlen(again) >= ACK_CODE_MIN && strlen(again) <= ACK_CODE_MAX);
	free(text);
	return 0;
}
