"""The Open Inference Protocol (KServe V2) over REST.

::

    GET  /v2                                        server metadata
    GET  /v2/health/live, /v2/health/ready          {"live": true}, {"ready": true}
    GET  /v2/models/{name}[/versions/{v}]           model metadata: versions, typed inputs and outputs
    GET  /v2/models/{name}[/versions/{v}]/ready     {"name": ..., "ready": true}
    POST /v2/models/{name}[/versions/{v}]/infer     typed tensors in, typed tensors out

One input tensor per raw feature (shape ``[n]`` or ``[n, 1]``, datatype FP32/FP64,
INT8..INT64, BYTES or BOOL as the signature says); ``null`` marks a missing
optional value. Errors are ``{"error": "<message>"}``.

Example request::

    {"inputs": [{"name": "I1", "shape": [2], "datatype": "FP64", "data": [1.0, 2.5]},
                {"name": "C1", "shape": [2], "datatype": "BYTES", "data": ["a", "b"]}]}
"""

from __future__ import annotations

from typing import Any

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import sluice
from sluice.serve.protocols.base import ApiError, ServerContext, api_error, columns_block, note, read_json

PROTOCOL = "kserve_v2"
FLOAT_TYPES = ("FP16", "FP32", "FP64")
INT_TYPES = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
ACCEPTED = {"float": FLOAT_TYPES + INT_TYPES, "int": INT_TYPES, "string": ("BYTES",), "bool": ("BOOL",)}
FEATURE_DATATYPE = {"float": "FP64", "int": "INT64", "string": "BYTES", "bool": "BOOL"}


def error(exc: ApiError) -> JSONResponse:
    return JSONResponse({"error": exc.message}, status_code=exc.status)


def _version(request: Request) -> int | None:
    raw = request.path_params.get("version")
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(404, f"model version must be a positive integer, got {raw[:40]!r}")
    return int(raw)


def routes(ctx: ServerContext) -> list[Route]:
    repo = ctx.repository

    async def server_metadata(request: Request) -> JSONResponse:
        return JSONResponse({"name": "sluice", "version": sluice.__version__, "extensions": []})

    async def live(request: Request) -> JSONResponse:
        return JSONResponse({"live": True})

    async def ready(request: Request) -> JSONResponse:
        is_ready = all(repo.state(n).versions for n in repo.names())
        return JSONResponse({"ready": is_ready}, status_code=200 if is_ready else 503)

    async def model_metadata(request: Request) -> JSONResponse:
        note(request, protocol=PROTOCOL)
        try:
            name = request.path_params["name"]
            model = repo.resolve(name, _version(request))
        except Exception as exc:
            return error(api_error(exc))
        sig = model.servable.signature
        return JSONResponse({
            "name": name, "versions": [str(v) for v in sorted(repo.state(name).versions)],
            "platform": "sluice_pytorch",
            "inputs": [{"name": f, "datatype": FEATURE_DATATYPE[spec["type"]], "shape": [-1],
                        "parameters": {"required": bool(spec.get("required", False))}}
                       for f, spec in sig.inputs.items()],
            "outputs": output_specs(sig)})

    async def model_ready(request: Request) -> JSONResponse:
        note(request, protocol=PROTOCOL)
        try:
            name = request.path_params["name"]
            repo.resolve(name, _version(request))
        except Exception as exc:
            return error(api_error(exc))
        return JSONResponse({"name": name, "ready": True})

    async def infer(request: Request) -> JSONResponse:
        note(request, protocol=PROTOCOL, name=request.path_params["name"])
        try:
            model = repo.resolve(request.path_params["name"], _version(request))
            note(request, model)
            payload = await read_json(request, ctx.max_body_bytes)
            columns, wanted, request_id = parse_infer(payload)
            check_datatypes(model.servable.signature, payload["inputs"])
            table = columns_block(model.servable, columns, "inputs")
            names = [o["name"] for o in output_specs(model.servable.signature)]
            for w in wanted or []:
                if w not in names:
                    raise ApiError(400, f"outputs: unknown output {w!r}; this model has {', '.join(names)}")
            note(request, rows=table.num_rows)
            out = await ctx.infer(model, table)
        except Exception as exc:
            return error(api_error(exc))
        body: dict[str, Any] = {"model_name": model.name, "model_version": str(model.version),
                                "outputs": [tensor(k, v) for k, v in out.items() if not wanted or k in wanted]}
        if request_id is not None:
            body["id"] = request_id
        return JSONResponse(body)

    base, versioned = "/v2/models/{name}", "/v2/models/{name}/versions/{version}"
    return [
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", ready, methods=["GET"]),
        Route(base, model_metadata, methods=["GET"]), Route(versioned, model_metadata, methods=["GET"]),
        Route(base + "/ready", model_ready, methods=["GET"]), Route(versioned + "/ready", model_ready, methods=["GET"]),
        Route(base + "/infer", infer, methods=["POST"]), Route(versioned + "/infer", infer, methods=["POST"]),
    ]


