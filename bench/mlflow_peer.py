"""mlflow_peer.py - the MLflow side of the mlflowfs benchmarks, run in the MLflow venv.

Each subcommand runs in a fresh process started by the drivers (benchlib.peer), does its
set-up untimed, times only the MLflow calls being compared, checks the result through
MLflow and prints one JSON object as its last line of output.

    template DB [EXPERIMENT RUN]   a database created by MLflow (optionally with a run)
    log_metric DB N                N x MlflowClient.log_metric on a fresh experiment/run
    log_metric_async DB N [SECS]   N x log_metric(synchronous=False), then flush_async_logging;
                                   SECS: MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS (default: unset)
    log_batch DB N BATCH           N points through MlflowClient.log_batch, BATCH per call
    populate DB NRUNS SEED         an experiment of NRUNS runs x (5 params, 5 metrics)
    search_runs DB EXPERIMENT_ID   time mlflow.search_runs and answer "which run has best acc"
    populate_runs DB NAME NRUNS SEED [PREFIX]   experiment NAME of NRUNS such runs (scale.py)
    populate_history DB NAME KEY=N...           one run with N points of each KEY (scale.py)
    metric_history DB RUN_ID KEY N [CALLS]   time MlflowClient.get_metric_history (CALLS
                                   times, default 1), expecting N points
    populate_server URL NAME NRUNS SEED [THREADS]   experiment NAME of NRUNS runs x (3 params,
                                   2 metrics) made through a tracking server (remote_read.py)
    search_server URL EXPERIMENT_ID client|pandas   time reading every run of the experiment
                                   and answering "which run has the lowest loss", twice
    log_artifact URL FILE          time MlflowClient.log_artifact of FILE into a new run
    download_artifact URL RUN_ID NAME DIR   time MlflowClient.download_artifacts into DIR
"""

import json
import os
import random
import sqlite3
import sys
import time
import uuid


def _remote(db):
    return db.startswith(("http://", "https://"))


def _uri(db):
    return db if _remote(db) else "sqlite:///" + os.path.abspath(db)


def _client(db):
    # The client on sqlite:/// puts artifacts under ./mlruns: keep them beside the database.
    uri = _uri(db)
    if not _remote(db):
        os.chdir(os.path.dirname(os.path.abspath(db)))
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _point_value(i):
    # The same points writer.c and sqlfloor.c produce.
    return float("%.6g" % (1.0 / (1.0 + i / 1000.0)))


def _now_ms():
    return int(time.time() * 1000)


def cmd_template(db, experiment=None, run=None):
    client = _client(db)
    client.search_experiments()  # creates the schema and the Default experiment
    out = {"db": db}
    if experiment:
        eid = client.create_experiment(experiment)
        r = client.create_run(eid, run_name=run or "r")
        out.update(experiment_id=eid, run_id=r.info.run_id)
    return out


def _fresh_run(client, name):
    # A server is shared by the rounds: each makes an experiment of its own.
    eid = client.create_experiment(f"{name}-{uuid.uuid4().hex[:8]}")
    return client.create_run(eid, run_name="r").info.run_id


def cmd_log_metric(db, n):
    n = int(n)
    client = _client(db)
    run_id = _fresh_run(client, "log_metric")
    values = [_point_value(i) for i in range(n)]
    client.log_metric(run_id, "warmup", 0.0)  # first call of a process pays one-time costs
    t0 = time.perf_counter()
    for i in range(n):
        client.log_metric(run_id, "loss", values[i], step=i)
    secs = time.perf_counter() - t0
    got = len(client.get_metric_history(run_id, "loss"))
    if got != n:
        raise SystemExit(f"log_metric: {got} points in the store, expected {n}")
    return {"n": n, "seconds": secs, "points_per_s": n / secs}


