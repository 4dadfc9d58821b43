"""The shape of the tree (mlflowfs(1), THE TREE), the models/ folder as
MLflow's client makes the registry, and the daemon's own .mlflowfs/ folder.

Objects are made with the real MLflow client on the mounted database, and the
listings, names, links and files of the mount are checked against what MLflow
reports: which experiments and runs are active, how names are encoded, how
runs that share a name are told apart, the runs/ index of symlinks, the
registry's models, versions and aliases.  Writes to the registry are
test_registry.py's.
"""
import errno
import json
import os
import sqlite3
import stat
import time
from datetime import datetime, timezone


from conftest import EXP_FIXED, db_snapshot, expect_errno, run_id_of, seen, sh, write_file
from helpers_tree import (assert_refusal_logged, daemon_version, encode, expected_folders,
                          ls_long, mount_path, new_experiment, wait_quiet)

RUN_ENTRIES = {"run_id": "f", "status": "f", "run.json": "f", "params": "d",
               "metrics": "d", "history": "d", "tags": "d", "artifacts": "d", "models": "d"}


def kind(path):
    mode = os.lstat(path).st_mode
    return "l" if stat.S_ISLNK(mode) else "d" if stat.S_ISDIR(mode) else "f"


# ---- the top of the tree ---------------------------------------------------


def test_root_lists_experiments_runs_models_and_control_folder(mount):
    assert sorted(os.listdir(mount.mnt)) == [".mlflowfs", "experiments", "models", "runs"]
    for name in os.listdir(mount.mnt):
        assert kind(mount.mnt / name) == "d", name
    # .mlflowfs is hidden from a plain ls.
    assert sh("ls", cwd=mount.mnt).stdout.split() == ["experiments", "models", "runs"]


def test_experiments_lists_active_experiments_with_default(mount, client):
    keep = new_experiment(client, mount, "keep")
    gone = new_experiment(client, mount, "gone")
    mkdir_made = mount.exp("made-by-mkdir")
    os.mkdir(mkdir_made)
    wait_quiet(mount)  # committed within 20 ms: then MLflow sees it
    client.delete_experiment(gone)
    listed = sorted(os.listdir(mount.mnt / "experiments"))
    assert listed == ["Default", "keep", "made-by-mkdir"]
    assert listed == sorted(e.name for e in client.search_experiments())
    assert not os.path.exists(mount.exp("gone"))
    assert client.get_experiment(keep).lifecycle_stage == "active"


def test_experiment_lists_its_json_tags_and_active_runs(mount, client):
    exp = new_experiment(client, mount, "E")
    a = client.create_run(exp, run_name="a").info.run_id
    b = client.create_run(exp, run_name="b").info.run_id
    client.create_run(exp, run_name="c")
    client.delete_run(b)
    listed = sorted(os.listdir(mount.exp("E")))
    assert listed == [*EXP_FIXED, "a", "c"]
    assert kind(mount.exp("E") / ".experiment.json") == "f"
    assert kind(mount.exp("E") / ".tags") == "d"
    assert run_id_of(mount.run("E", "a")) == a
    assert not os.path.exists(mount.run("E", "b"))


def test_run_folder_lists_its_eight_entries(mount, client):
    exp = new_experiment(client, mount, "E")
    run = client.create_run(exp, run_name="r").info.run_id
    client.log_param(run, "p", "1")
    client.log_metric(run, "m", 1.0)
    listed = {name: kind(mount.run("E", "r") / name) for name in os.listdir(mount.run("E", "r"))}
    assert listed == RUN_ENTRIES
    # A run made with mkdir has the same entries.
    os.mkdir(mount.run("E", "made"))
    made = {name: kind(mount.run("E", "made") / name)
            for name in os.listdir(mount.run("E", "made"))}
    assert made == RUN_ENTRIES


# ---- names -----------------------------------------------------------------


