/* store: the node's durable replica of the gateway state, in SQLite.
 *
 * Every write happens inside store_begin()/store_commit(); the gateway applies one replicated
 * payload (many changes) per transaction, which is the group commit. The database runs in WAL
 * mode with synchronous=FULL, so store_commit() returning 0 means the transaction is fsync'd:
 * only then may an alert be answered "queued".
 *
 * The write functions are the state machine's transitions and are idempotent and monotonic
 * (a final state is never left, "sent" beats "failed"/"expired"), so a change applied twice, or
 * histories merged, end in the same state. Timestamps are realtime microseconds taken from the
 * replicated changes, never read here.
 *
 * Threads: main thread only. Ownership: json_t results belong to the caller (json_decref). */
#pragma once

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct Store Store;

/* What a store function returns when it fails, by name: a caller must tell "not there" from
 * "the disk said no", and a lock from a full disk (retry later, or tell the client nothing was
 * stored). They are negative errno values, so strerror() and log_*_errno() still read them;
 * success is 0 or a count, as each function says. */
enum {
	STORE_NOT_FOUND = -ENOENT, /* no such alert (or delivery, ...) */
	STORE_INVALID = -EINVAL,   /* a malformed name, item or change: refused alike everywhere */
	STORE_LOCKED = -EBUSY,     /* another process holds the database's lock (a backup, ...) */
	STORE_FULL = -ENOSPC,      /* the disk, or the database's size limit, is full */
	STORE_READ_ONLY = -EROFS,  /* the database or its folder cannot be written */
	STORE_NO_MEMORY = -ENOMEM,
	STORE_IO = -EIO, /* any other failure of SQLite or the disk */
};

typedef enum DeliveryState {
	DELIVERY_QUEUED,
	DELIVERY_SENDING,
	DELIVERY_SENT,
	DELIVERY_FAILED,
	DELIVERY_EXPIRED,
	DELIVERY_DELIVERED, /* the SMS centre reported it delivered to the handset */
	DELIVERY_CANCELLED, /* its alert was resolved before it left */
	_DELIVERY_STATE_MAX,
} DeliveryState;

const char *store_delivery_state_to_string(DeliveryState s);
bool store_delivery_state_is_final(DeliveryState s);

/* What store_delivery_result() etc. changed; the gateway turns these into events. */
typedef struct DeliveryChange {
	DeliveryState old_state, new_state;
	uint64_t next_try_at;
} DeliveryChange;

typedef struct NewAlert {
	const char *id;
	const char *key;
	const char *text;
	const char *source; /* may be NULL */
	const char *node;
	bool critical;
	uint64_t accepted_at;
	uint64_t expires_at;
	const char *const *to;
	size_t n_to;
	const char *const *copy;
	size_t n_copy;
	uint64_t esc_next_at; /* escalates from step 0 with this deadline; 0: does not escalate */
	/* Flood bundling of non-critical deliveries (0: off): with `bundle_threshold` or more
	 * alerts for a number within `bundle_window` usec, the delivery is held for a summary. */
	unsigned bundle_threshold;
	uint64_t bundle_window;
} NewAlert;

typedef struct DueDelivery {
	char alert_id[33];
	char number[20];
	char *text; /* owned by the store until the next call */
	bool critical;
	unsigned attempts;
	char last_modem[33]; /* modem of the last failed attempt, "" if none */
	char last_node[33];  /* node of the last failed attempt, "" if none */
	bool ackable;        /* critical, to a recipient (not a copy), not acknowledged */
	bool bundle;         /* held for a flood summary: goes out with the others held */
} DueDelivery;

typedef struct QueueCounts {
	uint64_t queued, sending, sent, delivered, failed, expired;
	uint64_t resolved; /* alerts resolved (their own state), not deliveries */
	uint64_t silenced; /* alerts held back by a silence */
} QueueCounts;

typedef struct ModemCounters {
	uint64_t sent, failed;
	char last_error[160];
	uint64_t last_sent_at;
} ModemCounters;

int store_open(const char *state_dir, Store **ret);
Store *store_close(Store *s);

/* Quiet on failure: the caller logs it (once, where a stall begins) and retries. -EBUSY while
 * another process holds the database's lock (after a short busy timeout), -ENOSPC when the
 * disk is full. */
int store_begin(Store *s);
int store_commit(Store *s);
void store_rollback(Store *s);
/* Ends what store_begin() began: commits when r >= 0, else rolls back; the commit's result, or
 * r. */
