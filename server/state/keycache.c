/*
 * keycache.c - sharded, refcounted key cache with invalidation sequence.
 */
#include "keycache.h"

#include "clock.h"
#include "hash.h"
#include "memtrim.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SHARDS 64
/* Each shard's bucket array starts small and doubles whenever the shard holds
 * more records than buckets (a chain is then one record long on average,
 * whether 100 keys are cached or a million), up to the power of two that
 * holds the shard's share of key_cache_size. A failed doubling keeps the
 * array it had: lookups stay right, only longer. */
#define BUCKETS_MIN 256
#define BUCKETS_CAP ((size_t)1 << 22)

/* Records are chained through their own `next` (no node per entry); the chain
 * and each record's `cached` flag belong to the shard's lock. */
typedef struct shard {
	pthread_mutex_t mu;
	size_t count;
	size_t hand;              /* where the next eviction starts looking */
	size_t nbuckets;          /* a power of two */
	size_t max_buckets;
	tk_apikey **buckets;
} shard;

struct tk_keycache {
	_Atomic uint64_t seq;
	_Atomic int bypass;
	size_t max_per_shard;
	int64_t ttl;
	shard shards[SHARDS];
};

/* What the record's narrow fields must hold. */
_Static_assert(TK_STRLIST_MAX <= UINT8_MAX, "naud is 8 bits");
_Static_assert(TK_UNUSABLE_CORRUPT < 8, "reason is 3 bits");
_Static_assert(TK_ENV_TEST < 4, "env is 2 bits");
_Static_assert(TK_KEY_ID_MAX < 64, "the ID buffer sizes");

static int32_t mono_seconds(void)
{
	return (int32_t)(tk_mono_us() / 1000000);
}

tk_apikey *tk_apikey_new(const char *id)
{
	size_t len = id ? strlen(id) : TK_KEY_ID_MAX + 1;
	if (len > TK_KEY_ID_MAX)
		return NULL;
	/* The fixed part, then the ID and its NUL (never less than the struct). */
	size_t size = offsetof(tk_apikey, id) + len + 1;
	tk_apikey *k = calloc(1, size < sizeof(*k) ? sizeof(*k) : size);
	if (!k)
		return NULL;
	memcpy(k->id, id, len);
	atomic_init(&k->refs, 1);
	tk_memtrim_note();
	atomic_init(&k->last_used_at, 0);
	return k;
}

/* The side record of `k`, made on first use (zeroed). NULL: out of memory. */
static tk_apikey_extra *extra(tk_apikey *k)
{
	if (!k->x)
		k->x = calloc(1, sizeof(*k->x));
	return k->x;
}

int tk_apikey_set_prev(tk_apikey *k, const unsigned char *digest, int64_t until)
{
	if (until == 0)
		return 0;                /* no previous secret (0 means none) */
	tk_apikey_extra *x = extra(k);
	if (!x)
		return -1;
	memcpy(x->prev_hash, digest, TK_HASH_LEN);
	x->prev_until = until;
	return 0;
}

int tk_apikey_set_origins(tk_apikey *k, const char *origins)
{
	tk_apikey_extra *x = extra(k);
	if (!x)
		return -1;
	x->origins = tk_intern_str(origins);
	return x->origins ? 0 : -1;
}

static const char *const reason_text[] = {
	[TK_UNUSABLE_NONE] = NULL,
	[TK_UNUSABLE_DELETED] = "key_deleted",
	[TK_UNUSABLE_REVOKED] = "key_revoked",
	[TK_UNUSABLE_DISABLED] = "key_disabled",
	[TK_UNUSABLE_ACCOUNT_DISABLED] = "account_disabled",
	[TK_UNUSABLE_OTHER] = "key_not_usable",
	[TK_UNUSABLE_CORRUPT] = "key_corrupt",
};
#define NREASONS (sizeof(reason_text) / sizeof(reason_text[0]))

