/* The Prometheus text exposition format: escaping, grouping, and refusing what would make
 * Prometheus reject the whole file. */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "metrics-text.h"
#include "test.h"

static void test_family_and_samples(void)
{
	MetricsText *t = NULL;
	const char *text;
	size_t len;

	check_int(metrics_text_new(&t), 0);
	metrics_text_family(t, "gatewayd_up", "gauge", "1 while running");
	metrics_text_sample(t, 1, NULL);
	metrics_text_family(t, "gatewayd_alerts", "gauge", "Alerts by state");
	metrics_text_sample(t, 12, "state", "sent", NULL);
	metrics_text_sample(t, 0, "state", "failed", NULL);
	metrics_text_family(t, "gatewayd_queue_oldest_age_seconds", "gauge", "Age");
	metrics_text_sample(t, 3.25, NULL);
	metrics_text_family(t, "gatewayd_big", "counter", "Large");
	metrics_text_sample(t, 123456789012345.0, "node", "a", "modem", "gsm0", NULL);
	metrics_text_sample(t, NAN, NULL);
	metrics_text_sample(t, INFINITY, NULL);
	check_int(metrics_text_finish(t, &text, &len), 0);
	check_str(text, "# HELP gatewayd_up 1 while running\n"
	                "# TYPE gatewayd_up gauge\n"
	                "gatewayd_up 1\n"
	                "# HELP gatewayd_alerts Alerts by state\n"
	                "# TYPE gatewayd_alerts gauge\n"
	                "gatewayd_alerts{state=\"sent\"} 12\n"
	                "gatewayd_alerts{state=\"failed\"} 0\n"
	                "# HELP gatewayd_queue_oldest_age_seconds Age\n"
	                "# TYPE gatewayd_queue_oldest_age_seconds gauge\n"
	                "gatewayd_queue_oldest_age_seconds 3.25\n"
	                "# HELP gatewayd_big Large\n"
	                "# TYPE gatewayd_big counter\n"
	                "gatewayd_big{node=\"a\",modem=\"gsm0\"} 123456789012345\n"
	                "gatewayd_big NaN\n"
	                "gatewayd_big +Inf\n");
	check_int(len, strlen(text));
	metrics_text_free(t);
}

static void test_escaping(void)
{
	MetricsText *t = NULL;
	const char *text;

	check_int(metrics_text_new(&t), 0);
	/* Help escapes backslash and newline, not the quote; label values all three. */
	metrics_text_family(t, "m", "gauge", "a \\ b\nc \"d\"");
	metrics_text_sample(t, 1, "op", "Sim \"Net\"\\2\nx", "empty", "", NULL);
	metrics_text_sample(t, 2, "utf8", "Proximus – ünïcode", NULL);
	check_int(metrics_text_finish(t, &text, NULL), 0);
	check_str(text, "# HELP m a \\\\ b\\nc \"d\"\n"
	                "# TYPE m gauge\n"
	                "m{op=\"Sim \\\"Net\\\"\\\\2\\nx\",empty=\"\"} 1\n"
	                "m{utf8=\"Proximus – ünïcode\"} 2\n");
	metrics_text_free(t);
}

static int finish_error(void (*build)(MetricsText *t))
{
	MetricsText *t = NULL;
	const char *text;
	int r;

	if (metrics_text_new(&t) < 0)
		return -ENOMEM;
	build(t);
	r = metrics_text_finish(t, &text, NULL);
	metrics_text_free(t);
	return r;
}

static void bad_metric_name(MetricsText *t)
{
	metrics_text_family(t, "gatewayd-up", "gauge", "x");
	metrics_text_sample(t, 1, NULL);
}

static void leading_digit(MetricsText *t)
{
	metrics_text_family(t, "1up", "gauge", "x");
}

static void bad_type(MetricsText *t)
{
	metrics_text_family(t, "up", "histogram", "x");
}

static void twice(MetricsText *t)
{
	metrics_text_family(t, "up", "gauge", "x");
	metrics_text_sample(t, 1, NULL);
	metrics_text_family(t, "up", "gauge", "x");
}

static void no_family(MetricsText *t)
{
	metrics_text_sample(t, 1, NULL);
}

static void bad_label(MetricsText *t)
{
	metrics_text_family(t, "up", "gauge", "x");
	metrics_text_sample(t, 1, "a:b", "v", NULL);
}

static void reserved_label(MetricsText *t)
{
	metrics_text_family(t, "up", "gauge", "x");
	metrics_text_sample(t, 1, "__name__", "v", NULL);
}

static void good(MetricsText *t)
{
	metrics_text_family(t, "ns:up_total", "counter", "");
	metrics_text_sample(t, 1, "_x", "v", NULL);
}

static void empty(MetricsText *t)
{
	(void)t;
}

static void test_refusals(void)
{
	check_int(finish_error(bad_metric_name), -EINVAL);
	check_int(finish_error(leading_digit), -EINVAL);
	check_int(finish_error(bad_type), -EINVAL);
	check_int(finish_error(twice), -EINVAL);
	check_int(finish_error(no_family), -EINVAL);
	check_int(finish_error(bad_label), -EINVAL);
	check_int(finish_error(reserved_label), -EINVAL);
	check_int(finish_error(good), 0);
	check_int(finish_error(empty), 0);
}

int main(void)
{
	run(test_family_and_samples);
	run(test_escaping);
	run(test_refusals);
	return test_exit();
}
