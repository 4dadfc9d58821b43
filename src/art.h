/*
 * art.h - a run's artifacts, apart from the tracking store, as MLflow keeps
 * artifact repositories apart from tracking stores.
 *
 * A repository serves the artifact URIs of one or more schemes; the registry,
 * built at start-up from the configuration, picks one by the scheme of the
 * run's artifact URI on every call.  Callers use only the art_*() functions
 * below and never learn which repository answers.  Every function returns 0
 * (read and write: a byte count) or a negative errno; after a refusal,
 * art_errmsg() may say why in one line.
 *
 * A repository never calls FUSE: whatever it needs to know about the caller
 * comes in a struct art_caller.
 *
 * Threads: the registry and its repositories may be called from any thread at
 * once; one open file may be used by several threads at once (pread/pwrite
 * semantics: no file offset).
 */
#ifndef MFS_ART_H
#define MFS_ART_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

struct buf;

struct mfs_config;
struct statvfs;

struct art_registry;

/* Where an operation acts: a path below a run's artifact URI.  Both borrowed
 * for the call. */
struct art_loc {
	const char *uri;  /* the run's artifact_uri, as the tracking store keeps it */
	const char *path; /* below it, '/'-separated, no leading '/'; "" for the root */
};

/* Who asks: a name it makes is given to this user and group, as the caller
 * would own it on a bind mount. */
struct art_caller {
	uid_t uid;
	gid_t gid;
	mode_t umask; /* for folders a repository makes on its own (the run's) */
};

/* ---- the API ------------------------------------------------------------ */

/*
 * A registry with the repositories this machine has: the local repository
 * for absolute paths and file: URIs, and for mlflow-artifacts: URIs below
 * artifact_root (the local store's) when that is not NULL; else, when cfg
 * names a tracking server (http:, https:), that server's proxied artifacts
 * for mlflow-artifacts: URIs.  cfg may be NULL.  Returns a new registry the
 * caller frees with art_registry_free(), or NULL without memory.
 */
struct art_registry *art_registry_new(const char *artifact_root, const struct mfs_config *cfg);
void art_registry_free(struct art_registry *reg);

/* Why the last call on this thread failed, if a repository said; "" if not. */
const char *art_errmsg(void);

/* Appends each repository's lines for .mlflowfs/status to out. */
int art_describe(struct art_registry *reg, struct buf *out);

/* lstat(2) of loc: a symbolic link is not followed.  -ENOENT for a run's
 * root that does not exist yet. */
int art_stat(struct art_registry *reg, const struct art_loc *loc, struct stat *st);

/* Called once per entry of a folder, "." and ".." left out; name and st are
 * borrowed for the call.  Returns 0 to go on, a negative errno to fail the
 * listing, a positive value to stop it (art_list() then returns that). */
typedef int art_list_cb(void *ctx, const char *name, const struct stat *st);
int art_list(struct art_registry *reg, const struct art_loc *loc, art_list_cb *cb, void *ctx);

/*
 * Opens loc with open(2)'s flags (O_CREAT, O_EXCL, O_TRUNC, O_APPEND ...) and,
 * when it makes the file, mode; a new file belongs to c.  *out is an open
 * file to pass to the calls below and to close with art_close().
 */
struct art_file;
int art_open(struct art_registry *reg, const struct art_loc *loc, int flags, mode_t mode,
	     const struct art_caller *c, struct art_file **out);
ssize_t art_read(struct art_file *f, void *buf, size_t size, off_t off);
ssize_t art_write(struct art_file *f, const void *buf, size_t size, off_t off);
int art_fstat(struct art_file *f, struct stat *st);
int art_ftruncate(struct art_file *f, off_t size);
int art_fallocate(struct art_file *f, int mode, off_t off, off_t len);

/* How far art_sync() makes what a file wrote safe. */
enum art_sync {
	ART_SYNC_CLOSE, /* a descriptor is closed: in the repository (remote: uploaded) */
	ART_SYNC_DATA,	/* fdatasync(2): also its data on stable storage */
	ART_SYNC_ALL,	/* fsync(2): also its attributes */
};
int art_sync(struct art_file *f, enum art_sync how);
/* Frees f (NULL is fine); what it wrote and did not sync may be lost. */
int art_close(struct art_file *f);

/* truncate(2) of a name; art_ftruncate() for an open file. */
int art_truncate(struct art_registry *reg, const struct art_loc *loc, off_t size);

