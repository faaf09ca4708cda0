"""Reading and writing result files (JSON, YAML) atomically.

Results are artifacts: a crash must never leave a half-written file that
looks whole, so every write goes to a temporary name first and is renamed.
A path may name the file itself or the directory that holds it under its
standard name (``statistics.json``, ``schema.yaml`` ...).

Example::

    path = write_json("out/stats", "statistics.json", {"num_rows": 3})
    read_json("out/stats", "statistics.json")   # {'num_rows': 3}
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

_FILE_SUFFIXES = (".json", ".yaml", ".yml")


def resolve(path: str | os.PathLike[str], default_name: str) -> str:
    """The file a path means: the path itself if it names a file, else ``path/default_name``."""
    path = os.fspath(path)
    if path.endswith(_FILE_SUFFIXES) and not os.path.isdir(path):
        return path
    return os.path.join(path, default_name)


def write_text(path: str | os.PathLike[str], default_name: str, text: str) -> str:
    """Write ``text`` atomically; returns the file written."""
    target = resolve(path, default_name)
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    tmp = os.path.join(os.path.dirname(target) or ".", f".{os.path.basename(target)}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, target)
    return target


def read_text(path: str | os.PathLike[str], default_name: str) -> str:
    target = resolve(path, default_name)
    with open(target, encoding="utf-8") as f:
        return f.read()


def clean(value: Any) -> Any:
    """Make a value strict JSON: NaN and infinities become None, tuples lists."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def write_json(path: str | os.PathLike[str], default_name: str, data: Any) -> str:
    """Write ``data`` as indented strict JSON, atomically; returns the file written."""
    return write_text(path, default_name, json.dumps(clean(data), indent=2, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike[str], default_name: str) -> Any:
    return json.loads(read_text(path, default_name))
