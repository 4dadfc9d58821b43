/*
 * store_sqlite.c - the local backend: MLflow's own SQLite database, read and
 * written directly with MLflow's rules (latest_metrics kept in the same
 * transaction as metrics, soft deletes, runs.name mirrored in mlflow.runName,
 * a registered model's new name carried to every registry table).
 * It parses its own URIs (sqlite:///relative.db, sqlite:////abs/path.db).
 *
 * The writer connection (sqldb.c) serves every thread, so reads see this
 * mount's writes at once, committed or not (mlflowfs(1), WHEN DATA IS SAFE); writes share one
 * transaction committed within 20 ms, and at every close() and fsync().
 */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "log.h"
#include "metric.h"
#include "options.h"
#include "path.h"
#include "schema.h"
#include "sqldb.h"
#include "store-internal.h"

/*
 * Every statement the backend runs.  In the text, @EWS@ and @MWS@ become
 * "AND <alias>workspace = 'default'" when the experiments (@EWS@) or the
 * registry tables (@MWS@) have MLflow 3's workspace column, else nothing.
 */
enum sql_id {
	Q_EXP_LIST,
	Q_EXP_BY_NAME,
	Q_EXP_NAME_TAKEN,
	Q_EXP_BY_ID,
	Q_EXP_INSERT,
	Q_EXP_SET_LOCATION,
	Q_EXP_RENAME,
	Q_EXP_DELETE,
	Q_EXP_HAS_ACTIVE_RUNS,
	Q_RUN_LIST,
	Q_RUN_GET,
	Q_RUN_INSERT,
	Q_RUN_RENAME,
	Q_RUN_DELETE,
	Q_RUN_STATUS,
	Q_RUN_WRITABLE,
	Q_PARAM_LIST,
	Q_PARAM_GET,
	Q_PARAM_INSERT,
	Q_TAG_LIST,
	Q_TAG_GET,
	Q_TAG_UPSERT,
	Q_TAG_DELETE,
	Q_EXP_TAG_LIST,
	Q_EXP_TAG_GET,
	Q_EXP_TAG_UPSERT,
	Q_EXP_TAG_DELETE,
	Q_MODEL_TAG_LIST,
	Q_MODEL_TAG_GET,
	Q_VERSION_TAG_LIST,
	Q_VERSION_TAG_GET,
	Q_METRIC_LIST,
	Q_METRIC_GET,
	Q_METRIC_MAX_STEP,
	Q_METRIC_INSERT,
	Q_LATEST_UPSERT,
	Q_METRIC_HISTORY,
	Q_HISTORY_STAT,
	Q_MODEL_LIST,
	Q_MODEL_GET,
	Q_VERSION_LIST,
	Q_VERSION_GET,
	Q_ALIAS_LIST,
	Q_MODEL_TAG_UPSERT,
	Q_MODEL_TAG_DELETE,
	Q_VERSION_TAG_UPSERT,
	Q_VERSION_TAG_DELETE,
	Q_MODEL_EXISTS,
	Q_MODEL_INSERT,
	Q_MODEL_TOUCH,
	Q_MODEL_RENAME,
	Q_MODEL_RENAME_TAGS,
	Q_MODEL_RENAME_ALIASES,
	Q_MODEL_RENAME_VERSIONS,
	Q_MODEL_RENAME_VERSION_TAGS,
	Q_MODEL_TOUCH_VERSIONS,
	Q_MODEL_HAS_VERSIONS,
	Q_MODEL_DROP_VERSION_TAGS,
	Q_MODEL_DROP_VERSIONS,
	Q_MODEL_DROP_TAGS,
	Q_MODEL_DROP_ALIASES,
	Q_MODEL_DELETE,
	Q_MODEL_DESCRIBE,
	Q_VERSION_LIVE,
	Q_VERSION_MAX,
	Q_VERSION_INSERT,
	Q_VERSION_DESCRIBE,
	Q_VERSION_STAGE,
	Q_VERSION_DELETE,
	Q_VERSION_DROP_ALIASES,
	Q_ALIAS_UPSERT,
	Q_ALIAS_DELETE,
	Q_LM_TABLES,
	Q_LM_LIST,
	Q_LM_GET,
	Q_LM_PARAM_LIST,
	Q_LM_PARAM_GET,
	Q_LM_METRIC_LIST,
	Q_LM_METRIC_GET,
	Q_LM_TAG_LIST,
	Q_LM_TAG_GET,
	Q_COUNT
};

#define EXP_COLS \
	"experiment_id, name, artifact_location, lifecycle_stage, creation_time, last_update_time"
/* A run's name is runs.name, or its mlflow.runName tag when that is empty. */
#define RUN_COLS                                                                        \
	"r.run_uuid, r.experiment_id, r.status, "                                       \
	"CASE WHEN r.name IS NULL OR r.name = '' THEN (SELECT t.value FROM tags t "     \
	"WHERE t.run_uuid = r.run_uuid AND t.key = 'mlflow.runName') ELSE r.name END, " \
	"r.lifecycle_stage, r.start_time, r.end_time, "                                 \
	"(SELECT MAX(m.timestamp) FROM latest_metrics m WHERE m.run_uuid = r.run_uuid)"
#define PREFIX_COND(col, n) "(?" #n " IS NULL OR substr(" col ", 1, length(?" #n ")) = ?" #n ")"
#define VERSION_COLS                                                                     \
	"name, version, creation_time, last_updated_time, description, source, run_id, " \
	"status, current_stage, storage_location"
#define LM_COLS                                                                  \
	"model_id, experiment_id, name, artifact_location, status, model_type, " \
	"source_run_id, creation_timestamp_ms, last_updated_timestamp_ms"
/* logged_models has no workspace column: MLflow scopes a logged model by its
 * experiment's workspace. */
#define LM_IN_WORKSPACE "experiment_id IN (SELECT experiment_id FROM experiments WHERE 1 @EWS@)"
/*
 * Each metric of a logged model as one point, its latest as a run's
 * metrics/ shows it (and the remote store does): the highest step, then the
 * newest timestamp, then the greatest value.  MLflow writes a NaN as 0 and
 * never NULL; a NULL reads as NaN.  cond picks the names.
 */
#define LM_METRIC_LATEST(cond)                                                          \
	"SELECT metric_name, metric_value, metric_value IS NULL, metric_step, "         \
	"metric_timestamp_ms FROM (SELECT metric_name, metric_value, metric_step, "     \
	"metric_timestamp_ms, row_number() OVER (PARTITION BY metric_name ORDER BY "    \
	"metric_step DESC, metric_timestamp_ms DESC, metric_value DESC) AS newest "     \
	"FROM logged_model_metrics WHERE model_id = ?1 AND " cond ") WHERE newest = 1 " \
	"ORDER BY metric_name"

