/* dialer: the call supervisor of the voice dial-out.
 *
 * Why it is built this way: a voice call is the last resort when every SMS path has failed
 * (DESIGN, invariant 5), so it must end with a recorded outcome whatever the modem does, and it
 * must never leave a call up: a modem left in a call cannot send SMS, and a forgotten call costs
 * money and ties up the on-call engineer's phone. Hence a state machine in the main loop,
 * driven by three kinds of events, each of which can only move it forward:
 *
 *   - replies to our own commands, one on the wire at a time (chat.h);
 *   - what the modem volunteers: +CLCC call state reports (AT+CLCC=1), +DTMF digits
 *     (AT+DDET=1), and the BUSY / NO CARRIER / NO ANSWER that end a call after ATD's OK;
 *   - timers: the ring timeout, the hold time, polling, and a deadline over the whole call.
 *
 * Call progress comes from +CLCC reports when the modem sends them; AT+CLCC is polled anyway
 * (every 500 ms without reports, every 2 s beside them, as a safety net for a lost report), and
 * AT+CPAS stands in where AT+CLCC is not understood. A modem that ends a call says so twice, a
 * +CLCC with the call gone and a final result (BUSY, NO CARRIER), in either order; the final
 * result tells more, so a call seen gone waits a second for it before the outcome is inferred
 * from what was seen (alerting before: rejected; else failed).
 *
 * Every way out of a call that was dialed goes through the hang-up (ATH; AT+CHUP if ATH is
 * refused; then AT+CLCC or AT+CPAS to check that no call is left, retrying), then restores the
 * reporting settings we changed, closes the port, and only then reports, from a deferred event
 * so that the done handler never runs inside our own stack. Only a port that is gone skips the
 * hang-up (there is nothing left to talk to; an unplugged modem drops its call). */
#include "dialer.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "log.h"
#include "macro.h"
#include "util.h"

#define SYNC_TIMEOUT_USEC     (1000 * 1000ULL)
#define SYNC_TRIES            3
#define POLL_FAILURES_MAX     3
#define HANGUP_TRIES          3
#define GONE_GRACE_USEC       (1000 * 1000ULL) /* a call seen gone waits this long for its result */
#define NOT_LISTED_GRACE_USEC (2 * 1000 * 1000ULL) /* a call never listed after ATD's OK */
#define RESTORE_TIMEOUT_USEC  (1000 * 1000ULL)

typedef enum DialerState {
	DIALER_IDLE,
	DIALER_STARTING, /* deferred: the port opens from the loop */
	DIALER_SYNC,     /* AT until the modem answers */
	DIALER_SETUP,    /* ATE0, AT+CMEE=1, AT+CLCC=1, AT+DDET=1 */
	DIALER_DIALING,  /* ATD written, not answered yet */
	DIALER_ANSWERED, /* holding the line */
	DIALER_HANGUP,
	DIALER_RESTORE,
	DIALER_REPORTING, /* port closed, the report is deferred */
} DialerState;

typedef enum HangupStep {
	HANGUP_ATH,
	HANGUP_CHUP,
	HANGUP_VERIFY,
} HangupStep;

struct Dialer {
	sd_event *event;
	char *device;
	char *name;
	Chat *chat;
	sd_event_source *start_source;
	sd_event_source *report_source;
	sd_event_source *ring_timer;
	sd_event_source *hold_timer;
	sd_event_source *poll_timer;
	sd_event_source *gone_timer;
	sd_event_source *deadline_timer;
	DialerState state;

	/* the call: everything below is reset by dialer_call() */
	char number[DIALER_NUMBER_MAX + 2];
	DialerOptions opt;
	char *alert_id;
	DialerDoneHandler done;
	void *userdata;

	bool in_flight;     /* one of our commands is on the wire */
	bool atd_in_flight; /* ... and it is ATD */
	unsigned step;
	unsigned sync_tries;
	unsigned poll_failures;
	unsigned hangup_tries;
	HangupStep hangup_step;
	bool hangup_answered_ok; /* ATH or AT+CHUP answered OK */
	bool deadline_passed;

	bool clcc_urc;         /* AT+CLCC=1 accepted */
	bool ddet;             /* AT+DDET=1 accepted */
	bool clcc_works;       /* AT+CLCC answered OK at least once */
	bool clcc_unsupported; /* AT+CLCC refused: poll AT+CPAS */
	bool cpas_unsupported;

	bool dialed;
	bool atd_ok;
	int call_id; /* our call's index in +CLCC, -1 until listed */
	bool seen;   /* our call was listed (+CLCC, or AT+CPAS 4) */
	bool alerting;
	bool answered;
	bool remote_ended;
	bool decided;
	bool port_gone;
	bool hung_up; /* no call of ours is left up */
	CallOutcome outcome;
	char error[DIALER_ERROR_MAX];
	char dtmf[DIALER_DTMF_MAX + 1];
	bool acked;

	uint64_t started_at, dialed_at, answered_at, ended_at; /* CLOCK_REALTIME */
	uint64_t atd_ok_mono, answered_mono, ended_mono;       /* CLOCK_MONOTONIC */
};

static void dialer_next(Dialer *d);
static void dialer_begin_hangup(Dialer *d);
static int dialer_on_hold_timer(sd_event_source *s, uint64_t usec, void *userdata);

