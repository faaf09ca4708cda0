"""The local runner: executes a pipeline's DAG on this machine.

Steps run in dependency order, independent steps concurrently (threads: the
heavy work inside a step releases the GIL in DuckDB, Arrow and torch). Each
step is fingerprinted; a completed execution with the same fingerprint whose
outputs still exist is reused instead of running again, which is also how a
run resumes after a crash or ``kill -9``: completed steps were published
atomically and recorded, so the re-run starts where the old one stopped.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from sluice.artifacts import ArtifactStore
from sluice.dsl.artifacts import Artifact, artifact_class
from sluice.dsl.component import Component, canonical
from sluice.dsl.context import StepContext
from sluice.dsl.pipeline import Pipeline
from sluice.engine import Engine, get_engine
from sluice.errors import SluiceError, StepFailed
from sluice.metadata import MetadataStore
from sluice.runner.fingerprint import step_fingerprint
from sluice.runner.logs import step_log
from sluice.runner.progress import Progress


@dataclass
class StepResult:
    """How one step ended: its state, outputs, error and log file."""

    name: str
    state: str
    outputs: dict[str, Artifact] = field(default_factory=dict)
    error: str | None = None
    log_path: str = ""
    seconds: float = 0.0


@dataclass
class RunResult:
    """The outcome of a run: its id, overall status and each step's result."""

    run_id: str
    status: str
    steps: dict[str, StepResult]
    seconds: float = 0.0

    def output(self, step: str, key: str) -> Artifact:
        """The artifact a step produced under ``key``."""
        return self.steps[step].outputs[key]

    @property
    def failed(self) -> list[StepResult]:
        return [s for s in self.steps.values() if s.state == "failed"]


