/*
 * content.h - the text of the virtual files: run.json, .experiment.json,
 * history lines, one-value files, and the blob that holds a rendering (in
 * memory while small, in an unlinked temporary file beyond, so memory does
 * not grow with a metric's history).
 */
#ifndef MFS_CONTENT_H
#define MFS_CONTENT_H

#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "store.h"

struct store;
struct store_experiment;
struct store_snapshot;

/* Bytes a blob keeps in memory before it moves to a temporary file. */
#define BLOB_MEM_MAX (256 * 1024)

struct blob {
	struct buf mem; /* the content while it is small */
	int fd;		/* -1, or the temporary file holding all of it */
	off_t size;
};

/*
 * A new unlinked file for large content, read and written, in $TMPDIR, else
 * /var/tmp, else /tmp, as SQLite picks its temporary files (a log line for
 * each that fails).  A TMPDIR that is gone or full must not fail a read
 * with its ENOENT: when none works, -EIO.  The caller closes it.
 */
int content_tmpfile(void);

void blob_init(struct blob *b);
void blob_release(struct blob *b);
int blob_add(struct blob *b, const void *data, size_t len);
/* Reads like pread(); returns bytes read or -errno. */
ssize_t blob_read(struct blob *b, char *out, size_t size, off_t off);

/* "VALUE\n" in the shortest round-trip form (metric.h). */
int content_metric(struct buf *out, double value);

/* run.json: {"data": {"metrics", "params", "tags"}, "info": {...}}, keys
 * sorted, two-space indent, as MLflow's Run.to_dictionary() (no inputs). */
int content_run_json(const struct store_snapshot *snap, struct buf *out);

/* .experiment.json: MLflow's dict(Experiment), keys sorted. */
int content_experiment_json(struct store *s, const struct store_experiment *e, struct buf *out);

/*
 * The runs table of an experiment, as CSV into csv and as TSV into tsv (one
 * walk over the runs makes both): a header, then a row for each active run,
 * in the store's listing order, with the columns mlflow.search_runs gives:
 * run (its folder), run_id, status, start_time and end_time (ISO 8601, UTC),
 * duration (seconds), then params.<key> for every param any run has and
 * metrics.<key> for every metric (the latest value), each sorted by key;
 * empty where a run has none.  A CSV field is quoted as RFC 4180 says; in
 * a TSV, tabs and line ends in a value become spaces.
 */
int content_runs_tables(struct store *s, const char *experiment_id, struct blob *csv,
			struct blob *tsv);

/* history/<key>: "STEP VALUE TIMESTAMP_MS\n" per point, by step then time,
 * into out. */
int content_history(struct store *s, const char *run_id, const char *key, struct blob *out);

/*
 * history/<key>.svg: a line plot of one run's metric (svg.h), read from the
 * store twice (measured, then drawn) so memory does not grow with it.
 */
int content_history_svg(struct store *s, const char *run_id, const char *key, struct blob *out);

/* The active runs of an experiment that have a metric, oldest first, as
 * .plots/<key>.svg shows them. */
struct content_plot_run {
	char run_id[STORE_RUN_ID_MAX];
	char *folder;
	int64_t latest_ms; /* the time of the metric's latest point */
};

struct content_plot_runs {
	struct content_plot_run *v;
	size_t n, cap;
};

int content_plot_runs(struct store *s, const char *experiment_id, const char *key,
		      struct content_plot_runs *out);
void content_plot_runs_release(struct content_plot_runs *runs);

/* .plots/<key>.svg: the metric of each of runs as one line, with a legend
 * of their folders. */
int content_plots_svg(struct store *s, const struct content_plot_runs *runs, const char *key,
		      struct blob *out);

/* JSON string literal of s (RFC 8259 escapes), appended to out. */
int content_json_string(struct buf *out, const char *s);

#endif
