"""The model registry: registered models, their versions, aliases and where each version is served.

Example: ``GET /models`` (``?name=ctr`` for one model).
"""

from __future__ import annotations

import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import Response

from sluice.metadata.records import AliasEvent, ModelVersion
from sluice.metadata.schema import alias_history, model_aliases, model_versions
from sluice.ui.pages.common import config, int_param, render

PAGE_SIZE = 100


def models_page(request: Request) -> Response:
    """Models with their newest versions first, the aliases on each, and the alias audit trail."""
    store = config(request).store
    name = request.query_params.get("name", "")
    limit = int_param(request, "limit", PAGE_SIZE, 1, 1000)
    with store.engine.connect() as conn:
        summary = conn.execute(
            sa.select(model_versions.c.name, sa.func.count().label("versions"),
                      sa.func.max(model_versions.c.version).label("latest"))
            .group_by(model_versions.c.name).order_by(model_versions.c.name)).all()
        aliases: dict[tuple[str, int], list[str]] = {}
        aq = sa.select(model_aliases).order_by(model_aliases.c.alias)
        vq = sa.select(model_versions).order_by(model_versions.c.name, model_versions.c.version.desc()).limit(limit)
        hq = sa.select(alias_history).order_by(alias_history.c.id.desc()).limit(50)
        if name:
            aq, vq, hq = (aq.where(model_aliases.c.name == name), vq.where(model_versions.c.name == name),
                          hq.where(alias_history.c.name == name))
        for row in conn.execute(aq):
            aliases.setdefault((row.name, row.version), []).append(row.alias)
        versions = [ModelVersion.from_row(r, aliases=tuple(aliases.get((r.name, r.version), ())))
                    for r in conn.execute(vq)]
        history = [AliasEvent.from_row(r) for r in conn.execute(hq)]
    return render(request, "models.html", title="Models", summary=summary, versions=versions, history=history,
                  name=name, aliases=aliases)
