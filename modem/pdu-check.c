/* pdu-check: the lengths of a received PDU, checked before anything decodes it.
 *
 * A received SMS is the one input an outsider writes directly into this appliance, and libgammu
 * decodes it with its lengths trusted: the SMS centre and address lengths drive a copy into a
 * fixed stack buffer, the user data length drives another into a 161-byte one. One crafted
 * message on the SIM then aborts the daemon at every start, before the message can be deleted.
 * So every PDU is walked here first, field by field as TS 23.040 lays them out (9.2.2.1
 * SMS-DELIVER, 9.2.2.3 SMS-STATUS-REPORT; the SMS centre address from TS 24.011 8.2.5.1 as 27.005
 * prints it), and each length is held to the standard's maximum and to the bytes that are really
 * there. Only a PDU that passes goes to libgammu.
 *
 * The alphabet is read from the DCS the way TS 23.038 defines it; where libgammu could read the
 * same DCS differently (reserved values), the user data must fit both readings, so that whichever
 * one libgammu takes stays within the PDU and within its buffers. */
#include "pdu-check.h"

#include <stdbool.h>

#define PDU_SMSC_MAX    12 /* octets after the length octet: TOA and up to 11 digit octets */
#define PDU_ADDRESS_MAX 20 /* semi-octets (TS 23.040 9.1.2.5) */
#define PDU_SCTS_LEN    7
#define PDU_SEPTETS_MAX 160 /* 7-bit user data, septets */
#define PDU_OCTETS_MAX  140 /* 8-bit and UCS-2 user data, octets */

#define PDU_MTI_DELIVER       0
#define PDU_MTI_STATUS_REPORT 2
#define PDU_FO_UDHI           0x40

typedef enum PduAlphabet {
	PDU_GSM7,
	PDU_8BIT,
	PDU_UCS2,
	PDU_UNSURE, /* reserved coding: could be read as 7-bit or as octets */
} PduAlphabet;

/* TS 23.038 4. */
static PduAlphabet pdu_alphabet(uint8_t dcs)
{
	switch (dcs >> 4) {
	case 0x0 ... 0x7: /* general data coding, also "marked for automatic deletion" */
		switch ((dcs >> 2) & 3) {
		case 0:
			return PDU_GSM7;
		case 1:
			return PDU_8BIT;
		case 2:
			return PDU_UCS2;
		default:
			return PDU_UNSURE;
		}
	case 0xC:
	case 0xD:
		return PDU_GSM7; /* message waiting indication */
	case 0xE:
		return PDU_UCS2;
	case 0xF:
		return dcs & 0x04 ? PDU_8BIT : PDU_GSM7;
	default:
		return PDU_UNSURE; /* 0x80-0xBF: reserved */
	}
}

/* An address field (TS 23.040 9.1.2.5): length in semi-octets, type, digits. */
static PduProblem pdu_address(const uint8_t *pdu, size_t len, size_t *pos)
{
	size_t n;

	if (*pos + 2 > len)
		return PDU_TRUNCATED;
	n = pdu[*pos];
	if (n > PDU_ADDRESS_MAX)
		return PDU_ADDRESS_LENGTH;
	*pos += 2 + (n + 1) / 2;
	if (*pos > len)
		return PDU_TRUNCATED;
	return PDU_OK;
}

/* TP-UDL and TP-UD, starting at the UDL octet. */
static PduProblem pdu_user_data(const uint8_t *pdu, size_t len, size_t pos, PduAlphabet alphabet,
                                bool udhi)
{
	size_t udl, septet_octets, octets;

	if (pos >= len)
		return PDU_TRUNCATED;
	udl = pdu[pos++];
	septet_octets = (udl * 7 + 7) / 8;

	switch (alphabet) {
	case PDU_GSM7:
		if (udl > PDU_SEPTETS_MAX)
			return PDU_UDL_TOO_LONG;
		octets = septet_octets;
		break;
	case PDU_8BIT:
	case PDU_UCS2:
		if (udl > PDU_OCTETS_MAX)
			return PDU_UDL_TOO_LONG;
		octets = udl;
		break;
	default:
		if (udl > PDU_OCTETS_MAX)
			return PDU_UDL_TOO_LONG;
		octets = udl; /* the larger of the two readings */
		break;
	}
	if (octets > len - pos)
		return PDU_UD_TRUNCATED;

	if (udhi) {
		size_t udh;

		if (udl == 0)
			return PDU_UDH_LENGTH;
		udh = (size_t)pdu[pos] + 1; /* with the UDHL octet itself */
		/* Within the user data in octets, and, read as 7-bit, within its septets too. */
		if (udh > octets ||
		    (alphabet != PDU_8BIT && alphabet != PDU_UCS2 && (udh * 8 + 6) / 7 > udl))
			return PDU_UDH_LENGTH;
	}
	return PDU_OK;
}

