/*
 * content.c - renders the read-only virtual files and keeps renderings in
 * blobs.  JSON is written by hand rather than through jansson so numbers use
 * metric_format_value()'s shortest form ("0.1", not 0.10000000000000001).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <limits.h>

#include "content.h"
#include "log.h"
#include "metric.h"
#include "store.h"
#include "svg.h"

void blob_init(struct blob *b)
{
	buf_init(&b->mem, 0);
	b->fd = -1;
	b->size = 0;
}

void blob_release(struct blob *b)
{
	buf_release(&b->mem);
	if (b->fd >= 0)
		close(b->fd);
	b->fd = -1;
	b->size = 0;
}

/* An unlinked file in dir, or -errno.  O_TMPFILE where the file system
 * has it, else a named file removed at once. */
static int tmpfile_in(const char *dir)
{
	char path[PATH_MAX];
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);

	if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR))
		return fd >= 0 ? fd : -errno;
	if (snprintf(path, sizeof(path), "%s/mlflowfs-XXXXXX", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	unlink(path);
	return fd;
}

int content_tmpfile(void)
{
	const char *env = getenv("TMPDIR");
	const char *dirs[] = { env && env[0] ? env : NULL, "/var/tmp", "/tmp" };
	size_t i;
	int fd = -EIO;

	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]) && fd < 0; i++) {
		if (!dirs[i])
			continue;
		fd = tmpfile_in(dirs[i]);
		if (fd < 0)
			log_warn("cannot make a temporary file in '%s': %s", dirs[i],
				 strerror(-fd));
	}
	return fd < 0 ? -EIO : fd;
}

/* Moves the content to a temporary file (content_tmpfile). */
static int blob_spill(struct blob *b)
{
	ssize_t n;
	int fd = content_tmpfile();

	if (fd < 0)
		return fd;
	b->fd = fd;
	n = pwrite(b->fd, b->mem.data, b->mem.len, 0);
	if (n != (ssize_t)b->mem.len) {
		int err = n < 0 ? -errno : -EIO;

		close(b->fd);
		b->fd = -1;
		return err;
	}
	buf_release(&b->mem);
	return 0;
}

int blob_add(struct blob *b, const void *data, size_t len)
{
	int err;

	if (b->fd < 0 && b->mem.len + len > BLOB_MEM_MAX) {
		err = blob_spill(b);
		if (err)
			return err;
	}
	if (b->fd >= 0) {
		ssize_t n = pwrite(b->fd, data, len, b->size);

		if (n != (ssize_t)len)
			return n < 0 ? -errno : -EIO;
	} else {
		err = buf_add(&b->mem, data, len);
		if (err)
			return err;
	}
	b->size += (off_t)len;
	return 0;
}

ssize_t blob_read(struct blob *b, char *out, size_t size, off_t off)
{
	ssize_t n;

	if (off >= b->size)
		return 0;
	if ((off_t)size > b->size - off)
		size = (size_t)(b->size - off);
	if (b->fd < 0) {
		memcpy(out, b->mem.data + off, size);
		return (ssize_t)size;
	}
	n = pread(b->fd, out, size, off);
	return n < 0 ? -errno : n;
}

int content_metric(struct buf *out, double value)
{
	char text[METRIC_VALUE_MAX];
	size_t n = metric_format_value(value, text);
	int err = buf_add(out, text, n);

	return err ? err : buf_addch(out, '\n');
}

int content_json_string(struct buf *out, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	int err = buf_addch(out, '"');

	for (; !err && *p; p++) {
		switch (*p) {
		case '"':
			err = buf_adds(out, "\\\"");
			break;
		case '\\':
			err = buf_adds(out, "\\\\");
			break;
		case '\n':
			err = buf_adds(out, "\\n");
			break;
		case '\r':
			err = buf_adds(out, "\\r");
			break;
		case '\t':
			err = buf_adds(out, "\\t");
			break;
		default:
			if (*p < 0x20)
				err = buf_addf(out, "\\u%04x", *p);
			else
				err = buf_addch(out, (char)*p);
		}
	}
	return err ? err : buf_addch(out, '"');
}

