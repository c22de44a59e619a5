/*
 * test_lastused.c - a worker's last-used marks (server/state/lastused.c):
 * newest time wins, growth keeps every mark, take and clear, the bound,
 * refused input; a mark holds a reference of its key record (24 bytes a
 * mark with its hash, no ID copy), released when taken, cleared or freed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lastused.h"
#include "unit.h"

static void id_of(char out[TK_KEY_ID_LEN + 1], unsigned i)
{
	snprintf(out, TK_KEY_ID_LEN + 1, "tk_%028u", i);
}

static void test_newest_wins(void)
{
	tk_lastused lu = { 0 };
	TEST_ASSERT(tk_lastused_get(&lu, "tk_a") == 0);
	TEST_ASSERT(tk_lastused_put(&lu, "tk_a", 100) == 0);
	TEST_ASSERT(tk_lastused_put(&lu, "tk_a", 90) == 0);     /* older: ignored */
	TEST_ASSERT(tk_lastused_get(&lu, "tk_a") == 100);
	TEST_ASSERT(tk_lastused_put(&lu, "tk_a", 120) == 0);
	TEST_ASSERT(tk_lastused_get(&lu, "tk_a") == 120);
	TEST_ASSERT(lu.n == 1);
	TEST_ASSERT(tk_lastused_get(&lu, "tk_b") == 0);
	tk_lastused_free(&lu);
}

static void test_growth_take_clear(void)
{
	tk_lastused lu = { 0 };
	char id[TK_KEY_ID_LEN + 1];
	for (unsigned i = 0; i < 5000; i++) {
		id_of(id, i);
		TEST_ASSERT(tk_lastused_put(&lu, id, 1000 + i) == 0);
	}
	TEST_ASSERT(lu.n == 5000);
	int all = 1;
	for (unsigned i = 0; i < 5000; i++) {
		id_of(id, i);
		all &= tk_lastused_get(&lu, id) == 1000 + (int64_t)i;
	}
	TEST_ASSERT(all);
	/* Taken in uneven batches: every mark exactly once, each with its own
	 * key's time, none left behind. */
	char (*ids)[TK_KEY_ID_MAX + 1] = malloc(5000 * sizeof(*ids));
	int64_t *times = malloc(5000 * sizeof(*times));
	unsigned char *seen = calloc(5000, 1);
	size_t total = 0, got;
	int each = 1;
	while ((got = tk_lastused_take(&lu, ids, times, 1777)) > 0) {
		TEST_ASSERT(got <= 1777);
		for (size_t i = 0; i < got; i++) {
			int64_t k = times[i] - 1000;
			each &= k >= 0 && k < 5000 && !seen[k];
			if (k >= 0 && k < 5000) {
				seen[k] = 1;
				id_of(id, (unsigned)k);
				each &= strcmp(ids[i], id) == 0;
			}
		}
		total += got;
	}
	TEST_ASSERT(each);
	TEST_ASSERT(total == 5000);
	TEST_ASSERT(tk_lastused_count(&lu) == 0);
	id_of(id, 4321);
	TEST_ASSERT(tk_lastused_get(&lu, id) == 0);
	/* Marks put again, then cleared: none left, the table takes new ones. */
	for (unsigned i = 0; i < 100; i++) {
		id_of(id, i);
		TEST_ASSERT(tk_lastused_put(&lu, id, 7) == 0);
	}
	tk_lastused_clear(&lu);
	TEST_ASSERT(lu.n == 0 && tk_lastused_count(&lu) == 0);
	TEST_ASSERT(tk_lastused_take(&lu, ids, times, 10) == 0);
	id_of(id, 7);
	TEST_ASSERT(tk_lastused_get(&lu, id) == 0);
	TEST_ASSERT(tk_lastused_put(&lu, id, 5) == 0 && tk_lastused_get(&lu, id) == 5);
	free(seen);
	free(ids);
	free(times);
	tk_lastused_free(&lu);
}

static void test_bound_and_bad_input(void)
{
	tk_lastused lu = { 0 };
	char id[TK_KEY_ID_LEN + 1];
	unsigned refused = 0;
	for (unsigned i = 0; i < TK_LASTUSED_MAX + 100; i++) {
		id_of(id, i);
		refused += tk_lastused_put(&lu, id, 1) != 0;
	}
	TEST_ASSERT(lu.n == TK_LASTUSED_MAX);
	TEST_ASSERT(refused == 100);
	id_of(id, 3);
	TEST_ASSERT(tk_lastused_put(&lu, id, 9) == 0);          /* a known key still merges */
	TEST_ASSERT(tk_lastused_get(&lu, id) == 9);
	TEST_ASSERT(tk_lastused_put(&lu, "", 1) != 0);
	TEST_ASSERT(tk_lastused_put(&lu, NULL, 1) != 0);
	TEST_ASSERT(tk_lastused_put(&lu, "tk_0123456789012345678901234567890123", 1) != 0);
	tk_lastused_free(&lu);
}

