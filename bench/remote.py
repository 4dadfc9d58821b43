#!/usr/bin/env python3
"""remote.py - metric points into a remote store: mlflowfs mounted on an MLflow tracking
server, against MLflow's own client on the same server, in the same rounds.

One `mlflow server` (the MLflow venv's, SQLite backend, --serve-artifacts, on loopback) is
started for the whole run; every configuration logs into a new experiment of it.

  mlflowfs line    writer.c appends N points to metrics/loss, one write() per line
  mlflowfs chunk   the same in 64 KiB writes
  MLflow log_metric   MlflowClient.log_metric in a loop (--log-metric-n calls, extrapolated)
  MLflow log_batch    MlflowClient.log_batch, 1,000 points a call
  MLflow async        log_metric(..., synchronous=False) in a loop, then
                      mlflow.flush_async_logging(): MLflow's default, one request a call
                      (--async-n calls, extrapolated)
  MLflow async, buffered   the same with MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS=1, which
                      merges the queued calls into requests of up to 1,000 (all N points)

After each mlflowfs run, with close() returned, MlflowClient.get_metric_history must give
every point: a run that drops data fails instead of looking fast.  Targets (issue 6):
mlflowfs line >= 20x log_metric, and >= log_batch; the ratios against asynchronous
logging are for information.  Run by hand; see README.md.
"""

import argparse
import json
import os
import uuid

import benchlib as bl


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20000, help="points per run (20000)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--log-metric-n", type=int, default=500,
                   help="log_metric calls timed, the rate extrapolated (500)")
    p.add_argument("--async-n", type=int, default=1000,
                   help="unbuffered asynchronous calls timed, the rate extrapolated (1000)")
    p.add_argument("--json", help="also write the raw samples to this file")
    a = p.parse_args()
    bl.install_signal_handlers()
    bl.check_mlflow_py()
    binary, why = bl.start("remote: metric points into an MLflow tracking server", a.reps)
    if not binary:
        bl.die(f"no mlflowfs to measure: {why}")
    res, errors = bl.Results(), {}
    writer = bl.helper("writer")
    with bl.Workdir("remote") as work, bl.MlflowServer(work) as server:
        mnt = work.sub("mnt")
        log = work.sub("mlflowfs.log")
        with bl.mount_remote(binary, server.url, mnt, log) as m:

            def mount_run(name, mode):
                run_dir = os.path.join(mnt, "experiments", f"fs-{uuid.uuid4().hex[:8]}", "r")
                bl.mkdir_p(run_dir)
                out = bl.run_kv([writer, mode, os.path.join(run_dir, "metrics", "loss"),
                                 str(a.n)])
                with open(os.path.join(run_dir, "run_id")) as f:
                    rid = f.read().strip()
                bl.peer("metric_history", server.url, rid, "loss", a.n)  # all there, exact
                res.add(name, out["points_per_s"], "pts/s")

            configs = [
                ("mlflowfs line", lambda n: mount_run(n, "line")),
                ("mlflowfs chunk", lambda n: mount_run(n, "chunk")),
                ("MLflow log_metric", lambda n: res.add(
                    n, bl.peer("log_metric", server.url, a.log_metric_n)["points_per_s"],
                    "pts/s", f"timed {a.log_metric_n:,} calls, rate extrapolated")),
                ("MLflow log_batch", lambda n: res.add(
                    n, bl.peer("log_batch", server.url, a.n, 1000)["points_per_s"], "pts/s",
                    "1,000 per call")),
                ("MLflow async", lambda n: res.add(
                    n, bl.peer("log_metric_async", server.url, a.async_n)["points_per_s"],
                    "pts/s", f"timed {a.async_n:,} calls + flush, rate extrapolated")),
                ("MLflow async, buffered", lambda n: res.add(
                    n, bl.peer("log_metric_async", server.url, a.n, 1)["points_per_s"],
                    "pts/s", "buffering 1 s; timed to the flush's return")),
            ]
            for rep in range(a.reps):
                print(f"round {rep + 1}/{a.reps}:", end="", flush=True)
                for name, fn in configs:
                    print(f" [{name}]", end="", flush=True)
                    try:
                        fn(name)
                    except Exception as e:  # reported below; the ratio fails
                        errors.setdefault(name, str(e).strip())
                        print(" FAILED", end="", flush=True)
                print()
            hwm = bl.proc_status(m.pid)["VmHWM"] / 1024
    res.table(f"{a.n:,} points into one run (points/s)",
              ["mlflowfs line", "mlflowfs chunk", "MLflow log_metric", "MLflow log_batch",
               "MLflow async", "MLflow async, buffered"])
    print(f"\nmlflowfs VmHWM at the end: {hwm:.1f} MB")
    print("\nratios (median / median):")
    for label, num, den, target in (
        ("mlflowfs line / MLflow log_metric", "mlflowfs line", "MLflow log_metric", 20),
        ("mlflowfs line / MLflow log_batch", "mlflowfs line", "MLflow log_batch", 1),
        ("mlflowfs chunk / MLflow log_batch", "mlflowfs chunk", "MLflow log_batch", 1),
        ("(info) mlflowfs line / MLflow async", "mlflowfs line", "MLflow async", None),
        ("(info) mlflowfs line / async, buffered", "mlflowfs line", "MLflow async, buffered",
         None),
        ("(info) mlflowfs chunk / async, buffered", "mlflowfs chunk",
         "MLflow async, buffered", None),
    ):
        if num in errors or den in errors:
            print(f"  {label:<44} {'FAIL':>10}")
        else:
            bl.ratio_line(label, num, den, target, results=res)
    bl.report_failures(errors, binary, why)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res.to_json(), f, indent=1)
    raise SystemExit(1 if errors else 0)


if __name__ == "__main__":
    main()
