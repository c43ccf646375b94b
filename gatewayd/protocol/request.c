/* request: JSON in, a checked Request out.
 *
 * Rejecting unknown fields is deliberate: an upstream script that writes "priorty" must hear
 * about it, not have its critical alert quietly sent as normal. */
#include "request.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "util.h"
#include "validate.h"

static int fail(RequestError *e, const char *code, const char *format, ...) _printf_(3, 4);
static int fail(RequestError *e, const char *code, const char *format, ...)
{
	va_list ap;

	int n;

	e->code = code;
	va_start(ap, format);
	n = vsnprintf(e->detail, sizeof(e->detail), format, ap);
	va_end(ap);
	/* The detail goes back in a JSON string: cut before a character, never inside one. */
	if (n >= (int)sizeof(e->detail))
		e->detail[utf8_cut(e->detail, sizeof(e->detail) - 1)] = 0;
	return -EINVAL;
}

/* For "%.*s": how many bytes of s to quote, at most max and never half a UTF-8 character
 * (a client's words are quoted back to it in a JSON string, which must stay valid UTF-8). */
static int quote_len(const char *s, size_t max)
{
	return (int)utf8_cut(s, strnlen(s, max));
}

Request *request_free(Request *r)
{
	if (!r)
		return NULL;
	for (size_t i = 0; i < r->n_to; i++)
		free(r->to[i]);
	free(r->to);
	for (size_t i = 0; i < r->n_copy; i++)
		free(r->copy[i]);
	free(r->copy);
	free(r->text);
	free(r->key);
	free(r->source);
	free(r->id);
	free(r->by);
	free(r->role);
	free(r->contact);
	free(r->match_value);
	free(r->reason);
	free(r->name);
	free(r);
	return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(Request, request_free)

/* A list of recipients: numbers always, roles only where allow_roles. */
static int parse_recipients(json_t *v, const char *field, bool allow_roles, char ***ret,
                            size_t *ret_n, RequestError *e)
{
	char **list;
	size_t n = 0, i;
	json_t *item;

	if (!json_is_array(v))
		return fail(e, "bad_request", "'%s' must be a list of phone numbers", field);
	if (json_array_size(v) > REQUEST_MAX_RECIPIENTS)
		return fail(e, "bad_request", "'%s' has more than %d recipients", field,
		            REQUEST_MAX_RECIPIENTS);
	list = calloc(json_array_size(v) + 1, sizeof(char *));
	if (!list)
		return -ENOMEM;
	*ret = list; /* the caller frees, also on failure */
	json_array_foreach(v, i, item)
	{
		const char *s = json_string_value(item);
		bool dup = false;

		if (!s) {
			*ret_n = n;
			return fail(e, "bad_request", "'%s[%zu]' must be a string", field, i);
		}
		if (strncmp(s, "role:", 5) == 0) {
			if (!allow_roles) {
				*ret_n = n;
				return fail(e, "bad_request", "'%s' takes phone numbers only",
				            field);
			}
			if (!validate_name(s + 5)) {
				*ret_n = n;
				return fail(e, "unknown_role", "no role named '%.*s'",
				            quote_len(s + 5, 64), s + 5);
			}
		} else if (!validate_phone_number(s)) {
			*ret_n = n;
			return fail(e, "invalid_number",
			            "'%.*s' is not an E.164 number ('+' and 6 to 15 digits)",
			            quote_len(s, 40), s);
		}
		for (size_t j = 0; j < n; j++)
			if (streq(list[j], s))
				dup = true;
		if (dup)
			continue;
		list[n] = strdup(s);
		if (!list[n]) {
			*ret_n = n;
			return -ENOMEM;
		}
		n++;
	}
	*ret_n = n;
	return 0;
}

static int get_string(json_t *o, const char *field, size_t max, bool required, char **ret,
                      RequestError *e)
{
	json_t *v = json_object_get(o, field);
	const char *s;

	if (!v || json_is_null(v)) {
		if (required)
			return fail(e, "bad_request", "'%s' is missing", field);
		return 0;
	}
	s = json_string_value(v);
	if (!s)
		return fail(e, "bad_request", "'%s' must be a string", field);
	if (required && !*s)
		return fail(e, "bad_request", "'%s' is empty", field);
	if (strlen(s) > max)
		return fail(e, "bad_request", "'%s' is longer than %zu bytes", field, max);
	*ret = strdup(s);
	return *ret ? 0 : -ENOMEM;
}

static int check_fields(json_t *o, const char *const *allowed, RequestError *e)
{
	const char *k;
	json_t *v;

	json_object_foreach(o, k, v)
	{
		bool known = false;

		for (const char *const *a = allowed; *a; a++)
			if (streq(k, *a))
				known = true;
		if (!known)
			return fail(e, "bad_request", "unknown field '%.*s'", quote_len(k, 40), k);
	}
	return 0;
}

static int parse_send(json_t *o, Request *r, RequestError *e)
{
	static const char *const fields[] = {"op",  "to",   "text",   "key", "priority",
	                                     "ttl", "copy", "source", NULL};
	json_t *v;
	int rc;

	rc = check_fields(o, fields, e);
	if (rc < 0)
		return rc;

	v = json_object_get(o, "to");
	if (!v)
		return fail(e, "bad_request", "'to' is missing");
	rc = parse_recipients(v, "to", true, &r->to, &r->n_to, e);
	if (rc < 0)
		return rc;
	if (r->n_to == 0)
		return fail(e, "bad_request", "'to' is empty");

	v = json_object_get(o, "copy");
	if (v && !json_is_null(v)) {
		rc = parse_recipients(v, "copy", false, &r->copy, &r->n_copy, e);
		if (rc < 0)
			return rc;
	}

	v = json_object_get(o, "text");
	if (v && json_is_string(v) && json_string_length(v) > REQUEST_MAX_TEXT_BYTES)
		return fail(e, "text_too_long", "the text has %zu bytes, more than %d",
		            json_string_length(v), REQUEST_MAX_TEXT_BYTES);
	rc = get_string(o, "text", REQUEST_MAX_TEXT_BYTES, true, &r->text, e);
	if (rc < 0)
		return rc;
	if (strlen(r->text) != json_string_length(json_object_get(o, "text")))
		return fail(e, "bad_request", "'text' contains a NUL character");

	rc = get_string(o, "key", REQUEST_MAX_KEY, false, &r->key, e);
	if (rc < 0)
		return rc;
	if (r->key && !*r->key)
		return fail(e, "bad_request", "'key' is empty");
	rc = get_string(o, "source", REQUEST_MAX_SOURCE, false, &r->source, e);
	if (rc < 0)
		return rc;

	v = json_object_get(o, "priority");
	if (v && !json_is_null(v)) {
		const char *p = json_string_value(v);

		if (!p || (!streq(p, "critical") && !streq(p, "normal")))
			return fail(e, "bad_request",
			            "'priority' must be \"critical\" or \"normal\"");
		r->critical = streq(p, "critical");
	}

	r->ttl = REQUEST_DEFAULT_TTL;
	v = json_object_get(o, "ttl");
	if (v && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > REQUEST_MAX_TTL)
			return fail(e, "bad_request", "'ttl' must be whole seconds from 1 to %d",
			            REQUEST_MAX_TTL);
		r->ttl = (uint64_t)json_integer_value(v);
	}
	return 0;
}

