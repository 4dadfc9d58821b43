"""The local store's database is MLflow's database (mlflowfs(1), STORES and WHEN DATA IS SAFE).

Covers, each checked with real MLflow on the same file:
- what is written through the mount reads back identically in
  mlflow.MlflowClient (params, full metric histories, tags, status and end
  time, names, artifacts), and what the MLflow client logs shows in the mount;
- `mlflow server` on a database mlflowfs created serves those runs over REST;
- MLflow and the mount writing one database at the same time lose nothing;
- older and pinned MLflow: a database mlflowfs created opens in MLflow 2.22.5
  and in the pinned 3.17.2 (which upgrades it), databases those MLflows
  created mount and read, and the schema mlflowfs creates is MLflow 2.22.5's.
"""
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import schema_compat
from conftest import db_snapshot, run_id_of, sh, write_file
from helpers_compat import (MlflowServer, create_db_with_mlflowfs,  # noqa: F401 (a fixture)
                            old_mlflow_python, run_in_mlflow, schema_differences)

pytestmark = pytest.mark.local_only(
    "about the database files of MLflow releases; test_remote.py mounts servers")

MLFLOW_318_BIN = Path(sys.executable).parent / "mlflow"
T0 = 1700000000000  # an explicit timestamp base, in ms


# --------------------------------------------------------------------------
# fixtures and small helpers


def history_of(client, run_id, key):
    """[(step, value, timestamp)] from MLflow, NaN as the string 'nan'."""
    out = []
    for m in client.get_metric_history(run_id, key):
        value = "nan" if math.isnan(m.value) else m.value
        out.append((m.step, value, m.timestamp))
    return sorted(out, key=lambda p: (p[0], p[2], str(p[1])))


def history_in_mount(path):
    """[(step, value, timestamp)] parsed from a history/ file."""
    out = []
    for line in Path(path).read_text().splitlines():
        step, value, ts = line.split(" ")
        value = "nan" if value == "nan" else float(value)
        out.append((int(step), value, int(ts)))
    return out


def wait_for(fn, timeout=2.0):
    """fn()'s first truthy result, polled; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        assert time.monotonic() < deadline, f"{fn} stayed false for {timeout}s"
        time.sleep(0.005)


def experiment_id_of(mount, name):
    return json.loads((mount.exp(name) / ".experiment.json").read_text())["experiment_id"]


def tree_bytes(root):
    """{relative path: bytes} of every file under root."""
    root = Path(root)
    return {str(p.relative_to(root)): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


# A child run in another MLflow: reads one run back in full.
READ_RUN = r"""
import json, sys
from mlflow import MlflowClient
c = MlflowClient(tracking_uri="sqlite:///" + sys.argv[1])
r = c.get_run(sys.argv[2])
hist = {k: sorted([m.step, m.value, m.timestamp]
                  for m in c.get_metric_history(r.info.run_id, k)) for k in r.data.metrics}
print(json.dumps({"params": r.data.params, "metrics": r.data.metrics, "tags": r.data.tags,
                  "status": r.info.status, "end_time": r.info.end_time,
                  "run_name": r.info.run_name, "history": hist,
                  "experiment": c.get_experiment(r.info.experiment_id).name}))
"""

# A child run in another MLflow: creates a store (if new) and logs one run.
CREATE_RUN = r"""
import json, os, sys
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
c = MlflowClient(tracking_uri="sqlite:///" + sys.argv[1])
exp = c.create_experiment("made-by-mlflow")
rid = c.create_run(exp, run_name="trained").info.run_id
c.log_param(rid, "lr", "0.003")
for s in range(3):
    c.log_metric(rid, "loss", 1.0 / (s + 2), timestamp=1700000000000 + s, step=s)
c.log_batch(rid, metrics=[Metric("val/acc", 0.875, 1700000005000, 4)],
            params=[Param("layers", "12")], tags=[RunTag("team", "nlp")])
with open("weights.txt", "w") as f:
    f.write("made by mlflow\n")
c.log_artifact(rid, "weights.txt")
c.set_terminated(rid, "FAILED")
print(json.dumps({"run_id": rid, "experiment_id": exp}))
"""

# Makes an empty store, as MLflow does on first use.
CREATE_EMPTY = r"""
import json, sys
from mlflow import MlflowClient

