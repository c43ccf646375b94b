/* log: journald when our stderr is connected to it, plain stderr lines otherwise.
 *
 * The decision is made once, in log_setup(), the way systemd's own tools make it: JOURNAL_STREAM
 * holds "device:inode" of the stream journald gave us; if stderr is still that stream, structured
 * entries through sd_journal_send() are worth more than text. */
#include "log.h"

#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
/* The CODE_* fields are ours (the caller's file and line): without this, sd_journal_sendv()
 * adds log.c's own as a second CODE_FILE/CODE_LINE/CODE_FUNC to every entry. */
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>

static const char *log_ident = "gatewayd";
static atomic_int log_max_level = LOG_INFO;
static bool log_to_journal;
static char log_node[64];

static bool stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return st.st_dev == (dev_t)dev && st.st_ino == (ino_t)ino;
}

void log_setup(const char *ident)
{
	const char *e;

	if (ident)
		log_ident = ident;
	log_to_journal = stderr_is_journal();
	e = getenv("GATEWAYD_LOG_LEVEL");
	if (e && streq(e, "debug"))
		log_max_level = LOG_DEBUG;
}

void log_set_node(const char *node)
{
	snprintf(log_node, sizeof(log_node), "%s", node ? node : "");
}

void log_set_max_level(int level)
{
	log_max_level = level;
}

int log_get_max_level(void)
{
	return log_max_level;
}

static void _printf_(3, 4) field_add(LogFields *f, size_t *used, const char *format, ...)
{
	size_t room = sizeof(f->buf) - *used;
	va_list ap;
	int n;

	if (f->n >= LOG_FIELDS_MAX || room < 2)
		return;
	va_start(ap, format);
	n = vsnprintf(f->buf + *used, room, format, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= room)
		n = (int)room - 1; /* cut: only the message can be this long */
	f->iov[f->n++] = (struct iovec){.iov_base = f->buf + *used, .iov_len = (size_t)n};
	*used += (size_t)n + 1;
}

void log_journal_fields(int level, int error, const LogContext *ctx, const char *file, int line,
                        const char *func, const char *message, LogFields *ret)
{
	const char *node = ctx && ctx->node ? ctx->node : log_node;
	size_t used = 0;

	ret->n = 0;
	if (error < 0)
		error = -error;
	/* The short fields first, so that a long message is what gets cut. */
	field_add(ret, &used, "PRIORITY=%d", level);
	field_add(ret, &used, "CODE_FILE=%s", file);
	field_add(ret, &used, "CODE_LINE=%d", line);
	field_add(ret, &used, "CODE_FUNC=%s", func);
	field_add(ret, &used, "SYSLOG_IDENTIFIER=%s", log_ident);
	if (error != 0)
		field_add(ret, &used, "ERRNO=%d", error);
	/* Absent context is left out rather than sent empty: GATEWAY_MODEM= would match nothing
	 * useful and clutter every entry. */
	if (ctx && ctx->message_id)
		field_add(ret, &used, "MESSAGE_ID=%s", ctx->message_id);
	if (ctx && ctx->alert_id)
		field_add(ret, &used, "GATEWAY_ALERT_ID=%s", ctx->alert_id);
	if (ctx && ctx->modem)
		field_add(ret, &used, "GATEWAY_MODEM=%s", ctx->modem);
	if (node[0])
		field_add(ret, &used, "GATEWAY_NODE=%s", node);
	field_add(ret, &used, "MESSAGE=%s", message);
}

/* A line is one write(2): lines of several threads, or of several processes sharing one file,
 * never interleave, and logging an accepted alert costs one system call rather than four. */
static void log_stderr(const LogContext *ctx, const char *message)
{
	const char *modem = ctx && ctx->modem ? ctx->modem : NULL;
	const char *alert = ctx && ctx->alert_id ? ctx->alert_id : NULL;
	char line[2400];
	int n;

	n = snprintf(line, sizeof(line), "%s: %s%s%s%s%s%s%s\n", log_ident, modem ? "[" : "",
	             modem ? modem : "", modem ? "] " : "", alert ? "alert " : "",
	             alert ? alert : "", alert ? ": " : "", message);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line)) {
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	fwrite(line, 1, (size_t)n, stderr);
	fflush(stderr);
}

int log_internal(int level, int error, const LogContext *ctx, const char *file, int line,
                 const char *func, const char *format, ...)
{
	char message[2048];
	va_list ap;

	if (error < 0)
		error = -error;
	if (level > log_max_level)
		return -error;

	errno = error; /* for %m */
	va_start(ap, format);
	vsnprintf(message, sizeof(message), format, ap);
	va_end(ap);

	if (log_to_journal) {
		LogFields fields;

		log_journal_fields(level, error, ctx, file, line, func, message, &fields);
		sd_journal_sendv(fields.iov, (int)fields.n);
	} else
		log_stderr(ctx, message);
	return -error;
}
