"""The model server: TF Serving's REST API over a model repository (Starlette + uvicorn).

Endpoints::

    POST /v1/models/{name}[/versions/{v}]:predict   {"instances": [{raw features}, ...]}
    GET  /v1/models/{name}[/versions/{v}]           version status, TF Serving's shape
    GET  /v1/models/{name}[/versions/{v}]/metadata  the input signature
    GET  /healthz, /v2/health/live, /v2/health/ready

A request that does not match the signature gets a 400 naming the field;
inference runs in a worker thread, off the event loop. With ``poll_seconds``
the model folder is re-scanned that often and a newly pushed version replaces
the loaded one (the Pusher's rename makes a version appear complete or not at all).

Example::

    app = create_app("serving")          # an ASGI app; or: sluice serve --model-dir serving
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sluice.registry.servable import InvalidRequest
from sluice.serve.repository import ModelRepository

log = logging.getLogger("sluice.serve")
MAX_BODY_BYTES = 16 * 1024 * 1024


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _parse_model_path(path: str) -> tuple[str, int | None, str | None]:
    """'ctr/versions/3:predict' -> ('ctr', 3, 'predict')."""
    verb = None
    if ":" in path:
        path, verb = path.rsplit(":", 1)
    parts = path.strip("/").split("/")
    if verb is None and len(parts) in (2, 4) and parts[-1] == "metadata":
        verb, parts = "metadata", parts[:-1]
    version = None
    if len(parts) == 3 and parts[1] == "versions" and parts[2].isdigit():
        version = int(parts[2])
        parts = parts[:1]
    if len(parts) != 1:
        return "", None, None
    return parts[0], version, verb


def create_app(model_dir: str, poll_seconds: float | None = None) -> Starlette:
    """The ASGI application serving every model under ``model_dir``.

    ``poll_seconds``: re-scan ``model_dir`` this often and load newly pushed versions (None: never).
    """
    repo = ModelRepository(model_dir)

    def lookup(name: str, version: int | None) -> Any:
        if not name:  # the path did not parse
            return None, _error(404, "unknown path; expected /v1/models/<name>[/versions/<n>]"
                                     "[:predict | /metadata]")
        model = repo.get(name)
        if model is None:
            return None, _error(404, f"model {name!r} not found; serving: {', '.join(repo.names())}")
        if version is not None and version != model.version:
            return None, _error(404, f"model {name!r} version {version} is not loaded "
                                     f"(loaded version: {model.version})")
        return model, None

    async def models_get(request: Request) -> JSONResponse:
        name, version, verb = _parse_model_path(request.path_params["rest"])
        model, err = lookup(name, version)
        if err:
            return err
        if verb == "metadata":
            return JSONResponse({"model_spec": {"name": name, "version": str(model.version)},
                                 "metadata": {"signature": model.servable.signature.to_dict()}})
        if verb is not None:
            return _error(404, f"unknown endpoint ':{verb}' (use POST ...:predict)")
        return JSONResponse({"model_version_status": [
            {"version": str(model.version), "state": "AVAILABLE",
             "status": {"error_code": "OK", "error_message": ""}}]})

    async def models_post(request: Request) -> JSONResponse:
        name, version, verb = _parse_model_path(request.path_params["rest"])
        if verb != "predict":
            return _error(404, "unknown endpoint; POST /v1/models/{name}:predict")
        model, err = lookup(name, version)
        if err:
            return err
        body = await _read_body(request)
        if body is None:
            return _error(413, f"request body over {MAX_BODY_BYTES} bytes")
        try:
            payload = json.loads(body, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError are ValueErrors
            return _error(400, f"request body is not valid JSON: {str(exc)[:200]}")
        if not isinstance(payload, dict) or "instances" not in payload:
            return _error(400, "request body must be a JSON object with an 'instances' list")
        try:
            predictions = await run_in_threadpool(model.servable.predict_rows, payload["instances"])
        except InvalidRequest as exc:
            return _error(400, str(exc))
        return JSONResponse({"predictions": predictions, "model_version": str(model.version)})

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "models": {n: repo.get(n).version for n in repo.names()}})

    routes = [
        Route("/v1/models/{rest:path}", models_get, methods=["GET"]),
        Route("/v1/models/{rest:path}", models_post, methods=["POST"]),
        Route("/healthz", health), Route("/v2/health/live", health), Route("/v2/health/ready", health),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        watcher = asyncio.create_task(_watch(repo, poll_seconds)) if poll_seconds else None
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    app = Starlette(routes=routes, exception_handlers={Exception: _internal_error}, lifespan=lifespan)
    app.state.repository = repo
    return app


async def _read_body(request: Request) -> bytes | None:
    """The request body, or None when it is over MAX_BODY_BYTES (refused before reading it all)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (send null for a missing value)")


async def _watch(repo: ModelRepository, seconds: float) -> None:
    """Reload ``repo`` every ``seconds``; a failed reload keeps the loaded versions serving."""
    last_error = None
    while True:
        await asyncio.sleep(seconds)
        before = {n: repo.get(n).version for n in repo.names()}
        try:
            await run_in_threadpool(repo.reload)
            last_error = None
        except Exception as exc:  # a half-copied or broken folder must not stop the server
            if str(exc) != last_error:
                log.warning("reloading %s failed, still serving the loaded versions: %s", repo.root, exc)
            last_error = str(exc)
            continue
        for name in repo.names():
            if before.get(name) != repo.get(name).version:
                print(f"now serving {name} v{repo.get(name).version}", flush=True)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("internal error on %s", request.url.path)
    return _error(500, f"internal error: {type(exc).__name__}")


def run_server(model_dir: str, host: str = "127.0.0.1", port: int = 8500,
               poll_seconds: float | None = 2.0) -> None:
    """Serve ``model_dir`` with uvicorn until interrupted, loading newly pushed versions every ``poll_seconds``."""
    import uvicorn

    app = create_app(model_dir, poll_seconds=poll_seconds)
    names = ", ".join(f"{n} v{app.state.repository.get(n).version}" for n in app.state.repository.names())
    print(f"serving {names} on http://{host}:{port}  (POST /v1/models/<name>:predict)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
