/* ackcode: acknowledgment codes and SMS replies; see ackcode.h. */
#include "ackcode.h"

#include <ctype.h>
#include <stdio.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "macro.h"

void ackcode_for(const char *alert_id, unsigned digits, char ret[static ACK_CODE_MAX + 1])
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

bool ackcode_matches(const char *alert_id, const char *code)
{
	char mine[ACK_CODE_MAX + 1];
	size_t n = strlen(code);

	if (n < ACK_CODE_MIN || n > ACK_CODE_MAX)
		return false;
	ackcode_for(alert_id, (unsigned)n, mine);
	return strcmp(mine, code) == 0;
}

static bool is_filler(char c)
{
	return isspace((unsigned char)c) || c == '.' || c == '!' || c == ',' || c == ':' ||
	       c == '-' || c == '#';
}

/* "90m", "2h", "1d": whole minutes, hours or days, up to REPLY_TAKE_MAX; 0 when not one. */
static unsigned parse_duration(const char *s)
{
	unsigned long v = 0, unit;
	size_t n = 0;

	while (isdigit((unsigned char)s[n]) && n < 6)
		v = v * 10 + (unsigned long)(s[n++] - '0');
	unit = s[n] == 'm' ? 60 : s[n] == 'h' ? 3600 : s[n] == 'd' ? 86400 : 0;
	if (n == 0 || v == 0 || unit == 0 || s[n + 1] != 0 || v > REPLY_TAKE_MAX / unit)
		return 0;
	return (unsigned)(v * unit);
}

/* buf starts with word (and a space or a digit, or ends there): the length to skip, else 0. */
static size_t command_word(const char *buf, const char *word)
{
	size_t n = strlen(word);

	if (strncmp(buf, word, n) != 0)
		return 0;
	if (buf[n] == ' ')
		return n + 1;
	return buf[n] == 0 || isdigit((unsigned char)buf[n]) ? n : 0;
}

/* "<word> <code>" as a whole: the code's digits into ret_code. */
static bool code_after(const char *rest, char ret_code[static ACK_CODE_MAX + 1])
{
	size_t digits = 0;

	while (isdigit((unsigned char)rest[digits]))
		digits++;
	if (digits < ACK_CODE_MIN || digits > ACK_CODE_MAX || rest[digits] != 0)
		return false;
	memcpy(ret_code, rest, digits);
	ret_code[digits] = 0;
	return true;
}

ReplyKind ackcode_parse(const char *text, char ret_code[static ACK_CODE_MAX + 1],
                        unsigned *ret_seconds)
{
	static const struct {
		const char *word;
		ReplyKind kind;
	} coded[] = {
	        {"resolve", REPLY_RESOLVE},
	        {"res", REPLY_RESOLVE},
	        {"escalate", REPLY_ESCALATE},
	        {"esc", REPLY_ESCALATE},
	};
	char buf[64];
	size_t n = 0, digits = 0, i = 0, skip;

	/* empty, and 0, for every kind but those that carry them, whatever the text */
	ret_code[0] = 0;
	if (ret_seconds)
		*ret_seconds = 0;
	text += strspn(text, " \t\r\n");
	if (text[0] == '?' && text[1 + strspn(text + 1, " \t\r\n")] == 0)
		return REPLY_HELP; /* "?" alone */
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
	if (strcmp(buf, "who") == 0)
		return REPLY_WHO;
	if (strcmp(buf, "help") == 0)
		return REPLY_HELP;
	skip = command_word(buf, "take");
	if (skip > 0 || strcmp(buf, "take") == 0) {
		unsigned seconds = 0;

		if (buf[skip] != 0) {
			seconds = parse_duration(buf + skip);
			if (seconds == 0)
				return REPLY_OTHER;
		}
		if (ret_seconds)
			*ret_seconds = seconds;
		return REPLY_TAKE;
	}
	for (size_t k = 0; k < ELEMENTSOF(coded); k++) {
		skip = command_word(buf, coded[k].word);
		if (skip > 0)
			return code_after(buf + skip, ret_code) ? coded[k].kind : REPLY_OTHER;
	}

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

bool ackcode_parse_maint(const char *text, char ret_prefix[static REPLY_MAINT_PREFIX_MAX + 1],
                         unsigned *ret_seconds)
{
	char word[6], prefix[REPLY_MAINT_PREFIX_MAX + 2], duration[12], rest[2];
	unsigned seconds;

	ret_prefix[0] = 0;
	*ret_seconds = 0;
	if (sscanf(text, " %5s %65s %11s %1s", word, prefix, duration, rest) != 3 ||
	    strcasecmp(word, "maint") != 0 || strlen(prefix) > REPLY_MAINT_PREFIX_MAX)
		return false;
	for (char *p = duration; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	seconds = parse_duration(duration);
	if (seconds == 0)
		return false;
	memcpy(ret_prefix, prefix, strlen(prefix) + 1);
	*ret_seconds = seconds;
	return true;
}

bool ackcode_sender_answerable(const char *sender)
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
