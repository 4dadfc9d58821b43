/*
 * fs_art.c - the kind of a run's artifacts/: every operation goes to the
 * artifact repository that serves the run's artifact URI (art.h), which in
 * the local store passes it through to the folder on disk, as a bind mount
 * would.  Files removed while open stay with their handles.  A writer of a
 * recognised name gets the file's parse state (ingest.h), which a removal,
 * rename or truncation reaches too.  Also the files of an MLflow 3 logged
 * model, from its own artifact folder, read-only.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fs-internal.h"
#include "log.h"
#include "options.h"

/*
 * err, logged as a refusal with the repository's reason when it has one:
 * a disk's own answers have none and pass as a bind mount's would; what a
 * server refused or failed at says why.
 */
static int art_err(const char *path, int err)
{
	if (err < 0 && art_errmsg()[0])
		return log_refusal(path, -err, "%s", art_errmsg());
	return err;
}

/* The location a target below artifacts/ names (borrowed from t). */
static void loc_of(const struct target *t, struct art_loc *loc)
{
	/* A logged model's files are in a folder of their own, not the run's. */
	loc->uri = t->has_lm		 ? t->lm.artifact_location
		   : t->run.artifact_uri ? t->run.artifact_uri
					 : "";
	loc->path = t->n.subpath ? t->n.subpath : "";
}

/* New names a root daemon makes belong to whoever made them; folders the
 * repository makes on its own follow the mounting user's umask. */
static void caller_of(struct fs *fs, struct art_caller *c)
{
	struct fuse_context *ctx = fuse_get_context();

	c->uid = ctx->uid;
	c->gid = ctx->gid;
	c->umask = fs->cfg->umask;
}

/* ---- files removed while open ------------------------------------------ */

/*
 * With hard_remove off, libfuse does not pass an unlink of an open file on:
 * it renames the file to ".fuse_hidden" and 16 hex digits in its folder,
 * and unlinks that name at the last close.  Such a rename is a removal here
 * (fs_art_hide): the name goes from the repository at once, the open files
 * stay with their handles, renamed to the hidden name, so that calls by that
 * name (the fstat, fchmod and futimens the kernel sends by path) reach the
 * open file.  Nothing is kept on disk under another name, so no listing and
 * no MLflow client ever sees it, and hidden names cannot collide.
 * Why not hard_remove: the kernel's fstat() carries no file handle, and
 * libfuse cannot find a path for a removed node, so fstat would fail.
 */

/* The open artifact at exactly this path; open_lock held. */
static struct handle *open_at(struct fs *fs, const char *path)
{
	struct handle *h;

	for (h = fs->handles; h; h = h->next)
		if (h->kind == H_ARTIFACT && !strcmp(h->path, path))
			return h;
	return NULL;
}

/*
 * Calls fn on the open file the hidden name path stands for: 1 if there is
 * none (the caller goes on by name), else fn's result.  Under open_lock, so
 * that a release cannot free the file meanwhile.
 */
static int with_hidden(struct fs *fs, const char *path,
		       int (*fn)(struct fs *fs, const struct art_loc *loc, struct art_file *f,
				 void *arg),
		       void *arg)
{
	struct handle *h;
	int err = 1;

	if (!fs_hidden_name(path))
		return 1;
	pthread_mutex_lock(&fs->open_lock);
	h = open_at(fs, path);
	if (h && h->hidden)
		err = fn(fs, NULL, h->art, arg);
	pthread_mutex_unlock(&fs->open_lock);
	return err;
}

/* Renames the open artifacts at from (a file, or below a folder) to to, as
 * libfuse renames its own nodes, for a later hide to find them. */
static int rename_open(struct fs *fs, const char *from, const char *to, int hide)
{
	size_t flen = strlen(from);
	struct handle *h;
	int err = 0;

	pthread_mutex_lock(&fs->open_lock);
	for (h = fs->handles; h && !err; h = h->next) {
		char *p;

		if (h->kind != H_ARTIFACT || strncmp(h->path, from, flen) ||
		    (h->path[flen] && h->path[flen] != '/'))
			continue;
		if (asprintf(&p, "%s%s", to, h->path + flen) < 0) {
			err = -ENOMEM;
			break;
		}
		free(h->path);
		h->path = p;
		if (hide)
			h->hidden = 1; /* a hidden file moved with its folder stays hidden */
	}
	pthread_mutex_unlock(&fs->open_lock);
	return err;
}

