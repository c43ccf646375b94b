/* Unit tests of request: every error code of the protocol that needs no state. */
#include <errno.h>

#include "request.h"
#include "test.h"
#include "util.h"
#include "validate.h"

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
	expect("{\"to\":[\"+32470000001\"],\"text\":\"x\",\"priorty\":\"critical\"}",
	       "bad_request");
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

static void test_oncall_codes(void)
{
	expect("{\"op\":\"oncall\"}", NULL);
	expect("{\"op\":\"oncall\",\"at\":\"2026-03-30T09:00:00Z\"}", NULL);
	expect("{\"op\":\"oncall\",\"at\":\"2026-03-30T11:00:00.250+02:00\"}", NULL);
	expect("{\"op\":\"oncall\",\"at\":1774861200}", NULL);
	expect("{\"op\":\"oncall\",\"at\":null}", NULL);
	expect("{\"op\":\"oncall\",\"at\":\"tomorrow\"}", "bad_request");
	expect("{\"op\":\"oncall\",\"at\":\"2026-03-30 09:00\"}", "bad_request"); /* no zone */
	expect("{\"op\":\"oncall\",\"at\":-1}", "bad_request");
	expect("{\"op\":\"oncall\",\"at\":1.5}", "bad_request");
	expect("{\"op\":\"oncall\",\"at\":99999999999999}", "bad_request");
	expect("{\"op\":\"oncall\",\"role\":\"primary\"}", "bad_request");

	expect("{\"op\":\"override\",\"role\":\"primary\",\"contact\":\"carol\","
	       "\"until\":\"2026-03-30T09:00:00Z\",\"by\":\"alice\"}",
	       NULL);
	expect("{\"op\":\"override\",\"role\":\"primary\",\"contact\":\"carol\","
	       "\"until\":1774861200}",
	       NULL);
	expect("{\"op\":\"override\",\"role\":\"primary\",\"clear\":true}", NULL);
	expect("{\"op\":\"override\",\"role\":\"primary\",\"clear\":true,\"by\":\"bob\"}", NULL);
	expect("{\"op\":\"override\",\"contact\":\"carol\",\"until\":1774861200}", "bad_request");
	expect("{\"op\":\"override\",\"role\":\"no such\",\"contact\":\"carol\",\"until\":1}",
	       "unknown_role");
	expect("{\"op\":\"override\",\"role\":\"primary\",\"until\":1774861200}", "bad_request");
	expect("{\"op\":\"override\",\"role\":\"primary\",\"contact\":\"carol\"}", "bad_request");
	expect("{\"op\":\"override\",\"role\":\"primary\",\"contact\":\"car ol\",\"until\":1}",
	       "bad_request");
	expect("{\"op\":\"override\",\"role\":\"primary\",\"contact\":\"carol\","
	       "\"until\":\"soon\"}",
	       "bad_request");
	expect("{\"op\":\"override\",\"role\":\"primary\",\"clear\":\"yes\"}", "bad_request");
	expect("{\"op\":\"override\",\"role\":\"primary\",\"clear\":true,\"contact\":\"carol\"}",
	       "bad_request");
	expect("{\"op\":\"override\",\"role\":\"primary\",\"contact\":\"carol\",\"until\":1,"
	       "\"for\":\"x\"}",
	       "bad_request");
}

static Request *parse_ok(const char *json)
{
	Request *r = NULL;
	RequestError e = {0};

	if (request_parse(json, strlen(json), &r, &e) < 0) {
		fprintf(stderr, "  %s -> %s: %s\n", json, e.code, e.detail);
		test_failures++;
		return NULL;
	}
	return r;
}

static void test_oncall_fields(void)
{
	Request *r;

	r = parse_ok("{\"op\":\"oncall\",\"at\":\"2026-03-30T11:00:00.250+02:00\"}");
	if (r) {
		check_int(r->op, OP_ONCALL);
		check_int(r->at, 1774861200250000ULL);
		request_free(r);
	}
	r = parse_ok("{\"op\":\"oncall\"}");
	if (r) {
		check_int(r->at, 0);
		request_free(r);
	}
	r = parse_ok("{\"op\":\"override\",\"role\":\"primary\",\"contact\":\"carol\","
	             "\"until\":1774861200,\"by\":\"alice\"}");
	if (r) {
		check_int(r->op, OP_OVERRIDE);
		check_str(r->role, "primary");
		check_str(r->contact, "carol");
		check_str(r->by, "alice");
		check_int(r->until, 1774861200000000ULL);
		check(!r->clear);
		request_free(r);
	}
	r = parse_ok("{\"op\":\"override\",\"role\":\"primary\",\"clear\":true}");
	if (r) {
		check(r->clear);
		check(r->contact == NULL);
		request_free(r);
	}
}

static void test_rfc3339(void)
{
	uint64_t t = 0;

	check_int(parse_rfc3339("2026-03-30T09:00:00Z", &t), 0);
	check_int(t, 1774861200000000ULL);
	check_int(parse_rfc3339("2026-03-30t11:00:00.5+02:00", &t), 0);
	check_int(t, 1774861200500000ULL);
	check_int(parse_rfc3339("2026-03-30 04:00:00-05:00", &t), 0);
	check_int(t, 1774861200000000ULL);
	check_int(parse_rfc3339("2024-02-29T00:00:00.000001z", &t), 0);
	check_int(t, 1709164800000001ULL);
	check_int(parse_rfc3339("1970-01-01T00:00:00Z", &t), 0);
	check_int(t, 0);
	check_int(parse_rfc3339("2025-02-29T00:00:00Z", &t), -EINVAL);
	check_int(parse_rfc3339("2026-03-30T09:00:00", &t), -EINVAL);
	check_int(parse_rfc3339("2026-03-30T09:00Z", &t), -EINVAL);
	check_int(parse_rfc3339("2026-03-30T24:00:00Z", &t), -EINVAL);
	check_int(parse_rfc3339("2026-3-30T09:00:00Z", &t), -EINVAL);
	check_int(parse_rfc3339("2026-03-30T09:00:00Zjunk", &t), -EINVAL);
	check_int(parse_rfc3339("2026-03-30T09:00:00.Z", &t), -EINVAL);
	check_int(parse_rfc3339("1970-01-01T00:00:00+01:00", &t), -ERANGE);
	check_int(parse_rfc3339("", &t), -EINVAL);
}

