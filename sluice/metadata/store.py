"""The metadata store: runs, executions, artifacts, events, metrics, model registry.

One small class over SQLAlchemy Core. Every call is one short transaction
(writes take SQLite's write lock at BEGIN and are replayed on "database is
locked"), so many runner processes can share one SQLite file, and a team can
point all of them at PostgreSQL instead with the same code.

Example::

    store = MetadataStore.open()                       # ./.sluice/metadata.db
    run = store.create_run("ctr", {"epochs": 3}, engine="local")
    ex = store.start_execution(run, "trainer", "Trainer", fp, {"lr": 0.01}, "logs/trainer.log")
    model = store.add_artifact("Model", "model", "artifacts/trainer/1/model", {}, "sha256:..", producer=ex)
    store.finish_execution(ex, "succeeded")
    store.finish_run(run, "succeeded")
"""

from __future__ import annotations

import getpass
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from sluice.metadata import models as _models
from sluice.metadata import queries as _q
from sluice.metadata import retention as _retention
from sluice.metadata.base import StoreBase
from sluice.metadata.lineage import LineageGraph, build_lineage
from sluice.metadata.records import AliasEvent, Artifact, CachedExecution, Execution, Metric, ModelVersion, Run
from sluice.metadata.schema import (
    ARTIFACT_STATES,
    EVENT_KINDS,
    EXECUTION_STATUSES,
    RUN_STATUSES,
    artifacts,
    check_value,
    events,
    executions,
    metrics,
    pipelines,
    runs,
)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # containers often run as a uid with no passwd entry
        return os.environ.get("USER", "unknown")


def _float(value: Any) -> float | None:
    # SQLite stores NaN as NULL, so store it as NULL everywhere and read it back as NaN.
    v = float(value)
    return None if v != v else v


