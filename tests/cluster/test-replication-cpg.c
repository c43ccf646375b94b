/* test-replication-cpg: a small replication client driven line by line, for the cluster tests.
 *
 *     test-replication-cpg [--group NAME] [--label L] [--loopback NODEID]
 *
 * Joins the group through replication_new_corosync() (or runs loopback) in one sd-event loop and
 * reads commands on stdin:
 *     publish N [PER_TURN [SIZE]]  publish N payloads "L:SEQ", PER_TURN (default 10) per loop
 *                                  turn, each padded with '.' to SIZE bytes (default: no padding)
 *     raw TEXT                     publish TEXT as one payload (a foreign node, for gatewayd's
 *                                  tests)
 *     stats                        print the counters
 *     quit                         leave (also on EOF, SIGTERM, SIGINT)
 * and prints one line per event on stdout, each starting with CLOCK_MONOTONIC in microseconds:
 *     T connection up|down nodeid=N
 *     T view seq=S n=N members=ID/PID:REASON,... left=ID/PID:REASON,... connected=0|1
 *     T quorum 0|1
 *     T deliver FROM FLAGS PAYLOAD      (payload cut at the first '.', i.e. without padding)
 *     T published N rc=R
 *     T stats published=... delivered=... local=... messages=... try_again=... ring=ID,...
 * The driver (test_cpg_backend.py) compares what both nodes print. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "replication.h"

typedef struct Client {
	sd_event *event;
	Replication *replication;
	sd_event_source *publisher;
	const char *label;
	char line[4096];
	size_t line_len;
	unsigned long next_seq;
	unsigned long to_publish;
	unsigned long per_turn;
	unsigned long published_now;
	size_t size;
	int first_error;
} Client;

static unsigned long long now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000;
}

static void print_members(const char *key, const ReplicationMember *m, size_t n)
{
	printf(" %s=", key);
	for (size_t i = 0; i < n; i++)
		printf("%s%u/%u:%s", i ? "," : "", m[i].nodeid, m[i].pid,
		       replication_reason_to_string(m[i].reason));
}

static void on_deliver(void *userdata, uint32_t from, const void *data, size_t len)
{
	Client *c = userdata;
	const char *p = data;
	size_t n = 0;

	while (n < len && p[n] != '.')
		n++;
	printf("%llu deliver %u %u %.*s\n", now_usec(), from,
	       replication_delivery_flags(c->replication), (int)n, p);
}

static void on_view(void *userdata, const ReplicationMember *members, size_t n_members)
{
	Client *c = userdata;
	const ReplicationView *v = replication_get_view(c->replication);

	printf("%llu view seq=%llu n=%zu", now_usec(), (unsigned long long)v->seq, n_members);
	print_members("members", members, n_members);
	print_members("left", v->left, v->n_left);
	printf(" connected=%d\n", v->connected);
}

static void on_connection(void *userdata, bool connected)
{
	Client *c = userdata;

	printf("%llu connection %s nodeid=%u\n", now_usec(), connected ? "up" : "down",
	       replication_nodeid(c->replication));
}

static void on_quorum(void *userdata, bool quorate)
{
	printf("%llu quorum %d\n", now_usec(), quorate);
}

static void print_stats(Client *c)
{
	ReplicationStats s;

	replication_get_stats(c->replication, &s);
	const uint32_t *ring;
	size_t n_ring = replication_get_ring(c->replication, &ring);

	printf("%llu stats published=%llu delivered=%llu local=%llu messages=%llu try_again=%llu "
	       "connections=%llu backlog=%zu connected=%d quorate=%d nodeid=%u ring=",
	       now_usec(), (unsigned long long)s.published, (unsigned long long)s.delivered,
	       (unsigned long long)s.delivered_local, (unsigned long long)s.messages_sent,
	       (unsigned long long)s.try_again, (unsigned long long)s.connections, s.backlog,
	       replication_is_connected(c->replication), replication_is_quorate(c->replication),
	       replication_nodeid(c->replication));
	for (size_t i = 0; i < n_ring; i++)
		printf("%s%u", i ? "," : "", ring[i]);
	printf("\n");
}

/* A timer due at once, re-armed per turn: a defer source that re-enables itself (or stays ON)
 * keeps sd-event from polling, and the CPG fd would starve. */
static void publisher_arm(Client *c, uint64_t usec)
{
	sd_event_source_set_time_relative(c->publisher, usec);
	sd_event_source_set_enabled(c->publisher, SD_EVENT_ONESHOT);
}