/* Appends s to buf with every character escaped as \uXXXX (ASCII only here). */
static void put_escaped(char **p, const char *s)
{
	*(*p)++ = '"';
	for (; *s; s++)
		*p += sprintf(*p, "\\u%04x", (unsigned char)*s);
	*(*p)++ = '"';
}

static void put_escaped_list(char **p, const char *item, int n)
{
	*(*p)++ = '[';
	for (int i = 0; i < n; i++) {
		char v[64];

		if (i > 0)
			*(*p)++ = ',';
		snprintf(v, sizeof(v), "%s%02d", item, i); /* distinct: no duplicate to drop */
		put_escaped(p, v);
	}
	*(*p)++ = ']';
}

/* The largest request request_max_size() claims is valid, built and parsed: it must parse, and
 * its size must be the figure minus the whitespace allowance. */
static void test_max_size(void)
{
	static const unsigned parts[] = {1, 10, 54, 255};

	for (size_t k = 0; k < sizeof(parts) / sizeof(parts[0]); k++) {
		size_t chars = parts[k] == 1 ? 160 : parts[k] * 153;
		char *buf = malloc(200000), *p = buf, *text, role[64], number[32], *key, *source;
		Request *r = NULL;
		RequestError e = {0};

		if (chars > REQUEST_MAX_TEXT_BYTES)
			chars = REQUEST_MAX_TEXT_BYTES;
		text = calloc(1, chars + 1);
		key = calloc(1, REQUEST_MAX_KEY + 1);
		source = calloc(1, REQUEST_MAX_SOURCE + 1);
		memset(text, 'x', chars);
		memset(key, 'k', REQUEST_MAX_KEY);
		memset(source, 's', REQUEST_MAX_SOURCE);
		snprintf(role, sizeof(role), "role:%0*d", VALIDATE_NAME_MAX - 2, 0);
		snprintf(number, sizeof(number), "+3247012345678");

		*p++ = '{';
		put_escaped(&p, "op"), *p++ = ':', put_escaped(&p, "send"), *p++ = ',';
		put_escaped(&p, "to"), *p++ = ':',
		                       put_escaped_list(&p, role, REQUEST_MAX_RECIPIENTS);
		*p++ = ',';
		put_escaped(&p, "text"), *p++ = ':', put_escaped(&p, text), *p++ = ',';
		put_escaped(&p, "key"), *p++ = ':', put_escaped(&p, key), *p++ = ',';
		put_escaped(&p, "priority"), *p++ = ':', put_escaped(&p, "critical"), *p++ = ',';
		put_escaped(&p, "ttl"), p += sprintf(p, ":%d,", REQUEST_MAX_TTL);
		put_escaped(&p, "copy"), *p++ = ':';
		put_escaped_list(&p, number, REQUEST_MAX_RECIPIENTS), *p++ = ',';
		put_escaped(&p, "source"), *p++ = ':', put_escaped(&p, source), *p++ = '}';

		check_int(request_parse(buf, (size_t)(p - buf), &r, &e), 0);
		if (e.code)
			fprintf(stderr, "%s: %s\n", e.code, e.detail);
		check_int((size_t)(p - buf) + REQUEST_WHITESPACE, request_max_size(parts[k]));
		request_free(r);
		free(buf);
		free(text);
		free(key);
		free(source);
	}
	check_int(request_max_size(10), 26263);
	check_int(request_max_size(255), 66235);
}

/* A client's words quoted in an error detail are cut before a character, never inside one:
 * the detail goes back in a JSON string. "é" is two bytes, "€" three. */
static void test_detail_utf8(void)
{
	static const char *const requests[] = {
	        /* 'a' then é: a cut at 40 bytes falls inside the 20th é. */
	        "{\"to\":[\"a\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"
	        "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\"],"
	        "\"text\":\"x\"}",
	        "{\"to\":[\"role:\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac"
	        "\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\"],"
	        "\"text\":\"x\"}",
	        "{\"op\":\"x\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac\u20ac"
	        "\u20ac\u20ac\u20ac\u20ac\"}",
	        "{\"to\":[\"+32470000001\"],\"text\":\"x\",\"\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"
	        "\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9\u00e9"
	        "\u00e9x\u00e9\":1}",
	};

	for (size_t i = 0; i < sizeof(requests) / sizeof(requests[0]); i++) {
		Request *r = NULL;
		RequestError e = {0};
		int rc = request_parse(requests[i], strlen(requests[i]), &r, &e);

		check(rc < 0);
		check(utf8_is_valid(e.detail, strlen(e.detail)));
		if (!utf8_is_valid(e.detail, strlen(e.detail)))
			fprintf(stderr, "  request %zu: %s: %s\n", i, e.code, e.detail);
		request_free(r);
	}
}

int main(void)
{
	run(test_max_size);
	run(test_detail_utf8);
	run(test_codes);
	run(test_fields);
	run(test_too_long);
	run(test_oncall_codes);
	run(test_oncall_fields);
	run(test_rfc3339);
	return test_exit();
}
