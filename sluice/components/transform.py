"""Transform: fits a preprocessing function on the full training split and applies it to every split."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sluice.dsl.artifacts import Anomalies, Examples, TransformGraph
from sluice.dsl.component import Channel, Component, InputSpec
from sluice.dsl.context import StepContext
from sluice.io import read_split, splits


class Transform(Component):
    """Feature engineering without training/serving skew.

    Example::

        def preprocessing_fn(x):
            return {"age": st.zscore(st.fill_missing(x["age"])),
                    "country": st.vocabulary(x["country"], top_k=1000),
                    "label": st.passthrough(x["clicked"])}

        transform = Transform(examples=gen.outputs.examples, preprocessing_fn=preprocessing_fn)
        Trainer(examples=transform.outputs.transformed_examples,
                transform_graph=transform.outputs.transform_graph, ...)

    Analyzers (means, vocabularies, quantiles) are fitted on ``fit_split`` in
    as few SQL passes as the engine allows; the fitted graph is then applied
    to every split batch by batch. Wire the validator's ``anomalies`` in to
    make the transform wait for (and depend on) a clean validation.
    """

    INPUTS = {"examples": InputSpec(Examples), "anomalies": InputSpec(Anomalies, optional=True)}
    OUTPUTS = {"transform_graph": TransformGraph, "transformed_examples": Examples}

    def __init__(self, examples: Channel, preprocessing_fn: Callable[..., Any], *, fit_split: str = "train",
                 anomalies: Channel | None = None, name: str | None = None, cache: bool = True) -> None:
        super().__init__(name=name, inputs={"examples": examples, "anomalies": anomalies},
                         params={"preprocessing_fn": preprocessing_fn, "fit_split": fit_split}, cache=cache)

    def execute(self, ctx: StepContext) -> None:
        import sluice.transform as st

        examples = ctx.inputs["examples"].path
        engine = ctx.engine
        graph = st.fit(engine, read_split(engine, examples, ctx.params["fit_split"]), ctx.params["preprocessing_fn"])
        graph_out, data_out = ctx.outputs["transform_graph"], ctx.outputs["transformed_examples"]
        graph.save(graph_out.path)
        counts = {}
        for split in splits(examples):
            counts[split] = graph.transform(engine, read_split(engine, examples, split),
                                            data_out.file(split)).rows
            ctx.report_progress(f"transformed {split}: {counts[split]:,} rows")
        expected = ctx.inputs["examples"].properties.get("splits", {})
        for split, rows in counts.items():  # fail loudly when rows go missing, never silently
            if split in expected and expected[split] != rows:
                raise RuntimeError(f"Transform wrote {rows} rows for split {split!r} but read {expected[split]}")
        specs = [s.to_dict() for s in graph.feature_specs]
        graph_out.properties.update({"features": specs,
                                     "summary": f"{len(specs)} features fitted on {ctx.params['fit_split']}"})
        data_out.properties.update({"splits": counts, "rows": sum(counts.values()),
                                    "summary": ", ".join(f"{k} {v:,}" for k, v in counts.items())})
