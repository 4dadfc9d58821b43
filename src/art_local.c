/*
 * art_local.c - the local artifact repository: an artifact URI names a folder
 * on this machine and every call passes through to it, as in a bind mount.
 * Calls are made relative to an open folder descriptor, never by gluing
 * absolute paths, so paths may be as long as the system allows; the run's
 * folder itself is reached through its /proc/self/fd link where a call
 * takes no descriptor.  No FUSE here: the caller's identity comes as data.
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

#include "art.h"
#include "buf.h"
#include "log.h"
#include "path.h"

struct local_repo {
	struct art_repo base;
	char *proxied_root; /* where mlflow-artifacts: URIs point, or NULL */
};

struct local_file {
	struct art_file base;
	int fd;
};

/* A name below a run's folder, ready for *at() calls. */
struct local_at {
	int root;	  /* the run's folder (O_PATH) */
	int dir;	  /* the folder holding leaf: root, or one walked to */
	const char *leaf; /* what is left of the path; "" for the run's folder */
	char proc[32];	  /* "/proc/self/fd/N" of root, for calls that refuse O_PATH */
};

static const struct art_ops local_ops;

static struct local_repo *to_local(struct art_repo *r)
{
	if (r->ops != &local_ops) {
		log_error("art_local: called with a '%s' repository", r->ops->name);
		abort();
	}
	return (struct local_repo *)r;
}

static int fd_of(struct art_file *f)
{
	to_local(f->repo);
	return ((struct local_file *)f)->fd;
}

/* A file: URI's local path, percent-decoded: 0, -ENOTSUP (not on this
 * machine, or not absolute) or -ENOMEM. */
static int file_uri_path(const char *uri, char **path)
{
	struct buf b = BUF_INIT;
	const char *p = uri + 5;

	*path = NULL;
	if (!strncmp(p, "//", 2)) {
		p += 2;
		if (!strncmp(p, "localhost/", 10))
			p += 9;
		else if (*p != '/')
			return -ENOTSUP;
	}
	if (*p != '/')
		return -ENOTSUP;
	if (path_uri_decode(&b, p, strlen(p))) {
		buf_release(&b);
		return -ENOMEM;
	}
	*path = buf_detach(&b);
	return *path ? 0 : -ENOMEM;
}

/* The folder a run's artifact URI names, as a new string the caller frees. */
static int local_dir(struct local_repo *lr, const char *uri, char **dir)
{
	const char *rest;
	int err = 0;

	*dir = NULL;
	if (uri[0] == '/') {
		*dir = strdup(uri);
	} else if (!strncasecmp(uri, "file:", 5)) {
		err = file_uri_path(uri, dir);
	} else if (!strncasecmp(uri, "mlflow-artifacts:", 17) && lr->proxied_root) {
		/* A server's proxied artifacts: under its artifacts destination,
		 * which is our artifact root when both keep the default beside
		 * the database.  The authority, if any, is the server's. */
		rest = uri + 17;
		if (!strncmp(rest, "//", 2)) {
			rest = strchr(rest + 2, '/');
			if (!rest)
				rest = "";
		}
		while (*rest == '/')
			rest++;
		if (asprintf(dir, "%s/%s", lr->proxied_root, rest) < 0)
			*dir = NULL;
	} else {
		err = -ENOTSUP;
	}
	if (err == -ENOTSUP)
		art_set_errmsg("the artifacts at '%s' are not on this machine", uri);
	return err ? err : *dir ? 0 : -ENOMEM;
}

/*
 * Opens the run's folder as O_PATH.  With create (a call that makes a name,
 * or changes the folder's own attributes), makes it first if it is missing,
 * as MLflow makes it at the first artifact: mkdir -p, modes under umask.
 */
