/* gateway-internal: what the rooms of the gateway share; private to gatewayd/.
 *
 * The Gateway is one object, in files by concern: gateway.c (life cycle and wiring),
 * gateway-publish.c (the outbox, its payloads, the answers once committed), gateway-apply.c
 * (payloads applied in agreed order, a failed commit retried), gateway-alerts.c (the changes of
 * an alert's life), gateway-dispatch.c (jobs, and due deliveries handed to modems),
 * gateway-modems.c (this node's modem slots and their events), gateway-requests.c (the submit
 * socket's requests), gateway-cluster.c (the nodes, commit confirmations, the state exchange
 * after a join, takeover), gateway-check.c (digest checks of the replicas), gateway-escalation.c,
 * gateway-commands.c (an incident run by SMS),
 * gateway-voice.c (dialing out when every SMS path failed), gateway-selftest.c (test SMS between
 * the nodes' SIMs), gateway-oncall.c (who is on duty, and overrides), gateway-quarantine.c,
 * gateway-reload.c, gateway-metrics.c (the Prometheus text file) and gateway-hooks.c (commands
 * run when an alert is acknowledged). Each room's state is a struct declared with its functions
 * below; struct Gateway, at the end, holds what they all reach and the state of each. Everything
 * here runs on the main thread. */
#pragma once

#include "gateway.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "ackcode.h"
#include "admission.h"
#include "change.h"
#include "handlers.h"
#include "log.h"
#include "macro.h"
#include "message-ids.h"
#include "dialer.h"
#include "members.h"
#include "modem.h"
#include "replication.h"
#include "request.h"
#include "server.h"
#include "store.h"
#include "util.h"

#define PROTOCOL_VERSION                                                                           \
	4 /* 2: escalation, alert history, rounds and bundles; 3: resolve; 4: hold */
#define MODEM_INFLIGHT      1 /* one job per modem: nothing waits behind a send that may hang */
#define EXPIRE_BATCH        256
#define PURGE_INTERVAL_USEC (3600 * USEC_PER_SEC)
/* A step of the purge holds the loop for as long as it takes; its size (finished alerts) is
 * halved when a step took longer than PURGE_STEP_USEC and doubled when it took under half. */
#define PURGE_STEP_USEC  (5 * USEC_PER_MSEC)
#define PURGE_STEP_MIN   8
#define PURGE_STEP_FIRST 64
#define PURGE_STEP_MAX   1024
#define PURGE_PAUSE_USEC (5 * USEC_PER_MSEC) /* between two steps, at least the last one's time */
#define SOLO_NODEID      1
/* Rejoin exchange: the state sent per payload ([cluster] exchange_timeout: how long it waits
 * without progress). */
#define SYNC_CHUNK_BYTES (256u * 1024u)
/* Once a second the store's revision moves on. */
#define REV_TICK_USEC USEC_PER_SEC
/* Clocks further apart than this are reported: deadlines come from the replicated timestamps. */
#define CLOCK_SKEW_WARN_USEC (2 * USEC_PER_SEC)
/* A commit that fails is retried with a backoff from STALL_RETRY_MIN to _MAX; after
 * STALL_GIVE_UP the clients waiting are answered storage_error and a clustered node leaves its
 * group until the store works. STALL_BYTES_MAX bounds what waits in memory meanwhile. */
#define STALL_RETRY_MIN_USEC (50 * USEC_PER_MSEC)
#define STALL_RETRY_MAX_USEC (2 * USEC_PER_SEC)
#define STALL_GIVE_UP_USEC   (10 * USEC_PER_SEC)
#define STALL_BYTES_MAX      (64u * 1024u * 1024u)
#define STALL_APPLY_PER_TURN 64
/* What the changes of one payload may take, encoded: the replication layer's limit less room
 * for the envelope ({"v":..,"seq":..,"node":..,"confirm":..,"changes":[...]}). */
#define PAYLOAD_CHANGES_MAX (REPLICATION_PAYLOAD_MAX - 256u)
/* Changes held while a state exchange runs; beyond it new alerts are answered queue_full. */
#define OUTBOX_HELD_MAX 4096

DEFINE_TRIVIAL_CLEANUP_FUNC(Request, request_free)

typedef enum PendingKind {
	PENDING_SEND,
	PENDING_ACK,
	PENDING_RESOLVE,
	PENDING_OVERRIDE,
	PENDING_SILENCE,
	PENDING_UNSILENCE,
	PENDING_HEARTBEAT,
} PendingKind;

