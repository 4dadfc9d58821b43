/*
 * fs_watch.c - other writers' changes in stat().  The kernel caches the
 * attributes getattr and readdirplus answer for a second (never 0: see
 * fs_init).  Reads of virtual files always ask the store, but stat() would
 * show a size or a run that another client changed meanwhile.  So the paths
 * answered in the last second are remembered, and when another client
 * commits (the store's others_version moves) the kernel is told to forget
 * their attributes: stat() shows the change within about WATCH_MS.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "fs-internal.h"
#include "fs.h"
#include "log.h"

/* How often the store is asked whether another client committed. */
#define WATCH_MS 50
/* The kernel's attribute cache (fs_init), with a margin. */
#define SEEN_WINDOW_MS 1200

void fs_seen(struct fs *fs, const char *dir, const char *name)
{
	struct fs_seen *e;
	char *path;

	if (name) {
		if (asprintf(&path, "%s/%s", strcmp(dir, "/") ? dir : "", name) < 0)
			return;
	} else {
		path = strdup(dir);
		if (!path)
			return;
	}
	pthread_mutex_lock(&fs->seen_lock);
	e = &fs->seen[fs->seen_next++ % FS_SEEN_MAX];
	free(e->path);
	e->path = path;
	e->ms = fs_now_ms();
	pthread_mutex_unlock(&fs->seen_lock);
}

/* Tells the kernel to forget the attributes of every path seen lately. */
static void forget_seen(struct fs *fs)
{
	int64_t since = fs_now_ms() - SEEN_WINDOW_MS;
	char **paths = calloc(FS_SEEN_MAX, sizeof(*paths));
	size_t i, n = 0;

	if (!paths)
		return;
	pthread_mutex_lock(&fs->seen_lock);
	for (i = 0; i < FS_SEEN_MAX; i++) {
		struct fs_seen *e = &fs->seen[i];

		if (e->path && e->ms >= since) {
			paths[n++] = e->path;
			e->path = NULL;
		}
	}
	pthread_mutex_unlock(&fs->seen_lock);
	/* Outside the lock: a notification may wait on a request in flight. */
	for (i = 0; i < n; i++) {
		fuse_invalidate_path(fs->fuse, paths[i]);
		free(paths[i]);
	}
	free(paths);
}

static void *watch_main(void *arg)
{
	struct fs *fs = arg;
	uint64_t last = 0, now = 0;
	struct timespec due;
	int err;

	if (store_others_version(fs->store, &last) == -ENOSYS)
		return NULL; /* nothing tells: the kernel's second is the bound */
	pthread_mutex_lock(&fs->watch_lock);
	while (!fs->watch_stop) {
		clock_deadline(CLOCK_MONOTONIC, WATCH_MS, &due);
		pthread_cond_timedwait(&fs->watch_wake, &fs->watch_lock, &due);
		if (fs->watch_stop)
			break;
		pthread_mutex_unlock(&fs->watch_lock);
		/* -EAGAIN: another program holds the lock and is writing. */
		err = store_others_version(fs->store, &now);
		if (err || now != last) {
			last = now;
			forget_seen(fs);
		}
		pthread_mutex_lock(&fs->watch_lock);
	}
	pthread_mutex_unlock(&fs->watch_lock);
	return NULL;
}

void fs_watch_start(struct fs *fs, struct fuse *f)
{
	pthread_condattr_t ca;

	fs->fuse = f;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&fs->watch_wake, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&fs->watcher, NULL, watch_main, fs)) {
		log_warn("cannot start the watcher: stat() may show other clients' "
			 "changes a second late");
		pthread_cond_destroy(&fs->watch_wake);
		return;
	}
	fs->watching = 1;
}

void fs_stop(struct fs *fs)
{
	size_t i;

	if (fs->watching) {
		pthread_mutex_lock(&fs->watch_lock);
		fs->watch_stop = 1;
		pthread_cond_signal(&fs->watch_wake);
		pthread_mutex_unlock(&fs->watch_lock);
		pthread_join(fs->watcher, NULL);
		pthread_cond_destroy(&fs->watch_wake);
		fs->watching = 0;
	}
	for (i = 0; i < FS_SEEN_MAX; i++) {
		free(fs->seen[i].path);
		fs->seen[i].path = NULL;
	}
}
