/*
 * fs.c - the FUSE handlers and the table of node kinds.  Every handler is
 * the same line: resolve the path (fs_node.c), look up the operations of
 * the node's kind, call one, fill FUSE's answer.  Operations on an open
 * file go to its handle (fs_file.c).  Every handler returns 0 or -errno;
 * a refusal the user could not foresee from the tree alone (a limit, a
 * store's failure, something MLflow cannot do) is logged with the path and
 * the reason (log_refusal), the plain answers of any filesystem (ENOENT,
 * EEXIST, ENOTEMPTY) are not.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fs-internal.h"
#include "fs.h"
#include "log.h"
#include "options.h"

/* The operations of each kind of node. */
static const struct kind_ops *const kinds[NODE_COUNT] = {
	[NODE_ROOT] = &fs_fixed_dir_ops,
	[NODE_EXPERIMENTS] = &fs_experiments_ops,
	[NODE_EXPERIMENT] = &fs_experiment_ops,
	[NODE_EXP_JSON] = &fs_ro_file_ops,
	[NODE_EXP_TAGS] = &fs_keys_ops,
	[NODE_PLOTS] = &fs_plots_ops,
	[NODE_RUN] = &fs_run_ops,
	[NODE_RUN_ID] = &fs_ro_file_ops,
	[NODE_STATUS] = &fs_status_ops,
	[NODE_RUN_JSON] = &fs_ro_file_ops,
	[NODE_PARAMS] = &fs_keys_ops,
	[NODE_METRICS] = &fs_keys_ops,
	[NODE_HISTORY] = &fs_keys_ops,
	[NODE_TAGS] = &fs_keys_ops,
	[NODE_ARTIFACTS] = &fs_artifacts_ops,
	[NODE_RUNS] = &fs_runs_ops,
	[NODE_RUNS_LINK] = &fs_link_ops,
	[NODE_CONTROL] = &fs_fixed_dir_ops,
	[NODE_CONTROL_STATUS] = &fs_ro_file_ops,
	[NODE_CONTROL_ERRORS] = &fs_ro_file_ops,
	[NODE_CONTROL_PARSED] = &fs_ro_file_ops,
	[NODE_MODELS] = &fs_models_ops,
	[NODE_MODEL] = &fs_model_ops,
	[NODE_MODEL_DESC] = &fs_ro_file_ops,
	[NODE_MODEL_TAGS] = &fs_keys_ops,
	[NODE_MODEL_ALIASES] = &fs_aliases_ops,
	[NODE_MODEL_ALIAS] = &fs_alias_ops,
	[NODE_MODEL_VERSIONS] = &fs_versions_ops,
	[NODE_VERSION] = &fs_version_ops,
	[NODE_VERSION_FIELD] = &fs_ro_file_ops,
	[NODE_VERSION_TAGS] = &fs_keys_ops,
	[NODE_VERSION_ARTIFACTS] = &fs_link_ops,
	[NODE_RUNS_TABLE] = &fs_ro_file_ops,
	[NODE_RUN_MODELS] = &fs_run_models_ops,
	[NODE_RUN_MODEL] = &fs_link_ops,
	[NODE_LOGGED_MODELS] = &fs_logged_models_ops,
	[NODE_LOGGED_MODEL] = &fs_logged_model_ops,
	[NODE_LM_STATUS] = &fs_ro_file_ops,
	[NODE_LM_PARAMS] = &fs_keys_ops,
	[NODE_LM_METRICS] = &fs_keys_ops,
	[NODE_LM_TAGS] = &fs_keys_ops,
	[NODE_LM_FILE] = &fs_lm_files_ops,
};

static const struct kind_ops *ops_of(const struct target *t)
{
	return kinds[t->n.kind];
}

static struct handle *handle_of(const struct fuse_file_info *fi)
{
	return fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
}

/* The path of a request that may come without one (nullpath_ok): a
 * handle's own, which never moves for the files that ask (artifacts
 * answer from their descriptor before). */
static const char *path_of(const char *path, const struct handle *h)
{
	return path ? path : h ? h->path : "/";
}

