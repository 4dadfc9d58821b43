/*
 * unit-cache.c - the cache (cache.h) over the counting fake store
 * (fake-store.h).  Every case wraps a fresh world in a fresh cache and
 * checks the exact calls that reach the fake: a read the cache holds costs
 * none, a read after a write or another client's change costs exactly its
 * fetch, so a cache that stops caching, or keeps what it should have
 * dropped, fails a test.  The fake answers as a bare backend does (no
 * folders), so every folder seen here is the cache's.  Calls of the watch
 * (others_version) depend on the clock and are counted apart.
 */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cache.h"
#include "fake-store.h"
#include "metric.h"
#include "options.h"
#include "store.h"
#include "tap.h"

/* The budgets of cache.c's tables, in entries of the smallest weight. */
#define EXP_MAX	  1024
#define INDEX_MAX 40000
#define SNAP_MAX  1024 /* with a watch, as fx_open makes it; 16384 without */
#define STEP_MAX  4096

#define A FAKE_RUN_A
#define B FAKE_RUN_B
#define C FAKE_RUN_C
#define D FAKE_RUN_D
#define E FAKE_RUN_E

/* What one write costs through the cache with no batch of the caller's:
 * its own batch, made, committed and freed around the call(s). */
#define W(ops) "batch_new " ops " batch_commit batch_free"

/* ---- checks ------------------------------------------------------------- */

__attribute__((format(printf, 2, 3))) static int check(int cond, const char *fmt, ...)
{
	char name[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	return ok(cond, "%s", name);
}

static void check_str(const char *got, const char *want, const char *name)
{
	if (!check(got && want ? !strcmp(got, want) : got == want, "%s", name))
		tap_diag("got '%s', want '%s'", got ? got : "(null)", want ? want : "(null)");
}

static void check_int(long long got, long long want, const char *name)
{
	if (!check(got == want, "%s", name))
		tap_diag("got %lld, want %lld", got, want);
}

/* ---- a watchdog: a cache call that never returns is a deadlock ------------ */

static const char *volatile case_name = "";

static void on_alarm(int sig)
{
	static const char a[] = "Bail out! a case took a minute (a deadlock?): ";
	const char *n = case_name;

	(void)sig;
	if (write(1, a, sizeof(a) - 1) < 0 || write(1, n, strlen(n)) < 0 || write(1, "\n", 1) < 0)
		_exit(2);
	_exit(1);
}

/* ---- the fixture: a fresh world behind a fresh cache ----------------------- */

struct fx {
	struct fake_store *f;
	struct store *s; /* the cache over f */
	struct mfs_config cfg;
	struct fake_counts mark; /* the calls counted so far */
};

/*
 * watch: the fake has its watch (others_version answers 0 until moved);
 * without, it answers -ENOSYS and entries live ttl seconds.  Bails out
 * without memory.
 */
static void fx_open(struct fx *x, int watch, double ttl)
{
	memset(x, 0, sizeof(*x));
	x->cfg.cache_ttl = ttl;
	x->f = fake_store_new();
	if (x->f) {
		x->f->no_folders = 1;
		x->f->sync_run_name = 1;
		if (!watch)
			fake_store_fail(x->f, FAKE_others_version, -ENOSYS);
		x->s = cache_wrap(&x->f->base, &x->cfg);
	}
	if (!x->s) {
		printf("Bail out! cannot make a fake store and its cache\n");
		exit(1);
	}
	fake_counts_take(x->f, &x->mark);
	alarm(60); /* each case has a minute */
}

static void fx_close(struct fx *x, const char *name)
{
	unsigned live = fake_store_live_batches(x->f), bad;

	pthread_mutex_lock(&x->f->lock);
	bad = x->f->violations;
	pthread_mutex_unlock(&x->f->lock);
	check(!live && !bad, "%s: the cache kept the store contract, left no batch live", name);
	if (live || bad)
		tap_diag("%u batches live, %u breaches (see stderr)", live, bad);
	store_close(x->s);
	memset(x, 0, sizeof(*x));
}

/* Forgets the calls made so far. */
static void fx_mark(struct fx *x)
{
	fake_counts_take(x->f, &x->mark);
}

/* The calls since the mark (the watch's apart), then marks anew. */
static void fx_since(struct fx *x, struct fake_counts *d)
{
	struct fake_counts now;
	int i;

	fake_counts_take(x->f, &now);
	for (i = 0; i < FAKE_OP_COUNT; i++)
		d->op[i] = now.op[i] - x->mark.op[i];
	d->op[FAKE_others_version] = 0;
	x->mark = now;
}

/* Whether the calls since the mark are spec, exactly (then marks anew);
 * if not, what they were goes to got. */
static int calls_are(struct fx *x, const char *spec, struct buf *got)
{
	struct fake_counts d, want;

	fx_since(x, &d);
	if (!fake_counts_parse(spec, &want) && !memcmp(d.op, want.op, sizeof(d.op)))
		return 1;
	fake_counts_format(&d, got);
	return 0;
}

/* Checks the calls since the mark against spec, exactly. */
static void is_calls(struct fx *x, const char *spec, const char *name)
{
	struct buf got = BUF_INIT;

	if (!check(calls_are(x, spec, &got), "%s: calls reaching the store: %s", name,
		   spec[0] ? spec : "none"))
		tap_diag("got: %s", buf_str(&got));
	buf_release(&got);
}

/* Calls made to the fake directly (to look in the world) since before are
 * not the cache's: moves the mark past them. */
static void fx_unmark(struct fx *x, const struct fake_counts *before)
{
	struct fake_counts now;
	int i;

	fake_counts_take(x->f, &now);
	for (i = 0; i < FAKE_OP_COUNT; i++)
		x->mark.op[i] += now.op[i] - before->op[i];
}

static unsigned long watch_calls(struct fake_store *f)
{
	unsigned long n;

	pthread_mutex_lock(&f->lock);
	n = f->calls[FAKE_others_version];
	pthread_mutex_unlock(&f->lock);
	return n;
}

static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* ---- reads, each summed up as one line ------------------------------------ */

enum rd {
	RD_EXP,	   /* get_experiment(a): "id name deleted" */
	RD_EXP_ID, /* get_experiment_by_id(a): the same */
	RD_FIND,   /* find_run(a, b): "run_id folder status" */
	RD_MTIME,  /* find_run(a, b): its last_change - FAKE_T0 */
	RD_LIST,   /* list_runs(a): the folders, oldest first */
	RD_SNAP,   /* get_snapshot(a): "folder pN mN tN", keys per section */
	RD_METRIC, /* get_snapshot(a), metric b: "value@step", "-" if none */
	RD_STEP,   /* reserve_steps(a, b) of one step: the step */
};

static int collect_folder(void *ctx, const struct store_run *r)
{
	struct buf *out = ctx;

	return (out->len && buf_addch(out, ' ')) || buf_adds(out, r->folder ? r->folder : "(none)");
}

static size_t kvs_n(const struct store_kvs *kvs)
{
	return kvs ? kvs->n : 0;
}

static int rd(struct store *s, enum rd kind, const char *a, const char *b, struct buf *out)
{
	const struct store_snapshot *snap = NULL;
	const struct store_kv *kv;
	struct store_experiment e;
	struct store_run r;
	int64_t step;
	int err;

	buf_reset(out);
	switch (kind) {
	case RD_EXP:
	case RD_EXP_ID:
		err = kind == RD_EXP ? store_get_experiment(s, a, &e)
				     : store_get_experiment_by_id(s, a, &e);
		if (!err)
			buf_addf(out, "%s %s %d", e.id, e.name, e.deleted);
		store_experiment_release(&e);
		return err;
	case RD_FIND:
	case RD_MTIME:
		err = store_find_run(s, a, b, &r);
		if (!err && kind == RD_FIND)
			buf_addf(out, "%s %s %s", r.run_id, r.folder ? r.folder : "(none)",
				 r.status);
		else if (!err)
			buf_addf(out, "%" PRId64, r.last_change - FAKE_T0);
		store_run_release(&r);
		return err;
	case RD_LIST:
		return store_list_runs(s, a, collect_folder, out);
	case RD_SNAP:
	case RD_METRIC:
		err = store_get_snapshot(s, a, SNAP_ALL, &snap);
		if (!err && kind == RD_SNAP) {
			buf_addf(out, "%s p%zu m%zu t%zu",
				 snap->run.folder ? snap->run.folder : "(none)",
				 kvs_n(snap->params), kvs_n(snap->metrics), kvs_n(snap->tags));
		} else if (!err) {
			kv = store_kvs_find(snap->metrics, b);
			if (kv)
				buf_addf(out, "%g@%" PRId64, kv->num, kv->step);
			else
				buf_adds(out, "-");
		}
		store_snapshot_put(snap);
		return err;
	case RD_STEP:
		err = store_reserve_steps(s, a, b, INT64_MIN, 1, &step);
		if (!err)
			buf_addf(out, "%" PRId64, step);
		return err;
	}
	return -EINVAL;
}

/* A read through the cache, checked in one test: its answer, what it
 * shows (NULL: not checked) and the calls it cost (NULL: not checked). */
static void read_is(struct fx *x, enum rd kind, const char *a, const char *b, const char *spec,
		    int err, const char *shows, const char *name)
{
	struct buf out = BUF_INIT, calls = BUF_INIT;
	int got = rd(x->s, kind, a, b, &out);
	int same_err = got == err, same_shows = !shows || !strcmp(buf_str(&out), shows);
	int same_calls = spec ? calls_are(x, spec, &calls) : (fx_mark(x), 1);

	if (!check(same_err && same_shows && same_calls, "%s: answers %d%s%s%s, calls: %s", name,
		   err, shows ? ", shows '" : "", shows ? shows : "", shows ? "'" : "",
		   !spec     ? "not counted"
		   : spec[0] ? spec
			     : "none")) {
		if (!same_err)
			tap_diag("answered %d", got);
		if (!same_shows)
			tap_diag("showed '%s'", buf_str(&out));
		if (!same_calls)
			tap_diag("calls: %s", buf_str(&calls));
	}
	buf_release(&out);
	buf_release(&calls);
}

/* The folders of an experiment by the fake's own naming rule (written
 * apart from the cache's), for comparing. */
static void fake_folders(struct fx *x, const char *exp, struct buf *out)
{
	struct fake_counts before;

	fake_counts_take(x->f, &before);
	buf_reset(out);
	x->f->no_folders = 0;
	if (store_list_runs(&x->f->base, exp, collect_folder, out))
		buf_adds(out, "(listing failed)");
	x->f->no_folders = 1;
	fx_unmark(x, &before);
}

/* What the world says of a run, without the cache. */
static int fake_run(struct fx *x, const char *run_id, struct store_run *out)
{
	struct fake_counts before;
	int err;

	fake_counts_take(x->f, &before);
	err = store_get_run(&x->f->base, run_id, out);
	fx_unmark(x, &before);
	return err;
}

/* ---- writes ---------------------------------------------------------------- */

enum wk {
	W_LOG_PARAM,   /* run id, key, val */
	W_SET_TAG,     /* run id, key, val */
	W_DEL_TAG,     /* run id, key */
	W_RENAME_TAG,  /* run id, key -> val */
	W_SET_EXP_TAG, /* experiment id, key, val */
	W_DEL_EXP_TAG, /* experiment id, key */
	W_RENAME_RUN,  /* run id, key: the new name */
	W_DELETE_RUN,  /* run id */
	W_SET_STATUS,  /* run id, key: the status */
	W_CREATE_RUN,  /* experiment id, key: the name */
	W_RENAME_EXP,  /* experiment id, key: the new name */
	W_CREATE_EXP,  /* key: the name */
	W_DELETE_EXP,  /* experiment id */
	W_LOG_POINT,   /* run id, key; step, ts, v */
};

struct wr {
	enum wk kind;
	const char *id, *key, *val;
	int64_t step, ts;
	double v;
};

static int log_point(struct store *s, const char *run, const char *key, int64_t step, int64_t ts,
		     double v)
{
	struct metric_point p = {
		.value = v, .step = step, .timestamp = ts, .has_step = 1, .has_timestamp = 1
	};

	return store_log_metrics(s, NULL, run, key, &p, 1);
}

/* Makes w through s, each write a batch of its own. */
static int do_write(struct store *s, const struct wr *w)
{
	struct store_ref ref = { .run_id = w->id, .experiment_id = w->id };
	struct store_run r;
	int err;

	switch (w->kind) {
	case W_LOG_PARAM:
		return store_log_param(s, NULL, w->id, w->key, w->val);
	case W_SET_TAG:
		return store_set_tag(s, NULL, SEC_RUN_TAGS, &ref, w->key, w->val);
	case W_DEL_TAG:
		return store_delete_tag(s, NULL, SEC_RUN_TAGS, &ref, w->key);
	case W_RENAME_TAG:
		return store_rename_tag(s, NULL, SEC_RUN_TAGS, &ref, w->key, w->val);
	case W_SET_EXP_TAG:
		return store_set_tag(s, NULL, SEC_EXP_TAGS, &ref, w->key, w->val);
	case W_DEL_EXP_TAG:
		return store_delete_tag(s, NULL, SEC_EXP_TAGS, &ref, w->key);
	case W_RENAME_RUN:
		return store_rename_run(s, NULL, w->id, w->key);
	case W_DELETE_RUN:
		return store_delete_run(s, NULL, w->id);
	case W_SET_STATUS:
		return store_set_status(s, NULL, w->id, w->key);
	case W_CREATE_RUN:
		err = store_create_run(s, NULL, w->id, w->key, "bob", &r);
		store_run_release(&r);
		return err;
	case W_RENAME_EXP:
		return store_rename_experiment(s, NULL, w->id, w->key);
	case W_CREATE_EXP:
		return store_create_experiment(s, NULL, w->key, NULL);
	case W_DELETE_EXP:
		return store_delete_experiment(s, NULL, w->id);
	case W_LOG_POINT:
		return log_point(s, w->id, w->key, w->step, w->ts, w->v);
	}
	return -EINVAL;
}

/* ---- 1. a second read costs nothing ------------------------------------- */

static void test_second_read(void)
{
	static const struct {
		enum rd kind;
		const char *a, *b;
		const char *cost; /* of the first read */
		int err;
		const char *shows, *shows2; /* shows2: the second read's, if not the same */
	} t[] = {
		{ RD_EXP, "vision", NULL, "get_experiment", 0, "1 vision 0", NULL },
		{ RD_EXP, "nope", NULL, "get_experiment", -ENOENT, "", NULL },
		{ RD_EXP, "gone", NULL, "get_experiment", -ENOENT, "", NULL },
		{ RD_EXP_ID, "1", NULL, "get_experiment_by_id", 0, "1 vision 0", NULL },
		{ RD_EXP_ID, "3", NULL, "get_experiment_by_id", 0, "3 gone 1", NULL },
		{ RD_EXP_ID, "99", NULL, "get_experiment_by_id", -ENOENT, "", NULL },
		{ RD_FIND, "1", "baseline", "list_runs", 0, A " baseline RUNNING", NULL },
		{ RD_FIND, "1", "baseline@b0b1b2b3", "list_runs", 0, B " baseline@b0b1b2b3 RUNNING",
		  NULL },
		{ RD_FIND, "1", B, "list_runs", 0, B " baseline@b0b1b2b3 RUNNING", NULL },
		{ RD_FIND, "1", C, "list_runs", 0, C " " C " RUNNING", NULL },
		{ RD_FIND, "1", "old", "list_runs", -ENOENT, "", NULL },
		{ RD_FIND, "1", D, "list_runs", -ENOENT, "", NULL },
		{ RD_FIND, "2", "baseline", "list_runs", -ENOENT, "", NULL },
		{ RD_LIST, "1", NULL, "list_runs", 0, "baseline baseline@b0b1b2b3 " C, NULL },
		{ RD_LIST, "0", NULL, "list_runs", 0, "", NULL },
		{ RD_SNAP, A, NULL, "get_snapshot list_runs", 0, "baseline p3 m4 t4", NULL },
		{ RD_SNAP, E, NULL, "get_snapshot list_runs", 0, "bert p1 m0 t1", NULL },
		{ RD_SNAP, D, NULL, "get_snapshot", 0, "(none) p0 m0 t1", NULL },
		{ RD_METRIC, A, "loss", "get_snapshot list_runs", 0, "0.25@2", NULL },
		{ RD_STEP, A, "loss", "next_step", 0, "3", "4" },
		{ RD_STEP, A, "nothing", "next_step", 0, "0", "1" },
	};
	static const char *const kinds[] = { "get_experiment", "get_experiment_by_id",
					     "find_run",       "find_run",
					     "list_runs",      "get_snapshot",
					     "get_snapshot",   "reserve_steps" };
	const struct store_snapshot *snap = NULL;
	char base[200], name[256];
	struct fx x;
	size_t i;
	int err;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		fx_open(&x, 1, 2.0);
		snprintf(base, sizeof(base), "%s(%s%s%s)", kinds[t[i].kind], t[i].a,
			 t[i].b ? ", " : "", t[i].b ? t[i].b : "");
		case_name = base;
		snprintf(name, sizeof(name), "%s first", base);
		read_is(&x, t[i].kind, t[i].a, t[i].b, t[i].cost, t[i].err, t[i].shows, name);
		snprintf(name, sizeof(name), "%s again", base);
		read_is(&x, t[i].kind, t[i].a, t[i].b, "", t[i].err,
			t[i].shows2 ? t[i].shows2 : t[i].shows, name);
		fx_close(&x, base);
	}

	/*
	 * A snapshot is fetched by sections: a read of other sections fetches
	 * those only, keeping what it has; then every section hits.
	 */
	fx_open(&x, 1, 2.0);
	err = store_get_snapshot(x.s, A, SNAP_PARAMS, &snap);
	check_int(err, 0, "get_snapshot(params) answers");
	store_snapshot_put(snap);
	is_calls(&x, "get_snapshot list_runs", "get_snapshot(params)");
	err = store_get_snapshot(x.s, A, SNAP_METRICS | SNAP_TAGS, &snap);
	check(!err && snap->metrics && snap->tags && snap->metrics->n == 4 && snap->tags->n == 4 &&
		      snap->params && (snap->have & SNAP_ALL) == SNAP_ALL,
	      "get_snapshot(metrics, tags) after (params) answers them, params kept");
	store_snapshot_put(snap);
	is_calls(&x, "get_snapshot", "get_snapshot(metrics, tags) after (params)");
	err = store_get_snapshot(x.s, A, SNAP_ALL, &snap);
	check_int(err, 0, "get_snapshot(all) answers");
	store_snapshot_put(snap);
	is_calls(&x, "", "get_snapshot(all) after both: every section hits");
	fx_close(&x, "sections of a snapshot");
}