static const char *const sql_text[Q_COUNT] = {
	[Q_EXP_LIST] =
		"SELECT " EXP_COLS " FROM experiments WHERE lifecycle_stage = 'active' @EWS@ "
		"ORDER BY experiment_id",
	[Q_EXP_BY_NAME] = "SELECT " EXP_COLS " FROM experiments WHERE name = ?1 "
			  "AND lifecycle_stage = 'active' @EWS@",
	[Q_EXP_NAME_TAKEN] = "SELECT lifecycle_stage FROM experiments WHERE name = ?1 @EWS@",
	[Q_EXP_BY_ID] = "SELECT " EXP_COLS " FROM experiments WHERE experiment_id = ?1 @EWS@",
	[Q_EXP_INSERT] = "INSERT INTO experiments (name, artifact_location, lifecycle_stage, "
			 "creation_time, last_update_time) VALUES (?1, NULL, 'active', ?2, ?2)",
	[Q_EXP_SET_LOCATION] = "UPDATE experiments SET artifact_location = ?2 "
			       "WHERE experiment_id = ?1",
	[Q_EXP_RENAME] = "UPDATE experiments SET name = ?2, last_update_time = ?3 "
			 "WHERE experiment_id = ?1 AND lifecycle_stage = 'active'",
	[Q_EXP_DELETE] = "UPDATE experiments SET lifecycle_stage = 'deleted', "
			 "last_update_time = ?2 WHERE experiment_id = ?1 "
			 "AND lifecycle_stage = 'active'",
	[Q_EXP_HAS_ACTIVE_RUNS] = "SELECT 1 FROM runs WHERE experiment_id = ?1 "
				  "AND lifecycle_stage = 'active' LIMIT 1",
	[Q_RUN_LIST] = "SELECT " RUN_COLS ", r.user_id, r.artifact_uri FROM runs r "
		       "WHERE r.experiment_id = ?1 "
		       "AND r.lifecycle_stage = 'active' ORDER BY r.start_time, r.run_uuid",
	[Q_RUN_GET] = "SELECT " RUN_COLS ", r.user_id, r.artifact_uri FROM runs r "
		      "WHERE r.run_uuid = ?1",
	[Q_RUN_INSERT] =
		"INSERT INTO runs (run_uuid, name, source_type, source_name, "
		"entry_point_name, user_id, status, start_time, end_time, source_version, "
		"lifecycle_stage, artifact_uri, experiment_id, deleted_time) "
		"VALUES (?1, ?2, 'UNKNOWN', '', '', ?3, 'RUNNING', ?4, NULL, '', 'active', "
		"?5, ?6, NULL)",
	[Q_RUN_RENAME] = "UPDATE runs SET name = ?2 WHERE run_uuid = ?1",
	[Q_RUN_DELETE] = "UPDATE runs SET lifecycle_stage = 'deleted', deleted_time = ?2 "
			 "WHERE run_uuid = ?1",
	[Q_RUN_STATUS] = "UPDATE runs SET status = ?2, end_time = COALESCE(?3, end_time) "
			 "WHERE run_uuid = ?1",
	/* Writable: the run and its experiment are active. */
	[Q_RUN_WRITABLE] = "SELECT 1 FROM runs r JOIN experiments e "
			   "ON e.experiment_id = r.experiment_id WHERE r.run_uuid = ?1 "
			   "AND r.lifecycle_stage = 'active' AND e.lifecycle_stage = 'active'",
	[Q_PARAM_LIST] = "SELECT key, value FROM params WHERE run_uuid = ?1 AND " PREFIX_COND(
		"key", 2) " ORDER BY key",
	[Q_PARAM_GET] = "SELECT key, value FROM params WHERE run_uuid = ?1 AND key = ?2",
	[Q_PARAM_INSERT] = "INSERT INTO params (key, value, run_uuid) VALUES (?2, ?3, ?1)",
	[Q_TAG_LIST] = "SELECT key, value FROM tags WHERE run_uuid = ?1 AND " PREFIX_COND(
		"key", 2) " ORDER BY key",
	[Q_TAG_GET] = "SELECT key, value FROM tags WHERE run_uuid = ?1 AND key = ?2",
	[Q_TAG_UPSERT] = "INSERT INTO tags (key, value, run_uuid) VALUES (?2, ?3, ?1) "
			 "ON CONFLICT (key, run_uuid) DO UPDATE SET value = excluded.value",
	[Q_TAG_DELETE] = "DELETE FROM tags WHERE run_uuid = ?1 AND key = ?2",
	[Q_EXP_TAG_LIST] = "SELECT key, value FROM experiment_tags WHERE experiment_id = ?1 "
			   "AND " PREFIX_COND("key", 2) " ORDER BY key",
	[Q_EXP_TAG_GET] = "SELECT key, value FROM experiment_tags WHERE experiment_id = ?1 "
			  "AND key = ?2",
	[Q_EXP_TAG_UPSERT] = "INSERT INTO experiment_tags (key, value, experiment_id) "
			     "VALUES (?2, ?3, ?1) ON CONFLICT (key, experiment_id) "
			     "DO UPDATE SET value = excluded.value",
	[Q_EXP_TAG_DELETE] = "DELETE FROM experiment_tags WHERE experiment_id = ?1 AND key = ?2",
	[Q_MODEL_TAG_LIST] = "SELECT key, value FROM registered_model_tags WHERE name = ?1 "
			     "AND " PREFIX_COND("key", 2) " @MWS@ ORDER BY key",
	[Q_MODEL_TAG_GET] = "SELECT key, value FROM registered_model_tags WHERE name = ?1 "
			    "AND key = ?2 @MWS@",
	[Q_VERSION_TAG_LIST] = "SELECT key, value FROM model_version_tags WHERE name = ?1 "
			       "AND version = ?3 AND " PREFIX_COND("key", 2) " @MWS@ ORDER BY key",
	[Q_VERSION_TAG_GET] = "SELECT key, value FROM model_version_tags WHERE name = ?1 "
			      "AND key = ?2 AND version = ?3 @MWS@",
	[Q_METRIC_LIST] = "SELECT key, value, is_nan, step, timestamp FROM latest_metrics "
			  "WHERE run_uuid = ?1 AND " PREFIX_COND("key", 2) " ORDER BY key",
	[Q_METRIC_GET] = "SELECT key, value, is_nan, step, timestamp FROM latest_metrics "
			 "WHERE run_uuid = ?1 AND key = ?2",
	[Q_METRIC_MAX_STEP] = "SELECT MAX(step) FROM metrics WHERE run_uuid = ?1 AND key = ?2",
	/* MLflow skips a point that is already there (the whole row is the key). */
	[Q_METRIC_INSERT] = "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) "
			    "VALUES (?2, ?3, ?4, ?1, ?5, ?6) ON CONFLICT DO NOTHING",
	/* MLflow's rule: the latest point is the greatest (step, timestamp, value). */
	[Q_LATEST_UPSERT] = "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, "
			    "run_uuid) VALUES (?2, ?3, ?4, ?5, ?6, ?1) "
			    "ON CONFLICT (key, run_uuid) DO UPDATE SET value = excluded.value, "
			    "timestamp = excluded.timestamp, step = excluded.step, "
			    "is_nan = excluded.is_nan WHERE (excluded.step, excluded.timestamp, "
			    "excluded.value) > (latest_metrics.step, latest_metrics.timestamp, "
			    "latest_metrics.value)",
	[Q_METRIC_HISTORY] = "SELECT value, is_nan, step, timestamp FROM metrics "
			     "WHERE run_uuid = ?1 AND key = ?2 ORDER BY step, timestamp, value",
	/* mfs_line_len() is history_line_len(): the bytes history/ shows. */
	[Q_HISTORY_STAT] = "SELECT count(*), total(mfs_line_len(value, is_nan, step, timestamp)) "
			   "FROM metrics WHERE run_uuid = ?1 AND key = ?2",
	[Q_MODEL_LIST] = "SELECT name, creation_time, last_updated_time, description "
			 "FROM registered_models WHERE 1 @MWS@ ORDER BY name",
	[Q_MODEL_GET] = "SELECT name, creation_time, last_updated_time, description "
			"FROM registered_models WHERE name = ?1 @MWS@",
	[Q_VERSION_LIST] = "SELECT " VERSION_COLS " FROM model_versions WHERE name = ?1 "
			   "AND current_stage IS NOT 'Deleted_Internal' @MWS@ ORDER BY version",
	[Q_VERSION_GET] = "SELECT " VERSION_COLS " FROM model_versions WHERE name = ?1 "
			  "AND version = ?2 AND current_stage IS NOT 'Deleted_Internal' @MWS@",
	[Q_ALIAS_LIST] = "SELECT alias, version FROM registered_model_aliases WHERE name = ?1 "
			 "@MWS@ ORDER BY alias",
	/*
	 * Registry writes.  A new row leaves MLflow 3's workspace column to
	 * its default, 'default'; an upsert replaces the row its primary key
	 * finds, whichever columns that key has in this schema.
	 */
	[Q_MODEL_TAG_UPSERT] = "INSERT OR REPLACE INTO registered_model_tags (key, value, name) "
			       "VALUES (?2, ?3, ?1)",
	[Q_MODEL_TAG_DELETE] = "DELETE FROM registered_model_tags WHERE name = ?1 AND key = ?2 "
			       "@MWS@",
	[Q_VERSION_TAG_UPSERT] = "INSERT OR REPLACE INTO model_version_tags (key, value, name, "
				 "version) VALUES (?2, ?4, ?1, ?3)",
	[Q_VERSION_TAG_DELETE] = "DELETE FROM model_version_tags WHERE name = ?1 AND key = ?2 "
				 "AND version = ?3 @MWS@",
	[Q_MODEL_EXISTS] = "SELECT 1 FROM registered_models WHERE name = ?1 @MWS@",
	[Q_MODEL_INSERT] = "INSERT INTO registered_models (name, creation_time, "
			   "last_updated_time, description) VALUES (?1, ?2, ?2, NULL)",
	[Q_MODEL_TOUCH] = "UPDATE registered_models SET last_updated_time = ?2 "
			  "WHERE name = ?1 @MWS@",
	/*
	 * A rename moves the model first: with foreign keys on, SQLite's ON
	 * UPDATE CASCADE carries the other tables along and the statements
	 * after it find nothing left to move; without, they move it all.
	 */
	[Q_MODEL_RENAME] = "UPDATE registered_models SET name = ?2, last_updated_time = ?3 "
			   "WHERE name = ?1 @MWS@",
	[Q_MODEL_RENAME_TAGS] = "UPDATE registered_model_tags SET name = ?2 WHERE name = ?1 @MWS@",
	[Q_MODEL_RENAME_ALIASES] = "UPDATE registered_model_aliases SET name = ?2 "
				   "WHERE name = ?1 @MWS@",
	[Q_MODEL_RENAME_VERSIONS] = "UPDATE model_versions SET name = ?2 WHERE name = ?1 @MWS@",
	[Q_MODEL_RENAME_VERSION_TAGS] = "UPDATE model_version_tags SET name = ?2 "
					"WHERE name = ?1 @MWS@",
	/* MLflow's rename touches every version row, deleted ones too. */
	[Q_MODEL_TOUCH_VERSIONS] = "UPDATE model_versions SET last_updated_time = ?2 "
				   "WHERE name = ?1 @MWS@",
	[Q_MODEL_HAS_VERSIONS] = "SELECT 1 FROM model_versions WHERE name = ?1 "
				 "AND current_stage IS NOT 'Deleted_Internal' @MWS@ LIMIT 1",
	/* Children first: the foreign keys have no ON DELETE CASCADE. */
	[Q_MODEL_DROP_VERSION_TAGS] = "DELETE FROM model_version_tags WHERE name = ?1 @MWS@",
	[Q_MODEL_DROP_VERSIONS] = "DELETE FROM model_versions WHERE name = ?1 @MWS@",
	[Q_MODEL_DROP_TAGS] = "DELETE FROM registered_model_tags WHERE name = ?1 @MWS@",
	[Q_MODEL_DROP_ALIASES] = "DELETE FROM registered_model_aliases WHERE name = ?1 @MWS@",
	[Q_MODEL_DELETE] = "DELETE FROM registered_models WHERE name = ?1 @MWS@",
	[Q_MODEL_DESCRIBE] = "UPDATE registered_models SET description = ?2, "
			     "last_updated_time = ?3 WHERE name = ?1 @MWS@",
	[Q_VERSION_LIVE] = "SELECT 1 FROM model_versions WHERE name = ?1 AND version = ?2 "
			   "AND current_stage IS NOT 'Deleted_Internal' @MWS@",
	/* Deleted versions count: MLflow never hands out a number twice. */
	[Q_VERSION_MAX] = "SELECT COALESCE(MAX(version), 0) FROM model_versions WHERE name = ?1 "
			  "@MWS@",
	[Q_VERSION_INSERT] =
		"INSERT INTO model_versions (name, version, creation_time, last_updated_time, "
		"description, user_id, current_stage, source, run_id, status, status_message, "
		"run_link, storage_location) VALUES (?1, ?2, ?3, ?3, NULL, NULL, 'None', ?4, ?5, "
		"'READY', NULL, NULL, ?6)",
	[Q_VERSION_DESCRIBE] = "UPDATE model_versions SET description = ?3, "
			       "last_updated_time = ?4 WHERE name = ?1 AND version = ?2 "
			       "AND current_stage IS NOT 'Deleted_Internal' @MWS@",
	[Q_VERSION_STAGE] = "UPDATE model_versions SET current_stage = ?3, last_updated_time = ?4 "
			    "WHERE name = ?1 AND version = ?2 "
			    "AND current_stage IS NOT 'Deleted_Internal' @MWS@",
	/* MLflow's soft delete: the row stays, redacted, and keeps its tags. */
	[Q_VERSION_DELETE] = "UPDATE model_versions SET current_stage = 'Deleted_Internal', "
			     "last_updated_time = ?3, description = NULL, user_id = NULL, "
			     "source = 'REDACTED-SOURCE-PATH', run_id = 'REDACTED-RUN-ID', "
			     "run_link = 'REDACTED-RUN-LINK', status_message = NULL "
			     "WHERE name = ?1 AND version = ?2 "
			     "AND current_stage IS NOT 'Deleted_Internal' @MWS@",
	[Q_VERSION_DROP_ALIASES] = "DELETE FROM registered_model_aliases WHERE name = ?1 "
				   "AND version = ?2 @MWS@",
	[Q_ALIAS_UPSERT] = "INSERT OR REPLACE INTO registered_model_aliases (alias, version, name) "
			   "VALUES (?2, ?3, ?1)",
	[Q_ALIAS_DELETE] = "DELETE FROM registered_model_aliases WHERE name = ?1 AND alias = ?2 "
			   "@MWS@",
	/*
	 * MLflow 3's logged models, read only where the tables are there
	 * (has_logged_models).  MLflow hides a deleted one unless asked; its
	 * lifecycle_stage is 'active' or 'deleted' (a CHECK constraint).
	 */
	[Q_LM_TABLES] = "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN "
			"('logged_models', 'logged_model_params', 'logged_model_metrics', "
			"'logged_model_tags')",
	[Q_LM_LIST] = "SELECT " LM_COLS " FROM logged_models WHERE experiment_id = ?1 "
		      "AND lifecycle_stage = 'active' AND " LM_IN_WORKSPACE " "
		      "ORDER BY creation_timestamp_ms, model_id",
	[Q_LM_GET] = "SELECT " LM_COLS " FROM logged_models WHERE model_id = ?1 "
		     "AND lifecycle_stage = 'active' AND " LM_IN_WORKSPACE,
	[Q_LM_PARAM_LIST] = "SELECT param_key, param_value FROM logged_model_params WHERE "
			    "model_id = ?1 AND " PREFIX_COND("param_key", 2) " ORDER BY param_key",
	[Q_LM_PARAM_GET] = "SELECT param_key, param_value FROM logged_model_params "
			   "WHERE model_id = ?1 AND param_key = ?2",
	[Q_LM_METRIC_LIST] = LM_METRIC_LATEST(PREFIX_COND("metric_name", 2)),
	[Q_LM_METRIC_GET] = LM_METRIC_LATEST("metric_name = ?2"),
	[Q_LM_TAG_LIST] = "SELECT tag_key, tag_value FROM logged_model_tags WHERE model_id = ?1 "
			  "AND " PREFIX_COND("tag_key", 2) " ORDER BY tag_key",
	[Q_LM_TAG_GET] = "SELECT tag_key, tag_value FROM logged_model_tags WHERE model_id = ?1 "
			 "AND tag_key = ?2",
};

/*
 * What history/<key> measures, kept per metric so that a stat of a long
 * history does not read it: counted once by SQL (history_line_len() as the
 * SQL function mfs_line_len), then kept up to date by our own inserts, and
 * dropped when another client commits or a commit of ours fails.
 */
#define HSTAT_MAX 32

struct hstat {
	char run_id[STORE_RUN_ID_MAX];
	char *key; /* NULL: a free slot */
	struct store_history_stat st;
	uint64_t others;   /* the others' version it was counted at */
	uint64_t failures; /* commit failures then */
};

struct sqlite_store {
	struct store base;
	struct sqldb sql;
	/* Everything up to info belongs to the holder of the writer (sqldb.h). */
	/*
	 * The run last found writable and the transaction it was found in: no
	 * other client can delete it while that write transaction is open, so
	 * a metric write need not ask again.
	 */
	char writable_run[STORE_RUN_ID_MAX];
	uint64_t writable_seq;
	/* Queued metric points (see struct series). */
	struct series *series;
	size_t nseries, cseries;
	size_t queued;
	struct hstat hstat[HSTAT_MAX];
	unsigned hstat_next;
	/* Set at open, read-only afterwards. */
	struct schema_info info;
	/* The database has MLflow 3's four logged-model tables (a database
	 * made at MLflow 2.x's schema has none, until MLflow 3 opens it and
	 * upgrades it under the mount: then they are found, looked for at
	 * most once a second).  Both atomic. */
	int has_logged_models;
	int64_t lm_checked_ms;
	char *uri;
	char *db_path;
	char *artifact_root;
	int wal;
	int busy_ms; /* how long a write waits for another program's lock */
	/*
	 * The others' version as last read from SQLite, shared by callers
	 * that arrive while one read is under way: each caller and each read
	 * takes a ticket, and a read serves the callers that arrived before it
	 * began.  Guarded by watch_lock; watch_done signals a finished read.
	 */
	pthread_mutex_t watch_lock;
	pthread_cond_t watch_done;
	uint64_t watch_ticket; /* the last ticket given */
	uint64_t watch_read;   /* the ticket of the newest finished read */
	uint64_t watch_busy;   /* the ticket of the newest read under way, 0: none */
	uint64_t watch_dv;     /* what the newest finished read found */
	int watch_err;
};

/* A descriptor's writes: sqldb keeps its transaction and error. */
struct sqlite_batch {
	struct store_batch base;
	struct sqldb_batch sb;
};

static const struct store_ops sqlite_ops;

static struct sqlite_store *to_sqlite(struct store *s)
{
	if (s->ops != &sqlite_ops) {
		log_error("internal error: a %s store passed to the sqlite backend", s->ops->name);
		abort();
	}
	return (struct sqlite_store *)s;
}

static struct sqldb_batch *to_batch(struct store_batch *b)
{
	if (!b)
		return NULL;
	if (b->owner != &sqlite_ops) {
		log_error("internal error: a batch of another store passed to the sqlite backend");
		abort();
	}
	return &((struct sqlite_batch *)b)->sb;
}

/* An operation's result (a listing's may be a callback's stop value), with
 * sqldb's reason as the store's message. */
