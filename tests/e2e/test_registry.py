"""The model registry written through the mount (mlflowfs(1), THE MODEL
REGISTRY), on both stores: models made, renamed and removed as folders,
descriptions, stages and tags as files, versions registered with ln -s from
a run's artifacts, aliases as links.  Every change is read back with
MLflowClient; every refusal gives its errno and leaves the registry as it
was."""
import errno
import os

import pytest

from conftest import expect_errno, sh, write_file
from helpers_tree import assert_refusal_logged, full_snapshot


def model_run(mount, exp="E", run="r", text="weights\n"):
    """A run made through the mount with a model folder in its artifacts:
    (run folder, run id)."""
    d = mount.run(exp, run)
    os.makedirs(d / "artifacts" / "model")
    write_file(d / "artifacts" / "model" / "MLmodel", text)
    return d, (d / "run_id").read_text().strip()


def register(mount, model, run_dir, sub="model"):
    """ln -s <run_dir>/artifacts/<sub> models/<model>/versions/new, relative
    as a user in models/M/versions would type it."""
    rel = os.path.relpath(run_dir / "artifacts" / sub, mount.mnt / "models" / model / "versions")
    os.symlink(rel, mount.mnt / "models" / model / "versions" / "new")


def test_models_are_made_renamed_and_removed_as_folders(mount, client):
    import mlflow.exceptions

    models = mount.mnt / "models"
    os.mkdir(models / "churn")
    assert client.get_registered_model("churn").name == "churn"
    assert os.listdir(models) == ["churn"]
    assert sorted(os.listdir(models / "churn")) == ["aliases", "description", "tags",
                                                     "versions"]
    run_dir, rid = model_run(mount)
    register(mount, "churn", run_dir)
    write_file(models / "churn" / "tags" / "team", "risk\n")
    sh(f"ln -s ../versions/1 {models}/churn/aliases/champion")

    # mv renames it; its versions, tags and alias go with it.
    os.rename(models / "churn", models / "attrition")
    assert os.listdir(models) == ["attrition"]
    rm = client.get_registered_model("attrition")
    assert rm.tags == {"team": "risk"}
    assert client.get_model_version("attrition", "1").run_id == rid
    assert str(client.get_model_version_by_alias("attrition", "champion").version) == "1"
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_registered_model("churn")
    assert (models / "attrition" / "versions" / "1" / "run_id").read_text() == rid + "\n"

    # rmdir removes a version, then the model once it has none.
    os.rmdir(models / "attrition" / "versions" / "1")
    assert client.search_model_versions("name='attrition'") == []
    assert os.listdir(models / "attrition" / "aliases") == []
    os.rmdir(models / "attrition")
    assert client.search_registered_models() == []
    assert os.listdir(models) == []


def test_descriptions_stages_and_tags_are_files(mount, client):
    m = mount.mnt / "models" / "m"
    os.mkdir(m)
    run_dir, _ = model_run(mount)
    register(mount, "m", run_dir)
    v = m / "versions" / "1"

    write_file(m / "description", "predicts churn\nfrom usage\n")
    assert client.get_registered_model("m").description == "predicts churn\nfrom usage"
    assert (m / "description").read_text() == "predicts churn\nfrom usage\n"
    write_file(v / "description", "first cut\n")
    assert client.get_model_version("m", "1").description == "first cut"
    write_file(v / "description", "\n")
    assert not client.get_model_version("m", "1").description

    assert (v / "stage").read_text() == "None\n"
    write_file(v / "stage", "Staging\n")
    assert client.get_model_version("m", "1").current_stage == "Staging"
    # Any case, as MLflow takes it; shown as MLflow spells it.
    sh(f"echo production > {v}/stage")
    assert client.get_model_version("m", "1").current_stage == "Production"
    assert (v / "stage").read_text() == "Production\n"

    write_file(m / "tags" / "team", "risk\n")
    write_file(v / "tags" / "validated", "yes\n")
    assert client.get_registered_model("m").tags == {"team": "risk"}
    assert client.get_model_version("m", "1").tags == {"validated": "yes"}
    os.rename(v / "tags" / "validated", v / "tags" / "checked")
    assert client.get_model_version("m", "1").tags == {"checked": "yes"}
    os.unlink(m / "tags" / "team")
    assert client.get_registered_model("m").tags == {}
    assert os.listdir(m / "tags") == []
    assert os.listdir(v / "tags") == ["checked"]