/* ---- 2. experiment writes ------------------------------------------------ */

static void test_experiment_writes(void)
{
	struct store_experiment e;
	char name[512], shows[512], exp[32], id[3][STORE_ID_MAX];
	struct fx x;
	int i, err;

	/* mkdir: a name cached missing is found after, and hits again after. */
	fx_open(&x, 1, 2.0);
	case_name = "create_experiment";
	read_is(&x, RD_EXP, "new0", NULL, "get_experiment", -ENOENT, "", "before mkdir: new0");
	read_is(&x, RD_EXP, "vision", NULL, "get_experiment", 0, "1 vision 0", "before mkdir");
	read_is(&x, RD_EXP_ID, "1", NULL, "get_experiment_by_id", 0, "1 vision 0", "before mkdir");
	for (i = 0; i < 3; i++) {
		snprintf(exp, sizeof(exp), "new%d", i);
		err = store_create_experiment(x.s, NULL, exp, &e);
		snprintf(name, sizeof(name), "create_experiment(%s)", exp);
		check_int(err, 0, name);
		snprintf(id[i], sizeof(id[i]), "%s", e.id);
		store_experiment_release(&e);
		is_calls(&x, W("create_experiment"), name);
		snprintf(name, sizeof(name), "after mkdir %d: get_experiment(%s)", i + 1, exp);
		snprintf(shows, sizeof(shows), "%s %s 0", id[i], exp);
		read_is(&x, RD_EXP, exp, NULL, "get_experiment", 0, shows, name);
		snprintf(name, sizeof(name), "after mkdir %d: get_experiment(%s) again", i + 1,
			 exp);
		read_is(&x, RD_EXP, exp, NULL, "", 0, shows, name);
		snprintf(name, sizeof(name), "after mkdir %d: get_experiment(%s) a third time",
			 i + 1, exp);
		read_is(&x, RD_EXP, exp, NULL, "", 0, shows, name);
		snprintf(name, sizeof(name), "after mkdir %d: get_experiment_by_id(%s)", i + 1,
			 id[i]);
		read_is(&x, RD_EXP_ID, id[i], NULL, "get_experiment_by_id", 0, shows, name);
		snprintf(name, sizeof(name), "after mkdir %d: get_experiment_by_id(%s) again",
			 i + 1, id[i]);
		read_is(&x, RD_EXP_ID, id[i], NULL, "", 0, shows, name);
	}
	read_is(&x, RD_EXP, "vision", NULL, "get_experiment", 0, "1 vision 0",
		"after mkdirs: get_experiment(vision)");
	read_is(&x, RD_EXP, "vision", NULL, "", 0, "1 vision 0",
		"after mkdirs: get_experiment(vision) again");
	fx_close(&x, "create_experiment");

	/* mv: the old name is gone, the new one found, the id shows it. */
	fx_open(&x, 1, 2.0);
	case_name = "rename_experiment";
	read_is(&x, RD_EXP, "vision", NULL, "get_experiment", 0, "1 vision 0", "before mv");
	read_is(&x, RD_EXP, "vision2", NULL, "get_experiment", -ENOENT, "", "before mv: vision2");
	read_is(&x, RD_EXP_ID, "1", NULL, "get_experiment_by_id", 0, "1 vision 0", "before mv");
	check_int(store_rename_experiment(x.s, NULL, "1", "vision2"), 0, "rename_experiment");
	is_calls(&x, W("rename_experiment"), "rename_experiment");
	for (i = 0; i < 2; i++) {
		const char *when = i ? "after mv, again" : "after mv";

		snprintf(name, sizeof(name), "%s: get_experiment(vision)", when);
		read_is(&x, RD_EXP, "vision", NULL, i ? "" : "get_experiment", -ENOENT, "", name);
		snprintf(name, sizeof(name), "%s: get_experiment(vision2)", when);
		read_is(&x, RD_EXP, "vision2", NULL, i ? "" : "get_experiment", 0, "1 vision2 0",
			name);
		snprintf(name, sizeof(name), "%s: get_experiment_by_id(1)", when);
		read_is(&x, RD_EXP_ID, "1", NULL, i ? "" : "get_experiment_by_id", 0, "1 vision2 0",
			name);
	}
	fx_close(&x, "rename_experiment");

	/* rmdir: the name is gone, the id shows it deleted. */
	fx_open(&x, 1, 2.0);
	case_name = "delete_experiment";
	read_is(&x, RD_EXP, "Default", NULL, "get_experiment", 0, "0 Default 0", "before rmdir");
	read_is(&x, RD_EXP_ID, "0", NULL, "get_experiment_by_id", 0, "0 Default 0", "before rmdir");
	check_int(store_delete_experiment(x.s, NULL, "0"), 0, "delete_experiment");
	is_calls(&x, W("delete_experiment"), "delete_experiment");
	for (i = 0; i < 2; i++) {
		const char *when = i ? "after rmdir, again" : "after rmdir";

		snprintf(name, sizeof(name), "%s: get_experiment(Default)", when);
		read_is(&x, RD_EXP, "Default", NULL, i ? "" : "get_experiment", -ENOENT, "", name);
		snprintf(name, sizeof(name), "%s: get_experiment_by_id(0)", when);
		read_is(&x, RD_EXP_ID, "0", NULL, i ? "" : "get_experiment_by_id", 0, "0 Default 1",
			name);
	}
	fx_close(&x, "delete_experiment");
}

