"""mlflowfs(1), WRITING: what each write, mkdir, rmdir and mv in the tree does to
the store, cross-checked with the real MLflow client on the same database.

Covers params (value rules, the 6000-character limit counted in characters),
metric lines (every form, separators, nan/inf, replay of history/ through cp,
the latest-value rule), tags and experiment tags, status, touch, mkdir/rmdir
of experiments, runs and key folders, and mv of runs, experiments and tags.
The refusals of the same area are in test_refusals.py.
"""
import json
import math
import os
import sqlite3
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from conftest import run_id_of, sh, write_file
from helpers_writes import (append, eventually, listing, now_ms, points, settle, snapshot,
                            steps_values, wait_gone, write_then_close)
from helpers_writes import db_made_by_mlflow, mlflow_template_db  # noqa: F401 (fixtures)


@pytest.fixture(autouse=True)
def _store_made_by_mlflow(db_made_by_mlflow):
    """Every test here mounts a database that MLflow made (see helpers_writes)."""


@pytest.fixture
def run_dir(run_dir):
    """conftest's run folder, once committed: the MLflow client sees the run."""
    settle()
    return run_dir


def rid(run_dir):
    return run_id_of(run_dir)


def exp_id_of(client, name):
    """The id of experiment name, once the MLflow client sees it."""
    return eventually(lambda: client.get_experiment_by_name(name) or False).experiment_id


# ---- params -------------------------------------------------------------


def test_echo_to_param_logs_value_without_its_trailing_newline(run_dir, client):
    sh(f"echo 0.01 > {run_dir}/params/lr")
    assert client.get_run(rid(run_dir)).data.params == {"lr": "0.01"}
    assert (run_dir / "params" / "lr").read_text() == "0.01\n"


def test_param_printf_without_newline_logs_the_bytes_as_written(run_dir, client):
    sh(f"printf 0.5 > {run_dir}/params/dropout")
    assert client.get_run(rid(run_dir)).data.params == {"dropout": "0.5"}


def test_param_value_with_two_trailing_newlines_keeps_one(run_dir, client):
    sh(f"printf 'abc\\n\\n' > {run_dir}/params/p")
    assert client.get_run(rid(run_dir)).data.params["p"] == "abc\n"


def test_param_value_with_embedded_newlines_is_kept_whole(run_dir, client):
    sh(f"printf 'line one\\nline two\\n' > {run_dir}/params/notes")
    assert client.get_run(rid(run_dir)).data.params["notes"] == "line one\nline two"
    assert (run_dir / "params" / "notes").read_text() == "line one\nline two\n"


def test_param_written_with_several_write_calls_is_one_value(run_dir, client):
    # "é" is cut between two write() calls: the value is still one text.
    write_then_close(run_dir / "params" / "opt", [b"ad", b"am-\xc3", b"\xa9\n"])
    assert client.get_run(rid(run_dir)).data.params["opt"] == "adam-é"


def test_param_written_again_with_same_value_succeeds_and_changes_nothing(mount, run_dir):
    sh(f"echo 0.01 > {run_dir}/params/lr")
    before = snapshot(mount)
    sh(f"echo 0.01 > {run_dir}/params/lr")
    sh(f"printf 0.01 > {run_dir}/params/lr")  # same value, without the newline
    write_then_close(run_dir / "params" / "lr", ["0.0", "1\n"])
    assert snapshot(mount) == before


def test_param_of_exactly_6000_characters_is_logged(run_dir, client):
    value = "x" * 6000
    write_file(run_dir / "params" / "long", value + "\n")
    assert client.get_run(rid(run_dir)).data.params["long"] == value


def test_param_limit_counts_characters_not_bytes(run_dir, client):
    # 6000 two-byte characters: 12000 bytes, within MLflow's 6000-character limit.
    value = "é" * 6000
    write_file(run_dir / "params" / "wide", value + "\n")
    assert client.get_run(rid(run_dir)).data.params["wide"] == value
    assert (run_dir / "params" / "wide").read_text(encoding="utf-8") == value + "\n"


def test_param_key_of_250_characters_is_accepted(run_dir, client):
    key = "k" * 250
    sh(f"echo v > {run_dir}/params/{key}")
    assert client.get_run(rid(run_dir)).data.params == {key: "v"}


