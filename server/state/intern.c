/*
 * intern.c - the shared, refcounted value table (see intern.h).
 *
 * An atom is one allocation: its header, then (for scope sets and lists) the
 * value the callers see, then the text it was made from. A caller's pointer
 * leads back to its atom by a fixed offset, so a release needs no lookup.
 */
#include "intern.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

#define SHARDS 16
#define FIRST_BUCKETS 64

enum { K_STR = 1, K_SCOPES, K_LIST };

typedef struct atom {
	struct atom *next;
	uint64_t hash;
	size_t refs;               /* under the shard's lock */
	size_t len;                /* of text, without its NUL */
	int kind;
	union {                    /* K_SCOPES, K_LIST: what the callers see */
		tk_scopes scopes;
		tk_strlist list;
	} u;
	char text[];               /* K_STR: what the callers see */
} atom;

typedef struct shard {
	pthread_mutex_t mu;
	size_t count, nbuckets;
	atom **buckets;
} shard;

static shard shards[SHARDS];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init_shards(void)
{
	for (int i = 0; i < SHARDS; i++)
		pthread_mutex_init(&shards[i].mu, NULL);
}

/* A string atom carries no value part: its header is all that precedes text
 * (the union is there for the other kinds, and allocated only for them). */
static size_t atom_size(int kind, size_t len)
{
	if (kind == K_STR)
		return offsetof(atom, u) + len + 1;
	/* A list also keeps a second copy of its text, cut at the spaces. */
	return offsetof(atom, text) + (len + 1) * (kind == K_LIST ? 2 : 1);
}

static char *atom_text(atom *a)
{
	return a->kind == K_STR ? (char *)a + offsetof(atom, u) : a->text;
}

static uint64_t hash_of(int kind, const char *s, size_t len)
{
	return tk_hash_bytes(s, len) ^ ((uint64_t)kind * 0x9E3779B97F4A7C15ULL);
}

/* Double the bucket array of `sh` (locked); on failure keep the old one. */
static void grow(shard *sh)
{
	size_t nb = sh->nbuckets ? sh->nbuckets * 2 : FIRST_BUCKETS;
	atom **b = calloc(nb, sizeof(*b));
	if (!b)
		return;
	for (size_t i = 0; i < sh->nbuckets; i++) {
		atom *a = sh->buckets[i];
		while (a) {
			atom *next = a->next;
			size_t j = (a->hash / SHARDS) & (nb - 1);
			a->next = b[j];
			b[j] = a;
			a = next;
		}
	}
	free(sh->buckets);
	sh->buckets = b;
	sh->nbuckets = nb;
}

/* Build the value part of a new atom from its text. 0, or -1 (*why set). */
static int build(atom *a, const char **why)
{
	char *t = atom_text(a);

	if (a->kind == K_SCOPES)
		return tk_scopes_parse(t, a->len, &a->u.scopes, why);
	if (a->kind == K_LIST) {
		/* The list points into the atom's second copy of the text, cut at spaces. */
		char *save = NULL, *words = t + a->len + 1;
		memcpy(words, t, a->len + 1);
		for (char *w = strtok_r(words, " ", &save); w && a->u.list.n < TK_STRLIST_MAX;
		     w = strtok_r(NULL, " ", &save))
			a->u.list.v[a->u.list.n++] = w;
	}
	return 0;
}

static void destroy(atom *a)
{
	if (a->kind == K_SCOPES)
		tk_scopes_free(&a->u.scopes);
	free(a);
}

/* The atom of (kind, s) with one more reference, made if new. NULL: out of
 * memory, or the text does not make a value of that kind (*why). */
static atom *get(int kind, const char *s, const char **why)
{
	size_t len = strlen(s);
	uint64_t h = hash_of(kind, s, len);
	shard *sh = &shards[h % SHARDS];
	atom *a;

	pthread_once(&once, init_shards);
	pthread_mutex_lock(&sh->mu);
	if (sh->nbuckets) {
		for (a = sh->buckets[(h / SHARDS) & (sh->nbuckets - 1)]; a; a = a->next) {
			if (a->hash == h && a->kind == kind && a->len == len && memcmp(atom_text(a), s, len) == 0) {
				a->refs++;
				pthread_mutex_unlock(&sh->mu);
				return a;
			}
		}
	}
	pthread_mutex_unlock(&sh->mu);

	/* Built outside the lock (parsing a scope set allocates); a racing
	 * builder of the same text is resolved below: the first one in wins. */
	a = calloc(1, atom_size(kind, len));
	if (!a) {
		*why = "out of memory";
		return NULL;
	}
	a->hash = h;
	a->kind = kind;
	a->len = len;
	a->refs = 1;
	memcpy(atom_text(a), s, len + 1);
	if (build(a, why) != 0) {
		free(a);
		return NULL;
	}

	pthread_mutex_lock(&sh->mu);
	if (sh->count + 1 > sh->nbuckets)
		grow(sh);
	if (!sh->nbuckets) {
		pthread_mutex_unlock(&sh->mu);
		destroy(a);
		*why = "out of memory";
		return NULL;
	}
	atom **head = &sh->buckets[(h / SHARDS) & (sh->nbuckets - 1)];
	for (atom *o = *head; o; o = o->next) {
		if (o->hash == h && o->kind == kind && o->len == len && memcmp(atom_text(o), s, len) == 0) {
			o->refs++;
			pthread_mutex_unlock(&sh->mu);
			destroy(a);
			return o;
		}
	}
	a->next = *head;
	*head = a;
	sh->count++;
	pthread_mutex_unlock(&sh->mu);
	return a;
}

static void put(atom *a)
{
	shard *sh = &shards[a->hash % SHARDS];
	int last = 0;

	pthread_mutex_lock(&sh->mu);
	if (--a->refs == 0) {
		for (atom **pp = &sh->buckets[(a->hash / SHARDS) & (sh->nbuckets - 1)]; *pp; pp = &(*pp)->next) {
			if (*pp == a) {
				*pp = a->next;
				break;
			}
		}
		sh->count--;
		last = 1;
	}
	pthread_mutex_unlock(&sh->mu);
	if (last)
		destroy(a);
}

const char *tk_intern_str(const char *s)
{
	const char *why = NULL;
	atom *a = get(K_STR, s, &why);
	return a ? atom_text(a) : NULL;
}

void tk_intern_str_release(const char *s)
{
	if (s)
		put((atom *)(uintptr_t)(s - offsetof(atom, u)));
}

const tk_scopes *tk_intern_scopes(const char *s, const char **why)
{
	atom *a = get(K_SCOPES, s, why);
	return a ? &a->u.scopes : NULL;
}

void tk_intern_scopes_release(const tk_scopes *set)
{
	if (set)
		put((atom *)(uintptr_t)((const char *)set - offsetof(atom, u)));
}

const tk_strlist *tk_intern_list(const char *s)
{
	const char *why = NULL;
	atom *a = get(K_LIST, s, &why);
	return a ? &a->u.list : NULL;
}

void tk_intern_list_release(const tk_strlist *list)
{
	if (list)
		put((atom *)(uintptr_t)((const char *)list - offsetof(atom, u)));
}

size_t tk_intern_count(void)
{
	size_t n = 0;

	pthread_once(&once, init_shards);
	for (int i = 0; i < SHARDS; i++) {
		pthread_mutex_lock(&shards[i].mu);
		n += shards[i].count;
		pthread_mutex_unlock(&shards[i].mu);
	}
	return n;
}
