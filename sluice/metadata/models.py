"""The model registry tables: integer versions per model name, aliases, and their audit trail.

Versions are 1, 2, 3... per name, like TF Serving directories. Taking the next
version is ``max + 1`` inside one transaction; the unique key (name, version)
makes a concurrent writer that computed the same number fail, and the store
replays its transaction, so two pushers never get the same version.

Aliases (``production``, ``staging``) point at one version each; every change
is appended to ``alias_history`` so "what served when, and why" is answerable.

Example::

    v = store.register_model_version("ctr", uri, pushed.id, model.id, run_id)   # 3
    store.set_alias("ctr", "production", v, note="beat v2 on AUC")
    store.model_version("ctr", "production").uri
"""

from __future__ import annotations

from datetime import datetime, timezone

import sqlalchemy as sa

from sluice.metadata.records import AliasEvent, ModelVersion
from sluice.metadata.schema import alias_history, model_aliases, model_versions


def _now() -> datetime:
    return datetime.now(timezone.utc)


def register(
    conn: sa.Connection,
    name: str,
    uri: str,
    artifact_id: int | None,
    source_model_id: int | None,
    run_id: str | None,
) -> int:
    """Insert the next version of ``name``; a unique violation means: replay the transaction."""
    current = conn.scalar(sa.select(sa.func.max(model_versions.c.version)).where(model_versions.c.name == name))
    version = (current or 0) + 1
    conn.execute(
        model_versions.insert().values(
            name=name,
            version=version,
            uri=uri,
            artifact_id=artifact_id,
            source_model_id=source_model_id,
            run_id=run_id,
            created_at=_now(),
        )
    )
    return version


def versions(conn: sa.Connection, name: str | None = None) -> list[ModelVersion]:
    """Versions (all models, or one), by name then version, each with its current aliases."""
    q = sa.select(model_versions).order_by(model_versions.c.name, model_versions.c.version)
    aq = sa.select(model_aliases).order_by(model_aliases.c.alias)
    if name is not None:
        q = q.where(model_versions.c.name == name)
        aq = aq.where(model_aliases.c.name == name)
    aliases: dict[tuple[str, int], list[str]] = {}
    for row in conn.execute(aq):
        aliases.setdefault((row.name, row.version), []).append(row.alias)
    return [
        ModelVersion.from_row(row, aliases=tuple(aliases.get((row.name, row.version), ())))
        for row in conn.execute(q)
    ]


def resolve(conn: sa.Connection, name: str, version: int | str) -> ModelVersion:
    """One version by number (``3``, ``"3"``) or alias (``"production"``); KeyError if absent."""
    number: int | None
    if isinstance(version, int) or str(version).isdigit():
        number = int(version)
    else:
        number = conn.scalar(
            sa.select(model_aliases.c.version).where(model_aliases.c.name == name, model_aliases.c.alias == version)
        )
        if number is None:
            raise KeyError(f"model {name!r} has no alias {version!r}")
    for mv in versions(conn, name):
        if mv.version == number:
            return mv
    raise KeyError(f"model {name!r} has no version {number}")


def set_alias(conn: sa.Connection, name: str, alias: str, version: int, note: str = "") -> None:
    """Point ``alias`` at ``version`` (moving it if set elsewhere) and log the change."""
    if not alias or alias.isdigit():
        raise ValueError(f"invalid alias {alias!r}: an alias must be a non-empty, non-numeric name")
    exists = conn.scalar(
        sa.select(model_versions.c.id).where(model_versions.c.name == name, model_versions.c.version == version)
    )
    if exists is None:
        raise KeyError(f"model {name!r} has no version {version}; register it before aliasing it")
    where = (model_aliases.c.name == name) & (model_aliases.c.alias == alias)
    # Portable upsert: update, insert when nothing was there (a racing insert
    # violates the primary key and the store replays the transaction).
    if conn.execute(model_aliases.update().where(where).values(version=version)).rowcount == 0:
        conn.execute(model_aliases.insert().values(name=name, alias=alias, version=version))
    conn.execute(
        alias_history.insert().values(name=name, alias=alias, version=version, action="set", at=_now(), note=note)
    )


def remove_alias(conn: sa.Connection, name: str, alias: str, note: str = "") -> int | None:
    """Remove ``alias``; returns the version it pointed at, or None if it was not set."""
    where = (model_aliases.c.name == name) & (model_aliases.c.alias == alias)
    version = conn.scalar(sa.select(model_aliases.c.version).where(where))
    if version is None:
        return None
    conn.execute(model_aliases.delete().where(where))
    conn.execute(
        alias_history.insert().values(
            name=name, alias=alias, version=version, action="removed", at=_now(), note=note
        )
    )
    return int(version)


def history(conn: sa.Connection, name: str, alias: str | None = None) -> list[AliasEvent]:
    """The alias audit trail of a model, oldest first."""
    q = sa.select(alias_history).where(alias_history.c.name == name).order_by(alias_history.c.id)
    if alias is not None:
        q = q.where(alias_history.c.alias == alias)
    return [AliasEvent.from_row(row) for row in conn.execute(q)]