# ---- metrics: appending lines ---------------------------------------------


def test_echo_append_to_metric_logs_one_point_per_line_from_step_zero(run_dir, client):
    before = now_ms()
    sh(f"echo 0.93 >> {run_dir}/metrics/acc; echo 0.95 >> {run_dir}/metrics/acc")
    after = now_ms()
    pts = points(client, rid(run_dir), "acc")
    assert [(s, v) for s, _, v in pts] == [(0, 0.93), (1, 0.95)]
    assert all(before <= t <= after for _, t, _ in pts)
    assert (run_dir / "metrics" / "acc").read_text() == "0.95\n"
    assert client.get_run(rid(run_dir)).data.metrics == {"acc": 0.95}


def test_value_line_takes_one_more_than_the_highest_step(mount, run_dir, client):
    run_id = rid(run_dir)
    append(run_dir / "metrics" / "m", "10 0.5\n3 0.1\n")
    append(run_dir / "metrics" / "m", "0.6\n")
    # Points logged by another client count too, once the mount sees them.
    client.log_metric(run_id, "m", 0.7, step=20)
    time.sleep(mount.staleness)
    append(run_dir / "metrics" / "m", "0.8\n")
    assert steps_values(client, run_id, "m") == [(3, 0.1), (10, 0.5), (11, 0.6), (20, 0.7),
                                                 (21, 0.8)]


def test_value_line_after_only_negative_steps_takes_highest_plus_one(run_dir, client):
    append(run_dir / "metrics" / "m", "-5 1.5\n")
    append(run_dir / "metrics" / "m", "2.5\n")
    assert steps_values(client, rid(run_dir), "m") == [(-5, 1.5), (-4, 2.5)]


def test_step_of_value_line_does_not_depend_on_write_boundaries(run_dir, client):
    append(run_dir / "metrics" / "m", "-5 1.5\n2.5\n")
    assert steps_values(client, rid(run_dir), "m") == [(-5, 1.5), (-4, 2.5)]


def test_steps_are_per_metric(run_dir, client):
    append(run_dir / "metrics" / "a", "7 1\n")
    append(run_dir / "metrics" / "b", "2\n")
    assert steps_values(client, rid(run_dir), "b") == [(0, 2.0)]


def test_program_keeping_metric_open_logs_each_complete_line(run_dir, client):
    run_id = rid(run_dir)
    path = run_dir / "metrics" / "loss"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, b"0.5\n0.4\n")
        os.write(fd, b"0.3\n0.")  # the last line is not finished
        # The program's own reads see its writes at once.
        assert path.read_text() == "0.3\n"
        os.fsync(fd)  # safe in the store: the complete lines, not the partial one
        assert steps_values(client, run_id, "loss") == [(0, 0.5), (1, 0.4), (2, 0.3)]
        os.write(fd, b"25\n0.1")  # completes "0.25"; "0.1" has no newline
        os.fsync(fd)
        assert steps_values(client, run_id, "loss") == [(0, 0.5), (1, 0.4), (2, 0.3),
                                                        (3, 0.25)]
    finally:
        os.close(fd)
    # The trailing partial line is logged at close.
    assert steps_values(client, run_id, "loss") == [(0, 0.5), (1, 0.4), (2, 0.3), (3, 0.25),
                                                    (4, 0.1)]


def test_shell_loop_writing_to_open_metric_logs_every_line(run_dir, client):
    sh(f"(for i in 1 2 3; do echo 0.$i; done; printf 0.4) >> {run_dir}/metrics/loss")
    assert steps_values(client, rid(run_dir), "loss") == [(0, 0.1), (1, 0.2), (2, 0.3),
                                                          (3, 0.4)]


def test_seq_output_split_across_writes_logs_every_line_once(run_dir, client):
    # seq buffers its output in blocks, so write() boundaries cut lines.
    sh(f"seq 1 3000 >> {run_dir}/metrics/n")
    got = steps_values(client, rid(run_dir), "n")
    assert got == [(i, float(i + 1)) for i in range(3000)]