static int local_root(struct local_repo *lr, const char *uri, int create, mode_t umask, int *fd)
{
	char *dir = NULL, *p;
	int err;

	*fd = -1;
	err = local_dir(lr, uri, &dir);
	if (err)
		return err;
	*fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*fd < 0 && errno == ENOENT && create) {
		int made = 0;

		for (p = dir + 1; !made && (p = strchr(p, '/')); p++) {
			*p = '\0';
			made = mkdir(dir, 0777 & ~umask) < 0 && errno != EEXIST ? -errno : 0;
			if (made)
				log_warn("cannot create artifact folder '%s': %s", dir,
					 strerror(-made));
			*p = '/';
		}
		if (!made && mkdir(dir, 0777 & ~umask) < 0 && errno != EEXIST)
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
static int walk(int root, const char *sub, int *dirfd, const char **leaf)
{
	const char *p = sub, *slash;
	int fd = root, err;

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
		err = next < 0 ? -errno : 0;
		if (fd != root)
			close(fd);
		if (err)
			return err;
		fd = next;
		p = slash + 1;
	}
	*dirfd = fd;
	*leaf = p;
	return 0;
}

static void at_close(struct local_at *a)
{
	if (a->dir >= 0 && a->dir != a->root)
		close(a->dir);
	if (a->root >= 0)
		close(a->root);
	a->root = a->dir = -1;
}

/* Opens what *at() calls on loc need; see local_root() for create. */
static int at_open(struct art_repo *r, const struct art_loc *loc, int create, mode_t umask,
		   struct local_at *a)
{
	int err;

	a->root = a->dir = -1;
	a->leaf = "";
	err = local_root(to_local(r), loc->uri, create, umask, &a->root);
	if (!err)
		err = walk(a->root, loc->path, &a->dir, &a->leaf);
	if (err) {
		at_close(a);
		return err;
	}
	snprintf(a->proc, sizeof(a->proc), "/proc/self/fd/%d", a->root);
	return 0;
}

/* The folder and name for a call that needs a path (no AT_EMPTY_PATH): the
 * run's folder itself is reached through its /proc link. */
static void at_path(const struct local_at *a, int *dir, const char **name)
{
	*dir = a->leaf[0] ? a->dir : AT_FDCWD;
	*name = a->leaf[0] ? a->leaf : a->proc;
}

/* The umask for a run's folder made on the way: the caller's, else 022. */
static mode_t umask_of(const struct art_caller *c)
{
	return c ? c->umask : 022;
}

/* Whether the folder that holds leaf (below dirfd) has its set-group-ID bit. */
static int parent_setgid(int dirfd, const char *leaf)
{
	const char *slash = strrchr(leaf, '/');
	struct stat st;
	char *parent;
	int r;

	if (!slash)
		return fstatat(dirfd, "", &st, AT_EMPTY_PATH) == 0 && (st.st_mode & S_ISGID);
	parent = strndup(leaf, (size_t)(slash - leaf));
	if (!parent)
		return 0;
	r = fstatat(dirfd, parent, &st, 0) == 0 && (st.st_mode & S_ISGID);
	free(parent);
	return r;
}

/*
 * A daemon running as root makes every name as root: give a new one to the
 * caller, as a bind mount would have made it - the caller's user, and the
 * caller's group unless a set-group-ID folder gave it its own.  chown(2)
 * clears a file's set-user-ID and set-group-ID bits: they come back.
 */
