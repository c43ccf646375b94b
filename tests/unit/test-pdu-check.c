/* Unit tests of pdu_check: received PDUs as modems print them, valid and hostile. */
#include <stdint.h>

#include "pdu-check.h"
#include "test.h"

static size_t unhex(const char *hex, uint8_t *buf)
{
	size_t n = 0;

	for (; hex[0] && hex[1]; hex += 2) {
		unsigned v;

		sscanf(hex, "%2x", &v);
		buf[n++] = (uint8_t)v;
	}
	return n;
}

static PduProblem check_hex(const char *hex)
{
	uint8_t buf[1024];
	size_t n = unhex(hex, buf);

	return pdu_check(buf, n);
}

/* From the modem simulator's encoder, which real clients (gammu, smstools3) read. */
#define SMSC "07912374151616F6"
#define GSM7 SMSC "040B912374100000F100006221409150240008C1E1121493CD68"
#define UCS2 SMSC "040B912374100000F30008622140915024000E03A903BC03AD03B303B100202713"
#define CONCAT2                                                                                    \
	SMSC "440B912374100000F20000622140915024002E05000307020240F2329C9D07B5EB6C7A1A1E96D341F2"  \
	     "329C9D07B5EB6C7A1A1E96D341F2329C9D0701"
#define ALNUM  SMSC "040BD0CDBC30EC5E0300006221409150240002E834"
#define REPORT SMSC "06050B912374000000F1622140910000006221409100000000"

static void test_valid(void)
{
	check_int(check_hex(GSM7), PDU_OK);
	check_int(check_hex(UCS2), PDU_OK);
	check_int(check_hex(CONCAT2), PDU_OK);
	check_int(check_hex(ALNUM), PDU_OK);
	check_int(check_hex(REPORT), PDU_OK);
	/* The same with a TP-PI announcing nothing, and with user data. */
	check_int(check_hex(REPORT "00"), PDU_OK);
	check_int(check_hex(REPORT "04024869"), PDU_OK);
	/* No SMS centre (length 0), as modems that hide it print it. */
	check_int(check_hex("00040B912374100000F100006221409150240008C1E1121493CD68"), PDU_OK);
	/* Empty user data. */
	check_int(check_hex(SMSC "040B912374100000F1000062214091502400"
	                         "00"),
	          PDU_OK);
	/* Padding after the user data is tolerated. */
	check_int(check_hex(GSM7 "FFFF"), PDU_OK);
	/* 160 septets of GSM 7-bit take 140 octets. */
	{
		char hex[512] = SMSC "040B912374100000F1000062214091502400A0";

		for (int i = 0; i < 140; i++)
			strcat(hex, "41");
		check_int(check_hex(hex), PDU_OK);
	}
}

static void test_smsc(void)
{
	/* The finding: an SMS centre length of 0x70 in a 137-byte PDU smashed libgammu's stack. */
	char hex[2 * 137 + 1] = "70";

	for (int i = 1; i < 137; i++)
		strcat(hex, "91");
	check_int(check_hex(hex), PDU_SMSC_LENGTH);
	check_int(check_hex("0D91"
	                    "2374151616F6"
	                    "2374151616F6"
	                    "040B91"),
	          PDU_SMSC_LENGTH);
	/* 12 octets is the most, and then it must be there. */
	check_int(check_hex("0C912374151616F6"), PDU_SMSC_TRUNCATED);
	check_int(check_hex("07912374151616F6"), PDU_TRUNCATED); /* nothing after it */
}

static void test_address(void)
{
	check_int(check_hex(SMSC "04FF912374100000F100006221409150240008C1E1121493CD68"),
	          PDU_ADDRESS_LENGTH);
	check_int(check_hex(SMSC "0415912374100000F100006221409150240008C1E1121493CD68"),
	          PDU_ADDRESS_LENGTH);
	/* A status report's recipient address, too. */
	check_int(check_hex(SMSC "0605FF912374000000F1622140910000006221409100000000"),
	          PDU_ADDRESS_LENGTH);
	/* A status report's optional user data, announced by TP-PI, is held to the same limits;
	 * libgammu reads TP-PI's bits even with the extension bit set (found by fuzzing). */
	check_int(check_hex(REPORT "BDBDBD"
	                           "41"),
	          PDU_UDL_TOO_LONG);
	check_int(check_hex(REPORT "0405"
	                           "4142434445"),
	          PDU_OK);
	check_int(check_hex(REPORT "0405"
	                           "41424344"),
	          PDU_UD_TRUNCATED);
	check_int(check_hex(REPORT "07"), PDU_TRUNCATED);
	/* 20 digits is the most. */
	check_int(check_hex(SMSC "041491"
	                         "23741000000000000000"
	                         "0000"
	                         "62214091502400"
	                         "00"),
	          PDU_OK);
}

