/* probe: finding a modem by its IMEI among the serial ports. Internal to modem/.
 *
 * Only a worker calls these: they block (probe_imei() up to its timeout per port). The caller
 * claims a port (ports.h) before probing it, so no port another Modem uses is ever touched. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROBE_MAX_CANDIDATES 64

/* The ports where a modem may be, in the order to try them: configured (if it exists),
 * the entries of /dev/serial/by-id, ttyUSB and ttyACM ports in the directory of configured, then
 * those in /dev; one name per port (the first one found, compared by realpath()). Returns the
 * number of paths (malloc'd, free with probe_candidates_free()), or -ENOMEM. */
int probe_candidates(const char *configured, char ***ret);
void probe_candidates_free(char **paths, int n);

/* Opens path (raw, 115200 baud), cancels any prompt and asks AT+CGSN (AT+GSN if refused).
 * Returns 0 with the IMEI's digits in ret_imei, -ETIMEDOUT when nothing usable came back within
 * timeout_usec, -ENOMSG when the port answered without an IMEI, or the -errno of open(). */
int probe_imei(const char *path, uint64_t timeout_usec, char *ret_imei, size_t size);

/* Whether imei is 14 to 17 decimal digits. */
bool probe_imei_is_valid(const char *imei);
