/*
 * store.c - the store API's one door: store_open() picks the backend by URI
 * scheme, and each store_*() wrapper clears the thread's message, zeroes
 * what it fills and forwards to the top store's ops; a write without a
 * batch gets one of its own here, committed before the wrapper returns.
 * Also the shared, reference-counted snapshots every store hands out.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metric.h"
#include "options.h"
#include "store-internal.h"

static _Thread_local char errmsg[512];

void store_set_errmsg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errmsg, sizeof(errmsg), fmt, ap);
	va_end(ap);
}

const char *store_errmsg(void)
{
	return errmsg;
}

struct store *store_open(const struct mfs_config *cfg, char **errmsg_out)
{
	const char *uri = cfg->tracking_uri;

	*errmsg_out = NULL;
	if (!strncmp(uri, "sqlite:", 7))
		return store_sqlite_open(cfg, errmsg_out);
	if (!strncmp(uri, "http://", 7) || !strncmp(uri, "https://", 8))
		return store_rest_open(cfg, errmsg_out);
	if (asprintf(errmsg_out,
		     "unsupported tracking URI '%s': use sqlite:///relative.db, "
		     "sqlite:////absolute/path.db, http://host:port or https://host/prefix",
		     cfg->display_uri) < 0)
		*errmsg_out = NULL;
	return NULL;
}

void store_close(struct store *s)
{
	if (s)
		s->ops->close(s);
}

int store_read_only(const struct store *s)
{
	return s->read_only;
}

const char *store_artifact_root(const struct store *s)
{
	return s->ops->artifact_root ? s->ops->artifact_root(s) : NULL;
}

int store_describe(struct store *s, struct buf *out)
{
	errmsg[0] = '\0';
	return s->ops->describe(s, out);
}

int store_others_version(struct store *s, uint64_t *v)
{
	*v = 0;
	return s->ops->others_version ? s->ops->others_version(s, v) : -ENOSYS;
}

uint64_t store_writes(struct store *s)
{
	return __atomic_load_n(&s->writes, __ATOMIC_ACQUIRE);
}

/* ---- batches --------------------------------------------------------- */

struct store_batch *store_batch_new(struct store *s)
{
	return s->ops->batch_new(s);
}

int store_batch_commit(struct store *s, struct store_batch *b, int durable)
{
	errmsg[0] = '\0';
	return s->ops->batch_commit(s, b, durable);
}

void store_batch_free(struct store *s, struct store_batch *b)
{
	if (b)
		s->ops->batch_free(s, b);
}

/*
 * A write without a batch is one of its own: *own is made here, and
 * write_end() commits it (a refused write has nothing to commit).
 */
static struct store_batch *write_begin(struct store *s, struct store_batch *b,
				       struct store_batch **own)
{
	errmsg[0] = '\0';
	*own = NULL;
	if (b)
		return b;
	*own = s->ops->batch_new(s);
	return *own;
}

static int write_end(struct store *s, struct store_batch *own, int err)
{
	/* Counted refused or not: a view rendered meanwhile is simply made
	 * again. */
	__atomic_add_fetch(&s->writes, 1, __ATOMIC_RELEASE);
	if (!own)
		return err;
	if (!err)
		err = s->ops->batch_commit(s, own, 0);
	s->ops->batch_free(s, own);
	return err;
}

/* Calls a write slot with the batch to use, or fails with -ENOMEM. */
#define WRITE(s, b, call)                                                   \
	do {                                                                \
		struct store_batch *own_, *use_ = write_begin(s, b, &own_); \
		if (!use_)                                                  \
			return -ENOMEM;                                     \
		return write_end(s, own_, (s)->ops->call);                  \
	} while (0)

/* ---- experiments ----------------------------------------------------- */

int store_list_experiments(struct store *s, store_experiment_cb *cb, void *ctx)
{
	errmsg[0] = '\0';
	return s->ops->list_experiments(s, cb, ctx);
}

int store_get_experiment(struct store *s, const char *name, struct store_experiment *out)
{
	errmsg[0] = '\0';
	memset(out, 0, sizeof(*out));
	return s->ops->get_experiment(s, name, out);
}

int store_get_experiment_by_id(struct store *s, const char *id, struct store_experiment *out)
{
	errmsg[0] = '\0';
	memset(out, 0, sizeof(*out));
	return s->ops->get_experiment_by_id(s, id, out);
}

int store_create_experiment(struct store *s, struct store_batch *b, const char *name,
			    struct store_experiment *out)
{
	if (out)
		memset(out, 0, sizeof(*out));
	WRITE(s, b, create_experiment(s, use_, name, out));
}

