"""Components: typed steps wired together by their outputs, TFX style.

A component declares typed inputs and outputs and takes parameters. Wiring
is done by passing another component's output channel as an input::

    gen = ExampleGen(input="data/*.csv")
    stats = StatisticsGen(examples=gen.outputs.examples)

Standard components subclass :class:`Component` and implement
:meth:`Component.execute`; custom ones come from a decorated function
(:func:`sluice.dsl.decorator.component`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from sluice.dsl.artifacts import Artifact

if TYPE_CHECKING:
    from sluice.dsl.context import StepContext


@dataclass(frozen=True)
class InputSpec:
    """A declared input: the artifact type it accepts and whether it may be left out."""

    type: type[Artifact]
    optional: bool = False


@dataclass(frozen=True, eq=False)
class Channel:
    """A reference to one output of a component, used to wire it into another's input."""

    producer: Component
    key: str
    type: type[Artifact]

    def __repr__(self) -> str:
        return f"<{self.type.type_name} from {self.producer.name}.outputs.{self.key}>"


class OutputChannels:
    """``component.outputs.<key>``: the channels of a component's outputs."""

    def __init__(self, component: Component) -> None:
        self._component = component

    def __getattr__(self, key: str) -> Channel:
        specs = type(self._component).OUTPUTS
        if key not in specs:
            raise AttributeError(
                f"{self._component.name} has no output {key!r}; its outputs are: {', '.join(specs) or 'none'}")
        return Channel(self._component, key, specs[key])

    def __getitem__(self, key: str) -> Channel:
        return self.__getattr__(key)

    def __iter__(self):
        return (self.__getattr__(k) for k in type(self._component).OUTPUTS)


class Component:
    """Base class of every pipeline step.

    Subclasses declare ``INPUTS``, ``OUTPUTS`` and ``VERSION`` (bump it when
    the component's behaviour changes, so caches are invalidated) and
    implement :meth:`execute`.

    Example::

        class CountRows(Component):
            INPUTS = {"examples": InputSpec(Examples)}
            OUTPUTS = {"report": Artifact}

            def __init__(self, examples, *, name=None):
                super().__init__(name=name, inputs={"examples": examples})

            def execute(self, ctx):
                ...
    """

    INPUTS: ClassVar[dict[str, InputSpec]] = {}
    OUTPUTS: ClassVar[dict[str, type[Artifact]]] = {}
    VERSION: ClassVar[str] = "1"

    def __init__(self, *, name: str | None = None, inputs: Mapping[str, Channel | None] | None = None,
                 params: Mapping[str, Any] | None = None, cache: bool = True, retries: int | None = None) -> None:
        self.name = name or type(self).__name__
        self.inputs: dict[str, Channel | None] = dict(inputs or {})
        self.params: dict[str, Any] = dict(params or {})
        self.cache = cache
        self.retries = retries

    @property
    def outputs(self) -> OutputChannels:
        """The component's output channels, e.g. ``gen.outputs.examples``."""
        return OutputChannels(self)

    @property
    def upstream(self) -> list[Component]:
        """Components whose outputs this one consumes."""
        seen: dict[int, Component] = {}
        for ch in self.inputs.values():
            if isinstance(ch, Channel):
                seen.setdefault(id(ch.producer), ch.producer)
        return list(seen.values())

    def execute(self, ctx: StepContext) -> None:
        """Do the work: read ``ctx.inputs``, write into ``ctx.outputs`` directories."""
        raise NotImplementedError(f"{type(self).__name__}.execute is not implemented")

    def code_version(self) -> str:
        """Identity and version of the code, part of the cache fingerprint."""
        from sluice import __version__

        return f"{type(self).__module__}.{type(self).__qualname__}:{self.VERSION}:sluice-{__version__}"

    def external_fingerprint(self) -> str | None:
        """Fingerprint of data read from outside the artifact store (files, tables), if any."""
        return None

    def outputs_still_valid(self, outputs: Mapping[str, Artifact]) -> bool:
        """Whether cached outputs may be reused; a step with effects outside the artifact
        store (a pushed servable) checks here that the effect is still there."""
        return True

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def canonical(value: Any, where: str = "parameter") -> Any:
    """A JSON-able, order-independent form of a parameter value, for fingerprints.

    Functions (e.g. a preprocessing function) are identified by their qualified
    name and a hash of their source, so editing the function invalidates caches.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [canonical(v, where) for v in value]
    if isinstance(value, Mapping):
        return {str(k): canonical(v, f"{where}.{k}") for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"dataclass": type(value).__qualname__, "fields": canonical(dataclasses.asdict(value), where)}
    if callable(value):
        return {"callable": f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', repr(value))}",
                "source_sha256": source_hash(value)}
    raise TypeError(
        f"{where}: value of type {type(value).__name__} cannot be fingerprinted; "
        "use numbers, strings, lists, dicts, dataclasses or functions")


def source_hash(obj: Any) -> str:
    """sha256 of an object's source code (of its repr when the source is unavailable)."""
    try:
        text = inspect.getsource(obj)
    except (OSError, TypeError):
        text = repr(obj)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def canonical_json(value: Any) -> str:
    """Canonical JSON text of a parameter set (sorted keys, no whitespace)."""
    return json.dumps(canonical(value), sort_keys=True, separators=(",", ":"))
