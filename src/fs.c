/*
 * fs.c - the FUSE layer's core: the daemon's state, the names it accepts,
 * paths resolved to the experiment, run or model they name, and the
 * operations on names (mkdir, unlink, rmdir, rename).  A path comes in,
 * path_parse() makes it a node, fs_resolve() finds what it names, one store
 * call answers.  Every handler returns 0 or -errno, and every refusal is
 * logged with the path and the reason (log_refusal).
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

#include "config.h"
#include "fs-internal.h"
#include "fs.h"
#include "keychars.h"
#include "log.h"
#include "metric.h"
#include "options.h"

struct fs *fs_get(void)
{
	return fuse_get_context()->private_data;
}

int64_t fs_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- names and values ------------------------------------------------ */

/*
 * Checks that s (len bytes) is UTF-8 that Python decodes, without NUL, and
 * counts its characters, as MLflow measures lengths.  Returns the count, or -1.
 */
long fs_utf8_chars(const char *s, size_t len)
{
	static const unsigned min_cp[] = { 0, 0x80, 0x800, 0x10000 };
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	long n = 0;

	while (p < end) {
		unsigned c = *p;
		int extra = c < 0x80		 ? 0
			    : (c & 0xe0) == 0xc0 ? 1
			    : (c & 0xf0) == 0xe0 ? 2
			    : (c & 0xf8) == 0xf0 ? 3
						 : -1;

		if (c == 0 || extra < 0 || end - p <= extra)
			return -1;
		if (extra) {
			c &= 0x3f >> extra;
			for (int i = 1; i <= extra; i++) {
				if ((p[i] & 0xc0) != 0x80)
					return -1;
				c = (c << 6) | (p[i] & 0x3f);
			}
			/* What Python refuses to decode: overlong forms,
			 * surrogates, and beyond U+10FFFF. */
			if (c < min_cp[extra] || (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
				return -1;
		}
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

/*
 * Whether MLflow's path check refuses key: Python's posixpath.normpath(key)
 * must equal the key, and not be "." nor begin with ".." or "/".  That is
 * the same as refusing a leading '/', an empty segment ("a//b", "a/"), any
 * "." or ".." segment, and a key that begins with "..".
 */
static int key_path_refused(const char *key)
{
	const char *seg = key;

	if (key[0] == '/' || !strncmp(key, "..", 2))
		return 1;
	for (;;) {
		size_t n = strcspn(seg, "/");

		if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && !strncmp(seg, "..", 2)))
			return 1;
		if (!seg[n])
			return 0;
		seg += n + 1;
	}
}

/*
 * MLflow's key rule, exactly as its validator applies it: the characters
 * match ^[/\w.\- :]*$ (and re's '$' also matches before one final
 * newline, so "a\n" passes), the key passes the path check above, and it
 * has at most 250 characters.
 */
int fs_key_check(const char *path, const char *key)
{
	const unsigned char *p = (const unsigned char *)key;
	long chars = fs_utf8_chars(key, strlen(key));

	if (chars < 0)
		return log_refusal(path, EINVAL, "key '%s' is not valid UTF-8", key);
	if (chars > STORE_KEY_MAX)
		return log_refusal(path, ENAMETOOLONG,
				   "key is %ld characters long; MLflow allows %d", chars,
				   STORE_KEY_MAX);
	while (*p) {
		unsigned c = utf8_next(&p);

		if (keychar_word(c) || (c < 0x80 && strchr("/.- :", (int)c)) || (c == '\n' && !*p))
			continue;
		return log_refusal(path, EINVAL,
				   "key '%s' has a character MLflow refuses: keys may only contain "
				   "letters, digits, '_', '-', '.', ' ', ':' and '/'",
				   key);
	}
	if (key_path_refused(key))
		return log_refusal(
			path, EINVAL,
			"key '%s' is refused by MLflow: no leading '/', no empty, '.' or "
			"'..' segment, and no leading '..'",
			key);
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
int fs_name_check(const char *path, const char *what, long max_chars)
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
	chars = fs_utf8_chars(dec.data, dec.len);
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

/* The canonical status that text (any case) names, or with prefix begins;
 * NULL if none. */
const char *fs_status_parse(const char *text, size_t len, int prefix)
{
	size_t i;

	for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
		if ((prefix ? len <= strlen(statuses[i]) : len == strlen(statuses[i])) &&
		    !strncasecmp(statuses[i], text, len))
			return statuses[i];
	return NULL;
}

int fs_models_refuse(const char *path)
{
	if (strncmp(path, "/models", 7) || (path[7] && path[7] != '/'))
		return 0;
	return log_refusal(path, EROFS, "the model registry is read-only in this version");
}

/* The user a new run is recorded for: the caller's login name. */
static void fs_caller_name(char *out, size_t size)
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
int fs_pending_add(struct fs *fs, const char *path, int is_dir)
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

void fs_pending_drop(struct fs *fs, const char *path, int is_dir)
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
int fs_pending_state(struct fs *fs, const char *path)
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

void fs_target_release(struct target *t)
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
int fs_resolve_new(struct fs *fs, const char *path, struct target *t)
{
	int err;

	memset(t, 0, sizeof(*t));
	err = path_parse(path, &t->n);
	if (err)
		return err;
	t->parsed = 1;
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
	/* Keep the parsed node: callers making a new name ask what it is. */
	if (t->has_exp)
		store_experiment_release(&t->exp);
	if (t->has_run)
		store_run_release(&t->run);
	if (t->has_model)
		store_model_release(&t->model);
	if (t->has_version)
		store_version_release(&t->version);
	t->has_exp = t->has_run = t->has_model = t->has_version = 0;
	return err;
}

int fs_resolve(struct fs *fs, const char *path, struct target *t)
{
	int err = fs_resolve_new(fs, path, t);

	if (err)
		fs_target_release(t);
	return err;
}

/* The section and owner of a key folder node. */
enum store_section fs_node_section(const struct target *t, struct store_ref *ref)
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
int fs_key_lookup(struct fs *fs, const struct target *t, struct store_kv *kv)
{
	struct store_ref ref;
	enum store_section sec = fs_node_section(t, &ref);
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

void fs_fill_stat(struct fs *fs, struct stat *st, mode_t mode, off_t size, int64_t ms)
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

static int do_mkdir(struct fs *fs, const char *path, mode_t mode)
{
	static const char where[] = "only experiments, runs, key folders and artifact folders "
				    "can be made here";
	struct store_experiment e;
	struct store_run r;
	struct store_kv kv;
	struct art_ref a;
	struct target t;
	char user[256];
	int err;

	err = fs_resolve(fs, path, &t);
	if (err == -ENOENT) {
		/* The experiment or run the path names is missing: make it. */
		if (path_parse(path, &t.n))
			return log_refusal(path, EPERM, "%s", where);
		switch (t.n.kind) {
		case NODE_EXPERIMENT:
			err = fs_name_check(path, "experiment", STORE_EXP_NAME_MAX);
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
			err = fs_name_check(path, "run", STORE_RUN_NAME_MAX);
			if (err)
				break;
			fs_caller_name(user, sizeof(user));
			err = store_create_run(fs->store, t.exp.id, t.n.run, user, &r);
			if (err)
				err = log_refusal(path, -err, "cannot create run '%s': %s", t.n.run,
						  store_errmsg());
			else
				store_run_release(&r);
			break;
		default:
			err = -ENOENT; /* a folder above it is missing */
		}
		fs_target_release(&t);
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
		err = fs_art_open(fs, &t, 1, &a);
		if (err)
			break;
		if (mkdirat(a.dir, a.leaf, mode) < 0)
			err = -errno;
		else
			fs_art_chown_new(a.dir, a.leaf);
		fs_art_close(&a);
		break;
	case NODE_PARAMS:
	case NODE_METRICS:
	case NODE_TAGS:
	case NODE_EXP_TAGS:
		if (!t.n.key) {
			err = -EEXIST;
			break;
		}
		err = fs_key_lookup(fs, &t, &kv);
		if (err == 1)
			store_kv_release(&kv);
		if (err != -ENOENT || fs_pending_state(fs, path)) {
			err = err < 0 && err != -ENOENT ? err : -EEXIST;
			break;
		}
		/* A folder of keys exists only in this mount until a key is written. */
		err = fs_name_check(path, "key", STORE_KEY_MAX);
		if (!err)
			err = fs_key_check(path, t.n.key);
		if (!err)
			err = fs_pending_add(fs, path, 1);
		break;
	case NODE_HISTORY:
		err = t.n.key ? log_refusal(path, EACCES, "history is read-only") : -EEXIST;
		break;
	default:
		err = -EEXIST;
	}
	fs_target_release(&t);
	return err;
}

static int do_unlink(struct fs *fs, const char *path)
{
	struct store_ref ref;
	struct store_kv kv;
	struct target t;
	int err;

	err = fs_resolve(fs, path, &t);
	if (err)
		return err;
	switch (t.n.kind) {
	case NODE_ARTIFACTS:
		err = t.n.subpath[0] ? fs_art_simple(fs, &t, unlinkat, 0) : -EISDIR;
		break;
	case NODE_TAGS:
	case NODE_EXP_TAGS:
		if (!t.n.key) {
			err = -EISDIR;
			break;
		}
		err = fs_key_lookup(fs, &t, &kv);
		if (err == 1) {
			store_kv_release(&kv);
			err = store_delete_tag(fs->store, fs_node_section(&t, &ref), &ref, t.n.key);
			if (err)
				err = log_refusal(path, -err, "cannot delete the tag: %s",
						  store_errmsg());
		} else if (err == 2) {
			err = -EISDIR;
		} else if (err == -ENOENT && fs_pending_state(fs, path) == 1) {
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
	fs_target_release(&t);
	return err;
}

static int do_rmdir(struct fs *fs, const char *path)
{
	struct store_kv kv;
	struct target t;
	int err;

	err = fs_resolve(fs, path, &t);
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
		err = t.n.subpath[0] ? fs_art_simple(fs, &t, unlinkat, AT_REMOVEDIR)
				     : log_refusal(path, EPERM, "a run's artifacts folder stays");
		break;
	case NODE_PARAMS:
	case NODE_METRICS:
	case NODE_TAGS:
	case NODE_EXP_TAGS:
		if (t.n.key) {
			err = fs_key_lookup(fs, &t, &kv);
			if (err == 1) {
				store_kv_release(&kv);
				err = -ENOTDIR;
			} else if (err == 2) {
				err = -ENOTEMPTY;
			} else if (err == -ENOENT && fs_pending_state(fs, path) == 2) {
				fs_pending_drop(fs, path, 1);
				err = 0;
			}
			break;
		}
		/* fall through */
	default:
		err = log_refusal(path, EPERM, "this folder cannot be removed");
	}
	fs_target_release(&t);
	return err;
}

static int is_artifact_path(const char *path)
{
	struct node n;
	int yes = !path_parse(path, &n) && n.kind == NODE_ARTIFACTS;

	path_release(&n);
	return yes;
}

static int do_rename(struct fs *fs, const char *from, const char *to, unsigned int flags)
{
	struct art_ref ra, rb;
	struct target a, b;
	struct store_ref ref;
	struct store_kv kv;
	int err, berr;

	/*
	 * libfuse hides a file removed while open by renaming it to
	 * .fuse_hidden*: for a virtual file that is its removal, nothing more.
	 */
	if (!strncmp(last_component(to), ".fuse_hidden", 12) && !is_artifact_path(from))
		return do_unlink(fs, from);
	err = fs_resolve(fs, from, &a);
	if (err)
		return err;
	berr = fs_resolve(fs, to, &b);
	if (berr == -ENOENT) {
		/* What the new name would be, though it does not exist. */
		memset(&b, 0, sizeof(b));
		if (path_parse(to, &b.n))
			b.n.kind = NODE_ROOT;
	} else if (berr) {
		fs_target_release(&a);
		return berr;
	}
	if (a.n.kind == NODE_ARTIFACTS && a.n.subpath[0]) {
		if (berr || b.n.kind != NODE_ARTIFACTS || !b.n.subpath[0]) {
			err = berr ? berr
				   : log_refusal(from, EPERM, "artifacts stay in artifacts/");
			goto out;
		}
		err = fs_art_open(fs, &a, 0, &ra);
		if (err)
			goto out;
		err = fs_art_open(fs, &b, 1, &rb);
		if (!err) {
			if (renameat2(ra.dir, ra.leaf, rb.dir, rb.leaf, flags) < 0)
				err = -errno;
			fs_art_close(&rb);
		}
		fs_art_close(&ra);
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
		else if (!(err = fs_name_check(to, "run", STORE_RUN_NAME_MAX)) &&
			 (err = store_rename_run(fs->store, a.run.run_id, b.n.run)))
			err = log_refusal(from, -err, "cannot rename the run: %s", store_errmsg());
	} else if (a.n.kind == NODE_EXPERIMENT && b.n.kind == NODE_EXPERIMENT) {
		if (!berr && strcmp(a.exp.id, b.exp.id))
			err = log_refusal(to, EEXIST, "an experiment named '%s' exists",
					  b.n.experiment);
		else if (!(err = fs_name_check(to, "experiment", STORE_EXP_NAME_MAX)) &&
			 (err = store_rename_experiment(fs->store, a.exp.id, b.n.experiment)))
			err = log_refusal(from, -err, "cannot rename the experiment: %s",
					  store_errmsg());
	} else if ((a.n.kind == NODE_TAGS || a.n.kind == NODE_EXP_TAGS) && a.n.kind == b.n.kind &&
		   a.n.key && b.n.key && !berr && !strcmp(a.exp.id, b.exp.id) &&
		   !strcmp(a.run.run_id, b.run.run_id)) {
		/* A tag keeps its owner; rename(2) replaces an existing target. */
		err = fs_key_lookup(fs, &b, &kv);
		if (err == 1)
			store_kv_release(&kv);
		if (err == 2)
			err = log_refusal(to, EISDIR, "'%s' is a folder of keys", b.n.key);
		else if (err == 1 && (flags & RENAME_NOREPLACE))
			err = -EEXIST;
		else if (err < 0 && err != -ENOENT)
			;
		else if (!(err = fs_name_check(to, "key", STORE_KEY_MAX)) &&
			 !(err = fs_key_check(to, b.n.key)) &&
			 (err = store_rename_tag(fs->store, fs_node_section(&a, &ref), &ref,
						 a.n.key, b.n.key)))
			err = log_refusal(from, -err, "cannot rename the tag: %s", store_errmsg());
	} else if (a.n.kind == NODE_PARAMS || a.n.kind == NODE_METRICS ||
		   a.n.kind == NODE_HISTORY) {
		err = log_refusal(from, EPERM, "MLflow cannot rename params or metrics");
	} else {
		err = log_refusal(from, EPERM, "this cannot be moved to '%s'", to);
	}
out:
	fs_target_release(&a);
	fs_target_release(&b);
	return err;
}

/* Commits a name operation at once: it has no close() to wait for, and a
 * client must see the run it just made. */
static int commit_now(struct fs *fs, const char *path, uint64_t token)
{
	int err = store_sync(fs->store, token, 0);

	return err ? log_refusal(path, -err, "%s", store_errmsg()) : 0;
}

int fs_mkdir(const char *path, mode_t mode)
{
	struct fs *fs = fs_get();
	uint64_t token = store_write_token(fs->store);
	int err = fs_models_refuse(path);

	if (!err)
		err = do_mkdir(fs, path, mode);
	return err ? err : commit_now(fs, path, token);
}

int fs_unlink(const char *path)
{
	struct fs *fs = fs_get();
	uint64_t token = store_write_token(fs->store);
	int err = fs_models_refuse(path);

	if (!err)
		err = do_unlink(fs, path);
	return err ? err : commit_now(fs, path, token);
}

int fs_rmdir(const char *path)
{
	struct fs *fs = fs_get();
	uint64_t token = store_write_token(fs->store);
	int err = fs_models_refuse(path);

	if (!err)
		err = do_rmdir(fs, path);
	return err ? err : commit_now(fs, path, token);
}

int fs_rename(const char *from, const char *to, unsigned int flags)
{
	struct fs *fs = fs_get();
	uint64_t token = store_write_token(fs->store);
	int err = fs_models_refuse(from);

	if (!err)
		err = fs_models_refuse(to);
	if (!err)
		err = do_rename(fs, from, to, flags);
	return err ? err : commit_now(fs, from, token);
}

void *fs_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	/*
	 * Kernel caches of 1 s (never 0: fuse-peers §3); no negative cache, so
	 * a name made by another client shows at once.  An artifact removed
	 * while open is hidden by libfuse (renamed .fuse_hidden*, removed at
	 * its last close), so fstat() and the like on it keep working; the
	 * high-level API could not find a path for it otherwise.  Read-only
	 * descriptors need no flush.
	 */
	cfg->hard_remove = 0;
	cfg->entry_timeout = 1.0;
	cfg->attr_timeout = 1.0;
	cfg->negative_timeout = 0;
	cfg->use_ino = 0;
	cfg->nullpath_ok = 1;
	cfg->no_rofd_flush = 1;
	/* Never writeback_cache: the kernel would hold lines for 30 s. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* Always readdirplus, so ls -l needs no lookups (machine-limits §3). */
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	fs_watch_start(fuse_get_context()->private_data, fuse_get_context()->fuse);
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
	fs->mounted_ms = fs_now_ms();
	pthread_mutex_init(&fs->pending_lock, NULL);
	pthread_mutex_init(&fs->open_lock, NULL);
	pthread_mutex_init(&fs->seen_lock, NULL);
	pthread_mutex_init(&fs->watch_lock, NULL);
	return fs;
}

void fs_free(struct fs *fs)
{
	struct pending *p;

	if (!fs)
		return;
	fs_stop(fs);
	fs_file_free_all(fs);
	fs_dir_free_all(fs);
	while ((p = fs->pending)) {
		fs->pending = p->next;
		free(p->path);
		free(p);
	}
	pthread_mutex_destroy(&fs->pending_lock);
	pthread_mutex_destroy(&fs->open_lock);
	pthread_mutex_destroy(&fs->seen_lock);
	pthread_mutex_destroy(&fs->watch_lock);
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
	.setxattr = fs_setxattr,
	.removexattr = fs_removexattr,
};
