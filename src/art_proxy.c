/*
 * art_proxy.c - the artifacts a tracking server keeps itself (mlflow-
 * artifacts: URIs, a server started with --serve-artifacts), through its
 * proxied artifact API.  The API moves whole files: a file opened for
 * reading is downloaded into a spool file first, one written goes to a
 * spool file and is uploaded at every close and fsync (while it is
 * written, when it is written from start to end: see struct stream);
 * memory never grows with a file's size.  Folders exist on the server only with files in
 * them: one made here is kept by this mount until a file lands in it.
 * Listings are cached for cache_ttl, and dropped by this mount's changes.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "art.h"
#include "buf.h"
#include "clock.h"
#include "content.h"
#include "http.h"
#include "log.h"
#include "options.h"

#define API "/api/2.0/mlflow-artifacts/artifacts"
/* Folders whose listing is kept. */
#define LISTINGS_MAX 64

/* The copies of files kept after their last close, for another open
 * within cache_ttl: at most this many bytes on disk, none bigger than a
 * quarter of it. */
#define KEPT_MAX ((off_t)512 << 20)

/* A file written from its start to its end is sent while it is written
 * once it has this many bytes: below that, sending it at the close costs
 * less than a thread. */
#define STREAM_FROM ((off_t)8 << 20)
/* A stream that waits this long for the writer's next bytes ends, and the
 * close sends the whole file: a server's worker is not kept waiting on a
 * program that computes between its writes. */
#define STREAM_IDLE_MS 2000

struct entry {
	char *name;
	int is_dir;
	off_t size;
};

struct listing {
	char *rel; /* NULL: a free slot */
	int64_t at_ms;
	struct entry *v;
	size_t n;
};

/* A name this mount made that the server may not show yet: a folder made
 * with mkdir, or a file open for writing. */
struct pending {
	char *rel;
	struct spool *spool; /* NULL for a folder */
	struct pending *next;
};

struct proxy_repo {
	struct art_repo base;
	struct http *http;
	long ttl_ms;
	uid_t uid;
	gid_t gid;
	time_t since; /* the mount's start: the time of what has no time */
	/* The listings kept, the pending names, the round-robin slot and
	 * the upload counts: protected by lock. */
	pthread_mutex_t lock;
	struct listing listings[LISTINGS_MAX];
	size_t next_slot;
	struct pending *pending;
	uint64_t uploads, uploads_failed, downloads, streamed;
	int streaming; /* uploads running while their files are written; atomic */
	/* The copies in use (refs > 0), the copies kept after their last
	 * close (newest first) and the latter's bytes: protected by lock. */
	struct spool *live, *kept;
	off_t kept_bytes;
};

/*
 * An upload that runs while a program writes a new file from its start to
 * its end, as cp and tar do: its thread sends, in one chunked PUT, what the
 * writers have put in the spool, and waits for more until a close says the
 * file is complete; the close then waits only for the rest.  Anything else
 * (a write elsewhere, a truncation, a rename, a removal, a pause longer
 * than STREAM_IDLE_MS, a failure) cancels it, and the close sends the whole
 * file as it would without one.  The server keeps nothing of a cancelled
 * upload: it publishes a file only when its body is complete.
 */
struct stream {
	pthread_t thread;
	char *path;	   /* the API path it is sent to */
	int fd;		   /* the spool's, open while the spool lives */
	const int *gone;   /* the spool's: removed while open */
	struct http *http; /* the repository's */
	int *running;	   /* the repository's count of them */
	/* The rest is protected by lock; more is signalled when it changes. */
	pthread_mutex_t lock;
	pthread_cond_t more;
	off_t avail; /* the bytes of the spool it may send */
	off_t want;  /* what its thread waits for avail to reach */
	int ended;   /* avail is all of the file: send its end */
	int cancel;
	int done; /* the thread has finished: err and reply are its result */
	int err;
	struct http_reply reply;
};

/*
 * A file's local copy.  While a descriptor that writes a name is open, every
 * descriptor opened on that name shares its one copy, so two writers (or a
 * writer and a reader) see one file, as on a disk, and each close uploads
 * all of it.
 */
struct spool {
	char *rel;
	int fd;
	int dirty; /* written since the last upload: changed under lock, read atomically */
	int gone;  /* removed while open: never uploaded again; atomic */
	int refs;  /* the descriptors on it; protected by the repository's lock */
	pthread_mutex_t lock; /* one upload at a time; and the three below */
	/* The upload running while it is written, if any; whether one may
	 * still run (everything written so far went from the start to
	 * seq_end, with no upload since the file was empty). */
	struct stream *stream;
	int stream_ok;
	off_t seq_end;
	/* When its content was last the server's (downloaded or uploaded),
	 * 0 if never or if this mount changed the file since; atomic. */
	int64_t known_ms;
	/* Its place in the repository's live or kept list, and its size when
	 * kept: protected by the repository's lock. */
	struct spool *list_next;
	off_t kept_size;
};

struct proxy_file {
	struct art_file base;
	struct spool *sp;
	int writable;
};

static const struct art_ops proxy_ops;

static struct proxy_repo *to_proxy(struct art_repo *r)
{
	if (r->ops != &proxy_ops) {
		log_error("internal error: a %s repository passed to the proxy", r->ops->name);
		abort();
	}
	return (struct proxy_repo *)r;
}

static struct proxy_file *to_file(struct art_file *f)
{
	return (struct proxy_file *)f;
}

/* ---- paths ------------------------------------------------------------ */

/*
 * The path below the artifacts destination that loc names, without a
 * leading or trailing '/', into *out (new): mlflow-artifacts:/1/RUN/artifacts
 * (or with //HOST:PORT after the colon) and path a/b give 1/RUN/artifacts/a/b.
 * A server started with an http(s) default artifact root names the same
 * place as BASE/api/2.0/mlflow-artifacts/artifacts/1/RUN/artifacts, which
 * this mount reaches when BASE is its tracking server's: the credentials
 * are for that server alone.  Another server's URI is -ENOTSUP, and the
 * message says why.
 */
