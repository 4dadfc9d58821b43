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


def user_home(tmp_path):
    """A home folder with an empty ~/mlruns, and the environment of a user
    whose PATH has mlflowfs and who set no store: (home, env)."""
    home = tmp_path / "home"
    (home / "mlruns").mkdir(parents=True)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "mlflowfs").symlink_to(mlflowfs_binary())
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "XDG_DATA_HOME")}
    env.update(HOME=str(home), PATH=f"{bindir}:{env['PATH']}")
    return home, env


def test_readme_session_runs_and_mlflow_sees_it(tmp_path):
    lines = readme_session()
    assert len(lines) <= 10
    assert lines[0].startswith("ex=$PWD/contrib/examples && mlflowfs ~/mlruns")
    assert lines[-1].startswith("mlflow ui --backend-store-uri sqlite:///$HOME/.local/share/mlflowfs")
    home, env = user_home(tmp_path)
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


def tracking_block():
    """The indented block under "Tracking a program you didn't write"."""
    text = README.read_text()
    block = text.split("Tracking a program you didn't write\n", 1)[1].split("\n\n", 2)[1]
    return [line[4:] for line in block.splitlines()]


def test_readme_tracking_block_runs_and_mlflow_sees_it(tmp_path):
    lines = tracking_block()
    assert lines[1].startswith("mlflowfs run -e demo -n printed -- python3 fit.py")
    assert lines[-1].startswith("xdg-open ")
    home, env = user_home(tmp_path)
    mnt = home / "mlruns"
    try:
        r = subprocess.run(["mlflowfs", str(mnt)], env=env, capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 0, r.stderr
        # All but the viewer, from the top of the clone, with -e.
        r = subprocess.run(["bash", "-ec", "\n".join(lines[:-1])], env=env, cwd=README.parent,
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        out = r.stdout
        # The wrapped program's output passed through, then the table.
        assert "fitting a logistic regression, lr 0.1, 8 epochs" in out
        table = [line.split() for line in out.splitlines() if line.startswith(("run ", "printed",
                                                                               "written"))]
        assert [row[0] for row in table] == ["run", "printed", "written"], out
        db = home / ".local/share/mlflowfs/mlflow.db"
        client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")
        exp = client.get_experiment_by_name("demo")
        runs = {x.info.run_name: x for x in client.search_runs([exp.experiment_id])}
        assert sorted(runs) == ["printed", "written"]
        printed, written = runs["printed"], runs["written"]
        assert printed.info.status == "FINISHED"
        assert printed.data.params == {"lr": "0.1", "epochs": "8"}
        assert [m.step for m in client.get_metric_history(printed.info.run_id, "loss")] == \
            list(range(8))
        assert written.data.params == {"optimizer.name": "sgd", "optimizer.lr": "0.05",
                                       "epochs": "10"}
        acc = client.get_metric_history(written.info.run_id, "acc")
        assert [m.step for m in acc] == list(range(10))
        disk = (mnt / "experiments/demo/written/artifacts/history.csv").read_bytes()
        assert disk.startswith(b"epoch,acc,loss\r\n") and disk.count(b"\r\n") == 11
        assert [float(row.split(b",")[1]) for row in disk.split(b"\r\n")[1:-1]] == \
            [m.value for m in sorted(acc, key=lambda m: m.step)]
        assert "<svg" in (mnt / "experiments/demo/.plots/loss.svg").read_text()
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True)
