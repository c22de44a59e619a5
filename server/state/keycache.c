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

typedef struct node {
	tk_apikey *key;
	struct node *next;
} node;

typedef struct shard {
	pthread_mutex_t mu;
	size_t count;
	node *buckets[BUCKETS_PER_SHARD];
} shard;

struct tk_keycache {
	_Atomic uint64_t seq;
	_Atomic int bypass;
	size_t max_per_shard;
	int64_t ttl;
	shard shards[SHARDS];
};

static int64_t mono_seconds(void)
{
	return tk_mono_us() / 1000000;
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
	tk_wipe(k->prev_hash, sizeof(k->prev_hash));
	free(k->subject);
	free(k->claims);
	free(k->origins);
	tk_scopes_free(&k->scopes);
	for (size_t i = 0; i < k->naud; i++)
		free(k->aud[i]);
	free(k);
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

static void shard_clear(shard *s)
{
	for (int b = 0; b < BUCKETS_PER_SHARD; b++) {
		node *n = s->buckets[b];
		while (n) {
			node *next = n->next;
			tk_apikey_release(n->key);
			free(n);
			n = next;
		}
		s->buckets[b] = NULL;
	}
	s->count = 0;
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
	int64_t now = mono_seconds();
	pthread_mutex_lock(&s->mu);
	for (node **pp = &s->buckets[b]; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->key->id, id) != 0)
			continue;
		if (now - (*pp)->key->loaded_at >= c->ttl) {
			node *dead = *pp;
			*pp = dead->next;
			tk_apikey_release(dead->key);
			free(dead);
			s->count--;
		} else {
			found = tk_apikey_ref((*pp)->key);
		}
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
	node *fresh = malloc(sizeof(*fresh));
	if (!fresh)
		return;
	k->loaded_at = mono_seconds();
	pthread_mutex_lock(&s->mu);
	/* Checked under the shard lock: an invalidator bumps seq before taking it. */
	if (atomic_load_explicit(&c->seq, memory_order_acquire) != seq ||
	    atomic_load_explicit(&c->bypass, memory_order_acquire)) {
		pthread_mutex_unlock(&s->mu);
		free(fresh);
		return;
	}
	for (node **pp = &s->buckets[b]; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->key->id, k->id) == 0) {
			node *old = *pp;
			*pp = old->next;
			tk_apikey_release(old->key);
			free(old);
			s->count--;
			break;
		}
	}
	if (s->count >= c->max_per_shard)
		shard_clear(s);   /* crude but bounded: a flood of distinct IDs cannot grow memory */
	fresh->key = tk_apikey_ref(k);
	fresh->next = s->buckets[b];
	s->buckets[b] = fresh;
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
	for (node **pp = &s->buckets[b]; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->key->id, id) == 0) {
			node *old = *pp;
			*pp = old->next;
			tk_apikey_release(old->key);
			free(old);
			s->count--;
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
			node **pp = &s->buckets[b];
			while (*pp) {
				if ((*pp)->key->found && strcmp((*pp)->key->account, account) == 0) {
					node *old = *pp;
					*pp = old->next;
					tk_apikey_release(old->key);
					free(old);
					s->count--;
				} else {
					pp = &(*pp)->next;
				}
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
