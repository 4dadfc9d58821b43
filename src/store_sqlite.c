/*
 * store_sqlite.c - the local backend: MLflow's own SQLite database, read and
 * written directly with MLflow's rules (latest_metrics kept in the same
 * transaction as metrics, soft deletes, runs.name mirrored in mlflow.runName).
 *
 * One connection serves every thread, so reads see this mount's writes at
 * once, committed or not (SPEC §4).  Writes go into one open transaction that
 * the committer thread commits at most COMMIT_MS after it began, and that
 * close() and fsync() commit at once; each operation inside it is a savepoint,
 * so a failed operation leaves nothing behind.
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
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "metric.h"
#include "options.h"
#include "schema.h"
#include "store-internal.h"

/* The longest a write transaction stays open (SPEC §4: at least every 20 ms). */
#define COMMIT_MS 20
/* MLflow waits 20 s for the database lock; wait a little longer than it. */
#define BUSY_TIMEOUT_MS 30000

/*
 * Every statement the backend runs.  In the text, @EWS@ and @MWS@ become
 * "AND <alias>workspace = 'default'" when the experiments (@EWS@) or the
 * registry tables (@MWS@) have MLflow 3's workspace column, else nothing.
 */
enum sql_id {
	Q_DATA_VERSION,
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
	Q_MODEL_LIST,
	Q_MODEL_GET,
	Q_VERSION_LIST,
	Q_VERSION_GET,
	Q_ALIAS_LIST,
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

static const char *const sql_text[Q_COUNT] = {
	[Q_DATA_VERSION] = "PRAGMA data_version",
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
	[Q_RUN_LIST] = "SELECT " RUN_COLS " FROM runs r WHERE r.experiment_id = ?1 "
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
};

struct sqlite_store {
	struct store base;
	pthread_mutex_t lock; /* serialises every use of db and of the fields below it */
	sqlite3 *db;
	sqlite3_stmt *stmt[Q_COUNT]; /* prepared on first use */
	int in_txn;		     /* a write transaction is open */
	struct timespec txn_began;   /* CLOCK_MONOTONIC, when it was opened */
	uint64_t txn_seq;	     /* number of the open transaction, or of the next one */
	uint64_t failed_seq;	     /* the newest transaction whose commit failed, or 0 */
	uint64_t own_writes;	     /* write operations done, to version the folder index */
	uint64_t pending_points;     /* metric points in the open transaction */
	uint64_t points_logged;	     /* metric points committed since mount */
	uint64_t commits;	     /* transactions committed since mount */
	uint64_t commit_failures;    /* transactions lost since mount */
	int stop;		     /* the committer must end */
	pthread_cond_t wake;	     /* wakes the committer; used with lock */
	pthread_t committer;
	int committer_started;
	/* Set at open, read-only afterwards. */
	struct schema_info info;
	char *uri;
	char *db_path;
	char *artifact_root;
	int wal;
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

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The one translation of SQLite result codes into errno values. */
static int sqlite_rc_to_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return EBUSY;
	case SQLITE_NOMEM:
		return ENOMEM;
	case SQLITE_READONLY:
		return EROFS;
	case SQLITE_FULL:
		return ENOSPC;
	case SQLITE_CONSTRAINT:
		return EEXIST;
	case SQLITE_TOOBIG:
		return EFBIG;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return EACCES;
	case SQLITE_NOTADB:
		return EPROTO;
	default:
		return EIO;
	}
}

/* Records the connection's error for store_errmsg() and returns -errno. */
static int db_fail(struct sqlite_store *ss, int rc, const char *what)
{
	store_set_errmsg("%s: %s", what, sqlite3_errmsg(ss->db));
	log_debug("sqlite: %s: %s (rc %d)", what, sqlite3_errmsg(ss->db), rc);
	return -sqlite_rc_to_errno(rc);
}

/* Prepares (once) and resets statement id; NULL with errmsg set on failure. */
static sqlite3_stmt *stmt(struct sqlite_store *ss, enum sql_id id)
{
	struct buf sql = BUF_INIT;
	const char *p;
	int rc;

	if (ss->stmt[id]) {
		sqlite3_reset(ss->stmt[id]);
		sqlite3_clear_bindings(ss->stmt[id]);
		return ss->stmt[id];
	}
	for (p = sql_text[id]; *p; p++) {
		if (!strncmp(p, "@EWS@", 5) || !strncmp(p, "@MWS@", 5)) {
			int on = p[1] == 'E' ? ss->info.has_workspace
					     : ss->info.models_have_workspace;

			if (on && buf_adds(&sql, "AND workspace = 'default'"))
				goto nomem;
			p += 4;
		} else if (buf_addch(&sql, *p)) {
			goto nomem;
		}
	}
	rc = sqlite3_prepare_v3(ss->db, buf_str(&sql), -1, SQLITE_PREPARE_PERSISTENT, &ss->stmt[id],
				NULL);
	if (rc != SQLITE_OK) {
		store_set_errmsg("cannot prepare a query: %s", sqlite3_errmsg(ss->db));
		log_error("sqlite: cannot prepare '%s': %s", buf_str(&sql), sqlite3_errmsg(ss->db));
		ss->stmt[id] = NULL;
	}
	buf_release(&sql);
	return ss->stmt[id];
nomem:
	buf_release(&sql);
	store_set_errmsg("out of memory");
	return NULL;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

static char *col_dup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return strdup(t ? (const char *)t : "");
}

static int64_t col_time(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, i);
}

/* Parses an experiment id as SQLite stores it (an integer); 0 if not one. */
static int parse_id(const char *id, sqlite3_int64 *out)
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

/* ---- transactions ---------------------------------------------------- */

