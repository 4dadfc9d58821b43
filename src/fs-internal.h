/*
 * fs-internal.h - what the files of the FUSE layer share.  A request goes
 * one way: fs.c's handler resolves the path (fs_node.c) into a struct
 * target, looks up the operations of the node's kind (struct kind_ops, the
 * one table in fs.c), calls one, and fills the answer.  The kinds live in
 * fs_tree.c (the tree's folders and files), fs_keys.c (params, metrics,
 * history, tags) and fs_art.c (artifacts); they use fs_node.c's helpers,
 * fs_file.c's open files and fs_dir.c's listings, and never each other or
 * a handler.
 */
#ifndef MFS_FS_INTERNAL_H
#define MFS_FS_INTERNAL_H

#include <fcntl.h>
#include <fuse.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>

#include "art.h"
#include "buf.h"
#include "content.h"
#include "ingest.h"
#include "path.h"
#include "store.h"

struct listing;
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
/* Experiments whose runs tables are kept rendered (fs_views.c). */
#define FS_VIEWS_MAX 8

struct fs_view;

/* A plot's size, valid while the points it was drawn from are (check). */
#define FS_PLOT_SIZES 128
struct fs_plot_size {
	char *name; /* what it plots; NULL: a free slot */
	uint64_t check;
	off_t size;
};

struct fs {
	struct store *store;
	struct art_registry *art;
	struct ingest *ingest; /* NULL with -o noparse; has its own locks */
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
	struct fuse *fuse; /* set in fs_init, before any other request */
	pthread_mutex_t seen_lock;
	struct fs_seen seen[FS_SEEN_MAX]; /* protected by seen_lock */
	unsigned seen_next;		  /* protected by seen_lock */
	pthread_mutex_t watch_lock;
	pthread_cond_t watch_wake; /* used with watch_lock */
	int watch_stop;		   /* protected by watch_lock */
	pthread_t watcher;	   /* set in fs_init, joined after the loop ended */
	int watching;		   /* set in fs_init (the loop's INIT), cleared after it ended */
	pthread_mutex_t views_lock;
	struct fs_view *views[FS_VIEWS_MAX]; /* protected by views_lock */
	/* fs_plot.c: the sizes of plots rendered lately, so that a stat of
	 * one renders it only after its points changed. */
	pthread_mutex_t plot_lock;
	struct fs_plot_size plot_sizes[FS_PLOT_SIZES]; /* protected by plot_lock */
	unsigned plot_next;			       /* protected by plot_lock */
	/* The drawing made last, for the open that follows its stat; protected
	 * by plot_lock. */
	char *plot_last_name;
	uint64_t plot_last_check;
	struct buf plot_last;
};

/* What a key node names (fs_key_find). */
enum key_state {
	KEY_UNKNOWN,
	KEY_MISSING,
	KEY_FILE,
	KEY_DIR,
	KEY_PLOT /* history/<key>.svg: kv is the metric it plots */
};

/* What a path names, found in the store.  Owned by one request. */
struct target {
	struct node n;
	const char *path; /* as FUSE gave it; borrowed */
	struct store_experiment exp;
	struct store_run run;
	struct store_model model;
	struct store_version version;
	struct store_logged_model lm; /* an MLflow 3 logged model and what is in it */
	int has_exp, has_run, has_model, has_version, has_lm;
	int parsed;	/* n is valid: the path can name something in the tree */
	int lookup_err; /* rename's new name: -ENOENT when a folder above it is missing */
	/* The object the last component names (an experiment, run or model)
	 * is missing, though everything above it is there: only a request
	 * that makes names (mkdir, create, rename's new name) gets this. */
	int missing;
	/* Filled on demand: the run as one snapshot, and a key's state. */
	const struct store_snapshot *snap;
	enum key_state key;
	const struct store_kv *kv; /* KEY_FILE: borrowed from snap or kv_own */
	struct store_kv kv_own;
};

/*
 * The operations of one kind of node.  Each gets a resolved target and
 * returns 0 or -errno, refusals logged; a NULL slot answers as the
 * handler's comment in fs.c says (mostly a refusal).
 */
