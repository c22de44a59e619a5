/*
 * keycache.c - sharded, refcounted key cache with invalidation sequence.
 */
#include "keycache.h"

#include "clock.h"
#include "hash.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SHARDS 64
#define BUCKETS_PER_SHARD 4096

/* Records are chained through their own `next` (no node per entry); the chain
 * and each record's `cached` flag belong to the shard's lock. */
typedef struct shard {
	pthread_mutex_t mu;
	size_t count;
	size_t hand;              /* where the next eviction starts looking */
	tk_apikey *buckets[BUCKETS_PER_SHARD];
} shard;

struct tk_keycache {
	_Atomic uint64_t seq;
	_Atomic int bypass;
	size_t max_per_shard;
	int64_t ttl;
	shard shards[SHARDS];
};

static int32_t mono_seconds(void)
{
	return (int32_t)(tk_mono_us() / 1000000);
}

tk_apikey *tk_apikey_new(void)
{
	tk_apikey *k = calloc(1, sizeof(*k));
	if (k)
		atomic_init(&k->refs, 1);
	return k;
}

tk_apikey *tk_apikey_ref(tk_apikey *k)
{
	atomic_fetch_add_explicit(&k->refs, 1, memory_order_relaxed);
	return k;
}

int tk_apikey_allows_origin(const tk_apikey *k, const char *origin)
{
	size_t n = origin ? strlen(origin) : 0;
	if (!k || !k->publishable || !k->origins || n == 0)
		return 0;
	for (const char *p = k->origins; *p;) {
		const char *sp = strchr(p, ' ');
		size_t len = sp ? (size_t)(sp - p) : strlen(p);
		if (len == n && memcmp(p, origin, n) == 0)
			return 1;
		p += len + (sp ? 1 : 0);
	}
	return 0;
}

void tk_apikey_release(tk_apikey *k)
{
	if (!k || atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) != 1)
		return;
	tk_wipe(k->hash, sizeof(k->hash));
	if (k->prev_hash) {
		tk_wipe(k->prev_hash, TK_HASH_LEN);
		free(k->prev_hash);
	}
	tk_intern_str_release(k->account);
	tk_intern_str_release(k->subject);
	tk_intern_str_release(k->claims);
	tk_intern_str_release(k->origins);
	tk_intern_scopes_release(k->scopes);
	if (k->aud)
		tk_intern_list_release((const tk_strlist *)(const void *)
		                       ((const char *)k->aud - offsetof(tk_strlist, v)));
	free(k);
}

int tk_apikey_set_values(tk_apikey *k, const char *account, const char *subject, const char *claims,
                         const char *scopes, const char *audiences)
{
	const char *why = NULL;
	int rc = 0;

	k->account = tk_intern_str(account);
	if (subject)
		k->subject = tk_intern_str(subject);
	if (claims)
		k->claims = tk_intern_str(claims);
	k->scopes = tk_intern_scopes(scopes, &why);
	if (!k->scopes && strcmp(why, "out of memory") != 0) {
		rc = 1;                  /* an invalid scope string grants nothing */
		k->scopes = tk_intern_scopes("", &why);
	}
	const tk_strlist *aud = tk_intern_list(audiences);
	if (aud) {
		k->aud = aud->v;
		k->naud = (uint16_t)aud->n;
	}
	/* A missing value would read as "none" (the key ID as subject, every
	 * audience, no claims): never use a record short of one. */
	if (!k->account || (subject && !k->subject) || (claims && !k->claims) || !k->scopes || !aud)
		return -1;
	return rc;
}

/* FNV-1a over the ID: the random body makes it well spread. */
static uint64_t hash_id(const char *id)
{
	return tk_hash_str(id);
}

tk_keycache *tk_keycache_new(size_t max_entries, int64_t ttl_seconds)
{
	tk_keycache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->max_per_shard = max_entries / SHARDS + 1;
	c->ttl = ttl_seconds;
	for (int i = 0; i < SHARDS; i++)
		pthread_mutex_init(&c->shards[i].mu, NULL);
	return c;
}

/* Unlink *pp (locked shard) and drop the cache's reference. */
static void unlink_at(shard *s, tk_apikey **pp)
{
	tk_apikey *dead = *pp;
	*pp = dead->next;
	dead->next = NULL;
	dead->cached = 0;
	s->count--;
	tk_apikey_release(dead);
}

static void shard_clear(shard *s)
{
	for (int b = 0; b < BUCKETS_PER_SHARD; b++)
		while (s->buckets[b])
			unlink_at(s, &s->buckets[b]);
	s->count = 0;
}

/* A full shard makes room for one: the first record of the next non-empty
 * bucket from the hand on (a flood of distinct IDs cannot grow memory, and a
 * full cache loses one record per insertion, not a whole shard). */
static void evict_one(shard *s)
{
	for (size_t i = 0; i < BUCKETS_PER_SHARD; i++) {
		size_t b = (s->hand + i) % BUCKETS_PER_SHARD;
		if (s->buckets[b]) {
			unlink_at(s, &s->buckets[b]);
			s->hand = (b + 1) % BUCKETS_PER_SHARD;
			return;
		}
	}
}