int store_rename_experiment(struct store *s, struct store_batch *b, const char *id,
			    const char *new_name)
{
	WRITE(s, b, rename_experiment(s, use_, id, new_name));
}

int store_delete_experiment(struct store *s, struct store_batch *b, const char *id)
{
	WRITE(s, b, delete_experiment(s, use_, id));
}

void store_experiment_release(struct store_experiment *e)
{
	free(e->name);
	free(e->artifact_location);
	e->name = NULL;
	e->artifact_location = NULL;
}

int store_experiment_copy(struct store_experiment *dst, const struct store_experiment *src)
{
	*dst = *src;
	dst->name = strdup(src->name ? src->name : "");
	dst->artifact_location = strdup(src->artifact_location ? src->artifact_location : "");
	if (dst->name && dst->artifact_location)
		return 0;
	store_experiment_release(dst);
	return -ENOMEM;
}

/* ---- runs ------------------------------------------------------------ */

int store_list_runs(struct store *s, const char *experiment_id, store_run_cb *cb, void *ctx)
{
	errmsg[0] = '\0';
	return s->ops->list_runs(s, experiment_id, cb, ctx);
}

int store_find_run(struct store *s, const char *experiment_id, const char *folder,
		   struct store_run *out)
{
	errmsg[0] = '\0';
	memset(out, 0, sizeof(*out));
	return s->ops->find_run ? s->ops->find_run(s, experiment_id, folder, out) : -ENOSYS;
}

int store_get_run(struct store *s, const char *run_id, struct store_run *out)
{
	errmsg[0] = '\0';
	memset(out, 0, sizeof(*out));
	return s->ops->get_run(s, run_id, out);
}

int store_create_run(struct store *s, struct store_batch *b, const char *experiment_id,
		     const char *name, const char *user, struct store_run *out)
{
	memset(out, 0, sizeof(*out));
	WRITE(s, b, create_run(s, use_, experiment_id, name, user, out));
}

int store_rename_run(struct store *s, struct store_batch *b, const char *run_id,
		     const char *new_name)
{
	WRITE(s, b, rename_run(s, use_, run_id, new_name));
}

int store_delete_run(struct store *s, struct store_batch *b, const char *run_id)
{
	WRITE(s, b, delete_run(s, use_, run_id));
}

int store_set_status(struct store *s, struct store_batch *b, const char *run_id, const char *status)
{
	WRITE(s, b, set_status(s, use_, run_id, status));
}

void store_run_release(struct store_run *r)
{
	free(r->name);
	free(r->folder);
	free(r->user_id);
	free(r->artifact_uri);
	r->name = r->folder = r->user_id = r->artifact_uri = NULL;
}

int store_run_copy(struct store_run *dst, const struct store_run *src)
{
	*dst = *src;
	dst->snap = NULL;
	dst->name = strdup(src->name ? src->name : "");
	dst->folder = src->folder ? strdup(src->folder) : NULL;
	dst->user_id = src->user_id ? strdup(src->user_id) : NULL;
	dst->artifact_uri = src->artifact_uri ? strdup(src->artifact_uri) : NULL;
	if (dst->name && (dst->folder || !src->folder) && (dst->user_id || !src->user_id) &&
	    (dst->artifact_uri || !src->artifact_uri))
		return 0;
	store_run_release(dst);
	return -ENOMEM;
}

/* ---- snapshots ------------------------------------------------------- */

struct store_kvs *store_kvs_new(size_t cap)
{
	struct store_kvs *kvs = calloc(1, sizeof(*kvs));

	if (!kvs)
		return NULL;
	kvs->refs = 1;
	if (cap) {
		kvs->v = calloc(cap, sizeof(*kvs->v));
		if (!kvs->v) {
			free(kvs);
			return NULL;
		}
		kvs->cap = cap;
	}
	return kvs;
}