static int done(int err)
{
	if (err < 0 && !store_errmsg()[0] && sqldb_errmsg()[0])
		store_set_errmsg("%s", sqldb_errmsg());
	return err;
}

/* Parses an experiment id as SQLite stores it (an integer); 0 if not one. */
static int parse_id(const char *id, int64_t *out)
{
	char *end;
	long long v;

	if (!id || !id[0] || (id[0] == '0' && id[1]))
		return 0;
	errno = 0;
	v = strtoll(id, &end, 10);
	if (errno || *end || v < 0)
		return 0;
	*out = v;
	return 1;
}

/* ---- batches --------------------------------------------------------- */

static struct store_batch *sqlite_batch_new(struct store *s)
{
	struct sqlite_batch *b = calloc(1, sizeof(*b));

	(void)s;
	if (!b)
		return NULL;
	b->base.owner = &sqlite_ops;
	sqldb_batch_init(&b->sb);
	return &b->base;
}

static int sqlite_batch_commit(struct store *s, struct store_batch *b, int durable)
{
	return done(sqldb_batch_commit(&to_sqlite(s)->sql, to_batch(b), durable));
}

static void sqlite_batch_free(struct store *s, struct store_batch *b)
{
	sqldb_batch_release(&to_sqlite(s)->sql, to_batch(b));
	free(b);
}

/*
 * What moves when another client commits; and when a commit of ours is
 * lost, since what it wrote was shown meanwhile and is gone now.
 *
 * Asking SQLite takes the writer, so callers that arrive together share a
 * read; but only a read that began after a caller arrived may answer it:
 * one that began before could miss a commit the caller has seen (the MLflow
 * client logs a point, then the program appends the next one here).
 */
static int sqlite_others_version(struct store *s, uint64_t *v)
{
	struct sqlite_store *ss = to_sqlite(s);
	uint64_t me, start, dv = 0;
	int err;

	pthread_mutex_lock(&ss->watch_lock);
	me = ++ss->watch_ticket;
	while (ss->watch_read < me && ss->watch_busy > me)
		pthread_cond_wait(&ss->watch_done, &ss->watch_lock);
	if (ss->watch_read > me) {
		dv = ss->watch_dv;
		err = ss->watch_err;
	} else {
		start = ++ss->watch_ticket;
		ss->watch_busy = start;
		pthread_mutex_unlock(&ss->watch_lock);
		err = sqldb_others_version(&ss->sql, &dv);
		pthread_mutex_lock(&ss->watch_lock);
		if (start > ss->watch_read) {
			ss->watch_read = start;
			if (!err)
				ss->watch_dv = dv; /* -EAGAIN says nothing of it */
			ss->watch_err = err;
		}
		if (ss->watch_busy == start)
			ss->watch_busy = 0;
		pthread_cond_broadcast(&ss->watch_done);
		dv = ss->watch_dv;
	}
	pthread_mutex_unlock(&ss->watch_lock);
	/* A lost commit of ours counts at once: it was shown meanwhile. */
	*v = dv + (sqldb_commit_failures(&ss->sql) << 32);
	return err;
}

/* ---- experiments ----------------------------------------------------- */

/* Reads EXP_COLS; strings borrowed from the row unless dup. */
static int read_experiment(sqlite3_stmt *st, struct store_experiment *e, int dup)
{
	snprintf(e->id, sizeof(e->id), "%lld", (long long)sqlite3_column_int64(st, 0));
	e->name = (char *)sqldb_text(st, 1);
	e->artifact_location = (char *)sqldb_text(st, 2);
	e->deleted = !strcmp(sqldb_text(st, 3), "deleted");
	e->creation_time = sqldb_time(st, 4);
	e->last_update_time = sqldb_time(st, 5);
	if (!dup)
		return 0;
	e->name = strdup(e->name);
	e->artifact_location = strdup(e->artifact_location);
	if (e->name && e->artifact_location)
		return 0;
	store_experiment_release(e);
	return -ENOMEM;
}

/*
 * A caller's callback and its context, for the row functions.  Backend
 * listings call back with the connection held: the one caller above, the
 * cache, copies what it is given, except a metric's history, which streams
 * through to a callback that must not call the store (store.h).
 */
struct cb_ctx {
	union {
		store_experiment_cb *exp;
		store_run_cb *run;
		store_model_cb *model;
		store_version_cb *version;
		store_alias_cb *alias;
		store_logged_model_cb *logged_model;
		store_kv_cb *kv;
		store_point_cb *point;
	} cb;
	void *ctx;
	int metric; /* kv rows of latest_metrics */
};

static int experiment_row(void *ctx, sqlite3_stmt *st)
{
	struct cb_ctx *c = ctx;
	struct store_experiment e;

	read_experiment(st, &e, 0);
	return c->cb.exp(c->ctx, &e);
}

static int sqlite_list_experiments(struct store *s, store_experiment_cb *cb, void *ctx)
{
	struct cb_ctx c = { .cb.exp = cb, .ctx = ctx };

	return done(sqldb_list(&to_sqlite(s)->sql, Q_EXP_LIST, "cannot list experiments",
			       experiment_row, &c, ""));
}

/* Runs a query for one experiment row into out. */
static int one_experiment(struct sqldb_conn *c, sqlite3_stmt *st, struct store_experiment *out)
{
	int err = sqldb_step_row(c, st, "cannot read an experiment");

	memset(out, 0, sizeof(*out));
	if (err != 1)
		return err ? err : -ENOENT;
	err = read_experiment(st, out, 1);
	sqlite3_reset(st);
	return err;
}

static int sqlite_get_experiment(struct store *s, const char *name, struct store_experiment *out)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct sqldb_conn *c = sqldb_read_begin(&ss->sql);
	int err;

	if (!c)
		return done(-EIO);
	err = one_experiment(c, sqldb_query(c, Q_EXP_BY_NAME, "t", name), out);
	sqldb_read_end(&ss->sql, c);
	return done(err);
}

static int experiment_by_id(struct sqldb_conn *c, const char *id, struct store_experiment *out)
{
	int64_t n;

	memset(out, 0, sizeof(*out));
	if (!parse_id(id, &n))
		return -ENOENT;
	return one_experiment(c, sqldb_query(c, Q_EXP_BY_ID, "i", n), out);
}

static int sqlite_get_experiment_by_id(struct store *s, const char *id,
				       struct store_experiment *out)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct sqldb_conn *c = sqldb_read_begin(&ss->sql);
	int err;

	if (!c)
		return done(-EIO);
	err = experiment_by_id(c, id, out);
	sqldb_read_end(&ss->sql, c);
	return done(err);
}

/* -ENOENT unless the experiment is there and active; writer held. */
static int experiment_writable(struct sqlite_store *ss, const char *id,
			       struct store_experiment *out)
{
	int err = experiment_by_id(sqldb_writer(&ss->sql), id, out);

	if (!err && out->deleted) {
		store_set_errmsg("experiment '%s' was deleted", out->name);
		store_experiment_release(out);
		err = -ENOENT;
	}
	return err;
}

/* -EEXIST when an experiment (active or deleted) has the name; writer held. */
static int name_free(struct sqlite_store *ss, const char *name)
{
	struct sqldb_conn *c = sqldb_writer(&ss->sql);
	sqlite3_stmt *st = sqldb_query(c, Q_EXP_NAME_TAKEN, "t", name);
	int err = sqldb_step_row(c, st, "cannot look up an experiment");

	if (err != 1)
		return err;
	if (!strcmp(sqldb_text(st, 0), "deleted"))
		store_set_errmsg("a deleted experiment is named '%s': restore it in MLflow, "
				 "or remove it for good with 'mlflow gc'",
				 name);
	else
		store_set_errmsg("an experiment named '%s' exists", name);
	sqlite3_reset(st);
	return -EEXIST;
}

static int sqlite_create_experiment(struct store *s, struct store_batch *b, const char *name,
				    struct store_experiment *out)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct sqldb_conn *c = sqldb_writer(&ss->sql);
	char *location = NULL, id[STORE_ID_MAX];
	struct store_experiment unused;
	int64_t n = 0;
	int err;

	if (!out)
		out = &unused;
	memset(out, 0, sizeof(*out));
	err = sqldb_write_begin(&ss->sql, to_batch(b), 0);
	if (!err)
		err = name_free(ss, name);
	if (!err)
		err = sqldb_step_change(c,
					sqldb_query(c, Q_EXP_INSERT, "ti", name, clock_wall_ms()),
					"cannot create the experiment");
	if (err > 0) {
		/* As MLflow does: the location is the root plus the new id. */
		n = sqlite3_last_insert_rowid(c->db);
		err = 0;
		if (asprintf(&location, "%s/%lld", ss->artifact_root, (long long)n) < 0) {
			location = NULL;
			err = -ENOMEM;
		}
	}
	if (!err)
		err = sqldb_step_change(c, sqldb_query(c, Q_EXP_SET_LOCATION, "it", n, location),
					"cannot set the artifact location");
	if (err > 0) {
		snprintf(id, sizeof(id), "%lld", (long long)n);
		err = experiment_by_id(c, id, out);
	}
	err = sqldb_write_end(&ss->sql, err);
	if (err || out == &unused)
		store_experiment_release(out);
	free(location);
	return done(err);
}

static int sqlite_rename_experiment(struct store *s, struct store_batch *b, const char *id,
				    const char *new_name)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct sqldb_conn *c = sqldb_writer(&ss->sql);
	struct store_experiment e;
	int err;

	err = sqldb_write_begin(&ss->sql, to_batch(b), 0);
	if (!err)
		err = experiment_writable(ss, id, &e);
	if (!err) {
		/* Renaming to its own name is a no-op, not a clash. */
		if (strcmp(e.name, new_name))
			err = name_free(ss, new_name);
		if (!err)
			err = sqldb_step_change(
				c,
				sqldb_query(c, Q_EXP_RENAME, "tti", id, new_name, clock_wall_ms()),
				"cannot rename the experiment");
		store_experiment_release(&e);
	}
	return done(sqldb_write_end(&ss->sql, err < 0 ? err : 0));
}

static int sqlite_delete_experiment(struct store *s, struct store_batch *b, const char *id)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct sqldb_conn *c = sqldb_writer(&ss->sql);
	struct store_experiment e;
	sqlite3_stmt *st;
	int err;

	err = sqldb_write_begin(&ss->sql, to_batch(b), 0);
	if (!err)
		err = experiment_writable(ss, id, &e);
	if (!err) {
		store_experiment_release(&e);
		st = sqldb_query(c, Q_EXP_HAS_ACTIVE_RUNS, "t", id);
		err = sqldb_step_row(c, st, "cannot look for runs");
		if (err == 1) {
			sqlite3_reset(st);
			store_set_errmsg("the experiment still has runs");
			err = -ENOTEMPTY;
		}
	}
	if (!err)
		err = sqldb_step_change(c, sqldb_query(c, Q_EXP_DELETE, "ti", id, clock_wall_ms()),
					"cannot delete the experiment");
	ss->writable_seq = 0;
	return done(sqldb_write_end(&ss->sql, err < 0 ? err : 0));
}

/* ---- runs ------------------------------------------------------------ */

/* Reads RUN_COLS and user_id, artifact_uri; strings borrowed from the row. */
static void read_run(sqlite3_stmt *st, struct store_run *r)
{
	int64_t t;

	memset(r, 0, sizeof(*r));
	snprintf(r->run_id, sizeof(r->run_id), "%s", sqldb_text(st, 0));
	snprintf(r->experiment_id, sizeof(r->experiment_id), "%lld",
		 (long long)sqlite3_column_int64(st, 1));
	snprintf(r->status, sizeof(r->status), "%s", sqldb_text(st, 2));
	r->name = (char *)sqldb_text(st, 3);
	r->deleted = !strcmp(sqldb_text(st, 4), "deleted");
	r->start_time = sqldb_time(st, 5);
	r->end_time = sqldb_time(st, 6);
	r->last_change = r->start_time;
	if (r->end_time > r->last_change)
		r->last_change = r->end_time;
	t = sqldb_time(st, 7);
	if (t > r->last_change)
		r->last_change = t;
	r->user_id = (char *)sqldb_text(st, 8);
	r->artifact_uri = (char *)sqldb_text(st, 9);
}

static int run_row(void *ctx, sqlite3_stmt *st)
{
	struct cb_ctx *c = ctx;
	struct store_run r;

	read_run(st, &r);
	return c->cb.run(c->ctx, &r);
}

static int sqlite_list_runs(struct store *s, const char *experiment_id, store_run_cb *cb, void *ctx)
{
	struct cb_ctx c = { .cb.run = cb, .ctx = ctx };

	return done(sqldb_list(&to_sqlite(s)->sql, Q_RUN_LIST, "cannot list runs", run_row, &c, "t",
			       experiment_id));
}

static int get_run_on(struct sqldb_conn *c, const char *run_id, struct store_run *out)
{
	sqlite3_stmt *st = sqldb_query(c, Q_RUN_GET, "t", run_id);
	struct store_run r;
	int err = sqldb_step_row(c, st, "cannot read a run");

	memset(out, 0, sizeof(*out));
	if (err != 1)
		return err ? err : -ENOENT;
	read_run(st, &r);
	err = store_run_copy(out, &r);
	sqlite3_reset(st);
	return err;
}