/* A time: an RFC 3339 string, or whole seconds since the epoch (up to the year 9999). */
static int get_time(json_t *o, const char *field, bool required, uint64_t *ret, RequestError *e)
{
	json_t *v = json_object_get(o, field);

	if (!v || json_is_null(v)) {
		if (required)
			return fail(e, "bad_request", "'%s' is missing", field);
		return 0;
	}
	if (json_is_integer(v) && json_integer_value(v) >= 0 &&
	    json_integer_value(v) <= 253402300799) {
		*ret = (uint64_t)json_integer_value(v) * 1000000ULL;
		return 0;
	}
	if (json_is_string(v) && parse_rfc3339(json_string_value(v), ret) >= 0)
		return 0;
	return fail(e, "bad_request",
	            "'%s' must be an RFC 3339 time (2026-03-30T09:00:00Z) or Unix seconds", field);
}

static int parse_override(json_t *o, Request *r, RequestError *e)
{
	static const char *const fields[] = {"op", "role", "contact", "until", "by", "clear", NULL};
	json_t *v;
	int rc;

	rc = check_fields(o, fields, e);
	if (rc < 0)
		return rc;
	rc = get_string(o, "role", 64, true, &r->role, e);
	if (rc < 0)
		return rc;
	if (!validate_name(r->role))
		return fail(e, "unknown_role", "no role named '%.*s'", quote_len(r->role, 64),
		            r->role);
	rc = get_string(o, "by", 64, false, &r->by, e);
	if (rc < 0)
		return rc;

	v = json_object_get(o, "clear");
	if (v && !json_is_null(v) && !json_is_boolean(v))
		return fail(e, "bad_request", "'clear' must be true or false");
	r->clear = json_is_true(v);
	if (r->clear) {
		if (json_object_get(o, "contact") || json_object_get(o, "until"))
			return fail(e, "bad_request", "'clear' takes no 'contact' or 'until'");
		return 0;
	}
	rc = get_string(o, "contact", 64, true, &r->contact, e);
	if (rc < 0)
		return rc;
	/* Contact names follow the rules of role names; whether it is configured is the
	 * gateway's to say. */
	if (!validate_name(r->contact))
		return fail(e, "bad_request", "no contact named '%.*s'", quote_len(r->contact, 64),
		            r->contact);
	return get_time(o, "until", true, &r->until, e);
}