#define dialer_log(d, level, ...)                                                                  \
	log_ctx(level, (&(LogContext){.alert_id = (d)->alert_id, .modem = (d)->name}), __VA_ARGS__)

bool dialer_number_is_valid(const char *number)
{
	size_t digits = 0;

	if (!number)
		return false;
	if (*number == '+')
		number++;
	for (; *number; number++, digits++)
		if (*number < '0' || *number > '9')
			return false;
	return digits >= 3 && digits <= DIALER_NUMBER_MAX;
}

static void timer_off(sd_event_source *s)
{
	if (s)
		(void)sd_event_source_set_enabled(s, SD_EVENT_OFF);
}

static int timer_arm(Dialer *d, sd_event_source **s, uint64_t usec, sd_event_time_handler_t handler)
{
	int r;

	if (!*s) {
		r = sd_event_add_time_relative(d->event, s, CLOCK_MONOTONIC, usec, 10 * 1000,
		                               handler, d);
		if (r < 0)
			return log_error_errno(r, "%s: cannot add a timer: %m", d->name);
		return 0;
	}
	r = sd_event_source_set_time_relative(*s, usec);
	if (r >= 0)
		r = sd_event_source_set_enabled(*s, SD_EVENT_ONESHOT);
	if (r < 0)
		return log_error_errno(r, "%s: cannot arm a timer: %m", d->name);
	return 0;
}

static bool timer_armed(sd_event_source *s)
{
	int enabled = SD_EVENT_OFF;

	return s && sd_event_source_get_enabled(s, &enabled) >= 0 && enabled != SD_EVENT_OFF;
}

static void timers_off(Dialer *d)
{
	timer_off(d->ring_timer);
	timer_off(d->hold_timer);
	timer_off(d->poll_timer);
	timer_off(d->gone_timer);
}

static void set_error(Dialer *d, const char *format, ...) _printf_(2, 3);
static void set_error(Dialer *d, const char *format, ...)
{
	va_list ap;

	va_start(ap, format);
	vsnprintf(d->error, sizeof(d->error), format, ap);
	va_end(ap);
}

/* Adds a note to the error text, after what is there. */
static void add_error(Dialer *d, const char *note)
{
	size_t n = strlen(d->error);

	if (n == 0)
		snprintf(d->error, sizeof(d->error), "%s", note);
	else if (n + 2 < sizeof(d->error))
		snprintf(d->error + n, sizeof(d->error) - n, "; %s", note);
}

/* The outcome, once: the first decision stands (a late NO CARRIER does not undo a BUSY). */
static void dialer_decide(Dialer *d, CallOutcome outcome, const char *error)
{
	if (d->decided)
		return;
	d->decided = true;
	d->outcome = outcome;
	if (error && error != d->error)
		snprintf(d->error, sizeof(d->error), "%s", error);
	dialer_log(d, outcome == CALL_FAILED ? LOG_WARNING : LOG_INFO, "call to %s: %s%s%s",
	           d->number, call_outcome_to_string(outcome), d->error[0] ? ": " : "", d->error);
}

static void dialer_mark_ended(Dialer *d)
{
	if (d->ended_at == 0 && d->dialed) {
		d->ended_at = now_realtime_usec();
		d->ended_mono = now_monotonic_usec();
	}
}

static int dialer_on_report(sd_event_source *s, void *userdata)
{
	Dialer *d = userdata;
	DialerDoneHandler done = d->done;
	void *userdata_done = d->userdata;
	DialerReport report;

	d->report_source = sd_event_source_disable_unref(d->report_source);
	report = (DialerReport){
	        .number = d->number,
	        .outcome = d->outcome,
	        .error = d->error,
	        .started_at = d->started_at,
	        .dialed_at = d->dialed_at,
	        .answered_at = d->answered_at,
	        .ended_at = d->ended_at,
	        .duration_usec = d->answered && d->ended_mono > d->answered_mono
	                                 ? d->ended_mono - d->answered_mono
	                                 : 0,
	        .acknowledged_by_dtmf = d->acked,
	        .dtmf_digit = d->dtmf[0],
	        .dtmf = d->dtmf,
	        .dtmf_detection = d->ddet || d->dtmf[0],
	        .hung_up = d->hung_up || !d->dialed,
	};
	d->state = DIALER_IDLE;
	d->done = NULL;
	/* The handler may free the dialer or start the next call: nothing of d after it. */
	if (done)
		done(d, &report, userdata_done);
	return 0;
}

/* Closes the port and reports from the loop. */
static void dialer_finish(Dialer *d)
{
	int r;

	if (d->state == DIALER_IDLE || d->state == DIALER_REPORTING)
		return;
	d->state = DIALER_REPORTING;
	timers_off(d);
	timer_off(d->deadline_timer);
	d->start_source = sd_event_source_disable_unref(d->start_source);
	dialer_mark_ended(d);
	if (!d->decided)
		dialer_decide(d, CALL_FAILED, "ended without an outcome");
	d->chat = chat_free(d->chat);
	d->in_flight = d->atd_in_flight = false;
	r = sd_event_add_defer(d->event, &d->report_source, dialer_on_report, d);
	if (r < 0) {
		/* Never lose an outcome: report now rather than not at all. */
		log_error_errno(r, "%s: cannot defer the call report, reporting at once: %m",
		                d->name);
		dialer_on_report(NULL, d);
	}
}

