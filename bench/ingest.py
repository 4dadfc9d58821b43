#!/usr/bin/env python3
"""ingest.py - how fast a program's metric points reach the store through mlflowfs.

(a) one write() per line: writer.c appends N "STEP VALUE" lines to metrics/loss on
    mlflowfs, the same on noopfs (the floor FUSE itself imposes), and MLflow's
    MlflowClient.log_metric loop (timed over fewer calls, rate extrapolated).
(b) buffered: the same N points in 64 KiB writes on mlflowfs, against the SQLite floor
    (sqlfloor.c: 1,000 rows per transaction) and MlflowClient.log_batch, 1,000 per call.

With --baseline BIN, another build of the daemon (an earlier release) runs the same
line and chunk writes in the same rounds, so "no worse than before" is a ratio of one run.

Every database starts as a fresh copy of one MLflow created. After each mlflowfs run the
points are counted in the metrics table (and latest_metrics checked) while still mounted,
so a run that drops data fails instead of looking fast. Run by hand; see README.md.
"""

import argparse
import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys

import benchlib as bl

EXPERIMENT, RUN, KEY = "ingest", "r", "loss"


def count_points(db, n):
    """Raises unless run RUN of EXPERIMENT holds exactly n points of KEY, the latest step n-1."""
    con = sqlite3.connect(db, timeout=30)
    try:
        rows = con.execute(
            "SELECT r.run_uuid FROM runs r JOIN experiments e"
            " ON e.experiment_id = r.experiment_id"
            " WHERE e.name = ? AND r.name = ? AND r.lifecycle_stage = 'active'",
            (EXPERIMENT, RUN),
        ).fetchall()
        if len(rows) != 1:
            raise RuntimeError(f"expected 1 run '{RUN}' in '{EXPERIMENT}', found {len(rows)}")
        run = rows[0][0]
        got = con.execute(
            "SELECT count(*) FROM metrics WHERE run_uuid = ? AND key = ?", (run, KEY)
        ).fetchone()[0]
        latest = con.execute(
            "SELECT step, value FROM latest_metrics WHERE run_uuid = ? AND key = ?", (run, KEY)
        ).fetchone()
    finally:
        con.close()
    if got != n:
        raise RuntimeError(f"{got} points in the metrics table, expected {n}")
    want = (n - 1, bl.point_value(n - 1))
    if latest is None or (latest[0], latest[1]) != want:
        raise RuntimeError(f"latest_metrics holds {latest}, expected (step, value) {want}")


