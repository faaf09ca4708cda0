"""Running the model server: uvicorn, one or several worker processes.

Endpoints (see ``GET /openapi.json``)::

    POST /v1/models/{name}[/versions/{v} | /labels/{l}]:predict     TF Serving REST (instances | inputs)
    GET  /v1/models/{name}[...] and .../metadata                    status, signature
    GET  /v2/health/live | ready, /v2/models/{name}[/versions/{v}][/ready]; POST .../infer   KServe V2
    POST /invocations                                               MLflow scoring protocol
    GET  /healthz, /metrics, /openapi.json

Example::

    run_server(ServeConfig.from_model_dir("serving", port=8500))    # or: sluice serve --model-dir serving
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from typing import Any

from sluice.serve.config import MAX_BODY_BYTES, ServeConfig

__all__ = ["MAX_BODY_BYTES", "app_from_env", "create_app", "run_server"]
CONFIG_ENV = "SLUICE_SERVE_CONFIG_JSON"


def create_app(config: ServeConfig | str, poll_seconds: float | None = None) -> Any:
    """The ASGI app (see :func:`sluice.serve.app.create_app`)."""
    from sluice.serve.app import create_app as _create

    return _create(config, poll_seconds)


def app_from_env() -> Any:
    """The app of a worker process, its config passed in ``$SLUICE_SERVE_CONFIG_JSON`` (uvicorn factory)."""
    _configure_logging()
    return create_app(ServeConfig.from_json(os.environ[CONFIG_ENV]))


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("sluice.serve", "sluice.serve.access"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def run_server(config: ServeConfig | str, host: str | None = None, port: int | None = None,
               poll_seconds: float | None = 2.0) -> None:
    """Serve until interrupted; ``config.workers`` > 1 runs that many processes on one socket."""
    import uvicorn

    if isinstance(config, str):
        config = ServeConfig.from_model_dir(config, poll_seconds=poll_seconds)
    if host is not None:
        config.host = host
    if port is not None:
        config.port = port
    config.check()
    _configure_logging()
    loop = "uvloop" if _has("uvloop") else "asyncio"
    http = "httptools" if _has("httptools") else "h11"
    names = ", ".join(m.name for m in config.models)
    print(f"serving {names} on http://{config.host}:{config.port} with {config.workers} worker(s)  "
          f"(POST /v1/models/<name>:predict, /v2/models/<name>/infer, /invocations; GET /openapi.json)", flush=True)
    if config.workers == 1:
        from sluice.serve.app import ServerApp

        server = ServerApp(config)
        _announce(server)
        uvicorn.run(server.asgi, host=config.host, port=config.port, log_level="warning", loop=loop, http=http,
                    access_log=False)
        return
    os.environ[CONFIG_ENV] = config.to_json()
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="sluice-metrics-")
    uvicorn.run("sluice.serve.server:app_from_env", factory=True, host=config.host, port=config.port,
                workers=config.workers, log_level="warning", loop=loop, http=http, access_log=False)


def _announce(server: Any) -> None:
    repo = server.repository
    for name in repo.names():
        state = repo.state(name)
        labels = ", ".join(f"{k}->v{v}" for k, v in sorted(state.labels.items()))
        print(f"loaded {name} versions {sorted(state.versions)}; default v{repo.default_version(name)}"
              + (f"; labels {labels}" if labels else ""), flush=True)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
