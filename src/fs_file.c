/*
 * fs_file.c - open files.  Virtual files are read through direct I/O (a read
 * always shows the store now, whatever size the kernel cached); writes to a
 * param, tag or status are collected and logged at close or fsync, metric
 * lines are logged as they complete, a write all or nothing (mlflowfs(1), WRITING).  A
 * descriptor's writes go into its own batch, so its close() reports its
 * own failures and nobody else's (mlflowfs(1), WHEN DATA IS SAFE).  An
 * artifact a training program writes is also handed to its parse (ingest.h)
 * as it is written, and what that logs is committed at close.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs-internal.h"
#include "log.h"
#include "metric.h"

/* A line longer than this, still unfinished, is refused (bounds memory). */
#define METRIC_LINE_MAX (64 * 1024)

void fs_handle_free(struct fs *fs, struct handle *h)
{
	pthread_mutex_lock(&fs->open_lock);
	if (h->prev)
		h->prev->next = h->next;
	else
		fs->handles = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&fs->open_lock);
	if (h->art) {
		int err = art_close(h->art);

		if (err)
			log_warn("%s: closing failed: %s", h->path, strerror(-err));
	}
	if (h->pending)
		fs_pending_drop(fs, h->path, 0);
	ingest_put(fs->ingest, h->ing);
	store_batch_free(fs->store, h->batch);
	blob_release(&h->content);
	buf_release(&h->wbuf);
	free(h->key);
	free(h->model);
	free(h->hidden_as);
	free(h->path);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

int fs_handle_open_done(struct fs *fs, struct handle *h, struct fuse_file_info *fi, int err)
{
	if (err) {
		fs_handle_free(fs, h);
		return err;
	}
	fi->fh = (uintptr_t)h;
	fi->direct_io = 1;
	return 0;
}

void fs_file_free_all(struct fs *fs)
{
	while (fs->handles)
		fs_handle_free(fs, fs->handles);
}

int fs_file_is_open(struct fs *fs, const char *path)
{
	struct handle *h;
	int open = 0;

	pthread_mutex_lock(&fs->open_lock);
	for (h = fs->handles; h && !open; h = h->next)
		open = !strcmp(h->path, path);
	pthread_mutex_unlock(&fs->open_lock);
	return open;
}

size_t fs_file_count(struct fs *fs)
{
	struct handle *h;
	size_t n = 0;

	pthread_mutex_lock(&fs->open_lock);
	for (h = fs->handles; h; h = h->next)
		n++;
	pthread_mutex_unlock(&fs->open_lock);
	return n;
}

void fs_file_removed(struct fs *fs, const char *path)
{
	struct handle *h;

	pthread_mutex_lock(&fs->open_lock);
	for (h = fs->handles; h; h = h->next) {
		if (h->kind == H_ARTIFACT || strcmp(h->path, path))
			continue;
		__atomic_store_n(&h->removed, 1, __ATOMIC_RELEASE);
		/* No longer a name being made (fs_handle_free reads pending
		 * after it left the list, so after this). */
		if (h->pending) {
			fs_pending_drop(fs, h->path, 0);
			__atomic_store_n(&h->pending, 0, __ATOMIC_RELEASE);
		}
	}
	pthread_mutex_unlock(&fs->open_lock);
}

void fs_file_hidden(struct fs *fs, const char *from, const char *as)
{
	struct handle *h;

	pthread_mutex_lock(&fs->open_lock);
	for (h = fs->handles; h; h = h->next) {
		if (h->kind == H_ARTIFACT || strcmp(h->path, from))
			continue;
		free(h->hidden_as);
		h->hidden_as = strdup(as); /* without memory, fstat() fails: no harm */
	}
	pthread_mutex_unlock(&fs->open_lock);
}

/* What fstat() of an open key file shows once it is removed; h->lock held. */
static void removed_stat(struct fs *fs, struct handle *h, struct stat *st)
{
	fs_fill_stat(fs, st, h->kind == H_READ ? RO_MODE : RW_MODE,
		     h->kind == H_READ ? h->content.size : (off_t)h->wbuf.len, fs_now_ms());
	st->st_nlink = 0;
}

