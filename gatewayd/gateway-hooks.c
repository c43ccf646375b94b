/* gateway-hooks: commands run when something happens to an alert ([hooks] on_ack).
 *
 * A hook tells the system an alert came from that a human took it (Nagios's external command
 * file, Zabbix's API, an Alertmanager silence), so that the monitoring stops asking too. It
 * runs once, on the node where the acknowledgment was made: every node applies the replicated
 * ack, but only the one named in the change's "node" field acts on it, and only when the ack
 * changed something (a replay or a repeated ack runs nothing). It is collected while the ack
 * is applied and started after the commit, so a payload that is rolled back and applied again
 * starts it once. Its outcome goes to the journal, and to the alert's story as a "write-back"
 * line through a replicated "hook" change (applied alike on every node, so the stores stay
 * identical).
 *
 * The command is split at blanks and executed directly (posix_spawn, no shell), with the
 * alert's fields in its environment only: text from upstream systems never becomes part of a
 * command line. It gets /dev/null as input, shares the daemon's output (the journal), starts
 * in a process group of its own with default signal dispositions and an empty signal mask,
 * and no descriptor of the daemon's beyond 0-2.
 *
 * The loop never waits for it: the child is watched through sd-event (a pidfd, with SIGCHLD
 * blocked in every thread since main()), and a timer kills its whole process group after
 * [hooks] timeout. At most HOOKS_RUNNING_MAX run at once; up to HOOKS_QUEUED_MAX more wait in
 * order, and beyond that a hook is dropped with a warning: a flood of acknowledgments must not
 * turn into a fork bomb nor into unbounded memory. */
#include "gateway-internal.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#define HOOK_PATH_DEFAULT "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
/* Passed on from the daemon's environment when set there. */
static const char *const passed_env[] = {"LANG", "LC_ALL", "TZ"};

struct HookRun {
	struct HookRun *next;
	Gateway *g;
	const char *name; /* "on_ack": static */
	json_t *fields;   /* {"GATEWAYD_...": value} */
	char alert_id[ID_HEX_LEN + 1];
	pid_t pid;
	uint64_t started; /* monotonic usec */
	unsigned timeout; /* seconds, [hooks] timeout when it started */
	bool timed_out;
	sd_event_source *child, *timer;
};

static HookRun *hook_free(HookRun *h)
{
	if (!h)
		return NULL;
	sd_event_source_disable_unref(h->child);
	sd_event_source_disable_unref(h->timer);
	json_decref(h->fields);
	free(h);
	return NULL;
}

static const char *hook_command(Gateway *g, const char *name)
{
	return streq(name, "on_ack") ? g->config->hooks_on_ack : NULL;
}

/* Appends "name=value" to the NULL-terminated vector env of n_max entries. */
static int env_add(char **env, size_t *n, size_t n_max, const char *name, const char *value)
{
	if (*n + 1 >= n_max)
		return -E2BIG;
	if (asprintf(&env[*n], "%s=%s", name, value) < 0) {
		env[*n] = NULL;
		return -ENOMEM;
	}
	env[++*n] = NULL;
	return 0;
}

/* The child's whole environment: PATH, a few of the daemon's, the hook's fields. */
static int hook_environment(HookRun *h, char **env, size_t n_max)
{
	const char *k, *path = getenv("PATH");
	json_t *v;
	size_t n = 0;
	int r;

	r = env_add(env, &n, n_max, "PATH", path && *path ? path : HOOK_PATH_DEFAULT);
	for (size_t i = 0; r >= 0 && i < ELEMENTSOF(passed_env); i++) {
		const char *value = getenv(passed_env[i]);

		if (value)
			r = env_add(env, &n, n_max, passed_env[i], value);
	}
	json_object_foreach(h->fields, k, v)
	{
		if (r < 0)
			break;
		r = env_add(env, &n, n_max, k, json_string_value(v));
	}
	return r;
}

static void free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
}

static void hook_done(HookRun *h);

static const char *signal_name(int sig)
{
	const char *name = sigabbrev_np(sig);

	return name ? name : "?";
}

/* The outcome in the alert's story, on every node. */
static void hook_story(HookRun *h, const char *outcome)
{
	Gateway *g = h->g;

	publish_outbox_add(g,
	                   change_pack("hook", "{s:s, s:s, s:s, s:I, s:s}", "id", h->alert_id,
	                               "hook", h->name, "node", g->config->node_name, "at",
	                               (json_int_t)now_realtime_usec(), "outcome", outcome),
	                   NULL);
}

