/*
 * unit-svg.c - the plot renderer (svg.c) fed points from arrays: the nice
 * ticks, XML escaping, the vertices of a polyline (every point, or two per
 * pixel column), non-finite points, lone points and the legend.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "svg.h"
#include "tap.h"

/* Draws series of n points each (steps[i], values[i]) as svg_begin and
 * the series calls do, into out; each series is named names[k]. */
static int draw(struct buf *out, const char *title, size_t nseries, const char *const *names,
		const int64_t *steps, const double *values, size_t n, int legend)
{
	struct svg_bounds all, one;
	struct svg_series s;
	struct svg_plot p;
	size_t k, i;
	int err;

	svg_bounds_init(&all);
	for (k = 0; k < nseries; k++) {
		svg_bounds_init(&one);
		for (i = 0; i < n; i++)
			svg_bounds_add(&one, steps[i], values[i] + (double)k);
		svg_bounds_merge(&all, &one);
	}
	err = svg_begin(&p, out, title, &all, legend);
	for (k = 0; !err && k < nseries; k++) {
		svg_bounds_init(&one);
		for (i = 0; i < n; i++)
			svg_bounds_add(&one, steps[i], values[i]);
		err = svg_series_begin(&s, &p, one.finite, names ? names[k] : NULL);
		for (i = 0; !err && i < n; i++)
			err = svg_series_point(&s, steps[i], values[i] + (double)k);
		if (!err)
			err = svg_series_end(&s);
	}
	return err ? err : svg_end(&p);
}

static size_t count(const char *hay, const char *needle)
{
	size_t n = 0;

	for (hay = strstr(hay, needle); hay; hay = strstr(hay + 1, needle))
		n++;
	return n;
}

/* Whether printf printed a NaN or an infinity anywhere ("dominant-baseline"
 * has "nan" in it). */
static int nonfinite_text(const char *doc)
{
	return count(doc, "nan") > count(doc, "dominant") || count(doc, "inf") > 0;
}

/* The vertices of the first polyline, and whether their x never goes back. */
static size_t vertices(const char *doc, int *monotonic)
{
	const char *p = strstr(doc, "points=\"");
	double last = -1, x, y;
	size_t n = 0;
	int used;

	*monotonic = 1;
	if (!p)
		return 0;
	p += 8;
	while (sscanf(p, "%lf,%lf %n", &x, &y, &used) == 2) {
		if (x < last)
			*monotonic = 0;
		last = x;
		n++;
		p += used;
	}
	return n;
}

static void test_nice_steps(void)
{
	ok(svg_nice_step(10, 5) == 2, "nice step of 10 in 5 ticks is 2");
	ok(svg_nice_step(100, 5) == 20, "nice step of 100 in 5 ticks is 20");
	ok(svg_nice_step(7, 5) == 1, "nice step of 7 in 5 ticks is 1");
	ok(svg_nice_step(30, 5) == 5, "nice step of 30 in 5 ticks is 5");
	ok(fabs(svg_nice_step(0.3, 3) - 0.1) < 1e-15, "nice step of 0.3 in 3 ticks is 0.1");
	ok(svg_nice_step(1e18, 5) == 2e17, "nice step of 1e18 in 5 ticks is 2e17");
	ok(svg_nice_step(0, 5) == 1 && svg_nice_step(NAN, 5) == 1 &&
		   svg_nice_step(INFINITY, 5) == 1,
	   "an empty or non-finite range gets step 1");
}

static void test_escape(void)
{
	struct buf b = BUF_INIT;

	svg_escape(&b, "<a&b>\"'", 0);
	is_str(buf_str(&b), "&lt;a&amp;b&gt;&quot;&apos;", "XML's five special characters");
	buf_reset(&b);
	svg_escape(&b,
		   "a\x01"
		   "b\tc",
		   0);
	is_str(buf_str(&b), "a?b\tc", "a control character XML cannot hold becomes '?'");
	buf_reset(&b);
	svg_escape(&b, "abcdef", 3);
	is_str(buf_str(&b), "abc\xe2\x80\xa6", "cut at 3 characters with an ellipsis");
	buf_reset(&b);
	svg_escape(&b, "\xc3\xa9\xc3\xa9\xc3\xa9", 2);
	is_str(buf_str(&b), "\xc3\xa9\xc3\xa9\xe2\x80\xa6", "cut between UTF-8 characters");
	buf_reset(&b);
	svg_escape(&b, "abc", 3);
	is_str(buf_str(&b), "abc", "a name of exactly the limit is not cut");
	buf_release(&b);
}

static void test_columns(void)
{
	ok(svg_column(0, 100, 0) == 0, "the first step is column 0");
	ok(svg_column(0, 100, 100) == SVG_COLUMNS - 1, "the last step is the last column");
	ok(svg_column(0, 100, 50) == 359, "the middle step: floor(50 / 100 * 719)");
	ok(svg_column(-9e18, 9e18, INT64_MAX) == SVG_COLUMNS - 1 &&
		   svg_column(-9e18, 9e18, INT64_MIN) == 0,
	   "steps past the axis stay in the plot");
}

