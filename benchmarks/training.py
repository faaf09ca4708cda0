"""Training data path and loop: Sluice vs the floor, hand-written torch, Petastorm, Ray Data, TorchDistributor.

    .venv/bin/python benchmarks/training.py                       # 300k CTR rows, medians of 3
    .venv/bin/python benchmarks/training.py --rows 1000000 --repeat 5
    .venv/bin/python benchmarks/training.py --only loader         # one group (loader, train, spark, peers,
    .venv/bin/python benchmarks/training.py --only petastorm,ray  #   petastorm, ray, cluster) or names
    .venv/bin/python benchmarks/training.py --only train/sluice_spark_local,train/torchdistributor_local
    .venv/bin/python benchmarks/training.py --report benchmarks/.data/training-1000000.json  # reprint a run

Data: the CTR example's generator (examples/ctr/data.py) and its preprocessing_fn, fitted with
sluice.transform on the local engine on the first 80% of rows; both splits are written as
model-ready Parquet (row groups of rows/20) once and cached under benchmarks/.data/ (git-ignored),
in a folder named after a hash of examples/ctr/pipeline.py (a changed preprocessing_fn gets new data).

Loader (3 epochs over the train split, median epoch; batch 4096; the same 13 + 44 feature
columns + label):
- sluice: ParquetBatchLoader, shuffle buffer 100k, 1 reader thread, prefetch 4;
- pyarrow floor: ParquetFile.iter_batches -> numpy stacking -> torch.from_numpy, NO shuffling
  (the least work any Parquet -> tensor path can do);
- torch DataLoader over a map-style Dataset on in-memory numpy arrays (rows fetched one by one
  and collated: the usual tabular recipe), shuffle=True, num_workers 0 and 2 (capped at 40
  batches: it is a rate);
- petastorm: ``make_batch_reader`` (thread pool of 2, row groups shuffled) + ``BatchedDataLoader``
  with a 100k shuffling queue (``petastorm_noshuffle``: no queue, row groups in order), in its own
  venv (benchmarks/peers/petastorm_loader.py);
- ray_data: ``ray.data.read_parquet`` + ``iter_torch_batches`` with a 100k local shuffle buffer on a
  local Ray instance of 2 CPUs (start-up excluded), in its own venv (benchmarks/peers/ray_loader.py).
Every peer stacks its columns into the same dense float32 / sparse int64 / label tensors.

Training (2 epochs, wide_and_deep hidden [128, 64], embeddings 16, Adam + SparseAdam lr 4e-3,
batch 4096 per worker, 1 torch thread per process):
- sluice fit, 1 worker: training samples/s from its per-epoch metrics (eval excluded);
- hand-written: the same model class and optimizers, a plain loop over tensors read into memory
  with pyarrow, shuffled with randperm each epoch (no per-epoch eval);
- sluice fit, 2 workers (DDP over gloo): global training samples/s; scaling = 2w / 1w;
- TorchDistributor, hand-written (benchmarks/peers/torchdistributor_train.py): 2 processes, DDP
  over gloo, each rank reads its row groups with pyarrow (no DistributedSampler), one torch thread,
  dense embedding gradients, Adam; ``local_mode=True`` on ``local[2]`` and ``local_mode=False``
  against a standalone cluster (a master + 2 workers of 1 core on 127.0.0.1, started before and
  stopped after the measurements by tests/integration/spark_standalone.py);
- sluice on Spark: ``sluice.train.spark_distributor.fit_on_spark`` with ``workers=2``, on
  ``local[2]`` and on the same standalone cluster (skipped, with the reason, when it does not import).
Final AUC on the eval split is reported for each; the Spark rows also give the wall time of the
whole script (Spark session start-up included) and of the training call alone.

Each measurement runs in a fresh subprocess (imports excluded); the table shows medians over
``--repeat`` runs, and each ratio twice: of the medians and, in brackets, the median of the
per-repeat ratios ("paired", which cancels some of the load drift). The machine may be shared:
the load average is printed with the results. A measurement that fails is reported as skipped
with its error, and the run goes on; results also go to benchmarks/.data/training-ROWS[-ONLY].json.

Peer venvs (created on first use unless ``--no-install``; git-ignored)::

    # Petastorm: pyarrow 14, numpy < 2; --no-deps dodges petastorm's setuptools pin
    python3 -m venv benchmarks/.venv-petastorm
    benchmarks/.venv-petastorm/bin/pip install "pyarrow==14.0.2" "numpy<2" torch==2.13.0 dill diskcache \
        fsspec future packaging "pandas<2.2" psutil six pyzmq
    benchmarks/.venv-petastorm/bin/pip install --no-deps petastorm==0.13.1
    # Ray Data (pydantic: iter_torch_batches imports ray.train, which needs it)
    python3 -m venv benchmarks/.venv-ray
    benchmarks/.venv-ray/bin/pip install "ray[data]==2.60.0" torch==2.13.0 pydantic

torch stays pinned to 2.13.0 (the CPU wheel); an unpinned torch pulls the CUDA build.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
DATA = os.path.join(REPO, "benchmarks", ".data")
PEERS_DIR = os.path.join(REPO, "benchmarks", "peers")
CLUSTER = "standalone"  # placeholder master of the cluster measurements, replaced by the cluster's URL
PEER_VENVS = {  # name: (venv folder, pip install steps, import check)
    "petastorm": (os.path.join(REPO, "benchmarks", ".venv-petastorm"),
                  [["pyarrow==14.0.2", "numpy<2", "torch==2.13.0", "dill", "diskcache", "fsspec", "future",
                    "packaging", "pandas<2.2", "psutil", "six", "pyzmq"], ["--no-deps", "petastorm==0.13.1"]],
                  "import petastorm.pytorch, torch"),
    "ray": (os.path.join(REPO, "benchmarks", ".venv-ray"), [["ray[data]==2.60.0", "torch==2.13.0", "pydantic"]],
            "import ray.data, ray.train, torch"),
}
BATCH = 4096
HPARAMS = {"hidden": [128, 64], "embedding_dim": 16}
PASSES = 3  # loader epochs per measurement; the median pass counts (the first pays page faults)


def prepare(rows: int, seed: int = 0) -> str:
    """Transformed CTR Parquet for ``rows`` rows (cached); returns its directory."""
    with open(os.path.join(REPO, "examples", "ctr", "pipeline.py"), "rb") as fh:  # a new preprocessing_fn: new data
        version = hashlib.sha1(fh.read()).hexdigest()[:8]
    out = os.path.join(DATA, f"train-ctr-{rows}-seed{seed}-{version}")
    if os.path.exists(os.path.join(out, "_COMPLETE")):
        return out
    import pyarrow as pa
    import pyarrow.parquet as pq

    import sluice.transform as st
    from examples.ctr import data
    from examples.ctr.pipeline import preprocessing_fn
    from sluice.engine import get_engine

    os.makedirs(out, exist_ok=True)
    raw = pa.Table.from_batches(list(data.generate(rows, seed=seed)))
    cut = int(rows * 0.8)
    raw_train = os.path.join(out, "raw-train.parquet")
    pq.write_table(raw.slice(0, cut), raw_train)
    engine = get_engine("local")
    graph = st.fit(engine, engine.read_parquet([raw_train]), preprocessing_fn)
    graph.save(os.path.join(out, "transform"))
    for name, part in (("train", raw.slice(0, cut)), ("eval", raw.slice(cut))):
        table = pa.Table.from_batches([graph.apply(b) for b in part.to_batches(max_chunksize=65536)])
        pq.write_table(table, os.path.join(out, f"{name}.parquet"), row_group_size=max(1, rows // 20))
    os.unlink(raw_train)
    open(os.path.join(out, "_COMPLETE"), "w").close()
    return out


def _specs(directory: str):
    from sluice.transform import TransformGraph

    graph = TransformGraph.load(os.path.join(directory, "transform"))
    return [s for s in graph.feature_specs if s.name != "label"]


def _arrays(path: str, specs):
    import numpy as np
    import pyarrow.parquet as pq

    from sluice.train.loader import feature_arrays

    table = pq.read_table(path)
    dense, sparse = feature_arrays(table, specs)
    return dense, sparse, np.asarray(table.column("label").to_numpy(), dtype=np.float32)


# ------------------------------------------------------------------ measurements (in subprocesses)


def m_sluice_loader(directory: str) -> dict:
    from sluice.train import ParquetBatchLoader

    specs = _specs(directory)
    loader = ParquetBatchLoader([os.path.join(directory, "train.parquet")], specs, "label", batch_size=BATCH,
                                shuffle=True, shuffle_buffer=100_000)
    rates = []
    for _ in range(PASSES):
        t0, n = time.perf_counter(), 0
        for b in loader:
            n += len(b)
        rates.append(n / (time.perf_counter() - t0))
    return {"samples_per_sec": statistics.median(rates), "rows": n}


def m_pyarrow_floor(directory: str) -> dict:
    import numpy as np
    import pyarrow.parquet as pq
    import torch

    specs = _specs(directory)
    numeric = [s.name for s in specs if s.kind == "numeric"]
    categorical = [s.name for s in specs if s.kind == "categorical"]
    rates = []
    for _ in range(PASSES):
        t0, n = time.perf_counter(), 0
        pf = pq.ParquetFile(os.path.join(directory, "train.parquet"))
        for batch in pf.iter_batches(batch_size=BATCH, columns=numeric + categorical + ["label"]):
            dense = torch.from_numpy(np.stack([batch.column(c).to_numpy() for c in numeric], 1).astype(np.float32))
            sparse = torch.from_numpy(np.stack([batch.column(c).to_numpy() for c in categorical], 1))
            label = torch.from_numpy(batch.column("label").to_numpy().astype(np.float32))
            n += len(label) + 0 * int(dense.shape[0] + sparse.shape[0])
        rates.append(n / (time.perf_counter() - t0))
    return {"samples_per_sec": statistics.median(rates), "rows": n}


class _MapDataset:
    def __init__(self, dense, sparse, label) -> None:
        self.dense, self.sparse, self.label = dense, sparse, label

    def __len__(self) -> int:
        return len(self.label)

    def __getitem__(self, i):
        return self.dense[i], self.sparse[i], self.label[i]


def m_torch_dataloader(directory: str, num_workers: int) -> dict:
    import torch
    from torch.utils.data import DataLoader

    dense, sparse, label = _arrays(os.path.join(directory, "train.parquet"), _specs(directory))
    loader = DataLoader(_MapDataset(dense, sparse, label), batch_size=BATCH, shuffle=True, num_workers=num_workers,
                        persistent_workers=False)
    it = iter(loader)
    next(it)  # workers started and warm
    t0, n = time.perf_counter(), 0
    for _ in range(min(40, len(loader) - 1)):
        d, s, y = next(it)
        n += len(y)
    del it
    assert isinstance(d, torch.Tensor)
    return {"samples_per_sec": n / (time.perf_counter() - t0), "rows": n}


def m_sluice_fit(directory: str, workers: int) -> dict:
    from sluice.train import TrainConfig, build_model, fit

    specs = _specs(directory)
    model = build_model("wide_and_deep", specs, "binary", seed=0, **HPARAMS)
    config = TrainConfig(epochs=2, batch_size=BATCH, learning_rate=4e-3, threads=1, seed=0)
    result = fit(model, [os.path.join(directory, "train.parquet")], [os.path.join(directory, "eval.parquet")],
                 specs, "label", "binary", config, workers=workers)
    sps = [m["samples_per_sec"] for m in result.history]
    return {"samples_per_sec": statistics.mean(sps), "auc": result.history[-1]["eval_auc"],
            "data_wait_fraction": statistics.mean(m["data_wait_fraction"] for m in result.history)}


def m_hand_loop(directory: str) -> dict:
    import torch

    from sluice.train import build_model
    from sluice.train.metrics import auc

    torch.set_num_threads(1)
    specs = _specs(directory)
    dense, sparse, label = (torch.from_numpy(a) for a in _arrays(os.path.join(directory, "train.parquet"), specs))
    model = build_model("wide_and_deep", specs, "binary", seed=0, **HPARAMS)
    emb = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    opt_dense = torch.optim.Adam([p for p in model.parameters() if id(p) not in emb], lr=4e-3)
    opt_sparse = torch.optim.SparseAdam([p for p in model.parameters() if id(p) in emb], lr=4e-3)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    g = torch.Generator().manual_seed(0)
    rates = []
    for _ in range(2):
        t0 = time.perf_counter()
        order = torch.randperm(len(label), generator=g)
        model.train()
        for s in range(0, len(label), BATCH):
            idx = order[s:s + BATCH]
            opt_dense.zero_grad(set_to_none=True)
            opt_sparse.zero_grad(set_to_none=True)
            loss = loss_fn(model(dense[idx], sparse[idx]), label[idx])
            loss.backward()
            opt_dense.step()
            opt_sparse.step()
        rates.append(len(label) / (time.perf_counter() - t0))
    ed, es, ey = _arrays(os.path.join(directory, "eval.parquet"), specs)
    model.eval()
    with torch.inference_mode():
        logits = torch.cat([model(torch.from_numpy(ed[s:s + BATCH]), torch.from_numpy(es[s:s + BATCH]))
                            for s in range(0, len(ey), BATCH)])
    return {"samples_per_sec": statistics.mean(rates), "auc": float(auc(ey, logits.numpy()))}


def _peer_python(name: str) -> str:
    return os.path.join(PEER_VENVS[name][0], "bin", "python")


def peer_venv(name: str, install: bool) -> str | None:
    """Make sure the peer's venv exists and imports (creating it when missing); None, or why not."""
    venv, steps, check = PEER_VENVS[name]
    py = _peer_python(name)
    if os.path.exists(py) and subprocess.run([py, "-c", check], capture_output=True).returncode == 0:
        return None
    if not install:
        return f"{venv} is missing or broken (run without --no-install to create it)"
    print(f"  creating {os.path.relpath(venv, REPO)} (once) ...", file=sys.stderr)
    base = subprocess.run(["python3", "-c", "import sys; print(sys.executable)"], capture_output=True,
                          text=True).stdout.strip() or sys.executable
    for cmd in [[base, "-m", "venv", venv], *([py, "-m", "pip", "install", "-q", *step] for step in steps)]:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            return f"creating the {name} venv failed at {' '.join(cmd[-3:])}: {proc.stderr.strip()[-400:]}"
    proc = subprocess.run([py, "-c", check], capture_output=True, text=True)
    return None if proc.returncode == 0 else f"the {name} venv does not import: {proc.stderr.strip()[-400:]}"


