/* validate: one definition of a phone number and of a name, used by gatewayd's configuration
 * and by its request parser alike. They live here rather than in either of them so that neither
 * has to reach into the other for them. The checks are plain ASCII on purpose: a name or a
 * number must not change meaning with the locale. */
#include "validate.h"

#include <string.h>

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' ||
	       c == '_' || c == '.';
}

bool validate_phone_number(const char *s)
{
	size_t n;

	if (!s || s[0] != '+')
		return false;
	n = strlen(s + 1);
	if (n < 6 || n > 15)
		return false;
	for (const char *c = s + 1; *c; c++)
		if (!is_digit(*c))
			return false;
	return true;
}

bool validate_name(const char *s)
{
	size_t n;

	if (!s)
		return false;
	n = strlen(s);
	if (n == 0 || n > VALIDATE_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!is_name_char(*s))
			return false;
	return true;
}
