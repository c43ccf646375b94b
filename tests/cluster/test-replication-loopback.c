/* test-replication-loopback: the solo backend through the common interface: first view from the
 * loop, deliveries on a later turn and in order, limits. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "replication.h"
#include "test.h"

typedef struct Seen {
	unsigned views;
	size_t n_members;
	ReplicationMember self;
	char delivered[16][16];
	unsigned n_delivered;
	unsigned flags;
	uint32_t from;
} Seen;

static void on_deliver(void *userdata, uint32_t from, const void *data, size_t len)
{
	Seen *s = userdata;

	if (s->n_delivered < 16 && len < 16) {
		memcpy(s->delivered[s->n_delivered], data, len);
		s->delivered[s->n_delivered][len] = '\0';
	}
	s->n_delivered++;
	s->from = from;
}

static void on_view(void *userdata, const ReplicationMember *members, size_t n)
{
	Seen *s = userdata;

	s->views++;
	s->n_members = n;
	if (n > 0)
		s->self = members[0];
}

static void test_loopback(void)
{
	ReplicationCallbacks cb = {.deliver = on_deliver, .view = on_view};
	_cleanup_(replication_freep) Replication *r = NULL;
	sd_event *e = NULL;
	Seen s = {0};
	const ReplicationView *v;
	ReplicationStats st;

	check_int(sd_event_new(&e), 0);
	check_int(replication_new_loopback(e, 7, &cb, &s, &r), 0);
	check_int(s.views, 0); /* the first view comes from the loop */
	check_int(replication_is_clustered(r), 0);
	check(replication_is_connected(r));
	check_int(replication_is_quorate(r), 1);
	check_int(replication_nodeid(r), 7);

	check_int(replication_publish(r, "one", 3), 0);
	check_int(replication_publish(r, "two", 3), 0);
	check_int(s.n_delivered, 0); /* never from inside publish() */
	for (int i = 0; i < 5; i++)
		check(sd_event_run(e, 0) >= 0);
	check_int(s.views, 1);
	check_int(s.n_members, 1);
	check_int(s.self.nodeid, 7);
	check_int(s.self.pid, getpid());
	check_int(s.self.reason, REPLICATION_REASON_JOIN);
	check_int(s.n_delivered, 2);
	check_str(s.delivered[0], "one");
	check_str(s.delivered[1], "two");
	check_int(s.from, 7);
	check_int(replication_delivery_flags(r), 0);

	v = replication_get_view(r);
	check_int(v->seq, 1);
	check(v->connected);
	check_int(v->n_left, 0);
	{
		const uint32_t *ring;

		check_int(replication_get_ring(r, &ring), 1);
		check_int(ring[0], 7);
	}

	check_int(replication_publish(r, NULL, REPLICATION_PAYLOAD_MAX + 1), -EMSGSIZE);
	replication_get_stats(r, &st);
	check_int(st.published, 2);
	check_int(st.delivered, 2);
	check_int(st.backlog, 0);

	r = replication_free(r);
	sd_event_unref(e);
}

static void test_free_with_backlog(void)
{
	ReplicationCallbacks cb = {.deliver = on_deliver, .view = on_view};
	Replication *r = NULL;
	sd_event *e = NULL;
	Seen s = {0};

	check_int(sd_event_new(&e), 0);
	check_int(replication_new_loopback(e, 1, &cb, &s, &r), 0);
	check_int(replication_publish(r, "x", 1), 0);
	/* Freed before the first turn: no callback may run afterwards (ASan would tell). */
	replication_free(r);
	check(sd_event_run(e, 0) >= 0);
	check_int(s.views, 0);
	check_int(s.n_delivered, 0);
	sd_event_unref(e);
}

int main(void)
{
	run(test_loopback);
	run(test_free_with_backlog);
	return test_exit();
}
