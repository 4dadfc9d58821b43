/*
 * sqldb.h - SQLite connections shared by every thread.  One writer
 * connection holds one shared write transaction, which a committer thread
 * commits at most SQLDB_COMMIT_MS after it began and sqldb_batch_commit()
 * commits at once; each write operation is a savepoint inside it, so a
 * failed operation leaves nothing behind.  Reads use the writer connection
 * too, so they see this process's writes at once, committed or not; but
 * while the writer waits for another program's lock they use read-only
 * connections of their own (WAL lets them read meanwhile), so a read never
 * waits behind a stalled write.
 *
 * Knows nothing of MLflow (store_sqlite.c gives it the statement texts) nor
 * of the store: failures are -errno, and sqldb_errmsg() says why.
 */
#ifndef MFS_SQLDB_H
#define MFS_SQLDB_H

#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* The longest a write transaction stays open: commits come at least every
 * 20 ms (mlflowfs(1), WHEN DATA IS SAFE). */
#define SQLDB_COMMIT_MS 20
/* The most read-only connections opened, lazily, for long reads and for
 * reads during a stall. */
#define SQLDB_READERS_MAX 4

struct sqldb;

/* One connection and its prepared statements. */
struct sqldb_conn {
	struct sqldb *d;
	sqlite3 *db;
	sqlite3_stmt **stmt;	 /* by statement id, prepared on first use */
	struct sqldb_conn *next; /* in the free readers, protected by d->pool_lock */
};

/*
 * The writes of one descriptor: the transaction they went into and the
 * first failure not yet reported.  Fields are sqldb's, protected by
 * d->batch_lock.
 */
struct sqldb_batch {
	int err;
	uint64_t txn;			 /* the open transaction it wrote into, or 0 */
	struct sqldb_batch *prev, *next; /* in d->joined while txn is set */
};

struct sqldb_stats {
	int in_txn;
	uint64_t pending;	  /* what the caller counted in the open transaction */
	uint64_t committed;	  /* the same, committed since start */
	uint64_t commits;	  /* transactions committed since start */
	uint64_t commit_failures; /* transactions lost since start */
	uint64_t stalled_reads;	  /* reads that found the writer stalled */
	int readers;		  /* read-only connections open */
};

struct sqldb {
	/*
	 * The writer connection is taken by one thread at a time: held is
	 * set by the taker.  blocked says the holder waits for another
	 * program's lock; readers then use read-only connections.
	 */
	/* guards held, blocked, stop, txn_open, txn_began, committer_idle,
	 * commit_due */
	pthread_mutex_t lock;
	pthread_cond_t cond;	    /* held dropped, blocked rose, or stop */
	pthread_cond_t commit_cond; /* the idle committer: a transaction opened, or stop */
	int committer_idle;	    /* it waits for a transaction to open */
	/* The committer's commit is due and it waits for the writer: takers
	 * let it go first, or a steady stream of writes could keep a
	 * transaction open past its time. */
	int commit_due;
	int held;
	int blocked;
	int stop;
	int txn_open;		   /* mirrors in_txn for the committer */
	struct timespec txn_began; /* CLOCK_MONOTONIC, when it was opened */
	pthread_t committer;
	int committer_started;

	/* Everything below up to the readers belongs to the holder of the writer. */
	struct sqldb_conn w;
	sqlite3_stmt *version; /* PRAGMA data_version */
	sqlite3_stmt *control[4];
	int in_txn;
	uint64_t txn_seq; /* number of the open transaction, or of the next one */
	int savepoint;	  /* the write operation under way opened one */
	uint64_t pending, committed, commits, commit_failures;
	/* The caller's deferred work, run before any read, write or commit. */
	int (*flush)(void *ctx);
	void *flush_ctx;
	int dirty;

	pthread_mutex_t batch_lock;
	struct sqldb_batch *joined; /* batches with writes in the open transaction */

	pthread_mutex_t pool_lock;
	pthread_cond_t pool_cond;	 /* a reader was put back */
	struct sqldb_conn *free_readers; /* protected by pool_lock */
	int readers;			 /* protected by pool_lock */
	uint64_t stalled_reads;		 /* protected by pool_lock */

	/* Set at start, read-only afterwards. */
	char **sql; /* statement texts by id (owned) */
	size_t nsql;
	char *path; /* the database file, for messages and fsync */
	int busy_ms;
	int no_readers; /* a read-only store, perhaps opened immutable: the writer reads */
	void (*setup)(sqlite3 *db); /* run on every connection opened */
};

/* Why the calling thread's last sqldb call failed ("" if nothing to say). */
const char *sqldb_errmsg(void);
/* The one translation of SQLite result codes into errno values. */
int sqldb_rc_to_errno(int rc);

/* Sets up d for the database file path; busy_ms: how long a write waits
 * for another program's lock. */
int sqldb_init(struct sqldb *d, const char *path, int busy_ms);
/*
 * Takes the open writer connection db and the n statement texts (steals
 * both, also on failure), a function run on every connection (on the
 * writer now), and starts the committer.  no_readers: long reads use the
 * writer too (a read-only database that may be open as immutable).
 */