/* Bounded batches: each mark is taken exactly once with its newest time, the
 * others stay findable after every removal (clusters kept intact), and the
 * table takes new marks in between. */
static void test_take_batches(void)
{
	enum { N = 20000, B = 3000 };
	tk_lastused lu = { 0 };
	char id[TK_KEY_ID_LEN + 1];
	char (*ids)[TK_KEY_ID_MAX + 1] = malloc(B * sizeof(*ids));
	int64_t *times = malloc(B * sizeof(*times));
	unsigned char *seen = calloc(N + 10, 1);
	int ok = 1, found = 1;
	size_t total = 0, added = 0, k;

	for (unsigned i = 0; i < N; i++) {
		id_of(id, i);
		ok &= tk_lastused_put(&lu, id, 1000 + i) == 0;
	}
	TEST_ASSERT(ok);
	TEST_ASSERT(tk_lastused_take(&lu, ids, times, 0) == 0);
	while ((k = tk_lastused_take(&lu, ids, times, B)) > 0) {
		ok &= k <= B;
		for (size_t j = 0; j < k; j++) {
			unsigned v = (unsigned)strtoul(ids[j] + 3, NULL, 10);
			ok &= v < N + 10 && !seen[v] && times[j] == 1000 + (int64_t)v;
			if (v < N + 10)
				seen[v] = 1;
		}
		total += k;
		ok &= tk_lastused_count(&lu) == N + added - total;
		/* Every mark not taken yet is still found, with its time. */
		for (unsigned i = 0; i < N; i++) {
			if (seen[i])
				continue;
			id_of(id, i);
			found &= tk_lastused_get(&lu, id) == 1000 + (int64_t)i;
		}
		if (total == B) {
			/* New marks between batches: taken later, like the rest. */
			for (unsigned i = N; i < N + 10; i++) {
				id_of(id, i);
				ok &= tk_lastused_put(&lu, id, 1000 + i) == 0;
			}
			added = 10;
		}
	}
	TEST_ASSERT(ok);
	TEST_ASSERT(found);
	TEST_ASSERT(total == N + 10);
	TEST_ASSERT(lu.n == 0);
	int all = 1;
	for (unsigned i = 0; i < N + 10; i++)
		all &= seen[i];
	TEST_ASSERT(all);
	id_of(id, 7);
	TEST_ASSERT(tk_lastused_get(&lu, id) == 0);
	/* An empty table gives nothing. */
	tk_lastused empty = { 0 };
	TEST_ASSERT(tk_lastused_take(&empty, ids, times, B) == 0);
	free(seen);
	free(ids);
	free(times);
	tk_lastused_free(&lu);
}

/* A key ID with a random-looking body (xorshift of i), as real IDs have:
 * sequential decimal bodies are poorly spread by FNV-1a's low bits. */
static void random_id(char out[TK_KEY_ID_LEN + 1], unsigned i)
{
	static const char b62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
	uint64_t x = 0x9e3779b97f4a7c15ULL * (i + 1);
	memcpy(out, "tk_", 3);
	for (int j = 3; j < TK_KEY_ID_LEN; j++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		out[j] = b62[x % 62];
	}
	out[TK_KEY_ID_LEN] = '\0';
}

/* Mean distance of the marks from their home slot, in both tables. */
static double mean_displacement(const tk_lastused *lu)
{
	size_t sum = 0, n = 0;
	const tk_lastused_slot *t[2] = { lu->marks, lu->out };
	size_t cap[2] = { lu->cap, lu->out_cap };
	for (int k = 0; k < 2; k++)
		for (size_t j = 0; j < cap[k]; j++)
			if (t[k][j].key) {
				sum += (j - (t[k][j].hash & (cap[k] - 1))) & (cap[k] - 1);
				n++;
			}
	return n ? (double)sum / (double)n : 0;
}

/* A flush that falls behind: the table stays near its load bound while
 * batches are taken and as many new marks come in. Taking always from the
 * front left the rest of the table one cluster (a mean displacement in the
 * thousands of slots after these rounds); batches that sweep the table
 * keep it what linear probing gives at that load (a few slots). */
