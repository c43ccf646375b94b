/* chat: the AT chat engine that the voice dial-out and the SMS send path share.
 *
 * Why it is built this way: the dial-out runs in the daemon's main loop (DESIGN: Voice
 * hand-over), where nothing may block, and it must watch a modem that may answer garbage, flood
 * unsolicited reports, hang or vanish in the middle of a call. So the engine is a small state
 * machine fed by the loop: bytes are read as they come and cut into lines at CR or LF (a line
 * may arrive a byte at a time, or a dozen lines in one read), each line is classified on its own,
 * and every command carries its own deadline on an sd-event timer. There is no sleep and no
 * blocking read anywhere, and a modem that stops answering costs one deadline, not a stall.
 *
 * Only one command is on the wire at a time: a modem answers commands in order and its replies
 * carry no tag, so pipelining would make a late reply impossible to attribute. The next command
 * is written from the loop (never from inside chat_send()), so that handlers are never called
 * re-entrantly from the caller's own call.
 *
 * A command that asks for a text (AT+CMGS=<n> in PDU mode) has two steps with a deadline each:
 * the command up to the "> " prompt, then the text and Ctrl-Z up to the final result. The prompt
 * carries no line end, so it is recognised as a '>' that starts a line while such a command
 * waits for it. The text goes out as soon as the prompt is read: libgammu sleeps 0.6 s there
 * (100 ms before the PDU, 500 ms before Ctrl-Z) for modems that were slow to take input in
 * 2003; a modem reads its port as a byte stream, and smstools3 writes PDU and Ctrl-Z at once
 * too. A deadline in either step writes ESC, which ends text entry without sending, so that a
 * late prompt does not swallow the next command as message text.
 *
 * Handlers may free the chat. Dispatch holds a reference, and chat_free() inside a handler only
 * closes the port and marks the chat dead; the memory goes when the dispatch unwinds. */
#include "chat.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "util.h"

typedef struct ChatCommand {
	char *text;
	char *payload;   /* written after the "> " prompt, then Ctrl-Z; NULL: no prompt */
	char prefix[32]; /* "+CLCC:" for "AT+CLCC...": lines of its own reply, not unsolicited */
	unsigned finals;
	uint64_t timeout_usec;
	uint64_t payload_timeout_usec;
	ChatReplyHandler handler;
	void *userdata;
} ChatCommand;

struct Chat {
	sd_event *event;
	sd_event_source *io;
	sd_event_source *timer;
	int fd;
	char *name;
	ChatHandlers handlers;
	void *userdata;

	/* the line being received */
	char line[CHAT_LINE_MAX + 1];
	size_t line_len;
	bool line_truncated;

	/* what is being written: a command and CR, or a text and Ctrl-Z; out_done bytes are out */
	char out[MAX(CHAT_COMMAND_MAX, CHAT_PAYLOAD_MAX) + 3];
	size_t out_len, out_done;

	ChatCommand queue[CHAT_QUEUE_MAX]; /* queue[0] is on the wire when busy */
	size_t n_queue;
	bool busy;
	bool echo_seen;
	bool prompted; /* the command on the wire got its prompt; its payload is going out */
	char *reply_lines[CHAT_REPLY_LINES_MAX];
	size_t n_reply_lines;

	int error; /* sticky port error */
	unsigned n_ref;
	bool dead;
};

static const char *const result_table[_CHAT_RESULT_MAX] = {
        [CHAT_OK] = "OK",
        [CHAT_CONNECT] = "CONNECT",
        [CHAT_ERROR] = "ERROR",
        [CHAT_CME_ERROR] = "+CME ERROR",
        [CHAT_CMS_ERROR] = "+CMS ERROR",
        [CHAT_NO_CARRIER] = "NO CARRIER",
        [CHAT_BUSY] = "BUSY",
        [CHAT_NO_ANSWER] = "NO ANSWER",
        [CHAT_NO_DIALTONE] = "NO DIALTONE",
};

const char *chat_result_to_string(ChatResult r)
{
	return r >= 0 && r < _CHAT_RESULT_MAX ? result_table[r] : "unknown";
}

