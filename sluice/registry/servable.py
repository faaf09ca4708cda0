"""A servable: transform + model + input signature, predicting from raw features.

One servable directory (what the Pusher writes, one per integer version)::

    <destination>/<model name>/<version>/
        signature.json      raw inputs (name, type, required), task, classes
        transform/          the fitted TransformGraph (transform.json)
        model/              weights (model.safetensors) + architecture (model.json)

The same class scores the evaluation split in the Evaluator, batches in bulk
inference and requests in the server, so all three see the same numbers.

Example::

    servable = Servable.load("serving/ctr/3")
    servable.predict_rows([{"I1": 2.0, "C1": "c1_000042"}])   # [{'probability': 0.041}]
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from sluice.errors import SluiceError
from sluice.features import FeatureSpec

SIGNATURE = "signature.json"
_ARROW_TYPES = {"float": pa.float64(), "int": pa.int64(), "string": pa.string(), "bool": pa.bool_()}


class InvalidRequest(SluiceError):
    """A request does not match the model's signature; the message names the field."""


@dataclass
class Signature:
    """What a model takes and gives: raw input fields (type, required), task, class names."""

    model_name: str
    task: str
    inputs: dict[str, dict[str, Any]]
    label: str | None = None
    classes: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "task": self.task, "inputs": self.inputs,
                "label": self.label, "classes": self.classes, **self.extra}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Signature:
        known = {"model_name", "task", "inputs", "label", "classes"}
        return cls(d["model_name"], d["task"], d["inputs"], d.get("label"), d.get("classes"),
                   {k: v for k, v in d.items() if k not in known})

    def save(self, directory: str) -> None:
        with open(os.path.join(directory, SIGNATURE), "w") as f:
            json.dump(self.to_dict(), f, indent=1, sort_keys=True)

    @classmethod
    def build(cls, name: str, model_dir: str, transform_dir: str, required: set[str] | None = None) -> Signature:
        """The raw inputs a request must carry: what the model's features need, minus the label."""
        from sluice.train import read_model_spec
        from sluice.transform import TransformGraph

        spec = read_model_spec(model_dir)
        extra = spec.get("extra", {})
        graph = TransformGraph.load(transform_dir)
        needed = graph.required_columns([f["name"] for f in spec["features"]])
        inputs = {col: {"type": type_family(graph.input_columns[col]), "required": col in (required or set())}
                  for col in needed}
        return cls(name, spec["task"], inputs, label=extra.get("label"), classes=extra.get("classes"))


def type_family(arrow_type: str) -> str:
    """'double', 'int64', 'string', ... -> the JSON-level family: float, int, string or bool."""
    t = arrow_type.lower()
    if t.startswith(("float", "double", "decimal", "halffloat")):
        return "float"
    if "int" in t:
        return "int"
    if t.startswith("bool"):
        return "bool"
    return "string"


