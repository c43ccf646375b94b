/* probe: which modem sits behind which port.
 *
 * USB modems renumber: a reset or a replug turns ttyUSB0 into ttyUSB3, and a hub brings its ports
 * up in any order. The IMEI is the one name that stays with the modem, so a Modem configured with
 * one asks each candidate port for it. libgammu could ask too, but its initialisation costs ~4 s
 * per port and waits tens of seconds on a port that does not speak AT (the diagnostic and GPS
 * ports of the same stick); a raw AT+CGSN answers in milliseconds and gives up after a second.
 * The answer is checked again through libgammu once connected, so this probe only has to be
 * right when it says yes.
 *
 * Probing writes to a port, so it is done only on ports that no Modem of this process holds
 * (ports.h): the caller claims the port first and releases it when the answer is no. */
#include "probe.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "macro.h"
#include "util.h"

bool probe_imei_is_valid(const char *imei)
{
	size_t n;

	if (!imei)
		return false;
	n = strlen(imei);
	return n >= 14 && n <= 17 && strspn(imei, "0123456789") == n;
}

static int probe_add(char **paths, char **reals, int n, const char *path)
{
	char *real;

	if (n >= PROBE_MAX_CANDIDATES)
		return n;
	real = realpath(path, NULL);
	if (!real)
		return n; /* gone, or a dangling link */
	for (int i = 0; i < n; i++)
		if (streq(reals[i], real)) {
			free(real);
			return n;
		}
	paths[n] = strdup(path);
	if (!paths[n]) {
		free(real);
		return -ENOMEM;
	}
	reals[n] = real;
	return n + 1;
}

/* ttyUSB<n> or ttyACM<n>, nothing else (not a udev or editor's temporary name beside it). */
static bool probe_is_serial_name(const char *name)
{
	if (strncmp(name, "ttyUSB", 6) != 0 && strncmp(name, "ttyACM", 6) != 0)
		return false;
	name += 6;
	return *name && strspn(name, "0123456789") == strlen(name);
}

static int probe_filter_serial(const struct dirent *de)
{
	return probe_is_serial_name(de->d_name);
}

static int probe_filter_any(const struct dirent *de)
{
	return de->d_name[0] != '.';
}

/* Adds the entries of dir that filter accepts, in version order (ttyUSB2 before ttyUSB10). */
static int probe_add_dir(char **paths, char **reals, int n, const char *dir,
                         int (*filter)(const struct dirent *))
{
	struct dirent **list = NULL;
	int k = scandir(dir, &list, filter, versionsort);

	for (int i = 0; i < k; i++) {
		char path[PATH_MAX];

		if (n >= 0 &&
		    snprintf(path, sizeof(path), "%s/%s", dir, list[i]->d_name) < (int)sizeof(path))
			n = probe_add(paths, reals, n, path);
		free(list[i]);
	}
	free(list);
	return n;
}

int probe_candidates(const char *configured, char ***ret)
{
	char *reals[PROBE_MAX_CANDIDATES] = {0};
	char **paths;
	char dir[PATH_MAX];
	const char *slash;
	int n = 0;

	paths = calloc(PROBE_MAX_CANDIDATES, sizeof(char *));
	if (!paths)
		return -ENOMEM;

	n = probe_add(paths, reals, n, configured);
	if (n >= 0)
		n = probe_add_dir(paths, reals, n, "/dev/serial/by-id", probe_filter_any);
	slash = strrchr(configured, '/');
	if (n >= 0 && slash && (size_t)(slash - configured) < sizeof(dir)) {
		memcpy(dir, configured, (size_t)(slash - configured));
		dir[slash - configured] = 0;
		if (dir[0] && !streq(dir, "/dev"))
			n = probe_add_dir(paths, reals, n, dir, probe_filter_serial);
	}
	if (n >= 0)
		n = probe_add_dir(paths, reals, n, "/dev", probe_filter_serial);

	for (int i = 0; i < PROBE_MAX_CANDIDATES; i++)
		free(reals[i]);
	if (n < 0) {
		probe_candidates_free(paths, PROBE_MAX_CANDIDATES);
		return n;
	}
	*ret = paths;
	return n;
}

