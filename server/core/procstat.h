/*
 * procstat.h - the process's own resource figures, read from /proc (Linux),
 * for the standard process_* metrics of /metrics.
 *
 * Read on demand (a scrape), never on a request's path; any thread.
 */
#ifndef TOKEND_PROCSTAT_H
#define TOKEND_PROCSTAT_H

#include <stdint.h>

typedef struct tk_procstat {
	double cpu_seconds;           /* user + system CPU time */
	uint64_t resident_bytes;      /* resident set size */
	uint64_t virtual_bytes;       /* virtual memory size */
	double start_time;            /* Unix time the process started */
	int64_t open_fds;             /* entries of /proc/self/fd */
	int64_t max_fds;              /* soft RLIMIT_NOFILE */
} tk_procstat;

/* Fill `ps` from /proc/self/stat, /proc/stat and /proc/self/fd. Returns 0,
 * or -1 when /proc cannot be read (then *ps is all zero: the caller leaves
 * the metrics out rather than publish zeros). */
int tk_procstat_read(tk_procstat *ps);

/* Parse the text of /proc/<pid>/stat (`text`, NUL-terminated) into the
 * figures it holds; the rest of `ps` is left alone. `ticks`: clock ticks per
 * second; `page`: the page size; `btime`: boot time (Unix seconds).
 * Returns 0, or -1 when malformed. Split out for unit tests. */
int tk_procstat_parse_stat(const char *text, long ticks, long page, int64_t btime, tk_procstat *ps);

#endif
