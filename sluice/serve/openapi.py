"""The OpenAPI 3.1 document of every endpoint, served at ``GET /openapi.json``.

Example::

    doc = openapi_document(["ctr"])
    doc["paths"]["/v1/models/{name}:predict"]["post"]["requestBody"]
"""

from __future__ import annotations

from typing import Any

import sluice

_VALUE = {"type": ["number", "integer", "string", "boolean", "null"]}
_ROW = {"type": "object", "additionalProperties": _VALUE, "description": "raw feature name -> value"}
_COLUMNS = {"type": "object", "additionalProperties": {"type": "array", "items": _VALUE},
            "description": "raw feature name -> one value per row"}
_ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
_MLFLOW_ERROR = {"type": "object", "required": ["error_code", "message"],
                 "properties": {"error_code": {"type": "string"}, "message": {"type": "string"}}}
_TENSOR = {"type": "object", "required": ["name", "shape", "datatype", "data"],
           "properties": {"name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer"}},
                          "datatype": {"type": "string", "enum": ["BOOL", "INT8", "INT16", "INT32", "INT64", "UINT8",
                                                                   "UINT16", "UINT32", "UINT64", "FP16", "FP32",
                                                                   "FP64", "BYTES"]},
                          "data": {"type": "array", "items": _VALUE}, "parameters": {"type": "object"}}}


def _param(name: str, schema: dict[str, Any] | None = None, where: str = "path") -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "schema": schema or {"type": "string"}}


def _responses(ok: dict[str, Any], error: dict[str, Any] = _ERROR, codes: tuple[int, ...] = (400, 404, 413)
               ) -> dict[str, Any]:
    out: dict[str, Any] = {"200": {"description": "OK", "content": {"application/json": {"schema": ok}}}}
    for code in codes:
        out[str(code)] = {"description": "client error", "content": {"application/json": {"schema": error}}}
    out["401"] = {"description": "missing or invalid bearer token (when tokens are configured)"}
    return out


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def openapi_document(models: list[str] | None = None) -> dict[str, Any]:
    """The OpenAPI document; ``models`` lists the served model names as an enum (or leaves names open)."""
    name = _param("name", {"type": "string", "enum": models} if models else {"type": "string"})
    version = _param("version", {"type": "integer", "minimum": 1})
    label = _param("label")
    predict_body = {"type": "object", "oneOf": [
        {"required": ["instances"], "properties": {"instances": {"type": "array", "items": _ROW, "minItems": 1},
                                                    "signature_name": {"type": "string"}}},
        {"required": ["inputs"], "properties": {"inputs": {"oneOf": [_COLUMNS, {"type": "array", "items": _ROW}]},
                                                 "signature_name": {"type": "string"}}}]}
    predict_ok = {"type": "object", "properties": {"predictions": {"type": "array"}, "outputs": {"type": "object"},
                                                   "model_version": {"type": "string"}}}
    status_ok = {"type": "object", "required": ["model_version_status"],
                 "properties": {"model_version_status": {"type": "array"}}}
    metadata_ok = {"type": "object", "required": ["model_spec", "metadata"]}
    infer_body = {"type": "object", "required": ["inputs"],
                  "properties": {"id": {"type": "string"}, "parameters": {"type": "object"},
                                 "inputs": {"type": "array", "items": _TENSOR, "minItems": 1},
                                 "outputs": {"type": "array", "items": {"type": "object", "required": ["name"],
                                                                        "properties": {"name": {"type": "string"}}}}}}
    infer_ok = {"type": "object", "required": ["model_name", "outputs"],
                "properties": {"model_name": {"type": "string"}, "model_version": {"type": "string"},
                               "id": {"type": "string"}, "outputs": {"type": "array", "items": _TENSOR}}}
    mlflow_body = {"type": "object", "properties": {
        "dataframe_split": {"type": "object", "required": ["columns", "data"],
                            "properties": {"columns": {"type": "array", "items": {"type": "string"}},
                                           "data": {"type": "array", "items": {"type": "array", "items": _VALUE}}}},
        "dataframe_records": {"type": "array", "items": _ROW},
        "instances": {"type": "array", "items": _ROW},
        "inputs": {"oneOf": [_COLUMNS, {"type": "array", "items": _ROW}]},
        "params": {"type": "object"}}}
    paths: dict[str, Any] = {}
    for suffix, params in (("", [name]), ("/versions/{version}", [name, version]),
                           ("/labels/{label}", [name, label])):
        base = "/v1/models/{name}" + suffix
        paths[base + ":predict"] = {"post": {"summary": "TF Serving predict (row or columnar format)",
                                             "parameters": params, "requestBody": _body(predict_body),
                                             "responses": _responses(predict_ok)}}
        paths[base] = {"get": {"summary": "TF Serving model status", "parameters": params,
                               "responses": _responses(status_ok, codes=(404,))}}
        paths[base + "/metadata"] = {"get": {"summary": "TF Serving model metadata (the signature)",
                                             "parameters": params, "responses": _responses(metadata_ok, codes=(404,))}}
    for suffix, params in (("", [name]), ("/versions/{version}", [name, version])):
        base = "/v2/models/{name}" + suffix
        paths[base] = {"get": {"summary": "Open Inference Protocol model metadata", "parameters": params,
                               "responses": _responses({"type": "object", "required": ["name", "inputs"]},
                                                       codes=(404,))}}
        paths[base + "/ready"] = {"get": {"summary": "model readiness", "parameters": params,
                                          "responses": _responses({"type": "object"}, codes=(404,))}}
        paths[base + "/infer"] = {"post": {"summary": "Open Inference Protocol inference", "parameters": params,
                                           "requestBody": _body(infer_body), "responses": _responses(infer_ok)}}
    ok = {"type": "object"}
    paths["/v2"] = {"get": {"summary": "server metadata", "responses": _responses(ok, codes=())}}
    paths["/v2/health/live"] = {"get": {"summary": "liveness", "responses": _responses(ok, codes=())}}
    paths["/v2/health/ready"] = {"get": {"summary": "readiness", "responses": _responses(ok, codes=())}}
    paths["/healthz"] = {"get": {"summary": "health with the default version of each model",
                                 "responses": _responses(ok, codes=())}}
    paths["/invocations"] = {"post": {
        "summary": "MLflow scoring protocol",
        "parameters": [_param("model", {"type": "string"}, "query"),
                       _param("version", {"type": "integer", "minimum": 1}, "query")],
        "requestBody": _body(mlflow_body),
        "responses": _responses({"type": "object", "required": ["predictions"]}, _MLFLOW_ERROR, (400, 404, 413, 415))}}
    paths["/ping"] = {"get": {"summary": "MLflow health", "responses": {"200": {"description": "OK"}}}}
    paths["/version"] = {"get": {"summary": "server version", "responses": {"200": {"description": "OK"}}}}
    paths["/metrics"] = {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "OK"}}}}
    return {"openapi": "3.1.0",
            "info": {"title": "Sluice model server", "version": sluice.__version__,
                     "description": "TF Serving REST, Open Inference Protocol (KServe V2) and MLflow scoring."},
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{}, {"bearer": []}],
            "paths": paths}