static int rel_of(struct proxy_repo *pr, const struct art_loc *loc, char **out)
{
	const char *p = strchr(loc->uri, ':'), *base = http_base(pr->http), *q;
	size_t n = strlen(base), api = strlen(API);

	*out = NULL;
	if (!p)
		return -ENOTSUP;
	for (q = loc->path; (q = strchr(q, '%')); q++) {
		/* The server decodes a name twice: a%2Fb would be stored as
		 * a/b, %2E refused.  Such a name cannot be kept as given. */
		if (isxdigit((unsigned char)q[1]) && isxdigit((unsigned char)q[2])) {
			art_set_errmsg("the server's artifact API would take '%.3s' in '%s' for "
				       "an escaped character: rename it",
				       q, loc->path);
			return -EINVAL;
		}
	}
	if (!strncasecmp(loc->uri, "http", 4)) {
		if (strncmp(loc->uri, base, n) || strncmp(loc->uri + n, API, api) ||
		    (loc->uri[n + api] && loc->uri[n + api] != '/')) {
			char *shown = options_redact_uri(loc->uri);

			art_set_errmsg("the artifacts at '%s' are not reachable: only the tracking "
				       "server's own artifact API (%s%s) is",
				       shown ? shown : "?", base, API);
			free(shown);
			return -ENOTSUP;
		}
		p = loc->uri + n + api;
	} else {
		p++;
		if (p[0] == '/' && p[1] == '/')
			p = strchrnul(p + 2, '/');
	}
	while (*p == '/')
		p++;
	if (asprintf(out, "%s%s%s", p, *p && loc->path[0] ? "/" : "", loc->path) < 0) {
		*out = NULL;
		return -ENOMEM;
	}
	n = strlen(*out);
	while (n && (*out)[n - 1] == '/')
		(*out)[--n] = '\0';
	return 0;
}

/* API + "/" + rel with each segment escaped, and query (may be ""). */
static char *api_path(const char *rel, const char *query)
{
	struct buf b = BUF_INIT;
	const char *seg = rel;
	int err = buf_adds(&b, API);

	while (!err && *seg) {
		size_t n = strcspn(seg, "/");
		char *one = strndup(seg, n), *esc = one ? http_escape(one) : NULL;

		err = esc ? buf_addf(&b, "/%s", esc) : -ENOMEM;
		free(one);
		free(esc);
		seg += n;
		while (*seg == '/')
			seg++;
	}
	if (!err)
		err = buf_adds(&b, query);
	if (err) {
		buf_release(&b);
		return NULL;
	}
	return buf_detach(&b);
}

/* The parent of rel (new, "" at the top) and its last segment (in rel). */
static char *parent_of(const char *rel, const char **name)
{
	const char *slash = strrchr(rel, '/');

	*name = slash ? slash + 1 : rel;
	return slash ? strndup(rel, (size_t)(slash - rel)) : strdup("");
}

/* ---- answers ------------------------------------------------------------ */

/* A failed answer or no answer: the errno, and the message for the log. */
static int failed(const char *what, const char *rel, int err, const struct http_reply *r)
{
	json_t *doc;
	const char *msg = NULL;
	char shown[240];

	if (err) {
		art_set_errmsg("cannot %s '%s': %s", what, rel, http_errmsg());
		return err == -ETIMEDOUT ? err : -EIO;
	}
	doc = json_loads(buf_str(&r->body), 0, NULL);
	msg = json_string_value(json_object_get(doc, "message"));
	log_escape(shown, sizeof(shown), msg ? msg : buf_str(&r->body),
		   msg ? strlen(msg) : strcspn(buf_str(&r->body), "\r\n"));
	art_set_errmsg("cannot %s '%s': HTTP %ld: %s", what, rel, r->status,
		       shown[0] ? shown : "(no message)");
	json_decref(doc);
	switch (r->status) {
	case 401:
	case 403:
		return -EACCES;
	case 404:
		return -ENOENT;
	case 400:
		return -EINVAL;
	case 501:
		return -ENOTSUP;
	default:
		return -EIO;
	}
}

/* ---- listings ------------------------------------------------------------ */

static void listing_clear(struct listing *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i].name);
	free(l->v);
	free(l->rel);
	memset(l, 0, sizeof(*l));
}

/* Drops the kept listing of rel's folder (a change of ours); lock held. */
static void forget_parent(struct proxy_repo *pr, const char *rel)
{
	const char *name;
	char *parent = parent_of(rel, &name);
	size_t i;

	for (i = 0; i < LISTINGS_MAX; i++)
		if (pr->listings[i].rel && (!parent || !strcmp(pr->listings[i].rel, parent) ||
					    !strcmp(pr->listings[i].rel, rel)))
			listing_clear(&pr->listings[i]);
	free(parent);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->name, ((const struct entry *)b)->name);
}

/* Asks the server for rel's folder into l (a zeroed struct). */
static int fetch_listing(struct proxy_repo *pr, const char *rel, struct listing *l)
{
	struct http_reply r;
	json_t *doc, *files, *o;
	char *esc = http_escape(rel), *q = NULL, *path;
	size_t i;
	int err;

	if (!esc || asprintf(&q, "?path=%s", esc) < 0) {
		free(esc);
		return -ENOMEM;
	}
	free(esc);
	path = api_path("", q);
	free(q);
	if (!path)
		return -ENOMEM;
	err = http_request(pr->http, "GET", path, NULL, HTTP_IDEMPOTENT, &r);
	free(path);
	if (err || r.status != 200) {
		err = failed("list", rel, err, &r);
		buf_release(&r.body);
		return err;
	}
	doc = json_loads(buf_str(&r.body), 0, NULL);
	buf_release(&r.body);
	files = json_object_get(doc, "files");
	l->v = calloc(json_array_size(files) + 1, sizeof(*l->v));
	l->rel = strdup(rel);
	if (!l->v || !l->rel) {
		json_decref(doc);
		listing_clear(l);
		return -ENOMEM;
	}
	json_array_foreach(files, i, o)
	{
		const char *name = json_string_value(json_object_get(o, "path"));
		const char *slash = name ? strrchr(name, '/') : NULL;

		if (slash)
			name = slash + 1; /* entry names only, but be sure */
		if (!name || !name[0])
			continue;
		l->v[l->n].name = strdup(name);
		if (!l->v[l->n].name)
			continue;
		l->v[l->n].is_dir = json_is_true(json_object_get(o, "is_dir"));
		l->v[l->n].size = (off_t)json_integer_value(json_object_get(o, "file_size"));
		l->n++;
	}
	json_decref(doc);
	qsort(l->v, l->n, sizeof(*l->v), by_name);
	l->at_ms = clock_mono_ms();
	return 0;
}

/*
 * A copy of rel's listing (the caller frees it with listing_clear): the one
 * kept if it is fresh, else a new one, kept then.
 */
