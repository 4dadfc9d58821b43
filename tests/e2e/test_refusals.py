"""mlflowfs(1), WRITING, the refusals: every write the tree refuses, each with its
one errno, nothing changed in the store (db_snapshot before == after) and a
daemon log line naming the path and the reason (helpers_writes.refused).

Covers params that cannot change, values over MLflow's limits (counted in
characters), values that are not UTF-8, malformed metric lines (a write is all
or nothing), bad statuses, read-only files, invalid and over-long keys, files
where only folders live, hard links, xattrs, chmod/chown, moves and deletes
MLflow cannot do, and a run that another MLflow client deleted while a file of
it was open.  Lists of cases of one rule share a mount: one snapshot before
and after the list, the errno and the log line checked for each case.
"""
import errno
import os
import subprocess
from pathlib import Path

import pytest

from conftest import expect_errno, run_id_of, sh, write_file
from helpers_writes import (append, assert_logged, listing, refused, settle, snapshot,
                            steps_values, write_only, write_then_close)
from helpers_writes import db_made_by_mlflow, mlflow_template_db  # noqa: F401 (fixtures)

APPEND = os.O_WRONLY | os.O_CREAT | os.O_APPEND


@pytest.fixture(autouse=True)
def _store_made_by_mlflow(db_made_by_mlflow):
    """Every test here mounts a database that MLflow made (see helpers_writes)."""


@pytest.fixture
def run_dir(run_dir):
    """conftest's run folder with a param lr=0.01, a tag k=v and two points of
    metric loss, all committed (the MLflow client sees them)."""
    sh(f"""set -e
        echo 0.01 > {run_dir}/params/lr
        echo v > {run_dir}/tags/k
        printf '0.5\\n0.4\\n' >> {run_dir}/metrics/loss""")
    settle()
    return run_dir


def rid(run_dir):
    return run_id_of(run_dir)


def each_refused(mount, code, cases, reason):
    """For each (path, fn, args...) of cases: fn(*args) fails with code and the
    daemon logs path with reason.  The store is unchanged after all of them."""
    before = snapshot(mount)
    for path, fn, *args in cases:
        start = len(mount.log())
        try:
            expect_errno(code, fn, *args)
        except BaseException as exc:
            raise AssertionError(f"case {path}: {exc}") from exc
        assert_logged(mount, start, Path(path), reason)
    assert snapshot(mount) == before, "the store changed on a refusal"


# ---- params: rw-once ----------------------------------------------------------


def test_param_with_a_different_value_fails_eperm_at_write(mount, run_dir, client):
    lr = run_dir / "params" / "lr"
    refused(mount, errno.EPERM, write_only, lr, "0.02\n", path=lr,
            reason=r"cannot change|immutable|was logged")
    # The shell's `>` sees the refusal too.
    assert sh(f"echo 0.02 > {lr}", check=False).returncode != 0
    assert client.get_run(rid(run_dir)).data.params == {"lr": "0.01"}
    assert lr.read_text() == "0.01\n"


def test_param_value_extending_the_logged_one_fails_eperm(mount, run_dir):
    # "0.01" is logged; "0.01x", written in two parts, starts like it but differs.
    lr = run_dir / "params" / "lr"
    refused(mount, errno.EPERM, write_then_close, lr, ["0.01", "x"], path=lr,
            reason=r"cannot change|was logged")


def test_append_to_a_logged_param_fails_eperm(mount, run_dir, client):
    lr = run_dir / "params" / "lr"
    refused(mount, errno.EPERM, write_only, lr, "0.01\n", flags=APPEND, path=lr,
            reason=r"cannot change|was logged")
    assert sh(f"echo 1 >> {lr}", check=False).returncode != 0
    assert client.get_run(rid(run_dir)).data.params == {"lr": "0.01"}


def test_param_over_6000_characters_fails_efbig(mount, run_dir):
    p = [run_dir / "params" / f"big{i}" for i in range(3)]
    # Characters, not bytes: 6001 two-byte characters are over, as 6001 ASCII ones.
    each_refused(mount, errno.EFBIG, [
        (p[0], write_file, p[0], "x" * 6001 + "\n"),
        (p[1], write_file, p[1], "é" * 6001 + "\n"),
        (p[2], write_file, p[2], "€" * 3000 + "x" * 3001),
    ], reason=r"6000")
    assert listing(run_dir / "params") == ["lr"]


