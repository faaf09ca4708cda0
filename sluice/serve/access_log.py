"""Structured access log and request metrics, an ASGI middleware.

One JSON line per request on the ``sluice.serve.access`` logger::

    {"ts": "2026-11-24T01:02:03.456Z", "method": "POST", "path": "/v1/models/ctr:predict",
     "status": 200, "ms": 1.9, "model": "ctr", "version": "3", "protocol": "tfserving", "rows": 1,
     "client": "127.0.0.1"}

Protocol handlers put ``model``, ``version``, ``protocol`` and ``rows`` into
``scope["sluice"]``; requests that name a model are counted in the metrics.

Example::

    app = AccessLog(app, metrics=ServerMetrics(), log=True)
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from typing import Any

from sluice.serve.metrics import ServerMetrics

access = logging.getLogger("sluice.serve.access")


class AccessLog:
    """Times each request, logs it as JSON and feeds the request metrics (ASGI middleware)."""

    def __init__(self, app: Any, metrics: ServerMetrics | None, log: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.log = log

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500
        info: dict[str, Any] = {}
        scope["sluice"] = info

        async def send_wrapper(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            seconds = time.perf_counter() - start
            if self.metrics is not None and "model" in info:
                self.metrics.observe_request(info["model"], str(info.get("version", "")),
                                             info.get("protocol", ""), status, seconds)
            if self.log and access.isEnabledFor(logging.INFO):
                client = scope.get("client")
                record = {"ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                          "method": scope["method"], "path": scope["path"], "status": status,
                          "ms": round(seconds * 1000, 3), **info, "client": client[0] if client else None}
                access.info(json.dumps(record, default=str))