def test_versions_are_registered_with_ln_s_from_a_runs_artifacts(mount, client):
    m = mount.mnt / "models" / "m"
    os.mkdir(m)
    run_a, rid_a = model_run(mount, run="a", text="one\n")
    run_b, rid_b = model_run(mount, run="b", text="two\n")
    register(mount, "m", run_a)
    # An absolute path into the mount, and the same link name again.
    os.symlink(run_b / "artifacts" / "model", m / "versions" / "new")
    assert sorted(os.listdir(m / "versions")) == ["1", "2"]
    for n, rid, run, text in (("1", rid_a, run_a, "one\n"), ("2", rid_b, run_b, "two\n")):
        mv = client.get_model_version("m", n)
        info = client.get_run(rid).info
        assert (mv.run_id, mv.source, mv.status, mv.current_stage) == (
            rid, info.artifact_uri + "/model", "READY", "None")
        v = m / "versions" / n
        assert (v / "source").read_text() == mv.source + "\n"
        assert (v / "run_id").read_text() == rid + "\n"
        assert os.path.realpath(v / "artifacts") == str(run / "artifacts" / "model")
        assert (v / "artifacts" / "MLmodel").read_text() == text
    # MLflow's client finds the files the version names.
    out = client.download_artifacts(rid_b, "model", str(mount.tmp / "dl"))
    assert open(os.path.join(out, "MLmodel")).read() == "two\n"
    # cp -rL of a version's artifacts deploys it.
    sh(f"cp -rL {m}/versions/2/artifacts {mount.tmp}/deploy")
    assert (mount.tmp / "deploy" / "MLmodel").read_text() == "two\n"


def test_aliases_are_links_set_moved_and_removed(mount, client):
    import mlflow.exceptions

    m = mount.mnt / "models" / "m"
    os.mkdir(m)
    run_dir, _ = model_run(mount)
    register(mount, "m", run_dir)
    register(mount, "m", run_dir)
    aliases = m / "aliases"
    os.symlink("../versions/1", aliases / "champion")
    assert str(client.get_model_version_by_alias("m", "champion").version) == "1"
    assert os.readlink(aliases / "champion") == "../versions/1"
    # ln -sfn moves it (through a temporary name and a rename).
    sh(f"ln -sfn ../versions/2 {aliases}/champion")
    assert str(client.get_model_version_by_alias("m", "champion").version) == "2"
    assert os.listdir(aliases) == ["champion"]
    assert (aliases / "champion" / "stage").read_text() == "None\n"
    os.rename(aliases / "champion", aliases / "prod")
    assert str(client.get_model_version_by_alias("m", "prod").version) == "2"
    os.unlink(aliases / "prod")
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_model_version_by_alias("m", "prod")
    assert os.listdir(aliases) == []


def test_what_the_client_changes_in_the_registry_shows(mount, client):
    m = mount.mnt / "models" / "m"
    os.mkdir(m)
    run_dir, rid = model_run(mount)
    source = client.get_run(rid).info.artifact_uri + "/model"
    client.create_model_version("m", source, run_id=rid)
    client.set_registered_model_alias("m", "best", "1")
    client.update_registered_model("m", description="by the client")
    from conftest import seen
    seen(mount, lambda: (m / "aliases" / "best" / "run_id").read_text() == rid + "\n")
    seen(mount, lambda: (m / "description").read_text() == "by the client\n")


# ---- refusals: the errno, and nothing changed ------------------------------------------


def refused(mount, code, fn, *args, path=None):
    before = full_snapshot(mount.db)
    expect_errno(code, fn, *args)
    assert full_snapshot(mount.db) == before
    assert_refusal_logged(mount, path or args[0], code)


