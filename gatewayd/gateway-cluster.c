/* gateway-cluster: the gateway as a member of a cluster of two or more nodes.
 *
 * Each node announces itself and its modems in agreed order (hello, health), so all hold the
 * same picture for ownership (members.h). A node that answers a client waits for the other
 * members' commit confirmations; a view with a newcomer starts a state exchange (every member
 * sends, in chunks, what the others may lack, then "synced") during which nobody dispatches and
 * new changes wait, so that nothing is decided on half a history; a node that left is taken
 * over, and after a (re)connect alone nothing is sent for [cluster] peer_grace.
 *
 * What the others may lack: every change to an alert or a dedupe row is stamped with this
 * store's revision (store_rev(), moved on once a second). For each other node this one keeps
 * the first revision that node may not have: a node in step with us (in the view, past an
 * exchange, its store committing) for [cluster] rejoin_margin holds everything stamped before.
 * An exchange then sends the alerts and dedupe rows changed since the lowest such revision of
 * the others, and everything to a node whose store is not the one it had (its hello names it)
 * or after a digest difference. */
#include "gateway-internal.h"

static void sync_finish(Gateway *g, const char *why);
static void takeover(Gateway *g, bool merged);

/* The exchange moved on (a chunk of ours came back, one of another node's arrived, a node said
 * it is done): it ends on its own only after [cluster] exchange_timeout without that. A node
 * that has everything to send and nothing to receive makes progress through its own chunks. */
static void sync_progress(Gateway *g)
{
	/* From now: a relative time would count from the start of this loop iteration, which a
	 * long run of chunks applied in it could leave far behind. */
	sd_event_source_set_time(g->sync.timer,
	                         now_monotonic_usec() +
	                                 (uint64_t)g->config->exchange_timeout * USEC_PER_SEC);
}

/* Publishes changes outside the outbox: announcements, confirmations and the rejoin exchange,
 * which must flow while the outbox is held. They have no clients waiting (seq 0). */
static int publish_control(Gateway *g, json_t *changes)
{
	_cleanup_(json_decrefp) json_t *payload = NULL;
	_cleanup_free_ char *text = NULL;
	int r;

	if (!changes)
		return -ENOMEM;
	payload = json_pack("{s:i, s:I, s:s, s:o}", "v", PROTOCOL_VERSION, "seq", (json_int_t)0,
	                    "node", g->config->node_name, "changes", changes);
	text = payload ? json_dumps(payload, JSON_COMPACT) : NULL;
	r = text ? replication_publish(g->replication, text, strlen(text)) : -ENOMEM;
	if (r < 0)
		log_error_errno(r, "Cannot publish to the cluster: %m");
	return r;
}

/* The confirmations due this turn, one per origin: "I have committed your payloads up to
 * seq"; NULL when none are. They ride in this turn's payload, or go alone. */
json_t *cluster_confirmations_take(Gateway *g)
{
	const char *origin;
	json_t *seq, *changes;

	if (json_object_size(g->cluster.confirm_due) == 0)
		return NULL;
	changes = json_array();
	json_object_foreach(g->cluster.confirm_due, origin, seq) json_array_append_new(
	        changes, change_pack("confirm", "{s:s, s:s, s:O}", "node", g->config->node_name,
	                             "origin", origin, "seq", seq));
	json_object_clear(g->cluster.confirm_due);
	return changes;
}

void publish_confirmations(Gateway *g)
{
	json_t *changes = cluster_confirmations_take(g);

	if (changes)
		publish_control(g, changes);
}

static bool in_grace(const Gateway *g)
{
	return g->cluster.grace_until && now_monotonic_usec() < g->cluster.grace_until;
}

bool cluster_member_online(const MemberNode *n)
{
	return n->self || (n->in_view && n->announced);
}

/* Whether this node may decide who sends what: not while the state exchange runs, and not
 * within the grace period while a node it has met is out of sight. That node may be alive and
 * sending (a restarted corosync sees itself alone at first; a rebooted node's store may be
 * behind what the peer sent meanwhile), so nothing is sent from a picture that may be stale. */
bool cluster_settled(const Gateway *g)
{
	if (g->sync.active || stall_active(g))
		return false;
	if (!in_grace(g))
		return true;
	for (size_t i = 0; i < g->members.n; i++)
		if (!g->members.nodes[i].self && !g->members.nodes[i].in_view &&
		    g->members.nodes[i].remembered)
			return false;
	return true;
}

static bool node_in_view(const Gateway *g, uint32_t nodeid)
{
	const ReplicationView *v = replication_get_view(g->replication);

	for (size_t i = 0; nodeid && i < v->n_members; i++)
		if (v->members[i].nodeid == nodeid)
			return true;
	return false;
}

static unsigned count_usable(json_t *modems)
{
	unsigned n = 0;
	size_t i;
	json_t *m;

	json_array_foreach(modems, i, m)
	{
		const char *state = jstr(m, "state");

		n += streq(state, "ok") || streq(state, "degraded");
	}
	return n;
}

