/*
 * sqldb.c - the shared SQLite connection of sqldb.h: statements, the shared
 * write transaction, its committer thread, and durability on request.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sqldb.h"
#include "store-internal.h"

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

int sqldb_fail(struct sqldb *d, int rc, const char *what)
{
	store_set_errmsg("%s: %s", what, sqlite3_errmsg(d->db));
	log_debug("sqlite: %s: %s (rc %d)", what, sqlite3_errmsg(d->db), rc);
	return -sqldb_rc_to_errno(rc);
}

/* Prepares (once) statement id, reset and unbound; NULL with errmsg set. */
static sqlite3_stmt *stmt(struct sqldb *d, size_t id)
{
	int rc;

	if (id >= d->nsql)
		return NULL;
	if (d->stmt[id]) {
		sqlite3_reset(d->stmt[id]);
		sqlite3_clear_bindings(d->stmt[id]);
		return d->stmt[id];
	}
	rc = sqlite3_prepare_v3(d->db, d->sql[id], -1, SQLITE_PREPARE_PERSISTENT, &d->stmt[id],
				NULL);
	if (rc != SQLITE_OK) {
		store_set_errmsg("cannot prepare a query: %s", sqlite3_errmsg(d->db));
		log_error("sqlite: cannot prepare '%s': %s", d->sql[id], sqlite3_errmsg(d->db));
		d->stmt[id] = NULL;
	}
	return d->stmt[id];
}

