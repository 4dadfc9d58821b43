/*
 * svg.h - metric line plots as hand-written SVG.  Pure: points in, text
 * out, no store and no I/O.  A plot is made in two passes over the same
 * points: the first measures them (svg_bounds_add), the second draws them
 * (svg_series_point), so a series of any length is drawn in constant
 * memory, and the document stays small: a series with more finite points
 * than the plot has pixel columns keeps, per column, only its lowest and
 * highest value.
 */
#ifndef MFS_SVG_H
#define MFS_SVG_H

#include <stddef.h>
#include <stdint.h>

struct buf;

/* Pixel columns of the plot area: a series with more finite points than
 * this is drawn by columns (svg_series_point). */
#define SVG_COLUMNS 720
/* Legend entries shown; the others are counted in one more line. */
#define SVG_LEGEND_MAX 20
/* Characters of a name the legend shows before it cuts it with an ellipsis. */
#define SVG_NAME_MAX 24

/* What the first pass learns about one series or several. */
struct svg_bounds {
	int64_t smin, smax; /* steps of the finite points */
	double vmin, vmax;  /* their values */
	uint64_t finite;    /* points that are drawn */
	uint64_t skipped;   /* NaN and infinite points, left out of the line */
};

void svg_bounds_init(struct svg_bounds *b);
void svg_bounds_add(struct svg_bounds *b, int64_t step, double value);
/* Adds what o measured to b (a plot of several series). */
void svg_bounds_merge(struct svg_bounds *b, const struct svg_bounds *o);

/* One document being written.  Fields are set by svg_begin. */
struct svg_plot {
	struct buf *out;
	double xlo, xhi; /* the x axis: steps */
	double ylo, yhi; /* the y axis: values */
	int legend;	 /* the plot has a legend */
	size_t series;	 /* series begun so far */
};

/*
 * Starts a document into out: the title (XML-escaped), the frame, "nice"
 * ticks (1, 2 or 5 times a power of ten) with grid lines and labels, for
 * the points b measured.  With legend, the canvas is wider and each series
 * gets a legend entry.  0 or -ENOMEM (as every function here).
 */
int svg_begin(struct svg_plot *p, struct buf *out, const char *title, const struct svg_bounds *b,
	      int legend);
/* Ends the document (with legend, the count of series it had no room for). */
int svg_end(struct svg_plot *p);

/* One polyline being drawn. */
struct svg_series {
	struct svg_plot *p;
	int exact;	/* every finite point is a vertex */
	int col;	/* by columns: the column being gathered, or -1 */
	uint64_t n;	/* its points so far */
	double lo, hi;	/* their lowest and highest values */
	uint64_t lo_at; /* which of them came first: the index of each */
	uint64_t hi_at;
	uint64_t vertices;     /* written so far */
	double last_x, last_y; /* the last vertex written */
};

/*
 * Starts the next series of p: its polyline in the next colour (ten
 * colours, then the same with a dash pattern), and with a legend its entry
 * named name (XML-escaped, cut at SVG_NAME_MAX characters).  finite is the
 * count of finite points the first pass found in it.
 */
int svg_series_begin(struct svg_series *s, struct svg_plot *p, uint64_t finite, const char *name);
/* A point, in the order of the first pass (by step); non-finite ones are
 * left out. */
int svg_series_point(struct svg_series *s, int64_t step, double value);
/* Ends the polyline (a lone vertex also gets a dot, to be seen). */
int svg_series_end(struct svg_series *s);

/* The step between ticks for a range shown with about target ticks: 1, 2 or
 * 5 times a power of ten. */
double svg_nice_step(double range, int target);
/* The column (0 .. SVG_COLUMNS - 1) of a step on an axis from xlo to xhi. */
int svg_column(double xlo, double xhi, int64_t step);
/* Appends s with XML's special characters as entities; control characters
 * XML cannot hold as '?'.  max_chars > 0 cuts it there with an ellipsis. */
int svg_escape(struct buf *out, const char *s, size_t max_chars);

#endif