class MetadataStore(StoreBase):
    """Records pipelines, runs, executions, artifacts, lineage, metrics and model versions.

    Open one with :meth:`MetadataStore.open`; every method is one short transaction.
    """

    # -- runs and executions ------------------------------------------------------------------

    def create_run(self, pipeline: str, params: Mapping[str, Any] | None = None, engine: str = "local") -> str:
        """Start a run of ``pipeline``; records user, host and pid. Returns the run id.

        Example::

            run_id = store.create_run("ctr", {"epochs": 3}, engine="spark")
        """
        run_id = uuid.uuid4().hex

        def tx(conn: sa.Connection) -> str:
            pid = conn.scalar(sa.select(pipelines.c.id).where(pipelines.c.name == pipeline))
            if pid is None:  # a racing creator makes this insert fail; the replay finds its row
                pid = conn.execute(pipelines.insert().values(name=pipeline, created_at=_now())).inserted_primary_key[0]
            conn.execute(
                runs.insert().values(
                    id=run_id, pipeline_id=pid, status="running", started_at=_now(), params=dict(params or {}),
                    engine=engine, user=_user(), host=socket.gethostname(), pid=os.getpid(),
                )
            )
            return run_id

        return self._write(tx, integrity=True)

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        """Close a run: ``store.finish_run(run_id, "failed", error="trainer: CUDA OOM")``."""
        check_value("run status", status, RUN_STATUSES[1:])
        q = runs.update().where(runs.c.id == run_id).values(status=status, ended_at=_now(), error=error)
        if self._write(lambda c: c.execute(q).rowcount) == 0:
            raise KeyError(f"no run with id {run_id!r}")

    def start_execution(
        self,
        run_id: str,
        step: str,
        component: str,
        fingerprint: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        log_path: str | None = None,
    ) -> int:
        """Record a step starting; returns the execution id.

        Example::

            ex = store.start_execution(run_id, "stats", "StatisticsGen", fp, {}, "logs/stats.log")
        """
        values = dict(
            run_id=run_id, step=step, component=component, status="running", started_at=_now(),
            fingerprint=fingerprint, parameters=dict(parameters or {}), log_path=log_path, attempts=1,
        )
        return int(self._write(lambda c: c.execute(executions.insert().values(values)).inserted_primary_key[0]))

    def finish_execution(
        self, exec_id: int, status: str, error: str | None = None, attempts: int = 1, cached_from: int | None = None
    ) -> None:
        """Close an execution: ``store.finish_execution(ex, "cached", cached_from=old.id)``."""
        check_value("execution status", status, EXECUTION_STATUSES[1:])
        q = (
            executions.update()
            .where(executions.c.id == exec_id)
            .values(status=status, ended_at=_now(), error=error, attempts=attempts, cached_from=cached_from)
        )
        if self._write(lambda c: c.execute(q).rowcount) == 0:
            raise KeyError(f"no execution with id {exec_id}")

    def runs(self, pipeline: str | None = None, limit: int = 50) -> list[Run]:
        """Newest runs first: ``store.runs("ctr", limit=10)``."""
        return self._read(lambda c: _q.list_runs(c, pipeline, limit))

    def run(self, run_id: str) -> Run:
        """One run by id or unique id prefix (like git): ``store.run("3f2a")``."""
        return self._read(lambda c: _q.find_run(c, run_id))

    def executions(self, run_id: str) -> list[Execution]:
        """A run's executions in start order: ``[e.step for e in store.executions(run_id)]``."""
        q = sa.select(executions).where(executions.c.run_id == run_id).order_by(executions.c.id)
        return self._read(lambda c: [Execution.from_row(r) for r in c.execute(q)])

    def execution(self, exec_id: int) -> Execution:
        """One execution by id: ``store.execution(ex).status``."""
        row = self._read(lambda c: c.execute(sa.select(executions).where(executions.c.id == exec_id)).first())
        if row is None:
            raise KeyError(f"no execution with id {exec_id}")
        return Execution.from_row(row)

    # -- artifacts and events -----------------------------------------------------------------

    def add_artifact(
        self,
        type: str,
        name: str,
        uri: str,
        properties: Mapping[str, Any] | None = None,
        fingerprint: str | None = None,
        producer: int | None = None,
        state: str = "live",
    ) -> int:
        """Record an artifact; with ``producer`` also its output event (key ``name``). Returns its id.

        Example::

            aid = store.add_artifact("Examples", "examples", uri, {"rows": 10_000}, "sha256:..", producer=ex)
        """
        check_value("artifact state", state, ARTIFACT_STATES)
        values = dict(
            type=type, name=name, uri=uri, properties=dict(properties or {}), fingerprint=fingerprint,
            state=state, created_at=_now(), producer_id=producer,
        )

        def tx(conn: sa.Connection) -> int:
            aid = int(conn.execute(artifacts.insert().values(values)).inserted_primary_key[0])
            if producer is not None:  # same transaction: no artifact without its lineage edge
                conn.execute(events.insert().values(execution_id=producer, artifact_id=aid, kind="output", key=name))
            return aid

        return self._write(tx)

    def set_artifact_state(self, artifact_id: int, state: str) -> None:
        """Mark an artifact ``pending``, ``live`` or ``deleted`` (files gone: never a cache hit)."""
        check_value("artifact state", state, ARTIFACT_STATES)
        q = artifacts.update().where(artifacts.c.id == artifact_id).values(state=state)
        if self._write(lambda c: c.execute(q).rowcount) == 0:
            raise KeyError(f"no artifact with id {artifact_id}")

    def record_event(self, exec_id: int, artifact_id: int, kind: str, key: str) -> None:
        """Link an execution to an input or output artifact; recording an edge twice is a no-op.

        Example::

            store.record_event(trainer_ex, examples_id, "input", "examples")
        """
        check_value("event kind", kind, EVENT_KINDS)
        edge = dict(execution_id=exec_id, artifact_id=artifact_id, kind=kind, key=key)

        def tx(conn: sa.Connection) -> None:
            if conn.scalar(sa.select(events.c.id).filter_by(**edge)) is None:
                conn.execute(events.insert().values(edge))

        self._write(tx, integrity=True)

    def artifact(self, artifact_id: int) -> Artifact:
        """One artifact by id: ``store.artifact(7).uri``."""
        row = self._read(lambda c: c.execute(sa.select(artifacts).where(artifacts.c.id == artifact_id)).first())
        if row is None:
            raise KeyError(f"no artifact with id {artifact_id}")
        return Artifact.from_row(row)

    def artifacts(self, type: str | None = None, run_id: str | None = None) -> list[Artifact]:
        """Artifacts by id, by type and/or the run that output them: ``store.artifacts("Model", run_id=r)``."""
        return self._read(lambda c: _q.list_artifacts(c, type, run_id))

    def inputs_of(self, exec_id: int) -> dict[str, Artifact]:
        """An execution's input artifacts by input key: ``store.inputs_of(ex)["examples"]``."""
        return self._read(lambda c: _q.linked_artifacts(c, exec_id, "input"))

    def outputs_of(self, exec_id: int) -> dict[str, Artifact]:
        """An execution's output artifacts by output key: ``store.outputs_of(ex)["model"]``."""
        return self._read(lambda c: _q.linked_artifacts(c, exec_id, "output"))

    def find_cached(self, fingerprint: str) -> CachedExecution | None:
        """The latest succeeded execution with this fingerprint whose outputs are all live.

        Failed, running and ``cached`` executions never match, nor does one with an output
        ``pending`` or ``deleted``. The runner should still check that the files exist.

        Example::

            hit = store.find_cached(fp)
            if hit: outputs = hit.outputs      # {"model": Artifact(...)}
        """
        return self._read(lambda c: _q.find_cached(c, fingerprint))

    def latest_artifact(
        self,
        type: str,
        pipeline: str,
        name: str | None = None,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> Artifact | None:
        """The newest live artifact of ``type`` output by a run of ``pipeline`` that ``where`` accepts.

        Example::

            baseline = store.latest_artifact("Blessing", "ctr", where=lambda p: p.get("blessed") is True)
        """
        return self._read(lambda c: _q.latest_artifact(c, type, pipeline, name, where))

    def previous_span_artifact(self, type: str, pipeline: str, step: str, span: str) -> Artifact | None:
        """The artifact of the span before ``span``: of ``type``, made by ``step`` in ``pipeline``.

        Among live artifacts output by that step (run, or reused from cache) in runs of the
        pipeline, the one whose ``span`` property is the greatest below ``span`` (spans compare
        as numbers if all are numbers, else as dates, else as text, like ExampleGen's); the
        latest among equal spans. None when there is none.

        Example::

            prev = store.previous_span_artifact("Statistics", "ctr", "StatisticsGen", "20240102")
            prev.properties["span"] if prev else None   # '20240101'
        """
        return self._read(lambda c: _q.previous_span_artifact(c, type, pipeline, step, span))

    def lineage(self, artifact_id: int, direction: str = "up", depth: int | None = None) -> LineageGraph:
        """Lineage of an artifact, ``up`` (what made it), ``down`` (what it made) or ``both``.

        Example::

            store.lineage(pushed_id, "up").of_type("Examples")    # which data made this model
        """
        return self._read(lambda c: build_lineage(c, artifact_id, direction, depth))

    # -- metrics ------------------------------------------------------------------------------

    def log_metric(self, run_id: str, exec_id: int | None, name: str, value: float, step: int = 0) -> None:
        """Append one point: ``store.log_metric(run_id, ex, "loss", 0.41, step=100)``."""
        self.log_metrics(run_id, exec_id, {name: value}, step)

    def log_metrics(self, run_id: str, exec_id: int | None, values: Mapping[str, float], step: int = 0) -> None:
        """Append several metrics at one step in one transaction: ``log_metrics(r, ex, {"auc": .8}, 3)``."""
        now = _now()
        rows = [
            dict(run_id=run_id, execution_id=exec_id, name=k, step=int(step), value=_float(v), recorded_at=now)
            for k, v in values.items()
        ]
        if rows:
            self._write(lambda c: c.execute(metrics.insert(), rows))

    def metrics(self, run_id: str, name: str | None = None) -> list[Metric]:
        """A run's metric points by name, step: ``[m.value for m in store.metrics(r, "loss")]``."""
        q = sa.select(metrics).where(metrics.c.run_id == run_id).order_by(metrics.c.name, metrics.c.step, metrics.c.id)
        if name is not None:
            q = q.where(metrics.c.name == name)
        nan = float("nan")
        return self._read(
            lambda c: [Metric.from_row(r, value=nan if r.value is None else r.value) for r in c.execute(q)]
        )

    # -- model registry -----------------------------------------------------------------------

    def register_model_version(
        self, name: str, uri: str, artifact_id: int | None, source_model_id: int | None, run_id: str | None
    ) -> int:
        """Register the next integer version of model ``name`` (safe under concurrent pushers).

        Example::

            version = store.register_model_version("ctr", "serving/ctr/3", pushed_id, model_id, run_id)
        """
        return self._write(lambda c: _models.register(c, name, uri, artifact_id, source_model_id, run_id), integrity=True)

    def model_versions(self, name: str | None = None) -> list[ModelVersion]:
        """Registered versions with their aliases: ``[v.version for v in store.model_versions("ctr")]``."""
        return self._read(lambda c: _models.versions(c, name))

    def model_version(self, name: str, version: int | str) -> ModelVersion:
        """One version by number or alias: ``store.model_version("ctr", "production").uri``."""
        return self._read(lambda c: _models.resolve(c, name, version))

    def set_alias(self, name: str, alias: str, version: int, note: str = "") -> None:
        """Point an alias at a version, logged: ``store.set_alias("ctr", "production", 3, note="AUC +1%")``."""
        self._write(lambda c: _models.set_alias(c, name, alias, version, note), integrity=True)

    def remove_alias(self, name: str, alias: str, note: str = "") -> int | None:
        """Remove an alias, logged; returns the version it pointed at: ``store.remove_alias("ctr", "staging")``."""
        return self._write(lambda c: _models.remove_alias(c, name, alias, note))

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasEvent]:
        """Alias changes, oldest first: ``[(h.action, h.version) for h in store.alias_history("ctr")]``."""
        return self._read(lambda c: _models.history(c, name, alias))

    # -- housekeeping -------------------------------------------------------------------------

    def mark_stale_runs(self) -> int:
        """Mark this host's ``running`` runs whose process died as ``killed`` (their running steps
        ``failed``, "runner died"); returns how many. The runner calls it at start.

        Example::

            store.mark_stale_runs()   # 1
        """
        return self._write(_retention.mark_stale_runs)

    def gc_candidates(self, keep_last_runs: int, older_than_days: float | None = None) -> list[Artifact]:
        """Artifacts of runs outside retention that no model version and no kept run depends on.

        Kept: the newest ``keep_last_runs`` runs per pipeline, running runs, and runs newer than
        ``older_than_days`` (when given). See :mod:`sluice.metadata.retention`.

        Example::

            doomed = store.gc_candidates(keep_last_runs=5, older_than_days=30)
        """
        return self._read(lambda c: _retention.gc_candidates(c, keep_last_runs, older_than_days))

    def expired_runs(self, keep_last_runs: int, older_than_days: float | None = None) -> list[str]:
        """Ids of finished runs outside retention, oldest first: ``store.expired_runs(5)``."""
        return self._read(lambda c: _retention.expired_runs(c, keep_last_runs, older_than_days))

    def delete_artifact_records(self, ids: list[int]) -> int:
        """Delete artifact records (after their files); refuses model-version artifacts. Returns the count."""
        return self._write(lambda c: _retention.delete_artifact_records(c, ids))

    def delete_runs(self, ids: list[str]) -> list[str]:
        """Delete runs no remaining artifact or model depends on; returns those deleted.

        Example::

            store.delete_runs(store.expired_runs(5))
        """
        return self._write(lambda c: _retention.delete_runs(c, ids))