int store_end(Store *s, int r);

/* Dedupe: 1 with ret_id filled when key was first accepted less than window_usec before at. */
int store_dedupe_find(Store *s, const char *key, uint64_t at, uint64_t window_usec,
                      char ret_id[static 33]);
/* -EINVAL when the id is not 32 hex digits or a recipient is empty (what a merge refuses). */
int store_alert_insert(Store *s, const NewAlert *a);
/* 1 if the alert exists, 0 if not. */
int store_alert_exists(Store *s, const char *id);
/* Alerts not yet final (kept in memory, recounted on open and after a rollback). */
uint64_t store_open_alerts(const Store *s);

/* Transitions. Each returns 1 if the delivery changed (ret_change filled), 0 if not. */
int store_delivery_assign(Store *s, const char *alert_id, const char *number, const char *node,
                          const char *modem, uint64_t at, DeliveryChange *ret_change);
typedef struct SendResult {
	const char *node, *modem;
	uint64_t at;
	bool ok, permanent;
	int message_ref; /* TP-MR of the accepted SMS, -1 if unknown */
	const char *error;
	unsigned retry_min, retry_max; /* seconds */
	unsigned max_permanent_failures;
} SendResult;
/* A failed result for a delivery that is sending on another (node, modem) comes from an earlier
 * attempt: it is recorded, and the delivery stays with the modem that has it now (0). */
int store_delivery_result(Store *s, const char *alert_id, const char *number, const SendResult *res,
                          DeliveryChange *ret_change);
/* Expires every non-final delivery of the alert; returns how many changed. */
int store_alert_expire(Store *s, const char *alert_id, uint64_t at);
/* 1 when newly acknowledged, 0 when it already was, -ENOENT when unknown. */
int store_alert_ack(Store *s, const char *id, const char *by, const char *via, uint64_t at);
/* Resolves the alert (once only, like an acknowledgment): its escalation stops and its deliveries
 * not yet sent are cancelled, now and whenever one would be queued again. 1 when newly resolved
 * (*ret_cancelled: deliveries cancelled), 0 when it already was, -ENOENT when unknown. */
int store_alert_resolve(Store *s, const char *id, const char *by, const char *via, uint64_t at,
                        unsigned *ret_cancelled);
/* Whether a resolve can act on the alert: 1 when it exists and is neither resolved nor expired,
 * 0 when not, -ENOENT when unknown. */
int store_alert_resolvable(Store *s, const char *id);
/* The latest alert with this dedupe key that store_alert_resolvable() accepts: 1 with ret_id
 * set, 0 when there is none. */
int store_alert_resolvable_by_key(Store *s, const char *key, char ret_id[static 33]);
/* 1 with the time it was resolved in *ret_at when the alert is resolved, 0 when not or
 * unknown. */
int store_alert_resolved_at(Store *s, const char *id, uint64_t *ret_at);
/* 1 when the alert is resolved or silenced (over, or held back), 0 when not or unknown. */
int store_alert_is_over(Store *s, const char *id);
/* Calls cb for each number a delivery of the alert reached (sent or delivered): those an
 * all-clear goes to. */
int store_alert_paged(Store *s, const char *id, int (*cb)(const char *number, void *userdata),
                      void *userdata);

/* A status report from the SMS centre, matched to the attempt that carried message_ref. */
typedef struct DeliveryReport {
	const char *node, *modem;
	int message_ref;
	bool delivered;
	const char *status; /* words, e.g. "delivered" or "expired in the network" */
	uint64_t at;
} DeliveryReport;
/* 1 when a delivery became "delivered", 0 otherwise (the report is kept on the attempt);
 * ret_alert_id/ret_number name the delivery when one was found. */
int store_delivery_report(Store *s, const DeliveryReport *rep, char ret_alert_id[static 33],
                          char ret_number[static 20]);

typedef struct InboxMessage {
	const char *key; /* stable across re-reads of the same message: dedupes them */
	const char *node, *modem, *sender, *text;
	unsigned parts;
	uint64_t smsc_at, received_at;
	/* NULL for a received SMS. A quarantined one (never decoded): why; text is then its raw
	 * PDU in hex and sender empty. */
	const char *quarantine;
} InboxMessage;
/* 1 when stored, 0 when it was already there. */
int store_inbox_insert(Store *s, const InboxMessage *m);
int store_inbox_json(Store *s, size_t limit, json_t **ret);

/* The cluster's nodes as this node has seen them. last_seen only grows; the nodeid is the one
 * seen last. */
