/* worker: one thread, one modem, one GSM_StateMachine.
 *
 * The worker is a small loop around two timers and one queue: connect when there is no state
 * machine (retrying with a backoff of 1 s doubling to 30 s), check health when it is due (SIM,
 * signal, registration; sooner while the modem is failed), and otherwise sleep in
 * modem_wait_job() until a job or the next of those deadlines. A job is sent only while the
 * modem is ok or degraded; otherwise it is answered at once with an error, so that the caller
 * can route it through another modem instead of waiting behind a dead one.
 *
 * Any error that may leave libgammu out of step with the modem (timeouts, device read/write
 * errors, an abort by the watchdog) ends the connection: the state machine is terminated and
 * freed, and a fresh one is allocated on the next attempt. That is heavy-handed (init costs
 * ~4 s) but it is the only state libgammu is known to recover from; an aborted state machine in
 * particular answers ERR_ABORTED forever.
 *
 * Every blocking libgammu call runs between worker_begin() and worker_end(), which arm and
 * disarm the watchdog; libgammu's own timeouts restart on every byte received and cannot be
 * trusted to end a call.
 *
 * Only the worker logs what it sees of the modem; status changes reach the main loop as events
 * and are published only when something changed. */
#include "worker.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <gammu.h>

#include "log.h"
#include "macro.h"
#include "modem-internal.h"
#include "sms.h"
#include "util.h"
#include "watchdog.h"

#define WORKER_BACKOFF_MIN_USEC (1 * USEC_PER_SEC)
#define WORKER_BACKOFF_MAX_USEC (30 * USEC_PER_SEC)
/* A connection that lived this long resets the backoff when it is lost. */
#define WORKER_STABLE_USEC (60 * USEC_PER_SEC)
/* How soon a failed (but connected) modem is looked at again. */
#define WORKER_FAILED_RECHECK_USEC (10 * USEC_PER_SEC)
/* At or below this CSQ value the modem is degraded. */
#define WORKER_WEAK_SIGNAL 5

typedef struct Worker {
	Modem *modem;
	const ModemSettings *settings;
	const LogContext *ctx;
	Watchdog *watchdog;
	bool gammu_debug;

	GSM_StateMachine *sm;
	uint64_t connected_at;
	uint64_t next_connect; /* while sm == NULL */
	uint64_t backoff;
	uint64_t next_health; /* while sm != NULL */
	bool pin_rejected;    /* never offer a rejected PIN again: the SIM counts the tries */
	bool have_smsc;
	GSM_SMSC smsc;

	char model[sizeof(((ModemStatus *)NULL)->model)]; /* of the current connection */
	char imei[sizeof(((ModemStatus *)NULL)->imei)];
	ModemStatus status; /* as last published */
	bool published;

	/* Set by worker_send_status(), called from inside GSM_ReadDevice(). */
	bool send_answered;
	int send_status;
	int send_ref;

	char debug_line[1024];
	size_t debug_len;
} Worker;

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
	if (watchdog_disarm(w->watchdog))
		return ERR_ABORTED;
	return error;
}

static bool worker_usable(const Worker *w)
{
	return w->sm && w->published &&
	       (w->status.state == MODEM_STATE_OK || w->status.state == MODEM_STATE_DEGRADED);
}

/* Errors after which libgammu and the modem can no longer be assumed to agree. */
static bool worker_error_is_fatal(GSM_Error error)
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
	case ERR_TIMEOUT:
	case ERR_NOTCONNECTED:
	case ERR_ABORTED:
		return true;
	default:
		return false;
	}
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

static bool worker_status_equal(const ModemStatus *a, const ModemStatus *b)
{
	return a->state == b->state && a->signal == b->signal && streq(a->reason, b->reason) &&
	       streq(a->operator_name, b->operator_name) && streq(a->imei, b->imei) &&
	       streq(a->model, b->model);
}

