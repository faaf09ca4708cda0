"""The artifact store: one directory per artifact, published atomically.

A step writes its outputs into a private staging directory. Publishing
computes a content fingerprint, writes a manifest *last*, and moves the
directory into place (a rename on a local disk; upload-then-manifest on an
object store). Readers trust only directories whose manifest is present and
whose listed files are all there, so a crash never leaves an artifact that
looks complete.

The root is a local path (default ``.sluice/artifacts``) or any fsspec URI
(``s3://bucket/prefix``, ``memory://x``, ``file:///abs``).

Example::

    store = ArtifactStore(".sluice/artifacts")
    staging = store.staging_dir()
    open(os.path.join(staging, "hello.txt"), "w").write("hi")
    uri, fingerprint = store.publish(staging, "demo/Step/out/1", "Artifact", {})
    store.is_complete(uri)   # True
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any

import fsspec

MANIFEST = "_SLUICE_MANIFEST.json"
STAGING = ".staging"


@dataclass(frozen=True)
class Manifest:
    """What a complete artifact holds: its type, files (with sizes) and content fingerprint."""

    type: str
    files: dict[str, int]
    fingerprint: str
    properties: dict[str, Any]
    created_at: float


def content_fingerprint(directory: str) -> tuple[str, dict[str, int]]:
    """sha256 over every file's relative path, size and content; and the file sizes."""
    digest = hashlib.sha256()
    sizes: dict[str, int] = {}
    for rel in sorted(_walk(directory)):
        path = os.path.join(directory, rel)
        with open(path, "rb") as f:
            file_digest = hashlib.file_digest(f, "sha256").hexdigest()
        sizes[rel] = os.path.getsize(path)
        digest.update(f"{rel}\0{sizes[rel]}\0{file_digest}\n".encode())
    return digest.hexdigest(), sizes


def _walk(directory: str) -> list[str]:
    out = []
    for dirpath, _, files in os.walk(directory):
        for name in files:
            if name != MANIFEST:
                out.append(os.path.relpath(os.path.join(dirpath, name), directory))
    return out


class ArtifactStore:
    """Publishes, checks, reads and deletes artifact directories under a root URI."""

    def __init__(self, root: str = os.path.join(".sluice", "artifacts")) -> None:
        self.fs, self._root_path = fsspec.core.url_to_fs(root)
        self.is_local = self.fs.protocol in ("file", ("file", "local")) or "file" in self.fs.protocol
        if self.is_local:
            self._root_path = os.path.abspath(self._root_path)
            os.makedirs(self._root_path, exist_ok=True)
        self.root = self._root_path if self.is_local else root.rstrip("/")

    def uri_for(self, relpath: str) -> str:
        """The URI an artifact at ``relpath`` under the root gets."""
        if self.is_local:
            return os.path.join(self._root_path, relpath)
        return f"{self.root}/{relpath}"

    def staging_dir(self) -> str:
        """A new, empty, local directory for a step to write one output into."""
        if self.is_local:
            path = os.path.join(self._root_path, STAGING, uuid.uuid4().hex)
            os.makedirs(path)
            return path
        return tempfile.mkdtemp(prefix="sluice-staging-")

    def publish(self, staging: str, relpath: str, type_name: str,
                properties: dict[str, Any]) -> tuple[str, str]:
        """Make ``staging`` the complete artifact at ``relpath``; returns (uri, fingerprint)."""
        fingerprint, sizes = content_fingerprint(staging)
        manifest = {"type": type_name, "files": sizes, "fingerprint": fingerprint,
                    "properties": properties, "created_at": time.time()}
        uri = self.uri_for(relpath)
        if self.is_local:
            _write_json(os.path.join(staging, MANIFEST), manifest)
            os.makedirs(os.path.dirname(uri), exist_ok=True)
            if os.path.exists(uri):  # a leftover from an attempt that died mid-publish
                shutil.rmtree(uri)
            os.replace(staging, uri)  # atomic on one filesystem
        else:
            for rel in sizes:  # data first, manifest last: until then readers ignore it
                self.fs.put_file(os.path.join(staging, rel), f"{self._remote(uri)}/{rel}")
            with self.fs.open(f"{self._remote(uri)}/{MANIFEST}", "w") as f:
                json.dump(manifest, f, sort_keys=True)
            shutil.rmtree(staging, ignore_errors=True)
        return uri, fingerprint

    def _remote(self, uri: str) -> str:
        return fsspec.core.url_to_fs(uri)[1]

    def manifest(self, uri: str) -> Manifest | None:
        """The manifest of a published artifact, or ``None`` when unfinished or missing."""
        path = f"{self._path(uri)}/{MANIFEST}"
        try:
            with self.fs.open(path, "r") as f:
                d = json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return Manifest(d["type"], d["files"], d["fingerprint"], d.get("properties", {}), d["created_at"])

    def is_complete(self, uri: str) -> bool:
        """True when the manifest is there and every listed file exists with its size."""
        m = self.manifest(uri)
        if m is None:
            return False
        base = self._path(uri)
        try:
            return all(self.fs.size(f"{base}/{rel}") == size for rel, size in m.files.items())
        except (FileNotFoundError, OSError):
            return False

    def localize(self, uri: str, cache_dir: str | None = None) -> str:
        """A local directory holding the artifact: the artifact itself on a local root,
        otherwise a cached download (fetched once, manifest last)."""
        if self.is_local:
            return uri
        cache_dir = cache_dir or os.path.join(tempfile.gettempdir(), "sluice-artifact-cache")
        local = os.path.join(cache_dir, hashlib.sha256(uri.encode()).hexdigest()[:24])
        if not os.path.exists(os.path.join(local, MANIFEST)):
            m = self.manifest(uri)
            if m is None:
                raise FileNotFoundError(f"artifact {uri} is not complete (no manifest)")
            tmp = f"{local}.{uuid.uuid4().hex}.tmp"
            for rel in m.files:
                os.makedirs(os.path.dirname(os.path.join(tmp, rel)), exist_ok=True)
                self.fs.get_file(f"{self._remote(uri)}/{rel}", os.path.join(tmp, rel))
            self.fs.get_file(f"{self._remote(uri)}/{MANIFEST}", os.path.join(tmp, MANIFEST))
            shutil.rmtree(local, ignore_errors=True)
            os.replace(tmp, local)
        return local

    def delete(self, uri: str) -> None:
        """Remove an artifact: the manifest first, so a partial delete never looks complete."""
        base = self._path(uri)
        try:
            self.fs.rm(f"{base}/{MANIFEST}")
        except FileNotFoundError:
            pass
        if self.fs.exists(base):
            self.fs.rm(base, recursive=True)

    def clean_staging(self, older_than_s: float = 3600) -> int:
        """Delete staging directories left behind by crashed steps; returns how many."""
        if not self.is_local:
            return 0
        staging = os.path.join(self._root_path, STAGING)
        removed = 0
        for name in os.listdir(staging) if os.path.isdir(staging) else []:
            path = os.path.join(staging, name)
            if time.time() - os.path.getmtime(path) > older_than_s:
                shutil.rmtree(path, ignore_errors=True)
                removed += 1
        return removed

    def _path(self, uri: str) -> str:
        return uri if self.is_local else self._remote(uri)


def _write_json(path: str, data: Any) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, sort_keys=True, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
