/*
 * sqldb.c - the shared SQLite connections of sqldb.h: statements, the
 * writer and its shared transaction, the committer thread, batches and
 * their errors, the readers used during a stall, and durability on request.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "sqldb.h"

static _Thread_local char errmsg[512];

const char *sqldb_errmsg(void)
{
	return errmsg;
}

static void set_errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void set_errmsg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errmsg, sizeof(errmsg), fmt, ap);
	va_end(ap);
}

int sqldb_rc_to_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return EAGAIN;
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

static int fail(sqlite3 *db, int rc, const char *what)
{
	if ((rc & 0xff) == SQLITE_BUSY)
		set_errmsg("%s: the database stayed locked by another program", what);
	else
		set_errmsg("%s: %s", what, sqlite3_errmsg(db));
	log_debug("sqlite: %s: %s (rc %d)", what, sqlite3_errmsg(db), rc);
	return -sqldb_rc_to_errno(rc);
}

/* ---- statements ------------------------------------------------------ */

/* Prepares (once) statement id on c, reset and unbound; NULL with errmsg set. */
static sqlite3_stmt *stmt(struct sqldb_conn *c, size_t id)
{
	struct sqldb *d = c->d;
	int rc;

	if (id >= d->nsql || !c->stmt)
		return NULL;
	if (c->stmt[id]) {
		sqlite3_reset(c->stmt[id]);
		sqlite3_clear_bindings(c->stmt[id]);
		return c->stmt[id];
	}
	rc = sqlite3_prepare_v3(c->db, d->sql[id], -1, SQLITE_PREPARE_PERSISTENT, &c->stmt[id],
				NULL);
	if (rc != SQLITE_OK) {
		set_errmsg("cannot prepare a query: %s", sqlite3_errmsg(c->db));
		log_error("sqlite: cannot prepare '%s': %s", d->sql[id], sqlite3_errmsg(c->db));
		c->stmt[id] = NULL;
	}
	return c->stmt[id];
}

static sqlite3_stmt *vquery(struct sqldb_conn *c, size_t id, const char *fmt, va_list ap)
{
	sqlite3_stmt *st = stmt(c, id);
	const char *text;
	int i;

	if (!st)
		return NULL;
	for (i = 1; *fmt; fmt++, i++) {
		switch (*fmt) {
		case 't':
			text = va_arg(ap, const char *);
			if (text)
				sqlite3_bind_text(st, i, text, -1, SQLITE_STATIC);
			else
				sqlite3_bind_null(st, i);
			break;
		case 'i':
			sqlite3_bind_int64(st, i, va_arg(ap, int64_t));
			break;
		case 'd':
			sqlite3_bind_double(st, i, va_arg(ap, double));
			break;
		default:
			sqlite3_bind_null(st, i);
		}
	}
	return st;
}

sqlite3_stmt *sqldb_query(struct sqldb_conn *c, size_t id, const char *fmt, ...)
{
	sqlite3_stmt *st;
	va_list ap;

	va_start(ap, fmt);
	st = vquery(c, id, fmt, ap);
	va_end(ap);
	return st;
}

int sqldb_step_row(struct sqldb_conn *c, sqlite3_stmt *st, const char *what)
{
	int rc;

	if (!st)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return 1;
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : fail(c->db, rc, what);
}

int sqldb_step_change(struct sqldb_conn *c, sqlite3_stmt *st, const char *what)
{
	int rc;

	if (!st)
		return -EIO;
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? sqlite3_changes(c->db) : fail(c->db, rc, what);
}

int sqldb_each_row(struct sqldb_conn *c, sqlite3_stmt *st, const char *what, sqldb_row_fn *row,
		   void *ctx)
{
	int rc = SQLITE_DONE, err = 0;

	if (!st)
		return -EIO;
	while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW)
		err = row(ctx, st);
	if (!err && rc != SQLITE_DONE)
		err = fail(c->db, rc, what);
	sqlite3_reset(st);
	return err;
}

const char *sqldb_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? (const char *)t : "";
}

int64_t sqldb_time(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, i);
}

static void conn_close(struct sqldb_conn *c)
{
	size_t i;

	for (i = 0; c->stmt && i < c->d->nsql; i++)
		sqlite3_finalize(c->stmt[i]);
	free(c->stmt);
	c->stmt = NULL;
	if (c->db && sqlite3_close(c->db) != SQLITE_OK)
		log_error("cannot close '%s': %s", c->d->path, sqlite3_errmsg(c->db));
	c->db = NULL;
}