/* A client waiting for the commit of the change it caused. */
typedef struct Pending {
	ServerPeer peer;
	PendingKind kind;
	char id[ID_HEX_LEN + 1];
	/* filled while applying */
	bool duplicate;
	char first_id[ID_HEX_LEN + 1];
	char silence[ID_HEX_LEN + 1]; /* PENDING_SEND: the silence that held it back, or "" */
	/* PENDING_OVERRIDE: what the reply confirms */
	char role[CONFIG_NAME_MAX + 1];
	char contact[CONFIG_NAME_MAX + 1]; /* "" when cleared */
	uint64_t until;
} Pending;

/* The changes of one published payload that have clients waiting, by change index. Once
 * committed here it waits for the commit confirmations of the other members of the view. */
typedef struct PendingBatch {
	struct PendingBatch *next;
	uint64_t seq;
	uint32_t waiting[MEMBERS_MAX]; /* nodeids whose confirmation is missing */
	size_t n_waiting;
	size_t n;
	Pending *by_index[]; /* NULL where no one waits */
} PendingBatch;

typedef enum SyncStage {
	SYNC_HELLO, /* until every other member's hello (its store) has arrived */
	SYNC_ALERTS,
	SYNC_DEDUPE,
	SYNC_INBOX,
	SYNC_OVERRIDES,
	SYNC_SILENCES,
	SYNC_HEARTBEATS,
	SYNC_DONE,
} SyncStage;

/* A delivered payload waiting to be applied because the store could not commit (a lock held by
 * another process, a full disk): applied later in the same order, never skipped. */
typedef struct Stalled {
	struct Stalled *next;
	uint32_t from_nodeid;
	unsigned flags; /* REPLICATION_DELIVERY_* */
	uint64_t since; /* monotonic usec: delivered */
	bool answered;  /* its clients were told storage_error */
	size_t len;
	char data[];
} Stalled;

typedef struct Job {
	struct Job *next;
	uint64_t id;
	char alert_id[ID_HEX_LEN + 1];
	char number[20];
	char *text;
	size_t modem;
	unsigned attempts; /* before this one */
	bool assigned;     /* the assignment is committed and the modem has the job */
	/* A flood summary: the held deliveries to `number` it carries (alert_id is the first). */
	char (*bundle)[ID_HEX_LEN + 1];
	size_t n_bundle;
} Job;

/* An alert a voice call is about, and whose SMS failed (the callee, but for the contact
 * center). */
typedef struct VoiceAbout {
	char alert_id[ID_HEX_LEN + 1];
	char recipient[20];
} VoiceAbout;

/* A voice call to make: to the recipient whose SMS paths all failed, or to the contact center.
 * One call covers every alert that needs a call to its number while it waits ([limits]). */
typedef struct VoiceCall {
	struct VoiceCall *next;
	VoiceAbout *about; /* the first first */
	size_t n_about;
	char number[20]; /* whom to call */
	bool contact_center;
	unsigned attempt;
	uint64_t not_before; /* realtime usec */
} VoiceCall;

typedef struct ModemSlot {
	Modem *modem;
	const ModemConfig *config;
	ModemStatus status;
	sd_event_source *io;
	size_t inflight;
	char path_problem[224];    /* the last path self-test from this modem failed: why */
	char report_problem[160];  /* its delivery reports stopped coming: since when */
	StoreModemReports reports; /* as last looked at (modems_check_reports()) */
	uint64_t unusable_since;   /* monotonic usec: (re)started, or went from usable to not */
} ModemSlot;

/* A path self-test: a test SMS from one of our modems to the SIM of another node's modem. */
typedef struct SelfTest {
	struct SelfTest *next;
	char token[17];
	size_t modem; /* our slot */
	char to_node[MEMBER_NAME_MAX + 1], to_modem[MEMBER_NAME_MAX + 1], number[20];
	uint64_t job;      /* the send's job id, 0 before it started */
	uint64_t deadline; /* monotonic usec; 0 until sent */
	bool arrived;      /* came back before its send was reported: passed */
} SelfTest;

#define SELFTEST_PREFIX "gatewayd self-test "

/* gateway-publish.c: the outbox, its payloads, and the answers once they are committed */
typedef struct GatewayPublish {
	/* This turn's changes, published as one payload by the post source; by the same index,
	 * the client waiting for each (NULL where none waits). */
	json_t *outbox;
	Pending **pending;
	size_t pending_cap;
	uint64_t next_seq;
	PendingBatch *batches_head, *batches_tail; /* published, not committed here yet */
	PendingBatch *awaiting; /* committed here, waiting for the peers' confirmations */
	sd_event_source *flush;
	sd_event_source *flush_retry; /* changes that could not be published try again */
	json_t *events;               /* [[topic, object], ...]: collected while applying */
} GatewayPublish;

