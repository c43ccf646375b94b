/* fuzz-at-reply: the AT reply parser that the SMS send path and the voice dial-out share
 * (common/chat.c), fed as a modem would feed it: the chat engine runs in an sd-event loop on one
 * end of a socketpair, a command is on the wire, and the input's bytes arrive on the port, in one
 * piece or cut into small reads, then the port may hang up. Whatever the bytes, the handlers must
 * see well-formed lines and replies, and the chat must come apart cleanly.
 *
 * The first byte chooses what the chat does (see the FLAG_ names), the rest is what the modem
 * says. Each input gets a fresh socketpair and chat, so a crash replays from its file alone. */
#include "chat.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
	FLAG_COMMAND = 7,           /* which command is on the wire; 7: AT+CMGS and its text */
	FLAG_SECOND = 1 << 3,       /* a second command waits in the queue */
	FLAG_HANGUP = 1 << 4,       /* the port hangs up after the bytes */
	FLAG_FREE_ON_RING = 1 << 5, /* the unsolicited handler frees the chat at a RING */
	FLAG_FOLLOW_UP = 1 << 6,    /* each reply handler sends another command (a few times) */
	FLAG_PIECES = 1 << 7,       /* the bytes arrive in reads of 1..32 bytes (the second byte) */
};

static const char *const commands[8] = {
        "AT", "ATD+4930123456;", "AT+CLCC", "AT+CSQ", "ATH", "AT+CPAS", "AT^DTMF=1,5", "AT+CMGS=19",
};

static sd_event *event;
static struct {
	uint8_t flags;
	unsigned follow_ups;
	bool freed;
} run;

static void check_line(const char *line)
{
	size_t n = strlen(line);

	assert(n > 0 && n <= CHAT_LINE_MAX);
	assert(!strpbrk(line, "\r\n"));
	assert(line[0] != ' ' && line[0] != '\t' && line[n - 1] != ' ' && line[n - 1] != '\t');
}

static void on_reply(Chat *chat, int r, const ChatReply *reply, void *userdata)
{
	if (r < 0) {
		assert(!reply);
		return;
	}
	assert(reply && reply->final);
	assert(reply->result >= 0 && reply->result < _CHAT_RESULT_MAX);
	assert(chat_line_final(reply->final) == (int)reply->result);
	assert(reply->error_code >= -1 && reply->error_code <= 65535);
	assert(reply->n_lines <= CHAT_REPLY_LINES_MAX);
	assert(!reply->prompted || userdata == &run); /* only a text command gets a prompt */
	check_line(reply->final);
	for (size_t i = 0; i < reply->n_lines; i++)
		check_line(reply->lines[i]);
	if ((run.flags & FLAG_FOLLOW_UP) && run.follow_ups < 4) {
		run.follow_ups++;
		(void)chat_send(chat, commands[run.follow_ups & 7], CHAT_FINALS_DIAL, 0, on_reply,
		                NULL);
	}
}

static void on_unsolicited(Chat *chat, const char *line, void *userdata)
{
	check_line(line);
	if ((run.flags & FLAG_FREE_ON_RING) && !run.freed && strncmp(line, "RING", 4) == 0) {
		run.freed = true;
		chat_free(chat);
	}
}

static void on_port_error(Chat *chat, int error, void *userdata)
{
	assert(error < 0);
	assert(chat_pending(chat) == 0);
}

static const ChatHandlers handlers = {
        .unsolicited = on_unsolicited,
        .port_error = on_port_error,
};

/* Runs what is ready, and swallows what the chat wrote to the modem. */
static void settle(int peer)
{
	char buf[512];

	for (int i = 0; i < 64 && sd_event_run(event, 0) > 0; i++)
		while (peer >= 0 && read(peer, buf, sizeof(buf)) > 0)
			;
	while (peer >= 0 && read(peer, buf, sizeof(buf)) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Chat *chat = NULL;
	size_t piece = SIZE_MAX;
	int sv[2];

	if (size < 1)
		return 0;
	if (!event) {
		log_set_max_level(LOG_CRIT);
		assert(sd_event_new(&event) >= 0);
	}
	run.flags = data[0];
	run.follow_ups = 0;
	run.freed = false;
	data++, size--;
	if ((run.flags & FLAG_PIECES) && size > 0) {
		piece = (size_t)(data[0] % 32) + 1;
		data++, size--;
	}

	assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
	assert(chat_new(event, sv[0], "fuzz", &handlers, NULL, &chat) == 0);
	if ((run.flags & FLAG_COMMAND) == 7)
		assert(chat_send_text(chat, commands[7], "0011000B914307000000F00000AA05E8329BFD06",
		                      0, 0, on_reply, &run) == 0);
	else
		assert(chat_send(chat, commands[run.flags & FLAG_COMMAND], CHAT_FINALS_DIAL, 0,
		                 on_reply, NULL) == 0);
	if (run.flags & FLAG_SECOND)
		assert(chat_send(chat, "AT+CLCC", CHAT_FINALS_BASIC, 0, on_reply, NULL) == 0);
	settle(sv[1]); /* the command goes out */

	for (size_t at = 0, stalls = 0; at < size && !run.freed && stalls < 2;) {
		size_t n = MIN(piece, size - at);
		ssize_t k = write(sv[1], data + at, n);

		if (k < 0 && errno != EAGAIN)
			break;
		if (k > 0)
			at += (size_t)k;
		stalls = k > 0 ? 0 : stalls + 1; /* a chat that stopped reading (port error) */
		settle(sv[1]);
	}
	if (run.flags & FLAG_HANGUP) {
		close(sv[1]);
		sv[1] = -1;
		settle(-1);
	}
	if (!run.freed)
		chat_free(chat);
	settle(-1);
	if (sv[1] >= 0)
		close(sv[1]);
	return 0;
}
