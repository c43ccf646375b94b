/* The journal fields of an entry, built without a journal: what `journalctl MESSAGE_ID=...
 * GATEWAY_MODEM=...` will match on. */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "message-ids.h"
#include "test.h"

/* The value of NAME in the fields, copied into buf, or NULL when absent. */
static const char *field(const LogFields *f, const char *name, char *buf, size_t size)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < f->n; i++) {
		const char *base = f->iov[i].iov_base;

		if (f->iov[i].iov_len > len && memcmp(base, name, len) == 0 && base[len] == '=') {
			snprintf(buf, size, "%.*s", (int)(f->iov[i].iov_len - len - 1),
			         base + len + 1);
			return buf;
		}
	}
	return NULL;
}

static void test_failed_send(void)
{
	LogContext ctx = {.alert_id = "3f0c6e0d9b7a4c1e8d2f5a6b7c8d9e0f", .modem = "gsm0"};
	LogFields f;
	char v[256];

	log_journal_fields(LOG_NOTICE, 0, log_ctx_id(&ctx, MESSAGE_ID_SEND_FAILED), "gateway.c", 42,
	                   "apply_result", "Send to +32470000001 failed (CMS 500), retrying", &f);
	check_str(field(&f, "MESSAGE_ID", v, sizeof(v)), "fc62f338018543c384994cf4140d915b");
	check_str(field(&f, "GATEWAY_ALERT_ID", v, sizeof(v)), "3f0c6e0d9b7a4c1e8d2f5a6b7c8d9e0f");
	check_str(field(&f, "GATEWAY_MODEM", v, sizeof(v)), "gsm0");
	check_str(field(&f, "GATEWAY_NODE", v, sizeof(v)), "a");
	check_str(field(&f, "PRIORITY", v, sizeof(v)), "5");
	check_str(field(&f, "SYSLOG_IDENTIFIER", v, sizeof(v)), "gatewayd");
	check_str(field(&f, "CODE_LINE", v, sizeof(v)), "42");
	check_str(field(&f, "MESSAGE", v, sizeof(v)),
	          "Send to +32470000001 failed (CMS 500), retrying");
	/* The old names are gone, and nothing is sent twice. */
	check(!field(&f, "GATEWAYD_ALERT_ID", v, sizeof(v)));
	check(!field(&f, "ERRNO", v, sizeof(v)));
	check_int(f.n, 10);
	/* The shared context itself is untouched: the next message has no id. */
	check(ctx.message_id == NULL);
}

static void test_without_context(void)
{
	LogFields f;
	char v[64];

	log_journal_fields(LOG_ERR, -5, NULL, "x.c", 1, "f", "Failed: I/O error", &f);
	check_str(field(&f, "ERRNO", v, sizeof(v)), "5");
	check_str(field(&f, "GATEWAY_NODE", v, sizeof(v)), "a");
	check(!field(&f, "MESSAGE_ID", v, sizeof(v)));
	check(!field(&f, "GATEWAY_ALERT_ID", v, sizeof(v)));
	check(!field(&f, "GATEWAY_MODEM", v, sizeof(v)));

	/* A node in the context wins over this node's. */
	log_journal_fields(LOG_INFO, 0, &((LogContext){.node = "b"}), "x.c", 1, "f", "m", &f);
	check_str(field(&f, "GATEWAY_NODE", v, sizeof(v)), "b");
}

static void test_long_message_cut_not_fields(void)
{
	static char message[8192];
	LogFields f;
	char v[64];
	size_t total = 0;

	memset(message, 'x', sizeof(message) - 1);
	log_journal_fields(LOG_INFO, 0,
	                   &((LogContext){.alert_id = "00000000000000000000000000000001",
	                                  .message_id = MESSAGE_ID_SENT}),
	                   "x.c", 1, "f", message, &f);
	check_str(field(&f, "MESSAGE_ID", v, sizeof(v)), MESSAGE_ID_SENT);
	check_str(field(&f, "GATEWAY_ALERT_ID", v, sizeof(v)), "00000000000000000000000000000001");
	for (size_t i = 0; i < f.n; i++)
		total += f.iov[i].iov_len + 1;
	check(total <= sizeof(f.buf));
	check(f.iov[f.n - 1].iov_len > 1000 && memcmp(f.iov[f.n - 1].iov_base, "MESSAGE=", 8) == 0);
}

static void test_ids_are_ids(void)
{
	const char *ids[] = {
	        MESSAGE_ID_ALERT_QUEUED, MESSAGE_ID_SENT,        MESSAGE_ID_SEND_FAILED,
	        MESSAGE_ID_FAILED,       MESSAGE_ID_EXPIRED,     MESSAGE_ID_ACKNOWLEDGED,
	        MESSAGE_ID_ESCALATED,    MESSAGE_ID_VOICE_CALL,  MESSAGE_ID_MODEM_DOWN,
	        MESSAGE_ID_MODEM_UP,     MESSAGE_ID_NODE_JOINED, MESSAGE_ID_NODE_LEFT,
	        MESSAGE_ID_PATH_DOWN,    MESSAGE_ID_RESOLVED};

	/* 32 lowercase hex digits (journalctl matches the field as written), all different. */
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		check_int(strlen(ids[i]), 32);
		check(strspn(ids[i], "0123456789abcdef") == 32);
		for (size_t j = 0; j < i; j++)
			check(strcmp(ids[i], ids[j]) != 0);
	}
}

int main(void)
{
	log_setup("gatewayd");
	log_set_node("a");
	run(test_failed_send);
	run(test_without_context);
	run(test_long_message_cut_not_fields);
	run(test_ids_are_ids);
	return test_exit();
}