void tk_keycache_free(tk_keycache *c)
{
	if (!c)
		return;
	for (int i = 0; i < SHARDS; i++) {
		shard_clear(&c->shards[i]);
		pthread_mutex_destroy(&c->shards[i].mu);
	}
	free(c);
}

tk_apikey *tk_keycache_get(tk_keycache *c, const char *id)
{
	if (atomic_load_explicit(&c->bypass, memory_order_acquire))
		return NULL;
	uint64_t h = hash_id(id);
	shard *s = &c->shards[h % SHARDS];
	size_t b = (h / SHARDS) % BUCKETS_PER_SHARD;
	tk_apikey *found = NULL;
	int32_t now = mono_seconds();
	pthread_mutex_lock(&s->mu);
	for (tk_apikey **pp = &s->buckets[b]; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->id, id) != 0)
			continue;
		if (now - (*pp)->loaded_at >= c->ttl)
			unlink_at(s, pp);
		else
			found = tk_apikey_ref(*pp);
		break;
	}
	pthread_mutex_unlock(&s->mu);
	return found;
}

uint64_t tk_keycache_seq(tk_keycache *c)
{
	return atomic_load_explicit(&c->seq, memory_order_acquire);
}

void tk_keycache_put(tk_keycache *c, tk_apikey *k, uint64_t seq)
{
	if (atomic_load_explicit(&c->bypass, memory_order_acquire))
		return;
	uint64_t h = hash_id(k->id);
	shard *s = &c->shards[h % SHARDS];
	size_t b = (h / SHARDS) % BUCKETS_PER_SHARD;
	pthread_mutex_lock(&s->mu);
	/* Checked under the shard lock: an invalidator bumps seq before taking it.
	 * A record already in the cache (put twice) stays where it is. */
	if (atomic_load_explicit(&c->seq, memory_order_acquire) != seq ||
	    atomic_load_explicit(&c->bypass, memory_order_acquire) || k->cached) {
		pthread_mutex_unlock(&s->mu);
		return;
	}
	k->loaded_at = mono_seconds();
	for (tk_apikey **pp = &s->buckets[b]; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->id, k->id) == 0) {
			unlink_at(s, pp);
			break;
		}
	}
	if (s->count >= c->max_per_shard)
		evict_one(s);
	k->next = s->buckets[b];
	k->cached = 1;
	s->buckets[b] = tk_apikey_ref(k);
	s->count++;
	pthread_mutex_unlock(&s->mu);
}

void tk_keycache_invalidate(tk_keycache *c, const char *id)
{
	atomic_fetch_add_explicit(&c->seq, 1, memory_order_acq_rel);
	uint64_t h = hash_id(id);
	shard *s = &c->shards[h % SHARDS];
	size_t b = (h / SHARDS) % BUCKETS_PER_SHARD;
	pthread_mutex_lock(&s->mu);
	for (tk_apikey **pp = &s->buckets[b]; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->id, id) == 0) {
			unlink_at(s, pp);
			break;
		}
	}
	pthread_mutex_unlock(&s->mu);
}

void tk_keycache_invalidate_account(tk_keycache *c, const char *account)
{
	atomic_fetch_add_explicit(&c->seq, 1, memory_order_acq_rel);
	for (int i = 0; i < SHARDS; i++) {
		shard *s = &c->shards[i];
		pthread_mutex_lock(&s->mu);
		for (int b = 0; b < BUCKETS_PER_SHARD; b++) {
			tk_apikey **pp = &s->buckets[b];
			while (*pp) {
				if ((*pp)->found && (*pp)->account && strcmp((*pp)->account, account) == 0)
					unlink_at(s, pp);
				else
					pp = &(*pp)->next;
			}
		}
		pthread_mutex_unlock(&s->mu);
	}
}

void tk_keycache_flush(tk_keycache *c)
{
	atomic_fetch_add_explicit(&c->seq, 1, memory_order_acq_rel);
	for (int i = 0; i < SHARDS; i++) {
		pthread_mutex_lock(&c->shards[i].mu);
		shard_clear(&c->shards[i]);
		pthread_mutex_unlock(&c->shards[i].mu);
	}
}

void tk_keycache_set_bypass(tk_keycache *c, int on)
{
	atomic_store_explicit(&c->bypass, on, memory_order_release);
	tk_keycache_flush(c);
}

int tk_keycache_bypassed(tk_keycache *c)
{
	return atomic_load_explicit(&c->bypass, memory_order_acquire);
}

size_t tk_keycache_size(tk_keycache *c)
{
	size_t n = 0;
	for (int i = 0; i < SHARDS; i++) {
		pthread_mutex_lock(&c->shards[i].mu);
		n += c->shards[i].count;
		pthread_mutex_unlock(&c->shards[i].mu);
	}
	return n;
}
