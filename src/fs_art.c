/*
 * fs_art.c - a run's artifacts/ in the local store is its folder on disk:
 * every operation passes through, relative to an open folder descriptor
 * (never by gluing absolute paths), so paths may be as long as the system
 * allows.  Elsewhere the operations here refuse (SPEC §5).
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

/* libfuse's names for files removed while open, and where they are kept. */
#define HIDDEN_PREFIX ".fuse_hidden"
#define HIDDEN_DIR    ".mlflowfs-hidden"

/* Opens the run's artifact folder; with create, makes it first if missing. */
static int art_root(struct fs *fs, struct target *t, int create, int *fd)
{
	char *dir = NULL;
	int err;

	*fd = -1;
	err = store_artifact_dir(fs->store, &t->run, &dir);
	if (err)
		return err;
	*fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*fd < 0 && errno == ENOENT && create) {
		char *p;

		/* mkdir -p: MLflow makes a run's folder at its first artifact. */
		for (p = dir + 1; (p = strchr(p, '/')); p++) {
			*p = '\0';
			if (mkdir(dir, 0777 & ~fs->cfg->umask) < 0 && errno != EEXIST)
				break;
			*p = '/';
		}
		if (mkdir(dir, 0777 & ~fs->cfg->umask) < 0 && errno != EEXIST)
			log_warn("cannot create artifact folder '%s': %s", dir, strerror(errno));
		*fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	}
	err = *fd < 0 ? -errno : 0;
	free(dir);
	return err;
}

/*
 * The folder descriptor and name for a *at() call on sub below root.  Short
 * paths go straight to root; a path longer than the kernel takes in one call
 * is walked a folder at a time.  *dirfd must be closed if it is not root.
 */
static int art_at(int root, const char *sub, int *dirfd, const char **leaf)
{
	const char *p = sub, *slash;
	int fd = root;

	*dirfd = root;
	*leaf = sub;
	if (strlen(sub) < PATH_MAX / 2)
		return 0;
	while ((slash = strchr(p, '/'))) {
		char name[NAME_MAX + 1];
		size_t len = (size_t)(slash - p);
		int next;

		if (len > NAME_MAX) {
			if (fd != root)
				close(fd);
			return -ENAMETOOLONG;
		}
		memcpy(name, p, len);
		name[len] = '\0';
		next = openat(fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd != root)
			close(fd);
		if (next < 0)
			return -errno;
		fd = next;
		p = slash + 1;
	}
	*dirfd = fd;
	*leaf = p;
	return 0;
}

static void art_done(int root, int dirfd)
{
	if (dirfd >= 0 && dirfd != root)
		close(dirfd);
	if (root >= 0)
		close(root);
}

/* New files made by a root daemon belong to whoever made them. */
void fs_art_chown_new(int dirfd, const char *leaf)
{
	struct fuse_context *ctx = fuse_get_context();

	if (geteuid() == 0 && ctx->uid != 0)
		if (fchownat(dirfd, leaf, ctx->uid, ctx->gid, AT_SYMLINK_NOFOLLOW) < 0)
			log_debug("cannot chown '%s': %s", leaf, strerror(errno));
}

void fs_art_close(struct art_ref *a)
{
	art_done(a->root, a->dir);
	a->root = a->dir = -1;
}

/* Opens what *at() calls on t's artifact path need; create makes the run's
 * artifact folder first if it is missing. */