static int sqlite_get_run(struct store *s, const char *run_id, struct store_run *out)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct sqldb_conn *c = sqldb_read_begin(&ss->sql);
	int err;

	if (!c)
		return done(-EIO);
	err = get_run_on(c, run_id, out);
	sqldb_read_end(&ss->sql, c);
	return done(err);
}

/* -ENOENT unless the run and its experiment are active; writer held. */
static int run_writable(struct sqlite_store *ss, const char *run_id)
{
	struct sqldb_conn *c = sqldb_writer(&ss->sql);
	uint64_t txn = sqldb_txn(&ss->sql);
	sqlite3_stmt *st;
	int err;

	if (txn && ss->writable_seq == txn && !strcmp(ss->writable_run, run_id))
		return 0;
	st = sqldb_query(c, Q_RUN_WRITABLE, "t", run_id);
	err = sqldb_step_row(c, st, "cannot read a run");
	if (err == 1) {
		sqlite3_reset(st);
		snprintf(ss->writable_run, sizeof(ss->writable_run), "%s", run_id);
		ss->writable_seq = txn;
		return 0;
	}
	if (!err) {
		store_set_errmsg("run '%s' was deleted", run_id);
		err = -ENOENT;
	}
	return err;
}

static int put_run_tag(struct sqlite_store *ss, const char *run_id, const char *key,
		       const char *value)
{
	struct sqldb_conn *c = sqldb_writer(&ss->sql);
	int err = sqldb_step_change(c, sqldb_query(c, Q_TAG_UPSERT, "ttt", run_id, key, value),
				    "cannot set a tag");

	return err < 0 ? err : 0;
}

/* runs.name and its mirror, the mlflow.runName tag, as MLflow keeps them. */
static int set_run_name(struct sqlite_store *ss, const char *run_id, const char *name)
{
	struct sqldb_conn *c = sqldb_writer(&ss->sql);
	int err = sqldb_step_change(c, sqldb_query(c, Q_RUN_RENAME, "tt", run_id, name),
				    "cannot rename the run");

	if (err == 0)
		err = -ENOENT;
	return err < 0 ? err : put_run_tag(ss, run_id, "mlflow.runName", name);
}

static int new_run_id(char out[STORE_RUN_ID_MAX])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[16];
	size_t i;

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -EIO;
	/* uuid4().hex, as MLflow makes them: version 4, variant 10. */
	raw[6] = (raw[6] & 0x0f) | 0x40;
	raw[8] = (raw[8] & 0x3f) | 0x80;
	for (i = 0; i < 16; i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[32] = '\0';
	return 0;
}

static int sqlite_create_run(struct store *s, struct store_batch *b, const char *experiment_id,
			     const char *name, const char *user, struct store_run *out)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct sqldb_conn *c = sqldb_writer(&ss->sql);
	struct store_experiment e = { 0 };
	char run_id[STORE_RUN_ID_MAX], *uri = NULL;
	int err;

	memset(out, 0, sizeof(*out));
	err = new_run_id(run_id);
	if (err)
		return err;
	err = sqldb_write_begin(&ss->sql, to_batch(b), 0);
	if (!err)
		err = experiment_writable(ss, experiment_id, &e);
	if (!err && asprintf(&uri, "%s/%s/artifacts", e.artifact_location, run_id) < 0) {
		uri = NULL;
		err = -ENOMEM;
	}
	if (!err)
		err = sqldb_step_change(c,
					sqldb_query(c, Q_RUN_INSERT, "tttiti", run_id, name, user,
						    clock_wall_ms(), uri,
						    (int64_t)strtoll(e.id, NULL, 10)),
					"cannot create the run");
	/* The tags MLflow's client sets on every run it creates. */
	if (err > 0)
		err = put_run_tag(ss, run_id, "mlflow.runName", name);
	if (!err)
		err = put_run_tag(ss, run_id, "mlflow.user", user);
	if (!err)
		err = get_run_on(c, run_id, out);
	err = sqldb_write_end(&ss->sql, err);
	free(uri);
	store_experiment_release(&e);
	if (err)
		store_run_release(out);
	return done(err);
}

static int sqlite_rename_run(struct store *s, struct store_batch *b, const char *run_id,
			     const char *new_name)
{
	struct sqlite_store *ss = to_sqlite(s);
	int err;

	err = sqldb_write_begin(&ss->sql, to_batch(b), 0);
	if (!err)
		err = run_writable(ss, run_id);
	if (!err)
		err = set_run_name(ss, run_id, new_name);
	return done(sqldb_write_end(&ss->sql, err));
}

static int sqlite_delete_run(struct store *s, struct store_batch *b, const char *run_id)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct sqldb_conn *c = sqldb_writer(&ss->sql);
	int err;

	err = sqldb_write_begin(&ss->sql, to_batch(b), 0);
	if (!err)
		err = run_writable(ss, run_id);
	if (!err)
		err = sqldb_step_change(c,
					sqldb_query(c, Q_RUN_DELETE, "ti", run_id, clock_wall_ms()),
					"cannot delete the run");
	ss->writable_seq = 0;
	return done(sqldb_write_end(&ss->sql, err < 0 ? err : 0));
}

static int sqlite_set_status(struct store *s, struct store_batch *b, const char *run_id,
			     const char *status)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct sqldb_conn *c = sqldb_writer(&ss->sql);
	int terminal = strcmp(status, "RUNNING") && strcmp(status, "SCHEDULED");
	int err;

	err = sqldb_write_begin(&ss->sql, to_batch(b), 0);
	if (!err)
		err = run_writable(ss, run_id);
	/* MLflow sets the end time when a run terminates and leaves it otherwise. */
	if (!err && terminal)
		err = sqldb_step_change(
			c, sqldb_query(c, Q_RUN_STATUS, "tti", run_id, status, clock_wall_ms()),
			"cannot set the status");
	else if (!err)
		err = sqldb_step_change(c, sqldb_query(c, Q_RUN_STATUS, "ttn", run_id, status),
					"cannot set the status");
	return done(sqldb_write_end(&ss->sql, err < 0 ? err : 0));
}

/* ---- keys ------------------------------------------------------------ */

static const struct {
	enum sql_id list, get, put, drop;
} kv_sql[] = {
	[SEC_PARAMS] = { Q_PARAM_LIST, Q_PARAM_GET, Q_PARAM_INSERT, Q_COUNT },
	[SEC_METRICS] = { Q_METRIC_LIST, Q_METRIC_GET, Q_COUNT, Q_COUNT },
	[SEC_RUN_TAGS] = { Q_TAG_LIST, Q_TAG_GET, Q_TAG_UPSERT, Q_TAG_DELETE },
	[SEC_EXP_TAGS] = { Q_EXP_TAG_LIST, Q_EXP_TAG_GET, Q_EXP_TAG_UPSERT, Q_EXP_TAG_DELETE },
	[SEC_MODEL_TAGS] = { Q_MODEL_TAG_LIST, Q_MODEL_TAG_GET, Q_MODEL_TAG_UPSERT,
			     Q_MODEL_TAG_DELETE },
	[SEC_VERSION_TAGS] = { Q_VERSION_TAG_LIST, Q_VERSION_TAG_GET, Q_VERSION_TAG_UPSERT,
			       Q_VERSION_TAG_DELETE },
	[SEC_LM_PARAMS] = { Q_LM_PARAM_LIST, Q_LM_PARAM_GET, Q_COUNT, Q_COUNT },
	[SEC_LM_METRICS] = { Q_LM_METRIC_LIST, Q_LM_METRIC_GET, Q_COUNT, Q_COUNT },
	[SEC_LM_TAGS] = { Q_LM_TAG_LIST, Q_LM_TAG_GET, Q_COUNT, Q_COUNT },
};

/* Whether a section's rows are metric points rather than strings. */
static int is_metric_section(enum store_section sec)
{
	return sec == SEC_METRICS || sec == SEC_LM_METRICS;
}

static int logged_models_there(struct sqlite_store *ss);

static int is_logged_model_section(enum store_section sec)
{
	return sec == SEC_LM_PARAMS || sec == SEC_LM_METRICS || sec == SEC_LM_TAGS;
}

/*
 * Prepares a key statement of a section: ?1 the owner (run id, experiment
 * id, model name or logged model id; SQLite compares a text id with an
 * integer column by value), ?2 the key or prefix, then the value: ?3, or ?4
 * after the version (?3) of version tags.
 */
static sqlite3_stmt *kv_query(struct sqldb_conn *c, enum sql_id id, enum store_section sec,
			      const struct store_ref *ref, const char *key, const char *value)
{
	const char *owner = sec == SEC_EXP_TAGS				       ? ref->experiment_id
			    : sec == SEC_MODEL_TAGS || sec == SEC_VERSION_TAGS ? ref->model
			    : is_logged_model_section(sec)		       ? ref->logged_model
									       : ref->run_id;

	if (sec == SEC_VERSION_TAGS)
		return value ? sqldb_query(c, id, "ttit", owner, key, ref->version, value)
			     : sqldb_query(c, id, "tti", owner, key, ref->version);
	return value ? sqldb_query(c, id, "ttt", owner, key, value)
		     : sqldb_query(c, id, "tt", owner, key);
}

/* Reads (key, value) or (key, value, is_nan, step, timestamp); borrowed. */
static void read_kv(sqlite3_stmt *st, int metric, struct store_kv *kv)
{
	kv->key = (char *)sqldb_text(st, 0);
	kv->value = NULL;
	kv->num = 0;
	kv->step = 0;
	kv->timestamp = -1;
	if (metric) {
		kv->num =
			metric_from_store(sqlite3_column_double(st, 1), sqlite3_column_int(st, 2));
		kv->step = sqlite3_column_int64(st, 3);
		kv->timestamp = sqldb_time(st, 4);
	} else {
		kv->value = (char *)sqldb_text(st, 1);
	}
}

static int kv_row(void *ctx, sqlite3_stmt *st)
{
	struct cb_ctx *c = ctx;
	struct store_kv kv;

	read_kv(st, c->metric, &kv);
	return c->cb.kv(c->ctx, &kv);
}

static int sqlite_list_kv(struct store *s, enum store_section sec, const struct store_ref *ref,
			  const char *prefix, store_kv_cb *cb, void *ctx)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct cb_ctx cc = { .cb.kv = cb, .ctx = ctx, .metric = is_metric_section(sec) };
	struct sqldb_conn *c;
	int err;

	/* MLflow 2.x's schema: no logged model, so none has a key. */
	if (is_logged_model_section(sec) && !logged_models_there(ss))
		return 0;
	c = sqldb_read_begin(&ss->sql);
	if (!c)
		return done(-EIO);
	err = sqldb_each_row(
		c,
		kv_query(c, kv_sql[sec].list, sec, ref, prefix && prefix[0] ? prefix : NULL, NULL),
		"cannot list keys", kv_row, &cc);
	sqldb_read_end(&ss->sql, c);
	return done(err);
}

static int get_kv_on(struct sqldb_conn *c, enum store_section sec, const struct store_ref *ref,
		     const char *key, struct store_kv *out)
{
	sqlite3_stmt *st = kv_query(c, kv_sql[sec].get, sec, ref, key, NULL);
	int err = sqldb_step_row(c, st, "cannot read a key");

	memset(out, 0, sizeof(*out));
	if (err != 1)
		return err ? err : -ENOENT;
	read_kv(st, is_metric_section(sec), out);
	out->key = strdup(out->key);
	if (out->value)
		out->value = strdup(out->value);
	err = !out->key || (!is_metric_section(sec) && !out->value) ? -ENOMEM : 0;
	sqlite3_reset(st);
	if (err)
		store_kv_release(out);
	return err;
}

static int sqlite_get_kv(struct store *s, enum store_section sec, const struct store_ref *ref,
			 const char *key, struct store_kv *out)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct sqldb_conn *c;
	int err;

	if (is_logged_model_section(sec) && !logged_models_there(ss)) {
		memset(out, 0, sizeof(*out));
		return -ENOENT;
	}
	c = sqldb_read_begin(&ss->sql);
	if (!c)
		return done(-EIO);
	err = get_kv_on(c, sec, ref, key, out);
	sqldb_read_end(&ss->sql, c);
	return done(err);
}

static int kvs_row(void *ctx, sqlite3_stmt *st)
{
	struct cb_ctx *c = ctx;
	struct store_kv kv;

	read_kv(st, c->metric, &kv);
	return store_kvs_add(c->ctx, &kv);
}

/* One section of a run into a new kvs. */
static int snapshot_section(struct sqldb_conn *c, enum store_section sec, const char *run_id,
			    const struct store_kvs **out)
{
	struct store_ref ref = { .run_id = run_id };
	struct store_kvs *kvs = store_kvs_new(0);
	struct cb_ctx cc = { .ctx = kvs, .metric = sec == SEC_METRICS };
	int err;

	if (!kvs)
		return -ENOMEM;
	err = sqldb_each_row(c, kv_query(c, kv_sql[sec].list, sec, &ref, NULL, NULL),
			     "cannot read a run", kvs_row, &cc);
	if (err) {
		store_kvs_put(kvs);
		return err;
	}
	*out = kvs;
	return 0;
}