/* ---- 3. create_run: into the index, with its folder ---------------------- */

static void test_create_run(void)
{
	static const struct {
		const char *name, *id, *folder;
	} t[] = {
		{ "baseline", "f1a1a1a1000000000000000000000001", "baseline@f1a1a1a1" },
		{ "", "f2b2b2b2000000000000000000000002", "f2b2b2b2000000000000000000000002" },
		{ "fresh", "f3c3c3c3000000000000000000000003", "fresh" },
		{ "fresh", "f4d4d4d4000000000000000000000004", "fresh@f4d4d4d4" },
		{ "baseline", "f5e5e5e5000000000000000000000005", "baseline@f5e5e5e5" },
		{ "x", "f6f6f6f6000000000000000000000006", "x" },
		{ "y", "f7070707000000000000000000000007", "y" },
		{ "x", "f8080808000000000000000000000008", "x@f8080808" },
		/* Named like another run's folder: that folder is taken. */
		{ "baseline@b0b1b2b3", "f9090909000000000000000000000009",
		  "baseline@b0b1b2b3@f9090909" },
	};
	struct buf want = BUF_INIT, got = BUF_INIT;
	struct store_run r;
	char name[256];
	struct fx x;
	size_t i;
	int err;

	fx_open(&x, 1, 2.0);
	case_name = "create_run";
	read_is(&x, RD_LIST, "1", NULL, "list_runs", 0, "baseline baseline@b0b1b2b3 " C,
		"before create_run: list_runs(1)");
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		snprintf(x.f->create_id, sizeof(x.f->create_id), "%s", t[i].id);
		snprintf(name, sizeof(name), "create_run(1, '%s') #%zu", t[i].name, i + 1);
		err = store_create_run(x.s, NULL, "1", t[i].name, "bob", &r);
		check_int(err, 0, name);
		is_calls(&x, W("create_run"), name);
		snprintf(name, sizeof(name), "create_run(1, '%s') #%zu: its run id", t[i].name,
			 i + 1);
		check_str(r.run_id, t[i].id, name);
		snprintf(name, sizeof(name), "create_run(1, '%s') #%zu: its folder", t[i].name,
			 i + 1);
		check_str(r.folder, t[i].folder, name);
		store_run_release(&r);
		snprintf(name, sizeof(name), "find_run(1, %s) after its create_run", t[i].folder);
		buf_reset(&want);
		buf_addf(&want, "%s %s RUNNING", t[i].id, t[i].folder);
		read_is(&x, RD_FIND, "1", t[i].folder, "", 0, buf_str(&want), name);
	}
	read_is(&x, RD_LIST, "1", NULL, "", 0, NULL, "after create_run: list_runs(1)");
	rd(x.s, RD_LIST, "1", NULL, &got);
	fake_folders(&x, "1", &want);
	check_str(buf_str(&got), buf_str(&want),
		  "after create_run: the folders are the fake's, by the naming rule");
	read_is(&x, RD_FIND, "1", "baseline", "", 0, A " baseline RUNNING",
		"after create_run: the oldest keeps its name");
	fx_close(&x, "create_run");

	/* Into an experiment not listed yet: listed once, for the folder. */
	fx_open(&x, 1, 2.0);
	case_name = "create_run, not listed";
	snprintf(x.f->create_id, sizeof(x.f->create_id), "%s", t[0].id);
	err = store_create_run(x.s, NULL, "2", "bert", "bob", &r);
	check_int(err, 0, "create_run(2, bert), experiment not listed");
	is_calls(&x, W("create_run list_runs"), "create_run(2, bert), experiment not listed");
	check_str(r.folder, "bert@f1a1a1a1", "create_run(2, bert), not listed: its folder");
	store_run_release(&r);
	read_is(&x, RD_LIST, "2", NULL, "", 0, "bert bert@f1a1a1a1",
		"create_run(2, bert), not listed: list_runs(2) after");
	fx_close(&x, "create_run, not listed");
	buf_release(&want);
	buf_release(&got);
}

/* ---- 4. writes that change a run's name, life or status ------------------- */

static void test_run_writes(void)
{
	static const struct {
		struct wr w;
		const char *cost;
		const char *list;   /* list_runs(1) after */
		const char *status; /* the run's status after, NULL: not checked */
	} t[] = {
		{ { W_RENAME_RUN, A, "x", NULL, 0, 0, 0 },
		  W("rename_run get_run"),
		  "x baseline " C,
		  NULL },
		{ { W_RENAME_RUN, B, "solo", NULL, 0, 0, 0 },
		  W("rename_run get_run"),
		  "baseline solo " C,
		  NULL },
		{ { W_RENAME_RUN, C, "baseline", NULL, 0, 0, 0 },
		  W("rename_run get_run"),
		  "baseline baseline@b0b1b2b3 baseline@c0ffee00",
		  NULL },
		{ { W_RENAME_RUN, A, "baseline", NULL, 0, 0, 0 },
		  W("rename_run get_run"),
		  "baseline baseline@b0b1b2b3 " C,
		  NULL },
		{ { W_DELETE_RUN, A, NULL, NULL, 0, 0, 0 },
		  W("delete_run get_run"),
		  "baseline " C,
		  NULL },
		{ { W_DELETE_RUN, B, NULL, NULL, 0, 0, 0 },
		  W("delete_run get_run"),
		  "baseline " C,
		  NULL },
		{ { W_DELETE_RUN, C, NULL, NULL, 0, 0, 0 },
		  W("delete_run get_run"),
		  "baseline baseline@b0b1b2b3",
		  NULL },
		{ { W_SET_STATUS, A, "FINISHED", NULL, 0, 0, 0 },
		  W("set_status get_run"),
		  "baseline baseline@b0b1b2b3 " C,
		  "FINISHED" },
		{ { W_SET_STATUS, C, "KILLED", NULL, 0, 0, 0 },
		  W("set_status get_run"),
		  "baseline baseline@b0b1b2b3 " C,
		  "KILLED" },
		{ { W_SET_TAG, A, "mlflow.runName", "tagged", 0, 0, 0 },
		  W("set_tag get_run"),
		  "tagged baseline " C,
		  NULL },
		{ { W_SET_TAG, C, "mlflow.runName", "baseline", 0, 0, 0 },
		  W("set_tag get_run"),
		  "baseline baseline@b0b1b2b3 baseline@c0ffee00",
		  NULL },
		{ { W_DEL_TAG, A, "mlflow.runName", NULL, 0, 0, 0 },
		  W("delete_tag get_run"),
		  "baseline baseline@b0b1b2b3 " C,
		  NULL },
		{ { W_RENAME_TAG, A, "owner", "mlflow.runName", 0, 0, 0 },
		  W("rename_tag get_run"),
		  "baseline baseline@b0b1b2b3 " C,
		  NULL },
	};
	static const char *const kinds[] = {
		[W_RENAME_RUN] = "rename_run", [W_DELETE_RUN] = "delete_run",
		[W_SET_STATUS] = "set_status", [W_SET_TAG] = "set_tag",
		[W_DEL_TAG] = "delete_tag",    [W_RENAME_TAG] = "rename_tag",
	};
	const struct store_snapshot *snap;
	struct buf got = BUF_INIT, want = BUF_INIT;
	struct store_run r, world;
	char name[256], what[320];
	struct fx x;
	size_t i;
	int err;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const struct wr *w = &t[i].w;

		snprintf(name, sizeof(name), "%s(%.8s%s%s%s%s)", kinds[w->kind], w->id,
			 w->key ? ", " : "", w->key ? w->key : "", w->val ? ", " : "",
			 w->val ? w->val : "");
		case_name = name;
		fx_open(&x, 1, 2.0);
		rd(x.s, RD_LIST, "1", NULL, &got);
		rd(x.s, RD_SNAP, w->id, NULL, &got);
		fx_mark(&x);
		err = do_write(x.s, w);
		check_int(err, 0, name);
		is_calls(&x, t[i].cost, name);
		snprintf(what, sizeof(what), "%s: list_runs(1) after", name);
		read_is(&x, RD_LIST, "1", NULL, "", 0, t[i].list, what);
		rd(x.s, RD_LIST, "1", NULL, &got);
		fake_folders(&x, "1", &want);
		snprintf(what, sizeof(what), "%s: the folders are the fake's", name);
		check_str(buf_str(&got), buf_str(&want), what);
		fx_mark(&x);

		/* The run's snapshot is fetched again, with the index's folder. */
		err = store_get_snapshot(x.s, w->id, SNAP_ALL, &snap);
		snprintf(what, sizeof(what), "%s: get_snapshot after", name);
		check_int(err, 0, what);
		is_calls(&x, "get_snapshot", what);
		x.f->no_folders = 0;
		err = err ? err : fake_run(&x, w->id, &world);
		x.f->no_folders = 1;
		if (!err) {
			snprintf(what, sizeof(what), "%s: the snapshot's folder after", name);
			check_str(snap->run.folder, world.folder, what);
			snprintf(what, sizeof(what), "%s: the snapshot's name after", name);
			check_str(snap->run.name, world.name, what);
			if (!world.deleted) {
				err = store_find_run(x.s, "1", w->id, &r);
				snprintf(what, sizeof(what), "%s: find_run(1, id): status", name);
				check_str(err ? NULL : r.status, world.status, what);
				snprintf(what, sizeof(what), "%s: find_run(1, id): end time", name);
				check_int(err ? -2 : r.end_time, world.end_time, what);
				snprintf(what, sizeof(what), "%s: find_run(1, id): name", name);
				check_str(err ? NULL : r.name, world.name, what);
				store_run_release(&r);
				is_calls(&x, "", what);
			}
			store_run_release(&world);
		}
		store_snapshot_put(snap);
		if (t[i].status) {
			err = store_find_run(x.s, "1", w->id, &r);
			snprintf(what, sizeof(what), "%s: the status in the index", name);
			check_str(err ? NULL : r.status, t[i].status, what);
			snprintf(what, sizeof(what), "%s: the end time in the index", name);
			check(!err && r.end_time >= FAKE_T0, "%s", what);
			store_run_release(&r);
			is_calls(&x, "", what);
		}
		fx_close(&x, name);
	}
	buf_release(&got);
	buf_release(&want);
}

