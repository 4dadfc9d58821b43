/*
 * fs.c - the FUSE operations of the high-level API.  A path comes in,
 * path_parse() makes it a node, target_resolve() finds the experiment, run or
 * model it names, one store call answers, and the handler fills a stat or a
 * buffer.  Every handler returns 0 or -errno; every refusal is logged with
 * the path and the reason (log_refusal).
 *
 * Virtual files are read through direct I/O (a read always shows the store
 * now, whatever size the kernel cached); artifacts of the local store pass
 * through to their folder on disk, relative to an open folder descriptor.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <inttypes.h>
#include <limits.h>
#include <locale.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>
#include <wctype.h>

#include "config.h"
#include "buf.h"
#include "content.h"
#include "fs.h"
#include "log.h"
#include "metric.h"
#include "options.h"
#include "path.h"
#include "store.h"

/* A line longer than this, still unfinished, is refused (bounds memory). */
#define METRIC_LINE_MAX (64 * 1024)

/* Created names that have no value yet, and folders made for keys. */
struct pending {
	struct pending *next;
	char *path;
	int open_files; /* > 0: a created file, visible while open */
	int is_dir;	/* a key folder made by mkdir */
};

struct fs {
	struct store *store;
	const struct mfs_config *cfg;
	uid_t uid;
	gid_t gid;
	int64_t mounted_ms;
	locale_t utf8; /* for iswalnum_l(): MLflow's \w is Unicode */
	pthread_mutex_t pending_lock;
	struct pending *pending; /* protected by pending_lock */
};

/* What a path names, found in the store. */
struct target {
	struct node n;
	struct store_experiment exp;
	struct store_run run;
	struct store_model model;
	struct store_version version;
	int has_exp, has_run, has_model, has_version;
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
	int have_token;	  /* token is set: this descriptor has written */
	uint64_t token;	  /* store_write_token() before the first write */
	size_t value_max; /* characters a value may have */
	char run_id[STORE_RUN_ID_MAX];
	char experiment_id[STORE_ID_MAX];
	char *key;
	char *path;	      /* for messages and the pending table */
	int pending;	      /* path is registered as a pending created file */
	pthread_mutex_t lock; /* FUSE may use one handle from several threads */
};

static struct fs *fs_get(void)
{
	return fuse_get_context()->private_data;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- names and values ------------------------------------------------ */

/*
 * Checks that s (len bytes) is UTF-8 without NUL and counts its characters,
 * as MLflow measures lengths.  Returns the count, or -1.
 */
static long utf8_chars(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	long n = 0;

	while (p < end) {
		unsigned c = *p;
		int extra = c < 0x80		 ? 0
			    : (c & 0xe0) == 0xc0 ? 1
			    : (c & 0xf0) == 0xe0 ? 2
			    : (c & 0xf8) == 0xf0 ? 3
						 : -1;

		if (c == 0 || extra < 0 || (c & 0xfe) == 0xc0 || end - p <= extra)
			return -1;
		for (int i = 1; i <= extra; i++)
			if ((p[i] & 0xc0) != 0x80)
				return -1;
		p += extra + 1;
		n++;
	}
	return n;
}

/* The next code point of a valid UTF-8 string. */
static unsigned utf8_next(const unsigned char **p)
{
	unsigned c = *(*p)++;
	int extra = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : 3;

	if (extra)
		c &= 0x3f >> extra;
	while (extra--)
		c = (c << 6) | (*(*p)++ & 0x3f);
	return c;
}

/* MLflow's key rule (validation.py): [/\w.\- :]*, at most 250 characters. */
static int key_check(struct fs *fs, const char *path, const char *key)
{
	const unsigned char *p = (const unsigned char *)key;
	long chars = utf8_chars(key, strlen(key));

	if (chars < 0)
		return log_refusal(path, EINVAL, "key '%s' is not valid UTF-8", key);
	if (chars > STORE_KEY_MAX)
		return log_refusal(path, ENAMETOOLONG,
				   "key is %ld characters long; MLflow allows %d", chars,
				   STORE_KEY_MAX);
	while (*p) {
		unsigned c = utf8_next(&p);

		if (c < 0x80 ? (isalnum((int)c) || strchr("_/.- :", (int)c))
			     : iswalnum_l((wint_t)c, fs->utf8))
			continue;
		return log_refusal(path, EINVAL,
				   "key '%s' has a character MLflow refuses: keys may only contain "
				   "letters, digits, '_', '-', '.', ' ', ':' and '/'",
				   key);
	}
	return 0;
}

/* The last component of a path, as typed. */
static const char *last_component(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash ? slash + 1 : path;
}

/*
 * A name being created must be written as the listing will show it, so
 * "ls" shows what "mkdir" made: "%2Ex" for ".x", "a%25" for "a%".  This
 * also keeps editors' dot-files (".x.swp") out of params.
 */
static int name_check(const char *path, const char *what, long max_chars)
{
	const char *raw = last_component(path);
	struct buf dec = BUF_INIT, enc = BUF_INIT;
	long chars;
	int err = 0;

	if (path_decode(&dec, raw, strlen(raw)) || path_encode(&enc, buf_str(&dec))) {
		err = -ENOMEM;
		goto out;
	}
	if (strcmp(buf_str(&enc), raw)) {
		err = log_refusal(path, EINVAL, "write the %s name '%s' as '%s'", what,
				  buf_str(&dec), buf_str(&enc));
		goto out;
	}
	chars = utf8_chars(dec.data, dec.len);
	if (chars <= 0)
		err = log_refusal(path, EINVAL, "the %s name is empty or not valid UTF-8", what);
	else if (chars > max_chars)
		err = log_refusal(path, ENAMETOOLONG, "%s names have at most %ld characters", what,
				  max_chars);
out:
	buf_release(&dec);
	buf_release(&enc);
	return err;
}

static const char *const statuses[] = { "RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED" };

/* The canonical status for text (any case), or NULL. */
static const char *status_parse(const char *text, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
		if (strlen(statuses[i]) == len && !strncasecmp(statuses[i], text, len))
			return statuses[i];
	return NULL;
}

/* The user a new run is recorded for: the caller's login name. */
static void caller_name(char *out, size_t size)
{
	struct passwd pw, *res = NULL;
	char tmp[1024];
	uid_t uid = fuse_get_context()->uid;

	if (!getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) && res)
		snprintf(out, size, "%s", res->pw_name);
	else
		snprintf(out, size, "%u", (unsigned)uid);
}

/* ---- pending names --------------------------------------------------- */

static struct pending **pending_find(struct fs *fs, const char *path)
{
	struct pending **pp;

	for (pp = &fs->pending; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->path, path))
			return pp;
	return pp;
}

/* Registers a created file (open) or a key folder (is_dir). */
static int pending_add(struct fs *fs, const char *path, int is_dir)
{
	struct pending **pp, *p;
	int err = 0;

	pthread_mutex_lock(&fs->pending_lock);
	pp = pending_find(fs, path);
	p = *pp;
	if (!p) {
		p = calloc(1, sizeof(*p));
		if (p)
			p->path = strdup(path);
		if (!p || !p->path) {
			free(p);
			err = -ENOMEM;
			goto out;
		}
		p->next = fs->pending;
		fs->pending = p;
	}
	if (is_dir)
		p->is_dir = 1;
	else
		p->open_files++;
out:
	pthread_mutex_unlock(&fs->pending_lock);
	return err;
}

static void pending_drop(struct fs *fs, const char *path, int is_dir)
{
	struct pending **pp, *p;

	pthread_mutex_lock(&fs->pending_lock);
	pp = pending_find(fs, path);
	p = *pp;
	if (p) {
		if (is_dir)
			p->is_dir = 0;
		else if (p->open_files > 0)
			p->open_files--;
		if (!p->is_dir && !p->open_files) {
			*pp = p->next;
			free(p->path);
			free(p);
		}
	}
	pthread_mutex_unlock(&fs->pending_lock);
}

/* 0: not pending, 1: a created file, 2: a key folder. */
static int pending_state(struct fs *fs, const char *path)
{
	struct pending *p;
	int state = 0;

	pthread_mutex_lock(&fs->pending_lock);
	p = *pending_find(fs, path);
	if (p)
		state = p->open_files ? 1 : 2;
	pthread_mutex_unlock(&fs->pending_lock);
	return state;
}

/* ---- resolving paths ------------------------------------------------- */

static void target_release(struct target *t)
{
	path_release(&t->n);
	if (t->has_exp)
		store_experiment_release(&t->exp);
	if (t->has_run)
		store_run_release(&t->run);
	if (t->has_model)
		store_model_release(&t->model);
	if (t->has_version)
		store_version_release(&t->version);
	memset(t, 0, sizeof(*t));
}

/* Parses path and finds the objects it names; -ENOENT if one is missing. */
static int target_resolve(struct fs *fs, const char *path, struct target *t)
{
	int err;

	memset(t, 0, sizeof(*t));
	err = path_parse(path, &t->n);
	if (err)
		return err;
	if (t->n.experiment) {
		err = store_get_experiment(fs->store, t->n.experiment, &t->exp);
		if (err)
			goto fail;
		t->has_exp = 1;
	}
	if (t->n.run) {
		err = store_find_run(fs->store, t->exp.id, t->n.run, &t->run);
		if (err)
			goto fail;
		t->has_run = 1;
	}
	if (t->n.kind == NODE_RUNS_LINK) {
		err = store_get_run(fs->store, t->n.run_id, &t->run);
		if (err)
			goto fail;
		t->has_run = 1;
		if (!t->run.folder) {
			err = -ENOENT;
			goto fail;
		}
		err = store_get_experiment_by_id(fs->store, t->run.experiment_id, &t->exp);
		if (err)
			goto fail;
		t->has_exp = 1;
		if (t->exp.deleted) {
			err = -ENOENT;
			goto fail;
		}
	}
	if (t->n.model) {
		err = store_get_model(fs->store, t->n.model, &t->model);
		if (err)
			goto fail;
		t->has_model = 1;
	}
	if (t->n.kind == NODE_VERSION || t->n.kind == NODE_VERSION_FIELD ||
	    t->n.kind == NODE_VERSION_TAGS || t->n.kind == NODE_VERSION_ARTIFACTS) {
		err = store_get_version(fs->store, t->n.model, t->n.version, &t->version);
		if (err)
			goto fail;
		t->has_version = 1;
	}
	return 0;
fail:
	target_release(t);
	return err;
}