static int sqlite_get_snapshot(struct store *s, const char *run_id, unsigned want,
			       struct store_snapshot **out)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct store_snapshot *snap = store_snapshot_new();
	struct sqldb_conn *c;
	int err;

	if (!snap)
		return -ENOMEM;
	c = sqldb_read_begin(&ss->sql);
	if (!c) {
		store_snapshot_put(snap);
		return done(-EIO);
	}
	/* One read of the connection: the sections agree with each other. */
	err = want & SNAP_RUN_KNOWN ? 0 : get_run_on(c, run_id, &snap->run);
	if (!err && (want & SNAP_PARAMS))
		err = snapshot_section(c, SEC_PARAMS, run_id, &snap->params);
	if (!err && (want & SNAP_METRICS))
		err = snapshot_section(c, SEC_METRICS, run_id, &snap->metrics);
	if (!err && (want & SNAP_TAGS))
		err = snapshot_section(c, SEC_RUN_TAGS, run_id, &snap->tags);
	sqldb_read_end(&ss->sql, c);
	if (err) {
		store_snapshot_put(snap);
		return done(err);
	}
	snap->have = want & SNAP_ALL;
	*out = snap;
	return 0;
}

static int sqlite_log_param(struct store *s, struct store_batch *b, const char *run_id,
			    const char *key, const char *value)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct sqldb_conn *c = sqldb_writer(&ss->sql);
	struct store_ref ref = { .run_id = run_id };
	struct store_kv old;
	int err;

	err = sqldb_write_begin(&ss->sql, to_batch(b), 0);
	if (!err)
		err = run_writable(ss, run_id);
	if (err)
		return done(sqldb_write_end(&ss->sql, err));
	err = get_kv_on(c, SEC_PARAMS, &ref, key, &old);
	if (err == -ENOENT) {
		err = sqldb_step_change(c,
					kv_query(c, Q_PARAM_INSERT, SEC_PARAMS, &ref, key, value),
					"cannot log the param");
	} else if (!err) {
		/* MLflow params are immutable; the same value again is fine. */
		if (strcmp(old.value, value)) {
			store_set_errmsg("param '%s' was logged with value '%.200s'; "
					 "MLflow params cannot change",
					 key, old.value);
			err = -EPERM;
		}
		store_kv_release(&old);
	}
	return done(sqldb_write_end(&ss->sql, err < 0 ? err : 0));
}

/* Whether a query has a row: 1, 0, or -errno; writer held. */
static int has_row(struct sqlite_store *ss, sqlite3_stmt *st, const char *what)
{
	int err = sqldb_step_row(sqldb_writer(&ss->sql), st, what);

	if (err == 1)
		sqlite3_reset(st);
	return err;
}

/* -ENOENT unless the registered model is there; writer held. */
static int model_there(struct sqlite_store *ss, const char *name)
{
	int err = has_row(ss, sqldb_query(sqldb_writer(&ss->sql), Q_MODEL_EXISTS, "t", name),
			  "cannot look up a registered model");

	if (!err)
		store_set_errmsg("no registered model '%s'", name);
	return err == 1 ? 0 : err ? err : -ENOENT;
}

/* -ENOENT unless the model and its version are there, the version not
 * deleted; writer held. */
static int version_there(struct sqlite_store *ss, const char *model, int64_t version)
{
	int err = model_there(ss, model);

	if (err)
		return err;
	err = has_row(ss, sqldb_query(sqldb_writer(&ss->sql), Q_VERSION_LIVE, "ti", model, version),
		      "cannot look up a model version");
	if (!err)
		store_set_errmsg("registered model '%s' has no version %lld", model,
				 (long long)version);
	return err == 1 ? 0 : err ? err : -ENOENT;
}

/* Checks that the owner of a tag section may be written; writer held. */
static int tag_owner_writable(struct sqlite_store *ss, enum store_section sec,
			      const struct store_ref *ref)
{
	struct store_experiment e;
	int err;

	switch (sec) {
	case SEC_RUN_TAGS:
		return run_writable(ss, ref->run_id);
	case SEC_EXP_TAGS:
		err = experiment_writable(ss, ref->experiment_id, &e);
		if (!err)
			store_experiment_release(&e);
		return err;
	case SEC_MODEL_TAGS:
		return model_there(ss, ref->model);
	case SEC_VERSION_TAGS:
		return version_there(ss, ref->model, ref->version);
	case SEC_LM_PARAMS:
	case SEC_LM_METRICS:
	case SEC_LM_TAGS:
		/* MLflow could tag one; mlflowfs only shows them. */
		store_set_errmsg("logged model '%s' is read-only", ref->logged_model);
		return -EROFS;
	default:
		store_set_errmsg("this section has no tags to change");
		return -EINVAL;
	}
}

static int put_tag(struct sqlite_store *ss, enum store_section sec, const struct store_ref *ref,
		   const char *key, const char *value)
{
	struct sqldb_conn *c = sqldb_writer(&ss->sql);
	int err;

	if (sec == SEC_RUN_TAGS && !strcmp(key, "mlflow.runName"))
		return set_run_name(ss, ref->run_id, value);
	err = sqldb_step_change(c, kv_query(c, kv_sql[sec].put, sec, ref, key, value),
				"cannot set the tag");
	return err < 0 ? err : 0;
}

static int drop_tag(struct sqlite_store *ss, enum store_section sec, const struct store_ref *ref,
		    const char *key)
{
	struct sqldb_conn *c = sqldb_writer(&ss->sql);
	int err = sqldb_step_change(c, kv_query(c, kv_sql[sec].drop, sec, ref, key, NULL),
				    "cannot delete the tag");

	if (err == 0) {
		store_set_errmsg("no tag '%s'", key);
		return -ENOENT;
	}
	return err < 0 ? err : 0;
}

/* set (value), delete (value NULL, to NULL) or rename (to) a tag. */
static int change_tag(struct store *s, struct store_batch *b, enum store_section sec,
		      const struct store_ref *ref, const char *key, const char *value,
		      const char *to)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct store_kv old;
	int err;

	err = sqldb_write_begin(&ss->sql, to_batch(b), 0);
	if (!err)
		err = tag_owner_writable(ss, sec, ref);
	if (!err && value)
		err = put_tag(ss, sec, ref, key, value);
	else if (!err && !to)
		err = drop_tag(ss, sec, ref, key);
	else if (!err) {
		err = get_kv_on(sqldb_writer(&ss->sql), sec, ref, key, &old);
		/* A tag renamed to itself stays as it is. */
		if (!err && strcmp(key, to)) {
			err = put_tag(ss, sec, ref, to, old.value);
			if (!err)
				err = drop_tag(ss, sec, ref, key);
		}
		if (old.key)
			store_kv_release(&old);
	}
	return done(sqldb_write_end(&ss->sql, err));
}

static int sqlite_set_tag(struct store *s, struct store_batch *b, enum store_section sec,
			  const struct store_ref *ref, const char *key, const char *value)
{
	return change_tag(s, b, sec, ref, key, value, NULL);
}

static int sqlite_delete_tag(struct store *s, struct store_batch *b, enum store_section sec,
			     const struct store_ref *ref, const char *key)
{
	return change_tag(s, b, sec, ref, key, NULL, NULL);
}

static int sqlite_rename_tag(struct store *s, struct store_batch *b, enum store_section sec,
			     const struct store_ref *ref, const char *from, const char *to)
{
	return change_tag(s, b, sec, ref, from, NULL, to);
}

/* ---- metrics --------------------------------------------------------- */

/*
 * Metric points are queued in memory by the write() that logs them and
 * inserted in bulk when anything next reads, writes or commits (sqldb's
 * deferred work): a write() then costs no SQL, and a read still sees every
 * point.  One series per run and key; the writer's holder owns them.
 */
struct series {
	char run_id[STORE_RUN_ID_MAX];
	char *key;
	struct metric_point *pts;
	size_t n, cap;
};

/* More queued points than this are inserted at once, to bound memory. */
#define QUEUE_MAX 65536

static void series_clear(struct sqlite_store *ss)
{
	size_t i;

	for (i = 0; i < ss->nseries; i++) {
		free(ss->series[i].key);
		free(ss->series[i].pts);
	}
	ss->nseries = 0;
	ss->queued = 0;
}

/* The counted history of (run, key), or NULL; writer held. */
static struct hstat *hstat_find(struct sqlite_store *ss, const char *run_id, const char *key)
{
	size_t i;

	for (i = 0; i < HSTAT_MAX; i++) {
		struct hstat *h = &ss->hstat[i];

		if (h->key && !strcmp(h->run_id, run_id) && !strcmp(h->key, key))
			return h;
	}
	return NULL;
}

/* Inserts one series' points and upserts its latest point, MLflow's way. */
static int series_flush(struct sqlite_store *ss, const struct series *q)
{
	struct sqldb_conn *c = sqldb_writer(&ss->sql);
	struct hstat *h = hstat_find(ss, q->run_id, q->key);
	char line[METRIC_HISTORY_LINE_MAX];
	double v, best_v = 0;
	int is_nan, best_nan = 0, err = 0;
	size_t i, best = 0;

	for (i = 0; !err && i < q->n; i++) {
		const struct metric_point *p = &q->pts[i];

		metric_to_store(p->value, &v, &is_nan);
		err = sqldb_step_change(c,
					sqldb_query(c, Q_METRIC_INSERT, "ttdiii", q->run_id, q->key,
						    v, p->timestamp, p->step, (int64_t)is_nan),
					"cannot log the metric");
		/* A point already there is skipped, and not counted. */
		if (err == 1 && h) {
			h->st.points++;
			h->st.bytes += metric_history_line(line, metric_from_store(v, is_nan),
							   p->step, p->timestamp);
		}
		err = err < 0 ? err : 0;
		if (i == 0 || metric_later(p->step, p->timestamp, v, q->pts[best].step,
					   q->pts[best].timestamp, best_v)) {
			best = i;
			best_v = v;
			best_nan = is_nan;
		}
	}
	/* Only the greatest point of the series can be the latest. */
	if (!err && q->n)
		err = sqldb_step_change(c,
					sqldb_query(c, Q_LATEST_UPSERT, "ttdiii", q->run_id, q->key,
						    best_v, q->pts[best].timestamp,
						    q->pts[best].step, (int64_t)best_nan),
					"cannot update the latest metric");
	return err < 0 ? err : 0;
}

static int flush_queue(void *ctx)
{
	struct sqlite_store *ss = ctx;
	size_t i;
	int err = 0;

	for (i = 0; !err && i < ss->nseries; i++)
		err = series_flush(ss, &ss->series[i]);
	series_clear(ss);
	return err;
}

/* The queue of (run, key), made if needed; writer held. */
static int series_get(struct sqlite_store *ss, const char *run_id, const char *key,
		      struct series **out)
{
	struct series *q;
	size_t i;

	for (i = 0; i < ss->nseries; i++) {
		q = &ss->series[i];
		if (!strcmp(q->run_id, run_id) && !strcmp(q->key, key)) {
			*out = q;
			return 0;
		}
	}
	if (ss->nseries == ss->cseries) {
		size_t cap = ss->cseries ? ss->cseries * 2 : 8;

		q = realloc(ss->series, cap * sizeof(*q));
		if (!q)
			return -ENOMEM;
		ss->series = q;
		ss->cseries = cap;
	}
	q = &ss->series[ss->nseries];
	memset(q, 0, sizeof(*q));
	snprintf(q->run_id, sizeof(q->run_id), "%s", run_id);
	q->key = strdup(key);
	if (!q->key)
		return -ENOMEM;
	ss->nseries++;
	*out = q;
	return 0;
}

static int sqlite_log_metrics(struct store *s, struct store_batch *b, const char *run_id,
			      const char *key, const struct metric_point *pts, size_t n)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct series *q = NULL;
	int err, flush;

	err = sqldb_write_begin(&ss->sql, to_batch(b), 1);
	if (!err)
		err = run_writable(ss, run_id);
	if (!err)
		err = series_get(ss, run_id, key, &q);
	if (!err && q->n + n > q->cap) {
		size_t cap = q->cap ? q->cap : 64;
		struct metric_point *p;

		while (cap < q->n + n)
			cap *= 2;
		p = realloc(q->pts, cap * sizeof(*p));
		if (!p)
			err = -ENOMEM;
		else {
			q->pts = p;
			q->cap = cap;
		}
	}
	if (!err) {
		memcpy(q->pts + q->n, pts, n * sizeof(*pts));
		q->n += n;
		ss->queued += n;
		sqldb_count_pending(&ss->sql, n);
		sqldb_queued(&ss->sql);
	}
	/* A long burst between commits goes in now rather than piling up
	 * (queued is the writer's: read while it is held). */
	flush = !err && ss->queued > QUEUE_MAX;
	err = sqldb_write_end(&ss->sql, err);
	if (!err && flush)
		sqldb_flush_now(&ss->sql);
	return done(err);
}

static int sqlite_next_step(struct store *s, const char *run_id, const char *key, int64_t *next)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct sqldb_conn *c = sqldb_read_begin(&ss->sql);
	sqlite3_stmt *st;
	int err;

	/* Queued points are in the table by now: read_begin ran the queue. */
	if (!c)
		return done(-EIO);
	st = sqldb_query(c, Q_METRIC_MAX_STEP, "tt", run_id, key);
	err = sqldb_step_row(c, st, "cannot read the last step");
	*next = INT64_MIN;
	if (err == 1) {
		if (sqlite3_column_type(st, 0) != SQLITE_NULL) {
			int64_t max = sqlite3_column_int64(st, 0);

			*next = max == INT64_MAX ? INT64_MAX : max + 1;
		}
		sqlite3_reset(st);
		err = 0;
	}
	sqldb_read_end(&ss->sql, c);
	return done(err);
}