int fs_file_hidden_stat(struct fs *fs, const char *path, struct stat *st)
{
	struct handle *h;
	int err = -ENOENT;

	pthread_mutex_lock(&fs->open_lock);
	for (h = fs->handles; h && err; h = h->next) {
		if (h->hidden_as && !strcmp(h->hidden_as, path)) {
			pthread_mutex_lock(&h->lock);
			removed_stat(fs, h, st);
			pthread_mutex_unlock(&h->lock);
			err = 0;
		}
	}
	pthread_mutex_unlock(&fs->open_lock);
	return err;
}

int fs_file_removed_stat(struct fs *fs, struct handle *h, struct stat *st)
{
	if (!__atomic_load_n(&h->removed, __ATOMIC_ACQUIRE))
		return -ENOENT;
	pthread_mutex_lock(&h->lock);
	removed_stat(fs, h, st);
	pthread_mutex_unlock(&h->lock);
	return 0;
}

struct handle *fs_handle_new(struct fs *fs, enum handle_kind kind, const char *path)
{
	struct handle *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->kind = kind;
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

/* This descriptor's batch, made at its first write. */
static struct store_batch *batch_of(struct fs *fs, struct handle *h)
{
	if (!h->batch)
		h->batch = store_batch_new(fs->store);
	return h->batch;
}

#define STATUS_WORDS "a status is one of RUNNING SCHEDULED FINISHED FAILED KILLED"
#define STAGE_WORDS  "a stage is one of None Staging Production Archived"

/* Checks a prospective value (param, tag, status) at write() time. */
static int check_value(struct fs *fs, struct handle *h, const struct buf *b)
{
	const struct store_snapshot *snap;
	const struct store_kv *kv;
	size_t len = value_len(b), vlen;
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
	if (h->kind == H_STATUS || h->kind == H_STAGE) {
		/* "FINISHED\r" may be a write away from its "\n". */
		if (len && b->data[len - 1] == '\r')
			len--;
		if (h->kind == H_STATUS ? fs_status_parse(b->data ? b->data : "", len, 1)
					: fs_stage_parse(b->data ? b->data : "", len, 1))
			return 0;
		return log_refusal(h->path, EINVAL, "%s",
				   h->kind == H_STATUS ? STATUS_WORDS : STAGE_WORDS);
	}
	if ((size_t)chars > h->value_max)
		return log_refusal(h->path, EFBIG,
				   "the value has more than %zu characters, MLflow's limit",
				   h->value_max);
	if (h->kind != H_PARAM)
		return 0;
	/* A logged param may be written again only with the same value. */
	err = store_get_snapshot(fs->store, h->run_id, SNAP_PARAMS, &snap);
	if (err)
		return log_refusal(h->path, -err, "cannot read the param: %s", fs_store_why(err));
	kv = store_kvs_find(snap->params, h->key);
	/* What this descriptor wrote must be a prefix of the value and its line end. */
	vlen = kv ? strlen(kv->value) : 0;
	if (kv && (memcmp(b->data, kv->value, b->len < vlen ? b->len : vlen) ||
		   (b->len > vlen && !line_end_prefix(b->data + vlen, b->len - vlen))))
		err = log_refusal(
			h->path, EPERM,
			"param '%s' was logged with value '%.200s'; MLflow params cannot change",
			h->key, kv->value);
	store_snapshot_put(snap);
	return err;
}

/*
 * Points without a step get the next ones (mlflowfs(1), WRITING: one more than the
 * highest step of the metric so far, which counts the explicit steps
 * earlier in the same write); points without a time get now.
 */
static int assign_steps(struct fs *fs, struct handle *h, struct metric_point *pts, size_t n)
{
	int64_t now = fs_now_ms(), floor = INT64_MIN, first;
	size_t i = 0, j;
	int err;

	while (i < n) {
		if (!pts[i].has_timestamp) {
			pts[i].timestamp = now;
			pts[i].has_timestamp = 1;
		}
		if (pts[i].has_step) {
			if (pts[i].step >= floor)
				floor = pts[i].step == INT64_MAX ? INT64_MAX : pts[i].step + 1;
			i++;
			continue;
		}
		/* A run of points without a step: one reservation. */
		for (j = i; j < n && !pts[j].has_step; j++)
			;
		err = store_reserve_steps(fs->store, h->run_id, h->key, floor, j - i, &first);
		if (err)
			return log_refusal(h->path, -err, "cannot find the next step of '%s': %s",
					   h->key, fs_store_why(err));
		for (; i < j; i++) {
			pts[i].step = first;
			pts[i].has_step = 1;
			if (!pts[i].has_timestamp) {
				pts[i].timestamp = now;
				pts[i].has_timestamp = 1;
			}
			first = first == INT64_MAX ? INT64_MAX : first + 1;
		}
		floor = first;
	}
	return 0;
}

/*
 * Logs the complete lines of data (after the handle's unfinished line), all
 * or none; keeps a trailing partial line.  final: the partial line too.
 */
static int metric_lines(struct fs *fs, struct handle *h, const char *data, size_t size, int final)
{
	/* A write() of a few lines needs no heap for its points. */
	struct metric_point few[16], *pts = few;
	size_t n = 0, cap = sizeof(few) / sizeof(few[0]), start = 0, i, keep = h->wbuf.len;
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
			struct metric_point *p = pts == few ? malloc(cap * 2 * sizeof(*p))
							    : realloc(pts, cap * 2 * sizeof(*p));

			if (!p) {
				err = -ENOMEM;
				break;
			}
			if (pts == few)
				memcpy(p, few, sizeof(few));
			pts = p;
			cap *= 2;
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
	if (!err && n)
		err = assign_steps(fs, h, pts, n);
	if (!err && n) {
		err = batch_of(fs, h)
			      ? store_log_metrics(fs->store, h->batch, h->run_id, h->key, pts, n)
			      : -ENOMEM;
		if (err)
			err = log_refusal(h->path, -err, "cannot log metric '%s': %s", h->key,
					  fs_store_why(err));
		else
			h->dirty = 1;
	}
	if (err)
		buf_truncate(&h->wbuf, keep); /* all or nothing: forget this write */
	else
		buf_consume(&h->wbuf, start < h->wbuf.len ? start : h->wbuf.len);
	if (pts != few)
		free(pts);
	return err;
}

/* The most bytes a value of h may take: four a character (UTF-8) and a
 * line end; a status is a short word. */
static size_t value_bytes_max(const struct handle *h)
{
	return h->kind == H_STATUS || h->kind == H_STAGE ? 64 : h->value_max * 4 + 2;
}

/* An artifact's path, which renames move: a new string, NULL without memory. */
static char *artifact_path(struct fs *fs, struct handle *h)
{
	char *path;

	pthread_mutex_lock(&fs->open_lock);
	path = strdup(h->path);
	pthread_mutex_unlock(&fs->open_lock);
	return path;
}

/* What a recognised artifact's write brings is logged too (mlflowfs(1),
 * PARSED FILES); the write itself stands whatever happens here. */
static void artifact_parse(struct fs *fs, struct handle *h, const char *data, size_t size,
			   off_t off)
{
	char *path = artifact_path(fs, h);

	pthread_mutex_lock(&h->lock);
	if (path && batch_of(fs, h) &&
	    ingest_write(fs->ingest, h->ing, fs->store, h->batch, path, data, size, off))
		h->dirty = 1;
	pthread_mutex_unlock(&h->lock);
	free(path);
}

int fs_file_write(struct fs *fs, struct handle *h, const char *data, size_t size, off_t off)
{
	struct buf next = BUF_INIT;
	size_t at, max;
	int err;

	if (h->kind == H_ARTIFACT) {
		ssize_t n = art_write(h->art, data, size, off);

		if (n > 0 && h->ing)
			artifact_parse(fs, h, data, (size_t)n, off);
		return (int)n;
	}
	if (h->kind == H_READ)
		return -EBADF;
	pthread_mutex_lock(&h->lock);
	if (h->kind == H_METRIC) {
		/* Lines are appended whatever the offset: bytes are not stored. */
		err = metric_lines(fs, h, data, size, 0);
		goto out;
	}
	/* Refused before anything is allocated: a write far past the end
	 * would otherwise fill the gap with zeros first. */
	at = h->append ? h->wbuf.len : (size_t)off;
	max = value_bytes_max(h);
	if (off < 0 || at > max || size > max - at)
		err = h->kind == H_STATUS ? log_refusal(h->path, EINVAL, STATUS_WORDS)
		      : h->kind == H_STAGE
			      ? log_refusal(h->path, EINVAL, STAGE_WORDS)
			      : log_refusal(
					h->path, EFBIG,
					"the value has more than %zu characters, MLflow's limit",
					h->value_max);
	else
		err = buf_add(&next, h->wbuf.data, h->wbuf.len);
	if (!err)
		err = buf_write_at(&next, at, data, size);
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
	}
out:
	pthread_mutex_unlock(&h->lock);
	buf_release(&next);
	return err ? err : (int)size;
}