def _peer_json(cmd: list[str], timeout: float = 1500) -> dict:
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=timeout)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[:2])} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _columns(directory: str) -> list[str]:
    specs = _specs(directory)
    return ["--numeric", ",".join(s.name for s in specs if s.kind == "numeric"),
            "--categorical", ",".join(s.name for s in specs if s.kind == "categorical")]


def m_petastorm(directory: str, shuffle: int) -> dict:
    return _peer_json([_peer_python("petastorm"), os.path.join(PEERS_DIR, "petastorm_loader.py"),
                       os.path.join(directory, "train.parquet"), *_columns(directory), "--batch", str(BATCH),
                       "--shuffle", str(shuffle), "--passes", str(PASSES)])


def m_ray_data(directory: str) -> dict:
    return _peer_json([_peer_python("ray"), os.path.join(PEERS_DIR, "ray_loader.py"),
                       os.path.join(directory, "train.parquet"), *_columns(directory), "--batch", str(BATCH),
                       "--shuffle", "100000", "--passes", str(PASSES)])


def m_torchdistributor(directory: str, master: str) -> dict:
    return _peer_json([sys.executable, os.path.join(PEERS_DIR, "torchdistributor_train.py"), directory,
                       "--master", master, "--processes", "2", "--epochs", "2", "--batch", str(BATCH)])


