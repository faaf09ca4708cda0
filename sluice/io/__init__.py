"""Sources and sinks: data files, object stores, SQL databases, Delta tables, the Examples layout.

Example::

    from sluice.io import SqlSource, DeltaSource, ObjectStoreSource
    ExampleGen(input=SqlSource("sqlite:///shop.db", table="orders", partition_column="id"))
"""

from sluice.io.delta import DeltaSource
from sluice.io.examples import read_split, split_files, splits
from sluice.io.files import FileSource
from sluice.io.object_store import ObjectStoreSource
from sluice.io.sources import ResolvedInput, read_source, resolve_input
from sluice.io.spans import SpanPattern
from sluice.io.sql import SqlSource

__all__ = ["DeltaSource", "FileSource", "ObjectStoreSource", "ResolvedInput", "SpanPattern", "SqlSource",
           "read_source", "read_split", "resolve_input", "split_files", "splits"]