MlflowClient(tracking_uri="sqlite:///" + sys.argv[1]).search_experiments()
print(json.dumps({}))
"""


# --------------------------------------------------------------------------
# (a) written through the mount, read by MLflow


def test_mount_writes_read_back_identically_in_mlflow_client(mount, client, tmp_path):
    run = mount.exp("compat exp%2Fa") / "run one"
    os.makedirs(run)
    rid = run_id_of(run)

    write_file(run / "params" / "lr", "0.01\n")
    write_file(run / "params" / "optimizer", "adam w/ decay\n")
    write_file(run / "params" / "label", "värde ✓\n")
    loss_lines = [f"0 0.5 {T0}", f"0 0.25 {T0 + 500}", f"1 0.125 {T0 + 1000}",
                  f"7 -3.5e-07 {T0 + 2000}", f"1099511627776 nan {T0 + 3000}"]
    write_file(run / "metrics" / "loss", "".join(l + "\n" for l in loss_lines), mode="a")
    os.mkdir(run / "metrics" / "train")  # a key with "/" is a folder
    write_file(run / "metrics" / "train" / "acc", f"3 0.9 {T0 + 1}\n4 0.95 {T0 + 2}\n",
               mode="a")
    write_file(run / "tags" / "team", "vision\n")
    write_file(run / "tags" / "mlflow.note.content", "line one\nline two\n")
    before_finish = int(time.time() * 1000)
    sh(f"echo FINISHED > '{run}/status'")

    payload = os.urandom(200_000)
    (tmp_path / "model.bin").write_bytes(payload)
    src = tmp_path / "ckpt"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha\n")
    (src / "sub" / "b.bin").write_bytes(os.urandom(5000))
    sh(f"cp '{tmp_path}/model.bin' '{run}/artifacts/' && cp -r '{src}' '{run}/artifacts/'")

    got = client.get_run(rid)
    assert got.info.run_name == "run one"
    assert client.get_experiment(got.info.experiment_id).name == "compat exp/a"
    assert got.data.params == {"lr": "0.01", "optimizer": "adam w/ decay",
                               "label": "värde ✓"}
    assert got.data.tags["team"] == "vision"
    assert got.data.tags["mlflow.note.content"] == "line one\nline two"
    assert got.info.status == "FINISHED"
    assert got.info.end_time is not None
    assert before_finish - 1000 <= got.info.end_time <= int(time.time() * 1000) + 1000
    assert got.info.end_time >= got.info.start_time
    # Latest value: highest step, as MLflow defines it.
    assert math.isnan(got.data.metrics["loss"])
    assert got.data.metrics["train/acc"] == 0.95

    expected = [(0, 0.5, T0), (0, 0.25, T0 + 500), (1, 0.125, T0 + 1000),
                (7, -3.5e-07, T0 + 2000), (1099511627776, "nan", T0 + 3000)]
    assert history_of(client, rid, "loss") == expected
    assert history_of(client, rid, "train/acc") == [(3, 0.9, T0 + 1), (4, 0.95, T0 + 2)]
    # The mount's own history prints exactly what was written.
    assert (run / "history" / "loss").read_text() == "".join(l + "\n" for l in loss_lines)

    # Artifacts: MLflow lists and downloads the very bytes cp stored.
    top = {f.path: f for f in client.list_artifacts(rid)}
    assert set(top) == {"model.bin", "ckpt"}
    assert not top["model.bin"].is_dir and top["model.bin"].file_size == len(payload)
    assert top["ckpt"].is_dir
    assert {f.path for f in client.list_artifacts(rid, "ckpt")} == {"ckpt/a.txt", "ckpt/sub"}
    dst = tmp_path / "download"
    dst.mkdir()
    got_file = client.download_artifacts(rid, "model.bin", str(dst))
    assert Path(got_file).read_bytes() == payload
    got_dir = client.download_artifacts(rid, "ckpt", str(dst))
    assert tree_bytes(got_dir) == tree_bytes(src)


# --------------------------------------------------------------------------
# (b) logged by the MLflow client, seen in the mount


def test_mlflow_client_logs_show_in_mount(mount, client, tmp_path):
    from mlflow.entities import Metric, Param, RunTag

    exp_id = client.create_experiment("from-client",
                                      artifact_location=str(tmp_path / "client-art"))
    rid = client.create_run(exp_id, run_name="logged").info.run_id
    run = mount.run("from-client", "logged")
    # A new run shows at once (local store), still RUNNING.
    assert (run / "run_id").read_text() == rid + "\n"
    assert (run / "status").read_text() == "RUNNING\n"

    client.log_param(rid, "lr", "0.02")
    for step in range(5):
        client.log_metric(rid, "loss", 1.0 / (step + 1), timestamp=T0 + step, step=step)
    client.log_batch(rid, metrics=[Metric("acc", 0.5, T0 + 1000, 10),
                                   Metric("acc", 0.75, T0 + 2000, 11)],
                     params=[Param("batch", "32")], tags=[RunTag("stage", "b")])
    client.set_tag(rid, "owner", "me")
    art = tmp_path / "report.txt"
    art.write_text("report body\n")
    client.log_artifact(rid, str(art))
    client.log_artifact(rid, str(art), artifact_path="nested/dir")
    client.set_terminated(rid)
    end_time = client.get_run(rid).info.end_time

    assert (run / "params" / "lr").read_text() == "0.02\n"
    assert (run / "params" / "batch").read_text() == "32\n"
    assert (run / "metrics" / "loss").read_text() == "0.2\n"
    assert (run / "metrics" / "acc").read_text() == "0.75\n"
    assert (run / "history" / "loss").read_text() == "".join(
        f"{s} {v} {T0 + s}\n" for s, v in enumerate(["1", "0.5", "0.3333333333333333",
                                                      "0.25", "0.2"]))
    assert (run / "history" / "acc").read_text() == f"10 0.5 {T0 + 1000}\n11 0.75 {T0 + 2000}\n"
    assert (run / "tags" / "owner").read_text() == "me\n"
    assert (run / "tags" / "stage").read_text() == "b\n"
    assert (run / "status").read_text() == "FINISHED\n"
    assert sorted(os.listdir(run / "params")) == ["batch", "lr"]
    assert sorted(os.listdir(run / "metrics")) == ["acc", "loss"]
    assert {"owner", "stage"} <= set(os.listdir(run / "tags"))

    info = json.loads((run / "run.json").read_text())["info"]
    assert info["end_time"] == end_time and info["status"] == "FINISHED"
    assert (run / "artifacts" / "report.txt").read_bytes() == b"report body\n"
    assert (run / "artifacts" / "nested" / "dir" / "report.txt").read_bytes() == b"report body\n"
    # runs/<run_id> reaches it too.
    assert os.path.realpath(mount.mnt / "runs" / rid) == os.path.realpath(run)

    # A run the client makes in an experiment the mount made: same story.
    os.makedirs(mount.exp("mounted-exp"))
    # mkdir has no close(): mlflowfs(1), WHEN DATA IS SAFE commits it within 20 ms, so poll briefly.
    exp2 = wait_for(lambda: client.get_experiment_by_name("mounted-exp")).experiment_id
    rid2 = client.create_run(exp2, run_name="client-run").info.run_id
    client.log_artifact(rid2, str(art))
    client.log_metric(rid2, "m", 2.5, timestamp=T0, step=3)
    run2 = mount.run("mounted-exp", "client-run")
    assert (run2 / "artifacts" / "report.txt").read_bytes() == b"report body\n"
    assert (run2 / "history" / "m").read_text() == f"3 2.5 {T0}\n"


# --------------------------------------------------------------------------
# (c) mlflow server on a database mlflowfs created


@pytest.mark.slow
def test_mlflow_server_serves_what_the_mount_wrote(mount, tmp_path):
    run = mount.run("served", "r1")
    os.makedirs(run)
    rid = run_id_of(run)
    write_file(run / "params" / "lr", "0.5\n")
    write_file(run / "metrics" / "loss", f"0 2.0 {T0}\n1 1.5 {T0 + 10}\n2 1.25 {T0 + 20}\n",
               mode="a")
    write_file(run / "tags" / "k", "v\n")
    sh(f"echo FINISHED > '{run}/status'")
    exp_id = experiment_id_of(mount, "served")

    # The mount stays up: the server (which upgrades the schema on start)
    # and mlflowfs share the file.
    with MlflowServer(str(MLFLOW_318_BIN), mount.db, tmp_path) as srv:
        found = srv.post("/api/2.0/mlflow/runs/search", {"experiment_ids": [exp_id]})
        runs = found.get("runs", [])
        assert [r["info"]["run_id"] for r in runs] == [rid]
        info, data = runs[0]["info"], runs[0]["data"]
        assert info["run_name"] == "r1" and info["status"] == "FINISHED"
        assert "end_time" in info
        assert {p["key"]: p["value"] for p in data["params"]} == {"lr": "0.5"}
        assert [(m["key"], m["value"], m["step"], m["timestamp"]) for m in data["metrics"]] \
            == [("loss", 1.25, 2, T0 + 20)]
        assert {t["key"]: t["value"] for t in data["tags"]}["k"] == "v"

        one = srv.get("/api/2.0/mlflow/runs/get", run_id=rid)["run"]
        assert one["info"]["run_id"] == rid
        assert {p["key"]: p["value"] for p in one["data"]["params"]} == {"lr": "0.5"}
        hist = srv.get("/api/2.0/mlflow/metrics/get-history", run_id=rid, metric_key="loss",
                       max_results=100)["metrics"]
        assert sorted((m["step"], m["value"], m["timestamp"]) for m in hist) == [
            (0, 2.0, T0), (1, 1.5, T0 + 10), (2, 1.25, T0 + 20)]

        # Both keep writing: the mount into the upgraded file, the server too.
        write_file(run / "params" / "added", "late\n")
        write_file(run / "metrics" / "loss", f"3 1.0 {T0 + 30}\n", mode="a")
        one = srv.get("/api/2.0/mlflow/runs/get", run_id=rid)["run"]
        assert {p["key"]: p["value"] for p in one["data"]["params"]} == {
            "lr": "0.5", "added": "late"}
        assert [(m["value"], m["step"]) for m in one["data"]["metrics"]] == [(1.0, 3)]
        made = srv.post("/api/2.0/mlflow/runs/create",
                        {"experiment_id": exp_id, "run_name": "via-rest",
                         "start_time": int(time.time() * 1000)})["run"]["info"]["run_id"]
        srv.post("/api/2.0/mlflow/runs/log-parameter",
                 {"run_id": made, "key": "p", "value": "q"})
        assert (mount.run("served", "via-rest") / "params" / "p").read_text() == "q\n"
        assert (mount.run("served", "via-rest") / "run_id").read_text() == made + "\n"



# --------------------------------------------------------------------------
# (d) MLflow and the mount writing at the same time


def test_mlflow_and_mount_writing_at_once_lose_nothing(mount, client):
    from mlflow.entities import Metric

    a, b = mount.run("together", "a"), mount.run("together", "b")
    os.makedirs(a)
    os.makedirs(b)
    rid_a, rid_b = run_id_of(a), run_id_of(b)
    # A close() commits the two new runs before MLflow is handed their ids
    # (mkdir alone is committed within mlflowfs(1) WHEN DATA IS SAFE's 20 ms, not on return).
    write_file(a / "tags" / "side", "both\n")
    write_file(b / "tags" / "side", "mount\n")
    failures = []

    def mlflow_side():
        try:
            for i in range(250):
                client.log_metric(rid_a, "client_m", float(i), timestamp=T0 + i, step=i)
            for j in range(25):
                client.log_batch(rid_a, metrics=[
                    Metric("client_m", float(i), T0 + i, i)
                    for i in range(250 + 10 * j, 260 + 10 * j)])
        except Exception as e:  # noqa: BLE001 - any failure is the finding
            failures.append(repr(e))

    # 2,000 shell appends (one open, write, close each) to run B.
    shell = subprocess.Popen(
        ["sh", "-c", 'i=0; while [ $i -lt 2000 ]; do '
                     f'echo "$i $i.5 $(({T0} + i))" >> "{b}/metrics/shell_m" || exit 1; '
                     'i=$((i+1)); done'],
        stderr=subprocess.PIPE, text=True)
    thread = threading.Thread(target=mlflow_side)
    thread.start()
    try:
        # And a Python writer on run A's other metric, one descriptor, line by line.
        fd = os.open(a / "metrics" / "mount_m", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            for i in range(500):
                os.write(fd, f"{i} {i * 0.25} {T0 + i}\n".encode())
        finally:
            os.close(fd)
    finally:
        thread.join(timeout=120)
        _, shell_err = shell.communicate(timeout=120)

    assert not thread.is_alive()
    assert failures == [], failures
    assert shell.returncode == 0, shell_err

    want_client = [(i, float(i), T0 + i) for i in range(500)]
    want_mount = [(i, i * 0.25, T0 + i) for i in range(500)]
    want_shell = [(i, i + 0.5, T0 + i) for i in range(2000)]
    assert history_of(client, rid_a, "client_m") == want_client
    assert history_of(client, rid_a, "mount_m") == want_mount
    assert history_of(client, rid_b, "shell_m") == want_shell
    assert history_in_mount(a / "history" / "client_m") == want_client
    assert history_in_mount(a / "history" / "mount_m") == want_mount
    assert history_in_mount(b / "history" / "shell_m") == want_shell
    assert client.get_run(rid_a).data.metrics == {"client_m": 499.0, "mount_m": 124.75}
    assert (a / "metrics" / "client_m").read_text() == "499\n"
    assert (b / "metrics" / "shell_m").read_text() == "1999.5\n"
    assert (mount.mnt / ".mlflowfs" / "errors").read_text().strip() == ""


# --------------------------------------------------------------------------
# Older and newer MLflow on the same file


def write_sample_run(mount, exp="compat", run="sample"):
    d = mount.run(exp, run)
    os.makedirs(d)
    write_file(d / "params" / "lr", "0.125\n")
    write_file(d / "metrics" / "loss", f"0 1.5 {T0}\n1 0.75 {T0 + 1}\n", mode="a")
    write_file(d / "tags" / "who", "mount\n")
    sh(f"echo FINISHED > '{d}/status'")
    return d, run_id_of(d)


def check_sample_run(seen):
    assert seen["run_name"] == "sample" and seen["experiment"] == "compat"
    assert seen["params"] == {"lr": "0.125"}
    assert seen["metrics"] == {"loss": 0.75}
    assert seen["tags"]["who"] == "mount"
    assert seen["status"] == "FINISHED" and seen["end_time"]
    assert seen["history"] == {"loss": [[0, 1.5, T0], [1, 0.75, T0 + 1]]}


def compat_runs_in_mount(mount):
    """The runs schema_compat's child logged, as seen in the mount."""
    exps = [e for e in os.listdir(mount.mnt / "experiments") if e.startswith("schema-compat-")]
    assert len(exps) == 1, exps
    runs = [r for r in os.listdir(mount.exp(exps[0])) if not r.startswith(".")]
    assert len(runs) == 1, runs
    return mount.run(exps[0], runs[0])