static void worker_set_status(Worker *w, const ModemStatus *status)
{
	if (w->published && worker_status_equal(&w->status, status))
		return;

	if (!w->published || w->status.state != status->state ||
	    !streq(w->status.reason, status->reason)) {
		if (status->state == MODEM_STATE_OK)
			log_ctx(LOG_INFO, w->ctx, "Modem ok: signal %d, operator '%s'",
			        status->signal, status->operator_name);
		else
			log_ctx(status->state == MODEM_STATE_DEGRADED ? LOG_NOTICE : LOG_WARNING,
			        w->ctx, "Modem %s: %s", modem_state_to_string(status->state),
			        status->reason);
	}
	w->status = *status;
	w->published = true;
	modem_publish_status(w->modem, status);
}

/* A status that keeps the identity read at connection time. */
static ModemStatus worker_status_new(const Worker *w, ModemState state, const char *reason)
{
	ModemStatus s = {.state = state, .signal = 99};

	memcpy(s.imei, w->imei, sizeof(s.imei));
	memcpy(s.model, w->model, sizeof(s.model));
	snprintf(s.reason, sizeof(s.reason), "%s", reason);
	return s;
}

static void worker_disconnect(Worker *w)
{
	uint64_t now = now_monotonic_usec();

	if (!w->sm)
		return;

	worker_begin(w, worker_usec(w->settings->command_timeout_sec));
	(void)worker_end(w, GSM_TerminateConnection(w->sm));
	GSM_FreeStateMachine(w->sm);
	w->sm = NULL;
	w->have_smsc = false;
	w->model[0] = w->imei[0] = 0; /* they belong to the connection */

	if (now - w->connected_at >= WORKER_STABLE_USEC)
		w->backoff = WORKER_BACKOFF_MIN_USEC;
	w->next_connect = now + w->backoff;
	w->backoff = MIN(w->backoff * 2, WORKER_BACKOFF_MAX_USEC);
}

/* The connection broke under a call: report it, drop the state machine, reconnect later. */
static void worker_lost(Worker *w, GSM_Error error)
{
	char reason[sizeof(((ModemStatus *)NULL)->reason)];
	ModemStatus s;

	if (worker_error_is_device(error)) {
		snprintf(reason, sizeof(reason), "device lost: %s", worker_error_string(error));
		s = worker_status_new(w, MODEM_STATE_ABSENT, reason);
	} else {
		snprintf(reason, sizeof(reason), "modem not responding: %s",
		         worker_error_string(error));
		s = worker_status_new(w, MODEM_STATE_FAILED, reason);
	}
	worker_disconnect(w);
	s.imei[0] = s.model[0] = 0;
	worker_set_status(w, &s);
}

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
	/* UTF-16 in, terminated here in case libgammu filled the field; EncodeUTF8() writes at most
	 * 3 bytes per unit. */
	unsigned char unicode[sizeof(net->NetworkName) + 2] = {0};
	char name[sizeof(unicode) * 2];

	memcpy(unicode, net->NetworkName, sizeof(net->NetworkName));
	if (UnicodeLength(unicode) > 0) {
		EncodeUTF8(name, unicode);
		worker_copy_utf8(ret, size, name);
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

static void worker_check_health(Worker *w)
{
	uint64_t timeout = worker_usec(w->settings->command_timeout_sec);
	char reason[sizeof(((ModemStatus *)NULL)->reason)];
	GSM_SignalQuality quality;
	GSM_NetworkInfo net;
	bool roaming = false;
	GSM_Error error;
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
		s = worker_status_new(w, MODEM_STATE_FAILED, reason);
		w->next_health =
		        now_monotonic_usec() + MIN(WORKER_FAILED_RECHECK_USEC,
		                                   worker_usec(w->settings->health_interval_sec));
		worker_set_status(w, &s);
		return;
	}

	s = worker_status_new(w, MODEM_STATE_OK, "");

	memset(&quality, 0, sizeof(quality));
	worker_begin(w, timeout);
	error = worker_end(w, GSM_GetSignalQuality(w->sm, &quality));
	if (worker_error_is_fatal(error)) {
		worker_lost(w, error);
		return;
	}
	if (error == ERR_NONE)
		s.signal = worker_csq(&quality);

	memset(&net, 0, sizeof(net));
	worker_begin(w, timeout);
	error = worker_end(w, GSM_GetNetworkInfo(w->sm, &net));
	if (worker_error_is_fatal(error)) {
		worker_lost(w, error);
		return;
	}
	if (error == ERR_NONE) {
		switch (net.State) {
		case GSM_HomeNetwork:
			break;
		case GSM_RoamingNetwork:
			roaming = true;
			break;
		case GSM_RegistrationDenied:
			s.state = MODEM_STATE_FAILED;
			snprintf(s.reason, sizeof(s.reason), "network registration denied");
			break;
		default:
			s.state = MODEM_STATE_FAILED;
			snprintf(s.reason, sizeof(s.reason), "not registered to a network");
			break;
		}
		if (s.state != MODEM_STATE_FAILED)
			worker_operator_name(&net, s.operator_name, sizeof(s.operator_name));
	} else if (error != ERR_NOTSUPPORTED && error != ERR_NOTIMPLEMENTED) {
		s.state = MODEM_STATE_FAILED;
		snprintf(s.reason, sizeof(s.reason), "cannot read network registration: %s",
		         worker_error_string(error));
	}

	if (s.state == MODEM_STATE_OK) {
		bool weak = s.signal != 99 && s.signal <= WORKER_WEAK_SIGNAL;

		if (weak || roaming) {
			s.state = MODEM_STATE_DEGRADED;
			if (weak)
				snprintf(s.reason, sizeof(s.reason), "weak signal (CSQ %d)%s",
				         s.signal, roaming ? ", roaming" : "");
			else
				snprintf(s.reason, sizeof(s.reason), "roaming");
		}
	} else
		w->next_health =
		        now_monotonic_usec() + MIN(WORKER_FAILED_RECHECK_USEC,
		                                   worker_usec(w->settings->health_interval_sec));

	worker_set_status(w, &s);
}

