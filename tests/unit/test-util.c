/* util: new ids; cutting UTF-8 text to a buffer without splitting a character; the time zone
 * file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "test.h"
#include "util.h"

static void test_utf8_cut(void)
{
	/* "é" is c3 a9, "€" e2 82 ac, "😀" f0 9f 98 80. */
	check_int(utf8_cut("abc", 3), 3);
	check_int(utf8_cut("", 0), 0);
	check_int(utf8_cut("a\xc3\xa9", 3), 3);
	check_int(utf8_cut("a\xc3\xa9", 2), 1);
	check_int(utf8_cut("\xe2\x82\xac", 2), 0);
	check_int(utf8_cut("\xe2\x82\xac", 1), 0);
	check_int(utf8_cut("x\xe2\x82\xac", 4), 4);
	check_int(utf8_cut("\xf0\x9f\x98\x80", 3), 0);
	check_int(utf8_cut("ab\xf0\x9f\x98\x80", 6), 6);
}

static void test_utf8_snprintf(void)
{
	char buf[8], big[160];
	int r;

	/* 7 bytes fit: "ab" then "éé" (4 bytes) then the first byte of the third "é". */
	r = utf8_snprintf(buf, sizeof(buf), "ab%s", "\xc3\xa9\xc3\xa9\xc3\xa9");
	check_int(r, 8);
	check_str(buf, "ab\xc3\xa9\xc3\xa9");
	check(utf8_is_valid(buf, strlen(buf)));
	/* Fits whole: unchanged. */
	r = utf8_snprintf(buf, sizeof(buf), "%s", "\xe2\x82\xac\xe2\x82\xac");
	check_int(r, 6);
	check_str(buf, "\xe2\x82\xac\xe2\x82\xac");
	/* The reply that names who acknowledged, with a long name in Greek: still valid UTF-8. */
	char by[400] = "";
	for (int i = 0; i < 100; i++)
		strcat(by, "\xce\xa9");
	utf8_snprintf(big, sizeof(big), "ACK %s: already acknowledged by %s.", "1234", by);
	check(strlen(big) < sizeof(big));
	check(utf8_is_valid(big, strlen(big)));
	/* And with every offset of a 3- and a 4-byte character at the end of the buffer. */
	for (size_t size = 1; size <= sizeof(buf); size++) {
		utf8_snprintf(buf, size, "a\xe2\x82\xac\xf0\x9f\x98\x80");
		check(utf8_is_valid(buf, strlen(buf)));
	}
}

static bool copy_file(const char *from, const char *to)
{
	char buf[4096];
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	size_t n;
	bool ok = in && out;

	while (ok && (n = fread(buf, 1, sizeof(buf), in)) > 0)
		ok = fwrite(buf, 1, n, out) == n;
	if (in)
		fclose(in);
	if (out && fclose(out) != 0)
		ok = false;
	return ok;
}

/* Noon, 15 January 2026, local time: the offset from UTC it stands for, in seconds. */
static long local_offset(void)
{
	struct tm tm = {.tm_year = 126, .tm_mon = 0, .tm_mday = 15, .tm_hour = 12, .tm_isdst = -1};
	time_t t = mktime(&tm);
	struct tm utc;

	gmtime_r(&t, &utc);
	return (long)(tm.tm_hour - utc.tm_hour) * 3600 + (long)(tm.tm_mday - utc.tm_mday) * 86400;
}

/* The time zone file is read once, and again when it changes: the rota follows a new time zone
 * without a restart. */
static void test_tz_pin(void)
{
	char dir[] = "/tmp/test-tz-XXXXXX", path[64], next[80];

	if (access("/usr/share/zoneinfo/Europe/Berlin", R_OK) < 0 ||
	    access("/usr/share/zoneinfo/Asia/Tokyo", R_OK) < 0) {
		fprintf(stderr, "no tzdata: time zone test skipped\n");
		return;
	}
	check(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/localtime", dir);
	snprintf(next, sizeof(next), "%s/localtime.new", dir);
	check(copy_file("/usr/share/zoneinfo/Europe/Berlin", path));

	setenv("TZ", "UTC", 1);
	check(!tz_pin(path)); /* the environment's choice stands */
	unsetenv("TZ");
	check(tz_pin(path));
	check_int(local_offset(), 3600);
	check(!tz_refresh()); /* unchanged: nothing read again */

	/* As timedatectl does it: the new zone replaces the file in one rename. */
	check(copy_file("/usr/share/zoneinfo/Asia/Tokyo", next));
	check(rename(next, path) == 0);
	check(tz_refresh());
	check_int(local_offset(), 9 * 3600);
	check(!tz_refresh());

	/* And back, which must not be mistaken for the name already in TZ. */
	check(copy_file("/usr/share/zoneinfo/Europe/Berlin", next));
	check(rename(next, path) == 0);
	check(tz_refresh());
	check_int(local_offset(), 3600);

	unlink(path);
	rmdir(dir);
}

static uint64_t fake_now;

static uint64_t fake_clock(int clock)
{
	return fake_now;
}

/* Ids made one after another sort in the order they were made (the store's indexes grow at their
 * end), yet stay random: a hundred made in the same millisecond all differ, in every random
 * digit. */
static void test_id_new(void)
{
	char ids[100][ID_HEX_LEN + 1], later[ID_HEX_LEN + 1];
	unsigned seen[ID_HEX_LEN] = {0};

	now_usec_hook = fake_clock;
	fake_now = 1700000000000ULL * 1000; /* 2023-11-14T22:13:20Z */
	for (size_t i = 0; i < ELEMENTSOF(ids); i++) {
		check_int(id_new(ids[i]), 0);
		check(id_is_valid(ids[i]));
		check(strncmp(ids[i], "18bcfe56800", 11) == 0);
		for (size_t j = 0; j < i; j++)
			check(strcmp(ids[i], ids[j]) != 0);
		for (size_t k = 11; k < ID_HEX_LEN; k++)
			seen[k] |= 1u
			           << (ids[i][k] >= 'a' ? ids[i][k] - 'a' + 10 : ids[i][k] - '0');
	}
	for (size_t k = 11; k < ID_HEX_LEN; k++)
		check(__builtin_popcount(seen[k]) >= 8);
	fake_now += 1000;
	check_int(id_new(later), 0);
	for (size_t i = 0; i < ELEMENTSOF(ids); i++)
		check(strcmp(later, ids[i]) > 0);
	now_usec_hook = NULL;
}

int main(void)
{
	run(test_id_new);
	run(test_utf8_cut);
	run(test_utf8_snprintf);
	run(test_tz_pin);
	return test_failures ? 1 : 0;
}
