#!/usr/bin/env python3
"""remote_read.py - reading a large experiment and a long history from an MLflow tracking
server: Unix tools on mlflowfs mounted on the server, against MLflow's client, same server.

One `mlflow server` (as remote.py's) is started for the whole run.  Made through it once,
untimed: an experiment of --runs runs "run-%05d" x (3 params, 2 metrics: loss, acc), made
with MlflowClient.create_run + log_batch from a pool of threads, and one run with a history
of --points points of `loss` (log_batch, 1,000 a call).  Each round:

  mlflowfs ls -l      `ls -l` of the experiment folder on a fresh mount (cold), then again
                      (warm, within cache_ttl)
  mlflowfs grep       `grep -H . */metrics/loss | sort -t: -k2 -g | head -1` in the
                      experiment folder: the run with the lowest loss; fresh mount, cold and
                      warm
  mlflowfs cat        `cat runs/RUN_ID/history/loss` on a fresh mount, cold and warm
  client search_runs  MlflowClient.search_runs page by page (1,000 a page), every run with
                      its data, then the lowest loss: 1st call of a fresh process (cold; its
                      start-up paid before) and 2nd call (warm)
  pandas search_runs  mlflow.search_runs (a DataFrame), the same question, 1st and 2nd
  get_metric_history  MlflowClient.get_metric_history of the long history, 1st and 2nd

The timed mounts use -o cache_ttl=--cache-ttl (60: the warm command runs within it); one more
fresh mount a round (information) runs the grep pipeline twice with the default cache_ttl
(2 s).  Every answer is checked: the listing names every run, the pipeline's run and loss
equal the data's, cat prints every point exactly.  The mount's request count
(.mlflowfs/status) is recorded for each command.  Targets (issue 6): cold, mlflowfs within
1.5x the client's time for the same answer; warm, faster than the client.  See README.md.
"""

import argparse
import json
import os
import re
import shutil
import sys

import benchlib as bl

PIPELINE = "grep -H . */metrics/loss | sort -t: -k2 -g | head -1"
ENV = dict(os.environ, LC_ALL="C")
COLD_TARGET = 1.5  # mlflowfs / client, times, cold: at most
WARM_TARGET = 1.0  # warm: faster


def status_counts(mnt):
    """The counters of the mount's .mlflowfs/status, as {name: int}."""
    with open(os.path.join(mnt, ".mlflowfs", "status")) as f:
        text = f.read()
    return {k: int(v) for k, v in re.findall(r"^([a-z_]+): (\d+)$", text, re.M)}


