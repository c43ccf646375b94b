/* config-internal: what config.c (reading the file) and config-table.c (its sections, keys and
 * value parsers) share; private to gatewayd/.
 *
 * Threads: any, one Parser per thread. Ownership: the Parser borrows its Config and file. */
#pragma once

#include <stdio.h>

#include "config.h"
#include "macro.h"

/* Rows of the table, with room to grow (a static assertion in config-table.c keeps it true). */
#define CONFIG_ITEMS_MAX 96

typedef struct ConfigParser {
	Config *config;
	FILE *file;
	const char *path;
	unsigned line;
	char *error; /* first error, "file:line: reason" */
	/* The section being read, its kind ("modem" for [modem x]) and, for a section with a name,
	 * the object it fills. */
	char section[128];
	char kind[128];
	void *object;
	/* Where each row of the table was first and last given, for the checks after parsing. */
	unsigned first_line[CONFIG_ITEMS_MAX];
	unsigned last_line[CONFIG_ITEMS_MAX];
} Parser;

/* Records the first error as "file:line: reason"; returns 0, which tells inih the line is bad. */
int config_parser_fail(Parser *p, unsigned line, const char *format, ...) _printf_(3, 4);
/* Replaces *field with a copy of value; -ENOMEM leaves it as it was. */
int config_set_string(char **field, const char *value);
/* Frees a vector of n strings (a parsed list); NULL with n 0 is fine. */
void config_free_list(char **v, size_t n);
