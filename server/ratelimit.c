/*
 * ratelimit.c - leaky buckets keyed by address or key ID (see ratelimit.h).
 */
#include "ratelimit.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SHARDS 64
#define NAME_MAX_LEN 63

typedef struct bucket {
	char name[NAME_MAX_LEN + 1];
	double level;
	double rate;                /* drain per second */
	double at;                  /* monotonic seconds of the last update */
	struct bucket *next;
} bucket;

typedef struct shard {
	pthread_mutex_t mu;
	bucket *head;
	int count;
} shard;

struct tk_ratelimit {
	double limit;               /* failures per minute allowed; 0: off */
	double rate;                /* drain per second */
	int max_per_shard;
	shard shards[SHARDS];
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static unsigned hash(const char *s)
{
	unsigned h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

tk_ratelimit *tk_ratelimit_new(int per_minute, int max_entries)
{
	tk_ratelimit *rl = calloc(1, sizeof(*rl));
	if (!rl)
		return NULL;
	rl->limit = per_minute;
	rl->rate = per_minute / 60.0;
	rl->max_per_shard = max_entries / SHARDS + 1;
	for (int i = 0; i < SHARDS; i++)
		pthread_mutex_init(&rl->shards[i].mu, NULL);
	return rl;
}

void tk_ratelimit_free(tk_ratelimit *rl)
{
	if (!rl)
		return;
	for (int i = 0; i < SHARDS; i++) {
		bucket *b = rl->shards[i].head;
		while (b) {
			bucket *next = b->next;
			free(b);
			b = next;
		}
		pthread_mutex_destroy(&rl->shards[i].mu);
	}
	free(rl);
}

/* Drain a bucket to `t`. */
static void drain(tk_ratelimit *rl, bucket *b, double t)
{
	(void)rl;
	b->level -= (t - b->at) * b->rate;
	if (b->level < 0)
		b->level = 0;
	b->at = t;
}

/* Find (and optionally create) the bucket; the shard lock is held. Drops
 * empty buckets it walks past, and the oldest ones when the shard is full. */
static bucket *find(tk_ratelimit *rl, shard *s, const char *name, int create, double t)
{
	bucket **pp = &s->head, *found = NULL;
	while (*pp) {
		bucket *b = *pp;
		drain(rl, b, t);
		if (strcmp(b->name, name) == 0) {
			found = b;
			pp = &b->next;
		} else if (b->level <= 0) {
			*pp = b->next;
			free(b);
			s->count--;
		} else {
			pp = &b->next;
		}
		if (found && !create)
			break;
	}
	if (found || !create)
		return found;
	if (s->count >= rl->max_per_shard) {
		/* Full of live buckets: forget the last (least recently added) one. */
		bucket **last = &s->head;
		while (*last && (*last)->next)
			last = &(*last)->next;
		if (*last) {
			free(*last);
			*last = NULL;
			s->count--;
		}
	}
	bucket *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	strncpy(b->name, name, NAME_MAX_LEN);
	b->rate = rl->rate;
	b->at = t;
	b->next = s->head;
	s->head = b;
	s->count++;
	return b;
}

int tk_ratelimit_check(tk_ratelimit *rl, const char *name)
{
	if (!rl || rl->limit <= 0 || !name || !*name)
		return 0;
	shard *s = &rl->shards[hash(name) % SHARDS];
	int wait = 0;
	double t = now_s();
	pthread_mutex_lock(&s->mu);
	if (s->head) {
		bucket *b = find(rl, s, name, 0, t);
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
	shard *s = &rl->shards[hash(name) % SHARDS];
	double t = now_s();
	pthread_mutex_lock(&s->mu);
	bucket *b = find(rl, s, name, 1, t);
	if (b && b->level < 2 * rl->limit)
		b->level += 1;
	pthread_mutex_unlock(&s->mu);
}

int tk_ratelimit_take(tk_ratelimit *rl, const char *name, int per_minute)
{
	if (!rl || per_minute <= 0 || !name || !*name)
		return 0;
	shard *s = &rl->shards[hash(name) % SHARDS];
	double t = now_s();
	int wait = 0;
	pthread_mutex_lock(&s->mu);
	bucket *b = find(rl, s, name, 1, t);
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