static int exec(struct sqlite_store *ss, const char *sql)
{
	int rc = sqlite3_exec(ss->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : db_fail(ss, rc, sql);
}

/* Commits the open transaction, if any.  Called with lock held. */
static void commit_locked(struct sqlite_store *ss)
{
	int rc;

	if (!ss->in_txn)
		return;
	rc = sqlite3_exec(ss->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		log_error(
			"cannot commit to '%s': %s; %llu points and the writes with them are lost",
			ss->db_path, sqlite3_errmsg(ss->db),
			(unsigned long long)ss->pending_points);
		sqlite3_exec(ss->db, "ROLLBACK", NULL, NULL, NULL);
		ss->failed_seq = ss->txn_seq;
		ss->commit_failures++;
	} else {
		ss->commits++;
		ss->points_logged += ss->pending_points;
	}
	ss->pending_points = 0;
	ss->in_txn = 0;
	ss->txn_seq++;
	/* Whatever was rolled back may have held runs; re-read the index. */
	ss->own_writes++;
}

/*
 * Starts a write operation: opens the shared transaction if none is open and
 * a savepoint for this operation.  Called with lock held.
 */
static int write_begin(struct sqlite_store *ss)
{
	int err;

	if (!ss->in_txn) {
		err = exec(ss, "BEGIN IMMEDIATE");
		if (err)
			return err;
		ss->in_txn = 1;
		clock_gettime(CLOCK_MONOTONIC, &ss->txn_began);
		pthread_cond_signal(&ss->wake);
	}
	err = exec(ss, "SAVEPOINT op");
	if (err)
		return err;
	return 0;
}

/* Ends a write operation begun by write_begin: kept if err is 0, else undone. */
static int write_end(struct sqlite_store *ss, int err)
{
	if (!ss->in_txn)
		return err;
	if (err) {
		sqlite3_exec(ss->db, "ROLLBACK TO op", NULL, NULL, NULL);
		sqlite3_exec(ss->db, "RELEASE op", NULL, NULL, NULL);
		return err;
	}
	ss->own_writes++;
	err = exec(ss, "RELEASE op");
	return err;
}

static void *committer_main(void *arg)
{
	struct sqlite_store *ss = arg;

	pthread_mutex_lock(&ss->lock);
	while (!ss->stop) {
		struct timespec now, due;

		if (!ss->in_txn) {
			pthread_cond_wait(&ss->wake, &ss->lock);
			continue;
		}
		due = ss->txn_began;
		due.tv_nsec += COMMIT_MS * 1000000L;
		if (due.tv_nsec >= 1000000000L) {
			due.tv_sec++;
			due.tv_nsec -= 1000000000L;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > due.tv_sec ||
		    (now.tv_sec == due.tv_sec && now.tv_nsec >= due.tv_nsec))
			commit_locked(ss);
		else
			pthread_cond_timedwait(&ss->wake, &ss->lock, &due);
	}
	pthread_mutex_unlock(&ss->lock);
	return NULL;
}

/* fsync()s the database and its WAL: what made it to them survives power loss. */
static int sync_files(struct sqlite_store *ss)
{
	const char *suffix[] = { "", "-wal" };
	char path[PATH_MAX];
	size_t i;
	int fd, err = 0;

	for (i = 0; i < 2; i++) {
		if (snprintf(path, sizeof(path), "%s%s", ss->db_path, suffix[i]) >=
		    (int)sizeof(path))
			return -ENAMETOOLONG;
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			if (errno != ENOENT)
				err = -errno;
			continue;
		}
		if (fdatasync(fd) < 0)
			err = -errno;
		close(fd);
	}
	return err;
}

static uint64_t sqlite_write_token(struct store *s)
{
	struct sqlite_store *ss = to_sqlite(s);
	uint64_t seq;

	pthread_mutex_lock(&ss->lock);
	seq = ss->txn_seq;
	pthread_mutex_unlock(&ss->lock);
	return seq;
}

static int sqlite_sync(struct store *s, uint64_t token, int durable)
{
	struct sqlite_store *ss = to_sqlite(s);
	int err = 0;

	pthread_mutex_lock(&ss->lock);
	commit_locked(ss);
	if (token && ss->failed_seq >= token) {
		store_set_errmsg("a commit to '%s' failed; see the daemon log", ss->db_path);
		err = -EIO;
	}
	if (!err && durable) {
		err = sync_files(ss);
		if (err)
			store_set_errmsg("cannot fsync '%s': %s", ss->db_path, strerror(-err));
	}
	pthread_mutex_unlock(&ss->lock);
	return err;
}

/* ---- reading rows ---------------------------------------------------- */

static void read_experiment(sqlite3_stmt *st, struct store_experiment *e, int dup)
{
	const unsigned char *stage = sqlite3_column_text(st, 3);

	snprintf(e->id, sizeof(e->id), "%lld", (long long)sqlite3_column_int64(st, 0));
	if (dup) {
		e->name = col_dup(st, 1);
		e->artifact_location = col_dup(st, 2);
	} else {
		e->name = (char *)sqlite3_column_text(st, 1);
		e->artifact_location = (char *)sqlite3_column_text(st, 2);
		if (!e->name)
			e->name = (char *)"";
		if (!e->artifact_location)
			e->artifact_location = (char *)"";
	}
	e->deleted = stage && !strcmp((const char *)stage, "deleted");
	e->creation_time = col_time(st, 4);
	e->last_update_time = col_time(st, 5);
}

/* Reads the RUN_COLS columns; strings borrowed unless dup. */
static void read_run(sqlite3_stmt *st, struct store_run *r, int dup)
{
	const unsigned char *id = sqlite3_column_text(st, 0);
	const unsigned char *status = sqlite3_column_text(st, 2);
	const unsigned char *stage = sqlite3_column_text(st, 4);
	int64_t t;

	snprintf(r->run_id, sizeof(r->run_id), "%s", id ? (const char *)id : "");
	snprintf(r->experiment_id, sizeof(r->experiment_id), "%lld",
		 (long long)sqlite3_column_int64(st, 1));
	snprintf(r->status, sizeof(r->status), "%s", status ? (const char *)status : "RUNNING");
	if (dup) {
		r->name = col_dup(st, 3);
	} else {
		r->name = (char *)sqlite3_column_text(st, 3);
		if (!r->name)
			r->name = (char *)"";
	}
	r->deleted = stage && !strcmp((const char *)stage, "deleted");
	r->start_time = col_time(st, 5);
	r->end_time = col_time(st, 6);
	r->last_change = r->start_time;
	if (r->end_time > r->last_change)
		r->last_change = r->end_time;
	t = col_time(st, 7);
	if (t > r->last_change)
		r->last_change = t;
}

/* ---- experiments ----------------------------------------------------- */

static int sqlite_list_experiments(struct store *s, store_experiment_cb *cb, void *ctx)
{
	struct sqlite_store *ss = to_sqlite(s);
	sqlite3_stmt *st;
	int rc, err = 0;

	pthread_mutex_lock(&ss->lock);
	st = stmt(ss, Q_EXP_LIST);
	if (!st) {
		err = -EIO;
		goto out;
	}
	while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_experiment e;

		read_experiment(st, &e, 0);
		err = cb(ctx, &e);
	}
	if (!err && rc != SQLITE_DONE)
		err = db_fail(ss, rc, "cannot list experiments");
	sqlite3_reset(st);
out:
	pthread_mutex_unlock(&ss->lock);
	return err;
}

/* Runs a statement expected to give one experiment row; lock held. */
static int one_experiment(struct sqlite_store *ss, sqlite3_stmt *st, struct store_experiment *out)
{
	int rc = sqlite3_step(st), err = 0;

	if (rc == SQLITE_ROW) {
		read_experiment(st, out, 1);
		if (!out->name || !out->artifact_location) {
			store_experiment_release(out);
			err = -ENOMEM;
		}
	} else if (rc == SQLITE_DONE) {
		err = -ENOENT;
	} else {
		err = db_fail(ss, rc, "cannot read an experiment");
	}
	sqlite3_reset(st);
	return err;
}

static int sqlite_get_experiment(struct store *s, const char *name, struct store_experiment *out)
{
	struct sqlite_store *ss = to_sqlite(s);
	sqlite3_stmt *st;
	int err;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&ss->lock);
	st = stmt(ss, Q_EXP_BY_NAME);
	if (st) {
		bind_text(st, 1, name);
		err = one_experiment(ss, st, out);
	} else {
		err = -EIO;
	}
	pthread_mutex_unlock(&ss->lock);
	return err;
}

static int get_experiment_by_id_locked(struct sqlite_store *ss, const char *id,
				       struct store_experiment *out)
{
	sqlite3_int64 n;
	sqlite3_stmt *st;

	memset(out, 0, sizeof(*out));
	if (!parse_id(id, &n))
		return -ENOENT;
	st = stmt(ss, Q_EXP_BY_ID);
	if (!st)
		return -EIO;
	sqlite3_bind_int64(st, 1, n);
	return one_experiment(ss, st, out);
}