def test_metric_step_value_form_logs_that_step_at_the_current_time(run_dir, client):
    before = now_ms()
    append(run_dir / "metrics" / "m", "5 0.25\n")
    after = now_ms()
    [(step, ts, value)] = points(client, rid(run_dir), "m")
    assert (step, value) == (5, 0.25)
    assert before <= ts <= after


def test_metric_step_value_timestamp_form_logs_exactly_that_point(run_dir, client):
    append(run_dir / "metrics" / "m", "3 0.5 1700000000123\n-2 1e-3 1600000000000\n")
    assert points(client, rid(run_dir), "m") == [(-2, 1600000000000, 0.001),
                                                 (3, 1700000000123, 0.5)]


@pytest.mark.parametrize("line, point", [
    ("4 2.5", (4, 2.5)),
    ("4\t2.5", (4, 2.5)),
    ("4,2.5", (4, 2.5)),
    ("4  \t  2.5", (4, 2.5)),
    ("4,2.5,1700000000999", (4, 2.5, 1700000000999)),
    ("4\t2.5\t1700000000999", (4, 2.5, 1700000000999)),
    ("-2.5E+2", (0, -250.0)),
])
def test_metric_line_fields_split_by_spaces_tabs_or_one_comma(run_dir, client, line, point):
    append(run_dir / "metrics" / "m", line + "\n")
    [(step, ts, value)] = points(client, rid(run_dir), "m")
    assert (step, value) == point[:2]
    if len(point) == 3:
        assert ts == point[2]


def test_nan_and_infinities_are_stored_as_mlflow_stores_them(mount, run_dir, client):
    run_id = rid(run_dir)
    append(run_dir / "metrics" / "fs", "nan\ninf\n-inf\n")
    for step, v in enumerate((math.nan, math.inf, -math.inf)):
        client.log_metric(run_id, "py", v, step=step)
    # MLflow's client reads NaN back as NaN and infinities as +-max double.
    got = [v for _, _, v in points(client, run_id, "fs")]
    assert got == ["nan", 1.7976931348623157e308, -1.7976931348623157e308]
    assert got == [v for _, _, v in points(client, run_id, "py")]
    # The rows are those the MLflow client writes for the same values.
    con = sqlite3.connect(f"file:{mount.db}?mode=ro", uri=True)
    try:
        rows = {k: con.execute("SELECT step, value, is_nan FROM metrics WHERE run_uuid = ? "
                               "AND key = ? ORDER BY step", (run_id, k)).fetchall()
                for k in ("fs", "py")}
    finally:
        con.close()
    assert rows["fs"] == rows["py"]
    assert (run_dir / "metrics" / "fs").read_text() == "-inf\n"
    assert [line.split()[1] for line in
            (run_dir / "history" / "fs").read_text().splitlines()] == ["nan", "inf", "-inf"]


def test_blank_lines_in_metric_writes_are_skipped(run_dir, client):
    # Our choice (mlflowfs(1), Metric lines): blank lines log nothing, no EINVAL.
    append(run_dir / "metrics" / "m", "1\n\n   \n\t\n2\n")
    assert steps_values(client, rid(run_dir), "m") == [(0, 1.0), (1, 2.0)]


def test_cp_of_history_replays_every_point_exactly(mount, client):
    src_run, dst_run, dst2_run = (mount.run("e", n) for n in ("src", "dst", "dst2"))
    for d in (src_run, dst_run, dst2_run):
        os.makedirs(d)
    settle()
    src, dst, dst2 = rid(src_run), rid(dst_run), rid(dst2_run)
    from mlflow.entities import Metric
    client.log_batch(src, metrics=[
        Metric("loss", 0.5, 1700000000000, 0),
        Metric("loss", 0.25, 1700000000500, 1),
        Metric("loss", 0.3, 1700000000400, 1),  # same step, earlier time
        Metric("loss", 1 / 3, 1700000001000, 2),
        Metric("loss", math.nan, 1700000002000, 3),
        Metric("loss", math.inf, 1700000003000, 4),
        Metric("loss", 1e-300, 1700000004000, -7),
        Metric("loss", 123456789.125, 1, 10**12),
    ])
    sh(f"cp {src_run}/history/loss {dst_run}/metrics/loss")
    assert points(client, dst, "loss") == points(client, src, "loss")
    assert len(points(client, dst, "loss")) == 8
    assert client.get_run(dst).data.metrics == client.get_run(src).data.metrics
    # Into the folder, as cp FILE DIR/ does.
    sh(f"cp {src_run}/history/loss {dst2_run}/metrics/")
    assert points(client, dst2, "loss") == points(client, src, "loss")
    # Replayed again: the same points, which MLflow's metrics table holds once
    # (its primary key is the whole point), so nothing changes.
    before = snapshot(mount)
    sh(f"cp {src_run}/history/loss {dst_run}/metrics/loss")
    assert snapshot(mount) == before


