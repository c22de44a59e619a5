/*
 * pidcache.c - getpid() answered from memory, for the whole tokend process.
 *
 * Why: OpenSSL 3.0's DRBG checks for a fork on every generate call by
 * comparing getpid() with the pid it was last seeded in, and every ES256
 * signature draws from it (the ECDSA nonce), so each token cost one
 * getpid system call: one of the four system calls per token (recv, the
 * FIONREAD before it, send, getpid), about 1 us each on a virtual machine.
 * glibc has not cached the pid since 2.25, and OpenSSL offers no other hook.
 *
 * How: this executable defines getpid(). The dynamic linker resolves every
 * shared library's getpid (libcrypto's included) to the executable's
 * definition before libc's (the link exports it: server/CMakeLists.txt), so
 * the tokend binary alone is affected; libtokend, a library others link,
 * defines nothing of the kind.
 *
 * Fork safety is what OpenSSL's check is for, so the cached pid must never
 * survive into a child: it lives in a page mapped with MADV_WIPEONFORK. The
 * kernel hands a forked child that page zero-filled, whatever made the child
 * (fork(), or a raw clone() without CLONE_VM that skips pthread_atfork
 * handlers), and a zero asks the kernel again. A child that shares the
 * parent's memory (vfork, posix_spawn) sees the parent's pid, as it sees all
 * of the parent's memory; such a child may only exec, and tokend's children
 * (none today) would be made that way or by fork(). When the page cannot be
 * made (a kernel before 4.14, an emulator that ignores the advice, no
 * memory), every call is the system call; the start log says which.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include "pidcache.h"

/* The wipe-on-fork page; NULL: no cache, every getpid is a system call. */
static _Atomic(pid_t) *pid_slot;

static pid_t sys_getpid(void)
{
	return (pid_t)syscall(SYS_getpid);
}

/* Set up before main (before any thread), after which pid_slot never changes. */
__attribute__((constructor)) static void pidcache_init(void)
{
	long page = sysconf(_SC_PAGESIZE);
	if (page <= 0)
		return;
	void *p = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return;
	/* Some emulators (qemu-user) answer 0 to any advice and do nothing: an
	 * advice that does not exist must be refused before MADV_WIPEONFORK's 0
	 * is believed. */
	if (madvise(p, (size_t)page, -1) == 0 || madvise(p, (size_t)page, MADV_WIPEONFORK) != 0) {
		munmap(p, (size_t)page);
		return;
	}
	/* Filled now, before any thread or child: a child sharing this memory
	 * (vfork) that called getpid before the parent could otherwise leave its
	 * own pid here. */
	*(_Atomic(pid_t) *)p = sys_getpid();
	pid_slot = p;
}

pid_t getpid(void)
{
	_Atomic(pid_t) *slot = pid_slot;
	if (slot == NULL)
		return sys_getpid();
	pid_t pid = atomic_load_explicit(slot, memory_order_relaxed);
	if (pid == 0) {
		pid = sys_getpid();
		atomic_store_explicit(slot, pid, memory_order_relaxed);
	}
	return pid;
}

int tk_pidcache_active(void)
{
	return pid_slot != NULL;
}
