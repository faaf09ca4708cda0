"""How Sluice writes numbers for people, in messages, tables and pages alike.

Example::

    fmt(0.781234)  # '0.7812'
    fmt(None)      # '-'
"""

from __future__ import annotations

import math
from typing import Any


def fmt(value: Any, digits: int = 4) -> str:
    """Format a value for people: numbers with ``digits`` significant digits, None as ``-``.

    Example::

        fmt(0.781234)  # '0.7812'
        fmt(12345.0)   # '12345'
    """
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        # Large magnitudes read better in fixed notation than as 1.235e+04.
        if value != 0 and 1e4 <= abs(value) < 1e15:
            return f"{value:.1f}" if value != int(value) else str(int(value))
        return f"{value:.{digits}g}"
    return str(value)
