/* gateway-reload: SIGHUP (systemctl reload) re-reads the configuration file.
 *
 * The new file is parsed by the same parser as at start into a new Config. What the daemon
 * built its sockets, store, modems, cluster membership, dialer and timers from cannot change
 * while it runs: if any of those differ, the reload is refused by name (journal and
 * "gatewayctl status") and the old Config stays in use, whole. Otherwise the new Config takes
 * the old one's place: contacts, roles and their rota, escalation, dedupe window, retries,
 * limits (queue, parts, the submit rate and ops) are read from g->config where they are used,
 * and the CURVE allow lists are read again by server_reload().
 *
 * Older Configs are kept until the gateway is freed, never freed on a reload: the modems'
 * settings, timers and the server were made from them and may still point into them. One
 * Config per successful reload is a bounded cost for something an operator does by hand. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "admission.h"
#include "gateway-internal.h"
#include "log.h"
#include "server.h"
#include "util.h"

static bool curve_same(const CurveConfig *a, const CurveConfig *b)
{
	return streq_ptr(a->secret_key_file, b->secret_key_file) &&
	       streq_ptr(a->clients_dir, b->clients_dir);
}

static bool modem_same(const ModemConfig *a, const ModemConfig *b)
{
	return streq_ptr(a->name, b->name) && streq_ptr(a->device, b->device) &&
	       streq_ptr(a->connection, b->connection) && streq_ptr(a->pin, b->pin) &&
	       a->send_timeout == b->send_timeout && a->command_timeout == b->command_timeout &&
	       a->health_interval == b->health_interval && a->inbox_interval == b->inbox_interval &&
	       streq_ptr(a->imei, b->imei) && a->min_signal == b->min_signal &&
	       a->max_consecutive_failures == b->max_consecutive_failures &&
	       a->delivery_reports == b->delivery_reports && streq_ptr(a->number, b->number);
}

/* The first setting that needs a restart and differs, as its section and key; NULL when none. */
static const char *reload_fixed_difference(const Config *a, const Config *b)
{
	if (!streq_ptr(a->node_name, b->node_name))
		return "[node] name";
	if (!streq_ptr(a->state_dir, b->state_dir))
		return "[node] state_dir";
	if (!streq_ptr(a->submit_bind, b->submit_bind))
		return "[submit] bind";
	/* The connection caps sized the file descriptor budget and the sockets at start. */
	if (a->submit_max_clients != b->submit_max_clients)
		return "[submit] max_clients";
	if (a->events_max_clients != b->events_max_clients)
		return "[events] max_clients";
	if (a->control_max_clients != b->control_max_clients)
		return "[control] max_clients";
	if (!curve_same(&a->submit_curve, &b->submit_curve))
		return "[submit] CURVE key files";
	if (!streq_ptr(a->events_bind, b->events_bind))
		return "[events] bind";
	if (!curve_same(&a->events_curve, &b->events_curve))
		return "[events] CURVE key files";
	if (!streq_ptr(a->control_bind, b->control_bind))
		return "[control] bind";
	if (a->cluster_enabled != b->cluster_enabled ||
	    !streq_ptr(a->cluster_group, b->cluster_group) || a->peer_grace != b->peer_grace ||
	    a->check_interval != b->check_interval || a->rejoin_margin != b->rejoin_margin ||
	    a->exchange_timeout != b->exchange_timeout)
		return "[cluster]";
	if (a->selftest_interval != b->selftest_interval ||
	    a->selftest_timeout != b->selftest_timeout)
		return "[selftest]";
	if (a->n_modems != b->n_modems)
		return "the [modem] sections";
	for (size_t i = 0; i < a->n_modems; i++)
		if (!modem_same(&a->modems[i], &b->modems[i]))
			return "a [modem] section";
	if (!streq_ptr(a->voice_modem, b->voice_modem) ||
	    !streq_ptr(a->voice_device, b->voice_device) ||
	    !streq_ptr(a->voice_contact_center, b->voice_contact_center) ||
	    a->voice_ring_timeout != b->voice_ring_timeout || a->voice_hold != b->voice_hold ||
	    a->voice_retries != b->voice_retries || a->voice_retry_delay != b->voice_retry_delay ||
	    a->voice_recall != b->voice_recall)
		return "[voice]";
	if (!streq_ptr(a->metrics_textfile, b->metrics_textfile) ||
	    a->metrics_interval != b->metrics_interval)
		return "[metrics]";
	return NULL;
}

static void reload_refuse(Gateway *g, char *reason)
{
	log_warning("Reload of '%s' refused, the running configuration stays: %s", g->config->path,
	            reason);
	free(g->reload.refused);
	g->reload.refused = reason;
}

int gateway_reload_config(Gateway *g, const char *path)
{
	_cleanup_free_ char *error = NULL;
	Admission *admission = NULL;
	Config **configs, *c = NULL;
	const char *fixed;
	char *reason;
	int r;

	r = config_load(path, &c, &error);
	if (r < 0) {
		if (asprintf(&reason, "%s", error ? error : strerror(-r)) >= 0)
			reload_refuse(g, reason);
		return r;
	}
	fixed = reload_fixed_difference(g->config, c);
	if (fixed) {
		if (asprintf(&reason, "%s changed: it needs a restart (systemctl restart gatewayd)",
		             fixed) >= 0)
			reload_refuse(g, reason);
		config_free(c);
		return -EBUSY;
	}
	configs = reallocarray(g->reload.configs_owned, g->reload.n_configs_owned + 1,
	                       sizeof(*configs));
	if (!configs) {
		config_free(c);
		return log_error_errno(-ENOMEM, "Reload failed: %m");
	}
	g->reload.configs_owned = configs;
	r = admission_new(c, &admission);
	if (r < 0) {
		config_free(c);
		return log_error_errno(r, "Reload failed: %m");
	}
	g->reload.configs_owned[g->reload.n_configs_owned++] = c;
	admission_free(g->admission);
	g->admission = admission;
	g->config = c;
	g->reload.loaded_at = now_realtime_usec();
	g->reload.refused = mfree(g->reload.refused);
	server_reload(g->server);
	log_info("Reloaded '%s': %zu contact(s), %zu role(s), %zu escalation step(s)", path,
	         c->n_contacts, c->n_roles, c->n_escalation_steps);
	return 0;
}

json_t *reload_status_json(const Gateway *g)
{
	json_t *o =
	        json_pack("{s:I}", "loaded_at", (json_int_t)(g->reload.loaded_at / USEC_PER_SEC));

	if (o && g->reload.refused)
		json_object_set_new(o, "reload_refused", json_string(g->reload.refused));
	return o;
}

void reload_free(Gateway *g)
{
	for (size_t i = 0; i < g->reload.n_configs_owned; i++)
		config_free(g->reload.configs_owned[i]);
	g->reload.configs_owned = mfree(g->reload.configs_owned);
	g->reload.n_configs_owned = 0;
	g->reload.refused = mfree(g->reload.refused);
}