/* ---- 5. key writes drop the run's snapshot, or the experiments ---------- */

static void test_key_writes(void)
{
	static const struct {
		struct wr w;
		const char *cost;
		/* the calls of the reads after: get_snapshot(A), get_snapshot(B),
		 * get_experiment(vision), get_experiment_by_id(1), find_run(1, baseline) */
		const char *after[5];
		enum store_section sec;	 /* where the key shows after, in A's snapshot */
		const char *key, *value; /* the key and its value after (NULL: gone) */
	} t[] = {
		{ { W_LOG_PARAM, A, "newp", "1", 0, 0, 0 },
		  W("log_param"),
		  { "get_snapshot", "", "", "", "" },
		  SEC_PARAMS,
		  "newp",
		  "1" },
		{ { W_LOG_PARAM, B, "newp", "1", 0, 0, 0 },
		  W("log_param"),
		  { "", "get_snapshot", "", "", "" },
		  SEC_PARAMS,
		  "newp",
		  NULL },
		{ { W_SET_TAG, A, "k", "v", 0, 0, 0 },
		  W("set_tag"),
		  { "get_snapshot", "", "", "", "" },
		  SEC_RUN_TAGS,
		  "k",
		  "v" },
		{ { W_SET_TAG, A, "owner", "carol", 0, 0, 0 },
		  W("set_tag"),
		  { "get_snapshot", "", "", "", "" },
		  SEC_RUN_TAGS,
		  "owner",
		  "carol" },
		{ { W_DEL_TAG, A, "owner", NULL, 0, 0, 0 },
		  W("delete_tag"),
		  { "get_snapshot", "", "", "", "" },
		  SEC_RUN_TAGS,
		  "owner",
		  NULL },
		{ { W_RENAME_TAG, A, "owner", "owner2", 0, 0, 0 },
		  W("rename_tag"),
		  { "get_snapshot", "", "", "", "" },
		  SEC_RUN_TAGS,
		  "owner2",
		  "alice" },
		{ { W_SET_EXP_TAG, "1", "team", "x", 0, 0, 0 },
		  W("set_tag"),
		  { "", "", "get_experiment", "get_experiment_by_id", "" },
		  SEC_RUN_TAGS,
		  "team",
		  NULL },
		{ { W_DEL_EXP_TAG, "1", "team", NULL, 0, 0, 0 },
		  W("delete_tag"),
		  { "", "", "get_experiment", "get_experiment_by_id", "" },
		  SEC_RUN_TAGS,
		  "team",
		  NULL },
	};
	static const char *const kinds[] = {
		[W_LOG_PARAM] = "log_param",	  [W_SET_TAG] = "set_tag",
		[W_DEL_TAG] = "delete_tag",	  [W_RENAME_TAG] = "rename_tag",
		[W_SET_EXP_TAG] = "set_tag(exp)", [W_DEL_EXP_TAG] = "delete_tag(exp)",
	};
	static const struct {
		enum rd kind;
		const char *a, *b;
	} reads[5] = {
		{ RD_SNAP, A, NULL },	  { RD_SNAP, B, NULL },		{ RD_EXP, "vision", NULL },
		{ RD_EXP_ID, "1", NULL }, { RD_FIND, "1", "baseline" },
	};
	const struct store_snapshot *snap;
	const struct store_kv *kv;
	struct buf out = BUF_INIT;
	char name[256], what[320];
	struct fx x;
	size_t i, j;
	int err;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		const struct wr *w = &t[i].w;

		snprintf(name, sizeof(name), "%s(%.8s, %s%s%s)", kinds[w->kind], w->id, w->key,
			 w->val ? ", " : "", w->val ? w->val : "");
		case_name = name;
		fx_open(&x, 1, 2.0);
		for (j = 0; j < 5; j++)
			rd(x.s, reads[j].kind, reads[j].a, reads[j].b, &out);
		fx_mark(&x);
		check_int(do_write(x.s, w), 0, name);
		is_calls(&x, t[i].cost, name);
		for (j = 0; j < 5; j++) {
			snprintf(what, sizeof(what), "%s: then %s(%s%s%s)", name,
				 reads[j].kind == RD_SNAP     ? "get_snapshot"
				 : reads[j].kind == RD_EXP    ? "get_experiment"
				 : reads[j].kind == RD_EXP_ID ? "get_experiment_by_id"
							      : "find_run",
				 reads[j].a, reads[j].b ? ", " : "", reads[j].b ? reads[j].b : "");
			read_is(&x, reads[j].kind, reads[j].a, reads[j].b, t[i].after[j], 0, NULL,
				what);
		}
		err = store_get_snapshot(x.s, A, SNAP_ALL, &snap);
		kv = err ? NULL
			 : store_kvs_find(t[i].sec == SEC_PARAMS ? snap->params : snap->tags,
					  t[i].key);
		snprintf(what, sizeof(what), "%s: %s in A's snapshot after", name, t[i].key);
		check_str(kv ? kv->value : NULL, t[i].value, what);
		store_snapshot_put(snap);
		fx_close(&x, name);
	}
	buf_release(&out);
}

/* ---- 6. log_metrics patches the snapshot ---------------------------------- */

struct pt {
	int64_t step, dt; /* dt: the time - FAKE_T0 */
	double v;
};

static int same_num(double a, double b)
{
	return (isnan(a) && isnan(b)) || a == b;
}

/* The keys of a section in strictly increasing byte order. */
static int kvs_sorted(const struct store_kvs *kvs)
{
	size_t i;

	for (i = 1; kvs && i < kvs->n; i++)
		if (strcmp(kvs->v[i - 1].key, kvs->v[i].key) >= 0)
			return 0;
	return 1;
}

