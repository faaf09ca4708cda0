"""Shared fixtures: an isolated working directory with its own metadata and artifact stores."""

from __future__ import annotations

import os

import pytest

from sluice.artifacts import ArtifactStore
from sluice.metadata import MetadataStore
from sluice.runner import LocalRunner


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A fresh working directory (so `.sluice/` lands in tmp_path)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SLUICE_STORE", raising=False)
    return tmp_path


@pytest.fixture
def make_runner(workdir):
    """Build a LocalRunner over stores in the working directory."""

    def make(**kwargs) -> LocalRunner:
        store = MetadataStore.open(str(workdir / ".sluice" / "metadata.db"))
        artifacts = ArtifactStore(str(workdir / ".sluice" / "artifacts"))
        kwargs.setdefault("progress", False)
        kwargs.setdefault("log_dir", str(workdir / ".sluice" / "logs"))
        return LocalRunner(store, artifacts, **kwargs)

    return make


def write_csv(path: str, header: str, rows: list[str]) -> str:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        f.write(header + "\n" + "\n".join(rows) + "\n")
    return path
