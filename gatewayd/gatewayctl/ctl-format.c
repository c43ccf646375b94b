/* ctl-format: display text for gatewayctl, safe on an operator's terminal.
 *
 * One decoder, next_char(), decides what each input character becomes; the two entry points run
 * it twice over a string: once to measure the whole sanitised result, and, only when that does
 * not fit, once more to copy as much as fits before the "...". No buffer is ever sized by a
 * guess: the sanitised form of a character is never longer than the character itself, so the
 * input length bounds the output. */
#include "ctl-format.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define ELLIPSIS     "..."
#define ELLIPSIS_LEN 3

/* Reads one character at s (not at its terminating NUL), writes its display form to out (1-4
 * bytes, *ret_len of them) and returns how many input bytes it took. */
static size_t next_char(const char *s, bool keep_newlines, char out[static 4], size_t *ret_len)
{
	const uint8_t *p = (const uint8_t *)s;
	uint32_t cp;
	size_t n;

	if (p[0] < 0x80) {
		if (p[0] == '\n' && keep_newlines)
			out[0] = '\n';
		else if (p[0] < 0x20 || p[0] == 0x7f)
			out[0] = ' ';
		else
			out[0] = (char)p[0];
		*ret_len = 1;
		return 1;
	}

	if ((p[0] & 0xe0) == 0xc0) {
		n = 2;
		cp = p[0] & 0x1f;
	} else if ((p[0] & 0xf0) == 0xe0) {
		n = 3;
		cp = p[0] & 0x0f;
	} else if ((p[0] & 0xf8) == 0xf0) {
		n = 4;
		cp = p[0] & 0x07;
	} else
		goto invalid;

	/* A NUL ends the loop on the continuation check, so we never read past the string. */
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			goto invalid;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		goto invalid;

	if (cp < 0xa0) {
		/* C1 controls: some terminals take U+009B as CSI. */
		out[0] = ' ';
		*ret_len = 1;
	} else {
		memcpy(out, s, n);
		*ret_len = n;
	}
	return n;

invalid:
	out[0] = '?';
	*ret_len = 1;
	return 1;
}

/* Writes the sanitised s into out (which has room for strlen(s) + ELLIPSIS_LEN + 1 bytes, or
 * max_bytes + 1 when that is smaller), keeping to max_width code points (0: any) and max_bytes
 * bytes. */
static void sanitize(const char *s, bool keep_newlines, size_t max_width, size_t max_bytes,
                     char *out)
{
	size_t width = 0, bytes = 0, len;
	char c[4];
	bool fits = true;

	for (const char *p = s; *p; width++) {
		p += next_char(p, keep_newlines, c, &len);
		bytes += len;
		if ((max_width > 0 && width + 1 > max_width) || bytes > max_bytes) {
			fits = false;
			break;
		}
	}

	if (!fits) {
		/* Leave room for the ellipsis in both measures. */
		max_width = max_width > 0
		                    ? (max_width > ELLIPSIS_LEN ? max_width - ELLIPSIS_LEN : 0)
		                    : SIZE_MAX;
		max_bytes = max_bytes > ELLIPSIS_LEN ? max_bytes - ELLIPSIS_LEN : 0;
	}

	width = 0;
	bytes = 0;
	for (const char *p = s; *p; width++) {
		size_t in = next_char(p, keep_newlines, c, &len);

		if (!fits && (width + 1 > max_width || bytes + len > max_bytes))
			break;
		memcpy(out + bytes, c, len);
		bytes += len;
		p += in;
	}
	if (!fits) {
		memcpy(out + bytes, ELLIPSIS, ELLIPSIS_LEN);
		bytes += ELLIPSIS_LEN;
	}
	out[bytes] = '\0';
}

char *ctl_format_json(const json_t *v, char *buf, size_t size)
{
	switch (v ? json_typeof(v) : JSON_NULL) {
	case JSON_STRING:
		sanitize(json_string_value(v), false, 0, size - 1, buf);
		break;
	case JSON_INTEGER:
		snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		snprintf(buf, size, "%g", json_real_value(v));
		break;
	case JSON_TRUE:
		snprintf(buf, size, "yes");
		break;
	case JSON_FALSE:
		snprintf(buf, size, "no");
		break;
	case JSON_OBJECT:
	case JSON_ARRAY:
		snprintf(buf, size, ELLIPSIS);
		break;
	case JSON_NULL:
	default:
		snprintf(buf, size, "-");
		break;
	}
	return buf;
}

char *ctl_format_str(const char *s, char *buf, size_t size)
{
	sanitize(s ? s : "-", false, 0, size - 1, buf);
	return buf;
}

char *ctl_format_text(const char *s, size_t max_width, bool keep_newlines)
{
	size_t len = strlen(s);
	char *out = malloc(len + ELLIPSIS_LEN + 1);

	if (!out)
		return NULL;
	sanitize(s, keep_newlines, max_width, len + ELLIPSIS_LEN, out);
	return out;
}

size_t ctl_format_width(const char *s)
{
	return utf8_length(s);
}
