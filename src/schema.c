/*
 * schema.c - MLflow's SQLite schema: the DDL of MLflow 2.22.5 (alembic head
 * SCHEMA_REVISION) for databases mlflowfs creates, and the list of tables and
 * columns mlflowfs uses, checked at mount time.  Table, column, constraint and
 * index names, types and column order are MLflow's own, because later MLflow
 * migrations find constraints by name when they upgrade the file.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "buf.h"
#include "clock.h"
#include "schema.h"
#include "sqldb.h"

struct schema_object {
	const char *kind; /* "table" or "index", for messages */
	const char *name;
	const char *sql;
};

/*
 * In creation order: a table before the indexes on it.  Constraints MLflow
 * leaves unnamed (runs' status CHECK, most foreign keys, the UNIQUE on
 * experiments.name) stay unnamed here; MLflow 3 finds them by reflection.
 * The odd case of "cascade" is MLflow's too: it is what its migrations wrote.
 */
static const struct schema_object schema_objects[] = {
	{ "table", "experiments",
	  "CREATE TABLE experiments (\n"
	  "\texperiment_id INTEGER NOT NULL,\n"
	  "\tname VARCHAR(256) NOT NULL,\n"
	  "\tartifact_location VARCHAR(256),\n"
	  "\tlifecycle_stage VARCHAR(32),\n"
	  "\tcreation_time BIGINT,\n"
	  "\tlast_update_time BIGINT,\n"
	  "\tCONSTRAINT experiment_pk PRIMARY KEY (experiment_id),\n"
	  "\tCONSTRAINT experiments_lifecycle_stage"
	  " CHECK (lifecycle_stage IN ('active', 'deleted')),\n"
	  "\tUNIQUE (name)\n"
	  ")" },
	{ "table", "experiment_tags",
	  "CREATE TABLE experiment_tags (\n"
	  "\t\"key\" VARCHAR(250) NOT NULL,\n"
	  "\tvalue VARCHAR(5000),\n"
	  "\texperiment_id INTEGER NOT NULL,\n"
	  "\tCONSTRAINT experiment_tag_pk PRIMARY KEY (\"key\", experiment_id),\n"
	  "\tFOREIGN KEY(experiment_id) REFERENCES experiments (experiment_id)\n"
	  ")" },
	{ "table", "runs",
	  "CREATE TABLE runs (\n"
	  "\trun_uuid VARCHAR(32) NOT NULL,\n"
	  "\tname VARCHAR(250),\n"
	  "\tsource_type VARCHAR(20),\n"
	  "\tsource_name VARCHAR(500),\n"
	  "\tentry_point_name VARCHAR(50),\n"
	  "\tuser_id VARCHAR(256),\n"
	  "\tstatus VARCHAR(9),\n"
	  "\tstart_time BIGINT,\n"
	  "\tend_time BIGINT,\n"
	  "\tsource_version VARCHAR(50),\n"
	  "\tlifecycle_stage VARCHAR(20),\n"
	  "\tartifact_uri VARCHAR(200),\n"
	  "\texperiment_id INTEGER,\n"
	  "\tdeleted_time BIGINT,\n"
	  "\tCONSTRAINT run_pk PRIMARY KEY (run_uuid),\n"
	  "\tCONSTRAINT runs_lifecycle_stage CHECK (lifecycle_stage IN ('active', 'deleted')),\n"
	  "\tCONSTRAINT source_type"
	  " CHECK (source_type IN ('NOTEBOOK', 'JOB', 'LOCAL', 'UNKNOWN', 'PROJECT')),\n"
	  "\tFOREIGN KEY(experiment_id) REFERENCES experiments (experiment_id),\n"
	  "\tCHECK (status IN ('SCHEDULED', 'FAILED', 'FINISHED', 'RUNNING', 'KILLED'))\n"
	  ")" },
	{ "table", "tags",
	  "CREATE TABLE tags (\n"
	  "\t\"key\" VARCHAR(250) NOT NULL,\n"
	  "\tvalue VARCHAR(8000),\n"
	  "\trun_uuid VARCHAR(32) NOT NULL,\n"
	  "\tCONSTRAINT tag_pk PRIMARY KEY (\"key\", run_uuid),\n"
	  "\tFOREIGN KEY(run_uuid) REFERENCES runs (run_uuid)\n"
	  ")" },
	{ "index", "index_tags_run_uuid", "CREATE INDEX index_tags_run_uuid ON tags (run_uuid)" },
	{ "table", "params",
	  "CREATE TABLE params (\n"
	  "\t\"key\" VARCHAR(250) NOT NULL,\n"
	  "\tvalue VARCHAR(8000) NOT NULL,\n"
	  "\trun_uuid VARCHAR(32) NOT NULL,\n"
	  "\tCONSTRAINT param_pk PRIMARY KEY (\"key\", run_uuid),\n"
	  "\tFOREIGN KEY(run_uuid) REFERENCES runs (run_uuid)\n"
	  ")" },
	{ "index", "index_params_run_uuid",
	  "CREATE INDEX index_params_run_uuid ON params (run_uuid)" },
	{ "table", "metrics",
	  "CREATE TABLE metrics (\n"
	  "\t\"key\" VARCHAR(250) NOT NULL,\n"
	  "\tvalue FLOAT NOT NULL,\n"
	  "\ttimestamp BIGINT NOT NULL,\n"
	  "\trun_uuid VARCHAR(32) NOT NULL,\n"
	  "\tstep BIGINT DEFAULT '0' NOT NULL,\n"
	  "\tis_nan BOOLEAN DEFAULT '0' NOT NULL,\n"
	  "\tCONSTRAINT metric_pk"
	  " PRIMARY KEY (\"key\", timestamp, step, run_uuid, value, is_nan),\n"
	  "\tFOREIGN KEY(run_uuid) REFERENCES runs (run_uuid),\n"
	  "\tCHECK (is_nan IN (0, 1))\n"
	  ")" },
	{ "index", "index_metrics_run_uuid",
	  "CREATE INDEX index_metrics_run_uuid ON metrics (run_uuid)" },
	{ "table", "latest_metrics",
	  "CREATE TABLE latest_metrics (\n"
	  "\t\"key\" VARCHAR(250) NOT NULL,\n"
	  "\tvalue FLOAT NOT NULL,\n"
	  "\ttimestamp BIGINT,\n"
	  "\tstep BIGINT NOT NULL,\n"
	  "\tis_nan BOOLEAN NOT NULL,\n"
	  "\trun_uuid VARCHAR(32) NOT NULL,\n"
	  "\tCONSTRAINT latest_metric_pk PRIMARY KEY (\"key\", run_uuid),\n"
	  "\tFOREIGN KEY(run_uuid) REFERENCES runs (run_uuid),\n"
	  "\tCHECK (is_nan IN (0, 1))\n"
	  ")" },
	{ "index", "index_latest_metrics_run_uuid",
	  "CREATE INDEX index_latest_metrics_run_uuid ON latest_metrics (run_uuid)" },
	{ "table", "registered_models",
	  "CREATE TABLE registered_models (\n"
	  "\tname VARCHAR(256) NOT NULL,\n"
	  "\tcreation_time BIGINT,\n"
	  "\tlast_updated_time BIGINT,\n"
	  "\tdescription VARCHAR(5000),\n"
	  "\tCONSTRAINT registered_model_pk PRIMARY KEY (name),\n"
	  "\tUNIQUE (name)\n"
	  ")" },
	{ "table", "registered_model_tags",
	  "CREATE TABLE registered_model_tags (\n"
	  "\t\"key\" VARCHAR(250) NOT NULL,\n"
	  "\tvalue VARCHAR(5000),\n"
	  "\tname VARCHAR(256) NOT NULL,\n"
	  "\tCONSTRAINT registered_model_tag_pk PRIMARY KEY (\"key\", name),\n"
	  "\tFOREIGN KEY(name) REFERENCES registered_models (name) ON UPDATE cascade\n"
	  ")" },
	{ "table", "registered_model_aliases",
	  "CREATE TABLE registered_model_aliases (\n"
	  "\talias VARCHAR(256) NOT NULL,\n"
	  "\tversion INTEGER NOT NULL,\n"
	  "\tname VARCHAR(256) NOT NULL,\n"
	  "\tCONSTRAINT registered_model_alias_pk PRIMARY KEY (name, alias),\n"
	  "\tCONSTRAINT registered_model_alias_name_fkey FOREIGN KEY(name)"
	  " REFERENCES registered_models (name) ON DELETE cascade ON UPDATE cascade\n"
	  ")" },
	{ "table", "model_versions",
	  "CREATE TABLE model_versions (\n"
	  "\tname VARCHAR(256) NOT NULL,\n"
	  "\tversion INTEGER NOT NULL,\n"
	  "\tcreation_time BIGINT,\n"
	  "\tlast_updated_time BIGINT,\n"
	  "\tdescription VARCHAR(5000),\n"
	  "\tuser_id VARCHAR(256),\n"
	  "\tcurrent_stage VARCHAR(20),\n"
	  "\tsource VARCHAR(500),\n"
	  "\trun_id VARCHAR(32),\n"
	  "\tstatus VARCHAR(20),\n"
	  "\tstatus_message VARCHAR(500),\n"
	  "\trun_link VARCHAR(500),\n"
	  "\tstorage_location VARCHAR(500),\n"
	  "\tCONSTRAINT model_version_pk PRIMARY KEY (name, version),\n"
	  "\tFOREIGN KEY(name) REFERENCES registered_models (name) ON UPDATE CASCADE\n"
	  ")" },
	{ "table", "model_version_tags",
	  "CREATE TABLE model_version_tags (\n"
	  "\t\"key\" VARCHAR(250) NOT NULL,\n"
	  "\tvalue VARCHAR(5000),\n"
	  "\tname VARCHAR(256) NOT NULL,\n"
	  "\tversion INTEGER NOT NULL,\n"
	  "\tCONSTRAINT model_version_tag_pk PRIMARY KEY (\"key\", name, version),\n"
	  "\tFOREIGN KEY(name, version)"
	  " REFERENCES model_versions (name, version) ON UPDATE cascade\n"
	  ")" },
	{ "table", "datasets",
	  "CREATE TABLE datasets (\n"
	  "\tdataset_uuid VARCHAR(36) NOT NULL,\n"
	  "\texperiment_id INTEGER NOT NULL,\n"
	  "\tname VARCHAR(500) NOT NULL,\n"
	  "\tdigest VARCHAR(36) NOT NULL,\n"
	  "\tdataset_source_type VARCHAR(36) NOT NULL,\n"
	  "\tdataset_source TEXT NOT NULL,\n"
	  "\tdataset_schema TEXT,\n"
	  "\tdataset_profile TEXT,\n"
	  "\tCONSTRAINT dataset_pk PRIMARY KEY (experiment_id, name, digest),\n"
	  "\tCONSTRAINT fk_datasets_experiment_id_experiments FOREIGN KEY(experiment_id)"
	  " REFERENCES experiments (experiment_id) ON DELETE CASCADE\n"
	  ")" },
	{ "index", "index_datasets_experiment_id_dataset_source_type",
	  "CREATE INDEX index_datasets_experiment_id_dataset_source_type"
	  " ON datasets (experiment_id, dataset_source_type)" },
	{ "index", "index_datasets_dataset_uuid",
	  "CREATE INDEX index_datasets_dataset_uuid ON datasets (dataset_uuid)" },
	{ "table", "inputs",
	  "CREATE TABLE inputs (\n"
	  "\tinput_uuid VARCHAR(36) NOT NULL,\n"
	  "\tsource_type VARCHAR(36) NOT NULL,\n"
	  "\tsource_id VARCHAR(36) NOT NULL,\n"
	  "\tdestination_type VARCHAR(36) NOT NULL,\n"
	  "\tdestination_id VARCHAR(36) NOT NULL,\n"
	  "\tCONSTRAINT inputs_pk"
	  " PRIMARY KEY (source_type, source_id, destination_type, destination_id)\n"
	  ")" },
	{ "index", "index_inputs_destination_type_destination_id_source_type",
	  "CREATE INDEX index_inputs_destination_type_destination_id_source_type"
	  " ON inputs (destination_type, destination_id, source_type)" },
	{ "index", "index_inputs_input_uuid",
	  "CREATE INDEX index_inputs_input_uuid ON inputs (input_uuid)" },
	{ "table", "input_tags",
	  "CREATE TABLE input_tags (\n"
	  "\tinput_uuid VARCHAR(36) NOT NULL,\n"
	  "\tname VARCHAR(255) NOT NULL,\n"
	  "\tvalue VARCHAR(500) NOT NULL,\n"
	  "\tCONSTRAINT input_tags_pk PRIMARY KEY (input_uuid, name)\n"
	  ")" },
	{ "table", "trace_info",
	  "CREATE TABLE trace_info (\n"
	  "\trequest_id VARCHAR(50) NOT NULL,\n"
	  "\texperiment_id INTEGER NOT NULL,\n"
	  "\ttimestamp_ms BIGINT NOT NULL,\n"
	  "\texecution_time_ms BIGINT,\n"
	  "\tstatus VARCHAR(50) NOT NULL,\n"
	  "\tCONSTRAINT trace_info_pk PRIMARY KEY (request_id),\n"
	  "\tCONSTRAINT fk_trace_info_experiment_id FOREIGN KEY(experiment_id)"
	  " REFERENCES experiments (experiment_id)\n"
	  ")" },
	{ "index", "index_trace_info_experiment_id_timestamp_ms",
	  "CREATE INDEX index_trace_info_experiment_id_timestamp_ms"
	  " ON trace_info (experiment_id, timestamp_ms)" },
	{ "table", "trace_tags",
	  "CREATE TABLE trace_tags (\n"
	  "\t\"key\" VARCHAR(250) NOT NULL,\n"
	  "\tvalue VARCHAR(8000),\n"
	  "\trequest_id VARCHAR(50) NOT NULL,\n"
	  "\tCONSTRAINT trace_tag_pk PRIMARY KEY (\"key\", request_id),\n"
	  "\tCONSTRAINT fk_trace_tags_request_id FOREIGN KEY(request_id)"
	  " REFERENCES trace_info (request_id) ON DELETE CASCADE\n"
	  ")" },
	{ "index", "index_trace_tags_request_id",
	  "CREATE INDEX index_trace_tags_request_id ON trace_tags (request_id)" },
	{ "table", "trace_request_metadata",
	  "CREATE TABLE trace_request_metadata (\n"
	  "\t\"key\" VARCHAR(250) NOT NULL,\n"
	  "\tvalue VARCHAR(8000),\n"
	  "\trequest_id VARCHAR(50) NOT NULL,\n"
	  "\tCONSTRAINT trace_request_metadata_pk PRIMARY KEY (\"key\", request_id),\n"
	  "\tCONSTRAINT fk_trace_request_metadata_request_id FOREIGN KEY(request_id)"
	  " REFERENCES trace_info (request_id) ON DELETE CASCADE\n"
	  ")" },
	{ "index", "index_trace_request_metadata_request_id",
	  "CREATE INDEX index_trace_request_metadata_request_id"
	  " ON trace_request_metadata (request_id)" },
	{ "table", "alembic_version",
	  "CREATE TABLE alembic_version (\n"
	  "\tversion_num VARCHAR(32) NOT NULL,\n"
	  "\tCONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)\n"
	  ")" },
};

