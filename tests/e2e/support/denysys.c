/*
 * denysys.c - run a command with some system calls refused (EPERM), for the
 * end-to-end tests of failure paths that no real machine shows on demand
 * (a CPU affinity that cannot be read or set; io_uring refused, as a
 * container's seccomp profile refuses it, or failing once set up).
 *
 *   denysys SYSCALL[,SYSCALL...] COMMAND [ARG...]
 *
 * SYSCALL: sched_getaffinity, sched_setaffinity, io_uring_setup or
 * io_uring_enter. A seccomp filter (kept
 * across exec, with no_new_privs) makes each one fail with EPERM in COMMAND
 * and in every thread and child it makes; everything else is allowed.
 * Exit 2 on bad arguments, 127 when the filter or the exec fails.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#define THIS_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define THIS_ARCH AUDIT_ARCH_AARCH64
#else
#error "denysys: unknown architecture"
#endif

static const struct { const char *name; long nr; } known[] = {
	{ "sched_getaffinity", SYS_sched_getaffinity },
	{ "sched_setaffinity", SYS_sched_setaffinity },
	{ "io_uring_setup", SYS_io_uring_setup },
	{ "io_uring_enter", SYS_io_uring_enter },
};
#define NKNOWN (sizeof(known) / sizeof(known[0]))

int main(int argc, char **argv)
{
	struct sock_filter prog[4 + 2 * NKNOWN + 2];
	size_t n = 0, nden = 0;
	long deny[NKNOWN];
	char list[128];

	if (argc < 3 || strlen(argv[1]) >= sizeof(list)) {
		fprintf(stderr, "usage: denysys SYSCALL[,SYSCALL...] COMMAND [ARG...]\n");
		return 2;
	}
	strcpy(list, argv[1]);
	for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		size_t k = 0;
		while (k < NKNOWN && strcmp(known[k].name, t) != 0)
			k++;
		if (k == NKNOWN || nden == NKNOWN) {
			fprintf(stderr, "denysys: unknown or repeated system call: %s\n", t);
			return 2;
		}
		deny[nden++] = known[k].nr;
	}
	/* Another architecture's calls: kill (their numbers mean other things). */
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, THIS_ARCH, 1, 0);
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
	for (size_t i = 0; i < nden; i++) {
		prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)deny[i], 0, 1);
		prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA));
	}
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	struct sock_fprog fp = { .len = (unsigned short)n, .filter = prog };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fp) != 0) {
		perror("denysys: seccomp");
		return 127;
	}
	execvp(argv[2], argv + 2);
	perror("denysys: exec");
	return 127;
}
