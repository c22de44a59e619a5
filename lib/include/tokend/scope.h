/*
 * scope.h - OAuth 2.0 scope strings (RFC 6749 §3.3).
 *
 *   scope       = scope-token *( SP scope-token )
 *   scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
 *
 * We are stricter than the grammar where it makes abuse cheap to refuse:
 * separators are single spaces (no leading, trailing or doubled space),
 * duplicates are refused, a token is at most TK_SCOPE_TOKEN_MAX bytes, a set
 * at most TK_SCOPES_MAX tokens, a string at most TK_SCOPE_STRING_MAX bytes.
 */
#ifndef TOKEND_SCOPE_H
#define TOKEND_SCOPE_H

#include "tokend/export.h"

#include <stddef.h>

#define TK_SCOPE_TOKEN_MAX   128
#define TK_SCOPES_MAX        32
#define TK_SCOPE_STRING_MAX  1024

/* An ordered set of scope tokens; owns its strings. A zeroed struct is empty. */
typedef struct tk_scopes {
	size_t n;
	char *v[TK_SCOPES_MAX];
} tk_scopes;

/* 1 if s[0..len) is a valid scope-token within TK_SCOPE_TOKEN_MAX, else 0. */
TK_API int tk_scope_token_valid(const char *s, size_t len);

/*
 * Parse a space-delimited scope string of `len` bytes (no NUL needed).
 * An empty string (len 0) gives an empty set. Returns 0 and fills `out`, or
 * -1 with *why set to a static reason and `out` left empty.
 */
TK_API int tk_scopes_parse(const char *s, size_t len, tk_scopes *out, const char **why);

/* Add one token (copied), refusing invalid tokens, duplicates and overflow:
 * 0 on success, -1 with *why set. */
TK_API int tk_scopes_add(tk_scopes *set, const char *token, size_t len, const char **why);

/* 1 if `token` is in the set. */
TK_API int tk_scopes_contains(const tk_scopes *set, const char *token);
/* 1 if every token of `a` is in `b`. */
TK_API int tk_scopes_subset(const tk_scopes *a, const tk_scopes *b);
/* A malloc'd space-joined string (caller frees); "" for an empty set; NULL on OOM. */
TK_API char *tk_scopes_join(const tk_scopes *set);
TK_API void tk_scopes_free(tk_scopes *set);

#endif