static void dialer_port_gone(Dialer *d, int error)
{
	char note[DIALER_ERROR_MAX];

	if (d->state == DIALER_IDLE || d->state == DIALER_REPORTING)
		return;
	d->port_gone = true;
	snprintf(note, sizeof(note), "port gone: %s", strerror(-error));
	dialer_log(d, LOG_WARNING, "%s (%s)", note, d->device);
	if (!d->decided)
		dialer_decide(d, CALL_FAILED, note);
	else if (d->state < DIALER_HANGUP || !d->hung_up)
		add_error(d, note);
	/* An unplugged modem drops its call; there is nothing left to hang up. */
	dialer_finish(d);
}

static int dialer_send(Dialer *d, const char *command, unsigned finals, uint64_t timeout_usec,
                       ChatReplyHandler handler)
{
	int r;

	r = chat_send(d->chat, command, finals, timeout_usec, handler, d);
	if (r < 0) {
		/* Only a failed port (or memory) refuses the one command we have on the way. */
		dialer_port_gone(d, r);
		return r;
	}
	d->in_flight = true;
	return 0;
}

/* Handlers' common start: false when the reply must not be looked at any further. */
static bool dialer_reply_begin(Dialer *d, int r)
{
	d->in_flight = false;
	if (r < 0 && r != -ETIMEDOUT) {
		dialer_port_gone(d, r);
		return false;
	}
	return d->state != DIALER_IDLE && d->state != DIALER_REPORTING;
}

static bool is_error_result(ChatResult r)
{
	return r == CHAT_ERROR || r == CHAT_CME_ERROR || r == CHAT_CMS_ERROR;
}

/* +CLCC: <id>,<dir>,<stat>,<mode>,<mpty>[,<number>,<type>[,...]]: our call's stat, or -1 if the
 * line is about another call (incoming, data, another index). */
static int dialer_clcc_stat(Dialer *d, const char *line)
{
	int id, dir, stat, mode;

	if (sscanf(line, "+CLCC: %d , %d , %d , %d", &id, &dir, &stat, &mode) != 4 &&
	    sscanf(line, "+CLCC:%d,%d,%d,%d", &id, &dir, &stat, &mode) != 4)
		return -1;
	if (dir != 0 || mode != 0) /* not mobile-originated, not voice */
		return -1;
	if (d->call_id < 0 && stat != 6)
		d->call_id = id;
	if (id != d->call_id)
		return -1;
	return stat;
}

static void dialer_answered(Dialer *d, const char *how)
{
	if (d->answered || d->state != DIALER_DIALING)
		return;
	d->answered = true;
	d->seen = true;
	d->answered_at = now_realtime_usec();
	d->answered_mono = now_monotonic_usec();
	dialer_decide(d, CALL_ANSWERED, NULL);
	dialer_log(d, LOG_DEBUG, "answered (%s); holding %llu ms", how,
	           (unsigned long long)(d->opt.hold_usec / 1000));
	d->state = DIALER_ANSWERED;
	timer_off(d->ring_timer);
	timer_off(d->gone_timer);
	if (timer_arm(d, &d->hold_timer, d->opt.hold_usec, dialer_on_hold_timer) < 0) {
		dialer_begin_hangup(d);
		return;
	}
	if (d->acked && d->opt.hangup_on_ack)
		dialer_begin_hangup(d);
}

static int dialer_on_gone_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	Dialer *d = userdata;

	if (d->state != DIALER_DIALING)
		return 0;
	if (d->alerting)
		dialer_decide(d, CALL_REJECTED, NULL);
	else
		dialer_decide(d, CALL_FAILED, "call ended before alerting");
	dialer_begin_hangup(d);
	return 0;
}

/* The modem no longer lists our call. */
static void dialer_call_gone(Dialer *d)
{
	if (d->state == DIALER_ANSWERED) {
		dialer_log(d, LOG_DEBUG, "the far end hung up");
		d->remote_ended = true;
		dialer_mark_ended(d);
		dialer_begin_hangup(d);
		return;
	}
	if (d->state != DIALER_DIALING || timer_armed(d->gone_timer))
		return;
	/* BUSY or NO CARRIER usually follows at once and says more than the disappearance. */
	if (timer_arm(d, &d->gone_timer, GONE_GRACE_USEC, dialer_on_gone_timer) < 0)
		dialer_on_gone_timer(NULL, 0, d);
}

static void dialer_clcc_line(Dialer *d, const char *line)
{
	int stat = dialer_clcc_stat(d, line);

	switch (stat) {
	case 0: /* active */
		dialer_answered(d, "+CLCC");
		break;
	case 2: /* dialing */
		d->seen = true;
		break;
	case 3: /* alerting */
		d->seen = true;
		d->alerting = true;
		break;
	case 6: /* SIMCom and others: disconnected */
		dialer_call_gone(d);
		break;
	case -1:
		break;
	default: /* held, incoming, waiting: ours is there */
		d->seen = true;
		break;
	}
}

