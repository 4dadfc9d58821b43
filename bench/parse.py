#!/usr/bin/env python3
"""parse.py - what parsing the files programs write under artifacts/ costs (mlflowfs(1),
PARSED FILES): the same copies into a run's artifacts/ on the local store, with parsing on
and with -o noparse, side by side.

Each round, for each configuration, a fresh copy of one database MLflow created and a fresh
mount:

  cp model.bin    `cp SRC artifacts/model.bin` of --mib MiB of random bytes: a name that is
                  not recognised, so the target is a ratio within 5% (issue 8)
  cp metrics.csv  `cp` of a Lightning-style table of --csv-mib MiB (step,epoch,loss,acc):
                  recognised, so with parsing on every cell is a point (logged, committed
                  at close); with noparse only stored

`sync` runs before each timed cp.  After the cps the stored files are compared with their
sources (cmp) and, with parsing on, the metrics table must hold every point of the CSV once
(counted while still mounted), so a daemon that drops points fails instead of looking fast.
See README.md.
"""

import argparse
import os
import shutil
import sqlite3
import sys

import benchlib as bl

EXPERIMENT, RUN = "parse", "r"
RATIO_TARGET = 1.05  # parse on / noparse, seconds: at most
CHUNK = 1 << 20


def make_source(path, mib):
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(CHUNK))


def make_csv(path, mib):
    """Rows until mib MiB; returns the number of rows (each gives 3 points: epoch, loss,
    acc, at its step)."""
    rows = 0
    with open(path, "w", newline="") as f:
        f.write("epoch,step,loss,acc\r\n")
        while f.tell() < mib * CHUNK:
            f.write(f"{rows // 1000},{rows},{1.0 / (rows + 1)!r},{rows * 1e-7!r}\r\n")
            rows += 1
    return rows


def count_points(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT COUNT(*) FROM metrics").fetchone()[0]
    finally:
        con.close()


class Parse:
    def __init__(self, args, work, mlflowfs):
        self.args, self.work, self.mlflowfs = args, work, mlflowfs
        self.res = bl.Results()
        self.errors = {}
        self.seq = 0
        self.src = work.sub("model.bin")
        self.csv = work.sub("metrics.csv")

    def fail(self, name, msg):
        self.errors.setdefault(name, msg)
        print(" FAILED", end="", flush=True)

    def cp(self, name, src, dst):
        bl.run_cmd(["sync"])
        secs, r = bl.timed(["cp", src, dst], capture_output=True, text=True, timeout=1800)
        if r.returncode != 0:
            raise RuntimeError(f"cp '{src}' '{dst}' failed: {r.stderr.strip()}")
        self.res.add(name, secs, "s")

    def round(self, tag, options):
        self.seq += 1
        folder = self.work.sub(f"db{self.seq}")
        os.makedirs(folder)
        db = os.path.join(folder, "mlflow.db")
        shutil.copyfile(self.template, db)
        mnt = self.work.sub("mnt")
        log = self.work.sub(f"mlflowfs-{self.seq}.log")
        argv = [self.mlflowfs, "-f", *options, "sqlite:///" + db, mnt]
        try:
            with bl.Mount(argv, mnt, os.path.join(mnt, "experiments"), log):
                art = os.path.join(mnt, "experiments", EXPERIMENT, RUN, "artifacts")
                bl.mkdir_p(art)
                self.cp(f"{tag} cp model.bin", self.src, os.path.join(art, "model.bin"))
                self.cp(f"{tag} cp metrics.csv", self.csv, os.path.join(art, "metrics.csv"))
                for name, src in (("model.bin", self.src), ("metrics.csv", self.csv)):
                    r = bl.run_cmd(["cmp", "-s", src, os.path.join(art, name)], timeout=600)
                    if r.returncode != 0:
                        raise RuntimeError(f"the stored {name} differs from its source")
                want = 3 * self.rows if not options else 0
                got = count_points(db)
                if got != want:
                    raise RuntimeError(f"{got} points in the store, expected {want}")
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def run(self):
        a = self.args
        print(f"\npreparing: {a.mib:,} MiB of random bytes, a {a.csv_mib} MiB table, "
              "MLflow's template database ...", flush=True)
        make_source(self.src, a.mib)
        self.rows = make_csv(self.csv, a.csv_mib)
        self.template = self.work.sub("template", "mlflow.db")
        os.makedirs(os.path.dirname(self.template))
        bl.peer("template", self.template, EXPERIMENT, RUN)
        bl.run_rounds(a.reps, [("parse on", lambda: self.round("on", [])),
                               ("noparse", lambda: self.round("noparse", ["-o", "noparse"]))],
                      self.fail)
        self.report()

    def report(self):
        res, a = self.res, self.args
        res.table(f"cp into a run's artifacts/ (seconds): {a.mib:,} MiB model.bin, "
                  f"a {a.csv_mib} MiB table of {self.rows:,} rows ({3 * self.rows:,} points)",
                  ["on cp model.bin", "noparse cp model.bin", "on cp metrics.csv",
                   "noparse cp metrics.csv"])
        print("\nratios (median / median; seconds, so lower is better)")
        bl.ratio_line("cp model.bin: parse on / noparse", "on cp model.bin",
                      "noparse cp model.bin", RATIO_TARGET, higher_is_better=False, results=res)
        bl.ratio_line("cp metrics.csv: parse on / noparse", "on cp metrics.csv",
                      "noparse cp metrics.csv", results=res)
        if res.has("on cp metrics.csv"):
            print(f"  {'points logged from the table, per second':<44} "
                  f"{3 * self.rows / res.median('on cp metrics.csv'):>10,.0f}")
        bl.report_failures(self.errors, self.mlflowfs, self.reason)
        if a.json:
            bl.write_json(a.json, res, self.errors, mib=a.mib, csv_mib=a.csv_mib, reps=a.reps)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mib", type=int, default=1024, help="size of model.bin, MiB (1024)")
    p.add_argument("--csv-mib", type=int, default=8, help="size of metrics.csv, MiB (8)")
    p.add_argument("--reps", type=int, default=3, help="rounds (3)")
    p.add_argument("--json", help="also write the raw samples to this file")
    args = p.parse_args()
    bl.install_signal_handlers()
    bl.check_mlflow_py()
    mlflowfs, reason = bl.start("parsing files in artifacts/: cp with parsing on and off",
                                args.reps)
    if not mlflowfs:
        bl.report_failures({}, mlflowfs, reason)
        return 0
    with bl.Workdir("mlflowfs-bench-parse-") as work:
        p = Parse(args, work, mlflowfs)
        p.reason = reason
        p.run()
    return 1 if p.errors else 0


if __name__ == "__main__":
    sys.exit(main())
