"""Step fingerprints: the cache key of an execution.

fingerprint = sha256(component identity and code version
                     + canonical parameters
                     + each input artifact's content fingerprint
                     + the fingerprint of external data the step reads, if any)

Two executions with the same fingerprint would compute the same outputs, so
the second may reuse the first's (if they still exist). External data (files
named by a glob, a database table) is fingerprinted by the component itself,
e.g. file names, sizes and modification times, so new data is never served
from cache.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from sluice.dsl.artifacts import Artifact
from sluice.dsl.component import Component, canonical


def step_fingerprint(component: Component, inputs: Mapping[str, Artifact | None],
                     external: str | None = None) -> str:
    """The cache key of running ``component`` on ``inputs``.

    Example::

        step_fingerprint(stats_gen, {"examples": examples_artifact})   # 'a3f1...'
    """
    payload = {
        "code": component.code_version(),
        "params": canonical(component.params, where=f"{component.name} parameter"),
        "inputs": {k: (a.fingerprint if a is not None else None) for k, a in sorted(inputs.items())},
        "external": external,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def files_fingerprint(paths: list[str]) -> str:
    """Fingerprint of external files by name, size and modification time (no content read)."""
    import os

    digest = hashlib.sha256()
    for path in sorted(paths):
        st = os.stat(path)
        digest.update(f"{os.path.abspath(path)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()