struct kind_ops {
	int (*getattr)(struct fs *fs, struct target *t, struct stat *st);
	/* Fills a listing (fs_dir.c) with the folder's entries. */
	int (*list)(struct fs *fs, struct target *t, struct listing *l);
	/* Opens (create: makes) the node; sets fi->fh to a struct handle. */
	int (*open)(struct fs *fs, struct target *t, struct fuse_file_info *fi, int create,
		    mode_t mode);
	int (*mkdir)(struct fs *fs, struct target *t, mode_t mode);
	int (*unlink)(struct fs *fs, struct target *t);
	int (*rmdir)(struct fs *fs, struct target *t);
	/* to is resolved like a name being made (to->missing may be set). */
	int (*rename)(struct fs *fs, struct target *from, struct target *to, unsigned flags);
	int (*readlink)(struct fs *fs, struct target *t, struct buf *out);
	int (*truncate)(struct fs *fs, struct target *t, off_t size);
	/* Artifacts only: the calls of a folder passed through. */
	int (*symlink)(struct fs *fs, const char *target, struct target *t);
	int (*link)(struct fs *fs, struct target *from, struct target *to);
	int (*mknod)(struct fs *fs, struct target *t, mode_t mode, dev_t dev);
	int (*chmod)(struct fs *fs, struct target *t, mode_t mode);
	int (*chown)(struct fs *fs, struct target *t, uid_t uid, gid_t gid);
	int (*utimens)(struct fs *fs, struct target *t, const struct timespec tv[2]);
	int (*access)(struct fs *fs, struct target *t, int mask);
	int (*statfs)(struct fs *fs, struct target *t, struct statvfs *st);
};

/* The kinds' operations (fs_tree.c, fs_keys.c, fs_art.c). */
extern const struct kind_ops fs_experiments_ops, fs_experiment_ops, fs_run_ops, fs_fixed_dir_ops,
	fs_runs_ops, fs_link_ops, fs_ro_file_ops, fs_status_ops, fs_models_ops, fs_model_ops,
	fs_aliases_ops, fs_alias_ops, fs_versions_ops, fs_version_ops, fs_keys_ops,
	fs_artifacts_ops, fs_run_models_ops, fs_logged_models_ops, fs_logged_model_ops,
	fs_lm_files_ops, fs_plots_ops;

#define DIR_MODE  (S_IFDIR | 0755)
#define RO_MODE	  (S_IFREG | 0444)
#define RW_MODE	  (S_IFREG | 0644)
#define LINK_MODE (S_IFLNK | 0777)

/* ---- fs_node.c: names, resolving, attributes, pending names ---------- */

struct fs *fs_get(void);
int64_t fs_now_ms(void);
long fs_utf8_chars(const char *s, size_t len);
/* MLflow's key rule, exactly: 0, or -EINVAL / -ENAMETOOLONG logged. */
int fs_key_check(const char *path, const char *key);
/* A name being made is written as its listing will show it (a key's '/'
 * may also be %2F: the listing shows folders), and fits. */
int fs_name_check(const char *path, const char *what, long max_chars);
/* The canonical status text (any case) names, or with prefix begins; NULL. */
const char *fs_status_parse(const char *text, size_t len, int prefix);
/* The same for a model version's stage (None Staging Production Archived),
 * which MLflow also takes in any case. */
const char *fs_stage_parse(const char *text, size_t len, int prefix);
/* Whether the last component of path is a name libfuse hides removed open
 * files under (.fuse_hidden and 16 hex digits). */
int fs_hidden_name(const char *path);
/*
 * Whether renaming from to to is libfuse hiding a file removed while open:
 * to is such a name in the same folder, and (with fs) from is open in this
 * mount.  libfuse counts a file open until its release is done, a little
 * after ours: for artifacts, the name alone decides (fs NULL).  Any other
 * rename to such a name is an ordinary one.
 */
int fs_is_hide(struct fs *fs, const char *from, const char *to);
/* The caller's login name, for new runs. */
void fs_caller_name(char *out, size_t size);

/* A store call's failure for path, logged (mlflowfs(1), ERRORS: every failure says
 * why); -ENOENT (and a file that is no folder, or the other way round)
 * is an answer, not a failure, and passes quietly. */
int fs_store_err(const char *path, int err);
/* Refusals several kinds share: the reason, and moving a node of the tree
 * (refused, so that mv does not copy and delete instead); logged. */
#define WHY_READ_ONLY	 "this file is read-only"
#define WHY_FILE_STAYS	 "this file cannot be removed"
#define WHY_FOLDER_STAYS "this folder cannot be removed"
int fs_refuse_move(const char *from, const char *to);
/* Why the store call that failed with err did: its message, or the errno's. */
const char *fs_store_why(int err);

/* Parses path and finds the objects it names: 0, or -ENOENT if one is
 * missing.  With make, a missing last object is t->missing, not -ENOENT.
 * Release t either way. */
int fs_resolve(struct fs *fs, const char *path, struct target *t, int make);
void fs_target_release(struct target *t);
/* The run of t as one snapshot with (at least) the sections in want
 * (fetched once per target). */