/* BUSY, NO CARRIER, NO ANSWER, NO DIALTONE: the call ended (after ATD, or as ATD's result). */
static void dialer_call_result(Dialer *d, ChatResult result, const char *text)
{
	if (d->state == DIALER_ANSWERED) {
		dialer_log(d, LOG_DEBUG, "call ended by the far end or the network (%s)", text);
		d->remote_ended = true;
		dialer_mark_ended(d);
		dialer_begin_hangup(d);
		return;
	}
	if (d->state != DIALER_DIALING)
		return;
	switch (result) {
	case CHAT_BUSY:
		dialer_decide(d, CALL_BUSY, NULL);
		break;
	case CHAT_NO_ANSWER:
		dialer_decide(d, CALL_NO_ANSWER, NULL);
		break;
	case CHAT_NO_CARRIER:
		if (d->alerting)
			dialer_decide(d, CALL_REJECTED, NULL);
		else
			dialer_decide(d, CALL_FAILED, text);
		break;
	default:
		dialer_decide(d, CALL_FAILED, text);
		break;
	}
	dialer_begin_hangup(d);
}

static void dialer_dtmf(Dialer *d, const char *line)
{
	const char *p = strchr(line, ':');
	size_t n = strlen(d->dtmf);
	char digit = 0;

	for (p = p ? p + 1 : line; *p; p++)
		if (strchr("0123456789*#ABCD", *p)) {
			digit = *p;
			break;
		}
	if (!digit || (d->state != DIALER_DIALING && d->state != DIALER_ANSWERED))
		return;
	dialer_log(d, LOG_DEBUG, "DTMF '%c'", digit);
	if (n < DIALER_DTMF_MAX) {
		d->dtmf[n] = digit;
		d->dtmf[n + 1] = 0;
	}
	if (digit == d->opt.ack_digit)
		d->acked = true;
	/* A digit from the far end means someone is on the line, whatever +CLCC said so far. */
	if (d->state == DIALER_DIALING)
		dialer_answered(d, "DTMF");
	else if (d->acked && d->opt.hangup_on_ack)
		dialer_begin_hangup(d);
}

static void dialer_on_unsolicited(Chat *chat, const char *line, void *userdata)
{
	Dialer *d = userdata;
	int final;

	if (strncmp(line, "+CLCC:", 6) == 0) {
		dialer_clcc_line(d, line);
		return;
	}
	if (strncmp(line, "+DTMF:", 6) == 0 || strncmp(line, "+RXDTMF:", 8) == 0) {
		dialer_dtmf(d, line);
		return;
	}
	final = chat_line_final(line);
	if (d->dialed && (final == CHAT_BUSY || final == CHAT_NO_CARRIER ||
	                  final == CHAT_NO_ANSWER || final == CHAT_NO_DIALTONE)) {
		dialer_call_result(d, (ChatResult) final, line);
		return;
	}
	/* RING (an incoming call), registration and signal reports: not ours to act on. */
}

static void dialer_on_port_error(Chat *chat, int error, void *userdata)
{
	dialer_port_gone(userdata, error);
}

/* ---- restoring the settings we changed, then done ---- */

static void dialer_restore_next(Dialer *d);

static void dialer_on_restore(Chat *chat, int r, const ChatReply *reply, void *userdata)
{
	Dialer *d = userdata;

	if (!dialer_reply_begin(d, r))
		return;
	if (r == -ETIMEDOUT) {
		dialer_finish(d); /* a modem that stopped answering gets no more of our time */
		return;
	}
	d->step++;
	dialer_restore_next(d);
}

static void dialer_restore_next(Dialer *d)
{
	/* Reports on, for the next owner of the port, would only be noise: switch them off. */
	if (d->step == 0 && d->clcc_urc) {
		dialer_send(d, "AT+CLCC=0", 0, RESTORE_TIMEOUT_USEC, dialer_on_restore);
		return;
	}
	if (d->step <= 1 && d->ddet) {
		d->step = 1;
		dialer_send(d, "AT+DDET=0", 0, RESTORE_TIMEOUT_USEC, dialer_on_restore);
		return;
	}
	dialer_finish(d);
}

static void dialer_begin_restore(Dialer *d)
{
	d->state = DIALER_RESTORE;
	d->step = 0;
	dialer_restore_next(d);
}

/* ---- hanging up ---- */

static void dialer_hangup_give_up(Dialer *d, const char *why)
{
	d->hung_up = false;
	add_error(d, why);
	dialer_log(d, LOG_ERR, "call to %s: %s", d->number, why);
	dialer_finish(d);
}

static void dialer_on_hangup(Chat *chat, int r, const ChatReply *reply, void *userdata)
{
	Dialer *d = userdata;

	if (!dialer_reply_begin(d, r))
		return;
	if (d->state != DIALER_HANGUP) {
		dialer_next(d);
		return;
	}
	if (r == -ETIMEDOUT) {
		if (++d->hangup_tries < 2) {
			dialer_next(d); /* once more, the same command */
			return;
		}
		dialer_hangup_give_up(d, "hang-up not confirmed: the modem does not answer");
		return;
	}
	if (reply->result == CHAT_OK) {
		d->hangup_answered_ok = true;
		if (d->answered)
			dialer_mark_ended(d);
		d->hangup_step = HANGUP_VERIFY;
	} else if (d->hangup_step == HANGUP_ATH) {
		d->hangup_step = HANGUP_CHUP; /* some modems want AT+CHUP for voice */
	} else {
		d->hangup_step = HANGUP_VERIFY; /* AT+CHUP refused too: see whether a call is up */
	}
	dialer_next(d);
}

