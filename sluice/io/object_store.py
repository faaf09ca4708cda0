"""Files on an object store (``s3://bucket/prefix/*.parquet``) read through pyarrow's S3 filesystem.

Credentials and endpoint come from the standard AWS environment variables
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``,
``AWS_REGION`` / ``AWS_DEFAULT_REGION``, and ``AWS_ENDPOINT_URL`` for
S3-compatible servers such as MinIO), so nothing secret is part of the source.

Example::

    source = ObjectStoreSource("s3://lake/clicks/dt=*/*.parquet")
    source.files()          # [('lake/clicks/dt=2026-01-01/part-0.parquet', 1234, 1767225600000000000), ...]
    ExampleGen(input="s3://lake/clicks/dt=*/*.parquet")

Partitions are the matched objects; ``key=value`` folders become columns. The
fingerprint hashes object names, sizes and modification times.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from sluice.engine.base import ArrowSource
from sluice.errors import DataError

FORMATS = {".csv": "csv", ".tsv": "csv", ".parquet": "parquet", ".pq": "parquet",
           ".jsonl": "json", ".ndjson": "json", ".json": "json", ".orc": "orc"}
SCHEMES = ("s3://",)


def is_object_store_uri(value: Any) -> bool:
    """Whether ``value`` names objects on a store this module reads (``s3://...``)."""
    return isinstance(value, str) and value.startswith(SCHEMES)


class ObjectStoreSource(ArrowSource):
    """Objects matching a URI with optional globs (``*``, ``?``, ``**``), of one format."""

    def __init__(self, uri: str, format: str | None = None) -> None:
        if not is_object_store_uri(uri):
            raise ValueError(f"expected an s3:// URI, got {uri!r}")
        self.uri = uri
        self.format = format
        self._files: list[tuple[str, int, int]] | None = None
        self._schema: pa.Schema | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_schema": None}  # the file list travels; the filesystem is rebuilt

    def __repr__(self) -> str:
        return f"ObjectStoreSource({self.uri!r})"

    def describe(self) -> dict[str, Any]:
        """What this source is, for parameters and artifact properties."""
        return {"type": "object_store", "uri": self.uri, "format": self.format}

    # -- listing --------------------------------------------------------------------------------

    def files(self) -> list[tuple[str, int, int]]:
        """Matched objects as ``(bucket/key, size, mtime_ns)``, sorted by name."""
        if self._files is None:
            from pyarrow import fs

            path = self.uri[len("s3://"):]
            root = _static_prefix(path)
            try:
                infos = _filesystem().get_file_info(fs.FileSelector(root, recursive=True, allow_not_found=True))
            except OSError as exc:
                raise DataError(f"cannot list {self.uri}: {exc}") from None
            if _is_glob(path):
                matcher = re.compile(_glob_regex(path))
                infos = [i for i in infos if matcher.fullmatch(i.path)]
            else:  # a prefix: every data file under it
                infos = [i for i in infos if os.path.splitext(i.path)[1].lower() in FORMATS]
            found = sorted((i.path, i.size, i.mtime_ns or 0) for i in infos
                           if i.type == fs.FileType.File and not _hidden(i.path, root))
            if not found:
                raise DataError(f"no objects match {self.uri}; check the bucket, the prefix and "
                                f"AWS_ENDPOINT_URL / credentials")
            self._files = found
        return self._files

    def fingerprint(self) -> str:
        """Object names, sizes and modification times, hashed (contents are not read)."""
        digest = hashlib.sha256()
        for name, size, mtime in self.files():
            digest.update(f"{name}\0{size}\0{mtime}\n".encode())
        return digest.hexdigest()

    def file_format(self) -> str:
        """The format given, or the one all matched objects' extensions agree on."""
        if self.format:
            return self.format
        formats = {FORMATS.get(os.path.splitext(name)[1].lower()) for name, _, _ in self.files()}
        if None in formats or len(formats) != 1:
            raise DataError(f"cannot infer one format for the objects of {self.uri}; pass format='csv', "
                            f"'parquet', 'json' or 'orc'")
        return formats.pop()

    # -- ArrowSource ----------------------------------------------------------------------------

    def schema(self) -> pa.Schema:
        if self._schema is None:
            self._schema = self._dataset([name for name, _, _ in self.files()]).schema
        return self._schema

    def partitions(self) -> list[str]:
        return [name for name, _, _ in self.files()]

    def read(self, partition: str) -> Iterator[pa.RecordBatch]:
        try:
            yield from self._dataset([partition], self.schema()).to_batches()
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"s3://{partition}: {exc}; all objects of one source must share the columns "
                            f"and types of the first ({self.files()[0][0]})") from None

    def _dataset(self, names: list[str], schema: pa.Schema | None = None) -> Any:
        import pyarrow.dataset as pads

        from sluice.io.hive import hive_schema

        root = _static_prefix(self.uri[len("s3://"):])
        # Folder types from every matched object, not just these: all partitions agree.
        partitions = hive_schema(name[len(root):].rsplit("/", 1)[0] for name, _, _ in self.files())
        partitioning = pads.partitioning(partitions, flavor="hive") if len(partitions) else None
        return pads.dataset(names, filesystem=_filesystem(), format=self.file_format(), schema=schema,
                            partitioning=partitioning, partition_base_dir=root if partitioning else None)


def _filesystem() -> Any:
    from pyarrow import fs

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    options: dict[str, Any] = {"region": region}
    if endpoint:
        scheme, _, host = endpoint.rpartition("://")
        options.update(endpoint_override=host.rstrip("/"), scheme=scheme or "https")
    return fs.S3FileSystem(**options)


def _is_glob(path: str) -> bool:
    return any(c in path for c in "*?[")


def _static_prefix(path: str) -> str:
    """The folder part of a path before its first glob character (``bucket/a/b``)."""
    if not _is_glob(path):
        return path.rstrip("/")
    head = re.split(r"[*?\[]", path, maxsplit=1)[0]
    return head.rsplit("/", 1)[0]


def _glob_regex(pattern: str) -> str:
    out = []
    for token in re.split(r"(\*\*/|\*\*|\*|\?)", pattern):
        out.append({"**/": r"(?:.*/)?", "**": r".*", "*": r"[^/]*", "?": r"[^/]"}.get(token, re.escape(token)))
    return "".join(out)


def _hidden(name: str, root: str) -> bool:
    return any(part.startswith((".", "_")) for part in name[len(root):].split("/") if part)
