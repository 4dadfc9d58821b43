/*
 * fs_node.c - what every kind of node shares: the names mlflowfs accepts
 * (MLflow's key rule, the listing's encoding, statuses), paths resolved to
 * the experiment, run or model they name, attributes, and the names made in
 * this mount that have no value in the store yet.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fs-internal.h"
#include "keychars.h"
#include "log.h"
#include "options.h"

struct fs *fs_get(void)
{
	return fuse_get_context()->private_data;
}

int64_t fs_now_ms(void)
{
	return clock_wall_ms();
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
 * MLflow's key rule, exactly as its validator applies it: the characters
 * match ^[/\w.\- :]*$ (and re's '$' also matches before one final
 * newline, so "a\n" passes), the key passes the path check (path.h), and it
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
	if (path_key_refused(key))
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

int fs_link_resolve(struct fs *fs, const char *path, const char *text, struct buf *out)
{
	const char *mnt = fs->cfg->mountpoint, *p, *end;
	size_t mlen = strlen(mnt), len;
	int err = 0;

	buf_reset(out);
	if (text[0] == '/') {
		/* The mountpoint "/" would make every path one of the mount's. */
		while (mlen > 1 && mnt[mlen - 1] == '/')
			mlen--;
		if (strncmp(text, mnt, mlen) || (text[mlen] && text[mlen] != '/'))
			return -EINVAL;
		p = text + mlen;
	} else {
		/* From the link's folder: path without its last component. */
		end = strrchr(path, '/');
		err = buf_add(out, path, (size_t)(end - path));
		p = text;
	}
	while (!err && *p) {
		while (*p == '/')
			p++;
		end = strchr(p, '/');
		len = end ? (size_t)(end - p) : strlen(p);
		if (!len)
			break;
		if (len == 2 && !strncmp(p, "..", 2)) {
			char *slash;

			if (!out->len)
				return -EINVAL; /* above the mount's root */
			slash = memrchr(out->data, '/', out->len);
			buf_truncate(out, slash ? (size_t)(slash - out->data) : 0);
		} else if (len != 1 || *p != '.') {
			err = buf_addch(out, '/');
			if (!err)
				err = buf_add(out, p, len);
		}
		p += len;
	}
	if (!err && !out->len)
		err = buf_addch(out, '/');
	return err;
}

/* The one of n words that text (any case) names, or with prefix begins;
 * NULL if none. */
static const char *word_parse(const char *const *words, size_t n, const char *text, size_t len,
			      int prefix)
{
	size_t i;

	for (i = 0; i < n; i++)
		if ((prefix ? len <= strlen(words[i]) : len == strlen(words[i])) &&
		    !strncasecmp(words[i], text, len))
			return words[i];
	return NULL;
}

static const char *const statuses[] = { "RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED" };
static const char *const stages[] = { "None", "Staging", "Production", "Archived" };

const char *fs_status_parse(const char *text, size_t len, int prefix)
{
	return word_parse(statuses, sizeof(statuses) / sizeof(statuses[0]), text, len, prefix);
}

const char *fs_stage_parse(const char *text, size_t len, int prefix)
{
	return word_parse(stages, sizeof(stages) / sizeof(stages[0]), text, len, prefix);
}

int fs_hidden_name(const char *path)
{
	const char *name = last_component(path);
	size_t i;

	if (strncmp(name, ".fuse_hidden", 12) || strlen(name) != 12 + 16)
		return 0;
	for (i = 12; name[i]; i++)
		if (!strchr("0123456789abcdef", name[i]))
			return 0;
	return 1;
}

int fs_is_hide(struct fs *fs, const char *from, const char *to)
{
	const char *name = last_component(to);

	return fs_hidden_name(to) && !strncmp(from, to, (size_t)(name - to)) &&
	       !strchr(from + (name - to), '/') && (!fs || fs_file_is_open(fs, from));
}

/* The user a new run is recorded for: the caller's login name. */
void fs_caller_name(char *out, size_t size)
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

int fs_pending_each(struct fs *fs, const char *dir,
		    int (*fn)(void *ctx, const char *name, int is_file), void *ctx)
{
	size_t len = strlen(dir);
	struct pending *p;
	int err = 0;

	pthread_mutex_lock(&fs->pending_lock);
	for (p = fs->pending; p && !err; p = p->next) {
		const char *name = p->path + len + 1;

		if (!strncmp(p->path, dir, len) && p->path[len] == '/' && !strchr(name, '/'))
			err = fn(ctx, name, p->open_files > 0);
	}
	pthread_mutex_unlock(&fs->pending_lock);
	return err;
}

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

