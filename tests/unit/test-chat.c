/* test-chat: the AT chat engine (common/chat.c) against a modem played by the test
 * on the other end of a socketpair (and, for chat_open_port(), a pseudo-terminal): echo,
 * unsolicited lines in the middle of a reply, lines cut anywhere, the final results, deadlines,
 * the queue, a port that goes away, and handlers that free the chat. Every wait is bounded. */
#include "chat.h" /* first: the header compiles on its own */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "test.h"
#include "util.h"

static sd_event *event;

/* what the handlers saw */
static struct {
	int calls;
	int r;
	ChatResult result;
	char final[128];
	int error_code;
	char lines[8][CHAT_LINE_MAX + 1];
	size_t n_lines;
	bool prompted;
	char order[16]; /* which commands completed, by their userdata tag, in order */
} got;
static char urcs[16][CHAT_LINE_MAX + 1];
static int n_urcs;
static int port_errors;
static int port_error_value;

static void reset(void)
{
	memset(&got, 0, sizeof(got));
	n_urcs = 0;
	port_errors = 0;
	port_error_value = 0;
}

static void on_reply(Chat *chat, int r, const ChatReply *reply, void *userdata)
{
	size_t n = strlen(got.order);

	got.calls++;
	got.r = r;
	if (userdata && n + 1 < sizeof(got.order))
		got.order[n] = *(const char *)userdata;
	if (r < 0)
		return;
	got.result = reply->result;
	snprintf(got.final, sizeof(got.final), "%s", reply->final);
	got.error_code = reply->error_code;
	got.prompted = reply->prompted;
	got.n_lines = MIN(reply->n_lines, ELEMENTSOF(got.lines));
	for (size_t i = 0; i < got.n_lines; i++)
		snprintf(got.lines[i], sizeof(got.lines[i]), "%s", reply->lines[i]);
}

static void on_urc(Chat *chat, const char *line, void *userdata)
{
	if (n_urcs < (int)ELEMENTSOF(urcs))
		snprintf(urcs[n_urcs++], sizeof(urcs[0]), "%s", line);
}

static void on_port_error(Chat *chat, int error, void *userdata)
{
	port_errors++;
	port_error_value = error;
}

static const ChatHandlers handlers = {.unsolicited = on_urc, .port_error = on_port_error};

/* Runs the loop until *count reaches want or timeout_ms passes. */
static bool run_until(const int *count, int want, int timeout_ms)
{
	uint64_t end = now_monotonic_usec() + (uint64_t)timeout_ms * 1000;

	while (*count < want) {
		if (now_monotonic_usec() >= end)
			return false;
		if (sd_event_run(event, 10 * 1000) < 0)
			return false;
	}
	return true;
}

static void run_for(int ms)
{
	uint64_t end = now_monotonic_usec() + (uint64_t)ms * 1000;

	while (now_monotonic_usec() < end)
		sd_event_run(event, 5 * 1000);
}

/* Runs the loop until the peer has received exactly want (or timeout). */
static bool peer_expect(int peer, const char *want)
{
	char buf[1024];
	size_t n = 0, len = strlen(want);
	uint64_t end = now_monotonic_usec() + 2 * USEC_PER_SEC;

	while (n < len && now_monotonic_usec() < end) {
		ssize_t k;

		sd_event_run(event, 5 * 1000);
		k = read(peer, buf + n, MIN(len - n, sizeof(buf) - 1 - n));
		if (k > 0)
			n += (size_t)k;
	}
	buf[n] = 0;
	if (!streq(buf, want)) {
		fprintf(stderr, "# peer got '%s', expected '%s'\n", buf, want);
		return false;
	}
	return true;
}

static bool peer_quiet(int peer, int ms)
{
	char buf[64];

	run_for(ms);
	return read(peer, buf, sizeof(buf)) < 0 && errno == EAGAIN;
}

static void peer_say(int peer, const char *text)
{
	size_t len = strlen(text);

	check_int(write(peer, text, len), (ssize_t)len);
}

/* A chat on one end of a fresh socketpair; *ret_peer is the modem's end (non-blocking). */
static Chat *new_chat(int *ret_peer)
{
	int sv[2];
	Chat *chat = NULL;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0) {
		check(false);
		return NULL;
	}
	check_int(chat_new(event, sv[0], "test", &handlers, NULL, &chat), 0);
	*ret_peer = sv[1];
	reset();
	return chat;
}