static json_t *hello_change(Gateway *g)
{
	char fp[33];

	config_fingerprint(g->config, fp);
	return change_pack("hello", "{s:s, s:I, s:I, s:s, s:i, s:b, s:o, s:s*, s:I}", "node",
	                   g->config->node_name, "nodeid", (json_int_t)g->nodeid, "at",
	                   (json_int_t)now_realtime_usec(), "fingerprint", fp, "version",
	                   PROTOCOL_VERSION, "voice", g->voice.dialer != NULL, "modems",
	                   modems_local_json(g), "store", stall_reason(g), "store_id",
	                   (json_int_t)store_id(g->store));
}

/* Its hello names its store: another one than last time (a new disk) holds nothing of ours. */
static void rejoin_hello(Gateway *g, MemberNode *n, json_t *c)
{
	uint64_t id = ju64(c, "store_id");

	if (id != n->store_id) {
		if (n->store_id)
			log_info("Node '%s' is back with another store: it gets all we have",
			         n->name);
		n->store_id = id;
		n->since = 0;
		n->since_dirty = true;
	}
	if (g->sync.active && !n->said_hello) {
		n->said_hello = true;
		if (g->sync.stage == SYNC_HELLO)
			g->sync.chunk_back = true; /* the exchange may start sending */
	}
}

int cluster_rejoin_save(Gateway *g)
{
	for (size_t i = 0; i < g->members.n; i++) {
		MemberNode *n = &g->members.nodes[i];
		int r;

		if (n->self || !n->since_dirty)
			continue;
		r = store_node_rejoin(g->store, n->name, n->store_id, n->since);
		if (r < 0)
			return r;
		n->since_dirty = false;
	}
	return 0;
}

/* What rejoin_mark() learnt is kept with the next payload's commit, or by a commit of its own
 * when none comes: an idle cluster commits nothing, and a node stopped meanwhile would come back
 * without it and send its whole store. Idle, at most once per half margin (the revision moves
 * every second, and a disk written every second for nothing wears). */
static void rejoin_save_now(Gateway *g, uint64_t now)
{
	uint64_t half = (uint64_t)g->config->rejoin_margin * USEC_PER_SEC / 2;
	bool dirty = false;
	int r;

	for (size_t i = 0; i < g->members.n; i++)
		dirty |= !g->members.nodes[i].self && g->members.nodes[i].since_dirty;
	if (!dirty || stall_active(g) ||
	    (g->cluster.rejoin_saved_at && now - g->cluster.rejoin_saved_at < half))
		return;
	r = store_begin(g->store);
	if (r >= 0)
		r = cluster_rejoin_save(g);
	r = store_end(g->store, r);
	g->cluster.rejoin_saved_at = now; /* a failure too: a lock held meanwhile costs no wait */
	if (r >= 0)
		return;
	log_debug_errno(r, "Cannot keep where the other nodes stand: %m; trying again later");
	for (size_t i = 0; i < g->members.n; i++)
		if (!g->members.nodes[i].self && g->members.nodes[i].since)
			g->members.nodes[i].since_dirty = true;
}

/* A node in step with us since before the revision of [cluster] rejoin_margin ago has
 * everything stamped before it: it committed what it applied long since (a node whose store
 * cannot commit says so, and is not in step meanwhile), and a node that died in between has
 * been seen gone (the margin exceeds corosync's failure detection by far). The digest check
 * after every exchange catches what this misses. */
static void rejoin_mark(Gateway *g, MemberNode *n, uint64_t now)
{
	uint64_t margin = (uint64_t)g->config->rejoin_margin * USEC_PER_SEC;

	if (!n->in_view || !n->announced || n->store_error[0] || g->sync.active ||
	    stall_active(g)) {
		n->whole_since = 0;
		return;
	}
	if (n->whole_since && g->cluster.n_revs > 0) {
		const struct RevMark *old = &g->cluster.revs[g->cluster.rev_head];

		if (old->at + margin <= now && old->at >= n->whole_since && old->rev > n->since) {
			n->since = old->rev;
			n->since_dirty = true;
		}
	}
}

static struct RevMark *rev_at(Gateway *g, size_t i)
{
	return &g->cluster.revs[(g->cluster.rev_head + i) % g->cluster.rev_cap];
}

static int on_rev_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	Gateway *g = userdata;
	uint64_t now = now_monotonic_usec(), margin = g->config->rejoin_margin * USEC_PER_SEC;

	store_rev_next(g->store);
	/* Keep one mark older than the margin: the newest such. */
	while (g->cluster.n_revs >= 2 && rev_at(g, 1)->at + margin <= now) {
		g->cluster.rev_head = (g->cluster.rev_head + 1) % g->cluster.rev_cap;
		g->cluster.n_revs--;
	}
	if (g->cluster.n_revs < g->cluster.rev_cap)
		*rev_at(g, g->cluster.n_revs++) = (struct RevMark){now, store_rev(g->store)};
	for (size_t i = 0; i < g->members.n; i++)
		if (!g->members.nodes[i].self)
			rejoin_mark(g, &g->members.nodes[i], now);
	rejoin_save_now(g, now);
	sd_event_source_set_time(s, usec + REV_TICK_USEC);
	return 0;
}

/* A node's modems and store as it announced them (hello, health): a node whose store cannot
 * commit sends nothing, so none of its modems counts for ownership. */
