"""The ASGI application: every protocol over one model repository, with batching, metrics, auth, logs.

Example::

    app = create_app("serving")                                   # every model under a Pusher destination
    app = create_app(ServeConfig.load("serve.yaml"))              # several models, policies, labels, splits
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sluice.serve.access_log import AccessLog
from sluice.serve.auth import BearerAuth
from sluice.serve.batching import Block, MicroBatcher, combine_blocks
from sluice.serve.config import ServeConfig
from sluice.serve.metrics import ServerMetrics
from sluice.serve.openapi import openapi_document
from sluice.serve.protocols import kserve_v2, mlflow, tfserving
from sluice.serve.protocols.base import ServerContext
from sluice.serve.repository import LoadedModel, ModelRepository

log = logging.getLogger("sluice.serve")


class ServerApp:
    """The server's parts kept together; ``asgi`` is what uvicorn runs."""

    def __init__(self, config: ServeConfig) -> None:
        config.check()
        self.config = config
        _set_torch_threads(config.torch_threads)
        self.metrics = ServerMetrics()
        self.executor = ThreadPoolExecutor(max_workers=2 * max(1, len(config.models)),
                                           thread_name_prefix="sluice-infer")
        self.loop: asyncio.AbstractEventLoop | None = None
        store = None
        if config.store:
            from sluice.metadata import MetadataStore

            store = MetadataStore.open(config.store)
        self.request_log = None
        if config.request_log_dir:
            from sluice.serve.request_log import RequestLog

            self.request_log = RequestLog(config.request_log_dir, config.request_log_sample,
                                          config.request_log_flush_rows)
        self.repository = ModelRepository(config, store, on_load=self._on_load, on_unload=self._on_unload,
                                          on_failure=self._on_failure)
        self.context = ServerContext(self.repository, config.max_body_bytes, self.request_log)
        handlers = {404: _http_error, 405: _http_error, Exception: _internal_error}
        self.starlette = Starlette(routes=self._routes(), exception_handlers=handlers, lifespan=self._lifespan)
        self.starlette.state.repository = self.repository
        self.starlette.state.server = self
        self.asgi: Any = AccessLog(BearerAuth(self.starlette, config.tokens()), self.metrics, config.access_log)

    def _on_load(self, model: LoadedModel) -> None:
        name, version = model.name, str(model.version)
        servable = model.servable

        def predict(block: Block) -> dict:
            return servable.predict(servable.table_of(block.columns))

        model.batcher = MicroBatcher(predict, max_batch_size=self.config.max_batch_size,
                                     max_wait=self.config.max_wait_ms / 1000.0, executor=self.executor,
                                     on_batch=lambda rows: self.metrics.observe_batch(name, version, rows),
                                     combine=combine_blocks)
        self.metrics.loaded.labels(name, version).set(1)

    def _on_unload(self, model: LoadedModel) -> None:
        self.metrics.loaded.labels(model.name, str(model.version)).set(0)
        if self.loop is not None and self.loop.is_running():
            self.loop.call_soon_threadsafe(model.batcher.close)
        else:
            model.batcher.close()

    def _on_failure(self, name: str, version: int, message: str) -> None:
        self.metrics.load_failures.labels(name, str(version)).inc()

    def _routes(self) -> list[Route]:
        repo = self.repository

        async def health(request: Request) -> JSONResponse:
            return JSONResponse({"status": "ok", "models": {n: repo.default_version(n) for n in repo.names()}})

        async def metrics(request: Request) -> Response:
            body, content_type = self.metrics.render()
            return Response(body, media_type=content_type)

        async def openapi(request: Request) -> JSONResponse:
            return JSONResponse(openapi_document(repo.names()))

        return [*tfserving.routes(self.context), *kserve_v2.routes(self.context), *mlflow.routes(self.context),
                Route("/healthz", health, methods=["GET"]), Route("/metrics", metrics, methods=["GET"]),
                Route("/openapi.json", openapi, methods=["GET"])]

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self.loop = asyncio.get_running_loop()
        watcher = asyncio.create_task(self._watch()) if self.config.poll_seconds else None
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            for model in self.repository.loaded():
                await model.batcher.aclose()
            if self.request_log is not None:
                await run_in_threadpool(self.request_log.flush)
            self.executor.shutdown(wait=False)

    async def _watch(self) -> None:
        """Reload every ``poll_seconds``; flush the request log every ``request_log_flush_seconds``."""
        last_flush = time.monotonic()
        while True:
            await asyncio.sleep(self.config.poll_seconds or 2.0)
            try:
                for message in await run_in_threadpool(self.repository.reload):
                    print(message, flush=True)
            except Exception as exc:  # never let the watcher die
                log.warning("reloading %s failed, still serving the loaded versions: %s",
                            [m.path for m in self.config.models], exc)
            if self.request_log is not None and time.monotonic() - last_flush >= self.config.request_log_flush_seconds:
                last_flush = time.monotonic()
                await run_in_threadpool(self.request_log.flush)


def _set_torch_threads(n: int) -> None:
    """One intra-op thread per model call: on a small machine torch's default (all cores) makes
    concurrent calls fight over the cores and a 64-row call ~3x slower."""
    import torch

    torch.set_num_threads(max(1, n))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Unknown paths and methods, as JSON like every other error."""
    status = getattr(exc, "status_code", 404)
    message = (f"no endpoint {request.method} {request.url.path[:200]}; see GET /openapi.json" if status == 404
               else f"method {request.method} not allowed on {request.url.path[:200]}")
    headers = getattr(exc, "headers", None)
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("internal error on %s", request.url.path)
    return JSONResponse({"error": f"internal error: {type(exc).__name__}"}, status_code=500)


def create_app(config: ServeConfig | str, poll_seconds: float | None = None) -> Any:
    """The ASGI application for a config, or for every model under a model directory.

    ``poll_seconds``: with a directory, re-scan it this often (None: never).
    """
    if isinstance(config, str):
        config = ServeConfig.from_model_dir(config, poll_seconds=poll_seconds)
    return ServerApp(config).asgi
