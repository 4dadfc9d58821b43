/*
 * unit-store.c - the local (SQLite) store through the public API of store.h,
 * wrapped in the cache as the daemon uses it: opening, creating and refusing
 * databases, experiments, runs and their folder names, run snapshots,
 * params, tags, metrics with MLflow's latest-value rules, step reservations,
 * history sizes, deletes, write batches and their commits (a failed commit
 * fails only the batches that wrote into it), reads while another program
 * holds the write lock, artifact folders, the registry and its writes, and the
 * store used from several threads at once.  A few cases ask the bare backend
 * under the cache, where its own answers matter.  A second sqlite3
 * connection plays the other program on the same file: it checks the raw
 * rows MLflow would read and inserts rows the way MLflow would write them.
 * Each case group works in its own temporary folder, removed at the end.
 */
#include <errno.h>
#include <float.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cache.h"
#include "metric.h"
#include "options.h"
#include "schema.h"
#include "store.h"
#include "tap.h"

/*
 * Leak checks.  Under AddressSanitizer a leak found in the store must not end
 * the run (LeakSanitizer would fail the whole binary), so the calls known to
 * leak run with leak reporting off, and the test measures the heap instead.
 */
#if defined(__SANITIZE_ADDRESS__)
#define UNIT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNIT_ASAN 1
#endif
#endif

#ifdef UNIT_ASAN
#include <sanitizer/lsan_interface.h>
/* In the sanitizer runtime; its header is not shipped with every compiler. */
size_t __sanitizer_get_current_allocated_bytes(void);

static size_t heap_in_use(void)
{
	return __sanitizer_get_current_allocated_bytes();
}

static void leak_reports(int on)
{
	if (on)
		__lsan_enable();
	else
		__lsan_disable();
}
#else
#include <malloc.h>

static size_t heap_in_use(void)
{
	return mallinfo2().uordblks;
}

static void leak_reports(int on)
{
	(void)on;
}
#endif

/* ---- helpers --------------------------------------------------------- */

/* A new string, or NULL when out of memory. */
__attribute__((format(printf, 1, 2))) static char *strf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs are ordered by start time in milliseconds: tests that need "older"
 * to mean something sleep between creations. */
static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		continue;
}

static int is_run_id(const char *s)
{
	size_t i;

	for (i = 0; i < 32; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[32] == '\0';
}

/* A point as a "VALUE" line gives it: no step, no time. */
static struct metric_point pt(double value)
{
	struct metric_point p = { .value = value };

	return p;
}

static struct metric_point pt_at(int64_t step, double value, int64_t timestamp)
{
	struct metric_point p = { .value = value,
				  .step = step,
				  .timestamp = timestamp,
				  .has_step = 1,
				  .has_timestamp = 1 };

	return p;
}

static struct metric_point pt_step(int64_t step, double value)
{
	struct metric_point p = { .value = value, .step = step, .has_step = 1 };

	return p;
}

/*
 * Logs n points as a write() of metric lines does (fs_file.c): a point
 * without a time gets now; each run of points without a step gets steps
 * reserved at once, at least one more than the explicit steps before it in
 * the call (INT64_MIN: none).  Steps and times are written back into pts.
 */
static int log_auto(struct store *s, struct store_batch *b, const char *run_id, const char *key,
		    struct metric_point *pts, size_t n)
{
	int64_t now = wall_ms(), floor = INT64_MIN, first;
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
		for (j = i; j < n && !pts[j].has_step; j++)
			;
		err = store_reserve_steps(s, run_id, key, floor, j - i, &first);
		if (err)
			return err;
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
	return store_log_metrics(s, b, run_id, key, pts, n);
}

/* ---- the fixture: a temporary folder, the store, a second connection -- */

struct fx {
	const char *group;
	char *dir;     /* the group's temporary folder */
	char *db_path; /* <dir>/db/mlflow.db: its folder is left for the store to make */
	char *root;    /* <dir>/mlartifacts */
	char *uri;     /* sqlite:///<db_path> */
	struct mfs_config cfg;
	struct store *s;    /* the cache over the backend, as the daemon opens it */
	struct store *bare; /* the backend under s (s owns it): for its own answers */
	sqlite3 *raw;	    /* another program's connection to the same file */
};

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	if (remove(path) < 0)
		tap_diag("cannot remove '%s': %s", path, strerror(errno));
	return 0;
}

/* Makes the folder and fills the paths and the config; 0, or -1. */
static int fx_paths(struct fx *f, const char *group)
{
	const char *tmp = getenv("TMPDIR");

	memset(f, 0, sizeof(*f));
	f->group = group;
	f->dir = strf("%s/unit-store-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", group);
	if (!f->dir)
		return -1;
	if (!mkdtemp(f->dir)) {
		tap_diag("mkdtemp '%s': %s", f->dir, strerror(errno));
		free(f->dir);
		f->dir = NULL;
		return -1;
	}
	f->db_path = strf("%s/db/mlflow.db", f->dir);
	f->root = strf("%s/mlartifacts", f->dir);
	f->uri = f->db_path ? strf("sqlite:///%s", f->db_path) : NULL;
	if (!f->db_path || !f->root || !f->uri)
		return -1;
	f->cfg.tracking_uri = f->uri;
	f->cfg.display_uri = f->uri;
	f->cfg.artifact_root = f->root;
	f->cfg.cwd = f->dir;
	f->cfg.cache_ttl = 2.0;
	f->cfg.lock_timeout = 30.0;
	return 0;
}

/* The store as the daemon opens it: the backend cfg names, in the cache.
 * *bare (if not NULL) is the backend, which the cache owns. */
static struct store *open_cached(const struct mfs_config *cfg, struct store **bare, char **why)
{
	struct store *backend = store_open(cfg, why), *s;

	if (bare)
		*bare = backend;
	if (!backend)
		return NULL;
	s = cache_wrap(backend, cfg);
	if (!s && bare)
		*bare = NULL;
	return s;
}

/* Closes f's store and opens its database again read-only (-o ro),
 * through the cache; f->s is NULL if that failed. */
static void reopen_read_only(struct fx *f)
{
	char *why = NULL;

	store_close(f->s);
	f->cfg.read_only = 1;
	f->s = open_cached(&f->cfg, &f->bare, &why);
	f->cfg.read_only = 0;
	if (!ok(f->s != NULL, "the database opens read-only"))
		tap_diag("store_open: %s", why ? why : "(no message)");
	free(why);
}

static int raw_open(struct fx *f)
{
	int rc = sqlite3_open_v2(f->db_path, &f->raw, SQLITE_OPEN_READWRITE, NULL);

	if (rc != SQLITE_OK) {
		tap_diag("second connection to '%s': %s", f->db_path, sqlite3_errstr(rc));
		sqlite3_close(f->raw);
		f->raw = NULL;
		return -1;
	}
	/* The store holds its write lock for up to 20 ms at a time. */
	sqlite3_busy_timeout(f->raw, 30000);
	return 0;
}

/* A fresh folder with a new database opened by the store; 0, or -1. */
static int fx_setup(struct fx *f, const char *group)
{
	char *why = NULL;

	if (fx_paths(f, group)) {
		ok(0, "%s: make a temporary folder", group);
		return -1;
	}
	f->s = open_cached(&f->cfg, &f->bare, &why);
	if (!ok(f->s != NULL, "%s: store_open creates a new database", group)) {
		tap_diag("store_open: %s", why ? why : "(no message)");
		free(why);
		return -1;
	}
	free(why);
	if (!ok(raw_open(f) == 0, "%s: a second connection opens the database", group))
		return -1;
	return 0;
}

static void fx_teardown(struct fx *f)
{
	if (f->s)
		store_close(f->s);
	if (f->raw && sqlite3_close(f->raw) != SQLITE_OK)
		tap_diag("second connection: %s", sqlite3_errmsg(f->raw));
	if (f->dir)
		nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f->dir);
	free(f->db_path);
	free(f->root);
	free(f->uri);
	memset(f, 0, sizeof(*f));
}

/*
 * Runs SQL made by sqlite3_mprintf (%Q quotes a string) on the second
 * connection; 0, or -1 with a diagnostic.  The cache asks the store whether
 * another client wrote at most every millisecond, so a change shows that
 * late: the call waits that long after it, as anything else would have.
 */
static int raw_exec(sqlite3 *db, const char *fmt, ...)
{
	char *sql, *err = NULL;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	sql = sqlite3_vmprintf(fmt, ap);
	va_end(ap);
	if (!sql)
		return -1;
	rc = sqlite3_exec(db, sql, NULL, NULL, &err);
	if (rc != SQLITE_OK)
		tap_diag("second connection: %s: %s", sql, err ? err : sqlite3_errstr(rc));
	sqlite3_free(err);
	sqlite3_free(sql);
	sleep_ms(2);
	return rc == SQLITE_OK ? 0 : -1;
}

static sqlite3_stmt *raw_prepare(sqlite3 *db, const char *fmt, va_list ap)
{
	sqlite3_stmt *st = NULL;
	char *sql = sqlite3_vmprintf(fmt, ap);

	if (!sql)
		return NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		tap_diag("second connection: %s: %s", sql, sqlite3_errmsg(db));
		st = NULL;
	}
	sqlite3_free(sql);
	return st;
}

/* The first column of the first row as an integer; -1 when there is none. */
static int raw_int(sqlite3 *db, int64_t *out, const char *fmt, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	int rc;

	*out = INT64_MIN;
	va_start(ap, fmt);
	st = raw_prepare(db, fmt, ap);
	va_end(ap);
	if (!st)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	else
		tap_diag("second connection: no row from '%s'", sqlite3_sql(st));
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

/* The first column of the first row as a new string; NULL for none or NULL. */
static char *raw_text(sqlite3 *db, const char *fmt, ...)
{
	sqlite3_stmt *st;
	char *s = NULL;
	va_list ap;

	va_start(ap, fmt);
	st = raw_prepare(db, fmt, ap);
	va_end(ap);
	if (!st)
		return NULL;
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		s = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return s;
}

/* ---- collecting listings into comparable strings --------------------- */

__attribute__((format(printf, 2, 3))) static int list_add(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int err;

	if (b->len && buf_addch(b, ','))
		return -ENOMEM;
	va_start(ap, fmt);
	err = buf_vaddf(b, fmt, ap);
	va_end(ap);
	return err;
}

static int collect_exp(void *ctx, const struct store_experiment *e)
{
	return list_add(ctx, "%s", e->name);
}

static int collect_folder(void *ctx, const struct store_run *r)
{
	return list_add(ctx, "%s", r->folder ? r->folder : "(null)");
}

static int collect_kv(void *ctx, const struct store_kv *kv)
{
	return list_add(ctx, "%s=%s", kv->key, kv->value ? kv->value : "(null)");
}

static int collect_metric(void *ctx, const struct store_kv *kv)
{
	char v[METRIC_VALUE_MAX];

	metric_format_value(kv->num, v);
	return list_add(ctx, "%s=%s@%" PRId64, kv->key, v, kv->step);
}

/* "STEP:VALUE" per point: for histories whose times are "now". */
static int collect_step_value(void *ctx, double value, int64_t step, int64_t timestamp)
{
	char v[METRIC_VALUE_MAX];

	(void)timestamp;
	metric_format_value(value, v);
	return list_add(ctx, "%" PRId64 ":%s", step, v);
}

static int collect_point(void *ctx, double value, int64_t step, int64_t timestamp)
{
	char v[METRIC_VALUE_MAX];

	metric_format_value(value, v);
	return list_add(ctx, "%" PRId64 ":%s:%" PRId64, step, v, timestamp);
}

static int collect_model(void *ctx, const struct store_model *m)
{
	return list_add(ctx, "%s:%s", m->name, m->description);
}

static int collect_version(void *ctx, const struct store_version *v)
{
	return list_add(ctx, "%" PRId64 ":%s", v->version, v->stage);
}

static int collect_alias(void *ctx, const char *alias, int64_t version)
{
	return list_add(ctx, "%s=%" PRId64, alias, version);
}

/* Callbacks that stop a listing at once with a positive value. */
static int stop_run(void *ctx, const struct store_run *r)
{
	(void)r;
	++*(int *)ctx;
	return 7;
}

static int stop_kv(void *ctx, const struct store_kv *kv)
{
	(void)kv;
	++*(int *)ctx;
	return 3;
}

static int stop_point(void *ctx, double value, int64_t step, int64_t timestamp)
{
	(void)value;
	(void)step;
	(void)timestamp;
	++*(int *)ctx;
	return 9;
}

/* The folders of an experiment's runs as "a,b,c"; NULL (with a diagnostic)
 * when listing fails.  The caller frees. */
static char *folders(struct fx *f, const char *exp)
{
	struct buf b = BUF_INIT;
	int err = store_list_runs(f->s, exp, collect_folder, &b);

	if (err) {
		tap_diag("store_list_runs(%s): %d %s", exp, err, store_errmsg());
		buf_release(&b);
		return NULL;
	}
	return buf_detach(&b);
}

/* ---- snapshots -------------------------------------------------------- */

static const struct store_kvs *section(const struct store_snapshot *snap, enum store_section sec)
{
	switch (sec) {
	case SEC_PARAMS:
		return snap->params;
	case SEC_METRICS:
		return snap->metrics;
	default:
		return snap->tags;
	}
}

/* Whether a section's keys are in strictly increasing byte order. */
static int kvs_sorted(const struct store_kvs *kvs)
{
	size_t i;

	for (i = 1; kvs && i < kvs->n; i++)
		if (strcmp(kvs->v[i - 1].key, kvs->v[i].key) >= 0)
			return 0;
	return 1;
}

/*
 * A section of a run's snapshot, the keys starting with prefix (NULL: all),
 * as "k=v,..." (metrics: "k=latest@step"); "(unsorted)" when the section is
 * out of order or a section is missing; NULL (with a diagnostic) when the
 * snapshot fails.
 */
static char *snap_keys(struct store *s, const char *run_id, enum store_section sec,
		       const char *prefix)
{
	const struct store_snapshot *snap;
	const struct store_kvs *kvs;
	struct buf b = BUF_INIT;
	size_t i, plen = prefix ? strlen(prefix) : 0;
	int err = store_get_snapshot(s, run_id, SNAP_ALL, &snap);

	if (err) {
		tap_diag("store_get_snapshot(%s): %d %s", run_id, err, store_errmsg());
		return NULL;
	}
	kvs = section(snap, sec);
	if (!kvs_sorted(kvs) || (snap->have & SNAP_ALL) != SNAP_ALL) {
		store_snapshot_put(snap);
		return strdup("(unsorted)");
	}
	for (i = 0; !err && kvs && i < kvs->n; i++)
		if (!strncmp(kvs->v[i].key, prefix ? prefix : "", plen))
			err = sec == SEC_METRICS ? collect_metric(&b, &kvs->v[i])
						 : collect_kv(&b, &kvs->v[i]);
	store_snapshot_put(snap);
	if (err) {
		buf_release(&b);
		return NULL;
	}
	return buf_detach(&b);
}

/* A key of a run's snapshot, copied into *out (release it); -ENOENT. */
static int snap_get(struct store *s, const char *run_id, enum store_section sec, const char *key,
		    struct store_kv *out)
{
	const struct store_snapshot *snap;
	const struct store_kv *kv;
	int err = store_get_snapshot(s, run_id, SNAP_ALL, &snap);

	memset(out, 0, sizeof(*out));
	if (err)
		return err;
	kv = store_kvs_find(section(snap, sec), key);
	if (kv) {
		*out = *kv;
		out->key = strdup(kv->key);
		out->value = kv->value ? strdup(kv->value) : NULL;
	}
	store_snapshot_put(snap);
	return kv ? 0 : -ENOENT;
}

/*
 * A section's keys (the prefix ones) as "k=v,..." (metrics:
 * "k=latest@step"): a run's from its snapshot, the others' from
 * store_list_kv.  NULL on failure.
 */
static char *keys(struct fx *f, enum store_section sec, const struct store_ref *ref,
		  const char *prefix)
{
	struct buf b = BUF_INIT;
	int err;

	if (sec == SEC_PARAMS || sec == SEC_METRICS || sec == SEC_RUN_TAGS)
		return snap_keys(f->s, ref->run_id, sec, prefix);
	err = store_list_kv(f->s, sec, ref, prefix, collect_kv, &b);
	if (err) {
		tap_diag("store_list_kv(%d): %d %s", (int)sec, err, store_errmsg());
		buf_release(&b);
		return NULL;
	}
	return buf_detach(&b);
}

/* The same by store_list_kv, which the backend still answers for runs. */
static char *list_keys(struct store *s, enum store_section sec, const struct store_ref *ref,
		       const char *prefix)
{
	struct buf b = BUF_INIT;
	int err = store_list_kv(s, sec, ref, prefix,
				sec == SEC_METRICS ? collect_metric : collect_kv, &b);

	if (err) {
		tap_diag("store_list_kv(%d): %d %s", (int)sec, err, store_errmsg());
		buf_release(&b);
		return NULL;
	}
	return buf_detach(&b);
}

static char *history(struct fx *f, const char *run_id, const char *key, int with_time)
{
	struct buf b = BUF_INIT;
	int err = store_metric_history(f->s, run_id, key,
				       with_time ? collect_point : collect_step_value, &b);

	if (err) {
		tap_diag("store_metric_history(%s): %d %s", key, err, store_errmsg());
		buf_release(&b);
		return NULL;
	}
	return buf_detach(&b);
}

/* Small wrappers that compare a listing and free it. */
static void folders_are(struct fx *f, const char *exp, const char *want, const char *name)
{
	char *got = folders(f, exp);

	is_str(got, want, name);
	free(got);
}

static void keys_are(struct fx *f, enum store_section sec, const struct store_ref *ref,
		     const char *prefix, const char *want, const char *name)
{
	char *got = keys(f, sec, ref, prefix);

	is_str(got, want, name);
	free(got);
}

static void list_keys_are(struct store *s, enum store_section sec, const struct store_ref *ref,
			  const char *prefix, const char *want, const char *name)
{
	char *got = list_keys(s, sec, ref, prefix);

	is_str(got, want, name);
	free(got);
}

static void history_is(struct fx *f, const char *run_id, const char *key, int with_time,
		       const char *want, const char *name)
{
	char *got = history(f, run_id, key, with_time);

	is_str(got, want, name);
	free(got);
}

/* The size of history/<key> rendered here, line by line, from the points. */
static int render_line(void *ctx, double value, int64_t step, int64_t timestamp)
{
	struct store_history_stat *st = ctx;
	char line[METRIC_HISTORY_LINE_MAX];

	st->points++;
	st->bytes += metric_history_line(line, value, step, timestamp);
	return 0;
}

/* store_history_stat() of a metric agrees with its history, rendered, which
 * has want points. */
static void stat_is(struct store *s, const char *run_id, const char *key, uint64_t want,
		    const char *name)
{
	struct store_history_stat got, rendered = { 0, 0 };
	int err = store_history_stat(s, run_id, key, &got);
	int herr = store_metric_history(s, run_id, key, render_line, &rendered);

	if (!ok(!err && !herr && got.points == rendered.points && got.bytes == rendered.bytes &&
			rendered.points == want,
		"%s", name))
		tap_diag("history_stat %d: %" PRIu64 " points, %" PRIu64 " bytes; rendered %d: "
			 "%" PRIu64 " points, %" PRIu64 " bytes; want %" PRIu64 " points",
			 err, got.points, got.bytes, herr, rendered.points, rendered.bytes, want);
}

static int new_exp(struct fx *f, const char *name, char id[STORE_ID_MAX])
{
	struct store_experiment e;
	int err = store_create_experiment(f->s, NULL, name, &e);

	id[0] = '\0';
	if (err) {
		tap_diag("store_create_experiment(%s): %d %s", name, err, store_errmsg());
		return err;
	}
	snprintf(id, STORE_ID_MAX, "%s", e.id);
	store_experiment_release(&e);
	return 0;
}

static int new_run(struct fx *f, const char *exp, const char *name, char id[STORE_RUN_ID_MAX])
{
	struct store_run r;
	int err = store_create_run(f->s, NULL, exp, name, "tester", &r);

	id[0] = '\0';
	if (err) {
		tap_diag("store_create_run(%s, %s): %d %s", exp, name, err, store_errmsg());
		return err;
	}
	snprintf(id, STORE_RUN_ID_MAX, "%s", r.run_id);
	store_run_release(&r);
	return 0;
}

/* The folder store_get_run() gives a run, as a new string, or NULL. */
static char *folder_of(struct fx *f, const char *run_id)
{
	struct store_run r;
	char *folder = NULL;

	if (store_get_run(f->s, run_id, &r) == 0) {
		folder = r.folder ? strdup(r.folder) : NULL;
		store_run_release(&r);
	}
	return folder;
}

/* store_find_run() of a folder gives the run with this id. */
static int finds(struct fx *f, const char *exp, const char *folder, const char *run_id)
{
	struct store_run r;
	int err = store_find_run(f->s, exp, folder, &r), same;

	if (err) {
		tap_diag("store_find_run(%s, %s): %d", exp, folder, err);
		return 0;
	}
	same = !strcmp(r.run_id, run_id);
	if (!same)
		tap_diag("'%s' is run %s, want %s", folder, r.run_id, run_id);
	store_run_release(&r);
	return same;
}

/* A line of store_describe(), as a new string ("" if missing), or NULL. */
static char *described(struct store *s, const char *field)
{
	struct buf b = BUF_INIT;
	const char *p, *end;
	char *out = NULL;
	size_t flen = strlen(field);

	if (store_describe(s, &b) == 0) {
		for (p = buf_str(&b); p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
			if (!strncmp(p, field, flen) && p[flen] == ':')
				break;
		if (p && *p) {
			p += flen + 1;
			p += *p == ' ';
			end = strchr(p, '\n');
			out = strndup(p, end ? (size_t)(end - p) : strlen(p));
		} else {
			out = strdup("");
		}
	}
	buf_release(&b);
	return out;
}

/* A counter of store_describe(); -1 when missing. */
static int64_t described_int(struct store *s, const char *field)
{
	char *v = described(s, field);
	int64_t n = v && *v ? strtoll(v, NULL, 10) : -1;

	free(v);
	return n;
}

/*
 * Waits until the store has no write transaction open (its committer
 * commits one within 20 ms), so that the second connection sees every write
 * made so far and may write itself; 0, or -1 with a diagnostic.
 */
static int settle(struct fx *f)
{
	int64_t start = mono_ms();
	char *open;
	int busy = 1;

	while (busy && mono_ms() - start < 5000) {
		open = described(f->s, "transaction_open");
		busy = !open || strcmp(open, "no") != 0;
		free(open);
		if (busy)
			sleep_ms(1);
	}
	if (busy)
		tap_diag("the store still has a transaction open after 5 s");
	return busy ? -1 : 0;
}

/* ---- opening --------------------------------------------------------- */

static void test_open_new(void)
{
	struct store_experiment e;
	struct schema_info info;
	struct buf b = BUF_INIT;
	char *why = NULL, *want;
	struct stat st;
	int64_t n;
	struct fx f;

	if (fx_setup(&f, "open")) {
		fx_teardown(&f);
		return;
	}
	ok(stat(f.db_path, &st) == 0 && S_ISREG(st.st_mode),
	   "the database file and its missing folder are created");
	is_int(schema_check(f.raw, &info, &why), 0, "schema_check passes on the new database");
	if (why)
		tap_diag("schema_check: %s", why);
	free(why);
	why = NULL;
	is_str(info.revision, SCHEMA_REVISION, "alembic_version holds the revision written");

	is_int(store_get_experiment(f.s, "Default", &e), 0, "the Default experiment exists");
	is_str(e.id, "0", "Default has id 0");
	want = strf("%s/0", f.root);
	is_str(e.artifact_location, want, "Default's artifact location is <root>/0");
	free(want);
	ok(!e.deleted && e.creation_time > 0, "Default is active and has a creation time");
	store_experiment_release(&e);
	is_int(store_get_experiment_by_id(f.s, "0", &e), 0, "Default found by id 0");
	is_str(e.name, "Default", "id 0 is named Default");
	store_experiment_release(&e);
	is_int(store_list_experiments(f.s, collect_exp, &b), 0, "list experiments");
	is_str(buf_str(&b), "Default", "a new database lists only Default");
	buf_reset(&b);
	is_int(store_describe(f.s, &b), 0, "describe");
	ok(strstr(buf_str(&b), "store: sqlite\n") && strstr(buf_str(&b), f.db_path),
	   "describe names the backend and the database");
	ok(strstr(buf_str(&b), "cache_") != NULL, "and, through the cache, the cache's figures");
	buf_release(&b);
	is_str(store_artifact_root(f.s), f.root, "store_artifact_root is the configured root");
	is_str(store_artifact_root(f.bare), f.root, "the backend's too");
	is_int(store_read_only(f.s), 0, "the store is writable");
	is_int(store_get_experiment(f.s, "Nope", &e), -ENOENT, "an unknown experiment is -ENOENT");
	is_int(store_get_experiment_by_id(f.s, "42", &e), -ENOENT, "an unknown id is -ENOENT");
	is_int(store_get_experiment_by_id(f.s, "x1", &e), -ENOENT, "a non-numeric id is -ENOENT");

	/* The database it made opens again as an existing MLflow database. */
	store_close(f.s);
	f.s = open_cached(&f.cfg, &f.bare, &why);
	if (!ok(f.s != NULL, "the created database opens again"))
		tap_diag("store_open: %s", why ? why : "(no message)");
	free(why);
	if (f.s) {
		is_int(store_list_experiments(f.s, collect_exp, &b), 0, "list after reopening");
		is_str(buf_str(&b), "Default", "reopening adds no second Default");
		buf_release(&b);
	}
	is_int(raw_int(f.raw, &n, "SELECT count(*) FROM experiments"), 0, "count experiments");
	is_int(n, 1, "one experiment row");

	/* -o ro: the same database, read-only, through the cache too. */
	reopen_read_only(&f);
	if (f.s) {
		is_int(store_read_only(f.s), 1, "the cached store says it is read-only");
		is_int(store_read_only(f.bare), 1, "so does the backend");
		is_int(store_get_experiment(f.s, "Default", &e), 0, "it reads");
		store_experiment_release(&e);
		is_int(store_create_experiment(f.s, NULL, "nope", NULL), -EROFS,
		       "a write is -EROFS");
	}
	fx_teardown(&f);
}

/* store_open() of db_path (in the cache); on refusal *why is the message. */
static struct store *open_at(const char *db_path, const char *root, char **why)
{
	struct mfs_config cfg;
	struct store *s;
	char *uri = strf("sqlite:///%s", db_path);

	memset(&cfg, 0, sizeof(cfg));
	cfg.tracking_uri = uri;
	cfg.display_uri = uri;
	cfg.artifact_root = (char *)root;
	*why = NULL;
	s = uri ? open_cached(&cfg, NULL, why) : NULL;
	free(uri);
	return s;
}

static int count_objects(const char *path, int64_t *n)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);

	*n = -1;
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master", -1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		*n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return *n < 0 ? -1 : 0;
}

