"""The Sluice web UI: runs, DAGs, statistics, transform, training curves, evaluation, lineage, models.

Server-rendered HTML (Starlette + Jinja2) over the metadata store and the artifact files;
graphs are SVG drawn on the server, curves use the plotly.js bundled in the ``plotly``
package (served locally: the UI works offline). Read-only; a bearer token is required
when bound to a non-loopback address.

Example::

    sluice ui --store .sluice/metadata.db --port 8765          # then open http://127.0.0.1:8765

    from sluice.ui import create_app                              # or mount it yourself
    app = create_app(".sluice/metadata.db", artifact_root=".sluice/artifacts")
"""

from __future__ import annotations

from typing import Any

__all__ = ["create_app", "serve"]


def create_app(*args: Any, **kwargs: Any) -> Any:
    """Build the Starlette app; see :func:`sluice.ui.app.create_app`."""
    from sluice.ui.app import create_app as _create

    return _create(*args, **kwargs)


def serve(store: str | None = None, *, artifact_root: str = ".sluice/artifacts", host: str = "127.0.0.1",
          port: int = 8765, token: str | None = None, log_roots: list[str] | None = None) -> None:
    """Run the UI with uvicorn until interrupted; a token is required off loopback.

    Example::

        serve(".sluice/metadata.db", port=8765)
    """
    import uvicorn

    from sluice.ui.app import create_app as _create, is_loopback

    if not is_loopback(host) and not token:
        raise ValueError(f"binding to {host} (not loopback) needs a token: pass --token or set $SLUICE_UI_TOKEN")
    app = _create(store, artifact_root=artifact_root, token=token, log_roots=log_roots)
    uvicorn.run(app, host=host, port=port, log_level="warning")
