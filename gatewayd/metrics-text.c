/* metrics-text: the Prometheus text exposition format, version 0.0.4.
 *
 * Prometheus and node_exporter's textfile collector reject a whole file for one bad line (an
 * unescaped quote in a modem's name, a family listed twice), so everything that depends on
 * what an operator configured or a modem answered is escaped here, in one place, and names are
 * checked rather than trusted. */
#include "metrics-text.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"

#define FAMILIES_MAX 64

struct MetricsText {
	char *buf;
	size_t len, cap;
	int error;
	const char *family; /* the open family's name (the caller's string) */
	char *families[FAMILIES_MAX];
	size_t n_families;
};

int metrics_text_new(MetricsText **ret)
{
	MetricsText *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	*ret = t;
	return 0;
}

MetricsText *metrics_text_free(MetricsText *t)
{
	if (!t)
		return NULL;
	for (size_t i = 0; i < t->n_families; i++)
		free(t->families[i]);
	free(t->buf);
	free(t);
	return NULL;
}

static void fail(MetricsText *t, int error)
{
	if (t->error == 0)
		t->error = error;
}

static void append(MetricsText *t, const char *s, size_t n)
{
	if (t->error)
		return;
	if (t->len + n + 1 > t->cap) {
		size_t cap = MAX(t->cap * 2, t->len + n + 1);
		char *b;

		cap = MAX(cap, (size_t)4096);
		b = realloc(t->buf, cap);
		if (!b) {
			fail(t, -ENOMEM);
			return;
		}
		t->buf = b;
		t->cap = cap;
	}
	memcpy(t->buf + t->len, s, n);
	t->len += n;
	t->buf[t->len] = '\0';
}

static void append_str(MetricsText *t, const char *s)
{
	append(t, s, strlen(s));
}

/* Label values escape backslash, double quote and newline; help texts the same but the quote. */
static void append_escaped(MetricsText *t, const char *s, bool quote)
{
	for (const char *p = s; *p; p++) {
		if (*p == '\\')
			append_str(t, "\\\\");
		else if (*p == '\n')
			append_str(t, "\\n");
		else if (*p == '"' && quote)
			append_str(t, "\\\"");
		else
			append(t, p, 1);
	}
}

static bool name_valid(const char *s, bool colon)
{
	if (!s || !*s || (*s >= '0' && *s <= '9'))
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '_' || (colon && *p == ':')))
			return false;
	return true;
}

void metrics_text_family(MetricsText *t, const char *name, const char *type, const char *help)
{
	t->family = NULL;
	if (!name_valid(name, true) || !type ||
	    (strcmp(type, "gauge") != 0 && strcmp(type, "counter") != 0 &&
	     strcmp(type, "untyped") != 0)) {
		fail(t, -EINVAL);
		return;
	}
	/* A family listed twice makes the whole file unreadable to Prometheus. */
	for (size_t i = 0; i < t->n_families; i++)
		if (strcmp(t->families[i], name) == 0) {
			fail(t, -EINVAL);
			return;
		}
	if (t->n_families == FAMILIES_MAX) {
		fail(t, -EINVAL);
		return;
	}
	t->families[t->n_families] = strdup(name);
	if (!t->families[t->n_families]) {
		fail(t, -ENOMEM);
		return;
	}
	t->n_families++;

	append_str(t, "# HELP ");
	append_str(t, name);
	append_str(t, " ");
	append_escaped(t, help ? help : "", false);
	append_str(t, "\n# TYPE ");
	append_str(t, name);
	append_str(t, " ");
	append_str(t, type);
	append_str(t, "\n");
	t->family = t->families[t->n_families - 1];
}

void metrics_text_sample(MetricsText *t, double value, ...)
{
	char number[32];
	const char *label;
	bool first = true;
	va_list ap;

	if (!t->family) {
		fail(t, -EINVAL);
		return;
	}
	append_str(t, t->family);
	va_start(ap, value);
	while ((label = va_arg(ap, const char *))) {
		const char *v = va_arg(ap, const char *);

		if (!name_valid(label, false) || strncmp(label, "__", 2) == 0) {
			fail(t, -EINVAL);
			break;
		}
		append_str(t, first ? "{" : ",");
		append_str(t, label);
		append_str(t, "=\"");
		append_escaped(t, v ? v : "", true);
		append_str(t, "\"");
		first = false;
	}
	va_end(ap);
	if (!first)
		append_str(t, "}");
	if (isnan(value))
		snprintf(number, sizeof(number), "NaN");
	else if (isinf(value))
		snprintf(number, sizeof(number), value > 0 ? "+Inf" : "-Inf");
	else
		/* 15 digits: integers exact up to 10^15, fractions without binary noise. */
		snprintf(number, sizeof(number), "%.15g", value);
	append_str(t, " ");
	append_str(t, number);
	append_str(t, "\n");
}

int metrics_text_finish(MetricsText *t, const char **ret, size_t *ret_len)
{
	if (t->error)
		return t->error;
	if (!t->buf)
		append(t, "", 0);
	if (t->error)
		return t->error;
	*ret = t->buf;
	if (ret_len)
		*ret_len = t->len;
	return 0;
}
