/*
 * scope.c - OAuth 2.0 scope sets (RFC 6749 §3.3), with hard limits.
 *
 * Parsing validates the whole string (size, separators, characters, token
 * sizes, token count, duplicates) before allocating anything, so a refused
 * string costs no memory and at most one linear pass plus a bounded
 * duplicate check (<= TK_SCOPES_MAX tokens within TK_SCOPE_STRING_MAX bytes).
 */
#include "tokend/scope.h"

#include <stdlib.h>
#include <string.h>

/* scope-token = 1*( %x21 / %x23-5B / %x5D-7E ): printable ASCII except SP, '"', '\'. */
static int scope_char_ok(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != '"' && c != '\\';
}

int tk_scope_token_valid(const char *s, size_t len)
{
	if (s == NULL || len == 0 || len > TK_SCOPE_TOKEN_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!scope_char_ok((unsigned char)s[i]))
			return 0;
	return 1;
}

static void set_why(const char **why, const char *reason)
{
	if (why != NULL)
		*why = reason;
}

/* Length of the joined form of `set` (tokens plus single separators). */
static size_t joined_len(const tk_scopes *set)
{
	size_t total = 0;
	for (size_t i = 0; i < set->n; i++)
		total += strlen(set->v[i]) + (i > 0 ? 1 : 0);
	return total;
}

static char *dup_token(const char *s, size_t len)
{
	char *p = malloc(len + 1);
	if (p != NULL) {
		memcpy(p, s, len);
		p[len] = '\0';
	}
	return p;
}

int tk_scopes_parse(const char *s, size_t len, tk_scopes *out, const char **why)
{
	/* Token boundaries found in the validation pass. */
	size_t start[TK_SCOPES_MAX], tlen[TK_SCOPES_MAX];
	size_t n = 0;

	if (out == NULL) {
		set_why(why, "no output set");
		return -1;
	}
	memset(out, 0, sizeof(*out));
	if (len == 0) {
		set_why(why, NULL);
		return 0;
	}
	if (s == NULL) {
		set_why(why, "scope is missing");
		return -1;
	}
	if (len > TK_SCOPE_STRING_MAX) {
		set_why(why, "scope string is too long");
		return -1;
	}

	size_t tok = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != ' ') {
			if (!scope_char_ok((unsigned char)s[i])) {
				set_why(why, "scope contains an invalid character");
				return -1;
			}
			continue;
		}
		/* End of a token at i (a space or the end of the string). */
		if (i == tok) {
			set_why(why, i == 0 ? "scope has a leading space"
			              : i == len ? "scope has a trailing space"
			                         : "scope has consecutive spaces");
			return -1;
		}
		if (i - tok > TK_SCOPE_TOKEN_MAX) {
			set_why(why, "scope token is too long");
			return -1;
		}
		if (n == TK_SCOPES_MAX) {
			set_why(why, "too many scope tokens");
			return -1;
		}
		start[n] = tok;
		tlen[n] = i - tok;
		n++;
		tok = i + 1;
	}

	for (size_t i = 1; i < n; i++) {
		for (size_t j = 0; j < i; j++) {
			if (tlen[i] == tlen[j] && memcmp(s + start[i], s + start[j], tlen[i]) == 0) {
				set_why(why, "duplicate scope token");
				return -1;
			}
		}
	}

	for (size_t i = 0; i < n; i++) {
		out->v[i] = dup_token(s + start[i], tlen[i]);
		if (out->v[i] == NULL) {
			out->n = i;
			tk_scopes_free(out);
			set_why(why, "out of memory");
			return -1;
		}
	}
	out->n = n;
	set_why(why, NULL);
	return 0;
}

int tk_scopes_add(tk_scopes *set, const char *token, size_t len, const char **why)
{
	if (set == NULL) {
		set_why(why, "no scope set");
		return -1;
	}
	if (!tk_scope_token_valid(token, len)) {
		set_why(why, len > TK_SCOPE_TOKEN_MAX ? "scope token is too long"
		                                      : "invalid scope token");
		return -1;
	}
	for (size_t i = 0; i < set->n; i++) {
		if (strlen(set->v[i]) == len && memcmp(set->v[i], token, len) == 0) {
			set_why(why, "duplicate scope token");
			return -1;
		}
	}
	if (set->n >= TK_SCOPES_MAX) {
		set_why(why, "too many scope tokens");
		return -1;
	}
	/* Keep every set expressible as a valid scope string. */
	if (joined_len(set) + (set->n > 0 ? 1 : 0) + len > TK_SCOPE_STRING_MAX) {
		set_why(why, "scope string is too long");
		return -1;
	}
	char *copy = dup_token(token, len);
	if (copy == NULL) {
		set_why(why, "out of memory");
		return -1;
	}
	set->v[set->n++] = copy;
	set_why(why, NULL);
	return 0;
}

int tk_scopes_contains(const tk_scopes *set, const char *token)
{
	if (set == NULL || token == NULL)
		return 0;
	for (size_t i = 0; i < set->n; i++)
		if (strcmp(set->v[i], token) == 0)
			return 1;
	return 0;
}

int tk_scopes_subset(const tk_scopes *a, const tk_scopes *b)
{
	if (a == NULL)
		return 1;
	for (size_t i = 0; i < a->n; i++)
		if (!tk_scopes_contains(b, a->v[i]))
			return 0;
	return 1;
}

char *tk_scopes_join(const tk_scopes *set)
{
	size_t total = set != NULL ? joined_len(set) : 0;
	char *out = malloc(total + 1);
	if (out == NULL)
		return NULL;

	size_t o = 0;
	for (size_t i = 0; set != NULL && i < set->n; i++) {
		size_t l = strlen(set->v[i]);
		if (i > 0)
			out[o++] = ' ';
		memcpy(out + o, set->v[i], l);
		o += l;
	}
	out[o] = '\0';
	return out;
}

void tk_scopes_free(tk_scopes *set)
{
	if (set == NULL)
		return;
	for (size_t i = 0; i < set->n && i < TK_SCOPES_MAX; i++) {
		free(set->v[i]);
		set->v[i] = NULL;
	}
	set->n = 0;
}
