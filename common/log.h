/* log: the one logging room of every program and library of the project.
 *
 * Thread-safe: any thread may log. Under journald (JOURNAL_STREAM names our stderr) messages
 * go to the journal with structured fields (GATEWAY_ALERT_ID, GATEWAY_MODEM, GATEWAY_NODE, and
 * MESSAGE_ID for the key events of message-ids.h), so `journalctl GATEWAY_ALERT_ID=...` finds
 * one alert's story; otherwise they are written as one line each to stderr. The *_errno variants
 * take a positive or negative errno, format it for %m, and return it negated, so an error is
 * logged and returned in one step:
 *
 *         return log_error_errno(r, "Failed to open '%s': %m", path);
 */
#pragma once

#include <stdarg.h>
#include <stddef.h>
#include <sys/uio.h>
#include <syslog.h>

#include "macro.h"

/* Optional context of a message; any member may be NULL. message_id names the kind of a key
 * event (one of message-ids.h), for `journalctl MESSAGE_ID=...`. */
typedef struct LogContext {
	const char *alert_id;
	const char *modem;
	const char *node;
	const char *message_id;
} LogContext;

/* Program name shown on stderr lines; call once at start-up. */
void log_setup(const char *ident);
void log_set_max_level(int level);
/* This node's name, for the GATEWAY_NODE field of every journal entry. */
void log_set_node(const char *node);
int log_get_max_level(void);

int log_internal(int level, int error, const LogContext *ctx, const char *file, int line,
                 const char *func, const char *format, ...) _printf_(7, 8);

/* The journal fields of one entry, built by log_journal_fields() without sending anything (the
 * journal is not there to ask in tests). Each iov points into buf, as "NAME=value". */
#define LOG_FIELDS_MAX 12
typedef struct LogFields {
	struct iovec iov[LOG_FIELDS_MAX];
	size_t n;
	char buf[4096];
} LogFields;

/* Fills ret with the fields of an entry: MESSAGE, PRIORITY, CODE_*, SYSLOG_IDENTIFIER, ERRNO
 * (when error is not 0), and MESSAGE_ID, GATEWAY_ALERT_ID, GATEWAY_MODEM, GATEWAY_NODE where
 * known (the node defaults to log_set_node()'s). Too long a message is cut, never the fields. */
void log_journal_fields(int level, int error, const LogContext *ctx, const char *file, int line,
                        const char *func, const char *message, LogFields *ret);

#define log_full_errno_ctx(level, error, ctx, ...)                                                 \
	log_internal((level), (error), (ctx), __FILE__, __LINE__, __func__, __VA_ARGS__)

#define log_full_errno(level, error, ...) log_full_errno_ctx(level, error, NULL, __VA_ARGS__)

#define log_debug(...)   log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...)    log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...)  log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...)   log_full_errno(LOG_ERR, 0, __VA_ARGS__)

#define log_debug_errno(error, ...)   log_full_errno(LOG_DEBUG, error, __VA_ARGS__)
#define log_info_errno(error, ...)    log_full_errno(LOG_INFO, error, __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, error, __VA_ARGS__)
#define log_error_errno(error, ...)   log_full_errno(LOG_ERR, error, __VA_ARGS__)

/* With context: log_ctx(LOG_INFO, &(LogContext){.alert_id = id}, "...") */
#define log_ctx(level, ctx, ...)              log_full_errno_ctx(level, 0, ctx, __VA_ARGS__)
#define log_ctx_errno(level, error, ctx, ...) log_full_errno_ctx(level, error, ctx, __VA_ARGS__)
/* A context shared by several messages, with the message id of this one:
 * log_ctx(LOG_INFO, log_ctx_id(&ctx, MESSAGE_ID_SENT), "...") */
#define log_ctx_id(ctx, id)                                                                        \
	(&(LogContext){.alert_id = (ctx)->alert_id,                                                \
	               .modem = (ctx)->modem,                                                      \
	               .node = (ctx)->node,                                                        \
	               .message_id = (id)})
