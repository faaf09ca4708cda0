"""The schema: what valid data looks like, inferred from statistics and edited by people.

A :class:`Schema` lists features with their type, presence, numeric range and
string domain. :func:`infer_schema` proposes one from training statistics; a
user reviews it as YAML, edits it (widen a range, add a domain value, mark a
feature ``strict``) and the pipeline imports the curated file.

YAML layout (``schema.yaml``)::

    version: 1
    features:
      age:
        type: int            # int | float | string | bool | other
        required: true       # every row has a value (no NULLs)
        min_fraction: 1.0    # smallest fraction of rows with a value (checked when not required)
        allow_missing: false # the column may be absent from a dataset (e.g. the label at serving)
        strict: false        # out-of-range or out-of-domain values are errors, not warnings
        min: 17              # numeric range (optional)
        max: 90
      city:
        type: string
        ...
        domain: [Lyon, Paris]  # allowed string values (optional)
        drift_threshold: 0.1   # largest allowed change from the previous span (optional)
        skew_threshold: 0.1    # largest allowed difference between training and serving (optional)

Drift and skew thresholds bound a distance between two distributions of the
feature (see :mod:`sluice.stats.drift`): the L-infinity distance for string
features (the largest change of any value's share, 0.1 = 10 points), the
Jensen-Shannon divergence (base 2, in [0, 1]) of the histograms for numeric
and bool features. Like TFDV's ``drift_comparator`` / ``skew_comparator``
they are unset unless the user sets them, and a feature without one is not
compared.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import yaml

from sluice.stats._files import read_text, write_text
from sluice.stats.statistics import DatasetStatistics

FILE_NAME = "schema.yaml"
TYPES = ("int", "float", "string", "bool", "other")
_HEADER = """\
# Sluice schema: what valid data looks like. Edit freely, then import it with
# sluice.stats.Schema.load(path). Per feature:
#   type           int | float | string | bool | other
#   required       true: every row must have a value (NULLs are an error)
#   min_fraction   smallest fraction of rows with a value (checked when not required)
#   allow_missing  true: the column may be absent from a dataset (e.g. the label at serving)
#   strict         true: values out of range / domain are errors instead of warnings
#   min, max       allowed numeric range (optional)
#   domain         allowed string values (optional); quote values YAML would read as
#                  numbers or booleans: ["yes", "no", "01"]
#   drift_threshold  largest allowed change since the previous span (optional; unset: not checked)
#                    strings: L-infinity distance, the largest change of a value's share (0.1 = 10 points);
#                    numbers, bools: Jensen-Shannon divergence of the histograms (0 same .. 1 disjoint)
#   skew_threshold   the same measure between training and serving data (optional)
#                    Exceeding one is an error; raise it for a feature when the change is expected.
"""
_THRESHOLDS = ("drift_threshold", "skew_threshold")


@dataclass
class FeatureSchema:
    """What one feature's values must look like."""

    name: str
    type: str
    required: bool = True
    min_fraction: float = 1.0
    allow_missing: bool = False
    strict: bool = False
    min: float | int | None = None
    max: float | int | None = None
    domain: list[str] | None = None
    drift_threshold: float | None = None
    skew_threshold: float | None = None

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"feature {self.name!r}: type must be one of {', '.join(TYPES)}, got {self.type!r}")
        if not 0.0 <= float(self.min_fraction) <= 1.0:
            raise ValueError(f"feature {self.name!r}: min_fraction must be in [0, 1], got {self.min_fraction!r}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"feature {self.name!r}: min {self.min} is greater than max {self.max}")
        if self.domain is not None:
            bad = [v for v in self.domain if not isinstance(v, (str, int)) or isinstance(v, bool)]
            if bad:
                # YAML reads yes/no/true/1.5 unquoted as booleans and numbers; the data has strings.
                raise ValueError(f"feature {self.name!r}: domain values must be strings, got {bad!r}; "
                                 "quote them in the YAML file, e.g. [\"yes\", \"no\"]")
            self.domain = [str(v) for v in self.domain]
        for key in _THRESHOLDS:
            setattr(self, key, _threshold(self.name, key, getattr(self, key)))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"type": self.type, "required": self.required, "min_fraction": self.min_fraction,
                             "allow_missing": self.allow_missing, "strict": self.strict}
        for key in ("min", "max", "domain", *_THRESHOLDS):
            if getattr(self, key) is not None:
                d[key] = getattr(self, key)
        return d

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> FeatureSchema:
        if not isinstance(d, Mapping):
            raise ValueError(f"feature {name!r}: expected a mapping of settings, got {d!r}")
        known = {f.name for f in fields(cls)} - {"name"}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"feature {name!r}: unknown setting(s) {', '.join(sorted(unknown))}; "
                             f"known settings: {', '.join(sorted(known))}")
        if "type" not in d:
            raise ValueError(f"feature {name!r}: 'type' is required ({', '.join(TYPES)})")
        return cls(name=name, **d)


