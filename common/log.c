/* log: journald when our stderr is connected to it, plain stderr lines otherwise.
 *
 * The decision is made once, in log_setup(), the way systemd's own tools make it: JOURNAL_STREAM
 * holds "device:inode" of the stream journald gave us; if stderr is still that stream, structured
 * entries through sd_journal_send() are worth more than text. */
#include "log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>

static const char *log_ident = "gatewayd";
static atomic_int log_max_level = LOG_INFO;
static bool log_to_journal;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
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
		char code_line[32];

		snprintf(code_line, sizeof(code_line), "CODE_LINE=%d", line);
		sd_journal_send("MESSAGE=%s", message, "PRIORITY=%d", level, "CODE_FILE=%s", file,
				code_line, "CODE_FUNC=%s", func, "SYSLOG_IDENTIFIER=%s", log_ident,
				"ERRNO=%d", error, "GATEWAYD_ALERT_ID=%s",
				ctx && ctx->alert_id ? ctx->alert_id : "", "GATEWAYD_MODEM=%s",
				ctx && ctx->modem ? ctx->modem : "", "GATEWAYD_NODE=%s",
				ctx && ctx->node ? ctx->node : log_node, NULL);
	} else {
		pthread_mutex_lock(&log_lock);
		fprintf(stderr, "%s: ", log_ident);
		if (ctx && ctx->modem)
			fprintf(stderr, "[%s] ", ctx->modem);
		if (ctx && ctx->alert_id)
			fprintf(stderr, "alert %s: ", ctx->alert_id);
		fprintf(stderr, "%s\n", message);
		fflush(stderr);
		pthread_mutex_unlock(&log_lock);
	}
	return -error;
}