static int sqlite_get_experiment_by_id(struct store *s, const char *id,
				       struct store_experiment *out)
{
	struct sqlite_store *ss = to_sqlite(s);
	int err;

	pthread_mutex_lock(&ss->lock);
	err = get_experiment_by_id_locked(ss, id, out);
	pthread_mutex_unlock(&ss->lock);
	return err;
}

/* -EEXIST when an experiment (active or deleted) has the name; lock held. */
static int name_free(struct sqlite_store *ss, const char *name)
{
	sqlite3_stmt *st = stmt(ss, Q_EXP_NAME_TAKEN);
	int rc, err = 0;

	if (!st)
		return -EIO;
	bind_text(st, 1, name);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *stage = sqlite3_column_text(st, 0);

		if (stage && !strcmp((const char *)stage, "deleted"))
			store_set_errmsg(
				"a deleted experiment is named '%s': restore it in MLflow, "
				"or remove it for good with 'mlflow gc'",
				name);
		else
			store_set_errmsg("an experiment named '%s' exists", name);
		err = -EEXIST;
	} else if (rc != SQLITE_DONE) {
		err = db_fail(ss, rc, "cannot look up an experiment");
	}
	sqlite3_reset(st);
	return err;
}

static int sqlite_create_experiment(struct store *s, const char *name, struct store_experiment *out)
{
	struct sqlite_store *ss = to_sqlite(s);
	sqlite3_int64 id;
	sqlite3_stmt *st;
	char *location = NULL;
	int rc, err;

	if (out)
		memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&ss->lock);
	err = write_begin(ss);
	if (!err)
		err = name_free(ss, name);
	if (!err) {
		st = stmt(ss, Q_EXP_INSERT);
		if (!st) {
			err = -EIO;
		} else {
			bind_text(st, 1, name);
			sqlite3_bind_int64(st, 2, now_ms());
			rc = sqlite3_step(st);
			if (rc != SQLITE_DONE)
				err = db_fail(ss, rc, "cannot create the experiment");
			sqlite3_reset(st);
		}
	}
	if (!err) {
		/* As MLflow does: the location is the root plus the new id. */
		id = sqlite3_last_insert_rowid(ss->db);
		if (asprintf(&location, "%s/%lld", ss->artifact_root, (long long)id) < 0) {
			location = NULL;
			err = -ENOMEM;
		}
	}
	if (!err) {
		st = stmt(ss, Q_EXP_SET_LOCATION);
		if (!st) {
			err = -EIO;
		} else {
			sqlite3_bind_int64(st, 1, id);
			bind_text(st, 2, location);
			rc = sqlite3_step(st);
			if (rc != SQLITE_DONE)
				err = db_fail(ss, rc, "cannot set the artifact location");
			sqlite3_reset(st);
		}
	}
	if (!err && out) {
		char idtext[STORE_ID_MAX];

		snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
		err = get_experiment_by_id_locked(ss, idtext, out);
	}
	err = write_end(ss, err);
	pthread_mutex_unlock(&ss->lock);
	free(location);
	if (err && out)
		store_experiment_release(out);
	return err;
}

/* Runs an UPDATE/DELETE bound by the caller; -ENOENT if it changed no row. */
static int step_change(struct sqlite_store *ss, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st), err = 0;

	if (rc != SQLITE_DONE)
		err = db_fail(ss, rc, what);
	else if (!sqlite3_changes(ss->db))
		err = -ENOENT;
	sqlite3_reset(st);
	return err;
}

static int sqlite_rename_experiment(struct store *s, const char *id, const char *new_name)
{
	struct sqlite_store *ss = to_sqlite(s);
	sqlite3_int64 n;
	sqlite3_stmt *st;
	int err;

	if (!parse_id(id, &n))
		return -ENOENT;
	pthread_mutex_lock(&ss->lock);
	err = write_begin(ss);
	if (!err)
		err = name_free(ss, new_name);
	if (!err) {
		st = stmt(ss, Q_EXP_RENAME);
		if (!st) {
			err = -EIO;
		} else {
			sqlite3_bind_int64(st, 1, n);
			bind_text(st, 2, new_name);
			sqlite3_bind_int64(st, 3, now_ms());
			err = step_change(ss, st, "cannot rename the experiment");
		}
	}
	err = write_end(ss, err);
	pthread_mutex_unlock(&ss->lock);
	return err;
}

static int sqlite_delete_experiment(struct store *s, const char *id)
{
	struct sqlite_store *ss = to_sqlite(s);
	sqlite3_int64 n;
	sqlite3_stmt *st;
	int rc, err;

	if (!parse_id(id, &n))
		return -ENOENT;
	pthread_mutex_lock(&ss->lock);
	err = write_begin(ss);
	if (!err) {
		st = stmt(ss, Q_EXP_HAS_ACTIVE_RUNS);
		if (!st) {
			err = -EIO;
		} else {
			sqlite3_bind_int64(st, 1, n);
			rc = sqlite3_step(st);
			if (rc == SQLITE_ROW) {
				store_set_errmsg("the experiment still has runs");
				err = -ENOTEMPTY;
			} else if (rc != SQLITE_DONE) {
				err = db_fail(ss, rc, "cannot look for runs");
			}
			sqlite3_reset(st);
		}
	}
	if (!err) {
		st = stmt(ss, Q_EXP_DELETE);
		if (!st) {
			err = -EIO;
		} else {
			sqlite3_bind_int64(st, 1, n);
			sqlite3_bind_int64(st, 2, now_ms());
			err = step_change(ss, st, "cannot delete the experiment");
		}
	}
	err = write_end(ss, err);
	pthread_mutex_unlock(&ss->lock);
	return err;
}

/* ---- runs ------------------------------------------------------------ */

static uint64_t sqlite_runs_version(struct store *s)
{
	struct sqlite_store *ss = to_sqlite(s);
	uint64_t v = 0;
	sqlite3_stmt *st;

	pthread_mutex_lock(&ss->lock);
	st = stmt(ss, Q_DATA_VERSION);
	if (st && sqlite3_step(st) == SQLITE_ROW)
		v = (uint64_t)sqlite3_column_int64(st, 0) << 32;
	if (st)
		sqlite3_reset(st);
	v += ss->own_writes;
	pthread_mutex_unlock(&ss->lock);
	return v;
}

static int sqlite_list_runs(struct store *s, const char *experiment_id, store_run_cb *cb, void *ctx)
{
	struct sqlite_store *ss = to_sqlite(s);
	sqlite3_int64 n;
	sqlite3_stmt *st;
	int rc, err = 0;

	if (!parse_id(experiment_id, &n))
		return -ENOENT;
	pthread_mutex_lock(&ss->lock);
	st = stmt(ss, Q_RUN_LIST);
	if (!st) {
		err = -EIO;
		goto out;
	}
	sqlite3_bind_int64(st, 1, n);
	while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_run r;

		memset(&r, 0, sizeof(r));
		read_run(st, &r, 0);
		err = cb(ctx, &r);
	}
	if (!err && rc != SQLITE_DONE)
		err = db_fail(ss, rc, "cannot list runs");
	sqlite3_reset(st);
