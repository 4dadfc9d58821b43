/*
 * fs_art.c - a run's artifacts/ in the local store is its folder on disk:
 * every operation passes through, relative to an open folder descriptor
 * (never by gluing absolute paths), so paths may be as long as the system
 * allows (SPEC §5).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fs-internal.h"
#include "log.h"
#include "options.h"

/* A name below a run's artifacts/, ready for *at() calls. */
struct art_ref {
	int root;	  /* the run's artifact folder (O_PATH) */
	int dir;	  /* the folder holding leaf: root, or one walked to */
	const char *leaf; /* the last component; "" for the artifacts folder itself */
	char proc[32];	  /* "/proc/self/fd/N" of root, for calls that refuse O_PATH */
};

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

static void art_close(struct art_ref *a)
{
	if (a->dir >= 0 && a->dir != a->root)
		close(a->dir);
	if (a->root >= 0)
		close(a->root);
	a->root = a->dir = -1;
}

/* Where libfuse's hidden files live: beside the artifacts, not in them. */
#define HIDDEN_DIR "../.mlflowfs-hidden"

/* Makes folder name in *fd (if missing) and moves *fd into it. */
static int hidden_step(int *fd, const char *name)
{
	int next;

	if (mkdirat(*fd, name, 0700) < 0 && errno != EEXIST)
		return -errno;
	next = openat(*fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (next < 0)
		return -errno;
	close(*fd);
	*fd = next;
	return 0;
}

/*
 * The folder for a hidden file of folder sub (its first len bytes): the
 * same path below HIDDEN_DIR, made as needed, so that every such file
 * stays apart from those of other folders, and out of MLflow's sight.
 */
static int hidden_dir(int root, const char *sub, size_t len, int *out)
{
	const char *p = sub, *end = sub + len;
	char name[NAME_MAX + 1];
	int fd = openat(root, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
	int err = fd < 0 ? -errno : hidden_step(&fd, HIDDEN_DIR + 3);

	while (!err && p < end) {
		size_t n = strcspn(p, "/");

		if (n > (size_t)(end - p))
			n = (size_t)(end - p);
		if (n > NAME_MAX) {
			err = -ENAMETOOLONG;
			break;
		}
		memcpy(name, p, n);
		name[n] = '\0';
		err = hidden_step(&fd, name);
		p += n + 1;
	}
	if (err) {
		if (fd >= 0)
			close(fd);
		return err;
	}
	*out = fd;
	return 0;
}

/* Opens what *at() calls on t's artifact path need; create makes the run's
 * artifact folder first if it is missing. */
static int art_open(struct fs *fs, struct target *t, int create, struct art_ref *a)
{
	const char *slash = strrchr(t->n.subpath, '/');
	const char *name = slash ? slash + 1 : t->n.subpath;
	int err;

	a->root = a->dir = -1;
	a->leaf = "";
	err = art_root(fs, t, create, &a->root);
	if (!err && fs_hidden_name(name)) {
		err = hidden_dir(a->root, t->n.subpath, slash ? (size_t)(slash - t->n.subpath) : 0,
				 &a->dir);
		a->leaf = name;
	} else if (!err) {
		err = art_at(a->root, t->n.subpath, &a->dir, &a->leaf);
	}
	if (err) {
		art_close(a);
		return err;
	}
	snprintf(a->proc, sizeof(a->proc), "/proc/self/fd/%d", a->root);
	return 0;
}

/* The folder and name for a call that needs a path: the artifacts folder
 * itself is reached through its /proc link. */
static void art_path(const struct art_ref *a, int *dir, const char **name)
{
	*dir = a->leaf[0] ? a->dir : AT_FDCWD;
	*name = a->leaf[0] ? a->leaf : a->proc;
}

/* New files made by a root daemon belong to whoever made them. */
static void chown_new(int dirfd, const char *leaf)
{
	struct fuse_context *ctx = fuse_get_context();

	if (geteuid() == 0 && ctx->uid != 0)
		if (fchownat(dirfd, leaf, ctx->uid, ctx->gid, AT_SYMLINK_NOFOLLOW) < 0)
			log_debug("cannot chown '%s': %s", leaf, strerror(errno));
}

/* Calls an *at() function on an artifact path: unlink, rmdir. */
static int art_simple(struct fs *fs, struct target *t, int (*op)(int, const char *, int), int flags)
{
	struct art_ref a;
	int err;

	err = art_open(fs, t, 0, &a);
	if (!err) {
		if (op(a.dir, a.leaf, flags) < 0)
			err = -errno;
		art_close(&a);
	}
	return err;
}

static int art_getattr(struct fs *fs, struct target *t, struct stat *st)
{
	struct art_ref a;
	int err;

	err = art_open(fs, t, 0, &a);
	if (err == -ENOENT && !t->n.subpath[0]) {
		/* No artifact yet: an empty folder until the first one. */
		fs_fill_stat(fs, st, DIR_MODE, 0, t->run.start_time);
		return 0;
	}
	if (err)
		return err;
	if (fstatat(a.dir, a.leaf, st, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) < 0)
		err = -errno;
	art_close(&a);
	return err;
}

static int art_list(struct fs *fs, struct target *t, struct listing *l)
{
	struct dirent *de;
	struct art_ref a;
	int fd, err;
	DIR *dir;

	listing_untracked(l);
	err = art_open(fs, t, 0, &a);
	if (err == -ENOENT && !t->n.subpath[0])
		return 0;
	if (err)
		return err;
	fd = openat(a.dir, a.leaf[0] ? a.leaf : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	err = fd < 0 ? -errno : 0;
	art_close(&a);
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

		/* libfuse's hidden names of removed open files are its own. */
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    fs_hidden_name(de->d_name))
			continue;
		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* gone meanwhile */
		err = listing_add(l, de->d_name, &st);
	}
	closedir(dir);
	return err;
}

static int art_file_open(struct fs *fs, struct target *t, struct fuse_file_info *fi, int create,
			 mode_t mode)
{
	struct art_ref a;
	struct handle *h;
	int fd, err;

	if (!t->n.subpath[0])
		return create ? -EEXIST : -EISDIR;
	err = art_open(fs, t, create, &a);
	if (err)
		return err;
	fd = openat(a.dir, a.leaf, fi->flags | O_CLOEXEC | (create ? O_CREAT : 0), mode);
	if (fd < 0)
		err = -errno;
	else if (create)
		chown_new(a.dir, a.leaf);
	art_close(&a);
	if (err)
		return err;
	h = fs_handle_new(fs, H_ARTIFACT, t->path);
	if (!h) {
		close(fd);
		return -ENOMEM;
	}
	h->fd = fd;
	fi->fh = (uintptr_t)h;
	return 0;
}

static int art_mkdir(struct fs *fs, struct target *t, mode_t mode)
{
	struct art_ref a;
	int err;

	if (!t->n.subpath[0])
		return -EEXIST;
	err = art_open(fs, t, 1, &a);
	if (err)
		return err;
	if (mkdirat(a.dir, a.leaf, mode) < 0)
		err = -errno;
	else
		chown_new(a.dir, a.leaf);
	art_close(&a);
	return err;
}

static int art_unlink(struct fs *fs, struct target *t)
{
	return t->n.subpath[0] ? art_simple(fs, t, unlinkat, 0) : -EISDIR;
}

static int art_rmdir(struct fs *fs, struct target *t)
{
	return t->n.subpath[0] ? art_simple(fs, t, unlinkat, AT_REMOVEDIR)
			       : log_refusal(t->path, EPERM, "a run's artifacts folder stays");
}

static int art_rename(struct fs *fs, struct target *from, struct target *to, unsigned flags)
{
	struct art_ref ra, rb;
	int err;

	if (!from->n.subpath[0])
		return log_refusal(from->path, EPERM, "this cannot be moved to '%s'", to->path);
	if (to->lookup_err)
		return to->lookup_err;
	if (to->n.kind != NODE_ARTIFACTS || to->missing || !to->n.subpath[0])
		return log_refusal(from->path, EPERM, "artifacts stay in artifacts/");
	err = art_open(fs, from, 0, &ra);
	if (err)
		return err;
	err = art_open(fs, to, 1, &rb);
	if (!err) {
		if (renameat2(ra.dir, ra.leaf, rb.dir, rb.leaf, flags) < 0)
			err = -errno;
		art_close(&rb);
	}
	art_close(&ra);
	return err;
}

static int art_readlink(struct fs *fs, struct target *t, struct buf *out)
{
	char text[PATH_MAX];
	struct art_ref a;
	ssize_t n;
	int err;

	err = art_open(fs, t, 0, &a);
	if (err)
		return err;
	n = readlinkat(a.dir, a.leaf, text, sizeof(text));
	err = n < 0 ? -errno : buf_add(out, text, (size_t)n);
	art_close(&a);
	return err;
}

static int art_truncate(struct fs *fs, struct target *t, off_t size)
{
	struct art_ref a;
	int fd, err;

	err = art_open(fs, t, 0, &a);
	if (err)
		return err;
	fd = openat(a.dir, a.leaf[0] ? a.leaf : ".", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || ftruncate(fd, size) < 0)
		err = -errno;
	if (fd >= 0)
		close(fd);
	art_close(&a);
	return err;
}

static int art_symlink(struct fs *fs, const char *target, struct target *t)
{
	struct art_ref a;
	int err;

	if (!t->n.subpath[0])
		return -EEXIST;
	err = art_open(fs, t, 1, &a);
	if (err)
		return err;
	if (symlinkat(target, a.dir, a.leaf) < 0)
		err = -errno;
	else
		chown_new(a.dir, a.leaf);
	art_close(&a);
	return err;
}

static int art_link(struct fs *fs, struct target *from, struct target *to)
{
	struct art_ref a, b;
	int err;

	if (to->lookup_err)
		return to->lookup_err;
	if (!from->n.subpath[0] || to->n.kind != NODE_ARTIFACTS || to->missing || !to->n.subpath[0])
		return log_refusal(from->path, ENOTSUP, "hard links work between artifacts only");
	err = art_open(fs, from, 0, &a);
	if (err)
		return err;
	err = art_open(fs, to, 1, &b);
	if (!err) {
		if (linkat(a.dir, a.leaf, b.dir, b.leaf, 0) < 0)
			err = -errno;
		art_close(&b);
	}
	art_close(&a);
	return err;
}

static int art_mknod(struct fs *fs, struct target *t, mode_t mode, dev_t dev)
{
	struct art_ref a;
	int err;

	if (!t->n.subpath[0])
		return -EEXIST;
	err = art_open(fs, t, 1, &a);
	if (err)
		return err;
	if (mknodat(a.dir, a.leaf, mode, dev) < 0)
		err = -errno;
	else
		chown_new(a.dir, a.leaf);
	art_close(&a);
	return err;
}

static int art_chmod(struct fs *fs, struct target *t, mode_t mode)
{
	const char *name;
	struct art_ref a;
	int err, dir;

	err = art_open(fs, t, !t->n.subpath[0], &a);
	if (err)
		return err;
	art_path(&a, &dir, &name);
	if (fchmodat(dir, name, mode, 0) < 0)
		err = -errno;
	art_close(&a);
	return err;
}

static int art_chown(struct fs *fs, struct target *t, uid_t uid, gid_t gid)
{
	struct art_ref a;
	int err;

	err = art_open(fs, t, !t->n.subpath[0], &a);
	if (err)
		return err;
	if (fchownat(a.dir, a.leaf, uid, gid, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) < 0)
		err = -errno;
	art_close(&a);
	return err;
}

static int art_utimens(struct fs *fs, struct target *t, const struct timespec tv[2])
{
	const char *name;
	struct art_ref a;
	int err, dir;

	err = art_open(fs, t, !t->n.subpath[0], &a);
	if (err)
		return err;
	art_path(&a, &dir, &name);
	if (utimensat(dir, name, tv, a.leaf[0] ? AT_SYMLINK_NOFOLLOW : 0) < 0)
		err = -errno;
	art_close(&a);
	return err;
}

static int art_access(struct fs *fs, struct target *t, int mask)
{
	const char *name;
	struct art_ref a;
	int err, dir;

	err = art_open(fs, t, 0, &a);
	if (err == -ENOENT && !t->n.subpath[0])
		return 0; /* the folder made at the first artifact */
	if (err)
		return err;
	art_path(&a, &dir, &name);
	if (faccessat(dir, name, mask, AT_EACCESS) < 0)
		err = -errno;
	art_close(&a);
	return err;
}

const struct kind_ops fs_artifacts_ops = {
	.getattr = art_getattr,
	.list = art_list,
	.open = art_file_open,
	.mkdir = art_mkdir,
	.unlink = art_unlink,
	.rmdir = art_rmdir,
	.rename = art_rename,
	.readlink = art_readlink,
	.truncate = art_truncate,
	.symlink = art_symlink,
	.link = art_link,
	.mknod = art_mknod,
	.chmod = art_chmod,
	.chown = art_chown,
	.utimens = art_utimens,
	.access = art_access,
};

/* ---- open artifacts ---------------------------------------------------- */

int fs_art_fgetattr(struct handle *h, struct stat *st)
{
	return fstat(h->fd, st) < 0 ? -errno : 0;
}

int fs_art_statfs(struct fs *fs, struct statvfs *st)
{
	const char *root = store_artifact_root(fs->store);

	return statvfs(root ? root : "/", st) < 0 && statvfs("/", st) < 0 ? -errno : 0;
}