static int on_hook_exit(sd_event_source *s, const siginfo_t *si, void *userdata)
{
	HookRun *h = userdata;
	LogContext ctx = {.alert_id = h->alert_id};
	double took = (double)(now_monotonic_usec() - h->started) / USEC_PER_SEC;
	char outcome[80];

	if (si->si_code == CLD_EXITED && si->si_status == 0)
		snprintf(outcome, sizeof(outcome), "ended after %.1f s: exit status 0", took);
	else if (si->si_code == CLD_EXITED)
		snprintf(outcome, sizeof(outcome), "failed after %.1f s: exit status %d", took,
		         si->si_status);
	else if (h->timed_out)
		snprintf(outcome, sizeof(outcome),
		         "killed: still running after its timeout of %u s", h->timeout);
	else
		snprintf(outcome, sizeof(outcome), "failed after %.1f s: killed by signal %s", took,
		         signal_name(si->si_status));
	log_ctx(si->si_code == CLD_EXITED && si->si_status == 0 ? LOG_INFO : LOG_WARNING, &ctx,
	        "Hook %s %s", h->name, outcome);
	hook_story(h, outcome);
	/* The rest of its process group goes with it: nothing a hook started outlives it. */
	(void)kill(-h->pid, SIGKILL);
	hook_done(h);
	return 0;
}

static int on_hook_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	HookRun *h = userdata;

	h->timed_out = true;
	if (kill(-h->pid, SIGKILL) < 0)
		(void)kill(h->pid, SIGKILL);
	return 0;
}

/* Starts h; on failure, says why and leaves h to the caller. */
static int hook_spawn(Gateway *g, HookRun *h)
{
	const char *command = hook_command(g, h->name);
	_cleanup_free_ char *copy = NULL;
	char *argv[64], *env[64] = {NULL}, *save = NULL;
	LogContext ctx = {.alert_id = h->alert_id};
	posix_spawn_file_actions_t actions;
	posix_spawnattr_t attr;
	sigset_t none, all;
	size_t argc = 0;
	int r;

	if (!command) /* reloaded without it meanwhile */
		return log_ctx(LOG_INFO, &ctx, "Hook %s not run: no longer configured", h->name),
		       -ENOENT;
	copy = strdup(command);
	if (!copy)
		return log_error_errno(ENOMEM, "Hook %s not run: %m", h->name);
	for (char *w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
		if (argc + 1 >= ELEMENTSOF(argv))
			return log_ctx_errno(LOG_ERR, E2BIG, &ctx,
			                     "Hook %s not run: more than %zu words in '%s'",
			                     h->name, ELEMENTSOF(argv) - 1, command);
		argv[argc++] = w;
	}
	argv[argc] = NULL;
	r = hook_environment(h, env, ELEMENTSOF(env));
	if (r < 0) {
		free_strv(env);
		return log_ctx_errno(LOG_ERR, r, &ctx, "Hook %s not run: its environment: %m",
		                     h->name);
	}

	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
	                                        POSIX_SPAWN_SETPGROUP);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawn_file_actions_init(&actions);
	posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
	r = -posix_spawn(&h->pid, argv[0], &actions, &attr, argv, env);
	posix_spawn_file_actions_destroy(&actions);
	posix_spawnattr_destroy(&attr);
	free_strv(env);
	if (r < 0)
		return log_ctx_errno(LOG_ERR, r, &ctx, "Hook %s not run: cannot execute '%s': %m",
		                     h->name, argv[0]);

	h->started = now_monotonic_usec();
	h->timeout = g->config->hooks_timeout;
	r = sd_event_add_child(g->event, &h->child, h->pid, WEXITED, on_hook_exit, h);
	if (r >= 0)
		r = sd_event_add_time_relative(g->event, &h->timer, CLOCK_MONOTONIC,
		                               (uint64_t)h->timeout * USEC_PER_SEC,
		                               100 * USEC_PER_MSEC, on_hook_timeout, h);
	if (r < 0) {
		/* Not watched, so not bounded: it must not run on unwatched. */
		(void)kill(-h->pid, SIGKILL);
		(void)waitpid(h->pid, NULL, 0);
		return log_ctx_errno(LOG_ERR, r, &ctx, "Hook %s stopped: cannot watch it: %m",
		                     h->name);
	}
	log_ctx(LOG_DEBUG, &ctx, "Hook %s started: %s (pid %d)", h->name, argv[0], (int)h->pid);
	return 0;
}

/* Starts what waits, while there is room. */
static void hooks_pump(Gateway *g)
{
	while (g->hooks.queued && g->hooks.n_running < HOOKS_RUNNING_MAX) {
		HookRun *h = g->hooks.queued;

		g->hooks.queued = h->next;
		g->hooks.n_queued--;
		h->next = NULL;
		if (hook_spawn(g, h) < 0) {
			hook_free(h);
			continue;
		}
		h->next = g->hooks.running;
		g->hooks.running = h;
		g->hooks.n_running++;
	}
}