class Ingest:
    def __init__(self, args, work, mlflowfs):
        self.args, self.work, self.mlflowfs = args, work, mlflowfs
        self.res = bl.Results()
        self.errors = {}
        self.writer = bl.helper("writer")
        self.sqlfloor = bl.helper("sqlfloor")
        self.seq = 0

    def fresh_db(self, template):
        self.seq += 1
        db = self.work.sub(f"db{self.seq}", "mlflow.db")
        os.makedirs(os.path.dirname(db))
        shutil.copyfile(template, db)
        return db

    def drop_db(self, db):
        shutil.rmtree(os.path.dirname(db), ignore_errors=True)

    def record_error(self, name, err):
        self.errors.setdefault(name, str(err).strip())
        print(" FAILED", end="", flush=True)

    def mlflowfs_run(self, name, mode, binary=None):
        db = self.fresh_db(self.base_db)
        mnt = self.work.sub("mnt-mlflowfs")
        log = self.work.sub(f"mlflowfs-{self.seq}.log")
        try:
            with bl.mount_mlflowfs(binary or self.mlflowfs, db, mnt, log):
                run_dir = os.path.join(mnt, "experiments", EXPERIMENT, RUN)
                bl.mkdir_p(run_dir)  # mkdir E, mkdir E/R: experiment and run
                path = os.path.join(run_dir, "metrics", KEY)
                out = bl.run_kv([self.writer, mode, path, str(self.args.n)])
                count_points(db, self.args.n)  # close() returned: the points must be there
            self.res.add(name, out["points_per_s"], "pts/s")
        except Exception as e:  # recorded, reported, and the ratio fails
            self.record_error(name, f"{e} (daemon log: {log})")
        finally:
            if not self.errors.get(name):
                self.drop_db(db)

    def noop_run(self, name, mnt, mode):
        path = os.path.join(mnt, "experiments", EXPERIMENT, RUN, "metrics", KEY)
        out = bl.run_kv([self.writer, mode, path, str(self.args.n)])
        self.res.add(name, out["points_per_s"], "pts/s")

    def log_metric_run(self, name):
        db = self.fresh_db(self.base_db)
        out = bl.peer("log_metric", db, self.args.log_metric_n)
        note = f"timed {self.args.log_metric_n:,} calls, rate extrapolated to {self.args.n:,}"
        self.res.add(name, out["points_per_s"], "pts/s", note)
        self.drop_db(db)

    def log_batch_run(self, name):
        db = self.fresh_db(self.base_db)
        n = self.args.log_batch_n
        out = bl.peer("log_batch", db, n, self.args.batch)
        note = f"{self.args.batch:,} per call"
        if n != self.args.n:
            note += f", timed {n:,} points, rate extrapolated to {self.args.n:,}"
        self.res.add(name, out["points_per_s"], "pts/s", note)
        self.drop_db(db)

    def sqlfloor_run(self, name):
        db = self.fresh_db(self.run_db)
        out = bl.run_kv(
            [self.sqlfloor, db, self.run_id, str(self.args.n), str(self.args.batch), KEY]
        )
        self.res.add(name, out["rows_per_s"], "pts/s", f"{self.args.batch:,} rows per txn")
        self.drop_db(db)

    def run(self):
        a = self.args
        print("\npreparing: MLflow creates the template databases ...", flush=True)
        self.base_db = self.work.sub("template", "mlflow.db")
        os.makedirs(os.path.dirname(self.base_db))
        bl.peer("template", self.base_db)
        self.run_db = self.work.sub("template-run", "mlflow.db")
        os.makedirs(os.path.dirname(self.run_db))
        self.run_id = bl.peer("template", self.run_db, EXPERIMENT, RUN)["run_id"]

        with contextlib.ExitStack() as stack:
            noop = {}
            for dio in (False, True):
                mnt = self.work.sub("mnt-noop-dio" if dio else "mnt-noop")
                log = self.work.sub("noopfs-dio.log" if dio else "noopfs.log")
                stack.enter_context(bl.mount_noopfs(mnt, log, ndir=0, direct_io=dio))
                bl.mkdir_p(os.path.join(mnt, "experiments", EXPERIMENT, RUN, "metrics"))
                noop[dio] = mnt

            configs = []
            base = a.baseline
            if self.mlflowfs:
                configs.append(("mlflowfs line", lambda n: self.mlflowfs_run(n, "line")))
            if self.mlflowfs and base:
                configs.append(("baseline line", lambda n: self.mlflowfs_run(n, "line", base)))
            configs += [
                ("noopfs line", lambda n: self.noop_run(n, noop[False], "line")),
                ("noopfs line, direct_io", lambda n: self.noop_run(n, noop[True], "line")),
                ("MLflow log_metric", self.log_metric_run),
            ]
            if self.mlflowfs:
                configs.append(("mlflowfs chunk", lambda n: self.mlflowfs_run(n, "chunk")))
            if self.mlflowfs and base:
                configs.append(("baseline chunk", lambda n: self.mlflowfs_run(n, "chunk", base)))
            configs += [
                ("sqlfloor", self.sqlfloor_run),
                ("MLflow log_batch", self.log_batch_run),
                ("noopfs chunk", lambda n: self.noop_run(n, noop[False], "chunk")),
            ]
            for rep in range(a.reps):
                print(f"round {rep + 1}/{a.reps}:", end="", flush=True)
                for name, fn in configs:
                    print(f" [{name}]", end="", flush=True)
                    fn(name)
                print(flush=True)
        self.report()

    def report(self):
        a, res = self.args, self.res
        base = ["baseline line"] if a.baseline else []
        res.table(
            f"(a) one write() per line, {a.n:,} points (points/s)",
            ["mlflowfs line", *base, "noopfs line", "noopfs line, direct_io", "MLflow log_metric"],
        )
        base = ["baseline chunk"] if a.baseline else []
        res.table(
            f"(b) buffered, {a.n:,} points in 64 KiB writes (points/s)",
            ["mlflowfs chunk", *base, "sqlfloor", "MLflow log_batch", "noopfs chunk"],
        )
        print("\ntime for the whole set at the median rate:")
        for name in res.samples:
            print(f"  {name:<26} {a.n / res.median(name):8.2f} s")
        print("\nratios (median / median):")
        for label, num, den, target in (
            # mlflowfs opens its files with direct_io: that noopfs row is like for like.
            ("mlflowfs line / noopfs line, direct_io", "mlflowfs line", "noopfs line, direct_io",
             0.7),
            ("mlflowfs line / MLflow log_metric", "mlflowfs line", "MLflow log_metric", 30),
            ("mlflowfs chunk / sqlfloor", "mlflowfs chunk", "sqlfloor", 0.5),
            ("mlflowfs chunk / MLflow log_batch", "mlflowfs chunk", "MLflow log_batch", 2),
            ("(info) mlflowfs line / noopfs line", "mlflowfs line", "noopfs line", None),
            ("(info) noopfs line / MLflow log_metric", "noopfs line", "MLflow log_metric", None),
            ("(info) sqlfloor / MLflow log_batch", "sqlfloor", "MLflow log_batch", None),
        ) + ((
            # Rates: at least 1 means no slower than the earlier build.
            ("mlflowfs line / baseline line", "mlflowfs line", "baseline line", 1),
            ("mlflowfs chunk / baseline chunk", "mlflowfs chunk", "baseline chunk", 1),
            ("(info) baseline line / noopfs line, direct_io", "baseline line",
             "noopfs line, direct_io", None),
        ) if a.baseline else ()):
            if num in self.errors or den in self.errors:
                print(f"  {label:<44} {'FAIL':>10}   {num if num in self.errors else den} failed, see below")
            else:
                bl.ratio_line(label, num, den, target, results=res)
        bl.report_failures(self.errors, self.mlflowfs, self.mlflowfs_reason)
        if a.json:
            bl.write_json(a.json, res, self.errors, n=a.n, reps=a.reps)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=100000, help="points per run (100000)")
    p.add_argument("--reps", type=int, default=3, help="rounds, 3 to 5 (3)")
    p.add_argument("--log-metric-n", type=int, default=2000,
                   help="log_metric calls timed (2000)")
    p.add_argument("--log-batch-n", type=int, help="points timed through log_batch (= --n)")
    p.add_argument("--batch", type=int, default=1000, help="log_batch / sqlfloor batch (1000)")
    p.add_argument("--json", help="also write the raw samples to this file")
    p.add_argument("--baseline", help="another mlflowfs binary to measure in the same rounds")
    args = p.parse_args()
    if args.baseline and not os.access(args.baseline, os.X_OK):
        bl.die(f"--baseline {args.baseline}: not an executable")
    args.log_batch_n = args.log_batch_n or args.n
    bl.install_signal_handlers()
    bl.check_mlflow_py()
    mlflowfs, reason = bl.start("ingest: points from a program into the store", args.reps)
    with bl.Workdir("mlflowfs-bench-ingest-") as work:
        ing = Ingest(args, work, mlflowfs)
        ing.mlflowfs_reason = reason
        ing.run()
    return 1 if ing.errors else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except subprocess.CalledProcessError as e:
        bl.die(str(e))
