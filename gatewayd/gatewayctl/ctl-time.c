/* ctl-time: TIME arguments and local display for gatewayctl.
 *
 * The daemon speaks RFC 3339 and Unix seconds; an operator thinks in the local wall clock ("hand
 * over to carol until Friday 18:00") or in durations ("for 8h"). The conversion happens here, on
 * the operator's machine and in the operator's time zone, so that what is sent is an absolute
 * instant and the daemon never has to guess whose zone a time was meant in. A local time that
 * does not exist (the hour the clock skips in spring) is refused rather than moved: an override
 * that ends an hour off is worse than a second try. */
#include "ctl-time.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "macro.h"
#include "util.h"

/* "8h", "3d": from now. The unit is required here, so a bare number is never taken for one. */
static int parse_from_now(const char *arg, uint64_t now_usec, uint64_t *ret_usec)
{
	size_t n = strlen(arg);
	uint64_t sec;

	if (n == 0 || isdigit((unsigned char)arg[n - 1]) || parse_duration(arg, &sec) < 0)
		return -EINVAL;
	if (sec > (1ULL << 40))
		return -ERANGE;
	*ret_usec = now_usec + sec * USEC_PER_SEC;
	return 0;
}

/* "YYYY-MM-DD HH:MM[:SS]", no offset: the local wall clock. */
static int parse_local(const char *arg, uint64_t *ret_usec)
{
	struct tm tm = {.tm_isdst = -1}, back;
	int y, mo, d, h, mi, s = 0, n = 0;
	char sep;
	time_t t;

	if (sscanf(arg, "%4d-%2d-%2d%c%2d:%2d%n", &y, &mo, &d, &sep, &h, &mi, &n) != 6 ||
	    (sep != ' ' && sep != 'T' && sep != 't'))
		return -EINVAL;
	if (arg[n] == ':') {
		int m = 0;

		if (sscanf(arg + n, ":%2d%n", &s, &m) != 1)
			return -EINVAL;
		n += m;
	}
	if (arg[n] || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 ||
	    mi > 59 || s < 0 || s > 59)
		return -EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	t = mktime(&tm);
	if (t == (time_t)-1 || t < 0)
		return -ERANGE;
	/* mktime() moves a time the clock skips, and a 31 February, to another: refuse both. */
	if (!localtime_r(&t, &back))
		return -ERANGE;
	if (back.tm_year != y - 1900 || back.tm_mon != mo - 1 || back.tm_mday != d)
		return -EINVAL;
	if (back.tm_hour != h || back.tm_min != mi || back.tm_sec != s)
		return -ENOENT;
	*ret_usec = (uint64_t)t * USEC_PER_SEC;
	return 0;
}

int ctl_time_parse(const char *arg, uint64_t now_usec, uint64_t *ret_usec)
{
	int r;

	if (!arg || !*arg)
		return -EINVAL;
	r = parse_from_now(arg, now_usec, ret_usec);
	if (r != -EINVAL)
		return r;
	r = parse_rfc3339(arg, ret_usec);
	if (r != -EINVAL)
		return r;
	return parse_local(arg, ret_usec);
}

char *ctl_time_format_local(uint64_t usec, char *buf, size_t size)
{
	time_t t = (time_t)(usec / USEC_PER_SEC);
	struct tm tm;

	if (!localtime_r(&t, &tm) || strftime(buf, size, "%a %Y-%m-%d %H:%M %Z", &tm) == 0)
		snprintf(buf, size, "%llu", (unsigned long long)t);
	return buf;
}
