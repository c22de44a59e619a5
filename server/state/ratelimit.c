/*
 * ratelimit.c - leaky buckets keyed by address or key ID (see ratelimit.h).
 */
#include "ratelimit.h"

#include <tokend/crypto.h>

#include "clock.h"
#include "hash.h"

#include <math.h>
#include <stdatomic.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SHARDS 64
#define NAME_MAX_LEN 63

/*
 * Each shard is a chained hash table of buckets plus a least-recently-used
 * list, so that a lookup, a creation and an eviction each cost O(1) whatever
 * the number of names: a spray of failures from many addresses costs each
 * request no more than failures from one. The hash is seeded at random per
 * limiter, so chains cannot be aimed at from outside.
 */
typedef struct bucket {
	char name[NAME_MAX_LEN + 1];
	double level;
	double rate;                /* drain per second */
	double at;                  /* monotonic seconds of the last update */
	struct bucket *hnext;       /* chain of its table slot */
	struct bucket *newer, *older; /* LRU list */
} bucket;

typedef struct shard {
	pthread_mutex_t mu;
	bucket **slots;             /* nslots = mask + 1, a power of two */
	size_t mask;
	bucket *newest, *oldest;
	int count;
} shard;

struct tk_ratelimit {
	_Atomic long live;          /* buckets held: 0 lets check() skip the lock */
	double limit;               /* failures per minute allowed; 0: off */
	double rate;                /* drain per second */
	int max_per_shard;
	uint64_t seed;
	shard shards[SHARDS];
};

static uint64_t name_hash(const tk_ratelimit *rl, const char *s)
{
	uint64_t h = tk_hash_str(s) ^ rl->seed;

	/* a final mix, so that the seed reaches every bit */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	return h;
}

tk_ratelimit *tk_ratelimit_new(int per_minute, int max_entries)
{
	tk_ratelimit *rl = calloc(1, sizeof(*rl));
	size_t nslots = 1;

	if (!rl)
		return NULL;
	rl->limit = per_minute;
	rl->rate = per_minute / 60.0;
	rl->max_per_shard = max_entries / SHARDS + 1;
	while (nslots < (size_t)rl->max_per_shard)
		nslots <<= 1;
	if (tk_random_bytes(&rl->seed, sizeof(rl->seed)) != 0)
		rl->seed = (uint64_t)tk_mono_us() * 0x9e3779b97f4a7c15ULL;
	for (int i = 0; i < SHARDS; i++) {
		rl->shards[i].slots = calloc(nslots, sizeof(bucket *));
		if (!rl->shards[i].slots) {
			for (int j = 0; j < i; j++) {
				free(rl->shards[j].slots);
				pthread_mutex_destroy(&rl->shards[j].mu);
			}
			free(rl);
			return NULL;
		}
		rl->shards[i].mask = nslots - 1;
		pthread_mutex_init(&rl->shards[i].mu, NULL);
	}
	return rl;
}

void tk_ratelimit_free(tk_ratelimit *rl)
{
	if (!rl)
		return;
	for (int i = 0; i < SHARDS; i++) {
		bucket *b = rl->shards[i].newest;
		while (b) {
			bucket *next = b->older;
			free(b);
			b = next;
		}
		free(rl->shards[i].slots);
		pthread_mutex_destroy(&rl->shards[i].mu);
	}
	free(rl);
}

/* Drain a bucket to `t`. */
static void drain(bucket *b, double t)
{
	b->level -= (t - b->at) * b->rate;
	if (b->level < 0)
		b->level = 0;
	b->at = t;
}

static void lru_unlink(shard *s, bucket *b)
{
	if (b->newer)
		b->newer->older = b->older;
	else
		s->newest = b->older;
	if (b->older)
		b->older->newer = b->newer;
	else
		s->oldest = b->newer;
	b->newer = b->older = NULL;
}

static void lru_push(shard *s, bucket *b)
{
	b->newer = NULL;
	b->older = s->newest;
	if (s->newest)
		s->newest->newer = b;
	s->newest = b;
	if (!s->oldest)
		s->oldest = b;
}

