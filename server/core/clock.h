/*
 * clock.h - the monotonic clock, in the units each caller wants. Deadlines,
 * intervals and rate-limiter decay use it; wall-clock time (token iat/exp,
 * last-used marks) uses time(2).
 */
#ifndef TOKEND_CLOCK_H
#define TOKEND_CLOCK_H

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

#endif
