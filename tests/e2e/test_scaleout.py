"""mlflowfs on a tracking server deployed for a team: `mlflow server` (the
pinned MLflow) with its runs in PostgreSQL and its artifacts served
(--serve-artifacts), mounted by two daemons as two machines of a cluster
would mount it.

Covers four writers spread over both mounts making runs in one new
experiment at once and appending metric points, the way training jobs
started together do: every run and every point reaches the server exactly
once, checked through MlflowClient, and the artifact each copies in reads
back whole on the other mount; and what one mount makes shows in the other
within its cache_ttl.
"""
import os
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import Mount, run_id_of, sh
from helpers_server import MlflowServer, Postgres, postgres_bin
from helpers_writes import append, eventually, steps_values

pytestmark = pytest.mark.slow  # a PostgreSQL cluster and a server of their own

TTL = 0.5  # the mounts' -o cache_ttl, below the 2 s default so that the bound tells
WRITERS, RUNS, POINTS, SHARED = 4, 3, 200, 25


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (tests/run-all.sh installs postgresql)")
    tmp = tmp_path_factory.mktemp("scaleout")
    with Postgres(bindir) as pg, \
            MlflowServer(None, pg.uri, tmp, artifacts=tmp / "artifacts") as s:
        yield s


@pytest.fixture
def nodes(tmp_path, server):
    """Two mounts of the server, each its own daemon."""
    made = []
    try:
        for name in ("node-a", "node-b"):
            made.append(Mount(tmp_path, name=name, uri=server.url,
                              args=["-o", f"cache_ttl={TTL}"]).start())
        yield made
    finally:
        for m in reversed(made):
            m.stop()


def status_number(m, field):
    status = (m.mnt / ".mlflowfs" / "status").read_text()
    return int(status.split(f"\n{field}: ")[1].split("\n")[0])


def value(writer, run, k):
    """The text of point k of a writer's run: distinct for every point."""
    return f"{writer}.{run}{k:03d}"


def test_writers_on_two_mounts_lose_and_double_nothing(nodes, server, tmp_path):
    exp = f"fleet-{uuid.uuid4().hex[:8]}"
    together = threading.Barrier(WRITERS, timeout=60)
    weights = {i: os.urandom(100_000 + i) for i in range(WRITERS)}
    for i, data in weights.items():
        (tmp_path / f"weights-{i}.bin").write_bytes(data)

    def writer(i):
        m = nodes[i % 2]
        # Every writer's first run also makes the experiment: all four at
        # once, from both machines, as jobs started together do.
        together.wait()
        os.makedirs(m.run(exp, f"w{i}-r0"))
        together.wait()
        # All four also log into one metric of writer 0's first run, whose
        # folder the other machine shows within its cache_ttl.
        eventually(m.run(exp, "w0-r0").is_dir, timeout=TTL + 1)
        shared = m.run(exp, "w0-r0") / "metrics" / "shared"
        for j in range(RUNS):
            run = m.run(exp, f"w{i}-r{j}")
            if j:
                os.mkdir(run)
            fd = os.open(run / "metrics" / "loss", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                for k in range(POINTS):
                    os.write(fd, f"{value(i, j, k)}\n".encode())
                    if j == 0 and k < SHARED:
                        # `echo STEP VALUE >> ...`: an open and close a line,
                        # the writers' steps apart.
                        append(shared, f"{i * 1000 + k} {value(i, 9, k)}\n")
            finally:
                os.close(fd)
        sh(f"cp {tmp_path}/weights-{i}.bin {run}/artifacts/weights.bin")

    with ThreadPoolExecutor(WRITERS) as pool:
        for f in [pool.submit(writer, i) for i in range(WRITERS)]:
            f.result()

    client = server.client()
    eid = client.get_experiment_by_name(exp).experiment_id
    runs = client.search_runs([eid], max_results=1000)
    names = Counter(r.info.run_name for r in runs)
    want = Counter(f"w{i}-r{j}" for i in range(WRITERS) for j in range(RUNS))
    assert names == want
    ids = {r.info.run_name: r.info.run_id for r in runs}
    for i in range(WRITERS):
        for j in range(RUNS):
            assert steps_values(client, ids[f"w{i}-r{j}"], "loss") == [
                (k, float(value(i, j, k))) for k in range(POINTS)], (i, j)
    assert steps_values(client, ids["w0-r0"], "shared") == sorted(
        (i * 1000 + k, float(value(i, 9, k))) for i in range(WRITERS) for k in range(SHARED))
    assert len(client.search_experiments(filter_string=f"name = '{exp}'")) == 1
    for i, data in weights.items():
        last = f"w{i}-r{RUNS - 1}"
        assert [(a.path, a.file_size) for a in client.list_artifacts(ids[last])] == [
            ("weights.bin", len(data))]
        # And on the other machine, through the server.
        other = nodes[(i + 1) % 2].run(exp, last) / "artifacts" / "weights.bin"
        eventually(lambda: other.exists() and other.read_bytes() == data, timeout=TTL + 1)

    # Each daemon sent its own writers' points once, and none is left over.
    sent = [status_number(m, "points_sent") for m in nodes]
    assert sum(sent) == WRITERS * (RUNS * POINTS + SHARED)
    assert all(n > 0 for n in sent)
    for m in nodes:
        assert status_number(m, "pending_points") == 0
        assert status_number(m, "points_failed") == 0


def test_each_mount_sees_the_others_runs_within_cache_ttl(nodes, server):
    exp = f"seen-{uuid.uuid4().hex[:8]}"
    os.mkdir(nodes[0].exp(exp))
    for writer, reader in (nodes, nodes[::-1]):
        name = f"from-{writer.mnt.name}"
        # The reader has the experiment's runs cached when the writer adds one.
        assert name not in os.listdir(reader.exp(exp))
        os.mkdir(writer.run(exp, name))
        append(writer.run(exp, name) / "metrics" / "acc", "0.5\n")
        t0 = time.monotonic()

        def seen():
            return (name in os.listdir(reader.exp(exp)) and
                    (reader.run(exp, name) / "metrics" / "acc").read_text() == "0.5\n")

        eventually(seen, timeout=10)
        took = time.monotonic() - t0
        # Stale for at most cache_ttl, and one round of requests to refill.
        assert took <= TTL + 0.5, f"{reader.mnt.name} saw {name} after {took:.2f} s"
        assert run_id_of(reader.run(exp, name)) == run_id_of(writer.run(exp, name))
