"""Custom components from plain typed Python functions.

Example::

    from sluice import component, Input, Output
    from sluice.dsl.artifacts import Examples, RawData

    @component
    def make_data(data: Output[RawData], rows: int = 1000, seed: int = 0) -> None:
        write_files(data.path, rows, seed)

    step = make_data(rows=10_000)              # a Component; step.outputs.data is a channel

Arguments annotated ``Input[T]`` / ``Output[T]`` are artifacts; an argument
annotated :class:`~sluice.dsl.context.StepContext` receives the step context
(engine, log, metrics); every other argument is a parameter. The function's
source is part of the cache fingerprint, so editing it re-runs the step.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sluice.dsl.artifacts import Artifact
from sluice.dsl.component import Channel, Component, InputSpec, source_hash
from sluice.dsl.context import StepContext


@dataclass(frozen=True)
class _ArtifactAnnotation:
    direction: str  # "input" or "output"
    type: type[Artifact]
    optional: bool = False


class Input:
    """``Input[Examples]`` marks a function argument as an input artifact."""

    def __class_getitem__(cls, item: type[Artifact]) -> _ArtifactAnnotation:
        return _ArtifactAnnotation("input", item)


class OptionalInput:
    """``OptionalInput[Model]`` marks an input artifact that may be left out (``None``)."""

    def __class_getitem__(cls, item: type[Artifact]) -> _ArtifactAnnotation:
        return _ArtifactAnnotation("input", item, optional=True)


class Output:
    """``Output[Model]`` marks a function argument as an output artifact to write."""

    def __class_getitem__(cls, item: type[Artifact]) -> _ArtifactAnnotation:
        return _ArtifactAnnotation("output", item)


def _signature_roles(fn: Callable[..., Any]) -> tuple[dict[str, InputSpec], dict[str, type[Artifact]],
                                                      dict[str, inspect.Parameter], str | None]:
    hints = typing.get_type_hints(fn)
    inputs: dict[str, InputSpec] = {}
    outputs: dict[str, type[Artifact]] = {}
    params: dict[str, inspect.Parameter] = {}
    context_arg = None
    for name, p in inspect.signature(fn).parameters.items():
        hint = hints.get(name)
        if isinstance(hint, _ArtifactAnnotation):
            if hint.direction == "input":
                inputs[name] = InputSpec(hint.type, hint.optional)
            else:
                outputs[name] = hint.type
        elif hint is StepContext:
            context_arg = name
        else:
            params[name] = p
    return inputs, outputs, params, context_arg


def component(fn: Callable[..., Any] | None = None, *, version: str = "1") -> Any:
    """Turn a typed function into a component class (see the module docstring)."""

    def wrap(f: Callable[..., Any]) -> type[Component]:
        inputs, outputs, params, context_arg = _signature_roles(f)

        def __init__(self: Component, *, name: str | None = None, cache: bool = True,
                     retries: int | None = None, **kwargs: Any) -> None:
            wired: dict[str, Channel | None] = {}
            values: dict[str, Any] = {}
            for key, value in kwargs.items():
                if key in inputs:
                    wired[key] = value
                elif key in params:
                    values[key] = value
                else:
                    allowed = sorted([*inputs, *params])
                    raise TypeError(f"{f.__name__}() got an unexpected argument {key!r}; "
                                    f"it takes: {', '.join(allowed) or 'nothing'}")
            for key, p in params.items():
                if key not in values:
                    if p.default is inspect.Parameter.empty:
                        raise TypeError(f"{f.__name__}() is missing the parameter {key!r}")
                    values[key] = p.default
            Component.__init__(self, name=name or f.__name__, inputs=wired, params=values,
                               cache=cache, retries=retries)

        def execute(self: Component, ctx: StepContext) -> None:
            kwargs: dict[str, Any] = dict(ctx.params)
            kwargs.update({k: ctx.inputs.get(k) for k in inputs})
            kwargs.update({k: ctx.outputs[k] for k in outputs})
            if context_arg:
                kwargs[context_arg] = ctx
            f(**kwargs)

        def code_version(self: Component) -> str:
            return f"{f.__module__}.{f.__qualname__}:{version}:{source_hash(f)}"

        cls = type(f.__name__, (Component,), {
            "INPUTS": inputs, "OUTPUTS": outputs, "VERSION": version, "__init__": __init__,
            "execute": execute, "code_version": code_version, "__doc__": f.__doc__,
            "__module__": f.__module__, "function": staticmethod(f),
        })
        return cls

    return wrap(fn) if fn is not None else wrap
