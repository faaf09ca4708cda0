"""Row-wise mappers to numbers: column reads, passthrough, fill_missing, log1p, clip, zscore, scale_to_0_1.

Each op states its semantics twice, side by side: in Arrow (``apply``, used for
every batch and every serving request) and in DuckDB SQL (``to_sql``, used only
to feed analyzers whose input is itself a mapped expression). Numeric mappers
compute in float64; the graph casts model outputs to float32 at the very end.

Missing values: NaN in a float column reads as missing (null). Mappers keep
nulls null, except ``fill_missing``; a numeric *output* that is still null
becomes 0.0, so a bare ``zscore`` over a missing value yields 0.0 (the mean).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from sluice.transform.dtypes import (
    ValueKind, arrow_type, is_integer_name, quote_ident, sql_literal, to_float64,
)
from sluice.transform.nodes import AnalyzerSpec, Feature, Op, TransformError, register


# Arrow scalars are built once, on first use (creating one imports pandas, too heavy for import
# time): converting a Python float on every call costs more than the arithmetic on a serving request.
@functools.cache
def _null_f64() -> pa.Scalar:
    return pa.scalar(None, pa.float64())


@functools.cache
def _minus_one() -> pa.Scalar:
    return pa.scalar(-1.0)


def f64_scalar(value: float | None) -> pa.Scalar | None:
    """A float64 Arrow scalar for a fitted value or parameter (None stays None), built in ``prepare``."""
    return None if value is None else pa.scalar(float(value), pa.float64())


def require_kind(op: str, node: Feature, kinds: Sequence[str]) -> None:
    """Raise a readable error when ``node`` is not of one of ``kinds``."""
    if node.kind not in kinds:
        raise TransformError(
            f"{op} needs a {' or '.join(kinds)} input, but {node.describe()} is {node.kind} ({node.dtype})")


def numeric_input(op: str, inputs: Sequence[Feature], n: int = 1) -> None:
    """Validate ``n`` inputs that can be read as numbers (numbers or categorical ids)."""
    if len(inputs) != n:
        raise TransformError(f"{op} takes {n} input(s), got {len(inputs)}")
    for node in inputs:
        require_kind(op, node, ("number", "categorical"))


def f64_sql(arg: str) -> str:
    return f"CAST({arg} AS DOUBLE)"


def fitted(bound: dict[str, Any], role: str, default: float) -> float:
    """A fitted statistic, or ``default`` when the data had no values to compute it from."""
    value = bound.get(role)
    return default if value is None else float(value)


@register
class Column(Op):
    """A raw input column, coerced to the type seen at fit (serving sends ints for floats...)."""

    name = "column"

    def apply(self, args: list[pa.Array], node: Feature, bound: dict[str, Any]) -> pa.Array:
        values = args[0]
        if pa.types.is_dictionary(values.type):
            values = values.dictionary_decode()
        target = arrow_type(node.dtype)
        if target is not None and values.type != target:
            try:
                values = pc.cast(values, target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                raise TransformError(f"column {node.params['name']!r}: cannot read {values.type} "
                                     f"as {node.dtype} (its type at fit): {err}") from None
        if pa.types.is_floating(values.type) and values.null_count < len(values):
            nan = pc.is_nan(values)
            if pc.any(nan).as_py():
                values = pc.if_else(nan, pa.scalar(None, values.type), values)
        return values

    def to_sql(self, args: list[str], node: Feature, bound: dict[str, Any]) -> str:
        ident = quote_ident(node.params["name"])
        if node.dtype.startswith("float"):
            return f"(CASE WHEN isnan({ident}) THEN NULL ELSE {ident} END)"
        return ident


@register
class Passthrough(Op):
    """Numbers as float64 (float32 features); strings and other types carried unchanged."""

    name = "passthrough"

    def check(self, inputs: Sequence[Feature], params: dict[str, Any]) -> tuple[str, ValueKind]:
        if len(inputs) != 1:
            raise TransformError(f"passthrough takes 1 input, got {len(inputs)}")
        if inputs[0].kind == "categorical":
            raise TransformError(f"{inputs[0].describe()} is already a categorical feature; return it directly")
        if inputs[0].kind == "number":
            return "float64", "number"
        return inputs[0].dtype, inputs[0].kind

    def apply(self, args: list[pa.Array], node: Feature, bound: dict[str, Any]) -> pa.Array:
        return to_float64(args[0]) if node.kind == "number" else args[0]

    def to_sql(self, args: list[str], node: Feature, bound: dict[str, Any]) -> str:
        return f64_sql(args[0]) if node.kind == "number" else args[0]


@register
class FillMissing(Op):
    """Nulls replaced by a constant ``value``, or by the fitted mean when no value is given.

    Integer columns filled with an integer stay integers (so a vocabulary or
    hash over them sees ``3``, not ``3.0``); any other numeric fill is float64.
    """

    name = "fill_missing"

    def check(self, inputs: Sequence[Feature], params: dict[str, Any]) -> tuple[str, ValueKind]:
        if len(inputs) != 1:
            raise TransformError(f"fill_missing takes 1 input, got {len(inputs)}")
        x, value = inputs[0], params.get("value")
        require_kind("fill_missing", x, ("number", "string"))
        if x.kind == "string":
            if not isinstance(value, str):
                raise TransformError(f"fill_missing({x.describe()}): a string column needs value='...' (got {value!r})")
            return x.dtype, "string"
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise TransformError(f"fill_missing({x.describe()}): value must be a number, got {value!r}")
        if isinstance(value, int) and is_integer_name(x.dtype):
            return x.dtype, "number"
        return "float64", "number"

    def analyzers(self, node: Feature) -> dict[str, AnalyzerSpec]:
        return {"mean": AnalyzerSpec("mean", node.inputs[0])} if node.params.get("value") is None else {}

    def prepare(self, node: Feature, bound: dict[str, Any]) -> dict[str, Any]:
        value = node.params.get("value")
        return {"value": fitted(bound, "mean", 0.0) if value is None else value}

    def apply(self, args: list[pa.Array], node: Feature, bound: dict[str, Any]) -> pa.Array:
        values = args[0]
        if node.dtype == "float64":
            values = to_float64(values)
        fill = bound.get("scalar")
        if fill is None or fill.type != values.type:  # the type is the same on every batch after the first
            fill = bound["scalar"] = pa.scalar(bound["value"], values.type)
        return pc.fill_null(values, fill)

    def to_sql(self, args: list[str], node: Feature, bound: dict[str, Any]) -> str:
        arg = f64_sql(args[0]) if node.dtype == "float64" else args[0]
        return f"coalesce({arg}, {sql_literal(bound['value'])})"


@register
class Log1p(Op):
    """``ln(1 + x)`` for x > -1; x <= -1 has no logarithm and becomes missing."""

    name = "log1p"

    def check(self, inputs: Sequence[Feature], params: dict[str, Any]) -> tuple[str, ValueKind]:
        numeric_input("log1p", inputs)
        return "float64", "number"

    def apply(self, args: list[pa.Array], node: Feature, bound: dict[str, Any]) -> pa.Array:
        x = to_float64(args[0])
        return pc.if_else(pc.greater(x, _minus_one()), pc.log1p(x), _null_f64())

    def to_sql(self, args: list[str], node: Feature, bound: dict[str, Any]) -> str:
        # greatest() skips nulls, so null -> -1 -> nullif -> NULL, like x <= -1.
        return f"ln(1 + nullif(greatest({f64_sql(args[0])}, -1), -1))"


@register
class Clip(Op):
    """Values limited to ``[lo, hi]`` (either bound may be None); nulls stay null."""

    name = "clip"

    def check(self, inputs: Sequence[Feature], params: dict[str, Any]) -> tuple[str, ValueKind]:
        numeric_input("clip", inputs)
        lo, hi = params.get("lo"), params.get("hi")
        if lo is None and hi is None:
            raise TransformError("clip needs lo, hi or both")
        if lo is not None and hi is not None and lo > hi:
            raise TransformError(f"clip: lo ({lo}) is greater than hi ({hi})")
        return "float64", "number"

    def prepare(self, node: Feature, bound: dict[str, Any]) -> dict[str, Any]:
        return {"lo": f64_scalar(node.params.get("lo")), "hi": f64_scalar(node.params.get("hi"))}

    def apply(self, args: list[pa.Array], node: Feature, bound: dict[str, Any]) -> pa.Array:
        x = to_float64(args[0])
        if bound["lo"] is not None:
            x = pc.max_element_wise(x, bound["lo"], skip_nulls=False)
        if bound["hi"] is not None:
            x = pc.min_element_wise(x, bound["hi"], skip_nulls=False)
        return x

    def to_sql(self, args: list[str], node: Feature, bound: dict[str, Any]) -> str:
        x = f64_sql(args[0])
        lo, hi = node.params.get("lo"), node.params.get("hi")
        clipped = x
        # greatest()/least() skip nulls; the CASE keeps a null input null.
        if lo is not None:
            clipped = f"greatest({clipped}, {sql_literal(float(lo))})"
        if hi is not None:
            clipped = f"least({clipped}, {sql_literal(float(hi))})"
        return f"(CASE WHEN {x} IS NULL THEN NULL ELSE {clipped} END)"


@register
class ZScore(Op):
    """``(x - mean) / std`` with the population std (ddof=0); a zero std divides by 1."""

    name = "zscore"

    def check(self, inputs: Sequence[Feature], params: dict[str, Any]) -> tuple[str, ValueKind]:
        numeric_input("zscore", inputs)
        return "float64", "number"

    def analyzers(self, node: Feature) -> dict[str, AnalyzerSpec]:
        return {"mean": AnalyzerSpec("mean", node.inputs[0]), "std": AnalyzerSpec("std", node.inputs[0])}

    def prepare(self, node: Feature, bound: dict[str, Any]) -> dict[str, Any]:
        std = fitted(bound, "std", 1.0)
        mean, std = fitted(bound, "mean", 0.0), std if std > 0 else 1.0
        return {"mean": mean, "std": std, "scalars": (f64_scalar(mean), f64_scalar(std))}

    def apply(self, args: list[pa.Array], node: Feature, bound: dict[str, Any]) -> pa.Array:
        mean, std = bound["scalars"]
        return pc.divide(pc.subtract(to_float64(args[0]), mean), std)

    def to_sql(self, args: list[str], node: Feature, bound: dict[str, Any]) -> str:
        return f"(({f64_sql(args[0])} - {sql_literal(bound['mean'])}) / {sql_literal(bound['std'])})"


@register
class ScaleTo01(Op):
    """``(x - min) / (max - min)`` from the fitted range; a constant column maps to 0.5.

    Values outside the fitted range map outside [0, 1]; wrap in :func:`clip` to bound them.
    """

    name = "scale_to_0_1"

    def check(self, inputs: Sequence[Feature], params: dict[str, Any]) -> tuple[str, ValueKind]:
        numeric_input("scale_to_0_1", inputs)
        return "float64", "number"

    def analyzers(self, node: Feature) -> dict[str, AnalyzerSpec]:
        return {"min": AnalyzerSpec("min", node.inputs[0]), "max": AnalyzerSpec("max", node.inputs[0])}

    def prepare(self, node: Feature, bound: dict[str, Any]) -> dict[str, Any]:
        lo, hi = fitted(bound, "min", 0.0), fitted(bound, "max", 0.0)
        return {"min": lo, "range": hi - lo, "scalars": (f64_scalar(lo), f64_scalar(hi - lo))}

    def apply(self, args: list[pa.Array], node: Feature, bound: dict[str, Any]) -> pa.Array:
        x = to_float64(args[0])
        if bound["range"] > 0:
            lo, span = bound["scalars"]
            return pc.divide(pc.subtract(x, lo), span)
        return pc.if_else(pc.is_null(x), _null_f64(), pa.scalar(0.5))

    def to_sql(self, args: list[str], node: Feature, bound: dict[str, Any]) -> str:
        x = f64_sql(args[0])
        if bound["range"] > 0:
            return f"(({x} - {sql_literal(bound['min'])}) / {sql_literal(bound['range'])})"
        return f"(CASE WHEN {x} IS NULL THEN NULL ELSE 0.5 END)"
