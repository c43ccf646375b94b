/* gateway-internal: what the rooms of the gateway share; private to gatewayd/.
 *
 * The Gateway is one object, in files by concern: gateway.c (the replicated state machine:
 * outbox, applying payloads, dispatch, modems, requests, life cycle), gateway-cluster.c (the
 * nodes, commit confirmations, the state exchange after a join, takeover), gateway-voice.c
 * (dialing out when every SMS path failed), gateway-selftest.c (test SMS between the nodes'
 * SIMs), gateway-oncall.c (who is on duty, and overrides) and gateway-metrics.c (the Prometheus
 * text file). Everything here runs on the main thread. */
#pragma once

#include "gateway.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "admission.h"
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

#define PROTOCOL_VERSION 2 /* 2: escalation, alert history, rounds and bundles */
#define MODEM_INFLIGHT 1 /* one job per modem: nothing waits behind a send that may hang */
#define EXPIRE_BATCH 256
#define PURGE_INTERVAL_USEC (3600 * USEC_PER_SEC)
#define SOLO_NODEID 1
/* Rejoin exchange: the state sent per payload, and how long a silent peer is waited for. */
#define SYNC_CHUNK_BYTES (256u * 1024u)
#define SYNC_STALL_USEC (15 * USEC_PER_SEC)
/* Clocks further apart than this are reported: deadlines come from the replicated timestamps. */
#define CLOCK_SKEW_WARN_USEC (2 * USEC_PER_SEC)

DEFINE_TRIVIAL_CLEANUP_FUNC(Request, request_free)

typedef enum PendingKind { PENDING_SEND, PENDING_ACK, PENDING_OVERRIDE } PendingKind;

/* A client waiting for the commit of the change it caused. */
typedef struct Pending {
	ServerPeer peer;
	PendingKind kind;
	char id[ID_HEX_LEN + 1];
	/* filled while applying */
	bool duplicate;
	char first_id[ID_HEX_LEN + 1];
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
	SYNC_ALERTS,
	SYNC_DEDUPE,
	SYNC_INBOX,
	SYNC_OVERRIDES,
	SYNC_DONE,
} SyncStage;

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

/* A voice call to make: the recipient whose SMS paths all failed, or the contact center. */
typedef struct VoiceCall {
	struct VoiceCall *next;
	char alert_id[ID_HEX_LEN + 1];
	char number[20];    /* whom to call */
	char recipient[20]; /* whose SMS failed (the same, but for the contact center) */
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
	char path_problem[224]; /* the last path self-test from this modem failed: why */
} ModemSlot;

/* A path self-test: a test SMS from one of our modems to the SIM of another node's modem. */
typedef struct SelfTest {
	struct SelfTest *next;
	char token[17];
	size_t modem; /* our slot */
	char to_node[MEMBER_NAME_MAX + 1], to_modem[MEMBER_NAME_MAX + 1], number[20];
	uint64_t job;      /* the send's job id, 0 before it started */
	uint64_t deadline; /* monotonic usec; 0 until sent */
} SelfTest;

#define SELFTEST_PREFIX "gatewayd self-test "

struct Gateway {
	sd_event *event;
	const Config *config;
	Store *store;
	Replication *replication;
	Server *server;
	Admission *admission; /* ops served and rate per submitter on the submit socket */
	uint32_t nodeid;

	ModemSlot *modems;
	size_t n_modems;

	/* This turn's changes, published as one payload by the post source. */
	json_t *outbox;
	Pending **outbox_pending;
	size_t outbox_pending_cap;
	uint64_t next_seq;
	PendingBatch *batches_head, *batches_tail;
	PendingBatch *awaiting; /* committed here, waiting for the peers' confirmations */
	json_t *confirm_due;    /* {origin node: seq}: payloads to confirm this turn */
	sd_event_source *flush;

	/* The cluster as this node sees it. */
	Members members;
	uint64_t grace_until; /* monotonic usec: absent peers keep their share until then */
	sd_event_source *grace_timer;
	bool resume_pending; /* this node's interrupted sends wait until it has caught up */
	/* Members whose protocol this build does not speak: nothing is awaited from them. */
	uint32_t refused[MEMBERS_MAX];
	size_t n_refused;
	const char *takeover_node; /* while takeover() walks a node's deliveries */

	/* Rejoin: after a view change that brought a newcomer, every member sends what it has
	 * (in chunks, one in flight) and then "synced"; the exchange ends, at the same point of
	 * the agreed order everywhere, with the last member's "synced". Until then no node
	 * dispatches and new changes are held, so that nothing is decided on half a history. */
	bool syncing;
	uint64_t sync_round;
	uint32_t sync_waiting[MEMBERS_MAX];
	size_t n_sync_waiting;
	SyncStage sync_stage;
	char sync_alert_cursor[ID_HEX_LEN + 1];
	char *sync_key_cursor;
	uint64_t sync_sent, sync_received;
	bool sync_chunk_back; /* our last chunk was delivered: send the next */
	sd_event_source *sync_timer;

	/* After-commit work collected while applying. */
	json_t *events; /* [[topic, object], ...] */
	json_t *tokens; /* [[modem, token], ...]: SIM messages to delete once committed */
	bool dispatch_wanted;

