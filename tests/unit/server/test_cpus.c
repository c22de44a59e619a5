/*
 * test_cpus.c - worker_cpus (server/core/cpus.c): what parses, what is
 * refused with which reason, and where each worker lands for a given set of
 * CPUs the process may run on.
 */
#include <stdio.h>
#include <stdlib.h>
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
	TEST_ASSERT(parse(" auto\t", why, sizeof(why)) == 0 && L.mode == TK_CPUS_AUTO);  /* from the environment */
	TEST_ASSERT(parse("off", why, sizeof(why)) == 0 && L.mode == TK_CPUS_OFF && L.n == 0);
	TEST_ASSERT(parse("off ", why, sizeof(why)) == 0 && L.mode == TK_CPUS_OFF);
	/* Keywords are exact: anything else must read as a list. */
	TEST_ASSERT(parse("AUTO", why, sizeof(why)) == -1 && L.mode == TK_CPUS_OFF);
	TEST_ASSERT(parse("offf", why, sizeof(why)) == -1);
	TEST_ASSERT(parse("au to", why, sizeof(why)) == -1);
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
	TEST_ASSERT(parse(" 0 2\t5 ", why, sizeof(why)) == 0);
	TEST_ASSERT_STR(listed(&L), "0,2,5");
	TEST_ASSERT(parse("3-3", why, sizeof(why)) == 0);
	TEST_ASSERT_STR(listed(&L), "3");
	TEST_ASSERT(parse("1023", why, sizeof(why)) == 0);
	TEST_ASSERT_STR(listed(&L), "1023");
	TEST_ASSERT(parse("960-1023", why, sizeof(why)) == 0 && L.n == 64 && L.v[63] == 1023);
}

static void refused(const char *text, const char *reason)
{
	char why[160];
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
	const char *nan = ": not a CPU number (0 to 1023), a range such as 4-7, auto or off";
	char want[160];
	const char *bad[] = { "x", "-1", "1-", "1--2", "+1", "0x1", "1024", "0-1024", "1.5", "AUTO", "on" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(want, sizeof(want), "`%s`%s", bad[i], nan);
		refused(bad[i], want);
	}
	refused("auto,0", "`auto`: not a CPU number");
	refused("0,1x", "`1x`: not a CPU number");
	refused("99999999999999999999", "`99999999999999999999`: not a CPU number");
	refused("3-1", "`3-1`: the range runs backwards");
	refused("0,0", "`0`: CPU 0 is listed twice");
	refused("0-3,2", "`2`: CPU 2 is listed twice");
	refused("0-3 1-2", "`1-2`: CPU 1 is listed twice");
	refused("0,,1", "an empty entry between commas");
	refused("0,", "an empty entry between commas");
	refused(",0", "an empty entry between commas");
	refused("0, ,1", "an empty entry between commas");
	refused("0-64", "more than 64 CPUs");
	refused("0-1023", "more than 64 CPUs");
}

static void plan(const char *spec, int nworkers, const char *allowed, const char *no_auto, int want_rc,
                 const char *want)
{
	char why[TK_CPUS_NOTE_MAX] = "", note[TK_CPUS_NOTE_MAX] = "";
	int cpu[8];
	tk_cpulist l;
	cpu_set_t a = cpus(allowed ? allowed : "");

	TEST_ASSERT(tk_cpulist_parse(spec, &l, why, sizeof(why)) == 0);
	int rc = tk_cpulist_plan(&l, nworkers, allowed ? &a : NULL, no_auto, cpu, note, sizeof(note), why,
	                         sizeof(why));
	TEST_ASSERT(rc == want_rc);
	const char *got = rc == 0 ? note : why;
	if (strstr(got, want) == NULL) {
		fprintf(stderr, "  plan '%s', %d workers on %s: '%s' lacks '%s'\n", spec, nworkers,
		        allowed ? allowed : "(unknown)", got, want);
		TEST_ASSERT(0);
	}
	if (rc != 0 || strstr(note, "not pinned") != NULL)
		for (int i = 0; i < nworkers; i++)
			TEST_ASSERT(cpu[i] == -1);
}