/* The section and owner of a key folder node. */
static enum store_section node_section(const struct target *t, struct store_ref *ref)
{
	memset(ref, 0, sizeof(*ref));
	ref->run_id = t->run.run_id;
	ref->experiment_id = t->exp.id;
	ref->model = t->n.model;
	ref->version = t->n.version;
	switch (t->n.kind) {
	case NODE_PARAMS:
		return SEC_PARAMS;
	case NODE_METRICS:
	case NODE_HISTORY:
		return SEC_METRICS;
	case NODE_TAGS:
		return SEC_RUN_TAGS;
	case NODE_EXP_TAGS:
		return SEC_EXP_TAGS;
	case NODE_MODEL_TAGS:
		return SEC_MODEL_TAGS;
	default:
		return SEC_VERSION_TAGS;
	}
}

static int stop_at_first(void *ctx, const struct store_kv *kv)
{
	(void)ctx;
	(void)kv;
	return 1;
}

/*
 * What a key folder node with a key names: 1 and *kv filled for a key
 * (a leaf), 2 for a prefix of keys (a folder), or -ENOENT.
 */
static int key_lookup(struct fs *fs, const struct target *t, struct store_kv *kv)
{
	struct store_ref ref;
	enum store_section sec = node_section(t, &ref);
	char *prefix;
	int err;

	err = store_get_kv(fs->store, sec, &ref, t->n.key, kv);
	if (err != -ENOENT)
		return err ? err : 1;
	if (asprintf(&prefix, "%s/", t->n.key) < 0)
		return -ENOMEM;
	err = store_list_kv(fs->store, sec, &ref, prefix, stop_at_first, NULL);
	free(prefix);
	if (err < 0)
		return err;
	return err > 0 ? 2 : -ENOENT;
}

/* ---- attributes ------------------------------------------------------ */

static void fill_times(struct stat *st, int64_t ms)
{
	if (ms < 0)
		ms = 0;
	st->st_mtim.tv_sec = ms / 1000;
	st->st_mtim.tv_nsec = (ms % 1000) * 1000000;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}

static void fill_stat(struct fs *fs, struct stat *st, mode_t mode, off_t size, int64_t ms)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = mode;
	/* 1 for folders, as btrfs does: find must not count subfolders by links. */
	st->st_nlink = 1;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_size = size;
	st->st_blksize = 4096;
	st->st_blocks = (size + 511) / 512;
	fill_times(st, ms);
}

#define DIR_MODE  (S_IFDIR | 0755)
#define RO_MODE	  (S_IFREG | 0444)
#define RW_MODE	  (S_IFREG | 0644)
#define LINK_MODE (S_IFLNK | 0777)

/* ---- artifacts (local folder pass-through) --------------------------- */

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
			if (mkdir(dir, 0777) < 0 && errno != EEXIST)
				break;
			*p = '/';
		}
		if (mkdir(dir, 0777) < 0 && errno != EEXIST)
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
static void art_chown_new(int dirfd, const char *leaf)
{
	struct fuse_context *ctx = fuse_get_context();

	if (geteuid() == 0 && ctx->uid != 0)
		if (fchownat(dirfd, leaf, ctx->uid, ctx->gid, AT_SYMLINK_NOFOLLOW) < 0)
			log_debug("cannot chown '%s': %s", leaf, strerror(errno));
}

/* A name below a run's artifacts/, ready for *at() calls. */
struct art_ref {
	int root;	  /* the run's artifact folder (O_PATH) */
	int dir;	  /* the folder holding leaf: root, or one walked to */
	const char *leaf; /* the last component; "" for the artifacts folder itself */
	char proc[32];	  /* "/proc/self/fd/N" of root, for calls that refuse O_PATH */
};

static void art_ref_close(struct art_ref *a)
{
	art_done(a->root, a->dir);
	a->root = a->dir = -1;
}

/* Opens what *at() calls on t's artifact path need; create makes the run's
 * artifact folder first if it is missing. */
static int art_ref_open(struct fs *fs, struct target *t, int create, struct art_ref *a)
{
	int err;

	a->root = a->dir = -1;
	a->leaf = "";
	err = art_root(fs, t, create, &a->root);
	if (!err)
		err = art_at(a->root, t->n.subpath, &a->dir, &a->leaf);
	if (err) {
		art_ref_close(a);
		return err;
	}
	snprintf(a->proc, sizeof(a->proc), "/proc/self/fd/%d", a->root);
	return 0;
}

/* The folder and name for a call that needs a path: the artifacts folder
 * itself is reached through its /proc link. */
static void art_ref_path(const struct art_ref *a, int *dir, const char **name)
{
	*dir = a->leaf[0] ? a->dir : AT_FDCWD;
	*name = a->leaf[0] ? a->leaf : a->proc;
}

/*
 * Resolves a path that must name something below a run's artifacts/ (not
 * the folder itself); otherwise refuses with err_other, logging why.
 */
static int art_resolve(struct fs *fs, const char *path, struct target *t, int err_other,
		       const char *why)
{
	int err = target_resolve(fs, path, t);

	if (err)
		return err;
	if (t->n.kind != NODE_ARTIFACTS || !t->n.subpath[0]) {
		target_release(t);
		return log_refusal(path, err_other, "%s", why);
	}
	return 0;
}

static int art_getattr(struct fs *fs, struct target *t, struct stat *st)
{
	struct art_ref a;
	int err;

	err = art_ref_open(fs, t, 0, &a);
	if (err == -ENOENT && !t->n.subpath[0]) {
		/* No artifact yet: an empty folder until the first one. */
		fill_stat(fs, st, DIR_MODE, 0, t->run.start_time);
		return 0;
	}
	if (err)
		return err;
	if (fstatat(a.dir, a.leaf, st, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) < 0)
		err = -errno;
	art_ref_close(&a);
	return err;
}

/* ---- rendering virtual files ----------------------------------------- */

static int render_kv_value(struct fs *fs, const struct target *t, struct store_kv *kv,
			   struct buf *out)
{
	(void)fs;
	if (t->n.kind == NODE_METRICS)
		return content_metric(out, kv->num);
	if (buf_adds(out, kv->value))
		return -ENOMEM;
	return buf_addch(out, '\n');
}

static int render_version_field(const struct target *t, struct buf *out)
{
	const struct store_version *v = &t->version;
	const char *text = "";

	switch (t->n.field) {
	case VF_SOURCE:
		text = v->source;
		break;
	case VF_RUN_ID:
		text = v->run_id;
		break;
	case VF_STATUS:
		text = v->status;
		break;
	case VF_STAGE:
		text = v->stage;
		break;
	case VF_DESCRIPTION:
		text = v->description;
		break;
	}
	return buf_addf(out, "%s\n", text);
}

static int render_control_status(struct fs *fs, struct buf *out)
{
	int err = buf_addf(out, "version: %s\nmountpoint: %s\n", PACKAGE_VERSION,
			   fs->cfg->mountpoint);

	return err ? err : store_describe(fs->store, out);
}

/*
 * The content of a readable virtual file into out; for history, into blob
 * (out unused).  -EISDIR for folders, -ENOENT for what is not a file.
 */
static int render(struct fs *fs, const struct target *t, struct buf *out, struct blob *blob)
{
	struct store_kv kv;
	int err;

	switch (t->n.kind) {
	case NODE_EXP_JSON:
		return content_experiment_json(fs->store, &t->exp, out);
	case NODE_RUN_ID:
		return buf_addf(out, "%s\n", t->run.run_id);
	case NODE_STATUS:
		return buf_addf(out, "%s\n", t->run.status);
	case NODE_RUN_JSON:
		return content_run_json(fs->store, &t->run, out);
	case NODE_CONTROL_STATUS:
		return render_control_status(fs, out);
	case NODE_CONTROL_ERRORS:
		return log_render_errors(out);
	case NODE_MODEL_DESC:
		return buf_addf(out, "%s\n", t->model.description);
	case NODE_VERSION_FIELD:
		return render_version_field(t, out);
	case NODE_HISTORY:
		if (!t->n.key)
			return -EISDIR;
		return content_history(fs->store, t->run.run_id, t->n.key, blob, NULL);
	case NODE_PARAMS:
	case NODE_METRICS:
	case NODE_TAGS:
	case NODE_EXP_TAGS:
	case NODE_MODEL_TAGS:
	case NODE_VERSION_TAGS:
		if (!t->n.key)
			return -EISDIR;
		err = key_lookup(fs, t, &kv);
		if (err == 2)
			return -EISDIR;
		if (err < 0)
			return err;
		err = render_kv_value(fs, t, &kv, out);
		store_kv_release(&kv);
		return err;
	default:
		return -EISDIR;
	}
}

/* ---- link targets ---------------------------------------------------- */

/* "../experiments/<E>/<R>" for runs/<id>, names encoded. */
static int run_link_target(const struct store_experiment *e, const struct store_run *r,
			   const char *up, struct buf *out)
{
	int err = buf_adds(out, up);

	if (!err)
		err = buf_adds(out, "experiments/");
	if (!err)
		err = path_encode(out, e->name);
	if (!err)
		err = buf_addch(out, '/');
	return err ? err : path_encode(out, r->folder);
}