def test_param_written_right_after_a_refused_value_is_logged(mount, run_dir, client):
    p = run_dir / "params" / "x"
    expect_errno(errno.EFBIG, write_file, p, "x" * 6001)
    write_file(p, "ok\n")
    assert client.get_run(rid(run_dir)).data.params["x"] == "ok"


def test_param_over_6000_characters_in_several_writes_logs_nothing(mount, run_dir, client):
    p = run_dir / "params" / "big"
    before = snapshot(mount)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, b"y" * 4000)
        expect_errno(errno.EFBIG, os.write, fd, b"y" * 2001)
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    assert "big" not in client.get_run(rid(run_dir)).data.params
    assert snapshot(mount) == before


NOT_UTF8 = [
    pytest.param(b"\xff\xfe\n", id="ff-fe"),
    pytest.param(b"ok \xc3\x28 no\n", id="bad-continuation"),
    pytest.param(b"\xc0\xaf\n", id="overlong-2-byte"),
    pytest.param(b"\xed\xa0\x80\n", id="surrogate"),
    pytest.param(b"\xe0\x80\xaf\n", id="overlong-3-byte"),
    pytest.param(b"\xf4\x90\x80\x80\n", id="above-10ffff"),
]


@pytest.mark.parametrize("data", NOT_UTF8)
def test_value_not_utf8_fails_einval(mount, run_dir, client, data):
    # Our choice (mlflowfs(1), ERRORS): MLflow values are text (its client decodes
    # them as UTF-8), so bytes that are not UTF-8 are refused with EINVAL.
    p, t = run_dir / "params" / "bin", run_dir / "tags" / "bin"
    each_refused(mount, errno.EINVAL, [(p, write_file, p, data), (t, write_file, t, data)],
                 reason=r"UTF-8")
    client.get_run(rid(run_dir))  # and MLflow can still read the run


def test_param_value_ending_in_a_cut_character_fails_einval_at_close(mount, run_dir):
    # The first byte of "é" may be completed by a later write; at close it
    # cannot be any more.
    p = run_dir / "params" / "cut"
    refused(mount, errno.EINVAL, write_then_close, p, [b"caf\xc3"], path=p, reason=r"UTF-8")


# ---- metrics: lines ---------------------------------------------------------------

# The last two are our choice (mlflowfs(1), Metric lines): a step must fit MLflow's
# 64-bit column, and a timestamp before the epoch is refused as MLflow does.
MALFORMED = ["abc", "0.5x", "1.2.3", "0x10", "1e", "nan(1)", "--1", "1 2 3 4", "1.5 2",
             "1,,2", ",1", "1,", "1 2 1.5", "1 2 abc", "1;2", "é", "1 2 -5",
             "99999999999999999999 1"]


def test_malformed_metric_line_fails_einval_and_logs_nothing(mount, run_dir, client):
    m = run_dir / "metrics" / "loss"
    each_refused(mount, errno.EINVAL, [(m, append, m, line + "\n") for line in MALFORMED],
                 reason=r"line|value|step")
    assert steps_values(client, rid(run_dir), "loss") == [(0, 0.5), (1, 0.4)]


def test_metric_write_is_all_or_nothing(mount, run_dir, client):
    m = run_dir / "metrics" / "acc"
    fd = os.open(m, APPEND, 0o644)
    try:
        os.write(fd, b"0.1\n")  # an earlier write: stays
        os.fsync(fd)
        each_refused(mount, errno.EINVAL, [
            (m, os.write, fd, b"0.2\n0.3\n0.4\nbad\n"),
            (m, os.write, fd, b"0.5\n0.6\n7 8 9 10\n0.7\n"),
        ], reason=r"line")
        # Our choice for the descriptor after a refused write (mlflowfs(1), ERRORS):
        # it stays usable, as a disk file's does after EFBIG or ENOSPC.
        os.write(fd, b"0.9\n")
    finally:
        os.close(fd)
    assert steps_values(client, rid(run_dir), "acc") == [(0, 0.1), (1, 0.9)]


