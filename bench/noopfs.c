/*
 * noopfs.c - the floor FUSE itself imposes: a libfuse3 high-level filesystem that does no work.
 *
 * Any file or folder can be made (creat, mkdir) under the root and written: writes are
 * discarded and return their count, reads return nothing. /d holds NOOP_NDIR (default 10000)
 * empty folders d00000, d00001, ... for listing comparisons. flush is implemented (it returns
 * 0) because mlflowfs must implement it for its close() guarantee, so the kernel keeps sending
 * FLUSH here as it will there. Multi-threaded loop and libfuse's default kernel timeouts,
 * as a normal mount. Used only by the benchmarks in this folder; see README.md.
 *
 *     [NOOP_NDIR=N] [NOOP_PLUS=0|1] [NOOP_DIO=0|1] noopfs [FUSE options] MOUNTPOINT
 *
 * NOOP_PLUS=1 (default) lists /d with readdirplus attributes, so ls -l needs no LOOKUP per
 * entry; NOOP_DIO=1 opens files with direct_io, as mlflowfs opens its virtual files.
 */
#define _POSIX_C_SOURCE	 200809L
#define FUSE_USE_VERSION 31

#include <fuse.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NOOP_BUCKETS 1024
#define NOOP_BIGNAME "d"
#define NOOP_BIGDIR  "/" NOOP_BIGNAME

/* One file or folder made by creat or mkdir; the listed folders of /d are not stored. */
struct noop_node {
	char *path;
	mode_t mode;
	struct noop_node *next;
};

static struct noop_node *noop_table[NOOP_BUCKETS]; /* protected by noop_lock */
static pthread_mutex_t noop_lock = PTHREAD_MUTEX_INITIALIZER;

/* Set once in main(), read-only afterwards. */
static long noop_ndir = 10000;
static int noop_plus = 1;
static int noop_dio;
static uid_t noop_uid;
static gid_t noop_gid;
static struct timespec noop_time;

/* Request counters, printed at unmount, to check e.g. one WRITE per write(). */
static atomic_ulong n_getattr, n_readdir, n_create, n_open, n_write, n_flush, n_release;

static unsigned noop_hash(const char *path)
{
	uint32_t h = 2166136261u;

	for (; *path; path++)
		h = (h ^ (unsigned char)*path) * 16777619u;
	return h % NOOP_BUCKETS;
}

/* Returns the stored node's mode, 0 when there is none. Caller holds noop_lock. */
static mode_t noop_find_locked(const char *path)
{
	struct noop_node *n;

	for (n = noop_table[noop_hash(path)]; n; n = n->next)
		if (!strcmp(n->path, path))
			return n->mode;
	return 0;
}

/* Is path one of the listed folders /d/dNNNNN? */
static int noop_is_listed(const char *path)
{
	char canon[32];
	char *end;
	long i;

	if (strncmp(path, NOOP_BIGDIR "/d", 4) || path[4] < '0' || path[4] > '9')
		return 0;
	i = strtol(path + 4, &end, 10);
	if (*end || i < 0 || i >= noop_ndir)
		return 0;
	snprintf(canon, sizeof(canon), NOOP_BIGDIR "/d%05ld", i);
	return !strcmp(canon, path);
}

/* The mode of path: built in, listed or stored; 0 when it does not exist. */
static mode_t noop_mode(const char *path)
{
	mode_t m;

	if (!strcmp(path, "/") || !strcmp(path, NOOP_BIGDIR) || noop_is_listed(path))
		return S_IFDIR | 0755;
	pthread_mutex_lock(&noop_lock);
	m = noop_find_locked(path);
	pthread_mutex_unlock(&noop_lock);
	return m;
}

/* Parent folder of path must be the root or a stored folder (not /d or below it). */
static int noop_parent_ok(const char *path)
{
	const char *slash = strrchr(path, '/');
	char parent[PATH_MAX];
	size_t len = (size_t)(slash - path);
	mode_t m;

	if (len == 0)
		return 0;
	if (len >= sizeof(parent))
		return -ENAMETOOLONG;
	memcpy(parent, path, len);
	parent[len] = '\0';
	if (!strcmp(parent, NOOP_BIGDIR) || noop_is_listed(parent))
		return -EACCES;
	pthread_mutex_lock(&noop_lock);
	m = noop_find_locked(parent);
	pthread_mutex_unlock(&noop_lock);
	if (!m)
		return -ENOENT;
	return S_ISDIR(m) ? 0 : -ENOTDIR;
}