/* ---- attributes, links, listings --------------------------------------- */

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct fs *fs = fs_get();
	struct handle *h = handle_of(fi);
	struct target t;
	int err;

	if (h && h->kind == H_ARTIFACT)
		return art_fstat(h->art, st);
	path = path_of(path, h);
	err = fs_resolve(fs, path, &t, 0);
	if (!err)
		err = ops_of(&t)->getattr(fs, &t, st);
	/* Removed while open, fstat() still answers, from the handle: the
	 * kernel's comes with it, or by the name libfuse hid the file under. */
	if (err == -ENOENT && h)
		err = fs_file_removed_stat(fs, h, st);
	else if (err == -ENOENT && fs_hidden_name(path))
		err = fs_file_hidden_stat(fs, path, st);
	if (err == -ENOENT && h && __atomic_load_n(&h->pending, __ATOMIC_ACQUIRE)) {
		/* Created, still without a value. */
		fs_fill_stat(fs, st, RW_MODE, 0, fs_now_ms());
		err = 0;
	} else if (!err && t.n.kind != NODE_ARTIFACTS) {
		fs_seen(fs, path, NULL);
	}
	fs_target_release(&t);
	return err;
}

static int fs_readlink(const char *path, char *out, size_t size)
{
	struct fs *fs = fs_get();
	struct buf text = BUF_INIT;
	struct target t;
	int err;

	if (size == 0)
		return -EINVAL;
	err = fs_resolve(fs, path, &t, 0);
	if (!err)
		err = ops_of(&t)->readlink ? ops_of(&t)->readlink(fs, &t, &text) : -EINVAL;
	if (!err)
		snprintf(out, size, "%.*s", (int)text.len, text.data ? text.data : "");
	buf_release(&text);
	fs_target_release(&t);
	return err;
}

/*
 * A view of t for one of its fixed entries: t's objects, borrowed, under
 * another kind.  Only its snapshot is its own (release with child_done).
 */
static void child_view(const struct target *t, const struct node_def *d, const char *path,
		       struct target *c)
{
	*c = *t;
	c->n.kind = d->kind;
	c->n.field = (enum version_field)d->field;
	c->n.key = NULL;
	c->n.subpath = (char *)"";
	c->path = path;
	c->snap = store_snapshot_hold(t->snap);
	c->key = KEY_UNKNOWN;
	c->kv = NULL;
	memset(&c->kv_own, 0, sizeof(c->kv_own));
}

static void child_done(struct target *c)
{
	store_snapshot_put(c->snap);
	store_kv_release(&c->kv_own);
}

/* Every entry of the folder path: its fixed ones from the tree's table,
 * then what its kind lists. */
static int fill_listing(struct fs *fs, const char *path, struct listing *l)
{
	const struct node_def *d;
	struct buf child = BUF_INIT;
	struct target t, c;
	struct stat st;
	size_t pos = 0;
	int err, fixed = 0;

	err = fs_resolve(fs, path, &t, 0);
	if (err)
		return err;
	while (!err && (d = path_fixed_child(t.n.kind, &pos))) {
		fixed = 1;
		buf_reset(&child);
		err = buf_addf(&child, "%s/%s", strcmp(path, "/") ? path : "", d->name);
		if (err)
			break;
		if (d->kind == NODE_RUNS_TABLE) {
			err = listing_add_lazy(l, d->name, S_IFREG);
			continue;
		}
		child_view(&t, d, buf_str(&child), &c);
		err = kinds[d->kind]->getattr(fs, &c, &st);
		child_done(&c);
		if (err == -ENOENT) {
			err = 0; /* not there for this object (a version's artifacts) */
			continue;
		}
		if (!err)
			err = listing_add(l, d->name, &st);
	}
	if (!err && ops_of(&t)->list)
		err = fs_store_err(path, ops_of(&t)->list(fs, &t, l));
	else if (!err && !fixed)
		err = -ENOTDIR;
	buf_release(&child);
	fs_target_release(&t);
	return err;
}

static int fs_opendir(const char *path, struct fuse_file_info *fi)
{
	struct dir_handle *d = fs_dir_open(fs_get(), path);

	if (!d)
		return -ENOMEM;
	fi->fh = (uintptr_t)d;
	return 0;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	(void)path;
	return fs_dir_read(fs_get(), (struct dir_handle *)(uintptr_t)fi->fh, off, buf, filler,
			   !!(flags & FUSE_READDIR_PLUS), fill_listing);
}

