/*
 * passfs.c - the floor FUSE imposes on reading real files: a libfuse3 high-level filesystem
 * that passes every call through to a folder.
 *
 *     [PASS_DIO=0|1] passfs SOURCE [FUSE options] MOUNTPOINT
 *
 * Serves the folder SOURCE (for the benchmarks, a tree on tmpfs) read-write at MOUNTPOINT.
 * Each call is made relative to a descriptor of SOURCE opened at start (openat, fstatat,
 * renameat2, ...), with the daemon's own credentials. The kernel sees what mlflowfs gives it:
 * entry and attribute timeouts of 1 s, no negative caching, readdirplus on every listing with
 * offsets (so ls -l needs no LOOKUP per entry), no writeback cache, no FLUSH for read-only
 * descriptors, and the multi-threaded loop. Files are read through the page cache, as a plain
 * passthrough is; PASS_DIO=1 opens them with direct_io, as mlflowfs opens its virtual files.
 * Prints its request counts at unmount. Used only by the benchmarks in this folder.
 */
#define _GNU_SOURCE	 /* renameat2 */
#define FUSE_USE_VERSION 31

#include <fuse.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

/* Set once in main(), read-only afterwards. */
static int pass_root = -1; /* the served folder */
static int pass_dio;

/* Request counters, printed at unmount. */
static atomic_ulong n_getattr, n_readdir, n_open, n_read, n_write, n_flush, n_release;

/* An open folder: the stream, and the entry a full reply buffer could not take. */
struct pass_dir {
	DIR *dp;
	struct dirent *pending;
	off_t offset; /* where dp stands, as telldir() said */
};

/* The path libfuse gives ("/a/b"), relative to pass_root ("a/b"; "." for the root). */
static const char *pass_rel(const char *path)
{
	while (*path == '/')
		path++;
	return *path ? path : ".";
}

static int pass_fd(const struct fuse_file_info *fi)
{
	return (int)fi->fh;
}

static struct pass_dir *pass_dir_of(const struct fuse_file_info *fi)
{
	return (struct pass_dir *)(uintptr_t)fi->fh;
}

/* 0, or -errno when a call returned -1. */
static int pass_err(int rc)
{
	return rc < 0 ? -errno : 0;
}

static void *pass_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	/* As mlflowfs's fs_init(). */
	cfg->entry_timeout = 1.0;
	cfg->attr_timeout = 1.0;
	cfg->negative_timeout = 0;
	cfg->use_ino = 0;
	cfg->nullpath_ok = 1;
	cfg->no_rofd_flush = 1;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO; /* READDIRPLUS on every listing */
	return NULL;
}

static int pass_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	atomic_fetch_add(&n_getattr, 1);
	if (fi)
		return pass_err(fstat(pass_fd(fi), st));
	return pass_err(fstatat(pass_root, pass_rel(path), st, AT_SYMLINK_NOFOLLOW));
}

static int pass_access(const char *path, int mask)
{
	return pass_err(faccessat(pass_root, pass_rel(path), mask, 0));
}

static int pass_readlink(const char *path, char *buf, size_t size)
{
	ssize_t n = readlinkat(pass_root, pass_rel(path), buf, size - 1);

	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int pass_opendir(const char *path, struct fuse_file_info *fi)
{
	struct pass_dir *d = calloc(1, sizeof(*d));
	int fd, err;

	if (!d)
		return -ENOMEM;
	fd = openat(pass_root, pass_rel(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		goto out;
	}
	d->dp = fdopendir(fd);
	if (!d->dp) {
		err = -errno;
		close(fd);
		goto out;
	}
	fi->fh = (uintptr_t)d;
	return 0;
out:
	free(d);
	return err;
}

/*
 * Entries carry telldir() offsets: libfuse 3.14 passes readdirplus attributes on to the
 * kernel only when the filler gets non-zero offsets. An entry the reply buffer cannot take
 * is kept for the next call, which continues at the offset the kernel asks for.
 */
static int pass_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
			struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct pass_dir *d = pass_dir_of(fi);
	int plus = !!(flags & FUSE_READDIR_PLUS);
	struct stat st;

	(void)path;
	atomic_fetch_add(&n_readdir, 1);
	if (off != d->offset) {
		if (off == 0)
			rewinddir(d->dp);
		else
			seekdir(d->dp, off);
		d->pending = NULL;
		d->offset = off;
	}
	for (;;) {
		enum fuse_fill_dir_flags ff = 0;
		struct dirent *e = d->pending;
		off_t next;

		if (!e) {
			errno = 0;
			e = readdir(d->dp);
			if (!e)
				return errno ? -errno : 0;
		}
		d->pending = e;
		next = telldir(d->dp);
		if (plus && fstatat(dirfd(d->dp), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			ff = FUSE_FILL_DIR_PLUS;
		} else {
			memset(&st, 0, sizeof(st));
			st.st_ino = e->d_ino;
			st.st_mode = (mode_t)DTTOIF(e->d_type);
		}
		if (fill(buf, e->d_name, &st, next, ff))
			return 0;
		d->pending = NULL;
		d->offset = next;
	}
}

static int pass_releasedir(const char *path, struct fuse_file_info *fi)
{
	struct pass_dir *d = pass_dir_of(fi);

	(void)path;
	closedir(d->dp);
	free(d);
	return 0;
}

static int pass_mknod(const char *path, mode_t mode, dev_t rdev)
{
	return pass_err(mknodat(pass_root, pass_rel(path), mode, rdev));
}

static int pass_mkdir(const char *path, mode_t mode)
{
	return pass_err(mkdirat(pass_root, pass_rel(path), mode));
}

static int pass_unlink(const char *path)
{
	return pass_err(unlinkat(pass_root, pass_rel(path), 0));
}

static int pass_rmdir(const char *path)
{
	return pass_err(unlinkat(pass_root, pass_rel(path), AT_REMOVEDIR));
}

static int pass_symlink(const char *target, const char *path)
{
	return pass_err(symlinkat(target, pass_root, pass_rel(path)));
}

static int pass_rename(const char *from, const char *to, unsigned int flags)
{
	return pass_err(renameat2(pass_root, pass_rel(from), pass_root, pass_rel(to), flags));
}

static int pass_link(const char *from, const char *to)
{
	return pass_err(linkat(pass_root, pass_rel(from), pass_root, pass_rel(to), 0));
}

static int pass_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	if (fi)
		return pass_err(fchmod(pass_fd(fi), mode));
	return pass_err(fchmodat(pass_root, pass_rel(path), mode, 0));
}

static int pass_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	if (fi)
		return pass_err(fchown(pass_fd(fi), uid, gid));
	return pass_err(fchownat(pass_root, pass_rel(path), uid, gid, AT_SYMLINK_NOFOLLOW));
}

