/*
 * fs_read.c - what reading the tree shows: attributes (getattr), link
 * targets (readlink), listings (readdir, with offsets so that readdirplus
 * attributes count), and the content of the read-only virtual files.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <wctype.h>

#include "config.h"
#include "fs-internal.h"
#include "fs.h"
#include "log.h"
#include "metric.h"
#include "options.h"

static int render_kv_value(const struct target *t, const struct store_kv *kv, struct buf *out)
{
	if (t->n.kind == NODE_METRICS)
		return content_metric(out, kv->num);
	if (buf_adds(out, kv->value))
		return -ENOMEM;
	return buf_addch(out, '\n');
}

static int render_version_field(const struct target *t, struct buf *out)
{
	const struct store_version *v = &t->version;
	const char *text = "";

	switch (t->n.field) {
	case VF_SOURCE:
		text = v->source;
		break;
	case VF_RUN_ID:
		text = v->run_id;
		break;
	case VF_STATUS:
		text = v->status;
		break;
	case VF_STAGE:
		text = v->stage;
		break;
	case VF_DESCRIPTION:
		text = v->description;
		break;
	}
	return buf_addf(out, "%s\n", text);
}

static int render_control_status(struct fs *fs, struct buf *out)
{
	int err = buf_addf(out, "version: %s\nmountpoint: %s\n", PACKAGE_VERSION,
			   fs->cfg->mountpoint);

	return err ? err : store_describe(fs->store, out);
}

/*
 * The content of a readable virtual file into out; for history, into blob
 * (out unused).  -EISDIR for folders, -ENOENT for what is not a file.
 */
int fs_render(struct fs *fs, const struct target *t, struct buf *out, struct blob *blob)
{
	struct store_kv kv;
	int err;

	switch (t->n.kind) {
	case NODE_EXP_JSON:
		return content_experiment_json(fs->store, &t->exp, out);
	case NODE_RUN_ID:
		return buf_addf(out, "%s\n", t->run.run_id);
	case NODE_STATUS:
		return buf_addf(out, "%s\n", t->run.status);
	case NODE_RUN_JSON:
		return content_run_json(fs->store, &t->run, out);
	case NODE_CONTROL_STATUS:
		return render_control_status(fs, out);
	case NODE_CONTROL_ERRORS:
		return log_render_errors(out);
	case NODE_MODEL_DESC:
		return buf_addf(out, "%s\n", t->model.description);
	case NODE_VERSION_FIELD:
		return render_version_field(t, out);
	case NODE_HISTORY:
		if (!t->n.key)
			return -EISDIR;
		return content_history(fs->store, t->run.run_id, t->n.key, blob, NULL);
	case NODE_PARAMS:
	case NODE_METRICS:
	case NODE_TAGS:
	case NODE_EXP_TAGS:
	case NODE_MODEL_TAGS:
	case NODE_VERSION_TAGS:
		if (!t->n.key)
			return -EISDIR;
		err = fs_key_lookup(fs, t, &kv);
		if (err == 2)
			return -EISDIR;
		if (err < 0)
			return err;
		err = render_kv_value(t, &kv, out);
		store_kv_release(&kv);
		return err;
	default:
		return -EISDIR;
	}
}

/* ---- link targets ---------------------------------------------------- */

/* "../experiments/<E>/<R>" for runs/<id>, names encoded. */
static int fs_run_link_target(const struct store_experiment *e, const struct store_run *r,
			      const char *up, struct buf *out)
{
	int err = buf_adds(out, up);

	if (!err)
		err = buf_adds(out, "experiments/");
	if (!err)
		err = path_encode(out, e->name);
	if (!err)
		err = buf_addch(out, '/');
	return err ? err : path_encode(out, r->folder);
}

/*
 * Where versions/<n>/artifacts points: the run's artifact folder in this
 * mount, with the path below it that the version's source names.
 */