@dataclass
class LocalRunner:
    """Runs pipelines locally, recording everything in the metadata store.

    Example::

        runner = LocalRunner(MetadataStore.open(), ArtifactStore())
        result = runner.run(pipeline)
        result.status          # 'succeeded'
    """

    store: MetadataStore
    artifacts: ArtifactStore
    engine: str = "local"
    engine_options: dict[str, Any] = field(default_factory=dict)
    cache: bool = True
    max_parallel: int = 4
    retries: int = 0
    retry_backoff_s: float = 1.0
    log_dir: str = os.path.join(".sluice", "logs")
    progress: bool = True

    def run(self, pipeline: Pipeline, params: dict[str, Any] | None = None) -> RunResult:
        """Run every step of ``pipeline``; failures skip dependents and fail the run."""
        started = time.time()
        self.store.mark_stale_runs()
        self.artifacts.clean_staging()
        run_id = self.store.create_run(pipeline.name, params or {}, self.engine)
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()
        title = f"run {run_id} of {pipeline.name} on the {self.engine} engine" + \
            ("" if self.cache else "  [caching OFF: --no-cache]")
        results: dict[str, StepResult] = {}
        with Progress([c.name for c in pipeline.order], title=title, enabled=self.progress) as progress:
            try:
                self._schedule(pipeline, run_id, results, progress)
            except BaseException as exc:  # Ctrl-C or a runner bug: record it, then re-raise
                self.store.finish_run(run_id, "failed", error=f"runner stopped: {exc!r}")
                raise
            finally:
                if self._engine is not None:
                    self._engine.close()
        status = "failed" if any(r.state in ("failed", "skipped") for r in results.values()) else "succeeded"
        errors = "; ".join(f"{r.name}: {r.error}" for r in results.values() if r.state == "failed")
        self.store.finish_run(run_id, status, error=errors or None)
        return RunResult(run_id, status, results, time.time() - started)

    def _schedule(self, pipeline: Pipeline, run_id: str, results: dict[str, StepResult],
                  progress: Progress) -> None:
        waiting = list(pipeline.order)
        running: dict[Future[StepResult], Component] = {}
        with ThreadPoolExecutor(max_workers=self.max_parallel, thread_name_prefix="sluice-step") as pool:
            while waiting or running:
                for comp in list(waiting):
                    states = [results[u.name].state if u.name in results else None for u in comp.upstream]
                    if any(s in ("failed", "skipped") for s in states):
                        waiting.remove(comp)
                        results[comp.name] = StepResult(comp.name, "skipped", error="an upstream step failed")
                        progress.update(comp.name, "skipped", "an upstream step failed")
                    elif all(s in ("succeeded", "cached") for s in states):
                        waiting.remove(comp)
                        inputs = {k: (results[ch.producer.name].outputs[ch.key] if ch is not None else None)
                                  for k, ch in comp.inputs.items()}
                        running[pool.submit(self._run_step, pipeline, run_id, comp, inputs, progress)] = comp
                if not running:
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    comp = running.pop(fut)
                    results[comp.name] = fut.result()

    def _shared_engine(self) -> Engine:
        with self._engine_lock:
            if self._engine is None:
                self._engine = get_engine(self.engine, **self.engine_options)
            return self._engine

    def _run_step(self, pipeline: Pipeline, run_id: str, comp: Component,
                  inputs: dict[str, Artifact | None], progress: Progress) -> StepResult:
        started = time.time()
        log_path = os.path.join(self.log_dir, run_id, f"{comp.name}.log")
        try:
            fingerprint = step_fingerprint(comp, inputs, comp.external_fingerprint())
        except Exception as exc:  # noqa: BLE001 - e.g. the input files are gone: the step fails
            exec_id = self.store.start_execution(run_id, comp.name, type(comp).__name__, "",
                                                 _params_for_record(comp), os.path.abspath(log_path))
            message = str(exc) if isinstance(exc, SluiceError) else f"{type(exc).__name__}: {exc}"
            self.store.finish_execution(exec_id, "failed", error=message, attempts=1)
            progress.update(comp.name, "failed", message[:120])
            return StepResult(comp.name, "failed", error=message, log_path=log_path)
        cached = self._cached_outputs(comp, fingerprint) if (self.cache and comp.cache) else None
        exec_id = self.store.start_execution(run_id, comp.name, type(comp).__name__, fingerprint,
                                             _params_for_record(comp), os.path.abspath(log_path))
        for key, art in inputs.items():
            if art is not None and art.id is not None:
                self.store.record_event(exec_id, art.id, "input", key)
        if cached is not None:
            source_exec, outputs = cached
            for key, art in outputs.items():
                self.store.record_event(exec_id, art.id, "output", key)
            self.store.finish_execution(exec_id, "cached", cached_from=source_exec)
            progress.update(comp.name, "cached", f"reused execution {source_exec}")
            return StepResult(comp.name, "cached", outputs, log_path=log_path, seconds=time.time() - started)
        progress.update(comp.name, "running", "" if (self.cache and comp.cache) else "cache off")
        return self._execute_with_retries(pipeline, run_id, comp, inputs, exec_id, log_path, started, progress)

    def _cached_outputs(self, comp: Component, fingerprint: str) -> tuple[int, dict[str, Artifact]] | None:
        hit = self.store.find_cached(fingerprint)
        if hit is None or set(hit.outputs) != set(type(comp).OUTPUTS):
            return None
        # Honest caching: the recorded outputs must still be on disk, whole (and so must any
        # effect the step had outside the artifact store).
        if not all(self.artifacts.is_complete(a.uri) for a in hit.outputs.values()):
            return None
        outputs = {k: _artifact_from_record(a) for k, a in hit.outputs.items()}
        return (hit.execution.id, outputs) if comp.outputs_still_valid(outputs) else None

    def _execute_with_retries(self, pipeline: Pipeline, run_id: str, comp: Component,
                              inputs: dict[str, Artifact | None], exec_id: int, log_path: str,
                              started: float, progress: Progress) -> StepResult:
        retries = self.retries if comp.retries is None else comp.retries
        attempt = 0
        with step_log(log_path, comp.name) as log:
            while True:
                attempt += 1
                try:
                    outputs = self._execute_once(pipeline, run_id, comp, inputs, exec_id, log, progress)
                except Exception as exc:  # noqa: BLE001 - a step may fail in any way; we record it
                    log.error("attempt %d failed:\n%s", attempt, traceback.format_exc())
                    retriable = not isinstance(exc, SluiceError)
                    if retriable and attempt <= retries:
                        delay = self.retry_backoff_s * 2 ** (attempt - 1)
                        progress.update(comp.name, "retrying", f"attempt {attempt} failed; retry in {delay:.0f}s")
                        time.sleep(delay)
                        continue
                    message = f"{type(exc).__name__}: {exc}" if retriable else str(exc)
                    self.store.finish_execution(exec_id, "failed", error=message, attempts=attempt)
                    progress.update(comp.name, "failed", f"{message.splitlines()[0][:120]}  (log: {log_path})")
                    return StepResult(comp.name, "failed", error=message, log_path=log_path,
                                      seconds=time.time() - started)
                self.store.finish_execution(exec_id, "succeeded", attempts=attempt)
                progress.update(comp.name, "succeeded", _summary(outputs))
                return StepResult(comp.name, "succeeded", outputs, log_path=log_path, seconds=time.time() - started)

    def _execute_once(self, pipeline: Pipeline, run_id: str, comp: Component, inputs: dict[str, Artifact | None],
                      exec_id: int, log: Any, progress: Progress) -> dict[str, Artifact]:
        staged = {key: cls(self.artifacts.staging_dir()) for key, cls in type(comp).OUTPUTS.items()}
        local_inputs = {k: (type(a)(self.artifacts.localize(a.uri), a.properties, id=a.id,
                                    fingerprint=a.fingerprint) if a is not None else None)
                        for k, a in inputs.items()}
        ctx = StepContext(pipeline=pipeline.name, run_id=run_id, step=comp.name, inputs=local_inputs,
                          outputs=staged, params=dict(comp.params), log=log,
                          engine_factory=self._shared_engine, store=self.store,
                          metric_sink=_metric_sink(self.store, run_id, exec_id),
                          status_sink=lambda text: progress.update(comp.name, "running", text))
        try:
            comp.execute(ctx)
            published: dict[str, Artifact] = {}
            for key, art in staged.items():
                relpath = f"{pipeline.name}/{comp.name}/{key}/{exec_id}"
                uri, fp = self.artifacts.publish(art.path, relpath, art.type_name, art.properties)
                art_id = self.store.add_artifact(art.type_name, key, uri, art.properties, fp, producer=exec_id)
                self.store.record_event(exec_id, art_id, "output", key)
                published[key] = type(art)(uri, art.properties, id=art_id, fingerprint=fp)
            return published
        finally:
            for art in staged.values():  # publish moved the good ones; drop what is left
                if os.path.isdir(art.path):
                    shutil.rmtree(art.path, ignore_errors=True)


def _artifact_from_record(rec: Any) -> Artifact:
    return artifact_class(rec.type)(rec.uri, rec.properties, id=rec.id, fingerprint=rec.fingerprint)


def _params_for_record(comp: Component) -> dict[str, Any]:
    return canonical(comp.params, where=f"{comp.name} parameter")


def _metric_sink(store: MetadataStore, run_id: str, exec_id: int) -> Callable[[str, float, int], None]:
    def sink(name: str, value: float, step: int) -> None:
        store.log_metric(run_id, exec_id, name, value, step)

    return sink


def _summary(outputs: dict[str, Artifact]) -> str:
    parts = []
    for art in outputs.values():
        summary = art.properties.get("summary")
        if summary:
            parts.append(str(summary))
    return "; ".join(parts)[:160]


__all__ = ["LocalRunner", "RunResult", "StepResult", "StepFailed"]
