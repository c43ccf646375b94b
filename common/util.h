/* util: clocks, ids, and small string helpers.
 *
 * Any thread may call these. Buffers are the caller's; nothing returned needs freeing unless
 * said so. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ID_HEX_LEN 32
/* RFC 3339 UTC with milliseconds: "2026-11-23T10:28:58.123Z" */
#define RFC3339_MAX 64

uint64_t now_realtime_usec(void);
uint64_t now_monotonic_usec(void);
/* For tests that drive time by hand: when set, the two functions above return what it returns
 * for CLOCK_REALTIME or CLOCK_MONOTONIC instead of reading the clock. NULL (the default) in the
 * daemon; set it before any thread starts. */
extern uint64_t (*now_usec_hook)(int clock);

/* A new id as 32 lowercase hex digits: the wall clock's milliseconds in the first 11 (so ids made
 * one after another sort together, and the store's indexes on them grow at their end instead of
 * touching a random page per alert) and 84 random bits from getrandom in the other 21 (never a
 * counter), so that ids stay unique cluster-wide even after a node restarts with an empty disk. */
int id_new(char ret[static ID_HEX_LEN + 1]);
bool id_is_valid(const char *s);

/* Formats a realtime timestamp in microseconds. */
char *format_rfc3339(uint64_t usec, char buf[static RFC3339_MAX]);
/* Parses an RFC 3339 date-time, "2026-03-29T09:00:00Z" or with an offset ("+02:00") and
 * optional fractions of a second ('T' may be 't' or a space), into realtime microseconds.
 * -EINVAL for anything else, -ERANGE before 1970. */
int parse_rfc3339(const char *s, uint64_t *ret_usec);
/* Days from 1970-01-01 to the proleptic Gregorian date y-m-d (m 1..12, d 1..31): calendar
 * arithmetic that no time zone or DST change can bend. */
int64_t days_from_civil(int64_t y, unsigned m, unsigned d);

/* A stable 128-bit FNV-1a digest of data as 32 lowercase hex digits: the default dedupe key.
 * Not cryptographic; a collision inside the dedupe window would merge two alerts, which needs
 * 2^64 distinct alerts to become likely. */
void hash128_hex(const void *data, size_t len, char ret[static 33]);

/* "EMFILE: " or "ENFILE: " when err (positive or negative) says the process or the system is out
 * of file descriptors, else "": strerror() words those vaguely, and an operator must tell them
 * from a device that is busy or missing. Use as "cannot open %s: %s%s", prefix, strerror(). */
const char *errno_fd_prefix(int err);

bool utf8_is_valid(const char *s, size_t len);
/* Number of Unicode code points in a valid UTF-8 string. */
size_t utf8_length(const char *s);
/* The length of the longest prefix of s[0..len) that does not end inside a UTF-8 character: a
 * lead byte without all its continuation bytes is left out. */
size_t utf8_cut(const char *s, size_t len);
/* snprintf() for text a person reads (an SMS, an error detail): when the output is cut to fit
 * size, it is cut before a character, never inside one. Returns what snprintf() returns. */
int utf8_snprintf(char *buf, size_t size, const char *format, ...)
        __attribute__((format(printf, 3, 4)));

/* Seconds, with an optional suffix s, m, h or d ("600", "10m", "30d"). */
int parse_duration(const char *s, uint64_t *ret_seconds);

/* Makes glibc read the time zone file `path` (normally /etc/localtime) once instead of at every
 * mktime(), by setting TZ to it; nothing when TZ is already set (false then). Call it before
 * any thread starts. tz_refresh() makes glibc read the file again if it changed since, and says
 * whether it did: call it now and then (gatewayd: every health tick), so that a new time zone
 * still reaches the on-call rota without a restart. */
bool tz_pin(const char *path);
bool tz_refresh(void);
