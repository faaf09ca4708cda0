"""What a running step sees: its input and output artifacts, parameters, engine, log."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sluice.dsl.artifacts import Artifact

if TYPE_CHECKING:
    from sluice.engine import Engine
    from sluice.metadata import MetadataStore


@dataclass
class StepContext:
    """Handed to :meth:`Component.execute` by the runner.

    ``inputs`` hold published artifacts (``None`` for an optional input left
    out); ``outputs`` hold artifacts whose directories are empty staging
    directories the step writes into. Properties set on an output artifact
    are recorded in the metadata store when the step succeeds.

    Example::

        def execute(self, ctx):
            ds = ctx.engine.read_parquet(glob(ctx.inputs["examples"].file("train", "*.parquet")))
            ctx.outputs["report"].properties["rows"] = ctx.engine.count(ds)
            ctx.log.info("counted rows")
    """

    pipeline: str
    run_id: str
    step: str
    inputs: dict[str, Artifact | None]
    outputs: dict[str, Artifact]
    params: dict[str, Any]
    log: logging.Logger
    engine_factory: Callable[[], Engine]
    store: MetadataStore | None = None
    metric_sink: Callable[[str, float, int], None] | None = None
    status_sink: Callable[[str], None] | None = None
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def engine(self) -> Engine:
        """The data-plane engine of this run, created on first use."""
        if self._engine is None:
            self._engine = self.engine_factory()
        return self._engine

    def report_progress(self, text: str) -> None:
        """Show how far a long step has got (e.g. ``epoch 2/5 auc=0.79``) in the live display."""
        self.log.info("%s", text)
        if self.status_sink is not None:
            self.status_sink(text)

    def log_metric(self, name: str, value: float, step: int = 0) -> None:
        """Record one point of a metric series (e.g. ``train_loss`` at epoch 3)."""
        if self.metric_sink is not None:
            self.metric_sink(name, float(value), int(step))
