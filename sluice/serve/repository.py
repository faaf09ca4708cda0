"""The model repository the server reads: ``<model path>/<integer version>/``, several models and versions.

Each poll (:meth:`ModelRepository.reload`) scans the folders, re-reads the labels
(config + metadata store aliases), loads the versions the policy wants, and swaps
in a new snapshot per model in one assignment, so a request sees the old set or
the new one, never a mix. A version that fails to load is reported, marked failed
(retried when its folder changes) and never replaces what is serving.

Example::

    repo = ModelRepository(ServeConfig.from_model_dir("serving"))
    repo.names()                       # ['ctr']
    repo.resolve("ctr").version        # the default version (see sluice.serve.versions)
    repo.resolve("ctr", label="canary")
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sluice.errors import SluiceError
from sluice.registry.servable import SIGNATURE, Servable
from sluice.serve.config import ModelConfig, ServeConfig
from sluice.serve.versions import TrafficSplit, store_aliases, wanted_versions

log = logging.getLogger("sluice.serve")


class ModelNotFound(SluiceError):
    """No such model, version or label (a 404)."""


@dataclass
class LoadedModel:
    """One loaded version of a model (``batcher`` is attached by the app)."""

    name: str
    version: int
    path: str
    servable: Servable
    batcher: Any = None


@dataclass
class ModelState:
    """A model's loaded versions, labels and failed loads at one moment (replaced whole, never mutated)."""

    config: ModelConfig
    versions: dict[int, LoadedModel] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)


def versions_in(model_dir: str) -> list[int]:
    """Integer version folders that hold a complete servable, ascending."""
    if not os.path.isdir(model_dir):
        return []
    out = []
    for entry in os.listdir(model_dir):
        if entry.isdigit() and os.path.isfile(os.path.join(model_dir, entry, SIGNATURE)):
            out.append(int(entry))
    return sorted(out)


def _stamp(path: str) -> float:
    try:
        return max(os.stat(path).st_mtime, os.stat(os.path.join(path, SIGNATURE)).st_mtime)
    except OSError:
        return 0.0


