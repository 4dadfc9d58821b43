#!/usr/bin/env python3
"""scale.py - does an operation on mlflowfs cost more when the store holds more?

(a) `mkdir` of a new run in an experiment of 20,000 runs, against one of 10 runs;
(b) a param written into an existing run (`echo v > params/p`, a new key each time), in an
    experiment of 20,000 runs against one of 10;
(c) a run with a metric of 1,000,000 points: `stat history/<key>` against the same stat at
    1,000 points (a stat must not read every point), and `cat history/<key>` against
    MlflowClient.get_metric_history on the same database, in a fresh process.

Every database is a fresh copy of one MLflow created, filled straight with SQL in MLflow's
schema (mlflow_peer.py populate_runs / populate_history), then checked through MLflow. The
two experiments of (a) and (b) live in two databases, each alone in its own, and each is
served by its own mlflowfs; a third experiment of 10 runs beside the 20,000 (information)
tells a cost per experiment from a cost per database. Each round mounts afresh; the timed
operations run in one child process that alternates between the configurations and times
each system call, so a process start-up is never timed. Every answer is checked: the new
run and the param are in the database, cat prints every point and exactly stat's size,
get_metric_history returns every point. Run by hand; see README.md.
"""

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time

import benchlib as bl

TARGET = 2.0  # every ratio of times here: at most
ENV = dict(os.environ, LC_ALL="C")

# The child that times system calls. argv[1]: a JSON list of [label, op, path], op one of
# "stat", "mkdir", "write" (open O_WRONLY|O_CREAT|O_TRUNC, write "v\n", close: what a
# shell's `echo v > path` does), "sleep" (path: seconds). A label of null is not timed.
# Prints a JSON list of [label, milliseconds, result].
CHILD = r"""
import json, os, sys, time
out = []
for label, op, path in json.loads(sys.argv[1]):
    if op == "sleep":
        time.sleep(float(path))
        continue
    t0 = time.perf_counter()
    if op == "stat":
        res = os.stat(path).st_size
    elif op == "mkdir":
        res = os.mkdir(path)
    elif op == "write":
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
        try:
            res = os.write(fd, b"v\n")
        finally:
            os.close(fd)
    else:
        sys.exit("scale.py child: unknown op " + op)
    ms = (time.perf_counter() - t0) * 1e3
    if label is not None:
        out.append([label, ms, res])
print(json.dumps(out))
"""


def syscalls(ops, timeout=None):
    """Runs ops in the timing child; returns its list of [label, ms, result]."""
    r = bl.run_cmd([sys.executable, "-c", CHILD, json.dumps(ops)], timeout,
                   capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"a timed operation failed: {r.stderr.strip()[-2000:]}")
    return json.loads(r.stdout)