struct point_ctx {
	store_point_cb *cb;
	void *ctx;
};

static int point_row(void *ctx, sqlite3_stmt *st)
{
	struct point_ctx *c = ctx;

	return c->cb(c->ctx,
		     metric_from_store(sqlite3_column_double(st, 0), sqlite3_column_int(st, 1)),
		     sqlite3_column_int64(st, 2), sqldb_time(st, 3));
}

/*
 * A history may be long: it is read from a connection of its own, so the
 * caller's callback holds up nobody else; committing first makes it show
 * every point this process logged.
 */
static int sqlite_metric_history(struct store *s, const char *run_id, const char *key,
				 store_point_cb *cb, void *ctx)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct point_ctx pc = { cb, ctx };
	struct sqldb_conn *c = sqldb_read_long_begin(&ss->sql);
	int err;

	if (!c)
		return done(-EIO);
	err = sqldb_each_row(c, sqldb_query(c, Q_METRIC_HISTORY, "tt", run_id, key),
			     "cannot read the metric history", point_row, &pc);
	sqldb_read_end(&ss->sql, c);
	return done(err);
}

/* mfs_line_len(value, is_nan, step, timestamp): the bytes of the line
 * history/ shows for a point, for SQL's sums. */
static void line_len_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	char line[METRIC_HISTORY_LINE_MAX];
	double v = metric_from_store(sqlite3_value_double(argv[0]), sqlite3_value_int(argv[1]));
	int64_t ts = sqlite3_value_type(argv[3]) == SQLITE_NULL ? -1 : sqlite3_value_int64(argv[3]);

	(void)argc;
	sqlite3_result_int64(
		ctx, (sqlite3_int64)metric_history_line(line, v, sqlite3_value_int64(argv[2]), ts));
}

static int count_history(struct sqldb_conn *c, const char *run_id, const char *key,
			 struct store_history_stat *out)
{
	sqlite3_stmt *st = sqldb_query(c, Q_HISTORY_STAT, "tt", run_id, key);
	int err = sqldb_step_row(c, st, "cannot measure the metric history");

	if (err != 1)
		return err ? err : -EIO;
	out->points = (uint64_t)sqlite3_column_int64(st, 0);
	out->bytes = (uint64_t)sqlite3_column_double(st, 1);
	sqlite3_reset(st);
	return 0;
}

static int sqlite_history_stat(struct store *s, const char *run_id, const char *key,
			       struct store_history_stat *out)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct sqldb_stats stats;
	struct sqldb_conn *c;
	struct hstat *h;
	uint64_t others;
	int err, known;

	known = !sqldb_others_version(&ss->sql, &others);
	c = sqldb_read_begin(&ss->sql);
	if (!c)
		return done(-EIO);
	if (c != sqldb_writer(&ss->sql) || !known) {
		/* During a stall nothing of ours is kept: count afresh. */
		err = count_history(c, run_id, key, out);
		goto out;
	}
	sqldb_stats(&ss->sql, &stats);
	h = hstat_find(ss, run_id, key);
	if (h && h->others == others && h->failures == stats.commit_failures) {
		*out = h->st;
		err = 0;
		goto out;
	}
	err = count_history(c, run_id, key, out);
	if (err)
		goto out;
	if (!h) {
		h = &ss->hstat[ss->hstat_next++ % HSTAT_MAX];
		free(h->key);
		h->key = strdup(key);
		snprintf(h->run_id, sizeof(h->run_id), "%s", run_id);
	}
	if (h->key) {
		h->st = *out;
		h->others = others;
		h->failures = stats.commit_failures;
	}
out:
	sqldb_read_end(&ss->sql, c);
	return done(err);
}

/* ---- MLflow 3's logged models ----------------------------------------- */

/* LoggedModelStatus by its number in logged_models.status. */
static const char *const lm_status[] = { "UNSPECIFIED", "PENDING", "READY", "FAILED" };

/* Reads LM_COLS; strings borrowed from the row, folder left NULL. */
static void read_logged_model(sqlite3_stmt *st, struct store_logged_model *m)
{
	int64_t status = sqlite3_column_int64(st, 4);

	memset(m, 0, sizeof(*m));
	snprintf(m->id, sizeof(m->id), "%s", sqldb_text(st, 0));
	snprintf(m->experiment_id, sizeof(m->experiment_id), "%lld",
		 (long long)sqlite3_column_int64(st, 1));
	m->name = (char *)sqldb_text(st, 2);
	m->artifact_location = (char *)sqldb_text(st, 3);
	/* A number MLflow does not know would fail its from_int(): shown as
	 * UNSPECIFIED rather than hiding the model. */
	m->status = status >= 0 && status < (int64_t)(sizeof(lm_status) / sizeof(lm_status[0]))
			    ? lm_status[status]
			    : lm_status[0];
	m->model_type = (char *)sqldb_text(st, 5);
	m->source_run_id = (char *)sqldb_text(st, 6);
	m->creation_time = sqldb_time(st, 7);
	m->last_updated_time = sqldb_time(st, 8);
}

static int logged_model_row(void *ctx, sqlite3_stmt *st)
{
	struct cb_ctx *c = ctx;
	struct store_logged_model m;

	read_logged_model(st, &m);
	return c->cb.logged_model(c->ctx, &m);
}

/* Whether the logged-model tables are there (see has_logged_models). */
static int logged_models_there(struct sqlite_store *ss)
{
	struct sqldb_conn *c;
	sqlite3_stmt *st;
	int64_t now;
	int n = 0;

	if (__atomic_load_n(&ss->has_logged_models, __ATOMIC_ACQUIRE))
		return 1;
	now = clock_mono_ms();
	if (now - __atomic_load_n(&ss->lm_checked_ms, __ATOMIC_RELAXED) < 1000)
		return 0;
	__atomic_store_n(&ss->lm_checked_ms, now, __ATOMIC_RELAXED);
	c = sqldb_read_begin(&ss->sql);
	if (!c)
		return 0;
	st = sqldb_query(c, Q_LM_TABLES, "");
	if (sqldb_step_row(c, st, "cannot look for the logged-model tables") == 1)
		n = sqlite3_column_int(st, 0);
	if (st)
		sqlite3_reset(st);
	sqldb_read_end(&ss->sql, c);
	if (n == 4)
		__atomic_store_n(&ss->has_logged_models, 1, __ATOMIC_RELEASE);
	return n == 4;
}

static int sqlite_list_logged_models(struct store *s, const char *experiment_id,
				     store_logged_model_cb *cb, void *ctx)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct cb_ctx c = { .cb.logged_model = cb, .ctx = ctx };

	if (!logged_models_there(ss))
		return 0;
	return done(sqldb_list(&ss->sql, Q_LM_LIST, "cannot list logged models", logged_model_row,
			       &c, "t", experiment_id));
}

/* One active logged model by id into out, strings copied; on c. */
static int logged_model_on(struct sqlite_store *ss, struct sqldb_conn *c, const char *id,
			   struct store_logged_model *out)
{
	struct store_logged_model m;
	sqlite3_stmt *st;
	int err;

	memset(out, 0, sizeof(*out));
	if (!__atomic_load_n(&ss->has_logged_models, __ATOMIC_ACQUIRE))
		return -ENOENT;
	st = sqldb_query(c, Q_LM_GET, "t", id);
	err = sqldb_step_row(c, st, "cannot read a logged model");
	if (err != 1)
		return err ? err : -ENOENT;
	read_logged_model(st, &m);
	err = store_logged_model_copy(out, &m);
	sqlite3_reset(st);
	return err;
}

static int sqlite_get_logged_model(struct store *s, const char *id, struct store_logged_model *out)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct sqldb_conn *c;
	int err;

	memset(out, 0, sizeof(*out));
	if (!logged_models_there(ss))
		return -ENOENT;
	c = sqldb_read_begin(&ss->sql);
	if (!c)
		return done(-EIO);
	err = logged_model_on(ss, c, id, out);
	sqldb_read_end(&ss->sql, c);
	return done(err);
}

/* ---- registry -------------------------------------------------------- */

static int model_row(void *ctx, sqlite3_stmt *st)
{
	struct cb_ctx *c = ctx;
	struct store_model m;

	m.name = (char *)sqldb_text(st, 0);
	m.creation_time = sqldb_time(st, 1);
	m.last_updated_time = sqldb_time(st, 2);
	m.description = (char *)sqldb_text(st, 3);
	return c->cb.model(c->ctx, &m);
}

static int sqlite_list_models(struct store *s, store_model_cb *cb, void *ctx)
{
	struct cb_ctx c = { .cb.model = cb, .ctx = ctx };

	return done(sqldb_list(&to_sqlite(s)->sql, Q_MODEL_LIST, "cannot list registered models",
			       model_row, &c, ""));
}

/* Copies the first row's model into the caller's struct, then stops. */
static int copy_model(void *ctx, const struct store_model *m)
{
	struct store_model *out = ctx;

	*out = *m;
	out->name = strdup(m->name);
	out->description = strdup(m->description);
	return out->name && out->description ? 1 : -ENOMEM;
}

static int sqlite_get_model(struct store *s, const char *name, struct store_model *out)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct cb_ctx c = { .cb.model = copy_model, .ctx = out };
	int err;

	memset(out, 0, sizeof(*out));
	err = sqldb_list(&ss->sql, Q_MODEL_GET, "cannot read a registered model", model_row, &c,
			 "t", name);
	if (err < 0)
		store_model_release(out);
	return done(err < 0 ? err : err ? 0 : -ENOENT);
}

static int version_row(void *ctx, sqlite3_stmt *st)
{
	struct cb_ctx *c = ctx;
	struct store_version v;

	v.model = (char *)sqldb_text(st, 0);
	v.version = sqlite3_column_int64(st, 1);
	v.creation_time = sqldb_time(st, 2);
	v.last_updated_time = sqldb_time(st, 3);
	v.description = (char *)sqldb_text(st, 4);
	v.source = (char *)sqldb_text(st, 5);
	v.run_id = (char *)sqldb_text(st, 6);
	v.status = (char *)sqldb_text(st, 7);
	v.stage = (char *)sqldb_text(st, 8);
	v.storage_location = (char *)sqldb_text(st, 9);
	return c->cb.version(c->ctx, &v);
}

static int sqlite_list_versions(struct store *s, const char *model, store_version_cb *cb, void *ctx)
{
	struct cb_ctx c = { .cb.version = cb, .ctx = ctx };

	return done(sqldb_list(&to_sqlite(s)->sql, Q_VERSION_LIST, "cannot list model versions",
			       version_row, &c, "t", model));
}

static int copy_version(void *ctx, const struct store_version *v)
{
	struct store_version *out = ctx;

	*out = *v;
	out->model = strdup(v->model);
	out->description = strdup(v->description);
	out->source = strdup(v->source);
	out->run_id = strdup(v->run_id);
	out->status = strdup(v->status);
	out->stage = strdup(v->stage);
	out->storage_location = strdup(v->storage_location);
	return out->model && out->description && out->source && out->run_id && out->status &&
			       out->stage && out->storage_location
		       ? 1
		       : -ENOMEM;
}

static int sqlite_get_version(struct store *s, const char *model, int64_t version,
			      struct store_version *out)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct cb_ctx c = { .cb.version = copy_version, .ctx = out };
	int err;

	memset(out, 0, sizeof(*out));
	err = sqldb_list(&ss->sql, Q_VERSION_GET, "cannot read a model version", version_row, &c,
			 "ti", model, version);
	if (err < 0)
		store_version_release(out);
	return done(err < 0 ? err : err ? 0 : -ENOENT);
}

static int alias_row(void *ctx, sqlite3_stmt *st)
{
	struct cb_ctx *c = ctx;

	return c->cb.alias(c->ctx, sqldb_text(st, 0), sqlite3_column_int64(st, 1));
}

static int sqlite_list_aliases(struct store *s, const char *model, store_alias_cb *cb, void *ctx)
{
	struct cb_ctx c = { .cb.alias = cb, .ctx = ctx };

	return done(sqldb_list(&to_sqlite(s)->sql, Q_ALIAS_LIST, "cannot list aliases", alias_row,
			       &c, "t", model));
}

/* Runs a registry write statement: 0, or -errno. */
static int reg_write(struct sqlite_store *ss, sqlite3_stmt *st, const char *what)
{
	int err = sqldb_step_change(sqldb_writer(&ss->sql), st, what);

	return err < 0 ? err : 0;
}

/* Runs one of the statements that take a model name and a time. */
static int reg_touch(struct sqlite_store *ss, enum sql_id id, const char *model, int64_t now)
{
	return reg_write(ss, sqldb_query(sqldb_writer(&ss->sql), id, "ti", model, now),
			 "cannot update a registered model");
}

/* Runs one of the statements that take just a model name. */
static int reg_drop(struct sqlite_store *ss, enum sql_id id, const char *model)
{
	return reg_write(ss, sqldb_query(sqldb_writer(&ss->sql), id, "t", model),
			 "cannot delete a registered model");
}

