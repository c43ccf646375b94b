/* test-change: the schema of the replicated changes (gatewayd/protocol/change.c), and
 * doc/replication.md printed from it. `test-change --doc` prints the generated part of the
 * document. */
#include "change.h"

#include <errno.h>

#include "macro.h"
#include "test.h"

/* Changes as the nodes send them (this release and the previous one of the same protocol
 * version): each must pass, or two releases would stop understanding each other. */
static const char *const wire[] = {
        "{\"t\":\"submit\",\"id\":\"5f0c6b7e9a1d4c3b8e2f1a0b9c8d7e6f\",\"key\":\"disk-db1\","
        "\"text\":\"db1: disk 95% full\",\"critical\":true,\"ttl\":3600,\"to\":[\"+32470100001\"],"
        "\"copy\":[],\"source\":\"nagios\",\"node\":\"a\",\"at\":1767225600000000,\"escalate\":"
        "true}",
        "{\"t\":\"submit\",\"id\":\"0123456789abcdef0123456789abcdef\",\"key\":\"k\",\"text\":"
        "\"t\","
        "\"critical\":false,\"ttl\":600,\"to\":[\"+32470100001\"],\"copy\":[],\"source\":null,"
        "\"node\":\"b\",\"at\":1767225600000005}",
        "{\"t\":\"assign\",\"id\":\"5f0c6b7e9a1d4c3b8e2f1a0b9c8d7e6f\",\"to\":\"+32470100001\","
        "\"node\":\"a\",\"modem\":\"gsm0\",\"at\":1767225600001000}",
        "{\"t\":\"result\",\"id\":\"5f0c6b7e9a1d4c3b8e2f1a0b9c8d7e6f\",\"to\":\"+32470100001\","
        "\"node\":\"a\",\"modem\":\"gsm0\",\"at\":1767225603000000,\"ok\":true,\"permanent\":false,"
        "\"retry_now\":false,\"error\":null,\"ref\":17}",
        "{\"t\":\"result\",\"id\":\"5f0c6b7e9a1d4c3b8e2f1a0b9c8d7e6f\",\"to\":\"+32470100002\","
        "\"node\":\"a\",\"modem\":\"gsm0\",\"at\":1767225603000000,\"ok\":false,\"permanent\":true,"
        "\"retry_now\":true,\"error\":\"CMS 38: network out of order\"}",
        "{\"t\":\"hold\",\"id\":\"0123456789abcdef0123456789abcdef\",\"to\":\"+32470000001\","
        "\"until\":1767227101000000,\"node\":\"a\",\"at\":1767226201000000}",
        "{\"t\":\"hook\",\"id\":\"0123456789abcdef0123456789abcdef\",\"hook\":\"on_ack\","
        "\"node\":\"a\",\"at\":1767226201000000,\"outcome\":\"ended after 0.2 s: exit status 0\"}",
        "{\"t\":\"heartbeat\",\"name\":\"backup-cron\",\"node\":\"a\",\"at\":1767226201000000}",
        "{\"t\":\"missed\",\"name\":\"backup-cron\",\"due\":1767226201000000,\"node\":\"b\","
        "\"at\":1767226202000000}",
        "{\"t\":\"expire\",\"id\":\"0123456789abcdef0123456789abcdef\",\"at\":1767226201000000}",
        "{\"t\":\"ack\",\"id\":\"5f0c6b7e9a1d4c3b8e2f1a0b9c8d7e6f\",\"by\":\"alice\",\"via\":"
        "\"api\","
        "\"node\":\"a\",\"at\":1767225660000000}",
        "{\"t\":\"resolve\",\"id\":\"5f0c6b7e9a1d4c3b8e2f1a0b9c8d7e6f\",\"by\":\"nagios\","
        "\"via\":\"api\",\"node\":\"b\",\"at\":1767225720000000}",
        "{\"t\":\"silence\",\"id\":\"6a0c6b7e9a1d4c3b8e2f1a0b9c8d7e6f\",\"field\":"
        "\"key_prefix\",\"value\":\"db01/\",\"except_critical\":false,\"until\":"
        "1767232800000000,\"by\":\"alice\",\"reason\":\"disk swap\",\"node\":\"a\","
        "\"at\":1767225600000000}",
        "{\"t\":\"unsilence\",\"id\":\"6a0c6b7e9a1d4c3b8e2f1a0b9c8d7e6f\",\"by\":\"bob\","
        "\"node\":\"b\",\"at\":1767229200000000}",
        /* the previous release's acknowledgments by SMS and voice named no node */
        "{\"t\":\"ack\",\"id\":\"5f0c6b7e9a1d4c3b8e2f1a0b9c8d7e6f\",\"by\":\"+32470100001\","
        "\"via\":\"sms\",\"at\":1767225660000000}",
        "{\"t\":\"escalate\",\"id\":\"5f0c6b7e9a1d4c3b8e2f1a0b9c8d7e6f\",\"step\":1,\"role\":"
        "\"secondary\",\"contact\":\"carol\",\"to\":\"+32470100003\",\"node\":\"a\","
        "\"at\":1767225900000000}",
        "{\"t\":\"sms_in\",\"key\":\"sim-4\",\"node\":\"a\",\"modem\":\"gsm0\",\"from\":"
        "\"+32470100001\",\"text\":\"ACK 4821\",\"parts\":1,\"smsc_at\":1767225659000000,"
        "\"at\":1767225660000000,\"token\":4}",
        "{\"t\":\"report\",\"key\":\"rep-17\",\"node\":\"a\",\"modem\":\"gsm0\",\"ref\":17,"
        "\"delivered\":true,\"permanent\":false,\"status\":\"delivered\",\"at\":1767225609000000,"
        "\"token\":3}",
        "{\"t\":\"sms_quarantined\",\"key\":\"q-1\",\"node\":\"a\",\"modem\":\"gsm0\",\"pdu\":"
        "\"07911326\",\"reason\":\"not decoded\",\"slot\":\"SM 3\",\"at\":1767225600000000,"
        "\"token\":5}",
        "{\"t\":\"call\",\"id\":\"5f0c6b7e9a1d4c3b8e2f1a0b9c8d7e6f\",\"number\":\"+32470100001\","
        "\"node\":\"a\",\"modem\":\"gsm0\",\"at\":1767226000000000,\"outcome\":\"answered\","
        "\"duration\":12,\"error\":null,\"dtmf_ack\":true}",
        "{\"t\":\"override\",\"role\":\"primary\",\"contact\":\"bob\",\"until\":1767312000000000,"
        "\"by\":\"alice\",\"node\":\"a\",\"at\":1767225600000000}",
        "{\"t\":\"override\",\"role\":\"primary\",\"contact\":null,\"until\":0,\"by\":\"bob\","
        "\"node\":\"b\",\"at\":1767225600000010}",
        "{\"t\":\"hello\",\"node\":\"a\",\"nodeid\":1,\"at\":1767225600000000,\"fingerprint\":"
        "\"0123456789abcdef0123456789abcdef\",\"version\":2,\"voice\":false,\"modems\":[]}",
        "{\"t\":\"hello\",\"node\":\"b\",\"nodeid\":2,\"at\":1767225600000000,\"fingerprint\":"
        "\"0123456789abcdef0123456789abcdef\",\"version\":4,\"voice\":true,\"modems\":[],"
        "\"store_id\":4503599627370497}",
        "{\"t\":\"health\",\"node\":\"a\",\"modems\":[{\"name\":\"gsm0\",\"state\":\"ok\"}]}",
        "{\"t\":\"health\",\"node\":\"a\",\"modems\":[],\"store\":\"No space left on device\"}",
        "{\"t\":\"confirm\",\"node\":\"b\",\"origin\":\"a\",\"seq\":12}",
        "{\"t\":\"merge\",\"node\":\"b\",\"round\":1,\"kind\":\"dedupe\",\"items\":[{\"key\":"
        "\"disk-db1\",\"alert_id\":\"5f0c6b7e9a1d4c3b8e2f1a0b9c8d7e6f\",\"first_at\":1}]}",
        "{\"t\":\"synced\",\"node\":\"b\",\"round\":1,\"records\":42}",
        "{\"t\":\"check\",\"node\":\"a\",\"round\":\"3\",\"at\":1767225600000000}",
        "{\"t\":\"digest\",\"node\":\"b\",\"check\":\"a/3\",\"value\":"
        "\"0123456789abcdef0123456789abcdef\",\"open\":2}",
        "{\"t\":\"resync\",\"node\":\"a\"}",
};

