"""Feature specs: what a transformed column is, shared by transform, trainer and serving.

The transform produces model-ready columns of two kinds:

- ``numeric``: float32 values, one per row;
- ``categorical``: int64 ids in ``[0, cardinality)``, for embeddings.

Example::

    specs = [FeatureSpec("age_z", "numeric"), FeatureSpec("country", "categorical", 201)]
    numeric_names(specs)       # ['age_z']
    categorical_sizes(specs)   # {'country': 201}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

FeatureKind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class FeatureSpec:
    """One model-ready column: its name, kind and, for categorical ids, the number of ids."""

    name: str
    kind: FeatureKind
    cardinality: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("numeric", "categorical"):
            raise ValueError(f"feature {self.name!r}: kind must be 'numeric' or 'categorical', got {self.kind!r}")
        if self.kind == "categorical" and (self.cardinality is None or self.cardinality < 1):
            raise ValueError(f"categorical feature {self.name!r} needs a cardinality >= 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureSpec:
        return cls(d["name"], d["kind"], d.get("cardinality"))


def numeric_names(specs: list[FeatureSpec]) -> list[str]:
    """Names of numeric features, in spec order."""
    return [s.name for s in specs if s.kind == "numeric"]


def categorical_sizes(specs: list[FeatureSpec]) -> dict[str, int]:
    """Categorical feature name -> cardinality, in spec order."""
    return {s.name: int(s.cardinality or 0) for s in specs if s.kind == "categorical"}
