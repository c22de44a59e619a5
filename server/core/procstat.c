/*
 * procstat.c - process figures from /proc (see procstat.h).
 */
#include "procstat.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

int tk_procstat_parse_stat(const char *text, long ticks, long page, int64_t btime, tk_procstat *ps)
{
	/* "pid (comm) state ..." - comm may hold spaces and parentheses: the
	 * fields start after the last ')'. Field 3 (state) is the first after it. */
	const char *p = text ? strrchr(text, ')') : NULL;
	if (!p || ticks <= 0 || page <= 0)
		return -1;
	p++;
	unsigned long long f[25] = { 0 };   /* f[i]: field i+3 (1-based numbering of proc(5)) */
	int n = 0;
	char *end;
	while (n < 22) {
		while (*p == ' ')
			p++;
		if (!*p)
			return -1;
		if (n == 0) {   /* state: one character */
			p++;
			n++;
			continue;
		}
		if (*p == '-')
			p++;    /* signed fields we do not use (priority, nice) */
		f[n] = strtoull(p, &end, 10);
		if (end == p)
			return -1;
		p = end;
		n++;
	}
	/* proc(5): utime 14, stime 15, starttime 22, vsize 23, rss 24 */
	ps->cpu_seconds = (double)(f[14 - 3] + f[15 - 3]) / (double)ticks;
	ps->start_time = (double)btime + (double)f[22 - 3] / (double)ticks;
	ps->virtual_bytes = f[23 - 3];
	ps->resident_bytes = f[24 - 3] * (unsigned long long)page;
	return 0;
}

static int64_t boot_time(void)
{
	FILE *f = fopen("/proc/stat", "re");
	if (!f)
		return -1;
	char line[256];
	long long bt = -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "btime %lld", &bt) == 1)
			break;
	fclose(f);
	return bt;
}

int tk_procstat_read(tk_procstat *ps)
{
	memset(ps, 0, sizeof(*ps));
	char text[1024];
	FILE *f = fopen("/proc/self/stat", "re");
	if (!f)
		return -1;
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	int64_t bt = boot_time();
	if (bt < 0 || tk_procstat_parse_stat(text, sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE), bt, ps) != 0) {
		memset(ps, 0, sizeof(*ps));
		return -1;
	}
	DIR *d = opendir("/proc/self/fd");
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)))
			if (e->d_name[0] != '.')
				ps->open_fds++;
		closedir(d);
		ps->open_fds--;   /* the directory's own descriptor */
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		ps->max_fds = rl.rlim_cur == RLIM_INFINITY ? -1 : (int64_t)rl.rlim_cur;
	return 0;
}