static void test_take_behind_keeps_clusters_short(void)
{
	enum { CAP = 1 << 14, FILL = CAP * 7 / 10, B = 500, ROUNDS = 400 };
	tk_lastused lu = { 0 };
	char id[TK_KEY_ID_LEN + 1];
	char (*ids)[TK_KEY_ID_MAX + 1] = malloc(B * sizeof(*ids));
	int64_t *times = malloc(B * sizeof(*times));
	unsigned next = 0;
	int ok = 1;

	for (; next < FILL; next++) {
		random_id(id, next);
		ok &= tk_lastused_put(&lu, id, 1) == 0;
	}
	TEST_ASSERT(ok && lu.cap == CAP);
	printf("  mean displacement at the start: %.1f slots\n", mean_displacement(&lu));
	for (int r = 0; r < ROUNDS; r++) {
		size_t k = tk_lastused_take(&lu, ids, times, B);
		ok &= k > 0 && k <= B;
		for (size_t i = 0; i < k; i++, next++) {
			random_id(id, next);
			ok &= tk_lastused_put(&lu, id, 1) == 0;
		}
	}
	TEST_ASSERT(ok && tk_lastused_count(&lu) == FILL);
	/* Two tables a worker: the live one and the one being sent (or the spare). */
	TEST_ASSERT(lu.cap == CAP && (lu.out ? lu.out_cap == CAP && !lu.spare : 1));
	double d = mean_displacement(&lu);
	printf("  mean displacement after %d rounds at load %.2f: %.1f slots\n", ROUNDS, (double)FILL / CAP, d);
	TEST_ASSERT(d < 20);
	/* Every mark not taken is still found. */
	int found = 1;
	for (size_t j = 0; j < lu.cap; j++)
		if (lu.marks[j].key)
			found &= tk_lastused_get(&lu, lu.marks[j].key->id) == 1;
	for (size_t j = lu.out_at; j < lu.out_cap; j++)
		if (lu.out[j].key)
			found &= tk_lastused_get(&lu, lu.out[j].key->id) == 1;
	TEST_ASSERT(found);
	free(ids);
	free(times);
	tk_lastused_free(&lu);
}

static int refs_of(tk_apikey *k)
{
	return atomic_load(&k->refs);
}

static void test_marks_hold_records(void)
{
	TEST_ASSERT(sizeof(tk_lastused_slot) == 24);
	tk_lastused lu = { 0 };
	tk_apikey *a = tk_apikey_new("tk_a"), *a2 = tk_apikey_new("tk_a"), *b = tk_apikey_new("tk_b");
	TEST_ASSERT(tk_lastused_put_key(&lu, a, 100) == 0 && refs_of(a) == 2);
	TEST_ASSERT(tk_lastused_put_key(&lu, a, 110) == 0 && refs_of(a) == 2);   /* merged: one reference */
	/* Another record of the same ID (reloaded): merged by ID, not held. */
	TEST_ASSERT(tk_lastused_put_key(&lu, a2, 105) == 0 && refs_of(a2) == 1);
	TEST_ASSERT(tk_lastused_put(&lu, "tk_a", 90) == 0 && lu.n == 1);
	TEST_ASSERT(tk_lastused_get(&lu, "tk_a") == 110);
	/* By ID: a record of the ID alone; then the key's record merges into it. */
	TEST_ASSERT(tk_lastused_put(&lu, "tk_b", 50) == 0 && lu.n == 2);
	TEST_ASSERT(tk_lastused_put_key(&lu, b, 60) == 0 && refs_of(b) == 1 && tk_lastused_get(&lu, "tk_b") == 60);
	TEST_ASSERT(tk_lastused_put_key(&lu, NULL, 1) != 0);
	/* Taken: the IDs and times come out, the references go. */
	char ids[4][TK_KEY_ID_MAX + 1];
	int64_t times[4];
	TEST_ASSERT(tk_lastused_take(&lu, ids, times, 4) == 2 && lu.n == 0);
	int seen_a = 0, seen_b = 0;
	for (int i = 0; i < 2; i++) {
		seen_a |= strcmp(ids[i], "tk_a") == 0 && times[i] == 110;
		seen_b |= strcmp(ids[i], "tk_b") == 0 && times[i] == 60;
	}
	TEST_ASSERT(seen_a && seen_b && refs_of(a) == 1);
	/* Cleared and freed: released too (ASan: no leak, no double release). */
	TEST_ASSERT(tk_lastused_put_key(&lu, a, 200) == 0 && refs_of(a) == 2);
	tk_lastused_clear(&lu);
	TEST_ASSERT(refs_of(a) == 1 && lu.n == 0 && tk_lastused_get(&lu, "tk_a") == 0);
	TEST_ASSERT(tk_lastused_put_key(&lu, a, 300) == 0 && tk_lastused_put_key(&lu, b, 300) == 0);
	TEST_ASSERT(refs_of(a) == 2 && refs_of(b) == 2);
	tk_lastused_free(&lu);
	TEST_ASSERT(refs_of(a) == 1 && refs_of(b) == 1 && lu.cap == 0 && lu.marks == NULL && lu.spare == NULL);
	/* The longest ID goes through whole. */
	char id[TK_KEY_ID_MAX + 1];
	memset(id, 'z', TK_KEY_ID_MAX);
	id[TK_KEY_ID_MAX] = '\0';
	tk_apikey *longest = tk_apikey_new(id);
	TEST_ASSERT(tk_lastused_put_key(&lu, longest, 7) == 0 && tk_lastused_take(&lu, ids, times, 4) == 1);
	TEST_ASSERT(strcmp(ids[0], id) == 0 && times[0] == 7 && refs_of(longest) == 1);
	tk_lastused_free(&lu);
	tk_apikey_release(longest);
	tk_apikey_release(a);
	tk_apikey_release(a2);
	tk_apikey_release(b);
}

