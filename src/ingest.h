/*
 * ingest.h - files that unmodified training programs write under a run's
 * artifacts/ (CSV loggers, dvclive, trainer_state.json, hparams and config
 * files), also logged as metrics and params (mlflowfs(1), PARSED FILES).
 *
 * Two layers.  The parsers are pure: they read bytes and call a sink for
 * each point or param, and never touch the store.  The daemon-wide state
 * keeps, per recognised file (run id and path below artifacts/), the parse
 * position, the header and the points already logged, so that a file
 * reopened for append goes on where it stopped and nothing is logged twice.
 */
#ifndef MFS_INGEST_H
#define MFS_INGEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

struct art_registry;
struct store;
struct store_batch;

enum ingest_format {
	INGEST_NONE,	      /* not recognised: an artifact only */
	INGEST_TABLE,	      /* *.csv *.tsv *.log *.txt with a step or epoch column */
	INGEST_DVCLIVE,	      /* plots/metrics/<name>.tsv: the metric is <name> */
	INGEST_TRAINER_STATE, /* trainer_state.json: log_history */
	INGEST_METRICS_JSON,  /* metrics.json: dvclive's summary */
	INGEST_PARAMS_YAML,   /* hparams.yaml args.yaml params.yaml .hydra/config.yaml */
	INGEST_PARAMS_JSON,   /* config.json */
};

/* The format a file's path below artifacts/ names; by name only. */
enum ingest_format ingest_recognise(const char *subpath);
const char *ingest_format_name(enum ingest_format f);

/* Where parsed values go.  A point's ts is milliseconds, or -1 for now.
 * note reports something skipped (err a positive errno). */
struct ingest_sink {
	void (*point)(void *ctx, const char *key, double value, int64_t step, int64_t ts);
	void (*param)(void *ctx, const char *key, const char *value);
	void (*note)(void *ctx, int err, const char *why);
	void *ctx;
};

/* Room for a mapped key with its NUL (MLflow allows 250 characters). */
#define INGEST_KEY_MAX 1024

/*
 * Maps a column or field name to an MLflow key in out (size bytes):
 * trimmed of blanks and quotes, '(' and ')' dropped, any other character
 * MLflow refuses in a key (it takes letters, digits, '_' '-' '.' '/' ' '
 * ':') becomes '_'.  Returns the key's length; 0 when nothing is left, -1
 * when the key is still refused (too long, or an empty, '.' or '..' path
 * segment, or a leading '/').
 */
int ingest_key_map(const char *in, size_t len, char *out, size_t size);

/* A metric table, fed its bytes in order. */
struct ingest_table {
	char sep;    /* the header's separator; 0 before the header */
	int stopped; /* the file is not a table (or no longer parsed) */
	size_t ncols;
	char **keys;	 /* per column: its metric key, NULL if none */
	int step_col;	 /* the step: "step", else "epoch" */
	int ts_col;	 /* "timestamp", -1 if none */
	char *fixed;	 /* dvclive: the metric of the one value column */
	struct buf line; /* the unfinished last line */
};

/* fixed: the key of the value column (dvclive), or NULL. */
int ingest_table_init(struct ingest_table *t, const char *fixed);
/* Forgets the header and the unfinished line: the file starts again. */
void ingest_table_reset(struct ingest_table *t);
void ingest_table_release(struct ingest_table *t);
/* The longest line kept while unfinished; a longer one stops the table. */
#define INGEST_LINE_MAX (64 * 1024)
/*
 * Parses the complete lines of data (after what came before) and calls the
 * sink for each numeric cell; keeps the unfinished line.  Returns 0, or 1
 * when the table stopped now (not a table, or a line too long: noted).
 */
int ingest_table_feed(struct ingest_table *t, const char *data, size_t len,
		      const struct ingest_sink *s);

/*
 * Whole files, parsed at once (text need not be NUL-terminated).  Return
 * 0, or -EINVAL for text that is not the format (noted).
 * params: nested mappings and lists flattened with '.' (list items by
 * index); a scalar's text as written; null as "None"; empty mappings and
 * lists give nothing.
 */
int ingest_yaml_params(const char *text, size_t len, const struct ingest_sink *s);
int ingest_json_params(const char *text, size_t len, const struct ingest_sink *s);
/* Each log_history entry: its numbers (epoch too) at its step. */
int ingest_trainer_state(const char *text, size_t len, const struct ingest_sink *s);
/* Numbers flattened with '/' at the top-level "step" (else 0). */
int ingest_metrics_json(const char *text, size_t len, const struct ingest_sink *s);

/* ---- the daemon-wide state ------------------------------------------- */

struct ingest;
struct ingest_file;

struct ingest *ingest_new(void);
void ingest_free(struct ingest *g);

/*
 * The state of a recognised file being opened (made if new; with trunc,
 * the file starts empty); NULL if the name is not recognised or without
 * memory.  Release with ingest_put().  uri: the run's artifact URI.
 */
struct ingest_file *ingest_open(struct ingest *g, const char *run_id, const char *uri,
				const char *subpath, int trunc);
void ingest_put(struct ingest *g, struct ingest_file *f);

/*
 * size bytes were written at off: complete rows of a table are logged into
 * b now; anything else is parsed at close.  Never fails the write: what
 * cannot be logged is noted in .mlflowfs/errors under path.  Returns
 * whether something was logged (b has writes to commit).
 */
int ingest_write(struct ingest *g, struct ingest_file *f, struct store *s, struct store_batch *b,
		 const char *path, const char *data, size_t size, off_t off);
/* The file was truncated to size. */
void ingest_truncate(struct ingest_file *f, off_t size);
/* The same by name, for a truncate(2) without an open file. */
void ingest_truncate_path(struct ingest *g, const char *run_id, const char *subpath, off_t size);
/*
 * A descriptor of the file is closed: a whole-file format that changed, or
 * a table written out of order, is read back through art and parsed.
 * Returns whether something was logged into b.
 */
int ingest_close(struct ingest *g, struct ingest_file *f, struct store *s, struct store_batch *b,
		 struct art_registry *art, const char *path);
/* The file or folder at subpath was removed or renamed: its state goes. */
void ingest_forget(struct ingest *g, const char *run_id, const char *subpath);

/* .mlflowfs/parsed: "RUN_ID PATH FORMAT KEY..." for the latest files. */
int ingest_render(struct ingest *g, struct buf *out);
/* parsing, parsed_files, parsed_points, parsed_params and parse_states (the
 * files whose state is kept) lines for .mlflowfs/status. */
int ingest_describe(struct ingest *g, struct buf *out);

#endif
