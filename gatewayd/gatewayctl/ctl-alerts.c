/* ctl-alerts: the commands that look at alerts: queue (those not yet final) and show (one alert
 * told as a story: its deliveries, attempts, voice calls and acknowledgment in time order). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl-command.h"
#include "ctl-format.h"
#include "ctl-table.h"
#include "log.h"
#include "macro.h"

/* Widths of the cut columns of `queue`, in characters. */
#define QUEUE_TO_WIDTH   32
#define QUEUE_TEXT_WIDTH 40

static int print_deliveries(const json_t *deliveries)
{
	size_t i;

	if (json_array_size(deliveries) == 0) {
		printf("Deliveries: none\n");
		return 0;
	}
	printf("Deliveries:\n");
	for (i = 0; i < json_array_size(deliveries); i++) {
		const json_t *d = json_array_get(deliveries, i);
		const json_t *attempts = json_object_get(d, "attempts");

		printf("  %s: %s%s, %zu attempt%s\n", FIELD(d, "to"), FIELD(d, "state"),
		       streq_ptr(json_string_value(json_object_get(d, "kind")), "copy") ? " (copy)"
		                                                                        : "",
		       json_array_size(attempts), json_array_size(attempts) == 1 ? "" : "s");
	}
	return 0;
}

/* One line of the story: [at, what, node, detail], all strings. */
static int story_add(json_t *story, const json_t *at, const char *what, const char *node,
                     const char *detail)
{
	char when[CTL_FORMAT_MAX];

	snprintf(when, sizeof(when), "%s", CTL_J(at));
	return json_array_append_new(story, json_pack("[s, s, s, s]", when, what, node, detail));
}

static int story_cmp(const void *a, const void *b)
{
	/* RFC 3339 UTC with milliseconds: in time order as strings. Equal times keep their
	 * order (received first), which qsort does not promise: the index breaks the tie. */
	const json_t *x = *(const json_t *const *)a, *y = *(const json_t *const *)b;
	int c = strcmp(json_string_value(json_array_get(x, 0)),
	               json_string_value(json_array_get(y, 0)));

	return c ? c
	         : (int)(json_integer_value(json_array_get(x, 4)) -
	                 json_integer_value(json_array_get(y, 4)));
}

/* The alert's whole story in time order: received, duplicates, each SMS attempt, each
 * escalation step, each call, the acknowledgment. */
