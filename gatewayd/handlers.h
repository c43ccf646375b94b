/* handlers: which function of the gateway applies each kind of replicated change.
 *
 * The kinds and their fields are the protocol's (change.h, gatewayd/protocol/), which knows
 * nothing of the Gateway; this table binds each kind, by name, to the function of gateway*.c
 * that applies it to the store. Main thread only. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "change.h"

typedef struct Gateway Gateway;
typedef struct Pending Pending;

/* Where the change being applied comes from. */
typedef struct ChangeOrigin {
	Pending *pending; /* the client of this node waiting for it, or NULL */
	uint32_t nodeid;  /* the corosync node that published it */
	bool self;        /* published by this node */
} ChangeOrigin;

typedef int (*ChangeHandler)(Gateway *g, json_t *c, const ChangeOrigin *origin);

/* The handler of the kind named name, or NULL when this build has none. */
ChangeHandler handlers_find(const char *name);

/* Applies c, a change that change_check() found to be of kind: what its handler returns
 * (-EINVAL when the store refuses it). A kind without a handler is a bug of this build (the
 * unit test core checks that each has one): logged, and -EINVAL. */
int handlers_apply(Gateway *g, const ChangeKind *kind, json_t *c, const ChangeOrigin *origin);
