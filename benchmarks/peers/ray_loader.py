"""Loader peer: Ray Data ``read_parquet`` + ``iter_torch_batches`` over the transformed CTR Parquet.

Runs in its own venv (benchmarks/.venv-ray: ``ray[data]`` and torch 2.13.0 CPU; benchmarks/training.py
creates it). A local Ray instance is started with ``--cpus`` CPUs before the clock (its start-up is
excluded); prints one JSON line: the median samples/s over ``--passes`` epochs (the dataset read
from the file every epoch, as a streaming loader does), batches of ``--batch`` with a local
shuffle buffer of ``--shuffle`` rows, stacked into the same dense float32 / sparse int64 / float32
label tensors the Sluice loader yields.

    benchmarks/.venv-ray/bin/python benchmarks/peers/ray_loader.py FILE --numeric I1,I2 --categorical C1,C2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--numeric", required=True)
    ap.add_argument("--categorical", required=True)
    ap.add_argument("--label", default="label")
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--shuffle", type=int, default=100_000, help="local shuffle buffer rows (0: none)")
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()

    import ray
    import torch

    torch.set_num_threads(1)
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    numeric, categorical = args.numeric.split(","), args.categorical.split(",")
    fields = numeric + categorical + [args.label]
    rates, n = [], 0
    try:
        for _ in range(args.passes):
            t0, n = time.perf_counter(), 0
            ds = ray.data.read_parquet(args.file, columns=fields)
            for batch in ds.iter_torch_batches(batch_size=args.batch,
                                               local_shuffle_buffer_size=args.shuffle or None):
                dense = torch.stack([batch[c].float() for c in numeric], 1)
                sparse = torch.stack([batch[c].long() for c in categorical], 1)
                label = batch[args.label].float()
                n += len(label) + 0 * int(dense.shape[0] + sparse.shape[0])
            rates.append(n / (time.perf_counter() - t0))
    finally:
        ray.shutdown()
    print(json.dumps({"samples_per_sec": statistics.median(rates), "rows": n, "passes": rates}))


if __name__ == "__main__":
    main()