static int sqlite_create_model(struct store *s, struct store_batch *b, const char *name)
{
	struct sqlite_store *ss = to_sqlite(s);
	int err;

	err = sqldb_write_begin(&ss->sql, to_batch(b), 0);
	if (!err)
		err = has_row(ss, sqldb_query(sqldb_writer(&ss->sql), Q_MODEL_EXISTS, "t", name),
			      "cannot look up a registered model");
	if (err == 1) {
		store_set_errmsg("a registered model named '%s' exists", name);
		err = -EEXIST;
	}
	if (!err)
		err = reg_write(ss,
				sqldb_query(sqldb_writer(&ss->sql), Q_MODEL_INSERT, "ti", name,
					    clock_wall_ms()),
				"cannot create the registered model");
	return done(sqldb_write_end(&ss->sql, err));
}

/*
 * MLflow renames the model and its versions and counts on ON UPDATE CASCADE
 * for the rest; each table is moved here too, so that a rename is whole
 * even on a connection without foreign keys.
 */
static int sqlite_rename_model(struct store *s, struct store_batch *b, const char *name,
			       const char *new_name)
{
	static const enum sql_id follow[] = { Q_MODEL_RENAME_TAGS, Q_MODEL_RENAME_ALIASES,
					      Q_MODEL_RENAME_VERSIONS,
					      Q_MODEL_RENAME_VERSION_TAGS };
	struct sqlite_store *ss = to_sqlite(s);
	struct sqldb_conn *c = sqldb_writer(&ss->sql);
	int64_t now = clock_wall_ms();
	size_t i;
	int err;

	err = sqldb_write_begin(&ss->sql, to_batch(b), 0);
	if (!err)
		err = model_there(ss, name);
	/* Renaming to its own name only touches it, as in MLflow. */
	if (!err && strcmp(name, new_name)) {
		err = has_row(ss, sqldb_query(c, Q_MODEL_EXISTS, "t", new_name),
			      "cannot look up a registered model");
		if (err == 1) {
			store_set_errmsg("a registered model named '%s' exists", new_name);
			err = -EEXIST;
		}
	}
	if (!err)
		err = reg_write(ss, sqldb_query(c, Q_MODEL_RENAME, "tti", name, new_name, now),
				"cannot rename the registered model");
	for (i = 0; !err && i < sizeof(follow) / sizeof(follow[0]); i++)
		err = reg_write(ss, sqldb_query(c, follow[i], "tt", name, new_name),
				"cannot rename the registered model");
	if (!err)
		err = reg_touch(ss, Q_MODEL_TOUCH_VERSIONS, new_name, now);
	return done(sqldb_write_end(&ss->sql, err));
}

/*
 * Only a model without versions goes (MLflow would delete them with it).
 * Versions deleted before stay as hidden rows with their tags: they go with
 * the model, as in MLflow.
 */
static int sqlite_delete_model(struct store *s, struct store_batch *b, const char *name)
{
	static const enum sql_id drop[] = { Q_MODEL_DROP_VERSION_TAGS, Q_MODEL_DROP_VERSIONS,
					    Q_MODEL_DROP_TAGS, Q_MODEL_DROP_ALIASES,
					    Q_MODEL_DELETE };
	struct sqlite_store *ss = to_sqlite(s);
	size_t i;
	int err;

	err = sqldb_write_begin(&ss->sql, to_batch(b), 0);
	if (!err)
		err = model_there(ss, name);
	if (!err) {
		err = has_row(ss,
			      sqldb_query(sqldb_writer(&ss->sql), Q_MODEL_HAS_VERSIONS, "t", name),
			      "cannot look for model versions");
		if (err == 1) {
			store_set_errmsg("registered model '%s' still has versions", name);
			err = -ENOTEMPTY;
		}
	}
	for (i = 0; !err && i < sizeof(drop) / sizeof(drop[0]); i++)
		err = reg_drop(ss, drop[i], name);
	return done(sqldb_write_end(&ss->sql, err));
}

/* MLflow moves the model's time for its own description only. */
static int sqlite_set_description(struct store *s, struct store_batch *b, const char *model,
				  int64_t version, const char *text)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct sqldb_conn *c = sqldb_writer(&ss->sql);
	int err;

	err = sqldb_write_begin(&ss->sql, to_batch(b), 0);
	if (!err)
		err = version ? version_there(ss, model, version) : model_there(ss, model);
	if (!err && version)
		err = reg_write(ss,
				sqldb_query(c, Q_VERSION_DESCRIBE, "titi", model, version, text,
					    clock_wall_ms()),
				"cannot set the description");
	else if (!err)
		err = reg_write(
			ss, sqldb_query(c, Q_MODEL_DESCRIBE, "tti", model, text, clock_wall_ms()),
			"cannot set the description");
	return done(sqldb_write_end(&ss->sql, err));
}

/*
 * Whether a version's source names a logged model, models:/<id>: 1 with
 * *id pointing at the id in source, 0 for any other source (an artifact
 * URI), -EINVAL for the models:/ URIs of registered models (<name>/<version>,
 * <name>/<stage>, <name>@<alias>), which MLflow resolves through the registry
 * and mlflowfs does not.  MLflow takes the scheme in any case.
 */
static int source_logged_model(const char *source, const char **id)
{
	if (strncasecmp(source, "models:", 7))
		return 0;
	if (source[7] != '/' || !source[8] || strpbrk(source + 8, "/@")) {
		store_set_errmsg(
			"'%s' is not models:/<logged model id>, the one models:/ URI taken",
			source);
		return -EINVAL;
	}
	*id = source + 8;
	return 1;
}

/*
 * From models:/<id> MLflow's registry records the logged model's artifact
 * location as the storage location, and its source run unless a run is
 * given; from anything else, the source itself.  The model must be there
 * and active, as MLflow's get_logged_model() finds it.  Linking the version
 * back in the logged model's mlflow.modelVersions tag is the fluent
 * mlflow.register_model()'s doing (and the REST server's when given a
 * model_id), not create_model_version()'s, the call this one stands for.
 */
static int sqlite_create_version(struct store *s, struct store_batch *b, const char *model,
				 const char *source, const char *run_id, int64_t *version)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct sqldb_conn *c = sqldb_writer(&ss->sql);
	struct store_logged_model lm = { 0 };
	const char *storage = source, *lm_id = NULL;
	int64_t now = clock_wall_ms(), n = 0;
	sqlite3_stmt *st;
	int err, from_lm;

	from_lm = source_logged_model(source, &lm_id);
	if (from_lm < 0)
		return from_lm;
	err = sqldb_write_begin(&ss->sql, to_batch(b), 0);
	if (!err)
		err = model_there(ss, model);
	if (!err && from_lm) {
		err = logged_model_on(ss, c, lm_id, &lm);
		if (err == -ENOENT)
			store_set_errmsg("no logged model '%s'", lm_id);
		if (!err) {
			storage = lm.artifact_location;
			if (!run_id || !run_id[0])
				run_id = lm.source_run_id;
		}
	}
	if (!err) {
		st = sqldb_query(c, Q_VERSION_MAX, "t", model);
		err = sqldb_step_row(c, st, "cannot number the new version");
		if (err == 1) {
			n = sqlite3_column_int64(st, 0) + 1;
			sqlite3_reset(st);
			err = 0;
		} else if (!err) {
			err = -EIO;
		}
	}
	if (!err)
		err = reg_write(ss,
				sqldb_query(c, Q_VERSION_INSERT, "tiittt", model, n, now, source,
					    run_id && run_id[0] ? run_id : NULL, storage),
				"cannot create the model version");
	if (!err)
		err = reg_touch(ss, Q_MODEL_TOUCH, model, now);
	err = sqldb_write_end(&ss->sql, err);
	store_logged_model_release(&lm);
	if (!err)
		*version = n;
	return done(err);
}

/* MLflow's soft delete (Q_VERSION_DELETE); the version's aliases go. */
static int sqlite_delete_version(struct store *s, struct store_batch *b, const char *model,
				 int64_t version)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct sqldb_conn *c = sqldb_writer(&ss->sql);
	int64_t now = clock_wall_ms();
	int err;

	err = sqldb_write_begin(&ss->sql, to_batch(b), 0);
	if (!err)
		err = version_there(ss, model, version);
	if (!err)
		err = reg_write(ss, sqldb_query(c, Q_VERSION_DROP_ALIASES, "ti", model, version),
				"cannot delete the version's aliases");
	if (!err)
		err = reg_write(ss, sqldb_query(c, Q_VERSION_DELETE, "tii", model, version, now),
				"cannot delete the model version");
	if (!err)
		err = reg_touch(ss, Q_MODEL_TOUCH, model, now);
	return done(sqldb_write_end(&ss->sql, err));
}

static int sqlite_set_stage(struct store *s, struct store_batch *b, const char *model,
			    int64_t version, const char *stage)
{
	static const char *const stages[] = { "None", "Staging", "Production", "Archived" };
	struct sqlite_store *ss = to_sqlite(s);
	struct sqldb_conn *c = sqldb_writer(&ss->sql);
	int64_t now = clock_wall_ms();
	size_t i;
	int err;

	for (i = 0; i < sizeof(stages) / sizeof(stages[0]) && strcmp(stage, stages[i]); i++)
		;
	if (i == sizeof(stages) / sizeof(stages[0])) {
		store_set_errmsg("'%s' is not a stage: None, Staging, Production or Archived",
				 stage);
		return -EINVAL;
	}
	err = sqldb_write_begin(&ss->sql, to_batch(b), 0);
	if (!err)
		err = version_there(ss, model, version);
	if (!err)
		err = reg_write(ss,
				sqldb_query(c, Q_VERSION_STAGE, "titi", model, version, stage, now),
				"cannot set the stage");
	if (!err)
		err = reg_touch(ss, Q_MODEL_TOUCH, model, now);
	return done(sqldb_write_end(&ss->sql, err));
}

/* MLflow moves no time for an alias. */
static int sqlite_set_alias(struct store *s, struct store_batch *b, const char *model,
			    const char *alias, int64_t version)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct sqldb_conn *c = sqldb_writer(&ss->sql);
	int err;

	err = sqldb_write_begin(&ss->sql, to_batch(b), 0);
	if (!err)
		err = version_there(ss, model, version);
	if (!err)
		err = reg_write(ss, sqldb_query(c, Q_ALIAS_UPSERT, "tti", model, alias, version),
				"cannot set the alias");
	return done(sqldb_write_end(&ss->sql, err));
}

static int sqlite_delete_alias(struct store *s, struct store_batch *b, const char *model,
			       const char *alias)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct sqldb_conn *c = sqldb_writer(&ss->sql);
	int err;

	err = sqldb_write_begin(&ss->sql, to_batch(b), 0);
	if (!err)
		err = model_there(ss, model);
	if (!err) {
		err = sqldb_step_change(c, sqldb_query(c, Q_ALIAS_DELETE, "tt", model, alias),
					"cannot delete the alias");
		if (err == 0) {
			store_set_errmsg("registered model '%s' has no alias '%s'", model, alias);
			err = -ENOENT;
		}
	}
	return done(sqldb_write_end(&ss->sql, err < 0 ? err : 0));
}

static const char *sqlite_artifact_root(const struct store *s)
{
	return ((const struct sqlite_store *)s)->artifact_root;
}

static int sqlite_describe(struct store *s, struct buf *out)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct sqldb_stats st;

	sqldb_stats(&ss->sql, &st);
	return buf_addf(out,
			"store: sqlite\n"
			"uri: %s\n"
			"database: %s\n"
			"read_only: %s\n"
			"artifact_root: %s\n"
			"schema_revision: %s\n"
			"journal_mode: %s\n"
			"transaction_open: %s\n"
			"pending_points: %llu\n"
			"points_logged: %llu\n"
			"commits: %llu\n"
			"commit_failures: %llu\n"
			"read_connections: %d\n"
			"reads_during_stalls: %llu\n"
			"sqlite_version: %s\n",
			ss->uri, ss->db_path, ss->base.read_only ? "yes" : "no", ss->artifact_root,
			ss->info.revision[0] ? ss->info.revision : "(none)",
			ss->wal ? "wal" : "other", st.in_txn ? "yes" : "no",
			(unsigned long long)st.pending, (unsigned long long)st.committed,
			(unsigned long long)st.commits, (unsigned long long)st.commit_failures,
			st.readers, (unsigned long long)st.stalled_reads, sqlite3_libversion());
}

/* ---- open, close ----------------------------------------------------- */

static void sqlite_close(struct store *s)
{
	struct sqlite_store *ss = to_sqlite(s);
	size_t i;

	sqldb_release(&ss->sql);
	series_clear(ss);
	free(ss->series);
	for (i = 0; i < HSTAT_MAX; i++)
		free(ss->hstat[i].key);
	free(ss->uri);
	free(ss->db_path);
	free(ss->artifact_root);
	pthread_mutex_destroy(&ss->watch_lock);
	pthread_cond_destroy(&ss->watch_done);
	free(ss);
}

