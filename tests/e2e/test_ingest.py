"""mlflowfs(1), PARSED FILES: what unmodified training programs write under a
run's artifacts/ is also logged as metrics and params, on both stores, while
every byte stays stored as written.

Each test writes a byte-exact recording of one program's file with that
program's own write pattern (the syscalls, not just the bytes: Keras keeps
its file open for the whole fit, Lightning truncates and rewrites when a
column appears, YOLO and dvclive open, append and close per row, Hugging
Face writes a new checkpoint-N/ each time, Hydra's folder arrives by cp -r),
then checks with MLflow's own client exactly which points and params exist.
"""
import math
import os
import shutil
import time

import pytest

from conftest import db_snapshot, run_id_of, sh

DEADLINE = 10.0  # seconds a point may take to show in MLflow (remote: sent in the background)


def history(client, run_id, key):
    """(step, value) of every point of key, sorted; nan as the string 'nan'."""
    return sorted((m.step, "nan" if math.isnan(m.value) else m.value)
                  for m in client.get_metric_history(run_id, key))


def metric_keys(client, run_id):
    return set(client.get_run(run_id).data.metrics)


def wait_for(check, timeout=DEADLINE):
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {check}")
        time.sleep(0.05)


def write_fd(fd, data):
    assert os.write(fd, data) == len(data)


def write_once(path, data, flag):
    """open with O_WRONLY | O_CREAT | flag, one write, close."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | flag, 0o644)
    try:
        write_fd(fd, data)
    finally:
        os.close(fd)


def open_append_close(path, data):
    """One row the way YOLO and dvclive log it: open "a", one write, close."""
    write_once(path, data, os.O_APPEND)


def rewrite(path, data):
    """open "w" (O_TRUNC), one write, close."""
    write_once(path, data, os.O_TRUNC)


def parsed_lines(mount):
    return (mount.mnt / ".mlflowfs" / "parsed").read_text().splitlines()


def status(mount):
    return dict(line.split(": ", 1)
                for line in (mount.mnt / ".mlflowfs" / "status").read_text().splitlines())


KERAS_HEADER = b"epoch,accuracy,loss,val_accuracy,val_loss\r\n"
KERAS_ROWS = [b"0,0.5,0.6931471824645996,NA,NA\r\n",
              b"1,0.75,0.5,0.8125,0.45\r\n",
              b"2,0.875,nan,0.9,0.25\r\n"]


def test_keras_rows_arrive_while_the_file_is_open(mount, client, run_dir):
    """Keras' CSVLogger: one O_TRUNC open for the whole fit, one write(2) per
    epoch (the first with the header), CRLF, NA for the missing val_ metrics.
    Each epoch's points are in MLflow before the file is closed."""
    run_id = run_id_of(run_dir)
    path = run_dir / "artifacts" / "training.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        write_fd(fd, KERAS_HEADER + KERAS_ROWS[0])
        wait_for(lambda: history(client, run_id, "loss") == [(0, 0.6931471824645996)])
        assert history(client, run_id, "val_loss") == []
        write_fd(fd, KERAS_ROWS[1])
        wait_for(lambda: len(history(client, run_id, "val_loss")) == 1)
        write_fd(fd, KERAS_ROWS[2])
        wait_for(lambda: len(history(client, run_id, "accuracy")) == 3)
    finally:
        os.close(fd)
    assert history(client, run_id, "accuracy") == [(0, 0.5), (1, 0.75), (2, 0.875)]
    assert history(client, run_id, "loss") == [(0, 0.6931471824645996), (1, 0.5), (2, "nan")]
    assert history(client, run_id, "val_accuracy") == [(1, 0.8125), (2, 0.9)]
    assert history(client, run_id, "val_loss") == [(1, 0.45), (2, 0.25)]
    assert metric_keys(client, run_id) == {"accuracy", "loss", "val_accuracy", "val_loss"}
    assert path.read_bytes() == KERAS_HEADER + b"".join(KERAS_ROWS)
    line, = [ln for ln in parsed_lines(mount) if " training.log " in ln]
    assert line.split() == [run_id, "training.log", "table", "accuracy", "loss",
                            "val_accuracy", "val_loss"]
    st = status(mount)
    assert (st["parsing"], st["parsed_files"], st["parsed_points"]) == ("on", "1", "10")
    assert st["parse_states"] == "1"


