"""`mlflowfs run` (mlflowfs(1), RUNNING A PROGRAM), on both stores: a
program wrapped as a new run, through an existing mount and through the
private mount the wrapper makes when nothing is mounted.  Every effect is
read back with the real MLflow client: params from the program's flags,
provenance tags, artifacts/stdout.log, scalar lines as metrics with their
steps, the run's end status and the exit status passed on; a program that
uses MLflow's client itself logs into the same run."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import SANITIZER_MARKS, have, mlflowfs_binary

# The wrapper's exit status when it could not make the run.
SETUP_FAILED = 125


def fuse_mounts():
    """The fuse.mlflowfs mountpoints of this system, as mountinfo shows them."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[0] == "fuse.mlflowfs":
                out.append(left.split()[4].replace("\\040", " "))
    return out


@pytest.fixture
def store_uri(backend, store, tmp_path):
    """The store a private mount opens: a new database of the test's own,
    or the session's server."""
    if backend == "local":
        return f"sqlite:///{tmp_path}/wrapped.db"
    return store.url


def client_of(uri):
    import mlflow
    return mlflow.MlflowClient(tracking_uri=uri)


def wrap(args, cwd, env=None, timeout=60, **kw):
    """Runs `mlflowfs run ARGS` with env added to ours; CompletedProcess
    with the passthrough output as bytes."""
    full = dict(os.environ)
    full.pop("MLFLOW_EXPERIMENT_NAME", None)
    full.pop("MLFLOW_TRACKING_URI", None)
    full.update(env or {})
    r = subprocess.run([mlflowfs_binary(), "run", *args], cwd=cwd, env=full,
                       capture_output=True, timeout=timeout, **kw)
    for mark in SANITIZER_MARKS:
        assert mark not in r.stderr.decode(errors="replace"), r.stderr.decode()
    return r


def only_run(client, exp_name):
    exp = client.get_experiment_by_name(exp_name)
    assert exp is not None, f"no experiment {exp_name!r}"
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1, runs
    return runs[0]


def history(client, run_id, key):
    return [(m.step, m.value) for m in client.get_metric_history(run_id, key)]


def artifact_bytes(uri, run_id, path, tmp_path):
    import mlflow
    dst = tmp_path / f"dl-{run_id}"
    dst.mkdir(exist_ok=True)
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path,
                                                dst_path=str(dst), tracking_uri=uri)
    return Path(local).read_bytes()


# A training program that prints scalars on both streams, each line
# flushed and a moment apart so their order is the order they were written.
TRAIN = r'''
import os, sys, time
def out(stream, text):
    stream.write(text)
    stream.flush()
    time.sleep(0.05)
out(sys.stdout, "lr: 0.1\n")
out(sys.stdout, "epoch 1 starting\n")
out(sys.stdout, "loss: 0.5\n")
out(sys.stderr, "loss: 0.4 (warning: noisy)\n")
out(sys.stdout, "acc=0.7\n")
out(sys.stdout, "step: 10\n")
out(sys.stdout, "acc: 0.8\n")
out(sys.stderr, "val/loss: 1.5e-1\n")
out(sys.stdout, "acc: 0.9 (step 20)\n")
out(sys.stdout, "x: 1 2\n")
out(sys.stdout, "tail without newline: 3")
open(os.environ["MARKER"], "w").write(os.environ["MLFLOWFS_RUN_DIR"])
sys.exit(int(os.environ.get("EXIT", "0")))
'''

TRAIN_STDOUT = (b"lr: 0.1\nepoch 1 starting\nloss: 0.5\nacc=0.7\nstep: 10\nacc: 0.8\n"
                b"acc: 0.9 (step 20)\nx: 1 2\ntail without newline: 3")
TRAIN_STDERR = b"loss: 0.4 (warning: noisy)\nval/loss: 1.5e-1\n"
TRAIN_LOG = (b"lr: 0.1\nepoch 1 starting\nloss: 0.5\nloss: 0.4 (warning: noisy)\nacc=0.7\n"
             b"step: 10\nacc: 0.8\nval/loss: 1.5e-1\nacc: 0.9 (step 20)\nx: 1 2\n"
             b"tail without newline: 3")


