/*
 * metric.c - metric lines and metric numbers as text (metric.h): the parser
 * behind appends to metrics/<key>, the shortest round-trip number format
 * behind reads of metrics/ and history/, and the NaN/infinity mapping that
 * MLflow's SQL store needs.  Pure: no I/O, no global state, no setlocale().
 */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metric.h"

/* One field of a line: borrowed from the caller's line, not NUL-terminated. */
struct metric_field {
	const char *s;
	size_t len;
};

/* ASCII only, unlike isblank()/isdigit(), so no locale can widen the grammar. */
static int metric_is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int metric_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static size_t metric_count_digits(const char *s, size_t len)
{
	size_t n = 0;

	while (n < len && metric_is_digit(s[n]))
		n++;
	return n;
}

/* Case-insensitive comparison of a field with a lowercase word. */
static int metric_word_is(const char *s, size_t len, const char *word)
{
	size_t i;

	if (strlen(word) != len)
		return 0;
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != word[i])
			return 0;
	}
	return 1;
}

/*
 * The VALUE grammar is checked here rather than left to strtod(), which would
 * also take hexadecimal floats, "nan(chars)", leading blanks and the "1.2" of
 * "1.2.3": [+-]?(digits[.digits*]|.digits)([eE][+-]?digits)?
 */
static int metric_is_decimal(const char *s, size_t len)
{
	size_t i = 0, mantissa, exp;

	if (i < len && (s[i] == '+' || s[i] == '-'))
		i++;
	mantissa = metric_count_digits(s + i, len - i);
	i += mantissa;
	if (i < len && s[i] == '.') {
		size_t frac = metric_count_digits(s + i + 1, len - i - 1);

		i += 1 + frac;
		mantissa += frac;
	}
	if (mantissa == 0)
		return 0;
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		exp = metric_count_digits(s + i, len - i);
		if (exp == 0)
			return 0;
		i += exp;
	}
	return i == len;
}

static int metric_parse_value(const struct metric_field *f, double *v, const char **why)
{
	/* Most values fit; a long run of digits is still a valid number. */
	char small[64], *copy = small, *end;
	const char *word = f->s;
	size_t wlen = f->len;
	int negative = 0, complete;
	double d;

	if (wlen > 0 && (word[0] == '+' || word[0] == '-')) {
		negative = word[0] == '-';
		word++;
		wlen--;
	}
	if (metric_word_is(word, wlen, "nan")) {
		*v = copysign(NAN, negative ? -1.0 : 1.0);
		return 0;
	}
	if (metric_word_is(word, wlen, "inf") || metric_word_is(word, wlen, "infinity")) {
		*v = negative ? -INFINITY : INFINITY;
		return 0;
	}
	if (!metric_is_decimal(f->s, f->len)) {
		*why = "value is not a number";
		return -EINVAL;
	}

	if (f->len >= sizeof(small)) {
		copy = malloc(f->len + 1);
		if (!copy) {
			*why = "out of memory";
			return -ENOMEM;
		}
	}
	memcpy(copy, f->s, f->len);
	copy[f->len] = '\0';
	d = strtod(copy, &end);
	/* Only a locale with another decimal point could stop strtod() early. */
	complete = end == copy + f->len;
	if (copy != small)
		free(copy);
	if (!complete) {
		*why = "value is not a number";
		return -EINVAL;
	}
	/*
	 * The user wrote a finite number; storing it as inf would change what
	 * they meant.  Underflow to a subnormal or zero is only a loss of
	 * precision, as for any decimal, and is accepted.
	 */
	if (isinf(d)) {
		*why = "value out of range";
		return -EINVAL;
	}
	*v = d;
	return 0;
}

/*
 * A decimal integer with an optional sign: -EINVAL if it is not one, -ERANGE
 * if it does not fit in 64 bits.  By hand, because strtoll() needs a
 * NUL-terminated copy, skips leading blanks and takes "0x" prefixes only
 * with base 0.
 */