/* Logs what a param, tag or status handle holds.  Called with h->lock. */
static int apply_value(struct fs *fs, struct handle *h)
{
	struct store_ref ref = { .run_id = h->run_id,
				 .experiment_id = h->experiment_id,
				 .model = h->model,
				 .version = h->version };
	size_t len = value_len(&h->wbuf);
	const char *status, *stage;
	char *value;
	int err;

	if (h->failed) {
		h->wrote = 0;
		return h->failed;
	}
	if (__atomic_load_n(&h->removed, __ATOMIC_ACQUIRE))
		h->wrote = 0; /* its key is gone: what it wrote goes with it */
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
	if (!batch_of(fs, h)) {
		err = -ENOMEM;
		goto out;
	}
	switch (h->kind) {
	case H_PARAM:
		err = store_log_param(fs->store, h->batch, h->run_id, h->key, value);
		break;
	case H_TAG:
		err = store_set_tag(fs->store, h->batch, h->sec, &ref, h->key, value);
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
		err = store_set_status(fs->store, h->batch, h->run_id, status);
		break;
	case H_DESCRIPTION:
		err = store_set_description(fs->store, h->batch, h->model, h->version, value);
		break;
	case H_STAGE:
		stage = fs_stage_parse(value, len, 0);
		if (!stage) {
			err = log_refusal(h->path, EINVAL, "'%s': %s", value, STAGE_WORDS);
			goto out;
		}
		err = store_set_stage(fs->store, h->batch, h->model, h->version, stage);
		break;
	default:
		err = 0;
	}
	if (err)
		err = log_refusal(h->path, -err, "%s", fs_store_why(err));
	else
		h->wrote = 0, h->dirty = 1;
out:
	free(value);
	return err;
}