/* The attribute calls: on the open file f when the caller has one (loc is
 * then not read and may be NULL), else on loc. */
int art_chmod(struct art_registry *reg, const struct art_loc *loc, struct art_file *f, mode_t mode);
/* (uid_t)-1 or (gid_t)-1 keep that one, as in chown(2); a symbolic link
 * itself changes, not what it points to. */
int art_chown(struct art_registry *reg, const struct art_loc *loc, struct art_file *f, uid_t uid,
	      gid_t gid);
/* tv as utimensat(2) takes it (UTIME_NOW, UTIME_OMIT); a symbolic link itself
 * changes, not what it points to. */
int art_utimens(struct art_registry *reg, const struct art_loc *loc, struct art_file *f,
		const struct timespec tv[2]);

int art_mkdir(struct art_registry *reg, const struct art_loc *loc, mode_t mode,
	      const struct art_caller *c);
/* unlink(2), or with dir rmdir(2). */
int art_remove(struct art_registry *reg, const struct art_loc *loc, int dir);
/* renameat2(2) with its flags (RENAME_NOREPLACE, RENAME_EXCHANGE); -EXDEV
 * between locations that two repositories serve. */
int art_rename(struct art_registry *reg, const struct art_loc *from, const struct art_loc *to,
	       unsigned int flags);
/* Fills buf with the link's target and a NUL, cut to size - 1 bytes. */
int art_readlink(struct art_registry *reg, const struct art_loc *loc, char *buf, size_t size);
int art_link(struct art_registry *reg, const struct art_loc *from, const struct art_loc *to);
int art_symlink(struct art_registry *reg, const char *target, const struct art_loc *loc,
		const struct art_caller *c);
int art_mknod(struct art_registry *reg, const struct art_loc *loc, mode_t mode, dev_t dev,
	      const struct art_caller *c);
/* access(2) with the daemon's own rights (R_OK, W_OK, X_OK, F_OK). */
int art_access(struct art_registry *reg, const struct art_loc *loc, int mask);
int art_statfs(struct art_registry *reg, const struct art_loc *loc, struct statvfs *st);

/* ---- repositories --------------------------------------------------------- */

/*
 * A repository embeds struct art_repo first, and its open files embed struct
 * art_file first; callers treat both as opaque.  The wrappers above find the
 * repository, check arguments common to all, turn a NULL optional slot into
 * -ENOTSUP, and clear art_errmsg() first.
 */
struct art_repo {
	const struct art_ops *ops;
};

struct art_file {
	struct art_repo *repo; /* set by the repository's open */
};

typedef int art_stat_fn(struct art_repo *r, const struct art_loc *loc, struct stat *st);
typedef int art_list_fn(struct art_repo *r, const struct art_loc *loc, art_list_cb *cb, void *ctx);
typedef int art_open_fn(struct art_repo *r, const struct art_loc *loc, int flags, mode_t mode,
			const struct art_caller *c, struct art_file **out);
typedef ssize_t art_read_fn(struct art_file *f, void *buf, size_t size, off_t off);
typedef ssize_t art_write_fn(struct art_file *f, const void *buf, size_t size, off_t off);
typedef int art_fstat_fn(struct art_file *f, struct stat *st);
typedef int art_ftruncate_fn(struct art_file *f, off_t size);
typedef int art_fallocate_fn(struct art_file *f, int mode, off_t off, off_t len);
typedef int art_sync_fn(struct art_file *f, enum art_sync how);
typedef int art_close_fn(struct art_file *f);
typedef int art_truncate_fn(struct art_repo *r, const struct art_loc *loc, off_t size);
typedef int art_chmod_fn(struct art_repo *r, const struct art_loc *loc, struct art_file *f,
			 mode_t mode);
typedef int art_chown_fn(struct art_repo *r, const struct art_loc *loc, struct art_file *f,
			 uid_t uid, gid_t gid);
typedef int art_utimens_fn(struct art_repo *r, const struct art_loc *loc, struct art_file *f,
			   const struct timespec tv[2]);
typedef int art_mkdir_fn(struct art_repo *r, const struct art_loc *loc, mode_t mode,
			 const struct art_caller *c);
typedef int art_remove_fn(struct art_repo *r, const struct art_loc *loc, int dir);
typedef int art_rename_fn(struct art_repo *r, const struct art_loc *from, const struct art_loc *to,
			  unsigned int flags);