int store_kvs_add(struct store_kvs *kvs, const struct store_kv *kv)
{
	struct store_kv *e;

	if (kvs->n == kvs->cap) {
		size_t cap = kvs->cap ? kvs->cap * 2 : 8;
		struct store_kv *v = realloc(kvs->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		kvs->v = v;
		kvs->cap = cap;
	}
	e = &kvs->v[kvs->n];
	*e = *kv;
	e->key = strdup(kv->key);
	e->value = kv->value ? strdup(kv->value) : NULL;
	if (!e->key || (kv->value && !e->value)) {
		store_kv_release(e);
		return -ENOMEM;
	}
	kvs->n++;
	return 0;
}

const struct store_kvs *store_kvs_hold(const struct store_kvs *kvs)
{
	if (kvs)
		__atomic_add_fetch(&((struct store_kvs *)kvs)->refs, 1, __ATOMIC_RELAXED);
	return kvs;
}

void store_kvs_put(const struct store_kvs *kvs)
{
	struct store_kvs *k = (struct store_kvs *)kvs;
	size_t i;

	if (!k || __atomic_sub_fetch(&k->refs, 1, __ATOMIC_ACQ_REL))
		return;
	for (i = 0; i < k->n; i++)
		store_kv_release(&k->v[i]);
	free(k->v);
	free(k);
}

size_t store_kvs_lower_bound(const struct store_kvs *kvs, const char *key)
{
	size_t lo = 0, hi = kvs ? kvs->n : 0;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(kvs->v[mid].key, key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct store_kv *store_kvs_find(const struct store_kvs *kvs, const char *key)
{
	size_t i = store_kvs_lower_bound(kvs, key);

	return kvs && i < kvs->n && !strcmp(kvs->v[i].key, key) ? &kvs->v[i] : NULL;
}

struct store_snapshot *store_snapshot_new(void)
{
	struct store_snapshot *snap = calloc(1, sizeof(*snap));

	if (snap)
		snap->refs = 1;
	return snap;
}

const struct store_snapshot *store_snapshot_hold(const struct store_snapshot *snap)
{
	if (snap)
		__atomic_add_fetch(&((struct store_snapshot *)snap)->refs, 1, __ATOMIC_RELAXED);
	return snap;
}

void store_snapshot_put(const struct store_snapshot *snap)
{
	struct store_snapshot *s = (struct store_snapshot *)snap;

	if (!s || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL))
		return;
	store_run_release(&s->run);
	store_kvs_put(s->params);
	store_kvs_put(s->metrics);
	store_kvs_put(s->tags);
	free(s);
}

int store_get_snapshot(struct store *s, const char *run_id, unsigned want,
		       const struct store_snapshot **out)
{
	struct store_snapshot *snap = NULL;
	int err;

	errmsg[0] = '\0';
	*out = NULL;
	err = s->ops->get_snapshot(s, run_id, want, &snap);
	if (!err)
		*out = snap;
	return err;
}

int store_run_snapshot(struct store *s, const struct store_run *r, unsigned want,
		       const struct store_snapshot **out)
{
	if (r->snap && (r->snap->have & want) == want) {
		*out = store_snapshot_hold(r->snap);
		return 0;
	}
	return store_get_snapshot(s, r->run_id, want, out);
}

/* ---- keys ------------------------------------------------------------ */

int store_list_kv(struct store *s, enum store_section sec, const struct store_ref *ref,
		  const char *prefix, store_kv_cb *cb, void *ctx)
{
	errmsg[0] = '\0';
	return s->ops->list_kv(s, sec, ref, prefix, cb, ctx);
}

int store_get_kv(struct store *s, enum store_section sec, const struct store_ref *ref,
		 const char *key, struct store_kv *out)
{
	errmsg[0] = '\0';
	memset(out, 0, sizeof(*out));
	return s->ops->get_kv(s, sec, ref, key, out);
}

void store_kv_release(struct store_kv *kv)
{
	free(kv->key);
	free(kv->value);
	kv->key = kv->value = NULL;
}

int store_log_param(struct store *s, struct store_batch *b, const char *run_id, const char *key,
		    const char *value)
{
	WRITE(s, b, log_param(s, use_, run_id, key, value));
}

int store_set_tag(struct store *s, struct store_batch *b, enum store_section sec,
		  const struct store_ref *ref, const char *key, const char *value)
{
	WRITE(s, b, set_tag(s, use_, sec, ref, key, value));
}

int store_delete_tag(struct store *s, struct store_batch *b, enum store_section sec,
		     const struct store_ref *ref, const char *key)
{
	WRITE(s, b, delete_tag(s, use_, sec, ref, key));
}

int store_rename_tag(struct store *s, struct store_batch *b, enum store_section sec,
		     const struct store_ref *ref, const char *from, const char *to)
{
	WRITE(s, b, rename_tag(s, use_, sec, ref, from, to));
}

/* ---- metrics --------------------------------------------------------- */

int store_reserve_steps(struct store *s, const char *run_id, const char *key, int64_t floor,
			size_t n, int64_t *first)
{
	int err;

	errmsg[0] = '\0';
	if (s->ops->reserve_steps)
		return s->ops->reserve_steps(s, run_id, key, floor, n, first);
	/* A bare backend remembers nothing: the next step is all it knows. */
	err = s->ops->next_step(s, run_id, key, first);
	if (!err && *first < floor)
		*first = floor;
	if (!err && *first == INT64_MIN)
		*first = 0; /* the metric's first point */
	return err;
}

int store_next_step(struct store *s, const char *run_id, const char *key, int64_t *next)
{
	errmsg[0] = '\0';
	return s->ops->next_step(s, run_id, key, next);
}

int store_log_metrics(struct store *s, struct store_batch *b, const char *run_id, const char *key,
		      const struct metric_point *pts, size_t n)
{
	if (!n)
		return 0;
	WRITE(s, b, log_metrics(s, use_, run_id, key, pts, n));
}

int store_metric_history(struct store *s, const char *run_id, const char *key, store_point_cb *cb,
			 void *ctx)
{
	errmsg[0] = '\0';
	return s->ops->metric_history(s, run_id, key, cb, ctx);
}

int store_history_stat(struct store *s, const char *run_id, const char *key,
		       struct store_history_stat *out)
{
	errmsg[0] = '\0';
	memset(out, 0, sizeof(*out));
	return s->ops->history_stat(s, run_id, key, out);
}

/* ---- registry -------------------------------------------------------- */

int store_list_models(struct store *s, store_model_cb *cb, void *ctx)
{
	errmsg[0] = '\0';
	return s->ops->list_models(s, cb, ctx);
}

int store_get_model(struct store *s, const char *name, struct store_model *out)
{
	errmsg[0] = '\0';
	memset(out, 0, sizeof(*out));
	return s->ops->get_model(s, name, out);
}

void store_model_release(struct store_model *m)
{
	free(m->name);
	free(m->description);
	m->name = m->description = NULL;
}

int store_list_versions(struct store *s, const char *model, store_version_cb *cb, void *ctx)
{
	errmsg[0] = '\0';
	return s->ops->list_versions(s, model, cb, ctx);
}

int store_get_version(struct store *s, const char *model, int64_t version,
		      struct store_version *out)
{
	errmsg[0] = '\0';
	memset(out, 0, sizeof(*out));
	return s->ops->get_version(s, model, version, out);
}

void store_version_release(struct store_version *v)
{
	free(v->model);
	free(v->description);
	free(v->source);
	free(v->run_id);
	free(v->status);
	free(v->stage);
	free(v->storage_location);
	memset(v, 0, sizeof(*v));
}

int store_list_aliases(struct store *s, const char *model, store_alias_cb *cb, void *ctx)
{
	errmsg[0] = '\0';
	return s->ops->list_aliases(s, model, cb, ctx);
}

/* A registry write: -EROFS where the store's registry is read-only. */
#define REGISTRY_WRITE(s, b, slot, call)                                              \
	do {                                                                          \
		if (!(s)->ops->slot) {                                                \
			store_set_errmsg("this store's model registry is read-only"); \
			return -EROFS;                                                \
		}                                                                     \
		WRITE(s, b, call);                                                    \
	} while (0)

int store_create_model(struct store *s, struct store_batch *b, const char *name)
{
	REGISTRY_WRITE(s, b, create_model, create_model(s, use_, name));
}

int store_rename_model(struct store *s, struct store_batch *b, const char *name,
		       const char *new_name)
{
	REGISTRY_WRITE(s, b, rename_model, rename_model(s, use_, name, new_name));
}

int store_delete_model(struct store *s, struct store_batch *b, const char *name)
{
	REGISTRY_WRITE(s, b, delete_model, delete_model(s, use_, name));
}

int store_set_description(struct store *s, struct store_batch *b, const char *model,
			  int64_t version, const char *text)
{
	REGISTRY_WRITE(s, b, set_description, set_description(s, use_, model, version, text));
}

int store_create_version(struct store *s, struct store_batch *b, const char *model,
			 const char *source, const char *run_id, int64_t *version)
{
	*version = 0;
	REGISTRY_WRITE(s, b, create_version,
		       create_version(s, use_, model, source, run_id, version));
}

int store_delete_version(struct store *s, struct store_batch *b, const char *model, int64_t version)
{
	REGISTRY_WRITE(s, b, delete_version, delete_version(s, use_, model, version));
}

int store_set_stage(struct store *s, struct store_batch *b, const char *model, int64_t version,
		    const char *stage)
{
	REGISTRY_WRITE(s, b, set_stage, set_stage(s, use_, model, version, stage));
}

int store_set_alias(struct store *s, struct store_batch *b, const char *model, const char *alias,
		    int64_t version)
{
	REGISTRY_WRITE(s, b, set_alias, set_alias(s, use_, model, alias, version));
}

int store_delete_alias(struct store *s, struct store_batch *b, const char *model, const char *alias)
{
	REGISTRY_WRITE(s, b, delete_alias, delete_alias(s, use_, model, alias));
}

/* ---- MLflow 3's logged models ------------------------------------------- */

int store_lm_name(struct store_lm_names *names, const struct store_logged_model *m, char **out)
{
	size_t i;

	for (i = 0; i < names->n; i++)
		if (!strcmp(names->v[i], m->name))
			/* "m-" and the first 8 hex digits of the id */
			return asprintf(out, "%s@%.8s", m->name, m->id + 2) < 0 ? -ENOMEM : 0;
	if (names->n == names->cap) {
		size_t cap = names->cap ? names->cap * 2 : 16;
		char **v = realloc(names->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		names->v = v;
		names->cap = cap;
	}
	if (!(names->v[names->n] = strdup(m->name)))
		return -ENOMEM;
	names->n++;
	*out = strdup(m->name);
	return *out ? 0 : -ENOMEM;
}

void store_lm_names_release(struct store_lm_names *names)
{
	size_t i;

	for (i = 0; i < names->n; i++)
		free(names->v[i]);
	free(names->v);
	memset(names, 0, sizeof(*names));
}

int store_logged_model_copy(struct store_logged_model *dst, const struct store_logged_model *src)
{
	*dst = *src;
	dst->name = strdup(src->name);
	dst->folder = src->folder ? strdup(src->folder) : NULL;
	dst->source_run_id = strdup(src->source_run_id);
	dst->artifact_location = strdup(src->artifact_location);
	dst->model_type = strdup(src->model_type);
	if (dst->name && (dst->folder || !src->folder) && dst->source_run_id &&
	    dst->artifact_location && dst->model_type)
		return 0;
	store_logged_model_release(dst);
	return -ENOMEM;
}

/* A listing that names the folders: each model goes to cb, or, when want
 * is set, the one whose folder it is is copied into found. */
struct lm_listing {
	store_logged_model_cb *cb;
	void *ctx;
	struct store_lm_names names;
	const char *want;
	struct store_logged_model *found;
};

static int lm_each(void *ctx, const struct store_logged_model *m)
{
	struct lm_listing *l = ctx;
	struct store_logged_model named = *m;
	int err = store_lm_name(&l->names, m, &named.folder);

	if (err)
		return err;
	if (!l->want)
		err = l->cb(l->ctx, &named);
	else if (!strcmp(named.folder, l->want))
		err = store_logged_model_copy(l->found, &named) ? -ENOMEM : 1; /* found: stop */
	free(named.folder);
	return err;
}

int store_list_logged_models(struct store *s, const char *experiment_id, store_logged_model_cb *cb,
			     void *ctx)
{
	struct lm_listing l = { .cb = cb, .ctx = ctx };
	int err;

	errmsg[0] = '\0';
	if (!s->ops->list_logged_models)
		return 0;
	err = s->ops->list_logged_models(s, experiment_id, lm_each, &l);
	store_lm_names_release(&l.names);
	return err;
}

int store_get_logged_model(struct store *s, const char *id, struct store_logged_model *out)
{
	errmsg[0] = '\0';
	memset(out, 0, sizeof(*out));
	if (!s->ops->get_logged_model)
		return -ENOENT;
	return s->ops->get_logged_model(s, id, out);
}

int store_find_logged_model(struct store *s, const char *experiment_id, const char *folder,
			    struct store_logged_model *out)
{
	struct lm_listing l = { .want = folder, .found = out };
	int err;

	errmsg[0] = '\0';
	memset(out, 0, sizeof(*out));
	if (!s->ops->list_logged_models)
		return -ENOENT;
	err = s->ops->list_logged_models(s, experiment_id, lm_each, &l);
	store_lm_names_release(&l.names);
	if (err > 0)
		return 0;
	if (err)
		return err;
	/* Not a folder: its id, unlisted, as a run's id is. */
	if (strncmp(folder, "m-", 2))
		return -ENOENT;
	err = s->ops->get_logged_model(s, folder, out);
	if (!err && strcmp(out->experiment_id, experiment_id)) {
		store_logged_model_release(out);
		err = -ENOENT;
	}
	if (!err && !out->folder && !(out->folder = strdup(folder))) {
		store_logged_model_release(out);
		err = -ENOMEM;
	}
	return err;
}

void store_logged_model_release(struct store_logged_model *m)
{
	free(m->name);
	free(m->folder);
	free(m->source_run_id);
	free(m->artifact_location);
	free(m->model_type);
	m->name = m->folder = m->source_run_id = m->artifact_location = m->model_type = NULL;
}
