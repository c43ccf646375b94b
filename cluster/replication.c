/* replication: the backend-independent part, and the loopback (solo) backend.
 *
 * Loopback keeps published payloads in a FIFO and delivers them from a defer event source, i.e.
 * on the next turn of the event loop and never from inside publish(). Delivering later rather than
 * at once keeps the gateway honest: code that works in solo mode cannot rely on a change being
 * applied before publish() returns, which is exactly what the corosync backend cannot offer. */
#include "replication.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "macro.h"

#define LOOPBACK_MAX_BACKLOG 65536

typedef struct Payload {
	struct Payload *next;
	size_t len;
	uint8_t data[];
} Payload;

struct Replication {
	sd_event *event;
	sd_event_source *defer;
	uint32_t nodeid;
	ReplicationCallbacks cb;
	void *userdata;
	Payload *head, *tail;
	size_t backlog;
	int clustered;
};

static int loopback_dispatch(sd_event_source *s, void *userdata)
{
	Replication *r = userdata;
	/* Deliver only what was queued before this turn, so that payloads published by the
	 * callbacks wait for the next turn (they form the next group commit). */
	size_t n = r->backlog;

	while (n-- > 0 && r->head) {
		Payload *p = r->head;

		r->head = p->next;
		if (!r->head)
			r->tail = NULL;
		r->backlog--;
		r->cb.deliver(r->userdata, r->nodeid, p->data, p->len);
		free(p);
	}
	if (!r->head)
		sd_event_source_set_enabled(r->defer, SD_EVENT_OFF);
	return 0;
}

static int loopback_announce(sd_event_source *s, void *userdata)
{
	Replication *r = userdata;
	ReplicationMember self = {.nodeid = r->nodeid};

	if (r->cb.view)
		r->cb.view(r->userdata, &self, 1);
	return 0;
}

int replication_new_loopback(sd_event *event, uint32_t nodeid, const ReplicationCallbacks *cb,
			     void *userdata, Replication **ret)
{
	Replication *r;
	int rc;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->event = sd_event_ref(event);
	r->nodeid = nodeid;
	r->cb = *cb;
	r->userdata = userdata;

	rc = sd_event_add_defer(event, &r->defer, loopback_dispatch, r);
	if (rc < 0)
		goto fail;
	sd_event_source_set_enabled(r->defer, SD_EVENT_OFF);
	sd_event_source_set_description(r->defer, "replication-loopback");
	/* The first view, like a cluster's first configuration change, arrives from the loop. */
	rc = sd_event_add_defer(event, NULL, loopback_announce, r);
	if (rc < 0)
		goto fail;

	*ret = r;
	return 0;
fail:
	replication_free(r);
	return rc;
}

Replication *replication_free(Replication *r)
{
	if (!r)
		return NULL;
	while (r->head) {
		Payload *p = r->head;
		r->head = p->next;
		free(p);
	}
	sd_event_source_disable_unref(r->defer);
	sd_event_unref(r->event);
	free(r);
	return NULL;
}

int replication_publish(Replication *r, const void *data, size_t len)
{
	Payload *p;

	if (r->backlog >= LOOPBACK_MAX_BACKLOG)
		return -ENOBUFS;
	p = malloc(sizeof(*p) + len);
	if (!p)
		return -ENOMEM;
	p->next = NULL;
	p->len = len;
	memcpy(p->data, data, len);
	if (r->tail)
		r->tail->next = p;
	else
		r->head = p;
	r->tail = p;
	r->backlog++;
	sd_event_source_set_enabled(r->defer, SD_EVENT_ONESHOT);
	return 0;
}

uint32_t replication_nodeid(const Replication *r)
{
	return r->nodeid;
}

int replication_is_clustered(const Replication *r)
{
	return r->clustered;
}
