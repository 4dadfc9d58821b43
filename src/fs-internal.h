/*
 * fs-internal.h - what the files of the FUSE layer share: the daemon's state
 * (struct fs), a resolved path (struct target), an open file (struct handle),
 * an artifact path ready for *at() calls (struct art_ref), and the functions
 * one file offers the others.  fs.c resolves paths and changes names,
 * fs_read.c answers getattr, readlink and readdir, fs_file.c opens, reads and
 * writes, fs_art.c passes artifacts through to their folder on disk.
 */
#ifndef MFS_FS_INTERNAL_H
#define MFS_FS_INTERNAL_H

#include <fuse.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>

#include "buf.h"
#include "content.h"
#include "path.h"
#include "store.h"

struct mfs_config;
struct statvfs;

/* Created names that have no value yet, and folders made for keys. */
struct pending {
	struct pending *next;
	char *path;
	int open_files; /* > 0: a created file, visible while open */
	int is_dir;	/* a key folder made by mkdir */
};

/* A path whose attributes the kernel may cache (fs_watch.c). */
struct fs_seen {
	char *path;
	int64_t ms;
};
#define FS_SEEN_MAX 8192

struct fs {
	struct store *store;
	const struct mfs_config *cfg;
	uid_t uid;
	gid_t gid;
	int64_t mounted_ms;
	pthread_mutex_t pending_lock;
	struct pending *pending; /* protected by pending_lock */
	/* Open files and folders, freed at unmount if the kernel never released
	 * them. */
	pthread_mutex_t open_lock;
	struct handle *handles;	 /* protected by open_lock */
	struct dir_handle *dirs; /* protected by open_lock */
	/* fs_watch.c: paths answered lately, and the thread that makes the
	 * kernel forget them when another client commits. */
	struct fuse *fuse;
	pthread_mutex_t seen_lock;
	struct fs_seen seen[FS_SEEN_MAX]; /* protected by seen_lock */
	unsigned seen_next;		  /* protected by seen_lock */
	pthread_mutex_t watch_lock;
	pthread_cond_t watch_wake; /* used with watch_lock */
	int watch_stop;		   /* protected by watch_lock */
	pthread_t watcher;
	int watching; /* set before the loop runs, cleared after it ended */
};

/* What a path names, found in the store. */
struct target {
	struct node n;
	struct store_experiment exp;
	struct store_run run;
	struct store_model model;
	struct store_version version;
	int has_exp, has_run, has_model, has_version;
	int parsed; /* n is valid, even when what it names was not found */
};

enum handle_kind {
	H_ARTIFACT, /* fd is the file on disk */
	H_READ,	    /* content holds what reads return */
	H_PARAM,    /* wbuf collects the value */
	H_TAG,
	H_STATUS,
	H_METRIC, /* wbuf holds an unfinished line */
};

struct handle {
	enum handle_kind kind;
	enum store_section sec; /* H_PARAM, H_TAG, H_METRIC */
	int fd;
	int append;
	struct blob content;
	struct buf wbuf;
	int wrote;	  /* wbuf holds something to log at flush */
	int failed;	  /* a write was refused (-errno): nothing is logged at flush */
	int have_token;	  /* token is set: this descriptor has written */
	uint64_t token;	  /* store_write_token() before the first write */
	size_t value_max; /* characters a value may have */
	char run_id[STORE_RUN_ID_MAX];
	char experiment_id[STORE_ID_MAX];
	char *key;
	char *path;		    /* for messages and the pending table */
	int pending;		    /* path is registered as a pending created file */
	pthread_mutex_t lock;	    /* FUSE may use one handle from several threads */
	struct handle *prev, *next; /* in fs->handles, protected by fs->open_lock */
};

#define DIR_MODE  (S_IFDIR | 0755)
#define RO_MODE	  (S_IFREG | 0444)
#define RW_MODE	  (S_IFREG | 0644)
#define LINK_MODE (S_IFLNK | 0777)

/* ---- artifacts (local folder pass-through) --------------------------- */

