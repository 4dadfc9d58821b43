"""Real programs on the tree (mlflowfs(1), THE TREE to WHEN DATA IS SAFE):
shell loops, cp, mv, diff, grep, find, tar, rsync, dd, head/tail/wc, ls and
stat on the mount, and unmodified Python programs that log a training run
with plain file writes.  Every result is cross-checked with the MLflow client on the same database.
"""
import errno
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time

import pytest

from conftest import EXP_FIXED, db_snapshot, have, run_id_of, sh
from helpers_tools import (artifact_dir, assert_refusal_logged, eventually,
                           list_artifacts_recursive, run_info, tree)

needs_rsync = pytest.mark.skipif(not have("rsync"), reason="rsync is not installed")


def history(client, run_id, key):
    """(step, value, timestamp) of every point, in MLflow's order."""
    pts = client.get_metric_history(run_id, key)
    return sorted((m.step, m.value, m.timestamp) for m in pts)


def make_run(mount, exp, name, params=(), metrics=(), tags=()):
    """A run made through the mount by a shell script; returns its folder.
    metrics: {key: [lines]}, each line appended with its own echo >>."""
    run = mount.run(exp, name)
    script = ["set -e", f"mkdir -p '{run}'"]
    for sect, items in (("params", params), ("metrics", metrics), ("tags", tags)):
        for k, v in dict(items).items():
            if "/" in k:
                script.append(f"mkdir -p '{run}/{sect}/{k.rsplit('/', 1)[0]}'")
            if sect == "metrics":
                script += [f"echo '{line}' >> '{run}/metrics/{k}'" for line in v]
            else:
                script.append(f"echo '{v}' > '{run}/{sect}/{k}'")
    sh("\n".join(script))
    return run


# ---- shell scripts --------------------------------------------------------


def test_shell_loops_log_params_metrics_and_tags(mount, client):
    run = mount.run("loops", "r1")
    sh(f"""set -e
        mkdir -p {run}
        cd {run}
        for k in lr:0.01 batch:32 opt:adam; do
            echo "${{k#*:}}" > "params/${{k%%:*}}"
        done
        i=0
        while [ $i -lt 50 ]; do
            echo "$i 0.$i" >> metrics/loss
            echo "1.$i" >> metrics/acc
            i=$((i + 1))
        done
        for t in a b c; do echo "value-$t" > tags/$t; done
        echo FINISHED > status""")
    got = client.get_run(run_id_of(run))
    assert got.data.params == {"lr": "0.01", "batch": "32", "opt": "adam"}
    assert {k: v for k, v in got.data.tags.items() if not k.startswith("mlflow.")} == {
        "a": "value-a", "b": "value-b", "c": "value-c"}
    assert got.info.status == "FINISHED"
    loss = history(client, got.info.run_id, "loss")
    assert [(s, v) for s, v, _ in loss] == [(i, float(f"0.{i}")) for i in range(50)]
    acc = history(client, got.info.run_id, "acc")
    assert [(s, v) for s, v, _ in acc] == [(i, float(f"1.{i}")) for i in range(50)]
    # The files show what MLflow holds: the latest values.
    assert (run / "metrics" / "loss").read_text() == "0.49\n"
    assert got.data.metrics == {"loss": 0.49, "acc": 1.49}
    assert sorted(os.listdir(run / "params")) == ["batch", "lr", "opt"]


def test_cp_param_file_and_cp_r_params_folder_into_other_runs(mount, client):
    src = make_run(mount, "cp", "src",
                   params={"lr": "0.01", "batch": "64", "optim/name": "sgd",
                           "optim/momentum": "0.9"})
    one = make_run(mount, "cp", "one")
    many = make_run(mount, "cp", "many")
    sh(f"cp {src}/params/lr {one}/params/lr")
    sh(f"cp -r {src}/params {many}/")
    assert client.get_run(run_id_of(one)).data.params == {"lr": "0.01"}
    assert client.get_run(run_id_of(many)).data.params == {
        "lr": "0.01", "batch": "64", "optim/name": "sgd", "optim/momentum": "0.9"}
    assert (many / "params" / "optim" / "momentum").read_text() == "0.9\n"
    # Copying the same values again is harmless: a param may be rewritten as is.
    before = db_snapshot(mount.db)
    sh(f"cp -r {src}/params {many}/")
    assert db_snapshot(mount.db) == before


