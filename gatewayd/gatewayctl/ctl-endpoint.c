/* ctl-endpoint: where gatewayctl finds the control or submit socket of its gatewayd.
 *
 * The daemon's config file is the one place that says where the socket is, so gatewayctl reads
 * the same file rather than growing a setting of its own. It reads [control] bind when there is
 * one (that socket serves every op, to whoever the file mode lets in, without CURVE keys), else
 * [submit] bind, leniently: a file
 * that gatewayd would reject still names the socket of a daemon that may be running with an
 * older, valid copy. What a bind address means to a server and to a client differ, though: a
 * daemon bound to every interface (host "*" or "0.0.0.0") is reached through loopback, which is the
 * one interface sure to be among them.
 *
 * The default file is often readable by root alone (it holds SIM PINs); for anyone else its
 * absence or unreadability falls back to the default endpoint with a warning, so that a plain
 * `gatewayctl -e ...` or the default setup keeps working. A file named with -c must be read. */
#include "ctl-endpoint.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"

typedef struct ConfigScan {
	char *bind;         /* [submit] bind */
	char *control_bind; /* [control] bind */
	bool oom;
} ConfigScan;

static int config_handler(void *user, const char *section, const char *name, const char *value)
{
	ConfigScan *scan = user;
	char **field, *copy;

	if (!streq(name, "bind"))
		return 1;
	if (streq(section, "control"))
		field = &scan->control_bind;
	else if (streq(section, "submit"))
		field = &scan->bind;
	else
		return 1;
	/* The last assignment wins, as it does for most INI readers. */
	copy = strdup(value);
	if (!copy) {
		scan->oom = true;
		return 0;
	}
	free(*field);
	*field = copy;
	return 1;
}

int ctl_endpoint_from_config(const char *path, char **ret_bind)
{
	_cleanup_fclose_ FILE *f = NULL;
	ConfigScan scan = {.bind = NULL};
	int r;

	f = fopen(path, "re");
	if (!f)
		return -errno;

	errno = 0;
	r = ini_parse_file(f, config_handler, &scan);
	if (scan.oom || r == -2 || ferror(f)) {
		r = scan.oom || r == -2 ? -ENOMEM : errno > 0 ? -errno : -EIO;
		free(scan.bind);
		free(scan.control_bind);
		return r;
	}
	if (r > 0)
		log_debug("%s:%d: line not understood, ignored", path, r);

	/* The control socket serves every op and needs no CURVE key: the operator's way in. */
	if (scan.control_bind) {
		free(scan.bind);
		*ret_bind = scan.control_bind;
	} else
		*ret_bind = scan.bind;
	return 0;
}

int ctl_endpoint_connectable(const char *bind, char **ret)
{
	static const char *const wildcards[] = {"*", "0.0.0.0", "[::]"};
	size_t len = strlen(bind);
	const char *host, *colon;
	char *s;

	if (len <= 6 || strncmp(bind, "tcp://", 6) != 0)
		goto keep;
	host = bind + 6;
	colon = NULL; /* the last ':' (a loop: GCC 12 with ASan misreads strrchr here) */
	for (const char *p = host; *p; p++)
		if (*p == ':')
			colon = p;
	if (!colon)
		goto keep;

	for (size_t i = 0; i < ELEMENTSOF(wildcards); i++) {
		const char *w = wildcards[i];

		if (strlen(w) != (size_t)(colon - host) || strncmp(host, w, strlen(w)) != 0)
			continue;
		if (asprintf(&s, "tcp://%s%s", w[0] == '[' ? "[::1]" : "127.0.0.1", colon) < 0)
			return -ENOMEM;
		*ret = s;
		return 0;
	}

keep:
	s = strdup(bind);
	if (!s)
		return -ENOMEM;
	*ret = s;
	return 0;
}

int ctl_endpoint_resolve(const char *endpoint, const char *config_path, char **ret)
{
	_cleanup_free_ char *bind = NULL;
	int r;

	if (endpoint)
		r = ctl_endpoint_connectable(endpoint, ret);
	else if (config_path) {
		r = ctl_endpoint_from_config(config_path, &bind);
		if (r == -ENOMEM)
			return log_error_errno(r, "Out of memory.");
		if (r < 0)
			return log_error_errno(r, "cannot read %s: %s", config_path, strerror(-r));
		if (!bind)
			log_debug("%s has no [control] or [submit] bind, using %s", config_path,
			          CTL_ENDPOINT_DEFAULT);
		r = ctl_endpoint_connectable(bind ? bind : CTL_ENDPOINT_DEFAULT, ret);
	} else {
		r = ctl_endpoint_from_config(GATEWAYD_CONFIG_FILE, &bind);
		if (r == -ENOMEM)
			return log_error_errno(r, "Out of memory.");
		if (r < 0 && r != -ENOENT)
			log_warning_errno(r,
			                  "cannot read %s (%s), using %s; use -e or -c otherwise",
			                  GATEWAYD_CONFIG_FILE, strerror(-r), CTL_ENDPOINT_DEFAULT);
		r = ctl_endpoint_connectable(bind ? bind : CTL_ENDPOINT_DEFAULT, ret);
	}
	if (r < 0)
		return log_error_errno(r, "Out of memory.");
	return 0;
}
