"""Evaluator: metrics overall and per slice, compared with the last blessed model; the release gate."""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence
from typing import Any

from sluice.dsl.artifacts import Blessing, Examples, Model, ModelEvaluation, TransformGraph
from sluice.dsl.component import Channel, Component, InputSpec
from sluice.dsl.context import StepContext
from sluice.io import read_split

TASK_METRICS = {"binary": ("auc", "log_loss"), "multiclass": ("accuracy",), "regression": ("rmse",)}


class Evaluator(Component):
    """Score the raw evaluation split through the transform and model, and decide the blessing.

    Example::

        Evaluator(model=trainer.outputs.model, examples=gen.outputs.examples,
                  transform_graph=transform.outputs.transform_graph, slices=["country"],
                  thresholds={"auc": Threshold(lower_bound=0.7, max_decrease=0.01)})

    The baseline is the model of this pipeline's latest blessed evaluation,
    re-scored on the same data. A Blessing is always written, with its
    reasons (also with no baseline or no thresholds), and logged as one line;
    ``force_bless=True`` blesses anyway and says so.
    """

    INPUTS = {"model": InputSpec(Model), "examples": InputSpec(Examples),
              "transform_graph": InputSpec(TransformGraph)}
    OUTPUTS = {"evaluation": ModelEvaluation, "blessing": Blessing}

    def __init__(self, model: Channel, examples: Channel, transform_graph: Channel, *, label: str = "label",
                 split: str = "eval", slices: Sequence[str] = (), thresholds: Mapping[str, Any] | None = None,
                 force_bless: bool = False, name: str | None = None, cache: bool = True) -> None:
        super().__init__(name=name, inputs={"model": model, "examples": examples, "transform_graph": transform_graph},
                         params={"label": label, "split": split, "slices": list(slices),
                                 "thresholds": dict(thresholds or {}), "force_bless": force_bless}, cache=cache)

    def execute(self, ctx: StepContext) -> None:
        from sluice.evaluate import decide

        p = ctx.params
        evaluation, blessing_out = ctx.outputs["evaluation"], ctx.outputs["blessing"]
        candidate = self._evaluate(ctx, ctx.inputs["model"].path, ctx.inputs["transform_graph"].path,
                                   os.path.join(evaluation.path, "predictions"), "candidate")
        candidate.save(os.path.join(evaluation.path, "candidate"))
        baseline_parts = self._baseline(ctx)
        baseline = None
        if baseline_parts is not None:
            baseline_id, model_dir, transform_dir = baseline_parts
            baseline = self._evaluate(ctx, model_dir, transform_dir, os.path.join(evaluation.path, "baseline_predictions"),
                                      f"baseline (model #{baseline_id})")
            baseline.save(os.path.join(evaluation.path, "baseline"))
        blessing = decide(candidate, baseline, p["thresholds"], force=p["force_bless"])
        blessing.save(blessing_out.path)
        line = blessing.one_line()
        ctx.log.info("%s", line)
        print(line)
        headline = {m: candidate.metrics.get(m) for m in TASK_METRICS[candidate.task]}
        evaluation.properties.update({"metrics": candidate.metrics, "baseline_model": baseline_parts and baseline_parts[0],
                                      "summary": "  ".join(f"{k}={v:.4f}" for k, v in headline.items()
                                                           if isinstance(v, (int, float)))})
        blessing_out.properties.update({"blessed": blessing.blessed, "forced": blessing.forced,
                                        "reasons": blessing.reasons, "summary": line[:200]})

    def _evaluate(self, ctx: StepContext, model_dir: str, transform_dir: str, out_dir: str, who: str) -> Any:
        from sluice.evaluate import compute_metrics
        from sluice.evaluate.scoring import score
        from sluice.registry.servable import Servable

        p = ctx.params
        servable = Servable.from_parts(transform_dir, model_dir)
        raw = read_split(ctx.engine, ctx.inputs["examples"].path, p["split"])
        written = score(ctx.engine, raw, servable, out_dir, label_feature=p["label"], keep=p["slices"],
                        parts=(transform_dir, model_dir))
        ctx.log.info("scored %s rows with the %s", f"{written.rows:,}", who)
        predictions = ctx.engine.read_parquet(sorted(glob.glob(os.path.join(out_dir, "*.parquet"))))
        return compute_metrics(ctx.engine, predictions, servable.signature.task, slices=p["slices"],
                               model=model_dir)

    @staticmethod
    def _baseline(ctx: StepContext) -> tuple[int, str, str] | None:
        """(model id, model dir, transform dir) of the latest blessed model of this pipeline."""
        if ctx.store is None:
            return None
        latest = ctx.store.latest_artifact("Blessing", ctx.pipeline,
                                           where=lambda props: bool(props.get("blessed")))
        if latest is None or latest.producer_id is None:
            return None
        inputs = ctx.store.inputs_of(latest.producer_id)
        model, transform = inputs.get("model"), inputs.get("transform_graph")
        if model is None or transform is None or not (os.path.isdir(model.uri) and os.path.isdir(transform.uri)):
            ctx.log.warning("latest blessed model is no longer on disk; evaluating without a baseline")
            return None
        return model.id, model.uri, transform.uri

