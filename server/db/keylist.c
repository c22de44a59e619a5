/*
 * keylist.c - the filters and sort orders of a key listing (see keylist.h).
 */
#include "keylist.h"

#include <stdio.h>
#include <string.h>

#include <tokend/keyfmt.h>
#include <tokend/timefmt.h>

#include "input.h"

static const char *check_state(const char *v, char out[TK_KEYLIST_VALUE_MAX])
{
	if (strcmp(v, "enabled") && strcmp(v, "disabled") && strcmp(v, "revoked") && strcmp(v, "expired"))
		return "must be enabled, disabled, revoked or expired";
	snprintf(out, TK_KEYLIST_VALUE_MAX, "%s", v);
	return NULL;
}

/* A display text of 1..max characters (UTF-8), nothing invisible. */
static const char *check_text(const char *v, size_t max, char out[TK_KEYLIST_VALUE_MAX])
{
	size_t n = strlen(v), chars = 0;
	if (n == 0)
		return "must not be empty";
	if (n >= TK_KEYLIST_VALUE_MAX)
		return "is too long";
	const char *why = tk_input_text_unsafe(v, n);
	if (why)
		return why;
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)v[i] & 0xc0) != 0x80)
			chars++;
	if (chars > max)
		return max == 100 ? "must be at most 100 characters" : "must be at most 255 characters";
	memcpy(out, v, n + 1);
	return NULL;
}

static const char *check_name(const char *v, char out[TK_KEYLIST_VALUE_MAX])
{
	return check_text(v, 100, out);
}

static const char *check_subject(const char *v, char out[TK_KEYLIST_VALUE_MAX])
{
	return check_text(v, 255, out);
}

/* A role name or member ID: 1..128 displayable characters. */
static const char *check_ident(const char *v, char out[TK_KEYLIST_VALUE_MAX])
{
	if (strlen(v) > 128 * 4)
		return "must be at most 128 characters";
	const char *why = check_text(v, 255, out);
	if (!why && strlen(out) > 128)
		why = "must be at most 128 characters";
	return why;
}

static const char *check_environment(const char *v, char out[TK_KEYLIST_VALUE_MAX])
{
	if (strcmp(v, "live") && strcmp(v, "test"))
		return "must be live or test";
	snprintf(out, TK_KEYLIST_VALUE_MAX, "%s", v);
	return NULL;
}

static const char *check_kind(const char *v, char out[TK_KEYLIST_VALUE_MAX])
{
	if (strcmp(v, "account") && strcmp(v, "member") && strcmp(v, "publishable"))
		return "must be account, member or publishable";
	snprintf(out, TK_KEYLIST_VALUE_MAX, "%s", v);
	return NULL;
}

/* "never", or a duration (30d, 12h, 1w2d): seconds, -1 for never. */
static const char *check_unused(const char *v, char out[TK_KEYLIST_VALUE_MAX])
{
	if (strcmp(v, "never") == 0) {
		snprintf(out, TK_KEYLIST_VALUE_MAX, "-1");
		return NULL;
	}
	int64_t secs;
	const char *why;
	if (tk_duration_parse(v, &secs, &why) != 0)
		return "must be never or a duration such as 30d, 12h or 1w";
	snprintf(out, TK_KEYLIST_VALUE_MAX, "%lld", (long long)secs);
	return NULL;
}

const tk_keyfilter tk_keyfilters[] = {
	{ "state", "tokend_key_state(k) = $?", check_state },
	{ "name", "strpos(lower(k.name), lower($?)) > 0", check_name },
	{ "subject", "k.subject = $?", check_subject },
	/* Not used in the last D (never used included), or never used (-1). */
	{ "unused_since", "CASE WHEN $?::bigint < 0 THEN k.last_used_at IS NULL"
	                  " ELSE k.last_used_at IS NULL OR k.last_used_at < now() - make_interval(secs => $?::bigint) END",
	  check_unused },
	/* The key model (sql/007_key_model.sql): role, member, environment, kind. */
	{ "role", "k.role = $?", check_ident },
	{ "member", "k.member_id = $?", check_ident },
	{ "environment", "k.environment = $?", check_environment },
	{ "kind", "$? = CASE WHEN k.publishable THEN 'publishable' WHEN k.member_id IS NULL THEN 'account' ELSE 'member' END", check_kind },
};
const size_t tk_keyfilters_count = sizeof(tk_keyfilters) / sizeof(tk_keyfilters[0]);
_Static_assert(sizeof(tk_keyfilters) / sizeof(tk_keyfilters[0]) <= TK_KEYLIST_FILTERS_MAX, "too many key filters");

/* In `sql`, "$?" stands for the filter's parameter (each occurrence). */

/* Text that sorts (COLLATE "C") as the order means: times as fixed-width
 * UTC text; a key never used sorts before every used one. */
const tk_keysort tk_keysorts[] = {
	{ "created_at", "to_char(k.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') COLLATE \"C\"" },
	{ "last_used_at", "coalesce(to_char(k.last_used_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), '') COLLATE \"C\"" },
	{ "name", "lower(k.name) COLLATE \"C\"" },
};
const size_t tk_keysorts_count = sizeof(tk_keysorts) / sizeof(tk_keysorts[0]);

const tk_keyfilter *tk_keyfilter_find(const char *name)
{
	for (size_t i = 0; i < tk_keyfilters_count; i++)
		if (strcmp(tk_keyfilters[i].name, name) == 0)
			return &tk_keyfilters[i];
	return NULL;
}

const tk_keysort *tk_keysort_find(const char *name)
{
	for (size_t i = 0; i < tk_keysorts_count; i++)
		if (strcmp(tk_keysorts[i].name, name) == 0)
			return &tk_keysorts[i];
	return NULL;
}

int tk_keylist_where(const char *const *values, int first, char *sql, size_t sqllen,
                     char params[][TK_KEYLIST_VALUE_MAX], const char **out, const char **bad, const char **why)
{
	int n = 0;
	size_t len = strlen(sql);
	*bad = *why = NULL;
	for (size_t i = 0; i < tk_keyfilters_count; i++) {
		if (!values[i])
			continue;
		const char *w = tk_keyfilters[i].check(values[i], params[n]);
		if (w) {
			*bad = tk_keyfilters[i].name;
			*why = w;
			return -1;
		}
		/* " AND (<sql>)" with each "$?" as this filter's parameter number. */
		char num[16];
		snprintf(num, sizeof(num), "$%d", first + n);
		int fits = len + 6 < sqllen;
		if (fits) {
			memcpy(sql + len, " AND (", 6);
			len += 6;
		}
		for (const char *c = tk_keyfilters[i].sql; fits && *c; c++) {
			const char *piece = c[0] == '$' && c[1] == '?' ? num : NULL;
			size_t pl = piece ? strlen(piece) : 1;
			if (len + pl + 2 >= sqllen) {
				fits = 0;
				break;
			}
			memcpy(sql + len, piece ? piece : c, pl);
			len += pl;
			c += piece ? 1 : 0;
		}
		if (fits) {
			sql[len++] = ')';
			sql[len] = '\0';
		}
		if (!fits) {
			*bad = tk_keyfilters[i].name;
			*why = "makes the query too long";
			return -1;
		}
		out[n] = params[n];
		n++;
	}
	return n;
}