out:
	pthread_mutex_unlock(&ss->lock);
	return err;
}

static int get_run_locked(struct sqlite_store *ss, const char *run_id, struct store_run *out)
{
	sqlite3_stmt *st = stmt(ss, Q_RUN_GET);
	int rc, err = 0;

	memset(out, 0, sizeof(*out));
	if (!st)
		return -EIO;
	bind_text(st, 1, run_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		read_run(st, out, 1);
		out->user_id = col_dup(st, 8);
		out->artifact_uri = col_dup(st, 9);
		if (!out->name || !out->user_id || !out->artifact_uri) {
			store_run_release(out);
			err = -ENOMEM;
		}
	} else if (rc == SQLITE_DONE) {
		err = -ENOENT;
	} else {
		err = db_fail(ss, rc, "cannot read a run");
	}
	sqlite3_reset(st);
	return err;
}

static int sqlite_get_run(struct store *s, const char *run_id, struct store_run *out)
{
	struct sqlite_store *ss = to_sqlite(s);
	int err;

	pthread_mutex_lock(&ss->lock);
	err = get_run_locked(ss, run_id, out);
	pthread_mutex_unlock(&ss->lock);
	return err;
}

/* -ENOENT unless the run and its experiment are active; lock held. */
static int run_writable(struct sqlite_store *ss, const char *run_id)
{
	sqlite3_stmt *st = stmt(ss, Q_RUN_WRITABLE);
	int rc, err = 0;

	if (!st)
		return -EIO;
	bind_text(st, 1, run_id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		store_set_errmsg("run '%s' was deleted", run_id);
		err = -ENOENT;
	} else if (rc != SQLITE_ROW) {
		err = db_fail(ss, rc, "cannot read a run");
	}
	sqlite3_reset(st);
	return err;
}

/* Upserts one run tag; lock held, inside a write. */
static int put_run_tag(struct sqlite_store *ss, const char *run_id, const char *key,
		       const char *value)
{
	sqlite3_stmt *st = stmt(ss, Q_TAG_UPSERT);
	int rc, err = 0;

	if (!st)
		return -EIO;
	bind_text(st, 1, run_id);
	bind_text(st, 2, key);
	bind_text(st, 3, value);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		err = db_fail(ss, rc, "cannot set a tag");
	sqlite3_reset(st);
	return err;
}

static int set_run_name(struct sqlite_store *ss, const char *run_id, const char *name)
{
	sqlite3_stmt *st = stmt(ss, Q_RUN_RENAME);
	int err;

	if (!st)
		return -EIO;
	bind_text(st, 1, run_id);
	bind_text(st, 2, name);
	err = step_change(ss, st, "cannot rename the run");
	if (!err)
		err = put_run_tag(ss, run_id, "mlflow.runName", name);
	return err;
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

static int sqlite_create_run(struct store *s, const char *experiment_id, const char *name,
			     const char *user, struct store_run *out)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct store_experiment e = { 0 };
	char run_id[STORE_RUN_ID_MAX], *uri = NULL;
	sqlite3_stmt *st;
	int rc, err;

	err = new_run_id(run_id);
	if (err)
		return err;
	pthread_mutex_lock(&ss->lock);
	err = write_begin(ss);
	if (!err)
		err = get_experiment_by_id_locked(ss, experiment_id, &e);
	if (!err && e.deleted) {
		store_set_errmsg("experiment '%s' was deleted", e.name);
		err = -ENOENT;
	}
	if (!err && asprintf(&uri, "%s/%s/artifacts", e.artifact_location, run_id) < 0) {
		uri = NULL;
		err = -ENOMEM;
	}
	if (!err) {
		st = stmt(ss, Q_RUN_INSERT);
		if (!st) {
			err = -EIO;
		} else {
			bind_text(st, 1, run_id);
			bind_text(st, 2, name);
			bind_text(st, 3, user);
			sqlite3_bind_int64(st, 4, now_ms());
			bind_text(st, 5, uri);
			sqlite3_bind_int64(st, 6, strtoll(e.id, NULL, 10));
			rc = sqlite3_step(st);
			if (rc != SQLITE_DONE)
				err = db_fail(ss, rc, "cannot create the run");
			sqlite3_reset(st);
		}
	}
	/* The tags MLflow's client sets on every run it creates. */
	if (!err)
		err = put_run_tag(ss, run_id, "mlflow.runName", name);
	if (!err)
		err = put_run_tag(ss, run_id, "mlflow.user", user);
	if (!err)
		err = get_run_locked(ss, run_id, out);
	err = write_end(ss, err);
	pthread_mutex_unlock(&ss->lock);
	free(uri);
	store_experiment_release(&e);
	if (err)
		store_run_release(out);
	return err;
}

static int sqlite_rename_run(struct store *s, const char *run_id, const char *new_name)
{
	struct sqlite_store *ss = to_sqlite(s);
	int err;

	pthread_mutex_lock(&ss->lock);
	err = write_begin(ss);
	if (!err)
		err = run_writable(ss, run_id);
	if (!err)
		err = set_run_name(ss, run_id, new_name);
	err = write_end(ss, err);
	pthread_mutex_unlock(&ss->lock);
	return err;
}

static int sqlite_delete_run(struct store *s, const char *run_id)
{
	struct sqlite_store *ss = to_sqlite(s);
	sqlite3_stmt *st;
	int err;

	pthread_mutex_lock(&ss->lock);
	err = write_begin(ss);
	if (!err)
		err = run_writable(ss, run_id);
	if (!err) {
		st = stmt(ss, Q_RUN_DELETE);
		if (!st) {
			err = -EIO;
		} else {
			bind_text(st, 1, run_id);
			sqlite3_bind_int64(st, 2, now_ms());
			err = step_change(ss, st, "cannot delete the run");
		}
	}
	err = write_end(ss, err);
	pthread_mutex_unlock(&ss->lock);
	return err;
}

static int sqlite_set_status(struct store *s, const char *run_id, const char *status)
{
	struct sqlite_store *ss = to_sqlite(s);
	int terminal = strcmp(status, "RUNNING") && strcmp(status, "SCHEDULED");
	sqlite3_stmt *st;
	int err;

	pthread_mutex_lock(&ss->lock);
	err = write_begin(ss);
	if (!err)
		err = run_writable(ss, run_id);
	if (!err) {
		st = stmt(ss, Q_RUN_STATUS);
		if (!st) {
			err = -EIO;
		} else {
			bind_text(st, 1, run_id);
			bind_text(st, 2, status);
			/* MLflow sets the end time when a run terminates and
			 * leaves it alone otherwise. */
			if (terminal)
				sqlite3_bind_int64(st, 3, now_ms());
			else
				sqlite3_bind_null(st, 3);
			err = step_change(ss, st, "cannot set the status");
		}
	}
	err = write_end(ss, err);
	pthread_mutex_unlock(&ss->lock);
	return err;
}

/* ---- keys ------------------------------------------------------------ */

struct kv_query {
	enum sql_id list, get;
	int metric;
};

