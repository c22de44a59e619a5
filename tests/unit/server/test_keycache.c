/*
 * test_keycache.c - the API-key cache (server/state/keycache.c): hits and
 * misses, the invalidation race closed by the sequence number, invalidation
 * by key, account and all, bypass while notifications are down, the TTL,
 * refcounts (a record stays valid while a request holds it), the bound on
 * entries, and concurrent threads.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keycache.h"
#include "unit.h"

static tk_apikey *make(const char *id, const char *account)
{
	tk_apikey *k = tk_apikey_new();
	snprintf(k->id, sizeof(k->id), "%s", id);
	k->found = 1;
	k->usable = 1;
	if (tk_apikey_set_values(k, account, "member-1", NULL, "a:read", "") != 0)
		abort();
	return k;
}

/* Put a fresh record of `id` at the current sequence; drop the caller's ref. */
static void put(tk_keycache *c, const char *id, const char *account)
{
	tk_apikey *k = make(id, account);
	tk_keycache_put(c, k, tk_keycache_seq(c));
	tk_apikey_release(k);
}

static int cached(tk_keycache *c, const char *id)
{
	tk_apikey *k = tk_keycache_get(c, id);
	tk_apikey_release(k);
	return k != NULL;
}

static void test_hit_miss_invalidate(void)
{
	tk_keycache *c = tk_keycache_new(1000, 3600);
	TEST_ASSERT(!cached(c, "tk_a"));
	put(c, "tk_a", "acme");
	put(c, "tk_b", "acme");
	put(c, "tk_c", "other");
	TEST_ASSERT(cached(c, "tk_a") && cached(c, "tk_b") && cached(c, "tk_c"));
	TEST_ASSERT(tk_keycache_size(c) == 3);
	tk_keycache_invalidate(c, "tk_a");
	TEST_ASSERT(!cached(c, "tk_a") && cached(c, "tk_b"));
	tk_keycache_invalidate_account(c, "acme");
	TEST_ASSERT(!cached(c, "tk_b") && cached(c, "tk_c"));
	tk_keycache_flush(c);
	TEST_ASSERT(!cached(c, "tk_c") && tk_keycache_size(c) == 0);
	tk_keycache_free(c);
}

static void test_invalidation_race(void)
{
	/* A lookup reads the sequence, goes to the database; meanwhile the key
	 * is disabled (NOTIFY -> invalidate): the stale answer must not be kept. */
	tk_keycache *c = tk_keycache_new(1000, 3600);
	uint64_t seq = tk_keycache_seq(c);
	tk_keycache_invalidate(c, "tk_a");                 /* any invalidation counts */
	tk_apikey *stale = make("tk_a", "acme");
	tk_keycache_put(c, stale, seq);
	tk_apikey_release(stale);
	TEST_ASSERT(!cached(c, "tk_a"));
	seq = tk_keycache_seq(c);
	tk_keycache_invalidate_account(c, "zzz");
	stale = make("tk_a", "acme");
	tk_keycache_put(c, stale, seq);
	tk_apikey_release(stale);
	TEST_ASSERT(!cached(c, "tk_a"));
	seq = tk_keycache_seq(c);
	tk_keycache_flush(c);
	stale = make("tk_a", "acme");
	tk_keycache_put(c, stale, seq);
	tk_apikey_release(stale);
	TEST_ASSERT(!cached(c, "tk_a"));
	/* No invalidation in between: kept. */
	put(c, "tk_a", "acme");
	TEST_ASSERT(cached(c, "tk_a"));
	tk_keycache_free(c);
}

static void test_bypass(void)
{
	tk_keycache *c = tk_keycache_new(1000, 3600);
	put(c, "tk_a", "acme");
	tk_keycache_set_bypass(c, 1);
	TEST_ASSERT(tk_keycache_bypassed(c));
	TEST_ASSERT(!cached(c, "tk_a"));                  /* nothing served */
	put(c, "tk_b", "acme");                           /* nothing kept */
	tk_keycache_set_bypass(c, 0);
	TEST_ASSERT(!cached(c, "tk_b"));
	put(c, "tk_b", "acme");
	TEST_ASSERT(cached(c, "tk_b"));
	tk_keycache_free(c);
}

static void test_ttl(void)
{
	tk_keycache *c = tk_keycache_new(1000, 1);
	put(c, "tk_a", "acme");
	TEST_ASSERT(cached(c, "tk_a"));
	sleep(2);
	TEST_ASSERT(!cached(c, "tk_a"));
	TEST_ASSERT(tk_keycache_size(c) == 0);            /* the expired entry was dropped */
	tk_keycache_free(c);
}