def cmd_log_metric_async(db, n, buffer_seconds=None):
    """MLflow's asynchronous logging: N x MlflowClient.log_metric(..., synchronous=False), then
    mlflow.flush_async_logging(), which returns when the queue's workers (10 threads) have
    sent every point and the store acknowledged them.  By default MLflow 3.17 sends each
    queued call as a log-batch request of its own; with buffer_seconds set
    (MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS) its loop waits that long, or until the flush,
    and merges what queued into requests of up to 1,000.  Timed from the first call to the
    flush's return; the loop alone (when the program could go on) is reported too."""
    if buffer_seconds is not None:
        os.environ["MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS"] = str(int(buffer_seconds))
    import mlflow
    from mlflow.tracking._tracking_service import utils

    n = int(n)
    client = _client(db)
    mlflow.set_tracking_uri(_uri(db))
    # The flush below must drain the queue the client's calls fill: one store object.
    if utils._get_store() is not client._tracking_client.store:
        raise SystemExit("log_metric_async: mlflow and the client use different stores")
    run_id = _fresh_run(client, "log_metric_async")
    values = [_point_value(i) for i in range(n)]
    client.log_metric(run_id, "warmup", 0.0, synchronous=False).wait()  # starts the workers
    t0 = time.perf_counter()
    ops = [client.log_metric(run_id, "loss", values[i], step=i, synchronous=False)
           for i in range(n)]
    loop = time.perf_counter() - t0
    mlflow.flush_async_logging()
    secs = time.perf_counter() - t0
    for op in ops:
        op.wait()  # raises what a failed batch raised
    got = len(client.get_metric_history(run_id, "loss"))
    if got != n:
        raise SystemExit(f"log_metric_async: {got} points in the store, expected {n}")
    return {"n": n, "seconds": secs, "loop_seconds": loop, "points_per_s": n / secs,
            "loop_points_per_s": n / loop}


def cmd_log_batch(db, n, batch):
    from mlflow.entities import Metric

    n, batch = int(n), int(batch)
    client = _client(db)
    run_id = _fresh_run(client, "log_batch")
    values = [_point_value(i) for i in range(n)]
    client.log_metric(run_id, "warmup", 0.0)
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        ts = _now_ms()
        metrics = [Metric("loss", values[i], ts, i) for i in range(start, min(n, start + batch))]
        client.log_batch(run_id, metrics=metrics)
    secs = time.perf_counter() - t0
    got = len(client.get_metric_history(run_id, "loss"))
    if got != n:
        raise SystemExit(f"log_batch: {got} points in the store, expected {n}")
    return {"n": n, "batch": batch, "seconds": secs, "points_per_s": n / secs,
            "run_id": run_id}


PARAMS = ("lr", "batch_size", "optimizer", "seed", "epochs")
METRICS = ("acc", "loss", "f1", "precision", "recall")


def _run_rows(eid, art, nruns, rng, prefix="run-"):
    """The rows MLflow's store writes for nruns runs made with MlflowClient.create_run +
    log_batch (5 params, 5 metrics) + set_terminated: (runs, tags, params, metrics)."""
    runs, tags, params, metrics = [], [], [], []
    base = _now_ms() - nruns * 1000
    for i in range(nruns):
        rid = uuid.UUID(int=rng.getrandbits(128), version=4).hex
        rname = "%s%05d" % (prefix, i)
        start = base + i * 1000
        end = start + 500
        runs.append((rid, rname, "UNKNOWN", "", "", "unknown", "FINISHED", start, end, "",
                     "active", f"{art}/{rid}/artifacts", int(eid), None))
        tags.append(("mlflow.runName", rname, rid))
        params += [
            ("lr", repr(rng.choice((0.1, 0.01, 0.001, 0.0001))), rid),
            ("batch_size", str(rng.choice((16, 32, 64, 128))), rid),
            ("optimizer", rng.choice(("sgd", "adam", "adamw")), rid),
            ("seed", str(i), rid),
            ("epochs", str(rng.randint(1, 50)), rid),
        ]
        for key in METRICS:
            metrics.append((key, rng.random(), end, rid, 0, 0))
    return runs, tags, params, metrics


def _insert_rows(db, runs, tags, params, metrics):
    """Inserts _run_rows() (and metric points: latest_metrics holds each (key, run)'s
    greatest (step, timestamp, value), as MLflow keeps it) in one transaction."""
    latest = {}
    for k, v, ts, rid, step, nan in metrics:
        old = latest.get((k, rid))
        if old is None or (step, ts, v) >= (old[3], old[2], old[1]):
            latest[(k, rid)] = (k, v, ts, step, nan, rid)
    con = sqlite3.connect(db)
    con.execute("PRAGMA foreign_keys = ON")
    with con:
        con.executemany("INSERT INTO runs (run_uuid, name, source_type, source_name,"
                        " entry_point_name, user_id, status, start_time, end_time,"
                        " source_version, lifecycle_stage, artifact_uri, experiment_id,"
                        " deleted_time) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", runs)
        con.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?,?,?)", tags)
        con.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?,?,?)", params)
        con.executemany("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan)"
                        " VALUES (?,?,?,?,?,?)", metrics)
        con.executemany("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan,"
                        " run_uuid) VALUES (?,?,?,?,?,?)", latest.values())
    con.close()


