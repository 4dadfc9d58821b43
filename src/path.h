/*
 * path.h - what a mount path means.  Pure: no I/O, no store.
 *
 * path_parse() turns "/experiments/E/R/metrics/train/loss" into a node:
 * its kind and the decoded names it carries (experiment "E", run folder "R",
 * key "train/loss").  Whether those objects exist is the store's business.
 *
 * Names in the tree are percent-encoded where a file name cannot hold them
 * (mlflowfs(1), THE TREE, Names): '/' as %2F, '%' as %25, and a leading '.' as %2E.
 * Decoding accepts upper- or lower-case hex and leaves any other '%' as it
 * is, so "50%off" and "50%25off" both name the experiment "50%off".
 */
#ifndef MFS_PATH_H
#define MFS_PATH_H

#include <stddef.h>
#include <stdint.h>

struct buf;

enum node_kind {
	NODE_ROOT,		/* /                                      */
	NODE_EXPERIMENTS,	/* /experiments                           */
	NODE_EXPERIMENT,	/* /experiments/E                         */
	NODE_EXP_JSON,		/* /experiments/E/.experiment.json        */
	NODE_EXP_TAGS,		/* /experiments/E/.tags[/KEY]             */
	NODE_RUNS_TABLE,	/* /experiments/E/.runs.{csv,tsv}         */
	NODE_PLOTS,		/* /experiments/E/.plots[/KEY.svg]        */
	NODE_RUN,		/* /experiments/E/R                       */
	NODE_RUN_ID,		/* /experiments/E/R/run_id                */
	NODE_STATUS,		/* /experiments/E/R/status                */
	NODE_RUN_JSON,		/* /experiments/E/R/run.json              */
	NODE_PARAMS,		/* /experiments/E/R/params[/KEY]          */
	NODE_METRICS,		/* /experiments/E/R/metrics[/KEY]         */
	NODE_HISTORY,		/* /experiments/E/R/history[/KEY]         */
	NODE_TAGS,		/* /experiments/E/R/tags[/KEY]            */
	NODE_ARTIFACTS,		/* /experiments/E/R/artifacts[/SUBPATH]   */
	NODE_RUN_MODELS,	/* /experiments/E/R/models                */
	NODE_RUN_MODEL,		/* /experiments/E/R/models/NAME (link)    */
	NODE_LOGGED_MODELS,	/* /experiments/E/.models                 */
	NODE_LOGGED_MODEL,	/* /experiments/E/.models/M               */
	NODE_LM_STATUS,		/* /experiments/E/.models/M/status        */
	NODE_LM_PARAMS,		/* /experiments/E/.models/M/params[/KEY]  */
	NODE_LM_METRICS,	/* /experiments/E/.models/M/metrics[/KEY] */
	NODE_LM_TAGS,		/* /experiments/E/.models/M/tags[/KEY]    */
	NODE_LM_FILE,		/* /experiments/E/.models/M/SUBPATH       */
	NODE_RUNS,		/* /runs                                  */
	NODE_RUNS_LINK,		/* /runs/RUN_ID                           */
	NODE_CONTROL,		/* /.mlflowfs                             */
	NODE_CONTROL_STATUS,	/* /.mlflowfs/status                      */
	NODE_CONTROL_ERRORS,	/* /.mlflowfs/errors                      */
	NODE_CONTROL_PARSED,	/* /.mlflowfs/parsed                      */
	NODE_MODELS,		/* /models                                */
	NODE_MODEL,		/* /models/M                              */
	NODE_MODEL_DESC,	/* /models/M/description                  */
	NODE_MODEL_TAGS,	/* /models/M/tags[/KEY]                   */
	NODE_MODEL_ALIASES,	/* /models/M/aliases                      */
	NODE_MODEL_ALIAS,	/* /models/M/aliases/A                    */
	NODE_MODEL_VERSIONS,	/* /models/M/versions                     */
	NODE_VERSION,		/* /models/M/versions/N                   */
	NODE_VERSION_FIELD,	/* /models/M/versions/N/{source,...}      */
	NODE_VERSION_TAGS,	/* /models/M/versions/N/tags[/KEY]        */
	NODE_VERSION_ARTIFACTS, /* /models/M/versions/N/artifacts (link)  */
	NODE_COUNT
};

