"""The metadata store: what ran, what it made, from what, and which model is live.

Records pipelines, runs, executions (status, times, fingerprint, parameters,
log path), typed artifacts, the events linking executions to their input and
output artifacts, metric series and the model registry (integer versions and
aliases with an audit trail). SQLite file by default, PostgreSQL by URL.

Example::

    from sluice.metadata import MetadataStore
    store = MetadataStore.open()                          # ./.sluice/metadata.db
    for run in store.runs("ctr", limit=5):
        print(run.id[:8], run.status, run.duration)
    store.lineage(model_id, "up").of_type("Examples")     # which data made this model
"""

from __future__ import annotations

from sluice.metadata.lineage import LineageEdge, LineageGraph
from sluice.metadata.records import (
    AliasEvent,
    Artifact,
    CachedExecution,
    Execution,
    Metric,
    ModelVersion,
    Run,
)
from sluice.metadata.store import MetadataStore

__all__ = [
    "AliasEvent",
    "Artifact",
    "CachedExecution",
    "Execution",
    "LineageEdge",
    "LineageGraph",
    "MetadataStore",
    "Metric",
    "ModelVersion",
    "Run",
]
