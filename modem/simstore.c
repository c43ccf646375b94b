/* simstore: stored messages read and deleted over raw AT, because libgammu decodes a PDU as soon
 * as it reads it, inside the same call, and its decoder trusts the lengths in the PDU: one
 * crafted message on the SIM aborts the process before the caller sees a byte of it. Reading the
 * listing here gives the worker the raw PDU first; it checks it (pdu-check.c) and only then hands
 * it to libgammu's decoder (GSM_DecodePDUFrame), so libgammu stays the one that decodes.
 *
 * The chat is the smallest that works with what libgammu leaves behind: echo on (ATE1), verbose
 * results, possibly unsolicited lines in between. A line is read up to CR or LF; empty lines,
 * the echo of our command and unsolicited results are skipped; the answer ends at OK, ERROR,
 * +CMS ERROR or +CME ERROR. Every read is bounded by the command's deadline, every line by the
 * buffer: a modem that floods or hangs costs a timeout, never memory. */
#include "simstore.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "macro.h"
#include "util.h"

/* A listing cannot hold more than the largest memories do; beyond, the rest waits. */
#define SIMSTORE_MAX_ENTRIES 512

void simstore_chat_init(SimChat *c, int fd, uint64_t timeout_usec)
{
	*c = (SimChat){.fd = fd, .timeout_usec = timeout_usec};
}

static int simstore_wait(SimChat *c, short events, uint64_t deadline)
{
	for (;;) {
		struct pollfd p = {.fd = c->fd, .events = events};
		uint64_t now = now_monotonic_usec();
		int r;

		if (now >= deadline)
			return -ETIMEDOUT;
		r = poll(&p, 1, (int)MIN((deadline - now + 999) / 1000, (uint64_t)60000));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			continue;
		if (p.revents & events)
			return 0;
		if (p.revents & (POLLHUP | POLLERR | POLLNVAL))
			return -EIO;
	}
}

