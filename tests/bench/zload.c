/* zload: the benchmark's ZeroMQ load generator in C, so that the clients take little of the cores
 * the gateway is measured on (bench.py's Python clients took a quarter of one at 3,000 alerts/s).
 * Not installed; bench.py runs it through tests/bench/clients.py.
 *
 *   zload load  --clients N --window W --endpoints EP[,EP...] FILE
 *   zload paced --rate R [--pool P] --endpoints EP[,EP...] FILE
 *
 * FILE holds one request per line (JSON, as sent). Every client is a DEALER socket of its own (an
 * empty delimiter frame, as the README allows), connected to the endpoints in turn, and answers
 * one status round trip before the clock starts. Then zload prints "ready" on stdout and waits for
 * a line on stdin, so that the caller can read its counters at the start.
 *
 * load: request i goes to client i % N; each client keeps W requests in flight. The same as
 * clients.load() with N processes, in one thread.
 * paced: open loop; request i leaves at t0 + i / R to endpoint i % E, each on a socket of its own
 * from that endpoint's pool of P (one in flight per socket), and its latency counts from the
 * scheduled time (no coordinated omission). The same as clients.paced().
 *
 * The result is one JSON object on stdout, in clients.py's terms: queued, other (replies that
 * were not "queued", by status or error), seconds, cpu (this process, s), errors, and for paced
 * lat, service and lag (s) and dry (sends that found the pool empty). Exits 0 once it has
 * reported, also when some replies were missing (errors says which). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define QUIET_LIMIT_SEC 30.0 /* no reply for this long: report what we have */
#define MIN_SIZE(a, b)  ((a) < (b) ? (a) : (b))

typedef struct {
	void *sock;
	size_t endpoint;
	/* load: the requests of this client, and how many went out / came back */
	size_t *mine, n_mine, sent, done;
	/* paced: whether a request is in flight, and its times */
	bool busy;
	double sched, sent_at;
} Client;

typedef struct {
	char **lines;
	size_t *lens, n;
} Requests;

static double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_sec(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int read_requests(const char *path, Requests *r)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, alloc = 0;
	ssize_t len;

	if (!f)
		return -errno;
	while ((len = getline(&line, &cap, f)) >= 0) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = 0;
		if (len == 0)
			continue;
		if (r->n == alloc) {
			alloc = alloc ? 2 * alloc : 1024;
			r->lines = realloc(r->lines, alloc * sizeof(char *));
			r->lens = realloc(r->lens, alloc * sizeof(size_t));
			if (!r->lines || !r->lens)
				return -ENOMEM;
		}
		r->lens[r->n] = (size_t)len;
		r->lines[r->n++] = strdup(line);
	}
	free(line);
	fclose(f);
	return 0;
}

static int send_request(void *sock, const char *data, size_t len)
{
	if (zmq_send(sock, "", 0, ZMQ_SNDMORE) < 0 || zmq_send(sock, data, len, 0) < 0)
		return -errno;
	return 0;
}

/* Reads one reply (all its frames); its last frame in buf, NUL-terminated. -EAGAIN when there is
 * none and `flags` has ZMQ_DONTWAIT. */
static int recv_reply(void *sock, char *buf, size_t size, int flags)
{
	int more = 1, n = 0;
	size_t len = sizeof(more);

	for (bool first = true; more; first = false) {
		n = zmq_recv(sock, buf, size - 1, first ? flags : 0);
		if (n < 0)
			return -errno;
		if (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &len) < 0)
			return -errno;
	}
	buf[MIN_SIZE((size_t)n, size - 1)] = 0;
	return 0;
}

/* Counts a reply: queued, or under its status or error in `other`. */
static void tally(const char *body, size_t *queued, json_t *other)
{
	json_t *o, *k;
	const char *key = "unparsable";

	if (strstr(body, "\"queued\"")) {
		(*queued)++;
		return;
	}
	o = json_loads(body, 0, NULL);
	k = o ? json_object_get(o, "status") : NULL;
	if (!json_is_string(k) && o)
		k = json_object_get(o, "error");
	if (json_is_string(k))
		key = json_string_value(k);
	json_object_set_new(other, key,
	                    json_integer(json_integer_value(json_object_get(other, key)) + 1));
	json_decref(o);
}

/* "ready", then wait for the caller's go. */
static void handshake(void)
{
	char line[16];

	printf("ready\n");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		exit(2);
}

