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
 * refused rather than cut. */
#include "sms.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
