/*
 * test_keycache.c - the API-key cache (server/state/keycache.c): hits and
 * misses, the invalidation race closed by the sequence number, invalidation
 * by key, account and all, bypass while notifications are down, the TTL,
 * refcounts (a record stays valid while a request holds it), the bound on
 * entries, and concurrent threads; the compact record itself: its size, the
 * ID sized to it (the longest one, and one too long), the side record only
 * keys with its values carry, the codes, refcounting, and the digests wiped
 * before the memory is freed (free is wrapped: -Wl,--wrap=free).
 */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keycache.h"
#include "unit.h"

/* free, wrapped at link time: when the watched record or side record is
 * freed, note whether its digest bytes were already wiped (all zero). */
void __real_free(void *p);
void __wrap_free(void *p);
static const void *watch_rec, *watch_x;
static int rec_freed, rec_wiped, x_freed, x_wiped;

static int all_zero(const unsigned char *b, size_t n)
{
	unsigned char acc = 0;
	for (size_t i = 0; i < n; i++)
		acc |= b[i];
	return acc == 0;
}

void __wrap_free(void *p)
{
	if (p && p == watch_rec) {
		rec_freed++;
		rec_wiped = all_zero(((const tk_apikey *)p)->hash, TK_HASH_LEN);
	} else if (p && p == watch_x) {
		x_freed++;
		x_wiped = all_zero(((const tk_apikey_extra *)p)->prev_hash, TK_HASH_LEN);
	}
	__real_free(p);
}

