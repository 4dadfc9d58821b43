/*
 * ingest.c - files that training programs write under a run's artifacts/,
 * also logged as metrics and params: recognising them by name, parsing
 * them (tables line by line as they arrive, whole files at close), and the
 * per-file state that survives a close, so that a file appended to by
 * open-append-close goes on from its header, and a point already logged
 * from a file is never logged again (mlflowfs(1), PARSED FILES).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "art.h"
#include "clock.h"
#include "ingest.h"
#include "keychars.h"
#include "log.h"
#include "metric.h"
#include "path.h"
#include "store.h"

/* ---- names ------------------------------------------------------------- */

static int has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcasecmp(s + n - m, suffix);
}

/* Where the metric name of a dvclive plot starts in subpath, or NULL. */
static const char *dvclive_name(const char *subpath)
{
	const char *p = subpath;

	for (;;) {
		if (!strncmp(p, "plots/metrics/", 14))
			return has_suffix(p, ".tsv") && p[14] ? p + 14 : NULL;
		p = strchr(p, '/');
		if (!p)
			return NULL;
		p++;
	}
}

enum ingest_format ingest_recognise(const char *subpath)
{
	const char *base = strrchr(subpath, '/');

	base = base ? base + 1 : subpath;
	if (dvclive_name(subpath))
		return INGEST_DVCLIVE;
	if (!strcmp(base, "trainer_state.json"))
		return INGEST_TRAINER_STATE;
	if (!strcmp(base, "metrics.json"))
		return INGEST_METRICS_JSON;
	if (!strcmp(base, "hparams.yaml") || !strcmp(base, "args.yaml") ||
	    !strcmp(base, "params.yaml"))
		return INGEST_PARAMS_YAML;
	if (!strcmp(base, "config.yaml") && base - subpath >= 7 &&
	    !strncmp(base - 7, ".hydra/", 7) && (base - subpath == 7 || base[-8] == '/'))
		return INGEST_PARAMS_YAML;
	if (!strcmp(base, "config.json"))
		return INGEST_PARAMS_JSON;
	if (has_suffix(base, ".csv") || has_suffix(base, ".tsv") || has_suffix(base, ".log") ||
	    has_suffix(base, ".txt"))
		return INGEST_TABLE;
	return INGEST_NONE;
}

const char *ingest_format_name(enum ingest_format f)
{
	static const char *const names[] = {
		[INGEST_NONE] = "none",
		[INGEST_TABLE] = "table",
		[INGEST_DVCLIVE] = "dvclive",
		[INGEST_TRAINER_STATE] = "trainer_state",
		[INGEST_METRICS_JSON] = "metrics_json",
		[INGEST_PARAMS_YAML] = "params_yaml",
		[INGEST_PARAMS_JSON] = "params_json",
	};

	return (unsigned)f < sizeof(names) / sizeof(names[0]) ? names[f] : "none";
}

/* ---- keys -------------------------------------------------------------- */

static int is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Trims blanks, then one pair of quotes (and blanks inside them). */
static void trim(const char **s, size_t *len)
{
	const char *p = *s;
	size_t n = *len;

	while (n && is_blank(*p))
		p++, n--;
	while (n && is_blank(p[n - 1]))
		n--;
	if (n >= 2 && ((p[0] == '"' && p[n - 1] == '"') || (p[0] == '\'' && p[n - 1] == '\''))) {
		p++, n -= 2;
		while (n && is_blank(*p))
			p++, n--;
		while (n && is_blank(p[n - 1]))
			n--;
	}
	*s = p;
	*len = n;
}

/* The code point at s (n bytes left) and its length; a broken sequence is
 * one byte, code point 0 (then replaced). */
