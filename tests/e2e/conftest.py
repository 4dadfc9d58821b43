"""Fixtures for the end-to-end tests: mount the real mlflowfs on a temporary
folder with a temporary store, and cross-check with the real MLflow.

Two backends, one suite: every test that uses the `mount` fixture (or
`make_mount`) runs twice, once on a local SQLite database ("local") and once
on a real `mlflow server` of the pinned release ("remote": SQLite behind it,
--serve-artifacts, loopback), cross-checked through MlflowClient with that
store's tracking URI.  A test marked `local_only` runs on the local store
alone: it is about the database file itself (locking, schema, migrations) or
about what only a local artifact folder does; the marker's reason says which.

Every mount is unmounted in the fixture's teardown, also when a test fails.
The daemon runs in the foreground (-f) so its exit status and its log are
checked: a crash, a sanitizer report or a leak fails the test that caused it.
"""
import errno
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


# What every experiment folder lists besides its runs, sorted.
EXP_FIXED = [".experiment.json", ".models", ".plots", ".runs.csv", ".runs.tsv", ".tags"]


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


def daemon_has_asan():
    """Whether the daemon under test links AddressSanitizer, whose shadow
    memory and quarantine make its memory figures meaningless."""
    r = subprocess.run(["ldd", mlflowfs_binary()], capture_output=True, text=True)
    return "libasan" in r.stdout


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "LeakSanitizer",
                   "runtime error:")  # the last is UndefinedBehaviorSanitizer's


def unmount(mnt, lazy_fallback=True):
    """fusermount3 -u, retried while busy; -z as a last resort."""
    mnt = str(mnt)
    for _ in range(50):
        if not os.path.ismount(mnt):
            return
        r = subprocess.run(["fusermount3", "-u", mnt], capture_output=True, text=True)
        if r.returncode == 0:
            return
        time.sleep(0.1)
    if lazy_fallback:
        subprocess.run(["fusermount3", "-u", "-z", mnt], capture_output=True)


