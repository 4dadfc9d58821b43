/*
 * clock.h - milliseconds from the two clocks the program reads: the wall
 * clock for the times MLflow stores and shows, the monotonic clock for
 * timeouts and lifetimes, which setting the wall clock must not move.
 */
#ifndef MFS_CLOCK_H
#define MFS_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ms since the epoch */
static inline int64_t clock_wall_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

/* ms since some fixed point, for intervals only */
static inline int64_t clock_mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}

#endif
