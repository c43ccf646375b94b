/* ctl-curve: gatewayctl as a CURVE client, and the key pairs it makes for everyone.
 *
 * Prefix ctl_curve_. Single-threaded. Keys are held in a CtlCurve the caller owns; files are the
 * ZeroMQ certificate format (zcert_save(): BASENAME holds the public key, BASENAME_secret both).
 * Failures are logged here.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define CTL_CURVE_KEY_LEN 32

typedef struct CtlCurve {
	uint8_t server_public[CTL_CURVE_KEY_LEN];
	uint8_t public[CTL_CURVE_KEY_LEN];
	uint8_t secret[CTL_CURVE_KEY_LEN];
} CtlCurve;

/* Reads the server's public certificate and our own secret one. */
int ctl_curve_load(const char *server_key_file, const char *key_file, CtlCurve *ret);
/* Makes sock (not yet connected) a CURVE client with these keys. */
int ctl_curve_apply(const CtlCurve *curve, void *sock);

/* Writes a new key pair to basename and basename_secret (mode 0600). -EEXIST when either
 * exists and force is off. */
int ctl_curve_keygen(const char *basename, bool force);
