"""Sluice: end-to-end machine learning on big data.

One Python pipeline takes raw data through statistics, validation, feature
engineering, PyTorch training, evaluation, a release gate and serving, on an
embedded engine (DuckDB + Arrow) or on Apache Spark.

Example::

    from sluice import Pipeline
    from sluice.components import ExampleGen, StatisticsGen

    gen = ExampleGen(input="data/*.csv")
    pipeline = Pipeline("hello", [gen, StatisticsGen(examples=gen.outputs.examples)])
"""

__version__ = "0.1.0"

from sluice.dsl import (  # noqa: E402  (light: the DSL imports only the standard library)
    Input, OptionalInput, Output, Pipeline, StepContext, component,
)

__all__ = ["Input", "OptionalInput", "Output", "Pipeline", "StepContext", "component", "__version__"]
