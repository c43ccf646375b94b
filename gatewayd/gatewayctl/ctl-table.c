/* ctl-table: a column-aligned text table for gatewayctl's listings.
 *
 * Cells are kept row after row in one flat array, the header being row 0; widths are measured
 * only when printing, so adding rows stays cheap and the table needs no second pass by the
 * caller. Strings are sanitised on the way in, which keeps ctl_table_print() free of failure
 * modes other than the stream's own. */
#include "ctl-table.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "ctl-format.h"
#include "macro.h"

struct CtlTable {
	size_t n_columns;
	size_t n_rows; /* including the header */
	size_t n_allocated;
	char **cells; /* n_rows * n_columns */
};

static int add_row(CtlTable *t, const char *const *cells)
{
	size_t base;

	if (t->n_rows == t->n_allocated) {
		size_t n = t->n_allocated ? t->n_allocated * 2 : 8;
		char **c;

		if (n < t->n_allocated || n > SIZE_MAX / t->n_columns)
			return -ENOMEM;
		c = reallocarray(t->cells, n * t->n_columns, sizeof(char *));
		if (!c)
			return -ENOMEM;
		t->cells = c;
		t->n_allocated = n;
	}

	base = t->n_rows * t->n_columns;
	for (size_t i = 0; i < t->n_columns; i++) {
		t->cells[base + i] = ctl_format_text(cells[i] ? cells[i] : "-", 0, false);
		if (!t->cells[base + i]) {
			while (i > 0)
				free(t->cells[base + --i]);
			return -ENOMEM;
		}
	}
	t->n_rows++;
	return 0;
}

int ctl_table_new(size_t n_columns, const char *const *headers, CtlTable **ret)
{
	_cleanup_(ctl_table_freep) CtlTable *t = NULL;
	int r;

	if (n_columns == 0)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->n_columns = n_columns;
	r = add_row(t, headers);
	if (r < 0)
		return r;
	*ret = t;
	t = NULL;
	return 0;
}

CtlTable *ctl_table_free(CtlTable *t)
{
	if (!t)
		return NULL;
	for (size_t i = 0; i < t->n_rows * t->n_columns; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
	return NULL;
}

int ctl_table_add_row(CtlTable *t, const char *const *cells)
{
	return add_row(t, cells);
}

size_t ctl_table_rows(const CtlTable *t)
{
	return t->n_rows - 1;
}

int ctl_table_print(const CtlTable *t, FILE *f, unsigned indent)
{
	_cleanup_free_ size_t *widths = calloc(t->n_columns, sizeof(size_t));

	if (!widths)
		return -ENOMEM;
	for (size_t row = 0; row < t->n_rows; row++)
		for (size_t col = 0; col < t->n_columns; col++)
			widths[col] = MAX(widths[col],
			                  ctl_format_width(t->cells[row * t->n_columns + col]));

	for (size_t row = 0; row < t->n_rows; row++) {
		fprintf(f, "%*s", (int)indent, "");
		for (size_t col = 0; col < t->n_columns; col++) {
			const char *cell = t->cells[row * t->n_columns + col];

			fputs(cell, f);
			if (col + 1 < t->n_columns)
				fprintf(f, "%*s", (int)(widths[col] - ctl_format_width(cell) + 2),
				        "");
		}
		fputc('\n', f);
	}
	return ferror(f) ? -EIO : 0;
}