static int fs_releasedir(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	fs_dir_release(fs_get(), (struct dir_handle *)(uintptr_t)fi->fh);
	return 0;
}

/* ---- names ------------------------------------------------------------- */

static int fs_mkdir(const char *path, mode_t mode)
{
	struct fs *fs = fs_get();
	struct target t;
	int err = fs_resolve(fs, path, &t, 1);

	if (err == -ENOENT && !t.parsed)
		err = log_refusal(
			path, EPERM,
			"only experiments, runs, models, key folders and artifact folders "
			"can be made here");
	else if (!err)
		err = ops_of(&t)->mkdir ? ops_of(&t)->mkdir(fs, &t, mode) : -EEXIST;
	fs_target_release(&t);
	return err;
}

/* unlink (dir 0) and rmdir (dir 1) of a name. */
static int remove_name(const char *path, int dir)
{
	struct fs *fs = fs_get();
	const struct kind_ops *ops;
	struct target t;
	int err = fs_resolve(fs, path, &t, 0);

	ops = err ? NULL : ops_of(&t);
	if (ops && dir)
		err = ops->rmdir ? ops->rmdir(fs, &t) : log_refusal(path, EPERM, WHY_FOLDER_STAYS);
	else if (ops)
		err = ops->unlink ? ops->unlink(fs, &t) : log_refusal(path, EPERM, WHY_FILE_STAYS);
	fs_target_release(&t);
	return err;
}

static int fs_unlink(const char *path)
{
	return remove_name(path, 0);
}

static int fs_rmdir(const char *path)
{
	return remove_name(path, 1);
}

static int fs_rename(const char *from, const char *to, unsigned int flags)
{
	struct fs *fs = fs_get();
	struct target a, b;
	int err = fs_resolve(fs, from, &a, 0);

	if (err) {
		fs_target_release(&a);
		return err;
	}
	/*
	 * libfuse hides an open file that is removed by renaming it to
	 * .fuse_hidden<16 hex digits>: for a virtual file that is its removal.
	 * Only then: a rename by hand to such a name is an ordinary rename.
	 */
	if (a.n.kind != NODE_ARTIFACTS && !flags && fs_is_hide(fs, from, to)) {
		err = ops_of(&a)->unlink ? ops_of(&a)->unlink(fs, &a)
					 : log_refusal(from, EPERM, WHY_FILE_STAYS);
		if (!err)
			fs_file_hidden(fs, from, to);
		fs_target_release(&a);
		return err;
	}
	/* The new name need not exist; what it would be is enough. */
	err = fs_resolve(fs, to, &b, 1);
	if (err == -ENOENT) {
		b.lookup_err = err;
		if (!b.parsed)
			b.n.kind = NODE_ROOT;
		err = 0;
	}
	if (!err && a.n.kind != NODE_ARTIFACTS && (flags & ~(unsigned)RENAME_NOREPLACE))
		err = log_refusal(from, EINVAL, "this rename flag works on artifacts only");
	else if (!err)
		err = ops_of(&a)->rename ? ops_of(&a)->rename(fs, &a, &b, flags)
					 : fs_refuse_move(from, to);
	fs_target_release(&a);
	fs_target_release(&b);
	return err;
}

/*
 * Resolves a path that must name something below a run's artifacts/ (not
 * the folder itself); otherwise refuses with err_other, logging why.
 */
/* art_only() on a target resolved already, err the resolution's result. */
static int art_check(const char *path, const struct target *t, int err, int err_other,
		     const char *why)
{
	if (err == -ENOENT && t->parsed && t->n.kind == NODE_ARTIFACTS)
		return -ENOENT; /* a folder above is missing */
	if (!err && t->n.kind == NODE_ARTIFACTS && t->n.subpath[0])
		return 0;
	return log_refusal(path, err_other, "%s", why);
}

static int art_only(struct fs *fs, const char *path, struct target *t, int err_other,
		    const char *why)
{
	memset(t, 0, sizeof(*t));
	return art_check(path, t, fs_resolve(fs, path, t, 0), err_other, why);
}

