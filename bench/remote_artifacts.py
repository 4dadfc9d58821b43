#!/usr/bin/env python3
"""remote_artifacts.py - a large artifact into and out of a tracking server's artifact store:
`cp` on mlflowfs mounted on the server, against MLflow's client, same server, same file.

One `mlflow server` (as remote.py's: --serve-artifacts, its artifact destination in the work
folder) is started for the whole run; the source file (--mib MiB of random bytes) is made
once in the same work folder, on the same disk.  Each round:

  mlflowfs cp in    `cp SRC experiments/E/r/artifacts/big.bin` on a fresh mount (the run made
                    with mkdir, untimed); timed until cp returned, so with the upload that
                    close() makes
  mlflowfs cp out   `cp .../artifacts/big.bin DST` on another fresh mount (nothing of the
                    file on this machine but the server's copy)
  MLflow log_artifact       MlflowClient.log_artifact of SRC into a new run (fresh process)
  MLflow download_artifacts MlflowClient.download_artifacts of it to DST (fresh process)

`sync` runs before each timed command (so no one pays for another's write-back).  Every copy
is compared with SRC (cmp: the server's stored file after each upload, DST after each
download) and then deleted.  The daemon's VmHWM is read after each cp; the daemon keeps its
temporary files in the work folder (TMPDIR).  Targets (issue 6): mlflowfs at least 0.8x the
client's throughput each way, the daemon's VmHWM under 50 MB.  See README.md.
"""

import argparse
import json
import os
import sys
import uuid

import benchlib as bl

THROUGHPUT_TARGET = 0.8  # mlflowfs / MLflow client, MiB/s: at least
MEMORY_TARGET_MB = 50
CHUNK = 1 << 20


def make_source(path, mib):
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(CHUNK))


def server_file(server_dir, artifact_uri, name):
    """Where the server keeps artifact name of a run whose artifact URI is artifact_uri
    (mlflow-artifacts:/<experiment>/<run>/artifacts)."""
    prefix = "mlflow-artifacts:"
    if not artifact_uri.startswith(prefix):
        raise RuntimeError(f"unexpected artifact URI '{artifact_uri}'")
    return os.path.join(server_dir, artifact_uri[len(prefix):].lstrip("/"), name)


def same(a, b):
    r = bl.run_cmd(["cmp", "-s", a, b], timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"'{b}' differs from '{a}'")


def remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class RemoteArtifacts:
    def __init__(self, args, work, server, mlflowfs):
        self.args, self.work, self.server, self.mlflowfs = args, work, server, mlflowfs
        self.res = bl.Results()
        self.errors = {}
        self.src = work.sub("source.bin")
        self.dst = work.sub("copy.bin")
        self.tmpdir = work.sub("daemon-tmp")
        self.server_dir = work.sub("artifacts")  # MlflowServer's --artifacts-destination
        os.makedirs(self.tmpdir)

    def fail(self, name, msg):
        self.errors.setdefault(name, msg)
        print(" FAILED", end="", flush=True)

    def mount(self, tag):
        return bl.mount_remote(self.mlflowfs, self.server.url, self.work.sub("mnt-" + tag),
                               self.work.sub(f"mlflowfs-{tag}.log"),
                               env={"TMPDIR": self.tmpdir})

    def add_rate(self, name, secs):
        self.res.add(name, self.args.mib / secs, "MiB/s")

    def cp(self, name, m, src, dst):
        bl.run_cmd(["sync"])
        secs, r = bl.timed(["cp", src, dst], capture_output=True, text=True, timeout=1800)
        if r.returncode != 0:
            raise RuntimeError(f"cp '{src}' '{dst}' failed: {r.stderr.strip()}")
        self.add_rate(name, secs)
        self.res.add(f"{name} VmHWM", bl.proc_status(m.pid)["VmHWM"] / 1024, "MB")

    def mlflowfs_round(self):
        stored = None
        try:
            exp = f"art-{uuid.uuid4().hex[:8]}"
            with self.mount("in") as m:
                run = os.path.join(m.mnt, "experiments", exp, "r")
                bl.mkdir_p(run)
                with open(os.path.join(run, "run.json")) as f:
                    art_uri = json.load(f)["info"]["artifact_uri"]
                self.cp("mlflowfs cp in", m, self.src, os.path.join(run, "artifacts", "big.bin"))
            stored = server_file(self.server_dir, art_uri, "big.bin")
            same(self.src, stored)
            with self.mount("out") as m:
                run = os.path.join(m.mnt, "experiments", exp, "r")
                self.cp("mlflowfs cp out", m, os.path.join(run, "artifacts", "big.bin"),
                        self.dst)
            same(self.src, self.dst)
            left = os.listdir(self.tmpdir)
            if left:
                raise RuntimeError(f"the daemon left {len(left)} files in its TMPDIR")
        finally:
            remove(self.dst)
            if stored:
                remove(stored)

    def mlflow_round(self):
        stored = None
        try:
            bl.run_cmd(["sync"])
            out = bl.peer("log_artifact", self.server.url, self.src)
            self.add_rate("MLflow log_artifact", out["seconds"])
            stored = server_file(self.server_dir, out["artifact_uri"], "source.bin")
            same(self.src, stored)
            bl.run_cmd(["sync"])
            os.makedirs(self.work.sub("dl"), exist_ok=True)
            got = bl.peer("download_artifact", self.server.url, out["run_id"], "source.bin",
                          self.work.sub("dl"))
            self.add_rate("MLflow download_artifacts", got["seconds"])
            same(self.src, got["path"])
            remove(got["path"])
        finally:
            if stored:
                remove(stored)

    def run(self):
        a = self.args
        print(f"\npreparing: {a.mib:,} MiB of random bytes in {self.src} ...", flush=True)
        make_source(self.src, a.mib)
        configs = []
        if self.mlflowfs:
            configs.append(("mlflowfs", self.mlflowfs_round))
        configs.append(("MLflow", self.mlflow_round))
        bl.run_rounds(a.reps, configs, self.fail)
        remove(self.src)
        self.report()

    def report(self):
        res, a = self.res, self.args
        res.table(f"a file of {a.mib:,} MiB through the server's artifact API (MiB/s)", [
            "mlflowfs cp in", "MLflow log_artifact", "mlflowfs cp out",
            "MLflow download_artifacts"])
        res.table("mlflowfs daemon VmHWM after the cp (MB)",
                  ["mlflowfs cp in VmHWM", "mlflowfs cp out VmHWM"])
        print("\nratios (median / median; throughput, so higher is better)")
        for label, num, den in (
            ("mlflowfs cp in / MLflow log_artifact", "mlflowfs cp in", "MLflow log_artifact"),
            ("mlflowfs cp out / MLflow download_artifacts", "mlflowfs cp out",
             "MLflow download_artifacts"),
        ):
            if "mlflowfs" in self.errors or "MLflow" in self.errors:
                print(f"  {label:<50} {'FAIL':>10}   see below")
            else:
                bl.ratio_line(label, num, den, THROUGHPUT_TARGET, results=res)
        hwm = [v for n in ("mlflowfs cp in VmHWM", "mlflowfs cp out VmHWM") if res.has(n)
               for v in res.samples[n]]
        if hwm:
            print(f"  {'mlflowfs VmHWM, worst cp':<50} {max(hwm):>10.1f}   target < "
                  f"{MEMORY_TARGET_MB} MB {bl.verdict_mark(max(hwm) < MEMORY_TARGET_MB)}")
        bl.report_failures(self.errors, self.mlflowfs, self.mlflowfs_reason)
        if a.json:
            bl.write_json(a.json, res, self.errors, mib=a.mib, reps=a.reps)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mib", type=int, default=1024, help="size of the file, MiB (1024)")
    p.add_argument("--reps", type=int, default=3, help="rounds (3)")
    p.add_argument("--json", help="also write the raw samples to this file")
    args = p.parse_args()
    bl.install_signal_handlers()
    bl.check_mlflow_py()
    mlflowfs, reason = bl.start(
        f"remote artifacts: a file of {args.mib:,} MiB into and out of a tracking server",
        args.reps)
    with bl.Workdir("mlflowfs-bench-rart-") as work, bl.MlflowServer(work) as server:
        ra = RemoteArtifacts(args, work, server, mlflowfs)
        ra.mlflowfs_reason = reason
        ra.run()
    return 1 if ra.errors else 0


if __name__ == "__main__":
    sys.exit(main())