static tk_apikey *make(const char *id, const char *account)
{
	tk_apikey *k = tk_apikey_new(id);
	if (!k)
		abort();
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
	TEST_ASSERT(strcmp(held->id, "tk_a") == 0 && strcmp(tk_apikey_subject(held), "member-1") == 0);
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

/* The fixed part and the ID sized to it: a 31-character ID (the default
 * prefix) fits a 160-byte malloc chunk (152 usable), the longest ID
 * (TK_KEY_ID_MAX) is kept whole, a longer one is refused, never cut. */
static void test_record_layout(void)
{
	TEST_ASSERT(offsetof(tk_apikey, id) <= 120);
	char id[TK_KEY_ID_MAX + 2];
	memset(id, 'a', sizeof(id) - 1);
	id[sizeof(id) - 1] = '\0';
	TEST_ASSERT(tk_apikey_new(id) == NULL);             /* TK_KEY_ID_MAX + 1 characters */
	TEST_ASSERT(tk_apikey_new(NULL) == NULL);
	id[TK_KEY_ID_MAX] = '\0';
	tk_apikey *longest = tk_apikey_new(id);
	TEST_ASSERT(longest && strlen(longest->id) == TK_KEY_ID_MAX && memcmp(longest->id, id, TK_KEY_ID_MAX + 1) == 0);
	/* Cached and found again under its whole ID. */
	tk_keycache *c = tk_keycache_new(1000, 3600);
	longest->found = 1;
	tk_keycache_put(c, longest, tk_keycache_seq(c));
	tk_apikey_release(longest);
	TEST_ASSERT(cached(c, id));
	id[TK_KEY_ID_MAX - 1] = '\0';
	TEST_ASSERT(!cached(c, id));                          /* a prefix of it names no key */
	tk_keycache_free(c);

	tk_apikey *k = tk_apikey_new("tk_0123456789012345678901234567");   /* 31 characters */
	TEST_ASSERT(k && malloc_usable_size(k) <= 152);
	/* A new record is all zero but its ID and one reference: no previous
	 * secret, no subject, claims or origins, no reason, no environment. */
	TEST_ASSERT(!k->found && !k->usable && !k->publishable && k->x == NULL && k->reason == TK_UNUSABLE_NONE);
	TEST_ASSERT(k->env == TK_ENV_UNKNOWN && tk_apikey_environment(k) == NULL && k->status_idx == 0);
	TEST_ASSERT(tk_apikey_prev_hash(k) == NULL && tk_apikey_prev_until(k) == 0 && tk_apikey_subject(k) == NULL);
	TEST_ASSERT(tk_apikey_claims(k) == NULL && tk_apikey_origins(k) == NULL);
	tk_apikey_release(k);
}

/* A key with none of the side values has no side record; one with any of
 * them carries one, and each value reads back; 64-bit times and index are
 * kept whole. */
static void test_record_side_values(void)
{
	tk_apikey *plain = tk_apikey_new("tk_plain");
	TEST_ASSERT(tk_apikey_set_values(plain, "acme", NULL, NULL, "a:read", "https://api") == 0);
	TEST_ASSERT(plain->x == NULL && plain->naud == 1);
	TEST_ASSERT(tk_apikey_set_prev(plain, (const unsigned char *)"ignored-without-an-end-time-xxxx", 0) == 0);
	TEST_ASSERT(plain->x == NULL && tk_apikey_prev_hash(plain) == NULL);   /* until 0: none */
	plain->expires_at = INT64_C(253402300799);            /* 9999-12-31: past 32 bits */
	plain->status_idx = INT64_C(5000000000);
	atomic_store(&plain->last_used_at, INT64_C(4102444800));
	TEST_ASSERT(plain->expires_at == INT64_C(253402300799) && plain->status_idx == INT64_C(5000000000));
	TEST_ASSERT(atomic_load(&plain->last_used_at) == INT64_C(4102444800));
	tk_apikey_release(plain);

	tk_apikey *member = tk_apikey_new("tk_member");
	TEST_ASSERT(tk_apikey_set_values(member, "acme", "jane", "{\"tier\":1}", "a:read", "") == 0);
	TEST_ASSERT(member->x && member->naud == 0);
	TEST_ASSERT_STR(tk_apikey_subject(member), "jane");
	TEST_ASSERT_STR(tk_apikey_claims(member), "{\"tier\":1}");
	TEST_ASSERT(tk_apikey_prev_hash(member) == NULL && tk_apikey_origins(member) == NULL);
	tk_apikey_release(member);

	unsigned char prev[TK_HASH_LEN];
	memset(prev, 0x5A, sizeof(prev));
	tk_apikey *rotated = tk_apikey_new("tk_rotated");
	TEST_ASSERT(tk_apikey_set_values(rotated, "acme", NULL, NULL, "a:read", "") == 0 && rotated->x == NULL);
	TEST_ASSERT(tk_apikey_set_prev(rotated, prev, INT64_C(1900000000)) == 0);
	TEST_ASSERT(rotated->x && tk_apikey_prev_until(rotated) == INT64_C(1900000000));
	TEST_ASSERT(tk_apikey_prev_hash(rotated) && memcmp(tk_apikey_prev_hash(rotated), prev, TK_HASH_LEN) == 0);
	TEST_ASSERT(tk_apikey_subject(rotated) == NULL && tk_apikey_claims(rotated) == NULL);
	tk_apikey_release(rotated);

	tk_apikey *pub = tk_apikey_new("tk_pub");
	pub->publishable = 1;
	TEST_ASSERT(tk_apikey_set_values(pub, "acme", NULL, NULL, "a:read", "") == 0);
	TEST_ASSERT(!tk_apikey_allows_origin(pub, "https://app.example"));   /* no origins yet */
	TEST_ASSERT(tk_apikey_set_origins(pub, "https://app.example https://b.example") == 0);
	TEST_ASSERT_STR(tk_apikey_origins(pub), "https://app.example https://b.example");
	TEST_ASSERT(tk_apikey_allows_origin(pub, "https://app.example") && tk_apikey_allows_origin(pub, "https://b.example"));
	TEST_ASSERT(!tk_apikey_allows_origin(pub, "https://app.exampl") && !tk_apikey_allows_origin(pub, ""));
	TEST_ASSERT(!tk_apikey_allows_origin(pub, "https://app.example https://b.example"));
	pub->publishable = 0;                                 /* origins count only for a publishable key */
	TEST_ASSERT(!tk_apikey_allows_origin(pub, "https://app.example"));
	tk_apikey_release(pub);
}

/* Reasons and environments as codes: the database's words map to their
 * codes and back; anything else is unusable (a reason) or unknown (an
 * environment), never usable or "live". */
static void test_record_codes(void)
{
	static const char *const words[] = { "key_deleted", "key_revoked", "key_disabled", "account_disabled" };
	tk_apikey *k = tk_apikey_new("tk_codes");
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		k->reason = tk_apikey_reason_code(words[i]) & 7;
		TEST_ASSERT(k->reason != TK_UNUSABLE_NONE);
		TEST_ASSERT_STR(tk_apikey_unusable_reason(k), words[i]);
	}
	TEST_ASSERT(tk_apikey_reason_code("") == TK_UNUSABLE_NONE && tk_apikey_reason_code(NULL) == TK_UNUSABLE_NONE);
	TEST_ASSERT(tk_apikey_reason_code("key_exploded") == TK_UNUSABLE_OTHER);
	TEST_ASSERT(tk_apikey_reason_code("KEY_REVOKED") == TK_UNUSABLE_OTHER);
	k->reason = TK_UNUSABLE_OTHER;
	TEST_ASSERT_STR(tk_apikey_unusable_reason(k), "key_not_usable");
	k->reason = TK_UNUSABLE_CORRUPT;
	TEST_ASSERT_STR(tk_apikey_unusable_reason(k), "key_corrupt");
	k->reason = 7;                                        /* no such code: still a reason */
	TEST_ASSERT_STR(tk_apikey_unusable_reason(k), "key_not_usable");
	k->reason = TK_UNUSABLE_NONE;
	TEST_ASSERT(tk_apikey_unusable_reason(k) == NULL);

	TEST_ASSERT(tk_apikey_env_code("live") == TK_ENV_LIVE && tk_apikey_env_code("test") == TK_ENV_TEST);
	TEST_ASSERT(tk_apikey_env_code("staging") == TK_ENV_UNKNOWN && tk_apikey_env_code("") == TK_ENV_UNKNOWN);
	TEST_ASSERT(tk_apikey_env_code("live ") == TK_ENV_UNKNOWN && tk_apikey_env_code(NULL) == TK_ENV_UNKNOWN);
	k->env = TK_ENV_LIVE;
	TEST_ASSERT_STR(tk_apikey_environment(k), "live");
	k->env = TK_ENV_TEST;
	TEST_ASSERT_STR(tk_apikey_environment(k), "test");
	k->env = 3;                                           /* no such code */
	TEST_ASSERT(tk_apikey_environment(k) == NULL);
	/* The flags are bits of their own: setting one leaves the others. */
	k->found = 1;
	k->publishable = 1;
	TEST_ASSERT(k->found && !k->usable && k->publishable && k->env == 3);
	tk_apikey_release(k);
}

