/*
 * schema.h - MLflow's SQLite schema as mlflowfs knows it: creating a new
 * database that MLflow opens as its own, and checking at mount time that an
 * existing one has every table and column mlflowfs reads or writes.
 *
 * Nothing here alters a database it did not create (mlflowfs(1), STORES).
 */
#ifndef MFS_SCHEMA_H
#define MFS_SCHEMA_H

#include <sqlite3.h>

/*
 * The alembic revision schema_create() writes: the head of MLflow 2.22.5,
 * the last 2.x release.  MLflow 2.22.5 opens such a database as it is; any
 * later MLflow finds tables it lacks and runs its own migrations on open.
 */
#define SCHEMA_REVISION "0584bdc529eb"

/* What schema_check() learnt about a database besides its being usable. */
struct schema_info {
	char revision[64];	   /* alembic_version.version_num, or "" if none */
	int has_workspace;	   /* experiments.workspace exists (MLflow >= 3.x) */
	int models_have_workspace; /* registered_models.workspace exists */
};

/*
 * Returns 1 when db holds no table at all (a new or zero-length file), 0 when
 * it holds any, or -errno when it cannot be read (-EPROTO: not an SQLite file).
 */
int schema_is_empty(sqlite3 *db);

/*
 * Creates MLflow's schema at SCHEMA_REVISION in an empty database, in one
 * transaction: every table and index MLflow 2.22.5 creates, the
 * alembic_version row, and the Default experiment (id 0) whose artifact
 * location is artifact_root + "/0", as MLflow itself inserts it.
 * artifact_root is what MLflow would use: an absolute path or a URI without
 * a query string ("/home/u/mlruns", "file:///srv/mlruns", "s3://b/p").
 *
 * Returns 0, or -errno with nothing changed: -EEXIST if db already holds a
 * table, else what SQLite's failure maps to.  On failure *errmsg is set to a
 * new string the caller frees ("cannot create table 'runs': ..."); it is set
 * to NULL on success.  errmsg may be NULL.
 */
int schema_create(sqlite3 *db, const char *artifact_root, char **errmsg);

/*
 * Checks that db has every table and column mlflowfs uses, and fills *info
 * (which may be NULL).  Returns 0, or -EPROTO when something is missing or
 * the file is not an SQLite database at all, with *errmsg naming everything
 * missing ("missing table 'latest_metrics'; missing column
 * 'runs.deleted_time'", or "not an MLflow database: no table 'experiments'").
 * Other failures of SQLite give other -errno values (-EBUSY, -EIO, -ENOMEM).
 * *errmsg is a new string the caller frees, NULL on success; errmsg may be
 * NULL.
 */
int schema_check(sqlite3 *db, struct schema_info *info, char **errmsg);

#endif
