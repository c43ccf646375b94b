/* gateway-metrics: the Prometheus text file, for node_exporter's textfile collector.
 *
 * A file rather than an HTTP endpoint: the appliance opens no port, node_exporter already runs
 * on the machine, and a file written by the event loop every [metrics] interval costs nothing
 * between writes. The figures are those of `status` (built by requests_status_json(), so the two
 * never disagree), with a few counts status does not show. Both nodes' modems and members appear,
 * as this node knows them.
 *
 * The file is replaced atomically (a hidden temporary file in the same directory, renamed over
 * it), so a scrape never reads half a file; the temporary name does not end in .prom, so the
 * collector never reads it either. A failed write is logged once per streak of failures and
 * never stops the daemon: monitoring of the gateway must not become a way to break it. A clean
 * stop leaves gatewayd_up 0 behind; after a crash the file is stale, which node_exporter's
 * node_textfile_mtime_seconds shows. */
#include "gateway-internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "metrics-text.h"

#ifndef VERSION
#define VERSION "unknown"
#endif

#define METRICS_ACCURACY_USEC (100 * USEC_PER_MSEC)

DEFINE_TRIVIAL_CLEANUP_FUNC(MetricsText, metrics_text_free)

static const char *const alert_states[] = {"queued",    "sending", "sent",
                                           "delivered", "failed",  "expired"};
static const char *const modem_states[] = {"ok", "degraded", "failed", "absent"};

static double jnum(json_t *o, const char *k)
{
	json_t *v = json_object_get(o, k);

	return json_is_number(v) ? json_number_value(v) : 0;
}

static void format_up(MetricsText *t, const char *node, bool up)
{
	metrics_text_family(t, "gatewayd_up", "gauge",
	                    "1 while gatewayd runs and rewrites this file; 0 after a clean stop");
	metrics_text_sample(t, up ? 1 : 0, NULL);
	metrics_text_family(t, "gatewayd_build_info", "gauge",
	                    "Always 1; the labels name the running version and this node");
	metrics_text_sample(t, 1, "version", VERSION, "node", node, NULL);
}

static int format_all(Gateway *g, MetricsText *t)
{
	_cleanup_(json_decrefp) json_t *status = requests_status_json(g);
	json_t *queue, *modems, *cluster, *m;
	StoreMetrics sm;
	uint64_t now = now_realtime_usec();
	size_t i;
	int r;

	if (!status)
		return -ENOMEM;
	r = store_metrics(g->store, &sm);
	if (r < 0)
		return r;
	queue = json_object_get(status, "queue");
	modems = json_object_get(status, "modems");
	cluster = json_object_get(status, "cluster");

	format_up(t, g->config->node_name, true);

	metrics_text_family(t, "gatewayd_alerts", "gauge",
	                    "Alerts in the store by state (final ones until the retention purges "
	                    "them)");
	for (i = 0; i < ELEMENTSOF(alert_states); i++)
		metrics_text_sample(t, jnum(queue, alert_states[i]), "state", alert_states[i],
		                    NULL);
	metrics_text_family(t, "gatewayd_queue_oldest_age_seconds", "gauge",
	                    "Age of the oldest alert not yet final; 0 when none waits");
	metrics_text_sample(t,
	                    sm.oldest_open_at && now > sm.oldest_open_at
	                            ? (double)((now - sm.oldest_open_at) / USEC_PER_MSEC) / 1000.0
	                            : 0,
	                    NULL);
	metrics_text_family(t, "gatewayd_alerts_acknowledged", "gauge",
	                    "Alerts in the store that were acknowledged");
	metrics_text_sample(t, (double)sm.acknowledged, NULL);
	metrics_text_family(t, "gatewayd_escalations", "gauge",
	                    "Escalation steps taken for unacknowledged critical alerts");
	metrics_text_sample(t, (double)sm.escalations, NULL);
	metrics_text_family(t, "gatewayd_voice_calls", "gauge",
	                    "Voice calls made by the fallback, every outcome");
	metrics_text_sample(t, jnum(json_object_get(status, "voice"), "calls"), NULL);

	/* Every node's modems; one family at a time, as the format wants them grouped. */
	metrics_text_family(t, "gatewayd_modem_state", "gauge",
	                    "1 for the modem's current state, 0 for the others");
	json_array_foreach(modems, i, m)
	{
		for (size_t s = 0; s < ELEMENTSOF(modem_states); s++)
			metrics_text_sample(t, streq(jstr(m, "state"), modem_states[s]), "node",
			                    jstr(m, "node"), "modem", jstr(m, "name"), "state",
			                    modem_states[s], NULL);
	}
	metrics_text_family(t, "gatewayd_modem_signal", "gauge",
	                    "Signal quality, 27.007 CSQ: 0 to 31, 99 unknown");
	json_array_foreach(modems, i, m) metrics_text_sample(
	        t, jnum(m, "signal"), "node", jstr(m, "node"), "modem", jstr(m, "name"), NULL);
	metrics_text_family(t, "gatewayd_modem_sent", "gauge",
	                    "SMS the modem sent, over the history the store holds");
	json_array_foreach(modems, i, m) metrics_text_sample(
	        t, jnum(m, "sent"), "node", jstr(m, "node"), "modem", jstr(m, "name"), NULL);
	metrics_text_family(t, "gatewayd_modem_failed", "gauge",
	                    "Failed send attempts of the modem, over the history the store holds");
	json_array_foreach(modems, i, m) metrics_text_sample(
	        t, jnum(m, "failed"), "node", jstr(m, "node"), "modem", jstr(m, "name"), NULL);

	metrics_text_family(t, "gatewayd_cluster_enabled", "gauge",
	                    "1 in a cluster, 0 in solo mode");
	metrics_text_sample(t, json_is_true(json_object_get(cluster, "enabled")), NULL);
	metrics_text_family(t, "gatewayd_cluster_quorate", "gauge",
	                    "1 while the corosync cluster has quorum");
	metrics_text_sample(t, json_is_true(json_object_get(cluster, "quorate")), NULL);
	metrics_text_family(t, "gatewayd_cluster_member_up", "gauge",
	                    "1 for each node seen online (this one included), 0 for one away");
	json_array_foreach(json_object_get(cluster, "members"), i, m) metrics_text_sample(
	        t, json_is_true(json_object_get(m, "online")), "node", jstr(m, "name"), NULL);
	return 0;
}