static void worker_configure(Worker *w, GSM_Config *cfg)
{
	cfg->Device = strdup(w->settings->device);
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
	for (size_t i = 0; i < ELEMENTSOF(cfg->CNMIParams); i++)
		cfg->CNMIParams[i] = -1; /* libgammu's defaults */
}

static void worker_connect(Worker *w)
{
	char reason[sizeof(((ModemStatus *)NULL)->reason)];
	char model[GSM_MAX_MODEL_LENGTH + 1] = "", imei[GSM_MAX_IMEI_LENGTH + 1] = "";
	GSM_StateMachine *sm;
	GSM_Config *cfg;
	GSM_Error error;
	ModemStatus s;

	sm = GSM_AllocStateMachine();
	if (!sm) {
		log_ctx_errno(LOG_ERR, ENOMEM, w->ctx, "Failed to allocate a state machine: %m");
		goto retry;
	}
	cfg = GSM_GetConfig(sm, 0);
	worker_configure(w, cfg);
	if (!cfg->Device || !cfg->Connection) {
		GSM_FreeStateMachine(sm);
		log_ctx_errno(LOG_ERR, ENOMEM, w->ctx, "Failed to configure a state machine: %m");
		goto retry;
	}
	GSM_SetConfigNum(sm, 1);

	log_ctx(LOG_DEBUG, w->ctx, "Connecting to %s (%s)", w->settings->device,
	        w->settings->connection);
	w->sm = sm;
	worker_begin(w, 3 * worker_usec(w->settings->command_timeout_sec));
	error = worker_end(
	        w, GSM_InitConnection_Log(sm, 1, w->gammu_debug ? worker_gammu_log : NULL, w));
	if (error != ERR_NONE) {
		(void)GSM_TerminateConnection(sm);
		GSM_FreeStateMachine(sm);
		w->sm = NULL;
		if (worker_error_is_device(error)) {
			snprintf(reason, sizeof(reason), "cannot open %s: %s", w->settings->device,
			         worker_error_string(error));
			s = worker_status_new(w, MODEM_STATE_ABSENT, reason);
		} else {
			snprintf(reason, sizeof(reason), "%s: %s",
			         error == ERR_TIMEOUT || error == ERR_ABORTED
			                 ? "modem not responding"
			                 : "modem initialisation failed",
			         worker_error_string(error));
			s = worker_status_new(w, MODEM_STATE_FAILED, reason);
		}
		worker_set_status(w, &s);
		goto retry;
	}

	w->connected_at = now_monotonic_usec();
	w->have_smsc = false;
	GSM_SetSendSMSStatusCallback(sm, worker_send_status, w);

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
	worker_copy_utf8(w->model, sizeof(w->model), model);
	worker_copy_utf8(w->imei, sizeof(w->imei), imei);
	log_ctx(LOG_INFO, w->ctx, "Connected to %s: model '%s', IMEI %s", w->settings->device,
	        model, imei[0] ? imei : "unknown");

	worker_check_health(w);
	return;

retry:
	w->next_connect = now_monotonic_usec() + w->backoff;
	w->backoff = MIN(w->backoff * 2, WORKER_BACKOFF_MAX_USEC);
}

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

