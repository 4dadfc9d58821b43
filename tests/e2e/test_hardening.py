"""The local store hardened against what users and databases throw at it:
keys exactly as MLflow's validator takes them, names in a database that no
listing can show, credentials in URIs, log lines that names could forge,
Windows line ends, read-only stores and a missing TMPDIR.

Each behaviour is checked against the real MLflow where MLflow has an
opinion (its validator, its client reading back what was written).
"""
import errno
import os
import re
import shutil
import sqlite3
import subprocess
import sys

import pytest

from conftest import Mount, db_snapshot, expect_errno, run_id_of, sh, unmount, write_file
from helpers_compat import file_digest, run_mlflowfs
from helpers_writes import db_made_by_mlflow, mlflow_template_db  # noqa: F401 (fixtures)
from helpers_writes import listing, refused, settle, snapshot


@pytest.fixture(autouse=True)
def _store_made_by_mlflow(db_made_by_mlflow):
    """Every test here mounts a database that MLflow made."""


def rid(run_dir):
    return run_id_of(run_dir)


# ---- keys: MLflow's validator, exactly -----------------------------------------


def mlflow_accepts(key):
    """The pinned MLflow's own verdict on a param/metric/tag key."""
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import _validate_metric_name, _validate_param_name

    try:
        _validate_param_name(key)
    except MlflowException:
        verdict = False
    else:
        verdict = True
    # Params, metrics and tags share the rule; make sure they still do.
    try:
        _validate_metric_name(key)
        assert verdict, key
    except MlflowException:
        assert not verdict, key
    return verdict


def encoded(key):
    """The file name of a key written as one component (see mlflowfs(1))."""
    name = key.replace("%", "%25").replace("/", "%2F")
    return "%2E" + name[1:] if name.startswith(".") else name


def probe(folder, key):
    """Creates folder/<key> without writing: the key check happens at open.
    True if accepted, False on EINVAL."""
    try:
        fd = os.open(folder / encoded(key), os.O_WRONLY | os.O_CREAT, 0o644)
    except OSError as e:
        assert e.errno == errno.EINVAL, (key, e)
        return False
    os.close(fd)
    return True


PATH_KEYS = ["a", "a/b", "/a", "a//b", "a/", "./a", "a/./b", "a/../b", "a/..", "..", ".",
             "..a", ".a", "a..b", "a/..b", "a/.b", "a/b.", "a b", " a", "a:b", "a-b", "-",
             "_", "a\n", "\n", "a\nb", "a\n\n", "a\r", "a\tb", "a*b", "a\\b", "é", "日本",
             "x\u0301", "\u0661", "\u00b2", "\u216b", "\u01c5", "\u02b0", "\u00ad", "\u200b",
             "\U0001d7d8", "\U00020000", "a\u3000b"]


def test_keys_are_refused_exactly_as_mlflow_refuses_them(mount, run_dir, client):
    params = run_dir / "params"
    before = snapshot(mount)
    start = len(mount.log())
    verdicts = {key: probe(params, key) for key in PATH_KEYS}
    wrong = {k: v for k, v in verdicts.items() if v != mlflow_accepts(k)}
    assert not wrong, f"mlflowfs (True: accepted) disagrees with MLflow on {wrong}"
    assert snapshot(mount) == before, "a refused key changed the store"
    # Every refusal is logged with its reason.
    refusals = [k for k, v in verdicts.items() if not v]
    lines = mount.log()[start:].splitlines()
    assert len([l for l in lines if "MLflow refuses" in l or "refused by MLflow" in l]) \
        >= len(refusals), lines
    # What both accept is logged for real, and MLflow reads it back.
    accepted = [k for k, v in verdicts.items() if v]
    for i, key in enumerate(accepted):
        write_file(params / encoded(key), f"{i}\n")
    assert client.get_run(rid(run_dir)).data.params == {
        k: str(i) for i, k in enumerate(accepted)}


