/* test-modem: what modem/ does without a modem: part counting through libgammu, cause
 * classification, argument checks, the job queue and its answers, a worker facing a device that
 * does not exist; and the pieces of receiving: SHA-256, UTF-16 to UTF-8, timestamps, status report
 * words, joining parts into messages with stable keys, and the confirm-then-delete bookkeeping. */
#include <errno.h>
#include <poll.h>
#include <string.h>

#include "inbox.h"
#include "log.h"
#include "macro.h"
#include "modem.h"
#include "probe.h"
#include "sha256.h"
#include "sms.h"
#include "test.h"
#include "util.h"

static char *repeat(const char *s, unsigned n)
{
	size_t len = strlen(s);
	char *r = malloc(len * n + 1);

	if (!r)
		abort();
	for (unsigned i = 0; i < n; i++)
		memcpy(r + i * len, s, len);
	r[len * n] = 0;
	return r;
}

static int parts_of(const char *s, unsigned n)
{
	unsigned parts = 0;
	char *text = repeat(s, n);
	int r = modem_count_parts(text, &parts);

	free(text);
	return r < 0 ? r : (int)parts;
}

static void test_count_parts(void)
{
	unsigned parts = 0;

	check_int(modem_count_parts("hello", &parts), 0);
	check_int(parts, 1);
	check_int(parts_of("", 1), 1);

	/* GSM 7-bit: 160 in one part, 153 per part after. */
	check_int(parts_of("a", 160), 1);
	check_int(parts_of("a", 161), 2);
	check_int(parts_of("a", 306), 2);
	check_int(parts_of("a", 307), 3);
	check_int(parts_of("a", 400), 3);
	/* Extension-table characters take two septets, and stay 7-bit. */
	check_int(parts_of("€", 80), 1);
	check_int(parts_of("€", 81), 2);
	/* Capital omega is in the GSM alphabet: no switch to UCS-2. */
	check_int(parts_of("Ω", 160), 1);

	/* UCS-2: 70 in one part, 67 per part after. */
	check_int(parts_of("ωμέγα", 14), 1); /* 70 characters */
	{
		char *t = repeat("ωμέγα", 14);
		char buf[256];

		snprintf(buf, sizeof(buf), "%sx", t);
		check_int(modem_count_parts(buf, &parts), 0);
		check_int(parts, 2); /* 71 */
		free(t);
	}
	check_int(parts_of("ω", 134), 2);
	check_int(parts_of("ω", 135), 3);
	/* One non-GSM character turns the whole text to UCS-2. */
	{
		char *t = repeat("a", 100);
		char buf[256];

		snprintf(buf, sizeof(buf), "%s\xe2\x98\x83", t); /* snowman */
		check_int(modem_count_parts(buf, &parts), 0);
		check_int(parts, 2);
		free(t);
	}
	/* Outside the BMP: a surrogate pair, two UCS-2 units. */
	check_int(parts_of("\xf0\x9f\x94\xa5", 35), 1);
	check_int(parts_of("\xf0\x9f\x94\xa5", 36), 2);

	/* The limits where libgammu would cut: 50 parts, and 5000 septets for 7-bit. */
	check_int(parts_of("ω", 49 * 67), 49);
	check_int(parts_of("ω", 49 * 67 + 1), -EMSGSIZE);
	check_int(parts_of("a", 5000), 33);
	check_int(parts_of("a", 5001), -EMSGSIZE);
	check_int(parts_of("a", SMS_TEXT_MAX + 1), -EMSGSIZE);

	/* Short printable ASCII is counted without libgammu (one_short_part()): it must agree
	 * with libgammu's encoding, the extension table's characters included. */
	static const unsigned lengths[] = {1, 69, 70, 71, 80, 81, 100, 160, 161};

	for (int c = 0x20; c <= 0x7f; c++) {
		char one[2] = {(char)(c == 0x7f ? '\n' : c), 0};

		for (size_t k = 0; k < ELEMENTSOF(lengths); k++) {
			GSM_MultiSMSMessage *sms = NULL;
			unsigned n = lengths[k];
			char *t = repeat(one, n);

			check_int(sms_encode(t, &sms), 0);
			check_int(parts_of(one, n), sms ? sms->Number : -1);
			free(sms);
			free(t);
		}
	}
	check_int(parts_of("{\r", 35), 1);
	check_int(parts_of("[ \\ ] ^ ~ | { }", 4), 1);

	check_int(modem_count_parts("\xff\xfe", &parts), -EINVAL);
	check_int(modem_count_parts("caf\xc3", &parts), -EINVAL);
	check_int(modem_count_parts(NULL, &parts), -EINVAL);
	check_int(modem_count_parts("x", NULL), -EINVAL);
}