/* A JSON number, or MLflow's strings for what JSON cannot hold. */
static int json_number(struct buf *out, double v)
{
	char text[METRIC_VALUE_MAX];

	if (isnan(v))
		return buf_adds(out, "\"NaN\"");
	if (isinf(v))
		return buf_adds(out, v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
	metric_format_value(v, text);
	return buf_adds(out, text);
}

static int json_time(struct buf *out, int64_t t)
{
	return t < 0 ? buf_adds(out, "null") : buf_addf(out, "%" PRId64, t);
}

/* Writes "  "*depth + "\"key\": ". */
static int json_key(struct buf *out, int depth, const char *key)
{
	int err = 0, i;

	for (i = 0; i < depth && !err; i++)
		err = buf_adds(out, "  ");
	if (!err)
		err = content_json_string(out, key);
	return err ? err : buf_adds(out, ": ");
}

struct kv_json {
	struct buf *out;
	int depth;
	int count;
};

static int kv_json_add(struct kv_json *j, const struct store_kv *kv)
{
	int err = buf_adds(j->out, j->count++ ? ",\n" : "\n");

	if (!err)
		err = json_key(j->out, j->depth, kv->key);
	if (!err)
		err = kv->value ? content_json_string(j->out, kv->value)
				: json_number(j->out, kv->num);
	return err;
}

static int kv_json_cb(void *ctx, const struct store_kv *kv)
{
	return kv_json_add(ctx, kv);
}

/* "key": {sorted key/value pairs of a section}, from kvs or else the store */
static int json_section(struct store *s, const struct store_kvs *kvs, struct buf *out, int depth,
			const char *name, enum store_section sec, const struct store_ref *ref)
{
	struct kv_json j = { out, depth + 1, 0 };
	int err = json_key(out, depth, name), i;
	size_t k;

	if (!err)
		err = buf_addch(out, '{');
	if (!err && kvs)
		for (k = 0; !err && k < kvs->n; k++)
			err = kv_json_add(&j, &kvs->v[k]);
	else if (!err)
		err = store_list_kv(s, sec, ref, NULL, kv_json_cb, &j);
	if (!err && j.count) {
		err = buf_addch(out, '\n');
		for (i = 0; i < depth && !err; i++)
			err = buf_adds(out, "  ");
	}
	return err ? err : buf_addch(out, '}');
}

static int json_string_field(struct buf *out, int depth, const char *key, const char *value,
			     int last)
{
	int err = json_key(out, depth, key);

	if (!err)
		err = value ? content_json_string(out, value) : buf_adds(out, "null");
	return err ? err : buf_adds(out, last ? "\n" : ",\n");
}

static int json_time_field(struct buf *out, int depth, const char *key, int64_t t, int last)
{
	int err = json_key(out, depth, key);

	if (!err)
		err = json_time(out, t);
	return err ? err : buf_adds(out, last ? "\n" : ",\n");
}

int content_run_json(const struct store_snapshot *snap, struct buf *out)
{
	const struct store_run *run = &snap->run;
	int err;

	err = buf_adds(out, "{\n  \"data\": {\n");
	if (!err)
		err = json_section(NULL, snap->metrics, out, 2, "metrics", SEC_METRICS, NULL);
	if (!err)
		err = buf_adds(out, ",\n");
	if (!err)
		err = json_section(NULL, snap->params, out, 2, "params", SEC_PARAMS, NULL);
	if (!err)
		err = buf_adds(out, ",\n");
	if (!err)
		err = json_section(NULL, snap->tags, out, 2, "tags", SEC_RUN_TAGS, NULL);
	if (!err)
		err = buf_adds(out, "\n  },\n  \"info\": {\n");
	if (!err)
		err = json_string_field(out, 2, "artifact_uri", run->artifact_uri, 0);
	if (!err)
		err = json_time_field(out, 2, "end_time", run->end_time, 0);
	if (!err)
		err = json_string_field(out, 2, "experiment_id", run->experiment_id, 0);
	if (!err)
		err = json_string_field(out, 2, "lifecycle_stage",
					run->deleted ? "deleted" : "active", 0);
	if (!err)
		err = json_string_field(out, 2, "run_id", run->run_id, 0);
	if (!err)
		err = json_string_field(out, 2, "run_name", run->name, 0);
	if (!err)
		err = json_time_field(out, 2, "start_time", run->start_time, 0);
	if (!err)
		err = json_string_field(out, 2, "status", run->status, 0);
	if (!err)
		err = json_string_field(out, 2, "user_id", run->user_id, 1);
	if (!err)
		err = buf_adds(out, "  }\n}\n");
	return err;
}

int content_experiment_json(struct store *s, const struct store_experiment *e, struct buf *out)
{
	struct store_ref ref = { .experiment_id = e->id };
	int err;

	err = buf_adds(out, "{\n");
	if (!err)
		err = json_string_field(out, 1, "artifact_location", e->artifact_location, 0);
	if (!err)
		err = json_time_field(out, 1, "creation_time", e->creation_time, 0);
	if (!err)
		err = json_string_field(out, 1, "experiment_id", e->id, 0);
	if (!err)
		err = json_time_field(out, 1, "last_update_time", e->last_update_time, 0);
	if (!err)
		err = json_string_field(out, 1, "lifecycle_stage",
					e->deleted ? "deleted" : "active", 0);
	if (!err)
		err = json_string_field(out, 1, "name", e->name, 0);
	if (!err)
		err = json_section(s, NULL, out, 1, "tags", SEC_EXP_TAGS, &ref);
	if (!err)
		err = buf_adds(out, "\n}\n");
	return err;
}

/* Called back while the store reads the points: it must not call the store. */
static int history_cb(void *ctx, double value, int64_t step, int64_t timestamp)
{
	char line[METRIC_HISTORY_LINE_MAX];
	size_t n = metric_history_line(line, value, step, timestamp);

	return blob_add(ctx, line, n);
}

int content_history(struct store *s, const char *run_id, const char *key, struct blob *out)
{
	return store_metric_history(s, run_id, key, history_cb, out);
}

/* ---- the runs table (.runs.csv, .runs.tsv) ------------------------------ */

/* The sorted, distinct keys of a section over every run of a table. */
struct keyset {
	char **v;
	size_t n, cap;
};

static int keyset_add(struct keyset *k, const char *key)
{
	size_t lo = 0, hi = k->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(k->v[mid], key);

		if (!c)
			return 0;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (k->n == k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 32;
		char **v = realloc(k->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		k->v = v;
		k->cap = cap;
	}
	memmove(k->v + lo + 1, k->v + lo, (k->n - lo) * sizeof(*k->v));
	if (!(k->v[lo] = strdup(key)))
		return -ENOMEM;
	k->n++;
	return 0;
}

static void keyset_release(struct keyset *k)
{
	size_t i;

	for (i = 0; i < k->n; i++)
		free(k->v[i]);
	free(k->v);
}

/* Both tables are made in one walk over the runs: a field goes to each. */
struct table {
	struct store *s;
	struct keyset params, metrics;
	struct buf line[2]; /* the row being made: CSV, TSV */
	struct blob *out[2];
};

/* A field of a row: a CSV field quoted when it must be (RFC 4180); in a
 * TSV, tabs and line ends become spaces, since the format has no quoting. */
static int table_field(struct table *t, const char *v, int first)
{
	struct buf *csv = &t->line[0], *tsv = &t->line[1];
	int err = first ? 0 : buf_addch(csv, ',');
	const char *p;

	if (!err && !first)
		err = buf_addch(tsv, '\t');
	if (err || !v)
		return err;
	for (p = v; !err && *p; p++)
		err = buf_addch(tsv, *p == '\t' || *p == '\n' || *p == '\r' ? ' ' : *p);
	if (err || !strpbrk(v, ",\"\r\n"))
		return err ? err : buf_adds(csv, v);
	err = buf_addch(csv, '"');
	for (p = v; !err && *p; p++)
		err = *p == '"' ? buf_adds(csv, "\"\"") : buf_addch(csv, *p);
	return err ? err : buf_addch(csv, '"');
}

static int table_end_line(struct table *t)
{
	int err = 0, i;

	for (i = 0; i < 2 && !err; i++) {
		err = buf_addch(&t->line[i], '\n');
		if (!err)
			err = blob_add(t->out[i], t->line[i].data, t->line[i].len);
		buf_reset(&t->line[i]);
	}
	return err;
}

static int table_keys_cb(void *ctx, const struct store_run *r)
{
	struct table *t = ctx;
	const struct store_snapshot *snap = NULL;
	size_t i;
	int err = store_run_snapshot(t->s, r, SNAP_PARAMS | SNAP_METRICS, &snap);

	for (i = 0; !err && snap->params && i < snap->params->n; i++)
		err = keyset_add(&t->params, snap->params->v[i].key);
	for (i = 0; !err && snap->metrics && i < snap->metrics->n; i++)
		err = keyset_add(&t->metrics, snap->metrics->v[i].key);
	if (snap)
		store_snapshot_put(snap);
	return err == -ENOENT ? 0 : err; /* deleted meanwhile: not in the table */
}

/* ms since the epoch as ISO 8601 UTC with milliseconds; "" if unset. */
static void table_time(int64_t ms, char *out, size_t size)
{
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;

	out[0] = '\0';
	if (ms < 0 || !gmtime_r(&sec, &tm))
		return;
	snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

static int table_row_cb(void *ctx, const struct store_run *r)
{
	struct table *t = ctx;
	const struct store_snapshot *snap;
	char start[64], end[64], duration[48], value[METRIC_VALUE_MAX + 1];
	const struct store_kv *kv;
	size_t i, n;
	int err = store_run_snapshot(t->s, r, SNAP_PARAMS | SNAP_METRICS, &snap);

	if (err)
		return err == -ENOENT ? 0 : err;
	table_time(r->start_time, start, sizeof(start));
	table_time(r->end_time, end, sizeof(end));
	duration[0] = '\0';
	if (r->start_time >= 0 && r->end_time >= r->start_time)
		snprintf(duration, sizeof(duration), "%.3f",
			 (double)(r->end_time - r->start_time) / 1000.0);
	err = table_field(t, r->folder, 1);
	if (!err)
		err = table_field(t, r->run_id, 0);
	if (!err)
		err = table_field(t, r->status, 0);
	if (!err)
		err = table_field(t, start, 0);
	if (!err)
		err = table_field(t, end, 0);
	if (!err)
		err = table_field(t, duration, 0);
	for (i = 0; !err && i < t->params.n; i++) {
		kv = store_kvs_find(snap->params, t->params.v[i]);
		err = table_field(t, kv ? kv->value : NULL, 0);
	}
	for (i = 0; !err && i < t->metrics.n; i++) {
		kv = store_kvs_find(snap->metrics, t->metrics.v[i]);
		n = kv ? metric_format_value(kv->num, value) : 0;
		value[n] = '\0';
		err = table_field(t, kv ? value : NULL, 0);
	}
	store_snapshot_put(snap);
	return err ? err : table_end_line(t);
}

int content_runs_tables(struct store *s, const char *experiment_id, struct blob *csv,
			struct blob *tsv)
{
	static const char *const fixed[] = { "run",	   "run_id",   "status",
					     "start_time", "end_time", "duration" };
	struct table t = { .s = s, .out = { csv, tsv } };
	struct buf name = BUF_INIT;
	size_t i;
	int err;

	buf_init(&t.line[0], 0);
	buf_init(&t.line[1], 0);
	err = store_list_runs(s, experiment_id, table_keys_cb, &t);
	for (i = 0; !err && i < sizeof(fixed) / sizeof(fixed[0]); i++)
		err = table_field(&t, fixed[i], !i);
	/* Named as mlflow.search_runs names its columns. */
	for (i = 0; !err && i < t.params.n + t.metrics.n; i++) {
		buf_reset(&name);
		err = i < t.params.n ? buf_addf(&name, "params.%s", t.params.v[i])
				     : buf_addf(&name, "metrics.%s", t.metrics.v[i - t.params.n]);
		if (!err)
			err = table_field(&t, buf_str(&name), 0);
	}
	if (!err)
		err = table_end_line(&t);
	if (!err)
		err = store_list_runs(s, experiment_id, table_row_cb, &t);
	buf_release(&name);
	buf_release(&t.line[0]);
	buf_release(&t.line[1]);
	keyset_release(&t.params);
	keyset_release(&t.metrics);
	return err;
}

/* ---- plots ------------------------------------------------------------ */

/* A plot's text goes to its blob in pieces of this size, so memory holds
 * one piece at a time whatever the number of runs. */
#define SVG_PIECE (64 * 1024)

struct svg_sink {
	struct buf text;
	struct blob *out;
};

static int sink_flush(struct svg_sink *k, int all)
{
	int err;

	if (!all && k->text.len < SVG_PIECE)
		return 0;
	err = blob_add(k->out, k->text.data, k->text.len);
	buf_reset(&k->text);
	return err;
}

/* Called back while the store reads: it must not call the store. */
static int measure_cb(void *ctx, double value, int64_t step, int64_t timestamp)
{
	(void)timestamp;
	svg_bounds_add(ctx, step, value);
	return 0;
}

struct draw {
	struct svg_series *series;
	struct svg_sink *sink;
};

static int draw_cb(void *ctx, double value, int64_t step, int64_t timestamp)
{
	struct draw *d = ctx;
	int err = svg_series_point(d->series, step, value);

	(void)timestamp;
	return err ? err : sink_flush(d->sink, 0);
}

/* One series of a plot begun already: the second pass over its points. */
static int draw_series(struct store *s, struct svg_plot *p, struct svg_sink *k, const char *run_id,
		       const char *key, uint64_t finite, const char *name)
{
	struct svg_series series;
	struct draw d = { &series, k };
	int err = svg_series_begin(&series, p, finite, name);

	if (!err)
		err = store_metric_history(s, run_id, key, draw_cb, &d);
	if (!err)
		err = svg_series_end(&series);
	return err ? err : sink_flush(k, 0);
}

int content_history_svg(struct store *s, const char *run_id, const char *key, struct blob *out)
{
	struct svg_sink k = { BUF_INIT, out };
	struct svg_bounds b;
	struct svg_plot p;
	int err;

	svg_bounds_init(&b);
	err = store_metric_history(s, run_id, key, measure_cb, &b);
	if (!err)
		err = svg_begin(&p, &k.text, key, &b, 0);
	if (!err)
		err = draw_series(s, &p, &k, run_id, key, b.finite, NULL);
	if (!err)
		err = svg_end(&p);
	if (!err)
		err = sink_flush(&k, 1);
	buf_release(&k.text);
	return err;
}

struct plot_collect {
	struct store *s;
	const char *key;
	struct content_plot_runs *runs;
};

static int plot_run_cb(void *ctx, const struct store_run *r)
{
	struct plot_collect *c = ctx;
	struct content_plot_runs *runs = c->runs;
	const struct store_snapshot *snap;
	const struct store_kv *kv;
	int64_t ms;
	int err = store_run_snapshot(c->s, r, SNAP_METRICS, &snap);

	if (err)
		return err == -ENOENT ? 0 : err; /* deleted meanwhile */
	kv = store_kvs_find(snap->metrics, c->key);
	ms = kv ? kv->timestamp : 0;
	store_snapshot_put(snap);
	if (!kv || !r->folder)
		return 0;
	if (runs->n == runs->cap) {
		size_t cap = runs->cap ? runs->cap * 2 : 16;
		struct content_plot_run *v = realloc(runs->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		runs->v = v;
		runs->cap = cap;
	}
	runs->v[runs->n].folder = strdup(r->folder);
	if (!runs->v[runs->n].folder)
		return -ENOMEM;
	memcpy(runs->v[runs->n].run_id, r->run_id, sizeof(r->run_id));
	runs->v[runs->n].latest_ms = ms;
	runs->n++;
	return 0;
}

int content_plot_runs(struct store *s, const char *experiment_id, const char *key,
		      struct content_plot_runs *out)
{
	struct plot_collect c = { s, key, out };
	int err;

	memset(out, 0, sizeof(*out));
	err = store_list_runs(s, experiment_id, plot_run_cb, &c);
	if (err)
		content_plot_runs_release(out);
	return err;
}

void content_plot_runs_release(struct content_plot_runs *runs)
{
	size_t i;

	for (i = 0; i < runs->n; i++)
		free(runs->v[i].folder);
	free(runs->v);
	memset(runs, 0, sizeof(*runs));
}

int content_plots_svg(struct store *s, const struct content_plot_runs *runs, const char *key,
		      struct blob *out)
{
	struct svg_sink k = { BUF_INIT, out };
	struct svg_bounds all, *each;
	struct svg_plot p;
	size_t i;
	int err = 0;

	/* Each run's count decides how its line is drawn: kept for the
	 * second pass (a few words a run, not its points). */
	each = calloc(runs->n ? runs->n : 1, sizeof(*each));
	if (!each)
		return -ENOMEM;
	svg_bounds_init(&all);
	for (i = 0; !err && i < runs->n; i++) {
		svg_bounds_init(&each[i]);
		err = store_metric_history(s, runs->v[i].run_id, key, measure_cb, &each[i]);
		svg_bounds_merge(&all, &each[i]);
	}
	if (!err)
		err = svg_begin(&p, &k.text, key, &all, 1);
	for (i = 0; !err && i < runs->n; i++)
		err = draw_series(s, &p, &k, runs->v[i].run_id, key, each[i].finite,
				  runs->v[i].folder);
	if (!err)
		err = svg_end(&p);
	if (!err)
		err = sink_flush(&k, 1);
	buf_release(&k.text);
	free(each);
	return err;
}