def test_truncating_a_metric_file_changes_nothing(mount, run_dir, client):
    m = run_dir / "metrics" / "acc"
    append(m, "0.1\n0.2\n")
    before = snapshot(mount)
    sh(f": > {m}")
    sh(f"truncate -s 0 {m}")
    os.truncate(m, 0)
    with open(m, "w"):
        pass
    assert snapshot(mount) == before
    assert m.read_text() == "0.2\n"
    # `>` then logs what is written, after the points already there.
    sh(f"echo 0.3 > {m}")
    assert steps_values(client, rid(run_dir), "acc") == [(0, 0.1), (1, 0.2), (2, 0.3)]


def test_metric_read_shows_latest_by_step_then_time_then_value(run_dir, client):
    """MLflow's latest_metrics rule: the greatest (step, timestamp, value)."""
    run_id = rid(run_dir)
    m = run_dir / "metrics" / "m"

    def latest():
        text = m.read_text()
        assert text.endswith("\n")
        return float(text), client.get_run(run_id).data.metrics["m"]

    append(m, "5 1.0 1000\n")
    append(m, "3 9.0 2000\n")  # lower step, later time: not the latest
    assert latest() == (1.0, 1.0)
    append(m, "5 2.0 900\n")  # same step, earlier time
    assert latest() == (1.0, 1.0)
    append(m, "5 0.5 1000\n")  # same step and time, smaller value
    assert latest() == (1.0, 1.0)
    append(m, "5 3.0 1000\n")  # same step and time, greater value
    assert latest() == (3.0, 3.0)
    append(m, "5 -1.0 1001\n")  # same step, later time
    assert latest() == (-1.0, -1.0)
    append(m, "6 -2.0 1\n")  # higher step
    assert latest() == (-2.0, -2.0)
    # The MLflow client, given the same points, keeps the same latest value.
    from mlflow.entities import Metric
    other = client.create_run(client.get_run(run_id).info.experiment_id).info.run_id
    client.log_batch(other, metrics=[Metric("m", v, t, s) for s, v, t in [
        (5, 1.0, 1000), (3, 9.0, 2000), (5, 2.0, 900), (5, 0.5, 1000), (5, 3.0, 1000),
        (5, -1.0, 1001), (6, -2.0, 1)]])
    assert client.get_run(other).data.metrics == client.get_run(run_id).data.metrics


def test_metric_value_prints_as_shortest_round_trip_text(run_dir):
    append(run_dir / "metrics" / "m", "0.1\n")
    assert (run_dir / "metrics" / "m").read_text() == "0.1\n"


# ---- tags -----------------------------------------------------------------


def test_echo_to_tag_sets_it_and_rm_deletes_it(run_dir, client):
    run_id = rid(run_dir)
    sh(f"echo v1 > {run_dir}/tags/k")
    assert client.get_run(run_id).data.tags["k"] == "v1"
    sh(f"echo v2 > {run_dir}/tags/k")  # overwrite replaces
    assert client.get_run(run_id).data.tags["k"] == "v2"
    assert (run_dir / "tags" / "k").read_text() == "v2\n"
    sh(f"rm {run_dir}/tags/k")
    eventually(lambda: "k" not in client.get_run(run_id).data.tags)
    assert "k" not in listing(run_dir / "tags")


def test_tag_set_by_mlflow_client_can_be_deleted_with_rm(run_dir, client):
    run_id = rid(run_dir)
    client.set_tag(run_id, "team", "vision")
    assert (run_dir / "tags" / "team").read_text() == "vision\n"
    os.unlink(run_dir / "tags" / "team")
    eventually(lambda: "team" not in client.get_run(run_id).data.tags)


