/*
 * store-internal.h - what a store implements: one named function type per
 * operation and struct store_ops, the const table of them.  Stores embed
 * struct store as their first member and downcast with a check of ops; a
 * store may wrap another (cache.c).  Only store.c, the backends and the
 * wrappers include this file.
 */
#ifndef MFS_STORE_INTERNAL_H
#define MFS_STORE_INTERNAL_H

#include "store.h"

typedef void store_close_fn(struct store *s);
typedef int store_describe_fn(struct store *s, struct buf *out);
typedef const char *store_artifact_root_fn(const struct store *s);
typedef int store_others_version_fn(struct store *s, uint64_t *v);
typedef struct store_batch *store_batch_new_fn(struct store *s);
typedef int store_batch_commit_fn(struct store *s, struct store_batch *b, int durable);
typedef void store_batch_free_fn(struct store *s, struct store_batch *b);
typedef int store_list_experiments_fn(struct store *s, store_experiment_cb *cb, void *ctx);
typedef int store_get_experiment_fn(struct store *s, const char *name,
				    struct store_experiment *out);
typedef int store_get_experiment_by_id_fn(struct store *s, const char *id,
					  struct store_experiment *out);
typedef int store_create_experiment_fn(struct store *s, struct store_batch *b, const char *name,
				       struct store_experiment *out);
typedef int store_rename_experiment_fn(struct store *s, struct store_batch *b, const char *id,
				       const char *new_name);
typedef int store_delete_experiment_fn(struct store *s, struct store_batch *b, const char *id);
typedef int store_list_runs_fn(struct store *s, const char *experiment_id, store_run_cb *cb,
			       void *ctx);
typedef int store_find_run_fn(struct store *s, const char *experiment_id, const char *folder,
			      struct store_run *out);
typedef int store_get_run_fn(struct store *s, const char *run_id, struct store_run *out);
typedef int store_create_run_fn(struct store *s, struct store_batch *b, const char *experiment_id,
				const char *name, const char *user, struct store_run *out);
typedef int store_rename_run_fn(struct store *s, struct store_batch *b, const char *run_id,
				const char *new_name);
typedef int store_delete_run_fn(struct store *s, struct store_batch *b, const char *run_id);
typedef int store_set_status_fn(struct store *s, struct store_batch *b, const char *run_id,
				const char *status);
typedef int store_get_snapshot_fn(struct store *s, const char *run_id, unsigned want,
				  struct store_snapshot **out);
typedef int store_list_kv_fn(struct store *s, enum store_section sec, const struct store_ref *ref,
			     const char *prefix, store_kv_cb *cb, void *ctx);
typedef int store_get_kv_fn(struct store *s, enum store_section sec, const struct store_ref *ref,
			    const char *key, struct store_kv *out);
typedef int store_log_param_fn(struct store *s, struct store_batch *b, const char *run_id,
			       const char *key, const char *value);
typedef int store_set_tag_fn(struct store *s, struct store_batch *b, enum store_section sec,
			     const struct store_ref *ref, const char *key, const char *value);
typedef int store_delete_tag_fn(struct store *s, struct store_batch *b, enum store_section sec,
				const struct store_ref *ref, const char *key);
typedef int store_rename_tag_fn(struct store *s, struct store_batch *b, enum store_section sec,
				const struct store_ref *ref, const char *from, const char *to);
typedef int store_next_step_fn(struct store *s, const char *run_id, const char *key, int64_t *next);
typedef int store_reserve_steps_fn(struct store *s, const char *run_id, const char *key,
				   int64_t floor, size_t n, int64_t *first);
typedef int store_log_metrics_fn(struct store *s, struct store_batch *b, const char *run_id,
				 const char *key, const struct metric_point *pts, size_t n);
typedef int store_metric_history_fn(struct store *s, const char *run_id, const char *key,
				    store_point_cb *cb, void *ctx);
typedef int store_history_stat_fn(struct store *s, const char *run_id, const char *key,
				  struct store_history_stat *out);
typedef int store_list_models_fn(struct store *s, store_model_cb *cb, void *ctx);
typedef int store_get_model_fn(struct store *s, const char *name, struct store_model *out);
typedef int store_list_versions_fn(struct store *s, const char *model, store_version_cb *cb,
				   void *ctx);
typedef int store_get_version_fn(struct store *s, const char *model, int64_t version,
				 struct store_version *out);
typedef int store_list_aliases_fn(struct store *s, const char *model, store_alias_cb *cb,
				  void *ctx);
typedef int store_list_logged_models_fn(struct store *s, const char *experiment_id,
					store_logged_model_cb *cb, void *ctx);
typedef int store_get_logged_model_fn(struct store *s, const char *id,
				      struct store_logged_model *out);
typedef int store_create_model_fn(struct store *s, struct store_batch *b, const char *name);
typedef int store_rename_model_fn(struct store *s, struct store_batch *b, const char *name,
				  const char *new_name);
typedef int store_delete_model_fn(struct store *s, struct store_batch *b, const char *name);
typedef int store_set_description_fn(struct store *s, struct store_batch *b, const char *model,
				     int64_t version, const char *text);
typedef int store_create_version_fn(struct store *s, struct store_batch *b, const char *model,
				    const char *source, const char *run_id, int64_t *version);
typedef int store_delete_version_fn(struct store *s, struct store_batch *b, const char *model,
				    int64_t version);
typedef int store_set_stage_fn(struct store *s, struct store_batch *b, const char *model,
			       int64_t version, const char *stage);
typedef int store_set_alias_fn(struct store *s, struct store_batch *b, const char *model,
			       const char *alias, int64_t version);
typedef int store_delete_alias_fn(struct store *s, struct store_batch *b, const char *model,
				  const char *alias);