static void member_health(Gateway *g, MemberNode *n, json_t *c)
{
	const char *store = json_string_value(json_object_get(c, "store"));

	if (store && !n->store_error[0])
		log_warning("Node '%s' says its store cannot commit (%s): its deliveries are ours "
		            "until it can",
		            n->name, store);
	else if (!store && n->store_error[0])
		log_info("Node '%s' commits again", n->name);
	snprintf(n->store_error, sizeof(n->store_error), "%s", store ? store : "");
	if (store)
		n->whole_since = 0; /* what it applies now may not last */
	json_decref(n->modems);
	n->modems = json_incref(json_object_get(c, "modems"));
	n->usable_modems = n->store_error[0] ? 0 : count_usable(n->modems);
	g->dispatch.wanted = true; /* the owners of some deliveries changed */
}

static void node_event(Gateway *g, const char *topic, const MemberNode *n, const char *reason)
{
	publish_event(g, topic,
	              json_pack("{s:s, s:I, s:s?}", "node", n->name, "id", (json_int_t)n->nodeid,
	                        "reason", reason));
}

int apply_hello(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
	uint32_t from_nodeid = origin->nodeid;
	const char *name = jstr(c, "node");
	MemberNode *n = members_get(&g->members, name, true);
	char fp[33];
	bool was_online;

	if (!n) {
		log_warning("Ignoring node '%s': a bad name, or more than %d nodes", name,
		            MEMBERS_MAX);
		return 0;
	}
	if (n->self) {
		if (from_nodeid != g->nodeid)
			log_error("Corosync node %u calls itself '%s' too: node names must differ "
			          "(gatewayd.conf [node] name)",
			          from_nodeid, name);
		return 0;
	}
	was_online = n->in_view && n->announced;
	n->nodeid = from_nodeid;
	n->in_view = node_in_view(g, from_nodeid);
	n->announced = n->in_view;
	n->remembered = true;
	n->version = (unsigned)ju64(c, "version");
	n->voice = json_is_true(json_object_get(c, "voice"));
	n->clock_skew_usec = (int64_t)ju64(c, "at") - (int64_t)now_realtime_usec();
	snprintf(n->fingerprint, sizeof(n->fingerprint), "%s", jstr(c, "fingerprint"));
	member_health(g, n, c);
	rejoin_hello(g, n, c);
	n->last_seen = now_realtime_usec();

	config_fingerprint(g->config, fp);
	if (!was_online && n->announced) {
		log_ctx(LOG_INFO, &((LogContext){.message_id = MESSAGE_ID_NODE_JOINED}),
		        "Node '%s' (corosync node %u) is with us: %u usable modem(s), its clock "
		        "%+lld ms from ours",
		        name, from_nodeid, n->usable_modems,
		        (long long)(n->clock_skew_usec / (int64_t)USEC_PER_MSEC));
		node_event(g, "node_joined", n, NULL);
	}
	if (!streq(fp, n->fingerprint))
		log_warning("Node '%s' runs with other contacts, roles, escalation, dedupe or "
		            "delivery settings than this node: keep gatewayd.conf alike on both",
		            name);
	if (n->clock_skew_usec > (int64_t)CLOCK_SKEW_WARN_USEC ||
	    n->clock_skew_usec < -(int64_t)CLOCK_SKEW_WARN_USEC)
		log_warning("The clock of node '%s' is %+.1f s from ours: run NTP on both nodes "
		            "(deadlines come from the replicated timestamps)",
		            name, (double)n->clock_skew_usec / USEC_PER_SEC);
	return store_node_seen(g->store, name, from_nodeid, n->last_seen);
}

int apply_health(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
	MemberNode *n = members_get(&g->members, jstr(c, "node"), false);

	if (!n || n->self)
		return 0;
	member_health(g, n, c);
	return 0;
}

/* Answers the batches that no longer wait for anyone. */
static void awaiting_answer_ready(Gateway *g)
{
	for (PendingBatch **p = &g->publish.awaiting; *p;) {
		PendingBatch *b = *p;

		if (b->n_waiting == 0) {
			*p = b->next;
			publish_answer_batch(g, b, 0);
		} else
			p = &b->next;
	}
}

static void batch_unwait(PendingBatch *b, uint32_t nodeid)
{
	for (size_t i = 0; i < b->n_waiting; i++)
		if (b->waiting[i] == nodeid) {
			b->waiting[i] = b->waiting[--b->n_waiting];
			return;
		}
}

int apply_confirm(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
	uint64_t seq = ju64(c, "seq");

	if (!streq(jstr(c, "origin"), g->config->node_name))
		return 0;
	for (PendingBatch *b = g->publish.awaiting; b; b = b->next)
		if (b->seq <= seq)
			batch_unwait(b, origin->nodeid);
	awaiting_answer_ready(g);
	return 0;
}

static bool node_refused(const Gateway *g, uint32_t nodeid)
{
	for (size_t i = 0; i < g->cluster.n_refused; i++)
		if (g->cluster.refused[i] == nodeid)
			return true;
	return false;
}

/* The distinct nodeids of the current view (a node may hold several members), at most
 * MEMBERS_MAX; with `speaking`, only those whose protocol we speak. */
