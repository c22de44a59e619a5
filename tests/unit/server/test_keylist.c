/*
 * test_keylist.c - the key-list filter table (server/db/keylist.c): each
 * filter's value check, the conditions built with their parameter numbers
 * ("$?" replaced everywhere in a condition, numbers counted from `first` over
 * the filters given only), a refused value naming its filter and producing
 * nothing usable, a query buffer too small, and the sort orders.
 */
#include <string.h>

#include "keylist.h"
#include "unit.h"

static const char *const *vals(const char *state, const char *name, const char *subject, const char *unused)
{
	static const char *v[TK_KEYLIST_FILTERS_MAX];
	memset(v, 0, sizeof(v));
	const char *given[][2] = { { "state", state }, { "name", name }, { "subject", subject },
	                           { "unused_since", unused } };
	for (size_t i = 0; i < 4; i++) {
		const tk_keyfilter *f = tk_keyfilter_find(given[i][0]);
		TEST_ASSERT(f != NULL);
		if (f)
			v[f - tk_keyfilters] = given[i][1];
	}
	return v;
}

static int build(const char *const *v, int first, char *sql, size_t len, const char **out, const char **bad)
{
	static char params[TK_KEYLIST_FILTERS_MAX][TK_KEYLIST_VALUE_MAX];
	const char *why;
	sql[0] = '\0';
	return tk_keylist_where(v, first, sql, len, params, out, bad, &why);
}

static void test_conditions_and_numbers(void)
{
	char sql[2048];
	const char *out[TK_KEYLIST_FILTERS_MAX], *bad;
	TEST_ASSERT(build(vals(NULL, NULL, NULL, NULL), 5, sql, sizeof(sql), out, &bad) == 0);
	TEST_ASSERT_STR(sql, "");
	TEST_ASSERT(build(vals(NULL, NULL, "jane", "30d"), 5, sql, sizeof(sql), out, &bad) == 2);
	TEST_ASSERT(strstr(sql, " AND (k.subject = $5)") != NULL);
	/* unused_since uses its parameter twice: both are $6, no "$?" is left. */
	TEST_ASSERT(strstr(sql, "$6::bigint < 0") != NULL);
	TEST_ASSERT(strstr(sql, "make_interval(secs => $6::bigint)") != NULL);
	TEST_ASSERT(strstr(sql, "$?") == NULL && strstr(sql, "$7") == NULL);
	TEST_ASSERT_STR(out[0], "jane");
	TEST_ASSERT_STR(out[1], "2592000");
	TEST_ASSERT(build(vals("enabled", "bill", NULL, "never"), 2, sql, sizeof(sql), out, &bad) == 3);
	TEST_ASSERT(strstr(sql, "tokend_key_state(k) = $2") && strstr(sql, "lower($3)") && strstr(sql, "$4::bigint"));
	TEST_ASSERT_STR(out[2], "-1");
}

static void test_refusals(void)
{
	char sql[2048];
	const char *out[TK_KEYLIST_FILTERS_MAX], *bad;
	struct { const char *state, *name, *subject, *unused, *bad; } cases[] = {
		{ "gone", NULL, NULL, NULL, "state" },
		{ NULL, "", NULL, NULL, "name" },
		{ NULL, NULL, "", NULL, "subject" },
		{ NULL, NULL, "a\nb", NULL, "subject" },
		{ NULL, NULL, "a\xe2\x80\xae" "b", NULL, "subject" },   /* a bidi override */
		{ NULL, NULL, NULL, "soon", "unused_since" },
		{ NULL, NULL, NULL, "", "unused_since" },
		{ NULL, NULL, NULL, "-5d", "unused_since" },
		{ NULL, NULL, NULL, "0", "unused_since" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		TEST_ASSERT(build(vals(cases[i].state, cases[i].name, cases[i].subject, cases[i].unused), 2, sql,
		                  sizeof(sql), out, &bad) == -1);
		TEST_ASSERT_STR(bad, cases[i].bad);
	}
	char longsub[300];
	memset(longsub, 'x', 256);
	longsub[256] = '\0';
	TEST_ASSERT(build(vals(NULL, NULL, longsub, NULL), 2, sql, sizeof(sql), out, &bad) == -1);
	longsub[255] = '\0';
	TEST_ASSERT(build(vals(NULL, NULL, longsub, NULL), 2, sql, sizeof(sql), out, &bad) == 1);
	/* A buffer too small for the conditions: refused, never a cut condition. */
	char tiny[40];
	TEST_ASSERT(build(vals("enabled", NULL, NULL, "30d"), 2, tiny, sizeof(tiny), out, &bad) == -1);
}

static void test_sorts(void)
{
	TEST_ASSERT(tk_keysort_find("created_at") && tk_keysort_find("last_used_at") && tk_keysort_find("name"));
	TEST_ASSERT(tk_keysort_find("id") == NULL && tk_keysort_find("") == NULL);
	TEST_ASSERT(tk_keyfilter_find("owner") == NULL && tk_keyfilter_find("limit") == NULL);
	/* The key model's filters are rows of the same table. */
	TEST_ASSERT(tk_keyfilter_find("member") && tk_keyfilter_find("role") && tk_keyfilter_find("environment") &&
	            tk_keyfilter_find("kind"));
	char out[TK_KEYLIST_VALUE_MAX];
	TEST_ASSERT(tk_keyfilter_find("environment")->check("staging", out) != NULL);
	TEST_ASSERT(tk_keyfilter_find("environment")->check("test", out) == NULL && strcmp(out, "test") == 0);
	TEST_ASSERT(tk_keyfilter_find("kind")->check("team", out) != NULL);
	TEST_ASSERT(tk_keyfilter_find("kind")->check("member", out) == NULL);
}

int main(void)
{
	TEST_RUN(test_conditions_and_numbers);
	TEST_RUN(test_refusals);
	TEST_RUN(test_sorts);
	TEST_DONE();
}
