"""Training data path and training loop: Sluice vs. the floor and vs. hand-written torch, side by side.

    .venv/bin/python benchmarks/training.py                       # 300k CTR rows, medians of 3
    .venv/bin/python benchmarks/training.py --rows 1000000 --repeat 5

Data: the CTR example's generator (examples/ctr/data.py) and its preprocessing_fn, fitted with
sluice.transform on the local engine on the first 80% of rows; both splits are written as
model-ready Parquet (row groups of rows/20) once and cached under benchmarks/.data/ (git-ignored).

Loader (3 epochs over the train split, median epoch; batch 4096; the same 13 + 42 feature
columns + label):
- sluice: ParquetBatchLoader, shuffle buffer 100k, 1 reader thread, prefetch 4;
- pyarrow floor: ParquetFile.iter_batches -> numpy stacking -> torch.from_numpy, NO shuffling
  (the least work any Parquet -> tensor path can do);
- torch DataLoader over a map-style Dataset on in-memory numpy arrays (rows fetched one by one
  and collated: the usual tabular recipe), shuffle=True, num_workers 0 and 2 (capped at 40
  batches: it is a rate).

Training (2 epochs, wide_and_deep hidden [128, 64], embeddings 16, Adam + SparseAdam lr 4e-3,
batch 4096 per worker, 1 torch thread per process):
- sluice fit, 1 worker: training samples/s from its per-epoch metrics (eval excluded);
- hand-written: the same model class and optimizers, a plain loop over tensors read into memory
  with pyarrow, shuffled with randperm each epoch (no per-epoch eval);
- sluice fit, 2 workers (DDP over gloo): global training samples/s; scaling = 2w / 1w.
Final AUC on the eval split is reported for each.

Each measurement runs in a fresh subprocess (imports excluded); the table shows medians over
``--repeat`` runs. The machine may be shared: the load average is printed with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
DATA = os.path.join(REPO, "benchmarks", ".data")
BATCH = 4096
HPARAMS = {"hidden": [128, 64], "embedding_dim": 16}
PASSES = 3  # loader epochs per measurement; the median pass counts (the first pays page faults)


def prepare(rows: int, seed: int = 0) -> str:
    """Transformed CTR Parquet for ``rows`` rows (cached); returns its directory."""
    out = os.path.join(DATA, f"train-ctr-{rows}-seed{seed}")
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
    for _ in range(40):
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


MEASUREMENTS = {
    "loader/sluice": (m_sluice_loader, {}),
    "loader/pyarrow_floor": (m_pyarrow_floor, {}),
    "loader/torch_dataloader_w0": (m_torch_dataloader, {"num_workers": 0}),
    "loader/torch_dataloader_w2": (m_torch_dataloader, {"num_workers": 2}),
    "train/sluice_1w": (m_sluice_fit, {"workers": 1}),
    "train/hand_loop": (m_hand_loop, {}),
    "train/sluice_2w": (m_sluice_fit, {"workers": 2}),
}


def _run(name: str, directory: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--one", name, "--dir", directory], capture_output=True,
                          text=True, cwd=REPO, timeout=1800)
    if proc.returncode:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated measurement names (default: all)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        fn, kwargs = MEASUREMENTS[args.one]
        print(json.dumps(fn(args.dir, **kwargs)))
        return

    directory = prepare(args.rows)
    names = [n for n in MEASUREMENTS if not args.only or n in args.only.split(",")]
    runs: dict[str, list[dict]] = {n: [] for n in names}
    load_before = os.getloadavg()
    for r in range(args.repeat):  # interleaved: drift in machine load hits every side alike
        for n in names:
            runs[n].append(_run(n, directory))
            print(f"  repeat {r + 1}/{args.repeat} {n}: {runs[n][-1]}", file=sys.stderr)
    med = {n: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for n, rs in runs.items()}
    load_after = os.getloadavg()

    def sps(n: str) -> float:
        return med[n]["samples_per_sec"] if n in med else float("nan")

    print(f"\nCTR rows: {args.rows:,} (train {int(args.rows * 0.8):,}); medians of {args.repeat}; "
          f"{os.cpu_count()} cores; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print("\nLoader (batch 4096)                     samples/s    vs pyarrow floor   sluice is x this")
    for n in ("loader/sluice", "loader/pyarrow_floor", "loader/torch_dataloader_w0", "loader/torch_dataloader_w2"):
        if n in med:
            print(f"  {n:<36} {sps(n):>12,.0f}    {sps(n) / sps('loader/pyarrow_floor'):>8.2f}x"
                  f"          {sps('loader/sluice') / sps(n):>8.2f}x")
    print("\nTraining (2 epochs, 1 thread/process)   samples/s    AUC      vs hand loop")
    for n in ("train/hand_loop", "train/sluice_1w", "train/sluice_2w"):
        if n in med:
            print(f"  {n:<36} {sps(n):>12,.0f}    {med[n]['auc']:.4f}   {sps(n) / sps('train/hand_loop'):>6.3f}x")
    if "train/sluice_1w" in med:
        print(f"\n  Sluice overhead over the hand loop (1 worker): "
              f"{(sps('train/hand_loop') / sps('train/sluice_1w') - 1) * 100:+.1f}% time per sample; "
              f"data wait {med['train/sluice_1w']['data_wait_fraction']:.1%} of step time")
    if "train/sluice_2w" in med:
        print(f"  Scaling, 2 workers vs 1: {sps('train/sluice_2w') / sps('train/sluice_1w'):.2f}x")
    os.makedirs(DATA, exist_ok=True)
    with open(os.path.join(DATA, f"training-{args.rows}.json"), "w") as fh:
        json.dump({"rows": args.rows, "repeat": args.repeat, "load": [load_before, load_after], "median": med,
                   "runs": runs}, fh, indent=1)


if __name__ == "__main__":
    main()