/* After a hang-up: no call of ours listed means done; else hang up again, a few times. */
static void dialer_hangup_checked(Dialer *d, bool still_up)
{
	if (!still_up) {
		d->hung_up = true;
		dialer_mark_ended(d);
		dialer_begin_restore(d);
		return;
	}
	if (++d->hangup_tries >= HANGUP_TRIES) {
		dialer_hangup_give_up(d, "the call is still up after hang-up");
		return;
	}
	dialer_log(d, LOG_WARNING, "call still up after hang-up, again");
	d->hangup_step = d->hangup_tries % 2 ? HANGUP_CHUP : HANGUP_ATH;
	dialer_next(d);
}

static void dialer_on_verify(Chat *chat, int r, const ChatReply *reply, void *userdata)
{
	Dialer *d = userdata;
	bool clcc;

	if (!dialer_reply_begin(d, r))
		return;
	if (d->state != DIALER_HANGUP) {
		dialer_next(d);
		return;
	}
	if (r == -ETIMEDOUT) {
		dialer_hangup_give_up(d, "hang-up not confirmed: the modem does not answer");
		return;
	}
	clcc = !d->clcc_unsupported;
	if (is_error_result(reply->result)) {
		if (clcc)
			d->clcc_unsupported = true;
		else
			d->cpas_unsupported = true;
		dialer_next(d); /* the other way to check, or none */
		return;
	}
	if (clcc) {
		bool up = false;

		d->clcc_works = true;
		for (size_t i = 0; i < reply->n_lines; i++) {
			int id, dir, stat;

			if (sscanf(reply->lines[i], "+CLCC: %d , %d , %d", &id, &dir, &stat) == 3 &&
			    dir == 0 && stat != 6)
				up = true;
		}
		dialer_hangup_checked(d, up);
	} else {
		int cpas = -1;

		for (size_t i = 0; i < reply->n_lines; i++)
			if (sscanf(reply->lines[i], "+CPAS: %d", &cpas) == 1)
				break;
		dialer_hangup_checked(d, cpas == 4);
	}
}

static void dialer_hangup_next(Dialer *d)
{
	uint64_t t = d->opt.command_timeout_usec;

	switch (d->hangup_step) {
	case HANGUP_ATH:
		dialer_send(d, "ATH", 0, t, dialer_on_hangup);
		break;
	case HANGUP_CHUP:
		dialer_send(d, "AT+CHUP", 0, t, dialer_on_hangup);
		break;
	case HANGUP_VERIFY:
		if (!d->clcc_unsupported)
			dialer_send(d, "AT+CLCC", 0, t, dialer_on_verify);
		else if (!d->cpas_unsupported)
			dialer_send(d, "AT+CPAS", 0, t, dialer_on_verify);
		else {
			/* Nothing can list calls: an OK to the hang-up is all we can have. */
			if (!d->hangup_answered_ok) {
				dialer_hangup_give_up(d, "hang-up refused by the modem");
				return;
			}
			dialer_hangup_checked(d, false);
		}
		break;
	}
}

static void dialer_begin_hangup(Dialer *d)
{
	if (d->state >= DIALER_HANGUP || d->state == DIALER_IDLE)
		return;
	d->state = DIALER_HANGUP;
	d->hangup_step = HANGUP_ATH;
	d->hangup_tries = 0;
	timers_off(d);
	if (d->answered && d->remote_ended)
		dialer_mark_ended(d);
	if (d->atd_in_flight) {
		/* A modem that holds ATD's result until the call connects takes any input as an
		 * abort, ATH included; its late result is a final ATH does not expect. */
		chat_cancel(d->chat);
		d->in_flight = d->atd_in_flight = false;
	}
	dialer_next(d);
}

/* ---- the call in progress ---- */

static int dialer_on_poll_timer(sd_event_source *s, uint64_t usec, void *userdata);

static void dialer_poll_later(Dialer *d, uint64_t usec)
{
	if (d->state != DIALER_DIALING && d->state != DIALER_ANSWERED)
		return;
	if (d->clcc_unsupported && d->cpas_unsupported)
		return; /* nothing to poll: the reports and the ring timeout will do */
	if (timer_arm(d, &d->poll_timer, usec, dialer_on_poll_timer) < 0)
		return;
}

static uint64_t dialer_poll_interval(Dialer *d)
{
	return d->clcc_urc && !d->clcc_unsupported ? DIALER_POLL_INTERVAL_URC_USEC
	                                           : DIALER_POLL_INTERVAL_USEC;
}

static void dialer_poll_failed(Dialer *d)
{
	if (++d->poll_failures >= POLL_FAILURES_MAX) {
		dialer_decide(d, CALL_FAILED, "the modem stopped answering");
		dialer_begin_hangup(d);
		return;
	}
	dialer_poll_later(d, DIALER_POLL_INTERVAL_USEC);
}

