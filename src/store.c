/*
 * store.c - the store API's one door: store_open() picks the backend by URI
 * scheme, each store_*() wrapper forwards to the backend's ops, and the run
 * folder index lives here, because folder names (SPEC §2 "Names") are the same
 * rule for every backend: the oldest active run of a name keeps it, the others
 * get "<name>@<first 8 hex of run_id>", a nameless run shows as its run_id.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metric.h"
#include "options.h"
#include "store-internal.h"

/* How many experiments keep a folder index at once. */
#define INDEX_KEEP 4

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

/*
 * The folder index of one experiment: its active runs, oldest first, and two
 * open-addressing hash tables from folder name and from run id to a run.
 * Slots hold an index + 1; 0 is empty.
 */
struct run_index {
	struct run_index *next;
	char experiment_id[STORE_ID_MAX];
	uint64_t version;
	size_t n, cap;
	struct store_run *runs;
	size_t nslots;
	uint32_t *by_folder;
	uint32_t *by_id;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static void index_free(struct run_index *ix)
{
	size_t i;

	if (!ix)
		return;
	for (i = 0; i < ix->n; i++)
		store_run_release(&ix->runs[i]);
	free(ix->runs);
	free(ix->by_folder);
	free(ix->by_id);
	free(ix);
}

static int index_collect(void *ctx, const struct store_run *run)
{
	struct run_index *ix = ctx;
	struct store_run *r;

	if (ix->n == ix->cap) {
		size_t cap = ix->cap ? ix->cap * 2 : 64;
		struct store_run *p = realloc(ix->runs, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		ix->runs = p;
		ix->cap = cap;
	}
	r = &ix->runs[ix->n];
	memset(r, 0, sizeof(*r));
	memcpy(r->run_id, run->run_id, sizeof(r->run_id));
	memcpy(r->experiment_id, run->experiment_id, sizeof(r->experiment_id));
	memcpy(r->status, run->status, sizeof(r->status));
	r->start_time = run->start_time;
	r->end_time = run->end_time;
	r->last_change = run->last_change;
	r->name = strdup(run->name ? run->name : "");
	if (!r->name)
		return -ENOMEM;
	ix->n++;
	return 0;
}

/* Finds the slot of key in table, or the empty slot where it would go. */
static size_t slot_find(const struct run_index *ix, const uint32_t *table, int by_folder,
			const char *key)
{
	size_t mask = ix->nslots - 1, i = hash_str(key) & mask;

	while (table[i]) {
		const struct store_run *r = &ix->runs[table[i] - 1];

		if (!strcmp(by_folder ? r->folder : r->run_id, key))
			return i;
		i = (i + 1) & mask;
	}
	return i;
}

static int index_assign_folders(struct run_index *ix)
{
	size_t i;

	ix->nslots = 16;
	while (ix->nslots < ix->n * 2 + 2)
		ix->nslots *= 2;
	ix->by_folder = calloc(ix->nslots, sizeof(uint32_t));
	ix->by_id = calloc(ix->nslots, sizeof(uint32_t));
	if (!ix->by_folder || !ix->by_id)
		return -ENOMEM;
	for (i = 0; i < ix->n; i++) {
		struct store_run *r = &ix->runs[i];
		size_t slot;

		if (!r->name[0]) {
			r->folder = strdup(r->run_id);
		} else {
			slot = slot_find(ix, ix->by_folder, 1, r->name);
			if (!ix->by_folder[slot])
				r->folder = strdup(r->name);
			else if (asprintf(&r->folder, "%s@%.8s", r->name, r->run_id) < 0)
				r->folder = NULL;
		}
		if (!r->folder)
			return -ENOMEM;
		slot = slot_find(ix, ix->by_folder, 1, r->folder);
		if (ix->by_folder[slot] && strcmp(r->folder, r->run_id)) {
			/* A run named like another's name@hex8 took it: the id is unique. */
			free(r->folder);
			r->folder = strdup(r->run_id);
			if (!r->folder)
				return -ENOMEM;
			slot = slot_find(ix, ix->by_folder, 1, r->folder);
		}
		if (!ix->by_folder[slot])
			ix->by_folder[slot] = (uint32_t)i + 1;
		slot = slot_find(ix, ix->by_id, 0, r->run_id);
		ix->by_id[slot] = (uint32_t)i + 1;
	}
	return 0;
}

/*
 * Returns the up-to-date index of an experiment, building it if needed, and
 * moves it to the front of the list.  Called with index_lock held.
 */
static int index_get(struct store *s, const char *experiment_id, struct run_index **out)
{
	uint64_t version = s->ops->runs_version(s);
	struct run_index **pp, *ix = NULL;
	int count = 0, err;

	for (pp = &s->index; *pp; pp = &(*pp)->next) {
		if (!strcmp((*pp)->experiment_id, experiment_id)) {
			ix = *pp;
			*pp = ix->next;
			break;
		}
	}
	if (ix && ix->version != version) {
		index_free(ix);
		ix = NULL;
	}
	if (!ix) {
		ix = calloc(1, sizeof(*ix));
		if (!ix)
			return -ENOMEM;
		snprintf(ix->experiment_id, sizeof(ix->experiment_id), "%s", experiment_id);
		ix->version = version;
		err = s->ops->list_runs(s, experiment_id, index_collect, ix);
		if (err >= 0)
			err = index_assign_folders(ix);
		if (err < 0) {
			index_free(ix);
			return err;
		}
	}
	ix->next = s->index;
	s->index = ix;
	/* Keep only the most recently used few. */
	for (pp = &s->index; *pp; pp = &(*pp)->next) {
		if (++count == INDEX_KEEP) {
			struct run_index *rest = (*pp)->next;

			(*pp)->next = NULL;
			while (rest) {
				struct run_index *nx = rest->next;

				index_free(rest);
				rest = nx;
			}
			break;
		}
	}
	*out = ix;
	return 0;
}

/* The run a folder name names, or failing that the run of that id. */
static const struct store_run *index_lookup(const struct run_index *ix, const char *folder)
{
	size_t slot;

	if (!ix->nslots)
		return NULL;
	slot = slot_find(ix, ix->by_folder, 1, folder);
	if (ix->by_folder[slot])
		return &ix->runs[ix->by_folder[slot] - 1];
	slot = slot_find(ix, ix->by_id, 0, folder);
	if (ix->by_id[slot])
		return &ix->runs[ix->by_id[slot] - 1];
	return NULL;
}

static const struct store_run *index_lookup_id(const struct run_index *ix, const char *run_id)
{
	size_t slot;

	if (!ix->nslots)
		return NULL;
	slot = slot_find(ix, ix->by_id, 0, run_id);
	return ix->by_id[slot] ? &ix->runs[ix->by_id[slot] - 1] : NULL;
}

int store_base_init(struct store *s, const struct store_ops *ops)
{
	s->ops = ops;
	s->index = NULL;
	return -pthread_mutex_init(&s->index_lock, NULL);
}

struct store *store_open(const struct mfs_config *cfg, char **errmsg_out)
{
	*errmsg_out = NULL;
	if (!strncmp(cfg->tracking_uri, "sqlite:///", 10))
		return store_sqlite_open(cfg, errmsg_out);
	if (asprintf(errmsg_out,
		     "unsupported tracking URI '%s': use sqlite:///relative.db, "
		     "sqlite:////absolute/path.db, http://host:port or https://host/prefix",
		     cfg->display_uri) < 0)
		*errmsg_out = NULL;
	return NULL;
}

void store_close(struct store *s)
{
	struct run_index *ix;

	if (!s)
		return;
	while ((ix = s->index)) {
		s->index = ix->next;
		index_free(ix);
	}
	pthread_mutex_destroy(&s->index_lock);
	s->ops->close(s);
}

int store_read_only(const struct store *s)
{
	return s->read_only;
}

int store_describe(struct store *s, struct buf *out)
{
	errmsg[0] = '\0';
	return s->ops->describe(s, out);
}

int store_list_experiments(struct store *s, store_experiment_cb *cb, void *ctx)
{
	errmsg[0] = '\0';
	return s->ops->list_experiments(s, cb, ctx);
}

int store_get_experiment(struct store *s, const char *name, struct store_experiment *out)
{
	errmsg[0] = '\0';
	return s->ops->get_experiment(s, name, out);
}

int store_get_experiment_by_id(struct store *s, const char *id, struct store_experiment *out)
{
	errmsg[0] = '\0';
	return s->ops->get_experiment_by_id(s, id, out);
}

int store_create_experiment(struct store *s, const char *name, struct store_experiment *out)
{
	errmsg[0] = '\0';
	return s->ops->create_experiment(s, name, out);
}

int store_rename_experiment(struct store *s, const char *id, const char *new_name)
{
	errmsg[0] = '\0';
	return s->ops->rename_experiment(s, id, new_name);
}

int store_delete_experiment(struct store *s, const char *id)
{
	errmsg[0] = '\0';
	return s->ops->delete_experiment(s, id);
}

void store_experiment_release(struct store_experiment *e)
{
	free(e->name);
	free(e->artifact_location);
	e->name = NULL;
	e->artifact_location = NULL;
}

int store_list_runs(struct store *s, const char *experiment_id, store_run_cb *cb, void *ctx)
{
	struct run_index *ix;
	size_t i;
	int err;

	errmsg[0] = '\0';
	pthread_mutex_lock(&s->index_lock);
	err = index_get(s, experiment_id, &ix);
	for (i = 0; !err && i < ix->n; i++)
		err = cb(ctx, &ix->runs[i]);
	pthread_mutex_unlock(&s->index_lock);
	return err;
}

struct all_runs_ctx {
	struct store_experiment *exps;
	size_t n, cap;
};

static int collect_experiment(void *ctx, const struct store_experiment *e)
{
	struct all_runs_ctx *c = ctx;
	struct store_experiment *x;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct store_experiment *p = realloc(c->exps, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		c->exps = p;
		c->cap = cap;
	}
	x = &c->exps[c->n];
	*x = *e;
	x->name = strdup(e->name);
	x->artifact_location = NULL;
	if (!x->name)
		return -ENOMEM;
	c->n++;
	return 0;
}

int store_list_all_runs(struct store *s, store_exp_run_cb *cb, void *ctx)
{
	struct all_runs_ctx c = { NULL, 0, 0 };
	size_t i, j;
	int err;

	errmsg[0] = '\0';
	err = s->ops->list_experiments(s, collect_experiment, &c);
	for (i = 0; !err && i < c.n; i++) {
		struct run_index *ix;

		pthread_mutex_lock(&s->index_lock);
		err = index_get(s, c.exps[i].id, &ix);
		for (j = 0; !err && j < ix->n; j++)
			err = cb(ctx, &c.exps[i], &ix->runs[j]);
		pthread_mutex_unlock(&s->index_lock);
	}
	for (i = 0; i < c.n; i++)
		store_experiment_release(&c.exps[i]);
	free(c.exps);
	return err;
}

/* Looks up the folder of an active run; a new string, or NULL. */
static int folder_of(struct store *s, const char *experiment_id, const char *run_id, char **folder)
{
	struct run_index *ix;
	const struct store_run *r;
	int err;

	*folder = NULL;
	pthread_mutex_lock(&s->index_lock);
	err = index_get(s, experiment_id, &ix);
	if (!err) {
		r = index_lookup_id(ix, run_id);
		if (r) {
			*folder = strdup(r->folder);
			if (!*folder)
				err = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&s->index_lock);
	return err;
}

int store_find_run(struct store *s, const char *experiment_id, const char *folder,
		   struct store_run *out)
{
	char run_id[STORE_RUN_ID_MAX], *name = NULL;
	const struct store_run *r;
	struct run_index *ix;
	int err;

	errmsg[0] = '\0';
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&s->index_lock);
	err = index_get(s, experiment_id, &ix);
	if (!err) {
		r = index_lookup(ix, folder);
		if (!r) {
			err = -ENOENT;
		} else {
			memcpy(run_id, r->run_id, sizeof(run_id));
			name = strdup(r->folder);
			if (!name)
				err = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&s->index_lock);
	if (err)
		return err;
	err = s->ops->get_run(s, run_id, out);
	if (err) {
		free(name);
		return err;
	}
	out->folder = name;
	return 0;
}

int store_get_run(struct store *s, const char *run_id, struct store_run *out)
{
	int err;

	errmsg[0] = '\0';
	memset(out, 0, sizeof(*out));
	err = s->ops->get_run(s, run_id, out);
	if (!err && !out->deleted)
		err = folder_of(s, out->experiment_id, out->run_id, &out->folder);
	if (err)
		store_run_release(out);
	return err;
}

int store_create_run(struct store *s, const char *experiment_id, const char *name, const char *user,
		     struct store_run *out)
{
	int err;

	errmsg[0] = '\0';
	memset(out, 0, sizeof(*out));
	err = s->ops->create_run(s, experiment_id, name, user, out);
	if (!err)
		err = folder_of(s, out->experiment_id, out->run_id, &out->folder);
	return err;
}

int store_rename_run(struct store *s, const char *run_id, const char *new_name)
{
	errmsg[0] = '\0';
	return s->ops->rename_run(s, run_id, new_name);
}

int store_delete_run(struct store *s, const char *run_id)
{
	errmsg[0] = '\0';
	return s->ops->delete_run(s, run_id);
}

int store_set_status(struct store *s, const char *run_id, const char *status)
{
	errmsg[0] = '\0';
	return s->ops->set_status(s, run_id, status);
}

void store_run_release(struct store_run *r)
{
	free(r->name);
	free(r->folder);
	free(r->user_id);
	free(r->artifact_uri);
	r->name = r->folder = r->user_id = r->artifact_uri = NULL;
}

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

int store_log_param(struct store *s, const char *run_id, const char *key, const char *value)
{
	errmsg[0] = '\0';
	return s->ops->log_param(s, run_id, key, value);
}

int store_set_tag(struct store *s, enum store_section sec, const struct store_ref *ref,
		  const char *key, const char *value)
{
	errmsg[0] = '\0';
	return s->ops->set_tag(s, sec, ref, key, value);
}

int store_delete_tag(struct store *s, enum store_section sec, const struct store_ref *ref,
		     const char *key)
{
	errmsg[0] = '\0';
	return s->ops->delete_tag(s, sec, ref, key);
}

int store_rename_tag(struct store *s, enum store_section sec, const struct store_ref *ref,
		     const char *from, const char *to)
{
	errmsg[0] = '\0';
	return s->ops->rename_tag(s, sec, ref, from, to);
}

int store_log_metrics(struct store *s, const char *run_id, const char *key,
		      struct metric_point *pts, size_t n)
{
	errmsg[0] = '\0';
	if (!n)
		return 0;
	return s->ops->log_metrics(s, run_id, key, pts, n);
}

int store_metric_history(struct store *s, const char *run_id, const char *key, store_point_cb *cb,
			 void *ctx)
{
	errmsg[0] = '\0';
	return s->ops->metric_history(s, run_id, key, cb, ctx);
}

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

int store_artifact_dir(struct store *s, const struct store_run *run, char **path)
{
	errmsg[0] = '\0';
	*path = NULL;
	return s->ops->artifact_dir(s, run, path);
}

uint64_t store_others_version(struct store *s)
{
	return s->ops->others_version ? s->ops->others_version(s) : 0;
}

uint64_t store_write_token(struct store *s)
{
	return s->ops->write_token(s);
}

int store_sync(struct store *s, uint64_t token, int durable)
{
	errmsg[0] = '\0';
	return s->ops->sync(s, token, durable);
}