/*
 * Unless a slot says otherwise it is called by its store_*() wrapper, which
 * has cleared the thread's message and zeroed any output struct, and it may
 * not be NULL.  A write slot always gets a batch the same store made.
 */
struct store_ops {
	const char *name; /* "sqlite", "cache", ... */
	store_close_fn *close;
	store_describe_fn *describe;
	/* NULL: the store keeps no artifacts on this machine. */
	store_artifact_root_fn *artifact_root;
	/* Cheap enough to call at every read (the cache does); NULL: the
	 * store cannot tell (the wrapper answers -ENOSYS). */
	store_others_version_fn *others_version;
	store_batch_new_fn *batch_new;
	store_batch_commit_fn *batch_commit;
	/* Never called with NULL. */
	store_batch_free_fn *batch_free;
	store_list_experiments_fn *list_experiments;
	store_get_experiment_fn *get_experiment;
	store_get_experiment_by_id_fn *get_experiment_by_id;
	store_create_experiment_fn *create_experiment;
	store_rename_experiment_fn *rename_experiment;
	store_delete_experiment_fn *delete_experiment;
	/* Active runs, oldest first (start time, then run id).  A backend
	 * leaves folder NULL: folders are the cache's (it sees every run). */
	store_list_runs_fn *list_runs;
	/* The cache's: NULL in backends (the wrapper answers -ENOSYS). */
	store_find_run_fn *find_run;
	/* Any run by id; a backend leaves folder NULL. */
	store_get_run_fn *get_run;
	store_create_run_fn *create_run;
	store_rename_run_fn *rename_run;
	store_delete_run_fn *delete_run;
	store_set_status_fn *set_status;
	/* A new snapshot (store_snapshot_new) the caller owns.  With
	 * SNAP_RUN_KNOWN in want the caller has the run's info already: the
	 * store may leave snapshot->run zeroed. */
	store_get_snapshot_fn *get_snapshot;
	store_list_kv_fn *list_kv;
	store_get_kv_fn *get_kv;
	store_log_param_fn *log_param;
	store_set_tag_fn *set_tag;
	store_delete_tag_fn *delete_tag;
	store_rename_tag_fn *rename_tag;
	/* One more than the highest step logged, INT64_MIN when the metric
	 * has no point; reserves nothing. */
	store_next_step_fn *next_step;
	/* The cache's: NULL in backends (the wrapper then asks next_step). */
	store_reserve_steps_fn *reserve_steps;
	store_log_metrics_fn *log_metrics;
	store_metric_history_fn *metric_history;
	store_history_stat_fn *history_stat;
	store_list_models_fn *list_models;
	store_get_model_fn *get_model;
	store_list_versions_fn *list_versions;
	store_get_version_fn *get_version;
	store_list_aliases_fn *list_aliases;
	/* Logged models: NULL in a store that has none (the wrappers answer
	 * an empty list and -ENOENT).  Backends leave folder NULL: the
	 * wrapper names the folders. */
	store_list_logged_models_fn *list_logged_models;
	store_get_logged_model_fn *get_logged_model;
	/* Registry writes: all NULL in a store whose registry is read-only
	 * (the wrappers answer -EROFS). */
	store_create_model_fn *create_model;
	store_rename_model_fn *rename_model;
	store_delete_model_fn *delete_model;
	store_set_description_fn *set_description;
	store_create_version_fn *create_version;
	store_delete_version_fn *delete_version;
	store_set_stage_fn *set_stage;
	store_set_alias_fn *set_alias;
	store_delete_alias_fn *delete_alias;
};

/* For get_snapshot between stores: the caller knows the run's info. */
#define SNAP_RUN_KNOWN (1u << 8)

/* The part of every store the wrappers read; stores embed it first. */
struct store {
	const struct store_ops *ops;
	int read_only; /* set by the store's open, read-only afterwards */
	/* Writes asked of this store (store_writes); atomic. */
	uint64_t writes;
};

/* The part of every batch; stores embed it first and check owner. */
struct store_batch {
	const struct store_ops *owner;
};

/* For a store that wraps another: next's next_step slot. */
int store_next_step(struct store *s, const char *run_id, const char *key, int64_t *next);

/* Records why the calling thread's store call failed (store_errmsg()). */
void store_set_errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Snapshots and their sections are reference counted; these make a new
 * one (one reference, every section NULL), or NULL without memory. */
struct store_snapshot *store_snapshot_new(void);
struct store_kvs *store_kvs_new(size_t cap);
/* Appends a copy of kv (keys must come sorted); -ENOMEM. */
int store_kvs_add(struct store_kvs *kvs, const struct store_kv *kv);
/* One more reference. */
const struct store_kvs *store_kvs_hold(const struct store_kvs *kvs);
void store_kvs_put(const struct store_kvs *kvs);
/* Copies src's strings into dst (a zeroed struct); -ENOMEM. */
int store_run_copy(struct store_run *dst, const struct store_run *src);
int store_experiment_copy(struct store_experiment *dst, const struct store_experiment *src);
/* The same for a logged model (its folder too, when it has one). */
int store_logged_model_copy(struct store_logged_model *dst, const struct store_logged_model *src);

/* Backend constructors: NULL and *errmsg on failure. */
struct store *store_sqlite_open(const struct mfs_config *cfg, char **errmsg);
struct store *store_rest_open(const struct mfs_config *cfg, char **errmsg);

/*
 * The remote store's errno (positive) for an answer that is not a success:
 * by MLflow's error_code when the server sent one (code, message may be
 * NULL), else by the HTTP status (a proxy or the auth layer answers in
 * plain text).  Messages that name a state refine the code: a changed param
 * is EPERM, a write to a deleted run or experiment ENOENT.
 */
int rest_error_to_errno(long status, const char *code, const char *message);

#endif