static void dialer_on_poll(Chat *chat, int r, const ChatReply *reply, void *userdata)
{
	Dialer *d = userdata;
	bool clcc = !d->clcc_unsupported;
	bool listed = false;

	if (!dialer_reply_begin(d, r))
		return;
	if (d->state != DIALER_DIALING && d->state != DIALER_ANSWERED) {
		dialer_next(d); /* a hang-up waited for this reply */
		return;
	}
	if (r == -ETIMEDOUT) {
		dialer_poll_failed(d);
		return;
	}
	if (is_error_result(reply->result)) {
		if (clcc && d->clcc_works) {
			dialer_poll_failed(d); /* it worked before: a hiccup */
			return;
		}
		if (clcc)
			d->clcc_unsupported = true;
		else
			d->cpas_unsupported = true;
		dialer_log(d, LOG_DEBUG, "%s refused, %s", clcc ? "AT+CLCC" : "AT+CPAS",
		           clcc ? "polling AT+CPAS" : "no call progress but reports");
		dialer_poll_later(d, 1000);
		return;
	}
	d->poll_failures = 0;
	if (clcc) {
		d->clcc_works = true;
		for (size_t i = 0; i < reply->n_lines && d->state <= DIALER_ANSWERED; i++) {
			int stat = dialer_clcc_stat(d, reply->lines[i]);

			if (stat >= 0 && stat != 6)
				listed = true;
			if (stat >= 0)
				dialer_clcc_line(d, reply->lines[i]);
		}
	} else {
		int cpas = -1;

		for (size_t i = 0; i < reply->n_lines; i++)
			if (sscanf(reply->lines[i], "+CPAS: %d", &cpas) == 1)
				break;
		/* 4: call in progress (27.007); it cannot tell alerting from active */
		listed = cpas == 4;
		if (listed)
			d->seen = true;
	}
	if (d->state != DIALER_DIALING && d->state != DIALER_ANSWERED)
		return;
	if (!listed && (d->seen || now_monotonic_usec() - d->atd_ok_mono >= NOT_LISTED_GRACE_USEC))
		dialer_call_gone(d);
	dialer_poll_later(d, dialer_poll_interval(d));
}

static int dialer_on_poll_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	Dialer *d = userdata;

	if (d->state != DIALER_DIALING && d->state != DIALER_ANSWERED)
		return 0;
	if (d->in_flight) {
		dialer_poll_later(d, DIALER_POLL_INTERVAL_USEC);
		return 0;
	}
	if (!d->clcc_unsupported)
		dialer_send(d, "AT+CLCC", 0, d->opt.command_timeout_usec, dialer_on_poll);
	else if (!d->cpas_unsupported)
		dialer_send(d, "AT+CPAS", 0, d->opt.command_timeout_usec, dialer_on_poll);
	return 0;
}

static int dialer_on_ring_timeout(sd_event_source *s, uint64_t usec, void *userdata)
{
	Dialer *d = userdata;
	bool progress_known = d->clcc_urc || d->clcc_works;

	if (d->state != DIALER_DIALING)
		return 0;
	if (progress_known && d->seen && !d->alerting)
		dialer_decide(d, CALL_FAILED, "the call never rang within the ring timeout");
	else
		dialer_decide(d, CALL_NO_ANSWER, NULL);
	dialer_begin_hangup(d);
	return 0;
}

static int dialer_on_hold_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	Dialer *d = userdata;

	if (d->state == DIALER_ANSWERED)
		dialer_begin_hangup(d);
	return 0;
}

static void dialer_on_atd(Chat *chat, int r, const ChatReply *reply, void *userdata)
{
	Dialer *d = userdata;

	d->atd_in_flight = false;
	if (!dialer_reply_begin(d, r))
		return;
	if (d->state != DIALER_DIALING && d->state != DIALER_ANSWERED) {
		dialer_next(d);
		return;
	}
	if (r == -ETIMEDOUT) {
		dialer_decide(d, CALL_FAILED, "no result to ATD");
		dialer_begin_hangup(d);
		return;
	}
	switch (reply->result) {
	case CHAT_OK:
		d->atd_ok = true;
		d->atd_ok_mono = now_monotonic_usec();
		/* First look soon: the reports may be off, or lost. */
		dialer_poll_later(d, DIALER_POLL_INTERVAL_USEC);
		break;
	case CHAT_CONNECT:
		dialer_decide(d, CALL_FAILED, "CONNECT: a data call, not a voice call");
		dialer_begin_hangup(d);
		break;
	case CHAT_ERROR:
	case CHAT_CME_ERROR:
	case CHAT_CMS_ERROR:
		dialer_decide(d, CALL_FAILED, reply->final);
		dialer_begin_hangup(d);
		break;
	default:
		dialer_call_result(d, reply->result, reply->final);
		break;
	}
}

static void dialer_dial(Dialer *d)
{
	char command[DIALER_NUMBER_MAX + 8];
	uint64_t timeout = d->opt.ring_timeout_usec + d->opt.command_timeout_usec;

	d->state = DIALER_DIALING;
	d->dialed = true;
	d->dialed_at = now_realtime_usec();
	snprintf(command, sizeof(command), "ATD%s;", d->number);
	if (timer_arm(d, &d->ring_timer, d->opt.ring_timeout_usec, dialer_on_ring_timeout) < 0) {
		dialer_decide(d, CALL_FAILED, "cannot arm the ring timeout");
		dialer_begin_hangup(d);
		return;
	}
	dialer_log(d, LOG_INFO, "dialling %s", d->number);
	if (dialer_send(d, command, CHAT_FINALS_DIAL, timeout, dialer_on_atd) >= 0)
		d->atd_in_flight = true;
}

