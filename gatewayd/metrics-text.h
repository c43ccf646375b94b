/* metrics-text: the Prometheus text exposition format (version 0.0.4), written into memory.
 *
 * A family is opened with its # HELP and # TYPE lines, then its samples follow, each with label
 * pairs whose values are escaped here (\\, \", \n), so callers pass any text. Errors (out of
 * memory, a bad metric or label name, a sample outside a family) stick and are returned once
 * by metrics_text_finish(), so that formatting code reads as a list of figures.
 *
 * Threads: any, one object per thread. Ownership: the text returned by metrics_text_finish()
 * belongs to the MetricsText. */
#pragma once

#include <stddef.h>

typedef struct MetricsText MetricsText;

int metrics_text_new(MetricsText **ret);
MetricsText *metrics_text_free(MetricsText *t);

/* Opens the family `name` (gatewayd_*, [a-zA-Z_:][a-zA-Z0-9_:]*) of `type` ("gauge",
 * "counter", "untyped") with its help text. A name may be opened once per text. */
void metrics_text_family(MetricsText *t, const char *name, const char *type, const char *help);
/* A sample of the open family: label name, value pairs ending with NULL. */
void metrics_text_sample(MetricsText *t, double value, ...) __attribute__((sentinel));

/* The text, NUL-terminated; -ENOMEM or -EINVAL when anything failed. */
int metrics_text_finish(MetricsText *t, const char **ret, size_t *ret_len);
