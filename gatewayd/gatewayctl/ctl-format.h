/* ctl-format: display text for gatewayctl, safe on an operator's terminal.
 *
 * Prefix ctl_format_. Single-threaded use by gatewayctl; no state. Every string gatewayctl shows
 * came over the network (alert texts from upstream systems, operator names from modems, error
 * strings), so each goes through here on its way to the terminal: control characters become
 * spaces, invalid UTF-8 becomes '?', and long values are cut to a width in code points with
 * "..." at the end. Widths count code points, which is right for the Latin and digit text the
 * gateway mostly carries and close enough for the rest.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* A size that holds any scalar shown in a table cell or a status line. */
#define CTL_FORMAT_MAX 256

/* Writes v as display text into buf (size bytes, > 3): a string sanitised, a number in decimal,
 * true/false as "yes"/"no", null or a missing value (v == NULL) as "-", an object or array as
 * "...". Cut with "..." to fit. Returns buf. */
char *ctl_format_json(const json_t *v, char *buf, size_t size);

/* Shorthand for a value inside a printf() argument list: each use has a buffer of its own that
 * lives until the end of the enclosing block. */
#define CTL_J(v) ctl_format_json((v), (char[CTL_FORMAT_MAX]){0}, CTL_FORMAT_MAX)

/* Writes the sanitised s (NULL: "-") into buf (size bytes, > 3), cut with "..." to fit. Returns
 * buf. */
char *ctl_format_str(const char *s, char *buf, size_t size);
#define CTL_S(s) ctl_format_str((s), (char[CTL_FORMAT_MAX]){0}, CTL_FORMAT_MAX)

/* A sanitised copy of s, at most max_width code points long (0: no limit), cut with "...".
 * Newlines are kept when keep_newlines, otherwise they become spaces like every other control
 * character. Returns a string to free(), or NULL when out of memory. */
char *ctl_format_text(const char *s, size_t max_width, bool keep_newlines);

/* Display width of a sanitised string: its number of code points. */
size_t ctl_format_width(const char *s);
