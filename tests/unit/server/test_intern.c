/*
 * test_intern.c - the shared value table (server/state/intern.c) and the
 * compact key record built on it (keycache.h): equal texts share one value,
 * references free it at the last release, scope sets and lists keep the
 * strict rules (an invalid scope string grants nothing, at most
 * TK_STRLIST_MAX audiences), a record's values are released with it, and
 * concurrent interning from threads never hands out a freed value.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intern.h"
#include "keycache.h"
#include "unit.h"

static void test_strings_shared_and_freed(void)
{
	size_t base = tk_intern_count();
	char buf[32];
	snprintf(buf, sizeof(buf), "acct-%d", 7);
	const char *a = tk_intern_str("acct-7");
	const char *b = tk_intern_str(buf);             /* another buffer, the same text */
	TEST_ASSERT(a != NULL && a == b && a != buf);
	TEST_ASSERT_STR(a, "acct-7");
	TEST_ASSERT(tk_intern_count() == base + 1);
	const char *c = tk_intern_str("acct-8");
	TEST_ASSERT(c != a && tk_intern_count() == base + 2);
	tk_intern_str_release(a);
	TEST_ASSERT(tk_intern_count() == base + 2);      /* b still holds it */
	TEST_ASSERT_STR(b, "acct-7");
	tk_intern_str_release(b);
	tk_intern_str_release(c);
	TEST_ASSERT(tk_intern_count() == base);
	tk_intern_str_release(NULL);                      /* nothing */
	/* The empty string is a value like any other. */
	const char *e = tk_intern_str("");
	TEST_ASSERT(e && *e == '\0');
	tk_intern_str_release(e);
	TEST_ASSERT(tk_intern_count() == base);
}

static void test_kinds_apart(void)
{
	/* The same text as a string, a scope set and a list: three values. */
	size_t base = tk_intern_count();
	const char *why = NULL;
	const char *s = tk_intern_str("read write");
	const tk_scopes *sc = tk_intern_scopes("read write", &why);
	const tk_strlist *l = tk_intern_list("read write");
	TEST_ASSERT(s && sc && l && tk_intern_count() == base + 3);
	TEST_ASSERT(sc->n == 2 && tk_scopes_contains(sc, "read") && tk_scopes_contains(sc, "write"));
	TEST_ASSERT(l->n == 2);
	TEST_ASSERT_STR(l->v[0], "read");
	TEST_ASSERT_STR(l->v[1], "write");
	TEST_ASSERT_STR(s, "read write");                 /* the list's split left the text whole */
	tk_intern_str_release(s);
	tk_intern_scopes_release(sc);
	tk_intern_list_release(l);
	TEST_ASSERT(tk_intern_count() == base);
}

static void test_scopes_strict(void)
{
	size_t base = tk_intern_count();
	const char *why = NULL;
	const tk_scopes *a = tk_intern_scopes("a:read b:write", &why);
	const tk_scopes *b = tk_intern_scopes("a:read b:write", &why);
	TEST_ASSERT(a && a == b);
	tk_intern_scopes_release(b);
	/* Invalid scope strings: refused with a reason, nothing kept. */
	why = NULL;
	TEST_ASSERT(tk_intern_scopes("a  b", &why) == NULL && why != NULL);
	why = NULL;
	TEST_ASSERT(tk_intern_scopes("a a", &why) == NULL && why != NULL);
	why = NULL;
	TEST_ASSERT(tk_intern_scopes("bad\"quote", &why) == NULL && why != NULL);
	TEST_ASSERT(tk_intern_count() == base + 1);
	const tk_scopes *none = tk_intern_scopes("", &why);
	TEST_ASSERT(none && none->n == 0);
	tk_intern_scopes_release(none);
	tk_intern_scopes_release(a);
	TEST_ASSERT(tk_intern_count() == base);
}

static void test_list_bounds(void)
{
	char text[512] = "";
	for (int i = 0; i < 20; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), "%saud%d", i ? " " : "", i);
	const tk_strlist *l = tk_intern_list(text);
	TEST_ASSERT(l && l->n == TK_STRLIST_MAX);         /* the rest left out: fewer, never more */
	TEST_ASSERT_STR(l->v[TK_STRLIST_MAX - 1], "aud15");
	tk_intern_list_release(l);
	const tk_strlist *e = tk_intern_list("");
	TEST_ASSERT(e && e->n == 0);
	tk_intern_list_release(e);
	const tk_strlist *d = tk_intern_list("x  y");     /* no empty word */
	TEST_ASSERT(d && d->n == 2);
	tk_intern_list_release(d);
}