int store_node_seen(Store *s, const char *name, uint32_t nodeid, uint64_t at);
typedef struct StoreNode {
	const char *name;
	uint32_t nodeid;
	uint64_t last_seen;
	uint64_t store_id; /* the identity of its store when it last said hello; 0: unknown */
	uint64_t since;    /* the first revision of this store it may lack (store_rev()) */
} StoreNode;
/* In name order; the callback returns <0 to stop (that value is returned). */
int store_nodes(Store *s, int (*cb)(const StoreNode *node, void *userdata), void *userdata);
/* Records what node `name` holds of this store: its store's identity, and the first revision
 * of this store that it may not have. */
int store_node_rejoin(Store *s, const char *name, uint64_t store_id, uint64_t since);

/* Revisions, for a rejoin that sends only what the other node lacks. Every change to an alert
 * (its row, deliveries, attempts, calls, history) or a dedupe row is stamped with the current
 * revision, a counter of this store's own (never replicated) that only grows, across restarts
 * too; store_rev_next() moves it on (the gateway does, once a second). store_id() is this
 * store's identity, made when the file was: a node back with another store (a new disk) has
 * nothing. */
uint64_t store_rev(const Store *s);
void store_rev_next(Store *s);
uint64_t store_id(const Store *s);

/* Rejoin: each export fills one payload with items after a cursor, in cursor order (alerts and
 * dedupe rows: only those changed at revision `since` or later; 0 for all), adding items
 * while the compact JSON array of them stays within max_bytes (one item always, however large).
 * It returns the number of items (0 when there are no more); *ret_items (an array, the
 * caller's) and the cursor for the next call are set on success, the cursor to the last item's
 * (or to the one passed in when there was none). ret_last_id may be the after_id buffer itself.
 *
 * An alert item holds everything known about the alert, timestamps as integer microseconds:
 * {"id", "key", "text", "prio", "src", "node", "acc", "exp", "fin", "ack_by", "ack_via",
 *  "ack_at", "dl": [{"to", "kind", "seq", "state", "next", "node", "modem", "pf", "acc",
 *  "prio"}], "att": [{"to", "node", "modem", "at", "result", "error", "ref", "report"}],
 *  "calls": [{"to", "node", "modem", "at", "outcome", "dur", "error", "dtmf"}]}
 * with null for what is not set. A dedupe item is {"key", "alert_id", "first_at"}; an inbox item
 * {"key", "node", "modem", "sender", "text", "parts", "smsc_at", "received_at", "quarantine"}
 * ("quarantine" may be absent: a peer before schema 6 sends none). */
int store_export_alerts(Store *s, const char *after_id, uint64_t since, size_t max_bytes,
                        json_t **ret_items, char ret_last_id[static 33]);
/* *ret_last_key is malloc'd: the caller frees it. */
int store_export_dedupe(Store *s, const char *after_key, uint64_t since, size_t max_bytes,
                        json_t **ret_items, char **ret_last_key);
int store_export_inbox(Store *s, const char *after_key, size_t max_bytes, json_t **ret_items,
                       char **ret_last_key);

/* Merges one exported item, inside store_begin()/store_commit(). Each is a join: the same items
 * applied in any order, once or more, leave the same rows. 1 when something changed, 0 when
 * not, -EINVAL for a malformed item (nothing is written then). */
int store_merge_alert(Store *s, json_t *item);
/* The same key on both sides keeps the row with the smaller (first_at, alert_id). */
int store_merge_dedupe(Store *s, json_t *item);
int store_merge_inbox(Store *s, json_t *item);

/* A voice call made for an alert's recipient (or the contact center). */
typedef struct CallRecord {
	const char *alert_id, *number, *node, *modem;
	uint64_t at; /* when the call started */
	const char *outcome;
	uint64_t duration_sec;
	const char *error;
	bool dtmf_ack;
} CallRecord;
/* 1 when recorded, 0 when it already was; -EINVAL without a number. */
int store_call_insert(Store *s, const CallRecord *c);
/* Calls made so far, and the outcome of the last ("" if none). */
int store_voice_summary(Store *s, uint64_t *ret_calls, char ret_last[static 16]);

#define VOICE_MAX_MODEMS 16
/* What decides whether a delivery's recipient should be called. Set ret->node (this node) before
 * the call: failed_modems are this node's modems whose attempts for it ended in error. */
