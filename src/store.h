/*
 * store.h - everything mlflowfs asks of an MLflow tracking store.
 *
 * store_open() picks a backend by the tracking URI's scheme and main wraps
 * it in the cache (cache.h); the rest of the program calls only the
 * store_*() functions below and never learns which backend answers.  Every
 * function returns 0 (or a documented positive value) on success and a
 * negative errno on failure; after a refusal, store_errmsg() says why in one
 * line.
 *
 * Threads: a store may be called from any thread at once.  No store holds a
 * lock while it calls a callback, so a callback may call the store again;
 * the one exception is store_metric_history(), whose points stream from the
 * backend as it reads them.
 * A callback returns 0 to go on, a negative errno to fail the listing (which
 * then returns it), or a positive value to stop early (returned as is).
 *
 * Writes go into a batch (struct store_batch), one per open file: the batch
 * carries its own error, so a write that could not be made safe fails the
 * close() of the descriptor that wrote it and of no other (mlflowfs(1), WHEN DATA IS SAFE).
 */
#ifndef MFS_STORE_H
#define MFS_STORE_H

#include <stddef.h>
#include <stdint.h>

struct buf;
struct mfs_config;
struct metric_point;
struct store;
struct store_batch;

#define STORE_ID_MAX	 64 /* room for an experiment id, with its NUL */
#define STORE_RUN_ID_MAX 33 /* MLflow run ids: 32 lowercase hex digits */

/* MLflow's limits (mlflow/utils/validation.py), in characters. */
#define STORE_KEY_MAX		250
#define STORE_PARAM_VALUE_MAX	6000
#define STORE_TAG_VALUE_MAX	8000
#define STORE_EXP_TAG_VALUE_MAX 20000
#define STORE_EXP_NAME_MAX	500
#define STORE_RUN_NAME_MAX	250
/* Tags of registered models and versions: refused beyond it, never cut
 * short (MLflow's server cuts a run tag's). */
#define REGISTRY_TAG_VALUE_MAX 100000

enum store_section {
	SEC_PARAMS,
	SEC_METRICS,
	SEC_RUN_TAGS,
	SEC_EXP_TAGS,
	SEC_MODEL_TAGS,
	SEC_VERSION_TAGS,
	/* An MLflow 3 logged model's (read-only): ref->logged_model. */
	SEC_LM_PARAMS,
	SEC_LM_METRICS, /* the latest point of each, as a run's */
	SEC_LM_TAGS,
};

/* Which object a tag section belongs to; only the fields its section
 * needs are read. */
struct store_ref {
	const char *run_id;	   /* SEC_RUN_TAGS */
	const char *experiment_id; /* SEC_EXP_TAGS */
	const char *model;	   /* SEC_MODEL_TAGS, SEC_VERSION_TAGS */
	const char *logged_model;  /* SEC_LM_*: its id, m-<32 hex> */
	int64_t version;	   /* SEC_VERSION_TAGS */
};

struct store_experiment {
	char id[STORE_ID_MAX];
	char *name;
	char *artifact_location;
	int deleted;
	int64_t creation_time;	  /* ms since the epoch, -1 if unknown */
	int64_t last_update_time; /* ms since the epoch, -1 if unknown */
};

struct store_run {
	char run_id[STORE_RUN_ID_MAX];
	char experiment_id[STORE_ID_MAX];
	char status[16]; /* RUNNING SCHEDULED FINISHED FAILED KILLED */
	char *name;	 /* the run name, "" if it has none */
	char *folder;	 /* its folder (mlflowfs(1), THE TREE); NULL when deleted */
	char *user_id;
	char *artifact_uri;
	int deleted;
	int64_t start_time;  /* ms; -1 if unset */
	int64_t end_time;    /* ms; -1 if unset */
	int64_t last_change; /* ms: the latest of start, end and metric times */
	/* In a listing only: the run's sections, when the backend's listing
	 * carries them (a remote search does); borrowed for the callback,
	 * NULL otherwise.  Never copied by store_run_copy(). */
	const struct store_snapshot *snap;
};

