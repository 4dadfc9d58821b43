"""MLflow 3's logged models (mlflowfs(1), THE TREE: .models/), on both
stores: a model logged by mlflow.pyfunc.log_model shows in its
experiment's .models/ with its files, params, metrics, tags and status,
its run links to it, a version MLflow registers from it points at it, and
deploying that version with cp -rL gives a folder mlflow.pyfunc.load_model
loads and predicts with.  Registering from the mount records what MLflow
records.  A database at MLflow 2's schema shows no logged models."""
import contextlib
import errno
import os

import pytest

from conftest import expect_errno, run_id_of, sh
from helpers_tree import full_snapshot


@contextlib.contextmanager
def tracking(mount):
    """MLflow's fluent API, and the parts of its client that look logged
    models up through the global URI, on the mount's store."""
    import mlflow

    mlflow.set_tracking_uri(mount.client_uri)
    try:
        yield mlflow
    finally:
        mlflow.set_tracking_uri(None)


def log_model(mount, client, tmp_path, experiment="E"):
    """A run 'fit' of experiment that logs param alpha, metric rmse and a
    pyfunc model named 'model' that doubles its input: (run id, model id)."""
    import mlflow

    class Doubler(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            return model_input["x"] * 2

    where = None if mount.remote else str(tmp_path / "client-artifacts")
    exp_id = client.create_experiment(experiment, artifact_location=where)
    with tracking(mount), mlflow.start_run(experiment_id=exp_id, run_name="fit") as run:
        mlflow.log_param("alpha", "0.5")
        mlflow.log_metric("rmse", 0.25)
        info = mlflow.pyfunc.log_model(name="model", python_model=Doubler())
    return run.info.run_id, info.model_id


def test_a_logged_model_shows_with_its_files_and_its_run_links_to_it(mount, client, tmp_path):
    rid, mid = log_model(mount, client, tmp_path)
    lm = client.get_logged_model(mid)
    models = mount.exp("E") / ".models"
    assert os.listdir(models) == ["model"]
    m = models / "model"
    names = set(os.listdir(m))
    assert {"MLmodel", "params", "metrics", "tags", "status"} <= names
    files = {a.path for a in client.list_logged_model_artifacts(mid)}
    assert names - {"params", "metrics", "tags", "status"} == files
    assert (m / "status").read_text() == "READY\n"
    assert (m / "params" / "alpha").read_text() == lm.params["alpha"] + "\n" == "0.5\n"
    assert (m / "metrics" / "rmse").read_text() == "0.25\n"
    assert sorted(os.listdir(m / "tags")) == sorted(lm.tags)
    # Its files, as MLflow's client downloads them.
    with tracking(mount) as mlflow:
        got = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{mid}",
                                                  dst_path=str(tmp_path / "dl"))
    for name in files:
        if os.path.isfile(os.path.join(got, name)):
            assert (m / name).read_bytes() == open(os.path.join(got, name), "rb").read()
    assert "flavors:" in (m / "MLmodel").read_text()
    # The model is reachable by its id too, unlisted.
    assert (models / mid / "status").read_text() == "READY\n"
    # The run links to what it made.
    run = mount.run("E", "fit")
    assert run_id_of(run) == rid
    assert os.listdir(run / "models") == ["model"]
    assert os.readlink(run / "models" / "model") == "../../.models/model"
    assert (run / "models" / "model" / "status").read_text() == "READY\n"


def test_a_version_of_a_logged_model_deploys_with_cp_rL_and_loads(mount, client, tmp_path):
    import mlflow
    import pandas as pd

    rid, mid = log_model(mount, client, tmp_path)
    with tracking(mount):
        mv = mlflow.register_model(f"runs:/{rid}/model", "doubler")
    assert mv.source == f"models:/{mid}"
    v = mount.mnt / "models" / "doubler" / "versions" / "1"
    assert (v / "source").read_text() == f"models:/{mid}\n"
    assert os.path.realpath(v / "artifacts") == str(mount.exp("E") / ".models" / "model")
    client.set_registered_model_alias("doubler", "champion", "1")
    deploy = tmp_path / "srv-model"
    sh(f"cp -rL {mount.mnt}/models/doubler/aliases/champion/artifacts/ {deploy}")
    model = mlflow.pyfunc.load_model(str(deploy))
    assert list(model.predict(pd.DataFrame({"x": [1, 2, 3]}))) == [2, 4, 6]


def test_registering_a_logged_model_from_the_mount_records_what_mlflow_does(
        mount, client, tmp_path):
    rid, mid = log_model(mount, client, tmp_path)
    os.mkdir(mount.mnt / "models" / "ours")
    client.create_registered_model("theirs")
    os.symlink(mount.exp("E") / ".models" / "model",
               mount.mnt / "models" / "ours" / "versions" / "new")
    with tracking(mount):
        client.create_model_version("theirs", f"models:/{mid}", run_id=rid, model_id=mid)
    ours, theirs = client.get_model_version("ours", "1"), client.get_model_version("theirs", "1")
    for field in ("source", "run_id", "status", "current_stage"):
        assert getattr(ours, field) == getattr(theirs, field), field
    assert ours.source == f"models:/{mid}" and ours.run_id == rid
    assert (client.get_model_version_download_uri("ours", "1")
            == client.get_model_version_download_uri("theirs", "1"))


def test_a_logged_model_is_read_only(mount, client, tmp_path):
    log_model(mount, client, tmp_path)
    m = mount.exp("E") / ".models" / "model"
    before = full_snapshot(mount.db)
    expect_errno(errno.EACCES, open, m / "MLmodel", "a")
    expect_errno(errno.EACCES, open, m / "params" / "alpha", "w")
    assert full_snapshot(mount.db) == before


@pytest.mark.local_only("a database at MLflow 2's schema: the server's is MLflow 3's")
def test_a_database_without_logged_models_shows_none(mount):
    # No MLflow client has opened the database mlflowfs made: no tables.
    run = mount.run("E", "r")
    os.makedirs(run)
    assert os.listdir(mount.exp("E") / ".models") == []
    assert os.listdir(run / "models") == []
    assert "models" in os.listdir(run)
