"""MLflow's scoring protocol, so MLflow clients work unchanged.

::

    POST /invocations     one of:
        {"dataframe_split": {"columns": [...], "data": [[...], ...]}}
        {"dataframe_records": [{feature: value}, ...]}
        {"instances": [{feature: value}, ...]}
        {"inputs": {feature: [values]}}   or   {"inputs": [{feature: value}, ...]}
      -> {"predictions": [{"probability": 0.04}, ...]}
    GET  /ping, /health   200 when a model is loaded
    GET  /version         the server version

With several models served, pick one with ``?model=<name>`` (and optionally
``&version=<n>``). Errors are MLflow's ``{"error_code": ..., "message": ...}``.

Example::

    curl -H 'Content-Type: application/json' -d '{"dataframe_records": [{"I1": 3}]}' localhost:8500/invocations
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

import sluice
from sluice.serve.protocols.base import ApiError, ServerContext, api_error, columns_block, note, read_json, rows_block

PROTOCOL = "mlflow"
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
ERROR_CODES = {400: "BAD_REQUEST", 404: "RESOURCE_DOES_NOT_EXIST", 413: "BAD_REQUEST", 415: "BAD_REQUEST"}


def error(exc: ApiError) -> JSONResponse:
    return JSONResponse({"error_code": ERROR_CODES.get(exc.status, "INTERNAL_ERROR"), "message": exc.message},
                        status_code=exc.status)


def routes(ctx: ServerContext) -> list[Route]:
    repo = ctx.repository

    def pick(request: Request) -> Any:
        name = request.query_params.get("model")
        if name is None:
            if len(repo.names()) != 1:
                raise ApiError(400, f"several models are served ({', '.join(repo.names())}): "
                                    "choose one with ?model=<name>")
            name = repo.names()[0]
        raw = request.query_params.get("version")
        if raw is not None and (not raw.isdigit() or len(raw) > 18):
            raise ApiError(400, f"version must be a positive integer, got {raw[:40]!r}")
        return repo.resolve(name, int(raw) if raw is not None else None)

    async def invocations(request: Request) -> JSONResponse:
        note(request, protocol=PROTOCOL)
        try:
            content_type = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
            if content_type != "application/json":
                raise ApiError(415, f"content type {content_type[:60]!r} is not supported; send application/json")
            model = pick(request)
            note(request, model)
            payload = await read_json(request, ctx.max_body_bytes)
            table = to_table(model.servable, payload)
            note(request, rows=table.num_rows)
            out = await ctx.infer(model, table)
        except Exception as exc:
            return error(api_error(exc))
        return JSONResponse({"predictions": model.servable.format_rows(out)})

    async def ping(request: Request) -> PlainTextResponse:
        ok = all(repo.state(n).versions for n in repo.names())
        return PlainTextResponse("\n", status_code=200 if ok else 503)

    async def version(request: Request) -> PlainTextResponse:
        return PlainTextResponse(sluice.__version__)

    return [Route("/invocations", invocations, methods=["POST"]), Route("/ping", ping, methods=["GET"]),
            Route("/health", ping, methods=["GET"]), Route("/version", version, methods=["GET"])]


def to_table(servable: Any, payload: Any) -> Any:
    """A checked block of rows from an MLflow scoring body."""
    given = [k for k in FORMATS if isinstance(payload, dict) and k in payload]
    if not isinstance(payload, dict) or len(given) != 1:
        raise ApiError(400, "the input must be a JSON object with exactly one of the fields "
                            f"{', '.join(FORMATS)} (got {', '.join(given) or 'none'})")
    unknown = set(payload) - set(FORMATS) - {"params"}
    if unknown:
        raise ApiError(400, f"unknown request field {sorted(unknown)[0]!r}; expected one of {', '.join(FORMATS)} "
                            "and optionally 'params'")
    kind = given[0]
    value = payload[kind]
    if kind == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("columns"), list) \
                or not isinstance(value.get("data"), list):
            raise ApiError(400, "dataframe_split: expected {\"columns\": [names], \"data\": [[row values], ...]}")
        columns = value["columns"]
        if not all(isinstance(c, str) for c in columns) or len(set(columns)) != len(columns):
            raise ApiError(400, "dataframe_split.columns: expected a list of distinct feature names")
        rows = []
        for i, row in enumerate(value["data"]):
            if not isinstance(row, list) or len(row) != len(columns):
                raise ApiError(400, f"dataframe_split.data[{i}]: expected a list of {len(columns)} values "
                                    "(one per column)")
            rows.append(dict(zip(columns, row)))
        return rows_block(servable, rows, "dataframe_split.data")
    if kind == "inputs" and isinstance(value, dict):
        return columns_block(servable, value, "inputs")
    return rows_block(servable, value, kind)
