"""pandas, as a data scientist would write it; reading the Parquet files is inside the clock.

Statistics: ``pd.read_parquet``, ``df.describe(percentiles=deciles)`` of the numeric
columns, ``value_counts()`` of every string column (top 10 and the distinct count).
Transform: read, ``log1p(clip(fillna(0), 0))`` and z-score (population std) per numeric
column, ``value_counts`` top 20,000 + ``Index.get_indexer`` per string column (OOV id =
vocabulary size), ``DataFrame.to_parquet`` (zstd). Everything is in memory: peak memory
grows with the data (the benchmark skips sizes that would not fit).
"""

from __future__ import annotations

import os

import numpy as np

from benchmarks.peers.features import CATEGORICAL, DECILES, NUMERIC, STATS_NUMERIC, TOP_K


class Peer:
    def __init__(self, files: list[str], rows: int, work_dir: str) -> None:
        self.files = files

    def _read(self):
        import pandas as pd

        return pd.concat([pd.read_parquet(f) for f in self.files], ignore_index=True) \
            if len(self.files) > 1 else pd.read_parquet(self.files[0])

    def statistics(self) -> int:
        df = self._read()
        df[STATS_NUMERIC].describe(percentiles=DECILES)
        for c in CATEGORICAL:
            vc = df[c].value_counts()
            _ = vc.head(10), len(vc), df[c].str.len().agg(["min", "mean", "max"])
        return len(df)

    def transform(self, out_dir: str) -> int:
        import pandas as pd

        df = self._read()
        out = {}
        for c in NUMERIC:
            v = np.log1p(df[c].fillna(0).clip(lower=0).to_numpy())
            out[c] = ((v - v.mean()) / (v.std() or 1.0)).astype(np.float32)
        for c in CATEGORICAL:
            vocab = pd.Index(df[c].value_counts().index[:TOP_K])
            ids = vocab.get_indexer(df[c])
            out[c] = np.where(ids < 0, len(vocab), ids)
        out["label"] = df["label"].to_numpy(np.float32)
        del df
        result = pd.DataFrame(out)
        os.makedirs(out_dir, exist_ok=True)
        result.to_parquet(os.path.join(out_dir, "part-00000.parquet"), compression="zstd", index=False)
        return len(result)
