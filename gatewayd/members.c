/* members: the cluster's nodes as this node knows them, and deterministic ownership. */
#include "members.h"

#include <stdio.h>
#include <string.h>

#include "macro.h"

void members_init(Members *m, const char *self_name)
{
	MemberNode *n;

	*m = (Members){0};
	n = members_get(m, self_name, true);
	if (n) {
		n->self = true;
		n->in_view = true;
		n->announced = true;
	}
}

void members_done(Members *m)
{
	for (size_t i = 0; i < m->n; i++)
		json_decref(m->nodes[i].modems);
	*m = (Members){0};
}

MemberNode *members_self(Members *m)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->nodes[i].self)
			return &m->nodes[i];
	return NULL;
}

MemberNode *members_get(Members *m, const char *name, bool create)
{
	MemberNode *n;

	for (size_t i = 0; i < m->n; i++)
		if (streq(m->nodes[i].name, name))
			return &m->nodes[i];
	if (!create || m->n >= MEMBERS_MAX || !*name || strlen(name) > MEMBER_NAME_MAX)
		return NULL;
	n = &m->nodes[m->n++];
	*n = (MemberNode){0};
	snprintf(n->name, sizeof(n->name), "%s", name);
	return n;
}

MemberNode *members_by_nodeid(Members *m, uint32_t nodeid)
{
	if (nodeid == 0)
		return NULL;
	for (size_t i = 0; i < m->n; i++)
		if (m->nodes[i].nodeid == nodeid)
			return &m->nodes[i];
	return NULL;
}

void members_set_view(Members *m, const uint32_t *nodeids, size_t n)
{
	for (size_t i = 0; i < m->n; i++) {
		MemberNode *node = &m->nodes[i];
		bool in = false;

		if (node->self)
			continue;
		for (size_t j = 0; j < n && node->nodeid; j++)
			in |= nodeids[j] == node->nodeid;
		if (!in)
			node->announced = false;
		node->in_view = in;
	}
}

bool members_eligible(const Members *m, const MemberNode *n, bool grace)
{
	if (n->self)
		return n->usable_modems > 0;
	if (n->in_view)
		return n->announced && n->usable_modems > 0;
	return grace && n->remembered;
}

size_t members_count_eligible(const Members *m, bool grace)
{
	size_t count = 0;

	for (size_t i = 0; i < m->n; i++)
		count += members_eligible(m, &m->nodes[i], grace);
	return count;
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
	return h;
}

static void insert_sorted(const MemberNode **v, size_t *n, const MemberNode *node)
{
	size_t j;

	for (j = *n; j > 0 && strcmp(v[j - 1]->name, node->name) > 0; j--)
		v[j] = v[j - 1];
	v[j] = node;
	(*n)++;
}

const char *members_dialer(const Members *m, const char *alert_id, const char *number,
                           bool self_can_dial)
{
	const MemberNode *v[MEMBERS_MAX];
	size_t n = 0;

	for (size_t i = 0; i < m->n; i++) {
		const MemberNode *node = &m->nodes[i];

		if (node->self ? self_can_dial : node->in_view && node->announced && node->voice)
			insert_sorted(v, &n, node);
	}
	if (n == 0)
		return NULL;
	return v[fnv1a(fnv1a(0xcbf29ce484222325ULL, alert_id), number) % n]->name;
}

/* With `weighted`, each node counts as many times as it has usable modems (at least once). */
static const char *pick(const Members *m, const char *alert_id, const char *number,
                        const char *last_node, bool grace, bool weighted)
{
	const MemberNode *eligible[MEMBERS_MAX];
	size_t n = 0, keep = 0;
	uint64_t h, total = 0;

	/* In name order, so that every node numbers the candidates the same way. */
	for (size_t i = 0; i < m->n; i++) {
		if (members_eligible(m, &m->nodes[i], grace))
			insert_sorted(eligible, &n, &m->nodes[i]);
	}
	if (n == 0)
		return NULL;
	/* After a failure, another node's modems get the next try. */
	if (n > 1 && last_node && *last_node) {
		for (size_t i = 0; i < n; i++)
			if (!streq(eligible[i]->name, last_node))
				eligible[keep++] = eligible[i];
		if (keep > 0)
			n = keep;
	}
	h = fnv1a(fnv1a(0xcbf29ce484222325ULL, alert_id), number);
	if (!weighted)
		return eligible[h % n]->name;
	for (size_t i = 0; i < n; i++)
		total += MAX(eligible[i]->usable_modems, 1u);
	h %= total;
	for (size_t i = 0; i < n; i++) {
		uint64_t w = MAX(eligible[i]->usable_modems, 1u);

		if (h < w)
			return eligible[i]->name;
		h -= w;
	}
	return eligible[n - 1]->name; /* not reached */
}

const char *members_owner(const Members *m, const char *alert_id, const char *number,
                          const char *last_node, bool grace)
{
	return pick(m, alert_id, number, last_node, grace, false);
}

const char *members_sender(const Members *m, const char *alert_id, const char *number,
                           const char *last_node, bool grace)
{
	return pick(m, alert_id, number, last_node, grace, true);
}
