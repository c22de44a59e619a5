/*
 * keylist.h - the filters and sort orders of a key listing, one table shared
 * by the admin API (GET /admin/v1/keys, server/admin/keys.c) and the local
 * command line (`tokend key list`, server/cli/cli_key_local.c), so that a
 * filter means the same everywhere and is checked once. The remote command
 * line passes the same names as query parameters.
 *
 * A filter is a row: its name (the query parameter; the CLI option is
 * --name with '_' as '-'), its SQL condition on the key row `k` with "$?"
 * standing for its one parameter, and a check that turns the given value
 * into that parameter (or says why not). More filters (role, member,
 * environment, kind) are more rows.
 */
#ifndef TOKEND_KEYLIST_H
#define TOKEND_KEYLIST_H

#include <stddef.h>

#define TK_KEYLIST_VALUE_MAX 512     /* a filter's parameter text, NUL included */
#define TK_KEYLIST_FILTERS_MAX 12    /* rows the table may grow to */

typedef struct tk_keyfilter {
	const char *name;
	const char *sql;
	/* NULL with the parameter text in `out`, or why `v` is refused (for
	 * "<name> <why>"). */
	const char *(*check)(const char *v, char out[TK_KEYLIST_VALUE_MAX]);
} tk_keyfilter;

extern const tk_keyfilter tk_keyfilters[];
extern const size_t tk_keyfilters_count;

/* The sort orders: name (the `sort` value) and the text it sorts by, which
 * is also what a page's cursor holds (with the key ID after the last '|'). */
typedef struct tk_keysort {
	const char *name;
	const char *sql;
} tk_keysort;

extern const tk_keysort tk_keysorts[];
extern const size_t tk_keysorts_count;

/* The filter or sort order named `name`, or NULL. */
const tk_keyfilter *tk_keyfilter_find(const char *name);
const tk_keysort *tk_keysort_find(const char *name);

/*
 * The listing's conditions: for each filter with a value (values[i] for
 * tk_keyfilters[i], NULL: not given), " AND (<sql>)" appended to `sql` with
 * parameter numbers from `first`, the checked parameter text in params[i]
 * (TK_KEYLIST_VALUE_MAX each) and its pointer in `out` (in order). Returns
 * the number of parameters added, or -1 with *bad naming the refused filter
 * and *why its reason (nothing usable then).
 */
int tk_keylist_where(const char *const *values, int first, char *sql, size_t sqllen,
                     char params[][TK_KEYLIST_VALUE_MAX], const char **out, const char **bad, const char **why);

#endif
