/*
 * unit-metric.c - tests for metric.c: the shortest round-trip format over
 * every class of double (named values, random bit patterns, random short
 * decimals), the line parser from the table in data/metric-lines.txt plus a
 * few cases a table cannot say, and the NaN/infinity mapping of the SQL store.
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
#include "tap.h"

static int same_bits(double a, double b)
{
	return memcmp(&a, &b, sizeof(a)) == 0;
}

static double from_bits(uint64_t bits)
{
	double d;

	memcpy(&d, &bits, sizeof(d));
	return d;
}

/* A fixed seed, so that a failure is the same failure on every machine. */
static uint64_t xorshift_state = 0x9e3779b97f4a7c15u;

static uint64_t xorshift64(void)
{
	uint64_t x = xorshift_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return xorshift_state = x;
}

/*
 * Significant digits in a %g text: from the first non-zero digit of the
 * mantissa to its last digit ("1e+20": 1, "0.0005": 1, "-0": 1).
 */
/*
 * The significant digits of a printed number, without sign, point, exponent,
 * leading zeros or trailing zeros ("100" -> "1", "0.0250" -> "25").
 */
static void digit_string(const char *s, char *out, size_t size)
{
	size_t n = 0;

	for (; *s && *s != 'e' && *s != 'E'; s++) {
		if (*s < '0' || *s > '9' || (n == 0 && *s == '0'))
			continue;
		if (n + 1 < size)
			out[n++] = *s;
	}
	while (n > 0 && out[n - 1] == '0')
		n--;
	out[n] = '\0';
}

static int significant_digits(const char *s)
{
	char d[64];

	digit_string(s, d, sizeof(d));
	return d[0] ? (int)strlen(d) : 1;
}

/*
 * Checks that v formats, parses back to the same bits through the line
 * parser, and that no %g precision below the printed digit count reads back.
 * Returns NULL, or what went wrong; *digits gets the printed digit count.
 */
static const char *check_round_trip(double v, char *text, int *digits)
{
	struct metric_point pt;
	const char *why = NULL;
	char shorter[64];
	size_t len;
	int p;

	len = metric_format_value(v, text);
	*digits = 0;
	if (len != strlen(text) || len >= METRIC_VALUE_MAX)
		return "returned length is wrong";
	if (strspn(text, "0123456789.e+-naif") != len)
		return "text has an unexpected character";
	if (metric_parse_line(text, len, &pt, &why) != 0)
		return why ? why : "does not parse";
	if (pt.has_step || pt.has_timestamp)
		return "parsed as more than a value";
	if (isnan(v) ? !isnan(pt.value) : !same_bits(pt.value, v))
		return "reads back as another double";
	if (!isfinite(v))
		return NULL;
	*digits = significant_digits(text);
	for (p = 1; p < *digits && p < 17; p++) {
		snprintf(shorter, sizeof(shorter), "%.*g", p, v);
		if (same_bits(strtod(shorter, NULL), v))
			return "a shorter precision reads back too";
	}
	return NULL;
}