/* mkdir -p of the folder that holds path, as MLflow does for sqlite URIs. */
static int make_parent_dirs(const char *path)
{
	char *copy = strdup(path), *p;
	int err = 0;

	if (!copy)
		return -ENOMEM;
	for (p = copy + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		if (mkdir(copy, 0777) < 0 && errno != EEXIST) {
			err = -errno;
			break;
		}
		*p = '/';
	}
	free(copy);
	return err;
}

static int open_fail(char **errmsg, const char *path, const char *why)
{
	if (asprintf(errmsg, "cannot open '%s': %s", path, why) < 0)
		*errmsg = NULL;
	return -1;
}

/* Whether the file system holding path's folder is mounted read-only. */
static int on_read_only_fs(const char *path)
{
	char *copy = strdup(path), *slash;
	struct statvfs sv;
	int ro;

	if (!copy)
		return 0;
	slash = strrchr(copy, '/');
	if (slash)
		*(slash == copy ? slash + 1 : slash) = '\0';
	ro = statvfs(copy, &sv) == 0 && (sv.f_flag & ST_RDONLY);
	free(copy);
	return ro;
}

/*
 * Opens path read-only.  A WAL database needs its -shm file, which a
 * read-only file system may lack and cannot get: then it is opened as
 * immutable, which nobody can change there anyway.
 */
static int open_read_only(const char *path, sqlite3 **dbp)
{
	struct buf uri = BUF_INIT;
	const char *p;
	int rc;

	rc = sqlite3_open_v2(path, dbp, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK &&
	    sqlite3_exec(*dbp, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL) == SQLITE_OK)
		return SQLITE_OK;
	sqlite3_close(*dbp);
	*dbp = NULL;
	/* A URI file name escapes '%', '?' and '#'. */
	rc = buf_adds(&uri, "file:") ? SQLITE_NOMEM : SQLITE_OK;
	for (p = path; *p && rc == SQLITE_OK; p++)
		if ((strchr("%?#", *p) ? buf_addf(&uri, "%%%02X", (unsigned char)*p)
				       : buf_addch(&uri, *p)))
			rc = SQLITE_NOMEM;
	if (rc == SQLITE_OK && buf_adds(&uri, "?immutable=1"))
		rc = SQLITE_NOMEM;
	if (rc == SQLITE_OK)
		rc = sqlite3_open_v2(buf_str(&uri), dbp,
				     SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX,
				     NULL);
	buf_release(&uri);
	return rc;
}

/* What every connection gets: MLflow's settings, and history/'s measure. */
static void connection_setup(sqlite3 *db)
{
	sqlite3_exec(db, "PRAGMA foreign_keys = ON; PRAGMA case_sensitive_like = ON", NULL, NULL,
		     NULL);
	sqlite3_create_function(db, "mfs_line_len", 4, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
				line_len_fn, NULL, NULL);
}

/*
 * Opens and checks (or creates) the database; 0, or -1 with *errmsg.  With
 * -o ro, or when the database cannot be written (a read-only file system, a
 * file without write permission), it is opened read-only and
 * ss->base.read_only set, so the whole mount is read-only.
 */
static int open_database(struct sqlite_store *ss, sqlite3 **dbp, char **errmsg)
{
	sqlite3_stmt *st;
	char *why = NULL;
	int rc = SQLITE_OK, empty, err;
	sqlite3 *db;

	if (!ss->base.read_only) {
		err = make_parent_dirs(ss->db_path);
		if (err && err != -EROFS)
			return open_fail(errmsg, ss->db_path, strerror(-err));
		rc = sqlite3_open_v2(
			ss->db_path, dbp,
			SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
		if ((rc == SQLITE_OK && sqlite3_db_readonly(*dbp, "main") == 1) ||
		    (rc != SQLITE_OK && on_read_only_fs(ss->db_path) &&
		     access(ss->db_path, F_OK) == 0)) {
			log_warn("'%s' %s: mounting read-only", ss->db_path,
				 on_read_only_fs(ss->db_path) ? "is on a read-only file system"
							      : "cannot be written");
			ss->base.read_only = 1;
		}
		if (ss->base.read_only) {
			sqlite3_close(*dbp);
			*dbp = NULL;
		}
	}
	if (ss->base.read_only && !*dbp)
		rc = open_read_only(ss->db_path, dbp);
	db = *dbp;
	if (rc != SQLITE_OK)
		return open_fail(errmsg, ss->db_path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, ss->busy_ms);
	connection_setup(db);

	empty = schema_is_empty(db);
	if (empty < 0)
		return open_fail(errmsg, ss->db_path,
				 empty == -EPROTO ? "file is not a database" : sqlite3_errmsg(db));
	if (empty && ss->base.read_only)
		return open_fail(errmsg, ss->db_path, "the database is empty and read-only");
	if (empty) {
		err = schema_create(db, ss->artifact_root, &why);
		if (err) {
			open_fail(errmsg, ss->db_path, why ? why : strerror(-err));
			free(why);
			return -1;
		}
		log_info("created a new MLflow database '%s' (schema %s)", ss->db_path,
			 SCHEMA_REVISION);
	}
	err = schema_check(db, &ss->info, &why);
	if (err) {
		open_fail(errmsg, ss->db_path, why ? why : strerror(-err));
		free(why);
		return -1;
	}
	/*
	 * WAL lets MLflow read while we write and makes commits cheap; the mode
	 * is kept in the file.  It needs a moment without other connections,
	 * so failing to switch is not fatal.
	 */
	rc = sqlite3_prepare_v2(
		db, ss->base.read_only ? "PRAGMA journal_mode" : "PRAGMA journal_mode = WAL", -1,
		&st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		ss->wal = !strcmp(sqldb_text(st, 0), "wal");
	sqlite3_finalize(st);
	if (ss->base.read_only)
		return 0;
	if (!ss->wal)
		log_warn("'%s' stays in its rollback-journal mode: MLflow readers will wait while "
			 "mlflowfs commits",
			 ss->db_path);
	/* A commit survives a crash of mlflowfs; fsync() adds power loss. */
	sqlite3_exec(db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
	return 0;
}

/*
 * Whether db has MLflow 3's four logged-model tables, which one migration
 * (400f98739977) adds together: 1, 0, or -1 with *errmsg.
 */
static int find_logged_models(struct sqlite_store *ss, sqlite3 *db, char **errmsg)
{
	sqlite3_stmt *st = NULL;
	int rc, n = -1;

	rc = sqlite3_prepare_v2(db,
				"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name "
				"IN ('logged_models', 'logged_model_params', "
				"'logged_model_metrics', 'logged_model_tags')",
				-1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (n < 0)
		return open_fail(errmsg, ss->db_path, sqlite3_errmsg(db));
	ss->has_logged_models = n == 4;
	return ss->has_logged_models;
}

/*
 * The statement texts for this database: @EWS@ and @MWS@ become a filter on
 * MLflow 3's workspace column where the experiments or the registry have it.
 */
static char **statement_texts(const struct schema_info *info)
{
	char **out = calloc(Q_COUNT, sizeof(*out));
	struct buf sql = BUF_INIT;
	const char *p;
	size_t i;
	int err = !out;

	for (i = 0; !err && i < Q_COUNT; i++) {
		buf_reset(&sql);
		for (p = sql_text[i]; *p && !err; p++) {
			if (!strncmp(p, "@EWS@", 5) || !strncmp(p, "@MWS@", 5)) {
				if (p[1] == 'E' ? info->has_workspace : info->models_have_workspace)
					err = buf_adds(&sql, "AND workspace = 'default'");
				p += 4;
			} else {
				err = buf_addch(&sql, *p);
			}
		}
		if (!err)
			out[i] = strdup(buf_str(&sql));
		err = err || !out[i];
	}
	buf_release(&sql);
	if (err && out) {
		for (i = 0; i < Q_COUNT; i++)
			free(out[i]);
		free(out);
		out = NULL;
	}
	return out;
}

/* path made absolute against the folder mlflowfs was started in. */
static char *absolute_path(const char *path, const char *cwd)
{
	char *out;

	if (path[0] == '/')
		return strdup(path);
	if (!cwd || asprintf(&out, "%s/%s", strcmp(cwd, "/") ? cwd : "", path) < 0)
		return NULL;
	return out;
}

/*
 * sqlite:///relative.db and sqlite:////absolute/path.db, SQLAlchemy's forms
 * as MLflow takes them; the database's folder holds mlartifacts/ unless
 * --artifact-root says otherwise.  0, or -1 with *errmsg.
 */
static int parse_uri(struct sqlite_store *ss, const struct mfs_config *cfg, char **errmsg)
{
	const char *path = cfg->tracking_uri + 10;
	char *slash;

	if (strncmp(cfg->tracking_uri, "sqlite:///", 10) || !path[0] || strchr(path, '?')) {
		if (asprintf(errmsg,
			     "unsupported sqlite URI '%s': use sqlite:///relative.db or "
			     "sqlite:////absolute/path.db, without query parameters",
			     cfg->display_uri) < 0)
			*errmsg = NULL;
		return -1;
	}
	ss->db_path = absolute_path(path, cfg->cwd);
	if (!ss->db_path || asprintf(&ss->uri, "sqlite:///%s", ss->db_path) < 0) {
		ss->uri = NULL;
		*errmsg = strdup("out of memory");
		return -1;
	}
	if (cfg->artifact_root) {
		ss->artifact_root = absolute_path(cfg->artifact_root, cfg->cwd);
	} else {
		slash = strrchr(ss->db_path, '/');
		if (asprintf(&ss->artifact_root, "%.*s/mlartifacts", (int)(slash - ss->db_path),
			     ss->db_path) < 0)
			ss->artifact_root = NULL;
	}
	if (!ss->artifact_root) {
		*errmsg = strdup("out of memory");
		return -1;
	}
	return 0;
}

struct store *store_sqlite_open(const struct mfs_config *cfg, char **errmsg)
{
	struct sqlite_store *ss = calloc(1, sizeof(*ss));
	sqlite3 *db = NULL;
	char **texts;
	int err;

	*errmsg = NULL;
	if (!ss) {
		*errmsg = strdup("out of memory");
		return NULL;
	}
	ss->base.ops = &sqlite_ops;
	ss->base.read_only = cfg->read_only;
	pthread_mutex_init(&ss->watch_lock, NULL);
	pthread_cond_init(&ss->watch_done, NULL);
	if (parse_uri(ss, cfg, errmsg))
		goto fail;
	ss->busy_ms = (int)(cfg->lock_timeout * 1000);
	if (sqldb_init(&ss->sql, ss->db_path, ss->busy_ms))
		goto nomem;
	if (open_database(ss, &db, errmsg) || find_logged_models(ss, db, errmsg) < 0)
		goto fail;
	texts = statement_texts(&ss->info);
	if (!texts)
		goto nomem;
	sqldb_set_flush(&ss->sql, flush_queue, ss);
	/* A read-only database may be open as immutable: no second connection. */
	err = sqldb_start(&ss->sql, db, texts, Q_COUNT, connection_setup, ss->base.read_only);
	db = NULL;
	if (err) {
		*errmsg = strdup("cannot start the commit thread");
		goto fail;
	}
	return &ss->base;
nomem:
	*errmsg = strdup("out of memory");
fail:
	sqlite3_close(db);
	sqlite_close(&ss->base);
	return NULL;
}

static const struct store_ops sqlite_ops = {
	.name = "sqlite",
	.close = sqlite_close,
	.describe = sqlite_describe,
	.artifact_root = sqlite_artifact_root,
	.others_version = sqlite_others_version,
	.batch_new = sqlite_batch_new,
	.batch_commit = sqlite_batch_commit,
	.batch_free = sqlite_batch_free,
	.list_experiments = sqlite_list_experiments,
	.get_experiment = sqlite_get_experiment,
	.get_experiment_by_id = sqlite_get_experiment_by_id,
	.create_experiment = sqlite_create_experiment,
	.rename_experiment = sqlite_rename_experiment,
	.delete_experiment = sqlite_delete_experiment,
	.list_runs = sqlite_list_runs,
	.get_run = sqlite_get_run,
	.create_run = sqlite_create_run,
	.rename_run = sqlite_rename_run,
	.delete_run = sqlite_delete_run,
	.set_status = sqlite_set_status,
	.get_snapshot = sqlite_get_snapshot,
	.list_kv = sqlite_list_kv,
	.get_kv = sqlite_get_kv,
	.log_param = sqlite_log_param,
	.set_tag = sqlite_set_tag,
	.delete_tag = sqlite_delete_tag,
	.rename_tag = sqlite_rename_tag,
	.next_step = sqlite_next_step,
	.log_metrics = sqlite_log_metrics,
	.metric_history = sqlite_metric_history,
	.history_stat = sqlite_history_stat,
	.list_models = sqlite_list_models,
	.get_model = sqlite_get_model,
	.list_versions = sqlite_list_versions,
	.get_version = sqlite_get_version,
	.list_aliases = sqlite_list_aliases,
	.list_logged_models = sqlite_list_logged_models,
	.get_logged_model = sqlite_get_logged_model,
	.create_model = sqlite_create_model,
	.rename_model = sqlite_rename_model,
	.delete_model = sqlite_delete_model,
	.set_description = sqlite_set_description,
	.create_version = sqlite_create_version,
	.delete_version = sqlite_delete_version,
	.set_stage = sqlite_set_stage,
	.set_alias = sqlite_set_alias,
	.delete_alias = sqlite_delete_alias,
};
