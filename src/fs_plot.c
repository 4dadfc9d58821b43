/*
 * fs_plot.c - the plots: history/<key>.svg of a run (fs_keys.c finds the
 * name) and an experiment's .plots/ folder, one <key>.svg per metric of its
 * active runs.  A plot is drawn when it is opened (content.c, svg.c); a
 * stat needs its exact size, so the sizes of plots drawn lately are kept,
 * each with a check of the points it was drawn from, and the drawing made
 * last too, for the open that follows a stat.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs-internal.h"
#include "log.h"

#define SVG_SUFFIX	   ".svg"
#define WHY_PLOT_READ_ONLY "plots are read-only"

char *fs_plot_name(const char *key)
{
	char *name;

	return asprintf(&name, "%s" SVG_SUFFIX, key) < 0 ? NULL : name;
}

void fs_plot_init(struct fs *fs)
{
	pthread_mutex_init(&fs->plot_lock, NULL);
}

void fs_plot_free(struct fs *fs)
{
	size_t i;

	for (i = 0; i < FS_PLOT_SIZES; i++)
		free(fs->plot_sizes[i].name);
	free(fs->plot_last_name);
	buf_release(&fs->plot_last);
	pthread_mutex_destroy(&fs->plot_lock);
}

/* ---- sizes ------------------------------------------------------------ */

/* FNV-1a, over the facts a plot is drawn from. */
static void check_add(uint64_t *h, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t i;

	for (i = 0; i < len; i++) {
		*h ^= p[i];
		*h *= 0x100000001b3ULL;
	}
}

static void check_adds(uint64_t *h, const char *s)
{
	check_add(h, s, strlen(s) + 1);
}

/* Adds a metric's history as its count and size: MLflow only ever adds
 * points, so a change changes both or the count. */
static int check_history(struct fs *fs, uint64_t *h, const char *run_id, const char *key)
{
	struct store_history_stat hs;
	int err = store_history_stat(fs->store, run_id, key, &hs);

	if (!err) {
		check_add(h, &hs.points, sizeof(hs.points));
		check_add(h, &hs.bytes, sizeof(hs.bytes));
	}
	return err;
}

static int size_find(struct fs *fs, const char *name, uint64_t check, off_t *size)
{
	int found = 0;
	size_t i;

	pthread_mutex_lock(&fs->plot_lock);
	for (i = 0; i < FS_PLOT_SIZES && !found; i++) {
		struct fs_plot_size *p = &fs->plot_sizes[i];

		if (p->name && p->check == check && !strcmp(p->name, name)) {
			*size = p->size;
			found = 1;
		}
	}
	pthread_mutex_unlock(&fs->plot_lock);
	return found;
}

static void size_keep(struct fs *fs, const char *name, uint64_t check, off_t size)
{
	struct fs_plot_size *p = NULL;
	char *copy = strdup(name);
	size_t i;

	if (!copy)
		return; /* only a cache */
	pthread_mutex_lock(&fs->plot_lock);
	for (i = 0; i < FS_PLOT_SIZES && !p; i++)
		if (fs->plot_sizes[i].name && !strcmp(fs->plot_sizes[i].name, name))
			p = &fs->plot_sizes[i];
	if (!p)
		p = &fs->plot_sizes[fs->plot_next++ % FS_PLOT_SIZES];
	free(p->name);
	p->name = copy;
	p->check = check;
	p->size = size;
	pthread_mutex_unlock(&fs->plot_lock);
}

/* The drawing made last, kept for the open that follows a stat of it. */
static int last_take(struct fs *fs, const char *name, uint64_t check, struct blob *out)
{
	int err = 1;

	pthread_mutex_lock(&fs->plot_lock);
	if (fs->plot_last_name && fs->plot_last_check == check && !strcmp(fs->plot_last_name, name))
		err = blob_add(out, fs->plot_last.data, fs->plot_last.len);
	pthread_mutex_unlock(&fs->plot_lock);
	return err;
}

static void last_keep(struct fs *fs, const char *name, uint64_t check, const struct blob *b)
{
	char *copy;

	/* Only one that stayed in memory: it is small. */
	if (b->fd >= 0 || !(copy = strdup(name)))
		return;
	pthread_mutex_lock(&fs->plot_lock);
	buf_reset(&fs->plot_last);
	free(fs->plot_last_name);
	fs->plot_last_name = copy;
	fs->plot_last_check = check;
	if (buf_add(&fs->plot_last, b->mem.data, b->mem.len)) {
		/* Without memory for the text, nothing is kept. */
		free(fs->plot_last_name);
		fs->plot_last_name = NULL;
	}
	pthread_mutex_unlock(&fs->plot_lock);
}