int fs_target_snapshot(struct fs *fs, struct target *t, unsigned want);

/* The time of a folder: that of the deepest object it belongs to. */
int64_t fs_node_ms(struct fs *fs, const struct target *t);
/* The attributes of a node of ours: owner the mounting user. */
void fs_fill_stat(struct fs *fs, struct stat *st, mode_t mode, off_t size, int64_t ms);

/* Created files and key folders that have no value in the store yet. */
int fs_pending_add(struct fs *fs, const char *path, int is_dir);
void fs_pending_drop(struct fs *fs, const char *path, int is_dir);
/* 0: not pending, 1: a created file, 2: a key folder. */
int fs_pending_state(struct fs *fs, const char *path);
/* Calls fn for each pending name directly in folder dir. */
int fs_pending_each(struct fs *fs, const char *dir,
		    int (*fn)(void *ctx, const char *name, int is_file), void *ctx);

/*
 * The mount path (from "/") a symbolic link's text names, the link being
 * made at path: a relative text is taken from path's folder, an absolute one
 * must be inside the mountpoint; "." and ".." are resolved by name.
 * -EINVAL if it leaves the mount.
 */
int fs_link_resolve(struct fs *fs, const char *path, const char *text, struct buf *out);

/* ---- fs_art.c: artifacts ------------------------------------------------ */

/* 0 if t, a NODE_ARTIFACTS target, is a folder; -ENOTDIR, -ENOENT. */
int fs_art_folder(struct fs *fs, struct target *t);

/* ---- fs_plot.c: plots (history/<key>.svg, an experiment's .plots/) ---- */

/* The name of key's plot in history/ ("<key>.svg"): a new string; NULL
 * without memory. */
char *fs_plot_name(const char *key);
/* The attributes of history/<key>.svg, key the metric kv of t's run. */
int fs_plot_history_stat(struct fs *fs, const struct target *t, const struct store_kv *kv,
			 struct stat *st);
/* Opens history/<key>.svg for reading (t->kv is the metric). */
int fs_plot_history_open(struct fs *fs, struct target *t, struct fuse_file_info *fi);
void fs_plot_init(struct fs *fs);
void fs_plot_free(struct fs *fs);

/* ---- fs_dir.c: listings ------------------------------------------------ */

/* Adds an entry (name as the kernel shows it); a name no listing can show
 * (empty, over NAME_MAX) is left out with a log line. */
int listing_add(struct listing *l, const char *name, const struct stat *st);
/* An entry listed without its attributes (only its type, S_IFREG...), for
 * a file whose size costs a rendering: a listing does not pay for it, and
 * stat() asks getattr as it would for any entry. */
int listing_add_lazy(struct listing *l, const char *name, mode_t type);
/* The same for a store name, percent-encoded first. */
int listing_add_encoded(struct listing *l, const char *name, const struct stat *st);
/* The folder's path, for messages. */
const char *listing_path(const struct listing *l);
/* Whether a name was added already. */
int listing_has(const struct listing *l, const char *name);
/* Artifacts: their attributes are the disk's, fs_watch need not track them. */
void listing_untracked(struct listing *l);
/* Key folders: sorted, and a key that is also a folder shows once, as the
 * key (mlflowfs(1), THE TREE), when the listing is done. */
void listing_dedupe(struct listing *l);

/* Open folders: the listing is taken at the first readdir (by fill, which
 * adds every entry), then served by offset. */
struct dir_handle *fs_dir_open(struct fs *fs, const char *path);
/* The folder's listing for offset off on: taken (again, at a rewind to 0)
 * with fill, then handed to filler; 0 or -errno. */
int fs_dir_read(struct fs *fs, struct dir_handle *d, off_t off, void *buf, fuse_fill_dir_t filler,
		int plus, int (*fill)(struct fs *fs, const char *path, struct listing *l));
void fs_dir_release(struct fs *fs, struct dir_handle *d);
/* Folders open in this mount now. */
size_t fs_dir_count(struct fs *fs);
void fs_dir_free_all(struct fs *fs);

/* ---- fs_file.c: open files -------------------------------------------- */

enum handle_kind {
	H_ARTIFACT, /* art is the open artifact */
	H_READ,	    /* content holds what reads return */
	H_PARAM,    /* wbuf collects the value */
	H_TAG,
	H_STATUS,
	H_METRIC,      /* wbuf holds an unfinished line */
	H_DESCRIPTION, /* a registered model's (version 0) or version's */
	H_STAGE,       /* a model version's stage */
};