def test_lightning_truncate_rewrite_then_append(mount, client, run_dir):
    """Lightning >= 2.2's CSVLogger: a sorted header (epoch before step), empty
    cells for keys a row lacks; when a key appears the whole file is
    truncated and rewritten with the new header, then rows are appended with
    O_APPEND.  Nothing is logged twice; hparams.yaml becomes params."""
    run_id = run_id_of(run_dir)
    folder = run_dir / "artifacts" / "lightning_logs" / "version_0"
    folder.mkdir(parents=True)
    path = folder / "metrics.csv"
    first = b"epoch,step,train_loss\r\n0,49,0.9\r\n0,99,0.7\r\n"
    rewrite(path, first)
    second = (b"epoch,step,train_loss,val_loss\r\n0,49,0.9,\r\n0,99,0.7,\r\n"
              b"0,99,,0.65\r\n")
    rewrite(path, second)
    more = b"1,149,0.5,\r\n1,199,,0.55\r\n"
    open_append_close(path, more)
    rewrite(folder / "hparams.yaml", b"lr: 0.001\nmodel:\n  hidden: 64\n  layers:\n  - 32\n"
                                     b"  - 16\noptimizer: null\n")
    assert history(client, run_id, "train_loss") == [(49, 0.9), (99, 0.7), (149, 0.5)]
    assert history(client, run_id, "val_loss") == [(99, 0.65), (199, 0.55)]
    # epoch is a metric beside step, once per (step, value).
    assert history(client, run_id, "epoch") == [(49, 0), (99, 0), (149, 1), (199, 1)]
    assert client.get_run(run_id).data.params == {
        "lr": "0.001", "model.hidden": "64", "model.layers.0": "32", "model.layers.1": "16",
        "optimizer": "None"}
    assert path.read_bytes() == second + more


YOLO_OLD_HEADER = (b"                  epoch,         train/box_loss,"
                   b"       metrics/mAP50(B),    metrics/mAP50-95(B)\n")
YOLO_OLD_ROWS = [b"                      1,                 1.2345,"
                 b"                0.12345,               0.067891\n",
                 b"                      2,                 1.1111,"
                 b"                 0.2222,                0.11111\n"]


def test_yolo_open_append_close_per_epoch(mount, client, run_dir):
    """YOLO before 8.3.9: results.csv appended once per epoch (open "a", one
    write, close), every cell padded to 23 characters; args.yaml once."""
    run_id = run_id_of(run_dir)
    folder = run_dir / "artifacts" / "runs" / "detect" / "train"
    folder.mkdir(parents=True)
    rewrite(folder / "args.yaml", b"task: detect\nmode: train\nmodel: yolo11n.pt\nepochs: 2\n"
                                  b"lr0: 0.01\ncache: false\nsave_dir: runs/detect/train\n")
    path = folder / "results.csv"
    open_append_close(path, YOLO_OLD_HEADER + YOLO_OLD_ROWS[0])
    wait_for(lambda: history(client, run_id, "metrics/mAP50B") == [(1, 0.12345)])
    open_append_close(path, YOLO_OLD_ROWS[1])
    assert history(client, run_id, "metrics/mAP50B") == [(1, 0.12345), (2, 0.2222)]
    assert history(client, run_id, "metrics/mAP50-95B") == [(1, 0.067891), (2, 0.11111)]
    assert history(client, run_id, "train/box_loss") == [(1, 1.2345), (2, 1.1111)]
    assert metric_keys(client, run_id) == {"train/box_loss", "metrics/mAP50B",
                                           "metrics/mAP50-95B"}
    assert client.get_run(run_id).data.params == {
        "task": "detect", "mode": "train", "model": "yolo11n.pt", "epochs": "2", "lr0": "0.01",
        "cache": "false", "save_dir": "runs/detect/train"}
    assert path.read_bytes() == YOLO_OLD_HEADER + b"".join(YOLO_OLD_ROWS)
    # The trainer reads results.csv back at every checkpoint.
    assert (mount.mnt / path.relative_to(mount.mnt)).read_bytes().count(b"\n") == 3


