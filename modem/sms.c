/* sms: the one place where a text becomes SMS parts.
 *
 * Counting parts for the caller and sending them must agree to the character, so both go through
 * sms_encode(), which hands the whole job to libgammu's GSM_EncodeMultiPartSMS with
 * SMS_ConcatenatedAutoTextLong: it picks GSM 7-bit when every character (extension table
 * included) exists there and UCS-2 otherwise, and adds the concatenation header only when the
 * text does not fit one part. We never build a PDU by hand.
 *
 * Two traps of libgammu are handled here rather than in its callers: its conversion helpers
 * EncodeUnicode() and DecodeUnicodeString() depend on the locale or share a static buffer, so
 * the UTF-8 text is converted with DecodeUTF8(), which does neither; and GSM_EncodeMultiPartSMS
 * copies the text into fixed buffers and silently stops at GSM_MAX_MULTI_SMS parts (and, for 7-bit
 * texts, at 5000 septets), so the input is bounded first and a message that reaches a limit is
 * refused rather than cut.
 *
 * The PDU of one part for AT+CMGS is libgammu's too: GSM_EncodeSMSFrame() encodes it into its
 * PHONE_SMSSubmit layout, and sms_submit_pdu() only lays those fields out in the order of TS
 * 23.040 that AT+CMGS takes (what libgammu's own AT driver does before its sleeps), so that the
 * send path can be our own non-blocking exchange.
 *
 * The way back (received messages) is here too: UTF-16 to UTF-8 without libgammu's shared buffers,
 * timestamps, and the words for a status report. */
#include "sms.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "macro.h"
#include "util.h"

int sms_encode(const char *text, GSM_MultiSMSMessage **ret)
{
	_cleanup_free_ GSM_MultiSMSMessage *sms = NULL;
	_cleanup_free_ unsigned char *unicode = NULL;
	GSM_MultiPartSMSInfo info;
	GSM_Error error;
	size_t len, total = 0;

	if (!text || !ret)
		return -EINVAL;
	len = strlen(text);
	if (len > SMS_TEXT_MAX)
		return -EMSGSIZE;
	if (!utf8_is_valid(text, len))
		return -EINVAL;

	/* UTF-16 never takes more bytes than UTF-8 plus its two-byte terminator. */
	unicode = calloc(1, 2 * len + 4);
	sms = calloc(1, sizeof(*sms));
	if (!unicode || !sms)
		return -ENOMEM;
	DecodeUTF8(unicode, text, len);

	GSM_ClearMultiPartSMSInfo(&info);
	info.EntriesNum = 1;
	info.UnicodeCoding = false;
	info.Class = -1;
	info.Entries[0].ID = SMS_ConcatenatedAutoTextLong;
	info.Entries[0].Buffer = unicode;

	error = GSM_EncodeMultiPartSMS(GSM_GetGlobalDebug(), &info, sms);
	if (error == ERR_MOREMEMORY)
		return -ENOMEM;
	if (error != ERR_NONE)
		return -EINVAL;
	if (sms->Number <= 0)
		return -EINVAL;
	/* libgammu cuts silently: at GSM_MAX_MULTI_SMS parts, and 7-bit texts at 5000 septets. */
	if (sms->Number >= GSM_MAX_MULTI_SMS)
		return -EMSGSIZE;
	for (int i = 0; i < sms->Number; i++)
		total += (size_t)sms->SMS[i].Length;
	if (total != UnicodeLength(unicode))
		return -EMSGSIZE;

	*ret = TAKE_PTR(sms);
	return 0;
}