typedef struct VoiceCandidate {
	const char *node;
	bool critical, acknowledged, copy; /* acknowledged: or resolved, either way no call */
	DeliveryState state;
	unsigned calls;        /* to this number about this alert */
	bool reached;          /* one of them reached a human: answered (a key, where keys count) */
	uint64_t last_call_at; /* the start of the latest of them; 0: none */
	char failed_modems[VOICE_MAX_MODEMS][33];
	size_t n_failed_modems;
} VoiceCandidate;
int store_voice_candidate(Store *s, const char *alert_id, const char *number, VoiceCandidate *ret);
/* The open critical alerts, unacknowledged and unresolved, whose delivery to number is not
 * sent yet (a call to that number covers them all), the oldest first; at most limit. */
int store_voice_pending(Store *s, const char *number, size_t limit,
                        int (*cb)(const char *alert_id, void *userdata), void *userdata);
/* Critical, unacknowledged deliveries to a recipient that are not final yet. */
int store_open_critical(Store *s,
                        int (*cb)(const char *alert_id, const char *number, void *userdata),
                        void *userdata);

/* Queries for dispatch. The callback returns <0 to stop. */
int store_due_deliveries(Store *s, uint64_t now, size_t limit,
                         int (*cb)(const DueDelivery *d, void *userdata), void *userdata);
/* Earliest next_try_at of a queued delivery; 0 when none. */
int store_next_due(Store *s, uint64_t *ret);
int store_next_expiry(Store *s, uint64_t *ret);
int store_expired_alerts(Store *s, uint64_t now, size_t limit,
                         int (*cb)(const char *id, void *userdata), void *userdata);
/* Deliveries left "sending" by node (a restart interrupted them). */
int store_sending_on_node(Store *s, const char *node,
                          int (*cb)(const char *alert_id, const char *number, const char *modem,
                                    void *userdata),
                          void *userdata);
/* One bounded step of the retention purge, in its own transaction: at most `max` alerts that
 * became final before `before`, with their deliveries, attempts, calls, history and dedupe key,
 * and at most `max` received messages older than that. Returns how many alerts; *ret_more (may
 * be NULL) is true when another step may find more. */
int store_purge(Store *s, uint64_t before, unsigned max, bool *ret_more);

/* ---- on-call: escalation, acknowledgment by SMS, replies, flood bundles ---- */

/* Recomputes an alert's summary state (and whether it is final) from its deliveries. */
int store_alert_refresh(Store *s, const char *alert_id, uint64_t at);
/* One line of the alert's story beside attempts and calls (idempotent). */
int store_history_add(Store *s, const char *alert_id, uint64_t at, const char *what,
                      const char *node, const char *detail);

/* Escalating alerts whose step deadline is at or before now: (id, step reached). */
int store_escalations_due(Store *s, uint64_t now, size_t limit,
                          int (*cb)(const char *alert_id, unsigned step, void *userdata),
                          void *userdata);
/* The earliest step deadline after `after`; 0 when none. */
int store_next_escalation(Store *s, uint64_t after, uint64_t *ret);
/* Moves an escalating alert from step-1 to step, paging `number` (a new delivery, or the
 * number's delivery again in a new round when it was final); the next deadline is next_at,
 * 0 for none (the last step of the chain).
 * 1 when it moved (ret_paged: a delivery was queued), 0 when it had moved or stopped already;
 * -EINVAL without a number. */
/* The page of the alert's running step to `number` (a delivery of that step's round) has left:
 * the step's deadline becomes `deadline` unless it is earlier already. 1 when it moved. */
int store_escalation_page_left(Store *s, const char *alert_id, const char *number,
                               uint64_t deadline);
/* The step an alert's escalation has reached (0: the first) and whether it still runs: 1, or 0
 * when the alert does not escalate; -ENOENT when unknown. */
int store_alert_escalation(Store *s, const char *alert_id, unsigned *ret_step, bool *ret_active);
int store_escalate(Store *s, const char *alert_id, unsigned step, const char *number, uint64_t at,
                   uint64_t next_at, const char *node, const char *detail, bool *ret_paged);

/* Critical alerts that an SMS reply may acknowledge: not expired at `at`, with one entry per
 * recipient (copies excluded). acked: acknowledged already. */
typedef struct AckableAlert {
	const char *alert_id, *number, *text;
	bool acked;
} AckableAlert;
int store_ackable(Store *s, uint64_t at, int (*cb)(const AckableAlert *a, void *userdata),
                  void *userdata);
/* How many answers to messages that did nothing (alerts from the gateway itself, source
 * "gatewayd", key "refusal:...") went to number after `since`. */