static int version_link_target(struct fs *fs, const struct target *t, struct buf *out)
{
	const struct store_version *v = &t->version;
	struct store_experiment e = { 0 };
	struct store_run r = { 0 };
	const char *sub = NULL;
	size_t n;
	int err;

	if (!v->run_id[0])
		return -ENOENT;
	err = store_get_run(fs->store, v->run_id, &r);
	if (err)
		return err;
	if (!r.folder) {
		err = -ENOENT;
		goto out;
	}
	n = strlen(r.artifact_uri);
	if (!strncmp(v->source, "runs:/", 6) && !strncmp(v->source + 6, r.run_id, 32) &&
	    (v->source[38] == '/' || !v->source[38]))
		sub = v->source + 38;
	else if (!strncmp(v->source, r.artifact_uri, n) && (v->source[n] == '/' || !v->source[n]))
		sub = v->source + n;
	if (!sub) {
		err = -ENOENT;
		goto out;
	}
	err = store_get_experiment_by_id(fs->store, r.experiment_id, &e);
	if (!err)
		err = fs_run_link_target(&e, &r, "../../../../", out);
	if (!err)
		err = buf_adds(out, "/artifacts");
	if (!err)
		err = buf_adds(out, sub);
	store_experiment_release(&e);
out:
	store_run_release(&r);
	return err;
}

struct alias_find {
	const char *alias;
	int64_t version;
};

static int alias_find_cb(void *ctx, const char *alias, int64_t version)
{
	struct alias_find *a = ctx;

	if (strcmp(alias, a->alias))
		return 0;
	a->version = version;
	return 1;
}

static int alias_target(struct fs *fs, const struct target *t, struct buf *out)
{
	struct alias_find a = { t->n.alias, 0 };
	int err = store_list_aliases(fs->store, t->n.model, alias_find_cb, &a);

	if (err < 0)
		return err;
	if (!err)
		return -ENOENT;
	return buf_addf(out, "../versions/%" PRId64, a.version);
}

static int link_target(struct fs *fs, const struct target *t, struct buf *out)
{
	switch (t->n.kind) {
	case NODE_RUNS_LINK:
		return fs_run_link_target(&t->exp, &t->run, "../", out);
	case NODE_MODEL_ALIAS:
		return alias_target(fs, t, out);
	case NODE_VERSION_ARTIFACTS:
		return version_link_target(fs, t, out);
	default:
		return -EINVAL;
	}
}

/* ---- getattr --------------------------------------------------------- */

/* The time of a folder of keys: its run's start (0 outside runs). */
static int64_t key_dir_ms(const struct target *t)
{
	return t->has_run ? t->run.start_time : 0;
}

/* The size of st, with its blocks. */
static void set_size(struct stat *st, off_t size)
{
	st->st_size = size;
	st->st_blocks = (size + 511) / 512;
}

/*
 * The attributes of the key file kv of t's folder: mode, size (but a
 * history's, which the caller sets: it needs the store again) and time.
 */
static int key_stat(struct fs *fs, const struct target *t, const struct store_kv *kv,
		    struct stat *st)
{
	enum node_kind kind = t->n.kind;
	struct buf text = BUF_INIT;
	int err = kind == NODE_HISTORY ? 0 : render_kv_value(t, kv, &text);

	if (!err)
		fs_fill_stat(fs, st,
			     kind == NODE_HISTORY || kind == NODE_MODEL_TAGS ||
					     kind == NODE_VERSION_TAGS
				     ? RO_MODE
				     : RW_MODE,
			     (off_t)text.len,
			     kind == NODE_METRICS || kind == NODE_HISTORY ? kv->timestamp
			     : t->has_run				  ? t->run.start_time
			     : t->has_exp				  ? t->exp.last_update_time
					  : t->model.last_updated_time);
	buf_release(&text);
	return err;
}

static int key_getattr(struct fs *fs, const char *path, struct target *t, struct stat *st)
{
	struct store_kv kv;
	off_t size;
	int err;

	err = fs_key_lookup(fs, t, &kv);
	if (err == 2) {
		fs_fill_stat(fs, st, DIR_MODE, 0, key_dir_ms(t));
		return 0;
	}
	if (err == -ENOENT) {
		int state = fs_pending_state(fs, path);

		if (state == 1)
			fs_fill_stat(fs, st, RW_MODE, 0, fs_now_ms());
		else if (state == 2)
			fs_fill_stat(fs, st, DIR_MODE, 0, fs_now_ms());
		else
			return -ENOENT;
		return 0;
	}
	if (err < 0)
		return err;
	err = key_stat(fs, t, &kv, st);
	if (!err && t->n.kind == NODE_HISTORY) {
		err = content_history(fs->store, t->run.run_id, t->n.key, NULL, &size);
		set_size(st, size);
	}
	store_kv_release(&kv);
	return err;
}

