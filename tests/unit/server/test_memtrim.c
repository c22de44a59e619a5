/*
 * test_memtrim.c - free heap pages handed back (server/state/memtrim.c): a
 * trim returns the pages of memory freed inside the heap (resident set
 * measured); the thread trims after key records were built and freed, and
 * not while nothing happens; start and stop, refused input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "keycache.h"
#include "memtrim.h"
#include "unit.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif

#if defined(__GLIBC__) && !defined(SANITIZED)
/* Resident bytes of this process. */
static long long rss_bytes(void)
{
	long long pages = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "r");
	if (!f)
		return -1;
	if (fscanf(f, "%lld %lld", &pages, &res) != 2)
		res = -1;
	fclose(f);
	return res < 0 ? -1 : res * sysconf(_SC_PAGESIZE);
}
#endif

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

#define BLOCKS 12288
#define BLOCK 4096

/* 48 MB in 4 KB blocks, written, then all but every 64th freed: the heap's
 * top stays in use, so glibc keeps the freed pages resident until a trim. */
static void test_trim_hands_back_pages(void)
{
#if defined(__GLIBC__) && !defined(SANITIZED)
	char **b = calloc(BLOCKS, sizeof(*b));
	TEST_ASSERT(b != NULL);
	for (size_t i = 0; i < BLOCKS; i++) {
		b[i] = malloc(BLOCK);
		TEST_ASSERT(b[i] != NULL);
		memset(b[i], 0x5a, BLOCK);
	}
	for (size_t i = 0; i < BLOCKS; i++)
		if (i % 64 != 63) {
			free(b[i]);
			b[i] = NULL;
		}
	long long before = rss_bytes();
	uint64_t n0 = tk_memtrim_count();
	TEST_ASSERT(tk_memtrim_now() == 1);
	long long after = rss_bytes();
	fprintf(stderr, "   resident %lld kB before the trim, %lld kB after, in %llu us\n", before / 1024,
	        after / 1024, (unsigned long long)tk_memtrim_us());
	TEST_ASSERT(before > 0 && after > 0);
	TEST_ASSERT(before - after >= 32LL * 1024 * 1024);      /* most of the 47 MB freed */
	TEST_ASSERT(tk_memtrim_count() == n0 + 1);
	for (size_t i = 0; i < BLOCKS; i++)
		free(b[i]);
	free(b);
#else
	fprintf(stderr, "   skipped: not glibc's allocator\n");
#endif
}

/* Wait up to `ms` for the trim count to pass `n`. */
static int trimmed_since(uint64_t n, long ms)
{
	for (long w = 0; w < ms; w += 10) {
		if (tk_memtrim_count() > n)
			return 1;
		sleep_ms(10);
	}
	return tk_memtrim_count() > n;
}

static void churn_records(int n)
{
	for (int i = 0; i < n; i++) {
		tk_apikey *k = tk_apikey_new("tk_0123456789abcdefghijklmnopqrstu");
		TEST_ASSERT(k != NULL);
		tk_apikey_release(k);
	}
}

static void test_thread_trims_after_churn_only(void)
{
	TEST_ASSERT(tk_memtrim_start(0) == -1);
	TEST_ASSERT(tk_memtrim_start(-5) == -1);
	TEST_ASSERT(tk_memtrim_start(40) == 0);
	TEST_ASSERT(tk_memtrim_start(40) == -1);                 /* one runs already */
	/* Quiet: no trim. */
	uint64_t n = tk_memtrim_count();
	sleep_ms(250);
	TEST_ASSERT(tk_memtrim_count() == n);
	/* A trickle below TK_MEMTRIM_MIN_CHURN: none either. */
	churn_records(10);
	sleep_ms(250);
	TEST_ASSERT(tk_memtrim_count() == n);
	/* Records built and freed (each counts twice): a trim, then quiet again. */
	churn_records(TK_MEMTRIM_MIN_CHURN);
	TEST_ASSERT(trimmed_since(n, 3000));
	sleep_ms(150);                                          /* past the trim's interval */
	n = tk_memtrim_count();
	sleep_ms(250);
	TEST_ASSERT(tk_memtrim_count() == n);
	TEST_ASSERT(tk_memtrim_us() > 0 || tk_memtrim_count() > 0);
	tk_memtrim_stop();
	tk_memtrim_stop();                                      /* none runs: nothing */
	/* Stopped: churn trims nothing; started again, it does. */
	n = tk_memtrim_count();
	churn_records(TK_MEMTRIM_MIN_CHURN);
	sleep_ms(200);
	TEST_ASSERT(tk_memtrim_count() == n);
	TEST_ASSERT(tk_memtrim_start(40) == 0);
	churn_records(TK_MEMTRIM_MIN_CHURN);
	TEST_ASSERT(trimmed_since(n, 3000));
	tk_memtrim_stop();
}

int main(void)
{
	TEST_RUN(test_trim_hands_back_pages);
	TEST_RUN(test_thread_trims_after_churn_only);
	TEST_DONE();
}
