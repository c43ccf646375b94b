/* sha256: FIPS 180-4 SHA-256, for the stable keys of received messages. Internal to modem/.
 *
 * Any thread may use these; a Sha256 is the caller's (on the stack is fine). */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct Sha256 {
	uint32_t state[8];
	uint64_t length; /* bytes hashed so far */
	uint8_t block[64];
	size_t used; /* bytes in block */
} Sha256;

void sha256_init(Sha256 *s);
void sha256_update(Sha256 *s, const void *data, size_t len);
/* Finishes the digest and writes it as 64 lowercase hex digits and a NUL. */
void sha256_final_hex(Sha256 *s, char ret[static 65]);