static void test_format_named(void)
{
	static const struct {
		double v;
		const char *text;
	} cases[] = {
		{ 0.1, "0.1" },
		{ 1e20, "1e+20" },
		{ 0.0, "0" },
		{ -0.0, "-0" },
		{ NAN, "nan" },
		{ -NAN, "nan" },
		{ INFINITY, "inf" },
		{ -INFINITY, "-inf" },
		{ 0.1 + 0.2, "0.30000000000000004" },
		{ 1.0 / 3.0, "0.3333333333333333" },
		{ 2.0 / 3.0, "0.6666666666666666" },
		{ 1e16, "1e+16" },
		{ 123456789012345678.0, "1.2345678901234568e+17" },
		{ 9007199254740993.0, "9007199254740992" },
		{ 0.5, "0.5" },
		{ -1.5, "-1.5" },
		{ 42.0, "42" },
		{ 100.0, "100" },
		{ 1e-5, "1e-05" },
		{ 0.0001, "0.0001" },
		{ 1e300, "1e+300" },
		{ 1e-300, "1e-300" },
		{ 5e-324, "5e-324" },
		{ DBL_TRUE_MIN, "5e-324" },
		{ -DBL_TRUE_MIN, "-5e-324" },
		{ DBL_MIN, "2.2250738585072014e-308" },
		{ DBL_MAX, "1.7976931348623157e+308" },
		{ -DBL_MAX, "-1.7976931348623157e+308" },
		{ DBL_EPSILON, "2.220446049250313e-16" },
		{ 1700000000000.0, "1700000000000" },
		{ 1e15, "1000000000000000" },
		{ 1e16, "1e+16" },
		{ 0.0001, "0.0001" },
		{ 0.00001, "1e-05" },
		{ 123.456, "123.456" },
	};
	char text[METRIC_VALUE_MAX];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char name[96];
		size_t len = metric_format_value(cases[i].v, text);

		snprintf(name, sizeof(name), "format %s", cases[i].text);
		is_str(text, cases[i].text, name);
		is_int(len, strlen(cases[i].text), "format length matches the text");
	}

	/* NaN payloads and the sign bit do not show. */
	metric_format_value(from_bits(0x7ff0000000000001u), text);
	is_str(text, "nan", "signalling NaN formats as nan");
	metric_format_value(from_bits(0xfff8000000000123u), text);
	is_str(text, "nan", "negative NaN with a payload formats as nan");
}

static void test_round_trip_classes(void)
{
	const double values[] = {
		0.0,
		-0.0,
		NAN,
		-NAN,
		INFINITY,
		-INFINITY,
		DBL_TRUE_MIN,
		-DBL_TRUE_MIN,
		2 * DBL_TRUE_MIN,
		DBL_MIN - DBL_TRUE_MIN, /* the largest subnormal */
		DBL_MIN / 3,
		DBL_MIN,
		-DBL_MIN,
		nextafter(DBL_MIN, 1.0),
		DBL_MAX,
		-DBL_MAX,
		nextafter(DBL_MAX, 0.0),
		DBL_EPSILON,
		1.0,
		-1.0,
		nextafter(1.0, 2.0),
		nextafter(1.0, 0.0),
		0.1,
		0.2,
		0.1 + 0.2,
		1.0 / 3.0,
		-1.0 / 3.0,
		1e16,
		1e16 + 2,
		123456789012345678.0,
		9007199254740992.0,
		9007199254740991.0,
		1e22,
		1e23,
		1e-7,
		1e-300,
		1e300,
		1.5e-310,
		5e-324,
		4.35e-310,
		299792458.0,
		3.141592653589793,
		2.718281828459045,
		0.9999999999999999,
		1e-5,
		0.0001,
		100.0,
		1700000000000.0,
		9.223372036854776e18,
		ldexp(1.0, 1023),
		ldexp(1.0, -1022),
		ldexp(1.0, -1074),
		ldexp(1.0, 53),
		ldexp(1.0, -53),
	};
	char text[METRIC_VALUE_MAX], name[128];
	size_t i;
	int digits;

	for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		const char *err = check_round_trip(values[i], text, &digits);

		snprintf(name, sizeof(name), "round trip %.17g as '%s'", values[i], text);
		if (!ok(err == NULL, "%s", name))
			tap_diag("%s", err);
	}
}

static void test_round_trip_random(void)
{
	int histogram[18] = { 0 };
	const char *err = NULL;
	char text[METRIC_VALUE_MAX];
	double failed = 0;
	int i, tested = 0, digits;

	for (i = 0; i < 100000; i++) {
		double v = from_bits(xorshift64());

		if (isnan(v))
			continue;
		tested++;
		err = check_round_trip(v, text, &digits);
		if (err) {
			failed = v;
			break;
		}
		if (digits >= 1 && digits <= 17)
			histogram[digits]++;
	}
	if (!ok(err == NULL, "%d random bit patterns round-trip with the fewest digits", tested))
		tap_diag("%.17g as '%s': %s", failed, text, err);
	tap_diag("digits needed: 15 or fewer %d, 16 %d, 17 %d",
		 tested - histogram[16] - histogram[17], histogram[16], histogram[17]);
}

