/* ports: a list of the ports this process's modems hold, behind one mutex.
 *
 * It is tiny (one entry per modem) and touched only when a worker connects, probes or disconnects,
 * so a linked list under a global lock is all it needs. The list is keyed by the resolved path:
 * two names for one tty must collide, or a by-id symlink would let a probe walk into a port in use
 * under its ttyUSB name. */
#include "ports.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

typedef struct Port {
	struct Port *next;
	char *realpath;
	char *owner;
	bool probe;
} Port;

static pthread_mutex_t ports_lock = PTHREAD_MUTEX_INITIALIZER;
static Port *ports_head;

int ports_claim(const char *path, const char *owner, bool probe, char **ret_realpath,
                char *busy_owner, size_t busy_size)
{
	_cleanup_free_ char *real = NULL;
	Port *p;
	int r = 0;

	if (!path || !owner || !ret_realpath)
		return -EINVAL;
	real = realpath(path, NULL);
	if (!real)
		return errno == ENOMEM ? -ENOMEM : -(errno ? errno : ENOENT);

	pthread_mutex_lock(&ports_lock);
	for (p = ports_head; p; p = p->next)
		if (streq(p->realpath, real)) {
			if (busy_owner && busy_size > 0)
				snprintf(busy_owner, busy_size, "%s", p->owner);
			r = p->probe ? -EAGAIN : -EBUSY;
			goto out;
		}
	p = calloc(1, sizeof(*p));
	if (!p) {
		r = -ENOMEM;
		goto out;
	}
	p->realpath = strdup(real);
	p->owner = strdup(owner);
	if (!p->realpath || !p->owner) {
		free(p->realpath);
		free(p->owner);
		free(p);
		r = -ENOMEM;
		goto out;
	}
	p->probe = probe;
	p->next = ports_head;
	ports_head = p;
	*ret_realpath = TAKE_PTR(real);
out:
	pthread_mutex_unlock(&ports_lock);
	return r;
}

void ports_keep(const char *realpath)
{
	pthread_mutex_lock(&ports_lock);
	for (Port *p = ports_head; p; p = p->next)
		if (streq(p->realpath, realpath))
			p->probe = false;
	pthread_mutex_unlock(&ports_lock);
}

char *ports_release(char *realpath)
{
	if (!realpath)
		return NULL;
	pthread_mutex_lock(&ports_lock);
	for (Port **pp = &ports_head; *pp; pp = &(*pp)->next)
		if (streq((*pp)->realpath, realpath)) {
			Port *p = *pp;

			*pp = p->next;
			free(p->realpath);
			free(p->owner);
			free(p);
			break;
		}
	pthread_mutex_unlock(&ports_lock);
	free(realpath);
	return NULL;
}
