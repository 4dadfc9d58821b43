"""The README's promise in a few lines: log from the shell, read it in MLflow."""
import os

from conftest import run_id_of, sh


def test_shell_session_is_seen_by_mlflow(mount, client):
    run = mount.run("demo", "first")
    sh(f"""set -e
        mkdir -p {run}
        echo 0.01 > {run}/params/lr
        for i in 1 2 3; do echo 0.$i >> {run}/metrics/loss; done
        echo FINISHED > {run}/status""")
    assert (run / "metrics" / "loss").read_text() == "0.3\n"
    got = client.get_run(run_id_of(run))
    assert got.data.params == {"lr": "0.01"}
    assert got.data.metrics == {"loss": 0.3}
    assert got.info.status == "FINISHED"
    assert got.info.end_time is not None
    hist = client.get_metric_history(got.info.run_id, "loss")
    assert [(m.step, m.value) for m in hist] == [(0, 0.1), (1, 0.2), (2, 0.3)]
    assert sorted(os.listdir(mount.mnt / "experiments")) == ["Default", "demo"]