/* ---- getting the modem ready ---- */

static const char *const setup_steps[] = {
        "ATE0",      /* no echo: less to read; the echo is dropped anyway */
        "AT+CMEE=1", /* numeric +CME ERROR instead of a bare ERROR */
        "ATH",       /* a call left up by a gateway that died mid-call would refuse ATD; */
        "AT+CHUP",   /* some modems end a voice call only with this */
        "AT+CLCC=1", /* call state reports */
        "AT+DDET=1", /* DTMF detection (SIMCom) */
};

static void dialer_on_setup(Chat *chat, int r, const ChatReply *reply, void *userdata)
{
	Dialer *d = userdata;
	const char *command = setup_steps[d->step];

	if (!dialer_reply_begin(d, r))
		return;
	if (d->state != DIALER_SETUP) {
		dialer_next(d);
		return;
	}
	if (r == -ETIMEDOUT) {
		char why[DIALER_ERROR_MAX];

		snprintf(why, sizeof(why), "no reply to %s", command);
		dialer_decide(d, CALL_FAILED, why);
		dialer_finish(d); /* nothing dialled: nothing to hang up */
		return;
	}
	/* Refusals are fine: each of these only makes the call easier to follow. */
	if (reply->result == CHAT_OK) {
		if (streq(command, "AT+CLCC=1"))
			d->clcc_urc = true;
		else if (streq(command, "AT+DDET=1"))
			d->ddet = true;
	} else
		dialer_log(d, LOG_DEBUG, "%s: %s, going on", command, reply->final);
	d->step++;
	dialer_next(d);
}

static void dialer_on_sync(Chat *chat, int r, const ChatReply *reply, void *userdata)
{
	Dialer *d = userdata;

	if (!dialer_reply_begin(d, r))
		return;
	if (d->state != DIALER_SYNC) {
		dialer_next(d);
		return;
	}
	if (r == -ETIMEDOUT) {
		if (++d->sync_tries < SYNC_TRIES) {
			dialer_next(d);
			return;
		}
		dialer_decide(d, CALL_FAILED, "the modem does not answer AT");
		dialer_finish(d);
		return;
	}
	/* Any final result, even ERROR, means the modem listens. */
	d->state = DIALER_SETUP;
	d->step = 0;
	dialer_next(d);
}

/* Sends what the state needs next, when nothing is on the wire. */
static void dialer_next(Dialer *d)
{
	if (d->in_flight || !d->chat)
		return;
	switch (d->state) {
	case DIALER_SYNC:
		dialer_send(d, "AT", 0, SYNC_TIMEOUT_USEC, dialer_on_sync);
		break;
	case DIALER_SETUP:
		if (d->step < ELEMENTSOF(setup_steps))
			dialer_send(d, setup_steps[d->step], 0, d->opt.command_timeout_usec,
			            dialer_on_setup);
		else
			dialer_dial(d);
		break;
	case DIALER_HANGUP:
		dialer_hangup_next(d);
		break;
	case DIALER_RESTORE:
		dialer_restore_next(d);
		break;
	default:
		break; /* dialing, answered: driven by reports and the poll timer */
	}
}

static int dialer_on_deadline(sd_event_source *s, uint64_t usec, void *userdata)
{
	Dialer *d = userdata;

	if (d->state >= DIALER_HANGUP || d->deadline_passed) {
		/* Even the hang-up has run out of time: give the port back. */
		dialer_hangup_give_up(d, "deadline passed while hanging up");
		return 0;
	}
	d->deadline_passed = true;
	dialer_decide(d, CALL_FAILED, "deadline");
	if (!d->dialed) {
		dialer_finish(d);
		return 0;
	}
	/* Time for the hang-up itself. */
	timer_arm(d, &d->deadline_timer, 4 * d->opt.command_timeout_usec + 2 * USEC_PER_SEC,
	          dialer_on_deadline);
	if (d->in_flight && !d->atd_in_flight) {
		/* A command that will not answer: drop it, the modem is probably gone. */
		chat_cancel(d->chat);
		d->in_flight = false;
	}
	dialer_begin_hangup(d);
	return 0;
}