def test_refused_metric_write_keeps_the_unfinished_line_before_it(mount, run_dir, client):
    m = run_dir / "metrics" / "acc"
    fd = os.open(m, APPEND, 0o644)
    try:
        os.write(fd, b"0.1\n0.2")  # "0.2" may continue
        refused(mount, errno.EINVAL, os.write, fd, b"5\nbad\n", path=m, reason=r"line")
        os.write(fd, b"5\n")  # completes "0.25"
    finally:
        os.close(fd)
    assert steps_values(client, rid(run_dir), "acc") == [(0, 0.1), (1, 0.25)]


# ---- tags -------------------------------------------------------------------------


def test_tag_over_8000_characters_fails_efbig(mount, run_dir, client):
    t = run_dir / "tags" / "k"
    each_refused(mount, errno.EFBIG, [(t, write_file, t, "t" * 8001),
                                      (t, write_file, t, "ü" * 8001 + "\n")], reason=r"8000")
    assert client.get_run(rid(run_dir)).data.tags["k"] == "v"


def test_append_making_a_tag_too_long_fails_efbig(mount, run_dir):
    t = run_dir / "tags" / "long"
    write_file(t, "a" * 7998 + "\n")
    # ">>" appends to the value: 7998 + "\n" + "bcd" is 8002 characters.
    refused(mount, errno.EFBIG, write_only, t, "bcd\n", flags=APPEND, path=t, reason=r"8000")


def test_experiment_tag_over_20000_characters_fails_efbig(mount, run_dir, client):
    # MLflow's limit for experiment tag values (MAX_EXPERIMENT_TAG_VAL_LENGTH).
    from mlflow.utils.validation import MAX_EXPERIMENT_TAG_VAL_LENGTH
    assert MAX_EXPERIMENT_TAG_VAL_LENGTH == 20000
    t = mount.exp("e") / ".tags" / "mlflow.note.content"
    refused(mount, errno.EFBIG, write_file, t, "d" * 20001, path=t, reason=r"20000")
    exp_id = client.get_run(rid(run_dir)).info.experiment_id
    assert "mlflow.note.content" not in client.get_experiment(exp_id).tags
    # At the limit, it is logged, and MLflow reads it back whole.
    write_file(t, "d" * 20000)
    assert client.get_experiment(exp_id).tags["mlflow.note.content"] == "d" * 20000


def _pwrite_far(path, offset):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.pwrite(fd, b"x", offset)
    finally:
        try:
            os.close(fd)
        except OSError:
            pass


