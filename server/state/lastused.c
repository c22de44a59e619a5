/*
 * lastused.c - a worker's last-used marks (see lastused.h).
 */
#include "lastused.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"

/* Grow to keep the load under 3/4; at the bound keep the table we have. */
static int grow(tk_lastused *lu)
{
	size_t cap = lu->cap ? lu->cap * 2 : 256;

	if (lu->cap && cap > TK_LASTUSED_MAX * 2)
		return 0;
	char (*ids)[TK_KEY_ID_MAX + 1] = calloc(cap, sizeof(*ids));
	int64_t *times = calloc(cap, sizeof(*times));
	if (!ids || !times) {
		free(ids);
		free(times);
		return lu->cap ? 0 : -1;   /* a full-enough table still takes marks */
	}
	for (size_t i = 0; i < lu->cap; i++) {
		if (!lu->ids[i][0])
			continue;
		size_t j = tk_hash_str(lu->ids[i]) & (cap - 1);
		while (ids[j][0])
			j = (j + 1) & (cap - 1);
		memcpy(ids[j], lu->ids[i], sizeof(ids[j]));
		times[j] = lu->times[i];
	}
	free(lu->ids);
	free(lu->times);
	lu->ids = ids;
	lu->times = times;
	lu->cap = cap;
	return 0;
}

int tk_lastused_put(tk_lastused *lu, const char *key_id, int64_t t)
{
	size_t len;

	if (!key_id || !*key_id || (len = strlen(key_id)) > TK_KEY_ID_MAX)
		return -1;
	if ((lu->cap == 0 || (lu->n + 1) * 4 > lu->cap * 3) && grow(lu) != 0)
		return -1;
	size_t j = tk_hash_str(key_id) & (lu->cap - 1);
	while (lu->ids[j][0]) {
		if (strcmp(lu->ids[j], key_id) == 0) {
			if (t > lu->times[j])
				lu->times[j] = t;
			return 0;
		}
		j = (j + 1) & (lu->cap - 1);
	}
	if (lu->n >= TK_LASTUSED_MAX || lu->n + 1 >= lu->cap)
		return -1;
	memcpy(lu->ids[j], key_id, len + 1);   /* len <= TK_KEY_ID_MAX: fits with its NUL */
	lu->times[j] = t;
	lu->n++;
	return 0;
}

int64_t tk_lastused_get(const tk_lastused *lu, const char *key_id)
{
	if (lu->cap == 0 || !key_id)
		return 0;
	for (size_t j = tk_hash_str(key_id) & (lu->cap - 1); lu->ids[j][0]; j = (j + 1) & (lu->cap - 1))
		if (strcmp(lu->ids[j], key_id) == 0)
			return lu->times[j];
	return 0;
}

size_t tk_lastused_export(const tk_lastused *lu, char (*ids)[TK_KEY_ID_MAX + 1], int64_t *times)
{
	size_t k = 0;

	for (size_t i = 0; i < lu->cap && k < lu->n; i++) {
		if (!lu->ids[i][0])
			continue;
		memcpy(ids[k], lu->ids[i], sizeof(ids[k]));
		times[k++] = lu->times[i];
	}
	return k;
}

/* Empty slot i of the linear-probing table, moving later members of its
 * cluster back so that every remaining key is still found from its home. */
static void remove_at(tk_lastused *lu, size_t i)
{
	size_t mask = lu->cap - 1, j = i;

	for (;;) {
		j = (j + 1) & mask;
		if (!lu->ids[j][0])
			break;
		size_t home = tk_hash_str(lu->ids[j]) & mask;
		/* j's key may fill the hole at i unless its home lies cyclically in (i, j]. */
		if (((j - home) & mask) < ((j - i) & mask))
			continue;
		memcpy(lu->ids[i], lu->ids[j], sizeof(lu->ids[i]));
		lu->times[i] = lu->times[j];
		i = j;
	}
	lu->ids[i][0] = '\0';
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
	while (lu->ids[start][0])
		start++;
	for (size_t step = 1; step <= lu->cap && k < max && lu->n > 0;) {
		size_t i = (start + step) & (lu->cap - 1);
		if (!lu->ids[i][0]) {
			step++;
			continue;
		}
		memcpy(ids[k], lu->ids[i], sizeof(ids[k]));
		times[k++] = lu->times[i];
		remove_at(lu, i);   /* slot i may now hold a later key: look again */
	}
	return k;
}

void tk_lastused_clear(tk_lastused *lu)
{
	if (lu->cap)
		memset(lu->ids, 0, lu->cap * sizeof(*lu->ids));
	lu->n = 0;
}

void tk_lastused_free(tk_lastused *lu)
{
	free(lu->ids);
	free(lu->times);
	memset(lu, 0, sizeof(*lu));
}