/*
 * Where versions/<n>/artifacts points: the run's artifact folder in this
 * mount, with the path below it that the version's source names.
 */
static int version_link_target(struct fs *fs, const struct target *t, struct buf *out)
{
	const struct store_version *v = &t->version;
	struct store_experiment e = { 0 };
	struct store_run r = { 0 };
	const char *sub = NULL;
	size_t n;
	int err;

	if (!v->run_id[0])
		return -ENOENT;
	err = store_get_run(fs->store, v->run_id, &r);
	if (err)
		return err;
	if (!r.folder) {
		err = -ENOENT;
		goto out;
	}
	n = strlen(r.artifact_uri);
	if (!strncmp(v->source, "runs:/", 6) && !strncmp(v->source + 6, r.run_id, 32) &&
	    (v->source[38] == '/' || !v->source[38]))
		sub = v->source + 38;
	else if (!strncmp(v->source, r.artifact_uri, n) && (v->source[n] == '/' || !v->source[n]))
		sub = v->source + n;
	if (!sub) {
		err = -ENOENT;
		goto out;
	}
	err = store_get_experiment_by_id(fs->store, r.experiment_id, &e);
	if (!err)
		err = run_link_target(&e, &r, "../../../../", out);
	if (!err)
		err = buf_adds(out, "/artifacts");
	if (!err)
		err = buf_adds(out, sub);
	store_experiment_release(&e);
out:
	store_run_release(&r);
	return err;
}

static int link_target(struct fs *fs, const struct target *t, struct buf *out)
{
	switch (t->n.kind) {
	case NODE_RUNS_LINK:
		return run_link_target(&t->exp, &t->run, "../", out);
	case NODE_MODEL_ALIAS:
		return -ENOENT; /* resolved by the caller, which knows the version */
	case NODE_VERSION_ARTIFACTS:
		return version_link_target(fs, t, out);
	default:
		return -EINVAL;
	}
}

struct alias_find {
	const char *alias;
	int64_t version;
};

static int alias_find_cb(void *ctx, const char *alias, int64_t version)
{
	struct alias_find *a = ctx;

	if (strcmp(alias, a->alias))
		return 0;
	a->version = version;
	return 1;
}

static int alias_target(struct fs *fs, const struct target *t, struct buf *out)
{
	struct alias_find a = { t->n.alias, 0 };
	int err = store_list_aliases(fs->store, t->n.model, alias_find_cb, &a);

	if (err < 0)
		return err;
	if (!err)
		return -ENOENT;
	return buf_addf(out, "../versions/%" PRId64, a.version);
}

/* ---- getattr --------------------------------------------------------- */

static int key_getattr(struct fs *fs, const char *path, struct target *t, struct stat *st)
{
	struct store_kv kv;
	struct buf text = BUF_INIT;
	off_t size;
	int err, ro;

	ro = t->n.kind == NODE_HISTORY || t->n.kind == NODE_MODEL_TAGS ||
	     t->n.kind == NODE_VERSION_TAGS;
	err = key_lookup(fs, t, &kv);
	if (err == 2) {
		fill_stat(fs, st, DIR_MODE, 0, t->run.start_time);
		return 0;
	}
	if (err == -ENOENT) {
		int state = pending_state(fs, path);

		if (state == 1)
			fill_stat(fs, st, RW_MODE, 0, now_ms());
		else if (state == 2)
			fill_stat(fs, st, DIR_MODE, 0, now_ms());
		else
			return -ENOENT;
		return 0;
	}
	if (err < 0)
		return err;
	if (t->n.kind == NODE_HISTORY) {
		err = content_history(fs->store, t->run.run_id, t->n.key, NULL, &size);
	} else {
		err = render_kv_value(fs, t, &kv, &text);
		size = (off_t)text.len;
	}
	if (!err)
		fill_stat(fs, st, ro ? RO_MODE : RW_MODE, size,
			  t->n.kind == NODE_METRICS || t->n.kind == NODE_HISTORY ? kv.timestamp
			  : t->has_run						 ? t->run.start_time
			  : t->has_exp ? t->exp.last_update_time
				       : t->model.last_updated_time);
	buf_release(&text);
	store_kv_release(&kv);
	return err;
}

static int fs_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct fs *fs = fs_get();
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	struct target t;
	struct buf text = BUF_INIT;
	int err;

	if (h && h->kind == H_ARTIFACT)
		return fstat(h->fd, st) < 0 ? -errno : 0;
	if (!path)
		path = h ? h->path : "/";
	err = target_resolve(fs, path, &t);
	if (err == -ENOENT && h && h->pending) {
		/* Created, still without a value. */
		fill_stat(fs, st, RW_MODE, 0, now_ms());
		return 0;
	}
	if (err)
		return err;
	switch (t.n.kind) {
	case NODE_ROOT:
	case NODE_EXPERIMENTS:
	case NODE_RUNS:
	case NODE_CONTROL:
	case NODE_MODELS:
		fill_stat(fs, st, DIR_MODE, 0, fs->mounted_ms);
		break;
	case NODE_EXPERIMENT:
		fill_stat(fs, st, DIR_MODE, 0, t.exp.last_update_time);
		break;
	case NODE_RUN:
		fill_stat(fs, st, DIR_MODE, 0, t.run.last_change);
		break;
	case NODE_MODEL:
	case NODE_MODEL_ALIASES:
	case NODE_MODEL_VERSIONS:
		fill_stat(fs, st, DIR_MODE, 0, t.model.last_updated_time);
		break;
	case NODE_VERSION:
		fill_stat(fs, st, DIR_MODE, 0, t.version.last_updated_time);
		break;
	case NODE_ARTIFACTS:
		err = art_getattr(fs, &t, st);
		break;
	case NODE_EXP_TAGS:
	case NODE_PARAMS:
	case NODE_METRICS:
	case NODE_HISTORY:
	case NODE_TAGS:
	case NODE_MODEL_TAGS:
	case NODE_VERSION_TAGS:
		if (!t.n.key)
			fill_stat(fs, st, DIR_MODE, 0,
				  t.has_run   ? t.run.last_change
				  : t.has_exp ? t.exp.last_update_time
					      : t.model.last_updated_time);
		else
			err = key_getattr(fs, path, &t, st);
		break;
	case NODE_RUNS_LINK:
	case NODE_MODEL_ALIAS:
	case NODE_VERSION_ARTIFACTS:
		err = t.n.kind == NODE_MODEL_ALIAS ? alias_target(fs, &t, &text)
						   : link_target(fs, &t, &text);
		if (!err)
			fill_stat(fs, st, LINK_MODE, (off_t)text.len,
				  t.has_run ? t.run.last_change : t.model.last_updated_time);
		break;
	default:
		err = render(fs, &t, &text, NULL);
		if (!err)
			fill_stat(fs, st, t.n.kind == NODE_STATUS ? RW_MODE : RO_MODE,
				  (off_t)text.len,
				  t.has_run	  ? t.run.last_change
				  : t.has_exp	  ? t.exp.last_update_time
				  : t.has_version ? t.version.last_updated_time
				  : t.has_model	  ? t.model.last_updated_time
						  : now_ms());
	}
	buf_release(&text);
	target_release(&t);
	return err;
}

static int fs_readlink(const char *path, char *out, size_t size)
{
	struct fs *fs = fs_get();
	struct buf text = BUF_INIT;
	struct art_ref a;
	struct target t;
	ssize_t n;
	int err;

	if (size == 0)
		return -EINVAL;
	err = target_resolve(fs, path, &t);
	if (err)
		return err;
	if (t.n.kind == NODE_ARTIFACTS) {
		err = art_ref_open(fs, &t, 0, &a);
		if (!err) {
			n = readlinkat(a.dir, a.leaf, out, size - 1);
			if (n < 0)
				err = -errno;
			else
				out[n] = '\0';
			art_ref_close(&a);
		}
	} else {
		if (t.n.kind == NODE_MODEL_ALIAS)
			err = alias_target(fs, &t, &text);
		else
			err = link_target(fs, &t, &text);
		if (!err)
			snprintf(out, size, "%s", buf_str(&text));
	}
	buf_release(&text);
	target_release(&t);
	return err;
}

/* ---- directories ----------------------------------------------------- */

struct dir_entry {
	char *name;
	char *history_key; /* history/ files: sized after the listing */
	struct stat st;
};

/* A listing taken at the first readdir, then served by offset. */
struct dir_handle {
	char *path; /* readdir gets no path (nullpath_ok) */
	struct dir_entry *v;
	size_t n, cap;
	int ready;
	pthread_mutex_t lock;
};

static int dir_add(struct dir_handle *d, const char *name, const struct stat *st)
{
	struct dir_entry *e;

	/* Longer names cannot be passed to programs; skip them. */
	if (strlen(name) > NAME_MAX) {
		log_debug("skipping a name of %zu bytes (more than %d)", strlen(name), NAME_MAX);
		return 0;
	}
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 32;
		struct dir_entry *v = realloc(d->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		d->v = v;
		d->cap = cap;
	}
	e = &d->v[d->n];
	e->history_key = NULL;
	e->name = strdup(name);
	if (!e->name)
		return -ENOMEM;
	e->st = *st;
	d->n++;
	return 0;
}

/* Adds an entry whose name must be encoded. */
static int dir_add_encoded(struct dir_handle *d, const char *name, const struct stat *st)
{
	struct buf enc = BUF_INIT;
	int err = path_encode(&enc, name);

	if (!err)
		err = dir_add(d, buf_str(&enc), st);
	buf_release(&enc);
	return err;
}

struct list_ctx {
	struct fs *fs;
	struct dir_handle *d;
	const struct target *t;
	const char *prefix; /* key folders: "" or "a/b/" */
	char *last_dir;	    /* key folders: the last folder added */
};