static void test_state_to_string(void)
{
	check_str(modem_state_to_string(MODEM_STATE_OK), "ok");
	check_str(modem_state_to_string(MODEM_STATE_DEGRADED), "degraded");
	check_str(modem_state_to_string(MODEM_STATE_FAILED), "failed");
	check_str(modem_state_to_string(MODEM_STATE_ABSENT), "absent");
	check(modem_state_to_string(_MODEM_STATE_MAX) == NULL);
	check(modem_state_to_string((ModemState)-1) == NULL);
}

static void test_causes(void)
{
	static const int permanent[] = {1, 8, 10, 21, 28, 29, 30, 50, 96, 127, 0x80, 0xC1, 0xC3};
	static const int transient[] = {-1,   0,    27,   38,  41,  42,  47,  0xC0,
	                                0xC2, 0xD0, 0xFF, 300, 304, 330, 500, 512};

	for (size_t i = 0; i < ELEMENTSOF(permanent); i++)
		check(sms_cause_is_permanent(permanent[i]));
	for (size_t i = 0; i < ELEMENTSOF(transient); i++)
		check(!sms_cause_is_permanent(transient[i]));

	check(sms_number_is_valid("+32470123456"));
	check(sms_number_is_valid("1234"));
	check(!sms_number_is_valid(""));
	check(!sms_number_is_valid("+"));
	check(!sms_number_is_valid("+32 470"));
	check(!sms_number_is_valid("+3247012345678901234567"));
	check(!sms_number_is_valid(NULL));
}

/* One part's PDU for AT+CMGS, laid out from libgammu's frame: a known vector, and every part of
 * long 7-bit and UCS-2 texts decoded back by libgammu to the same number, text and header. */
static void test_submit_pdu(void)
{
	static const char *const texts[] = {
	        "hello",
	        "disk full on db1: / at 99 % since 03:12, 4 GB left of 400 GB; ack with OK 1234 or "
	        "ESC 1234 to pass it on. disk full on db1: / at 99 % since 03:12, ack with OK 1234",
	        "Störung im Rechenzentrum Köln – Ж ✓ ☎ 電源障害 ",
	};
	unsigned char number[(GSM_MAX_NUMBER_LENGTH + 1) * 2];
	char hex[2 * 188 + 1];
	size_t tpdu_len = 0;

	DecodeUTF8(number, "+32470123456", strlen("+32470123456"));
	for (size_t t = 0; t < ELEMENTSOF(texts); t++) {
		_cleanup_free_ GSM_MultiSMSMessage *sms = NULL;

		check_int(sms_encode(texts[t], &sms), 0);
		for (int i = 0; sms && i < sms->Number; i++) {
			GSM_SMSMessage *part = &sms->SMS[i], back;
			unsigned char bin[188];
			size_t len, pos = 0;

			part->SMSC.Location = 0;
			part->SMSC.Validity.Format = SMS_Validity_RelativeFormat;
			part->SMSC.Validity.Relative = SMS_VALID_Max_Time;
			DecodeUTF8(part->SMSC.Number, "+32475161616", strlen("+32475161616"));
			CopyUnicodeString(part->Number, number);
			part->PDU = i == 0 ? SMS_Status_Report : SMS_Submit;
			check_int(sms_submit_pdu(part, hex, sizeof(hex), &tpdu_len), 0);
			len = strlen(hex) / 2;
			/* the SMSC field (8 octets for +32475161616), then the TPDU */
			check_int(tpdu_len, len - 8);
			check(DecodeHexBin(bin, (const unsigned char *)hex, strlen(hex)));
			check_int(bin[8] & 0x03, 1);          /* SMS-SUBMIT */
			check_int(!!(bin[8] & 0x20), i == 0); /* TP-SRR */
			memset(&back, 0, sizeof(back));
			check_int(GSM_DecodePDUFrame(GSM_GetGlobalDebug(), &back, bin, len, &pos,
			                             true),
			          ERR_NONE);
			check_int(pos, len);
			check_int(back.PDU, SMS_Submit);
			check(mywstrncmp(back.Number, number, 0));
			check_int(back.Coding, part->Coding);
			check_int(back.Length, part->Length);
			check(mywstrncmp(back.Text, part->Text, 0));
			check_int(back.UDH.Length, part->UDH.Length);
		}
		if (t == 0) {
			/* A single 7-bit part, as TS 23.040 lays it out. */
			check_str(hex, "07912374151616F6"
			               "31000B912374103254F60000FF05E8329BFD06");
			check_int(tpdu_len, 19);
		}
	}
	check_int(sms_submit_pdu(NULL, hex, sizeof(hex), &tpdu_len), -EINVAL);
}