def m_sluice_spark(directory: str, master: str) -> dict:
    t0 = time.perf_counter()
    try:
        from sluice.train.spark_distributor import fit_on_spark
    except Exception as exc:  # noqa: BLE001 - being written concurrently: skip with the reason
        return {"skipped": f"sluice.train.spark_distributor.fit_on_spark does not import: "
                           f"{type(exc).__name__}: {exc}"}
    from sluice.engine.spark_session import SparkSettings, get_session
    from sluice.train import TrainConfig, build_model

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    conf = {"spark.driver.host": "127.0.0.1", "spark.ui.enabled": "false"}
    if not master.startswith("local"):
        conf.update({"spark.executor.cores": "1", "spark.task.cpus": "1", "spark.executor.memory": "512m"})
    spark = get_session(SparkSettings(master=master, app_name="sluice-train-bench", conf=conf))
    started = time.perf_counter() - t0
    try:
        specs = _specs(directory)
        model = build_model("wide_and_deep", specs, "binary", seed=0, **HPARAMS)
        config = TrainConfig(epochs=2, batch_size=BATCH, learning_rate=4e-3, threads=1, seed=0, workers=2)
        t1 = time.perf_counter()
        result = fit_on_spark(spark, model, [os.path.join(directory, "train.parquet")],
                              [os.path.join(directory, "eval.parquet")], specs, "label", "binary", config)
        run_s = time.perf_counter() - t1
    finally:
        spark.stop()
    sps = [m["samples_per_sec"] for m in result.history]
    return {"samples_per_sec": statistics.mean(sps), "auc": result.history[-1]["eval_auc"],
            "spark_start_s": started, "distributor_s": run_s, "wall_s": time.perf_counter() - t0,
            "epochs_s": sum(m.get("epoch_seconds", 0.0) for m in result.history)}


