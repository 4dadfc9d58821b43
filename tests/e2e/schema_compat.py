"""Helpers that check a database mlflowfs created against real MLflow.

open_with_mlflow() opens a database with the MLflow of a given virtualenv and
logs a run in it; compare_schema() lists every structural difference between
two SQLite databases.  No test framework here: the pytest suite calls these.
"""

import json
import os
import re
import sqlite3
import subprocess
from pathlib import Path

# Runs inside the other virtualenv: open the store, log one run, read it back.
_CHILD = r"""
import json, sys, uuid
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

c = MlflowClient(tracking_uri="sqlite:///" + sys.argv[1])
c.search_experiments()
exp = c.create_experiment("schema-compat-" + uuid.uuid4().hex[:8])
run = c.create_run(exp).info.run_id
c.log_batch(run, metrics=[Metric("loss", 0.5, 1000, 3)],
            params=[Param("lr", "0.1")], tags=[RunTag("t", "v")])
c.set_terminated(run)
found = c.search_runs([exp], filter_string="params.lr = '0.1'")
r = found[0].data
assert len(found) == 1 and r.metrics == {"loss": 0.5}, (found, r)
assert r.params == {"lr": "0.1"} and r.tags.get("t") == "v", r
print(json.dumps({"run_id": run}))
"""


def _connect_ro(db_path):
    """A read-only connection: looking must never create or change a file."""
    uri = Path(os.path.abspath(db_path)).as_uri() + "?mode=ro"
    return sqlite3.connect(uri, uri=True)


def read_revision(db_path):
    """alembic_version.version_num, or None when there is none (or no file)."""
    try:
        con = _connect_ro(db_path)
    except sqlite3.Error:
        return None
    try:
        return con.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    except (sqlite3.Error, TypeError):
        return None
    finally:
        con.close()


def open_with_mlflow(python_exe, db_path, timeout=300):
    """Open db_path with the MLflow installed for python_exe and log a run.

    Returns {"revision_before", "revision_after", "ok", "error"}: ok is True
    when the client opened the store and the run read back as logged; error
    is the end of the child's stderr otherwise.  MLflow migrated the file on
    open when the two revisions differ (MLflow 3 does not log the steps).
    """
    db_path = os.path.abspath(db_path)
    before = read_revision(db_path)
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    proc = subprocess.run(
        [python_exe, "-c", _CHILD, db_path],
        cwd=os.path.dirname(db_path),  # MLflow's default artifact root is ./mlruns
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return {
        "revision_before": before,
        "revision_after": read_revision(db_path),
        "ok": proc.returncode == 0,
        "error": None if proc.returncode == 0 else proc.stderr.strip()[-2000:],
    }


def _normalise_sql(sql):
    """CREATE text without quoting, IF NOT EXISTS and layout whitespace."""
    if sql is None:
        return None
    s = re.sub(r"[\"`\[\]]", "", sql)
    s = re.sub(r"\bIF NOT EXISTS\b", "", s, flags=re.I)
    s = re.sub(r"\s+", " ", s)
    return re.sub(r"\s*([(),])\s*", r"\1", s).strip()


def _describe(db_path):
    """{object name: facts} for every table and index, from SQLite itself."""
    con = _connect_ro(db_path)
    try:
        facts = {}
        rows = con.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master"
            " WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_stat%'"
        ).fetchall()
        for kind, name, table, sql in rows:
            if kind == "index":
                facts["index " + name] = {
                    "table": table,
                    "sql": _normalise_sql(sql),
                    "columns": con.execute(f'PRAGMA index_xinfo("{name}")').fetchall(),
                }
                continue
            # index_list rows are (seq, name, unique, origin, partial); seq
            # is only the order SQLite keeps them in.
            indexes = con.execute(f'PRAGMA index_list("{name}")').fetchall()
            facts["table " + name] = {
                "sql": _normalise_sql(sql),
                "columns": con.execute(f'PRAGMA table_xinfo("{name}")').fetchall(),
                "indexes": sorted(row[1:] for row in indexes),
                "foreign_keys": con.execute(f'PRAGMA foreign_key_list("{name}")').fetchall(),
            }
        return facts
    finally:
        con.close()


def compare_schema(db_a, db_b):
    """Every difference between the schemas of two databases, as sentences.

    Tables and indexes are compared by name: CREATE text (normalised), columns
    (PRAGMA table_xinfo), indexes (index_list, index_xinfo) and foreign keys.
    An empty list means the two are structurally the same.
    """
    a, b = _describe(db_a), _describe(db_b)
    diffs = []
    for name in sorted(a.keys() | b.keys()):
        if name not in b:
            diffs.append(f"{name}: only in {db_a}")
        elif name not in a:
            diffs.append(f"{name}: only in {db_b}")
        else:
            for field in a[name]:
                if a[name][field] != b[name][field]:
                    diffs.append(f"{name}: {field} differ:\n  {a[name][field]}\n  {b[name][field]}")
    return diffs


if __name__ == "__main__":
    # By hand: "schema_compat.py compare A.db B.db" or "... open PYTHON DB".
    import sys

    if sys.argv[1:2] == ["open"]:
        print(json.dumps(open_with_mlflow(sys.argv[2], sys.argv[3]), indent=1))
    else:
        diffs = compare_schema(sys.argv[2], sys.argv[3])
        print("\n".join(diffs) if diffs else "same")
        sys.exit(1 if diffs else 0)