static void test_line_classes(void)
{
	check_int(chat_line_final("OK"), CHAT_OK);
	check_int(chat_line_final("ERROR"), CHAT_ERROR);
	check_int(chat_line_final("+CME ERROR: 11"), CHAT_CME_ERROR);
	check_int(chat_line_final("+CMS ERROR: 500"), CHAT_CMS_ERROR);
	check_int(chat_line_final("NO CARRIER"), CHAT_NO_CARRIER);
	check_int(chat_line_final("BUSY"), CHAT_BUSY);
	check_int(chat_line_final("NO ANSWER"), CHAT_NO_ANSWER);
	check_int(chat_line_final("NO DIALTONE"), CHAT_NO_DIALTONE);
	check_int(chat_line_final("NO DIAL TONE"), CHAT_NO_DIALTONE);
	check_int(chat_line_final("CONNECT 9600"), CHAT_CONNECT);
	check_int(chat_line_final("OKAY"), -1);
	check_int(chat_line_final("+CLCC: 1,0,3,0,0,\"+32470000001\",145"), -1);
	check(chat_line_is_unsolicited("RING"));
	check(chat_line_is_unsolicited("+CLCC: 1,0,3,0,0"));
	check(chat_line_is_unsolicited("+DTMF: 1"));
	check(chat_line_is_unsolicited("^RSSI: 20"));
	check(chat_line_is_unsolicited("+CREG: 1"));
	check(!chat_line_is_unsolicited("SIMCOM_Ltd"));
	check(!chat_line_is_unsolicited("+CSQ: 20,0"));
	check_str(chat_result_to_string(CHAT_NO_CARRIER), "NO CARRIER");
}

/* ATE1: the echo comes back first and is not part of the reply. */
static void test_echo(void)
{
	int peer = -1;
	Chat *chat = new_chat(&peer);

	check_int(chat_send(chat, "AT+CGMI", 0, 0, on_reply, NULL), 0);
	check_int(chat_pending(chat), 1);
	check(peer_expect(peer, "AT+CGMI\r"));
	peer_say(peer, "AT+CGMI\r\r\nSIMCOM_Ltd\r\n\r\nOK\r\n");
	check(run_until(&got.calls, 1, 2000));
	check_int(got.r, 0);
	check_int(got.result, CHAT_OK);
	check_str(got.final, "OK");
	check_int(got.n_lines, 1);
	check_str(got.lines[0], "SIMCOM_Ltd");
	check_int(n_urcs, 0);
	check_int(chat_pending(chat), 0);

	/* an echo that is not ours is a reply line; ours comes back in any case */
	reset();
	check_int(chat_send(chat, "ATI", 0, 0, on_reply, NULL), 0);
	check(peer_expect(peer, "ATI\r"));
	peer_say(peer, "ati\r\r\nSIM800 R14.18\r\n\r\nOK\r\n");
	check(run_until(&got.calls, 1, 2000));
	check_int(got.n_lines, 1);
	check_str(got.lines[0], "SIM800 R14.18");
	chat_free(chat);
	close(peer);
}

/* Unsolicited lines in the middle of a reply go to the handler; the command's own prefix stays. */
static void test_urc_in_reply(void)
{
	int peer = -1;
	Chat *chat = new_chat(&peer);

	check_int(chat_send(chat, "AT+CLCC", 0, 0, on_reply, NULL), 0);
	check(peer_expect(peer, "AT+CLCC\r"));
	peer_say(peer, "\r\nRING\r\n\r\n+CLCC: 1,0,3,0,0,\"+32470000001\",145\r\n"
	               "\r\n+DTMF: 1\r\n^RSSI: 20\r\n\r\nNO CARRIER\r\n\r\nOK\r\n");
	check(run_until(&got.calls, 1, 2000));
	check_int(got.result, CHAT_OK);
	check_int(got.n_lines, 1);
	check_str(got.lines[0], "+CLCC: 1,0,3,0,0,\"+32470000001\",145");
	check_int(n_urcs, 4);
	check_str(urcs[0], "RING");
	check_str(urcs[1], "+DTMF: 1");
	check_str(urcs[2], "^RSSI: 20");
	check_str(urcs[3], "NO CARRIER"); /* not a final AT+CLCC expects: the call ended */

	/* the same +CLCC line with no command pending (or during another command) is unsolicited */
	reset();
	peer_say(peer, "\r\n+CLCC: 1,0,0,0,0,\"+32470000001\",145\r\n");
	check(run_until(&n_urcs, 1, 2000));
	check_str(urcs[0], "+CLCC: 1,0,0,0,0,\"+32470000001\",145");
	reset();
	check_int(chat_send(chat, "AT+CSQ", 0, 0, on_reply, NULL), 0);
	check(peer_expect(peer, "AT+CSQ\r"));
	peer_say(peer, "\r\n+CLCC: 1,0,6,0,0,\"+32470000001\",145\r\n\r\n+CSQ: 20,0\r\n\r\nOK\r\n");
	check(run_until(&got.calls, 1, 2000));
	check_int(got.n_lines, 1);
	check_str(got.lines[0], "+CSQ: 20,0");
	check_int(n_urcs, 1);
	chat_free(chat);
	close(peer);
}