/*
 * Drops the kernel's cached attributes of the files a write changed besides
 * its own (which the kernel refreshes itself): the run folder and run.json,
 * a metric's history and its plots, an experiment's .experiment.json.  Sizes stay exact
 * (mlflowfs(1), THE TREE) although attributes are cached for a second.
 * p: h's path (an artifact's, copied under open_lock).
 */
static void invalidate_related(const struct handle *h, const char *p)
{
	struct fuse *f = fuse_get_context()->fuse;
	const char *exp_end, *run_end;
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
		/* And its plots: the run's, and the experiment's of every run. */
		if (!buf_adds(&path, ".svg"))
			fuse_invalidate_path(f, buf_str(&path));
		buf_truncate(&path, (size_t)(exp_end - p));
		if (!buf_adds(&path, "/.plots/") && !buf_adds(&path, run_end + 9) &&
		    !buf_adds(&path, ".svg"))
			fuse_invalidate_path(f, buf_str(&path));
	}
out:
	buf_release(&path);
}

/*
 * A recognised artifact's descriptor is closed: what is parsed at close is,
 * and what its writes logged is committed before close returns.  A failure
 * is noted in .mlflowfs/errors, never close()'s: the file itself is stored.
 */
static int artifact_parsed(struct fs *fs, struct handle *h)
{
	char *path = artifact_path(fs, h);
	int err;

	pthread_mutex_lock(&h->lock);
	if (path && batch_of(fs, h) &&
	    ingest_close(fs->ingest, h->ing, fs->store, h->batch, fs->art, path))
		h->dirty = 1;
	if (path && h->dirty) {
		err = store_batch_commit(fs->store, h->batch, 0);
		if (err)
			log_refusal(path, -err, "cannot log what the file holds: %s",
				    fs_store_why(err));
		h->dirty = 0;
		invalidate_related(h, path);
	}
	pthread_mutex_unlock(&h->lock);
	free(path);
	return 0;
}

