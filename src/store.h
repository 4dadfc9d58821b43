/*
 * store.h - everything mlflowfs asks of an MLflow tracking store.
 *
 * store_open() picks a backend by the tracking URI's scheme; the rest of the
 * program calls only the store_*() functions below and never learns which
 * backend answers.  Every function returns 0 (or a documented positive value)
 * on success and a negative errno on failure; after a refusal,
 * store_errmsg() says why in one line.
 *
 * Threads: a store may be called from any thread at once.  Callbacks run
 * while the store holds its locks: they must not call back into the store.
 * A callback returns 0 to go on, a negative errno to fail the listing (which
 * then returns it), or a positive value to stop early (returned as is).
 */
#ifndef MFS_STORE_H
#define MFS_STORE_H

#include <stddef.h>
#include <stdint.h>

struct buf;
struct mfs_config;
struct metric_point;
struct store;

#define STORE_ID_MAX	 64 /* room for an experiment id, with its NUL */
#define STORE_RUN_ID_MAX 33 /* MLflow run ids: 32 lowercase hex digits */

/* MLflow's limits (mlflow/utils/validation.py), in characters. */
#define STORE_KEY_MAX		250
#define STORE_PARAM_VALUE_MAX	6000
#define STORE_TAG_VALUE_MAX	8000
#define STORE_EXP_TAG_VALUE_MAX 20000
#define STORE_EXP_NAME_MAX	500
#define STORE_RUN_NAME_MAX	250

enum store_section {
	SEC_PARAMS,
	SEC_METRICS,
	SEC_RUN_TAGS,
	SEC_EXP_TAGS,
	SEC_MODEL_TAGS,
	SEC_VERSION_TAGS,
};

/* Which object a key section belongs to; only the fields its section
 * needs are read. */
struct store_ref {
	const char *run_id;	   /* SEC_PARAMS, SEC_METRICS, SEC_RUN_TAGS */
	const char *experiment_id; /* SEC_EXP_TAGS */
	const char *model;	   /* SEC_MODEL_TAGS, SEC_VERSION_TAGS */
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
	char *folder;	 /* its folder in the experiment (SPEC §2), or NULL when deleted */
	char *user_id;
	char *artifact_uri;
	int deleted;
	int64_t start_time;  /* ms; -1 if unset */
	int64_t end_time;    /* ms; -1 if unset */
	int64_t last_change; /* ms: the latest of start, end and metric times */
};

/* One key of a section.  Strings are borrowed for the callback's duration,
 * or owned by the struct after store_get_kv() (free with store_kv_release). */
