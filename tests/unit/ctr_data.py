"""Small transformed CTR data for the training tests: the CTR example's generator and
preprocessing_fn, fitted on the local engine, written as Parquet with many row groups (the
unit of data-parallel sharding)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[2]


def make_ctr(directory: str | os.PathLike, rows: int = 30_000, seed: int = 0,
             row_group_size: int = 1000) -> tuple[list[str], list[str], list, str]:
    """(train_files, eval_files, feature specs, label) of ``rows`` CTR rows split 80/20."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    import sluice.transform as st
    from examples.ctr import data
    from examples.ctr.pipeline import preprocessing_fn
    from sluice.engine import get_engine

    directory = Path(directory)
    raw = pa.Table.from_batches(list(data.generate(rows, seed=seed)))
    cut = int(rows * 0.8)
    raw_train = directory / "raw-train.parquet"
    pq.write_table(raw.slice(0, cut), raw_train)
    engine = get_engine("local")
    graph = st.fit(engine, engine.read_parquet([str(raw_train)]), preprocessing_fn)
    out = []
    for name, part in (("train", raw.slice(0, cut)), ("eval", raw.slice(cut))):
        table = pa.Table.from_batches([graph.apply(b) for b in part.to_batches(max_chunksize=65536)])
        path = directory / f"{name}.parquet"
        pq.write_table(table, path, row_group_size=row_group_size)
        out.append([str(path)])
    features = [s for s in graph.feature_specs if s.name != "label"]
    return out[0], out[1], features, "label"