const char *tk_apikey_unusable_reason(const tk_apikey *k)
{
	if (k->reason == TK_UNUSABLE_NONE)
		return NULL;
	return k->reason < NREASONS ? reason_text[k->reason] : "key_not_usable";
}

enum tk_apikey_unusable tk_apikey_reason_code(const char *text)
{
	if (!text || !*text)
		return TK_UNUSABLE_NONE;
	/* Only the database's own reasons; "key_not_usable" and "key_corrupt"
	 * are this process's words, never taken from a row. */
	for (size_t i = TK_UNUSABLE_DELETED; i <= TK_UNUSABLE_ACCOUNT_DISABLED; i++)
		if (strcmp(text, reason_text[i]) == 0)
			return (enum tk_apikey_unusable)i;
	return TK_UNUSABLE_OTHER;
}

const char *tk_apikey_environment(const tk_apikey *k)
{
	return k->env == TK_ENV_LIVE ? "live" : k->env == TK_ENV_TEST ? "test" : NULL;
}

enum tk_apikey_env tk_apikey_env_code(const char *text)
{
	if (text && strcmp(text, "live") == 0)
		return TK_ENV_LIVE;
	if (text && strcmp(text, "test") == 0)
		return TK_ENV_TEST;
	return TK_ENV_UNKNOWN;
}

tk_apikey *tk_apikey_ref(tk_apikey *k)
{
	atomic_fetch_add_explicit(&k->refs, 1, memory_order_relaxed);
	return k;
}