def _daemon_rss_kib(mount):
    with open(f"/proc/{mount.proc.pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_write_far_past_the_end_of_a_value_fails_efbig_at_once(mount, run_dir):
    t = run_dir / "tags" / "far"
    refused(mount, errno.EFBIG, _pwrite_far, t, 1 << 33, path=t, reason=r"8000")
    # Refused before the gap was made: the daemon did not fill 8 GiB with zeros.
    assert _daemon_rss_kib(mount) < 200 * 1024
    assert "far" not in listing(run_dir / "tags")


# ---- status -----------------------------------------------------------------------


def test_status_garbage_fails_einval_and_changes_nothing(mount, run_dir, client):
    s = run_dir / "status"
    each_refused(mount, errno.EINVAL, [
        (s, write_file, s, text) for text in
        ["DONE\n", "FINISHED NOW\n", "FINISHEDD", "finish\n", "RUNNING\nFINISHED\n", "0\n",
         "DELETED\n"]], reason=r"status")
    info = client.get_run(rid(run_dir)).info
    assert (info.status, info.end_time) == ("RUNNING", None)
    assert s.read_text() == "RUNNING\n"


# ---- read-only files --------------------------------------------------------------


def test_write_to_read_only_file_fails_eacces(mount, run_dir):
    names = ["run_id", "run.json", "history/loss", "../.experiment.json",
             "../../../.mlflowfs/status", "../../../.mlflowfs/errors"]
    cases = []
    for name in names:
        path = Path(os.path.normpath(run_dir / name))
        for flags in (os.O_WRONLY | os.O_TRUNC, os.O_WRONLY | os.O_APPEND, os.O_RDWR,
                      os.O_WRONLY | os.O_CREAT):
            cases.append((path, os.open, path, flags))
    each_refused(mount, errno.EACCES, cases, reason=r"read-only")
    assert (run_dir / "run_id").read_text() == rid(run_dir) + "\n"


def test_truncate_of_read_only_file_fails_eacces(mount, run_dir):
    paths = [run_dir / "run_id", run_dir / "run.json", run_dir / "history" / "loss"]
    texts = [p.read_text() for p in paths]
    each_refused(mount, errno.EACCES, [(p, os.truncate, p, 0) for p in paths],
                 reason=r"read-only")
    assert [p.read_text() for p in paths] == texts


# ---- names ------------------------------------------------------------------------


def test_key_not_valid_in_mlflow_fails_einval(mount, run_dir):
    names = ["params/a*b", "params/x?", "metrics/a<b", "tags/q\"uote", "tags/semi;colon",
             "../.tags/pipe|d", "params/tab\tkey", "metrics/back\\slash", "params/star*"]
    paths = [Path(os.path.normpath(run_dir / n)) for n in names]
    each_refused(mount, errno.EINVAL, [(p, write_file, p, "1\n") for p in paths],
                 reason=r"character|letters")
    for p in paths:
        assert p.name not in listing(p.parent)


def test_rmdir_of_a_key_folder_with_a_folder_in_it_fails_enotempty(mount, run_dir):
    os.makedirs(run_dir / "tags" / "a" / "b")
    before = snapshot(mount)
    expect_errno(errno.ENOTEMPTY, os.rmdir, run_dir / "tags" / "a")
    assert listing(run_dir / "tags" / "a") == ["b"]
    os.rmdir(run_dir / "tags" / "a" / "b")
    os.rmdir(run_dir / "tags" / "a")
    assert "a" not in listing(run_dir / "tags")
    assert snapshot(mount) == before


def test_key_over_250_characters_fails_enametoolong(mount, run_dir):
    paths = [Path(os.path.normpath(run_dir / f / ("k" * 251)))
             for f in ("params", "metrics", "tags", "../.tags")]
    each_refused(mount, errno.ENAMETOOLONG, [(p, write_file, p, "1\n") for p in paths],
                 reason=r"250")


def test_key_over_250_characters_through_key_folders_fails_enametoolong(mount, run_dir):
    folder = run_dir / "metrics" / ("a" * 200)
    os.mkdir(folder)
    path = folder / ("b" * 50)  # key "a...a/b...b": 251 characters
    refused(mount, errno.ENAMETOOLONG, append, path, "1\n", path=path, reason=r"250")


def test_creating_a_file_where_only_folders_live_fails_eperm(mount, run_dir):
    # mlflowfs(1), ERRORS: EPERM (not allowed there); never ENOENT, the
    # folder exists.
    paths = [mount.mnt / "experiments" / "notes.txt", mount.exp("e") / "notes.txt",
             mount.mnt / "runs" / "x", run_dir / "notes.txt", mount.mnt / "notes.txt"]
    each_refused(mount, errno.EPERM, [(p, write_file, p, "x\n") for p in paths],
                 reason=r"only|can be made")


# ---- links, xattrs, permissions -----------------------------------------------------


def test_hard_link_of_virtual_file_fails_enotsup(mount, run_dir):
    pairs = [("params/lr", "params/lr2"), ("run_id", "run_id2"),
             ("metrics/loss", "artifacts/loss"), ("tags/k", "tags/k2"), ("status", "tags/s")]
    each_refused(mount, errno.ENOTSUP,
                 [(run_dir / a, os.link, run_dir / a, run_dir / b) for a, b in pairs],
                 reason=r"hard link")
    for _, b in pairs:
        assert not os.path.lexists(run_dir / b)


def test_hard_link_from_artifact_to_virtual_file_fails_enotsup(mount, run_dir):
    write_file(run_dir / "artifacts" / "f.txt", "data\n")
    dst = run_dir / "params" / "f"
    refused(mount, errno.ENOTSUP, os.link, run_dir / "artifacts" / "f.txt", dst, path=dst,
            reason=r"hard link")


def test_setxattr_on_virtual_file_fails_enotsup(mount, run_dir):
    paths = [run_dir / "params" / "lr", run_dir / "status", run_dir / "tags" / "k", run_dir]
    each_refused(mount, errno.ENOTSUP,
                 [(p, os.setxattr, p, "user.test", b"1") for p in paths],
                 reason=r"attribute|xattr")


def test_setxattr_on_virtual_file_fails_enotsup_and_changes_nothing(mount, run_dir):
    # The errno and the store, without the log line (see the xfail above).
    before = snapshot(mount)
    for p in (run_dir / "params" / "lr", run_dir / "status", run_dir):
        expect_errno(errno.ENOTSUP, os.setxattr, p, "user.test", b"1")
    assert snapshot(mount) == before


def test_chmod_of_virtual_file_fails_eperm(mount, run_dir):
    paths = [run_dir / "params" / "lr", run_dir / "metrics" / "loss", run_dir / "status",
             run_dir / "run_id", run_dir, run_dir / "params", mount.exp("e")]
    modes = [os.stat(p).st_mode for p in paths]
    each_refused(mount, errno.EPERM, [(p, os.chmod, p, 0o600) for p in paths],
                 reason=r"permission")
    assert [os.stat(p).st_mode for p in paths] == modes


def test_chmod_and_chown_to_what_a_virtual_file_has_succeed(mount, run_dir):
    before = snapshot(mount)
    for p in (run_dir / "params" / "lr", run_dir / "tags" / "k", run_dir, run_dir / "status"):
        st = os.stat(p)
        os.chmod(p, st.st_mode & 0o7777)
        os.chown(p, st.st_uid, st.st_gid)
        os.chown(p, -1, -1)
        assert os.stat(p).st_mode == st.st_mode
    assert snapshot(mount) == before


def test_chown_of_virtual_file_fails_eperm(mount, run_dir):
    paths = [run_dir / "params" / "lr", run_dir / "tags" / "k", run_dir, mount.exp("e")]
    each_refused(mount, errno.EPERM, [(p, os.chown, p, 12345, 12345) for p in paths],
                 reason=r"owner")
    assert all(os.stat(p).st_uid == os.getuid() for p in paths)


# ---- mkdir, rmdir -------------------------------------------------------------------


def test_mkdir_of_an_existing_run_fails_eexist(mount, run_dir, client):
    before = snapshot(mount)
    # The kernel answers this itself (it knows the name), so the daemon has
    # no log line to write.
    expect_errno(errno.EEXIST, os.mkdir, run_dir)
    expect_errno(errno.EEXIST, os.mkdir, mount.exp("e"))
    assert snapshot(mount) == before
    exp_id = client.get_run(rid(run_dir)).info.experiment_id
    assert len(client.search_runs([exp_id])) == 1


def test_mkdir_of_a_name_held_by_a_deleted_experiment_fails_eexist(mount, client):
    exp_id = client.create_experiment("old")
    client.delete_experiment(exp_id)
    path = mount.exp("old")
    refused(mount, errno.EEXIST, os.mkdir, path, path=path, reason=r"deleted")
    assert client.get_experiment(exp_id).lifecycle_stage == "deleted"


def test_rmdir_of_an_experiment_with_runs_fails_enotempty(mount, run_dir, client):
    e = mount.exp("e")
    refused(mount, errno.ENOTEMPTY, os.rmdir, e, path=e, reason=r"runs")
    exp_id = client.get_run(rid(run_dir)).info.experiment_id
    assert client.get_experiment(exp_id).lifecycle_stage == "active"
    assert listing(e) == [".experiment.json", ".models", ".plots", ".tags", "r"]


def test_rmdir_of_a_run_part_fails_eperm(mount, run_dir):
    paths = [run_dir / n for n in ("params", "metrics", "tags", "history", "artifacts")]
    each_refused(mount, errno.EPERM, [(p, os.rmdir, p) for p in paths],
                 reason=r"cannot be removed|stays")


def test_rm_r_of_a_run_fails_on_its_params_and_keeps_the_run(mount, run_dir, client):
    # mlflowfs(1), ARTIFACTS: `rm -r` on a run fails on its params.
    before = snapshot(mount)
    assert sh(f"rm -rf {run_dir}", check=False).returncode != 0
    run = client.get_run(rid(run_dir))
    assert run.info.lifecycle_stage == "active"
    assert run.data.params == {"lr": "0.01"}
    assert steps_values(client, rid(run_dir), "loss") == [(0, 0.5), (1, 0.4)]
    after = snapshot(mount)
    assert (after["params"], after["metrics"]) == (before["params"], before["metrics"])


# ---- mv, rm -------------------------------------------------------------------------


def test_moving_a_run_to_another_experiment_fails_eperm(mount, run_dir, client):
    os.mkdir(mount.exp("other"))
    dst = mount.run("other", "r")
    refused(mount, errno.EPERM, os.rename, run_dir, dst, path=run_dir,
            reason=r"another experiment")
    # mv(1) must not fall back to copying and deleting (as EXDEV would make it).
    before = snapshot(mount)
    r = subprocess.run(["mv", str(run_dir), str(dst)], capture_output=True, text=True)
    assert r.returncode != 0
    assert snapshot(mount) == before
    run = client.get_run(rid(run_dir))
    assert run.info.lifecycle_stage == "active"
    assert run.data.params == {"lr": "0.01"}
    assert listing(mount.exp("other")) == [".experiment.json", ".models", ".plots", ".tags"]
    assert client.search_runs([client.get_experiment_by_name("other").experiment_id]) == []


def test_mv_of_a_run_into_another_run_folder_fails(mount, run_dir):
    os.mkdir(mount.run("e", "r2"))
    before = snapshot(mount)
    r = subprocess.run(["mv", str(run_dir), str(mount.run("e", "r2"))], capture_output=True,
                       text=True)
    assert r.returncode != 0
    assert snapshot(mount) == before


def test_rename_onto_an_existing_run_or_experiment_is_refused(mount, run_dir, client):
    os.mkdir(mount.run("e", "r2"))
    os.mkdir(mount.exp("f"))
    before = snapshot(mount)
    for src, dst in ((run_dir, mount.run("e", "r2")), (mount.exp("e"), mount.exp("f"))):
        start = len(mount.log())
        # rename(2) onto a folder that is not empty: POSIX allows EEXIST or ENOTEMPTY.
        with pytest.raises(OSError) as info:
            os.rename(src, dst)
        assert info.value.errno in (errno.EEXIST, errno.ENOTEMPTY)
        assert_logged(mount, start, dst, r"exists")
    assert snapshot(mount) == before
    assert client.get_run(rid(run_dir)).info.run_name == "r"
    assert client.get_run(run_id_of(mount.run("e", "r2"))).info.run_name == "r2"


def test_renaming_params_and_metrics_fails_eperm(mount, run_dir):
    pairs = [("params/lr", "params/lr2"), ("metrics/loss", "metrics/l2"),
             ("params/lr", "tags/lr"), ("history/loss", "history/l2"),
             ("metrics/loss", "params/loss")]
    each_refused(mount, errno.EPERM,
                 [(run_dir / a, os.rename, run_dir / a, run_dir / b) for a, b in pairs],
                 reason=r"cannot rename|cannot be moved")
    assert sh(f"mv {run_dir}/params/lr {run_dir}/params/lr3", check=False).returncode != 0
    assert listing(run_dir / "params") == ["lr"]


def test_renaming_a_tag_onto_a_fuse_hidden_name_is_refused(mount, run_dir, client):
    # libfuse renames a file removed while open to a name of its own; a
    # rename to such a name is a removal only when libfuse makes it (the
    # exact form, of a file open in this mount).  Any other is an ordinary
    # rename, and a key with a leading '.' is written %2E.
    tags = run_dir / "tags"
    for name in (".fuse_hidden1", ".fuse_hidden0000000a00000001"):
        refused(mount, errno.EINVAL, os.rename, tags / "k", tags / name, path=tags / name,
                reason=r"%2E")
    with open(tags / "k") as f:
        refused(mount, errno.EINVAL, os.rename, tags / "k", tags / ".fuse_hidden_k",
                path=tags / ".fuse_hidden_k", reason=r"%2E")
        assert f.read() == "v\n"
    assert sh(f"mv {tags}/k {tags}/.fuse_hidden0000000b00000001", check=False).returncode != 0
    assert client.get_run(rid(run_dir)).data.tags["k"] == "v"
    assert "k" in listing(tags)


def test_removing_an_open_tag_deletes_it(mount, run_dir, client):
    with open(run_dir / "tags" / "k") as f:
        os.unlink(run_dir / "tags" / "k")
        assert f.read() == "v\n"
    assert "k" not in client.get_run(rid(run_dir)).data.tags
    assert "k" not in listing(run_dir / "tags")


def test_deleting_params_and_metrics_fails_eperm(mount, run_dir):
    paths = [run_dir / n for n in ("params/lr", "metrics/loss", "history/loss")]
    each_refused(mount, errno.EPERM, [(p, os.unlink, p) for p in paths],
                 reason=r"cannot delete")
    for p in paths:
        assert sh(f"rm -f {p}", check=False).returncode != 0
        assert os.path.exists(p)


def test_deleting_run_files_fails_eperm(mount, run_dir):
    paths = [run_dir / n for n in ("run_id", "status", "run.json")]
    each_refused(mount, errno.EPERM, [(p, os.unlink, p) for p in paths],
                 reason=r"cannot be removed")


# ---- a run deleted by another client --------------------------------------------------


def test_metric_write_to_a_run_deleted_meanwhile_fails_enoent(mount, run_dir, client):
    run_id = rid(run_dir)
    m = run_dir / "metrics" / "loss"
    fd = os.open(m, APPEND, 0o644)
    try:
        os.write(fd, b"0.3\n")
        os.fsync(fd)
        client.delete_run(run_id)
        if mount.remote:
            # Points go to the server in the background: the refusal comes
            # with the fsync (or close) that waits for them.
            os.write(fd, b"0.2\n")
            refused(mount, errno.ENOENT, os.fsync, fd, path=m, reason=r"deleted")
        else:
            refused(mount, errno.ENOENT, os.write, fd, b"0.2\n", path=m, reason=r"deleted")
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    assert steps_values(client, run_id, "loss") == [(0, 0.5), (1, 0.4), (2, 0.3)]


def test_unfinished_metric_line_of_a_run_deleted_meanwhile_fails_at_close(mount, run_dir,
                                                                          client):
    run_id = rid(run_dir)
    m = run_dir / "metrics" / "loss"
    fd = os.open(m, APPEND, 0o644)
    os.write(fd, b"0.3")  # no newline: logged at close
    client.delete_run(run_id)
    refused(mount, errno.ENOENT, os.close, fd, path=m, reason=r"deleted")
    assert steps_values(client, run_id, "loss") == [(0, 0.5), (1, 0.4)]


def test_param_of_a_run_deleted_meanwhile_fails_enoent(mount, run_dir, client):
    run_id = rid(run_dir)
    p = run_dir / "params" / "late"
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    client.delete_run(run_id)

    def write_and_close():
        try:
            os.write(fd, b"1\n")
        finally:
            os.close(fd)

    refused(mount, errno.ENOENT, write_and_close, path=p, reason=r"deleted")
    assert "late" not in client.get_run(run_id).data.params


def test_tag_of_a_run_deleted_meanwhile_fails_enoent(mount, run_dir, client):
    run_id = rid(run_dir)
    t = run_dir / "tags" / "k"
    fd = os.open(t, os.O_WRONLY | os.O_TRUNC, 0o644)
    client.delete_run(run_id)

    def write_and_close():
        try:
            os.write(fd, b"changed\n")
        finally:
            os.close(fd)

    refused(mount, errno.ENOENT, write_and_close, path=t, reason=r"deleted")
    assert client.get_run(run_id).data.tags["k"] == "v"