/* One plot: its name in the caches, the check of the points it is drawn
 * from, and what it draws. */
struct plot_job {
	char *name;
	uint64_t check;
	const char *run_id; /* history/<key>.svg: the run; NULL for .plots/ */
	const char *key;
	struct content_plot_runs runs; /* .plots/<key>.svg */
	int64_t ms;		       /* its time */
};

static void job_release(struct plot_job *j)
{
	free(j->name);
	content_plot_runs_release(&j->runs);
}

/*
 * Draws j into out, or (out NULL) only measures it into *size: from the
 * caches when its check still holds, else drawn anew.
 */
static int job_draw(struct fs *fs, const struct plot_job *j, struct blob *out, off_t *size)
{
	struct blob own, *b = out ? out : &own;
	int err;

	if (!out && size_find(fs, j->name, j->check, size))
		return 0;
	if (out && (err = last_take(fs, j->name, j->check, out)) <= 0)
		return err;
	blob_init(&own);
	err = j->run_id ? content_history_svg(fs->store, j->run_id, j->key, b)
			: content_plots_svg(fs->store, &j->runs, j->key, b);
	if (!err) {
		if (size)
			*size = b->size;
		size_keep(fs, j->name, j->check, b->size);
		last_keep(fs, j->name, j->check, b);
	}
	blob_release(&own);
	return err;
}

/* ---- history/<key>.svg ------------------------------------------------- */

static int history_job(struct fs *fs, const struct target *t, const struct store_kv *kv,
		       struct plot_job *j)
{
	memset(j, 0, sizeof(*j));
	j->check = 0xcbf29ce484222325ULL;
	j->run_id = t->run.run_id;
	j->key = kv->key;
	j->ms = kv->timestamp;
	if (asprintf(&j->name, "r\n%s\n%s", t->run.run_id, kv->key) < 0) {
		j->name = NULL;
		return -ENOMEM;
	}
	return check_history(fs, &j->check, t->run.run_id, kv->key);
}

/* The attributes of j, err what making it answered; releases j. */
static int job_stat(struct fs *fs, const struct target *t, struct plot_job *j, int err,
		    struct stat *st)
{
	off_t size;

	if (!err)
		err = job_draw(fs, j, NULL, &size);
	if (!err)
		fs_fill_stat(fs, st, RO_MODE, size, j->ms);
	job_release(j);
	return fs_store_err(t->path, err);
}

int fs_plot_history_stat(struct fs *fs, const struct target *t, const struct store_kv *kv,
			 struct stat *st)
{
	struct plot_job j;
	int err = history_job(fs, t, kv, &j);

	return job_stat(fs, t, &j, err, st);
}

/* A read-only handle of t with j drawn in it. */
static int open_drawn(struct fs *fs, struct target *t, struct fuse_file_info *fi,
		      const struct plot_job *j)
{
	struct handle *h;
	int err;

	if (fs_open_writes(fi->flags))
		return log_refusal(t->path, EACCES, WHY_PLOT_READ_ONLY);
	h = fs_handle_new(fs, H_READ, t->path);
	if (!h)
		return -ENOMEM;
	err = fs_store_err(t->path, job_draw(fs, j, &h->content, NULL));
	return fs_handle_open_done(fs, h, fi, err);
}

int fs_plot_history_open(struct fs *fs, struct target *t, struct fuse_file_info *fi)
{
	struct plot_job j;
	int err = fs_store_err(t->path, history_job(fs, t, t->kv, &j));

	if (!err)
		err = open_drawn(fs, t, fi, &j);
	job_release(&j);
	return err;
}

/* ---- .plots/ ----------------------------------------------------------- */

/* The metric a name under .plots/ plots ("train/loss" for
 * "train/loss.svg"), a new string; NULL when it is no plot's name. */
static char *plot_key(const char *name)
{
	size_t n = strlen(name), s = strlen(SVG_SUFFIX);
	const char *last = strrchr(name, '/');

	last = last ? last + 1 : name;
	if (n <= s || strcmp(name + n - s, SVG_SUFFIX) || (size_t)(name + n - last) == s)
		return NULL;
	return strndup(name, n - s);
}

/* What a name under .plots/ is, found among the runs' metrics. */
struct plots_find {
	struct fs *fs;
	const char *key;    /* the metric its name plots, or NULL */
	const char *prefix; /* "<name>/": the keys of it as a folder */
	enum key_state state;
};

