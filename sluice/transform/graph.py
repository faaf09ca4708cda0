"""The fitted transform: fit it on an engine, apply it to Arrow batches, save it as JSON.

A :class:`TransformGraph` is the traced expressions plus the analyzer results.
``apply`` is the only implementation of the features: the batch transform of a
whole dataset (on any engine, through ``map_batches``) and the serving path
both call it, so training and serving see the same numbers by construction.

Example::

    import sluice.transform as st
    graph = st.fit(engine, ds, lambda x: {"age": st.zscore(x["age"])})
    graph.apply(batch)                  # pa.RecordBatch with a float32 'age'
    graph.save("artifacts/transform")   # -> artifacts/transform/transform.json
    st.TransformGraph.load("artifacts/transform").feature_specs
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

# Importing the op modules registers their ops, which loading a graph needs.
import sluice.transform.categorical  # noqa: F401
import sluice.transform.mappers  # noqa: F401
from sluice.engine.base import Dataset, Engine, WriteResult
from sluice.features import FeatureSpec
from sluice.transform.analyzers import bound_values, run_analyzers
from sluice.transform.nodes import OPS, Feature, Inputs, Op, TransformError

FILENAME = "transform.json"
FORMAT = "sluice.transform"
VERSION = 1

Batch = pa.RecordBatch | pa.Table | Mapping[str, Any]
PreprocessingFn = Callable[[Inputs], Mapping[str, Feature]]


@dataclass
class _Step:
    """One node to evaluate per batch: its op, input keys (or column name) and prepared fitted values."""

    key: str
    op: Op
    node: Feature
    args: tuple[str, ...]
    bound: dict[str, Any]


def output_kind(name: str, node: Feature) -> str:
    """``numeric``, ``categorical`` or ``passthrough`` (carried as-is, not a model feature)."""
    if node.kind == "number":
        return "numeric"
    if node.kind == "categorical":
        return "categorical"
    if node.op == "passthrough":
        return "passthrough"
    raise TransformError(
        f"output {name!r} is a {node.kind} column ({node.describe()}); turn it into ids with "
        f"st.vocabulary or st.hash_bucket, or wrap it in st.passthrough to carry it as-is")


def trace(preprocessing_fn: PreprocessingFn, inputs: Inputs) -> dict[str, Feature]:
    """Run a preprocessing function on symbolic inputs and check what it returns."""
    outputs = preprocessing_fn(inputs)
    if not isinstance(outputs, Mapping):
        raise TransformError(f"preprocessing_fn must return a dict of name -> feature, got {type(outputs).__name__}")
    for name, node in outputs.items():
        if not isinstance(name, str) or not isinstance(node, Feature):
            raise TransformError(f"preprocessing_fn output {name!r} must map a str to a feature, got {node!r}")
        output_kind(name, node)
    return dict(outputs)


@functools.cache
def _zero_f32() -> pa.Scalar:
    return pa.scalar(0.0, pa.float32())


def _read_column(batch: Batch, name: str) -> pa.Array | None:
    if isinstance(batch, pa.RecordBatch):
        i = batch.schema.get_field_index(name)
        return batch.column(i) if i >= 0 else None
    if isinstance(batch, pa.Table):
        return batch.column(name).combine_chunks() if name in batch.column_names else None
    if name not in batch:
        return None
    value = batch[name]
    if isinstance(value, pa.ChunkedArray):
        return value.combine_chunks()
    if isinstance(value, pa.Array):
        return value
    if value is None or isinstance(value, (str, bytes, int, float, bool)):
        value = [value]  # one row, as a serving request sends it
    return pa.array(value)


class TransformGraph:
    """Fitted preprocessing: output expressions, raw input types and analyzer results."""

    def __init__(self, outputs: Mapping[str, Feature], input_columns: Mapping[str, str],
                 analyzer_results: Mapping[str, Any]):
        self.input_columns: dict[str, str] = dict(input_columns)
        self.analyzer_results: dict[str, Any] = dict(analyzer_results)
        self._outputs = dict(outputs)
        self._kinds = {name: output_kind(name, node) for name, node in self._outputs.items()}
        self._steps: dict[str, _Step] = {}
        for node in self._outputs.values():
            for n in node.walk():
                if n.describe() not in self._steps:
                    args = (n.params["name"],) if n.op == "column" else tuple(i.describe() for i in n.inputs)
                    self._steps[n.describe()] = _Step(n.describe(), OPS[n.op], n, args,
                                                      bound_values(n, self.analyzer_results))
        self._plans: dict[tuple[str, ...], list[_Step]] = {}
        self.feature_specs: list[FeatureSpec] = [
            FeatureSpec(name, kind, self._cardinality(name) if kind == "categorical" else None)
            for name, kind in self._kinds.items() if kind != "passthrough"]

    def _cardinality(self, name: str) -> int:
        step = self._steps[self._outputs[name].describe()]
        size = step.op.cardinality(step.node, step.bound)
        if not size:
            raise TransformError(f"feature {name!r} ({step.node.describe()}) has no ids: "
                                 f"its vocabulary is empty and num_oov_buckets=0")
        return size

    @property
    def output_names(self) -> list[str]:
        """Every output column, model features and passthrough columns, in order."""
        return list(self._outputs)

    @property
    def passthrough_columns(self) -> list[str]:
        """Outputs carried unchanged (ids, raw strings) that are not model features."""
        return [n for n, k in self._kinds.items() if k == "passthrough"]

    def vocabulary(self, name: str) -> list[Any]:
        """The values behind the ids of a vocabulary feature, id order (e.g. label class names).

        Example::

            graph.vocabulary("species")   # ['Adelie', 'Gentoo', 'Chinstrap']
        """
        node = self._outputs.get(name)
        if node is None or node.op != "vocabulary":
            vocabs = [n for n, f in self._outputs.items() if f.op == "vocabulary"]
            raise TransformError(f"{name!r} is not a vocabulary feature; vocabulary features: {vocabs}")
        return list(self._steps[node.describe()].bound["values"].to_pylist())

    def _plan(self, names: tuple[str, ...]) -> list[_Step]:
        if names not in self._plans:
            unknown = [n for n in names if n not in self._outputs]
            if unknown:
                raise TransformError(f"unknown output(s) {unknown}; outputs: {self.output_names}")
            needed = {n.describe() for name in names for n in self._outputs[name].walk()}
            self._plans[names] = [s for s in self._steps.values() if s.key in needed]
        return self._plans[names]

    def required_columns(self, outputs: Sequence[str] | None = None) -> list[str]:
        """Raw columns needed to compute ``outputs`` (all outputs by default)."""
        steps = self._plan(tuple(self._outputs if outputs is None else outputs))
        return [s.args[0] for s in steps if s.node.op == "column"]

    def apply(self, batch: Batch, outputs: Sequence[str] | None = None) -> pa.RecordBatch:
        """Transform raw columns into model-ready ones (vectorized; the serving path too).

        ``batch`` is a RecordBatch, a Table, or a dict of column -> values (a
        serving request); extra columns are ignored. ``outputs`` limits the
        result to some outputs, so serving can skip the label it never receives.

        Example::

            graph.apply({"age": [31.0, None], "country": ["DE", "??"]}, outputs=["age", "country"])
        """
        if type(batch).__module__.startswith("pandas"):
            batch = pa.Table.from_pandas(batch, preserve_index=False)
        if isinstance(batch, pa.Table) and batch.num_rows:
            # One contiguous batch: reading ~40 columns from it is then a lookup each, where a
            # Table would combine every column's chunks (a millisecond per serving request).
            batch = batch.combine_chunks().to_batches()[0]
        names = tuple(self._outputs if outputs is None else outputs)
        values: dict[str, pa.Array] = {}
        for step in self._plan(names):
            if step.node.op == "column":
                column = _read_column(batch, step.args[0])
                if column is None:
                    users = [n for n in names if step.key in {x.describe() for x in self._outputs[n].walk()}]
                    raise TransformError(f"input column {step.args[0]!r} (needed by {users}) is missing "
                                         f"from the batch")
                args = [column]
            else:
                args = [values[k] for k in step.args]
            values[step.key] = step.op.apply(args, step.node, step.bound)
        arrays = [self._finish(name, values[self._outputs[name].describe()]) for name in names]
        return pa.RecordBatch.from_arrays(arrays, names=list(names))

    def _finish(self, name: str, values: pa.Array) -> pa.Array:
        kind = self._kinds[name]
        if kind == "numeric":
            # A numeric feature that is still missing becomes 0.0 (for zscore: the mean).
            return pc.fill_null(pc.cast(values, pa.float32(), safe=False), _zero_f32())
        if kind == "categorical":
            return values if values.type == pa.int64() else pc.cast(values, pa.int64())
        return values

    def transform(self, engine: Engine, ds: Dataset, out_dir: str, *, batch_size: int = 65536,
                  rows_per_file: int = 1_000_000) -> WriteResult:
        """Apply the graph to a whole dataset on the engine, writing Parquet shards."""
        return engine.map_batches(ds, self.apply, out_dir, batch_size=batch_size, rows_per_file=rows_per_file)

    def to_dict(self) -> dict[str, Any]:
        specs = {s.name: s for s in self.feature_specs}
        features = [{"name": name, "kind": kind,
                     "cardinality": specs[name].cardinality if name in specs else None,
                     "expr": self._outputs[name].to_dict()} for name, kind in self._kinds.items()]
        return {"format": FORMAT, "version": VERSION, "input_columns": self.input_columns,
                "features": features, "analyzer_results": self.analyzer_results}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TransformGraph:
        if d.get("format") != FORMAT or d.get("version") != VERSION:
            raise TransformError(f"not a {FORMAT} v{VERSION} document: format={d.get('format')!r} "
                                 f"version={d.get('version')!r}")
        columns = d["input_columns"]
        outputs = {f["name"]: Feature.from_dict(f["expr"], columns) for f in d["features"]}
        graph = cls(outputs, columns, d["analyzer_results"])
        saved = [(f["name"], f["kind"], f["cardinality"]) for f in d["features"] if f["kind"] != "passthrough"]
        rebuilt = [(s.name, s.kind, s.cardinality) for s in graph.feature_specs]
        if saved != rebuilt:
            raise TransformError(f"transform document is inconsistent: features {saved} rebuild as {rebuilt}")
        return graph

    def save(self, directory: str) -> str:
        """Write ``transform.json`` (human-readable, no pickle) under ``directory``; returns its path."""
        path = os.path.join(directory, FILENAME)
        text = json.dumps(self.to_dict(), indent=2)
        if "://" in directory:
            import fsspec  # only for remote artifact stores

            with fsspec.open(path, "w") as f:
                f.write(text)
            return path
        os.makedirs(directory, exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)  # a reader never sees half a file
        return path

    @classmethod
    def load(cls, directory: str) -> TransformGraph:
        """Read a graph saved by :meth:`save` (a directory, or the ``transform.json`` itself)."""
        path = directory if directory.endswith(".json") else os.path.join(directory, FILENAME)
        if "://" in path:
            import fsspec

            with fsspec.open(path, "r") as f:
                return cls.from_dict(json.load(f))
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def __repr__(self) -> str:
        return f"TransformGraph(outputs={self.output_names}, inputs={list(self.input_columns)})"


def fit(engine: Engine, dataset: Dataset, preprocessing_fn: PreprocessingFn) -> TransformGraph:
    """Trace ``preprocessing_fn`` on the dataset's schema and fit its analyzers on the engine.

    Example::

        graph = st.fit(get_engine("local"), ds, lambda x: {"fare": st.scale_to_0_1(st.log1p(x["fare"]))})
        graph.analyzer_results["min(log1p(fare))"]
    """
    inputs = Inputs(engine.schema(dataset))
    outputs = trace(preprocessing_fn, inputs)
    used = {n.params["name"] for out in outputs.values() for n in out.walk() if n.op == "column"}
    columns = {name: dtype for name, dtype in inputs.types.items() if name in used}
    return TransformGraph(outputs, columns, run_analyzers(engine, dataset, outputs.values()))
