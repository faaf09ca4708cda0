"""Bearer-token authentication, an ASGI middleware.

Every path but the liveness/readiness probes needs ``Authorization: Bearer <token>``
when tokens are configured; tokens are compared in constant time.

Example::

    app = BearerAuth(app, tokens={"s3cret"})
"""

from __future__ import annotations

import hmac
import json
from typing import Any

OPEN_PATHS = frozenset({"/healthz", "/v2/health/live", "/v2/health/ready", "/ping", "/health"})


class BearerAuth:
    """Refuses requests without a valid bearer token with a 401 (ASGI middleware)."""

    def __init__(self, app: Any, tokens: set[str]) -> None:
        self.app = app
        self.tokens = [t.encode() for t in tokens]

    def allowed(self, header: bytes | None) -> bool:
        if not header or not header[:7].lower() == b"bearer ":
            return False
        given = header[7:].strip()
        ok = False
        for token in self.tokens:  # no early exit: time does not depend on which token matched
            ok |= hmac.compare_digest(given, token)
        return ok

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not self.tokens or scope["path"] in OPEN_PATHS:
            return await self.app(scope, receive, send)
        header = dict(scope["headers"]).get(b"authorization")
        if self.allowed(header):
            return await self.app(scope, receive, send)
        message = "missing bearer token" if not header else "invalid bearer token"
        body = json.dumps({"error": f"{message}: send 'Authorization: Bearer <token>'"}).encode()
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", b'Bearer realm="sluice"')]})
        await send({"type": "http.response.body", "body": body})
