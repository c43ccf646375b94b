#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

uint64_t (*now_usec_hook)(int clock) = NULL;

static uint64_t timespec_usec(clockid_t clock)
{
	struct timespec ts;

	if (now_usec_hook)
		return now_usec_hook(clock);
	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000ULL + (uint64_t)ts.tv_nsec / 1000ULL;
}

uint64_t now_realtime_usec(void)
{
	return timespec_usec(CLOCK_REALTIME);
}

uint64_t now_monotonic_usec(void)
{
	return timespec_usec(CLOCK_MONOTONIC);
}

int id_new(char ret[static ID_HEX_LEN + 1])
{
	enum { TIME_HEX = 11 }; /* 44 bits of milliseconds: until the year 2527 */
	uint8_t bytes[(ID_HEX_LEN - TIME_HEX + 1) / 2];
	size_t done = 0;

	while (done < sizeof(bytes)) {
		ssize_t n = getrandom(bytes + done, sizeof(bytes) - done, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)n;
	}
	snprintf(ret, TIME_HEX + 1, "%011" PRIx64,
	         (uint64_t)(now_realtime_usec() / 1000) & UINT64_C(0xfffffffffff));
	for (size_t i = TIME_HEX; i < ID_HEX_LEN; i++) {
		uint8_t b = bytes[(i - TIME_HEX) / 2];

		ret[i] = "0123456789abcdef"[(i - TIME_HEX) % 2 ? b & 0xf : b >> 4];
	}
	ret[ID_HEX_LEN] = 0;
	return 0;
}

bool id_is_valid(const char *s)
{
	if (!s || strlen(s) != ID_HEX_LEN)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

char *format_rfc3339(uint64_t usec, char buf[static RFC3339_MAX])
{
	time_t sec = (time_t)(usec / 1000000ULL);
	struct tm tm;

	gmtime_r(&sec, &tm);
	snprintf(buf, RFC3339_MAX, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	         (unsigned)((usec / 1000ULL) % 1000ULL));
	return buf;
}

int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	/* Howard Hinnant's algorithm: eras of 400 years, years starting in March. */
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (int64_t)(m > 2 ? m - 3 : m + 9) + 2) / 5 + (int64_t)d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static bool is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Reads exactly n digits. */
static bool read_digits(const char **p, int n, int *ret)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return false;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*ret = v;
	return true;
}

int parse_rfc3339(const char *s, uint64_t *ret_usec)
{
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	uint64_t frac = 0, scale = 100000;
	const char *p = s;
	int64_t t;

	if (!s || !read_digits(&p, 4, &y) || *p++ != '-' || !read_digits(&p, 2, &mo) ||
	    *p++ != '-' || !read_digits(&p, 2, &d))
		return -EINVAL;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return -EINVAL;
	p++;
	if (!read_digits(&p, 2, &h) || *p++ != ':' || !read_digits(&p, 2, &mi) || *p++ != ':' ||
	    !read_digits(&p, 2, &sec))
		return -EINVAL;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		for (; *p >= '0' && *p <= '9'; p++, scale /= 10)
			frac += (uint64_t)(*p - '0') * scale; /* digits beyond microseconds add 0 */
	}
	if (*p == 'Z' || *p == 'z')
		p++;
	else if (*p == '+' || *p == '-') {
		sign = *p++ == '-' ? -1 : 1;
		if (!read_digits(&p, 2, &oh) || *p++ != ':' || !read_digits(&p, 2, &om) ||
		    oh > 23 || om > 59)
			return -EINVAL;
	} else
		return -EINVAL;
	if (*p)
		return -EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && is_leap(y)) || h > 23 ||
	    mi > 59 || sec > 60)
		return -EINVAL;
	if (sec == 60)
		sec = 59; /* a leap second: the clock shows the second before it again */
	t = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec -
	    sign * (oh * 3600 + om * 60);
	if (t < 0)
		return -ERANGE;
	*ret_usec = (uint64_t)t * 1000000ULL + frac;
	return 0;
}

void hash128_hex(const void *data, size_t len, char ret[static 33])
{
	/* Two FNV-1a 64-bit passes with different offsets: stable across builds and nodes. */
	uint64_t a = 0xcbf29ce484222325ULL, b = 0x84222325cbf29ce4ULL;
	const uint8_t *p = data;

	for (size_t i = 0; i < len; i++) {
		a = (a ^ p[i]) * 0x100000001b3ULL;
		b = (b ^ p[len - 1 - i]) * 0x100000001b3ULL;
	}
	snprintf(ret, 33, "%016llx%016llx", (unsigned long long)a, (unsigned long long)b);
}

