"""Span ordering, shared by ingestion (``sluice.io.spans``) and the metadata store's
previous-span lookup, so both agree that "9" < "10" and "2024-1-9" < "2024-01-10".

Example::

    sorted(["10", "9"], key=span_sort_key(["10", "9"]))   # ['9', '10']
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterable
from typing import Any


def span_sort_key(values: Iterable[str]) -> Callable[[str], Any]:
    """A sort key for span values: as integers, numbers or dates if all values parse so, else as text."""
    values = list(values)
    for parse in (_int, float, _date):
        try:
            for v in values:
                parse(v)
        except ValueError:
            continue
        return parse
    return str


def _int(value: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", value):
        raise ValueError(value)
    return int(value)


def _date(value: str) -> datetime.datetime:
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H", "%Y-%m", "%Y/%m/%d"):
        try:
            return datetime.datetime.strptime(value, fmt)
        except ValueError:
            continue
    raise ValueError(value)