int sqldb_start(struct sqldb *d, sqlite3 *db, char **sql, size_t n, void (*setup)(sqlite3 *db),
		int no_readers);
/* Stops the committer, commits what is open, closes every connection. */
void sqldb_release(struct sqldb *d);

/*
 * Prepares statement id on c (once) and binds ?1, ?2, ... from fmt, a
 * letter each: 't' text (a NULL pointer binds NULL), 'i' int64_t, 'd'
 * double, 'n' NULL (no argument).  Texts are not copied.  NULL on failure.
 */
sqlite3_stmt *sqldb_query(struct sqldb_conn *c, size_t id, const char *fmt, ...);
/* Steps once: 1 for a row (st stays on it; reset it after), 0 for none,
 * -errno.  A NULL st (a failed sqldb_query) is -EIO. */
int sqldb_step_row(struct sqldb_conn *c, sqlite3_stmt *st, const char *what);
/* Runs a statement without rows: the number of rows changed, or -errno. */
int sqldb_step_change(struct sqldb_conn *c, sqlite3_stmt *st, const char *what);
/* Calls row for each row until it returns non-zero (returned), or -errno. */
typedef int sqldb_row_fn(void *ctx, sqlite3_stmt *st);
int sqldb_each_row(struct sqldb_conn *c, sqlite3_stmt *st, const char *what, sqldb_row_fn *row,
		   void *ctx);

/* A column as text ("" for NULL), or as a time (-1 for NULL). */
const char *sqldb_text(sqlite3_stmt *st, int i);
int64_t sqldb_time(sqlite3_stmt *st, int i);

/*
 * Reads: sqldb_read_begin() gives a connection to read from (after running
 * deferred work when it is the writer), sqldb_read_end() gives it back.
 * NULL and -ENOMEM-like failures show as a NULL connection.
 */
struct sqldb_conn *sqldb_read_begin(struct sqldb *d);
/* A read that may take long (a whole metric history): it commits what is
 * open, then reads from a read-only connection of its own, so that nobody
 * waits while the caller handles the rows. */
struct sqldb_conn *sqldb_read_long_begin(struct sqldb *d);
void sqldb_read_end(struct sqldb *d, struct sqldb_conn *c);
/* One query's rows, between read_begin and read_end. */
int sqldb_list(struct sqldb *d, size_t id, const char *what, sqldb_row_fn *row, void *ctx,
	       const char *fmt, ...);

/*
 * A write operation: sqldb_write_begin() takes the writer, opens the shared
 * transaction (if none is open) and a savepoint, and joins b (if not NULL)
 * to the transaction; sqldb_write_end() keeps the operation if err is 0,
 * else undoes it, gives the writer back and returns err.  Always call both,
 * whatever begin returned; use d->w in between.  With queue set, the
 * operation only queues deferred work (then calls sqldb_queued()): no
 * savepoint, and what is queued already stays queued.
 */
int sqldb_write_begin(struct sqldb *d, struct sqldb_batch *b, int queue);
int sqldb_write_end(struct sqldb *d, int err);
/* The number of the open write transaction (0: none); writer held. */
uint64_t sqldb_txn(const struct sqldb *d);
/* The writer connection, for its holder (between write_begin and write_end,
 * or a read_begin that returned it). */
struct sqldb_conn *sqldb_writer(struct sqldb *d);
/* Counts n items (metric points) into the open transaction; writer held. */
void sqldb_count_pending(struct sqldb *d, uint64_t n);

/*
 * Deferred work: writes the caller queued in memory and runs with flush()
 * (writer held, inside the open transaction) before the next read, write
 * or commit.  flush() must empty its queue whether it succeeds or not; if
 * it fails, the open transaction is lost as a failed commit would be.
 */
typedef int sqldb_flush_fn(void *ctx);
void sqldb_set_flush(struct sqldb *d, sqldb_flush_fn *flush, void *ctx);
void sqldb_queued(struct sqldb *d);
/* Runs the deferred work now (a long burst need not wait for a commit). */
void sqldb_flush_now(struct sqldb *d);

/* Batches (mlflowfs(1), WHEN DATA IS SAFE): free only after any write into it returned. */
void sqldb_batch_init(struct sqldb_batch *b);
/* Commits the open transaction if b wrote into it (durable: and fsyncs the
 * files), then returns and forgets b's first failure (-EIO). */
int sqldb_batch_commit(struct sqldb *d, struct sqldb_batch *b, int durable);
void sqldb_batch_release(struct sqldb *d, struct sqldb_batch *b);

/* A number that moves when another connection commits: 0, or -EAGAIN
 * while the writer is stalled. */
int sqldb_others_version(struct sqldb *d, uint64_t *v);
void sqldb_stats(struct sqldb *d, struct sqldb_stats *out);
/* Transactions lost since start, read without a lock: cheap enough for
 * every read. */
uint64_t sqldb_commit_failures(struct sqldb *d);

#endif
