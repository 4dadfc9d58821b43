/*
 * fs_keys.c - the key folders: params/, metrics/, history/, tags/ of a run
 * (from its snapshot), an experiment's .tags/, and the registry's tags/.  A
 * key with '/' is a folder path (train/loss is metrics/train/loss); a name
 * made here without a value yet lives in this mount only (fs_pending_*).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs-internal.h"
#include "log.h"

/* What a kind of key folder holds, and how its keys are written. */
struct key_kind {
	enum store_section sec;
	enum handle_kind writer; /* H_READ: read-only */
	size_t value_max;	 /* characters a value may have */
	int of_run;		 /* the keys are in the run's snapshot */
};

static const struct key_kind *key_kind_of(enum node_kind kind)
{
	static const struct key_kind params = { SEC_PARAMS, H_PARAM, STORE_PARAM_VALUE_MAX, 1 },
				     metrics = { SEC_METRICS, H_METRIC, 0, 1 },
				     history = { SEC_METRICS, H_READ, 0, 1 },
				     tags = { SEC_RUN_TAGS, H_TAG, STORE_TAG_VALUE_MAX, 1 },
				     exp_tags = { SEC_EXP_TAGS, H_TAG, STORE_EXP_TAG_VALUE_MAX, 0 },
				     model_tags = { SEC_MODEL_TAGS, H_TAG, REGISTRY_TAG_VALUE_MAX,
						    0 },
				     version_tags = { SEC_VERSION_TAGS, H_TAG,
						      REGISTRY_TAG_VALUE_MAX, 0 },
				     lm_params = { SEC_LM_PARAMS, H_READ, 0, 0 },
				     lm_metrics = { SEC_LM_METRICS, H_READ, 0, 0 },
				     lm_tags = { SEC_LM_TAGS, H_READ, 0, 0 };

	switch (kind) {
	case NODE_PARAMS:
		return &params;
	case NODE_METRICS:
		return &metrics;
	case NODE_HISTORY:
		return &history;
	case NODE_TAGS:
		return &tags;
	case NODE_EXP_TAGS:
		return &exp_tags;
	case NODE_MODEL_TAGS:
		return &model_tags;
	case NODE_LM_PARAMS:
		return &lm_params;
	case NODE_LM_METRICS:
		return &lm_metrics;
	case NODE_LM_TAGS:
		return &lm_tags;
	default:
		return &version_tags;
	}
}

static struct store_ref ref_of(const struct target *t)
{
	struct store_ref ref = { .run_id = t->run.run_id,
				 .experiment_id = t->exp.id,
				 .model = t->n.model,
				 .version = t->n.version,
				 .logged_model = t->lm.id };

	return ref;
}

/* The snapshot section a key kind of a run shows, as a SNAP_* bit. */
static unsigned section_bit(const struct key_kind *kk)
{
	return kk->sec == SEC_PARAMS	? SNAP_PARAMS
	       : kk->sec == SEC_METRICS ? SNAP_METRICS
					: SNAP_TAGS;
}

/* The section of the run's snapshot a key kind shows. */
static const struct store_kvs *section(const struct target *t, const struct key_kind *kk)
{
	switch (kk->sec) {
	case SEC_PARAMS:
		return t->snap->params;
	case SEC_METRICS:
		return t->snap->metrics;
	default:
		return t->snap->tags;
	}
}

static int stop_at_first(void *ctx, const struct store_kv *kv)
{
	(void)ctx;
	(void)kv;
	return 1;
}

/*
 * history/<key>.svg is the plot of metric key, when no key has the name
 * itself (a key "a.svg" shows its history there, and its plot as
 * "a.svg.svg").
 */
static void plot_find(struct target *t, const struct store_kvs *kvs)
{
	size_t n = strlen(t->n.key), s = strlen(".svg");
	char *key;

	if (n <= s || strcmp(t->n.key + n - s, ".svg") || t->n.key[n - s - 1] == '/')
		return;
	key = strndup(t->n.key, n - s);
	t->kv = key ? store_kvs_find(kvs, key) : NULL;
	if (t->kv)
		t->key = KEY_PLOT;
	free(key);
}

/*
 * What t's key names: KEY_FILE (t->kv), KEY_DIR (a prefix of keys),
 * KEY_PLOT (t->kv the metric) or KEY_MISSING, into t->key; 0 or -errno.
 */
