/* gatewayd: the SMS alert gateway daemon. Parses the command line and the configuration, sets
 * up the one sd-event loop (signals, systemd watchdog) and hands over to the gateway. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "fdbudget.h"
#include "gateway.h"
#include "log.h"
#include "macro.h"
#include "util.h"

/* The user of the systemd unit (packaging/systemd/gatewayd.service.in). */
#define SERVICE_USER "gatewayd"

DEFINE_TRIVIAL_CLEANUP_FUNC(Config, config_free)
DEFINE_TRIVIAL_CLEANUP_FUNC(Gateway, gateway_free)

static void help(void)
{
	printf("Usage: gatewayd [-c CONFIG] [--check] [--debug]\n"
	       "\n"
	       "SMS alert gateway daemon.\n"
	       "\n"
	       "  -c, --config PATH   configuration file (default " CONFIG_DEFAULT_PATH ")\n"
	       "      --check         check the configuration and exit\n"
	       "  -d, --debug         log debug messages\n"
	       "  -h, --help          show this help\n"
	       "      --version       show the version\n"
	       "\n"
	       "See gatewayd(8) and gatewayd.conf(5).\n");
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	Gateway **gateway = userdata;

	log_info("Received %s, shutting down", strsignal((int)si->ssi_signo));
	if (*gateway)
		gateway_stop(*gateway);
	else
		sd_event_exit(sd_event_source_get_event(s), 0);
	return 0;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	Gateway **gateway = userdata;

	log_info("Received SIGHUP, reloading the configuration");
	if (*gateway)
		gateway_reload(*gateway);
	return 0;
}

/* Run by root, --check answers for the service user: the daemon runs as gatewayd, and a file
 * root can read but gatewayd cannot (a key made by root, a config without the group) would pass
 * here and fail at start. Returns 1 when it switched, 0 when not root or no such user. */
static int check_become_service_user(void)
{
	struct passwd *pw;

	if (geteuid() != 0)
		return 0;
	pw = getpwnam(SERVICE_USER);
	if (!pw)
		return 0;
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0)
		return -errno;
	return 1;
}

static int check_access(const char *what, const char *path, int mode, const char *user)
{
	if (!path || access(path, mode) == 0)
		return 0;
	fprintf(stderr, "gatewayd: %s '%s' is not %s by %s: %s\n", what, path,
	        mode & W_OK    ? "writable"
	        : mode == X_OK ? "executable"
	                       : "readable",
	        user, strerror(errno));
	return -1;
}

/* What start-up opens, tried for access, so that --check fails where the start would. */
static int check_files(const Config *c, const char *user)
{
	_cleanup_free_ char *metrics = c->metrics_textfile ? strdup(c->metrics_textfile) : NULL;
	_cleanup_free_ char *on_ack =
	        c->hooks_on_ack ? strndup(c->hooks_on_ack, strcspn(c->hooks_on_ack, " \t")) : NULL;
	int r = 0;

	/* Absent, it is made at start (by systemd's StateDirectory= under the unit). */
	if (access(c->state_dir, F_OK) == 0)
		r |= check_access("the state directory", c->state_dir, R_OK | W_OK | X_OK, user);
	r |= check_access("[submit] CURVE secret key", c->submit_curve.secret_key_file, R_OK, user);
	r |= check_access("[submit] CURVE clients directory", c->submit_curve.clients_dir,
	                  R_OK | X_OK, user);
	r |= check_access("[events] CURVE secret key", c->events_curve.secret_key_file, R_OK, user);
	r |= check_access("[events] CURVE clients directory", c->events_curve.clients_dir,
	                  R_OK | X_OK, user);
	if (metrics)
		r |= check_access("the [metrics] textfile directory", dirname(metrics), W_OK | X_OK,
		                  user);
	r |= check_access("the [hooks] on_ack command", on_ack, X_OK, user);
	return r;
}