static sqlite3_stmt *vquery(struct sqldb *d, size_t id, const char *fmt, va_list ap)
{
	sqlite3_stmt *st = stmt(d, id);
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

sqlite3_stmt *sqldb_query(struct sqldb *d, size_t id, const char *fmt, ...)
{
	sqlite3_stmt *st;
	va_list ap;

	va_start(ap, fmt);
	st = vquery(d, id, fmt, ap);
	va_end(ap);
	return st;
}

int sqldb_step_row(struct sqldb *d, sqlite3_stmt *st, const char *what)
{
	int rc;

	if (!st)
		return -EIO;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		return 1;
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : sqldb_fail(d, rc, what);
}

int sqldb_step_change(struct sqldb *d, sqlite3_stmt *st, const char *what)
{
	int rc;

	if (!st)
		return -EIO;
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? sqlite3_changes(d->db) : sqldb_fail(d, rc, what);
}

int sqldb_each_row(struct sqldb *d, sqlite3_stmt *st, const char *what, sqldb_row_fn *row,
		   void *ctx)
{
	int rc = SQLITE_DONE, err = 0;

	if (!st)
		return -EIO;
	while (!err && (rc = sqlite3_step(st)) == SQLITE_ROW)
		err = row(ctx, st);
	if (!err && rc != SQLITE_DONE)
		err = sqldb_fail(d, rc, what);
	sqlite3_reset(st);
	return err;
}

int sqldb_list(struct sqldb *d, size_t id, const char *what, sqldb_row_fn *row, void *ctx,
	       const char *fmt, ...)
{
	sqlite3_stmt *st;
	va_list ap;
	int err;

	sqldb_lock(d);
	va_start(ap, fmt);
	st = vquery(d, id, fmt, ap);
	va_end(ap);
	err = sqldb_each_row(d, st, what, row, ctx);
	pthread_mutex_unlock(&d->lock);
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

/* The statements of every write, kept prepared: parsing them anew costs
 * more than the insert of a metric point. */
static const char *const control_sql[SQLDB_CONTROL_COUNT] = {
	"BEGIN IMMEDIATE",
	"SAVEPOINT op",
	"RELEASE op",
	"ROLLBACK TO op",
};

static int control(struct sqldb *d, enum sqldb_control c)
{
	int rc;

	if (!d->control[c]) {
		rc = sqlite3_prepare_v3(d->db, control_sql[c], -1, SQLITE_PREPARE_PERSISTENT,
					&d->control[c], NULL);
		if (rc != SQLITE_OK) {
			d->control[c] = NULL;
			return sqldb_fail(d, rc, control_sql[c]);
		}
	}
	rc = sqlite3_step(d->control[c]);
	sqlite3_reset(d->control[c]);
	return rc == SQLITE_DONE ? 0 : sqldb_fail(d, rc, control_sql[c]);
}

/* Commits the open transaction, if any.  Called with lock held. */
/* Ends the open transaction, committed (commit) or rolled back; lock held. */
static void end_txn(struct sqldb *d, int commit)
{
	int rc = SQLITE_OK;

	if (commit)
		rc = sqlite3_exec(d->db, "COMMIT", NULL, NULL, NULL);
	if (!commit || rc != SQLITE_OK) {
		log_error("cannot commit to '%s': %s; %llu metric points and the writes with "
			  "them are lost",
			  d->path, commit ? sqlite3_errmsg(d->db) : store_errmsg(),
			  (unsigned long long)d->pending);
		sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
		d->failed_seq = d->txn_seq;
		d->commit_failures++;
	} else {
		d->commits++;
		d->committed += d->pending;
	}
	d->pending = 0;
	d->in_txn = 0;
	d->txn_seq++;
	/* What was rolled back may have been seen: readers must look again. */
	d->writes++;
}

/*
 * Runs the caller's deferred work (queued metric points) into the open
 * transaction.  If it fails, the whole transaction is lost, as a failed
 * commit would lose it: its writers learn it at close (SPEC §4).
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

/* Commits the open transaction, if any.  Called with lock held. */
static void commit_locked(struct sqldb *d)
{
	if (d->in_txn && !flush_locked(d))
		end_txn(d, 1);
}

void sqldb_lock(struct sqldb *d)
{
	pthread_mutex_lock(&d->lock);
	/* A read sees what was queued: this mount's writes show at once. */
	flush_locked(d);
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

int sqldb_write_begin(struct sqldb *d, int queue)
{
	int err = 0;

	pthread_mutex_lock(&d->lock);
	if (!queue)
		err = flush_locked(d);
	if (!err && !d->in_txn) {
		err = control(d, SQLDB_BEGIN);
		if (err)
			return err;
		d->in_txn = 1;
		clock_gettime(CLOCK_MONOTONIC, &d->txn_began);
		pthread_cond_signal(&d->wake);
	}
	d->savepoint = !err && !queue;
	return err ? err : d->savepoint ? control(d, SQLDB_SAVEPOINT) : 0;
}

int sqldb_write_end(struct sqldb *d, int err)
{
	if (d->in_txn && d->savepoint) {
		if (err) {
			control(d, SQLDB_ROLLBACK_TO);
			control(d, SQLDB_RELEASE);
		} else {
			err = control(d, SQLDB_RELEASE);
		}
	}
	if (!err)
		d->writes++;
	d->savepoint = 0;
	pthread_mutex_unlock(&d->lock);
	return err;
}

static void *committer_main(void *arg)
{
	struct sqldb *d = arg;

	pthread_mutex_lock(&d->lock);
	while (!d->stop) {
		struct timespec now, due;

		if (!d->in_txn) {
			pthread_cond_wait(&d->wake, &d->lock);
			continue;
		}
		due = d->txn_began;
		due.tv_nsec += SQLDB_COMMIT_MS * 1000000L;
		if (due.tv_nsec >= 1000000000L) {
			due.tv_sec++;
			due.tv_nsec -= 1000000000L;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec > due.tv_sec ||
		    (now.tv_sec == due.tv_sec && now.tv_nsec >= due.tv_nsec))
			commit_locked(d);
		else
			pthread_cond_timedwait(&d->wake, &d->lock, &due);
	}
	pthread_mutex_unlock(&d->lock);
	return NULL;
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

uint64_t sqldb_token(struct sqldb *d)
{
	uint64_t seq;

	pthread_mutex_lock(&d->lock);
	seq = d->txn_seq;
	pthread_mutex_unlock(&d->lock);
	return seq;
}

int sqldb_sync(struct sqldb *d, uint64_t token, int durable)
{
	int err = 0;

	pthread_mutex_lock(&d->lock);
	commit_locked(d);
	if (token && d->failed_seq >= token) {
		store_set_errmsg("a commit to '%s' failed; see the daemon log", d->path);
		err = -EIO;
	}
	if (!err && durable) {
		err = sync_files(d);
		if (err)
			store_set_errmsg("cannot fsync '%s': %s", d->path, strerror(-err));
	}
	pthread_mutex_unlock(&d->lock);
	return err;
}

uint64_t sqldb_version(struct sqldb *d, uint64_t *others)
{
	uint64_t v = 0;
	int rc;

	pthread_mutex_lock(&d->lock);
	if (!d->version) {
		rc = sqlite3_prepare_v3(d->db, "PRAGMA data_version", -1, SQLITE_PREPARE_PERSISTENT,
					&d->version, NULL);
		if (rc != SQLITE_OK)
			d->version = NULL;
	}
	/* data_version moves when another connection commits; writes, ours. */
	if (d->version && sqlite3_step(d->version) == SQLITE_ROW)
		v = (uint64_t)sqlite3_column_int64(d->version, 0) << 32;
	if (d->version)
		sqlite3_reset(d->version);
	if (others)
		*others = v >> 32;
	v += d->writes;
	pthread_mutex_unlock(&d->lock);
	return v;
}

int sqldb_init(struct sqldb *d, const char *path)
{
	pthread_condattr_t ca;

	memset(d, 0, sizeof(*d));
	d->txn_seq = 1;
	d->path = strdup(path);
	if (!d->path)
		return -ENOMEM;
	pthread_mutex_init(&d->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->wake, &ca);
	pthread_condattr_destroy(&ca);
	return 0;
}

int sqldb_start(struct sqldb *d, char **sql, size_t n)
{
	d->sql = sql;
	d->nsql = n;
	d->stmt = calloc(n, sizeof(*d->stmt));
	if (!d->stmt)
		return -ENOMEM;
	if (pthread_create(&d->committer, NULL, committer_main, d))
		return -EAGAIN;
	d->committer_started = 1;
	return 0;
}

void sqldb_release(struct sqldb *d)
{
	size_t i;

	if (!d->path)
		return; /* never initialised */
	if (d->committer_started) {
		pthread_mutex_lock(&d->lock);
		d->stop = 1;
		pthread_cond_signal(&d->wake);
		pthread_mutex_unlock(&d->lock);
		pthread_join(d->committer, NULL);
	}
	pthread_mutex_lock(&d->lock);
	if (d->db)
		commit_locked(d);
	pthread_mutex_unlock(&d->lock);
	for (i = 0; d->stmt && i < d->nsql; i++)
		sqlite3_finalize(d->stmt[i]);
	for (i = 0; d->sql && i < d->nsql; i++)
		free(d->sql[i]);
	sqlite3_finalize(d->version);
	for (i = 0; i < SQLDB_CONTROL_COUNT; i++)
		sqlite3_finalize(d->control[i]);
	if (d->db && sqlite3_close(d->db) != SQLITE_OK)
		log_error("cannot close '%s': %s", d->path, sqlite3_errmsg(d->db));
	free(d->stmt);
	free(d->sql);
	free(d->path);
	pthread_cond_destroy(&d->wake);
	pthread_mutex_destroy(&d->lock);
	memset(d, 0, sizeof(*d));
}