/*
 * A decimal of at most 15 significant digits (DBL_DIG) always reads back as
 * typed, only renormalised by %g; the last digit is non-zero so that the
 * digit count is also the precision.
 */
static void test_round_trip_short_decimals(void)
{
	char typed[64], text[METRIC_VALUE_MAX], want[64], got[64];
	const char *why = NULL;
	struct metric_point pt;
	int i, bad = 0;

	for (i = 0; i < 20000 && !bad; i++) {
		int digits = 1 + (int)(xorshift64() % 15);
		int exponent = (int)(xorshift64() % 601) - 300;
		size_t len = 0;
		int d;

		if (xorshift64() & 1)
			typed[len++] = '-';
		for (d = 0; d < digits; d++) {
			int digit = (int)(xorshift64() % 10);

			if ((d == 0 || d == digits - 1) && digit == 0)
				digit = 1;
			typed[len++] = (char)('0' + digit);
			if (d == 0)
				typed[len++] = '.';
		}
		len += (size_t)snprintf(typed + len, sizeof(typed) - len, "e%d", exponent);
		if (metric_parse_line(typed, len, &pt, &why) != 0) {
			bad = 1;
			break;
		}
		metric_format_value(pt.value, text);
		digit_string(typed, want, sizeof(want));
		digit_string(text, got, sizeof(got));
		if (strcmp(got, want) != 0)
			bad = 1;
	}
	if (!ok(!bad, "20000 random decimals of up to 15 digits read back as typed"))
		tap_diag("typed '%s', got '%s', want digits '%s' (%s)", typed, text, want,
			 why ? why : "");
}

/* Undoes the escapes of metric-lines.txt; returns the length, or -1. */
static long unescape(const char *s, const char **rest, char *out, size_t size)
{
	size_t n = 0;

	if (*s != '"')
		return -1;
	for (s++; *s && *s != '"'; s++) {
		char c = *s;

		if (c == '\\') {
			switch (*++s) {
			case 't':
				c = '\t';
				break;
			case 'r':
				c = '\r';
				break;
			case 'n':
				c = '\n';
				break;
			case 'v':
				c = '\v';
				break;
			case '0':
				c = '\0';
				break;
			case '\\':
			case '"':
				c = *s;
				break;
			default:
				return -1;
			}
		}
		if (n == size)
			return -1;
		out[n++] = c;
	}
	if (*s != '"')
		return -1;
	*rest = s + 1;
	return (long)n;
}

static void check_table_case(const char *kind, const char *input, size_t len, const char *rest,
			     const char *label)
{
	struct metric_point pt = { 0 };
	const char *why = NULL;
	char name[512], *copy;
	int rc;

	/* An exact-size heap copy with no NUL, so a read past len is caught by ASan. */
	copy = malloc(len ? len : 1);
	if (!copy) {
		ok(0, "out of memory");
		return;
	}
	memcpy(copy, input, len);
	rc = metric_parse_line(copy, len, &pt, &why);
	free(copy);

	if (strcmp(kind, "blank") == 0) {
		snprintf(name, sizeof(name), "blank %s", label);
		is_int(rc, 1, name);
	} else if (strcmp(kind, "err") == 0) {
		snprintf(name, sizeof(name), "refuse %s", label);
		is_int(rc, -EINVAL, name);
		snprintf(name, sizeof(name), "refuse %s: why", label);
		is_str(why, rest, name);
	} else if (strcmp(kind, "ok") == 0) {
		char step[32], value[METRIC_VALUE_MAX], timestamp[32];
		char got[128];

		snprintf(name, sizeof(name), "accept %s", label);
		if (!ok(rc == 0, "%s", name)) {
			tap_diag("returned %d (%s)", rc, why ? why : "no reason");
			return;
		}
		if (pt.has_step)
			snprintf(step, sizeof(step), "%" PRId64, pt.step);
		else
			strcpy(step, "-");
		metric_format_value(pt.value, value);
		if (pt.has_timestamp)
			snprintf(timestamp, sizeof(timestamp), "%" PRId64, pt.timestamp);
		else
			strcpy(timestamp, "-");
		snprintf(got, sizeof(got), "%s %s %s", step, value, timestamp);
		snprintf(name, sizeof(name), "accept %s: fields", label);
		is_str(got, rest, name);
	} else {
		ok(0, "unknown case kind '%s'", kind);
	}
}