/* What mlflowfs reads or writes; schema_check() insists on all of it. */
struct schema_use {
	const char *table;
	const char *const *columns; /* NULL-terminated, at most 32 */
};

static const struct schema_use schema_uses[] = {
	{ "experiments",
	  (const char *const[]){ "experiment_id", "name", "artifact_location", "lifecycle_stage",
				 "creation_time", "last_update_time", NULL } },
	{ "experiment_tags", (const char *const[]){ "key", "value", "experiment_id", NULL } },
	{ "runs", (const char *const[]){ "run_uuid", "name", "source_type", "source_name",
					 "entry_point_name", "user_id", "status", "start_time",
					 "end_time", "source_version", "lifecycle_stage",
					 "artifact_uri", "experiment_id", "deleted_time", NULL } },
	{ "tags", (const char *const[]){ "key", "value", "run_uuid", NULL } },
	{ "params", (const char *const[]){ "key", "value", "run_uuid", NULL } },
	{ "metrics", (const char *const[]){ "key", "value", "timestamp", "run_uuid", "step",
					    "is_nan", NULL } },
	{ "latest_metrics", (const char *const[]){ "key", "value", "timestamp", "step", "is_nan",
						   "run_uuid", NULL } },
	{ "registered_models", (const char *const[]){ "name", "creation_time", "last_updated_time",
						      "description", NULL } },
	{ "registered_model_tags", (const char *const[]){ "key", "value", "name", NULL } },
	{ "registered_model_aliases", (const char *const[]){ "alias", "version", "name", NULL } },
	{ "model_versions",
	  (const char *const[]){ "name", "version", "creation_time", "last_updated_time",
				 "description", "user_id", "current_stage", "source", "run_id",
				 "status", "status_message", "run_link", "storage_location",
				 NULL } },
	{ "model_version_tags", (const char *const[]){ "key", "value", "name", "version", NULL } },
	{ "alembic_version", (const char *const[]){ "version_num", NULL } },
};