/* store_open() of a URI that must be refused: the message names shown
 * (the display URI) and never secret. */
static void refuses_uri(const char *uri, const char *shown, const char *secret, const char *must,
			const char *name)
{
	struct mfs_config cfg;
	struct store *s;
	char *why = NULL;

	memset(&cfg, 0, sizeof(cfg));
	cfg.tracking_uri = (char *)uri;
	cfg.display_uri = (char *)shown;
	cfg.cwd = (char *)"/";
	cfg.lock_timeout = 30.0;
	s = store_open(&cfg, &why);
	ok(s == NULL && why && strstr(why, shown) && (!must || strstr(why, must)) &&
		   (!secret || !strstr(why, secret)),
	   "%s", name);
	tap_diag("message: %s", why ? why : "(none)");
	free(why);
	store_close(s);
}

static void test_open_refused(void)
{
	static const char text[] = "these are my notes, not a database\n"
				   "and a second line of them\n";
	char *foreign = NULL, *txt = NULL, *partial = NULL, *why = NULL, got[256];
	struct store *s;
	int64_t before, after;
	sqlite3 *db = NULL;
	FILE *fp;
	size_t n;
	struct fx f;

	if (fx_paths(&f, "refused")) {
		ok(0, "refused: make a temporary folder");
		fx_teardown(&f);
		return;
	}
	foreign = strf("%s/foreign.db", f.dir);
	txt = strf("%s/notes.txt", f.dir);
	partial = strf("%s/partial.db", f.dir);
	if (!foreign || !txt || !partial)
		goto out;

	/* Another program's SQLite file: refused, and left as it was. */
	if (sqlite3_open(foreign, &db) != SQLITE_OK ||
	    sqlite3_exec(db,
			 "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"
			 "INSERT INTO notes (body) VALUES ('keep me')",
			 NULL, NULL, NULL) != SQLITE_OK)
		tap_diag("cannot make '%s': %s", foreign, sqlite3_errmsg(db));
	sqlite3_close(db);
	s = open_at(foreign, f.root, &why);
	ok(s == NULL, "a foreign SQLite database is refused");
	ok(why && strstr(why, foreign) && strstr(why, "experiments"),
	   "the message names the file and the missing 'experiments' table");
	tap_diag("message: %s", why ? why : "(none)");
	free(why);
	store_close(s);
	is_int(count_objects(foreign, &after), 0, "the foreign database still reads");
	is_int(after, 1, "it still has only its own table (nothing created in it)");
	if (sqlite3_open_v2(foreign, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
		char *mode = raw_text(db, "PRAGMA journal_mode");
		char *body = raw_text(db, "SELECT body FROM notes");

		is_str(mode, "delete", "its journal mode was not changed");
		is_str(body, "keep me", "its data is intact");
		free(mode);
		free(body);
	} else {
		ok(0, "reopen the foreign database");
	}
	sqlite3_close(db);
	db = NULL;

	/* A text file: refused, and its bytes untouched. */
	fp = fopen(txt, "w");
	if (fp) {
		fputs(text, fp);
		fclose(fp);
	}
	s = open_at(txt, f.root, &why);
	ok(s == NULL, "a text file is refused");
	ok(why && strstr(why, txt) && strstr(why, "not a database"),
	   "the message names the file and says it is not a database");
	tap_diag("message: %s", why ? why : "(none)");
	free(why);
	store_close(s);
	fp = fopen(txt, "r");
	n = fp ? fread(got, 1, sizeof(got), fp) : 0;
	if (fp)
		fclose(fp);
	ok(n == strlen(text) && !memcmp(got, text, n), "the text file is unchanged");

	/* An MLflow database missing a table and a column mlflowfs uses. */
	s = open_at(partial, f.root, &why);
	ok(s != NULL, "a second new database is created");
	free(why);
	store_close(s);
	db = NULL;
	if (sqlite3_open(partial, &db) != SQLITE_OK ||
	    sqlite3_exec(db,
			 "DROP TABLE latest_metrics;"
			 "ALTER TABLE runs DROP COLUMN deleted_time",
			 NULL, NULL, NULL) != SQLITE_OK)
		tap_diag("cannot damage '%s': %s", partial, sqlite3_errmsg(db));
	sqlite3_close(db);
	count_objects(partial, &before);
	s = open_at(partial, f.root, &why);
	ok(s == NULL, "a database missing a table and a column is refused");
	ok(why && strstr(why, "latest_metrics") && strstr(why, "runs.deleted_time"),
	   "the message names the missing table and the missing column");
	tap_diag("message: %s", why ? why : "(none)");
	free(why);
	store_close(s);
	count_objects(partial, &after);
	ok(before > 0 && before == after, "the refused database was not altered");

	/* URIs the store does not take: named as shown, with the forms it takes. */
	refuses_uri("postgresql://db/mlflow", "postgresql://db/mlflow", NULL,
		    "sqlite:", "an unsupported URI is refused naming it and the supported forms");
	refuses_uri("sqlite:///x.db?mode=ro", "sqlite:///x.db?mode=ro", NULL, "sqlite:///",
		    "a sqlite URI with query parameters is refused");
	refuses_uri("sqlite:///", "sqlite:///", NULL, "sqlite:///",
		    "a sqlite URI without a path is refused");
	refuses_uri("sqlite://host/x.db", "sqlite://host/x.db", NULL, "sqlite:///",
		    "a sqlite URI with a host is refused");
	refuses_uri("https://alice:s3cret@mlflow.example/", "https://mlflow.example/", "s3cret",
		    NULL, "a remote URI is refused showing it without its credentials");
out:
	free(foreign);
	free(txt);
	free(partial);
	fx_teardown(&f);
}

/* sqlite:///relative.db is relative to the folder mlflowfs started in; the
 * artifact root defaults to mlartifacts/ beside the database. */
static void test_open_relative(void)
{
	struct mfs_config cfg;
	struct store_experiment e;
	struct store *s;
	char *why = NULL, *path = NULL, *want = NULL, *got;
	struct stat st;
	struct fx f;

	if (fx_paths(&f, "relative")) {
		ok(0, "relative: make a temporary folder");
		fx_teardown(&f);
		return;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.tracking_uri = (char *)"sqlite:///rel/sub/r.db";
	cfg.display_uri = cfg.tracking_uri;
	cfg.cwd = f.dir;
	cfg.lock_timeout = 30.0;
	s = open_cached(&cfg, NULL, &why);
	if (!ok(s != NULL, "a relative sqlite URI opens"))
		tap_diag("store_open: %s", why ? why : "(no message)");
	free(why);
	path = strf("%s/rel/sub/r.db", f.dir);
	ok(path && stat(path, &st) == 0 && S_ISREG(st.st_mode),
	   "the database is made under the starting folder, with its folders");
	want = strf("%s/rel/sub/mlartifacts", f.dir);
	if (s) {
		is_str(store_artifact_root(s), want,
		       "without --artifact-root, the root is mlartifacts/ beside the database");
		if (store_get_experiment(s, "Default", &e) == 0) {
			got = strf("%s/0", want);
			is_str(e.artifact_location, got, "Default's location is under that root");
			free(got);
			store_experiment_release(&e);
		} else {
			ok(0, "get Default");
		}
		got = described(s, "database");
		is_str(got, path, "describe names the database by its absolute path");
		free(got);
		got = described(s, "uri");
		ok(got && !strncmp(got, "sqlite:///", 10) && !strcmp(got + 10, path ? path : ""),
		   "and the URI made absolute: %s", got ? got : "(null)");
		free(got);
	}
	store_close(s);
	free(want);

	/* A relative --artifact-root is relative to the starting folder too. */
	cfg.artifact_root = (char *)"art";
	s = open_cached(&cfg, NULL, &why);
	ok(s != NULL, "the database opens again with a relative artifact root");
	free(why);
	want = strf("%s/art", f.dir);
	if (s)
		is_str(store_artifact_root(s), want, "the artifact root is under the start folder");
	store_close(s);
	free(want);
	free(path);
	fx_teardown(&f);
}

/* store_others_version() moves with other clients' commits, never ours; the
 * cache notices them. */
static void test_watch(void)
{
	struct store_experiment e;
	char id[STORE_ID_MAX];
	uint64_t v0 = 0, v1 = 0, v2 = 0, vb = 0;
	struct fx f;
	int i, good;

	if (fx_setup(&f, "watch")) {
		fx_teardown(&f);
		return;
	}
	is_int(store_others_version(f.s, &v0), 0, "others_version through the cache");
	is_int(store_others_version(f.bare, &vb), 0, "and of the backend");
	ok(!new_exp(&f, "w", id), "an experiment of our own");
	is_int(store_get_experiment(f.s, "w", &e), 0, "read it (the cache keeps it)");
	store_experiment_release(&e);
	is_int(store_others_version(f.s, &v1), 0, "others_version again");
	ok(v1 == v0, "our own commits do not move it (%" PRIu64 ", %" PRIu64 ")", v0, v1);
	ok(!settle(&f) && !raw_exec(f.raw, "UPDATE experiments SET name = 'w2' WHERE name = 'w'"),
	   "another client renames it");
	is_int(store_others_version(f.s, &v2), 0, "others_version after");
	ok(v2 != v1, "another client's commit moves it");
	/* At once: never a value read before a commit the caller has seen
	 * (here a commit takes about 2 ms; the e2e test of steps after the
	 * MLflow client's point catches a shorter reuse now and then). */
	for (i = 0, good = 1; i < 20 && good; i++) {
		uint64_t a = 0, b = 0;

		good = !store_others_version(f.bare, &a) &&
		       !raw_exec(f.raw, "UPDATE experiments SET last_update_time = "
					"last_update_time + 1 WHERE name = 'w2'") &&
		       !store_others_version(f.bare, &b) && a != b;
	}
	ok(good, "a commit right after a look is seen by the next look (%d tries)", i);
	is_int(store_get_experiment(f.s, "w", &e), -ENOENT, "the cache lets go of the old name");
	is_int(store_get_experiment(f.s, "w2", &e), 0, "and finds the new one");
	is_str(e.id, id, "the same experiment");
	store_experiment_release(&e);
	fx_teardown(&f);
}

/* ---- experiments ----------------------------------------------------- */

static void test_experiments(void)
{
	struct store_experiment e;
	struct store_ref ref = { 0 };
	char a[STORE_ID_MAX], b[STORE_ID_MAX], run[STORE_RUN_ID_MAX], *want, *stage;
	struct buf l = BUF_INIT;
	int64_t t0, t1, n;
	size_t before, after;
	struct store_run r;
	int i, refused, err;
	struct fx f;

	if (fx_setup(&f, "experiments")) {
		fx_teardown(&f);
		return;
	}
	t0 = wall_ms();
	is_int(store_create_experiment(f.s, NULL, "alpha", &e), 0, "create experiment alpha");
	t1 = wall_ms();
	is_str(e.id, "1", "the first new experiment gets id 1");
	is_str(e.name, "alpha", "its name");
	want = strf("%s/1", f.root);
	is_str(e.artifact_location, want, "its artifact location is <root>/<id>");
	free(want);
	ok(!e.deleted && e.creation_time >= t0 && e.creation_time <= t1 &&
		   e.last_update_time == e.creation_time,
	   "it is active, created now");
	snprintf(a, sizeof(a), "%s", e.id);
	store_experiment_release(&e);
	/* A write without a batch is committed when it returns. */
	stage = raw_text(f.raw,
			 "SELECT lifecycle_stage || ' ' || artifact_location FROM experiments "
			 "WHERE experiment_id = 1");
	want = strf("active %s/1", f.root);
	is_str(stage, want, "the row MLflow reads, at once: active, location set");
	free(stage);
	free(want);

	ok(!new_exp(&f, "beta", b), "create experiment beta");
	is_str(b, "2", "the next id is 2");
	is_int(store_create_experiment(f.s, NULL, "alpha", &e), -EEXIST,
	       "a duplicate name is -EEXIST");
	ok(store_errmsg()[0] != '\0', "and store_errmsg says why: %s", store_errmsg());
	is_int(store_create_experiment(f.s, NULL, "solo", NULL), 0,
	       "create without asking for the row");

	is_int(store_get_experiment(f.s, "beta", &e), 0, "read beta (the cache keeps it)");
	store_experiment_release(&e);
	is_int(store_rename_experiment(f.s, NULL, b, "gamma"), 0, "rename beta to gamma");
	is_int(store_get_experiment(f.s, "beta", &e), -ENOENT, "the old name is gone");
	is_int(store_get_experiment(f.s, "gamma", &e), 0, "the new name is found");
	is_str(e.id, b, "with the same id");
	store_experiment_release(&e);
	is_int(store_get_experiment_by_id(f.s, b, &e), 0, "by id");
	is_str(e.name, "gamma", "the id reads the new name");
	store_experiment_release(&e);
	is_int(store_rename_experiment(f.s, NULL, b, "alpha"), -EEXIST, "rename onto a taken name");
	is_int(store_rename_experiment(f.s, NULL, "99", "delta"), -ENOENT,
	       "rename of an unknown id");

	/* An experiment with active runs cannot go; with only deleted ones it can. */
	ok(!new_run(&f, b, "r", run), "a run in gamma");
	is_int(store_delete_experiment(f.s, NULL, b), -ENOTEMPTY,
	       "delete with an active run: -ENOTEMPTY");
	ok(store_errmsg()[0] != '\0', "store_errmsg says why: %s", store_errmsg());
	is_int(store_get_experiment(f.s, "gamma", &e), 0, "gamma is still there");
	store_experiment_release(&e);
	is_int(store_delete_run(f.s, NULL, run), 0, "delete its run");
	t0 = wall_ms();
	is_int(store_delete_experiment(f.s, NULL, b), 0, "delete gamma");
	t1 = wall_ms();
	is_int(store_get_experiment(f.s, "gamma", &e), -ENOENT,
	       "a deleted experiment's name is gone");
	is_int(store_get_experiment_by_id(f.s, b, &e), 0, "but its id still reads");
	ok(e.deleted && e.last_update_time >= t0 && e.last_update_time <= t1,
	   "reported deleted, last update time set");
	store_experiment_release(&e);
	stage = raw_text(f.raw, "SELECT lifecycle_stage FROM experiments WHERE experiment_id = %s",
			 b);
	is_str(stage, "deleted", "soft delete: the row is kept as 'deleted'");
	free(stage);
	is_int(store_list_experiments(f.s, collect_exp, &l), 0, "list experiments");
	is_str(buf_str(&l), "Default,alpha,solo", "lists active ones by id");
	buf_release(&l);
	is_int(store_create_experiment(f.s, NULL, "gamma", &e), -EEXIST,
	       "a name held by a deleted experiment is -EEXIST");
	ok(strstr(store_errmsg(), "deleted") != NULL, "store_errmsg says it is deleted: %s",
	   store_errmsg());
	is_int(store_rename_experiment(f.s, NULL, a, "gamma"), -EEXIST,
	       "renaming onto a deleted experiment's name is -EEXIST");
	is_int(store_delete_experiment(f.s, NULL, b), -ENOENT, "deleting it again is -ENOENT");
	is_int(store_rename_experiment(f.s, NULL, b, "zeta"), -ENOENT, "renaming it is -ENOENT");
	err = store_create_run(f.s, NULL, b, "late", "u", &r);
	is_int(err, -ENOENT, "no new run in a deleted experiment");
	if (!err)
		store_run_release(&r);
	is_int(store_delete_experiment(f.s, NULL, "77"), -ENOENT,
	       "deleting an unknown id is -ENOENT");

	/* Experiment tags. */
	ref.experiment_id = a;
	is_int(store_set_tag(f.s, NULL, SEC_EXP_TAGS, &ref, "mlflow.note.content", "notes"), 0,
	       "set an experiment tag");
	is_int(store_set_tag(f.s, NULL, SEC_EXP_TAGS, &ref, "team", "a"), 0, "set another");
	is_int(store_set_tag(f.s, NULL, SEC_EXP_TAGS, &ref, "team", "b"), 0, "overwrite it");
	keys_are(&f, SEC_EXP_TAGS, &ref, NULL, "mlflow.note.content=notes,team=b",
		 "experiment tags listed, sorted, overwritten");
	is_int(store_rename_tag(f.s, NULL, SEC_EXP_TAGS, &ref, "team", "owner"), 0,
	       "rename an experiment tag");
	is_int(store_delete_tag(f.s, NULL, SEC_EXP_TAGS, &ref, "mlflow.note.content"), 0,
	       "delete an experiment tag");
	keys_are(&f, SEC_EXP_TAGS, &ref, NULL, "owner=b", "after rename and delete");
	is_int(raw_int(f.raw, &n, "SELECT count(*) FROM experiment_tags WHERE experiment_id = 1"),
	       0, "count experiment tag rows");
	is_int(n, 1, "one experiment_tags row");

	/*
	 * Refusing a tag on a deleted experiment must free the row it read.
	 * Measured over repeated refusals, each followed by a settle, after a
	 * few to warm SQLite's and the cache's tables: a leak leaves the name
	 * and the location behind every time.
	 */
	ref.experiment_id = b;
	leak_reports(0);
	is_int(store_set_tag(f.s, NULL, SEC_EXP_TAGS, &ref, "k", "v"), -ENOENT,
	       "no tag on a deleted experiment");
	is_int(store_delete_tag(f.s, NULL, SEC_EXP_TAGS, &ref, "k"), -ENOENT,
	       "no tag deleted on a deleted experiment");
	for (i = 0; i < 3; i++) {
		store_set_tag(f.s, NULL, SEC_EXP_TAGS, &ref, "k", "v");
		settle(&f);
	}
	before = heap_in_use();
	for (i = 0, refused = 0; i < 20; i++) {
		refused += store_set_tag(f.s, NULL, SEC_EXP_TAGS, &ref, "k", "v") == -ENOENT;
		settle(&f);
	}
	after = heap_in_use();
	leak_reports(1);
	is_int(refused, 20, "twenty more refusals");
	ok(after < before + 20 * 16,
	   "refusing a tag on a deleted experiment frees what it read (%zd bytes left after "
	   "20 refusals)",
	   (ssize_t)(after - before));
	fx_teardown(&f);
}

/* ---- runs ------------------------------------------------------------ */

/* A run of a bare backend's listing: "folder|user|artifact URI". */
static int collect_bare_run(void *ctx, const struct store_run *r)
{
	return list_add(ctx, "%s|%s|%s", r->folder ? r->folder : "(null)",
			r->user_id ? r->user_id : "(null)",
			r->artifact_uri ? (r->artifact_uri[0] ? "uri" : "") : "(null)");
}

/* A run of the cache's listing: "folder|user" (a listing leaves out the user). */
static int collect_cached_run(void *ctx, const struct store_run *r)
{
	return list_add(ctx, "%s|%s|%s", r->folder ? r->folder : "(null)",
			r->user_id ? r->user_id : "(null)", r->name);
}

static void test_runs(void)
{
	char exp[STORE_ID_MAX], other[STORE_RUN_ID_MAX], *want, *got;
	struct store_ref ref = { 0 };
	struct store_run r, g;
	struct buf b = BUF_INIT;
	int64_t t0, t1, n;
	struct fx f;

	if (fx_setup(&f, "runs")) {
		fx_teardown(&f);
		return;
	}
	ok(!new_exp(&f, "E", exp), "an experiment");
	t0 = wall_ms();
	is_int(store_create_run(f.s, NULL, exp, "train", "alice", &r), 0, "create a run");
	t1 = wall_ms();
	ok(is_run_id(r.run_id), "its id is 32 lowercase hex digits: %s", r.run_id);
	is_str(r.experiment_id, exp, "in its experiment");
	is_str(r.status, "RUNNING", "status RUNNING");
	is_str(r.name, "train", "its name");
	is_str(r.folder, "train", "its folder is its name");
	is_str(r.user_id, "alice", "its user");
	want = strf("%s/%s/%s/artifacts", f.root, exp, r.run_id);
	is_str(r.artifact_uri, want, "artifact_uri is <experiment location>/<id>/artifacts");
	free(want);
	ok(r.start_time >= t0 && r.start_time <= t1 && r.end_time == -1 && !r.deleted,
	   "started now, no end time, active");
	ref.run_id = r.run_id;
	keys_are(&f, SEC_RUN_TAGS, &ref, NULL, "mlflow.runName=train,mlflow.user=alice",
		 "tags mlflow.runName and mlflow.user are set");
	got = raw_text(f.raw,
		       "SELECT name || '|' || source_type || '|' || status || '|' || "
		       "lifecycle_stage || '|' || experiment_id || '|' || ifnull(end_time, 'null') "
		       "|| '|' || ifnull(deleted_time, 'null') FROM runs WHERE run_uuid = %Q",
		       r.run_id);
	want = strf("train|UNKNOWN|RUNNING|active|%s|null|null", exp);
	is_str(got, want, "the row is what MLflow writes for a new run");
	free(got);
	free(want);

	is_int(store_find_run(f.s, exp, "train", &g), 0, "find the run by folder");
	is_str(g.run_id, r.run_id, "the same run");
	is_str(g.folder, "train", "with its folder");
	is_str(g.user_id, "alice", "find fills the user");
	is_str(g.artifact_uri, r.artifact_uri, "and the artifact URI");
	store_run_release(&g);
	is_int(store_find_run(f.s, exp, r.run_id, &g), 0, "find the run by its id");
	is_str(g.folder, "train", "a run found by id still reports its folder");
	store_run_release(&g);
	is_int(store_get_run(f.s, r.run_id, &g), 0, "get_run");
	is_str(g.folder, "train", "get_run reports the folder");
	store_run_release(&g);
	is_int(store_find_run(f.s, "0", "train", &g), -ENOENT, "not found in another experiment");
	is_int(store_find_run(f.s, exp, "nope", &g), -ENOENT, "an unknown folder is -ENOENT");
	is_int(store_get_run(f.s, "0123456789abcdef0123456789abcdef", &g), -ENOENT,
	       "an unknown run id is -ENOENT");
	is_int(store_create_run(f.s, NULL, "99", "x", "u", &g), -ENOENT,
	       "a run in an unknown experiment is -ENOENT");

	/* Runs list by start time, then by (random) id: a later millisecond
	 * makes "oldest first" mean the order they were made in. */
	sleep_ms(2);
	ok(!new_run(&f, exp, "eval", other), "a second run");
	ok(strcmp(other, r.run_id) != 0, "run ids differ");
	is_int(raw_int(f.raw, &n, "SELECT count(*) FROM runs WHERE experiment_id = %s", exp), 0,
	       "count run rows");
	is_int(n, 2, "two rows");

	/* The cache names folders; the backend alone lists runs without them. */
	is_int(store_list_runs(f.s, exp, collect_cached_run, &b), 0, "list through the cache");
	is_str(buf_str(&b), "train|(null)|train,eval|(null)|eval",
	       "oldest first, with folders and names, without the user");
	buf_reset(&b);
	is_int(store_list_runs(f.bare, exp, collect_bare_run, &b), 0, "list on the backend");
	is_str(buf_str(&b), "(null)|alice|uri,(null)|tester|uri",
	       "the backend lists no folders, but users and artifact URIs");
	buf_release(&b);
	is_int(store_get_run(f.bare, r.run_id, &g), 0, "get_run on the backend");
	ok(g.folder == NULL && !strcmp(g.name, "train"), "gives the run without a folder");
	store_run_release(&g);
	is_int(store_find_run(f.bare, exp, "train", &g), -ENOSYS,
	       "find_run is the cache's: the backend says -ENOSYS");
	store_run_release(&r);
	fx_teardown(&f);
}

static void test_folders(void)
{
	char exp[STORE_ID_MAX], id[8][STORE_RUN_ID_MAX], fold[64], *want, *got;
	struct store_ref ref = { 0 };
	struct store_run r;
	int calls = 0;
	int64_t now;
	struct fx f;

	if (fx_setup(&f, "folders")) {
		fx_teardown(&f);
		return;
	}
	ok(!new_exp(&f, "F", exp), "an experiment");
	/* Distinct start times make "oldest" well defined. */
	ok(!new_run(&f, exp, "dup", id[0]), "run 0 'dup'");
	sleep_ms(3);
	ok(!new_run(&f, exp, "dup", id[1]), "run 1 'dup'");
	sleep_ms(3);
	ok(!new_run(&f, exp, "dup", id[2]), "run 2 'dup'");
	sleep_ms(3);
	ok(!new_run(&f, exp, "solo", id[3]), "run 3 'solo'");
	sleep_ms(3);
	ok(!new_run(&f, exp, "", id[4]), "run 4 with an empty name");
	sleep_ms(3);
	ok(!new_run(&f, exp, "tmp", id[5]), "run 5 'tmp'");
	is_int(store_rename_run(f.s, NULL, id[5], ""), 0, "rename run 5 to the empty name");
	want = strf("dup,dup@%.8s,dup@%.8s,solo,%s,%s", id[1], id[2], id[4], id[5]);
	folders_are(&f, exp, want,
		    "oldest keeps the name, others name@<8 hex>, nameless runs show their id");
	free(want);
	snprintf(fold, sizeof(fold), "dup@%.8s", id[2]);
	ok(finds(&f, exp, "dup", id[0]), "'dup' is the oldest run");
	ok(finds(&f, exp, fold, id[2]), "'%s' is run 2", fold);
	ok(finds(&f, exp, id[4], id[4]), "a nameless run is found by its id");
	got = folder_of(&f, id[1]);
	want = strf("dup@%.8s", id[1]);
	is_str(got, want, "get_run reports the suffixed folder");
	free(got);
	free(want);
	if (store_get_run(f.s, id[5], &r) == 0) {
		is_str(r.name, "", "the renamed run has the empty name");
		is_str(r.folder, id[5], "and its id as folder");
		store_run_release(&r);
	} else {
		ok(0, "get_run of run 5");
	}
	ref.run_id = id[5];
	keys_are(&f, SEC_RUN_TAGS, &ref, "mlflow.runName",
		 "mlflow.runName=", "renaming mirrors the name into mlflow.runName");

	/* The oldest goes: the next oldest takes the plain name. */
	is_int(store_delete_run(f.s, NULL, id[0]), 0, "delete run 0");
	want = strf("dup,dup@%.8s,solo,%s,%s", id[2], id[4], id[5]);
	folders_are(&f, exp, want, "run 1 now has the plain name");
	free(want);
	ok(finds(&f, exp, "dup", id[1]), "'dup' is run 1 now");
	/* Run 2 is older than run 3: renamed to "solo", it takes the name. */
	is_int(store_rename_run(f.s, NULL, id[2], "solo"), 0, "rename run 2 to 'solo'");
	want = strf("dup,solo,solo@%.8s,%s,%s", id[3], id[4], id[5]);
	folders_are(&f, exp, want, "the older of two 'solo' runs keeps the plain name");
	free(want);
	ok(finds(&f, exp, "solo", id[2]), "'solo' is run 2 now");
	ref.run_id = id[3];
	is_int(store_set_tag(f.s, NULL, SEC_RUN_TAGS, &ref, "mlflow.runName", "renamed"), 0,
	       "set mlflow.runName of run 3");
	want = strf("dup,solo,renamed,%s,%s", id[4], id[5]);
	folders_are(&f, exp, want, "the tag renamed run 3 and its folder");
	free(want);
	ok(finds(&f, exp, "renamed", id[3]), "'renamed' is run 3");

	/* Runs written by MLflow itself: an empty runs.name falls back to the tag. */
	now = wall_ms();
	snprintf(id[6], STORE_RUN_ID_MAX, "%s", "6a6a6a6a6a6a4a6a8a6a6a6a6a6a6a6a");
	snprintf(id[7], STORE_RUN_ID_MAX, "%s", "7b7b7b7b7b7b4b7b8b7b7b7b7b7b7b7b");
	ok(!settle(&f) &&
		   !raw_exec(
			   f.raw,
			   "INSERT INTO runs (run_uuid, name, source_type, source_name, "
			   "entry_point_name, user_id, status, start_time, end_time, "
			   "source_version, lifecycle_stage, artifact_uri, experiment_id, "
			   "deleted_time) VALUES (%Q, '', 'UNKNOWN', '', '', 'mlflow', 'RUNNING', "
			   "%lld, NULL, '', 'active', %Q, %s, NULL);"
			   "INSERT INTO tags (key, value, run_uuid) "
			   "VALUES ('mlflow.runName', 'fromtag', %Q);"
			   "INSERT INTO runs (run_uuid, name, source_type, source_name, "
			   "entry_point_name, user_id, status, start_time, end_time, "
			   "source_version, lifecycle_stage, artifact_uri, experiment_id, "
			   "deleted_time) VALUES (%Q, NULL, 'UNKNOWN', '', '', 'mlflow', "
			   "'RUNNING', %lld, NULL, '', 'active', 'x', %s, NULL)",
			   id[6], (long long)now + 10, "/a", exp, id[6], id[7], (long long)now + 20,
			   exp),
	   "insert two runs the way MLflow does, on another connection");
	want = strf("dup,solo,renamed,%s,%s,fromtag,%s", id[4], id[5], id[7]);
	folders_are(&f, exp, want,
		    "another writer's runs appear at once: the tag names an unnamed run, "
		    "a run without either shows its id");
	free(want);
	if (store_find_run(f.s, exp, "fromtag", &r) == 0) {
		is_str(r.run_id, id[6], "'fromtag' is the run MLflow inserted");
		is_str(r.name, "fromtag", "its name is read from mlflow.runName");
		store_run_release(&r);
	} else {
		ok(0, "find 'fromtag'");
	}

	/* A listing stops at a positive callback value and returns it. */
	is_int(store_list_runs(f.s, exp, stop_run, &calls), 7, "list_runs returns a stop value");
	is_int(calls, 1, "after one callback");
	calls = 0;
	ok(store_list_runs(f.bare, exp, stop_run, &calls) == 7, "so does the backend's list_runs");
	is_int(calls, 1, "after one callback");

	/*
	 * A run whose name is another run's suffixed folder: every folder must
	 * still be unique and lead to its own run.  A is the oldest "x"; C, older
	 * than B, is renamed to the folder B would get ("x@<B>"), then B to "x".
	 */
	{
		char e2[STORE_ID_MAX], ra[STORE_RUN_ID_MAX], rb[STORE_RUN_ID_MAX],
			rc[STORE_RUN_ID_MAX], *list, *item[8], *p, *save = NULL;
		int unique = 1, all_found, n = 0, x, y;

		ok(!new_exp(&f, "collide", e2), "an experiment for folder collisions");
		ok(!new_run(&f, e2, "x", ra), "run A 'x'");
		sleep_ms(3);
		ok(!new_run(&f, e2, "c", rc), "run C");
		sleep_ms(3);
		ok(!new_run(&f, e2, "b", rb), "run B");
		snprintf(fold, sizeof(fold), "x@%.8s", rb);
		ok(store_rename_run(f.s, NULL, rc, fold) == 0, "rename C to '%s'", fold);
		is_int(store_rename_run(f.s, NULL, rb, "x"), 0, "rename B to 'x'");
		list = folders(&f, e2);
		tap_diag("folders: %s", list ? list : "(null)");
		for (p = list ? strtok_r(list, ",", &save) : NULL; p && n < 8;
		     p = strtok_r(NULL, ",", &save))
			item[n++] = p;
		for (x = 0; x < n; x++)
			for (y = x + 1; y < n; y++)
				if (!strcmp(item[x], item[y]))
					unique = 0;
		free(list);
		is_int(n, 3, "three folders listed");
		ok(unique, "folder names in one experiment are unique");
		all_found = finds(&f, e2, "x", ra) && finds(&f, e2, fold, rc);
		got = folder_of(&f, rb);
		ok(all_found, "A and C are found by their folders");
		ok(got && finds(&f, e2, got, rb), "B is found by the folder get_run reports (%s)",
		   got ? got : "(null)");
		free(got);
	}
	fx_teardown(&f);
}

/* Renaming a run frees its old folder name.  Measured over repeated
 * renames, after a few to warm SQLite's and the cache's tables. */
static void test_rename_frees(void)
{
	static const char *const names[] = {
		"a-run-name-long-enough-to-measure-0123456789",
		"another-run-name-long-enough-to-measure-0123",
	};
	char exp[STORE_ID_MAX], run[STORE_RUN_ID_MAX], *list;
	size_t before, after;
	int i, renamed = 0;
	struct fx f;

	if (fx_setup(&f, "renames")) {
		fx_teardown(&f);
		return;
	}
	ok(!new_exp(&f, "R", exp) && !new_run(&f, exp, names[0], run), "a run");
	for (i = 0; i < 4; i++) {
		store_rename_run(f.s, NULL, run, names[(i + 1) % 2]);
		free(folders(&f, exp));
	}
	before = heap_in_use();
	for (i = 0; i < 200; i++) {
		renamed += !store_rename_run(f.s, NULL, run, names[(i + 1) % 2]);
		free(folders(&f, exp));
	}
	after = heap_in_use();
	is_int(renamed, 200, "two hundred renames while the run list is cached");
	list = folders(&f, exp);
	is_str(list, names[0], "the run has its last name as folder");
	free(list);
	ok(after < before + 200 * 8,
	   "renaming a listed run frees its old folder name (%zd bytes left after 200 "
	   "renames)",
	   (ssize_t)(after - before));
	fx_teardown(&f);
}

/* ---- params and tags ------------------------------------------------- */

static void test_params(void)
{
	static const char *const names[] = { "b",	 "a",	     "B",	"train/lr",
					     "train/bs", "trainx",   "a_c",	"abc",
					     "empty",	 "zeta.one", "zeta-two" };
	char exp[STORE_ID_MAX], run[STORE_RUN_ID_MAX];
	struct store_ref ref = { 0 };
	struct store_kv kv;
	int calls = 0, failed = 0;
	size_t i;
	int64_t n;
	struct fx f;

	if (fx_setup(&f, "params")) {
		fx_teardown(&f);
		return;
	}
	ok(!new_exp(&f, "P", exp) && !new_run(&f, exp, "r", run), "a run");
	ref.run_id = run;
	is_int(store_log_param(f.s, NULL, run, "lr", "0.01"), 0, "log a param");
	is_int(store_log_param(f.s, NULL, run, "lr", "0.01"), 0, "the same value again is fine");
	is_int(store_log_param(f.s, NULL, run, "lr", "0.02"), -EPERM,
	       "a different value is -EPERM");
	ok(strstr(store_errmsg(), "lr") && strstr(store_errmsg(), "0.01"),
	   "store_errmsg names the param and its value: %s", store_errmsg());
	is_int(snap_get(f.s, run, SEC_PARAMS, "lr", &kv), 0, "the run's snapshot has the param");
	is_str(kv.key, "lr", "its key");
	is_str(kv.value, "0.01", "the first value stays");
	store_kv_release(&kv);
	is_int(store_get_kv(f.s, SEC_PARAMS, &ref, "lr", &kv), 0, "store_get_kv reads it too");
	is_str(kv.value, "0.01", "with the same value");
	store_kv_release(&kv);
	is_int(raw_int(f.raw, &n, "SELECT count(*) FROM params WHERE run_uuid = %Q", run), 0,
	       "count param rows");
	is_int(n, 1, "one params row");
	is_int(snap_get(f.s, run, SEC_PARAMS, "missing", &kv), -ENOENT,
	       "an unknown param is not in the snapshot");
	is_int(store_get_kv(f.s, SEC_PARAMS, &ref, "missing", &kv), -ENOENT,
	       "store_get_kv of an unknown param is -ENOENT");

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (store_log_param(f.s, NULL, run, names[i],
				    strcmp(names[i], "empty") ? names[i] : ""))
			failed++;
	is_int(failed, 0, "log eleven more params");
	keys_are(&f, SEC_PARAMS, &ref, NULL,
		 "B=B,a=a,a_c=a_c,abc=abc,b=b,empty=,lr=0.01,train/bs=train/bs,"
		 "train/lr=train/lr,trainx=trainx,zeta-two=zeta-two,zeta.one=zeta.one",
		 "the snapshot: every param, in byte order");
	list_keys_are(f.s, SEC_PARAMS, &ref, NULL,
		      "B=B,a=a,a_c=a_c,abc=abc,b=b,empty=,lr=0.01,train/bs=train/bs,"
		      "train/lr=train/lr,trainx=trainx,zeta-two=zeta-two,zeta.one=zeta.one",
		      "list_kv: the same");
	/* Prefixes are the backend's SQL (store_list_kv). */
	list_keys_are(f.s, SEC_PARAMS, &ref, "",
		      "B=B,a=a,a_c=a_c,abc=abc,b=b,empty=,lr=0.01,"
		      "train/bs=train/bs,train/lr=train/lr,trainx=trainx,zeta-two=zeta-two,"
		      "zeta.one=zeta.one",
		      "an empty prefix lists everything");
	list_keys_are(f.s, SEC_PARAMS, &ref, "train/", "train/bs=train/bs,train/lr=train/lr",
		      "prefix 'train/'");
	list_keys_are(f.s, SEC_PARAMS, &ref, "train",
		      "train/bs=train/bs,train/lr=train/lr,trainx=trainx", "prefix 'train'");
	list_keys_are(f.s, SEC_PARAMS, &ref, "a_", "a_c=a_c", "'_' in a prefix is no wildcard");
	list_keys_are(f.s, SEC_PARAMS, &ref, "A", "", "prefixes are case-sensitive");
	list_keys_are(f.s, SEC_PARAMS, &ref, "zz", "", "a prefix nothing has lists nothing");
	is_int(snap_get(f.s, run, SEC_PARAMS, "empty", &kv), 0, "read an empty param");
	is_str(kv.value, "", "its value is empty");
	store_kv_release(&kv);
	is_int(store_list_kv(f.s, SEC_PARAMS, &ref, NULL, stop_kv, &calls), 3,
	       "list_kv returns a stop value");
	is_int(calls, 1, "after one callback");
	fx_teardown(&f);
}

static void test_tags(void)
{
	char exp[STORE_ID_MAX], run[STORE_RUN_ID_MAX], *got;
	struct store_ref ref = { 0 }, mref = { 0 };
	struct store_run r;
	struct store_kv kv;
	struct fx f;

	if (fx_setup(&f, "tags")) {
		fx_teardown(&f);
		return;
	}
	ok(!new_exp(&f, "T", exp) && !new_run(&f, exp, "first", run), "a run");
	ref.run_id = run;
	is_int(store_set_tag(f.s, NULL, SEC_RUN_TAGS, &ref, "k", "v1"), 0, "set a tag");
	is_int(store_set_tag(f.s, NULL, SEC_RUN_TAGS, &ref, "k", "v2"), 0, "set it again");
	is_int(snap_get(f.s, run, SEC_RUN_TAGS, "k", &kv), 0, "read it");
	is_str(kv.value, "v2", "a tag is overwritten");
	store_kv_release(&kv);
	is_int(store_set_tag(f.s, NULL, SEC_RUN_TAGS, &ref, "note/a", "x"), 0, "set note/a");
	is_int(store_set_tag(f.s, NULL, SEC_RUN_TAGS, &ref, "note/b", "y"), 0, "set note/b");
	keys_are(&f, SEC_RUN_TAGS, &ref, "note/", "note/a=x,note/b=y", "tags by prefix");
	list_keys_are(f.s, SEC_RUN_TAGS, &ref, "note/", "note/a=x,note/b=y",
		      "list_kv by prefix agrees");
	is_int(store_delete_tag(f.s, NULL, SEC_RUN_TAGS, &ref, "k"), 0, "delete a tag");
	is_int(snap_get(f.s, run, SEC_RUN_TAGS, "k", &kv), -ENOENT, "it is gone");
	is_int(store_delete_tag(f.s, NULL, SEC_RUN_TAGS, &ref, "k"), -ENOENT,
	       "deleting a missing tag is -ENOENT");

	is_int(store_rename_tag(f.s, NULL, SEC_RUN_TAGS, &ref, "note/a", "note/c"), 0,
	       "rename a tag");
	keys_are(&f, SEC_RUN_TAGS, &ref, "note/", "note/b=y,note/c=x",
		 "the tag moved with its value");
	is_int(store_rename_tag(f.s, NULL, SEC_RUN_TAGS, &ref, "note/b", "note/c"), 0,
	       "rename onto an existing tag");
	keys_are(&f, SEC_RUN_TAGS, &ref, "note/", "note/c=y", "the target was replaced");
	is_int(store_rename_tag(f.s, NULL, SEC_RUN_TAGS, &ref, "nope", "note/d"), -ENOENT,
	       "renaming a missing tag is -ENOENT");
	keys_are(&f, SEC_RUN_TAGS, &ref, "note/", "note/c=y", "and changes nothing");
	is_int(store_rename_tag(f.s, NULL, SEC_RUN_TAGS, &ref, "note/c", "note/c"), 0,
	       "rename a tag onto itself");
	got = keys(&f, SEC_RUN_TAGS, &ref, "note/");
	ok(got && !strcmp(got, "note/c=y"), "a tag renamed onto itself keeps its value (got '%s')",
	   got ? got : "(null)");
	free(got);

	/* mlflow.runName is the run's name. */
	is_int(store_set_tag(f.s, NULL, SEC_RUN_TAGS, &ref, "mlflow.runName", "second"), 0,
	       "set mlflow.runName");
	if (store_get_run(f.s, run, &r) == 0) {
		is_str(r.name, "second", "the run is renamed");
		is_str(r.folder, "second", "and so is its folder");
		store_run_release(&r);
	} else {
		ok(0, "get the renamed run");
	}
	got = raw_text(f.raw, "SELECT name FROM runs WHERE run_uuid = %Q", run);
	is_str(got, "second", "runs.name follows the tag, as MLflow keeps them");
	free(got);
	ok(finds(&f, exp, "second", run), "found under the new name");
	is_int(store_find_run(f.s, exp, "first", &r), -ENOENT, "not under the old one");
	is_int(store_set_tag(f.s, NULL, SEC_RUN_TAGS, &ref, "draft", "third"), 0,
	       "set a tag 'draft'");
	is_int(store_rename_tag(f.s, NULL, SEC_RUN_TAGS, &ref, "draft", "mlflow.runName"), 0,
	       "rename 'draft' onto mlflow.runName");
	got = folder_of(&f, run);
	is_str(got, "third", "that renames the run too");
	free(got);
	is_int(store_rename_run(f.s, NULL, run, "fourth"), 0, "rename_run");
	is_int(snap_get(f.s, run, SEC_RUN_TAGS, "mlflow.runName", &kv), 0, "read the name tag");
	is_str(kv.value, "fourth", "rename_run updates mlflow.runName");
	store_kv_release(&kv);

	/* Tags of a model that is not there (test_registry_writes has the rest). */
	mref.model = "m";
	is_int(store_set_tag(f.s, NULL, SEC_MODEL_TAGS, &mref, "k", "v"), -ENOENT,
	       "a tag of a missing model is -ENOENT");
	mref.version = 1;
	is_int(store_delete_tag(f.s, NULL, SEC_VERSION_TAGS, &mref, "k"), -ENOENT,
	       "a tag of a missing version is -ENOENT");
	fx_teardown(&f);
}

/* ---- metrics --------------------------------------------------------- */

/* Steps as a write() of lines gives them: reserved through the cache. */
static void test_metric_steps(void)
{
	char exp[STORE_ID_MAX], run[STORE_RUN_ID_MAX], run2[STORE_RUN_ID_MAX], *want;
	struct metric_point p[4];
	struct store_ref ref = { 0 };
	int64_t t0, t1;
	struct fx f;

	if (fx_setup(&f, "steps")) {
		fx_teardown(&f);
		return;
	}
	ok(!new_exp(&f, "M", exp) && !new_run(&f, exp, "r", run) && !new_run(&f, exp, "r2", run2),
	   "two runs");
	ref.run_id = run;
	p[0] = pt(1);
	p[1] = pt(2);
	p[2] = pt(3);
	t0 = wall_ms();
	is_int(log_auto(f.s, NULL, run, "loss", p, 3), 0, "log 3 points without steps");
	t1 = wall_ms();
	ok(p[0].step == 0 && p[1].step == 1 && p[2].step == 2, "they get steps 0, 1, 2");
	ok(p[0].timestamp >= t0 && p[2].timestamp <= t1, "and the time of now");
	want = strf("0:1:%" PRId64 ",1:2:%" PRId64 ",2:3:%" PRId64, p[0].timestamp, p[1].timestamp,
		    p[2].timestamp);
	history_is(&f, run, "loss", 1, want, "the store keeps the steps and times given");
	free(want);
	p[0] = pt(4);
	p[1] = pt(5);
	is_int(log_auto(f.s, NULL, run, "loss", p, 2), 0, "log 2 more");
	ok(p[0].step == 3 && p[1].step == 4, "steps continue across calls: 3, 4");
	p[0] = pt_at(10, 6, 1234);
	p[1] = pt(7);
	is_int(log_auto(f.s, NULL, run, "loss", p, 2), 0, "an explicit step 10, then none");
	ok(p[0].step == 10 && p[0].timestamp == 1234 && p[1].step == 11,
	   "the explicit step and time are kept, the next point gets 11");
	p[0] = pt(8);
	is_int(log_auto(f.s, NULL, run, "loss", p, 1), 0, "one more without a step");
	is_int(p[0].step, 12, "it gets max+1 = 12");
	p[0] = pt_step(3, 9);
	p[1] = pt(10);
	is_int(log_auto(f.s, NULL, run, "loss", p, 2), 0, "a lower explicit step, then none");
	ok(p[0].step == 3 && p[1].step == 13, "a lower step does not lower the next one: 13");
	is_int(store_log_metrics(f.s, NULL, run, "loss", p, 0), 0, "logging no points is fine");
	history_is(&f, run, "loss", 0, "0:1,1:2,2:3,3:4,3:9,4:5,10:6,11:7,12:8,13:10",
		   "every point with its step");

	p[0] = pt(1);
	p[1] = pt_step(20, 2);
	p[2] = pt(3);
	is_int(log_auto(f.s, NULL, run, "mix", p, 3), 0, "none, 20, none in one call");
	ok(p[0].step == 0 && p[1].step == 20 && p[2].step == 21, "steps 0, 20, 21 within one call");
	p[0] = pt_step(-5, 1);
	is_int(log_auto(f.s, NULL, run, "neg", p, 1), 0, "a negative step");
	p[0] = pt(2);
	is_int(log_auto(f.s, NULL, run, "neg", p, 1), 0, "then one without a step");
	is_int(p[0].step, -4, "across calls, the next step after -5 is -4");
	p[0] = pt_step(-5, 1);
	p[1] = pt(2);
	is_int(log_auto(f.s, NULL, run2, "neg1", p, 2), 0, "a negative step, then none, at once");
	is_int(p[1].step, -4, "within one call, the next step after -5 is -4 too");
	p[0] = pt(1);
	is_int(log_auto(f.s, NULL, run2, "loss", p, 1), 0, "the same key in another run");
	is_int(p[0].step, 0, "steps count per run: 0");
	p[0] = pt(1);
	is_int(log_auto(f.s, NULL, run, "other", p, 1), 0, "another key in the run");
	is_int(p[0].step, 0, "steps count per key: 0");
	keys_are(&f, SEC_METRICS, &ref, NULL, "loss=10@13,mix=3@21,neg=2@-4,other=1@0",
		 "the snapshot gives each metric's latest value and step, sorted");
	list_keys_are(f.s, SEC_METRICS, &ref, NULL, "loss=10@13,mix=3@21,neg=2@-4,other=1@0",
		      "so does list_kv");
	list_keys_are(f.s, SEC_METRICS, &ref, "m", "mix=3@21", "metrics by prefix");
	fx_teardown(&f);
}

struct reserver {
	struct store *s;
	const char *run_id;
	int64_t first[200];
	size_t n[200];
	int err;
};

static void *reserver_main(void *arg)
{
	struct reserver *r = arg;
	int i;

	for (i = 0; i < 200 && !r->err; i++) {
		r->n[i] = 1 + (size_t)(i % 4);
		r->err = store_reserve_steps(r->s, r->run_id, "shared", INT64_MIN, r->n[i],
					     &r->first[i]);
	}
	return NULL;
}

static int cmp_range(const void *a, const void *b)
{
	const int64_t *x = a, *y = b;

	return x[0] < y[0] ? -1 : x[0] > y[0];
}

static void test_reserve_steps(void)
{
	char exp[STORE_ID_MAX], run[STORE_RUN_ID_MAX];
	struct reserver rs[4];
	pthread_t tid[4];
	int started[4], i, j, bad = 0;
	int64_t first = -99, second = -99, (*ranges)[2];
	struct metric_point p[2];
	size_t nr = 0;
	struct fx f;

	if (fx_setup(&f, "reserve")) {
		fx_teardown(&f);
		return;
	}
	ok(!new_exp(&f, "R", exp) && !new_run(&f, exp, "r", run), "a run");

	/* The cache hands out steps; the backend only says what comes next. */
	is_int(store_reserve_steps(f.s, run, "m", INT64_MIN, 3, &first), 0, "reserve 3 steps");
	is_int(first, 0, "a new metric starts at 0");
	is_int(store_reserve_steps(f.s, run, "m", INT64_MIN, 2, &second), 0, "reserve 2 more");
	is_int(second, 3, "reservations never overlap, though nothing was logged: 3");
	is_int(store_reserve_steps(f.bare, run, "m", INT64_MIN, 5, &first), 0, "ask the backend");
	is_int(first, 0, "it answers from what is logged: nothing, so 0");
	is_int(store_reserve_steps(f.bare, run, "m", INT64_MIN, 5, &first), 0, "ask it again");
	is_int(first, 0, "and remembers nothing: 0 again");

	/* Explicit steps move the next auto-step. */
	p[0] = pt_at(10, 1, 100);
	is_int(store_log_metrics(f.s, NULL, run, "m", p, 1), 0, "log an explicit step 10");
	is_int(store_reserve_steps(f.s, run, "m", INT64_MIN, 1, &first), 0, "reserve one");
	is_int(first, 11, "after it: 11");
	is_int(store_reserve_steps(f.bare, run, "m", INT64_MIN, 1, &first), 0, "ask the backend");
	is_int(first, 11, "one more than the highest step logged: 11");
	p[0] = pt_at(2, 1, 100);
	is_int(store_log_metrics(f.s, NULL, run, "m", p, 1), 0, "log a lower explicit step");
	is_int(store_reserve_steps(f.s, run, "m", INT64_MIN, 1, &first), 0, "reserve one");
	is_int(first, 12, "a lower step moves nothing: 12");

	/* Negative steps: the next is one more, 0 only for a metric without any. */
	p[0] = pt_at(-5, 1, 100);
	is_int(store_log_metrics(f.s, NULL, run, "neg", p, 1), 0, "log step -5 of a new metric");
	is_int(store_reserve_steps(f.s, run, "neg", INT64_MIN, 1, &first), 0, "reserve one");
	is_int(first, -4, "after -5 comes -4");
	is_int(store_reserve_steps(f.bare, run, "neg", INT64_MIN, 1, &first), 0, "ask the backend");
	is_int(first, -4, "it says -4 too");
	is_int(store_reserve_steps(f.s, run, "neg2", -9, 2, &first), 0,
	       "reserve 2 after an explicit -10 about to be logged (floor -9)");
	is_int(first, -9, "a floor says where a new metric starts: -9");
	is_int(store_reserve_steps(f.bare, run, "neg2", -9, 1, &first), 0,
	       "the backend, with the same floor");
	is_int(first, -9, "says -9 too");
	is_int(store_reserve_steps(f.bare, run, "neg3", INT64_MIN, 1, &first), 0,
	       "the backend, for a metric without points and no floor");
	is_int(first, 0, "says 0");

	/* A floor is honoured, and moves what comes after it. */
	is_int(store_reserve_steps(f.s, run, "m", 100, 2, &first), 0, "reserve 2 at floor 100");
	is_int(first, 100, "they start at the floor");
	is_int(store_reserve_steps(f.s, run, "m", INT64_MIN, 1, &first), 0, "reserve one without");
	is_int(first, 102, "the next comes after them: 102");
	is_int(store_reserve_steps(f.s, run, "m", 50, 1, &first), 0, "a floor below the next");
	is_int(first, 103, "changes nothing: 103");
	is_int(store_reserve_steps(f.bare, run, "m", 50, 1, &first), 0, "the backend, floor 50");
	is_int(first, 50, "gives the floor above what is logged");
	is_int(store_reserve_steps(f.bare, run, "m", 5, 1, &first), 0, "the backend, floor 5");
	is_int(first, 11, "gives what is logged above the floor");

	/* Another client's points move it too. */
	ok(!settle(&f) && !raw_exec(f.raw,
				    "INSERT INTO metrics (key, value, timestamp, run_uuid, step, "
				    "is_nan) VALUES ('m', 1, 5, %Q, 500, 0)",
				    run),
	   "another client logs step 500");
	is_int(store_reserve_steps(f.s, run, "m", INT64_MIN, 1, &first), 0, "reserve one");
	is_int(first, 501, "the cache sees it: 501");

	/* The last step there is stays the last. */
	p[0] = pt_at(INT64_MAX, 1, 100);
	is_int(store_log_metrics(f.s, NULL, run, "top", p, 1), 0, "log step INT64_MAX");
	is_int(store_reserve_steps(f.s, run, "top", INT64_MIN, 3, &first), 0, "reserve after it");
	is_int(first, INT64_MAX, "the next step saturates at INT64_MAX");
	is_int(store_reserve_steps(f.bare, run, "top", INT64_MIN, 1, &first), 0, "ask the backend");
	is_int(first, INT64_MAX, "so does the backend's");

	/* Threads reserving at once still never share a step. */
	for (i = 0; i < 4; i++) {
		memset(&rs[i], 0, sizeof(rs[i]));
		rs[i].s = f.s;
		rs[i].run_id = run;
		started[i] = pthread_create(&tid[i], NULL, reserver_main, &rs[i]) == 0;
	}
	ranges = calloc(4 * 200, sizeof(*ranges));
	for (i = 0; i < 4; i++) {
		if (started[i])
			pthread_join(tid[i], NULL);
		if (!started[i] || rs[i].err)
			bad++;
		for (j = 0; ranges && started[i] && !rs[i].err && j < 200; j++) {
			ranges[nr][0] = rs[i].first[j];
			ranges[nr][1] = rs[i].first[j] + (int64_t)rs[i].n[j];
			nr++;
		}
	}
	is_int(bad, 0, "four threads reserved 200 times each");
	if (ranges)
		qsort(ranges, nr, sizeof(*ranges), cmp_range);
	for (i = 1; ranges && i < (int)nr; i++)
		if (ranges[i][0] < ranges[i - 1][1])
			bad++;
	ok(nr == 800 && !bad && ranges && ranges[0][0] == 0 &&
		   ranges[nr - 1][1] == 4 * (1 + 2 + 3 + 4) * 50,
	   "their 800 reservations are disjoint and leave no gap (%d overlaps)", bad);
	free(ranges);
	fx_teardown(&f);
}

static void test_metric_values(void)
{
	static const double want_v[] = { 0.0, DBL_MAX, -DBL_MAX, 0.25 };
	static const int want_nan[] = { 1, 0, 0, 0 };
	char exp[STORE_ID_MAX], run[STORE_RUN_ID_MAX];
	struct metric_point p[4];
	struct store_kv kv;
	sqlite3_stmt *st;
	int rows = 0, good = 0;
	struct fx f;

	if (fx_setup(&f, "values")) {
		fx_teardown(&f);
		return;
	}
	ok(!new_exp(&f, "V", exp) && !new_run(&f, exp, "r", run), "a run");
	p[0] = pt_at(0, NAN, 100);
	p[1] = pt_at(1, INFINITY, 100);
	p[2] = pt_at(2, -INFINITY, 100);
	p[3] = pt_at(3, 0.25, 100);
	is_int(store_log_metrics(f.s, NULL, run, "v", p, 4), 0, "log NaN, inf, -inf, 0.25");
	history_is(&f, run, "v", 0, "0:nan,1:inf,2:-inf,3:0.25", "they read back as written");
	is_int(settle(&f), 0, "settle");
	st = NULL;
	if (sqlite3_prepare_v2(f.raw,
			       "SELECT step, value, is_nan FROM metrics WHERE run_uuid = ?1 "
			       "AND key = 'v' ORDER BY step",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
		while (sqlite3_step(st) == SQLITE_ROW) {
			int64_t step = sqlite3_column_int64(st, 0);
			double v = sqlite3_column_double(st, 1);
			int is_nan = sqlite3_column_int(st, 2);

			if (step == rows && rows < 4 && v == want_v[rows] &&
			    is_nan == want_nan[rows])
				good++;
			else
				tap_diag("row step %" PRId64 ": value %.17g is_nan %d", step, v,
					 is_nan);
			rows++;
		}
	}
	sqlite3_finalize(st);
	is_int(rows, 4, "four metrics rows");
	is_int(good, 4, "stored as MLflow does: NaN as 0 with is_nan=1, +-inf as +-DBL_MAX");

	p[0] = pt_at(0, NAN, 100);
	is_int(store_log_metrics(f.s, NULL, run, "n", p, 1), 0, "a metric whose only point is NaN");
	is_int(snap_get(f.s, run, SEC_METRICS, "n", &kv), 0, "read its latest value");
	ok(isnan(kv.num) && kv.value == NULL, "the latest value is NaN");
	store_kv_release(&kv);
	p[0] = pt_at(0, INFINITY, 100);
	is_int(store_log_metrics(f.s, NULL, run, "i", p, 1), 0, "a metric whose only point is inf");
	is_int(snap_get(f.s, run, SEC_METRICS, "i", &kv), 0, "read its latest value");
	ok(isinf(kv.num) && kv.num > 0, "the latest value is inf");
	store_kv_release(&kv);
	{
		int64_t n;

		is_int(raw_int(f.raw, &n,
			       "SELECT count(*) FROM latest_metrics WHERE run_uuid = %Q AND "
			       "((key = 'n' AND value = 0 AND is_nan = 1) OR "
			       "(key = 'i' AND value = 1.7976931348623157e308 AND is_nan = 0) OR "
			       "(key = 'v' AND value = 0.25 AND step = 3 AND is_nan = 0))",
			       run),
		       0, "read latest_metrics");
		is_int(n, 3, "latest_metrics rows hold the stored forms too");
	}
	fx_teardown(&f);
}

/*
 * The latest point of a metric by MLflow's rule, as the run's snapshot
 * shows it: read between the writes, so the cache keeps a snapshot that each
 * write must update correctly; then the backend's own answer (list_kv) must
 * agree with it.
 */
static void test_metric_latest(void)
{
	char exp[STORE_ID_MAX], run[STORE_RUN_ID_MAX], *got;
	struct metric_point p[3];
	struct store_ref ref = { 0 };
	const struct store_snapshot *snap;
	struct store_run r;
	struct store_kv kv;
	int64_t future;
	struct fx f;

	if (fx_setup(&f, "latest")) {
		fx_teardown(&f);
		return;
	}
	ok(!new_exp(&f, "L", exp) && !new_run(&f, exp, "r", run), "a run");
	ref.run_id = run;
	p[0] = pt_at(5, 5, 1000);
	is_int(store_log_metrics(f.s, NULL, run, "late", p, 1), 0, "step 5");
	p[0] = pt_at(3, 3, 2000);
	is_int(store_log_metrics(f.s, NULL, run, "late", p, 1), 0, "then step 3, later in time");
	keys_are(&f, SEC_METRICS, &ref, "late", "late=5@5", "step 5 stays the latest");
	p[0] = pt_at(5, 100, 999);
	is_int(store_log_metrics(f.s, NULL, run, "late", p, 1), 0, "step 5 at an earlier time");
	keys_are(&f, SEC_METRICS, &ref, "late", "late=5@5", "the earlier time does not win");
	p[0] = pt_at(5, 4, 1000);
	is_int(store_log_metrics(f.s, NULL, run, "late", p, 1), 0,
	       "step 5, same time, smaller value");
	keys_are(&f, SEC_METRICS, &ref, "late", "late=5@5", "the smaller value does not win");
	p[0] = pt_at(5, 6, 1000);
	is_int(store_log_metrics(f.s, NULL, run, "late", p, 1), 0,
	       "step 5, same time, larger value");
	keys_are(&f, SEC_METRICS, &ref, "late", "late=6@5", "the larger value wins the tie");
	p[0] = pt_at(5, -1, 1001);
	is_int(store_log_metrics(f.s, NULL, run, "late", p, 1), 0, "step 5, a later time");
	keys_are(&f, SEC_METRICS, &ref, "late", "late=-1@5", "the later time wins");
	is_int(snap_get(f.s, run, SEC_METRICS, "late", &kv), 0, "get the latest");
	ok(kv.num == -1 && kv.step == 5 && kv.timestamp == 1001, "value -1, step 5, time 1001");
	store_kv_release(&kv);
	got = raw_text(f.raw,
		       "SELECT step || ' ' || timestamp || ' ' || value FROM latest_metrics "
		       "WHERE run_uuid = %Q AND key = 'late'",
		       run);
	is_str(got, "5 1001 -1.0", "latest_metrics holds that point");
	free(got);

	p[0] = pt_at(9, 1, 10);
	p[1] = pt_at(2, 2, 99);
	p[2] = pt_at(9, 0.5, 10);
	is_int(store_log_metrics(f.s, NULL, run, "batch", p, 3), 0, "three points in one call");
	keys_are(&f, SEC_METRICS, &ref, "batch", "batch=1@9",
		 "the greatest (step, time, value) of a call is latest");
	p[0] = pt_at(7, NAN, 50);
	is_int(store_log_metrics(f.s, NULL, run, "nan", p, 1), 0, "NaN at step 7");
	keys_are(&f, SEC_METRICS, &ref, "nan", "nan=nan@7", "NaN is the latest");
	p[0] = pt_at(7, 0.5, 50);
	is_int(store_log_metrics(f.s, NULL, run, "nan", p, 1), 0, "0.5 at the same step and time");
	keys_are(&f, SEC_METRICS, &ref, "nan", "nan=0.5@7",
		 "NaN compares as its stored 0: 0.5 wins");
	p[0] = pt_at(7, NAN, 50);
	is_int(store_log_metrics(f.s, NULL, run, "nan2", p, 1), 0, "NaN at step 7 again");
	keys_are(&f, SEC_METRICS, &ref, "nan2", "nan2=nan@7", "NaN is the latest");
	p[0] = pt_at(7, -1, 50);
	is_int(store_log_metrics(f.s, NULL, run, "nan2", p, 1), 0, "-1 at the same step and time");
	keys_are(&f, SEC_METRICS, &ref, "nan2", "nan2=nan@7",
		 "-1 is below the stored 0: NaN stays");
	p[0] = pt_at(4, NAN, 50);
	p[1] = pt_at(4, 0.25, 50);
	is_int(store_log_metrics(f.s, NULL, run, "nan3", p, 2), 0,
	       "NaN and 0.25 at one step and time, in one call");
	keys_are(&f, SEC_METRICS, &ref, "nan3", "nan3=0.25@4", "0.25 is above the stored 0");
	p[0] = pt_at(2, -1, 50);
	is_int(store_log_metrics(f.s, NULL, run, "nan4", p, 1), 0, "-1 at step 2");
	keys_are(&f, SEC_METRICS, &ref, "nan4", "nan4=-1@2", "-1 is the latest");
	p[0] = pt_at(2, NAN, 50);
	is_int(store_log_metrics(f.s, NULL, run, "nan4", p, 1), 0,
	       "then NaN at the same step and time");
	keys_are(&f, SEC_METRICS, &ref, "nan4", "nan4=nan@2",
		 "NaN's stored 0 is above -1: NaN wins");
	p[0] = pt_at(1, INFINITY, 50);
	is_int(store_log_metrics(f.s, NULL, run, "inf", p, 1), 0, "inf at step 1");
	keys_are(&f, SEC_METRICS, &ref, "inf", "inf=inf@1", "inf is the latest");
	p[0] = pt_at(1, -INFINITY, 50);
	is_int(store_log_metrics(f.s, NULL, run, "inf", p, 1), 0, "then -inf at the same point");
	keys_are(&f, SEC_METRICS, &ref, "inf", "inf=inf@1", "inf stays");
	/* The backend's answer, without the cache's patched snapshot. */
	list_keys_are(f.bare, SEC_METRICS, &ref, NULL,
		      "batch=1@9,inf=inf@1,late=-1@5,nan=0.5@7,nan2=nan@7,nan3=0.25@4,nan4=nan@2",
		      "latest_metrics agrees with every snapshot above");

	/* A run's last change includes its metrics' times (ls -t). */
	future = wall_ms() + 3600 * 1000;
	p[0] = pt_at(0, 1, future);
	is_int(store_log_metrics(f.s, NULL, run, "future", p, 1), 0, "a point an hour ahead");
	if (store_find_run(f.s, exp, "r", &r) == 0) {
		is_int(r.last_change, future, "last_change is the latest metric time");
		store_run_release(&r);
	} else {
		ok(0, "find the run");
	}
	if (store_get_snapshot(f.s, run, SNAP_METRICS, &snap) == 0) {
		is_int(snap->run.last_change, future, "so is the snapshot's");
		store_snapshot_put(snap);
	} else {
		ok(0, "snapshot the run");
	}
	fx_teardown(&f);
}

static void test_metric_history(void)
{
	char exp[STORE_ID_MAX], run[STORE_RUN_ID_MAX];
	struct metric_point p[4];
	int calls = 0;
	int64_t n;
	struct fx f;

	if (fx_setup(&f, "history")) {
		fx_teardown(&f);
		return;
	}
	ok(!new_exp(&f, "H", exp) && !new_run(&f, exp, "r", run), "a run");
	p[0] = pt_at(1, 5, 200);
	p[1] = pt_at(0, 1, 300);
	is_int(store_log_metrics(f.s, NULL, run, "h", p, 2), 0, "log two points out of order");
	p[0] = pt_at(1, 7, 100);
	p[1] = pt_at(1, 2, 100);
	p[2] = pt_at(0, 1, 300);
	is_int(store_log_metrics(f.s, NULL, run, "h", p, 3), 0, "two more, and a repeat of one");
	history_is(&f, run, "h", 1, "0:1:300,1:2:100,1:7:100,1:5:200",
		   "history is by step, then time, then value; the repeat is stored once");
	is_int(raw_int(f.raw, &n, "SELECT count(*) FROM metrics WHERE run_uuid = %Q AND key = 'h'",
		       run),
	       0, "count metric rows");
	is_int(n, 4, "four rows: a point already there is skipped, as MLflow does");
	history_is(&f, run, "none", 1, "", "the history of an unknown key is empty");
	ok(store_metric_history(f.s, run, "h", stop_point, &calls) == 9,
	   "history returns a stop value");
	is_int(calls, 1, "after one callback");
	fx_teardown(&f);
}

/* history_stat is the size of history/<key> as metric_history_line() renders
 * it, kept up to date by our writes and by others'. */
static void test_history_stat(void)
{
	char exp[STORE_ID_MAX], run[STORE_RUN_ID_MAX], key[16];
	struct metric_point p[8];
	struct store_history_stat hs;
	struct store_batch *b;
	int64_t now = wall_ms();
	int i, good;
	struct fx f;

	if (fx_setup(&f, "hstat")) {
		fx_teardown(&f);
		return;
	}
	ok(!new_exp(&f, "S", exp) && !new_run(&f, exp, "r", run), "a run");
	is_int(store_history_stat(f.s, run, "none", &hs), 0, "stat of a metric without points");
	ok(hs.points == 0 && hs.bytes == 0, "is empty");
	p[0] = pt_at(0, 1.5, 1000);
	p[1] = pt_at(1, 0.1, now);
	p[2] = pt_at(2, 100, now);
	p[3] = pt_at(10, -2.5e-7, 1);
	is_int(store_log_metrics(f.s, NULL, run, "plain", p, 4), 0, "log four plain points");
	p[0] = pt_at(-3, NAN, 5);
	p[1] = pt_at(-1, INFINITY, 6);
	p[2] = pt_at(INT64_MIN, -INFINITY, 7);
	p[3] = pt_at(INT64_MAX, -0.0, 0);
	p[4] = pt_at(-1000000, DBL_MIN, INT64_C(99999999999999));
	p[5] = pt_at(4, 1e300, -5);
	p[6] = pt_at(5, DBL_MAX, now);
	is_int(store_log_metrics(f.s, NULL, run, "odd", p, 7), 0,
	       "log NaN, infinities, extreme steps and values, a negative time");
	stat_is(f.s, run, "plain", 4, "plain: the stat is the rendered history's size");
	stat_is(f.s, run, "odd", 7, "odd: the same with NaN, inf and negative steps");
	stat_is(f.bare, run, "odd", 7, "the backend's own answer is the same");

	/* Our writes keep a counted stat up to date. */
	p[0] = pt_at(11, 12345.678, now);
	p[1] = pt_at(0, 1.5, 1000); /* already there: skipped, not counted */
	p[2] = pt_at(-7, NAN, now);
	is_int(store_log_metrics(f.s, NULL, run, "plain", p, 3), 0,
	       "log two more points and a repeat");
	stat_is(f.s, run, "plain", 6, "plain: the stat counts the new points, not the repeat");
	b = store_batch_new(f.s);
	ok(b != NULL, "a batch");
	p[0] = pt_at(12, -1, now);
	p[1] = pt_at(13, INFINITY, now);
	is_int(store_log_metrics(f.s, b, run, "plain", p, 2), 0, "two points in a batch");
	stat_is(f.s, run, "plain", 8, "plain: uncommitted points are counted at once");
	is_int(store_batch_commit(f.s, b, 0), 0, "commit the batch");
	store_batch_free(f.s, b);
	stat_is(f.s, run, "plain", 8, "plain: and after the commit");

	/* Another client's writes: PRAGMA data_version tells. */
	ok(!settle(&f) && !raw_exec(f.raw,
				    "INSERT INTO metrics (key, value, timestamp, run_uuid, step, "
				    "is_nan) VALUES ('plain', 7, 123, %Q, 50, 0), "
				    "('odd', 0, 9, %Q, -2, 1)",
				    run, run),
	   "another client logs a point of each");
	stat_is(f.s, run, "plain", 9, "plain: the stat sees another client's point");
	stat_is(f.s, run, "odd", 8, "odd: and its NaN");
	ok(!settle(&f) && !raw_exec(f.raw,
				    "DELETE FROM metrics WHERE run_uuid = %Q AND key = 'odd' "
				    "AND step = -1",
				    run),
	   "another client deletes a point");
	stat_is(f.s, run, "odd", 7, "odd: the stat sees that too");

	/* More metrics than the backend keeps counted. */
	for (i = 0, good = 0; i < 40; i++) {
		snprintf(key, sizeof(key), "k%02d", i);
		p[0] = pt_at(i, i * 0.5, now);
		p[1] = pt_at(-i, -i * 1e10, now);
		good += !store_log_metrics(f.s, NULL, run, key, p, 1 + (i % 2)) &&
			!store_history_stat(f.s, run, key, &hs);
	}
	is_int(good, 40, "forty metrics logged and measured");
	for (i = 0, good = 0; i < 40; i++) {
		snprintf(key, sizeof(key), "k%02d", i);
		p[0] = pt_at(100 + i, 3, now);
		good += !store_log_metrics(f.s, NULL, run, key, p, 1);
	}
	is_int(good, 40, "one more point each");
	stat_is(f.s, run, "k00", 2, "the first: its stat is right after its count was dropped");
	stat_is(f.s, run, "k01", 3, "the second too");
	stat_is(f.s, run, "k39", 3, "and the last");
	stat_is(f.s, run, "plain", 9, "plain still agrees");
	fx_teardown(&f);
}

/* A run as one shared, immutable object that sees our writes at once. */
static void test_snapshots(void)
{
	char exp[STORE_ID_MAX], run[STORE_RUN_ID_MAX], gone[STORE_RUN_ID_MAX], *got;
	static const struct store_snapshot dummy;
	const struct store_snapshot *s0 = NULL, *s1 = NULL, *s2;
	const struct store_kv *kv;
	struct store_ref ref = { 0 };
	struct store_batch *b;
	struct metric_point p[2];
	int64_t n;
	struct fx f;

	if (fx_setup(&f, "snapshots")) {
		fx_teardown(&f);
		return;
	}
	ok(!new_exp(&f, "N", exp) && !new_run(&f, exp, "snap", run) &&
		   !new_run(&f, exp, "gone", gone),
	   "two runs");
	ref.run_id = run;
	is_int(store_get_snapshot(f.s, run, SNAP_ALL, &s0), 0, "snapshot a run");
	if (s0) {
		ok((s0->have & SNAP_ALL) == SNAP_ALL, "with every section");
		ok(!strcmp(s0->run.run_id, run) && !strcmp(s0->run.name, "snap") &&
			   s0->run.folder && !strcmp(s0->run.folder, "snap") &&
			   !strcmp(s0->run.status, "RUNNING") && !s0->run.deleted,
		   "its run: id, name, folder, status");
		ok(s0->params && s0->params->n == 0 && s0->metrics && s0->metrics->n == 0 &&
			   s0->tags && s0->tags->n == 2,
		   "no params, no metrics, the two tags of a new run");
		ok(store_kvs_find(s0->tags, "mlflow.user") &&
			   !strcmp(store_kvs_find(s0->tags, "mlflow.user")->value, "tester") &&
			   !store_kvs_find(s0->tags, "mlflow.userx") &&
			   !store_kvs_find(s0->params, "x"),
		   "store_kvs_find finds a key and nothing else");
	}

	/* Writes in a batch not committed yet: the snapshot sees them at once. */
	b = store_batch_new(f.s);
	ok(b != NULL, "a batch");
	p[0] = pt_at(3, 0.5, 77);
	is_int(store_log_param(f.s, b, run, "lr", "0.1"), 0, "log a param in it");
	is_int(store_set_tag(f.s, b, SEC_RUN_TAGS, &ref, "note", "x"), 0, "set a tag");
	is_int(store_log_metrics(f.s, b, run, "loss", p, 1), 0, "log a point");
	is_int(store_get_snapshot(f.s, run, SNAP_ALL, &s1), 0, "snapshot it again");
	if (s1) {
		kv = store_kvs_find(s1->params, "lr");
		ok(kv && !strcmp(kv->value, "0.1"), "the uncommitted param is there");
		kv = store_kvs_find(s1->tags, "note");
		ok(kv && !strcmp(kv->value, "x"), "so is the tag");
		kv = store_kvs_find(s1->metrics, "loss");
		ok(kv && kv->num == 0.5 && kv->step == 3 && kv->timestamp == 77,
		   "and the metric's latest point");
		ok(kvs_sorted(s1->params) && kvs_sorted(s1->metrics) && kvs_sorted(s1->tags),
		   "every section is sorted by key");
	}
	if (s0)
		ok(s0->params->n == 0 && !store_kvs_find(s0->tags, "note") && s0->metrics->n == 0,
		   "the first snapshot still shows the run as it was");
	p[0] = pt_at(9, 2, 78);
	is_int(store_log_metrics(f.s, b, run, "loss", p, 1), 0, "a later point");
	got = snap_keys(f.s, run, SEC_METRICS, NULL);
	is_str(got, "loss=2@9", "a new snapshot has it");
	free(got);
	if (s1) {
		kv = store_kvs_find(s1->metrics, "loss");
		ok(kv && kv->step == 3, "the one held before does not change");
	}
	s2 = store_snapshot_hold(s1);
	ok(s2 == s1, "store_snapshot_hold gives the same snapshot");
	store_snapshot_put(s2);
	ok(store_snapshot_hold(NULL) == NULL, "and NULL for NULL");
	store_snapshot_put(NULL);
	is_int(store_batch_commit(f.s, b, 0), 0, "commit the batch");
	store_batch_free(f.s, b);
	is_int(raw_int(f.raw, &n,
		       "SELECT (SELECT count(*) FROM params WHERE run_uuid = %Q AND key = 'lr') + "
		       "(SELECT count(*) FROM tags WHERE run_uuid = %Q AND key = 'note') + "
		       "(SELECT count(*) FROM metrics WHERE run_uuid = %Q AND key = 'loss')",
		       run, run, run),
	       0, "read the rows on the other connection");
	is_int(n, 4, "the committed rows are there");

	/* Another client's write shows in the next snapshot. */
	ok(!settle(&f) && !raw_exec(f.raw,
				    "INSERT INTO params (key, value, run_uuid) "
				    "VALUES ('ext', 'y', %Q)",
				    run),
	   "another client logs a param");
	got = snap_keys(f.s, run, SEC_PARAMS, NULL);
	is_str(got, "ext=y,lr=0.1", "the next snapshot has it");
	free(got);

	/* A deleted run still snapshots, without a folder; an unknown one does not. */
	is_int(store_delete_run(f.s, NULL, gone), 0, "delete the other run");
	if (ok(!store_get_snapshot(f.s, gone, SNAP_ALL, &s2), "snapshot it")) {
		ok(s2->run.deleted && s2->run.folder == NULL, "deleted, without a folder");
		store_snapshot_put(s2);
	}
	s2 = &dummy; /* a failure must reset it */
	is_int(store_get_snapshot(f.s, "0123456789abcdef0123456789abcdef", SNAP_ALL, &s2), -ENOENT,
	       "an unknown run is -ENOENT");
	ok(s2 == NULL, "and gives no snapshot");

	/* The backend's snapshot: no folder, only what was asked for. */
	if (!store_get_snapshot(f.bare, run, SNAP_PARAMS, &s2)) {
		ok((s2->have & SNAP_PARAMS) && s2->params && s2->params->n == 2 &&
			   s2->run.folder == NULL,
		   "the backend's snapshot has the params and no folder");
		store_snapshot_put(s2);
	} else {
		ok(0, "snapshot on the backend");
	}
	store_snapshot_put(s0);
	store_snapshot_put(s1);
	fx_teardown(&f);
}

/* ---- batches: all or nothing, and whose commit fails ------------------ */

static void test_all_or_nothing(void)
{
	char exp[STORE_ID_MAX], run[STORE_RUN_ID_MAX], dead[STORE_RUN_ID_MAX], *want;
	struct store_batch *early, *a, *b;
	struct metric_point p[4];
	struct store_ref ref = { 0 };
	int64_t n, first = -1;
	int err_a, err_b;
	struct fx f;

	if (fx_setup(&f, "atomic")) {
		fx_teardown(&f);
		return;
	}
	ok(!new_exp(&f, "A", exp) && !new_run(&f, exp, "r", run) && !new_run(&f, exp, "d", dead),
	   "two runs");
	ref.run_id = run;
	is_int(store_delete_run(f.s, NULL, dead), 0, "delete one");
	p[0] = pt_at(0, 1, 10);
	p[1] = pt_at(1, 2, 10);
	is_int(store_log_metrics(f.s, NULL, dead, "x", p, 2), -ENOENT,
	       "logging to a deleted run: -ENOENT");
	ok(store_errmsg()[0] != '\0', "store_errmsg says why: %s", store_errmsg());
	is_int(store_log_param(f.s, NULL, dead, "x", "1"), -ENOENT, "so is a param");
	is_int(settle(&f), 0, "settle");
	is_int(raw_int(f.raw, &n,
		       "SELECT (SELECT count(*) FROM metrics WHERE run_uuid = %Q) + "
		       "(SELECT count(*) FROM latest_metrics WHERE run_uuid = %Q) + "
		       "(SELECT count(*) FROM params WHERE run_uuid = %Q)",
		       dead, dead, dead),
	       0, "count the deleted run's rows");
	is_int(n, 0, "nothing was inserted for it");

	/*
	 * A failure while queued points go in.  store_log_metrics() queues its
	 * points; they are inserted at the next read, write or commit, and a
	 * failure then loses the open transaction, as a failed commit would:
	 * every batch that wrote into it learns it at its commit (-EIO), and
	 * no other.  A trigger (made by the other connection) refuses the
	 * value 666.
	 */
	early = store_batch_new(f.s);
	a = store_batch_new(f.s);
	b = store_batch_new(f.s);
	ok(early && a && b, "three batches");
	p[0] = pt_at(0, 1, 10);
	is_int(store_log_metrics(f.s, early, run, "aon", p, 1), 0, "a first point, in a batch");
	is_int(store_batch_commit(f.s, early, 0), 0, "committed");
	is_int(raw_exec(f.raw,
			"CREATE TRIGGER unit_store_refuse BEFORE INSERT ON metrics "
			"WHEN NEW.value = 666 BEGIN SELECT RAISE(ABORT, 'refused by the test'); "
			"END"),
	       0, "a trigger that refuses the value 666");
	keys_are(&f, SEC_METRICS, &ref, NULL, "aon=1@0", "the run's snapshot, before");
	/* Both writes back to back: one transaction, which stays open 20 ms. */
	p[0] = pt(1);
	err_a = log_auto(f.s, a, run, "keep", p, 1);
	p[0] = pt(2);
	p[1] = pt(3);
	p[2] = pt(666);
	p[3] = pt(4);
	err_b = log_auto(f.s, b, run, "aon", p, 4);
	is_int(err_a, 0, "a point of another metric queued, in a batch");
	is_int(err_b, 0, "four points queued in the same transaction, in another batch");
	history_is(&f, run, "aon", 0, "0:1",
		   "a read inserts the queue, which fails: none of the four is there");
	list_keys_are(f.bare, SEC_METRICS, &ref, NULL, "aon=1@0",
		      "latest_metrics is unchanged; the other metric went with its transaction");
	keys_are(&f, SEC_METRICS, &ref, NULL, "aon=1@0",
		 "the run's snapshot shows what the database holds");
	is_int(store_batch_commit(f.s, a, 0), -EIO,
	       "the other metric's batch fails: it wrote into the lost transaction");
	is_int(store_batch_commit(f.s, b, 0), -EIO, "so does the refused point's batch");
	ok(store_errmsg()[0] != '\0', "store_errmsg says why: %s", store_errmsg());
	is_int(store_batch_commit(f.s, b, 0), 0, "a failure is told once");
	is_int(store_batch_commit(f.s, early, 0), 0,
	       "the batch whose point was committed before does not fail");
	is_int(raw_int(f.raw, &n, "SELECT count(*) FROM metrics WHERE run_uuid = %Q", run), 0,
	       "count rows on the other connection");
	is_int(n, 1, "one row: the first point, committed before");
	is_int(raw_exec(f.raw, "DROP TRIGGER unit_store_refuse"), 0, "drop the trigger");

	/* The backend answers from the database: the failed write left no step. */
	is_int(store_reserve_steps(f.bare, run, "aon", INT64_MIN, 1, &first), 0, "ask the backend");
	is_int(first, 1, "the next step is 1 again");
	p[0] = pt(5);
	is_int(log_auto(f.s, b, run, "aon", p, 1), 0, "log again");
	/* The cache never hands out a step it reserved once. */
	ok(p[0].step >= 1, "the point gets a step after every point logged (%" PRId64 ")",
	   p[0].step);
	is_int(store_batch_commit(f.s, b, 0), 0, "the batch commits now");
	want = strf("0:1,%" PRId64 ":5", p[0].step);
	history_is(&f, run, "aon", 0, want, "the history has it");
	free(want);
	store_batch_free(f.s, early);
	store_batch_free(f.s, a);
	store_batch_free(f.s, b);
	fx_teardown(&f);
}

/*
 * A file size limit of 0 (`ulimit -f 0`) for the whole process: every
 * write(2) to a regular file fails with EFBIG, with SIGXFSZ ignored, as on a
 * full disk.  SQLite's commit, which appends to the WAL, then fails.  Nothing
 * may be printed while it is on (stdout may be a file).
 */
static struct rlimit fsize_saved;
static void (*xfsz_saved)(int);

static int file_writes_fail(int on)
{
	struct rlimit rl;

	if (!on) {
		setrlimit(RLIMIT_FSIZE, &fsize_saved);
		signal(SIGXFSZ, xfsz_saved);
		return 0;
	}
	fflush(NULL);
	if (getrlimit(RLIMIT_FSIZE, &fsize_saved))
		return -1;
	xfsz_saved = signal(SIGXFSZ, SIG_IGN);
	rl = fsize_saved;
	rl.rlim_cur = 0;
	if (setrlimit(RLIMIT_FSIZE, &rl)) {
		signal(SIGXFSZ, xfsz_saved);
		return -1;
	}
	return 0;
}

/*
 * A commit that fails (here: the file system refuses the WAL's growth) fails
 * the batches with writes in the lost transaction, "bad" and "also", and no
 * other: not "early", whose write the committer committed before, nor
 * "idle", which wrote nothing.  Everything the lost transaction wrote is
 * gone, for the other connection and for the store's own reads.
 */
static void test_commit_failure(void)
{
	char exp[STORE_ID_MAX], run[STORE_RUN_ID_MAX], ghost[STORE_RUN_ID_MAX] = "";
	char msg[256] = "", *got;
	struct store_batch *early, *idle, *bad, *also;
	const struct store_snapshot *snap;
	struct store_history_stat hs = { 0, 0 };
	struct store_ref ref = { 0 };
	struct metric_point p[2];
	struct store_kv kv;
	int w_bad = -1, w_also = -1, w_metric = -1, w_run = -1, seen = 0, stat_err = -1, limited;
	struct store_run r;
	int c_bad = 0, c_also = 0, c_early = -1, c_idle = -1;
	int64_t n, failures;
	struct fx f;

	if (fx_setup(&f, "commit")) {
		fx_teardown(&f);
		return;
	}
	ok(!new_exp(&f, "C", exp) && !new_run(&f, exp, "r", run), "a run");
	ref.run_id = run;
	early = store_batch_new(f.s);
	idle = store_batch_new(f.s);
	bad = store_batch_new(f.s);
	also = store_batch_new(f.s);
	ok(early && idle && bad && also, "four batches");
	p[0] = pt_at(0, 1, 10);
	is_int(store_log_metrics(f.s, NULL, run, "m", p, 1), 0, "a point");
	stat_is(f.s, run, "m", 1, "its history is measured");
	is_int(store_log_param(f.s, early, run, "early", "1"), 0, "a batch logs a param");
	is_int(settle(&f), 0, "the committer commits it");
	failures = described_int(f.s, "commit_failures");
	keys_are(&f, SEC_PARAMS, &ref, NULL, "early=1", "the run's snapshot shows it");

	limited = !file_writes_fail(1);
	if (limited) {
		w_bad = store_log_param(f.s, bad, run, "lost", "1");
		w_also = store_set_tag(f.s, also, SEC_RUN_TAGS, &ref, "lost.tag", "x");
		p[0] = pt_at(1, 2, 20);
		p[1] = pt_at(2, 3, 30);
		w_metric = store_log_metrics(f.s, bad, run, "m", p, 2);
		w_run = store_create_run(f.s, bad, exp, "ghost", "u", &r);
		if (!w_run) {
			snprintf(ghost, sizeof(ghost), "%s", r.run_id);
			store_run_release(&r);
		}
		stat_err = store_history_stat(f.s, run, "m", &hs);
		if (!store_get_snapshot(f.s, run, SNAP_ALL, &snap)) {
			seen = store_kvs_find(snap->params, "lost") &&
			       store_kvs_find(snap->tags, "lost.tag");
			store_snapshot_put(snap);
		}
		c_bad = store_batch_commit(f.s, bad, 0);
		snprintf(msg, sizeof(msg), "%s", store_errmsg());
		c_also = store_batch_commit(f.s, also, 0);
		c_early = store_batch_commit(f.s, early, 0);
		c_idle = store_batch_commit(f.s, idle, 0);
		file_writes_fail(0);
	}
	if (!ok(limited, "file writes fail now (a file size limit of 0)"))
		tap_diag("setrlimit: %s", strerror(errno));
	ok(!w_bad && !w_also && !w_metric && !w_run, "writes into two batches are accepted");
	ok(seen, "the store's reads see them at once");
	ok(!stat_err && hs.points == 3, "the history stat counts the queued points (%" PRIu64 ")",
	   hs.points);
	is_int(c_bad, -EIO, "the commit fails the batch that wrote: -EIO");
	ok(msg[0] != '\0', "store_errmsg says why: %s", msg);
	is_int(c_also, -EIO, "so does the other batch that wrote into the lost transaction");
	is_int(c_early, 0, "not a batch whose writes were committed before");
	is_int(c_idle, 0, "nor a batch that wrote nothing");
	is_int(store_batch_commit(f.s, bad, 0), 0, "a failure is told once");
	ok(described_int(f.s, "commit_failures") > failures, "describe counts the lost commit");
	is_int(raw_int(f.raw, &n,
		       "SELECT (SELECT count(*) FROM params WHERE run_uuid = %Q AND key = 'lost') "
		       "+ (SELECT count(*) FROM tags WHERE run_uuid = %Q AND key = 'lost.tag') "
		       "+ (SELECT count(*) FROM metrics WHERE run_uuid = %Q)",
		       run, run, run),
	       0, "read the other connection");
	is_int(n, 1, "nothing of the lost transaction is in the database");
	is_int(store_get_kv(f.bare, SEC_PARAMS, &ref, "lost", &kv), -ENOENT,
	       "the backend has no lost param");
	keys_are(&f, SEC_PARAMS, &ref, NULL, "early=1",
		 "the run's snapshot has no lost param either");
	keys_are(&f, SEC_RUN_TAGS, &ref, NULL, "mlflow.runName=r,mlflow.user=tester",
		 "nor the lost tag");
	keys_are(&f, SEC_METRICS, &ref, NULL, "m=1@0", "nor the lost points");
	got = folders(&f, exp);
	if (!ok(got && !strcmp(got, "r"), "the run created in the lost transaction is not listed"))
		tap_diag("got '%s', want 'r'", got ? got : "(null)");
	free(got);
	is_int(store_get_run(f.bare, ghost, &r), -ENOENT, "the backend does not know it");
	history_is(&f, run, "m", 0, "0:1", "the history has the first point only");
	stat_is(f.s, run, "m", 1, "the history stat forgets the lost points");

	/* The store writes again once the file system does. */
	is_int(store_log_param(f.s, also, run, "after", "1"), 0, "a write after the failure");
	is_int(store_batch_commit(f.s, also, 1), 0, "commits, durably");
	is_int(raw_int(f.raw, &n,
		       "SELECT count(*) FROM params WHERE run_uuid = %Q AND key = 'after'", run),
	       0, "read the other connection");
	is_int(n, 1, "it is there");
	store_batch_free(f.s, early);
	store_batch_free(f.s, idle);
	store_batch_free(f.s, bad);
	store_batch_free(f.s, also);
	fx_teardown(&f);
}

/* ---- status, delete --------------------------------------------------- */

static void test_status(void)
{
	char exp[STORE_ID_MAX], run[STORE_RUN_ID_MAX];
	struct store_run r;
	int64_t t0, t1, end = -1, n;
	struct fx f;

	if (fx_setup(&f, "status")) {
		fx_teardown(&f);
		return;
	}
	ok(!new_exp(&f, "S", exp) && !new_run(&f, exp, "r", run), "a run");
	is_int(store_set_status(f.s, NULL, run, "RUNNING"), 0, "set RUNNING on a running run");
	if (!store_get_run(f.s, run, &r)) {
		ok(!strcmp(r.status, "RUNNING") && r.end_time == -1, "still no end time");
		store_run_release(&r);
	}
	sleep_ms(2);
	t0 = wall_ms();
	is_int(store_set_status(f.s, NULL, run, "FINISHED"), 0, "set FINISHED");
	t1 = wall_ms();
	if (!store_get_run(f.s, run, &r)) {
		is_str(r.status, "FINISHED", "status FINISHED");
		ok(r.end_time >= t0 && r.end_time <= t1 && r.end_time >= r.start_time,
		   "a terminal status sets the end time to now");
		end = r.end_time;
		store_run_release(&r);
	} else {
		ok(0, "get the run");
	}
	if (!store_find_run(f.s, exp, "r", &r)) {
		ok(!strcmp(r.status, "FINISHED") && r.end_time == end,
		   "the cache's run list has the new status");
		store_run_release(&r);
	} else {
		ok(0, "find the run");
	}
	sleep_ms(5);
	is_int(store_set_status(f.s, NULL, run, "RUNNING"), 0, "set RUNNING again");
	if (!store_get_run(f.s, run, &r)) {
		ok(!strcmp(r.status, "RUNNING") && r.end_time == end,
		   "RUNNING leaves the end time as it was");
		store_run_release(&r);
	}
	is_int(store_set_status(f.s, NULL, run, "SCHEDULED"), 0, "set SCHEDULED");
	if (!store_get_run(f.s, run, &r)) {
		ok(!strcmp(r.status, "SCHEDULED") && r.end_time == end,
		   "SCHEDULED leaves the end time too");
		store_run_release(&r);
	}
	sleep_ms(5);
	is_int(store_set_status(f.s, NULL, run, "FAILED"), 0, "set FAILED");
	if (!store_get_run(f.s, run, &r)) {
		ok(!strcmp(r.status, "FAILED") && r.end_time > end, "FAILED sets a new end time");
		end = r.end_time;
		store_run_release(&r);
	}
	is_int(store_set_status(f.s, NULL, run, "KILLED"), 0, "set KILLED");
	ok(store_set_status(f.s, NULL, run, "BOGUS") < 0, "an unknown status is refused");
	if (!store_get_run(f.s, run, &r)) {
		ok(!strcmp(r.status, "KILLED") && r.end_time >= end, "and changes nothing");
		store_run_release(&r);
	}
	is_int(raw_int(f.raw, &n,
		       "SELECT count(*) FROM runs WHERE run_uuid = %Q AND status = 'KILLED' "
		       "AND end_time >= %lld",
		       run, (long long)end),
	       0, "read the row");
	is_int(n, 1, "the row has the status and the end time");
	fx_teardown(&f);
}

static void test_delete_run(void)
{
	char exp[STORE_ID_MAX], keep[STORE_RUN_ID_MAX], gone[STORE_RUN_ID_MAX],
		other[STORE_RUN_ID_MAX];
	struct store_ref ref = { 0 };
	struct metric_point p = pt_at(0, 1, 10);
	struct store_run r;
	int64_t t0, t1, n;
	struct fx f;

	if (fx_setup(&f, "delete")) {
		fx_teardown(&f);
		return;
	}
	ok(!new_exp(&f, "D", exp) && !new_run(&f, exp, "keep", keep), "a run");
	sleep_ms(3);
	ok(!new_run(&f, exp, "gone", gone), "a younger one");
	is_int(store_set_tag(f.s, NULL, SEC_RUN_TAGS, &(struct store_ref){ .run_id = gone }, "t",
			     "v"),
	       0, "a tag on the run to delete");
	folders_are(&f, exp, "keep,gone", "both are listed");
	t0 = wall_ms();
	is_int(store_delete_run(f.s, NULL, gone), 0, "delete a run");
	t1 = wall_ms();
	is_int(store_find_run(f.s, exp, "gone", &r), -ENOENT, "its folder is gone");
	is_int(store_find_run(f.s, exp, gone, &r), -ENOENT,
	       "its id no longer resolves in the tree");
	folders_are(&f, exp, "keep", "only the other run is listed");
	is_int(store_get_run(f.s, gone, &r), 0, "get_run still reads it");
	ok(r.deleted && r.folder == NULL, "reported deleted, without a folder");
	is_str(r.name, "gone", "its name kept");
	store_run_release(&r);
	is_int(raw_int(f.raw, &n,
		       "SELECT count(*) FROM runs WHERE run_uuid = %Q AND lifecycle_stage = "
		       "'deleted' AND deleted_time BETWEEN %lld AND %lld",
		       gone, (long long)t0, (long long)t1),
	       0, "read the row");
	is_int(n, 1, "soft delete: lifecycle_stage 'deleted', deleted_time now");
	is_int(raw_int(f.raw, &n, "SELECT count(*) FROM tags WHERE run_uuid = %Q", gone), 0,
	       "count its tags");
	ok(n >= 1, "its data is kept, as MLflow keeps it");

	ref.run_id = gone;
	is_int(store_delete_run(f.s, NULL, gone), -ENOENT, "deleting it again is -ENOENT");
	is_int(store_log_param(f.s, NULL, gone, "k", "v"), -ENOENT, "no param on it");
	is_int(store_set_tag(f.s, NULL, SEC_RUN_TAGS, &ref, "k", "v"), -ENOENT, "no tag on it");
	is_int(store_delete_tag(f.s, NULL, SEC_RUN_TAGS, &ref, "t"), -ENOENT,
	       "no tag deleted on it");
	is_int(store_rename_tag(f.s, NULL, SEC_RUN_TAGS, &ref, "t", "u"), -ENOENT,
	       "no tag renamed on it");
	is_int(store_set_status(f.s, NULL, gone, "FINISHED"), -ENOENT, "no status change");
	is_int(store_rename_run(f.s, NULL, gone, "back"), -ENOENT, "no rename");
	is_int(store_log_metrics(f.s, NULL, gone, "m", &p, 1), -ENOENT, "no metric");
	is_int(store_delete_run(f.s, NULL, "ffffffffffffffffffffffffffffffff"), -ENOENT,
	       "deleting an unknown run is -ENOENT");
	ok(finds(&f, exp, "keep", keep), "the other run is untouched");

	/* Deleted meanwhile by another client (mlflowfs(1), WRITING: ENOENT). */
	ok(!new_run(&f, exp, "other", other), "a third run");
	ok(finds(&f, exp, "other", other), "found by its folder");
	ok(!settle(&f) &&
		   !raw_exec(f.raw,
			     "UPDATE runs SET lifecycle_stage = 'deleted', deleted_time = %lld "
			     "WHERE run_uuid = %Q",
			     (long long)wall_ms(), other),
	   "another client deletes it");
	is_int(store_find_run(f.s, exp, "other", &r), -ENOENT, "its folder is gone at once");
	is_int(store_log_param(f.s, NULL, other, "k", "v"), -ENOENT, "a param to it is -ENOENT");
	ok(!settle(&f) && !raw_exec(f.raw,
				    "UPDATE experiments SET lifecycle_stage = 'deleted' "
				    "WHERE experiment_id = %s",
				    exp),
	   "another client deletes the experiment");
	is_int(store_log_param(f.s, NULL, keep, "k", "v"), -ENOENT,
	       "a param to a run of a deleted experiment is -ENOENT");
	is_int(store_log_metrics(f.s, NULL, keep, "m", &p, 1), -ENOENT, "so is a metric");
	is_int(store_create_run(f.s, NULL, exp, "new", "u", &r), -ENOENT, "and a new run in it");
	fx_teardown(&f);
}

/* ---- commits ---------------------------------------------------------- */

static void test_sync(void)
{
	char exp[STORE_ID_MAX], run[STORE_RUN_ID_MAX];
	struct store_batch *b, *gone, *fresh;
	struct store_ref ref = { 0 };
	struct store_kv kv;
	int64_t n = 0, start, waited;
	struct fx f;

	if (fx_setup(&f, "sync")) {
		fx_teardown(&f);
		return;
	}
	ok(!new_exp(&f, "Y", exp) && !new_run(&f, exp, "r", run), "a run");
	ref.run_id = run;
	b = store_batch_new(f.s);
	ok(b != NULL, "a batch");
	is_int(store_log_param(f.s, b, run, "synced", "1"), 0, "log a param");
	is_int(store_batch_commit(f.s, b, 0), 0, "commit the batch");
	is_int(raw_int(f.raw, &n,
		       "SELECT count(*) FROM params WHERE run_uuid = %Q AND key = 'synced'", run),
	       0, "read on the second connection");
	is_int(n, 1, "what was committed is visible to another connection at once");
	is_int(store_set_tag(f.s, b, SEC_RUN_TAGS, &ref, "durable", "1"), 0, "set a tag");
	is_int(store_batch_commit(f.s, b, 1), 0, "a durable commit");
	is_int(raw_int(f.raw, &n,
		       "SELECT count(*) FROM tags WHERE run_uuid = %Q AND key = 'durable'", run),
	       0, "read on the second connection");
	is_int(n, 1, "what was committed durably is visible");
	is_int(store_batch_commit(f.s, b, 0), 0, "a commit with nothing written since");
	fresh = store_batch_new(f.s);
	is_int(fresh ? store_batch_commit(f.s, fresh, 1) : -ENOMEM, 0,
	       "a durable commit of a batch that never wrote");
	store_batch_free(f.s, fresh);
	store_batch_free(f.s, NULL);

	/* Without a batch, a write is committed when it returns. */
	is_int(store_log_param(f.s, NULL, run, "own", "1"), 0, "log a param without a batch");
	is_int(raw_int(f.raw, &n, "SELECT count(*) FROM params WHERE run_uuid = %Q AND key = 'own'",
		       run),
	       0, "read on the second connection");
	is_int(n, 1, "it is there at once");

	/* Uncommitted: the store's own reads see it at once, the committer
	 * publishes it within its 20 ms. */
	start = mono_ms();
	is_int(store_log_param(f.s, b, run, "later", "2"), 0, "log a param, no commit");
	is_int(snap_get(f.s, run, SEC_PARAMS, "later", &kv), 0,
	       "the store's own reads see it at once");
	store_kv_release(&kv);
	for (;;) {
		if (raw_int(f.raw, &n,
			    "SELECT count(*) FROM params WHERE run_uuid = %Q AND key = 'later'",
			    run) ||
		    n == 1 || mono_ms() - start > 2000)
			break;
		sleep_ms(2);
	}
	waited = mono_ms() - start;
	tap_diag("the uncommitted param was visible after %" PRId64 " ms", waited);
	ok(n == 1 && waited <= 100, "uncommitted data reaches the other connection within 100 ms");
	is_int(store_batch_commit(f.s, b, 0), 0, "its batch commits after that");

	/* A batch freed without a commit: its writes stay and are committed. */
	gone = store_batch_new(f.s);
	start = mono_ms();
	is_int(gone ? store_log_param(f.s, gone, run, "freed", "3") : -ENOMEM, 0,
	       "log a param in a batch");
	store_batch_free(f.s, gone);
	for (;;) {
		if (raw_int(f.raw, &n,
			    "SELECT count(*) FROM params WHERE run_uuid = %Q AND key = 'freed'",
			    run) ||
		    n == 1 || mono_ms() - start > 2000)
			break;
		sleep_ms(2);
	}
	ok(n == 1, "freeing the batch keeps the write: it is committed with the next commit");

	/* The other way round: another writer's rows are seen at once. */
	ok(!settle(&f) &&
		   !raw_exec(f.raw,
			     "INSERT INTO params (key, value, run_uuid) VALUES ('ext', 'x', %Q)",
			     run),
	   "another client logs a param");
	is_int(snap_get(f.s, run, SEC_PARAMS, "ext", &kv), 0, "the store reads it at once");
	is_str(kv.value, "x", "with its value");
	store_kv_release(&kv);
	is_int(store_log_param(f.s, b, run, "ext", "y"), -EPERM,
	       "and a different value for it is refused");
	is_int(store_batch_commit(f.s, b, 0), 0, "a refused write fails no commit");
	store_batch_free(f.s, b);
	fx_teardown(&f);
}

/* ---- another program holds the write lock ---------------------------- */

struct waiter {
	struct store *s;
	const char *run_id;
	int err;
	int done; /* atomic */
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;

	w->err = store_log_param(w->s, NULL, w->run_id, "waited", "1");
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Runs call and sets ms to how long it took. */
#define PROMPT(call, ms)                \
	do {                            \
		int64_t t_ = mono_ms(); \
		call;                   \
		(ms) = mono_ms() - t_;  \
	} while (0)

static void test_stall(void)
{
	char exp[STORE_ID_MAX], run[STORE_RUN_ID_MAX], *got = NULL;
	const struct store_snapshot *snap = NULL;
	struct waiter w = { 0 };
	struct metric_point p = pt_at(0, 1, 10);
	struct buf b = BUF_INIT;
	struct store_run r;
	pthread_t tid;
	uint64_t v;
	int64_t ms, start, n;
	int err = -1, started, blocked = 0, locked;
	struct fx f;

	if (fx_setup(&f, "stall")) {
		fx_teardown(&f);
		return;
	}
	ok(!new_exp(&f, "W", exp) && !new_run(&f, exp, "r", run), "a run");
	is_int(store_log_metrics(f.s, NULL, run, "m", &p, 1), 0, "a point");
	is_int(settle(&f), 0, "settle");
	locked = !raw_exec(f.raw, "BEGIN IMMEDIATE");
	ok(locked, "another program takes the write lock (the store waits 30 s for it)");

	PROMPT(err = store_get_snapshot(f.s, run, SNAP_ALL, &snap), ms);
	ok(!err && ms < 1000, "a snapshot meanwhile comes at once (%" PRId64 " ms)", ms);
	store_snapshot_put(snap);
	snap = NULL;
	PROMPT(got = folders(&f, exp), ms);
	ok(got && !strcmp(got, "r") && ms < 1000, "so does a listing (%" PRId64 " ms)", ms);
	free(got);

	/* A write in another thread waits for the lock... */
	w.s = f.s;
	w.run_id = run;
	started = pthread_create(&tid, NULL, waiter_main, &w) == 0;
	ok(started, "another thread writes");
	for (start = mono_ms(); started && mono_ms() - start < 5000; sleep_ms(1))
		if (store_others_version(f.bare, &v) == -EAGAIN) {
			blocked = 1;
			break;
		}
	ok(blocked, "it waits for the lock: meanwhile others_version says -EAGAIN");

	/* ... and reads go on without it. */
	PROMPT(err = store_get_snapshot(f.s, run, SNAP_ALL, &snap), ms);
	ok(!err && ms < 1000, "a snapshot while the write waits comes at once (%" PRId64 " ms)",
	   ms);
	ok(snap && snap->run.folder && !strcmp(snap->run.folder, "r") &&
		   store_kvs_find(snap->metrics, "m") && !store_kvs_find(snap->params, "waited"),
	   "it shows the run, its folder and metric, not the waiting param");
	store_snapshot_put(snap);
	PROMPT(got = folders(&f, exp), ms);
	ok(got && !strcmp(got, "r") && ms < 1000,
	   "a listing of runs comes at once (%" PRId64 " ms)", ms);
	free(got);
	PROMPT(err = store_list_experiments(f.s, collect_exp, &b), ms);
	ok(!err && !strcmp(buf_str(&b), "Default,W") && ms < 1000,
	   "so does a listing of experiments (%" PRId64 " ms)", ms);
	buf_release(&b);
	PROMPT(err = store_get_run(f.s, run, &r), ms);
	ok(!err && r.folder && !strcmp(r.folder, "r") && ms < 1000, "and get_run (%" PRId64 " ms)",
	   ms);
	if (!err)
		store_run_release(&r);
	PROMPT(stat_is(f.s, run, "m", 1, "the history stat is right meanwhile"), ms);
	ok(ms < 1000, "and comes at once with the history (%" PRId64 " ms)", ms);
	ok(!__atomic_load_n(&w.done, __ATOMIC_ACQUIRE), "the write still waits");
	ok(described_int(f.s, "reads_during_stalls") > 0,
	   "the reads used read-only connections of their own");

	ok(locked && !raw_exec(f.raw, "COMMIT"), "the other program lets go");
	if (started)
		pthread_join(tid, NULL);
	is_int(w.err, 0, "the waiting write lands");
	got = snap_keys(f.s, run, SEC_PARAMS, NULL);
	is_str(got, "waited=1", "the run's snapshot shows it");
	free(got);
	is_int(raw_int(f.raw, &n,
		       "SELECT count(*) FROM params WHERE run_uuid = %Q AND key = 'waited'", run),
	       0, "read the other connection");
	is_int(n, 1, "the database has it");
	fx_teardown(&f);
}

/* ---- artifacts ------------------------------------------------------- */

/* A run the store made keeps its artifacts where MLflow puts them. */
static void test_artifact_uri(void)
{
	char exp[STORE_ID_MAX], *want;
	struct store_run r;
	struct fx f;

	if (fx_setup(&f, "artifacts")) {
		fx_teardown(&f);
		return;
	}
	ok(!new_exp(&f, "art", exp), "an experiment");
	if (store_create_run(f.s, NULL, exp, "r", "u", &r) == 0) {
		want = strf("%s/%s/%s/artifacts", f.root, exp, r.run_id);
		is_str(r.artifact_uri, want,
		       "its artifact URI is <root>/<exp id>/<run id>/artifacts");
		free(want);
		store_run_release(&r);
	} else {
		ok(0, "create a run");
	}
	fx_teardown(&f);
}

/* ---- registry -------------------------------------------------------- */

static void test_registry(void)
{
	struct store_ref ref = { 0 };
	char *got;
	struct store_version v;
	struct store_model m;
	struct buf b = BUF_INIT;
	struct fx f;

	if (fx_setup(&f, "registry")) {
		fx_teardown(&f);
		return;
	}
	/* Rows in the shape MLflow's registry store writes them. */
	ok(!raw_exec(f.raw,
		     "INSERT INTO registered_models (name, creation_time, last_updated_time, "
		     "description) VALUES ('m1', 1000, 2000, 'the first'), "
		     "('m0', 1500, 1500, NULL);"
		     "INSERT INTO registered_model_tags (key, value, name) VALUES "
		     "('owner', 'team', 'm1'), ('stage.note', 'x', 'm1');"
		     "INSERT INTO model_versions (name, version, creation_time, "
		     "last_updated_time, description, user_id, current_stage, source, run_id, "
		     "status, status_message, run_link, storage_location) VALUES "
		     "('m1', 1, 1100, 1100, NULL, NULL, 'None', '/a/1/r1/artifacts/model', NULL, "
		     "'READY', NULL, NULL, '/a/1/r1/artifacts/model'), "
		     "('m1', 2, 1200, 1300, NULL, NULL, 'Deleted_Internal', 'REDACTED', NULL, "
		     "'READY', NULL, NULL, NULL), "
		     "('m1', 3, 1400, 1500, 'best', NULL, 'Production', "
		     "'/a/1/r3/artifacts/model', 'r3', 'READY', NULL, '', "
		     "'/a/1/r3/artifacts/model');"
		     "INSERT INTO registered_model_aliases (alias, version, name) VALUES "
		     "('champion', 3, 'm1'), ('a-old', 1, 'm1');"
		     "INSERT INTO model_version_tags (key, value, name, version) VALUES "
		     "('validated', 'yes', 'm1', 3), ('k', 'v', 'm1', 1), ('z', '1', 'm1', 3)"),
	   "insert registry rows on the other connection");
	is_int(store_list_models(f.s, collect_model, &b), 0, "list registered models");
	is_str(buf_str(&b), "m0:,m1:the first", "by name, a missing description as \"\"");
	buf_reset(&b);
	is_int(store_get_model(f.s, "m1", &m), 0, "get a model");
	ok(!strcmp(m.name, "m1") && !strcmp(m.description, "the first") &&
		   m.creation_time == 1000 && m.last_updated_time == 2000,
	   "its name, description and times");
	store_model_release(&m);
	is_int(store_get_model(f.s, "nope", &m), -ENOENT, "an unknown model is -ENOENT");

	is_int(store_list_versions(f.s, "m1", collect_version, &b), 0, "list versions");
	is_str(buf_str(&b), "1:None,3:Production", "a Deleted_Internal version is hidden");
	buf_reset(&b);
	is_int(store_get_version(f.s, "m1", 2, &v), -ENOENT,
	       "a Deleted_Internal version is -ENOENT");
	is_int(store_get_version(f.s, "m1", 3, &v), 0, "get version 3");
	ok(!strcmp(v.model, "m1") && v.version == 3 && !strcmp(v.description, "best") &&
		   !strcmp(v.source, "/a/1/r3/artifacts/model") && !strcmp(v.run_id, "r3") &&
		   !strcmp(v.status, "READY") && !strcmp(v.stage, "Production") &&
		   !strcmp(v.storage_location, "/a/1/r3/artifacts/model") &&
		   v.creation_time == 1400 && v.last_updated_time == 1500,
	   "every field of version 3");
	store_version_release(&v);
	is_int(store_get_version(f.s, "m1", 1, &v), 0, "get version 1");
	ok(!strcmp(v.run_id, "") && !strcmp(v.description, ""),
	   "a missing run id and description read as \"\"");
	store_version_release(&v);
	is_int(store_get_version(f.s, "m1", 9, &v), -ENOENT, "an unknown version is -ENOENT");
	is_int(store_list_versions(f.s, "nope", collect_version, &b), 0,
	       "versions of an unknown model");
	is_str(buf_str(&b), "", "there are none");
	buf_reset(&b);

	is_int(store_list_aliases(f.s, "m1", collect_alias, &b), 0, "list aliases");
	is_str(buf_str(&b), "a-old=1,champion=3", "aliases by name with their versions");
	buf_release(&b);
	ref.model = "m1";
	keys_are(&f, SEC_MODEL_TAGS, &ref, NULL, "owner=team,stage.note=x", "model tags");
	keys_are(&f, SEC_MODEL_TAGS, &ref, "own", "owner=team", "model tags by prefix");
	ref.version = 3;
	keys_are(&f, SEC_VERSION_TAGS, &ref, NULL, "validated=yes,z=1", "version 3's tags");
	ref.version = 1;
	keys_are(&f, SEC_VERSION_TAGS, &ref, NULL, "k=v", "version 1's tags");

	/* Their tags are written as MLflow writes them. */
	ref.model = "m1";
	is_int(store_set_tag(f.s, NULL, SEC_MODEL_TAGS, &ref, "owner", "ops"), 0,
	       "set a model tag");
	ref.version = 3;
	is_int(store_set_tag(f.s, NULL, SEC_VERSION_TAGS, &ref, "z", "2"), 0, "set a version tag");
	is_int(store_delete_tag(f.s, NULL, SEC_VERSION_TAGS, &ref, "validated"), 0,
	       "delete a version tag");
	got = raw_text(f.raw,
		       "SELECT (SELECT value FROM registered_model_tags WHERE name = 'm1' "
		       "AND key = 'owner') || ',' || (SELECT group_concat(key || '=' || value) "
		       "FROM model_version_tags WHERE name = 'm1' AND version = 3)");
	is_str(got, "ops,z=2", "the rows MLflow reads");
	free(got);
	ref.version = 2;
	is_int(store_set_tag(f.s, NULL, SEC_VERSION_TAGS, &ref, "k", "v"), -ENOENT,
	       "a Deleted_Internal version takes no tag");
	ref.model = "nope";
	is_int(store_delete_tag(f.s, NULL, SEC_MODEL_TAGS, &ref, "owner"), -ENOENT,
	       "nor does a missing model");
	fx_teardown(&f);
}

/* ---- registry writes ------------------------------------------------- */

/*
 * Every registry row, table by table, in key order, as one string: what a
 * refused write must leave exactly as it was.  NULL on failure.
 */
static char *registry_dump(sqlite3 *db)
{
	static const char *const sql[] = {
		"SELECT * FROM registered_models ORDER BY name",
		"SELECT * FROM registered_model_tags ORDER BY name, key",
		"SELECT * FROM registered_model_aliases ORDER BY name, alias",
		"SELECT * FROM model_versions ORDER BY name, version",
		"SELECT * FROM model_version_tags ORDER BY name, version, key",
	};
	struct buf b = BUF_INIT;
	sqlite3_stmt *st;
	size_t i;
	int j, rc, err = 0;

	for (i = 0; !err && i < sizeof(sql) / sizeof(sql[0]); i++) {
		if (sqlite3_prepare_v2(db, sql[i], -1, &st, NULL) != SQLITE_OK) {
			tap_diag("second connection: %s: %s", sql[i], sqlite3_errmsg(db));
			err = -1;
			break;
		}
		while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW) {
			for (j = 0; !err && j < sqlite3_column_count(st); j++) {
				const unsigned char *t = sqlite3_column_text(st, j);

				err = buf_addf(&b, "%s%s", j ? "," : "",
					       t ? (const char *)t : "NULL");
			}
			err = err || buf_addch(&b, ';');
		}
		sqlite3_finalize(st);
		err = err || buf_addch(&b, '\n');
	}
	if (err) {
		buf_release(&b);
		return NULL;
	}
	return buf_detach(&b);
}

/* A refused registry write: want, a message, and not a row changed. */
#define refused(f, call, want, name)                                                    \
	do {                                                                            \
		char *before_ = registry_dump((f)->raw), *after_;                       \
		int got_ = (call);                                                      \
		after_ = registry_dump((f)->raw);                                       \
		is_int(got_, want, name);                                               \
		ok(store_errmsg()[0] != '\0', "  and says why ('%s')", store_errmsg()); \
		ok(before_ != NULL && after_ != NULL && !strcmp(before_, after_),       \
		   "  and changes nothing");                                            \
		free(before_);                                                          \
		free(after_);                                                           \
	} while (0)

/* A count from the second connection, or -1. */
__attribute__((format(printf, 2, 3))) static int64_t raw_count(sqlite3 *db, const char *fmt, ...)
{
	char *sql;
	int64_t n;
	va_list ap;

	va_start(ap, fmt);
	sql = sqlite3_vmprintf(fmt, ap);
	va_end(ap);
	if (!sql || raw_int(db, &n, "%s", sql))
		n = -1;
	sqlite3_free(sql);
	return n;
}

static void raw_is(struct fx *f, const char *sql, const char *want, const char *name)
{
	char *got = raw_text(f->raw, "%s", sql);

	is_str(got, want, name);
	free(got);
}

static void test_registry_writes(void)
{
	char exp[STORE_ID_MAX], run[STORE_RUN_ID_MAX], *src = NULL, *got, *want;
	struct store_ref ref = { 0 };
	struct store_batch *b;
	struct store_version v;
	struct store_model m;
	struct buf l = BUF_INIT;
	int64_t t0, n, ver = -1;
	struct fx f;

	if (fx_setup(&f, "regwrite")) {
		fx_teardown(&f);
		return;
	}
	ok(!new_exp(&f, "R", exp) && !new_run(&f, exp, "trainer", run), "a run to register from");
	src = strf("%s/%s/%s/artifacts/model", f.root, exp, run);
	t0 = wall_ms();

	/* Create. */
	is_int(store_create_model(f.s, NULL, "m"), 0, "create a model");
	is_int(raw_count(f.raw,
			 "SELECT count(*) FROM registered_models WHERE name = 'm' AND "
			 "creation_time = last_updated_time AND creation_time >= %lld AND "
			 "creation_time <= %lld AND description IS NULL",
			 (long long)t0, (long long)wall_ms()),
	       1, "its row: both times now, no description");
	is_int(store_get_model(f.s, "m", &m), 0, "the store reads it back");
	store_model_release(&m);
	refused(&f, store_create_model(f.s, NULL, "m"), -EEXIST, "a taken name is -EEXIST");

	/* Descriptions of the model. */
	sleep_ms(2);
	is_int(store_set_description(f.s, NULL, "m", 0, "about m"), 0, "describe the model");
	raw_is(&f, "SELECT description FROM registered_models WHERE name = 'm'", "about m",
	       "registered_models.description");
	is_int(raw_count(f.raw, "SELECT count(*) FROM registered_models WHERE name = 'm' AND "
				"last_updated_time > creation_time"),
	       1, "and the model's last_updated_time moved");
	is_int(store_set_description(f.s, NULL, "m", 0, ""), 0, "clear it with \"\"");
	raw_is(&f, "SELECT quote(description) FROM registered_models WHERE name = 'm'", "''",
	       "'' is stored, as MLflow stores an empty description");
	refused(&f, store_set_description(f.s, NULL, "nope", 0, "x"), -ENOENT,
		"describing a missing model is -ENOENT");

	/* Versions. */
	sleep_ms(2);
	is_int(store_create_version(f.s, NULL, "m", src, run, &ver), 0, "create a version");
	is_int(ver, 1, "the first is version 1");
	got = raw_text(f.raw,
		       "SELECT name || '|' || version || '|' || (creation_time = "
		       "last_updated_time) || '|' || quote(description) || '|' || quote(user_id) "
		       "|| '|' || current_stage || '|' || (source = storage_location) || '|' || "
		       "run_id || '|' || status || '|' || quote(status_message) || '|' || "
		       "quote(run_link) FROM model_versions WHERE name = 'm' AND version = 1");
	want = strf("m|1|1|NULL|NULL|None|1|%s|READY|NULL|NULL", run);
	is_str(got, want, "its row as MLflow writes one");
	free(want);
	free(got);
	raw_is(&f, "SELECT source FROM model_versions WHERE name = 'm' AND version = 1", src,
	       "source is the artifact URI given");
	is_int(raw_count(f.raw, "SELECT count(*) FROM registered_models r JOIN model_versions v ON "
				"v.name = r.name WHERE r.name = 'm' AND v.version = 1 AND "
				"r.last_updated_time = v.creation_time"),
	       1, "the model's last_updated_time is the version's creation time");
	is_int(store_create_version(f.s, NULL, "m", src, NULL, &ver), 0,
	       "create a version without a run");
	is_int(ver, 2, "it is version 2");
	raw_is(&f, "SELECT quote(run_id) FROM model_versions WHERE name = 'm' AND version = 2",
	       "NULL", "its run_id is NULL");
	ver = -1;
	refused(&f, store_create_version(f.s, NULL, "nope", src, NULL, &ver), -ENOENT,
		"a version of a missing model is -ENOENT");
	is_int(ver, 0, "  and gives no number");
	is_int(store_get_version(f.s, "m", 1, &v), 0, "the store reads version 1");
	ok(!strcmp(v.source, src) && !strcmp(v.storage_location, src) && !strcmp(v.run_id, run) &&
		   !strcmp(v.stage, "None") && !strcmp(v.status, "READY"),
	   "  with its source, run, stage and status");
	store_version_release(&v);

	/* A version's description and stage. */
	sleep_ms(2);
	n = raw_count(f.raw, "SELECT last_updated_time FROM registered_models WHERE name = 'm'");
	is_int(store_set_description(f.s, NULL, "m", 1, "first cut"), 0, "describe version 1");
	raw_is(&f, "SELECT description FROM model_versions WHERE name = 'm' AND version = 1",
	       "first cut", "model_versions.description");
	is_int(raw_count(f.raw, "SELECT count(*) FROM model_versions WHERE name = 'm' AND version "
				"= 1 AND last_updated_time > creation_time"),
	       1, "the version's last_updated_time moved");
	is_int(raw_count(f.raw, "SELECT last_updated_time FROM registered_models WHERE name = 'm'"),
	       n, "the model's did not (MLflow leaves it)");
	refused(&f, store_set_description(f.s, NULL, "m", 9, "x"), -ENOENT,
		"describing a missing version is -ENOENT");
	sleep_ms(2);
	is_int(store_set_stage(f.s, NULL, "m", 1, "Production"), 0, "stage version 1");
	is_int(raw_count(f.raw,
			 "SELECT count(*) FROM model_versions v JOIN registered_models r ON r.name "
			 "= v.name WHERE v.name = 'm' AND v.version = 1 AND v.current_stage = "
			 "'Production' AND r.last_updated_time = v.last_updated_time AND "
			 "r.last_updated_time > %lld",
			 (long long)n),
	       1, "current_stage set, the version's and the model's times moved together");
	raw_is(&f, "SELECT current_stage FROM model_versions WHERE name = 'm' AND version = 2",
	       "None", "the other version keeps its stage");
	refused(&f, store_set_stage(f.s, NULL, "m", 9, "Staging"), -ENOENT,
		"staging a missing version is -ENOENT");
	refused(&f, store_set_stage(f.s, NULL, "nope", 1, "Staging"), -ENOENT,
		"staging a version of a missing model is -ENOENT");

	/* Aliases. */
	is_int(store_set_alias(f.s, NULL, "m", "champion", 1), 0, "set an alias");
	is_int(store_set_alias(f.s, NULL, "m", "champion", 2), 0, "move it");
	is_int(store_set_alias(f.s, NULL, "m", "first", 1), 0, "set another");
	raw_is(&f,
	       "SELECT group_concat(alias || '=' || version, ',') FROM (SELECT * FROM "
	       "registered_model_aliases WHERE name = 'm' ORDER BY alias)",
	       "champion=2,first=1", "registered_model_aliases: one row per alias");
	refused(&f, store_set_alias(f.s, NULL, "m", "x", 9), -ENOENT,
		"an alias to a missing version is -ENOENT");
	refused(&f, store_set_alias(f.s, NULL, "nope", "x", 1), -ENOENT,
		"an alias of a missing model is -ENOENT");
	refused(&f, store_delete_alias(f.s, NULL, "m", "nope"), -ENOENT,
		"deleting a missing alias is -ENOENT");
	refused(&f, store_delete_alias(f.s, NULL, "nope", "champion"), -ENOENT,
		"deleting an alias of a missing model is -ENOENT");
	is_int(store_set_alias(f.s, NULL, "m", "gone", 2), 0, "set a third");
	is_int(store_delete_alias(f.s, NULL, "m", "gone"), 0, "delete it");
	is_int(store_list_aliases(f.s, "m", collect_alias, &l), 0, "list aliases");
	is_str(buf_str(&l), "champion=2,first=1", "the deleted one is gone");
	buf_reset(&l);

	/* Tags of the model and of its versions. */
	ref.model = "m";
	is_int(store_set_tag(f.s, NULL, SEC_MODEL_TAGS, &ref, "owner", "a"), 0, "tag the model");
	is_int(store_set_tag(f.s, NULL, SEC_MODEL_TAGS, &ref, "owner", "b"), 0, "tag it again");
	is_int(store_set_tag(f.s, NULL, SEC_MODEL_TAGS, &ref, "tmp", "t"), 0, "a second tag");
	is_int(store_rename_tag(f.s, NULL, SEC_MODEL_TAGS, &ref, "tmp", "team"), 0,
	       "rename a model tag");
	raw_is(&f,
	       "SELECT group_concat(key || '=' || value, ',') FROM (SELECT * FROM "
	       "registered_model_tags WHERE name = 'm' ORDER BY key)",
	       "owner=b,team=t", "registered_model_tags upserted and renamed");
	ref.version = 1;
	is_int(store_set_tag(f.s, NULL, SEC_VERSION_TAGS, &ref, "ok", "yes"), 0, "tag version 1");
	is_int(store_set_tag(f.s, NULL, SEC_VERSION_TAGS, &ref, "ok", "sure"), 0, "again");
	is_int(store_set_tag(f.s, NULL, SEC_VERSION_TAGS, &ref, "drop", "me"), 0, "another");
	is_int(store_delete_tag(f.s, NULL, SEC_VERSION_TAGS, &ref, "drop"), 0,
	       "delete a version tag");
	ref.version = 2;
	is_int(store_set_tag(f.s, NULL, SEC_VERSION_TAGS, &ref, "ok", "no"), 0, "tag version 2");
	raw_is(&f,
	       "SELECT group_concat(version || ':' || key || '=' || value, ',') FROM (SELECT * "
	       "FROM model_version_tags WHERE name = 'm' ORDER BY version, key)",
	       "1:ok=sure,2:ok=no", "model_version_tags by version");
	ref.version = 1;
	keys_are(&f, SEC_VERSION_TAGS, &ref, NULL, "ok=sure", "the store lists version 1's tags");
	refused(&f, store_delete_tag(f.s, NULL, SEC_VERSION_TAGS, &ref, "nope"), -ENOENT,
		"deleting a missing version tag is -ENOENT");
	ref.version = 9;
	refused(&f, store_set_tag(f.s, NULL, SEC_VERSION_TAGS, &ref, "k", "v"), -ENOENT,
		"a tag of a missing version is -ENOENT");
	ref.model = "nope";
	refused(&f, store_set_tag(f.s, NULL, SEC_MODEL_TAGS, &ref, "k", "v"), -ENOENT,
		"a tag of a missing model is -ENOENT");
	refused(&f, store_rename_tag(f.s, NULL, SEC_MODEL_TAGS, &ref, "owner", "k"), -ENOENT,
		"renaming a tag of a missing model is -ENOENT");

	/* Rename: versions, tags and aliases follow. */
	is_int(store_create_model(f.s, NULL, "other"), 0, "a second model");
	refused(&f, store_rename_model(f.s, NULL, "m", "other"), -EEXIST,
		"renaming onto a taken name is -EEXIST");
	refused(&f, store_rename_model(f.s, NULL, "nope", "new"), -ENOENT,
		"renaming a missing model is -ENOENT");
	sleep_ms(2);
	n = wall_ms();
	is_int(store_rename_model(f.s, NULL, "m", "m2"), 0, "rename the model");
	is_int(raw_count(f.raw, "SELECT (SELECT count(*) FROM registered_models WHERE name = 'm') "
				"+ (SELECT count(*) FROM registered_model_tags WHERE name = 'm') + "
				"(SELECT count(*) FROM registered_model_aliases WHERE name = 'm') "
				"+ (SELECT count(*) FROM model_versions WHERE name = 'm') + "
				"(SELECT count(*) FROM model_version_tags WHERE name = 'm')"),
	       0, "no row of any registry table keeps the old name");
	raw_is(&f,
	       "SELECT (SELECT count(*) FROM registered_model_tags WHERE name = 'm2') || ',' || "
	       "(SELECT count(*) FROM registered_model_aliases WHERE name = 'm2') || ',' || "
	       "(SELECT count(*) FROM model_versions WHERE name = 'm2') || ',' || (SELECT count(*) "
	       "FROM model_version_tags WHERE name = 'm2')",
	       "2,2,2,2", "its 2 tags, 2 aliases, 2 versions and 2 version tags moved");
	is_int(raw_count(f.raw,
			 "SELECT count(*) FROM model_versions v JOIN registered_models r ON r.name "
			 "= v.name WHERE r.name = 'm2' AND r.last_updated_time >= %lld AND "
			 "v.last_updated_time = r.last_updated_time",
			 (long long)n),
	       2, "the model's and every version's last_updated_time is the rename's");
	is_int(store_list_versions(f.s, "m2", collect_version, &l), 0, "list the versions");
	is_str(buf_str(&l), "1:Production,2:None", "the store finds them under the new name");
	buf_reset(&l);
	is_int(store_list_aliases(f.s, "m2", collect_alias, &l), 0, "list the aliases");
	is_str(buf_str(&l), "champion=2,first=1", "the aliases followed");
	buf_reset(&l);
	ref.model = "m2";
	keys_are(&f, SEC_MODEL_TAGS, &ref, NULL, "owner=b,team=t", "the model tags followed");
	ref.version = 2;
	keys_are(&f, SEC_VERSION_TAGS, &ref, NULL, "ok=no", "the version tags followed");
	is_int(store_get_model(f.s, "m", &m), -ENOENT, "the old name is gone");
	is_int(raw_count(f.raw, "SELECT count(*) FROM pragma_foreign_key_check"), 0,
	       "no foreign key is broken");

	/* Delete a version: MLflow's soft delete. */
	refused(&f, store_delete_model(f.s, NULL, "m2"), -ENOTEMPTY,
		"a model with versions is -ENOTEMPTY");
	sleep_ms(2);
	n = wall_ms();
	is_int(store_delete_version(f.s, NULL, "m2", 1), 0, "delete version 1");
	got = raw_text(f.raw, "SELECT current_stage || '|' || quote(description) || '|' || "
			      "quote(user_id) || '|' || source || '|' || run_id || '|' || run_link "
			      "|| '|' || quote(status_message) || '|' || storage_location || '|' "
			      "|| status FROM model_versions WHERE name = 'm2' AND version = 1");
	want = strf("Deleted_Internal|NULL|NULL|REDACTED-SOURCE-PATH|REDACTED-RUN-ID|REDACTED-RUN-"
		    "LINK|NULL|%s|READY",
		    src);
	is_str(got, want, "the row stays, redacted as MLflow redacts it");
	free(want);
	free(got);
	is_int(raw_count(f.raw,
			 "SELECT count(*) FROM model_versions v JOIN registered_models r ON r.name "
			 "= v.name WHERE r.name = 'm2' AND v.version = 1 AND r.last_updated_time "
			 ">= %lld AND v.last_updated_time = r.last_updated_time",
			 (long long)n),
	       1, "the version's and the model's times moved");
	raw_is(&f,
	       "SELECT group_concat(alias || '=' || version, ',') FROM registered_model_aliases "
	       "WHERE name = 'm2'",
	       "champion=2", "the alias that pointed at it went, the other stayed");
	is_int(raw_count(
		       f.raw,
		       "SELECT count(*) FROM model_version_tags WHERE name = 'm2' AND version = 1"),
	       1, "its tags stay, as in MLflow");
	is_int(store_get_version(f.s, "m2", 1, &v), -ENOENT, "the store no longer finds it");
	refused(&f, store_delete_version(f.s, NULL, "m2", 1), -ENOENT,
		"deleting it again is -ENOENT");
	refused(&f, store_set_alias(f.s, NULL, "m2", "x", 1), -ENOENT,
		"an alias to a deleted version is -ENOENT");
	ref.version = 1;
	refused(&f, store_set_tag(f.s, NULL, SEC_VERSION_TAGS, &ref, "k", "v"), -ENOENT,
		"a tag of a deleted version is -ENOENT");
	refused(&f, store_set_stage(f.s, NULL, "m2", 1, "Archived"), -ENOENT,
		"staging a deleted version is -ENOENT");
	is_int(store_create_version(f.s, NULL, "m2", src, run, &ver), 0, "create another version");
	is_int(ver, 3, "numbers count deleted versions too");

	/* In a batch: committed with it. */
	b = store_batch_new(f.s);
	ok(b != NULL, "a batch");
	is_int(store_set_stage(f.s, b, "m2", 3, "Staging"), 0, "a stage in the batch");
	is_int(store_batch_commit(f.s, b, 0), 0, "commit the batch");
	store_batch_free(f.s, b);
	raw_is(&f, "SELECT current_stage FROM model_versions WHERE name = 'm2' AND version = 3",
	       "Staging", "the other program sees it");

	/* Delete the model once its versions are gone. */
	is_int(store_delete_version(f.s, NULL, "m2", 2), 0, "delete version 2");
	refused(&f, store_delete_model(f.s, NULL, "m2"), -ENOTEMPTY,
		"one live version is enough for -ENOTEMPTY");
	is_int(store_delete_version(f.s, NULL, "m2", 3), 0, "delete version 3");
	is_int(store_delete_model(f.s, NULL, "m2"), 0, "delete the model");
	is_int(raw_count(f.raw, "SELECT (SELECT count(*) FROM registered_models WHERE name = 'm2') "
				"+ (SELECT count(*) FROM registered_model_tags WHERE name = 'm2') "
				"+ (SELECT count(*) FROM registered_model_aliases WHERE name = "
				"'m2') + (SELECT count(*) FROM model_versions WHERE name = 'm2') + "
				"(SELECT count(*) FROM model_version_tags WHERE name = 'm2')"),
	       0, "it, its tags, aliases and deleted versions' rows are gone, as in MLflow");
	raw_is(&f, "SELECT group_concat(name) FROM registered_models", "other",
	       "the other model stays");
	refused(&f, store_delete_model(f.s, NULL, "m2"), -ENOENT,
		"deleting a missing model is -ENOENT");
	is_int(raw_count(f.raw, "SELECT count(*) FROM pragma_foreign_key_check"), 0,
	       "no foreign key is broken");

	/* -o ro: every registry write is -EROFS. */
	reopen_read_only(&f);
	if (f.s) {
		ref.model = "other";
		refused(&f, store_create_model(f.s, NULL, "x"), -EROFS,
			"read-only: create_model is -EROFS");
		refused(&f, store_rename_model(f.s, NULL, "other", "x"), -EROFS,
			"read-only: rename_model is -EROFS");
		refused(&f, store_delete_model(f.s, NULL, "other"), -EROFS,
			"read-only: delete_model is -EROFS");
		refused(&f, store_set_description(f.s, NULL, "other", 0, "x"), -EROFS,
			"read-only: set_description is -EROFS");
		refused(&f, store_create_version(f.s, NULL, "other", src, NULL, &ver), -EROFS,
			"read-only: create_version is -EROFS");
		refused(&f, store_set_tag(f.s, NULL, SEC_MODEL_TAGS, &ref, "k", "v"), -EROFS,
			"read-only: a model tag is -EROFS");
		refused(&f, store_delete_alias(f.s, NULL, "other", "a"), -EROFS,
			"read-only: delete_alias is -EROFS");
	}
	buf_release(&l);
	free(src);
	fx_teardown(&f);
}

/* MLflow 3's registry tables, as MLflow 3.17.2 creates them, in place of
 * ours; and a model of another workspace. */
static const char *const mlflow3_registry[] = {
	"DROP TABLE model_version_tags; DROP TABLE registered_model_aliases; "
	"DROP TABLE registered_model_tags; DROP TABLE model_versions; "
	"DROP TABLE registered_models",
	"CREATE TABLE registered_models (name VARCHAR(256) NOT NULL, creation_time BIGINT, "
	"last_updated_time BIGINT, description VARCHAR(5000), "
	"workspace VARCHAR(63) DEFAULT 'default' NOT NULL, "
	"CONSTRAINT registered_model_pk PRIMARY KEY (workspace, name))",
	"CREATE TABLE model_versions (name VARCHAR(256) NOT NULL, version INTEGER NOT NULL, "
	"creation_time BIGINT, last_updated_time BIGINT, description VARCHAR(5000), "
	"user_id VARCHAR(256), current_stage VARCHAR(20), source VARCHAR(500), "
	"run_id VARCHAR(32), status VARCHAR(20), status_message VARCHAR(500), "
	"run_link VARCHAR(500), storage_location VARCHAR(500), "
	"workspace VARCHAR(63) DEFAULT 'default' NOT NULL, "
	"CONSTRAINT model_version_pk PRIMARY KEY (workspace, name, version), "
	"CONSTRAINT fk_model_versions_registered_models FOREIGN KEY(workspace, name) "
	"REFERENCES registered_models (workspace, name) ON UPDATE CASCADE)",
	"CREATE TABLE registered_model_tags (\"key\" VARCHAR(250) NOT NULL, "
	"value VARCHAR(5000), name VARCHAR(256) NOT NULL, "
	"workspace VARCHAR(63) DEFAULT 'default' NOT NULL, "
	"CONSTRAINT registered_model_tag_pk PRIMARY KEY (workspace, \"key\", name), "
	"CONSTRAINT fk_registered_model_tags_registered_models FOREIGN KEY(workspace, name) "
	"REFERENCES registered_models (workspace, name) ON UPDATE CASCADE)",
	"CREATE TABLE model_version_tags (\"key\" VARCHAR(250) NOT NULL, value TEXT, "
	"name VARCHAR(256) NOT NULL, version INTEGER NOT NULL, "
	"workspace VARCHAR(63) DEFAULT 'default' NOT NULL, "
	"CONSTRAINT model_version_tag_pk PRIMARY KEY (workspace, \"key\", name, version), "
	"CONSTRAINT fk_model_version_tags_model_versions FOREIGN KEY(workspace, name, version) "
	"REFERENCES model_versions (workspace, name, version) ON UPDATE CASCADE)",
	"CREATE TABLE registered_model_aliases (alias VARCHAR(256) NOT NULL, "
	"version INTEGER NOT NULL, name VARCHAR(256) NOT NULL, "
	"workspace VARCHAR(63) DEFAULT 'default' NOT NULL, "
	"CONSTRAINT registered_model_alias_pk PRIMARY KEY (workspace, name, alias), "
	"CONSTRAINT fk_registered_model_aliases_registered_models FOREIGN KEY(workspace, name) "
	"REFERENCES registered_models (workspace, name) ON DELETE CASCADE ON UPDATE CASCADE)",
	"INSERT INTO registered_models VALUES ('w', 1, 1, 'theirs', 'other'); "
	"INSERT INTO model_versions VALUES ('w', 5, 1, 1, NULL, NULL, 'None', 's', NULL, "
	"'READY', NULL, NULL, 's', 'other'); "
	"INSERT INTO registered_model_tags VALUES ('k', 'theirs', 'w', 'other'); "
	"INSERT INTO model_version_tags VALUES ('k', 'theirs', 'w', 5, 'other'); "
	"INSERT INTO registered_model_aliases VALUES ('a', 5, 'w', 'other')",
};

/*
 * The registry of MLflow 3: a workspace column, defaulting to 'default', in
 * every key.  Writes go to workspace 'default' and leave the rows of another
 * one alone.
 */
static void test_registry_workspace(void)
{
	size_t i;
	int err;
	struct store_ref ref = { .model = "w", .version = 1 };
	struct buf l = BUF_INIT;
	int64_t ver = -1;
	char *why = NULL;
	struct fx f;

	if (fx_setup(&f, "regws")) {
		fx_teardown(&f);
		return;
	}
	store_close(f.s);
	f.s = NULL;
	for (i = 0, err = 0; !err && i < sizeof(mlflow3_registry) / sizeof(mlflow3_registry[0]);
	     i++)
		err = raw_exec(f.raw, "%s", mlflow3_registry[i]);
	ok(!err, "MLflow 3's registry tables, with a model in another workspace");
	f.s = open_cached(&f.cfg, &f.bare, &why);
	if (!ok(f.s != NULL, "the store opens it")) {
		tap_diag("store_open: %s", why ? why : "(no message)");
		free(why);
		fx_teardown(&f);
		return;
	}
	free(why);
	is_int(store_create_model(f.s, NULL, "w"), 0,
	       "a name taken in another workspace only is free");
	is_int(store_create_version(f.s, NULL, "w", "/s/model", NULL, &ver), 0, "create a version");
	is_int(ver, 1, "numbered within the workspace");
	is_int(store_set_description(f.s, NULL, "w", 0, "ours"), 0, "describe it");
	is_int(store_set_tag(f.s, NULL, SEC_MODEL_TAGS, &ref, "k", "ours"), 0, "tag it");
	is_int(store_set_tag(f.s, NULL, SEC_VERSION_TAGS, &ref, "k", "ours"), 0, "tag version 1");
	is_int(store_set_alias(f.s, NULL, "w", "a", 1), 0, "alias version 1");
	is_int(store_set_stage(f.s, NULL, "w", 1, "Staging"), 0, "stage version 1");
	raw_is(&f,
	       "SELECT (SELECT group_concat(description) FROM registered_models WHERE workspace = "
	       "'default') || ',' || (SELECT group_concat(value) FROM registered_model_tags WHERE "
	       "workspace = 'default') || ',' || (SELECT group_concat(value) FROM "
	       "model_version_tags WHERE workspace = 'default') || ',' || (SELECT "
	       "group_concat(version) FROM registered_model_aliases WHERE workspace = 'default') "
	       "|| ',' || (SELECT group_concat(current_stage) FROM model_versions WHERE workspace "
	       "= 'default')",
	       "ours,ours,ours,1,Staging", "every new row is in workspace 'default'");
	raw_is(&f,
	       "SELECT (SELECT group_concat(description) FROM registered_models WHERE workspace = "
	       "'other') || ',' || (SELECT group_concat(value) FROM registered_model_tags WHERE "
	       "workspace = 'other') || ',' || (SELECT group_concat(value) FROM model_version_tags "
	       "WHERE workspace = 'other') || ',' || (SELECT group_concat(version) FROM "
	       "registered_model_aliases WHERE workspace = 'other')",
	       "theirs,theirs,theirs,5", "the other workspace's rows are untouched");
	is_int(store_rename_model(f.s, NULL, "w", "w2"), 0, "rename it");
	raw_is(&f,
	       "SELECT group_concat(t || ':' || workspace || ':' || name, ',') FROM (SELECT 'm' AS "
	       "t, workspace, name FROM registered_models UNION ALL SELECT 'v', workspace, name "
	       "FROM model_versions UNION ALL SELECT 't', workspace, name FROM "
	       "registered_model_tags UNION ALL SELECT 'a', workspace, name FROM "
	       "registered_model_aliases UNION ALL SELECT 'vt', workspace, name FROM "
	       "model_version_tags ORDER BY 1, 2)",
	       "a:default:w2,a:other:w,m:default:w2,m:other:w,t:default:w2,t:other:w,v:default:w2,"
	       "v:other:w,vt:default:w2,vt:other:w",
	       "the rename moved this workspace's rows only");
	is_int(store_list_aliases(f.s, "w2", collect_alias, &l), 0, "list the aliases");
	is_str(buf_str(&l), "a=1", "the store reads them under the new name");
	is_int(store_delete_version(f.s, NULL, "w2", 1), 0, "delete the version");
	is_int(store_delete_model(f.s, NULL, "w2"), 0, "delete the model");
	raw_is(&f,
	       "SELECT (SELECT count(*) FROM registered_models) || (SELECT count(*) FROM "
	       "model_versions) || (SELECT count(*) FROM registered_model_tags) || (SELECT "
	       "count(*) FROM model_version_tags) || (SELECT count(*) FROM "
	       "registered_model_aliases) || (SELECT count(*) FROM registered_models WHERE "
	       "workspace = 'default')",
	       "111110", "only the other workspace's rows are left");
	is_int(raw_count(f.raw, "SELECT count(*) FROM pragma_foreign_key_check"), 0,
	       "no foreign key is broken");
	buf_release(&l);
	fx_teardown(&f);
}

/* ---- MLflow 3's logged models ---------------------------------------- */

/* The logged-model tables as MLflow 3.17.2 creates them (sqlite3 .schema of
 * a database it made), and the workspace column it adds to experiments. */
static const char *const mlflow3_logged_models[] = {
	"CREATE TABLE logged_models (model_id VARCHAR(36) NOT NULL, "
	"experiment_id INTEGER NOT NULL, name VARCHAR(500) NOT NULL, "
	"artifact_location VARCHAR(1000) NOT NULL, creation_timestamp_ms BIGINT NOT NULL, "
	"last_updated_timestamp_ms BIGINT NOT NULL, status INTEGER NOT NULL, "
	"lifecycle_stage VARCHAR(32), model_type VARCHAR(500), source_run_id VARCHAR(32), "
	"status_message VARCHAR(1000), CONSTRAINT logged_models_pk PRIMARY KEY (model_id), "
	"CONSTRAINT logged_models_lifecycle_stage_check CHECK (lifecycle_stage IN ('active', "
	"'deleted')), CONSTRAINT fk_logged_models_experiment_id FOREIGN KEY(experiment_id) "
	"REFERENCES experiments (experiment_id) ON DELETE CASCADE)",
	"CREATE TABLE logged_model_params (model_id VARCHAR(36) NOT NULL, "
	"experiment_id INTEGER NOT NULL, param_key VARCHAR(255) NOT NULL, "
	"param_value TEXT NOT NULL, CONSTRAINT logged_model_params_pk PRIMARY KEY (model_id, "
	"param_key), CONSTRAINT fk_logged_model_params_experiment_id FOREIGN KEY(experiment_id) "
	"REFERENCES experiments (experiment_id), CONSTRAINT fk_logged_model_params_model_id "
	"FOREIGN KEY(model_id) REFERENCES logged_models (model_id) ON DELETE CASCADE)",
	"CREATE TABLE logged_model_tags (model_id VARCHAR(36) NOT NULL, "
	"experiment_id INTEGER NOT NULL, tag_key VARCHAR(255) NOT NULL, "
	"tag_value TEXT NOT NULL, CONSTRAINT logged_model_tags_pk PRIMARY KEY (model_id, "
	"tag_key), CONSTRAINT fk_logged_model_tags_experiment_id FOREIGN KEY(experiment_id) "
	"REFERENCES experiments (experiment_id), CONSTRAINT fk_logged_model_tags_model_id "
	"FOREIGN KEY(model_id) REFERENCES logged_models (model_id) ON DELETE CASCADE)",
	"CREATE TABLE logged_model_metrics (model_id VARCHAR(36) NOT NULL, "
	"metric_name VARCHAR(500) NOT NULL, metric_timestamp_ms BIGINT NOT NULL, "
	"metric_step BIGINT NOT NULL, metric_value FLOAT, experiment_id INTEGER NOT NULL, "
	"run_id VARCHAR(32) NOT NULL, dataset_uuid VARCHAR(36), dataset_name VARCHAR(500), "
	"dataset_digest VARCHAR(36), CONSTRAINT logged_model_metrics_pk PRIMARY KEY (model_id, "
	"metric_name, metric_timestamp_ms, metric_step, run_id), "
	"CONSTRAINT fk_logged_model_metrics_experiment_id FOREIGN KEY(experiment_id) "
	"REFERENCES experiments (experiment_id), CONSTRAINT fk_logged_model_metrics_model_id "
	"FOREIGN KEY(model_id) REFERENCES logged_models (model_id) ON DELETE CASCADE, "
	"CONSTRAINT fk_logged_model_metrics_run_id FOREIGN KEY(run_id) REFERENCES runs "
	"(run_uuid) ON DELETE CASCADE)",
	"CREATE INDEX index_logged_model_metrics_model_id ON logged_model_metrics (model_id)",
	"ALTER TABLE experiments ADD COLUMN workspace VARCHAR(63) DEFAULT 'default' NOT NULL",
};

#define LM_A "m-aaaaaaaa000000000000000000000001" /* READY, from run 1 */
#define LM_B "m-bbbbbbbb000000000000000000000002" /* the oldest, PENDING, no run */
#define LM_C "m-cccccccc000000000000000000000003" /* as old as A, FAILED */
#define LM_D "m-dddddddd000000000000000000000004" /* deleted */
#define LM_E "m-eeeeeeee000000000000000000000005" /* of the second experiment */
#define LM_X "m-ffffffff000000000000000000000006" /* nowhere */

static int collect_logged_model(void *ctx, const struct store_logged_model *m)
{
	return list_add(ctx, "%s:%s:%s:%s:%s:%.10s", m->folder ? m->folder : "(null)", m->name,
			m->status, m->model_type, m->source_run_id[0] ? "run" : "-", m->id);
}

static char *lm_keys(struct store *s, enum store_section sec, const char *id, const char *prefix)
{
	struct store_ref ref = { .logged_model = id };
	struct buf b = BUF_INIT;
	int err = store_list_kv(s, sec, &ref, prefix,
				sec == SEC_LM_METRICS ? collect_metric : collect_kv, &b);

	if (err) {
		tap_diag("store_list_kv(%d, %s): %d %s", (int)sec, id, err, store_errmsg());
		buf_release(&b);
		return NULL;
	}
	return buf_detach(&b);
}

static void lm_keys_are(struct store *s, enum store_section sec, const char *id, const char *prefix,
			const char *want, const char *name)
{
	char *got = lm_keys(s, sec, id, prefix);

	is_str(got, want, name);
	free(got);
}

/* A database mlflowfs made has MLflow 2.x's schema: no logged model. */
static void test_logged_models_absent(void)
{
	struct store_ref ref = { .logged_model = LM_A };
	struct store_logged_model m;
	struct buf b = BUF_INIT;
	struct store_kv kv;
	int64_t ver = -1;
	char exp[STORE_ID_MAX];
	struct fx f;

	if (fx_setup(&f, "lmabsent") || new_exp(&f, "e", exp)) {
		fx_teardown(&f);
		return;
	}
	is_int(store_list_logged_models(f.s, exp, collect_logged_model, &b), 0,
	       "no logged-model tables: listing them is no error");
	is_str(buf_str(&b), "", "  and lists none");
	is_int(store_get_logged_model(f.s, LM_A, &m), -ENOENT, "  a logged model is -ENOENT");
	is_int(store_list_kv(f.s, SEC_LM_PARAMS, &ref, NULL, collect_kv, &b), 0,
	       "  its params list as none");
	is_str(buf_str(&b), "", "  none at all");
	is_int(store_get_kv(f.s, SEC_LM_TAGS, &ref, "k", &kv), -ENOENT, "  a tag is -ENOENT");
	is_int(store_create_model(f.s, NULL, "reg"), 0, "a registered model");
	is_int(store_create_version(f.s, NULL, "reg", "models:/" LM_A, NULL, &ver), -ENOENT,
	       "  a version from models:/<id> is -ENOENT");
	is_int(raw_count(f.raw, "SELECT count(*) FROM model_versions"), 0, "  and none is made");
	buf_release(&b);
	fx_teardown(&f);
}

static void test_logged_models(void)
{
	struct store_ref ref = { .logged_model = LM_A };
	char exp[STORE_ID_MAX], exp2[STORE_ID_MAX], run1[STORE_RUN_ID_MAX], run2[STORE_RUN_ID_MAX],
		*loc = NULL, *want = NULL, *got;
	struct store_logged_model m;
	struct buf b = BUF_INIT;
	struct store_kv kv;
	int64_t ver = -1;
	char *why = NULL;
	size_t i;
	int err;
	struct fx f;

	if (fx_setup(&f, "lm") || new_exp(&f, "e", exp) || new_exp(&f, "e2", exp2) ||
	    new_run(&f, exp, "r1", run1) || new_run(&f, exp, "r2", run2)) {
		fx_teardown(&f);
		return;
	}
	store_close(f.s);
	f.s = NULL;
	for (i = 0, err = 0;
	     !err && i < sizeof(mlflow3_logged_models) / sizeof(mlflow3_logged_models[0]); i++)
		err = raw_exec(f.raw, "%s", mlflow3_logged_models[i]);
	/* Rows as MLflow writes them: its location is the experiment's + models/<id>/artifacts. */
	loc = raw_text(f.raw,
		       "SELECT artifact_location || '/models/" LM_A "/artifacts' FROM experiments "
		       "WHERE experiment_id = %s",
		       exp);
	err = err || !loc ||
	      raw_exec(f.raw,
		       "INSERT INTO logged_models VALUES "
		       "(%Q, %s, 'model', %Q, 2000, 2100, 2, 'active', NULL, %Q, NULL), "
		       "(%Q, %s, 'model', '/b', 1000, 1000, 1, 'active', 'agent', NULL, NULL), "
		       "(%Q, %s, 'other', '/c', 2000, 2000, 3, 'active', NULL, %Q, 'upload "
		       "failed'), "
		       "(%Q, %s, 'model', '/d', 500, 600, 2, 'deleted', NULL, %Q, NULL), "
		       "(%Q, %s, 'model', '/e', 100, 100, 2, 'active', NULL, NULL, NULL);"
		       "INSERT INTO logged_model_params VALUES (%Q, %s, 'alpha', '0.5'), "
		       "(%Q, %s, 'beta', 'x'), (%Q, %s, 'alpha', '0.9');"
		       "INSERT INTO logged_model_tags VALUES (%Q, %s, 'mlflow.user', 'root'), "
		       "(%Q, %s, 'mlflow.source.type', 'LOCAL'), (%Q, %s, 'k', 'v');"
		       "INSERT INTO logged_model_metrics (model_id, metric_name, "
		       "metric_timestamp_ms, metric_step, metric_value, experiment_id, run_id) "
		       "VALUES (%Q, 'rmse', 10, 0, 0.25, %s, %Q), (%Q, 'rmse', 20, 0, 0.125, %s, "
		       "%Q), "
		       "(%Q, 'acc', 30, 5, 0.8, %s, %Q), (%Q, 'acc', 40, 0, 0.7, %s, %Q), "
		       "(%Q, 'tie', 50, 1, 1.5, %s, %Q), (%Q, 'tie', 50, 1, 2.5, %s, %Q), "
		       "(%Q, 'none', 60, 0, NULL, %s, %Q), (%Q, 'inf', 70, 0, "
		       "1.7976931348623157e308, "
		       "%s, %Q), (%Q, 'rmse', 99, 9, 7, %s, %Q)",
		       LM_A, exp, loc, run1, LM_B, exp, LM_C, exp, run2, LM_D, exp, run1, LM_E,
		       exp2, LM_A, exp, LM_A, exp, LM_B, exp, LM_A, exp, LM_A, exp, LM_B, exp, LM_A,
		       exp, run1, LM_A, exp, run1, LM_A, exp, run1, LM_A, exp, run1, LM_A, exp,
		       run1, LM_A, exp, run2, LM_A, exp, run1, LM_A, exp, run1, LM_B, exp, run1);
	ok(!err, "MLflow 3.17.2's logged-model tables, with models in two experiments");
	f.s = open_cached(&f.cfg, &f.bare, &why);
	if (!ok(f.s != NULL, "the store opens it")) {
		tap_diag("store_open: %s", why ? why : "(no message)");
		free(why);
		free(loc);
		fx_teardown(&f);
		return;
	}
	free(why);

	is_int(store_list_logged_models(f.s, exp, collect_logged_model, &b), 0, "list them");
	is_str(buf_str(&b),
	       "model:model:PENDING:agent:-:m-bbbbbbbb,model@aaaaaaaa:model:READY::run:m-aaaaaaaa,"
	       "other:other:FAILED::run:m-cccccccc",
	       "oldest first, then by id; the deleted one and the other experiment's left out");
	buf_reset(&b);
	is_int(store_list_logged_models(f.s, exp2, collect_logged_model, &b), 0,
	       "list the other experiment's");
	is_str(buf_str(&b), "model:model:READY::-:m-eeeeeeee", "  its one model");
	buf_reset(&b);

	is_int(store_get_logged_model(f.s, LM_A, &m), 0, "get one by id");
	ok(!strcmp(m.id, LM_A) && !strcmp(m.experiment_id, exp) && !strcmp(m.name, "model") &&
		   !strcmp(m.artifact_location, loc) && !strcmp(m.source_run_id, run1) &&
		   !strcmp(m.model_type, "") && !strcmp(m.status, "READY") &&
		   m.creation_time == 2000 && m.last_updated_time == 2100 && !m.folder,
	   "  every field, a missing model type as \"\", no folder from the backend");
	store_logged_model_release(&m);
	is_int(store_get_logged_model(f.bare, LM_B, &m), 0, "get the PENDING one from the backend");
	ok(!strcmp(m.model_type, "agent") && !strcmp(m.source_run_id, "") &&
		   !strcmp(m.status, "PENDING") && !strcmp(m.artifact_location, "/b"),
	   "  a missing source run as \"\"");
	store_logged_model_release(&m);
	is_int(store_get_logged_model(f.s, LM_D, &m), -ENOENT, "a deleted one is -ENOENT");
	is_int(store_get_logged_model(f.s, LM_X, &m), -ENOENT, "an unknown one is -ENOENT");
	is_int(store_find_logged_model(f.s, exp, "model@aaaaaaaa", &m), 0,
	       "find one by its folder");
	is_str(m.id, LM_A, "  the right one");
	store_logged_model_release(&m);

	lm_keys_are(f.s, SEC_LM_PARAMS, LM_A, NULL, "alpha=0.5,beta=x", "its params");
	lm_keys_are(f.s, SEC_LM_PARAMS, LM_A, "al", "alpha=0.5", "  by prefix");
	lm_keys_are(f.s, SEC_LM_TAGS, LM_A, NULL, "mlflow.source.type=LOCAL,mlflow.user=root",
		    "its tags");
	lm_keys_are(f.s, SEC_LM_TAGS, LM_A, "mlflow.u", "mlflow.user=root", "  by prefix");
	/* As a run's latest: the highest step, then the newest, then the
	 * greatest value wins a tie of both. */
	want = strf("acc=0.8@5,inf=inf@0,none=nan@0,rmse=0.125@0,tie=2.5@1");
	lm_keys_are(f.s, SEC_LM_METRICS, LM_A, NULL, want,
		    "its metrics: each one's point with the highest step, then timestamp, then "
		    "value");
	lm_keys_are(f.s, SEC_LM_METRICS, LM_A, "r", "rmse=0.125@0", "  by prefix");
	lm_keys_are(f.s, SEC_LM_METRICS, LM_B, NULL, "rmse=7@9", "  another model's");
	lm_keys_are(f.s, SEC_LM_PARAMS, LM_X, NULL, "", "an unknown model has no params");
	is_int(store_get_kv(f.s, SEC_LM_METRICS, &ref, "acc", &kv), 0, "get a metric");
	ok(kv.num == 0.8 && kv.step == 5 && kv.timestamp == 30 && !kv.value,
	   "  its value, step and timestamp");
	store_kv_release(&kv);
	is_int(store_get_kv(f.s, SEC_LM_METRICS, &ref, "tie", &kv), 0, "get the tied metric");
	ok(kv.num == 2.5 && kv.timestamp == 50, "  the greater value's point");
	store_kv_release(&kv);
	is_int(store_get_kv(f.s, SEC_LM_PARAMS, &ref, "beta", &kv), 0, "get a param");
	is_str(kv.value, "x", "  its value");
	store_kv_release(&kv);
	is_int(store_get_kv(f.s, SEC_LM_TAGS, &ref, "mlflow.user", &kv), 0, "get a tag");
	is_str(kv.value, "root", "  its value");
	store_kv_release(&kv);
	is_int(store_get_kv(f.s, SEC_LM_TAGS, &ref, "nope", &kv), -ENOENT,
	       "an unknown tag is -ENOENT");
	is_int(store_set_tag(f.s, NULL, SEC_LM_TAGS, &ref, "k", "v"), -EROFS,
	       "a logged model's tags are read-only");
	is_int(store_delete_tag(f.s, NULL, SEC_LM_TAGS, &ref, "mlflow.user"), -EROFS,
	       "  none is deleted");
	is_int(store_rename_tag(f.s, NULL, SEC_LM_TAGS, &ref, "mlflow.user", "u"), -EROFS,
	       "  nor renamed");
	is_int(store_set_tag(f.s, NULL, SEC_LM_PARAMS, &ref, "alpha", "1"), -EROFS,
	       "  nor its params");
	is_int(raw_count(f.raw,
			 "SELECT count(*) FROM logged_model_tags WHERE model_id = '" LM_A "'"),
	       2, "  its tags are as they were");

	/* Registering from models:/<id>, as MLflow's registry store records it. */
	is_int(store_create_model(f.s, NULL, "reg"), 0, "a registered model");
	is_int(store_create_version(f.s, NULL, "reg", "models:/" LM_A, NULL, &ver), 0,
	       "a version from models:/<id>");
	is_int(ver, 1, "  version 1");
	got = raw_text(f.raw, "SELECT source || '|' || storage_location || '|' || run_id || '|' "
			      "|| status || '|' || current_stage FROM model_versions WHERE "
			      "name = 'reg' AND version = 1");
	free(want);
	want = strf("models:/%s|%s|%s|READY|None", LM_A, loc, run1);
	is_str(got, want, "  stored at the model's artifact location, from its source run");
	free(got);
	is_int(store_create_version(f.s, NULL, "reg", "models:/" LM_A, run2, &ver), 0,
	       "a version from models:/<id> and another run");
	got = raw_text(f.raw, "SELECT run_id FROM model_versions WHERE name = 'reg' AND "
			      "version = 2");
	is_str(got, run2, "  the run given wins");
	free(got);
	is_int(store_create_version(f.s, NULL, "reg", "models:/" LM_B, "", &ver), 0,
	       "a version from a model without a source run");
	is_int(raw_count(f.raw, "SELECT count(*) FROM model_versions WHERE name = 'reg' AND "
				"version = 3 AND run_id IS NULL AND storage_location = '/b'"),
	       1, "  has no run id");
	is_int(store_create_version(f.s, NULL, "reg", "models:/" LM_X, NULL, &ver), -ENOENT,
	       "an unknown models:/ id is -ENOENT");
	ok(strstr(store_errmsg(), LM_X) != NULL, "  said so: %s", store_errmsg());
	is_int(store_create_version(f.s, NULL, "reg", "models:/" LM_D, NULL, &ver), -ENOENT,
	       "a deleted one is -ENOENT");
	is_int(store_create_version(f.s, NULL, "reg", "models:/reg/1", NULL, &ver), -EINVAL,
	       "a registered model's models:/ URI is -EINVAL");
	is_int(raw_count(f.raw, "SELECT count(*) FROM model_versions"), 3,
	       "  and none of these made a version");
	is_int(raw_count(f.raw, "SELECT count(*) FROM logged_model_tags WHERE tag_key = "
				"'mlflow.modelVersions'"),
	       0, "no mlflow.modelVersions tag: create_model_version writes none");

	/* MLflow scopes a logged model by its experiment's workspace. */
	ok(!raw_exec(f.raw, "UPDATE experiments SET workspace = 'other' WHERE experiment_id = %s",
		     exp2),
	   "move the second experiment to another workspace");
	store_close(f.s);
	f.s = open_cached(&f.cfg, &f.bare, &why);
	free(why);
	if (ok(f.s != NULL, "the store reopens")) {
		is_int(store_get_logged_model(f.s, LM_E, &m), -ENOENT,
		       "  another workspace's model is -ENOENT");
		is_int(store_list_logged_models(f.s, exp2, collect_logged_model, &b), 0,
		       "  listing its experiment's");
		is_str(buf_str(&b), "", "  finds none");
		is_int(store_get_logged_model(f.s, LM_A, &m), 0, "  ours is there");
		store_logged_model_release(&m);
	}
	free(want);
	free(loc);
	buf_release(&b);
	fx_teardown(&f);
}

/* ---- the runs/ index ------------------------------------------------- */

/* Every active run of every active experiment, as the runs/ index lists
 * them: experiments, then each one's runs, asked from within the
 * experiments' callback (no store holds a lock while it calls back). */
struct all_ctx {
	struct store *s;
	struct buf *out;
	const char *exp_name;
	int stop; /* stop at the first run */
	int calls;
};

static int all_run(void *ctx, const struct store_run *r)
{
	struct all_ctx *a = ctx;

	a->calls++;
	if (a->stop)
		return 5;
	return list_add(a->out, "%s/%s", a->exp_name, r->folder ? r->folder : "(null)");
}

static int all_exp(void *ctx, const struct store_experiment *e)
{
	struct all_ctx *a = ctx;

	a->exp_name = e->name;
	return store_list_runs(a->s, e->id, all_run, a);
}

static void test_all_runs(void)
{
	char ea[STORE_ID_MAX], eb[STORE_ID_MAX], d1[STORE_RUN_ID_MAX], a1[STORE_RUN_ID_MAX],
		a2[STORE_RUN_ID_MAX], a3[STORE_RUN_ID_MAX], b1[STORE_RUN_ID_MAX], *want;
	struct buf b = BUF_INIT;
	struct all_ctx all = { 0 };
	struct fx f;

	if (fx_setup(&f, "allruns")) {
		fx_teardown(&f);
		return;
	}
	all.s = f.s;
	all.out = &b;
	ok(!new_exp(&f, "A", ea) && !new_exp(&f, "B", eb), "two experiments");
	ok(!new_run(&f, "0", "d1", d1), "a run in Default");
	ok(!new_run(&f, ea, "a1", a1), "a run in A");
	sleep_ms(3);
	ok(!new_run(&f, ea, "", a2), "a nameless run in A");
	sleep_ms(3);
	ok(!new_run(&f, ea, "a3", a3), "another run in A");
	is_int(store_delete_run(f.s, NULL, a3), 0, "delete it");
	ok(!new_run(&f, eb, "b1", b1), "a run in B");
	is_int(store_list_experiments(f.s, all_exp, &all), 0,
	       "list every run, the runs from within the experiments' callback");
	want = strf("Default/d1,A/a1,A/%s,B/b1", a2);
	is_str(buf_str(&b), want, "every active run of every experiment, with its folder");
	free(want);
	buf_reset(&b);

	/* An experiment that MLflow deleted while a run was still active. */
	ok(!settle(&f) && !raw_exec(f.raw,
				    "UPDATE experiments SET lifecycle_stage = 'deleted' "
				    "WHERE experiment_id = %s",
				    eb),
	   "another program deletes B");
	is_int(store_list_experiments(f.s, all_exp, &all), 0, "list every run again");
	want = strf("Default/d1,A/a1,A/%s", a2);
	is_str(buf_str(&b), want, "runs of a deleted experiment are left out");
	free(want);
	buf_release(&b);
	all.stop = 1;
	all.calls = 0;
	is_int(store_list_experiments(f.s, all_exp, &all), 5,
	       "a stop value from the inner listing ends both");
	is_int(all.calls, 1, "after one callback");
	fx_teardown(&f);
}

/* ---- threads --------------------------------------------------------- */

#define WORKERS		  4
#define POINTS_PER_WORKER 1000

struct worker {
	struct store *s;
	const char *exp;
	int n;
	char run_id[STORE_RUN_ID_MAX];
	int failures; /* calls that failed or answered wrongly */
	char first[160];
};

static void worker_fail(struct worker *w, const char *what, int err)
{
	if (!w->failures++)
		snprintf(w->first, sizeof(w->first), "%s: %d %s", what, err, store_errmsg());
}

/* A worker is a descriptor: its writes go into its batch, committed at the
 * end (close()). */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct store_batch *b;
	struct metric_point p[5];
	struct store_run r;
	struct store_kv kv;
	char name[16];
	int j = 0, k, n, err;

	snprintf(name, sizeof(name), "thread-%d", w->n);
	err = store_create_run(w->s, NULL, w->exp, name, "worker", &r);
	if (err) {
		worker_fail(w, "create_run", err);
		return NULL;
	}
	snprintf(w->run_id, sizeof(w->run_id), "%s", r.run_id);
	store_run_release(&r);
	b = store_batch_new(w->s);
	if (!b) {
		worker_fail(w, "batch_new", -ENOMEM);
		return NULL;
	}
	while (j < POINTS_PER_WORKER) {
		/* Single points first, then small batches: both paths at once. */
		n = j < POINTS_PER_WORKER / 2 ? 1 : 5;
		for (k = 0; k < n; k++)
			p[k] = pt((double)(j + k));
		err = log_auto(w->s, b, w->run_id, "points", p, (size_t)n);
		if (err)
			worker_fail(w, "log_metrics", err);
		for (k = 0; !err && k < n; k++)
			if (p[k].step != j + k)
				worker_fail(w, "a step out of sequence", (int)p[k].step);
		j += n;
		if (j % 100)
			continue;
		/* Reads in between, as a FUSE loop mixes them with writes. */
		err = snap_get(w->s, w->run_id, SEC_METRICS, "points", &kv);
		if (err)
			worker_fail(w, "get_snapshot", err);
		else if (kv.step != j - 1 || kv.num != j - 1)
			worker_fail(w, "a wrong latest step", (int)kv.step);
		if (!err)
			store_kv_release(&kv);
		err = store_find_run(w->s, w->exp, name, &r);
		if (err)
			worker_fail(w, "find_run", err);
		else
			store_run_release(&r);
		err = store_log_param(w->s, b, w->run_id, "p", "same");
		if (err)
			worker_fail(w, "log_param", err);
	}
	err = store_batch_commit(w->s, b, 0);
	if (err)
		worker_fail(w, "batch_commit", err);
	store_batch_free(w->s, b);
	return NULL;
}

/* Checks that a history is exactly 0..n-1 at steps 0..n-1. */
struct seq_check {
	int64_t next;
	int bad;
};

static int check_seq(void *ctx, double value, int64_t step, int64_t timestamp)
{
	struct seq_check *c = ctx;

	(void)timestamp;
	if (step != c->next || value != (double)c->next)
		c->bad++;
	c->next++;
	return 0;
}

static void test_threads(void)
{
	struct worker w[WORKERS];
	pthread_t tid[WORKERS];
	int started[WORKERS];
	char exp[STORE_ID_MAX], *folder_list;
	int64_t n;
	int i;
	struct fx f;

	if (fx_setup(&f, "threads")) {
		fx_teardown(&f);
		return;
	}
	ok(!new_exp(&f, "threads", exp), "an experiment");
	for (i = 0; i < WORKERS; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].s = f.s;
		w[i].exp = exp;
		w[i].n = i;
		started[i] = pthread_create(&tid[i], NULL, worker_main, &w[i]) == 0;
	}
	for (i = 0; i < WORKERS; i++)
		if (started[i])
			pthread_join(tid[i], NULL);
	for (i = 0; i < WORKERS; i++) {
		struct seq_check c = { 0, 0 };

		ok(started[i] && w[i].failures == 0, "thread %d: every call succeeded", i);
		if (w[i].failures)
			tap_diag("thread %d: %d failures, the first: %s", i, w[i].failures,
				 w[i].first);
		is_int(store_metric_history(f.s, w[i].run_id, "points", check_seq, &c), 0,
		       "thread's history reads");
		ok(c.next == POINTS_PER_WORKER && c.bad == 0,
		   "thread %d: all %d points arrived, in order (%" PRId64 " read, %d wrong)", i,
		   POINTS_PER_WORKER, c.next, c.bad);
		stat_is(f.s, w[i].run_id, "points", POINTS_PER_WORKER,
			"the history stat agrees with it");
	}
	folder_list = folders(&f, exp);
	ok(folder_list && strlen(folder_list) == WORKERS * strlen("thread-0") + WORKERS - 1,
	   "four runs listed: %s", folder_list ? folder_list : "(null)");
	free(folder_list);
	is_int(raw_int(f.raw, &n,
		       "SELECT count(*) FROM metrics m JOIN runs r ON r.run_uuid = m.run_uuid "
		       "WHERE r.experiment_id = %s AND m.key = 'points'",
		       exp),
	       0, "count rows on the other connection");
	is_int(n, WORKERS * POINTS_PER_WORKER, "every point is in the database");
	is_int(described_int(f.s, "points_logged"), WORKERS * POINTS_PER_WORKER,
	       "describe counts the 4000 committed points");
	fx_teardown(&f);
}

int main(void)
{
	test_open_new();
	test_open_refused();
	test_open_relative();
	test_watch();
	test_experiments();
	test_runs();
	test_folders();
	test_rename_frees();
	test_params();
	test_tags();
	test_metric_steps();
	test_reserve_steps();
	test_metric_values();
	test_metric_latest();
	test_metric_history();
	test_history_stat();
	test_snapshots();
	test_all_or_nothing();
	test_commit_failure();
	test_status();
	test_delete_run();
	test_sync();
	test_stall();
	test_artifact_uri();
	test_registry();
	test_registry_writes();
	test_registry_workspace();
	test_logged_models_absent();
	test_logged_models();
	test_all_runs();
	test_threads();
	return tap_done();
}
