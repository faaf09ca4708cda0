"""The web UI's Starlette application: configuration, bearer-token check, routes, static files.

Read-only: every route is a GET, and the store is only read (the UI never creates tables or
marks runs). Bound to a non-loopback address the UI requires a token, sent as
``Authorization: Bearer <token>`` or once as ``?token=<token>`` (kept in an HttpOnly cookie).

Example::

    import uvicorn
    from sluice.ui import create_app
    app = create_app(".sluice/metadata.db", artifact_root=".sluice/artifacts")
    uvicorn.run(app, host="127.0.0.1", port=8765)
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from sluice.metadata import MetadataStore
from sluice.ui.files import SafeFiles

HERE = os.path.dirname(os.path.abspath(__file__))
COOKIE = "sluice_ui_token"


@dataclass
class UIConfig:
    """What the app serves: the store, the folders it may read files from, and the token (if any)."""

    store: MetadataStore
    artifact_root: str
    log_roots: list[str] = field(default_factory=list)
    token: str | None = None

    @property
    def files(self) -> SafeFiles:
        """Artifact files: only under the artifact root."""
        return SafeFiles([self.artifact_root])

    @property
    def logs(self) -> SafeFiles:
        """Step logs: only under the log roots."""
        return SafeFiles(self.log_roots)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``: ``is_loopback("0.0.0.0")`` -> False."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class TokenAuth(BaseHTTPMiddleware):
    """Require the token on every request (a header, or a cookie set from ``?token=``)."""

    def __init__(self, app: Any, token: str) -> None:
        super().__init__(app)
        self.token = token

    def _ok(self, value: str | None) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self.token.encode())

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        given = request.query_params.get("token")
        if given is not None and self._ok(given):
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
            response = RedirectResponse(target, status_code=303)
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
            return response
        auth = request.headers.get("authorization", "")
        bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if self._ok(bearer) or self._ok(request.cookies.get(COOKIE)):
            return await call_next(request)
        return PlainTextResponse("401 unauthorized: send 'Authorization: Bearer <token>' or open ?token=<token>",
                                 status_code=401, headers={"WWW-Authenticate": 'Bearer realm="sluice"'})


class ReadOnly(BaseHTTPMiddleware):
    """Refuse anything but GET and HEAD: the UI never changes the store."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.method not in ("GET", "HEAD"):
            return PlainTextResponse("405: the Sluice UI is read-only", status_code=405, headers={"Allow": "GET, HEAD"})
        return await call_next(request)


def _plotly(request: Request) -> Response:
    import plotly

    path = os.path.join(os.path.dirname(plotly.__file__), "package_data", "plotly.min.js")
    return FileResponse(path, media_type="application/javascript", headers={"Cache-Control": "max-age=86400"})


def create_app(store: str | MetadataStore | None = None, *, artifact_root: str = os.path.join(".sluice", "artifacts"),
               log_roots: list[str] | None = None, token: str | None = None) -> Starlette:
    """The UI over a metadata store (path, URL or open store) and an artifact root.

    ``log_roots`` are the folders step logs may be read from (default: ``logs/`` beside a SQLite
    store, and ``.sluice/logs``). With ``token`` set, every request must carry it.

    Example::

        app = create_app("postgresql+psycopg://ml@db/sluice", artifact_root="/mnt/artifacts", token="s3cret")
    """
    from sluice.ui.pages import artifacts, lineage, models, runs, training

    meta = store if isinstance(store, MetadataStore) else open_store_readonly(store)
    if log_roots is None:
        log_roots = [os.path.join(".sluice", "logs")]
        db = meta.engine.url.database if meta.engine.url.get_backend_name() == "sqlite" else None
        if db:
            log_roots.insert(0, os.path.join(os.path.dirname(db), "logs"))
    config = UIConfig(meta, os.path.abspath(artifact_root), [os.path.abspath(p) for p in log_roots], token)
    routes = [
        Route("/", runs.runs_page, name="runs"),
        Route("/runs/{run_id}", runs.run_page, name="run"),
        Route("/runs/{run_id}/steps/{exec_id:int}/log", runs.step_log, name="step_log"),
        Route("/training", training.training_page, name="training"),
        Route("/compare", training.compare_page, name="compare"),
        Route("/artifacts/{artifact_id:int}", artifacts.artifact_page, name="artifact"),
        Route("/artifacts/{artifact_id:int}/files/{path:path}", artifacts.artifact_file, name="artifact_file"),
        Route("/lineage/{artifact_id:int}", lineage.lineage_page, name="lineage"),
        Route("/models", models.models_page, name="models"),
        Route("/healthz", lambda request: PlainTextResponse("ok")),
        Route("/static/plotly.min.js", _plotly),
        Mount("/static", StaticFiles(directory=os.path.join(HERE, "static")), name="static"),
    ]
    middleware = [Middleware(ReadOnly)]
    if token:
        middleware.append(Middleware(TokenAuth, token=token))
    app = Starlette(routes=routes, middleware=middleware, exception_handlers=_error_handlers())
    app.state.ui = config
    return app


def open_store_readonly(url: str | None) -> MetadataStore:
    """Open an existing store; never creates one (a missing SQLite file is an error, not a new DB).

    Example::

        store = open_store_readonly(".sluice/metadata.db")
    """
    from sluice.metadata.db import ENV_VAR, DEFAULT_PATH

    raw = url or os.environ.get(ENV_VAR) or str(DEFAULT_PATH)
    if "://" not in raw and raw != ":memory:" and not os.path.isfile(os.path.expanduser(raw)):
        raise FileNotFoundError(f"no metadata store at {raw!r}; run a pipeline first or pass --store")
    return MetadataStore.open(raw)


def _error_handlers() -> dict[Any, Any]:
    from sluice.ui.pages.common import error_page

    return {404: error_page, 403: error_page, 400: error_page, 500: error_page}
