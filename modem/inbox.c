/* inbox: from SIM slots to messages the daemon can store exactly once.
 *
 * Three things make receiving harder than it looks.
 *
 * Parts. A long SMS arrives as parts stored in separate slots, maybe out of order, maybe with
 * other messages in between, and a part can be late or lost. Parts are joined by (sender,
 * reference, part count), the identity TS 23.040 gives them; libgammu's GSM_LinkSMS() is not used
 * because it compares senders through DecodeUnicodeString(), whose one static buffer makes both
 * sides of the comparison the same string: parts of two senders that happen to share a reference
 * get joined (and the buffer is shared by every thread). The concatenation header is read from the
 * raw UDH, so a part that also carries another element (a language shift table) is still joined.
 * A set that misses parts waits, untouched on the SIM, until it is complete or ten minutes old,
 * or at once when a memory is 80 % full: a SIM holds some 30 messages, and a part lost by the
 * network must not keep slots that the next ACK needs.
 *
 * Keys. The daemon must store a message once even if it is read again after a crash, so every
 * message gets a key that depends only on what is stored on the SIM: a SHA-256 of the sender, the
 * SMS centre's timestamp (with its zone), the concatenation reference and the text.
 *
 * Deletion. A slot is freed only after the main thread has stored the message durably and said so
 * with its token. Until then the message is not reported again on the same connection; a new
 * connection may report it again (the daemon dedupes by key), because the worker cannot know
 * whether the first report was lost with a restart of the daemon. A confirmation that arrives for
 * a report of an older connection is remembered by key, and the message is deleted when the next
 * scan sees it. */
#include "inbox.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "sha256.h"
#include "sms.h"
#include "util.h"

#define INBOX_STORED_MAX 64
#define INBOX_SEEN_MAX   64

typedef struct InboxPending {
	uint64_t token;
	char key[MODEM_KEY_LEN + 1];
	unsigned connection;
	size_t n_locations;
	InboxLocation locations[GSM_MAX_MULTI_SMS];
} InboxPending;

/* When an incomplete set was first seen, for sets whose SMS centre time cannot be trusted. */
typedef struct InboxSeen {
	char id[128];
	uint64_t first_usec; /* CLOCK_MONOTONIC */
} InboxSeen;

struct Inbox {
	unsigned connection;
	InboxPending *pending;
	size_t n_pending;
	char stored[INBOX_STORED_MAX][MODEM_KEY_LEN + 1]; /* oldest first */
	size_t n_stored;
	InboxSeen seen[INBOX_SEEN_MAX];
	size_t n_seen;
};

int inbox_new(Inbox **ret)
{
	Inbox *ib = calloc(1, sizeof(*ib));

	if (!ib)
		return -ENOMEM;
	ib->pending = calloc(INBOX_PENDING_MAX, sizeof(InboxPending));
	if (!ib->pending) {
		free(ib);
		return -ENOMEM;
	}
	*ret = ib;
	return 0;
}

Inbox *inbox_free(Inbox *ib)
{
	if (ib) {
		free(ib->pending);
		free(ib);
	}
	return NULL;
}

/* ---- assembling ---- */

typedef struct InboxConcat {
	int ref, bits, total, seq; /* bits 0: not concatenated */
} InboxConcat;

/* The concatenation element of a part's user data header (TS 23.040 9.2.3.24.1 and .8). */
static InboxConcat inbox_concat(const GSM_SMSMessage *sms)
{
	const GSM_UDHHeader *udh = &sms->UDH;
	InboxConcat c = {0};
	int len;

	if (udh->Type == UDH_NoUDH || udh->Length < 2)
		return c;
	len = MIN(udh->Length, (int)sizeof(udh->Text));
	for (int i = 1; i + 1 < len;) {
		int iei = udh->Text[i], n = udh->Text[i + 1];
		const unsigned char *d = udh->Text + i + 2;

		if (i + 2 + n > len)
			break;
		if (iei == 0x00 && n == 3)
			c = (InboxConcat){.ref = d[0], .bits = 8, .total = d[1], .seq = d[2]};
		else if (iei == 0x08 && n == 4)
			c = (InboxConcat){
			        .ref = d[0] << 8 | d[1], .bits = 16, .total = d[2], .seq = d[3]};
		i += 2 + n;
	}
	/* A header with impossible numbers is ignored, as the standard says; one announcing more
	 * parts than libgammu's limit is treated the same way: its parts come one by one. */
	if (c.bits && (c.total < 2 || c.total >= GSM_MAX_MULTI_SMS || c.seq < 1 || c.seq > c.total))
		c = (InboxConcat){0};
	return c;
}

