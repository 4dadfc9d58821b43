"""Artifacts (mlflowfs(1), ARTIFACTS), on both stores.  In the local store a
run's artifacts/ is the ordinary folder its artifact_uri names, and
everything passes through as in a bind mount - contents, permissions,
ownership, timestamps (UTIME_NOW/UTIME_OMIT), renames, truncation, random
writes, mmap, links, special files, unlink while open, paths longer than
PATH_MAX.  In the remote store the same tests run wherever the server's
artifact API can do what they ask (the local_only marks say why not).  Each
effect is checked on the real folder on disk (the server's, remote) and,
where MLflow sees it, with list_artifacts/download_artifacts; the other way
round, what the client logs shows in the mount.
"""
import errno
import mmap
import os
import shutil
import stat
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import db_snapshot, expect_errno, run_id_of, sh
from helpers_tools import (UTIME_NOW, UTIME_OMIT, artifact_dir, assert_refusal_logged,
                           list_artifacts_recursive, run_info, tree, utimensat)

# Why a test runs on the local store alone: what the remote store's
# artifacts, behind the server's artifact API, do not have (mlflowfs(1),
# REMOTE STORE).  test_remote.py checks what they do instead.
NO_MODES = "the server keeps no modes, owners or times"
NO_FOLDER_RENAME = "the server's artifact API cannot rename a folder (EXDEV)"
FILES_ONLY = "the server keeps regular files and folders only"
SERVER_PATH_MAX = "the server keeps artifacts on its own disk, within its PATH_MAX"

# The server's API moves whole files, holes and all: a sparse file of 5 GiB
# is 5 GiB up and down.  The remote store's tests of sparse sizes use this
# many MiB instead (test_remote.py streams a big file).
SPARSE_MB = 48


def read_within_cache_window(path, want, window=2.0):
    """What the man page promises for changes made outside the mount (on
    disk, or through another hard link, which the kernel sees as another
    file): reads show them in full once the kernel's attribute cache of one
    second has expired.  Returns the first read, for the caller to inspect."""
    first = path.read_text()
    deadline = time.monotonic() + window
    got = first
    while got != want and time.monotonic() < deadline:
        time.sleep(0.05)
        got = path.read_text()
    assert got == want
    return first


@pytest.fixture
def art(run_dir):
    """The run's artifacts/ in the mount, with a first file so that the
    folder exists on disk."""
    a = run_dir / "artifacts"
    (a / "first.txt").write_text("first\n")
    return a


@pytest.fixture
def disk(mount, client, run_dir, art):
    """The run's real artifact folder (its artifact_uri)."""
    d = artifact_dir(client, run_dir, mount)
    assert (d / "first.txt").read_text() == "first\n"
    return d


# ---- the folder, contents, MLflow's view -----------------------------------


def test_fresh_runs_artifacts_is_an_empty_folder_that_takes_the_first_file(mount, client,
                                                                            run_dir):
    a = run_dir / "artifacts"
    rid = run_info(client, run_dir).info.run_id
    assert stat.S_ISDIR(os.stat(a).st_mode)
    assert os.listdir(a) == []
    assert client.list_artifacts(rid) == []
    assert sh(f"ls -A {a}").stdout == ""
    (a / "model.pkl").write_bytes(b"pickle")
    assert os.listdir(a) == ["model.pkl"]
    assert (artifact_dir(client, run_dir, mount) / "model.pkl").read_bytes() == b"pickle"
    assert list_artifacts_recursive(client, rid) == {"model.pkl": 6}


@pytest.mark.local_only(NO_MODES)
def test_fresh_runs_artifacts_takes_a_folder_first(mount, client, run_dir):
    a = run_dir / "artifacts"
    os.mkdir(a / "ckpt", 0o750)
    disk = artifact_dir(client, run_dir, mount)
    assert stat.S_IMODE(os.stat(disk / "ckpt").st_mode) == 0o750
    assert list_artifacts_recursive(client, run_id_of(run_dir)) == {"ckpt": None}
    # Or a symbolic link.
    other = run_dir.parent / "r2"
    os.mkdir(other)
    os.symlink("elsewhere/model.pkl", other / "artifacts" / "latest")
    assert os.readlink(artifact_dir(client, other, mount) / "latest") == "elsewhere/model.pkl"
    assert os.listdir(other / "artifacts") == ["latest"]


def test_artifacts_out_of_reach_refuse_access_and_the_run_still_lists(mount, client):
    # mlflowfs(1), ARTIFACTS: a run whose artifacts are elsewhere (here s3:, which no
    # repository serves) shows an artifacts/ that refuses access.
    exp = client.create_experiment("far", artifact_location="s3://bucket/far")
    client.create_run(exp, run_name="r")
    run = mount.run("far", "r")
    assert "artifacts" in os.listdir(run)
    assert stat.S_ISDIR(os.stat(run / "artifacts").st_mode)
    expect_errno(errno.ENOTSUP, os.listdir, run / "artifacts")
    expect_errno(errno.ENOTSUP, (run / "artifacts" / "f").write_text, "x")
    assert_refusal_logged(mount, run / "artifacts", errno.ENOTSUP)
    assert "s3:" in mount.log()


@pytest.mark.local_only(NO_MODES)
def test_attributes_of_a_fresh_runs_artifacts_folder(mount, client, run_dir):
    a = run_dir / "artifacts"
    os.chmod(a, 0o700)
    os.chown(a, 4242, 4343)
    os.utime(a, ns=(1_000_000_000_123_456_789, 1_100_000_000_987_654_321))
    st = os.stat(artifact_dir(client, run_dir, mount))
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o700, 4242, 4343)
    assert st.st_mtime_ns == 1_100_000_000_987_654_321


