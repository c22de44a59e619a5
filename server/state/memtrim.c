/*
 * memtrim.c - the heap's free pages handed back after bursts of key records
 * (see memtrim.h).
 */
#include "memtrim.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "clock.h"
#include "log.h"
#include "thread.h"

/* Blocks from this size on are mapped on their own (glibc's default, fixed:
 * a fixed threshold no longer rises with each large block freed). */
#define MMAP_THRESHOLD (128 * 1024)

static _Atomic uint64_t churn;           /* records built or freed, ever */
static _Atomic uint64_t trims, trim_us;

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	int running, stopping;
	int64_t interval_ms;
	uint64_t seen;                       /* churn at the last trim (or the start) */
} T = { .mu = PTHREAD_MUTEX_INITIALIZER };

void tk_memtrim_note(void)
{
	atomic_fetch_add_explicit(&churn, 1, memory_order_relaxed);
}

uint64_t tk_memtrim_count(void)
{
	return atomic_load_explicit(&trims, memory_order_relaxed);
}

uint64_t tk_memtrim_us(void)
{
	return atomic_load_explicit(&trim_us, memory_order_relaxed);
}

int tk_memtrim_now(void)
{
#ifdef __GLIBC__
	int64_t t0 = tk_mono_us();
	int rc = malloc_trim(0);
	atomic_fetch_add_explicit(&trim_us, (uint64_t)(tk_mono_us() - t0), memory_order_relaxed);
	atomic_fetch_add_explicit(&trims, 1, memory_order_relaxed);
	return rc ? 1 : 0;
#else
	return -1;
#endif
}

static void *trim_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&T.mu);
	while (!T.stopping) {
		struct timespec until = tk_deadline_in(T.interval_ms);
		while (!T.stopping && pthread_cond_timedwait(&T.cv, &T.mu, &until) != ETIMEDOUT)
			;
		if (T.stopping)
			break;
		uint64_t now = atomic_load_explicit(&churn, memory_order_relaxed);
		if (now - T.seen < TK_MEMTRIM_MIN_CHURN)
			continue;            /* quiet since the last trim: nothing to hand back */
		T.seen = now;
		pthread_mutex_unlock(&T.mu);
		int64_t t0 = tk_mono_us();
		tk_memtrim_now();
		if (tk_log_enabled(TK_LOG_DEBUG)) {
			char us[24];
			snprintf(us, sizeof(us), "%lld", (long long)(tk_mono_us() - t0));
			tk_log(TK_LOG_DEBUG, "memory.trimmed", TK_LOG_NUM "us", us, NULL);
		}
		pthread_mutex_lock(&T.mu);
	}
	pthread_mutex_unlock(&T.mu);
	return NULL;
}

int tk_memtrim_start(int64_t interval_ms)
{
	int rc = -1;

	if (interval_ms <= 0)
		return -1;
#ifdef __GLIBC__
	mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD);
#endif
	pthread_mutex_lock(&T.mu);
	if (T.running)
		goto out;
	if (tk_cond_init_mono(&T.cv) != 0)
		goto out;
	T.interval_ms = interval_ms;
	T.stopping = 0;
	T.seen = atomic_load_explicit(&churn, memory_order_relaxed);
	if (pthread_create(&T.thread, NULL, trim_main, NULL) != 0) {
		pthread_cond_destroy(&T.cv);
		goto out;
	}
	T.running = 1;
	tk_thread_name(T.thread, "tokend-trim", -1);
	rc = 0;
out:
	pthread_mutex_unlock(&T.mu);
	return rc;
}

void tk_memtrim_stop(void)
{
	pthread_mutex_lock(&T.mu);
	if (!T.running) {
		pthread_mutex_unlock(&T.mu);
		return;
	}
	T.stopping = 1;
	pthread_cond_signal(&T.cv);
	pthread_mutex_unlock(&T.mu);
	pthread_join(T.thread, NULL);
	pthread_mutex_lock(&T.mu);
	pthread_cond_destroy(&T.cv);
	T.running = 0;
	T.stopping = 0;
	pthread_mutex_unlock(&T.mu);
}
