"""Helpers for test_mlflow_compat.py, test_mount.py and test_remote_old.py.

Starting mlflowfs the ways a user does (daemon mode, an environment of its
own, a working folder of its own, through mount.fuse3), running a snippet in
another MLflow's virtualenv, a real `mlflow server`, and reading the database
as another SQLite connection would.  Every mount made here is unmounted by
the helper that made it, also when the test fails.
"""
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import Daemon, mlflowfs_binary, unmount  # noqa: F401 (unmount: for the tests)
from helpers_server import MlflowServer  # noqa: F401 (for the tests)

HERE = Path(__file__).resolve().parent
REQUIREMENTS_OLD = HERE.parent / "requirements-old.txt"
OLD_MLFLOW_VERSION = "2.22.5"


# --------------------------------------------------------------------------
# mlflowfs processes


def run_mlflowfs(args, env=None, cwd=None, timeout=30):
    """Runs the binary to completion (daemon mode, --help, --version...).

    Returns the CompletedProcess (text).  The caller unmounts a mount this
    made, in a finally.
    """
    full_env = dict(os.environ if env is None else env)
    full_env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
    return subprocess.run([mlflowfs_binary(), *map(str, args)], env=full_env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def clean_env(**overrides):
    """os.environ without the store-selection variables, plus overrides."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "XDG_DATA_HOME")}
    for k, v in overrides.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def create_db_with_mlflowfs(db, workdir):
    """A fresh database exactly as mlflowfs creates it on first mount."""
    mnt = Path(workdir) / "create-mnt"
    mnt.mkdir(parents=True, exist_ok=True)
    with Daemon([f"sqlite:///{db}", mnt], mnt, Path(workdir) / "create.log"):
        assert (mnt / "experiments" / "Default").is_dir()
    return Path(db)


def status_fields(mnt):
    """.mlflowfs/status as a dict of its 'key: value' lines."""
    out = {}
    for line in (Path(mnt) / ".mlflowfs" / "status").read_text().splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


# --------------------------------------------------------------------------
# The database as another connection sees it


@contextlib.contextmanager
def ro_connection(db):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        yield con
    finally:
        con.close()


def db_rows(db, sql, args=()):
    with ro_connection(db) as con:
        return con.execute(sql, args).fetchall()


def file_digest(path):
    import hashlib
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# --------------------------------------------------------------------------
# Other MLflow installations


def mlflow_version_of(python):
    """The MLflow version importable by that interpreter, or None."""
    if not python or not os.path.exists(python):
        return None
    r = subprocess.run([python, "-c", "import mlflow; print(mlflow.__version__)"],
                       capture_output=True, text=True, timeout=120)
    return r.stdout.strip() if r.returncode == 0 else None


def ensure_old_venv(venv):
    """Python of a venv holding MLflow 2.22.5, created if needed.

    Returns (python, None) or (None, why it is not available)."""
    venv = Path(venv)
    python = venv / "bin" / "python"
    if mlflow_version_of(str(python)) == OLD_MLFLOW_VERSION:
        return str(python), None
    base = shutil.which("python3")
    if not base:
        return None, "no python3 to create it with"
    try:
        r = subprocess.run([base, "-m", "venv", str(venv)], capture_output=True, text=True,
                           timeout=300)
        if r.returncode != 0:
            return None, f"python3 -m venv failed: {r.stderr.strip()[-300:]}"
        r = subprocess.run([str(python), "-m", "pip", "install", "-q", "-r",
                            str(REQUIREMENTS_OLD)], capture_output=True, text=True,
                           timeout=1800)
        if r.returncode != 0:
            return None, f"pip install failed: {r.stderr.strip()[-300:]}"
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"cannot create it: {e}"
    if mlflow_version_of(str(python)) != OLD_MLFLOW_VERSION:
        return None, f"it does not hold MLflow {OLD_MLFLOW_VERSION} after installing"
    return str(python), None


@pytest.fixture(scope="session")
def old_mlflow_python():
    """The interpreter of a virtualenv with MLflow 2.22.5 ($MLFLOWFS_OLD_VENV);
    a fixture for the test modules that import it."""
    venv = os.environ.get("MLFLOWFS_OLD_VENV") or "/tmp/venv222"
    python, why = ensure_old_venv(venv)
    if python is None:
        pytest.skip(f"MLflow 2.22.5 is not available in {venv} ($MLFLOWFS_OLD_VENV) and "
                    f"the venv could not be created: {why}")
    return python


def run_in_mlflow(python, code, *args, cwd=None, timeout=300):
    """Runs code with that interpreter's MLflow; returns its stdout's last
    line parsed as JSON.  Fails with the child's stderr on error."""
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    env.pop("MLFLOW_TRACKING_URI", None)
    r = subprocess.run([python, "-c", code, *map(str, args)], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"MLflow child failed:\n{r.stderr[-3000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def python_of_this_mlflow():
    """The interpreter running the tests (it holds the pinned MLflow)."""
    return sys.executable


# --------------------------------------------------------------------------
# Schema comparison that tolerates MLflow's own nondeterminism


def _top_level_clauses(create_sql):
    """The comma-separated items inside a CREATE TABLE's outer parentheses."""
    start, end = create_sql.index("("), create_sql.rindex(")")
    body, items, depth, cur = create_sql[start + 1:end], [], 0, ""
    for ch in body:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    items.append(cur)
    return create_sql[:start], sorted(items)


def schema_differences(db_a, db_b):
    """schema_compat.compare_schema(), less the differences that are only
    the order of a table's constraint clauses.

    MLflow (alembic's batch table rebuild) writes the named CHECK
    constraints of `runs` in an order that changes from one process to the
    next: two databases made by the same MLflow differ that way, so that
    order cannot be a property mlflowfs has to match.
    """
    import schema_compat

    out = []
    for diff in schema_compat.compare_schema(db_a, db_b):
        head, _, rest = diff.partition("\n")
        if head.endswith(": sql differ:"):
            lines = [l.strip() for l in rest.splitlines()]
            if len(lines) == 2 and _top_level_clauses(lines[0]) == _top_level_clauses(lines[1]):
                continue
        out.append(diff)
    return out
