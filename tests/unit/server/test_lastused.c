/*
 * test_lastused.c - a worker's last-used marks (server/state/lastused.c):
 * newest time wins, growth keeps every mark, export and clear, the bound,
 * refused input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lastused.h"
#include "unit.h"

static void id_of(char out[TK_KEY_ID_LEN + 1], unsigned i)
{
	snprintf(out, TK_KEY_ID_LEN + 1, "tk_%028u", i);
}

static void test_newest_wins(void)
{
	tk_lastused lu = { 0 };
	TEST_ASSERT(tk_lastused_get(&lu, "tk_a") == 0);
	TEST_ASSERT(tk_lastused_put(&lu, "tk_a", 100) == 0);
	TEST_ASSERT(tk_lastused_put(&lu, "tk_a", 90) == 0);     /* older: ignored */
	TEST_ASSERT(tk_lastused_get(&lu, "tk_a") == 100);
	TEST_ASSERT(tk_lastused_put(&lu, "tk_a", 120) == 0);
	TEST_ASSERT(tk_lastused_get(&lu, "tk_a") == 120);
	TEST_ASSERT(lu.n == 1);
	TEST_ASSERT(tk_lastused_get(&lu, "tk_b") == 0);
	tk_lastused_free(&lu);
}

static void test_growth_export_clear(void)
{
	tk_lastused lu = { 0 };
	char id[TK_KEY_ID_LEN + 1];
	for (unsigned i = 0; i < 5000; i++) {
		id_of(id, i);
		TEST_ASSERT(tk_lastused_put(&lu, id, 1000 + i) == 0);
	}
	TEST_ASSERT(lu.n == 5000);
	int all = 1;
	for (unsigned i = 0; i < 5000; i++) {
		id_of(id, i);
		all &= tk_lastused_get(&lu, id) == 1000 + (int64_t)i;
	}
	TEST_ASSERT(all);
	char (*ids)[TK_KEY_ID_MAX + 1] = malloc(lu.n * sizeof(*ids));
	int64_t *times = malloc(lu.n * sizeof(*times));
	size_t n = tk_lastused_export(&lu, ids, times);
	TEST_ASSERT(n == 5000);
	int64_t sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += times[i] - 1000;
	TEST_ASSERT(sum == (int64_t)4999 * 5000 / 2);            /* each mark exactly once */
	tk_lastused_clear(&lu);
	TEST_ASSERT(lu.n == 0);
	id_of(id, 7);
	TEST_ASSERT(tk_lastused_get(&lu, id) == 0);
	TEST_ASSERT(tk_lastused_put(&lu, id, 5) == 0 && tk_lastused_get(&lu, id) == 5);
	free(ids);
	free(times);
	tk_lastused_free(&lu);
}

static void test_bound_and_bad_input(void)
{
	tk_lastused lu = { 0 };
	char id[TK_KEY_ID_LEN + 1];
	unsigned refused = 0;
	for (unsigned i = 0; i < TK_LASTUSED_MAX + 100; i++) {
		id_of(id, i);
		refused += tk_lastused_put(&lu, id, 1) != 0;
	}
	TEST_ASSERT(lu.n == TK_LASTUSED_MAX);
	TEST_ASSERT(refused == 100);
	id_of(id, 3);
	TEST_ASSERT(tk_lastused_put(&lu, id, 9) == 0);          /* a known key still merges */
	TEST_ASSERT(tk_lastused_get(&lu, id) == 9);
	TEST_ASSERT(tk_lastused_put(&lu, "", 1) != 0);
	TEST_ASSERT(tk_lastused_put(&lu, NULL, 1) != 0);
	TEST_ASSERT(tk_lastused_put(&lu, "tk_0123456789012345678901234567890123", 1) != 0);
	tk_lastused_free(&lu);
}

int main(void)
{
	TEST_RUN(test_newest_wins);
	TEST_RUN(test_growth_export_clear);
	TEST_RUN(test_bound_and_bad_input);
	TEST_DONE();
}
