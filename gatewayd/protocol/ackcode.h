/* ackcode: the short codes an engineer types to acknowledge an alert from a phone, and the
 * parsing of the replies that carry them and of the other commands an engineer may text.
 *
 * A code is derived from the alert id alone — the low decimal digits of its first 64 bits — so
 * both halves of a partitioned cluster give an alert the same code without talking to each
 * other. Four digits by default; when another open alert shares them, the SMS carries a longer
 * code (the same digits with more in front), and a reply with a code that matches several open
 * alerts is answered with their longer codes. Digits are what a phone keypad types fastest.
 *
 * Pure functions: no state, no I/O. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define ACK_CODE_MIN 4
#define ACK_CODE_MAX 12

/* The code of `digits` digits (ACK_CODE_MIN..ACK_CODE_MAX) of a 32-hex-digit alert id. */
void ackcode_for(const char *alert_id, unsigned digits, char ret[static ACK_CODE_MAX + 1]);
/* Whether the alert's code of strlen(code) digits is code. */
bool ackcode_matches(const char *alert_id, const char *code);

typedef enum ReplyKind {
	REPLY_OTHER,    /* nothing this parser knows: answered with the help text */
	REPLY_ACK,      /* "ACK 1234", "ack1234", "1234A", "1234 a" */
	REPLY_ACK_BARE, /* "ACK" alone */
	REPLY_RESOLVE,  /* "RES 1234", "resolve 1234": the problem is gone */
	REPLY_ESCALATE, /* "ESC 1234", "escalate 1234": page the next step now */
	REPLY_WHO,      /* "WHO": who is on call now */
	REPLY_TAKE,     /* "TAKE", "TAKE 2h": take over the first role of the chain */
	REPLY_HELP,     /* "HELP", "?" */
} ReplyKind;

/* The longest TAKE, in seconds: the 90 days an override may run. */
#define REPLY_TAKE_MAX (90u * 86400u)

/* Reads an SMS reply (case-insensitive, surrounding spaces and punctuation ignored). For
 * REPLY_ACK, REPLY_RESOLVE and REPLY_ESCALATE ret_code holds the digits, for any other kind it is
 * the empty string. For REPLY_TAKE *ret_seconds is the duration asked for ("90m", "2h", "1d"; 0
 * when none was given), else 0; ret_seconds may be NULL. */
ReplyKind ackcode_parse(const char *text, char ret_code[static ACK_CODE_MAX + 1],
                        unsigned *ret_seconds);

/* "MAINT <key-prefix> <duration>" (the word in any case, the prefix as typed, at most
 * REPLY_MAINT_PREFIX_MAX bytes without spaces, a duration as for TAKE): true with the prefix and
 * the seconds, false for anything else. */
#define REPLY_MAINT_PREFIX_MAX 64
bool ackcode_parse_maint(const char *text, char ret_prefix[static REPLY_MAINT_PREFIX_MAX + 1],
                         unsigned *ret_seconds);

/* Whether an automatic SMS may go to this sender: a phone number of 8 to 15 digits (with or
 * without "+"), never an alphanumeric sender or a short code. */
bool ackcode_sender_answerable(const char *sender);
