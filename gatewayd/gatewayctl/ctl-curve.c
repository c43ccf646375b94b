/* ctl-curve: certificates through czmq, so that the files gatewayctl writes are the ones
 * gatewayd (and any czmq or pyzmq program: zmq.auth.load_certificate) reads, and the other
 * way round.
 *
 * keygen refuses to overwrite unless told to: a secret key replaced by mistake locks a client
 * out, or, worse, leaves a server whose clients still trust the old key. With --force the old
 * files are removed first, because zcert_save() keeps the mode of a file it overwrites, and the
 * secret file must end up 0600 whatever it was before (0640 root:gatewayd when root makes it,
 * so that the daemon, which runs as gatewayd, can read its own key). It never writes through a
 * symbolic link, even with --force: a dangling link in a shared directory would otherwise make
 * it create a secret key wherever the link's owner chose. */
#include "ctl-curve.h"
#include "ctl-command.h"
#include <getopt.h>
#include <stdio.h>

#include <czmq.h>
/* czmq's streq() macro would shadow the function of common/macro.h. */
#undef streq
#undef strneq
#include <errno.h>
#include <grp.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "log.h"
#include "macro.h"

#define KEYGEN_SERVICE_GROUP "gatewayd"

static int load_cert(const char *path, const char *what, zcert_t **ret)
{
	zcert_t *cert;

	if (access(path, R_OK) < 0)
		return log_error_errno(errno, "cannot read the %s '%s': %s", what, path,
		                       strerror(errno));
	cert = zcert_load(path);
	if (!cert)
		return log_error_errno(EINVAL, "'%s' is not a ZeroMQ certificate", path);
	*ret = cert;
	return 0;
}

int ctl_curve_load(const char *server_key_file, const char *key_file, CtlCurve *ret)
{
	static const uint8_t zero[CTL_CURVE_KEY_LEN];
	zcert_t *server = NULL, *own = NULL;
	int r;

	r = load_cert(server_key_file, "server key", &server);
	if (r < 0)
		return r;
	r = load_cert(key_file, "key", &own);
	if (r < 0) {
		zcert_destroy(&server);
		return r;
	}
	if (memcmp(zcert_secret_key(own), zero, sizeof(zero)) == 0)
		r = log_error_errno(EINVAL,
		                    "'%s' holds no secret key: --key takes the "
		                    "BASENAME_secret file",
		                    key_file);
	else {
		memcpy(ret->server_public, zcert_public_key(server), CTL_CURVE_KEY_LEN);
		memcpy(ret->public, zcert_public_key(own), CTL_CURVE_KEY_LEN);
		memcpy(ret->secret, zcert_secret_key(own), CTL_CURVE_KEY_LEN);
	}
	zcert_destroy(&server);
	zcert_destroy(&own);
	return r;
}

int ctl_curve_apply(const CtlCurve *curve, void *sock)
{
	if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, curve->server_public, CTL_CURVE_KEY_LEN) <
	            0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, curve->public, CTL_CURVE_KEY_LEN) < 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, curve->secret, CTL_CURVE_KEY_LEN) < 0)
		return log_error_errno(errno, "cannot set up CURVE: %s", zmq_strerror(errno));
	return 0;
}

/* Made by root, a key is most likely the daemon's own (/etc/gatewayd/...): readable by the
 * service's group, 0640 root:gatewayd, as the configuration file is. Otherwise 0600, the
 * caller's. */
static int keygen_secret_owner(const char *secret)
{
	struct group *gr = getuid() == 0 ? getgrnam(KEYGEN_SERVICE_GROUP) : NULL;

	if (gr) {
		if (chown(secret, 0, gr->gr_gid) < 0 || chmod(secret, 0640) < 0)
			return log_error_errno(errno, "cannot make '%s' 0640 root:%s: %s", secret,
			                       KEYGEN_SERVICE_GROUP, strerror(errno));
		return 0;
	}
	if (chmod(secret, 0600) < 0)
		return log_error_errno(errno, "cannot make '%s' mode 0600: %s", secret,
		                       strerror(errno));
	return 0;
}

/* Refuses a path that is a symbolic link, dangling or not: a key written through it would land
 * wherever the link points (someone else's file, or a file made where they chose). */