/* Makes what the handle wrote safe: apply it, then commit (mlflowfs(1), WHEN DATA IS SAFE). */
int fs_file_sync(struct fs *fs, struct handle *h, int durable, int final)
{
	int err;

	if (h->kind == H_READ)
		return 0;
	if (h->kind == H_ARTIFACT) {
		/* A remote repository uploads here: close(2) reports it. */
		char *path;

		err = final ? art_sync(h->art, ART_SYNC_CLOSE) : 0;
		if (!err)
			return final && h->ing ? artifact_parsed(fs, h) : 0;
		path = artifact_path(fs, h);
		err = log_refusal(path ? path : "(an artifact)", -err,
				  "cannot store the artifact: %s",
				  art_errmsg()[0] ? art_errmsg() : strerror(-err));
		free(path);
		return err;
	}
	pthread_mutex_lock(&h->lock);
	/* An unfinished metric line waits for its end: it is not logged at fsync. */
	if (h->kind == H_METRIC)
		err = final && h->wbuf.len ? metric_lines(fs, h, "", 0, 1) : 0;
	else
		err = apply_value(fs, h);
	if (err && final) {
		/* close() said it failed: the release after it must not try
		 * again, and succeed behind the back of a program that saw the
		 * error and may write the same again. */
		h->wrote = 0;
		buf_reset(&h->wbuf);
	}
	if (!err && h->batch && (h->dirty || durable)) {
		err = store_batch_commit(fs->store, h->batch, durable);
		if (err) {
			err = log_refusal(h->path, -err, "%s", fs_store_why(err));
		} else if (h->dirty) {
			h->dirty = 0;
			invalidate_related(h, h->path);
		}
	}
	pthread_mutex_unlock(&h->lock);
	return err;
}

int fs_file_read(struct handle *h, char *out, size_t size, off_t off)
{
	ssize_t n;

	if (h->kind == H_ARTIFACT)
		return (int)art_read(h->art, out, size, off);
	pthread_mutex_lock(&h->lock);
	n = blob_read(&h->content, out, size, off);
	pthread_mutex_unlock(&h->lock);
	return (int)n;
}

int fs_file_truncate(struct handle *h, off_t size)
{
	if (h->kind == H_ARTIFACT) {
		int err = art_ftruncate(h->art, size);

		if (!err)
			ingest_truncate(h->ing, size);
		return err;
	}
	if (h->kind == H_READ)
		return -EACCES;
	/* Metrics: accepted, changes nothing (mlflowfs(1), WRITING). */
	pthread_mutex_lock(&h->lock);
	if (h->kind != H_METRIC && (size_t)size < h->wbuf.len)
		buf_truncate(&h->wbuf, (size_t)size);
	pthread_mutex_unlock(&h->lock);
	return 0;
}
