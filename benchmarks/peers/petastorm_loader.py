"""Loader peer: Petastorm's ``make_batch_reader`` + ``BatchedDataLoader`` over the transformed CTR Parquet.

Runs in its own venv (benchmarks/.venv-petastorm: pyarrow 14.0.2, numpy < 2, petastorm 0.13.1;
benchmarks/training.py creates it). Prints one JSON line: the median samples/s over ``--passes``
epochs (a fresh reader per epoch, each consumed to the end), batches of ``--batch`` with a shuffling
queue of ``--shuffle`` rows, stacked into the same dense float32 [B, n_numeric] / sparse int64
[B, n_categorical] / float32 label tensors the Sluice loader yields.

    benchmarks/.venv-petastorm/bin/python benchmarks/peers/petastorm_loader.py FILE \\
        --numeric I1,I2 --categorical C1,C2 --label label
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--numeric", required=True)
    ap.add_argument("--categorical", required=True)
    ap.add_argument("--label", default="label")
    ap.add_argument("--batch", type=int, default=4096)
    ap.add_argument("--shuffle", type=int, default=100_000, help="shuffling queue capacity (0: none)")
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2, help="petastorm reader pool threads")
    args = ap.parse_args()

    import torch
    from petastorm import make_batch_reader
    from petastorm.pytorch import BatchedDataLoader

    torch.set_num_threads(1)
    numeric, categorical = args.numeric.split(","), args.categorical.split(",")
    fields = numeric + categorical + [args.label]
    rates, n = [], 0
    for _ in range(args.passes):
        t0, n = time.perf_counter(), 0
        with make_batch_reader("file://" + args.file, schema_fields=fields, num_epochs=1, workers_count=args.workers,
                               reader_pool_type="thread", shuffle_row_groups=args.shuffle > 0) as reader:
            loader = BatchedDataLoader(reader, batch_size=args.batch, shuffling_queue_capacity=args.shuffle)
            for batch in loader:
                dense = torch.stack([batch[c].float() for c in numeric], 1)
                sparse = torch.stack([batch[c].long() for c in categorical], 1)
                label = batch[args.label].float()
                n += len(label) + 0 * int(dense.shape[0] + sparse.shape[0])
        rates.append(n / (time.perf_counter() - t0))
    print(json.dumps({"samples_per_sec": statistics.median(rates), "rows": n, "passes": rates}))


if __name__ == "__main__":
    main()
