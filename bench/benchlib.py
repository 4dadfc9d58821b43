"""benchlib.py - plumbing shared by the mlflowfs benchmark drivers (ingest.py, read.py).

Finds the binaries, mounts and always unmounts mlflowfs, noopfs and passfs, starts and stops
the `mlflow server` of the remote benchmarks, runs configurations round-robin and prints min / median / max with ratios of medians. Standard library only:
everything that needs MLflow runs in a fresh process of the MLflow venv (mlflow_peer.py).
Run as a script, `python3 benchlib.py machine` prints the machine description.
"""

import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
MLFLOW_PY = os.environ.get("MLFLOW_PY", "/tmp/venv318/bin/python")
PEER = os.path.join(BENCH_DIR, "mlflow_peer.py")
# The developer build of this checkout: /work/main/build-dev/src/mlflowfs.
DEFAULT_MLFLOWFS = os.path.join(os.path.dirname(BENCH_DIR), "build-dev", "src", "mlflowfs")
MOUNT_TIMEOUT = 15.0
# Longest any one command may take (BENCH_TIMEOUT, seconds); a hung daemon must not hang us.
CMD_TIMEOUT = float(os.environ.get("BENCH_TIMEOUT", "300"))


def die(msg):
    print(f"bench: {msg}", file=sys.stderr)
    sys.exit(1)


def find_mlflowfs():
    """Returns the mlflowfs binary to test, or None (with the reason) when there is none."""
    env = os.environ.get("MLFLOWFS")
    if env == "none":
        return None, "MLFLOWFS=none: peers only"
    if env:
        path = env if os.sep in env else shutil.which(env)
        if path and os.access(path, os.X_OK):
            return os.path.abspath(path), None
        return None, f"MLFLOWFS='{env}' is not an executable"
    if os.access(DEFAULT_MLFLOWFS, os.X_OK):
        return DEFAULT_MLFLOWFS, None
    path = shutil.which("mlflowfs")
    if path:
        return path, None
    return None, f"no mlflowfs binary ({DEFAULT_MLFLOWFS} missing, none on PATH; set MLFLOWFS)"


def build_warning(binary):
    """A warning when binary is not a plain optimised build (sanitizers distort timings)."""
    try:
        libs = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
    except OSError:
        return None
    found = [lib for lib in ("libasan", "libubsan", "libtsan") if lib in libs]
    if found:
        return f"WARNING: '{binary}' links {', '.join(found)}: timings are not representative"
    return None


def helper(name):
    """Path of a benchmark helper built by build.sh (noopfs, passfs, writer, sqlfloor)."""
    path = os.path.join(BENCH_DIR, name)
    if not os.access(path, os.X_OK):
        die(f"'{path}' is missing: run bench/build.sh first")
    return path


def check_mlflow_py():
    if not os.access(MLFLOW_PY, os.X_OK):
        die(f"no MLflow python at '{MLFLOW_PY}' (set MLFLOW_PY)")


def install_signal_handlers():
    """Turn the first SIGTERM/SIGHUP into SystemExit so that finally blocks unmount; ignore
    the ones after it, so that the clean-up itself is not cut short."""

    def handler(signum, frame):
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)


class Workdir:
    """A fresh folder under /tmp (or /dev/shm), removed at exit unless KEEP=1."""

    def __init__(self, prefix, base="/tmp"):
        self.path = tempfile.mkdtemp(prefix=prefix, dir=base)

    def sub(self, *parts):
        return os.path.join(self.path, *parts)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if os.environ.get("KEEP") == "1":
            print(f"bench: kept {self.path}", file=sys.stderr)
        elif self.mounted_below():
            print(f"bench: not removing {self.path}: still mounted there", file=sys.stderr)
        else:
            shutil.rmtree(self.path, ignore_errors=True)
        return False

    def mounted_below(self):
        with open("/proc/self/mountinfo") as f:
            return any(line.split()[4].startswith(self.path + "/") for line in f)


def is_mounted(path):
    """From /proc/self/mountinfo, never from the mount itself: a stat() into a hung daemon
    blocks, and one into a dead daemon fails (which os.path.ismount takes for 'no')."""
    path = os.path.abspath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4]
            mnt = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), mnt)
            if mnt == path:
                return True
    return False


def exists_within(path, timeout):
    """os.path.exists(path), or False when it has not answered within timeout seconds."""
    answer = []
    t = threading.Thread(target=lambda: answer.append(os.path.exists(path)), daemon=True)
    t.start()
    t.join(timeout)
    return bool(answer and answer[0])


