/*
 * lastused.c - a worker's last-used marks (see lastused.h).
 */
#include "lastused.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"


/* Grow to keep the load under 3/4; at the bound keep the table we have. */
static int grow(tk_lastused *lu)
{
	size_t cap = lu->cap ? lu->cap * 2 : 256;

	if (lu->cap && cap > TK_LASTUSED_MAX * 2)
		return 0;
	tk_lastused_slot *marks = calloc(cap, sizeof(*marks));
	if (!marks)
		return lu->cap ? 0 : -1;   /* a full-enough table still takes marks */
	for (size_t i = 0; i < lu->cap; i++) {
		if (!lu->marks[i].key)
			continue;
		size_t j = lu->marks[i].hash & (cap - 1);
		while (marks[j].key)
			j = (j + 1) & (cap - 1);
		marks[j] = lu->marks[i];
	}
	free(lu->marks);
	lu->marks = marks;
	lu->cap = cap;
	return 0;
}

/* The slot of `id`'s mark (hash `h`), or of the empty slot where it would
 * go (a table with room). *found: whether it is there. */
static size_t find(const tk_lastused *lu, const char *id, uint64_t h, int *found)
{
	size_t j = h & (lu->cap - 1);
	while (lu->marks[j].key) {
		if (lu->marks[j].hash == h && strcmp(lu->marks[j].key->id, id) == 0) {
			*found = 1;
			return j;
		}
		j = (j + 1) & (lu->cap - 1);
	}
	*found = 0;
	return j;
}

/* Mark `id` at `t`: merge into its mark, or make one holding the record
 * `k` gives (made from the ID when `k` is NULL). */
static int put(tk_lastused *lu, const char *id, const tk_apikey *k, int64_t t)
{
	int found;

	if (!id || !*id || strlen(id) > TK_KEY_ID_MAX)
		return -1;
	if ((lu->cap == 0 || (lu->n + 1) * 4 > lu->cap * 3) && grow(lu) != 0)
		return -1;
	uint64_t h = tk_hash_str(id);
	size_t j = find(lu, id, h, &found);
	if (found) {
		if (t > lu->marks[j].t)
			lu->marks[j].t = t;
		return 0;
	}
	if (lu->n >= TK_LASTUSED_MAX || lu->n + 1 >= lu->cap)
		return -1;
	/* The refcount is the one part of a shared, otherwise immutable key
	 * that moves: the uintptr_t cast drops const on purpose. */
	tk_apikey *hold = k ? tk_apikey_ref((tk_apikey *)(uintptr_t)k) : tk_apikey_new(id);
	if (!hold)
		return -1;
	lu->marks[j].key = hold;
	lu->marks[j].t = t;
	lu->marks[j].hash = h;
	lu->n++;
	return 0;
}

int tk_lastused_put_key(tk_lastused *lu, const tk_apikey *k, int64_t t)
{
	return k ? put(lu, k->id, k, t) : -1;
}

int tk_lastused_put(tk_lastused *lu, const char *key_id, int64_t t)
{
	return put(lu, key_id, NULL, t);
}

int tk_lastused_put_back(tk_lastused *lu, tk_keycache *cache, const char *key_id, int64_t t)
{
	tk_apikey *k = cache && key_id ? tk_keycache_get(cache, key_id) : NULL;
	int rc = put(lu, key_id, k, t);   /* takes its own reference of k */
	tk_apikey_release(k);
	return rc;
}

/* The time of `id`'s mark in `marks` (cap slots), or 0. */
static int64_t get_in(const tk_lastused_slot *marks, size_t cap, const char *id, uint64_t h)
{
	if (cap == 0)
		return 0;
	for (size_t j = h & (cap - 1); marks[j].key; j = (j + 1) & (cap - 1))
		if (marks[j].hash == h && strcmp(marks[j].key->id, id) == 0)
			return marks[j].t;
	return 0;
}

int64_t tk_lastused_get(const tk_lastused *lu, const char *key_id)
{
	if (!key_id)
		return 0;
	uint64_t h = tk_hash_str(key_id);
	int64_t t = get_in(lu->marks, lu->cap, key_id, h);
	int64_t o = lu->out_left ? get_in(lu->out, lu->out_cap, key_id, h) : 0;
	return o > t ? o : t;
}

size_t tk_lastused_count(const tk_lastused *lu)
{
	return lu->n + lu->out_left;
}

/* Copy a mark out (its ID fits: records hold at most TK_KEY_ID_MAX). */
static void copy_out(const tk_lastused_slot *m, char id[TK_KEY_ID_MAX + 1], int64_t *t)
{
	memcpy(id, m->key->id, strlen(m->key->id) + 1);
	*t = m->t;
}

/* The table being sent is done with: its records released; the table kept
 * (emptied) for the next round unless one is kept already. */
static void out_free(tk_lastused *lu)
{
	for (size_t i = 0; i < lu->out_cap; i++)
		tk_apikey_release(lu->out[i].key);
	if (lu->out && !lu->spare) {
		memset(lu->out, 0, lu->out_cap * sizeof(*lu->out));
		lu->spare = lu->out;
		lu->spare_cap = lu->out_cap;
	} else {
		free(lu->out);
	}
	lu->out = NULL;
	lu->out_cap = lu->out_at = lu->out_left = 0;
}

size_t tk_lastused_take(tk_lastused *lu, char (*ids)[TK_KEY_ID_MAX + 1], int64_t *times, size_t max)
{
	size_t k = 0, i;

	if (max == 0)
		return 0;
	if (lu->out_left == 0) {
		if (lu->n == 0)
			return 0;
		/* A new round: the whole table is set aside; new marks go to the
		 * spare (the last round's table, emptied). */
		lu->out = lu->marks;
		lu->out_cap = lu->cap;
		lu->out_left = lu->n;
		lu->out_at = 0;
		lu->marks = lu->spare;        /* NULL: put grows one from nothing */
		lu->cap = lu->spare_cap;
		lu->n = 0;
		lu->spare = NULL;
		lu->spare_cap = 0;
	}
	for (i = lu->out_at; i < lu->out_cap && k < max; i++)
		if (lu->out[i].key) {
			copy_out(&lu->out[i], ids[k], &times[k]);
			k++;
		}
	lu->out_at = i;
	lu->out_left -= k;
	if (lu->out_left == 0)
		out_free(lu);
	return k;
}

void tk_lastused_clear(tk_lastused *lu)
{
	out_free(lu);
	for (size_t i = 0; i < lu->cap; i++) {
		tk_apikey_release(lu->marks[i].key);
		lu->marks[i].key = NULL;
		lu->marks[i].t = 0;
	}
	lu->n = 0;
}

void tk_lastused_free(tk_lastused *lu)
{
	tk_lastused_clear(lu);
	free(lu->marks);
	free(lu->spare);
	memset(lu, 0, sizeof(*lu));
}
