"""Helpers for test_tree.py and test_reads.py: MLflow objects made with the
real client, the folder names mlflowfs(1), THE TREE derives from them, snapshots of the
registry tables, and checks of the daemon's refusal log."""
import errno
import math
import os
import re
import sqlite3
import subprocess
import sys
import time
import uuid

from conftest import db_snapshot, mlflowfs_binary

DBL_MAX = sys.float_info.max


def new_experiment(client, mount, name, tags=None):
    """An experiment made by MLflow, its artifacts under the test's folder
    (MLflow's default would be ./mlruns in the current folder)."""
    where = mount.tmp / "client-artifacts" / uuid.uuid4().hex[:8]
    return client.create_experiment(name, artifact_location=str(where), tags=tags)


def encode(name):
    """A name as mlflowfs(1), THE TREE lists it: '%' -> %25, '/' -> %2F, leading '.' -> %2E."""
    out = name.replace("%", "%25").replace("/", "%2F")
    return "%2E" + out[1:] if out.startswith(".") else out


def expected_folders(client, experiment_id):
    """{run_id: folder name} by mlflowfs(1), THE TREE, from what MLflow reports: active runs,
    oldest first; the oldest of a name keeps it, the others get
    <name>@<first 8 hex of run_id>; a run with no name is its run_id."""
    runs = client.search_runs([experiment_id], max_results=50000)
    runs = sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))
    taken, out = set(), {}
    for r in runs:
        name = r.info.run_name or ""
        if not name:
            folder = r.info.run_id
        elif name in taken:
            folder = f"{name}@{r.info.run_id[:8]}"
        else:
            folder = name
        taken.add(folder)
        out[r.info.run_id] = folder
    return out


REGISTRY_TABLES = ("registered_models", "registered_model_tags", "registered_model_aliases",
                   "model_versions", "model_version_tags")


def full_snapshot(db):
    """db_snapshot() plus every row of the model registry's tables."""
    out = db_snapshot(db)
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        for table in REGISTRY_TABLES:
            out[table] = sorted(map(repr, con.execute(f"SELECT * FROM {table}")))
    finally:
        con.close()
    return out


def mount_path(mount, path):
    """The path as the daemon names it in its log: '/experiments/E/...'."""
    return "/" + os.path.relpath(path, mount.mnt)


def assert_refusal_logged(mount, path, code):
    """The daemon logged a refusal of path with errno code and a reason."""
    fpath = mount_path(mount, path)
    name = errno.errorcode[code]
    # "mlflowfs: PATH: REASON (ERRNO)": the reason is the text between.
    lines = [line for line in mount.log().splitlines()
             if f" {fpath}: " in line and line.endswith(f"({name})")]
    assert lines, f"no log line names {fpath} and {name}:\n{mount.log()}"
    reason = lines[-1].split(f" {fpath}: ", 1)[1][:-len(f"({name})")].strip()
    assert len(reason) >= 8, f"refusal logged without a reason: {lines[-1]!r}"


def json_number(v):
    """How run.json must print MLflow's metric value v: the SQL store keeps
    +-inf as +-DBL_MAX, and mlflowfs shows those as the infinities."""
    if math.isnan(v):
        return "NaN"
    if v in (math.inf, DBL_MAX):
        return "Infinity"
    if v in (-math.inf, -DBL_MAX):
        return "-Infinity"
    return v


def sorted_pairs_hook(pairs):
    """object_pairs_hook that fails unless the keys come sorted."""
    keys = [k for k, _ in pairs]
    assert keys == sorted(keys), f"keys not sorted: {keys}"
    return dict(pairs)


def ls_long(path):
    """`ls -lan --time-style=+%s PATH` as {name: (mode, uid, gid, size, mtime)},
    without the "." and ".." entries."""
    r = subprocess.run(["ls", "-lan", "--time-style=+%s", str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", r.stderr
    out = {}
    for line in r.stdout.splitlines()[1:]:
        m = re.match(r"(\S+)\s+\d+\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(.*)$", line)
        assert m, f"unexpected ls line {line!r}"
        mode, uid, gid, size, mtime, name = m.groups()
        name = name.split(" -> ")[0]
        assert name not in out, f"{name!r} listed twice in {path}"
        if name in (".", ".."):
            continue
        out[name] = (mode, int(uid), int(gid), int(size), int(mtime))
    return out


def daemon_version():
    """The version `mlflowfs --version` prints: 'mlflowfs 0.5.0 (...)'."""
    r = subprocess.run([mlflowfs_binary(), "--version"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()[1]


def wait_quiet(mount, timeout=5.0):
    """Polls .mlflowfs/status until no write transaction is open, so files
    that show the daemon's counters hold still while a test reads them."""
    deadline = time.monotonic() + timeout
    status = mount.mnt / ".mlflowfs" / "status"
    while "transaction_open: yes" in status.read_text():
        assert time.monotonic() < deadline, "a transaction stayed open"
        time.sleep(0.01)