MEASUREMENTS = {
    "loader/sluice": (m_sluice_loader, {}),
    "loader/pyarrow_floor": (m_pyarrow_floor, {}),
    "loader/torch_dataloader_w0": (m_torch_dataloader, {"num_workers": 0}),
    "loader/torch_dataloader_w2": (m_torch_dataloader, {"num_workers": 2}),
    "loader/petastorm": (m_petastorm, {"shuffle": 100_000}),
    "loader/petastorm_noshuffle": (m_petastorm, {"shuffle": 0}),
    "loader/ray_data": (m_ray_data, {}),
    "train/sluice_1w": (m_sluice_fit, {"workers": 1}),
    "train/hand_loop": (m_hand_loop, {}),
    "train/sluice_2w": (m_sluice_fit, {"workers": 2}),
    "train/torchdistributor_local": (m_torchdistributor, {"master": "local[2]"}),
    "train/sluice_spark_local": (m_sluice_spark, {"master": "local[2]"}),
    "train/torchdistributor_cluster": (m_torchdistributor, {"master": CLUSTER}),
    "train/sluice_spark_cluster": (m_sluice_spark, {"master": CLUSTER}),
}
NEEDS_VENV = {"loader/petastorm": "petastorm", "loader/petastorm_noshuffle": "petastorm", "loader/ray_data": "ray"}
GROUPS = {  # --only shorthands
    "loader": [n for n in MEASUREMENTS if n.startswith("loader/")],
    "train": [n for n in MEASUREMENTS if n.startswith("train/")],
    "peers": ["loader/petastorm", "loader/petastorm_noshuffle", "loader/ray_data", "train/torchdistributor_local",
              "train/torchdistributor_cluster"],
    "petastorm": ["loader/petastorm", "loader/petastorm_noshuffle"],
    "ray": ["loader/ray_data"],
    "spark": [n for n in MEASUREMENTS if "spark" in n or "torchdistributor" in n],
    "cluster": [n for n in MEASUREMENTS if n.endswith("_cluster")],
}


