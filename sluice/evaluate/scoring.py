"""Scoring a dataset with a servable into a predictions dataset, batch by batch on the engine.

The predictions keep the columns asked for (keys, slice features) next to
``prediction`` (probability of class 1, predicted class id, or value), the
class probabilities ``prob_<k>`` for multiclass models and, when a label
feature is given, the transformed ``label``.

Example::

    servable = Servable.from_parts("out/transform", "out/model")
    score(engine, engine.read_parquet(eval_files), servable, "out/predictions",
          label_feature="label", keep=["user_id", "country"])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from sluice.engine import Dataset, Engine, WriteResult
from sluice.registry.servable import Servable


def prediction_batch(servable: Servable, batch: pa.RecordBatch, *, label_feature: str | None = None,
                     keep: Sequence[str] = ()) -> pa.RecordBatch:
    """One batch of raw rows -> one batch of predictions (plus kept columns and the label)."""
    out = servable.predict(batch)
    columns: dict[str, pa.Array] = {name: batch.column(name) for name in keep}
    task = servable.signature.task
    if task == "binary":
        columns["prediction"] = pa.array(out["probability"].astype(np.float64))
    elif task == "multiclass":
        columns["prediction"] = pa.array(out["class_id"].astype(np.int64))
        for k in range(out["probabilities"].shape[1]):
            columns[f"prob_{k}"] = pa.array(out["probabilities"][:, k].astype(np.float64))
    else:
        columns["prediction"] = pa.array(out["value"].astype(np.float64))
    if label_feature is not None:
        label = servable.graph.apply(batch, outputs=[label_feature]).column(label_feature)
        columns["label"] = label.cast(pa.int64()) if task == "multiclass" else label.cast(pa.float64())
    return pa.RecordBatch.from_pydict(columns)


def score(engine: Engine, dataset: Dataset, servable: Servable, out_dir: str, *,
          label_feature: str | None = None, keep: Sequence[str] = (), batch_size: int = 65536) -> WriteResult:
    """Write predictions for every row of ``dataset`` as Parquet shards under ``out_dir``."""
    return engine.map_batches(
        dataset, lambda b: prediction_batch(servable, b, label_feature=label_feature, keep=keep),
        out_dir, batch_size=batch_size)
