"""SchemaGen infers a schema from statistics; ImportSchemaGen brings in a curated one."""

from __future__ import annotations

import os
from typing import Any

from sluice.dsl.artifacts import Schema, Statistics
from sluice.dsl.component import Channel, Component, InputSpec
from sluice.dsl.context import StepContext
from sluice.errors import SluiceError

SCHEMA_FILE = "schema.yaml"


class SchemaGen(Component):
    """Infer types, presence, domains and ranges from the statistics of one split.

    Example::

        schema = SchemaGen(statistics=stats.outputs.statistics)

    The output ``schema.yaml`` is meant to be reviewed and edited; bring the
    curated file back with :class:`ImportSchemaGen`. ``drift_threshold`` /
    ``skew_threshold`` set a default threshold on every comparable feature
    (unset by default: no drift or skew check), to tune per feature in the file::

        SchemaGen(statistics=stats.outputs.statistics, drift_threshold=0.1, skew_threshold=0.1)
    """

    INPUTS = {"statistics": InputSpec(Statistics)}
    OUTPUTS = {"schema": Schema}

    def __init__(self, statistics: Channel, *, split: str = "train", max_domain_size: int = 100,
                 drift_threshold: float | None = None, skew_threshold: float | None = None,
                 name: str | None = None, cache: bool = True) -> None:
        for key, value in (("drift_threshold", drift_threshold), ("skew_threshold", skew_threshold)):
            if value is not None and not 0.0 <= value <= 1.0:  # fail when the pipeline is built, not mid-run
                raise ValueError(f"SchemaGen: {key} must be in [0, 1] (a distance), got {value!r}")
        params: dict[str, Any] = {"split": split, "max_domain_size": max_domain_size}
        # Only when set, so existing pipelines keep their parameters (and cache keys).
        params.update({k: v for k, v in (("drift_threshold", drift_threshold), ("skew_threshold", skew_threshold))
                       if v is not None})
        super().__init__(name=name, inputs={"statistics": statistics}, params=params, cache=cache)

    def execute(self, ctx: StepContext) -> None:
        from sluice import stats

        by_split = stats.load_splits(ctx.inputs["statistics"].path)
        split = ctx.params["split"]
        if split not in by_split:
            raise SluiceError(f"SchemaGen: no statistics for split {split!r}; available: {', '.join(by_split)}")
        schema = stats.infer_schema(by_split[split], max_domain_size=ctx.params["max_domain_size"],
                                    drift_threshold=ctx.params.get("drift_threshold"),
                                    skew_threshold=ctx.params.get("skew_threshold"))
        schema.save(ctx.outputs["schema"].file(SCHEMA_FILE))
        ctx.outputs["schema"].properties["summary"] = f"{len(list(schema))} features from {split}"


class ImportSchemaGen(Component):
    """Use a hand-curated ``schema.yaml`` instead of an inferred one.

    Example::

        schema = ImportSchemaGen(schema_file="schema/ctr.yaml")
    """

    OUTPUTS = {"schema": Schema}

    def __init__(self, schema_file: str, *, name: str | None = None) -> None:
        super().__init__(name=name, params={"schema_file": schema_file})

    def external_fingerprint(self) -> str | None:
        from sluice.runner.fingerprint import files_fingerprint

        path = self.params["schema_file"]
        return files_fingerprint([path]) if os.path.isfile(path) else None

    def execute(self, ctx: StepContext) -> None:
        from sluice import stats

        path = ctx.params["schema_file"]
        if not os.path.isfile(path):
            raise SluiceError(f"ImportSchemaGen: schema file {path!r} not found")
        try:
            schema = stats.Schema.load(path)  # validates every feature entry
        except ValueError as exc:
            raise SluiceError(f"ImportSchemaGen: {path}: {exc}") from None
        schema.save(ctx.outputs["schema"].file(SCHEMA_FILE))
        ctx.outputs["schema"].properties["summary"] = f"imported {len(list(schema))} features"