def select(only: str) -> list[str]:
    """Measurement names from ``--only``: names, groups (GROUPS) or name prefixes, comma-separated."""
    if not only:
        return list(MEASUREMENTS)
    wanted: set[str] = set()
    for token in filter(None, (t.strip() for t in only.split(","))):
        hits = GROUPS.get(token) or [n for n in MEASUREMENTS if n == token or n.startswith(token)
                                     or n.split("/", 1)[1] == token]
        if not hits:
            raise SystemExit(f"--only: unknown measurement or group {token!r}; "
                             f"measurements: {', '.join(MEASUREMENTS)}; groups: {', '.join(GROUPS)}")
        wanted.update(hits)
    return [n for n in MEASUREMENTS if n in wanted]


def _run(name: str, directory: str, master: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "--one", name, "--dir", directory] + (["--master", master] if master else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=1800)
    if proc.returncode:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def maybe_cluster(needed: bool):
    """A standalone cluster (master + 2 workers of 1 core, 127.0.0.1) while the block runs, if needed."""
    if not needed:
        yield None
        return
    from tests.integration.spark_standalone import standalone_cluster

    with tempfile.TemporaryDirectory(prefix="sluice-bench-spark-") as logs, \
            standalone_cluster(logs, workers=2, cores=1, memory="1g") as url:
        print(f"  standalone cluster {url} up", file=sys.stderr)
        yield url