#define SCHEMA_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* 1 if the database holds any table, index, view or trigger, 0 if none,
 * or -errno with msg saying why. */
static int schema_has_objects(sqlite3 *db, struct buf *msg)
{
	sqlite3_stmt *st = NULL;
	int rc, err;

	rc = sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master LIMIT 1", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		err = 1;
	} else if (rc == SQLITE_DONE) {
		err = 0;
	} else {
		err = -sqldb_rc_to_errno(sqlite3_extended_errcode(db));
		if (err == -EPROTO)
			buf_adds(msg, "not an SQLite database");
		else
			buf_addf(msg, "cannot read the schema: %s", sqlite3_errmsg(db));
	}
	sqlite3_finalize(st);
	return err;
}

int schema_is_empty(sqlite3 *db)
{
	struct buf msg = BUF_INIT;
	int err;

	err = schema_has_objects(db, &msg);
	buf_release(&msg);
	if (err < 0)
		return err;
	return !err;
}

/*
 * The Default experiment as MLflow's store inserts it on first open: id 0,
 * its artifact location the root joined with "0" the way posixpath.join does
 * (no second '/' after a root that ends in one).
 */
static int schema_insert_default(sqlite3 *db, const char *artifact_root, struct buf *msg)
{
	struct buf loc = BUF_INIT;
	sqlite3_stmt *st = NULL;
	int64_t now = clock_wall_ms();
	size_t n = strlen(artifact_root);
	int rc, err;

	err = buf_adds(&loc, artifact_root);
	if (!err && n > 0 && artifact_root[n - 1] != '/')
		err = buf_addch(&loc, '/');
	if (!err)
		err = buf_addch(&loc, '0');
	if (err) {
		buf_adds(msg, "cannot create the default experiment: out of memory");
		goto out;
	}

	rc = sqlite3_prepare_v2(db,
				"INSERT INTO experiments (experiment_id, name, artifact_location,"
				" lifecycle_stage, creation_time, last_update_time)"
				" VALUES (0, 'Default', ?1, 'active', ?2, ?2)",
				-1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 1, buf_str(&loc), -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(st, 2, now);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_DONE) {
		err = -sqldb_rc_to_errno(sqlite3_extended_errcode(db));
		buf_addf(msg, "cannot create the default experiment: %s", sqlite3_errmsg(db));
		goto out;
	}
	err = 0;
out:
	sqlite3_finalize(st);
	buf_release(&loc);
	return err;
}

