/* fuzz-config: the config parser (gatewayd/config*.c, INI through inih) on arbitrary file
 * contents. The bytes go into a memfd that config_load() opens by its /proc path, as it would
 * open /etc/gatewayd/gatewayd.conf. The parser must either return a complete Config, or fail
 * with exactly one message of the form "file:line: reason" whose line is one of the file's. A
 * Config it returns is then used as start-up would: fingerprint, lookups, rotations. */
#include "config.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int memfd = -1;
static char path[64];

static void check_error(const char *error, const uint8_t *data, size_t size)
{
	size_t lines = 1, n = strlen(path);
	char *end;
	unsigned long line;

	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	assert(error);
	assert(strncmp(error, path, n) == 0 && error[n] == ':');
	line = strtoul(error + n + 1, &end, 10);
	assert(end > error + n + 1 && end[0] == ':' && end[1] == ' ' && end[2]);
	assert(line >= 1 && line <= lines);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Config *c = NULL;
	char *error = NULL;
	int r;

	if (memfd < 0) {
		log_set_max_level(LOG_CRIT);
		memfd = memfd_create("gatewayd.conf", MFD_CLOEXEC);
		assert(memfd >= 0);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	}
	if (ftruncate(memfd, 0) < 0 || pwrite(memfd, data, size, 0) != (ssize_t)size)
		abort();

	r = config_load(path, &c, &error);
	if (r < 0) {
		assert(!c);
		check_error(error, data, size);
		free(error);
		return 0;
	}
	assert(c && !error);

	char fingerprint[33];
	uint64_t at = 1767225600ull * 1000000; /* 2026-01-01 */

	config_fingerprint(c, fingerprint);
	assert(strlen(fingerprint) == 32);
	for (size_t i = 0; i < c->n_roles; i++) {
		const RoleConfig *role = &c->roles[i];
		const ContactConfig *on_duty = config_role_on_duty(c, role, at);
		uint64_t next = config_role_next_handoff(role, at);

		assert(config_find_role(c, role->name) == role);
		assert(!on_duty || config_find_contact(c, on_duty->name) == on_duty);
		assert(next == 0 || next > at);
	}
	for (size_t i = 0; i < c->n_modems; i++)
		assert(config_find_modem(c, c->modems[i].name) == &c->modems[i]);
	config_free(c);
	return 0;
}