static int get_listing(struct proxy_repo *pr, const char *rel, struct listing *out)
{
	struct listing fresh = { 0 };
	size_t i, j;
	int err;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&pr->lock);
	for (i = 0; i < LISTINGS_MAX; i++) {
		struct listing *l = &pr->listings[i];

		if (!l->rel || strcmp(l->rel, rel))
			continue;
		if (clock_mono_ms() - l->at_ms >= pr->ttl_ms)
			break;
		out->rel = strdup(rel);
		out->v = calloc(l->n + 1, sizeof(*out->v));
		for (j = 0; out->v && j < l->n; j++) {
			out->v[j] = l->v[j];
			out->v[j].name = strdup(l->v[j].name);
			if (out->v[j].name)
				out->n++;
		}
		pthread_mutex_unlock(&pr->lock);
		if (!out->rel || !out->v || out->n != l->n) {
			listing_clear(out);
			return -ENOMEM;
		}
		return 0;
	}
	pthread_mutex_unlock(&pr->lock);
	err = fetch_listing(pr, rel, &fresh);
	if (err)
		return err;
	*out = fresh;
	if (pr->ttl_ms <= 0)
		return 0;
	/* Keep a copy: the caller owns *out. */
	pthread_mutex_lock(&pr->lock);
	for (i = 0; i < LISTINGS_MAX; i++)
		if (pr->listings[i].rel && !strcmp(pr->listings[i].rel, rel))
			break;
	if (i == LISTINGS_MAX)
		i = pr->next_slot++ % LISTINGS_MAX;
	listing_clear(&pr->listings[i]);
	pr->listings[i].rel = strdup(rel);
	pr->listings[i].v = calloc(fresh.n + 1, sizeof(*fresh.v));
	for (j = 0; pr->listings[i].rel && pr->listings[i].v && j < fresh.n; j++) {
		pr->listings[i].v[j] = fresh.v[j];
		pr->listings[i].v[j].name = strdup(fresh.v[j].name);
		if (!pr->listings[i].v[j].name)
			break;
		pr->listings[i].n++;
	}
	if (j != fresh.n)
		listing_clear(&pr->listings[i]);
	else
		pr->listings[i].at_ms = fresh.at_ms;
	pthread_mutex_unlock(&pr->lock);
	return 0;
}

/* ---- pending names ---------------------------------------------------- */

/* Lock held. */
static struct pending *pending_find(struct proxy_repo *pr, const char *rel)
{
	struct pending *p;

	for (p = pr->pending; p; p = p->next)
		if (!strcmp(p->rel, rel))
			return p;
	return NULL;
}

/* Lock held. */
static int pending_add(struct proxy_repo *pr, const char *rel, struct spool *f)
{
	struct pending *p = calloc(1, sizeof(*p));

	if (!p || !(p->rel = strdup(rel))) {
		free(p);
		return -ENOMEM;
	}
	p->spool = f;
	p->next = pr->pending;
	pr->pending = p;
	return 0;
}

/* Removes rel's entry (the file f's, or the folder's with f NULL): whether
 * there was one; lock held. */
static int pending_drop(struct proxy_repo *pr, const char *rel, struct spool *f)
{
	struct pending **pp, *p;

	for (pp = &pr->pending; (p = *pp); pp = &p->next) {
		if (!strcmp(p->rel, rel) && p->spool == f) {
			*pp = p->next;
			free(p->rel);
			free(p);
			return 1;
		}
	}
	return 0;
}

/* Whether a pending name lies below rel; lock held. */
static int pending_below(struct proxy_repo *pr, const char *rel)
{
	size_t n = strlen(rel);
	struct pending *p;

	for (p = pr->pending; p; p = p->next)
		if (!strncmp(p->rel, rel, n) && p->rel[n] == '/')
			return 1;
	return 0;
}

/* Marks a file open here as replaced or removed: its descriptors keep
 * working on their copy, whose closes upload nothing.  Whether there was
 * one; lock held. */
static int pending_gone(struct proxy_repo *pr, const char *rel)
{
	struct pending *p, *next;
	int found = 0;

	for (p = pr->pending; p; p = next) {
		next = p->next;
		if (p->spool && !strcmp(p->rel, rel)) {
			__atomic_store_n(&p->spool->gone, 1, __ATOMIC_RELEASE);
			pending_drop(pr, rel, p->spool);
			found = 1;
		}
	}
	return found;
}

/* ---- attributes ------------------------------------------------------- */

static void fill(struct proxy_repo *pr, struct stat *st, int is_dir, off_t size)
{
	memset(st, 0, sizeof(*st));
	st->st_mode = is_dir ? S_IFDIR | 0755 : S_IFREG | 0644;
	st->st_nlink = is_dir ? 2 : 1;
	st->st_uid = pr->uid;
	st->st_gid = pr->gid;
	st->st_size = is_dir ? 0 : size;
	st->st_blksize = 4096;
	st->st_blocks = (st->st_size + 511) / 512;
	st->st_mtim.tv_sec = st->st_ctim.tv_sec = st->st_atim.tv_sec = pr->since;
}

/* The attributes of a pending name into st: 1 if there is one; lock held. */
static int pending_stat(struct proxy_repo *pr, const char *rel, struct stat *st)
{
	struct pending *p = pending_find(pr, rel);
	struct stat sp;

	if (!p)
		return 0;
	if (!p->spool) {
		fill(pr, st, 1, 0);
		return 1;
	}
	fill(pr, st, 0, fstat(p->spool->fd, &sp) ? 0 : sp.st_size);
	if (!fstat(p->spool->fd, &sp))
		st->st_mtim = st->st_ctim = sp.st_mtim;
	return 1;
}

static int stat_rel(struct proxy_repo *pr, const char *rel, struct stat *st)
{
	struct listing l;
	const char *name;
	char *parent;
	struct entry key, *e;
	int err, found;

	if (!rel[0] || !strchr(rel, '/')) {
		fill(pr, st, 1, 0); /* the destination's top: never a file */
		return 0;
	}
	pthread_mutex_lock(&pr->lock);
	found = pending_stat(pr, rel, st);
	pthread_mutex_unlock(&pr->lock);
	if (found)
		return 0;
	parent = parent_of(rel, &name);
	if (!parent)
		return -ENOMEM;
	err = get_listing(pr, parent, &l);
	free(parent);
	if (err)
		return err;
	key.name = (char *)name;
	e = bsearch(&key, l.v, l.n, sizeof(*l.v), by_name);
	if (e)
		fill(pr, st, e->is_dir, e->size);
	listing_clear(&l);
	return e ? 0 : -ENOENT;
}

static int proxy_stat(struct art_repo *r, const struct art_loc *loc, struct stat *st)
{
	char *rel;
	int err;

	err = rel_of(to_proxy(r), loc, &rel);
	if (err)
		return err;
	/* A run's root: its folder, whether or not a file is in it yet. */
	if (!loc->path[0]) {
		fill(to_proxy(r), st, 1, 0);
		free(rel);
		return 0;
	}
	err = stat_rel(to_proxy(r), rel, st);
	free(rel);
	return err;
}

static int proxy_list(struct art_repo *r, const struct art_loc *loc, art_list_cb *cb, void *ctx)
{
	struct proxy_repo *pr = to_proxy(r);
	char *rel;
	struct listing l;
	struct pending *p;
	struct stat st;
	size_t i, n;
	int err;

	err = rel_of(pr, loc, &rel);
	if (err)
		return err;
	err = get_listing(pr, rel, &l);
	for (i = 0; !err && i < l.n; i++) {
		fill(pr, &st, l.v[i].is_dir, l.v[i].size);
		err = cb(ctx, l.v[i].name, &st);
	}
	/* What this mount made and the server does not show yet. */
	n = strlen(rel);
	pthread_mutex_lock(&pr->lock);
	for (p = pr->pending; !err && p; p = p->next) {
		struct entry key;

		if (strncmp(p->rel, rel, n) || p->rel[n] != '/' || strchr(p->rel + n + 1, '/'))
			continue;
		key.name = p->rel + n + 1;
		if (bsearch(&key, l.v, l.n, sizeof(*l.v), by_name))
			continue;
		pending_stat(pr, p->rel, &st);
		err = cb(ctx, key.name, &st);
	}
	pthread_mutex_unlock(&pr->lock);
	listing_clear(&l);
	free(rel);
	return err;
}

