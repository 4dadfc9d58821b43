/*
 * svg.c - draws metric line plots as SVG text (svg.h): the layout, the
 * ticks, the colours, and the reduction of a long series to two vertices
 * per pixel column.  Every number is printed with a fixed number of
 * decimals, so the same points always give the same bytes.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "svg.h"

/* The canvas: the plot area is SVG_COLUMNS pixels wide, one per column. */
#define LEFT	 72
#define TOP	 44
#define PLOT_H	 380
#define BOTTOM	 56
#define RIGHT	 16
#define LEGEND_W 200
#define HEIGHT	 (TOP + PLOT_H + BOTTOM)
#define LINE_H	 18 /* a legend entry */

/* Ten colours far enough apart to tell lines apart on white. */
static const char *const colours[] = { "#1f6fb4", "#e8710a", "#2a9d3a", "#d03b3b", "#8757c0",
				       "#8c5a3c", "#d65fb0", "#6b6b6b", "#a8a81e", "#18a9b8" };
#define NCOLOURS (sizeof(colours) / sizeof(colours[0]))
/* Each later round of the colours gets a dash pattern of its own. */
static const char *const dashes[] = { NULL, "7 3", "2 2", "9 3 2 3" };
#define NDASHES (sizeof(dashes) / sizeof(dashes[0]))

void svg_bounds_init(struct svg_bounds *b)
{
	memset(b, 0, sizeof(*b));
}

void svg_bounds_add(struct svg_bounds *b, int64_t step, double value)
{
	if (!isfinite(value)) {
		b->skipped++;
		return;
	}
	if (!b->finite || step < b->smin)
		b->smin = step;
	if (!b->finite || step > b->smax)
		b->smax = step;
	if (!b->finite || value < b->vmin)
		b->vmin = value;
	if (!b->finite || value > b->vmax)
		b->vmax = value;
	b->finite++;
}

void svg_bounds_merge(struct svg_bounds *b, const struct svg_bounds *o)
{
	b->skipped += o->skipped;
	if (!o->finite)
		return;
	if (!b->finite) {
		*b =
			(struct svg_bounds){ o->smin, o->smax,	 o->vmin,
					     o->vmax, o->finite, b->skipped };
		return;
	}
	b->smin = o->smin < b->smin ? o->smin : b->smin;
	b->smax = o->smax > b->smax ? o->smax : b->smax;
	b->vmin = o->vmin < b->vmin ? o->vmin : b->vmin;
	b->vmax = o->vmax > b->vmax ? o->vmax : b->vmax;
	b->finite += o->finite;
}

double svg_nice_step(double range, int target)
{
	double raw = range / target, mag, f;

	if (!(raw > 0) || !isfinite(raw))
		return 1;
	mag = pow(10, floor(log10(raw)));
	f = raw / mag;
	return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
}

int svg_column(double xlo, double xhi, int64_t step)
{
	/* The formula mlflowfs(1) gives, operation for operation, so that a
	 * reader can count the vertices of a plot. */
	double c = floor(((double)step - xlo) / (xhi - xlo) * (SVG_COLUMNS - 1));

	return c < 0 ? 0 : c > SVG_COLUMNS - 1 ? SVG_COLUMNS - 1 : (int)c;
}

int svg_escape(struct buf *out, const char *s, size_t max_chars)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t chars = 0;
	int err = 0;

	for (; !err && *p; p++) {
		/* A character starts at every byte but a UTF-8 continuation. */
		if ((*p & 0xc0) != 0x80 && max_chars && chars++ == max_chars)
			return buf_adds(out, "\xe2\x80\xa6");
		switch (*p) {
		case '&':
			err = buf_adds(out, "&amp;");
			break;
		case '<':
			err = buf_adds(out, "&lt;");
			break;
		case '>':
			err = buf_adds(out, "&gt;");
			break;
		case '"':
			err = buf_adds(out, "&quot;");
			break;
		case '\'':
			err = buf_adds(out, "&apos;");
			break;
		default:
			err = buf_addch(out, *p < 0x20 && *p != '\t' ? '?' : (char)*p);
		}
	}
	return err;
}

static int width_of(const struct svg_plot *p)
{
	return LEFT + SVG_COLUMNS + RIGHT + (p->legend ? LEGEND_W : 0);
}

static double x_of(const struct svg_plot *p, double step)
{
	return LEFT + 0.5 + (step - p->xlo) / (p->xhi - p->xlo) * (SVG_COLUMNS - 1);
}

static double y_of(const struct svg_plot *p, double v)
{
	/* Halves, so that a range of the largest doubles does not overflow. */
	return TOP + (p->yhi * 0.5 - v * 0.5) / (p->yhi * 0.5 - p->ylo * 0.5) * PLOT_H;
}