int publish_outbox_add(Gateway *g, json_t *change, Pending *pending);
void publish_event(Gateway *g, const char *topic, json_t *object);
void publish_events(Gateway *g);
void publish_answer_batch(Gateway *g, PendingBatch *batch, int commit_result);
int publish_start(Gateway *g);
void publish_free(Gateway *g);

/* gateway-apply.c: payloads applied in agreed order, a failed commit retried, never skipped */
typedef struct GatewayApply {
	/* Payloads the store could not commit yet, in delivery order. While any waits, nothing
	 * else is applied and nobody dispatches; past STALL_GIVE_UP_USEC its clients are answered
	 * storage_error and, in a cluster, this node leaves the group (held) until its store takes
	 * writes again, then rejoins through the state exchange. */
	Stalled *stalled_head, *stalled_tail;
	size_t n_stalled, stalled_bytes;
	uint64_t stall_since; /* monotonic usec of the first failure; 0 when none */
	int stall_error;
	unsigned stall_tries;
	bool held;
	sd_event_source *stall_timer;
	uint64_t changes_skipped; /* malformed or of an unknown kind, in committed payloads */
} GatewayApply;

const char *jstr(json_t *o, const char *k);
uint64_t ju64(json_t *o, const char *k);
int apply_payload(Gateway *g, uint32_t from_nodeid, const void *data, size_t len);
void apply_on_deliver(void *userdata, uint32_t from_nodeid, const void *data, size_t len);
/* True while delivered payloads wait for the store, or this node is out of its group for it. */
bool stall_active(const Gateway *g);
/* Answers storage_error when the store has been failing for long (true), else false: the
 * request may wait behind the stall like everything else. */
bool stall_refuses(Gateway *g, const ServerPeer *peer);
/* Why the store cannot commit, for people; NULL when it can. */
const char *stall_reason(const Gateway *g);
json_t *stall_json(Gateway *g);
int apply_start(Gateway *g);
void apply_stop(Gateway *g);

/* gateway-alerts.c: the handlers of change_kinds[] (change.h) for an alert's life */
int apply_submit(Gateway *g, json_t *c, const ChangeOrigin *origin);
int apply_assign(Gateway *g, json_t *c, const ChangeOrigin *origin);
int apply_result(Gateway *g, json_t *c, const ChangeOrigin *origin);
int apply_expire(Gateway *g, json_t *c, const ChangeOrigin *origin);
int apply_ack(Gateway *g, json_t *c, const ChangeOrigin *origin);
int apply_resolve(Gateway *g, json_t *c, const ChangeOrigin *origin);
int apply_sms_in(Gateway *g, json_t *c, const ChangeOrigin *origin);
int apply_report(Gateway *g, json_t *c, const ChangeOrigin *origin);

/* gateway-dispatch.c: the jobs in flight, and due deliveries handed to the modems */
typedef struct GatewayDispatch {
	Job *jobs;
	uint64_t next_job;
	bool wanted; /* set while applying: dispatch once committed */
	sd_event_source *defer;
	sd_event_source *timer; /* realtime: the earliest retry, expiry or escalation step */
	sd_event_source *purge_timer;
	unsigned purged;     /* by the steps of the purge under way */
	unsigned purge_step; /* alerts per step, fitted to PURGE_STEP_USEC; 0 before the first */
	/* The holds this node published lately (gateway-limits.c): not published again for every
	 * commit before they apply. */
	struct {
		char alert_id[ID_HEX_LEN + 1];
		char number[20];
		uint64_t until;
	} held[64];
	size_t held_next;
} GatewayDispatch;

Job *job_find(Gateway *g, uint64_t id);
Job *job_find_delivery(Gateway *g, const char *alert_id, const char *number);
/* Leaves a delivery out of a summary job (handled meanwhile); false when none is left. */
bool job_uncover(Job *j, const char *alert_id);
void job_remove(Gateway *g, Job *job);
/* One result change per delivery the job carried (one, or each of a summary's); takes result. */
int job_results(Gateway *g, Job *job, json_t *result);
/* After a commit: hands the jobs whose assignment was committed to their modems. */
void dispatch_start_assigned(Gateway *g);
/* After work was held back: dispatch, and re-arm the timer of retries and expiries. */
void gateway_kick(Gateway *g);
/* One realtime timer for the earliest retry or expiry; re-armed after every commit. */
void dispatch_schedule(Gateway *g);
int dispatch_start(Gateway *g);
void dispatch_free(Gateway *g);

