/*
 * test_cpus.c - worker_cpus (server/core/cpus.c): what parses, what is
 * refused with which reason, and where each worker lands for a given set of
 * CPUs the process may run on.
 */
#include <stdio.h>
#include <string.h>

#include "cpus.h"
#include "unit.h"

static tk_cpulist L;

static int parse(const char *text, char *why, size_t wl)
{
	why[0] = '\0';
	return tk_cpulist_parse(text, &L, why, wl);
}

/* The CPUs of `l` as "a,b,c". */
static const char *listed(const tk_cpulist *l)
{
	static char out[256];
	size_t o = 0;
	out[0] = '\0';
	for (size_t i = 0; i < l->n && o < sizeof(out) - 8; i++)
		o += (size_t)snprintf(out + o, sizeof(out) - o, "%s%d", i ? "," : "", l->v[i]);
	return out;
}

static cpu_set_t cpus(const char *spec)
{
	cpu_set_t s;
	tk_cpulist l;
	char why[128];
	CPU_ZERO(&s);
	if (tk_cpulist_parse(spec, &l, why, sizeof(why)) == 0)
		for (size_t i = 0; i < l.n; i++)
			CPU_SET(l.v[i], &s);
	return s;
}

static void test_keywords(void)
{
	char why[128];
	TEST_ASSERT(parse("auto", why, sizeof(why)) == 0 && L.mode == TK_CPUS_AUTO);
	TEST_ASSERT(parse("", why, sizeof(why)) == 0 && L.mode == TK_CPUS_AUTO);
	TEST_ASSERT(parse(NULL, why, sizeof(why)) == 0 && L.mode == TK_CPUS_AUTO);
	TEST_ASSERT(parse("  ", why, sizeof(why)) == 0 && L.mode == TK_CPUS_AUTO);
	TEST_ASSERT(parse("off", why, sizeof(why)) == 0 && L.mode == TK_CPUS_OFF && L.n == 0);
	/* Keywords are exact: anything else must read as a list. */
	TEST_ASSERT(parse("AUTO", why, sizeof(why)) == -1 && L.mode == TK_CPUS_OFF);
	TEST_ASSERT(parse("offf", why, sizeof(why)) == -1);
}

static void test_lists(void)
{
	char why[128];
	TEST_ASSERT(parse("0", why, sizeof(why)) == 0 && L.mode == TK_CPUS_LIST);
	TEST_ASSERT_STR(listed(&L), "0");
	TEST_ASSERT(parse("1,0", why, sizeof(why)) == 0);
	TEST_ASSERT_STR(listed(&L), "1,0");                 /* order kept: worker 0 on CPU 1 */
	TEST_ASSERT(parse("4-7", why, sizeof(why)) == 0);
	TEST_ASSERT_STR(listed(&L), "4,5,6,7");
	TEST_ASSERT(parse("0, 2-3 ,9", why, sizeof(why)) == 0);
	TEST_ASSERT_STR(listed(&L), "0,2,3,9");
	TEST_ASSERT(parse("0 2\t5", why, sizeof(why)) == 0);
	TEST_ASSERT_STR(listed(&L), "0,2,5");
	TEST_ASSERT(parse("3-3", why, sizeof(why)) == 0);
	TEST_ASSERT_STR(listed(&L), "3");
	TEST_ASSERT(parse("1023", why, sizeof(why)) == 0);
	TEST_ASSERT_STR(listed(&L), "1023");
	TEST_ASSERT(parse("0-1023", why, sizeof(why)) == 0 && L.n == 1024);
}

static void refused(const char *text, const char *reason)
{
	char why[128];
	int rc = parse(text, why, sizeof(why));
	TEST_ASSERT(rc == -1);
	TEST_ASSERT(L.mode == TK_CPUS_OFF && L.n == 0);     /* a refusal pins nothing */
	if (strstr(why, reason) == NULL) {
		fprintf(stderr, "  '%s': reason '%s' lacks '%s'\n", text, why, reason);
		TEST_ASSERT(0);
	}
}