static int on_publish_turn(sd_event_source *s, uint64_t usec, void *userdata)
{
	Client *c = userdata;
	bool full = false;
	static char buf[REPLICATION_PAYLOAD_MAX];

	for (unsigned long i = 0; i < c->per_turn && c->to_publish > 0; i++) {
		int n = snprintf(buf, sizeof(buf), "%s:%lu", c->label, c->next_seq);
		size_t len = (size_t)n;
		int r;

		if (c->size > len && c->size <= sizeof(buf)) {
			memset(buf + len, '.', c->size - len);
			len = c->size;
		}
		r = replication_publish(c->replication, buf, len);
		if (r == -ENOBUFS) {
			full = true; /* the backlog drains as deliveries come back */
			break;
		}
		if (r < 0) {
			if (!c->first_error)
				c->first_error = r;
			c->to_publish = 0;
			break;
		}
		c->next_seq++;
		c->published_now++;
		c->to_publish--;
	}
	if (c->to_publish == 0)
		printf("%llu published %lu rc=%d\n", now_usec(), c->published_now, c->first_error);
	else
		publisher_arm(c, full ? 1000 : 0);
	return 0;
}

static void run_command(Client *c, char *line)
{
	unsigned long n = 0, per_turn = 10, size = 0;

	if (sscanf(line, "publish %lu %lu %lu", &n, &per_turn, &size) >= 1) {
		c->to_publish += n;
		c->per_turn = per_turn ? per_turn : 1;
		c->size = size;
		c->published_now = 0;
		c->first_error = 0;
		publisher_arm(c, 0);
	} else if (strncmp(line, "raw ", 4) == 0) {
		int r = replication_publish(c->replication, line + 4, strlen(line + 4));

		printf("%llu published 1 rc=%d\n", now_usec(), r);
	} else if (strcmp(line, "stats") == 0) {
		print_stats(c);
	} else if (strcmp(line, "quit") == 0) {
		sd_event_exit(c->event, 0);
	} else if (line[0]) {
		printf("%llu error unknown command '%s'\n", now_usec(), line);
	}
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	Client *c = userdata;
	ssize_t n;

	if (c->line_len >= sizeof(c->line) - 1)
		c->line_len = 0; /* an overlong line is dropped */
	n = read(fd, c->line + c->line_len, sizeof(c->line) - 1 - c->line_len);
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		sd_event_exit(c->event, 0);
		return 0;
	}
	c->line_len += (size_t)n;
	for (;;) {
		char *nl = memchr(c->line, '\n', c->line_len);
		size_t used;

		if (!nl)
			break;
		*nl = '\0';
		run_command(c, c->line);
		used = (size_t)(nl - c->line) + 1;
		memmove(c->line, nl + 1, c->line_len - used);
		c->line_len -= used;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
	        {"group", required_argument, NULL, 'g'},
	        {"label", required_argument, NULL, 'l'},
	        {"loopback", required_argument, NULL, 'L'},
	        {NULL, 0, NULL, 0},
	};
	ReplicationCallbacks cb = {
	        .deliver = on_deliver,
	        .view = on_view,
	        .connection = on_connection,
	        .quorum = on_quorum,
	};
	Client c = {.label = "x", .per_turn = 10};
	const char *group = "gatewayd-test";
	long loopback = -1;
	sigset_t mask;
	int opt, r;

	while ((opt = getopt_long(argc, argv, "", options, NULL)) >= 0) {
		switch (opt) {
		case 'g':
			group = optarg;
			break;
		case 'l':
			c.label = optarg;
			break;
		case 'L':
			loopback = strtol(optarg, NULL, 10);
			break;
		default:
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);

	r = sd_event_default(&c.event);
	if (r < 0)
		goto fail;
	r = sd_event_add_signal(c.event, NULL, SIGTERM, NULL, NULL);
	if (r >= 0)
		r = sd_event_add_signal(c.event, NULL, SIGINT, NULL, NULL);
	if (r >= 0)
		r = sd_event_add_io(c.event, NULL, STDIN_FILENO, EPOLLIN, on_stdin, &c);
	if (r >= 0)
		r = sd_event_add_time_relative(c.event, &c.publisher, CLOCK_MONOTONIC, 0, 0,
		                               on_publish_turn, &c);
	if (r < 0)
		goto fail;
	sd_event_source_set_enabled(c.publisher, SD_EVENT_OFF);

	if (loopback >= 0)
		r = replication_new_loopback(c.event, (uint32_t)loopback, &cb, &c, &c.replication);
	else
		r = replication_new_corosync(c.event, group, &cb, &c, &c.replication);
	if (r < 0)
		goto fail;

	r = sd_event_loop(c.event);
	print_stats(&c);
	replication_free(c.replication);
	sd_event_source_unref(c.publisher);
	sd_event_unref(c.event);
	return r < 0 ? 1 : 0;
fail:
	fprintf(stderr, "test-replication-cpg: %s\n", strerror(-r));
	return 1;
}
