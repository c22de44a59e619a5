/*
 * pauseprobe.c - how often, and for how long, this machine stops running a
 * busy thread (tests/bench/run.sh, "host pauses").
 *
 *   pauseprobe SECONDS [CPU...]
 *
 * One thread per CPU given (each pinned to its CPU; none given: one thread,
 * unpinned) reads CLOCK_MONOTONIC in a tight loop for SECONDS. A gap between
 * two reads is time the thread did not run: an interrupt, another task, or,
 * in a virtual machine, the host not running the virtual CPU. Run on an idle
 * machine, the long gaps (1 ms and more) are the host's: no server on this
 * machine can answer a request in less time than the pause it falls into,
 * so they bound what a latency percentile can show here.
 *
 * The thread's wait on this kernel's run queue (/proc/thread-self/schedstat,
 * read every millisecond and after each gap of 1 ms or more) tells the two
 * apart: a gap the guest gave to another task is counted there (at least half
 * of it: "guest"), one in which the host did not run the virtual CPU is not
 * ("host").
 *
 * Prints one line per CPU and one for all:
 *   PAUSES cpu=N seconds=S ge50us=.. ge250us=.. ge1ms=.. ge2ms=.. ge5ms=..
 *          lost1ms_pct=.. over2ms_pct=.. max_us=.. queued_ms=..
 *          host_ge1ms=.. host_ge2ms=.. host_over2ms_pct=.. host_max_us=..
 * (counts of gaps at least that long; lost1ms_pct: the share of time spent in
 * gaps of 1 ms or more; over2ms_pct: the share of time a request arriving at
 * a random instant would wait over 2 ms for the CPU, sum(gap - 2 ms) / time;
 * queued_ms: the thread's time waiting on this kernel's run queue, -1 when
 * schedstat cannot be read; host_*: the same for the gaps not spent on the
 * run queue, all gaps when it cannot be read).
 * Exit 0, or 2 on bad arguments.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CPUS 64

enum { B50US, B250US, B1MS, B2MS, B5MS, NB };
static const double edge_s[NB] = { 50e-6, 250e-6, 1e-3, 2e-3, 5e-3 };

typedef struct probe {
	int cpu;                  /* -1: not pinned */
	double seconds;
	long count[NB];
	double lost1ms, over2ms, max_gap, ran, queued;
	long host_ge1ms, host_ge2ms;
	double host_over2ms, host_max;
	pthread_t th;
} probe;

/* This thread's time waiting on the run queue so far (s), or -1. */
static double run_queue_wait(void)
{
	unsigned long long ran_ns, wait_ns;
	FILE *f = fopen("/proc/thread-self/schedstat", "r");
	if (f == NULL)
		return -1;
	int got = fscanf(f, "%llu %llu", &ran_ns, &wait_ns);
	fclose(f);
	return got == 2 ? (double)wait_ns * 1e-9 : -1;
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void *run(void *arg)
{
	probe *p = arg;
	if (p->cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(p->cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set) != 0)
			p->cpu = -1;      /* reported unpinned */
	}
	double q0 = run_queue_wait(), q_last = q0;
	double start = now_s(), last = start, end = start + p->seconds, q_at = start;
	for (;;) {
		double t = now_s(), gap = t - last;
		last = t;
		if (gap >= edge_s[B1MS]) {
			/* On the run queue for most of it: the guest's; else the host's. */
			double q = run_queue_wait();
			int guest = q >= 0 && q_last >= 0 && q - q_last >= gap / 2;
			q_last = q;
			q_at = now_s();
			if (!guest) {
				p->host_ge1ms++;
				if (gap >= edge_s[B2MS])
					p->host_ge2ms++;
				if (gap > edge_s[B2MS])
					p->host_over2ms += gap - edge_s[B2MS];
				if (gap > p->host_max)
					p->host_max = gap;
			}
			last = now_s();   /* the reads are not a gap */
		} else if (t - q_at >= 1e-3) {
			q_last = run_queue_wait();
			q_at = last = now_s();
		}
		if (gap >= edge_s[B50US]) {
			for (int b = 0; b < NB && gap >= edge_s[b]; b++)
				p->count[b]++;      /* each edge counts the gaps at least that long */
			if (gap >= edge_s[B1MS])
				p->lost1ms += gap;
			if (gap > edge_s[B2MS])
				p->over2ms += gap - edge_s[B2MS];
			if (gap > p->max_gap)
				p->max_gap = gap;
		}
		if (t >= end)
			break;
	}
	p->ran = last - start;
	double q1 = run_queue_wait();
	p->queued = q0 >= 0 && q1 >= 0 ? q1 - q0 : -1;
	return NULL;
}

