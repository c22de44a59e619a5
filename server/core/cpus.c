/*
 * cpus.c - worker_cpus: parsing and the plan of each worker's CPU (cpus.h).
 */
#include "cpus.h"

#include <stdio.h>
#include <string.h>

static int is_sep(char c)
{
	return c == ',' || c == ' ' || c == '\t';
}

/* A CPU number at *p: decimal digits only, below TK_CPUS_MAX. Advances *p. */
static int cpu_number(const char **p, int *out)
{
	const char *s = *p;
	int v = 0;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++) {
		v = v * 10 + (*s - '0');
		if (v >= TK_CPUS_MAX)
			return -1;
	}
	*p = s;
	*out = v;
	return 0;
}

static void set_off(tk_cpulist *out)
{
	out->mode = TK_CPUS_OFF;
	out->n = 0;
}

int tk_cpulist_parse(const char *text, tk_cpulist *out, char *why, size_t wl)
{
	cpu_set_t seen;
	const char *p = text ? text : "";

	out->mode = TK_CPUS_AUTO;
	out->n = 0;
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0' || strcmp(p, "auto") == 0)
		return 0;
	if (strcmp(p, "off") == 0) {
		set_off(out);
		return 0;
	}
	out->mode = TK_CPUS_LIST;
	CPU_ZERO(&seen);
	for (;;) {
		const char *start = p;
		size_t elen = strcspn(start, ", \t");
		int lo, hi;

		if (elen == 0) {
			snprintf(why, wl, "an empty entry (a CPU number or a range such as 4-7 between commas)");
			set_off(out);
			return -1;
		}
		if (cpu_number(&p, &lo) != 0) {
			snprintf(why, wl, "'%.*s' is not a CPU number (0 to %d) or range", (int)(elen > 32 ? 32 : elen),
			         start, TK_CPUS_MAX - 1);
			set_off(out);
			return -1;
		}
		hi = lo;
		if (*p == '-') {
			p++;
			if (cpu_number(&p, &hi) != 0) {
				snprintf(why, wl, "'%.*s' is not a CPU number (0 to %d) or range",
				         (int)(elen > 32 ? 32 : elen), start, TK_CPUS_MAX - 1);
				set_off(out);
				return -1;
			}
		}
		if (*p != '\0' && !is_sep(*p)) {
			snprintf(why, wl, "'%.*s' is not a CPU number (0 to %d) or range", (int)(elen > 32 ? 32 : elen),
			         start, TK_CPUS_MAX - 1);
			set_off(out);
			return -1;
		}
		if (hi < lo) {
			snprintf(why, wl, "the range %d-%d runs backwards", lo, hi);
			set_off(out);
			return -1;
		}
		for (int c = lo; c <= hi; c++) {
			if (CPU_ISSET(c, &seen)) {
				snprintf(why, wl, "CPU %d is listed twice", c);
				set_off(out);
				return -1;
			}
			CPU_SET(c, &seen);
			out->v[out->n++] = (short)c;
		}
		/* Separators: spaces, or one comma with spaces around it. */
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == ',') {
			p++;
			while (*p == ' ' || *p == '\t')
				p++;
			if (*p == '\0' || *p == ',') {
				snprintf(why, wl, "an empty entry (a CPU number or a range such as 4-7 between commas)");
				set_off(out);
				return -1;
			}
		}
		if (*p == '\0')
			return 0;
	}
}

/* "0,1,2" (ascending runs are not folded: a worker's CPU reads off at its place). */
static void list_text(const int *cpu, int n, char *out, size_t cap)
{
	size_t o = 0;

	out[0] = '\0';
	for (int i = 0; i < n && o < cap; i++) {
		int w = snprintf(out + o, cap - o, "%s%d", i ? "," : "", cpu[i]);
		if (w < 0 || (size_t)w >= cap - o) {
			/* Too long for the line: end it visibly rather than mid-number. */
			if (cap >= 4)
				memcpy(out + cap - 4, "...", 4);
			return;
		}
		o += (size_t)w;
	}
}

int tk_cpulist_plan(const tk_cpulist *l, int nworkers, const cpu_set_t *allowed, int *cpu,
                    char *note, size_t nl, char *why, size_t wl)
{
	int count = CPU_COUNT(allowed);

	for (int i = 0; i < nworkers; i++)
		cpu[i] = -1;
	note[0] = '\0';
	switch (l->mode) {
	case TK_CPUS_OFF:
		snprintf(note, nl, "not pinned (worker_cpus = off)");
		return 0;
	case TK_CPUS_AUTO:
		if (count != nworkers) {
			snprintf(note, nl, "not pinned: %d worker%s and %d CPU%s to run on (worker_cpus = auto pins "
			         "only when they are as many)", nworkers, nworkers == 1 ? "" : "s", count,
			         count == 1 ? "" : "s");
			return 0;
		}
		for (int c = 0, i = 0; c < TK_CPUS_MAX && i < nworkers; c++)
			if (CPU_ISSET(c, allowed))
				cpu[i++] = c;
		break;
	case TK_CPUS_LIST:
		if (l->n == 0 || l->n > (size_t)nworkers) {
			snprintf(why, wl, "lists %zu CPUs for %d worker%s (worker i runs on the i-th CPU listed: "
			         "raise workers or list fewer)", l->n, nworkers, nworkers == 1 ? "" : "s");
			return -1;
		}
		for (size_t k = 0; k < l->n; k++) {
			if (!CPU_ISSET(l->v[k], allowed)) {
				snprintf(why, wl, "CPU %d is not one this process may run on (%d allowed by its affinity "
				         "mask: taskset, cpuset or CPUAffinity)", l->v[k], count);
				return -1;
			}
		}
		for (int i = 0; i < nworkers; i++)
			cpu[i] = l->v[(size_t)i % l->n];
		break;
	}
	list_text(cpu, nworkers, note, nl);
	return 0;
}