@dataclass
class Schema:
    """Features by name, in order.

    Example::

        schema = infer_schema(train_stats)
        schema.save("schema.yaml")          # review and edit by hand
        schema = Schema.load("schema.yaml")
        schema["age"].max = 120
    """

    features: dict[str, FeatureSchema] = field(default_factory=dict)

    def __getitem__(self, name: str) -> FeatureSchema:
        try:
            return self.features[name]
        except KeyError:
            raise KeyError(f"no feature {name!r} in the schema; features: {', '.join(self.features)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.features

    def __iter__(self) -> Iterator[FeatureSchema]:
        return iter(self.features.values())

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "features": {name: f.to_dict() for name, f in self.features.items()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Schema:
        if not isinstance(d, Mapping) or not isinstance(d.get("features"), Mapping):
            raise ValueError("a schema needs a 'features' mapping: {features: {name: {type: ...}}}")
        if d.get("version", 1) != 1:
            raise ValueError(f"unsupported schema version {d.get('version')!r}; expected 1")
        return cls({str(name): FeatureSchema.from_dict(str(name), f) for name, f in d["features"].items()})

    def to_yaml(self) -> str:
        return _HEADER + yaml.dump(self.to_dict(), Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)

    @classmethod
    def from_yaml(cls, text: str) -> Schema:
        return cls.from_dict(yaml.safe_load(text) or {})

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write ``schema.yaml`` (``path`` is the file or its directory); returns the file."""
        return write_text(path, FILE_NAME, self.to_yaml())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Schema:
        """Read a schema file (``.yaml``/``.yml``, or ``.json`` which YAML also parses)."""
        try:
            return cls.from_yaml(read_text(path, FILE_NAME))
        except ValueError as e:
            raise ValueError(f"invalid schema {os.fspath(path)!r}: {e}") from None

    def _repr_html_(self) -> str:
        """Rich display in Jupyter: the same table the web UI shows (``sluice.render``)."""
        from sluice.render import schema_html

        return schema_html(self)


def _threshold(feature: str, key: str, value: Any) -> float | None:
    """A threshold as a float in [0, 1] (both distances live there), or None when unset."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"feature {feature!r}: {key} must be a number in [0, 1] (a distance), got {value!r}")
    return float(value)


class _Dumper(yaml.SafeDumper):
    """Block style for mappings (one setting a line, easy to edit), flow style for lists (domains)."""


_Dumper.add_representer(list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))


def infer_schema(stats: DatasetStatistics, *, max_domain_size: int = 100, drift_threshold: float | None = None,
                 skew_threshold: float | None = None) -> Schema:
    """Propose a schema from (training) statistics.

    A feature with no missing values is ``required``; otherwise ``min_fraction``
    is its observed presence rounded down to 2 decimals. Numeric features get
    their observed min/max as range; string features with at most
    ``max_domain_size`` distinct values (all of them known to the statistics,
    see ``vocabulary_limit`` in :func:`compute`) get them as domain.

    Drift and skew thresholds are left unset (no comparison), as in TFDV,
    unless ``drift_threshold`` / ``skew_threshold`` give a default for every
    comparable feature (int, float, bool, string); tune them per feature in
    the YAML file afterwards.

    Example::

        schema = infer_schema(compute(engine, train_ds), max_domain_size=50)
        schema["city"].domain   # ['Lyon', 'Paris']
        infer_schema(stats, drift_threshold=0.1, skew_threshold=0.1)["city"].drift_threshold   # 0.1
    """
    features: dict[str, FeatureSchema] = {}
    for f in stats:
        required = f.missing == 0
        fs = FeatureSchema(f.name, f.type, required=required,
                           min_fraction=1.0 if required else math.floor(f.presence * 100) / 100)
        if f.numeric is not None and f.type in ("int", "float"):
            fs.min, fs.max = f.numeric.min, f.numeric.max
        if f.string is not None and f.string.value_counts is not None and 0 < f.string.distinct <= max_domain_size:
            fs.domain = sorted(v.value for v in f.string.value_counts)
        if f.type != "other":  # "other" columns (dates, lists ...) have no distribution statistics
            fs.drift_threshold = _threshold(f.name, "drift_threshold", drift_threshold)
            fs.skew_threshold = _threshold(f.name, "skew_threshold", skew_threshold)
        features[f.name] = fs
    return Schema(features)