int store_refusals_since(Store *s, const char *number, uint64_t since, uint64_t *ret);

/* What one message to a number carries when it goes out for several alerts: the deliveries to
 * number held for it (flood bundling, [limits]) and those due at `now`, critical ones first,
 * then the oldest; at most limit. ret_total counts all of them. */
typedef struct BundleMember {
	const char *alert_id, *text;
	bool critical;
	bool ackable; /* critical, to a recipient (not a copy), not acknowledged */
	uint64_t next_try_at;
} BundleMember;
int store_bundle(Store *s, const char *number, uint64_t now, size_t limit,
                 int (*cb)(const BundleMember *m, void *userdata), void *userdata,
                 uint64_t *ret_total);

/* ---- per-person limits ([limits]) ---- */

/* The SMS sent to number after `since`, each message once (a grouped one is an attempt per alert
 * it carried, all with the same node, modem and time). When `count` or more, *ret_room_at is
 * when the oldest of them that keeps the number at its limit leaves the window of `window`. */
int store_limit_sent(Store *s, const char *number, uint64_t since, unsigned count, uint64_t window,
                     unsigned *ret_sent, uint64_t *ret_room_at);
/* The deliveries to number on their way now on nodes other than `node`. */
int store_limit_sending(Store *s, const char *number, const char *node, unsigned *ret);
/* The voice calls to number that started after `since`, each call once (one covering several
 * alerts is a call record per alert, with the same node and time); *ret_room_at as above. */
int store_limit_calls(Store *s, const char *number, uint64_t since, unsigned count, uint64_t window,
                      unsigned *ret_calls, uint64_t *ret_room_at);
/* The delivery reports of the last `limit` SMS a modem sent at or before `before` (those old
 * enough that their report should be in): how many were sent, how many got one, the newest
 * of those that did, and how many of the newest in a row got none (since when). */
typedef struct StoreModemReports {
	unsigned sent, reported, missing_in_a_row;
	uint64_t last_reported_at, missing_since;
} StoreModemReports;
int store_modem_reports(Store *s, const char *node, const char *modem, uint64_t before,
                        unsigned limit, StoreModemReports *ret);
/* The acceptance of the oldest delivery still queued and not held on purpose (a flood bundle,
 * [limits]): what keeps failing or finds no modem. 0 when none. */
int store_oldest_waiting(Store *s, uint64_t *ret_accepted_at);
/* The queued delivery of alert_id to number waits until `until` and then goes out with the
 * others held for that number (idempotent; never earlier than it already waits). */
int store_delivery_hold(Store *s, const char *alert_id, const char *number, uint64_t until);

/* Views for the protocol. */
int store_alert_json(Store *s, const char *id, bool with_attempts, json_t **ret);
int store_queue_json(Store *s, size_t limit, json_t **ret);
int store_counts(Store *s, QueueCounts *ret);
int store_modem_counters(Store *s, const char *node, const char *modem, ModemCounters *ret);

/* On-call overrides (store-oncall.c): "CONTACT is on duty for ROLE until UNTIL", at most one row
 * per role. Clearing writes a row without a contact, so that a clear is replicated and merged
 * like a set. Of two writes to the same role the one with the greater (set_at, contact, until,
 * set_by) stays, a cleared contact sorting first: replaying or merging them in any order, once
 * or more, leaves the same row. */
#define OVERRIDE_NAME_MAX 64

typedef struct Override {
	char role[OVERRIDE_NAME_MAX + 1];
	char contact[OVERRIDE_NAME_MAX + 1]; /* "" when cleared */
	uint64_t until;                      /* realtime usec; 0 when cleared */
	uint64_t set_at;                     /* realtime usec, from the change */
	char set_by[OVERRIDE_NAME_MAX + 1];  /* "" when not said */
} Override;

/* Sets (contact non-NULL) or clears (contact NULL) the override of role, inside
 * store_begin()/store_commit(). 1 when the row changed, 0 when the stored one wins, -EINVAL for
 * an empty role or a name longer than OVERRIDE_NAME_MAX. */
int store_override_set(Store *s, const char *role, const char *contact, uint64_t until,
                       uint64_t set_at, const char *set_by);
/* 1 with *ret filled when role has an override in force at `at` (a contact, and until > at),
 * 0 when not. */
int store_override_get(Store *s, const char *role, uint64_t at, Override *ret);
/* Every row, cleared and expired ones too, in role order; cb returns <0 to stop (that value is
 * returned). */