/* gateway-modems.c: this node's modem slots and their events */
bool modems_usable(const ModemSlot *slot);
/* Usable, but with a problem: weak signal or roaming, a failing path self-test, delivery
 * reports that stopped. Dispatch prefers the others. */
bool modems_degraded(const ModemSlot *slot);
/* Looks at each modem's delivery reports ([modem] delivery_reports): one whose last
 * MODEM_REPORTS_MISSING SMS, each sent [health] report_wait ago or more, got none is degraded
 * (the SIM's credit, or the operator blocking it). */
#define MODEM_REPORTS_MISSING 5
void modems_check_reports(Gateway *g);
/* Until when (realtime usec) a modem that is not usable counts as still connecting, within
 * [voice] connect_grace of its (re)start or of losing its usability: not a failed SMS path.
 * 0 when it does not (usable, lent to a call, or past the grace). */
uint64_t modems_connecting_until(Gateway *g, const ModemSlot *slot);
ModemSlot *modems_slot_by_name(Gateway *g, const char *name);
/* This node's modem may delete the message behind the change's token from its SIM, once the
 * change is committed. */
void modems_token_confirm_later(Gateway *g, json_t *c);
/* After a commit: the modems delete from their SIMs what is now stored. */
void modems_confirm_tokens(Gateway *g);
void modems_self_health_changed(Gateway *g);
int modems_slot_start(Gateway *g, size_t i);
/* This node's modems as status objects (also announced to the other nodes). */
json_t *modems_local_json(Gateway *g);
int modems_start(Gateway *g);
/* Stops the modems (a send in progress may finish) and turns their last events into changes. */
void modems_stop(Gateway *g);
void modems_free(Gateway *g);

/* gateway-requests.c: the requests of the submit socket */
void reply_err(Gateway *g, const ServerPeer *peer, const char *code, const char *detail);
/* Answers now: reply (taken; "ok": true added), or storage_error when it is NULL. */
void requests_reply_now(Gateway *g, const ServerPeer *peer, json_t *reply);
/* A client to answer once the change it caused is committed everywhere. */
Pending *requests_pending_new(const ServerPeer *peer, PendingKind kind, const char *id);
/* The reply to {"op": "status"}. */
json_t *requests_status_json(Gateway *g);
/* The "submit" change of a send request `req` accepted at `at` with this id and key: roles
 * resolved to the contacts on duty then. -EINVAL with err filled for an unknown role. */
int requests_submit_change(Gateway *g, Request *req, const char *id, const char *key, uint64_t at,
                           json_t **ret, RequestError *err);
/* Creates the admission control and the server, which delivers requests from now on. */
int requests_start(Gateway *g);
void requests_free(Gateway *g);

/* gateway-check.c: digest checks of the replicas, the sweep of orphaned sends */
typedef struct GatewayCheck {
	json_t *digests_due;  /* {check: [digest, open]}: computed while applying, to publish */
	json_t *digests_mine; /* {check: digest}: ours, for the others' to be compared with */
	bool resync_wanted;   /* a check we asked for differs: a state exchange after commit */
	uint64_t round;
	uint64_t resync_at;        /* monotonic usec of the last exchange a difference asked for */
	char digest_problem[192];  /* the last check differed: with whom, "" when it agreed */
	uint64_t digest_agreed_at; /* realtime usec of the last check that agreed */
	json_t *orphans; /* {"alert number": true}: sending here, no job, at the last sweep */
	sd_event_source *timer, *sweep_timer;
} GatewayCheck;

int apply_check(Gateway *g, json_t *c, const ChangeOrigin *origin);
int apply_digest(Gateway *g, json_t *c, const ChangeOrigin *origin);
int apply_resync(Gateway *g, json_t *c, const ChangeOrigin *origin);
/* After a commit: publishes the digests computed while applying, and a resync if wanted. */
void check_after_commit(Gateway *g);
/* Asks every node for its digest (this node, when it is the one that asks). */
void check_request(Gateway *g);
void check_json(Gateway *g, json_t *warnings, json_t *cluster);
int check_start(Gateway *g);
void check_stop(Gateway *g);

/* gateway-escalation.c: escalation, acknowledgment by SMS, replies */
typedef struct GatewayEscalation {
	json_t *published; /* {alert id: step}: escalations published, not applied yet */
} GatewayEscalation;

