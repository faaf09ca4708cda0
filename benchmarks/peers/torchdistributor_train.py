"""Training peer: a hand-written PySpark ``TorchDistributor`` script, as a user would write it.

    .venv/bin/python benchmarks/peers/torchdistributor_train.py DIR --master local[2]            # local_mode
    .venv/bin/python benchmarks/peers/torchdistributor_train.py DIR --master spark://127.0.0.1:7077

DIR is a benchmarks/training.py data folder (train.parquet, eval.parquet, transform/). With a
``local[...]`` master TorchDistributor runs in ``local_mode`` (torchrun on the driver); with a
cluster master it runs a barrier Spark job with one task per process (``local_mode=False``).

Inside each of the ``--processes`` processes: gloo process group, one torch thread, the same
model class as Sluice's Trainer (``sluice.train.models``, wide_and_deep [128, 64], embeddings 16)
wrapped in DistributedDataParallel, embeddings with dense gradients (sparse ones are slower
under gloo at this size) and one Adam at lr 4e-3, batch ``--batch`` per process. No
DistributedSampler: rank r reads row groups r, r+W, ... of train.parquet with pyarrow into
tensors, shuffles them with randperm every epoch, and every rank runs the same number of steps
(the smallest rank's). Rank 0 evaluates AUC on eval.parquet after the last epoch; every rank
returns its figures (in local_mode TorchDistributor keeps whichever rank's output is written
last). Prints one JSON line: training samples/s (all processes, mean over epochs, eval and
start-up excluded), AUC, the Spark session's start-up seconds and the whole wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def train(directory: str, epochs: int, batch: int, lr: float, seed: int) -> dict:
    """One process's training; runs under torchrun (TorchDistributor sets RANK, WORLD_SIZE, MASTER_*)."""
    import numpy as np
    import pyarrow.parquet as pq
    import torch
    import torch.distributed as dist

    from sluice.train.metrics import auc
    from sluice.train.models import build_model
    from sluice.transform import TransformGraph

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    specs = [s for s in TransformGraph.load(os.path.join(directory, "transform")).feature_specs if s.name != "label"]
    numeric = [s.name for s in specs if s.kind == "numeric"]
    categorical = [s.name for s in specs if s.kind == "categorical"]

    def tensors(table):
        dense = np.stack([table.column(c).to_numpy() for c in numeric], 1).astype(np.float32)
        sparse = np.stack([table.column(c).to_numpy() for c in categorical], 1).astype(np.int64)
        label = table.column("label").to_numpy().astype(np.float32)
        return torch.from_numpy(dense), torch.from_numpy(sparse), torch.from_numpy(label)

    pf = pq.ParquetFile(os.path.join(directory, "train.parquet"))
    groups = list(range(pf.num_row_groups))
    mine = groups[rank::world]
    dense, sparse, label = tensors(pf.read_row_groups(mine, columns=numeric + categorical + ["label"]))
    rows = [sum(pf.metadata.row_group(g).num_rows for g in groups[r::world]) for r in range(world)]
    steps = min(-(-n // batch) for n in rows)

    model = build_model("wide_and_deep", specs, "binary", seed=seed, hidden=[128, 64], embedding_dim=16)
    for m in model.modules():
        if isinstance(m, torch.nn.Embedding):
            m.sparse = False
    net = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    g = torch.Generator().manual_seed(seed + rank)
    rates = []
    for _ in range(epochs):
        dist.barrier()
        t0, n = time.perf_counter(), 0
        order = torch.randperm(len(label), generator=g)
        net.train()
        for s in range(steps):
            idx = order[s * batch:(s + 1) * batch]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(dense[idx], sparse[idx]), label[idx])
            loss.backward()
            opt.step()
            n += len(idx)
        total = torch.tensor([n], dtype=torch.int64)
        dist.all_reduce(total)
        rates.append(int(total.item()) / (time.perf_counter() - t0))
    out = None
    if rank == 0:
        ed, es, ey = tensors(pq.read_table(os.path.join(directory, "eval.parquet"),
                                           columns=numeric + categorical + ["label"]))
        model.eval()
        with torch.inference_mode():
            logits = torch.cat([model(ed[s:s + batch], es[s:s + batch]) for s in range(0, len(ey), batch)])
        out = {"samples_per_sec": sum(rates) / len(rates), "epoch_rates": rates,
               "auc": float(auc(ey.numpy(), logits.numpy())), "world": world}
    box = [out]  # in local_mode every rank writes the same output file: all return rank 0's figures
    dist.broadcast_object_list(box, src=0)
    dist.destroy_process_group()
    return box[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--lr", type=float, default=4e-3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

    t0 = time.perf_counter()
    from pyspark.ml.torch.distributor import TorchDistributor
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(args.master).appName("torchdistributor-peer") \
        .config("spark.driver.host", "127.0.0.1").config("spark.ui.enabled", "false")
    if not args.master.startswith("local"):
        builder = builder.config("spark.executor.cores", "1").config("spark.task.cpus", "1") \
            .config("spark.executor.memory", "512m")
    spark = builder.getOrCreate()
    started = time.perf_counter() - t0
    try:
        local = args.master.startswith("local")
        t1 = time.perf_counter()
        out = TorchDistributor(num_processes=args.processes, local_mode=local, use_gpu=False).run(
            train, os.path.abspath(args.dir), args.epochs, args.batch, args.lr, args.seed)
        run_s = time.perf_counter() - t1
    finally:
        spark.stop()
    print(json.dumps({**out, "spark_start_s": started, "distributor_s": run_s,
                      "wall_s": time.perf_counter() - t0, "local_mode": local}))


if __name__ == "__main__":
    main()
