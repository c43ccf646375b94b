/* ackcode: acknowledgment codes and SMS replies; see ackcode.h. */
#include "ackcode.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>

void ack_code(const char *alert_id, unsigned digits, char ret[static ACK_CODE_MAX + 1])
{
	uint64_t v = 0;

	if (digits < ACK_CODE_MIN)
		digits = ACK_CODE_MIN;
	if (digits > ACK_CODE_MAX)
		digits = ACK_CODE_MAX;
	for (size_t i = 0; i < 16 && alert_id[i]; i++) {
		int c = tolower((unsigned char)alert_id[i]);

		v = v << 4 | (uint64_t)(c >= 'a' ? c - 'a' + 10 : c - '0');
	}
	/* The low decimal digits, the last one last. */
	ret[digits] = 0;
	for (unsigned i = digits; i > 0; i--) {
		ret[i - 1] = (char)('0' + v % 10);
		v /= 10;
	}
}

bool ack_code_matches(const char *alert_id, const char *code)
{
	char mine[ACK_CODE_MAX + 1];
	size_t n = strlen(code);

	if (n < ACK_CODE_MIN || n > ACK_CODE_MAX)
		return false;
	ack_code(alert_id, (unsigned)n, mine);
	return strcmp(mine, code) == 0;
}

static bool is_filler(char c)
{
	return isspace((unsigned char)c) || c == '.' || c == '!' || c == ',' || c == ':' ||
	       c == '-' || c == '#';
}

ReplyKind reply_parse(const char *text, char ret_code[static ACK_CODE_MAX + 1])
{
	char buf[64];
	size_t n = 0, digits = 0, i = 0;

	ret_code[0] = 0; /* empty for every kind but REPLY_ACK, whatever the text */
	/* Letters lowered, digits kept, everything else a single space. */
	for (const char *p = text; *p && n < sizeof(buf) - 1; p++) {
		if (isalnum((unsigned char)*p))
			buf[n++] = (char)tolower((unsigned char)*p);
		else if (is_filler(*p) && n > 0 && buf[n - 1] != ' ')
			buf[n++] = ' ';
		else if (!is_filler(*p))
			return REPLY_OTHER;
	}
	while (n > 0 && buf[n - 1] == ' ')
		n--;
	buf[n] = 0;

	if (strcmp(buf, "ack") == 0)
		return REPLY_ACK_BARE;
	if (strncmp(buf, "ack", 3) == 0) {
		i = 3;
		if (buf[i] == ' ')
			i++;
	}
	while (isdigit((unsigned char)buf[i + digits]))
		digits++;
	if (digits < ACK_CODE_MIN || digits > ACK_CODE_MAX)
		return REPLY_OTHER;
	const char *rest = buf + i + digits;
	if (i == 0) {
		/* "<code>A", as GoAlert's users know it. */
		if (*rest == ' ')
			rest++;
		if (strcmp(rest, "a") != 0)
			return REPLY_OTHER;
	} else if (*rest)
		return REPLY_OTHER;
	memcpy(ret_code, buf + i, digits);
	ret_code[digits] = 0;
	return REPLY_ACK;
}

bool reply_sender_answerable(const char *sender)
{
	size_t digits = 0;
	const char *p = sender;

	if (*p == '+')
		p++;
	for (; *p; p++) {
		if (!isdigit((unsigned char)*p))
			return false;
		digits++;
	}
	return digits >= 8 && digits <= 15;
}