static int noop_add(const char *path, mode_t mode)
{
	struct noop_node *n;
	unsigned h = noop_hash(path);
	int err = noop_parent_ok(path);

	if (err)
		return err;
	if (!strcmp(path, NOOP_BIGDIR))
		return -EEXIST;
	n = malloc(sizeof(*n));
	if (!n)
		return -ENOMEM;
	n->path = strdup(path);
	if (!n->path) {
		free(n);
		return -ENOMEM;
	}
	n->mode = mode;
	pthread_mutex_lock(&noop_lock);
	if (noop_find_locked(path)) {
		pthread_mutex_unlock(&noop_lock);
		free(n->path);
		free(n);
		return -EEXIST;
	}
	n->next = noop_table[h];
	noop_table[h] = n;
	pthread_mutex_unlock(&noop_lock);
	return 0;
}

/* Is there a stored node directly below dir? Caller holds noop_lock. */
static int noop_has_child_locked(const char *dir)
{
	size_t len = strlen(dir);
	struct noop_node *n;
	int i;

	for (i = 0; i < NOOP_BUCKETS; i++)
		for (n = noop_table[i]; n; n = n->next)
			if (!strncmp(n->path, dir, len) && n->path[len] == '/')
				return 1;
	return 0;
}

static int noop_remove(const char *path, int want_dir)
{
	struct noop_node **pp, *n;
	int err = -ENOENT;

	pthread_mutex_lock(&noop_lock);
	for (pp = &noop_table[noop_hash(path)]; (n = *pp); pp = &n->next) {
		if (strcmp(n->path, path))
			continue;
		if (want_dir && !S_ISDIR(n->mode))
			err = -ENOTDIR;
		else if (!want_dir && S_ISDIR(n->mode))
			err = -EISDIR;
		else if (want_dir && noop_has_child_locked(path))
			err = -ENOTEMPTY;
		else {
			*pp = n->next;
			free(n->path);
			free(n);
			err = 0;
		}
		break;
	}
	pthread_mutex_unlock(&noop_lock);
	if (err == -ENOENT && noop_mode(path))
		err = -EACCES; /* built in or listed */
	return err;
}

static void noop_fill_stat(struct stat *st, mode_t mode)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = mode;
	st->st_nlink = S_ISDIR(mode) ? 2 : 1;
	st->st_uid = noop_uid;
	st->st_gid = noop_gid;
	st->st_atim = st->st_mtim = st->st_ctim = noop_time;
}

static void *noop_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)cfg; /* libfuse's default timeouts, as a normal mount */
	if (noop_plus)
		conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO; /* READDIRPLUS on every listing */
	return NULL;
}

static int noop_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	mode_t m = noop_mode(path);

	(void)fi;
	atomic_fetch_add(&n_getattr, 1);
	if (!m)
		return -ENOENT;
	noop_fill_stat(st, m);
	return 0;
}

/*
 * The big folder. libfuse 3.14 only passes readdirplus attributes on to the kernel when
 * the filler gets non-zero offsets, so entries are numbered: 0 ".", 1 "..", 2.. folders.
 */
static int noop_readdir_big(void *buf, fuse_fill_dir_t fill, off_t off,
			    enum fuse_readdir_flags flags)
{
	enum fuse_fill_dir_flags ff =
		(noop_plus && (flags & FUSE_READDIR_PLUS)) ? FUSE_FILL_DIR_PLUS : 0;
	struct stat st;
	char name[32];
	long i;

	noop_fill_stat(&st, S_IFDIR | 0755);
	if (!noop_plus) {
		fill(buf, ".", NULL, 0, 0);
		fill(buf, "..", NULL, 0, 0);
		for (i = 0; i < noop_ndir; i++) {
			snprintf(name, sizeof(name), "d%05ld", i);
			if (fill(buf, name, &st, 0, 0))
				break;
		}
		return 0;
	}
	for (i = off; i < noop_ndir + 2; i++) {
		if (i < 2) {
			if (fill(buf, i ? ".." : ".", NULL, i + 1, 0))
				break;
			continue;
		}
		snprintf(name, sizeof(name), "d%05ld", i - 2);
		if (fill(buf, name, &st, i + 1, ff))
			break;
	}
	return 0;
}