class Daemon:
    """`mlflowfs -f ARGS...` mounted on mnt, its output in logfile; a context
    manager.  stop() unmounts, waits, and checks the daemon ended cleanly."""

    def __init__(self, args, mnt, logfile, env=None, cwd=None):
        self.args = [str(a) for a in args]
        self.mnt = Path(mnt)
        self.logfile = Path(logfile)
        self.env = env
        self.cwd = cwd
        self.proc = None
        self.killed = False

    def start(self):
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        self._log = open(self.logfile, "ab")
        self.proc = subprocess.Popen([mlflowfs_binary(), "-f", *self.args],
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     env=env, cwd=self.cwd)
        deadline = time.monotonic() + 20
        while not os.path.ismount(self.mnt):
            if self.proc.poll() is not None:
                self._log.close()
                raise RuntimeError(f"mlflowfs exited {self.proc.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop(check=False)
                raise RuntimeError(f"mlflowfs did not mount:\n{self.log()}")
            time.sleep(0.02)
        return self

    def log(self):
        try:
            return self.logfile.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_folders_released(self, timeout=2.0):
        """The kernel tells the daemon of a closed folder a little later; an
        unmount before that drops the message, and libfuse's own record of
        the folder is never freed (a leak the sanitizer run would report).
        So waits, briefly, until .mlflowfs/status shows no folder open."""
        status = self.mnt / ".mlflowfs" / "status"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if "open_folders: 0\n" in status.read_text():
                    return
            except OSError:
                return  # not a mount of ours, or not answering: unmount anyway
            time.sleep(0.01)

    def kill(self):
        """SIGKILL to the daemon this object started (its PID only)."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.killed = True
        subprocess.run(["fusermount3", "-u", "-z", str(self.mnt)], capture_output=True)

    def stop(self, check=True):
        """Unmounts and waits for the daemon; checks it ended cleanly."""
        if self.proc is None:
            return
        if not self.killed:
            self.wait_folders_released()
            unmount(self.mnt)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self._log.close()
        if check:
            log = self.log()
            for mark in SANITIZER_MARKS:
                assert mark not in log, log
            if not self.killed:
                assert rc == 0, f"mlflowfs exited {rc}:\n{log}"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop(check=exc[0] is None)
        return False


BACKENDS = ("local", "remote")

# The remote mounts' cache_ttl in this suite, in seconds.
REMOTE_CACHE_TTL = 0.5


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "local_only(reason): runs on the local store only, for the reason given")


def pytest_generate_tests(metafunc):
    """Runs every test that mounts (through `backend`) on both stores."""
    if "backend" in metafunc.fixturenames:
        local = metafunc.definition.get_closest_marker("local_only")
        metafunc.parametrize("backend", ["local"] if local else list(BACKENDS))


class RemoteStore:
    """One real `mlflow server` for the whole session, handed to each test as
    it was right after it started: reset() copies the database saved then
    back into the live one (SQLite's backup API, so the server's open
    connections see the copy) and empties the artifact folder.  Starting a
    server per test would cost seconds each."""

    def __init__(self, tmp):
        from helpers_server import MlflowServer

        self.tmp = Path(tmp)
        self.db = self.tmp / "server.db"
        self.artifacts = self.tmp / "server-artifacts"
        self.server = MlflowServer(None, self.db, self.tmp, artifacts=self.artifacts)
        self.pristine = None

    @property
    def url(self):
        return self.server.url

    def start(self):
        self.server.start()
        self.pristine = sqlite3.connect(":memory:")
        con = sqlite3.connect(self.db)
        try:
            con.backup(self.pristine)
        finally:
            con.close()
        return self

    def reset(self):
        if self.server.proc is None or self.server.proc.poll() is not None:
            raise RuntimeError(f"the session's mlflow server is gone:\n{self.server.log()}")
        con = sqlite3.connect(self.db, timeout=30)
        try:
            self.pristine.backup(con)
        finally:
            con.close()
        shutil.rmtree(self.artifacts, ignore_errors=True)
        self.artifacts.mkdir()

    def stop(self):
        self.server.stop()
        if self.pristine is not None:
            self.pristine.close()


@pytest.fixture(scope="session")
def remote_store(tmp_path_factory):
    store = RemoteStore(tmp_path_factory.mktemp("remote-store")).start()
    try:
        yield store
    finally:
        store.stop()


@pytest.fixture
def store(request, backend, tmp_path):
    """The store this test's mounts open: None for a database of the test's
    own in tmp_path, or the session's server, reset to its first state."""
    if backend == "local":
        return None
    remote = request.getfixturevalue("remote_store")
    remote.reset()
    return remote


class Mount(Daemon):
    """A mount in a temporary folder of a database of its own (store None),
    or of the session's server (store a RemoteStore): mnt (Path), db (the
    SQLite database behind the store, Path), artifacts (the folder the
    store's artifacts go to, Path), uri (what the daemon mounts),
    client_uri (what MlflowClient opens), backend, log()."""

    def __init__(self, tmp, name="m", uri=None, args=(), env=None, store=None):
        tmp = Path(tmp)
        mnt = tmp / f"{name}-mnt"
        mnt.mkdir(parents=True, exist_ok=True)
        self.tmp = tmp
        if store is None:
            self.backend = "local"
            self.db = tmp / "mlflow.db"
            self.artifacts = tmp / "mlartifacts"
            self.uri = uri or f"sqlite:///{self.db}"
            self.client_uri = f"sqlite:///{self.db}"
        else:
            self.backend = "remote"
            self.db = store.db
            self.artifacts = store.artifacts
            self.uri = uri or store.url
            self.client_uri = store.url
            # A shorter cache than the default 2 s keeps the waits for
            # other clients' changes short; test_remote.py covers the
            # default and what the cache saves.
            if not any("cache_ttl=" in str(a) for a in args):
                args = [*args, "-o", f"cache_ttl={REMOTE_CACHE_TTL}"]
        super().__init__([*args, self.uri, mnt], mnt, tmp / f"{name}-daemon.log", env=env)

    @property
    def remote(self):
        return self.backend == "remote"

    @property
    def staleness(self):
        """How long another client's change may take to show: none in the
        local store, which learns of every commit; in the remote store the
        daemon's cache_ttl, plus the second the kernel keeps names and
        attributes (mlflowfs(1), REMOTE STORE)."""
        if not self.remote:
            return 0.0
        ttl = REMOTE_CACHE_TTL
        for a in self.args:
            if a.startswith("cache_ttl="):
                ttl = float(a.split("=", 1)[1])
        return ttl + 1.0

    # Paths in the tree.
    def exp(self, name):
        return self.mnt / "experiments" / name

    def run(self, exp, run):
        return self.mnt / "experiments" / exp / run


def seen(mount, check):
    """Asserts that another client's change shows in the mount: check() is
    not False and raises no AssertionError or OSError at once (local store),
    or does so within mount.staleness (remote store; polled)."""
    deadline = time.monotonic() + mount.staleness + 0.5
    while True:
        try:
            if check() is not False:
                return
            failure = AssertionError(f"not seen within {mount.staleness} s: {check}")
        except (AssertionError, OSError) as e:
            failure = e
        if not mount.remote or time.monotonic() > deadline:
            raise failure
        time.sleep(0.05)


@pytest.fixture
def mount(tmp_path, store):
    m = Mount(tmp_path, store=store).start()
    try:
        yield m
    finally:
        m.stop()


@pytest.fixture
def make_mount(tmp_path, store):
    """Factory for mounts with options, all of the test's store; all are
    unmounted at the end."""
    mounts = []

    def make(name="m", start=True, **kw):
        kw.setdefault("store", store)
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
    return mlflow.MlflowClient(tracking_uri=mount.client_uri)


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