def test_dvclive_tsv_metrics_json_and_params(mount, client, run_dir):
    """dvclive: plots/metrics/<name>.tsv appended per log_metric (the header in
    the first write; with timestamp=True a timestamp column), metrics.json and
    params.yaml rewritten whole.  metrics.json repeats the TSVs' latest points:
    they are logged once."""
    run_id = run_id_of(run_dir)
    live = run_dir / "artifacts" / "dvclive"
    (live / "plots" / "metrics" / "train").mkdir(parents=True)
    loss = live / "plots" / "metrics" / "train" / "loss.tsv"
    acc = live / "plots" / "metrics" / "acc.tsv"
    rewrite(live / "params.yaml", b"epochs: 2\noptim:\n  lr: 0.01\n")
    for step, (lv, av) in enumerate([(1.5, 0.25), (1.25, 0.5)]):
        head = b"step\tloss\n" if step == 0 else b""
        open_append_close(loss, head + f"{step}\t{lv}\n".encode())
        ahead = b"timestamp\tstep\tacc\n" if step == 0 else b""
        open_append_close(acc, ahead + f"{1700000000000 + step}\t{step}\t{av}\n".encode())
        rewrite(live / "metrics.json",
                f'{{\n    "train": {{\n        "loss": {lv}\n    }},\n    "acc": {av},\n'
                f'    "step": {step}\n}}\n'.encode())
    assert history(client, run_id, "train/loss") == [(0, 1.5), (1, 1.25)]
    assert history(client, run_id, "acc") == [(0, 0.25), (1, 0.5)]
    stamps = sorted(m.timestamp for m in client.get_metric_history(run_id, "acc"))
    assert stamps == [1700000000000, 1700000000001]
    assert metric_keys(client, run_id) == {"train/loss", "acc"}
    assert client.get_run(run_id).data.params == {"epochs": "2", "optim.lr": "0.01"}


def trainer_state(entries, step):
    import json
    return (json.dumps({"epoch": entries[-1]["epoch"], "global_step": step,
                        "log_history": entries, "max_steps": 20}, indent=2, sort_keys=True)
            + "\n").encode()


def test_hugging_face_checkpoints_are_cumulative(mount, client, run_dir):
    """transformers' Trainer writes checkpoint-N/trainer_state.json, each with
    the whole log_history, rotates old checkpoints with rmtree, and
    save_state() writes one more at the end: each point is logged once.
    config.json (save_pretrained) becomes params."""
    run_id = run_id_of(run_dir)
    out = run_dir / "artifacts" / "out"
    entries = []
    for step, loss in ((5, 0.7), (10, 0.5), (15, 0.4)):
        entries.append({"epoch": step / 10, "grad_norm": 2.5, "learning_rate": 5e-05,
                        "loss": loss, "step": step})
        if step == 10:
            entries.append({"epoch": 1.0, "eval_loss": 0.45, "eval_runtime": 0.1,
                            "step": 10})
        ck = out / f"checkpoint-{step}"
        ck.mkdir(parents=True)
        rewrite(ck / "trainer_state.json", trainer_state(entries, step))
        rewrite(ck / "config.json", b'{\n  "hidden_size": 32,\n  "id2label": {"0": "NEG"}\n}\n')
        if step == 15:
            shutil.rmtree(out / "checkpoint-5")
    rewrite(out / "trainer_state.json", trainer_state(entries, 15))
    assert history(client, run_id, "loss") == [(5, 0.7), (10, 0.5), (15, 0.4)]
    assert history(client, run_id, "eval_loss") == [(10, 0.45)]
    assert history(client, run_id, "epoch") == [(5, 0.5), (10, 1.0), (15, 1.5)]
    assert history(client, run_id, "learning_rate") == [(5, 5e-05), (10, 5e-05), (15, 5e-05)]
    assert client.get_run(run_id).data.params == {"hidden_size": "32", "id2label.0": "NEG"}
    assert sorted(os.listdir(out)) == ["checkpoint-10", "checkpoint-15", "trainer_state.json"]


