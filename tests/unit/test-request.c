/* Unit tests of request: every error code of the protocol that needs no state. */
#include "request.h"
#include "test.h"

static void expect(const char *json, const char *code)
{
	Request *r = NULL;
	RequestError e = {0};
	int rc = request_parse(json, strlen(json), &r, &e);

	if (!code) {
		check(rc == 0 && r);
		if (rc < 0)
			fprintf(stderr, "  %s -> %s: %s\n", json, e.code, e.detail);
	} else if (rc == 0 || !e.code || strcmp(e.code, code) != 0) {
		fprintf(stderr, "  %s -> %s, expected %s\n", json, rc == 0 ? "ok" : e.code, code);
		test_failures++;
	}
	request_free(r);
}

static void test_codes(void)
{
	expect("{\"to\":[\"+32470000001\"],\"text\":\"db01 DOWN\"}", NULL);
	expect("{\"op\":\"send\",\"to\":[\"+32470000001\",\"role:primary\"],\"text\":\"x\","
	       "\"key\":\"k\",\"priority\":\"critical\",\"ttl\":60,\"copy\":[\"+32471000000\"],"
	       "\"source\":\"nagios\"}",
	       NULL);
	expect("not json", "bad_json");
	expect("[1,2]", "bad_json");
	expect("\"x\"", "bad_json");
	expect("{\"to\":[\"+32470000001\"],\"text\":\"\xff\xfe\"}", "bad_json");
	expect("{\"op\":\"frobnicate\"}", "unknown_op");
	expect("{\"op\":7}", "bad_request");
	expect("{\"text\":\"x\"}", "bad_request");
	expect("{\"to\":[],\"text\":\"x\"}", "bad_request");
	expect("{\"to\":\"+32470000001\",\"text\":\"x\"}", "bad_request");
	expect("{\"to\":[\"+32470000001\"]}", "bad_request");
	expect("{\"to\":[\"+32470000001\"],\"text\":\"\"}", "bad_request");
	expect("{\"to\":[\"+32470000001\"],\"text\":5}", "bad_request");
	expect("{\"to\":[\"+32470000001\"],\"text\":\"x\",\"priority\":\"urgent\"}", "bad_request");
	expect("{\"to\":[\"+32470000001\"],\"text\":\"x\",\"ttl\":0}", "bad_request");
	expect("{\"to\":[\"+32470000001\"],\"text\":\"x\",\"ttl\":\"60\"}", "bad_request");
	expect("{\"to\":[\"+32470000001\"],\"text\":\"x\",\"priorty\":\"critical\"}", "bad_request");
	expect("{\"to\":[\"0470000001\"],\"text\":\"x\"}", "invalid_number");
	expect("{\"to\":[\"+12345\"],\"text\":\"x\"}", "invalid_number");
	expect("{\"to\":[\"+32470000001\"],\"copy\":[\"bad\"],\"text\":\"x\"}", "invalid_number");
	expect("{\"to\":[\"+32470000001\"],\"copy\":[\"role:x\"],\"text\":\"x\"}", "bad_request");
	expect("{\"to\":[\"role:no such\"],\"text\":\"x\"}", "unknown_role");
	expect("{\"op\":\"get\",\"id\":\"nothex\"}", "unknown_id");
	expect("{\"op\":\"get\"}", "bad_request");
	expect("{\"op\":\"get\",\"id\":\"0123456789abcdef0123456789abcdef\"}", NULL);
	expect("{\"op\":\"ack\",\"id\":\"0123456789abcdef0123456789abcdef\",\"by\":\"me\"}", NULL);
	expect("{\"op\":\"status\"}", NULL);
	expect("{\"op\":\"queue\"}", NULL);
}

static void test_fields(void)
{
	const char *json = "{\"to\":[\"+32470000001\",\"+32470000001\",\"+32470000002\"],"
			   "\"text\":\"Ωμέγα\",\"priority\":\"critical\"}";
	Request *r = NULL;
	RequestError e;

	check_int(request_parse(json, strlen(json), &r, &e), 0);
	if (!r)
		return;
	check_int(r->n_to, 2); /* the repeated number is one recipient */
	check(r->critical);
	check_int(r->ttl, 3600);
	check_str(r->text, "Ωμέγα");
	check(r->key == NULL);
	request_free(r);
}

static void test_too_long(void)
{
	char *big = malloc(REQUEST_MAX_TEXT_BYTES + 100), *json;

	memset(big, 'a', REQUEST_MAX_TEXT_BYTES + 10);
	big[REQUEST_MAX_TEXT_BYTES + 10] = 0;
	check(asprintf(&json, "{\"to\":[\"+32470000001\"],\"text\":\"%s\"}", big) > 0);
	expect(json, "text_too_long");
	free(json);
	free(big);
}

int main(void)
{
	run(test_codes);
	run(test_fields);
	run(test_too_long);
	return test_exit();
}
