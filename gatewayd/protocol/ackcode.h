/* ackcode: the short codes an engineer types to acknowledge an alert from a phone, and the
 * parsing of the replies that carry them.
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
void ack_code(const char *alert_id, unsigned digits, char ret[static ACK_CODE_MAX + 1]);
/* Whether the alert's code of strlen(code) digits is code. */
bool ack_code_matches(const char *alert_id, const char *code);

typedef enum ReplyKind {
	REPLY_OTHER,    /* not an acknowledgment */
	REPLY_ACK,      /* "ACK 1234", "ack1234", "1234A", "1234 a" */
	REPLY_ACK_BARE, /* "ACK" alone */
} ReplyKind;
/* Reads an SMS reply (case-insensitive, surrounding spaces and punctuation ignored); for
 * REPLY_ACK ret_code holds the digits, for any other kind it is the empty string. */
ReplyKind reply_parse(const char *text, char ret_code[static ACK_CODE_MAX + 1]);

/* Whether an automatic SMS may go to this sender: a phone number of 8 to 15 digits (with or
 * without "+"), never an alphanumeric sender or a short code. */
bool reply_sender_answerable(const char *sender);
