"""The artifact store: atomic, manifest-marked artifact directories on any filesystem."""

from sluice.artifacts.store import MANIFEST, ArtifactStore, Manifest, content_fingerprint

__all__ = ["MANIFEST", "ArtifactStore", "Manifest", "content_fingerprint"]
