/*
 * fake-store.h - a store for unit tests: a small world in memory behind a
 * full struct store_ops, that counts every call per operation (and in all)
 * and can be told to fail an operation with a given -errno, or the commits
 * of one batch.  It plays the whole stack the fs layer sees (the cache over
 * a backend): it answers folders (find_run, list_runs, get_run) and reserves
 * metric steps itself.  It keeps the contracts of store.h and
 * store-internal.h, and counts what breaks them (a batch from another store,
 * a point without its step or time, a batch freed twice) as violations.
 *
 * The world, as fake_store_new() makes it (times in ms; T0 1700000000000):
 *
 *   experiment 0 "Default"      no runs
 *   experiment 1 "vision"       tags mlflow.note.content, team=cv
 *     run FAKE_RUN_A "baseline" (folder baseline), oldest
 *       params  epochs=10 lr=0.01 opt/name=adam
 *       metrics acc (steps 0 1), loss (steps 0 1 2, latest 0.25),
 *               train/acc (step 0), train/loss (steps 0 1)
 *       tags    mlflow.runName=baseline mlflow.user=alice owner=alice team/lead=bob
 *     run FAKE_RUN_B "baseline" (folder baseline@b0b1b2b3): param lr=0.1, metric loss
 *     run FAKE_RUN_C, no name (folder: its run id)
 *     run FAKE_RUN_D "old", deleted
 *   experiment 2 "nlp"
 *     run FAKE_RUN_E "bert": param model=bert
 *   experiment 3 "gone", deleted
 *   model "resnet": tag framework=torch; version 1 from run A, version 2
 *     from run B (stage Production); alias champion -> 2
 *
 * Single-threaded use is enough for tests, but the store keeps the rule of
 * store.h: it holds its lock only around its own tables, never while it
 * calls a callback (which gets copies).
 */
#ifndef MFS_FAKE_STORE_H
#define MFS_FAKE_STORE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "metric.h"
#include "store-internal.h"

#define FAKE_T0 INT64_C(1700000000000)

#define FAKE_RUN_A "a1b2c3d4e5f60718293a4b5c6d7e8f90"
#define FAKE_RUN_B "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
#define FAKE_RUN_C "c0ffee00c0ffee00c0ffee00c0ffee00"
#define FAKE_RUN_D "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
#define FAKE_RUN_E "e0e1e2e3e4e5e6e7e8e9eaebecedeeef"

/* Every slot of struct store_ops, in its order; the names are the slots'. */
#define FAKE_OPS(X)             \
	X(close)                \
	X(describe)             \
	X(artifact_root)        \
	X(others_version)       \
	X(batch_new)            \
	X(batch_commit)         \
	X(batch_free)           \
	X(list_experiments)     \
	X(get_experiment)       \
	X(get_experiment_by_id) \
	X(create_experiment)    \
	X(rename_experiment)    \
	X(delete_experiment)    \
	X(list_runs)            \
	X(find_run)             \
	X(get_run)              \
	X(create_run)           \
	X(rename_run)           \
	X(delete_run)           \
	X(set_status)           \
	X(get_snapshot)         \
	X(list_kv)              \
	X(get_kv)               \
	X(log_param)            \
	X(set_tag)              \
	X(delete_tag)           \
	X(rename_tag)           \
	X(next_step)            \
	X(reserve_steps)        \
	X(log_metrics)          \
	X(metric_history)       \
	X(history_stat)         \
	X(list_models)          \
	X(get_model)            \
	X(list_versions)        \
	X(get_version)          \
	X(list_aliases)

#define FAKE_OP_ENUM(name) FAKE_##name,
enum fake_op { FAKE_OPS(FAKE_OP_ENUM) FAKE_OP_COUNT };
#undef FAKE_OP_ENUM

struct fake_world;

struct fake_store {
	struct store base; /* first: what the fs layer is given */
	pthread_mutex_t lock;
	/* Calls so far, per operation and in all (a failed call counts). */
	unsigned long calls[FAKE_OP_COUNT]; /* protected by lock */
	unsigned long total;		    /* protected by lock */
	/* What an operation answers instead of doing its work: 0, or a
	 * -errno (batch_new then answers NULL).  Set with fake_store_fail. */
	int fail[FAKE_OP_COUNT]; /* protected by lock */
	/* The batch (by fake_store_batches_made order, from 1) whose commits
	 * fail with -EIO while it holds uncommitted writes; 0: none. */
	unsigned fail_batch;
	unsigned batches_made; /* protected by lock */
	/* Contract breaches seen, each also said on stderr. */
	unsigned violations; /* protected by lock */
	/* The last log_metrics call: its key and a copy of its points. */
	char *logged_key;
	struct metric_point *logged;
	size_t nlogged;
	/* The last reserve_steps call's floor and count. */
	int64_t reserve_floor;
	size_t reserve_n;
	struct fake_world *w; /* protected by lock */

