"""The remote store: mlflowfs mounted on a real `mlflow server` (the pinned
MLflow, SQLite backend, --serve-artifacts, on loopback), every effect
cross-checked through MlflowClient(tracking_uri="http://...").

Covers the tree of what the client made; params, metric lines, tags, status,
mkdir, mv and rmdir reaching the server; artifacts through the server's
artifact API; the registry; the refusals (EPERM, EFBIG, EINVAL, ENOTEMPTY)
leaving the server unchanged; other clients' changes within cache_ttl, and
the few requests a grep over many runs costs; a mount that fails at once
with one clear line and no credential; a server that goes away (EIO, the
daemon keeps serving) and comes back; and basic auth (right and wrong
credentials, a user who may read but not write: EACCES).
"""
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest

from conftest import (Mount, daemon_has_asan, expect_errno, mlflowfs_binary, run_id_of, sh,
                      write_file)
from helpers_server import FaultProxy, MlflowServer, free_port
from helpers_writes import eventually, points, steps_values


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    s = MlflowServer(None, tmp / "server.db", tmp, artifacts=tmp / "artifacts").start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def rmount(tmp_path, server):
    m = Mount(tmp_path, uri=server.url, args=["-o", "cache_ttl=1"]).start()
    try:
        yield m
    finally:
        m.stop()


@pytest.fixture
def client(server):
    return server.client()