/* One key of a section.  Strings are borrowed for a callback's duration,
 * from a snapshot while it is held, or owned after store_get_kv() (free
 * with store_kv_release). */
struct store_kv {
	char *key;
	char *value;	   /* params and tags; NULL for metrics */
	double num;	   /* metrics: the latest value (NaN, +-inf as written) */
	int64_t step;	   /* metrics: the latest point's step */
	int64_t timestamp; /* metrics: the latest point's time, ms */
};

/*
 * A run as one object: its info and the keys of its sections, each sorted
 * by key in byte order.  Immutable and shared: hold it with
 * store_get_snapshot(), let go with store_snapshot_put().
 */
enum {
	SNAP_PARAMS = 1 << 0,
	SNAP_METRICS = 1 << 1,
	SNAP_TAGS = 1 << 2,
	SNAP_ALL = SNAP_PARAMS | SNAP_METRICS | SNAP_TAGS,
};

struct store_kvs {
	struct store_kv *v;
	size_t n;
	size_t cap;
	int refs; /* the store's: sections are shared between snapshots */
};

struct store_snapshot {
	struct store_run run;
	unsigned have; /* SNAP_* sections filled (at least those asked for) */
	const struct store_kvs *params;
	const struct store_kvs *metrics; /* the latest point of each metric */
	const struct store_kvs *tags;
	int refs; /* the store's */
};

/* A metric's history as history/<key> shows it. */
struct store_history_stat {
	uint64_t points;
	uint64_t bytes; /* of the "STEP VALUE TIMESTAMP_MS\n" lines (metric.h) */
};

struct store_model {
	char *name;
	char *description; /* "" when none */
	int64_t creation_time;
	int64_t last_updated_time;
};

struct store_version {
	char *model;
	int64_t version;
	char *description; /* "" when none */
	char *source;
	char *run_id; /* "" when none */
	char *status;
	char *stage;
	char *storage_location;
	int64_t creation_time;
	int64_t last_updated_time;
};

/*
 * An MLflow 3 logged model (what mlflow.<flavor>.log_model makes since 3.0):
 * its own entity, its files at artifact_location (the experiment's
 * artifact location + /models/<id>/artifacts), made by source_run_id.
 */
#define STORE_LM_ID_MAX 40 /* "m-" and 32 hex digits, with its NUL; room to spare */

struct store_logged_model {
	char id[STORE_LM_ID_MAX];
	char experiment_id[STORE_ID_MAX];
	char *name;
	/* Its folder under the experiment's .models/: its name, or for each
	 * but the oldest of a name <name>@<first 8 hex of its id>; set by
	 * store_list_logged_models() and store_find_logged_model() only. */
	char *folder;
	char *source_run_id;	 /* "" when none */
	char *artifact_location; /* a URI (or a path) of its artifact folder */
	char *model_type;	 /* "" when none */
	const char *status;	 /* PENDING READY FAILED, or UNSPECIFIED: static */
	int64_t creation_time;	 /* ms */
	int64_t last_updated_time;
};

typedef int store_experiment_cb(void *ctx, const struct store_experiment *e);
typedef int store_run_cb(void *ctx, const struct store_run *run);
typedef int store_kv_cb(void *ctx, const struct store_kv *kv);
typedef int store_point_cb(void *ctx, double value, int64_t step, int64_t timestamp);
typedef int store_model_cb(void *ctx, const struct store_model *m);
typedef int store_version_cb(void *ctx, const struct store_version *v);
typedef int store_alias_cb(void *ctx, const char *alias, int64_t version);
typedef int store_logged_model_cb(void *ctx, const struct store_logged_model *m);

/* Opens the backend cfg's tracking URI names (the caller adds the cache).
 * On failure returns NULL and sets *errmsg to a new one-line message the
 * caller frees. */
