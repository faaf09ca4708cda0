"""StatisticsGen: per-split, per-feature statistics of Examples."""

from __future__ import annotations

from sluice.dsl.artifacts import Examples, Statistics
from sluice.dsl.component import Channel, Component, InputSpec
from sluice.dsl.context import StepContext
from sluice.io import read_split, splits


class StatisticsGen(Component):
    """Compute statistics for every split of ``examples`` (SQL aggregates on the engine).

    Example::

        stats = StatisticsGen(examples=gen.outputs.examples)
        SchemaGen(statistics=stats.outputs.statistics)

    Output: ``<split>/statistics.json`` per split. The Examples' ``span``
    property (incremental data) is copied onto the statistics, so the
    ExampleValidator can find the previous span's statistics for drift.
    """

    INPUTS = {"examples": InputSpec(Examples)}
    OUTPUTS = {"statistics": Statistics}
    VERSION = "2"  # 2: records the span

    def __init__(self, examples: Channel, *, histogram_buckets: int = 10, top_k: int = 10,
                 name: str | None = None, cache: bool = True) -> None:
        super().__init__(name=name, inputs={"examples": examples},
                         params={"histogram_buckets": histogram_buckets, "top_k": top_k}, cache=cache)

    def execute(self, ctx: StepContext) -> None:
        from sluice import stats

        examples = ctx.inputs["examples"]
        datasets = {s: read_split(ctx.engine, examples.path, s) for s in splits(examples.path)}
        computed = stats.compute_splits(ctx.engine, datasets, histogram_buckets=ctx.params["histogram_buckets"],
                                        top_k=ctx.params["top_k"])
        stats.save_splits(computed, ctx.outputs["statistics"].path)
        for split, st in computed.items():
            ctx.log.info("split %s: %s rows, %d features", split, f"{st.num_rows:,}", len(st.features))
        props = ctx.outputs["statistics"].properties
        props.update({
            "splits": {s: st.num_rows for s, st in computed.items()},
            "summary": ", ".join(f"{s}: {len(st.features)} features" for s, st in computed.items()),
        })
        span = examples.properties.get("span")
        if span is not None:  # ExampleGen's contract: a string when present
            props["span"] = str(span)
            props["summary"] = f"span {span}: {props['summary']}"
