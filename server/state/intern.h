/*
 * intern.h - one process-wide table of immutable, refcounted values that many
 * cached API keys share: account IDs, subjects, custom-claim texts, scope sets
 * and audience lists. A million keys of a thousand accounts hold a thousand
 * account strings and, typically, a handful of scope sets, instead of a copy
 * each (keycache.h: a key record is fixed-size apart from these).
 *
 * Every value is found by its exact text (and kind): equal texts give the same
 * pointer. Each call that returns a value takes one reference; the matching
 * release drops it, and the last release frees the value. Values never change
 * while referenced, so readers need no lock; the table itself is sharded
 * (16 shards, a mutex each) and only building and freeing key records touch it.
 * Any thread may intern and release.
 *
 * NULL is returned on allocation failure: callers fail closed (a key record
 * that cannot hold its values is never used or cached).
 */
#ifndef TOKEND_INTERN_H
#define TOKEND_INTERN_H

#include <stddef.h>

#include <tokend/scope.h>

/* The most items of an interned list (a key's audiences). */
#define TK_STRLIST_MAX 16

/* An ordered list of strings (a space-separated text split). */
typedef struct tk_strlist {
	size_t n;
	const char *v[TK_STRLIST_MAX];
} tk_strlist;

/* The shared copy of the NUL-terminated `s`, or NULL (out of memory). */
const char *tk_intern_str(const char *s);
/* Drop one reference of a value from tk_intern_str (NULL: nothing). */
void tk_intern_str_release(const char *s);

/*
 * The shared scope set of the space-separated scope string `s` (strict
 * tk_scopes_parse rules). NULL with *why set when `s` is not a valid scope
 * string, or out of memory (*why "out of memory").
 */
const tk_scopes *tk_intern_scopes(const char *s, const char **why);
void tk_intern_scopes_release(const tk_scopes *set);

/*
 * The shared list of the space-separated words of `s` ("" gives an empty
 * list; a doubled space gives no empty word). Past TK_STRLIST_MAX words the
 * rest is left out (a key then allows fewer audiences, never more). NULL: out
 * of memory.
 */
const tk_strlist *tk_intern_list(const char *s);
void tk_intern_list_release(const tk_strlist *list);

/* Values currently held (for tests and figures). */
size_t tk_intern_count(void);

#endif
