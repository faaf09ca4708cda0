"""Preprocessing without training/serving skew, the TensorFlow Transform way.

A preprocessing function describes model features from raw columns with
mappers (row-wise) and analyzers (a full pass over the data). ``fit`` runs all
analyzers on the engine in as few SQL passes as possible; the resulting
:class:`TransformGraph` applies the features to Arrow batches with one
implementation, used for the batch transform and for serving alike, and saves
as human-readable JSON.

Example::

    import sluice.transform as st
    from sluice.engine import get_engine

    def preprocessing_fn(x: st.Inputs) -> dict[str, st.Feature]:
        return {
            "age": st.zscore(st.fill_missing(x["age"])),
            "fare": st.scale_to_0_1(st.clip(st.log1p(x["fare"]), 0, 10)),
            "country": st.vocabulary(x["country"], top_k=1000, num_oov_buckets=1),
            "label": st.passthrough(x["label"]),
        }

    engine = get_engine("local")
    graph = st.fit(engine, engine.read_parquet(["train.parquet"]), preprocessing_fn)
    graph.apply(batch)          # pa.RecordBatch: float32 and int64 columns
    graph.save("out/transform")
"""

from sluice.transform.api import (
    bucketize, clip, feature_cross, fill_missing, hash_bucket, log1p, passthrough, scale_to_0_1, vocabulary, zscore,
)
from sluice.transform.graph import TransformGraph, fit
from sluice.transform.nodes import Feature, Inputs, TransformError, UnknownColumnError

__all__ = [
    "Feature", "Inputs", "TransformError", "TransformGraph", "UnknownColumnError",
    "bucketize", "clip", "feature_cross", "fill_missing", "fit", "hash_bucket", "log1p",
    "passthrough", "scale_to_0_1", "vocabulary", "zscore",
]
