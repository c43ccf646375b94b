/* decodemark: the second line of defence behind pdu-check.c.
 *
 * pdu_check() holds received PDUs to the limits that libgammu's decoder is known to need; if a
 * PDU finds another way to crash that decoder, the process dies with the message still on the
 * SIM, and every restart would read and decode it again: a crash loop that systemd ends by
 * giving up on the service. So the worker writes down which slot it is decoding, in a file that
 * survives the crash, and a worker that starts and finds a slot written down quarantines that
 * message (reported as raw hex, deleted once stored) instead of decoding it.
 *
 * The note is one line, "<memory> <index> <hex>", in <state_dir>/decoding-<modem>. Comparing the
 * PDU too means that a different message that later landed in the same slot is not punished. */
#include "decodemark.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "macro.h"
#include "simstore.h"

struct DecodeMark {
	int fd;
	bool filled; /* the file holds a note */
	bool poisoned;
	char memory[8];
	int index;
	char hex[SIMSTORE_HEX_MAX + 1];
	char path[PATH_MAX];
};

int decodemark_open(const char *state_dir, const char *name, DecodeMark **ret)
{
	char line[SIMSTORE_HEX_MAX + 64];
	DecodeMark *d;
	ssize_t n;
	int len;

	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	len = snprintf(d->path, sizeof(d->path), "%s/decoding-%s", state_dir, name);
	if (len < 0 || (size_t)len >= sizeof(d->path)) {
		free(d);
		return -ENAMETOOLONG;
	}
	for (char *p = d->path + strlen(state_dir) + 1; *p; p++)
		if (*p == '/')
			*p = '_';
	d->fd = open(d->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (d->fd < 0) {
		int r = -errno;

		free(d);
		return r;
	}
	n = pread(d->fd, line, sizeof(line) - 1, 0);
	if (n > 0) {
		line[n] = 0;
		d->filled = true;
		if (sscanf(line, "%7s %d %400s", d->memory, &d->index, d->hex) == 3)
			d->poisoned = true;
	}
	*ret = d;
	return 0;
}

DecodeMark *decodemark_free(DecodeMark *d)
{
	if (d) {
		if (d->fd >= 0)
			close(d->fd);
		free(d);
	}
	return NULL;
}

const char *decodemark_path(const DecodeMark *d)
{
	return d->path;
}

bool decodemark_poisoned(const DecodeMark *d)
{
	return d && d->poisoned;
}

bool decodemark_is_poison(const DecodeMark *d, const char *memory, int index, const char *hex)
{
	return decodemark_poisoned(d) && streq(d->memory, memory) && d->index == index &&
	       streq(d->hex, hex);
}

void decodemark_forget_poison(DecodeMark *d)
{
	if (d)
		d->poisoned = false;
}

int decodemark_begin(DecodeMark *d, const char *memory, int index, const char *hex)
{
	char line[SIMSTORE_HEX_MAX + 64];
	int n;

	if (!d)
		return 0;
	n = snprintf(line, sizeof(line), "%s %d %s\n", memory, index, hex);
	if (n < 0 || (size_t)n >= sizeof(line))
		return -EINVAL;
	/* Never over a poisoned note: it must stay until its message is gone. */
	if (d->poisoned)
		return -EBUSY;
	if (ftruncate(d->fd, 0) < 0 || pwrite(d->fd, line, (size_t)n, 0) != n ||
	    fdatasync(d->fd) < 0)
		return -errno ? -errno : -EIO;
	d->filled = true;
	return 0;
}

int decodemark_end(DecodeMark *d)
{
	if (!d || !d->filled || d->poisoned)
		return 0;
	if (ftruncate(d->fd, 0) < 0 || fdatasync(d->fd) < 0)
		return -errno;
	d->filled = false;
	return 0;
}
