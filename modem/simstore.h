/* simstore: the messages stored in a modem's memories (SIM, phone), listed and deleted with raw
 * AT commands, so that their PDUs can be checked before anything decodes them. Internal to
 * modem/.
 *
 * Only the worker that owns the port calls these, between libgammu calls, on libgammu's own fd of
 * the port (libgammu is idle then and reads nothing). Each call writes one command, reads until
 * its final result or the deadline, and returns. Lines that are not the answer (the echo,
 * unsolicited results) are skipped; a new-message indication among them is counted in
 * SimChat.new_messages so that the caller reads the memories again.
 *
 * libgammu caches which memory AT+CPMS last selected and skips the command when it thinks the
 * right one is selected; once these functions have moved the selection, libgammu must never list,
 * read or delete stored messages again on that connection (the worker uses these for all of it). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pdu-check.h"

/* Hex digits of a PDU line kept for the record; a longer line is cut (and is not a valid PDU). */
#define SIMSTORE_HEX_MAX (2 * PDU_MAX_LEN)

typedef struct SimChat {
	int fd;
	uint64_t timeout_usec; /* per command */
	unsigned new_messages; /* +CMTI/+CDSI lines seen */
	char error[64];        /* the last error result, e.g. "+CMS ERROR: 321" */
	char buf[2048];        /* bytes read and not yet split into lines (a read takes half) */
	size_t n;
} SimChat;

typedef struct SimStoreEntry {
	int index; /* the modem's own index in the selected memory */
	int stat;  /* 27.005: 0 received unread, 1 received read, 2 stored unsent, 3 stored sent */
	char hex[SIMSTORE_HEX_MAX + 1]; /* the PDU as the modem printed it (cut if too long) */
	bool hex_valid;                 /* hex is complete, even, only hex digits: pdu[] holds it */
	uint8_t pdu[PDU_MAX_LEN];
	size_t len;
} SimStoreEntry;

void simstore_chat_init(SimChat *c, int fd, uint64_t timeout_usec);

/* AT+CMGF=0. Returns 0, -EREMOTEIO when the modem refused (c->error says how), -ETIMEDOUT without
 * a final result in time, -EIO when the port failed or hung up. The same for the others. */
int simstore_pdu_mode(SimChat *c);
/* AT+CPMS="<memory>": the memory listed and deleted from; *ret_used and *ret_total from the
 * answer (0 if it gave none). */
int simstore_select(SimChat *c, const char *memory, unsigned *ret_used, unsigned *ret_total);
/* AT+CMGL=4: every message of the selected memory, into *ret (malloc'd, free()). */
int simstore_list(SimChat *c, SimStoreEntry **ret, size_t *ret_n);
/* AT+CMGD=<index> in the selected memory. */
int simstore_delete(SimChat *c, int index);