def mkdir_p(path):
    """mkdir -p inside a mount, in a child process with a time limit."""
    r = run_cmd(["mkdir", "-p", path], timeout=60, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"mkdir -p '{path}' failed: {r.stderr.strip()}")


def _log_tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


class Mount:
    """A FUSE daemon started in the foreground on an empty folder; unmounted on exit.

    argv must keep the daemon in the foreground (-f), so self.pid is the daemon's own pid.
    Ready when the mountpoint is mounted and `ready` (a path inside it) exists.
    """

    def __init__(self, argv, mnt, ready, log, env=None):
        self.argv, self.mnt, self.ready, self.log = argv, mnt, ready, log
        self.env = dict(os.environ, **(env or {}))
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid

    def __enter__(self):
        os.makedirs(self.mnt, exist_ok=True)
        if is_mounted(self.mnt):
            raise RuntimeError(f"'{self.mnt}' is already a mountpoint")
        with open(self.log, "ab") as logf:
            # Own session: a Ctrl-C reaches only us, and we unmount.
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=logf, env=self.env, start_new_session=True)
        deadline = time.monotonic() + MOUNT_TIMEOUT
        try:
            while not (is_mounted(self.mnt) and exists_within(self.ready, 5)):
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"'{self.argv[0]}' exited with status {self.proc.returncode} "
                        f"before mounting:\n{_log_tail(self.log)}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"'{self.ready}' did not appear within {MOUNT_TIMEOUT:.0f} s:\n"
                        f"{_log_tail(self.log)}"
                    )
                time.sleep(0.01)
        except BaseException:
            self.unmount()
            raise
        return self

    def _umount(self, tries):
        for _ in range(tries):
            if not is_mounted(self.mnt):
                return True
            try:
                subprocess.run(["fusermount3", "-u", self.mnt], capture_output=True, timeout=10)
            except subprocess.TimeoutExpired:
                pass
            if not is_mounted(self.mnt):
                return True
            time.sleep(0.1)  # busy: a process still inside
        return False

    def unmount(self):
        """Unmounts and reaps the daemon, whatever state it is in. A daemon that hangs keeps
        its callers blocked in the kernel (even SIGKILL waits for its answer): killing the
        daemon, our own child, ends its connection and frees them."""
        if self.proc is None:
            return
        if self._umount(30):
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                print(f"bench: daemon {self.proc.pid} did not exit after unmount, killing it",
                      file=sys.stderr)
                self.proc.kill()
        else:
            print(f"bench: cannot unmount '{self.mnt}' (busy or hung), killing daemon "
                  f"{self.proc.pid}", file=sys.stderr)
            self.proc.kill()
            self.proc.wait()
            if not self._umount(30):
                subprocess.run(["fusermount3", "-u", "-z", self.mnt])
        self.proc.wait()
        self.proc = None

    def __exit__(self, *exc):
        self.unmount()
        return False


def run_rounds(reps, configs, fail):
    """Runs every (name, fn) of configs once a round, for reps rounds, so
    that each configuration meets the machine's changing state alike.  A
    configuration that raises is handed to fail(name, message), and the
    rounds go on."""
    for rep in range(reps):
        print(f"round {rep + 1}/{reps}:", end="", flush=True)
        for name, fn in configs:
            print(f" [{name}]", end="", flush=True)
            try:
                fn()
            except Exception as e:  # reported by the caller; its ratios fail
                fail(name, str(e).strip())
        print(flush=True)


def mount_mlflowfs(binary, db, mnt, log):
    """Mount the database file db (absolute path) with mlflowfs in the foreground."""
    uri = "sqlite:///" + os.path.abspath(db)  # sqlite:////abs/path
    return Mount([binary, "-f", uri, mnt], mnt, os.path.join(mnt, "experiments"), log)


def mount_noopfs(mnt, log, ndir=10000, direct_io=False):
    env = {"NOOP_NDIR": str(ndir), "NOOP_DIO": "1" if direct_io else "0"}
    return Mount([helper("noopfs"), "-f", mnt], mnt, os.path.join(mnt, "d"), log, env)


def mount_passfs(source, mnt, log, ready, direct_io=False):
    """Serve the folder source through passfs; ready is a name inside it."""
    env = {"PASS_DIO": "1" if direct_io else "0"}
    return Mount([helper("passfs"), source, "-f", mnt], mnt, os.path.join(mnt, ready), log, env)