static int metric_parse_int(const struct metric_field *f, int64_t *out)
{
	size_t i = 0;
	int negative = 0;
	uint64_t acc = 0, limit;

	if (i < f->len && (f->s[i] == '+' || f->s[i] == '-')) {
		negative = f->s[i] == '-';
		i++;
	}
	if (i == f->len)
		return -EINVAL;
	limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < f->len; i++) {
		unsigned digit;

		if (!metric_is_digit(f->s[i]))
			return -EINVAL;
		digit = (unsigned)(f->s[i] - '0');
		if (acc > (limit - digit) / 10)
			return -ERANGE;
		acc = acc * 10 + digit;
	}
	if (!negative)
		*out = (int64_t)acc;
	else if (acc == (uint64_t)INT64_MAX + 1)
		*out = INT64_MIN;
	else
		*out = -(int64_t)acc;
	return 0;
}

/* Splits the trimmed, non-empty line into at most three fields. */
static int metric_split(const char *line, size_t start, size_t end, struct metric_field *fields,
			size_t *nfields, const char **why)
{
	size_t i = start, n = 0;

	for (;;) {
		size_t begin = i;

		while (i < end && !metric_is_blank(line[i]) && line[i] != ',')
			i++;
		/* Only a comma can leave a field empty: ",1", "1,,2", "1,". */
		if (i == begin) {
			*why = "empty field";
			return -EINVAL;
		}
		if (n == 3) {
			*why = "too many fields";
			return -EINVAL;
		}
		fields[n].s = line + begin;
		fields[n].len = i - begin;
		n++;
		if (i == end)
			break;
		while (i < end && metric_is_blank(line[i]))
			i++;
		if (i < end && line[i] == ',') {
			i++;
			while (i < end && metric_is_blank(line[i]))
				i++;
		}
	}
	*nfields = n;
	return 0;
}

int metric_parse_line(const char *line, size_t len, struct metric_point *pt, const char **why)
{
	struct metric_field fields[3];
	const struct metric_field *value;
	struct metric_point p = { 0 };
	const char *ignored;
	size_t start = 0, end = len, n;
	int err;

	if (!why)
		why = &ignored;
	*why = NULL;

	/* A line from a Windows editor or a CSV file ends in "\r". */
	if (end > 0 && line[end - 1] == '\r')
		end--;
	while (end > 0 && metric_is_blank(line[end - 1]))
		end--;
	while (start < end && metric_is_blank(line[start]))
		start++;
	if (start == end)
		return 1;

	err = metric_split(line, start, end, fields, &n, why);
	if (err)
		return err;

	value = &fields[0];
	if (n >= 2) {
		value = &fields[1];
		err = metric_parse_int(&fields[0], &p.step);
		if (err) {
			*why = err == -ERANGE ? "step out of range" : "step is not an integer";
			return -EINVAL;
		}
		p.has_step = 1;
	}
	err = metric_parse_value(value, &p.value, why);
	if (err)
		return err;
	if (n == 3) {
		err = metric_parse_int(&fields[2], &p.timestamp);
		if (err) {
			*why = err == -ERANGE ? "timestamp out of range"
					      : "timestamp is not an integer";
			return -EINVAL;
		}
		if (p.timestamp < 0) {
			*why = "timestamp is negative";
			return -EINVAL;
		}
		p.has_timestamp = 1;
	}
	*pt = p;
	return 0;
}

