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

int64_t tk_lastused_get(const tk_lastused *lu, const char *key_id)
{
	int found;

	if (lu->cap == 0 || !key_id)
		return 0;
	size_t j = find(lu, key_id, tk_hash_str(key_id), &found);
	return found ? lu->marks[j].t : 0;
}

/* Copy mark i out (its ID fits: records hold at most TK_KEY_ID_MAX). */
static void copy_out(const tk_lastused *lu, size_t i, char id[TK_KEY_ID_MAX + 1], int64_t *t)
{
	memcpy(id, lu->marks[i].key->id, strlen(lu->marks[i].key->id) + 1);
	*t = lu->marks[i].t;
}

size_t tk_lastused_export(const tk_lastused *lu, char (*ids)[TK_KEY_ID_MAX + 1], int64_t *times)
{
	size_t k = 0;

	for (size_t i = 0; i < lu->cap && k < lu->n; i++) {
		if (!lu->marks[i].key)
			continue;
		copy_out(lu, i, ids[k], &times[k]);
		k++;
	}
	return k;
}

/* Empty slot i of the linear-probing table (its record released), moving
 * later members of its cluster back so that every remaining key is still
 * found from its home. */
static void remove_at(tk_lastused *lu, size_t i)
{
	size_t mask = lu->cap - 1, j = i;

	tk_apikey_release(lu->marks[i].key);
	for (;;) {
		j = (j + 1) & mask;
		if (!lu->marks[j].key)
			break;
		size_t home = lu->marks[j].hash & mask;
		/* j's key may fill the hole at i unless its home lies cyclically in (i, j]. */
		if (((j - home) & mask) < ((j - i) & mask))
			continue;
		lu->marks[i] = lu->marks[j];
		i = j;
	}
	lu->marks[i].key = NULL;
	lu->marks[i].t = 0;
	lu->marks[i].hash = 0;
	lu->n--;
}

size_t tk_lastused_take(tk_lastused *lu, char (*ids)[TK_KEY_ID_MAX + 1], int64_t *times, size_t max)
{
	size_t k = 0, start = 0;

	if (lu->cap == 0 || lu->n == 0 || max == 0)
		return 0;
	/* Start just after an empty slot (the load stays under 3/4: there is
	 * one), so that no cluster wraps around the point where the walk begins:
	 * a removal then only moves keys the walk has not passed yet. */
	while (lu->marks[start].key)
		start++;
	for (size_t step = 1; step <= lu->cap && k < max && lu->n > 0;) {
		size_t i = (start + step) & (lu->cap - 1);
		if (!lu->marks[i].key) {
			step++;
			continue;
		}
		copy_out(lu, i, ids[k], &times[k]);
		k++;
		remove_at(lu, i);   /* slot i may now hold a later key: look again */
	}
	return k;
}

void tk_lastused_clear(tk_lastused *lu)
{
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
	memset(lu, 0, sizeof(*lu));
}
