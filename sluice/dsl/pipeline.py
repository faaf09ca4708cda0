"""A pipeline: named components forming a DAG, validated before anything runs."""

from __future__ import annotations

from collections.abc import Iterable

from sluice.dsl.component import Channel, Component


class PipelineError(ValueError):
    """The pipeline is not a valid DAG; the message says which step and input, and how to fix it."""


class Pipeline:
    """Components wired by their outputs.

    Validation happens on construction: duplicate step names, inputs from
    steps outside the pipeline, missing required inputs, unknown inputs,
    artifact type mismatches and cycles are all reported before any step runs.

    Example::

        gen = ExampleGen(input="data/*.csv")
        stats = StatisticsGen(examples=gen.outputs.examples)
        pipeline = Pipeline("my-pipeline", [gen, stats])
        [c.name for c in pipeline.order]   # ['ExampleGen', 'StatisticsGen']
    """

    def __init__(self, name: str, components: Iterable[Component]) -> None:
        if not name or "/" in name:
            raise PipelineError(f"pipeline name {name!r} must be non-empty and contain no '/'")
        self.name = name
        self.components = list(components)
        self.order = self._validate()

    def step(self, name: str) -> Component:
        """The component named ``name``."""
        for c in self.components:
            if c.name == name:
                return c
        raise KeyError(f"no step {name!r} in pipeline {self.name!r}")

    def downstream_of(self, name: str) -> set[str]:
        """Names of all steps that depend, directly or not, on step ``name``."""
        found: set[str] = set()
        frontier = {name}
        while frontier:
            nxt = {c.name for c in self.components if {u.name for u in c.upstream} & frontier} - found
            found |= nxt
            frontier = nxt
        return found

    def _validate(self) -> list[Component]:
        names: dict[str, Component] = {}
        for c in self.components:
            if c.name in names:
                raise PipelineError(f"two steps are named {c.name!r}; give one of them name='...'")
            names[c.name] = c
        for c in self.components:
            self._validate_inputs(c, names)
        return self._topological_order()

    def _validate_inputs(self, c: Component, names: dict[str, Component]) -> None:
        specs = type(c).INPUTS
        for key in c.inputs:
            if key not in specs:
                raise PipelineError(f"step {c.name!r} has no input {key!r}; its inputs are: "
                                    f"{', '.join(specs) or 'none'}")
        for key, spec in specs.items():
            channel = c.inputs.get(key)
            if channel is None:
                if not spec.optional:
                    raise PipelineError(f"step {c.name!r} needs input {key!r} "
                                        f"(a {spec.type.type_name} artifact), but none was given")
                continue
            if not isinstance(channel, Channel):
                raise PipelineError(f"step {c.name!r} input {key!r} must be another step's output "
                                    f"(e.g. gen.outputs.examples), got {type(channel).__name__}")
            if names.get(channel.producer.name) is not channel.producer:
                raise PipelineError(f"step {c.name!r} input {key!r} comes from step "
                                    f"{channel.producer.name!r}, which is not in pipeline {self.name!r}; "
                                    "add it to the component list")
            if not issubclass(channel.type, spec.type):
                raise PipelineError(f"step {c.name!r} input {key!r} expects {spec.type.type_name}, but "
                                    f"{channel.producer.name}.outputs.{channel.key} is {channel.type.type_name}")

    def _topological_order(self) -> list[Component]:
        # Kahn's algorithm, keeping the user's order among ready steps.
        pending = {c.name: {u.name for u in c.upstream} for c in self.components}
        order: list[Component] = []
        while pending:
            ready = [c for c in self.components if c.name in pending and not pending[c.name]]
            if not ready:
                cycle = " -> ".join(sorted(pending))
                raise PipelineError(f"the pipeline has a cycle among steps: {cycle}")
            for c in ready:
                order.append(c)
                del pending[c.name]
            for deps in pending.values():
                deps.difference_update(c.name for c in ready)
        return order