static int kv_query_for(enum store_section sec, struct kv_query *q)
{
	switch (sec) {
	case SEC_PARAMS:
		*q = (struct kv_query){ Q_PARAM_LIST, Q_PARAM_GET, 0 };
		return 0;
	case SEC_METRICS:
		*q = (struct kv_query){ Q_METRIC_LIST, Q_METRIC_GET, 1 };
		return 0;
	case SEC_RUN_TAGS:
		*q = (struct kv_query){ Q_TAG_LIST, Q_TAG_GET, 0 };
		return 0;
	case SEC_EXP_TAGS:
		*q = (struct kv_query){ Q_EXP_TAG_LIST, Q_EXP_TAG_GET, 0 };
		return 0;
	case SEC_MODEL_TAGS:
		*q = (struct kv_query){ Q_MODEL_TAG_LIST, Q_MODEL_TAG_GET, 0 };
		return 0;
	case SEC_VERSION_TAGS:
		*q = (struct kv_query){ Q_VERSION_TAG_LIST, Q_VERSION_TAG_GET, 0 };
		return 0;
	}
	return -EINVAL;
}

/* Binds the owner of a section to ?1 (and the version to ?3). */
static int bind_owner(sqlite3_stmt *st, enum store_section sec, const struct store_ref *ref)
{
	sqlite3_int64 n;

	switch (sec) {
	case SEC_PARAMS:
	case SEC_METRICS:
	case SEC_RUN_TAGS:
		bind_text(st, 1, ref->run_id);
		return 0;
	case SEC_EXP_TAGS:
		if (!parse_id(ref->experiment_id, &n))
			return -ENOENT;
		sqlite3_bind_int64(st, 1, n);
		return 0;
	case SEC_VERSION_TAGS:
		sqlite3_bind_int64(st, 3, ref->version);
		/* fall through */
	case SEC_MODEL_TAGS:
		bind_text(st, 1, ref->model);
		return 0;
	}
	return -EINVAL;
}

/* Reads a key row: (key, value) or (key, value, is_nan, step, timestamp). */
static void read_kv(sqlite3_stmt *st, int metric, struct store_kv *kv)
{
	kv->key = (char *)sqlite3_column_text(st, 0);
	if (metric) {
		kv->value = NULL;
		kv->num =
			metric_from_store(sqlite3_column_double(st, 1), sqlite3_column_int(st, 2));
		kv->step = sqlite3_column_int64(st, 3);
		kv->timestamp = col_time(st, 4);
	} else {
		kv->value = (char *)sqlite3_column_text(st, 1);
		if (!kv->value)
			kv->value = (char *)"";
	}
}

static int sqlite_list_kv(struct store *s, enum store_section sec, const struct store_ref *ref,
			  const char *prefix, store_kv_cb *cb, void *ctx)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct kv_query q;
	sqlite3_stmt *st;
	int rc, err;

	err = kv_query_for(sec, &q);
	if (err)
		return err;
	pthread_mutex_lock(&ss->lock);
	st = stmt(ss, q.list);
	if (!st) {
		err = -EIO;
		goto out;
	}
	err = bind_owner(st, sec, ref);
	if (err)
		goto out;
	bind_text(st, 2, prefix && prefix[0] ? prefix : NULL);
	while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_kv kv;

		read_kv(st, q.metric, &kv);
		if (kv.key)
			err = cb(ctx, &kv);
	}
	if (!err && rc != SQLITE_DONE)
		err = db_fail(ss, rc, "cannot list keys");
	sqlite3_reset(st);
out:
	pthread_mutex_unlock(&ss->lock);
	return err;
}

static int get_kv_locked(struct sqlite_store *ss, enum store_section sec,
			 const struct store_ref *ref, const char *key, struct store_kv *out)
{
	struct kv_query q;
	sqlite3_stmt *st;
	int rc, err;

	memset(out, 0, sizeof(*out));
	err = kv_query_for(sec, &q);
	if (err)
		return err;
	st = stmt(ss, q.get);
	if (!st)
		return -EIO;
	err = bind_owner(st, sec, ref);
	if (err)
		return err;
	bind_text(st, 2, key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		struct store_kv kv;

		read_kv(st, q.metric, &kv);
		*out = kv;
		out->key = strdup(kv.key ? kv.key : "");
		out->value = kv.value ? strdup(kv.value) : NULL;
		if (!out->key || (kv.value && !out->value)) {
			store_kv_release(out);
			err = -ENOMEM;
		}
	} else if (rc == SQLITE_DONE) {
		err = -ENOENT;
	} else {
		err = db_fail(ss, rc, "cannot read a key");
	}
	sqlite3_reset(st);
	return err;
}

static int sqlite_get_kv(struct store *s, enum store_section sec, const struct store_ref *ref,
			 const char *key, struct store_kv *out)
{
	struct sqlite_store *ss = to_sqlite(s);
	int err;

	pthread_mutex_lock(&ss->lock);
	err = get_kv_locked(ss, sec, ref, key, out);
	pthread_mutex_unlock(&ss->lock);
	return err;
}

static int sqlite_log_param(struct store *s, const char *run_id, const char *key, const char *value)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct store_ref ref = { .run_id = run_id };
	struct store_kv old;
	sqlite3_stmt *st;
	int rc, err;

	pthread_mutex_lock(&ss->lock);
	err = write_begin(ss);
	if (!err)
		err = run_writable(ss, run_id);
	if (!err) {
		err = get_kv_locked(ss, SEC_PARAMS, &ref, key, &old);
		if (!err) {
			/* MLflow params are immutable; the same value is fine. */
			if (strcmp(old.value, value)) {
				store_set_errmsg("param '%s' was logged with value '%.200s'; "
						 "MLflow params cannot change",
						 key, old.value);
				err = -EPERM;
			}
			store_kv_release(&old);
			goto out;
		}
		if (err != -ENOENT)
			goto out;
		st = stmt(ss, Q_PARAM_INSERT);
		if (!st) {
			err = -EIO;
			goto out;
		}
		bind_text(st, 1, run_id);
		bind_text(st, 2, key);
		bind_text(st, 3, value);
		rc = sqlite3_step(st);
		err = rc == SQLITE_DONE ? 0 : db_fail(ss, rc, "cannot log the param");
		sqlite3_reset(st);
	}
out:
	err = write_end(ss, err);
	pthread_mutex_unlock(&ss->lock);
	return err;
}

/* Checks that the owner of a tag section may be written; lock held. */
static int tag_owner_writable(struct sqlite_store *ss, enum store_section sec,
			      const struct store_ref *ref)
{
	struct store_experiment e;
	int err;

	switch (sec) {
	case SEC_RUN_TAGS:
		return run_writable(ss, ref->run_id);
	case SEC_EXP_TAGS:
		err = get_experiment_by_id_locked(ss, ref->experiment_id, &e);
		if (!err && e.deleted) {
			store_set_errmsg("experiment '%s' was deleted", e.name);
			err = -ENOENT;
		}
		if (!err)
			store_experiment_release(&e);
		return err;
	default:
		store_set_errmsg("the model registry is read-only in this version");
		return -EROFS;
	}
}