static int print_story(const json_t *alert)
{
	static const char *const headers[] = {"WHEN", "WHAT", "NODE", "DETAIL"};
	_cleanup_(ctl_table_freep) CtlTable *table = NULL;
	_cleanup_(json_decrefp) json_t *story = json_array();
	_cleanup_free_ const json_t **order = NULL;
	const json_t *deliveries = json_object_get(alert, "deliveries"), *ack, *e;
	char detail[CTL_FORMAT_MAX * 3];
	bool ack_told = false;
	size_t i, j;
	int r = 0;

	if (!story)
		return ctl_command_oom();
	snprintf(detail, sizeof(detail), "from %s", FIELD(alert, "source"));
	r |= story_add(story, json_object_get(alert, "accepted_at"), "received",
	               FIELD(alert, "node"), detail);
	json_array_foreach(json_object_get(alert, "history"), i, e)
	{
		r |= story_add(story, json_object_get(e, "at"), FIELD(e, "what"), FIELD(e, "node"),
		               FIELD(e, "detail"));
		ack_told |=
		        streq_ptr(json_string_value(json_object_get(e, "what")), "acknowledged");
	}
	json_array_foreach(deliveries, i, e)
	{
		const json_t *a;

		json_array_foreach(json_object_get(e, "attempts"), j, a)
		{
			bool ok =
			        streq_ptr(json_string_value(json_object_get(a, "result")), "sent");

			snprintf(detail, sizeof(detail), "to %s on modem %s%s%s", FIELD(e, "to"),
			         FIELD(a, "modem"), ok ? "" : ": ", ok ? "" : FIELD(a, "error"));
			r |= story_add(story, json_object_get(a, "at"), ok ? "sent" : "failed",
			               FIELD(a, "node"), detail);
		}
	}
	json_array_foreach(json_object_get(alert, "calls"), i, e)
	{
		snprintf(detail, sizeof(detail), "voice call to %s on modem %s: %s, %s s",
		         FIELD(e, "number"), FIELD(e, "modem"), FIELD(e, "outcome"),
		         FIELD(e, "duration"));
		r |= story_add(story, json_object_get(e, "at"), "called", FIELD(e, "node"), detail);
	}
	ack = json_object_get(alert, "ack");
	/* An acknowledgment by SMS has its own history line, with the sender's number. */
	if (json_is_object(ack) && !ack_told) {
		snprintf(detail, sizeof(detail), "by %s via %s", FIELD(ack, "by"),
		         FIELD(ack, "via"));
		r |= story_add(story, json_object_get(ack, "at"), "acknowledged", "-", detail);
	}
	if (r < 0)
		return ctl_command_oom();

	order = calloc(json_array_size(story) + 1, sizeof(*order));
	if (!order)
		return ctl_command_oom();
	json_array_foreach(story, i, e)
	{
		json_array_append_new((json_t *)e, json_integer((json_int_t)i));
		order[i] = e;
	}
	qsort(order, json_array_size(story), sizeof(*order), story_cmp);

	printf("Story:\n");
	r = ctl_table_new(ELEMENTSOF(headers), headers, &table);
	if (r < 0)
		return ctl_command_oom();
	for (i = 0; i < json_array_size(story); i++) {
		const char *cells[4];

		for (j = 0; j < 4; j++)
			cells[j] = json_string_value(json_array_get(order[i], j));
		r = ctl_table_add_row(table, cells);
		if (r < 0)
			return ctl_command_oom();
	}
	r = ctl_table_print(table, stdout, 2);
	return r == -ENOMEM ? ctl_command_oom() : 0;
}

static int print_alert(const json_t *alert)
{
	const json_t *ack = json_object_get(alert, "ack");
	int r;

	printf("%12s: %s\n", "Id", FIELD(alert, "id"));
	printf("%12s: %s\n", "State", FIELD(alert, "state"));
	printf("%12s: %s\n", "Priority", FIELD(alert, "priority"));
	printf("%12s: %s\n", "Key", FIELD(alert, "key"));
	printf("%12s: %s\n", "Source", FIELD(alert, "source"));
	printf("%12s: %s\n", "Accepted at", FIELD(alert, "accepted_at"));
	printf("%12s: %s\n", "Node", FIELD(alert, "node"));
	printf("%12s: ", "Text");
	r = ctl_command_print_block(json_object_get(alert, "text"), 14);
	if (r < 0)
		return r;
	if (json_is_object(ack) && json_is_string(json_object_get(ack, "from")))
		printf("%12s: by %s from %s via %s at %s\n", "Acknowledged", FIELD(ack, "by"),
		       FIELD(ack, "from"), FIELD(ack, "via"), FIELD(ack, "at"));
	else if (json_is_object(ack))
		printf("%12s: by %s via %s at %s\n", "Acknowledged", FIELD(ack, "by"),
		       FIELD(ack, "via"), FIELD(ack, "at"));
	else
		printf("%12s: no\n", "Acknowledged");
	if (json_is_object(json_object_get(alert, "resolved"))) {
		const json_t *res = json_object_get(alert, "resolved");

		printf("%12s: by %s via %s at %s\n", "Resolved", FIELD(res, "by"),
		       FIELD(res, "via"), FIELD(res, "at"));
	}

	if (json_is_object(json_object_get(alert, "escalation"))) {
		const json_t *esc = json_object_get(alert, "escalation");

		printf("%12s: step %s%s%s\n", "Escalation", FIELD(esc, "step"),
		       json_is_true(json_object_get(esc, "active")) ? ", next at " : ", stopped",
		       json_is_true(json_object_get(esc, "active")) ? FIELD(esc, "next_at") : "");
	}
	if (json_is_string(json_object_get(alert, "ack_code")))
		printf("%12s: reply ACK %s\n", "Ack code", FIELD(alert, "ack_code"));

	putchar('\n');
	r = print_deliveries(json_object_get(alert, "deliveries"));
	if (r < 0)
		return r;
	putchar('\n');
	return print_story(alert);
}