static size_t view_nodeids(const Gateway *g, bool speaking, uint32_t ret[static MEMBERS_MAX])
{
	const ReplicationView *v = replication_get_view(g->replication);
	size_t n = 0;

	for (size_t i = 0; i < v->n_members; i++) {
		uint32_t id = v->members[i].nodeid;
		bool skip = speaking && node_refused(g, id);

		for (size_t j = 0; j < n && !skip; j++)
			skip = ret[j] == id;
		if (!skip && n < MEMBERS_MAX)
			ret[n++] = id;
	}
	return n;
}

/* The other nodes of the view that speak our protocol. */
size_t cluster_view_others(Gateway *g, uint32_t ret[static MEMBERS_MAX])
{
	size_t n = view_nodeids(g, true, ret);

	for (size_t i = 0; i < n; i++)
		if (ret[i] == g->nodeid) {
			ret[i] = ret[--n];
			break;
		}
	return n;
}

int apply_merge(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
	const char *kind = jstr(c, "kind");
	json_t *items = json_object_get(c, "items"), *item;
	size_t i;
	int r = 0, changed = 0;

	if (origin->self) {
		/* Ours came back: the next chunk may go. */
		if (g->sync.active && ju64(c, "round") == g->sync.round) {
			g->sync.sent += json_array_size(items);
			g->sync.chunk_back = true;
			sync_progress(g);
		}
		return 0;
	}
	json_array_foreach(items, i, item)
	{
		if (streq(kind, "alerts"))
			r = store_merge_alert(g->store, item);
		else if (streq(kind, "dedupe"))
			r = store_merge_dedupe(g->store, item);
		else if (streq(kind, "inbox"))
			r = store_merge_inbox(g->store, item);
		else if (streq(kind, "overrides"))
			r = store_merge_override(g->store, item);
		else if (streq(kind, "silences"))
			r = store_merge_silence(g->store, item);
		else if (streq(kind, "heartbeats"))
			r = store_merge_heartbeat(g->store, item);
		if (r == STORE_INVALID) {
			log_warning("Skipping a malformed %s record from node '%s'", kind,
			            jstr(c, "node"));
			continue;
		}
		if (r < 0)
			return r;
		changed += r;
	}
	g->sync.received += json_array_size(items);
	if (changed)
		g->dispatch.wanted = true;
	if (g->sync.active)
		sync_progress(g);
	return 0;
}

/* The exchange no longer waits for nodeid; it ends when it waits for no one. */
static void sync_unwait(Gateway *g, uint32_t nodeid)
{
	if (!g->sync.active)
		return;
	for (size_t i = 0; i < g->sync.n_waiting; i++)
		if (g->sync.waiting[i] == nodeid) {
			g->sync.waiting[i] = g->sync.waiting[--g->sync.n_waiting];
			break;
		}
	if (g->sync.n_waiting == 0)
		sync_finish(g, NULL);
	else
		sync_progress(g);
}

int apply_synced(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
	sync_unwait(g, origin->nodeid);
	return 0;
}

/* A payload from a node whose protocol this build does not speak is refused, loudly, once per
 * stay of that node in the view (refused[] forgets it when it leaves). */
bool cluster_payload_compatible(Gateway *g, json_t *payload, uint32_t from_nodeid, size_t len,
                                const json_error_t *err)
{
	json_int_t v;

	if (!payload) {
		log_error("Dropping a replicated payload of %zu bytes from corosync node %u: %s",
		          len, from_nodeid, err->text);
		return false;
	}
	v = json_integer_value(json_object_get(payload, "v"));
	if (v == PROTOCOL_VERSION)
		return true;
	if (node_refused(g, from_nodeid))
		return false;
	log_error("Refusing node '%s' (corosync node %u): it speaks protocol version %lld, this "
	          "node version %d; run the same gatewayd release on both nodes",
	          jstr(payload, "node"), from_nodeid, (long long)v, PROTOCOL_VERSION);
	if (g->cluster.n_refused < MEMBERS_MAX)
		g->cluster.refused[g->cluster.n_refused++] = from_nodeid;
	/* No confirmation, no hello and no "synced" will come from it. */
	for (PendingBatch *b = g->publish.awaiting; b; b = b->next)
		batch_unwait(b, from_nodeid);
	awaiting_answer_ready(g);
	for (size_t i = 0; i < g->sync.n_peers; i++)
		if (g->sync.peers[i] == from_nodeid) {
			g->sync.peers[i] = g->sync.peers[--g->sync.n_peers];
			break;
		}
	sync_unwait(g, from_nodeid);
	cluster_sync_continue(g);
	return false;
}

/* Once every other member of the exchange has said hello: what they may lack of ours. */
static bool sync_since(Gateway *g, uint64_t *ret)
{
	uint64_t since = UINT64_MAX;

	for (size_t i = 0; i < g->sync.n_peers; i++) {
		MemberNode *n = members_by_nodeid(&g->members, g->sync.peers[i]);

		if (!n || !n->said_hello)
			return false;
		since = MIN(since, n->store_id ? n->since : 0);
	}
	*ret = g->sync.full || since == UINT64_MAX ? 0 : since;
	return true;
}