def test_hydra_output_folder_copied(mount, client, run_dir, tmp_path):
    """cp -r of a Hydra output folder: .hydra/config.yaml becomes params
    (interpolations stay text); hydra.yaml, overrides.yaml and the job's log
    are only stored."""
    run_id = run_id_of(run_dir)
    src = tmp_path / "outputs" / "2026-01-01" / "12-00-00"
    (src / ".hydra").mkdir(parents=True)
    files = {
        ".hydra/config.yaml": b"model:\n  dim: 128\n  head_dim: ${model.dim}\noptimizer:\n"
                              b"  lr: 0.01\nseed: ???\n",
        ".hydra/hydra.yaml": b"hydra:\n  run:\n    dir: outputs\n",
        ".hydra/overrides.yaml": b"- optimizer.lr=0.01\n",
        "train.log": b"[2026-01-01 12:00:00,000][__main__][INFO] - loss 0.5\n",
    }
    for name, data in files.items():
        (src / name).write_bytes(data)
    sh(f"cp -r '{src}' '{run_dir / 'artifacts'}/'")
    dst = run_dir / "artifacts" / "12-00-00"
    for name, data in files.items():
        assert (dst / name).read_bytes() == data
    assert client.get_run(run_id).data.params == {
        "model.dim": "128", "model.head_dim": "${model.dim}", "optimizer.lr": "0.01",
        "seed": "???"}
    assert metric_keys(client, run_id) == set()


def test_noparse_only_stores(make_mount, store):
    """-o noparse: the same files are stored byte for byte, nothing is logged."""
    import mlflow
    m = make_mount(args=["-o", "noparse"])
    client = mlflow.MlflowClient(tracking_uri=m.client_uri)
    run_dir = m.run("e", "r")
    os.makedirs(run_dir)
    run_id = run_id_of(run_dir)
    log = run_dir / "artifacts" / "training.log"
    rewrite(log, KERAS_HEADER + b"".join(KERAS_ROWS))
    rewrite(run_dir / "artifacts" / "hparams.yaml", b"lr: 0.1\n")
    assert log.read_bytes() == KERAS_HEADER + b"".join(KERAS_ROWS)
    time.sleep(0.5)
    run = client.get_run(run_id)
    assert (run.data.metrics, run.data.params) == ({}, {})
    assert (m.mnt / ".mlflowfs" / "parsed").read_text() == ""
    assert status(m)["parsing"] == "off"


def test_param_conflict_is_noted_never_failed(mount, client, run_dir):
    """A param the file gives another value than the logged one: the write and
    the close succeed, the param keeps its value, .mlflowfs/errors says EPERM
    with the path and both values; the file's other params are logged."""
    run_id = run_id_of(run_dir)
    client.log_param(run_id, "lr", "0.1")
    path = run_dir / "artifacts" / "params.yaml"
    rewrite(path, b"lr: 0.2\nbatch: 32\n")
    assert path.read_bytes() == b"lr: 0.2\nbatch: 32\n"
    assert client.get_run(run_id).data.params == {"lr": "0.1", "batch": "32"}
    errors = (mount.mnt / ".mlflowfs" / "errors").read_text().splitlines()
    line, = [ln for ln in errors if "artifacts/params.yaml" in ln]
    assert "EPERM" in line and "'0.1'" in line and "'0.2'" in line and "'lr'" in line
    if not mount.remote:
        # Rewritten unchanged: nothing moves, nothing more is noted.
        before = db_snapshot(mount.db)
        rewrite(path, b"lr: 0.2\nbatch: 32\n")
        assert db_snapshot(mount.db) == before


def test_not_a_table_and_bad_files_are_only_stored(mount, client, run_dir):
    """A .csv without a step or epoch column, a log, broken YAML, a row longer
    than 64 KiB: stored byte for byte, nothing logged, notes where due."""
    run_id = run_id_of(run_dir)
    art = run_dir / "artifacts"
    files = {
        "data.csv": b"a,b\n1,2\n",
        "train.log": b"[12:00][main][INFO] - loss: 0.5\n",
        "hparams.yaml": b"a: [1, 2\nb: c\n",
        "long.csv": b"step,x\n0," + b"1" * (70 * 1024) + b"\n1,2\n",
    }
    for name, data in files.items():
        rewrite(art / name, data)
    for name, data in files.items():
        assert (art / name).read_bytes() == data
    run = client.get_run(run_id)
    assert (run.data.metrics, run.data.params) == ({}, {})
    errors = (mount.mnt / ".mlflowfs" / "errors").read_text()
    assert "artifacts/hparams.yaml" in errors and "not YAML" in errors
    assert "artifacts/long.csv" in errors and "longer than 65536 bytes" in errors
    assert "data.csv" not in errors and "train.log" not in errors
    # Nothing of them is kept: a cp -r of a data set costs no memory a file.
    assert status(mount)["parse_states"] == "0"
    sh(f"mkdir '{art}/data' && for i in $(seq 50); do echo \"text $i\" > '{art}/data/'$i.txt; done")
    assert status(mount)["parse_states"] == "0"