static int dialer_on_start(sd_event_source *s, void *userdata)
{
	Dialer *d = userdata;
	static const ChatHandlers handlers = {
	        .unsolicited = dialer_on_unsolicited,
	        .port_error = dialer_on_port_error,
	};
	uint64_t budget;
	int fd = -1, r;

	d->start_source = sd_event_source_disable_unref(d->start_source);
	r = chat_open_port(d->device, &fd);
	if (r < 0) {
		set_error(d, "cannot open %s: %s%s", d->device, errno_fd_prefix(r), strerror(-r));
		d->port_gone = true;
		dialer_decide(d, CALL_FAILED, d->error);
		dialer_finish(d);
		return 0;
	}
	r = chat_new(d->event, fd, d->name, &handlers, d, &d->chat);
	if (r < 0) {
		close(fd);
		set_error(d, "cannot watch %s: %s", d->device, strerror(-r));
		dialer_decide(d, CALL_FAILED, d->error);
		dialer_finish(d);
		return 0;
	}
	/* Everything the call may take when each step uses its full time, and a margin. */
	budget = SYNC_TRIES * SYNC_TIMEOUT_USEC +
	         (ELEMENTSOF(setup_steps) + 1) * d->opt.command_timeout_usec +
	         d->opt.ring_timeout_usec + d->opt.hold_usec + 10 * USEC_PER_SEC;
	if (timer_arm(d, &d->deadline_timer, budget, dialer_on_deadline) < 0) {
		dialer_decide(d, CALL_FAILED, "cannot arm the call deadline");
		dialer_finish(d);
		return 0;
	}
	d->state = DIALER_SYNC;
	dialer_next(d);
	return 0;
}

int dialer_new(sd_event *event, const char *device_path, const char *name, Dialer **ret)
{
	Dialer *d;

	if (!event || !device_path || !*device_path || !ret)
		return -EINVAL;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->event = sd_event_ref(event);
	d->device = strdup(device_path);
	d->name = strdup(name ? name : "voice");
	if (!d->device || !d->name) {
		dialer_free(d);
		return -ENOMEM;
	}
	*ret = d;
	return 0;
}

Dialer *dialer_free(Dialer *d)
{
	if (!d)
		return NULL;
	if (d->chat && d->dialed && d->state < DIALER_REPORTING) {
		int r = chat_write_now(d->chat, "ATH");

		dialer_log(d, r < 0 ? LOG_WARNING : LOG_NOTICE,
		           "%s: freed during a call to %s: last ATH %s", d->name, d->number,
		           r < 0 ? "not written" : "written");
	}
	d->chat = chat_free(d->chat);
	sd_event_source_disable_unref(d->start_source);
	sd_event_source_disable_unref(d->report_source);
	sd_event_source_disable_unref(d->ring_timer);
	sd_event_source_disable_unref(d->hold_timer);
	sd_event_source_disable_unref(d->poll_timer);
	sd_event_source_disable_unref(d->gone_timer);
	sd_event_source_disable_unref(d->deadline_timer);
	sd_event_unref(d->event);
	free(d->alert_id);
	free(d->device);
	free(d->name);
	free(d);
	return NULL;
}

int dialer_set_device(Dialer *d, const char *device_path)
{
	char *copy;

	if (!d || !device_path || !*device_path)
		return -EINVAL;
	if (d->state != DIALER_IDLE)
		return -EBUSY;
	copy = strdup(device_path);
	if (!copy)
		return -ENOMEM;
	free(d->device);
	d->device = copy;
	return 0;
}

int dialer_call(Dialer *d, const char *number, const DialerOptions *opt, DialerDoneHandler done,
                void *userdata)
{
	DialerOptions o = opt ? *opt : (DialerOptions){0};
	char *alert_id = NULL;
	int r;

	if (!d || !dialer_number_is_valid(number))
		return -EINVAL;
	if (d->state != DIALER_IDLE)
		return -EBUSY;
	if (o.ack_digit && !strchr("0123456789*#ABCD", o.ack_digit))
		return -EINVAL;
	if (o.alert_id) {
		alert_id = strdup(o.alert_id);
		if (!alert_id)
			return -ENOMEM;
	}
	o.alert_id = NULL;
	if (!o.ring_timeout_usec)
		o.ring_timeout_usec = DIALER_RING_TIMEOUT_DEFAULT_USEC;
	if (!o.hold_usec)
		o.hold_usec = DIALER_HOLD_DEFAULT_USEC;
	if (!o.command_timeout_usec)
		o.command_timeout_usec = DIALER_COMMAND_TIMEOUT_DEFAULT_USEC;
	if (!o.ack_digit)
		o.ack_digit = '1';

	r = sd_event_add_defer(d->event, &d->start_source, dialer_on_start, d);
	if (r < 0) {
		free(alert_id);
		return r;
	}
	free(d->alert_id);
	d->alert_id = alert_id;
	/* Reset the call's part of the struct: from number to the end. */
	memset((char *)d + offsetof(Dialer, number), 0, sizeof(*d) - offsetof(Dialer, number));
	d->alert_id = alert_id;
	snprintf(d->number, sizeof(d->number), "%s", number);
	d->opt = o;
	d->done = done;
	d->userdata = userdata;
	d->call_id = -1;
	d->outcome = CALL_FAILED;
	d->started_at = now_realtime_usec();
	d->state = DIALER_STARTING;
	return 0;
}

int dialer_cancel(Dialer *d)
{
	if (!d || d->state == DIALER_IDLE || d->state == DIALER_REPORTING)
		return -ESRCH;
	dialer_decide(d, CALL_FAILED, "cancelled");
	if (d->state == DIALER_STARTING || !d->chat) {
		dialer_finish(d);
		return 0;
	}
	/* Also before ATD: an ATH costs nothing, and the settings we changed are restored. */
	dialer_begin_hangup(d);
	return 0;
}

bool dialer_is_busy(const Dialer *d)
{
	return d && d->state != DIALER_IDLE;
}
