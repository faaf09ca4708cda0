"""BulkInferrer: score a dataset with a servable on the pipeline's engine (local or Spark).

The servable is either a pushed version (``pushed_model``) or a Trainer +
Transform pair; predictions are written as Parquet shards under
``<output>/predictions/`` with the key columns next to ``prediction`` (and
``prob_<k>`` for multiclass models), by the same code the Evaluator and the
server use, so the numbers agree with online serving.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Sequence

from sluice.dsl.artifacts import Artifact, Examples, Model, PushedModel, TransformGraph
from sluice.dsl.component import Channel, Component, InputSpec
from sluice.dsl.context import StepContext
from sluice.errors import SluiceError


class InferenceResult(Artifact):
    """Predictions for a dataset: ``predictions/part-*.parquet`` with the key columns; properties ``rows``."""


class BulkInferrer(Component):
    """Score one split of Examples with a model, keeping the key columns.

    Example::

        BulkInferrer(examples=gen.outputs.examples, pushed_model=pusher.outputs.pushed_model,
                     split="eval", keys=["request_id"])
        # or, before any push:
        BulkInferrer(examples=..., model=trainer.outputs.model, transform_graph=transform.outputs.transform_graph)
    """

    INPUTS = {"examples": InputSpec(Examples), "pushed_model": InputSpec(PushedModel, optional=True),
              "model": InputSpec(Model, optional=True), "transform_graph": InputSpec(TransformGraph, optional=True)}
    OUTPUTS = {"inference_result": InferenceResult}

    def __init__(self, examples: Channel, *, pushed_model: Channel | None = None, model: Channel | None = None,
                 transform_graph: Channel | None = None, split: str = "eval", keys: Sequence[str] = (),
                 batch_size: int = 65536, name: str | None = None, cache: bool = True) -> None:
        if (pushed_model is None) == (model is None) or (model is None) != (transform_graph is None):
            raise SluiceError("BulkInferrer needs either pushed_model, or model and transform_graph")
        super().__init__(name=name, inputs={"examples": examples, "pushed_model": pushed_model, "model": model,
                                            "transform_graph": transform_graph},
                         params={"split": split, "keys": list(keys), "batch_size": batch_size}, cache=cache)

    def execute(self, ctx: StepContext) -> None:
        from sluice.evaluate.scoring import score
        from sluice.io import read_split
        from sluice.registry.servable import Servable

        out = ctx.outputs["inference_result"]
        p = ctx.params
        pushed = ctx.inputs.get("pushed_model")
        if pushed is not None:
            if not pushed.properties.get("pushed"):
                raise SluiceError("nothing to score with: the model was not pushed "
                                  f"({pushed.properties.get('summary')})")
            directory = pushed.properties["path"]
            servable = Servable.load(directory)
            parts = (os.path.join(directory, "transform"), os.path.join(directory, "model"))
            source = f"{pushed.properties.get('model_name')} v{pushed.properties.get('version')}"
        else:
            parts = (ctx.inputs["transform_graph"].path, ctx.inputs["model"].path)
            servable = Servable.from_parts(*parts)
            source = f"model #{ctx.inputs['model'].id}"
        raw = read_split(ctx.engine, ctx.inputs["examples"].path, p["split"])
        columns = set(ctx.engine.schema(raw).names)
        missing = [k for k in p["keys"] if k not in columns]
        if missing:
            raise SluiceError(f"key column {missing[0]!r} is not in split {p['split']!r}; columns: "
                              f"{', '.join(sorted(columns))}")
        out_dir = out.file("predictions")
        written = score(ctx.engine, raw, servable, out_dir, keep=p["keys"], batch_size=p["batch_size"], parts=parts)
        ctx.log.info("scored %s rows of %s with %s", f"{written.rows:,}", p["split"], source)
        files = sorted(glob.glob(os.path.join(out_dir, "*.parquet")))
        with open(out.file("inference.json"), "w") as f:
            json.dump({"rows": written.rows, "split": p["split"], "keys": p["keys"], "source": source,
                       "task": servable.signature.task, "files": [os.path.basename(x) for x in files]}, f)
        out.properties.update({"rows": written.rows, "split": p["split"], "source": source,
                               "summary": f"scored {written.rows:,} rows with {source}"})
