"""What every protocol shares: reading a JSON body safely, errors, running inference.

Example::

    payload = await read_json(request, max_bytes)      # ApiError(400 | 413) on bad input
    outputs = await ctx.infer(model, table, request, "tfserving")
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.requests import Request

from sluice.registry.servable import InvalidRequest
from sluice.serve.batching import Block
from sluice.serve.repository import LoadedModel, ModelNotFound, ModelRepository


class ApiError(Exception):
    """An error answered to the client: HTTP status and a message naming what was wrong."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def api_error(exc: Exception) -> ApiError:
    """Map the library's exceptions to HTTP errors (anything else stays a 500)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, InvalidRequest):
        return ApiError(400, str(exc))
    if isinstance(exc, ModelNotFound):
        return ApiError(404, str(exc))
    raise exc


async def read_json(request: Request, max_bytes: int) -> Any:
    """The parsed JSON body; 413 over ``max_bytes`` (refused before reading it all), 400 if not JSON."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"request body over {max_bytes} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(413, f"request body over {max_bytes} bytes")
        chunks.append(chunk)
    try:
        return json.loads(b"".join(chunks), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError are ValueErrors
        raise ApiError(400, f"request body is not valid JSON: {str(exc)[:200]}") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (send null for a missing value)")


def note(request: Request, model: LoadedModel | None = None, protocol: str | None = None,
         name: str | None = None, rows: int | None = None) -> None:
    """Tell the access log and metrics which model/version this request is about."""
    info = request.scope.get("sluice")
    if info is None:
        return
    if protocol:
        info["protocol"] = protocol
    if name:
        info["model"] = name
    if model is not None:
        info["model"], info["version"] = model.name, str(model.version)
    if rows is not None:
        info["rows"] = rows


@dataclass
class ServerContext:
    """What handlers need: the repository, the limits and the request log."""

    repository: ModelRepository
    max_body_bytes: int
    request_log: Any = None

    async def infer(self, model: LoadedModel, block: Block) -> dict[str, np.ndarray]:
        """Predict checked request values through the model's micro-batcher; log the request if sampled."""
        out = await model.batcher.submit(block)
        if self.request_log is not None and self.request_log.should_log():
            self.request_log.add(model.name, model.version, model.servable.table_of(block.columns), out)
        return out


def rows_block(servable: Any, rows: Any, where: str) -> Block:
    """Checked JSON rows as a block."""
    columns = servable.check_rows(rows, where)
    return Block(columns, len(rows))


def columns_block(servable: Any, columns: Any, where: str) -> Block:
    """Checked JSON columns as a block."""
    checked = servable.check_columns(columns, where)
    return Block(checked, len(next(iter(checked.values()))))


def columnar(model: LoadedModel, out: dict[str, np.ndarray]) -> dict[str, list[Any]]:
    """Prediction arrays as JSON columns (TF Serving's columnar ``outputs``)."""
    result: dict[str, list[Any]] = {}
    for name, values in out.items():
        result[name] = np.asarray(values).tolist()
    classes = model.servable.signature.classes
    if "class_id" in out and classes:
        result["class"] = [classes[c] if c < len(classes) else int(c) for c in out["class_id"]]
    return result
