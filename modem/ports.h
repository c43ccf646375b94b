/* ports: the serial ports this process has open for its modems. Internal to modem/.
 *
 * A process-wide registry, so that a Modem looking for its modem by IMEI never probes a port that
 * another Modem is using. Ports are named by their resolved path (realpath()), so a symlink
 * (/dev/serial/by-id/..., a simulator's link) and its target are the same port. Any thread may
 * call these. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Claims the port path leads to for owner (a modem name, copied), to use it or only to probe it.
 * Returns 0 with *ret_realpath set (malloc'd; hand it to ports_release()), -EBUSY when another
 * owner uses it, -EAGAIN when another owner is probing it (it will be free again in a moment),
 * with that owner's name copied to busy_owner (if given, busy_size bytes); -ENOENT and other
 * -errno when the path cannot be resolved, -ENOMEM. */
int ports_claim(const char *path, const char *owner, bool probe, char **ret_realpath,
                char *busy_owner, size_t busy_size);
/* A port claimed to probe it is now used. */
void ports_keep(const char *realpath);
/* Releases a port claimed by ports_claim() and frees realpath. Accepts NULL; returns NULL. */
char *ports_release(char *realpath);