enum version_field { VF_SOURCE, VF_RUN_ID, VF_STATUS, VF_STAGE, VF_DESCRIPTION };

/* Which node field a named (not fixed) component fills. */
enum path_slot {
	SLOT_NONE,
	SLOT_EXPERIMENT,
	SLOT_RUN,
	SLOT_RUN_ID,
	SLOT_MODEL,
	SLOT_ALIAS,
	SLOT_VERSION,
	SLOT_LOGGED_MODEL, /* a logged model's folder, or a run's link to one */
	SLOT_SUBPATH	   /* the first component of a raw subpath */
};

/* What may follow a node in a path. */
enum path_below {
	BELOW_NOTHING,	/* a file or link */
	BELOW_CHILDREN, /* a folder of the tree */
	BELOW_KEYS,	/* a key folder: the rest is a key */
	BELOW_SUBPATH	/* the artifacts folder: the rest is passed on raw */
};

/* One entry of the tree's table (path.c). */
struct node_def {
	enum node_kind kind;
	enum node_kind parent; /* the folder it is in */
	const char *name;      /* its fixed name; NULL: any other name there */
	enum path_slot slot;   /* where that name goes */
	enum path_below below;
	int field; /* NODE_VERSION_FIELD: which (enum version_field); NODE_RUNS_TABLE: 1 for TSV */
};

/* The whole table: the root first, then every folder's fixed entries in the
 * order listings show them. */
extern const struct node_def path_nodes[];
extern const size_t path_nnodes;

/* The next fixed entry of folder parent at or after *pos (start at 0), or
 * NULL when there is none left. */
const struct node_def *path_fixed_child(enum node_kind parent, size_t *pos);

struct node {
	enum node_kind kind;
	char *experiment; /* decoded experiment name, or NULL */
	char *run;	  /* decoded run folder name, or NULL */
	/*
	 * For the key folders (params, metrics, history, tags, .tags, .plots,
	 * model and version tags): NULL for the folder itself, else the decoded
	 * key, its components joined by '/' ("train/loss").  It may name a key
	 * or a prefix of keys (or, in history/ and .plots/, a key's plot,
	 * "train/loss.svg"); the store tells which.
	 */
	char *key;
	/* NODE_ARTIFACTS: the path below artifacts/, not decoded ("" for the
	 * folder itself, else "a/b.txt" without a leading '/'); NODE_LM_FILE:
	 * the path below the logged model's folder (never ""). */
	char *subpath;
	char *run_id; /* NODE_RUNS_LINK: the name under runs/ */
	char *model;  /* decoded registered model name */
	char *alias;  /* decoded alias name */
	/* NODE_LOGGED_MODEL and below: its decoded folder under .models/;
	 * NODE_RUN_MODEL: the decoded name of the run's link. */
	char *logged_model;
	/* NODE_VERSION*: the version number (>= 1); 0 for a NODE_VERSION
	 * whose name is not a number (a name ln -s makes a version under). */
	int64_t version;
	enum version_field field; /* NODE_VERSION_FIELD; NODE_RUNS_TABLE: 1 for TSV */
};

/*
 * Parses an absolute mount path as FUSE gives it ("/", "/experiments/E", no
 * trailing '/').  Returns 0 and fills *n (release it with path_release), or
 * -ENOENT for a path that can name nothing in the tree (an unknown top-level
 * folder, a file under a file, anything below a version that is not a
 * positive integer or below runs/RUN_ID), or -ENOMEM.
 */
int path_parse(const char *path, struct node *n);

/* Frees what path_parse() allocated; safe on a zeroed node. */
void path_release(struct node *n);

/* Appends the encoded form of name (a file-name-safe single component). */
int path_encode(struct buf *out, const char *name);

/* Appends the decoded form of the len bytes at enc. */
int path_decode(struct buf *out, const char *enc, size_t len);

/*
 * Whether MLflow's path check refuses a key ("train/loss"): a leading '/',
 * an empty, "." or ".." segment, or a leading "..".  Its characters and
 * length are checked elsewhere.
 */
int path_key_refused(const char *key);

/* Appends s with every %XX escape decoded, as in a URI's path (%00 stays). */
int path_uri_decode(struct buf *out, const char *s, size_t len);

/* True for the key-folder kinds, whose node.key names a key or key prefix. */
int path_is_key_kind(enum node_kind kind);

#endif