struct store *store_open(const struct mfs_config *cfg, char **errmsg);
void store_close(struct store *s);

/* Why the calling thread's last store call failed; "" if nothing to say.
 * Borrowed until the thread's next store call. */
const char *store_errmsg(void);

/* Backend and URI (never credentials), schema, counters: "key: value" lines. */
int store_describe(struct store *s, struct buf *out);
/* Whether the store was opened read-only (-o ro, or it cannot be written). */
int store_read_only(const struct store *s);
/* Where a local store keeps the artifacts of new experiments; NULL for a
 * store that keeps none on this machine.  Borrowed for the store's life. */
const char *store_artifact_root(const struct store *s);

/*
 * A number that moves when another client (the MLflow client, another
 * mount) changes the store.  Returns 0 and sets *v, -EAGAIN when it cannot
 * tell just now (treat as changed), -ENOSYS when the backend cannot tell at
 * all (only a time bound helps then).
 */
int store_others_version(struct store *s, uint64_t *v);

/* A number that moves at every write asked of this store through its
 * store_*() calls (others_version's counterpart for this process's own). */
uint64_t store_writes(struct store *s);

/* ---- write batches (mlflowfs(1), WHEN DATA IS SAFE) ------------------- */

/* A new, empty batch; NULL without memory. */
struct store_batch *store_batch_new(struct store *s);
/*
 * Makes what the batch's writes changed safe in the store (durable: also
 * against power loss) and returns 0, or -EIO if a write the batch accepted
 * since its last commit could not be made safe (that failure is then
 * forgotten).  Other batches' failures never show here.
 */
int store_batch_commit(struct store *s, struct store_batch *b, int durable);
/* Frees the batch; its writes stay and are committed with the store's next
 * commit.  Safe on NULL. */
void store_batch_free(struct store *s, struct store_batch *b);

/*
 * Every write below takes the batch it belongs to.  With b NULL the write is
 * a batch of its own, committed before the call returns (the name
 * operations: mkdir, rmdir, rename have no close() to wait for).
 */

/* ---- experiments: lists and name look-ups see active ones only ------- */

int store_list_experiments(struct store *s, store_experiment_cb *cb, void *ctx);
int store_get_experiment(struct store *s, const char *name, struct store_experiment *out);
/* An experiment by id, active or deleted. */
int store_get_experiment_by_id(struct store *s, const char *id, struct store_experiment *out);
/* -EEXIST if the name is taken (also by a deleted experiment); out may be NULL. */
int store_create_experiment(struct store *s, struct store_batch *b, const char *name,
			    struct store_experiment *out);
int store_rename_experiment(struct store *s, struct store_batch *b, const char *id,
			    const char *new_name);
/* MLflow's soft delete; -ENOTEMPTY while the experiment has active runs. */
int store_delete_experiment(struct store *s, struct store_batch *b, const char *id);
void store_experiment_release(struct store_experiment *e);

/* ---- runs ------------------------------------------------------------ */

/* The active runs of an experiment, oldest first, with their folders. */
int store_list_runs(struct store *s, const char *experiment_id, store_run_cb *cb, void *ctx);
/* Resolves a folder name (or a run id) in an experiment to an active run. */
int store_find_run(struct store *s, const char *experiment_id, const char *folder,
		   struct store_run *out);
/* A run by id, active or deleted (then folder is NULL); -ENOENT if unknown. */
int store_get_run(struct store *s, const char *run_id, struct store_run *out);
int store_create_run(struct store *s, struct store_batch *b, const char *experiment_id,
		     const char *name, const char *user, struct store_run *out);
int store_rename_run(struct store *s, struct store_batch *b, const char *run_id,
		     const char *new_name);
int store_delete_run(struct store *s, struct store_batch *b, const char *run_id);
/* Sets the status; a terminal one (FINISHED FAILED KILLED) also sets the end time. */
int store_set_status(struct store *s, struct store_batch *b, const char *run_id,
		     const char *status);
