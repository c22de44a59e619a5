/*
 * test_pidcache.c - the tokend executable's getpid() (server/pidcache.c):
 * the kernel's answer, from memory once known, and never the parent's pid in
 * a forked child, even one made by a raw clone() that runs no atfork handler:
 * OpenSSL's DRBG must still reseed there (else a child's ECDSA nonces would
 * repeat the parent's, and two signatures with one nonce give the key away).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "pidcache.h"
#include "unit.h"

static pid_t kernel_pid(void)
{
	return (pid_t)syscall(SYS_getpid);
}

/* A child without atfork handlers: clone() as fork() does it, straight to the
 * kernel (no stack given: the child runs on a copy of ours). */
static pid_t raw_fork(void)
{
	return (pid_t)syscall(SYS_clone, (unsigned long)SIGCHLD, 0UL, 0UL, 0UL, 0UL);
}

/* The child's exit status: 0 when it passed. */
static int child_status(pid_t child)
{
	int st = 0;
	if (child < 0 || waitpid(child, &st, 0) != child)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 100 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static void test_matches_the_kernel(void)
{
	TEST_ASSERT(tk_pidcache_active());
	/* The libraries' calls find this definition (exported), not libc's. */
	TEST_ASSERT(dlsym(RTLD_DEFAULT, "getpid") == (void *)getpid);
	TEST_ASSERT(getpid() == kernel_pid());
	TEST_ASSERT(getpid() == kernel_pid());
}

/* Once known, the pid comes from memory: with getpid refused by a seccomp
 * filter (the system call then fails with EPERM), getpid() still answers. */
static void test_answers_without_the_system_call(void)
{
	pid_t child = fork();
	if (child == 0) {
		pid_t before = getpid();
		struct sock_filter f[] = {
			BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
			BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getpid, 0, 1),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
			BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		};
		struct sock_fprog prog = { (unsigned short)(sizeof(f) / sizeof(f[0])), f };
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
		    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0)
			_exit(2);
		if (kernel_pid() != -1)        /* the filter works: the kernel refuses */
			_exit(3);
		_exit(getpid() == before && before > 0 ? 0 : 4);
	}
	TEST_ASSERT(child_status(child) == 0);
}

/* A child, by fork() or by a raw clone(), sees its own pid, not the cached one. */
static void test_child_sees_its_own_pid(void)
{
	pid_t parent = getpid();
	for (int raw = 0; raw <= 1; raw++) {
		pid_t child = raw ? raw_fork() : fork();
		if (child == 0) {
			pid_t p = getpid();
			_exit(p != parent && p == kernel_pid() && getpid() == p ? 0 : 5);
		}
		TEST_ASSERT(child > 0);
		TEST_ASSERT(child_status(child) == 0);
	}
	TEST_ASSERT(getpid() == parent);
}

/* The attack: a child made without atfork handlers draws from OpenSSL's
 * generators, and so does the parent. Were the parent's pid cached into the
 * child, the child's generators (copies of the parent's) would not reseed,
 * and both would draw the same bytes. */
static void test_openssl_reseeds_in_a_raw_child(void)
{
	unsigned char warm[32];
	TEST_ASSERT(RAND_bytes(warm, sizeof(warm)) == 1);
	TEST_ASSERT(RAND_priv_bytes(warm, sizeof(warm)) == 1);
	(void)getpid();                    /* the parent's pid is cached */
	int fds[2];
	TEST_ASSERT(pipe(fds) == 0);
	pid_t child = raw_fork();
	if (child == 0) {
		unsigned char b[64];
		if (RAND_bytes(b, 32) != 1 || RAND_priv_bytes(b + 32, 32) != 1)
			_exit(6);
		_exit(write(fds[1], b, sizeof(b)) == (ssize_t)sizeof(b) ? 0 : 7);
	}
	unsigned char mine[64], theirs[64];
	TEST_ASSERT(RAND_bytes(mine, 32) == 1);
	TEST_ASSERT(RAND_priv_bytes(mine + 32, 32) == 1);
	TEST_ASSERT(child_status(child) == 0);
	TEST_ASSERT(read(fds[0], theirs, sizeof(theirs)) == (ssize_t)sizeof(theirs));
	TEST_ASSERT(memcmp(mine, theirs, 32) != 0);
	TEST_ASSERT(memcmp(mine + 32, theirs + 32, 32) != 0);
	close(fds[0]);
	close(fds[1]);
}

int main(void)
{
	TEST_RUN(test_matches_the_kernel);
	TEST_RUN(test_answers_without_the_system_call);
	TEST_RUN(test_child_sees_its_own_pid);
	TEST_RUN(test_openssl_reseeds_in_a_raw_child);
	TEST_DONE();
}