int sms_submit_pdu(GSM_SMSMessage *part, char *ret_hex, size_t size, size_t *ret_tpdu_len)
{
	const GSM_SMSMessageLayout *l = &PHONE_SMSSubmit;
	unsigned char frame[1000] = {0}, pdu[GSM_MAX_SMS_LENGTH + 64];
	size_t n = 0, smsc_len, da_len, ud_len;
	unsigned vpf;
	int length = 0;

	if (!part || !ret_hex || !ret_tpdu_len)
		return -EINVAL;
	if (GSM_EncodeSMSFrame(GSM_GetGlobalDebug(), part, frame, *l, &length, true) != ERR_NONE)
		return -EINVAL;
	if (length < l->Text || (size_t)(length - l->Text) > GSM_MAX_8BIT_SMS_LENGTH)
		return -EINVAL;
	ud_len = (size_t)(length - l->Text);
	smsc_len = (size_t)frame[l->SMSCNumber] + 1;     /* its length octet counts what follows */
	da_len = ((size_t)frame[l->Number] + 1) / 2 + 2; /* digits, then type and length octets */
	if (smsc_len > 12 || da_len > 12)
		return -EINVAL;

	memcpy(pdu + n, frame + l->SMSCNumber, smsc_len);
	n += smsc_len;
	pdu[n++] = frame[l->firstbyte];
	pdu[n++] = frame[l->TPMR];
	memcpy(pdu + n, frame + l->Number, da_len);
	n += da_len;
	pdu[n++] = frame[l->TPPID];
	pdu[n++] = frame[l->TPDCS];
	/* TP-VP is there when TP-VPF says so: one octet when relative; libgammu's frame holds no
	 * other form. */
	vpf = frame[l->firstbyte] & 0x18;
	if (vpf == 0x10)
		pdu[n++] = frame[l->TPVP];
	else if (vpf != 0)
		return -EINVAL;
	pdu[n++] = frame[l->TPUDL];
	memcpy(pdu + n, frame + l->Text, ud_len);
	n += ud_len;

	if (size < 2 * n + 1)
		return -ENOBUFS;
	EncodeHexBin(ret_hex, pdu, n);
	ret_hex[2 * n] = 0;
	*ret_tpdu_len = n - smsc_len;
	return 0;
}

bool sms_number_is_valid(const char *number)
{
	size_t digits = 0;

	if (!number)
		return false;
	if (*number == '+')
		number++;
	for (; *number; number++) {
		if (*number < '0' || *number > '9')
			return false;
		digits++;
	}
	return digits >= 1 && digits <= 20;
}

bool sms_cause_is_permanent(int cause)
{
	/* RP-cause values (TS 24.011 table E.2) marked permanent there. 27 (destination out of
	 * order), 38 (network out of order), 41, 42 and 47 are temporary failures: another modem or
	 * a later try may get through, so they stay transient here. */
	static const int rp_permanent[] = {1,  8,  10, 21, 28, 29, 30,  50, 69,
	                                   81, 95, 96, 97, 98, 99, 111, 127};

	for (size_t i = 0; i < ELEMENTSOF(rp_permanent); i++)
		if (cause == rp_permanent[i])
			return true;

	/* TP-FCS values (TS 23.040 9.2.3.22): protocol identifier, data coding and command errors,
	 * TPDU not supported, no SC subscription, invalid or barred destination, rejected
	 * duplicate, validity period format or value not supported. SC busy (0xC0), SC system
	 * failure (0xC2) and the MS-side errors from 0xD0 on are left transient. */
	if (cause >= 0x80 && cause <= 0xB0)
		return true;
	switch (cause) {
	case 0xC1:
	case 0xC3:
	case 0xC4:
	case 0xC5:
	case 0xC6:
	case 0xC7:
		return true;
	default:
		/* 300-511 are errors of the modem itself (TS 27.005 3.2.5), above are vendors'. */
		return false;
	}
}

static size_t sms_put_utf8(char *dest, uint32_t c)
{
	if (c < 0x80) {
		dest[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		dest[0] = (char)(0xC0 | (c >> 6));
		dest[1] = (char)(0x80 | (c & 0x3F));
		return 2;
	}
	if (c < 0x10000) {
		dest[0] = (char)(0xE0 | (c >> 12));
		dest[1] = (char)(0x80 | ((c >> 6) & 0x3F));
		dest[2] = (char)(0x80 | (c & 0x3F));
		return 3;
	}
	dest[0] = (char)(0xF0 | (c >> 18));
	dest[1] = (char)(0x80 | ((c >> 12) & 0x3F));
	dest[2] = (char)(0x80 | ((c >> 6) & 0x3F));
	dest[3] = (char)(0x80 | (c & 0x3F));
	return 4;
}

/* libgammu's EncodeUTF8() passes lone surrogates through as three-byte sequences, which are not
 * UTF-8 (and which jansson, SQLite's JSON and every client would refuse); a UCS-2 part may well end
 * in half a pair when the sender's phone split an emoji. So the conversion is done here. Writes at
 * most 4 bytes per pair or 3 per unit, plus the NUL. */
static size_t sms_convert(const unsigned char *src, size_t units, char *dest)
{
	size_t j = 0;

	for (size_t i = 0; i < units; i++) {
		uint32_t c = (uint32_t)src[2 * i] << 8 | src[2 * i + 1];

		if (c == 0)
			break;
		if (c >= 0xD800 && c <= 0xDBFF && i + 1 < units) {
			uint32_t lo = (uint32_t)src[2 * i + 2] << 8 | src[2 * i + 3];

			if (lo >= 0xDC00 && lo <= 0xDFFF) {
				c = 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00);
				i++;
			}
		}
		if (c >= 0xD800 && c <= 0xDFFF)
			c = 0xFFFD;
		j += sms_put_utf8(dest + j, c);
	}
	dest[j] = 0;
	return j;
}