static void print(const char *cpu, const probe *p)
{
	double ran = p->ran;
	printf("PAUSES cpu=%s seconds=%.1f ge50us=%ld ge250us=%ld ge1ms=%ld ge2ms=%ld ge5ms=%ld "
	       "lost1ms_pct=%.3f over2ms_pct=%.3f max_us=%.0f queued_ms=%.1f "
	       "host_ge1ms=%ld host_ge2ms=%ld host_over2ms_pct=%.3f host_max_us=%.0f\n",
	       cpu, ran, p->count[B50US], p->count[B250US], p->count[B1MS], p->count[B2MS], p->count[B5MS],
	       ran > 0 ? p->lost1ms / ran * 100 : 0, ran > 0 ? p->over2ms / ran * 100 : 0, p->max_gap * 1e6,
	       p->queued >= 0 ? p->queued * 1e3 : -1, p->host_ge1ms, p->host_ge2ms,
	       ran > 0 ? p->host_over2ms / ran * 100 : 0, p->host_max * 1e6);
}

int main(int argc, char **argv)
{
	static probe p[MAX_CPUS];
	char *end;
	double seconds = argc > 1 ? strtod(argv[1], &end) : 0;
	if (argc < 2 || *end != '\0' || !(seconds > 0 && seconds <= 600) || argc - 2 > MAX_CPUS) {
		fprintf(stderr, "usage: pauseprobe SECONDS (0 < SECONDS <= 600) [CPU...] (at most %d)\n", MAX_CPUS);
		return 2;
	}
	int n = argc > 2 ? argc - 2 : 1;
	for (int i = 0; i < n; i++) {
		long cpu = -1;
		if (argc > 2) {
			cpu = strtol(argv[i + 2], &end, 10);
			if (*end != '\0' || cpu < 0 || cpu >= CPU_SETSIZE) {
				fprintf(stderr, "pauseprobe: not a CPU number: %s\n", argv[i + 2]);
				return 2;
			}
		}
		p[i].cpu = (int)cpu;
		p[i].seconds = seconds;
		if (pthread_create(&p[i].th, NULL, run, &p[i]) != 0) {
			fprintf(stderr, "pauseprobe: cannot start a thread\n");
			return 2;
		}
	}
	probe all = { .cpu = -1 };
	for (int i = 0; i < n; i++) {
		char name[16];
		pthread_join(p[i].th, NULL);
		if (p[i].cpu >= 0)
			snprintf(name, sizeof(name), "%d", p[i].cpu);
		else
			snprintf(name, sizeof(name), "any");
		print(name, &p[i]);
		/* All: counts and times summed, shares over the threads' summed time. */
		for (int b = 0; b < NB; b++)
			all.count[b] += p[i].count[b];
		all.ran += p[i].ran;
		all.lost1ms += p[i].lost1ms;
		all.over2ms += p[i].over2ms;
		all.host_ge1ms += p[i].host_ge1ms;
		all.host_ge2ms += p[i].host_ge2ms;
		all.host_over2ms += p[i].host_over2ms;
		if (p[i].max_gap > all.max_gap)
			all.max_gap = p[i].max_gap;
		if (p[i].host_max > all.host_max)
			all.host_max = p[i].host_max;
		if (all.queued >= 0)
			all.queued = p[i].queued >= 0 ? all.queued + p[i].queued : -1;
	}
	print("all", &all);
	return 0;
}