/* Lines arrive a byte at a time, with the loop running between bytes; CR, LF or both end them. */
static void test_partial_lines(void)
{
	static const char reply[] = "\r\n+CPAS: 4\r\n\r\n+CREG: 1\n\rOK\r\n";
	int peer = -1;
	Chat *chat = new_chat(&peer);

	check_int(chat_send(chat, "AT+CPAS", 0, 0, on_reply, NULL), 0);
	check(peer_expect(peer, "AT+CPAS\r"));
	for (size_t i = 0; i < sizeof(reply) - 1; i++) {
		check_int(write(peer, reply + i, 1), 1);
		run_for(1);
		if (i < sizeof(reply) - 3)
			check_int(got.calls, 0);
	}
	check(run_until(&got.calls, 1, 2000));
	check_int(got.result, CHAT_OK);
	check_int(got.n_lines, 1);
	check_str(got.lines[0], "+CPAS: 4");
	check_int(n_urcs, 1);
	check_str(urcs[0], "+CREG: 1");

	/* a line split across two writes, the second much later */
	reset();
	check_int(chat_send(chat, "AT+CGMM", 0, 0, on_reply, NULL), 0);
	check(peer_expect(peer, "AT+CGMM\r"));
	peer_say(peer, "\r\nSIMCOM_S");
	run_for(50);
	check_int(got.calls, 0);
	peer_say(peer, "IM800\r\n\r\nO");
	run_for(20);
	check_int(got.calls, 0);
	peer_say(peer, "K\r\n");
	check(run_until(&got.calls, 1, 2000));
	check_int(got.n_lines, 1);
	check_str(got.lines[0], "SIMCOM_SIM800");
	chat_free(chat);
	close(peer);
}

static void test_finals(void)
{
	int peer = -1;
	Chat *chat = new_chat(&peer);

	check_int(chat_send(chat, "ATD+32470000001;", CHAT_FINALS_DIAL, 0, on_reply, NULL), 0);
	check(peer_expect(peer, "ATD+32470000001;\r"));
	peer_say(peer, "\r\nBUSY\r\n");
	check(run_until(&got.calls, 1, 2000));
	check_int(got.result, CHAT_BUSY);
	check_str(got.final, "BUSY");

	reset();
	check_int(chat_send(chat, "ATD+32470000001;", 0, 0, on_reply, NULL), 0);
	check(peer_expect(peer, "ATD+32470000001;\r"));
	peer_say(peer, "\r\n+CME ERROR: 11\r\n");
	check(run_until(&got.calls, 1, 2000));
	check_int(got.result, CHAT_CME_ERROR);
	check_int(got.error_code, 11);
	check_str(got.final, "+CME ERROR: 11");

	reset();
	check_int(chat_send(chat, "AT+CMGS=19", 0, 0, on_reply, NULL), 0);
	check(peer_expect(peer, "AT+CMGS=19\r"));
	peer_say(peer, "\r\n+CMS ERROR: SIM busy\r\n");
	check(run_until(&got.calls, 1, 2000));
	check_int(got.result, CHAT_CMS_ERROR);
	check_int(got.error_code, -1);

	reset();
	check_int(chat_send(chat, "AT+FOO", 0, 0, on_reply, NULL), 0);
	check(peer_expect(peer, "AT+FOO\r"));
	peer_say(peer, "\r\nERROR\r\n");
	check(run_until(&got.calls, 1, 2000));
	check_int(got.result, CHAT_ERROR);

	/* NO DIALTONE ends a dial; a trailing blank does not matter */
	reset();
	check_int(chat_send(chat, "ATD123;", CHAT_FINALS_DIAL, 0, on_reply, NULL), 0);
	check(peer_expect(peer, "ATD123;\r"));
	peer_say(peer, "\r\nNO DIALTONE \r\n");
	check(run_until(&got.calls, 1, 2000));
	check_int(got.result, CHAT_NO_DIALTONE);
	chat_free(chat);
	close(peer);
}