def git(repo, *args):
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True, env=env).stdout.strip()


def check_train_run(client, uri, run, tmp_path, status):
    run_id = run.info.run_id
    assert run.info.status == status
    assert run.data.params == {"lr": "0.1", "epochs": "3", "verbose": "true"}
    tags = run.data.tags
    assert tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.source.name"] == "train.py"
    assert tags["mlflow.user"]
    # lr is a flag: printed back, it is not a metric (Guild's rule)
    assert set(run.data.metrics) == {"loss", "acc", "val/loss"}
    assert history(client, run_id, "loss") == [(0, 0.5), (1, 0.4)]
    assert history(client, run_id, "acc") == [(0, 0.7), (10, 0.8), (20, 0.9)]
    assert history(client, run_id, "val/loss") == [(10, 0.15)]
    assert artifact_bytes(uri, run_id, "stdout.log", tmp_path) == TRAIN_LOG


def test_private_mount(backend, store_uri, tmp_path):
    """Nothing mounted: the wrapper mounts the store on a temporary folder,
    makes the run there, and leaves no mount and no folder behind."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "train.py").write_text(TRAIN)
    marker = tmp_path / "marker"
    r = wrap(["-e", "demo", "--", sys.executable, "train.py", "--lr", "0.1", "--epochs=3",
              "-v", "--verbose"], work,
             env={"MLFLOW_TRACKING_URI": store_uri, "MARKER": str(marker), "EXIT": "3"})
    assert r.returncode == 3, r.stderr
    assert r.stdout == TRAIN_STDOUT
    assert r.stderr == TRAIN_STDERR
    run_dir = marker.read_text()
    private = run_dir.split("/experiments/")[0]
    assert "mlflowfs-run-" in private
    assert private not in fuse_mounts()
    assert not os.path.exists(private)
    client = client_of(store_uri)
    run = only_run(client, "demo")
    assert run_dir.endswith("/experiments/demo/" + run.info.run_name)
    check_train_run(client, store_uri, run, tmp_path, "FAILED")


def test_existing_mount(mount, tmp_path):
    """A mount of the store is used (no second mount), found by its URI
    whether the store is named by the option or by MLFLOW_TRACKING_URI;
    MLFLOWFS_RUN_DIR is the run's folder in it, for shell scripts."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "train.py").write_text(TRAIN)
    marker = tmp_path / "marker"
    r = wrap(["--tracking-uri", mount.uri, "-e", "demo", "-n", "first", sys.executable,
              "train.py", "--lr", "0.1", "--epochs", "3", "--verbose"], work,
             env={"MARKER": str(marker)})
    assert r.returncode == 0, r.stderr
    assert r.stdout == TRAIN_STDOUT and r.stderr == TRAIN_STDERR
    assert marker.read_text() == str(mount.run("demo", "first"))
    assert (mount.run("demo", "first") / "status").read_text() == "FINISHED\n"
    client = client_of(mount.client_uri)
    check_train_run(client, mount.client_uri, only_run(client, "demo"), tmp_path,
                    "FINISHED")

    # a shell script appends to its run's files; found through the environment
    script = work / "job.sh"
    script.write_text('echo 0.25 >> "$MLFLOWFS_RUN_DIR/metrics/acc"\n'
                      'echo 0.5 >> "$MLFLOWFS_RUN_DIR/metrics/acc"\n'
                      'echo note > "$MLFLOWFS_RUN_DIR/tags/kind"\n'
                      'echo "$MLFLOW_EXPERIMENT_ID $MLFLOW_EXPERIMENT_NAME $MLFLOW_TRACKING_URI"'
                      ' > "$MLFLOWFS_RUN_DIR/tags/env"\n'
                      'test "$MLFLOW_RUN_ID" = "$(cat "$MLFLOWFS_RUN_DIR/run_id")"\n')
    r = wrap(["-e", "shell", "-n", "job", "sh", "job.sh"], work,
             env={"MLFLOW_TRACKING_URI": mount.uri})
    assert r.returncode == 0, r.stderr
    run = only_run(client, "shell")
    assert history(client, run.info.run_id, "acc") == [(0, 0.25), (1, 0.5)]
    assert run.data.tags["kind"] == "note"
    assert run.data.tags["env"] == f"{run.info.experiment_id} shell {mount.client_uri}"
    assert run.data.tags["mlflow.source.name"] == "job.sh"
    assert run.info.status == "FINISHED"


