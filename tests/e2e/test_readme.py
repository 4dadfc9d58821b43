"""The README's ten-line shell session, run as written (bar `mlflow ui`) with
the daemon as a user starts it: daemonised, on the embedded default store."""
import os
import re
import subprocess
import time
from pathlib import Path

import mlflow

from conftest import mlflowfs_binary

README = Path(__file__).resolve().parents[2] / "README"


def readme_session():
    """The indented block under "Ten lines of shell", as shell lines."""
    text = README.read_text()
    block = text.split("Ten lines of shell", 1)[1].split("\n\n", 2)[1]
    lines = [line[4:] for line in block.splitlines()]
    assert all(line.strip() for line in lines), "the session block has a blank line"
    return lines


def test_readme_session_runs_and_mlflow_sees_it(tmp_path):
    lines = readme_session()
    assert len(lines) <= 10
    assert lines[0].startswith("ex=$PWD/contrib/examples && mlflowfs ~/mlruns")
    assert lines[-1].startswith("mlflow ui --backend-store-uri sqlite:///$HOME/.local/share/mlflowfs")
    home = tmp_path / "home"
    (home / "mlruns").mkdir(parents=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "mlflowfs").symlink_to(mlflowfs_binary())
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "XDG_DATA_HOME")}
    env.update(HOME=str(home), PATH=f"{bindir}:{env['PATH']}")
    mnt = home / "mlruns"
    try:
        # Everything but `mlflow ui`, which would serve until stopped, from
        # the top of the clone, as the README says.  Not -e: diff -r exits 1
        # when runs differ, as they do.
        r = subprocess.run(["bash", "-c", "\n".join(lines[:-1])], env=env, cwd=README.parent,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        # The mount's note of the database it made, and nothing else.
        assert [line for line in r.stderr.splitlines()
                if not line.startswith("mlflowfs: created a new MLflow database")] == [], r.stderr
        assert os.path.ismount(mnt)
        db = home / ".local/share/mlflowfs/mlflow.db"
        client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")
        exp = client.get_experiment_by_name("sweep")
        runs = client.search_runs([exp.experiment_id])
        assert sorted(r.info.run_name for r in runs) == ["lr=0.005", "lr=0.05", "lr=0.5"]
        best = max(runs, key=lambda r: r.data.metrics["acc"])
        out = r.stdout
        assert f"best: {best.info.run_name}\n" in out, out
        assert re.search(r"^[<>] 0\.05?$", out, re.M), out  # diff -r of the lr params
        assert f'"experiment_id": "{exp.experiment_id}"' in out
        assert (home / "best-model" / "model.pkl").is_file()
        for run in runs:
            assert run.info.status == "FINISHED"
            assert run.data.params == {"lr": run.info.run_name[3:], "epochs": "10"}
            history = client.get_metric_history(run.info.run_id, "acc")
            assert [m.step for m in history] == list(range(10))
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
    # The daemonised mlflowfs ends once unmounted.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        ps = subprocess.run(["pgrep", "-f", f"mlflowfs {mnt}"], capture_output=True)
        if ps.returncode != 0:
            break
        time.sleep(0.05)
    assert ps.returncode != 0, "mlflowfs still running after unmount"
