/* util: cutting UTF-8 text to a buffer without splitting a character. */
#include <string.h>

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

int main(void)
{
	run(test_utf8_cut);
	run(test_utf8_snprintf);
	return test_failures ? 1 : 0;
}