def unique(prefix="e"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def made_run(m):
    """A run made with mkdir in a new experiment of mount m: (experiment name, run
    folder, run id)."""
    name = unique()
    run_dir = m.run(name, "r")
    os.makedirs(run_dir)
    return name, run_dir, run_id_of(run_dir)


@pytest.fixture
def new_run(rmount):
    return made_run(rmount)


# ---- what the client made, as a tree --------------------------------------


def test_runs_made_by_the_client_show_as_folders_and_files(rmount, client):
    from mlflow.entities import Metric, Param, RunTag

    name = unique()
    eid = client.create_experiment(name)
    run = client.create_run(eid, run_name="fit")
    rid = run.info.run_id
    client.log_batch(rid, metrics=[Metric("loss", 0.5, 1700000000000, 0),
                                   Metric("loss", 0.25, 1700000001000, 1),
                                   Metric("loss", float("nan"), 1700000002000, 2)],
                     params=[Param("lr", "0.01")], tags=[RunTag("team", "vision")])
    client.set_experiment_tag(eid, "owner", "ana")

    exp = rmount.exp(name)
    assert (exp / "fit" / "run_id").read_text() == rid + "\n"
    assert (exp / "fit" / "params" / "lr").read_text() == "0.01\n"
    assert (exp / "fit" / "metrics" / "loss").read_text() == "nan\n"
    assert (exp / "fit" / "history" / "loss").read_text() == (
        "0 0.5 1700000000000\n1 0.25 1700000001000\n2 nan 1700000002000\n")
    assert (exp / "fit" / "tags" / "team").read_text() == "vision\n"
    assert (exp / "fit" / "status").read_text() == "RUNNING\n"
    assert (exp / ".tags" / "owner").read_text() == "ana\n"
    info = json.loads((exp / "fit" / "run.json").read_text())["info"]
    assert info["run_id"] == rid and info["experiment_id"] == eid
    assert info["artifact_uri"] == run.info.artifact_uri
    assert os.stat(exp / "fit" / "history" / "loss").st_size == len(
        (exp / "fit" / "history" / "loss").read_bytes())


def test_grep_and_diff_over_runs_of_the_server(rmount, client):
    name = unique()
    eid = client.create_experiment(name)
    for i, acc in enumerate((0.7, 0.9, 0.8)):
        r = client.create_run(eid, run_name=f"r{i}")
        client.log_param(r.info.run_id, "depth", str(i))
        client.log_metric(r.info.run_id, "acc", acc, step=0)
    for i in range(3, 40):
        r = client.create_run(eid, run_name=f"r{i}")
        client.log_metric(r.info.run_id, "acc", 0.5, step=0)
    exp = rmount.exp(name)
    status = rmount.mnt / ".mlflowfs" / "status"

    def requests():
        return int(status.read_text().split("\nrequests: ")[1].split("\n")[0])

    before = requests()
    best = sh("grep -H . */metrics/acc | sort -t: -k2 -g | tail -1", cwd=exp).stdout
    assert best == "r1/metrics/acc:0.9\n"
    # A search returns the runs whole: a handful of requests, not one per run.
    assert requests() - before <= 5
    d = sh("diff -r r0/params r2/params", cwd=exp, check=False)
    assert d.returncode == 1 and "< 0" in d.stdout and "> 2" in d.stdout


def test_the_registry_of_the_server_shows_under_models(rmount, client):
    eid = client.create_experiment(unique())
    r1 = client.create_run(eid, run_name="r1").info
    name = unique("mdl")
    client.create_registered_model(name, tags={"team": "vision"}, description="my model")
    client.create_model_version(name, f"runs:/{r1.run_id}/model", run_id=r1.run_id,
                                description="first")
    client.create_model_version(name, f"runs:/{r1.run_id}/model", run_id=r1.run_id)
    client.create_model_version(name, f"runs:/{r1.run_id}/model", run_id=r1.run_id)
    client.set_model_version_tag(name, "1", "validated", "yes")
    client.set_registered_model_alias(name, "champion", "2")
    client.transition_model_version_stage(name, "1", "Staging")
    client.delete_model_version(name, "3")

    m = rmount.mnt / "models" / name
    assert name in os.listdir(rmount.mnt / "models")
    assert (m / "description").read_text() == "my model\n"
    assert (m / "tags" / "team").read_text() == "vision\n"
    assert os.readlink(m / "aliases" / "champion") == "../versions/2"
    assert sorted(os.listdir(m / "versions")) == ["1", "2"]
    for n in ("1", "2"):
        mv = client.get_model_version(name, n)
        v = m / "versions" / n
        assert (v / "source").read_text() == mv.source + "\n"
        assert (v / "run_id").read_text() == mv.run_id + "\n" == r1.run_id + "\n"
        assert (v / "status").read_text() == mv.status + "\n"
        assert (v / "stage").read_text() == mv.current_stage + "\n"
        assert (v / "description").read_text() == (mv.description or "") + "\n"
    assert (m / "versions" / "1" / "stage").read_text() == "Staging\n"
    assert (m / "versions" / "1" / "tags" / "validated").read_text() == "yes\n"


# ---- writes reach the server ---------------------------------------------


def test_mkdir_and_writes_log_to_the_server(new_run, client):
    name, run_dir, rid = new_run
    sh(f"echo 0.01 > {run_dir}/params/lr")
    sh(f"printf '0.5\\n7 0.25\\n9 0.125 1700000000000\\nnan\\n-inf\\n' >> {run_dir}/metrics/loss")
    sh(f"echo vision > {run_dir}/tags/team")

    run = client.get_run(rid)
    assert run.info.run_name == "r"
    assert run.info.experiment_id == client.get_experiment_by_name(name).experiment_id
    assert run.data.params == {"lr": "0.01"}
    assert run.data.tags["team"] == "vision"
    assert run.data.tags["mlflow.runName"] == "r"
    assert "mlflow.user" in run.data.tags
    # MLflow's SQL store keeps -inf as the lowest double; the mount shows -inf.
    assert steps_values(client, rid, "loss") == [(0, 0.5), (7, 0.25), (9, 0.125), (10, "nan"),
                                                  (11, -sys.float_info.max)]
    assert (9, 1700000000000, 0.125) in points(client, rid, "loss")
    assert (run_dir / "metrics" / "loss").read_text() == "-inf\n"

    sh(f"echo FINISHED > {run_dir}/status")
    info = client.get_run(rid).info
    assert info.status == "FINISHED" and info.end_time is not None


def test_rm_of_a_tag_and_mv_of_runs_and_experiments(rmount, new_run, client):
    name, run_dir, rid = new_run
    sh(f"echo 1 > {run_dir}/tags/k")
    os.unlink(run_dir / "tags" / "k")
    assert "k" not in client.get_run(rid).data.tags
    os.rename(run_dir, rmount.run(name, "b"))
    assert client.get_run(rid).info.run_name == "b"
    assert client.get_run(rid).data.tags["mlflow.runName"] == "b"
    new = unique()
    os.rename(rmount.exp(name), rmount.exp(new))
    assert client.get_experiment_by_name(new) is not None
    assert client.get_experiment_by_name(name) is None
    assert (rmount.run(new, "b") / "run_id").read_text() == rid + "\n"


def test_rmdir_of_runs_and_experiments(rmount, new_run, client):
    name, run_dir, rid = new_run
    eid = client.get_experiment_by_name(name).experiment_id
    expect_errno(errno.ENOTEMPTY, os.rmdir, rmount.exp(name))
    assert client.get_experiment(eid).lifecycle_stage == "active"
    assert client.get_run(rid).info.lifecycle_stage == "active"
    os.rmdir(run_dir)
    assert client.get_run(rid).info.lifecycle_stage == "deleted"
    os.rmdir(rmount.exp(name))
    assert client.get_experiment(eid).lifecycle_stage == "deleted"
    assert name not in os.listdir(rmount.mnt / "experiments")


# ---- artifacts through the server's proxied artifact API -------------------


def vm_hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def test_artifacts_copied_in_are_the_servers(rmount, new_run, client, tmp_path):
    _, run_dir, rid = new_run
    src = tmp_path / "src"
    (src / "model").mkdir(parents=True)
    (src / "model" / "MLmodel").write_text("flavors: {}\n")
    (src / "model" / "weights.bin").write_bytes(os.urandom(300_000))
    (src / "notes.txt").write_text("hello\n")
    art = run_dir / "artifacts"
    sh(f"cp {src}/notes.txt {art}/ && cp -r {src}/model {art}/")

    assert sorted(a.path for a in client.list_artifacts(rid)) == ["model", "notes.txt"]
    assert sorted((a.path, a.file_size) for a in client.list_artifacts(rid, "model")) == [
        ("model/MLmodel", 12), ("model/weights.bin", 300_000)]
    out = client.download_artifacts(rid, "", str(tmp_path / "dl"))
    assert sh(f"diff -r {src} {out}", check=False).returncode == 0
    # And back through the mount, as another reader sees it.
    assert sh(f"diff -r {src} {art}", check=False).returncode == 0
    assert os.stat(art / "model" / "weights.bin").st_size == 300_000
    assert sorted(os.listdir(art)) == ["model", "notes.txt"]


def test_artifacts_logged_by_the_client_show_in_the_mount(rmount, client, tmp_path):
    eid = client.create_experiment(unique())
    run = client.create_run(eid, run_name="logged")
    f = tmp_path / "report.txt"
    f.write_text("accuracy 0.9\n")
    client.log_artifact(run.info.run_id, str(f), artifact_path="reports")
    art = rmount.run(client.get_experiment(eid).name, "logged") / "artifacts"
    assert os.listdir(art) == ["reports"]
    assert (art / "reports" / "report.txt").read_text() == "accuracy 0.9\n"
    assert os.stat(art / "reports" / "report.txt").st_size == 13


def test_artifacts_rm_mv_mkdir_and_rewrite(rmount, new_run, client):
    _, run_dir, rid = new_run
    art = run_dir / "artifacts"
    write_file(art / "a.txt", "one\n")
    os.mkdir(art / "empty")
    assert sorted(os.listdir(art)) == ["a.txt", "empty"]
    os.rmdir(art / "empty")
    os.mkdir(art / "d")
    write_file(art / "d" / "b.txt", "two\n")
    expect_errno(errno.ENOTEMPTY, os.rmdir, art / "d")
    sh(f"mv {art}/a.txt {art}/d/c.txt")
    assert sorted(a.path for a in client.list_artifacts(rid, "d")) == ["d/b.txt", "d/c.txt"]
    assert [a.path for a in client.list_artifacts(rid)] == ["d"]
    # Rewritten in place, appended to, truncated: the server has the result.
    write_file(art / "d" / "b.txt", "TWO\n")
    write_file(art / "d" / "b.txt", "more\n", "a")
    assert (art / "d" / "b.txt").read_text() == "TWO\nmore\n"
    os.truncate(art / "d" / "b.txt", 3)
    assert client.download_artifacts(rid, "d/b.txt") and \
        open(client.download_artifacts(rid, "d/b.txt")).read() == "TWO"
    sh(f"rm -r {art}/d")
    assert client.list_artifacts(rid) == []
    assert os.listdir(art) == []


def test_renames_of_files_and_the_descriptors_open_on_them(rmount, new_run, client, tmp_path):
    """The artifact API cannot rename: a file's rename is an upload under the
    new name and a delete of the old; a descriptor open on it follows it; a
    folder's is EXDEV (logged), which mv answers by copying."""
    _, run_dir, rid = new_run
    art = run_dir / "artifacts"
    fd = os.open(art / "ckpt.tmp", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"epoch 1\n")
        os.rename(art / "ckpt.tmp", art / "ckpt")
        assert sorted(os.listdir(art)) == ["ckpt"]
        os.write(fd, b"epoch 2\n")
    finally:
        os.close(fd)
    assert [a.path for a in client.list_artifacts(rid)] == ["ckpt"]
    assert open(client.download_artifacts(rid, "ckpt", str(tmp_path))).read() == \
        "epoch 1\nepoch 2\n"
    # Over an existing file, which a reader open on it keeps.
    write_file(art / "new.tmp", "epoch 3\n")
    with open(art / "ckpt") as reader:
        os.rename(art / "new.tmp", art / "ckpt")
        assert reader.read() == "epoch 1\nepoch 2\n"
    assert (art / "ckpt").read_text() == "epoch 3\n"
    assert [a.path for a in client.list_artifacts(rid)] == ["ckpt"]
    os.mkdir(art / "d")
    write_file(art / "d" / "x", "x\n")
    expect_errno(errno.EXDEV, os.rename, art / "d", art / "e")
    assert "cannot rename a folder" in rmount.log()
    sh(f"mv {art}/d {art}/e")
    assert sorted(a.path for a in client.list_artifacts(rid)) == ["ckpt", "e"]
    assert (art / "e" / "x").read_text() == "x\n"


def test_a_copy_read_or_written_is_kept_for_cache_ttl(tmp_path, client, server):
    """A file's copy is kept after its last close: read again within
    cache_ttl (3 s here, room for a slow machine) it is not downloaded
    again, nor renamed after it was written (an atomic save); later, what
    another client wrote shows."""
    with Mount(tmp_path, name="k", uri=server.url, args=["-o", "cache_ttl=3"]) as m:
        _, run_dir, rid = made_run(m)
        art = run_dir / "artifacts"
        downloads = lambda: int(status_of(m)["downloads"])  # noqa: E731
        data = os.urandom(100_000)
        (art / "a.bin").write_bytes(data)
        before = downloads()
        assert (art / "a.bin").read_bytes() == data
        assert sh(f"cmp {art}/a.bin {art}/a.bin", check=False).returncode == 0
        write_file(art / "ckpt.tmp", "epoch 1\n")
        os.rename(art / "ckpt.tmp", art / "ckpt")
        assert (art / "ckpt").read_text() == "epoch 1\n"
        assert downloads() == before
        assert status_of(m)["kept_files"].startswith("2 ")
        # Another client's change shows once the copy is older than cache_ttl.
        f = tmp_path / "a.bin"
        f.write_bytes(b"changed\n")
        client.log_artifact(rid, str(f))
        time.sleep(3.1)
        assert (art / "a.bin").read_bytes() == b"changed\n"
        assert downloads() == before + 1


def test_reading_files_of_a_folder_asks_for_its_listing_once(tmp_path, client, server):
    """cat of every file in a folder costs one download each: closing a file
    read does not drop the folder's listing (cache_ttl 30 s here)."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(10):
        (src / f"f{i}.txt").write_text(f"{i}\n")
    with Mount(tmp_path, name="l", uri=server.url, args=["-o", "cache_ttl=30"]) as m:
        name, run_dir, rid = made_run(m)
        client.log_artifacts(rid, str(src))
        art = run_dir / "artifacts"
        assert len(os.listdir(art)) == 10
        before = int(status_of(m)["artifact_requests"])
        assert sh(f"cat {art}/*.txt").stdout == "".join(f"{i}\n" for i in range(10))
        assert int(status_of(m)["artifact_requests"]) - before == 10


def test_a_big_artifact_streams_through_bounded_memory(rmount, new_run, client, tmp_path):
    _, run_dir, rid = new_run
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        for _ in range(96):
            f.write(os.urandom(1 << 20))
    sh(f"cp {big} {run_dir}/artifacts/big.bin")
    back = tmp_path / "back.bin"
    sh(f"cp {run_dir}/artifacts/big.bin {back}")
    assert sh(f"cmp {big} {back}", check=False).returncode == 0
    (a,) = client.list_artifacts(rid)
    assert (a.path, a.file_size) == ("big.bin", 96 << 20)
    # Spooled through files, never held: well below the file's size.
    if not daemon_has_asan():
        assert vm_hwm_kb(rmount.proc.pid) < 50_000


MIB = 1 << 20


def server_bytes(client, rid, name, tmp_path):
    """The file name of run rid as the server has it, or None."""
    if name not in [a.path for a in client.list_artifacts(rid)]:
        return None
    out = tmp_path / f"dl-{uuid.uuid4().hex[:8]}"
    return open(client.download_artifacts(rid, name, str(out)), "rb").read()


def test_a_file_written_from_start_to_end_is_sent_while_written(rmount, new_run, client,
                                                                  tmp_path):
    _, run_dir, rid = new_run
    data = os.urandom(24 * MIB)
    before = status_of(rmount)
    fd = os.open(run_dir / "artifacts" / "ckpt.bin", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for i in range(16):
            os.write(fd, data[i * MIB:(i + 1) * MIB])
        # Past 8 MiB the upload runs while the program still writes.
        assert status_of(rmount)["uploads_streaming"] == "1"
        for i in range(16, 24):
            os.write(fd, data[i * MIB:(i + 1) * MIB])
    finally:
        os.close(fd)
    after = status_of(rmount)
    assert after["uploads_streaming"] == "0"
    assert int(after["uploads_streamed"]) - int(before["uploads_streamed"]) == 1
    assert int(after["uploads"]) - int(before["uploads"]) == 1
    assert server_bytes(client, rid, "ckpt.bin", tmp_path) == data
    # cp does the same; a small file is sent at its close only.
    src = tmp_path / "src.bin"
    src.write_bytes(data[:12 * MIB])
    (tmp_path / "small.txt").write_text("hi\n")
    sh(f"cp {src} {run_dir}/artifacts/copy.bin && cp {tmp_path}/small.txt {run_dir}/artifacts/")
    last = status_of(rmount)
    assert int(last["uploads_streamed"]) - int(after["uploads_streamed"]) == 1
    assert int(last["uploads"]) - int(after["uploads"]) == 2
    assert server_bytes(client, rid, "copy.bin", tmp_path) == data[:12 * MIB]
    assert server_bytes(client, rid, "small.txt", tmp_path) == b"hi\n"


@pytest.mark.parametrize("how", ["seek-back", "pause", "fsync", "truncate", "rename", "unlink"])
def test_a_stream_interrupted_leaves_the_server_the_closed_file(rmount, new_run, client,
                                                                  tmp_path, how):
    """Whatever a program does besides writing from start to end, the server
    ends up with the file as closed, never with what the stream had sent."""
    _, run_dir, rid = new_run
    art = run_dir / "artifacts"
    data = bytearray(os.urandom(12 * MIB))
    before = status_of(rmount)
    streamed = 0
    name = "f.bin"
    fd = os.open(art / name, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
        assert status_of(rmount)["uploads_streaming"] == "1"
        if how == "seek-back":
            os.pwrite(fd, b"HEAD", 0)
            data[:4] = b"HEAD"
        elif how == "pause":
            time.sleep(3)  # past the stream's 2 s wait for the writer
        elif how == "fsync":
            os.fsync(fd)
            streamed = 1
            # The server has what was written up to the fsync.
            assert server_bytes(client, rid, name, tmp_path) == data
        elif how == "truncate":
            os.ftruncate(fd, 5 * MIB)
            del data[5 * MIB:]
            os.lseek(fd, 5 * MIB, os.SEEK_SET)
        elif how == "rename":
            os.rename(art / name, art / "g.bin")
            name = "g.bin"
        elif how == "unlink":
            os.unlink(art / name)
            name = None
        tail = os.urandom(MIB)
        os.write(fd, tail)
        data += tail
        # Stopped at once, or once its wait for the writer ends.
        assert eventually(lambda: status_of(rmount)["uploads_streaming"] == "0", timeout=5)
    finally:
        os.close(fd)
    after = status_of(rmount)
    assert after["uploads_streaming"] == "0"
    assert int(after["uploads_streamed"]) - int(before["uploads_streamed"]) == streamed
    assert after["uploads_failed"] == before["uploads_failed"]
    if name is None:
        assert server_bytes(client, rid, "f.bin", tmp_path) is None
    else:
        assert server_bytes(client, rid, name, tmp_path) == bytes(data)
        assert sorted(a.path for a in client.list_artifacts(rid)) == [name]


def test_artifacts_of_a_server_with_an_http_artifact_root(tmp_path):
    """`mlflow server --default-artifact-root http://HOST/api/2.0/mlflow-artifacts/
    artifacts/...` gives runs http artifact URIs into its own artifact API: the
    mount reaches them as MLflow's client does.  A run whose artifact URI
    names another server's artifact API is ENOTSUP, with the reason logged:
    the mount's credentials are for its own server alone."""
    port = free_port()
    root = f"http://127.0.0.1:{port}/api/2.0/mlflow-artifacts/artifacts/experiments"
    with MlflowServer(None, tmp_path / "s.db", tmp_path, artifacts=tmp_path / "dest", port=port,
                      args=["--default-artifact-root", root],
                      env={"MLFLOW_ALLOWED_HOST_ADDRESSED_ARTIFACT_SCHEMES": "http"}) as srv:
        client = srv.client()
        with Mount(tmp_path, uri=srv.url) as m:
            run_dir = m.run("e", "r")
            os.makedirs(run_dir)
            rid = run_id_of(run_dir)
            assert client.get_run(rid).info.artifact_uri.startswith(root + "/")
            write_file(run_dir / "artifacts" / "a.txt", "from the mount\n")
            assert [a.path for a in client.list_artifacts(rid)] == ["a.txt"]
            assert open(client.download_artifacts(rid, "a.txt", str(tmp_path))).read() == \
                "from the mount\n"
            f = tmp_path / "b.txt"
            f.write_text("from the client\n")
            client.log_artifact(rid, str(f), artifact_path="d")
            assert (run_dir / "artifacts" / "d" / "b.txt").read_text() == "from the client\n"
            # On the server's disk where its artifact API keeps it.
            assert [p.name for p in (tmp_path / "dest").rglob("*.txt")] in (
                ["a.txt", "b.txt"], ["b.txt", "a.txt"])

            other = f"http://127.0.0.1:{free_port()}/api/2.0/mlflow-artifacts/artifacts/x"
            eid = client.create_experiment("elsewhere", artifact_location=other)
            rid = client.create_run(eid, run_name="r").info.run_id
            before = client.get_run(rid).data
            art = m.run("elsewhere", "r") / "artifacts"
            expect_errno(errno.ENOTSUP, write_file, art / "c.txt", "x\n")
            assert "not reachable: only the tracking server's own artifact API" in m.log()
            expect_errno(errno.ENOTSUP, os.listdir, art)
            after = client.get_run(rid).data
            assert (after.params, after.metrics, after.tags) == (
                before.params, before.metrics, before.tags)
            assert len(list((tmp_path / "dest").rglob("*.txt"))) == 2


# ---- refusals leave the server unchanged ----------------------------------


def server_state(client, rid):
    r = client.get_run(rid)
    return (r.data.params, r.data.metrics, r.data.tags, r.info.status,
            points(client, rid, "loss"))


def test_refused_writes_change_nothing_on_the_server(rmount, new_run, client):
    _, run_dir, rid = new_run
    sh(f"echo 0.01 > {run_dir}/params/lr")
    sh(f"echo 1 >> {run_dir}/metrics/loss")
    before = server_state(client, rid)

    # A param is immutable (checked by the server).
    expect_errno(errno.EPERM, write_file, run_dir / "params" / "lr", "0.02\n")
    # Over MLflow's limit: checked here, since the server would truncate.
    expect_errno(errno.EFBIG, write_file, run_dir / "params" / "long", "x" * 6001)
    # A malformed line: nothing of the write is logged.
    expect_errno(errno.EINVAL, write_file, run_dir / "metrics" / "loss", "2\nbad\n", "a")
    # Not a status.
    expect_errno(errno.EINVAL, write_file, run_dir / "status", "DONE\n")
    assert server_state(client, rid) == before
    assert "long" not in client.get_run(rid).data.params
    log = rmount.log()
    assert "params/lr" in log and "EPERM" in log


# ---- other clients ---------------------------------------------------------


def test_changes_by_other_clients_show_within_cache_ttl(rmount, client):
    name = unique()
    os.makedirs(rmount.exp(name))
    assert [n for n in os.listdir(rmount.exp(name)) if not n.startswith(".")] == []
    eid = client.get_experiment_by_name(name).experiment_id
    r = client.create_run(eid, run_name="other")
    client.log_metric(r.info.run_id, "acc", 0.5)
    # cache_ttl=1 for this mount: within it, and a margin.
    eventually(lambda: "other" in os.listdir(rmount.exp(name)), timeout=3)
    client.log_metric(r.info.run_id, "acc", 0.75, step=1)
    eventually(lambda: (rmount.run(name, "other") / "metrics" / "acc").read_text() == "0.75\n",
               timeout=3)


# ---- faults between mlflowfs and the server --------------------------------


@pytest.fixture
def faulty(tmp_path, server):
    proxy = FaultProxy(server.url).start()
    m = Mount(tmp_path, uri=proxy.url, args=["-o", "cache_ttl=1"]).start()
    try:
        yield proxy, m
    finally:
        m.stop()
        proxy.stop()


def retries_of(m):
    status = (m.mnt / ".mlflowfs" / "status").read_text()
    return int(status.split("\nretries: ")[1].split("\n")[0])


@pytest.mark.parametrize("mode", ["500", "429", "drop", "drop-after", "slow"])
def test_a_failing_request_is_retried(faulty, client, mode):
    proxy, m = faulty
    _, run_dir, rid = made_run(m)
    before = retries_of(m)
    proxy.fail(mode, 2, only="log-parameter")
    proxy.fail(mode, 2, only="log-batch")
    write_file(run_dir / "params" / "p", "1\n")
    sh(f"printf '0 0.5\\n1 0.25\\n' >> {run_dir}/metrics/loss")
    # Each write's request failed twice, and went through the third time
    # ("slow" is not a failure: one request each, late).
    assert proxy.counts[mode] == (2 if mode == "slow" else 4)
    assert client.get_run(rid).data.params == {"p": "1"}
    # Sent again after the server acted ("drop-after"): still once each.
    assert steps_values(client, rid, "loss") == [(0, 0.5), (1, 0.25)]
    # libcurl itself resends once on a kept-alive connection found closed.
    if mode in ("500", "429"):
        assert retries_of(m) - before == 4


def test_points_go_in_batches_and_close_waits_for_them(rmount, new_run, client):
    _, run_dir, rid = new_run
    status = rmount.mnt / ".mlflowfs" / "status"

    def requests():
        return int(status.read_text().split("\nrequests: ")[1].split("\n")[0])

    before = requests()
    fd = os.open(run_dir / "metrics" / "loss", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    for i in range(3000):
        os.write(fd, f"{i} {i / 1000}\n".encode())
    os.close(fd)
    # Acknowledged at close: all there now, in far fewer requests than lines.
    assert steps_values(client, rid, "loss") == [(i, i / 1000) for i in range(3000)]
    assert requests() - before < 300
    assert "pending_points: 0\n" in status.read_text()


def test_a_history_is_read_once_for_a_cat_and_kept_for_cache_ttl(tmp_path, client, server):
    """cat history/<key> looks its size up, opens and fstats it: one read of
    the points from the server serves all three, and another cat within
    cache_ttl (3 s here, room for a slow machine); what this mount logs
    shows at once, what another client logs after cache_ttl."""
    from mlflow.entities import Metric

    with Mount(tmp_path, name="h", uri=server.url, args=["-o", "cache_ttl=3"]) as m:
        _, run_dir, rid = made_run(m)
        client.log_batch(rid, metrics=[Metric("loss", 1 / (i + 1), 1000 + i, i)
                                       for i in range(900)])
        h = run_dir / "history" / "loss"
        fetches = lambda: server.logfile.read_text().count("/metrics/get-history")  # noqa: E731
        before = fetches()
        text = sh(f"cat {h}").stdout
        assert len(text.splitlines()) == 900
        assert sh(f"cat {h}").stdout == text
        assert os.stat(h).st_size == len(text)
        assert fetches() - before == 1
        sh(f"echo 0.5 >> {run_dir}/metrics/loss")
        assert len(h.read_text().splitlines()) == 901
        client.log_metric(rid, "loss", 0.25, step=5000)
        time.sleep(3.1)
        assert len(h.read_text().splitlines()) == 902


def test_a_busy_writer_does_not_hold_up_a_reader(rmount, new_run):
    import threading

    _, run_dir, _ = new_run
    stop = threading.Event()

    def writer():
        fd = os.open(run_dir / "metrics" / "busy", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            i = 0
            while not stop.is_set():  # a point a millisecond, as a fast training loop
                os.write(fd, f"{i} 1\n".encode())
                i += 1
                time.sleep(0.001)
        finally:
            os.close(fd)

    t = threading.Thread(target=writer)
    t.start()
    try:
        time.sleep(1.0)
        t0 = time.monotonic()
        lines = (run_dir / "history" / "busy").read_text().splitlines()
        took = time.monotonic() - t0
    finally:
        stop.set()
        t.join()
    assert lines, "the history shows the points written before the read"
    # It waits for what was written before it, not for what comes after.
    assert took < 5, took


@pytest.mark.parametrize("mode", ["500", "drop", "drop-after"])
def test_a_stream_that_fails_is_sent_again_whole(faulty, client, tmp_path, mode):
    proxy, m = faulty
    _, run_dir, rid = made_run(m)
    data = os.urandom(12 * MIB)
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    proxy.fail(mode, 2, only="mlflow-artifacts/artifacts/")
    sh(f"cp {src} {run_dir}/artifacts/w.bin")
    assert proxy.counts[mode] == 2
    assert server_bytes(client, rid, "w.bin", tmp_path) == data
    assert status_of(m)["uploads_failed"] == "0"


def test_points_the_server_refuses_fail_the_close(faulty, client):
    proxy, m = faulty
    _, run_dir, rid = made_run(m)
    proxy.fail("500", 1000, only="log-batch")
    fd = os.open(run_dir / "metrics" / "loss", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, b"0 0.5\n")  # accepted: it is sent in the background
    expect_errno(errno.EIO, os.close, fd)
    assert steps_values(client, rid, "loss") == []
    assert "cannot log the metric" in m.log()
    errors = (m.mnt / ".mlflowfs" / "errors").read_text()
    assert f"/runs/{rid}/metrics/loss EIO" in errors and "cannot log the metric" in errors


def test_exhausted_retries_give_eio_and_change_nothing(faulty, client):
    proxy, m = faulty
    _, run_dir, rid = made_run(m)
    proxy.fail("500", 1000, only="log-parameter")
    t0 = time.monotonic()
    expect_errno(errno.EIO, write_file, run_dir / "params" / "p", "1\n")
    assert time.monotonic() - t0 < 35
    assert client.get_run(rid).data.params == {}
    assert "HTTP 500 INTERNAL_ERROR: injected" in m.log()
    proxy.clear()
    write_file(run_dir / "params" / "p", "1\n")
    assert client.get_run(rid).data.params == {"p": "1"}


def test_no_acknowledged_point_is_lost_under_faults(faulty, client):
    proxy, m = faulty
    _, run_dir, rid = made_run(m)
    proxy.fail("drop-after", 1000, only="log-batch", every=3)
    proxy.fail("500", 1000, only="log-batch", every=4)
    proxy.fail("drop", 1000, only="log-batch", every=5)
    r = sh(f"for i in $(seq 0 59); do echo $i >> {run_dir}/metrics/m || exit 1; done",
           check=False)
    assert r.returncode == 0, r.stderr
    assert sum(proxy.counts.values()) >= 15
    assert steps_values(client, rid, "m") == [(i, float(i)) for i in range(60)]


# ---- mounting -------------------------------------------------------------


def status_of(m):
    return dict(line.split(": ", 1)
                for line in (m.mnt / ".mlflowfs" / "status").read_text().splitlines())


def test_status_names_the_server_and_counts_requests_and_uploads(rmount, new_run, server):
    _, run_dir, _ = new_run
    before = status_of(rmount)
    assert (before["store"], before["uri"]) == ("rest", server.url)
    assert int(before["requests"]) >= 1
    assert (before["pending_uploads"], before["uploads"], before["uploads_failed"]) == (
        "0", "0", "0")
    # A file written and not closed waits for its upload; its close sends it.
    fd = os.open(run_dir / "artifacts" / "a.txt", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"x\n")
        assert status_of(rmount)["pending_uploads"] == "1"
    finally:
        os.close(fd)
    after = status_of(rmount)
    assert (after["pending_uploads"], after["uploads"], after["uploads_failed"]) == (
        "0", "1", "0")
    assert int(after["artifact_requests"]) > int(before["artifact_requests"])


def test_credentials_are_never_shown(tmp_path, server):
    uri = server.url.replace("http://", "http://alice:s3cr3t-pw@")
    m = Mount(tmp_path, uri=uri).start()
    try:
        assert os.listdir(m.mnt / "experiments")
        assert "s3cr3t" not in (m.mnt / ".mlflowfs" / "status").read_text()
        with open("/proc/mounts") as f:
            assert "s3cr3t" not in f.read()
    finally:
        m.stop()
    assert "s3cr3t" not in m.log()


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_an_unreachable_server_fails_the_mount_with_one_line(tmp_path, how):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    uri = f"http://bob:hunter2-pw@127.0.0.1:{free_port()}"
    env = dict(os.environ)
    args = [mlflowfs_binary()]
    if how == "argument":
        args.append(uri)
    else:
        env["MLFLOW_TRACKING_URI"] = uri
    args.append(str(mnt))
    t0 = time.monotonic()
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1
    assert not os.path.ismount(mnt)
    assert time.monotonic() - t0 < 30
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("mlflowfs: cannot mount 'http://127.0.0.1:"), err
    assert "connect" in err.lower()
    assert "hunter2" not in err and "bob" not in err


def test_artifact_root_is_refused_for_a_server(tmp_path, server):
    """Where a server's artifacts go is the server's choice: the option
    that says it for the local store fails the mount instead of being
    ignored."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run([mlflowfs_binary(), "--artifact-root", str(tmp_path / "a"), server.url,
                        str(mnt)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert not os.path.ismount(mnt)
    assert r.stderr.strip().splitlines() == [
        "mlflowfs: --artifact-root is for the local store: a tracking server puts "
        "artifacts where its own --default-artifact-root says"], r.stderr


@pytest.mark.slow
def test_server_gone_gives_eio_and_the_mount_recovers(tmp_path):
    srv = MlflowServer(None, tmp_path / "server.db", tmp_path / "srv",
                       artifacts=tmp_path / "artifacts").start()
    m = None
    try:
        m = Mount(tmp_path, uri=srv.url, args=["-o", "cache_ttl=0"]).start()
        run_dir = m.run("outage", "r")
        os.makedirs(run_dir)
        rid = run_id_of(run_dir)
        sh(f"echo 1 >> {run_dir}/metrics/loss")
        fd = os.open(run_dir / "artifacts" / "late.txt", os.O_WRONLY | os.O_CREAT, 0o644)
        srv.stop()

        t0 = time.monotonic()
        expect_errno(errno.EIO, write_file, run_dir / "params" / "lr", "0.1\n")
        # An artifact written while the server was there: its upload fails its close.
        os.write(fd, b"x\n")
        expect_errno(errno.EIO, os.close, fd)
        assert time.monotonic() - t0 < 35  # the retry bound, mlflowfs(1)
        assert "connect" in m.log().lower()
        # The daemon keeps answering what needs no server.
        assert "store: rest" in (m.mnt / ".mlflowfs" / "status").read_text()

        srv.start()  # the same database, on the same port
        write_file(run_dir / "params" / "lr", "0.1\n")
        sh(f"echo 2 >> {run_dir}/metrics/loss")
        c = srv.client()
        assert c.get_run(rid).data.params == {"lr": "0.1"}
        assert steps_values(c, rid, "loss") == [(0, 1.0), (1, 2.0)]
    finally:
        if m:
            m.stop()
        srv.stop()


# ---- authentication (mlflow server --app-name basic-auth) -------------------

ADMIN = ("admin", "admin-pass-0123")
READER = ("reader", "reader-pass-0123")


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("auth")
    ini = tmp / "auth.ini"
    ini.write_text("[mlflow]\n"
                   "default_permission = READ\n"
                   f"database_uri = sqlite:///{tmp}/basic_auth.db\n"
                   f"admin_username = {ADMIN[0]}\n"
                   f"admin_password = {ADMIN[1]}\n"
                   "authorization_function = "
                   "mlflow.server.auth:authenticate_request_basic_auth\n")
    s = MlflowServer(None, tmp / "server.db", tmp, artifacts=tmp / "artifacts",
                     args=["--app-name", "basic-auth"],
                     env={"MLFLOW_AUTH_CONFIG_PATH": str(ini),
                          "MLFLOW_FLASK_SERVER_SECRET_KEY": "mlflowfs-tests"}).start()
    try:
        s.post("/api/2.0/mlflow/users/create",
               {"username": READER[0], "password": READER[1]}, auth=ADMIN)
        eid = s.post("/api/2.0/mlflow/experiments/create", {"name": "owned"},
                     auth=ADMIN)["experiment_id"]
        run = s.post("/api/2.0/mlflow/runs/create",
                     {"experiment_id": eid, "run_name": "r", "start_time": 1700000000000},
                     auth=ADMIN)["run"]
        s.post("/api/2.0/mlflow/runs/log-parameter",
               {"run_id": run["info"]["run_id"], "key": "lr", "value": "0.1"}, auth=ADMIN)
        s.run_id = run["info"]["run_id"]
        yield s
    finally:
        s.stop()


def as_user(user):
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_TOKEN", None)
    env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"] = user
    return env


def admin_client(server):
    """The admin's view of the fixture's run, through MlflowClient (which
    reads its credentials from the environment at each request)."""
    import mlflow
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = ADMIN
    try:
        return mlflow.MlflowClient(tracking_uri=server.url).get_run(server.run_id)
    finally:
        del os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]


def test_right_credentials_mount_and_write(tmp_path, auth_server):
    m = Mount(tmp_path, uri=auth_server.url, env=as_user(ADMIN)).start()
    try:
        run = m.run("owned", "r")
        assert (run / "params" / "lr").read_text() == "0.1\n"
        sh(f"echo 1 >> {run}/metrics/loss")
    finally:
        m.stop()
    assert admin_client(auth_server).data.metrics == {"loss": 1.0}


def test_wrong_credentials_fail_the_mount_with_one_line(tmp_path, auth_server):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = as_user(("admin", "wrong-password-77"))
    r = subprocess.run([mlflowfs_binary(), auth_server.url, str(mnt)], capture_output=True,
                       text=True, env=env, timeout=60)
    assert r.returncode == 1
    assert not os.path.ismount(mnt)
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert "HTTP 401" in err and "MLFLOW_TRACKING_USERNAME" in err, err
    assert "wrong-password" not in err


def test_a_reader_reads_and_gets_eacces_on_write(tmp_path, auth_server):
    m = Mount(tmp_path, uri=auth_server.url, env=as_user(READER)).start()
    try:
        run = m.run("owned", "r")
        assert (run / "params" / "lr").read_text() == "0.1\n"
        before = admin_client(auth_server)
        expect_errno(errno.EACCES, write_file, run / "params" / "batch", "32\n")
        expect_errno(errno.EACCES, write_file, run / "tags" / "k", "v\n")
        after = admin_client(auth_server)
        assert (after.data.params, after.data.tags) == (before.data.params, before.data.tags)
        assert "HTTP 403" in m.log()
    finally:
        m.stop()


# ---- TLS: nginx with a self-signed certificate in front of the server ---------


@pytest.fixture(scope="module")
def tls_url(tmp_path_factory, server):
    """https://127.0.0.1:PORT, an nginx terminating TLS (a self-signed
    certificate for 127.0.0.1) in front of the module's server; and the
    certificate's path."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx):
        pytest.skip("nginx is not installed (tests/run-all.sh installs nginx-light)")
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    port = free_port()
    upstream = server.url.split("//")[1]
    (tmp / "nginx.conf").write_text(f"""
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        client_max_body_size 0;
        location / {{
            proxy_pass http://{upstream};
            proxy_request_buffering off;
        }}
    }}
}}
""")
    proc = subprocess.Popen([nginx, "-p", str(tmp), "-c", str(tmp / "nginx.conf"),
                             "-g", "daemon off;"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, \
                (tmp / "error.log").read_text()
            time.sleep(0.05)
        yield f"https://127.0.0.1:{port}", cert
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def tls_env(**extra):
    env = dict(os.environ)
    for k in ("MLFLOW_TRACKING_SERVER_CERT_PATH", "MLFLOW_TRACKING_INSECURE_TLS"):
        env.pop(k, None)
    env.update(extra)
    return env


def test_tls_with_the_servers_certificate(tmp_path, tls_url, client):
    url, cert = tls_url
    m = Mount(tmp_path, uri=url, env=tls_env(MLFLOW_TRACKING_SERVER_CERT_PATH=str(cert))).start()
    try:
        name = unique()
        os.makedirs(m.run(name, "r"))
        sh(f"echo 0.5 > {m.run(name, 'r')}/params/p")
        write_file(m.run(name, "r") / "artifacts" / "a.txt", "over tls\n")
        rid = run_id_of(m.run(name, "r"))
    finally:
        m.stop()
    assert client.get_run(rid).data.params == {"p": "0.5"}
    assert [a.path for a in client.list_artifacts(rid)] == ["a.txt"]


def test_tls_without_the_certificate_fails_clearly(tmp_path, tls_url):
    url, _ = tls_url
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run([mlflowfs_binary(), url, str(mnt)], capture_output=True, text=True,
                       env=tls_env(), timeout=60)
    assert r.returncode == 1 and not os.path.ismount(mnt)
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert "certificate" in err and "MLFLOW_TRACKING_SERVER_CERT_PATH" in err, err


def test_tls_insecure_skips_the_check(tmp_path, tls_url):
    url, _ = tls_url
    m = Mount(tmp_path, uri=url, env=tls_env(MLFLOW_TRACKING_INSECURE_TLS="true")).start()
    try:
        assert "experiments" in os.listdir(m.mnt)
        assert os.listdir(m.mnt / "experiments")
    finally:
        m.stop()