void store_run_release(struct store_run *r);

/*
 * A run with (at least) the sections in want, in one call.  The snapshot is
 * shared: *out stays valid until store_snapshot_put(), and shows the run as
 * it was when taken.
 */
int store_get_snapshot(struct store *s, const char *run_id, unsigned want,
		       const struct store_snapshot **out);
/* The same for a run a listing gave: the snapshot the listing carried,
 * when it has the sections in want (a remote search brings them), else
 * one asked of the store. */
int store_run_snapshot(struct store *s, const struct store_run *r, unsigned want,
		       const struct store_snapshot **out);
void store_snapshot_put(const struct store_snapshot *snap);
/* One more hold of snap (NULL stays NULL). */
const struct store_snapshot *store_snapshot_hold(const struct store_snapshot *snap);
/* The key of a snapshot section, or NULL (binary search). */
const struct store_kv *store_kvs_find(const struct store_kvs *kvs, const char *key);
/* The index of the first key at or after key in byte order (kvs->n if none;
 * 0 for a NULL kvs). */
size_t store_kvs_lower_bound(const struct store_kvs *kvs, const char *key);

/* ---- keys ------------------------------------------------------------ */

/* Tags of experiments, models and versions (a run's keys are in its
 * snapshot).  list: the keys starting with prefix (NULL: all), in byte
 * order; get: one key, -ENOENT if it is not there. */
int store_list_kv(struct store *s, enum store_section sec, const struct store_ref *ref,
		  const char *prefix, store_kv_cb *cb, void *ctx);
int store_get_kv(struct store *s, enum store_section sec, const struct store_ref *ref,
		 const char *key, struct store_kv *out);
void store_kv_release(struct store_kv *kv);

/* Logs a param; the same value again is a no-op, a different one -EPERM. */
int store_log_param(struct store *s, struct store_batch *b, const char *run_id, const char *key,
		    const char *value);
/* Sets (upserts) or deletes a tag of a run, an experiment, a registered
 * model or a version (-ENOENT when the model or version is not there). */
int store_set_tag(struct store *s, struct store_batch *b, enum store_section sec,
		  const struct store_ref *ref, const char *key, const char *value);
int store_delete_tag(struct store *s, struct store_batch *b, enum store_section sec,
		     const struct store_ref *ref, const char *key);
/* Moves a tag to a new key in one step (-EEXIST never: the new key is replaced). */
int store_rename_tag(struct store *s, struct store_batch *b, enum store_section sec,
		     const struct store_ref *ref, const char *from, const char *to);

/* ---- metrics --------------------------------------------------------- */

/*
 * Reserves n consecutive steps for points logged without one (mlflowfs(1), WRITING: one
 * more than the highest step of the metric in the run, 0 first) and at
 * least floor (INT64_MIN: none; else one more than the highest explicit
 * step about to be logged with them): *first is the first of them.
 * Reserved steps are not handed out again while this mount remembers the
 * metric.
 */
int store_reserve_steps(struct store *s, const char *run_id, const char *key, int64_t floor,
			size_t n, int64_t *first);
/* Logs n points of one metric, all or none; every point has its step and
 * timestamp. */
int store_log_metrics(struct store *s, struct store_batch *b, const char *run_id, const char *key,
		      const struct metric_point *pts, size_t n);
/* Every point of a metric, by step, then timestamp, then value.  Called
 * back while the backend reads (a history may be long): cb must not call
 * the store. */
int store_metric_history(struct store *s, const char *run_id, const char *key, store_point_cb *cb,
			 void *ctx);
/* The number of points of a metric and the size of history/<key>. */
int store_history_stat(struct store *s, const char *run_id, const char *key,
		       struct store_history_stat *out);

/* ---- the registry ------------------------------------------------------ */