/* Calls fn with the metrics of a run of an experiment's listing. */
static int with_metrics(struct fs *fs, const struct store_run *r,
			int (*fn)(void *ctx, const struct store_kvs *kvs), void *ctx)
{
	const struct store_snapshot *snap;
	int err = store_run_snapshot(fs->store, r, SNAP_METRICS, &snap);

	if (err)
		return err == -ENOENT ? 0 : err; /* deleted meanwhile */
	err = snap->metrics ? fn(ctx, snap->metrics) : 0;
	store_snapshot_put(snap);
	return err;
}

static int find_in(void *ctx, const struct store_kvs *kvs)
{
	struct plots_find *f = ctx;
	const struct store_kv *kv = f->key ? store_kvs_find(kvs, f->key) : NULL;
	size_t i = store_kvs_lower_bound(kvs, f->prefix);

	if (kv)
		f->state = KEY_FILE;
	else if (f->state == KEY_MISSING && i < kvs->n &&
		 !strncmp(kvs->v[i].key, f->prefix, strlen(f->prefix)))
		f->state = KEY_DIR;
	return 0;
}

static int find_cb(void *ctx, const struct store_run *r)
{
	struct plots_find *f = ctx;

	/* Found: the rest of the runs cannot change it. */
	return f->state == KEY_FILE ? 1 : with_metrics(f->fs, r, find_in, f);
}

/* A plot (KEY_FILE) wins over a folder of the same name, as a key does in
 * the key folders. */
static int plots_find(struct fs *fs, struct target *t, char **key, enum key_state *state)
{
	struct plots_find f = { fs, NULL, NULL, KEY_MISSING };
	char *prefix = NULL;
	int err;

	*key = plot_key(t->n.key);
	if (asprintf(&prefix, "%s/", t->n.key) < 0) {
		free(*key);
		*key = NULL;
		return -ENOMEM;
	}
	f.key = *key;
	f.prefix = prefix;
	err = store_list_runs(fs->store, t->exp.id, find_cb, &f);
	err = fs_store_err(t->path, err < 0 ? err : 0);
	free(prefix);
	*state = f.state;
	return err;
}

/* The plot of key for every active run that has it; its time is the
 * latest point of the metric in any of them. */
static int plots_job(struct fs *fs, const struct target *t, const char *key, struct plot_job *j)
{
	size_t i;
	int err;

	memset(j, 0, sizeof(*j));
	j->check = 0xcbf29ce484222325ULL;
	j->key = key;
	if (asprintf(&j->name, "e\n%s\n%s", t->exp.id, key) < 0) {
		j->name = NULL;
		return -ENOMEM;
	}
	err = content_plot_runs(fs->store, t->exp.id, key, &j->runs);
	for (i = 0; !err && i < j->runs.n; i++) {
		check_adds(&j->check, j->runs.v[i].run_id);
		check_adds(&j->check, j->runs.v[i].folder);
		if (j->runs.v[i].latest_ms > j->ms)
			j->ms = j->runs.v[i].latest_ms;
		err = check_history(fs, &j->check, j->runs.v[i].run_id, key);
	}
	return err;
}

static int plot_stat(struct fs *fs, const struct target *t, const char *key, struct stat *st)
{
	struct plot_job j;
	int err = plots_job(fs, t, key, &j);

	return job_stat(fs, t, &j, err, st);
}

static int plots_getattr(struct fs *fs, struct target *t, struct stat *st)
{
	enum key_state state;
	char *key;
	int err;

	if (!t->n.key) {
		fs_fill_stat(fs, st, DIR_MODE, 0, fs_node_ms(fs, t));
		return 0;
	}
	err = plots_find(fs, t, &key, &state);
	if (!err && state == KEY_FILE)
		err = plot_stat(fs, t, key, st);
	else if (!err && state == KEY_DIR)
		fs_fill_stat(fs, st, DIR_MODE, 0, fs_node_ms(fs, t));
	else if (!err)
		err = -ENOENT;
	free(key);
	return err;
}

/* The names directly in a folder of .plots/, gathered from every run. */
struct plots_list {
	struct fs *fs;
	const char *prefix; /* "" or "a/b/" */
	char **keys;	    /* a child's full key; a folder's ends in '/' */
	size_t n, cap;
};

static int list_add(struct plots_list *c, const char *key, size_t len)
{
	if (c->n && strlen(c->keys[c->n - 1]) == len && !strncmp(c->keys[c->n - 1], key, len))
		return 0; /* keys come sorted: the same folder again */
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 32;
		char **v = realloc(c->keys, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		c->keys = v;
		c->cap = cap;
	}
	c->keys[c->n] = strndup(key, len);
	return c->keys[c->n] ? (c->n++, 0) : -ENOMEM;
}