const char *errno_fd_prefix(int err)
{
	if (err < 0)
		err = -err;
	return err == EMFILE ? "EMFILE: " : err == ENFILE ? "ENFILE: " : "";
}

bool utf8_is_valid(const char *s, size_t len)
{
	const uint8_t *p = (const uint8_t *)s, *end = p + len;

	while (p < end) {
		uint32_t cp;
		size_t n;

		if (*p < 0x80) {
			if (*p == 0)
				return false;
			p++;
			continue;
		} else if ((*p & 0xe0) == 0xc0) {
			n = 1;
			cp = *p & 0x1f;
		} else if ((*p & 0xf0) == 0xe0) {
			n = 2;
			cp = *p & 0x0f;
		} else if ((*p & 0xf8) == 0xf0) {
			n = 3;
			cp = *p & 0x07;
		} else
			return false;
		if ((size_t)(end - p) <= n)
			return false;
		for (size_t i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		p += n + 1;
	}
	return true;
}

size_t utf8_length(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		if (((uint8_t)*s & 0xc0) != 0x80)
			n++;
	return n;
}

size_t utf8_cut(const char *s, size_t len)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t lead = len, need;

	/* Back over the continuation bytes at the end to the byte that starts their character. */
	while (lead > 0 && len - lead < 4 && (p[lead - 1] & 0xc0) == 0x80)
		lead--;
	if (lead == 0 || p[lead - 1] < 0xc0)
		return len; /* ASCII, or stray continuation bytes: nothing of ours to cut */
	lead--;
	need = (p[lead] & 0xe0) == 0xc0 ? 2 : (p[lead] & 0xf0) == 0xe0 ? 3 : 4;
	return len - lead < need ? lead : len;
}

int utf8_snprintf(char *buf, size_t size, const char *format, ...)
{
	va_list ap;
	int r;

	va_start(ap, format);
	r = vsnprintf(buf, size, format, ap);
	va_end(ap);
	if (r >= 0 && size > 0 && (size_t)r >= size)
		buf[utf8_cut(buf, size - 1)] = 0;
	return r;
}

int parse_duration(const char *s, uint64_t *ret_seconds)
{
	unsigned long long v;
	uint64_t mult = 1;
	char *end;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -EINVAL;
	if (*end) {
		switch (*end) {
		case 's':
			mult = 1;
			break;
		case 'm':
			mult = 60;
			break;
		case 'h':
			mult = 3600;
			break;
		case 'd':
			mult = 86400;
			break;
		default:
			return -EINVAL;
		}
		if (end[1])
			return -EINVAL;
	}
	if (v > UINT64_MAX / mult / 1000000ULL)
		return -ERANGE;
	*ret_seconds = v * mult;
	return 0;
}

/* While TZ is unset, glibc stat()s /etc/localtime at every mktime() to see whether it changed,
 * and libgammu's part count and the on-call rota call mktime() for every alert. TZ naming the
 * file makes glibc read it once; tz_refresh() then looks at the file itself, and makes glibc
 * read it again when it changed, by naming it another way (glibc rereads only when TZ's text
 * changes). Setting a variable that exists replaces one pointer in environ, never the array,
 * and glibc never frees the strings it held, so a thread reading the environment meanwhile
 * sees the old value or the new one. */
static struct {
	char path[256];  /* "" until tz_pin() took the file */
	bool other_name; /* TZ names the file "<dir>/./<name>" */
	struct stat seen;
} tz;

static void tz_set(void)
{
	char value[sizeof(tz.path) + 4];
	const char *slash = strrchr(tz.path, '/');

	if (tz.other_name && slash)
		snprintf(value, sizeof(value), ":%.*s/.%s", (int)(slash - tz.path), tz.path, slash);
	else
		snprintf(value, sizeof(value), ":%s", tz.path);
	setenv("TZ", value, 1);
	tzset();
}

static bool tz_same(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

bool tz_pin(const char *path)
{
	if (getenv("TZ") || strlen(path) >= sizeof(tz.path) || path[0] != '/')
		return false; /* a time zone the environment chose is the environment's */
	snprintf(tz.path, sizeof(tz.path), "%s", path);
	if (stat(tz.path, &tz.seen) < 0)
		memset(&tz.seen, 0, sizeof(tz.seen));
	tz_set();
	return true;
}

bool tz_refresh(void)
{
	struct stat st;

	if (!tz.path[0])
		return false;
	if (stat(tz.path, &st) < 0)
		memset(&st, 0, sizeof(st));
	if (tz_same(&st, &tz.seen))
		return false;
	tz.seen = st;
	tz.other_name = !tz.other_name;
	tz_set();
	return true;
}
