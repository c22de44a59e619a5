/*
 * cpus.h - which CPU each worker thread runs on (`worker_cpus`).
 *
 * Each worker serves the connections the kernel gave its own listening
 * socket (SO_REUSEPORT), so a worker that waits for a CPU makes all of its
 * clients wait. Left to the scheduler, two busy workers often share one CPU
 * while the other serves the load generator or PostgreSQL: each then waits a
 * whole scheduler tick (4 ms at HZ=250) for the other. Pinned one per CPU,
 * they never queue behind each other (measured: the open-loop p99 at half the
 * peak rate fell from ~3.1 ms to ~1.8 ms on 2 cores; the peak rate and the
 * CPU per token did not change).
 *
 *   auto  (default) when there are exactly as many workers as CPUs this
 *         process may run on (its affinity mask: taskset, a cpuset, systemd's
 *         CPUAffinity=), worker i runs on the i-th of them; otherwise the
 *         workers are left to the scheduler (a second tokend on the same CPUs,
 *         or spare CPUs, would make pinning a loss).
 *   off   never pinned.
 *   list  CPU numbers and ranges separated by commas or spaces ("0,2",
 *         "4-7"): worker i runs on the i-th CPU listed, and again from the
 *         first when there are more workers than CPUs listed. Each CPU must
 *         be one this process may run on (checked at start) and appear once;
 *         at most as many as there are workers.
 * Pure functions: no allocation, no system call.
 */
#ifndef TOKEND_CPUS_H
#define TOKEND_CPUS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sched.h>
#include <stddef.h>

#define TK_CPUS_MAX CPU_SETSIZE          /* CPU numbers 0 .. TK_CPUS_MAX - 1 */

typedef enum { TK_CPUS_AUTO, TK_CPUS_OFF, TK_CPUS_LIST } tk_cpus_mode;

typedef struct tk_cpulist {
	tk_cpus_mode mode;
	size_t n;                            /* TK_CPUS_LIST: CPUs in v, in the order written */
	short v[TK_CPUS_MAX];
} tk_cpulist;

/*
 * Parse `text` (NULL or blank: auto). 0 with *out filled, or -1 with *out
 * set to off and a reason naming the offending entry in `why`.
 */
int tk_cpulist_parse(const char *text, tk_cpulist *out, char *why, size_t wl);

/*
 * The CPU of each of `nworkers` workers into cpu[0 .. nworkers) (-1: left to
 * the scheduler), given the CPUs this process may run on. 0 with a line for
 * the log in `note` ("0,1", or why the workers are not pinned), or -1 with
 * `why` (a listed CPU outside `allowed`, or more CPUs listed than workers)
 * and every cpu[i] -1.
 */
int tk_cpulist_plan(const tk_cpulist *l, int nworkers, const cpu_set_t *allowed, int *cpu,
                    char *note, size_t nl, char *why, size_t wl);

#endif