/* ---- files ------------------------------------------------------------ */

static int download(struct proxy_repo *pr, const char *rel, int fd)
{
	struct http_reply r;
	char *path = api_path(rel, "");
	int err;

	if (!path)
		return -ENOMEM;
	err = http_get_file(pr->http, path, fd, &r);
	free(path);
	if (err || r.status != 200)
		err = failed("download", rel, err, &r);
	buf_release(&r.body);
	pthread_mutex_lock(&pr->lock);
	pr->downloads++;
	pthread_mutex_unlock(&pr->lock);
	return err;
}

/* Unlinks sp from the list at *head; lock held. */
static void list_unlink(struct spool **head, struct spool *sp)
{
	struct spool **pp;

	for (pp = head; *pp; pp = &(*pp)->list_next) {
		if (*pp == sp) {
			*pp = sp->list_next;
			sp->list_next = NULL;
			return;
		}
	}
}

/* This mount changed or removed rel: no copy of it but except's may be
 * taken for the server's any more; kept ones are freed.  Lock held. */
static void changed(struct proxy_repo *pr, const char *rel, const struct spool *except,
		    struct spool **freed)
{
	struct spool **pp, *sp;

	for (sp = pr->live; sp; sp = sp->list_next)
		if (sp != except && !strcmp(sp->rel, rel))
			__atomic_store_n(&sp->known_ms, 0, __ATOMIC_RELAXED);
	for (pp = &pr->kept; (sp = *pp);) {
		if (!strcmp(sp->rel, rel)) {
			*pp = sp->list_next;
			pr->kept_bytes -= sp->kept_size;
			sp->list_next = *freed;
			*freed = sp;
		} else {
			pp = &sp->list_next;
		}
	}
}

static void stream_off(struct spool *sp);

static void spool_free(struct spool *sp)
{
	stream_off(sp);
	if (sp->fd >= 0)
		close(sp->fd);
	pthread_mutex_destroy(&sp->lock);
	free(sp->rel);
	free(sp);
}

static void free_all(struct spool *list)
{
	struct spool *sp;

	while ((sp = list)) {
		list = sp->list_next;
		spool_free(sp);
	}
}

/* The end of a PUT of rel (err and r its result; r's body released):
 * the errno it means, counted, and what this mount knew of rel dropped;
 * from is the spool sent, if any. */
static int put_done(struct proxy_repo *pr, const char *rel, const struct spool *from, int err,
		    struct http_reply *r, int streamed)
{
	struct spool *freed = NULL;

	if (err || r->status < 200 || r->status > 299)
		err = failed("upload", rel, err, r);
	buf_release(&r->body);
	pthread_mutex_lock(&pr->lock);
	forget_parent(pr, rel);
	changed(pr, rel, from, &freed);
	if (err)
		pr->uploads_failed++;
	else
		pr->uploads++;
	pr->streamed += !err && streamed;
	pthread_mutex_unlock(&pr->lock);
	free_all(freed);
	return err;
}

/* PUTs the whole file fd as rel; from is the spool it is the copy of, if
 * any. */
static int put_file(struct proxy_repo *pr, const char *rel, int fd, const struct spool *from)
{
	struct http_reply r;
	struct stat st;
	char *path;
	int err;

	if (fstat(fd, &st))
		return -errno;
	path = api_path(rel, "");
	if (!path)
		return -ENOMEM;
	err = http_put_file(pr->http, path, fd, st.st_size, &r);
	free(path);
	return put_done(pr, rel, from, err, &r, 0);
}

/* ---- uploads while a file is written ----------------------------------- */

static int stream_stopped(void *ctx)
{
	struct stream *st = ctx;
	int stop;

	pthread_mutex_lock(&st->lock);
	stop = st->cancel || __atomic_load_n(st->gone, __ATOMIC_ACQUIRE);
	pthread_mutex_unlock(&st->lock);
	return stop;
}

/*
 * The next bytes for the request, when the writer has put them in the
 * spool: half of what libcurl asks for at least, unless the file ends
 * first, since each read is a chunk on the wire and the server pays per
 * chunk.  The wait for the writer ends after STREAM_IDLE_MS without a
 * byte.
 */
static ssize_t stream_read(void *ctx, char *buf, size_t n, off_t pos)
{
	struct stream *st = ctx;
	struct timespec until;
	off_t seen;
	ssize_t got;

	pthread_mutex_lock(&st->lock);
	seen = st->avail;
	clock_deadline(CLOCK_MONOTONIC, STREAM_IDLE_MS, &until);
	st->want = pos + (off_t)(n / 2 ? n / 2 : 1);
	for (;;) {
		if (st->cancel || __atomic_load_n(st->gone, __ATOMIC_ACQUIRE)) {
			pthread_mutex_unlock(&st->lock);
			return -ECANCELED;
		}
		if (st->avail >= st->want || (st->ended && pos < st->avail))
			break;
		if (st->ended) {
			pthread_mutex_unlock(&st->lock);
			return 0;
		}
		if (st->avail > seen) {
			seen = st->avail;
			clock_deadline(CLOCK_MONOTONIC, STREAM_IDLE_MS, &until);
		}
		if (pthread_cond_timedwait(&st->more, &st->lock, &until) == ETIMEDOUT &&
		    st->avail == seen && !st->ended) {
			st->cancel = 1;
			pthread_mutex_unlock(&st->lock);
			log_debug("artifacts: %s: the writer paused; it is sent whole at its close",
				  st->path);
			return -ECANCELED;
		}
	}
	if ((off_t)n > st->avail - pos)
		n = (size_t)(st->avail - pos);
	pthread_mutex_unlock(&st->lock);
	/* Bytes below avail change only after a cancel, which discards them. */
	got = pread(st->fd, buf, n, pos);
	return got < 0 ? -errno : got ? got : -EIO;
}

static void *stream_main(void *arg)
{
	struct stream *st = arg;
	const struct http_source src = { stream_read, stream_stopped, st };
	struct http_reply r;
	int err = http_put_stream(st->http, st->path, &src, &r);

	pthread_mutex_lock(&st->lock);
	st->err = err;
	st->reply = r;
	st->done = 1;
	pthread_mutex_unlock(&st->lock);
	__atomic_sub_fetch(st->running, 1, __ATOMIC_RELAXED);
	return NULL;
}

