/*
 * fake-store.c - the counting store of fake-store.h: a world of a few
 * experiments, runs and a registered model in plain arrays, every operation
 * of struct store_ops counted on entry, failable on demand, and checked
 * against the contract its slot's comment states.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "fake-store.h"

#define EXP_MAX	   16
#define RUN_MAX	   32
#define MODEL_MAX  2
#define VER_MAX	   4
#define ALIAS_MAX  4
#define RESERV_MAX 16

/* A section of keys, sorted by key in byte order. */
struct fk_kv {
	char *key;
	char *value;
};

struct fk_kvs {
	struct fk_kv *v;
	size_t n, cap;
};

struct fk_point {
	double value;
	int64_t step, ts;
};

struct fk_metric {
	char *key;
	struct fk_point *p;
	size_t n, cap;
};

struct fk_run {
	struct store_run r; /* folder always NULL here: computed on the way out */
	struct fk_kvs params, tags;
	struct fk_metric *m; /* sorted by key */
	size_t nm, capm;
};

struct fk_exp {
	struct store_experiment e;
	struct fk_kvs tags;
};

struct fk_version {
	struct store_version v;
	struct fk_kvs tags;
};

struct fk_model {
	struct store_model m;
	struct fk_kvs tags;
	struct fk_version v[VER_MAX];
	size_t nv;
	struct {
		char *alias;
		int64_t version;
	} aliases[ALIAS_MAX];
	size_t na;
};

/* Steps handed out by reserve_steps: the next one to hand out. */
struct fk_reserv {
	char run_id[STORE_RUN_ID_MAX];
	char *key;
	int64_t next;
};

struct fake_batch {
	struct store_batch base;
	struct fake_batch *next; /* in the world's live list */
	unsigned seq;
	int writes; /* accepted since the last commit */
};

struct fake_world {
	struct fk_exp exps[EXP_MAX];
	size_t nexp;
	struct fk_run runs[RUN_MAX];
	size_t nrun;
	struct fk_model models[MODEL_MAX];
	size_t nmodel;
	struct fk_reserv reserv[RESERV_MAX];
	size_t nreserv;
	struct fake_batch *live;
	unsigned next_exp_id, next_run_id;
};

static const struct store_ops fake_ops;

static const char *const op_names[] = {
#define FAKE_OP_NAME(name) #name,
	FAKE_OPS(FAKE_OP_NAME)
#undef FAKE_OP_NAME
};

const char *fake_op_name(enum fake_op op)
{
	return (unsigned)op < FAKE_OP_COUNT ? op_names[op] : "?";
}

int fake_op_parse(const char *name, size_t len)
{
	int i;

	for (i = 0; i < FAKE_OP_COUNT; i++)
		if (strlen(op_names[i]) == len && !strncmp(op_names[i], name, len))
			return i;
	return -1;
}

/* ---- calls counted ------------------------------------------------------ */

void fake_counts_take(struct fake_store *f, struct fake_counts *c)
{
	pthread_mutex_lock(&f->lock);
	memcpy(c->op, f->calls, sizeof(c->op));
	c->total = f->total;
	pthread_mutex_unlock(&f->lock);
}

void fake_counts_since(struct fake_store *f, const struct fake_counts *before,
		       struct fake_counts *d)
{
	int i;

	fake_counts_take(f, d);
	for (i = 0; i < FAKE_OP_COUNT; i++)
		d->op[i] -= before->op[i];
	d->total -= before->total;
}

int fake_counts_parse(const char *spec, struct fake_counts *c)
{
	const char *p = spec;

	memset(c, 0, sizeof(*c));
	while (*p) {
		size_t n = strcspn(p, " =");
		int op = fake_op_parse(p, n);
		unsigned long times = 1;
		char *end;

		if (op < 0)
			return -1;
		p += n;
		if (*p == '=') {
			times = strtoul(p + 1, &end, 10);
			p = end;
		}
		c->op[op] += times;
		c->total += times;
		p += strspn(p, " ");
	}
	return 0;
}

void fake_counts_format(const struct fake_counts *c, struct buf *out)
{
	int i;

	for (i = 0; i < FAKE_OP_COUNT; i++) {
		if (!c->op[i])
			continue;
		buf_addf(out, "%s%s", out->len ? " " : "", fake_op_name((enum fake_op)i));
		if (c->op[i] > 1)
			buf_addf(out, "=%lu", c->op[i]);
	}
	if (!out->len)
		buf_adds(out, "none");
}

