/*
 * clock.h - the monotonic clock, in the units each caller wants. Deadlines,
 * intervals and rate-limiter decay use it; wall-clock time (token iat/exp,
 * last-used marks) uses time(2).
 */
#ifndef TOKEND_CLOCK_H
#define TOKEND_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* Microseconds on CLOCK_MONOTONIC. */
static inline int64_t tk_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Milliseconds on CLOCK_MONOTONIC. */
static inline int64_t tk_mono_ms(void)
{
	return tk_mono_us() / 1000;
}

/* Seconds on CLOCK_MONOTONIC, with a fraction. */
static inline double tk_mono_s(void)
{
	return (double)tk_mono_us() / 1e6;
}

/* A condition variable whose timed waits run on CLOCK_MONOTONIC (a step of
 * the wall clock neither cuts a wait short nor stretches it). 0, or an error
 * number. */
static inline int tk_cond_init_mono(pthread_cond_t *cv)
{
	pthread_condattr_t ca;
	int rc = pthread_condattr_init(&ca);

	if (rc != 0)
		return rc;
	rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (rc == 0)
		rc = pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
	return rc;
}

/* The CLOCK_MONOTONIC time `ms` from now, as pthread_cond_timedwait takes it
 * for a condition variable made by tk_cond_init_mono. */
static inline struct timespec tk_deadline_in(int64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

#endif