/* Starts sending sp's first seq_end bytes and what follows them; sp's
 * lock held.  Without a thread, the close sends the file as before. */
static void stream_start(struct proxy_repo *pr, struct spool *sp)
{
	struct stream *st = calloc(1, sizeof(*st));
	pthread_condattr_t attr;

	sp->stream_ok = 0;
	if (!st || !(st->path = api_path(sp->rel, ""))) {
		free(st);
		return;
	}
	st->fd = sp->fd;
	st->gone = &sp->gone;
	st->http = pr->http;
	st->running = &pr->streaming;
	st->avail = sp->seq_end;
	pthread_mutex_init(&st->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&st->more, &attr);
	pthread_condattr_destroy(&attr);
	__atomic_add_fetch(st->running, 1, __ATOMIC_RELAXED);
	if (pthread_create(&st->thread, NULL, stream_main, st)) {
		__atomic_sub_fetch(st->running, 1, __ATOMIC_RELAXED);
		pthread_cond_destroy(&st->more);
		pthread_mutex_destroy(&st->lock);
		free(st->path);
		free(st);
		return;
	}
	sp->stream = st;
	sp->stream_ok = 1;
}

/* Tells sp's stream that the file ends at avail (ended) or that it is to
 * stop; sp's lock held. */
static void stream_tell(struct spool *sp, off_t avail, int ended, int cancel)
{
	struct stream *st = sp->stream;

	if (!st)
		return;
	pthread_mutex_lock(&st->lock);
	st->avail = avail;
	st->ended |= ended;
	st->cancel |= cancel;
	/* Not at every write: the thread waits for a chunk's worth. */
	if (ended || cancel || avail >= st->want)
		pthread_cond_broadcast(&st->more);
	pthread_mutex_unlock(&st->lock);
}

/* Waits for sp's stream to end, and frees it; sp's lock held.  Returns
 * whether it sent all of the file, with *err and *r its result. */
static int stream_join(struct spool *sp, int *err, struct http_reply *r)
{
	struct stream *st = sp->stream;
	int whole;

	sp->stream = NULL;
	pthread_join(st->thread, NULL);
	whole = st->ended && !st->cancel && st->err != -ECANCELED;
	*err = st->err;
	*r = st->reply;
	if (!whole)
		buf_release(&r->body);
	pthread_cond_destroy(&st->more);
	pthread_mutex_destroy(&st->lock);
	free(st->path);
	free(st);
	return whole;
}

/* No more uploads while sp is written: a running one stops; sp's lock
 * held. */
static void stream_off(struct spool *sp)
{
	struct http_reply r;
	int err;

	sp->stream_ok = 0;
	if (sp->stream) {
		stream_tell(sp, 0, 0, 1);
		stream_join(sp, &err, &r);
	}
}

/* A writer put n bytes at off; sp's lock held. */
static void stream_wrote(struct proxy_repo *pr, struct spool *sp, off_t off, size_t n)
{
	if (!sp->stream_ok)
		return;
	if (off != sp->seq_end || __atomic_load_n(&sp->gone, __ATOMIC_ACQUIRE)) {
		/* Not joined here: the writer does not wait for the server. */
		sp->stream_ok = 0;
		stream_tell(sp, sp->seq_end, 0, 1);
		return;
	}
	sp->seq_end += (off_t)n;
	if (sp->stream)
		stream_tell(sp, sp->seq_end, 0, 0);
	else if (sp->seq_end >= STREAM_FROM)
		stream_start(pr, sp);
}

/*
 * The close of a file a stream was sending; sp's lock held.  The stream
 * ends with the file when it has all of it, and its result is the
 * upload's; else it stops, and 1 says to send the whole file.
 */
static int stream_finish(struct proxy_repo *pr, struct spool *sp)
{
	struct stream *s = sp->stream;
	struct http_reply r;
	struct stat st;
	int err, all = sp->stream_ok && !fstat(sp->fd, &st) && st.st_size == sp->seq_end;

	/* One that failed before this close is not trusted with the file:
	 * the server may be back by now, and a whole upload retries anew. */
	pthread_mutex_lock(&s->lock);
	all = all && !s->done;
	pthread_mutex_unlock(&s->lock);
	stream_tell(sp, sp->seq_end, all, !all);
	sp->stream_ok = 0;
	if (!stream_join(sp, &err, &r))
		return 1;
	return put_done(pr, sp->rel, sp, err, &r, 1);
}

/* The spool's content to the server; its lock held. */
static int upload(struct proxy_repo *pr, struct spool *f)
{
	int err = put_file(pr, f->rel, f->fd, f);

	if (!err)
		__atomic_store_n(&f->known_ms, clock_mono_ms(), __ATOMIC_RELAXED);
	return err;
}

/* A reference to rel's shared spool, if a writer has one; lock not held. */
static struct spool *spool_shared(struct proxy_repo *pr, const char *rel)
{
	struct pending *p;
	struct spool *sp = NULL;

	pthread_mutex_lock(&pr->lock);
	p = pending_find(pr, rel);
	if (p && p->spool) {
		sp = p->spool;
		sp->refs++;
	}
	pthread_mutex_unlock(&pr->lock);
	return sp;
}

/* Takes rel's kept copy back into use if it is younger than cache_ttl
 * (a stale one is freed); NULL if there is none.  Lock not held. */
static struct spool *kept_take(struct proxy_repo *pr, const char *rel)
{
	struct spool **pp, *sp;
	int fresh = 0;

	pthread_mutex_lock(&pr->lock);
	for (pp = &pr->kept; (sp = *pp); pp = &sp->list_next) {
		if (!strcmp(sp->rel, rel)) {
			*pp = sp->list_next;
			pr->kept_bytes -= sp->kept_size;
			fresh = clock_mono_ms() - __atomic_load_n(&sp->known_ms, __ATOMIC_RELAXED) <
				pr->ttl_ms;
			if (fresh) {
				sp->refs = 1;
				sp->list_next = pr->live;
				pr->live = sp;
			}
			break;
		}
	}
	pthread_mutex_unlock(&pr->lock);
	if (sp && !fresh) {
		spool_free(sp);
		sp = NULL;
	}
	return sp;
}

/*
 * Drops a reference.  The last one drops the name's entry, and keeps the
 * copy for the next open within cache_ttl if it is the server's file
 * (newest first; the oldest go when the bytes pass KEPT_MAX), else frees
 * it.
 */
