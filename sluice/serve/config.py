"""Server configuration: models, version policies, labels, traffic splits, limits, security.

From flags (``sluice serve --model-dir serving``) or a YAML/JSON file
(``sluice serve --config serve.yaml``)::

    host: 127.0.0.1
    port: 8500
    model_roots: [serving]             # model folders must lie under one of these
    models:
      - name: ctr
        path: serving/ctr
        versions: {latest: 2}          # or {specific: [3, 4]}
        labels: {stable: 3, canary: 4} # static labels; aliases from the metadata store are added
        traffic: {stable: 90, canary: 10}
    store: .sluice/metadata.db         # aliases (production, staging) re-read on every poll
    max_batch_size: 256
    max_wait_ms: 2
    torch_threads: 1                   # per inference call; batching gives the parallelism
    auth_token_file: tokens.txt        # or $SLUICE_SERVE_TOKENS (comma separated)
    request_log: {dir: serving-log, sample: 0.1}

Example::

    config = ServeConfig.from_model_dir("serving", poll_seconds=2)
    config = ServeConfig.load("serve.yaml")
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from sluice.errors import SluiceError

MAX_BODY_BYTES = 16 * 1024 * 1024
TOKENS_ENV = "SLUICE_SERVE_TOKENS"


@dataclass
class ModelConfig:
    """One served model: its folder of integer versions and how versions are chosen."""

    name: str
    path: str
    latest: int | None = 1
    specific: list[int] | None = None
    labels: dict[str, int] = field(default_factory=dict)
    traffic: dict[str, float] = field(default_factory=dict)
    default_label: str = "production"

    @classmethod
    def from_dict(cls, d: dict[str, Any], base: str = ".") -> ModelConfig:
        unknown = set(d) - {"name", "path", "versions", "labels", "traffic", "default_label"}
        if unknown:
            raise SluiceError(f"model config: unknown keys {sorted(unknown)}")
        if "name" not in d or "path" not in d:
            raise SluiceError(f"model config needs 'name' and 'path', got {d}")
        versions = d.get("versions") or {"latest": 1}
        if not isinstance(versions, dict) or set(versions) - {"latest", "specific", "all"}:
            raise SluiceError(f"model {d['name']}: versions must be {{latest: N}}, {{specific: [..]}} or {{all: true}}")
        latest = versions.get("latest")
        specific = versions.get("specific")
        if versions.get("all"):
            latest, specific = None, None
        elif specific is not None:
            latest = None
            if not isinstance(specific, list) or not all(isinstance(v, int) and v > 0 for v in specific):
                raise SluiceError(f"model {d['name']}: versions.specific must be a list of positive integers")
        elif not isinstance(latest, int) or latest < 1:
            raise SluiceError(f"model {d['name']}: versions.latest must be a positive integer")
        labels = {str(k): int(v) for k, v in (d.get("labels") or {}).items()}
        traffic = {str(k): float(v) for k, v in (d.get("traffic") or {}).items()}
        if any(w < 0 for w in traffic.values()) or (traffic and sum(traffic.values()) <= 0):
            raise SluiceError(f"model {d['name']}: traffic weights must be >= 0 and not all 0")
        path = d["path"] if os.path.isabs(d["path"]) else os.path.join(base, d["path"])
        return cls(str(d["name"]), os.path.abspath(path), latest, specific, labels, traffic,
                   str(d.get("default_label", "production")))


@dataclass
class ServeConfig:
    """Everything ``sluice serve`` needs; see the module docstring for the file format."""

    models: list[ModelConfig] = field(default_factory=list)
    model_roots: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 8500
    workers: int = 1
    poll_seconds: float | None = 2.0
    store: str | None = None
    max_batch_size: int = 256
    max_wait_ms: float = 2.0
    max_body_bytes: int = MAX_BODY_BYTES
    auth_token_file: str | None = None
    request_log_dir: str | None = None
    request_log_sample: float = 1.0
    request_log_flush_rows: int = 10_000
    request_log_flush_seconds: float = 10.0
    access_log: bool = True
    torch_threads: int = 1

    @classmethod
    def from_model_dir(cls, model_dir: str, **options: Any) -> ServeConfig:
        """Every model under a Pusher destination (``dir/<name>/<v>``) or one model folder (``dir/<v>``)."""
        from sluice.serve.repository import versions_in

        root = os.path.abspath(model_dir)
        if not os.path.isdir(root):
            raise SluiceError(f"model directory {root} does not exist")
        if versions_in(root) or not any(os.path.isdir(os.path.join(root, n)) and not n.startswith(".")
                                        for n in os.listdir(root)):
            models = [ModelConfig(os.path.basename(root), root)]
        else:
            models = [ModelConfig(n, os.path.join(root, n)) for n in sorted(os.listdir(root))
                      if os.path.isdir(os.path.join(root, n)) and not n.startswith(".")]
        return cls(models=models, model_roots=[root], **options)

    @classmethod
    def load(cls, path: str, **overrides: Any) -> ServeConfig:
        """Read a YAML or JSON config file; ``overrides`` (flags given) win over the file."""
        import yaml

        with open(path) as f:
            raw = yaml.safe_load(f) or {}
        if not isinstance(raw, dict):
            raise SluiceError(f"{path}: expected a mapping at the top level")
        base = os.path.dirname(os.path.abspath(path))
        models = [ModelConfig.from_dict(m, base) for m in raw.pop("models", [])]
        log = raw.pop("request_log", None) or {}
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(raw) - known
        if unknown:
            raise SluiceError(f"{path}: unknown settings {sorted(unknown)}; known: {sorted(known)}")
        roots = [os.path.abspath(os.path.join(base, r)) for r in raw.pop("model_roots", [])]
        config = cls(models=models, model_roots=roots, **raw)
        if log:
            config.request_log_dir = os.path.abspath(os.path.join(base, log["dir"]))
            config.request_log_sample = float(log.get("sample", 1.0))
        for key, value in overrides.items():
            if value is not None:
                setattr(config, key, value)
        return config

    def tokens(self) -> set[str]:
        """Bearer tokens accepted: lines of ``auth_token_file`` plus ``$SLUICE_SERVE_TOKENS``."""
        tokens = {t.strip() for t in os.environ.get(TOKENS_ENV, "").split(",") if t.strip()}
        if self.auth_token_file:
            with open(self.auth_token_file) as f:
                tokens |= {line.strip() for line in f if line.strip() and not line.startswith("#")}
        return tokens

    def check(self) -> None:
        """Refuse unsafe or inconsistent settings before serving anything."""
        if not self.models:
            raise SluiceError("no models to serve: give --model-dir or a config file with 'models'")
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise SluiceError(f"model names must be unique, got {names}")
        roots = [os.path.realpath(r) for r in (self.model_roots or [])]
        for m in self.models:
            real = os.path.realpath(m.path)
            if not any(real == r or real.startswith(r + os.sep) for r in roots):
                raise SluiceError(f"model {m.name}: {m.path} is outside the configured model roots "
                                  f"{self.model_roots}; add its parent to model_roots")
        if not is_loopback(self.host) and not self.tokens():
            raise SluiceError(f"binding to {self.host} (not loopback) needs bearer tokens: give "
                              f"--auth-token-file FILE or set ${TOKENS_ENV}")
        if self.max_batch_size < 1 or self.max_wait_ms < 0 or self.workers < 1:
            raise SluiceError("max_batch_size and workers must be >= 1, max_wait_ms >= 0")
        if not 0.0 <= self.request_log_sample <= 1.0:
            raise SluiceError("request_log sample must be between 0 and 1")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        d = json.loads(text)
        d["models"] = [ModelConfig(**m) for m in d["models"]]
        return cls(**d)


def is_loopback(host: str) -> bool:
    """True for localhost / 127.x / ::1 (no token needed there)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