char *sms_unicode_to_utf8(const unsigned char *src, size_t units)
{
	char *dest = malloc(3 * units + 1);

	if (!dest)
		return NULL;
	sms_convert(src, units, dest);
	return dest;
}

void sms_unicode_to_utf8_buf(const unsigned char *src, size_t units, char *ret, size_t size)
{
	_cleanup_free_ char *s = NULL;
	size_t n;

	if (size == 0)
		return;
	ret[0] = 0;
	s = sms_unicode_to_utf8(src, units);
	if (!s)
		return;
	n = strlen(s);
	if (n >= size) {
		n = size - 1;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(ret, s, n);
	ret[n] = 0;
}

uint64_t sms_time_usec(const GSM_DateTime *dt)
{
	struct tm tm = {0};
	time_t t;

	if (dt->Year < 1970 || dt->Month < 1 || dt->Month > 12 || dt->Day < 1 || dt->Day > 31 ||
	    dt->Hour < 0 || dt->Hour > 23 || dt->Minute < 0 || dt->Minute > 59 || dt->Second < 0 ||
	    dt->Second > 60)
		return 0;
	tm.tm_year = dt->Year - 1900;
	tm.tm_mon = dt->Month - 1;
	tm.tm_mday = dt->Day;
	tm.tm_hour = dt->Hour;
	tm.tm_min = dt->Minute;
	tm.tm_sec = dt->Second;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return 0;
	t -= dt->Timezone;
	if (t < 0)
		return 0;
	return (uint64_t)t * USEC_PER_SEC;
}

const char *sms_report_status(int st, bool *ret_delivered, bool *ret_permanent)
{
	static const struct {
		int st;
		const char *text;
	} table[] = {
	        {0x00, "delivered"},
	        {0x01, "delivered, unconfirmed"},
	        {0x02, "replaced"},
	        {0x20, "pending: congestion"},
	        {0x21, "pending: recipient busy"},
	        {0x22, "pending: no response from recipient"},
	        {0x23, "pending: service rejected"},
	        {0x24, "pending: quality of service not available"},
	        {0x25, "pending: error in recipient"},
	        {0x40, "failed: remote procedure error"},
	        {0x41, "failed: incompatible destination"},
	        {0x42, "failed: connection rejected by recipient"},
	        {0x43, "failed: not obtainable"},
	        {0x44, "failed: quality of service not available"},
	        {0x45, "failed: no interworking available"},
	        {0x46, "failed: validity period expired"},
	        {0x47, "failed: deleted by sender"},
	        {0x48, "failed: deleted by SMSC administration"},
	        {0x49, "failed: message does not exist"},
	        {0x60, "failed: congestion"},
	        {0x61, "failed: recipient busy"},
	        {0x62, "failed: no response from recipient"},
	        {0x63, "failed: service rejected"},
	        {0x64, "failed: quality of service not available"},
	        {0x65, "failed: error in recipient"},
	};

	*ret_delivered = st >= 0x00 && st <= 0x1F;
	*ret_permanent = st >= 0x40 && st <= 0x7F;
	for (size_t i = 0; i < ELEMENTSOF(table); i++)
		if (table[i].st == st)
			return table[i].text;
	if (*ret_delivered)
		return "delivered";
	if (*ret_permanent)
		return "failed";
	if (st >= 0x20 && st <= 0x3F)
		return "pending";
	return "unknown status";
}
