/* pdu_check: is a received SMS PDU safe to hand to libgammu's decoder?
 *
 * Any thread may call it: it is a pure function of its input, reads nothing beyond pdu[len - 1]
 * and allocates nothing. The PDU is what AT+CMGL/AT+CMGR print in PDU mode, as bytes: the SMS
 * centre address (its length octet first, 0 for none), then the TPDU.
 *
 * It is a bounds check of untrusted input, not a decoder: it answers whether every length inside
 * the PDU stays within TS 23.040's limits and within the bytes actually there, which libgammu 1.42
 * assumes and does not check (an SMS centre length of 0x70 overflows a stack buffer inside
 * GSM_UnpackSemiOctetNumber). SMS-DELIVER and SMS-STATUS-REPORT pass; anything else received is
 * refused (PDU_TYPE). Octets after the user data are tolerated (some modems pad). */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* SMS centre address (1 + 12) and the longest TPDU (a status report with 143 octets of user
 * data), with room to spare. */
#define PDU_MAX_LEN 200

typedef enum PduProblem {
	PDU_OK = 0,
	PDU_EMPTY,          /* no octet at all */
	PDU_TOO_LONG,       /* more than PDU_MAX_LEN octets */
	PDU_SMSC_LENGTH,    /* SMS centre address longer than 12 octets */
	PDU_SMSC_TRUNCATED, /* the SMS centre address runs past the end */
	PDU_TYPE,           /* neither SMS-DELIVER nor SMS-STATUS-REPORT */
	PDU_ADDRESS_LENGTH, /* sender (or recipient) address over 20 semi-octets */
	PDU_TRUNCATED,      /* a mandatory TP field is missing */
	PDU_UDL_TOO_LONG,   /* user data length over 160 septets or 140 octets */
	PDU_UD_TRUNCATED,   /* the user data length says more than the PDU holds */
	PDU_UDH_LENGTH,     /* the user data header runs past the user data */
	_PDU_PROBLEM_MAX,
} PduProblem;

/* PDU_OK (0) when libgammu may decode pdu, else the first problem found. */
PduProblem pdu_check(const uint8_t *pdu, size_t len);

/* Words for the operator: "SMSC address longer than 12 octets", ...; "ok" for PDU_OK. */
const char *pdu_problem_to_string(PduProblem p);