static int list_experiment_cb(void *ctx, const struct store_experiment *e)
{
	struct list_ctx *c = ctx;
	struct stat st;

	fill_stat(c->fs, &st, DIR_MODE, 0, e->last_update_time);
	return dir_add_encoded(c->d, e->name, &st);
}

static int list_run_cb(void *ctx, const struct store_run *r)
{
	struct list_ctx *c = ctx;
	struct stat st;

	fill_stat(c->fs, &st, DIR_MODE, 0, r->last_change);
	return dir_add_encoded(c->d, r->folder, &st);
}

static int list_all_runs_cb(void *ctx, const struct store_experiment *e, const struct store_run *r)
{
	struct list_ctx *c = ctx;
	struct buf target = BUF_INIT;
	struct stat st;
	int err = run_link_target(e, r, "../", &target);

	if (!err) {
		fill_stat(c->fs, &st, LINK_MODE, (off_t)target.len, r->last_change);
		err = dir_add(c->d, r->run_id, &st);
	}
	buf_release(&target);
	return err;
}

/* One key of a key folder: a file for a direct child, else its folder. */
static int list_key_cb(void *ctx, const struct store_kv *kv)
{
	struct list_ctx *c = ctx;
	const char *rest = kv->key + strlen(c->prefix);
	const char *slash = strchr(rest, '/');
	struct buf text = BUF_INIT;
	struct stat st;
	off_t size = 0;
	int err = 0, kind = c->t->n.kind;

	if (slash) {
		char *dir = strndup(rest, (size_t)(slash - rest));

		if (!dir)
			return -ENOMEM;
		/* Keys come sorted, so a folder's keys are together. */
		if (c->last_dir && !strcmp(c->last_dir, dir)) {
			free(dir);
			return 0;
		}
		free(c->last_dir);
		c->last_dir = dir;
		fill_stat(c->fs, &st, DIR_MODE, 0, c->t->has_run ? c->t->run.start_time : 0);
		return dir_add_encoded(c->d, dir, &st);
	}
	/* A history's size needs the store again: after the listing. */
	if (kind == NODE_HISTORY)
		err = 0;
	else if (kind == NODE_METRICS)
		err = content_metric(&text, kv->num);
	else
		err = buf_addf(&text, "%s\n", kv->value);
	if (kind != NODE_HISTORY)
		size = (off_t)text.len;
	buf_release(&text);
	if (err)
		return err;
	fill_stat(c->fs, &st,
		  kind == NODE_HISTORY || kind == NODE_MODEL_TAGS || kind == NODE_VERSION_TAGS
			  ? RO_MODE
			  : RW_MODE,
		  size,
		  kind == NODE_METRICS || kind == NODE_HISTORY ? kv->timestamp
		  : c->t->has_run			       ? c->t->run.start_time
		  : c->t->has_exp			       ? c->t->exp.last_update_time
							       : c->t->model.last_updated_time);
	/* A key that is also a folder's name shows as the key (SPEC §2). */
	if (c->last_dir && !strcmp(c->last_dir, rest) && c->d->n) {
		c->d->v[c->d->n - 1].st = st;
	} else {
		err = dir_add_encoded(c->d, rest, &st);
		if (err)
			return err;
	}
	if (kind == NODE_HISTORY) {
		c->d->v[c->d->n - 1].history_key = strdup(kv->key);
		if (!c->d->v[c->d->n - 1].history_key)
			return -ENOMEM;
	}
	return 0;
}

static int list_model_cb(void *ctx, const struct store_model *m)
{
	struct list_ctx *c = ctx;
	struct stat st;

	fill_stat(c->fs, &st, DIR_MODE, 0, m->last_updated_time);
	return dir_add_encoded(c->d, m->name, &st);
}

static int list_version_cb(void *ctx, const struct store_version *v)
{
	struct list_ctx *c = ctx;
	char name[32];
	struct stat st;

	fill_stat(c->fs, &st, DIR_MODE, 0, v->last_updated_time);
	snprintf(name, sizeof(name), "%" PRId64, v->version);
	return dir_add(c->d, name, &st);
}

static int list_alias_cb(void *ctx, const char *alias, int64_t version)
{
	struct list_ctx *c = ctx;
	char target[48];
	struct stat st;
	int n = snprintf(target, sizeof(target), "../versions/%" PRId64, version);

	fill_stat(c->fs, &st, LINK_MODE, n, c->t->model.last_updated_time);
	return dir_add_encoded(c->d, alias, &st);
}

/* Adds the fixed entries of a folder, each a file or folder by name. */
static int list_fixed(struct dir_handle *d, const char *path, const char *const *names)
{
	struct stat st;
	struct buf child = BUF_INIT;
	int err = 0;

	for (; *names && !err; names++) {
		buf_reset(&child);
		err = buf_addf(&child, "%s/%s", strcmp(path, "/") ? path : "", *names);
		if (!err)
			err = fs_getattr(buf_str(&child), &st, NULL);
		if (err == -ENOENT) {
			err = 0;
			continue;
		}
		if (!err)
			err = dir_add(d, *names, &st);
	}
	buf_release(&child);
	return err;
}

/* The pending names (created files, key folders) directly in folder path. */
static int list_pending(struct fs *fs, struct dir_handle *d, const char *path)
{
	size_t len = strlen(path);
	struct pending *p;
	int err = 0;

	pthread_mutex_lock(&fs->pending_lock);
	for (p = fs->pending; p && !err; p = p->next) {
		const char *name = p->path + len + 1;
		struct stat st;
		size_t i;

		if (strncmp(p->path, path, len) || p->path[len] != '/' || strchr(name, '/'))
			continue;
		for (i = 0; i < d->n && strcmp(d->v[i].name, name); i++)
			;
		if (i < d->n)
			continue;
		fill_stat(fs, &st, p->open_files ? RW_MODE : DIR_MODE, 0, now_ms());
		err = dir_add(d, name, &st);
	}
	pthread_mutex_unlock(&fs->pending_lock);
	return err;
}

static int list_artifacts(struct fs *fs, struct target *t, struct dir_handle *d)
{
	struct dirent *de;
	struct art_ref a;
	int fd, err;
	DIR *dir;

	err = art_ref_open(fs, t, 0, &a);
	if (err == -ENOENT && !t->n.subpath[0])
		return 0;
	if (err)
		return err;
	fd = openat(a.dir, a.leaf[0] ? a.leaf : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	err = fd < 0 ? -errno : 0;
	art_ref_close(&a);
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
		err = dir_add(d, de->d_name, &st);
	}
	closedir(dir);
	return err;
}

static const char *const root_names[] = { "experiments", "runs", "models", ".mlflowfs", NULL };
static const char *const experiment_names[] = { ".experiment.json", ".tags", NULL };
static const char *const run_names[] = { "run_id",  "status", "run.json",  "params", "metrics",
					 "history", "tags",   "artifacts", NULL };
static const char *const control_names[] = { "status", "errors", NULL };
static const char *const model_names[] = { "description", "tags", "aliases", "versions", NULL };
static const char *const version_names[] = { "source",	    "run_id", "status",	   "stage",
					     "description", "tags",   "artifacts", NULL };

static int build_listing(struct fs *fs, const char *path, struct dir_handle *d)
{
	struct list_ctx c = { fs, d, NULL, "", NULL };
	struct store_ref ref;
	struct target t;
	struct stat st;
	char *prefix = NULL;
	int err;

	err = target_resolve(fs, path, &t);
	if (err)
		return err;
	c.t = &t;
	fill_stat(fs, &st, DIR_MODE, 0, fs->mounted_ms);
	err = dir_add(d, ".", &st);
	if (!err)
		err = dir_add(d, "..", &st);
	if (err)
		goto out;
	switch (t.n.kind) {
	case NODE_ROOT:
		err = list_fixed(d, path, root_names);
		break;
	case NODE_EXPERIMENTS:
		err = store_list_experiments(fs->store, list_experiment_cb, &c);
		break;
	case NODE_EXPERIMENT:
		err = list_fixed(d, path, experiment_names);
		if (!err)
			err = store_list_runs(fs->store, t.exp.id, list_run_cb, &c);
		break;
	case NODE_RUN:
		err = list_fixed(d, path, run_names);
		break;
	case NODE_RUNS:
		err = store_list_all_runs(fs->store, list_all_runs_cb, &c);
		break;
	case NODE_CONTROL:
		err = list_fixed(d, path, control_names);
		break;
	case NODE_MODELS:
		err = store_list_models(fs->store, list_model_cb, &c);
		break;
	case NODE_MODEL:
		err = list_fixed(d, path, model_names);
		break;
	case NODE_MODEL_ALIASES:
		err = store_list_aliases(fs->store, t.n.model, list_alias_cb, &c);
		break;
	case NODE_MODEL_VERSIONS:
		err = store_list_versions(fs->store, t.n.model, list_version_cb, &c);
		break;
	case NODE_VERSION:
		err = list_fixed(d, path, version_names);
		break;
	case NODE_ARTIFACTS:
		err = list_artifacts(fs, &t, d);
		break;
	case NODE_EXP_TAGS:
	case NODE_PARAMS:
	case NODE_METRICS:
	case NODE_HISTORY:
	case NODE_TAGS:
	case NODE_MODEL_TAGS:
	case NODE_VERSION_TAGS:
		if (t.n.key) {
			struct store_kv kv;
			int what = key_lookup(fs, &t, &kv);

			if (what == 1) {
				store_kv_release(&kv);
				err = -ENOTDIR;
				break;
			}
			if (what < 0 && pending_state(fs, path) != 2) {
				err = what;
				break;
			}
			if (asprintf(&prefix, "%s/", t.n.key) < 0) {
				prefix = NULL;
				err = -ENOMEM;
				break;
			}
		}
		c.prefix = prefix ? prefix : "";
		err = store_list_kv(fs->store, node_section(&t, &ref), &ref, prefix, list_key_cb,
				    &c);
		if (!err && t.n.kind != NODE_HISTORY)
			err = list_pending(fs, d, path);
		for (size_t i = 0; !err && i < d->n; i++) {
			struct dir_entry *e = &d->v[i];
			off_t size;

			if (!e->history_key)
				continue;
			err = content_history(fs->store, t.run.run_id, e->history_key, NULL, &size);
			e->st.st_size = size;
			e->st.st_blocks = (size + 511) / 512;
		}
		break;
	default:
		err = -ENOTDIR;
	}
out:
	free(prefix);
	free(c.last_dir);
	target_release(&t);
	return err;
}