static void test_log_metrics(void)
{
	static const struct {
		const char *what, *key;
		struct pt calls[3][2]; /* up to three calls of one or two points */
		size_t n[3];
		struct pt latest; /* the key's latest point after */
		size_t nmetrics;  /* in the snapshot after */
	} t[] = {
		/* acc's latest is (1, t0+20): not the run's last change. */
		{ "a greater step wins, older",
		  "acc",
		  { { { 2, 18, 0.1 } } },
		  { 1 },
		  { 2, 18, 0.1 },
		  4 },
		{ "a smaller step loses, newer",
		  "loss",
		  { { { 1, 999, 9 } } },
		  { 1 },
		  { 2, 30, 0.25 },
		  4 },
		{ "a smaller step loses, newer, a new metric",
		  "zeta",
		  { { { 1, 999, 9 } }, { { 0, 2000, 8 } } },
		  { 1, 1 },
		  { 1, 999, 9 },
		  5 },
		{ "same step, a later time wins",
		  "loss",
		  { { { 2, 31, 0.1 } } },
		  { 1 },
		  { 2, 31, 0.1 },
		  4 },
		{ "same step, an earlier time loses",
		  "loss",
		  { { { 2, 29, 9 } } },
		  { 1 },
		  { 2, 30, 0.25 },
		  4 },
		{ "same step and time, a greater value wins",
		  "loss",
		  { { { 2, 30, 0.5 } } },
		  { 1 },
		  { 2, 30, 0.5 },
		  4 },
		{ "same step and time, a smaller value loses",
		  "loss",
		  { { { 2, 30, 0.1 } } },
		  { 1 },
		  { 2, 30, 0.25 },
		  4 },
		{ "NaN counts as 0: loses to 0.25",
		  "loss",
		  { { { 2, 30, NAN } } },
		  { 1 },
		  { 2, 30, 0.25 },
		  4 },
		{ "NaN counts as 0: beats -1",
		  "loss",
		  { { { 5, 40, NAN } }, { { 5, 40, -1 } } },
		  { 1, 1 },
		  { 5, 40, NAN },
		  4 },
		{ "NaN counts as 0: loses to 0.5",
		  "loss",
		  { { { 5, 40, NAN } }, { { 5, 40, 0.5 } } },
		  { 1, 1 },
		  { 5, 40, 0.5 },
		  4 },
		{ "inf counts as DBL_MAX: beats 0.25",
		  "loss",
		  { { { 2, 30, INFINITY } } },
		  { 1 },
		  { 2, 30, INFINITY },
		  4 },
		{ "inf counts as DBL_MAX: DBL_MAX after it does not win",
		  "loss",
		  { { { 2, 30, INFINITY } }, { { 2, 30, DBL_MAX } } },
		  { 1, 1 },
		  { 2, 30, INFINITY },
		  4 },
		{ "-inf counts as -DBL_MAX: loses",
		  "loss",
		  { { { 2, 30, -INFINITY } } },
		  { 1 },
		  { 2, 30, 0.25 },
		  4 },
		{ "two points in one call: the greater step",
		  "loss",
		  { { { 7, 50, 1 }, { 6, 60, 2 } } },
		  { 2 },
		  { 7, 50, 1 },
		  4 },
		{ "the same point again: nothing moves",
		  "loss",
		  { { { 2, 30, 0.25 } } },
		  { 1 },
		  { 2, 30, 0.25 },
		  4 },
		{ "a new metric, last in order",
		  "zeta",
		  { { { 0, 5, 3 } } },
		  { 1 },
		  { 0, 5, 3 },
		  5 },
		{ "a new metric, first in order",
		  "a_new",
		  { { { 0, 5, 3 } } },
		  { 1 },
		  { 0, 5, 3 },
		  5 },
		{ "a new metric, between others",
		  "m_new",
		  { { { 4, 500, 3 } } },
		  { 1 },
		  { 4, 500, 3 },
		  5 },
		{ "a new metric under a folder",
		  "train/mid",
		  { { { 0, 5, 3 } } },
		  { 1 },
		  { 0, 5, 3 },
		  5 },
	};
	const struct store_snapshot *snap, *again;
	const struct store_kv *kv;
	struct store_kv world;
	struct store_run r, wr;
	struct store_ref ref = { .run_id = A };
	struct fake_counts before;
	char name[256], what[320];
	struct fx x;
	size_t i, j, k;
	int err;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		snprintf(name, sizeof(name), "log_metrics: %s", t[i].what);
		case_name = name;
		fx_open(&x, 1, 2.0);
		x.f->last_change_latest = 1; /* as store_sqlite */
		err = store_get_snapshot(x.s, A, SNAP_ALL, &snap);
		store_snapshot_put(snap);
		fx_mark(&x);
		for (j = 0; j < 3 && t[i].n[j]; j++) {
			struct metric_point p[2];

			for (k = 0; k < t[i].n[j]; k++) {
				p[k] = (struct metric_point){ .value = t[i].calls[j][k].v,
							      .step = t[i].calls[j][k].step,
							      .timestamp =
								      FAKE_T0 + t[i].calls[j][k].dt,
							      .has_step = 1,
							      .has_timestamp = 1 };
			}
			err = store_log_metrics(x.s, NULL, A, t[i].key, p, t[i].n[j]);
			snprintf(what, sizeof(what), "%s: call %zu", name, j + 1);
			check_int(err, 0, what);
			is_calls(&x, W("log_metrics"), what);
		}

		/* Patched in place: no fetch. */
		err = store_get_snapshot(x.s, A, SNAP_ALL, &snap);
		snprintf(what, sizeof(what), "%s: get_snapshot after", name);
		check_int(err, 0, what);
		is_calls(&x, "", what);
		if (err)
			goto next;
		kv = store_kvs_find(snap->metrics, t[i].key);
		snprintf(what, sizeof(what), "%s: the latest point", name);
		if (!check(kv && kv->step == t[i].latest.step &&
				   kv->timestamp == FAKE_T0 + t[i].latest.dt &&
				   same_num(kv->num, t[i].latest.v),
			   "%s", what))
			tap_diag("got %s %.17g@%" PRId64 " t0+%" PRId64 ", want %.17g@%" PRId64
				 " t0+%" PRId64,
				 kv ? "" : "(no key)", kv ? kv->num : 0, kv ? kv->step : 0,
				 kv ? kv->timestamp - FAKE_T0 : 0, t[i].latest.v, t[i].latest.step,
				 t[i].latest.dt);

		/* The same as the store says. */
		fake_counts_take(x.f, &before);
		err = store_get_kv(&x.f->base, SEC_METRICS, &ref, t[i].key, &world);
		snprintf(what, sizeof(what), "%s: the latest point is the store's", name);
		check(!err && kv && kv->step == world.step && kv->timestamp == world.timestamp &&
			      same_num(kv->num, world.num),
		      "%s", what);
		store_kv_release(&world);
		snprintf(what, sizeof(what), "%s: %zu metrics, sorted, the others kept", name,
			 t[i].nmetrics);
		check(snap->metrics->n == t[i].nmetrics && kvs_sorted(snap->metrics) &&
			      store_kvs_find(snap->metrics, "acc") &&
			      store_kvs_find(snap->metrics, "train/loss") &&
			      store_kvs_find(snap->metrics, "loss"),
		      "%s", what);
		check(snap->params && snap->params->n == 3 && snap->tags && snap->tags->n == 4,
		      "%s: params and tags kept", name);

		/* The run's last change moves with any point's time. */
		err = store_get_run(&x.f->base, A, &wr);
		fx_unmark(&x, &before);
		snprintf(what, sizeof(what), "%s: the snapshot's last_change is the store's", name);
		check_int(snap->run.last_change - FAKE_T0, err ? -1 : wr.last_change - FAKE_T0,
			  what);
		err = store_find_run(x.s, "1", "baseline", &r);
		snprintf(what, sizeof(what), "%s: the index's last_change is the store's", name);
		check_int(err ? -1 : r.last_change - FAKE_T0, wr.last_change - FAKE_T0, what);
		snprintf(what, sizeof(what), "%s: the index and the snapshot agree on last_change",
			 name);
		check_int(err ? -1 : r.last_change - FAKE_T0, snap->run.last_change - FAKE_T0,
			  what);
		store_run_release(&r);
		store_run_release(&wr);
		is_calls(&x, "", what);

		/* And it holds: a second read is the same snapshot. */
		err = store_get_snapshot(x.s, A, SNAP_ALL, &again);
		snprintf(what, sizeof(what), "%s: get_snapshot again", name);
		check(!err && again == snap, "%s: the same snapshot", what);
		is_calls(&x, "", what);
		store_snapshot_put(again);
		store_snapshot_put(snap);
	next:
		fx_close(&x, name);
	}

	/* The index's last change moves with a latest point, without listing
	 * again, and only with one (as the store's, a snapshot fetched after). */
	fx_open(&x, 1, 2.0);
	x.f->last_change_latest = 1;
	case_name = "log_metrics: the index";
	read_is(&x, RD_MTIME, "1", "baseline", "list_runs", 0, "30", "find_run(1, baseline)");
	check_int(log_point(x.s, A, "loss", 9, FAKE_T0 + 777, 1), 0, "log_metrics(A, loss)");
	is_calls(&x, W("log_metrics"), "log_metrics(A, loss)");
	read_is(&x, RD_MTIME, "1", "baseline", "", 0, "777",
		"find_run(1, baseline) after log_metrics: last_change moved");
	check_int(log_point(x.s, A, "loss", 1, FAKE_T0 + 888, 1), 0,
		  "log_metrics(A, loss) of an old step");
	is_calls(&x, W("log_metrics"), "log_metrics(A, loss) of an old step");
	read_is(&x, RD_MTIME, "1", "baseline", "", 0, "777",
		"find_run(1, baseline) after an old step: last_change stays, as the store's");
	err = store_get_snapshot(x.s, A, SNAP_ALL, &snap);
	is_calls(&x, "get_snapshot", "get_snapshot(A), not cached before: fetched");
	check(!err && snap->run.last_change == FAKE_T0 + 777,
	      "the snapshot fetched shows the store's last_change");
	store_snapshot_put(snap);
	fx_close(&x, "log_metrics: the index");
}

/* ---- 7. reserve_steps ----------------------------------------------------- */

static int64_t reserve(struct fx *x, const char *run, const char *key, int64_t floor, size_t n)
{
	int64_t first = INT64_MIN;

	if (store_reserve_steps(x->s, run, key, floor, n, &first))
		return INT64_MIN;
	return first;
}

struct resv_thread {
	struct store *s;
	int64_t first[100];
	size_t n[100];
	int err;
};

static void *resv_run(void *arg)
{
	struct resv_thread *t = arg;
	size_t i;

	for (i = 0; i < 100 && !t->err; i++) {
		t->n[i] = 1 + i % 3;
		t->err = store_reserve_steps(t->s, A, "threads", INT64_MIN, t->n[i], &t->first[i]);
	}
	return NULL;
}

static int range_cmp(const void *a, const void *b)
{
	const int64_t *x = a, *y = b;

	return x[0] < y[0] ? -1 : x[0] > y[0];
}

static void test_reserve_steps(void)
{
	struct resv_thread th[4];
	pthread_t tid[4];
	int64_t ranges[400][2], end;
	struct fake_counts before;
	struct fx x;
	size_t i, j, n = 0;
	int gaps = 0, err;

	fx_open(&x, 1, 2.0);
	case_name = "reserve_steps";
	check_int(reserve(&x, A, "loss", INT64_MIN, 1), 3, "reserve(A, loss): one after step 2");
	is_calls(&x, "next_step", "the first reservation asks next_step");
	check_int(reserve(&x, A, "loss", INT64_MIN, 2), 4, "reserve(A, loss, 2): after the first");
	check_int(reserve(&x, A, "loss", INT64_MIN, 1), 6, "reserve(A, loss): after both");
	is_calls(&x, "", "later reservations ask nothing");

	check_int(log_point(x.s, A, "loss", 10, FAKE_T0 + 50, 1), 0, "log_metrics(A, loss, 10)");
	check_int(reserve(&x, A, "loss", INT64_MIN, 1), 11,
		  "reserve(A, loss) after step 10 logged through the cache");
	check_int(log_point(x.s, A, "loss", 2, FAKE_T0 + 60, 1), 0, "log_metrics(A, loss, 2)");
	check_int(reserve(&x, A, "loss", INT64_MIN, 1), 12,
		  "reserve(A, loss) after an older step logged: goes on");
	check_int(reserve(&x, A, "loss", 20, 2), 20, "reserve(A, loss, floor 20)");
	check_int(reserve(&x, A, "loss", INT64_MIN, 1), 22, "reserve(A, loss) after the floor");
	check_int(reserve(&x, A, "loss", 5, 1), 23,
		  "reserve(A, loss, floor 5): the floor is lower");
	is_calls(&x, W("log_metrics") " " W("log_metrics"), "none of these asks next_step");

	check_int(reserve(&x, A, "fresh", INT64_MIN, 1), 0, "reserve(A, fresh): a metric's first");
	check_int(reserve(&x, A, "fresh", INT64_MIN, 1), 1, "reserve(A, fresh) again");
	check_int(reserve(&x, A, "floored", 7, 1), 7, "reserve(A, floored, floor 7), no point");
	is_calls(&x, "next_step=2", "one next_step for each new metric");

	/* A highest step of -5, logged behind the cache's back, then through it. */
	fake_counts_take(x.f, &before);
	err = log_point(&x.f->base, A, "neg", -5, FAKE_T0, 1);
	fx_unmark(&x, &before);
	check_int(err, 0, "log_metrics(A, neg, -5) to the store");
	check_int(reserve(&x, A, "neg", INT64_MIN, 1), -4, "reserve(A, neg): after step -5");
	check_int(log_point(x.s, A, "neg2", -5, FAKE_T0, 1), 0,
		  "log_metrics(A, neg2, -5) through the cache");
	check_int(reserve(&x, A, "neg2", INT64_MIN, 1), -4, "reserve(A, neg2): after step -5");
	is_calls(&x, W("log_metrics") " next_step=2", "reservations of neg, neg2");
	fx_close(&x, "reserve_steps");

	/* Threads reserving at once get steps that tile 0..n, never twice. */
	fx_open(&x, 1, 2.0);
	case_name = "reserve_steps: threads";
	for (i = 0; i < 4; i++) {
		memset(&th[i], 0, sizeof(th[i]));
		th[i].s = x.s;
		if (pthread_create(&tid[i], NULL, resv_run, &th[i])) {
			printf("Bail out! cannot start a thread\n");
			exit(1);
		}
	}
	for (i = 0; i < 4; i++)
		pthread_join(tid[i], NULL);
	for (i = 0; i < 4; i++) {
		check_int(th[i].err, 0, "threads: every reservation answers");
		for (j = 0; j < 100; j++, n++) {
			ranges[n][0] = th[i].first[j];
			ranges[n][1] = (int64_t)th[i].n[j];
		}
	}
	qsort(ranges, n, sizeof(ranges[0]), range_cmp);
	for (i = 0, end = 0; i < n; i++) {
		gaps += ranges[i][0] != end;
		end = ranges[i][0] + ranges[i][1];
	}
	check(!gaps, "threads: 400 reservations tile steps 0..%" PRId64 " with no overlap", end);
	fx_since(&x, &before);
	check(before.op[FAKE_next_step] >= 1 && before.op[FAKE_next_step] <= 4,
	      "threads: next_step asked once per thread at most (%lu)", before.op[FAKE_next_step]);
	fx_close(&x, "reserve_steps: threads");
}