int fs_refuse_move(const char *from, const char *to)
{
	return log_refusal(from, EPERM, "this cannot be moved to '%s'", to);
}

const char *fs_store_why(int err)
{
	return store_errmsg()[0] ? store_errmsg() : strerror(-err);
}

int fs_store_err(const char *path, int err)
{
	if (!err || err == -ENOENT || err == -ENOTDIR || err == -EISDIR)
		return err;
	return log_refusal(path, -err, "%s", fs_store_why(err));
}

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
	if (t->has_lm)
		store_logged_model_release(&t->lm);
	store_snapshot_put(t->snap);
	store_kv_release(&t->kv_own);
	memset(t, 0, sizeof(*t));
}

static int resolve(struct fs *fs, const char *path, struct target *t, int make);

int fs_resolve(struct fs *fs, const char *path, struct target *t, int make)
{
	return fs_store_err(path, resolve(fs, path, t, make));
}

static int resolve(struct fs *fs, const char *path, struct target *t, int make)
{
	enum node_kind kind;
	int err;

	memset(t, 0, sizeof(*t));
	t->path = path;
	err = path_parse(path, &t->n);
	if (err)
		return err;
	t->parsed = 1;
	kind = t->n.kind;
	if (t->n.experiment) {
		err = store_get_experiment(fs->store, t->n.experiment, &t->exp);
		if (err)
			goto missing;
		t->has_exp = 1;
	}
	if (t->n.run) {
		err = store_find_run(fs->store, t->exp.id, t->n.run, &t->run);
		if (err)
			goto missing;
		t->has_run = 1;
	}
	if (kind == NODE_RUNS_LINK) {
		err = store_get_run(fs->store, t->n.run_id, &t->run);
		if (err)
			return err;
		t->has_run = 1;
		if (!t->run.folder)
			return -ENOENT;
		err = store_get_experiment_by_id(fs->store, t->run.experiment_id, &t->exp);
		if (err)
			return err;
		t->has_exp = 1;
		if (t->exp.deleted)
			return -ENOENT;
	}
	if (t->n.model) {
		err = store_get_model(fs->store, t->n.model, &t->model);
		if (err)
			goto missing;
		t->has_model = 1;
	}
	if (kind == NODE_VERSION) {
		/* A version not there is a name ln -s may make one under: its
		 * kind's getattr says ENOENT. */
		err = t->n.version
			      ? store_get_version(fs->store, t->n.model, t->n.version, &t->version)
			      : -ENOENT;
		if (err && err != -ENOENT)
			return err;
		t->has_version = !err;
	} else if (kind == NODE_VERSION_FIELD || kind == NODE_VERSION_TAGS ||
		   kind == NODE_VERSION_ARTIFACTS) {
		err = store_get_version(fs->store, t->n.model, t->n.version, &t->version);
		if (err)
			return err;
		t->has_version = 1;
	}
	/* A logged model by its folder (or id); a run's link to one is looked
	 * up by its kind, among the run's. */
	if (t->n.logged_model && kind != NODE_RUN_MODEL) {
		err = store_find_logged_model(fs->store, t->exp.id, t->n.logged_model, &t->lm);
		if (err)
			return err;
		t->has_lm = 1;
	}
	return 0;
missing:
	/* What the last component names may be missing for a request making it. */
	if (err == -ENOENT && make &&
	    ((kind == NODE_EXPERIMENT && !t->has_exp) || (kind == NODE_RUN && t->has_exp) ||
	     (kind == NODE_MODEL && !t->has_model))) {
		t->missing = 1;
		return 0;
	}
	return err;
}

int fs_target_snapshot(struct fs *fs, struct target *t, unsigned want)
{
	if (t->snap && (t->snap->have & want) == want)
		return 0;
	if (!t->has_run)
		return -ENOENT;
	store_snapshot_put(t->snap);
	t->snap = NULL;
	return fs_store_err(t->path, store_get_snapshot(fs->store, t->run.run_id, want, &t->snap));
}

/* ---- attributes ------------------------------------------------------ */

int64_t fs_node_ms(struct fs *fs, const struct target *t)
{
	if (t->has_version)
		return t->version.last_updated_time;
	if (t->has_lm)
		return t->lm.last_updated_time;
	if (t->has_model)
		return t->model.last_updated_time;
	if (t->has_run)
		return t->run.last_change;
	if (t->has_exp)
		return t->exp.last_update_time;
	return fs->mounted_ms;
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
	if (ms < 0)
		ms = 0;
	st->st_mtim.tv_sec = ms / 1000;
	st->st_mtim.tv_nsec = (ms % 1000) * 1000000;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
}
