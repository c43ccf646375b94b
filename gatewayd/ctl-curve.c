/* ctl-curve: certificates through czmq, so that the files gatewayctl writes are the ones
 * gatewayd (and any czmq or pyzmq program: zmq.auth.load_certificate) reads, and the other
 * way round.
 *
 * keygen refuses to overwrite unless told to: a secret key replaced by mistake locks a client
 * out, or, worse, leaves a server whose clients still trust the old key. With --force the old
 * files are removed first, because zcert_save() keeps the mode of a file it overwrites, and the
 * secret file must end up 0600 whatever it was before (0640 root:gatewayd when root makes it,
 * so that the daemon, which runs as gatewayd, can read its own key). */
#include "ctl-curve.h"

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
		r = log_error_errno(EINVAL, "'%s' holds no secret key: --key takes the "
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

int ctl_curve_keygen(const char *basename, bool force)
{
	_cleanup_free_ char *secret = NULL;
	zcert_t *cert;
	int r = 0;

	if (asprintf(&secret, "%s_secret", basename) < 0)
		return log_error_errno(ENOMEM, "Out of memory.");
	if (!force && (access(basename, F_OK) == 0 || access(secret, F_OK) == 0))
		return log_error_errno(EEXIST, "'%s' or '%s' exists; --force replaces them",
				       basename, secret);
	if (force && ((unlink(basename) < 0 && errno != ENOENT) ||
		      (unlink(secret) < 0 && errno != ENOENT)))
		return log_error_errno(errno, "cannot remove the old key: %s", strerror(errno));

	cert = zcert_new();
	if (!cert)
		return log_error_errno(ENOMEM, "cannot make a key pair");
	/* zcert_save() writes the secret file under a private umask; chmod says it for sure. */
	if (zcert_save(cert, basename) < 0)
		r = log_error_errno(EIO, "cannot write '%s' and '%s'", basename, secret);
	else
		r = keygen_secret_owner(secret);
	zcert_destroy(&cert);
	return r;
}