static json_t *parse(const char *text)
{
	json_t *c = json_loads(text, 0, NULL);

	if (!c)
		fprintf(stderr, "cannot parse %s\n", text);
	return c;
}

static void test_wire(void)
{
	bool seen[64] = {false};

	check(change_kinds_n <= ELEMENTSOF(seen));
	for (size_t i = 0; i < ELEMENTSOF(wire); i++) {
		json_t *c = parse(wire[i]);
		const ChangeKind *kind = NULL;
		char err[200] = "";

		if (change_check(c, &kind, err, sizeof(err)) < 0)
			fprintf(stderr, "%s: %s\n", wire[i], err);
		check(kind && streq(kind->name, json_string_value(json_object_get(c, "t"))));
		if (kind)
			seen[kind - change_kinds] = true;
		json_decref(c);
	}
	for (size_t i = 0; i < change_kinds_n; i++)
		if (!seen[i]) {
			fprintf(stderr, "no example of '%s' on the wire\n", change_kinds[i].name);
			check(seen[i]);
		}
}

static json_t *value_of(ChangeType type, bool right)
{
	switch (type) {
	case CHANGE_STRING:
	case CHANGE_STRING_OR_NULL:
		return right ? json_string("x") : json_integer(1);
	case CHANGE_INTEGER:
		return right ? json_integer(1) : json_string("1");
	case CHANGE_BOOLEAN:
		return right ? json_true() : json_integer(1);
	case CHANGE_ARRAY:
		return right ? json_array() : json_object();
	}
	return NULL;
}

