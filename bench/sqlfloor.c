/*
 * sqlfloor.c - the SQLite floor of the buffered ingest benchmark: the least work any
 * program must do to put N metric points into MLflow's schema.
 *
 *     sqlfloor DB RUN_UUID N [BATCH [KEY]]
 *
 * DB is a database MLflow created, holding the run RUN_UUID. Each point is one INSERT into
 * metrics plus the latest_metrics upsert MLflow does (replace when (step, timestamp, value)
 * is greater), in the same transaction; BATCH (default 1000) points per transaction, WAL,
 * synchronous=NORMAL, foreign keys on as MLflow has them. Point i has step i, value
 * 1/(1+i/1000) as %.6g prints it (the same points writer.c writes) and the time of day in
 * ms. The time runs from the first BEGIN to the last COMMIT. Prints key=value results.
 */
#define _POSIX_C_SOURCE 200809L

#include <sqlite3.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char sqlfloor_insert_sql[] =
	"INSERT INTO metrics (key, value, timestamp, step, run_uuid, is_nan)"
	" VALUES (?1, ?2, ?3, ?4, ?5, 0) ON CONFLICT DO NOTHING";

static const char sqlfloor_latest_sql[] =
	"INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid)"
	" VALUES (?1, ?2, ?3, ?4, 0, ?5)"
	" ON CONFLICT (key, run_uuid) DO UPDATE SET value = excluded.value,"
	" timestamp = excluded.timestamp, step = excluded.step, is_nan = excluded.is_nan"
	" WHERE (excluded.step, excluded.timestamp, excluded.value)"
	" > (latest_metrics.step, latest_metrics.timestamp, latest_metrics.value)";

static double sqlfloor_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static sqlite3_int64 sqlfloor_now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (sqlite3_int64)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void sqlfloor_die(sqlite3 *db, const char *what)
{
	fprintf(stderr, "sqlfloor: %s failed: %s\n", what, sqlite3_errmsg(db));
	exit(1);
}

static void sqlfloor_exec(sqlite3 *db, const char *sql)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		sqlfloor_die(db, sql);
}

static sqlite3_stmt *sqlfloor_prepare(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		sqlfloor_die(db, sql);
	return st;
}

static void sqlfloor_bind_point(sqlite3_stmt *st, const char *key, double value, sqlite3_int64 ts,
				long step, const char *run)
{
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_double(st, 2, value);
	sqlite3_bind_int64(st, 3, ts);
	sqlite3_bind_int64(st, 4, step);
	sqlite3_bind_text(st, 5, run, -1, SQLITE_STATIC);
}

static int sqlfloor_usage(void)
{
	fprintf(stderr, "usage: sqlfloor DB RUN_UUID N [BATCH [KEY]]\n");
	return 2;
}

int main(int argc, char **argv)
{
	const char *run, *key = "loss";
	sqlite3_stmt *ins, *latest, *check;
	long n, batch = 1000, i;
	double t0, secs;
	sqlite3 *db;
	char *end;

	if (argc < 4 || argc > 6)
		return sqlfloor_usage();
	run = argv[2];
	n = strtol(argv[3], &end, 10);
	if (*end || n < 1)
		return sqlfloor_usage();
	if (argc >= 5) {
		batch = strtol(argv[4], &end, 10);
		if (*end || batch < 1)
			return sqlfloor_usage();
	}
	if (argc == 6)
		key = argv[5];

	if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
		sqlfloor_die(db, "open");
	sqlite3_busy_timeout(db, 20000);
	sqlfloor_exec(db, "PRAGMA journal_mode = WAL");
	sqlfloor_exec(db, "PRAGMA synchronous = NORMAL");
	sqlfloor_exec(db, "PRAGMA foreign_keys = ON");

	check = sqlfloor_prepare(db, "SELECT 1 FROM runs WHERE run_uuid = ?1"
				     " AND lifecycle_stage = 'active'");
	sqlite3_bind_text(check, 1, run, -1, SQLITE_STATIC);
	if (sqlite3_step(check) != SQLITE_ROW) {
		fprintf(stderr, "sqlfloor: no active run '%s' in '%s'\n", run, argv[1]);
		return 1;
	}
	sqlite3_finalize(check);
	ins = sqlfloor_prepare(db, sqlfloor_insert_sql);
	latest = sqlfloor_prepare(db, sqlfloor_latest_sql);

	t0 = sqlfloor_now();
	for (i = 0; i < n; i++) {
		sqlite3_int64 ts = sqlfloor_now_ms();
		char text[32];
		double v;

		snprintf(text, sizeof(text), "%.6g", 1.0 / (1.0 + (double)i / 1000.0));
		v = strtod(text, NULL);
		if (i % batch == 0)
			sqlfloor_exec(db, "BEGIN IMMEDIATE");
		sqlfloor_bind_point(ins, key, v, ts, i, run);
		if (sqlite3_step(ins) != SQLITE_DONE)
			sqlfloor_die(db, "insert into metrics");
		sqlite3_reset(ins);
		if (sqlite3_changes(db) > 0) { /* a duplicate point changes nothing */
			sqlfloor_bind_point(latest, key, v, ts, i, run);
			if (sqlite3_step(latest) != SQLITE_DONE)
				sqlfloor_die(db, "upsert into latest_metrics");
			sqlite3_reset(latest);
		}
		if (i % batch == batch - 1 || i == n - 1)
			sqlfloor_exec(db, "COMMIT");
	}
	secs = sqlfloor_now() - t0;

	printf("sqlfloor n=%ld batch=%ld seconds=%.6f rows_per_s=%.0f\n", n, batch, secs,
	       (double)n / secs);
	sqlite3_finalize(ins);
	sqlite3_finalize(latest);
	sqlite3_close(db);
	return 0;
}