static void dir_free(struct dir_handle *d)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		free(d->v[i].name);
		free(d->v[i].history_key);
	}
	free(d->v);
	free(d->path);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

static int fs_opendir(const char *path, struct fuse_file_info *fi)
{
	struct dir_handle *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->path = strdup(path);
	if (!d->path) {
		free(d);
		return -ENOMEM;
	}
	pthread_mutex_init(&d->lock, NULL);
	fi->fh = (uintptr_t)d;
	return 0;
}

static int fs_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
		      struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	(void)path;
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
	enum fuse_fill_dir_flags fill = (flags & FUSE_READDIR_PLUS) ? FUSE_FILL_DIR_PLUS : 0;
	int err = 0;
	size_t i;

	pthread_mutex_lock(&d->lock);
	/* A rewind (offset 0) takes a fresh listing. */
	if (!d->ready || off == 0) {
		for (i = 0; i < d->n; i++) {
			free(d->v[i].name);
			free(d->v[i].history_key);
		}
		d->n = 0;
		err = build_listing(fs_get(), d->path, d);
		d->ready = !err;
	}
	/*
	 * Offsets, not the all-at-once mode: libfuse 3.14 drops readdirplus
	 * attributes given without them, and ls -l would then look up every
	 * entry again (machine-limits §3).
	 */
	for (i = (size_t)off; !err && i < d->n; i++)
		if (filler(buf, d->v[i].name, &d->v[i].st, (off_t)i + 1, fill))
			break;
	pthread_mutex_unlock(&d->lock);
	return err;
}

static int fs_releasedir(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	dir_free((struct dir_handle *)(uintptr_t)fi->fh);
	return 0;
}

/* ---- files ----------------------------------------------------------- */

static void handle_free(struct fs *fs, struct handle *h)
{
	if (h->fd >= 0)
		close(h->fd);
	if (h->pending)
		pending_drop(fs, h->path, 0);
	blob_release(&h->content);
	buf_release(&h->wbuf);
	free(h->key);
	free(h->path);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

static struct handle *handle_new(enum handle_kind kind, const char *path)
{
	struct handle *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->kind = kind;
	h->fd = -1;
	blob_init(&h->content);
	buf_init(&h->wbuf, 0);
	pthread_mutex_init(&h->lock, NULL);
	h->path = strdup(path);
	if (!h->path) {
		pthread_mutex_destroy(&h->lock);
		free(h);
		return NULL;
	}
	return h;
}

static int is_write(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY;
}

static int art_open(struct fs *fs, const char *path, struct target *t, struct fuse_file_info *fi,
		    int create, mode_t mode)
{
	struct art_ref a;
	struct handle *h;
	int fd, err;

	if (!t->n.subpath[0])
		return -EISDIR;
	err = art_ref_open(fs, t, create, &a);
	if (err)
		return err;
	fd = openat(a.dir, a.leaf, fi->flags | O_CLOEXEC | (create ? O_CREAT : 0), mode);
	if (fd < 0)
		err = -errno;
	else if (create)
		art_chown_new(a.dir, a.leaf);
	art_ref_close(&a);
	if (err)
		return err;
	h = handle_new(H_ARTIFACT, path);
	if (!h) {
		close(fd);
		return -ENOMEM;
	}
	h->fd = fd;
	fi->fh = (uintptr_t)h;
	return 0;
}

/* Which handle a writable virtual file gets; -EACCES for read-only ones. */
static int write_kind(const struct target *t, enum handle_kind *kind, enum store_section *sec,
		      size_t *value_max)
{
	*value_max = 0;
	switch (t->n.kind) {
	case NODE_PARAMS:
		*kind = H_PARAM;
		*sec = SEC_PARAMS;
		*value_max = STORE_PARAM_VALUE_MAX;
		return 0;
	case NODE_METRICS:
		*kind = H_METRIC;
		*sec = SEC_METRICS;
		return 0;
	case NODE_TAGS:
		*kind = H_TAG;
		*sec = SEC_RUN_TAGS;
		*value_max = STORE_TAG_VALUE_MAX;
		return 0;
	case NODE_EXP_TAGS:
		*kind = H_TAG;
		*sec = SEC_EXP_TAGS;
		*value_max = STORE_EXP_TAG_VALUE_MAX;
		return 0;
	case NODE_STATUS:
		*kind = H_STATUS;
		return 0;
	default:
		return -EACCES;
	}
}

/*
 * Opens a virtual file.  Readers get the content as it is now; writers a
 * buffer that starts empty (O_TRUNC, or a new name) or with the current
 * value, so that ">>" appends to a tag.
 */
static int virt_open(struct fs *fs, const char *path, struct target *t, struct fuse_file_info *fi,
		     int created)
{
	struct buf text = BUF_INIT;
	enum handle_kind kind = H_READ;
	enum store_section sec = SEC_PARAMS;
	size_t value_max = 0;
	struct handle *h;
	int err = 0;

	if (is_write(fi->flags)) {
		err = write_kind(t, &kind, &sec, &value_max);
		if (err)
			return log_refusal(path, EACCES, "this file is read-only");
		if (t->n.kind != NODE_STATUS && !t->n.key)
			return -EISDIR;
	}
	if (!created) {
		err = t->n.kind == NODE_HISTORY && t->n.key ? 0 : render(fs, t, &text, NULL);
		if (err == -ENOENT && pending_state(fs, path) == 1)
			err = 0; /* created by another descriptor, still empty */
		if (err)
			goto out;
	}
	h = handle_new(kind, path);
	if (!h) {
		err = -ENOMEM;
		goto out;
	}
	h->sec = sec;
	h->value_max = value_max;
	h->append = !!(fi->flags & O_APPEND);
	memcpy(h->run_id, t->run.run_id, sizeof(h->run_id));
	memcpy(h->experiment_id, t->exp.id, sizeof(h->experiment_id));
	if (t->n.key && !(h->key = strdup(t->n.key)))
		err = -ENOMEM;
	if (!err && created) {
		err = pending_add(fs, path, 0);
		h->pending = !err;
	}
	if (!err && (fi->flags & O_ACCMODE) != O_WRONLY) {
		if (t->n.kind == NODE_HISTORY)
			err = content_history(fs->store, t->run.run_id, t->n.key, &h->content,
					      NULL);
		else
			err = blob_add(&h->content, text.data, text.len);
	}
	if (!err && kind != H_READ && kind != H_METRIC && !(fi->flags & O_TRUNC))
		err = buf_add(&h->wbuf, text.data, text.len);
	if (err) {
		handle_free(fs, h);
		goto out;
	}
	fi->fh = (uintptr_t)h;
	fi->direct_io = 1;
out:
	buf_release(&text);
	return err;
}

static int fs_open(const char *path, struct fuse_file_info *fi)
{
	struct fs *fs = fs_get();
	struct target t;
	int err;

	err = target_resolve(fs, path, &t);
	if (err)
		return err;
	if (t.n.kind == NODE_ARTIFACTS)
		err = art_open(fs, path, &t, fi, 0, 0);
	else
		err = virt_open(fs, path, &t, fi, 0);
	target_release(&t);
	return err;
}

static int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct fs *fs = fs_get();
	struct store_kv kv;
	struct target t;
	int err;

	err = target_resolve(fs, path, &t);
	if (err)
		return log_refusal(path, -err, "cannot create here: %s",
				   err == -ENOENT ? "the folder does not exist" : strerror(-err));
	switch (t.n.kind) {
	case NODE_ARTIFACTS:
		err = art_open(fs, path, &t, fi, 1, mode);
		break;
	case NODE_PARAMS:
	case NODE_METRICS:
	case NODE_TAGS:
	case NODE_EXP_TAGS:
		if (!t.n.key) {
			err = -EEXIST;
			break;
		}
		err = key_lookup(fs, &t, &kv);
		if (err == 1) {
			/* Made meanwhile by someone else: open it. */
			store_kv_release(&kv);
			err = virt_open(fs, path, &t, fi, 0);
			break;
		}
		if (err == 2) {
			err = log_refusal(path, EISDIR, "'%s' is a folder of keys", t.n.key);
			break;
		}
		if (err != -ENOENT)
			break;
		err = name_check(path, "key", STORE_KEY_MAX);
		if (!err)
			err = key_check(fs, path, t.n.key);
		if (!err)
			err = virt_open(fs, path, &t, fi, 1);
		break;
	case NODE_HISTORY:
	case NODE_MODELS:
	case NODE_MODEL:
	case NODE_MODEL_TAGS:
	case NODE_VERSION_TAGS:
		err = log_refusal(path, EACCES, "this folder is read-only");
		break;
	default:
		err = log_refusal(path, EPERM,
				  "only run folders, keys and artifacts can be made here");
	}
	target_release(&t);
	return err;
}