/* Sends one part; returns the libgammu error, with the modem's answer in w->send_*. */
static GSM_Error worker_send_part(Worker *w, GSM_SMSMessage *part)
{
	uint64_t timeout = worker_usec(w->settings->send_timeout_sec);
	uint64_t deadline = now_monotonic_usec() + timeout;
	GSM_Error error;

	w->send_answered = false;
	w->send_status = -1;
	w->send_ref = -1;

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

static void worker_send(Worker *w, ModemJob *job)
{
	_cleanup_free_ GSM_MultiSMSMessage *sms = NULL;
	unsigned char number[(GSM_MAX_NUMBER_LENGTH + 1) * 2];
	ModemEvent *ev = &job->event;
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
		part->PDU = SMS_Submit;

		error = worker_send_part(w, part);
		if (w->send_answered && w->send_status == 0) {
			ev->parts++;
			ev->message_ref = w->send_ref;
			continue;
		}

		if (w->send_answered) {
			/* The modem answered with an error: the network's or its own. */
			if (w->send_status > 0)
				worker_fail(job, -EREMOTEIO, sms_cause_is_permanent(w->send_status),
				            "+CMS ERROR: %d", w->send_status);
			else
				worker_fail(job, -EIO, false, "ERROR");
			if (worker_error_is_fatal(error))
				worker_lost(w, error);
			else
				w->next_health = 0; /* maybe the registration is gone */
		} else if (error == ERR_TIMEOUT || error == ERR_ABORTED) {
			worker_fail(job, -ETIMEDOUT, false, "no answer from the modem within %u s",
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
	if (ev->result == 0)
		log_ctx(LOG_INFO, w->ctx, "Job %" PRIu64 " sent to %s: %u part(s), reference %d",
		        job->id, job->number, ev->parts, ev->message_ref);
	else
		log_ctx(LOG_WARNING, w->ctx, "Job %" PRIu64 " to %s failed after %u part(s): %s%s",
		        job->id, job->number, ev->parts, ev->error,
		        ev->permanent ? " (permanent)" : "");
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
	        .status = {.state = MODEM_STATE_ABSENT, .signal = 99},
	};
	ModemStatus s;

	for (;;) {
		uint64_t now = now_monotonic_usec();
		int r;

		if (modem_stopping(m))
			break;
		if (!w.sm) {
			if (now >= w.next_connect)
				worker_connect(&w);
		} else if (now >= w.next_health)
			worker_check_health(&w);

		/* Jobs that cannot be sent here are answered now, to be sent elsewhere. */
		if (!worker_usable(&w))
			while ((job = modem_pop_job(m))) {
				worker_refuse(&w, job);
				modem_finish_job(m, job);
			}

		r = modem_wait_job(m, w.sm ? w.next_health : w.next_connect);
		if (r < 0)
			break;
		if (r == 0)
			continue;
		job = modem_pop_job(m);
		if (!job)
			continue;
		if (worker_usable(&w))
			worker_send(&w, job);
		else
			worker_refuse(&w, job);
		modem_finish_job(m, job);
	}

	worker_disconnect(&w);
	while ((job = modem_pop_job(m))) {
		job->event = (ModemEvent){.message_ref = -1};
		worker_fail(job, -ESHUTDOWN, false, "modem stopped");
		modem_finish_job(m, job);
	}
	s = (ModemStatus){.state = MODEM_STATE_ABSENT, .signal = 99};
	snprintf(s.reason, sizeof(s.reason), "stopped");
	worker_set_status(&w, &s);
	log_ctx(LOG_DEBUG, w.ctx, "Worker stopped");

	modem_unref(m);
	return NULL;
}
