/*
 * cpus.c - worker_cpus: parsing and the plan of each worker's CPU (cpus.h).
 */
#include "cpus.h"

#include <stdio.h>
#include <string.h>

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
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

/* Refuse: *out off (a refusal pins nothing), the reason about `entry`. */
static int refuse(tk_cpulist *out, char *why, size_t wl, const char *entry, size_t elen, const char *reason)
{
	memset(out, 0, sizeof(*out));
	out->mode = TK_CPUS_OFF;
	if (entry != NULL)
		snprintf(why, wl, "`%.*s`: %s", (int)(elen > 32 ? 32 : elen), entry, reason);
	else
		snprintf(why, wl, "%s", reason);
	return -1;
}

/* The entry starting at s: up to the next comma or blank. */
static size_t entry_len(const char *s)
{
	return strcspn(s, ", \t");
}

int tk_cpulist_parse(const char *text, tk_cpulist *out, char *why, size_t wl)
{
	static const char not_cpu[] = "not a CPU number (0 to 1023), a range such as 4-7, auto or off";
	cpu_set_t seen;
	const char *p = text ? text : "";
	size_t len;

	_Static_assert(TK_CPUS_MAX == 1024, "not_cpu names the highest CPU number");
	memset(out, 0, sizeof(*out));
	out->mode = TK_CPUS_AUTO;
	while (is_blank(*p))
		p++;
	for (len = strlen(p); len > 0 && is_blank(p[len - 1]); len--)
		;
	if (len == 0 || (len == 4 && strncmp(p, "auto", 4) == 0))
		return 0;
	if (len == 3 && strncmp(p, "off", 3) == 0) {
		out->mode = TK_CPUS_OFF;
		return 0;
	}
	out->mode = TK_CPUS_LIST;
	CPU_ZERO(&seen);
	for (const char *end = p + len;;) {
		const char *start = p;
		size_t elen = entry_len(start);
		int lo, hi;

		if (elen == 0)
			return refuse(out, why, wl, NULL, 0, "an empty entry between commas");
		if (cpu_number(&p, &lo) != 0)
			return refuse(out, why, wl, start, elen, not_cpu);
		hi = lo;
		if (*p == '-' && (p++, cpu_number(&p, &hi) != 0))
			return refuse(out, why, wl, start, elen, not_cpu);
		if (p != end && *p != ',' && !is_blank(*p))
			return refuse(out, why, wl, start, elen, not_cpu);
		if (hi < lo)
			return refuse(out, why, wl, start, elen, "the range runs backwards");
		for (int c = lo; c <= hi; c++) {
			if (CPU_ISSET(c, &seen)) {
				char r[48];
				snprintf(r, sizeof(r), "CPU %d is listed twice", c);
				return refuse(out, why, wl, start, elen, r);
			}
			if (out->n == TK_CPUS_LIST_MAX)
				return refuse(out, why, wl, NULL, 0, "more than 64 CPUs (one per worker, and workers "
				              "are at most 64)");
			CPU_SET(c, &seen);
			out->v[out->n++] = (short)c;
		}
		/* Separators: blanks, or one comma with blanks around it. */
		while (p != end && is_blank(*p))
			p++;
		if (p != end && *p == ',') {
			p++;
			while (p != end && is_blank(*p))
				p++;
			if (p == end || *p == ',')
				return refuse(out, why, wl, NULL, 0, "an empty entry between commas");
		}
		if (p == end)
			return 0;
	}
}

int tk_cpulist_fits(const tk_cpulist *l, int nworkers, char *why, size_t wl)
{
	if (l->mode != TK_CPUS_LIST || l->n == (size_t)nworkers)
		return 0;
	snprintf(why, wl, "lists %zu CPU%s for %d worker%s (one CPU per worker, in order)", l->n,
	         l->n == 1 ? "" : "s", nworkers, nworkers == 1 ? "" : "s");
	return -1;
}

/* Append `piece` to out (*o: its length so far; cap >= 4), or end it with
 * "..." when the rest might not fit: a cut list never shows part of a number.
 * While *o < cap, there is room for "..." after it. */
static void append(char *out, size_t cap, size_t *o, const char *piece)
{
	size_t n = strlen(piece);

	if (*o >= cap)                    /* ended already */
		return;
	if (*o + n + 4 > cap) {
		memcpy(out + *o, "...", 4);
		*o = cap;
		return;
	}
	memcpy(out + *o, piece, n + 1);
	*o += n;
}

/* "0-3,6" (the kernel's Cpus_allowed_list form). */
static void mask_text(const cpu_set_t *s, char *out, size_t cap)
{
	char piece[32];
	size_t o = 0;

	out[0] = '\0';
	for (int c = 0; c < TK_CPUS_MAX; c++) {
		if (!CPU_ISSET(c, s))
			continue;
		int e = c;
		while (e + 1 < TK_CPUS_MAX && CPU_ISSET(e + 1, s))
			e++;
		if (e == c)
			snprintf(piece, sizeof(piece), "%s%d", o ? "," : "", c);
		else
			snprintf(piece, sizeof(piece), "%s%d-%d", o ? "," : "", c, e);
		append(out, cap, &o, piece);
		c = e;
	}
	if (o == 0)
		snprintf(out, cap, "none");
}

int tk_cpulist_plan(const tk_cpulist *l, int nworkers, const cpu_set_t *allowed, const char *no_auto,
                    int *cpu, char *note, size_t nl, char *why, size_t wl)
{
	char piece[16];
	size_t o = 0;
	int count = allowed ? CPU_COUNT(allowed) : 0;

	for (int i = 0; i < nworkers; i++)
		cpu[i] = -1;
	note[0] = '\0';
	switch (l->mode) {
	case TK_CPUS_OFF:
		snprintf(note, nl, "not pinned (worker_cpus = off)");
		return 0;
	case TK_CPUS_AUTO:
		if (no_auto != NULL || allowed == NULL) {
			snprintf(note, nl, "not pinned: %s", no_auto ? no_auto : "the CPUs this process may run on are not known");
			return 0;
		}
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
		if (tk_cpulist_fits(l, nworkers, why, wl) != 0)
			return -1;
		if (allowed == NULL) {
			snprintf(why, wl, "the CPUs this process may run on are not known%s%s",
			         no_auto ? ": " : "", no_auto ? no_auto : "");
			return -1;
		}
		for (size_t k = 0; k < l->n; k++) {
			if (!CPU_ISSET(l->v[k], allowed)) {
				char m[TK_CPUS_NOTE_MAX - 160];
				mask_text(allowed, m, sizeof(m));
				snprintf(why, wl, "CPU %d is not one this process may run on (its affinity mask, from "
				         "taskset, a cpuset or CPUAffinity=, allows %s)", l->v[k], m);
				return -1;
			}
		}
		for (int i = 0; i < nworkers; i++)
			cpu[i] = l->v[i];
		break;
	}
	for (int i = 0; i < nworkers; i++) {
		snprintf(piece, sizeof(piece), "%s%d", i ? "," : "", cpu[i]);
		append(note, nl, &o, piece);
	}
	return 0;
}