void probe_candidates_free(char **paths, int n)
{
	if (!paths)
		return;
	for (int i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
}

/* An IMEI line: "356938035643809", "+CGSN: 356938035643809" or with quotes. */
static bool probe_parse_line(const char *line, char *ret, size_t size)
{
	const char *p = line, *colon = strchr(line, ':');
	char digits[32];
	size_t n = 0;

	if (colon)
		p = colon + 1;
	for (; *p; p++) {
		if (*p == ' ' || *p == '"')
			continue;
		if (*p < '0' || *p > '9' || n >= sizeof(digits) - 1)
			return false;
		digits[n++] = *p;
	}
	digits[n] = 0;
	if (!probe_imei_is_valid(digits) || n >= size)
		return false;
	memcpy(ret, digits, n + 1);
	return true;
}

typedef enum ProbeAnswer {
	PROBE_NOTHING, /* not a byte */
	PROBE_SILENT,  /* bytes, but no final result */
	PROBE_IMEI,
	PROBE_REFUSED, /* ERROR */
	PROBE_NO_IMEI, /* OK without an IMEI line */
} ProbeAnswer;

static ProbeAnswer probe_ask(int fd, const char *command, uint64_t deadline, char *ret, size_t size)
{
	char buf[1024], line[256];
	size_t len = 0, line_len = 0;
	bool got_bytes = false, found = false;

	if (write(fd, command, strlen(command)) < 0)
		return PROBE_NOTHING;

	for (;;) {
		uint64_t now = now_monotonic_usec();
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t k;

		if (now >= deadline)
			break;
		if (poll(&p, 1, (int)((deadline - now + 999) / 1000)) <= 0)
			continue;
		if (p.revents & (POLLHUP | POLLERR | POLLNVAL))
			break;
		k = read(fd, buf, sizeof(buf));
		if (k <= 0)
			break;
		got_bytes = true;
		len = (size_t)k;
		for (size_t i = 0; i < len; i++) {
			char c = buf[i];

			if (c != '\r' && c != '\n') {
				if (line_len < sizeof(line) - 1)
					line[line_len++] = c;
				continue;
			}
			line[line_len] = 0;
			line_len = 0;
			if (!found && probe_parse_line(line, ret, size))
				found = true;
			else if (streq(line, "OK"))
				return found ? PROBE_IMEI : PROBE_NO_IMEI;
			else if (streq(line, "ERROR") || strncmp(line, "+CME ERROR", 10) == 0)
				return found ? PROBE_IMEI : PROBE_REFUSED;
		}
	}
	if (found)
		return PROBE_IMEI;
	return got_bytes ? PROBE_SILENT : PROBE_NOTHING;
}

int probe_imei(const char *path, uint64_t timeout_usec, char *ret_imei, size_t size)
{
	_cleanup_close_ int fd = -1;
	uint64_t deadline = now_monotonic_usec() + timeout_usec;
	char imei[32];
	struct termios t;
	ProbeAnswer a;

	fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (tcgetattr(fd, &t) == 0) {
		cfmakeraw(&t);
		t.c_cflag |= CLOCAL | CREAD;
		cfsetispeed(&t, B115200);
		cfsetospeed(&t, B115200);
		(void)tcsetattr(fd, TCSANOW, &t);
	}
	(void)tcflush(fd, TCIOFLUSH);

	/* ESC leaves an SMS prompt a previous client may have left open; the CR ends any junk. */
	a = probe_ask(fd, "\x1b\rAT+CGSN\r", deadline, imei, sizeof(imei));
	if (a == PROBE_REFUSED)
		a = probe_ask(fd, "AT+GSN\r", deadline, imei, sizeof(imei));
	if (a != PROBE_IMEI)
		return a == PROBE_NO_IMEI || a == PROBE_REFUSED ? -ENOMSG : -ETIMEDOUT;
	if (strlen(imei) >= size)
		return -ENOBUFS;
	memcpy(ret_imei, imei, strlen(imei) + 1);
	return 0;
}