/* Take `b` out of its chain (slot `slot`) and the LRU list, and free it. */
static void forget(tk_ratelimit *rl, shard *s, bucket *b, size_t slot)
{
	bucket **pp = &s->slots[slot];

	while (*pp && *pp != b)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = b->hnext;
	lru_unlink(s, b);
	free(b);
	s->count--;
	atomic_fetch_sub_explicit(&rl->live, 1, memory_order_relaxed);
}

/*
 * Find (and with `create`, make) the bucket of `name`, drained to `t`; the
 * shard lock is held. A bucket found empty when not creating is forgotten
 * (NULL). At the shard's bound the least recently used bucket is forgotten
 * to make room.
 */
static bucket *find(tk_ratelimit *rl, shard *s, const char *name, uint64_t h, int create, double t)
{
	size_t slot = (size_t)(h >> 6) & s->mask;
	bucket *b;

	for (b = s->slots[slot]; b; b = b->hnext)
		if (strcmp(b->name, name) == 0)
			break;
	if (b) {
		drain(b, t);
		if (!create && b->level <= 0) {
			forget(rl, s, b, slot);
			return NULL;
		}
		lru_unlink(s, b);
		lru_push(s, b);
		return b;
	}
	if (!create)
		return NULL;
	if (s->count >= rl->max_per_shard && s->oldest) {
		/* At the bound: the least recently used bucket is reused. */
		b = s->oldest;
		size_t oslot = (size_t)(name_hash(rl, b->name) >> 6) & s->mask;
		bucket **pp = &s->slots[oslot];
		while (*pp && *pp != b)
			pp = &(*pp)->hnext;
		if (*pp)
			*pp = b->hnext;
		lru_unlink(s, b);
		memset(b, 0, sizeof(*b));
	} else {
		b = calloc(1, sizeof(*b));
		if (!b)
			return NULL;
		s->count++;
		atomic_fetch_add_explicit(&rl->live, 1, memory_order_relaxed);
	}
	strncpy(b->name, name, NAME_MAX_LEN);
	b->rate = rl->rate;
	b->at = t;
	b->hnext = s->slots[slot];
	s->slots[slot] = b;
	lru_push(s, b);
	return b;
}

int tk_ratelimit_check(tk_ratelimit *rl, const char *name)
{
	if (!rl || rl->limit <= 0 || !name || !*name)
		return 0;
	/* The common case on the token path: nobody has failed lately. */
	if (atomic_load_explicit(&rl->live, memory_order_relaxed) == 0)
		return 0;
	uint64_t h = name_hash(rl, name);
	shard *s = &rl->shards[h % SHARDS];
	int wait = 0;
	double t = tk_mono_s();
	pthread_mutex_lock(&s->mu);
	{
		bucket *b = find(rl, s, name, h, 0, t);
		/* `limit` failures within the window: the next attempt waits until one
		 * of them has drained. */
		if (b && b->level > rl->limit - 1)
			wait = (int)ceil((b->level - (rl->limit - 1)) / rl->rate);
	}
	pthread_mutex_unlock(&s->mu);
	return wait > 0 ? wait : 0;
}

void tk_ratelimit_fail(tk_ratelimit *rl, const char *name)
{
	if (!rl || rl->limit <= 0 || !name || !*name)
		return;
	uint64_t h = name_hash(rl, name);
	shard *s = &rl->shards[h % SHARDS];
	double t = tk_mono_s();
	pthread_mutex_lock(&s->mu);
	bucket *b = find(rl, s, name, h, 1, t);
	if (b && b->level < 2 * rl->limit)
		b->level += 1;
	pthread_mutex_unlock(&s->mu);
}

int tk_ratelimit_take(tk_ratelimit *rl, const char *name, int per_minute)
{
	if (!rl || per_minute <= 0 || !name || !*name)
		return 0;
	uint64_t h = name_hash(rl, name);
	shard *s = &rl->shards[h % SHARDS];
	double t = tk_mono_s();
	int wait = 0;
	pthread_mutex_lock(&s->mu);
	bucket *b = find(rl, s, name, h, 1, t);
	if (b) {
		b->rate = per_minute / 60.0;   /* the key's limit may have changed */
		if (b->level + 1 > per_minute)
			wait = (int)ceil((b->level + 1 - per_minute) / b->rate);
		else
			b->level += 1;
	}
	pthread_mutex_unlock(&s->mu);
	return wait > 0 ? wait : 0;
}
