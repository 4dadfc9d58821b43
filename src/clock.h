/*
 * clock.h - milliseconds from the two clocks the program reads, and
 * deadlines: the wall clock for the times MLflow stores and shows, the
 * monotonic clock for timeouts and lifetimes, which setting the wall clock
 * must not move.
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

/* t, ms (>= 0) later. */
static inline void clock_add_ms(struct timespec *t, long ms)
{
	t->tv_sec += ms / 1000;
	t->tv_nsec += (ms % 1000) * 1000000L;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
}

/* ms from now on clock id, as pthread_cond_timedwait() takes a deadline. */
static inline void clock_deadline(clockid_t id, long ms, struct timespec *t)
{
	clock_gettime(id, t);
	clock_add_ms(t, ms);
}

#endif