int store_list_models(struct store *s, store_model_cb *cb, void *ctx);
int store_get_model(struct store *s, const char *name, struct store_model *out);
void store_model_release(struct store_model *m);
int store_list_versions(struct store *s, const char *model, store_version_cb *cb, void *ctx);
int store_get_version(struct store *s, const char *model, int64_t version,
		      struct store_version *out);
void store_version_release(struct store_version *v);
int store_list_aliases(struct store *s, const char *model, store_alias_cb *cb, void *ctx);

/* ---- MLflow 3's logged models (read-only) ------------------------------ */

/*
 * The active logged models of an experiment, oldest first (creation time,
 * then id); none, and 0, in a store whose database has no logged-model
 * tables (MLflow 2.x) or whose server has no logged-model API.
 */
int store_list_logged_models(struct store *s, const char *experiment_id, store_logged_model_cb *cb,
			     void *ctx);
/* One by id, active; -ENOENT if unknown or deleted. */
int store_get_logged_model(struct store *s, const char *id, struct store_logged_model *out);
/* Finds one by its folder under an experiment's .models/ (or its id). */
int store_find_logged_model(struct store *s, const char *experiment_id, const char *folder,
			    struct store_logged_model *out);
void store_logged_model_release(struct store_logged_model *m);

/*
 * The names given so far in one listing, to name the next model as runs
 * are named: its name for the first of a name, <name>@<first 8 hex digits
 * of its id> for each after it (a listing goes oldest first).  *out is a
 * new string; -ENOMEM.  Start from a zeroed struct.
 */
struct store_lm_names {
	char **v;
	size_t n, cap;
};
int store_lm_name(struct store_lm_names *names, const struct store_logged_model *m, char **out);
void store_lm_names_release(struct store_lm_names *names);

/*
 * Registry writes, as MLflow's registry makes them (each one also moves the
 * model's or version's last_updated_time where MLflow's does).  Names are
 * checked by the caller against MLflow's rules; -ENOENT when the model or
 * version is not there.  Tags of models and versions go through
 * store_set_tag() and store_delete_tag() with SEC_MODEL_TAGS and
 * SEC_VERSION_TAGS.
 */
/* -EEXIST if a model has the name. */
int store_create_model(struct store *s, struct store_batch *b, const char *name);
/* Its versions, tags and aliases follow it; -EEXIST if new_name is taken. */
int store_rename_model(struct store *s, struct store_batch *b, const char *name,
		       const char *new_name);
/* -ENOTEMPTY while the model has versions (MLflow would delete them). */
int store_delete_model(struct store *s, struct store_batch *b, const char *name);
/* The description of model (version 0) or of one of its versions; "" clears it. */
int store_set_description(struct store *s, struct store_batch *b, const char *model,
			  int64_t version, const char *text);
/*
 * A new version of model, READY, stage None, made from source by run_id
 * (NULL: none); *version is its number, one more than the highest the model
 * had.  source is an artifact URI (the run's artifact_uri and a path below
 * it), or models:/<logged model id>: then its storage location is the
 * logged model's artifact location, as MLflow records it.
 */
int store_create_version(struct store *s, struct store_batch *b, const char *model,
			 const char *source, const char *run_id, int64_t *version);
/* Deletes a version and the aliases that point at it. */
int store_delete_version(struct store *s, struct store_batch *b, const char *model,
			 int64_t version);
/* stage: one of None Staging Production Archived, spelt so; other versions
 * keep theirs. */
int store_set_stage(struct store *s, struct store_batch *b, const char *model, int64_t version,
		    const char *stage);
/* Points alias at version (set or moved); -ENOENT if the version is not there. */
int store_set_alias(struct store *s, struct store_batch *b, const char *model, const char *alias,
		    int64_t version);
/* -ENOENT if the model has no such alias. */
int store_delete_alias(struct store *s, struct store_batch *b, const char *model,
		       const char *alias);

#endif
