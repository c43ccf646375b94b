/* test-replication-unreachable: the corosync backend with no corosync to talk to.
 *
 * What DESIGN.md asks of a node whose corosync is down: it keeps accepting and delivering. The
 * backend must report "disconnected" and a view of this node alone, deliver what is published
 * locally, in order, flagged REPLICATION_DELIVERY_LOCAL (also what was published before the first
 * connection attempt failed), and keep retrying quietly. libqb's sockets are abstract unix
 * sockets, per network namespace, so a fresh namespace (unshare, as root) is certain to have no
 * corosync; without one, the test skips if a corosync answers here. */
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "replication.h"
#include "test.h"

typedef struct Seen {
	unsigned views, ups, downs;
	size_t n_members;
	bool view_connected;
	unsigned n_delivered, n_local;
	char delivered[8][8];
} Seen;

static Replication *current;

static void on_deliver(void *userdata, uint32_t from, const void *data, size_t len)
{
	Seen *s = userdata;

	if (s->n_delivered < 8 && len < 8) {
		memcpy(s->delivered[s->n_delivered], data, len);
		s->delivered[s->n_delivered][len] = '\0';
	}
	s->n_delivered++;
	if (replication_delivery_flags(current) & REPLICATION_DELIVERY_LOCAL)
		s->n_local++;
}

static void on_view(void *userdata, const ReplicationMember *members, size_t n)
{
	Seen *s = userdata;

	s->views++;
	s->n_members = n;
	s->view_connected = replication_get_view(current)->connected;
}

static void on_connection(void *userdata, bool up)
{
	Seen *s = userdata;

	if (up)
		s->ups++;
	else
		s->downs++;
}

static void run_for(sd_event *e, uint64_t usec)
{
	uint64_t start, now;

	sd_event_now(e, CLOCK_MONOTONIC, &start);
	do {
		check(sd_event_run(e, 10 * 1000) >= 0);
		sd_event_now(e, CLOCK_MONOTONIC, &now);
	} while (now - start < usec);
}

static void test_unreachable(void)
{
	ReplicationCallbacks cb = {
	        .deliver = on_deliver, .view = on_view, .connection = on_connection};
	_cleanup_(replication_freep) Replication *r = NULL;
	sd_event *e = NULL;
	Seen s = {0};
	const ReplicationView *v;
	ReplicationStats st;

	check_int(sd_event_new(&e), 0);
	check_int(replication_new_corosync(e, "", &cb, &s, &r), -EINVAL);
	check_int(replication_new_corosync(e, "test-unreachable", &cb, &s, &r), 0);
	current = r;
	check_int(replication_is_clustered(r), 1);
	/* Published before the first attempt: waits for its outcome, then is delivered here. */
	check_int(replication_publish(r, "early", 5), 0);
	run_for(e, 100 * 1000);
	if (s.ups > 0) {
		printf("SKIP: a corosync answers here (as root, a fresh network namespace has "
		       "none)\n");
		r = replication_free(r);
		sd_event_unref(e);
		exit(77);
	}
	check_int(s.downs, 1);
	check_int(s.views, 1);
	check_int(s.n_members, 1);
	check(!s.view_connected);
	check(!replication_is_connected(r));
	check_int(replication_is_quorate(r), -ENOTCONN);
	check_int(replication_nodeid(r), 0);
	check_int(s.n_delivered, 1);
	check_str(s.delivered[0], "early");

	check_int(replication_publish(r, "one", 3), 0);
	check_int(replication_publish(r, "two", 3), 0);
	check_int(s.n_delivered, 1);
	/* Several reconnection periods: deliveries happen, and retries stay silent. */
	run_for(e, 700 * 1000);
	check_int(s.n_delivered, 3);
	check_int(s.n_local, 3);
	check_str(s.delivered[1], "one");
	check_str(s.delivered[2], "two");
	check_int(s.downs, 1);
	check_int(s.views, 1);

	v = replication_get_view(r);
	check_int(v->n_members, 1);
	check_int(v->members[0].pid, getpid());
	{
		const uint32_t *ring;

		check_int(replication_get_ring(r, &ring), 0);
	}
	replication_get_stats(r, &st);
	check_int(st.published, 3);
	check_int(st.delivered_local, 3);
	check_int(st.messages_sent, 0);
	check_int(st.backlog, 0);

	r = replication_free(r);
	sd_event_unref(e);
}

int main(void)
{
	if (unshare(CLONE_NEWNET) < 0)
		fprintf(stderr, "unshare(CLONE_NEWNET): %s; using this namespace\n",
		        strerror(errno));
	run(test_unreachable);
	return test_exit();
}