/* ---- 8. the watch ---------------------------------------------------------- */

/* One read of each table; "get_experiment get_experiment_by_id list_runs
 * get_snapshot next_step" is what it costs when nothing is cached. */
#define ROUND_ALL "get_experiment get_experiment_by_id list_runs get_snapshot next_step"

static void round_is(struct fx *x, const char *spec, const char *name)
{
	struct buf out = BUF_INIT;
	int err = 0;

	err |= rd(x->s, RD_EXP, "vision", NULL, &out);
	err |= rd(x->s, RD_EXP_ID, "1", NULL, &out);
	err |= rd(x->s, RD_FIND, "1", "baseline", &out);
	err |= rd(x->s, RD_SNAP, B, NULL, &out);
	err |= rd(x->s, RD_STEP, A, "loss", &out);
	check(!err, "%s: every read answers", name);
	is_calls(x, spec, name);
	buf_release(&out);
}

static void test_watch(void)
{
	struct buf out = BUF_INIT;
	struct store_batch *b;
	unsigned long looks;
	int64_t t0, ms;
	struct fx x;
	int i, err;

	fx_open(&x, 1, 0.05);
	case_name = "watch";
	round_is(&x, ROUND_ALL, "watch: the first round fetches");
	round_is(&x, "", "watch: the second round hits");
	sleep_ms(60);
	round_is(&x, "", "watch: past cache_ttl, still hits (a watch needs no TTL)");
	fake_store_set_others_version(x.f, 1);
	sleep_ms(3);
	round_is(&x, ROUND_ALL, "watch moved: every table fetches again");
	round_is(&x, "", "watch moved: then hits again");
	sleep_ms(3);
	round_is(&x, "", "watch still: hits");

	/* The watch is asked at every read: what a change is seen after is
	 * the backend's (cheap) watch, not a pause of the cache's. */
	looks = watch_calls(x.f);
	t0 = mono_us();
	for (i = 0; i < 2000; i++)
		rd(x.s, RD_EXP, "vision", NULL, &out);
	buf_release(&out);
	ms = (mono_us() - t0) / 1000;
	looks = watch_calls(x.f) - looks;
	check(looks == 2000, "watch: asked %lu times in %" PRId64 " ms for 2000 reads, once a read",
	      looks, ms);
	check(ms < 3 || looks >= 1, "watch: asked at all in %" PRId64 " ms of reads", ms);
	is_calls(&x, "", "watch: 20000 reads hit");
	fx_close(&x, "watch");

	/* -EAGAIN: cannot tell just now, so changed. */
	fx_open(&x, 1, 2.0);
	case_name = "watch: -EAGAIN";
	read_is(&x, RD_EXP, "vision", NULL, "get_experiment", 0, "1 vision 0", "EAGAIN: first");
	fake_store_fail(x.f, FAKE_others_version, -EAGAIN);
	for (i = 0; i < 2; i++) {
		sleep_ms(3);
		read_is(&x, RD_EXP, "vision", NULL, "get_experiment", 0, "1 vision 0",
			i ? "watch -EAGAIN again: fetched again" : "watch -EAGAIN: fetched again");
	}
	fake_store_fail(x.f, FAKE_others_version, 0);
	sleep_ms(3);
	read_is(&x, RD_EXP, "vision", NULL, NULL, 0, "1 vision 0", "watch answers again");
	sleep_ms(3);
	read_is(&x, RD_EXP, "vision", NULL, "", 0, "1 vision 0",
		"watch answers again, not moved: hits");
	fx_close(&x, "watch: -EAGAIN");

	/* A failed commit: what the lost writes showed is dropped, all of it. */
	fx_open(&x, 1, 2.0);
	case_name = "watch: failed commit";
	round_is(&x, ROUND_ALL, "failed commit: the first round fetches");
	b = store_batch_new(x.s);
	x.f->fail_batch = fake_store_batches_made(x.f);
	check_int(store_log_param(x.s, b, C, "lost", "1"), 0, "log_param(C) into a batch");
	err = store_batch_commit(x.s, b, 0);
	check_int(err, -EIO, "that batch's commit fails");
	store_batch_free(x.s, b);
	is_calls(&x, "batch_new log_param batch_commit batch_free", "failed commit");
	round_is(&x, ROUND_ALL, "after a failed commit, every table fetches again");
	round_is(&x, "", "after a failed commit, then hits");
	b = store_batch_new(x.s);
	check_int(store_log_param(x.s, b, C, "kept", "1"), 0, "log_param(C) into another batch");
	check_int(store_batch_commit(x.s, b, 0), 0, "a commit that works");
	store_batch_free(x.s, b);
	fx_mark(&x);
	round_is(&x, "", "after a commit that works, hits");
	fx_close(&x, "watch: failed commit");
}

/* ---- 9. no watch: a time bound ---------------------------------------------- */

static void test_ttl(void)
{
	struct fx x;
	int64_t t0;
	int i;

	fx_open(&x, 0, 0.05);
	case_name = "ttl";
	check_int(watch_calls(x.f), 1, "no watch: asked once, when wrapped");
	t0 = mono_us();
	round_is(&x, ROUND_ALL, "ttl: the first round fetches");
	for (i = 0; i < 3; i++)
		round_is(&x, "", "ttl: within cache_ttl, hits");
	if (mono_us() - t0 > 40000)
		tap_diag("ttl: slow machine, the rounds took %" PRId64 " ms",
			 (mono_us() - t0) / 1000);
	sleep_ms(60);
	round_is(&x, ROUND_ALL, "ttl: past cache_ttl, every table fetches again");
	round_is(&x, "", "ttl: then hits again");
	check_int(watch_calls(x.f), 1, "no watch: never asked again");
	fx_close(&x, "ttl");

	fx_open(&x, 0, 0);
	case_name = "ttl 0";
	/* The snapshot's folder needs the index again: nothing is kept. */
	round_is(&x, ROUND_ALL " list_runs", "ttl 0: the first round fetches");
	round_is(&x, ROUND_ALL " list_runs", "ttl 0: nothing is kept");
	fx_close(&x, "ttl 0");
}

/* ---- a listing that comes with its runs whole (a remote search) ------------- */

static void test_seeded(void)
{
	struct store_batch *b;
	struct fx x;

	fx_open(&x, 0, 60);
	x.f->whole_runs = 1;
	case_name = "seeded";
	read_is(&x, RD_LIST, "1", NULL, "list_runs", 0, "baseline baseline@b0b1b2b3 " C,
		"seeded: one listing");
	/* Every run was read with it: no request per run. */
	read_is(&x, RD_SNAP, A, NULL, "", 0, "baseline p3 m4 t4", "seeded: run A from the listing");
	read_is(&x, RD_SNAP, B, NULL, "", 0, "baseline@b0b1b2b3 p1 m1 t1",
		"seeded: run B, its folder too");
	read_is(&x, RD_METRIC, A, "loss", "", 0, "0.25@2", "seeded: the latest point");
	/* A write of ours drops what the listing said of that run. */
	b = store_batch_new(x.s);
	check_int(store_log_param(x.s, b, A, "seeded", "1"), 0, "seeded: log a param of A");
	check_int(store_batch_commit(x.s, b, 0), 0, "seeded: commit");
	store_batch_free(x.s, b);
	fx_mark(&x);
	read_is(&x, RD_SNAP, A, NULL, "get_snapshot", 0, "baseline p4 m4 t4",
		"seeded: A is read again after the write");
	read_is(&x, RD_SNAP, B, NULL, "", 0, "baseline@b0b1b2b3 p1 m1 t1",
		"seeded: B is still the listing's");
	fx_close(&x, "seeded");

	/* A bare backend's listing (no snapshots) seeds nothing. */
	fx_open(&x, 0, 60);
	case_name = "not seeded";
	read_is(&x, RD_LIST, "1", NULL, "list_runs", 0, "baseline baseline@b0b1b2b3 " C,
		"not seeded: one listing");
	read_is(&x, RD_SNAP, A, NULL, "get_snapshot", 0, "baseline p3 m4 t4",
		"not seeded: run A is read");
	fx_close(&x, "not seeded");
}

/* ---- 10. reservations survive a change of generation ------------------------ */