static int fs_symlink(const char *target, const char *path)
{
	struct fs *fs = fs_get();
	struct target t;
	int err;

	memset(&t, 0, sizeof(t));
	err = fs_resolve(fs, path, &t, 0);
	/* The registry's links (a new version, an alias) or an artifact's; a
	 * missing model is ENOENT, as a missing folder is. */
	if (!t.parsed || (t.n.kind != NODE_VERSION && t.n.kind != NODE_MODEL_ALIAS))
		err = art_check(path, &t, err, EPERM,
				"symbolic links can be made in artifacts, and in a model's "
				"versions/ and aliases/ only");
	if (!err)
		err = ops_of(&t)->symlink(fs, target, &t);
	fs_target_release(&t);
	return err;
}

static int fs_link(const char *from, const char *to)
{
	static const char why[] = "hard links work between artifacts only";
	struct fs *fs = fs_get();
	struct target a, b;
	int err = art_only(fs, from, &a, ENOTSUP, why);

	memset(&b, 0, sizeof(b));
	if (!err)
		err = art_only(fs, to, &b, ENOTSUP, why);
	if (!err)
		err = ops_of(&a)->link(fs, &a, &b);
	fs_target_release(&a);
	fs_target_release(&b);
	return err;
}

static int fs_mknod(const char *path, mode_t mode, dev_t dev)
{
	struct fs *fs = fs_get();
	struct target t;
	int err = art_only(fs, path, &t, EPERM, "special files can be made in artifacts only");

	if (!err)
		err = ops_of(&t)->mknod(fs, &t, mode, dev);
	fs_target_release(&t);
	return err;
}

/* ---- attributes of what passes through; refusals elsewhere ------------- */

/*
 * Whether a chmod or chown (-1: that id stays) would leave t as it is:
 * that succeeds, as on any file, so that cp -a, rsync -a and mv from
 * another filesystem may set what is there already.
 */
static int unchanged(struct fs *fs, struct target *t, mode_t mode, uid_t uid, gid_t gid)
{
	struct stat st;

	if (!ops_of(t)->getattr || ops_of(t)->getattr(fs, t, &st))
		return 0;
	return (mode == (mode_t)-1 || (st.st_mode & 07777) == (mode & 07777)) &&
	       (uid == (uid_t)-1 || uid == st.st_uid) && (gid == (gid_t)-1 || gid == st.st_gid);
}

static int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct fs *fs = fs_get();
	struct handle *h = handle_of(fi);
	struct target t;
	int err;

	if (h && h->kind == H_ARTIFACT)
		return art_chmod(fs->art, NULL, h->art, mode);
	path = path_of(path, h);
	err = fs_resolve(fs, path, &t, 0);
	if (!err && ops_of(&t)->chmod)
		err = ops_of(&t)->chmod(fs, &t, mode);
	else if (!err && !unchanged(fs, &t, mode, (uid_t)-1, (gid_t)-1))
		err = log_refusal(path, EPERM, "virtual files have fixed permissions");
	fs_target_release(&t);
	return err;
}

static int fs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	struct fs *fs = fs_get();
	struct handle *h = handle_of(fi);
	struct target t;
	int err;

	if (h && h->kind == H_ARTIFACT)
		return art_chown(fs->art, NULL, h->art, uid, gid);
	path = path_of(path, h);
	err = fs_resolve(fs, path, &t, 0);
	if (!err && ops_of(&t)->chown)
		err = ops_of(&t)->chown(fs, &t, uid, gid);
	else if (!err && !unchanged(fs, &t, (mode_t)-1, uid, gid))
		err = log_refusal(path, EPERM, "virtual files have a fixed owner");
	fs_target_release(&t);
	return err;
}

static int fs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	struct fs *fs = fs_get();
	struct handle *h = handle_of(fi);
	struct target t;
	int err;

	if (h && h->kind == H_ARTIFACT)
		return art_utimens(fs->art, NULL, h->art, tv);
	if (h || !path)
		return 0; /* touch on a virtual file: its times come from the store */
	err = fs_resolve(fs, path, &t, 0);
	/* Also a created file still without a value: nothing to set. */
	if (!err && ops_of(&t)->utimens)
		err = ops_of(&t)->utimens(fs, &t, tv);
	fs_target_release(&t);
	return err;
}