static void spool_put(struct proxy_repo *pr, struct spool *sp)
{
	struct spool *evicted = NULL, **pp, *e;
	struct stat st;
	int last, keep = 0;

	pthread_mutex_lock(&pr->lock);
	last = !--sp->refs;
	if (last) {
		/* A writer's name leaves the pending ones: the listing of
		 * its folder is asked again.  A reader's close keeps it. */
		if (pending_drop(pr, sp->rel, sp))
			forget_parent(pr, sp->rel);
		list_unlink(&pr->live, sp);
		/* No descriptor is left to change it; known_ms is read under
		 * the lock, which changed() holds to clear it. */
		keep = __atomic_load_n(&sp->known_ms, __ATOMIC_RELAXED) &&
		       !__atomic_load_n(&sp->dirty, __ATOMIC_RELAXED) &&
		       !__atomic_load_n(&sp->gone, __ATOMIC_ACQUIRE) && sp->fd >= 0 &&
		       !fstat(sp->fd, &st) && st.st_size <= KEPT_MAX / 4;
	}
	if (last && keep) {
		sp->kept_size = st.st_size;
		sp->list_next = pr->kept;
		pr->kept = sp;
		pr->kept_bytes += st.st_size;
		/* The oldest go first: they are at the end. */
		while (pr->kept_bytes > KEPT_MAX) {
			for (pp = &pr->kept; (*pp)->list_next; pp = &(*pp)->list_next)
				;
			e = *pp;
			*pp = NULL;
			pr->kept_bytes -= e->kept_size;
			e->list_next = evicted;
			evicted = e;
		}
	}
	pthread_mutex_unlock(&pr->lock);
	free_all(evicted);
	if (last && !keep)
		spool_free(sp);
}

/* A new spool of rel (taken) with the server's copy in it, if kept; NULL
 * and *err on failure. */
static struct spool *spool_new(struct proxy_repo *pr, char *rel, int download_it, int *err)
{
	struct spool *sp = calloc(1, sizeof(*sp));

	if (!sp) {
		free(rel);
		*err = -ENOMEM;
		return NULL;
	}
	sp->rel = rel;
	sp->refs = 1;
	pthread_mutex_init(&sp->lock, NULL);
	pthread_mutex_lock(&pr->lock);
	sp->list_next = pr->live;
	pr->live = sp;
	pthread_mutex_unlock(&pr->lock);
	sp->fd = content_tmpfile();
	*err = 0;
	if (sp->fd < 0) {
		*err = sp->fd;
		art_set_errmsg("no room for a spool file of '%s'", rel);
	} else if (download_it) {
		/* Whole files only: what is kept must be here before it changes. */
		*err = download(pr, rel, sp->fd);
		if (!*err)
			__atomic_store_n(&sp->known_ms, clock_mono_ms(), __ATOMIC_RELAXED);
	}
	if (*err) {
		spool_put(pr, sp);
		return NULL;
	}
	return sp;
}

/*
 * Makes mine, a copy of a name opened for writing, the name's spool, unless
 * another writer's came first: then that one, and mine is dropped.  NULL
 * and *err on failure (mine dropped).
 */
static struct spool *spool_register(struct proxy_repo *pr, struct spool *mine, int *err)
{
	struct pending *p;
	struct spool *sp = mine;

	pthread_mutex_lock(&pr->lock);
	p = pending_find(pr, mine->rel);
	if (p && p->spool) {
		sp = p->spool;
		sp->refs++;
		*err = 0;
	} else {
		*err = pending_add(pr, mine->rel, mine);
	}
	pthread_mutex_unlock(&pr->lock);
	if (sp != mine || *err)
		spool_put(pr, mine);
	return *err ? NULL : sp;
}

static int proxy_open(struct art_repo *r, const struct art_loc *loc, int flags, mode_t mode,
		      const struct art_caller *c, struct art_file **out)
{
	struct proxy_repo *pr = to_proxy(r);
	struct proxy_file *f;
	struct spool *sp;
	struct stat st;
	char *rel;
	int err, exists, writable = (flags & O_ACCMODE) != O_RDONLY;
	int trunc = writable && (flags & O_TRUNC);

	(void)mode;
	(void)c;
	err = rel_of(pr, loc, &rel);
	if (err)
		return err;
	f = calloc(1, sizeof(*f));
	if (!f) {
		free(rel);
		return -ENOMEM;
	}
	f->base.repo = r;
	f->writable = writable;
	sp = spool_shared(pr, rel);
	if (!sp && (sp = kept_take(pr, rel)) && writable) {
		/* A kept copy opened for writing is the name's spool now. */
		sp = spool_register(pr, sp, &err);
		if (!sp) {
			free(rel);
			goto fail;
		}
	}
	if (sp) {
		free(rel);
		if ((flags & O_CREAT) && (flags & O_EXCL)) {
			spool_put(pr, sp);
			err = -EEXIST;
			goto fail;
		}
	} else {
		err = stat_rel(pr, rel, &st);
		exists = !err;
		if (err && err != -ENOENT) {
			free(rel);
			goto fail;
		}
		err = 0;
		if (exists && S_ISDIR(st.st_mode))
			err = -EISDIR;
		else if (exists && (flags & O_CREAT) && (flags & O_EXCL))
			err = -EEXIST;
		else if (!exists && !(flags & O_CREAT))
			err = -ENOENT;
		if (err) {
			free(rel);
			goto fail;
		}
		sp = spool_new(pr, rel, exists && !trunc && st.st_size > 0, &err);
		if (!sp)
			goto fail;
		__atomic_store_n(&sp->dirty, !exists, __ATOMIC_RELAXED);
		/* Empty: its writer may send it while writing. */
		sp->stream_ok = writable && (!exists || trunc || !st.st_size);
		if (writable) {
			sp = spool_register(pr, sp, &err);
			if (!sp)
				goto fail;
		}
	}
	f->sp = sp;
	if (trunc) {
		pthread_mutex_lock(&sp->lock);
		stream_off(sp);
		if (ftruncate(sp->fd, 0)) {
			err = -errno;
		} else {
			__atomic_store_n(&sp->dirty, 1, __ATOMIC_RELAXED);
			sp->stream_ok = 1;
			sp->seq_end = 0;
		}
		pthread_mutex_unlock(&sp->lock);
		if (err) {
			spool_put(pr, sp);
			goto fail;
		}
	}
	*out = &f->base;
	return 0;
fail:
	free(f);
	return err;
}

static ssize_t proxy_read(struct art_file *af, void *buf, size_t size, off_t off)
{
	ssize_t n = pread(to_file(af)->sp->fd, buf, size, off);

	return n < 0 ? -errno : n;
}

static ssize_t proxy_write(struct art_file *af, const void *buf, size_t size, off_t off)
{
	struct proxy_file *f = to_file(af);
	ssize_t n;

	if (!f->writable)
		return -EBADF;
	n = pwrite(f->sp->fd, buf, size, off);
	if (n < 0)
		return -errno;
	pthread_mutex_lock(&f->sp->lock);
	__atomic_store_n(&f->sp->dirty, 1, __ATOMIC_RELAXED);
	stream_wrote(to_proxy(af->repo), f->sp, off, (size_t)n);
	pthread_mutex_unlock(&f->sp->lock);
	return n;
}

static int proxy_fstat(struct art_file *af, struct stat *st)
{
	struct proxy_file *f = to_file(af);
	struct stat sp;

	if (fstat(f->sp->fd, &sp))
		return -errno;
	fill(to_proxy(af->repo), st, 0, sp.st_size);
	st->st_mtim = st->st_ctim = sp.st_mtim;
	return 0;
}