static int fs_read(const char *path, char *out, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	ssize_t n;

	(void)path;
	if (h->kind == H_ARTIFACT) {
		n = pread(h->fd, out, size, off);
		return n < 0 ? -errno : (int)n;
	}
	pthread_mutex_lock(&h->lock);
	n = blob_read(&h->content, out, size, off);
	pthread_mutex_unlock(&h->lock);
	return (int)n;
}

/* The value a write buffer holds: without one trailing newline. */
static size_t value_len(const struct buf *b)
{
	return b->len && b->data[b->len - 1] == '\n' ? b->len - 1 : b->len;
}

/* Checks a prospective value (param, tag, status) at write() time. */
static int check_value(struct fs *fs, struct handle *h, const struct buf *b)
{
	struct store_ref ref = { .run_id = h->run_id, .experiment_id = h->experiment_id };
	size_t len = value_len(b), vlen;
	struct store_kv kv;
	long chars;
	size_t i;
	int err;

	chars = utf8_chars(b->data ? b->data : "", len);
	if (chars < 0) {
		/* A multi-byte character may be cut at the end of this write. */
		for (i = len;
		     i > 0 && len - i < 4 && ((unsigned char)b->data[i - 1] & 0xc0) == 0x80; i--)
			;
		if (i > 0 && ((unsigned char)b->data[i - 1] & 0xc0) == 0xc0)
			i--;
		chars = utf8_chars(b->data, i);
		if (chars < 0)
			return log_refusal(h->path, EINVAL, "the value is not UTF-8 text");
	}
	if (h->kind == H_STATUS) {
		for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
			if (len <= strlen(statuses[i]) && !strncasecmp(statuses[i], b->data, len))
				return 0;
		return log_refusal(h->path, EINVAL,
				   "a status is one of RUNNING SCHEDULED FINISHED FAILED KILLED");
	}
	if ((size_t)chars > h->value_max)
		return log_refusal(h->path, EFBIG,
				   "the value has more than %zu characters, MLflow's limit",
				   h->value_max);
	if (h->kind != H_PARAM)
		return 0;
	/* A logged param may be written again only with the same value. */
	err = store_get_kv(fs->store, SEC_PARAMS, &ref, h->key, &kv);
	if (err == -ENOENT)
		return 0;
	if (err)
		return log_refusal(h->path, -err, "cannot read the param: %s", store_errmsg());
	/* What this descriptor wrote must be a prefix of "value\n". */
	vlen = strlen(kv.value);
	if (b->len > vlen + 1 || memcmp(b->data, kv.value, b->len < vlen ? b->len : vlen) ||
	    (b->len == vlen + 1 && b->data[vlen] != '\n'))
		err = log_refusal(
			h->path, EPERM,
			"param '%s' was logged with value '%.200s'; MLflow params cannot change",
			h->key, kv.value);
	store_kv_release(&kv);
	return err;
}

/*
 * Logs the complete lines of data (after the handle's unfinished line), all
 * or none; keeps a trailing partial line.  final: the partial line too.
 */
static int metric_lines(struct fs *fs, struct handle *h, const char *data, size_t size, int final)
{
	struct metric_point *pts = NULL;
	size_t n = 0, cap = 0, start = 0, i, keep = h->wbuf.len;
	const char *why = NULL;
	int err = 0, r;

	err = buf_add(&h->wbuf, data, size);
	if (err)
		return err;
	for (i = 0; i <= h->wbuf.len && !err; i++) {
		int end = i == h->wbuf.len;

		if (!end && h->wbuf.data[i] != '\n')
			continue;
		if (end && (!final || start == i))
			break;
		if (n == cap) {
			struct metric_point *p;

			cap = cap ? cap * 2 : 16;
			p = realloc(pts, cap * sizeof(*p));
			if (!p) {
				err = -ENOMEM;
				break;
			}
			pts = p;
		}
		r = metric_parse_line(h->wbuf.data + start, i - start, &pts[n], &why);
		if (r < 0)
			err = log_refusal(h->path, -r, "line '%.*s': %s",
					  (int)(i - start > 80 ? 80 : i - start),
					  h->wbuf.data + start, why ? why : "not a metric line");
		else if (r == 0)
			n++;
		start = i + 1;
	}
	if (!err && !final && h->wbuf.len - start > METRIC_LINE_MAX)
		err = log_refusal(h->path, EINVAL, "a line longer than %d bytes", METRIC_LINE_MAX);
	if (!err && n) {
		if (!h->have_token) {
			h->token = store_write_token(fs->store);
			h->have_token = 1;
		}
		err = store_log_metrics(fs->store, h->run_id, h->key, pts, n);
		if (err)
			err = log_refusal(h->path, -err, "cannot log metric '%s': %s", h->key,
					  store_errmsg());
	}
	if (err)
		buf_truncate(&h->wbuf, keep); /* all or nothing: forget this write */
	else
		buf_consume(&h->wbuf, start < h->wbuf.len ? start : h->wbuf.len);
	free(pts);
	return err;
}

static int fs_write(const char *path, const char *data, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs *fs = fs_get();
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct buf next = BUF_INIT;
	ssize_t n;
	int err;

	(void)path;
	if (h->kind == H_ARTIFACT) {
		n = pwrite(h->fd, data, size, off);
		return n < 0 ? -errno : (int)n;
	}
	if (h->kind == H_READ)
		return -EBADF;
	pthread_mutex_lock(&h->lock);
	if (h->kind == H_METRIC) {
		/* Lines are appended whatever the offset: bytes are not stored. */
		err = metric_lines(fs, h, data, size, 0);
		goto out;
	}
	err = buf_add(&next, h->wbuf.data, h->wbuf.len);
	if (!err)
		err = buf_write_at(&next, h->append ? next.len : (size_t)off, data, size);
	if (!err)
		err = check_value(fs, h, &next);
	if (!err) {
		buf_release(&h->wbuf);
		h->wbuf = next;
		buf_init(&next, 0);
		h->wrote = 1;
		if (!h->have_token) {
			h->token = store_write_token(fs->store);
			h->have_token = 1;
		}
	}
out:
	pthread_mutex_unlock(&h->lock);
	buf_release(&next);
	return err ? err : (int)size;
}

/* Logs what a param, tag or status handle holds.  Called with h->lock. */
static int apply_value(struct fs *fs, struct handle *h)
{
	struct store_ref ref = { .run_id = h->run_id, .experiment_id = h->experiment_id };
	size_t len = value_len(&h->wbuf);
	const char *status;
	char *value;
	int err;

	if (!h->wrote)
		return 0;
	if (h->kind == H_PARAM && !h->wbuf.len)
		return 0; /* nothing written: a param needs a value */
	value = strndup(h->wbuf.data ? h->wbuf.data : "", len);
	if (!value)
		return -ENOMEM;
	if (utf8_chars(value, len) < 0) {
		err = log_refusal(h->path, EINVAL, "the value is not UTF-8 text");
		goto out;
	}
	switch (h->kind) {
	case H_PARAM:
		err = store_log_param(fs->store, h->run_id, h->key, value);
		break;
	case H_TAG:
		err = store_set_tag(fs->store, h->sec, &ref, h->key, value);
		break;
	case H_STATUS:
		status = status_parse(value, len);
		if (!status) {
			err = log_refusal(
				h->path, EINVAL,
				"'%s' is not a status: RUNNING SCHEDULED FINISHED FAILED KILLED",
				value);
			goto out;
		}
		err = store_set_status(fs->store, h->run_id, status);
		break;
	default:
		err = 0;
	}
	if (err)
		err = log_refusal(h->path, -err, "%s",
				  store_errmsg()[0] ? store_errmsg() : strerror(-err));
	else
		h->wrote = 0;
out:
	free(value);
	return err;
}

/* Makes what the handle wrote safe: apply it, then commit (SPEC §4). */
static int handle_sync(struct fs *fs, struct handle *h, int durable, int final)
{
	int err;

	if (h->kind == H_METRIC)
		err = final && h->wbuf.len ? metric_lines(fs, h, "", 0, 1) : 0;
	else
		err = apply_value(fs, h);
	if (!err && h->have_token) {
		err = store_sync(fs->store, h->token, durable);
		if (err)
			err = log_refusal(h->path, -err, "%s", store_errmsg());
		else
			h->have_token = 0;
	}
	return err;
}

static int fs_flush(const char *path, struct fuse_file_info *fi)
{
	struct fs *fs = fs_get();
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	int err;

	(void)path;
	if (h->kind == H_ARTIFACT || h->kind == H_READ)
		return 0;
	pthread_mutex_lock(&h->lock);
	err = handle_sync(fs, h, 0, 1);
	pthread_mutex_unlock(&h->lock);
	return err;
}

static int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct fs *fs = fs_get();
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	int err;

	(void)path;
	if (h->kind == H_ARTIFACT)
		return (datasync ? fdatasync(h->fd) : fsync(h->fd)) < 0 ? -errno : 0;
	if (h->kind == H_READ)
		return 0;
	pthread_mutex_lock(&h->lock);
	/* An unfinished metric line waits for its end: it is not logged here. */
	err = handle_sync(fs, h, 1, 0);
	pthread_mutex_unlock(&h->lock);
	return err;
}

static int fs_release(const char *path, struct fuse_file_info *fi)
{
	struct fs *fs = fs_get();
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	(void)path;
	/* flush normally did this; release errors reach nobody, so log them. */
	if (h->kind != H_ARTIFACT && h->kind != H_READ) {
		pthread_mutex_lock(&h->lock);
		handle_sync(fs, h, 0, 1);
		pthread_mutex_unlock(&h->lock);
	}
	handle_free(fs, h);
	return 0;
}