/* {"op":"silence","match":{FIELD:VALUE},"duration":SECONDS,"by","reason","except_critical"} */
static int parse_silence(json_t *o, Request *r, RequestError *e)
{
	static const char *const fields[] = {"op",     "match",           "duration", "by",
	                                     "reason", "except_critical", NULL};
	static const char *const match_fields[] = {"key_prefix", "source", "text_contains"};
	json_t *match = json_object_get(o, "match"), *v;
	int rc;

	rc = check_fields(o, fields, e);
	if (rc < 0)
		return rc;
	if (!json_is_object(match) || json_object_size(match) != 1)
		return fail(e, "bad_request",
		            "'match' must be an object with one of 'key_prefix', 'source' or "
		            "'text_contains'");
	for (size_t i = 0; i < ELEMENTSOF(match_fields); i++)
		if (json_object_get(match, match_fields[i]))
			r->match_field = match_fields[i];
	if (!r->match_field)
		return fail(e, "bad_request",
		            "'match' must be an object with one of 'key_prefix', 'source' or "
		            "'text_contains'");
	rc = get_string(match, r->match_field, REQUEST_MAX_MATCH, true, &r->match_value, e);
	if (rc < 0)
		return rc;
	if (strlen(r->match_value) != json_string_length(json_object_get(match, r->match_field)))
		return fail(e, "bad_request", "'%s' contains a NUL character", r->match_field);
	v = json_object_get(o, "duration");
	if (!json_is_integer(v) || json_integer_value(v) < REQUEST_MIN_SILENCE ||
	    json_integer_value(v) > REQUEST_MAX_SILENCE)
		return fail(e, "bad_request", "'duration' must be an integer from %d to %d seconds",
		            REQUEST_MIN_SILENCE, REQUEST_MAX_SILENCE);
	r->duration = (uint64_t)json_integer_value(v);
	v = json_object_get(o, "except_critical");
	if (v && !json_is_boolean(v))
		return fail(e, "bad_request", "'except_critical' must be true or false");
	r->except_critical = json_is_true(v);
	rc = get_string(o, "by", 64, false, &r->by, e);
	if (rc >= 0)
		rc = get_string(o, "reason", REQUEST_MAX_REASON, false, &r->reason, e);
	if (rc >= 0 && r->reason &&
	    strlen(r->reason) != json_string_length(json_object_get(o, "reason")))
		rc = fail(e, "bad_request", "'reason' contains a NUL character");
	return rc;
}

/* {"op":"resolve"} names its alert by "id" or by "key" (the open alert with that dedupe key),
 * exactly one of them. */