static bool has_prefix(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

int chat_line_final(const char *line)
{
	static const struct {
		const char *text;
		ChatResult result;
	} exact[] = {
	        {"OK", CHAT_OK},
	        {"ERROR", CHAT_ERROR},
	        {"NO CARRIER", CHAT_NO_CARRIER},
	        {"BUSY", CHAT_BUSY},
	        {"NO ANSWER", CHAT_NO_ANSWER},
	        {"NO DIALTONE", CHAT_NO_DIALTONE},
	        {"NO DIAL TONE", CHAT_NO_DIALTONE},
	        {"CONNECT", CHAT_CONNECT},
	};

	for (size_t i = 0; i < ELEMENTSOF(exact); i++)
		if (streq(line, exact[i].text))
			return exact[i].result;
	if (has_prefix(line, "+CME ERROR:"))
		return CHAT_CME_ERROR;
	if (has_prefix(line, "+CMS ERROR:"))
		return CHAT_CMS_ERROR;
	if (has_prefix(line, "CONNECT "))
		return CHAT_CONNECT;
	return -1;
}

bool chat_line_is_unsolicited(const char *line)
{
	/* 27.007/27.005 reports and the common vendor ones (SIMCom, Huawei, Quectel). */
	static const char *const prefixes[] = {
	        "RING",
	        "+CRING:",
	        "+CLIP:",
	        "+CLCC:",
	        "+CCWA:",
	        "+CSSI:",
	        "+CSSU:",
	        "+COLP:",
	        "+DTMF:",
	        "+RXDTMF:",
	        "+QTONEDET:",
	        "+CREG:",
	        "+CGREG:",
	        "+CEREG:",
	        "+CMTI:",
	        "+CMT:",
	        "+CDS:",
	        "+CDSI:",
	        "+CBM:",
	        "+CUSD:",
	        "+CIEV:",
	        "+CPIN:",
	        "+CFUN:",
	        "+CSQN:",
	        "+CTZV:",
	        "+CTZE:",
	        "*PSUTTZ:",
	        "DST:",
	        "+PACSP",
	        "^RSSI:",
	        "^MODE:",
	        "^BOOT:",
	        "^SRVST:",
	        "^SIMST:",
	        "^CEND:",
	        "^ORIG:",
	        "^CONF:",
	        "^CONN:",
	        "^HCSQ:",
	        "^DSFLOWRPT:",
	        "^STIN:",
	        "Call Ready",
	        "SMS Ready",
	        "RDY",
	        "MO RING",
	        "MO CONNECTED",
	        "NORMAL POWER DOWN",
	        "UNDER-VOLTAGE",
	        "OVER-VOLTAGE",
	};

	for (size_t i = 0; i < ELEMENTSOF(prefixes); i++)
		if (has_prefix(line, prefixes[i]))
			return true;
	return false;
}

/* "AT+CLCC=1" -> "+CLCC:"; "ATD..." -> "" (basic commands have no reply prefix). */
static void command_prefix(const char *text, char prefix[static 32])
{
	size_t n = 0;

	prefix[0] = 0;
	while (*text && (unsigned char)*text < 0x20)
		text++;
	if (strncasecmp(text, "AT", 2) != 0)
		return;
	text += 2;
	if (*text != '+' && *text != '^' && *text != '$' && *text != '*')
		return;
	while (text[n] && !strchr("=?;", text[n]) && n < 29)
		n++;
	for (size_t i = 0; i < n; i++)
		prefix[i] = (char)toupper((unsigned char)text[i]);
	prefix[n] = ':';
	prefix[n + 1] = 0;
}

static ChatCommand *chat_head(Chat *chat)
{
	return chat->n_queue > 0 ? &chat->queue[0] : NULL;
}

static void chat_reply_clear(Chat *chat)
{
	for (size_t i = 0; i < chat->n_reply_lines; i++)
		free(chat->reply_lines[i]);
	chat->n_reply_lines = 0;
}

static void command_clear(ChatCommand *c)
{
	free(c->text);
	free(c->payload);
	c->text = c->payload = NULL;
}

static void chat_queue_pop(Chat *chat, ChatCommand *ret)
{
	*ret = chat->queue[0];
	memmove(&chat->queue[0], &chat->queue[1], (chat->n_queue - 1) * sizeof(ChatCommand));
	chat->n_queue--;
}

static void chat_destroy(Chat *chat)
{
	for (size_t i = 0; i < chat->n_queue; i++)
		command_clear(&chat->queue[i]);
	chat_reply_clear(chat);
	sd_event_source_disable_unref(chat->io);
	sd_event_source_disable_unref(chat->timer);
	if (chat->fd >= 0)
		close(chat->fd);
	sd_event_unref(chat->event);
	free(chat->name);
	free(chat);
}

static void chat_ref(Chat *chat)
{
	chat->n_ref++;
}

/* Returns whether the chat is still alive. */
static bool chat_unref(Chat *chat)
{
	if (--chat->n_ref == 0 && chat->dead) {
		chat_destroy(chat);
		return false;
	}
	return !chat->dead;
}

static void chat_update_io(Chat *chat)
{
	if (chat->io && !chat->dead && chat->error == 0)
		(void)sd_event_source_set_io_events(
		        chat->io, chat->out_done < chat->out_len ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

/* Sets the deadline timeout_usec from now. Not sd_event_source_set_time_relative(): that counts
 * from the loop's cached time of its last wake-up, which is long past in a loop that runs only
 * while a command is on the wire (modem/'s send path). */
static int chat_arm(Chat *chat, uint64_t timeout_usec)
{
	int r = sd_event_source_set_time(chat->timer, now_monotonic_usec() + timeout_usec);

	return r < 0 ? r : sd_event_source_set_enabled(chat->timer, SD_EVENT_ONESHOT);
}

/* Puts the next queued command on the wire: written from the loop when the port is writable. */
static void chat_start_next(Chat *chat)
{
	ChatCommand *c = chat_head(chat);
	int r;

	if (chat->busy || !c || chat->dead || chat->error)
		return;
	/* A last-gasp chat_write_now() may still be going out; it goes first. */
	if (chat->out_done < chat->out_len) {
		chat_update_io(chat);
		return;
	}
	chat->busy = true;
	chat->echo_seen = false;
	chat->prompted = false;
	chat_reply_clear(chat);
	chat->out_len = (size_t)snprintf(chat->out, sizeof(chat->out), "%s\r", c->text);
	chat->out_done = 0;
	r = chat_arm(chat, c->timeout_usec);
	if (r < 0)
		log_warning_errno(r, "%s: cannot arm the deadline of '%s': %m", chat->name,
		                  c->text);
	log_debug("%s: > %s", chat->name, c->text);
	chat_update_io(chat);
}

/* Ends the command on the wire: calls its handler with r (and the reply if r == 0). Returns
 * whether the chat is still alive. */
static bool chat_complete(Chat *chat, int r, ChatResult result, const char *final)
{
	ChatCommand c;
	ChatReply reply = {0};
	bool alive;

	if (!chat->busy)
		return true;
	chat_queue_pop(chat, &c);
	chat->busy = false;
	(void)sd_event_source_set_enabled(chat->timer, SD_EVENT_OFF);
	if (r == 0) {
		const char *colon = final ? strchr(final, ':') : NULL;
		char *end = NULL;
		long code = -1;

		if (colon && (result == CHAT_CME_ERROR || result == CHAT_CMS_ERROR)) {
			code = strtol(colon + 1, &end, 10);
			if (end == colon + 1 || code < 0 || code > 65535)
				code = -1;
		}
		reply = (ChatReply){
		        .result = result,
		        .final = final,
		        .error_code = (int)code,
		        .lines = (const char *const *)chat->reply_lines,
		        .n_lines = chat->n_reply_lines,
		        .prompted = chat->prompted,
		};
	}
	chat->prompted = false;
	chat_ref(chat);
	if (c.handler)
		c.handler(chat, r, r == 0 ? &reply : NULL, c.userdata);
	command_clear(&c);
	alive = chat_unref(chat);
	if (alive) {
		chat_reply_clear(chat);
		chat_start_next(chat);
	}
	return alive;
}

/* The port is gone: every pending command gets the error, then the port_error handler. */
static void chat_fail(Chat *chat, int error)
{
	if (chat->error || chat->dead)
		return;
	chat->error = error;
	log_debug_errno(error, "%s: port failed: %m", chat->name);
	(void)sd_event_source_set_enabled(chat->io, SD_EVENT_OFF);
	(void)sd_event_source_set_enabled(chat->timer, SD_EVENT_OFF);
	chat_ref(chat);
	/* The command on the wire first, then the queued ones, in order. */
	chat->busy = chat->n_queue > 0;
	while (chat->n_queue > 0 && !chat->dead) {
		chat->busy = true;
		if (!chat_complete(chat, error, 0, NULL))
			break;
	}
	if (!chat->dead && chat->handlers.port_error)
		chat->handlers.port_error(chat, error, chat->userdata);
	chat_unref(chat);
}

static void chat_unsolicited(Chat *chat, const char *line)
{
	log_debug("%s: < %s (unsolicited)", chat->name, line);
	if (chat->handlers.unsolicited)
		chat->handlers.unsolicited(chat, line, chat->userdata);
}

static bool is_echo(const ChatCommand *c, const char *line)
{
	const char *t = c->text;

	while (*t && (unsigned char)*t < 0x20)
		t++;
	return strcasecmp(t, line) == 0;
}

/* The modem echoes the payload it takes after the prompt (ATE1), maybe cut by the line limit. */
static bool is_payload_echo(const ChatCommand *c, const char *line)
{
	return c->payload && strncasecmp(c->payload, line, strlen(line)) == 0;
}

/* A '>' at the start of a line while the command on the wire, written whole, waits for it. */
static bool chat_awaits_prompt(const Chat *chat)
{
	const ChatCommand *c = chat->busy && chat->n_queue > 0 ? &chat->queue[0] : NULL;

	return c && c->payload && !chat->prompted && chat->out_done == chat->out_len &&
	       chat->line_len == 0;
}

/* The prompt came: the payload and Ctrl-Z go out, under the deadline of the second step. */
static void chat_prompt(Chat *chat)
{
	ChatCommand *c = chat_head(chat);
	int r;

	chat->prompted = true;
	chat->out_len = (size_t)snprintf(chat->out, sizeof(chat->out), "%s\x1a", c->payload);
	chat->out_done = 0;
	r = chat_arm(chat, c->payload_timeout_usec);
	if (r < 0)
		log_warning_errno(r, "%s: cannot arm the deadline of the text of '%s': %m",
		                  chat->name, c->text);
	log_debug("%s: > (%zu bytes of text and Ctrl-Z after the prompt)", chat->name,
	          strlen(c->payload));
	chat_update_io(chat);
}

/* One complete line. Returns whether the chat is still alive. */
static bool chat_handle_line(Chat *chat, char *line)
{
	ChatCommand *c = chat->busy ? chat_head(chat) : NULL;
	size_t len = strlen(line);
	int final;

	/* trailing blanks are noise; leading ones too (some modems indent) */
	while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
		line[--len] = 0;
	while (*line == ' ' || *line == '\t')
		line++;
	if (!*line)
		return true;

	if (!c) {
		chat_ref(chat);
		chat_unsolicited(chat, line);
		return chat_unref(chat);
	}
	if (!chat->echo_seen && chat->n_reply_lines == 0 && is_echo(c, line)) {
		chat->echo_seen = true;
		return true;
	}
	if (chat->prompted && is_payload_echo(c, line))
		return true;
	final = chat_line_final(line);
	if (final >= 0 && ((c->finals | CHAT_FINALS_BASIC) & CHAT_FINAL(final))) {
		log_debug("%s: < %s", chat->name, line);
		return chat_complete(chat, 0, (ChatResult) final, line);
	}
	if (final < 0 && (c->prefix[0] && has_prefix(line, c->prefix))) {
		/* a line of this command's own reply, even when it looks unsolicited */
	} else if (final >= 0 || chat_line_is_unsolicited(line)) {
		chat_ref(chat);
		chat_unsolicited(chat, line);
		return chat_unref(chat);
	}
	log_debug("%s: < %s", chat->name, line);
	if (chat->n_reply_lines < CHAT_REPLY_LINES_MAX) {
		char *copy = strdup(line);

		if (!copy)
			log_warning("%s: out of memory, reply line of '%s' dropped", chat->name,
			            c->text);
		else
			chat->reply_lines[chat->n_reply_lines++] = copy;
	} else
		log_debug("%s: reply of '%s' too long, line dropped", chat->name, c->text);
	return true;
}

/* Cuts received bytes into lines. Returns whether the chat is still alive. */
static bool chat_feed(Chat *chat, const char *buf, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char b = (unsigned char)buf[i];

		if (b == '>' && chat_awaits_prompt(chat)) {
			chat_prompt(chat);
			continue;
		}
		if (b == '\r' || b == '\n') {
			if (chat->line_len == 0)
				continue;
			chat->line[chat->line_len] = 0;
			if (chat->line_truncated)
				log_debug("%s: line longer than %d bytes truncated", chat->name,
				          CHAT_LINE_MAX);
			chat->line_len = 0;
			chat->line_truncated = false;
			if (!chat_handle_line(chat, chat->line) || chat->error)
				return !chat->dead;
		} else if (b < 0x20 && b != '\t') {
			/* NUL, XON/XOFF, the odd control byte of a noisy line: not text */
		} else if (chat->line_len < CHAT_LINE_MAX) {
			chat->line[chat->line_len++] = (char)b;
		} else
			chat->line_truncated = true;
	}
	return true;
}

static int chat_flush(Chat *chat)
{
	while (chat->out_done < chat->out_len) {
		ssize_t k =
		        write(chat->fd, chat->out + chat->out_done, chat->out_len - chat->out_done);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			return -errno;
		}
		chat->out_done += (size_t)k;
	}
	chat_update_io(chat);
	return 0;
}

static int chat_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	Chat *chat = userdata;
	int error = 0;

	chat_ref(chat);
	if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		char buf[1024];

		for (;;) {
			ssize_t k = read(fd, buf, sizeof(buf));

			if (k < 0) {
				if (errno == EINTR)
					continue;
				if (errno != EAGAIN)
					error = -errno;
				break;
			}
			if (k == 0) {
				error = -EIO; /* hung up: a pty whose other side closed */
				break;
			}
			if (!chat_feed(chat, buf, (size_t)k) || chat->error)
				goto out;
		}
		if (!error && (revents & (EPOLLHUP | EPOLLERR)))
			error = -EIO;
	}
	if (!error && (revents & EPOLLOUT) && !chat->dead) {
		error = chat_flush(chat);
		if (!error && chat->out_done == chat->out_len && !chat->busy)
			chat_start_next(chat);
	}
	if (error && !chat->dead)
		chat_fail(chat, error);