/* A rename in artifacts/ succeeded: open files below from follow it. */
static void moved(struct fs *fs, const char *from, const char *to, unsigned int flags)
{
	int err;

	if (flags & RENAME_EXCHANGE) {
		/* Through a name that no path has, as a swap needs. */
		err = rename_open(fs, from, "\n", 0);
		if (!err)
			err = rename_open(fs, to, from, 0);
		if (!err)
			err = rename_open(fs, "\n", to, 0);
	} else {
		err = rename_open(fs, from, to, 0);
	}
	if (err)
		log_warn("%s: open files keep their old name: %s", from, strerror(-err));
}

static int hide(struct fs *fs, struct target *t, const char *to)
{
	struct art_loc loc;
	int err;

	loc_of(t, &loc);
	err = art_remove(fs->art, &loc, 0);
	if (!err) {
		ingest_forget(fs->ingest, t->run.run_id, loc.path);
		err = rename_open(fs, t->path, to, 1);
	}
	return art_err(t->path, err);
}

/* ---- the kind ---------------------------------------------------------- */

static int on_fstat(struct fs *fs, const struct art_loc *loc, struct art_file *f, void *arg)
{
	(void)fs;
	(void)loc;
	return art_fstat(f, arg);
}

static int art_getattr(struct fs *fs, struct target *t, struct stat *st)
{
	struct art_loc loc;
	int err = with_hidden(fs, t->path, on_fstat, st);

	if (err <= 0)
		return err;
	loc_of(t, &loc);
	err = art_stat(fs->art, &loc, st);
	if ((err == -ENOENT || err == -ENOTSUP) && !loc.path[0]) {
		/* No artifact yet: an empty folder until the first one.  Out
		 * of reach (mlflowfs(1), ARTIFACTS): a folder that refuses what is in it, so
		 * that the run's folder still lists. */
		fs_fill_stat(fs, st, DIR_MODE, 0, t->run.start_time);
		return 0;
	}
	return art_err(t->path, err);
}

