"""Reading and writing the Examples layout: ``<split>/part-NNNNN.parquet`` per split.

Example::

    split_files(examples.path, "train")        # ['/.../train/part-00000.parquet', ...]
    ds = read_split(engine, examples.path, "eval")
"""

from __future__ import annotations

import glob
import os

from sluice.engine import Dataset, Engine
from sluice.errors import DataError


def splits(directory: str) -> list[str]:
    """Names of the splits stored in an Examples directory."""
    return sorted(d for d in os.listdir(directory)
                  if os.path.isdir(os.path.join(directory, d)) and not d.startswith((".", "_")))


def split_files(directory: str, split: str) -> list[str]:
    """The Parquet shards of one split, in order."""
    files = sorted(glob.glob(os.path.join(directory, split, "*.parquet")))
    if not files:
        raise DataError(f"split {split!r} has no data in {directory}; "
                        f"available splits: {', '.join(splits(directory)) or 'none'}")
    return files


def read_split(engine: Engine, directory: str, split: str) -> Dataset:
    """A lazy dataset over one split."""
    return engine.read_parquet(split_files(directory, split))