/* The smallest change of kind k: its required fields only. */
static json_t *minimal(const ChangeKind *k)
{
	json_t *c = json_pack("{s:s}", "t", k->name);

	for (const ChangeField *f = k->fields; f->key; f++)
		if (!f->optional)
			json_object_set_new(c, f->key, value_of(f->type, true));
	return c;
}

static void test_minimal(void)
{
	for (size_t i = 0; i < change_kinds_n; i++) {
		json_t *c = minimal(&change_kinds[i]);
		const ChangeKind *kind = NULL;

		check_int(change_check(c, &kind, NULL, 0), 0);
		check(kind == &change_kinds[i]);
		json_object_set_new(c, "added_by_a_later_version", json_true());
		check_int(change_check(c, NULL, NULL, 0), 0);
		json_decref(c);
	}
}

static void test_missing_and_wrong(void)
{
	for (size_t i = 0; i < change_kinds_n; i++) {
		const ChangeKind *k = &change_kinds[i];

		for (const ChangeField *f = k->fields; f->key; f++) {
			json_t *c = minimal(k);
			const ChangeKind *kind = NULL;
			char err[200] = "", want[200];

			if (!f->optional) {
				json_object_del(c, f->key);
				snprintf(want, sizeof(want), "change '%s': field '%s' missing",
				         k->name, f->key);
				check_int(change_check(c, &kind, err, sizeof(err)), -EINVAL);
				check_str(err, want);
				check(!kind);
			}
			json_object_set_new(c, f->key, value_of(f->type, false));
			snprintf(want, sizeof(want), "change '%s': field '%s' is not of type",
			         k->name, f->key);
			check_int(change_check(c, &kind, err, sizeof(err)), -EINVAL);
			check(strncmp(err, want, strlen(want)) == 0);
			check(!kind);
			json_decref(c);
		}
	}
}

static void test_named_errors(void)
{
	json_t *c = parse("{\"t\":\"ack\",\"by\":\"alice\",\"via\":\"api\",\"at\":1}");
	char err[200] = "";

	check_int(change_check(c, NULL, err, sizeof(err)), -EINVAL);
	check_str(err, "change 'ack': field 'id' missing");
	json_object_set_new(c, "id", json_string("5f0c6b7e9a1d4c3b8e2f1a0b9c8d7e6f"));
	json_object_set_new(c, "at", json_string("yesterday"));
	check_int(change_check(c, NULL, err, sizeof(err)), -EINVAL);
	check_str(err, "change 'ack': field 'at' is not of type integer");
	json_object_set_new(c, "at", json_integer(1));
	json_object_set_new(c, "node", json_null());
	check_int(change_check(c, NULL, err, sizeof(err)), -EINVAL);
	check_str(err, "change 'ack': field 'node' is not of type string");
	json_decref(c);

	c = parse("{\"t\":\"teleport\",\"id\":\"x\"}");
	check_int(change_check(c, NULL, err, sizeof(err)), -EINVAL);
	check_str(err, "change of unknown kind 'teleport'");
	json_decref(c);
	c = parse("{\"id\":\"x\"}");
	check_int(change_check(c, NULL, err, sizeof(err)), -EINVAL);
	check_str(err, "a change without a kind (string 't')");
	json_decref(c);
	c = parse("[\"submit\"]");
	check_int(change_check(c, NULL, err, sizeof(err)), -EINVAL);
	check_str(err, "a change that is not a JSON object");
	json_decref(c);
	check_int(change_check(NULL, NULL, NULL, 0), -EINVAL);
}

static char *read_file(const char *path)
{
	FILE *f = fopen(path, "re");
	char *text = NULL;
	size_t size = 0;
	FILE *out;

	if (!f)
		return NULL;
	out = open_memstream(&text, &size);
	for (int ch; out && (ch = fgetc(f)) != EOF;)
		fputc(ch, out);
	if (out)
		fclose(out);
	fclose(f);
	return text;
}

/* doc/replication.md holds change_doc()'s output verbatim. */
static void test_doc(void)
{
	char *doc = read_file(DOC_PATH), *generated = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&generated, &size);

	check(f);
	if (!f)
		return;
	check_int(change_doc(f), 0);
	fclose(f);
	check(doc);
	if (doc && !strstr(doc, generated)) {
		fprintf(stderr,
		        "%s does not match the table in gatewayd/protocol/change.c: paste the "
		        "output of `test-change --doc` into it\n",
		        DOC_PATH);
		check(false);
	}
	free(doc);
	free(generated);
}

int main(int argc, char **argv)
{
	if (argc > 1 && streq(argv[1], "--doc"))
		return change_doc(stdout) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
	run(test_wire);
	run(test_minimal);
	run(test_missing_and_wrong);
	run(test_named_errors);
	run(test_doc);
	return test_exit();
}
