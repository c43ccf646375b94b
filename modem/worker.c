/* worker: one thread, one modem, one GSM_StateMachine.
 *
 * The worker is a loop around a few timers, one queue and three file descriptors: connect when
 * there is no state machine (retrying with a backoff of 1 s doubling to 30 s), check health when
 * it is due (SIM, signal, registration; sooner while the modem is failed), read the SIM's inbox
 * when it is due or the modem announced a message, and otherwise sleep in poll() until a job, a
 * byte from the modem, a change in the directory where its port lives, or the next deadline. A
 * job is sent only while the modem is ok or degraded; otherwise it is answered at once with an
 * error, so that the caller can route it through another modem instead of waiting behind a dead
 * one.
 *
 * Recovery. Any error that may leave libgammu out of step with the modem (timeouts, device read
 * or write errors, an abort by the watchdog) ends the connection: the state machine is terminated
 * and freed, and a fresh one is allocated on the next attempt. That is heavy-handed (init costs
 * ~4 s) but it is the only state libgammu is known to recover from; an aborted state machine in
 * particular answers ERR_ABORTED forever. While idle the worker polls libgammu's own fd of the
 * port (found in /proc/self/fd, libgammu does not expose it): a hang-up is noticed at once, and
 * the +CMTI/+CDSI/+CDS lines the modem sends are fed to libgammu, whose callback marks the inbox
 * for reading. A lost port is waited for with inotify on its directory (devwatch.c), so a modem
 * that comes back is re-initialised at once instead of at the next backoff step; other failures
 * keep the backoff.
 *
 * Identity. With an IMEI configured, the port is whichever answers that IMEI (probe.c), among the
 * ports no other Modem of this process holds (ports.c); a modem answering another IMEI is never
 * used. Without one, the configured port is used as it is (and claimed, so that a neighbour
 * looking for its IMEI leaves it alone).
 *
 * Health. Beside SIM and network, sends judge the modem: max_consecutive_failures send errors in a
 * row that are not the destination's fault fail it and force a re-initialisation (with the
 * backoff, which only a successful send resets).
 *
 * Every blocking libgammu call runs between worker_begin() and worker_end(), which arm and
 * disarm the watchdog; libgammu's own timeouts restart on every byte received and cannot be
 * trusted to end a call.
 *
 * Receiving. Stored messages are listed and deleted with raw AT commands on libgammu's fd
 * (simstore.c), never with GSM_GetNextSMS(): libgammu decodes a PDU inside the call that reads it,
 * and its decoder trusts the lengths in the PDU. Each PDU is bounds-checked first (pdu-check.c)
 * and only then decoded, by libgammu's GSM_DecodePDUFrame(); one that fails is quarantined:
 * reported raw, never decoded, deleted once the daemon stored it. A note on disk (decodemark.c)
 * names the message being decoded, so that one that still crashes the decoder is quarantined
 * after the restart rather than decoded again.
 *
 * Only the worker logs what it sees of the modem; status changes reach the main loop as events
 * and are published only when something changed. */
#include "worker.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include <gammu.h>

#include "chat.h"
#include "decodemark.h"
#include "devwatch.h"
#include "inbox.h"
#include "log.h"
#include "macro.h"
#include "modem-internal.h"
#include "pdu-check.h"
#include "ports.h"
#include "probe.h"
#include "sha256.h"
#include "simstore.h"
#include "sms.h"
#include "util.h"
#include "watchdog.h"

#define WORKER_BACKOFF_MIN_USEC (1 * USEC_PER_SEC)
#define WORKER_BACKOFF_MAX_USEC (30 * USEC_PER_SEC)
/* A connection that lived this long resets the backoff when it is lost. */
#define WORKER_STABLE_USEC (60 * USEC_PER_SEC)
/* How soon a failed (but connected) modem is looked at again. */
#define WORKER_FAILED_RECHECK_USEC (10 * USEC_PER_SEC)
/* How long one port may take to answer AT+CGSN while looking for an IMEI. */
#define WORKER_PROBE_USEC (1500 * USEC_PER_MSEC)
/* A port another Modem is probing is looked at again this soon, not after the backoff. */
#define WORKER_PORT_BUSY_RETRY_USEC (250 * USEC_PER_MSEC)
/* Parts read from the SIM in one scan; SIM and phone memories hold far fewer. */
#define WORKER_INBOX_MAX_PARTS 512

typedef struct Worker {
	Modem *modem;
	const ModemSettings *settings;
	const LogContext *ctx;
	Watchdog *watchdog;
	bool gammu_debug;
	Inbox *inbox;
	DevWatch *devwatch;
	DecodeMark *mark; /* NULL without a state directory */

	GSM_StateMachine *sm;
	char device[256]; /* the port in use or being tried */
	char *port;       /* its claim (ports.h) while connected */
	int tty_fd;       /* libgammu's fd of the port, polled while idle; -1 unknown */
	bool hung_up;     /* the watchdog saw the port hang up under a call */
	uint64_t connected_at;
	uint64_t next_connect; /* while sm == NULL */
	uint64_t backoff;
	uint64_t next_health; /* while sm != NULL */
	uint64_t next_inbox;
	bool inbox_due;
	bool inbox_supported;
	bool sim_ready;
	int incoming;      /* new-message indications: 0 not asked yet, 1 on, -1 refused */
	bool pin_rejected; /* never offer a rejected PIN again: the SIM counts the tries */
	bool have_smsc;
	GSM_SMSC smsc;
	unsigned send_errors; /* in a row, not the destination's fault */
	uint64_t last_send_usec;

	char model[sizeof(((ModemStatus *)NULL)->model)]; /* of the current connection */
	char imei[sizeof(((ModemStatus *)NULL)->imei)];
	char registration[sizeof(((ModemStatus *)NULL)->registration)];
	ModemStatus status; /* as last published */
	bool published;

	/* The send path's own AT exchange (common/chat.c) runs in this loop, on this thread; NULL:
	 * libgammu's GSM_SendSMS() sends. pdu_mode: AT+CMGF=0 was answered on this connection
	 * (0 not asked, 1 yes, -1 refused: libgammu sends, in whatever mode it picks). */
	sd_event *event;
	int pdu_mode;

	/* The answer to the part being sent: set by worker_send_status(), called from inside
	 * GSM_ReadDevice(), or from the reply to our own AT+CMGS (worker_send_part_at()).
	 * send_cme: the error was +CME, not +CMS. */
	bool send_answered;
	int send_status;
	int send_ref;
	bool send_cme;
	bool send_no_prompt; /* our exchange timed out waiting for the "> " prompt */

	char debug_line[1024];
	size_t debug_len;
} Worker;

typedef char WorkerReason[sizeof(((ModemStatus *)NULL)->reason)];

/* snprintf() into a reason, cut silently: a long port name must not lose the whole reason. */
static void worker_format(char *ret, size_t size, const char *format, ...) _printf_(3, 4);

static void worker_format(char *ret, size_t size, const char *format, ...)
{
	va_list ap;

	va_start(ap, format);
	vsnprintf(ret, size, format, ap);
	va_end(ap);
}

static uint64_t worker_usec(unsigned sec)
{
	return (uint64_t)sec * USEC_PER_SEC;
}

static void worker_begin(Worker *w, uint64_t timeout_usec)
{
	watchdog_arm(w->watchdog, w->sm, timeout_usec);
}

/* Takes the call's result; an abort poisons the state machine even if the call succeeded. */
static GSM_Error worker_end(Worker *w, GSM_Error error)
{
	switch (watchdog_disarm(w->watchdog)) {
	case WATCHDOG_QUIET:
		return error;
	case WATCHDOG_HANGUP:
		w->hung_up = true;
		return ERR_DEVICEREADERROR;
	default:
		return ERR_ABORTED;
	}
}

static bool worker_usable(const Worker *w)
{
	return w->sm && w->published &&
	       (w->status.state == MODEM_STATE_OK || w->status.state == MODEM_STATE_DEGRADED);
}

/* The device itself is missing or unusable, as opposed to a modem that does not answer. */
static bool worker_error_is_device(GSM_Error error)
{
	switch (error) {
	case ERR_DEVICEOPENERROR:
	case ERR_DEVICELOCKED:
	case ERR_DEVICENOTEXIST:
	case ERR_DEVICEBUSY:
	case ERR_DEVICENOPERMISSION:
	case ERR_DEVICENODRIVER:
	case ERR_DEVICENOTWORK:
	case ERR_DEVICECHANGESPEEDERROR:
	case ERR_DEVICEWRITEERROR:
	case ERR_DEVICEREADERROR:
	case ERR_DEVICEPARITYERROR:
		return true;
	default:
		return false;
	}
}

/* Errors after which libgammu and the modem can no longer be assumed to agree. */
static bool worker_error_is_fatal(GSM_Error error)
{
	switch (error) {
	case ERR_TIMEOUT:
	case ERR_NOTCONNECTED:
	case ERR_ABORTED:
		return true;
	default:
		return worker_error_is_device(error);
	}
}

/* Whether this process can open one more descriptor that select() can watch: libgammu opens the
 * port itself, and when open() fails with EMFILE it says "Error opening device. Unknown, busy or
 * no permissions.", which sends an operator to the wrong place; and it select()s on the
 * descriptor, which must be below FD_SETSIZE. 0, or -EMFILE/-ENFILE. */
static int worker_descriptors_available(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return errno == EMFILE || errno == ENFILE ? -errno : 0;
	close(fd);
	return fd >= FD_SETSIZE ? -EMFILE : 0;
}

static void worker_descriptors_reason(char *ret, size_t size, const char *device, int r)
{
	worker_format(ret, size, "cannot open %s: %s", device,
	              r == -ENFILE ? "ENFILE: the system is out of file descriptors"
	                           : "EMFILE: this process is out of file descriptors (below "
	                             "FD_SETSIZE); see max_clients in gatewayd.conf(5)");
}