def test_names(mount, tmp_path):
    """The default name is MLflow's adjective-noun-NNN form; the experiment
    is $MLFLOW_EXPERIMENT_NAME, else Default; a second run of a taken name
    is made under the next free NAME-N."""
    env = {"MLFLOW_TRACKING_URI": mount.uri}
    for _ in range(2):
        assert wrap(["true"], tmp_path, env=env).returncode == 0
    for _ in range(2):
        r = wrap(["-n", "same", "true"], tmp_path,
                 env=dict(env, MLFLOW_EXPERIMENT_NAME="named"))
        assert r.returncode == 0, r.stderr
    assert b"a run named 'same' exists; this one is 'same-2'" in r.stderr
    client = client_of(mount.client_uri)
    default = client.get_experiment_by_name("Default")
    names = [x.info.run_name for x in client.search_runs([default.experiment_id])]
    assert len(names) == 2 and len(set(names)) == 2
    for n in names:
        adjective, noun, number = n.split("-")
        assert adjective.isalpha() and noun.isalpha() and len(number) == 3 and number.isdigit()
    named = client.get_experiment_by_name("named")
    assert sorted(x.info.run_name for x in client.search_runs([named.experiment_id])) == [
        "same", "same-2"]


CLIENT_PROGRAM = r'''
import os, sys
import mlflow
given = os.environ["MLFLOW_RUN_ID"]  # start_run takes it out of the environment
with mlflow.start_run() as run:
    assert run.info.run_id == given
    mlflow.log_metric("from_client", 1.5, step=7)
    mlflow.log_param("client_param", "yes")
print("printed: 2")
sys.exit(int(sys.argv[1]))
'''


@pytest.mark.parametrize("code,status", [(0, "FINISHED"), (4, "FAILED")])
def test_mlflow_client_logs_into_the_run(backend, store_uri, tmp_path, code, status):
    """MLFLOW_TRACKING_URI and MLFLOW_RUN_ID make MLflow's own client log
    into the wrapper's run; the end status is the wrapper's, from the exit
    status, even after the client's own end_run said FINISHED."""
    (tmp_path / "prog.py").write_text(CLIENT_PROGRAM)
    r = wrap(["-e", "cl", sys.executable, "prog.py", str(code)], tmp_path,
             env={"MLFLOW_TRACKING_URI": store_uri}, timeout=120)
    assert r.returncode == code, r.stderr
    client = client_of(store_uri)
    run = only_run(client, "cl")
    assert run.info.status == status
    assert history(client, run.info.run_id, "from_client") == [(7, 1.5)]
    assert history(client, run.info.run_id, "printed") == [(0, 2.0)]
    assert run.data.params["client_param"] == "yes"
    assert run.data.tags["mlflow.source.name"] == "prog.py"


