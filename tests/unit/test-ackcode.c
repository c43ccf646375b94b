/* Unit tests of ackcode: codes derived from alert ids, and the replies engineers type. */
#include "ackcode.h"
#include "test.h"

static void test_codes(void)
{
	char c4[ACK_CODE_MAX + 1], c6[ACK_CODE_MAX + 1];
	/* 0x00000000000004d2 = 1234 */
	const char *id = "00000000000004d2ffffffffffffffff";

	ackcode_for(id, 4, c4);
	check_str(c4, "1234");
	ackcode_for(id, 6, c6);
	check_str(c6, "001234");
	check(ackcode_matches(id, "1234"));
	check(ackcode_matches(id, "01234"));
	check(!ackcode_matches(id, "1235"));
	check(!ackcode_matches(id, "234")); /* shorter than a code */
	/* Longer codes end with the shorter one: "ask for the longer code" extends it. */
	ackcode_for("9f86d081884c7d659a2feaa0c55ad015", 4, c4);
	ackcode_for("9f86d081884c7d659a2feaa0c55ad015", 7, c6);
	check_int(strlen(c4), 4);
	check_str(c6 + 3, c4);
}

static void expect_take(const char *text, ReplyKind kind, const char *code, unsigned seconds)
{
	char got[ACK_CODE_MAX + 1] = "junk"; /* whatever the caller's buffer held */
	unsigned got_seconds = 12345;
	ReplyKind k = ackcode_parse(text, got, &got_seconds);

	/* Every kind without a code leaves an empty one, however early the text is refused. */
	if (k != kind || strcmp(got, code ? code : "") != 0 || got_seconds != seconds) {
		fprintf(stderr, "  '%s' -> %d '%s' %u, expected %d '%s' %u\n", text, k, got,
		        got_seconds, kind, code ? code : "", seconds);
		test_failures++;
	}
}

static void expect(const char *text, ReplyKind kind, const char *code)
{
	expect_take(text, kind, code, 0);
}

static void test_replies(void)
{
	expect("ACK 1234", REPLY_ACK, "1234");
	expect("ack 1234", REPLY_ACK, "1234");
	expect("  Ack  1234. ", REPLY_ACK, "1234");
	expect("ACK1234", REPLY_ACK, "1234");
	expect("ACK 001234", REPLY_ACK, "001234");
	expect("1234A", REPLY_ACK, "1234");
	expect("1234 a", REPLY_ACK, "1234");
	expect("ACK", REPLY_ACK_BARE, NULL);
	expect("ack!", REPLY_ACK_BARE, NULL);
	expect("1234", REPLY_OTHER, NULL);   /* a code alone could be anything */
	expect("ACK 12", REPLY_OTHER, NULL); /* too short to be a code */
	expect("ACK 1234 please", REPLY_OTHER, NULL);
	expect("1234 ack", REPLY_OTHER, NULL);
	expect("Your balance is 5 EUR", REPLY_OTHER, NULL);
	expect("", REPLY_OTHER, NULL);
	expect("ACK ✓", REPLY_OTHER, NULL);
}

static void test_commands(void)
{
	expect("RES 1234", REPLY_RESOLVE, "1234");
	expect("res1234", REPLY_RESOLVE, "1234");
	expect("Resolve 001234.", REPLY_RESOLVE, "001234");
	expect("ESC 1234", REPLY_ESCALATE, "1234");
	expect("escalate 1234", REPLY_ESCALATE, "1234");
	expect("RES", REPLY_OTHER, NULL); /* which one? */
	expect("RES 12", REPLY_OTHER, NULL);
	expect("RES 1234 now", REPLY_OTHER, NULL);
	expect("rescue 1234", REPLY_OTHER, NULL);
	expect("WHO", REPLY_WHO, NULL);
	expect("who?", REPLY_OTHER, NULL);
	expect("Who.", REPLY_WHO, NULL);
	expect("HELP", REPLY_HELP, NULL);
	expect(" ? ", REPLY_HELP, NULL);
	expect("??", REPLY_OTHER, NULL);
	expect("TAKE", REPLY_TAKE, NULL);
	expect_take("take 90m", REPLY_TAKE, NULL, 5400);
	expect_take("TAKE 2h", REPLY_TAKE, NULL, 7200);
	expect_take("take 1d", REPLY_TAKE, NULL, 86400);
	expect_take("take 90d", REPLY_TAKE, NULL, REPLY_TAKE_MAX);
	expect("take 91d", REPLY_OTHER, NULL);
	expect("take 0h", REPLY_OTHER, NULL);
	expect("take 2 h", REPLY_OTHER, NULL);
	expect("take 2w", REPLY_OTHER, NULL);
	expect("take 9999999999h", REPLY_OTHER, NULL);
	expect("takeover", REPLY_OTHER, NULL);
	/* A NULL ret_seconds is allowed. */
	{
		char code[ACK_CODE_MAX + 1];

		check_int(ackcode_parse("take 2h", code, NULL), REPLY_TAKE);
	}
}

static void test_maint(void)
{
	char prefix[REPLY_MAINT_PREFIX_MAX + 1] = "junk";
	unsigned seconds = 7;

	check(ackcode_parse_maint("MAINT db01/ 2h", prefix, &seconds));
	check_str(prefix, "db01/");
	check_int(seconds, 7200);
	check(ackcode_parse_maint("  maint Nagios/DB01 90M ", prefix, &seconds));
	check_str(prefix, "Nagios/DB01"); /* as typed: keys are case-sensitive */
	check_int(seconds, 5400);
	check(!ackcode_parse_maint("MAINT db01/", prefix, &seconds));
	check_str(prefix, "");
	check_int(seconds, 0);
	check(!ackcode_parse_maint("MAINT db01/ 2h now", prefix, &seconds));
	check(!ackcode_parse_maint("MAINT db01/ forever", prefix, &seconds));
	check(!ackcode_parse_maint("MAINTAIN db01/ 2h", prefix, &seconds));
	check(!ackcode_parse_maint("MAINT db01/ 91d", prefix, &seconds));
	check(!ackcode_parse_maint(
	        "MAINT "
	        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa 2h",
	        prefix, &seconds)); /* 65 bytes */
	check(!ackcode_parse_maint("", prefix, &seconds));
}

static void test_answerable(void)
{
	check(ackcode_sender_answerable("+32470100001"));
	check(ackcode_sender_answerable("0470100001"));
	check(!ackcode_sender_answerable("1234"));              /* short code */
	check(!ackcode_sender_answerable("+3212"));             /* short */
	check(!ackcode_sender_answerable("Proximus"));          /* alphanumeric sender */
	check(!ackcode_sender_answerable("+1234567890123456")); /* 16 digits */
	check(!ackcode_sender_answerable(""));
}

int main(void)
{
	run(test_codes);
	run(test_replies);
	run(test_commands);
	run(test_maint);
	run(test_answerable);
	return test_exit();
}