static int key_find(struct fs *fs, struct target *t)
{
	const struct key_kind *kk = key_kind_of(t->n.kind);
	struct store_ref ref = ref_of(t);
	const struct store_kvs *kvs;
	char *prefix;
	size_t i;
	int err;

	if (t->key != KEY_UNKNOWN)
		return 0;
	if (asprintf(&prefix, "%s/", t->n.key) < 0)
		return -ENOMEM;
	if (kk->of_run) {
		err = fs_target_snapshot(fs, t, section_bit(kk));
		if (err)
			goto out;
		kvs = section(t, kk);
		t->kv = store_kvs_find(kvs, t->n.key);
		i = store_kvs_lower_bound(kvs, prefix);
		t->key = t->kv ? KEY_FILE
			 : i < (kvs ? kvs->n : 0) && !strncmp(kvs->v[i].key, prefix, strlen(prefix))
				 ? KEY_DIR
				 : KEY_MISSING;
		if (t->key == KEY_MISSING && t->n.kind == NODE_HISTORY)
			plot_find(t, kvs);
		goto out;
	}
	err = fs_store_err(t->path, store_get_kv(fs->store, kk->sec, &ref, t->n.key, &t->kv_own));
	if (!err) {
		t->kv = &t->kv_own;
		t->key = KEY_FILE;
		goto out;
	}
	if (err != -ENOENT)
		goto out;
	err = store_list_kv(fs->store, kk->sec, &ref, prefix, stop_at_first, NULL);
	if (err < 0)
		err = fs_store_err(t->path, err);
	if (err >= 0) {
		t->key = err ? KEY_DIR : KEY_MISSING;
		err = 0;
	}
out:
	free(prefix);
	return err;
}

/* A key's value as its file shows it. */
static int render_value(const struct target *t, const struct store_kv *kv, struct buf *out)
{
	if (t->n.kind == NODE_METRICS || t->n.kind == NODE_LM_METRICS)
		return content_metric(out, kv->num);
	if (buf_adds(out, kv->value))
		return -ENOMEM;
	return buf_addch(out, '\n');
}

/* The time of a folder of keys inside: its run's start (0 outside runs). */
static int64_t key_dir_ms(const struct target *t)
{
	return t->has_run ? t->run.start_time : 0;
}

/* The attributes of the key file kv of t's folder. */
static int key_stat(struct fs *fs, const struct target *t, const struct store_kv *kv,
		    struct stat *st)
{
	const struct key_kind *kk = key_kind_of(t->n.kind);
	struct store_history_stat hs;
	struct buf text = BUF_INIT;
	off_t size;
	int err;

	if (t->n.kind == NODE_HISTORY) {
		err = fs_store_err(t->path,
				   store_history_stat(fs->store, t->run.run_id, kv->key, &hs));
		size = (off_t)hs.bytes;
	} else {
		err = render_value(t, kv, &text);
		size = (off_t)text.len;
	}
	if (!err)
		fs_fill_stat(fs, st, kk->writer == H_READ ? RO_MODE : RW_MODE, size,
			     kk->sec == SEC_METRICS || kk->sec == SEC_LM_METRICS ? kv->timestamp
			     : t->has_run					 ? t->run.start_time
					  : fs_node_ms(fs, t));
	buf_release(&text);
	return err;
}

static int keys_getattr(struct fs *fs, struct target *t, struct stat *st)
{
	int err, state;

	if (!t->n.key) {
		fs_fill_stat(fs, st, DIR_MODE, 0, fs_node_ms(fs, t));
		return 0;
	}
	err = key_find(fs, t);
	if (err)
		return err;
	switch (t->key) {
	case KEY_FILE:
		return key_stat(fs, t, t->kv, st);
	case KEY_PLOT:
		return fs_plot_history_stat(fs, t, t->kv, st);
	case KEY_DIR:
		fs_fill_stat(fs, st, DIR_MODE, 0, key_dir_ms(t));
		return 0;
	default:
		/* Made here, still without a value. */
		state = fs_pending_state(fs, t->path);
		if (!state)
			return -ENOENT;
		fs_fill_stat(fs, st, state == 1 ? RW_MODE : DIR_MODE, 0, fs_now_ms());
		return 0;
	}
}

/* ---- listings -------------------------------------------------------- */

struct key_list {
	struct fs *fs;
	struct target *t;
	struct listing *l;
	const char *prefix; /* "" or "a/b/" */
	char *last_dir;	    /* the last folder added */
};

/*
 * history/<key>.svg next to history/<key>, unless a key has that name.
 * Listed without attributes: its size costs a drawing, which a stat of it
 * (ls -l) pays, not every listing (ls, find, a shell's glob).
 */
