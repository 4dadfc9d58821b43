/*
 * tap.h - the smallest Test Anything Protocol emitter, for automake's
 * tap-driver.  A test file calls ok()/is_str()/is_int() as often as it likes
 * and ends main() with `return tap_done();`, which prints the plan.
 */
#ifndef MFS_TAP_H
#define MFS_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_count, tap_failed;

__attribute__((format(printf, 2, 3))) static int ok(int cond, const char *fmt, ...)
{
	va_list ap;

	tap_count++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - ", cond ? "" : "not ", tap_count);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return cond;
}

static inline void tap_diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

#define is_str(got, want, name)                                                                  \
	do {                                                                                     \
		const char *g_ = (got), *w_ = (want);                                            \
		if (!ok(g_ && w_ ? strcmp(g_, w_) == 0 : g_ == w_, "%s", name))                  \
			tap_diag("got '%s', want '%s'", g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
	} while (0)

#define is_int(got, want, name)                                          \
	do {                                                             \
		long long g_ = (long long)(got), w_ = (long long)(want); \
		if (!ok(g_ == w_, "%s", name))                           \
			tap_diag("got %lld, want %lld", g_, w_);         \
	} while (0)

static inline int tap_done(void)
{
	printf("1..%d\n", tap_count);
	return tap_failed ? 1 : 0;
}

#endif
