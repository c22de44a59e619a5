/*
 * thread.h - naming the server's threads.
 */
#ifndef TOKEND_THREAD_H
#define TOKEND_THREAD_H

#include <pthread.h>
#include <stdio.h>

/*
 * Name thread `t` `base`, followed by `index` when index >= 0 ("tokend-w0"),
 * for top -H, perf and /proc/<pid>/task/<tid>/comm (the kernel keeps 15
 * bytes). Called by the thread's creator, right after pthread_create: the
 * name is there before anyone looks. A failure changes nothing else.
 */
static inline void tk_thread_name(pthread_t t, const char *base, int index)
{
	char name[16];
	int n = index >= 0 ? snprintf(name, sizeof(name), "%s%d", base, index)
	                   : snprintf(name, sizeof(name), "%s", base);

	if (n > 0)                       /* cut at 15 bytes when longer: still a name */
		(void)pthread_setname_np(t, name);
}

#endif
