"""Serving benchmark: `sluice serve` vs a minimal FastAPI endpoint vs MLflow's model server, one run, 127.0.0.1.

    .venv/bin/python benchmarks/serving.py                 # full run (~6 minutes on 2 cores)
    .venv/bin/python benchmarks/serving.py --quick         # shorter runs, fewer points

Setup (once): MLflow and FastAPI live in their own virtual environment, with Sluice
installed there without its dependencies so both peers load the very same servable::

    python3 -m venv benchmarks/.venv-mlflow
    benchmarks/.venv-mlflow/bin/pip install "mlflow>=3,<4" "fastapi>=0.110,<1" "uvicorn>=0.30,<1" torch==2.13.0 \
        duckdb safetensors sqlglot fsspec
    benchmarks/.venv-mlflow/bin/pip install --no-deps -e .

The model: the CTR example (13 numeric + 26 categorical raw inputs, 3 crosses) as an
embedding + MLP 256-128-1, trained once on 20,000 rows. Every server answers with the
same servable (transform graph + torch model) on the same JSON rows:

- sluice: ``sluice serve`` (TF Serving REST ``/v1/models/ctr:predict``), 1 and 2 workers,
  micro-batching on, access log off;
- fastapi: ``benchmarks/peers/serving_fastapi.py`` under uvicorn, 1 and 2 workers
  (``servable.predict_rows`` per request in FastAPI's thread pool), and ``fastapi-1t``: 1 worker
  with ``OMP_NUM_THREADS=1`` (torch's threads limited as ``sluice serve`` limits them);
- mlflow: the servable as a pyfunc (``benchmarks/peers/serving_mlflow.py``), served by
  ``mlflow models serve --env-manager local`` (``/invocations`` with ``dataframe_records``).

Before the servers, a ``ceiling`` line measures the servable without HTTP in one thread (the
model's forward alone on transformed tensors, and transform + forward, 64 and 256 rows a call):
what the CPU allows any server at all.

Load (``benchmarks/loadgen.py``, in this process, on the same 2 cores as the server):
closed loop with N clients for the maximum throughput (single-row and 64-row requests),
and open loop at fixed rates for latency under a given load. Every run is bounded in
time and in requests outstanding. Results: a table on stdout and benchmarks/.data/serving.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import closed_loop, open_loop  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PEER_VENV = REPO / "benchmarks" / ".venv-mlflow"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def build(work: Path, rows: int) -> tuple[Path, list[dict]]:
    """Train the CTR model as embedding + MLP 256-128-1 and push it; returns (version dir, raw eval rows)."""
    import pyarrow.parquet as pq

    from sluice.artifacts import ArtifactStore
    from sluice.metadata import MetadataStore
    from sluice.registry.servable import Servable
    from sluice.runner import LocalRunner
    from sluice.runner.pipeline_file import load_pipeline

    serving = work / "serving"
    pipeline, params, _ = load_pipeline(str(REPO / "examples" / "ctr" / "pipeline.py"),
                                        {"rows": str(rows), "epochs": "1", "model": "mlp",
                                         "serving_dir": str(serving)})
    pipeline.step("Trainer").params["hparams"] = {"hidden": [256, 128], "embedding_dim": 16}
    runner = LocalRunner(MetadataStore.open(str(work / "metadata.db")), ArtifactStore(str(work / "artifacts")),
                         progress=False, log_dir=str(work / "logs"))
    result = runner.run(pipeline, params)
    if result.status != "succeeded":
        raise SystemExit(f"building the model failed: {result.status}")
    version = serving / "ctr" / "1"
    if not result.output("Pusher", "pushed_model").properties.get("pushed"):  # the gate said no: push anyway
        from sluice.registry.push import write_version
        from sluice.registry.servable import Signature

        model, transform = result.output("Trainer", "model").path, result.output("Transform", "transform_graph").path
        write_version(str(serving), "ctr", 1, model, transform, Signature.build("ctr", model, transform))
    inputs = sorted(Servable.load(str(version)).signature.inputs)
    files = sorted(glob.glob(os.path.join(result.output("ExampleGen", "examples").path, "eval", "*.parquet")))
    table = pq.read_table(files).select(inputs).slice(0, 2048)
    clean = [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
             for r in table.to_pylist()]
    return version, clean


def bodies(rows: list[dict], per_request: int, key: str) -> list[tuple[bytes, int]]:
    out = []
    for i in range(0, len(rows) - per_request + 1, per_request):
        out.append((json.dumps({key: rows[i:i + per_request]}).encode(), per_request))
    return out[:256]


@contextlib.contextmanager
def server(name: str, cmd: list[str], port: int, health: str, env: dict[str, str], log_dir: Path, startup: float = 120):
    log = open(log_dir / f"{name}.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env}, cwd=str(REPO),
                            start_new_session=True)
    try:
        import httpx

        deadline = time.monotonic() + startup
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited: {(log_dir / f'{name}.log').read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://{HOST}:{port}{health}", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start within {startup} s")
            time.sleep(0.3)
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=10)
        log.close()


def measure(name: str, port: int, path: str, single: list, batch: list, args: argparse.Namespace) -> list[dict]:
    results = []

    def record(kind: str, stats) -> None:
        row = {"server": name, "request": kind, **stats.summary()}
        results.append(row)
        print(f"  {name:<14} {kind:<7} {row['mode']:<12} {row['req_per_s']:>9.1f} req/s {row['rows_per_s']:>10.1f} "
              f"rows/s  p50 {row['p50_ms']} ms  p99 {row['p99_ms']} ms  errors {row['errors']} "
              f"{row['error_kinds'] or ''}",
              flush=True)

    asyncio.run(closed_loop(HOST, port, path, single, clients=4, seconds=1.5))  # warm up
    for clients in args.clients:
        record("1 row", asyncio.run(closed_loop(HOST, port, path, single, clients=clients, seconds=args.seconds)))
    for clients in args.batch_clients:
        record("64 rows", asyncio.run(closed_loop(HOST, port, path, batch, clients=clients, seconds=args.seconds)))
    for rate in args.rates:
        record("1 row", asyncio.run(open_loop(HOST, port, path, single, rate=rate, seconds=args.seconds)))
    return results


def ceiling(version: Path, rows: list[dict], seconds: float = 2.0) -> list[dict]:
    """Rows/s of the servable without HTTP, in one thread: the model's forward alone on
    pre-transformed tensors, and transform + forward, at 64 and 256 rows a call. No server can
    beat the first on this machine's cores; it bounds the 64-row throughput target."""
    import torch

    from sluice.registry.servable import Servable
    from sluice.train import feature_arrays, predict

    torch.set_num_threads(1)
    servable = Servable.load(str(version))
    table = servable.table_of(servable.check_rows(rows))
    dense, sparse = feature_arrays(servable.graph.apply(table, outputs=[f.name for f in servable.features]),
                                   servable.features)
    out = []
    for size in (64, 256):
        starts = range(0, len(rows) - size + 1, size)
        for what, call in (("model forward", lambda i: predict(servable.model, dense[i:i + size],
                                                                   sparse[i:i + size], "binary")),
                           ("transform + forward", lambda i: servable.predict(table.slice(i, size)))):
            calls, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                for i in starts:
                    call(i)
                calls += len(starts)
            rate = calls * size / (time.perf_counter() - t0)
            print(f"  ceiling        {size:3d} rows  {what:20s} {rate:10,.0f} rows/s (1 thread, no HTTP)", flush=True)
            out.append({"server": "ceiling", "request": f"{size} rows", "what": what, "rows_per_s": round(rate)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000, help="training rows of the CTR model")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each load run")
    parser.add_argument("--quick", action="store_true", help="3 s runs, fewer points")
    parser.add_argument("--only", default="",
                        help="comma-separated servers (sluice,sluice-2w,fastapi,fastapi-2w,fastapi-1t,mlflow)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / ".data" / "serving.json"))
    args = parser.parse_args()
    args.clients, args.batch_clients, args.rates = [1, 16, 64], [4, 16], [100, 300, 500, 1000]
    if args.quick:
        args.seconds, args.clients, args.batch_clients, args.rates = 3.0, [1, 32], [8], [100, 300, 500]
    work = Path(tempfile.mkdtemp(prefix="sluice-serving-bench-"))
    try:
        print(f"building the CTR model (MLP 256-128-1, {args.rows:,} rows) in {work}", flush=True)
        version, rows = build(work, args.rows)
        tf_single, tf_batch = bodies(rows, 1, "instances"), bodies(rows, 64, "instances")
        ml_single, ml_batch = bodies(rows, 1, "dataframe_records"), bodies(rows, 64, "dataframe_records")
        only = {s for s in args.only.split(",") if s}
        py = str(PEER_VENV / "bin" / "python")
        have_peers = os.path.exists(PEER_VENV / "bin" / "mlflow") and (not only or bool(only - {"sluice", "sluice-2w"}))
        if not have_peers:
            print(f"!! {PEER_VENV} is missing: only sluice is measured (see the setup in this file's docstring)")
        servers = []
        for workers in (1, 2):
            port = free_port()
            servers.append((f"sluice-{workers}w" if workers > 1 else "sluice",
                            [sys.executable, "-m", "sluice.cli", "serve", "--model-dir", str(version.parent.parent),
                             "--port", str(port), "--workers", str(workers), "--no-access-log", "--poll-seconds", "0"],
                            port, "/healthz", {}, "/v1/models/ctr:predict", tf_single, tf_batch))
        if have_peers:
            for workers in (1, 2):
                port = free_port()
                servers.append((f"fastapi-{workers}w" if workers > 1 else "fastapi",
                                [py, "-m", "uvicorn", "benchmarks.peers.serving_fastapi:app", "--host", HOST,
                                 "--port", str(port), "--workers", str(workers), "--no-access-log",
                                 "--log-level", "warning"],
                                port, "/docs", {"SERVABLE_DIR": str(version)}, "/predict", tf_single, tf_batch))
            port = free_port()  # the same endpoint with torch limited to one thread per process
            servers.append(("fastapi-1t", [py, "-m", "uvicorn", "benchmarks.peers.serving_fastapi:app", "--host", HOST,
                                           "--port", str(port), "--no-access-log", "--log-level", "warning"],
                            port, "/docs", {"SERVABLE_DIR": str(version), "OMP_NUM_THREADS": "1"}, "/predict",
                            tf_single, tf_batch))
            model_dir = work / "mlflow-model"
            subprocess.run([py, str(REPO / "benchmarks" / "peers" / "serving_mlflow.py"), str(version), str(model_dir)],
                           check=True, cwd=str(REPO), capture_output=True)
            port = free_port()
            servers.append(("mlflow", [str(PEER_VENV / "bin" / "mlflow"), "models", "serve", "-m", str(model_dir),
                                       "--env-manager", "local", "-h", HOST, "-p", str(port)],
                            port, "/ping", {"PATH": f"{PEER_VENV / 'bin'}:{os.environ['PATH']}"}, "/invocations",
                            ml_single, ml_batch))
        results: list[dict] = ceiling(version, rows)
        for name, cmd, port, health, env, path, single, batch in servers:
            if only and name not in only:
                continue
            print(f"{name}: {' '.join(cmd[:6])} ...", flush=True)
            try:
                with server(name, cmd, port, health, env, work):
                    results += measure(name, port, path, single, batch, args)
            except RuntimeError as exc:  # a peer that does not start is reported, the others still run
                print(f"  {name} failed: {exc}", flush=True)
                results.append({"server": name, "failed": str(exc)[-500:]})
            os.makedirs(os.path.dirname(args.out), exist_ok=True)
            with open(args.out, "w") as f:
                json.dump({"when": time.strftime("%Y-%m-%d %H:%M:%S"), "cores": os.cpu_count(), "results": results},
                          f, indent=1)
        print(f"\nwrote {args.out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
