/*
 * memtrim.h - the heap's free pages handed back to the system after bursts
 * of key records (glibc's allocator; with another one nothing is done).
 *
 * Why (issue 16, measured with malloc_info after the benchmark's million-key
 * loading pass): records are built on the database threads while the
 * workers' requests allocate and free around them; glibc keeps what is freed
 * inside each thread's heap and returns memory to the system only from a
 * heap's top, so 80 MB of free chunks stayed resident (70 MB of them in the
 * workers' heaps), and its mmap threshold, raised by each large block freed,
 * kept megabyte buffers (a flush's batches, libpq's message buffers) inside
 * the heaps as well.
 *
 * So: tk_memtrim_start fixes the mmap threshold (blocks from 128 KB on are
 * mapped and unmapped on their own) and starts a thread of its own that calls
 * malloc_trim(0) at most once per interval, and only when key records were
 * built or freed since its last trim (tk_memtrim_note, from keycache.c): a
 * burst of lookups, an eviction, a flush. Never on a request's path; with
 * every key cached and nothing loaded it does nothing. Freed memory holds no
 * secret (the records wipe their digests before free), so handing it back
 * changes nothing else.
 */
#ifndef TOKEND_MEMTRIM_H
#define TOKEND_MEMTRIM_H

#include <stddef.h>
#include <stdint.h>

/* Records built or freed between two trims below this: no trim (a trickle of
 * lookups leaves little to hand back). */
#define TK_MEMTRIM_MIN_CHURN 1024
/* The serving process's interval (serve.c). */
#define TK_MEMTRIM_INTERVAL_MS 10000

/* A key record was built or freed (a relaxed atomic add: any thread). */
void tk_memtrim_note(void);

/* Fix the allocator's mmap threshold and start the trimming thread, waking
 * every `interval_ms` (> 0). 0; -1 when the thread could not start (nothing
 * is trimmed then; the server runs as before) or one runs already. */
int tk_memtrim_start(int64_t interval_ms);
/* Stop and join the thread (nothing when none runs). */
void tk_memtrim_stop(void);

/* Trims done since start, and the microseconds they took in all (metrics,
 * tests). */
uint64_t tk_memtrim_count(void);
uint64_t tk_memtrim_us(void);

/* One trim now, on the caller's thread: 1 when memory was handed back, 0 when
 * none was, -1 without glibc's allocator. */
int tk_memtrim_now(void);

#endif