static int list_in(void *ctx, const struct store_kvs *kvs)
{
	struct plots_list *c = ctx;
	size_t plen = strlen(c->prefix), i;
	int err = 0;

	for (i = store_kvs_lower_bound(kvs, c->prefix);
	     !err && i < kvs->n && !strncmp(kvs->v[i].key, c->prefix, plen); i++) {
		const char *key = kvs->v[i].key, *slash = strchr(key + plen, '/');

		/* A key with an empty segment has no place in a tree of folders. */
		if (!key[plen] || slash == key + plen)
			continue;
		err = list_add(c, key, slash ? (size_t)(slash - key) + 1 : strlen(key));
	}
	return err;
}

static int list_cb(void *ctx, const struct store_run *r)
{
	struct plots_list *c = ctx;

	return with_metrics(c->fs, r, list_in, c);
}

static int key_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int plots_list(struct fs *fs, struct target *t, struct listing *l)
{
	struct plots_list c = { fs, "", NULL, 0, 0 };
	struct buf enc = BUF_INIT;
	char *prefix = NULL, *name;
	enum key_state state;
	struct stat st;
	size_t i, plen;
	int err = 0;

	if (t->n.key) {
		char *key;

		err = plots_find(fs, t, &key, &state);
		free(key);
		if (!err && state != KEY_DIR)
			err = state == KEY_FILE ? -ENOTDIR : -ENOENT;
		if (err)
			return err;
		if (asprintf(&prefix, "%s/", t->n.key) < 0)
			return -ENOMEM;
		c.prefix = prefix;
	}
	plen = strlen(c.prefix);
	err = store_list_runs(fs->store, t->exp.id, list_cb, &c);
	if (!err && c.n)
		qsort(c.keys, c.n, sizeof(*c.keys), key_cmp);
	for (i = 0; !err && i < c.n; i++) {
		size_t len = strlen(c.keys[i]);

		if (i && !strcmp(c.keys[i], c.keys[i - 1]))
			continue;
		if (c.keys[i][len - 1] == '/') {
			c.keys[i][len - 1] = '\0';
			fs_fill_stat(fs, &st, DIR_MODE, 0, fs_node_ms(fs, t));
			err = listing_add_encoded(l, c.keys[i] + plen, &st);
			c.keys[i][len - 1] = '/';
			continue;
		}
		/* Without attributes: a plot's size costs drawing it, which a
		 * stat of it pays (ls -l), not every listing. */
		name = fs_plot_name(c.keys[i] + plen);
		buf_reset(&enc);
		err = name ? path_encode(&enc, name) : -ENOMEM;
		if (!err)
			err = listing_add_lazy(l, buf_str(&enc), S_IFREG);
		free(name);
	}
	listing_dedupe(l);
	buf_release(&enc);
	for (i = 0; i < c.n; i++)
		free(c.keys[i]);
	free(c.keys);
	free(prefix);
	return err;
}

static int plots_open(struct fs *fs, struct target *t, struct fuse_file_info *fi, int create,
		      mode_t mode)
{
	enum key_state state;
	char *key;
	int err;

	(void)mode;
	if (create || fs_open_writes(fi->flags))
		return log_refusal(t->path, EACCES, WHY_PLOT_READ_ONLY);
	if (!t->n.key)
		return -EISDIR;
	err = plots_find(fs, t, &key, &state);
	if (!err && state == KEY_FILE) {
		struct plot_job j;

		err = fs_store_err(t->path, plots_job(fs, t, key, &j));
		if (!err)
			err = open_drawn(fs, t, fi, &j);
		job_release(&j);
	} else if (!err) {
		err = state == KEY_DIR ? -EISDIR : -ENOENT;
	}
	free(key);
	return err;
}

static int plots_refuse(struct fs *fs, struct target *t, mode_t mode)
{
	(void)fs;
	(void)mode;
	return log_refusal(t->path, EACCES, WHY_PLOT_READ_ONLY);
}

static int plots_truncate(struct fs *fs, struct target *t, off_t size)
{
	(void)size;
	return plots_refuse(fs, t, 0);
}

/* What is not here is refused by the handlers' defaults (fs.c): rm, rmdir,
 * mv. */
const struct kind_ops fs_plots_ops = {
	.getattr = plots_getattr,
	.list = plots_list,
	.open = plots_open,
	.mkdir = plots_refuse,
	.truncate = plots_truncate,
};
