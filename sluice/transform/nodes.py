"""The expression DAG a preprocessing function builds, and the tracing that builds it.

``x["age"]`` returns a symbolic :class:`Feature`; every mapper or analyzer
call wraps its inputs in a new node. Nothing is computed while tracing: the
DAG is later compiled to SQL (to feed analyzers during the fit) and evaluated
over Arrow arrays (every batch transform and every serving request).

What an operation *means* lives in one :class:`Op` per name, registered in
:data:`OPS` by the modules that define them (``numeric``, ``categorical``);
a node only stores the op name, its inputs and JSON-able parameters, so a
saved graph is plain data.

Example::

    x = Inputs({"age": "float64"})
    node = Feature.make("zscore", [x["age"]])
    node.describe()            # 'zscore(age)'
    list(node.analyzers)       # ['mean', 'std']
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from sluice.transform.dtypes import ValueKind, kind_of, type_name


class TransformError(ValueError):
    """A preprocessing function, or a batch given to a fitted graph, is not valid."""


class UnknownColumnError(TransformError, KeyError):
    """A preprocessing function asked for a column the dataset does not have."""

    def __str__(self) -> str:  # KeyError would show the repr of the message
        return str(self.args[0])


@dataclass(eq=False)
class AnalyzerSpec:
    """A full-pass statistic of one expression: ``mean``, ``std``, ``min``, ``max``,
    ``quantiles`` (param ``num_buckets``) or ``vocabulary`` (``top_k``, ``frequency_threshold``).

    Its :attr:`name` (``mean(age)``) keys the fitted result in ``analyzer_results``.
    """

    kind: str
    input: Feature
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        extra = "".join(f", {k}={json.dumps(v)}" for k, v in self.params.items() if v is not None)
        return f"{self.kind}({self.input.describe()}{extra})"


class Op:
    """What one operation means: its typing, the analyzers it needs, and its two
    implementations of the same row-wise semantics, Arrow (:meth:`apply`) and SQL (:meth:`to_sql`).

    ``bound`` maps analyzer roles (``"mean"``) to fitted values after :meth:`prepare`.
    """

    name: str = ""

    def check(self, inputs: Sequence[Feature], params: dict[str, Any]) -> tuple[str, ValueKind]:
        """Validate a call and return the output's (type name, kind)."""
        raise NotImplementedError

    def analyzers(self, node: Feature) -> dict[str, AnalyzerSpec]:
        """Analyzers over this node's inputs that its semantics depend on."""
        return {}

    def prepare(self, node: Feature, bound: dict[str, Any]) -> dict[str, Any]:
        """Turn fitted values into what apply/to_sql use (defaults, arrays); runs once per graph."""
        return bound

    def apply(self, args: list[pa.Array], node: Feature, bound: dict[str, Any]) -> pa.Array:
        raise NotImplementedError

    def to_sql(self, args: list[str], node: Feature, bound: dict[str, Any]) -> str:
        raise TransformError(
            f"{node.describe()} has no SQL form, so it cannot feed an analyzer "
            f"(compute the analyzer on its input instead)")

    def cardinality(self, node: Feature, bound: dict[str, Any]) -> int | None:
        """Number of ids of a categorical output (None for other kinds)."""
        return None


OPS: dict[str, Op] = {}


def register(cls: type[Op]) -> type[Op]:
    """Class decorator adding an op to :data:`OPS` under its ``name``."""
    OPS[cls.name] = cls()
    return cls


