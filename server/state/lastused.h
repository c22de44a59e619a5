/*
 * lastused.h - a worker's last-used marks: key ID -> newest use (Unix
 * seconds), merged per key in an open-addressing hash table, bounded at
 * TK_LASTUSED_MAX keys. One owner thread; no locks. The worker flushes it to
 * the database in one statement per interval (http/worker.c).
 */
#ifndef TOKEND_LASTUSED_H
#define TOKEND_LASTUSED_H

#include <stddef.h>
#include <stdint.h>

#include <tokend/keyfmt.h>

#define TK_LASTUSED_MAX 262144
/* The most marks one flush statement carries (a worker sends the next batch
 * as soon as one is written, while a full one waits). Large enough that a
 * busy worker's interval usually fits in one statement: with 8,192, two
 * workers' back-to-back batches over the same random keys waited on each
 * other's row locks past db_timeout (a million-key benchmark); small enough
 * that a statement's buffers (libpq keeps its largest per connection) stay
 * at a few MB. */
#define TK_LASTUSED_BATCH 32768

typedef struct tk_lastused {
	size_t n, cap;                         /* cap: a power of two, 0 before first use */
	char (*ids)[TK_KEY_ID_MAX + 1];        /* "" = empty slot */
	int64_t *times;
} tk_lastused;

/* Record a use of `key_id` at `t` (the newest time wins). 0, or -1 when the
 * table is full (TK_LASTUSED_MAX keys) or out of memory: the mark is lost. */
int tk_lastused_put(tk_lastused *lu, const char *key_id, int64_t t);

/* The newest unflushed use of `key_id`, or 0. */
int64_t tk_lastused_get(const tk_lastused *lu, const char *key_id);

/* Copy every mark into `ids`/`times` (room for lu->n each); returns how many. */
size_t tk_lastused_export(const tk_lastused *lu, char (*ids)[TK_KEY_ID_MAX + 1], int64_t *times);

/* Move up to `max` marks into `ids`/`times` (room for max each) and forget
 * them; the others stay. Returns how many were moved. A flush takes its batch
 * so, a bounded one at a time: a million keys never make one giant statement
 * (whose buffers, libpq's included, would stay allocated). */
size_t tk_lastused_take(tk_lastused *lu, char (*ids)[TK_KEY_ID_MAX + 1], int64_t *times, size_t max);

/* Forget every mark (the table keeps its size). */
void tk_lastused_clear(tk_lastused *lu);

void tk_lastused_free(tk_lastused *lu);

#endif