def test_cp_of_a_different_value_onto_a_logged_param_fails_and_changes_nothing(mount, client):
    a = make_run(mount, "cp", "a", params={"lr": "0.01"})
    b = make_run(mount, "cp", "b", params={"lr": "0.5"})
    before = db_snapshot(mount.db)
    r = sh(f"cp {a}/params/lr {b}/params/lr", check=False)
    assert r.returncode != 0
    assert "Operation not permitted" in r.stderr
    assert db_snapshot(mount.db) == before
    assert client.get_run(run_id_of(b)).data.params == {"lr": "0.5"}
    assert_refusal_logged(mount, b / "params" / "lr", errno.EPERM)


def test_cp_of_history_into_metrics_replays_every_point(mount, client):
    a = make_run(mount, "cph", "a", metrics={
        "loss": [f"{s} {v} {1700000000000 + 10 * s}" for s, v in
                 [(0, 1.5), (3, 1.25), (7, 0.5), (7, 0.75)]]})
    b = make_run(mount, "cph", "b")
    sh(f"cp {a}/history/loss {b}/metrics/loss")
    ha = history(client, run_id_of(a), "loss")
    hb = history(client, run_id_of(b), "loss")
    assert hb == ha
    assert len(hb) == 4
    assert (b / "history" / "loss").read_bytes() == (a / "history" / "loss").read_bytes()


def _renamed(run, name):
    assert run.info.run_name == name
    return run


def test_mv_renames_a_run_and_moves_artifacts(mount, client, tmp_path):
    run = make_run(mount, "mv", "old", params={"lr": "0.1"})
    rid = run_id_of(run)
    outside = tmp_path / "model.bin"
    outside.write_bytes(b"\x00weights\xff" * 1000)
    # mv from another file system into artifacts/: a copy then an unlink.
    sh(f"mv {outside} {run}/artifacts/model.bin")
    assert not outside.exists()
    sh(f"mkdir {run}/artifacts/ckpt && mv {run}/artifacts/model.bin {run}/artifacts/ckpt/")
    sh(f"mv {run} {mount.exp('mv')}/new")
    # A rename is no descriptor's write: committed within the 20 ms interval.
    got = eventually(lambda: _renamed(client.get_run(rid), "new"))
    assert got.data.tags["mlflow.runName"] == "new"
    assert got.data.params == {"lr": "0.1"}
    assert sorted(os.listdir(mount.exp("mv"))) == [*EXP_FIXED, "new"]
    disk = artifact_dir(client, mount.run("mv", "new"), mount)
    assert (disk / "ckpt" / "model.bin").read_bytes() == b"\x00weights\xff" * 1000
    assert list_artifacts_recursive(client, rid) == {"ckpt": None, "ckpt/model.bin": 9000}


def test_mv_of_a_run_to_another_experiment_is_refused_without_copying(mount, client):
    run = make_run(mount, "mva", "r", params={"lr": "0.1"}, metrics={"loss": ["1", "2"]})
    os.mkdir(mount.exp("mvb"))
    rid = run_id_of(run)
    eventually(lambda: client.get_experiment_by_name("mvb").experiment_id)
    before = db_snapshot(mount.db)
    r = sh(f"mv {run} {mount.exp('mvb')}/r", check=False)
    assert r.returncode != 0
    assert "Operation not permitted" in r.stderr
    assert db_snapshot(mount.db) == before
    assert sorted(os.listdir(mount.exp("mvb"))) == [*EXP_FIXED]
    assert client.get_run(rid).info.experiment_id == \
        client.get_experiment_by_name("mva").experiment_id
    assert_refusal_logged(mount, run, errno.EPERM)