static int put_tag(struct sqlite_store *ss, enum store_section sec, const struct store_ref *ref,
		   const char *key, const char *value)
{
	sqlite3_stmt *st;
	int rc, err;

	if (sec == SEC_RUN_TAGS && !strcmp(key, "mlflow.runName"))
		return set_run_name(ss, ref->run_id, value);
	st = stmt(ss, sec == SEC_RUN_TAGS ? Q_TAG_UPSERT : Q_EXP_TAG_UPSERT);
	if (!st)
		return -EIO;
	err = bind_owner(st, sec, ref);
	if (err)
		return err;
	bind_text(st, 2, key);
	bind_text(st, 3, value);
	rc = sqlite3_step(st);
	err = rc == SQLITE_DONE ? 0 : db_fail(ss, rc, "cannot set the tag");
	sqlite3_reset(st);
	return err;
}

static int drop_tag(struct sqlite_store *ss, enum store_section sec, const struct store_ref *ref,
		    const char *key)
{
	sqlite3_stmt *st = stmt(ss, sec == SEC_RUN_TAGS ? Q_TAG_DELETE : Q_EXP_TAG_DELETE);
	int err;

	if (!st)
		return -EIO;
	err = bind_owner(st, sec, ref);
	if (err)
		return err;
	bind_text(st, 2, key);
	err = step_change(ss, st, "cannot delete the tag");
	if (err == -ENOENT)
		store_set_errmsg("no tag '%s'", key);
	return err;
}

static int sqlite_set_tag(struct store *s, enum store_section sec, const struct store_ref *ref,
			  const char *key, const char *value)
{
	struct sqlite_store *ss = to_sqlite(s);
	int err;

	pthread_mutex_lock(&ss->lock);
	err = write_begin(ss);
	if (!err)
		err = tag_owner_writable(ss, sec, ref);
	if (!err)
		err = put_tag(ss, sec, ref, key, value);
	err = write_end(ss, err);
	pthread_mutex_unlock(&ss->lock);
	return err;
}

static int sqlite_delete_tag(struct store *s, enum store_section sec, const struct store_ref *ref,
			     const char *key)
{
	struct sqlite_store *ss = to_sqlite(s);
	int err;

	pthread_mutex_lock(&ss->lock);
	err = write_begin(ss);
	if (!err)
		err = tag_owner_writable(ss, sec, ref);
	if (!err)
		err = drop_tag(ss, sec, ref, key);
	err = write_end(ss, err);
	pthread_mutex_unlock(&ss->lock);
	return err;
}

static int sqlite_rename_tag(struct store *s, enum store_section sec, const struct store_ref *ref,
			     const char *from, const char *to)
{
	struct sqlite_store *ss = to_sqlite(s);
	struct store_kv old;
	int err;

	pthread_mutex_lock(&ss->lock);
	err = write_begin(ss);
	if (!err)
		err = tag_owner_writable(ss, sec, ref);
	if (!err)
		err = get_kv_locked(ss, sec, ref, from, &old);
	if (!err) {
		err = put_tag(ss, sec, ref, to, old.value);
		if (!err)
			err = drop_tag(ss, sec, ref, from);
		store_kv_release(&old);
	}
	err = write_end(ss, err);
	pthread_mutex_unlock(&ss->lock);
	return err;
}

/* (step, timestamp, value) order, MLflow's order of "latest". */
static int point_after(int64_t step_a, int64_t ts_a, double v_a, int64_t step_b, int64_t ts_b,
		       double v_b)
{
	if (step_a != step_b)
		return step_a > step_b;
	if (ts_a != ts_b)
		return ts_a > ts_b;
	return v_a > v_b;
}

static int sqlite_log_metrics(struct store *s, const char *run_id, const char *key,
			      struct metric_point *pts, size_t n)
{
	struct sqlite_store *ss = to_sqlite(s);
	int64_t next_step = 0, now = now_ms();
	double best_v = 0;
	int best_nan = 0;
	size_t i, best = 0;
	sqlite3_stmt *st;
	int rc, err, need_step = 0;

	for (i = 0; i < n; i++)
		need_step |= !pts[i].has_step;
	pthread_mutex_lock(&ss->lock);
	err = write_begin(ss);
	if (!err)
		err = run_writable(ss, run_id);
	if (!err && need_step) {
		st = stmt(ss, Q_METRIC_MAX_STEP);
		if (!st) {
			err = -EIO;
		} else {
			bind_text(st, 1, run_id);
			bind_text(st, 2, key);
			rc = sqlite3_step(st);
			if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
				next_step = sqlite3_column_int64(st, 0) + 1;
			else if (rc != SQLITE_ROW)
				err = db_fail(ss, rc, "cannot read the last step");
			sqlite3_reset(st);
		}
	}
	st = err ? NULL : stmt(ss, Q_METRIC_INSERT);
	if (!err && !st)
		err = -EIO;
	for (i = 0; !err && i < n; i++) {
		double v;
		int is_nan;

		if (!pts[i].has_step) {
			pts[i].step = next_step;
			pts[i].has_step = 1;
		}
		if (pts[i].step >= next_step)
			next_step = pts[i].step == INT64_MAX ? INT64_MAX : pts[i].step + 1;
		if (!pts[i].has_timestamp) {
			pts[i].timestamp = now;
			pts[i].has_timestamp = 1;
		}
		metric_to_store(pts[i].value, &v, &is_nan);
		bind_text(st, 1, run_id);
		bind_text(st, 2, key);
		sqlite3_bind_double(st, 3, v);
		sqlite3_bind_int64(st, 4, pts[i].timestamp);
		sqlite3_bind_int64(st, 5, pts[i].step);
		sqlite3_bind_int(st, 6, is_nan);
		rc = sqlite3_step(st);
		if (rc != SQLITE_DONE)
			err = db_fail(ss, rc, "cannot log the metric");
		sqlite3_reset(st);
		if (!err && (i == 0 || point_after(pts[i].step, pts[i].timestamp, v, pts[best].step,
						   pts[best].timestamp, best_v))) {
			best = i;
			best_v = v;
			best_nan = is_nan;
		}
	}
	/* One upsert per call: only the batch's greatest point can be latest. */
	if (!err) {
		st = stmt(ss, Q_LATEST_UPSERT);
		if (!st) {
			err = -EIO;
		} else {
			bind_text(st, 1, run_id);
			bind_text(st, 2, key);
			sqlite3_bind_double(st, 3, best_v);
			sqlite3_bind_int64(st, 4, pts[best].timestamp);
			sqlite3_bind_int64(st, 5, pts[best].step);
			sqlite3_bind_int(st, 6, best_nan);
			rc = sqlite3_step(st);
			if (rc != SQLITE_DONE)
				err = db_fail(ss, rc, "cannot update the latest metric");
			sqlite3_reset(st);
		}
	}
	err = write_end(ss, err);
	if (!err)
		ss->pending_points += n;
	pthread_mutex_unlock(&ss->lock);
	return err;
}

static int sqlite_metric_history(struct store *s, const char *run_id, const char *key,
				 store_point_cb *cb, void *ctx)
{
	struct sqlite_store *ss = to_sqlite(s);
	sqlite3_stmt *st;
	int rc, err = 0;

	pthread_mutex_lock(&ss->lock);
	st = stmt(ss, Q_METRIC_HISTORY);
	if (!st) {
		err = -EIO;
		goto out;
	}
	bind_text(st, 1, run_id);
	bind_text(st, 2, key);
	while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW)
		err = cb(ctx,
			 metric_from_store(sqlite3_column_double(st, 0), sqlite3_column_int(st, 1)),
			 sqlite3_column_int64(st, 2), col_time(st, 3));
	if (!err && rc != SQLITE_DONE)
		err = db_fail(ss, rc, "cannot read the metric history");
	sqlite3_reset(st);
