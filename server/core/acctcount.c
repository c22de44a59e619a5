/*
 * acctcount.c - tokens per account (see acctcount.h): an open-addressing
 * table of at most max_accounts entries (load at most 1/2), under a mutex.
 */
#include "acctcount.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct slot {
	char *account;            /* NULL: empty */
	uint64_t n;
} slot;

struct tk_acctcount {
	pthread_mutex_t mu;
	slot *slots;
	size_t cap;               /* a power of two, >= 2 * max */
	size_t used, max;
	uint64_t other;
};

tk_acctcount *tk_acctcount_new(size_t max_accounts)
{
	if (max_accounts == 0 || max_accounts > ((size_t)1 << 24))
		return NULL;
	tk_acctcount *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->max = max_accounts;
	t->cap = 16;
	while (t->cap < 2 * max_accounts)
		t->cap *= 2;
	t->slots = calloc(t->cap, sizeof(*t->slots));
	if (!t->slots) {
		free(t);
		return NULL;
	}
	pthread_mutex_init(&t->mu, NULL);
	return t;
}

void tk_acctcount_free(tk_acctcount *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->cap; i++)
		free(t->slots[i].account);
	free(t->slots);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

static size_t hash(const char *s)
{
	size_t h = (size_t)1469598103934665603ULL;   /* FNV-1a */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * (size_t)1099511628211ULL;
	return h;
}

void tk_acctcount_add(tk_acctcount *t, const char *account)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->mu);
	if (!account || !*account) {
		t->other++;
		goto out;
	}
	for (size_t i = hash(account) & (t->cap - 1);; i = (i + 1) & (t->cap - 1)) {
		slot *s = &t->slots[i];
		if (s->account && strcmp(s->account, account) == 0) {
			s->n++;
			goto out;
		}
		if (!s->account) {
			/* A new account: past the bound (or out of memory) it joins the rest. */
			if (t->used >= t->max || !(s->account = strdup(account))) {
				t->other++;
				goto out;
			}
			t->used++;
			s->n = 1;
			goto out;
		}
	}
out:
	pthread_mutex_unlock(&t->mu);
}

void tk_acctcount_foreach(tk_acctcount *t, void (*fn)(const char *account, uint64_t n, void *arg),
                          void *arg)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->mu);
	for (size_t i = 0; i < t->cap; i++)
		if (t->slots[i].account)
			fn(t->slots[i].account, t->slots[i].n, arg);
	if (t->other)
		fn(TK_ACCTCOUNT_OTHER, t->other, arg);
	pthread_mutex_unlock(&t->mu);
}