def test_append_to_tag_appends_to_its_value(run_dir, client):
    sh(f"echo first > {run_dir}/tags/log; echo second >> {run_dir}/tags/log")
    assert client.get_run(rid(run_dir)).data.tags["log"] == "first\nsecond"


def test_tag_of_exactly_8000_characters_is_set(run_dir, client):
    value = "ü" * 8000
    write_file(run_dir / "tags" / "big", value + "\n")
    assert client.get_run(rid(run_dir)).data.tags["big"] == value


def test_experiment_tag_is_set_and_note_content_is_the_description(mount, run_dir, client):
    exp_id = client.get_run(rid(run_dir)).info.experiment_id
    tags = mount.exp("e") / ".tags"
    sh(f"echo 'Sweeps of lr' > {tags}/mlflow.note.content; echo cv > {tags}/team")
    got = client.get_experiment(exp_id).tags
    assert got["mlflow.note.content"] == "Sweeps of lr"
    assert got["team"] == "cv"
    sh(f"rm {tags}/team")
    eventually(lambda: "team" not in client.get_experiment(exp_id).tags)
    value = "d" * 5000  # MLflow's limit for experiment tags
    write_file(tags / "long", value)
    assert client.get_experiment(exp_id).tags["long"] == value
    assert json.loads((mount.exp("e") / ".experiment.json").read_text())["tags"][
        "mlflow.note.content"] == "Sweeps of lr"


def test_writing_run_name_tag_renames_the_run(mount, run_dir, client):
    run_id = rid(run_dir)
    sh(f"echo renamed > {run_dir}/tags/mlflow.runName")
    got = client.get_run(run_id)
    assert got.info.run_name == "renamed"
    assert got.data.tags["mlflow.runName"] == "renamed"
    assert "renamed" in listing(mount.exp("e"))
    assert "r" not in listing(mount.exp("e"))
    assert run_id_of(mount.run("e", "renamed")) == run_id


def test_mv_of_a_tag_renames_it(run_dir, client):
    run_id = rid(run_dir)
    sh(f"echo v > {run_dir}/tags/a; mv {run_dir}/tags/a {run_dir}/tags/b")
    eventually(lambda: "a" not in client.get_run(run_id).data.tags)
    assert client.get_run(run_id).data.tags["b"] == "v"
    # (Besides the provenance tags mkdir set: test_provenance.py's.)
    assert [t for t in listing(run_dir / "tags") if not t.startswith("mlflow.source.")] == [
        "b", "mlflow.runName", "mlflow.user"]


def test_mv_of_an_experiment_tag_renames_it(mount, run_dir, client):
    exp_id = client.get_run(rid(run_dir)).info.experiment_id
    tags = mount.exp("e") / ".tags"
    sh(f"echo v > {tags}/old; mv {tags}/old {tags}/new")
    eventually(lambda: "old" not in client.get_experiment(exp_id).tags)
    assert client.get_experiment(exp_id).tags["new"] == "v"


# ---- status ---------------------------------------------------------------


@pytest.mark.parametrize("text, status", [
    ("FINISHED", "FINISHED"), ("FAILED", "FAILED"), ("KILLED", "KILLED"),
    ("finished", "FINISHED"), ("Killed", "KILLED"),
])
def test_terminal_status_sets_status_and_end_time(run_dir, client, text, status):
    before = now_ms()
    sh(f"echo {text} > {run_dir}/status")
    after = now_ms()
    info = client.get_run(rid(run_dir)).info
    assert info.status == status
    assert info.end_time is not None and before <= info.end_time <= after
    assert (run_dir / "status").read_text() == status + "\n"


def test_status_without_newline_is_accepted(run_dir, client):
    sh(f"printf FAILED > {run_dir}/status")
    assert client.get_run(rid(run_dir)).info.status == "FAILED"


def test_running_leaves_end_time_alone(run_dir, client):
    run_id = rid(run_dir)
    sh(f"echo RUNNING > {run_dir}/status")
    info = client.get_run(run_id).info
    assert (info.status, info.end_time) == ("RUNNING", None)
    sh(f"echo FINISHED > {run_dir}/status")
    end = client.get_run(run_id).info.end_time
    # As MLflow's update_run_info: a status without an end time keeps the old one.
    sh(f"echo running > {run_dir}/status")
    info = client.get_run(run_id).info
    assert (info.status, info.end_time) == ("RUNNING", end)