	/*
	 * Knobs for testing what wraps the fake (the cache, unit-cache.c).
	 * All zero, as fake_store_new() leaves them, the fake is as described
	 * above; set them before the fake is shared between threads.
	 */
	/* What others_version answers in *v, unless fail[] says otherwise;
	 * set with fake_store_set_others_version(). */
	uint64_t others_version; /* protected by lock */
	/* Answer as a bare backend does (store-internal.h): every run given
	 * out (list_runs, find_run, get_run, create_run, get_snapshot) has
	 * folder NULL, so folders shown through a wrapper are the wrapper's. */
	int no_folders;
	/* set_tag of mlflow.runName on a run renames the run too, as MLflow's
	 * stores do. */
	int sync_run_name;
	/* get_snapshot answers a run id the world does not hold with an empty
	 * active run of experiment "0" (no name, no keys): as many runs as a
	 * test wants to look up. */
	int phantom_runs;
	/* A run's last_change after set_status and log_metrics: from the
	 * latest point of each metric only, as store_sqlite computes it
	 * (MAX(timestamp) of latest_metrics); 0: from every point. */
	int last_change_latest;
	/* list_runs hands each run's snapshot (every section) along with it,
	 * as a remote search returns runs whole. */
	int whole_runs;
	/* If set, the id of the next run create_run makes (then cleared). */
	char create_id[STORE_RUN_ID_MAX];
	/* Called by get_experiment and get_experiment_by_id (found or
	 * -ENOENT), and by a successful list_runs, get_run, get_snapshot or
	 * next_step, after it read the world and before it answers, with no
	 * lock of the fake held: what the hook writes lands while the read is
	 * in flight. */
	void (*in_flight)(struct fake_store *f, enum fake_op op, void *arg);
	void *in_flight_arg;
};

/* A new store holding the world above; NULL without memory.  Free it with
 * store_close(&f->base). */
struct fake_store *fake_store_new(void);

/* The slot name of op ("get_snapshot"); the op of a name, or -1. */
const char *fake_op_name(enum fake_op op);
int fake_op_parse(const char *name, size_t len);

/* Calls counted by a fake, per operation and in all: a snapshot, or the
 * difference of two, or a budget read from a spec. */
struct fake_counts {
	unsigned long op[FAKE_OP_COUNT];
	unsigned long total;
};

/* The calls f counted so far. */
void fake_counts_take(struct fake_store *f, struct fake_counts *c);
/* The calls f counted since before, into d. */
void fake_counts_since(struct fake_store *f, const struct fake_counts *before,
		       struct fake_counts *d);
/* "get_experiment list_runs=2": each op once, or =N times; -1 if unreadable. */
int fake_counts_parse(const char *spec, struct fake_counts *c);
/* c in the spec's form ("get_snapshot list_runs=2"), "none" for no call. */
void fake_counts_format(const struct fake_counts *c, struct buf *out);

/* Makes op answer err (a -errno; 0 to stop failing). */
void fake_store_fail(struct fake_store *f, enum fake_op op, int err);
/* Moves what others_version answers: another client "changed" the store. */
void fake_store_set_others_version(struct fake_store *f, uint64_t v);

/* Batches made so far, and those not yet freed. */
unsigned fake_store_batches_made(struct fake_store *f);
unsigned fake_store_live_batches(struct fake_store *f);

/* Looks in the world (for checking effects).  The strings are new ones
 * the caller frees; NULL when there is no such thing. */
char *fake_store_param(struct fake_store *f, const char *run_id, const char *key);
char *fake_store_run_tag(struct fake_store *f, const char *run_id, const char *key);
char *fake_store_exp_tag(struct fake_store *f, const char *exp_id, const char *key);
char *fake_store_run_status(struct fake_store *f, const char *run_id);
char *fake_store_run_name(struct fake_store *f, const char *run_id);
/* Points of a metric (0 when there is none); the latest is the one with
 * the highest (step, timestamp, value). */
size_t fake_store_metric_points(struct fake_store *f, const char *run_id, const char *key);
/* The id of the active experiment named name, as a new string; NULL if none. */
char *fake_store_experiment_id(struct fake_store *f, const char *name);
/* Whether run_id is known and deleted. */
int fake_store_run_deleted(struct fake_store *f, const char *run_id);
/* The run id of the newest active run named name in experiment exp_id. */
char *fake_store_run_named(struct fake_store *f, const char *exp_id, const char *name);

#endif
