/* ctl-table: a column-aligned text table for gatewayctl's listings.
 *
 * Prefix ctl_table_. Single-threaded. The table owns sanitised copies of everything added to it
 * (see ctl-format.h), so callers may pass borrowed strings, including ones that live in JSON
 * replies or stack buffers. Columns are as wide as their widest cell, separated by two spaces;
 * the last column is not padded, so lines carry no trailing blanks.
 */
#pragma once

#include <stddef.h>
#include <stdio.h>

typedef struct CtlTable CtlTable;

/* A table with n_columns columns and these headers (n_columns strings). */
int ctl_table_new(size_t n_columns, const char *const *headers, CtlTable **ret);
CtlTable *ctl_table_free(CtlTable *t);

static inline void ctl_table_freep(CtlTable **t)
{
	ctl_table_free(*t);
}

/* Appends a row of n_columns cells; a NULL cell shows as "-". */
int ctl_table_add_row(CtlTable *t, const char *const *cells);
size_t ctl_table_rows(const CtlTable *t);

/* Writes the header line and the rows, each line prefixed by indent spaces. -EIO when f fails. */
int ctl_table_print(const CtlTable *t, FILE *f, unsigned indent);