class ModelRepository:
    """Loads and swaps model versions per the config; see the module docstring."""

    def __init__(self, config: ServeConfig, store: Any = None,
                 on_load: Callable[[LoadedModel], None] | None = None,
                 on_unload: Callable[[LoadedModel], None] | None = None,
                 on_failure: Callable[[str, int, str], None] | None = None) -> None:
        self.config = config
        self.store = store
        self.on_load, self.on_unload, self.on_failure = on_load, on_unload, on_failure
        self.roots = [os.path.realpath(r) for r in config.model_roots]
        self._states: dict[str, ModelState] = {m.name: ModelState(m) for m in config.models}
        self._splits = {m.name: TrafficSplit(m.traffic) for m in config.models if m.traffic}
        self._failed_stamps: dict[tuple[str, int], float] = {}
        self._reload_lock = threading.Lock()
        self.reload()
        empty = [n for n, s in self._states.items() if not s.versions]
        if empty:
            details = "; ".join(f"{n}: {self._states[n].failed or 'no versions under ' + self._states[n].config.path}"
                                for n in empty)
            raise SluiceError(f"no loadable version of {', '.join(empty)} ({details}); expected "
                              f"<model dir>/<version>/{SIGNATURE} (what the Pusher writes)")

    # ------------------------------------------------------------------ reading

    def names(self) -> list[str]:
        return sorted(self._states)

    def state(self, name: str) -> ModelState:
        try:
            return self._states[name]
        except KeyError:
            raise ModelNotFound(f"model {name!r} not found; serving: {', '.join(self.names())}") from None

    def default_version(self, name: str) -> int | None:
        """The version a request naming no version gets (before any traffic split)."""
        state = self.state(name)
        if not state.versions:
            return None
        labelled = state.labels.get(state.config.default_label)
        return labelled if labelled in state.versions else max(state.versions)

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> LoadedModel:
        """The loaded model for a request; :class:`ModelNotFound` says what is available."""
        state = self.state(name)
        loaded = ", ".join(str(v) for v in sorted(state.versions)) or "none"
        if label is not None:
            if label not in state.labels:
                raise ModelNotFound(f"model {name!r} has no label {label!r} "
                                    f"(labels: {', '.join(sorted(state.labels)) or 'none'})")
            version = state.labels[label]
            if version not in state.versions:
                raise ModelNotFound(f"model {name!r} label {label!r} points at version {version}, "
                                    f"which is not loaded (loaded versions: {loaded})")
        if version is None:
            split = self._splits.get(name)
            version = split.choose(state.labels, set(state.versions)) if split else None
            if version is None:
                version = self.default_version(name)
        model = state.versions.get(version) if version is not None else None
        if model is None:
            raise ModelNotFound(f"model {name!r} version {version} is not loaded (loaded versions: {loaded})")
        return model

    def loaded(self) -> list[LoadedModel]:
        return [m for s in self._states.values() for m in s.versions.values()]

    # ------------------------------------------------------------------ loading

    def reload(self) -> list[str]:
        """Re-scan, re-read labels, load and swap; returns messages about what changed."""
        with self._reload_lock:
            messages: list[str] = []
            for name in self.names():
                messages += self._reload_model(self._states[name])
            return messages

    def _labels(self, cfg: ModelConfig) -> dict[str, int]:
        labels: dict[str, int] = {}
        if self.store is not None:
            try:
                labels.update(store_aliases(self.store, cfg.name))
            except Exception as exc:  # the store may be briefly unreachable: keep serving
                log.warning("reading aliases of %s from the metadata store failed: %s", cfg.name, exc)
                labels.update({k: v for k, v in self._states[cfg.name].labels.items() if k not in cfg.labels})
        labels.update(cfg.labels)
        return labels

    def _inside_roots(self, path: str) -> bool:
        real = os.path.realpath(path)
        return any(real == r or real.startswith(r + os.sep) for r in self.roots)

    def _reload_model(self, state: ModelState) -> list[str]:
        cfg = state.config
        labels = self._labels(cfg)
        available = versions_in(cfg.path)
        # a failed version is retried only when its folder changed
        failed = {v: msg for v, msg in state.failed.items() if v in available
                  and self._failed_stamps.get((cfg.name, v)) == _stamp(os.path.join(cfg.path, str(v)))}
        candidates = [v for v in available if v not in failed]
        wanted = wanted_versions(candidates, cfg.latest, cfg.specific, labels)
        versions = {v: m for v, m in state.versions.items() if v in wanted}
        messages = []
        for v in wanted:
            if v in versions:
                continue
            path = os.path.join(cfg.path, str(v))
            try:
                if not self._inside_roots(path):
                    raise SluiceError(f"{path} resolves outside the model roots {self.config.model_roots}")
                model = LoadedModel(cfg.name, v, path, Servable.load(path))
                if self.on_load is not None:
                    self.on_load(model)
            except Exception as exc:  # a broken version must not stop the server
                message = f"{type(exc).__name__}: {exc}"
                failed[v] = message
                self._failed_stamps[(cfg.name, v)] = _stamp(path)
                log.warning("loading %s version %d failed, still serving the loaded versions (%s): %s",
                            cfg.name, v, ", ".join(map(str, sorted(state.versions))) or "none", message)
                if self.on_failure is not None:
                    self.on_failure(cfg.name, v, message)
                continue
            versions[v] = model
            messages.append(f"loaded {cfg.name} v{v}")
        if not versions and state.versions:  # nothing new loaded and nothing wanted: keep what serves
            versions = dict(state.versions)
        removed = [m for v, m in state.versions.items() if v not in versions]
        old_default = self.default_version(cfg.name)
        self._states[cfg.name] = ModelState(cfg, versions, labels, failed)  # the swap
        for model in removed:
            messages.append(f"unloaded {cfg.name} v{model.version}")
            if self.on_unload is not None:
                self.on_unload(model)
        new_default = self.default_version(cfg.name)
        if new_default != old_default and new_default is not None:
            messages.append(f"now serving {cfg.name} v{new_default}")
        if labels != state.labels:
            messages.append(f"labels of {cfg.name}: " + (", ".join(f"{k}->v{v}" for k, v in sorted(labels.items()))
                                                          or "none"))
        return messages
