"""Helpers for test_tools.py and test_artifacts.py: where a run's artifacts
live on disk, polling MLflow for what the daemon commits in the background,
walking trees to compare them, and utimensat(2) with UTIME_NOW/UTIME_OMIT,
which Python's os.utime cannot express.
"""
import ctypes
import ctypes.util
import errno
import os
import stat
import time
from pathlib import Path

from conftest import run_id_of

# utimensat(2) special nanosecond values (linux/stat.h).
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
AT_FDCWD = -100


def eventually(check, timeout=3.0, interval=0.01):
    """Calls check() until it returns without AssertionError (or an MLflow
    'not found'); returns its value.  For what the daemon may commit
    in the background (at least every 20 ms), never for close()/fsync()."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval)


def run_info(client, run_dir):
    """The MLflow run behind a run folder of the mount (polls: a run made by
    mkdir is committed within the daemon's commit interval)."""
    rid = run_id_of(run_dir)
    return eventually(lambda: client.get_run(rid))


def artifact_dir(client, run_dir, mount):
    """The real folder on disk that the run's artifact_uri names: a path, or
    for the remote store the folder below the server's artifact destination
    (mount.artifacts) that its mlflow-artifacts: URI names."""
    uri = run_info(client, run_dir).info.artifact_uri
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    if uri.startswith("mlflow-artifacts:"):
        return Path(mount.artifacts) / uri[len("mlflow-artifacts:"):].lstrip("/")
    return Path(uri)


def list_artifacts_recursive(client, run_id, path=None):
    """{relative path: file_size or None for folders} as MLflow lists them."""
    out = {}
    for info in client.list_artifacts(run_id, path):
        if info.is_dir:
            out[info.path] = None
            out.update(list_artifacts_recursive(client, run_id, info.path))
        else:
            # MLflow's REST answers leave a size of 0 out: the client says None.
            out[info.path] = info.file_size or 0
    return out


def tree(root):
    """{relative path: description} of a folder, not following symlinks:
    ('dir',), ('file', bytes), ('link', target) or ('other', S_IFMT)."""
    root = Path(root)
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", p.read_bytes())
            else:
                out[rel] = ("other", stat.S_IFMT(st.st_mode))
    return out


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_Timespec),
                            ctypes.c_int]


def utimensat(path, atime, mtime, dir_fd=AT_FDCWD, flags=0):
    """utimensat(2); atime and mtime are (sec, nsec) pairs, nsec may be
    UTIME_NOW or UTIME_OMIT.  Raises OSError on failure."""
    times = (_Timespec * 2)(_Timespec(*atime), _Timespec(*mtime))
    if _libc.utimensat(dir_fd, os.fsencode(path), times, flags) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), str(path))


def mount_path(mount, path):
    """The path as the daemon sees it (and logs it): relative to the mount."""
    return "/" + str(Path(path).relative_to(mount.mnt))


def assert_refusal_logged(mount, path, code):
    """The daemon logged a refusal of path (mount-relative) with errno code
    and a reason: one line naming the path, the errno and some words why."""
    log = mount.log()
    p = mount_path(mount, path)
    # ENOTSUP and EOPNOTSUPP are one number on Linux: any of its names.
    names = [n for n in dir(errno) if n.startswith("E") and getattr(errno, n) == code]
    lines = [ln for ln in log.splitlines() if p in ln and any(n in ln for n in names)]
    assert lines, f"no log line names {p} and {'/'.join(names)}:\n{log}"
    why = [ln.split(p, 1)[1] for ln in lines]
    for n in names:
        why = [w.replace(n, "") for w in why]
    assert any(sum(c.isalpha() for c in w) >= 10 for w in why), \
        f"the log gives no reason for refusing {p}:\n{log}"
