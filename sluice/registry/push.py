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


def write_version(destination: str, name: str, version: int, model_dir: str, transform_dir: str,
                  signature: Signature) -> str:
    """Copy model + transform + signature into ``destination/name/version``; the rename is the commit.

    A server watching the folder never sees a half-written version: files go
    to a hidden temporary folder first, and servers only load folders whose
    ``signature.json`` exists.
    """
    model_root = os.path.join(destination, name)
    os.makedirs(model_root, exist_ok=True)
    final = os.path.join(model_root, str(version))
    if os.path.exists(final):
        raise SluiceError(f"{final} already exists: the destination holds versions this metadata store "
                          "did not register; push to an empty destination or remove that folder")
    tmp = os.path.join(model_root, f".tmp-{version}-{uuid.uuid4().hex[:8]}")
    try:
        shutil.copytree(model_dir, os.path.join(tmp, "model"), ignore=_ignore_manifest)
        shutil.copytree(transform_dir, os.path.join(tmp, "transform"), ignore=_ignore_manifest)
        signature.save(tmp)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return os.path.abspath(final)


def _ignore_manifest(directory: str, names: list[str]) -> list[str]:
    return [n for n in names if n.startswith("_SLUICE")]
