/* sms: turning a UTF-8 text into the SMS parts libgammu will send, and judging what the network
 * answered. Internal to modem/.
 *
 * Any thread may call these; none needs a state machine. sms_encode() returns a message the caller
 * frees with free(). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gammu.h>

/* Longest text accepted, in bytes of UTF-8; far above what 49 parts can carry, it only protects
 * libgammu's fixed encoding buffers. */
#define SMS_TEXT_MAX 32000

/* Encodes text with GSM_EncodeMultiPartSMS (GSM 7-bit, or UCS-2 when a character needs it;
 * concatenated with an 8-bit reference when it does not fit one part). Returns 0, -EINVAL for
 * invalid UTF-8, -EMSGSIZE when libgammu would cut the text (50 parts or more: 3283 UCS-2
 * characters; 5000 septets for GSM 7-bit), -ENOMEM. */
int sms_encode(const char *text, GSM_MultiSMSMessage **ret);

/* The PDU of one encoded part as AT+CMGS takes it in PDU mode (the SMSC field, then the
 * SMS-SUBMIT TPDU), in upper-case hex digits with a NUL into ret_hex, and the TPDU's length in
 * octets (AT+CMGS=<length>) in *ret_tpdu_len. libgammu encodes (GSM_EncodeSMSFrame()); part's
 * PDU is SMS_Submit, or SMS_Status_Report to ask for a report (TP-SRR). Returns 0, -EINVAL when
 * libgammu cannot encode it or the frame is not one AT+CMGS takes, -ENOBUFS when size is short
 * (2 * 188 + 1 always does). */
int sms_submit_pdu(GSM_SMSMessage *part, char *ret_hex, size_t size, size_t *ret_tpdu_len);

/* '+' optional, then 1-20 digits: what a modem can dial; E.164 checks belong to the caller. */
bool sms_number_is_valid(const char *number);

/* Whether a +CMS ERROR cause means the network refused this destination or message for good, so
 * that another modem would get the same answer (3GPP TS 24.011 table E.2, TS 23.040 9.2.3.22). */
bool sms_cause_is_permanent(int cause);

/* libgammu's "unicode" (UTF-16 big-endian units) to UTF-8, units long (stopping early at a zero
 * unit). Lone surrogates become U+FFFD, so the result is always valid UTF-8. Returns a malloc'd
 * string or NULL when out of memory. */
char *sms_unicode_to_utf8(const unsigned char *src, size_t units);
/* The same into a buffer, cut at a character boundary; for numbers and names. */
void sms_unicode_to_utf8_buf(const unsigned char *src, size_t units, char *ret, size_t size);

/* CLOCK_REALTIME microseconds of a timestamp libgammu decoded from a PDU (its Timezone is the
 * offset from UTC in seconds), 0 when it is not a valid date. */
uint64_t sms_time_usec(const GSM_DateTime *dt);

/* The words for a status report's TP-ST (TS 23.040 9.2.3.15), and how final it is. */
const char *sms_report_status(int tp_st, bool *ret_delivered, bool *ret_permanent);