out:
	chat_unref(chat);
	return 0;
}

static int chat_on_deadline(sd_event_source *s, uint64_t usec, void *userdata)
{
	Chat *chat = userdata;
	ChatCommand *c = chat_head(chat);

	if (!chat->busy || !c)
		return 0;
	log_debug(
	        "%s: no %s to '%s' within %llu ms", chat->name,
	        c->payload && !chat->prompted ? "prompt" : "final result", c->text,
	        (unsigned long long)((chat->prompted ? c->payload_timeout_usec : c->timeout_usec) /
	                             1000));
	/* A partial line belongs to the reply that did not come. */
	chat->line_len = 0;
	chat->line_truncated = false;
	if (c->payload) {
		/* ESC ends text entry without sending: a late prompt must not take what follows
		 * as the text of a message. Best effort, as the port may be what hangs. */
		chat->out_len = chat->out_done = 0;
		if (write(chat->fd, "\x1b", 1) < 0)
			log_debug_errno(errno, "%s: cannot write ESC: %m", chat->name);
	}
	chat_complete(chat, -ETIMEDOUT, 0, NULL);
	return 0;
}

int chat_open_port(const char *path, int *ret_fd)
{
	struct termios t;
	int fd, bits = TIOCM_DTR | TIOCM_RTS, r;

	if (!path || !ret_fd)
		return -EINVAL;
	fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (tcgetattr(fd, &t) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	cfmakeraw(&t);
	t.c_cflag |= CLOCAL | CREAD;
	t.c_cflag &= ~(tcflag_t)(CRTSCTS | CSTOPB);
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	cfsetispeed(&t, B115200);
	cfsetospeed(&t, B115200);
	if (tcsetattr(fd, TCSANOW, &t) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	/* What the modem said to the port's previous owner is not for us. */
	(void)tcflush(fd, TCIOFLUSH);
	if (ioctl(fd, TIOCMBIS, &bits) < 0)
		log_debug_errno(errno, "%s: cannot raise DTR/RTS (harmless on a pty): %m", path);
	*ret_fd = fd;
	return 0;
}

int chat_new(sd_event *event, int fd, const char *name, const ChatHandlers *handlers,
             void *userdata, Chat **ret)
{
	Chat *chat;
	int r;

	if (!event || fd < 0 || !ret)
		return -EINVAL;
	chat = calloc(1, sizeof(*chat));
	if (!chat)
		return -ENOMEM;
	chat->fd = -1;
	chat->event = sd_event_ref(event);
	chat->name = strdup(name ? name : "chat");
	if (!chat->name) {
		r = -ENOMEM;
		goto fail;
	}
	if (handlers)
		chat->handlers = *handlers;
	chat->userdata = userdata;
	r = sd_event_add_io(event, &chat->io, fd, EPOLLIN, chat_on_io, chat);
	if (r < 0)
		goto fail;
	r = sd_event_add_time_relative(event, &chat->timer, CLOCK_MONOTONIC, UINT64_MAX / 2, 1000,
	                               chat_on_deadline, chat);
	if (r < 0)
		goto fail;
	r = sd_event_source_set_enabled(chat->timer, SD_EVENT_OFF);
	if (r < 0)
		goto fail;
	(void)sd_event_source_set_description(chat->io, "chat-io");
	(void)sd_event_source_set_description(chat->timer, "chat-deadline");
	chat->fd = fd;
	*ret = chat;
	return 0;
fail:
	chat_destroy(chat);
	return r;
}

Chat *chat_free(Chat *chat)
{
	if (!chat || chat->dead)
		return NULL;
	chat->dead = true;
	(void)sd_event_source_set_enabled(chat->io, SD_EVENT_OFF);
	(void)sd_event_source_set_enabled(chat->timer, SD_EVENT_OFF);
	if (chat->fd >= 0) {
		/* The port goes back to its owner now, not when the dispatch unwinds. */
		sd_event_source_disable_unref(chat->io);
		chat->io = NULL;
		close(chat->fd);
		chat->fd = -1;
	}
	if (chat->n_ref == 0)
		chat_destroy(chat);
	return NULL;
}

static bool payload_is_valid(const char *payload)
{
	size_t len = strlen(payload);

	if (len == 0 || len > CHAT_PAYLOAD_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)payload[i] < 0x20 || payload[i] == 0x7f)
			return false;
	return true;
}

/* Whether command may go out on this chat: 0, or the error chat_send() returns. */
static int chat_check_command(const Chat *chat, const char *command)
{
	size_t len;

	if (!chat || !command || chat->dead)
		return -EINVAL;
	if (chat->error)
		return chat->error;
	len = strlen(command);
	if (len == 0 || len > CHAT_COMMAND_MAX || strpbrk(command, "\r\n"))
		return -EINVAL;
	return 0;
}

static int chat_queue(Chat *chat, const char *command, const char *payload, unsigned finals,
                      uint64_t timeout_usec, uint64_t payload_timeout_usec,
                      ChatReplyHandler handler, void *userdata)
{
	ChatCommand *c;
	int r;

	r = chat_check_command(chat, command);
	if (r < 0)
		return r;
	if (payload && !payload_is_valid(payload))
		return -EINVAL;
	if (chat->n_queue >= CHAT_QUEUE_MAX)
		return -ENOBUFS;
	c = &chat->queue[chat->n_queue];
	*c = (ChatCommand){
	        .text = strdup(command),
	        .payload = payload ? strdup(payload) : NULL,
	        .finals = finals | CHAT_FINALS_BASIC,
	        .timeout_usec = timeout_usec ? timeout_usec : CHAT_TIMEOUT_DEFAULT_USEC,
	        .payload_timeout_usec =
	                payload_timeout_usec ? payload_timeout_usec : CHAT_TIMEOUT_DEFAULT_USEC,
	        .handler = handler,
	        .userdata = userdata,
	};
	if (!c->text || (payload && !c->payload)) {
		command_clear(c);
		return -ENOMEM;
	}
	command_prefix(command, c->prefix);
	chat->n_queue++;
	/* Written from the loop: enable EPOLLOUT rather than write here. */
	if (!chat->busy && chat->out_done == chat->out_len)
		chat_start_next(chat);
	return 0;
}

int chat_send(Chat *chat, const char *command, unsigned finals, uint64_t timeout_usec,
              ChatReplyHandler handler, void *userdata)
{
	return chat_queue(chat, command, NULL, finals, timeout_usec, 0, handler, userdata);
}

int chat_send_text(Chat *chat, const char *command, const char *text, uint64_t timeout_usec,
                   uint64_t text_timeout_usec, ChatReplyHandler handler, void *userdata)
{
	if (!text)
		return -EINVAL;
	return chat_queue(chat, command, text, CHAT_FINALS_BASIC, timeout_usec, text_timeout_usec,
	                  handler, userdata);
}

void chat_cancel(Chat *chat)
{
	if (!chat)
		return;
	const ChatCommand *c = chat->busy ? chat_head(chat) : NULL;
	bool started = chat->out_done > 0 || chat->prompted, in_text = c && c->payload && started;
	bool half = chat->out_done > 0 && chat->out_done < chat->out_len && !chat->prompted;

	for (size_t i = 0; i < chat->n_queue; i++)
		command_clear(&chat->queue[i]);
	chat->n_queue = 0;
	chat->busy = false;
	chat->prompted = false;
	chat_reply_clear(chat);
	(void)sd_event_source_set_enabled(chat->timer, SD_EVENT_OFF);
	if (in_text && half) {
		/* The rest of the command goes out, then ESC ends the text its prompt asks for. */
		chat->out[chat->out_len++] = 0x1b;
	} else if (in_text) {
		/* The modem takes text, or is about to: ESC ends it without sending. */
		chat->out[0] = 0x1b;
		chat->out_len = 1;
		chat->out_done = 0;
	} else if (chat->out_done == 0 || !half)
		/* Half a command on the wire must still end with its CR, or the next one is glued
		 * to it. */
		chat->out_len = chat->out_done = 0;
	chat_update_io(chat);
}

int chat_write_now(Chat *chat, const char *command)
{
	char buf[CHAT_COMMAND_MAX + 4];
	bool partial, escape;
	size_t len;
	ssize_t k;
	int r;

	r = chat_check_command(chat, command);
	if (r < 0)
		return r;
	partial = chat->out_done > 0 && chat->out_done < chat->out_len;
	chat_cancel(chat);
	escape = chat->out_len > chat->out_done && chat->out[chat->out_len - 1] == 0x1b;
	/* A leading CR ends a half-written command, so that ours is not glued to it; ESC ends the
	 * text of a message (chat_cancel()). */
	len = (size_t)snprintf(buf, sizeof(buf), "%s%s%s\r", escape ? "\x1b" : "",
	                       partial ? "\r" : "", command);
	chat->out_len = chat->out_done = 0;
	do
		k = write(chat->fd, buf, len);
	while (k < 0 && errno == EINTR);
	if (k < 0)
		return -errno;
	log_debug("%s: > %s (no reply awaited)", chat->name, command);
	if ((size_t)k < len) {
		/* the rest goes out from the loop, before any later command */
		memcpy(chat->out, buf + k, len - (size_t)k);
		chat->out_len = len - (size_t)k;
		chat_update_io(chat);
	}
	return 0;
}

size_t chat_pending(const Chat *chat)
{
	return chat ? chat->n_queue : 0;
}

int chat_port_error(const Chat *chat)
{
	return chat ? chat->error : -EINVAL;
}
