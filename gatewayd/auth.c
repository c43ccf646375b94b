/* auth: the ZAP handler of the server's ZeroMQ context.
 *
 * czmq offers a ready ZAP handler, the zauth actor; it runs in a thread of its own with a
 * zcertstore that rescans its directory on every handshake, and it logs through zsys to stdout.
 * Ours is a REP socket on inproc://zeromq.zap.01 read by the sd-event loop like every other
 * socket: no thread, no locks, one log room with journal fields, a refusal log that a flood
 * cannot turn into a flood of lines, and a directory read only when the operator says so
 * (SIGHUP), which is also when the files are known to be complete. czmq is still used where it
 * saves code: zcert_load() reads the certificate format zcert_save() writes.
 *
 * libzmq sends one ZAP request per CURVE handshake (not per message) and holds the handshake
 * until the answer, so a main loop that is busy for a moment only delays new connections. A
 * domain's allowed keys are a sorted array of Z85 strings: a lookup per handshake is a binary
 * search, and the set is as large as the directory the operator fills. */
#include "auth.h"

#include <czmq.h>
/* czmq's streq() macro would shadow the function of common/macro.h. */
#undef streq
#undef strneq
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "log.h"
#include "macro.h"
#include "util.h"

#define AUTH_ZAP_ENDPOINT "inproc://zeromq.zap.01"
/* Refusals logged at warning level per window; the rest at debug, counted, and summed up. */
#define AUTH_LOG_BURST       5
#define AUTH_LOG_WINDOW_USEC (10 * USEC_PER_SEC)
#define AUTH_ZAP_FRAMES      8

typedef char AuthKey[AUTH_KEY_TEXT_LEN + 1];

typedef struct AuthDomain {
	char *name;
	char *dir;
	AuthKey *keys; /* sorted */
	size_t n_keys;
} AuthDomain;

struct Auth {
	void *zap;
	sd_event_source *io;
	AuthDomain *domains;
	size_t n_domains;
	uint64_t log_window_start;
	unsigned logged, suppressed;
};

static int key_compare(const void *a, const void *b)
{
	return strcmp(a, b);
}

static bool is_certificate_name(const char *name)
{
	size_t n = strlen(name);

	/* Hidden files are editors' and rsync's temporaries; secret files do not belong here,
	 * but a client's secret certificate lying around must not count twice. */
	return name[0] != '.' && !(n >= 7 && streq(name + n - 7, "_secret"));
}

/* Reads every certificate in dir into a sorted array. Files that are not certificates are
 * skipped with a warning: one stray file must not lock every client out. */
static int load_keys(const char *dir, AuthKey **ret_keys, size_t *ret_n)
{
	_cleanup_free_ AuthKey *keys = NULL;
	DIR *d;
	struct dirent *de;
	size_t n = 0, allocated = 0;

	d = opendir(dir);
	if (!d)
		return log_error_errno(errno, "Cannot read the CURVE clients directory '%s': %m",
		                       dir);
	while ((de = readdir(d))) {
		_cleanup_free_ char *path = NULL;
		struct stat st;
		zcert_t *cert;

		if (!is_certificate_name(de->d_name))
			continue;
		if (asprintf(&path, "%s/%s", dir, de->d_name) < 0) {
			closedir(d);
			return -ENOMEM;
		}
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		cert = zcert_load(path);
		if (!cert) {
			log_warning("Ignoring '%s': not a ZeroMQ certificate", path);
			continue;
		}
		if (n == allocated) {
			AuthKey *v = realloc(keys, (allocated * 2 + 16) * sizeof(*keys));

			if (!v) {
				zcert_destroy(&cert);
				closedir(d);
				return -ENOMEM;
			}
			keys = v;
			allocated = allocated * 2 + 16;
		}
		snprintf(keys[n++], sizeof(AuthKey), "%s", zcert_public_txt(cert));
		zcert_destroy(&cert);
	}
	closedir(d);
	if (keys)
		qsort(keys, n, sizeof(*keys), key_compare);
	*ret_keys = TAKE_PTR(keys);
	*ret_n = n;
	return 0;
}

static int domain_load(AuthDomain *dom)
{
	AuthKey *keys = NULL;
	size_t n = 0;
	int r;

	r = load_keys(dom->dir, &keys, &n);
	if (r < 0) {
		/* Fail closed: a directory that vanished lets nobody in. */
		free(dom->keys);
		dom->keys = NULL;
		dom->n_keys = 0;
		return r;
	}
	free(dom->keys);
	dom->keys = keys;
	dom->n_keys = n;
	log_info("CURVE %s: %zu client key(s) allowed from '%s'", dom->name, n, dom->dir);
	return 0;
}

static AuthDomain *auth_find_domain(Auth *a, const char *name, size_t len)
{
	for (size_t i = 0; i < a->n_domains; i++)
		if (strlen(a->domains[i].name) == len && memcmp(a->domains[i].name, name, len) == 0)
			return &a->domains[i];
	return NULL;
}

