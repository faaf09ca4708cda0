"""The artifact store publishes atomically and trusts only complete artifacts."""

from __future__ import annotations

import json
import os

from sluice.artifacts import MANIFEST, ArtifactStore


def _stage(store: ArtifactStore, files: dict[str, str]) -> str:
    staging = store.staging_dir()
    for rel, text in files.items():
        os.makedirs(os.path.dirname(os.path.join(staging, rel)) or staging, exist_ok=True)
        with open(os.path.join(staging, rel), "w") as f:
            f.write(text)
    return staging


def test_publish_writes_manifest_with_sizes_and_content_fingerprint(tmp_path):
    store = ArtifactStore(str(tmp_path / "root"))
    uri, fp = store.publish(_stage(store, {"a/x.txt": "hello", "y.txt": "!"}), "p/s/out/1", "Examples", {"k": 1})
    manifest = json.load(open(os.path.join(uri, MANIFEST)))
    assert manifest["files"] == {"a/x.txt": 5, "y.txt": 1}
    assert manifest["type"] == "Examples" and manifest["properties"] == {"k": 1}
    assert store.is_complete(uri)
    # Same content elsewhere -> same fingerprint; different content -> different.
    _, fp_same = store.publish(_stage(store, {"a/x.txt": "hello", "y.txt": "!"}), "p/s/out/2", "Examples", {})
    _, fp_diff = store.publish(_stage(store, {"a/x.txt": "hellO", "y.txt": "!"}), "p/s/out/3", "Examples", {})
    assert fp == fp_same != fp_diff


def test_incomplete_artifacts_are_not_trusted(tmp_path):
    store = ArtifactStore(str(tmp_path / "root"))
    uri, _ = store.publish(_stage(store, {"x.txt": "hello"}), "p/s/out/1", "Artifact", {})
    with open(os.path.join(uri, "x.txt"), "w") as f:
        f.write("truncated?")  # size changed behind the store's back
    assert not store.is_complete(uri)
    uri2, _ = store.publish(_stage(store, {"x.txt": "hello"}), "p/s/out/2", "Artifact", {})
    os.remove(os.path.join(uri2, MANIFEST))  # as if the process died before the manifest
    assert not store.is_complete(uri2)
    assert store.manifest(uri2) is None
    store.delete(uri)
    assert not os.path.exists(uri)


def test_staging_is_hidden_and_cleaned(tmp_path):
    store = ArtifactStore(str(tmp_path / "root"))
    staging = _stage(store, {"x.txt": "partial"})
    assert "/.staging/" in staging
    os.utime(staging, (0, 0))
    assert store.clean_staging(older_than_s=60) == 1
    assert not os.path.exists(staging)


def test_fsspec_uri_root_publishes_manifest_last_and_localizes(tmp_path):
    store = ArtifactStore("memory://sluice-test-root")
    uri, fp = store.publish(_stage(store, {"d/x.txt": "remote"}), "p/s/out/1", "Artifact", {})
    assert uri == "memory://sluice-test-root/p/s/out/1"
    assert store.is_complete(uri)
    local = store.localize(uri, cache_dir=str(tmp_path / "cache"))
    assert open(os.path.join(local, "d", "x.txt")).read() == "remote"
    store.delete(uri)
    assert not store.is_complete(uri)
