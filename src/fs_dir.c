/*
 * fs_dir.c - listings: the entries of a folder with their attributes (so
 * readdirplus spares the kernel a lookup per entry), taken once per open
 * folder and served by offset.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "fs-internal.h"
#include "log.h"

struct dir_entry {
	char *name;
	struct stat st;
	int lazy; /* st holds only the type: the kernel asks getattr when it needs more */
};

struct listing {
	const char *path;
	struct dir_entry *v;
	size_t n, cap;
	int dedupe;
	int untracked;
};

/* An open folder. */
struct dir_handle {
	struct dir_handle *prev, *next; /* in fs->dirs, protected by fs->open_lock */
	char *path;			/* readdir gets no path (nullpath_ok) */
	struct listing l;		/* protected by lock */
	int ready;			/* l is taken; protected by lock */
	pthread_mutex_t lock;		/* one readdir at a time */
};

const char *listing_path(const struct listing *l)
{
	return l->path ? l->path : "-";
}

int listing_add(struct listing *l, const char *name, const struct stat *st)
{
	struct dir_entry *e;

	/*
	 * A name the kernel cannot pass on (empty, or longer than a file name
	 * may be) would fail the whole listing with EIO: skip it, say so, and
	 * list the rest.  Such names come from databases written by hand.
	 */
	if (!name[0] || strlen(name) > NAME_MAX) {
		log_warn("%s: not listing an entry whose name is %s", listing_path(l),
			 name[0] ? "longer than 255 bytes" : "empty");
		return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		struct dir_entry *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	e = &l->v[l->n];
	e->name = strdup(name);
	if (!e->name)
		return -ENOMEM;
	e->st = *st;
	e->lazy = 0;
	l->n++;
	return 0;
}

int listing_add_lazy(struct listing *l, const char *name, mode_t type)
{
	struct stat st;
	int err;

	memset(&st, 0, sizeof(st));
	st.st_mode = type;
	err = listing_add(l, name, &st);
	if (!err)
		l->v[l->n - 1].lazy = 1;
	return err;
}

int listing_add_encoded(struct listing *l, const char *name, const struct stat *st)
{
	struct buf enc = BUF_INIT;
	int err = path_encode(&enc, name);

	if (!err)
		err = listing_add(l, buf_str(&enc), st);
	buf_release(&enc);
	return err;
}

int listing_has(const struct listing *l, const char *name)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (!strcmp(l->v[i].name, name))
			return 1;
	return 0;
}

void listing_untracked(struct listing *l)
{
	l->untracked = 1;
}

void listing_dedupe(struct listing *l)
{
	l->dedupe = 1;
}

static void listing_clear(struct listing *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i].name);
	l->n = 0;
	l->dedupe = 0;
	l->untracked = 0;
}

static int entry_cmp(const void *a, const void *b)
{
	const struct dir_entry *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	/* Files before folders of the same name. */
	return c ? c : (int)S_ISDIR(x->st.st_mode) - (int)S_ISDIR(y->st.st_mode);
}

/* Sorts the entries after "." and ".." and keeps the first of a name. */
static void do_dedupe(struct listing *l)
{
	size_t i, out = 2;

	if (l->n <= 3)
		return;
	qsort(l->v + 2, l->n - 2, sizeof(l->v[0]), entry_cmp);
	for (i = 2; i < l->n; i++) {
		if (out > 2 && !strcmp(l->v[out - 1].name, l->v[i].name)) {
			free(l->v[i].name);
			continue;
		}
		l->v[out++] = l->v[i];
	}
	l->n = out;
}

struct dir_handle *fs_dir_open(struct fs *fs, const char *path)
{
	struct dir_handle *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->path = strdup(path);
	if (!d->path) {
		free(d);
		return NULL;
	}
	d->l.path = d->path;
	pthread_mutex_init(&d->lock, NULL);
	pthread_mutex_lock(&fs->open_lock);
	d->next = fs->dirs;
	if (d->next)
		d->next->prev = d;
	fs->dirs = d;
	pthread_mutex_unlock(&fs->open_lock);
	return d;
}

int fs_dir_read(struct fs *fs, struct dir_handle *d, off_t off, void *buf, fuse_fill_dir_t filler,
		int plus, int (*fill)(struct fs *fs, const char *path, struct listing *l))
{
	enum fuse_fill_dir_flags flags = plus ? FUSE_FILL_DIR_PLUS : 0;
	struct stat st;
	int err = 0;
	size_t i;

	pthread_mutex_lock(&d->lock);
	/* A rewind (offset 0) takes a fresh listing. */
	if (!d->ready || off == 0) {
		listing_clear(&d->l);
		fs_fill_stat(fs, &st, DIR_MODE, 0, fs->mounted_ms);
		/* readdirplus passes "." and ".." with our inode number: 0 hides them. */
		st.st_ino = 1;
		err = listing_add(&d->l, ".", &st);
		if (!err)
			err = listing_add(&d->l, "..", &st);
		if (!err)
			err = fill(fs, d->path, &d->l);
		if (!err && d->l.dedupe)
			do_dedupe(&d->l);
		d->ready = !err;
	}
	/*
	 * Offsets, not the all-at-once mode: libfuse 3.14 drops readdirplus
	 * attributes given without them, and ls -l would then look up every
	 * entry again.
	 */
	for (i = (size_t)off; !err && i < d->l.n; i++) {
		if (filler(buf, d->l.v[i].name, &d->l.v[i].st, (off_t)i + 1,
			   d->l.v[i].lazy ? 0 : flags))
			break;
		if (plus && i >= 2 && !d->l.untracked && !d->l.v[i].lazy)
			fs_seen(fs, d->path, d->l.v[i].name);
	}
	pthread_mutex_unlock(&d->lock);
	return err;
}

size_t fs_dir_count(struct fs *fs)
{
	struct dir_handle *d;
	size_t n = 0;

	pthread_mutex_lock(&fs->open_lock);
	for (d = fs->dirs; d; d = d->next)
		n++;
	pthread_mutex_unlock(&fs->open_lock);
	return n;
}

void fs_dir_release(struct fs *fs, struct dir_handle *d)
{
	pthread_mutex_lock(&fs->open_lock);
	if (d->prev)
		d->prev->next = d->next;
	else
		fs->dirs = d->next;
	if (d->next)
		d->next->prev = d->prev;
	pthread_mutex_unlock(&fs->open_lock);
	listing_clear(&d->l);
	free(d->l.v);
	free(d->path);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

void fs_dir_free_all(struct fs *fs)
{
	while (fs->dirs)
		fs_dir_release(fs, fs->dirs);
}
