/* devwatch: inotify on the directories where a modem's port can appear.
 *
 * A USB modem that resets comes back within seconds, and an SMS gateway should be sending again
 * as soon as it can talk to it; polling the device node on a timer either wastes wakeups or adds
 * its period to every recovery. devtmpfs and udev announce a new node (and its permission change,
 * and the /dev/serial/by-id symlink) in the directory holding it, so the worker sleeps in poll()
 * on an inotify fd beside its job queue and wakes when a name it cares about shows up.
 *
 * /dev/serial/by-id does not exist until the first USB serial port does; a watch on a missing
 * directory is therefore placed on its nearest existing parent, watching for the next path
 * component, and moved down when that appears. A watched directory that is removed gets the same
 * treatment. */
#include "devwatch.h"

#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "macro.h"

#define DEVWATCH_MAX_DIRS     8
#define DEVWATCH_MAX_PATTERNS 8
#define DEVWATCH_MASK                                                                              \
	(IN_CREATE | IN_ATTRIB | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF |        \
	 IN_MOVE_SELF | IN_ONLYDIR)

typedef struct DevWatchDir {
	char *dir;
	char *patterns[DEVWATCH_MAX_PATTERNS];
	unsigned n_patterns;
	int wd; /* on dir itself, or on an ancestor while dir is missing; -1 none */
	bool on_ancestor;
	char *awaited; /* with on_ancestor: the component of dir to wait for there */
} DevWatchDir;

struct DevWatch {
	int fd;
	DevWatchDir dirs[DEVWATCH_MAX_DIRS];
	unsigned n_dirs;
};

int devwatch_new(DevWatch **ret)
{
	DevWatch *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0) {
		int r = -errno;

		free(w);
		return r;
	}
	*ret = w;
	return 0;
}

DevWatch *devwatch_free(DevWatch *w)
{
	if (!w)
		return NULL;
	for (unsigned i = 0; i < w->n_dirs; i++) {
		free(w->dirs[i].dir);
		free(w->dirs[i].awaited);
		for (unsigned j = 0; j < w->dirs[i].n_patterns; j++)
			free(w->dirs[i].patterns[j]);
	}
	close(w->fd);
	free(w);
	return NULL;
}

int devwatch_fd(const DevWatch *w)
{
	return w->fd;
}

/* Places d's watch on d->dir, or on its deepest existing ancestor. inotify_add_watch() on a path
 * already watched returns the same descriptor, so re-arming costs nothing; a watch left on an
 * ancestor that nothing refers to any more only produces events that match no entry. */
static void devwatch_arm(DevWatch *w, DevWatchDir *d)
{
	char path[PATH_MAX];

	free(d->awaited);
	d->awaited = NULL;
	d->on_ancestor = false;
	d->wd = -1;

	snprintf(path, sizeof(path), "%s", d->dir);
	for (;;) {
		char *slash;

		d->wd = inotify_add_watch(w->fd, path, DEVWATCH_MASK);
		if (d->wd >= 0 || (errno != ENOENT && errno != ENOTDIR))
			return;
		slash = strrchr(path, '/');
		if (!slash || slash[1] == 0)
			return;
		free(d->awaited);
		d->awaited = strdup(slash + 1);
		if (!d->awaited)
			return;
		d->on_ancestor = true;
		if (slash == path)
			path[1] = 0;
		else
			*slash = 0;
	}
}

int devwatch_add(DevWatch *w, const char *dir, const char *const *patterns, unsigned n_patterns)
{
	DevWatchDir *d;

	if (w->n_dirs >= DEVWATCH_MAX_DIRS || n_patterns > DEVWATCH_MAX_PATTERNS)
		return -E2BIG;
	d = &w->dirs[w->n_dirs];
	*d = (DevWatchDir){.wd = -1};
	d->dir = strdup(dir);
	if (!d->dir)
		return -ENOMEM;
	for (unsigned i = 0; i < n_patterns; i++) {
		d->patterns[i] = strdup(patterns[i]);
		if (!d->patterns[i]) {
			for (unsigned j = 0; j < i; j++)
				free(d->patterns[j]);
			free(d->dir);
			return -ENOMEM;
		}
	}
	d->n_patterns = n_patterns;
	w->n_dirs++;
	devwatch_arm(w, d);
	return 0;
}

static bool devwatch_matches(const DevWatchDir *d, const char *name)
{
	if (d->on_ancestor)
		return d->awaited && streq(d->awaited, name);
	for (unsigned i = 0; i < d->n_patterns; i++)
		if (fnmatch(d->patterns[i], name, 0) == 0)
			return true;
	return false;
}

int devwatch_process(DevWatch *w)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	int what = 0;
	bool rearm = false;

	for (;;) {
		ssize_t n = read(w->fd, buf, sizeof(buf));

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			return -errno;
		}
		if (n == 0)
			break;
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;

			p += sizeof(*ev) + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				what |= DEVWATCH_APPEARED |
				        DEVWATCH_GONE; /* anything may have happened */
				rearm = true;
				continue;
			}
			for (unsigned i = 0; i < w->n_dirs; i++) {
				DevWatchDir *d = &w->dirs[i];

				if (d->wd != ev->wd)
					continue;
				if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
					rearm = true;
					continue;
				}
				if (ev->len == 0 || !devwatch_matches(d, ev->name))
					continue;
				if (d->on_ancestor) {
					what |= DEVWATCH_APPEARED; /* the directory is back */
					rearm = true;
				} else if (ev->mask & (IN_CREATE | IN_ATTRIB | IN_MOVED_TO))
					what |= DEVWATCH_APPEARED;
				else
					what |= DEVWATCH_GONE;
			}
		}
	}
	if (rearm)
		for (unsigned i = 0; i < w->n_dirs; i++)
			devwatch_arm(w, &w->dirs[i]);
	return what;
}