def test_removed_file_starts_afresh(mount, client, run_dir):
    """YOLO deletes results.csv when a training starts: the next file with the
    same name is parsed from its own header."""
    run_id = run_id_of(run_dir)
    path = run_dir / "artifacts" / "results.csv"
    open_append_close(path, b"epoch,loss\n1,0.5\n")
    os.unlink(path)
    open_append_close(path, b"epoch,acc\n1,0.25\n")
    open_append_close(path, b"2,0.5\n")
    assert history(client, run_id, "loss") == [(1, 0.5)]
    assert history(client, run_id, "acc") == [(1, 0.25), (2, 0.5)]


@pytest.mark.local_only("the file is written behind the daemon's back, in the store's folder")
def test_file_that_existed_is_read_back(mount, client, run_dir):
    """A table the daemon has no state of (written before the mount) and then
    appended to: read back from its start at close."""
    run_id = run_id_of(run_dir)
    open_append_close(run_dir / "artifacts" / "x.txt", b"")
    folder = client.get_run(run_id).info.artifact_uri.replace("file://", "")
    with open(os.path.join(folder, "results.csv"), "wb") as f:
        f.write(b"step,loss\n0,1.5\n")
    open_append_close(run_dir / "artifacts" / "results.csv", b"1,1.25\n")
    assert history(client, run_id, "loss") == [(0, 1.5), (1, 1.25)]


def run_python(code, cwd):
    """Runs code in a fresh process of this Python, in cwd; returns its output."""
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True,
                       timeout=120, env=dict(os.environ, DVCLIVE_LOGLEVEL="WARNING"))
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


DVCLIVE_PROGRAM = """
from dvclive import Live
with Live(dir="dvclive", save_dvc_exp=False) as live:
    live.log_params({"lr": 0.01, "model": {"depth": 3}})
    for i in range(3):
        live.log_metric("train/loss", 1.0 / (i + 1))
        live.log_metric("acc", i * 0.25, timestamp=True)
        live.next_step()
"""


def test_real_dvclive(mount, client, run_dir):
    """dvclive itself, run in the run's artifacts/: its plots, summary and params."""
    pytest.importorskip("dvclive")
    run_id = run_id_of(run_dir)
    run_python(DVCLIVE_PROGRAM, run_dir / "artifacts")
    assert history(client, run_id, "train/loss") == [(0, 1.0), (1, 0.5), (2, 1 / 3)]
    assert history(client, run_id, "acc") == [(0, 0.0), (1, 0.25), (2, 0.5)]
    assert client.get_run(run_id).data.params == {"lr": "0.01", "model.depth": "3"}
    tsv = (run_dir / "artifacts" / "dvclive" / "plots" / "metrics" / "train" / "loss.tsv")
    assert tsv.read_text() == "step\tloss\n0\t1.0\n1\t0.5\n2\t0.3333333333333333\n"


HYDRA_PROGRAM = """
import hydra
from omegaconf import DictConfig

@hydra.main(version_base=None, config_path="conf", config_name="config")
def main(cfg: DictConfig) -> None:
    print(cfg.optimizer.lr)

main()
"""


