"""Mappers to categorical ids (int64 in ``[0, cardinality)``): bucketize, vocabulary, hash_bucket, feature_cross.

Only bucketize has a SQL form: ids from vocabularies and hashes are model
inputs, never analyzer inputs, and a SQL FNV would be a second implementation
to keep in step with the Arrow one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sluice.transform.dtypes import ValueKind, sql_literal, to_float64, vocabulary_type
from sluice.transform.hashing import combine, stable_hash, to_buckets
from sluice.transform.mappers import f64_sql, numeric_input, require_kind
from sluice.transform.nodes import AnalyzerSpec, Feature, Op, TransformError, register

_HASHABLE = ("string", "number", "categorical")


def _positive_int(op: str, name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TransformError(f"{op}: {name} must be an integer >= {minimum}, got {value!r}")


@register
class Bucketize(Op):
    """Bucket ``i`` holds ``boundaries[i-1] <= x < boundaries[i]``; ``len(boundaries) + 1`` ids.

    Boundaries are fixed, or fitted quantiles (``num_buckets``; duplicates
    collapse, so a skewed column can get fewer buckets). Missing -> bucket 0.
    """

    name = "bucketize"

    def check(self, inputs: Sequence[Feature], params: dict[str, Any]) -> tuple[str, ValueKind]:
        numeric_input("bucketize", inputs)
        boundaries, num_buckets = params.get("boundaries"), params.get("num_buckets")
        if (boundaries is None) == (num_buckets is None):
            raise TransformError("bucketize needs exactly one of num_buckets= (quantiles) or boundaries=")
        if num_buckets is not None:
            _positive_int("bucketize", "num_buckets", num_buckets, 2)
        elif not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in boundaries) \
                or any(a >= b for a, b in zip(boundaries, boundaries[1:])):
            raise TransformError(f"bucketize: boundaries must be strictly increasing numbers, got {boundaries!r}")
        return "int64", "categorical"

    def analyzers(self, node: Feature) -> dict[str, AnalyzerSpec]:
        n = node.params.get("num_buckets")
        return {"boundaries": AnalyzerSpec("quantiles", node.inputs[0], {"num_buckets": n})} if n else {}

    def prepare(self, node: Feature, bound: dict[str, Any]) -> dict[str, Any]:
        boundaries = node.params.get("boundaries")
        if boundaries is None:
            boundaries = bound.get("boundaries") or []
        return {"boundaries": np.asarray(boundaries, dtype=np.float64)}

    def apply(self, args: list[pa.Array], node: Feature, bound: dict[str, Any]) -> pa.Array:
        x = to_float64(args[0]).to_numpy(zero_copy_only=False)  # nulls -> NaN
        ids = np.searchsorted(bound["boundaries"], x, side="right")
        ids[np.isnan(x)] = 0
        return pa.array(ids.astype(np.int64, copy=False))

    def to_sql(self, args: list[str], node: Feature, bound: dict[str, Any]) -> str:
        x = f64_sql(args[0])
        steps = " + ".join(f"CAST({x} >= {sql_literal(float(b))} AS BIGINT)" for b in bound["boundaries"])
        return f"(CASE WHEN {x} IS NULL THEN 0 ELSE {steps or '0'} END)"

    def cardinality(self, node: Feature, bound: dict[str, Any]) -> int:
        return len(bound["boundaries"]) + 1


@register
class Vocabulary(Op):
    """Value -> its rank in the fitted vocabulary (most frequent first, ties by value).

    Ids ``0 .. len(vocab)-1`` are vocabulary values; ``len(vocab) .. len(vocab) +
    num_oov_buckets - 1`` are out-of-vocabulary buckets for unseen and missing
    values (one bucket, or a stable hash over several). With
    ``num_oov_buckets=0`` (labels) an unseen or missing value is an error.
    """

    name = "vocabulary"

    def check(self, inputs: Sequence[Feature], params: dict[str, Any]) -> tuple[str, ValueKind]:
        if len(inputs) != 1:
            raise TransformError(f"vocabulary takes 1 input, got {len(inputs)}")
        require_kind("vocabulary", inputs[0], ("string", "number"))
        if params.get("top_k") is not None:
            _positive_int("vocabulary", "top_k", params["top_k"])
        if params.get("frequency_threshold") is not None:
            _positive_int("vocabulary", "frequency_threshold", params["frequency_threshold"])
        _positive_int("vocabulary", "num_oov_buckets", params.get("num_oov_buckets"), 0)
        return "int64", "categorical"

    def analyzers(self, node: Feature) -> dict[str, AnalyzerSpec]:
        params = {"top_k": node.params.get("top_k"), "frequency_threshold": node.params.get("frequency_threshold")}
        return {"vocabulary": AnalyzerSpec("vocabulary", node.inputs[0], params)}

    def prepare(self, node: Feature, bound: dict[str, Any]) -> dict[str, Any]:
        values = (bound.get("vocabulary") or {}).get("values", [])
        value_type, _ = vocabulary_type(node.inputs[0].dtype)
        return {"values": pa.array(values, type=value_type), "size": len(values)}

    def apply(self, args: list[pa.Array], node: Feature, bound: dict[str, Any]) -> pa.Array:
        values = args[0]
        vocab: pa.Array = bound["values"]
        if values.type != vocab.type:
            values = pc.cast(values, vocab.type)
        if len(values) <= 16 + bound["size"] // 16 and _hashes_like_arrow(vocab.type):
            # One OOV bucket is filled in the lookup itself; otherwise unseen stays null, as below.
            index = _lookup_small(values, bound, bound["size"] if node.params["num_oov_buckets"] == 1 else None)
        else:
            index = pc.cast(pc.index_in(values, value_set=vocab), pa.int64())  # null: unseen or missing
        if index.null_count == 0:
            return index
        num_oov = node.params["num_oov_buckets"]
        if num_oov == 0:
            unseen = pc.unique(values.filter(pc.is_null(index))).to_pylist()[:5]
            raise TransformError(f"{node.describe()}: value(s) {unseen} not in the vocabulary "
                                 f"and num_oov_buckets=0")
        if num_oov == 1:
            return pc.fill_null(index, bound["size"])
        oov = pc.is_null(index)
        ids = np.array(pc.fill_null(index, 0))  # a writable copy
        ids[oov.to_numpy(zero_copy_only=False)] = bound["size"] + to_buckets(stable_hash(values.filter(oov)), num_oov)
        return pa.array(ids)

    def cardinality(self, node: Feature, bound: dict[str, Any]) -> int:
        return bound["size"] + node.params["num_oov_buckets"]


def _hashes_like_arrow(value_type: pa.DataType) -> bool:
    """Types whose Python values compare exactly as Arrow's do (floats differ on -0.0 and NaN)."""
    return pa.types.is_string(value_type) or pa.types.is_large_string(value_type) or pa.types.is_integer(value_type)


