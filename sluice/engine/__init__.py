"""Engines run the data-parallel work of a step: ``local`` (DuckDB + Arrow) by default, ``spark`` (PySpark).

Engines are registered by name and imported lazily, so ``import sluice`` never
pulls in an engine a pipeline does not use.
"""

from __future__ import annotations

import importlib
from typing import Any

from sluice.engine.base import Dataset, Engine, WriteResult

# name -> "module:Class"; resolved only when asked for.
ENGINES: dict[str, str] = {
    "local": "sluice.engine.local:LocalEngine",
    "spark": "sluice.engine.spark:SparkEngine",  # needs the [spark] extra and Java 17
}


def get_engine(name: str = "local", **options: Any) -> Engine:
    """Create the engine registered under ``name``.

    Example::

        engine = get_engine("local", memory_limit="2GB")
        engine = get_engine("spark", master="local[2]")
    """
    try:
        target = ENGINES[name]
    except KeyError:
        known = ", ".join(sorted(ENGINES))
        raise ValueError(f"unknown engine {name!r}; available engines: {known}") from None
    module_name, class_name = target.split(":")
    if name == "spark":  # a clear "how to install" instead of an ImportError deep in a step
        from sluice.engine.spark_session import check_available

        check_available()
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(**options)


__all__ = ["Dataset", "Engine", "WriteResult", "ENGINES", "get_engine"]