def test_mv_of_a_param_is_refused(mount, client):
    run = make_run(mount, "mvp", "r", params={"lr": "0.1"})
    before = db_snapshot(mount.db)
    r = sh(f"mv {run}/params/lr {run}/params/lr2", check=False)
    assert r.returncode != 0 and "Operation not permitted" in r.stderr
    assert db_snapshot(mount.db) == before
    assert client.get_run(run_id_of(run)).data.params == {"lr": "0.1"}
    assert_refusal_logged(mount, run / "params" / "lr", errno.EPERM)


def _user_tags(client, run):
    tags = client.get_run(run_id_of(run)).data.tags
    return {k: v for k, v in tags.items() if not k.startswith("mlflow.")}


def test_mv_of_a_folder_of_tags_moves_each_tag(mount, client):
    run = make_run(mount, "mvt", "r", tags={"team/lead": "bob", "team/size": "3", "k": "v"})
    # The daemon answers EXDEV; mv then moves the tags one by one, setting
    # modes and owner as they are, quietly.
    r = sh(f"mv {run}/tags/team {run}/tags/group")
    assert r.stderr == ""
    assert sorted(os.listdir(run / "tags" / "group")) == ["lead", "size"]
    assert not (run / "tags" / "team").exists()
    assert eventually(lambda: _check_tags(client, run, {"group/lead": "bob",
                                                         "group/size": "3", "k": "v"}))


def _check_tags(client, run, want):
    assert _user_tags(client, run) == want
    return True


def test_cp_a_of_tags_into_another_run_keeps_quiet(mount, client):
    src = make_run(mount, "cpa", "src", tags={"team/lead": "bob", "note": "hi"})
    dst = make_run(mount, "cpa", "dst")
    r = sh(f"cp -a {src}/tags/team {src}/tags/note {dst}/tags/")
    assert r.stderr == ""
    assert _user_tags(client, dst) == {"team/lead": "bob", "note": "hi"}


def test_rm_of_an_open_tag_keeps_it_removed(mount, client):
    run = make_run(mount, "rmo", "r", tags={"k": "v"})
    for name in ("k", "fresh"):
        p = run / "tags" / name
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            os.write(fd, b"new\n")
            os.unlink(p)
            assert name not in os.listdir(run / "tags")
            assert os.fstat(fd).st_nlink == 0
            os.write(fd, b"more\n")
        finally:
            os.close(fd)
        assert name not in os.listdir(run / "tags")
    assert _user_tags(client, run) == {}


# ---- diff, grep, find -----------------------------------------------------

TS = 1700000000000


def twin_runs(mount, lr_b="0.01"):
    """Two runs logged the same way (explicit steps and times), differing at
    most in param lr."""
    lines = [f"{s} {0.5 + s / 8} {TS + s}" for s in range(5)]
    common = dict(metrics={"loss": lines, "val/acc": lines}, tags={"team": "vision"})
    a = make_run(mount, "twins", "a", params={"lr": "0.01", "bs": "8"}, **common)
    b = make_run(mount, "twins", "b", params={"lr": lr_b, "bs": "8"}, **common)
    return a, b


def test_diff_r_of_identical_runs_differs_only_in_identity(mount, client):
    a, b = twin_runs(mount)
    r = sh(f"diff -r {a} {b}", check=False)
    assert r.returncode == 1, r.stderr
    changed = sorted(ln.split()[-1] for ln in r.stdout.splitlines() if ln.startswith("diff -r"))
    # Only what names the run differs: its id, its name tag, the whole-run JSON.
    assert changed == sorted(str(b / f) for f in ("run.json", "run_id", "tags/mlflow.runName"))
    r = sh(f"diff -r -x run_id -x run.json -x mlflow.runName {a} {b}", check=False)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    ra, rb = client.get_run(run_id_of(a)), client.get_run(run_id_of(b))
    assert ra.data.params == rb.data.params and ra.data.metrics == rb.data.metrics


