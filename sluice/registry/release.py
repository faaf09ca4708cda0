"""Release management over the metadata store's registry: promote, roll back, list, show with lineage.

Aliases (``production``, ``staging``, ...) point at one version each; every change
is kept in the alias history (who held the alias when, and why). A rollback moves
the alias back to the version it held before the current one; repeated rollbacks
keep walking back (a rollback's history entry is marked by its note,
``rollback from vN``). Servers started with ``--store`` re-read aliases on every
poll, so they follow a promote or a rollback within one poll interval.

Example::

    promote(store, "ctr", 3, "production", note="beat v2 on AUC")    # returns the previous version
    rollback(store, "ctr")                                            # (3, 2): production back on v2
    print(show_model(store, "ctr"))
"""

from __future__ import annotations

from typing import Any

from sluice.errors import SluiceError

ROLLBACK_NOTE = "rollback from v"


def _versions(store: Any, name: str) -> list[Any]:
    versions = store.model_versions(name)
    if not versions:
        known = sorted({mv.name for mv in store.model_versions()})
        raise SluiceError(f"no model named {name!r} in the registry; models: {', '.join(known) or 'none'}")
    return versions


def current_alias(store: Any, name: str, alias: str) -> int | None:
    """The version ``alias`` points at now, or None."""
    for mv in _versions(store, name):
        if alias in mv.aliases:
            return mv.version
    return None


def promote(store: Any, name: str, version: int, alias: str = "production", note: str = "") -> int | None:
    """Point ``alias`` at ``version``; returns the version it pointed at before (None if unset)."""
    if version not in {mv.version for mv in _versions(store, name)}:
        raise SluiceError(f"model {name!r} has no version {version}; versions: "
                          f"{', '.join(str(mv.version) for mv in _versions(store, name))}")
    previous = current_alias(store, name, alias)
    store.set_alias(name, alias, version, note=note or "promoted")
    return previous


def alias_stack(store: Any, name: str, alias: str) -> list[int]:
    """The versions ``alias`` held, oldest first, without those rolled back from; the last is current."""
    stack: list[int] = []
    for event in store.alias_history(name, alias):
        if event.action == "removed":
            stack = [v for v in stack if v != event.version]
        elif event.note.startswith(ROLLBACK_NOTE):
            while stack and stack[-1] != event.version:
                stack.pop()
            if not stack:
                stack.append(event.version)
        elif not stack or stack[-1] != event.version:
            stack.append(event.version)
    return stack


def rollback(store: Any, name: str, alias: str = "production", note: str = "") -> tuple[int, int]:
    """Move ``alias`` back to the version it held before; returns (from version, to version)."""
    current = current_alias(store, name, alias)
    if current is None:
        raise SluiceError(f"model {name!r} has no alias {alias!r}: nothing to roll back "
                          f"(set it with: sluice models promote {name} VERSION --alias {alias})")
    stack = alias_stack(store, name, alias)
    if len(stack) < 2:
        raise SluiceError(f"{name} {alias} has held only v{current}: no earlier version to roll back to")
    target = stack[-2]
    store.set_alias(name, alias, target, note=f"{ROLLBACK_NOTE}{current}" + (f": {note}" if note else ""))
    return current, target


def lineage_of(store: Any, mv: Any) -> dict[str, Any]:
    """Where a version came from: the run, the model artifact, the data and the transform."""
    out: dict[str, Any] = {"run": mv.run_id, "model": mv.source_model_id, "examples": [], "transform": []}
    if mv.source_model_id is None:
        return out
    try:
        graph = store.lineage(mv.source_model_id, "up")
    except Exception:  # the artifact was garbage-collected
        return out
    out["examples"] = [f"#{a.id} {a.uri}" for a in graph.of_type("Examples")]
    out["transform"] = [f"#{a.id} {a.uri}" for a in graph.of_type("TransformGraph")]
    return out


def models_table(store: Any) -> str:
    """Every registered model: its versions, newest version and aliases, as text."""
    by_name: dict[str, list[Any]] = {}
    for mv in store.model_versions():
        by_name.setdefault(mv.name, []).append(mv)
    if not by_name:
        return "no registered models (the Pusher registers each version it pushes)"
    lines = [f"{'MODEL':<20} {'VERSIONS':>8} {'LATEST':>6}  ALIASES"]
    for name, versions in sorted(by_name.items()):
        aliases = ", ".join(f"{a}->v{mv.version}" for mv in versions for a in mv.aliases)
        lines.append(f"{name:<20} {len(versions):>8} {'v' + str(versions[-1].version):>6}  {aliases}")
    return "\n".join(lines)


def show_model(store: Any, name: str) -> str:
    """One model: each version with aliases and lineage, then the alias audit trail, as text."""
    lines = [f"model {name}", "", "versions:"]
    for mv in _versions(store, name):
        aliases = f"  [{', '.join(mv.aliases)}]" if mv.aliases else ""
        lines.append(f"  v{mv.version}  {mv.created_at:%Y-%m-%d %H:%M:%S}  {mv.uri}{aliases}")
        lin = lineage_of(store, mv)
        lines.append(f"      run {lin['run'] or '-'}  model artifact #{lin['model'] or '-'}")
        for key in ("examples", "transform"):
            for item in lin[key]:
                lines.append(f"      {key}: {item}")
    lines += ["", "alias history:"]
    events = store.alias_history(name)
    if not events:
        lines.append("  (none)")
    for e in events:
        lines.append(f"  {e.at:%Y-%m-%d %H:%M:%S}  {e.alias:<12} {e.action:<8} v{e.version}  {e.note}")
    return "\n".join(lines)