def query(db, sql, args=()):
    """Read-only query of a database a daemon may hold open."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def run_rows(db, experiment, names):
    return query(
        db, "SELECT r.name, r.status, r.lifecycle_stage FROM runs r JOIN experiments e"
        " ON e.experiment_id = r.experiment_id WHERE e.name = ? AND r.name IN (%s)"
        % ",".join("?" * len(names)), (experiment, *names))


def param_value(db, experiment, run, key):
    rows = query(
        db, "SELECT p.value FROM params p JOIN runs r ON r.run_uuid = p.run_uuid"
        " JOIN experiments e ON e.experiment_id = r.experiment_id"
        " WHERE e.name = ? AND r.name = ? AND r.lifecycle_stage = 'active' AND p.key = ?",
        (experiment, run, key))
    return rows[0][0] if len(rows) == 1 else rows


class Scale:
    def __init__(self, args, work, mlflowfs):
        self.args, self.work, self.mlflowfs = args, work, mlflowfs
        self.res = bl.Results()
        self.errors = {}
        a = args
        self.many = f"{a.runs:,} runs"
        self.few = f"{a.few:,} runs"
        self.beside = f"{a.few:,} runs beside {a.runs:,}"

    def fail(self, name, msg):
        self.errors.setdefault(name, msg)
        print(" FAILED", end="", flush=True)

    def fresh_db(self, name):
        db = self.work.sub(name, "mlflow.db")
        os.makedirs(os.path.dirname(db))
        shutil.copyfile(self.template, db)
        return db

    def prepare(self):
        a = self.args
        print("\npreparing: MLflow creates the template; runs and points go in with SQL ...",
              flush=True)
        self.template = self.work.sub("template", "mlflow.db")
        os.makedirs(os.path.dirname(self.template))
        bl.peer("template", self.template)

        t0 = time.perf_counter()
        self.db_many = self.fresh_db("many")
        big = bl.peer("populate_runs", self.db_many, "scale", a.runs, a.seed)
        bl.peer("populate_runs", self.db_many, "few", a.few, a.seed + 1, "few-")
        self.db_few = self.fresh_db("few")
        bl.peer("populate_runs", self.db_few, "scale", a.few, a.seed + 2)
        print(f"  {a.runs:,} + {a.few:,} runs in one database, {a.few:,} in another: "
              f"{time.perf_counter() - t0:.1f} s with MLflow's checks (insert "
              f"{big['insert_seconds']:.2f} s)", flush=True)

        t0 = time.perf_counter()
        self.db_hist = self.fresh_db("history")
        self.hist = bl.peer("populate_history", self.db_hist, "history",
                            f"big={a.points}", f"small={a.small_points}")
        print(f"  one run with {a.points:,} and {a.small_points:,} points: "
              f"{time.perf_counter() - t0:.1f} s (insert {self.hist['insert_seconds']:.2f} s)",
              flush=True)

        # (label, database, experiment, the existing run that gets the params)
        self.targets = [
            (self.many, self.db_many, "scale", "run-%05d" % (a.runs // 2)),
            (self.few, self.db_few, "scale", "run-%05d" % (a.few // 2)),
            (self.beside, self.db_many, "few", "few-%05d" % (a.few // 2)),
        ]

    # ---- (a) and (b) ------------------------------------------------------

    def write_round(self, rep):
        """mkdir and param writes, alternating between the three configurations, each on
        its database's own fresh mount."""
        mnts = {self.db_many: self.work.sub("mnt-many"), self.db_few: self.work.sub("mnt-few")}
        logs = {self.db_many: self.work.sub("mlflowfs-many.log"),
                self.db_few: self.work.sub("mlflowfs-few.log")}
        try:
            with bl.mount_mlflowfs(self.mlflowfs, self.db_many, mnts[self.db_many],
                                   logs[self.db_many]) as m_many, \
                    bl.mount_mlflowfs(self.mlflowfs, self.db_few, mnts[self.db_few],
                                      logs[self.db_few]):
                ops, made, keys = [], [], []
                paths = {}
                for label, db, exp, run in self.targets:
                    d = os.path.join(mnts[db], "experiments", exp)
                    paths[label] = (d, os.path.join(d, run, "params"))
                    # Untimed: the kernel learns the folders before the first timed call.
                    ops += [[None, "stat", d], [None, "stat", paths[label][1]]]
                n = len(self.targets)
                for i in range(self.args.ops):
                    name = f"new-{rep}-{i}"
                    made.append(name)
                    for j in range(n):  # a different configuration first each time
                        label = self.targets[(i + j) % n][0]
                        ops.append([f"mkdir, {label}", "mkdir",
                                    os.path.join(paths[label][0], name)])
                for i in range(self.args.ops):
                    key = f"p-{rep}-{i}"
                    keys.append(key)
                    for j in range(n):
                        label = self.targets[(i + j) % n][0]
                        ops.append([f"param, {label}", "write",
                                    os.path.join(paths[label][1], key)])
                for label, ms, _ in syscalls(ops):
                    self.res.add(label, ms, "ms")
                mem = bl.proc_status(m_many.pid)
                self.res.add(f"VmHWM, {self.many}", mem["VmHWM"] / 1024, "MB",
                             "(info) after the mkdirs and param writes")

                # Still mounted: mkdir and close() have returned, so it must all be there.
                for label, db, exp, run in self.targets:
                    rows = run_rows(db, exp, made)
                    bad = [r for r in rows if r[1:] != ("RUNNING", "active")]
                    if len(rows) != len(made) or bad:
                        raise RuntimeError(f"{label}: {len(rows)} of the {len(made)} new runs "
                                           f"in the database ({bad[:3]} wrong)")
                    for key in keys:
                        got = param_value(db, exp, run, key)
                        if got != "v":
                            raise RuntimeError(f"{label}: param {run}/{key} in the database "
                                               f"is {got!r}, expected 'v'")
        except Exception as e:
            self.fail("mlflowfs writes", f"{e} (daemon logs: {', '.join(logs.values())})")

    # ---- (c) --------------------------------------------------------------

    def history_round(self):
        """stat of history/<key> at both sizes, once per pass after the kernel's 1 s entry
        and attribute caches expired, then cat of the big one, also after they expired,
        on a fresh mount."""
        a, h = self.args, self.hist
        mnt = self.work.sub("mnt-history")
        log = self.work.sub("mlflowfs-history.log")
        big_label, small_label = f"stat, {a.points:,} points", f"stat, {a.small_points:,} points"
        try:
            with bl.mount_mlflowfs(self.mlflowfs, self.db_hist, mnt, log) as m:
                hdir = os.path.join(mnt, "experiments", h["experiment_name"], h["run_name"],
                                    "history")
                big, small = os.path.join(hdir, "big"), os.path.join(hdir, "small")
                ops = []
                for i in range(a.stat_passes):
                    pair = [[big_label, "stat", big], [small_label, "stat", small]]
                    # After 1.1 s every entry has expired; the untimed stat of history/
                    # looks its folders up again, so each timed stat is one LOOKUP.
                    ops += [[None, "sleep", "1.1"], [None, "stat", hdir]]
                    ops += pair if i % 2 else pair[::-1]
                sizes = {}
                for label, ms, size in syscalls(ops):
                    self.res.add(label, ms, "ms")
                    sizes.setdefault(label, set()).add(size)

                # cat as a user types it, cold: the entry of big has expired too, so cat's
                # time includes its LOOKUP, as get_metric_history's includes finding the run.
                syscalls([[None, "sleep", "1.1"], [None, "stat", hdir]])
                secs, r = bl.timed(["cat", big], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
                if r.returncode != 0:
                    raise RuntimeError(f"cat failed: {r.stderr.decode().strip()}")
                self.res.add("mlflowfs cat history", secs * 1e3, "ms")
                mem = bl.proc_status(m.pid)
                self.res.add("VmHWM after cat", mem["VmHWM"] / 1024, "MB", "(info)")

                # The answer, untimed: every point, in order, and exactly stat's size.
                r = bl.run_cmd(["cat", big], capture_output=True)
                text = r.stdout
                lines = text.count(b"\n")
                n = a.points
                last = text[text.rfind(b"\n", 0, len(text) - 1) + 1:].split()
                want = (n - 1, bl.point_value(n - 1), h["ts0"] + n - 1)
                if r.returncode != 0 or lines != n:
                    raise RuntimeError(f"cat printed {lines:,} lines, expected {n:,}")
                if len(last) != 3 or (int(last[0]), float(last[1]), int(last[2])) != want:
                    raise RuntimeError(f"the last line is {last}, expected {want}")
                if sizes[big_label] != {len(text)}:
                    raise RuntimeError(f"stat says {sizes[big_label]} bytes, cat read "
                                       f"{len(text)}")
        except Exception as e:
            self.fail("mlflowfs history", f"{e} (daemon log: {log})")

    def sqlite_round(self):
        """(info) the sqlite3 shell printing the same rows: the floor of reading them."""
        h = self.hist
        sql = ("SELECT step, value, timestamp FROM metrics WHERE run_uuid = '%s'"
               " AND key = 'big' ORDER BY step, timestamp" % h["run_id"])
        secs, r = bl.timed(["sqlite3", "-readonly", self.db_hist, sql],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if r.returncode != 0:
            self.fail("sqlite3 shell, the same rows", f"sqlite3: {r.stderr.decode().strip()}")
        else:
            self.res.add("sqlite3 shell, the same rows", secs * 1e3, "ms", "(info)")

    def mlflow_round(self):
        h = self.hist
        try:
            out = bl.peer("metric_history", self.db_hist, h["run_id"], "big", self.args.points)
            self.res.add("MLflow get_metric_history", out["seconds"] * 1e3, "ms",
                         "fresh process, the call only")
        except Exception as e:
            self.fail("MLflow get_metric_history", str(e))

    def run(self):
        a = self.args
        self.prepare()
        configs = []
        if self.mlflowfs:
            configs += [("mlflowfs mkdir+param", lambda rep: self.write_round(rep)),
                        ("mlflowfs history", lambda rep: self.history_round())]
        configs += [("sqlite3", lambda rep: self.sqlite_round()),
                    ("MLflow get_metric_history", lambda rep: self.mlflow_round())]
        for rep in range(a.reps):
            print(f"round {rep + 1}/{a.reps}:", end="", flush=True)
            for name, fn in configs:
                print(f" [{name}]", end="", flush=True)
                fn(rep)
            print(flush=True)
        self.report()

    def report(self):
        a, res = self.args, self.res
        labels = [t[0] for t in self.targets]
        res.table(f"(a) mkdir of a new run, per call, {a.ops} a round (ms)",
                  [f"mkdir, {x}" for x in labels])
        res.table(f"(b) `echo v > params/<new key>` of an existing run, open to close, "
                  f"{a.ops} a round (ms)", [f"param, {x}" for x in labels])
        res.table(f"(c) stat history/<key>, one LOOKUP each ({a.stat_passes} a round), "
                  f"and reading {a.points:,} points (ms)",
                  [f"stat, {a.points:,} points", f"stat, {a.small_points:,} points",
                   "mlflowfs cat history", "MLflow get_metric_history",
                   "sqlite3 shell, the same rows"])
        res.table("mlflowfs daemon memory (MB)", [f"VmHWM, {self.many}", "VmHWM after cat"])

        print("\nratios (median / median; times, so lower is better)")
        for label, num, den, target, who in (
            (f"mkdir: {a.runs:,} runs / {a.few:,} runs", f"mkdir, {self.many}",
             f"mkdir, {self.few}", TARGET, "mlflowfs writes"),
            (f"param: {a.runs:,} runs / {a.few:,} runs", f"param, {self.many}",
             f"param, {self.few}", TARGET, "mlflowfs writes"),
            (f"stat history: {a.points:,} / {a.small_points:,} points",
             f"stat, {a.points:,} points", f"stat, {a.small_points:,} points", TARGET,
             "mlflowfs history"),
            ("cat history / MLflow get_metric_history", "mlflowfs cat history",
             "MLflow get_metric_history", TARGET, "mlflowfs history"),
            (f"(info) mkdir: {self.beside} / {a.few:,} runs", f"mkdir, {self.beside}",
             f"mkdir, {self.few}", None, "mlflowfs writes"),
            (f"(info) param: {self.beside} / {a.few:,} runs", f"param, {self.beside}",
             f"param, {self.few}", None, "mlflowfs writes"),
            ("(info) cat history / sqlite3 shell", "mlflowfs cat history",
             "sqlite3 shell, the same rows", None, "mlflowfs history"),
        ):
            if who in self.errors or den in self.errors:
                print(f"  {label:<48} {'FAIL':>10}   see below")
            else:
                bl.ratio_line(label, num, den, target, higher_is_better=False, results=res)
        stat_big = f"stat, {a.points:,} points"
        if res.has(stat_big):
            print(f"  {'stat history at ' + f'{a.points:,} points, median':<48} "
                  f"{res.median(stat_big):>10.3g}   ms (must not read every point)")

        bl.report_failures(self.errors, self.mlflowfs, self.mlflowfs_reason)
        if a.json:
            bl.write_json(a.json, res, self.errors, args=vars(a))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=20000, help="runs in the large experiment (20000)")
    p.add_argument("--few", type=int, default=10, help="runs in the small experiment (10)")
    p.add_argument("--ops", type=int, default=5, help="mkdirs and param writes a round (5)")
    p.add_argument("--points", type=int, default=1000000, help="points of the long metric")
    p.add_argument("--small-points", type=int, default=1000, help="points of the short one")
    p.add_argument("--stat-passes", type=int, default=3, help="stats of each a round (3)")
    p.add_argument("--reps", type=int, default=3, help="rounds, 3 to 5 (3)")
    p.add_argument("--seed", type=int, default=1, help="seed of the generated data (1)")
    p.add_argument("--json", help="also write the raw samples to this file")
    args = p.parse_args()
    if args.runs < 2 or args.few < 2 or args.ops < 1 or args.points < 2 or args.small_points < 2:
        p.error("--runs, --few, --points and --small-points need at least 2, --ops 1")
    bl.install_signal_handlers()
    bl.check_mlflow_py()
    if not shutil.which("sqlite3"):
        bl.die("the sqlite3 command is needed (the floor of reading the points)")
    mlflowfs, reason = bl.start(
        f"scale: {args.runs:,} runs against {args.few:,}; {args.points:,} points", args.reps)
    with bl.Workdir("mlflowfs-bench-scale-") as work:
        sc = Scale(args, work, mlflowfs)
        sc.mlflowfs_reason = reason
        sc.run()
    return 1 if sc.errors else 0


if __name__ == "__main__":
    sys.exit(main())
