/* ctl-time: the times an operator types into gatewayctl, and the local times it shows.
 *
 * Prefix ctl_time_. Single-threaded (it reads the local time zone, TZ or /etc/localtime, through
 * localtime_r() and mktime()); no state. Times are realtime microseconds, as in the protocol.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* A size that holds any local time written by ctl_time_format_local(). */
#define CTL_TIME_MAX 64

/* Parses a TIME argument: "YYYY-MM-DD HH:MM[:SS]" in local time (a 'T' may stand for the space),
 * an RFC 3339 time with its offset ("2026-03-30T09:00:00+02:00", "...Z"), or a duration from
 * now_usec, digits with a unit s, m, h or d ("8h", "3d"). Returns 0; -EINVAL for anything else;
 * -ENOENT for a local time that the clock skips (a DST change); -ERANGE for a time out of
 * reach. */
int ctl_time_parse(const char *arg, uint64_t now_usec, uint64_t *ret_usec);

/* Writes usec as local time, "Mon 2026-03-30 09:00 CEST", into buf (size bytes). Returns buf. */
char *ctl_time_format_local(uint64_t usec, char *buf, size_t size);
