"""The remote store on an older tracking server: mlflowfs mounted on MLflow
2.22.5's `mlflow server` (the last 2.x release, from $MLFLOWFS_OLD_VENV;
SQLite backend, --serve-artifacts).  MLflow's 2.x client works against a
3.x server, and a team's server is often the last thing it upgrades, so
the mount must work against both.

Covers what the 2.22.5 client made, as a tree (experiments, runs, params,
metric histories, tags, artifacts, the registry); and what the mount
writes (mkdir of a run, params, tags, metric lines, status, rename, rm of
a tag, cp of artifacts in and out), read back by the 2.22.5 client and by
the pinned 3.17.2 client, which must agree with each other and with what
was written.
"""
import hashlib
import json
import os
import uuid
from pathlib import Path

import pytest

from conftest import Mount, run_id_of, sh, write_file
from helpers_compat import old_mlflow_python, run_in_mlflow  # noqa: F401 (a fixture)
from helpers_server import MlflowServer
from helpers_writes import eventually

pytestmark = pytest.mark.slow  # a server of its own, and clients in another venv

T0 = 1700000000000  # an explicit timestamp base, in ms


@pytest.fixture(scope="module")
def old_server(tmp_path_factory, old_mlflow_python):
    tmp = tmp_path_factory.mktemp("old-server")
    exe = Path(old_mlflow_python).parent / "mlflow"
    with MlflowServer(str(exe), tmp / "server.db", tmp, artifacts=tmp / "artifacts") as s:
        yield s


@pytest.fixture
def omount(tmp_path, old_server):
    m = Mount(tmp_path, uri=old_server.url, args=["-o", "cache_ttl=1"]).start()
    try:
        yield m
    finally:
        m.stop()