def test_diff_r_shows_a_differing_param(mount, client):
    a, b = twin_runs(mount, lr_b="0.02")
    opts = "-x run_id -x run.json -x mlflow.runName"
    r = sh(f"diff -r {opts} {a} {b}", check=False)
    assert r.returncode == 1
    assert r.stdout.splitlines() == [f"diff -r {opts} {a}/params/lr {b}/params/lr",
                                     "1c1", "< 0.01", "---", "> 0.02"]
    assert client.get_run(run_id_of(b)).data.params["lr"] == "0.02"


def test_grep_sort_tail_finds_the_best_run_as_mlflow_does(mount, client):
    accs = {"r1": "0.81", "r2": "0.9", "r3": "0.875", "r4": "1e-1", "r5": "0.899"}
    for name, acc in accs.items():
        make_run(mount, "best", name, metrics={"acc": ["0.1", acc]})
    e = mount.exp("best")
    r = sh("grep -H . */metrics/acc | sort -t: -k2 -g | tail -1", cwd=e)
    assert r.stdout == "r2/metrics/acc:0.9\n"
    exp = client.get_experiment_by_name("best")
    top = client.search_runs([exp.experiment_id], order_by=["metrics.acc DESC"],
                             max_results=1)[0]
    assert top.info.run_name == "r2"
    assert float(r.stdout.split(":")[1]) == top.data.metrics["acc"]


def test_grep_r_over_an_experiment_finds_runs_by_param(mount, client):
    for name, lr in [("a", "0.01"), ("b", "0.1"), ("c", "0.01"), ("d", "0.001")]:
        make_run(mount, "grep", name, params={"lr": lr, "note": f"lr is {lr}"})
    r = sh("grep -rlx --include=lr 0.01 . | sort", cwd=mount.exp("grep"))
    assert r.stdout.split() == ["./a/params/lr", "./c/params/lr"]
    exp = client.get_experiment_by_name("grep")
    found = client.search_runs([exp.experiment_id], "params.lr = '0.01'")
    assert sorted(x.info.run_name for x in found) == ["a", "c"]
    # grep -r reads every file of the tree, run.json and history included,
    # and the runs tables, whose row for b ends with its note.
    r = sh("grep -r -c 'lr is 0.1$' .", cwd=mount.exp("grep"))
    hits = [ln for ln in r.stdout.splitlines() if not ln.endswith(":0")]
    assert sorted(hits) == ["./.runs.csv:1", "./.runs.tsv:1", "./b/params/note:1"]


def test_find_by_name_and_type(mount, client):
    for name in ("x", "y"):
        run = make_run(mount, "find", name, params={"lr": "1"},
                       metrics={"acc": ["1"], "train/loss": ["2"]})
    (run / "artifacts" / "model.bin").write_bytes(b"m")
    e = mount.exp("find")
    r = sh("find . -path '*/metrics/*' -name loss | sort", cwd=e)
    assert r.stdout.split() == ["./x/metrics/train/loss", "./y/metrics/train/loss"]
    r = sh("find . -mindepth 1 -maxdepth 1 -type d | sort", cwd=e)
    exp = client.get_experiment_by_name("find")
    names = sorted(x.info.run_name for x in client.search_runs([exp.experiment_id]))
    assert r.stdout.split() == ["./.models", "./.plots", "./.tags"] + [f"./{n}" for n in names]
    r = sh("find y -type f | sort", cwd=e)
    # (Besides the provenance tags mkdir set: test_provenance.py's.)
    assert [f for f in r.stdout.split() if "/mlflow.source." not in f] == sorted([
        "y/run_id", "y/status", "y/run.json", "y/params/lr", "y/metrics/acc",
        "y/metrics/train/loss", "y/history/acc", "y/history/acc.svg", "y/history/train/loss",
        "y/history/train/loss.svg",
        "y/tags/mlflow.runName", "y/tags/mlflow.user", "y/artifacts/model.bin"])
    # runs/ holds one link per active run, named by run id.
    r = sh("find runs -type l | sort", cwd=mount.mnt)
    ids = sorted(x.info.run_id for x in client.search_runs(
        [x.experiment_id for x in client.search_experiments()]))
    assert r.stdout.split() == [f"runs/{i}" for i in ids]