/* Appends a part's text as UTF-16 units to buf (room for GSM_MAX_SMS_LENGTH + 1 units per part). */
static size_t inbox_part_units(const GSM_SMSMessage *sms, unsigned char *buf)
{
	size_t n = 0;

	switch (sms->Coding) {
	case SMS_Coding_Default_No_Compression:
	case SMS_Coding_Unicode_No_Compression:
		n = MIN(UnicodeLength(sms->Text), (size_t)GSM_MAX_SMS_LENGTH);
		memcpy(buf, sms->Text, 2 * n);
		return n;
	case SMS_Coding_8bit:
		/* Binary data has no text; its bytes are shown as Latin-1 rather than dropped. */
		n = (size_t)MIN(MAX(sms->Length, 0), GSM_MAX_SMS_LENGTH);
		for (size_t i = 0; i < n; i++) {
			buf[2 * i] = 0;
			buf[2 * i + 1] = sms->Text[i] ? sms->Text[i] : '?';
		}
		return n;
	default: {
		static const char note[] = "[compressed text]";

		for (n = 0; note[n]; n++) {
			buf[2 * n] = 0;
			buf[2 * n + 1] = (unsigned char)note[n];
		}
		return n;
	}
	}
}

static void inbox_time_text(const GSM_DateTime *dt, char *ret, size_t size)
{
	snprintf(ret, size, "%04d-%02d-%02d %02d:%02d:%02d %+d", dt->Year, dt->Month, dt->Day,
	         dt->Hour, dt->Minute, dt->Second, dt->Timezone);
}

static void inbox_hash_field(Sha256 *h, const char *s)
{
	sha256_update(h, s, strlen(s) + 1); /* with the NUL: fields cannot run into each other */
}

static void inbox_location(const GSM_SMSMessage *sms, InboxLocation *ret)
{
	*ret = (InboxLocation){.location = sms->Location, .memory = sms->Memory};
}

void inbox_report_from_sms(const GSM_SMSMessage *sms, InboxMessage *ret)
{
	char scts[64], dt[64], num[32];
	Sha256 h;

	*ret = (InboxMessage){.report = true, .complete = true, .parts = 1};
	ret->message_ref = sms->MessageReference;
	sms_unicode_to_utf8_buf(sms->Number, GSM_MAX_NUMBER_LENGTH, ret->number,
	                        sizeof(ret->number));
	snprintf(ret->status, sizeof(ret->status), "%s",
	         sms_report_status(sms->DeliveryStatus, &ret->delivered, &ret->permanent));
	/* libgammu: DateTime is the SMS centre's timestamp, SMSCTime the discharge time. */
	ret->smsc_time_usec = sms_time_usec(&sms->DateTime);
	ret->at_usec = sms_time_usec(&sms->SMSCTime);

	inbox_time_text(&sms->DateTime, scts, sizeof(scts));
	inbox_time_text(&sms->SMSCTime, dt, sizeof(dt));
	snprintf(num, sizeof(num), "%d/%d", ret->message_ref, sms->DeliveryStatus);
	sha256_init(&h);
	inbox_hash_field(&h, "report");
	inbox_hash_field(&h, ret->number);
	inbox_hash_field(&h, num);
	inbox_hash_field(&h, scts);
	inbox_hash_field(&h, dt);
	sha256_final_hex(&h, ret->key);
}

typedef struct InboxGroup {
	char from[64];
	InboxConcat concat;
	const GSM_SMSMessage *part[GSM_MAX_MULTI_SMS + 1]; /* by sequence number, 1-based */
	int present;
	size_t n_locations;
	InboxLocation locations[GSM_MAX_MULTI_SMS];
} InboxGroup;

/* Builds the SMS message of a group: text, key, time. */
static int inbox_build(const InboxGroup *g, InboxMessage *ret)
{
	_cleanup_free_ unsigned char *units = NULL;
	const GSM_SMSMessage *first = NULL;
	int total = g->concat.bits ? g->concat.total : 1;
	char when[64], ref[64];
	size_t n = 0;
	Sha256 h;

	units = malloc((size_t)total * (GSM_MAX_SMS_LENGTH + 1) * 2 + 2);
	if (!units)
		return -ENOMEM;
	for (int i = 1; i <= total; i++) {
		if (!g->part[i])
			continue;
		if (!first)
			first = g->part[i];
		n += inbox_part_units(g->part[i], units + 2 * n);
	}

	*ret = (InboxMessage){.complete = g->present == total, .parts = (unsigned)g->present};
	ret->text = sms_unicode_to_utf8(units, n);
	if (!ret->text)
		return -ENOMEM;
	memcpy(ret->from, g->from, sizeof(ret->from));
	ret->smsc_time_usec = sms_time_usec(&first->DateTime);
	ret->n_locations = g->n_locations;
	memcpy(ret->locations, g->locations, g->n_locations * sizeof(InboxLocation));

	inbox_time_text(&first->DateTime, when, sizeof(when));
	if (g->concat.bits)
		snprintf(ref, sizeof(ref), "%d:%d:%d", g->concat.bits, g->concat.ref,
		         g->concat.total);
	else
		ref[0] = 0;
	sha256_init(&h);
	inbox_hash_field(&h, "sms");
	inbox_hash_field(&h, ret->from);
	inbox_hash_field(&h, when);
	inbox_hash_field(&h, ref);
	inbox_hash_field(&h, ret->text);
	sha256_final_hex(&h, ret->key);
	return 0;
}