int store_overrides(Store *s, int (*cb)(const Override *o, void *userdata), void *userdata);
/* Rejoin, as store_export_dedupe(): items {"role", "contact", "until", "set_at", "set_by"}
 * (contact and set_by may be null), in role order after after_role. */
int store_export_overrides(Store *s, const char *after_role, size_t max_bytes, json_t **ret_items,
                           char **ret_last_role);
/* Merges one exported item through store_override_set(): 1 changed, 0 not, -EINVAL malformed. */
int store_merge_override(Store *s, json_t *item);

/* Silences (store-silence.c): an alert accepted while one matches it is recorded, marked with
 * the silence's id, and not sent. */
#define SILENCE_VALUE_MAX 256
#define SILENCE_NAME_MAX  64
typedef struct Silence {
	char id[33];
	char field[16]; /* what it matches: "key_prefix", "source" or "text_contains" */
	char value[SILENCE_VALUE_MAX + 1];
	bool except_critical; /* critical alerts still go out */
	uint64_t created_at, until;
	char by[SILENCE_NAME_MAX + 1];
	char reason[SILENCE_VALUE_MAX + 1];
	char node[SILENCE_NAME_MAX + 1];
	uint64_t removed_at; /* 0: not removed */
	char removed_by[SILENCE_NAME_MAX + 1];
} Silence;
bool store_silence_field_valid(const char *field);
/* Stores a silence, or merges one from a peer (the earlier removal wins): 1 when the row
 * changed, 0 when not, STORE_INVALID when malformed. */
int store_silence_put(Store *s, const Silence *si);
/* Ends a silence at `at`: 1 when it was in force until then, 0 when not (ended or removed). */
int store_silence_remove(Store *s, const char *id, uint64_t at, const char *by);
/* The silences in force at `at`, oldest first (at most 1000); cb returns <0 to stop. */
int store_silences_at(Store *s, uint64_t at, int (*cb)(const Silence *si, void *userdata),
                      void *userdata);
/* 0 with *ret filled, or STORE_NOT_FOUND. */
int store_silence_get(Store *s, const char *id, Silence *ret);
/* {"silence", "match": {FIELD: VALUE}, "except_critical", "created_at", "until", "by",
 * "reason", "node"}, and "removed" (null or {"at", "by"}) with with_removal. */
json_t *store_silence_json(const Silence *si, bool with_removal);
/* Marks the alert silenced by silence_id (the smaller id wins): its escalation stops and its
 * deliveries not yet sent are cancelled. 1 when it changed. */
int store_alert_silence(Store *s, const char *alert_id, const char *silence_id, uint64_t at);
/* Rejoin, as store_export_overrides(): every silence, in id order after after_id. */
int store_export_silences(Store *s, const char *after_id, size_t max_bytes, json_t **ret_items,
                          char **ret_last_id);
int store_merge_silence(Store *s, json_t *item);

/* Dead-man monitors ([heartbeat NAME], store-heartbeats.c): the last ping and the last deadline
 * that fired an alert, realtime usec, 0 for none. Both only grow: 1 when one grew. */
int store_heartbeat_put(Store *s, const char *name, uint64_t last_at, uint64_t missed_at);
/* 0 with both 0 for a monitor never pinged nor fired. */
int store_heartbeat_get(Store *s, const char *name, uint64_t *ret_last_at, uint64_t *ret_missed_at);
int store_export_heartbeats(Store *s, const char *after_name, size_t max_bytes, json_t **ret_items,
                            char **ret_last_name);
int store_merge_heartbeat(Store *s, json_t *item);

/* Figures for the metrics file (store-metrics.c), over the history the store still holds. */
typedef struct StoreMetrics {
	uint64_t oldest_open_at; /* accepted_at of the oldest non-final alert; 0 when none */
	uint64_t escalations;    /* escalation steps taken */
	uint64_t acknowledged;   /* alerts acknowledged */
} StoreMetrics;

int store_metrics(Store *s, StoreMetrics *ret);

/* store-check.c. A digest (32 hex) of the open alerts and their deliveries as replicated, and
 * how many alerts are open: equal on two nodes that applied the same changes. */
int store_digest(Store *s, char ret[static 33], uint64_t *ret_open);
/* The smallest real write, committed: 0 when the database takes writes again, else -errno
 * (-EBUSY while another process holds its lock, -ENOSPC when the disk is full). */
int store_probe(Store *s, uint64_t now);
