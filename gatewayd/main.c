/* gatewayd: the SMS alert gateway daemon. Parses the command line and the configuration, sets
 * up the one sd-event loop (signals, systemd watchdog) and hands over to the gateway. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "config.h"
#include "gateway.h"
#include "log.h"
#include "macro.h"

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
	const char *path = CONFIG_DEFAULT_PATH;
	bool check = false;
	sigset_t mask;
	int c, r;

	log_setup("gatewayd");
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

	r = config_load(path, &config, &error);
	if (r < 0) {
		fprintf(stderr, "gatewayd: %s\n", error ? error : strerror(-r));
		return EXIT_FAILURE;
	}
	log_set_node(config->node_name);
	if (check) {
		printf("%s: OK (%zu modem(s))\n", path, config->n_modems);
		return EXIT_SUCCESS;
	}

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
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
		return log_error_errno(r, "Cannot open the store in '%s': %m", config->state_dir),
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
