/*
 * fs_views.c - the runs tables of an experiment (.runs.csv, .runs.tsv),
 * rendered once and kept while nothing changed.
 *
 * A table's exact size is only known by making it, and `ls -l`, tar and
 * rsync stat it before they read it.  So a rendering of both tables is kept
 * and answers every stat and open of that experiment's tables until this
 * process writes to the store, another client commits (others_version), or
 * VIEW_KEEP_MS passes (the bound for a store that cannot tell, as a remote
 * one).  A stat and the open that follows then agree byte for byte.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "content.h"
#include "fs-internal.h"
#include "store.h"

/* How long a rendering may answer when the store cannot say whether it
 * changed: the kernel keeps attributes as long (fs_init). */
#define VIEW_KEEP_MS 1000

struct fs_view {
	char experiment_id[STORE_ID_MAX];
	uint64_t writes; /* store_writes() before rendering */
	uint64_t others; /* store_others_version() before rendering */
	int others_rc;	 /* what it returned */
	int64_t made_ms;
	struct blob table[2]; /* CSV, TSV */
	int refs;	      /* protected by fs->views_lock */
};

static void view_put_locked(struct fs_view *v)
{
	if (v && --v->refs == 0) {
		blob_release(&v->table[0]);
		blob_release(&v->table[1]);
		free(v);
	}
}

/* Whether v still shows the store as it is now: others_rc and others are
 * what store_others_version() says now. */
static int view_fresh(const struct fs_view *v, uint64_t writes, int others_rc, uint64_t others)
{
	if (v->writes != writes || clock_mono_ms() - v->made_ms > VIEW_KEEP_MS)
		return 0;
	/* A store that cannot tell at all has the time bound alone; one that
	 * cannot tell just now has changed. */
	if (others_rc == -ENOSYS)
		return v->others_rc == -ENOSYS;
	return !others_rc && !v->others_rc && v->others == others;
}

/* A kept rendering of the experiment's tables, or a new one; the caller
 * releases it with view_put(). */
static int view_get(struct fs *fs, const char *experiment_id, struct fs_view **out)
{
	struct fs_view *v = NULL, *old;
	uint64_t writes = store_writes(fs->store), others = 0;
	int others_rc = store_others_version(fs->store, &others);
	size_t i, slot = 0;
	int err;

	pthread_mutex_lock(&fs->views_lock);
	for (i = 0; i < FS_VIEWS_MAX; i++) {
		struct fs_view *c = fs->views[i];

		if (c && !strcmp(c->experiment_id, experiment_id) &&
		    view_fresh(c, writes, others_rc, others)) {
			c->refs++;
			v = c;
			break;
		}
	}
	pthread_mutex_unlock(&fs->views_lock);
	if (v) {
		*out = v;
		return 0;
	}

	/* Made outside the lock: a large experiment takes a while, and two
	 * threads making the same rendering at once only cost time. */
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	snprintf(v->experiment_id, sizeof(v->experiment_id), "%s", experiment_id);
	v->writes = writes;
	v->others = others;
	v->others_rc = others_rc;
	v->made_ms = clock_mono_ms();
	v->refs = 1;
	blob_init(&v->table[0]);
	blob_init(&v->table[1]);
	err = content_runs_tables(fs->store, experiment_id, &v->table[0], &v->table[1]);
	pthread_mutex_lock(&fs->views_lock);
	if (err) {
		view_put_locked(v);
		pthread_mutex_unlock(&fs->views_lock);
		return err;
	}
	/* Kept in the slot of the same experiment, else the oldest. */
	for (i = 0; i < FS_VIEWS_MAX; i++) {
		struct fs_view *c = fs->views[i];

		if (!c || !strcmp(c->experiment_id, experiment_id)) {
			slot = i;
			break;
		}
		if (c->made_ms < fs->views[slot]->made_ms)
			slot = i;
	}
	old = fs->views[slot];
	fs->views[slot] = v;
	v->refs++;
	view_put_locked(old);
	pthread_mutex_unlock(&fs->views_lock);
	*out = v;
	return 0;
}

static void view_put(struct fs *fs, struct fs_view *v)
{
	pthread_mutex_lock(&fs->views_lock);
	view_put_locked(v);
	pthread_mutex_unlock(&fs->views_lock);
}

int fs_views_table_size(struct fs *fs, const char *experiment_id, int tsv, off_t *size)
{
	struct fs_view *v;
	int err = view_get(fs, experiment_id, &v);

	if (err)
		return err;
	*size = v->table[tsv ? 1 : 0].size;
	view_put(fs, v);
	return 0;
}

int fs_views_table_copy(struct fs *fs, const char *experiment_id, int tsv, struct blob *out)
{
	struct fs_view *v;
	const struct blob *b;
	int err = view_get(fs, experiment_id, &v);

	if (err)
		return err;
	b = &v->table[tsv ? 1 : 0];
	/* A spilled table is shared through its own descriptor: blob_read()
	 * reads at offsets, never moving a file position. */
	if (b->fd >= 0) {
		out->fd = dup(b->fd);
		if (out->fd < 0)
			err = -errno;
		else
			out->size = b->size;
	} else {
		err = blob_add(out, b->mem.data, b->mem.len);
	}
	view_put(fs, v);
	return err;
}

void fs_views_free(struct fs *fs)
{
	size_t i;

	for (i = 0; i < FS_VIEWS_MAX; i++) {
		view_put_locked(fs->views[i]);
		fs->views[i] = NULL;
	}
}