def test_find_newer_picks_what_changed_after_a_reference(mount, client, tmp_path):
    for name in ("old", "new"):
        make_run(mount, "newer", name, metrics={"acc": ["0.5"], "loss": ["1"]})
    time.sleep(0.02)
    ref = tmp_path / "ref"
    ref.write_text("")
    time.sleep(0.02)
    new = mount.run("newer", "new")
    sh(f"echo 0.7 >> {new}/metrics/acc")
    e = mount.exp("newer")
    r = sh(f"find . -mindepth 1 -maxdepth 1 -newer {ref}", cwd=e)
    assert r.stdout.split() == ["./new"]
    r = sh(f"find . -path '*/metrics/*' -newer {ref}", cwd=e)
    assert r.stdout.split() == ["./new/metrics/acc"]
    pts = history(client, run_id_of(new), "acc")
    assert pts[-1][2] / 1000 > os.stat(ref).st_mtime


# ---- tar, rsync, dd, head/tail/wc, ls/stat -------------------------------


def rich_run(mount, exp="arch", name="r"):
    """A run with params, metrics (nested key), tags and artifacts."""
    run = make_run(mount, exp, name, params={"lr": "0.01", "opt/beta": "0.9"},
                   metrics={"loss": [f"{s} {1 / (s + 1)}" for s in range(20)],
                            "val/acc": ["0.5", "0.75"]},
                   tags={"team": "nlp", "mlflow.note.content": "notes"})
    art = run / "artifacts"
    (art / "sub").mkdir()
    (art / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 300)
    (art / "log.txt").write_text("epoch 1\n")
    return run


def test_tar_of_a_run_folder_reads_exactly_what_the_files_hold(mount, make_mount, client,
                                                              tmp_path):
    run = rich_run(mount)
    # A second mount of the same store, whose kernel caches are fresh: the
    # stale-cache bug of the next test does not apply.
    other = make_mount(name="reader")
    archive = tmp_path / "run.tar"
    r = subprocess.run(["tar", "-cf", str(archive), "r"], cwd=other.exp("arch"),
                       capture_output=True, text=True)
    assert (r.returncode, r.stderr) == (0, "")
    out = tmp_path / "x"
    out.mkdir()
    sh(f"tar -xf {archive} -C {out}")
    assert tree(out / "r") == tree(run)
    with tarfile.open(archive) as t:
        names = set(t.getnames())
        sizes = {m.name: m.size for m in t.getmembers() if m.isfile()}
    for f in ("r/run.json", "r/params/opt/beta", "r/history/loss", "r/metrics/val/acc",
              "r/tags/mlflow.note.content", "r/artifacts/sub/weights.bin"):
        assert f in names
        assert sizes[f] == len((run / f[2:]).read_bytes())
    hist = history(client, run_id_of(run), "loss")
    assert len((out / "r/history/loss").read_text().splitlines()) == len(hist) == 20


def test_tar_right_after_logging_does_not_warn(mount, tmp_path):
    run = rich_run(mount)
    os.stat(run)                       # as any ls would: the kernel keeps it 1 s
    time.sleep(0.005)                  # the next point is a later millisecond
    sh(f"echo 0.1 >> {run}/metrics/loss")
    r = subprocess.run(["tar", "-cf", str(tmp_path / "run.tar"), "r"], cwd=mount.exp("arch"),
                       capture_output=True, text=True)
    assert (r.returncode, r.stderr) == (0, "")