static void log_refusal(Auth *a, const char *domain, const char *address, const char *why)
{
	uint64_t now = now_monotonic_usec();

	if (now - a->log_window_start >= AUTH_LOG_WINDOW_USEC) {
		if (a->suppressed > 0)
			log_warning("%u more refused connection(s) were not logged", a->suppressed);
		a->log_window_start = now;
		a->logged = a->suppressed = 0;
	}
	if (a->logged < AUTH_LOG_BURST) {
		a->logged++;
		log_warning("Refused a %s client from %s: %s", domain, address, why);
	} else {
		a->suppressed++;
		log_debug("Refused a %s client from %s: %s", domain, address, why);
	}
}

static void msg_text(zmq_msg_t *m, char *buf, size_t size)
{
	size_t n = MIN(zmq_msg_size(m), size - 1);

	memcpy(buf, zmq_msg_data(m), n);
	buf[n] = 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] >= 0x7f)
			buf[i] = '?';
}

/* Decides one ZAP request (RFC 27): version, request id, domain, address, routing id,
 * mechanism, credentials. Writes the user id for a client let in. */
static bool auth_decide(Auth *a, zmq_msg_t *f, size_t n, char user_id[static AUTH_KEY_TEXT_LEN + 1])
{
	char domain[64], address[128], mechanism[16];
	AuthDomain *dom;

	msg_text(&f[2], domain, sizeof(domain));
	msg_text(&f[3], address, sizeof(address));
	msg_text(&f[5], mechanism, sizeof(mechanism));
	dom = auth_find_domain(a, zmq_msg_data(&f[2]), zmq_msg_size(&f[2]));
	if (!dom) {
		log_refusal(a, domain[0] ? domain : "(no domain)", address, "unknown ZAP domain");
		return false;
	}
	if (!streq(mechanism, "CURVE") || n < 7 || zmq_msg_size(&f[6]) != AUTH_KEY_LEN) {
		log_refusal(a, domain, address, "not a CURVE client");
		return false;
	}
	if (!zmq_z85_encode(user_id, zmq_msg_data(&f[6]), AUTH_KEY_LEN))
		return false;
	if (!dom->keys || !bsearch(user_id, dom->keys, dom->n_keys, sizeof(AuthKey), key_compare)) {
		char why[96];

		snprintf(why, sizeof(why), "key %s is not in the allowed clients", user_id);
		log_refusal(a, domain, address, why);
		return false;
	}
	log_debug("Let in a %s client from %s with key %s", domain, address, user_id);
	return true;
}

static int auth_handle_one(Auth *a)
{
	zmq_msg_t f[AUTH_ZAP_FRAMES];
	char user_id[AUTH_KEY_TEXT_LEN + 1] = "";
	size_t n = 0;
	int more = 1, r = 0;
	bool ok;

	while (more) {
		size_t len = sizeof(more);
		zmq_msg_t dummy, *m = n < ELEMENTSOF(f) ? &f[n] : &dummy;

		zmq_msg_init(m);
		if (zmq_msg_recv(m, a->zap, ZMQ_DONTWAIT) < 0) {
			r = -errno;
			zmq_msg_close(m);
			break;
		}
		if (zmq_getsockopt(a->zap, ZMQ_RCVMORE, &more, &len) < 0)
			more = 0;
		if (m == &dummy)
			zmq_msg_close(m);
		else
			n++;
	}
	if (r < 0 && n == 0)
		return r == -EAGAIN ? 0 : r;
	if (n >= 6) {
		ok = auth_decide(a, f, n, user_id);
		/* The reply: version, request id, status code and text, user id, metadata. */
		if (zmq_send(a->zap, "1.0", 3, ZMQ_SNDMORE) < 0 ||
		    zmq_send(a->zap, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE) < 0 ||
		    zmq_send(a->zap, ok ? "200" : "400", 3, ZMQ_SNDMORE) < 0 ||
		    zmq_send(a->zap, ok ? "OK" : "Not allowed", ok ? 2 : 11, ZMQ_SNDMORE) < 0 ||
		    zmq_send(a->zap, ok ? user_id : "", ok ? strlen(user_id) : 0, ZMQ_SNDMORE) <
		            0 ||
		    zmq_send(a->zap, "", 0, 0) < 0)
			log_warning_errno(errno, "Cannot answer a ZAP request: %m");
	} else
		log_warning("Dropping a malformed ZAP request of %zu frames", n);
	for (size_t i = 0; i < n; i++)
		zmq_msg_close(&f[i]);
	return 1;
}