static PduProblem pdu_deliver(const uint8_t *pdu, size_t len, size_t pos)
{
	bool udhi = pdu[pos] & PDU_FO_UDHI;
	PduProblem p;
	uint8_t dcs;

	pos++; /* first octet */
	p = pdu_address(pdu, len, &pos);
	if (p != PDU_OK)
		return p;
	if (pos + 2 + PDU_SCTS_LEN > len) /* PID, DCS, SCTS */
		return PDU_TRUNCATED;
	dcs = pdu[pos + 1];
	pos += 2 + PDU_SCTS_LEN;
	return pdu_user_data(pdu, len, pos, pdu_alphabet(dcs), udhi);
}

static PduProblem pdu_status_report(const uint8_t *pdu, size_t len, size_t pos)
{
	bool udhi = pdu[pos] & PDU_FO_UDHI;
	uint8_t pi;
	PduProblem p;

	pos += 2; /* first octet, message reference */
	if (pos > len)
		return PDU_TRUNCATED;
	p = pdu_address(pdu, len, &pos);
	if (p != PDU_OK)
		return p;
	if (pos + 2 * PDU_SCTS_LEN + 1 > len) /* SCTS, DT, ST */
		return PDU_TRUNCATED;
	pos += 2 * PDU_SCTS_LEN + 1;

	/* TP-PI and what it announces are optional (TS 23.040 9.2.3.27). libgammu reads the three
	 * bits even when the extension bit is set, and may take the user data as 7-bit or as octets
	 * whatever the DCS says: it must fit either reading. */
	if (pos >= len)
		return PDU_OK;
	pi = pdu[pos++];
	if (pi & 0x01) { /* TP-PID */
		if (pos >= len)
			return PDU_TRUNCATED;
		pos++;
	}
	if (pi & 0x02) { /* TP-DCS */
		if (pos >= len)
			return PDU_TRUNCATED;
		pos++;
	}
	if (pi & 0x04)
		return pdu_user_data(pdu, len, pos, PDU_UNSURE, udhi);
	return PDU_OK;
}

PduProblem pdu_check(const uint8_t *pdu, size_t len)
{
	size_t smsc, pos;

	if (!pdu || len == 0)
		return PDU_EMPTY;
	if (len > PDU_MAX_LEN)
		return PDU_TOO_LONG;

	smsc = pdu[0];
	if (smsc > PDU_SMSC_MAX)
		return PDU_SMSC_LENGTH;
	pos = 1 + smsc;
	if (pos >= len)
		return smsc > 0 && pos > len ? PDU_SMSC_TRUNCATED : PDU_TRUNCATED;

	switch (pdu[pos] & 0x03) {
	case PDU_MTI_DELIVER:
		return pdu_deliver(pdu, len, pos);
	case PDU_MTI_STATUS_REPORT:
		return pdu_status_report(pdu, len, pos);
	default:
		return PDU_TYPE;
	}
}

const char *pdu_problem_to_string(PduProblem p)
{
	static const char *const words[_PDU_PROBLEM_MAX] = {
	        [PDU_OK] = "ok",
	        [PDU_EMPTY] = "empty PDU",
	        [PDU_TOO_LONG] = "PDU longer than 200 octets",
	        [PDU_SMSC_LENGTH] = "SMSC address longer than 12 octets",
	        [PDU_SMSC_TRUNCATED] = "SMSC address truncated",
	        [PDU_TYPE] = "not an SMS-DELIVER or status report",
	        [PDU_ADDRESS_LENGTH] = "address longer than 20 digits",
	        [PDU_TRUNCATED] = "PDU truncated",
	        [PDU_UDL_TOO_LONG] = "user data length over the maximum",
	        [PDU_UD_TRUNCATED] = "user data length beyond the PDU",
	        [PDU_UDH_LENGTH] = "user data header longer than the user data",
	};

	if ((unsigned)p >= _PDU_PROBLEM_MAX)
		return "unknown problem";
	return words[p];
}