def mount_remote(binary, url, mnt, log, options=(), env=None):
    """Mount the tracking server at url with mlflowfs in the foreground; options are -o
    options ("cache_ttl=60", ...), env more environment (TMPDIR, ...)."""
    argv = [binary, "-f"] + [arg for o in options for arg in ("-o", o)] + [url, mnt]
    return Mount(argv, mnt, os.path.join(mnt, "experiments"), log, env)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """`mlflow server` of the MLflow venv (SQLite backend, --serve-artifacts, one worker) on
    loopback, its database and artifacts in the Workdir work; stopped by its process group."""

    def __init__(self, work):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = work.sub("server.log")
        self.argv = [MLFLOW_PY, "-m", "mlflow", "server", "--host", "127.0.0.1",
                     "--port", str(self.port), "--workers", "1",
                     "--backend-store-uri", "sqlite:///" + work.sub("server.db"),
                     "--serve-artifacts", "--artifacts-destination", work.sub("artifacts")]

    def __enter__(self):
        env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true",
                   MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(self.argv, stdout=f, stderr=f, env=env,
                                         start_new_session=True)
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2):
                    return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    die(f"mlflow server did not start; see {self.log}")
                time.sleep(0.2)

    def __exit__(self, *exc):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        return False


def proc_status(pid, fields=("VmRSS", "VmHWM")):
    """Returns {field: kB} from /proc/<pid>/status."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in fields:
                out[key] = int(rest.split()[0])
    return out


def run_cmd(argv, timeout=None, capture_output=False, **kw):
    """subprocess.run in its own process group, killed whole after timeout (CMD_TIMEOUT)
    seconds, or when we are interrupted; raises RuntimeError on a timeout."""
    timeout = timeout or CMD_TIMEOUT
    if capture_output:
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
    p = subprocess.Popen(argv, start_new_session=True, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    except BaseException as e:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # the group of our own child
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            print(f"bench: '{argv[0]}' is blocked in the kernel, presumably in a FUSE request;"
                  " the unmount will free it", file=sys.stderr)
        if isinstance(e, subprocess.TimeoutExpired):
            raise RuntimeError(
                f"'{' '.join(map(str, argv))}' did not finish within {timeout:.0f} s: killed"
            ) from None
        raise
    return subprocess.CompletedProcess(argv, p.returncode, out, err)


def peer(*args, timeout=900):
    """Runs mlflow_peer.py in a fresh process of the MLflow venv; returns its JSON answer."""
    r = run_cmd([MLFLOW_PY, PEER, *map(str, args)], timeout, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"mlflow_peer.py {args[0]} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_kv(argv, **kw):
    """Runs a helper that prints 'name key=value ...'; returns the values as floats/str."""
    r = run_cmd(argv, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({r.returncode}): {r.stderr.strip()}")
    out = {}
    for tok in r.stdout.split()[1:]:
        k, _, v = tok.partition("=")
        try:
            out[k] = float(v)
        except ValueError:
            out[k] = v
    return out


def timed(argv, **kw):
    """Wall time in seconds of one process (with its own start-up), and its result."""
    t0 = time.perf_counter()
    r = run_cmd(argv, **kw)
    return time.perf_counter() - t0, r


def point_value(i):
    """The value of point i, exactly as writer.c and sqlfloor.c produce it."""
    return float("%.6g" % (1.0 / (1.0 + i / 1000.0)))


class Results:
    """Samples per (configuration, measure), collected round-robin."""

    def __init__(self):
        self.samples = {}
        self.units = {}
        self.notes = {}

    def add(self, name, value, unit, note=None):
        self.samples.setdefault(name, []).append(value)
        self.units[name] = unit
        if note:
            self.notes[name] = note

    def has(self, name):
        return bool(self.samples.get(name))

    def median(self, name):
        return statistics.median(self.samples[name])

    def row(self, name):
        v = sorted(self.samples[name])
        return v[0], statistics.median(v), v[-1]

    def table(self, title, names):
        rows = [n for n in names if self.has(n)]
        if not rows:
            return
        print(f"\n{title}")
        width = max([len("configuration")] + [len(n) for n in rows])
        print(f"  {'configuration':<{width}}  {'min':>12} {'median':>12} {'max':>12}"
              "  unit   (runs)")
        for n in rows:
            lo, med, hi = self.row(n)
            note = f"  {self.notes[n]}" if n in self.notes else ""
            print(
                f"  {n:<{width}}  {fmt(lo):>12} {fmt(med):>12} {fmt(hi):>12}  "
                f"{self.units[n]:<6} ({len(self.samples[n])}){note}"
            )

    def to_json(self):
        return {n: {"unit": self.units[n], "samples": s} for n, s in self.samples.items()}


def fmt(x):
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def verdict_mark(ok):
    return "\u2714" if ok else "\u2718"  # ✔ ✘


def ratio_line(label, num, den, target=None, higher_is_better=True, results=None):
    """Prints num/den (medians of two measures); with a target, ✔ (met), ✘ or pending."""
    res = results
    have = res.has(num) and res.has(den)
    goal = ""
    if target is not None:
        goal = f"target {'>=' if higher_is_better else '<='} {target:g}"
    if not have:
        print(f"  {label:<44} {'pending':>10}   {goal}")
        return None
    r = res.median(num) / res.median(den)
    verdict = ""
    if target is not None:
        ok = r >= target if higher_is_better else r <= target
        verdict = verdict_mark(ok)
    # Rounds run side by side, so the ratio within each round is robust to load that comes
    # and goes between rounds (FUSE round trips change 2-3x with it): shown for reference.
    a, b = res.samples[num], res.samples[den]
    paired = ""
    if len(a) == len(b) > 1:
        paired = f"(per round: median {statistics.median(x / y for x, y in zip(a, b)):.3g})"
    tail = " ".join(part for part in (goal, verdict, paired) if part)
    print(f"  {label:<44} {r:>10.3g}   {tail}".rstrip())
    return r


def machine_description():
    def cmd(*argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True).stdout.strip()
        except OSError:
            return "?"

    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = 0
    with open("/proc/meminfo") as f:
        mem_kb = int(f.readline().split()[1])
    try:
        with open("/etc/os-release") as f:
            osname = dict(
                line.rstrip("\n").split("=", 1) for line in f if "=" in line
            ).get("PRETTY_NAME", "?").strip('"')
    except OSError:
        osname = "?"
    tmpfs = " ".join(cmd("findmnt", "-no", "FSTYPE,SOURCE", "--target", "/tmp").split())
    return (
        f"{osname}, kernel {platform.release()}, {os.cpu_count()} x {cpu}, "
        f"{mem_kb / 1048576:.0f} GiB RAM; /tmp on {tmpfs}; "
        f"libfuse {cmd('pkg-config', '--modversion', 'fuse3')}, "
        f"SQLite {cmd('pkg-config', '--modversion', 'sqlite3')}, "
        f"Python {platform.python_version()}; load average {os.getloadavg()[0]:.2f}"
    )


def start(title, reps):
    """Prints a benchmark's header and which daemon it measures; returns find_mlflowfs()'s
    (binary or None, reason)."""
    mlflowfs, reason = find_mlflowfs()
    header(title, reps)
    print(f"mlflowfs: {mlflowfs or 'pending (' + reason + ')'}")
    if mlflowfs and build_warning(mlflowfs):
        print(build_warning(mlflowfs))
    return mlflowfs, reason


def write_json(path, res, errors, **settings):
    """The raw samples of a run into path (--json): the run's settings, the
    machine, every result and every failure."""
    with open(path, "w") as f:
        json.dump({**settings, "machine": machine_description(), "results": res.to_json(),
                   "errors": errors}, f, indent=1)


def report_failures(errors, mlflowfs, reason):
    """The closing lines of a benchmark: why mlflowfs was not measured, the first failure of
    each configuration, and where its work went."""
    if not mlflowfs:
        print(f"\nmlflowfs: pending ({reason})")
    for name, err in errors.items():
        print(f"\nFAILED {name} (first failure): {err}")
    if errors and os.environ.get("KEEP") != "1":
        print("(the work folder is removed at exit: KEEP=1 keeps databases and logs)")


def header(title, reps):
    print(f"== {title}")
    print(f"machine: {machine_description()}")
    print(f"each configuration {reps}x, round-robin interleaved; min / median / max; "
          "ratios are median over median")


if __name__ == "__main__":
    if sys.argv[1:] == ["machine"]:
        print(machine_description())
    else:
        print("usage: benchlib.py machine", file=sys.stderr)
        sys.exit(2)
