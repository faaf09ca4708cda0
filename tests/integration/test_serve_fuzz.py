"""Property-based fuzzing against the server's own OpenAPI document: no input gives a 5xx.

Bodies come from each operation's request schema (a small JSON-schema -> strategy translation
below: hypothesis-jsonschema relies on Hypothesis internals that changed), from any JSON at
all, and from valid rows with random values swapped in; path parameters from their schemas
and from arbitrary text. Every response must be a 2xx or 4xx with a JSON error body.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.serving_helpers import build_ctr, running

pytestmark = pytest.mark.slow

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20)


_SCALARS = {"null": st.none(), "boolean": st.booleans(), "integer": st.integers(-(10**20), 10**20),
            "number": st.floats(allow_nan=False, allow_infinity=False) | st.integers(-100, 100),
            "string": st.text(max_size=16)}


def from_schema(schema: dict) -> st.SearchStrategy:
    """Values matching the subset of JSON Schema the server's OpenAPI document uses."""
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "oneOf" in schema:
        base = {k: v for k, v in schema.items() if k != "oneOf"}
        return st.one_of([from_schema({**base, **option}) for option in schema["oneOf"]])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([from_schema({**schema, "type": k}) for k in kind])
    if kind == "integer" and "minimum" in schema:
        return st.integers(schema["minimum"], schema["minimum"] + 2)
    if kind in _SCALARS:
        return _SCALARS[kind]
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {})), min_size=schema.get("minItems", 0), max_size=4)
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = {k: from_schema(props.get(k, {})) for k in schema.get("required", [])}
        optional = {k: from_schema(v) for k, v in props.items() if k not in required}
        fixed = st.fixed_dictionaries(required, optional=optional)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            return st.tuples(fixed, st.dictionaries(st.text(max_size=6), from_schema(extra), max_size=3)).map(
                lambda pair: {**pair[1], **pair[0]})
        return fixed
    return JSON


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    serving, _, rows, _ = build_ctr(tmp_path_factory.mktemp("ctr-build"))
    root = tmp_path_factory.mktemp("fuzz")
    with running(["--model-dir", str(serving), "--no-access-log"], root / "server.log") as srv:
        yield srv, rows


def _operations(doc: dict) -> list[tuple[str, str, dict]]:
    return [(path, method, op) for path, item in doc["paths"].items() for method, op in item.items()
            if path != "/metrics"]


def _fill(path: str, op: dict, draw) -> tuple[str, dict]:
    query = {}
    for p in op.get("parameters", []):
        schema = p["schema"]
        junk = draw(st.integers(0, 4)) == 0  # mostly valid parameters, so bodies reach validation
        value = draw(st.one_of(st.text(max_size=12), st.integers(-5, 10**20)) if junk else from_schema(schema))
        if p["in"] == "path":
            path = path.replace("{" + p["name"] + "}", quote(str(value), safe=""))
        elif draw(st.booleans()):
            query[p["name"]] = str(value)
    return path, query


@st.composite
def _row_bodies(draw, rows: list[dict]):
    """Valid rows with a few values swapped for random JSON, in every body format."""
    batch = [dict(r) for r in rows[: draw(st.integers(1, 3))]]
    for row in batch:
        for key in draw(st.lists(st.sampled_from(sorted(row)), max_size=3)):
            row[key] = draw(JSON)
    kind = draw(st.sampled_from(["instances", "inputs", "dataframe_records", "columns", "v2"]))
    if kind == "columns":
        return {"inputs": {k: [r.get(k) for r in batch] for k in batch[0]}}
    if kind == "v2":
        dtype = draw(st.sampled_from(["FP64", "INT64", "BYTES", "BOOL", "FP32"]))
        return {"inputs": [{"name": k, "shape": [len(batch)], "datatype": dtype, "data": [r.get(k) for r in batch]}
                           for k in batch[0]]}
    return {kind: batch}


def test_no_input_gives_a_5xx(server):
    srv, rows = server
    doc = srv.client.get("/openapi.json").json()
    ops = _operations(doc)
    assert len(ops) >= 20
    seen: dict[int, int] = {}

    @st.composite
    def request(draw):
        path, method, op = draw(st.sampled_from(ops))
        url, query = _fill(path, op, draw)
        body = None
        if "requestBody" in op:
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            body = draw(st.one_of(from_schema(schema), JSON, _row_bodies(rows)))
        return method, url, query, body

    @settings(max_examples=300, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    @given(request())
    def check(req):
        method, url, query, body = req
        content = json.dumps(body).encode() if body is not None else None
        response = srv.client.request(method.upper(), url, params=query, content=content,
                                      headers={"content-type": "application/json"})
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500, (method, url, query, body, response.text[:500])
        if response.status_code >= 400 and response.status_code != 405:
            payload = response.json() if response.headers.get("content-type", "").startswith("application/json") \
                else None
            assert payload is None or "error" in payload or "message" in payload, response.text[:300]

    check()
    assert seen.get(200, 0) >= 10 and seen.get(400, 0) >= 50 and seen.get(404, 0) >= 5, seen
    assert srv.client.get("/healthz").status_code == 200
