/*
 * sqldb.h - one SQLite connection shared by every thread: its prepared
 * statements, run through a small format-string binder, and one shared write
 * transaction that a committer thread commits at most SQLDB_COMMIT_MS after
 * it began, and that sqldb_sync() commits at once.  Each write operation is
 * a savepoint inside it, so a failed operation leaves nothing behind.
 * Knows nothing of MLflow: store_sqlite.c gives it the statement texts.
 */
#ifndef MFS_SQLDB_H
#define MFS_SQLDB_H

#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* The longest a write transaction stays open (SPEC §4: at least every 20 ms). */
#define SQLDB_COMMIT_MS 20

enum sqldb_control {
	SQLDB_BEGIN,
	SQLDB_SAVEPOINT,
	SQLDB_RELEASE,
	SQLDB_ROLLBACK_TO,
	SQLDB_CONTROL_COUNT
};

struct sqldb {
	pthread_mutex_t lock; /* serialises every use of db and of the fields below */
	sqlite3 *db;
	char **sql;	     /* statement texts by id (owned) */
	sqlite3_stmt **stmt; /* prepared on first use */
	size_t nsql;
	sqlite3_stmt *version;			    /* PRAGMA data_version */
	sqlite3_stmt *control[SQLDB_CONTROL_COUNT]; /* prepared on first use */
	int in_txn;				    /* a write transaction is open */
	struct timespec txn_began;		    /* CLOCK_MONOTONIC, when it was opened */
	uint64_t txn_seq;	  /* number of the open transaction, or of the next one */
	uint64_t failed_seq;	  /* the newest transaction whose commit failed, or 0 */
	uint64_t writes;	  /* write operations done (and commits, failed or not) */
	uint64_t pending;	  /* what the caller counts in the open transaction (points) */
	uint64_t committed;	  /* what the caller counted, committed since start */
	uint64_t commits;	  /* transactions committed since start */
	uint64_t commit_failures; /* transactions lost since start */
	int stop;		  /* the committer must end */
	pthread_cond_t wake;	  /* wakes the committer; used with lock */
	pthread_t committer;
	int committer_started;
	int savepoint; /* the write operation under way opened one */
	/* The caller's deferred work, run before any read, write or commit. */
	int (*flush)(void *ctx);
	void *flush_ctx;
	int dirty;  /* there is deferred work */
	char *path; /* the database file, for messages and fsync */
};

/* Sets up d for the database file path; the caller then opens d->db. */
int sqldb_init(struct sqldb *d, const char *path);
/* Takes the n statement texts (steals sql) and starts the committer. */
int sqldb_start(struct sqldb *d, char **sql, size_t n);
/* Stops the committer, commits what is open, closes the connection. */
void sqldb_release(struct sqldb *d);

/* The one translation of SQLite result codes into errno values. */
int sqldb_rc_to_errno(int rc);
/* Records the connection's error for store_errmsg(); returns -errno. */
int sqldb_fail(struct sqldb *d, int rc, const char *what);

/*
 * Prepares statement id (once) and binds ?1, ?2, ... from fmt, a letter
 * each: 't' text (a NULL pointer binds NULL), 'i' int64_t, 'd' double, 'n'
 * NULL (no argument).  Texts are not copied.  NULL on failure.  Lock held.
 */
sqlite3_stmt *sqldb_query(struct sqldb *d, size_t id, const char *fmt, ...);
/* Steps once: 1 for a row (st stays on it; reset it after), 0 for none,
 * -errno.  A NULL st (a failed sqldb_query) is -EIO. */
int sqldb_step_row(struct sqldb *d, sqlite3_stmt *st, const char *what);
/* Runs a statement without rows: the number of rows changed, or -errno. */
int sqldb_step_change(struct sqldb *d, sqlite3_stmt *st, const char *what);
/* Calls row for each row until it returns non-zero (returned), or -errno. */
typedef int sqldb_row_fn(void *ctx, sqlite3_stmt *st);
int sqldb_each_row(struct sqldb *d, sqlite3_stmt *st, const char *what, sqldb_row_fn *row,
		   void *ctx);
/* A read of one query's rows: sqldb_lock(), sqldb_query(id, fmt, ...),
 * sqldb_each_row(), unlock. */
int sqldb_list(struct sqldb *d, size_t id, const char *what, sqldb_row_fn *row, void *ctx,
	       const char *fmt, ...);

/* A column as text ("" for NULL), or as a time (-1 for NULL). */
const char *sqldb_text(sqlite3_stmt *st, int i);
int64_t sqldb_time(sqlite3_stmt *st, int i);

/*
 * A write operation: sqldb_write_begin() takes the lock and opens the shared
 * transaction (if none is open) and a savepoint; sqldb_write_end() keeps the
 * operation if err is 0, else undoes it, drops the lock and returns err.
 * Always call both, whatever begin returned.  With queue set, the operation
 * only queues deferred work (then calls sqldb_queued()): no savepoint, and
 * what is queued already stays queued.
 */
int sqldb_write_begin(struct sqldb *d, int queue);
int sqldb_write_end(struct sqldb *d, int err);

/*
 * Deferred work: writes the caller queued in memory and runs with flush()
 * (lock held, inside the open transaction) before the next read, write or
 * commit.  flush() must empty its queue whether it succeeds or not; if it
 * fails, the open transaction is lost as a failed commit would be.
 */
typedef int sqldb_flush_fn(void *ctx);
void sqldb_set_flush(struct sqldb *d, sqldb_flush_fn *flush, void *ctx);
void sqldb_queued(struct sqldb *d);
/* Takes the lock for reading, after running the deferred work. */
void sqldb_lock(struct sqldb *d);

/* A number that moves with every write here or commit by anyone else;
 * *others (if not NULL) gets one that moves only with others' commits. */
uint64_t sqldb_version(struct sqldb *d, uint64_t *others);

/* SPEC §4: the token before a descriptor's first write; sync commits now
 * (durable: and fsyncs the files) and fails with -EIO if a commit since
 * the token failed. */
uint64_t sqldb_token(struct sqldb *d);
int sqldb_sync(struct sqldb *d, uint64_t token, int durable);

#endif