int schema_create(sqlite3 *db, const char *artifact_root, char **errmsg)
{
	struct buf msg = BUF_INIT;
	int in_txn = 0;
	size_t i;
	int err;

	if (errmsg)
		*errmsg = NULL;

	/* IMMEDIATE takes the write lock now, so of two mounts racing to
	 * create the same new file, the second sees the first one's tables. */
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		err = -sqldb_rc_to_errno(sqlite3_extended_errcode(db));
		buf_addf(&msg, "cannot start a transaction: %s", sqlite3_errmsg(db));
		goto out;
	}
	in_txn = 1;

	err = schema_has_objects(db, &msg);
	if (err < 0)
		goto out;
	if (err > 0) {
		err = -EEXIST;
		buf_adds(&msg, "cannot create the schema: the database is not empty");
		goto out;
	}

	for (i = 0; i < SCHEMA_COUNT(schema_objects); i++) {
		const struct schema_object *o = &schema_objects[i];

		if (sqlite3_exec(db, o->sql, NULL, NULL, NULL) != SQLITE_OK) {
			err = -sqldb_rc_to_errno(sqlite3_extended_errcode(db));
			buf_addf(&msg, "cannot create %s '%s': %s", o->kind, o->name,
				 sqlite3_errmsg(db));
			goto out;
		}
	}

	if (sqlite3_exec(db,
			 "INSERT INTO alembic_version (version_num) VALUES ('" SCHEMA_REVISION "')",
			 NULL, NULL, NULL) != SQLITE_OK) {
		err = -sqldb_rc_to_errno(sqlite3_extended_errcode(db));
		buf_addf(&msg, "cannot record the schema revision: %s", sqlite3_errmsg(db));
		goto out;
	}

	err = schema_insert_default(db, artifact_root, &msg);
	if (err)
		goto out;

	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		err = -sqldb_rc_to_errno(sqlite3_extended_errcode(db));
		buf_addf(&msg, "cannot commit the new schema: %s", sqlite3_errmsg(db));
		goto out;
	}
	in_txn = 0;
	err = 0;