/* A tick label: the tick rounded to its step, so 0.1 * 3 prints as 0.3. */
static int tick_label(struct buf *out, double v, double step)
{
	if (isfinite(step) && step > 0) {
		v = round(v / step) * step;
		if (fabs(v) < step * 1e-6)
			v = 0;
	}
	return buf_addf(out, "%.6g", v);
}

/* The ticks of one axis from lo to hi, at multiples of a nice step. */
static int axis_ticks(struct svg_plot *p, int vertical, double lo, double hi, double min_step)
{
	double step = svg_nice_step(hi * 0.5 - lo * 0.5, 3), k0, t;
	int err = 0, i;

	/* Halved above (overflow), so the step is for about six ticks. */
	if (step < min_step)
		step = min_step;
	/* Ticks as multiples of the step: i * step alone could overflow. */
	k0 = ceil(lo / step);
	if (!isfinite(k0 * step))
		return 0;
	for (i = 0; !err && i < 24; i++) {
		t = (k0 + i) * step;
		if (t > hi + step * 1e-9)
			break;
		if (vertical) {
			double y = y_of(p, t);

			err = buf_addf(p->out,
				       "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" "
				       "stroke=\"#e4e4e4\"/>\n<text x=\"%d\" y=\"%.1f\" "
				       "text-anchor=\"end\" dominant-baseline=\"middle\">",
				       LEFT, y, LEFT + SVG_COLUMNS, y, LEFT - 6, y);
		} else {
			double x = x_of(p, t);

			err = buf_addf(p->out,
				       "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" "
				       "stroke=\"#e4e4e4\"/>\n<text x=\"%.1f\" y=\"%d\" "
				       "text-anchor=\"middle\">",
				       x, TOP, x, TOP + PLOT_H, x, TOP + PLOT_H + 18);
		}
		if (!err)
			err = tick_label(p->out, t, step);
		if (!err)
			err = buf_adds(p->out, "</text>\n");
	}
	return err;
}

/* The axes' ranges: the steps as they are, the values widened to ticks. */
static void set_ranges(struct svg_plot *p, const struct svg_bounds *b)
{
	double vmin = b->finite ? b->vmin : 0, vmax = b->finite ? b->vmax : 1, d, step;

	p->xlo = (double)b->smin;
	p->xhi = (double)b->smax;
	if (!b->finite || p->xlo == p->xhi) {
		/* One step: in the middle. */
		p->xlo -= 1;
		p->xhi += 1;
	}
	if (vmin == vmax) {
		d = vmin != 0 ? fabs(vmin) * 0.1 : 1;
		vmin -= d;
		vmax += d;
	}
	step = svg_nice_step(vmax * 0.5 - vmin * 0.5, 3);
	p->ylo = floor(vmin / step) * step;
	p->yhi = ceil(vmax / step) * step;
	if (!isfinite(p->ylo) || !isfinite(p->yhi) || p->ylo >= p->yhi) {
		p->ylo = vmin;
		p->yhi = vmax;
	}
}

int svg_begin(struct svg_plot *p, struct buf *out, const char *title, const struct svg_bounds *b,
	      int legend)
{
	int err, w;

	memset(p, 0, sizeof(*p));
	p->out = out;
	p->legend = legend;
	set_ranges(p, b);
	w = width_of(p);
	err = buf_addf(out,
		       "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
		       "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		       "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\" "
		       "fill=\"#333333\">\n<title>",
		       w, HEIGHT, w, HEIGHT);
	if (!err)
		err = svg_escape(out, title, 0);
	if (!err)
		err = buf_addf(out,
			       "</title>\n<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n"
			       "<text x=\"%d\" y=\"26\" text-anchor=\"middle\" font-size=\"16\" "
			       "font-weight=\"bold\">",
			       w, HEIGHT, LEFT + SVG_COLUMNS / 2);
	if (!err)
		err = svg_escape(out, title, 0);
	if (!err)
		err = buf_adds(out, "</text>\n");
	if (!err)
		err = axis_ticks(p, 0, p->xlo, p->xhi, 1);
	if (!err)
		err = axis_ticks(p, 1, p->ylo, p->yhi, 0);
	if (!err)
		err = buf_addf(out,
			       "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" "
			       "stroke=\"#555555\"/>\n<text x=\"%d\" y=\"%d\" "
			       "text-anchor=\"middle\">step</text>\n",
			       LEFT, TOP, SVG_COLUMNS, PLOT_H, LEFT + SVG_COLUMNS / 2,
			       TOP + PLOT_H + 42);
	if (!err && b->skipped)
		err = buf_addf(out,
			       "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" font-size=\"11\" "
			       "fill=\"#888888\">%llu non-finite point%s not drawn</text>\n",
			       LEFT + SVG_COLUMNS, TOP - 6, (unsigned long long)b->skipped,
			       b->skipped == 1 ? "" : "s");
	if (!err && !b->finite)
		err = buf_addf(out,
			       "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" "
			       "fill=\"#888888\">no finite points</text>\n",
			       LEFT + SVG_COLUMNS / 2, TOP + PLOT_H / 2);
	return err;
}

