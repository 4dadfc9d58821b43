"""What reads return (mlflowfs(1), THE TREE and WHEN DATA IS SAFE):
the text of one-value files, metric numbers, history lines, run.json and
.experiment.json against MLflow's own view, stat sizes, times and owners,
and that reads and listings show a change at once, whether this mount or the
MLflow client made it.

Data is logged with the real MLflow client wherever the test is about what
the mount shows of MLflow's data; through the mount where it is about the
mount seeing its own writes.
"""
import json
import math
import os
import stat
import time

import pytest

from conftest import run_id_of, seen, sh
from helpers_tree import (DBL_MAX, json_number, new_experiment, sorted_pairs_hook, wait_quiet)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def significant_digits(text):
    """The significant digits of a decimal number's text: '1e-07' -> '1',
    '0.0100' -> '1', '123.45' -> '12345'."""
    mantissa = text.lstrip("+-").lower().split("e")[0].replace(".", "")
    return mantissa.strip("0") or "0"


def virtual_files(top):
    """Every regular file below top, outside artifacts/ folders."""
    for d, dirs, files in os.walk(top):
        if "artifacts" in dirs:
            dirs.remove("artifacts")
        for n in files:
            yield os.path.join(d, n)


def populated_run(mount, client):
    """Experiment E (tagged) with run r: params, tags, metrics with history,
    NaN and infinities, keys with '/', finished."""
    exp = new_experiment(client, mount, "E", tags={"mlflow.note.content": "about E",
                                                     "owner": "me"})
    run = client.create_run(exp, run_name="r").info.run_id
    client.log_param(run, "lr", "0.01")
    client.log_param(run, "opt/name", "adam")
    client.set_tag(run, "team", "vision")
    for step, v in enumerate((0.9, 0.5, 0.25)):
        client.log_metric(run, "loss", v, step=step, timestamp=1_700_000_000_000 + step)
    client.log_metric(run, "train/acc", 0.75, step=3)
    client.log_metric(run, "bad", float("nan"))
    client.log_metric(run, "up", float("inf"))
    client.log_metric(run, "down", float("-inf"))
    client.set_terminated(run, "FINISHED")
    return exp, run


# ---- content ----------------------------------------------------------------


def test_text_files_end_with_a_newline(mount, client):
    exp, run = populated_run(mount, client)
    os.makedirs(mount.run("E", "shell"))
    sh(f"cd {mount.run('E', 'shell')} && echo 3 > params/n && echo hi > tags/t "
       f"&& echo 1 >> metrics/m")
    r = mount.run("E", "r")
    assert (r / "params" / "lr").read_text() == "0.01\n"
    assert (r / "params" / "opt" / "name").read_text() == "adam\n"
    assert (r / "tags" / "team").read_text() == "vision\n"
    assert (r / "status").read_text() == "FINISHED\n"
    assert (r / "run_id").read_text() == run + "\n"
    assert (mount.run("E", "shell") / "params" / "n").read_text() == "3\n"
    files = list(virtual_files(mount.exp("E")))
    assert len(files) > 20
    for path in files:
        text = read(path)
        assert text.endswith(b"\n"), path
        assert not text.endswith(b"\n\n"), path


def test_metric_values_print_as_the_shortest_text_that_reads_back(mount, client):
    exp = new_experiment(client, mount, "E")
    run = client.create_run(exp, run_name="r").info.run_id
    values = {"tenth": 0.1, "third": 1 / 3, "small": 1e-7, "big": 1e20, "hundred": 100,
              "three": 3.0, "sum": 0.1 + 0.2, "neg": -2.5, "ms": 1.7e12, "pow": 2.0 ** 53,
              "tiny": 5e-324, "max": 1.5e308, "frac": 123456.789}
    for key, v in values.items():
        client.log_metric(run, key, v)
    exact = {"tenth": ("0.1",), "third": ("0.3333333333333333",), "hundred": ("100",),
             "three": ("3",), "small": ("1e-07", "1e-7"), "big": ("1e+20", "1e20"),
             "sum": ("0.30000000000000004",), "neg": ("-2.5",)}
    got = {}
    for key, v in values.items():
        text = (mount.run("E", "r") / "metrics" / key).read_text()
        assert text.endswith("\n") and text.count("\n") == 1, (key, text)
        text = text[:-1]
        got[key] = text
        assert float(text) == v == client.get_run(run).data.metrics[key], (key, text)
        # As few significant digits as Python's repr, which is the shortest.
        assert significant_digits(text) == significant_digits(repr(float(v))), (key, text)
    for key, allowed in exact.items():
        assert got[key] in allowed, (key, got[key])