class Feature:
    """A symbolic column: an op applied to input features, with JSON-able params.

    Users never build these directly; ``x["col"]`` and the functions in
    :mod:`sluice.transform` do.
    """

    __slots__ = ("op", "inputs", "params", "dtype", "kind", "_key")

    def __init__(self, op: str, inputs: Sequence[Feature], params: dict[str, Any], dtype: str, kind: ValueKind):
        self.op = op
        self.inputs = tuple(inputs)
        self.params = params
        self.dtype = dtype
        self.kind = kind
        self._key: str | None = None

    @classmethod
    def column(cls, name: str, dtype: str) -> Feature:
        """A raw input column of the given type name."""
        return cls("column", (), {"name": name}, dtype, kind_of(dtype))

    @classmethod
    def make(cls, op: str, inputs: Sequence[Feature], **params: Any) -> Feature:
        """A node for ``op`` over ``inputs``, validated by the op (raises TransformError)."""
        for i in inputs:
            if not isinstance(i, Feature):
                raise TransformError(f"{op}: expected a feature such as x['col'], got {type(i).__name__} {i!r}")
        dtype, kind = OPS[op].check(inputs, params)
        return cls(op, inputs, params, dtype, kind)

    @property
    def analyzers(self) -> dict[str, AnalyzerSpec]:
        return OPS[self.op].analyzers(self)

    def describe(self) -> str:
        """Canonical, readable text of the expression; equal texts mean equal expressions."""
        if self._key is None:
            if self.op == "column":
                name = self.params["name"]
                self._key = name if name.isidentifier() else json.dumps(name)
            else:
                args = [i.describe() for i in self.inputs]
                args += [f"{k}={json.dumps(v)}" for k, v in self.params.items() if v is not None]
                self._key = f"{self.op}({', '.join(args)})"
        return self._key

    def walk(self) -> Iterator[Feature]:
        """This node and everything below it, inputs before users, each once."""
        seen: set[str] = set()

        def visit(node: Feature) -> Iterator[Feature]:
            if node.describe() in seen:
                return
            seen.add(node.describe())
            for i in node.inputs:
                yield from visit(i)
            yield node

        return visit(self)

    def to_dict(self) -> dict[str, Any]:
        """Nested JSON form; analyzer names are listed for readers, not needed to load."""
        if self.op == "column":
            return {"op": "column", "name": self.params["name"]}
        d: dict[str, Any] = {"op": self.op, "inputs": [i.to_dict() for i in self.inputs]}
        d.update({k: v for k, v in self.params.items() if v is not None})
        if self.analyzers:
            d["analyzers"] = {role: spec.name for role, spec in self.analyzers.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], input_columns: Mapping[str, str]) -> Feature:
        """Rebuild a node from :meth:`to_dict` output, re-validating every op."""
        if d["op"] == "column":
            return cls.column(d["name"], input_columns[d["name"]])
        if d["op"] not in OPS:
            raise TransformError(f"unknown transform op {d['op']!r}; known: {sorted(OPS)}")
        inputs = [cls.from_dict(i, input_columns) for i in d["inputs"]]
        params = {k: v for k, v in d.items() if k not in ("op", "inputs", "analyzers")}
        return cls.make(d["op"], inputs, **params)

    def __repr__(self) -> str:
        return f"Feature({self.describe()})"


class Inputs(Mapping[str, Feature]):
    """The raw columns a preprocessing function can read: ``x["age"]`` -> :class:`Feature`.

    Example::

        x = Inputs(pa.schema([("age", pa.float64())]))
        x["age"]      # Feature(age)
        x["agee"]     # UnknownColumnError: unknown column 'agee'; available columns: age
    """

    def __init__(self, schema: pa.Schema | Mapping[str, str]):
        if isinstance(schema, pa.Schema):
            self._types = {f.name: type_name(f.type) for f in schema}
        else:
            self._types = dict(schema)
        self._columns: dict[str, Feature] = {}

    def __getitem__(self, name: str) -> Feature:
        if name not in self._types:
            raise UnknownColumnError(
                f"unknown column {name!r}; available columns: {', '.join(self._types) or '(none)'}")
        if name not in self._columns:
            self._columns[name] = Feature.column(name, self._types[name])
        return self._columns[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._types)

    def __len__(self) -> int:
        return len(self._types)

    @property
    def types(self) -> dict[str, str]:
        """Column name -> type name, as seen in the dataset schema."""
        return dict(self._types)