def test_experiment_names_are_percent_encoded_and_lookups_decode(mount, client):
    names = ["a/b", "50%off", ".hidden", "x/.y%z"]
    ids = {name: new_experiment(client, mount, name) for name in names}
    listed = sorted(os.listdir(mount.mnt / "experiments"))
    assert listed == sorted(["Default", "a%2Fb", "50%25off", "%2Ehidden", "x%2F.y%25z"])
    for name, exp_id in ids.items():
        folder = mount.exp(encode(name))
        assert folder.is_dir(), folder
        info = json.loads((folder / ".experiment.json").read_text())
        assert (info["name"], info["experiment_id"]) == (name, exp_id)
    # A '%' that starts no escape is taken as it is.
    raw = mount.exp("50%off")
    assert raw.is_dir()
    assert json.loads((raw / ".experiment.json").read_text())["name"] == "50%off"


def test_run_names_are_percent_encoded_and_lookups_decode(mount, client):
    exp = new_experiment(client, mount, "E")
    names = ["x/y", "100%", ".dot", "50%off"]
    ids = {name: client.create_run(exp, run_name=name).info.run_id for name in names}
    listed = sorted(os.listdir(mount.exp("E")))
    assert listed == sorted([*EXP_FIXED, "x%2Fy", "100%25", "%2Edot",
                             "50%25off"])
    for name, run in ids.items():
        assert run_id_of(mount.run("E", encode(name))) == run
        info = json.loads((mount.run("E", encode(name)) / "run.json").read_text())["info"]
        assert info["run_name"] == name == client.get_run(run).info.run_name
    assert run_id_of(mount.run("E", "50%off")) == ids["50%off"]


def test_keys_with_slash_are_folders(mount, client):
    exp = new_experiment(client, mount, "E")
    run = client.create_run(exp, run_name="r").info.run_id
    client.log_metric(run, "train/loss", 0.5, step=0)
    client.log_metric(run, "train/acc", 0.75, step=0)
    client.log_metric(run, "deep/a/b", 2.0, step=0)
    client.log_param(run, "opt/lr", "0.01")
    client.set_tag(run, "team/owner", "alice")
    r = mount.run("E", "r")
    assert sorted(os.listdir(r / "metrics")) == ["deep", "train"]
    assert (r / "metrics" / "train").is_dir()
    assert sorted(os.listdir(r / "metrics" / "train")) == ["acc", "loss"]
    assert (r / "metrics" / "train" / "loss").read_text() == "0.5\n"
    assert (r / "metrics" / "deep" / "a" / "b").read_text() == "2\n"
    assert sorted(os.listdir(r / "history" / "train")) == ["acc", "acc.svg", "loss", "loss.svg"]
    assert (r / "history" / "train" / "acc").read_text().split()[:2] == ["0", "0.75"]
    assert os.listdir(r / "params") == ["opt"]
    assert (r / "params" / "opt" / "lr").read_text() == "0.01\n"
    assert "team" in os.listdir(r / "tags")
    assert (r / "tags" / "team" / "owner").read_text() == "alice\n"
    expect_errno(errno.EISDIR, (r / "metrics" / "train").read_text)


def test_key_with_leading_dot_is_encoded(mount, client):
    exp = new_experiment(client, mount, "E")
    run = client.create_run(exp, run_name="r").info.run_id
    client.log_param(run, ".hidden", "v")
    client.set_tag(run, ".t", "w")
    r = mount.run("E", "r")
    assert os.listdir(r / "params") == ["%2Ehidden"]
    assert (r / "params" / "%2Ehidden").read_text() == "v\n"
    assert "%2Et" in os.listdir(r / "tags")
    assert (r / "tags" / "%2Et").read_text() == "w\n"


def test_key_that_is_leaf_and_prefix_shows_once_as_leaf(mount, client):
    exp = new_experiment(client, mount, "E")
    run = client.create_run(exp, run_name="r").info.run_id
    client.log_metric(run, "train", 1.0)
    client.log_metric(run, "train/loss", 2.0)
    client.log_metric(run, "train-b", 3.0)
    metrics = mount.run("E", "r") / "metrics"
    assert (metrics / "train").read_text() == "1\n"
    assert kind(metrics / "train") == "f"
    assert sorted(os.listdir(metrics)) == ["train", "train-b"]
    assert sorted(os.listdir(mount.run("E", "r") / "history")) == [
        "train", "train-b", "train-b.svg", "train.svg"]


