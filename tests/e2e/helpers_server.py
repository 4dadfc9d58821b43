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


class FaultProxy:
    """An HTTP proxy on loopback between mlflowfs and a real server that
    fails requests on purpose: fail(mode, n, only, every) makes n of the
    requests whose path contains only (if given), every every-th of them,
    answer 500 or 429 without reaching the server ("500", "429"), lose their
    connection before ("drop") or after the server acted ("drop-after"), or
    wait a second first ("slow").  Everything else passes through.
    counts[mode] says how many were hit."""

    HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
           "proxy-connection", "content-length"}

    def __init__(self, upstream):
        import http.server
        import threading

        self.upstream = upstream.split("//")[1]
        self.lock = threading.Lock()
        self.plan = []  # [mode, n left, only, every, matched]
        self.counts = {}
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def handle_any(self):
                import http.client

                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                mode = proxy.take(self.path)
                if mode in ("500", "429"):
                    data = b'{"error_code": "INTERNAL_ERROR", "message": "injected"}'
                    self.send_response(int(mode))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if mode == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if mode == "slow":
                    time.sleep(1.0)
                conn = http.client.HTTPConnection(proxy.upstream, timeout=60)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in proxy.HOP}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                if mode == "drop-after":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.send_response(resp.status)
                for k, v in resp.getheaders():
                    if k.lower() not in proxy.HOP:
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def fail(self, mode, n=1, only=None, every=1):
        with self.lock:
            self.plan.append([mode, n, only, every, 0])

    def clear(self):
        with self.lock:
            self.plan = []

    def take(self, path):
        with self.lock:
            for step in self.plan:
                mode, n, only, every, _ = step
                if n <= 0 or (only is not None and only not in path):
                    continue
                step[4] += 1
                if step[4] % every:
                    continue
                step[1] -= 1
                self.counts[mode] = self.counts.get(mode, 0) + 1
                return mode
        return None