static int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct fs *fs = fs_get();
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	enum handle_kind kind;
	enum store_section sec;
	struct art_ref a;
	struct target t;
	struct stat st;
	size_t max;
	int err, fd;

	if (h && h->kind == H_ARTIFACT)
		return ftruncate(h->fd, size) < 0 ? -errno : 0;
	if (h && h->kind != H_READ) {
		/* Metrics: accepted, changes nothing (SPEC §3). */
		pthread_mutex_lock(&h->lock);
		if (h->kind != H_METRIC && (size_t)size < h->wbuf.len)
			buf_truncate(&h->wbuf, (size_t)size);
		pthread_mutex_unlock(&h->lock);
		return 0;
	}
	if (!path)
		path = h ? h->path : "/";
	err = target_resolve(fs, path, &t);
	if (err)
		return err;
	if (t.n.kind == NODE_ARTIFACTS) {
		err = art_ref_open(fs, &t, 0, &a);
		if (!err) {
			fd = openat(a.dir, a.leaf[0] ? a.leaf : ".", O_WRONLY | O_CLOEXEC);
			if (fd < 0 || ftruncate(fd, size) < 0)
				err = -errno;
			if (fd >= 0)
				close(fd);
			art_ref_close(&a);
		}
	} else if (write_kind(&t, &kind, &sec, &max)) {
		err = log_refusal(path, EACCES, "this file is read-only");
	} else {
		/* truncate(1) of a param, tag or metric: a value changes by a write. */
		err = fs_getattr(path, &st, NULL);
		if (!err && S_ISDIR(st.st_mode))
			err = -EISDIR;
	}
	target_release(&t);
	return err;
}

/* ---- folders, names -------------------------------------------------- */

static int fs_mkdir(const char *path, mode_t mode)
{
	static const char where[] = "only experiments, runs, key folders and artifact folders "
				    "can be made here";
	struct fs *fs = fs_get();
	struct store_experiment e;
	struct store_run r;
	struct store_kv kv;
	struct art_ref a;
	struct target t;
	char user[256];
	int err;

	err = target_resolve(fs, path, &t);
	if (err == -ENOENT) {
		/* The experiment or run the path names is missing: make it. */
		if (path_parse(path, &t.n))
			return log_refusal(path, EPERM, "%s", where);
		switch (t.n.kind) {
		case NODE_EXPERIMENT:
			err = name_check(path, "experiment", STORE_EXP_NAME_MAX);
			if (err)
				break;
			err = store_create_experiment(fs->store, t.n.experiment, &e);
			if (err)
				err = log_refusal(path, -err, "cannot create experiment '%s': %s",
						  t.n.experiment, store_errmsg());
			else
				store_experiment_release(&e);
			break;
		case NODE_RUN:
			err = store_get_experiment(fs->store, t.n.experiment, &t.exp);
			if (err)
				break;
			t.has_exp = 1;
			err = name_check(path, "run", STORE_RUN_NAME_MAX);
			if (err)
				break;
			caller_name(user, sizeof(user));
			err = store_create_run(fs->store, t.exp.id, t.n.run, user, &r);
			if (err)
				err = log_refusal(path, -err, "cannot create run '%s': %s", t.n.run,
						  store_errmsg());
			else
				store_run_release(&r);
			break;
		case NODE_MODEL:
			err = log_refusal(path, EROFS,
					  "the model registry is read-only in this version");
			break;
		default:
			err = -ENOENT; /* a folder above it is missing */
		}
		target_release(&t);
		return err;
	}
	if (err)
		return err;
	switch (t.n.kind) {
	case NODE_ARTIFACTS:
		if (!t.n.subpath[0]) {
			err = -EEXIST;
			break;
		}
		err = art_ref_open(fs, &t, 1, &a);
		if (err)
			break;
		if (mkdirat(a.dir, a.leaf, mode) < 0)
			err = -errno;
		else
			art_chown_new(a.dir, a.leaf);
		art_ref_close(&a);
		break;
	case NODE_PARAMS:
	case NODE_METRICS:
	case NODE_TAGS:
	case NODE_EXP_TAGS:
		if (!t.n.key) {
			err = -EEXIST;
			break;
		}
		err = key_lookup(fs, &t, &kv);
		if (err == 1)
			store_kv_release(&kv);
		if (err != -ENOENT || pending_state(fs, path)) {
			err = err < 0 && err != -ENOENT ? err : -EEXIST;
			break;
		}
		/* A folder of keys exists only in this mount until a key is written. */
		err = name_check(path, "key", STORE_KEY_MAX);
		if (!err)
			err = key_check(fs, path, t.n.key);
		if (!err)
			err = pending_add(fs, path, 1);
		break;
	case NODE_HISTORY:
		err = t.n.key ? log_refusal(path, EACCES, "history is read-only") : -EEXIST;
		break;
	case NODE_MODEL_TAGS:
	case NODE_VERSION_TAGS:
	case NODE_MODEL_VERSIONS:
	case NODE_MODEL_ALIASES:
		err = log_refusal(path, EROFS, "the model registry is read-only in this version");
		break;
	default:
		err = -EEXIST;
	}
	target_release(&t);
	return err;
}

/* Calls an *at() function on an artifact path: unlink, rmdir. */
static int art_simple(struct fs *fs, struct target *t, int (*op)(int, const char *, int), int flags)
{
	struct art_ref a;
	int err;

	err = art_ref_open(fs, t, 0, &a);
	if (!err) {
		if (op(a.dir, a.leaf, flags) < 0)
			err = -errno;
		art_ref_close(&a);
	}
	return err;
}

static int fs_unlink(const char *path)
{
	struct fs *fs = fs_get();
	struct store_ref ref;
	struct store_kv kv;
	struct target t;
	int err;

	err = target_resolve(fs, path, &t);
	if (err)
		return err;
	switch (t.n.kind) {
	case NODE_ARTIFACTS:
		err = t.n.subpath[0] ? art_simple(fs, &t, unlinkat, 0) : -EISDIR;
		break;
	case NODE_TAGS:
	case NODE_EXP_TAGS:
		if (!t.n.key) {
			err = -EISDIR;
			break;
		}
		err = key_lookup(fs, &t, &kv);
		if (err == 1) {
			store_kv_release(&kv);
			err = store_delete_tag(fs->store, node_section(&t, &ref), &ref, t.n.key);
			if (err)
				err = log_refusal(path, -err, "cannot delete the tag: %s",
						  store_errmsg());
		} else if (err == 2) {
			err = -EISDIR;
		} else if (err == -ENOENT && pending_state(fs, path) == 1) {
			err = 0; /* created, never written: nothing stored */
		}
		break;
	case NODE_PARAMS:
	case NODE_METRICS:
	case NODE_HISTORY:
		err = log_refusal(path, EPERM, "MLflow cannot delete params or metrics");
		break;
	default:
		err = log_refusal(path, EPERM, "this file cannot be removed");
	}
	target_release(&t);
	return err;
}

static int fs_rmdir(const char *path)
{
	struct fs *fs = fs_get();
	struct store_kv kv;
	struct target t;
	int err;

	err = target_resolve(fs, path, &t);
	if (err)
		return err;
	switch (t.n.kind) {
	case NODE_EXPERIMENT:
		err = store_delete_experiment(fs->store, t.exp.id);
		if (err)
			err = log_refusal(path, -err, "cannot delete experiment '%s': %s",
					  t.exp.name, store_errmsg());
		break;
	case NODE_RUN:
		/* MLflow's soft delete: the run goes to the experiment's trash. */
		err = store_delete_run(fs->store, t.run.run_id);
		if (err)
			err = log_refusal(path, -err, "cannot delete run '%s': %s", t.run.run_id,
					  store_errmsg());
		break;
	case NODE_ARTIFACTS:
		err = t.n.subpath[0] ? art_simple(fs, &t, unlinkat, AT_REMOVEDIR)
				     : log_refusal(path, EPERM, "a run's artifacts folder stays");
		break;
	case NODE_PARAMS:
	case NODE_METRICS:
	case NODE_TAGS:
	case NODE_EXP_TAGS:
		if (t.n.key) {
			err = key_lookup(fs, &t, &kv);
			if (err == 1) {
				store_kv_release(&kv);
				err = -ENOTDIR;
			} else if (err == 2) {
				err = -ENOTEMPTY;
			} else if (err == -ENOENT && pending_state(fs, path) == 2) {
				pending_drop(fs, path, 1);
				err = 0;
			}
			break;
		}
		/* fall through */
	default:
		err = log_refusal(path, EPERM, "this folder cannot be removed");
	}
	target_release(&t);
	return err;
}