static int write_fully(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The path is absolute (config.c), so it has a slash. No fsync: a file lost in a power cut is
 * rewritten within an interval, and fsync every few seconds would cost the store's disk. */
static int write_atomically(const char *path, const char *text, size_t len)
{
	const char *slash = strrchr(path, '/');
	_cleanup_free_ char *tmp = NULL;
	int fd, r;

	if (asprintf(&tmp, "%.*s/.%s.XXXXXX", (int)(slash - path), path, slash + 1) < 0) {
		tmp = NULL;
		return -ENOMEM;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* mkostemp makes it 0600; node_exporter runs as another user. */
	r = fchmod(fd, 0644) < 0 ? -errno : write_fully(fd, text, len);
	if (close(fd) < 0 && r >= 0)
		r = -errno;
	if (r >= 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0)
		(void)unlink(tmp);
	return r;
}

static void metrics_update(Gateway *g, bool up)
{
	_cleanup_(metrics_text_freep) MetricsText *t = NULL;
	const char *path = g->config->metrics_textfile, *text;
	size_t len;
	int r;

	r = metrics_text_new(&t);
	if (r >= 0) {
		if (up)
			r = format_all(g, t);
		else
			format_up(t, g->config->node_name, false);
	}
	if (r >= 0)
		r = metrics_text_finish(t, &text, &len);
	if (r >= 0)
		r = write_atomically(path, text, len);
	if (r < 0) {
		/* Once per streak: a full disk must not also fill the journal. */
		if (!g->metrics.failing)
			log_warning_errno(r,
			                  "Cannot write the metrics file '%s' (said once until "
			                  "it works again): %m",
			                  path);
		g->metrics.failing = true;
		return;
	}
	if (g->metrics.failing)
		log_info("Writing the metrics file '%s' works again", path);
	g->metrics.failing = false;
}

static int on_metrics_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	Gateway *g = userdata;

	(void)usec;
	metrics_update(g, true);
	/* From the end of this write: a slow store delays the next write, never piles them up. */
	(void)sd_event_source_set_time_relative(s, (uint64_t)g->config->metrics_interval *
	                                                   USEC_PER_SEC);
	(void)sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
	return 0;
}

/* Said once at start, by name: a directory the service cannot write to only shows otherwise as
 * a metrics file that never appears. */
static void metrics_check_directory(const char *path)
{
	_cleanup_free_ char *dir = strdup(path);
	char *slash = dir ? strrchr(dir, '/') : NULL;

	if (!slash)
		return;
	*slash = '\0';
	if (access(*dir ? dir : "/", W_OK | X_OK) < 0)
		log_warning_errno(
		        errno,
		        "[metrics] textfile: the directory '%s' must exist and be writable "
		        "by the gatewayd user or group (the package's tmpfiles.d entry "
		        "creates /var/lib/prometheus/node-exporter so): %m",
		        *dir ? dir : "/");
}

int metrics_start(Gateway *g)
{
	if (!g->config->metrics_textfile)
		return 0;
	metrics_check_directory(g->config->metrics_textfile);
	/* The first file at once, so that it exists as soon as the daemon serves. */
	return sd_event_add_time_relative(g->event, &g->metrics.timer, CLOCK_MONOTONIC, 0,
	                                  METRICS_ACCURACY_USEC, on_metrics_timer, g);
}

void metrics_stop(Gateway *g)
{
	if (!g->metrics.timer)
		return;
	g->metrics.timer = sd_event_source_disable_unref(g->metrics.timer);
	metrics_update(g, false);
}