static void test_reserve_across(void)
{
	struct store_batch *b;
	int64_t first;
	struct fx x;
	int k;

	for (k = 0; k < 3; k++) {
		const char *name = k == 0   ? "reserve after the watch moved"
				   : k == 1 ? "reserve after cache_ttl"
					    : "reserve after a failed commit";

		case_name = name;
		fx_open(&x, k != 1, 0.05);
		first = reserve(&x, A, "pending", INT64_MIN, 2);
		check_int(first, 0, name);
		if (k == 0) {
			fake_store_set_others_version(x.f, 7);
			sleep_ms(3);
		} else if (k == 1) {
			sleep_ms(60);
		} else {
			b = store_batch_new(x.s);
			x.f->fail_batch = fake_store_batches_made(x.f);
			store_log_param(x.s, b, C, "lost", "1");
			check_int(store_batch_commit(x.s, b, 0), -EIO, "the commit fails");
			store_batch_free(x.s, b);
		}
		fx_mark(&x);
		first = reserve(&x, A, "pending", INT64_MIN, 1);
		is_calls(&x, "next_step", name);
		check_int(first, 2,
			  "steps 0 and 1 reserved and not logged yet are not handed out "
			  "again");
		fx_close(&x, name);
	}
}

/* ---- 11. a read that raced a write keeps nothing stale ---------------------- */

struct race {
	struct fx *x;
	enum fake_op when;
	const struct wr *w;
	int fired, err;
};

static void race_hook(struct fake_store *f, enum fake_op op, void *arg)
{
	struct race *r = arg;

	(void)f;
	if (r->fired || op != r->when)
		return;
	r->fired = 1;
	r->err = do_write(r->x->s, r->w);
}

static void test_races(void)
{
	static const struct {
		const char *what;
		enum rd kind; /* the read in flight */
		const char *a, *b;
		enum fake_op when; /* the fake's call it is in flight in */
		struct wr w;	   /* the write made meanwhile */
		enum rd then;	   /* the read after */
		const char *ta, *tb;
		const char *cost; /* of the read after; NULL: not checked */
		int err;
		const char *shows;
	} t[] = {
#define RACE(what, kind, a, b, when) what, kind, a, b, when
		{ RACE("log_param while the snapshot is fetched", RD_SNAP, A, NULL,
		       FAKE_get_snapshot),
		  { W_LOG_PARAM, A, "raced", "1", 0, 0, 0 },
		  RD_SNAP,
		  A,
		  NULL,
		  "get_snapshot",
		  0,
		  "baseline p4 m4 t4" },
		{ RACE("set_tag while the snapshot is fetched", RD_SNAP, A, NULL,
		       FAKE_get_snapshot),
		  { W_SET_TAG, A, "raced", "1", 0, 0, 0 },
		  RD_SNAP,
		  A,
		  NULL,
		  "get_snapshot",
		  0,
		  "baseline p3 m4 t5" },
		{ RACE("log_metrics while the snapshot is fetched", RD_SNAP, A, NULL,
		       FAKE_get_snapshot),
		  { W_LOG_POINT, A, "loss", NULL, 9, FAKE_T0 + 40, 7 },
		  RD_METRIC,
		  A,
		  "loss",
		  "get_snapshot",
		  0,
		  "7@9" },
		{ RACE("rename_run while the snapshot is fetched", RD_SNAP, A, NULL,
		       FAKE_get_snapshot),
		  { W_RENAME_RUN, A, "raced", NULL, 0, 0, 0 },
		  RD_SNAP,
		  A,
		  NULL,
		  "get_snapshot",
		  0,
		  "raced p3 m4 t4" },
		{ RACE("rename_experiment while looked up by name", RD_EXP, "vision", NULL,
		       FAKE_get_experiment),
		  { W_RENAME_EXP, "1", "vision2", NULL, 0, 0, 0 },
		  RD_EXP,
		  "vision",
		  NULL,
		  "get_experiment",
		  -ENOENT,
		  "" },
		{ RACE("rename_experiment while looked up by id", RD_EXP_ID, "1", NULL,
		       FAKE_get_experiment_by_id),
		  { W_RENAME_EXP, "1", "vision2", NULL, 0, 0, 0 },
		  RD_EXP_ID,
		  "1",
		  NULL,
		  "get_experiment_by_id",
		  0,
		  "1 vision2 0" },
		{ RACE("create_experiment while its name is looked up", RD_EXP, "late", NULL,
		       FAKE_get_experiment),
		  { W_CREATE_EXP, NULL, "late", NULL, 0, 0, 0 },
		  RD_EXP,
		  "late",
		  NULL,
		  "get_experiment",
		  0,
		  "4 late 0" },
		{ RACE("delete_experiment while looked up by id", RD_EXP_ID, "0", NULL,
		       FAKE_get_experiment_by_id),
		  { W_DELETE_EXP, "0", NULL, NULL, 0, 0, 0 },
		  RD_EXP_ID,
		  "0",
		  NULL,
		  "get_experiment_by_id",
		  0,
		  "0 Default 1" },
		{ RACE("create_run while the runs are listed", RD_LIST, "1", NULL, FAKE_list_runs),
		  { W_CREATE_RUN, "1", "raced", NULL, 0, 0, 0 },
		  RD_FIND,
		  "1",
		  "raced",
		  NULL,
		  0,
		  "00000000000000000000000000000001 raced RUNNING" },
		{ RACE("rename_run while the runs are listed", RD_LIST, "1", NULL, FAKE_list_runs),
		  { W_RENAME_RUN, A, "raced", NULL, 0, 0, 0 },
		  RD_FIND,
		  "1",
		  "raced",
		  "list_runs",
		  0,
		  A " raced RUNNING" },
		{ RACE("delete_run while the runs are listed", RD_LIST, "1", NULL, FAKE_list_runs),
		  { W_DELETE_RUN, A, NULL, NULL, 0, 0, 0 },
		  RD_LIST,
		  "1",
		  NULL,
		  "list_runs",
		  0,
		  "baseline " C },
		{ RACE("set_status while the runs are listed", RD_LIST, "1", NULL, FAKE_list_runs),
		  { W_SET_STATUS, A, "FINISHED", NULL, 0, 0, 0 },
		  RD_FIND,
		  "1",
		  "baseline",
		  "list_runs",
		  0,
		  A " baseline FINISHED" },
		{ RACE("set_tag mlflow.runName while the runs are listed", RD_LIST, "1", NULL,
		       FAKE_list_runs),
		  { W_SET_TAG, A, "mlflow.runName", "raced", 0, 0, 0 },
		  RD_FIND,
		  "1",
		  "raced",
		  "list_runs",
		  0,
		  A " raced RUNNING" },
		{ RACE("log_metrics while the runs are listed", RD_LIST, "1", NULL, FAKE_list_runs),
		  { W_LOG_POINT, A, "loss", NULL, 9, FAKE_T0 + 5000, 7 },
		  RD_MTIME,
		  "1",
		  "baseline",
		  "list_runs",
		  0,
		  "5000" },
		/* The reservation under way takes the step logged meanwhile
		 * as its floor (101): the next one gets 102. */
		{ RACE("log_metrics while next_step is asked", RD_STEP, A, "loss", FAKE_next_step),
		  { W_LOG_POINT, A, "loss", NULL, 100, FAKE_T0 + 40, 7 },
		  RD_STEP,
		  A,
		  "loss",
		  NULL,
		  0,
		  "102" },
#undef RACE
	};
	struct buf out = BUF_INIT;
	struct race r;
	char name[256];
	struct fx x;
	size_t i;
	int err;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		snprintf(name, sizeof(name), "race: %s", t[i].what);
		case_name = name;
		fx_open(&x, 1, 2.0);
		r = (struct race){ &x, t[i].when, &t[i].w, 0, 0 };
		x.f->in_flight = race_hook;
		x.f->in_flight_arg = &r;
		err = rd(x.s, t[i].kind, t[i].a, t[i].b, &out);
		x.f->in_flight = NULL;
		check((!err || err == -ENOENT) && r.fired && !r.err,
		      "%s: the read and the write in it answer", name);
		fx_mark(&x);
		read_is(&x, t[i].then, t[i].ta, t[i].tb, t[i].cost, t[i].err, t[i].shows, name);
		fx_close(&x, name);
	}
	buf_release(&out);
}

/* Another client writes while the cache reads, and another reader of the
 * cache sees the watch move before the read ends. */
static void other_client_hook(struct fake_store *f, enum fake_op op, void *arg)
{
	struct race *r = arg;
	struct store_experiment e = { 0 };

	if (r->fired || op != r->when)
		return;
	r->fired = 1;
	r->err = store_log_param(&f->base, NULL, A, "other", "1");
	fake_store_set_others_version(f, 11);
	if (!r->err)
		r->err = store_get_experiment(r->x->s, "vision", &e);
	store_experiment_release(&e);
}

/* The status of run_id as a snapshot through the cache shows it. */
static void status_is(struct fx *x, const char *run_id, const char *want, const char *name)
{
	const struct store_snapshot *snap = NULL;
	int err = store_get_snapshot(x->s, run_id, SNAP_PARAMS, &snap);

	check_str(err ? strerror(-err) : snap->run.status, want, name);
	store_snapshot_put(snap);
}

static void test_races_across(void)
{
	static const struct wr rename = { W_RENAME_RUN, A, "raced", NULL, 0, 0, 0 };
	struct buf out = BUF_INIT;
	struct fake_counts before;
	struct race r;
	const char *name;
	struct fx x;
	int err;

	name = "race: another client's write seen while a snapshot is fetched";
	case_name = name;
	fx_open(&x, 1, 2.0);
	r = (struct race){ &x, FAKE_get_snapshot, NULL, 0, 0 };
	x.f->in_flight = other_client_hook;
	x.f->in_flight_arg = &r;
	err = rd(x.s, RD_SNAP, A, NULL, &out);
	x.f->in_flight = NULL;
	check(!err && r.fired && !r.err, "%s: the read and the write in it answer", name);
	fx_mark(&x);
	read_is(&x, RD_SNAP, A, NULL, "get_snapshot", 0, "baseline p4 m4 t4",
		"the snapshot read before the change is not kept as current");
	fx_close(&x, name);

	name = "race: rename_run while set_status reads the run back";
	case_name = name;
	fx_open(&x, 1, 2.0);
	rd(x.s, RD_LIST, "1", NULL, &out);
	r = (struct race){ &x, FAKE_get_run, &rename, 0, 0 };
	x.f->in_flight = race_hook;
	x.f->in_flight_arg = &r;
	err = store_set_status(x.s, NULL, A, "FINISHED");
	x.f->in_flight = NULL;
	check(!err && r.fired && !r.err, "%s: both writes answer", name);
	fx_mark(&x);
	read_is(&x, RD_FIND, "1", "raced", "list_runs", 0, A " raced FINISHED",
		"the older read does not undo the rename in the list: listed again");
	fx_close(&x, name);

	name = "race: a listed run another client changed";
	case_name = name;
	fx_open(&x, 1, 2.0);
	rd(x.s, RD_LIST, "1", NULL, &out);
	fake_counts_take(x.f, &before);
	err = store_set_status(&x.f->base, NULL, A, "KILLED");
	fx_unmark(&x, &before);
	check_int(err, 0, "another client finishes run A");
	fake_store_set_others_version(x.f, 12);
	status_is(&x, A, "KILLED",
		  "a snapshot takes the run's info from the store, not "
		  "from the list from before the change");
	fx_close(&x, name);

	name = "race: a failed write's steps while another writer holds later ones";
	case_name = name;
	fx_open(&x, 1, 2.0);
	check_int(reserve(&x, A, "pending", INT64_MIN, 1), 0, "writer 1 reserves step 0");
	check_int(reserve(&x, A, "pending", INT64_MIN, 1), 1, "writer 2 reserves step 1");
	fake_store_fail(x.f, FAKE_log_metrics, -EIO);
	check_int(log_point(x.s, A, "pending", 0, FAKE_T0, 1), -EIO, "writer 1's write fails");
	fake_store_fail(x.f, FAKE_log_metrics, 0);
	check_int(reserve(&x, A, "pending", INT64_MIN, 1), 2,
		  "step 1, still writer 2's, is not handed out again");
	check_int(log_point(x.s, A, "pending", 1, FAKE_T0, 1), 0, "writer 2 logs step 1");
	fx_close(&x, name);

	name = "race: a failed write's steps, the last reserved";
	case_name = name;
	fx_open(&x, 1, 2.0);
	check_int(reserve(&x, A, "pending", INT64_MIN, 2), 0, "a writer reserves steps 0 and 1");
	fake_store_fail(x.f, FAKE_log_metrics, -EIO);
	check_int(log_point(x.s, A, "pending", 1, FAKE_T0, 1), -EIO, "its write fails");
	fake_store_fail(x.f, FAKE_log_metrics, 0);
	check_int(reserve(&x, A, "pending", INT64_MIN, 1), 0,
		  "the next reservation starts at the store's next step again: no gap");
	fx_close(&x, name);
	buf_release(&out);
}

