"""The pipeline DSL: artifact types, components, custom components, pipelines."""

from sluice.dsl.artifacts import (
    Anomalies, Artifact, Blessing, Examples, Model, ModelEvaluation, PushedModel, RawData, Schema,
    Statistics, TransformGraph,
)
from sluice.dsl.component import Channel, Component, InputSpec
from sluice.dsl.context import StepContext
from sluice.dsl.decorator import Input, OptionalInput, Output, component
from sluice.dsl.pipeline import Pipeline, PipelineError

__all__ = [
    "Anomalies", "Artifact", "Blessing", "Channel", "Component", "Examples", "Input", "InputSpec", "Model",
    "ModelEvaluation", "OptionalInput", "Output", "Pipeline", "PipelineError", "PushedModel", "RawData", "Schema",
    "Statistics", "StepContext", "TransformGraph", "component",
]