static int connect_clients(void *ctx, Client *c, size_t n, char **endpoints, size_t n_endpoints)
{
	char buf[4096];

	for (size_t i = 0; i < n; i++) {
		int zero = 0;

		c[i].sock = zmq_socket(ctx, ZMQ_DEALER);
		if (!c[i].sock || zmq_setsockopt(c[i].sock, ZMQ_LINGER, &zero, sizeof(zero)) < 0 ||
		    zmq_connect(c[i].sock, endpoints[c[i].endpoint % n_endpoints]) < 0)
			return -errno;
		if (send_request(c[i].sock, "{\"op\":\"status\"}", 15) < 0)
			return -errno;
	}
	for (size_t i = 0; i < n; i++) {
		zmq_pollitem_t it = {.socket = c[i].sock, .events = ZMQ_POLLIN};

		if (zmq_poll(&it, 1, 20000) != 1)
			return -ETIMEDOUT;
		if (recv_reply(c[i].sock, buf, sizeof(buf), 0) < 0)
			return -errno;
	}
	return 0;
}

/* Every client connected and answered once, then the caller's go; exits when that fails. */
static void connect_all(void *ctx, Client *c, size_t n, char **endpoints, size_t n_endpoints)
{
	int r = connect_clients(ctx, c, n, endpoints, n_endpoints);

	if (r < 0) {
		fprintf(stderr, "zload: connecting: %s\n", strerror(-r));
		exit(1);
	}
	handshake();
}

static json_t *run_load(void *ctx, const Requests *rq, size_t n_clients, size_t window,
                        char **endpoints, size_t n_endpoints)
{
	Client *c = calloc(n_clients, sizeof(Client));
	zmq_pollitem_t *items = calloc(n_clients, sizeof(zmq_pollitem_t));
	json_t *other = json_object(), *errors = json_array();
	size_t queued = 0, done = 0;
	double t0, t1, cpu0, quiet_since;
	char buf[65536];

	for (size_t i = 0; i < n_clients; i++) {
		c[i].endpoint = i;
		c[i].mine = calloc(rq->n / n_clients + 1, sizeof(size_t));
		for (size_t k = i; k < rq->n; k += n_clients)
			c[i].mine[c[i].n_mine++] = k;
	}
	connect_all(ctx, c, n_clients, endpoints, n_endpoints);
	cpu0 = cpu_sec();
	t0 = quiet_since = now_sec();
	for (size_t i = 0; i < n_clients; i++) {
		items[i] = (zmq_pollitem_t){.socket = c[i].sock, .events = ZMQ_POLLIN};
		while (c[i].sent < MIN_SIZE(window, c[i].n_mine)) {
			size_t k = c[i].mine[c[i].sent++];

			send_request(c[i].sock, rq->lines[k], rq->lens[k]);
		}
	}
	while (done < rq->n) {
		int n = zmq_poll(items, (int)n_clients, 1000);

		if (n < 0 && errno != EINTR)
			break;
		if (n <= 0) {
			if (now_sec() - quiet_since > QUIET_LIMIT_SEC) {
				json_array_append_new(
				        errors, json_sprintf("%zu of %zu replies missing after "
				                             "%.0f s without one",
				                             rq->n - done, rq->n, QUIET_LIMIT_SEC));
				break;
			}
			continue;
		}
		quiet_since = now_sec();
		for (size_t i = 0; i < n_clients; i++) {
			if (!(items[i].revents & ZMQ_POLLIN))
				continue;
			/* everything this socket has now, without waiting */
			while (c[i].done < c[i].sent) {
				if (recv_reply(c[i].sock, buf, sizeof(buf), ZMQ_DONTWAIT) < 0)
					break;
				c[i].done++;
				done++;
				tally(buf, &queued, other);
				if (c[i].sent < c[i].n_mine) {
					size_t k = c[i].mine[c[i].sent++];

					send_request(c[i].sock, rq->lines[k], rq->lens[k]);
				}
			}
		}
	}
	t1 = now_sec();
	return json_pack("{s:I, s:o, s:f, s:f, s:o}", "queued", (json_int_t)queued, "other", other,
	                 "seconds", t1 - t0, "cpu", cpu_sec() - cpu0, "errors", errors);
}

