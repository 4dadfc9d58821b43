"""Another program holding the database's write lock (MLflow in the middle of
a long write, sqlite3 left in a transaction): reads through the mount go on
at once, a write waits for the lock up to -o lock_timeout and then fails
EAGAIN, with nothing changed and a log line saying why.

The other program is a real SQLite connection holding BEGIN IMMEDIATE, as
MLflow's SQLAlchemy store holds it while it writes.
"""
import errno
import os
import sqlite3
import threading
import time

import pytest

from conftest import db_snapshot, expect_errno, run_id_of, write_file
from helpers_compat import run_mlflowfs
from helpers_writes import append, steps_values

pytestmark = pytest.mark.local_only("about SQLite's write lock, which only the local store takes")


class Holder:
    """BEGIN IMMEDIATE on the database until release()."""

    def __init__(self, db):
        self.con = sqlite3.connect(str(db), timeout=0, isolation_level=None)
        self.con.execute("BEGIN IMMEDIATE")

    def release(self):
        if self.con:
            self.con.execute("ROLLBACK")
            self.con.close()
            self.con = None


@pytest.fixture
def holder():
    held = []

    def hold(db):
        h = Holder(db)
        held.append(h)
        return h

    yield hold
    for h in held:
        h.release()


def timed(fn, *args):
    t0 = time.monotonic()
    out = fn(*args)
    return out, time.monotonic() - t0


def test_reads_go_on_while_another_program_holds_the_lock(mount, run_dir, client, holder):
    write_file(run_dir / "params" / "lr", "0.1\n")
    append(run_dir / "metrics" / "acc", "0.5\n0.75\n")
    rid = run_id_of(run_dir)
    h = holder(mount.db)
    # A write waits for the lock in another thread ...
    done = {}

    def writer():
        try:
            write_file(run_dir / "params" / "batch", "32\n")
            done["ok"] = True
        except OSError as e:
            done["err"] = e.errno

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(0.5)
    assert t.is_alive(), "the write did not wait for the lock"
    # ... and reads of everything answer meanwhile, each well under a second.
    reads = [
        (lambda: (run_dir / "params" / "lr").read_text(), "0.1\n"),
        (lambda: (run_dir / "metrics" / "acc").read_text(), "0.75\n"),
        (lambda: (run_dir / "history" / "acc").read_text().count("\n"), 2),
        # The param being written shows while its descriptor is open.
        (lambda: sorted(os.listdir(run_dir / "params")), ["batch", "lr"]),
        (lambda: (run_dir / "run_id").read_text().strip(), rid),
        (lambda: '"lr": "0.1"' in (run_dir / "run.json").read_text(), True),
        (lambda: sorted(os.listdir(mount.mnt / "experiments")), ["Default", "e"]),
        (lambda: os.stat(run_dir / "history" / "acc").st_size > 0, True),
    ]
    for read, want in reads:
        got, took = timed(read)
        assert got == want
        assert took < 1.0, f"a read took {took:.2f} s while the lock was held"
    assert t.is_alive()
    h.release()
    t.join(timeout=30)
    assert done == {"ok": True}
    assert client.get_run(rid).data.params == {"lr": "0.1", "batch": "32"}
    assert "reads_during_stalls: 0" not in (mount.mnt / ".mlflowfs" / "status").read_text()


def test_a_write_that_cannot_get_the_lock_fails_eagain(make_mount, holder):
    m = make_mount(args=["-o", "lock_timeout=1"])
    run_dir = m.run("e", "r")
    os.makedirs(run_dir)
    rid = run_id_of(run_dir)
    h = holder(m.db)
    before = db_snapshot(m.db)
    t0 = time.monotonic()
    expect_errno(errno.EAGAIN, write_file, run_dir / "params" / "p", "1\n")
    assert time.monotonic() - t0 < 10
    # A metric line waits at write() itself: its points go into a transaction.
    expect_errno(errno.EAGAIN, append, run_dir / "metrics" / "m", "0.5\n")
    h.release()
    assert db_snapshot(m.db) == before
    log = m.log()
    assert "(EAGAIN)" in log and "locked by another program" in log, log
    # Once the lock is free the same writes go through.
    write_file(run_dir / "params" / "p", "1\n")
    append(run_dir / "metrics" / "m", "0.5\n")
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{m.db}")
    assert client.get_run(rid).data.params == {"p": "1"}
    assert steps_values(client, rid, "m") == [(0, 0.5)]


@pytest.mark.parametrize("option", ["lock_timeout", "cache_ttl"])
@pytest.mark.parametrize("value", ["-1", "x", "100000", "nan"])
def test_lock_timeout_and_cache_ttl_must_be_seconds(tmp_path, option, value):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = run_mlflowfs(["-o", f"{option}={value}", f"sqlite:///{tmp_path}/db", mnt])
    assert r.returncode == 1
    assert not os.path.ismount(mnt)
    assert option in r.stderr, r.stderr
    assert not (tmp_path / "db").exists()
