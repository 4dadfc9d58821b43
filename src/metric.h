/*
 * metric.h - metric lines and metric numbers, as text.  Pure: no I/O.
 *
 * A line written to metrics/<key> is one of
 *     VALUE
 *     STEP VALUE
 *     STEP VALUE TIMESTAMP_MS
 * with fields split by spaces, tabs or one comma (mlflowfs(1), WRITING).  history/<key>
 * prints "STEP VALUE TIMESTAMP_MS" lines that read back through the same
 * parser.  Numbers print as the shortest text that reads back to the same
 * double: "0.1", "nan", "inf", "-inf".
 */
#ifndef MFS_METRIC_H
#define MFS_METRIC_H

#include <stddef.h>
#include <stdint.h>

struct metric_point {
	double value;	   /* any double, NaN and infinities included */
	int64_t step;	   /* valid when has_step */
	int64_t timestamp; /* milliseconds since the epoch; valid when has_timestamp */
	int has_step;
	int has_timestamp;
};

/* Room for any number metric_format_value() prints, with its NUL. */
#define METRIC_VALUE_MAX 32

/*
 * Parses one line (without its newline; a trailing '\r' and surrounding
 * blanks are allowed).  Returns 0 and fills *pt, 1 for a blank line (nothing
 * to log), or -EINVAL for anything else, with *why (if not NULL) set to a
 * static phrase saying what was wrong ("value is not a number", ...);
 * -ENOMEM only for a number field too long to parse in place.
 * VALUE: a decimal or exponent number, or nan/inf/-inf (any case, also
 * "infinity"); hexadecimal floats are refused.  STEP: a signed 64-bit integer.
 * TIMESTAMP: a non-negative 64-bit integer.
 */
int metric_parse_line(const char *line, size_t len, struct metric_point *pt, const char **why);

/*
 * Writes the text with the fewest significant digits that strtod() reads
 * back to exactly v into out (size at least METRIC_VALUE_MAX) and returns
 * its length: positional while the decimal exponent is in [-4, 16) ("100",
 * "0.0001"), else exponent form ("1e+16", "1e-05").  NaN prints as "nan",
 * infinities as "inf" / "-inf", negative zero as "-0".
 */
size_t metric_format_value(double v, char *out);

/* Room for any line metric_history_line() prints, with its NUL. */
#define METRIC_HISTORY_LINE_MAX 96

/*
 * The line history/<key> shows for a point, "STEP VALUE TIMESTAMP_MS\n"
 * (a timestamp below 0, unknown, shows as 0), into out (size at least
 * METRIC_HISTORY_LINE_MAX); returns its length.  Stores measure history/ with it.
 */
size_t metric_history_line(char *out, double value, int64_t step, int64_t timestamp);

/*
 * MLflow's SQL store cannot hold NaN or infinities: it stores NaN as 0 with
 * is_nan set, and +-inf as +-DBL_MAX.  metric_to_store() gives the column
 * values for v; metric_from_store() turns them back into what the user
 * wrote, reading +-DBL_MAX as +-inf (documented in the man page).
 */
void metric_to_store(double v, double *stored, int *is_nan);
/*
 * Whether point a comes after point b in MLflow's order of "latest":
 * (step, timestamp, value), the values compared as the store keeps them.
 */
int metric_later(int64_t step_a, int64_t ts_a, double v_a, int64_t step_b, int64_t ts_b,
		 double v_b);
double metric_from_store(double stored, int is_nan);

#endif