out:
	pthread_mutex_unlock(&ss->lock);
	return err;
}

/* ---- registry (read-only) -------------------------------------------- */

static void read_model(sqlite3_stmt *st, struct store_model *m)
{
	m->name = (char *)sqlite3_column_text(st, 0);
	m->creation_time = col_time(st, 1);
	m->last_updated_time = col_time(st, 2);
	m->description = (char *)sqlite3_column_text(st, 3);
	if (!m->description)
		m->description = (char *)"";
}

static int sqlite_list_models(struct store *s, store_model_cb *cb, void *ctx)
{
	struct sqlite_store *ss = to_sqlite(s);
	sqlite3_stmt *st;
	int rc, err = 0;

	pthread_mutex_lock(&ss->lock);
	st = stmt(ss, Q_MODEL_LIST);
	if (!st) {
		err = -EIO;
		goto out;
	}
	while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_model m;

		read_model(st, &m);
		if (m.name)
			err = cb(ctx, &m);
	}
	if (!err && rc != SQLITE_DONE)
		err = db_fail(ss, rc, "cannot list registered models");
	sqlite3_reset(st);
out:
	pthread_mutex_unlock(&ss->lock);
	return err;
}

static int sqlite_get_model(struct store *s, const char *name, struct store_model *out)
{
	struct sqlite_store *ss = to_sqlite(s);
	sqlite3_stmt *st;
	int rc, err = 0;

	pthread_mutex_lock(&ss->lock);
	st = stmt(ss, Q_MODEL_GET);
	if (!st) {
		err = -EIO;
		goto out;
	}
	bind_text(st, 1, name);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		struct store_model m;

		read_model(st, &m);
		*out = m;
		out->name = strdup(name);
		out->description = strdup(m.description);
		if (!out->name || !out->description) {
			store_model_release(out);
			err = -ENOMEM;
		}
	} else if (rc == SQLITE_DONE) {
		err = -ENOENT;
	} else {
		err = db_fail(ss, rc, "cannot read a registered model");
	}
	sqlite3_reset(st);
out:
	pthread_mutex_unlock(&ss->lock);
	return err;
}

static int read_version(sqlite3_stmt *st, struct store_version *v)
{
	memset(v, 0, sizeof(*v));
	v->model = col_dup(st, 0);
	v->version = sqlite3_column_int64(st, 1);
	v->creation_time = col_time(st, 2);
	v->last_updated_time = col_time(st, 3);
	v->description = col_dup(st, 4);
	v->source = col_dup(st, 5);
	v->run_id = col_dup(st, 6);
	v->status = col_dup(st, 7);
	v->stage = col_dup(st, 8);
	v->storage_location = col_dup(st, 9);
	if (!v->model || !v->description || !v->source || !v->run_id || !v->status || !v->stage ||
	    !v->storage_location) {
		store_version_release(v);
		return -ENOMEM;
	}
	return 0;
}

static int sqlite_list_versions(struct store *s, const char *model, store_version_cb *cb, void *ctx)
{
	struct sqlite_store *ss = to_sqlite(s);
	sqlite3_stmt *st;
	int rc, err = 0;

	pthread_mutex_lock(&ss->lock);
	st = stmt(ss, Q_VERSION_LIST);
	if (!st) {
		err = -EIO;
		goto out;
	}
	bind_text(st, 1, model);
	while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_version v;

		err = read_version(st, &v);
		if (!err) {
			err = cb(ctx, &v);
			store_version_release(&v);
		}
	}
	if (!err && rc != SQLITE_DONE)
		err = db_fail(ss, rc, "cannot list model versions");
	sqlite3_reset(st);
out:
	pthread_mutex_unlock(&ss->lock);
	return err;
}

static int sqlite_get_version(struct store *s, const char *model, int64_t version,
			      struct store_version *out)
{
	struct sqlite_store *ss = to_sqlite(s);
	sqlite3_stmt *st;
	int rc, err = 0;

	pthread_mutex_lock(&ss->lock);
	st = stmt(ss, Q_VERSION_GET);
	if (!st) {
		err = -EIO;
		goto out;
	}
	bind_text(st, 1, model);
	sqlite3_bind_int64(st, 2, version);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		err = read_version(st, out);
	else if (rc == SQLITE_DONE)
		err = -ENOENT;
	else
		err = db_fail(ss, rc, "cannot read a model version");
	sqlite3_reset(st);
out:
	pthread_mutex_unlock(&ss->lock);
	return err;
}

static int sqlite_list_aliases(struct store *s, const char *model, store_alias_cb *cb, void *ctx)
{
	struct sqlite_store *ss = to_sqlite(s);
	sqlite3_stmt *st;
	int rc, err = 0;

	pthread_mutex_lock(&ss->lock);
	st = stmt(ss, Q_ALIAS_LIST);
	if (!st) {
		err = -EIO;
		goto out;
	}
	bind_text(st, 1, model);
	while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		const unsigned char *alias = sqlite3_column_text(st, 0);

		if (alias)
			err = cb(ctx, (const char *)alias, sqlite3_column_int64(st, 1));
	}
	if (!err && rc != SQLITE_DONE)
		err = db_fail(ss, rc, "cannot list aliases");
	sqlite3_reset(st);
out:
	pthread_mutex_unlock(&ss->lock);
	return err;
}