def test_nan_and_infinities_print_as_nan_inf_and_minus_inf(mount, client):
    exp, run = populated_run(mount, client)
    r = mount.run("E", "r")
    assert (r / "metrics" / "bad").read_text() == "nan\n"
    assert (r / "metrics" / "up").read_text() == "inf\n"
    assert (r / "metrics" / "down").read_text() == "-inf\n"
    # MLflow's SQL store keeps the infinities as the largest doubles.
    metrics = client.get_run(run).data.metrics
    assert math.isnan(metrics["bad"])
    assert (metrics["up"], metrics["down"]) == (DBL_MAX, -DBL_MAX)
    for key, word in (("bad", "nan"), ("up", "inf"), ("down", "-inf")):
        step, value, ts = (r / "history" / key).read_text().split()
        m = client.get_metric_history(run, key)[0]
        assert (int(step), value, int(ts)) == (m.step, word, m.timestamp)


def test_history_prints_every_point_by_step_then_time(mount, client):
    exp = new_experiment(client, mount, "E")
    run = client.create_run(exp, run_name="r").info.run_id
    t = 1_700_000_000_000
    # Logged out of order: (step, timestamp, value).
    points = [(2, t + 5, 0.2), (0, t + 9, 1.0), (1, t + 3, 0.5), (1, t + 1, 0.6),
              (-1, t + 7, 7.0), (10, t, 1 / 3), (3, t + 2, float("nan")), (1, t + 2, 1e-7)]
    for step, ts, v in points:
        client.log_metric(run, "loss", v, timestamp=ts, step=step)
    text = (mount.run("E", "r") / "history" / "loss").read_text()
    assert text.endswith("\n")
    lines = text.splitlines()
    mlflow_points = sorted(client.get_metric_history(run, "loss"),
                           key=lambda m: (m.step, m.timestamp))
    assert len(lines) == len(points) == len(mlflow_points)
    parsed = []
    for line, m in zip(lines, mlflow_points):
        fields = line.split(" ")
        assert len(fields) == 3, line
        step, value, ts = int(fields[0]), float(fields[1]), int(fields[2])
        parsed.append((step, ts))
        assert (step, ts) == (m.step, m.timestamp), line
        assert value == m.value or (math.isnan(value) and math.isnan(m.value)), line
    assert parsed == sorted(parsed)
    # The latest value is the one of the highest step (then time).
    assert (mount.run("E", "r") / "metrics" / "loss").read_text() == "0.3333333333333333\n"


# ---- stat -------------------------------------------------------------------


def test_stat_size_is_exact_for_every_file_and_link(mount, client):
    exp, run = populated_run(mount, client)
    info = client.get_run(run).info
    os.makedirs(os.path.join(info.artifact_uri, "model"))
    with open(os.path.join(info.artifact_uri, "model", "MLmodel"), "w") as f:
        f.write("flavors: {}\n")
    client.create_registered_model("m", tags={"k": "v"}, description="desc")
    client.create_model_version("m", f"runs:/{run}/model", run_id=run)
    client.set_registered_model_alias("m", "best", "1")
    os.makedirs(mount.run("E", "shell"))
    sh(f"cd {mount.run('E', 'shell')} && echo 3 > params/n && echo 1 >> metrics/m "
       f"&& echo 2 >> metrics/m && echo KILLED > status")
    wait_quiet(mount)
    checked = set()
    for d, dirs, files in os.walk(mount.mnt):
        for n in files + dirs:
            p = os.path.join(d, n)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                assert st.st_size == len(os.readlink(p)), p
                checked.add("link")
            elif stat.S_ISREG(st.st_mode):
                assert st.st_size == len(read(p)), p
                checked.add(os.path.basename(p) if "/metrics/" not in p else "metric")
    for name in ("run.json", ".experiment.json", "status", "run_id", "metric", "lr", "up",
                 "link", "errors", "description", "source", "MLmodel"):
        assert name in checked, name