static int fs_access(const char *path, int mask)
{
	struct fs *fs = fs_get();
	struct target t;
	struct stat st;
	int err;

	err = fs_resolve(fs, path, &t, 0);
	if (!err && ops_of(&t)->access) {
		err = ops_of(&t)->access(fs, &t, mask);
	} else if (!err) {
		err = ops_of(&t)->getattr(fs, &t, &st);
		if (!err && (mask & W_OK) && !(st.st_mode & S_IWUSR))
			err = -EACCES;
		if (!err && (mask & X_OK) && !(st.st_mode & S_IXUSR))
			err = -EACCES;
	}
	fs_target_release(&t);
	return err;
}

static int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct fs *fs = fs_get();
	struct handle *h = handle_of(fi);
	struct target t;
	int err;

	if (h && h->kind != H_READ)
		return fs_file_truncate(h, size);
	path = path_of(path, h);
	err = fs_resolve(fs, path, &t, 0);
	if (!err)
		err = ops_of(&t)->truncate ? ops_of(&t)->truncate(fs, &t, size)
					   : log_refusal(path, EACCES, WHY_READ_ONLY);
	fs_target_release(&t);
	return err;
}

static int fs_statfs(const char *path, struct statvfs *st)
{
	struct fs *fs = fs_get();
	const char *root = store_artifact_root(fs->store);
	struct target t;
	int err = 1;

	memset(&t, 0, sizeof(t));
	/* Below a run's artifacts/, its repository's; elsewhere the artifact
	 * root's, where new artifacts go. */
	if (path && !fs_resolve(fs, path, &t, 0) && ops_of(&t)->statfs)
		err = ops_of(&t)->statfs(fs, &t, st);
	fs_target_release(&t);
	/* A repository that cannot tell (not on this machine) answers as the
	 * artifact root does, so that df works anywhere in the tree. */
	if (err <= 0 && err != -ENOTSUP)
		return err;
	return statvfs(root ? root : "/", st) < 0 && statvfs("/", st) < 0 ? -errno : 0;
}

/* No extended attributes are kept, anywhere: refused and logged.  (getxattr
 * and listxattr stay unimplemented, so the kernel stops asking at once.) */
static int fs_setxattr(const char *path, const char *name, const char *value, size_t size,
		       int flags)
{
	(void)value;
	(void)size;
	(void)flags;
	return log_refusal(path, ENOTSUP, "extended attributes are not kept ('%s')", name);
}

static int fs_removexattr(const char *path, const char *name)
{
	return log_refusal(path, ENOTSUP, "extended attributes are not kept ('%s')", name);
}

/* ---- open files -------------------------------------------------------- */

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	struct fs *fs = fs_get();
	struct target t;
	int err;

	err = fs_resolve(fs, path, &t, 0);
	if (!err)
		err = ops_of(&t)->open ? ops_of(&t)->open(fs, &t, fi, 0, 0) : -EISDIR;
	fs_target_release(&t);
	return err;
}

static int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	static const char where[] = "only run folders, keys and artifacts can be made here";
	struct fs *fs = fs_get();
	struct target t;
	int err = fs_resolve(fs, path, &t, 1);

	/* A missing experiment or run here is a file where only folders live. */
	if ((err == -ENOENT &&
	     (!t.parsed || !(path_is_key_kind(t.n.kind) || t.n.kind == NODE_ARTIFACTS))) ||
	    (!err && (t.missing || !ops_of(&t)->open)))
		err = log_refusal(path, EPERM, "%s", where);
	else if (!err)
		err = ops_of(&t)->open(fs, &t, fi, 1, mode);
	fs_target_release(&t);
	return err;
}

static int fs_read(const char *path, char *out, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)path;
	return fs_file_read(handle_of(fi), out, size, off);
}

static int fs_write(const char *path, const char *data, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	(void)path;
	return fs_file_write(fs_get(), handle_of(fi), data, size, off);
}

static int fs_flush(const char *path, struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);

	(void)path;
	/* close() makes what the descriptor wrote safe (mlflowfs(1), WHEN DATA IS SAFE). */
	return fs_file_sync(fs_get(), h, 0, 1);
}

static int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);

	(void)path;
	if (h->kind == H_ARTIFACT)
		return art_sync(h->art, datasync ? ART_SYNC_DATA : ART_SYNC_ALL);
	return fs_file_sync(fs_get(), h, 1, 0);
}