def _lookup_small(values: pa.Array, bound: dict[str, Any], unseen: int | None) -> pa.Array:
    """``index_in`` for a few rows through a dict cached in ``bound``: the same ids, and
    ``unseen`` (None: null) for values not in the vocabulary or missing.

    ``index_in`` hashes the whole vocabulary on every call (~15 us + 0.03 us per value: 0.7 ms for
    20k values), which dominates a serving request; the dict costs ~0.55 us per row instead, so it
    wins below about 16 + size/16 rows.
    """
    lookup = bound.get("lookup")
    if lookup is None:  # built on first use; two threads racing build equal dicts
        lookup = bound["lookup"] = {v: i for i, v in enumerate(bound["values"].to_pylist())}
    get = lookup.get
    return pa.array([get(v, unseen) for v in values.to_pylist()], pa.int64())


@register
class HashBucket(Op):
    """A stable hash of the value's text modulo ``num_buckets`` (see :mod:`sluice.transform.hashing`)."""

    name = "hash_bucket"

    def check(self, inputs: Sequence[Feature], params: dict[str, Any]) -> tuple[str, ValueKind]:
        if len(inputs) != 1:
            raise TransformError(f"hash_bucket takes 1 input, got {len(inputs)}")
        require_kind("hash_bucket", inputs[0], _HASHABLE)
        _positive_int("hash_bucket", "num_buckets", params.get("num_buckets"))
        return "int64", "categorical"

    def apply(self, args: list[pa.Array], node: Feature, bound: dict[str, Any]) -> pa.Array:
        return pa.array(to_buckets(stable_hash(args[0]), node.params["num_buckets"]))

    def cardinality(self, node: Feature, bound: dict[str, Any]) -> int:
        return node.params["num_buckets"]


@register
class FeatureCross(Op):
    """The combination of several values per row, hashed into ``hash_buckets`` ids.

    Each input is hashed on its own (cheap: per distinct value), then the
    64-bit hashes are folded in input order, so ``[a, b]`` and ``[b, a]`` differ.
    """

    name = "feature_cross"

    def check(self, inputs: Sequence[Feature], params: dict[str, Any]) -> tuple[str, ValueKind]:
        if len(inputs) < 2:
            raise TransformError(f"feature_cross needs at least 2 inputs, got {len(inputs)}")
        for node in inputs:
            require_kind("feature_cross", node, _HASHABLE)
        _positive_int("feature_cross", "hash_buckets", params.get("hash_buckets"))
        return "int64", "categorical"

    def apply(self, args: list[pa.Array], node: Feature, bound: dict[str, Any]) -> pa.Array:
        return pa.array(to_buckets(combine([stable_hash(a) for a in args]), node.params["hash_buckets"]))

    def cardinality(self, node: Feature, bound: dict[str, Any]) -> int:
        return node.params["hash_buckets"]
