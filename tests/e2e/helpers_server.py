"""A real MLflow tracking server for the tests: `mlflow server` on loopback
with a SQLite backend (or another backend store, such as the PostgreSQL
cluster below), from the test venv's pinned MLflow or another MLflow's
executable.  Started in a session of its own and stopped by its process
group, which holds it and the workers it spawned, and nothing else."""
import base64
import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """`mlflow server` on db (a SQLite file's path, or a backend store URI
    such as postgresql://...), logging into workdir; with artifacts
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
        backend = db if "://" in str(db) else f"sqlite:///{db}"
        self.cmd = [*exe, "server", "--backend-store-uri", str(backend),
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


def postgres_bin():
    """The folder of Debian's PostgreSQL server programs (initdb, pg_ctl),
    the newest major version installed; None when there is none."""
    found = glob.glob("/usr/lib/postgresql/*/bin/pg_ctl")
    if not found:
        return None
    return Path(max(found, key=lambda p: int(Path(p).parts[-3]))).parent


class Postgres:
    """A PostgreSQL cluster of its own on loopback, for a backend store: a
    database `mlflow` owned by a password user; uri is its URI, which names
    the psycopg2 driver (SQLAlchemy 2.1 takes a plain postgresql:// to mean
    psycopg 3).  A context manager, or start()/stop().

    The tests run as root, which PostgreSQL refuses, so it runs as the
    postgres system user; and since pytest's folders are readable by root
    alone, the cluster lives in a folder of its own in the system's temporary
    folder (its data, its unix socket and its log), removed by stop()."""

    USER, PASSWORD, DATABASE = "mlflow", "mlflowfs-pg-0123", "mlflow"

    def __init__(self, bindir, port=None):
        self.bin = Path(bindir)
        self.port = port or free_port()
        self.uri = (f"postgresql+psycopg2://{self.USER}:{self.PASSWORD}@127.0.0.1:{self.port}/"
                    f"{self.DATABASE}")
        self.folder = None

    def _as_postgres(self, *cmd, timeout=60):
        r = subprocess.run(["runuser", "-u", "postgres", "--", *map(str, cmd)],
                           cwd=self.folder, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise AssertionError(f"{cmd[0]} failed ({r.returncode}):\n{r.stdout}{r.stderr}\n"
                                 f"{self.log()}")
        return r

    def log(self):
        try:
            return (self.folder / "postgres.log").read_text(errors="replace")[-4000:]
        except (FileNotFoundError, TypeError):
            return ""

    def start(self):
        import psycopg2

        self.folder = Path(tempfile.mkdtemp(prefix="mlflowfs-pg-"))
        try:
            (self.folder / "pw").write_text(self.PASSWORD + "\n")
            shutil.chown(self.folder, "postgres", "postgres")
            shutil.chown(self.folder / "pw", "postgres", "postgres")
            self._as_postgres(self.bin / "initdb", "-D", self.folder / "data", "-U", self.USER,
                              f"--pwfile={self.folder / 'pw'}", "-A", "scram-sha-256",
                              "-E", "UTF8", "--locale=C", "--no-sync")
            # Only loopback, only this folder's socket: nothing else on the
            # machine meets this cluster, nor it theirs.  No fsync: what
            # outlives a power cut is not tested here, and MLflow's schema
            # migrations at the server's first start take seconds less.
            self._as_postgres(self.bin / "pg_ctl", "start", "-w", "-t", "60",
                              "-D", self.folder / "data", "-l", self.folder / "postgres.log",
                              "-o", f"-p {self.port} -k {self.folder} "
                                    "-c listen_addresses=127.0.0.1 -c fsync=off")
            con = psycopg2.connect(host="127.0.0.1", port=self.port, user=self.USER,
                                   password=self.PASSWORD, dbname="postgres")
            try:
                con.autocommit = True
                con.cursor().execute(f"CREATE DATABASE {self.DATABASE}")
            finally:
                con.close()
        except BaseException:
            self.stop()
            raise
        return self

    __enter__ = start

    def stop(self):
        """pg_ctl stop; the postmaster it started is killed if that fails."""
        if self.folder is None:
            return
        data = self.folder / "data"
        pidfile = data / "postmaster.pid"
        if pidfile.exists():
            try:
                subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin / "pg_ctl"),
                                "stop", "-w", "-t", "30", "-m", "fast", "-D", str(data)],
                               cwd=self.folder, capture_output=True, timeout=60)
            except subprocess.TimeoutExpired:
                pass
            if pidfile.exists():
                pid = int(pidfile.read_text().split()[0])
                with contextlib.suppress(OSError):
                    # Only while that process is still this cluster's postmaster.
                    if str(data).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                        os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None

    def __exit__(self, *exc):
        self.stop()
        return False


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

            def read_body(self):
                # A chunked body is passed on whole, with its length.
                if "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower():
                    length = int(self.headers.get("Content-Length") or 0)
                    return self.rfile.read(length) if length else None
                parts = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if not size:
                        break
                    parts.append(self.rfile.read(size))
                    if len(parts[-1]) != size or self.rfile.readline() != b"\r\n":
                        raise ValueError("cut short")
                while self.rfile.readline().strip():  # trailers
                    pass
                return b"".join(parts)

            def handle_any(self):
                import http.client

                try:
                    body = self.read_body()
                except ValueError:  # the client gave up in the middle
                    self.close_connection = True
                    return
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