/* Each command has its deadline; the queue goes on after one passes. */
static void test_deadline(void)
{
	int peer = -1;
	Chat *chat = new_chat(&peer);
	uint64_t t0 = now_monotonic_usec(), elapsed;

	check_int(chat_send(chat, "AT", 0, 200 * 1000, on_reply, "a"), 0);
	check_int(chat_send(chat, "AT+CSQ", 0, 0, on_reply, "b"), 0);
	check(peer_expect(peer, "AT\r"));
	check(peer_quiet(peer, 50)); /* one command on the wire at a time */
	check(run_until(&got.calls, 1, 2000));
	elapsed = now_monotonic_usec() - t0;
	check_int(got.r, -ETIMEDOUT);
	check(elapsed >= 190 * 1000 && elapsed < 1000 * 1000);
	/* the half line of the late reply does not stick to the next one */
	check(peer_expect(peer, "AT+CSQ\r"));
	peer_say(peer, "\r\n+CSQ: 20,0\r\n\r\nOK\r\n");
	check(run_until(&got.calls, 2, 2000));
	check_int(got.r, 0);
	check_int(got.n_lines, 1);
	check_str(got.order, "ab");

	/* a partial line at the deadline is dropped */
	reset();
	check_int(chat_send(chat, "AT+CGMR", 0, 100 * 1000, on_reply, NULL), 0);
	check(peer_expect(peer, "AT+CGMR\r"));
	peer_say(peer, "\r\nRevision:14");
	check(run_until(&got.calls, 1, 2000));
	check_int(got.r, -ETIMEDOUT);
	reset();
	check_int(chat_send(chat, "AT", 0, 0, on_reply, NULL), 0);
	check(peer_expect(peer, "AT\r"));
	peer_say(peer, "\r\nOK\r\n");
	check(run_until(&got.calls, 1, 2000));
	check_int(got.r, 0);
	check_int(got.result, CHAT_OK);
	check_int(n_urcs, 0);
	chat_free(chat);
	close(peer);
}

/* Commands go out in order, one at a time; bad ones are refused; the queue is bounded. */
static void test_queue(void)
{
	int peer = -1;
	Chat *chat = new_chat(&peer);
	char long_cmd[CHAT_COMMAND_MAX + 2];

	check_int(chat_send(chat, "AT\r+CSQ", 0, 0, on_reply, NULL), -EINVAL);
	check_int(chat_send(chat, "", 0, 0, on_reply, NULL), -EINVAL);
	memset(long_cmd, 'A', sizeof(long_cmd) - 1);
	long_cmd[sizeof(long_cmd) - 1] = 0;
	check_int(chat_send(chat, long_cmd, 0, 0, on_reply, NULL), -EINVAL);

	check_int(chat_send(chat, "AT+A", 0, 0, on_reply, "1"), 0);
	check_int(chat_send(chat, "AT+B", 0, 0, on_reply, "2"), 0);
	check_int(chat_send(chat, "AT+C", 0, 0, on_reply, "3"), 0);
	check(peer_expect(peer, "AT+A\r"));
	check(peer_quiet(peer, 30));
	peer_say(peer, "\r\nOK\r\n");
	check(peer_expect(peer, "AT+B\r"));
	peer_say(peer, "\r\nERROR\r\n");
	check(peer_expect(peer, "AT+C\r"));
	peer_say(peer, "\r\nOK\r\n");
	check(run_until(&got.calls, 3, 2000));
	check_str(got.order, "123");

	for (int i = 0; i < CHAT_QUEUE_MAX; i++)
		check_int(chat_send(chat, "AT", 0, 0, NULL, NULL), 0);
	check_int(chat_send(chat, "AT", 0, 0, NULL, NULL), -ENOBUFS);
	check_int(chat_pending(chat), CHAT_QUEUE_MAX);
	chat_cancel(chat);
	check_int(chat_pending(chat), 0);
	chat_free(chat);
	close(peer);
}

