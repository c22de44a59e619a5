/*
 * lastused.h - a worker's last-used marks: key ID -> newest use (Unix
 * seconds), merged per key in an open-addressing hash table, bounded at
 * TK_LASTUSED_MAX keys. One owner thread; no locks. The worker flushes it to
 * the database in one statement per interval (http/worker.c).
 *
 * A mark is 24 bytes: a reference to a key record (keycache.h), whose ID it
 * names, the time and the ID's hash (a million cached keys used within an
 * interval made a table of 53-byte slots, IDs inline, about 28 MB per worker;
 * now a table of 2^18 slots at most, 6 MB, and two of them: the one a flush
 * sends and the one new marks fill). The record is
 * released when the mark is taken, cleared or freed: an evicted or
 * invalidated record lives at most until its mark is flushed (its secret
 * digests, wiped on free, with it), and is never read for anything but its
 * ID. A batch merged back after a failed flush holds the cached records of
 * its keys (tk_lastused_put_back) and makes a small record (~160 bytes) only
 * for an ID no longer cached: with the database away, the cache bypassed and
 * TK_LASTUSED_MAX keys marked, ~45 MB a worker, bounded by that maximum.
 */
#ifndef TOKEND_LASTUSED_H
#define TOKEND_LASTUSED_H

#include <stddef.h>
#include <stdint.h>

#include <tokend/keyfmt.h>

#include "keycache.h"

/* 3/4 of 2^18: the table's largest size is 2^18 slots (6 MB). */
#define TK_LASTUSED_MAX 196608
/* The most marks one flush statement carries (a worker sends the next batch
 * as soon as one is written, while a full one waits). Small enough that a
 * statement (a row trigger per key) ends well within db_timeout on a busy
 * database: with 32,768, a million-key benchmark's flushes ran past the 1 s
 * statement timeout, so nothing was written while the load lasted (each
 * failed batch merged back and sent again whole). Two workers' batches over
 * the same keys no longer deadlock: the IDs go out in order (dbjobs.c). */
#define TK_LASTUSED_BATCH 4096
/* The fewest a statement carries when the database is slow: a worker halves
 * what a statement carried when it failed or took over a quarter of
 * db_timeout, and doubles its batch again (up to TK_LASTUSED_BATCH) after a
 * full one that took under a sixteenth. A fixed batch that a loaded database cannot write
 * within db_timeout fails, is merged back and is sent again whole, forever:
 * no last-used time is written while the load lasts. */
#define TK_LASTUSED_BATCH_MIN 64

typedef struct tk_lastused_slot {
	tk_apikey *key;                        /* one reference; NULL: an empty slot */
	int64_t t;
	uint64_t hash;                         /* of key->id: probes and moves read no record */
} tk_lastused_slot;

typedef struct tk_lastused {
	size_t n, cap;                         /* cap: a power of two, 0 before first use */
	tk_lastused_slot *marks;
	/* The table a flush is sending (tk_lastused_take): taken whole, sent a
	 * batch at a time from slot out_at on; its marks stay readable
	 * (tk_lastused_get) and hold their records until the last is sent. */
	tk_lastused_slot *out;
	size_t out_cap, out_at, out_left;
	/* A sent table, emptied: the next round's new table (two tables a
	 * worker, allocated once: a table made and freed per round fragmented
	 * the heap at a million keys). */
	tk_lastused_slot *spare;
	size_t spare_cap;
} tk_lastused;

/* Record a use of key `k` at `t` (the newest time wins); a new mark takes a
 * reference of `k` (its refcount is the one part of a shared key that moves).
 * 0, or -1 when the table is full (TK_LASTUSED_MAX keys) or out of memory:
 * the mark is lost. */
int tk_lastused_put_key(tk_lastused *lu, const tk_apikey *k, int64_t t);

/* The same by ID (a batch merged back after a failed flush): a new mark
 * holds a record of the ID alone. -1 also for an ID NULL, empty or longer
 * than TK_KEY_ID_MAX. */
int tk_lastused_put(tk_lastused *lu, const char *key_id, int64_t t);

/* The same for a mark merged back after a failed flush: the mark holds the
 * record `cache` has of `key_id` when it has one (a new mark makes no record:
 * a flush failing round after round under load, statement timeouts, made
 * one per mark, up to TK_LASTUSED_MAX a worker, ~31 MB, freed in a burst
 * when a flush got through), else a record of the ID alone. `cache` NULL:
 * the ID alone. Same results as tk_lastused_put. */
int tk_lastused_put_back(tk_lastused *lu, tk_keycache *cache, const char *key_id, int64_t t);

/* The newest unflushed use of `key_id`, or 0. */
int64_t tk_lastused_get(const tk_lastused *lu, const char *key_id);

/* Marks not yet taken: new ones and those of the table being sent. */
size_t tk_lastused_count(const tk_lastused *lu);

/* Move up to `max` marks into `ids`/`times` (room for max each) and forget
 * them; the others stay. Returns how many were moved. A flush takes its batch
 * so, a bounded one at a time: a million keys never make one giant statement
 * (whose buffers, libpq's included, would stay allocated).
 * The first take of a round sets the whole table aside (new marks go to a
 * new one) and batches come from it in slot order until it is sent. Taking
 * a batch by position out of the live table instead (a run of slots) left
 * the marks whose home is elsewhere: with the flush behind, their homes
 * crowded into the part of the table not taken lately, one cluster
 * thousands of slots long that every mark probed through. */
size_t tk_lastused_take(tk_lastused *lu, char (*ids)[TK_KEY_ID_MAX + 1], int64_t *times, size_t max);

/* Forget every mark (the table keeps its size; the records are released). */
void tk_lastused_clear(tk_lastused *lu);

void tk_lastused_free(tk_lastused *lu);

#endif