/* libgammu's words, except for an abort by our own watchdog. */
static const char *worker_error_string(GSM_Error error)
{
	if (error == ERR_ABORTED)
		return "no answer in time";
	return GSM_ErrorString(error);
}

static int worker_errno(GSM_Error error)
{
	switch (error) {
	case ERR_TIMEOUT:
	case ERR_ABORTED:
		return -ETIMEDOUT;
	case ERR_INVALIDDATA:
		return -EINVAL;
	case ERR_MOREMEMORY:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

/* libgammu's debug text arrives in pieces; it is logged a line at a time. */
static void worker_gammu_log(const char *text, void *userdata)
{
	Worker *w = userdata;

	for (; *text; text++) {
		if (*text == '\r')
			continue;
		if (*text == '\n' || w->debug_len >= sizeof(w->debug_line) - 1) {
			w->debug_line[w->debug_len] = 0;
			if (w->debug_len > 0)
				log_ctx(LOG_INFO, w->ctx, "gammu: %s", w->debug_line);
			w->debug_len = 0;
			if (*text == '\n')
				continue;
		}
		w->debug_line[w->debug_len++] = *text;
	}
}

static void worker_send_status(GSM_StateMachine *sm, int status, int ref, void *userdata)
{
	Worker *w = userdata;

	w->send_answered = true;
	w->send_status = status;
	w->send_ref = ref;
}

/* ---- status ---- */

static bool worker_status_equal(const ModemStatus *a, const ModemStatus *b)
{
	return a->state == b->state && a->signal == b->signal && streq(a->reason, b->reason) &&
	       streq(a->operator_name, b->operator_name) && streq(a->imei, b->imei) &&
	       streq(a->model, b->model) && streq(a->device, b->device) &&
	       streq(a->registration, b->registration) && a->last_send_usec == b->last_send_usec &&
	       a->delivery_reports_supported == b->delivery_reports_supported;
}

static void worker_set_status(Worker *w, const ModemStatus *status)
{
	if (w->published && worker_status_equal(&w->status, status))
		return;

	if (!w->published || w->status.state != status->state ||
	    !streq(w->status.reason, status->reason)) {
		if (status->state == MODEM_STATE_OK)
			log_ctx(LOG_INFO, w->ctx, "Modem ok on %s: signal %d, operator '%s' (%s)",
			        status->device, status->signal, status->operator_name,
			        status->registration);
		else
			log_ctx(status->state == MODEM_STATE_DEGRADED ? LOG_NOTICE : LOG_WARNING,
			        w->ctx, "Modem %s: %s", modem_state_to_string(status->state),
			        status->reason);
	}
	w->status = *status;
	w->published = true;
	modem_publish_status(w->modem, status);
}

/* A status that keeps what is known of the connection: identity, port, last send. */
static ModemStatus worker_status_new(const Worker *w, ModemState state, const char *reason)
{
	ModemStatus s = {.state = state, .signal = 99, .last_send_usec = w->last_send_usec};

	memcpy(s.imei, w->imei, sizeof(s.imei));
	memcpy(s.model, w->model, sizeof(s.model));
	snprintf(s.device, sizeof(s.device), "%s", w->device[0] ? w->device : w->settings->device);
	snprintf(s.registration, sizeof(s.registration), "%s",
	         w->sm && w->registration[0] ? w->registration : "unknown");
	s.delivery_reports_supported = w->sm && w->incoming > 0;
	snprintf(s.reason, sizeof(s.reason), "%s", reason);
	return s;
}

static void worker_set_state(Worker *w, ModemState state, const char *reason)
{
	ModemStatus s = worker_status_new(w, state, reason);

	worker_set_status(w, &s);
}

static void worker_retry_later(Worker *w)
{
	w->next_connect = now_monotonic_usec() + w->backoff;
	w->backoff = MIN(w->backoff * 2, WORKER_BACKOFF_MAX_USEC);
}

/* Ends the connection. A connection that was stable resets the backoff, unless it is ended
 * because the modem misbehaved (keep_backoff). */
static void worker_disconnect(Worker *w, bool keep_backoff)
{
	uint64_t now = now_monotonic_usec();

	if (!w->sm)
		return;

	watchdog_set_port(w->watchdog, -1); /* libgammu closes it now */
	worker_begin(w, worker_usec(w->settings->command_timeout_sec));
	(void)worker_end(w, GSM_TerminateConnection(w->sm));
	GSM_FreeStateMachine(w->sm);
	w->sm = NULL;
	w->port = ports_release(w->port);
	w->tty_fd = -1;
	w->pdu_mode = 0;
	w->have_smsc = false;
	w->sim_ready = false;
	w->incoming = 0;
	w->inbox_due = false;
	w->model[0] = w->imei[0] = w->registration[0] = 0; /* they belong to the connection */

	if (!keep_backoff && now - w->connected_at >= WORKER_STABLE_USEC)
		w->backoff = WORKER_BACKOFF_MIN_USEC;
	worker_retry_later(w);
}

/* The connection broke under a call: report it, drop the state machine, reconnect later. */
static void worker_lost(Worker *w, GSM_Error error)
{
	WorkerReason reason;
	ModemState state;

	if (w->hung_up) {
		snprintf(reason, sizeof(reason), "device lost: hung up");
		state = MODEM_STATE_ABSENT;
	} else if (worker_error_is_device(error)) {
		snprintf(reason, sizeof(reason), "device lost: %s", worker_error_string(error));
		state = MODEM_STATE_ABSENT;
	} else {
		snprintf(reason, sizeof(reason), "modem not responding: %s",
		         worker_error_string(error));
		state = MODEM_STATE_FAILED;
	}
	worker_disconnect(w, false);
	worker_set_state(w, state, reason);
}

/* The port went away under us (hang-up, EOF, EIO): the modem is absent until it is back. */
static void worker_port_gone(Worker *w, const char *why)
{
	WorkerReason reason;

	snprintf(reason, sizeof(reason), "device lost: %s", why);
	worker_disconnect(w, false);
	worker_set_state(w, MODEM_STATE_ABSENT, reason);
}

/* ---- health ---- */

/* 27.007 +CSQ: libgammu keeps dBm (2n - 113) and a percentage; turn them back into n. */
static int worker_csq(const GSM_SignalQuality *q)
{
	if (q->SignalStrength != -1 && q->SignalStrength <= 0)
		return MIN(MAX((q->SignalStrength + 113) / 2, 0), 31);
	if (q->SignalPercent >= 0 && q->SignalPercent <= 100)
		return q->SignalPercent * 31 / 100;
	return 99;
}

/* Copies at most size - 1 bytes of UTF-8 without cutting a character. */
static void worker_copy_utf8(char *dest, size_t size, const char *src)
{
	size_t n = strlen(src);

	if (n >= size) {
		n = size - 1;
		while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(dest, src, n);
	dest[n] = 0;
}

static void worker_operator_name(const GSM_NetworkInfo *net, char *ret, size_t size)
{
	/* UTF-16 in, terminated here in case libgammu filled the field. */
	unsigned char unicode[sizeof(net->NetworkName) + 2] = {0};

	memcpy(unicode, net->NetworkName, sizeof(net->NetworkName));
	if (UnicodeLength(unicode) > 0) {
		sms_unicode_to_utf8_buf(unicode, sizeof(unicode) / 2, ret, size);
		return;
	}
	/* GSM_GetNetworkName() would do, but it returns a static buffer shared by all threads. */
	for (size_t i = 0; GSM_Networks[i].Code[0]; i++)
		if (streq(GSM_Networks[i].Code, net->NetworkCode)) {
			worker_copy_utf8(ret, size, GSM_Networks[i].Name);
			return;
		}
	worker_copy_utf8(ret, size, net->NetworkCode);
}

/* Checks the SIM and enters the PIN if asked for. Returns ERR_NONE with *ret_reason empty when the
 * SIM is ready, ERR_NONE with a reason when it is not, or the error of a call that failed. */
static GSM_Error worker_check_sim(Worker *w, char *ret_reason, size_t size)
{
	uint64_t timeout = worker_usec(w->settings->command_timeout_sec);
	GSM_SecurityCodeType type;
	GSM_SecurityCode code;
	GSM_Error error;

	ret_reason[0] = 0;
	for (unsigned attempt = 0;; attempt++) {
		worker_begin(w, timeout);
		error = worker_end(w, GSM_GetSecurityStatus(w->sm, &type));
		if (error == ERR_NOTSUPPORTED || error == ERR_NOTIMPLEMENTED)
			return ERR_NONE; /* nothing to unlock that we could know of */
		if (error == ERR_NOSIM) {
			snprintf(ret_reason, size, "no SIM");
			return ERR_NONE;
		}
		if (error != ERR_NONE)
			return error;

		switch (type) {
		case SEC_None:
			return ERR_NONE;
		case SEC_Pin:
			break;
		case SEC_Puk:
			snprintf(ret_reason, size, "SIM PUK required");
			return ERR_NONE;
		default:
			snprintf(ret_reason, size, "SIM locked (code type %d required)", (int)type);
			return ERR_NONE;
		}

		if (w->pin_rejected) {
			snprintf(ret_reason, size, "wrong PIN");
			return ERR_NONE;
		}
		if (!w->settings->pin) {
			snprintf(ret_reason, size, "SIM PIN required");
			return ERR_NONE;
		}
		if (attempt > 0) {
			/* Accepted, yet still asked for: do not spend another try on it. */
			snprintf(ret_reason, size,
			         "SIM PIN required (PIN accepted, SIM still locked)");
			return ERR_NONE;
		}

		memset(&code, 0, sizeof(code));
		code.Type = SEC_Pin;
		snprintf(code.Code, sizeof(code.Code), "%s", w->settings->pin);
		worker_begin(w, timeout);
		error = worker_end(w, GSM_EnterSecurityCode(w->sm, &code));
		explicit_bzero(&code, sizeof(code));
		if (error == ERR_SECURITYERROR) {
			w->pin_rejected = true;
			log_ctx(LOG_ERR, w->ctx,
			        "The SIM rejected the configured PIN; not trying it again");
			snprintf(ret_reason, size, "wrong PIN");
			return ERR_NONE;
		}
		if (error != ERR_NONE) {
			if (worker_error_is_fatal(error))
				return error;
			snprintf(ret_reason, size, "PIN entry failed: %s",
			         worker_error_string(error));
			return ERR_NONE;
		}
		log_ctx(LOG_INFO, w->ctx, "PIN accepted");
	}
}

static void worker_incoming_sms(GSM_StateMachine *sm, GSM_SMSMessage *sms, void *userdata);

/* Asks for new-message indications (AT+CNMI through libgammu), once the SIM is ready. Status
 * reports arrive the same way, so a modem refusing them cannot deliver reports either. */
static GSM_Error worker_enable_incoming(Worker *w)
{
	GSM_Error error;

	GSM_SetIncomingSMSCallback(w->sm, worker_incoming_sms, w);
	worker_begin(w, worker_usec(w->settings->command_timeout_sec));
	error = worker_end(w, GSM_SetIncomingSMS(w->sm, true));
	if (worker_error_is_fatal(error))
		return error;
	if (error == ERR_NONE) {
		w->incoming = 1;
		return ERR_NONE;
	}
	w->incoming = -1;
	log_ctx(LOG_NOTICE, w->ctx,
	        "The modem refused new-message indications (%s): its inbox is read every %u s%s",
	        worker_error_string(error), w->settings->inbox_interval_sec,
	        w->settings->delivery_reports ? ", and it cannot deliver status reports" : "");
	return ERR_NONE;
}

static void worker_check_health(Worker *w)
{
	uint64_t timeout = worker_usec(w->settings->command_timeout_sec);
	uint64_t failed_recheck =
	        now_monotonic_usec() +
	        MIN(WORKER_FAILED_RECHECK_USEC, worker_usec(w->settings->health_interval_sec));
	WorkerReason reason;
	GSM_SignalQuality quality;
	GSM_NetworkInfo net;
	bool roaming = false;
	GSM_Error error, signal_error;
	ModemStatus s;

	w->next_health = now_monotonic_usec() + worker_usec(w->settings->health_interval_sec);

	error = worker_check_sim(w, reason, sizeof(reason));
	if (error != ERR_NONE) {
		if (worker_error_is_fatal(error)) {
			worker_lost(w, error);
			return;
		}
		snprintf(reason, sizeof(reason), "cannot read SIM status: %s",
		         worker_error_string(error));
	}
	if (reason[0]) {
		w->sim_ready = false;
		w->next_health = failed_recheck;
		worker_set_state(w, MODEM_STATE_FAILED, reason);
		return;
	}
	if (!w->sim_ready)
		w->inbox_due = true; /* the SIM can be read now */
	w->sim_ready = true;

	if (w->incoming == 0) {
		error = worker_enable_incoming(w);
		if (error != ERR_NONE) {
			worker_lost(w, error);
			return;
		}
	}

	memset(&quality, 0, sizeof(quality));
	worker_begin(w, timeout);
	signal_error = worker_end(w, GSM_GetSignalQuality(w->sm, &quality));
	if (worker_error_is_fatal(signal_error)) {
		worker_lost(w, signal_error);
		return;
	}

	memset(&net, 0, sizeof(net));
	worker_begin(w, timeout);
	error = worker_end(w, GSM_GetNetworkInfo(w->sm, &net));
	if (worker_error_is_fatal(error)) {
		worker_lost(w, error);
		return;
	}

	s = worker_status_new(w, MODEM_STATE_OK, "");
	if (signal_error == ERR_NONE)
		s.signal = worker_csq(&quality);
	if (error == ERR_NONE) {
		const char *reg;

		switch (net.State) {
		case GSM_HomeNetwork:
			reg = "home";
			break;
		case GSM_RoamingNetwork:
			reg = "roaming";
			roaming = true;
			break;
		case GSM_RequestingNetwork:
			reg = "searching";
			break;
		case GSM_RegistrationDenied:
			reg = "denied";
			break;
		case GSM_NoNetwork:
			reg = "none";
			break;
		default:
			reg = "unknown";
			break;
		}
		snprintf(w->registration, sizeof(w->registration), "%s", reg);
		snprintf(s.registration, sizeof(s.registration), "%s", reg);
		if (net.State == GSM_RegistrationDenied) {
			s.state = MODEM_STATE_FAILED;
			snprintf(s.reason, sizeof(s.reason), "registration denied");
		} else if (net.State != GSM_HomeNetwork && net.State != GSM_RoamingNetwork) {
			s.state = MODEM_STATE_FAILED;
			snprintf(s.reason, sizeof(s.reason), "not registered");
		} else
			worker_operator_name(&net, s.operator_name, sizeof(s.operator_name));
	} else if (error != ERR_NOTSUPPORTED && error != ERR_NOTIMPLEMENTED) {
		s.state = MODEM_STATE_FAILED;
		snprintf(s.reason, sizeof(s.reason), "cannot read network registration: %s",
		         worker_error_string(error));
	}

	if (s.state == MODEM_STATE_OK) {
		bool weak = s.signal != 99 && w->settings->min_signal > 0 &&
		            s.signal < w->settings->min_signal;

		if (weak || roaming) {
			s.state = MODEM_STATE_DEGRADED;
			if (weak)
				snprintf(s.reason, sizeof(s.reason), "weak signal (CSQ %d)%s",
				         s.signal, roaming ? ", roaming" : "");
			else
				snprintf(s.reason, sizeof(s.reason), "roaming");
		}
	} else
		w->next_health = failed_recheck;

	worker_set_status(w, &s);
}

/* ---- receiving ---- */

static void worker_report(Worker *w, InboxMessage *msg, uint64_t token)
{
	ModemEvent ev = {
	        .type = msg->report ? MODEM_EVENT_DELIVERY_REPORT : MODEM_EVENT_SMS_RECEIVED,
	        .message_ref = msg->report ? msg->message_ref : -1,
	        .parts = msg->parts,
	        .smsc_time_usec = msg->smsc_time_usec,
	        .received_usec = now_realtime_usec(),
	        .token = token,
	        .delivered = msg->delivered,
	        .permanent = msg->permanent,
	        .at_usec = msg->at_usec,
	};

	memcpy(ev.key, msg->key, sizeof(ev.key));
	if (msg->report) {
		memcpy(ev.number, msg->number, sizeof(ev.number));
		memcpy(ev.delivery_status, msg->status, sizeof(ev.delivery_status));
		log_ctx(LOG_INFO, w->ctx, "Status report for reference %d to %s: %s",
		        msg->message_ref, msg->number, msg->status);
	} else {
		memcpy(ev.from, msg->from, sizeof(ev.from));
		ev.text = msg->text;
		log_ctx(LOG_INFO, w->ctx, "SMS received from %s: %u part(s), %zu bytes%s",
		        msg->from, msg->parts, strlen(msg->text),
		        msg->complete ? "" : " (parts missing)");
	}
	if (modem_queue_event(w->modem, &ev) < 0) {
		log_ctx_errno(LOG_ERR, ENOMEM, w->ctx, "Cannot queue a received message: %m");
		if (token)
			inbox_pending_drop(w->inbox, token);
		return; /* still on the SIM: the next scan tries again */
	}
	msg->text = NULL; /* the event's now */
}

/* libgammu calls this from inside any call that reads the port (+CMTI, +CDSI, +CDS, +CMT). A
 * stored message only marks the inbox for reading: no AT command may be sent from here. */
static void worker_incoming_sms(GSM_StateMachine *sm, GSM_SMSMessage *sms, void *userdata)
{
	Worker *w = userdata;
	InboxMessage msg;

	if (sms->Location > 0) {
		w->inbox_due = true;
		return;
	}
	if (sms->PDU == SMS_Status_Report) {
		/* Routed to us whole (+CDS), stored nowhere: nothing to confirm or delete. */
		inbox_report_from_sms(sms, &msg);
		worker_report(w, &msg, 0);
		return;
	}
	/* +CMT: we never ask for it (AT+CNMI <mt> 1 stores messages), but a modem may insist. */
	if (sms->PDU == SMS_Deliver) {
		InboxMessage *msgs = NULL;
		size_t n = 0;

		if (inbox_assemble(w->inbox, sms, 1, now_realtime_usec(), now_monotonic_usec(),
		                   false, &msgs, &n) == 0 &&
		    n == 1)
			worker_report(w, &msgs[0], 0);
		else
			log_ctx(LOG_WARNING, w->ctx,
			        "A part of a long SMS was routed to us unstored (+CMT) and is "
			        "lost");
		inbox_messages_free(msgs, n);
		return;
	}
	w->inbox_due = true;
}

static const char *worker_memory_name(GSM_MemoryType memory)
{
	return memory == MEM_ME ? "ME" : "SM";
}

/* A raw chat's failure as libgammu would have put it, so that the usual recovery applies. */
static GSM_Error worker_chat_error(int r)
{
	switch (r) {
	case -ETIMEDOUT:
		return ERR_TIMEOUT;
	case -EIO:
		return ERR_DEVICEREADERROR;
	case -ENOMEM:
		return ERR_MOREMEMORY;
	default:
		return ERR_UNKNOWN;
	}
}

static void worker_read_port(Worker *w, short revents);

/* Starts a raw chat on libgammu's fd: whatever the modem sent meanwhile is libgammu's first.
 * Returns false if there is no fd to talk on or the port went away. */
static bool worker_chat_begin(Worker *w, SimChat *chat)
{
	struct pollfd p = {.fd = w->tty_fd, .events = POLLIN};

	if (!w->sm || w->tty_fd < 0)
		return false;
	if (poll(&p, 1, 0) > 0)
		worker_read_port(w, p.revents);
	if (!w->sm)
		return false;
	simstore_chat_init(chat, w->tty_fd, worker_usec(w->settings->command_timeout_sec));
	return true;
}

static void worker_chat_end(Worker *w, const SimChat *chat)
{
	if (chat->new_messages)
		w->inbox_due = true; /* announced while we talked: read again */
}

/* Deletes the slots of one message. Returns ERR_NONE when they are gone (also if they were gone
 * already), the error of a fatal failure, or ERR_UNKNOWN when a slot could not be deleted. */
static GSM_Error worker_delete(Worker *w, const InboxLocation *locs, size_t n)
{
	GSM_MemoryType selected = 0;
	GSM_Error result = ERR_NONE;
	SimChat chat;

	if (!worker_chat_begin(w, &chat))
		return w->sm ? ERR_UNKNOWN : ERR_DEVICEREADERROR;
	for (size_t i = 0; i < n; i++) {
		unsigned used, total;
		int r;

		if (locs[i].memory != selected) {
			r = simstore_select(&chat, worker_memory_name(locs[i].memory), &used,
			                    &total);
			if (r < 0 && r != -EREMOTEIO)
				return worker_chat_error(r);
			if (r < 0) {
				log_ctx(LOG_WARNING, w->ctx, "Cannot select memory %s: %s",
				        worker_memory_name(locs[i].memory), chat.error);
				result = ERR_UNKNOWN;
				continue;
			}
			selected = locs[i].memory;
		}
		r = simstore_delete(&chat, locs[i].location);
		if (r == -EREMOTEIO && streq(chat.error, "+CMS ERROR: 321"))
			continue; /* invalid index: gone already */
		if (r < 0 && r != -EREMOTEIO)
			return worker_chat_error(r);
		if (r < 0) {
			log_ctx(LOG_WARNING, w->ctx, "Cannot delete SMS at %s %d: %s",
			        worker_memory_name(locs[i].memory), locs[i].location, chat.error);
			result = ERR_UNKNOWN;
		}
	}
	worker_chat_end(w, &chat);
	return result;
}

/* Deletes the message with key and tells the inbox how it went. Returns false if the connection
 * was lost doing it. */
static bool worker_delete_message(Worker *w, const char *key, const InboxLocation *locs, size_t n)
{
	GSM_Error error = worker_delete(w, locs, n);

	if (worker_error_is_fatal(error)) {
		inbox_mark_stored(w->inbox, key);
		worker_lost(w, error);
		return false;
	}
	if (error == ERR_NONE)
		inbox_deleted(w->inbox, key);
	else
		inbox_mark_stored(w->inbox, key); /* retried when next seen */
	return true;
}

/* The main thread stored these messages: free their slots. */
static void worker_process_confirmed(Worker *w)
{
	uint64_t tokens[32];
	size_t n;

	while ((n = modem_take_confirmed(w->modem, tokens, ELEMENTSOF(tokens))) > 0)
		for (size_t i = 0; i < n; i++) {
			InboxLocation locs[GSM_MAX_MULTI_SMS];
			char key[MODEM_KEY_LEN + 1];
			size_t n_locs = 0;

			if (inbox_confirm(w->inbox, tokens[i], locs, &n_locs, key) <= 0)
				continue;
			if (!w->sm || !w->sim_ready)
				inbox_mark_stored(w->inbox, key);
			else if (!worker_delete_message(w, key, locs, n_locs))
				return;
		}
}

/* A stored message that is not decoded: reported raw, deleted once stored. */
static void worker_quarantine(Worker *w, GSM_MemoryType memory, const SimStoreEntry *e,
                              const char *reason)
{
	InboxMessage msg = {.complete = true, .parts = 1, .n_locations = 1};
	char index[16];
	uint64_t token;
	ModemEvent ev;
	Sha256 h;

	msg.locations[0] = (InboxLocation){.location = e->index, .memory = memory};
	snprintf(index, sizeof(index), "%d", e->index);
	sha256_init(&h);
	sha256_update(&h, "quarantine", sizeof("quarantine"));
	sha256_update(&h, worker_memory_name(memory), 3);
	sha256_update(&h, index, strlen(index) + 1);
	sha256_update(&h, e->hex, strlen(e->hex));
	sha256_final_hex(&h, msg.key);

	switch (inbox_classify(w->inbox, msg.key)) {
	case INBOX_REPORTED:
		return;
	case INBOX_STORED:
		(void)worker_delete_message(w, msg.key, msg.locations, 1);
		return;
	case INBOX_NEW:
		break;
	}

	token = modem_new_token(w->modem);
	if (inbox_pending_add(w->inbox, token, &msg) < 0)
		return; /* still on the SIM, never decoded: the next scan tries again */
	ev = (ModemEvent){
	        .type = MODEM_EVENT_SMS_QUARANTINED,
	        .message_ref = -1,
	        .parts = 1,
	        .received_usec = now_realtime_usec(),
	        .token = token,
	};
	memcpy(ev.key, msg.key, sizeof(ev.key));
	snprintf(ev.slot, sizeof(ev.slot), "%s %d", worker_memory_name(memory), e->index);
	snprintf(ev.error, sizeof(ev.error), "%s", reason);
	ev.text = strdup(e->hex);
	log_ctx(LOG_WARNING, w->ctx, "Quarantined the SMS in %s without decoding it: %s", ev.slot,
	        reason);
	if (!ev.text || modem_queue_event(w->modem, &ev) < 0) {
		free(ev.text);
		log_ctx_errno(LOG_ERR, ENOMEM, w->ctx, "Cannot queue a quarantined message: %m");
		inbox_pending_drop(w->inbox, token);
	}
}

/* Decodes a PDU that passed pdu_check() with libgammu. */
static GSM_Error worker_decode(Worker *w, GSM_MemoryType memory, const SimStoreEntry *e,
                               GSM_SMSMessage *ret)
{
	/* libgammu wants an octet after a status report's TP-ST even when TP-PI is absent: a 0
	 * there is a TP-PI that announces nothing. */
	unsigned char buf[PDU_MAX_LEN + 1] = {0};
	size_t len = e->len, smsc = e->pdu[0];
	GSM_Error error;
	int r;

	memcpy(buf, e->pdu, e->len);
	if ((e->pdu[1 + smsc] & 0x03) == 0x02)
		len++;
	r = decodemark_begin(w->mark, worker_memory_name(memory), e->index, e->hex);
	if (r < 0 && r != -EBUSY)
		log_ctx_errno(LOG_WARNING, r, w->ctx, "Cannot write %s: %m",
		              decodemark_path(w->mark));
	memset(ret, 0, sizeof(*ret));
	error = GSM_DecodePDUFrame(GSM_GetDebug(w->sm), ret, buf, len, NULL, true);
	ret->Location = e->index;
	ret->Memory = memory;
	ret->Folder = 0;
	ret->InboxFolder = true;
	ret->State = e->stat == 0 ? SMS_UnRead : SMS_Read;
	return error;
}

/* The memories the modem stores received messages in, as libgammu reads them. */
static const GSM_MemoryType worker_memories[] = {MEM_SM, MEM_ME};

typedef struct WorkerListing {
	SimStoreEntry *entries;
	size_t n;
} WorkerListing;

static void worker_listings_free(WorkerListing (*l)[ELEMENTSOF(worker_memories)])
{
	for (size_t i = 0; i < ELEMENTSOF(*l); i++)
		free((*l)[i].entries);
}

/* Lists every memory. Returns false when the connection was lost doing it. *ret_tight: a memory
 * is at least 80 % full. */
static bool worker_list(Worker *w, WorkerListing listings[static ELEMENTSOF(worker_memories)],
                        bool *ret_tight)
{
	SimChat chat;
	int r;

	*ret_tight = false;
	if (!worker_chat_begin(w, &chat))
		return w->sm != NULL;
	r = simstore_pdu_mode(&chat);
	if (r == -EREMOTEIO) {
		log_ctx(LOG_NOTICE, w->ctx,
		        "The modem refused PDU mode (%s): stored SMS are not read, since they "
		        "could not be checked before decoding",
		        chat.error);
		w->inbox_supported = false;
		return true;
	}
	for (size_t i = 0; r >= 0 && i < ELEMENTSOF(worker_memories); i++) {
		unsigned used = 0, total = 0;

		r = simstore_select(&chat, worker_memory_name(worker_memories[i]), &used, &total);
		if (r == -EREMOTEIO) {
			r = 0; /* no such memory here */
			continue;
		}
		if (r < 0)
			break;
		if (total > 0 && used * 5 >= total * 4)
			*ret_tight = true;
		r = simstore_list(&chat, &listings[i].entries, &listings[i].n);
		if (r == -EREMOTEIO) {
			log_ctx(LOG_WARNING, w->ctx, "Listing stored SMS in %s failed: %s",
			        worker_memory_name(worker_memories[i]), chat.error);
			r = 0;
		}
	}
	if (r < 0) {
		worker_lost(w, worker_chat_error(r));
		return false;
	}
	worker_chat_end(w, &chat);
	return true;
}

/* Reads every message on the SIM (and in the phone memory), reports the new ones, quarantines the
 * ones that must not be decoded and deletes those the main thread stored already. */
static void worker_scan_inbox(Worker *w)
{
	_cleanup_(worker_listings_free) WorkerListing listings[ELEMENTSOF(worker_memories)] = {0};
	_cleanup_free_ GSM_SMSMessage *parts = NULL;
	InboxMessage *msgs = NULL;
	size_t n_parts = 0, n_entries = 0, n_msgs = 0;
	bool tight, hold = false;
	int r;

	w->inbox_due = false;
	w->next_inbox = now_monotonic_usec() + worker_usec(w->settings->inbox_interval_sec);
	if (!w->sim_ready || !w->inbox_supported)
		return;
	if (w->tty_fd < 0) {
		log_ctx(LOG_WARNING, w->ctx,
		        "Stored SMS are not read: without libgammu's fd of the port they cannot be "
		        "checked before decoding");
		w->inbox_supported = false;
		return;
	}
	if (!worker_list(w, listings, &tight) || !w->sm)
		return;

	/* A message that crashed the decoder before: nothing is decoded while it is there. */
	if (decodemark_poisoned(w->mark)) {
		for (size_t m = 0; m < ELEMENTSOF(listings); m++)
			for (size_t i = 0; i < listings[m].n; i++)
				hold = hold ||
				       decodemark_is_poison(w->mark,
				                            worker_memory_name(worker_memories[m]),
				                            listings[m].entries[i].index,
				                            listings[m].entries[i].hex);
		if (!hold) {
			decodemark_forget_poison(w->mark);
			(void)decodemark_end(w->mark);
		}
	}

	for (size_t m = 0; m < ELEMENTSOF(listings); m++)
		n_entries += listings[m].n;
	parts = calloc(MAX(n_entries, (size_t)1), sizeof(GSM_SMSMessage));
	if (!parts) {
		log_ctx_errno(LOG_ERR, ENOMEM, w->ctx, "Cannot read received SMS: %m");
		return;
	}
	for (size_t m = 0; m < ELEMENTSOF(listings) && w->sm; m++)
		for (size_t i = 0; i < listings[m].n && w->sm; i++) {
			const SimStoreEntry *e = &listings[m].entries[i];
			GSM_MemoryType memory = worker_memories[m];
			char reason[128] = "";
			PduProblem p;
			GSM_Error error;

			if (e->stat == 2 || e->stat == 3)
				continue; /* a draft or a sent message: not ours */
			if (decodemark_is_poison(w->mark, worker_memory_name(memory), e->index,
			                         e->hex))
				snprintf(reason, sizeof(reason),
				         "the process died while decoding it");
			else if (hold)
				continue;
			else if (!e->hex_valid)
				snprintf(reason, sizeof(reason), "not a PDU in hex");
			else if ((p = pdu_check(e->pdu, e->len)) != PDU_OK)
				snprintf(reason, sizeof(reason), "%s", pdu_problem_to_string(p));
			else if ((error = worker_decode(w, memory, e, &parts[n_parts])) != ERR_NONE)
				snprintf(reason, sizeof(reason), "libgammu cannot decode it: %s",
				         GSM_ErrorString(error));
			else
				n_parts++;
			if (reason[0])
				worker_quarantine(w, memory, e, reason);
		}
	(void)decodemark_end(w->mark);
	if (!w->sm)
		return;

	r = inbox_assemble(w->inbox, parts, n_parts, now_realtime_usec(), now_monotonic_usec(),
	                   tight, &msgs, &n_msgs);
	if (r < 0) {
		log_ctx_errno(LOG_ERR, r, w->ctx, "Cannot assemble received SMS: %m");
		return;
	}
	for (size_t i = 0; i < n_msgs && w->sm; i++) {
		InboxMessage *msg = &msgs[i];
		uint64_t token;

		switch (inbox_classify(w->inbox, msg->key)) {
		case INBOX_REPORTED:
			break;
		case INBOX_STORED:
			if (!worker_delete_message(w, msg->key, msg->locations, msg->n_locations))
				goto out;
			break;
		case INBOX_NEW:
			token = modem_new_token(w->modem);
			if (inbox_pending_add(w->inbox, token, msg) < 0) {
				log_ctx(LOG_WARNING, w->ctx,
				        "%d received messages wait for the daemon to store them; "
				        "leaving the others on the SIM",
				        INBOX_PENDING_MAX);
				goto out;
			}
			worker_report(w, msg, token);
			break;
		}
	}
out:
	inbox_messages_free(msgs, n_msgs);
}

/* The modem sent something while we were idle: feed it to libgammu (URCs, a late reply). */
static void worker_read_port(Worker *w, short revents)
{
	if (revents & POLLHUP) {
		worker_port_gone(w, "hung up");
		return;
	}
	if (revents & (POLLERR | POLLNVAL)) {
		worker_port_gone(w, "error on the port");
		return;
	}
	for (unsigned i = 0; i < 64 && w->sm; i++) {
		struct pollfd p = {.fd = w->tty_fd, .events = POLLIN};
		int n = GSM_ReadDevice(w->sm, false);

		if (n < 0) {
			worker_port_gone(w, "read error");
			return;
		}
		if (n == 0) {
			/* poll() said readable and there was nothing: end of file. */
			worker_port_gone(w, "hung up");
			return;
		}
		if (poll(&p, 1, 0) <= 0)
			return;
		if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) {
			worker_port_gone(w, "hung up");
			return;
		}
	}
}

/* ---- connecting ---- */

static void worker_configure(Worker *w, GSM_Config *cfg)
{
	cfg->Device = strdup(w->device);
	cfg->Connection = strdup(w->settings->connection);
	cfg->DebugFile = NULL;
	cfg->Model[0] = 0; /* auto-detect */
	snprintf(cfg->DebugLevel, sizeof(cfg->DebugLevel), "%s", w->gammu_debug ? "textall" : "");
	cfg->SyncTime = false;
	cfg->LockDevice = false;
	cfg->StartInfo = false;
	cfg->UseGlobalDebugFile = false;
	snprintf(cfg->TextReminder, sizeof(cfg->TextReminder), "Reminder");
	snprintf(cfg->TextMeeting, sizeof(cfg->TextMeeting), "Meeting");
	snprintf(cfg->TextCall, sizeof(cfg->TextCall), "Call");
	snprintf(cfg->TextBirthday, sizeof(cfg->TextBirthday), "Birthday");
	snprintf(cfg->TextMemo, sizeof(cfg->TextMemo), "Memo");
	cfg->PhoneFeatures[0] = 0;
	/* libgammu's defaults: AT+CNMI=2,1,0,2,0 where offered: messages and status reports stored
	 * and announced (+CMTI, +CDSI), so that nothing is lost while we are not listening. */
	for (size_t i = 0; i < ELEMENTSOF(cfg->CNMIParams); i++)
		cfg->CNMIParams[i] = -1;
}

/* The fds of this process open on the port realpath, as a bitmap of the first 1024. */
static void worker_port_fds(const char *real, uint64_t ret[static 16])
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;

	memset(ret, 0, 16 * sizeof(uint64_t));
	if (!d)
		return;
	while ((de = readdir(d))) {
		char target[PATH_MAX];
		ssize_t n;
		int fd;

		if (de->d_name[0] == '.')
			continue;
		fd = atoi(de->d_name);
		if (fd < 0 || fd >= 1024 || fd == dirfd(d))
			continue;
		n = readlinkat(dirfd(d), de->d_name, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = 0;
		if (streq(target, real))
			ret[fd / 64] |= UINT64_C(1) << (fd % 64);
	}
	closedir(d);
}

/* The one fd that appeared on the port between two snapshots: libgammu's. */
static int worker_new_fd(const uint64_t before[static 16], const uint64_t after[static 16])
{
	int found = -1;

	for (int i = 0; i < 16; i++) {
		uint64_t added = after[i] & ~before[i];

		for (int b = 0; added; b++, added >>= 1)
			if (added & 1) {
				if (found >= 0)
					return -1; /* ambiguous: better not to poll the wrong one */
				found = i * 64 + b;
			}
	}
	return found;
}

/* With an IMEI configured: finds the port answering it and claims it. Returns 0 with w->device
 * and w->port set, or -ENODEV after publishing why not. */
static int worker_find_port(Worker *w)
{
	const char *want = w->settings->imei;
	char **paths = NULL;
	WorkerReason mismatch = "";
	bool configured_silent = false, probed_by_other = false;
	int n, checked = 0;

	n = probe_candidates(w->settings->device, &paths);
	if (n < 0) {
		log_ctx_errno(LOG_ERR, n, w->ctx, "Cannot list serial ports: %m");
		return -ENODEV;
	}
	for (int i = 0; i < n; i++) {
		char owner[64] = "", imei[32];
		char *real = NULL;
		int r;

		r = ports_claim(paths[i], w->settings->name, true, &real, owner, sizeof(owner));
		if (r == -EBUSY || r == -EAGAIN) {
			log_ctx(LOG_DEBUG, w->ctx, "Not probing %s: modem %s %s it", paths[i],
			        owner, r == -EBUSY ? "uses" : "is probing");
			probed_by_other = probed_by_other || r == -EAGAIN;
			continue;
		}
		if (r < 0)
			continue;
		checked++;
		r = probe_imei(paths[i], WORKER_PROBE_USEC, imei, sizeof(imei));
		if (r == 0 && streq(imei, want)) {
			snprintf(w->device, sizeof(w->device), "%s", paths[i]);
			ports_keep(real);
			w->port = real;
			if (!streq(paths[i], w->settings->device))
				log_ctx(LOG_NOTICE, w->ctx, "Found IMEI %s on %s", want, paths[i]);
			probe_candidates_free(paths, n);
			return 0;
		}
		if (r == 0 && !mismatch[0])
			snprintf(mismatch, sizeof(mismatch),
			         "IMEI mismatch: found %s on %s, expected %s", imei, paths[i],
			         want);
		else if (r < 0 && streq(paths[i], w->settings->device))
			configured_silent = true;
		if (r < 0)
			log_ctx(LOG_DEBUG, w->ctx, "No IMEI from %s: %s", paths[i], strerror(-r));
		ports_release(real);
	}
	probe_candidates_free(paths, n);

	/* The configured port did not answer the probe; libgammu may still get through (another
	 * speed, a slow modem), and checks the IMEI once connected. */
	if (configured_silent &&
	    ports_claim(w->settings->device, w->settings->name, false, &w->port, NULL, 0) == 0) {
		snprintf(w->device, sizeof(w->device), "%s", w->settings->device);
		return 0;
	}

	if (probed_by_other && !mismatch[0])
		return -EAGAIN; /* our modem may be the one being probed: look again at once */
	if (mismatch[0])
		worker_set_state(w, MODEM_STATE_FAILED, mismatch);
	else {
		WorkerReason reason;

		snprintf(reason, sizeof(reason), "no modem with IMEI %s found (%d port%s checked)",
		         want, checked, checked == 1 ? "" : "s");
		worker_set_state(w, MODEM_STATE_ABSENT, reason);
	}
	return -ENODEV;
}

/* Without an IMEI: the configured port, if it is there and no other Modem has it. */
static int worker_claim_configured(Worker *w)
{
	const char *dev = w->settings->device;
	char owner[64] = "";
	WorkerReason reason;
	int r;

	snprintf(w->device, sizeof(w->device), "%s", dev);
	r = ports_claim(dev, w->settings->name, false, &w->port, owner, sizeof(owner));
	if (r == 0 || r == -EAGAIN)
		return r; /* -EAGAIN: a neighbour looking for its IMEI is done in a moment */
	if (r == -ENOENT)
		snprintf(reason, sizeof(reason), "device %s not present", dev);
	else if (r == -EBUSY)
		snprintf(reason, sizeof(reason), "device %s in use by modem %s", dev, owner);
	else if (r == -EMFILE || r == -ENFILE)
		worker_descriptors_reason(reason, sizeof(reason), dev, r);
	else
		snprintf(reason, sizeof(reason), "cannot open %s: %s", dev, strerror(-r));
	worker_set_state(w, MODEM_STATE_ABSENT, reason);
	return r;
}

static void worker_connect(Worker *w)
{
	char model[GSM_MAX_MODEL_LENGTH + 1] = "", imei[GSM_MAX_IMEI_LENGTH + 1] = "";
	uint64_t fds_before[16], fds_after[16];
	uint64_t t0 = now_monotonic_usec();
	WorkerReason reason;
	GSM_StateMachine *sm;
	GSM_Config *cfg;
	GSM_Error error;
	int r;

	r = worker_descriptors_available();
	if (r < 0) {
		worker_descriptors_reason(reason, sizeof(reason), w->settings->device, r);
		worker_set_state(w, MODEM_STATE_ABSENT, reason);
		goto retry;
	}
	r = w->settings->imei ? worker_find_port(w) : worker_claim_configured(w);
	if (r == -EAGAIN) {
		w->next_connect = now_monotonic_usec() + WORKER_PORT_BUSY_RETRY_USEC;
		return;
	}
	if (r < 0)
		goto retry;

	sm = GSM_AllocStateMachine();
	if (!sm) {
		log_ctx_errno(LOG_ERR, ENOMEM, w->ctx, "Failed to allocate a state machine: %m");
		goto release;
	}
	cfg = GSM_GetConfig(sm, 0);
	worker_configure(w, cfg);
	if (!cfg->Device || !cfg->Connection) {
		GSM_FreeStateMachine(sm);
		log_ctx_errno(LOG_ERR, ENOMEM, w->ctx, "Failed to configure a state machine: %m");
		goto release;
	}
	GSM_SetConfigNum(sm, 1);

	log_ctx(LOG_DEBUG, w->ctx, "Connecting to %s (%s)", w->device, w->settings->connection);
	worker_port_fds(w->port, fds_before);
	w->sm = sm;
	worker_begin(w, 3 * worker_usec(w->settings->command_timeout_sec));
	error = worker_end(
	        w, GSM_InitConnection_Log(sm, 1, w->gammu_debug ? worker_gammu_log : NULL, w));
	if (error != ERR_NONE) {
		ModemState state;

		(void)GSM_TerminateConnection(sm);
		GSM_FreeStateMachine(sm);
		w->sm = NULL;
		r = worker_error_is_device(error) ? worker_descriptors_available() : 0;
		if (r < 0) {
			worker_descriptors_reason(reason, sizeof(reason), w->device, r);
			state = MODEM_STATE_ABSENT;
		} else if (worker_error_is_device(error)) {
			worker_format(reason, sizeof(reason), "cannot open %s: %s", w->device,
			              worker_error_string(error));
			state = MODEM_STATE_ABSENT;
		} else {
			snprintf(reason, sizeof(reason), "%s: %s",
			         error == ERR_TIMEOUT || error == ERR_ABORTED
			                 ? "modem not responding"
			                 : "modem initialisation failed",
			         worker_error_string(error));
			state = MODEM_STATE_FAILED;
		}
		w->port = ports_release(w->port);
		worker_set_state(w, state, reason);
		goto retry;
	}
	worker_port_fds(w->port, fds_after);
	w->tty_fd = worker_new_fd(fds_before, fds_after);
	w->hung_up = false;
	watchdog_set_port(w->watchdog, w->tty_fd);
	if (w->tty_fd < 0)
		log_ctx(LOG_NOTICE, w->ctx,
		        "Cannot tell libgammu's fd for %s: hang-ups and new messages are noticed "
		        "at the next check only",
		        w->device);

	w->connected_at = now_monotonic_usec();
	w->have_smsc = false;
	w->sim_ready = false;
	w->incoming = 0;
	w->inbox_supported = true;
	w->inbox_due = true; /* whatever arrived while we were away */
	w->registration[0] = 0;
	inbox_new_connection(w->inbox);
	GSM_SetSendSMSStatusCallback(sm, worker_send_status, w);
	GSM_SetIncomingSMSCallback(sm, worker_incoming_sms, w);

	worker_begin(w, worker_usec(w->settings->command_timeout_sec));
	error = worker_end(w, GSM_GetModel(sm, model));
	if (worker_error_is_fatal(error)) {
		worker_lost(w, error);
		return;
	}
	worker_begin(w, worker_usec(w->settings->command_timeout_sec));
	error = worker_end(w, GSM_GetIMEI(sm, imei));
	if (worker_error_is_fatal(error)) {
		worker_lost(w, error);
		return;
	}
	if (w->settings->imei && !streq(imei, w->settings->imei)) {
		/* The probe said yes, or could not tell: libgammu's answer is the one that counts.
		 */
		worker_format(reason, sizeof(reason), "IMEI mismatch: found %s on %s, expected %s",
		              imei[0] ? imei : "nothing", w->device, w->settings->imei);
		worker_disconnect(w, true);
		worker_set_state(w, MODEM_STATE_FAILED, reason);
		return;
	}
	worker_copy_utf8(w->model, sizeof(w->model), model);
	worker_copy_utf8(w->imei, sizeof(w->imei), imei);
	log_ctx(LOG_INFO, w->ctx, "Connected to %s in %.1f s: model '%s', IMEI %s", w->device,
	        (double)(now_monotonic_usec() - t0) / 1e6, model, imei[0] ? imei : "unknown");

	worker_check_health(w);
	return;

release:
	w->port = ports_release(w->port);
retry:
	worker_retry_later(w);
}

/* ---- sending ---- */

static void worker_fail(ModemJob *job, int result, bool permanent, const char *format, ...)
        _printf_(4, 5);

static void worker_fail(ModemJob *job, int result, bool permanent, const char *format, ...)
{
	va_list ap;

	job->event.result = result;
	job->event.permanent = permanent;
	va_start(ap, format);
	vsnprintf(job->event.error, sizeof(job->event.error), format, ap);
	va_end(ap);
}

static void worker_refuse(Worker *w, ModemJob *job)
{
	job->event = (ModemEvent){.message_ref = -1};
	if (!w->sm || !w->published)
		worker_fail(
		        job, -ENODEV, false, "modem %s: %s",
		        modem_state_to_string(w->published ? w->status.state : MODEM_STATE_ABSENT),
		        w->published ? w->status.reason : "not connected");
	else
		worker_fail(job, -ENOTCONN, false, "modem %s: %s",
		            modem_state_to_string(w->status.state), w->status.reason);
}

/* ---- the send path's own AT exchange ----
 *
 * libgammu's GSM_SendSMS() sleeps 0.6 s per part between the prompt and Ctrl-Z (ATGEN_SendSMS),
 * which halves what an instant modem sends per second and adds 0.6 s to every page. So each
 * part is encoded by libgammu (sms_submit_pdu()) and sent here: AT+CMGS=<n>, the PDU and Ctrl-Z
 * at the prompt, +CMGS: <mr> or +CMS ERROR, with a deadline per step, through the chat engine
 * the voice dial-out uses, run in a private sd-event loop on this thread over a duplicate of
 * libgammu's fd. libgammu is not in a call meanwhile, so nobody else reads the port. Without
 * libgammu's fd, or where the modem refuses PDU mode, GSM_SendSMS() still sends. */

typedef struct WorkerExchange {
	Worker *w;
	bool done;
	int r;
	ChatResult result;
	int error_code;
	bool prompted;
	int ref;        /* of "+CMGS: <mr>" */
	char final[64]; /* the final line, for the log */
} WorkerExchange;

static void worker_on_reply(Chat *chat, int r, const ChatReply *reply, void *userdata)
{
	WorkerExchange *x = userdata;

	x->done = true;
	x->r = r;
	if (r < 0)
		return;
	x->result = reply->result;
	x->error_code = reply->error_code;
	snprintf(x->final, sizeof(x->final), "%s", reply->final);
	x->prompted = reply->prompted;
	for (size_t i = 0; i < reply->n_lines; i++) {
		unsigned mr;

		if (sscanf(reply->lines[i], "+CMGS: %u", &mr) == 1 && mr <= 255)
			x->ref = (int)mr;
	}
}

/* A message announced while we talk is read at the next turn of the loop. */
static void worker_on_line(Chat *chat, const char *line, void *userdata)
{
	WorkerExchange *x = userdata;

	if (strncmp(line, "+CMTI:", 6) == 0 || strncmp(line, "+CDSI:", 6) == 0 ||
	    strncmp(line, "+CDS:", 5) == 0 || strncmp(line, "+CMT:", 5) == 0)
		x->w->inbox_due = true;
}

/* One command (and its text after the prompt when text is not NULL) on libgammu's fd, to its
 * end: a final result, a deadline of the chat, the port's error, or the watchdog (armed by the
 * caller). Returns 0 with the answer in *x, or the libgammu error that ended it. */
static GSM_Error worker_exchange(Worker *w, const char *command, const char *text,
                                 uint64_t text_timeout, WorkerExchange *x)
{
	static const ChatHandlers handlers = {.unsolicited = worker_on_line};
	uint64_t timeout = worker_usec(w->settings->command_timeout_sec);
	struct pollfd p = {.fd = w->tty_fd, .events = POLLIN};
	Chat *chat = NULL;
	int fd, flags, r;

	*x = (WorkerExchange){.w = w, .ref = -1};
	/* What the modem sent meanwhile (a URC) is libgammu's. */
	if (poll(&p, 1, 0) > 0)
		worker_read_port(w, p.revents);
	if (!w->sm)
		return ERR_DEVICEREADERROR;
	flags = fcntl(w->tty_fd, F_GETFL);
	fd = fcntl(w->tty_fd, F_DUPFD_CLOEXEC, 3);
	if (flags < 0 || fd < 0) {
		if (fd >= 0)
			close(fd);
		return ERR_DEVICEWRITEERROR;
	}
	/* The description is shared with libgammu's fd, which select()s before it reads. */
	if (!(flags & O_NONBLOCK))
		(void)fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	r = chat_new(w->event, fd, w->device, &handlers, x, &chat);
	if (r < 0) {
		close(fd);
		goto restore;
	}
	r = text ? chat_send_text(chat, command, text, timeout, text_timeout, worker_on_reply, x)
	         : chat_send(chat, command, CHAT_FINALS_BASIC, timeout, worker_on_reply, x);
	while (r >= 0 && !x->done && !watchdog_fired(w->watchdog))
		r = sd_event_run(w->event, 100 * USEC_PER_MSEC);
	chat_free(chat);
restore:
	if (!(flags & O_NONBLOCK))
		(void)fcntl(w->tty_fd, F_SETFL, flags);
	if (r < 0 && !x->done) {
		log_ctx_errno(LOG_WARNING, r, w->ctx, "Cannot talk to %s: %m", w->device);
		return ERR_UNKNOWN;
	}
	if (!x->done)
		return ERR_ABORTED; /* the watchdog */
	if (x->r == -ETIMEDOUT)
		return ERR_TIMEOUT;
	if (x->r < 0)
		return ERR_DEVICEREADERROR; /* hung up, unplugged */
	return ERR_NONE;
}

/* AT+CMGF=0 once per connection; a modem that refuses it is left to libgammu. */
static GSM_Error worker_pdu_mode(Worker *w)
{
	WorkerExchange x;
	GSM_Error error;

	if (w->pdu_mode != 0)
		return ERR_NONE;
	worker_begin(w, 2 * worker_usec(w->settings->command_timeout_sec));
	error = worker_end(w, worker_exchange(w, "AT+CMGF=0", NULL, 0, &x));
	if (error != ERR_NONE)
		return error;
	w->pdu_mode = x.result == CHAT_OK ? 1 : -1;
	if (w->pdu_mode < 0)
		log_ctx(LOG_NOTICE, w->ctx,
		        "%s refuses PDU mode (AT+CMGF=0: %s): libgammu sends, 0.6 s slower per "
		        "part",
		        w->device, x.final);
	return ERR_NONE;
}

/* One part by our own exchange; the answer in w->send_*. */
static GSM_Error worker_send_part_at(Worker *w, GSM_SMSMessage *part)
{
	uint64_t timeout = worker_usec(w->settings->send_timeout_sec);
	char hex[2 * 188 + 1], command[32];
	uint64_t t0;
	size_t tpdu_len;
	WorkerExchange x;
	GSM_Error error;

	if (sms_submit_pdu(part, hex, sizeof(hex), &tpdu_len) < 0)
		return ERR_INVALIDDATA;
	snprintf(command, sizeof(command), "AT+CMGS=%zu", tpdu_len);
	worker_begin(w, worker_usec(w->settings->command_timeout_sec) + timeout + USEC_PER_SEC);
	t0 = now_monotonic_usec();
	error = worker_end(w, worker_exchange(w, command, hex, timeout, &x));
	/* The chat does not say which deadline it was; the prompt's is the shorter one. */
	w->send_no_prompt =
	        error == ERR_TIMEOUT &&
	        now_monotonic_usec() - t0 <
	                worker_usec(w->settings->command_timeout_sec) + USEC_PER_SEC / 2;
	if (error != ERR_NONE)
		return error;
	w->send_answered = true;
	if (x.result == CHAT_OK && x.prompted) {
		w->send_status = 0;
		w->send_ref = x.ref;
	} else if (x.result == CHAT_OK) {
		w->send_status = -1; /* OK without a prompt: nothing was sent */
	} else if (x.result == CHAT_CMS_ERROR || x.result == CHAT_CME_ERROR) {
		w->send_status = x.error_code >= 0 ? x.error_code : -1;
		w->send_cme = x.result == CHAT_CME_ERROR;
	} else
		w->send_status = -1;
	return ERR_NONE;
}

/* Sends one part; returns the libgammu error, with the modem's answer in w->send_*. */
static GSM_Error worker_send_part(Worker *w, GSM_SMSMessage *part)
{
	uint64_t timeout = worker_usec(w->settings->send_timeout_sec);
	uint64_t deadline = now_monotonic_usec() + timeout;
	GSM_Error error;

	w->send_answered = false;
	w->send_status = -1;
	w->send_ref = -1;
	w->send_cme = false;
	w->send_no_prompt = false;

	if (w->event && w->tty_fd >= 0) {
		error = worker_pdu_mode(w);
		if (error != ERR_NONE)
			return error;
		if (w->pdu_mode > 0)
			return worker_send_part_at(w, part);
	}

	worker_begin(w, timeout);
	error = GSM_SendSMS(w->sm, part);
	/* The answer (+CMGS or +CMS ERROR) is read by the status callback. */
	while (error == ERR_NONE && !w->send_answered && now_monotonic_usec() < deadline &&
	       !watchdog_fired(w->watchdog))
		if (GSM_ReadDevice(w->sm, true) < 0)
			error = ERR_DEVICEREADERROR; /* hung up: it would fail every 5 ms */
	error = worker_end(w, error);
	if (error == ERR_NONE && !w->send_answered)
		error = ERR_TIMEOUT;
	return error;
}

/* max_consecutive_failures send errors in a row: the modem (or its SMS centre) is not fit to
 * send. It is failed and initialised again after the backoff. */
static void worker_count_failure(Worker *w)
{
	WorkerReason reason;

	if (++w->send_errors < w->settings->max_consecutive_failures)
		return;
	snprintf(reason, sizeof(reason), "%u consecutive send errors", w->send_errors);
	w->send_errors = 0;
	worker_disconnect(w, true);
	worker_set_state(w, MODEM_STATE_FAILED, reason);
}

static void worker_send(Worker *w, ModemJob *job)
{
	_cleanup_free_ GSM_MultiSMSMessage *sms = NULL;
	unsigned char number[(GSM_MAX_NUMBER_LENGTH + 1) * 2];
	ModemEvent *ev = &job->event;
	bool attempted = false, refused = false;
	GSM_Error error;
	int r;

	*ev = (ModemEvent){.message_ref = -1};

	if (!sms_number_is_valid(job->number)) {
		worker_fail(job, -EINVAL, true, "invalid number '%s'", job->number);
		goto done;
	}
	r = sms_encode(job->text, &sms);
	if (r == -EMSGSIZE) {
		worker_fail(job, r, true, "text too long for %d SMS parts", GSM_MAX_MULTI_SMS - 1);
		goto done;
	}
	if (r < 0) {
		worker_fail(job, r, r != -ENOMEM, "text cannot be encoded: %s", strerror(-r));
		goto done;
	}
	DecodeUTF8(number, job->number, strlen(job->number));
	attempted = true;

	if (!w->have_smsc) {
		memset(&w->smsc, 0, sizeof(w->smsc));
		w->smsc.Location = 1;
		worker_begin(w, worker_usec(w->settings->command_timeout_sec));
		error = worker_end(w, GSM_GetSMSC(w->sm, &w->smsc));
		if (error != ERR_NONE) {
			worker_fail(job, worker_errno(error), false,
			            "cannot read the SMS centre number: %s",
			            worker_error_string(error));
			if (worker_error_is_fatal(error))
				worker_lost(w, error);
			goto done;
		}
		w->have_smsc = true;
	}

	for (int i = 0; i < sms->Number; i++) {
		GSM_SMSMessage *part = &sms->SMS[i];

		part->SMSC = w->smsc;
		part->SMSC.Location = 0; /* use the number read above, do not ask again */
		CopyUnicodeString(part->Number, number);
		/* libgammu's way of setting TP-SRR (what `gammu sendsms ... -report` does). */
		part->PDU = w->settings->delivery_reports && w->incoming > 0 ? SMS_Status_Report
		                                                             : SMS_Submit;

		error = worker_send_part(w, part);
		if (w->send_answered && w->send_status == 0) {
			ev->parts++;
			ev->message_ref = w->send_ref;
			continue;
		}

		if (w->send_answered) {
			/* The modem answered with an error: the network's or its own. */
			if (w->send_status > 0 && w->send_cme) {
				worker_fail(job, -EIO, false, "+CME ERROR: %d", w->send_status);
			} else if (w->send_status > 0) {
				refused = sms_cause_is_permanent(w->send_status);
				worker_fail(job, -EREMOTEIO, refused, "+CMS ERROR: %d",
				            w->send_status);
			} else
				worker_fail(job, -EIO, false, "ERROR");
			if (worker_error_is_fatal(error))
				worker_lost(w, error);
			else
				w->next_health = 0; /* maybe the registration is gone */
		} else if (error == ERR_TIMEOUT || error == ERR_ABORTED) {
			if (w->send_no_prompt)
				worker_fail(job, -ETIMEDOUT, false,
				            "no prompt for the message from the modem within %u s",
				            w->settings->command_timeout_sec);
			else
				worker_fail(job, -ETIMEDOUT, false,
				            "no answer from the modem within %u s",
				            w->settings->send_timeout_sec);
			worker_lost(w, error);
		} else if (error == ERR_INVALIDDATA) {
			worker_fail(job, -EINVAL, true, "%s", worker_error_string(error));
		} else {
			worker_fail(job, worker_errno(error), false, "%s",
			            worker_error_string(error));
			if (worker_error_is_fatal(error))
				worker_lost(w, error);
			else
				w->next_health = 0;
		}
		break;
	}

done:
	if (ev->result == 0) {
		log_ctx(LOG_INFO, w->ctx, "Job %" PRIu64 " sent to %s: %u part(s), reference %d",
		        job->id, job->number, ev->parts, ev->message_ref);
		w->send_errors = 0;
		w->backoff = WORKER_BACKOFF_MIN_USEC;
		w->last_send_usec = now_realtime_usec();
		if (w->published && w->sm) {
			ModemStatus s = w->status;

			s.last_send_usec = w->last_send_usec;
			worker_set_status(w, &s);
		}
		return;
	}
	log_ctx(LOG_WARNING, w->ctx, "Job %" PRIu64 " to %s failed after %u part(s): %s%s", job->id,
	        job->number, ev->parts, ev->error, ev->permanent ? " (permanent)" : "");
	if (refused)
		w->send_errors = 0; /* the network answered: the path works, the number does not */
	else if (attempted)
		worker_count_failure(w);
}

/* ---- the loop ---- */

/* Watches the directory of the configured port (and, with an IMEI, wherever the modem may show
 * up). Without inotify the backoff still finds the port, only later. */
static void worker_watch(Worker *w)
{
	static const char *const serial[] = {"ttyUSB*", "ttyACM*"};
	const char *dev = w->settings->device, *slash = strrchr(dev, '/');
	char dir[PATH_MAX];
	const char *patterns[3];
	unsigned n = 0;
	int r;

	r = devwatch_new(&w->devwatch);
	if (r < 0) {
		log_ctx_errno(LOG_WARNING, r, w->ctx,
		              "Cannot watch for the port (inotify): %m; a lost port is only "
		              "looked for with the backoff");
		return;
	}
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dev)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - dev), dev);
	patterns[n++] = slash ? slash + 1 : dev;
	if (w->settings->imei) {
		patterns[n++] = serial[0];
		patterns[n++] = serial[1];
	}
	r = devwatch_add(w->devwatch, dir, patterns, n);
	if (r >= 0 && w->settings->imei) {
		static const char *const any[] = {"*"};

		if (!streq(dir, "/dev"))
			r = devwatch_add(w->devwatch, "/dev", serial, 2);
		if (r >= 0)
			r = devwatch_add(w->devwatch, "/dev/serial/by-id", any, 1);
	}
	if (r < 0)
		log_ctx_errno(LOG_WARNING, r, w->ctx, "Cannot watch for the port: %m");
}