static void inbox_group_id(const InboxGroup *g, char *ret, size_t size)
{
	snprintf(ret, size, "%s|%d|%d|%d", g->from, g->concat.bits, g->concat.ref, g->concat.total);
}

/* How long an incomplete set has been waiting. */
static uint64_t inbox_group_age(Inbox *ib, const InboxGroup *g, uint64_t now_realtime,
                                uint64_t now_monotonic)
{
	uint64_t oldest = 0;
	char id[sizeof(ib->seen[0].id)];
	size_t victim = 0;

	for (int i = 1; i <= g->concat.total; i++) {
		uint64_t t = g->part[i] ? sms_time_usec(&g->part[i]->DateTime) : 0;

		if (t && (!oldest || t < oldest))
			oldest = t;
	}
	/* A modem with its clock at 2000-01-01 would make every set look ancient. */
	if (oldest && oldest <= now_realtime + 24ULL * 3600 * USEC_PER_SEC &&
	    oldest >= now_realtime - 30ULL * 24 * 3600 * USEC_PER_SEC)
		return now_realtime > oldest ? now_realtime - oldest : 0;

	inbox_group_id(g, id, sizeof(id));
	for (size_t i = 0; i < ib->n_seen; i++) {
		if (streq(ib->seen[i].id, id))
			return now_monotonic - ib->seen[i].first_usec;
		if (ib->seen[i].first_usec < ib->seen[victim].first_usec)
			victim = i;
	}
	if (ib->n_seen < INBOX_SEEN_MAX)
		victim = ib->n_seen++;
	memcpy(ib->seen[victim].id, id, sizeof(id));
	ib->seen[victim].first_usec = now_monotonic;
	return 0;
}

static void inbox_forget_seen(Inbox *ib, const InboxGroup *g)
{
	char id[sizeof(ib->seen[0].id)];

	inbox_group_id(g, id, sizeof(id));
	for (size_t i = 0; i < ib->n_seen; i++)
		if (streq(ib->seen[i].id, id)) {
			ib->seen[i] = ib->seen[--ib->n_seen];
			return;
		}
}

int inbox_assemble(Inbox *ib, const GSM_SMSMessage *parts, size_t n_parts, uint64_t now_realtime,
                   uint64_t now_monotonic, bool tight, InboxMessage **ret, size_t *ret_n)
{
	_cleanup_free_ InboxGroup *groups = NULL;
	InboxMessage *msgs = NULL;
	size_t n_groups = 0, n_msgs = 0;
	int r = 0;

	if (n_parts == 0) {
		*ret = NULL;
		*ret_n = 0;
		return 0;
	}
	groups = calloc(n_parts, sizeof(InboxGroup));
	msgs = calloc(n_parts, sizeof(InboxMessage));
	if (!groups || !msgs) {
		free(msgs);
		return -ENOMEM;
	}

	for (size_t i = 0; i < n_parts; i++) {
		const GSM_SMSMessage *sms = &parts[i];
		InboxGroup *g = NULL;
		InboxConcat c;
		char from[64];

		if (sms->PDU == SMS_Status_Report) {
			inbox_report_from_sms(sms, &msgs[n_msgs]);
			msgs[n_msgs].n_locations = 1;
			inbox_location(sms, &msgs[n_msgs].locations[0]);
			n_msgs++;
			continue;
		}
		if (sms->PDU != SMS_Deliver)
			continue; /* a draft or a sent message in the outbox folders: not ours */

		sms_unicode_to_utf8_buf(sms->Number, GSM_MAX_NUMBER_LENGTH, from, sizeof(from));
		c = inbox_concat(sms);
		if (c.bits)
			for (size_t j = 0; j < n_groups; j++)
				if (groups[j].concat.bits == c.bits &&
				    groups[j].concat.ref == c.ref &&
				    groups[j].concat.total == c.total &&
				    streq(groups[j].from, from)) {
					g = &groups[j];
					break;
				}
		if (!g) {
			g = &groups[n_groups++];
			memcpy(g->from, from, sizeof(from));
			g->concat = c;
		}
		if (!c.bits)
			c.seq = 1;
		if (!g->part[c.seq]) {
			g->part[c.seq] = sms;
			g->present++;
		}
		/* A part stored twice is deleted with the rest. */
		if (g->n_locations < ELEMENTSOF(g->locations))
			inbox_location(sms, &g->locations[g->n_locations++]);
	}

	for (size_t j = 0; j < n_groups; j++) {
		InboxGroup *g = &groups[j];

		if (g->concat.bits && g->present < g->concat.total && !tight &&
		    inbox_group_age(ib, g, now_realtime, now_monotonic) < INBOX_INCOMPLETE_MAX_USEC)
			continue;
		if (g->concat.bits)
			inbox_forget_seen(ib, g);
		r = inbox_build(g, &msgs[n_msgs]);
		if (r < 0)
			break;
		n_msgs++;
	}
	if (r < 0) {
		inbox_messages_free(msgs, n_msgs);
		return r;
	}
	*ret = msgs;
	*ret_n = n_msgs;
	return 0;
}

