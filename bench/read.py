#!/usr/bin/env python3
"""read.py - inspecting a large experiment with Unix tools on mlflowfs, against MLflow.

An experiment of 10,000 runs x (5 params, 5 metrics) is written straight into a database
MLflow created, row for row as MLflow writes them, and MLflow's search_runs must then see
all of it. Each round, on a fresh mount: `ls -l` of the experiment folder (1st and 2nd after
mounting), the best-run pipeline `grep -H . */metrics/acc | sort -t: -k2 -g | tail -1` run
in the experiment folder, the daemon's VmRSS/VmHWM after it, and `diff -r` of two runs
(3 times, each after the kernel's caches expired), and `cat .runs.csv` (the runs table,
made anew), whose best acc must be search_runs'.
Peers: `mlflow.search_runs(experiment_ids=[...])` (pandas) answering the same question in a
fresh process; `ls -l` of a 10,000-entry folder on noopfs (the FUSE floor for listing); the
same tree as plain files on tmpfs, and that tmpfs tree served through passfs (the FUSE floor
for reading files), where the same commands run in the same order as on mlflowfs. Targets:
the pipeline and diff -r within 1.5x passfs' time, `cat .runs.csv` within 2x search_runs'
(2nd call), the daemon's VmHWM under 30 MB. The pipeline's and the table's answers must
equal search_runs'. See README.md.
"""

import argparse
import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time

import benchlib as bl

PIPELINE = "grep -H . */metrics/acc | sort -t: -k2 -g | tail -1"
MEMORY_TARGET_MB = 30
PASSFS_TARGET = 1.5  # mlflowfs / passfs, times: at most
TABLE_TARGET = 2.0  # cat .runs.csv / search_runs, times: at most
ENV = dict(os.environ, LC_ALL="C")


def build_mirror(db, experiment_id, root):
    """The experiment as plain files under root: the folders and files mlflowfs shows for
    a run (run_id, status, run.json, params/, metrics/, history/, tags/); the plots of the
    pair diff -r compares are added by Read.copy_plots."""
    con = sqlite3.connect(db)
    runs = con.execute(
        "SELECT run_uuid, name, status, start_time, end_time, artifact_uri FROM runs"
        " WHERE experiment_id = ? AND lifecycle_stage = 'active'", (int(experiment_id),)
    ).fetchall()
    data = {r[0]: {"params": {}, "metrics": {}, "history": {}, "tags": {}} for r in runs}
    for key, value, rid in con.execute("SELECT key, value, run_uuid FROM params"):
        if rid in data:
            data[rid]["params"][key] = value
    for key, value, rid in con.execute("SELECT key, value, run_uuid FROM tags"):
        if rid in data:
            data[rid]["tags"][key] = value
    for key, value, ts, step, rid in con.execute(
            "SELECT key, value, timestamp, step, run_uuid FROM latest_metrics"):
        if rid in data:
            data[rid]["metrics"][key] = value
            data[rid]["history"][key] = f"{step} {value!r} {ts}\n"
    con.close()
    os.makedirs(root)
    for rid, name, status, start, end, art in runs:
        d = data[rid]
        run = os.path.join(root, name)
        os.mkdir(run)
        files = {"run_id": rid + "\n", "status": status + "\n"}
        files["run.json"] = json.dumps(
            {"info": {"run_id": rid, "run_name": name, "status": status, "start_time": start,
                      "end_time": end, "artifact_uri": art, "lifecycle_stage": "active",
                      "experiment_id": str(experiment_id)},
             "params": d["params"], "metrics": d["metrics"], "tags": d["tags"]},
            sort_keys=True) + "\n"
        for sub in ("params", "metrics", "history", "tags"):
            os.mkdir(os.path.join(run, sub))
            for key, value in d[sub].items():
                text = value if sub == "history" else (
                    f"{value!r}\n" if sub == "metrics" else f"{value}\n")
                files[os.path.join(sub, key)] = text
        for rel, text in files.items():
            with open(os.path.join(run, rel), "w") as f:
                f.write(text)
    return len(runs)