@pytest.mark.slow
def test_mlflowfs_database_opens_in_mlflow_2_22_5(make_mount, tmp_path, old_mlflow_python):
    m = make_mount()
    _, rid = write_sample_run(m)
    # MLflow 2.22.5 opens the file while it is mounted, with no manual step.
    res = schema_compat.open_with_mlflow(old_mlflow_python, m.db)
    assert res["ok"], res["error"]
    assert res["revision_after"] == res["revision_before"]  # nothing to migrate
    check_sample_run(run_in_mlflow(old_mlflow_python, READ_RUN, m.db, rid, cwd=tmp_path))
    # And what MLflow 2.22.5 logged is in the mount at once.
    r = compat_runs_in_mount(m)
    assert (r / "params" / "lr").read_text() == "0.1\n"
    assert (r / "history" / "loss").read_text() == "3 0.5 1000\n"
    assert (r / "status").read_text() == "FINISHED\n"


@pytest.mark.slow
def test_mlflowfs_database_opens_in_pinned_mlflow_which_upgrades_it(make_mount, tmp_path):
    from mlflow.store.db.utils import _get_latest_schema_revision

    m = make_mount()
    _, rid = write_sample_run(m)
    m.stop()
    res = schema_compat.open_with_mlflow(sys.executable, m.db)
    assert res["ok"], res["error"]
    assert res["revision_after"] == _get_latest_schema_revision()
    check_sample_run(run_in_mlflow(sys.executable, READ_RUN, m.db, rid, cwd=tmp_path))

    # mlflowfs mounts the upgraded file, shows both runs and writes into it.
    m2 = make_mount(name="again")
    sample = m2.run("compat", "sample")
    assert (sample / "history" / "loss").read_text() == f"0 1.5 {T0}\n1 0.75 {T0 + 1}\n"
    r = compat_runs_in_mount(m2)
    assert (r / "params" / "lr").read_text() == "0.1\n"
    new = m2.run("compat", "after-upgrade")
    os.makedirs(new)
    write_file(new / "params" / "x", "1\n")
    write_file(new / "metrics" / "y", f"5 2.5 {T0}\n", mode="a")
    seen = run_in_mlflow(sys.executable, READ_RUN, m2.db, run_id_of(new), cwd=tmp_path)
    assert seen["params"] == {"x": "1"} and seen["history"] == {"y": [[5, 2.5, T0]]}