static int noop_readdir(const char *path, void *buf, fuse_fill_dir_t fill, off_t off,
			struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	size_t len = strlen(path);
	struct noop_node *n;
	struct stat st;
	int i;

	(void)fi;
	atomic_fetch_add(&n_readdir, 1);
	if (!strcmp(path, NOOP_BIGDIR))
		return noop_readdir_big(buf, fill, off, flags);
	if (!S_ISDIR(noop_mode(path)))
		return -ENOTDIR;
	fill(buf, ".", NULL, 0, 0);
	fill(buf, "..", NULL, 0, 0);
	if (noop_is_listed(path))
		return 0;
	if (!strcmp(path, "/")) {
		len = 0;
		fill(buf, NOOP_BIGNAME, NULL, 0, 0);
	}
	pthread_mutex_lock(&noop_lock);
	for (i = 0; i < NOOP_BUCKETS; i++)
		for (n = noop_table[i]; n; n = n->next) {
			const char *name = n->path + len + 1;

			if (strncmp(n->path, path, len) || n->path[len] != '/' || strchr(name, '/'))
				continue;
			noop_fill_stat(&st, n->mode);
			fill(buf, name, &st, 0, 0);
		}
	pthread_mutex_unlock(&noop_lock);
	return 0;
}

static int noop_mkdir(const char *path, mode_t mode)
{
	(void)mode;
	return noop_add(path, S_IFDIR | 0755);
}

static int noop_rmdir(const char *path)
{
	return noop_remove(path, 1);
}

static int noop_unlink(const char *path)
{
	return noop_remove(path, 0);
}

static int noop_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	int err;

	(void)mode;
	atomic_fetch_add(&n_create, 1);
	err = noop_add(path, S_IFREG | 0644);
	if (err == -EEXIST && !(fi->flags & O_EXCL) && S_ISREG(noop_mode(path)))
		err = 0;
	if (!err && noop_dio)
		fi->direct_io = 1;
	return err;
}

static int noop_open(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	atomic_fetch_add(&n_open, 1);
	if (noop_dio)
		fi->direct_io = 1;
	return 0;
}

static int noop_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)path, (void)buf, (void)size, (void)off, (void)fi;
	return 0;
}

static int noop_write(const char *path, const char *buf, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	(void)path, (void)buf, (void)off, (void)fi;
	atomic_fetch_add(&n_write, 1);
	return (int)size;
}

static int noop_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	(void)path, (void)size, (void)fi;
	return 0;
}

static int noop_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
{
	(void)path, (void)tv, (void)fi;
	return 0;
}

static int noop_flush(const char *path, struct fuse_file_info *fi)
{
	(void)path, (void)fi;
	atomic_fetch_add(&n_flush, 1);
	return 0;
}

static int noop_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)path, (void)datasync, (void)fi;
	return 0;
}

static int noop_release(const char *path, struct fuse_file_info *fi)
{
	(void)path, (void)fi;
	atomic_fetch_add(&n_release, 1);
	return 0;
}

static void noop_destroy(void *data)
{
	(void)data;
	fprintf(stderr,
		"noopfs: getattr=%lu readdir=%lu create=%lu open=%lu write=%lu flush=%lu "
		"release=%lu\n",
		atomic_load(&n_getattr), atomic_load(&n_readdir), atomic_load(&n_create),
		atomic_load(&n_open), atomic_load(&n_write), atomic_load(&n_flush),
		atomic_load(&n_release));
}

static const struct fuse_operations noop_ops = {
	.init = noop_init,
	.getattr = noop_getattr,
	.readdir = noop_readdir,
	.mkdir = noop_mkdir,
	.rmdir = noop_rmdir,
	.unlink = noop_unlink,
	.create = noop_create,
	.open = noop_open,
	.read = noop_read,
	.write = noop_write,
	.truncate = noop_truncate,
	.utimens = noop_utimens,
	.flush = noop_flush,
	.fsync = noop_fsync,
	.release = noop_release,
	.destroy = noop_destroy,
};

static long noop_env_long(const char *name, long dflt, long min, long max)
{
	const char *s = getenv(name);
	char *end;
	long v;

	if (!s || !*s)
		return dflt;
	v = strtol(s, &end, 10);
	if (*end || v < min || v > max) {
		fprintf(stderr, "noopfs: bad %s '%s': expected %ld..%ld\n", name, s, min, max);
		exit(2);
	}
	return v;
}

int main(int argc, char *argv[])
{
	noop_ndir = noop_env_long("NOOP_NDIR", 10000, 0, 10000000);
	noop_plus = (int)noop_env_long("NOOP_PLUS", 1, 0, 1);
	noop_dio = (int)noop_env_long("NOOP_DIO", 0, 0, 1);
	noop_uid = getuid();
	noop_gid = getgid();
	clock_gettime(CLOCK_REALTIME, &noop_time);
	return fuse_main(argc, argv, &noop_ops, NULL);
}