out:
	if (in_txn)
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	if (err && errmsg)
		*errmsg = buf_detach(&msg);
	buf_release(&msg);
	return err;
}

/*
 * Sets bit i of *found for each use->columns[i] that table has; *ntotal is
 * the number of columns the table has, 0 when there is no such table.
 */
static int schema_scan_table(sqlite3 *db, const char *table, const char *const *columns,
			     uint32_t *found, int *ntotal, struct buf *msg)
{
	sqlite3_stmt *st = NULL;
	int rc, err, i;

	*found = 0;
	*ntotal = 0;
	rc = sqlite3_prepare_v2(db, "SELECT name FROM pragma_table_info(?1)", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
	while (rc == SQLITE_OK || rc == SQLITE_ROW) {
		const char *name;

		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			break;
		(*ntotal)++;
		name = (const char *)sqlite3_column_text(st, 0);
		for (i = 0; name && columns && columns[i]; i++) {
			/* SQLite matches identifiers without regard to case. */
			if (sqlite3_stricmp(name, columns[i]) == 0)
				*found |= (uint32_t)1 << i;
		}
	}
	if (rc != SQLITE_DONE) {
		err = -sqldb_rc_to_errno(sqlite3_extended_errcode(db));
		if (err == -EPROTO)
			buf_adds(msg, "not an SQLite database");
		else
			buf_addf(msg, "cannot read table '%s': %s", table, sqlite3_errmsg(db));
		goto out;
	}
	err = 0;
out:
	sqlite3_finalize(st);
	return err;
}

/* 1 if table has column, 0 if not (or no such table), or -errno. */
static int schema_has_column(sqlite3 *db, const char *table, const char *column, struct buf *msg)
{
	const char *const columns[] = { column, NULL };
	uint32_t found;
	int ntotal, err;

	err = schema_scan_table(db, table, columns, &found, &ntotal, msg);
	if (err)
		return err;
	return found != 0;
}

/* The revision in alembic_version, or "" when the table or row is missing. */
static int schema_read_revision(sqlite3 *db, char *out, size_t size, struct buf *msg)
{
	sqlite3_stmt *st = NULL;
	int rc, err;

	out[0] = '\0';
	rc = sqlite3_prepare_v2(db, "SELECT version_num FROM alembic_version", -1, &st, NULL);
	if (rc != SQLITE_OK) {
		/* No such table: the column check reports it. */
		err = 0;
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(st, 0);

		snprintf(out, size, "%s", v ? v : "");
	} else if (rc != SQLITE_DONE) {
		err = -sqldb_rc_to_errno(sqlite3_extended_errcode(db));
		buf_addf(msg, "cannot read table 'alembic_version': %s", sqlite3_errmsg(db));
		goto out;
	}
	err = 0;
out:
	sqlite3_finalize(st);
	return err;
}

int schema_check(sqlite3 *db, struct schema_info *info, char **errmsg)
{
	struct schema_info dummy;
	struct buf msg = BUF_INIT;     /* why the check could not run */
	struct buf missing = BUF_INIT; /* what the database lacks */
	size_t t;
	int err, i;

	if (errmsg)
		*errmsg = NULL;
	if (!info)
		info = &dummy;
	memset(info, 0, sizeof(*info));

	for (t = 0; t < SCHEMA_COUNT(schema_uses); t++) {
		const struct schema_use *u = &schema_uses[t];
		uint32_t found;
		int ntotal;

		err = schema_scan_table(db, u->table, u->columns, &found, &ntotal, &msg);
		if (err)
			goto out;
		if (ntotal == 0 && t == 0) {
			/* Without experiments nothing else is worth listing. */
			buf_adds(&msg, "not an MLflow database: no table 'experiments'");
			err = -EPROTO;
			goto out;
		}
		if (ntotal == 0) {
			buf_addf(&missing, "%smissing table '%s'", missing.len ? "; " : "",
				 u->table);
			continue;
		}
		for (i = 0; u->columns[i]; i++) {
			if (!(found & ((uint32_t)1 << i)))
				buf_addf(&missing, "%smissing column '%s.%s'",
					 missing.len ? "; " : "", u->table, u->columns[i]);
		}
	}

	err = schema_read_revision(db, info->revision, sizeof(info->revision), &msg);
	if (err < 0)
		goto out;
	err = schema_has_column(db, "experiments", "workspace", &msg);
	if (err < 0)
		goto out;
	info->has_workspace = err;
	err = schema_has_column(db, "registered_models", "workspace", &msg);
	if (err < 0)
		goto out;
	info->models_have_workspace = err;

	err = 0;
	if (missing.len) {
		err = -EPROTO;
		buf_release(&msg);
		msg = missing;
		missing = (struct buf)BUF_INIT;
	}
out:
	if (err && errmsg)
		*errmsg = buf_detach(&msg);
	buf_release(&missing);
	buf_release(&msg);
	return err;
}