class Servable:
    """Loads a servable directory (or a transform + model pair) and predicts."""

    def __init__(self, transform_dir: str, model_dir: str, signature: Signature) -> None:
        from sluice.train import load_model, read_model_spec
        from sluice.transform import TransformGraph

        self.signature = signature
        self.graph = TransformGraph.load(transform_dir)
        self.model = load_model(model_dir)
        self.features = [FeatureSpec.from_dict(f) for f in read_model_spec(model_dir)["features"]]

    @classmethod
    def from_parts(cls, transform_dir: str, model_dir: str, name: str = "model") -> Servable:
        """A servable straight from a Transform output and a Trainer output (before any push)."""
        return cls(transform_dir, model_dir, Signature.build(name, model_dir, transform_dir))

    @classmethod
    def load(cls, directory: str) -> Servable:
        """Load a pushed version directory."""
        path = os.path.join(directory, SIGNATURE)
        if not os.path.isfile(path):
            raise SluiceError(f"{directory} is not a servable: {SIGNATURE} is missing")
        with open(path) as f:
            signature = Signature.from_dict(json.load(f))
        return cls(os.path.join(directory, "transform"), os.path.join(directory, "model"), signature)

    def predict(self, table: pa.Table | pa.RecordBatch) -> dict[str, np.ndarray]:
        """Raw feature columns in, prediction arrays out (``probability``, ``class_id``, ``value``)."""
        from sluice.train import feature_arrays, predict

        transformed = self.graph.apply(table, outputs=[f.name for f in self.features])
        dense, sparse = feature_arrays(transformed, self.features)
        scores = predict(self.model, dense, sparse, self.signature.task)
        if self.signature.task == "binary":
            return {"probability": scores}
        if self.signature.task == "multiclass":
            return {"class_id": scores.argmax(axis=1), "probabilities": scores}
        return {"value": scores}

    def rows_to_table(self, rows: list[Any], where: str = "instances") -> pa.Table:
        """Validate JSON rows against the signature and build an Arrow table of raw features.

        ``where`` names the request field in error messages (``instances[3].I1: ...``).
        """
        return self.table_of(self.check_rows(rows, where))

    def check_rows(self, rows: list[Any], where: str = "instances") -> dict[str, list[Any]]:
        """Validate JSON rows; returns the checked values as one list per input feature.

        Example::

            servable.check_rows([{"I1": 2, "C1": "a"}])   # {"I1": [2.0], "C1": ["a"], "I2": [None], ...}
        """
        if not isinstance(rows, list) or not rows:
            raise InvalidRequest(f"'{where}' must be a non-empty list of objects")
        inputs = self.signature.inputs
        families = {name: spec["type"] for name, spec in inputs.items()}
        required = [name for name, spec in inputs.items() if spec.get("required", False)]
        columns: dict[str, list[Any]] = {name: [] for name in inputs}
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise InvalidRequest(f"{where}[{i}] must be an object of feature values, "
                                     f"got {type(row).__name__}")
            for name in row:
                if name not in families:
                    raise InvalidRequest(f"{where}[{i}].{name}: unknown feature; expected features: "
                                         f"{', '.join(columns)}")
            # Values given are checked before absent ones, so a mistyped field is named first.
            checked = {}
            for name, value in row.items():
                family = families[name]
                if value is not None:
                    try:
                        checked[name] = _check(value, family)
                    except _BadValue as exc:
                        raise InvalidRequest(f"{where}[{i}].{name}: {exc}") from None
            for name in required:
                if checked.get(name) is None:
                    raise InvalidRequest(f"{where}[{i}].{name}: required feature is missing "
                                         f"(expected a {families[name]})")
            for name, values in columns.items():
                values.append(checked.get(name))
        return columns

    def columns_to_table(self, columns: Any, where: str = "inputs") -> pa.Table:
        """Validate columnar JSON (``{feature: [value per row]}``) and build an Arrow table.

        Example::

            servable.columns_to_table({"I1": [2.0, 3.0], "C1": ["a", "b"]})   # 2 rows
        """
        return self.table_of(self.check_columns(columns, where))

    def check_columns(self, columns: Any, where: str = "inputs") -> dict[str, list[Any]]:
        """Validate columnar JSON; returns the checked values as one list per input feature."""
        if not isinstance(columns, dict) or not columns:
            raise InvalidRequest(f"'{where}' must be a non-empty object of feature name -> list of values")
        inputs = self.signature.inputs
        rows = None
        for name, values in columns.items():
            if name not in inputs:
                raise InvalidRequest(f"{where}.{name}: unknown feature; expected features: {', '.join(inputs)}")
            if not isinstance(values, list):
                raise InvalidRequest(f"{where}.{name}: expected a list of values (one per row), got {_show(values)}")
            if rows is None:
                rows = len(values)
            elif len(values) != rows:
                raise InvalidRequest(f"{where}.{name}: {len(values)} values, expected {rows} "
                                     "(every feature needs one value per row)")
        if not rows:
            raise InvalidRequest(f"'{where}' must hold at least one row")
        out: dict[str, list[Any]] = {}
        for name, values in columns.items():
            out[name] = [_check_value(v, inputs[name]["type"], f"{where}.{name}[{i}]") for i, v in enumerate(values)]
        for name, spec in inputs.items():
            values = out.setdefault(name, [None] * rows)
            if spec.get("required", False) and None in values:
                i = values.index(None)
                where_missing = f"{where}.{name}[{i}]" if name in columns else f"{where}.{name}"
                raise InvalidRequest(f"{where_missing}: required feature is missing (expected a {spec['type']})")
        return {name: out[name] for name in inputs}

    def table_of(self, columns: dict[str, list[Any]]) -> pa.Table:
        """Checked values (one list per input feature, as ``check_rows`` returns) as an Arrow table."""
        return pa.table({name: pa.array(values, type=_ARROW_TYPES[self.signature.inputs[name]["type"]])
                         for name, values in columns.items()})

    def format_rows(self, out: dict[str, np.ndarray]) -> list[dict[str, Any]]:
        """Prediction arrays -> one JSON object per row (TF Serving's ``predictions``)."""
        if self.signature.task == "binary":
            return [{"probability": float(p)} for p in out["probability"]]
        if self.signature.task == "multiclass":
            classes = self.signature.classes or []
            return [{"class": classes[c] if c < len(classes) else int(c), "class_id": int(c),
                     "probabilities": [round(float(x), 6) for x in probs]}
                    for c, probs in zip(out["class_id"], out["probabilities"])]
        return [{"value": float(v)} for v in out["value"]]

    def predict_rows(self, rows: list[Any]) -> list[dict[str, Any]]:
        """Predict JSON rows; one dict per row, shaped for TF Serving's ``predictions``."""
        return self.format_rows(self.predict(self.rows_to_table(rows)))