static void test_new_invalid(void)
{
	Modem *m = NULL;

	check_int(modem_new(NULL, &m), -EINVAL);
	check_int(modem_new(&(ModemSettings){.name = "gsm0"}, &m), -EINVAL);
	check_int(modem_new(&(ModemSettings){.device = "/dev/null"}, &m), -EINVAL);
	check_int(modem_new(&(ModemSettings){.name = "gsm0", .device = "/dev/null", .pin = "12a4"},
	                    &m),
	          -EINVAL);
	check_int(
	        modem_new(&(ModemSettings){.name = "gsm0", .device = "/dev/null", .pin = "12"}, &m),
	        -EINVAL);
	check_int(modem_new(&(ModemSettings){.name = "gsm0", .device = "/dev/null", .imei = "12"},
	                    &m),
	          -EINVAL);
	check_int(modem_new(&(ModemSettings){.name = "gsm0",
	                                     .device = "/dev/null",
	                                     .imei = "35693803564380x"},
	                    &m),
	          -EINVAL);
	check(m == NULL);
	check(modem_free(NULL) == NULL);
	modem_event_clear(NULL);
	check(probe_imei_is_valid("356938035643809"));
	check(probe_imei_is_valid("35693803564380"));
	check(!probe_imei_is_valid("3569380356438"));
	check(!probe_imei_is_valid("356938035643809123"));
	check(!probe_imei_is_valid(NULL));
}

static void sha256_of(const void *data, size_t len, char ret[static 65])
{
	Sha256 h;

	sha256_init(&h);
	sha256_update(&h, data, len);
	sha256_final_hex(&h, ret);
}