static int proxy_ftruncate(struct art_file *af, off_t size)
{
	struct proxy_file *f = to_file(af);

	if (!f->writable)
		return -EBADF;
	pthread_mutex_lock(&f->sp->lock);
	stream_off(f->sp);
	if (ftruncate(f->sp->fd, size)) {
		pthread_mutex_unlock(&f->sp->lock);
		return -errno;
	}
	__atomic_store_n(&f->sp->dirty, 1, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&f->sp->lock);
	return 0;
}

/* Uploads what changed: the server has the file when this returns 0. */
static int proxy_sync(struct art_file *af, enum art_sync how)
{
	struct spool *sp = to_file(af)->sp;
	int err = 0;

	(void)how; /* the server decides how safe its copy is */
	pthread_mutex_lock(&sp->lock);
	if (__atomic_load_n(&sp->dirty, __ATOMIC_RELAXED) &&
	    !__atomic_load_n(&sp->gone, __ATOMIC_ACQUIRE)) {
		err = sp->stream ? stream_finish(to_proxy(af->repo), sp) : 1;
		if (!err)
			__atomic_store_n(&sp->known_ms, clock_mono_ms(), __ATOMIC_RELAXED);
		else if (err > 0)
			err = upload(to_proxy(af->repo), sp);
		if (!err)
			__atomic_store_n(&sp->dirty, 0, __ATOMIC_RELAXED);
	}
	/* What is written after this is sent whole, at the next close. */
	stream_off(sp);
	pthread_mutex_unlock(&sp->lock);
	return err;
}

static int proxy_close(struct art_file *af)
{
	struct proxy_file *f = to_file(af);

	spool_put(to_proxy(af->repo), f->sp);
	free(f);
	return 0;
}

static int proxy_truncate(struct art_repo *r, const struct art_loc *loc, off_t size)
{
	struct art_file *f;
	int err = proxy_open(r, loc, O_RDWR, 0, NULL, &f);

	if (err)
		return err;
	err = proxy_ftruncate(f, size);
	if (!err)
		err = proxy_sync(f, ART_SYNC_CLOSE);
	proxy_close(f);
	return err;
}

/* The server keeps no modes and no times: a change is accepted, and what
 * stat shows stays as it was (mlflowfs(1), REMOTE STORE). */
static int proxy_chmod(struct art_repo *r, const struct art_loc *loc, struct art_file *f,
		       mode_t mode)
{
	struct stat st;

	(void)mode;
	return f ? 0 : proxy_stat(r, loc, &st);
}

static int proxy_utimens(struct art_repo *r, const struct art_loc *loc, struct art_file *f,
			 const struct timespec tv[2])
{
	struct stat st;

	(void)tv;
	return f ? 0 : proxy_stat(r, loc, &st);
}

/* ---- names ------------------------------------------------------------ */

static int proxy_mkdir(struct art_repo *r, const struct art_loc *loc, mode_t mode,
		       const struct art_caller *c)
{
	struct proxy_repo *pr = to_proxy(r);
	struct stat st;
	char *rel;
	int err;

	(void)mode;
	(void)c;
	err = rel_of(pr, loc, &rel);
	if (err)
		return err;
	err = loc->path[0] ? stat_rel(pr, rel, &st) : 0;
	if (!err)
		err = -EEXIST;
	else if (err == -ENOENT) {
		pthread_mutex_lock(&pr->lock);
		err = pending_add(pr, rel, NULL);
		pthread_mutex_unlock(&pr->lock);
	}
	free(rel);
	return err;
}

static int delete_rel(struct proxy_repo *pr, const char *rel)
{
	struct spool *freed = NULL;
	struct http_reply r;
	char *path = api_path(rel, "");
	int err;

	if (!path)
		return -ENOMEM;
	/* Sent twice, a delete finds nothing the second time: done then. */
	err = http_request(pr->http, "DELETE", path, NULL, HTTP_IDEMPOTENT, &r);
	free(path);
	if (!err && r.tries > 1 && r.status == 404)
		r.status = 200;
	if (err || r.status < 200 || r.status > 299)
		err = failed("delete", rel, err, &r);
	buf_release(&r.body);
	pthread_mutex_lock(&pr->lock);
	forget_parent(pr, rel);
	changed(pr, rel, NULL, &freed);
	pthread_mutex_unlock(&pr->lock);
	free_all(freed);
	return err;
}

static int proxy_remove(struct art_repo *r, const struct art_loc *loc, int dir)
{
	struct proxy_repo *pr = to_proxy(r);
	char *rel;
	struct listing l;
	struct stat st;
	int err, only_here = 0;

	err = rel_of(pr, loc, &rel);
	if (err)
		return err;
	err = stat_rel(pr, rel, &st);
	if (!err && !dir && S_ISDIR(st.st_mode))
		err = -EISDIR;
	else if (!err && dir && !S_ISDIR(st.st_mode))
		err = -ENOTDIR;
	if (!err && dir) {
		pthread_mutex_lock(&pr->lock);
		if (pending_below(pr, rel)) {
			err = -ENOTEMPTY;
		} else if (pending_find(pr, rel)) {
			pending_drop(pr, rel, NULL);
			only_here = 1;
		}
		pthread_mutex_unlock(&pr->lock);
		if (!err && !get_listing(pr, rel, &l)) {
			err = l.n ? -ENOTEMPTY : 0;
			listing_clear(&l);
		}
		/* A folder made here may be on the server by now, with the files
		 * once put in it: an empty folder there stays listed until it
		 * is deleted too, so the delete below is sent either way. */
	}
	if (!err && !dir) {
		/* A file removed while open stays removed: its close uploads
		 * nothing (the caller keeps reading and writing its spool). */
		pthread_mutex_lock(&pr->lock);
		only_here = pending_gone(pr, rel);
		pthread_mutex_unlock(&pr->lock);
	}
	if (!err)
		err = delete_rel(pr, rel);
	/* Made here and never uploaded: the server had nothing to delete. */
	if (err == -ENOENT && only_here)
		err = 0;
	free(rel);
	return err;
}

/*
 * The API has no rename, so a file's is a copy and a delete: the file is
 * uploaded under its new name (from the copy of a descriptor open on it, or
 * downloaded into a temporary file first), then deleted under the old one;
 * descriptors open on it follow it.  Programs that save a file under a
 * temporary name and rename it over the old one (checkpoints, rsync, most
 * editors) work so.  Not atomic on the server: another client may see both
 * names for a moment, or an error if this mount fails between the two.  A
 * folder is -EXDEV: mv then copies and removes it file by file.
 */