class _BadValue(Exception):
    """A value that does not fit its feature type; the message lacks the location."""


def _check_value(value: Any, family: str, where: str) -> Any:
    if value is None:
        return None
    try:
        return _check(value, family)
    except _BadValue as exc:
        raise InvalidRequest(f"{where}: {exc}") from None


def _check(value: Any, family: str) -> Any:
    """``value`` converted to the feature's family (float, int, bool, string), or :class:`_BadValue`."""
    kind = type(value)
    if family == "float":
        if kind is float:
            if math.isfinite(value):
                return value
            raise _BadValue(f"expected a finite number, got {_show(value)}")
        if kind is bool or not isinstance(value, (int, float)):
            raise _BadValue(f"expected a number, got {_show(value)}")
        number = _finite_float(value)
        if number is None:
            raise _BadValue(f"expected a finite number, got {_show(value)}")
        return number
    if family == "string":
        if kind is str:
            return value
        if not isinstance(value, (str, int, float)) or kind is bool:
            raise _BadValue(f"expected a string, got {_show(value)}")
        return str(value)
    if family == "int":
        if (kind is bool or not isinstance(value, (int, float)) or _finite_float(value) is None
                or float(value) != int(value) or not _INT64_MIN <= int(value) <= _INT64_MAX):
            raise _BadValue(f"expected an integer, got {_show(value)}")
        return int(value)
    if family == "bool":
        if kind is not bool:
            raise _BadValue(f"expected true or false, got {_show(value)}")
        return value
    raise _BadValue(f"unknown feature type {family!r}")


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _finite_float(value: int | float) -> float | None:
    """``float(value)``, or None when it is not finite (inf, nan, an int beyond float range)."""
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _show(value: Any, limit: int = 80) -> str:
    """A request value for an error message, cut short (it may be megabytes, or a huge int)."""
    try:
        text = json.dumps(value)
    except (ValueError, RecursionError):
        text = f"a {type(value).__name__}"
    return text if len(text) <= limit else text[:limit] + "..."
