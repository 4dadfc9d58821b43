"""Permissions as a bind mount checks them (mlflowfs(1), PERMISSIONS), proven with
pjdfstest: its POSIX tests, run as root from inside a run's artifacts/ on a
mount made with -o allow_other, must pass at least as many as on bindfs
over an ordinary folder of the same machine - the bind mount FUSE can make,
so that what FUSE itself cannot do (bindfs fails it too) is not held
against mlflowfs.

pjdfstest is built from the vendored source by tests/run-all.sh, which
names its folder in $PJDFSTEST_DIR; bindfs comes from Debian.  The bindfs
count is measured once per machine, kernel and test set and kept beside
the pjdfstest build, so the sanitizer run of the suite reuses it.
"""
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import Mount, unmount

CATEGORIES = ("chmod", "ftruncate", "mkdir", "open", "rename", "rmdir", "symlink",
              "truncate", "unlink", "utimensat")

# Hard links are left out (tests/link/ is not among the categories).  These
# files of the categories make hard links on every file type to check link
# counts and inode numbers across names; the high-level FUSE API gives each
# name a node of its own, so no FUSE file system without use_ino (nor bindfs)
# can pass them, and the issue sets hard links aside:
HARD_LINK_FILES = {
    "rename/00.t",  # rename keeps nlink/inode: link(2) on each type, then rename
    "rename/23.t",  # "rename succeeds when to is multiply linked"
    "unlink/00.t",  # unlink of each type, the ctime checks through a second link
}

# Enough in parallel to overlap pjdfstest's many sleep(1) ctime checks; its
# names are random, so files do not meet.
JOBS = 3


def pjdfstest_dir():
    d = os.environ.get("PJDFSTEST_DIR")
    if not d or not (Path(d) / "pjdfstest").is_file():
        pytest.skip("pjdfstest is not built: run tests/run-all.sh (it sets PJDFSTEST_DIR)")
    return Path(d)


def pjd_files(pjd):
    files = []
    for cat in CATEGORIES:
        for t in sorted((pjd / "tests" / cat).glob("*.t")):
            rel = f"{cat}/{t.name}"
            if rel not in HARD_LINK_FILES:
                files.append(str(t))
    return files


def prove(cwd, files):
    """Runs the files with prove in cwd; returns (passed, total, failures,
    seconds).  failures: {file: failed test numbers, as prove lists them}."""
    start = time.monotonic()
    r = subprocess.run(["prove", "-j", str(JOBS), *files], cwd=cwd, capture_output=True,
                       text=True, timeout=1800)
    seconds = time.monotonic() - start
    m = re.search(r"^Files=\d+, Tests=(\d+),", r.stdout, re.M)
    assert m, f"prove said nothing countable:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    total = int(m.group(1))
    failures, failed = {}, 0
    for file, count, rest in re.findall(
            r"^(\S+\.t)\s+\(Wstat: \d+ Tests: \d+ Failed: (\d+)\)\n((?:\s+.*\n)*)",
            r.stdout, re.M):
        failed += int(count)
        listed = re.search(r"Failed tests?:\s+((?:.+\n)(?:\s+[\d, -]+\n)*)", rest)
        failures[file.rsplit("/tests/", 1)[-1]] = (" ".join(listed.group(1).split())
                                                    if listed else "")
    return total - failed, total, failures, seconds


def bindfs_baseline(pjd, files, tmp_path):
    """bindfs's count on this machine, measured once per kernel, bindfs
    version and test set, and kept in the pjdfstest folder."""
    version = subprocess.run(["bindfs", "--version"], capture_output=True,
                             text=True).stdout.strip()
    key = hashlib.sha256("\n".join([os.uname().release, version, str(JOBS), *files])
                         .encode()).hexdigest()[:16]
    cache = pjd / f"bindfs-{key}.json"
    if cache.is_file():
        kept = json.loads(cache.read_text())
        return kept["passed"], kept["total"], kept["failures"], kept["seconds"]
    src, mnt = tmp_path / "bindfs-src", tmp_path / "bindfs-mnt"
    src.mkdir()
    mnt.mkdir()
    subprocess.run(["bindfs", str(src), str(mnt)], check=True)
    try:
        result = prove(mnt, files)
    finally:
        unmount(mnt)
    fd, tmp = tempfile.mkstemp(dir=pjd)
    with os.fdopen(fd, "w") as f:
        json.dump({"passed": result[0], "total": result[1], "failures": result[2],
                   "seconds": round(result[3])}, f)
    os.replace(tmp, cache)
    return result


@pytest.mark.skipif(os.geteuid() != 0, reason="pjdfstest runs as root")
@pytest.mark.skipif(not shutil.which("prove"), reason="prove (perl) is not installed")
@pytest.mark.skipif(not shutil.which("bindfs"), reason="bindfs is not installed")
def test_pjdfstest_passes_at_least_what_bindfs_passes(tmp_path):
    pjd = pjdfstest_dir()
    files = pjd_files(pjd)
    m = Mount(tmp_path, args=["-o", "allow_other"]).start()
    try:
        # allow_other implies default_permissions: the kernel checks access.
        with open("/proc/self/mounts") as f:
            opts = next(ln.split()[3] for ln in f if ln.split()[1] == str(m.mnt))
        assert "default_permissions" in opts.split(","), opts
        art = m.run("e", "r") / "artifacts"
        os.makedirs(m.run("e", "r"))
        ours = prove(art, files)
    finally:
        m.stop()
    theirs = bindfs_baseline(pjd, files, tmp_path)
    print(f"\npjdfstest: mlflowfs passed {ours[0]} of {ours[1]} in {ours[3]:.0f} s; "
          f"bindfs {theirs[0]} of {theirs[1]} in {theirs[3]:.0f} s")
    for name, result in (("mlflowfs", ours), ("bindfs", theirs)):
        for file, tests in sorted(result[2].items()):
            print(f"  {name} failed {file}: {tests}")
    assert ours[1] == theirs[1], "the two runs ran different tests"
    assert ours[0] >= theirs[0], (
        f"mlflowfs passes {ours[0]} of {ours[1]} pjdfstest tests, bindfs {theirs[0]}: "
        f"{ours[2]}")
