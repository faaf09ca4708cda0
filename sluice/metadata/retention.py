"""Keeping the store honest and small: stale runs, retention and garbage collection.

* A runner that is killed (OOM, Ctrl-C twice, a reboot) leaves its run in
  ``running`` forever. :func:`mark_stale_runs` finds runs of this host whose
  process is gone and closes them as ``killed``.
* Metadata and artifacts grow with every run. Retention keeps the last N runs
  of each pipeline (and, optionally, every run newer than some days); the
  artifacts of the other runs are garbage *unless* something kept depends on
  them: a registered model version, or an artifact a kept run used (the kept
  run may have reused it from the cache). Dependence is transitive up the
  lineage, so a model's training data is never collected while the model is
  registered.

Example::

    store.mark_stale_runs()                          # at runner start
    for art in store.gc_candidates(keep_last_runs=10, older_than_days=30):
        delete_files(art.uri)                        # the artifact store's job
    store.delete_artifact_records([a.id for a in ...])
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from sluice.metadata.lineage import chunks, upstream_closure
from sluice.metadata.records import Artifact
from sluice.metadata.schema import artifacts, events, executions, metrics, model_versions, runs

RUNNER_DIED = "runner died"
_PID_REUSE_SLACK_S = 2.0  # /proc boot time has 1 s resolution


def _linux_process_start(pid: int) -> tuple[str, float] | None:
    """(state, start time as epoch seconds) of a Linux process, None where /proc is unavailable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        btime = next(
            float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime")
        )
        # The command name (field 2) may contain spaces and ')': fields start after the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        return fields[0], btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def pid_alive(pid: int | None, since: datetime | None = None) -> bool:
    """Whether process ``pid`` on this host still runs (and, with ``since``, is the one started before it).

    Example::

        pid_alive(os.getpid())   # True
    """
    if pid is None or pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT on Windows
        try:
            import psutil

            return bool(psutil.pid_exists(pid))
        except ImportError:
            return True  # cannot tell: never kill a run we are unsure about
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    except OSError:
        return False
    info = _linux_process_start(pid)
    if info is not None:
        state, started = info
        if state in ("Z", "X"):  # exited, not yet reaped
            return False
        # A process that started after the run did is a later process reusing the pid.
        if since is not None and started > since.timestamp() + _PID_REUSE_SLACK_S:
            return False
    return True


def mark_stale_runs(conn: sa.Connection, host: str | None = None) -> int:
    """Close ``running`` runs of this host whose process is gone; returns how many."""
    host = host or socket.gethostname()
    rows = conn.execute(
        sa.select(runs.c.id, runs.c.pid, runs.c.started_at).where(runs.c.status == "running", runs.c.host == host)
    ).all()
    dead = [r.id for r in rows if r.pid is not None and not pid_alive(r.pid, r.started_at)]
    now = datetime.now(timezone.utc)
    for batch in chunks(dead):
        conn.execute(
            runs.update()
            .where(runs.c.id.in_(batch), runs.c.status == "running")
            .values(status="killed", ended_at=now, error=RUNNER_DIED)
        )
        conn.execute(
            executions.update()
            .where(executions.c.run_id.in_(batch), executions.c.status == "running")
            .values(status="failed", ended_at=now, error=RUNNER_DIED)
        )
    return len(dead)


def expired_runs(conn: sa.Connection, keep_last_runs: int, older_than_days: float | None = None) -> list[str]:
    """Ids of finished runs outside retention, oldest first.

    A run is kept when it is still running, among the newest ``keep_last_runs``
    finished runs of its pipeline, or (with ``older_than_days``) newer than that.
    """
    if keep_last_runs < 0:
        raise ValueError("keep_last_runs must be >= 0")
    cutoff = None
    if older_than_days is not None:
        cutoff = datetime.now(timezone.utc) - timedelta(days=older_than_days)
    q = sa.select(runs.c.id, runs.c.pipeline_id, runs.c.status, runs.c.started_at).order_by(
        runs.c.pipeline_id, runs.c.started_at.desc(), runs.c.id.desc()
    )
    rank: dict[int, int] = {}
    expired: list[tuple[datetime, str]] = []
    for row in conn.execute(q):
        if row.status == "running":  # in use, and must not push a finished run out of the kept window
            continue
        n = rank[row.pipeline_id] = rank.get(row.pipeline_id, 0) + 1
        if n <= keep_last_runs:
            continue
        if cutoff is not None and row.started_at >= cutoff:
            continue
        expired.append((row.started_at, row.id))
    return [run_id for _, run_id in sorted(expired)]