/* ---- the writer ------------------------------------------------------ */

/* Takes the writer connection, waiting for its holder (never for long: a
 * holder that waits for another program's lock is still waited for) and
 * for a commit that is due. */
static void writer_take(struct sqldb *d)
{
	pthread_mutex_lock(&d->lock);
	while (d->held || d->commit_due)
		pthread_cond_wait(&d->cond, &d->lock);
	d->held = 1;
	pthread_mutex_unlock(&d->lock);
}

static void writer_give(struct sqldb *d)
{
	pthread_mutex_lock(&d->lock);
	d->held = 0;
	d->blocked = 0;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

/*
 * The writer's busy handler: says at once that the writer is stalled (so
 * reads move to their own connections), then waits with growing sleeps
 * until the lock timeout.
 */
static int busy_handler(void *arg, int count)
{
	static const int delays_ms[] = { 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 };
	const int n = sizeof(delays_ms) / sizeof(delays_ms[0]);
	struct sqldb *d = arg;
	int i, waited = 0, delay;

	/* Only a writer waiting to begin has nothing a read must see: in
	 * rollback-journal mode COMMIT may wait too, with the transaction's
	 * writes visible on the writer alone. */
	if (count == 0 && !d->in_txn) {
		pthread_mutex_lock(&d->lock);
		d->blocked = 1;
		pthread_cond_broadcast(&d->cond);
		pthread_mutex_unlock(&d->lock);
	}
	for (i = 0; i < count && i < n; i++)
		waited += delays_ms[i];
	if (count > n)
		waited += (count - n) * delays_ms[n - 1];
	if (waited >= d->busy_ms)
		return 0;
	delay = delays_ms[count < n ? count : n - 1];
	if (waited + delay > d->busy_ms)
		delay = d->busy_ms - waited;
	usleep((useconds_t)delay * 1000);
	return 1;
}

/* Back from a statement that may have stalled: reads may use the writer again. */
static void unblock(struct sqldb *d)
{
	pthread_mutex_lock(&d->lock);
	d->blocked = 0;
	pthread_mutex_unlock(&d->lock);
}

enum control { C_BEGIN, C_SAVEPOINT, C_RELEASE, C_ROLLBACK_TO };

/* The statements of every write, kept prepared: parsing them anew costs
 * more than the insert of a metric point. */
static const char *const control_sql[] = {
	[C_BEGIN] = "BEGIN IMMEDIATE",
	[C_SAVEPOINT] = "SAVEPOINT op",
	[C_RELEASE] = "RELEASE op",
	[C_ROLLBACK_TO] = "ROLLBACK TO op",
};

static int control(struct sqldb *d, enum control c)
{
	int rc;

	if (!d->control[c]) {
		rc = sqlite3_prepare_v3(d->w.db, control_sql[c], -1, SQLITE_PREPARE_PERSISTENT,
					&d->control[c], NULL);
		if (rc != SQLITE_OK) {
			d->control[c] = NULL;
			return fail(d->w.db, rc, control_sql[c]);
		}
	}
	rc = sqlite3_step(d->control[c]);
	sqlite3_reset(d->control[c]);
	return rc == SQLITE_DONE
		       ? 0
		       : fail(d->w.db, rc, c == C_BEGIN ? "cannot begin a write" : control_sql[c]);
}

/* Ends the open transaction, committed (commit) or rolled back, and tells
 * every batch that wrote into it how it ended; writer held. */
static void end_txn(struct sqldb *d, int commit)
{
	struct sqldb_batch *b, *next;
	int rc = SQLITE_OK, failed;

	if (commit) {
		rc = sqlite3_exec(d->w.db, "COMMIT", NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			unblock(d);
	}
	failed = !commit || rc != SQLITE_OK;
	if (failed) {
		log_error("cannot commit to '%s': %s; %llu metric points and the writes with "
			  "them are lost",
			  d->path, commit ? sqlite3_errmsg(d->w.db) : errmsg,
			  (unsigned long long)d->pending);
		sqlite3_exec(d->w.db, "ROLLBACK", NULL, NULL, NULL);
		__atomic_add_fetch(&d->commit_failures, 1, __ATOMIC_RELAXED);
	} else {
		__atomic_add_fetch(&d->commits, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&d->committed, d->pending, __ATOMIC_RELAXED);
	}
	pthread_mutex_lock(&d->batch_lock);
	for (b = d->joined; b; b = next) {
		next = b->next;
		if (failed && !b->err)
			b->err = -EIO;
		b->txn = 0;
		b->prev = b->next = NULL;
	}
	d->joined = NULL;
	pthread_mutex_unlock(&d->batch_lock);
	__atomic_store_n(&d->pending, 0, __ATOMIC_RELAXED);
	d->in_txn = 0;
	d->txn_seq++;
	pthread_mutex_lock(&d->lock);
	d->txn_open = 0;
	pthread_mutex_unlock(&d->lock);
}

/*
 * Runs the caller's deferred work (queued metric points) into the open
 * transaction.  If it fails, the whole transaction is lost, as a failed
 * commit would lose it: its batches learn it at their commit (mlflowfs(1), WHEN DATA IS SAFE).
 */
static int flush_locked(struct sqldb *d)
{
	int err;

	if (!d->dirty)
		return 0;
	d->dirty = 0;
	err = d->flush(d->flush_ctx);
	if (err && d->in_txn)
		end_txn(d, 0);
	return err;
}

/* Commits the open transaction, if any; writer held. */
static void commit_locked(struct sqldb *d)
{
	if (d->in_txn && !flush_locked(d))
		end_txn(d, 1);
}

static void join(struct sqldb *d, struct sqldb_batch *b)
{
	pthread_mutex_lock(&d->batch_lock);
	if (b->txn != d->txn_seq) {
		b->txn = d->txn_seq;
		b->prev = NULL;
		b->next = d->joined;
		if (b->next)
			b->next->prev = b;
		d->joined = b;
	}
	pthread_mutex_unlock(&d->batch_lock);
}

int sqldb_write_begin(struct sqldb *d, struct sqldb_batch *b, int queue)
{
	int err = 0;

	errmsg[0] = '\0';
	writer_take(d);
	d->savepoint = 0;
	/* A failed flush ended the transaction and failed the batches of the
	 * points it held: this write is not one of them, and begins anew. */
	if (!queue)
		flush_locked(d);
	if (!d->in_txn) {
		/* The one statement that waits for another program's lock. */
		err = control(d, C_BEGIN);
		unblock(d);
		if (err)
			return err;
		d->in_txn = 1;
		pthread_mutex_lock(&d->lock);
		d->txn_open = 1;
		clock_gettime(CLOCK_MONOTONIC, &d->txn_began);
		/* A committer already timing an earlier transaction finds this
		 * one when it wakes: waking it now would cost every write. */
		if (d->committer_idle)
			pthread_cond_signal(&d->commit_cond);
		pthread_mutex_unlock(&d->lock);
	}
	if (err)
		return err;
	if (b)
		join(d, b);
	if (queue)
		return 0;
	err = control(d, C_SAVEPOINT);
	d->savepoint = !err;
	return err;
}

int sqldb_write_end(struct sqldb *d, int err)
{
	if (d->in_txn && d->savepoint) {
		if (err) {
			/* Undone alone, or else with the whole transaction: a
			 * half-done write is never committed. */
			if (control(d, C_ROLLBACK_TO) || control(d, C_RELEASE))
				end_txn(d, 0);
		} else {
			err = control(d, C_RELEASE);
		}
	}
	d->savepoint = 0;
	writer_give(d);
	return err;
}

struct sqldb_conn *sqldb_writer(struct sqldb *d)
{
	return &d->w;
}

uint64_t sqldb_txn(const struct sqldb *d)
{
	return d->in_txn ? d->txn_seq : 0;
}

void sqldb_count_pending(struct sqldb *d, uint64_t n)
{
	__atomic_add_fetch(&d->pending, n, __ATOMIC_RELAXED);
}

void sqldb_set_flush(struct sqldb *d, sqldb_flush_fn *flush, void *ctx)
{
	d->flush = flush;
	d->flush_ctx = ctx;
}

void sqldb_queued(struct sqldb *d)
{
	d->dirty = 1;
}

void sqldb_flush_now(struct sqldb *d)
{
	writer_take(d);
	flush_locked(d);
	writer_give(d);
}

/* The committer no longer waits for the writer: takers may go; lock held. */
static void commit_not_due(struct sqldb *d)
{
	if (d->commit_due) {
		d->commit_due = 0;
		pthread_cond_broadcast(&d->cond);
	}
}

static void *committer_main(void *arg)
{
	struct sqldb *d = arg;

	pthread_mutex_lock(&d->lock);
	while (!d->stop) {
		struct timespec now, due;

		/* Whatever comes next, its wait for the writer is over (the lock
		 * is kept until it takes the writer, if it does). */
		commit_not_due(d);
		if (!d->txn_open) {
			d->committer_idle = 1;
			pthread_cond_wait(&d->commit_cond, &d->lock);
			d->committer_idle = 0;
			continue;
		}
		due = d->txn_began;
		clock_add_ms(&due, SQLDB_COMMIT_MS);
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec < due.tv_sec ||
		    (now.tv_sec == due.tv_sec && now.tv_nsec < due.tv_nsec)) {
			pthread_cond_timedwait(&d->commit_cond, &d->lock, &due);
			continue;
		}
		if (d->held) {
			d->commit_due = 1;
			pthread_cond_wait(&d->cond, &d->lock);
			continue;
		}
		d->held = 1;
		pthread_mutex_unlock(&d->lock);
		commit_locked(d);
		pthread_mutex_lock(&d->lock);
		d->held = 0;
		d->blocked = 0;
		pthread_cond_broadcast(&d->cond);
	}
	commit_not_due(d);
	pthread_mutex_unlock(&d->lock);
	return NULL;
}

/* ---- batches --------------------------------------------------------- */

void sqldb_batch_init(struct sqldb_batch *b)
{
	memset(b, 0, sizeof(*b));
}

static void unjoin_locked(struct sqldb *d, struct sqldb_batch *b)
{
	if (!b->txn)
		return;
	if (b->prev)
		b->prev->next = b->next;
	else
		d->joined = b->next;
	if (b->next)
		b->next->prev = b->prev;
	b->prev = b->next = NULL;
	b->txn = 0;
}

void sqldb_batch_release(struct sqldb *d, struct sqldb_batch *b)
{
	pthread_mutex_lock(&d->batch_lock);
	unjoin_locked(d, b);
	pthread_mutex_unlock(&d->batch_lock);
}

/* fsync()s the database and its WAL: what made it to them survives power loss. */
static int sync_files(struct sqldb *d)
{
	const char *suffix[] = { "", "-wal" };
	char path[PATH_MAX];
	size_t i;
	int fd, err = 0;

	for (i = 0; i < 2; i++) {
		if (snprintf(path, sizeof(path), "%s%s", d->path, suffix[i]) >= (int)sizeof(path))
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

int sqldb_batch_commit(struct sqldb *d, struct sqldb_batch *b, int durable)
{
	int err, joined;

	pthread_mutex_lock(&d->batch_lock);
	joined = b->txn != 0;
	pthread_mutex_unlock(&d->batch_lock);
	/* Only a batch with writes in the open transaction has to commit it. */
	if (joined) {
		writer_take(d);
		if (sqldb_txn(d) && b->txn == d->txn_seq)
			commit_locked(d);
		writer_give(d);
	}
	pthread_mutex_lock(&d->batch_lock);
	err = b->err;
	b->err = 0;
	pthread_mutex_unlock(&d->batch_lock);
	if (err) {
		set_errmsg("a commit to '%s' failed; see the daemon log", d->path);
		return err;
	}
	if (durable) {
		err = sync_files(d);
		if (err)
			set_errmsg("cannot fsync '%s': %s", d->path, strerror(-err));
	}
	return err;
}

/* ---- readers --------------------------------------------------------- */

static int conn_setup(struct sqldb *d, struct sqldb_conn *c)
{
	c->d = d;
	c->stmt = calloc(d->nsql ? d->nsql : 1, sizeof(*c->stmt));
	if (!c->stmt)
		return -ENOMEM;
	if (d->setup)
		d->setup(c->db);
	return 0;
}

/* A read-only connection for a read during a stall, or NULL. */
static struct sqldb_conn *reader_get(struct sqldb *d)
{
	struct sqldb_conn *c = NULL;
	int rc;

	pthread_mutex_lock(&d->pool_lock);
	while (!d->free_readers && d->readers >= SQLDB_READERS_MAX)
		pthread_cond_wait(&d->pool_cond, &d->pool_lock);
	if (d->free_readers) {
		c = d->free_readers;
		d->free_readers = c->next;
		pthread_mutex_unlock(&d->pool_lock);
		return c;
	}
	d->readers++;
	pthread_mutex_unlock(&d->pool_lock);

	c = calloc(1, sizeof(*c));
	if (c) {
		rc = sqlite3_open_v2(d->path, &c->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX,
				     NULL);
		if (rc == SQLITE_OK && !conn_setup(d, c)) {
			sqlite3_busy_timeout(c->db, d->busy_ms);
			/* Readers stand in for a moment: a small page cache. */
			sqlite3_exec(c->db, "PRAGMA cache_size = -256", NULL, NULL, NULL);
			log_debug("opened read-only connection %d to '%s'", d->readers, d->path);
			return c;
		}
		set_errmsg("cannot open '%s' for reading: %s", d->path,
			   c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
		conn_close(c);
		free(c);
		c = NULL;
	}
	pthread_mutex_lock(&d->pool_lock);
	d->readers--;
	pthread_cond_signal(&d->pool_cond);
	pthread_mutex_unlock(&d->pool_lock);
	return NULL;
}

static void reader_put(struct sqldb *d, struct sqldb_conn *c)
{
	pthread_mutex_lock(&d->pool_lock);
	c->next = d->free_readers;
	d->free_readers = c;
	pthread_cond_signal(&d->pool_cond);
	pthread_mutex_unlock(&d->pool_lock);
}

/*
 * Takes the writer for a read, waiting for its holder unless the holder
 * waits for another program's lock: 1 when taken, 0 when the writer is
 * stalled (it has no transaction open then: it waits to begin one).
 */
static int writer_take_unless_stalled(struct sqldb *d)
{
	int taken;

	pthread_mutex_lock(&d->lock);
	while ((d->held && !d->blocked) || d->commit_due)
		pthread_cond_wait(&d->cond, &d->lock);
	taken = !d->held;
	if (taken)
		d->held = 1;
	pthread_mutex_unlock(&d->lock);
	return taken;
}

struct sqldb_conn *sqldb_read_begin(struct sqldb *d)
{
	errmsg[0] = '\0';
	if (writer_take_unless_stalled(d)) {
		/* A read sees what was queued: this process's writes show at once. */
		flush_locked(d);
		return &d->w;
	}
	/* With no transaction of ours open, a reader sees all we wrote. */
	pthread_mutex_lock(&d->pool_lock);
	d->stalled_reads++;
	pthread_mutex_unlock(&d->pool_lock);
	return reader_get(d);
}

struct sqldb_conn *sqldb_read_long_begin(struct sqldb *d)
{
	if (d->no_readers)
		return sqldb_read_begin(d);
	errmsg[0] = '\0';
	if (writer_take_unless_stalled(d)) {
		/* What this process wrote goes in first, for the reader to see. */
		commit_locked(d);
		writer_give(d);
	}
	return reader_get(d);
}

void sqldb_read_end(struct sqldb *d, struct sqldb_conn *c)
{
	if (!c)
		return;
	if (c == &d->w)
		writer_give(d);
	else
		reader_put(d, c);
}

int sqldb_list(struct sqldb *d, size_t id, const char *what, sqldb_row_fn *row, void *ctx,
	       const char *fmt, ...)
{
	struct sqldb_conn *c = sqldb_read_begin(d);
	sqlite3_stmt *st;
	va_list ap;
	int err;

	if (!c)
		return -EIO;
	va_start(ap, fmt);
	st = vquery(c, id, fmt, ap);
	va_end(ap);
	err = sqldb_each_row(c, st, what, row, ctx);
	sqldb_read_end(d, c);
	return err;
}

/* ---- others' changes, figures ---------------------------------------- */

int sqldb_others_version(struct sqldb *d, uint64_t *v)
{
	int rc;

	/* Another program holds the lock: it is changing the store. */
	if (!writer_take_unless_stalled(d))
		return -EAGAIN;
	if (!d->version) {
		rc = sqlite3_prepare_v3(d->w.db, "PRAGMA data_version", -1,
					SQLITE_PREPARE_PERSISTENT, &d->version, NULL);
		if (rc != SQLITE_OK)
			d->version = NULL;
	}
	/* data_version moves when another connection commits, never for ours. */
	rc = d->version ? sqlite3_step(d->version) : SQLITE_ERROR;
	if (rc == SQLITE_ROW)
		*v = (uint64_t)sqlite3_column_int64(d->version, 0);
	if (d->version)
		sqlite3_reset(d->version);
	writer_give(d);
	return rc == SQLITE_ROW ? 0 : -EAGAIN;
}

uint64_t sqldb_commit_failures(struct sqldb *d)
{
	return __atomic_load_n(&d->commit_failures, __ATOMIC_RELAXED);
}

void sqldb_stats(struct sqldb *d, struct sqldb_stats *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&d->lock);
	out->in_txn = d->txn_open;
	pthread_mutex_unlock(&d->lock);
	out->pending = __atomic_load_n(&d->pending, __ATOMIC_RELAXED);
	out->committed = __atomic_load_n(&d->committed, __ATOMIC_RELAXED);
	out->commits = __atomic_load_n(&d->commits, __ATOMIC_RELAXED);
	out->commit_failures = __atomic_load_n(&d->commit_failures, __ATOMIC_RELAXED);
	pthread_mutex_lock(&d->pool_lock);
	out->readers = d->readers;
	out->stalled_reads = d->stalled_reads;
	pthread_mutex_unlock(&d->pool_lock);
}

/* ---- life ------------------------------------------------------------ */

int sqldb_init(struct sqldb *d, const char *path, int busy_ms)
{
	pthread_condattr_t ca;

	memset(d, 0, sizeof(*d));
	d->txn_seq = 1;
	d->busy_ms = busy_ms;
	d->w.d = d;
	d->path = strdup(path);
	if (!d->path)
		return -ENOMEM;
	pthread_mutex_init(&d->lock, NULL);
	pthread_mutex_init(&d->batch_lock, NULL);
	pthread_mutex_init(&d->pool_lock, NULL);
	pthread_cond_init(&d->pool_cond, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->cond, &ca);
	pthread_cond_init(&d->commit_cond, &ca);
	pthread_condattr_destroy(&ca);
	return 0;
}

int sqldb_start(struct sqldb *d, sqlite3 *db, char **sql, size_t n, void (*setup)(sqlite3 *db),
		int no_readers)
{
	int err;

	d->w.db = db;
	d->sql = sql;
	d->nsql = n;
	d->setup = setup;
	d->no_readers = no_readers;
	err = conn_setup(d, &d->w);
	if (err)
		return err;
	sqlite3_busy_handler(d->w.db, busy_handler, d);
	if (pthread_create(&d->committer, NULL, committer_main, d))
		return -EAGAIN;
	d->committer_started = 1;
	return 0;
}

void sqldb_release(struct sqldb *d)
{
	struct sqldb_conn *c;
	size_t i;

	if (!d->path)
		return; /* never initialised */
	if (d->committer_started) {
		pthread_mutex_lock(&d->lock);
		d->stop = 1;
		pthread_cond_broadcast(&d->cond);
		pthread_cond_signal(&d->commit_cond);
		pthread_mutex_unlock(&d->lock);
		pthread_join(d->committer, NULL);
	}
	if (d->w.db) {
		writer_take(d);
		commit_locked(d);
		writer_give(d);
	}
	while ((c = d->free_readers)) {
		d->free_readers = c->next;
		conn_close(c);
		free(c);
	}
	sqlite3_finalize(d->version);
	for (i = 0; i < sizeof(d->control) / sizeof(d->control[0]); i++)
		sqlite3_finalize(d->control[i]);
	conn_close(&d->w);
	for (i = 0; d->sql && i < d->nsql; i++)
		free(d->sql[i]);
	free(d->sql);
	free(d->path);
	pthread_cond_destroy(&d->cond);
	pthread_cond_destroy(&d->commit_cond);
	pthread_cond_destroy(&d->pool_cond);
	pthread_mutex_destroy(&d->lock);
	pthread_mutex_destroy(&d->batch_lock);
	pthread_mutex_destroy(&d->pool_lock);
	memset(d, 0, sizeof(*d));
}