bool escalation_wanted(Gateway *g, const Request *req);
/* A step's timeout counts from when its page left (sent, or its voice call made), never from
 * acceptance: until then the step waits, and only this many step_timeouts after it began does
 * it escalate anyway (a page that never leaves must not hold the chain for ever). */
#define ESCALATION_BACKSTOP 3
/* The backstop deadline of step `step` (from 0), begun at `at`; 0 after the last step of the
 * last round ([escalation] repeat), when the chain stops. */
uint64_t escalation_next_at(Gateway *g, unsigned step, uint64_t at);
/* The page of the alert's current step to `number` left at `at` (`how`: "SMS", "voice call"):
 * its deadline becomes at + step_timeout unless it is earlier already, and the story says so.
 * 1 when the deadline moved, 0 when the page was no step's or the deadline stands. */
int escalation_page_left(Gateway *g, const char *alert_id, const char *number, uint64_t at,
                         const char *node, const char *how);
void escalation_run(Gateway *g);
/* The alert moves to its next step now (a callee pressed 2): publishes the "escalate" change;
 * nothing when it does not escalate or has no next step. */
void escalation_now(Gateway *g, const char *alert_id, uint64_t now);
/* The "escalate" change that moves the alert from step `step` (from 0) to the next, paging who
 * is on duty then for its role (with who and which role, each may be NULL); NULL when the chain
 * has no next step or nobody is on duty, or, with *ret_contact set, out of memory. */
json_t *escalation_next_change(Gateway *g, const char *alert_id, unsigned step, const char *node,
                               uint64_t at, const ContactConfig **ret_contact,
                               const RoleConfig **ret_role);
void escalation_forget(Gateway *g);
int apply_escalate(Gateway *g, json_t *c, const ChangeOrigin *origin);
/* With a voice line, what the keys of a call do, for the SMS of a critical alert; else "". */
const char *ack_instruction_call(const Gateway *g);
/* The text of an SMS of a critical alert: with the reply that acknowledges it. */
int ack_instruction(Gateway *g, const char *alert_id, const char *text, char **ret);
/* Adds to an alert's JSON what on-call knows: its escalation's step (from 1) and role, and for
 * a critical alert "ack_code", what its SMS asks to reply. */
void escalation_alert_oncall(Gateway *g, json_t *alert);
/* The all-clear to a number a resolved alert reached ("RESOLVED: <text>", unless [escalation]
 * notify_resolved is off): once per alert and number, whoever asks, and in the alert's story.
 * Its time is at least ALL_CLEAR_AFTER_USEC after the resolve's, so that the story (ordered by
 * time, then by name) tells the resolve first on every node. */
#define ALL_CLEAR_AFTER_USEC 1
int escalation_all_clear(Gateway *g, const char *alert_id, const char *number, const char *node,
                         uint64_t at);
int ack_confirm(Gateway *g, const char *alert_id, const char *by, const char *node, uint64_t at);
/* What gateway-commands.c shares with it: who is who, the chain, the alerts a code may name,
 * and the gateway's own SMS. */
const ContactConfig *contact_by_number(Gateway *g, const char *number);
/* A contact named by name or by number (what `op ack`'s "by" may carry). */
const ContactConfig *contact_by_word(Gateway *g, const char *word);
/* The chain is the configured steps, then the whole of it again `repeat` times: step N (from
 * 0) pages the role of steps[N % n], and the last of all is followed by nothing. */
size_t escalation_chain_length(Gateway *g);
const RoleConfig *escalation_step_role(Gateway *g, unsigned step);
typedef struct Ackable {
	char id[ID_HEX_LEN + 1];
	char number[20];
	char *text;
	bool acked;
} Ackable;

typedef struct AckableList {
	Ackable *v;
	size_t n, cap;
} AckableList;
void ackable_list_done(AckableList *l);
/* store_ackable()'s callback filling an AckableList. */
int ackable_add(const AckableAlert *a, void *userdata);
/* The shortest code of `id` that no other alert of the list shares (unacknowledged ones, or
 * all of them with `all`). */
void ack_code_unique(const AckableList *l, const char *id, bool all,
                     char ret[static ACK_CODE_MAX + 1]);
/* What a reply quotes of an alert's text. */
#define BUNDLE_QUOTE_CHARS 40
/* A short quote of an alert's text for a reply: at most BUNDLE_QUOTE_CHARS bytes of whole UTF-8
 * characters, "..." when cut, on one line. */