static json_t *run_paced(void *ctx, const Requests *rq, double rate, size_t pool, char **endpoints,
                         size_t n_endpoints)
{
	size_t n_socks = pool * n_endpoints, i = 0, queued = 0, inflight = 0, dry = 0;
	Client *c = calloc(n_socks, sizeof(Client));
	zmq_pollitem_t *items = calloc(n_socks, sizeof(zmq_pollitem_t));
	json_t *other = json_object(), *errors = json_array(), *lat = json_array(),
	       *service = json_array(), *lag = json_array();
	double t0, t1, cpu0, quiet_since;
	char buf[65536];

	for (size_t k = 0; k < n_socks; k++)
		c[k].endpoint = k / pool;
	connect_all(ctx, c, n_socks, endpoints, n_endpoints);
	for (size_t k = 0; k < n_socks; k++)
		items[k] = (zmq_pollitem_t){.socket = c[k].sock, .events = ZMQ_POLLIN};
	cpu0 = cpu_sec();
	t0 = quiet_since = now_sec();
	while (i < rq->n || inflight > 0) {
		double now = now_sec(), wait;
		int n;

		/* every request whose time has come, each on a free socket of its endpoint */
		while (i < rq->n && t0 + (double)i / rate <= now) {
			size_t ep = i % n_endpoints, k;

			for (k = ep * pool; k < (ep + 1) * pool && c[k].busy; k++)
				;
			if (k == (ep + 1) * pool) {
				dry++; /* leaves late, its latency still counts from its time */
				break;
			}
			c[k].busy = true;
			c[k].sched = t0 + (double)i / rate;
			send_request(c[k].sock, rq->lines[i], rq->lens[i]);
			c[k].sent_at = now_sec();
			json_array_append_new(lag, json_real(c[k].sent_at - c[k].sched));
			inflight++;
			i++;
		}
		wait = i < rq->n ? t0 + (double)i / rate - now_sec() : 0.1;
		n = zmq_poll(items, (int)n_socks, wait > 0 ? (long)(wait * 1000) : 0);
		if (n < 0 && errno != EINTR)
			break;
		now = now_sec();
		if (n <= 0) {
			if (inflight > 0 && now - quiet_since > QUIET_LIMIT_SEC) {
				json_array_append_new(
				        errors, json_sprintf("%zu requests unanswered for %.0f s",
				                             inflight, QUIET_LIMIT_SEC));
				break;
			}
			continue;
		}
		quiet_since = now;
		for (size_t k = 0; k < n_socks; k++) {
			if (!(items[k].revents & ZMQ_POLLIN) || !c[k].busy)
				continue;
			if (recv_reply(c[k].sock, buf, sizeof(buf), ZMQ_DONTWAIT) < 0)
				continue;
			now = now_sec();
			json_array_append_new(lat, json_real(now - c[k].sched));
			json_array_append_new(service, json_real(now - c[k].sent_at));
			tally(buf, &queued, other);
			c[k].busy = false;
			inflight--;
		}
	}
	t1 = now_sec();
	return json_pack("{s:I, s:o, s:f, s:f, s:o, s:o, s:o, s:o, s:I}", "queued",
	                 (json_int_t)queued, "other", other, "seconds", t1 - t0, "cpu",
	                 cpu_sec() - cpu0, "errors", errors, "lat", lat, "service", service, "lag",
	                 lag, "dry", (json_int_t)dry);
}

static void usage(void)
{
	fprintf(stderr, "usage: zload load --clients N --window W --endpoints EP[,EP...] FILE\n"
	                "       zload paced --rate R [--pool P] --endpoints EP[,EP...] FILE\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"clients", required_argument, NULL, 'c'},
	                                     {"window", required_argument, NULL, 'w'},
	                                     {"rate", required_argument, NULL, 'r'},
	                                     {"pool", required_argument, NULL, 'p'},
	                                     {"endpoints", required_argument, NULL, 'e'},
	                                     {}};
	size_t clients = 8, window = 8, pool = 64, n_endpoints = 0;
	char *endpoints[16], *list = NULL, *save = NULL;
	double rate = 1000;
	Requests rq = {0};
	json_t *out;
	void *ctx;
	int o;

	if (argc < 2)
		usage();
	while ((o = getopt_long(argc - 1, argv + 1, "", opts, NULL)) >= 0) {
		switch (o) {
		case 'c':
			clients = strtoul(optarg, NULL, 10);
			break;
		case 'w':
			window = strtoul(optarg, NULL, 10);
			break;
		case 'r':
			rate = strtod(optarg, NULL);
			break;
		case 'p':
			pool = strtoul(optarg, NULL, 10);
			break;
		case 'e':
			list = optarg;
			break;
		default:
			usage();
		}
	}
	if (!list || optind + 1 != argc - 1 || clients == 0 || window == 0 || pool == 0 ||
	    rate <= 0)
		usage();
	for (char *ep = strtok_r(list, ",", &save); ep && n_endpoints < 16;
	     ep = strtok_r(NULL, ",", &save))
		endpoints[n_endpoints++] = ep;
	if (read_requests(argv[optind + 1], &rq) < 0 || rq.n == 0) {
		fprintf(stderr, "zload: no requests in %s\n", argv[optind + 1]);
		return 1;
	}
	ctx = zmq_ctx_new();
	if (strcmp(argv[1], "load") == 0)
		out = run_load(ctx, &rq, clients, window, endpoints, n_endpoints);
	else if (strcmp(argv[1], "paced") == 0)
		out = run_paced(ctx, &rq, rate, pool, endpoints, n_endpoints);
	else
		usage();
	json_dumpf(out, stdout, JSON_COMPACT);
	printf("\n");
	fflush(stdout);
	_exit(0); /* sockets with LINGER 0: nothing to wait for */
}
