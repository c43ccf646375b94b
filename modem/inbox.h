/* inbox: what a worker knows about the messages waiting on its modem's SIM. Internal to modem/.
 *
 * One Inbox per worker, used by that worker only. inbox_assemble() turns the parts read from the
 * SIM into messages (SMS, joined and decoded, and stored status reports) with stable keys;
 * the rest is the bookkeeping of the promise in modem.h: a message is reported once per
 * connection, and deleted only after the main thread confirmed its token. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <gammu.h>

#include "modem.h"

/* A concatenated message missing parts is reported as it is after this long (or at once when the
 * memory is nearly full), so that its slots are freed for what comes next, an ACK among them. */
#define INBOX_INCOMPLETE_MAX_USEC (10ULL * 60 * 1000000)
/* Messages reported and not yet confirmed; beyond, new ones wait on the SIM. */
#define INBOX_PENDING_MAX 256

typedef struct InboxLocation {
	int location; /* the modem's index in memory */
	GSM_MemoryType memory;
} InboxLocation;

typedef struct InboxMessage {
	bool report; /* a stored status report rather than an SMS */
	char key[MODEM_KEY_LEN + 1];
	char from[64]; /* SMS: the sender */
	char *text;    /* SMS: UTF-8, owned by the message */
	uint64_t smsc_time_usec;
	unsigned parts; /* SMS: parts joined (fewer than announced when incomplete) */
	bool complete;
	/* report */
	int message_ref;
	char number[32];
	bool delivered, permanent;
	char status[64];
	uint64_t at_usec;
	size_t n_locations;
	InboxLocation locations[GSM_MAX_MULTI_SMS];
} InboxMessage;

typedef struct Inbox Inbox;

int inbox_new(Inbox **ret);
Inbox *inbox_free(Inbox *ib);

/* The parts of one SIM scan (SMS-DELIVERs and status reports; anything else is ignored) become
 * messages in *ret (malloc'd; inbox_messages_free()). Concatenated parts are joined by sender,
 * reference and count; a set still missing parts is left out until it is complete or older than
 * INBOX_INCOMPLETE_MAX_USEC (by its SMS centre time, or else by when it was first seen), or at
 * once when tight (a memory at least 80 % full). */
int inbox_assemble(Inbox *ib, const GSM_SMSMessage *parts, size_t n_parts, uint64_t now_realtime,
                   uint64_t now_monotonic, bool tight, InboxMessage **ret, size_t *ret_n);
void inbox_messages_free(InboxMessage *msgs, size_t n);
/* A status report given whole by the modem (+CDS): never stored, so no locations. */
void inbox_report_from_sms(const GSM_SMSMessage *sms, InboxMessage *ret);

/* A new connection: messages reported on older ones may be reported again. */
void inbox_new_connection(Inbox *ib);

typedef enum InboxVerdict {
	INBOX_NEW,      /* report it */
	INBOX_REPORTED, /* reported on this connection, not confirmed yet: leave it */
	INBOX_STORED,   /* confirmed already: delete it without reporting it again */
} InboxVerdict;
InboxVerdict inbox_classify(Inbox *ib, const char *key);

/* Remembers a reported message under its token. -ENOBUFS when INBOX_PENDING_MAX are waiting. */
int inbox_pending_add(Inbox *ib, uint64_t token, const InboxMessage *msg);
/* Forgets a token whose event could not be queued. */
void inbox_pending_drop(Inbox *ib, uint64_t token);
/* The main thread confirmed token. Returns 1 with its locations copied to ret (room for
 * GSM_MAX_MULTI_SMS) when they are to be deleted now, 0 when there is nothing to do now (unknown
 * token, or read on an older connection: the message is then deleted when next seen). */
int inbox_confirm(Inbox *ib, uint64_t token, InboxLocation *ret, size_t *ret_n,
                  char ret_key[static MODEM_KEY_LEN + 1]);
/* The message with key is gone from the SIM: forget it. */
void inbox_deleted(Inbox *ib, const char *key);
/* Deleting it failed: delete it when next seen. */
void inbox_mark_stored(Inbox *ib, const char *key);