static int fs_rename(const char *from, const char *to, unsigned int flags)
{
	struct fs *fs = fs_get();
	struct art_ref ra, rb;
	struct target a, b;
	struct store_ref ref;
	struct store_kv kv;
	int err, berr;

	err = target_resolve(fs, from, &a);
	if (err)
		return err;
	berr = target_resolve(fs, to, &b);
	if (berr == -ENOENT) {
		/* What the new name would be, though it does not exist. */
		memset(&b, 0, sizeof(b));
		if (path_parse(to, &b.n))
			b.n.kind = NODE_ROOT;
	} else if (berr) {
		target_release(&a);
		return berr;
	}
	if (a.n.kind == NODE_ARTIFACTS && a.n.subpath[0]) {
		if (berr || b.n.kind != NODE_ARTIFACTS || !b.n.subpath[0]) {
			err = berr ? berr
				   : log_refusal(from, EPERM, "artifacts stay in artifacts/");
			goto out;
		}
		err = art_ref_open(fs, &a, 0, &ra);
		if (err)
			goto out;
		err = art_ref_open(fs, &b, 1, &rb);
		if (!err) {
			if (renameat2(ra.dir, ra.leaf, rb.dir, rb.leaf, flags) < 0)
				err = -errno;
			art_ref_close(&rb);
		}
		art_ref_close(&ra);
		goto out;
	}
	if (flags & ~(unsigned)RENAME_NOREPLACE) {
		err = log_refusal(from, EINVAL, "this rename flag works on artifacts only");
		goto out;
	}
	if (a.n.kind == NODE_RUN && b.n.kind == NODE_RUN) {
		if (strcmp(a.n.experiment, b.n.experiment))
			err = log_refusal(from, EPERM, "a run cannot move to another experiment");
		else if (!berr && strcmp(a.run.run_id, b.run.run_id))
			err = log_refusal(to, EEXIST, "a run named '%s' exists", b.n.run);
		else if (!(err = name_check(to, "run", STORE_RUN_NAME_MAX)) &&
			 (err = store_rename_run(fs->store, a.run.run_id, b.n.run)))
			err = log_refusal(from, -err, "cannot rename the run: %s", store_errmsg());
	} else if (a.n.kind == NODE_EXPERIMENT && b.n.kind == NODE_EXPERIMENT) {
		if (!berr && strcmp(a.exp.id, b.exp.id))
			err = log_refusal(to, EEXIST, "an experiment named '%s' exists",
					  b.n.experiment);
		else if (!(err = name_check(to, "experiment", STORE_EXP_NAME_MAX)) &&
			 (err = store_rename_experiment(fs->store, a.exp.id, b.n.experiment)))
			err = log_refusal(from, -err, "cannot rename the experiment: %s",
					  store_errmsg());
	} else if ((a.n.kind == NODE_TAGS || a.n.kind == NODE_EXP_TAGS) && a.n.kind == b.n.kind &&
		   a.n.key && b.n.key && !berr && !strcmp(a.exp.id, b.exp.id) &&
		   !strcmp(a.run.run_id, b.run.run_id)) {
		/* A tag keeps its owner; rename(2) replaces an existing target. */
		err = key_lookup(fs, &b, &kv);
		if (err == 1)
			store_kv_release(&kv);
		if (err == 2)
			err = log_refusal(to, EISDIR, "'%s' is a folder of keys", b.n.key);
		else if (err == 1 && (flags & RENAME_NOREPLACE))
			err = -EEXIST;
		else if (err < 0 && err != -ENOENT)
			;
		else if (!(err = name_check(to, "key", STORE_KEY_MAX)) &&
			 !(err = key_check(fs, to, b.n.key)) &&
			 (err = store_rename_tag(fs->store, node_section(&a, &ref), &ref, a.n.key,
						 b.n.key)))
			err = log_refusal(from, -err, "cannot rename the tag: %s", store_errmsg());
	} else if (a.n.kind == NODE_PARAMS || a.n.kind == NODE_METRICS ||
		   a.n.kind == NODE_HISTORY) {
		err = log_refusal(from, EPERM, "MLflow cannot rename params or metrics");
	} else {
		err = log_refusal(from, EPERM, "this cannot be moved to '%s'", to);
	}
out:
	target_release(&a);
	target_release(&b);
	return err;
}

static int fs_symlink(const char *target, const char *path)
{
	struct fs *fs = fs_get();
	struct art_ref a;
	struct target t;
	int err;

	err = art_resolve(fs, path, &t, EPERM, "symbolic links can be made in artifacts only");
	if (err)
		return err;
	err = art_ref_open(fs, &t, 1, &a);
	if (!err) {
		if (symlinkat(target, a.dir, a.leaf) < 0)
			err = -errno;
		else
			art_chown_new(a.dir, a.leaf);
		art_ref_close(&a);
	}
	target_release(&t);
	return err;
}

static int fs_link(const char *from, const char *to)
{
	static const char why[] = "hard links work between artifacts only";
	struct fs *fs = fs_get();
	struct art_ref a, b;
	struct target ta, tb;
	int err;

	err = art_resolve(fs, from, &ta, ENOTSUP, why);
	if (err)
		return err;
	err = art_resolve(fs, to, &tb, ENOTSUP, why);
	if (err) {
		target_release(&ta);
		return err;
	}
	err = art_ref_open(fs, &ta, 0, &a);
	if (!err) {
		err = art_ref_open(fs, &tb, 1, &b);
		if (!err) {
			if (linkat(a.dir, a.leaf, b.dir, b.leaf, 0) < 0)
				err = -errno;
			art_ref_close(&b);
		}
		art_ref_close(&a);
	}
	target_release(&ta);
	target_release(&tb);
	return err;
}

/* ---- attributes of artifacts; refusals elsewhere ---------------------- */

static int fs_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
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
	err = target_resolve(fs, path, &t);
	if (err)
		return err;
	if (t.n.kind != NODE_ARTIFACTS) {
		target_release(&t);
		return log_refusal(path, EPERM, "virtual files have fixed permissions");
	}
	err = art_ref_open(fs, &t, 0, &a);
	if (!err) {
		art_ref_path(&a, &dir, &name);
		if (fchmodat(dir, name, mode, 0) < 0)
			err = -errno;
		art_ref_close(&a);
	}
	target_release(&t);
	return err;
}

static int fs_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
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
	err = target_resolve(fs, path, &t);
	if (err)
		return err;
	if (t.n.kind != NODE_ARTIFACTS) {
		target_release(&t);
		return log_refusal(path, EPERM, "virtual files have a fixed owner");
	}
	err = art_ref_open(fs, &t, 0, &a);
	if (!err) {
		if (fchownat(a.dir, a.leaf, uid, gid, AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) < 0)
			err = -errno;
		art_ref_close(&a);
	}
	target_release(&t);
	return err;
}

static int fs_utimens(const char *path, const struct timespec tv[2], struct fuse_file_info *fi)
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
	err = target_resolve(fs, path, &t);
	if (err)
		return err;
	if (t.n.kind != NODE_ARTIFACTS) {
		/* Also a created file still without a value: nothing to set. */
		target_release(&t);
		return 0;
	}
	err = art_ref_open(fs, &t, 0, &a);
	if (!err) {
		art_ref_path(&a, &dir, &name);
		if (utimensat(dir, name, tv, a.leaf[0] ? AT_SYMLINK_NOFOLLOW : 0) < 0)
			err = -errno;
		art_ref_close(&a);
	}
	target_release(&t);
	return err;
}

static int fs_mknod(const char *path, mode_t mode, dev_t dev)
{
	struct fs *fs = fs_get();
	struct art_ref a;
	struct target t;
	int err;

	err = art_resolve(fs, path, &t, EPERM, "special files can be made in artifacts only");
	if (err)
		return err;
	err = art_ref_open(fs, &t, 1, &a);
	if (!err) {
		if (mknodat(a.dir, a.leaf, mode, dev) < 0)
			err = -errno;
		else
			art_chown_new(a.dir, a.leaf);
		art_ref_close(&a);
	}
	target_release(&t);
	return err;
}

static int fs_access(const char *path, int mask)
{
	struct fs *fs = fs_get();
	struct art_ref a;
	struct target t;
	const char *name;
	struct stat st;
	int err, dir;

	err = target_resolve(fs, path, &t);
	if (err)
		return err;
	if (t.n.kind == NODE_ARTIFACTS) {
		err = art_ref_open(fs, &t, 0, &a);
		if (err == -ENOENT && !t.n.subpath[0]) {
			err = 0; /* the folder made at the first artifact */
		} else if (!err) {
			art_ref_path(&a, &dir, &name);
			if (faccessat(dir, name, mask, AT_EACCESS) < 0)
				err = -errno;
			art_ref_close(&a);
		}
		target_release(&t);
		return err;
	}
	target_release(&t);
	err = fs_getattr(path, &st, NULL);
	if (!err && (mask & W_OK) && !(st.st_mode & S_IWUSR))
		err = -EACCES;
	if (!err && (mask & X_OK) && !(st.st_mode & S_IXUSR))
		err = -EACCES;
	return err;
}

static int fs_statfs(const char *path, struct statvfs *st)
{
	struct fs *fs = fs_get();

	(void)path;
	return statvfs(fs->cfg->artifact_root ? fs->cfg->artifact_root : "/", st) < 0 &&
			       statvfs("/", st) < 0
		       ? -errno
		       : 0;
}

static int fs_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	(void)path;
	if (h->kind != H_ARTIFACT)
		return -EOPNOTSUPP;
	return fallocate(h->fd, mode, off, len) < 0 ? -errno : 0;
}

static void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	/*
	 * Kernel caches of 1 s (never 0: fuse-peers §3); no negative cache, so
	 * a name made by another client shows at once.  Artifacts deleted while
	 * open stay readable through their descriptors (hard_remove,
	 * nullpath_ok).  Read-only descriptors need no flush.
	 */
	cfg->entry_timeout = 1.0;
	cfg->attr_timeout = 1.0;
	cfg->negative_timeout = 0;
	cfg->use_ino = 0;
	cfg->hard_remove = 1;
	cfg->nullpath_ok = 1;
	cfg->no_rofd_flush = 1;
	/* Never writeback_cache: the kernel would hold lines for 30 s. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* Always readdirplus, so ls -l needs no lookups (machine-limits §3). */
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	return fuse_get_context()->private_data;
}

struct fs *fs_new(struct store *store, const struct mfs_config *cfg)
{
	struct fs *fs = calloc(1, sizeof(*fs));

	if (!fs)
		return NULL;
	fs->store = store;
	fs->cfg = cfg;
	fs->uid = getuid();
	fs->gid = getgid();
	fs->mounted_ms = now_ms();
	fs->utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	if (!fs->utf8) {
		free(fs);
		return NULL;
	}
	pthread_mutex_init(&fs->pending_lock, NULL);
	return fs;
}

void fs_free(struct fs *fs)
{
	struct pending *p;

	if (!fs)
		return;
	while ((p = fs->pending)) {
		fs->pending = p->next;
		free(p->path);
		free(p);
	}
	pthread_mutex_destroy(&fs->pending_lock);
	freelocale(fs->utf8);
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
};