@needs_rsync
def test_rsync_a_of_a_run_out_of_the_mount_then_diff_is_clean(mount, tmp_path):
    run = rich_run(mount)
    dst = tmp_path / "copy"
    r = subprocess.run(["rsync", "-a", f"{run}/", f"{dst}/"], capture_output=True, text=True)
    assert (r.returncode, r.stderr) == (0, "")
    r = sh(f"diff -r {run} {dst}", check=False)
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert os.stat(dst / "metrics" / "loss").st_mtime == os.stat(run / "metrics" / "loss").st_mtime


@needs_rsync
def test_rsync_into_artifacts_stores_the_tree(mount, client, run_dir, tmp_path):
    src = tmp_path / "data"
    (src / "a" / "b").mkdir(parents=True)
    (src / "top.csv").write_text("x,y\n1,2\n")
    (src / "a" / "b" / "deep.bin").write_bytes(os.urandom(100_000))
    os.chmod(src / "top.csv", 0o640)
    os.utime(src / "top.csv", (1_000_000_000, 1_000_000_000))
    dst = run_dir / "artifacts" / "data"
    r = subprocess.run(["rsync", "-a", f"{src}/", f"{dst}/"], capture_output=True, text=True)
    assert (r.returncode, r.stderr) == (0, "")
    disk = artifact_dir(client, run_dir, mount) / "data"
    assert tree(disk) == tree(src)
    assert tree(dst) == tree(src)
    if not mount.remote:  # the server keeps no modes or times
        st = os.stat(disk / "top.csv")
        assert (st.st_mode & 0o777, st.st_mtime) == (0o640, 1_000_000_000)
        # A second rsync finds everything up to date: sizes and times are exact.
        r = subprocess.run(["rsync", "-ai", f"{src}/", f"{dst}/"], capture_output=True,
                           text=True)
        assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    listed = list_artifacts_recursive(client, run_id_of(run_dir))
    assert listed == {"data": None, "data/a": None, "data/a/b": None,
                      "data/a/b/deep.bin": 100_000,
                      "data/top.csv": 8}


@needs_rsync
@pytest.mark.local_only("the server keeps regular files and folders only")
def test_rsync_a_copies_symlinks_into_artifacts(mount, client, run_dir, tmp_path):
    src = tmp_path / "data"
    (src / "b").mkdir(parents=True)
    (src / "b" / "deep.bin").write_bytes(b"deep")
    os.symlink("b/deep.bin", src / "deep")
    os.symlink("/nonexistent/target", src / "dangling")
    r = subprocess.run(["rsync", "-a", f"{src}/", f"{run_dir}/artifacts/data/"],
                       capture_output=True, text=True)
    assert (r.returncode, r.stderr) == (0, "")
    assert tree(artifact_dir(client, run_dir, mount) / "data") == tree(src)
    assert tree(run_dir / "artifacts" / "data") == tree(src)


def test_dd_writes_and_patches_an_artifact_and_reads_virtual_files(mount, client, run_dir,
                                                                   tmp_path):
    src = tmp_path / "src.bin"
    data = os.urandom(256 * 1024)
    src.write_bytes(data)
    blob = run_dir / "artifacts" / "blob"
    sh(f"dd if={src} of={blob} bs=64k status=none")
    sh(f"printf PATCH | dd of={blob} bs=1 seek=100000 conv=notrunc status=none")
    want = data[:100000] + b"PATCH" + data[100005:]
    assert (artifact_dir(client, run_dir, mount) / "blob").read_bytes() == want
    assert blob.read_bytes() == want
    r = subprocess.run(["dd", f"if={blob}", "bs=1000", "skip=100", "count=1", "status=none"],
                       capture_output=True)
    assert r.stdout == want[100000:101000]
    # Small reads at odd offsets of a virtual file give the same bytes as one read.
    sh(f"echo 0.25 >> {run_dir}/metrics/m && echo 0.5 > {run_dir}/params/p")
    whole = (run_dir / "run.json").read_bytes()
    r = subprocess.run(["dd", f"if={run_dir}/run.json", "bs=7", "status=none"],
                       capture_output=True)
    assert r.stdout == whole
    r = subprocess.run(["dd", f"if={run_dir}/run.json", "bs=5", "skip=3", "count=4",
                        "status=none"], capture_output=True)
    assert r.stdout == whole[15:35]


