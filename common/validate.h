/* validate: the syntax of values that both the configuration and the protocol accept, so that a
 * name or a number means the same in gatewayd.conf and in a request.
 *
 * Pure functions; any thread may call them. Nothing is allocated. */
#pragma once

#include <stdbool.h>

/* The longest name of a node, group, [modem], [contact] or [role]. */
#define VALIDATE_NAME_MAX 32

/* "+" followed by 6 to 15 digits: an E.164 number as SMS and dial-out take it. */
bool validate_phone_number(const char *s);

/* 1 to VALIDATE_NAME_MAX ASCII letters, digits, '-', '_' and '.'. */
bool validate_name(const char *s);