void inbox_messages_free(InboxMessage *msgs, size_t n)
{
	if (!msgs)
		return;
	for (size_t i = 0; i < n; i++)
		free(msgs[i].text);
	free(msgs);
}

/* ---- bookkeeping ---- */

void inbox_new_connection(Inbox *ib)
{
	ib->connection++;
}

static bool inbox_is_stored(const Inbox *ib, const char *key)
{
	for (size_t i = 0; i < ib->n_stored; i++)
		if (streq(ib->stored[i], key))
			return true;
	return false;
}

InboxVerdict inbox_classify(Inbox *ib, const char *key)
{
	if (inbox_is_stored(ib, key))
		return INBOX_STORED;
	for (size_t i = 0; i < ib->n_pending; i++)
		if (ib->pending[i].connection == ib->connection && streq(ib->pending[i].key, key))
			return INBOX_REPORTED;
	return INBOX_NEW;
}

static void inbox_remove(Inbox *ib, size_t i)
{
	ib->pending[i] = ib->pending[--ib->n_pending];
}

int inbox_pending_add(Inbox *ib, uint64_t token, const InboxMessage *msg)
{
	InboxPending *p;

	if (ib->n_pending >= INBOX_PENDING_MAX) {
		/* Make room by forgetting a report of an older connection: its message will be
		 * reported again, which the daemon dedupes. */
		size_t i;

		for (i = 0; i < ib->n_pending; i++)
			if (ib->pending[i].connection != ib->connection)
				break;
		if (i == ib->n_pending)
			return -ENOBUFS;
		inbox_remove(ib, i);
	}
	p = &ib->pending[ib->n_pending++];
	p->token = token;
	memcpy(p->key, msg->key, sizeof(p->key));
	p->connection = ib->connection;
	p->n_locations = msg->n_locations;
	memcpy(p->locations, msg->locations, msg->n_locations * sizeof(InboxLocation));
	return 0;
}

void inbox_pending_drop(Inbox *ib, uint64_t token)
{
	for (size_t i = 0; i < ib->n_pending; i++)
		if (ib->pending[i].token == token) {
			inbox_remove(ib, i);
			return;
		}
}

static void inbox_stored_remove(Inbox *ib, size_t i)
{
	memmove(ib->stored[i], ib->stored[i + 1], (ib->n_stored - i - 1) * sizeof(ib->stored[0]));
	ib->n_stored--;
}

void inbox_mark_stored(Inbox *ib, const char *key)
{
	if (inbox_is_stored(ib, key))
		return;
	if (ib->n_stored == INBOX_STORED_MAX)
		inbox_stored_remove(ib,
		                    0); /* that one will be reported again: the daemon dedupes */
	memcpy(ib->stored[ib->n_stored++], key, MODEM_KEY_LEN + 1);
}

int inbox_confirm(Inbox *ib, uint64_t token, InboxLocation *ret, size_t *ret_n,
                  char ret_key[static MODEM_KEY_LEN + 1])
{
	for (size_t i = 0; i < ib->n_pending; i++) {
		InboxPending *p = &ib->pending[i];

		if (p->token != token)
			continue;
		if (p->connection != ib->connection) {
			/* Its slots were read on an earlier connection; delete it when seen again.
			 */
			inbox_mark_stored(ib, p->key);
			inbox_remove(ib, i);
			return 0;
		}
		memcpy(ret, p->locations, p->n_locations * sizeof(InboxLocation));
		*ret_n = p->n_locations;
		memcpy(ret_key, p->key, MODEM_KEY_LEN + 1);
		inbox_remove(ib, i);
		return 1;
	}
	return 0;
}

void inbox_deleted(Inbox *ib, const char *key)
{
	for (size_t i = 0; i < ib->n_pending;)
		if (streq(ib->pending[i].key, key))
			inbox_remove(ib, i);
		else
			i++;
	for (size_t i = 0; i < ib->n_stored; i++)
		if (streq(ib->stored[i], key)) {
			inbox_stored_remove(ib, i);
			return;
		}
}