int fs_art_open(struct fs *fs, struct target *t, int create, struct art_ref *a)
{
	const char *last = strrchr(t->n.subpath, '/');
	int err;

	a->root = a->dir = -1;
	a->leaf = "";
	err = art_root(fs, t, create, &a->root);
	last = last ? last + 1 : t->n.subpath;
	if (!err && !strncmp(last, HIDDEN_PREFIX, strlen(HIDDEN_PREFIX))) {
		/*
		 * libfuse hides a file removed while open as .fuse_hidden* in its
		 * folder; those live beside the artifacts instead, where neither
		 * a listing nor MLflow sees them, until their last close.
		 */
		if (mkdirat(a->root, "../" HIDDEN_DIR, 0700) < 0 && errno != EEXIST)
			err = -errno;
		a->dir = err ? -1
			     : openat(a->root, "../" HIDDEN_DIR, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (!err && a->dir < 0)
			err = -errno;
		a->leaf = last;
	} else if (!err) {
		err = art_at(a->root, t->n.subpath, &a->dir, &a->leaf);
	}
	if (err) {
		fs_art_close(a);
		return err;
	}
	snprintf(a->proc, sizeof(a->proc), "/proc/self/fd/%d", a->root);
	return 0;
}

/* The folder and name for a call that needs a path: the artifacts folder
 * itself is reached through its /proc link. */
static void fs_art_path(const struct art_ref *a, int *dir, const char **name)
{
	*dir = a->leaf[0] ? a->dir : AT_FDCWD;
	*name = a->leaf[0] ? a->leaf : a->proc;
}

/*
 * Resolves a path that must name something below a run's artifacts/ (not
 * the folder itself); otherwise refuses with err_other, logging why.
 */
static int fs_art_resolve(struct fs *fs, const char *path, struct target *t, int err_other,
			  const char *why)
{
	int err = fs_models_refuse(path);

	if (err)
		return err;
	err = fs_resolve_new(fs, path, t);
	if (err == -ENOENT && t->parsed && t->n.kind == NODE_ARTIFACTS)
		err = -ENOENT; /* a folder above is missing */
	else if (!err && t->n.kind == NODE_ARTIFACTS && t->n.subpath[0])
		return 0;
	else if (!err || err == -ENOENT)
		err = log_refusal(path, err_other, "%s", why);
	fs_target_release(t);
	return err;
}

int fs_art_getattr(struct fs *fs, struct target *t, struct stat *st)
{
	struct art_ref a;
	int err;

	err = fs_art_open(fs, t, 0, &a);
	if (err == -ENOENT && !t->n.subpath[0]) {
		/* No artifact yet: an empty folder until the first one. */
		fs_fill_stat(fs, st, DIR_MODE, 0, t->run.start_time);
		return 0;
	}
	if (err)
		return err;
	if (fstatat(a.dir, a.leaf, st, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) < 0)
		err = -errno;
	fs_art_close(&a);
	return err;
}

/* ---- rendering virtual files ----------------------------------------- */

/* Calls an *at() function on an artifact path: unlink, rmdir. */
int fs_art_simple(struct fs *fs, struct target *t, int (*op)(int, const char *, int), int flags)
{
	struct art_ref a;
	int err;

	err = fs_art_open(fs, t, 0, &a);
	if (!err) {
		if (op(a.dir, a.leaf, flags) < 0)
			err = -errno;
		fs_art_close(&a);
	}
	return err;
}

int fs_symlink(const char *target, const char *path)
{
	struct fs *fs = fs_get();
	struct art_ref a;
	struct target t;
	int err;

	err = fs_art_resolve(fs, path, &t, EPERM, "symbolic links can be made in artifacts only");
	if (err)
		return err;
	err = fs_art_open(fs, &t, 1, &a);
	if (!err) {
		if (symlinkat(target, a.dir, a.leaf) < 0)
			err = -errno;
		else
			fs_art_chown_new(a.dir, a.leaf);
		fs_art_close(&a);
	}
	fs_target_release(&t);
	return err;
}

int fs_link(const char *from, const char *to)
{
	static const char why[] = "hard links work between artifacts only";
	struct fs *fs = fs_get();
	struct art_ref a, b;
	struct target ta, tb;
	int err;

	err = fs_art_resolve(fs, from, &ta, ENOTSUP, why);
	if (err)
		return err;
	err = fs_art_resolve(fs, to, &tb, ENOTSUP, why);
	if (err) {
		fs_target_release(&ta);
		return err;
	}
	err = fs_art_open(fs, &ta, 0, &a);
	if (!err) {
		err = fs_art_open(fs, &tb, 1, &b);
		if (!err) {
			if (linkat(a.dir, a.leaf, b.dir, b.leaf, 0) < 0)
				err = -errno;
			fs_art_close(&b);
		}
		fs_art_close(&a);
	}
	fs_target_release(&ta);
	fs_target_release(&tb);
	return err;
}

/* ---- attributes of artifacts; refusals elsewhere ---------------------- */

int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct fs *fs = fs_get();
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	struct art_ref a;
	struct target t;
	const char *name;
	int err, dir;

	if (h && h->kind == H_ARTIFACT)
		return fchmod(h->fd, mode) < 0 ? -errno : 0;
	if (!path)
		path = h ? h->path : "/";
	err = fs_resolve(fs, path, &t);
	if (err)
		return err;
	if (t.n.kind != NODE_ARTIFACTS) {
		fs_target_release(&t);
		return log_refusal(path, EPERM, "virtual files have fixed permissions");
	}
	err = fs_art_open(fs, &t, !t.n.subpath[0], &a);
	if (!err) {
		fs_art_path(&a, &dir, &name);
		if (fchmodat(dir, name, mode, 0) < 0)
			err = -errno;
		fs_art_close(&a);
	}
	fs_target_release(&t);
	return err;
}