static int list_plot(struct key_list *c, const struct store_kv *kv, const char *rest)
{
	char *key = fs_plot_name(kv->key), *name = fs_plot_name(rest);
	struct buf enc = BUF_INIT;
	int err = key && name ? 0 : -ENOMEM;

	if (!err && !store_kvs_find(c->t->snap->metrics, key)) {
		err = path_encode(&enc, name);
		if (!err)
			err = listing_add_lazy(c->l, buf_str(&enc), S_IFREG);
	}
	buf_release(&enc);
	free(key);
	free(name);
	return err;
}

/* One key of a key folder: a file for a direct child, else its folder. */
static int list_key(struct key_list *c, const struct store_kv *kv)
{
	const char *rest = kv->key + strlen(c->prefix);
	const char *slash = strchr(rest, '/');
	struct stat st;
	int err;

	/* A key with an empty segment has no place in the tree of folders. */
	if (!kv->key[0] || kv->key[0] == '/' || strstr(kv->key, "//") ||
	    kv->key[strlen(kv->key) - 1] == '/') {
		log_warn("%s: not listing key '%s': it has an empty segment", listing_path(c->l),
			 kv->key);
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
		return listing_add_encoded(c->l, dir, &st);
	}
	err = key_stat(c->fs, c->t, kv, &st);
	if (!err)
		err = listing_add_encoded(c->l, rest, &st);
	if (!err && c->t->n.kind == NODE_HISTORY)
		err = list_plot(c, kv, rest);
	return err;
}

static int list_key_cb(void *ctx, const struct store_kv *kv)
{
	return list_key(ctx, kv);
}

static int list_pending_cb(void *ctx, const char *name, int is_file)
{
	struct key_list *c = ctx;
	struct stat st;

	if (listing_has(c->l, name))
		return 0;
	fs_fill_stat(c->fs, &st, is_file ? RW_MODE : DIR_MODE, 0, fs_now_ms());
	return listing_add(c->l, name, &st);
}

static int keys_list(struct fs *fs, struct target *t, struct listing *l)
{
	const struct key_kind *kk = key_kind_of(t->n.kind);
	struct key_list c = { fs, t, l, "", NULL };
	struct store_ref ref = ref_of(t);
	const struct store_kvs *kvs;
	char *prefix = NULL;
	size_t i, plen;
	int err = 0;

	if (t->n.key) {
		err = key_find(fs, t);
		if (!err && (t->key == KEY_FILE || t->key == KEY_PLOT))
			err = -ENOTDIR;
		else if (!err && t->key == KEY_MISSING && fs_pending_state(fs, t->path) != 2)
			err = -ENOENT;
		if (err)
			return err;
		if (asprintf(&prefix, "%s/", t->n.key) < 0)
			return -ENOMEM;
		c.prefix = prefix;
	}
	plen = strlen(c.prefix);
	if (kk->of_run) {
		err = fs_target_snapshot(fs, t, section_bit(kk));
		kvs = err ? NULL : section(t, kk);
		for (i = store_kvs_lower_bound(kvs, c.prefix);
		     !err && kvs && i < kvs->n && !strncmp(kvs->v[i].key, c.prefix, plen); i++)
			err = list_key(&c, &kvs->v[i]);
	} else {
		err = store_list_kv(fs->store, kk->sec, &ref, prefix, list_key_cb, &c);
	}
	if (!err && t->n.kind != NODE_HISTORY)
		err = fs_pending_each(fs, t->path, list_pending_cb, &c);
	listing_dedupe(l);
	free(prefix);
	free(c.last_dir);
	return err;
}

/* ---- open files ------------------------------------------------------ */

/*
 * Opens a key file.  Readers get the value as it is now (a history, every
 * point); writers of a param or tag a buffer that starts empty (O_TRUNC, or
 * a new key) or with the value, so that ">>" appends to a tag; writers of a
 * metric nothing: their lines are points.
 */