static int parse_resolve(json_t *o, Request *r, RequestError *e)
{
	static const char *const fields[] = {"op", "id", "key", "by", NULL};
	int rc;

	rc = check_fields(o, fields, e);
	if (rc < 0)
		return rc;
	if (!json_object_get(o, "id") == !json_object_get(o, "key"))
		return fail(e, "bad_request", "name the alert by 'id' or by 'key', one of them");
	if (json_object_get(o, "id")) {
		rc = get_string(o, "id", 64, true, &r->id, e);
		if (rc >= 0 && !id_is_valid(r->id))
			rc = fail(e, "unknown_id", "'%.*s' is not an alert id",
			          quote_len(r->id, 40), r->id);
	} else {
		rc = get_string(o, "key", REQUEST_MAX_KEY, true, &r->key, e);
		if (rc >= 0 && strlen(r->key) != json_string_length(json_object_get(o, "key")))
			rc = fail(e, "bad_request", "'key' contains a NUL character");
	}
	if (rc < 0)
		return rc;
	return get_string(o, "by", 64, false, &r->by, e);
}

int request_parse(const void *data, size_t len, Request **ret, RequestError *ret_error)
{
	_cleanup_(json_decrefp) json_t *o = NULL;
	_cleanup_(request_freep) Request *r = NULL;
	json_error_t jerr;
	const char *op = "send";
	json_t *v;
	int rc;

	/* jansson rejects invalid UTF-8 and, without JSON_ALLOW_NUL, NUL escapes in strings. */
	o = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o)
		return fail(ret_error, "bad_json", "not valid JSON: %s (at byte %d)", jerr.text,
		            jerr.position);
	if (!json_is_object(o))
		return fail(ret_error, "bad_json", "the request must be a JSON object");

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;

	v = json_object_get(o, "op");
	if (v) {
		op = json_string_value(v);
		if (!op)
			return fail(ret_error, "bad_request", "'op' must be a string");
	}

	if (streq(op, "send")) {
		r->op = OP_SEND;
		rc = parse_send(o, r, ret_error);
	} else if (streq(op, "status") || streq(op, "queue") || streq(op, "inbox")) {
		static const char *const fields[] = {"op", NULL};
		r->op = streq(op, "status") ? OP_STATUS : streq(op, "queue") ? OP_QUEUE : OP_INBOX;
		rc = check_fields(o, fields, ret_error);
	} else if (streq(op, "get") || streq(op, "ack")) {
		static const char *const get_fields[] = {"op", "id", NULL};
		static const char *const ack_fields[] = {"op", "id", "by", NULL};

		r->op = streq(op, "get") ? OP_GET : OP_ACK;
		rc = check_fields(o, r->op == OP_GET ? get_fields : ack_fields, ret_error);
		if (rc >= 0)
			rc = get_string(o, "id", 64, true, &r->id, ret_error);
		if (rc >= 0 && !id_is_valid(r->id))
			rc = fail(ret_error, "unknown_id", "'%.*s' is not an alert id",
			          quote_len(r->id, 40), r->id);
		if (rc >= 0 && r->op == OP_ACK)
			rc = get_string(o, "by", 64, false, &r->by, ret_error);
	} else if (streq(op, "silence")) {
		r->op = OP_SILENCE;
		rc = parse_silence(o, r, ret_error);
	} else if (streq(op, "silences")) {
		static const char *const fields[] = {"op", NULL};

		r->op = OP_SILENCES;
		rc = check_fields(o, fields, ret_error);
	} else if (streq(op, "unsilence")) {
		static const char *const fields[] = {"op", "silence", "by", NULL};

		r->op = OP_UNSILENCE;
		rc = check_fields(o, fields, ret_error);
		if (rc >= 0)
			rc = get_string(o, "silence", 64, true, &r->id, ret_error);
		if (rc >= 0 && !id_is_valid(r->id))
			rc = fail(ret_error, "unknown_id", "'%.*s' is not a silence id",
			          quote_len(r->id, 40), r->id);
		if (rc >= 0)
			rc = get_string(o, "by", 64, false, &r->by, ret_error);
	} else if (streq(op, "heartbeat")) {
		static const char *const fields[] = {"op", "name", NULL};

		r->op = OP_HEARTBEAT;
		rc = check_fields(o, fields, ret_error);
		if (rc >= 0)
			rc = get_string(o, "name", 64, true, &r->name, ret_error);
		if (rc >= 0 && !validate_name(r->name))
			rc = fail(ret_error, "unknown_name", "'%.*s' is not a monitor's name",
			          quote_len(r->name, 40), r->name);
	} else if (streq(op, "resolve")) {
		r->op = OP_RESOLVE;
		rc = parse_resolve(o, r, ret_error);
	} else if (streq(op, "oncall")) {
		static const char *const fields[] = {"op", "at", NULL};

		r->op = OP_ONCALL;
		rc = check_fields(o, fields, ret_error);
		if (rc >= 0)
			rc = get_time(o, "at", false, &r->at, ret_error);
	} else if (streq(op, "override")) {
		r->op = OP_OVERRIDE;
		rc = parse_override(o, r, ret_error);
	} else
		return fail(ret_error, "unknown_op", "unknown op '%.*s'", quote_len(op, 40), op);

	if (rc < 0)
		return rc;
	*ret = TAKE_PTR(r);
	return 0;
}