static int on_zap_io(sd_event_source *src, int fd, uint32_t revents, void *userdata)
{
	Auth *a = userdata;

	/* Edge-triggered: drain, then ask ZMQ_EVENTS (see server.c). A REP socket only reads the
	 * next request after it answered the last, so every round answers one. */
	for (;;) {
		int events = 0;
		size_t len = sizeof(events);

		if (auth_handle_one(a) > 0)
			continue;
		if (zmq_getsockopt(a->zap, ZMQ_EVENTS, &events, &len) < 0 || !(events & ZMQ_POLLIN))
			return 0;
	}
}

int auth_new(sd_event *event, void *zmq_ctx, Auth **ret)
{
	Auth *a;
	int fd, linger = 0, r;
	size_t len = sizeof(fd);

	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->zap = zmq_socket(zmq_ctx, ZMQ_REP);
	if (!a->zap) {
		r = -errno;
		goto fail;
	}
	zmq_setsockopt(a->zap, ZMQ_LINGER, &linger, sizeof(linger));
	if (zmq_bind(a->zap, AUTH_ZAP_ENDPOINT) < 0) {
		r = log_error_errno(errno, "Cannot bind the ZAP handler: %s", zmq_strerror(errno));
		goto fail;
	}
	if (zmq_getsockopt(a->zap, ZMQ_FD, &fd, &len) < 0) {
		r = -errno;
		goto fail;
	}
	r = sd_event_add_io(event, &a->io, fd, EPOLLIN, on_zap_io, a);
	if (r < 0)
		goto fail;
	sd_event_source_set_description(a->io, "zmq-zap");
	*ret = a;
	return 0;
fail:
	auth_free(a);
	return r;
}

Auth *auth_free(Auth *a)
{
	if (!a)
		return NULL;
	sd_event_source_disable_unref(a->io);
	if (a->zap)
		zmq_close(a->zap);
	for (size_t i = 0; i < a->n_domains; i++) {
		free(a->domains[i].name);
		free(a->domains[i].dir);
		free(a->domains[i].keys);
	}
	free(a->domains);
	free(a);
	return NULL;
}

int auth_add_domain(Auth *a, const char *domain, const char *dir)
{
	AuthDomain *v, *dom;

	v = realloc(a->domains, (a->n_domains + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	a->domains = v;
	dom = &v[a->n_domains];
	*dom = (AuthDomain){.name = strdup(domain), .dir = strdup(dir)};
	if (!dom->name || !dom->dir) {
		free(dom->name);
		free(dom->dir);
		return -ENOMEM;
	}
	a->n_domains++;
	return domain_load(dom);
}

int auth_reload(Auth *a)
{
	int r = 0;

	for (size_t i = 0; a && i < a->n_domains; i++) {
		int k = domain_load(&a->domains[i]);

		if (k < 0 && r == 0)
			r = k;
	}
	return r;
}

/* The secret key of a certificate file; -EINVAL when it holds none (a public certificate). */
static int load_secret(const char *path, zcert_t **ret)
{
	static const uint8_t zero[AUTH_KEY_LEN];
	zcert_t *cert;

	if (access(path, R_OK) < 0)
		return -errno;
	cert = zcert_load(path);
	if (!cert)
		return -EBADMSG;
	if (memcmp(zcert_secret_key(cert), zero, AUTH_KEY_LEN) == 0) {
		zcert_destroy(&cert);
		return -EINVAL;
	}
	*ret = cert;
	return 0;
}

int auth_setup_server(void *sock, const char *secret_key_file, const char *domain)
{
	zcert_t *cert = NULL;
	int one = 1, r;

	r = load_secret(secret_key_file, &cert);
	if (r < 0)
		return log_error_errno(r, "Cannot load the CURVE secret key '%s': %m",
		                       secret_key_file);
	if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof(one)) < 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, zcert_secret_key(cert), AUTH_KEY_LEN) < 0 ||
	    zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, domain, strlen(domain)) < 0)
		r = log_error_errno(errno, "Cannot set up CURVE: %s", zmq_strerror(errno));
	zcert_destroy(&cert);
	return r;
}

int auth_check_secret_key_file(const char *path, char **ret_reason)
{
	zcert_t *cert = NULL;
	int r;

	r = load_secret(path, &cert);
	if (r >= 0) {
		zcert_destroy(&cert);
		return 0;
	}
	if (asprintf(ret_reason, "'%s' %s%s", path,
	             r == -EBADMSG || r == -EINVAL ? "" : "cannot be read: ",
	             r == -EBADMSG  ? "is not a ZeroMQ certificate (see gatewayctl keygen)"
	             : r == -EINVAL ? "holds no secret key: name the BASENAME_secret file"
	                            : strerror(-r)) < 0)
		*ret_reason = NULL;
	return r;
}

int auth_check_clients_dir(const char *path, char **ret_reason)
{
	DIR *d = opendir(path);

	if (!d) {
		int r = -errno;

		if (asprintf(ret_reason, "'%s' cannot be read: %s", path, strerror(-r)) < 0)
			*ret_reason = NULL;
		return r;
	}
	closedir(d);
	return 0;
}
