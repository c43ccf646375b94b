/* devwatch: noticing at once that a serial port appeared (or changed) in a few directories.
 * Internal to modem/.
 *
 * One DevWatch per worker, used by that worker only. It owns an inotify fd that the worker adds to
 * its poll(); devwatch_process() then says whether an entry of interest was created, moved in,
 * deleted or had its attributes changed (udev fixes permissions after creating a node). */
#pragma once

#include <stdbool.h>

typedef struct DevWatch DevWatch;

/* Watches dir for entries whose name matches one of the fnmatch() patterns (copied; at most 8).
 * A directory that does not exist yet is watched for through its nearest existing parent. May be
 * called for several directories. */
int devwatch_new(DevWatch **ret);
int devwatch_add(DevWatch *w, const char *dir, const char *const *patterns, unsigned n_patterns);
DevWatch *devwatch_free(DevWatch *w);

int devwatch_fd(const DevWatch *w);
enum {
	DEVWATCH_APPEARED = 1 << 0, /* created, moved in, attributes changed; or a directory */
	DEVWATCH_GONE = 1 << 1,     /* deleted or moved away */
};
/* Reads what is pending, without blocking. Returns the DEVWATCH_* that happened to entries
 * matching a pattern (a watched directory appearing counts as APPEARED), 0, or -errno. */
int devwatch_process(DevWatch *w);
