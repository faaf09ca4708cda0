"""Artifact types: the typed values that flow between pipeline steps.

An artifact is a directory in the artifact store plus properties recorded in
the metadata store. Types are plain classes so a component's inputs and
outputs can be checked before anything runs.

Example::

    class Embeddings(Artifact):
        '''Vectors for every item, one Parquet file per shard.'''

    @component
    def embed(examples: Input[Examples], vectors: Output[Embeddings]) -> None: ...
"""

from __future__ import annotations

import os
from typing import Any, ClassVar


# Every Artifact subclass, standard or user-defined, by type name.
_TYPES: dict[str, type["Artifact"]] = {}


class Artifact:
    """A typed, versioned output of a step: a directory (``uri``) plus properties."""

    type_name: ClassVar[str] = "Artifact"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.type_name = cls.__name__
        _TYPES[cls.type_name] = cls

    def __init__(self, uri: str, properties: dict[str, Any] | None = None, *,
                 id: int | None = None, fingerprint: str | None = None) -> None:
        self.uri = uri
        self.properties: dict[str, Any] = dict(properties or {})
        self.id = id
        self.fingerprint = fingerprint

    @property
    def path(self) -> str:
        """Local filesystem path of the artifact directory (``file://`` stripped)."""
        return self.uri[len("file://"):] if self.uri.startswith("file://") else self.uri

    def file(self, *parts: str) -> str:
        """Path of a file inside the artifact directory."""
        return os.path.join(self.path, *parts)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(uri={self.uri!r}, id={self.id})"


class RawData(Artifact):
    """Raw input files (CSV, Parquet, JSON lines) produced by a step, e.g. a data generator."""


class Examples(Artifact):
    """Parquet shards per split: ``<split>/part-NNNNN.parquet``; properties: ``splits`` -> row counts."""


class Statistics(Artifact):
    """Per split, per feature statistics: ``statistics.json``."""


class Schema(Artifact):
    """Feature names, types, presence, domains and ranges: ``schema.yaml`` (human-editable)."""


class Anomalies(Artifact):
    """Schema violations, drift and skew with severities: ``anomalies.json``."""


class TransformGraph(Artifact):
    """Fitted analyzer results plus the mapping spec: ``transform.json``."""


class Model(Artifact):
    """Trained weights (safetensors) plus the architecture spec, or an exported program."""


class HyperParameters(Artifact):
    """Tuned hyperparameters: ``hyperparameters.json`` (``values``, ``metric``, ``best_value``) plus
    ``trials.json`` (every trial); properties ``values`` and ``best_value``."""


class ModelEvaluation(Artifact):
    """Metrics overall and per slice, candidate and baseline: ``evaluation.json``."""


class Blessing(Artifact):
    """The release gate's decision and its reasons: ``blessing.json``; property ``blessed``."""


class PushedModel(Artifact):
    """Where a blessed model was released: properties ``pushed``, ``version``, ``destination``."""


def artifact_class(type_name: str) -> type[Artifact]:
    """The artifact class for a recorded type name (unknown names give the base class)."""
    return _TYPES.get(type_name, Artifact)