static void test_parse_table(void)
{
	const char *top = getenv("top_srcdir");
	char path[4096], input[512], *line = NULL;
	size_t cap = 0;
	ssize_t got;
	int cases = 0, lineno = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/tests/unit/data/metric-lines.txt", top ? top : ".");
	f = fopen(path, "r");
	if (!ok(f != NULL, "open %s", path))
		return;
	while ((got = getline(&line, &cap, f)) != -1) {
		char kind[16], label[300], words[256] = "";
		const char *rest = NULL, *p = line;
		long len;
		int n = 0;

		lineno++;
		while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
			line[--got] = '\0';
		p += strspn(p, " \t");
		if (*p == '\0' || *p == '#')
			continue;
		if (sscanf(p, "%15s %n", kind, &n) != 1 || n == 0) {
			ok(0, "metric-lines.txt:%d: cannot read the case", lineno);
			continue;
		}
		len = unescape(p + n, &rest, input, sizeof(input));
		if (len < 0) {
			ok(0, "metric-lines.txt:%d: bad INPUT", lineno);
			continue;
		}
		/* Named by the quoted INPUT as written, so a failure points at its line. */
		snprintf(label, sizeof(label), "%.*s (line %d)", (int)(rest - (p + n)), p + n,
			 lineno);
		/* The expectation, with the column padding squeezed out. */
		for (;;) {
			size_t w;

			rest += strspn(rest, " \t");
			w = strcspn(rest, " \t");
			if (w == 0)
				break;
			if (strlen(words) + 1 + w >= sizeof(words)) {
				ok(0, "metric-lines.txt:%d: expectation too long", lineno);
				break;
			}
			if (words[0])
				strcat(words, " ");
			strncat(words, rest, w);
			rest += w;
		}
		check_table_case(kind, input, (size_t)len, words, label);
		cases++;
	}
	free(line);
	fclose(f);
	ok(cases >= 100, "metric-lines.txt holds %d cases", cases);
}

static void test_parse_special(void)
{
	struct metric_point pt;
	const char *why = "unchanged";
	int rc;

	/* Only len bytes are the line. */
	memset(&pt, 0, sizeof(pt));
	rc = metric_parse_line("3 0.5 junk", 5, &pt, &why);
	is_int(rc, 0, "parse stops at len");
	is_int(pt.step, 3, "parse stops at len: step");
	ok(pt.value == 0.5, "parse stops at len: value");
	ok(why == NULL, "why is NULL after success");

	is_int(metric_parse_line(NULL, 0, &pt, NULL), 1, "NULL line of length 0 is blank");
	is_int(metric_parse_line("x", 1, &pt, NULL), -EINVAL, "why may be NULL");

	/* A refusal and a blank line leave the point as it was. */
	pt.value = 7.0;
	pt.step = 8;
	pt.timestamp = 9;
	pt.has_step = 1;
	pt.has_timestamp = 1;
	metric_parse_line("1 x", 3, &pt, &why);
	metric_parse_line("  ", 2, &pt, &why);
	ok(pt.value == 7.0 && pt.step == 8 && pt.timestamp == 9 && pt.has_step && pt.has_timestamp,
	   "refusals and blank lines do not touch the point");

	/* A value field shorter than len fills every member. */
	rc = metric_parse_line("0.25", 4, &pt, &why);
	ok(rc == 0 && pt.value == 0.25 && !pt.has_step && !pt.has_timestamp && pt.step == 0 &&
		   pt.timestamp == 0,
	   "one field clears step and timestamp");

	rc = metric_parse_line("-nan", 4, &pt, &why);
	ok(rc == 0 && isnan(pt.value) && signbit(pt.value), "-nan keeps its sign");
	rc = metric_parse_line("-0", 2, &pt, &why);
	ok(rc == 0 && pt.value == 0 && signbit(pt.value), "-0 keeps its sign");

	/* What history/ prints reads back as the same point. */
	{
		char line[128], value[METRIC_VALUE_MAX];
		int n;

		metric_format_value(-DBL_TRUE_MIN, value);
		n = snprintf(line, sizeof(line), "%d %s %lld\n", -12, value, 1700000000123LL);
		rc = metric_parse_line(line, (size_t)n - 1, &pt, &why);
		ok(rc == 0 && pt.step == -12 && same_bits(pt.value, -DBL_TRUE_MIN) &&
			   pt.timestamp == 1700000000123LL && pt.has_step && pt.has_timestamp,
		   "a history line reads back as its point");
	}

	/* A value far longer than any number needs still parses. */
	{
		static char longline[5000];
		size_t n = 0;

		longline[n++] = '0';
		longline[n++] = '.';
		while (n < sizeof(longline) - 2)
			longline[n++] = '0';
		longline[n++] = '5';
		rc = metric_parse_line(longline, n, &pt, &why);
		ok(rc == 0 && pt.value == 0.0, "a 5000-digit value underflows to 0");
	}
}