int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct fs *fs = fs_get();
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	struct target t;
	struct buf text = BUF_INIT;
	int err;

	if (h && h->kind == H_ARTIFACT)
		return fstat(h->fd, st) < 0 ? -errno : 0;
	if (!path)
		path = h ? h->path : "/";
	err = fs_resolve(fs, path, &t);
	if (err == -ENOENT && h && h->pending) {
		/* Created, still without a value. */
		fs_fill_stat(fs, st, RW_MODE, 0, fs_now_ms());
		return 0;
	}
	if (err)
		return err;
	switch (t.n.kind) {
	case NODE_ROOT:
	case NODE_EXPERIMENTS:
	case NODE_RUNS:
	case NODE_CONTROL:
	case NODE_MODELS:
		fs_fill_stat(fs, st, DIR_MODE, 0, fs->mounted_ms);
		break;
	case NODE_EXPERIMENT:
		fs_fill_stat(fs, st, DIR_MODE, 0, t.exp.last_update_time);
		break;
	case NODE_RUN:
		fs_fill_stat(fs, st, DIR_MODE, 0, t.run.last_change);
		break;
	case NODE_MODEL:
	case NODE_MODEL_ALIASES:
	case NODE_MODEL_VERSIONS:
		fs_fill_stat(fs, st, DIR_MODE, 0, t.model.last_updated_time);
		break;
	case NODE_VERSION:
		fs_fill_stat(fs, st, DIR_MODE, 0, t.version.last_updated_time);
		break;
	case NODE_ARTIFACTS:
		err = fs_art_getattr(fs, &t, st);
		break;
	case NODE_EXP_TAGS:
	case NODE_PARAMS:
	case NODE_METRICS:
	case NODE_HISTORY:
	case NODE_TAGS:
	case NODE_MODEL_TAGS:
	case NODE_VERSION_TAGS:
		if (!t.n.key)
			fs_fill_stat(fs, st, DIR_MODE, 0,
				     t.has_run	 ? t.run.last_change
				     : t.has_exp ? t.exp.last_update_time
						 : t.model.last_updated_time);
		else
			err = key_getattr(fs, path, &t, st);
		break;
	case NODE_RUNS_LINK:
	case NODE_MODEL_ALIAS:
	case NODE_VERSION_ARTIFACTS:
		err = link_target(fs, &t, &text);
		if (!err)
			fs_fill_stat(fs, st, LINK_MODE, (off_t)text.len,
				     t.has_run ? t.run.last_change : t.model.last_updated_time);
		break;
	default:
		err = fs_render(fs, &t, &text, NULL);
		if (!err)
			fs_fill_stat(fs, st, t.n.kind == NODE_STATUS ? RW_MODE : RO_MODE,
				     (off_t)text.len,
				     t.has_run	     ? t.run.last_change
				     : t.has_exp     ? t.exp.last_update_time
				     : t.has_version ? t.version.last_updated_time
				     : t.has_model   ? t.model.last_updated_time
						     : fs_now_ms());
	}
	buf_release(&text);
	if (!err && t.n.kind != NODE_ARTIFACTS)
		fs_seen(fs, path, NULL);
	fs_target_release(&t);
	return err;
}

int fs_readlink(const char *path, char *out, size_t size)
{
	struct fs *fs = fs_get();
	struct buf text = BUF_INIT;
	struct art_ref a;
	struct target t;
	ssize_t n;
	int err;

	if (size == 0)
		return -EINVAL;
	err = fs_resolve(fs, path, &t);
	if (err)
		return err;
	if (t.n.kind == NODE_ARTIFACTS) {
		err = fs_art_open(fs, &t, 0, &a);
		if (!err) {
			n = readlinkat(a.dir, a.leaf, out, size - 1);
			if (n < 0)
				err = -errno;
			else
				out[n] = '\0';
			fs_art_close(&a);
		}
	} else {
		err = link_target(fs, &t, &text);
		if (!err)
			snprintf(out, size, "%s", buf_str(&text));
	}
	buf_release(&text);
	fs_target_release(&t);
	return err;
}