/* A JSON string of n characters, each escaped as \uXXXX, with its quotes. A character outside the
 * BMP is a surrogate pair of two escapes, but it also counts as two UCS-2 units in an SMS and at
 * least four bytes in REQUEST_MAX_TEXT_BYTES, so six bytes per counted character is the bound. */
static size_t escaped(size_t n)
{
	return 6 * n + 2;
}

/* A list of n strings of len characters: brackets, commas, the strings. */
static size_t escaped_list(size_t n, size_t len)
{
	return 2 + (n - 1) + n * escaped(len);
}

size_t request_max_size(unsigned max_parts)
{
	/* An SMS part carries at most 160 characters alone, 153 in a multipart message (GSM 7-bit,
	 * one septet per character at best; UCS-2 carries fewer), and the text has at most
	 * REQUEST_MAX_TEXT_BYTES bytes, so at most that many characters. */
	size_t chars = max_parts <= 1 ? 160 : (size_t)max_parts * 153;
	size_t size;

	chars = MIN(chars, (size_t)REQUEST_MAX_TEXT_BYTES);
	/* The send request is the largest op: its eight members, each name escaped too. */
	size = 2 + 7 + 8;                /* braces, commas between members, colons */
	size += escaped(2) + escaped(4); /* "op": "send" */
	size += escaped(2) +
	        escaped_list(REQUEST_MAX_RECIPIENTS, 5 + VALIDATE_NAME_MAX); /* role:N */
	size += escaped(4) + escaped(chars);
	size += escaped(3) + escaped(REQUEST_MAX_KEY);
	size += escaped(8) + escaped(8);                               /* "priority": "critical" */
	size += escaped(3) + 6;                                        /* "ttl": 604800 */
	size += escaped(4) + escaped_list(REQUEST_MAX_RECIPIENTS, 16); /* "+" and 15 digits */
	size += escaped(6) + escaped(REQUEST_MAX_SOURCE);
	return size + REQUEST_WHITESPACE;
}

char *request_reply_error(const char *code, const char *detail)
{
	_cleanup_(json_decrefp) json_t *o =
	        json_pack("{s:b, s:s, s:s}", "ok", 0, "error", code, "detail", detail);

	return o ? json_dumps(o, JSON_COMPACT) : NULL;
}

static const char *const op_names[] = {
        [OP_SEND] = "send",           [OP_STATUS] = "status",     [OP_GET] = "get",
        [OP_QUEUE] = "queue",         [OP_ACK] = "ack",           [OP_INBOX] = "inbox",
        [OP_ONCALL] = "oncall",       [OP_OVERRIDE] = "override", [OP_RESOLVE] = "resolve",
        [OP_SILENCE] = "silence",     [OP_SILENCES] = "silences", [OP_UNSILENCE] = "unsilence",
        [OP_HEARTBEAT] = "heartbeat",
};

int request_op_from_string(const char *s)
{
	for (size_t i = 0; i < ELEMENTSOF(op_names); i++)
		if (op_names[i] && streq(s, op_names[i]))
			return (int)i;
	return -EINVAL;
}

bool request_op_writes(RequestOp op)
{
	return op == OP_SEND || op == OP_ACK || op == OP_OVERRIDE || op == OP_RESOLVE ||
	       op == OP_SILENCE || op == OP_UNSILENCE || op == OP_HEARTBEAT;
}

const char *request_op_to_string(RequestOp op)
{
	return (size_t)op < ELEMENTSOF(op_names) ? op_names[op] : "?";
}
