"""Writing a servable version directory atomically.

Example::

    path = write_version("serving", "ctr", 3, model_dir, transform_dir, signature)
    # serving/ctr/3/{signature.json, model/, transform/}
"""

from __future__ import annotations

import os
import shutil
import uuid

from sluice.errors import SluiceError
from sluice.registry.servable import Signature


def stage_version(destination: str, name: str, model_dir: str, transform_dir: str,
                  signature: Signature) -> str:
    """Copy model + transform + signature into a hidden folder beside the versions; returns it.

    Servers only load folders named by an integer that hold ``signature.json``, so
    a staged (or abandoned) folder is never served.
    """
    model_root = os.path.join(destination, name)
    os.makedirs(model_root, exist_ok=True)
    tmp = os.path.join(model_root, f".staging-{uuid.uuid4().hex[:12]}")
    try:
        shutil.copytree(model_dir, os.path.join(tmp, "model"), ignore=_ignore_manifest)
        shutil.copytree(transform_dir, os.path.join(tmp, "transform"), ignore=_ignore_manifest)
        signature.save(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return tmp


def commit_version(staged: str, version: int) -> str:
    """Publish a staged folder as version ``version`` (one rename); returns its path."""
    final = os.path.join(os.path.dirname(staged), str(version))
    if os.path.exists(final):
        shutil.rmtree(staged, ignore_errors=True)
        raise SluiceError(f"{final} already exists: the destination holds versions this metadata store "
                          "did not register; push to an empty destination or remove that folder")
    os.replace(staged, final)
    return os.path.abspath(final)


def write_version(destination: str, name: str, version: int, model_dir: str, transform_dir: str,
                  signature: Signature) -> str:
    """Stage and commit in one go: ``destination/name/version``."""
    return commit_version(stage_version(destination, name, model_dir, transform_dir, signature), version)


def _ignore_manifest(directory: str, names: list[str]) -> list[str]:
    return [n for n in names if n.startswith("_SLUICE")]