def unique(prefix="e"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# A run as an MLflow client reads it back from a server; the same code runs
# in the old venv (as a script) and in this process (the pinned client).
CLIENT_VIEW = r"""
import hashlib, json, math, os, sys, tempfile
from mlflow import MlflowClient


def client_view(url, run_id):
    c = MlflowClient(tracking_uri=url)
    r = c.get_run(run_id)

    def num(v):
        return "nan" if math.isnan(v) else v

    history = {k: sorted(([m.step, num(m.value), m.timestamp]
                          for m in c.get_metric_history(run_id, k)), key=lambda p: p[0])
               for k in r.data.metrics}
    # The top folder is listed; the pinned client lists a subfolder through
    # logged-models/search, which 2.22's server lacks, so the rest is read
    # by downloading.
    listed = sorted([a.path, a.is_dir, a.file_size] for a in c.list_artifacts(run_id))
    files = {}
    with tempfile.TemporaryDirectory() as d:
        # (2.22's server fails a download of a run that has no artifacts.)
        root = c.download_artifacts(run_id, "", d) if listed else d
        for top, _, names in os.walk(root):
            for f in names:
                with open(os.path.join(top, f), "rb") as fh:
                    data = fh.read()
                rel = os.path.relpath(os.path.join(top, f), root)
                files[rel] = [len(data), hashlib.sha256(data).hexdigest()]
    return {"experiment": c.get_experiment(r.info.experiment_id).name,
            "run_name": r.info.run_name, "status": r.info.status,
            "ended": r.info.end_time is not None, "params": r.data.params,
            "tags": {k: v for k, v in r.data.tags.items()
                     if k == "mlflow.runName" or not k.startswith("mlflow.")},
            "metrics": {k: num(v) for k, v in r.data.metrics.items()}, "history": history,
            "listed": listed, "artifacts": files}


if __name__ == "__main__":
    # MLflow 2.22's client finds mlflow-artifacts: URIs through the global
    # tracking URI, not its own.
    import mlflow
    mlflow.set_tracking_uri(sys.argv[1])
    print(json.dumps(client_view(sys.argv[1], sys.argv[2])))
"""


def views(python, url, run_id):
    """The run as the 2.22.5 client and the pinned client read it."""
    old = run_in_mlflow(python, CLIENT_VIEW, url, run_id)
    scope = {"__name__": "client_view"}
    exec(CLIENT_VIEW, scope)
    # Through JSON, as the old client's answer came: lists, not tuples.
    pinned = json.loads(json.dumps(scope["client_view"](url, run_id)))
    return old, pinned


def digest(data):
    return hashlib.sha256(data).hexdigest()


# The 2.22.5 client makes an experiment, a run with everything in it and a
# registered model of it.
OLD_CLIENT_MAKES = r"""
import json, sys
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
mlflow.set_tracking_uri(sys.argv[1])  # for log_artifact, as in CLIENT_VIEW
c = MlflowClient(tracking_uri=sys.argv[1])
eid = c.create_experiment(sys.argv[2], tags={"owner": "ana"})
rid = c.create_run(eid, run_name="trained").info.run_id
c.log_batch(rid, metrics=[Metric("loss", 1.0 / (s + 2), 1700000000000 + s, s) for s in range(3)],
            params=[Param("lr", "0.003")], tags=[RunTag("team", "nlp")])
with open("weights.txt", "w") as f:
    f.write("made by mlflow 2.22\n")
c.log_artifact(rid, "weights.txt", artifact_path="model")
c.set_terminated(rid, "FAILED")
c.create_registered_model(sys.argv[3], description="old")
c.create_model_version(sys.argv[3], f"runs:/{rid}/model", run_id=rid)
c.set_registered_model_alias(sys.argv[3], "champion", "1")
print(json.dumps({"run_id": rid, "experiment_id": eid}))
"""


def test_what_the_old_client_made_shows_in_the_mount(omount, old_server, old_mlflow_python,
                                                     tmp_path):
    name, model = unique(), unique("mdl")
    made = run_in_mlflow(old_mlflow_python, OLD_CLIENT_MAKES, old_server.url, name, model,
                         cwd=tmp_path)
    rid = made["run_id"]

    eventually(lambda: name in os.listdir(omount.mnt / "experiments"), timeout=3)
    exp = omount.exp(name)
    assert sorted(n for n in os.listdir(exp) if not n.startswith(".")) == ["trained"]
    assert (exp / ".tags" / "owner").read_text() == "ana\n"
    run = exp / "trained"
    assert os.readlink(omount.mnt / "runs" / rid) == f"../experiments/{name}/trained"
    assert (run / "run_id").read_text() == rid + "\n"
    assert (run / "status").read_text() == "FAILED\n"
    assert (run / "params" / "lr").read_text() == "0.003\n"
    assert (run / "tags" / "team").read_text() == "nlp\n"
    assert (run / "metrics" / "loss").read_text() == "0.25\n"
    assert (run / "history" / "loss").read_text() == (
        f"0 0.5 {T0}\n1 0.3333333333333333 {T0 + 1}\n2 0.25 {T0 + 2}\n")
    assert (run / "artifacts" / "model" / "weights.txt").read_text() == "made by mlflow 2.22\n"
    assert json.loads((run / "run.json").read_text())["info"]["experiment_id"] == \
        made["experiment_id"]

    m = omount.mnt / "models" / model
    assert (m / "description").read_text() == "old\n"
    assert os.listdir(m / "versions") == ["1"]
    assert (m / "versions" / "1" / "run_id").read_text() == rid + "\n"
    assert os.readlink(m / "aliases" / "champion") == "../versions/1"
    assert (m / "versions" / "1" / "artifacts" / "weights.txt").read_text() == \
        "made by mlflow 2.22\n"


def test_what_the_mount_writes_reads_back_in_both_clients(omount, old_server,
                                                          old_mlflow_python):
    name = unique()
    run = omount.run(name, "r")
    os.makedirs(run)
    rid = run_id_of(run)
    sh(f"echo 0.01 > {run}/params/lr && echo 32 > {run}/params/batch")
    sh(f"echo vision > {run}/tags/team && echo gone > {run}/tags/tmp && rm {run}/tags/tmp")
    sh(f"printf '0.5\\n4 0.25\\n7 0.125 {T0}\\nnan\\n' >> {run}/metrics/loss")
    sh(f"echo 0.9 >> {run}/metrics/acc")
    sh(f"echo finished > {run}/status")
    os.rename(run, omount.run(name, "fit"))

    want = {"experiment": name, "run_name": "fit", "status": "FINISHED", "ended": True,
            "params": {"lr": "0.01", "batch": "32"},
            "tags": {"team": "vision", "mlflow.runName": "fit"},
            "metrics": {"loss": "nan", "acc": 0.9},
            "listed": [], "artifacts": {}}
    old, pinned = views(old_mlflow_python, old_server.url, rid)
    assert old == pinned
    history = old.pop("history")
    assert old == want
    assert [(s, v) for s, v, _ in history["loss"]] == [(0, 0.5), (4, 0.25), (7, 0.125),
                                                       (8, "nan")]
    assert history["loss"][2][2] == T0
    assert [(s, v) for s, v, _ in history["acc"]] == [(0, 0.9)]
    # And the mount reads back what it wrote, under the new name.
    assert (omount.run(name, "fit") / "history" / "loss").read_text().splitlines()[2] == \
        f"7 0.125 {T0}"


def test_artifacts_copied_in_and_out_through_the_old_server(omount, old_server,
                                                           old_mlflow_python, tmp_path):
    name = unique()
    run = omount.run(name, "r")
    os.makedirs(run)
    rid = run_id_of(run)
    src = tmp_path / "src"
    (src / "model").mkdir(parents=True)
    # The weights are big enough to be sent while cp writes them, in a
    # chunked PUT, which the old server's gunicorn takes too.
    files = {"model/MLmodel": b"flavors: {}\n", "model/weights.bin": os.urandom(12 << 20),
             "notes.txt": b"hello\n"}
    for path, data in files.items():
        (src / path).write_bytes(data)
    art = run / "artifacts"
    sh(f"cp -r {src}/model {src}/notes.txt {art}/")
    write_file(art / "scratch.txt", "removed again\n")
    os.unlink(art / "scratch.txt")

    old, pinned = views(old_mlflow_python, old_server.url, rid)
    assert old == pinned
    assert old["listed"] == [["model", True, None], ["notes.txt", False, 6]]
    assert old["artifacts"] == {p: [len(d), digest(d)] for p, d in files.items()}
    # And out again through a mount of its own, which has them from the
    # server alone.
    other = Mount(tmp_path, name="other", uri=old_server.url).start()
    try:
        sh(f"cp -r {other.run(name, 'r')}/artifacts {tmp_path}/out")
    finally:
        other.stop()
    assert sh(f"diff -r {src} {tmp_path}/out", check=False).returncode == 0