/* The fewest significant digits, p, for which "%.(p-1)e" reads back to v. */
static int shortest_precision(double v, char *out)
{
	int precision, digits;
	const char *p, *e;

	/*
	 * A double's shortest decimal has at most 15 digits, or else 16 or 17.
	 * With at most 15, it is v rounded to 15 digits with its trailing zeros
	 * dropped: v is within half an ulp of it, far less than half of the
	 * 15th digit.  So two or three tries find it, where counting up from
	 * one digit took up to seventeen.  Subnormals have fewer bits than
	 * that argument needs and are counted up.
	 */
	if (fabs(v) >= DBL_MIN) {
		for (precision = 15; precision <= 17; precision++) {
			double back;

			snprintf(out, METRIC_VALUE_MAX, "%.*e", precision - 1, v);
			back = strtod(out, NULL);
			if (memcmp(&back, &v, sizeof(v)) == 0)
				break;
		}
		if (precision > 15)
			return precision;
		e = strchr(out, 'e');
		for (digits = 0, p = out; p < e; p++)
			digits += *p >= '0' && *p <= '9';
		while (e > out && (e[-1] == '0' || e[-1] == '.')) {
			digits -= e[-1] == '0';
			e--;
		}
		return digits > 0 ? digits : 1;
	}
	for (precision = 1; precision < 17; precision++) {
		double back;

		snprintf(out, METRIC_VALUE_MAX, "%.*e", precision - 1, v);
		back = strtod(out, NULL);
		if (memcmp(&back, &v, sizeof(v)) == 0)
			break;
	}
	return precision;
}

size_t metric_format_value(double v, char *out)
{
	int precision, exponent, n;

	/* printf() would say "-nan" for a NaN with its sign bit set. */
	if (!isfinite(v)) {
		const char *word = isnan(v) ? "nan" : v < 0 ? "-inf" : "inf";
		size_t len = strlen(word);

		memcpy(out, word, len + 1);
		return len;
	}
	/*
	 * 17 significant digits always read back, but most values need fewer
	 * and "0.1" reads better than "0.10000000000000001".  Bits are compared
	 * rather than values so that -0 does not print as "0".
	 */
	precision = shortest_precision(v, out);
	n = snprintf(out, METRIC_VALUE_MAX, "%.*e", precision - 1, v);
	/*
	 * Those digits, written out in full while the exponent is moderate (as
	 * Python's repr does): "100" and "1700000000000" rather than "1e+02"
	 * and "1.7e+12".  Very large or small values keep the exponent form.
	 */
	exponent = atoi(strchr(out, 'e') + 1);
	if (exponent >= -4 && exponent < 16) {
		int decimals = precision - 1 - exponent;

		n = snprintf(out, METRIC_VALUE_MAX, "%.*f", decimals > 0 ? decimals : 0, v);
	}
	return (size_t)n;
}

void metric_to_store(double v, double *stored, int *is_nan)
{
	*is_nan = 0;
	if (isnan(v)) {
		*stored = 0.0;
		*is_nan = 1;
	} else if (isinf(v)) {
		*stored = v < 0 ? -DBL_MAX : DBL_MAX;
	} else {
		*stored = v;
	}
}

double metric_from_store(double stored, int is_nan)
{
	if (is_nan)
		return NAN;
	/* What MLflow wrote for an infinity; a logged DBL_MAX reads back as inf too. */
	if (stored == DBL_MAX)
		return INFINITY;
	if (stored == -DBL_MAX)
		return -INFINITY;
	return stored;
}

size_t metric_history_line(char *out, double value, int64_t step, int64_t timestamp)
{
	char text[METRIC_VALUE_MAX];
	int n;

	metric_format_value(value, text);
	n = snprintf(out, METRIC_HISTORY_LINE_MAX, "%" PRId64 " %s %" PRId64 "\n", step, text,
		     timestamp < 0 ? 0 : timestamp);
	return (size_t)n;
}

int metric_later(int64_t step_a, int64_t ts_a, double v_a, int64_t step_b, int64_t ts_b, double v_b)
{
	double sa, sb;
	int nan_a, nan_b;

	if (step_a != step_b)
		return step_a > step_b;
	if (ts_a != ts_b)
		return ts_a > ts_b;
	metric_to_store(v_a, &sa, &nan_a);
	metric_to_store(v_b, &sb, &nan_b);
	return sa > sb;
}