int fs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	struct fs *fs = fs_get();
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	struct art_ref a;
	struct target t;
	int err;

	if (h && h->kind == H_ARTIFACT)
		return fchown(h->fd, uid, gid) < 0 ? -errno : 0;
	if (!path)
		path = h ? h->path : "/";
	err = fs_resolve(fs, path, &t);
	if (err)
		return err;
	if (t.n.kind != NODE_ARTIFACTS) {
		fs_target_release(&t);
		return log_refusal(path, EPERM, "virtual files have a fixed owner");
	}
	err = fs_art_open(fs, &t, !t.n.subpath[0], &a);
	if (!err) {
		if (fchownat(a.dir, a.leaf, uid, gid, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) < 0)
			err = -errno;
		fs_art_close(&a);
	}
	fs_target_release(&t);
	return err;
}

int fs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	struct fs *fs = fs_get();
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	struct art_ref a;
	struct target t;
	const char *name;
	int err, dir;

	if (h && h->kind == H_ARTIFACT)
		return futimens(h->fd, tv) < 0 ? -errno : 0;
	if (h || !path)
		return 0; /* touch on a virtual file: its times come from the store */
	err = fs_resolve(fs, path, &t);
	if (err)
		return err;
	if (t.n.kind != NODE_ARTIFACTS) {
		/* Also a created file still without a value: nothing to set. */
		fs_target_release(&t);
		return 0;
	}
	err = fs_art_open(fs, &t, !t.n.subpath[0], &a);
	if (!err) {
		fs_art_path(&a, &dir, &name);
		if (utimensat(dir, name, tv, a.leaf[0] ? AT_SYMLINK_NOFOLLOW : 0) < 0)
			err = -errno;
		fs_art_close(&a);
	}
	fs_target_release(&t);
	return err;
}

int fs_mknod(const char *path, mode_t mode, dev_t dev)
{
	struct fs *fs = fs_get();
	struct art_ref a;
	struct target t;
	int err;

	err = fs_art_resolve(fs, path, &t, EPERM, "special files can be made in artifacts only");
	if (err)
		return err;
	err = fs_art_open(fs, &t, 1, &a);
	if (!err) {
		if (mknodat(a.dir, a.leaf, mode, dev) < 0)
			err = -errno;
		else
			fs_art_chown_new(a.dir, a.leaf);
		fs_art_close(&a);
	}
	fs_target_release(&t);
	return err;
}

int fs_access(const char *path, int mask)
{
	struct fs *fs = fs_get();
	struct art_ref a;
	struct target t;
	const char *name;
	struct stat st;
	int err, dir;

	err = fs_resolve(fs, path, &t);
	if (err)
		return err;
	if (t.n.kind == NODE_ARTIFACTS) {
		err = fs_art_open(fs, &t, 0, &a);
		if (err == -ENOENT && !t.n.subpath[0]) {
			err = 0; /* the folder made at the first artifact */
		} else if (!err) {
			fs_art_path(&a, &dir, &name);
			if (faccessat(dir, name, mask, AT_EACCESS) < 0)
				err = -errno;
			fs_art_close(&a);
		}
		fs_target_release(&t);
		return err;
	}
	fs_target_release(&t);
	err = fs_getattr(path, &st, NULL);
	if (!err && (mask & W_OK) && !(st.st_mode & S_IWUSR))
		err = -EACCES;
	if (!err && (mask & X_OK) && !(st.st_mode & S_IXUSR))
		err = -EACCES;
	return err;
}

int fs_statfs(const char *path, struct statvfs *st)
{
	struct fs *fs = fs_get();

	(void)path;
	return statvfs(fs->cfg->artifact_root ? fs->cfg->artifact_root : "/", st) < 0 &&
			       statvfs("/", st) < 0
		       ? -errno
		       : 0;
}

/* No extended attributes are kept, anywhere: refused and logged.  (getxattr
 * and listxattr stay unimplemented, so the kernel stops asking at once.) */
int fs_setxattr(const char *path, const char *name, const char *value, size_t size, int flags)
{
	(void)value;
	(void)size;
	(void)flags;
	return log_refusal(path, ENOTSUP, "extended attributes are not kept ('%s')", name);
}

int fs_removexattr(const char *path, const char *name)
{
	return log_refusal(path, ENOTSUP, "extended attributes are not kept ('%s')", name);
}
