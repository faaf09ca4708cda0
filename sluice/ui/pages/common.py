"""What every page shares: the Jinja2 environment, formatting filters, the error page.

Example::

    return render(request, "run.html", title="run 3f2a", run=run)
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from sluice.render.html import badge, fmt
from sluice.ui.app import UIConfig

TEMPLATES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "templates")


def when(dt: datetime | None) -> str:
    """``2024-05-01 12:00:03`` (UTC), or empty."""
    return dt.strftime("%Y-%m-%d %H:%M:%S") if dt else ""


def secs(value: float | None) -> str:
    """A duration for people: ``0.4s``, ``12.3s``, ``4m 05s``, ``2h 03m``."""
    if value is None:
        return ""
    if value < 60:
        return f"{value:.1f}s"
    m, s = divmod(int(value), 60)
    return f"{m}m {s:02d}s" if m < 60 else f"{m // 60}h {m % 60:02d}m"


def tojson(value: Any) -> str:
    """Compact JSON, safe inside a ``<script type=application/json>`` or an attribute."""
    return json.dumps(value, default=str, separators=(",", ":")).replace("<", "\\u003c").replace(">", "\\u003e")


_env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)
_env.filters.update(when=when, secs=secs, fmt=fmt, badge=lambda s: badge(s, s), tojson=tojson)


def config(request: Request) -> UIConfig:
    """The app's :class:`~sluice.ui.app.UIConfig`."""
    return request.app.state.ui


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a template with the request in its context."""
    html = _env.get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status_code)


def not_found(what: str) -> HTTPException:
    """A 404 whose message names what is missing."""
    return HTTPException(404, detail=what)


async def error_page(request: Request, exc: Exception) -> Response:
    """Errors as a page in the UI's frame (with the reason), not a bare text response."""
    status = getattr(exc, "status_code", 500)
    detail = getattr(exc, "detail", None) or "internal error"
    return render(request, "error.html", status_code=status, title=f"{status}", status=status, detail=detail)


def int_param(request: Request, name: str, default: int, lo: int = 0, hi: int = 10**9) -> int:
    """An integer query parameter clamped to ``[lo, hi]``; a bad value is a 400."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return max(lo, min(hi, int(raw)))
    except ValueError:
        raise HTTPException(400, detail=f"{name} must be an integer, got {raw!r}") from None