static struct fake_store *to_fake(const struct store *s)
{
	if (s->ops != &fake_ops) {
		fprintf(stderr, "fake store: called with a store it did not make\n");
		abort();
	}
	return (struct fake_store *)s;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A contract breach: said, and counted for the test to see. */
__attribute__((format(printf, 2, 3))) static void violation(struct fake_store *f, const char *fmt,
							    ...)
{
	va_list ap;

	fprintf(stderr, "fake store: contract broken: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	pthread_mutex_lock(&f->lock);
	f->violations++;
	pthread_mutex_unlock(&f->lock);
}

/* Counts a call of op; returns what op must answer instead (0: do it). */
static int enter(struct fake_store *f, enum fake_op op)
{
	int err;

	pthread_mutex_lock(&f->lock);
	f->calls[op]++;
	f->total++;
	err = f->fail[op];
	pthread_mutex_unlock(&f->lock);
	if (err)
		store_set_errmsg("fake store: %s fails (%s)", fake_op_name(op), strerror(-err));
	return err;
}

/* A read has what it answers: the test's hook may write meanwhile. */
static void in_flight(struct fake_store *f, enum fake_op op)
{
	if (f->in_flight)
		f->in_flight(f, op, f->in_flight_arg);
}

/* A run given out as a bare backend gives it, when asked to: no folder. */
static void drop_folder(const struct fake_store *f, struct store_run *r)
{
	if (f->no_folders) {
		free(r->folder);
		r->folder = NULL;
	}
}

/* Answers err with a message, as a backend does. */
__attribute__((format(printf, 2, 3))) static int refuse(int err, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	store_set_errmsg("%s", msg);
	return err;
}

/* ---- sections of keys -------------------------------------------------- */

static size_t kvs_lower(const struct fk_kvs *kvs, const char *key)
{
	size_t lo = 0, hi = kvs->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(kvs->v[mid].key, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct fk_kv *kvs_find(const struct fk_kvs *kvs, const char *key)
{
	size_t i = kvs_lower(kvs, key);

	return i < kvs->n && !strcmp(kvs->v[i].key, key) ? &kvs->v[i] : NULL;
}

static int kvs_set(struct fk_kvs *kvs, const char *key, const char *value)
{
	size_t i = kvs_lower(kvs, key);
	char *v = strdup(value), *k;

	if (!v)
		return -ENOMEM;
	if (i < kvs->n && !strcmp(kvs->v[i].key, key)) {
		free(kvs->v[i].value);
		kvs->v[i].value = v;
		return 0;
	}
	if (kvs->n == kvs->cap) {
		size_t cap = kvs->cap ? kvs->cap * 2 : 8;
		struct fk_kv *nv = realloc(kvs->v, cap * sizeof(*nv));

		if (!nv) {
			free(v);
			return -ENOMEM;
		}
		kvs->v = nv;
		kvs->cap = cap;
	}
	k = strdup(key);
	if (!k) {
		free(v);
		return -ENOMEM;
	}
	memmove(&kvs->v[i + 1], &kvs->v[i], (kvs->n - i) * sizeof(kvs->v[0]));
	kvs->v[i].key = k;
	kvs->v[i].value = v;
	kvs->n++;
	return 0;
}

static int kvs_del(struct fk_kvs *kvs, const char *key)
{
	struct fk_kv *kv = kvs_find(kvs, key);
	size_t i;

	if (!kv)
		return -ENOENT;
	i = (size_t)(kv - kvs->v);
	free(kv->key);
	free(kv->value);
	memmove(&kvs->v[i], &kvs->v[i + 1], (kvs->n - i - 1) * sizeof(kvs->v[0]));
	kvs->n--;
	return 0;
}

static void kvs_free(struct fk_kvs *kvs)
{
	size_t i;

	for (i = 0; i < kvs->n; i++) {
		free(kvs->v[i].key);
		free(kvs->v[i].value);
	}
	free(kvs->v);
	memset(kvs, 0, sizeof(*kvs));
}

/* A store_kvs (store-internal.h) with a copy of every key of kvs. */
static struct store_kvs *kvs_export(const struct fk_kvs *kvs)
{
	struct store_kvs *out = store_kvs_new(kvs->n);
	size_t i;

	for (i = 0; out && i < kvs->n; i++) {
		struct store_kv kv = { .key = kvs->v[i].key, .value = kvs->v[i].value };

		if (store_kvs_add(out, &kv)) {
			store_kvs_put(out);
			return NULL;
		}
	}
	return out;
}

/* ---- metrics ----------------------------------------------------------- */

static struct fk_metric *metric_find(const struct fk_run *r, const char *key)
{
	size_t i;

	for (i = 0; i < r->nm; i++)
		if (!strcmp(r->m[i].key, key))
			return &r->m[i];
	return NULL;
}

static struct fk_metric *metric_get(struct fk_run *r, const char *key)
{
	struct fk_metric *m = metric_find(r, key);
	size_t i;

	if (m)
		return m;
	if (r->nm == r->capm) {
		size_t cap = r->capm ? r->capm * 2 : 8;
		struct fk_metric *nm = realloc(r->m, cap * sizeof(*nm));

		if (!nm)
			return NULL;
		r->m = nm;
		r->capm = cap;
	}
	for (i = 0; i < r->nm && strcmp(r->m[i].key, key) < 0; i++)
		;
	memmove(&r->m[i + 1], &r->m[i], (r->nm - i) * sizeof(r->m[0]));
	memset(&r->m[i], 0, sizeof(r->m[i]));
	r->m[i].key = strdup(key);
	if (!r->m[i].key) {
		memmove(&r->m[i], &r->m[i + 1], (r->nm - i) * sizeof(r->m[0]));
		return NULL;
	}
	r->nm++;
	return &r->m[i];
}

static int metric_add(struct fk_metric *m, double value, int64_t step, int64_t ts)
{
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 8;
		struct fk_point *p = realloc(m->p, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		m->p = p;
		m->cap = cap;
	}
	m->p[m->n].value = value;
	m->p[m->n].step = step;
	m->p[m->n].ts = ts;
	m->n++;
	return 0;
}

/* The latest point in MLflow's order (step, timestamp, value). */
static const struct fk_point *metric_latest(const struct fk_metric *m)
{
	const struct fk_point *best = NULL;
	size_t i;

	for (i = 0; i < m->n; i++)
		if (!best || metric_later(m->p[i].step, m->p[i].ts, m->p[i].value, best->step,
					  best->ts, best->value))
			best = &m->p[i];
	return best;
}

static int64_t metric_next(const struct fk_metric *m)
{
	int64_t next = INT64_MIN;
	size_t i;

	for (i = 0; m && i < m->n; i++)
		if (m->p[i].step >= next)
			next = m->p[i].step == INT64_MAX ? INT64_MAX : m->p[i].step + 1;
	return next;
}

static struct store_kvs *metrics_export(const struct fk_run *r)
{
	struct store_kvs *out = store_kvs_new(r->nm);
	size_t i;

	for (i = 0; out && i < r->nm; i++) {
		const struct fk_point *p = metric_latest(&r->m[i]);
		struct store_kv kv = { .key = r->m[i].key };

		if (!p)
			continue;
		kv.num = p->value;
		kv.step = p->step;
		kv.timestamp = p->ts;
		if (store_kvs_add(out, &kv)) {
			store_kvs_put(out);
			return NULL;
		}
	}
	return out;
}

static int point_cmp(const void *a, const void *b)
{
	const struct fk_point *x = a, *y = b;

	if (x->step != y->step)
		return x->step < y->step ? -1 : 1;
	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return x->value < y->value ? -1 : x->value > y->value;
}

/* ---- the world --------------------------------------------------------- */

static struct fk_exp *exp_by_id(struct fake_world *w, const char *id)
{
	size_t i;

	for (i = 0; id && i < w->nexp; i++)
		if (!strcmp(w->exps[i].e.id, id))
			return &w->exps[i];
	return NULL;
}

static struct fk_exp *exp_by_name(struct fake_world *w, const char *name, int active)
{
	size_t i;

	for (i = 0; name && i < w->nexp; i++)
		if (!strcmp(w->exps[i].e.name, name) && (!active || !w->exps[i].e.deleted))
			return &w->exps[i];
	return NULL;
}

static struct fk_run *run_by_id(struct fake_world *w, const char *id)
{
	size_t i;

	for (i = 0; id && i < w->nrun; i++)
		if (!strcmp(w->runs[i].r.run_id, id))
			return &w->runs[i];
	return NULL;
}

static int run_older(const struct fk_run *a, const struct fk_run *b)
{
	if (a->r.start_time != b->r.start_time)
		return a->r.start_time < b->r.start_time;
	return strcmp(a->r.run_id, b->r.run_id) < 0;
}

/* The active runs of an experiment, oldest first (start, then id). */
static size_t runs_of(struct fake_world *w, const char *exp_id, struct fk_run **out)
{
	size_t i, j, n = 0;

	for (i = 0; i < w->nrun; i++) {
		struct fk_run *r = &w->runs[i];

		if (r->r.deleted || strcmp(r->r.experiment_id, exp_id))
			continue;
		for (j = n; j > 0 && run_older(r, out[j - 1]); j--)
			out[j] = out[j - 1];
		out[j] = r;
		n++;
	}
	return n;
}

/*
 * The folder of an active run (mlflowfs(1), THE TREE): its name; the oldest of several
 * runs of a name keeps it, the others get "<name>@<8 hex>"; a run without
 * a name (or whose folder is taken) its run id.  A new string, NULL when
 * deleted or out of memory.
 */
static char *folder_of(struct fake_world *w, const struct fk_run *run)
{
	struct fk_run *order[RUN_MAX];
	char *folders[RUN_MAX] = { 0 }, *mine = NULL;
	size_t i, j, n;

	if (run->r.deleted)
		return NULL;
	n = runs_of(w, run->r.experiment_id, order);
	for (i = 0; i < n; i++) {
		const struct store_run *r = &order[i]->r;
		int taken = 0;

		for (j = 0; j < i && r->name[0]; j++)
			taken |= !strcmp(folders[j], r->name);
		if (!r->name[0])
			folders[i] = strdup(r->run_id);
		else if (!taken)
			folders[i] = strdup(r->name);
		else if (asprintf(&folders[i], "%s@%.8s", r->name, r->run_id) < 0)
			folders[i] = NULL;
		if (!folders[i])
			break;
		if (order[i] == run) {
			mine = folders[i];
			folders[i] = NULL;
			break;
		}
	}
	for (j = 0; j <= i && j < n; j++)
		free(folders[j]);
	return mine;
}

/* A copy of run for a caller, with its folder; 0 or -ENOMEM. */
static int run_out(struct fake_world *w, const struct fk_run *run, struct store_run *out)
{
	int err = store_run_copy(out, &run->r);

	if (err)
		return err;
	if (!run->r.deleted) {
		out->folder = folder_of(w, run);
		if (!out->folder) {
			store_run_release(out);
			return -ENOMEM;
		}
	}
	return 0;
}

static int64_t run_last_change(const struct fk_run *r)
{
	int64_t last = r->r.start_time > r->r.end_time ? r->r.start_time : r->r.end_time;
	size_t i, j;

	for (i = 0; i < r->nm; i++)
		for (j = 0; j < r->m[i].n; j++)
			if (r->m[i].p[j].ts > last)
				last = r->m[i].p[j].ts;
	return last;
}

/* last_change as store_sqlite computes it: from the latest point of each
 * metric only (MAX(timestamp) of latest_metrics), not from every point. */
static int64_t run_last_change_latest(const struct fk_run *r)
{
	int64_t last = r->r.start_time > r->r.end_time ? r->r.start_time : r->r.end_time;
	const struct fk_point *p;
	size_t i;

	for (i = 0; i < r->nm; i++) {
		p = metric_latest(&r->m[i]);
		if (p && p->ts > last)
			last = p->ts;
	}
	return last;
}

/* The run's last change, by the rule the test asked for. */
static int64_t run_changed_at(const struct fake_store *f, const struct fk_run *r)
{
	return f->last_change_latest ? run_last_change_latest(r) : run_last_change(r);
}

static struct fk_model *model_by_name(struct fake_world *w, const char *name)
{
	size_t i;

	for (i = 0; name && i < w->nmodel; i++)
		if (!strcmp(w->models[i].m.name, name))
			return &w->models[i];
	return NULL;
}

static struct fk_version *version_of(struct fk_model *m, int64_t version)
{
	size_t i;

	for (i = 0; m && i < m->nv; i++)
		if (m->v[i].v.version == version)
			return &m->v[i];
	return NULL;
}

/* ---- seeding ----------------------------------------------------------- */

static int seed_exp(struct fake_world *w, const char *id, const char *name, int deleted)
{
	struct fk_exp *e = &w->exps[w->nexp];

	snprintf(e->e.id, sizeof(e->e.id), "%s", id);
	e->e.name = strdup(name);
	if (asprintf(&e->e.artifact_location, "/nonexistent/mlflowfs-unit-fs/%s", id) < 0)
		e->e.artifact_location = NULL;
	e->e.deleted = deleted;
	e->e.creation_time = FAKE_T0 - 1000;
	e->e.last_update_time = FAKE_T0 - 500;
	w->nexp++;
	return e->e.name && e->e.artifact_location ? 0 : -ENOMEM;
}

static struct fk_run *seed_run(struct fake_world *w, const char *exp_id, const char *run_id,
			       const char *name, int64_t start, int deleted)
{
	struct fk_run *r = &w->runs[w->nrun++];

	snprintf(r->r.run_id, sizeof(r->r.run_id), "%s", run_id);
	snprintf(r->r.experiment_id, sizeof(r->r.experiment_id), "%s", exp_id);
	snprintf(r->r.status, sizeof(r->r.status), "RUNNING");
	r->r.name = strdup(name);
	r->r.user_id = strdup("alice");
	if (asprintf(&r->r.artifact_uri, "/nonexistent/mlflowfs-unit-fs/%s/%s/artifacts", exp_id,
		     run_id) < 0)
		r->r.artifact_uri = NULL;
	r->r.deleted = deleted;
	r->r.start_time = start;
	r->r.end_time = -1;
	r->r.last_change = start;
	if (!r->r.name || !r->r.user_id || !r->r.artifact_uri)
		return NULL;
	if (name[0] && kvs_set(&r->tags, "mlflow.runName", name))
		return NULL;
	return r;
}

static int seed_points(struct fk_run *r, const char *key, const double *values, size_t n,
		       int64_t ts0)
{
	struct fk_metric *m = metric_get(r, key);
	size_t i;
	int err = m ? 0 : -ENOMEM;

	for (i = 0; !err && i < n; i++)
		err = metric_add(m, values[i], (int64_t)i, ts0 + 10 * (int64_t)i);
	return err;
}

static int seed_version(struct fk_model *m, int64_t version, const char *run_id, const char *stage)
{
	struct fk_version *v = &m->v[m->nv++];

	v->v.model = strdup(m->m.name);
	v->v.version = version;
	v->v.description = strdup("");
	if (asprintf(&v->v.source, "runs:/%s/model", run_id) < 0)
		v->v.source = NULL;
	v->v.run_id = strdup(run_id);
	v->v.status = strdup("READY");
	v->v.stage = strdup(stage);
	v->v.storage_location = strdup("/nonexistent/mlflowfs-unit-fs/models");
	v->v.creation_time = FAKE_T0 + 1000 * version;
	v->v.last_updated_time = FAKE_T0 + 1000 * version;
	return v->v.model && v->v.description && v->v.source && v->v.run_id && v->v.status &&
			       v->v.stage && v->v.storage_location
		       ? kvs_set(&v->tags, "validated", version == 2 ? "yes" : "no")
		       : -ENOMEM;
}

static int seed(struct fake_world *w)
{
	static const double acc[] = { 0.5, 0.75 }, loss[] = { 0.9, 0.5, 0.25 }, tacc[] = { 0.6 },
			    tloss[] = { 1.5, 1.25 }, bloss[] = { 0.8 };
	struct fk_run *a, *b, *c, *d, *e;
	struct fk_model *m;
	int err = 0;

	err = seed_exp(w, "0", "Default", 0);
	err = err ? err : seed_exp(w, "1", "vision", 0);
	err = err ? err : seed_exp(w, "2", "nlp", 0);
	err = err ? err : seed_exp(w, "3", "gone", 1);
	w->next_exp_id = 4;
	err = err ? err : kvs_set(&w->exps[1].tags, "mlflow.note.content", "about vision");
	err = err ? err : kvs_set(&w->exps[1].tags, "team", "cv");
	if (err)
		return err;

	a = seed_run(w, "1", FAKE_RUN_A, "baseline", FAKE_T0, 0);
	b = seed_run(w, "1", FAKE_RUN_B, "baseline", FAKE_T0 + 100, 0);
	c = seed_run(w, "1", FAKE_RUN_C, "", FAKE_T0 + 200, 0);
	d = seed_run(w, "1", FAKE_RUN_D, "old", FAKE_T0 + 300, 1);
	e = seed_run(w, "2", FAKE_RUN_E, "bert", FAKE_T0 + 400, 0);
	if (!a || !b || !c || !d || !e)
		return -ENOMEM;
	err = kvs_set(&a->params, "epochs", "10");
	err = err ? err : kvs_set(&a->params, "lr", "0.01");
	err = err ? err : kvs_set(&a->params, "opt/name", "adam");
	err = err ? err : kvs_set(&a->tags, "mlflow.user", "alice");
	err = err ? err : kvs_set(&a->tags, "owner", "alice");
	err = err ? err : kvs_set(&a->tags, "team/lead", "bob");
	err = err ? err : seed_points(a, "acc", acc, 2, FAKE_T0 + 10);
	err = err ? err : seed_points(a, "loss", loss, 3, FAKE_T0 + 10);
	err = err ? err : seed_points(a, "train/acc", tacc, 1, FAKE_T0 + 15);
	err = err ? err : seed_points(a, "train/loss", tloss, 2, FAKE_T0 + 15);
	err = err ? err : kvs_set(&b->params, "lr", "0.1");
	err = err ? err : seed_points(b, "loss", bloss, 1, FAKE_T0 + 110);
	err = err ? err : kvs_set(&e->params, "model", "bert");
	if (err)
		return err;
	a->r.last_change = run_last_change(a);
	b->r.last_change = run_last_change(b);

	m = &w->models[w->nmodel++];
	m->m.name = strdup("resnet");
	m->m.description = strdup("image model");
	m->m.creation_time = FAKE_T0;
	m->m.last_updated_time = FAKE_T0 + 2000;
	if (!m->m.name || !m->m.description)
		return -ENOMEM;
	err = kvs_set(&m->tags, "framework", "torch");
	err = err ? err : seed_version(m, 1, FAKE_RUN_A, "None");
	err = err ? err : seed_version(m, 2, FAKE_RUN_B, "Production");
	if (err)
		return err;
	m->aliases[0].alias = strdup("champion");
	m->aliases[0].version = 2;
	m->na = 1;
	return m->aliases[0].alias ? 0 : -ENOMEM;
}

static void world_free(struct fake_world *w)
{
	size_t i, j;

	for (i = 0; i < w->nexp; i++) {
		store_experiment_release(&w->exps[i].e);
		kvs_free(&w->exps[i].tags);
	}
	for (i = 0; i < w->nrun; i++) {
		struct fk_run *r = &w->runs[i];

		store_run_release(&r->r);
		kvs_free(&r->params);
		kvs_free(&r->tags);
		for (j = 0; j < r->nm; j++) {
			free(r->m[j].key);
			free(r->m[j].p);
		}
		free(r->m);
	}
	for (i = 0; i < w->nmodel; i++) {
		struct fk_model *m = &w->models[i];

		store_model_release(&m->m);
		kvs_free(&m->tags);
		for (j = 0; j < m->nv; j++) {
			store_version_release(&m->v[j].v);
			kvs_free(&m->v[j].tags);
		}
		for (j = 0; j < m->na; j++)
			free(m->aliases[j].alias);
	}
	for (i = 0; i < w->nreserv; i++)
		free(w->reserv[i].key);
	free(w);
}

/* ---- the store, its batches -------------------------------------------- */

struct fake_store *fake_store_new(void)
{
	struct fake_store *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->base.ops = &fake_ops;
	pthread_mutex_init(&f->lock, NULL);
	f->w = calloc(1, sizeof(*f->w));
	if (!f->w || seed(f->w)) {
		if (f->w)
			world_free(f->w);
		pthread_mutex_destroy(&f->lock);
		free(f);
		return NULL;
	}
	return f;
}

static void fake_close(struct store *s)
{
	struct fake_store *f = to_fake(s);
	struct fake_batch *b;

	enter(f, FAKE_close);
	while ((b = f->w->live)) {
		fprintf(stderr, "fake store: batch %u was never freed\n", b->seq);
		f->w->live = b->next;
		free(b);
	}
	world_free(f->w);
	free(f->logged_key);
	free(f->logged);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

static int fake_describe(struct store *s, struct buf *out)
{
	struct fake_store *f = to_fake(s);
	int err = enter(f, FAKE_describe);

	return err ? err : buf_addf(out, "store: fake\ncalls: %lu\n", f->total);
}

static const char *fake_artifact_root(const struct store *s)
{
	/* Counting changes the counters only, not what the store answers. */
	enter((struct fake_store *)to_fake(s), FAKE_artifact_root);
	return NULL; /* this store keeps no artifacts of its own */
}

static int fake_others_version(struct store *s, uint64_t *v)
{
	struct fake_store *f = to_fake(s);
	int err = enter(f, FAKE_others_version);

	pthread_mutex_lock(&f->lock);
	*v = f->others_version; /* 0: nobody else writes to this world */
	pthread_mutex_unlock(&f->lock);
	return err;
}

void fake_store_set_others_version(struct fake_store *f, uint64_t v)
{
	pthread_mutex_lock(&f->lock);
	f->others_version = v;
	pthread_mutex_unlock(&f->lock);
}

void fake_store_fail(struct fake_store *f, enum fake_op op, int err)
{
	pthread_mutex_lock(&f->lock);
	f->fail[op] = err;
	pthread_mutex_unlock(&f->lock);
}

unsigned fake_store_batches_made(struct fake_store *f)
{
	unsigned n;

	pthread_mutex_lock(&f->lock);
	n = f->batches_made;
	pthread_mutex_unlock(&f->lock);
	return n;
}

unsigned fake_store_live_batches(struct fake_store *f)
{
	struct fake_batch *b;
	unsigned n = 0;

	pthread_mutex_lock(&f->lock);
	for (b = f->w->live; b; b = b->next)
		n++;
	pthread_mutex_unlock(&f->lock);
	return n;
}

static struct store_batch *fake_batch_new(struct store *s)
{
	struct fake_store *f = to_fake(s);
	struct fake_batch *b;

	if (enter(f, FAKE_batch_new))
		return NULL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->base.owner = &fake_ops;
	pthread_mutex_lock(&f->lock);
	b->seq = ++f->batches_made;
	b->next = f->w->live;
	f->w->live = b;
	pthread_mutex_unlock(&f->lock);
	return &b->base;
}

/* The live batch behind b, or NULL (a violation) when b is not one of ours. */
static struct fake_batch *batch_check(struct fake_store *f, struct store_batch *b, const char *op)
{
	struct fake_batch *fb = NULL, *it;

	if (b && b->owner == &fake_ops) {
		pthread_mutex_lock(&f->lock);
		for (it = f->w->live; it && it != (struct fake_batch *)b; it = it->next)
			;
		fb = it;
		pthread_mutex_unlock(&f->lock);
	}
	if (!fb)
		violation(f, "%s got a batch this store did not make, or freed already", op);
	return fb;
}

static int fake_batch_commit(struct store *s, struct store_batch *b, int durable)
{
	struct fake_store *f = to_fake(s);
	struct fake_batch *fb;
	int err = enter(f, FAKE_batch_commit), failed;

	(void)durable;
	if (err)
		return err;
	fb = batch_check(f, b, "batch_commit");
	if (!fb)
		return -EINVAL;
	pthread_mutex_lock(&f->lock);
	failed = fb->writes && fb->seq == f->fail_batch;
	fb->writes = 0; /* a failure is reported once, then forgotten */
	pthread_mutex_unlock(&f->lock);
	return failed ? refuse(-EIO, "fake store: batch %u cannot be made safe", fb->seq) : 0;
}

static void fake_batch_free(struct store *s, struct store_batch *b)
{
	struct fake_store *f = to_fake(s);
	struct fake_batch **pp, *found;

	enter(f, FAKE_batch_free);
	pthread_mutex_lock(&f->lock);
	for (pp = &f->w->live; *pp && *pp != (struct fake_batch *)b; pp = &(*pp)->next)
		;
	found = *pp;
	if (found)
		*pp = found->next;
	pthread_mutex_unlock(&f->lock);
	/* Not ours, or freed already: touching it could be a use after free. */
	if (!found) {
		violation(f, "batch_free got %s", b ? "a batch that is not live" : "NULL");
		return;
	}
	free(found);
}

/*
 * The start of every write: counts it, checks its batch, takes the lock.
 * Returns 0 with the lock held, or the error to answer (lock not held).
 */
static int write_enter(struct fake_store *f, enum fake_op op, struct store_batch *b,
		       struct fake_batch **fb)
{
	int err = enter(f, op);

	if (err)
		return err;
	*fb = batch_check(f, b, fake_op_name(op));
	if (!*fb)
		return -EINVAL;
	pthread_mutex_lock(&f->lock);
	return 0;
}

/* The end of a write: an accepted one is in its batch. */
static int write_leave(struct fake_store *f, struct fake_batch *fb, int err)
{
	if (!err)
		fb->writes++;
	pthread_mutex_unlock(&f->lock);
	return err;
}

/* ---- experiments ------------------------------------------------------- */

static int fake_list_experiments(struct store *s, store_experiment_cb *cb, void *ctx)
{
	struct fake_store *f = to_fake(s);
	struct store_experiment copy[EXP_MAX];
	size_t i, n = 0;
	int err = enter(f, FAKE_list_experiments);

	if (err)
		return err;
	pthread_mutex_lock(&f->lock);
	for (i = 0; !err && i < f->w->nexp; i++)
		if (!f->w->exps[i].e.deleted &&
		    !(err = store_experiment_copy(&copy[n], &f->w->exps[i].e)))
			n++;
	pthread_mutex_unlock(&f->lock);
	for (i = 0; !err && i < n; i++)
		err = cb(ctx, &copy[i]);
	for (i = 0; i < n; i++)
		store_experiment_release(&copy[i]);
	return err;
}

static int fake_get_experiment(struct store *s, const char *name, struct store_experiment *out)
{
	struct fake_store *f = to_fake(s);
	struct fk_exp *e;
	int err = enter(f, FAKE_get_experiment);

	if (err)
		return err;
	pthread_mutex_lock(&f->lock);
	e = exp_by_name(f->w, name, 1);
	err = e ? store_experiment_copy(out, &e->e)
		: refuse(-ENOENT, "no active experiment named '%s'", name);
	pthread_mutex_unlock(&f->lock);
	if (!err || err == -ENOENT)
		in_flight(f, FAKE_get_experiment);
	return err;
}

static int fake_get_experiment_by_id(struct store *s, const char *id, struct store_experiment *out)
{
	struct fake_store *f = to_fake(s);
	struct fk_exp *e;
	int err = enter(f, FAKE_get_experiment_by_id);

	if (err)
		return err;
	pthread_mutex_lock(&f->lock);
	e = exp_by_id(f->w, id);
	err = e ? store_experiment_copy(out, &e->e) : refuse(-ENOENT, "no experiment '%s'", id);
	pthread_mutex_unlock(&f->lock);
	if (!err || err == -ENOENT)
		in_flight(f, FAKE_get_experiment_by_id);
	return err;
}

static int fake_create_experiment(struct store *s, struct store_batch *b, const char *name,
				  struct store_experiment *out)
{
	struct fake_store *f = to_fake(s);
	struct fake_batch *fb;
	struct fk_exp *e;
	char id[16];
	int err = write_enter(f, FAKE_create_experiment, b, &fb);

	if (err)
		return err;
	if (exp_by_name(f->w, name, 0)) {
		err = refuse(-EEXIST, "experiment '%s' exists", name);
		goto out;
	}
	if (f->w->nexp == EXP_MAX) {
		err = refuse(-ENOSPC, "the fake store is full");
		goto out;
	}
	snprintf(id, sizeof(id), "%u", f->w->next_exp_id++);
	err = seed_exp(f->w, id, name, 0);
	e = &f->w->exps[f->w->nexp - 1];
	e->e.creation_time = e->e.last_update_time = now_ms();
	if (!err && out)
		err = store_experiment_copy(out, &e->e);
out:
	return write_leave(f, fb, err);
}

static int fake_rename_experiment(struct store *s, struct store_batch *b, const char *id,
				  const char *new_name)
{
	struct fake_store *f = to_fake(s);
	struct fake_batch *fb;
	struct fk_exp *e, *other;
	char *name = NULL;
	int err = write_enter(f, FAKE_rename_experiment, b, &fb);

	if (err)
		return err;
	e = exp_by_id(f->w, id);
	other = exp_by_name(f->w, new_name, 0);
	if (!e || e->e.deleted)
		err = refuse(-ENOENT, "no active experiment '%s'", id);
	else if (other && other != e)
		err = refuse(-EEXIST, "experiment '%s' exists", new_name);
	else
		err = (name = strdup(new_name)) ? 0 : -ENOMEM;
	if (name) {
		free(e->e.name);
		e->e.name = name;
		e->e.last_update_time = now_ms();
	}
	return write_leave(f, fb, err);
}

static int fake_delete_experiment(struct store *s, struct store_batch *b, const char *id)
{
	struct fake_store *f = to_fake(s);
	struct fk_run *runs[RUN_MAX];
	struct fake_batch *fb;
	struct fk_exp *e;
	int err = write_enter(f, FAKE_delete_experiment, b, &fb);

	if (err)
		return err;
	e = exp_by_id(f->w, id);
	if (!e || e->e.deleted)
		err = refuse(-ENOENT, "no active experiment '%s'", id);
	else if (runs_of(f->w, id, runs))
		err = refuse(-ENOTEMPTY, "experiment '%s' has active runs", e->e.name);
	else
		e->e.deleted = 1;
	return write_leave(f, fb, err);
}

/* ---- runs -------------------------------------------------------------- */

static int fake_list_runs(struct store *s, const char *experiment_id, store_run_cb *cb, void *ctx)
{
	struct fake_store *f = to_fake(s);
	struct store_run copy[RUN_MAX];
	struct store_snapshot *snaps[RUN_MAX] = { 0 };
	struct fk_run *runs[RUN_MAX];
	size_t i, n, done = 0;
	int err = enter(f, FAKE_list_runs);

	if (err)
		return err;
	pthread_mutex_lock(&f->lock);
	n = runs_of(f->w, experiment_id, runs);
	for (; !err && done < n; done++) {
		err = run_out(f->w, runs[done], &copy[done]);
		if (!err && f->whole_runs) {
			snaps[done] = store_snapshot_new();
			if (!snaps[done] || run_out(f->w, runs[done], &snaps[done]->run) ||
			    !(snaps[done]->params = kvs_export(&runs[done]->params)) ||
			    !(snaps[done]->metrics = metrics_export(runs[done])) ||
			    !(snaps[done]->tags = kvs_export(&runs[done]->tags)))
				err = -ENOMEM;
			else
				snaps[done]->have = SNAP_ALL;
		}
	}
	if (err)
		done--;
	pthread_mutex_unlock(&f->lock);
	for (i = 0; i < done; i++) {
		drop_folder(f, &copy[i]);
		if (snaps[i])
			drop_folder(f, &snaps[i]->run);
		copy[i].snap = snaps[i];
	}
	if (!err)
		in_flight(f, FAKE_list_runs);
	for (i = 0; !err && i < done; i++)
		err = cb(ctx, &copy[i]);
	for (i = 0; i < done; i++)
		store_run_release(&copy[i]);
	for (i = 0; i < n && i < RUN_MAX; i++)
		store_snapshot_put(snaps[i]);
	return err;
}

static int fake_find_run(struct store *s, const char *experiment_id, const char *folder,
			 struct store_run *out)
{
	struct fake_store *f = to_fake(s);
	struct fk_run *runs[RUN_MAX], *hit = NULL;
	size_t i, n;
	int err = enter(f, FAKE_find_run);

	if (err)
		return err;
	pthread_mutex_lock(&f->lock);
	n = runs_of(f->w, experiment_id, runs);
	for (i = 0; i < n && !hit; i++) {
		char *name = folder_of(f->w, runs[i]);

		if (name && !strcmp(name, folder))
			hit = runs[i];
		free(name);
	}
	for (i = 0; i < n && !hit; i++)
		if (!strcmp(runs[i]->r.run_id, folder))
			hit = runs[i];
	err = hit ? run_out(f->w, hit, out)
		  : refuse(-ENOENT, "no run '%s' in experiment '%s'", folder, experiment_id);
	pthread_mutex_unlock(&f->lock);
	if (!err)
		drop_folder(f, out);
	return err;
}

static int fake_get_run(struct store *s, const char *run_id, struct store_run *out)
{
	struct fake_store *f = to_fake(s);
	struct fk_run *r;
	int err = enter(f, FAKE_get_run);

	if (err)
		return err;
	pthread_mutex_lock(&f->lock);
	r = run_by_id(f->w, run_id);
	err = r ? run_out(f->w, r, out) : refuse(-ENOENT, "no run '%s'", run_id);
	pthread_mutex_unlock(&f->lock);
	if (!err) {
		drop_folder(f, out);
		in_flight(f, FAKE_get_run);
	}
	return err;
}

static int fake_create_run(struct store *s, struct store_batch *b, const char *experiment_id,
			   const char *name, const char *user, struct store_run *out)
{
	struct fake_store *f = to_fake(s);
	struct fake_batch *fb;
	struct fk_exp *e;
	struct fk_run *r;
	char id[STORE_RUN_ID_MAX];
	int err = write_enter(f, FAKE_create_run, b, &fb);

	if (err)
		return err;
	e = exp_by_id(f->w, experiment_id);
	if (!e || e->e.deleted) {
		err = refuse(-ENOENT, "no active experiment '%s'", experiment_id);
		goto out;
	}
	if (f->w->nrun == RUN_MAX) {
		err = refuse(-ENOSPC, "the fake store is full");
		goto out;
	}
	snprintf(id, sizeof(id), "%032x", ++f->w->next_run_id);
	if (f->create_id[0]) {
		snprintf(id, sizeof(id), "%s", f->create_id);
		f->create_id[0] = '\0';
	}
	r = seed_run(f->w, experiment_id, id, name, now_ms(), 0);
	if (r) {
		free(r->r.user_id);
		r->r.user_id = strdup(user);
	}
	err = r && r->r.user_id ? kvs_set(&r->tags, "mlflow.user", user) : -ENOMEM;
	if (!err)
		err = run_out(f->w, r, out);
	if (!err)
		drop_folder(f, out);
out:
	return write_leave(f, fb, err);
}

static struct fk_run *active_run(struct fake_world *w, const char *run_id, int *err)
{
	struct fk_run *r = run_by_id(w, run_id);

	if (!r || r->r.deleted) {
		*err = refuse(-ENOENT, "no active run '%s'", run_id);
		return NULL;
	}
	return r;
}

static int fake_rename_run(struct store *s, struct store_batch *b, const char *run_id,
			   const char *new_name)
{
	struct fake_store *f = to_fake(s);
	struct fake_batch *fb;
	struct fk_run *r;
	char *name = NULL;
	int err = write_enter(f, FAKE_rename_run, b, &fb);

	if (err)
		return err;
	r = active_run(f->w, run_id, &err);
	if (r)
		name = strdup(new_name);
	if (r && !name) {
		err = -ENOMEM;
	} else if (r) {
		free(r->r.name);
		r->r.name = name;
		err = kvs_set(&r->tags, "mlflow.runName", new_name);
	}
	return write_leave(f, fb, err);
}

static int fake_delete_run(struct store *s, struct store_batch *b, const char *run_id)
{
	struct fake_store *f = to_fake(s);
	struct fake_batch *fb;
	struct fk_run *r;
	int err = write_enter(f, FAKE_delete_run, b, &fb);

	if (err)
		return err;
	r = active_run(f->w, run_id, &err);
	if (r)
		r->r.deleted = 1;
	return write_leave(f, fb, err);
}

static int fake_set_status(struct store *s, struct store_batch *b, const char *run_id,
			   const char *status)
{
	static const char *const terminal[] = { "FINISHED", "FAILED", "KILLED" };
	struct fake_store *f = to_fake(s);
	struct fake_batch *fb;
	struct fk_run *r;
	size_t i;
	int err = write_enter(f, FAKE_set_status, b, &fb);

	if (err)
		return err;
	r = active_run(f->w, run_id, &err);
	if (r && strcmp(status, "RUNNING") && strcmp(status, "SCHEDULED") &&
	    strcmp(status, "FINISHED") && strcmp(status, "FAILED") && strcmp(status, "KILLED"))
		err = refuse(-EINVAL, "'%s' is not a status", status);
	else if (r) {
		snprintf(r->r.status, sizeof(r->r.status), "%s", status);
		for (i = 0; i < 3; i++)
			if (!strcmp(status, terminal[i]))
				r->r.end_time = now_ms();
		r->r.last_change = run_changed_at(f, r);
	}
	return write_leave(f, fb, err);
}

/* What phantom_runs makes of a run id the world does not hold. */
static int phantom_snapshot(struct store_snapshot *snap, const char *run_id, unsigned want)
{
	struct store_run *r = &snap->run;

	snprintf(r->run_id, sizeof(r->run_id), "%s", run_id);
	snprintf(r->experiment_id, sizeof(r->experiment_id), "0");
	snprintf(r->status, sizeof(r->status), "FINISHED");
	r->name = strdup("");
	r->user_id = strdup("alice");
	r->artifact_uri = strdup("");
	r->start_time = r->end_time = r->last_change = FAKE_T0;
	if (!r->name || !r->user_id || !r->artifact_uri)
		return -ENOMEM;
	if ((want & SNAP_PARAMS) && !(snap->params = store_kvs_new(0)))
		return -ENOMEM;
	if ((want & SNAP_METRICS) && !(snap->metrics = store_kvs_new(0)))
		return -ENOMEM;
	if ((want & SNAP_TAGS) && !(snap->tags = store_kvs_new(0)))
		return -ENOMEM;
	snap->have = want & SNAP_ALL;
	return 0;
}

static int fake_get_snapshot(struct store *s, const char *run_id, unsigned want,
			     struct store_snapshot **out)
{
	struct fake_store *f = to_fake(s);
	struct store_snapshot *snap;
	struct fk_run *r;
	int err = enter(f, FAKE_get_snapshot);

	if (err)
		return err;
	if (!(want & SNAP_ALL) || (want & ~(unsigned)(SNAP_ALL | SNAP_RUN_KNOWN)))
		violation(f, "get_snapshot asked for sections 0x%x", want);
	snap = store_snapshot_new();
	if (!snap)
		return -ENOMEM;
	pthread_mutex_lock(&f->lock);
	r = run_by_id(f->w, run_id);
	if (!r && f->phantom_runs) {
		err = phantom_snapshot(snap, run_id, want);
		goto out;
	}
	if (!r) {
		err = refuse(-ENOENT, "no run '%s'", run_id);
		goto out;
	}
	/* As a backend may: the caller has the run's info, it stays empty. */
	if (!(want & SNAP_RUN_KNOWN)) {
		err = run_out(f->w, r, &snap->run);
		if (!err)
			drop_folder(f, &snap->run);
	}
	if (!err && (want & SNAP_PARAMS) && !(snap->params = kvs_export(&r->params)))
		err = -ENOMEM;
	if (!err && (want & SNAP_METRICS) && !(snap->metrics = metrics_export(r)))
		err = -ENOMEM;
	if (!err && (want & SNAP_TAGS) && !(snap->tags = kvs_export(&r->tags)))
		err = -ENOMEM;
	snap->have = want & SNAP_ALL;
out:
	pthread_mutex_unlock(&f->lock);
	if (err) {
		store_snapshot_put(snap);
		return err;
	}
	in_flight(f, FAKE_get_snapshot);
	*out = snap;
	return 0;
}

/* ---- keys -------------------------------------------------------------- */

/* The keys of a section other than metrics; NULL with *err when its owner
 * is missing. */
static struct fk_kvs *section_of(struct fake_store *f, enum store_section sec,
				 const struct store_ref *ref, int *err)
{
	struct fake_world *w = f->w;
	struct fk_run *r;
	struct fk_exp *e;
	struct fk_version *v;
	struct fk_model *m;

	if (!ref) {
		*err = -EINVAL;
		return NULL;
	}
	*err = 0;
	switch (sec) {
	case SEC_PARAMS:
	case SEC_RUN_TAGS:
		r = ref->run_id ? run_by_id(w, ref->run_id) : NULL;
		if (r)
			return sec == SEC_PARAMS ? &r->params : &r->tags;
		*err = refuse(-ENOENT, "no run '%s'", ref->run_id ? ref->run_id : "(null)");
		return NULL;
	case SEC_EXP_TAGS:
		e = ref->experiment_id ? exp_by_id(w, ref->experiment_id) : NULL;
		if (e)
			return &e->tags;
		*err = refuse(-ENOENT, "no experiment '%s'",
			      ref->experiment_id ? ref->experiment_id : "(null)");
		return NULL;
	case SEC_MODEL_TAGS:
		m = model_by_name(w, ref->model);
		if (m)
			return &m->tags;
		*err = refuse(-ENOENT, "no model '%s'", ref->model ? ref->model : "(null)");
		return NULL;
	case SEC_VERSION_TAGS:
		v = version_of(model_by_name(w, ref->model), ref->version);
		if (v)
			return &v->tags;
		*err = refuse(-ENOENT, "no version %" PRId64 " of '%s'", ref->version,
			      ref->model ? ref->model : "(null)");
		return NULL;
	default:
		*err = -EINVAL;
		return NULL;
	}
}

static int fake_list_kv(struct store *s, enum store_section sec, const struct store_ref *ref,
			const char *prefix, store_kv_cb *cb, void *ctx)
{
	struct fake_store *f = to_fake(s);
	struct store_kvs *copy = NULL;
	struct fk_kvs *kvs;
	size_t i, plen = prefix ? strlen(prefix) : 0;
	int err = enter(f, FAKE_list_kv);

	if (err)
		return err;
	pthread_mutex_lock(&f->lock);
	if (sec == SEC_METRICS) {
		struct fk_run *r = ref && ref->run_id ? run_by_id(f->w, ref->run_id) : NULL;

		copy = r ? metrics_export(r) : NULL;
		err = r ? (copy ? 0 : -ENOMEM) : refuse(-ENOENT, "no such run");
	} else if ((kvs = section_of(f, sec, ref, &err))) {
		copy = kvs_export(kvs);
		err = copy ? 0 : -ENOMEM;
	}
	pthread_mutex_unlock(&f->lock);
	if (err == -EINVAL)
		violation(f, "list_kv of section %d without its ref", (int)sec);
	for (i = 0; !err && copy && i < copy->n; i++)
		if (!prefix || !strncmp(copy->v[i].key, prefix, plen))
			err = cb(ctx, &copy->v[i]);
	store_kvs_put(copy);
	return err;
}

static int fake_get_kv(struct store *s, enum store_section sec, const struct store_ref *ref,
		       const char *key, struct store_kv *out)
{
	struct fake_store *f = to_fake(s);
	struct fk_kvs *kvs;
	struct fk_kv *kv;
	int err = enter(f, FAKE_get_kv);

	if (err)
		return err;
	pthread_mutex_lock(&f->lock);
	if (sec == SEC_METRICS) {
		struct fk_run *r = ref && ref->run_id ? run_by_id(f->w, ref->run_id) : NULL;
		struct fk_metric *m = r ? metric_find(r, key) : NULL;
		const struct fk_point *p = m ? metric_latest(m) : NULL;

		if (p) {
			out->key = strdup(key);
			out->num = p->value;
			out->step = p->step;
			out->timestamp = p->ts;
			err = out->key ? 0 : -ENOMEM;
		} else {
			err = refuse(-ENOENT, "no metric '%s'", key);
		}
	} else if ((kvs = section_of(f, sec, ref, &err))) {
		kv = kvs_find(kvs, key);
		if (kv) {
			out->key = strdup(kv->key);
			out->value = strdup(kv->value);
			err = out->key && out->value ? 0 : -ENOMEM;
			if (err)
				store_kv_release(out);
		} else {
			err = refuse(-ENOENT, "no key '%s'", key);
		}
	}
	pthread_mutex_unlock(&f->lock);
	if (err == -EINVAL)
		violation(f, "get_kv of section %d without its ref", (int)sec);
	return err;
}

static int fake_log_param(struct store *s, struct store_batch *b, const char *run_id,
			  const char *key, const char *value)
{
	struct fake_store *f = to_fake(s);
	struct fake_batch *fb;
	struct fk_run *r;
	struct fk_kv *kv;
	int err = write_enter(f, FAKE_log_param, b, &fb);

	if (err)
		return err;
	r = active_run(f->w, run_id, &err);
	kv = r ? kvs_find(&r->params, key) : NULL;
	if (kv && strcmp(kv->value, value))
		err = refuse(-EPERM, "param '%s' was logged with value '%s'", key, kv->value);
	else if (r && !kv)
		err = kvs_set(&r->params, key, value);
	return write_leave(f, fb, err);
}

/* The tags of a run or an experiment, the sections a tag write may name. */
static struct fk_kvs *tag_section(struct fake_store *f, enum store_section sec,
				  const struct store_ref *ref, int *err)
{
	if (sec != SEC_RUN_TAGS && sec != SEC_EXP_TAGS) {
		*err = refuse(-EROFS, "the fake registry is read-only");
		return NULL;
	}
	return section_of(f, sec, ref, err);
}

/* sync_run_name: the run's name follows its mlflow.runName tag. */
static int run_rename(struct fk_run *r, const char *name)
{
	char *copy = strdup(name);

	if (!copy)
		return -ENOMEM;
	free(r->r.name);
	r->r.name = copy;
	return 0;
}

static int fake_set_tag(struct store *s, struct store_batch *b, enum store_section sec,
			const struct store_ref *ref, const char *key, const char *value)
{
	struct fake_store *f = to_fake(s);
	struct fake_batch *fb;
	struct fk_kvs *kvs;
	int err = write_enter(f, FAKE_set_tag, b, &fb);

	if (err)
		return err;
	kvs = tag_section(f, sec, ref, &err);
	if (kvs)
		err = kvs_set(kvs, key, value);
	if (!err && f->sync_run_name && sec == SEC_RUN_TAGS && !strcmp(key, "mlflow.runName"))
		err = run_rename(run_by_id(f->w, ref->run_id), value);
	return write_leave(f, fb, err);
}

static int fake_delete_tag(struct store *s, struct store_batch *b, enum store_section sec,
			   const struct store_ref *ref, const char *key)
{
	struct fake_store *f = to_fake(s);
	struct fake_batch *fb;
	struct fk_kvs *kvs;
	int err = write_enter(f, FAKE_delete_tag, b, &fb);

	if (err)
		return err;
	kvs = tag_section(f, sec, ref, &err);
	if (kvs && kvs_del(kvs, key))
		err = refuse(-ENOENT, "no tag '%s'", key);
	return write_leave(f, fb, err);
}

static int fake_rename_tag(struct store *s, struct store_batch *b, enum store_section sec,
			   const struct store_ref *ref, const char *from, const char *to)
{
	struct fake_store *f = to_fake(s);
	struct fake_batch *fb;
	struct fk_kvs *kvs;
	struct fk_kv *kv;
	char *value = NULL;
	int err = write_enter(f, FAKE_rename_tag, b, &fb);

	if (err)
		return err;
	kvs = tag_section(f, sec, ref, &err);
	kv = kvs ? kvs_find(kvs, from) : NULL;
	if (kvs && !kv)
		err = refuse(-ENOENT, "no tag '%s'", from);
	else if (kv && strcmp(from, to) && !(value = strdup(kv->value)))
		err = -ENOMEM;
	else if (value && !(err = kvs_set(kvs, to, value)))
		kvs_del(kvs, from);
	free(value);
	return write_leave(f, fb, err);
}

/* ---- metrics ----------------------------------------------------------- */

static int fake_next_step(struct store *s, const char *run_id, const char *key, int64_t *next)
{
	struct fake_store *f = to_fake(s);
	struct fk_run *r;
	int err = enter(f, FAKE_next_step);

	if (err)
		return err;
	pthread_mutex_lock(&f->lock);
	r = run_by_id(f->w, run_id);
	*next = metric_next(r ? metric_find(r, key) : NULL);
	pthread_mutex_unlock(&f->lock);
	if (!r)
		return refuse(-ENOENT, "no run '%s'", run_id);
	in_flight(f, FAKE_next_step);
	return 0;
}

static struct fk_reserv *reserv_get(struct fake_world *w, const char *run_id, const char *key)
{
	struct fk_reserv *e;
	size_t i;

	for (i = 0; i < w->nreserv; i++)
		if (!strcmp(w->reserv[i].run_id, run_id) && !strcmp(w->reserv[i].key, key))
			return &w->reserv[i];
	if (w->nreserv == RESERV_MAX)
		return NULL;
	e = &w->reserv[w->nreserv];
	e->key = strdup(key);
	if (!e->key)
		return NULL;
	snprintf(e->run_id, sizeof(e->run_id), "%s", run_id);
	e->next = INT64_MIN;
	w->nreserv++;
	return e;
}

/* As the cache does: one more than the highest step logged or handed out,
 * at least floor, 0 for a metric's first point. */
static int fake_reserve_steps(struct store *s, const char *run_id, const char *key, int64_t floor,
			      size_t n, int64_t *first)
{
	struct fake_store *f = to_fake(s);
	struct fk_reserv *e;
	struct fk_run *r;
	int64_t next;
	int err = enter(f, FAKE_reserve_steps);

	if (err)
		return err;
	if (!n)
		violation(f, "reserve_steps of no step");
	pthread_mutex_lock(&f->lock);
	f->reserve_floor = floor;
	f->reserve_n = n;
	r = active_run(f->w, run_id, &err);
	e = r ? reserv_get(f->w, run_id, key) : NULL;
	if (r && !e)
		err = -ENOMEM;
	if (e) {
		next = metric_next(metric_find(r, key));
		if (e->next > next)
			next = e->next;
		*first = next > floor ? next : floor;
		if (*first == INT64_MIN)
			*first = 0;
		e->next = *first > INT64_MAX - (int64_t)n ? INT64_MAX : *first + (int64_t)n;
	}
	pthread_mutex_unlock(&f->lock);
	return err;
}

static int fake_log_metrics(struct store *s, struct store_batch *b, const char *run_id,
			    const char *key, const struct metric_point *pts, size_t n)
{
	struct fake_store *f = to_fake(s);
	struct metric_point *copy;
	struct fake_batch *fb;
	struct fk_metric *m;
	struct fk_run *r;
	size_t i;
	int err;

	for (i = 0; i < n; i++)
		if (!pts[i].has_step || !pts[i].has_timestamp)
			violation(f, "log_metrics got point %zu of '%s' without its %s", i, key,
				  pts[i].has_step ? "timestamp" : "step");
	err = write_enter(f, FAKE_log_metrics, b, &fb);
	if (err)
		return err;
	copy = malloc((n ? n : 1) * sizeof(*copy));
	free(f->logged_key);
	f->logged_key = strdup(key);
	free(f->logged);
	f->logged = copy;
	f->nlogged = copy ? n : 0;
	if (copy)
		memcpy(copy, pts, n * sizeof(*copy));
	r = active_run(f->w, run_id, &err);
	m = r ? metric_get(r, key) : NULL;
	if (r && !m)
		err = -ENOMEM;
	for (i = 0; m && !err && i < n; i++)
		err = metric_add(m, pts[i].value, pts[i].step, pts[i].timestamp);
	if (r)
		r->r.last_change = run_changed_at(f, r);
	return write_leave(f, fb, err);
}

static int fake_metric_history(struct store *s, const char *run_id, const char *key,
			       store_point_cb *cb, void *ctx)
{
	struct fake_store *f = to_fake(s);
	struct fk_point *copy = NULL;
	struct fk_metric *m;
	struct fk_run *r;
	size_t i, n = 0;
	int err = enter(f, FAKE_metric_history);

	if (err)
		return err;
	pthread_mutex_lock(&f->lock);
	r = run_by_id(f->w, run_id);
	m = r ? metric_find(r, key) : NULL;
	if (m && m->n) {
		copy = malloc(m->n * sizeof(*copy));
		if (copy) {
			memcpy(copy, m->p, m->n * sizeof(*copy));
			n = m->n;
		} else {
			err = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&f->lock);
	if (!r)
		err = refuse(-ENOENT, "no run '%s'", run_id);
	if (n)
		qsort(copy, n, sizeof(*copy), point_cmp);
	for (i = 0; !err && i < n; i++)
		err = cb(ctx, copy[i].value, copy[i].step, copy[i].ts);
	free(copy);
	return err;
}

static int fake_history_stat(struct store *s, const char *run_id, const char *key,
			     struct store_history_stat *out)
{
	struct fake_store *f = to_fake(s);
	char line[METRIC_HISTORY_LINE_MAX];
	struct fk_metric *m;
	struct fk_run *r;
	size_t i;
	int err = enter(f, FAKE_history_stat);

	if (err)
		return err;
	pthread_mutex_lock(&f->lock);
	r = run_by_id(f->w, run_id);
	m = r ? metric_find(r, key) : NULL;
	for (i = 0; m && i < m->n; i++) {
		out->points++;
		out->bytes += metric_history_line(line, m->p[i].value, m->p[i].step, m->p[i].ts);
	}
	pthread_mutex_unlock(&f->lock);
	return r ? 0 : refuse(-ENOENT, "no run '%s'", run_id);
}

/* ---- the registry ------------------------------------------------------ */

static int model_copy(struct store_model *dst, const struct store_model *src)
{
	*dst = *src;
	dst->name = strdup(src->name);
	dst->description = strdup(src->description);
	if (dst->name && dst->description)
		return 0;
	store_model_release(dst);
	return -ENOMEM;
}

static int version_copy(struct store_version *dst, const struct store_version *src)
{
	*dst = *src;
	dst->model = strdup(src->model);
	dst->description = strdup(src->description);
	dst->source = strdup(src->source);
	dst->run_id = strdup(src->run_id);
	dst->status = strdup(src->status);
	dst->stage = strdup(src->stage);
	dst->storage_location = strdup(src->storage_location);
	if (dst->model && dst->description && dst->source && dst->run_id && dst->status &&
	    dst->stage && dst->storage_location)
		return 0;
	store_version_release(dst);
	return -ENOMEM;
}

static int fake_list_models(struct store *s, store_model_cb *cb, void *ctx)
{
	struct fake_store *f = to_fake(s);
	struct store_model copy[MODEL_MAX];
	size_t i, n = 0;
	int err = enter(f, FAKE_list_models);

	if (err)
		return err;
	pthread_mutex_lock(&f->lock);
	for (; !err && n < f->w->nmodel; n++)
		err = model_copy(&copy[n], &f->w->models[n].m);
	if (err)
		n--;
	pthread_mutex_unlock(&f->lock);
	for (i = 0; !err && i < n; i++)
		err = cb(ctx, &copy[i]);
	for (i = 0; i < n; i++)
		store_model_release(&copy[i]);
	return err;
}

static int fake_get_model(struct store *s, const char *name, struct store_model *out)
{
	struct fake_store *f = to_fake(s);
	struct fk_model *m;
	int err = enter(f, FAKE_get_model);

	if (err)
		return err;
	pthread_mutex_lock(&f->lock);
	m = model_by_name(f->w, name);
	err = m ? model_copy(out, &m->m) : refuse(-ENOENT, "no model '%s'", name);
	pthread_mutex_unlock(&f->lock);
	return err;
}

static int fake_list_versions(struct store *s, const char *model, store_version_cb *cb, void *ctx)
{
	struct fake_store *f = to_fake(s);
	struct store_version copy[VER_MAX];
	struct fk_model *m;
	size_t i, n = 0;
	int err = enter(f, FAKE_list_versions);

	if (err)
		return err;
	pthread_mutex_lock(&f->lock);
	m = model_by_name(f->w, model);
	if (!m)
		err = refuse(-ENOENT, "no model '%s'", model);
	for (; m && !err && n < m->nv; n++)
		err = version_copy(&copy[n], &m->v[n].v);
	if (err && n)
		n--;
	pthread_mutex_unlock(&f->lock);
	for (i = 0; !err && i < n; i++)
		err = cb(ctx, &copy[i]);
	for (i = 0; i < n; i++)
		store_version_release(&copy[i]);
	return err;
}

static int fake_get_version(struct store *s, const char *model, int64_t version,
			    struct store_version *out)
{
	struct fake_store *f = to_fake(s);
	struct fk_version *v;
	int err = enter(f, FAKE_get_version);

	if (err)
		return err;
	pthread_mutex_lock(&f->lock);
	v = version_of(model_by_name(f->w, model), version);
	err = v ? version_copy(out, &v->v)
		: refuse(-ENOENT, "no version %" PRId64 " of '%s'", version, model);
	pthread_mutex_unlock(&f->lock);
	return err;
}

static int fake_list_aliases(struct store *s, const char *model, store_alias_cb *cb, void *ctx)
{
	struct fake_store *f = to_fake(s);
	char *alias[ALIAS_MAX];
	int64_t version[ALIAS_MAX];
	struct fk_model *m;
	size_t i, n = 0;
	int err = enter(f, FAKE_list_aliases);

	if (err)
		return err;
	pthread_mutex_lock(&f->lock);
	m = model_by_name(f->w, model);
	if (!m)
		err = refuse(-ENOENT, "no model '%s'", model);
	for (; m && !err && n < m->na; n++) {
		alias[n] = strdup(m->aliases[n].alias);
		version[n] = m->aliases[n].version;
		if (!alias[n])
			err = -ENOMEM;
	}
	pthread_mutex_unlock(&f->lock);
	for (i = 0; !err && i < n; i++)
		err = cb(ctx, alias[i], version[i]);
	for (i = 0; i < n; i++)
		free(alias[i]);
	return err;
}

static const struct store_ops fake_ops = {
	.name = "fake",
	.close = fake_close,
	.describe = fake_describe,
	.artifact_root = fake_artifact_root,
	.others_version = fake_others_version,
	.batch_new = fake_batch_new,
	.batch_commit = fake_batch_commit,
	.batch_free = fake_batch_free,
	.list_experiments = fake_list_experiments,
	.get_experiment = fake_get_experiment,
	.get_experiment_by_id = fake_get_experiment_by_id,
	.create_experiment = fake_create_experiment,
	.rename_experiment = fake_rename_experiment,
	.delete_experiment = fake_delete_experiment,
	.list_runs = fake_list_runs,
	.find_run = fake_find_run,
	.get_run = fake_get_run,
	.create_run = fake_create_run,
	.rename_run = fake_rename_run,
	.delete_run = fake_delete_run,
	.set_status = fake_set_status,
	.get_snapshot = fake_get_snapshot,
	.list_kv = fake_list_kv,
	.get_kv = fake_get_kv,
	.log_param = fake_log_param,
	.set_tag = fake_set_tag,
	.delete_tag = fake_delete_tag,
	.rename_tag = fake_rename_tag,
	.next_step = fake_next_step,
	.reserve_steps = fake_reserve_steps,
	.log_metrics = fake_log_metrics,
	.metric_history = fake_metric_history,
	.history_stat = fake_history_stat,
	.list_models = fake_list_models,
	.get_model = fake_get_model,
	.list_versions = fake_list_versions,
	.get_version = fake_get_version,
	.list_aliases = fake_list_aliases,
};

/* ---- looking in the world ---------------------------------------------- */

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static char *kv_value(struct fake_store *f, enum store_section sec, const struct store_ref *ref,
		      const char *key)
{
	struct fk_kvs *kvs;
	struct fk_kv *kv;
	char *v;
	int err;

	pthread_mutex_lock(&f->lock);
	kvs = section_of(f, sec, ref, &err);
	kv = kvs ? kvs_find(kvs, key) : NULL;
	v = dup_or_null(kv ? kv->value : NULL);
	pthread_mutex_unlock(&f->lock);
	return v;
}

char *fake_store_param(struct fake_store *f, const char *run_id, const char *key)
{
	struct store_ref ref = { .run_id = run_id };

	return kv_value(f, SEC_PARAMS, &ref, key);
}

char *fake_store_run_tag(struct fake_store *f, const char *run_id, const char *key)
{
	struct store_ref ref = { .run_id = run_id };

	return kv_value(f, SEC_RUN_TAGS, &ref, key);
}

char *fake_store_exp_tag(struct fake_store *f, const char *exp_id, const char *key)
{
	struct store_ref ref = { .experiment_id = exp_id };

	return kv_value(f, SEC_EXP_TAGS, &ref, key);
}

char *fake_store_run_status(struct fake_store *f, const char *run_id)
{
	struct fk_run *r;
	char *v;

	pthread_mutex_lock(&f->lock);
	r = run_by_id(f->w, run_id);
	v = dup_or_null(r ? r->r.status : NULL);
	pthread_mutex_unlock(&f->lock);
	return v;
}

char *fake_store_run_name(struct fake_store *f, const char *run_id)
{
	struct fk_run *r;
	char *v;

	pthread_mutex_lock(&f->lock);
	r = run_by_id(f->w, run_id);
	v = dup_or_null(r ? r->r.name : NULL);
	pthread_mutex_unlock(&f->lock);
	return v;
}

size_t fake_store_metric_points(struct fake_store *f, const char *run_id, const char *key)
{
	struct fk_metric *m;
	struct fk_run *r;
	size_t n;

	pthread_mutex_lock(&f->lock);
	r = run_by_id(f->w, run_id);
	m = r ? metric_find(r, key) : NULL;
	n = m ? m->n : 0;
	pthread_mutex_unlock(&f->lock);
	return n;
}

char *fake_store_experiment_id(struct fake_store *f, const char *name)
{
	struct fk_exp *e;
	char *v;

	pthread_mutex_lock(&f->lock);
	e = exp_by_name(f->w, name, 1);
	v = dup_or_null(e ? e->e.id : NULL);
	pthread_mutex_unlock(&f->lock);
	return v;
}

int fake_store_run_deleted(struct fake_store *f, const char *run_id)
{
	struct fk_run *r;
	int deleted;

	pthread_mutex_lock(&f->lock);
	r = run_by_id(f->w, run_id);
	deleted = r && r->r.deleted;
	pthread_mutex_unlock(&f->lock);
	return deleted;
}

char *fake_store_run_named(struct fake_store *f, const char *exp_id, const char *name)
{
	struct fk_run *runs[RUN_MAX];
	size_t i, n;
	char *v = NULL;

	pthread_mutex_lock(&f->lock);
	n = runs_of(f->w, exp_id, runs);
	for (i = n; i > 0 && !v; i--)
		if (!strcmp(runs[i - 1]->r.name, name))
			v = dup_or_null(runs[i - 1]->r.run_id);
	pthread_mutex_unlock(&f->lock);
	return v;
}