void cluster_sync_continue(Gateway *g)
{
	_cleanup_(json_decrefp) json_t *items = NULL;
	const char *kind = NULL;
	char *key_cursor = NULL;
	int n = 0;

	if (g->sync.active && g->sync.stage == SYNC_HELLO) {
		if (!sync_since(g, &g->sync.since))
			return;
		if (g->sync.since)
			log_info("Sending the cluster what changed here since revision %llu (of "
			         "%llu)",
			         (unsigned long long)g->sync.since,
			         (unsigned long long)store_rev(g->store));
		else
			log_info("Sending the cluster all we have%s",
			         g->sync.full ? " (the stores differed)" : "");
		g->sync.stage = SYNC_ALERTS;
	}

	while (g->sync.active && g->sync.stage != SYNC_DONE) {
		json_decref(TAKE_PTR(items));
		switch (g->sync.stage) {
		case SYNC_ALERTS:
			kind = "alerts";
			n = store_export_alerts(g->store, g->sync.alert_cursor, g->sync.since,
			                        SYNC_CHUNK_BYTES, &items, g->sync.alert_cursor);
			break;
		case SYNC_DEDUPE:
			kind = "dedupe";
			n = store_export_dedupe(
			        g->store, g->sync.key_cursor ? g->sync.key_cursor : "",
			        g->sync.since, SYNC_CHUNK_BYTES, &items, &key_cursor);
			break;
		case SYNC_INBOX:
			kind = "inbox";
			n = store_export_inbox(g->store,
			                       g->sync.key_cursor ? g->sync.key_cursor : "",
			                       SYNC_CHUNK_BYTES, &items, &key_cursor);
			break;
		case SYNC_OVERRIDES:
			kind = "overrides";
			n = store_export_overrides(g->store,
			                           g->sync.key_cursor ? g->sync.key_cursor : "",
			                           SYNC_CHUNK_BYTES, &items, &key_cursor);
			break;
		case SYNC_SILENCES:
			kind = "silences";
			n = store_export_silences(g->store,
			                          g->sync.key_cursor ? g->sync.key_cursor : "",
			                          SYNC_CHUNK_BYTES, &items, &key_cursor);
			break;
		case SYNC_HEARTBEATS:
			kind = "heartbeats";
			n = store_export_heartbeats(g->store,
			                            g->sync.key_cursor ? g->sync.key_cursor : "",
			                            SYNC_CHUNK_BYTES, &items, &key_cursor);
			break;
		case SYNC_HELLO:
		case SYNC_DONE:
			break;
		}
		if (key_cursor) {
			free(g->sync.key_cursor);
			g->sync.key_cursor = TAKE_PTR(key_cursor);
		}
		if (n < 0) {
			log_error_errno(n, "Cannot read the %s to send to the cluster: %m", kind);
			n = 0; /* what could not be read is not sent; the exchange still ends */
		}
		if (n > 0)
			break;
		g->sync.stage++;
		g->sync.key_cursor = mfree(g->sync.key_cursor);
	}
	if (!g->sync.active)
		return;
	if (g->sync.stage == SYNC_DONE) {
		publish_control(g,
		                json_pack("[o]", change_pack("synced", "{s:s, s:I, s:I}", "node",
		                                             g->config->node_name, "round",
		                                             (json_int_t)g->sync.round, "records",
		                                             (json_int_t)g->sync.sent)));
		return;
	}
	publish_control(g, json_pack("[o]", change_pack("merge", "{s:s, s:I, s:s, s:O}", "node",
	                                                g->config->node_name, "round",
	                                                (json_int_t)g->sync.round, "kind", kind,
	                                                "items", items)));
}

/* A newcomer is in the view (or the stores differed: `full`): everyone sends what the others may
 * lack, then "synced". */
static void sync_start(Gateway *g, bool full)
{
	const ReplicationView *v = replication_get_view(g->replication);

	g->sync.active = true;
	g->sync.round++;
	g->sync.stage = SYNC_HELLO;
	g->sync.full = full;
	g->sync.since = 0;
	for (size_t i = 0; i < g->members.n; i++) {
		g->members.nodes[i].said_hello = false;
		g->members.nodes[i].whole_since = 0;
	}
	g->sync.alert_cursor[0] = 0;
	g->sync.key_cursor = mfree(g->sync.key_cursor);
	g->sync.sent = g->sync.received = 0;
	g->sync.chunk_back = false;
	g->sync.n_waiting = view_nodeids(g, true, g->sync.waiting); /* ourselves included */
	g->sync.n_peers = cluster_view_others(g, g->sync.peers);
	log_info("A node joined the view (%zu member(s)): exchanging state before anyone sends",
	         v->n_members);
	sd_notify(0, "STATUS=Exchanging state with the cluster");
	publish_control(g, json_pack("[o]", hello_change(g)));
	sync_progress(g);
	sd_event_source_set_enabled(g->sync.timer, SD_EVENT_ONESHOT);
	cluster_sync_continue(g);
}

void cluster_resync(Gateway *g)
{
	uint32_t ids[MEMBERS_MAX];

	if (g->sync.active || !replication_is_connected(g->replication) ||
	    view_nodeids(g, true, ids) <= 1)
		return;
	sync_start(g, true);
}

bool cluster_is_lowest(Gateway *g)
{
	for (size_t i = 0; i < g->members.n; i++) {
		const MemberNode *n = &g->members.nodes[i];

		if (!n->self && cluster_member_online(n) && n->nodeid && n->nodeid < g->nodeid)
			return false;
	}
	return true;
}

