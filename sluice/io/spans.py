"""Incremental spans: ``data/dt={span}/*.csv`` names one span of data per folder value.

Like TFX's ``{SPAN}``: the ``{span}`` placeholder matches one path segment (or
part of one). A daily job ingests only the newest span; spans sort as dates,
numbers or strings, whichever all values parse as.

Example::

    pattern = SpanPattern("data/dt={span}/*.csv")
    pattern.spans()                 # {'2026-01-01': [...files], '2026-01-02': [...files]}
    pattern.select("latest")        # ('2026-01-02', ['2026-01-02'], [...files of that span])
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass

from sluice.errors import DataError
from sluice.spans import span_sort_key

PLACEHOLDER = "{span}"


def has_span(pattern: str) -> bool:
    """Whether a path pattern holds the ``{span}`` placeholder."""
    return PLACEHOLDER in pattern


@dataclass(frozen=True)
class SpanPattern:
    """A path pattern with one ``{span}`` placeholder and optional globs."""

    pattern: str

    def __post_init__(self) -> None:
        if self.pattern.count(PLACEHOLDER) != 1:
            raise DataError(f"input pattern {self.pattern!r} must hold {PLACEHOLDER} exactly once")

    def spans(self) -> dict[str, list[str]]:
        """Every span value found on disk, with its files (sorted)."""
        matcher = re.compile(_to_regex(self.pattern))
        found: dict[str, list[str]] = {}
        for path in sorted(glob.glob(self.pattern.replace(PLACEHOLDER, "*"), recursive=True)):
            m = matcher.fullmatch(path.replace(os.sep, "/"))
            if m and os.path.isfile(path) and not os.path.basename(path).startswith((".", "_")):
                found.setdefault(m.group("span"), []).append(path)
        return found

    def select(self, span: str) -> tuple[str, list[str], list[str]]:
        """``(span, spans, files)`` for ``span`` = ``"latest"``, ``"all"`` or one value.

        ``span`` in the result is the chosen value (the latest for ``"all"``).
        """
        found = self.spans()
        if not found:
            raise DataError(f"no input files match {self.pattern!r} for any span; check the path "
                            f"(relative paths are taken from {os.getcwd()})")
        ordered = sorted(found, key=span_sort_key(found))
        if span == "latest":
            chosen = [ordered[-1]]
        elif span == "all":
            chosen = ordered
        elif str(span) in found:
            chosen = [str(span)]
        else:
            raise DataError(f"span {span!r} has no files matching {self.pattern!r}; "
                            f"spans found: {_preview(ordered)}")
        return chosen[-1], chosen, [f for s in chosen for f in found[s]]




def _to_regex(pattern: str) -> str:
    """Glob to regex, segment aware: ``*`` and ``{span}`` stay within one path segment."""
    out, i = [], 0
    pattern = pattern.replace(os.sep, "/")
    while i < len(pattern):
        if pattern.startswith(PLACEHOLDER, i):
            out.append(r"(?P<span>[^/]+)")
            i += len(PLACEHOLDER)
        elif pattern.startswith("**/", i):
            out.append(r"(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(r".*")
            i += 2
        elif pattern[i] == "*":
            out.append(r"[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append(r"[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def _preview(values: list[str], n: int = 5) -> str:
    shown = values if len(values) <= 2 * n else values[:n] + ["..."] + values[-n:]
    return ", ".join(shown)