static int fs_release(const char *path, struct fuse_file_info *fi)
{
	struct fs *fs = fs_get();
	struct handle *h = handle_of(fi);

	(void)path;
	/* flush normally did this; release errors reach nobody, so they are logged. */
	if (h->kind != H_ARTIFACT)
		fs_file_sync(fs, h, 0, 1);
	fs_handle_free(fs, h);
	return 0;
}

static int fs_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
	struct handle *h = handle_of(fi);

	(void)path;
	if (h->kind != H_ARTIFACT)
		return -EOPNOTSUPP;
	return art_fallocate(h->art, mode, off, len);
}

/* ---- the daemon -------------------------------------------------------- */

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	/*
	 * Kernel caches of 1 s (never 0); no negative cache, so a name made by
	 * another client shows at once.  A file removed while open is hidden
	 * by libfuse (renamed .fuse_hidden*, unlinked at its last close), so
	 * fstat() and the like on it keep working: the kernel asks for those
	 * by path, and the high-level API could not find a path for a removed
	 * node.  The rename is a removal here (fs_art.c), so nothing hidden
	 * stays on disk.  Read-only descriptors need no flush.
	 */
	cfg->hard_remove = 0;
	cfg->entry_timeout = 1.0;
	cfg->attr_timeout = 1.0;
	cfg->negative_timeout = 0;
	cfg->use_ino = 0;
	cfg->nullpath_ok = 1;
	cfg->no_rofd_flush = 1;
	/* Never writeback_cache: the kernel would hold lines for 30 s. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* Always readdirplus, so ls -l needs no lookups. */
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	fs_watch_start(fuse_get_context()->private_data, fuse_get_context()->fuse);
	return fuse_get_context()->private_data;
}

struct fs *fs_new(struct store *store, struct art_registry *art, const struct mfs_config *cfg)
{
	struct fs *fs = calloc(1, sizeof(*fs));

	if (!fs)
		return NULL;
	fs->store = store;
	fs->art = art;
	fs->cfg = cfg;
	if (!cfg->noparse && !(fs->ingest = ingest_new())) {
		free(fs);
		return NULL;
	}
	fs->uid = getuid();
	fs->gid = getgid();
	fs->mounted_ms = fs_now_ms();
	pthread_mutex_init(&fs->pending_lock, NULL);
	pthread_mutex_init(&fs->open_lock, NULL);
	pthread_mutex_init(&fs->seen_lock, NULL);
	pthread_mutex_init(&fs->watch_lock, NULL);
	pthread_mutex_init(&fs->views_lock, NULL);
	fs_plot_init(fs);
	return fs;
}

void fs_free(struct fs *fs)
{
	struct pending *p;

	if (!fs)
		return;
	fs_stop(fs);
	fs_file_free_all(fs);
	fs_dir_free_all(fs);
	fs_views_free(fs);
	ingest_free(fs->ingest);
	while ((p = fs->pending)) {
		fs->pending = p->next;
		free(p->path);
		free(p);
	}
	pthread_mutex_destroy(&fs->pending_lock);
	pthread_mutex_destroy(&fs->open_lock);
	pthread_mutex_destroy(&fs->seen_lock);
	pthread_mutex_destroy(&fs->watch_lock);
	pthread_mutex_destroy(&fs->views_lock);
	fs_plot_free(fs);
	free(fs);
}

const struct fuse_operations fs_operations = {
	.init = fs_init,
	.getattr = fs_getattr,
	.readlink = fs_readlink,
	.mknod = fs_mknod,
	.mkdir = fs_mkdir,
	.unlink = fs_unlink,
	.rmdir = fs_rmdir,
	.symlink = fs_symlink,
	.rename = fs_rename,
	.link = fs_link,
	.chmod = fs_chmod,
	.chown = fs_chown,
	.truncate = fs_truncate,
	.open = fs_open,
	.read = fs_read,
	.write = fs_write,
	.statfs = fs_statfs,
	.flush = fs_flush,
	.release = fs_release,
	.fsync = fs_fsync,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.releasedir = fs_releasedir,
	.access = fs_access,
	.create = fs_create,
	.utimens = fs_utimens,
	.fallocate = fs_fallocate,
	.setxattr = fs_setxattr,
	.removexattr = fs_removexattr,
};
