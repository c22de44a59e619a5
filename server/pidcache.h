/*
 * pidcache.h - the tokend executable's getpid() (pidcache.c): the pid from a
 * wipe-on-fork page, so that OpenSSL's per-signature fork check makes no
 * system call, and a forked child still sees its own pid.
 */
#ifndef TOKEND_PIDCACHE_H
#define TOKEND_PIDCACHE_H

/* 1 when getpid() answers from the wipe-on-fork page; 0 when the page could
 * not be made and every getpid() is the system call. */
int tk_pidcache_active(void);

#endif
