/*
 * cpus.h - which CPU each worker thread runs on (`worker_cpus`).
 *
 * Each worker serves the connections the kernel gave its own listening
 * socket (SO_REUSEPORT), so a worker that waits for a CPU makes all of its
 * clients wait. Left to the scheduler, two busy workers often share one CPU
 * while the other CPU runs something else, and take turns of a scheduler
 * tick (4 ms at HZ=250); pinned one per CPU, they never queue behind each
 * other.
 *
 *   auto  (default) when there are exactly as many workers as CPUs this
 *         process may run on (its affinity mask: taskset, a cpuset, systemd's
 *         CPUAffinity=), worker i runs on the i-th of them. Otherwise, or when
 *         the caller gives a reason not to (another process shares the
 *         listening port, as in a rolling restart; the mask could not be
 *         read), the workers are left to the scheduler.
 *   off   never pinned.
 *   list  one CPU per worker, in order: numbers and ranges separated by
 *         commas or spaces ("0,2", "4-7"). Each CPU at most once, each one
 *         this process may run on (checked at start), exactly as many as
 *         there are workers.
 * Pure functions: no allocation, no system call.
 */
#ifndef TOKEND_CPUS_H
#define TOKEND_CPUS_H

#include <sched.h>
#include <stddef.h>

#define TK_CPUS_MAX      CPU_SETSIZE     /* CPU numbers 0 .. TK_CPUS_MAX - 1 */
#define TK_CPUS_LIST_MAX 64              /* CPUs in a list: one per worker, workers <= 64 */
#define TK_CPUS_NOTE_MAX 512             /* room for any note or reason of tk_cpulist_plan */

typedef enum { TK_CPUS_AUTO, TK_CPUS_OFF, TK_CPUS_LIST } tk_cpus_mode;

typedef struct tk_cpulist {
	tk_cpus_mode mode;
	size_t n;                            /* TK_CPUS_LIST: CPUs in v, in the order written */
	short v[TK_CPUS_LIST_MAX];
} tk_cpulist;

/*
 * Parse `text` (NULL or blank: auto). 0 with *out filled, or -1 with *out
 * set to off and a reason naming the offending entry in `why`.
 */
int tk_cpulist_parse(const char *text, tk_cpulist *out, char *why, size_t wl);

/* 0 when `l` suits `nworkers` (a list names exactly one CPU per worker), else
 * -1 with the reason in `why`. */
int tk_cpulist_fits(const tk_cpulist *l, int nworkers, char *why, size_t wl);

/*
 * The CPU of each of `nworkers` workers into cpu[0 .. nworkers) (-1: left to
 * the scheduler), given `allowed`, the CPUs this process may run on (NULL:
 * not known). `no_auto`, when not NULL, is why auto must not pin (it goes
 * into the note). 0 with a line for the log in `note` (the CPUs in worker
 * order, "0,1", or why the workers are not pinned), or -1 with the reason in
 * `why` (a listed CPU outside `allowed`, a list that does not fit, an
 * unknown `allowed` for a list) and every cpu[i] -1. note and why: at least
 * TK_CPUS_NOTE_MAX bytes for the whole text.
 */
int tk_cpulist_plan(const tk_cpulist *l, int nworkers, const cpu_set_t *allowed, const char *no_auto,
                    int *cpu, char *note, size_t nl, char *why, size_t wl);

#endif
