"""The model repository the server reads: ``<root>/<model name>/<integer version>/``.

Example::

    repo = ModelRepository("serving")
    repo.names()             # ['ctr']
    repo.get("ctr").version  # 3 (the newest)
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from sluice.errors import SluiceError
from sluice.registry.servable import SIGNATURE, Servable


@dataclass
class LoadedModel:
    """One loaded version of a model."""

    name: str
    version: int
    path: str
    servable: Servable


def versions_in(model_dir: str) -> list[int]:
    """Integer version folders that hold a complete servable, ascending."""
    out = []
    for entry in os.listdir(model_dir):
        if entry.isdigit() and os.path.isfile(os.path.join(model_dir, entry, SIGNATURE)):
            out.append(int(entry))
    return sorted(out)


class ModelRepository:
    """Finds models under a root and keeps the newest version of each loaded.

    The root is either a Pusher destination (``root/<name>/<version>``) or a
    single model's folder (``root/<version>``, the model named after the folder).
    """

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()
        self.reload()

    def _model_dirs(self) -> dict[str, str]:
        if versions_in(self.root):
            return {os.path.basename(self.root): self.root}
        return {name: os.path.join(self.root, name) for name in sorted(os.listdir(self.root))
                if os.path.isdir(os.path.join(self.root, name)) and versions_in(os.path.join(self.root, name))}

    def reload(self) -> None:
        """Load the newest version of every model found (already loaded versions are kept)."""
        dirs = self._model_dirs()
        if not dirs:
            raise SluiceError(f"no model versions found under {self.root}; expected "
                              f"{self.root}/<model name>/<version>/{SIGNATURE} (what the Pusher writes)")
        for name, path in dirs.items():
            newest = versions_in(path)[-1]
            current = self._models.get(name)
            if current is None or current.version != newest:
                version_dir = os.path.join(path, str(newest))
                loaded = LoadedModel(name, newest, version_dir, Servable.load(version_dir))
                with self._lock:
                    self._models[name] = loaded

    def names(self) -> list[str]:
        return sorted(self._models)

    def get(self, name: str) -> LoadedModel | None:
        with self._lock:
            return self._models.get(name)
