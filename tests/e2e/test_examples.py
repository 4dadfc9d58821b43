"""contrib/examples/, the three MLflow workflows as shell scripts, run as a
user runs them against a mount of each store, and checked with
MlflowClient: tracking (runs compared and the best model copied out), the
registry (versions registered, promoted, deployed and archived), and a
reproducible project (runs that record their git commit)."""
import os
import pickle
import subprocess
from pathlib import Path

import pytest

from conftest import have

EXAMPLES = Path(__file__).resolve().parents[2] / "contrib" / "examples"


def run_example(name, *args, cwd):
    r = subprocess.run(["sh", str(EXAMPLES / name), *map(str, args)], cwd=cwd,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def runs_by_name(client, experiment):
    exp = client.get_experiment_by_name(experiment)
    return {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}


def test_workflow_1_tracking(mount, client, tmp_path):
    out = run_example("1-tracking.sh", mount.mnt, "tracking", tmp_path / "best", cwd=tmp_path)
    runs = runs_by_name(client, "tracking")
    assert sorted(runs) == ["lr=0.005", "lr=0.05", "lr=0.5"]
    for name, r in runs.items():
        assert r.info.status == "FINISHED"
        assert r.data.params == {"lr": name[3:], "epochs": "8"}
        history = client.get_metric_history(r.info.run_id, "acc")
        assert [m.step for m in history] == list(range(8))
        assert r.data.metrics["acc"] == history[-1].value
    best = max(runs.values(), key=lambda r: r.data.metrics["acc"])
    assert f"best run: {best.info.run_name}, acc" in out
    # diff -r of two runs' params showed the lr that differs.
    assert "lr" in out
    # The model copied out is the best run's, as MLflow stores it.
    with open(tmp_path / "best" / "model.pkl", "rb") as f:
        assert pickle.load(f)["lr"] == float(best.data.params["lr"])
    dl = client.download_artifacts(best.info.run_id, "model", str(tmp_path / "dl"))
    assert open(os.path.join(dl, "model.pkl"), "rb").read() == \
        (tmp_path / "best" / "model.pkl").read_bytes()


def test_workflow_2_registry(mount, client, tmp_path):
    run_example("1-tracking.sh", mount.mnt, "tracking", tmp_path / "best", cwd=tmp_path)
    out = run_example("2-registry.sh", mount.mnt, "tracking", "churn", tmp_path / "deployed",
                      cwd=tmp_path)
    runs = runs_by_name(client, "tracking")
    best = max((r for n, r in runs.items() if n != "longer"),
               key=lambda r: r.data.metrics["acc"])
    longer = runs["longer"]
    v1, v2 = (client.get_model_version("churn", n) for n in ("1", "2"))
    assert (v1.run_id, v1.current_stage) == (best.info.run_id, "Archived")
    assert (v2.run_id, v2.current_stage) == (longer.info.run_id, "Production")
    assert v2.source == longer.info.artifact_uri + "/model"
    assert str(client.get_model_version_by_alias("churn", "champion").version) == "2"
    assert "version 1 is Archived" in out
    # What was deployed is the champion's model, byte for byte.
    dl = client.download_artifacts(longer.info.run_id, "model", str(tmp_path / "dl"))
    assert (tmp_path / "deployed" / "model.pkl").read_bytes() == \
        open(os.path.join(dl, "model.pkl"), "rb").read()


@pytest.mark.skipif(not have("git"), reason="git is not installed")
def test_workflow_3_reproducible_project(mount, client, tmp_path):
    out = run_example("3-project.sh", mount.mnt, "project", tmp_path / "proj", cwd=tmp_path)
    runs = runs_by_name(client, "project")
    commits = subprocess.run(["git", "-C", str(tmp_path / "proj"), "log", "--format=%H"],
                             capture_output=True, text=True, check=True).stdout.split()
    first, second = runs["first"].data.tags, runs["second"].data.tags
    assert first["mlflow.source.git.commit"] == commits[1]
    assert second["mlflow.source.git.commit"] == commits[0]
    assert first["mlflow.source.git.branch"] == second["mlflow.source.git.branch"] == "main"
    assert runs["first"].data.params["epochs"] == "5"
    assert runs["second"].data.params["epochs"] == "15"
    # The script's diff -r of the tags names the commit that changed.
    assert "mlflow.source.git.commit" in out and commits[0] in out and commits[1] in out
