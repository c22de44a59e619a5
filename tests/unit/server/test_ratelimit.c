/*
 * test_ratelimit.c - the failed-authentication and issuance limiter
 * (server/state/ratelimit.c): limits, decay, the bound on memory, O(1) cost per
 * request whatever the number of names, and concurrent use.
 *
 *   test_ratelimit           the tests
 *   test_ratelimit --bench   also prints the cost per request of a spray of
 *                            failures from 1 and from 100,000 addresses
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ratelimit.h"
#include "unit.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void addr_name(char *buf, size_t len, unsigned i)
{
	snprintf(buf, len, "10.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255, i & 255);
}

static void test_limit_and_retry_after(void)
{
	tk_ratelimit *rl = tk_ratelimit_new(5, 1000);
	TEST_ASSERT(rl != NULL);
	for (int i = 0; i < 4; i++)
		tk_ratelimit_fail(rl, "198.51.100.7");
	TEST_ASSERT(tk_ratelimit_check(rl, "198.51.100.7") == 0);     /* 4 of 5 */
	tk_ratelimit_fail(rl, "198.51.100.7");
	int wait = tk_ratelimit_check(rl, "198.51.100.7");             /* 5 of 5: over */
	TEST_ASSERT(wait >= 11 && wait <= 12);                         /* one failure drains in 12 s */
	TEST_ASSERT(tk_ratelimit_check(rl, "198.51.100.8") == 0);      /* others unaffected */
	TEST_ASSERT(tk_ratelimit_check(rl, "") == 0);
	TEST_ASSERT(tk_ratelimit_check(rl, NULL) == 0);
	tk_ratelimit_fail(rl, NULL);
	tk_ratelimit_free(rl);
}

static void test_off_when_zero(void)
{
	tk_ratelimit *rl = tk_ratelimit_new(0, 1000);
	for (int i = 0; i < 100; i++)
		tk_ratelimit_fail(rl, "a");
	TEST_ASSERT(tk_ratelimit_check(rl, "a") == 0);
	tk_ratelimit_free(rl);
}

static void test_decay(void)
{
	/* 6000 per minute = 100 per second. 50 failures over the limit stay over
	 * for 0.5 s after the first (the loop takes ~1 ms, a few under ASan; with
	 * exactly 6000 a loop slower than 10 ms had already drained below it), and
	 * have drained back under it 0.6 s later. A run descheduled for 0.45 s
	 * between the first failure and the check (a loaded CI machine) has
	 * drained too far to tell, and only the second half is asserted. */
	tk_ratelimit *rl = tk_ratelimit_new(6000, 1000);
	double t0 = now();
	for (int i = 0; i < 6050; i++)
		tk_ratelimit_fail(rl, "k");
	int over = tk_ratelimit_check(rl, "k");
	if (now() - t0 < 0.45)
		TEST_ASSERT(over > 0);
	else
		fprintf(stderr, "test_decay: the failures took %.2f s; the over-limit check skipped\n", now() - t0);
	usleep(600 * 1000);                        /* ~60 drained */
	TEST_ASSERT(tk_ratelimit_check(rl, "k") == 0);
	tk_ratelimit_free(rl);
}

static void test_bounded_memory_keeps_the_newest(void)
{
	/* 64 shards x (128 / 64 + 1) = at most 192 names. */
	tk_ratelimit *rl = tk_ratelimit_new(1, 128);
	char name[32];
	for (unsigned i = 0; i < 100000; i++) {
		addr_name(name, sizeof(name), i);
		tk_ratelimit_fail(rl, name);
	}
	int over_new = 0, over_old = 0;
	for (unsigned i = 100000 - 64; i < 100000; i++) {
		addr_name(name, sizeof(name), i);
		over_new += tk_ratelimit_check(rl, name) > 0;
	}
	for (unsigned i = 0; i < 1000; i++) {
		addr_name(name, sizeof(name), i);
		over_old += tk_ratelimit_check(rl, name) > 0;
	}
	/* The most recent names are still counted (a shard holds 3 and the last
	 * 64 spread over 64 shards: a few may share one); the oldest are gone. */
	TEST_ASSERT(over_new >= 56);
	TEST_ASSERT(over_old == 0);
	tk_ratelimit_free(rl);
}