static int refuse_symlink(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0
		                       : log_error_errno(errno, "cannot check '%s': %s", path,
		                                         strerror(errno));
	if (S_ISLNK(st.st_mode))
		return log_error_errno(ELOOP,
		                       "'%s' is a symbolic link; refusing to write a key through "
		                       "it (remove it, or choose another BASENAME)",
		                       path);
	return 1;
}

/* Writes the pair in a private directory beside the final names, then gives the files their
 * names with link(), which never follows a symbolic link and fails if the name is taken: what
 * was checked above cannot be swapped for a link in between. */
static int keygen_write(const char *basename, const char *secret)
{
	_cleanup_free_ char *tmpl = NULL, *dir = NULL, *tmp_public = NULL, *tmp_secret = NULL;
	const char *slash = strrchr(basename, '/');
	zcert_t *cert = NULL;
	int r = 0;

	if (asprintf(&dir, "%.*s", slash ? (int)(slash - basename + 1) : 0, basename) < 0 ||
	    asprintf(&tmpl, "%s.gatewayctl-keygen-XXXXXX", dir) < 0)
		return log_error_errno(ENOMEM, "Out of memory.");
	if (!mkdtemp(tmpl))
		return log_error_errno(errno, "cannot write in the directory of '%s': %s", basename,
		                       strerror(errno));
	if (asprintf(&tmp_public, "%s/key", tmpl) < 0 ||
	    asprintf(&tmp_secret, "%s/key_secret", tmpl) < 0) {
		r = log_error_errno(ENOMEM, "Out of memory.");
		goto out;
	}
	cert = zcert_new();
	if (!cert) {
		r = log_error_errno(ENOMEM, "cannot make a key pair");
		goto out;
	}
	/* zcert_save() writes the secret file under a private umask; chmod says it for sure. */
	if (zcert_save(cert, tmp_public) < 0) {
		r = log_error_errno(EIO, "cannot write '%s' and '%s'", basename, secret);
		goto out;
	}
	r = keygen_secret_owner(tmp_secret);
	if (r < 0)
		goto out;
	if (link(tmp_secret, secret) < 0) {
		r = log_error_errno(errno, "cannot write '%s': %s", secret, strerror(errno));
		goto out;
	}
	if (link(tmp_public, basename) < 0) {
		r = log_error_errno(errno, "cannot write '%s': %s", basename, strerror(errno));
		(void)unlink(secret);
	}
out:
	zcert_destroy(&cert);
	if (tmp_public)
		(void)unlink(tmp_public);
	if (tmp_secret)
		(void)unlink(tmp_secret);
	(void)rmdir(tmpl);
	return r;
}

int ctl_curve_keygen(const char *basename, bool force)
{
	_cleanup_free_ char *secret = NULL;
	int r, exists = 0;

	if (asprintf(&secret, "%s_secret", basename) < 0)
		return log_error_errno(ENOMEM, "Out of memory.");
	r = refuse_symlink(basename);
	if (r < 0)
		return r;
	exists |= r;
	r = refuse_symlink(secret);
	if (r < 0)
		return r;
	exists |= r;
	if (!force && exists)
		return log_error_errno(EEXIST, "'%s' or '%s' exists; --force replaces them",
		                       basename, secret);
	if (force &&
	    ((unlink(basename) < 0 && errno != ENOENT) || (unlink(secret) < 0 && errno != ENOENT)))
		return log_error_errno(errno, "cannot remove the old key: %s", strerror(errno));
	return keygen_write(basename, secret);
}

int ctl_curve_keygen_command(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv)
{
	const char *basename = NULL;
	bool force = false;
	int c, r;

	/* Its own loop, not ctl_command_parse(): keygen has always ignored what follows "--", and a
	 * script that relies on that keeps working. */
	optind = 0;
	while ((c = getopt_long(argc, argv, cmd->optstring, cmd->long_options, NULL)) >= 0) {
		switch (c) {
		case 1:
			r = ctl_command_take_positional(cmd, "BASENAME", &basename, optarg);
			if (r < 0)
				return r;
			break;
		case ARG_FORCE:
			force = true;
			break;
		case 'h':
			ctl_command_help(cmd);
			return CTL_HELP;
		default:
			return ctl_command_option_error(cmd, c, argv);
		}
	}
	if (!basename || !*basename)
		return ctl_command_usage_error(cmd, "BASENAME is missing");
	r = ctl_curve_keygen(basename, force);
	if (r < 0)
		return r;
	printf("%s\n%s_secret\n", basename, basename);
	return 0;
}