	Job *jobs;
	uint64_t next_job;
	sd_event_source *dispatch_defer;
	sd_event_source *timer;
	sd_event_source *purge_timer;
	sd_event_source *exit_check;
	bool stopping;

	/* Voice fallback: one call at a time, from a queue. */
	Dialer *dialer;
	VoiceCall *calls;          /* waiting, in order */
	VoiceCall *call;           /* in progress */
	ModemSlot *lent;           /* the modem lent to the call, given back afterwards */
	sd_event_source *voice_timer;

	json_t *voice_checks;      /* [[alert, number], ...] to consider after the commit */

	json_t *escalating; /* {alert id: step}: escalations published, not applied yet */

	/* Path self-tests. */
	SelfTest *selftests;
	sd_event_source *selftest_timer; /* the next round */
	sd_event_source *selftest_check; /* the earliest deadline */

	sd_event_source *metrics_timer; /* rewrites [metrics] textfile */
	bool metrics_failing;           /* the last write failed (logged once per streak) */
};

/* gateway.c: the state machine, its outbox and dispatch */
int outbox_add(Gateway *g, json_t *change, Pending *pending);
void event_add(Gateway *g, const char *topic, json_t *object);
void events_publish(Gateway *g);
Job *job_find_delivery(Gateway *g, const char *alert_id, const char *number);
const char *jstr(json_t *o, const char *k);
uint64_t ju64(json_t *o, const char *k);
ModemSlot *slot_by_name(Gateway *g, const char *name);
void answer_batch(Gateway *g, PendingBatch *batch, int commit_result);
void on_deliver(void *userdata, uint32_t from_nodeid, const void *data, size_t len);
bool modem_usable(const ModemSlot *slot);
void self_health_changed(Gateway *g);
int modem_slot_start(Gateway *g, size_t i);
json_t *local_modems_json(Gateway *g);
/* The reply to {"op": "status"}. */
json_t *status_json(Gateway *g);

int apply_ack(Gateway *g, json_t *c, Pending *pending);

/* gateway-escalation.c: escalation, acknowledgment by SMS, replies, flood summaries */
bool escalation_wanted(Gateway *g, const Request *req);
void escalation_run(Gateway *g);
void escalation_forget(Gateway *g);
int apply_escalate(Gateway *g, json_t *c);
/* The text of an SMS of a critical alert: with the reply that acknowledges it. */
int ack_instruction(Gateway *g, const char *alert_id, const char *text, char **ret);
/* Adds to an alert's JSON what on-call knows: its escalation's step (from 1) and role, and for
 * a critical alert "ack_code", what its SMS asks to reply. */
void alert_add_oncall(Gateway *g, json_t *alert);
int ack_confirm(Gateway *g, const char *alert_id, const char *by, const char *node,
		uint64_t at);
int oncall_sms_received(Gateway *g, const InboxMessage *m);
/* Fills a summary job with the deliveries held for its number; returns how many. */
int bundle_fill(Gateway *g, Job *job);

/* gateway-cluster.c: announcements, confirmations, the rejoin exchange, takeover */
json_t *confirmations_take(Gateway *g);
void publish_confirmations(Gateway *g);
bool member_online(const MemberNode *n);
bool cluster_settled(const Gateway *g);
int apply_hello(Gateway *g, json_t *c, uint32_t from_nodeid);
int apply_health(Gateway *g, json_t *c);
int apply_confirm(Gateway *g, json_t *c, uint32_t from_nodeid);
size_t view_others(Gateway *g, uint32_t ret[static MEMBERS_MAX]);
int apply_merge(Gateway *g, json_t *c, bool from_self);
int apply_synced(Gateway *g, json_t *c, uint32_t from_nodeid);
bool payload_compatible(Gateway *g, json_t *payload, uint32_t from_nodeid, size_t len,
			const json_error_t *err);
void sync_continue(Gateway *g);
int requeue(Gateway *g, const char *alert_id, const char *number, const char *node,
	    const char *modem, const char *why);
json_t *cluster_json(Gateway *g, json_t *modems);
int gateway_start_cluster(Gateway *g);

/* gateway-voice.c: the voice fallback */
void voice_check_later(Gateway *g, const char *alert_id, const char *number);
int apply_call(Gateway *g, json_t *c);
void voice_drop_alert(Gateway *g, const char *alert_id);
void voice_run_checks(Gateway *g);
int consider_one(const char *alert_id, const char *number, void *userdata);
int voice_start(Gateway *g);

/* gateway-selftest.c: the path self-test */
void selftest_arrived(Gateway *g, const InboxMessage *m);

/* gateway-quarantine.c: received messages never decoded. */
int quarantine_modem_event(Gateway *g, ModemSlot *slot, const ModemEvent *ev);
int apply_sms_quarantined(Gateway *g, json_t *c);
/* This node's modem may delete the message behind the change's token from its SIM, once the
 * change is committed. */
void token_confirm_later(Gateway *g, json_t *c);
void selftest_pump(Gateway *g);
bool selftest_sent(Gateway *g, ModemSlot *slot, const ModemEvent *ev);
int selftest_start(Gateway *g);

/* gateway-metrics.c: the Prometheus text file */
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
int apply_override(Gateway *g, json_t *c);
json_t *oncall_override_reply(const Pending *p);
