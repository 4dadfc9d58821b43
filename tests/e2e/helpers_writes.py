"""Helpers shared by test_writes.py and test_refusals.py (mlflowfs(1), WRITING).

- refused(): one refusal checked the way the man page promises it: the errno, the
  store unchanged (db_snapshot before == after) and a daemon log line that
  names the path and gives the reason.
- points(): a metric's history from the real MLflow client, comparable
  (NaN made equal to NaN).
- mount_path(): the path the daemon sees (and logs) for a file in the mount.
- eventually(), settle(): mlflowfs(1), WHEN DATA IS SAFE: the local store commits "at least
  every 20 ms and at every close and fsync".  What has no descriptor (mkdir,
  rmdir, unlink, rename) reaches other clients at the next periodic commit,
  so checks through the MLflow client after those poll, and store snapshots
  wait for that commit first.
- mlflow_template_db / db_made_by_mlflow: see there.
"""
import math
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from conftest import db_snapshot, expect_errno

# mlflowfs(1), WHEN DATA IS SAFE: the periodic commit of the local store; waits are a few of these.
COMMIT_INTERVAL = 0.02


def settle():
    """Waits until what the daemon did without a descriptor is committed."""
    time.sleep(5 * COMMIT_INTERVAL)


def eventually(check, timeout=3.0):
    """Runs check() until it passes: returns something other than False and
    raises no AssertionError or MLflow error.  Returns its result.  For the
    effects of mkdir/rmdir/unlink/rename seen through the MLflow client."""
    from mlflow.exceptions import MlflowException

    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result is not False:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"still false after {timeout} s: {check}")
        except (AssertionError, MlflowException):
            if time.monotonic() > deadline:
                raise
        time.sleep(COMMIT_INTERVAL / 2)


def snapshot(mount):
    """db_snapshot once the daemon's pending writes are committed."""
    settle()
    return db_snapshot(mount.db)


@pytest.fixture(scope="session")
def mlflow_template_db(tmp_path_factory):
    """A database made by MLflow itself (the pinned release), once a session."""
    import mlflow

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def db_made_by_mlflow(tmp_path, mlflow_template_db):
    """Puts an MLflow-made database where the mount fixture opens it (mlflowfs(1), STORES:
    mlflowfs opens a database MLflow created).  Used autouse by the write
    tests: the MLflow client then opens the store in milliseconds instead of
    upgrading an mlflowfs-made schema for a second in every test."""
    shutil.copy(mlflow_template_db, tmp_path / "mlflow.db")


def mount_path(mount, path):
    """'/experiments/e/r/params/lr' for MOUNT/experiments/e/r/params/lr."""
    return "/" + str(Path(path).relative_to(mount.mnt))


def log_since(mount, start):
    """The daemon's log written after offset start (from len(mount.log()))."""
    return mount.log()[start:]


def log_escaped(text):
    """text as the daemon writes it in its log: control characters escaped
    (so that no name can start a line of its own)."""
    names = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

    def one(c):
        if ord(c) >= 0x20 and not 0x7f <= ord(c) < 0xa0:
            return c
        return names.get(c) or "".join(f"\\x{b:02x}" for b in c.encode())
    return "".join(map(one, text))


def assert_logged(mount, start, path, reason):
    """A log line written since start names path and matches reason (a regex)."""
    name = log_escaped(mount_path(mount, path) if isinstance(path, Path) else path)
    new = log_since(mount, start)
    lines = [line for line in new.splitlines() if name in line]
    assert lines, f"no daemon log line names {name!r}; new log:\n{new}"
    assert any(re.search(reason, line, re.I) for line in lines), (
        f"no log line for {name!r} gives the reason /{reason}/:\n" + "\n".join(lines))


def refused(mount, code, fn, *args, path, reason, log=True, **kw):
    """fn(*args) fails with errno code, changes nothing in the store, and the
    daemon logs path with reason (a regex).  Returns the OSError."""
    before = snapshot(mount)
    start = len(mount.log())
    err = expect_errno(code, fn, *args, **kw)
    assert snapshot(mount) == before, "the store changed on a refusal"
    if log:
        assert_logged(mount, start, path, reason)
    return err


def write_then_close(path, chunks, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC):
    """Opens path, writes each chunk with its own write() call, closes.
    An error of any of these calls surfaces as OSError (the fd is closed)."""
    fd = os.open(path, flags, 0o644)
    try:
        for chunk in chunks:
            os.write(fd, chunk.encode() if isinstance(chunk, str) else chunk)
    except BaseException:
        try:
            os.close(fd)
        except OSError:
            pass
        raise
    os.close(fd)


def write_only(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC):
    """The write() call alone must fail: runs it, then closes the descriptor
    whatever close() says (the refusal under test is the write's)."""
    fd = os.open(path, flags, 0o644)
    try:
        os.write(fd, data.encode() if isinstance(data, str) else data)
    finally:
        try:
            os.close(fd)
        except OSError:
            pass


def append(path, data):
    """Like `>> path`: one write() of data on an O_APPEND descriptor."""
    write_then_close(path, [data], os.O_WRONLY | os.O_CREAT | os.O_APPEND)


def _comparable(value):
    return "nan" if math.isnan(value) else value


def points(client, run_id, key):
    """Every point of a metric as (step, timestamp, value), sorted."""
    hist = client.get_metric_history(run_id, key)
    return sorted(((m.step, m.timestamp, _comparable(m.value)) for m in hist),
                  key=lambda p: (p[0], p[1], str(p[2])))


def steps_values(client, run_id, key):
    """(step, value) of every point, by step then time."""
    return [(s, v) for s, _, v in points(client, run_id, key)]


def now_ms():
    return int(time.time() * 1000)


def listing(path):
    return sorted(os.listdir(path))


def wait_gone(path, timeout=3.0):
    """True once path no longer exists.  The kernel may keep a name it was
    told about for entry_timeout (1 s), so a vanished name is polled."""
    deadline = time.monotonic() + timeout
    while os.path.lexists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
