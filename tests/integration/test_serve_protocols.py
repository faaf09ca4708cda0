"""The model server over real HTTP with several models and versions: TF Serving (rows, columns, labels),
Open Inference Protocol (V2), MLflow /invocations, OpenAPI, /metrics, the access log, micro-batching."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from sluice.registry.servable import Servable
from tests.integration.serving_helpers import build_ctr, copy_version, running

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    serving, v1, rows, _ = build_ctr(tmp_path_factory.mktemp("ctr-build"))
    root = tmp_path_factory.mktemp("protocols")
    copy_version(root / "serving", "ctr", 1, v1)
    copy_version(root / "serving", "ctr", 2, v1)
    copy_version(root / "serving", "other", 1, v1)
    (root / "serve.yaml").write_text(
        "model_roots: [serving]\nmax_wait_ms: 30\nmodels:\n"
        "  - {name: ctr, path: serving/ctr, versions: {latest: 2}, labels: {stable: 1, canary: 2}}\n"
        "  - {name: other, path: serving/other}\n")
    with running(["--config", str(root / "serve.yaml")], root / "server.log") as server:
        yield server, rows, Servable.load(str(v1))


@pytest.fixture
def client(setup):
    return setup[0].client


@pytest.fixture
def rows(setup):
    return [dict(r) for r in setup[1]]


def probs(predictions):
    return [p["probability"] for p in predictions]


def columns_of(rows):
    return {k: [r.get(k) for r in rows] for k in rows[0]}


# --------------------------------------------------------------------------- TF Serving


def test_versions_and_labels_are_served(client, rows):
    status = client.get("/v1/models/ctr").json()["model_version_status"]
    assert [(s["version"], s["state"]) for s in status] == [("2", "AVAILABLE"), ("1", "AVAILABLE")]
    for path, version in (("/v1/models/ctr:predict", "2"), ("/v1/models/ctr/versions/1:predict", "1"),
                          ("/v1/models/ctr/labels/stable:predict", "1"),
                          ("/v1/models/ctr/labels/canary:predict", "2")):
        response = client.post(path, json={"instances": rows[:2]})
        assert response.status_code == 200 and response.json()["model_version"] == version, (path, response.text)
    assert client.get("/v1/models/ctr/labels/stable").json()["model_version_status"][0]["version"] == "1"
    assert client.get("/v1/models/ctr/labels/canary/metadata").json()["model_spec"]["version"] == "2"
    response = client.post("/v1/models/ctr/labels/prod:predict", json={"instances": rows[:1]})
    assert response.status_code == 404
    assert response.json() == {"error": "model 'ctr' has no label 'prod' (labels: canary, stable)"}


def test_columnar_inputs_give_columnar_outputs(client, rows, setup):
    by_rows = probs(client.post("/v1/models/ctr:predict", json={"instances": rows[:4]}).json()["predictions"])
    response = client.post("/v1/models/ctr:predict", json={"inputs": columns_of(rows[:4])})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"outputs", "model_version"} and set(body["outputs"]) == {"probability"}
    assert body["outputs"]["probability"] == pytest.approx(by_rows, abs=1e-6)
    local = probs(setup[2].predict_rows(rows[:4]))
    assert by_rows == pytest.approx(local, abs=1e-6)


def test_columnar_errors_name_the_field(client, rows):
    def err(inputs):
        response = client.post("/v1/models/ctr:predict", json={"inputs": inputs})
        assert response.status_code == 400, response.text
        return response.json()["error"]

    cols = columns_of(rows[:3])
    assert err(dict(cols, I1=[1.0, "x", 2.0])) == 'inputs.I1[1]: expected a number, got "x"'
    assert err(dict(cols, I1=[1.0])) == "inputs.I1: 1 values, expected 3 (every feature needs one value per row)"
    assert err(dict(cols, C1=[None, "a", "b"])) == "inputs.C1[0]: required feature is missing (expected a string)"
    assert err({k: v for k, v in cols.items() if k != "C1"}) == \
        "inputs.C1: required feature is missing (expected a string)"
    assert err(dict(cols, nope=[1, 2, 3])).startswith("inputs.nope: unknown feature; expected features: ")
    assert err(dict(cols, I1=5)) == "inputs.I1: expected a list of values (one per row), got 5"
    assert err({}) == "'inputs' must be a non-empty object of feature name -> list of values"
    assert err({k: [] for k in cols}) == "'inputs' must hold at least one row"


# --------------------------------------------------------------------------- Open Inference Protocol (V2)


def v2_tensors(rows, signature_inputs):
    types = {"float": "FP64", "int": "INT64", "string": "BYTES", "bool": "BOOL"}
    return [{"name": k, "shape": [len(rows)], "datatype": types[signature_inputs[k]["type"]],
             "data": [r.get(k) for r in rows]} for k in rows[0]]


def test_v2_metadata_ready_and_infer(client, rows, setup):
    inputs = setup[2].signature.inputs
    meta = client.get("/v2/models/ctr").json()
    assert meta["name"] == "ctr" and meta["versions"] == ["1", "2"] and meta["platform"] == "sluice_pytorch"
    assert {"name": "C1", "datatype": "BYTES", "shape": [-1], "parameters": {"required": True}} in meta["inputs"]
    assert meta["outputs"] == [{"name": "probability", "datatype": "FP64", "shape": [-1]}]
    assert client.get("/v2/models/ctr/versions/1").json()["name"] == "ctr"
    assert client.get("/v2/models/ctr/ready").json() == {"name": "ctr", "ready": True}
    assert client.get("/v2/models/ctr/versions/1/ready").json() == {"name": "ctr", "ready": True}
    assert client.get("/v2").json()["name"] == "sluice"
    response = client.post("/v2/models/ctr/versions/1/infer",
                           json={"id": "req-7", "inputs": v2_tensors(rows[:3], inputs)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_name"] == "ctr" and body["model_version"] == "1" and body["id"] == "req-7"
    [out] = body["outputs"]
    assert out["name"] == "probability" and out["datatype"] == "FP64" and out["shape"] == [3]
    assert out["data"] == pytest.approx(probs(setup[2].predict_rows(rows[:3])), abs=1e-6)
    # [n, 1] tensors with nested data are accepted too
    nested = [dict(t, shape=[3, 1], data=[[v] for v in t["data"]]) for t in v2_tensors(rows[:3], inputs)]
    again = client.post("/v2/models/ctr/versions/1/infer", json={"inputs": nested}).json()
    assert again["outputs"][0]["data"] == pytest.approx(out["data"], abs=1e-6) and "id" not in again


def test_v2_errors(client, rows, setup):
    inputs = setup[2].signature.inputs
    good = v2_tensors(rows[:2], inputs)

    def err(body, path="/v2/models/ctr/infer", status=400):
        response = client.post(path, json=body)
        assert response.status_code == status, response.text
        assert set(response.json()) == {"error"}
        return response.json()["error"]

    i1 = next(i for i, t in enumerate(good) if t["name"] == "I1")
    c1 = next(i for i, t in enumerate(good) if t["name"] == "C1")
    bad = [dict(t) for t in good]
    bad[c1]["datatype"] = "FP32"
    assert err({"inputs": bad}) == f"inputs[{c1}] (C1).datatype: FP32 does not suit a string feature; expected BYTES"
    bad = [dict(t) for t in good]
    bad[i1]["shape"] = [3]
    assert err({"inputs": bad}) == f"inputs[{i1}] (I1).data: 2 values do not match shape [3]"
    bad = [dict(t) for t in good]
    bad[i1]["data"] = [1.0, "x"]
    assert err({"inputs": bad}) == 'inputs.I1[1]: expected a number, got "x"'
    assert err({"inputs": [t for t in good if t["name"] != "C1"]}) == \
        "inputs.C1: required feature is missing (expected a string)"
    assert err({"inputs": []}) == "inputs: expected a non-empty list of tensors {name, shape, datatype, data}"
    assert err({"inputs": [{"name": "I1"}]}) == "inputs[0].shape: required tensor field is missing"
    assert err({"inputs": good, "outputs": [{"name": "logit"}]}) == \
        "outputs: unknown output 'logit'; this model has probability"
    assert err({"inputs": good}, "/v2/models/nope/infer", 404) == "model 'nope' not found; serving: ctr, other"
    assert err({"inputs": good}, "/v2/models/ctr/versions/9/infer", 404) == \
        "model 'ctr' version 9 is not loaded (loaded versions: 1, 2)"
    assert err({"inputs": good}, "/v2/models/ctr/versions/x/infer", 404) == \
        "model version must be a positive integer, got 'x'"
    response = client.post("/v2/models/ctr/infer", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"].startswith("request body is not valid JSON")
    assert client.get("/v2/models/nope/ready").status_code == 404


# --------------------------------------------------------------------------- MLflow scoring protocol


def test_mlflow_invocations_all_formats(client, rows, setup):
    expected = probs(setup[2].predict_rows(rows[:3]))
    cols = sorted(rows[0])
    bodies = [{"dataframe_split": {"columns": cols, "data": [[r[c] for c in cols] for r in rows[:3]]}},
              {"dataframe_records": rows[:3]}, {"instances": rows[:3]}, {"inputs": columns_of(rows[:3])},
              {"inputs": rows[:3]}]
    for body in bodies:
        response = client.post("/invocations?model=ctr&version=1", json=body)
        assert response.status_code == 200, (list(body), response.text)
        assert set(response.json()) == {"predictions"}
        assert probs(response.json()["predictions"]) == pytest.approx(expected, abs=1e-6), list(body)
    assert client.get("/ping").status_code == 200
    assert client.get("/version").text == "0.1.0"


def test_mlflow_errors_have_mlflow_shape(client, rows):
    def err(body, path="/invocations?model=ctr", status=400, **kw):
        response = client.post(path, json=body, **kw) if body is not None else client.post(path, **kw)
        assert response.status_code == status, response.text
        assert set(response.json()) == {"error_code", "message"}, response.text
        return response.json()

    assert err({"instances": rows[:1]}, "/invocations")["message"] == \
        "several models are served (ctr, other): choose one with ?model=<name>"
    both = err({"instances": rows[:1], "inputs": rows[:1]})
    assert both == {"error_code": "BAD_REQUEST", "message": "the input must be a JSON object with exactly one of "
                    "the fields dataframe_split, dataframe_records, instances, inputs (got instances, inputs)"}
    assert err({"dataframe_split": {"columns": ["I1"], "data": [[1, 2]]}})["message"] == \
        "dataframe_split.data[0]: expected a list of 1 values (one per column)"
    assert err({"dataframe_records": [dict(rows[0], I1="x")]})["message"] == \
        'dataframe_records[0].I1: expected a number, got "x"'
    assert err({"instances": rows[:1]}, "/invocations?model=nope", 404)["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    unsupported = err(None, status=415, content=b"a,b\n1,2", headers={"content-type": "text/csv"})
    assert unsupported["message"] == "content type 'text/csv' is not supported; send application/json"


# --------------------------------------------------------------------------- OpenAPI, metrics, access log, batching


def test_openapi_document_covers_every_endpoint(client):
    doc = client.get("/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    for path in ("/v1/models/{name}:predict", "/v1/models/{name}/versions/{version}:predict",
                 "/v1/models/{name}/labels/{label}:predict", "/v1/models/{name}", "/v1/models/{name}/metadata",
                 "/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer", "/v2/models/{name}/ready",
                 "/v2/health/live", "/v2/health/ready", "/invocations", "/metrics"):
        assert path in doc["paths"], path
    name = doc["paths"]["/v1/models/{name}:predict"]["post"]["parameters"][0]
    assert name["schema"]["enum"] == ["ctr", "other"]


def test_concurrent_requests_are_micro_batched_and_counted(setup, rows):
    server = setup[0]

    def one(i):
        import httpx

        return httpx.post(server.url + "/v1/models/other:predict", json={"instances": [rows[i % 50]]}, timeout=30)

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(one, range(48)))
    assert all(r.status_code == 200 for r in responses)
    text = server.client.get("/metrics").text

    def sample(metric, **labels):
        for name, found, value in re.findall(r"^(\w+)\{([^}]*)\} (\S+)$", text, re.M):
            if name == metric and dict(re.findall(r'(\w+)="([^"]*)"', found)) == labels:
                return float(value)
        raise AssertionError(f"no {metric} {labels} in:\n{text[:3000]}")

    assert sample("sluice_requests_total", model="other", version="1", protocol="tfserving", code="200") == 48
    assert sample("sluice_batch_size_rows_sum", model="other", version="1") == 48
    batches = sample("sluice_batch_size_rows_count", model="other", version="1")
    assert batches < 48, "concurrent single-row requests should share model calls"
    assert sample("sluice_request_latency_seconds_count", model="other", version="1", protocol="tfserving") == 48
    bad = server.client.post("/v1/models/other:predict", json={"instances": [{"I1": "x"}]})
    assert bad.status_code == 400
    text = server.client.get("/metrics").text
    assert sample("sluice_request_errors_total", model="other", version="1", protocol="tfserving", code="400") == 1
    assert sample("sluice_model_version_loaded", model="ctr", version="2") == 1
    # the structured access log: one JSON line per request
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith('{"ts"')]
    predicted = [line for line in lines if line["path"] == "/v1/models/other:predict" and line["status"] == 200]
    assert len(predicted) == 48
    assert predicted[0]["model"] == "other" and predicted[0]["version"] == "1" and predicted[0]["rows"] == 1
    assert predicted[0]["protocol"] == "tfserving" and predicted[0]["ms"] > 0 and predicted[0]["client"] == "127.0.0.1"


def test_unknown_paths_and_methods_are_json_4xx(client):
    response = client.get("/nothing")
    assert response.status_code == 404
    assert response.json() == {"error": "no endpoint GET /nothing; see GET /openapi.json"}
    response = client.delete("/v1/models/ctr")
    assert response.status_code == 405 and "allow" in response.headers
    assert response.json() == {"error": "method DELETE not allowed on /v1/models/ctr"}
    assert client.get("/v2/models/ctr/infer").status_code == 405