static void test_record_values(void)
{
	size_t base = tk_intern_count();
	tk_apikey *k1 = tk_apikey_new("tk_1"), *k2 = tk_apikey_new("tk_2");
	TEST_ASSERT(tk_apikey_set_values(k1, "acme", "jane", "{\"plan\":\"pro\"}", "read write", "https://a https://b") == 0);
	TEST_ASSERT(tk_apikey_set_values(k2, "acme", NULL, NULL, "read write", "") == 0);
	/* Shared: one account string and one scope set for both records. */
	TEST_ASSERT(k1->account == k2->account && k1->scopes == k2->scopes);
	TEST_ASSERT_STR(tk_apikey_subject(k1), "jane");
	TEST_ASSERT(tk_apikey_subject(k2) == NULL && tk_apikey_claims(k2) == NULL && k2->x == NULL);
	TEST_ASSERT_STR(tk_apikey_claims(k1), "{\"plan\":\"pro\"}");
	TEST_ASSERT(k1->naud == 2 && k2->naud == 0);
	TEST_ASSERT_STR(k1->aud[0], "https://a");
	TEST_ASSERT_STR(k1->aud[1], "https://b");
	/* acme, jane, claims, scopes, two lists */
	TEST_ASSERT(tk_intern_count() == base + 6);
	tk_apikey_release(k1);
	TEST_ASSERT(tk_intern_count() == base + 3);       /* acme, scopes, "" list stay for k2 */
	TEST_ASSERT_STR(k2->account, "acme");
	tk_apikey_release(k2);
	TEST_ASSERT(tk_intern_count() == base);

	/* An invalid scope string: the record gets the empty set (grants nothing), rc 1. */
	tk_apikey *k3 = tk_apikey_new("tk_3");
	TEST_ASSERT(tk_apikey_set_values(k3, "acme", NULL, NULL, "a  b", "") == 1);
	TEST_ASSERT(k3->scopes && k3->scopes->n == 0);
	tk_apikey_release(k3);
	TEST_ASSERT(tk_intern_count() == base);
}

#define THREADS 4
#define ROUNDS 20000

static void *hammer(void *arg)
{
	int id = *(int *)arg;
	char text[32];
	for (int i = 0; i < ROUNDS; i++) {
		snprintf(text, sizeof(text), "v%d", (i + id) % 13);
		const char *why = NULL;
		const char *s = tk_intern_str(text);
		const tk_scopes *sc = tk_intern_scopes(text, &why);
		if (!s || strcmp(s, text) != 0 || !sc || sc->n != 1 || strcmp(sc->v[0], text) != 0)
			abort();                                  /* never another value, never a freed one */
		tk_intern_str_release(s);
		tk_intern_scopes_release(sc);
	}
	return NULL;
}

static void test_threads(void)
{
	size_t base = tk_intern_count();
	pthread_t th[THREADS];
	int ids[THREADS];
	for (int i = 0; i < THREADS; i++) {
		ids[i] = i;
		TEST_ASSERT(pthread_create(&th[i], NULL, hammer, &ids[i]) == 0);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	TEST_ASSERT(tk_intern_count() == base);           /* every value freed at its last release */
}

static void test_many_values_grow(void)
{
	/* Enough distinct values to grow every shard's bucket array several times. */
	enum { N = 20000 };
	static const char *v[N];
	char text[32];
	size_t base = tk_intern_count();
	for (int i = 0; i < N; i++) {
		snprintf(text, sizeof(text), "member-%d", i);
		v[i] = tk_intern_str(text);
	}
	TEST_ASSERT(tk_intern_count() == base + N);
	int ok = 1;
	for (int i = 0; i < N; i++) {
		snprintf(text, sizeof(text), "member-%d", i);
		const char *again = tk_intern_str(text);
		ok &= again == v[i];
		tk_intern_str_release(again);
	}
	TEST_ASSERT(ok);
	for (int i = 0; i < N; i++)
		tk_intern_str_release(v[i]);
	TEST_ASSERT(tk_intern_count() == base);
}

int main(void)
{
	TEST_RUN(test_strings_shared_and_freed);
	TEST_RUN(test_kinds_apart);
	TEST_RUN(test_scopes_strict);
	TEST_RUN(test_list_bounds);
	TEST_RUN(test_record_values);
	TEST_RUN(test_threads);
	TEST_RUN(test_many_values_grow);
	TEST_DONE();
}