def test_scheduled_status_is_accepted(run_dir, client):
    sh(f"echo SCHEDULED > {run_dir}/status")
    assert client.get_run(rid(run_dir)).info.status == "SCHEDULED"


# ---- touch: a name needs a value --------------------------------------------


def test_touch_logs_nothing_and_the_name_does_not_stay(mount, run_dir):
    folders = [run_dir / "params", run_dir / "tags", run_dir / "metrics",
               mount.exp("e") / ".tags"]
    before = snapshot(mount)
    for folder in folders:
        sh(f"touch {folder}/x")
    assert snapshot(mount) == before
    for folder in folders:
        assert "x" not in listing(folder)
    # The kernel may remember the created name for its entry timeout (1 s).
    for folder in folders:
        assert wait_gone(folder / "x")


def test_write_right_after_touch_logs_the_value(mount, run_dir, client):
    sh(f"touch {run_dir}/params/x {run_dir}/metrics/m")
    sh(f"echo v > {run_dir}/params/x; echo 1 >> {run_dir}/metrics/m")
    assert client.get_run(rid(run_dir)).data.params == {"x": "v"}
    assert client.get_run(rid(run_dir)).data.metrics == {"m": 1.0}


def test_create_and_close_without_writing_logs_nothing(mount, run_dir):
    before = snapshot(mount)
    for name in ("params/p", "tags/t", "metrics/m"):
        fd = os.open(run_dir / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.close(fd)
    assert snapshot(mount) == before
    assert listing(run_dir / "params") == []
    assert listing(run_dir / "metrics") == []
    assert "t" not in listing(run_dir / "tags")


# ---- mkdir and rmdir ----------------------------------------------------------


def test_mkdir_experiment_creates_it_under_the_artifact_root(mount, client):
    os.mkdir(mount.exp("E1"))
    exp = eventually(lambda: client.get_experiment_by_name("E1") or False)
    assert exp.lifecycle_stage == "active"
    loc = exp.artifact_location
    if mount.remote:  # the server's own root: its artifact API
        assert loc == f"mlflow-artifacts:/{exp.experiment_id}"
        loc = str(mount.artifacts / exp.experiment_id)
    path = unquote(urlparse(loc).path) if loc.startswith("file:") else loc
    assert Path(path).resolve().parent == mount.artifacts.resolve()
    assert "E1" in listing(mount.mnt / "experiments")
    assert json.loads((mount.exp("E1") / ".experiment.json").read_text())["name"] == "E1"


def test_mkdir_run_creates_a_running_run_named_after_the_folder(mount, client):
    os.mkdir(mount.exp("E"))
    before = now_ms()
    os.mkdir(mount.run("E", "R"))
    after = now_ms()
    exp_id = exp_id_of(client, "E")
    [run] = eventually(lambda: client.search_runs([exp_id]) or False)
    assert run.info.run_name == "R"
    assert run.data.tags["mlflow.runName"] == "R"
    assert run.info.status == "RUNNING"
    assert run.info.lifecycle_stage == "active"
    assert run.info.end_time is None
    assert before <= run.info.start_time <= after
    assert run_id_of(mount.run("E", "R")) == run.info.run_id
    assert os.readlink(mount.mnt / "runs" / run.info.run_id) == "../experiments/E/R"


def test_mkdir_p_creates_what_is_missing_and_can_be_repeated(mount, client):
    sh(f"mkdir -p {mount.run('E', 'R')}/params")
    sh(f"mkdir -p {mount.run('E', 'R')}/params")
    sh(f"mkdir -p {mount.run('E', 'R2')}/metrics/train")
    exp_id = exp_id_of(client, "E")
    eventually(lambda: len(client.search_runs([exp_id])) == 2)
    assert sorted(r.info.run_name for r in client.search_runs([exp_id])) == ["R", "R2"]
    sh(f"echo 1 >> {mount.run('E', 'R2')}/metrics/train/loss")
    run_id = run_id_of(mount.run("E", "R2"))
    assert client.get_run(run_id).data.metrics == {"train/loss": 1.0}


def test_mkdir_key_folder_then_write_below_logs_the_slashed_key(mount, run_dir, client):
    run_id = rid(run_dir)
    before = snapshot(mount)
    os.mkdir(run_dir / "metrics" / "train")
    assert snapshot(mount) == before  # a folder alone logs nothing
    assert "train" in listing(run_dir / "metrics")
    sh(f"echo 1 >> {run_dir}/metrics/train/loss")
    os.mkdir(run_dir / "params" / "opt")
    sh(f"echo adam > {run_dir}/params/opt/name")
    os.makedirs(run_dir / "tags" / "a" / "b")
    sh(f"echo v > {run_dir}/tags/a/b/c")
    got = client.get_run(run_id)
    assert got.data.metrics == {"train/loss": 1.0}
    assert got.data.params == {"opt/name": "adam"}
    assert got.data.tags["a/b/c"] == "v"
    assert (run_dir / "metrics" / "train" / "loss").read_text() == "1\n"


def test_rmdir_of_a_run_is_mlflow_soft_delete(mount, run_dir, client):
    run_id = rid(run_dir)
    sh(f"echo 1 > {run_dir}/params/p")
    os.rmdir(run_dir)
    eventually(lambda: client.get_run(run_id).info.lifecycle_stage == "deleted")
    info = client.get_run(run_id).info
    # MLflow's soft delete also stamps deleted_time (mlflow gc --older-than reads it).
    con = sqlite3.connect(f"file:{mount.db}?mode=ro", uri=True)
    try:
        [(deleted_time,)] = con.execute("SELECT deleted_time FROM runs WHERE run_uuid = ?",
                                        (run_id,)).fetchall()
    finally:
        con.close()
    assert deleted_time is not None and abs(deleted_time - now_ms()) < 60_000
    assert client.get_run(run_id).data.params == {"p": "1"}  # soft: data kept
    assert "r" not in listing(mount.exp("e"))
    assert run_id not in listing(mount.mnt / "runs")
    exp_id = info.experiment_id
    assert client.search_runs([exp_id]) == []


def test_rmdir_of_an_experiment_without_runs_deletes_it(mount, client):
    os.mkdir(mount.exp("gone"))
    exp_id = exp_id_of(client, "gone")
    os.rmdir(mount.exp("gone"))
    eventually(lambda: client.get_experiment(exp_id).lifecycle_stage == "deleted")
    assert "gone" not in listing(mount.mnt / "experiments")


def test_rmdir_of_an_experiment_whose_runs_were_deleted(mount, client):
    # rmdir removes an experiment only when it has no runs: active runs, since
    # deleted runs are not in the folder any more (as MLflow allows).
    os.makedirs(mount.run("E", "R"))
    exp_id = exp_id_of(client, "E")
    os.rmdir(mount.run("E", "R"))
    os.rmdir(mount.exp("E"))
    eventually(lambda: client.get_experiment(exp_id).lifecycle_stage == "deleted")


# ---- mv -------------------------------------------------------------------------


def test_mv_renames_a_run(mount, client):
    os.makedirs(mount.run("E", "a"))
    run_id = run_id_of(mount.run("E", "a"))
    sh(f"echo 1 > {mount.run('E', 'a')}/params/p")
    sh(f"mv {mount.run('E', 'a')} {mount.run('E', 'b')}")
    eventually(lambda: client.get_run(run_id).info.run_name == "b")
    got = client.get_run(run_id)
    assert got.info.run_name == "b"
    assert got.data.tags["mlflow.runName"] == "b"
    assert got.data.params == {"p": "1"}
    assert listing(mount.exp("E")) == [".experiment.json", ".models", ".plots", ".tags", "b"]
    assert run_id_of(mount.run("E", "b")) == run_id


def test_mv_renames_an_experiment(mount, client):
    os.makedirs(mount.run("old", "r"))
    exp_id = exp_id_of(client, "old")
    sh(f"mv {mount.exp('old')} {mount.exp('new')}")
    eventually(lambda: client.get_experiment(exp_id).name == "new")
    assert "new" in listing(mount.mnt / "experiments")
    assert "old" not in listing(mount.mnt / "experiments")
    assert run_id_of(mount.run("new", "r"))