struct store_kv {
	char *key;
	char *value;	   /* params and tags; NULL for metrics */
	double num;	   /* metrics: the latest value (NaN, +-inf as written) */
	int64_t step;	   /* metrics: the latest point's step */
	int64_t timestamp; /* metrics: the latest point's time, ms */
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

typedef int store_experiment_cb(void *ctx, const struct store_experiment *e);
typedef int store_run_cb(void *ctx, const struct store_run *run);
typedef int store_exp_run_cb(void *ctx, const struct store_experiment *e,
			     const struct store_run *run);
typedef int store_kv_cb(void *ctx, const struct store_kv *kv);
typedef int store_point_cb(void *ctx, double value, int64_t step, int64_t timestamp);
typedef int store_model_cb(void *ctx, const struct store_model *m);
typedef int store_version_cb(void *ctx, const struct store_version *v);
typedef int store_alias_cb(void *ctx, const char *alias, int64_t version);

/* Opens the store cfg names.  On failure returns NULL and sets *errmsg to a
 * new one-line message the caller frees. */
struct store *store_open(const struct mfs_config *cfg, char **errmsg);
void store_close(struct store *s);

/* Why the calling thread's last store call failed; "" if nothing to say.
 * Borrowed until the thread's next store call. */
const char *store_errmsg(void);

/* Backend and URI (never credentials), schema, counters: "key: value" lines. */
int store_describe(struct store *s, struct buf *out);
/* Whether the store was opened read-only (-o ro, or it cannot be written). */
int store_read_only(const struct store *s);

/* Experiments.  Lists and name look-ups see active experiments only. */
int store_list_experiments(struct store *s, store_experiment_cb *cb, void *ctx);
int store_get_experiment(struct store *s, const char *name, struct store_experiment *out);
int store_get_experiment_by_id(struct store *s, const char *id, struct store_experiment *out);
/* -EEXIST if the name is taken (also by a deleted experiment); out may be NULL. */
int store_create_experiment(struct store *s, const char *name, struct store_experiment *out);
int store_rename_experiment(struct store *s, const char *id, const char *new_name);
/* MLflow's soft delete; -ENOTEMPTY while the experiment has active runs. */
int store_delete_experiment(struct store *s, const char *id);
void store_experiment_release(struct store_experiment *e);

/* Runs.  Listing gives active runs, oldest first, with their folders; it
 * leaves user_id and artifact_uri NULL (store_find_run() fills them). */
int store_list_runs(struct store *s, const char *experiment_id, store_run_cb *cb, void *ctx);
/* Every active run of every active experiment (the runs/ index). */
int store_list_all_runs(struct store *s, store_exp_run_cb *cb, void *ctx);
/* Resolves a folder name (or a run id) in an experiment to an active run. */
int store_find_run(struct store *s, const char *experiment_id, const char *folder,
		   struct store_run *out);
/* A run by id, active or deleted; -ENOENT if unknown. */
int store_get_run(struct store *s, const char *run_id, struct store_run *out);
int store_create_run(struct store *s, const char *experiment_id, const char *name, const char *user,
		     struct store_run *out);
int store_rename_run(struct store *s, const char *run_id, const char *new_name);
int store_delete_run(struct store *s, const char *run_id);
/* Sets the status; a terminal one (FINISHED FAILED KILLED) also sets the end time. */
int store_set_status(struct store *s, const char *run_id, const char *status);
void store_run_release(struct store_run *r);

/* Keys.  list: the keys starting with prefix (NULL: all), in byte order. */
int store_list_kv(struct store *s, enum store_section sec, const struct store_ref *ref,
		  const char *prefix, store_kv_cb *cb, void *ctx);
/* One key; -ENOENT if it is not there. */
int store_get_kv(struct store *s, enum store_section sec, const struct store_ref *ref,
		 const char *key, struct store_kv *out);
void store_kv_release(struct store_kv *kv);

/* Logs a param; the same value again is a no-op, a different one -EPERM. */
int store_log_param(struct store *s, const char *run_id, const char *key, const char *value);
/* Sets (upserts) or deletes a tag of a run, experiment, model or version. */
int store_set_tag(struct store *s, enum store_section sec, const struct store_ref *ref,
		  const char *key, const char *value);
int store_delete_tag(struct store *s, enum store_section sec, const struct store_ref *ref,
		     const char *key);
/* Moves a tag to a new key in one step (-EEXIST never: the new key is replaced). */
int store_rename_tag(struct store *s, enum store_section sec, const struct store_ref *ref,
		     const char *from, const char *to);

/*
 * Logs n points of one metric, all or none.  Points without a step get the
 * next one (one more than the metric's highest step, 0 first), points without
 * a timestamp get now; both are written back into pts.  A backend may queue
 * the points (every read still sees them): if storing them then fails, all
 * written since the last commit is lost and store_sync() says so (-EIO).
 */
int store_log_metrics(struct store *s, const char *run_id, const char *key,
		      struct metric_point *pts, size_t n);
/* Every point of a metric, by step, then timestamp, then value. */
int store_metric_history(struct store *s, const char *run_id, const char *key, store_point_cb *cb,
			 void *ctx);

/* The registry, read-only for now. */
int store_list_models(struct store *s, store_model_cb *cb, void *ctx);
int store_get_model(struct store *s, const char *name, struct store_model *out);
void store_model_release(struct store_model *m);
int store_list_versions(struct store *s, const char *model, store_version_cb *cb, void *ctx);
int store_get_version(struct store *s, const char *model, int64_t version,
		      struct store_version *out);
void store_version_release(struct store_version *v);
int store_list_aliases(struct store *s, const char *model, store_alias_cb *cb, void *ctx);

/*
 * The local folder that holds a run's artifacts, as a new string the caller
 * frees; -ENOTSUP when the artifact URI is not a folder on this machine.
 */
int store_artifact_dir(struct store *s, const struct store_run *run, char **path);

/* A number that moves whenever another client (the MLflow client, another
 * mount) commits a change; 0 when the backend cannot tell. */
uint64_t store_others_version(struct store *s);

/*
 * Durability (SPEC §4).  store_write_token() is taken before a descriptor's
 * first write; store_sync() makes everything written so far safe (durable:
 * also against power loss) and fails with -EIO if anything written since the
 * token could not be made safe.
 */
uint64_t store_write_token(struct store *s);
int store_sync(struct store *s, uint64_t token, int durable);

#endif