static void test_sha256(void)
{
	char hex[65], hex2[65], *million;
	Sha256 h;

	sha256_of("", 0, hex);
	check_str(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	sha256_of("abc", 3, hex);
	check_str(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	sha256_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56, hex);
	check_str(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	million = repeat("a", 1000000);
	sha256_of(million, 1000000, hex);
	check_str(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	/* The same in uneven pieces. */
	sha256_init(&h);
	for (size_t i = 0, step = 1; i < 1000000; i += step, step = step * 7 % 1000 + 1)
		sha256_update(&h, million + i, MIN(step, 1000000 - i));
	sha256_final_hex(&h, hex2);
	check_str(hex2, hex);
	free(million);
}

static void test_unicode(void)
{
	static const unsigned char text[] = {0x00, 'A',  0x00, 0xE9, 0xD8, 0x3D, 0xDD, 0x25,
	                                     0xD8, 0x3D, 0x00, 'x',  0xDD, 0x25, 0x00, 0x00};
	char *s, buf[8];

	s = sms_unicode_to_utf8(text, 8);
	/* A, e-acute, a pair (U+1F525), a lone high then x, a lone low. */
	check_str(s, "A\xc3\xa9\xf0\x9f\x94\xa5\xef\xbf\xbdx\xef\xbf\xbd");
	check(s && utf8_is_valid(s, strlen(s)));
	free(s);
	s = sms_unicode_to_utf8(text, 3); /* cut inside the pair: half a pair is no character */
	check_str(s, "A\xc3\xa9\xef\xbf\xbd");
	free(s);
	s = sms_unicode_to_utf8(text, 100); /* stops at the zero unit */
	check(s && strlen(s) == 14);
	free(s);
	sms_unicode_to_utf8_buf(text, 8, buf, 7);
	check_str(buf, "A\xc3\xa9"); /* the 4-byte character does not fit: cut before it */
	sms_unicode_to_utf8_buf(text, 8, buf, 8);
	check_str(buf, "A\xc3\xa9\xf0\x9f\x94\xa5");

	{
		GSM_DateTime dt = {
		        .Year = 2024, .Month = 3, .Day = 1, .Hour = 12, .Timezone = 3600};

		check_int(sms_time_usec(&dt), 1709290800ULL * USEC_PER_SEC); /* 11:00 UTC */
		dt.Month = 13;
		check_int(sms_time_usec(&dt), 0);
		check_int(sms_time_usec(&(GSM_DateTime){0}), 0);
	}
	{
		bool delivered, permanent;

		check_str(sms_report_status(0x00, &delivered, &permanent), "delivered");
		check(delivered && !permanent);
		check_str(sms_report_status(0x43, &delivered, &permanent),
		          "failed: not obtainable");
		check(!delivered && permanent);
		check_str(sms_report_status(0x21, &delivered, &permanent),
		          "pending: recipient busy");
		check(!delivered && !permanent);
		check_str(sms_report_status(0x7F, &delivered, &permanent), "failed");
		check(permanent);
		check_str(sms_report_status(0x99, &delivered, &permanent), "unknown status");
		check(!delivered && !permanent);
	}
}

/* One received part as libgammu's GetNextSMS would give it. */
static void part(GSM_SMSMessage *sms, const char *from, const char *text, int ref, int total,
                 int seq, int location, int minute)
{
	GSM_SetDefaultReceivedSMSData(sms);
	sms->PDU = SMS_Deliver;
	sms->Memory = MEM_SM;
	sms->Location = location;
	sms->Coding = SMS_Coding_Default_No_Compression;
	DecodeUTF8(sms->Number, from, strlen(from));
	DecodeUTF8(sms->Text, text, strlen(text));
	sms->Length = (int)strlen(text);
	sms->DateTime =
	        (GSM_DateTime){.Year = 2024, .Month = 3, .Day = 1, .Hour = 12, .Minute = minute};
	if (total > 1) {
		unsigned char udh[] = {
		        5, 0x00, 3, (unsigned char)ref, (unsigned char)total, (unsigned char)seq};

		sms->UDH.Type = UDH_ConcatenatedMessages;
		sms->UDH.Length = sizeof(udh);
		memcpy(sms->UDH.Text, udh, sizeof(udh));
	} else
		sms->UDH.Type = UDH_NoUDH;
}

static const InboxMessage *find_msg(const InboxMessage *msgs, size_t n, const char *from)
{
	for (size_t i = 0; i < n; i++)
		if (!msgs[i].report && streq(msgs[i].from, from))
			return &msgs[i];
	return NULL;
}

/* 2024-03-02 12:00 UTC: a day after the parts' timestamps. */
#define NOW_REALTIME (1709380800ULL * USEC_PER_SEC)
/* 2024-03-01 12:00 UTC: the parts' SMS centre time. */
#define PARTS_REALTIME (1709294400ULL * USEC_PER_SEC)

static void test_inbox_assemble(void)
{
	GSM_SMSMessage *p = calloc(8, sizeof(GSM_SMSMessage));
	char key_a[MODEM_KEY_LEN + 1] = "";
	InboxMessage *msgs = NULL;
	const InboxMessage *m;
	Inbox *ib = NULL;
	size_t n = 0;

	check_int(inbox_new(&ib), 0);
	if (!p || !ib)
		goto out;

	/* Two senders whose parts share reference 7: never joined (GSM_LinkSMS joins them). Five
	 * minutes old, so both sets wait. */
	part(&p[0], "+111", "A1 ", 7, 2, 1, 1, 0);
	part(&p[1], "+222", "B2", 7, 2, 2, 2, 0);
	check_int(inbox_assemble(ib, p, 2, PARTS_REALTIME + 5 * 60 * USEC_PER_SEC, 1, false, &msgs,
	                         &n),
	          0);
	check_int(n, 0);
	inbox_messages_free(msgs, n);

	/* +111's part 2 arrives, out of order, and part 1 is stored twice. */
	part(&p[2], "+111", "A2", 7, 2, 2, 3, 0);
	part(&p[3], "+111", "A1 ", 7, 2, 1, 4, 0);
	check_int(inbox_assemble(ib, p, 4, PARTS_REALTIME + 5 * 60 * USEC_PER_SEC, 1, false, &msgs,
	                         &n),
	          0);
	check_int(n, 1);
	m = find_msg(msgs, n, "+111");
	check(m != NULL);
	if (m) {
		check_str(m->text, "A1 A2");
		check_int(m->parts, 2);
		check(m->complete);
		check_int(m->n_locations, 3); /* the copy goes with it */
		check_int(m->smsc_time_usec, 1709294400ULL * USEC_PER_SEC);
		memcpy(key_a, m->key, sizeof(key_a));
	}
	inbox_messages_free(msgs, n);

	/* Read again in another order: the same key. */
	check_int(inbox_assemble(ib, p + 1, 3, PARTS_REALTIME + 5 * 60 * USEC_PER_SEC, 1, false,
	                         &msgs, &n),
	          0);
	m = find_msg(msgs, n, "+111");
	check(m && streq(m->key, key_a));
	inbox_messages_free(msgs, n);

	/* A memory 80 % full gives up on +222's lone part at once, to free its slot. */
	check_int(inbox_assemble(ib, p, 4, PARTS_REALTIME + 5 * 60 * USEC_PER_SEC, 1, true, &msgs,
	                         &n),
	          0);
	check_int(n, 2);
	check(find_msg(msgs, n, "+222") != NULL);
	inbox_messages_free(msgs, n);

	/* Eleven minutes on, +222's lone part is given up on: reported as it is. */
	check_int(inbox_assemble(ib, p, 4, PARTS_REALTIME + 11 * 60 * USEC_PER_SEC, 1, false, &msgs,
	                         &n),
	          0);
	check_int(n, 2);
	m = find_msg(msgs, n, "+222");
	if (m) {
		check_str(m->text, "B2");
		check(!m->complete);
		check_int(m->parts, 1);
	}
	inbox_messages_free(msgs, n);

	/* Same sender and text, another SMS centre time: another message, another key. */
	part(&p[4], "+333", "same", 0, 1, 1, 5, 1);
	part(&p[5], "+333", "same", 0, 1, 1, 6, 2);
	check_int(inbox_assemble(ib, p + 4, 2, NOW_REALTIME, 1, false, &msgs, &n), 0);
	check_int(n, 2);
	if (n == 2)
		check(!streq(msgs[0].key, msgs[1].key));
	inbox_messages_free(msgs, n);

	/* A concatenation element beside another one (a language shift table): still joined. */
	{
		unsigned char udh[] = {8, 0x24, 1, 1, 0x00, 3, 9, 2, 1};

		part(&p[6], "+444", "X", 9, 2, 1, 7, 0);
		p[6].UDH.Type = UDH_UserUDH;
		p[6].UDH.Length = sizeof(udh);
		memcpy(p[6].UDH.Text, udh, sizeof(udh));
		part(&p[7], "+444", "Y", 9, 2, 2, 8, 0);
		check_int(inbox_assemble(ib, p + 6, 2, NOW_REALTIME, 1, false, &msgs, &n), 0);
		check_int(n, 1);
		if (n == 1)
			check_str(msgs[0].text, "XY");
		inbox_messages_free(msgs, n);
	}

	/* A stored status report. */
	GSM_SetDefaultReceivedSMSData(&p[0]);
	p[0].PDU = SMS_Status_Report;
	p[0].Location = 9;
	p[0].MessageReference = 42;
	p[0].DeliveryStatus = 0;
	DecodeUTF8(p[0].Number, "+32470000001", 12);
	p[0].DateTime = (GSM_DateTime){.Year = 2024, .Month = 3, .Day = 1, .Hour = 12};
	p[0].SMSCTime = (GSM_DateTime){.Year = 2024, .Month = 3, .Day = 1, .Hour = 12, .Minute = 1};
	check_int(inbox_assemble(ib, p, 1, NOW_REALTIME, 1, false, &msgs, &n), 0);
	check_int(n, 1);
	if (n == 1) {
		check(msgs[0].report);
		check_int(msgs[0].message_ref, 42);
		check_str(msgs[0].number, "+32470000001");
		check(msgs[0].delivered);
		check_int(msgs[0].at_usec, 1709294460ULL * USEC_PER_SEC);
		check_int(msgs[0].n_locations, 1);
		check_int(msgs[0].locations[0].location, 9);
		check_int(strlen(msgs[0].key), MODEM_KEY_LEN);
	}
	inbox_messages_free(msgs, n);
out:
	inbox_free(ib);
	free(p);
}

static void test_inbox_bookkeeping(void)
{
	InboxMessage msg = {
	        .key = "k1", .n_locations = 2, .locations = {{.location = 3}, {.location = 4}}};
	InboxLocation locs[GSM_MAX_MULTI_SMS];
	char key[MODEM_KEY_LEN + 1];
	Inbox *ib = NULL;
	size_t n = 0;

	check_int(inbox_new(&ib), 0);
	if (!ib)
		return;
	inbox_new_connection(ib);
	check_int(inbox_classify(ib, "k1"), INBOX_NEW);
	check_int(inbox_pending_add(ib, 1, &msg), 0);
	check_int(inbox_classify(ib, "k1"), INBOX_REPORTED);
	/* Confirmed on the same connection: delete these two slots. */
	check_int(inbox_confirm(ib, 1, locs, &n, key), 1);
	check_int(n, 2);
	check_int(locs[1].location, 4);
	check_str(key, "k1");
	inbox_deleted(ib, "k1");
	check_int(inbox_classify(ib, "k1"), INBOX_NEW);
	check_int(inbox_confirm(ib, 1, locs, &n, key), 0); /* once only */

	/* Reported, then the connection changes: it may be reported again. */
	check_int(inbox_pending_add(ib, 2, &msg), 0);
	inbox_new_connection(ib);
	check_int(inbox_classify(ib, "k1"), INBOX_NEW);
	check_int(inbox_pending_add(ib, 3, &msg), 0);
	check_int(inbox_classify(ib, "k1"), INBOX_REPORTED);
	/* The old token confirmed: remembered by key, deleted when next seen. */
	check_int(inbox_confirm(ib, 2, locs, &n, key), 0);
	check_int(inbox_classify(ib, "k1"), INBOX_STORED);
	inbox_deleted(ib, "k1");
	check_int(inbox_classify(ib, "k1"), INBOX_NEW);
	check_int(inbox_confirm(ib, 3, locs, &n, key), 0); /* forgotten with the deletion */

	/* Bounded: the current connection's reports fill it, older ones make room. */
	for (uint64_t t = 10; t < 10 + INBOX_PENDING_MAX; t++) {
		snprintf(msg.key, sizeof(msg.key), "x%llu", (unsigned long long)t);
		check_int(inbox_pending_add(ib, t, &msg), 0);
	}
	snprintf(msg.key, sizeof(msg.key), "one too many");
	check_int(inbox_pending_add(ib, 9999, &msg), -ENOBUFS);
	inbox_new_connection(ib);
	check_int(inbox_pending_add(ib, 9999, &msg), 0);
	inbox_free(ib);
}

static bool fd_readable(int fd, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, timeout_ms) == 1;
}

/* Confirmations are checked against the tokens given out. */
static void test_confirm_invalid(void)
{
	Modem *m = NULL;

	check_int(modem_new(&(ModemSettings){.name = "c0", .device = "/nonexistent/tty"}, &m), 0);
	if (!m)
		return;
	check_int(modem_sms_stored(m, 0), -ENOENT);
	check_int(modem_sms_stored(m, 1), -ENOENT); /* nothing given out yet */
	check_int(modem_sms_stored(NULL, 1), -EINVAL);
	modem_free(m);
}

/* Without a worker: queue bounds, and every job answered at modem_stop(). */
static void test_queue(void)
{
	Modem *m = NULL;
	ModemEvent ev;
	unsigned n = 0;

	check_int(modem_new(&(ModemSettings){.name = "q0", .device = "/nonexistent/tty"}, &m), 0);
	if (!m)
		return;
	check_str(modem_name(m), "q0");
	check(modem_fd(m) >= 0);
	check(!fd_readable(modem_fd(m), 0));
	check_int(modem_next_event(m, &ev), 0);

	check_int(modem_send(m, 1, "not a number", "hi"), -EINVAL);
	check_int(modem_send(m, 1, "+32470000000", "bad \xff utf8"), -EINVAL);
	check_int(modem_send(m, 1, "+32470000000", NULL), -EINVAL);
	{
		char *big = repeat("a", SMS_TEXT_MAX + 1);

		check_int(modem_send(m, 1, "+32470000000", big), -EMSGSIZE);
		free(big);
	}
	check_int(modem_queue_length(m), 0);

	for (unsigned i = 0; i < 1024; i++)
		check_int(modem_send(m, 100 + i, "+32470000000", "hello"), 0);
	check_int(modem_queue_length(m), 1024);
	check_int(modem_send(m, 5000, "+32470000000", "hello"), -ENOBUFS);

	check_int(modem_stop(m), 0);
	check_int(modem_queue_length(m), 0);
	check_int(modem_send(m, 5001, "+32470000000", "hello"), -ESHUTDOWN);
	check(fd_readable(modem_fd(m), 0));
	while (modem_next_event(m, &ev) > 0) {
		if (ev.type != MODEM_EVENT_SENT)
			continue;
		check_int(ev.job, 100 + n);
		check_int(ev.result, -ESHUTDOWN);
		check(!ev.permanent);
		check_str(ev.error, "modem stopped");
		n++;
	}
	check_int(n, 1024);
	check(!fd_readable(modem_fd(m), 0));
	m = modem_free(m);
	check(m == NULL);
}

/* Waits for the next event, bounded. */
static int next_event(Modem *m, ModemEvent *ev, int timeout_ms)
{
	uint64_t end = now_monotonic_usec() + (uint64_t)timeout_ms * 1000;

	for (;;) {
		uint64_t now = now_monotonic_usec();
		int r = modem_next_event(m, ev);

		if (r != 0)
			return r;
		if (now >= end)
			return 0;
		fd_readable(modem_fd(m), (int)((end - now) / 1000) + 1);
	}
}

/* A worker on a device that is not there reports absent and refuses jobs at once. */
static void test_absent(void)
{
	Modem *m = NULL;
	ModemEvent ev;
	uint64_t t0;

	check_int(modem_new(&(ModemSettings){.name = "gsm9", .device = "/nonexistent/ttyGSM9"}, &m),
	          0);
	if (!m)
		return;
	check_int(modem_start(m), 0);
	check_int(modem_start(m), -EBUSY);

	check_int(next_event(m, &ev, 5000), 1);
	check_int(ev.type, MODEM_EVENT_STATUS);
	check_int(ev.status.state, MODEM_STATE_ABSENT);
	check(strstr(ev.status.reason, "/nonexistent/ttyGSM9") != NULL);
	check_int(ev.status.signal, 99);
	printf("# absent: %s\n", ev.status.reason);

	t0 = now_monotonic_usec();
	check_int(modem_send(m, 7, "+32470000000", "hello"), 0);
	check_int(next_event(m, &ev, 5000), 1);
	check_int(ev.type, MODEM_EVENT_SENT);
	check_int(ev.job, 7);
	check_int(ev.result, -ENODEV);
	check(!ev.permanent);
	check(strstr(ev.error, "absent") != NULL);
	check(now_monotonic_usec() - t0 < 500 * 1000);
	check_int(modem_queue_length(m), 0);

	t0 = now_monotonic_usec();
	check_int(modem_stop(m), 0);
	check(now_monotonic_usec() - t0 < 500 * 1000);
	/* The last word is the worker's: stopped. */
	while (next_event(m, &ev, 0) > 0)
		if (ev.type == MODEM_EVENT_STATUS)
			check_str(ev.status.reason, "stopped");
	modem_free(m);
}

int main(void)
{
	log_setup("test-modem");
	run(test_count_parts);
	run(test_state_to_string);
	run(test_causes);
	run(test_submit_pdu);
	run(test_new_invalid);
	run(test_sha256);
	run(test_unicode);
	run(test_inbox_assemble);
	run(test_inbox_bookkeeping);
	run(test_confirm_invalid);
	run(test_queue);
	run(test_absent);
	return test_exit();
}