void reply_quote(const char *text, char ret[static BUNDLE_QUOTE_CHARS + 4]);
/* Queues an SMS of the gateway's own to number: an alert whose id derives from `seed`, so every
 * node applying the same change queues the same one. Its key starts with `kind` ("reply" for a
 * confirmation, "refusal" for an answer to a message that did nothing), which is what the
 * refusal limit counts. */
int reply_queue(Gateway *g, const char *kind, const char *seed, const char *number,
                const char *text, const char *node, uint64_t at);
/* An answer to a message from a contact that did nothing; at most a few an hour per number. */
int reply_refusal(Gateway *g, const InboxMessage *m, const char *text);

/* gateway-limits.c: what one number gets: [limits], and one message for several alerts */
typedef enum LimitsVerdict {
	LIMITS_ALONE,  /* the delivery goes out as its own message, by the alert's owner */
	LIMITS_BUNDLE, /* everything waiting for the number goes out in one, by the number's node */
	LIMITS_WAIT, /* the number is at its limit: held (by the number's node) until there is room
	              */
} LimitsVerdict;
LimitsVerdict limits_sms(Gateway *g, const DueDelivery *d);
/* The node that sends what goes out in one message for a number (and holds it). */
const char *limits_number_owner(Gateway *g, const char *number);
/* Fills a job with everything waiting for its number (store_bundle()) and the one text that
 * carries it; returns how many, or 0 when the job's own alert was alone after all. */
int limits_bundle_fill(Gateway *g, Job *job);
int apply_hold(Gateway *g, json_t *c, const ChangeOrigin *origin);
/* Whether number may get a voice call now under [limits] calls; if not, *ret_room_at is when. */
bool limits_call_room(Gateway *g, const char *number, uint64_t *ret_room_at);

/* gateway-heartbeats.c: dead-man monitors ([heartbeat NAME]) */
typedef struct GatewayHeartbeats {
	uint64_t since; /* realtime usec this node started: a monitor never pinged counts from it */
	json_t *published; /* {name: deadline}: "missed" published, not applied yet */
} GatewayHeartbeats;

void heartbeats_handle(Gateway *g, const ServerPeer *peer, Request *req);
json_t *heartbeats_reply(const Pending *p);
int apply_heartbeat(Gateway *g, json_t *c, const ChangeOrigin *origin);
int apply_missed(Gateway *g, json_t *c, const ChangeOrigin *origin);
/* Fires the monitors past their deadline that this node judges (publishes "missed"). */
void heartbeats_run(Gateway *g);
/* The earliest deadline not fired yet, realtime usec (one already past: a second from now);
 * 0 when none. */
uint64_t heartbeats_next_due(Gateway *g);
json_t *heartbeats_status_json(Gateway *g);

/* gateway-health.c: the gateway pages about itself ([health]), and drills ([drill]) */
typedef struct GatewayHealth {
	sd_event_source *timer;
	json_t *watched; /* {key: {first, last (monotonic usec), paged}}: conditions seen lately */
	uint64_t drill_sent, drill_escalated; /* the drill instants this node acted on */
} GatewayHealth;

int health_start(Gateway *g);
void health_free(Gateway *g);

/* gateway-silences.c: silences, and the alerts they hold back */
void silences_handle_silence(Gateway *g, const ServerPeer *peer, Request *req);
void silences_handle_list(Gateway *g, const ServerPeer *peer);
void silences_handle_unsilence(Gateway *g, const ServerPeer *peer, Request *req);
/* While applying a submit: holds the new alert back when a silence in force at its acceptance
 * matches it (1), else 0. */
int silences_apply_to(Gateway *g, const NewAlert *a, const ChangeOrigin *origin);
int apply_silence(Gateway *g, json_t *c, const ChangeOrigin *origin);
int apply_unsilence(Gateway *g, json_t *c, const ChangeOrigin *origin);
json_t *silences_reply(const Pending *p);

/* gateway-commands.c: an incident run by SMS (ACK, RES, ESC, WHO, TAKE, HELP) */
/* TAKE without a duration, for a role that never hands over. */
#define TAKE_DEFAULT_USEC (12 * 3600 * USEC_PER_SEC)
int oncall_sms_received(Gateway *g, const InboxMessage *m);