int svg_end(struct svg_plot *p)
{
	int err = 0;

	if (p->legend && p->series > SVG_LEGEND_MAX)
		err = buf_addf(p->out,
			       "<text x=\"%d\" y=\"%d\" fill=\"#888888\">and %zu more</text>\n",
			       LEFT + SVG_COLUMNS + RIGHT + 4, TOP + 12 + SVG_LEGEND_MAX * LINE_H,
			       p->series - SVG_LEGEND_MAX);
	return err ? err : buf_adds(p->out, "</svg>\n");
}

/* The stroke of series i: its colour, and past the first round a dash. */
static int stroke(struct buf *out, size_t i)
{
	const char *dash = dashes[(i / NCOLOURS) % NDASHES];
	int err = buf_addf(out, "stroke=\"%s\" stroke-width=\"1.5\"", colours[i % NCOLOURS]);

	if (!err && dash)
		err = buf_addf(out, " stroke-dasharray=\"%s\"", dash);
	return err;
}

static int legend_entry(struct svg_plot *p, size_t i, const char *name)
{
	int x = LEFT + SVG_COLUMNS + RIGHT + 4, y = TOP + 12 + (int)i * LINE_H;
	int err = buf_addf(p->out, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" ", x, y - 4,
			   x + 24, y - 4);

	if (!err)
		err = stroke(p->out, i);
	if (!err)
		err = buf_addf(p->out, "/>\n<text x=\"%d\" y=\"%d\">", x + 30, y);
	if (!err)
		err = svg_escape(p->out, name, SVG_NAME_MAX);
	return err ? err : buf_adds(p->out, "</text>\n");
}

int svg_series_begin(struct svg_series *s, struct svg_plot *p, uint64_t finite, const char *name)
{
	size_t i = p->series++;
	int err = 0;

	memset(s, 0, sizeof(*s));
	s->p = p;
	s->exact = finite <= SVG_COLUMNS;
	s->col = -1;
	if (p->legend && i < SVG_LEGEND_MAX)
		err = legend_entry(p, i, name ? name : "");
	if (!err)
		err = buf_adds(p->out, "<polyline fill=\"none\" stroke-linejoin=\"round\" ");
	if (!err)
		err = stroke(p->out, i);
	return err ? err : buf_adds(p->out, " points=\"");
}

static int vertex(struct svg_series *s, double x, double v)
{
	s->last_x = x;
	s->last_y = y_of(s->p, v);
	s->vertices++;
	return buf_addf(s->p->out, "%.1f,%.1f ", x, s->last_y);
}

/* The gathered column as its vertices: one for a lone point, else the
 * lowest and the highest value in the order they came. */
static int column_flush(struct svg_series *s)
{
	double x = LEFT + 0.5 + s->col;
	int err;

	if (s->col < 0)
		return 0;
	s->col = -1;
	if (s->n == 1)
		return vertex(s, x, s->lo);
	err = vertex(s, x, s->lo_at <= s->hi_at ? s->lo : s->hi);
	return err ? err : vertex(s, x, s->lo_at <= s->hi_at ? s->hi : s->lo);
}

int svg_series_point(struct svg_series *s, int64_t step, double value)
{
	int col, err;

	if (!isfinite(value))
		return 0;
	if (s->exact)
		return vertex(s, x_of(s->p, (double)step), value);
	col = svg_column(s->p->xlo, s->p->xhi, step);
	if (col != s->col) {
		err = column_flush(s);
		if (err)
			return err;
		s->col = col;
		s->n = 0;
		s->lo = s->hi = value;
		s->lo_at = s->hi_at = 0;
	}
	/* Strictly, so the first of equal values is the one kept. */
	if (value < s->lo) {
		s->lo = value;
		s->lo_at = s->n;
	}
	if (value > s->hi) {
		s->hi = value;
		s->hi_at = s->n;
	}
	s->n++;
	return 0;
}

int svg_series_end(struct svg_series *s)
{
	int err = s->exact ? 0 : column_flush(s);

	if (!err)
		err = buf_adds(s->p->out, "\"/>\n");
	if (!err && s->vertices == 1)
		err = buf_addf(s->p->out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
			       s->last_x, s->last_y, colours[(s->p->series - 1) % NCOLOURS]);
	return err;
}
