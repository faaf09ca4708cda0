"""Deterministic train/eval splits, assigned by an Arrow batch function.

Each row's split comes from a stable 64-bit hash (FNV-1a, see
:mod:`sluice.transform.hashing`) of its key column, or of every column when no
key is given, mixed with a seed. The function runs on Arrow record batches, so
the local engine and Spark (``mapInArrow``) execute the very same code: the
same data lands in the same split on any engine, however the files are cut.

Example::

    assign = SplitAssigner({"train": 0.8, "eval": 0.2}, key="user_id", seed=0)
    labelled = assign(batch)           # batch + a "__split" string column
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from sluice.transform.hashing import combine, mix64, stable_hash

SPLIT_COLUMN = "__split"
BUCKETS = 10_000


@dataclass(frozen=True)
class SplitAssigner:
    """A picklable batch function adding ``__split`` from a hash of ``key`` (or the whole row)."""

    splits: Mapping[str, float]
    key: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.splits or any(r <= 0 for r in self.splits.values()):
            raise ValueError(f"split ratios must be positive, got {dict(self.splits)}")

    def bucket_upper_bounds(self) -> list[int]:
        """Each split's exclusive upper bucket (of ``BUCKETS``), in order; the last is ``BUCKETS``."""
        total = float(sum(self.splits.values()))
        bounds, upper = [], 0.0
        for ratio in list(self.splits.values())[:-1]:
            upper += ratio / total
            bounds.append(round(upper * BUCKETS))
        return bounds + [BUCKETS]

    def buckets(self, batch: pa.RecordBatch) -> np.ndarray:
        """Each row's bucket in ``[0, BUCKETS)``."""
        columns: Sequence[str] = [self.key] if self.key else batch.schema.names
        seed = np.full(batch.num_rows, np.uint64(self.seed & 0xFFFFFFFFFFFFFFFF), dtype=np.uint64)
        h = combine([seed] + [stable_hash(batch.column(c)) for c in columns])
        return (mix64(h) % np.uint64(BUCKETS)).astype(np.int64)

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        names = list(self.splits)
        index = np.searchsorted(np.array(self.bucket_upper_bounds()), self.buckets(batch), side="right")
        labels = pa.DictionaryArray.from_arrays(pa.array(index.astype(np.int32)), pa.array(names)).cast(pa.string())
        return pa.RecordBatch.from_arrays(list(batch.columns) + [labels],
                                          schema=batch.schema.append(pa.field(SPLIT_COLUMN, pa.string())))
