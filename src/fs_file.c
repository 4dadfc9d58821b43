/*
 * fs_file.c - open files.  Virtual files are read through direct I/O (a read
 * always shows the store now, whatever size the kernel cached); writes to a
 * param, tag or status are collected and logged at close or fsync, metric
 * lines are logged as they complete, a write all or nothing (SPEC §3).
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
#include <wctype.h>

#include "config.h"
#include "fs-internal.h"
#include "fs.h"
#include "log.h"
#include "metric.h"
#include "options.h"

/* A line longer than this, still unfinished, is refused (bounds memory). */
#define METRIC_LINE_MAX (64 * 1024)

static void handle_free(struct fs *fs, struct handle *h)
{
	pthread_mutex_lock(&fs->open_lock);
	if (h->prev)
		h->prev->next = h->next;
	else
		fs->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&fs->open_lock);
	if (h->fd >= 0)
		close(h->fd);
	if (h->pending)
		fs_pending_drop(fs, h->path, 0);
	blob_release(&h->content);
	buf_release(&h->wbuf);
	free(h->key);
	free(h->path);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

void fs_file_free_all(struct fs *fs)
{
	while (fs->handles)
		handle_free(fs, fs->handles);
}

static struct handle *handle_new(struct fs *fs, enum handle_kind kind, const char *path)
{
	struct handle *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->kind = kind;
	h->fd = -1;
	blob_init(&h->content);
	buf_init(&h->wbuf, 0);
	h->path = strdup(path);
	if (!h->path) {
		free(h);
		return NULL;
	}
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_lock(&fs->open_lock);
	h->next = fs->handles;
	if (h->next)
		h->next->prev = h;
	fs->handles = h;
	pthread_mutex_unlock(&fs->open_lock);
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
	err = fs_art_open(fs, t, create, &a);
	if (err)
		return err;
	fd = openat(a.dir, a.leaf, fi->flags | O_CLOEXEC | (create ? O_CREAT : 0), mode);
	if (fd < 0)
		err = -errno;
	else if (create)
		fs_art_chown_new(a.dir, a.leaf);
	fs_art_close(&a);
	if (err)
		return err;
	h = handle_new(fs, H_ARTIFACT, path);
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
		err = t->n.kind == NODE_HISTORY && t->n.key ? 0 : fs_render(fs, t, &text, NULL);
		if (err == -ENOENT && fs_pending_state(fs, path) == 1)
			err = 0; /* created by another descriptor, still empty */
		if (err)
			goto out;
	}
	h = handle_new(fs, kind, path);
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
		err = fs_pending_add(fs, path, 0);
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

/* Opens a key that is not in the store yet: its name must be one MLflow takes. */
static int new_key(struct fs *fs, const char *path, struct target *t, struct fuse_file_info *fi)
{
	int err = fs_name_check(path, "key", STORE_KEY_MAX);

	if (!err)
		err = fs_key_check(path, t->n.key);
	return err ? err : virt_open(fs, path, t, fi, 1);
}

int fs_open(const char *path, struct fuse_file_info *fi)
{
	struct fs *fs = fs_get();
	struct target t;
	int err;

	err = fs_resolve(fs, path, &t);
	if (err)
		return err;
	if (t.n.kind == NODE_ARTIFACTS)
		err = art_open(fs, path, &t, fi, 0, 0);
	else
		err = virt_open(fs, path, &t, fi, 0);
	/*
	 * The kernel keeps a name it saw for its entry timeout, also one that
	 * never got a value (touch, a refused write): it then opens instead of
	 * creating.  Opening such a key for writing makes it, as create would.
	 */
	if (err == -ENOENT && is_write(fi->flags) && t.n.key &&
	    (t.n.kind == NODE_PARAMS || t.n.kind == NODE_METRICS || t.n.kind == NODE_TAGS ||
	     t.n.kind == NODE_EXP_TAGS))
		err = new_key(fs, path, &t, fi);
	fs_target_release(&t);
	return err;
}

int fs_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct fs *fs = fs_get();
	struct store_kv kv;
	struct target t;
	int err;

	err = fs_models_refuse(path);
	if (err)
		return err;
	err = fs_resolve_new(fs, path, &t);
	if (err) {
		/* A missing experiment or run here is a file where only folders live. */
		if (err == -ENOENT &&
		    (!t.parsed || !(path_is_key_kind(t.n.kind) || t.n.kind == NODE_ARTIFACTS)))
			err = log_refusal(path, EPERM,
					  "only run folders, keys and artifacts can be made here");
		fs_target_release(&t);
		return err;
	}
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
		err = fs_key_lookup(fs, &t, &kv);
		if (err == 1) {
			/* Made meanwhile by someone else: open it. */
			store_kv_release(&kv);
			err = virt_open(fs, path, &t, fi, 0);
		} else if (err == 2) {
			err = log_refusal(path, EISDIR, "'%s' is a folder of keys", t.n.key);
		} else if (err == -ENOENT) {
			err = new_key(fs, path, &t, fi);
		}
		break;
	case NODE_HISTORY:
		err = log_refusal(path, EACCES, "history is read-only");
		break;
	default:
		err = log_refusal(path, EPERM,
				  "only run folders, keys and artifacts can be made here");
	}
	fs_target_release(&t);
	return err;
}

int fs_read(const char *path, char *out, size_t size, off_t off, struct fuse_file_info *fi)
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

/* The value a write buffer holds: without one trailing line end, "\n" or a
 * Windows program's "\r\n". */
static size_t value_len(const struct buf *b)
{
	if (!b->len || b->data[b->len - 1] != '\n')
		return b->len;
	return b->len > 1 && b->data[b->len - 2] == '\r' ? b->len - 2 : b->len - 1;
}