/* A cancelled command gets no callback; the chat goes on with the next. */
static void test_cancel(void)
{
	int peer = -1;
	Chat *chat = new_chat(&peer);

	check_int(chat_send(chat, "ATD+32470000001;", CHAT_FINALS_DIAL, 0, on_reply, NULL), 0);
	check(peer_expect(peer, "ATD+32470000001;\r"));
	chat_cancel(chat);
	peer_say(peer, "\r\nNO CARRIER\r\n");
	run_for(50);
	check_int(got.calls, 0);
	check_int(n_urcs, 1);
	check_int(chat_send(chat, "ATH", 0, 0, on_reply, NULL), 0);
	check(peer_expect(peer, "ATH\r"));
	peer_say(peer, "\r\nOK\r\n");
	check(run_until(&got.calls, 1, 2000));
	check_int(got.result, CHAT_OK);

	/* chat_write_now: ahead of the queue, no reply awaited, the queue dropped */
	reset();
	check_int(chat_send(chat, "AT+CLCC", 0, 0, on_reply, NULL), 0);
	check_int(chat_write_now(chat, "ATH"), 0);
	check(peer_expect(peer, "ATH\r"));
	check(peer_quiet(peer, 30));
	check_int(chat_pending(chat), 0);
	check_int(got.calls, 0);
	chat_free(chat);
	close(peer);
}

/* The modem's end goes away: the command on the wire and the queued ones get the error. */
static void test_port_gone(void)
{
	int peer = -1;
	Chat *chat = new_chat(&peer);

	check_int(chat_send(chat, "AT+CLCC", 0, 0, on_reply, "x"), 0);
	check_int(chat_send(chat, "AT+CPAS", 0, 0, on_reply, "y"), 0);
	check(peer_expect(peer, "AT+CLCC\r"));
	peer_say(peer, "\r\n+CLCC: 1,0,3,0,0,\"+32470000001\",145\r\n");
	close(peer);
	check(run_until(&port_errors, 1, 2000));
	check_int(got.calls, 2);
	check_str(got.order, "xy");
	check(got.r < 0);
	check_int(port_error_value, -EIO);
	check(chat_port_error(chat) < 0);
	check(chat_send(chat, "AT", 0, 0, on_reply, NULL) < 0);
	chat_free(chat);
}

static Chat *freed_chat;
static void on_reply_free(Chat *chat, int r, const ChatReply *reply, void *userdata)
{
	got.calls++;
	got.r = r;
	freed_chat = chat_free(chat);
}

/* A handler frees its chat: the rest of the bytes, the queue and the fd go with it (ASan). */
static void test_free_in_handler(void)
{
	int peer = -1;
	Chat *chat = new_chat(&peer);
	char buf[8];

	check_int(chat_send(chat, "AT", 0, 0, on_reply_free, NULL), 0);
	check_int(chat_send(chat, "AT+CSQ", 0, 0, on_reply, NULL), 0);
	check(peer_expect(peer, "AT\r"));
	peer_say(peer, "\r\nOK\r\n\r\nRING\r\n\r\nOK\r\n");
	check(run_until(&got.calls, 1, 2000));
	run_for(30);
	check_int(got.calls, 1);
	check_int(n_urcs, 0);
	/* the port was closed at once */
	check_int(read(peer, buf, sizeof(buf)), 0);
	close(peer);

	/* freed from the deadline, and from the port error */
	chat = new_chat(&peer);
	check_int(chat_send(chat, "AT", 0, 50 * 1000, on_reply_free, NULL), 0);
	check(run_until(&got.calls, 1, 2000));
	check_int(got.r, -ETIMEDOUT);
	close(peer);
	chat = new_chat(&peer);
	check_int(chat_send(chat, "AT", 0, 0, on_reply_free, NULL), 0);
	check_int(chat_send(chat, "AT", 0, 0, on_reply, NULL), 0);
	close(peer);
	check(run_until(&got.calls, 1, 2000));
	run_for(30);
	check_int(got.calls, 1);
	check_int(port_errors, 0);
}

