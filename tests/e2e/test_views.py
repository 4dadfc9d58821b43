"""The runs table of an experiment (.runs.csv, .runs.tsv), both stores: what
mlflow.search_runs gives a Python user, as a file, checked against search_runs
itself on the same store, and read with Python's csv module and pandas as a
user's program reads it."""
import csv
import errno
import io
import os
import time

import pytest

from conftest import run_id_of, seen, write_file
from helpers_tree import expected_folders, new_experiment
from helpers_writes import refused

FIXED = ["run", "run_id", "status", "start_time", "end_time", "duration"]


def iso_ms(ms):
    """MLflow's milliseconds as the table writes them."""
    if ms is None:
        return ""
    t = time.gmtime(ms // 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + ".%03dZ" % (ms % 1000)


def read_table(path, tsv=False):
    raw = path.read_bytes()
    assert os.stat(path).st_size == len(raw), "stat's size is not what a read returns"
    text = raw.decode()
    if tsv:
        rows = [line.split("\t") for line in text.split("\n")[:-1]]
    else:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    assert text.endswith("\n")
    header, body = rows[0], rows[1:]
    assert all(len(r) == len(header) for r in body), "a row with another number of fields"
    return header, [dict(zip(header, r)) for r in body]


def expected_rows(client, exp_id, tsv=False):
    """What the table must hold, from MlflowClient: active runs, with the
    columns search_runs gives, by mlflowfs(1)'s rules for the rest."""
    folders = expected_folders(client, exp_id)
    runs = client.search_runs([exp_id], max_results=50000)
    params = sorted({k for r in runs for k in r.data.params})
    metrics = sorted({k for r in runs for k in r.data.metrics})
    header = FIXED + [f"params.{k}" for k in params] + [f"metrics.{k}" for k in metrics]
    rows = {}
    for r in runs:
        i = r.info
        row = {"run": folders[i.run_id], "run_id": i.run_id, "status": i.status,
               "start_time": iso_ms(i.start_time), "end_time": iso_ms(i.end_time),
               "duration": ("%.3f" % ((i.end_time - i.start_time) / 1000)
                            if i.end_time is not None else "")}
        for k in params:
            v = r.data.params.get(k, "")
            if tsv:
                v = v.replace("\t", " ").replace("\n", " ").replace("\r", " ")
            row[f"params.{k}"] = v
        for k in metrics:
            row[f"metrics.{k}"] = (repr(r.data.metrics[k]) if k in r.data.metrics else "")
        rows[i.run_id] = row
    return header, rows


@pytest.fixture
def table_exp(mount, client):
    """An experiment of four active runs and a deleted one: shared names,
    params and metrics some runs lack, a param value CSV must quote, and a
    finished run."""
    exp = new_experiment(client, mount, "tab")
    a = client.create_run(exp, run_name="same")
    client.log_param(a.info.run_id, "lr", "0.1")
    client.log_param(a.info.run_id, "note", 'a, "quoted"\tvalue\nline two')
    client.log_metric(a.info.run_id, "loss", 0.5, step=0)
    client.log_metric(a.info.run_id, "loss", 0.25, step=1)
    client.set_terminated(a.info.run_id, "FINISHED")
    b = client.create_run(exp, run_name="same")
    client.log_param(b.info.run_id, "lr", "0.01")
    client.log_metric(b.info.run_id, "acc", 0.875)
    client.log_metric(b.info.run_id, "train/loss", 1e-5)
    c = client.create_run(exp, run_name="other")
    client.log_param(c.info.run_id, "batch", "32")
    gone = client.create_run(exp, run_name="gone")
    client.log_param(gone.info.run_id, "only_deleted", "x")
    client.delete_run(gone.info.run_id)
    return exp


@pytest.mark.parametrize("tsv", [False, True], ids=["csv", "tsv"])
def test_runs_table_holds_what_search_runs_gives(mount, client, table_exp, tsv):
    name = ".runs.tsv" if tsv else ".runs.csv"
    want_header, want = expected_rows(client, table_exp, tsv)
    path = mount.exp("tab") / name

    def check():
        header, rows = read_table(path, tsv)
        assert header == want_header
        assert {r["run_id"]: r for r in rows} == want
        return True

    seen(mount, check)
    # Oldest first, as the folders are listed.
    runs = sorted(client.search_runs([table_exp]), key=lambda r: r.info.start_time)
    assert [r["run_id"] for r in read_table(path, tsv)[1]] == [r.info.run_id for r in runs]
    assert "params.only_deleted" not in read_table(path, tsv)[0]


def test_runs_table_reads_in_pandas_as_search_runs(mount, client, table_exp):
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(mount.client_uri)
    theirs = mlflow.search_runs(experiment_ids=[table_exp]).set_index("run_id")

    def check():
        ours = pd.read_csv(mount.exp("tab") / ".runs.csv", dtype=str,
                           keep_default_na=False).set_index("run_id")
        assert set(ours.index) == set(theirs.index)
        cols = [c for c in theirs.columns if c.startswith(("params.", "metrics."))]
        assert sorted(cols) == sorted(c for c in ours.columns
                                      if c.startswith(("params.", "metrics.")))
        for rid in theirs.index:
            assert ours.loc[rid, "status"] == theirs.loc[rid, "status"]
            for c in cols:
                v = theirs.loc[rid, c]
                if c.startswith("metrics."):
                    assert (ours.loc[rid, c] == "") == pd.isna(v)
                    if not pd.isna(v):
                        assert float(ours.loc[rid, c]) == v
                else:
                    assert ours.loc[rid, c] == ("" if v is None or pd.isna(v) else v)
        return True

    seen(mount, check)


def test_runs_table_follows_writes_through_the_mount(mount, client):
    os.makedirs(mount.run("w", "r1"))
    path = mount.exp("w") / ".runs.csv"
    header, rows = read_table(path)
    assert header == FIXED and [r["run"] for r in rows] == ["r1"]
    assert rows[0]["status"] == "RUNNING" and rows[0]["end_time"] == ""
    # Every change made through the mount shows at the next stat and read,
    # with no wait: the size a stat gives is always the content's.
    write_file(mount.run("w", "r1") / "params" / "lr", "0.1\n")
    header, rows = read_table(path)
    assert header == FIXED + ["params.lr"] and rows[0]["params.lr"] == "0.1"
    with open(mount.run("w", "r1") / "metrics" / "loss", "a") as f:
        f.write("0.5\n0.25\n")
    header, rows = read_table(path)
    assert header[-1] == "metrics.loss" and rows[0]["metrics.loss"] == "0.25"
    write_file(mount.run("w", "r1") / "status", "FINISHED\n")
    rows = read_table(path)[1]
    assert rows[0]["status"] == "FINISHED" and rows[0]["end_time"] != ""
    os.makedirs(mount.run("w", "r2"))
    assert [r["run"] for r in read_table(path)[1]] == ["r1", "r2"]
    os.rmdir(mount.run("w", "r2"))
    assert [r["run"] for r in read_table(path)[1]] == ["r1"]
    assert read_table(mount.exp("w") / ".runs.tsv", tsv=True)[1][0]["status"] == "FINISHED"


def test_runs_table_shows_another_clients_change(mount, client):
    os.makedirs(mount.run("o", "r"))
    path = mount.exp("o") / ".runs.csv"
    read_table(path)
    client.log_param(run_id_of(mount.run("o", "r")), "seed", "7")
    seen(mount, lambda: read_table(path)[1][0].get("params.seed") == "7")


def test_runs_table_is_read_only(mount, client, table_exp):
    for name in (".runs.csv", ".runs.tsv"):
        path = mount.exp("tab") / name
        before = path.read_bytes()
        refused(mount, errno.EACCES, os.open, path, os.O_WRONLY | os.O_TRUNC, path=path,
                reason=r"read-only")
        refused(mount, errno.EACCES, os.truncate, path, 0, path=path, reason=r"read-only")
        refused(mount, errno.EPERM, os.unlink, path, path=path, reason=r".")
        assert path.read_bytes() == before
    assert sorted(n for n in os.listdir(mount.exp("tab")) if n.startswith(".runs")) == [
        ".runs.csv", ".runs.tsv"]


def test_runs_table_of_an_empty_experiment_is_its_header(mount):
    os.makedirs(mount.exp("empty"))
    assert (mount.exp("empty") / ".runs.csv").read_text() == ",".join(FIXED) + "\n"
    assert (mount.exp("empty") / ".runs.tsv").read_text() == "\t".join(FIXED) + "\n"
