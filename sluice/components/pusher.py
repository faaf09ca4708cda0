"""Pusher: releases a blessed model as the next integer version of a servable."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping

from sluice.dsl.artifacts import Artifact, Blessing, Model, PushedModel, Schema, TransformGraph
from sluice.dsl.component import Channel, Component, InputSpec
from sluice.dsl.context import StepContext
from sluice.registry.push import commit_version, stage_version
from sluice.registry.servable import SIGNATURE, Signature


class Pusher(Component):
    """Push a blessed model to ``destination/<model name>/<version>/`` and register the version.

    Example::

        Pusher(model=trainer.outputs.model, transform=transform.outputs.transform_graph,
               blessing=evaluator.outputs.blessing, destination="serving")

    A model that is not blessed is not pushed; the output records why.
    """

    INPUTS = {"model": InputSpec(Model), "transform": InputSpec(TransformGraph),
              "blessing": InputSpec(Blessing), "schema": InputSpec(Schema, optional=True)}
    OUTPUTS = {"pushed_model": PushedModel}

    def __init__(self, model: Channel, transform: Channel, blessing: Channel, *, destination: str = "serving",
                 model_name: str | None = None, schema: Channel | None = None, name: str | None = None) -> None:
        super().__init__(name=name, inputs={"model": model, "transform": transform, "blessing": blessing,
                                            "schema": schema},
                         params={"destination": destination, "model_name": model_name},
                         cache=True)

    def outputs_still_valid(self, outputs: Mapping[str, Artifact]) -> bool:
        # A cached push is only a push while the version folder is there: if someone removed
        # it, run again (the model is then released as a new version).
        props = outputs["pushed_model"].properties
        return not props.get("pushed") or os.path.isfile(os.path.join(props["path"], SIGNATURE))

    def execute(self, ctx: StepContext) -> None:
        out = ctx.outputs["pushed_model"]
        blessing = ctx.inputs["blessing"]
        name = ctx.params["model_name"] or ctx.pipeline
        destination = os.path.abspath(ctx.params["destination"])
        if not blessing.properties.get("blessed"):
            reason = blessing.properties.get("summary", "not blessed")
            ctx.log.info("not pushing: %s", reason)
            out.properties.update({"pushed": False, "model_name": name, "summary": f"not pushed: {reason}"})
            return
        model, transform = ctx.inputs["model"], ctx.inputs["transform"]
        schema = ctx.inputs.get("schema")
        required = _required_columns(schema) if schema is not None else set()
        signature = Signature.build(name, model.path, transform.path, required)
        # Copy first, register, then rename: a failed copy registers nothing.
        staged = stage_version(destination, name, model.path, transform.path, signature)
        try:
            version = ctx.store.register_model_version(name, os.path.join(destination, name), None, model.id,
                                                       ctx.run_id)
            path = commit_version(staged, version)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        ctx.log.info("pushed %s version %d to %s", name, version, path)
        with open(out.file("pushed.json"), "w") as f:
            json.dump({"model_name": name, "version": version, "path": path}, f)
        out.properties.update({"pushed": True, "model_name": name, "version": version, "path": path,
                               "destination": destination, "summary": f"pushed {name} v{version}"})


def _required_columns(schema: object) -> set[str]:
    from sluice.stats import Schema as FeatureSchema

    loaded = FeatureSchema.load(schema.file("schema.yaml"))
    return {f.name for f in loaded if f.required}
