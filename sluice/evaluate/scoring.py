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

import threading
from collections.abc import Sequence
from typing import Any

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


class BatchScorer:
    """A picklable batch function scoring raw rows: what ``map_batches`` ships to Spark executors.

    Built from the servable's directories, it pickles as those paths and loads
    the servable lazily, once per executor process (a Python worker scores many
    batches). Built from a servable object only, it pickles the servable itself.

    Example::

        scorer = BatchScorer(transform_dir="out/transform", model_dir="out/model", label_feature="label")
        scorer(batch)     # prediction, label (and kept columns) for each row
    """

    def __init__(self, servable: Servable | None = None, *, transform_dir: str | None = None,
                 model_dir: str | None = None, label_feature: str | None = None, keep: Sequence[str] = ()) -> None:
        if servable is None and not (transform_dir and model_dir):
            raise ValueError("BatchScorer needs a servable or both transform_dir and model_dir")
        self.parts = (transform_dir, model_dir) if transform_dir and model_dir else None
        self.label_feature = label_feature
        self.keep = tuple(keep)
        self._servable = servable
        self._signature = servable.signature.to_dict() if servable is not None else None

    def servable(self) -> Servable:
        """The servable, loaded on first use in this process (and cached for later batches)."""
        if self._servable is None:
            assert self.parts is not None
            self._servable = _load(self.parts, self._signature)
        return self._servable

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.parts is not None:
            state["_servable"] = None  # executors read the directories instead of a pickled model
        return state

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        return prediction_batch(self.servable(), batch, label_feature=self.label_feature, keep=self.keep)


_LOADED: dict[tuple[str, str], Servable] = {}
_LOCK = threading.Lock()


def _load(parts: tuple[str, str], signature: dict[str, Any] | None) -> Servable:
    """One servable per (transform, model) directory pair per process."""
    from sluice.registry.servable import Signature

    with _LOCK:
        if parts not in _LOADED:
            transform_dir, model_dir = parts
            _LOADED[parts] = (Servable(transform_dir, model_dir, Signature.from_dict(signature)) if signature
                              else Servable.from_parts(transform_dir, model_dir))
        return _LOADED[parts]


def score(engine: Engine, dataset: Dataset, servable: Servable, out_dir: str, *,
          label_feature: str | None = None, keep: Sequence[str] = (), batch_size: int = 65536,
          parts: tuple[str, str] | None = None) -> WriteResult:
    """Write predictions for every row of ``dataset`` as Parquet shards under ``out_dir``.

    ``parts`` = (transform dir, model dir) the servable was loaded from: on a
    cluster, executors load it from there rather than receiving a pickled model.
    """
    scorer = BatchScorer(servable, transform_dir=parts[0] if parts else None,
                         model_dir=parts[1] if parts else None, label_feature=label_feature, keep=keep)
    return engine.map_batches(dataset, scorer, out_dir, batch_size=batch_size)