/* A name below a run's artifacts/, ready for *at() calls. */
struct art_ref {
	int root;	  /* the run's artifact folder (O_PATH) */
	int dir;	  /* the folder holding leaf: root, or one walked to */
	const char *leaf; /* the last component; "" for the artifacts folder itself */
	char proc[32];	  /* "/proc/self/fd/N" of root, for calls that refuse O_PATH */
};

/* fs.c: state, names, resolving paths, name operations */
struct fs *fs_get(void);
int64_t fs_now_ms(void);
long fs_utf8_chars(const char *s, size_t len);
int fs_key_check(const char *path, const char *key);
int fs_name_check(const char *path, const char *what, long max_chars);
const char *fs_status_parse(const char *text, size_t len, int prefix);
/* -EROFS, logged, for a path under models/ (read-only here); else 0. */
int fs_models_refuse(const char *path);
int fs_pending_add(struct fs *fs, const char *path, int is_dir);
void fs_pending_drop(struct fs *fs, const char *path, int is_dir);
int fs_pending_state(struct fs *fs, const char *path);
void fs_target_release(struct target *t);
/* Parses path and finds the objects it names; -ENOENT if one is missing.
 * fs_resolve_new() keeps the parsed node (t->parsed) when something is
 * missing, for callers making a new name; release t either way. */
int fs_resolve(struct fs *fs, const char *path, struct target *t);
int fs_resolve_new(struct fs *fs, const char *path, struct target *t);
enum store_section fs_node_section(const struct target *t, struct store_ref *ref);
int fs_key_lookup(struct fs *fs, const struct target *t, struct store_kv *kv);
void fs_fill_stat(struct fs *fs, struct stat *st, mode_t mode, off_t size, int64_t ms);
int fs_mkdir(const char *path, mode_t mode);
int fs_unlink(const char *path);
int fs_rmdir(const char *path);
int fs_rename(const char *from, const char *to, unsigned int flags);
void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg);

/* fs_read.c: attributes, links, listings */
int fs_render(struct fs *fs, const struct target *t, struct buf *out, struct blob *blob);
int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi);
int fs_readlink(const char *path, char *out, size_t size);
int fs_opendir(const char *path, struct fuse_file_info *fi);
int fs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
	       struct fuse_file_info *fi, enum fuse_readdir_flags flags);
void fs_dir_free_all(struct fs *fs);
int fs_releasedir(const char *path, struct fuse_file_info *fi);

/* fs_file.c: open files */
int fs_open(const char *path, struct fuse_file_info *fi);
int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi);
int fs_read(const char *path, char *out, size_t size, off_t off, struct fuse_file_info *fi);
int fs_write(const char *path, const char *data, size_t size, off_t off, struct fuse_file_info *fi);
int fs_flush(const char *path, struct fuse_file_info *fi);
int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi);
int fs_release(const char *path, struct fuse_file_info *fi);
int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi);
void fs_file_free_all(struct fs *fs);
int fs_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi);

/* fs_art.c: artifacts */
void fs_art_chown_new(int dirfd, const char *leaf);
void fs_art_close(struct art_ref *a);
int fs_art_open(struct fs *fs, struct target *t, int create, struct art_ref *a);
int fs_art_getattr(struct fs *fs, struct target *t, struct stat *st);
int fs_art_simple(struct fs *fs, struct target *t, int (*op)(int, const char *, int), int flags);
int fs_symlink(const char *target, const char *path);
int fs_link(const char *from, const char *to);
int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi);
int fs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi);
int fs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi);
int fs_mknod(const char *path, mode_t mode, dev_t dev);
int fs_access(const char *path, int mask);
int fs_statfs(const char *path, struct statvfs *st);
int fs_setxattr(const char *path, const char *name, const char *value, size_t size, int flags);
int fs_removexattr(const char *path, const char *name);

/* fs_watch.c: other writers' changes in stat() */
/* Records that the kernel got the attributes of dir/name (name may be NULL). */
void fs_seen(struct fs *fs, const char *dir, const char *name);
void fs_watch_start(struct fs *fs, struct fuse *f);

#endif
