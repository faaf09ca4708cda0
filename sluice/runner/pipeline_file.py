"""Loading a pipeline from a Python file, with ``--param key=value`` overrides.

A pipeline file defines a function ``pipeline(...)`` that returns a
:class:`~sluice.dsl.pipeline.Pipeline`; its keyword arguments are the
pipeline's parameters, typed by their annotations or defaults.

Example (``my_pipeline.py``)::

    def pipeline(rows: int = 10_000, data_dir: str = "data") -> Pipeline:
        ...

    # sluice run my_pipeline.py --param rows=1000000
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import os
import sys
import typing
from collections.abc import Sequence
from typing import Any

from sluice.dsl.pipeline import Pipeline
from sluice.errors import SluiceError

ENTRY_POINTS = ("pipeline", "create_pipeline")


def parse_params(pairs: Sequence[str]) -> dict[str, str]:
    """``["rows=1000", "name=x"]`` -> ``{"rows": "1000", "name": "x"}``."""
    out: dict[str, str] = {}
    for pair in pairs:
        if "=" not in pair:
            raise SluiceError(f"--param {pair!r} must look like key=value (e.g. --param rows=100000)")
        key, value = pair.split("=", 1)
        out[key.strip()] = value
    return out


def load_pipeline(path: str, params: dict[str, str] | None = None) -> tuple[Pipeline, dict[str, Any], Any]:
    """Import ``path`` and call its ``pipeline(**params)``.

    Returns the pipeline, the typed parameters and the imported module.
    """
    if not os.path.isfile(path):
        raise SluiceError(f"pipeline file {path!r} not found")
    # The working directory and the file's folder are importable, as with `python file.py`.
    for folder in (os.getcwd(), os.path.dirname(os.path.abspath(path))):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    # A stable module name: custom components' code versions include it, and caching must
    # survive across processes (Python's hash() of a string changes per process).
    stem = hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(f"sluice_pipeline_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    factory = next((getattr(module, n) for n in ENTRY_POINTS if callable(getattr(module, n, None))), None)
    if factory is None:
        raise SluiceError(f"{path} defines no function named {' or '.join(ENTRY_POINTS)} returning a Pipeline")
    typed = coerce_params(factory, params or {})
    pipeline = factory(**typed)
    if not isinstance(pipeline, Pipeline):
        raise SluiceError(f"{path}: {factory.__name__}() returned {type(pipeline).__name__}, expected a Pipeline")
    return pipeline, typed, module


def pipeline_params(factory: Any) -> dict[str, inspect.Parameter]:
    """The parameters a pipeline function accepts."""
    return dict(inspect.signature(factory).parameters)


def coerce_params(factory: Any, raw: dict[str, str]) -> dict[str, Any]:
    """Convert ``--param`` strings to the types of the pipeline function's arguments."""
    accepted = pipeline_params(factory)
    hints = typing.get_type_hints(factory)
    typed: dict[str, Any] = {}
    for key, text in raw.items():
        if key not in accepted:
            raise SluiceError(f"unknown --param {key!r}; this pipeline takes: "
                              + ", ".join(_describe(n, p) for n, p in accepted.items()))
        default = accepted[key].default
        target = hints.get(key, str if default is None or default is inspect.Parameter.empty else type(default))
        typed[key] = _convert(key, text, target)
    missing = [n for n, p in accepted.items() if p.default is inspect.Parameter.empty and n not in typed
               and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
    if missing:
        raise SluiceError("this pipeline needs " + ", ".join(f"--param {n}=..." for n in missing))
    return typed


def _describe(name: str, p: inspect.Parameter) -> str:
    return name if p.default is inspect.Parameter.empty else f"{name}={p.default!r}"


def _convert(key: str, text: str, target: Any) -> Any:
    if target is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise SluiceError(f"--param {key}={text!r}: expected true or false")
    if target in (int, float):
        try:
            return target(text.replace("_", ""))
        except ValueError:
            raise SluiceError(f"--param {key}={text!r}: expected {'an integer' if target is int else 'a number'}")
    return text