def mount_reads_mlflow_made_run(m, made):
    run = m.run("made-by-mlflow", "trained")
    assert (run / "run_id").read_text() == made["run_id"] + "\n"
    assert (run / "params" / "lr").read_text() == "0.003\n"
    assert (run / "params" / "layers").read_text() == "12\n"
    assert (run / "history" / "loss").read_text() == (
        f"0 0.5 {T0}\n1 0.3333333333333333 {T0 + 1}\n2 0.25 {T0 + 2}\n")
    assert (run / "metrics" / "loss").read_text() == "0.25\n"
    assert (run / "metrics" / "val" / "acc").read_text() == "0.875\n"
    assert (run / "tags" / "team").read_text() == "nlp\n"
    assert (run / "status").read_text() == "FAILED\n"
    assert (run / "artifacts" / "weights.txt").read_text() == "made by mlflow\n"
    assert os.path.realpath(m.mnt / "runs" / made["run_id"]) == os.path.realpath(run)
    return run


@pytest.mark.slow
@pytest.mark.parametrize("maker", ["2.22.5", "3.17.2"])
def test_database_created_by_mlflow_mounts_and_reads(maker, make_mount, tmp_path,
                                                     request):
    python = (request.getfixturevalue("old_mlflow_python") if maker == "2.22.5"
              else sys.executable)
    db = tmp_path / "mlflow.db"
    made = run_in_mlflow(python, CREATE_RUN, db, cwd=tmp_path)
    before = db_snapshot(db)
    m = make_mount()
    run = mount_reads_mlflow_made_run(m, made)
    assert db_snapshot(db) == before  # reading changed nothing
    # The mount writes into MLflow's file; that MLflow reads it back.
    write_file(run / "params" / "from_mount", "yes\n")
    write_file(run / "metrics" / "loss", f"9 0.125 {T0 + 9}\n", mode="a")
    seen = run_in_mlflow(python, READ_RUN, db, made["run_id"], cwd=tmp_path)
    assert seen["params"] == {"lr": "0.003", "layers": "12", "from_mount": "yes"}
    assert seen["history"]["loss"][-1] == [9, 0.125, T0 + 9]
    assert seen["metrics"]["loss"] == 0.125


@pytest.mark.slow
def test_schema_is_the_one_mlflow_2_22_5_creates(tmp_path, old_mlflow_python):
    ours = create_db_with_mlflowfs(tmp_path / "ours" / "mlflow.db", tmp_path / "ours")
    theirs = tmp_path / "theirs" / "mlflow.db"
    theirs.parent.mkdir()
    run_in_mlflow(old_mlflow_python, CREATE_EMPTY, theirs, cwd=theirs.parent)
    assert schema_compat.read_revision(ours) == schema_compat.read_revision(theirs)
    # compare_schema() itself would also flag the order of the CHECK
    # constraints in `runs`, which MLflow 2.22.5 varies from run to run.
    assert schema_differences(ours, theirs) == []