/* ---- directories ----------------------------------------------------- */

struct dir_entry {
	char *name;
	char *history_key; /* history/ files: sized after the listing */
	struct stat st;
};

/* A listing taken at the first readdir, then served by offset. */
struct dir_handle {
	struct dir_handle *prev, *next; /* in fs->dirs, protected by fs->open_lock */
	char *path;			/* readdir gets no path (nullpath_ok) */
	int virtual;			/* not artifacts: attributes come from the store */
	struct dir_entry *v;
	size_t n, cap;
	int ready;
	pthread_mutex_t lock;
};

static int dir_add(struct dir_handle *d, const char *name, const struct stat *st)
{
	struct dir_entry *e;

	/*
	 * A name the kernel cannot pass on (empty, or longer than a file name
	 * may be) would fail the whole listing with EIO: skip it, say so, and
	 * list the rest.  Such names come from databases written by hand.
	 */
	if (!name[0] || strlen(name) > NAME_MAX) {
		log_warn("%s: not listing an entry whose name is %s", d->path ? d->path : "-",
			 name[0] ? "longer than 255 bytes" : "empty");
		return 0;
	}
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 32;
		struct dir_entry *v = realloc(d->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		d->v = v;
		d->cap = cap;
	}
	e = &d->v[d->n];
	e->history_key = NULL;
	e->name = strdup(name);
	if (!e->name)
		return -ENOMEM;
	e->st = *st;
	d->n++;
	return 0;
}

/* Adds an entry whose name must be encoded. */
static int dir_add_encoded(struct dir_handle *d, const char *name, const struct stat *st)
{
	struct buf enc = BUF_INIT;
	int err = path_encode(&enc, name);

	if (!err)
		err = dir_add(d, buf_str(&enc), st);
	buf_release(&enc);
	return err;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct dir_entry *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	/* Files before folders of the same name. */
	return c ? c : (int)S_ISDIR(x->st.st_mode) - (int)S_ISDIR(y->st.st_mode);
}

/*
 * A key that is also the prefix of other keys shows once, as the key (SPEC
 * §2): sorts the entries after "." and ".." and keeps the first of a name.
 */
static void dir_dedupe(struct dir_handle *d)
{
	size_t i, out = 2;

	if (d->n <= 3)
		return;
	qsort(d->v + 2, d->n - 2, sizeof(d->v[0]), entry_cmp);
	for (i = 2; i < d->n; i++) {
		if (out > 2 && !strcmp(d->v[out - 1].name, d->v[i].name)) {
			free(d->v[i].name);
			free(d->v[i].history_key);
			continue;
		}
		d->v[out++] = d->v[i];
	}
	d->n = out;
}

struct list_ctx {
	struct fs *fs;
	struct dir_handle *d;
	const struct target *t;
	const char *prefix; /* key folders: "" or "a/b/" */
	char *last_dir;	    /* key folders: the last folder added */
};

static int list_experiment_cb(void *ctx, const struct store_experiment *e)
{
	struct list_ctx *c = ctx;
	struct stat st;

	fs_fill_stat(c->fs, &st, DIR_MODE, 0, e->last_update_time);
	return dir_add_encoded(c->d, e->name, &st);
}

static int list_run_cb(void *ctx, const struct store_run *r)
{
	struct list_ctx *c = ctx;
	struct stat st;

	fs_fill_stat(c->fs, &st, DIR_MODE, 0, r->last_change);
	return dir_add_encoded(c->d, r->folder, &st);
}