static void test_refusals(void)
{
	refused("x", "'x' is not a CPU number");
	refused("-1", "'-1' is not a CPU number");
	refused("1-", "'1-' is not a CPU number");
	refused("1--2", "'1--2' is not a CPU number");
	refused("+1", "'+1' is not a CPU number");
	refused("0x1", "'0x1' is not a CPU number");
	refused("1024", "'1024' is not a CPU number (0 to 1023)");
	refused("99999999999999999999", "is not a CPU number");
	refused("0-1024", "'0-1024' is not a CPU number");
	refused("3-1", "the range 3-1 runs backwards");
	refused("0,0", "CPU 0 is listed twice");
	refused("0-3,2", "CPU 2 is listed twice");
	refused("0,,1", "an empty entry");
	refused("0,", "an empty entry");
	refused(",0", "an empty entry");
	refused("0, ,1", "an empty entry");
	refused("1.5", "'1.5' is not a CPU number");
	refused("auto,0", "'auto' is not a CPU number");
}

static void plan(const char *spec, int nworkers, const char *allowed, int want_rc, const char *want)
{
	char why[256] = "", note[256] = "";
	int cpu[8];
	tk_cpulist l;
	cpu_set_t a = cpus(allowed);

	TEST_ASSERT(tk_cpulist_parse(spec, &l, why, sizeof(why)) == 0);
	int rc = tk_cpulist_plan(&l, nworkers, &a, cpu, note, sizeof(note), why, sizeof(why));
	TEST_ASSERT(rc == want_rc);
	const char *got = rc == 0 ? note : why;
	if (strstr(got, want) == NULL) {
		fprintf(stderr, "  plan '%s', %d workers on %s: '%s' lacks '%s'\n", spec, nworkers, allowed, got, want);
		TEST_ASSERT(0);
	}
	if (rc != 0 || strstr(note, "not pinned") != NULL)
		for (int i = 0; i < nworkers; i++)
			TEST_ASSERT(cpu[i] == -1);
}

static void test_plans(void)
{
	/* auto: one worker per allowed CPU, in order, only when they are as many. */
	plan("auto", 2, "0-1", 0, "0,1");
	plan("auto", 2, "2,5", 0, "2,5");
	plan("auto", 1, "3", 0, "3");
	plan("auto", 2, "0-7", 0, "not pinned: 2 workers and 8 CPUs");
	plan("auto", 4, "0-1", 0, "not pinned: 4 workers and 2 CPUs");
	plan("auto", 1, "", 0, "not pinned: 1 worker and 0 CPUs");   /* affinity unreadable */
	plan("off", 2, "0-1", 0, "not pinned (worker_cpus = off)");
	/* A list: the i-th worker on the i-th CPU, from the start again when short. */
	plan("1,0", 2, "0-1", 0, "1,0");
	plan("1", 3, "0-1", 0, "1,1,1");
	plan("0,1", 4, "0-3", 0, "0,1,0,1");
	plan("2", 1, "0-1", -1, "CPU 2 is not one this process may run on (2 allowed");
	plan("0,1,2", 2, "0-3", -1, "lists 3 CPUs for 2 workers");
}

/* A plan's cpu[] agrees with its note, worker by worker. */
static void test_plan_values(void)
{
	char why[128], note[128];
	int cpu[4] = { 7, 7, 7, 7 };
	tk_cpulist l;
	cpu_set_t a = cpus("4-5");

	TEST_ASSERT(tk_cpulist_parse("auto", &l, why, sizeof(why)) == 0);
	TEST_ASSERT(tk_cpulist_plan(&l, 2, &a, cpu, note, sizeof(note), why, sizeof(why)) == 0);
	TEST_ASSERT(cpu[0] == 4 && cpu[1] == 5);
	TEST_ASSERT(tk_cpulist_parse("5,4", &l, why, sizeof(why)) == 0);
	TEST_ASSERT(tk_cpulist_plan(&l, 3, &a, cpu, note, sizeof(note), why, sizeof(why)) == 0);
	TEST_ASSERT(cpu[0] == 5 && cpu[1] == 4 && cpu[2] == 5);
	TEST_ASSERT(tk_cpulist_parse("6", &l, why, sizeof(why)) == 0);
	TEST_ASSERT(tk_cpulist_plan(&l, 2, &a, cpu, note, sizeof(note), why, sizeof(why)) == -1);
	TEST_ASSERT(cpu[0] == -1 && cpu[1] == -1);
}

int main(void)
{
	TEST_RUN(test_keywords);
	TEST_RUN(test_lists);
	TEST_RUN(test_refusals);
	TEST_RUN(test_plans);
	TEST_RUN(test_plan_values);
	TEST_DONE();
}