/* Whether s (len bytes) can still become "\n" or "\r\n". */
static int line_end_prefix(const char *s, size_t len)
{
	return len == 0 || (len == 1 && (s[0] == '\n' || s[0] == '\r')) ||
	       (len == 2 && s[0] == '\r' && s[1] == '\n');
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

	chars = fs_utf8_chars(b->data ? b->data : "", len);
	if (chars < 0) {
		/* A multi-byte character may be cut at the end of this write. */
		for (i = len;
		     i > 0 && len - i < 4 && ((unsigned char)b->data[i - 1] & 0xc0) == 0x80; i--)
			;
		if (i > 0 && ((unsigned char)b->data[i - 1] & 0xc0) == 0xc0)
			i--;
		chars = fs_utf8_chars(b->data, i);
		if (chars < 0)
			return log_refusal(h->path, EINVAL, "the value is not UTF-8 text");
	}
	if (h->kind == H_STATUS) {
		/* "FINISHED\r" may be a write away from its "\n". */
		if (len && b->data[len - 1] == '\r')
			len--;
		if (fs_status_parse(b->data ? b->data : "", len, 1))
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
	/* What this descriptor wrote must be a prefix of the value and its line end. */
	vlen = strlen(kv.value);
	if (memcmp(b->data, kv.value, b->len < vlen ? b->len : vlen) ||
	    (b->len > vlen && !line_end_prefix(b->data + vlen, b->len - vlen)))
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
		if (r < 0) {
			char shown[96];

			/* Escaped here, with its length: a NUL would end "%s". */
			log_escape(shown, sizeof(shown), h->wbuf.data + start, i - start);
			err = log_refusal(h->path, -r, "line '%s': %s", shown,
					  why ? why : "not a metric line");
		} else if (r == 0)
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

int fs_write(const char *path, const char *data, size_t size, off_t off, struct fuse_file_info *fi)
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
	if (err) {
		/* A refused write spoils the value: close must not log what came before. */
		h->failed = err;
	} else {
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

	if (h->failed) {
		h->wrote = 0;
		return h->failed;
	}
	if (!h->wrote)
		return 0;
	if (h->kind == H_PARAM && !h->wbuf.len)
		return 0; /* nothing written: a param needs a value */
	value = strndup(h->wbuf.data ? h->wbuf.data : "", len);
	if (!value)
		return -ENOMEM;
	if (fs_utf8_chars(value, len) < 0) {
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
		status = fs_status_parse(value, len, 0);
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

/*
 * Drops the kernel's cached attributes of the files a write changed besides
 * its own (which the kernel refreshes itself): the run folder and run.json,
 * a metric's history, an experiment's .experiment.json.  Sizes stay exact
 * (SPEC §2) although attributes are cached for a second.
 */
static void invalidate_related(const struct handle *h)
{
	struct fuse *f = fuse_get_context()->fuse;
	const char *p = h->path, *exp_end, *run_end;
	struct buf path = BUF_INIT;

	if (strncmp(p, "/experiments/", 13) || !(exp_end = strchr(p + 13, '/')))
		return;
	if (h->sec == SEC_EXP_TAGS && h->kind == H_TAG) {
		if (!buf_add(&path, p, (size_t)(exp_end - p)) &&
		    !buf_adds(&path, "/.experiment.json"))
			fuse_invalidate_path(f, buf_str(&path));
		buf_release(&path);
		return;
	}
	run_end = strchr(exp_end + 1, '/');
	if (!run_end || buf_add(&path, p, (size_t)(run_end - p)))
		goto out;
	fuse_invalidate_path(f, buf_str(&path));
	if (buf_adds(&path, "/run.json"))
		goto out;
	fuse_invalidate_path(f, buf_str(&path));
	if (h->kind == H_METRIC && !strncmp(run_end, "/metrics/", 9)) {
		buf_truncate(&path, (size_t)(run_end - p));
		if (!buf_adds(&path, "/history/") && !buf_adds(&path, run_end + 9))
			fuse_invalidate_path(f, buf_str(&path));
	}
out:
	buf_release(&path);
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
		if (err) {
			err = log_refusal(h->path, -err, "%s", store_errmsg());
		} else {
			h->have_token = 0;
			invalidate_related(h);
		}
	}
	return err;
}

int fs_flush(const char *path, struct fuse_file_info *fi)
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

int fs_fsync(const char *path, int datasync, struct fuse_file_info *fi)
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

int fs_release(const char *path, struct fuse_file_info *fi)
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

int fs_truncate(const char *path, off_t size, struct fuse_file_info *fi)
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
	err = fs_resolve(fs, path, &t);
	if (err)
		return err;
	if (t.n.kind == NODE_ARTIFACTS) {
		err = fs_art_open(fs, &t, 0, &a);
		if (!err) {
			fd = openat(a.dir, a.leaf[0] ? a.leaf : ".", O_WRONLY | O_CLOEXEC);
			if (fd < 0 || ftruncate(fd, size) < 0)
				err = -errno;
			if (fd >= 0)
				close(fd);
			fs_art_close(&a);
		}
	} else if (write_kind(&t, &kind, &sec, &max)) {
		err = log_refusal(path, EACCES, "this file is read-only");
	} else {
		/* truncate(1) of a param, tag or metric: a value changes by a write. */
		err = fs_getattr(path, &st, NULL);
		if (!err && S_ISDIR(st.st_mode))
			err = -EISDIR;
	}
	fs_target_release(&t);
	return err;
}

/* ---- folders, names -------------------------------------------------- */

int fs_fallocate(const char *path, int mode, off_t off, off_t len, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	(void)path;
	if (h->kind != H_ARTIFACT)
		return -EOPNOTSUPP;
	return fallocate(h->fd, mode, off, len) < 0 ? -errno : 0;
}