static void hook_done(HookRun *h)
{
	Gateway *g = h->g;

	for (HookRun **p = &g->hooks.running; *p; p = &(*p)->next)
		if (*p == h) {
			*p = h->next;
			g->hooks.n_running--;
			break;
		}
	hook_free(h);
	hooks_pump(g);
}

static void hook_enqueue(Gateway *g, const char *name, const char *alert_id, json_t *fields)
{
	HookRun *h, **tail;

	if (g->hooks.n_queued >= HOOKS_QUEUED_MAX) {
		g->hooks.dropped++;
		log_ctx(LOG_WARNING, &((LogContext){.alert_id = alert_id}),
		        "Hook %s dropped: %zu running and %zu waiting already (%llu dropped so "
		        "far)",
		        name, g->hooks.n_running, g->hooks.n_queued,
		        (unsigned long long)g->hooks.dropped);
		return;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		log_error_errno(ENOMEM, "Hook %s not run: %m", name);
		return;
	}
	*h = (HookRun){.g = g, .name = name, .fields = json_incref(fields)};
	snprintf(h->alert_id, sizeof(h->alert_id), "%s", alert_id);
	for (tail = &g->hooks.queued; *tail; tail = &(*tail)->next)
		;
	*tail = h;
	g->hooks.n_queued++;
}

int hooks_ack_later(Gateway *g, json_t *c)
{
	_cleanup_(json_decrefp) json_t *alert = NULL;
	const char *id = jstr(c, "id");
	char at[RFC3339_MAX];
	json_t *fields;
	int r;

	if (!g->config->hooks_on_ack || !streq(jstr(c, "node"), g->config->node_name))
		return 0;
	r = store_alert_json(g->store, id, false, &alert);
	if (r < 0)
		return r;
	fields = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "GATEWAYD_HOOK", "on_ack",
	                   "GATEWAYD_NODE", g->config->node_name, "GATEWAYD_ALERT_ID", id,
	                   "GATEWAYD_ALERT_KEY", jstr(alert, "key"), "GATEWAYD_ALERT_SOURCE",
	                   jstr(alert, "source"), "GATEWAYD_ALERT_TEXT", jstr(alert, "text"),
	                   "GATEWAYD_ACK_BY", jstr(c, "by"), "GATEWAYD_ACK_VIA", jstr(c, "via"));
	if (!fields)
		return -ENOMEM;
	if (json_object_set_new(fields, "GATEWAYD_ALERT_PRIORITY",
	                        json_string(jstr(alert, "priority"))) < 0 ||
	    json_object_set_new(fields, "GATEWAYD_ACK_AT",
	                        json_string(format_rfc3339(ju64(c, "at"), at))) < 0) {
		json_decref(fields);
		return -ENOMEM;
	}
	return json_array_append_new(g->hooks.due, fields) < 0 ? -ENOMEM : 0;
}

void hooks_forget(Gateway *g)
{
	json_array_clear(g->hooks.due);
}

void hooks_run(Gateway *g)
{
	json_t *fields;
	size_t i;

	json_array_foreach(g->hooks.due, i, fields)
	{
		const char *name = jstr(fields, "GATEWAYD_HOOK");

		hook_enqueue(g, streq(name, "on_ack") ? "on_ack" : "?",
		             jstr(fields, "GATEWAYD_ALERT_ID"), fields);
		hooks_pump(g); /* the queue's room is for those that wait, not for a burst */
	}
	json_array_clear(g->hooks.due);
}

void hooks_free(Gateway *g)
{
	/* Stopping: what runs is killed and reaped, what waits is not started. */
	while (g->hooks.running) {
		HookRun *h = g->hooks.running;

		g->hooks.running = h->next;
		(void)kill(-h->pid, SIGKILL);
		(void)waitpid(h->pid, NULL, 0);
		log_ctx(LOG_NOTICE, &((LogContext){.alert_id = h->alert_id}),
		        "Hook %s killed: the daemon stops", h->name);
		hook_free(h);
	}
	while (g->hooks.queued) {
		HookRun *h = g->hooks.queued;

		g->hooks.queued = h->next;
		log_ctx(LOG_NOTICE, &((LogContext){.alert_id = h->alert_id}),
		        "Hook %s not run: the daemon stops", h->name);
		hook_free(h);
	}
	g->hooks.n_running = g->hooks.n_queued = 0;
	json_decref(g->hooks.due);
	g->hooks.due = NULL;
}

int apply_hook(Gateway *g, json_t *c, const ChangeOrigin *origin)
{
	char detail[120];

	snprintf(detail, sizeof(detail), "%s %s", jstr(c, "hook"), jstr(c, "outcome"));
	return store_history_add(g->store, jstr(c, "id"), ju64(c, "at"), "write-back",
	                         jstr(c, "node"), detail);
}