def output_specs(signature: Any) -> list[dict[str, Any]]:
    """The output tensors a model of this task returns."""
    if signature.task == "binary":
        return [{"name": "probability", "datatype": "FP64", "shape": [-1]}]
    if signature.task == "multiclass":
        return [{"name": "class_id", "datatype": "INT64", "shape": [-1]},
                {"name": "probabilities", "datatype": "FP64", "shape": [-1, len(signature.classes or []) or -1]}]
    return [{"name": "value", "datatype": "FP64", "shape": [-1]}]


def tensor(name: str, values: np.ndarray) -> dict[str, Any]:
    arr = np.asarray(values)
    datatype = "INT64" if arr.dtype.kind in "iu" else "FP64"
    return {"name": name, "datatype": datatype, "shape": list(arr.shape),
            "data": arr.reshape(-1).astype(np.int64 if datatype == "INT64" else np.float64).tolist()}


def parse_infer(payload: Any) -> tuple[dict[str, list[Any]], list[str] | None, Any]:
    """Check an infer body's structure; returns (feature columns, requested outputs, request id)."""
    if not isinstance(payload, dict):
        raise ApiError(400, "request body must be a JSON object with an 'inputs' list of tensors")
    unknown = set(payload) - {"id", "parameters", "inputs", "outputs"}
    if unknown:
        raise ApiError(400, f"unknown request field {sorted(unknown)[0]!r}; expected id, parameters, inputs, outputs")
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ApiError(400, "id: expected a string")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise ApiError(400, "inputs: expected a non-empty list of tensors {name, shape, datatype, data}")
    columns: dict[str, list[Any]] = {}
    for i, t in enumerate(inputs):
        where = f"inputs[{i}]"
        if not isinstance(t, dict):
            raise ApiError(400, f"{where}: expected a tensor object {{name, shape, datatype, data}}")
        missing = [k for k in ("name", "shape", "datatype", "data") if k not in t]
        if missing:
            raise ApiError(400, f"{where}.{missing[0]}: required tensor field is missing")
        name, shape, datatype, data = t["name"], t["shape"], t["datatype"], t["data"]
        if not isinstance(name, str):
            raise ApiError(400, f"{where}.name: expected a string")
        where = f"inputs[{i}] ({name})"
        if name in columns:
            raise ApiError(400, f"{where}: tensor given twice")
        if (not isinstance(shape, list) or not 1 <= len(shape) <= 2
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
                or (len(shape) == 2 and shape[1] != 1)):
            raise ApiError(400, f"{where}.shape: expected [rows] or [rows, 1] (one value per row), got {shape!r:.80}")
        if not isinstance(datatype, str):
            raise ApiError(400, f"{where}.datatype: expected a string such as FP64, INT64, BYTES, BOOL")
        if not isinstance(data, list):
            raise ApiError(400, f"{where}.data: expected a list of values")
        if len(shape) == 2 and all(isinstance(d, list) for d in data):
            if not all(len(d) == 1 for d in data):
                raise ApiError(400, f"{where}.data: rows of a [rows, 1] tensor must hold one value each")
            data = [d[0] for d in data]
        if len(data) != shape[0]:
            raise ApiError(400, f"{where}.data: {len(data)} values do not match shape {shape}")
        columns[name] = data
    outputs = payload.get("outputs")
    wanted = None
    if outputs is not None:
        if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                    for o in outputs):
            raise ApiError(400, "outputs: expected a list of {\"name\": <output name>}")
        wanted = [o["name"] for o in outputs]
    return columns, wanted, request_id


def check_datatypes(signature: Any, inputs: list[dict[str, Any]]) -> None:
    """Each tensor's datatype must suit its feature's type."""
    for i, t in enumerate(inputs):
        spec = signature.inputs.get(t["name"])
        if spec is None:
            continue  # unknown features are named by the column check
        accepted = ACCEPTED[spec["type"]]
        if t["datatype"] not in accepted:
            raise ApiError(400, f"inputs[{i}] ({t['name']}).datatype: {str(t['datatype'])[:20]} does not suit a "
                                f"{spec['type']} feature; expected {' or '.join(accepted)}")