def test_registry_refusals_change_nothing(mount, client):
    models = mount.mnt / "models"
    os.mkdir(models / "m")
    os.mkdir(models / "other")
    run_dir, _ = model_run(mount)
    register(mount, "m", run_dir)
    register(mount, "other", run_dir)
    write_file(run_dir / "artifacts" / "weights.bin", "x")
    os.makedirs(mount.tmp / "elsewhere")
    v = models / "m" / "versions"

    refused(mount, errno.EINVAL, os.mkdir, models / "a:b")
    refused(mount, errno.EINVAL, os.mkdir, models / "a%2Fb")
    refused(mount, errno.ENOTEMPTY, os.rmdir, models / "m")
    refused(mount, errno.EEXIST, os.rename, models / "m", models / "other",
            path=models / "other")
    refused(mount, errno.EPERM, os.mkdir, v / "new")
    expect_errno(errno.ENOENT, os.symlink, str(run_dir / "artifacts"),
                 models / "nope" / "versions" / "new")
    # What a version is registered from: a folder under a run's artifacts/.
    refused(mount, errno.EINVAL, os.symlink, str(mount.tmp / "elsewhere"), v / "new",
            path=v / "new")
    refused(mount, errno.EINVAL, os.symlink, str(run_dir), v / "new", path=v / "new")
    refused(mount, errno.ENOENT, os.symlink, str(run_dir / "artifacts" / "nope"), v / "new",
            path=v / "new")
    refused(mount, errno.ENOTDIR, os.symlink, str(run_dir / "artifacts" / "weights.bin"),
            v / "new", path=v / "new")
    # Aliases: MLflow's names, a version of the same model that exists.
    a = models / "m" / "aliases"
    for name in ("latest", "v1", "has.dot"):
        refused(mount, errno.EINVAL, os.symlink, "../versions/1", a / name, path=a / name)
    refused(mount, errno.EINVAL, os.symlink, "../../other/versions/1", a / "x", path=a / "x")
    refused(mount, errno.ENOENT, os.symlink, "../versions/9", a / "x", path=a / "x")
    # Stages: MLflow's four.
    stage = v / "1" / "stage"
    refused(mount, errno.EINVAL, write_file, stage, "Prod\n", path=stage)
    refused(mount, errno.EACCES, write_file, v / "1" / "source", "s3://x\n",
            path=v / "1" / "source")
    refused(mount, errno.EFBIG, write_file, models / "m" / "tags" / "big", "x" * 100_001,
            path=models / "m" / "tags" / "big")
    assert client.get_model_version("m", "1").current_stage == "None"


@pytest.mark.local_only("compares the rows MLflow's client and the mount write in one database")
def test_the_rows_written_are_mlflows(mount, client):
    """The same calls through the mount and through MlflowClient leave the
    same rows, bar names and times: stage 'None' and status 'READY' written,
    a deleted version soft-deleted, its number never used again."""
    import sqlite3

    run_dir, rid = model_run(mount)
    source = client.get_run(rid).info.artifact_uri + "/model"
    ours = mount.mnt / "models" / "ours"
    os.mkdir(ours)
    client.create_registered_model("theirs")
    for _ in range(2):
        register(mount, "ours", run_dir)
        client.create_model_version("theirs", source, run_id=rid)
    write_file(ours / "versions" / "1" / "stage", "Production\n")
    client.transition_model_version_stage("theirs", "1", "Production")
    write_file(ours / "versions" / "2" / "tags" / "k", "v\n")
    client.set_model_version_tag("theirs", "2", "k", "v")
    os.rmdir(ours / "versions" / "1")
    client.delete_model_version("theirs", "1")
    register(mount, "ours", run_dir)
    client.create_model_version("theirs", source, run_id=rid)
    assert sorted(os.listdir(ours / "versions")) == ["2", "3"]

    con = sqlite3.connect(f"file:{mount.db}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        def rows(table, name):
            out = []
            for r in con.execute(f"SELECT * FROM {table} WHERE name = ? ORDER BY 1, 2, 3",
                                 (name,)):
                out.append({k: r[k] for k in r.keys()
                            if k not in ("name", "creation_time", "last_updated_time")})
            return sorted(out, key=repr)
        for table in ("registered_models", "model_versions", "model_version_tags",
                      "registered_model_aliases"):
            assert rows(table, "ours") == rows(table, "theirs"), table
    finally:
        con.close()