static unsigned utf8_at(const unsigned char *s, size_t n, size_t *used)
{
	unsigned cp;
	size_t k, i;

	*used = 1;
	if (s[0] < 0x80)
		return s[0];
	k = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 0;
	if (!k || k > n)
		return 0;
	cp = s[0] & (0x7f >> k);
	for (i = 1; i < k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	*used = k;
	return cp;
}

int ingest_key_map(const char *in, size_t len, char *out, size_t size)
{
	const unsigned char *p;
	size_t o = 0, used, i;
	long chars = 0;

	trim(&in, &len);
	p = (const unsigned char *)in;
	for (i = 0; i < len; i += used) {
		unsigned cp = utf8_at(p + i, len - i, &used);

		if (cp == '(' || cp == ')')
			continue;
		if (o + used + 1 > size)
			return -1;
		if (keychar_word(cp) || (cp < 0x80 && cp && strchr("/.- :", (int)cp))) {
			memcpy(out + o, p + i, used);
			o += used;
		} else {
			out[o++] = '_';
		}
		chars++;
	}
	out[o] = '\0';
	while (o && out[o - 1] == ' ')
		out[--o] = '\0', chars--;
	if (!o)
		return 0;
	if (chars > STORE_KEY_MAX || path_key_refused(out))
		return -1;
	return (int)o;
}

static void note(const struct ingest_sink *s, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void note(const struct ingest_sink *s, int err, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	if (!s->note)
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	s->note(s->ctx, err, why);
}

/* ---- tables ------------------------------------------------------------ */

int ingest_table_init(struct ingest_table *t, const char *fixed)
{
	memset(t, 0, sizeof(*t));
	buf_init(&t->line, 0);
	t->step_col = t->ts_col = -1;
	if (fixed && !(t->fixed = strdup(fixed)))
		return -ENOMEM;
	return 0;
}

static void drop_header(struct ingest_table *t)
{
	size_t i;

	for (i = 0; i < t->ncols; i++)
		free(t->keys[i]);
	free(t->keys);
	t->keys = NULL;
	t->ncols = 0;
	t->sep = 0;
	t->step_col = t->ts_col = -1;
}

void ingest_table_reset(struct ingest_table *t)
{
	drop_header(t);
	buf_reset(&t->line);
	t->stopped = 0;
}

void ingest_table_release(struct ingest_table *t)
{
	drop_header(t);
	buf_release(&t->line);
	free(t->fixed);
	t->fixed = NULL;
}

/*
 * The next cell of line (from *at, up to len) split on sep: a cell that
 * starts with a quote (after blanks) runs to its closing quote, so that a
 * separator inside it does not split it.  Returns 0 at the end.
 */
static int next_cell(const char *line, size_t len, size_t *at, char sep, const char **cell,
		     size_t *cell_len)
{
	size_t i = *at, start = i;
	int quoted = 0;

	if (i > len)
		return 0;
	for (; i < len; i++) {
		if (line[i] == '"')
			quoted = !quoted;
		else if (line[i] == sep && !quoted)
			break;
	}
	*cell = line + start;
	*cell_len = i - start;
	*at = i + 1;
	return 1;
}

static int cell_is(const char *cell, size_t len, const char *word)
{
	trim(&cell, &len);
	return len == strlen(word) && !strncasecmp(cell, word, len);
}

/* Reads the header; 1 if the line is no table's header. */
static int parse_header(struct ingest_table *t, const char *line, size_t len,
			const struct ingest_sink *s)
{
	static const char seps[] = { ',', '\t', ';' };
	const char *cell;
	size_t cl, at, n, i, values = 0;
	char key[INGEST_KEY_MAX];
	unsigned k;

	for (k = 0; k < sizeof(seps); k++) {
		int step = -1, epoch = -1;

		for (at = 0, n = 0; next_cell(line, len, &at, seps[k], &cell, &cl); n++) {
			if (cell_is(cell, cl, "step"))
				step = (int)n;
			else if (cell_is(cell, cl, "epoch"))
				epoch = (int)n;
		}
		if (n >= 2 && (step >= 0 || epoch >= 0)) {
			t->sep = seps[k];
			t->step_col = step >= 0 ? step : epoch;
			break;
		}
	}
	if (!t->sep)
		return 1;
	t->keys = calloc(n, sizeof(*t->keys));
	if (!t->keys) {
		t->sep = 0;
		return 1;
	}
	t->ncols = n;
	for (at = 0, i = 0; next_cell(line, len, &at, t->sep, &cell, &cl); i++)
		if ((int)i != t->step_col && cell_is(cell, cl, "timestamp"))
			t->ts_col = (int)i;
	for (i = 0; i < n; i++)
		if ((int)i != t->step_col && (int)i != t->ts_col)
			values++;
	for (at = 0, i = 0; next_cell(line, len, &at, t->sep, &cell, &cl); i++) {
		int r;

		if ((int)i == t->step_col || (int)i == t->ts_col)
			continue;
		if (t->fixed && values == 1) {
			t->keys[i] = strdup(t->fixed);
			continue;
		}
		r = ingest_key_map(cell, cl, key, sizeof(key));
		if (r < 0) {
			char shown[96];

			log_escape(shown, sizeof(shown), cell, cl);
			note(s, EINVAL, "column '%s' gives no valid MLflow key: left out", shown);
		}
		if (r > 0)
			t->keys[i] = strdup(key); /* without memory: the column is left out */
	}
	return 0;
}

/* A number cell; 0 and *v, or -1 for empty, NA and text. */
static int cell_number(const char *cell, size_t len, double *v)
{
	struct metric_point pt;

	trim(&cell, &len);
	if (!len || (len == 2 && !strncmp(cell, "NA", 2)))
		return -1;
	if (metric_parse_line(cell, len, &pt, NULL) || pt.has_step)
		return -1;
	*v = pt.value;
	return 0;
}

static void parse_row(struct ingest_table *t, const char *line, size_t len,
		      const struct ingest_sink *s)
{
	const char *cell;
	size_t cl, at, i;
	int64_t step = 0, ts = -1;
	int has_step = 0;
	double v;

	for (at = 0, i = 0; i < t->ncols && next_cell(line, len, &at, t->sep, &cell, &cl); i++) {
		if ((int)i == t->step_col) {
			/* "3.0" is step 3; a fraction is no step. */
			if (cell_number(cell, cl, &v) || v != v || v < -9e18 || v > 9e18 ||
			    v != (double)(int64_t)v)
				return;
			step = (int64_t)v;
			has_step = 1;
		} else if ((int)i == t->ts_col) {
			if (!cell_number(cell, cl, &v) && v >= 0 && v < 9e18 &&
			    v == (double)(int64_t)v)
				ts = (int64_t)v;
		}
	}
	if (!has_step)
		return;
	for (at = 0, i = 0; i < t->ncols && next_cell(line, len, &at, t->sep, &cell, &cl); i++)
		if (t->keys[i] && !cell_number(cell, cl, &v))
			s->point(s->ctx, t->keys[i], v, step, ts);
}

static int table_line(struct ingest_table *t, const char *line, size_t len,
		      const struct ingest_sink *s)
{
	if (len && line[len - 1] == '\r')
		len--;
	if (!t->sep) {
		if (parse_header(t, line, len, s)) {
			t->stopped = 1;
			return 1;
		}
		return 0;
	}
	if (len)
		parse_row(t, line, len, s);
	return 0;
}

/* Stops the table at a line longer than the bound, whether it came in one
 * write or many: a row's fate does not hang on how the kernel cut it. */
static int too_long(struct ingest_table *t, const struct ingest_sink *s)
{
	/* No header within the bound: not a table we know, nothing to say. */
	if (t->sep)
		note(s, EFBIG, "a line longer than %d bytes: the file is no longer parsed",
		     INGEST_LINE_MAX);
	t->stopped = 1;
	buf_release(&t->line);
	return 1;
}

int ingest_table_feed(struct ingest_table *t, const char *data, size_t len,
		      const struct ingest_sink *s)
{
	const char *nl;
	size_t n;

	while (!t->stopped && len) {
		nl = memchr(data, '\n', len);
		n = nl ? (size_t)(nl - data) : len;
		if (t->line.len + n > INGEST_LINE_MAX)
			return too_long(t, s);
		if (!nl || t->line.len) {
			if (buf_add(&t->line, data, n)) {
				t->stopped = 1;
				buf_release(&t->line);
				return 1;
			}
			if (!nl)
				return 0;
			if (table_line(t, t->line.data, t->line.len, s))
				return 1;
			buf_reset(&t->line);
		} else if (table_line(t, data, n, s)) {
			return 1;
		}
		len -= n + 1;
		data = nl + 1;
	}
	return t->stopped;
}

/* ---- YAML params ------------------------------------------------------- */

/* One open mapping or sequence while flattening. */
struct yframe {
	int seq;	 /* a sequence: items take their index */
	long index;	 /* the next item's index */
	size_t path_len; /* the path of the container itself */
	int want_value;	 /* a mapping: the key is read, its value comes */
};

#define YAML_DEPTH_MAX 64

/* The path of the item about to come below the top frame, in path. */
static int yaml_child(struct buf *path, struct yframe *f, const char *key, size_t key_len)
{
	char idx[24];

	buf_truncate(path, f->path_len);
	if (path->len && buf_addch(path, '.'))
		return -ENOMEM;
	if (f->seq) {
		snprintf(idx, sizeof(idx), "%ld", f->index++);
		return buf_adds(path, idx);
	}
	return buf_add(path, key, key_len);
}

static int yaml_null(const yaml_event_t *e)
{
	const char *v = (const char *)e->data.scalar.value;

	return e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	       (!e->data.scalar.length || !strcmp(v, "~") || !strcmp(v, "null") ||
		!strcmp(v, "Null") || !strcmp(v, "NULL"));
}

static void emit_param(const struct ingest_sink *s, const char *path, const char *value)
{
	char key[INGEST_KEY_MAX];
	int r = ingest_key_map(path, strlen(path), key, sizeof(key));

	if (r > 0)
		s->param(s->ctx, key, value);
	else if (r < 0)
		note(s, EINVAL, "param '%.200s' gives no valid MLflow key: left out", path);
}

static void no_param(void *ctx, const char *key, const char *value)
{
	(void)ctx;
	(void)key;
	(void)value;
}

/* One pass over the text, params and notes to s. */
static int yaml_pass(const char *text, size_t len, const struct ingest_sink *s)
{
	struct yframe stack[YAML_DEPTH_MAX];
	struct buf path = BUF_INIT, key = BUF_INIT;
	yaml_parser_t parser;
	yaml_event_t e;
	int depth = 0, err = 0, done = 0, docs = 0;

	if (!yaml_parser_initialize(&parser))
		return -ENOMEM;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	while (!done && !err) {
		struct yframe *top = depth ? &stack[depth - 1] : NULL;

		if (!yaml_parser_parse(&parser, &e)) {
			note(s, EINVAL, "not YAML: %s at line %zu",
			     parser.problem ? parser.problem : "a syntax error",
			     parser.problem_mark.line + 1);
			err = -EINVAL;
			break;
		}
		switch (e.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_DOCUMENT_START_EVENT:
			/* The first document only. */
			if (docs++)
				done = 1;
			break;
		case YAML_SCALAR_EVENT:
			if (top && !top->seq && !top->want_value) {
				buf_reset(&key);
				err = buf_add(&key, e.data.scalar.value, e.data.scalar.length);
				top->want_value = 1;
				break;
			}
			if (!top)
				break; /* a document that is one scalar: no params */
			err = yaml_child(&path, top, key.data, key.len);
			if (!err)
				emit_param(s, buf_str(&path),
					   yaml_null(&e) ? "None"
							 : (const char *)e.data.scalar.value);
			top->want_value = 0;
			break;
		case YAML_ALIAS_EVENT:
			/* A reference's value is elsewhere: left out. */
			if (top && !top->seq && !top->want_value) {
				note(s, EINVAL, "an alias as a key: the file is not parsed");
				err = -EINVAL;
			} else if (top) {
				if (top->seq)
					top->index++;
				top->want_value = 0;
			}
			break;
		case YAML_MAPPING_START_EVENT:
		case YAML_SEQUENCE_START_EVENT:
			if (depth == YAML_DEPTH_MAX) {
				note(s, EINVAL, "nested deeper than %d levels: not parsed",
				     YAML_DEPTH_MAX);
				err = -EINVAL;
				break;
			}
			if (top && !top->seq && !top->want_value) {
				note(s, EINVAL,
				     "a mapping or list as a key: the file is not parsed");
				err = -EINVAL;
				break;
			}
			if (top) {
				err = yaml_child(&path, top, key.data, key.len);
				top->want_value = 0;
			}
			stack[depth].seq = e.type == YAML_SEQUENCE_START_EVENT;
			stack[depth].index = 0;
			stack[depth].want_value = 0;
			stack[depth].path_len = path.len;
			depth++;
			break;
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			if (depth)
				depth--;
			buf_truncate(&path, depth ? stack[depth].path_len : 0);
			break;
		default:
			break;
		}
		yaml_event_delete(&e);
	}
	yaml_parser_delete(&parser);
	buf_release(&path);
	buf_release(&key);
	return err;
}

int ingest_yaml_params(const char *text, size_t len, const struct ingest_sink *s)
{
	struct ingest_sink check = *s;
	int err;

	/* A file broken halfway logs nothing, not its first half. */
	check.param = no_param;
	err = yaml_pass(text, len, &check);
	if (!err) {
		check = *s;
		check.note = NULL;
		err = yaml_pass(text, len, &check);
	}
	return err;
}

/* ---- JSON ---------------------------------------------------------------- */

static json_t *json_of(const char *text, size_t len, const struct ingest_sink *s)
{
	json_error_t je;
	json_t *root = json_loadb(text, len, 0, &je);

	if (!root)
		note(s, EINVAL, "not JSON: %s at line %d", je.text, je.line);
	return root;
}

/* Cuts path back to at bytes and adds the name of a child, after sep
 * unless it is the first name. */
static int child_path(struct buf *path, size_t at, char sep, const char *name)
{
	buf_truncate(path, at);
	if ((at && buf_addch(path, sep)) || buf_adds(path, name))
		return -ENOMEM;
	return 0;
}

static int json_params_at(json_t *v, struct buf *path, const struct ingest_sink *s, int depth)
{
	char text[METRIC_VALUE_MAX > 24 ? METRIC_VALUE_MAX : 24];
	size_t at = path->len, i;
	const char *k;
	json_t *item;
	int err = 0;

	if (depth > YAML_DEPTH_MAX)
		return 0;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		json_object_foreach(v, k, item)
		{
			err = child_path(path, at, '.', k);
			if (!err)
				err = json_params_at(item, path, s, depth + 1);
			if (err)
				break;
		}
		break;
	case JSON_ARRAY:
		json_array_foreach(v, i, item)
		{
			snprintf(text, sizeof(text), "%zu", i);
			err = child_path(path, at, '.', text);
			if (!err)
				err = json_params_at(item, path, s, depth + 1);
			if (err)
				break;
		}
		break;
	case JSON_STRING:
		if (at)
			emit_param(s, buf_str(path), json_string_value(v));
		break;
	case JSON_INTEGER:
		snprintf(text, sizeof(text), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		if (at)
			emit_param(s, buf_str(path), text);
		break;
	case JSON_REAL:
		metric_format_value(json_real_value(v), text);
		if (at)
			emit_param(s, buf_str(path), text);
		break;
	case JSON_TRUE:
	case JSON_FALSE:
	case JSON_NULL:
		if (at)
			emit_param(s, buf_str(path),
				   json_is_true(v)    ? "true"
				   : json_is_false(v) ? "false"
						      : "None");
		break;
	}
	buf_truncate(path, at);
	return err;
}

int ingest_json_params(const char *text, size_t len, const struct ingest_sink *s)
{
	struct buf path = BUF_INIT;
	json_t *root = json_of(text, len, s);
	int err;

	if (!root)
		return -EINVAL;
	err = json_params_at(root, &path, s, 0);
	json_decref(root);
	buf_release(&path);
	return err;
}

/* A JSON number as a double; -1 for anything else (booleans too). */
static int json_num(const json_t *v, double *out)
{
	if (json_is_integer(v))
		*out = (double)json_integer_value(v);
	else if (json_is_real(v))
		*out = json_real_value(v);
	else
		return -1;
	return 0;
}

static void point_named(const struct ingest_sink *s, const char *name, double v, int64_t step)
{
	char key[INGEST_KEY_MAX];
	int r = ingest_key_map(name, strlen(name), key, sizeof(key));

	if (r > 0)
		s->point(s->ctx, key, v, step, -1);
	else if (r < 0)
		note(s, EINVAL, "metric '%.200s' gives no valid MLflow key: left out", name);
}

int ingest_trainer_state(const char *text, size_t len, const struct ingest_sink *s)
{
	json_t *root = json_of(text, len, s), *hist, *entry, *v;
	const char *k;
	size_t i;
	double d;

	if (!root)
		return -EINVAL;
	hist = json_object_get(root, "log_history");
	json_array_foreach(hist, i, entry)
	{
		json_t *st = json_object_get(entry, "step");

		if (json_num(st, &d) || d != d || d < -9e18 || d > 9e18 || d != (double)(int64_t)d)
			continue;
		json_object_foreach(entry, k, v)
		{
			double x;

			if (strcmp(k, "step") && !json_num(v, &x))
				point_named(s, k, x, (int64_t)d);
		}
	}
	json_decref(root);
	return 0;
}

static int metrics_at(json_t *v, struct buf *path, int64_t step, const struct ingest_sink *s,
		      int depth)
{
	size_t at = path->len;
	const char *k;
	json_t *item;
	double x;

	if (depth > YAML_DEPTH_MAX)
		return 0;
	if (!json_num(v, &x)) {
		if (at)
			point_named(s, buf_str(path), x, step);
		return 0;
	}
	json_object_foreach(v, k, item)
	{
		if (!depth && !strcmp(k, "step"))
			continue;
		if (child_path(path, at, '/', k) || metrics_at(item, path, step, s, depth + 1))
			return -ENOMEM;
	}
	buf_truncate(path, at);
	return 0;
}

int ingest_metrics_json(const char *text, size_t len, const struct ingest_sink *s)
{
	struct buf path = BUF_INIT;
	json_t *root = json_of(text, len, s);
	int64_t step = 0;
	double d;
	int err;

	if (!root)
		return -EINVAL;
	if (!json_num(json_object_get(root, "step"), &d) && d == d && d > -9e18 && d < 9e18 &&
	    d == (double)(int64_t)d)
		step = (int64_t)d;
	err = metrics_at(root, &path, step, s, 0);
	json_decref(root);
	buf_release(&path);
	return err;
}

/* ---- points already logged --------------------------------------------- */

/* An open-addressed set of 64-bit hashes (0 stands for 1). */
struct hset {
	uint64_t *v;
	size_t n, cap;
};

static uint64_t hash_point(const char *key, int64_t step, double value)
{
	uint64_t h = 0xcbf29ce484222325u, bits;
	const unsigned char *p;
	unsigned i;

	for (p = (const unsigned char *)key; *p; p++)
		h = (h ^ *p) * 0x100000001b3u;
	if (value != value)
		value = __builtin_nan(""); /* every NaN is the same point */
	memcpy(&bits, &value, sizeof(bits));
	for (i = 0; i < 8; i++)
		h = (h ^ (((uint64_t)step >> (8 * i)) & 0xff)) * 0x100000001b3u;
	for (i = 0; i < 8; i++)
		h = (h ^ ((bits >> (8 * i)) & 0xff)) * 0x100000001b3u;
	h ^= h >> 33;
	return h ? h : 1;
}

static int hset_has(const struct hset *s, uint64_t x)
{
	size_t i;

	if (!s->cap)
		return 0;
	for (i = x & (s->cap - 1); s->v[i]; i = (i + 1) & (s->cap - 1))
		if (s->v[i] == x)
			return 1;
	return 0;
}

static int hset_add(struct hset *s, uint64_t x)
{
	size_t i;

	if ((s->n + 1) * 2 > s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64, j;
		uint64_t *v = calloc(cap, sizeof(*v));

		if (!v)
			return -ENOMEM;
		for (j = 0; j < s->cap; j++) {
			if (!s->v[j])
				continue;
			for (i = s->v[j] & (cap - 1); v[i]; i = (i + 1) & (cap - 1))
				;
			v[i] = s->v[j];
		}
		free(s->v);
		s->v = v;
		s->cap = cap;
	}
	for (i = x & (s->cap - 1); s->v[i]; i = (i + 1) & (s->cap - 1))
		if (s->v[i] == x)
			return 0;
	s->v[i] = x;
	s->n++;
	return 1;
}

/* ---- the daemon-wide state --------------------------------------------- */

/* The keys .mlflowfs/parsed shows per file, and the files it shows. */
#define KEYS_SHOWN_MAX 2048
#define FILES_SHOWN    256
/* A whole file longer than this is not read back to parse. */
#define WHOLE_MAX (64 << 20)

struct ingest_file {
	/* Protected by the registry's lock. */
	struct ingest_file *prev, *next; /* most recently parsed first */
	int refs;
	int gone;	 /* forgotten: out of the list, freed at the last put */
	struct buf keys; /* " key key ..." for .mlflowfs/parsed */
	int shown;	 /* logged something: counted and shown */
	/* Set at creation, then read-only. */
	char *run_id, *uri, *subpath;
	enum ingest_format fmt;
	/* Files whose points are copies of one another's share the run's
	 * set (shared's): trainer_state.json (each checkpoint holds the whole
	 * history), dvclive's metrics.json (the latest of each plot). */
	struct ingest_file *shared;
	pthread_mutex_t lock;
	/* Protected by lock. */
	struct ingest_table table;
	int64_t pos; /* bytes of the file the table was fed */
	int reparse; /* written out of order or cut: read back at close */
	int changed; /* a whole-file format written since its last parse */
	struct hset seen;
};

struct ingest {
	pthread_mutex_t lock;
	struct ingest_file *files; /* protected by lock */
	/* Counters for .mlflowfs/status; atomic. */
	uint64_t nfiles, npoints, nparams;
};

struct ingest *ingest_new(void)
{
	struct ingest *g = calloc(1, sizeof(*g));

	if (g)
		pthread_mutex_init(&g->lock, NULL);
	return g;
}

static void file_free(struct ingest_file *f)
{
	ingest_table_release(&f->table);
	buf_release(&f->keys);
	free(f->seen.v);
	free(f->run_id);
	free(f->uri);
	free(f->subpath);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

void ingest_free(struct ingest *g)
{
	struct ingest_file *f;

	if (!g)
		return;
	while ((f = g->files)) {
		g->files = f->next;
		file_free(f);
	}
	pthread_mutex_destroy(&g->lock);
	free(g);
}

static void unlink_file(struct ingest *g, struct ingest_file *f)
{
	if (f->prev)
		f->prev->next = f->next;
	else
		g->files = f->next;
	if (f->next)
		f->next->prev = f->prev;
	f->prev = f->next = NULL;
}

static void push_front(struct ingest *g, struct ingest_file *f)
{
	f->prev = NULL;
	f->next = g->files;
	if (f->next)
		f->next->prev = f;
	g->files = f;
}

/* The entry of (run_id, subpath), made with fmt if missing; g->lock held. */
static struct ingest_file *find_or_make(struct ingest *g, const char *run_id, const char *uri,
					const char *subpath, enum ingest_format fmt)
{
	struct ingest_file *f;
	const char *name;

	for (f = g->files; f; f = f->next)
		if (!strcmp(f->run_id, run_id) && !strcmp(f->subpath, subpath))
			return f;
	f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->fmt = fmt;
	f->run_id = strdup(run_id);
	f->uri = strdup(uri);
	f->subpath = strdup(subpath);
	name = fmt == INGEST_DVCLIVE ? dvclive_name(subpath) : NULL;
	pthread_mutex_init(&f->lock, NULL);
	buf_init(&f->keys, KEYS_SHOWN_MAX);
	if (!f->run_id || !f->uri || !f->subpath || ingest_table_init(&f->table, NULL)) {
		file_free(f);
		return NULL;
	}
	if (name) {
		/* plots/metrics/train/loss.tsv logs train/loss. */
		char key[INGEST_KEY_MAX];
		int r = ingest_key_map(name, strlen(name) - 4, key, sizeof(key));

		if (r > 0 && !(f->table.fixed = strdup(key))) {
			file_free(f);
			return NULL;
		}
	}
	/* Appended last: the list is in order of activity, newest first. */
	push_front(g, f);
	return f;
}

struct ingest_file *ingest_open(struct ingest *g, const char *run_id, const char *uri,
				const char *subpath, int trunc)
{
	enum ingest_format fmt = ingest_recognise(subpath);
	struct ingest_file *f, *sh = NULL;

	if (fmt == INGEST_NONE || !g)
		return NULL;
	pthread_mutex_lock(&g->lock);
	f = find_or_make(g, run_id, uri, subpath, fmt);
	/* The run's shared set: path "". */
	if (f &&
	    (fmt == INGEST_TRAINER_STATE || fmt == INGEST_METRICS_JSON || fmt == INGEST_DVCLIVE) &&
	    !f->shared) {
		sh = find_or_make(g, run_id, uri, "", INGEST_NONE);
		if (sh) {
			sh->refs++; /* held for as long as f lives */
			f->shared = sh;
		}
	}
	if (f)
		f->refs++;
	pthread_mutex_unlock(&g->lock);
	if (f && trunc)
		ingest_truncate(f, 0);
	return f;
}

static void put_locked(struct ingest_file *f)
{
	if (--f->refs == 0 && f->gone) {
		if (f->shared)
			put_locked(f->shared);
		file_free(f);
	}
}

static int is_table(const struct ingest_file *f)
{
	return f->fmt == INGEST_TABLE || f->fmt == INGEST_DVCLIVE;
}

void ingest_put(struct ingest *g, struct ingest_file *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&g->lock);
	/*
	 * Closed for the last time, a file that gave nothing and has nothing
	 * to go on from (a whole file, a .txt that is no table) is forgotten:
	 * the state kept is bounded by what was logged, not by how many files
	 * a cp -r of a data set brings.  With no reference left, nobody else
	 * is inside f->lock: reading the table without it is safe here.
	 */
	if (f->refs == 1 && !f->gone && f->subpath[0] && !f->shown &&
	    (!is_table(f) || f->table.stopped)) {
		unlink_file(g, f);
		f->gone = 1;
	}
	put_locked(f);
	pthread_mutex_unlock(&g->lock);
}

void ingest_forget(struct ingest *g, const char *run_id, const char *subpath)
{
	struct ingest_file *f, *next;
	size_t n = strlen(subpath);

	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	for (f = g->files; f; f = next) {
		next = f->next;
		/* The run's shared set stays: checkpoints rotate, and the
		 * next one holds the same history. */
		if (!f->subpath[0] || strcmp(f->run_id, run_id) ||
		    strncmp(f->subpath, subpath, n) || (f->subpath[n] && f->subpath[n] != '/'))
			continue;
		unlink_file(g, f);
		f->gone = 1;
		f->refs++;
		put_locked(f);
	}
	pthread_mutex_unlock(&g->lock);
}

void ingest_truncate(struct ingest_file *f, off_t size)
{
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	if (size == 0) {
		/* Rewritten from the start (Lightning adds a column so): the
		 * header comes again; what was logged stays in the set. */
		ingest_table_reset(&f->table);
		f->pos = 0;
		f->reparse = 0;
	} else if (size != f->pos) {
		f->reparse = 1;
	}
	f->changed = 1;
	pthread_mutex_unlock(&f->lock);
}

void ingest_truncate_path(struct ingest *g, const char *run_id, const char *subpath, off_t size)
{
	struct ingest_file *f;

	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	for (f = g->files; f; f = f->next)
		if (!strcmp(f->run_id, run_id) && !strcmp(f->subpath, subpath))
			break;
	if (f)
		f->refs++;
	pthread_mutex_unlock(&g->lock);
	if (f) {
		ingest_truncate(f, size);
		ingest_put(g, f);
	}
}

/* What the store sink needs while one file is parsed. */
struct store_ctx {
	struct ingest *g;
	struct ingest_file *f;
	struct hset *seen;
	struct store *s;
	struct store_batch *b;
	const char *path;
	const struct store_snapshot *snap; /* params, fetched at the first */
	int64_t now;
	int logged;
	int failed; /* a store call failed: the rest of this parse is left */
};

/* Remembers key among the file's keys for .mlflowfs/parsed. */
static void shown_key(struct store_ctx *c, const char *key)
{
	struct ingest *g = c->g;
	struct ingest_file *f = c->f;
	size_t n = strlen(key);
	const char *p;

	pthread_mutex_lock(&g->lock);
	if (!f->shown) {
		f->shown = 1;
		__atomic_add_fetch(&g->nfiles, 1, __ATOMIC_RELAXED);
	}
	for (p = f->keys.data; p && (p = strstr(p, key)); p++)
		if (p[-1] == ' ' && (p[n] == ' ' || !p[n]))
			break;
	if (!p && buf_addch(&f->keys, ' ') == 0 && buf_adds(&f->keys, key))
		buf_truncate(&f->keys, f->keys.len - 1);
	if (!f->gone && g->files != f) {
		unlink_file(g, f);
		push_front(g, f);
	}
	pthread_mutex_unlock(&g->lock);
}

static void store_point(void *ctx, const char *key, double value, int64_t step, int64_t ts)
{
	struct store_ctx *c = ctx;
	struct metric_point pt = { .value = value,
				   .step = step,
				   .timestamp = ts >= 0 ? ts : c->now,
				   .has_step = 1,
				   .has_timestamp = 1 };
	uint64_t h = hash_point(key, step, value);
	int err;

	if (c->failed || hset_has(c->seen, h))
		return;
	err = store_log_metrics(c->s, c->b, c->f->run_id, key, &pt, 1);
	if (err) {
		log_refusal(c->path, -err, "cannot log metric '%s' from the file: %s", key,
			    store_errmsg()[0] ? store_errmsg() : strerror(-err));
		c->failed = 1;
		return;
	}
	if (hset_add(c->seen, h) < 0)
		log_warn("%s: out of memory: metric '%s' may be logged again", c->path, key);
	c->logged = 1;
	__atomic_add_fetch(&c->g->npoints, 1, __ATOMIC_RELAXED);
	shown_key(c, key);
}

/* MLflow counts a value's length in characters. */
static size_t utf8_chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

static void store_param(void *ctx, const char *key, const char *value)
{
	struct store_ctx *c = ctx;
	const struct store_kv *kv;
	int err;

	if (c->failed)
		return;
	if (utf8_chars(value) > STORE_PARAM_VALUE_MAX) {
		log_refusal(c->path, EFBIG,
			    "param '%s' has more than %d characters, MLflow's limit: not logged",
			    key, STORE_PARAM_VALUE_MAX);
		return;
	}
	if (!c->snap) {
		err = store_get_snapshot(c->s, c->f->run_id, SNAP_PARAMS, &c->snap);
		if (err) {
			log_refusal(c->path, -err, "cannot read the run's params: %s",
				    store_errmsg()[0] ? store_errmsg() : strerror(-err));
			c->failed = 1;
			return;
		}
	}
	kv = store_kvs_find(c->snap->params, key);
	if (kv && !strcmp(kv->value, value))
		return;
	if (kv) {
		log_refusal(c->path, EPERM,
			    "param '%s' was logged with value '%.200s'; the file has '%.200s': "
			    "MLflow params cannot change",
			    key, kv->value, value);
		return;
	}
	err = store_log_param(c->s, c->b, c->f->run_id, key, value);
	if (err == -EPERM) {
		log_refusal(c->path, EPERM,
			    "param '%s' was logged with another value; the file has '%.200s': "
			    "MLflow params cannot change",
			    key, value);
		return;
	}
	if (err) {
		log_refusal(c->path, -err, "cannot log param '%s' from the file: %s", key,
			    store_errmsg()[0] ? store_errmsg() : strerror(-err));
		c->failed = 1;
		return;
	}
	c->logged = 1;
	__atomic_add_fetch(&c->g->nparams, 1, __ATOMIC_RELAXED);
	shown_key(c, key);
}

static void store_note(void *ctx, int err, const char *why)
{
	struct store_ctx *c = ctx;

	log_refusal(c->path, err, "%s", why);
}

static void ctx_init(struct store_ctx *c, struct ingest *g, struct ingest_file *f, struct store *s,
		     struct store_batch *b, const char *path, struct ingest_sink *sink)
{
	memset(c, 0, sizeof(*c));
	c->g = g;
	c->f = f;
	c->seen = f->shared ? &f->shared->seen : &f->seen;
	c->s = s;
	c->b = b;
	c->path = path;
	c->now = clock_wall_ms();
	sink->point = store_point;
	sink->param = store_param;
	sink->note = store_note;
	sink->ctx = c;
}

int ingest_write(struct ingest *g, struct ingest_file *f, struct store *s, struct store_batch *b,
		 const char *path, const char *data, size_t size, off_t off)
{
	struct ingest_sink sink;
	struct store_ctx c;

	pthread_mutex_lock(&f->lock);
	if (f->shared)
		pthread_mutex_lock(&f->shared->lock);
	ctx_init(&c, g, f, s, b, path, &sink);
	if (!is_table(f)) {
		f->changed = 1;
	} else if (!f->table.stopped && !f->reparse) {
		if (off == f->pos) {
			ingest_table_feed(&f->table, data, size, &sink);
			f->pos += (int64_t)size;
		} else {
			f->reparse = 1;
		}
	}
	if (f->shared)
		pthread_mutex_unlock(&f->shared->lock);
	pthread_mutex_unlock(&f->lock);
	return c.logged;
}

/* Reads the file back from its start: a table line by line, anything
 * else whole (bounded), then parsed; f->lock held. */
static int read_back(struct ingest_file *f, struct art_registry *art, const char *path,
		     const struct ingest_sink *sink)
{
	struct art_caller who = { getuid(), getgid(), 022 };
	struct art_loc loc = { f->uri, f->subpath };
	struct buf whole = BUF_INIT;
	struct art_file *rf;
	char chunk[64 * 1024];
	int64_t off = 0;
	ssize_t n;
	int err;

	err = art_open(art, &loc, O_RDONLY, 0, &who, &rf);
	if (err)
		return err == -ENOENT
			       ? 0
			       : log_refusal(path, -err, "cannot read it back to parse: %s",
					     art_errmsg()[0] ? art_errmsg() : strerror(-err));
	while ((n = art_read(rf, chunk, sizeof(chunk), off)) > 0) {
		off += n;
		if (is_table(f)) {
			/* A file that is no table is not read to its end. */
			if (ingest_table_feed(&f->table, chunk, (size_t)n, sink))
				break;
			continue;
		}
		if (whole.len + (size_t)n > WHOLE_MAX) {
			err = log_refusal(path, EFBIG, "longer than %d MiB: not parsed",
					  WHOLE_MAX >> 20);
			goto out;
		}
		err = buf_add(&whole, chunk, (size_t)n);
		if (err)
			goto out;
	}
	if (n < 0) {
		err = log_refusal(path, (int)-n, "cannot read it back to parse: %s",
				  strerror((int)-n));
		goto out;
	}
	f->pos = off;
	switch (f->fmt) {
	case INGEST_TRAINER_STATE:
		ingest_trainer_state(whole.data ? whole.data : "", whole.len, sink);
		break;
	case INGEST_METRICS_JSON:
		ingest_metrics_json(whole.data ? whole.data : "", whole.len, sink);
		break;
	case INGEST_PARAMS_YAML:
		ingest_yaml_params(whole.data ? whole.data : "", whole.len, sink);
		break;
	case INGEST_PARAMS_JSON:
		ingest_json_params(whole.data ? whole.data : "", whole.len, sink);
		break;
	default:
		break;
	}
out:
	art_close(rf);
	buf_release(&whole);
	return err;
}

int ingest_close(struct ingest *g, struct ingest_file *f, struct store *s, struct store_batch *b,
		 struct art_registry *art, const char *path)
{
	struct ingest_sink sink;
	struct store_ctx c;

	pthread_mutex_lock(&f->lock);
	ctx_init(&c, g, f, s, b, path, &sink);
	if (is_table(f) ? f->reparse : f->changed) {
		f->reparse = f->changed = 0;
		if (is_table(f)) {
			ingest_table_reset(&f->table);
			f->pos = 0;
		}
		if (f->shared)
			pthread_mutex_lock(&f->shared->lock);
		read_back(f, art, path, &sink);
		if (f->shared)
			pthread_mutex_unlock(&f->shared->lock);
	}
	pthread_mutex_unlock(&f->lock);
	if (c.snap)
		store_snapshot_put(c.snap);
	return c.logged;
}

int ingest_render(struct ingest *g, struct buf *out)
{
	struct ingest_file *f;
	int err = 0, n = 0;

	if (!g)
		return 0;
	pthread_mutex_lock(&g->lock);
	for (f = g->files; f && !err && n < FILES_SHOWN; f = f->next) {
		if (!f->shown)
			continue;
		err = buf_addf(out, "%s %s %s%s\n", f->run_id, f->subpath,
			       ingest_format_name(f->fmt), buf_str(&f->keys));
		n++;
	}
	pthread_mutex_unlock(&g->lock);
	return err;
}

int ingest_describe(struct ingest *g, struct buf *out)
{
	const struct ingest_file *f;
	size_t kept = 0;

	if (!g)
		return buf_adds(out, "parsing: off\n");
	pthread_mutex_lock(&g->lock);
	for (f = g->files; f; f = f->next)
		kept += f->subpath[0] != '\0';
	pthread_mutex_unlock(&g->lock);
	return buf_addf(out,
			"parsing: on\nparsed_files: %llu\nparsed_points: %llu\nparsed_params: "
			"%llu\nparse_states: %zu\n",
			(unsigned long long)__atomic_load_n(&g->nfiles, __ATOMIC_RELAXED),
			(unsigned long long)__atomic_load_n(&g->npoints, __ATOMIC_RELAXED),
			(unsigned long long)__atomic_load_n(&g->nparams, __ATOMIC_RELAXED), kept);
}
