"""A real MLflow tracking server for the tests: `mlflow server` on loopback
with a SQLite backend, from the test venv's pinned MLflow or another MLflow's
executable.  Started in a session of its own and stopped by its process
group, which holds it and the workers it spawned, and nothing else."""
import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """`mlflow server` on db (a path), logging into workdir; with artifacts
    (a folder) it serves them too (--serve-artifacts).  A context manager,
    or start()/stop(); a stopped server starts again on the same port."""

    def __init__(self, mlflow_exe, db, workdir, artifacts=None, port=None, args=(), env=None,
                 ready_timeout=90):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.logfile = self.workdir / "mlflow-server.log"
        exe = [mlflow_exe] if mlflow_exe else [sys.executable, "-m", "mlflow"]
        self.cmd = [*exe, "server", "--backend-store-uri", f"sqlite:///{db}",
                    "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        if artifacts:
            self.cmd += ["--serve-artifacts", "--artifacts-destination", str(artifacts)]
        self.cmd += list(args)
        self.ready_timeout = ready_timeout
        self.extra_env = dict(env or {})
        self.proc = None

    def log(self):
        try:
            return self.logfile.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""

    def start(self):
        env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true",
                   # No background job runners: nothing to outlive the server.
                   MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        env.pop("MLFLOW_TRACKING_URI", None)
        env.update(self.extra_env)
        self._log = open(self.logfile, "ab")
        self.proc = subprocess.Popen(self.cmd, cwd=self.workdir, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    __enter__ = start

    def _wait_ready(self):
        deadline = time.monotonic() + self.ready_timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"mlflow server exited {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"mlflow server not ready in {self.ready_timeout}s:\n"
                                     f"{self.log()}")
            time.sleep(0.25)

    def stop(self):
        if self.proc is None:
            return
        pgid = self.proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        self.proc = None
        self._log.close()

    def __exit__(self, *exc):
        self.stop()
        return False

    def client(self):
        import mlflow
        return mlflow.MlflowClient(tracking_uri=self.url)

    def get(self, path, **query):
        from urllib.parse import urlencode
        url = f"{self.url}{path}" + (f"?{urlencode(query)}" if query else "")
        with urllib.request.urlopen(url, timeout=30) as resp:
            return json.loads(resp.read())

    def post(self, path, body, auth=None):
        """POSTs JSON; auth is (user, password) for HTTP Basic."""
        headers = {"Content-Type": "application/json"}
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())