int fs_art_folder(struct fs *fs, struct target *t)
{
	struct stat st;
	int err = art_getattr(fs, t, &st);

	return err ? err : S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int list_cb(void *ctx, const char *name, const struct stat *st)
{
	return listing_add(ctx, name, st);
}

static int art_list_kind(struct fs *fs, struct target *t, struct listing *l)
{
	struct art_loc loc;
	int err;

	listing_untracked(l);
	loc_of(t, &loc);
	err = art_list(fs->art, &loc, list_cb, l);
	if (err == -ENOENT && !loc.path[0])
		return 0; /* no artifact yet */
	return art_err(t->path, err);
}

static int art_open_kind(struct fs *fs, struct target *t, struct fuse_file_info *fi, int create,
			 mode_t mode)
{
	struct art_caller c;
	struct art_loc loc;
	struct art_file *f;
	struct handle *h;
	int err;

	if (!t->n.subpath[0])
		return create ? -EEXIST : -EISDIR;
	loc_of(t, &loc);
	caller_of(fs, &c);
	err = art_open(fs->art, &loc, fi->flags | (create ? O_CREAT : 0), mode, &c, &f);
	if (err)
		return art_err(t->path, err);
	h = fs_handle_new(fs, H_ARTIFACT, t->path);
	if (!h) {
		art_close(f);
		return -ENOMEM;
	}
	h->art = f;
	/* A writer of a file a training program writes: also parsed
	 * (mlflowfs(1), PARSED FILES).  Without memory it is only stored. */
	if (fs_open_writes(fi->flags) && !t->has_lm)
		h->ing = ingest_open(fs->ingest, t->run.run_id, loc.uri, loc.path,
				     !!(fi->flags & O_TRUNC));
	fi->fh = (uintptr_t)h;
	return 0;
}

static int art_mkdir_kind(struct fs *fs, struct target *t, mode_t mode)
{
	struct art_caller c;
	struct art_loc loc;

	if (!t->n.subpath[0])
		return -EEXIST;
	loc_of(t, &loc);
	caller_of(fs, &c);
	return art_err(t->path, art_mkdir(fs->art, &loc, mode, &c));
}

static int art_unlink_kind(struct fs *fs, struct target *t)
{
	struct art_loc loc;
	int err;

	if (!t->n.subpath[0])
		return -EISDIR;
	loc_of(t, &loc);
	err = art_err(t->path, art_remove(fs->art, &loc, 0));
	if (!err)
		ingest_forget(fs->ingest, t->run.run_id, loc.path);
	return err;
}

static int art_rmdir_kind(struct fs *fs, struct target *t)
{
	struct art_loc loc;
	int err;

	if (!t->n.subpath[0])
		return log_refusal(t->path, EPERM, "a run's artifacts folder stays");
	loc_of(t, &loc);
	err = art_err(t->path, art_remove(fs->art, &loc, 1));
	if (!err)
		ingest_forget(fs->ingest, t->run.run_id, loc.path);
	return err;
}

static int art_rename_kind(struct fs *fs, struct target *a, struct target *b, unsigned flags)
{
	struct art_loc la, lb;
	int err;

	if (!a->n.subpath[0])
		return fs_refuse_move(a->path, b->path);
	if (!flags && fs_is_hide(NULL, a->path, b->path))
		return hide(fs, a, b->path);
	if (b->lookup_err)
		return b->lookup_err;
	if (b->n.kind != NODE_ARTIFACTS || b->missing || !b->n.subpath[0])
		return log_refusal(a->path, EPERM, "artifacts stay in artifacts/");
	loc_of(a, &la);
	loc_of(b, &lb);
	err = art_err(a->path, art_rename(fs->art, &la, &lb, flags));
	if (!err) {
		moved(fs, a->path, b->path, flags);
		/* Both names hold other bytes now: parsed afresh. */
		ingest_forget(fs->ingest, a->run.run_id, la.path);
		ingest_forget(fs->ingest, b->run.run_id, lb.path);
	}
	return err;
}

static int art_readlink_kind(struct fs *fs, struct target *t, struct buf *out)
{
	char text[4096];
	struct art_loc loc;
	int err;

	loc_of(t, &loc);
	err = art_err(t->path, art_readlink(fs->art, &loc, text, sizeof(text)));
	return err ? err : buf_adds(out, text);
}

static int on_truncate(struct fs *fs, const struct art_loc *loc, struct art_file *f, void *arg)
{
	off_t size = *(off_t *)arg;

	return f ? art_ftruncate(f, size) : art_truncate(fs->art, loc, size);
}

/* An attribute call by name: on the open file when the name is the hidden
 * name of one, else on the location. */
static int by_name(struct fs *fs, struct target *t,
		   int (*fn)(struct fs *fs, const struct art_loc *loc, struct art_file *f,
			     void *arg),
		   void *arg)
{
	struct art_loc loc;
	int err = with_hidden(fs, t->path, fn, arg);

	if (err <= 0)
		return err;
	loc_of(t, &loc);
	return art_err(t->path, fn(fs, &loc, NULL, arg));
}

static int art_truncate_kind(struct fs *fs, struct target *t, off_t size)
{
	int err = by_name(fs, t, on_truncate, &size);

	if (!err && t->n.subpath)
		ingest_truncate_path(fs->ingest, t->run.run_id, t->n.subpath, size);
	return err;
}

static int art_symlink_kind(struct fs *fs, const char *target, struct target *t)
{
	struct art_caller c;
	struct art_loc loc;

	loc_of(t, &loc);
	caller_of(fs, &c);
	return art_err(t->path, art_symlink(fs->art, target, &loc, &c));
}

static int art_link_kind(struct fs *fs, struct target *from, struct target *to)
{
	struct art_loc a, b;

	loc_of(from, &a);
	loc_of(to, &b);
	return art_err(from->path, art_link(fs->art, &a, &b));
}

static int art_mknod_kind(struct fs *fs, struct target *t, mode_t mode, dev_t dev)
{
	struct art_caller c;
	struct art_loc loc;

	loc_of(t, &loc);
	caller_of(fs, &c);
	return art_err(t->path, art_mknod(fs->art, &loc, mode, dev, &c));
}

static int on_chmod(struct fs *fs, const struct art_loc *loc, struct art_file *f, void *arg)
{
	return art_chmod(fs->art, loc, f, *(mode_t *)arg);
}

static int art_chmod_kind(struct fs *fs, struct target *t, mode_t mode)
{
	return by_name(fs, t, on_chmod, &mode);
}

struct owner {
	uid_t uid;
	gid_t gid;
};

static int on_chown(struct fs *fs, const struct art_loc *loc, struct art_file *f, void *arg)
{
	struct owner *o = arg;

	return art_chown(fs->art, loc, f, o->uid, o->gid);
}

static int art_chown_kind(struct fs *fs, struct target *t, uid_t uid, gid_t gid)
{
	struct owner o = { uid, gid };

	return by_name(fs, t, on_chown, &o);
}

static int on_utimens(struct fs *fs, const struct art_loc *loc, struct art_file *f, void *arg)
{
	return art_utimens(fs->art, loc, f, arg);
}

static int art_utimens_kind(struct fs *fs, struct target *t, const struct timespec tv[2])
{
	return by_name(fs, t, on_utimens, (void *)tv);
}

static int art_access_kind(struct fs *fs, struct target *t, int mask)
{
	struct art_loc loc;
	int err;

	loc_of(t, &loc);
	err = art_access(fs->art, &loc, mask);
	if (err == -ENOENT && !loc.path[0])
		err = 0; /* the folder made at the first artifact */
	return art_err(t->path, err);
}

static int art_statfs_kind(struct fs *fs, struct target *t, struct statvfs *st)
{
	struct art_loc loc;

	loc_of(t, &loc);
	return art_statfs(fs->art, &loc, st);
}

const struct kind_ops fs_artifacts_ops = {
	.getattr = art_getattr,
	.list = art_list_kind,
	.open = art_open_kind,
	.mkdir = art_mkdir_kind,
	.unlink = art_unlink_kind,
	.rmdir = art_rmdir_kind,
	.rename = art_rename_kind,
	.readlink = art_readlink_kind,
	.truncate = art_truncate_kind,
	.symlink = art_symlink_kind,
	.link = art_link_kind,
	.mknod = art_mknod_kind,
	.chmod = art_chmod_kind,
	.chown = art_chown_kind,
	.utimens = art_utimens_kind,
	.access = art_access_kind,
	.statfs = art_statfs_kind,
};

/* ---- MLflow 3's logged models: their files, read-only ------------------- */

static int lm_getattr(struct fs *fs, struct target *t, struct stat *st)
{
	int err;

	if (t->n.kind == NODE_LOGGED_MODEL) {
		fs_fill_stat(fs, st, DIR_MODE, 0, fs_node_ms(fs, t));
		return 0;
	}
	err = art_getattr(fs, t, st);
	/* What MLflow logged stays as it was logged. */
	if (!err)
		st->st_mode &= ~(mode_t)0222;
	return err;
}

static int lm_list(struct fs *fs, struct target *t, struct listing *l)
{
	struct art_loc loc;
	int err;

	listing_untracked(l);
	loc_of(t, &loc);
	err = art_list(fs->art, &loc, list_cb, l);
	/* The model's own folder lists its params and such without files. */
	if (t->n.kind == NODE_LOGGED_MODEL && (err == -ENOENT || err == -ENOTSUP)) {
		if (err == -ENOTSUP)
			log_warn("%s: the model's files are out of reach: %s", t->path,
				 art_errmsg()[0] ? art_errmsg() : strerror(ENOTSUP));
		return 0;
	}
	return art_err(t->path, err);
}

static int lm_open(struct fs *fs, struct target *t, struct fuse_file_info *fi, int create,
		   mode_t mode)
{
	if (create || fs_open_writes(fi->flags) || (fi->flags & O_TRUNC))
		return log_refusal(t->path, EACCES, "a logged model's files are read-only");
	return art_open_kind(fs, t, fi, 0, mode);
}

static int lm_access(struct fs *fs, struct target *t, int mask)
{
	if (mask & W_OK)
		return -EACCES;
	return art_access_kind(fs, t, mask);
}

/* experiments/E/.models/M/: params/ metrics/ tags/ status, and its files. */
const struct kind_ops fs_logged_model_ops = {
	.getattr = lm_getattr,
	.list = lm_list,
};

/* experiments/E/.models/M/SUBPATH: a file or folder of the model's. */
const struct kind_ops fs_lm_files_ops = {
	.getattr = lm_getattr,
	.list = lm_list,
	.open = lm_open,
	.readlink = art_readlink_kind,
	.access = lm_access,
	.statfs = art_statfs_kind,
};