def exact_within(path, seconds):
    """stat's size equals what a read returns, within the given time."""
    deadline = time.monotonic() + seconds
    while os.stat(path).st_size != len(read(path)):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_stat_size_is_exact_after_a_change_by_mlflow(mount, client):
    # The kernel caches attributes for a second; the daemon makes it forget
    # them when another client commits, checking every 50 ms (man page).
    exp = new_experiment(client, mount, "E")
    run = client.create_run(exp, run_name="r").info.run_id
    client.log_metric(run, "m", 1.0)
    r = mount.run("E", "r")
    files = [r / "metrics" / "m", r / "history" / "m", r / "run.json", r / "status",
             mount.exp("E") / ".experiment.json"]
    stale = []
    for i, path in enumerate(files):
        os.stat(path)
        client.log_metric(run, "m", 0.123456789 + i, step=i + 1)
        client.set_terminated(run, ["FINISHED", "KILLED"][i % 2])
        client.set_experiment_tag(exp, "k", "v" * (i + 2))
        if not exact_within(path, 0.5):
            stale.append(path.name)
    assert stale == []


def test_stat_is_exact_after_own_write_to_a_related_file(mount, run_dir):
    sh(f"echo 1 >> {run_dir}/metrics/loss")
    stale = []
    for path in (run_dir / "run.json", run_dir / "history" / "loss", run_dir):
        before = os.stat(path)
        # A new point ends the folder's mtime at least 1 ms later.
        time.sleep(0.002)
        sh(f"echo 0.123456789 >> {run_dir}/metrics/loss")
        after = os.stat(path)
        if path.is_dir():
            if after.st_mtime_ns <= before.st_mtime_ns:
                stale.append("run folder mtime")
        elif after.st_size != len(read(path)):
            stale.append(path.name)
    assert stale == []


def test_stat_size_is_exact_after_own_write_to_the_file(mount, run_dir):
    for line in ("1", "0.5", "0.123456789", "1e-300", "nan", "7"):
        sh(f"echo {line} >> {run_dir}/metrics/loss")
        path = run_dir / "metrics" / "loss"
        assert os.stat(path).st_size == len(read(path)) == len(line) + 1
    for value in ("a", "abcdef", "xy"):
        sh(f"echo {value} > {run_dir}/tags/t")
        path = run_dir / "tags" / "t"
        assert os.stat(path).st_size == len(read(path)) == len(value) + 1
    for value in ("FINISHED", "KILLED", "RUNNING"):
        sh(f"echo {value} > {run_dir}/status")
        assert os.stat(run_dir / "status").st_size == len(value) + 1


def test_times_and_owner_follow_mlflow(mount, client):
    exp = new_experiment(client, mount, "E")
    start = 1_600_000_000_123
    run = client.create_run(exp, run_name="r", start_time=start).info.run_id
    client.log_param(run, "lr", "0.1")
    client.set_tag(run, "t", "v")
    client.log_metric(run, "loss", 0.5, timestamp=start + 10_000, step=0)
    client.log_metric(run, "loss", 0.4, timestamp=start + 20_000, step=1)
    client.log_metric(run, "acc", 0.9, timestamp=start + 5_000)
    r = mount.run("E", "r")
    ms = lambda p: os.stat(p).st_mtime_ns // 1_000_000  # noqa: E731
    assert ms(r / "metrics" / "loss") == start + 20_000
    assert ms(r / "metrics" / "acc") == start + 5_000
    assert ms(r / "params" / "lr") == start
    assert ms(r / "tags" / "t") == start
    # The run folder: its last change, here the newest metric point...
    assert ms(r) == start + 20_000
    # ... and then its end (a path not looked up before, so not cached).
    client.set_terminated(run, end_time=start + 500_000)
    seen(mount, lambda: ms(mount.run("E", run)) == start + 500_000)
    uid, gid = os.getuid(), os.getgid()
    for d, dirs, files in os.walk(mount.mnt):
        for n in dirs + files:
            st = os.lstat(os.path.join(d, n))
            assert (st.st_uid, st.st_gid) == (uid, gid), os.path.join(d, n)


