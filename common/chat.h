/* chat: a non-blocking AT command chat on one serial port, in the caller's sd-event loop; the
 * voice dial-out and the SMS send path of modem/ share it.
 *
 * The shape of smstools3's put_command (a command, the final results that end it, a deadline)
 * without its sleeps and polling reads: chat_send() queues a command; the engine writes it when
 * the port is writable, collects the information lines of the reply as bytes arrive, and calls
 * the command's handler once with the final result, or with an error at the deadline. One
 * command is on the wire at a time; the rest wait in a bounded queue, in order.
 *
 * Unsolicited lines (RING, +CLCC:, +DTMF:, +CREG:, ^RSSI:, a BUSY or NO CARRIER that ends a call
 * after its ATD was answered OK, ...) may come at any moment, also in the middle of a reply; they
 * go to ChatHandlers.unsolicited. While a command is on the wire a line belongs to its reply
 * unless it is a final result the command does not expect, or it starts with a known
 * unsolicited prefix other than the command's own (AT+CLCC's reply lines start with "+CLCC:",
 * which is also the prefix of the unsolicited call reports: during AT+CLCC they are reply
 * lines). The echo of the command (ATE1) is dropped.
 *
 * Threads: only the thread that runs the sd_event given to chat_new() may call these.
 *
 * Ownership: chat_new() takes the port's fd (chat_free() closes it). Command text is copied.
 * A ChatReply and the line given to a handler belong to the chat and live only during the call.
 * Handlers may call chat_send(), chat_cancel() and chat_free() on their own chat.
 *
 * Returns: ≥0 on success, -errno on failure. Reply handlers receive r = 0 with a ChatReply when
 * a final result line arrived (whatever it says: OK or ERROR alike), or r < 0 and no reply:
 * -ETIMEDOUT (deadline), or the port's error (-EIO when it hung up or was unplugged). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#define CHAT_COMMAND_MAX          256               /* bytes of a command, without the CR */
#define CHAT_LINE_MAX             512               /* longer received lines are truncated */
#define CHAT_REPLY_LINES_MAX      64                /* information lines kept per reply */
#define CHAT_PAYLOAD_MAX          512               /* bytes of a text after a prompt */
#define CHAT_QUEUE_MAX            16                /* commands queued or on the wire */
#define CHAT_TIMEOUT_DEFAULT_USEC (5 * 1000 * 1000) /* a command's deadline when given 0 */

typedef struct Chat Chat;

/* Final result codes (V.250 / 27.007). */
typedef enum ChatResult {
	CHAT_OK,
	CHAT_CONNECT,
	CHAT_ERROR,     /* plain ERROR */
	CHAT_CME_ERROR, /* +CME ERROR: <n or text> */
	CHAT_CMS_ERROR, /* +CMS ERROR: <n or text> */
	CHAT_NO_CARRIER,
	CHAT_BUSY,
	CHAT_NO_ANSWER,
	CHAT_NO_DIALTONE, /* also "NO DIAL TONE" */
	_CHAT_RESULT_MAX,
} ChatResult;

/* Which final results end a command: a set of 1 << ChatResult. OK and the errors always do. */
#define CHAT_FINAL(r) (1u << (r))
#define CHAT_FINALS_BASIC                                                                          \
	(CHAT_FINAL(CHAT_OK) | CHAT_FINAL(CHAT_ERROR) | CHAT_FINAL(CHAT_CME_ERROR) |               \
	 CHAT_FINAL(CHAT_CMS_ERROR))
/* For ATD: the call results end it too (a modem may answer ATD with BUSY, or hold its OK). */
#define CHAT_FINALS_DIAL                                                                           \
	(CHAT_FINALS_BASIC | CHAT_FINAL(CHAT_CONNECT) | CHAT_FINAL(CHAT_NO_CARRIER) |              \
	 CHAT_FINAL(CHAT_BUSY) | CHAT_FINAL(CHAT_NO_ANSWER) | CHAT_FINAL(CHAT_NO_DIALTONE))

const char *chat_result_to_string(ChatResult r);

/* Classifies a received line: the ChatResult it is as a final result, or -1. */
int chat_line_final(const char *line);
/* Whether a line starts with a prefix that modems use for unsolicited reports. */
bool chat_line_is_unsolicited(const char *line);