static int list_all_runs_cb(void *ctx, const struct store_experiment *e, const struct store_run *r)
{
	struct list_ctx *c = ctx;
	struct buf target = BUF_INIT;
	struct stat st;
	int err = fs_run_link_target(e, r, "../", &target);

	if (!err) {
		fs_fill_stat(c->fs, &st, LINK_MODE, (off_t)target.len, r->last_change);
		err = dir_add(c->d, r->run_id, &st);
	}
	buf_release(&target);
	return err;
}

/* One key of a key folder: a file for a direct child, else its folder. */
static int list_key_cb(void *ctx, const struct store_kv *kv)
{
	struct list_ctx *c = ctx;
	const char *rest = kv->key + strlen(c->prefix);
	const char *slash = strchr(rest, '/');
	struct stat st;
	int err;

	/* A key with an empty segment has no place in the tree of folders. */
	if (!kv->key[0] || kv->key[0] == '/' || strstr(kv->key, "//") ||
	    kv->key[strlen(kv->key) - 1] == '/') {
		log_warn("%s: not listing key '%s': it has an empty segment",
			 c->d->path ? c->d->path : "-", kv->key);
		return 0;
	}
	if (slash) {
		char *dir = strndup(rest, (size_t)(slash - rest));

		if (!dir)
			return -ENOMEM;
		/* Keys come sorted, so a folder's keys are together. */
		if (c->last_dir && !strcmp(c->last_dir, dir)) {
			free(dir);
			return 0;
		}
		free(c->last_dir);
		c->last_dir = dir;
		fs_fill_stat(c->fs, &st, DIR_MODE, 0, key_dir_ms(c->t));
		return dir_add_encoded(c->d, dir, &st);
	}
	/* A history's size needs the store again: it is set after the listing. */
	err = key_stat(c->fs, c->t, kv, &st);
	if (!err)
		err = dir_add_encoded(c->d, rest, &st);
	if (!err && c->t->n.kind == NODE_HISTORY) {
		c->d->v[c->d->n - 1].history_key = strdup(kv->key);
		if (!c->d->v[c->d->n - 1].history_key)
			return -ENOMEM;
	}
	return err;
}

static int list_model_cb(void *ctx, const struct store_model *m)
{
	struct list_ctx *c = ctx;
	struct stat st;

	fs_fill_stat(c->fs, &st, DIR_MODE, 0, m->last_updated_time);
	return dir_add_encoded(c->d, m->name, &st);
}

static int list_version_cb(void *ctx, const struct store_version *v)
{
	struct list_ctx *c = ctx;
	char name[32];
	struct stat st;

	fs_fill_stat(c->fs, &st, DIR_MODE, 0, v->last_updated_time);
	snprintf(name, sizeof(name), "%" PRId64, v->version);
	return dir_add(c->d, name, &st);
}

static int list_alias_cb(void *ctx, const char *alias, int64_t version)
{
	struct list_ctx *c = ctx;
	char target[48];
	struct stat st;
	int n = snprintf(target, sizeof(target), "../versions/%" PRId64, version);

	fs_fill_stat(c->fs, &st, LINK_MODE, n, c->t->model.last_updated_time);
	return dir_add_encoded(c->d, alias, &st);
}

/* Adds the fixed entries of a folder, each a file or folder by name. */
static int list_fixed(struct dir_handle *d, const char *path, const char *const *names)
{
	struct stat st;
	struct buf child = BUF_INIT;
	int err = 0;

	for (; *names && !err; names++) {
		buf_reset(&child);
		err = buf_addf(&child, "%s/%s", strcmp(path, "/") ? path : "", *names);
		if (!err)
			err = fs_getattr(buf_str(&child), &st, NULL);
		if (err == -ENOENT) {
			err = 0;
			continue;
		}
		if (!err)
			err = dir_add(d, *names, &st);
	}
	buf_release(&child);
	return err;
}