static void sync_finish(Gateway *g, const char *why)
{
	if (!g->sync.active)
		return;
	g->sync.active = false;
	sd_event_source_set_enabled(g->sync.timer, SD_EVENT_OFF);
	if (why)
		log_warning("Ending the state exchange: %s", why);
	else
		log_info("In step with the cluster: sent %llu record(s), received %llu",
		         (unsigned long long)g->sync.sent, (unsigned long long)g->sync.received);
	sd_notify(0, "STATUS=Serving");
	if (!why)
		for (size_t i = 0; i < g->members.n; i++) {
			MemberNode *n = &g->members.nodes[i];

			if (!n->self && n->in_view && n->announced && !n->store_error[0])
				n->whole_since = now_monotonic_usec();
		}
	takeover(g, true);
	g->dispatch.wanted = true;
	sd_event_source_set_enabled(g->dispatch.defer, SD_EVENT_ONESHOT);
	/* Both sides should now hold the same: check it at once. */
	check_request(g);
}

static int on_sync_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	Gateway *g = userdata;
	char why[96];

	snprintf(why, sizeof(why), "no progress for %u s ([cluster] exchange_timeout)",
	         g->config->exchange_timeout);
	sync_finish(g, why);
	return 0;
}

/* A delivery left "sending" on node/modem with nobody sending it goes back to the queue as a
 * failed attempt of that modem, to be tried again at once (by whoever owns it now). */
int cluster_requeue(Gateway *g, const char *alert_id, const char *number, const char *node,
                    const char *modem, const char *why)
{
	return publish_outbox_add(g,
	                          change_pack("result",
	                                      "{s:s, s:s, s:s, s:s, s:I, s:b, s:b, s:b, s:s}", "id",
	                                      alert_id, "to", number, "node", node, "modem", modem,
	                                      "at", (json_int_t)now_realtime_usec(), "ok", 0,
	                                      "permanent", 0, "retry_now", 1, "error", why),
	                          NULL);
}

static int takeover_one(const char *alert_id, const char *number, const char *modem, void *userdata)
{
	Gateway *g = userdata;
	const char *node = g->cluster.takeover_node;

	if (streq(node, g->config->node_name)) {
		/* Ours by the (merged) history, but no modem here has it: a send a restart
		 * interrupted, or an older assignment from the other half of a partition. */
		if (job_find_delivery(g, alert_id, number))
			return 0;
		log_ctx(LOG_NOTICE, &((LogContext){.alert_id = alert_id, .modem = modem}),
		        "Resuming the send to %s that no modem here has in hand", number);
		return cluster_requeue(g, alert_id, number, node, modem,
		                       "interrupted: no modem of this node had it in hand");
	}
	log_ctx(LOG_NOTICE, &((LogContext){.alert_id = alert_id, .modem = modem}),
	        "Taking over the send to %s that node '%s' had in hand", number, node);
	return cluster_requeue(g, alert_id, number, node, modem,
	                       "its node left the cluster before reporting");
}

/* Deliveries that an absent node had in hand go back to the queue, to be sent by whoever owns
 * them now; its queued ones change owner by themselves (members_owner()). Within the grace
 * period after this node (re)connected, absent nodes are left alone: they may be alive. After
 * a state exchange, and the first time after start, so do this node's own "sending" deliveries
 * that no modem here has: only once caught up, so that a send the other node finished while
 * this one was down is not marked interrupted. */
static void takeover(Gateway *g, bool merged)
{
	bool own = merged || g->cluster.resume_pending;

	if (g->stopping || !cluster_settled(g))
		return;
	g->cluster.resume_pending = false;
	for (size_t i = 0; i < g->members.n; i++) {
		MemberNode *n = &g->members.nodes[i];

		if (n->self ? !own : n->in_view)
			continue;
		g->cluster.takeover_node = n->name;
		store_sending_on_node(g->store, n->name, takeover_one, g);
		g->cluster.takeover_node = NULL;
	}
	/* Steps a departed node owned are ours now; and a step we published may have been lost
	 * with a corosync restart: publish again (a step applies once). */
	escalation_forget(g);
	escalation_run(g);
}

/* Drops from v the nodeids that are not in the view; returns how many are left. */
static size_t keep_in_view(uint32_t *v, size_t n, const uint32_t *ids, size_t n_ids)
{
	for (size_t i = 0; i < n;) {
		bool in = false;

		for (size_t j = 0; j < n_ids; j++)
			in |= ids[j] == v[i];
		if (in)
			i++;
		else
			v[i] = v[--n];
	}
	return n;
}

