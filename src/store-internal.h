/*
 * store-internal.h - what a backend implements: one named function type per
 * operation and struct store_ops, the const table of them.  Backends embed
 * struct store as their first member and downcast with a check of ops.
 * Only store.c and the backends include this file.
 */
#ifndef MFS_STORE_INTERNAL_H
#define MFS_STORE_INTERNAL_H

#include <pthread.h>

#include "store.h"

struct run_index;

typedef void store_close_fn(struct store *s);
typedef int store_describe_fn(struct store *s, struct buf *out);
typedef int store_list_experiments_fn(struct store *s, store_experiment_cb *cb, void *ctx);
typedef int store_get_experiment_fn(struct store *s, const char *name,
				    struct store_experiment *out);
typedef int store_get_experiment_by_id_fn(struct store *s, const char *id,
					  struct store_experiment *out);
typedef int store_create_experiment_fn(struct store *s, const char *name,
				       struct store_experiment *out);
typedef int store_rename_experiment_fn(struct store *s, const char *id, const char *new_name);
typedef int store_delete_experiment_fn(struct store *s, const char *id);
typedef uint64_t store_runs_version_fn(struct store *s);
typedef int store_list_runs_fn(struct store *s, const char *experiment_id, store_run_cb *cb,
			       void *ctx);
typedef int store_get_run_fn(struct store *s, const char *run_id, struct store_run *out);
typedef int store_create_run_fn(struct store *s, const char *experiment_id, const char *name,
				const char *user, struct store_run *out);
typedef int store_rename_run_fn(struct store *s, const char *run_id, const char *new_name);
typedef int store_delete_run_fn(struct store *s, const char *run_id);
typedef int store_set_status_fn(struct store *s, const char *run_id, const char *status);
typedef int store_list_kv_fn(struct store *s, enum store_section sec, const struct store_ref *ref,
			     const char *prefix, store_kv_cb *cb, void *ctx);
typedef int store_get_kv_fn(struct store *s, enum store_section sec, const struct store_ref *ref,
			    const char *key, struct store_kv *out);
typedef int store_log_param_fn(struct store *s, const char *run_id, const char *key,
			       const char *value);
typedef int store_set_tag_fn(struct store *s, enum store_section sec, const struct store_ref *ref,
			     const char *key, const char *value);
typedef int store_delete_tag_fn(struct store *s, enum store_section sec,
				const struct store_ref *ref, const char *key);
typedef int store_rename_tag_fn(struct store *s, enum store_section sec,
				const struct store_ref *ref, const char *from, const char *to);
typedef int store_log_metrics_fn(struct store *s, const char *run_id, const char *key,
				 struct metric_point *pts, size_t n);
typedef int store_metric_history_fn(struct store *s, const char *run_id, const char *key,
				    store_point_cb *cb, void *ctx);
typedef int store_list_models_fn(struct store *s, store_model_cb *cb, void *ctx);
typedef int store_get_model_fn(struct store *s, const char *name, struct store_model *out);
typedef int store_list_versions_fn(struct store *s, const char *model, store_version_cb *cb,
				   void *ctx);
typedef int store_get_version_fn(struct store *s, const char *model, int64_t version,
				 struct store_version *out);
typedef int store_list_aliases_fn(struct store *s, const char *model, store_alias_cb *cb,
				  void *ctx);
typedef int store_artifact_dir_fn(struct store *s, const struct store_run *run, char **path);
typedef uint64_t store_write_token_fn(struct store *s);
typedef int store_sync_fn(struct store *s, uint64_t token, int durable);

struct store_ops {
	const char *name; /* "sqlite", "rest" */
	store_close_fn *close;
	store_describe_fn *describe;
	store_list_experiments_fn *list_experiments;
	store_get_experiment_fn *get_experiment;
	store_get_experiment_by_id_fn *get_experiment_by_id;
	store_create_experiment_fn *create_experiment;
	store_rename_experiment_fn *rename_experiment;
	store_delete_experiment_fn *delete_experiment;
	/*
	 * A number that changes whenever the list or the names of an
	 * experiment's runs may have changed: our own creates, renames and
	 * deletes, or anything another client committed.  store.c rebuilds
	 * its folder index when it moves.
	 */
	store_runs_version_fn *runs_version;
	/* A number that moves when another client commits; NULL if the
	 * backend cannot tell. */
	store_runs_version_fn *others_version;
	/* Active runs of one experiment, oldest first (start time, then
	 * run id); folder is left NULL, store.c assigns folders. */
	store_list_runs_fn *list_runs;
	/* Any run by id; folder left NULL. */
	store_get_run_fn *get_run;
	store_create_run_fn *create_run;
	store_rename_run_fn *rename_run;
	store_delete_run_fn *delete_run;
	store_set_status_fn *set_status;
	store_list_kv_fn *list_kv;
	store_get_kv_fn *get_kv;
	store_log_param_fn *log_param;
	store_set_tag_fn *set_tag;
	store_delete_tag_fn *delete_tag;
	store_rename_tag_fn *rename_tag;
	store_log_metrics_fn *log_metrics;
	store_metric_history_fn *metric_history;
	store_list_models_fn *list_models;
	store_get_model_fn *get_model;
	store_list_versions_fn *list_versions;
	store_get_version_fn *get_version;
	store_list_aliases_fn *list_aliases;
	store_artifact_dir_fn *artifact_dir;
	store_write_token_fn *write_token;
	store_sync_fn *sync;
};

/* The part of every store that store.c owns; backends embed it first. */
struct store {
	const struct store_ops *ops;
	pthread_mutex_t index_lock;
	struct run_index *index; /* protected by index_lock; most recently used first */
	int read_only;		 /* set by the backend's open, read-only afterwards */
};

/* Backends call this once their own fields are set up. */
int store_base_init(struct store *s, const struct store_ops *ops);

/* Records why the calling thread's store call failed (store_errmsg()). */
void store_set_errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Backend constructors: NULL and *errmsg on failure. */
struct store *store_sqlite_open(const struct mfs_config *cfg, char **errmsg);

#endif