/* The record a mark holds (the one slot of `lu` holding `id`), or NULL. */
static const tk_apikey *held(const tk_lastused *lu, const char *id)
{
	for (size_t i = 0; i < lu->cap; i++)
		if (lu->marks[i].key && strcmp(lu->marks[i].key->id, id) == 0)
			return lu->marks[i].key;
	return NULL;
}

/* Merged back after a failed flush: a cached key's mark holds the cache's
 * record (no new one); an uncached ID, or no cache, a record of the ID alone;
 * bad input changes nothing. */
static void test_put_back_holds_cached_record(void)
{
	tk_keycache *cache = tk_keycache_new(100, 3600);
	tk_lastused lu = { 0 };
	tk_apikey *c = tk_apikey_new("tk_c");
	TEST_ASSERT(cache && c);
	c->found = 1;
	tk_keycache_put(cache, c, tk_keycache_seq(cache));
	TEST_ASSERT(refs_of(c) == 2);
	TEST_ASSERT(tk_lastused_put_back(&lu, cache, "tk_c", 100) == 0);
	TEST_ASSERT(held(&lu, "tk_c") == c && refs_of(c) == 3 && lu.n == 1);
	TEST_ASSERT(tk_lastused_put_back(&lu, cache, "tk_c", 90) == 0);      /* merged: older time ignored */
	TEST_ASSERT(refs_of(c) == 3 && lu.n == 1 && tk_lastused_get(&lu, "tk_c") == 100);
	/* Not cached, or no cache: a record of the ID alone. */
	TEST_ASSERT(tk_lastused_put_back(&lu, cache, "tk_d", 50) == 0);
	TEST_ASSERT(held(&lu, "tk_d") != NULL && held(&lu, "tk_d") != c && !held(&lu, "tk_d")->found);
	TEST_ASSERT(tk_lastused_put_back(&lu, NULL, "tk_e", 60) == 0 && held(&lu, "tk_e") != NULL);
	/* Bad input: refused, nothing marked. */
	TEST_ASSERT(tk_lastused_put_back(&lu, cache, NULL, 1) != 0);
	TEST_ASSERT(tk_lastused_put_back(&lu, cache, "", 1) != 0);
	TEST_ASSERT(tk_lastused_put_back(&lu, cache, "tk_0123456789012345678901234567890123456789abcdef", 1) != 0);
	TEST_ASSERT(lu.n == 3 && refs_of(c) == 3);
	/* Invalidated meanwhile: the mark keeps its record until it is taken. */
	tk_keycache_invalidate(cache, "tk_c");
	TEST_ASSERT(refs_of(c) == 2 && tk_lastused_get(&lu, "tk_c") == 100);
	char ids[4][TK_KEY_ID_MAX + 1];
	int64_t times[4];
	TEST_ASSERT(tk_lastused_take(&lu, ids, times, 4) == 3 && refs_of(c) == 1);
	int seen_c = 0;
	for (int i = 0; i < 3; i++)
		seen_c |= strcmp(ids[i], "tk_c") == 0 && times[i] == 100;
	TEST_ASSERT(seen_c);
	/* A bypassed cache finds nothing: the ID alone. */
	tk_keycache_put(cache, c, tk_keycache_seq(cache));
	tk_keycache_set_bypass(cache, 1);
	TEST_ASSERT(tk_lastused_put_back(&lu, cache, "tk_c", 200) == 0 && held(&lu, "tk_c") != c);
	tk_lastused_free(&lu);
	tk_keycache_free(cache);
	TEST_ASSERT(refs_of(c) == 1);
	tk_apikey_release(c);
}

int main(void)
{
	TEST_RUN(test_newest_wins);
	TEST_RUN(test_growth_take_clear);
	TEST_RUN(test_take_batches);
	TEST_RUN(test_take_behind_keeps_clusters_short);
	TEST_RUN(test_bound_and_bad_input);
	TEST_RUN(test_marks_hold_records);
	TEST_RUN(test_put_back_holds_cached_record);
	TEST_DONE();
}