class RemoteRead:
    def __init__(self, args, work, server, mlflowfs):
        self.args, self.work, self.server, self.mlflowfs = args, work, server, mlflowfs
        self.res = bl.Results()
        self.errors = {}
        self.requests = {}  # command -> the mount's requests for it, per round
        self.answers = {}

    def fail(self, name, msg):
        self.errors.setdefault(name, msg)
        print(" FAILED", end="", flush=True)

    def mount(self, tag, options):
        mnt = self.work.sub("mnt-" + tag)
        return bl.mount_remote(self.mlflowfs, self.server.url, mnt,
                               self.work.sub(f"mlflowfs-{tag}.log"), options)

    def timed(self, name, m, argv, unit_ms=True, **kw):
        """Times argv (on mount m), records its time and the mount's requests; returns its
        result."""
        before = status_counts(m.mnt)
        secs, r = bl.timed(argv, env=ENV, capture_output=True, text=True, **kw)
        after = status_counts(m.mnt)
        if r.returncode != 0:
            raise RuntimeError(f"'{' '.join(argv)}' failed ({r.returncode}): "
                               f"{r.stderr.strip()[-500:]}")
        self.res.add(name, secs * 1e3, "ms")
        self.requests.setdefault(name, []).append(after["requests"] - before["requests"])
        return r

    def check_listing(self, out):
        names = {line.split()[-1] for line in out.splitlines() if not line.startswith("total")}
        if names != self.run_names:
            raise RuntimeError(f"ls -l shows {len(names)} names, {len(names & self.run_names)}"
                               f" of the {len(self.run_names)} runs")

    def check_best(self, name, out):
        path, _, value = out.strip().partition(":")
        got = (path.split("/")[0], float(value) if value else None)
        self.answers[name] = got
        if got != self.expected:
            raise RuntimeError(f"the pipeline says {got}, expected {self.expected}")

    def check_history(self, out):
        lines = out.splitlines()
        if len(lines) != self.args.points:
            raise RuntimeError(f"cat printed {len(lines)} lines, expected {self.args.points}")
        for i, line in enumerate(lines):
            step, value, _ = line.split()
            if int(step) != i or float(value) != bl.point_value(i):
                raise RuntimeError(f"cat's line {i + 1} reads '{line}'")

    def ls_round(self, tag="ls", options=None):
        options = options or [f"cache_ttl={self.args.cache_ttl}"]
        with self.mount(tag, options) as m:
            exp = os.path.join(m.mnt, "experiments", self.info["experiment_name"])
            for when in ("cold", "warm"):
                r = self.timed(f"mlflowfs ls -l, {when}", m, ["ls", "-l", exp])
                self.check_listing(r.stdout)
            self.res.add("mlflowfs VmHWM after ls -l", bl.proc_status(m.pid)["VmHWM"] / 1024,
                         "MB")

    def grep_round(self, tag="grep", options=None, label=""):
        options = options or [f"cache_ttl={self.args.cache_ttl}"]
        with self.mount(tag, options) as m:
            exp = os.path.join(m.mnt, "experiments", self.info["experiment_name"])
            for when in ("cold", "warm"):
                name = f"mlflowfs grep{label}, {when}"
                r = self.timed(name, m, ["bash", "-c", PIPELINE], cwd=exp)
                self.check_best(name, r.stdout)
            self.res.add(f"mlflowfs VmHWM after grep{label}",
                         bl.proc_status(m.pid)["VmHWM"] / 1024, "MB")

    def cat_round(self):
        with self.mount("cat", [f"cache_ttl={self.args.cache_ttl}"]) as m:
            path = os.path.join(m.mnt, "runs", self.hist_run, "history", "loss")
            for when in ("cold", "warm"):
                r = self.timed(f"mlflowfs cat history, {when}", m, ["cat", path])
                self.check_history(r.stdout)
            self.res.add("mlflowfs VmHWM after cat", bl.proc_status(m.pid)["VmHWM"] / 1024,
                         "MB")

    def search_round(self, how):
        out = bl.peer("search_server", self.server.url, self.info["experiment_id"], how)
        self.res.add(f"{how} search_runs, cold", out["first_seconds"] * 1e3, "ms")
        self.res.add(f"{how} search_runs, warm", out["second_seconds"] * 1e3, "ms")
        got = (out["best"]["run"], out["best"]["loss"])
        self.answers[f"{how} search_runs"] = got
        if out["rows"] != self.nruns or got != self.expected:
            raise RuntimeError(f"{out['rows']} rows, best {got}; expected {self.nruns} rows, "
                               f"best {self.expected}")

    def history_round(self):
        out = bl.peer("metric_history", self.server.url, self.hist_run, "loss",
                      self.args.points, 2)
        self.res.add("get_metric_history, cold", out["all_seconds"][0] * 1e3, "ms")
        self.res.add("get_metric_history, warm", out["all_seconds"][1] * 1e3, "ms")

    def prepare(self):
        a = self.args
        if a.reuse:
            with open(os.path.join(a.reuse, "prepared.json")) as f:
                prepared = json.load(f)
            self.info, self.hist_run = prepared["info"], prepared["hist_run"]
            print(f"\nreusing the server database of {a.reuse}: {self.info['nruns']:,} runs, "
                  f"a history of {prepared['points']:,} points", flush=True)
            if (self.info["nruns"], prepared["points"]) != (a.runs, a.points):
                bl.die("--runs and --points must be those of the reused database")
        else:
            print(f"\npreparing through the server: {a.runs:,} runs ...", flush=True)
            self.info = bl.peer("populate_server", self.server.url, "read-runs", a.runs,
                                a.seed, a.threads, timeout=3600)
        self.nruns = self.info["nruns"]
        best = self.info["best"]
        self.expected = (best["run"], best["loss"])
        self.run_names = {"run-%05d" % i for i in range(self.nruns)}
        if a.reuse:
            return
        print(f"  made in {self.info['seconds']:.1f} s with {a.threads} threads "
              f"({self.nruns / self.info['seconds']:.0f} runs/s); lowest loss: "
              f"{best['run']} {best['loss']!r}", flush=True)
        h = bl.peer("log_batch", self.server.url, a.points, 1000)
        self.hist_run = h["run_id"]
        print(f"  a history of {a.points:,} points: run {self.hist_run}, logged in "
              f"{h['seconds']:.1f} s", flush=True)
        with open(self.work.sub("prepared.json"), "w") as f:
            json.dump({"info": self.info, "hist_run": self.hist_run, "points": a.points}, f)

    def run(self):
        self.prepare()
        configs = []
        if self.mlflowfs:
            # Named as their measures begin: a failure fails the ratios of those.
            configs += [("mlflowfs ls -l", self.ls_round), ("mlflowfs grep", self.grep_round),
                        ("mlflowfs cat history", self.cat_round),
                        ("mlflowfs grep (cache_ttl 2)",
                         lambda: self.grep_round("grep-ttl2", ["cache_ttl=2"],
                                                 " (cache_ttl 2)"))]
        configs += [("client search_runs", lambda: self.search_round("client")),
                    ("pandas search_runs", lambda: self.search_round("pandas")),
                    ("get_metric_history", self.history_round)]
        bl.run_rounds(self.args.reps, configs, self.fail)
        self.report()

    def report(self):
        res, a = self.res, self.args
        res.table(f"every run of an experiment of {self.nruns:,} (ms); mlflowfs with "
                  f"cache_ttl={a.cache_ttl}", [
                      "mlflowfs ls -l, cold", "mlflowfs ls -l, warm",
                      "client search_runs, cold", "client search_runs, warm",
                      "pandas search_runs, cold", "pandas search_runs, warm"])
        res.table(f"the run with the lowest loss: `{PIPELINE}` (ms)", [
            "mlflowfs grep, cold", "mlflowfs grep, warm",
            "mlflowfs grep (cache_ttl 2), cold", "mlflowfs grep (cache_ttl 2), warm",
            "client search_runs, cold", "client search_runs, warm",
            "pandas search_runs, cold", "pandas search_runs, warm"])
        res.table(f"a history of {a.points:,} points (ms)", [
            "mlflowfs cat history, cold", "mlflowfs cat history, warm",
            "get_metric_history, cold", "get_metric_history, warm"])
        res.table("mlflowfs daemon memory (MB)", [
            "mlflowfs VmHWM after ls -l", "mlflowfs VmHWM after grep",
            "mlflowfs VmHWM after grep (cache_ttl 2)", "mlflowfs VmHWM after cat"])
        if self.requests:
            print("\nmlflowfs HTTP requests per command (.mlflowfs/status), each round:")
            for name, counts in self.requests.items():
                print(f"  {name:<40} {', '.join(map(str, counts))}")

        print("\nratios (median / median; times, so lower is better)")
        lines = []
        for when, target in (("cold", COLD_TARGET), ("warm", WARM_TARGET)):
            for fs, what in (("ls -l", "ls -l"), ("grep", "grep")):
                for peer in ("client", "pandas"):
                    lines.append((f"mlflowfs {what} / {peer} search_runs, {when}",
                                  f"mlflowfs {fs}, {when}", f"{peer} search_runs, {when}",
                                  target))
            lines.append((f"mlflowfs cat / get_metric_history, {when}",
                          f"mlflowfs cat history, {when}", f"get_metric_history, {when}",
                          target))
        for when in ("cold", "warm"):
            lines.append((f"(info) grep, cache_ttl 2 / client, {when}",
                          f"mlflowfs grep (cache_ttl 2), {when}",
                          f"client search_runs, {when}", None))
        for label, num, den, target in lines:
            failed = [n for n in self.errors if num.startswith(n) or den.startswith(n)]
            if failed:
                print(f"  {label:<50} {'FAIL':>10}   {failed[0]} failed, see below")
            else:
                bl.ratio_line(label, num, den, target, higher_is_better=False, results=res)

        print(f"\nlowest loss: expected (from the data) {self.expected[0]} "
              f"{self.expected[1]!r}")
        for name, got in self.answers.items():
            same = "same" if got == self.expected else "DIFFERENT"
            print(f"  {name:<36} {got[0]} {got[1]!r}  {same}")
        bl.report_failures(self.errors, self.mlflowfs, self.mlflowfs_reason)
        if a.json:
            bl.write_json(a.json, res, self.errors, runs=self.nruns, points=a.points,
                          reps=a.reps, cache_ttl=a.cache_ttl, requests=self.requests,
                          answers=self.answers)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=10000, help="runs in the experiment (10000)")
    p.add_argument("--points", type=int, default=100000, help="points of the history (100000)")
    p.add_argument("--reps", type=int, default=3, help="rounds (3)")
    p.add_argument("--seed", type=int, default=1, help="seed of the generated data (1)")
    p.add_argument("--threads", type=int, default=16,
                   help="threads that make the runs through the server (16)")
    p.add_argument("--cache-ttl", type=int, default=60,
                   help="cache_ttl of the timed mounts, seconds (60)")
    p.add_argument("--reuse", metavar="DIR",
                   help="start the server on a copy of the database a run kept (KEEP=1) in "
                   "its work folder DIR, instead of making the runs again")
    p.add_argument("--json", help="also write the raw samples to this file")
    args = p.parse_args()
    bl.install_signal_handlers()
    bl.check_mlflow_py()
    mlflowfs, reason = bl.start(
        f"remote read: {args.runs:,} runs x (3 params, 2 metrics) and a history of "
        f"{args.points:,} points on a tracking server", args.reps)
    with bl.Workdir("mlflowfs-bench-rread-") as work:
        if args.reuse:
            shutil.copy(os.path.join(args.reuse, "server.db"), work.sub("server.db"))
        with bl.MlflowServer(work) as server:
            rd = RemoteRead(args, work, server, mlflowfs)
            rd.mlflowfs_reason = reason
            rd.run()
    return 1 if rd.errors else 0


if __name__ == "__main__":
    sys.exit(main())