def test_head_tail_wc_on_history(mount, client):
    run = make_run(mount, "hist", "r",
                   metrics={"loss": [f"{s} {s / 4} {TS + 1000 * s}" for s in range(100)]})
    h = run / "history" / "loss"
    assert sh(f"wc -l < {h}").stdout.strip() == "100"
    assert sh(f"head -1 {h}").stdout == f"0 0 {TS}\n"
    assert sh(f"tail -n 2 {h}").stdout == f"98 24.5 {TS + 98000}\n99 24.75 {TS + 99000}\n"
    assert int(sh(f"wc -c < {h}").stdout) == os.stat(h).st_size
    pts = history(client, run_id_of(run), "loss")
    assert len(pts) == 100
    assert pts[-1] == (99, 24.75, TS + 99000)
    assert sh(f"head -c 4 {run}/metrics/loss").stdout == "24.7"


def test_ls_l_and_stat_show_exact_sizes_times_and_owner(mount, client):
    run = make_run(mount, "ls", "r", params={"lr": "0.001"},
                   metrics={"acc": [f"0 0.5 {TS}", f"1 0.625 {TS + 2500}"]}, tags={"t": "x"})
    info = client.get_run(run_id_of(run)).info
    r = sh(f"ls -ln --time-style=+%s {run}/params {run}/metrics {run}/tags")
    sizes = {}
    for ln in r.stdout.splitlines():
        parts = ln.split()
        if len(parts) == 7:
            sizes[parts[6]] = int(parts[4])
            assert parts[2:4] == [str(os.getuid()), str(os.getgid())]
    assert sizes["lr"] == len("0.001\n")
    assert sizes["acc"] == len("0.625\n")
    for f in ("run.json", "run_id", "status", "params/lr", "metrics/acc", "history/acc",
              "tags/t", "tags/mlflow.runName"):
        st = os.stat(run / f)
        assert st.st_size == len((run / f).read_bytes()), f
    r = sh(f"stat -c '%s %Y %U' {run}/metrics/acc {run}/params/lr")
    acc, lr = r.stdout.splitlines()
    assert acc == f"6 {(TS + 2500) // 1000} root"
    assert lr == f"6 {info.start_time // 1000} root"
    assert os.stat(run / "metrics" / "acc").st_mtime_ns == (TS + 2500) * 1_000_000
    assert os.stat(run / "params" / "lr").st_mtime_ns == info.start_time * 1_000_000


def test_ls_t_sorts_runs_by_their_last_change(mount, client):
    for name in ("first", "second", "third"):
        make_run(mount, "recent", name, params={"p": name})
        time.sleep(0.005)
    assert sh("ls -t", cwd=mount.exp("recent")).stdout.split() == ["third", "second", "first"]
    sh(f"echo 1 >> {mount.run('recent', 'first')}/metrics/m")
    assert sh("ls -t", cwd=mount.exp("recent")).stdout.split() == ["first", "third", "second"]
    # The man page's choice: start, end and the latest metric point count
    # as changes (MLflow keeps no time for params and tags).
    time.sleep(0.005)
    sh(f"echo FINISHED > {mount.run('recent', 'second')}/status")
    assert sh("ls -t", cwd=mount.exp("recent")).stdout.split() == ["second", "first", "third"]
    exp = client.get_experiment_by_name("recent")
    assert len(client.search_runs([exp.experiment_id])) == 3


# ---- unmodified Python programs -----------------------------------------