int tk_apikey_allows_origin(const tk_apikey *k, const char *origin)
{
	size_t n = origin ? strlen(origin) : 0;
	const char *origins = k ? tk_apikey_origins(k) : NULL;
	if (!k || !k->publishable || !origins || n == 0)
		return 0;
	for (const char *p = origins; *p;) {
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
	if (k->x) {
		tk_wipe(k->x->prev_hash, sizeof(k->x->prev_hash));
		tk_intern_str_release(k->x->subject);
		tk_intern_str_release(k->x->claims);
		tk_intern_str_release(k->x->origins);
		free(k->x);
	}
	tk_intern_str_release(k->account);
	tk_intern_scopes_release(k->scopes);
	if (k->aud)
		tk_intern_list_release((const tk_strlist *)(const void *)
		                       ((const char *)k->aud - offsetof(tk_strlist, v)));
	free(k);
	tk_memtrim_note();
}

int tk_apikey_set_values(tk_apikey *k, const char *account, const char *subject, const char *claims,
                         const char *scopes, const char *audiences)
{
	const char *why = NULL;
	int rc = 0;

	const char *sub = NULL, *cl = NULL;

	k->account = tk_intern_str(account);
	/* Only a key with a subject or claims carries the side record. */
	tk_apikey_extra *x = subject || claims ? extra(k) : NULL;
	if (x && subject)
		sub = x->subject = tk_intern_str(subject);
	if (x && claims)
		cl = x->claims = tk_intern_str(claims);
	k->scopes = tk_intern_scopes(scopes, &why);
	if (!k->scopes && strcmp(why, "out of memory") != 0) {
		rc = 1;                  /* an invalid scope string grants nothing */
		k->scopes = tk_intern_scopes("", &why);
	}
	const tk_strlist *aud = tk_intern_list(audiences);
	if (aud) {
		k->aud = aud->v;
		k->naud = (uint8_t)aud->n;   /* <= TK_STRLIST_MAX */
	}
	/* A missing value would read as "none" (the key ID as subject, every
	 * audience, no claims): never use a record short of one. */
	if (!k->account || (subject && !sub) || (claims && !cl) || !k->scopes || !aud)
		return -1;
	return rc;
}

/* FNV-1a over the ID: the random body makes it well spread. */
static uint64_t hash_id(const char *id)
{
	return tk_hash_str(id);
}

/* The bucket of hash `h` in shard `s` (the low bits chose the shard). */
static size_t bucket_of(const shard *s, uint64_t h)
{
	return (size_t)(h / SHARDS) & (s->nbuckets - 1);
}

/* Double the shard's buckets (locked shard) when it holds more records than
 * buckets and may still grow; on allocation failure nothing changes. */
static void maybe_grow(shard *s)
{
	if (s->count <= s->nbuckets || s->nbuckets >= s->max_buckets)
		return;
	size_t n = s->nbuckets * 2;
	tk_apikey **nb = calloc(n, sizeof(*nb));
	if (!nb)
		return;
	for (size_t b = 0; b < s->nbuckets; b++) {
		tk_apikey *k = s->buckets[b];
		while (k) {
			tk_apikey *next = k->next;
			size_t to = (size_t)(hash_id(k->id) / SHARDS) & (n - 1);
			k->next = nb[to];
			nb[to] = k;
			k = next;
		}
	}
	free(s->buckets);
	s->buckets = nb;
	s->nbuckets = n;
}

tk_keycache *tk_keycache_new(size_t max_entries, int64_t ttl_seconds)
{
	tk_keycache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->max_per_shard = max_entries / SHARDS + 1;
	c->ttl = ttl_seconds;
	size_t maxb = BUCKETS_MIN;
	while (maxb < c->max_per_shard && maxb < BUCKETS_CAP)
		maxb *= 2;
	for (int i = 0; i < SHARDS; i++) {
		shard *s = &c->shards[i];
		s->nbuckets = BUCKETS_MIN;
		s->max_buckets = maxb;
		s->buckets = calloc(BUCKETS_MIN, sizeof(*s->buckets));
		if (!s->buckets) {
			for (int j = 0; j < i; j++) {
				free(c->shards[j].buckets);
				pthread_mutex_destroy(&c->shards[j].mu);
			}
			free(c);
			return NULL;
		}
		pthread_mutex_init(&s->mu, NULL);
	}
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
	for (size_t b = 0; b < s->nbuckets; b++)
		while (s->buckets[b])
			unlink_at(s, &s->buckets[b]);
	s->count = 0;
}

/* A full shard makes room for one: the first record of the next non-empty
 * bucket from the hand on (a flood of distinct IDs cannot grow memory, and a
 * full cache loses one record per insertion, not a whole shard). */
static void evict_one(shard *s)
{
	for (size_t i = 0; i < s->nbuckets; i++) {
		size_t b = (s->hand + i) & (s->nbuckets - 1);
		if (s->buckets[b]) {
			unlink_at(s, &s->buckets[b]);
			s->hand = (b + 1) & (s->nbuckets - 1);
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
		free(c->shards[i].buckets);
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
	tk_apikey *found = NULL;
	int32_t now = mono_seconds();
	pthread_mutex_lock(&s->mu);
	size_t b = bucket_of(s, h);
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
	pthread_mutex_lock(&s->mu);
	/* Checked under the shard lock: an invalidator bumps seq before taking it.
	 * A record already in the cache (put twice) stays where it is. */
	if (atomic_load_explicit(&c->seq, memory_order_acquire) != seq ||
	    atomic_load_explicit(&c->bypass, memory_order_acquire) || k->cached) {
		pthread_mutex_unlock(&s->mu);
		return;
	}
	k->loaded_at = mono_seconds();
	size_t b = bucket_of(s, h);
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
	maybe_grow(s);
	pthread_mutex_unlock(&s->mu);
}

void tk_keycache_invalidate(tk_keycache *c, const char *id)
{
	atomic_fetch_add_explicit(&c->seq, 1, memory_order_acq_rel);
	uint64_t h = hash_id(id);
	shard *s = &c->shards[h % SHARDS];
	pthread_mutex_lock(&s->mu);
	size_t b = bucket_of(s, h);
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
		for (size_t b = 0; b < s->nbuckets; b++) {
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