static int open_key(struct fs *fs, struct target *t, struct fuse_file_info *fi, int created)
{
	const struct key_kind *kk = key_kind_of(t->n.kind);
	int reading = (fi->flags & O_ACCMODE) != O_WRONLY;
	struct buf text = BUF_INIT;
	struct handle *h;
	int err = 0;

	h = fs_handle_new(fs, fs_open_writes(fi->flags) ? kk->writer : H_READ, t->path);
	if (!h)
		return -ENOMEM;
	h->sec = kk->sec;
	h->value_max = kk->value_max;
	h->append = !!(fi->flags & O_APPEND);
	memcpy(h->run_id, t->run.run_id, sizeof(h->run_id));
	memcpy(h->experiment_id, t->exp.id, sizeof(h->experiment_id));
	h->version = t->n.version;
	h->key = strdup(t->n.key);
	if (!h->key || (t->n.model && !(h->model = strdup(t->n.model))))
		err = -ENOMEM;
	if (!err && created) {
		err = fs_pending_add(fs, t->path, 0);
		__atomic_store_n(&h->pending, !err, __ATOMIC_RELEASE);
	}
	if (!err && t->kv && t->n.kind != NODE_HISTORY &&
	    (reading || (h->kind != H_METRIC && !(fi->flags & O_TRUNC))))
		err = render_value(t, t->kv, &text);
	if (!err && reading && t->n.kind == NODE_HISTORY)
		err = fs_store_err(
			t->path, content_history(fs->store, t->run.run_id, t->n.key, &h->content));
	else if (!err && reading)
		err = blob_add(&h->content, text.data, text.len);
	if (!err && h->kind != H_READ && h->kind != H_METRIC && !(fi->flags & O_TRUNC))
		err = buf_add(&h->wbuf, text.data, text.len);
	buf_release(&text);
	return fs_handle_open_done(fs, h, fi, err);
}

static int keys_open(struct fs *fs, struct target *t, struct fuse_file_info *fi, int create,
		     mode_t mode)
{
	const struct key_kind *kk = key_kind_of(t->n.kind);
	int err;

	(void)mode;
	if (!t->n.key)
		return create ? -EEXIST : -EISDIR;
	if ((create || fs_open_writes(fi->flags)) && kk->writer == H_READ)
		return log_refusal(t->path, EACCES,
				   t->n.kind == NODE_HISTORY ? "history is read-only"
							     : WHY_READ_ONLY);
	err = key_find(fs, t);
	if (err)
		return err;
	if (t->key == KEY_DIR)
		return create ? log_refusal(t->path, EISDIR, "'%s' is a folder of keys", t->n.key)
			      : -EISDIR;
	if (t->key == KEY_FILE)
		return open_key(fs, t, fi, 0);
	if (t->key == KEY_PLOT)
		return create ? -EEXIST : fs_plot_history_open(fs, t, fi);
	/* Created by another descriptor, still without a value. */
	if (!create && fs_pending_state(fs, t->path) == 1)
		return open_key(fs, t, fi, 0);
	/*
	 * A new key (create; or open for writing, as the kernel does for a name
	 * it saw within its entry timeout that never got a value): its name
	 * must be one MLflow takes.
	 */
	if (!create && !fs_open_writes(fi->flags))
		return -ENOENT;
	err = fs_name_check(t->path, "key", STORE_KEY_MAX);
	if (!err)
		err = fs_key_check(t->path, t->n.key);
	return err ? err : open_key(fs, t, fi, 1);
}

static int keys_truncate(struct fs *fs, struct target *t, off_t size)
{
	const struct key_kind *kk = key_kind_of(t->n.kind);
	int err;

	/* truncate(1) of a param, tag or metric: a value changes by a write. */
	(void)size;
	if (kk->writer == H_READ)
		return log_refusal(t->path, EACCES, WHY_READ_ONLY);
	if (!t->n.key)
		return -EISDIR;
	err = key_find(fs, t);
	if (err)
		return err;
	if (t->key == KEY_DIR)
		return -EISDIR;
	return t->key == KEY_FILE || fs_pending_state(fs, t->path) == 1 ? 0 : -ENOENT;
}

/* ---- names ----------------------------------------------------------- */

static int keys_mkdir(struct fs *fs, struct target *t, mode_t mode)
{
	int err;

	(void)mode;
	if (!t->n.key)
		return -EEXIST;
	if (t->n.kind == NODE_HISTORY)
		return log_refusal(t->path, EACCES, "history is read-only");
	err = key_find(fs, t);
	if (err)
		return err;
	if (t->key != KEY_MISSING || fs_pending_state(fs, t->path))
		return -EEXIST;
	/* A folder of keys exists only in this mount until a key is written. */
	err = fs_name_check(t->path, "key", STORE_KEY_MAX);
	if (!err)
		err = fs_key_check(t->path, t->n.key);
	return err ? err : fs_pending_add(fs, t->path, 1);
}