SLEEPER = r'''
import os, signal, sys, time
open(os.environ["MARKER"] + ".pid", "w").write(str(os.getpid()))
open(os.environ["MARKER"], "w").write(os.environ["MLFLOWFS_RUN_DIR"])
print("ready: 1", flush=True)
time.sleep(60)
'''


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_forwarded_killed(backend, store_uri, tmp_path, sig):
    """A signal to the wrapper goes to the program; killed by it, the run
    ends KILLED and the wrapper exits 128+N, leaving no mount behind."""
    (tmp_path / "sleep.py").write_text(SLEEPER)
    marker = tmp_path / "marker"
    env = dict(os.environ, MLFLOW_TRACKING_URI=store_uri, MARKER=str(marker))
    env.pop("MLFLOW_EXPERIMENT_NAME", None)
    p = subprocess.Popen([mlflowfs_binary(), "run", "-e", "k", sys.executable, "sleep.py"],
                         cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"ready: 1\n"
        p.send_signal(sig)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    run_dir = marker.read_text()
    private = run_dir.split("/experiments/")[0]
    assert private not in fuse_mounts() and not os.path.exists(private)
    client = client_of(store_uri)
    run = only_run(client, "k")
    # Python ends an uncaught KeyboardInterrupt by SIGINT itself
    assert p.returncode == 128 + sig, err
    assert run.info.status == "KILLED"
    if sig == signal.SIGINT:
        assert b"KeyboardInterrupt" in err
    assert history(client, run.info.run_id, "ready") == [(0, 1.0)]


def test_killed_by_own_signal(mount, tmp_path):
    r = wrap(["-e", "k", "sh", "-c", "kill -KILL $$"], tmp_path,
             env={"MLFLOW_TRACKING_URI": mount.uri})
    assert r.returncode == 128 + signal.SIGKILL
    run = only_run(client_of(mount.client_uri), "k")
    assert run.info.status == "KILLED"


def test_store_unreachable_program_not_run(tmp_path):
    """A store that cannot be opened: the program is not started, exit
    status 125 and one line saying why, and no mount or folder left."""
    marker = tmp_path / "ran"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    (tmp_path / "garbage.db").write_text("not a database\n" * 100)
    for uri in ("http://127.0.0.1:9", "postgresql://x/y", f"sqlite:///{tmp_path}/garbage.db"):
        # the private mountpoint is made in $TMPDIR when $XDG_RUNTIME_DIR is not usable
        r = wrap(["touch", str(marker)], tmp_path,
                 env={"MLFLOW_TRACKING_URI": uri, "TMPDIR": str(tmp), "XDG_RUNTIME_DIR": ""})
        assert r.returncode == SETUP_FAILED, (uri, r.stderr)
        assert r.stderr.strip() and b"mlflowfs" in r.stderr
        assert not marker.exists()
        assert os.listdir(tmp) == []
        assert not any(m.startswith(str(tmp)) for m in fuse_mounts())
    # mounted privately, but the experiment cannot be made: unmounted again
    r = wrap(["-e", "x" * 1100, "touch", str(marker)], tmp_path,
             env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/ok.db", "TMPDIR": str(tmp),
                  "XDG_RUNTIME_DIR": ""})
    assert r.returncode == SETUP_FAILED and b"cannot create experiment" in r.stderr
    assert not marker.exists()
    assert os.listdir(tmp) == []
    assert not any(m.startswith(str(tmp)) for m in fuse_mounts())