# ---- run folders ---------------------------------------------------------------


def test_runs_sharing_a_name_get_run_id_suffix_but_the_oldest(mount, client):
    exp = new_experiment(client, mount, "E")
    base = int(time.time() * 1000) - 100_000
    # Made newest first, so creation order is not what decides.
    ids = [client.create_run(exp, run_name="same", start_time=base + i * 1000).info.run_id
           for i in (2, 1, 0)][::-1]
    listed = sorted(os.listdir(mount.exp("E")))
    assert listed == sorted([*EXP_FIXED, "same",
                             f"same@{ids[1][:8]}", f"same@{ids[2][:8]}"])
    assert run_id_of(mount.run("E", "same")) == ids[0]
    assert run_id_of(mount.run("E", f"same@{ids[2][:8]}")) == ids[2]
    # Only active runs count: with the oldest deleted, the next one is "same".
    client.delete_run(ids[0])
    seen(mount, lambda: sorted(os.listdir(mount.exp("E"))) == sorted(
        [*EXP_FIXED, "same", f"same@{ids[2][:8]}"]))
    seen(mount, lambda: run_id_of(mount.run("E", "same")) == ids[1])


def test_run_without_name_shows_as_its_run_id(mount, client):
    exp = new_experiment(client, mount, "E")
    run = client.create_run(exp, run_name="placeholder").info.run_id
    # MLflow 3 names every new run; MLflow 1.x stored runs.name = '' and set
    # no mlflow.runName tag when the user gave no name.  Make that run.
    client.delete_tag(run, "mlflow.runName")
    con = sqlite3.connect(mount.db)
    with con:
        con.execute("UPDATE runs SET name = '' WHERE run_uuid = ?", (run,))
    con.close()
    assert client.get_run(run).info.run_name == ""
    assert sorted(os.listdir(mount.exp("E"))) == [*EXP_FIXED, run]
    assert run_id_of(mount.run("E", run)) == run
    assert os.readlink(mount.mnt / "runs" / run) == f"../experiments/E/{run}"


def test_every_run_is_reachable_unlisted_by_its_run_id(mount, client):
    exp = new_experiment(client, mount, "E")
    ids = [client.create_run(exp, run_name=n).info.run_id for n in ("a", "a", "x/y")]
    os.mkdir(mount.run("E", "made"))
    ids.append(run_id_of(mount.run("E", "made")))
    listed = os.listdir(mount.exp("E"))
    for run in ids:
        assert run not in listed
        folder = mount.run("E", run)
        assert folder.is_dir()
        assert run_id_of(folder) == run
        assert sorted(os.listdir(folder)) == sorted(RUN_ENTRIES)


def test_runs_folder_links_every_active_run(mount, client):
    e1 = new_experiment(client, mount, "a/b")
    e2 = new_experiment(client, mount, ".e2")
    made = []
    for exp, name in ((e1, "x"), (e1, "x"), (e1, "p%q"), (e2, ".d"), ("0", "in-default")):
        made.append(client.create_run(exp, run_name=name).info.run_id)
    deleted = client.create_run(e2, run_name="deleted").info.run_id
    client.delete_run(deleted)
    os.makedirs(mount.run("mkdir-exp", "r"))
    wait_quiet(mount)  # committed within 20 ms: then MLflow sees it
    active = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert sorted(os.listdir(mount.mnt / "runs")) == sorted(r.info.run_id for r in active)
    assert set(made) <= set(os.listdir(mount.mnt / "runs"))
    for r in active:
        exp_name = client.get_experiment(r.info.experiment_id).name
        folder = expected_folders(client, r.info.experiment_id)[r.info.run_id]
        link = mount.mnt / "runs" / r.info.run_id
        assert kind(link) == "l"
        assert os.readlink(link) == f"../experiments/{encode(exp_name)}/{encode(folder)}"
        assert (link / "run_id").read_text() == r.info.run_id + "\n"
        assert os.path.realpath(link) == str(mount.run(encode(exp_name), encode(folder)))
    assert deleted not in os.listdir(mount.mnt / "runs")
    assert not os.path.lexists(mount.mnt / "runs" / deleted)