def parse_best(line):
    """'run-00042/metrics/acc:0.97' -> ('run-00042', 0.97)"""
    path, _, value = line.strip().partition(":")
    return path.split("/metrics/acc")[0], float(value)


class Read:
    def __init__(self, args, work, shm, mlflowfs):
        self.args, self.work, self.shm, self.mlflowfs = args, work, shm, mlflowfs
        self.res = bl.Results()
        self.errors = {}
        self.answers = {}

    def fail(self, name, msg):
        self.errors.setdefault(name, msg)
        print(" FAILED", end="", flush=True)

    def ls(self, name, path):
        secs, r = bl.timed(["ls", "-l", path], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, env=ENV)
        if r.returncode != 0:
            raise RuntimeError(f"ls -l '{path}' failed: {r.stderr.decode().strip()}")
        self.res.add(name, secs * 1e3, "ms")

    def pipeline(self, name, exp_dir):
        secs, r = bl.timed(["bash", "-c", PIPELINE], cwd=exp_dir, capture_output=True,
                           text=True, env=ENV)
        if r.returncode != 0 or not r.stdout.strip():
            raise RuntimeError(f"the pipeline failed ({r.returncode}): {r.stderr.strip()}")
        self.res.add(name, secs * 1e3, "ms")
        self.answers[name] = parse_best(r.stdout)
        if self.answers[name] != self.expected:
            raise RuntimeError(f"the pipeline says {self.answers[name]}, "
                               f"expected {self.expected}")

    def diff(self, name, exp_dir, fuse=True):
        """--diff-reps timed diffs; on FUSE each after the kernel's 1 s entry and attribute
        caches expired, so each is as cold as the first (a single diff of a few ms is
        too noisy a sample on a shared machine)."""
        a, b = self.info["pair"]
        for _ in range(self.args.diff_reps):
            if fuse:
                time.sleep(1.1)
            secs, r = bl.timed(["diff", "-r", a, b], cwd=exp_dir, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, env=ENV)
            if r.returncode not in (0, 1):
                raise RuntimeError(f"diff -r {a} {b} failed: {r.stderr.decode().strip()}")
            self.res.add(name, secs * 1e3, "ms")

    def table(self, name, exp_dir):
        """`cat .runs.csv` after the kept rendering expired (1 s), so the table is made
        anew; its best acc must be search_runs'."""
        time.sleep(1.1)
        path = os.path.join(exp_dir, ".runs.csv")
        secs, r = bl.timed(["cat", path], capture_output=True, text=True, env=ENV)
        if r.returncode != 0:
            raise RuntimeError(f"cat {path} failed: {r.stderr.strip()}")
        self.res.add(name, secs * 1e3, "ms")
        rows = list(csv.DictReader(io.StringIO(r.stdout, newline="")))
        if len(rows) != self.nruns:
            raise RuntimeError(f"{path} has {len(rows)} rows, expected {self.nruns}")
        best = max(rows, key=lambda row: float(row["metrics.acc"]))
        self.answers[name] = (best["run"], float(best["metrics.acc"]))
        if self.answers[name] != self.expected:
            raise RuntimeError(f"{path} says {self.answers[name]}, expected {self.expected}")

    def copy_plots(self):
        """The pair diff -r compares gets, in the mirror, what the mount shows beside the
        files build_mirror writes: each metric's plot (history/<key>.svg, drawn by the
        daemon, so copied from a mount) and the empty models/ folder, so that diff -r reads
        the same files on every configuration."""
        mnt = self.work.sub("mnt-plots")
        with bl.mount_mlflowfs(self.mlflowfs, self.db, mnt, self.work.sub("plots.log")):
            exp = os.path.join(mnt, "experiments", self.info["experiment_name"])
            for run in self.info["pair"]:
                hist = os.path.join(exp, run, "history")
                for name in os.listdir(hist):
                    if name.endswith(".svg"):
                        shutil.copyfile(os.path.join(hist, name),
                                        os.path.join(self.mirror, run, "history", name))
                os.makedirs(os.path.join(self.mirror, run, "models"), exist_ok=True)

    def mlflowfs_round(self):
        mnt = self.work.sub("mnt-mlflowfs")
        log = self.work.sub("mlflowfs.log")
        try:
            with bl.mount_mlflowfs(self.mlflowfs, self.db, mnt, log) as m:
                exp = os.path.join(mnt, "experiments", self.info["experiment_name"])
                self.ls("mlflowfs ls -l, 1st", exp)
                self.ls("mlflowfs ls -l, 2nd", exp)
                self.pipeline("mlflowfs grep pipeline", exp)
                mem = bl.proc_status(m.pid)
                self.res.add("mlflowfs VmRSS after grep", mem["VmRSS"] / 1024, "MB")
                self.res.add("mlflowfs VmHWM after grep", mem["VmHWM"] / 1024, "MB")
                self.diff("mlflowfs diff -r", exp)
                self.table("mlflowfs cat .runs.csv", exp)
                r = bl.run_cmd(["ls", "-A", exp], capture_output=True, text=True, env=ENV)
                names = set(r.stdout.split("\n"))
                missing = self.nruns - len(names & self.run_names)
                if missing:
                    raise RuntimeError(f"{missing} runs missing from the listing")
        except Exception as e:
            self.fail("mlflowfs", f"{e} (daemon log: {log})")

    def passfs_round(self, direct_io=False):
        """The tmpfs tree through passfs, on a fresh mount: the commands of mlflowfs_round,
        in the same order, so the kernel's caches are in the same state for each."""
        tag = "passfs direct_io" if direct_io else "passfs"
        mnt = self.work.sub("mnt-" + tag.replace(" ", "-"))
        name = self.info["experiment_name"]
        with bl.mount_passfs(self.shm.path, mnt, self.work.sub(tag.replace(" ", "-") + ".log"),
                             name, direct_io=direct_io):
            exp = os.path.join(mnt, name)
            self.ls(f"{tag} ls -l, 1st", exp)
            self.ls(f"{tag} ls -l, 2nd", exp)
            self.pipeline(f"{tag} grep pipeline", exp)
            self.diff(f"{tag} diff -r", exp)

    def noopfs_round(self):
        mnt = self.work.sub("mnt-noop")
        with bl.mount_noopfs(mnt, self.work.sub("noopfs.log"), ndir=self.nruns):
            big = os.path.join(mnt, "d")
            self.ls("noopfs ls -l, 1st", big)
            self.ls("noopfs ls -l, 2nd", big)

    def tmpfs_round(self):
        self.ls("tmpfs ls -l", self.mirror)
        self.pipeline("tmpfs grep pipeline", self.mirror)
        self.diff("tmpfs diff -r", self.mirror, fuse=False)

    def search_round(self):
        out = bl.peer("search_runs", self.db, self.info["experiment_id"])
        self.res.add("search_runs, 1st call", out["first_seconds"] * 1e3, "ms",
                     "fresh process: includes the store's start-up")
        self.res.add("search_runs, 2nd call", out["second_seconds"] * 1e3, "ms")
        self.res.add("search_runs order_by acc, max 1", out["order_by_seconds"] * 1e3, "ms",
                     "(info) sorted by the store")
        best = (out["best"]["run"], out["best"]["acc"])
        self.answers["search_runs"] = best
        if out["rows"] != self.nruns or best != self.expected:
            self.fail("search_runs", f"{out['rows']} rows, best {best}, expected "
                      f"{self.nruns} rows, best {self.expected}")

    def run(self):
        a = self.args
        print(f"\npreparing: {a.runs:,} runs in a database MLflow created ...", flush=True)
        self.db = self.work.sub("db", "mlflow.db")
        os.makedirs(os.path.dirname(self.db))
        bl.peer("template", self.db)
        self.info = bl.peer("populate", self.db, a.runs, a.seed)
        self.nruns = self.info["nruns"]
        self.expected = (self.info["best"]["run"], self.info["best"]["acc"])
        self.run_names = {"run-%05d" % i for i in range(self.nruns)}
        print(f"  inserted in {self.info['insert_seconds']:.2f} s; MLflow's search_runs sees "
              f"all {self.nruns:,}; best acc: {self.expected[0]} {self.expected[1]!r}")
        self.mirror = os.path.join(self.shm.path, self.info["experiment_name"])
        t0 = time.perf_counter()
        build_mirror(self.db, self.info["experiment_id"], self.mirror)
        print(f"  the same tree as plain files on tmpfs: {time.perf_counter() - t0:.2f} s",
              flush=True)
        if self.mlflowfs:
            self.copy_plots()

        configs = []
        if self.mlflowfs:
            configs.append(("mlflowfs", self.mlflowfs_round))
        configs += [("passfs", self.passfs_round), ("noopfs", self.noopfs_round),
                    ("tmpfs", self.tmpfs_round), ("search_runs", self.search_round)]
        if a.passfs_dio:
            configs.insert(-3, ("passfs direct_io", lambda: self.passfs_round(True)))
        for rep in range(a.reps):
            print(f"round {rep + 1}/{a.reps}:", end="", flush=True)
            for name, fn in configs:
                print(f" [{name}]", end="", flush=True)
                fn()
            print(flush=True)
        self.report()

    def report(self):
        res = self.res
        res.table(f"ls -l of the experiment folder, {self.nruns:,} entries (ms)", [
            "mlflowfs ls -l, 1st", "mlflowfs ls -l, 2nd", "passfs ls -l, 1st",
            "passfs ls -l, 2nd", "passfs direct_io ls -l, 1st", "passfs direct_io ls -l, 2nd",
            "noopfs ls -l, 1st", "noopfs ls -l, 2nd", "tmpfs ls -l"])
        res.table(f"best run: `{PIPELINE}` (ms)", [
            "mlflowfs grep pipeline", "passfs grep pipeline", "passfs direct_io grep pipeline",
            "tmpfs grep pipeline", "search_runs, 1st call", "search_runs, 2nd call",
            "search_runs order_by acc, max 1"])
        res.table("the runs table: `cat .runs.csv` against mlflow.search_runs (ms)", [
            "mlflowfs cat .runs.csv", "search_runs, 1st call", "search_runs, 2nd call"])
        res.table(f"diff -r {' '.join(self.info['pair'])}, {self.args.diff_reps} a round (ms)",
                  ["mlflowfs diff -r", "passfs diff -r", "passfs direct_io diff -r",
                   "tmpfs diff -r"])
        res.table("mlflowfs daemon memory after the grep pipeline (MB)",
                  ["mlflowfs VmRSS after grep", "mlflowfs VmHWM after grep"])

        print("\nratios (median / median; times, so lower is better)")
        for label, num, den in (
            ("mlflowfs grep pipeline / passfs", "mlflowfs grep pipeline",
             "passfs grep pipeline"),
            ("mlflowfs diff -r / passfs", "mlflowfs diff -r", "passfs diff -r"),
        ):
            if "mlflowfs" in self.errors:
                print(f"  {label:<44} {'FAIL':>10}   mlflowfs failed, see below")
            else:
                bl.ratio_line(label, num, den, target=PASSFS_TARGET, higher_is_better=False,
                              results=res)
        if "mlflowfs" in self.errors:
            print(f"  {'mlflowfs .runs.csv / search_runs 2nd':<44} {'FAIL':>10}")
        else:
            bl.ratio_line("mlflowfs .runs.csv / search_runs 2nd", "mlflowfs cat .runs.csv",
                          "search_runs, 2nd call", target=TABLE_TARGET,
                          higher_is_better=False, results=res)
        for label, num, den in (
            ("mlflowfs ls -l 1st / passfs ls -l 1st", "mlflowfs ls -l, 1st",
             "passfs ls -l, 1st"),
            ("mlflowfs ls -l 2nd / passfs ls -l 2nd", "mlflowfs ls -l, 2nd",
             "passfs ls -l, 2nd"),
            ("mlflowfs ls -l 1st / noopfs ls -l 1st", "mlflowfs ls -l, 1st",
             "noopfs ls -l, 1st"),
            ("mlflowfs ls -l 2nd / noopfs ls -l 2nd", "mlflowfs ls -l, 2nd",
             "noopfs ls -l, 2nd"),
            ("mlflowfs ls -l 1st / tmpfs ls -l", "mlflowfs ls -l, 1st", "tmpfs ls -l"),
            ("mlflowfs grep pipeline / search_runs 1st", "mlflowfs grep pipeline",
             "search_runs, 1st call"),
            ("mlflowfs grep pipeline / search_runs 2nd", "mlflowfs grep pipeline",
             "search_runs, 2nd call"),
            ("mlflowfs grep pipeline / tmpfs", "mlflowfs grep pipeline", "tmpfs grep pipeline"),
            ("mlflowfs diff -r / tmpfs", "mlflowfs diff -r", "tmpfs diff -r"),
            ("(info) passfs grep pipeline / tmpfs", "passfs grep pipeline",
             "tmpfs grep pipeline"),
            ("(info) passfs direct_io / passfs, pipeline", "passfs direct_io grep pipeline",
             "passfs grep pipeline"),
            ("(info) passfs direct_io / passfs, diff -r", "passfs direct_io diff -r",
             "passfs diff -r"),
            ("(info) noopfs ls -l 1st / tmpfs", "noopfs ls -l, 1st", "tmpfs ls -l"),
            ("(info) tmpfs grep pipeline / search_runs 1st", "tmpfs grep pipeline",
             "search_runs, 1st call"),
        ):
            if num.startswith("mlflowfs") and "mlflowfs" in self.errors:
                print(f"  {label:<44} {'FAIL':>10}   mlflowfs failed, see below")
            elif res.has(num) or num.startswith("mlflowfs"):
                bl.ratio_line(label, num, den, results=res)

        hwm = "mlflowfs VmHWM after grep"
        if res.has(hwm):
            worst = max(res.samples[hwm])
            verdict = bl.verdict_mark(worst < MEMORY_TARGET_MB)
            print(f"  {'mlflowfs VmHWM after grep, worst round':<44} {worst:>10.1f}   "
                  f"target < {MEMORY_TARGET_MB} MB {verdict}")
        else:
            print(f"  {'mlflowfs VmHWM after grep':<44} {'pending':>10}   "
                  f"target < {MEMORY_TARGET_MB} MB")

        print("\nbest run: expected (from the data) "
              f"{self.expected[0]} {self.expected[1]!r}")
        for name in ("mlflowfs grep pipeline", "mlflowfs cat .runs.csv", "passfs grep pipeline",
                     "passfs direct_io grep pipeline", "tmpfs grep pipeline", "search_runs"):
            if name.startswith("passfs direct_io") and not self.args.passfs_dio:
                continue
            if name in self.answers:
                got = self.answers[name]
                same = "same" if got == self.expected else "DIFFERENT"
                print(f"  {name:<30} {got[0]} {got[1]!r}  {same}")
            elif name.startswith("mlflowfs"):
                print(f"  {name:<30} {'FAIL' if 'mlflowfs' in self.errors else 'pending'}")
        bl.report_failures(self.errors, self.mlflowfs, self.mlflowfs_reason)
        if self.args.json:
            bl.write_json(self.args.json, res, self.errors, runs=self.nruns,
                          reps=self.args.reps, answers=self.answers)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=10000, help="runs in the experiment (10000)")
    p.add_argument("--reps", type=int, default=3, help="rounds, 3 to 5 (3)")
    p.add_argument("--seed", type=int, default=1, help="seed of the generated data (1)")
    p.add_argument("--diff-reps", type=int, default=3, help="diff -r timed a round (3)")
    p.add_argument("--passfs-dio", action="store_true",
                   help="(info) also through passfs with direct_io, as mlflowfs opens files")
    p.add_argument("--json", help="also write the raw samples to this file")
    args = p.parse_args()
    bl.install_signal_handlers()
    bl.check_mlflow_py()
    bl.helper("noopfs")
    bl.helper("passfs")
    mlflowfs, reason = bl.start(
        f"read: {args.runs:,} runs x (5 params, 5 metrics) with Unix tools", args.reps)
    with bl.Workdir("mlflowfs-bench-read-") as work, \
            bl.Workdir("mlflowfs-bench-read-", base="/dev/shm") as shm:
        rd = Read(args, work, shm, mlflowfs)
        rd.mlflowfs_reason = reason
        rd.run()
    return 1 if rd.errors else 0


if __name__ == "__main__":
    sys.exit(main())