static int keys_unlink(struct fs *fs, struct target *t)
{
	const struct key_kind *kk = key_kind_of(t->n.kind);
	struct store_ref ref = ref_of(t);
	int err;

	if (kk->sec == SEC_PARAMS || kk->sec == SEC_METRICS)
		return log_refusal(t->path, EPERM, "MLflow cannot delete params or metrics");
	if (!t->n.key)
		return -EISDIR;
	err = key_find(fs, t);
	if (err)
		return err;
	switch (t->key) {
	case KEY_FILE:
		err = store_delete_tag(fs->store, NULL, kk->sec, &ref, t->n.key);
		if (err)
			return log_refusal(t->path, -err, "cannot delete the tag: %s",
					   fs_store_why(err));
		break;
	case KEY_DIR:
		return -EISDIR;
	default:
		/* Created, never written: nothing stored. */
		if (fs_pending_state(fs, t->path) != 1)
			return -ENOENT;
		break;
	}
	/* Open descriptors of it must not bring it back at their close. */
	fs_file_removed(fs, t->path);
	return 0;
}

static int any_child(void *ctx, const char *name, int is_file)
{
	(void)ctx;
	(void)name;
	(void)is_file;
	return 1;
}

static int keys_rmdir(struct fs *fs, struct target *t)
{
	int err;

	if (!t->n.key)
		return log_refusal(t->path, EPERM, WHY_FOLDER_STAYS);
	err = key_find(fs, t);
	if (err)
		return err;
	switch (t->key) {
	case KEY_FILE:
	case KEY_PLOT:
		return -ENOTDIR;
	case KEY_DIR:
		return -ENOTEMPTY;
	default:
		switch (fs_pending_state(fs, t->path)) {
		case 1:
			return -ENOTDIR;
		case 2:
			/* Its keys may be folders made here too. */
			if (fs_pending_each(fs, t->path, any_child, NULL))
				return -ENOTEMPTY;
			fs_pending_drop(fs, t->path, 1);
			return 0;
		default:
			return -ENOENT;
		}
	}
}

static int keys_rename(struct fs *fs, struct target *a, struct target *b, unsigned flags)
{
	const struct key_kind *kk = key_kind_of(a->n.kind);
	struct store_ref ref = ref_of(a);
	int err;

	if (kk->sec == SEC_PARAMS || kk->sec == SEC_METRICS)
		return log_refusal(a->path, EPERM, "MLflow cannot rename params or metrics");
	/* A tag keeps its owner; rename(2) replaces an existing target. */
	if (kk->writer == H_READ || a->n.kind != b->n.kind || !a->n.key || !b->n.key ||
	    b->missing || strcmp(a->exp.id, b->exp.id) || strcmp(a->run.run_id, b->run.run_id) ||
	    (a->n.model && strcmp(a->n.model, b->n.model)) || a->n.version != b->n.version)
		return fs_refuse_move(a->path, b->path);
	err = key_find(fs, a);
	if (err)
		return err;
	if (a->key == KEY_DIR || (a->key == KEY_MISSING && fs_pending_state(fs, a->path) == 2))
		/* mv moves a folder of keys key by key then, as across filesystems. */
		return log_refusal(a->path, EXDEV, "a folder of keys is moved one key at a time");
	if (a->key == KEY_MISSING)
		return fs_pending_state(fs, a->path) == 1
			       ? log_refusal(a->path, EPERM, "the tag has no value yet to move")
			       : -ENOENT;
	/* The same run: one snapshot answers for both names. */
	if (a->snap && !b->snap)
		b->snap = store_snapshot_hold(a->snap);
	err = key_find(fs, b);
	if (err)
		return err;
	if (b->key == KEY_DIR)
		return log_refusal(b->path, EISDIR, "'%s' is a folder of keys", b->n.key);
	if (b->key == KEY_FILE && (flags & RENAME_NOREPLACE))
		return -EEXIST;
	err = fs_name_check(b->path, "key", STORE_KEY_MAX);
	if (!err)
		err = fs_key_check(b->path, b->n.key);
	if (!err && (err = store_rename_tag(fs->store, NULL, kk->sec, &ref, a->n.key, b->n.key)))
		err = log_refusal(a->path, -err, "cannot rename the tag: %s", fs_store_why(err));
	return err;
}

const struct kind_ops fs_keys_ops = {
	.getattr = keys_getattr,
	.list = keys_list,
	.open = keys_open,
	.mkdir = keys_mkdir,
	.unlink = keys_unlink,
	.rmdir = keys_rmdir,
	.rename = keys_rename,
	.truncate = keys_truncate,
};
