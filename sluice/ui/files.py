"""Reading artifact files for the UI, only inside the configured roots (no path traversal).

A path is resolved (``..`` and symbolic links followed) before the check, so neither
``../../etc/passwd`` in a URL nor an artifact URI or link that points elsewhere is read.

Example::

    files = SafeFiles(["/data/.sluice/artifacts"])
    files.resolve("/data/.sluice/artifacts/ctr/Trainer/model/7", "model.json")   # ok
    files.resolve("/data/.sluice/artifacts", "../metadata.db")                   # raises OutsideRoot
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any


class OutsideRoot(PermissionError):
    """The path resolves outside every allowed root (or is not a local path)."""


class SafeFiles:
    """Resolves and reads files under a few allowed root folders."""

    def __init__(self, roots: Sequence[str]) -> None:
        self.roots = [os.path.realpath(os.path.abspath(r)) for r in roots if r]

    def resolve(self, base: str, *parts: str) -> str:
        """``base/parts`` as a real path inside a root; :class:`OutsideRoot` otherwise."""
        if base.startswith("file://"):
            base = base[len("file://"):]
        if "://" in base:
            raise OutsideRoot(f"{base!r} is not on the local file system; the UI reads local artifacts only")
        for p in parts:
            if os.path.isabs(p) or "\x00" in p:
                raise OutsideRoot(f"{p!r} is not a relative path")
        path = os.path.realpath(os.path.join(os.path.abspath(base), *parts))
        if not any(path == r or path.startswith(r + os.sep) for r in self.roots):
            raise OutsideRoot(f"{path!r} is outside the artifact root")
        return path

    def read_json(self, base: str, *parts: str) -> Any:
        """Parsed JSON of a file inside a root."""
        with open(self.resolve(base, *parts), encoding="utf-8") as f:
            return json.load(f)

    def listing(self, base: str, limit: int = 200) -> list[tuple[str, int]]:
        """Relative paths and sizes of the files under ``base`` (the first ``limit``, sorted)."""
        root = self.resolve(base)
        out: list[tuple[str, int]] = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                out.append((os.path.relpath(full, root), os.path.getsize(full)))
                if len(out) >= limit:
                    return out
        return out

    def tail(self, base: str, *parts: str, max_bytes: int = 64_000) -> str:
        """The last ``max_bytes`` of a text file (a log), decoded leniently."""
        path = self.resolve(base, *parts)
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - max_bytes))
            data = f.read()
        text = data.decode("utf-8", errors="replace")
        return text if size <= max_bytes else "…" + text[text.find("\n") + 1:]