def test_real_hydra(mount, client, run_dir, tmp_path):
    """Hydra itself, its output folder pointed into the run's artifacts/
    (hydra.run.dir), an override on the command line."""
    pytest.importorskip("hydra")
    run_id = run_id_of(run_dir)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "config.yaml").write_text(
        "model:\n  dim: 128\n  head: ${model.dim}\noptimizer:\n  lr: 0.1\n  betas: [0.9, 0.99]\n")
    (tmp_path / "app.py").write_text(HYDRA_PROGRAM)
    out = run_dir / "artifacts" / "hydra"
    import subprocess
    import sys
    r = subprocess.run([sys.executable, "app.py", f"hydra.run.dir={out}", "optimizer.lr=0.01"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "0.01"
    assert client.get_run(run_id).data.params == {
        "model.dim": "128", "model.head": "${model.dim}", "optimizer.lr": "0.01",
        "optimizer.betas.0": "0.9", "optimizer.betas.1": "0.99"}
    assert "optimizer.lr=0.01" in (out / ".hydra" / "overrides.yaml").read_text()
    assert (out / "app.log").exists()


def test_params_too_long_or_refused_are_noted(mount, client, run_dir):
    """A value over MLflow's 6000 characters (counted in characters: 6000
    'é' pass) and a key MLflow refuses are left out with a note (EFBIG,
    EINVAL); the file's other params are logged and the file is stored."""
    run_id = run_id_of(run_dir)
    text = ("ok: 1\nlong: " + "x" * 6001 + "\nwide: " + "\u00e9" * 6000 +
            "\n/abs: 2\na/../b: 3\n").encode()
    path = run_dir / "artifacts" / "args.yaml"
    rewrite(path, text)
    assert path.read_bytes() == text
    assert client.get_run(run_id).data.params == {"ok": "1", "wide": "\u00e9" * 6000}
    errors = (mount.mnt / ".mlflowfs" / "errors").read_text().splitlines()
    mine = [ln for ln in errors if "artifacts/args.yaml" in ln]
    assert any("EFBIG" in ln and "'long'" in ln for ln in mine), errors
    assert any("EINVAL" in ln and "'/abs'" in ln for ln in mine), errors
    assert any("EINVAL" in ln and "'a/../b'" in ln for ln in mine), errors


KERAS_PROGRAM = """
import sys, time
import numpy as np, keras, mlflow

uri, run_id = sys.argv[1], sys.argv[2]
client = mlflow.MlflowClient(tracking_uri=uri)


class Seen(keras.callbacks.Callback):
    # After CSVLogger wrote an epoch's row (its file still open): the
    # row's points must be in MLflow.
    def on_epoch_end(self, epoch, logs=None):
        deadline = time.monotonic() + 10
        while len(client.get_metric_history(run_id, "loss")) < epoch + 1:
            if time.monotonic() > deadline:
                sys.exit(f"epoch {epoch}: its row is not in MLflow while the file is open")
            time.sleep(0.05)
        print("seen", epoch)


x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
y = (x.sum(axis=1) > 0).astype("float32")
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer="sgd", loss="binary_crossentropy", metrics=["accuracy"])
model.fit(x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0,
          callbacks=[keras.callbacks.CSVLogger("training.log"), Seen()])
"""


def test_real_keras(mount, client, run_dir):
    """Keras 3 itself (JAX backend): CSVLogger keeps training.log open for the
    whole fit; each epoch's points are in MLflow before the next epoch, and
    at the end exactly the file's rows are."""
    import importlib.util
    # Not imported here: Keras picks its backend (JAX) at its first import.
    if not (importlib.util.find_spec("keras") and importlib.util.find_spec("jax")):
        pytest.skip("keras and jax are not installed")
    import csv
    import subprocess
    import sys
    run_id = run_id_of(run_dir)
    r = subprocess.run([sys.executable, "-c", KERAS_PROGRAM, mount.client_uri, run_id],
                       cwd=run_dir / "artifacts", capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, KERAS_BACKEND="jax"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.split() == ["seen", "0", "seen", "1", "seen", "2"]
    raw = (run_dir / "artifacts" / "training.log").read_bytes()
    assert raw.startswith(b"epoch,accuracy,loss,val_accuracy,val_loss\r\n")
    rows = list(csv.DictReader(raw.decode().splitlines()))
    assert len(rows) == 3
    for key in ("accuracy", "loss", "val_accuracy", "val_loss"):
        assert history(client, run_id, key) == [(int(row["epoch"]), float(row[key]))
                                                 for row in rows]