static void give(int dirfd, const char *leaf, const struct art_caller *c)
{
	struct stat st;
	gid_t gid;

	if (!c || geteuid() != 0 || fstatat(dirfd, leaf, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	gid = parent_setgid(dirfd, leaf) ? st.st_gid : c->gid;
	if (st.st_uid == c->uid && st.st_gid == gid)
		return;
	if (fchownat(dirfd, leaf, c->uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
		log_debug("cannot give '%s' to %u:%u: %s", leaf, (unsigned)c->uid, (unsigned)gid,
			  strerror(errno));
		return;
	}
	if (!S_ISLNK(st.st_mode) && !S_ISDIR(st.st_mode) && (st.st_mode & (S_ISUID | S_ISGID)) &&
	    fchmodat(dirfd, leaf, st.st_mode & 07777, 0) < 0)
		log_debug("cannot restore the mode of '%s': %s", leaf, strerror(errno));
}

/* ---- names ----------------------------------------------------------- */

static int local_stat(struct art_repo *r, const struct art_loc *loc, struct stat *st)
{
	struct local_at a;
	int err = at_open(r, loc, 0, 0, &a);

	if (err)
		return err;
	if (fstatat(a.dir, a.leaf, st, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) < 0)
		err = -errno;
	at_close(&a);
	return err;
}

static int local_list(struct art_repo *r, const struct art_loc *loc, art_list_cb *cb, void *ctx)
{
	struct dirent *de;
	struct local_at a;
	int fd, err;
	DIR *dir;

	err = at_open(r, loc, 0, 0, &a);
	if (err)
		return err;
	fd = openat(a.dir, a.leaf[0] ? a.leaf : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	err = fd < 0 ? -errno : 0;
	at_close(&a);
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
		err = cb(ctx, de->d_name, &st);
	}
	closedir(dir);
	return err;
}

static int local_mkdir(struct art_repo *r, const struct art_loc *loc, mode_t mode,
		       const struct art_caller *c)
{
	struct local_at a;
	int err = at_open(r, loc, 1, umask_of(c), &a);

	if (err)
		return err;
	if (mkdirat(a.dir, a.leaf, mode) < 0)
		err = -errno;
	else
		give(a.dir, a.leaf, c);
	at_close(&a);
	return err;
}

static int local_remove(struct art_repo *r, const struct art_loc *loc, int dir)
{
	struct local_at a;
	int err = at_open(r, loc, 0, 0, &a);

	if (err)
		return err;
	if (unlinkat(a.dir, a.leaf, dir ? AT_REMOVEDIR : 0) < 0)
		err = -errno;
	at_close(&a);
	return err;
}

static int local_rename(struct art_repo *r, const struct art_loc *from, const struct art_loc *to,
			unsigned int flags)
{
	struct local_at a, b;
	int err = at_open(r, from, 0, 0, &a);

	if (err)
		return err;
	err = at_open(r, to, 1, 022, &b);
	if (!err) {
		if (renameat2(a.dir, a.leaf, b.dir, b.leaf, flags) < 0)
			err = -errno;
		at_close(&b);
	}
	at_close(&a);
	return err;
}

static int local_readlink(struct art_repo *r, const struct art_loc *loc, char *buf, size_t size)
{
	struct local_at a;
	ssize_t n;
	char one;
	int err = at_open(r, loc, 0, 0, &a);

	if (err)
		return err;
	/* readlinkat() refuses a size of 0: room for one byte, to be cut. */
	n = readlinkat(a.dir, a.leaf, size > 1 ? buf : &one, size > 1 ? size - 1 : 1);
	if (n < 0)
		err = -errno;
	else
		buf[size > 1 ? n : 0] = '\0';
	at_close(&a);
	return err;
}

static int local_link(struct art_repo *r, const struct art_loc *from, const struct art_loc *to)
{
	struct local_at a, b;
	int err = at_open(r, from, 0, 0, &a);

	if (err)
		return err;
	err = at_open(r, to, 1, 022, &b);
	if (!err) {
		if (linkat(a.dir, a.leaf, b.dir, b.leaf, 0) < 0)
			err = -errno;
		at_close(&b);
	}
	at_close(&a);
	return err;
}

static int local_symlink(struct art_repo *r, const char *target, const struct art_loc *loc,
			 const struct art_caller *c)
{
	struct local_at a;
	int err = at_open(r, loc, 1, umask_of(c), &a);

	if (err)
		return err;
	if (symlinkat(target, a.dir, a.leaf) < 0)
		err = -errno;
	else
		give(a.dir, a.leaf, c);
	at_close(&a);
	return err;
}

static int local_mknod(struct art_repo *r, const struct art_loc *loc, mode_t mode, dev_t dev,
		       const struct art_caller *c)
{
	struct local_at a;
	int err = at_open(r, loc, 1, umask_of(c), &a);

	if (err)
		return err;
	if (mknodat(a.dir, a.leaf, mode, dev) < 0)
		err = -errno;
	else
		give(a.dir, a.leaf, c);
	at_close(&a);
	return err;
}

static int local_access(struct art_repo *r, const struct art_loc *loc, int mask)
{
	struct local_at a;
	const char *name;
	int err = at_open(r, loc, 0, 0, &a), dir;

	if (err)
		return err;
	at_path(&a, &dir, &name);
	if (faccessat(dir, name, mask, AT_EACCESS) < 0)
		err = -errno;
	at_close(&a);
	return err;
}

static int local_statfs(struct art_repo *r, const struct art_loc *loc, struct statvfs *st)
{
	char *dir = NULL, *slash;
	int err;

	/* The file system the run's folder is on, or will be on. */
	err = local_dir(to_local(r), loc->uri, &dir);
	if (err)
		return err;
	while (statvfs(dir, st) < 0) {
		err = -errno;
		slash = strrchr(dir, '/');
		if (err != -ENOENT || !slash || slash == dir)
			break;
		*slash = '\0';
		err = 0;
	}
	if (err == -ENOENT && statvfs("/", st) == 0)
		err = 0;
	free(dir);
	return err;
}

/* ---- attributes ------------------------------------------------------ */

static int local_truncate(struct art_repo *r, const struct art_loc *loc, off_t size)
{
	struct local_at a;
	int err = at_open(r, loc, 0, 0, &a), fd;

	if (err)
		return err;
	fd = openat(a.dir, a.leaf[0] ? a.leaf : ".", O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 || ftruncate(fd, size) < 0)
		err = -errno;
	if (fd >= 0)
		close(fd);
	at_close(&a);
	return err;
}

static int local_chmod(struct art_repo *r, const struct art_loc *loc, struct art_file *f,
		       mode_t mode)
{
	struct local_at a;
	const char *name;
	int err, dir;

	if (f)
		return fchmod(fd_of(f), mode) < 0 ? -errno : 0;
	err = at_open(r, loc, !loc->path[0], 022, &a);
	if (err)
		return err;
	at_path(&a, &dir, &name);
	if (fchmodat(dir, name, mode, 0) < 0)
		err = -errno;
	at_close(&a);
	return err;
}

static int local_chown(struct art_repo *r, const struct art_loc *loc, struct art_file *f, uid_t uid,
		       gid_t gid)
{
	struct local_at a;
	int err;

	if (f)
		return fchown(fd_of(f), uid, gid) < 0 ? -errno : 0;
	err = at_open(r, loc, !loc->path[0], 022, &a);
	if (err)
		return err;
	if (fchownat(a.dir, a.leaf, uid, gid, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) < 0)
		err = -errno;
	at_close(&a);
	return err;
}

static int local_utimens(struct art_repo *r, const struct art_loc *loc, struct art_file *f,
			 const struct timespec tv[2])
{
	struct local_at a;
	const char *name;
	int err, dir;

	if (f)
		return futimens(fd_of(f), tv) < 0 ? -errno : 0;
	err = at_open(r, loc, !loc->path[0], 022, &a);
	if (err)
		return err;
	at_path(&a, &dir, &name);
	if (utimensat(dir, name, tv, a.leaf[0] ? AT_SYMLINK_NOFOLLOW : 0) < 0)
		err = -errno;
	at_close(&a);
	return err;
}

/* ---- open files ------------------------------------------------------ */

/*
 * open(2) of loc.  O_CREAT without O_EXCL is tried as O_EXCL first, so that
 * only a file this call made is given to the caller, never one that was
 * there already.
 */
static int local_open(struct art_repo *r, const struct art_loc *loc, int flags, mode_t mode,
		      const struct art_caller *c, struct art_file **out)
{
	struct local_file *lf;
	struct local_at a;
	int err, fd = -1, made = 0, tries;

	*out = NULL;
	err = at_open(r, loc, !!(flags & O_CREAT), umask_of(c), &a);
	if (err)
		return err;
	flags |= O_CLOEXEC;
	for (tries = 0; fd < 0 && tries < 16; tries++) {
		if (flags & O_CREAT) {
			fd = openat(a.dir, a.leaf, flags | O_EXCL, mode);
			made = fd >= 0;
			if (fd >= 0 || errno != EEXIST || (flags & O_EXCL))
				break;
		}
		fd = openat(a.dir, a.leaf, flags & ~O_CREAT);
		if (fd >= 0 || errno != ENOENT || !(flags & O_CREAT))
			break; /* else removed meanwhile: make it after all */
	}
	if (fd < 0) {
		err = -errno;
		goto out;
	}
	if (made)
		give(a.dir, a.leaf, c);
	lf = calloc(1, sizeof(*lf));
	if (!lf) {
		close(fd);
		err = -ENOMEM;
		goto out;
	}
	lf->base.repo = r;
	lf->fd = fd;
	*out = &lf->base;
out:
	at_close(&a);
	return err;
}

static ssize_t local_read(struct art_file *f, void *buf, size_t size, off_t off)
{
	ssize_t n = pread(fd_of(f), buf, size, off);

	return n < 0 ? -errno : n;
}

static ssize_t local_write(struct art_file *f, const void *buf, size_t size, off_t off)
{
	ssize_t n = pwrite(fd_of(f), buf, size, off);

	return n < 0 ? -errno : n;
}

static int local_fstat(struct art_file *f, struct stat *st)
{
	return fstat(fd_of(f), st) < 0 ? -errno : 0;
}

static int local_ftruncate(struct art_file *f, off_t size)
{
	return ftruncate(fd_of(f), size) < 0 ? -errno : 0;
}

static int local_fallocate(struct art_file *f, int mode, off_t off, off_t len)
{
	return fallocate(fd_of(f), mode, off, len) < 0 ? -errno : 0;
}

static int local_sync(struct art_file *f, enum art_sync how)
{
	int fd = fd_of(f), r;

	/* A close needs nothing: the file is on disk, as on a bind mount. */
	switch (how) {
	case ART_SYNC_DATA:
		r = fdatasync(fd);
		break;
	case ART_SYNC_ALL:
		r = fsync(fd);
		break;
	default:
		r = 0;
	}
	return r < 0 ? -errno : 0;
}

static int local_close(struct art_file *f)
{
	int err = close(fd_of(f)) < 0 ? -errno : 0;

	free(f);
	return err;
}

static void local_free(struct art_repo *r)
{
	struct local_repo *lr = to_local(r);

	free(lr->proxied_root);
	free(lr);
}

static const struct art_ops local_ops = {
	.name = "local",
	.stat = local_stat,
	.list = local_list,
	.open = local_open,
	.read = local_read,
	.write = local_write,
	.fstat = local_fstat,
	.ftruncate = local_ftruncate,
	.fallocate = local_fallocate,
	.sync = local_sync,
	.close = local_close,
	.truncate = local_truncate,
	.chmod = local_chmod,
	.chown = local_chown,
	.utimens = local_utimens,
	.mkdir = local_mkdir,
	.remove = local_remove,
	.rename = local_rename,
	.readlink = local_readlink,
	.symlink = local_symlink,
	.link = local_link,
	.mknod = local_mknod,
	.access = local_access,
	.statfs = local_statfs,
	.free = local_free,
};

struct art_repo *art_local_new(const char *mlflow_artifacts_root)
{
	struct local_repo *lr = calloc(1, sizeof(*lr));

	if (!lr)
		return NULL;
	lr->base.ops = &local_ops;
	if (mlflow_artifacts_root) {
		lr->proxied_root = strdup(mlflow_artifacts_root);
		if (!lr->proxied_root) {
			free(lr);
			return NULL;
		}
	}
	return &lr->base;
}