static void test_store_mapping(void)
{
	double stored, back;
	int is_nan = -1;
	int i, bad = 0;

	metric_to_store(NAN, &stored, &is_nan);
	ok(is_nan == 1 && same_bits(stored, 0.0), "to_store nan -> (0, is_nan)");
	metric_to_store(-NAN, &stored, &is_nan);
	ok(is_nan == 1 && same_bits(stored, 0.0), "to_store -nan -> (0, is_nan)");
	metric_to_store(INFINITY, &stored, &is_nan);
	ok(is_nan == 0 && stored == DBL_MAX, "to_store inf -> DBL_MAX");
	metric_to_store(-INFINITY, &stored, &is_nan);
	ok(is_nan == 0 && stored == -DBL_MAX, "to_store -inf -> -DBL_MAX");
	metric_to_store(1.5, &stored, &is_nan);
	ok(is_nan == 0 && stored == 1.5, "to_store 1.5 unchanged");
	metric_to_store(-0.0, &stored, &is_nan);
	ok(is_nan == 0 && same_bits(stored, -0.0), "to_store -0 unchanged");
	metric_to_store(DBL_MAX, &stored, &is_nan);
	ok(is_nan == 0 && stored == DBL_MAX, "to_store DBL_MAX unchanged");
	metric_to_store(DBL_TRUE_MIN, &stored, &is_nan);
	ok(is_nan == 0 && stored == DBL_TRUE_MIN, "to_store DBL_TRUE_MIN unchanged");

	ok(isnan(metric_from_store(0.0, 1)), "from_store (0, is_nan) -> nan");
	ok(isnan(metric_from_store(42.0, 1)), "from_store (42, is_nan) -> nan");
	back = metric_from_store(DBL_MAX, 0);
	ok(isinf(back) && back > 0, "from_store DBL_MAX -> inf");
	back = metric_from_store(-DBL_MAX, 0);
	ok(isinf(back) && back < 0, "from_store -DBL_MAX -> -inf");
	ok(metric_from_store(nextafter(DBL_MAX, 0), 0) == nextafter(DBL_MAX, 0),
	   "from_store just below DBL_MAX unchanged");
	ok(same_bits(metric_from_store(-0.0, 0), -0.0), "from_store -0 unchanged");
	ok(metric_from_store(0.1, 0) == 0.1, "from_store 0.1 unchanged");
	ok(metric_from_store(0.0, 0) == 0.0, "from_store 0 without is_nan unchanged");

	/* Every double but DBL_MAX itself survives the trip. */
	for (i = 0; i < 10000; i++) {
		double v = from_bits(xorshift64());

		if (fabs(v) == DBL_MAX)
			continue;
		metric_to_store(v, &stored, &is_nan);
		back = metric_from_store(stored, is_nan);
		if (isnan(v) ? !isnan(back) : !same_bits(v, back))
			bad++;
	}
	is_int(bad, 0, "10000 random doubles survive to_store and from_store");
}

int main(void)
{
	test_format_named();
	test_round_trip_classes();
	test_round_trip_random();
	test_round_trip_short_decimals();
	test_parse_table();
	test_parse_special();
	test_store_mapping();
	return tap_done();
}