typedef int art_readlink_fn(struct art_repo *r, const struct art_loc *loc, char *buf, size_t size);
typedef int art_link_fn(struct art_repo *r, const struct art_loc *from, const struct art_loc *to);
typedef int art_symlink_fn(struct art_repo *r, const char *target, const struct art_loc *loc,
			   const struct art_caller *c);
typedef int art_mknod_fn(struct art_repo *r, const struct art_loc *loc, mode_t mode, dev_t dev,
			 const struct art_caller *c);
typedef int art_access_fn(struct art_repo *r, const struct art_loc *loc, int mask);
typedef int art_statfs_fn(struct art_repo *r, const struct art_loc *loc, struct statvfs *st);
typedef void art_free_fn(struct art_repo *r);
typedef int art_describe_fn(struct art_repo *r, struct buf *out);

struct art_ops {
	const char *name; /* for messages: "local" */

	/* Every getattr and lookup below artifacts/.  Required. */
	art_stat_fn *stat;
	/* A listing of a folder (readdir).  Required. */
	art_list_fn *list;
	/* open(2) and creat(2); a new name belongs to the caller.  Required. */
	art_open_fn *open;
	/* The calls on an open file.  Required, but for fallocate (NULL:
	 * -ENOTSUP). */
	art_read_fn *read;
	art_write_fn *write;
	art_fstat_fn *fstat;
	art_ftruncate_fn *ftruncate;
	art_fallocate_fn *fallocate;
	/* At every close(2) of a descriptor, at fsync(2) and fdatasync(2): a
	 * remote repository uploads here.  Required. */
	art_sync_fn *sync;
	/* At the last close of an open file (FUSE release).  Required. */
	art_close_fn *close;
	/* truncate(2) of a name.  Required. */
	art_truncate_fn *truncate;
	/* Attribute changes, on f when given, else on loc.  May be NULL where
	 * a repository keeps no such attribute: -ENOTSUP. */
	art_chmod_fn *chmod;
	art_chown_fn *chown;
	art_utimens_fn *utimens;
	/* mkdir(2); the new folder belongs to the caller.  Required. */
	art_mkdir_fn *mkdir;
	/* unlink(2) or rmdir(2).  Required. */
	art_remove_fn *remove;
	/* rename(2) and renameat2(2) within the repository.  May be NULL:
	 * -ENOTSUP. */
	art_rename_fn *rename;
	/* Symbolic links, hard links and special files.  May be NULL: -ENOTSUP
	 * (a repository that makes no links never lists one, so readlink is
	 * then never asked). */
	art_readlink_fn *readlink;
	art_symlink_fn *symlink;
	art_link_fn *link;
	art_mknod_fn *mknod;
	/* access(2).  May be NULL: -ENOTSUP. */
	art_access_fn *access;
	/* statfs(2) of the file system that holds loc.  May be NULL: -ENOTSUP. */
	art_statfs_fn *statfs;
	/* "name: value" lines for .mlflowfs/status.  May be NULL: none. */
	art_describe_fn *describe;
	/* Frees the repository when the registry is freed.  Required. */
	art_free_fn *free;
};

/*
 * Adds a repository to the registry for the URI schemes in schemes (a NULL-
 * terminated list; "" stands for absolute paths, which have no scheme; case
 * is ignored).  Steals repo, also on failure.  0 or -ENOMEM.
 */
int art_registry_add(struct art_registry *reg, struct art_repo *repo, const char *const *schemes);

/* For repositories: sets what art_errmsg() returns on this thread. */
void art_set_errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * The local repository: an artifact URI names a folder on this machine, and
 * every call passes through to it, relative to open folders (paths may be as
 * long as the system allows).  Serves absolute paths, file:/PATH,
 * file:///PATH and file://localhost/PATH, and, when mlflow_artifacts_root is
 * not NULL, mlflow-artifacts:[//HOST]/PATH as mlflow_artifacts_root/PATH (a
 * tracking server's proxied artifacts, when its artifacts destination is that
 * folder).  Returns a new repository, or NULL without memory.
 */
struct art_repo *art_local_new(const char *mlflow_artifacts_root);

/*
 * The artifacts a tracking server keeps (its proxied artifact API), for
 * mlflow-artifacts:[//HOST:PORT]/PATH URIs, reached with cfg's tracking URI
 * and credentials; listings kept for cfg's cache_ttl.  NULL, with a log
 * line, on failure.
 */
struct art_repo *art_proxy_new(const struct mfs_config *cfg);

#endif