struct handle {
	enum handle_kind kind;
	enum store_section sec;	 /* H_PARAM, H_TAG, H_METRIC */
	struct art_file *art;	 /* H_ARTIFACT */
	struct ingest_file *ing; /* H_ARTIFACT written and recognised; has its own lock */
	int hidden; /* H_ARTIFACT removed while open (path is its hidden name); fs->open_lock */
	/* A key file removed while open (fs_file_removed): its writes are
	 * forgotten, as a removed disk file's are.  Atomic: set under
	 * fs->open_lock, read under h->lock. */
	int removed;
	/* Removed that way, the name libfuse hides it under (its fstat()
	 * comes by that name); protected by fs->open_lock. */
	char *hidden_as;
	int append;
	/* From here to dirty: protected by lock. */
	struct blob content;
	struct buf wbuf;
	int wrote;		   /* wbuf holds something to log at flush */
	int failed;		   /* a write was refused (-errno): nothing is logged at flush */
	struct store_batch *batch; /* this descriptor's writes (mlflowfs(1), WHEN DATA IS SAFE) */
	int dirty;		   /* the batch has writes not yet committed */
	size_t value_max;	   /* characters a value may have */
	char run_id[STORE_RUN_ID_MAX];
	char experiment_id[STORE_ID_MAX];
	char *model;	 /* H_TAG of a model or version, H_DESCRIPTION, H_STAGE */
	int64_t version; /* of model; 0: the model itself */
	char *key;
	/* For messages and the pending table; an artifact's follows renames
	 * made through the mount, protected by fs->open_lock. */
	char *path;
	/* path is registered as a pending created file; atomic (cleared by
	 * fs_file_removed under fs->open_lock) */
	int pending;
	pthread_mutex_t lock;	    /* FUSE may use one handle from several threads */
	struct handle *prev, *next; /* in fs->handles, protected by fs->open_lock */
};

/* Whether open(2) flags ask to write. */
static inline int fs_open_writes(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY;
}

/* A new handle of path, in fs->handles; NULL without memory. */
struct handle *fs_handle_new(struct fs *fs, enum handle_kind kind, const char *path);
void fs_handle_free(struct fs *fs, struct handle *h);
/* Ends an open of a virtual file: with err 0 hands h to the kernel (read
 * past the page cache, so a read shows the store as it is), else frees it.
 * Returns err. */
int fs_handle_open_done(struct fs *fs, struct handle *h, struct fuse_file_info *fi, int err);
void fs_file_free_all(struct fs *fs);
/* Files open in this mount now (the kernel releases them a little after
 * close()). */
size_t fs_file_count(struct fs *fs);
/* Whether some descriptor of this mount has path open. */
int fs_file_is_open(struct fs *fs, const char *path);
/* The key file at path was removed: its open descriptors log nothing more. */
void fs_file_removed(struct fs *fs, const char *path);
/* libfuse hides the removed key file from under the name as. */
void fs_file_hidden(struct fs *fs, const char *from, const char *as);
/* The attributes of a removed key file by its hidden name; -ENOENT if none.
 * Lock order: fs->open_lock, then a handle's lock. */
int fs_file_hidden_stat(struct fs *fs, const char *path, struct stat *st);
/* The attributes of h once its key file is removed; -ENOENT while it is not. */
int fs_file_removed_stat(struct fs *fs, struct handle *h, struct stat *st);
int fs_file_read(struct handle *h, char *out, size_t size, off_t off);
int fs_file_write(struct fs *fs, struct handle *h, const char *data, size_t size, off_t off);
/* Makes what h wrote safe (mlflowfs(1), WHEN DATA IS SAFE): final at close, durable at fsync. */
int fs_file_sync(struct fs *fs, struct handle *h, int durable, int final);
int fs_file_truncate(struct handle *h, off_t size);

/* ---- fs_watch.c: other writers' changes in stat() ---------------------- */

/* Records that the kernel got the attributes of dir/name (name may be NULL). */
/*
 * fs_views.c: an experiment's runs table (tsv: 0 for .runs.csv, 1 for
 * .runs.tsv), its size, or a copy into out (an empty blob), from a
 * rendering kept while the store has not changed; fs_views_free() at
 * unmount.
 */
int fs_views_table_size(struct fs *fs, const char *experiment_id, int tsv, off_t *size);
int fs_views_table_copy(struct fs *fs, const char *experiment_id, int tsv, struct blob *out);
void fs_views_free(struct fs *fs);

void fs_seen(struct fs *fs, const char *dir, const char *name);
void fs_watch_start(struct fs *fs, struct fuse *f);

#endif