/* The pending names (created files, key folders) directly in folder path. */
static int list_pending(struct fs *fs, struct dir_handle *d, const char *path)
{
	size_t len = strlen(path);
	struct pending *p;
	int err = 0;

	pthread_mutex_lock(&fs->pending_lock);
	for (p = fs->pending; p && !err; p = p->next) {
		const char *name = p->path + len + 1;
		struct stat st;
		size_t i;

		if (strncmp(p->path, path, len) || p->path[len] != '/' || strchr(name, '/'))
			continue;
		for (i = 0; i < d->n && strcmp(d->v[i].name, name); i++)
			;
		if (i < d->n)
			continue;
		fs_fill_stat(fs, &st, p->open_files ? RW_MODE : DIR_MODE, 0, fs_now_ms());
		err = dir_add(d, name, &st);
	}
	pthread_mutex_unlock(&fs->pending_lock);
	return err;
}

static int list_artifacts(struct fs *fs, struct target *t, struct dir_handle *d)
{
	struct dirent *de;
	struct art_ref a;
	int fd, err;
	DIR *dir;

	err = fs_art_open(fs, t, 0, &a);
	if (err == -ENOENT && !t->n.subpath[0])
		return 0;
	if (err)
		return err;
	fd = openat(a.dir, a.leaf[0] ? a.leaf : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	err = fd < 0 ? -errno : 0;
	fs_art_close(&a);
	if (err)
		return err;
	dir = fdopendir(fd);
	if (!dir) {
		err = -errno;
		close(fd);
		return err;
	}
	while (!err && (de = readdir(dir))) {
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* gone meanwhile */
		err = dir_add(d, de->d_name, &st);
	}
	closedir(dir);
	return err;
}

static const char *const root_names[] = { "experiments", "runs", "models", ".mlflowfs", NULL };

static const char *const experiment_names[] = { ".experiment.json", ".tags", NULL };

static const char *const run_names[] = { "run_id",  "status", "run.json",  "params", "metrics",
					 "history", "tags",   "artifacts", NULL };

static const char *const control_names[] = { "status", "errors", NULL };

static const char *const model_names[] = { "description", "tags", "aliases", "versions", NULL };

static const char *const version_names[] = { "source",	    "run_id", "status",	   "stage",
					     "description", "tags",   "artifacts", NULL };

static int build_listing(struct fs *fs, const char *path, struct dir_handle *d)
{
	struct list_ctx c = { fs, d, NULL, "", NULL };
	struct store_ref ref;
	struct target t;
	struct stat st;
	char *prefix = NULL;
	int err;

	err = fs_resolve(fs, path, &t);
	if (err)
		return err;
	c.t = &t;
	d->virtual = t.n.kind != NODE_ARTIFACTS;
	fs_fill_stat(fs, &st, DIR_MODE, 0, fs->mounted_ms);
	/* readdirplus passes "." and ".." with our inode number: 0 hides them. */
	st.st_ino = 1;
	err = dir_add(d, ".", &st);
	if (!err)
		err = dir_add(d, "..", &st);
	if (err)
		goto out;
	switch (t.n.kind) {
	case NODE_ROOT:
		err = list_fixed(d, path, root_names);
		break;
	case NODE_EXPERIMENTS:
		err = store_list_experiments(fs->store, list_experiment_cb, &c);
		break;
	case NODE_EXPERIMENT:
		err = list_fixed(d, path, experiment_names);
		if (!err)
			err = store_list_runs(fs->store, t.exp.id, list_run_cb, &c);
		break;
	case NODE_RUN:
		err = list_fixed(d, path, run_names);
		break;
	case NODE_RUNS:
		err = store_list_all_runs(fs->store, list_all_runs_cb, &c);
		break;
	case NODE_CONTROL:
		err = list_fixed(d, path, control_names);
		break;
	case NODE_MODELS:
		err = store_list_models(fs->store, list_model_cb, &c);
		break;
	case NODE_MODEL:
		err = list_fixed(d, path, model_names);
		break;
	case NODE_MODEL_ALIASES:
		err = store_list_aliases(fs->store, t.n.model, list_alias_cb, &c);
		break;
	case NODE_MODEL_VERSIONS:
		err = store_list_versions(fs->store, t.n.model, list_version_cb, &c);
		break;
	case NODE_VERSION:
		err = list_fixed(d, path, version_names);
		break;
	case NODE_ARTIFACTS:
		err = list_artifacts(fs, &t, d);
		break;
	case NODE_EXP_TAGS:
	case NODE_PARAMS:
	case NODE_METRICS:
	case NODE_HISTORY:
	case NODE_TAGS:
	case NODE_MODEL_TAGS:
	case NODE_VERSION_TAGS:
		if (t.n.key) {
			struct store_kv kv;
			int what = fs_key_lookup(fs, &t, &kv);

			if (what == 1) {
				store_kv_release(&kv);
				err = -ENOTDIR;
				break;
			}
			if (what < 0 && fs_pending_state(fs, path) != 2) {
				err = what;
				break;
			}
			if (asprintf(&prefix, "%s/", t.n.key) < 0) {
				prefix = NULL;
				err = -ENOMEM;
				break;
			}
		}
		c.prefix = prefix ? prefix : "";
		err = store_list_kv(fs->store, fs_node_section(&t, &ref), &ref, prefix, list_key_cb,
				    &c);
		if (!err && t.n.kind != NODE_HISTORY)
			err = list_pending(fs, d, path);
		for (size_t i = 0; !err && i < d->n; i++) {
			struct dir_entry *e = &d->v[i];
			off_t size;

			if (!e->history_key)
				continue;
			err = content_history(fs->store, t.run.run_id, e->history_key, NULL, &size);
			set_size(&e->st, size);
		}
		if (!err)
			dir_dedupe(d);
		break;
	default:
		err = -ENOTDIR;
	}
out:
	free(prefix);
	free(c.last_dir);
	fs_target_release(&t);
	return err;
}

static void dir_free(struct fs *fs, struct dir_handle *d)
{
	size_t i;

	pthread_mutex_lock(&fs->open_lock);
	if (d->prev)
		d->prev->next = d->next;
	else
		fs->dirs = d->next;
	if (d->next)
		d->next->prev = d->prev;
	pthread_mutex_unlock(&fs->open_lock);
	for (i = 0; i < d->n; i++) {
		free(d->v[i].name);
		free(d->v[i].history_key);
	}
	free(d->v);
	free(d->path);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

void fs_dir_free_all(struct fs *fs)
{
	while (fs->dirs)
		dir_free(fs, fs->dirs);
}

int fs_opendir(const char *path, struct fuse_file_info *fi)
{
	struct dir_handle *d = calloc(1, sizeof(*d));
	struct fs *fs = fs_get();

	if (!d)
		return -ENOMEM;
	d->path = strdup(path);
	if (!d->path) {
		free(d);
		return -ENOMEM;
	}
	pthread_mutex_init(&d->lock, NULL);
	pthread_mutex_lock(&fs->open_lock);
	d->next = fs->dirs;
	if (d->next)
		d->next->prev = d;
	fs->dirs = d;
	pthread_mutex_unlock(&fs->open_lock);
	fi->fh = (uintptr_t)d;
	return 0;
}

int fs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
	       struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	(void)path;
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
	enum fuse_fill_dir_flags fill = (flags & FUSE_READDIR_PLUS) ? FUSE_FILL_DIR_PLUS : 0;
	int err = 0;
	size_t i;

	pthread_mutex_lock(&d->lock);
	/* A rewind (offset 0) takes a fresh listing. */
	if (!d->ready || off == 0) {
		for (i = 0; i < d->n; i++) {
			free(d->v[i].name);
			free(d->v[i].history_key);
		}
		d->n = 0;
		err = build_listing(fs_get(), d->path, d);
		d->ready = !err;
	}
	/*
	 * Offsets, not the all-at-once mode: libfuse 3.14 drops readdirplus
	 * attributes given without them, and ls -l would then look up every
	 * entry again (machine-limits §3).
	 */
	for (i = (size_t)off; !err && i < d->n; i++) {
		if (filler(buf, d->v[i].name, &d->v[i].st, (off_t)i + 1, fill))
			break;
		if (fill && d->virtual && i >= 2)
			fs_seen(fs_get(), d->path, d->v[i].name);
	}
	pthread_mutex_unlock(&d->lock);
	return err;
}

int fs_releasedir(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	dir_free(fs_get(), (struct dir_handle *)(uintptr_t)fi->fh);
	return 0;
}

/* ---- files ----------------------------------------------------------- */