/* gateway-cluster.c: announcements, confirmations, the rejoin exchange, takeover */
typedef struct GatewayCluster {
	uint64_t grace_until; /* monotonic usec: absent peers keep their share until then */
	sd_event_source *grace_timer;
	bool resume_pending; /* this node's interrupted sends wait until it has caught up */
	/* Members whose protocol this build does not speak: nothing is awaited from them. */
	uint32_t refused[MEMBERS_MAX];
	size_t n_refused;
	const char *takeover_node; /* while takeover() walks a node's deliveries */
	json_t *confirm_due;       /* {origin node: seq}: payloads to confirm this turn */
	/* Once a second the store's revision moves on: a ring of the revisions of the last
	 * rejoin_margin seconds, with when, oldest first from rev_head; the oldest is the newest
	 * that is older than the margin, once there is one. */
	sd_event_source *rev_timer;
	uint64_t rejoin_saved_at; /* monotonic: rejoin_save_now()'s last commit */
	struct RevMark {
		uint64_t at, rev;
	} * revs;
	size_t rev_cap, rev_head, n_revs;
} GatewayCluster;

/* Rejoin: after a view change that brought a newcomer, every member sends what it has (in
 * chunks, one in flight) and then "synced"; the exchange ends, at the same point of the agreed
 * order everywhere, with the last member's "synced". Until then no node dispatches and new
 * changes are held, so that nothing is decided on half a history. */
typedef struct GatewaySync {
	bool active;
	uint64_t round;
	uint32_t waiting[MEMBERS_MAX];
	size_t n_waiting;
	SyncStage stage;
	char alert_cursor[ID_HEX_LEN + 1];
	char *key_cursor;
	uint64_t sent, received;
	bool chunk_back; /* our last chunk was delivered (or a hello came): send the next */
	/* The others of the exchange, as it started; what they may lack of our alerts and dedupe
	 * rows: those changed at revision `since` or later (0: all; `full`: a resync). */
	uint32_t peers[MEMBERS_MAX];
	size_t n_peers;
	bool full;
	uint64_t since;
	sd_event_source *timer;
} GatewaySync;

json_t *cluster_confirmations_take(Gateway *g);
void publish_confirmations(Gateway *g);
bool cluster_member_online(const MemberNode *n);
bool cluster_settled(const Gateway *g);
int apply_hello(Gateway *g, json_t *c, const ChangeOrigin *origin);
int apply_health(Gateway *g, json_t *c, const ChangeOrigin *origin);
int apply_confirm(Gateway *g, json_t *c, const ChangeOrigin *origin);
size_t cluster_view_others(Gateway *g, uint32_t ret[static MEMBERS_MAX]);
int apply_merge(Gateway *g, json_t *c, const ChangeOrigin *origin);
int apply_synced(Gateway *g, json_t *c, const ChangeOrigin *origin);
bool cluster_payload_compatible(Gateway *g, json_t *payload, uint32_t from_nodeid, size_t len,
                                const json_error_t *err);
void cluster_sync_continue(Gateway *g);
/* Inside a batch: records what the other nodes hold of this store, where that changed. */
int cluster_rejoin_save(Gateway *g);
/* Starts a state exchange with the nodes in view (after a digest check differed). */
void cluster_resync(Gateway *g);
/* The online node with the lowest corosync nodeid: the one that asks for digest checks. */
bool cluster_is_lowest(Gateway *g);
int cluster_requeue(Gateway *g, const char *alert_id, const char *number, const char *node,
                    const char *modem, const char *why);
json_t *cluster_json(Gateway *g, json_t *modems);
int gateway_start_cluster(Gateway *g);

/* gateway-voice.c: the voice fallback */
/* One call at a time, from a queue. */
typedef struct GatewayVoice {
	Dialer *dialer;
	VoiceCall *calls; /* waiting, in order */
	VoiceCall *call;  /* in progress */
	ModemSlot *lent;  /* the modem lent to the call, given back afterwards */
	sd_event_source *timer;
	sd_event_source *grace; /* looks again when a modem's connect_grace ends */
	json_t *checks;         /* [[alert, number], ...] to consider after the commit */
	/* Whether the modem reports key presses, as the last answered call showed: -1 unknown. */
	int key_presses;
} GatewayVoice;

void voice_check_later(Gateway *g, const char *alert_id, const char *number);
int apply_call(Gateway *g, json_t *c, const ChangeOrigin *origin);
/* Forgets the calls queued for the alert (acknowledged or resolved); returns how many. */
unsigned voice_drop_alert(Gateway *g, const char *alert_id);
void voice_run_checks(Gateway *g);
int voice_consider_one(const char *alert_id, const char *number, void *userdata);
int voice_start(Gateway *g);
void voice_free(Gateway *g);

/* gateway-selftest.c: the path self-test */
typedef struct GatewaySelfTests {
	SelfTest *tests;
	sd_event_source *timer; /* the next round */
	sd_event_source *check; /* the earliest deadline */
} GatewaySelfTests;