static void test_vertices(void)
{
	static const int64_t steps[] = { 0, 1, 2, 3, 4 };
	static const double nonfinite[] = { 1, NAN, 2, INFINITY, -3 };
	struct buf b = BUF_INIT;
	int64_t *many_s = malloc(10000 * sizeof(*many_s));
	double *many_v = malloc(10000 * sizeof(*many_v));
	size_t i, n;
	int mono;

	for (i = 0; i < 10000; i++) {
		many_s[i] = (int64_t)i;
		many_v[i] = sin((double)i / 100) * 5 - 2;
	}
	is_int(draw(&b, "loss", 1, NULL, many_s, many_v, 700, 0), 0, "700 points draw");
	n = vertices(buf_str(&b), &mono);
	is_int(n, 700, "700 points (fewer than the columns): a vertex each");
	ok(mono, "700 points: x never goes back");
	is_int(count(buf_str(&b), "<polyline"), 1, "one series: one polyline");
	ok(!strstr(buf_str(&b), "non-finite"), "no note without non-finite points");

	buf_reset(&b);
	is_int(draw(&b, "loss", 1, NULL, many_s, many_v, 10000, 0), 0, "10000 points draw");
	n = vertices(buf_str(&b), &mono);
	/* The last step alone maps to the last column. */
	is_int(n, 2 * (SVG_COLUMNS - 1) + 1,
	       "10000 points: the lowest and highest of each column, one for a lone point");
	ok(mono, "10000 points: x never goes back");
	ok(b.len < 30000, "10000 points: the document stays small (%zu bytes)", b.len);

	buf_reset(&b);
	is_int(draw(&b, "x", 1, NULL, steps, nonfinite, 5, 0), 0, "non-finite points draw");
	is_int(vertices(buf_str(&b), &mono), 3, "NaN and inf are left out of the line");
	ok(strstr(buf_str(&b), "2 non-finite points not drawn") != NULL, "and counted in a note");

	buf_reset(&b);
	is_int(draw(&b, "one", 1, NULL, steps, nonfinite, 1, 0), 0, "one point draws");
	is_int(vertices(buf_str(&b), &mono), 1, "one point: one vertex");
	is_int(count(buf_str(&b), "<circle"), 1, "one point: and a dot, to be seen");

	buf_reset(&b);
	is_int(draw(&b, "nan", 1, NULL, steps, nonfinite + 1, 1, 0), 0, "only NaN draws");
	is_int(vertices(buf_str(&b), &mono), 0, "only NaN: no vertex");
	ok(strstr(buf_str(&b), "no finite points") != NULL, "only NaN: says so");
	free(many_s);
	free(many_v);
	buf_release(&b);
}

static void test_equal_and_negative(void)
{
	static const int64_t steps[] = { -10, 0, 10 };
	static const double same[] = { -7, -7, -7 };
	struct buf b = BUF_INIT, again = BUF_INIT;
	int mono;

	is_int(draw(&b, "flat", 1, NULL, steps, same, 3, 0), 0, "equal negative values draw");
	is_int(vertices(buf_str(&b), &mono), 3, "equal values: a vertex each");
	ok(strstr(buf_str(&b), ">-7</text>") != NULL, "the value is a tick label");
	ok(strstr(buf_str(&b), ">-10</text>") && strstr(buf_str(&b), ">10</text>"),
	   "negative and positive steps are tick labels");
	ok(!nonfinite_text(buf_str(&b)), "no nan or inf printed");
	draw(&again, "flat", 1, NULL, steps, same, 3, 0);
	is_str(buf_str(&again), buf_str(&b), "the same points give the same bytes");
	buf_release(&b);
	buf_release(&again);
}

static void test_huge_range(void)
{
	static const int64_t steps[] = { INT64_MIN, 0, INT64_MAX };
	static const double values[] = { -1.7e308, 0, 1.7e308 };
	struct buf b = BUF_INIT;
	int mono;

	is_int(draw(&b, "huge", 1, NULL, steps, values, 3, 0), 0, "the widest ranges draw");
	is_int(vertices(buf_str(&b), &mono), 3, "the widest ranges: a vertex each");
	ok(mono, "the widest ranges: x never goes back");
	ok(!nonfinite_text(buf_str(&b)), "the widest ranges: no coordinate overflows");
	ok(strstr(buf_str(&b), ">1.5e+308</text>") && strstr(buf_str(&b), ">-1.5e+308</text>"),
	   "the widest ranges: ticks on both sides of 0");
	buf_release(&b);
}

static void test_legend(void)
{
	static const int64_t steps[] = { 0, 1 };
	static const double values[] = { 1, 2 };
	const char *names[25];
	struct buf b = BUF_INIT;
	char name[16][25];
	size_t i;

	for (i = 0; i < 25; i++) {
		snprintf(name[i % 16], sizeof(name[0]), "run%zu", i);
		names[i] = i == 3 ? "<a&b>" : strdup(name[i % 16]);
	}
	is_int(draw(&b, "a<b", 25, names, steps, values, 2, 1), 0, "25 series draw");
	is_int(count(buf_str(&b), "<polyline"), 25, "a polyline per series");
	ok(strstr(buf_str(&b), "<title>a&lt;b</title>") != NULL, "the title is escaped");
	ok(strstr(buf_str(&b), ">&lt;a&amp;b&gt;</text>") != NULL, "a run's name is escaped");
	ok(!strstr(buf_str(&b), "<a&b>"), "no raw name is left");
	is_int(count(buf_str(&b), "stroke=\"#1f6fb4\""), 3 + 2,
	       "colours cycle: the first for series 0, 10, 20 (lines and legend)");
	ok(strstr(buf_str(&b), "stroke-dasharray=\"7 3\"") != NULL,
	   "the second round of colours is dashed");
	ok(strstr(buf_str(&b), "and 5 more") != NULL, "the legend counts what it has no room for");
	ok(strstr(buf_str(&b), "viewBox=\"0 0 1008 480\"") != NULL, "a legend widens the canvas");
	for (i = 0; i < 25; i++)
		if (i != 3)
			free((char *)names[i]);
	buf_release(&b);
}

int main(void)
{
	test_nice_steps();
	test_escape();
	test_columns();
	test_vertices();
	test_equal_and_negative();
	test_huge_range();
	test_legend();
	return tap_done();
}