typedef struct ChatReply {
	ChatResult result;
	const char *final;        /* the final line as received, e.g. "+CME ERROR: 11" */
	int error_code;           /* <n> of "+CME ERROR: <n>" / "+CMS ERROR: <n>", else -1 */
	const char *const *lines; /* information lines, in order; no echo, no unsolicited lines */
	size_t n_lines;
	bool prompted; /* chat_send_text(): the prompt came and the text went out */
} ChatReply;

typedef void (*ChatReplyHandler)(Chat *chat, int r, const ChatReply *reply, void *userdata);

typedef struct ChatHandlers {
	/* A line that is not part of any reply. May be NULL. */
	void (*unsolicited)(Chat *chat, const char *line, void *userdata);
	/* The port failed for good (hung up, unplugged, read/write error): called once, after every
	 * pending command's handler got the error. The chat stays allocated, its fd unwatched;
	 * chat_send() fails from now on. May be NULL. */
	void (*port_error)(Chat *chat, int error, void *userdata);
} ChatHandlers;

/* Opens a serial port for a chat: O_RDWR|O_NOCTTY|O_NONBLOCK|O_CLOEXEC, raw 8N1 115200 without
 * flow control, input left over from the previous owner flushed, DTR and RTS raised (their
 * failure, ENOTTY on a pseudo-terminal, is ignored, as libgammu does). */
int chat_open_port(const char *path, int *ret_fd);

/* Takes fd (non-blocking; any stream: a tty, a pty, a socket) on success; on failure the caller
 * keeps it. name is for log lines (copied; NULL: "chat"). handlers may be NULL. */
int chat_new(sd_event *event, int fd, const char *name, const ChatHandlers *handlers,
             void *userdata, Chat **ret);
/* Closes the port. Pending commands are dropped without their handlers being called. Accepts
 * NULL; returns NULL. Safe inside a handler of this chat. */
Chat *chat_free(Chat *chat);

/* Queues command (e.g. "AT+CLCC"; the CR is added; no CR, LF or NUL inside). finals: the
 * results that end it besides OK and errors (CHAT_FINALS_BASIC, CHAT_FINALS_DIAL). timeout_usec:
 * the deadline from when it is written, 0 for CHAT_TIMEOUT_DEFAULT_USEC. handler may be NULL.
 * -EINVAL bad command, -ENOBUFS queue full, the port's error once it failed. The handler is never
 * called from inside chat_send(). */
int chat_send(Chat *chat, const char *command, unsigned finals, uint64_t timeout_usec,
              ChatReplyHandler handler, void *userdata);

/* Queues a command that asks for a text after a "> " prompt (AT+CMGS=<n> in PDU mode): text
 * (1..CHAT_PAYLOAD_MAX bytes, no control byte) is written as soon as the prompt comes, followed
 * by Ctrl-Z, without a pause. timeout_usec bounds the wait for the prompt from when the command
 * is written, text_timeout_usec the wait for the final result from when the text is written (0:
 * CHAT_TIMEOUT_DEFAULT_USEC). A final result before the prompt ends the command too
 * (ChatReply.prompted false: nothing was sent). At a deadline ESC is written, which ends text
 * entry without sending. Errors as chat_send(). */
int chat_send_text(Chat *chat, const char *command, const char *text, uint64_t timeout_usec,
                   uint64_t text_timeout_usec, ChatReplyHandler handler, void *userdata);

/* Drops every queued command and the one on the wire, without calling their handlers. A reply
 * still coming for the dropped command arrives as unsolicited lines, or, if another command is
 * sent first, may be taken for that one's: wait for the reply rather than cancel when you can. */
void chat_cancel(Chat *chat); /* a command waiting for its prompt or in its text gets ESC */

/* Writes command and a CR at once, expecting no reply: a last-gasp ATH from a destructor. The
 * queue is dropped first, as by chat_cancel(). Best effort: what the port does not take at once
 * goes out from the loop while the chat lives. */
int chat_write_now(Chat *chat, const char *command);

/* Commands queued or on the wire. */
size_t chat_pending(const Chat *chat);
/* 0 while the port works, else its error. */
int chat_port_error(const Chat *chat);