int main(int argc, char *argv[])
{
	static const struct option options[] = {
	        {"config", required_argument, NULL, 'c'}, {"check", no_argument, NULL, 'C'},
	        {"debug", no_argument, NULL, 'd'},        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0}};
	_cleanup_(config_freep) Config *config = NULL;
	_cleanup_(gateway_freep) Gateway *gateway = NULL;
	_cleanup_(sd_event_unrefp) sd_event *event = NULL;
	_cleanup_free_ char *error = NULL;
	const char *path = CONFIG_DEFAULT_PATH, *user = NULL;
	uint64_t nofile_before = 0, nofile = 0;
	bool check = false;
	sigset_t mask;
	int c, r;

	log_setup("gatewayd");
	tz_pin("/etc/localtime"); /* before any thread starts */
	while ((c = getopt_long(argc, argv, "c:dh", options, NULL)) >= 0) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'C':
			check = true;
			break;
		case 'd':
			log_set_max_level(LOG_DEBUG);
			break;
		case 'h':
			help();
			return EXIT_SUCCESS;
		case 'V':
			printf("gatewayd %s\n", VERSION);
			return EXIT_SUCCESS;
		default:
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "gatewayd: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}

	if (check) {
		r = check_become_service_user();
		if (r < 0) {
			fprintf(stderr, "gatewayd: cannot check as user %s: %s\n", SERVICE_USER,
			        strerror(-r));
			return EXIT_FAILURE;
		}
		user = r > 0 ? "user " SERVICE_USER : "this user";
	}
	r = config_load(path, &config, &error);
	if (r < 0) {
		fprintf(stderr, "gatewayd: %s\n", error ? error : strerror(-r));
		return EXIT_FAILURE;
	}
	log_set_node(config->node_name);
	/* The check looks at the hard limit, the one start-up raises the soft limit to. */
	r = fdbudget_check(config, check ? fdbudget_hard_limit() : UINT64_MAX, &error);
	if (r < 0) {
		fprintf(stderr, "gatewayd: %s: %s\n", path, error ? error : strerror(-r));
		return EXIT_FAILURE;
	}
	if (check) {
		if (check_files(config, user) < 0)
			return EXIT_FAILURE;
		printf("%s: OK (%zu modem(s)), checked as %s\n", path, config->n_modems, user);
		return EXIT_SUCCESS;
	}

	r = fdbudget_raise(&nofile_before, &nofile);
	if (r < 0)
		log_warning_errno(r, "Cannot raise the file descriptor limit: %m");
	else
		log_info("File descriptors: limit %llu (soft limit was %llu), at most %llu in use "
		         "by "
		         "the connection caps and the reserve",
		         (unsigned long long)nofile, (unsigned long long)nofile_before,
		         (unsigned long long)fdbudget_needed(config));
	r = fdbudget_check(config, nofile ? nofile : fdbudget_hard_limit(), &error);
	if (r < 0) {
		log_error("%s: %s", path, error ? error : strerror(-r));
		return EXIT_FAILURE;
	}

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	/* Hooks' children are reaped through the loop (sd_event_add_child), which needs SIGCHLD
	 * blocked in every thread: before any is created. */
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);

	r = sd_event_default(&event);
	if (r < 0)
		return log_error_errno(r, "Cannot create the event loop: %m"), EXIT_FAILURE;
	sd_event_add_signal(event, NULL, SIGTERM, on_signal, &gateway);
	sd_event_add_signal(event, NULL, SIGINT, on_signal, &gateway);
	sd_event_add_signal(event, NULL, SIGHUP, on_sighup, &gateway);
	/* Keeps the service alive and fed while the loop turns (WATCHDOG_USEC from systemd). */
	sd_event_set_watchdog(event, true);

	r = gateway_new(event, config, &gateway);
	if (r < 0)
		return log_error_errno(r, "Cannot open the store in '%s': %s%m", config->state_dir,
		                       errno_fd_prefix(r)),
		       EXIT_FAILURE;
	r = gateway_start(gateway);
	if (r < 0)
		return log_error_errno(r, "Start-up failed: %m"), EXIT_FAILURE;

	sd_notifyf(0, "READY=1\nSTATUS=Serving on %s with %zu modem(s)", config->submit_bind,
	           config->n_modems);
	r = sd_event_loop(event);
	if (r < 0)
		return log_error_errno(r, "Event loop failed: %m"), EXIT_FAILURE;
	log_info("Stopped");
	return EXIT_SUCCESS;
}