def _fmt_skip(reason: str) -> str:
    return "skipped: " + " ".join(reason.split())[:150]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", "--peers", dest="only", default="",
                    help="comma-separated measurement names, name prefixes or groups "
                         f"({', '.join(GROUPS)}); default: all")
    ap.add_argument("--no-install", action="store_true", help="do not create the peer venvs when missing")
    ap.add_argument("--report", metavar="JSON",
                    help="reprint the tables of a saved run (benchmarks/.data/training-*.json)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    ap.add_argument("--master", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.report:
        with open(args.report) as fh:
            report(json.load(fh))
        return
    if args.one:
        fn, kwargs = MEASUREMENTS[args.one]
        if args.master:
            kwargs = {**kwargs, "master": args.master}
        print(json.dumps(fn(args.dir, **kwargs)))
        return

    names = select(args.only)
    skipped: dict[str, str] = {}
    for n in names:
        if n in NEEDS_VENV:
            why = peer_venv(NEEDS_VENV[n], install=not args.no_install)
            if why:
                skipped[n] = why
    directory = prepare(args.rows)
    runs: dict[str, list[dict]] = {n: [] for n in names if n not in skipped}
    load_before = os.getloadavg()
    with maybe_cluster(any(MEASUREMENTS[n][1].get("master") == CLUSTER for n in runs)) as url:
        for r in range(args.repeat):  # interleaved: drift in machine load hits every side alike
            for n in list(runs):
                master = url if MEASUREMENTS[n][1].get("master") == CLUSTER else None
                try:
                    out = _run(n, directory, master)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:  # one peer failing does not end the run
                    print(f"  {n} failed: {exc}", file=sys.stderr)
                    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
                    out = {"skipped": f"failed: {lines[-1] if lines else exc!r}"}
                print(f"  repeat {r + 1}/{args.repeat} {n}: {out}", file=sys.stderr)
                if "skipped" in out:
                    skipped[n] = out["skipped"]
                    del runs[n]
                    continue
                runs[n].append(out)
    load_after = os.getloadavg()
    med = {n: {k: statistics.median(x[k] for x in rs) for k in rs[0] if isinstance(rs[0][k], (int, float))}
           for n, rs in runs.items() if rs}
    data = {"rows": args.rows, "repeat": args.repeat, "load": [load_before, load_after], "median": med,
            "runs": runs, "skipped": skipped, "command": sys.argv, "cores": os.cpu_count()}
    os.makedirs(DATA, exist_ok=True)
    tag = "" if not args.only else "-" + "".join(c if c.isalnum() else "_" for c in args.only)[:60]
    with open(os.path.join(DATA, f"training-{args.rows}{tag}.json"), "w") as fh:
        json.dump(data, fh, indent=1)
    report(data)


def report(data: dict) -> None:
    """Print the tables and the ratios of a run (``--report FILE`` reprints a saved one)."""
    med, runs, skipped = data["median"], data["runs"], data.get("skipped", {})
    rows, (load_before, load_after) = data["rows"], data["load"]

    def sps(n: str) -> float:
        return med[n]["samples_per_sec"] if n in med else float("nan")

    def paired(a: str, b: str, key: str = "samples_per_sec") -> float:
        """The median of the per-repeat ratios a/b (cancels some of the load drift between repeats)."""
        return statistics.median(x[key] / y[key] for x, y in zip(runs[a], runs[b]))

    def ratio(a: str, b: str) -> str:
        return f"{sps(a) / sps(b):.2f}x ({paired(a, b):.2f}x)" if a in med and b in med else "n/a"

    print(f"\nCTR rows: {rows:,} (train {int(rows * 0.8):,}); medians of {data['repeat']}; "
          f"{data.get('cores', os.cpu_count())} cores; load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after (1-min)")
    print("ratios: of the medians (median of the per-repeat ratios)")
    print("\nLoader (batch 4096)                     samples/s    vs pyarrow floor      sluice is x this")
    for n in [n for n in MEASUREMENTS if n.startswith("loader/")]:
        if n in med:
            print(f"  {n:<36} {sps(n):>12,.0f}    {ratio(n, 'loader/pyarrow_floor'):>15}"
                  f"      {ratio('loader/sluice', n):>15}")
        elif n in skipped:
            print(f"  {n:<36} {_fmt_skip(skipped[n])}")
    print("\nTraining (2 epochs, 1 thread/process)   samples/s    AUC      vs hand loop      "
          "wall s (train call s, Spark start s)")
    for n in ("train/hand_loop", "train/sluice_1w", "train/sluice_2w", "train/torchdistributor_local",
              "train/sluice_spark_local", "train/torchdistributor_cluster", "train/sluice_spark_cluster"):
        if n in med:
            wall = (f"{med[n]['wall_s']:>6.1f} ({med[n]['distributor_s']:.1f}, "
                    f"{med[n]['spark_start_s']:.1f})") if "wall_s" in med[n] else ""
            print(f"  {n:<36} {sps(n):>12,.0f}    {med[n]['auc']:.4f}   {ratio(n, 'train/hand_loop'):>15}   {wall}")
        elif n in skipped:
            print(f"  {n:<36} {_fmt_skip(skipped[n])}")
    print()
    if "loader/sluice" in med:
        for peer, target in (("loader/pyarrow_floor", "target >= 0.80x (within 1.25x)"),
                             ("loader/torch_dataloader_w0", "target >= 7x"),
                             ("loader/torch_dataloader_w2", "target >= 7x"),
                             ("loader/petastorm", "target > 1x"), ("loader/petastorm_noshuffle", ""),
                             ("loader/ray_data", "")):
            if peer in med:
                print(f"  loader: Sluice / {peer.split('/')[1]} = {ratio('loader/sluice', peer)}  {target}")
    if "train/sluice_1w" in med and "train/hand_loop" in med:
        print(f"  Sluice overhead over the hand loop (1 worker): "
              f"{(sps('train/hand_loop') / sps('train/sluice_1w') - 1) * 100:+.1f}% time per sample "
              f"({(paired('train/hand_loop', 'train/sluice_1w') - 1) * 100:+.1f}% paired); "
              f"data wait {med['train/sluice_1w']['data_wait_fraction']:.1%} of step time")
    if "train/sluice_2w" in med and "train/sluice_1w" in med:
        print(f"  Scaling, 2 workers vs 1: {ratio('train/sluice_2w', 'train/sluice_1w')}")
    for where in ("local", "cluster"):
        a, b = f"train/sluice_spark_{where}", f"train/torchdistributor_{where}"
        if a in med and b in med:
            print(f"  Sluice on Spark / hand-written TorchDistributor ({where}): {ratio(a, b)} samples/s; "
                  f"wall {med[b]['wall_s'] / med[a]['wall_s']:.2f}x ({paired(b, a, 'wall_s'):.2f}x) "
                  f"(above 1: Sluice faster; target >= 1x)")


if __name__ == "__main__":
    main()
