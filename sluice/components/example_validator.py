"""ExampleValidator: checks every split's statistics against the schema, and for drift and skew."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from sluice.dsl.artifacts import Anomalies, Artifact, Schema, Statistics
from sluice.dsl.component import Channel, Component, InputSpec
from sluice.dsl.context import StepContext
from sluice.errors import AnomaliesFound, SluiceError


class ExampleValidator(Component):
    """Find schema violations, drift and skew; stop the run on error-level anomalies unless allowed.

    Example::

        ExampleValidator(statistics=stats.outputs.statistics, schema=schema.outputs.schema)
        ExampleValidator(..., allow_anomalies=True)   # record them, carry on
        ExampleValidator(..., serving_statistics=serving_stats.outputs.statistics)   # + skew

    Drift: when the statistics carry a ``span`` (incremental data) and
    ``compare_with_previous_span`` is on, the previous span's statistics (the
    greatest span below this one, output by the same StatisticsGen step of
    this pipeline) are looked up in the metadata store and compared split by
    split, for features with a ``drift_threshold`` in the schema. Skew: the
    ``training_split`` is compared with every split of ``serving_statistics``,
    for features with a ``skew_threshold``.

    Output: ``anomalies.json``; every anomaly is also written to the step log.
    The artifact's properties say what was compared with what (artifact ids,
    spans).

    Caching: the previous span's statistics are not an input of the step, so
    the runner's fingerprint cannot see them change. A result that used them is
    therefore never reused from cache (see :meth:`outputs_still_valid`): the
    step re-runs, which costs milliseconds (it reads statistics, not data),
    and its ``anomalies.json`` comes out byte-identical when nothing changed,
    so the steps after it still hit their caches.
    """

    INPUTS = {"statistics": InputSpec(Statistics), "schema": InputSpec(Schema),
              "serving_statistics": InputSpec(Statistics, optional=True)}
    OUTPUTS = {"anomalies": Anomalies}
    VERSION = "2"  # 2: drift and skew

    def __init__(self, statistics: Channel, schema: Channel, *, serving_statistics: Channel | None = None,
                 compare_with_previous_span: bool = True, training_split: str = "train",
                 allow_anomalies: bool = False, name: str | None = None, cache: bool = True) -> None:
        super().__init__(name=name,
                         inputs={"statistics": statistics, "schema": schema, "serving_statistics": serving_statistics},
                         params={"allow_anomalies": allow_anomalies,
                                 "compare_with_previous_span": compare_with_previous_span,
                                 "training_split": training_split}, cache=cache)

    def outputs_still_valid(self, outputs: Mapping[str, Artifact]) -> bool:
        # A result that depended on a metadata-store lookup (the previous span) may be stale: the
        # lookup could find other statistics today. Results without one are pure functions of the inputs.
        return not outputs["anomalies"].properties.get("looked_up_previous_span", False)

    def execute(self, ctx: StepContext) -> None:
        from sluice import stats

        statistics, serving = ctx.inputs["statistics"], ctx.inputs.get("serving_statistics")
        by_split = stats.load_splits(statistics.path)
        schema = stats.Schema.load(ctx.inputs["schema"].file("schema.yaml"))
        props: dict[str, Any] = {"statistics_id": statistics.id}
        previous, skipped = self._previous_span(ctx, statistics, props)
        current_name = f"span {props['span']}" if props.get("span") is not None else "current data"
        previous_name = f"span {props['previous_span']}" if previous is not None else "previous span"
        if serving is not None:
            props["serving_statistics_id"] = serving.id
        try:
            found = stats.validate(by_split, schema, previous=previous,
                                   serving=stats.load_splits(serving.path) if serving is not None else None,
                                   training_split=ctx.params["training_split"], current_name=current_name,
                                   previous_name=previous_name)
        except ValueError as exc:  # e.g. no training split to compare serving data with
            raise SluiceError(f"ExampleValidator: {exc}") from None
        found.anomalies.extend(skipped)
        self._record(ctx, found, props)

    @staticmethod
    def _previous_span(ctx: StepContext, statistics: Artifact,
                       props: dict[str, Any]) -> tuple[dict[str, Any] | None, list[Any]]:
        """The previous span's statistics by split (or None), and anomalies about the lookup."""
        from sluice import stats

        step, span = _producer_and_span(ctx, statistics)
        props["span"] = span
        if span is None or not ctx.params["compare_with_previous_span"] or ctx.store is None or step is None:
            return None, []
        props["looked_up_previous_span"] = True
        prev = ctx.store.previous_span_artifact("Statistics", ctx.pipeline, step, span)
        if prev is None:
            ctx.log.info("span %s: no earlier span of step %s in pipeline %s; drift not measured",
                         span, step, ctx.pipeline)
            return None, []
        props.update(previous_span=prev.properties.get("span"), previous_statistics_id=prev.id,
                     previous_statistics_fingerprint=prev.fingerprint)
        try:
            loaded = stats.load_splits(_local(prev.uri))
        except (FileNotFoundError, NotADirectoryError):
            text = f"the statistics of span {props['previous_span']} (artifact {prev.id}) are gone from {prev.uri}"
            ctx.log.warning("%s; drift not measured", text)
            return None, [stats.Anomaly("comparison_skipped", "warning", None, None, "the previous span's statistics",
                                        text, "drift was not measured; re-run that span's pipeline to restore them")]
        ctx.log.info("drift: span %s (statistics %s) against span %s (statistics %s)",
                     span, statistics.id, props["previous_span"], prev.id)
        return loaded, []

    @staticmethod
    def _record(ctx: StepContext, found: Any, props: dict[str, Any]) -> None:
        for anomaly in found:
            ctx.log.warning("%s", anomaly.line())
        found.save(ctx.outputs["anomalies"].file("anomalies.json"))
        errors = len(found.errors)
        props.update({"errors": errors, "warnings": len(found.warnings),
                      "drift": len(found.of_kind("drift")), "skew": len(found.of_kind("skew")),
                      "summary": f"{errors} error(s), {len(found.warnings)} warning(s)"})
        ctx.outputs["anomalies"].properties.update(props)
        if errors and not ctx.params["allow_anomalies"]:
            raise AnomaliesFound(f"{errors} error-level anomalies:\n{found.summary()}\n"
                                 "Fix the data or the schema (schema.yaml: ranges, domains, drift_threshold, "
                                 "skew_threshold), or pass allow_anomalies=True to ExampleValidator")


def _producer_and_span(ctx: StepContext, statistics: Artifact) -> tuple[str | None, str | None]:
    """The step of this run that output ``statistics``, and the span of the Examples it read.

    The span is taken from this run's Examples, not from the statistics' own properties: when
    two spans' data are identical, StatisticsGen reuses the older span's artifact from cache,
    and that artifact still says the older span.
    """
    span = statistics.properties.get("span")
    if ctx.store is None or statistics.id is None:
        return None, span
    for execution in ctx.store.executions(ctx.run_id):
        if any(a.id == statistics.id for a in ctx.store.outputs_of(execution.id).values()):
            examples = ctx.store.inputs_of(execution.id).get("examples")
            if examples is not None and (examples.properties or {}).get("span") is not None:
                span = str(examples.properties["span"])
            return execution.step, span
    return None, span


def _local(uri: str) -> str:
    return uri[len("file://"):] if uri.startswith("file://") else os.fspath(uri)
