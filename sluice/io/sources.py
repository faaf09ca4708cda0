"""Turning what a user names as input (paths, globs, ``{span}`` patterns, ``s3://`` URIs or a source
object) into one source an engine can read.

Every source reads through two engine methods only, ``Engine.read_files`` (and
``read_csv_checked``) for local files and ``Engine.read_arrow`` for the rest,
so it works on every engine.

Example::

    found = resolve_input(["data/dt={span}/*.csv"], span="latest")
    found.span, found.spans        # '2026-01-02', ['2026-01-02']
    ds, report = read_source(engine, found.source)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sluice.engine.base import ArrowSource, CsvReport, Dataset, Engine
from sluice.errors import DataError
from sluice.io.files import FileSource
from sluice.io.object_store import ObjectStoreSource, is_object_store_uri
from sluice.io.spans import SpanPattern, has_span



@dataclass
class ResolvedInput:
    """A source ready to read, and for ``{span}`` inputs the chosen span(s)."""

    source: Any
    pattern: str | None = None
    span: str | None = None
    spans: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        """What is read, without secrets: for artifact properties."""
        info = dict(self.source.describe())
        if self.pattern is not None:
            info["pattern"] = self.pattern
        return info

    def fingerprint(self) -> str:
        """Changes when the data read changes (files' names/sizes/mtimes, a table's version ...)."""
        return self.source.fingerprint()

    def where(self) -> str:
        """The input named for error messages."""
        if isinstance(self.source, FileSource):
            files = self.source.files
            return ", ".join(files[:3]) + (f" and {len(files) - 3} more file(s)" if len(files) > 3 else "")
        return repr(self.source)


def resolve_input(paths: Sequence[str] | None = None, source: ArrowSource | None = None, *,
                  format: str | None = None, span: str | None = None) -> ResolvedInput:
    """Resolve paths/globs/dirs, one ``{span}`` pattern, one ``s3://`` URI, or a source object."""
    if source is not None:
        pinned = getattr(source, "pinned", None)  # a lake table: read the version fingerprinted now
        return ResolvedInput(pinned() if callable(pinned) else source)
    paths = list(paths or [])
    patterns = [p for p in paths if has_span(p)]
    if patterns:
        if len(paths) != 1:
            raise DataError(f"a {{span}} input must be a single pattern, got {paths}")
        chosen, spans, files = SpanPattern(paths[0]).select(span or "latest")
        return ResolvedInput(FileSource.of_files(files, format), paths[0], chosen, spans)
    if span is not None:
        raise DataError(f"span={span!r} needs a {{span}} placeholder in the input path, e.g. "
                        f"'data/dt={{span}}/*.csv'; got {paths}")
    remote = [p for p in paths if is_object_store_uri(p)]
    if remote:
        if len(paths) != 1:
            raise DataError(f"an object store input must be a single URI (globs allowed), got {paths}")
        store = ObjectStoreSource(remote[0], format)
        store.files()  # list now: a missing prefix fails here, with its name
        return ResolvedInput(store)
    return ResolvedInput(FileSource.resolve(paths, format))


def read_source(engine: Engine, source: Any) -> tuple[Dataset, CsvReport | None]:
    """A lazy dataset over any source, and the malformed-row report for CSV files."""
    if isinstance(source, FileSource):
        source.check_columns()
        return source.read(engine)
    return engine.read_arrow(source), None