static int proxy_rename(struct art_repo *r, const struct art_loc *from, const struct art_loc *to,
			unsigned int flags)
{
	struct proxy_repo *pr = to_proxy(r);
	char *src = NULL, *dst = NULL, *moved = NULL, *entry = NULL;
	struct spool *sp = NULL;
	struct stat st, dst_st;
	int err, shared = 0;

	if (flags & RENAME_EXCHANGE) {
		art_set_errmsg("the server's artifact API cannot swap two files");
		return -EINVAL;
	}
	err = rel_of(pr, from, &src);
	if (!err)
		err = rel_of(pr, to, &dst);
	if (!err)
		err = stat_rel(pr, src, &st);
	if (!err && S_ISDIR(st.st_mode)) {
		art_set_errmsg("the server's artifact API cannot rename a folder: copy and remove "
			       "it instead");
		err = -EXDEV;
	}
	if (err)
		goto out;
	err = stat_rel(pr, dst, &dst_st);
	if (!err)
		err = (flags & RENAME_NOREPLACE) ? -EEXIST : S_ISDIR(dst_st.st_mode) ? -EISDIR : 0;
	else if (err == -ENOENT)
		err = 0;
	if (err || !strcmp(src, dst))
		goto out;
	sp = spool_shared(pr, src);
	shared = sp != NULL;
	/* A file just written and closed is usually still here. */
	if (!sp)
		sp = kept_take(pr, src);
	if (!sp) {
		char *copy = strdup(src);

		sp = copy ? spool_new(pr, copy, st.st_size > 0, &err) : NULL;
		if (!sp) {
			err = copy ? err : -ENOMEM;
			goto out;
		}
	}
	/* New names for the spool and its entry: it follows the file. */
	moved = strdup(dst);
	entry = strdup(dst);
	err = moved && entry ? 0 : -ENOMEM;
	pthread_mutex_lock(&sp->lock);
	stream_off(sp);
	if (!err)
		err = put_file(pr, dst, sp->fd, sp);
	if (!err) {
		err = delete_rel(pr, src);
		/* A file open here that was never uploaded: nothing to delete. */
		if (err == -ENOENT && shared)
			err = 0;
	}
	if (!err) {
		struct pending *p;

		pthread_mutex_lock(&pr->lock);
		pending_gone(pr, dst);
		for (p = pr->pending; shared && p; p = p->next) {
			if (p->spool == sp) {
				free(p->rel);
				p->rel = entry;
				entry = NULL;
				break;
			}
		}
		free(sp->rel);
		sp->rel = moved;
		moved = NULL;
		/* All of it is the server's now, under the new name. */
		__atomic_store_n(&sp->dirty, 0, __ATOMIC_RELAXED);
		__atomic_store_n(&sp->known_ms, clock_mono_ms(), __ATOMIC_RELAXED);
		pthread_mutex_unlock(&pr->lock);
	}
	pthread_mutex_unlock(&sp->lock);
	spool_put(pr, sp);
out:
	free(moved);
	free(entry);
	free(src);
	free(dst);
	return err;
}

static int proxy_access(struct art_repo *r, const struct art_loc *loc, int mask)
{
	struct stat st;
	int err = proxy_stat(r, loc, &st);

	if (!err && (mask & X_OK) && !S_ISDIR(st.st_mode))
		err = -EACCES;
	return err;
}

/* What waits to be uploaded, what was, and what is kept: for
 * .mlflowfs/status. */
static int proxy_describe(struct art_repo *r, struct buf *out)
{
	struct proxy_repo *pr = to_proxy(r);
	struct http_stats st;
	struct pending *p;
	struct spool *sp;
	size_t waiting = 0, kept = 0;
	uint64_t done, streamed, failed_uploads, downloads;
	off_t kept_bytes;

	http_get_stats(pr->http, &st);
	pthread_mutex_lock(&pr->lock);
	for (p = pr->pending; p; p = p->next)
		waiting += p->spool && __atomic_load_n(&p->spool->dirty, __ATOMIC_RELAXED);
	for (sp = pr->kept; sp; sp = sp->list_next)
		kept++;
	done = pr->uploads;
	streamed = pr->streamed;
	failed_uploads = pr->uploads_failed;
	downloads = pr->downloads;
	kept_bytes = pr->kept_bytes;
	pthread_mutex_unlock(&pr->lock);
	return buf_addf(out,
			"pending_uploads: %zu\n"
			"uploads: %llu\n"
			"uploads_streaming: %d\n"
			"uploads_streamed: %llu\n"
			"uploads_failed: %llu\n"
			"downloads: %llu\n"
			"kept_files: %zu (%lld bytes)\n"
			"artifact_requests: %llu\n"
			"artifact_retries: %llu\n"
			"artifact_failed_requests: %llu\n",
			waiting, (unsigned long long)done,
			__atomic_load_n(&pr->streaming, __ATOMIC_RELAXED),
			(unsigned long long)streamed, (unsigned long long)failed_uploads,
			(unsigned long long)downloads, kept, (long long)kept_bytes,
			(unsigned long long)st.requests, (unsigned long long)st.retries,
			(unsigned long long)st.failures);
}

static void proxy_free(struct art_repo *r)
{
	struct proxy_repo *pr = to_proxy(r);
	struct pending *p, *next;
	size_t i;

	for (i = 0; i < LISTINGS_MAX; i++)
		listing_clear(&pr->listings[i]);
	for (p = pr->pending; p; p = next) {
		next = p->next;
		free(p->rel);
		free(p);
	}
	free_all(pr->kept);
	pthread_mutex_destroy(&pr->lock);
	http_free(pr->http);
	free(pr);
}

static const struct art_ops proxy_ops = {
	.name = "mlflow-artifacts",
	.stat = proxy_stat,
	.list = proxy_list,
	.open = proxy_open,
	.read = proxy_read,
	.write = proxy_write,
	.fstat = proxy_fstat,
	.ftruncate = proxy_ftruncate,
	.sync = proxy_sync,
	.close = proxy_close,
	.truncate = proxy_truncate,
	.chmod = proxy_chmod,
	.utimens = proxy_utimens,
	.mkdir = proxy_mkdir,
	.remove = proxy_remove,
	.rename = proxy_rename,
	.access = proxy_access,
	.describe = proxy_describe,
	.free = proxy_free,
};

struct art_repo *art_proxy_new(const struct mfs_config *cfg)
{
	struct proxy_repo *pr = calloc(1, sizeof(*pr));
	char *msg = NULL;

	if (!pr)
		return NULL;
	pr->http = http_for_tracking_uri(cfg->tracking_uri, &msg);
	if (!pr->http) {
		log_error("cannot reach the server's artifacts: %s", msg ? msg : "out of memory");
		free(msg);
		free(pr);
		return NULL;
	}
	pr->base.ops = &proxy_ops;
	pr->ttl_ms = (long)(cfg->cache_ttl * 1000);
	pr->uid = getuid();
	pr->gid = getgid();
	pr->since = time(NULL);
	pthread_mutex_init(&pr->lock, NULL);
	return &pr->base;
}