/* ---- artifacts, status ----------------------------------------------- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A file: URI's path, percent-decoded; NULL if it is not a local one. */
static char *file_uri_path(const char *uri)
{
	const char *p = uri + 5;
	char *out, *o;

	if (!strncmp(p, "//", 2)) {
		p += 2;
		if (!strncmp(p, "localhost/", 10))
			p += 9;
		else if (*p != '/')
			return NULL;
	}
	if (*p != '/')
		return NULL;
	out = malloc(strlen(p) + 1);
	if (!out)
		return NULL;
	for (o = out; *p; p++) {
		if (*p == '%' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
			*o++ = (char)(hexval(p[1]) * 16 + hexval(p[2]));
			p += 2;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	return out;
}

static int sqlite_artifact_dir(struct store *s, const struct store_run *run, char **path)
{
	struct sqlite_store *ss = to_sqlite(s);
	const char *uri = run->artifact_uri ? run->artifact_uri : "";
	const char *rest;

	*path = NULL;
	if (uri[0] == '/') {
		*path = strdup(uri);
	} else if (!strncmp(uri, "file:", 5)) {
		*path = file_uri_path(uri);
	} else if (!strncmp(uri, "mlflow-artifacts:", 17)) {
		/* A server's proxied artifacts: under its --artifacts-destination,
		 * which is our artifact root when both keep the default beside
		 * the database. */
		rest = uri + 17;
		if (!strncmp(rest, "//", 2)) {
			rest = strchr(rest + 2, '/');
			if (!rest)
				rest = "";
		}
		while (*rest == '/')
			rest++;
		if (asprintf(path, "%s/%s", ss->artifact_root, rest) < 0)
			*path = NULL;
	} else {
		store_set_errmsg("the artifacts of run '%s' are at '%s', not on this machine",
				 run->run_id, uri);
		return -ENOTSUP;
	}
	return *path ? 0 : -ENOMEM;
}

static int sqlite_describe(struct store *s, struct buf *out)
{
	struct sqlite_store *ss = to_sqlite(s);
	int err;

	pthread_mutex_lock(&ss->lock);
	err = buf_addf(out,
		       "store: sqlite\n"
		       "uri: %s\n"
		       "database: %s\n"
		       "artifact_root: %s\n"
		       "schema_revision: %s\n"
		       "journal_mode: %s\n"
		       "transaction_open: %s\n"
		       "pending_points: %llu\n"
		       "points_logged: %llu\n"
		       "commits: %llu\n"
		       "commit_failures: %llu\n"
		       "sqlite_version: %s\n",
		       ss->uri, ss->db_path, ss->artifact_root,
		       ss->info.revision[0] ? ss->info.revision : "(none)",
		       ss->wal ? "wal" : "other", ss->in_txn ? "yes" : "no",
		       (unsigned long long)ss->pending_points,
		       (unsigned long long)ss->points_logged, (unsigned long long)ss->commits,
		       (unsigned long long)ss->commit_failures, sqlite3_libversion());
	pthread_mutex_unlock(&ss->lock);
	return err;
}

/* ---- open, close ----------------------------------------------------- */

static void sqlite_close(struct store *s)
{
	struct sqlite_store *ss = to_sqlite(s);
	size_t i;

	if (ss->committer_started) {
		pthread_mutex_lock(&ss->lock);
		ss->stop = 1;
		pthread_cond_signal(&ss->wake);
		pthread_mutex_unlock(&ss->lock);
		pthread_join(ss->committer, NULL);
	}
	pthread_mutex_lock(&ss->lock);
	if (ss->db)
		commit_locked(ss);
	pthread_mutex_unlock(&ss->lock);
	for (i = 0; i < Q_COUNT; i++)
		sqlite3_finalize(ss->stmt[i]);
	if (ss->db && sqlite3_close(ss->db) != SQLITE_OK)
		log_error("cannot close '%s': %s", ss->db_path, sqlite3_errmsg(ss->db));
	pthread_cond_destroy(&ss->wake);
	pthread_mutex_destroy(&ss->lock);
	free(ss->uri);
	free(ss->db_path);
	free(ss->artifact_root);
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

/* Opens and checks (or creates) the database; 0, or -1 with *errmsg. */
static int open_database(struct sqlite_store *ss, char **errmsg)
{
	char *why = NULL;
	int rc, empty, err;

	err = make_parent_dirs(ss->db_path);
	if (err)
		return open_fail(errmsg, ss->db_path, strerror(-err));
	rc = sqlite3_open_v2(ss->db_path, &ss->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK)
		return open_fail(errmsg, ss->db_path,
				 ss->db ? sqlite3_errmsg(ss->db) : sqlite3_errstr(rc));
	sqlite3_extended_result_codes(ss->db, 1);
	sqlite3_busy_timeout(ss->db, BUSY_TIMEOUT_MS);
	/* MLflow's own connection settings. */
	rc = sqlite3_exec(ss->db, "PRAGMA foreign_keys = ON; PRAGMA case_sensitive_like = ON", NULL,
			  NULL, NULL);
	if (rc != SQLITE_OK)
		return open_fail(errmsg, ss->db_path, sqlite3_errmsg(ss->db));

	empty = schema_is_empty(ss->db);
	if (empty < 0)
		return open_fail(errmsg, ss->db_path,
				 empty == -EPROTO ? "file is not a database"
						  : sqlite3_errmsg(ss->db));
	if (empty) {
		err = schema_create(ss->db, ss->artifact_root, &why);
		if (err) {
			open_fail(errmsg, ss->db_path, why ? why : strerror(-err));
			free(why);
			return -1;
		}
		log_info("created a new MLflow database '%s' (schema %s)", ss->db_path,
			 SCHEMA_REVISION);
	}
	err = schema_check(ss->db, &ss->info, &why);
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
	{
		sqlite3_stmt *st;

		rc = sqlite3_prepare_v2(ss->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
		if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
			const unsigned char *mode = sqlite3_column_text(st, 0);

			ss->wal = mode && !strcmp((const char *)mode, "wal");
		}
		sqlite3_finalize(st);
		if (!ss->wal)
			log_warn("'%s' stays in its rollback-journal mode: MLflow readers will "
				 "wait while mlflowfs commits",
				 ss->db_path);
	}
	/* A commit survives a crash of mlflowfs; fsync() adds power loss. */
	sqlite3_exec(ss->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL);
	return 0;
}

struct store *store_sqlite_open(const struct mfs_config *cfg, char **errmsg)
{
	struct sqlite_store *ss = calloc(1, sizeof(*ss));
	pthread_condattr_t ca;

	*errmsg = NULL;
	if (!ss)
		goto nomem;
	if (store_base_init(&ss->base, &sqlite_ops))
		goto nomem_ss;
	pthread_mutex_init(&ss->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ss->wake, &ca);
	pthread_condattr_destroy(&ca);
	ss->txn_seq = 1;
	ss->uri = strdup(cfg->tracking_uri);
	ss->db_path = strdup(cfg->db_path);
	ss->artifact_root = strdup(cfg->artifact_root);
	if (!ss->uri || !ss->db_path || !ss->artifact_root)
		goto fail_nomem;
	if (open_database(ss, errmsg))
		goto fail;
	if (pthread_create(&ss->committer, NULL, committer_main, ss)) {
		*errmsg = strdup("cannot start the commit thread");
		goto fail;
	}
	ss->committer_started = 1;
	return &ss->base;

fail_nomem:
	*errmsg = strdup("out of memory");
fail:
	sqlite_close(&ss->base);
	return NULL;
nomem_ss:
	free(ss);
nomem:
	*errmsg = strdup("out of memory");
	return NULL;
}

static const struct store_ops sqlite_ops = {
	.name = "sqlite",
	.close = sqlite_close,
	.describe = sqlite_describe,
	.list_experiments = sqlite_list_experiments,
	.get_experiment = sqlite_get_experiment,
	.get_experiment_by_id = sqlite_get_experiment_by_id,
	.create_experiment = sqlite_create_experiment,
	.rename_experiment = sqlite_rename_experiment,
	.delete_experiment = sqlite_delete_experiment,
	.runs_version = sqlite_runs_version,
	.list_runs = sqlite_list_runs,
	.get_run = sqlite_get_run,
	.create_run = sqlite_create_run,
	.rename_run = sqlite_rename_run,
	.delete_run = sqlite_delete_run,
	.set_status = sqlite_set_status,
	.list_kv = sqlite_list_kv,
	.get_kv = sqlite_get_kv,
	.log_param = sqlite_log_param,
	.set_tag = sqlite_set_tag,
	.delete_tag = sqlite_delete_tag,
	.rename_tag = sqlite_rename_tag,
	.log_metrics = sqlite_log_metrics,
	.metric_history = sqlite_metric_history,
	.list_models = sqlite_list_models,
	.get_model = sqlite_get_model,
	.list_versions = sqlite_list_versions,
	.get_version = sqlite_get_version,
	.list_aliases = sqlite_list_aliases,
	.artifact_dir = sqlite_artifact_dir,
	.write_token = sqlite_write_token,
	.sync = sqlite_sync,
};