def test_ls_l_of_experiment_with_300_runs(mount, client):
    exp = new_experiment(client, mount, "big")
    base = int(time.time() * 1000) - 10_000_000
    last_change = {}
    for i in range(300):
        start = base + i * 1000
        name = "dup" if i % 10 == 0 else f"r{i:03d}"
        run = client.create_run(exp, run_name=name, start_time=start).info.run_id
        last_change[run] = start
        if i % 5 == 0:
            client.set_terminated(run, end_time=start + 250_000)
            last_change[run] = start + 250_000
        if i % 7 == 0:
            client.log_metric(run, "loss", 0.5, timestamp=start + 400_000)
            last_change[run] = start + 400_000
    folders = expected_folders(client, exp)
    assert len(folders) == 300
    listed = ls_long(mount.exp("big"))
    assert set(listed) == set(EXP_FIXED) | set(folders.values())
    uid, gid = os.getuid(), os.getgid()
    for run, folder in folders.items():
        mode, luid, lgid, _, mtime = listed[folder]
        assert mode.startswith("d"), (folder, mode)
        assert (luid, lgid) == (uid, gid), folder
        assert mtime == last_change[run] // 1000, folder
    # Listing again gives the same entries and attributes.
    assert ls_long(mount.exp("big")) == listed


def test_listing_a_folder_twice_gives_the_same_entries(mount, client):
    exp = new_experiment(client, mount, "E")
    run = client.create_run(exp, run_name="r").info.run_id
    for k in ("a", "b/c", "b/d", "z"):
        client.log_metric(run, k, 1.0)
        client.log_param(run, k, "v")
        client.set_tag(run, k, "v")
    client.set_experiment_tag(exp, "note", "x")
    r = mount.run("E", "r")
    folders = [mount.mnt, mount.mnt / "experiments", mount.exp("E"), mount.exp("E") / ".tags",
               r, r / "metrics", r / "metrics" / "b", r / "params", r / "tags", r / "history",
               mount.mnt / "runs", mount.mnt / ".mlflowfs", mount.mnt / "models"]
    for folder in folders:
        first = os.listdir(folder)
        assert len(first) == len(set(first)), (folder, first)
        assert os.listdir(folder) == first, folder
        # Through an open folder rewound to its start, as `ls` in a loop does.
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with os.scandir(fd) as it:
                once = sorted(e.name for e in it)
            os.lseek(fd, 0, os.SEEK_SET)
            with os.scandir(fd) as it:
                again = sorted(e.name for e in it)
        finally:
            os.close(fd)
        assert once == again == sorted(first), folder


def test_ls_a_shows_dot_and_dotdot(mount, run_dir):
    # Every Unix folder lists "." and ".." for `ls -a`.
    for folder in (mount.mnt, mount.mnt / "experiments", run_dir, run_dir / "params"):
        assert sh(f"ls -a {folder}").stdout.split()[:2] == [".", ".."], folder