static void on_view(void *userdata, const ReplicationMember *members, size_t n_members)
{
	Gateway *g = userdata;
	const ReplicationView *v = replication_get_view(g->replication);
	uint32_t ids[MEMBERS_MAX];
	size_t n_ids = view_nodeids(g, false, ids);
	bool newcomer = false;

	for (size_t i = 0; i < n_members; i++) {
		if (members[i].nodeid != g->nodeid &&
		    (members[i].reason == REPLICATION_REASON_JOIN ||
		     members[i].reason == REPLICATION_REASON_NODEUP))
			newcomer = true;
	}
	for (size_t i = 0; i < v->n_left; i++) {
		MemberNode *n = members_by_nodeid(&g->members, v->left[i].nodeid);
		bool still = false;

		for (size_t j = 0; j < n_ids; j++)
			still |= ids[j] == v->left[i].nodeid;
		if (n && !n->self && !still) {
			log_ctx(LOG_WARNING, &((LogContext){.message_id = MESSAGE_ID_NODE_LEFT}),
			        "Node '%s' left the cluster (%s)", n->name,
			        replication_reason_to_string(v->left[i].reason));
			node_event(g, "node_left", n,
			           replication_reason_to_string(v->left[i].reason));
		}
	}
	publish_events(g);
	members_set_view(&g->members, ids, n_ids);
	g->cluster.n_refused = keep_in_view(g->cluster.refused, g->cluster.n_refused, ids, n_ids);
	log_info("Cluster view: %zu member(s)%s", n_members,
	         v->connected ? "" : " (the local corosync is unreachable)");

	/* Confirmations are no longer awaited from those who left. */
	for (PendingBatch *b = g->publish.awaiting; b; b = b->next)
		b->n_waiting = keep_in_view(b->waiting, b->n_waiting, ids, n_ids);
	awaiting_answer_ready(g);

	for (size_t i = 0; i < g->members.n; i++)
		if (!g->members.nodes[i].in_view)
			g->members.nodes[i].whole_since = 0;
	if (v->connected && n_ids > 1 && newcomer)
		sync_start(g, false);
	else if (g->sync.active) {
		g->sync.n_waiting = keep_in_view(g->sync.waiting, g->sync.n_waiting, ids, n_ids);
		g->sync.n_peers = keep_in_view(g->sync.peers, g->sync.n_peers, ids, n_ids);
		if (g->sync.n_waiting == 0 || n_ids <= 1)
			sync_finish(g, NULL);
		else /* perhaps the hello it waited for will not come */
			cluster_sync_continue(g);
	}
	takeover(g, false);
	sd_event_source_set_enabled(g->dispatch.defer, SD_EVENT_ONESHOT);
}

static void grace_restart(Gateway *g)
{
	if (!replication_is_clustered(g->replication) || g->config->peer_grace == 0)
		return;
	g->cluster.grace_until = now_monotonic_usec() + g->config->peer_grace * USEC_PER_SEC;
	sd_event_source_set_time(g->cluster.grace_timer, g->cluster.grace_until);
	sd_event_source_set_enabled(g->cluster.grace_timer, SD_EVENT_ONESHOT);
}

static int on_grace_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	Gateway *g = userdata;

	for (size_t i = 0; i < g->members.n; i++)
		if (!g->members.nodes[i].self && !g->members.nodes[i].in_view)
			log_notice(
			        "Node '%s' stayed away for the %u s grace period: taking over its "
			        "deliveries",
			        g->members.nodes[i].name, g->config->peer_grace);
	takeover(g, false);
	sd_event_source_set_enabled(g->dispatch.defer, SD_EVENT_ONESHOT);
	return 0;
}

static void on_connection(void *userdata, bool connected)
{
	Gateway *g = userdata;
	MemberNode *self = members_self(&g->members);

	if (connected) {
		g->nodeid = replication_nodeid(g->replication);
		if (self)
			self->nodeid = g->nodeid;
		log_info("Joined the cluster group '%s' as corosync node %u",
		         g->config->cluster_group, g->nodeid);
	} else if (!g->apply.held)
		log_warning("Lost the local corosync: accepting and delivering alone until it is "
		            "back");
	/* A restarted corosync first sees itself alone: do not take a live peer's work. */
	grace_restart(g);
}

static void on_quorum(void *userdata, bool quorate)
{
	log_info("Quorum %s", quorate ? "regained" : "lost");
}