def cmd_populate(db, nruns, seed):
    """Writes the runs straight into MLflow's tables, row for row as MLflow's store writes
    them for MlflowClient.create_run + log_batch + set_terminated, then checks that MLflow
    sees all of them."""
    nruns, rng = int(nruns), random.Random(int(seed))
    client = _client(db)
    name = "read%d" % nruns
    eid = client.create_experiment(name)
    art = client.get_experiment(eid).artifact_location
    t0 = time.perf_counter()
    _insert_rows(db, *_run_rows(eid, art, nruns, rng))
    insert_s = time.perf_counter() - t0

    # MLflow must see every run, with its data, as if it had written them itself.
    found = client.search_runs([eid], max_results=50000)
    if len(found) != nruns:
        raise SystemExit(f"populate: MLflow sees {len(found)} runs, expected {nruns}")
    acc = {r.info.run_name: r.data.metrics["acc"] for r in found}
    for r in found[:: max(1, nruns // 50)]:
        if sorted(r.data.params) != sorted(PARAMS) or sorted(r.data.metrics) != sorted(METRICS):
            raise SystemExit(f"populate: run {r.info.run_id} lacks params or metrics")
        if r.info.status != "FINISHED" or r.data.tags.get("mlflow.runName") != r.info.run_name:
            raise SystemExit(f"populate: run {r.info.run_id} reads back wrong")
    best = max(acc, key=acc.get)
    if sum(1 for v in acc.values() if v == acc[best]) != 1:
        raise SystemExit("populate: the best acc is not unique; pick another seed")
    return {"experiment_id": eid, "experiment_name": name, "nruns": nruns,
            "insert_seconds": insert_s, "best": {"run": best, "acc": acc[best]},
            "pair": ["run-%05d" % 1, "run-%05d" % 2]}


def cmd_search_runs(db, experiment_id):
    uri = _uri(db)
    os.chdir(os.path.dirname(os.path.abspath(db)))
    import mlflow

    mlflow.set_tracking_uri(uri)
    t0 = time.perf_counter()
    df = mlflow.search_runs(experiment_ids=[experiment_id])
    first = time.perf_counter() - t0
    best = df.loc[df["metrics.acc"].idxmax()]
    t0 = time.perf_counter()
    df2 = mlflow.search_runs(experiment_ids=[experiment_id])
    second = time.perf_counter() - t0
    # For reference: the same question asked of the store, sorted there.
    t0 = time.perf_counter()
    top = mlflow.search_runs(experiment_ids=[experiment_id], order_by=["metrics.acc DESC"],
                             max_results=1)
    ordered = time.perf_counter() - t0
    if len(df2) != len(df) or top["run_id"].iloc[0] != best["run_id"]:
        raise SystemExit("search_runs: the calls disagree")
    return {"rows": len(df), "first_seconds": first, "second_seconds": second,
            "order_by_seconds": ordered,
            "best": {"run": best["tags.mlflow.runName"], "acc": float(best["metrics.acc"])}}


def cmd_populate_runs(db, name, nruns, seed, prefix="run-"):
    """Experiment name (made by MLflow) with nruns runs written as cmd_populate writes them;
    checks that MLflow sees every run and, for a sample, its data."""
    nruns, rng = int(nruns), random.Random(int(seed))
    client = _client(db)
    eid = client.create_experiment(name)
    art = client.get_experiment(eid).artifact_location
    t0 = time.perf_counter()
    rows = _run_rows(eid, art, nruns, rng, prefix)
    _insert_rows(db, *rows)
    insert_s = time.perf_counter() - t0
    found = client.search_runs([eid], max_results=50000)
    if len(found) != nruns:
        raise SystemExit(f"populate_runs: MLflow sees {len(found)} runs, expected {nruns}")
    for r in found[:: max(1, nruns // 20)]:
        if sorted(r.data.params) != sorted(PARAMS) or sorted(r.data.metrics) != sorted(METRICS):
            raise SystemExit(f"populate_runs: run {r.info.run_id} lacks params or metrics")
    return {"experiment_id": eid, "experiment_name": name, "nruns": nruns,
            "insert_seconds": insert_s,
            "runs": {r[1]: r[0] for r in rows[0][:: max(1, nruns // 4)]}}


def cmd_populate_history(db, name, *key_counts):
    """Experiment name with one run "h" (both made by MLflow) holding, for each KEY=N,
    N points of KEY written straight into the metrics table: point i has step i, value
    _point_value(i) and timestamp t0 + i ms, as MLflow's log_batch stores them."""
    client = _client(db)
    eid = client.create_experiment(name)
    rid = client.create_run(eid, run_name="h").info.run_id
    t0 = time.perf_counter()
    ts0 = _now_ms() - 10**7
    counts = {}
    for kc in key_counts:
        key, _, n = kc.partition("=")
        counts[key] = int(n)
    points = [(key, _point_value(i), ts0 + i, rid, i, 0)
              for key, n in counts.items() for i in range(n)]
    _insert_rows(db, [], [], [], points)
    insert_s = time.perf_counter() - t0
    run = client.get_run(rid)
    for key, n in counts.items():
        got = run.data.metrics.get(key)
        if got != _point_value(n - 1):
            raise SystemExit(f"populate_history: MLflow's latest {key} is {got}, "
                             f"expected {_point_value(n - 1)}")
    return {"experiment_id": eid, "experiment_name": name, "run_id": rid, "run_name": "h",
            "counts": counts, "ts0": ts0, "insert_seconds": insert_s}


def cmd_metric_history(db, run_id, key, n, calls=1):
    """Times MlflowClient.get_metric_history(run_id, key), calls times in one process (the
    2nd for the remote benchmark's warm case); the store's start-up is paid before, by an
    untimed get_run. Checks every point's step and value of every call."""
    n = int(n)
    client = _client(db)
    client.get_run(run_id)
    secs = []
    for _ in range(int(calls)):
        t0 = time.perf_counter()
        hist = client.get_metric_history(run_id, key)
        secs.append(time.perf_counter() - t0)
        if len(hist) != n:
            raise SystemExit(f"metric_history: {len(hist)} points, expected {n}")
        steps = sorted((m.step, m.value) for m in hist)
        bad = [i for i, (step, v) in enumerate(steps) if step != i or v != _point_value(i)]
        if bad:
            raise SystemExit(f"metric_history: point {bad[0]} reads {steps[bad[0]]}")
    return {"n": len(hist), "seconds": secs[0], "all_seconds": secs}


SERVER_PARAMS = ("lr", "batch_size", "optimizer")
SERVER_METRICS = ("loss", "acc")


def cmd_populate_server(url, name, nruns, seed, threads=8):
    """Experiment name of nruns runs "run-%05d" made through the tracking server at url, as a
    training script makes them: MlflowClient.create_run (start times one second apart, so
    they list in order), then one log_batch of 3 params and 2 metrics (one point each), from
    a pool of threads.  Checks that the server sees every run with its data; returns the
    run with the lowest loss (unique by construction)."""
    from concurrent.futures import ThreadPoolExecutor

    from mlflow.entities import Metric, Param

    nruns, rng = int(nruns), random.Random(int(seed))
    client = _client(url)
    eid = client.create_experiment(name)
    base = _now_ms() - nruns * 1000
    rows = []
    for i in range(nruns):
        params = [Param("lr", repr(rng.choice((0.1, 0.01, 0.001, 0.0001)))),
                  Param("batch_size", str(rng.choice((16, 32, 64, 128)))),
                  Param("optimizer", rng.choice(("sgd", "adam", "adamw")))]
        rows.append(("run-%05d" % i, base + i * 1000, params, rng.random(), rng.random()))
    best = min(rows, key=lambda r: r[3])
    if sum(1 for r in rows if r[3] == best[3]) != 1:
        raise SystemExit("populate_server: the lowest loss is not unique; pick another seed")

    def make(row):
        rname, start, params, loss, acc = row
        rid = client.create_run(eid, start_time=start, run_name=rname).info.run_id
        ts = start + 500
        client.log_batch(rid, metrics=[Metric("loss", loss, ts, 0), Metric("acc", acc, ts, 0)],
                         params=params)
        return rname, rid

    t0 = time.perf_counter()
    with ThreadPoolExecutor(int(threads)) as pool:
        ids = dict(pool.map(make, rows))
    secs = time.perf_counter() - t0
    found = client.search_runs([eid], max_results=50000)
    if len(found) != nruns:
        raise SystemExit(f"populate_server: the server has {len(found)} runs, expected {nruns}")
    for r in found[:: max(1, nruns // 50)]:
        if (sorted(r.data.params) != sorted(SERVER_PARAMS)
                or sorted(r.data.metrics) != sorted(SERVER_METRICS)):
            raise SystemExit(f"populate_server: run {r.info.run_id} lacks params or metrics")
    return {"experiment_id": eid, "experiment_name": name, "nruns": nruns, "seconds": secs,
            "best": {"run": best[0], "loss": best[3], "run_id": ids[best[0]]}}


def cmd_search_server(url, experiment_id, how):
    """Times reading every run of the experiment with its data, and picking the run with the
    lowest loss, twice in one process: how = "client", MlflowClient.search_runs page by page
    (1,000 a page, its default); "pandas", mlflow.search_runs (a DataFrame; 10,000 a page).
    The process's own start (imports, a first request) is paid before, untimed."""
    import mlflow

    client = _client(url)
    mlflow.set_tracking_uri(url)
    client.get_experiment(experiment_id)  # the first request of the process: untimed

    def client_pages():
        runs, token = [], None
        while True:
            page = client.search_runs([experiment_id], max_results=1000, page_token=token)
            runs += page
            token = page.token
            if not token:
                break
        best = min(runs, key=lambda r: r.data.metrics["loss"])
        return len(runs), best.info.run_name, best.data.metrics["loss"]

    def pandas_frame():
        df = mlflow.search_runs(experiment_ids=[experiment_id])
        best = df.loc[df["metrics.loss"].idxmin()]
        return len(df), best["tags.mlflow.runName"], float(best["metrics.loss"])

    fn = {"client": client_pages, "pandas": pandas_frame}[how]
    t0 = time.perf_counter()
    first = fn()
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    second = fn()
    second_s = time.perf_counter() - t0
    if first != second:
        raise SystemExit(f"search_server: the calls disagree: {first} and {second}")
    return {"rows": first[0], "first_seconds": first_s, "second_seconds": second_s,
            "best": {"run": first[1], "loss": first[2]}}


def cmd_log_artifact(url, path):
    """Times MlflowClient.log_artifact(run_id, path) into a new run of a new experiment (made
    untimed, as is the process's first request)."""
    client = _client(url)
    run_id = _fresh_run(client, "log_artifact")
    t0 = time.perf_counter()
    client.log_artifact(run_id, path)
    secs = time.perf_counter() - t0
    return {"run_id": run_id, "seconds": secs,
            "artifact_uri": client.get_run(run_id).info.artifact_uri}


def cmd_download_artifact(url, run_id, name, dst):
    """Times MlflowClient.download_artifacts(run_id, name, dst); the process's first request
    (get_run) is paid before, untimed."""
    client = _client(url)
    client.get_run(run_id)
    t0 = time.perf_counter()
    local = client.download_artifacts(run_id, name, dst)
    secs = time.perf_counter() - t0
    return {"path": local, "seconds": secs}


COMMANDS = {
    "template": cmd_template,
    "log_metric": cmd_log_metric,
    "log_metric_async": cmd_log_metric_async,
    "log_batch": cmd_log_batch,
    "populate": cmd_populate,
    "search_runs": cmd_search_runs,
    "populate_runs": cmd_populate_runs,
    "populate_history": cmd_populate_history,
    "metric_history": cmd_metric_history,
    "populate_server": cmd_populate_server,
    "search_server": cmd_search_server,
    "log_artifact": cmd_log_artifact,
    "download_artifact": cmd_download_artifact,
}

if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    # Every command takes the database (or a tracking server's URL) first; the commands
    # change directory.
    store = sys.argv[2] if _remote(sys.argv[2]) else os.path.abspath(sys.argv[2])
    print(json.dumps(COMMANDS[sys.argv[1]](store, *sys.argv[3:])))