def test_find_walks_the_whole_tree_without_errors(mount, client):
    exp = new_experiment(client, mount, "a/b")
    run = client.create_run(exp, run_name="r").info
    client.log_metric(run.run_id, "train/loss", 0.5)
    client.log_param(run.run_id, "lr", "0.1")
    client.set_experiment_tag(exp, "mlflow.note.content", "notes")
    os.makedirs(os.path.join(run.artifact_uri, "model"))
    with open(os.path.join(run.artifact_uri, "model", "MLmodel"), "w") as f:
        f.write("flavors: {}\n")
    client.create_registered_model("m", tags={"t": "1"}, description="d")
    client.create_model_version("m", f"runs:/{run.run_id}/model", run_id=run.run_id)
    client.set_registered_model_alias("m", "champion", "1")
    sh(f"mkdir -p {mount.run('shell', 'r')} && echo 1 >> {mount.run('shell', 'r')}/metrics/x")

    found = sh(f"find {mount.mnt}")
    assert found.stderr == ""
    paths = set(found.stdout.split("\n"))
    for p in (mount.run("a%2Fb", "r") / "metrics" / "train" / "loss",
              mount.run("a%2Fb", "r") / "artifacts" / "model" / "MLmodel",
              mount.exp("a%2Fb") / ".tags" / "mlflow.note.content",
              mount.mnt / "models" / "m" / "versions" / "1" / "source",
              mount.mnt / "models" / "m" / "aliases" / "champion",
              mount.mnt / "runs" / run.run_id,
              mount.mnt / ".mlflowfs" / "errors",
              mount.run("shell", "r") / "history" / "x"):
        assert str(p) in paths, p
    walked = {os.path.join(d, n) for d, ds, fs in os.walk(mount.mnt) for n in ds + fs}
    assert walked == paths - {str(mount.mnt), ""}
    # Following links too: runs/, aliases and version artifacts lead inside the tree.
    followed = sh(f"find -L {mount.mnt} -type f")
    assert followed.stderr == ""
    assert str(mount.mnt / "runs" / run.run_id / "params" / "lr") in followed.stdout.split("\n")


# ---- models/ ------------------------------------------------------------------


def make_registry(mount, client):
    """Registered model 'mdl' (description, tag) with versions 1 (source
    runs:/<r1>/model, a tag, stage Staging), 2 (source <r2 artifact_uri>/model,
    alias champion) and 3 (deleted)."""
    exp = new_experiment(client, mount, "E")
    r1 = client.create_run(exp, run_name="r1").info
    r2 = client.create_run(exp, run_name="r2").info
    for r, text in ((r1, "one\n"), (r2, "two\n")):
        os.makedirs(os.path.join(r.artifact_uri, "model"))
        with open(os.path.join(r.artifact_uri, "model", "MLmodel"), "w") as f:
            f.write(text)
    client.create_registered_model("mdl", tags={"team": "vision"}, description="my model")
    client.create_model_version("mdl", f"runs:/{r1.run_id}/model", run_id=r1.run_id,
                                description="first")
    client.create_model_version("mdl", r2.artifact_uri + "/model", run_id=r2.run_id)
    client.create_model_version("mdl", r2.artifact_uri + "/model", run_id=r2.run_id)
    client.set_model_version_tag("mdl", "1", "validated", "yes")
    client.set_registered_model_alias("mdl", "champion", "2")
    client.transition_model_version_stage("mdl", "1", "Staging")
    client.delete_model_version("mdl", "3")
    return r1, r2


def test_models_tree_shows_the_registry(mount, client):
    r1, r2 = make_registry(mount, client)
    m = mount.mnt / "models" / "mdl"
    assert os.listdir(mount.mnt / "models") == ["mdl"]
    assert sorted(os.listdir(m)) == ["aliases", "description", "tags", "versions"]
    rm = client.get_registered_model("mdl")
    assert (m / "description").read_text() == rm.description + "\n" == "my model\n"
    assert os.listdir(m / "tags") == ["team"]
    assert (m / "tags" / "team").read_text() == rm.tags["team"] + "\n"
    assert os.listdir(m / "aliases") == ["champion"]
    assert kind(m / "aliases" / "champion") == "l"
    assert os.readlink(m / "aliases" / "champion") == "../versions/2"
    assert ((m / "aliases" / "champion" / "run_id").read_text()
            == client.get_model_version_by_alias("mdl", "champion").run_id + "\n")
    # Version 3 was deleted: hidden.
    assert sorted(os.listdir(m / "versions")) == ["1", "2"]
    assert not os.path.exists(m / "versions" / "3")
    assert not os.path.exists(m / "versions" / "3" / "source")
    for n in ("1", "2"):
        mv = client.get_model_version("mdl", n)
        v = m / "versions" / n
        assert sorted(os.listdir(v)) == sorted(["source", "run_id", "status", "stage",
                                                "description", "tags", "artifacts"])
        assert (v / "source").read_text() == mv.source + "\n"
        assert (v / "run_id").read_text() == mv.run_id + "\n"
        assert (v / "status").read_text() == mv.status + "\n" == "READY\n"
        assert (v / "stage").read_text() == mv.current_stage + "\n"
        assert (v / "description").read_text() == (mv.description or "") + "\n"
        assert sorted(os.listdir(v / "tags")) == sorted(mv.tags)
        for k, val in mv.tags.items():
            assert (v / "tags" / k).read_text() == val + "\n"
    assert (m / "versions" / "1" / "stage").read_text() == "Staging\n"
    assert (m / "versions" / "1" / "tags" / "validated").read_text() == "yes\n"
    assert (m / "versions" / "1" / "source").read_text() == f"runs:/{r1.run_id}/model\n"


