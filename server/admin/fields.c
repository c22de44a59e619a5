/*
 * fields.c - the admin API's inputs, checked: members of the JSON body
 * (strict: unknown members refused), display texts, string arrays (scopes,
 * audiences), and the query's limit. Each check answers 400 naming the
 * field, and returns -1, on a bad value; nothing reaches the database then.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_int.h"
#include "input.h"
#include "log.h"


/* Refuse members other than `allowed` (NULL-terminated). */
int tk_admin_only_fields(tk_adminreq *ar, const char *const *allowed)
{
	const char *k;
	json_t *v;
	json_object_foreach(ar->body, k, v) {
		int ok = 0;
		for (int i = 0; allowed[i]; i++)
			ok |= strcmp(k, allowed[i]) == 0;
		if (!ok) {
			char d[200];
			snprintf(d, sizeof(d), "unknown field '%.60s'", k);
			char field[64];
			tk_log_escape(k, strlen(k), field, sizeof(field));
			tk_admin_send_error(ar, 400, "invalid_request", d, field);
			return -1;
		}
	}
	return 0;
}

/* A display text (valid UTF-8, as JSON strings are): 1..max characters, no
 * control, bidi, zero-width or other invisible character (tk_input_text_unsafe). */
const char *tk_admin_check_text(const char *s, size_t max)
{
	size_t n = strlen(s), chars = 0;
	if (n == 0)
		return "must not be empty";
	const char *why = tk_input_text_unsafe(s, n);
	if (why)
		return why;
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			chars++;
	if (chars > max)
		return max == 100 ? "must be at most 100 characters"
		       : max == 255 ? "must be at most 255 characters"
		       : max == 500 ? "must be at most 500 characters" : "is too long";
	return NULL;
}

int tk_admin_get_string(tk_adminreq *ar, const char *field, int required, size_t max, const char **out)
{
	json_t *v = json_object_get(ar->body, field);
	*out = NULL;
	if (!v || json_is_null(v)) {
		if (required) {
			char d[96];
			snprintf(d, sizeof(d), "%s is required", field);
			tk_admin_send_error(ar, 400, "invalid_request", d, field);
			return -1;
		}
		return 0;
	}
	if (!json_is_string(v)) {
		char d[96];
		snprintf(d, sizeof(d), "%s must be a string", field);
		tk_admin_send_error(ar, 400, "invalid_request", d, field);
		return -1;
	}
	const char *why = tk_admin_check_text(json_string_value(v), max);
	if (why || strlen(json_string_value(v)) != json_string_length(v)) {
		char d[128];
		snprintf(d, sizeof(d), "%s %s", field, why ? why : "must not contain NUL");
		tk_admin_send_error(ar, 400, "invalid_request", d, field);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

/* A JSON array of distinct strings -> PostgreSQL array literal via JSON text. */
int tk_admin_get_string_array(tk_adminreq *ar, const char *field, int required, size_t maxn, int scopes,
                              char **json_out, size_t *count)
{
	json_t *v = json_object_get(ar->body, field);
	*json_out = NULL;
	*count = 0;
	char d[160];
	if (!v || json_is_null(v)) {
		if (required) {
			snprintf(d, sizeof(d), "%s is required", field);
			tk_admin_send_error(ar, 400, "invalid_request", d, field);
			return -1;
		}
		*json_out = strdup("[]");
		if (!*json_out)
			ar->oom = 1;   /* tk_admin_run answers 500: never a NULL list */
		return 0;
	}
	if (!json_is_array(v) || json_array_size(v) > maxn) {
		snprintf(d, sizeof(d), "%s must be an array of at most %zu strings", field, maxn);
		tk_admin_send_error(ar, 400, "invalid_request", d, field);
		return -1;
	}
	size_t i;
	json_t *e;
	json_array_foreach(v, i, e) {
		const char *s = json_string_value(e);
		const char *why = NULL;
		if (!s || strlen(s) != json_string_length(e))
			why = "must hold strings";
		else if (scopes && !tk_scope_token_valid(s, strlen(s)))
			why = "holds an invalid scope name";
		else if (!scopes && (strlen(s) == 0 || strlen(s) > 255 || strpbrk(s, " \"\\") ||
		                     tk_admin_check_text(s, 255)))
			why = "holds an invalid audience (printable, no spaces, at most 255 characters)";
		else {
			for (size_t k = 0; k < i && !why; k++)
				if (strcmp(json_string_value(json_array_get(v, k)), s) == 0)
					why = "holds a duplicate";
		}
		if (why) {
			snprintf(d, sizeof(d), "%s %s", field, why);
			tk_admin_send_error(ar, 400, "invalid_request", d, field);
			return -1;
		}
	}
	if (required && json_array_size(v) == 0) {
		snprintf(d, sizeof(d), "%s must not be empty", field);
		tk_admin_send_error(ar, 400, "invalid_request", d, field);
		return -1;
	}
	*json_out = json_dumps(v, JSON_COMPACT);
	if (!*json_out)
		ar->oom = 1;
	*count = json_array_size(v);
	return 0;
}


int tk_admin_parse_limit(tk_adminreq *ar, int *limit)
{
	const char *l = evhttp_find_header(&ar->query, "limit");
	*limit = TK_ADMIN_PAGE_DEFAULT;
	if (!l)
		return 0;
	char *end;
	errno = 0;
	long v = strtol(l, &end, 10);
	if (errno || end == l || *end || v < 1 || v > TK_ADMIN_PAGE_MAX) {
		tk_admin_send_error(ar, 400, "invalid_request", "limit must be a whole number from 1 to 200", "limit");
		return -1;
	}
	*limit = (int)v;
	return 0;
}


/* rate_limit: absent (0), null (1, *text ""), or 1-1000000 (1, *text the
 * number); -1 after answering a bad value. */
int tk_admin_get_rate_limit(tk_adminreq *ar, char text[16])
{
	json_t *v = json_object_get(ar->body, "rate_limit");
	text[0] = '\0';
	if (!v)
		return 0;
	if (json_is_null(v))
		return 1;
	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000000) {
		tk_admin_send_error(ar, 400, "invalid_request",
		                    "rate_limit must be a whole number of tokens per minute from 1 to 1000000, or null",
		                    "rate_limit");
		return -1;
	}
	snprintf(text, 16, "%lld", (long long)json_integer_value(v));
	return 1;
}