def test_every_unicode_class_boundary_matches_mlflow(mount, run_dir):
    # Python's \w (str.isalnum) differs from the C library's iswalnum(); probe
    # each code point where Python's verdict changes, and its neighbour.
    edges = set()
    prev = False
    for cp in range(0x80, sys.maxunicode + 1):
        if 0xD800 <= cp <= 0xDFFF:
            continue  # surrogates are not text (and not UTF-8)
        now = chr(cp).isalnum()
        if now != prev:
            edges.update((cp - 1, cp))
        prev = now
    edges = sorted(cp for cp in edges if cp >= 0x80 and not 0xD800 <= cp <= 0xDFFF)
    assert len(edges) > 1000
    folder = run_dir / "tags"
    wrong = [hex(cp) for cp in edges if probe(folder, "k" + chr(cp)) != mlflow_accepts(
        "k" + chr(cp))]
    assert not wrong, f"{len(wrong)} code points judged unlike MLflow: {wrong[:20]}"


def test_bad_keys_in_renames_and_mkdir_are_refused(mount, run_dir):
    (run_dir / "tags" / "t").write_text("v\n")
    names = listing(run_dir / "tags")
    before = snapshot(mount)
    expect_errno(errno.EINVAL, os.rename, run_dir / "tags" / "t",
                 run_dir / "tags" / "a%2F%2Fb")
    expect_errno(errno.EINVAL, os.rename, run_dir / "tags" / "t", run_dir / "tags" / "..x")
    expect_errno(errno.EINVAL, os.mkdir, run_dir / "metrics" / "%2F")
    assert snapshot(mount) == before
    assert listing(run_dir / "tags") == names
    assert (run_dir / "tags" / "t").read_text() == "v\n"


# ---- names in the database that no listing can show ----------------------------


def test_entries_a_listing_cannot_show_are_skipped_and_logged(tmp_path):
    import mlflow

    db = tmp_path / "mlflow.db"
    c = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")
    exp = c.create_experiment("e")
    run = c.create_run(exp, run_name="r").info.run_id
    c.log_param(run, "good", "1")
    c.log_param(run, "ok/sub", "2")
    con = sqlite3.connect(db)
    with con:
        # As a script or an old tool may have written them: MLflow refuses
        # these names today, so only SQL can make them.
        con.execute("INSERT INTO experiments (name, artifact_location, lifecycle_stage,"
                    " creation_time, last_update_time) VALUES ('', '/tmp/x', 'active', 0, 0)")
        con.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, 'v', ?)",
                        [(k, run) for k in ("", "/lead", "a//b", "trail/")])
        con.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, 'v', ?)",
                        [(k, run) for k in ("", "x//y", "fine")])
        con.execute("INSERT INTO metrics (key, value, timestamp, step, is_nan, run_uuid) "
                    "VALUES ('/m', 1, 0, 0, 0, ?)", (run,))
        con.execute("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan,"
                    " run_uuid) VALUES ('/m', 1, 0, 0, 0, ?)", (run,))
    con.close()
    with Mount(tmp_path) as m:
        r = m.run("e", "r")
        assert "e" in listing(m.mnt / "experiments")
        assert listing(r / "params") == ["good", "ok"]
        assert listing(r / "params" / "ok") == ["sub"]
        assert "fine" in listing(r / "tags")
        assert listing(r / "metrics") == []
        assert listing(r / "history") == []
        # Every folder of the tree lists: find and ls -R see no error.
        sh(f"find {m.mnt} > /dev/null && ls -laR {m.mnt} > /dev/null")
        assert (r / "params" / "good").read_text() == "1\n"
        log = m.log()
        assert re.search(r"/experiments: not listing an entry whose name is empty", log), log
        for key in ("/lead", "a//b", "trail/", "x//y", "/m"):
            assert f"not listing key '{key}'" in log, (key, log)


# ---- credentials --------------------------------------------------------------------

SECRET_URIS = [
    "http://alice:s3cret@127.0.0.1:5000",
    "https://alice:s3cret@mlflow.example/prefix",
    "https://alice:s3@cret@mlflow.example/",
    "postgresql://alice:s3cret@db.example/mlflow",
    "mysql://db.example/mlflow?user=alice&password=s3cret",
    "http://mlflow.example/?token=s3cret&x=1",
]