static void test_recently_used_survives_a_spray(void)
{
	/* A name touched again is the newest: a spray evicts older names first. */
	tk_ratelimit *rl = tk_ratelimit_new(1, 64 * 64);
	char name[32];
	tk_ratelimit_fail(rl, "victim");
	for (unsigned i = 0; i < 20000; i++) {
		addr_name(name, sizeof(name), i);
		tk_ratelimit_fail(rl, name);
		if (i % 1000 == 0)
			tk_ratelimit_fail(rl, "victim");   /* keeps failing: stays tracked */
	}
	TEST_ASSERT(tk_ratelimit_check(rl, "victim") > 0);
	tk_ratelimit_free(rl);
}

static void test_take(void)
{
	tk_ratelimit *rl = tk_ratelimit_new(0, 1000);
	int taken = 0;
	for (int i = 0; i < 20; i++)
		taken += tk_ratelimit_take(rl, "key", 10) == 0;
	TEST_ASSERT(taken == 10);                                    /* a burst of 10 */
	int wait = tk_ratelimit_take(rl, "key", 10);
	TEST_ASSERT(wait >= 5 && wait <= 6);                         /* one more in 6 s */
	TEST_ASSERT(tk_ratelimit_take(rl, "other", 10) == 0);
	TEST_ASSERT(tk_ratelimit_take(rl, "key", 0) == 0);          /* no limit */
	tk_ratelimit_free(rl);
}

struct hammer { tk_ratelimit *rl; int id; };

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;
	char name[32];
	for (unsigned i = 0; i < 50000; i++) {
		addr_name(name, sizeof(name), (unsigned)h->id * 100000u + (i % 3000));
		tk_ratelimit_fail(h->rl, name);
		(void)tk_ratelimit_check(h->rl, name);
		(void)tk_ratelimit_take(h->rl, "shared", 600);
	}
	return NULL;
}

static void test_threads(void)
{
	tk_ratelimit *rl = tk_ratelimit_new(10, 4096);
	pthread_t th[4];
	struct hammer h[4];
	for (int i = 0; i < 4; i++) {
		h[i] = (struct hammer){ rl, i };
		TEST_ASSERT(pthread_create(&th[i], NULL, hammer_main, &h[i]) == 0);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	TEST_ASSERT(tk_ratelimit_take(rl, "shared", 600) > 0);     /* 200,000 takes of 600 */
	tk_ratelimit_free(rl);
}

/* ns per request (fail + check) over `n` requests spread over `names` addresses. */
static double spray_ns(unsigned names, unsigned n)
{
	tk_ratelimit *rl = tk_ratelimit_new(20, 65536);
	char name[32];
	double t0 = now();
	for (unsigned i = 0; i < n; i++) {
		addr_name(name, sizeof(name), i % names);
		tk_ratelimit_fail(rl, name);
		(void)tk_ratelimit_check(rl, name);
	}
	double ns = (now() - t0) * 1e9 / n;
	tk_ratelimit_free(rl);
	return ns;
}

static void test_cost_does_not_grow_with_names(void)
{
	/* Best of 3 each, so that a busy machine does not decide. The old limiter
	 * walked a shard's list: 100,000 names cost ~100x more per request. */
	double one = 1e18, many = 1e18;
	for (int r = 0; r < 3; r++) {
		double a = spray_ns(1, 200000), b = spray_ns(100000, 200000);
		one = a < one ? a : one;
		many = b < many ? b : many;
	}
	TEST_ASSERT(many < one * 8);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--bench") == 0) {
		double one = spray_ns(1, 1000000), many = spray_ns(100000, 1000000);
		printf("ratelimit: failure+check %.0f ns/request from 1 address, %.0f ns/request "
		       "spread over 100,000 addresses (1,000,000 requests each, one thread)\n", one, many);
		return 0;
	}
	TEST_RUN(test_limit_and_retry_after);
	TEST_RUN(test_off_when_zero);
	TEST_RUN(test_decay);
	TEST_RUN(test_bounded_memory_keeps_the_newest);
	TEST_RUN(test_recently_used_survives_a_spray);
	TEST_RUN(test_take);
	TEST_RUN(test_threads);
	TEST_RUN(test_cost_does_not_grow_with_names);
	TEST_DONE();
}