static int pass_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	int fd, err;

	if (fi)
		return pass_err(ftruncate(pass_fd(fi), size));
	fd = openat(pass_root, pass_rel(path), O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = pass_err(ftruncate(fd, size));
	close(fd);
	return err;
}

static int pass_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	if (fi)
		return pass_err(futimens(pass_fd(fi), tv));
	return pass_err(utimensat(pass_root, pass_rel(path), tv, AT_SYMLINK_NOFOLLOW));
}

static int pass_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	int fd = openat(pass_root, pass_rel(path), fi->flags | O_CLOEXEC, mode);

	atomic_fetch_add(&n_open, 1);
	if (fd < 0)
		return -errno;
	fi->fh = (uint64_t)fd;
	fi->direct_io = pass_dio;
	return 0;
}

static int pass_open(const char *path, struct fuse_file_info *fi)
{
	int fd = openat(pass_root, pass_rel(path), fi->flags | O_CLOEXEC);

	atomic_fetch_add(&n_open, 1);
	if (fd < 0)
		return -errno;
	fi->fh = (uint64_t)fd;
	fi->direct_io = pass_dio;
	return 0;
}

static int pass_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	ssize_t n = pread(pass_fd(fi), buf, size, off);

	(void)path;
	atomic_fetch_add(&n_read, 1);
	return n < 0 ? -errno : (int)n;
}

static int pass_write(const char *path, const char *buf, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	ssize_t n = pwrite(pass_fd(fi), buf, size, off);

	(void)path;
	atomic_fetch_add(&n_write, 1);
	return n < 0 ? -errno : (int)n;
}

static int pass_statfs(const char *path, struct statvfs *st)
{
	(void)path;
	return pass_err(fstatvfs(pass_root, st));
}

/* close() of a duplicate reports the errors a close() of the file would (NFS and the like). */
static int pass_flush(const char *path, struct fuse_file_info *fi)
{
	int fd = dup(pass_fd(fi));

	(void)path;
	atomic_fetch_add(&n_flush, 1);
	if (fd < 0)
		return -errno;
	return pass_err(close(fd));
}

static int pass_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	atomic_fetch_add(&n_release, 1);
	close(pass_fd(fi));
	return 0;
}

static int pass_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)path;
	return pass_err(datasync ? fdatasync(pass_fd(fi)) : fsync(pass_fd(fi)));
}

static void pass_destroy(void *data)
{
	(void)data;
	fprintf(stderr,
		"passfs: getattr=%lu readdir=%lu open=%lu read=%lu write=%lu flush=%lu "
		"release=%lu\n",
		atomic_load(&n_getattr), atomic_load(&n_readdir), atomic_load(&n_open),
		atomic_load(&n_read), atomic_load(&n_write), atomic_load(&n_flush),
		atomic_load(&n_release));
}

static const struct fuse_operations pass_ops = {
	.init = pass_init,
	.getattr = pass_getattr,
	.access = pass_access,
	.readlink = pass_readlink,
	.opendir = pass_opendir,
	.readdir = pass_readdir,
	.releasedir = pass_releasedir,
	.mknod = pass_mknod,
	.mkdir = pass_mkdir,
	.unlink = pass_unlink,
	.rmdir = pass_rmdir,
	.symlink = pass_symlink,
	.rename = pass_rename,
	.link = pass_link,
	.chmod = pass_chmod,
	.chown = pass_chown,
	.truncate = pass_truncate,
	.utimens = pass_utimens,
	.create = pass_create,
	.open = pass_open,
	.read = pass_read,
	.write = pass_write,
	.statfs = pass_statfs,
	.flush = pass_flush,
	.release = pass_release,
	.fsync = pass_fsync,
	.destroy = pass_destroy,
};

int main(int argc, char *argv[])
{
	const char *dio = getenv("PASS_DIO");

	if (argc < 3 || argv[1][0] == '-') {
		fprintf(stderr, "usage: [PASS_DIO=0|1] passfs SOURCE [FUSE options] MOUNTPOINT\n");
		return 2;
	}
	if (dio && *dio && strcmp(dio, "0") && strcmp(dio, "1")) {
		fprintf(stderr, "passfs: bad PASS_DIO '%s': expected 0 or 1\n", dio);
		return 2;
	}
	pass_dio = dio && !strcmp(dio, "1");
	pass_root = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pass_root < 0) {
		fprintf(stderr, "passfs: cannot open '%s': %s\n", argv[1], strerror(errno));
		return 1;
	}
	/* SOURCE is ours; libfuse gets the rest. */
	argv[1] = argv[0];
	return fuse_main(argc - 1, argv + 1, &pass_ops, NULL);
}