/* Refcounting: the memory goes with the last reference only, and both the
 * current and the previous secret's digests are wiped before it does. */
static void test_record_refs_and_wipe(void)
{
	unsigned char d[TK_HASH_LEN];
	memset(d, 0xC3, sizeof(d));
	tk_apikey *k = tk_apikey_new("tk_wipe");
	memcpy(k->hash, d, TK_HASH_LEN);
	TEST_ASSERT(tk_apikey_set_values(k, "acme", "jane", NULL, "a:read", "") == 0);
	TEST_ASSERT(tk_apikey_set_prev(k, d, INT64_C(1900000000)) == 0);
	watch_rec = k;
	watch_x = k->x;
	rec_freed = x_freed = 0;
	TEST_ASSERT(tk_apikey_ref(k) == k && tk_apikey_ref(k) == k);   /* three references */
	tk_apikey_release(k);
	tk_apikey_release(k);
	TEST_ASSERT(rec_freed == 0 && x_freed == 0);
	TEST_ASSERT(memcmp(k->hash, d, TK_HASH_LEN) == 0 && memcmp(tk_apikey_prev_hash(k), d, TK_HASH_LEN) == 0);
	TEST_ASSERT_STR(tk_apikey_subject(k), "jane");
	tk_apikey_release(k);                                 /* the last one */
	TEST_ASSERT(rec_freed == 1 && rec_wiped);
	TEST_ASSERT(x_freed == 1 && x_wiped);

	/* The same through the cache: its reference is the last one. */
	tk_keycache *c = tk_keycache_new(1000, 3600);
	k = make("tk_wipe2", "acme");
	memcpy(k->hash, d, TK_HASH_LEN);
	watch_rec = k;
	watch_x = k->x;                                       /* its subject: a side record */
	rec_freed = x_freed = 0;
	tk_keycache_put(c, k, tk_keycache_seq(c));
	tk_apikey_release(k);
	TEST_ASSERT(rec_freed == 0);
	tk_keycache_invalidate(c, "tk_wipe2");
	TEST_ASSERT(rec_freed == 1 && rec_wiped && x_freed == 1);
	watch_rec = watch_x = NULL;
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
	TEST_RUN(test_record_layout);
	TEST_RUN(test_record_side_values);
	TEST_RUN(test_record_codes);
	TEST_RUN(test_record_refs_and_wipe);
	TEST_DONE();
}
