/* change: the schema of every replicated change, the wire contract between the nodes.
 *
 * A change is a JSON object whose "t" names its kind; change_kinds[] lists each kind with its
 * fields (key, type, required or not) and a line of meaning. change_pack() builds a change
 * (the one encoder), change_check() validates one against the table (the decoder's first step),
 * change_doc() prints the table as markdown (the source of doc/replication.md). Which
 * function applies each kind is the gateway's business (gatewayd/handlers.c), not the
 * schema's. Main thread only; everything returned points into the static table. Keys not in the
 * table are allowed (a later version may send more), so adding an optional field needs no
 * protocol version; changing a key or a type does. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef enum ChangeType {
	CHANGE_STRING,
	CHANGE_STRING_OR_NULL,
	CHANGE_INTEGER,
	CHANGE_BOOLEAN,
	CHANGE_ARRAY,
} ChangeType;

typedef struct ChangeField {
	const char *key;
	ChangeType type;
	bool optional; /* may be absent: only some senders, or some versions, send it */
} ChangeField;

#define CHANGE_FIELDS_MAX 12

typedef struct ChangeKind {
	const char *name;
	const char *meaning;
	ChangeField fields[CHANGE_FIELDS_MAX]; /* ends at the first without a key */
} ChangeKind;

extern const ChangeKind change_kinds[];
extern const size_t change_kinds_n;

/* 0 when c is a change of a known kind with every required field, each field of its type
 * (*ret_kind set); -EINVAL otherwise, with the reason in err ("change 'ack': field 'id'
 * missing"). ret_kind and err may be NULL. */
int change_check(const json_t *c, const ChangeKind **ret_kind, char *err, size_t errsize);

/* The one way a node builds a change: json_pack()'s `fmt` and arguments give the fields of a
 * change of kind `kind` (without "t", which this adds). The result is checked against the
 * table, and a change that breaks it is logged loudly as the bug it is (every node would skip
 * it) but returned all the same. NULL only when out of memory or when fmt does not pack. */
json_t *change_pack(const char *kind, const char *fmt, ...);

/* The table as markdown: a section per kind. */
int change_doc(FILE *f);