/* Sleeps until something needs the worker or deadline (CLOCK_MONOTONIC) passes. */
static void worker_wait(Worker *w, uint64_t deadline)
{
	struct pollfd p[3];
	uint64_t now = now_monotonic_usec();
	int n = 0, timeout, tty = -1;

	p[n++] = (struct pollfd){.fd = modem_wake_fd(w->modem), .events = POLLIN};
	if (w->devwatch)
		p[n++] = (struct pollfd){.fd = devwatch_fd(w->devwatch), .events = POLLIN};
	if (w->sm && w->tty_fd >= 0) {
		tty = n;
		p[n++] = (struct pollfd){.fd = w->tty_fd, .events = POLLIN};
	}
	if (deadline == UINT64_MAX)
		timeout = -1;
	else if (deadline <= now)
		timeout = 0;
	else
		timeout = (int)MIN((deadline - now + 999) / 1000, (uint64_t)INT_MAX);

	if (poll(p, (nfds_t)n, timeout) <= 0)
		return;
	if (tty >= 0 && p[tty].revents)
		worker_read_port(w, p[tty].revents);
}

void *worker_main(void *userdata)
{
	Modem *m = userdata;
	const char *debug = getenv("GATEWAYD_GAMMU_DEBUG");
	ModemJob *job;
	Worker w = {
	        .modem = m,
	        .settings = modem_settings(m),
	        .ctx = modem_log_context(m),
	        .watchdog = modem_watchdog(m),
	        .gammu_debug = debug && streq(debug, "1"),
	        .backoff = WORKER_BACKOFF_MIN_USEC,
	        .tty_fd = -1,
	        .status = {.state = MODEM_STATE_ABSENT, .signal = 99},
	};
	int r;

	r = inbox_new(&w.inbox);
	if (r < 0) {
		/* Without it nothing received could be tracked: never connect, refuse every job. */
		log_ctx_errno(LOG_ERR, r, w.ctx, "Cannot start the worker: %m");
		worker_set_state(&w, MODEM_STATE_FAILED, "out of memory");
		w.next_connect = UINT64_MAX;
	}
	if (w.settings->state_dir) {
		r = decodemark_open(w.settings->state_dir, w.settings->name, &w.mark);
		if (r < 0)
			log_ctx_errno(LOG_WARNING, r, w.ctx,
			              "Cannot open the decoding note in %s: %m; a message that "
			              "crashes the decoder would be decoded again after a restart",
			              w.settings->state_dir);
		else if (decodemark_poisoned(w.mark))
			log_ctx(LOG_WARNING, w.ctx,
			        "The previous run died decoding a stored SMS (%s): it is "
			        "quarantined, not decoded again",
			        decodemark_path(w.mark));
	}
	worker_watch(&w);
	r = sd_event_new(&w.event);
	if (r < 0)
		log_ctx_errno(LOG_WARNING, r, w.ctx,
		              "Cannot start the loop of the send path: %m; libgammu sends, 0.6 s "
		              "slower per part");

	for (;;) {
		uint64_t now, deadline;

		modem_clear_wake(m);
		if (modem_stopping(m))
			break;
		r = w.devwatch ? devwatch_process(w.devwatch) : 0;
		if ((r & DEVWATCH_APPEARED) && !w.sm && w.inbox) {
			/* A port appeared or changed: try it now, whatever the backoff said. */
			log_ctx(LOG_DEBUG, w.ctx, "A port appeared, connecting");
			w.next_connect = 0;
			w.backoff = WORKER_BACKOFF_MIN_USEC;
		}
		/* Without libgammu's fd, a removed port is only noticed this way. */
		if (r > 0 && (r & DEVWATCH_GONE) && w.sm && w.tty_fd < 0 &&
		    access(w.device, F_OK) < 0)
			worker_port_gone(&w, "device removed");

		now = now_monotonic_usec();
		if (!w.sm && now >= w.next_connect)
			worker_connect(&w);
		if (w.inbox)
			worker_process_confirmed(&w);
		if (w.sm && now >= w.next_health)
			worker_check_health(&w);
		if (w.sm && (w.inbox_due || now >= w.next_inbox))
			worker_scan_inbox(&w);

		if (!worker_usable(&w)) {
			/* Jobs that cannot be sent here are answered now, to be sent elsewhere. */
			while ((job = modem_pop_job(m))) {
				worker_refuse(&w, job);
				modem_finish_job(m, job);
			}
		} else if ((job = modem_pop_job(m))) {
			worker_send(&w, job);
			modem_finish_job(m, job);
			continue;
		}

		if (w.sm)
			deadline = MIN(w.next_health, w.next_inbox);
		else
			deadline = w.next_connect;
		if (w.sm && w.inbox_due)
			deadline = 0;
		worker_wait(&w, deadline);
	}

	worker_disconnect(&w, false);
	while ((job = modem_pop_job(m))) {
		job->event = (ModemEvent){.message_ref = -1};
		worker_fail(job, -ESHUTDOWN, false, "modem stopped");
		modem_finish_job(m, job);
	}
	w.device[0] = 0;
	worker_set_state(&w, MODEM_STATE_ABSENT, "stopped");
	log_ctx(LOG_DEBUG, w.ctx, "Worker stopped");

	w.event = sd_event_unref(w.event);
	w.devwatch = devwatch_free(w.devwatch);
	w.mark = decodemark_free(w.mark);
	w.inbox = inbox_free(w.inbox);
	modem_unref(m);
	return NULL;
}