def test_run_folder_mtime_follows_each_metrics_latest_point(mount, client):
    # The man page's rule (and limit): a run folder's mtime is the latest of
    # its start, its end and each metric's latest point, MLflow's greatest
    # (step, time); a point logged later for a lower step does not move it.
    exp = new_experiment(client, mount, "E")
    start = 1_600_000_000_123
    run = client.create_run(exp, run_name="r", start_time=start).info.run_id
    client.log_metric(run, "loss", 0.4, timestamp=start + 20_000, step=5)
    seen(mount, lambda: os.stat(mount.run("E", "r")).st_mtime_ns // 1_000_000 == start + 20_000)
    client.log_metric(run, "loss", 0.3, timestamp=start + 90_000, step=2)
    time.sleep(0.3 + mount.staleness)  # past the watcher's 50 ms, or the remote cache
    assert os.stat(mount.run("E", "r")).st_mtime_ns // 1_000_000 == start + 20_000
    client.log_metric(run, "acc", 0.9, timestamp=start + 95_000, step=0)
    deadline = time.monotonic() + 0.5 + mount.staleness
    while os.stat(mount.run("E", "r")).st_mtime_ns // 1_000_000 != start + 95_000:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_ls_t_puts_the_run_logged_to_last_first(mount, client):
    exp = new_experiment(client, mount, "E")
    now = int(time.time() * 1000)
    client.create_run(exp, run_name="old", start_time=now - 60_000)
    newer = client.create_run(exp, run_name="new", start_time=now - 30_000).info.run_id
    exp_dir = mount.exp("E")
    assert sh("ls -t", cwd=exp_dir).stdout.split() == ["new", "old"]
    sh("echo 0.5 >> old/metrics/loss", cwd=exp_dir)
    assert sh("ls -t", cwd=exp_dir).stdout.split() == ["old", "new"]
    client.log_metric(newer, "loss", 0.1)
    seen(mount, lambda: sh("ls -t", cwd=exp_dir).stdout.split() == ["new", "old"])


# ---- JSON -------------------------------------------------------------------


def expected_run_json(client, run):
    d = client.get_run(run).to_dictionary()
    d.pop("inputs", None)
    d.pop("outputs", None)
    d["data"]["metrics"] = {k: json_number(v) for k, v in d["data"]["metrics"].items()}
    return d


def test_run_json_is_mlflows_run_with_sorted_keys(mount, client):
    exp, run = populated_run(mount, client)
    os.makedirs(mount.run("E", "shell"))
    sh(f"cd {mount.run('E', 'shell')} && echo 3 > params/n && echo hi > tags/t "
       f"&& echo 1 >> metrics/m && echo 2 >> metrics/m && echo FAILED > status")
    shell_id = run_id_of(mount.run("E", "shell"))
    wait_quiet(mount)
    for folder, rid in (("r", run), ("shell", shell_id)):
        text = (mount.run("E", folder) / "run.json").read_text()
        got = json.loads(text, object_pairs_hook=sorted_pairs_hook)
        assert got == expected_run_json(client, rid), folder
        assert list(got) == ["data", "info"]
    got = json.loads((mount.run("E", "r") / "run.json").read_text())
    assert got["data"]["metrics"]["bad"] == "NaN"
    assert got["data"]["metrics"]["up"] == "Infinity"
    assert got["data"]["metrics"]["down"] == "-Infinity"
    assert got["data"]["metrics"]["loss"] == 0.25
    assert got["info"]["status"] == "FINISHED" and got["info"]["end_time"] is not None


EXPERIMENT_KEYS = ["artifact_location", "creation_time", "experiment_id", "last_update_time",
                   "lifecycle_stage", "name", "tags"]


def test_experiment_json_is_mlflows_experiment_with_sorted_keys(mount, client):
    new_experiment(client, mount, "tagged", tags={"b": "2", "a": "1",
                                                  "mlflow.note.content": "line1\nline2"})
    os.mkdir(mount.exp("made"))
    sh(f"echo note > {mount.exp('made')}/.tags/k")
    wait_quiet(mount)
    for exp in client.search_experiments():
        path = mount.exp(exp.name) / ".experiment.json"
        got = json.loads(path.read_text(), object_pairs_hook=sorted_pairs_hook)
        assert list(got) == EXPERIMENT_KEYS, exp.name
        want = dict(client.get_experiment(exp.experiment_id))
        assert got == {k: want[k] for k in EXPERIMENT_KEYS}, exp.name
    assert {e.name for e in client.search_experiments()} == {"Default", "tagged", "made"}


def test_json_files_read_the_same_twice(mount, client):
    populated_run(mount, client)
    for path in (mount.run("E", "r") / "run.json", mount.exp("E") / ".experiment.json",
                 mount.exp("Default") / ".experiment.json"):
        assert read(path) == read(path)
        sh(f"cp {path} {mount.tmp}/a.json && cp {path} {mount.tmp}/b.json "
           f"&& diff {mount.tmp}/a.json {mount.tmp}/b.json && diff {path} {mount.tmp}/a.json")


# ---- seeing changes at once -------------------------------------------------


def test_read_after_own_append_is_never_stale(mount, run_dir):
    sh(f"echo 0.3 >> {run_dir}/metrics/loss")
    assert (run_dir / "metrics" / "loss").read_text() == "0.3\n"
    r = sh(f"""cd {run_dir}
        i=1
        while [ $i -le 200 ]; do
            echo $i >> metrics/loss
            v=$(cat metrics/loss)
            [ "$v" = "$i" ] || {{ echo "wrote $i, read $v"; exit 1; }}
            i=$((i + 1))
        done""", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (run_dir / "history" / "loss").read_text().count("\n") == 201


def test_ls_shows_a_run_the_moment_mkdir_returns(mount):
    exp = mount.exp("E")
    os.mkdir(exp)
    for i in range(20):
        os.mkdir(exp / f"run{i}")
        assert f"run{i}" in os.listdir(exp)
        assert f"run{i}" in sh(f"ls {exp}").stdout.split()
    r = sh(f"mkdir {exp}/shell && ls {exp} && ls {mount.mnt}/runs")
    assert "shell" in r.stdout.split()
    assert run_id_of(exp / "shell") in r.stdout.split()


def test_what_mlflow_logs_shows_in_the_mount_at_once(mount, client):
    """At once in the local store; within cache_ttl in the remote one."""
    exp = new_experiment(client, mount, "E")
    run = client.create_run(exp, run_name="r").info.run_id
    r = mount.run("E", "r")
    assert os.listdir(r / "params") == []
    client.log_param(run, "lr", "0.5")
    seen(mount, lambda: os.listdir(r / "params") == ["lr"])
    seen(mount, lambda: (r / "params" / "lr").read_text() == "0.5\n")
    client.log_metric(run, "loss", 1.0)
    seen(mount, lambda: (r / "metrics" / "loss").read_text() == "1\n")
    client.log_metric(run, "loss", 0.5)
    seen(mount, lambda: (r / "metrics" / "loss").read_text() == "0.5\n")
    seen(mount, lambda: len((r / "history" / "loss").read_text().splitlines()) == 2)
    client.set_tag(run, "t", "one")
    seen(mount, lambda: (r / "tags" / "t").read_text() == "one\n")
    client.set_tag(run, "t", "two")
    seen(mount, lambda: (r / "tags" / "t").read_text() == "two\n")
    client.delete_tag(run, "t")
    seen(mount, lambda: "t" not in os.listdir(r / "tags"))
    client.set_terminated(run, "KILLED")
    seen(mount, lambda: (r / "status").read_text() == "KILLED\n")
    other = client.create_run(exp, run_name="second").info.run_id
    seen(mount, lambda: "second" in os.listdir(mount.exp("E")))
    seen(mount, lambda: other in os.listdir(mount.mnt / "runs"))
    client.create_experiment("F", artifact_location=str(mount.tmp / "F"))
    seen(mount, lambda: "F" in os.listdir(mount.mnt / "experiments"))
    client.delete_run(other)
    seen(mount, lambda: "second" not in os.listdir(mount.exp("E")))
    seen(mount, lambda: other not in os.listdir(mount.mnt / "runs"))
    client.delete_experiment(client.get_experiment_by_name("F").experiment_id)
    seen(mount, lambda: "F" not in os.listdir(mount.mnt / "experiments"))


def test_run_deleted_by_mlflow_is_gone_within_50ms(mount, client):
    exp = new_experiment(client, mount, "E")
    run = client.create_run(exp, run_name="r").info.run_id
    folder = mount.run("E", "r")
    assert run_id_of(folder) == run
    client.delete_run(run)
    seen(mount, lambda: "r" not in os.listdir(mount.exp("E")))
    # A looked-up folder goes within the watcher's 50 ms (man page), or the
    # remote store's cache_ttl and the kernel's second.
    deadline = time.monotonic() + 0.5 + mount.staleness
    while os.path.exists(folder):
        assert time.monotonic() < deadline, "the deleted run's folder stays"
        time.sleep(0.01)
    assert sh(f"test -d {folder}", check=False).returncode == 1