/* The cluster part of status: the nodes, and what an operator should look at. */
json_t *cluster_json(Gateway *g, json_t *modems)
{
	bool clustered = replication_is_clustered(g->replication);
	json_t *members = json_array(), *warnings = json_array();
	char fp[33];

	config_fingerprint(g->config, fp);
	for (size_t i = 0; i < g->members.n; i++) {
		const MemberNode *n = &g->members.nodes[i];
		uint64_t seen =
		        n->self || cluster_member_online(n) ? now_realtime_usec() : n->last_seen;
		char at[RFC3339_MAX];
		size_t j;
		json_t *m;

		json_array_append_new(members,
		                      json_pack("{s:s, s:I, s:b, s:b, s:s?, s:s*}", "name", n->name,
		                                "id", (json_int_t)(n->self ? g->nodeid : n->nodeid),
		                                "online", cluster_member_online(n), "self", n->self,
		                                "last_seen", seen ? format_rfc3339(seen, at) : NULL,
		                                "store_error",
		                                n->self             ? stall_reason(g)
		                                : n->store_error[0] ? n->store_error
		                                                    : NULL));
		if (n->self)
			continue;
		/* The other node's modems, as it last announced them. */
		json_array_foreach(n->modems, j, m)
		{
			json_t *copy = json_deep_copy(m);

			if (copy && !cluster_member_online(n)) {
				char reason[96];

				snprintf(reason, sizeof(reason), "node %s is offline", n->name);
				json_object_set_new(copy, "state", json_string("absent"));
				json_object_set_new(copy, "reason", json_string(reason));
			}
			json_array_append_new(modems, copy);
		}
		if (n->store_error[0])
			json_array_append_new(
			        warnings, json_sprintf("the store of node %s cannot commit (%s): "
			                               "this node sends its deliveries",
			                               n->name, n->store_error));
		if (!cluster_member_online(n)) {
			if (n->remembered)
				json_array_append_new(warnings,
				                      json_sprintf("node %s is offline", n->name));
			continue;
		}
		if (!streq(fp, n->fingerprint))
			json_array_append_new(
			        warnings,
			        json_sprintf("node %s runs with other contacts, roles, escalation, "
			                     "dedupe or delivery settings",
			                     n->name));
		if (n->clock_skew_usec > (int64_t)CLOCK_SKEW_WARN_USEC ||
		    n->clock_skew_usec < -(int64_t)CLOCK_SKEW_WARN_USEC)
			json_array_append_new(
			        warnings,
			        json_sprintf("the clock of node %s is %+.1f s from ours", n->name,
			                     (double)n->clock_skew_usec / USEC_PER_SEC));
	}
	if (g->n_modems > 0) {
		size_t usable = 0;

		for (size_t i = 0; i < g->n_modems; i++)
			usable += modems_usable(&g->modems[i]);
		if (usable == 0)
			json_array_append_new(warnings,
			                      json_string("this node has no working SMS modem"));
	}
	if (clustered && !replication_is_connected(g->replication))
		json_array_append_new(
		        warnings, json_string("the local corosync is unreachable: working alone"));
	if (g->sync.active)
		json_array_append_new(warnings,
		                      json_string("exchanging state with a node that joined"));
	if (stall_active(g))
		json_array_append_new(
		        warnings,
		        json_sprintf("this node's store cannot commit (%s)%s", stall_reason(g),
		                     g->apply.held ? ": out of the cluster group until it can"
		                                   : ""));
	json_t *cluster =
	        json_pack("{s:b, s:b, s:b, s:b, s:s, s:o}", "enabled", clustered, "connected",
	                  replication_is_connected(g->replication), "quorate",
	                  replication_is_quorate(g->replication) == 1, "syncing", g->sync.active,
	                  "group", clustered ? g->config->cluster_group : "", "members", members);
	if (cluster && g->sync.active)
		json_object_set_new(cluster, "exchange",
		                    json_pack("{s:I, s:I}", "sent", (json_int_t)g->sync.sent,
		                              "received", (json_int_t)g->sync.received));
	if (cluster && clustered)
		check_json(g, warnings, cluster);
	if (cluster)
		json_object_set_new(cluster, "warnings", warnings);
	else
		json_decref(warnings);
	return cluster;
}

static int remember_node(const StoreNode *node, void *userdata)
{
	Gateway *g = userdata;
	MemberNode *n = members_get(&g->members, node->name, true);

	if (n && !n->self) {
		n->nodeid = node->nodeid;
		n->last_seen = node->last_seen;
		n->remembered = true;
		n->store_id = node->store_id;
		n->since = node->since;
	}
	return 0;
}

int gateway_start_cluster(Gateway *g)
{
	ReplicationCallbacks cb = {
	        .deliver = apply_on_deliver,
	        .view = on_view,
	        .connection = on_connection,
	        .quorum = on_quorum,
	};
	int r;

	if (!g->config->cluster_enabled)
		return replication_new_loopback(g->event, g->nodeid, &cb, g, &g->replication);

	/* The nodes met before: after a restart alone they keep their share for the grace. */
	r = store_nodes(g->store, remember_node, g);
	if (r < 0)
		return r;
	/* Sends a crash interrupted are resumed once this node has caught up (takeover()). */
	g->cluster.resume_pending = true;
	r = sd_event_add_time(g->event, &g->cluster.grace_timer, CLOCK_MONOTONIC, 0, USEC_PER_MSEC,
	                      on_grace_timer, g);
	if (r < 0)
		return r;
	sd_event_source_set_enabled(g->cluster.grace_timer, SD_EVENT_OFF);
	r = sd_event_add_time_relative(g->event, &g->sync.timer, CLOCK_MONOTONIC,
	                               (uint64_t)g->config->exchange_timeout * USEC_PER_SEC,
	                               USEC_PER_SEC, on_sync_timer, g);
	if (r < 0)
		return r;
	sd_event_source_set_enabled(g->sync.timer, SD_EVENT_OFF);
	/* A mark a second over the margin; a late tick may keep one more. */
	g->cluster.rev_cap = g->config->rejoin_margin + 8;
	g->cluster.revs = calloc(g->cluster.rev_cap, sizeof(*g->cluster.revs));
	if (!g->cluster.revs)
		return -ENOMEM;
	r = sd_event_add_time_relative(g->event, &g->cluster.rev_timer, CLOCK_MONOTONIC, 0,
	                               USEC_PER_MSEC, on_rev_timer, g);
	if (r < 0)
		return r;
	sd_event_source_set_enabled(g->cluster.rev_timer, SD_EVENT_ON);
	g->nodeid = 0; /* corosync's, once connected */
	r = replication_new_corosync(g->event, g->config->cluster_group, &cb, g, &g->replication);
	if (r < 0)
		return r;
	grace_restart(g);
	log_info("Cluster mode: group '%s', %u s grace for absent nodes after a (re)connect",
	         g->config->cluster_group, g->config->peer_grace);
	return 0;
}
