/* request: the submission protocol's requests, parsed and checked for shape.
 *
 * request_parse() turns one request frame (UTF-8 JSON) into a Request, or names the protocol
 * error code and a detail in words. It checks everything that needs no state: JSON, types,
 * required fields, number syntax, sizes. What needs the configuration or the store (roles,
 * parts per text, unknown ids) is the gateway's to check.
 *
 * Threads: any. Ownership: request_free() frees a Request and all its strings. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REQUEST_MAX_RECIPIENTS 32
#define REQUEST_MAX_TEXT_BYTES 8192
#define REQUEST_MAX_KEY        256
#define REQUEST_MAX_SOURCE     128
#define REQUEST_DEFAULT_TTL    3600
#define REQUEST_MIN_SILENCE    60
#define REQUEST_MAX_SILENCE    (90 * 86400)
#define REQUEST_MAX_MATCH      256
#define REQUEST_MAX_REASON     256
#define REQUEST_MAX_TTL        (7 * 86400)

typedef enum RequestOp {
	OP_SEND,
	OP_STATUS,
	OP_GET,
	OP_QUEUE,
	OP_ACK,
	OP_INBOX,
	OP_ONCALL,
	OP_OVERRIDE,
	OP_RESOLVE,
	OP_SILENCE,
	OP_SILENCES,
	OP_UNSILENCE,
	OP_HEARTBEAT,
} RequestOp;

typedef struct Request {
	RequestOp op;
	/* send */
	char **to; /* "+32470123456" or "role:NAME", duplicates removed */
	size_t n_to;
	char **copy;
	size_t n_copy;
	char *text;
	char *key; /* NULL: the gateway derives one; resolve: the alert's key, or NULL for id */
	bool critical;
	uint64_t ttl; /* seconds */
	char *source;
	/* get, ack, resolve (id or key) */
	char *id;
	char *by; /* also override */
	/* oncall, override: times are realtime usec, from RFC 3339 or integer Unix seconds */
	uint64_t at; /* oncall: the instant asked about; 0 for now */
	char *role;
	char *contact; /* NULL with clear */
	uint64_t until;
	bool clear;
	/* silence: what it matches (field "key_prefix", "source" or "text_contains", and value),
	 * for how long, why, and whether critical alerts are left out; unsilence: id */
	const char *match_field; /* points into a static string */
	char *match_value;
	uint64_t duration; /* seconds */
	char *reason;
	bool except_critical;
	/* heartbeat: the monitor pinged */
	char *name;
} Request;

typedef struct RequestError {
	const char *code; /* "bad_json", "bad_request", "unknown_op", "invalid_number", ... */
	char detail[256];
} RequestError;

/* The size in bytes of the largest valid request frame for a gateway whose texts may take up to
 * max_parts SMS (1..255): every character of every string written as a \uXXXX escape, every
 * list full, plus REQUEST_WHITESPACE bytes for a pretty-printing encoder. 26,263 bytes for the
 * default 10 parts, 66,235 for 54 parts and more (the text's 8,192 bytes are the cap then). The
 * server refuses larger frames unread (ZMQ_MAXMSGSIZE). */
#define REQUEST_WHITESPACE 4096
size_t request_max_size(unsigned max_parts);

/* 0 with *ret set, or -EINVAL with *ret_error filled (-ENOMEM on allocation failure). */
int request_parse(const void *data, size_t len, Request **ret, RequestError *ret_error);
Request *request_free(Request *r);

/* The op named s ("send", "status", ...), or -EINVAL. */
int request_op_from_string(const char *s);
const char *request_op_to_string(RequestOp op);
/* Whether op changes state (send, ack, resolve, override) rather than only reads it. */
bool request_op_writes(RequestOp op);

/* Error reply frame: {"ok":false,"error":code,"detail":detail}, malloc'd, NUL-terminated. */
char *request_reply_error(const char *code, const char *detail);