/* Overlong lines are cut, not overflowed; control bytes are not text. */
static void test_long_line(void)
{
	int peer = -1;
	Chat *chat = new_chat(&peer);
	char big[3 * CHAT_LINE_MAX];

	check_int(chat_send(chat, "AT+CUSD=1", 0, 0, on_reply, NULL), 0);
	check(peer_expect(peer, "AT+CUSD=1\r"));
	memset(big, 'x', sizeof(big));
	peer_say(peer, "\r\n");
	check_int(write(peer, big, sizeof(big)), (ssize_t)sizeof(big));
	check_int(write(peer, "\r\n\x11\x13\r\nO\0K\r\n", 11), 11);
	check(run_until(&got.calls, 1, 2000));
	check_int(got.result, CHAT_OK);
	check_int(got.n_lines, 1);
	check_int(strlen(got.lines[0]), CHAT_LINE_MAX);
	chat_free(chat);
	close(peer);
}

/* chat_open_port() on a pseudo-terminal: raw mode (no CR/LF translation), DTR failure ignored. */
static void test_open_port(void)
{
	int master, slave, fd = -1;
	char name[128];
	struct termios raw;
	Chat *chat = NULL;

	check_int(chat_open_port("/nonexistent/ttyUSB9", &fd), -ENOENT);
	check_int(chat_open_port("/dev/null", &fd), -ENOTTY);
	if (openpty(&master, &slave, name, NULL, NULL) < 0) {
		printf("# openpty: %s, skipped\n", strerror(errno));
		return;
	}
	/* raw on the modem's side too, as tests/modemsim does: no echo of what it writes */
	check_int(tcgetattr(slave, &raw), 0);
	cfmakeraw(&raw);
	check_int(tcsetattr(slave, TCSANOW, &raw), 0);
	fcntl(master, F_SETFL, O_NONBLOCK);
	/* left over from the previous owner: flushed at open */
	check_int(write(master, "\r\nOK\r\n", 6), 6);
	run_for(20);
	check_int(chat_open_port(name, &fd), 0);
	close(slave);
	check_int(chat_new(event, fd, "pty", &handlers, NULL, &chat), 0);
	reset();
	check_int(chat_send(chat, "AT", 0, 0, on_reply, NULL), 0);
	check(peer_expect(master, "AT\r"));
	run_for(20);
	check_int(got.calls, 0);
	peer_say(master, "AT\r\r\nOK\r\n");
	check(run_until(&got.calls, 1, 2000));
	check_int(got.r, 0);
	check_int(got.result, CHAT_OK);
	/* the pty's master goes: the slave hangs up */
	reset();
	check_int(chat_send(chat, "AT", 0, 0, on_reply, NULL), 0);
	check(peer_expect(master, "AT\r"));
	close(master);
	check(run_until(&port_errors, 1, 2000));
	check_int(got.calls, 1);
	check(got.r < 0);
	chat_free(chat);
}

/* AT+CMGS in PDU mode: the text goes out at the prompt, at once, with its Ctrl-Z; the modem's
 * echo of it is not a reply line; URCs before the prompt do not disturb it; a refusal before the
 * prompt and a prompt or answer that never comes each end the command, and ESC ends the text. */
