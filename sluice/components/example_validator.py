"""ExampleValidator: checks every split's statistics against the schema."""

from __future__ import annotations

from sluice.dsl.artifacts import Anomalies, Schema, Statistics
from sluice.dsl.component import Channel, Component, InputSpec
from sluice.dsl.context import StepContext
from sluice.errors import AnomaliesFound


class ExampleValidator(Component):
    """Find schema violations; stop the run on error-level anomalies unless allowed.

    Example::

        ExampleValidator(statistics=stats.outputs.statistics, schema=schema.outputs.schema)
        ExampleValidator(..., allow_anomalies=True)   # record them, carry on

    Output: ``anomalies.json``; every anomaly is also written to the step log.
    """

    INPUTS = {"statistics": InputSpec(Statistics), "schema": InputSpec(Schema)}
    OUTPUTS = {"anomalies": Anomalies}

    def __init__(self, statistics: Channel, schema: Channel, *, allow_anomalies: bool = False,
                 name: str | None = None, cache: bool = True) -> None:
        super().__init__(name=name, inputs={"statistics": statistics, "schema": schema},
                         params={"allow_anomalies": allow_anomalies}, cache=cache)

    def execute(self, ctx: StepContext) -> None:
        from sluice import stats

        by_split = stats.load_splits(ctx.inputs["statistics"].path)
        schema = stats.Schema.load(ctx.inputs["schema"].file("schema.yaml"))
        found = stats.validate(by_split, schema)
        for anomaly in found:
            ctx.log.warning("%s", anomaly.line())
        found.save(ctx.outputs["anomalies"].file("anomalies.json"))
        errors = len(found.errors)
        ctx.outputs["anomalies"].properties.update({
            "errors": errors, "warnings": len(found.warnings),
            "summary": f"{errors} error(s), {len(found.warnings)} warning(s)"})
        if errors and not ctx.params["allow_anomalies"]:
            raise AnomaliesFound(f"{errors} error-level anomalies:\n{found.summary()}\n"
                                 "Fix the data or the schema, or pass allow_anomalies=True to ExampleValidator")
