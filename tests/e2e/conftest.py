"""Fixtures for the end-to-end tests: mount the real mlflowfs on a temporary
folder with a temporary database, and cross-check with the real MLflow.

Every mount is unmounted in the fixture's teardown, also when a test fails.
The daemon runs in the foreground (-f) so its exit status and its log are
checked: a crash, a sanitizer report or a leak fails the test that caused it.
"""
import errno
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def mlflowfs_binary():
    """The daemon under test: $MLFLOWFS, else the build tree's src/mlflowfs."""
    env = os.environ.get("MLFLOWFS")
    if env:
        return env
    for candidate in (Path.cwd() / "src" / "mlflowfs",
                      HERE.parent.parent / "src" / "mlflowfs",
                      HERE.parent.parent / "build-dev" / "src" / "mlflowfs"):
        if candidate.is_file():
            return str(candidate)
    pytest.exit("mlflowfs binary not found: set MLFLOWFS=/path/to/src/mlflowfs", 2)


class Mount:
    """A running mlflowfs: mnt (Path), db (Path), artifacts (Path), log()."""

    def __init__(self, tmp, name="m", uri=None, args=(), env=None):
        self.tmp = Path(tmp)
        self.mnt = self.tmp / f"{name}-mnt"
        self.mnt.mkdir(parents=True, exist_ok=True)
        self.db = self.tmp / "mlflow.db"
        self.artifacts = self.tmp / "mlartifacts"
        self.uri = uri or f"sqlite:///{self.db}"
        self.logfile = self.tmp / f"{name}-daemon.log"
        self.args = list(args)
        self.env = env
        self.proc = None

    def start(self):
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        self._log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(
            [mlflowfs_binary(), "-f", *self.args, self.uri, str(self.mnt)],
            stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 20
        while not os.path.ismount(self.mnt):
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflowfs exited {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mlflowfs did not mount:\n{self.log()}")
            time.sleep(0.02)
        return self

    def log(self):
        try:
            return self.logfile.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, check=True):
        """Unmounts and waits for the daemon; checks it ended cleanly."""
        if self.proc is None:
            return
        for _ in range(50):
            if not os.path.ismount(self.mnt):
                break
            r = subprocess.run(["fusermount3", "-u", str(self.mnt)],
                               capture_output=True, text=True)
            if r.returncode == 0:
                break
            time.sleep(0.1)
        else:
            subprocess.run(["fusermount3", "-u", "-z", str(self.mnt)], capture_output=True)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self._log.close()
        if check:
            log = self.log()
            assert "ERROR: AddressSanitizer" not in log, log
            assert "LeakSanitizer" not in log, log
            assert "runtime error:" not in log, log  # UndefinedBehaviorSanitizer
            assert rc == 0, f"mlflowfs exited {rc}:\n{log}"

    # Paths in the tree.
    def exp(self, name):
        return self.mnt / "experiments" / name

    def run(self, exp, run):
        return self.mnt / "experiments" / exp / run


@pytest.fixture
def mount(tmp_path):
    m = Mount(tmp_path).start()
    try:
        yield m
    finally:
        m.stop()


@pytest.fixture
def make_mount(tmp_path):
    """Factory for mounts with options; all are unmounted at the end."""
    mounts = []

    def make(name="m", start=True, **kw):
        m = Mount(tmp_path, name=name, **kw)
        mounts.append(m)
        return m.start() if start else m

    try:
        yield make
    finally:
        for m in reversed(mounts):
            m.stop()


@pytest.fixture
def client(mount):
    import mlflow
    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{mount.db}")


@pytest.fixture
def run_dir(mount):
    """A fresh experiment 'e' with a run 'r', made through the mount."""
    d = mount.run("e", "r")
    os.makedirs(d)
    return d


def run_id_of(run_dir):
    return (Path(run_dir) / "run_id").read_text().strip()


def db_snapshot(db):
    """Every row of the tables mlflowfs writes, to show nothing changed."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        out = {}
        for table in ("experiments", "experiment_tags", "runs", "tags", "params",
                      "metrics", "latest_metrics"):
            out[table] = sorted(map(repr, con.execute(f"SELECT * FROM {table}")))
        return out
    finally:
        con.close()


def expect_errno(code, fn, *args, **kw):
    """Runs fn and checks it fails with OSError errno code."""
    with pytest.raises(OSError) as info:
        fn(*args, **kw)
    assert info.value.errno == code, (
        f"expected {errno.errorcode[code]}, got "
        f"{errno.errorcode.get(info.value.errno, info.value.errno)}: {info.value}")
    return info.value


def write_file(path, data, mode="w"):
    """Writes data with one write() call and closes: errors surface as OSError."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(path, flags, 0o644)
    try:
        os.write(fd, data.encode() if isinstance(data, str) else data)
    finally:
        os.close(fd)


def sh(cmd, cwd=None, check=True):
    """Runs a shell command; returns CompletedProcess with text output."""
    r = subprocess.run(["sh", "-c", cmd], cwd=cwd, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{cmd!r} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def have(program):
    return shutil.which(program) is not None