void selftest_arrived(Gateway *g, const InboxMessage *m);
void selftest_pump(Gateway *g);
bool selftest_sent(Gateway *g, ModemSlot *slot, const ModemEvent *ev);
int selftest_start(Gateway *g);
void selftest_free(Gateway *g);

/* gateway-quarantine.c: received messages never decoded. */
int quarantine_modem_event(Gateway *g, ModemSlot *slot, const ModemEvent *ev);
int apply_sms_quarantined(Gateway *g, json_t *c, const ChangeOrigin *origin);

/* gateway-reload.c: SIGHUP */
typedef struct GatewayReload {
	/* The Configs loaded since start, all kept; when it was last loaded (realtime usec), and
	 * why the last reload was refused (NULL: it was not). */
	Config **configs_owned;
	size_t n_configs_owned;
	uint64_t loaded_at;
	char *refused;
} GatewayReload;

/* Re-reads path; refuses (and keeps the running Config) when a setting that needs a restart
 * changed (-EBUSY) or the file is wrong (config_load()'s error). */
int gateway_reload_config(Gateway *g, const char *path);
/* {"loaded_at": seconds, "reload_refused": "why"} for the status reply. */
json_t *reload_status_json(const Gateway *g);
void reload_free(Gateway *g);

/* gateway-metrics.c: the Prometheus text file */
typedef struct GatewayMetrics {
	sd_event_source *timer; /* rewrites [metrics] textfile */
	bool failing;           /* the last write failed (logged once per streak) */
} GatewayMetrics;

int metrics_start(Gateway *g);
/* Marks the file down (gatewayd_up 0) and stops its timer; nothing when metrics are off. */
void metrics_stop(Gateway *g);

/* gateway-oncall.c: who is on duty, and overrides */
/* The contact on duty for role at realtime `at`: the override in force, if its contact is still
 * configured (*ret_override true), else the rotation's. ret_override may be NULL. */
const ContactConfig *oncall_on_duty(Gateway *g, const RoleConfig *role, uint64_t at,
                                    bool *ret_override);
void oncall_handle_query(Gateway *g, const ServerPeer *peer, Request *req);
void oncall_handle_override(Gateway *g, const ServerPeer *peer, Request *req);
int apply_override(Gateway *g, json_t *c, const ChangeOrigin *origin);
json_t *oncall_override_reply(const Pending *p);

/* gateway-hooks.c: commands run when an alert is acknowledged on this node ([hooks]) */
#define HOOKS_RUNNING_MAX 4  /* at once; the others wait */
#define HOOKS_QUEUED_MAX  64 /* waiting; beyond it a hook is dropped, with a warning */

typedef struct HookRun HookRun;
typedef struct GatewayHooks {
	json_t *due; /* [{"GATEWAYD_...": value}]: collected while applying, run after the commit */
	HookRun *running, *queued;
	size_t n_running, n_queued;
	uint64_t dropped;
} GatewayHooks;

/* Inside apply_ack(), for an ack that changed the alert: collects on_ack when the ack was made
 * on this node and a command is configured. */
/* The outcome of a hook run on its node, in the alert's story. */
int apply_hook(Gateway *g, json_t *c, const ChangeOrigin *origin);
int hooks_ack_later(Gateway *g, json_t *c);
/* After a commit: starts (or queues) what was collected. */
void hooks_run(Gateway *g);
/* After a rollback: forgets what was collected. */
void hooks_forget(Gateway *g);
/* Kills and reaps the hooks still running. */
void hooks_free(Gateway *g);

/* The wiring: what every room reaches, and each room's own state. */
struct Gateway {
	sd_event *event;
	const Config *config;
	Store *store;
	Replication *replication;
	Server *server;
	Admission *admission; /* ops served and rate per submitter on the submit socket */
	uint32_t nodeid;
	Members members; /* the cluster as this node sees it */
	ModemSlot *modems;
	size_t n_modems;
	json_t *tokens; /* [[modem, token], ...]: SIM messages to delete once committed */
	sd_event_source *exit_check;
	bool stopping;

	GatewayPublish publish;
	GatewayApply apply;
	GatewayDispatch dispatch;
	GatewayCheck check;
	GatewayEscalation escalation;
	GatewayCluster cluster;
	GatewaySync sync;
	GatewayVoice voice;
	GatewaySelfTests selftest;
	GatewayReload reload;
	GatewayMetrics metrics;
	GatewayHooks hooks;
	GatewayHeartbeats heartbeats;
	GatewayHealth health;
};