def test_wrapper_killed_private_mount_goes(tmp_path):
    """Even a wrapper killed outright (SIGKILL, no chance to clean up)
    leaves no mount: the kernel tells its private daemon, which unmounts."""
    (tmp_path / "sleep.py").write_text(SLEEPER)
    marker = tmp_path / "marker"
    # the mountpoint, which nobody is left to remove, is made in the test's folder
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path}/k.db",
               MARKER=str(marker), TMPDIR=str(tmp_path), XDG_RUNTIME_DIR="")
    env.pop("MLFLOW_EXPERIMENT_NAME", None)
    p = subprocess.Popen([mlflowfs_binary(), "run", "-e", "k", sys.executable, "sleep.py"],
                         cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert p.stdout.readline() == b"ready: 1\n"
        private = marker.read_text().split("/experiments/")[0]
        assert private in fuse_mounts()
        p.kill()
        p.wait()
        deadline = time.monotonic() + 10
        while private in fuse_mounts() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert private not in fuse_mounts()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()
        # the program, orphaned, by the pid it wrote
        pid_file = Path(str(marker) + ".pid")
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_bad_usage_and_mismatched_mount(mount, tmp_path):
    """-m with a mount of another store than the one named is refused
    before anything is made; so are a missing program and unknown options."""
    marker = tmp_path / "ran"
    client = client_of(mount.client_uri)
    before = [e.name for e in client.search_experiments()]
    other = f"sqlite:///{tmp_path}/other.db" if not mount.remote else "http://127.0.0.1:9"
    r = wrap(["-m", str(mount.mnt), "--tracking-uri", other, "-e", "x", "touch", str(marker)],
             tmp_path)
    assert r.returncode == SETUP_FAILED and b"not the store asked for" in r.stderr
    r = wrap(["-m", str(tmp_path), "-e", "x", "touch", str(marker)], tmp_path)
    assert r.returncode == SETUP_FAILED and b"is not a mlflowfs mount" in r.stderr
    assert wrap(["-e", "x"], tmp_path).returncode == SETUP_FAILED
    # an experiment name no folder can hold
    r = wrap(["-m", str(mount.mnt), "-e", "x" * 1100, "touch", str(marker)], tmp_path)
    assert r.returncode == SETUP_FAILED
    assert b"cannot create experiment 'xxx" in r.stderr and b"too long" in r.stderr
    assert wrap(["--bogus", "touch", str(marker)], tmp_path).returncode == SETUP_FAILED
    assert not marker.exists()
    assert [e.name for e in client.search_experiments()] == before
    # -m alone takes the mount's own store; a relative -m is made absolute
    r = wrap(["-m", mount.mnt.name, "-e", "x", "sh", "-c",
              'cd / && echo "$MLFLOWFS_RUN_DIR" > "$0" && cat "$MLFLOWFS_RUN_DIR/run_id"',
              str(marker)], mount.mnt.parent, env={"MLFLOW_TRACKING_URI": ""})
    assert r.returncode == 0, r.stderr
    assert marker.read_text().startswith(str(mount.mnt) + "/experiments/x/")
    assert only_run(client, "x").info.status == "FINISHED"


def test_program_not_found(mount, tmp_path):
    r = wrap(["-e", "nf", "no-such-program-xyz"], tmp_path,
             env={"MLFLOW_TRACKING_URI": mount.uri})
    assert r.returncode == 127
    assert b"cannot run 'no-such-program-xyz'" in r.stderr
    assert only_run(client_of(mount.client_uri), "nf").info.status == "FAILED"


@pytest.mark.skipif(not have("git"), reason="git is not installed")
def test_git_provenance(mount, tmp_path):
    """The git tags describe the folder the program runs in."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "remote", "add", "origin", "https://example.com/t/r.git")
    (repo / "train.py").write_text("print('acc: 1')\n")
    git(repo, "add", "train.py")
    git(repo, "commit", "-q", "-m", "first")
    r = wrap(["-e", "g", sys.executable, "-u", "train.py"], repo,
             env={"MLFLOW_TRACKING_URI": mount.uri})
    assert r.returncode == 0, r.stderr
    tags = only_run(client_of(mount.client_uri), "g").data.tags
    assert tags["mlflow.source.name"] == "train.py"
    assert tags["mlflow.source.git.commit"] == git(repo, "rev-parse", "HEAD")
    assert tags["mlflow.source.git.branch"] == "main"
    assert tags["mlflow.source.git.repoURL"] == "https://example.com/t/r.git"


def test_output_memory_flat(mount, tmp_path):
    """64 MB of output pass through and into stdout.log with the wrapper's
    memory flat: it holds one chunk and one line, not the output."""
    prog = ("import sys\nline = b'x' * 1023 + b'\\n'\n"
            "for i in range(64 * 1024):\n    sys.stdout.buffer.write(line)\n")
    (tmp_path / "big.py").write_text(prog)
    r = subprocess.run(
        ["/usr/bin/time", "-f", "%M", mlflowfs_binary(), "run", "-e", "big", sys.executable,
         "big.py"], cwd=tmp_path, env=dict(os.environ, MLFLOW_TRACKING_URI=mount.uri),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300) if have(
        "/usr/bin/time") else None
    if r is None:
        pytest.skip("/usr/bin/time is not installed")
    assert r.returncode == 0, r.stderr
    max_rss_kb = int(r.stderr.split()[-1])
    assert max_rss_kb < 20 * 1024, max_rss_kb
    log = mount.run("big", only_run(client_of(mount.client_uri), "big").info.run_name)
    assert (log / "artifacts" / "stdout.log").stat().st_size == 64 * 1024 * 1024


def test_help(tmp_path):
    r = wrap(["--help"], tmp_path)
    assert r.returncode == 0
    assert r.stdout.startswith(b"usage: mlflowfs run [OPTIONS] [--] PROGRAM [ARGS...]\n")
    for word in (b"-e, --experiment", b"-n, --name", b"-m, --mount", b"--tracking-uri",
                 b"MLFLOWFS_RUN_DIR", b"125"):
        assert word in r.stdout, word
    r = subprocess.run([mlflowfs_binary(), "--help"], capture_output=True)
    assert b"mlflowfs run [-e EXPERIMENT] [-n NAME] [--] PROGRAM" in r.stdout


LIVE = r'''
import os, sys, time
print("acc: 0.5")
print("top@1: 0.7")
path = os.path.join(os.environ["MLFLOWFS_RUN_DIR"], "metrics", "acc")
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    try:
        if open(path).read() == "0.5\n":
            break
    except OSError:
        pass
    time.sleep(0.05)
else:
    sys.exit("the point did not arrive while the program ran")
print("live: 1")
'''


def test_points_arrive_while_running_and_bad_keys_skipped(mount, tmp_path):
    """A point is in the store as soon as its line is printed, not at the
    end; a flag or a scalar whose key MLflow refuses is skipped with one
    warning, and the rest of the run is logged."""
    (tmp_path / "live.py").write_text(LIVE)
    r = wrap(["-e", "live", sys.executable, "live.py", "--a@b", "1", "--ok", "2"], tmp_path,
             env={"MLFLOW_TRACKING_URI": mount.uri})
    assert r.returncode == 0, r.stderr
    err = r.stderr.decode()
    assert "param 'a@b' not logged: Invalid argument" in err, err
    assert err.count("metric 'top@1' not logged: Invalid argument") == 1, err
    client = client_of(mount.client_uri)
    run = only_run(client, "live")
    assert run.data.params == {"ok": "2"}
    assert run.data.metrics == {"acc": 0.5, "live": 1.0}
    assert run.info.status == "FINISHED"


TTY_PROGRAM = r'''
import os, sys
print("tty: %d %d" % (os.isatty(1), os.isatty(2)))
sys.stderr.write("err: 1\n")
for i in range(3000):
    print("line %d %s" % (i, "x" * 90))
print("acc: 0.5")
'''


def test_terminal_stays_a_terminal(mount, tmp_path):
    """Output to a terminal reaches the program as a terminal (a
    pseudo-terminal of the wrapper's, with no output processing), output to
    a pipe as a pipe; every byte is kept either way, up to the last one
    printed just before the program exits."""
    import pty
    (tmp_path / "tty.py").write_text(TTY_PROGRAM)
    master, slave = pty.openpty()
    env = dict(os.environ, MLFLOW_TRACKING_URI=mount.uri)
    env.pop("MLFLOW_EXPERIMENT_NAME", None)
    p = subprocess.Popen([mlflowfs_binary(), "run", "-e", "tty", sys.executable, "tty.py"],
                         cwd=tmp_path, env=env, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    seen = read_to_end(master)
    os.close(master)
    err = p.stderr.read()
    assert p.wait(timeout=60) == 0, err
    assert err == b"err: 1\n"
    expected = b"tty: 1 0\n" + b"".join(b"line %d %s\n" % (i, b"x" * 90)
                                        for i in range(3000)) + b"acc: 0.5\n"
    # our own test terminal turns \n into \r\n; the wrapper's does not
    assert seen.replace(b"\r\n", b"\n") == expected
    client = client_of(mount.client_uri)
    run = only_run(client, "tty")
    log = artifact_bytes(mount.client_uri, run.info.run_id, "stdout.log", tmp_path)
    assert sorted(log.splitlines(True)) == sorted(expected.splitlines(True) + [b"err: 1\n"])
    assert b"\r" not in log
    assert run.data.metrics["acc"] == 0.5
    r = wrap(["-e", "pipe", sys.executable, "tty.py"], tmp_path,
             env={"MLFLOW_TRACKING_URI": mount.uri})
    assert r.stdout.startswith(b"tty: 0 0\n")


def read_to_end(fd):
    """What a terminal's master side gives until its last writer is gone."""
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the last writer has closed the terminal
            return out
        if not chunk:
            return out
        out += chunk


def in_terminal(mount, cwd, args, wait_for, then, before=None):
    """Runs `mlflowfs run ARGS` on mount's store as the session leader of a
    new terminal (in its foreground), reads its output until wait_for shows,
    calls then(fd of the terminal's master side), reads the rest; returns
    the exit code and all the output.  before() runs in the child first."""
    import pty
    env = dict(os.environ, MLFLOW_TRACKING_URI=mount.uri)
    env.pop("MLFLOW_EXPERIMENT_NAME", None)
    argv = [mlflowfs_binary(), "run", *args]
    pid, fd = pty.fork()
    if pid == 0:
        try:
            if before:
                before()
            os.chdir(cwd)
            os.execve(argv[0], argv, env)
        finally:
            os._exit(127)
    out = b""
    try:
        while wait_for not in out:
            chunk = os.read(fd, 4096)
            assert chunk, out
            out += chunk
        then(fd)
        out += read_to_end(fd)
    finally:
        os.close(fd)
        _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), out


INTERRUPTED = r'''
import signal, sys, time
n = 0
def count(sig, frame):
    global n
    n += 1
signal.signal(signal.SIGINT, count)
print("ready: 1", flush=True)
deadline = time.monotonic() + 20
while n == 0 and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(1)
print("sigints: %d" % n, flush=True)
'''


def test_interrupt_typed_at_the_terminal_reaches_the_program_once(mount, tmp_path):
    """^C at the terminal signals the wrapper and the program (one process
    group); the wrapper does not send it again, and the program, which
    handles it, decides how the run ends."""
    (tmp_path / "intr.py").write_text(INTERRUPTED)
    code, out = in_terminal(mount, tmp_path, ["-e", "intr", sys.executable, "intr.py"],
                            b"ready: 1", lambda fd: os.write(fd, b"\x03"))
    assert code == 0, out
    assert b"sigints: 1" in out, out
    run = only_run(client_of(mount.client_uri), "intr")
    assert run.info.status == "FINISHED"
    assert run.data.metrics["sigints"] == 1


RESIZED = r"""
import os, signal, sys, time
got = []
signal.signal(signal.SIGWINCH, lambda *a: got.append(1))
print("size: %d %d" % tuple(os.get_terminal_size()), flush=True)
deadline = time.monotonic() + 20
while not got and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(0.3)
print("size: %d %d" % tuple(os.get_terminal_size()), flush=True)
"""


def test_window_size_follows_the_terminal(mount, tmp_path):
    """The program's pseudo-terminal has the wrapper's terminal's size,
    also after the terminal is resized."""
    import fcntl
    import struct
    import termios

    def size(fd, rows, cols):
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    (tmp_path / "size.py").write_text(RESIZED)
    code, out = in_terminal(mount, tmp_path, ["-e", "size", sys.executable, "size.py"],
                            b"size: 100 30", lambda fd: size(fd, 40, 120),
                            before=lambda: size(1, 30, 100))
    assert code == 0, out
    assert b"size: 120 40" in out, out


@pytest.mark.local_only("a key past the first 256 is opened and closed per point, and a "
                        "remote close waits for the server: the limits are the wrapper's")
def test_many_keys(mount, tmp_path):
    """More keys than the wrapper keeps open (256) or remembers (1024) are
    all logged, each point at its step."""
    prog = ("for rnd in range(2):\n"
            "    for i in range(1100):\n"
            "        print('k%d: %d' % (i, rnd))\n")
    (tmp_path / "keys.py").write_text(prog)
    r = wrap(["-e", "keys", sys.executable, "keys.py"], tmp_path,
             env={"MLFLOW_TRACKING_URI": mount.uri}, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stderr == b""
    client = client_of(mount.client_uri)
    run = only_run(client, "keys")
    assert run.data.metrics == {f"k{i}": 1.0 for i in range(1100)}
    for key in ("k0", "k300", "k1099"):
        assert history(client, run.info.run_id, key) == [(0, 0.0), (1, 1.0)]
