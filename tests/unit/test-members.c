/* Unit tests of members: who sends a delivery, as both nodes must compute it alike. */
#include "members.h"
#include "test.h"

/* Node "a" (self) and node "b" (nodeid 2) in the view, both with a usable modem. */
static void two_nodes(Members *m, const char *self)
{
	const char *other = strcmp(self, "a") == 0 ? "b" : "a";
	uint32_t view[] = {1, 2};
	MemberNode *n;

	members_init(m, self);
	members_self(m)->nodeid = strcmp(self, "a") == 0 ? 1 : 2;
	members_self(m)->usable_modems = 1;
	n = members_get(m, other, true);
	n->nodeid = strcmp(other, "a") == 0 ? 1 : 2;
	members_set_view(m, view, 2);
	n->announced = true;
	n->remembered = true;
	n->usable_modems = 1;
}

static void test_same_answer_on_both_nodes(void)
{
	Members a, b;
	unsigned to_a = 0, to_b = 0;
	char id[33];

	two_nodes(&a, "a");
	two_nodes(&b, "b");
	for (int i = 0; i < 1000; i++) {
		const char *oa, *ob;

		snprintf(id, sizeof(id), "%032x", i * 2654435761u);
		oa = members_owner(&a, id, "+32470000001", "", false);
		ob = members_owner(&b, id, "+32470000001", "", false);
		check(oa && ob && strcmp(oa, ob) == 0);
		if (oa && strcmp(oa, "a") == 0)
			to_a++;
		else
			to_b++;
	}
	/* Spread over both nodes' modems. */
	check(to_a > 400 && to_b > 400);
	members_done(&a);
	members_done(&b);
}

/* A node with three usable modems sends three times as many deliveries as one with one; with
 * one modem each, the sender is the owner. */
static void test_weighted_by_modems(void)
{
	Members m;
	unsigned to_a = 0;
	char id[33];

	two_nodes(&m, "a");
	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "%032x", i * 2654435761u);
		check_str(members_sender(&m, id, "+32470000001", "", false),
		          members_owner(&m, id, "+32470000001", "", false));
	}
	members_self(&m)->usable_modems = 3;
	for (int i = 0; i < 4000; i++) {
		const char *o;

		snprintf(id, sizeof(id), "%032x", i * 2654435761u);
		o = members_sender(&m, id, "+32470000001", "", false);
		check(o != NULL);
		to_a += o && strcmp(o, "a") == 0;
	}
	check(to_a > 2800 && to_a < 3200);
	/* after a failure on a, b still takes the next try */
	check_str(members_sender(&m, "00000000000000000000000000000001", "+3247", "a", false), "b");
	members_done(&m);
}

static void test_failover(void)
{
	Members m;
	uint32_t alone[] = {1};
	MemberNode *b;

	two_nodes(&m, "a");
	b = members_get(&m, "b", false);
	/* After a failure on b, a takes the next try; and the other way round. */
	check_str(members_owner(&m, "00000000000000000000000000000001", "+3247", "b", false), "a");
	check_str(members_owner(&m, "00000000000000000000000000000001", "+3247", "a", false), "b");
	/* b's modems are down: everything is a's. */
	b->usable_modems = 0;
	check_int(members_count_eligible(&m, false), 1);
	check_str(members_owner(&m, "00000000000000000000000000000002", "+3247", "", false), "a");
	/* a's too: nobody can send. */
	members_self(&m)->usable_modems = 0;
	check(members_owner(&m, "00000000000000000000000000000002", "+3247", "", false) == NULL);
	members_self(&m)->usable_modems = 1;
	b->usable_modems = 1;

	/* b left the view: it lost its announcement; within the grace it keeps its share. */
	members_set_view(&m, alone, 1);
	check(!b->in_view && !b->announced);
	check_int(members_count_eligible(&m, false), 1);
	check_int(members_count_eligible(&m, true), 2);
	for (int i = 0; i < 50; i++) {
		char id[33];

		snprintf(id, sizeof(id), "%032d", i);
		check_str(members_owner(&m, id, "+3247", "", false), "a");
	}
	/* Back in the view, b is eligible only after its hello. */
	uint32_t both[] = {1, 2};
	members_set_view(&m, both, 2);
	check(b->in_view && !b->announced);
	check_int(members_count_eligible(&m, false), 1);
	members_done(&m);
}

static void test_names(void)
{
	Members m;

	members_init(&m, "a");
	check(members_get(&m, "", true) == NULL);
	check(members_get(&m, "0123456789012345678901234567890123", true) == NULL);
	for (int i = 0; i < MEMBERS_MAX + 3; i++) {
		char name[8];

		snprintf(name, sizeof(name), "n%d", i);
		members_get(&m, name, true);
	}
	check_int(m.n, MEMBERS_MAX);
	check(members_by_nodeid(&m, 0) == NULL);
	members_done(&m);
}

int main(void)
{
	run(test_same_answer_on_both_nodes);
	run(test_weighted_by_modems);
	run(test_failover);
	run(test_names);
	return test_exit();
}