static void test_user_data(void)
{
	/* UDL 8 septets need 7 octets; 6 are there. */
	check_int(check_hex(SMSC "040B912374100000F100006221409150240008C1E1121493CD"),
	          PDU_UD_TRUNCATED);
	/* UDL 0xFF: beyond the 160-septet maximum. */
	check_int(check_hex(SMSC "040B912374100000F1000062214091502400FFC1E1121493CD68"),
	          PDU_UDL_TOO_LONG);
	/* UCS-2 with UDL 141. */
	check_int(check_hex(SMSC "040B912374100000F3000862214091502400"
	                         "8D0041"),
	          PDU_UDL_TOO_LONG);
	/* UCS-2 with UDL 14 and 12 octets. */
	check_int(check_hex(SMSC "040B912374100000F30008622140915024000E03A903BC03AD03B303B1"),
	          PDU_UD_TRUNCATED);
	/* UDHI set, UDHL 0x30 within a UDL of 8 septets. */
	check_int(check_hex(SMSC "440B912374100000F100006221409150240008300003070201DA"),
	          PDU_UDH_LENGTH);
	/* UDHI set and no user data at all. */
	check_int(check_hex(SMSC "440B912374100000F1000062214091502400"
	                         "00"),
	          PDU_UDH_LENGTH);
	/* 8-bit data: UDHL 5 + 1 within UDL 6 is fine, within UDL 5 it is not. */
	check_int(check_hex(SMSC "440B912374100000F1000462214091502400"
	                         "06050003070201"),
	          PDU_OK);
	check_int(check_hex(SMSC "440B912374100000F1000462214091502400"
	                         "050500030702"),
	          PDU_UDH_LENGTH);
}

static void test_truncated(void)
{
	check_int(pdu_check(NULL, 0), PDU_EMPTY);
	check_int(check_hex(""), PDU_EMPTY);
	check_int(check_hex("00"), PDU_TRUNCATED);
	check_int(check_hex(SMSC "04"), PDU_TRUNCATED);
	check_int(check_hex(SMSC "040B912374"), PDU_TRUNCATED);
	check_int(check_hex(SMSC "040B912374100000F10000622140"), PDU_TRUNCATED);
	check_int(check_hex(SMSC "040B912374100000F1000062214091502400"), PDU_TRUNCATED);
	check_int(check_hex(SMSC "06050B912374000000F16221409100000062"), PDU_TRUNCATED);
	/* Every prefix of a valid PDU is refused, never read past. */
	{
		uint8_t buf[256];
		size_t n = unhex(CONCAT2, buf);

		for (size_t i = 0; i < n; i++)
			check(pdu_check(buf, i) != PDU_OK);
	}
}

static void test_type_and_size(void)
{
	/* An SMS-SUBMIT (MTI 1) and the reserved MTI 3 are not received messages. */
	check_int(check_hex(SMSC "11000B912374000000F10000AA05C8329BFD06"), PDU_TYPE);
	check_int(check_hex(SMSC "030B912374100000F100006221409150240008C1E1121493CD68"), PDU_TYPE);
	{
		uint8_t big[PDU_MAX_LEN + 1] = {0};

		check_int(pdu_check(big, sizeof(big)), PDU_TOO_LONG);
	}
	check_str(pdu_problem_to_string(PDU_SMSC_LENGTH), "SMSC address longer than 12 octets");
	check_str(pdu_problem_to_string(PDU_OK), "ok");
	check_str(pdu_problem_to_string(_PDU_PROBLEM_MAX), "unknown problem");
}

int main(void)
{
	run(test_valid);
	run(test_smsc);
	run(test_address);
	run(test_user_data);
	run(test_truncated);
	run(test_type_and_size);
	return test_failures ? 1 : 0;
}