def _ids(conn: sa.Connection, query: sa.Select[tuple[int]], run_ids: Iterable[str]) -> set[int]:
    out: set[int] = set()
    for batch in chunks(run_ids):
        out.update(i for i in conn.scalars(query.where(executions.c.run_id.in_(batch))) if i is not None)
    return out


def gc_candidates(conn: sa.Connection, keep_last_runs: int, older_than_days: float | None = None) -> list[Artifact]:
    """Artifacts produced by expired runs that nothing kept depends on, oldest first."""
    expired = expired_runs(conn, keep_last_runs, older_than_days)
    if not expired:
        return []
    expired_set = set(expired)
    kept = [r for r in conn.scalars(sa.select(runs.c.id)) if r not in expired_set]

    produced = sa.select(artifacts.c.id).join_from(artifacts, executions, artifacts.c.producer_id == executions.c.id)
    used = sa.select(events.c.artifact_id).join_from(events, executions, events.c.execution_id == executions.c.id)
    candidates = _ids(conn, produced, expired)
    roots = _ids(conn, produced, kept) | _ids(conn, used, kept)
    for row in conn.execute(sa.select(model_versions.c.artifact_id, model_versions.c.source_model_id)):
        roots.update(i for i in row if i is not None)
    keep = upstream_closure(conn, roots)

    out: list[Artifact] = []
    for batch in chunks(sorted(candidates - keep)):
        q = sa.select(artifacts).where(artifacts.c.id.in_(batch)).order_by(artifacts.c.id)
        out.extend(Artifact.from_row(row) for row in conn.execute(q))
    return out


def delete_artifact_records(conn: sa.Connection, ids: Iterable[int]) -> int:
    """Delete artifact rows and their events; refuses artifacts a model version references."""
    ids = sorted(set(ids))
    for batch in chunks(ids):
        q = sa.select(model_versions.c.name, model_versions.c.version).where(
            model_versions.c.artifact_id.in_(batch) | model_versions.c.source_model_id.in_(batch)
        )
        pinned = conn.execute(q).first()
        if pinned is not None:
            raise ValueError(
                f"cannot delete artifacts used by registered model {pinned.name!r} v{pinned.version}; "
                "gc_candidates() never returns those"
            )
    deleted = 0
    for batch in chunks(ids):
        conn.execute(events.delete().where(events.c.artifact_id.in_(batch)))
        deleted += conn.execute(artifacts.delete().where(artifacts.c.id.in_(batch))).rowcount
    return deleted


def delete_runs(conn: sa.Connection, ids: Iterable[str]) -> list[str]:
    """Delete runs with their executions, events and metrics; returns the ids deleted.

    A run is skipped (kept) while it is running, a model version names it, or an
    artifact it produced is still on record: deleting its executions would cut
    that artifact's lineage. Delete the artifacts' records first.
    """
    wanted = sorted(set(ids))
    busy: set[str] = set()
    for batch in chunks(wanted):
        busy.update(conn.scalars(sa.select(runs.c.id).where(runs.c.id.in_(batch), runs.c.status == "running")))
        busy.update(conn.scalars(sa.select(model_versions.c.run_id).where(model_versions.c.run_id.in_(batch))))
        q = (
            sa.select(executions.c.run_id)
            .join_from(artifacts, executions, artifacts.c.producer_id == executions.c.id)
            .where(executions.c.run_id.in_(batch))
        )
        busy.update(conn.scalars(q))
    doomed = [r for r in wanted if r not in busy]
    deleted: list[str] = []
    for batch in chunks(doomed):
        exec_ids = sa.select(executions.c.id).where(executions.c.run_id.in_(batch))
        conn.execute(executions.update().where(executions.c.cached_from.in_(exec_ids)).values(cached_from=None))
        conn.execute(events.delete().where(events.c.execution_id.in_(exec_ids)))
        conn.execute(metrics.delete().where(metrics.c.run_id.in_(batch)))
        conn.execute(executions.delete().where(executions.c.run_id.in_(batch)))
        deleted.extend(conn.scalars(sa.select(runs.c.id).where(runs.c.id.in_(batch))))
        conn.execute(runs.delete().where(runs.c.id.in_(batch)))
    return sorted(deleted)
