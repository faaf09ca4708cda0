"""The model server over real HTTP: `sluice serve` in a subprocess, every endpoint and every error.

One small CTR servable is trained once per module (20,000 rows, 2 epochs, a few seconds);
one server serves it for the whole module. Client input must never cause a 500.
"""

from __future__ import annotations

import glob
import json
import math
import os
import random
import shutil
import time
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from sluice.artifacts import ArtifactStore
from sluice.metadata import MetadataStore
from sluice.registry.push import write_version
from sluice.registry.servable import Servable, Signature
from sluice.runner import LocalRunner
from sluice.runner.pipeline_file import load_pipeline
from sluice.serve.server import MAX_BODY_BYTES
from tests.integration.serving_helpers import ServerProcess

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PREDICT = "/v1/models/ctr:predict"


# --------------------------------------------------------------------------- helpers


def start(model_dir: Path, log_path: Path) -> ServerProcess:
    server = ServerProcess(["--model-dir", str(model_dir)], log_path)
    try:
        server.wait_healthy()
    except BaseException:
        server.stop()
        raise
    return server


def json_row(row: dict) -> dict:
    """An Arrow row as a JSON request row: NaN/None numerics become null."""
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Train and push one CTR servable; return (serving dir, version dir, raw eval rows)."""
    root = tmp_path_factory.mktemp("server")
    serving = root / "serving"
    pipeline, params, _ = load_pipeline(str(REPO / "examples" / "ctr" / "pipeline.py"),
                                        {"rows": "20000", "epochs": "2", "serving_dir": str(serving)})
    runner = LocalRunner(MetadataStore.open(str(root / ".sluice" / "metadata.db")),
                         ArtifactStore(str(root / ".sluice" / "artifacts")), progress=False,
                         log_dir=str(root / ".sluice" / "logs"))
    result = runner.run(pipeline, params)
    assert result.status == "succeeded", {n: s.error for n, s in result.steps.items() if s.error}
    assert result.output("Pusher", "pushed_model").properties["pushed"] is True
    version_dir = serving / "ctr" / "1"
    inputs = Servable.load(str(version_dir)).signature.inputs
    eval_files = sorted(glob.glob(os.path.join(result.output("ExampleGen", "examples").path, "eval", "*.parquet")))
    table = pq.read_table(eval_files).select(sorted(inputs)).slice(0, 50)
    return serving, version_dir, [json_row(r) for r in table.to_pylist()]


@pytest.fixture(scope="module")
def server(built, tmp_path_factory):
    serving, _, _ = built
    srv = start(serving, tmp_path_factory.mktemp("server-log") / "server.log")
    yield srv
    srv.stop()


@pytest.fixture
def client(server) -> httpx.Client:
    return server.client


@pytest.fixture
def rows(built) -> list[dict]:
    return [dict(r) for r in built[2]]


def predict(client: httpx.Client, payload, path: str = PREDICT) -> httpx.Response:
    if isinstance(payload, (bytes, str)):
        return client.post(path, content=payload, headers={"content-type": "application/json"})
    return client.post(path, json=payload)


def error_of(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


# --------------------------------------------------------------------------- status, metadata, health


def test_model_status_has_tf_serving_shape(client):
    expected = {"model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}]}
    assert client.get("/v1/models/ctr").json() == expected
    assert client.get("/v1/models/ctr/versions/1").json() == expected


def test_metadata_is_the_pushed_signature(client, built):
    signature = json.loads((built[1] / "signature.json").read_text())
    assert signature["task"] == "binary" and signature["label"] == "label"
    assert "label" not in signature["inputs"] and signature["inputs"]["C1"] == {"type": "string", "required": True}
    assert signature["inputs"]["I2"] == {"type": "float", "required": False}
    expected = {"model_spec": {"name": "ctr", "version": "1"}, "metadata": {"signature": signature}}
    for path in ("/v1/models/ctr/metadata", "/v1/models/ctr/versions/1/metadata"):
        response = client.get(path)
        assert response.status_code == 200 and response.json() == expected, path


def test_health_endpoints(client):
    assert client.get("/healthz").json() == {"status": "ok", "models": {"ctr": 1}}
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}


def test_unknown_model_version_and_verb_are_404(client, rows):
    assert error_of(client.get("/v1/models/nope"), 404) == "model 'nope' not found; serving: ctr"
    assert error_of(predict(client, {"instances": rows[:1]}, "/v1/models/nope:predict"), 404) == \
        "model 'nope' not found; serving: ctr"
    not_loaded = "model 'ctr' version 7 is not loaded (loaded versions: 1)"
    assert error_of(client.get("/v1/models/ctr/versions/7"), 404) == not_loaded
    assert error_of(client.get("/v1/models/ctr/versions/7/metadata"), 404) == not_loaded
    assert error_of(predict(client, {"instances": rows[:1]}, "/v1/models/ctr/versions/7:predict"), 404) == \
        not_loaded
    assert error_of(predict(client, {"instances": rows[:1]}, "/v1/models/ctr:classify"), 404) == \
        "unknown endpoint; POST /v1/models/{name}:predict"
    assert error_of(client.get("/v1/models/ctr:predict"), 404) == "unknown endpoint ':predict' (use POST ...:predict)"
    assert client.get("/v2/nothing").status_code == 404


# --------------------------------------------------------------------------- predict


def test_predict_returns_one_probability_per_instance(client, built, rows):
    response = predict(client, {"instances": rows[:5]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"predictions", "model_version"} and body["model_version"] == "1"
    assert len(body["predictions"]) == 5
    probabilities = [p["probability"] for p in body["predictions"]]
    assert all(set(p) == {"probability"} for p in body["predictions"])
    assert all(0.0 < p < 1.0 for p in probabilities)
    # Same numbers as the in-process servable, and one row alone scores as in a batch.
    local = Servable.load(str(built[1])).predict_rows(rows[:5])
    assert probabilities == pytest.approx([p["probability"] for p in local], abs=1e-6)
    alone = predict(client, {"instances": rows[3:4]}).json()["predictions"][0]["probability"]
    assert alone == pytest.approx(probabilities[3], abs=1e-6)
    by_version = predict(client, {"instances": rows[:5]}, "/v1/models/ctr/versions/1:predict").json()
    assert [p["probability"] for p in by_version["predictions"]] == pytest.approx(probabilities, abs=1e-6)


def test_optional_feature_may_be_null_or_absent(client, rows):
    row = dict(rows[0], I2=None)
    absent = {k: v for k, v in row.items() if k != "I2"}
    response = predict(client, {"instances": [row, absent]})
    assert response.status_code == 200, response.text
    first, second = (p["probability"] for p in response.json()["predictions"])
    assert first == pytest.approx(second, abs=1e-6)  # float32: rows of one batch may round differently


# --------------------------------------------------------------------------- 400s that name the field


def test_missing_required_feature_is_named(client, rows):
    row = {k: v for k, v in rows[0].items() if k != "C1"}
    assert error_of(predict(client, {"instances": [row]}), 400) == \
        "instances[0].C1: required feature is missing (expected a string)"
    assert error_of(predict(client, {"instances": [rows[0], dict(rows[1], I1=None)]}), 400) == \
        "instances[1].I1: required feature is missing (expected a float)"


def test_wrong_type_is_named(client, rows):
    assert error_of(predict(client, {"instances": [dict(rows[0], I1="abc")]}), 400) == \
        'instances[0].I1: expected a number, got "abc"'
    assert error_of(predict(client, {"instances": [rows[0], dict(rows[1], I5=True)]}), 400) == \
        "instances[1].I5: expected a number, got true"
    assert error_of(predict(client, {"instances": [dict(rows[0], C3={"a": 1})]}), 400) == \
        'instances[0].C3: expected a string, got {"a": 1}'
    # A mistyped field is named before a missing one.
    row = {k: v for k, v in rows[0].items() if k != "C1"}
    assert error_of(predict(client, {"instances": [dict(row, I4=[1])]}), 400) == \
        "instances[0].I4: expected a number, got [1]"


def test_unknown_feature_is_named(client, rows):
    message = error_of(predict(client, {"instances": [dict(rows[0], bogus=1)]}), 400)
    assert message.startswith("instances[0].bogus: unknown feature; expected features: ")
    assert "C1" in message.split(": ", 2)[2].split(", ")
    # The label is not an input.
    assert error_of(predict(client, {"instances": [dict(rows[0], label=1)]}), 400).startswith(
        "instances[0].label: unknown feature")


def test_instances_must_be_a_non_empty_list_of_objects(client, rows):
    expected = "'instances' must be a non-empty list of objects"
    for bad in ({"a": 1}, [], "rows", 3, None):
        assert error_of(predict(client, {"instances": bad}), 400) == expected, bad
    assert error_of(predict(client, {"instances": [rows[0], None]}), 400) == \
        "instances[1] must be an object of feature values, got NoneType"
    assert error_of(predict(client, {"instances": [[1, 2]]}), 400) == \
        "instances[0] must be an object of feature values, got list"


def test_body_must_be_a_json_object_with_instances(client, rows):
    assert error_of(predict(client, b"not json"), 400) == \
        "request body is not valid JSON: Expecting value: line 1 column 1 (char 0)"
    assert error_of(predict(client, b""), 400).startswith("request body is not valid JSON: Expecting value")
    assert error_of(predict(client, b"\xff\xfe{"), 400).startswith("request body is not valid JSON: ")
    assert error_of(predict(client, b'{"instances": [1'), 400).startswith("request body is not valid JSON: ")
    expected = "request body must be a JSON object with 'instances' (row format) or 'inputs' (columnar format)"
    assert error_of(predict(client, {"rows": rows[:1]}), 400) == expected
    assert error_of(predict(client, {"instances": rows[:1], "inputs": rows[:1]}), 400) == \
        "send either 'instances' (row format) or 'inputs' (columnar format), not both"
    assert error_of(predict(client, [rows[0]]), 400) == expected
    assert error_of(predict(client, b'"instances"'), 400) == expected


def test_non_finite_and_oversized_numbers_are_400_not_500(client, rows):
    """Regressions: each of these was a 500 (NaN in the JSON response, OverflowError, ValueError, RecursionError)."""
    body = json.dumps({"instances": [dict(rows[0], I2="__X__")]})

    def with_i2(token: str) -> httpx.Response:
        return predict(client, body.replace('"__X__"', token).encode())

    for token in ("Infinity", "-Infinity", "NaN"):
        assert error_of(with_i2(token), 400) == \
            f"request body is not valid JSON: {token} is not valid JSON (send null for a missing value)"
    assert error_of(with_i2("1e400"), 400) == "instances[0].I2: expected a finite number, got Infinity"
    message = error_of(with_i2("1" + "0" * 400), 400)
    assert message.startswith("instances[0].I2: expected a finite number, got 1000") and message.endswith("...")
    assert len(message) < 200
    assert error_of(with_i2("1" + "0" * 5000), 400).startswith(
        "request body is not valid JSON: Exceeds the limit (4300 digits)")
    deep = 100_000
    assert error_of(predict(client, ("[" * deep + "]" * deep).encode()), 400).startswith(
        "request body is not valid JSON: maximum recursion depth exceeded")
    # Large but finite numbers are fine.
    assert with_i2("1e300").status_code == 200
    assert with_i2("-1e300").status_code == 200


def test_body_over_the_limit_is_413_and_the_server_lives_on(client, rows):
    assert MAX_BODY_BYTES == 16 * 1024 * 1024
    expected = f"request body over {MAX_BODY_BYTES} bytes"
    assert error_of(predict(client, b" " * (MAX_BODY_BYTES + 1)), 413) == expected

    def chunks():  # no Content-Length: the server counts while reading
        for _ in range(17):
            yield b" " * (1024 * 1024)

    response = client.post(PREDICT, content=chunks(), headers={"content-type": "application/json"})
    assert error_of(response, 413) == expected
    # Exactly at the limit is read and parsed.
    at_limit = b'{"instances": []}'.ljust(MAX_BODY_BYTES, b" ")
    assert error_of(predict(client, at_limit), 400) == "'instances' must be a non-empty list of objects"
    assert predict(client, {"instances": rows[:1]}).status_code == 200


# --------------------------------------------------------------------------- fuzzing


def _weird_value(rng: random.Random):
    """A value of a random shape, or a raw JSON token (marked with the '__RAW__' prefix)."""
    choices = [
        None, True, False, 0, -1, 3.5, -2.25, 10**18, -(10**30), 1e308, "", "abc", "1.5", "é漢字\u0000",
        "x" * 5000, [], [1, 2], {}, {"nested": {"deeper": [1, {"x": None}]}}, [[[[[]]]]],
        "__RAW__1e999", "__RAW__-1e999", "__RAW__" + "9" * 500, "__RAW__NaN", "__RAW__Infinity",
        "__RAW__" + "[" * 60 + "]" * 60, "__RAW__1.0e-400",
    ]
    return rng.choice(choices)


def _fuzz_payload(rng: random.Random, rows: list[dict]) -> bytes:
    kind = rng.randrange(9)
    raw: list[str] = []

    def value():
        v = _weird_value(rng)
        if isinstance(v, str) and v.startswith("__RAW__"):
            raw.append(v[len("__RAW__"):])
            return f"__RAW{len(raw) - 1}__"
        return v

    batch = [dict(r) for r in rng.sample(rows, rng.randint(1, 4))]
    if kind <= 2:  # weird values in place of some features
        for row in batch:
            for key in rng.sample(sorted(row), rng.randint(1, 3)):
                row[key] = value()
        payload = {"instances": batch}
    elif kind == 3:  # null / non-object rows among good ones
        batch[rng.randrange(len(batch))] = value()
        payload = {"instances": batch}
    elif kind == 4:  # features removed or added
        row = batch[0]
        for key in rng.sample(sorted(row), rng.randint(1, 5)):
            del row[key]
        if rng.random() < 0.5:
            row[rng.choice(["extra", "C99", "i1", ""])] = value()
        payload = {"instances": batch}
    elif kind == 5:  # 'instances' of the wrong shape, or missing
        payload = rng.choice([{"instances": value()}, {"instance": batch}, value(), [batch]])
    elif kind == 6:  # a valid request (it must still be 200 among all the others)
        payload = {"instances": batch}
    else:  # a valid request cut short or with bytes flipped
        text = json.dumps({"instances": batch}).encode()
        if kind == 7:
            return text[: rng.randrange(len(text))]
        data = bytearray(text)
        for _ in range(rng.randint(1, 5)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    text = json.dumps(payload)
    for i, token in enumerate(raw):
        text = text.replace(f'"__RAW{i}__"', token)
    return text.encode()


def test_fuzzed_requests_never_cause_a_500(client, rows):
    rng = random.Random(20240617)
    statuses: dict[int, int] = {}
    for i in range(200):
        body = _fuzz_payload(rng, rows[:20])
        response = predict(client, body)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code == 200 or 400 <= response.status_code < 500, \
            f"payload #{i} -> {response.status_code} {response.text[:300]}\n{body[:500]!r}"
        payload = response.json()
        if response.status_code == 200:
            assert all(0.0 <= p["probability"] <= 1.0 for p in payload["predictions"])
        else:
            assert set(payload) == {"error"} and payload["error"]
    assert set(statuses) <= {200, 400}, statuses
    assert statuses.get(200, 0) >= 20 and statuses.get(400, 0) >= 100, statuses
    assert client.get("/healthz").status_code == 200


# --------------------------------------------------------------------------- new versions


def test_new_version_pushed_while_serving_is_picked_up(built, rows, tmp_path):
    """`sluice serve` re-scans the model folder every 2 s: a pushed version replaces the loaded one;
    a broken version folder is reported and the loaded version keeps serving."""
    serving = tmp_path / "serving"
    shutil.copytree(built[0], serving)
    v1 = serving / "ctr" / "1"
    server = start(serving, tmp_path / "server.log")
    try:
        before = predict(server.client, {"instances": rows[:3]}).json()["predictions"]
        signature = Signature.from_dict(json.loads((v1 / "signature.json").read_text()))
        write_version(str(serving), "ctr", 2, str(v1 / "model"), str(v1 / "transform"), signature)

        def wait_for(condition, what: str, timeout: float = 20.0) -> None:
            deadline = time.monotonic() + timeout
            while not condition():
                assert time.monotonic() < deadline, f"{what} within {timeout} s:\n{server.log()}"
                time.sleep(0.2)

        wait_for(lambda: server.client.get("/v1/models/ctr").json()["model_version_status"][0]["version"] == "2",
                 "version 2 loaded")
        assert "now serving ctr v2" in server.log()
        assert server.client.get("/healthz").json() == {"status": "ok", "models": {"ctr": 2}}
        # Only the newest version is loaded.
        assert error_of(server.client.get("/v1/models/ctr/versions/1"), 404) == \
            "model 'ctr' version 1 is not loaded (loaded versions: 2)"
        after = predict(server.client, {"instances": rows[:3]}, "/v1/models/ctr/versions/2:predict").json()
        assert after["model_version"] == "2"
        assert [p["probability"] for p in after["predictions"]] == \
            pytest.approx([p["probability"] for p in before], abs=1e-6)

        # A version folder with a signature but no model (not written by the Pusher) does not take over.
        broken = serving / "ctr" / "3"
        broken.mkdir()
        shutil.copy(v1 / "signature.json", broken / "signature.json")
        wait_for(lambda: "loading ctr version 3 failed" in server.log(), "the failed load reported")
        assert "still serving the loaded versions (2)" in server.log()
        status = server.client.get("/v1/models/ctr").json()["model_version_status"]
        assert [(s["version"], s["state"]) for s in status] == [("3", "END"), ("2", "AVAILABLE")]
        assert status[0]["status"]["error_code"] == "UNKNOWN" and status[0]["status"]["error_message"]
        assert server.client.get("/healthz").json() == {"status": "ok", "models": {"ctr": 2}}
        assert predict(server.client, {"instances": rows[:1]}).status_code == 200
    finally:
        server.stop()