static int simstore_write(SimChat *c, const char *cmd, uint64_t deadline)
{
	char line[64];
	size_t n, off = 0;

	n = (size_t)snprintf(line, sizeof(line), "%s\r", cmd);
	if (n >= sizeof(line))
		return -EINVAL;
	while (off < n) {
		ssize_t k;
		int r = simstore_wait(c, POLLOUT, deadline);

		if (r < 0)
			return r;
		k = write(c->fd, line + off, n - off);
		if (k < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (k < 0)
			return -EIO;
		off += (size_t)k;
	}
	return 0;
}

/* The next non-empty line into line (cut at size - 1; *ret_cut says so). Returns its length. */
static int simstore_line(SimChat *c, char *line, size_t size, bool *ret_cut, uint64_t deadline)
{
	size_t len = 0;
	bool cut = false;

	for (;;) {
		while (c->n > 0) {
			char ch = c->buf[0];

			memmove(c->buf, c->buf + 1, --c->n);
			if (ch == '\r' || ch == '\n') {
				if (len == 0 && !cut)
					continue;
				line[len] = 0;
				*ret_cut = cut;
				return (int)len;
			}
			if (len < size - 1)
				line[len++] = ch;
			else
				cut = true;
		}
		int r = simstore_wait(c, POLLIN, deadline);
		ssize_t k;

		if (r < 0)
			return r;
		/* Half the buffer: the other half has room for a line put back. */
		k = read(c->fd, c->buf, sizeof(c->buf) / 2);
		if (k < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (k <= 0)
			return -EIO; /* an error, or end of file: hung up */
		c->n = (size_t)k;
	}
}

static bool simstore_prefix(const char *line, const char *prefix)
{
	return strncasecmp(line, prefix, strlen(prefix)) == 0;
}

/* 0 for OK, -EREMOTEIO for an error result, 1 for any other line. */
static int simstore_final(SimChat *c, const char *line)
{
	if (streq(line, "OK"))
		return 0;
	if (streq(line, "ERROR") || simstore_prefix(line, "+CMS ERROR") ||
	    simstore_prefix(line, "+CME ERROR")) {
		snprintf(c->error, sizeof(c->error), "%s", line);
		return -EREMOTEIO;
	}
	return 1;
}

/* Lines that belong to no answer: our echo, and unsolicited results. */
static bool simstore_noise(SimChat *c, const char *line)
{
	if (simstore_prefix(line, "AT"))
		return true;
	if (simstore_prefix(line, "+CMTI:") || simstore_prefix(line, "+CDSI:")) {
		c->new_messages++;
		return true;
	}
	return false;
}

/* Unsolicited lines that may fall between a +CMGL header and its PDU (which is all hex digits):
 * "^RSSI: 20", "+CREG: 1", "RING". */
static bool simstore_unsolicited(const char *line)
{
	static const char *const words[] = {"RING", "NO CARRIER", "BUSY", "NO ANSWER",
	                                    "NO DIALTONE"};

	if ((line[0] == '+' && !simstore_prefix(line, "+CMGL:")) || line[0] == '^')
		return true;
	for (size_t i = 0; i < ELEMENTSOF(words); i++)
		if (streq(line, words[i]))
			return true;
	return false;
}

/* Sends cmd and reads to the final result, handing the other lines to on_line (may be NULL). */
static int simstore_command(SimChat *c, const char *cmd,
                            int (*on_line)(SimChat *c, const char *line, bool cut,
                                           uint64_t deadline, void *userdata),
                            void *userdata)
{
	uint64_t deadline = now_monotonic_usec() + c->timeout_usec;
	char line[SIMSTORE_HEX_MAX + 64];
	int r;

	c->error[0] = 0;
	r = simstore_write(c, cmd, deadline);
	if (r < 0)
		return r;
	for (;;) {
		bool cut;

		r = simstore_line(c, line, sizeof(line), &cut, deadline);
		if (r < 0)
			return r;
		if (simstore_noise(c, line))
			continue;
		r = simstore_final(c, line);
		if (r <= 0)
			return r;
		if (on_line) {
			r = on_line(c, line, cut, deadline, userdata);
			if (r < 0)
				return r;
		}
	}
}

int simstore_pdu_mode(SimChat *c)
{
	return simstore_command(c, "AT+CMGF=0", NULL, NULL);
}

typedef struct SimStoreCounts {
	unsigned used, total;
} SimStoreCounts;

static int simstore_on_cpms(_unused_ SimChat *c, const char *line, _unused_ bool cut,
                            _unused_ uint64_t deadline, void *userdata)
{
	SimStoreCounts *counts = userdata;
	unsigned used, total;

	if (sscanf(line, "+CPMS: %u,%u", &used, &total) == 2) {
		counts->used = used;
		counts->total = total;
	}
	return 0;
}

int simstore_select(SimChat *c, const char *memory, unsigned *ret_used, unsigned *ret_total)
{
	SimStoreCounts counts = {0};
	char cmd[32];
	int r;

	snprintf(cmd, sizeof(cmd), "AT+CPMS=\"%s\"", memory);
	r = simstore_command(c, cmd, simstore_on_cpms, &counts);
	if (r < 0)
		return r;
	*ret_used = counts.used;
	*ret_total = counts.total;
	return 0;
}

typedef struct SimStoreListing {
	SimStoreEntry *entries;
	size_t n, cap;
} SimStoreListing;

static int simstore_hex(SimStoreEntry *e, const char *hex, bool cut)
{
	size_t n = strlen(hex);

	memcpy(e->hex, hex, MIN(n, (size_t)SIMSTORE_HEX_MAX));
	e->hex[MIN(n, (size_t)SIMSTORE_HEX_MAX)] = 0;
	if (cut || n == 0 || n % 2 || n / 2 > PDU_MAX_LEN)
		return 0;
	for (size_t i = 0; i < n; i += 2) {
		char pair[3] = {hex[i], hex[i + 1], 0}, *end;

		if (!strchr("0123456789abcdefABCDEF", pair[0]) || !pair[0] ||
		    !strchr("0123456789abcdefABCDEF", pair[1]) || !pair[1])
			return 0;
		e->pdu[i / 2] = (uint8_t)strtoul(pair, &end, 16);
	}
	e->len = n / 2;
	e->hex_valid = true;
	return 0;
}

static int simstore_on_cmgl(SimChat *c, const char *line, _unused_ bool cut, uint64_t deadline,
                            void *userdata)
{
	SimStoreListing *l = userdata;
	char pdu[SIMSTORE_HEX_MAX + 64];
	SimStoreEntry *e;
	int index, stat, r;
	bool pdu_cut;

	if (sscanf(line, "+CMGL: %d,%d", &index, &stat) != 2)
		return 0; /* not ours to understand */

	/* The PDU is the next line that is not noise; a final result or the next entry there means
	 * it is missing. */
	do {
		r = simstore_line(c, pdu, sizeof(pdu), &pdu_cut, deadline);
		if (r < 0)
			return r;
	} while (simstore_noise(c, pdu) || simstore_unsolicited(pdu));
	if (simstore_final(c, pdu) <= 0 || simstore_prefix(pdu, "+CMGL:")) {
		/* Put it back: it is the end of the listing, or the next entry. */
		size_t k = strlen(pdu);

		if (k + 2 + c->n <= sizeof(c->buf)) {
			memmove(c->buf + k + 2, c->buf, c->n);
			memcpy(c->buf, pdu, k);
			memcpy(c->buf + k, "\r\n", 2);
			c->n += k + 2;
		}
		pdu[0] = 0;
	}

	if (!pdu[0])
		return 0; /* unreadable this time: left alone, read again at the next scan */
	if (l->n >= SIMSTORE_MAX_ENTRIES)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 8;
		SimStoreEntry *p = realloc(l->entries, cap * sizeof(SimStoreEntry));

		if (!p)
			return -ENOMEM;
		l->entries = p;
		l->cap = cap;
	}
	e = &l->entries[l->n++];
	*e = (SimStoreEntry){.index = index, .stat = stat};
	return simstore_hex(e, pdu, pdu_cut);
}

int simstore_list(SimChat *c, SimStoreEntry **ret, size_t *ret_n)
{
	SimStoreListing l = {0};
	int r;

	r = simstore_command(c, "AT+CMGL=4", simstore_on_cmgl, &l);
	if (r < 0) {
		free(l.entries);
		return r;
	}
	*ret = l.entries;
	*ret_n = l.n;
	return 0;
}

int simstore_delete(SimChat *c, int index)
{
	char cmd[32];

	snprintf(cmd, sizeof(cmd), "AT+CMGD=%d", index);
	return simstore_command(c, cmd, NULL, NULL);
}