/* ---- 12. listings call back with no lock held ------------------------------- */

enum lk { L_RUNS, L_EXPS, L_KV_EXP, L_KV_RUN, L_MODELS, L_VERSIONS, L_ALIASES };

struct reenter {
	struct fx *x;
	int calls, err;
};

/* From inside a callback: reads and a write through the same cache. */
static int reenter(struct reenter *re)
{
	const struct store_snapshot *snap = NULL;
	struct store_experiment e;
	struct store_ref ref = { .run_id = C };
	struct store_run r;
	int64_t first;
	int err;

	re->calls++;
	err = store_find_run(re->x->s, "1", "baseline", &r);
	store_run_release(&r);
	if (!err)
		err = store_get_experiment(re->x->s, "vision", &e);
	store_experiment_release(&e);
	if (!err)
		err = store_get_snapshot(re->x->s, A, SNAP_ALL, &snap);
	store_snapshot_put(snap);
	if (!err)
		err = store_reserve_steps(re->x->s, A, "loss", INT64_MIN, 1, &first);
	if (!err)
		err = store_set_tag(re->x->s, NULL, SEC_RUN_TAGS, &ref, "from_cb", "1");
	if (err && !re->err)
		re->err = err;
	return 0;
}

static int cb_run(void *ctx, const struct store_run *r)
{
	(void)r;
	return reenter(ctx);
}

static int cb_exp(void *ctx, const struct store_experiment *e)
{
	(void)e;
	return reenter(ctx);
}

static int cb_kv(void *ctx, const struct store_kv *kv)
{
	(void)kv;
	return reenter(ctx);
}

static int cb_model(void *ctx, const struct store_model *m)
{
	(void)m;
	return reenter(ctx);
}

static int cb_version(void *ctx, const struct store_version *v)
{
	(void)v;
	return reenter(ctx);
}

static int cb_alias(void *ctx, const char *alias, int64_t version)
{
	(void)alias;
	(void)version;
	return reenter(ctx);
}

static void test_callbacks(void)
{
	static const struct {
		enum lk kind;
		const char *what;
		int calls;
	} t[] = {
		{ L_RUNS, "list_runs(1)", 3 },
		{ L_EXPS, "list_experiments", 3 },
		{ L_KV_EXP, "list_kv(exp 1 tags)", 2 },
		{ L_KV_RUN, "list_kv(A's params)", 3 },
		{ L_MODELS, "list_models", 1 },
		{ L_VERSIONS, "list_versions(resnet)", 2 },
		{ L_ALIASES, "list_aliases(resnet)", 1 },
	};
	struct store_ref exp = { .experiment_id = "1" }, run = { .run_id = A };
	struct reenter re;
	char name[256];
	struct fx x;
	size_t i;
	int err = -EINVAL, pass;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		snprintf(name, sizeof(name), "%s calls back with no lock held", t[i].what);
		case_name = name;
		fx_open(&x, 1, 2.0);
		/* Twice: from the store, then (runs) from the cache's table. */
		for (pass = 0; pass < 2; pass++) {
			re = (struct reenter){ &x, 0, 0 };
			switch (t[i].kind) {
			case L_RUNS:
				err = store_list_runs(x.s, "1", cb_run, &re);
				break;
			case L_EXPS:
				err = store_list_experiments(x.s, cb_exp, &re);
				break;
			case L_KV_EXP:
				err = store_list_kv(x.s, SEC_EXP_TAGS, &exp, NULL, cb_kv, &re);
				break;
			case L_KV_RUN:
				err = store_list_kv(x.s, SEC_PARAMS, &run, NULL, cb_kv, &re);
				break;
			case L_MODELS:
				err = store_list_models(x.s, cb_model, &re);
				break;
			case L_VERSIONS:
				err = store_list_versions(x.s, "resnet", cb_version, &re);
				break;
			case L_ALIASES:
				err = store_list_aliases(x.s, "resnet", cb_alias, &re);
				break;
			}
			check(!err && re.calls == t[i].calls && !re.err,
			      "%s%s: %d callbacks, each reading and writing through the cache",
			      name, pass ? ", again" : "", t[i].calls);
			if (err || re.err)
				tap_diag("listing %d, a call from the callback %d", err, re.err);
		}
		fx_close(&x, name);
	}
}

/* ---- 13. memory stays bounded ------------------------------------------------ */

/* The entries store_describe shows for one of the cache's tables, or -1. */
static long entries(struct fx *x, const char *table)
{
	struct buf out = BUF_INIT;
	char key[64];
	const char *p;
	long n = -1;

	snprintf(key, sizeof(key), "\ncache_%s: ", table);
	if (!store_describe(x->s, &out) && (p = strstr(buf_str(&out), key)))
		n = strtol(p + strlen(key), NULL, 10);
	buf_release(&out);
	return n;
}

static void test_bounded(void)
{
	static const struct {
		const char *table;
		long budget;
		const char *miss; /* what a lookup costs the fake */
	} t[] = {
		{ "runs", SNAP_MAX, "get_snapshot" },
		{ "experiments", EXP_MAX, "get_experiment" },
		{ "steps", STEP_MAX, "next_step" },
		{ "run_lists", INDEX_MAX, "list_runs" },
	};
	struct buf out = BUF_INIT;
	char name[128], key[64];
	long i, over = 100, most = 0;
	size_t k;
	struct fx x;
	int err;

	for (k = 0; k < sizeof(t) / sizeof(t[0]); k++) {
		snprintf(name, sizeof(name), "bounded: cache_%s", t[k].table);
		case_name = name;
		fx_open(&x, 1, 2.0);
		x.f->phantom_runs = 1;
		err = 0;
		for (i = 0; i < t[k].budget + over && !err; i++) {
			switch (k) {
			case 0:
				snprintf(key, sizeof(key), "ab%030lx", (unsigned long)i);
				err = rd(x.s, RD_SNAP, key, NULL, &out);
				break;
			case 1:
				snprintf(key, sizeof(key), "missing-%ld", i);
				err = rd(x.s, RD_EXP, key, NULL, &out);
				err = err == -ENOENT ? 0 : err ? err : -EEXIST;
				break;
			case 2:
				snprintf(key, sizeof(key), "k%ld", i);
				err = rd(x.s, RD_STEP, A, key, &out);
				break;
			default:
				snprintf(key, sizeof(key), "x%ld", i);
				err = rd(x.s, RD_LIST, key, NULL, &out);
				break;
			}
			if (i % 512 == 0 && entries(&x, t[k].table) > most)
				most = entries(&x, t[k].table);
		}
		check_int(err, 0, name);
		snprintf(name, sizeof(name),
			 "bounded: cache_%s holds %ld entries after %ld lookups", t[k].table,
			 t[k].budget, t[k].budget + over);
		check_int(entries(&x, t[k].table), t[k].budget, name);
		check(most <= t[k].budget, "bounded: cache_%s never held more (at most %ld seen)",
		      t[k].table, most);
		most = 0;
		fx_mark(&x);

		/* The most recent stays; the least recent went. */
		snprintf(name, sizeof(name), "bounded: cache_%s: the newest still hits",
			 t[k].table);
		switch (k) {
		case 0:
			snprintf(key, sizeof(key), "ab%030lx", (unsigned long)(i - 1));
			rd(x.s, RD_SNAP, key, NULL, &out);
			is_calls(&x, "", name);
			snprintf(key, sizeof(key), "ab%030lx", 0UL);
			rd(x.s, RD_SNAP, key, NULL, &out);
			break;
		case 1:
			snprintf(key, sizeof(key), "missing-%ld", i - 1);
			rd(x.s, RD_EXP, key, NULL, &out);
			is_calls(&x, "", name);
			rd(x.s, RD_EXP, "missing-0", NULL, &out);
			break;
		case 2:
			snprintf(key, sizeof(key), "k%ld", i - 1);
			rd(x.s, RD_STEP, A, key, &out);
			is_calls(&x, "", name);
			rd(x.s, RD_STEP, A, "k0", &out);
			break;
		default:
			snprintf(key, sizeof(key), "x%ld", i - 1);
			rd(x.s, RD_LIST, key, NULL, &out);
			is_calls(&x, "", name);
			rd(x.s, RD_LIST, "x0", NULL, &out);
			break;
		}
		snprintf(name, sizeof(name), "bounded: cache_%s: the oldest was let go",
			 t[k].table);
		is_calls(&x, t[k].miss, name);
		snprintf(name, sizeof(name), "bounded: cache_%s", t[k].table);
		fx_close(&x, name);
	}
	buf_release(&out);
}

int main(void)
{
	signal(SIGALRM, on_alarm);
	test_second_read();
	test_experiment_writes();
	test_create_run();
	test_run_writes();
	test_key_writes();
	test_log_metrics();
	test_reserve_steps();
	test_watch();
	test_ttl();
	test_seeded();
	test_reserve_across();
	test_races();
	test_races_across();
	test_callbacks();
	test_bounded();
	alarm(0);
	return tap_done();
}