@pytest.mark.parametrize("uri", SECRET_URIS)
@pytest.mark.parametrize("how", ["argument", "environment"])
def test_a_refused_uri_is_shown_without_its_credentials(uri, how, tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    env = dict(os.environ)
    env.pop("MLFLOW_TRACKING_URI", None)
    if how == "environment":
        env["MLFLOW_TRACKING_URI"] = uri
    args = [mnt] if how == "environment" else [uri, mnt]
    try:
        r = run_mlflowfs(args, env=env, cwd=tmp_path)
        assert not os.path.ismount(mnt)
    finally:
        unmount(mnt)
    assert r.returncode == 1, r.stderr
    out = r.stdout + r.stderr
    assert "s3cret" not in out and "cret@" not in out and "alice" not in out, out
    # The rest of the URI is still shown, so the user sees which one it was.
    host = re.search(r"@?([a-z0-9.]+\.example|127\.0\.0\.1)", uri.split("@")[-1]).group(1)
    assert host in out, out


def test_conflicting_uris_are_shown_without_credentials(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = run_mlflowfs(["--tracking-uri=sqlite:///x.db", "http://bob:hunter2@h:1", mnt],
                     cwd=tmp_path)
    assert r.returncode == 1
    assert "hunter2" not in r.stderr and "bob" not in r.stderr, r.stderr
    assert "http://h:1" in r.stderr, r.stderr


# ---- log lines that cannot be forged -----------------------------------------------


def test_names_and_lines_are_escaped_in_the_log_and_errors_file(mount, run_dir):
    errors = mount.mnt / ".mlflowfs" / "errors"
    start = len(mount.log())
    forged = "x\n2026-01-01T00:00:00.000Z fake EPERM injected*"
    expect_errno(errno.EINVAL, write_file, run_dir / "params" / forged, "1\n")
    fd = os.open(run_dir / "metrics" / "m", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        expect_errno(errno.EINVAL, os.write, fd, b"1\x00\x1b[2J\rfake\n")
    finally:
        os.close(fd)
    new = mount.log()[start:]
    for ch in ("\x00", "\x1b", "\r"):
        assert ch not in new, repr(new)
    lines = new.splitlines()
    assert not any(l.startswith("2026-01-01") for l in lines), lines
    assert any("x\\n2026-01-01T00:00:00.000Z" in l for l in lines), lines
    assert any("1\\x00\\x1b[2J\\rfake" in l for l in lines), lines
    # .mlflowfs/errors: one line per refusal, each in its fixed form.
    text = errors.read_text()
    for ch in ("\x00", "\x1b", "\r"):
        assert ch not in text
    for line in text.splitlines():
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z /", line), line
        assert not line.startswith("2026-01-01"), line
    assert "x\\n2026-01-01" in text and "\\x00\\x1b" in text, text


# ---- Windows line ends ---------------------------------------------------------------


def test_crlf_ends_params_tags_and_status_as_lf_does(mount, run_dir, client):
    write_file(run_dir / "params" / "lr", b"0.1\r\n")
    write_file(run_dir / "tags" / "note", b"hello\r\n")
    write_file(run_dir / "status", b"FINISHED\r\n")
    data = client.get_run(rid(run_dir))
    assert data.data.params["lr"] == "0.1"
    assert data.data.tags["note"] == "hello"
    assert data.info.status == "FINISHED"
    assert (run_dir / "params" / "lr").read_text() == "0.1\n"
    # Writing the logged value again, with either line end, is no change.
    write_file(run_dir / "params" / "lr", b"0.1\r\n")
    write_file(run_dir / "params" / "lr", b"0.1\n")
    expect_errno(errno.EPERM, write_file, run_dir / "params" / "lr", b"0.1\r\r\n")


def test_crlf_split_across_writes_is_one_line_end(mount, run_dir, client):
    fd = os.open(run_dir / "status", os.O_WRONLY | os.O_TRUNC)
    try:
        os.write(fd, b"KILLED\r")
        os.write(fd, b"\n")
    finally:
        os.close(fd)
    assert client.get_run(rid(run_dir)).info.status == "KILLED"


# ---- UTF-8 at write() ------------------------------------------------------------------


@pytest.mark.parametrize("folder", ["params", "tags"])
def test_bytes_that_are_not_utf8_fail_at_the_write_itself(mount, run_dir, folder):
    path = run_dir / folder / "bin"
    before = snapshot(mount)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, b"ok ")
        expect_errno(errno.EINVAL, os.write, fd, b"\xff\xfe\n")
    finally:
        try:
            os.close(fd)  # close may report the refusal again; no value is logged
        except OSError as e:
            assert e.errno == errno.EINVAL, e
    assert snapshot(mount) == before


# ---- read-only stores ----------------------------------------------------------------


def changes(run_dir):
    """Every kind of change a user makes, each expected to fail EROFS."""
    exp = run_dir.parent
    return [
        (os.mkdir, exp.parent / "new"),
        (os.mkdir, exp / "new-run"),
        (os.mkdir, exp.parent.parent / "models" / "new-model"),
        (write_file, run_dir / "params" / "p", "1\n"),
        (write_file, run_dir / "metrics" / "m", "1\n", "a"),
        (write_file, run_dir / "tags" / "t", "v\n"),
        (write_file, run_dir / "status", "FINISHED\n"),
        (write_file, run_dir / "artifacts" / "a.txt", "x"),
        (os.unlink, run_dir / "tags" / "k"),
        (os.rename, run_dir, exp / "renamed"),
        (os.rmdir, run_dir),
    ]


def prepare_store(tmp_path):
    """A run e/r with a tag k, made through a mount and committed."""
    with Mount(tmp_path, name="prep") as m:
        os.makedirs(m.run("e", "r"))
        write_file(m.run("e", "r") / "tags" / "k", "v\n")
    return tmp_path / "mlflow.db"


def test_ro_option_mounts_read_only_and_writes_nothing(tmp_path):
    db = prepare_store(tmp_path)
    digest = file_digest(db)
    siblings = sorted(f for f in os.listdir(tmp_path) if f.startswith("mlflow.db"))
    with Mount(tmp_path, args=["-o", "ro"]) as m:
        run_dir = m.run("e", "r")
        for fn, *args in changes(run_dir):
            expect_errno(errno.EROFS, fn, *args)
        assert (run_dir / "tags" / "k").read_text() == "v\n"
        assert "read_only: yes" in (m.mnt / ".mlflowfs" / "status").read_text()
        assert re.search(r"mounted .* read-only", m.log()), m.log()
    assert file_digest(db) == digest
    # A WAL database's reader keeps SQLite's shared-memory file and an empty
    # log beside it, as every SQLite reader does; nothing else appears.
    extra = set(f for f in os.listdir(tmp_path) if f.startswith("mlflow.db")) - set(siblings)
    assert extra <= {"mlflow.db-shm", "mlflow.db-wal"}, extra
    if "mlflow.db-wal" in extra:
        assert (tmp_path / "mlflow.db-wal").stat().st_size == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="a read-only bind mount needs root")
def test_database_on_a_read_only_file_system_mounts_read_only(tmp_path):
    db = prepare_store(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "--bind", str(tmp_path), str(ro)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
        digest = file_digest(db)
        with Mount(tmp_path, uri=f"sqlite:///{ro / 'mlflow.db'}") as m:
            run_dir = m.run("e", "r")
            assert (run_dir / "tags" / "k").read_text() == "v\n"
            for fn, *args in changes(run_dir):
                expect_errno(errno.EROFS, fn, *args)
            assert "read-only file system: mounting read-only" in m.log(), m.log()
        assert file_digest(db) == digest
    finally:
        subprocess.run(["umount", str(ro)], check=False)


# ---- a missing TMPDIR ----------------------------------------------------------------


def test_missing_tmpdir_never_fails_a_read(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path / "gone"))
    with Mount(tmp_path, env=env) as m:
        run_dir = m.run("e", "r")
        os.makedirs(run_dir)
        n = 40000  # the history is over 256 KiB: it is kept in a temporary file
        write_file(run_dir / "metrics" / "loss", "".join(f"{i / n}\n" for i in range(n)))
        lines = (run_dir / "history" / "loss").read_text().splitlines()
        assert len(lines) == n
        assert "cannot make a temporary file in" in m.log()
