"""TF Serving's REST API.

::

    POST /v1/models/{name}[/versions/{v} | /labels/{label}]:predict
         {"instances": [{feature: value, ...}, ...]}  -> {"predictions": [{...}, ...]}   (row format)
         {"inputs": {feature: [value, ...], ...}}     -> {"outputs": {output: [...]}}     (columnar format)
    GET  /v1/models/{name}[/versions/{v} | /labels/{label}]            version status
    GET  /v1/models/{name}[/versions/{v} | /labels/{label}]/metadata   the input signature

Errors are ``{"error": "<message>"}`` as TF Serving sends them.

Example::

    routes(ctx)     # Starlette routes for an app
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sluice.serve.protocols.base import (
    ApiError, ServerContext, api_error, columnar, columns_block, note, read_json, rows_block,
)

PROTOCOL = "tfserving"


def error(exc: ApiError) -> JSONResponse:
    return JSONResponse({"error": exc.message}, status_code=exc.status)


def parse_model_path(path: str) -> tuple[str, int | None, str | None, str | None]:
    """'ctr/versions/3:predict' -> ('ctr', 3, None, 'predict'); 'ctr/labels/canary' -> ('ctr', None, 'canary', None)."""
    verb = None
    if ":" in path:
        path, verb = path.rsplit(":", 1)
    parts = path.strip("/").split("/")
    if verb is None and len(parts) in (2, 4) and parts[-1] == "metadata":
        verb, parts = "metadata", parts[:-1]
    version, label = None, None
    if len(parts) == 3 and parts[1] == "versions" and parts[2].isdigit() and len(parts[2]) < 19:
        version, parts = int(parts[2]), parts[:1]
    elif len(parts) == 3 and parts[1] == "labels" and parts[2]:
        label, parts = parts[2], parts[:1]
    if len(parts) != 1 or not parts[0]:
        raise ApiError(404, "unknown path; expected /v1/models/<name>[/versions/<n> | /labels/<label>]"
                            "[:predict | /metadata]")
    return parts[0], version, label, verb


def routes(ctx: ServerContext) -> list[Route]:
    repo = ctx.repository

    async def models_get(request: Request) -> JSONResponse:
        note(request, protocol=PROTOCOL)
        try:
            name, version, label, verb = parse_model_path(request.path_params["rest"])
            if verb not in (None, "metadata"):
                raise ApiError(404, f"unknown endpoint ':{verb}' (use POST ...:predict)")
            state = repo.state(name)
            if version is None and label is None and verb is None:
                return JSONResponse({"model_version_status": status_list(state)})
            model = repo.resolve(name, version, label)
        except Exception as exc:
            return error(api_error(exc))
        if verb == "metadata":
            return JSONResponse({"model_spec": {"name": name, "version": str(model.version)},
                                 "metadata": {"signature": model.servable.signature.to_dict()}})
        return JSONResponse({"model_version_status": [_available(model.version)]})

    async def models_post(request: Request) -> JSONResponse:
        note(request, protocol=PROTOCOL)
        try:
            name, version, label, verb = parse_model_path(request.path_params["rest"])
            if verb != "predict":
                raise ApiError(404, "unknown endpoint; POST /v1/models/{name}:predict")
            note(request, name=name)
            model = repo.resolve(name, version, label)
            note(request, model)
            payload = await read_json(request, ctx.max_body_bytes)
            table, rows_format = to_table(model, payload)
            note(request, rows=table.num_rows)
            out = await ctx.infer(model, table)
        except Exception as exc:
            return error(api_error(exc))
        if rows_format:
            return JSONResponse({"predictions": model.servable.format_rows(out), "model_version": str(model.version)})
        return JSONResponse({"outputs": columnar(model, out), "model_version": str(model.version)})

    return [Route("/v1/models/{rest:path}", models_get, methods=["GET"]),
            Route("/v1/models/{rest:path}", models_post, methods=["POST"])]


def to_table(model: Any, payload: Any) -> tuple[Any, bool]:
    """A checked block of rows from a predict body, and whether it used the row format."""
    if not isinstance(payload, dict) or ("instances" in payload) == ("inputs" in payload):
        if isinstance(payload, dict) and "instances" in payload:
            raise ApiError(400, "send either 'instances' (row format) or 'inputs' (columnar format), not both")
        raise ApiError(400, "request body must be a JSON object with 'instances' (row format) "
                            "or 'inputs' (columnar format)")
    unknown = set(payload) - {"instances", "inputs", "signature_name"}
    if unknown:
        raise ApiError(400, f"unknown request field {sorted(unknown)[0]!r}; expected 'instances' or 'inputs' "
                            "(and optionally 'signature_name')")
    if "instances" in payload:
        return rows_block(model.servable, payload["instances"], "instances"), True
    inputs = payload["inputs"]
    if isinstance(inputs, list):  # a list of rows given as 'inputs'
        return rows_block(model.servable, inputs, "inputs"), False
    return columns_block(model.servable, inputs, "inputs"), False


def _available(version: int) -> dict[str, Any]:
    return {"version": str(version), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}


def status_list(state: Any) -> list[dict[str, Any]]:
    """Every loaded or failed version, newest first, in TF Serving's shape."""
    out = [_available(v) for v in state.versions]
    out += [{"version": str(v), "state": "END", "status": {"error_code": "UNKNOWN", "error_message": msg}}
            for v, msg in state.failed.items() if v not in state.versions]
    return sorted(out, key=lambda s: -int(s["version"]))