TRAIN = textwrap.dedent('''
    import os, sys
    run, steps, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(os.path.join(run, "params", "lr"), "w") as f:
        f.write("0.003")
    with open(os.path.join(run, "params", "epochs"), "w") as f:
        f.write(str(steps))
    buffering = 65536 if mode == "buffered" else -1
    loss = open(os.path.join(run, "metrics", "loss"), "a", buffering=buffering)
    acc = open(os.path.join(run, "metrics", "acc"), "a", buffering=buffering)
    flush = mode == "flush"
    for step in range(steps):
        print(1.0 / (step + 1), file=loss, flush=flush)
        print(f"{step} {step / steps}", file=acc, flush=flush)
    loss.close()
    acc.close()
    tmp = os.path.join(run, "artifacts", ".model.ckpt.tmp")
    with open(tmp, "wb") as f:
        f.write(bytes(range(256)) * 1024)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(run, "artifacts", "model.ckpt"))
''')


def run_training(tmp_path, run, steps, mode):
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    r = subprocess.run([sys.executable, str(script), str(run), str(steps), mode],
                       capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stderr) == (0, "")


def check_training(mount, client, run, steps):
    rid = run_id_of(run)
    got = client.get_run(rid)
    assert got.data.params == {"lr": "0.003", "epochs": str(steps)}
    loss = history(client, rid, "loss")
    assert [(s, v) for s, v, _ in loss] == [(s, 1.0 / (s + 1)) for s in range(steps)]
    acc = history(client, rid, "acc")
    assert [(s, v) for s, v, _ in acc] == [(s, s / steps) for s in range(steps)]
    assert got.data.metrics == {"loss": 1.0 / steps, "acc": (steps - 1) / steps}
    assert list_artifacts_recursive(client, rid) == {"model.ckpt": 256 * 1024}
    disk = artifact_dir(client, run, mount)
    assert (disk / "model.ckpt").read_bytes() == bytes(range(256)) * 1024
    assert sorted(os.listdir(run / "artifacts")) == ["model.ckpt"]


def test_training_program_with_flushed_lines(mount, client, tmp_path):
    run = mount.run("train", "flushed")
    os.makedirs(run)
    run_training(tmp_path, run, 500, "flush")
    check_training(mount, client, run, 500)


def test_training_program_with_buffered_writes(mount, client, tmp_path):
    # 5000 steps make ~100 KiB per metric: lines are cut at the 64 KiB
    # write() boundaries and must be joined again, none lost or doubled.
    run = mount.run("train", "buffered")
    os.makedirs(run)
    run_training(tmp_path, run, 5000, "buffered")
    check_training(mount, client, run, 5000)


KILLED = textwrap.dedent('''
    import os, sys, time
    run, steps = sys.argv[1], int(sys.argv[2])
    f = open(os.path.join(run, "metrics", "loss"), "a")
    for step in range(steps):
        print(f"{step} {step / 4}", file=f, flush=True)
    f.write("999 0.12")          # an unfinished line, never ended
    f.flush()
    print("ready", flush=True)
    time.sleep(60)
''')


def test_training_program_killed_keeps_every_complete_line(mount, client, tmp_path):
    run = mount.run("train", "killed")
    os.makedirs(run)
    rid = run_info(client, run).info.run_id
    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    proc = subprocess.Popen([sys.executable, str(script), str(run), "250"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        want = [(s, s / 4) for s in range(250)]

        # The file is still open: the daemon commits within 20 ms anyway, and
        # the MLflow client (another writer's view) sees it "at once".
        def committed():
            assert [(s, v) for s, v, _ in history(client, rid, "loss")] == want
        eventually(committed, timeout=2.0)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    pts = [(s, v) for s, v, _ in history(client, rid, "loss")]
    # The kernel closes the descriptor of a killed process; whether the
    # unfinished line then counts is not promised, every complete one is.
    assert pts[:250] == want
    assert pts[250:] in ([], [(999, 0.12)])