static void test_text(void)
{
	static const char pdu[] = "0011000B914307000000F00000AA05E8329BFD06";
	int peer = -1;
	Chat *chat = new_chat(&peer);

	check_int(chat_send_text(chat, "AT+CMGS=19", pdu, 0, 0, on_reply, NULL), 0);
	check(peer_expect(peer, "AT+CMGS=19\r"));
	check(peer_quiet(peer, 20)); /* nothing before the prompt */
	peer_say(peer, "AT+CMGS=19\r\r\n^RSSI: 20\r\n\r\n> ");
	check(peer_expect(peer, "0011000B914307000000F00000AA05E8329BFD06\x1a"));
	peer_say(peer, pdu);
	peer_say(peer, "\r\n+CMGS: 7\r\n\r\nOK\r\n");
	check(run_until(&got.calls, 1, 2000));
	check_int(got.r, 0);
	check_int(got.result, CHAT_OK);
	check(got.prompted);
	check_int(got.n_lines, 1);
	check_str(got.lines[0], "+CMGS: 7");
	check_int(n_urcs, 1);
	check_str(urcs[0], "^RSSI: 20");

	/* a modem without echo, the prompt cut from its line end, a network refusal */
	reset();
	check_int(chat_send_text(chat, "AT+CMGS=19", pdu, 0, 0, on_reply, NULL), 0);
	check(peer_expect(peer, "AT+CMGS=19\r"));
	peer_say(peer, "\r\n");
	run_for(10);
	peer_say(peer, ">");
	check(peer_expect(peer, "0011000B914307000000F00000AA05E8329BFD06\x1a"));
	peer_say(peer, " \r\n+CMS ERROR: 21\r\n");
	check(run_until(&got.calls, 1, 2000));
	check_int(got.result, CHAT_CMS_ERROR);
	check_int(got.error_code, 21);
	check(got.prompted);
	check_int(got.n_lines, 0);

	/* refused before the prompt: nothing was sent, and no text goes out */
	reset();
	check_int(chat_send_text(chat, "AT+CMGS=19", pdu, 0, 0, on_reply, NULL), 0);
	check(peer_expect(peer, "AT+CMGS=19\r"));
	peer_say(peer, "\r\n+CMS ERROR: 330\r\n");
	check(run_until(&got.calls, 1, 2000));
	check_int(got.result, CHAT_CMS_ERROR);
	check_int(got.error_code, 330);
	check(!got.prompted);
	check(peer_quiet(peer, 20));
	/* a '>' with no command waiting for a prompt is only text */
	peer_say(peer, "> hello\r\n");
	run_for(20);
	check_int(n_urcs, 1);
	check_str(urcs[0], "> hello");

	/* no prompt within its deadline: ESC, so that a late prompt takes nothing */
	reset();
	check_int(chat_send_text(chat, "AT+CMGS=19", pdu, 50 * USEC_PER_MSEC, 0, on_reply, NULL),
	          0);
	check(peer_expect(peer, "AT+CMGS=19\r"));
	check(run_until(&got.calls, 1, 2000));
	check_int(got.r, -ETIMEDOUT);
	check(peer_expect(peer, "\x1b"));

	/* the prompt came, the answer does not: the second deadline, then ESC */
	reset();
	check_int(chat_send_text(chat, "AT+CMGS=19", pdu, 0, 80 * USEC_PER_MSEC, on_reply, NULL),
	          0);
	check(peer_expect(peer, "AT+CMGS=19\r"));
	peer_say(peer, "\r\n> ");
	check(peer_expect(peer, "0011000B914307000000F00000AA05E8329BFD06\x1a"));
	check(run_until(&got.calls, 1, 2000));
	check_int(got.r, -ETIMEDOUT);
	check(peer_expect(peer, "\x1b"));

	/* cancelled while the modem waits for the text: ESC */
	reset();
	check_int(chat_send_text(chat, "AT+CMGS=19", pdu, 0, 0, on_reply, NULL), 0);
	check(peer_expect(peer, "AT+CMGS=19\r"));
	chat_cancel(chat);
	check(peer_expect(peer, "\x1b"));
	check_int(got.calls, 0);

	/* what cannot be a text */
	check_int(chat_send_text(chat, "AT+CMGS=1", "00\x1a", 0, 0, on_reply, NULL), -EINVAL);
	check_int(chat_send_text(chat, "AT+CMGS=1", "", 0, 0, on_reply, NULL), -EINVAL);
	check_int(chat_send_text(chat, "AT+CMGS=1", NULL, 0, 0, on_reply, NULL), -EINVAL);
	chat_free(chat);
	close(peer);
}

int main(void)
{
	log_setup("test-chat");
	if (getenv("TEST_DEBUG"))
		log_set_max_level(LOG_DEBUG);
	if (sd_event_new(&event) < 0) {
		printf("# sd_event_new failed\n");
		return EXIT_FAILURE;
	}
	run(test_line_classes);
	run(test_echo);
	run(test_urc_in_reply);
	run(test_partial_lines);
	run(test_finals);
	run(test_deadline);
	run(test_queue);
	run(test_cancel);
	run(test_port_gone);
	run(test_free_in_handler);
	run(test_long_line);
	run(test_open_port);
	run(test_text);
	sd_event_unref(event);
	return test_exit();
}
