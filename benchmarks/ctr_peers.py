"""Sluice vs. a hand-written pandas + PyTorch script: the CTR pipeline's work, side by side.

    .venv/bin/python benchmarks/ctr_peers.py --rows 1000000
    .venv/bin/python benchmarks/ctr_peers.py --rows 200000 --repeat 3   # medians of 3

The CTR data (examples/ctr/data.py) is generated ONCE into a temporary directory as
Parquet; both sides then go from those raw files to an evaluated model:

- Sluice: a LocalRunner run of the CTR pipeline minus the generator and Pusher
  (ExampleGen reading the Parquet files, 80/20 split by user_id hash, StatisticsGen,
  SchemaGen, ExampleValidator, Transform with examples.ctr.pipeline.preprocessing_fn,
  Trainer with the example's settings, Evaluator), in a fresh working directory with a
  fresh metadata store (no cache hits). Phase times are the executions' durations as
  recorded in the metadata store.
- pandas: pd.read_parquet, a hash split of user_id, df.describe(include="all") per split,
  the same features in pandas/numpy (fitted on train), then the SAME model class
  (sluice.train.build_model("wide_and_deep", ...)) trained by a plain torch loop over
  in-memory tensors (shuffled index, batch 8192, Adam + SparseAdam, lr 4e-3, 2 epochs),
  and sklearn's roc_auc_score on the eval split.

Each side runs in its own subprocess (imports excluded from the times) and reports its
peak RSS (VmHWM), so memory is comparable. The machine is shared and noisy: with
--repeat > 1 the table shows medians.

What is NOT like for like (read the ratios with this in mind):
- pandas holds the whole data set (and the model-ready tensors) in memory, so it needs
  RAM that grows with the data; Sluice streams through DuckDB/Arrow and works out of core.
- Sluice writes every artifact to disk (split Parquet, statistics, schema, anomalies,
  transform graph, transformed Parquet of both splits, model export, predictions,
  per-slice metrics) and records runs, executions and lineage in SQLite; pandas writes
  nothing and records nothing.
- Sluice's "statistics" phase also infers a schema and validates the statistics against it;
  its statistics are richer (histograms, top-k, missing counts) than describe().
- Sluice's Trainer evaluates the eval split after every epoch (2 extra scoring passes
  inside "train") and streams shuffled batches from Parquet (1 torch thread + 1 reader
  thread on 2 cores); the pandas loop indexes in-memory tensors and does not evaluate per
  epoch. It is given the same number of torch threads as Sluice's Trainer (cores - 1):
  torch's default (all cores) made its training up to ~6x slower on a busy, shared 2-core box.
- Sluice's Evaluator re-reads the RAW eval split, applies the saved transform graph,
  scores it, writes predictions and computes metrics overall and per C2 slice; the pandas
  "evaluate" is one forward pass over tensors already transformed in its transform phase.
- The splits differ (Sluice: md5 of user_id; pandas: pandas' hash), as do the quantile
  method (DuckDB approx_quantile vs. exact np.quantile) and vocabulary tie order, so the
  AUCs agree only statistically (within a few thousandths at 1M rows).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

PHASES = ["ingest+split", "statistics", "transform fit+apply", "train", "evaluate"]
# Sluice steps whose recorded durations make up each phase.
SLUICE_STEPS = {"ingest+split": ["ExampleGen"], "statistics": ["StatisticsGen", "SchemaGen", "ExampleValidator"],
                "transform fit+apply": ["Transform"], "train": ["Trainer"], "evaluate": ["Evaluator"]}
BATCH, LR, EPOCHS, SEED = 8192, 4e-3, 2, 0


def peak_rss_mb() -> float:
    # VmHWM is this process's own peak. ru_maxrss would also count the parent that forked it
    # (Linux carries it over exec), and the parent holds the generated data.
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024


def run_sluice(data_dir: str) -> dict:
    from examples.ctr.pipeline import preprocessing_fn
    from sluice import Pipeline
    from sluice.artifacts import ArtifactStore
    from sluice.components import (
        Evaluator, ExampleGen, ExampleValidator, SchemaGen, StatisticsGen, Trainer, Transform,
    )
    from sluice.evaluate import Threshold
    from sluice.metadata import MetadataStore
    from sluice.runner import LocalRunner

    with tempfile.TemporaryDirectory(prefix="ctr-peers-sluice-") as tmp:
        os.chdir(tmp)
        gen = ExampleGen(input=data_dir, key="user_id", splits={"train": 0.8, "eval": 0.2})
        stats = StatisticsGen(examples=gen.outputs.examples)
        schema = SchemaGen(statistics=stats.outputs.statistics)
        validator = ExampleValidator(statistics=stats.outputs.statistics, schema=schema.outputs.schema)
        transform = Transform(examples=gen.outputs.examples, preprocessing_fn=preprocessing_fn,
                              anomalies=validator.outputs.anomalies)
        trainer = Trainer(examples=transform.outputs.transformed_examples,
                          transform_graph=transform.outputs.transform_graph, label="label", task="binary",
                          model="wide_and_deep", hparams={"hidden": [128, 64], "embedding_dim": 16},
                          epochs=EPOCHS, batch_size=BATCH, learning_rate=LR, seed=SEED)
        evaluator = Evaluator(model=trainer.outputs.model, examples=gen.outputs.examples,
                              transform_graph=transform.outputs.transform_graph, slices=["C2"],
                              thresholds={"auc": Threshold(lower_bound=0.6, max_decrease=0.01)})
        pipeline = Pipeline("ctr_peers", [gen, stats, schema, validator, transform, trainer, evaluator])
        store = MetadataStore.open(os.path.join(tmp, "metadata.db"))
        runner = LocalRunner(store, ArtifactStore(os.path.join(tmp, "artifacts")), progress=False,
                             log_dir=os.path.join(tmp, "logs"))
        t0 = time.perf_counter()
        result = runner.run(pipeline)
        wall = time.perf_counter() - t0
        if result.status != "succeeded":
            raise SystemExit(f"sluice run failed: {[(s.name, s.error) for s in result.failed]}")
        durations = {e.step: e.duration for e in store.executions(result.run_id)}
        auc = result.output("Evaluator", "evaluation").properties["metrics"]["auc"]
        os.chdir(REPO)
    phases = {p: sum(durations[s] for s in steps) for p, steps in SLUICE_STEPS.items()}
    return {"wall": wall, "phases": phases, "auc": auc, "rss_mb": peak_rss_mb()}


def run_pandas(data_dir: str) -> dict:
    import numpy as np
    import pandas as pd
    import torch
    from sklearn.metrics import roc_auc_score

    from examples.ctr.pipeline import CATEGORICAL, CROSSES, NUMERIC
    from sluice.features import FeatureSpec
    from sluice.train import build_model
    from sluice.train.loop import default_threads

    torch.set_num_threads(default_threads())  # as many torch threads as Sluice's Trainer uses
    phases: dict[str, float] = {}
    t_start = t0 = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t0
        now = time.perf_counter()
        phases[name], t0 = now - t0, now

    # ingest + split
    df = pd.read_parquet(data_dir)
    is_train = (pd.util.hash_pandas_object(df["user_id"], index=False) % 10 < 8).to_numpy()
    train, ev = df[is_train].reset_index(drop=True), df[~is_train].reset_index(drop=True)
    del df
    lap("ingest+split")

    # statistics, per split (as StatisticsGen computes them)
    _ = {name: part.describe(include="all") for name, part in (("train", train), ("eval", ev))}
    lap("statistics")

    # transform: fit on train, apply to both splits, build model-ready tensors
    specs, buckets = [], []  # spec order = tensor column order: dense first, then sparse
    dense_cols, sparse_cols = {"train": [], "eval": []}, {"train": [], "eval": []}
    for c in NUMERIC:
        counts = {k: np.log1p(part[c].fillna(0).clip(lower=0).to_numpy(np.float64))
                  for k, part in (("train", train), ("eval", ev))}
        mean, std = counts["train"].mean(), counts["train"].std()  # population std, like st.zscore
        bounds = np.unique(np.quantile(counts["train"], np.arange(1, 16) / 16))  # 16 buckets
        for k, v in counts.items():
            dense_cols[k].append(((v - mean) / (std or 1.0)).astype(np.float32))
            sparse_cols[k].append(np.searchsorted(bounds, v, side="right"))
        specs.append(FeatureSpec(c, "numeric"))
        buckets.append(FeatureSpec(f"{c}_q", "categorical", len(bounds) + 1))
    specs += buckets
    for c in CATEGORICAL:
        vocab = pd.Index(train[c].value_counts().index[:20_000])
        for k, part in (("train", train), ("eval", ev)):
            ids = vocab.get_indexer(part[c])
            sparse_cols[k].append(np.where(ids < 0, len(vocab), ids))  # one OOV bucket
        specs.append(FeatureSpec(c, "categorical", len(vocab) + 1))
    for a, b in CROSSES:
        for k, part in (("train", train), ("eval", ev)):
            sparse_cols[k].append((pd.util.hash_pandas_object(part[[a, b]], index=False) % 50_000).to_numpy())
        specs.append(FeatureSpec(f"{a}_x_{b}", "categorical", 50_000))
    tensors = {k: (torch.from_numpy(np.column_stack(dense_cols[k])),
                   torch.from_numpy(np.column_stack(sparse_cols[k]).astype(np.int64)),
                   torch.from_numpy(part["label"].to_numpy(np.float32)))
               for k, part in (("train", train), ("eval", ev))}
    del train, ev, dense_cols, sparse_cols
    lap("transform fit+apply")

    # train: the same model class, a plain loop over in-memory tensors
    model = build_model("wide_and_deep", specs, "binary", hidden=[128, 64], embedding_dim=16, seed=SEED)
    sparse_ids = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding) and m.sparse}
    optimizers = [torch.optim.Adam([p for p in model.parameters() if id(p) not in sparse_ids], lr=LR),
                  torch.optim.SparseAdam([p for p in model.parameters() if id(p) in sparse_ids], lr=LR)]
    loss_fn = torch.nn.BCEWithLogitsLoss()
    dense, sparse, label = tensors["train"]
    generator = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(EPOCHS):
        for idx in torch.randperm(len(label), generator=generator).split(BATCH):
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            loss_fn(model(dense[idx], sparse[idx]), label[idx]).backward()
            for opt in optimizers:
                opt.step()
    lap("train")

    # evaluate
    dense, sparse, label = tensors["eval"]
    model.eval()
    with torch.inference_mode():
        logits = torch.cat([model(d, s) for d, s in zip(dense.split(BATCH), sparse.split(BATCH))])
    auc = float(roc_auc_score(label.numpy(), logits.numpy()))
    lap("evaluate")
    return {"wall": time.perf_counter() - t_start, "phases": phases, "auc": auc, "rss_mb": peak_rss_mb()}


def run_side(side: str, data_dir: str) -> dict:
    """One side in a fresh subprocess (its own peak RSS); returns its RESULT line."""
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--side", side, "--data", data_dir],
                          capture_output=True, text=True, cwd=REPO)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{side} side failed (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--side", choices=["sluice", "pandas"], help=argparse.SUPPRESS)  # child process
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        out = (run_sluice if args.side == "sluice" else run_pandas)(args.data)
        print("RESULT " + json.dumps(out), flush=True)
        return

    from examples.ctr import data as ctr_data

    results: dict[str, list[dict]] = {"sluice": [], "pandas": []}
    with tempfile.TemporaryDirectory(prefix="ctr-peers-data-") as tmp:
        data_dir = os.path.join(tmp, "raw")
        t0 = time.perf_counter()
        files = ctr_data.write(data_dir, args.rows, seed=SEED)
        mb = sum(os.path.getsize(f) for f in files) / 2**20
        print(f"data: {args.rows:,} rows, {len(files)} Parquet file(s), {mb:.0f} MiB, "
              f"written once in {time.perf_counter() - t0:.1f}s", flush=True)
        for i in range(args.repeat):
            for side in ("sluice", "pandas"):
                r = run_side(side, data_dir)
                results[side].append(r)
                print(f"run {i + 1}/{args.repeat} {side:<7} {r['wall']:7.1f}s  auc {r['auc']:.4f}  "
                      f"peak RSS {r['rss_mb']:,.0f} MiB", flush=True)

    def med(side: str, get) -> float:
        return statistics.median(get(r) for r in results[side])

    kind = "median of " + str(args.repeat) if args.repeat > 1 else "1 run"
    print(f"\nCTR, {args.rows:,} rows, {kind} per side, seconds")
    print(f"{'phase':<22}{'Sluice s':>10}{'pandas s':>10}{'pandas/Sluice':>15}")
    rows = [(p, (lambda r, p=p: r["phases"][p])) for p in PHASES]
    rows.append(("sum of phases", lambda r: sum(r["phases"].values())))
    rows.append(("total (wall)", lambda r: r["wall"]))
    for name, get in rows:
        s, p = med("sluice", get), med("pandas", get)
        print(f"{name:<22}{s:10.1f}{p:10.1f}{(p / s if s else float('nan')):15.2f}")
    s_auc, p_auc = med("sluice", lambda r: r["auc"]), med("pandas", lambda r: r["auc"])
    s_rss, p_rss = med("sluice", lambda r: r["rss_mb"]), med("pandas", lambda r: r["rss_mb"])
    print(f"{'eval AUC':<22}{s_auc:10.4f}{p_auc:10.4f}")
    print(f"{'peak RSS (MiB)':<22}{s_rss:10,.0f}{p_rss:10,.0f}{p_rss / s_rss:15.2f}")


if __name__ == "__main__":
    main()