def test_model_version_artifacts_link_resolves_into_the_mount(mount, client):
    r1, r2 = make_registry(mount, client)
    versions = mount.mnt / "models" / "mdl" / "versions"
    for n, run, text in (("1", "r1", "one\n"), ("2", "r2", "two\n")):
        link = versions / n / "artifacts"
        assert kind(link) == "l"
        assert os.path.realpath(link) == str(mount.run("E", run) / "artifacts" / "model")
        assert os.listdir(link) == ["MLmodel"]
        assert (link / "MLmodel").read_text() == text


# ---- .mlflowfs/ --------------------------------------------------------------


def test_control_status_names_store_uri_and_version_without_credentials(make_mount):
    secrets = {"MLFLOW_TRACKING_USERNAME": "user-s3cr3t-name",
               "MLFLOW_TRACKING_PASSWORD": "pw-s3cr3t-word",
               "MLFLOW_TRACKING_TOKEN": "tok-s3cr3t-token"}
    m = make_mount(env={**os.environ, **secrets})
    status = (m.mnt / ".mlflowfs" / "status").read_text()
    assert status.endswith("\n")
    fields = dict(line.split(": ", 1) for line in status.splitlines())
    assert fields["store"] == ("rest" if m.remote else "sqlite")
    assert fields["uri"] == m.uri
    assert fields["version"] == daemon_version()
    # What is open when the status is taken: the folder held open here (the
    # read of the status is not open yet then).
    fd = os.open(m.mnt / "experiments", os.O_RDONLY | os.O_DIRECTORY)
    try:
        again = dict(line.split(": ", 1)
                     for line in (m.mnt / ".mlflowfs" / "status").read_text().splitlines())
    finally:
        os.close(fd)
    assert (again["open_files"], again["open_folders"]) == ("0", "1")
    for value in secrets.values():
        assert value not in status
        assert value not in m.log()
    assert sorted(os.listdir(m.mnt / ".mlflowfs")) == ["errors", "parsed", "status"]
    # Read-only: a write is refused and logged.
    path = m.mnt / ".mlflowfs" / "status"
    before = db_snapshot(m.db)
    expect_errno(errno.EACCES, write_file, path, "x\n")
    assert db_snapshot(m.db) == before
    assert_refusal_logged(m, path, errno.EACCES)


def test_control_errors_lists_the_latest_refusals(mount, run_dir):
    errors = mount.mnt / ".mlflowfs" / "errors"
    assert errors.read_text() == ""
    first = run_dir / "run_id"
    second = mount.mnt / "models" / "no:colons"
    before = db_snapshot(mount.db)
    t0 = datetime.now(timezone.utc).replace(microsecond=0)
    expect_errno(errno.EACCES, write_file, first, "x\n")
    expect_errno(errno.EINVAL, os.mkdir, second)
    t1 = datetime.now(timezone.utc)
    assert db_snapshot(mount.db) == before
    assert_refusal_logged(mount, first, errno.EACCES)
    assert_refusal_logged(mount, second, errno.EINVAL)
    lines = errors.read_text().splitlines()
    assert len(lines) == 2, lines
    for line, path, name in ((lines[0], first, "EACCES"), (lines[1], second, "EINVAL")):
        when, where, code, reason = line.split(" ", 3)
        stamp = datetime.strptime(when, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        assert t0 <= stamp <= t1, line
        assert where == mount_path(mount, path)
        assert code == name
        assert len(reason) >= 8, line
    assert os.stat(errors).st_size == len(errors.read_bytes())