def test_create_read_write_append(mount, client, run_dir, art, disk):
    f = art / "log.txt"
    f.write_text("line 1\n")
    with open(f, "a") as fh:
        fh.write("line 2\n")
    sh(f"echo 'line 3' >> {f}")
    want = b"line 1\nline 2\nline 3\n"
    assert f.read_bytes() == want
    assert (disk / "log.txt").read_bytes() == want
    with open(f, "r+b") as fh:
        assert fh.read(4) == b"line"
        fh.write(b"_")
        fh.seek(0)
        assert fh.read() == b"line_1\nline 2\nline 3\n"
    assert (disk / "log.txt").read_bytes() == b"line_1\nline 2\nline 3\n"
    # O_TRUNC of '>' empties the file, as on disk.
    sh(f"echo new > {f}")
    assert (disk / "log.txt").read_bytes() == b"new\n"
    assert os.stat(f).st_size == 4
    # O_EXCL refuses an existing artifact, as the disk does.
    expect_errno(errno.EEXIST, os.open, f, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    rid = run_id_of(run_dir)
    got = Path(client.download_artifacts(rid, "log.txt", str(mount.tmp)))
    assert got.read_bytes() == b"new\n"


def test_cp_r_of_a_folder_into_artifacts(mount, client, run_dir, art, disk, tmp_path):
    src = tmp_path / "dataset"
    (src / "train" / "shards").mkdir(parents=True)
    (src / "val").mkdir()
    (src / "README").write_text("data\n")
    for i in range(5):
        (src / "train" / "shards" / f"{i:03}.bin").write_bytes(os.urandom(1000 + i))
    (src / "val" / "empty").write_bytes(b"")
    sh(f"cp -r {src} {art}/")
    assert tree(disk / "dataset") == tree(src)
    assert sh(f"diff -r {src} {art}/dataset", check=False).returncode == 0
    listed = list_artifacts_recursive(client, run_id_of(run_dir), "dataset")
    want = {str(Path("dataset") / p): (len(v[1]) if v[0] == "file" else None)
            for p, v in tree(src).items()}
    assert listed == want
    if mount.remote:
        return  # NO_MODES
    # cp -a keeps modes and times as well.
    os.chmod(src / "README", 0o600)
    os.utime(src / "README", ns=(1_000_000_000_000_000_001, 1_100_000_000_000_000_002))
    sh(f"cp -a {src} {art}/kept")
    st = os.stat(disk / "kept" / "README")
    assert (stat.S_IMODE(st.st_mode), st.st_mtime_ns) == (0o600, 1_100_000_000_000_000_002)
    assert tree(disk / "kept") == tree(src)


def test_client_sees_artifacts_written_through_the_mount(mount, client, run_dir, art,
                                                         tmp_path):
    rid = run_info(client, run_dir).info.run_id
    files = {"model/MLmodel": b"flavors: {}\n", "model/model.pkl": os.urandom(50_000),
             "plots/loss.png": b"\x89PNG\r\n\x1a\n" + os.urandom(300)}
    for rel, data in files.items():
        (art / rel).parent.mkdir(exist_ok=True)
        (art / rel).write_bytes(data)
    assert list_artifacts_recursive(client, rid) == {
        "first.txt": 6, "model": None, "plots": None,
        **{rel: len(data) for rel, data in files.items()}}
    out = Path(client.download_artifacts(rid, "model", str(tmp_path)))
    assert (out / "model.pkl").read_bytes() == files["model/model.pkl"]
    assert (out / "MLmodel").read_bytes() == files["model/MLmodel"]
    out = Path(client.download_artifacts(rid, "plots/loss.png", str(tmp_path)))
    assert out.read_bytes() == files["plots/loss.png"]


def test_mount_sees_artifacts_the_client_logs(mount, client, run_dir, tmp_path):
    rid = run_info(client, run_dir).info.run_id
    one = tmp_path / "notes.md"
    one.write_text("# notes\n")
    folder = tmp_path / "eval"
    (folder / "deep").mkdir(parents=True)
    (folder / "scores.json").write_text('{"f1": 0.9}\n')
    (folder / "deep" / "raw.bin").write_bytes(os.urandom(70_000))
    client.log_artifact(rid, str(one))
    client.log_artifacts(rid, str(folder), artifact_path="results/eval")
    a = run_dir / "artifacts"
    assert sorted(os.listdir(a)) == ["notes.md", "results"]
    assert (a / "notes.md").read_bytes() == one.read_bytes()
    assert tree(a / "results" / "eval") == tree(folder)
    assert os.stat(a / "results/eval/deep/raw.bin").st_size == 70_000
    r = sh(f"find {a} -type f | sort")
    assert r.stdout.split() == [f"{a}/notes.md", f"{a}/results/eval/deep/raw.bin",
                                f"{a}/results/eval/scores.json"]


def test_artifact_names_are_stored_as_given(mount, client, run_dir, art, disk):
    # Percent-encoding is for MLflow names only (mlflowfs(1), THE TREE); artifacts are real
    # file names and pass through untouched.
    names = [".hidden", "100%.txt", "a%2Fb", "%2E", "spa ce", "ünï©ødé", "x" * 255]
    if mount.remote:
        # The server's artifact API decodes names twice: a%2Fb would be
        # stored as a/b.  Refused rather than changed, and nothing stored.
        for n in ("a%2Fb", "%2E"):
            names.remove(n)
            expect_errno(errno.EINVAL, (art / n).write_text, n)
            assert_refusal_logged(mount, art / n, errno.EINVAL)
    for n in names:
        (art / n).write_text(n)
    assert sorted(os.listdir(disk)) == sorted(names + ["first.txt"])
    assert sorted(os.listdir(art)) == sorted(names + ["first.txt"])
    for n in names:
        assert (disk / n).read_text() == n
    listed = list_artifacts_recursive(client, run_id_of(run_dir))
    assert sorted(listed) == sorted(names + ["first.txt"])


def test_interleaved_appends_from_two_descriptors(mount, client, run_dir, art, disk):
    f = art / "events.log"
    a = os.open(f, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    b = os.open(f, os.O_WRONLY | os.O_APPEND)
    try:
        for i in range(50):
            os.write(a if i % 2 else b, b"line %d\n" % i)
    finally:
        os.close(a)
        os.close(b)
    want = b"".join(b"line %d\n" % i for i in range(50))
    assert (disk / "events.log").read_bytes() == want
    assert f.read_bytes() == want


def test_sqlite_database_in_artifacts(mount, client, run_dir, art, disk):
    import sqlite3
    # Locks, journal files made and deleted, random writes, fsync; WAL adds
    # a shared-memory file that is mmapped.
    for mode in ("delete", "wal"):
        con = sqlite3.connect(art / f"{mode}.db")
        con.execute(f"PRAGMA journal_mode={mode}")
        con.execute("CREATE TABLE t (i INTEGER PRIMARY KEY, v TEXT)")
        with con:
            con.executemany("INSERT INTO t (v) VALUES (?)", [(f"row {i}",) for i in range(2000)])
        with con:
            con.execute("DELETE FROM t WHERE i % 2 = 0")
        assert con.execute("SELECT count(*) FROM t").fetchone() == (1000,)
        con.close()
        check = sqlite3.connect(disk / f"{mode}.db")
        try:
            assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert check.execute("SELECT count(*), max(v) FROM t").fetchone() == (1000, "row 998")
        finally:
            check.close()


@pytest.mark.skipif(not shutil.which("git"), reason="git is not installed")
def test_git_repository_in_artifacts(mount, client, run_dir, art, disk):
    repo = art / "repo"
    repo.mkdir()
    git = "git -c user.name=t -c user.email=t@example.com -c init.defaultBranch=main"
    sh(f"""set -e
        cd {repo}
        {git} init -q
        echo 'print(1)' > train.py
        {git} add train.py
        {git} commit -q -m first
        echo 'print(2)' >> train.py
        {git} commit -q -am second
        {git} gc -q""")
    r = sh(f"git -C {disk / 'repo'} log --format=%s")
    assert r.stdout == "second\nfirst\n"
    assert sh(f"git -C {disk / 'repo'} fsck --strict").returncode == 0
    assert (disk / "repo" / "train.py").read_text() == "print(1)\nprint(2)\n"


# ---- permissions, ownership, timestamps -----------------------------------


@pytest.mark.local_only(NO_MODES)
def test_chmod_of_files_folders_and_the_artifacts_folder(mount, client, run_dir, art, disk):
    (art / "sub").mkdir()
    (art / "sub" / "run.sh").write_text("#!/bin/sh\necho hi\n")
    os.chmod(art / "first.txt", 0o600)
    sh(f"chmod 750 {art}/sub && chmod +x {art}/sub/run.sh")
    os.chmod(art, 0o701)
    mode = lambda p: stat.S_IMODE(os.stat(p).st_mode)
    assert mode(disk / "first.txt") == 0o600
    assert mode(disk / "sub") == 0o750
    assert mode(disk / "sub" / "run.sh") == 0o755
    assert mode(disk) == 0o701
    for rel in ("first.txt", "sub", "sub/run.sh"):
        assert mode(art / rel) == mode(disk / rel), rel
    assert mode(art) == 0o701
    assert sh(f"{art}/sub/run.sh").stdout == "hi\n"
    # setuid/setgid/sticky bits go through too.
    os.chmod(art / "sub", 0o1777)
    assert mode(disk / "sub") == 0o1777


@pytest.mark.local_only(NO_MODES)
def test_new_files_get_the_mode_asked_for(mount, client, run_dir, art, disk):
    fd = os.open(art / "secret", os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    os.mkdir(art / "private", 0o700)
    sh(f"umask 077 && echo x > {art}/masked && mkdir {art}/maskdir")
    mode = lambda p: stat.S_IMODE(os.stat(disk / p).st_mode)
    assert (mode("secret"), mode("private")) == (0o600, 0o700)
    assert (mode("masked"), mode("maskdir")) == (0o600, 0o700)


@pytest.mark.local_only(NO_MODES)
def test_new_files_get_only_the_callers_umask(mount, client, run_dir, art, disk):
    sh(f"umask 000 && echo x > {art}/open && mkdir {art}/opendir")
    sh(f"umask 002 && echo x > {art}/group && mkdir {art}/groupdir")
    mode = lambda p: stat.S_IMODE(os.stat(disk / p).st_mode)
    assert (mode("open"), mode("opendir")) == (0o666, 0o777)
    assert (mode("group"), mode("groupdir")) == (0o664, 0o775)


@pytest.mark.local_only(NO_MODES)
def test_chown_passes_to_disk(mount, client, run_dir, art, disk):
    (art / "sub").mkdir()
    (art / "sub" / "f").write_text("x")
    os.chown(art / "first.txt", 4242, 4343)
    sh(f"chown -R 5000:5001 {art}/sub")
    os.chown(art, 6000, -1)
    owner = lambda p: (os.stat(p).st_uid, os.stat(p).st_gid)
    assert owner(disk / "first.txt") == (4242, 4343)
    assert owner(disk / "sub") == owner(disk / "sub" / "f") == (5000, 5001)
    assert owner(disk)[0] == 6000
    assert owner(art / "first.txt") == (4242, 4343)
    assert owner(art / "sub" / "f") == (5000, 5001)
    # -1 keeps a field as it is.
    os.chown(art / "first.txt", -1, 7000)
    assert owner(disk / "first.txt") == (4242, 7000)


@pytest.mark.local_only(NO_MODES)
def test_explicit_timestamps_with_utime_and_touch_d(mount, client, run_dir, art, disk):
    f = art / "first.txt"
    os.utime(f, ns=(1_000_000_000_123_456_789, 1_200_000_000_987_654_321))
    st = os.stat(disk / "first.txt")
    assert (st.st_atime_ns, st.st_mtime_ns) == (1_000_000_000_123_456_789,
                                                1_200_000_000_987_654_321)
    assert os.stat(f).st_mtime_ns == 1_200_000_000_987_654_321
    sh(f"touch -d '2001-02-03 04:05:06.5 UTC' {f}")
    st = os.stat(disk / "first.txt")
    assert st.st_mtime_ns == st.st_atime_ns == 981173106_500_000_000
    (art / "d").mkdir()
    os.utime(art / "d", (1_500_000_000, 1_500_000_001))
    assert os.stat(disk / "d").st_mtime == 1_500_000_001
    # touch on a missing name makes an empty artifact.
    sh(f"touch {art}/new")
    assert (disk / "new").read_bytes() == b""


@pytest.mark.local_only(NO_MODES)
def test_utime_now_and_omit(mount, client, run_dir, art, disk):
    f = art / "first.txt"
    old = (1_000_000_000, 0)
    utimensat(f, old, old)
    st = os.stat(disk / "first.txt")
    assert (st.st_atime, st.st_mtime) == (1_000_000_000, 1_000_000_000)
    before = time.time() - 1
    # atime kept (UTIME_OMIT), mtime set to now (UTIME_NOW).
    utimensat(f, (0, UTIME_OMIT), (0, UTIME_NOW))
    st = os.stat(disk / "first.txt")
    assert st.st_atime == 1_000_000_000
    assert before < st.st_mtime < time.time() + 1
    # The other way round.
    utimensat(f, old, old)
    utimensat(f, (0, UTIME_NOW), (0, UTIME_OMIT))
    st = os.stat(disk / "first.txt")
    assert st.st_mtime == 1_000_000_000 and before < st.st_atime < time.time() + 1
    # Both omitted: nothing changes.
    utimensat(f, old, old)
    utimensat(f, (0, UTIME_OMIT), (0, UTIME_OMIT))
    st = os.stat(disk / "first.txt")
    assert (st.st_atime, st.st_mtime) == (1_000_000_000, 1_000_000_000)
    # os.utime() without times and touch -a / touch -m, which use them.
    os.utime(f)
    st = os.stat(disk / "first.txt")
    assert before < st.st_atime and before < st.st_mtime
    utimensat(f, old, old)
    sh(f"touch -a {f}")
    st = os.stat(disk / "first.txt")
    assert before < st.st_atime and st.st_mtime == 1_000_000_000
    utimensat(f, old, old)
    sh(f"touch -m {f}")
    st = os.stat(disk / "first.txt")
    assert st.st_atime == 1_000_000_000 and before < st.st_mtime


# ---- renames, truncation, random writes, mmap -----------------------------


def test_atomic_checkpoint_save_replaces_the_old_file(mount, client, run_dir, art, disk):
    ckpt = art / "model.ckpt"
    ckpt.write_bytes(b"epoch 1" * 1000)
    reader = open(ckpt, "rb")
    try:
        for epoch in (2, 3):
            tmp = art / f".model.ckpt.{epoch}.tmp"
            with open(tmp, "wb") as f:
                f.write(b"epoch %d" % epoch * 1000)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, ckpt)
        assert sorted(os.listdir(art)) == ["first.txt", "model.ckpt"]
        assert sorted(os.listdir(disk)) == ["first.txt", "model.ckpt"]
        assert (disk / "model.ckpt").read_bytes() == b"epoch 3" * 1000
        assert ckpt.read_bytes() == b"epoch 3" * 1000
        # A reader that opened the old checkpoint keeps reading it.
        assert reader.read() == b"epoch 1" * 1000
    finally:
        reader.close()
    rid = run_id_of(run_dir)
    assert list_artifacts_recursive(client, rid) == {"first.txt": 6, "model.ckpt": 7000}


@pytest.mark.local_only(NO_FOLDER_RENAME)
def test_renames_of_files_and_folders(mount, client, run_dir, art, disk):
    (art / "a" / "b").mkdir(parents=True)
    (art / "a" / "b" / "f").write_text("f")
    (art / "a" / "g").write_text("g")
    os.rename(art / "a", art / "z")
    assert tree(disk / "z") == {"b": ("dir",), "b/f": ("file", b"f"), "g": ("file", b"g")}
    assert not (disk / "a").exists() and not (art / "a").exists()
    os.rename(art / "z" / "b" / "f", art / "moved")
    assert (disk / "moved").read_text() == "f"
    os.mkdir(art / "empty")
    os.rename(art / "z" / "b", art / "empty")      # a folder over an empty folder
    assert (disk / "empty").is_dir() and not (disk / "z" / "b").exists()
    # Over a folder that is not empty: the disk's own answer.
    expect_errno(errno.ENOTEMPTY, os.rename, art / "empty", art / "z")
    sh(f"mv {art}/moved {art}/z/")
    assert sorted(os.listdir(disk / "z")) == ["g", "moved"]
    assert list_artifacts_recursive(client, run_id_of(run_dir)) == {
        "first.txt": 6, "empty": None, "z": None, "z/g": 1, "z/moved": 1}


def test_rename_between_artifacts_and_virtual_files_is_refused(mount, client, run_dir, art):
    sh(f"echo 0.1 > {run_dir}/params/lr")
    rid = run_id_of(run_dir)
    before = db_snapshot(mount.db)
    expect_errno(errno.EPERM, os.rename, art / "first.txt", run_dir / "params" / "x")
    expect_errno(errno.EPERM, os.rename, run_dir / "params" / "lr", art / "lr")
    assert db_snapshot(mount.db) == before
    assert (art / "first.txt").exists()
    assert client.get_run(rid).data.params == {"lr": "0.1"}
    assert_refusal_logged(mount, art / "first.txt", errno.EPERM)
    assert_refusal_logged(mount, run_dir / "params" / "lr", errno.EPERM)


def test_truncate_grows_and_shrinks_at_any_size(mount, client, run_dir, art, disk):
    f = art / "data.bin"
    data = os.urandom(10_000)
    f.write_bytes(data)
    os.truncate(f, 20_000)
    assert (disk / "data.bin").read_bytes() == data + bytes(10_000)
    with open(f, "r+b") as fh:
        fh.truncate(5_000)
        assert os.fstat(fh.fileno()).st_size == 5_000
    assert (disk / "data.bin").read_bytes() == data[:5_000]
    big = SPARSE_MB << 20 if mount.remote else 5 << 30
    sh(f"truncate -s {big} {f}")
    st = os.stat(disk / "data.bin")
    assert st.st_size == big and os.stat(f).st_size == big
    with open(f, "rb") as fh:
        fh.seek(big - 4)
        assert fh.read() == bytes(4)
        fh.seek(0)
        assert fh.read(5_000) == data[:5_000]
    sh(f"truncate -s 7 {f}")
    assert (disk / "data.bin").read_bytes() == data[:7]
    sh(f"truncate -s 0 {f}")
    assert (disk / "data.bin").read_bytes() == b""
    # fallocate reserves space the same way.
    with open(f, "r+b") as fh:
        os.posix_fallocate(fh.fileno(), 0, 1 << 20)
    assert os.stat(disk / "data.bin").st_size == 1 << 20


def test_random_writes_with_pwrite(mount, client, run_dir, art, disk):
    f = art / "table.bin"
    data = bytearray(os.urandom(1 << 20))
    f.write_bytes(data)
    fd = os.open(f, os.O_RDWR)
    try:
        for off in (0, 4095, 500_000, (1 << 20) - 3):
            assert os.pwrite(fd, b"XYZ", off) == 3
            data[off:off + 3] = b"XYZ"
        assert os.pread(fd, 3, 500_000) == b"XYZ"
        # Beyond the end: a hole of zeros, also past 4 GiB.
        far = SPARSE_MB << 20 if mount.remote else 9 << 29
        os.pwrite(fd, b"tail", (1 << 20) + 100)
        os.pwrite(fd, b"far", far + 1)
    finally:
        os.close(fd)
    on_disk = disk / "table.bin"
    assert os.stat(on_disk).st_size == far + 4
    with open(on_disk, "rb") as fh:
        assert fh.read(1 << 20) == bytes(data)
        assert fh.read(104) == bytes(100) + b"tail"
        fh.seek(far)
        assert fh.read() == b"\0far"


def test_mmap_writes_reach_the_disk_and_reads_see_it(mount, client, run_dir, art, disk):
    f = art / "weights.f32"
    f.write_bytes(bytes(1 << 16))
    with open(f, "r+b") as fh:
        mm = mmap.mmap(fh.fileno(), 1 << 16)
        mm[100:104] = b"ABCD"
        mm[(1 << 16) - 4:] = b"last"
        mm.flush()
        assert (disk / "weights.f32").read_bytes()[100:104] == b"ABCD"
        mm[200:204] = b"EFGH"
        mm.close()
    on_disk = (disk / "weights.f32").read_bytes()
    assert on_disk[100:104] == b"ABCD" and on_disk[200:204] == b"EFGH"
    assert on_disk[-4:] == b"last" and len(on_disk) == 1 << 16
    # Written on disk (same size), read through a mapping of the mount: by
    # another program, so in the remote store once cache_ttl has passed.
    with open(disk / "weights.f32", "r+b") as fh:
        fh.seek(300)
        fh.write(b"disk")
    time.sleep(mount.staleness)
    with open(f, "rb") as fh:
        mm = mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ)
        try:
            assert mm[300:304] == b"disk" and mm[100:104] == b"ABCD"
        finally:
            mm.close()


# ---- links, special files, unlink while open, rm -r ---------------------


@pytest.mark.local_only(FILES_ONLY)
def test_symlinks_relative_absolute_and_dangling(mount, client, run_dir, art, disk, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("outside\n")
    os.symlink("first.txt", art / "rel")
    os.symlink(str(outside), art / "abs")
    os.symlink("does/not/exist", art / "dangling")
    (art / "sub").mkdir()
    os.symlink("../first.txt", art / "sub" / "up")
    for name, target in (("rel", "first.txt"), ("abs", str(outside)),
                         ("dangling", "does/not/exist"), ("sub/up", "../first.txt")):
        assert os.readlink(art / name) == target
        assert os.readlink(disk / name) == target
        assert stat.S_ISLNK(os.lstat(art / name).st_mode)
    assert (art / "rel").read_text() == "first\n"
    assert (art / "sub" / "up").read_text() == "first\n"
    assert (art / "abs").read_text() == "outside\n"
    assert not (art / "dangling").exists() and os.path.lexists(art / "dangling")
    assert sh(f"readlink {art}/rel").stdout == "first.txt\n"
    os.unlink(art / "dangling")
    assert not os.path.lexists(disk / "dangling")


@pytest.mark.local_only(FILES_ONLY)
def test_hard_links_within_the_folder(mount, client, run_dir, art, disk):
    (art / "sub").mkdir()
    os.link(art / "first.txt", art / "sub" / "twin")
    assert os.stat(art / "first.txt").st_nlink == 2
    assert os.stat(art / "sub" / "twin").st_nlink == 2
    a, b = os.stat(disk / "first.txt"), os.stat(disk / "sub" / "twin")
    assert (a.st_ino, a.st_nlink) == (b.st_ino, 2)
    with open(art / "sub" / "twin", "a") as f:
        f.write("second\n")
    assert (disk / "first.txt").read_text() == "first\nsecond\n"
    sh(f"ln {art}/first.txt {art}/third")
    assert os.stat(disk / "third").st_nlink == 3
    os.unlink(art / "first.txt")
    assert os.stat(disk / "sub" / "twin").st_nlink == 2
    assert (art / "third").read_text() == "first\nsecond\n"


@pytest.mark.local_only(FILES_ONLY)
def test_write_through_one_hard_link_reads_through_the_other(mount, client, run_dir, art,
                                                              disk):
    os.link(art / "first.txt", art / "twin")
    assert os.stat(art / "first.txt").st_size == 6     # as ls -l would
    with open(art / "twin", "a") as f:
        f.write("second\n")
    first = read_within_cache_window(art / "first.txt", "first\nsecond\n")
    assert first in ("first\n", "first\nsecond\n")   # cut at the cached size at worst


def test_artifact_changed_on_disk_reads_in_full_within_a_second(mount, client, run_dir, art,
                                                                disk):
    # ls -l, then another program rewrites the file in place, then cat.
    assert sh(f"ls -l {art}/first.txt").stdout.split()[4] == "6"
    (disk / "first.txt").write_text("rewritten by another program\n")
    read_within_cache_window(art / "first.txt", "rewritten by another program\n")


def test_hard_link_of_a_virtual_file_into_artifacts_is_refused(mount, client, run_dir, art):
    sh(f"echo 0.1 > {run_dir}/params/lr")
    rid = run_id_of(run_dir)
    before = db_snapshot(mount.db)
    expect_errno(errno.ENOTSUP, os.link, run_dir / "params" / "lr", art / "lr")
    assert db_snapshot(mount.db) == before
    assert not os.path.lexists(art / "lr")
    assert client.get_run(rid).data.params == {"lr": "0.1"}
    assert_refusal_logged(mount, run_dir / "params" / "lr", errno.ENOTSUP)


def test_hard_link_of_an_artifact_into_params_is_refused(mount, client, run_dir, art):
    sh(f"echo 0.1 > {run_dir}/params/lr")
    rid = run_id_of(run_dir)
    before = db_snapshot(mount.db)
    expect_errno(errno.ENOTSUP, os.link, art / "first.txt", run_dir / "params" / "x")
    assert db_snapshot(mount.db) == before
    assert client.get_run(rid).data.params == {"lr": "0.1"}
    assert_refusal_logged(mount, run_dir / "params" / "x", errno.ENOTSUP)


@pytest.mark.local_only(FILES_ONLY)
def test_fifo_in_artifacts_works_as_a_pipe(mount, client, run_dir, art, disk):
    os.mkfifo(art / "pipe", 0o600)
    assert stat.S_ISFIFO(os.stat(disk / "pipe").st_mode)
    assert stat.S_ISFIFO(os.stat(art / "pipe").st_mode)
    got = []
    t = threading.Thread(target=lambda: got.append((art / "pipe").read_bytes()))
    t.start()
    with open(art / "pipe", "wb") as w:
        w.write(b"through the pipe")
    t.join(10)
    assert got == [b"through the pipe"]


@pytest.mark.local_only(FILES_ONLY)
def test_mknod_of_a_device_in_artifacts(mount, client, run_dir, art, disk):
    try:
        os.mknod(disk.parent / "probe-dev", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        os.unlink(disk.parent / "probe-dev")
    except PermissionError:
        pytest.skip("this system does not allow mknod of devices")
    os.mknod(art / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    st = os.stat(disk / "null")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert os.stat(art / "null").st_rdev == os.makedev(1, 3)


def test_unlink_while_open_keeps_the_descriptor_working(mount, client, run_dir, art, disk):
    f = art / "scratch"
    fd = os.open(f, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"before ")
        os.unlink(f)
        assert not os.path.lexists(disk / "scratch")
        assert "scratch" not in os.listdir(art)
        os.write(fd, b"after")
        assert os.pread(fd, 100, 0) == b"before after"
        os.ftruncate(fd, 9)
        os.fsync(fd)
        assert os.pread(fd, 100, 0) == b"before af"
        # The name is free again at once.
        (art / "scratch").write_text("new")
        assert os.pread(fd, 100, 0) == b"before af"
    finally:
        os.close(fd)
    assert (disk / "scratch").read_text() == "new"


@pytest.mark.local_only(NO_MODES)
def test_attributes_of_an_unlinked_open_artifact(mount, client, run_dir, art, disk):
    import tempfile
    # What tempfile.TemporaryFile() does: create, unlink, use the descriptor.
    with tempfile.TemporaryFile(dir=art) as f:
        f.write(b"spooled")
        f.flush()
        assert os.fstat(f.fileno()).st_size == 7
        f.seek(0)
        assert f.read() == b"spooled"
    assert sorted(os.listdir(disk)) == ["first.txt"]
    fd = os.open(art / "scratch", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"data")
        os.unlink(art / "scratch")
        st = os.fstat(fd)
        assert (st.st_size, st.st_nlink) == (4, 0)
        os.fchmod(fd, 0o600)
        assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o600
        os.utime(fd, (1_000_000_000, 1_000_000_000))
        assert os.fstat(fd).st_mtime == 1_000_000_000
    finally:
        os.close(fd)


@pytest.mark.local_only(NO_MODES)
def test_files_removed_while_open_in_two_folders(mount, client, run_dir, art, disk):
    # libfuse hides a file removed while open under a name of its own in its
    # folder; neither file may show anywhere, nor take the other's place.
    os.mkdir(art / "a")
    os.mkdir(art / "b")
    fds = {}
    try:
        for folder in ("a", "b"):
            f = art / folder / "scratch"
            fds[folder] = os.open(f, os.O_RDWR | os.O_CREAT, 0o640)
            os.write(fds[folder], f"kept in {folder}".encode())
        for folder in ("a", "b"):
            os.unlink(art / folder / "scratch")
        for folder, fd in fds.items():
            want = f"kept in {folder}".encode()
            assert os.pread(fd, 100, 0) == want
            st = os.fstat(fd)
            assert (st.st_size, st.st_nlink, stat.S_IMODE(st.st_mode)) == (len(want), 0, 0o640)
            os.fchmod(fd, 0o600)
            assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o600
            os.write(fd, b"!")
            assert os.fstat(fd).st_size == len(want) + 1
        for folder in ("a", "b"):
            assert os.listdir(art / folder) == []
            assert os.listdir(disk / folder) == []
        assert sorted(os.listdir(art)) == ["a", "b", "first.txt"]
        assert sh(f"find {disk.parent} -name '.*'").stdout == ""
        assert list_artifacts_recursive(client, run_id_of(run_dir)) == {
            "first.txt": 6, "a": None, "b": None}
        # The names are free again at once.
        (art / "a" / "scratch").write_text("new")
        assert os.pread(fds["a"], 100, 0) == b"kept in a!"
    finally:
        for fd in fds.values():
            os.close(fd)
    assert tree(disk) == {"first.txt": ("file", b"first\n"), "a": ("dir",),
                          "a/scratch": ("file", b"new"), "b": ("dir",)}
    assert sh(f"find {disk.parent} -name '.*'").stdout == ""


@pytest.mark.local_only(NO_FOLDER_RENAME)
def test_a_removed_open_artifact_moves_with_its_folder(mount, client, run_dir, art, disk):
    os.mkdir(art / "d")
    fd = os.open(art / "d" / "scratch", os.O_RDWR | os.O_CREAT, 0o640)
    try:
        os.write(fd, b"kept")
        os.unlink(art / "d" / "scratch")
        os.rename(art / "d", art / "e")
        st = os.fstat(fd)
        assert (st.st_size, st.st_nlink, stat.S_IMODE(st.st_mode)) == (4, 0, 0o640)
        os.fchmod(fd, 0o600)
        assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o600
        os.write(fd, b"!")
        assert os.pread(fd, 100, 0) == b"kept!"
        assert os.listdir(art / "e") == []
    finally:
        os.close(fd)
    assert tree(disk) == {"first.txt": ("file", b"first\n"), "e": ("dir",)}
    assert sh(f"find {disk.parent} -name '.*'").stdout == ""


def test_rename_over_an_open_artifact_keeps_the_reader(mount, client, run_dir, art, disk):
    (art / "sub").mkdir()
    (art / "sub" / "model").write_text("old")
    reader = open(art / "sub" / "model")
    try:
        (art / "sub" / "new").write_text("new")
        os.rename(art / "sub" / "new", art / "sub" / "model")
        assert reader.read() == "old"
        assert os.fstat(reader.fileno()).st_nlink == 0
        assert os.listdir(disk / "sub") == ["model"]
    finally:
        reader.close()
    assert (disk / "sub" / "model").read_text() == "new"
    assert sh(f"find {disk.parent} -name '.*'").stdout == ""


@pytest.mark.local_only(NO_FOLDER_RENAME)
def test_an_open_artifact_renamed_then_removed(mount, client, run_dir, art, disk):
    fd = os.open(art / "one", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"data")
        os.mkdir(art / "d")
        os.rename(art / "one", art / "d" / "two")
        os.rename(art / "d", art / "e")
        os.unlink(art / "e" / "two")
        assert os.fstat(fd).st_size == 4 and os.pread(fd, 10, 0) == b"data"
        assert os.listdir(disk / "e") == []
    finally:
        os.close(fd)
    assert sorted(os.listdir(disk)) == ["e", "first.txt"]


def test_rm_r_of_a_subfolder(mount, client, run_dir, art, disk):
    for rel in ("ckpt/1/a", "ckpt/1/b", "ckpt/2/a", "keep/x"):
        (art / rel).parent.mkdir(parents=True, exist_ok=True)
        (art / rel).write_text(rel)
    # rmdir of a folder that is not empty: the disk's own answer.
    expect_errno(errno.ENOTEMPTY, os.rmdir, art / "ckpt")
    sh(f"rm -r {art}/ckpt")
    assert sorted(os.listdir(disk)) == ["first.txt", "keep"]
    assert sorted(os.listdir(art)) == ["first.txt", "keep"]
    assert list_artifacts_recursive(client, run_id_of(run_dir)) == {
        "first.txt": 6, "keep": None, "keep/x": 6}


def test_rmdir_of_the_artifacts_folder_is_refused(mount, client, run_dir, art, disk):
    os.unlink(art / "first.txt")
    before = db_snapshot(mount.db)
    expect_errno(errno.EPERM, os.rmdir, art)
    assert db_snapshot(mount.db) == before
    assert disk.is_dir() and art.is_dir()
    assert_refusal_logged(mount, art, errno.EPERM)


# ---- long paths, statfs --------------------------------------------------

SEG = "d" * 200


def deep_open(fd, depth, make):
    """Descends depth folders named SEG from the folder fd (closed); returns
    the bottom folder's descriptor.  make: mkdir each level first."""
    for _ in range(depth):
        if make:
            os.mkdir(SEG, dir_fd=fd)
        nfd = os.open(SEG, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = nfd
    return fd


@pytest.mark.local_only(SERVER_PATH_MAX)
def test_paths_longer_than_path_max_with_dir_fd(mount, client, run_dir, art, disk):
    depth = 4200 // (len(SEG) + 1)
    assert len(str(art)) + depth * (len(SEG) + 1) > 4096
    fd = deep_open(os.open(art, os.O_RDONLY | os.O_DIRECTORY), depth, make=True)
    try:
        wfd = os.open("leaf.txt", os.O_WRONLY | os.O_CREAT, 0o640, dir_fd=fd)
        os.write(wfd, b"at the bottom")
        os.close(wfd)
        os.mkdir("more", dir_fd=fd)
        assert sorted(os.listdir(fd)) == ["leaf.txt", "more"]
        st = os.stat("leaf.txt", dir_fd=fd)
        assert (st.st_size, stat.S_IMODE(st.st_mode)) == (13, 0o640)
        os.rename("leaf.txt", "renamed.txt", src_dir_fd=fd, dst_dir_fd=fd)
        rfd = os.open("renamed.txt", os.O_RDONLY, dir_fd=fd)
        assert os.read(rfd, 100) == b"at the bottom"
        os.close(rfd)
    finally:
        os.close(fd)
    # The same file on disk, reached the same way.
    fd = deep_open(os.open(disk, os.O_RDONLY | os.O_DIRECTORY), depth, make=False)
    try:
        assert sorted(os.listdir(fd)) == ["more", "renamed.txt"]
        rfd = os.open("renamed.txt", os.O_RDONLY, dir_fd=fd)
        assert os.read(rfd, 100) == b"at the bottom"
        os.close(rfd)
    finally:
        os.close(fd)
    # shutil.rmtree works by descriptors too: the whole tree goes.
    shutil.rmtree(art / SEG)
    assert sorted(os.listdir(disk)) == ["first.txt"]


@pytest.mark.local_only(SERVER_PATH_MAX)
def test_paths_longer_than_path_max_with_chdir(mount, client, run_dir, art, disk):
    depth = 4200 // (len(SEG) + 1)
    here = os.getcwd()
    try:
        os.chdir(art)
        for _ in range(depth):
            os.mkdir(SEG)
            os.chdir(SEG)
        with open("leaf.txt", "w") as f:
            f.write("chdir bottom\n")
        with open("leaf.txt", "a") as f:
            f.write("appended\n")
        assert os.listdir(".") == ["leaf.txt"]
        assert Path("leaf.txt").read_text() == "chdir bottom\nappended\n"
        r = subprocess.run(["cat", "leaf.txt"], capture_output=True, text=True)
        assert r.stdout == "chdir bottom\nappended\n"
    finally:
        os.chdir(here)
    fd = deep_open(os.open(disk, os.O_RDONLY | os.O_DIRECTORY), depth, make=False)
    try:
        rfd = os.open("leaf.txt", os.O_RDONLY, dir_fd=fd)
        assert os.read(rfd, 100) == b"chdir bottom\nappended\n"
        os.close(rfd)
    finally:
        os.close(fd)
    rid = run_id_of(run_dir)
    top = client.list_artifacts(rid)
    assert sorted(i.path for i in top) == ["d" * 200, "first.txt"]


def test_df_and_statfs_on_the_mount(mount, client, run_dir, art, disk):
    r = sh(f"df -P {mount.mnt}")
    last = r.stdout.splitlines()[-1].split()
    assert last[-1] == str(mount.mnt)
    a, b = os.statvfs(mount.mnt), os.statvfs(disk)
    # The artifacts' file system: its size and block size.
    assert (a.f_bsize, a.f_blocks, a.f_files) == (b.f_bsize, b.f_blocks, b.f_files)
    assert os.statvfs(art).f_blocks == b.f_blocks
    assert a.f_namemax >= 255