/* The recipients of a queued alert, comma-separated: the "to" of its deliveries. Returns a
 * string to free(), or NULL when out of memory. */
static char *join_recipients(const json_t *alert)
{
	_cleanup_free_ char *s = NULL;
	const json_t *deliveries = json_object_get(alert, "deliveries");
	size_t i, size = 0;
	char *ret;
	FILE *f;

	f = open_memstream(&s, &size);
	if (!f)
		return NULL;
	for (i = 0; i < json_array_size(deliveries); i++) {
		const json_t *to = json_object_get(json_array_get(deliveries, i), "to");

		fprintf(f, "%s%s", i > 0 ? "," : "",
		        json_is_string(to) ? json_string_value(to) : "?");
	}
	if (fclose(f) != 0)
		return NULL;
	ret = s;
	s = NULL;
	return ret;
}

static int print_queue(const json_t *reply)
{
	static const char *const headers[] = {"ID", "STATE", "PRIORITY", "TO", "TEXT"};
	_cleanup_(ctl_table_freep) CtlTable *table = NULL;
	const json_t *alerts = json_object_get(reply, "alerts");
	size_t i;
	int r;

	if (!json_is_array(alerts))
		return log_error_errno(EPROTO, "malformed reply: no \"alerts\" list");
	if (json_array_size(alerts) == 0) {
		printf("No pending alerts.\n");
		return 0;
	}

	r = ctl_table_new(ELEMENTSOF(headers), headers, &table);
	if (r < 0)
		return ctl_command_oom();
	for (i = 0; i < json_array_size(alerts); i++) {
		const json_t *a = json_array_get(alerts, i);
		_cleanup_free_ char *all = NULL, *to = NULL, *text = NULL;
		const json_t *t = json_object_get(a, "text");

		all = join_recipients(a);
		if (!all)
			return ctl_command_oom();
		to = ctl_format_text(all, QUEUE_TO_WIDTH, false);
		text = ctl_format_text(json_is_string(t) ? json_string_value(t) : "-",
		                       QUEUE_TEXT_WIDTH, false);
		if (!to || !text)
			return ctl_command_oom();
		r = ctl_table_add_row(table, (const char *[]){FIELD(a, "id"), FIELD(a, "state"),
		                                              FIELD(a, "priority"),
		                                              to[0] ? to : NULL, text});
		if (r < 0)
			return ctl_command_oom();
	}
	r = ctl_table_print(table, stdout, 0);
	if (r == -ENOMEM)
		return ctl_command_oom();
	return 0;
}

int ctl_alerts_queue_command(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv)
{
	_cleanup_(json_decrefp) json_t *reply = NULL;
	bool json;
	int r;

	r = ctl_command_parse_look_options(cmd, argc, argv, NULL, NULL, &json);
	if (r != 0)
		return r;
	r = ctl_command_call(ctl, json_pack("{s:s}", "op", "queue"), &reply);
	if (r != 0)
		return r;
	return json ? ctl_command_print_json(reply) : print_queue(reply);
}

int ctl_alerts_show_command(Ctl *ctl, const CtlCommand *cmd, int argc, char **argv)
{
	_cleanup_(json_decrefp) json_t *reply = NULL;
	char id[ID_HEX_LEN + 1];
	const char *arg;
	bool json;
	int r;

	r = ctl_command_parse_look_options(cmd, argc, argv, "ID", &arg, &json);
	if (r != 0)
		return r;
	r = ctl_command_parse_id(cmd, arg, id);
	if (r < 0)
		return r;
	r = ctl_command_call(ctl, json_pack("{s:s, s:s}", "op", "get", "id", id), &reply);
	if (r != 0)
		return r;
	return json ? ctl_command_print_json(reply) : print_alert(reply);
}
