"""Standard pipeline components: thin wrappers around Sluice's ML libraries.

Registered by name and imported lazily, so importing one does not pull in
torch or the serving stack.

Example::

    from sluice.components import ExampleGen, StatisticsGen, SchemaGen
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> "module:attribute"; resolved on first access.
COMPONENTS: dict[str, str] = {
    "ExampleGen": "sluice.components.example_gen:ExampleGen",
    "StatisticsGen": "sluice.components.statistics_gen:StatisticsGen",
    "SchemaGen": "sluice.components.schema_gen:SchemaGen",
    "ImportSchemaGen": "sluice.components.schema_gen:ImportSchemaGen",
    "ExampleValidator": "sluice.components.example_validator:ExampleValidator",
    "Transform": "sluice.components.transform:Transform",
    "Trainer": "sluice.components.trainer:Trainer",
    "Tuner": "sluice.components.tuner:Tuner",
    "Evaluator": "sluice.components.evaluator:Evaluator",
    "Pusher": "sluice.components.pusher:Pusher",
    "BulkInferrer": "sluice.components.bulk_inferrer:BulkInferrer",
}


def __getattr__(name: str) -> Any:
    try:
        module_name, attr = COMPONENTS[name].split(":")
    except KeyError:
        raise AttributeError(f"sluice.components has no component {name!r}; "
                             f"available: {', '.join(COMPONENTS)}") from None
    return getattr(importlib.import_module(module_name), attr)


def __dir__() -> list[str]:
    return sorted(COMPONENTS)


__all__ = list(COMPONENTS)