static void test_plans(void)
{
	/* auto: one worker per allowed CPU, in order, only when they are as many. */
	plan("auto", 2, "0-1", NULL, 0, "0,1");
	plan("auto", 2, "2,5", NULL, 0, "2,5");
	plan("auto", 1, "3", NULL, 0, "3");
	plan("auto", 2, "0-7", NULL, 0, "not pinned: 2 workers and 8 CPUs");
	plan("auto", 4, "0-1", NULL, 0, "not pinned: 4 workers and 2 CPUs");
	plan("auto", 1, "0-1", NULL, 0, "not pinned: 1 worker and 2 CPUs");
	/* ... and not when the caller says why not, or the mask is not known. */
	plan("auto", 2, "0-1", "another process listens", 0, "not pinned: another process listens");
	plan("auto", 2, NULL, NULL, 0, "not pinned: the CPUs this process may run on are not known");
	plan("off", 2, "0-1", NULL, 0, "not pinned (worker_cpus = off)");
	/* A list: the i-th worker on the i-th CPU, one each; pinned even beside another process. */
	plan("1,0", 2, "0-1", NULL, 0, "1,0");
	plan("1,0", 2, "0-1", "another process listens", 0, "1,0");
	plan("0,1", 4, "0-3", NULL, -1, "lists 2 CPUs for 4 workers (one CPU per worker, in order)");
	plan("0", 2, "0-1", NULL, -1, "lists 1 CPU for 2 workers");
	plan("0,1,2", 2, "0-3", NULL, -1, "lists 3 CPUs for 2 workers");
	plan("2", 1, "0-1", NULL, -1, "CPU 2 is not one this process may run on (its affinity mask, from "
	     "taskset, a cpuset or CPUAffinity=, allows 0-1)");
	plan("1", 1, "0,2-3,5", NULL, -1, "allows 0,2-3,5)");
	plan("0", 1, NULL, NULL, -1, "the CPUs this process may run on are not known");
}

/* A plan's cpu[] agrees with its note, worker by worker. */
static void test_plan_values(void)
{
	char why[TK_CPUS_NOTE_MAX], note[TK_CPUS_NOTE_MAX];
	int cpu[64] = { 7, 7, 7, 7 };
	tk_cpulist l;
	cpu_set_t a = cpus("4-5");

	TEST_ASSERT(tk_cpulist_parse("auto", &l, why, sizeof(why)) == 0);
	TEST_ASSERT(tk_cpulist_plan(&l, 2, &a, NULL, cpu, note, sizeof(note), why, sizeof(why)) == 0);
	TEST_ASSERT(cpu[0] == 4 && cpu[1] == 5);
	TEST_ASSERT(tk_cpulist_parse("5,4", &l, why, sizeof(why)) == 0);
	TEST_ASSERT(tk_cpulist_plan(&l, 2, &a, NULL, cpu, note, sizeof(note), why, sizeof(why)) == 0);
	TEST_ASSERT(cpu[0] == 5 && cpu[1] == 4);
	TEST_ASSERT(tk_cpulist_parse("6", &l, why, sizeof(why)) == 0);
	TEST_ASSERT(tk_cpulist_plan(&l, 1, &a, NULL, cpu, note, sizeof(note), why, sizeof(why)) == -1);
	TEST_ASSERT(cpu[0] == -1);
	/* The longest note: 64 workers on four-digit CPUs, whole. */
	a = cpus("960-1023");
	TEST_ASSERT(tk_cpulist_parse("auto", &l, why, sizeof(why)) == 0);
	TEST_ASSERT(tk_cpulist_plan(&l, 64, &a, NULL, cpu, note, sizeof(note), why, sizeof(why)) == 0);
	TEST_ASSERT(cpu[0] == 960 && cpu[63] == 1023);
	TEST_ASSERT(strncmp(note, "960,961,", 8) == 0 && strstr(note, ",1022,1023") != NULL &&
	            strstr(note, "...") == NULL);
}

/* An allowed set too long to name ends with "...", after a whole number:
 * every even CPU, and the numbers shown before the "..." run 0, 2, 4, ... */
static void test_long_mask_is_cut_between_numbers(void)
{
	char why[TK_CPUS_NOTE_MAX], note[TK_CPUS_NOTE_MAX];
	int cpu[1];
	tk_cpulist l;
	cpu_set_t a;

	CPU_ZERO(&a);
	for (int c = 0; c < TK_CPUS_MAX; c += 2)
		CPU_SET(c, &a);
	TEST_ASSERT(tk_cpulist_parse("1", &l, why, sizeof(why)) == 0);
	TEST_ASSERT(tk_cpulist_plan(&l, 1, &a, NULL, cpu, note, sizeof(note), why, sizeof(why)) == -1);
	const char *p = strstr(why, "allows ");
	const char *dots = strstr(why, "...)");
	TEST_ASSERT(p != NULL && dots != NULL && strlen(why) < sizeof(why) - 1);
	if (p == NULL || dots == NULL)
		return;
	p += 7;
	int want = 0, shown = 0;
	while (p < dots) {
		char *end;
		long v = strtol(p, &end, 10);
		TEST_ASSERT(end > p && v == want);
		if (end == p || v != want)
			break;
		want += 2;
		shown++;
		p = *end == ',' ? end + 1 : end;
	}
	TEST_ASSERT(p == dots && shown > 50);
}

int main(void)
{
	TEST_RUN(test_keywords);
	TEST_RUN(test_lists);
	TEST_RUN(test_refusals);
	TEST_RUN(test_plans);
	TEST_RUN(test_plan_values);
	TEST_RUN(test_long_mask_is_cut_between_numbers);
	TEST_DONE();
}