static void test_refcount_outlives_invalidation(void)
{
	tk_keycache *c = tk_keycache_new(1000, 3600);
	put(c, "tk_a", "acme");
	tk_apikey *held = tk_keycache_get(c, "tk_a");     /* a request holds it */
	TEST_ASSERT(held != NULL);
	tk_keycache_invalidate(c, "tk_a");
	tk_keycache_flush(c);
	/* Still readable (under ASan a use after free would stop the test). */
	TEST_ASSERT(strcmp(held->id, "tk_a") == 0 && strcmp(held->subject, "member-1") == 0);
	tk_apikey_release(held);
	tk_keycache_free(c);
}

static void test_bounded(void)
{
	tk_keycache *c = tk_keycache_new(640, 3600);      /* 64 shards x 11 */
	char id[32];
	for (int i = 0; i < 20000; i++) {
		snprintf(id, sizeof(id), "tk_%06d", i);
		put(c, id, "acme");
	}
	TEST_ASSERT(tk_keycache_size(c) <= 64 * 11);
	TEST_ASSERT(cached(c, "tk_019999"));              /* the newest is kept */
	tk_keycache_free(c);
}

struct worker { tk_keycache *c; int id; };

/* The shards' bucket arrays grow as keys arrive: 200,000 keys (about 3,000
 * per shard, many doublings from 256 buckets) are all found afterwards, a
 * key never put is not, and invalidation by key and by account still finds
 * its records in the grown arrays. */
static void test_growth(void)
{
	tk_keycache *c = tk_keycache_new(1000000, 3600);
	char id[32];
	for (int i = 0; i < 200000; i++) {
		snprintf(id, sizeof(id), "tk_grow%06d", i);
		put(c, id, i % 2 ? "odd" : "even");
	}
	int missing = 0;
	for (int i = 0; i < 200000; i++) {
		snprintf(id, sizeof(id), "tk_grow%06d", i);
		missing += !cached(c, id);
	}
	TEST_ASSERT(missing == 0);
	TEST_ASSERT(!cached(c, "tk_grow200000"));
	tk_keycache_invalidate(c, "tk_grow000124");
	TEST_ASSERT(!cached(c, "tk_grow000124"));
	TEST_ASSERT(cached(c, "tk_grow000126"));
	tk_keycache_invalidate_account(c, "odd");
	int odd_left = 0, even_left = 0;
	for (int i = 0; i < 200000; i++) {
		snprintf(id, sizeof(id), "tk_grow%06d", i);
		if (i % 2)
			odd_left += cached(c, id);
		else
			even_left += cached(c, id);
	}
	TEST_ASSERT(odd_left == 0);
	TEST_ASSERT(even_left == 100000 - 1);
	tk_keycache_free(c);
}

static void *hammer(void *arg)
{
	struct worker *w = arg;
	char id[32];
	for (int i = 0; i < 20000; i++) {
		snprintf(id, sizeof(id), "tk_%d", i % 97);
		if ((i + w->id) % 5 == 0) {
			tk_keycache_invalidate(w->c, id);
		} else if (i % 3 == 0) {
			put(w->c, id, (i & 1) ? "acme" : "other");
		} else {
			tk_apikey *k = tk_keycache_get(w->c, id);
			if (k && strcmp(k->id, id) != 0)
				abort();                              /* never another key's record */
			tk_apikey_release(k);
		}
		if (i % 4000 == 0)
			tk_keycache_invalidate_account(w->c, "acme");
	}
	return NULL;
}

static void test_threads(void)
{
	tk_keycache *c = tk_keycache_new(10000, 3600);
	pthread_t th[4];
	struct worker w[4];
	for (int i = 0; i < 4; i++) {
		w[i] = (struct worker){ c, i };
		TEST_ASSERT(pthread_create(&th[i], NULL, hammer, &w[i]) == 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	TEST_ASSERT(tk_keycache_size(c) <= 97);
	tk_keycache_free(c);
}

int main(void)
{
	TEST_RUN(test_hit_miss_invalidate);
	TEST_RUN(test_invalidation_race);
	TEST_RUN(test_bypass);
	TEST_RUN(test_ttl);
	TEST_RUN(test_refcount_outlives_invalidation);
	TEST_RUN(test_bounded);
	TEST_RUN(test_growth);
	TEST_RUN(test_threads);
	TEST_DONE();
}
