"""Bearer-token auth, the non-loopback rule, request size limits and model roots, over real HTTP."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from sluice.errors import SluiceError
from sluice.serve.config import ModelConfig, ServeConfig
from tests.integration.serving_helpers import build_ctr, running

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_ctr(tmp_path_factory.mktemp("ctr-build"))


def test_bearer_tokens_from_file_and_env(built, tmp_path):
    serving, _, rows, _ = built
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("# one token a line\nfile-token\n")
    args = ["--model-dir", str(serving), "--auth-token-file", str(tokens), "--max-body-bytes", "4096"]
    with running(args, tmp_path / "server.log", env={"SLUICE_SERVE_TOKENS": "env-a, env-b"}) as server:
        url = server.url + "/v1/models/ctr:predict"
        body = {"instances": rows[:1]}
        missing = httpx.post(url, json=body)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == 'Bearer realm="sluice"'
        assert missing.json() == {"error": "missing bearer token: send 'Authorization: Bearer <token>'"}
        wrong = httpx.post(url, json=body, headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"].startswith("invalid bearer token")
        assert httpx.post(url, json=body, headers={"authorization": "Basic file-token"}).status_code == 401
        for token in ("file-token", "env-a", "env-b"):
            ok = httpx.post(url, json=body, headers={"authorization": f"Bearer {token}"})
            assert ok.status_code == 200, (token, ok.text)
        for path in ("/v2/models/ctr", "/metrics", "/openapi.json", "/v1/models/ctr"):
            assert httpx.get(server.url + path).status_code == 401, path
        assert httpx.post(server.url + "/invocations", json=body).status_code == 401
        # probes stay open for orchestrators
        for path in ("/healthz", "/v2/health/live", "/v2/health/ready", "/ping"):
            assert httpx.get(server.url + path).status_code == 200, path
        # the configured size limit
        big = {"instances": rows[:40]}
        response = httpx.post(url, json=big, headers={"authorization": "Bearer env-a"})
        assert response.status_code == 413 and response.json() == {"error": "request body over 4096 bytes"}


def test_non_loopback_bind_without_tokens_is_refused(built, tmp_path):
    serving = built[0]
    done = subprocess.run([sys.executable, "-m", "sluice.cli", "serve", "--model-dir", str(serving),
                           "--host", "0.0.0.0", "--port", "1"], capture_output=True, text=True, timeout=60,
                          env={k: v for k, v in __import__("os").environ.items() if k != "SLUICE_SERVE_TOKENS"})
    assert done.returncode == 2
    assert "binding to 0.0.0.0 (not loopback) needs bearer tokens" in done.stderr


def test_model_folders_only_from_configured_roots(built, tmp_path):
    serving = built[0]
    outside = ServeConfig(models=[ModelConfig("ctr", str(serving / "ctr"))], model_roots=[str(tmp_path)])
    with pytest.raises(SluiceError, match="outside the configured model roots"):
        outside.check()
    # a version folder that is a symlink out of the root is not loaded
    root = tmp_path / "root"
    (root / "ctr").mkdir(parents=True)
    (root / "ctr" / "1").symlink_to(serving / "ctr" / "1")
    from sluice.serve.repository import ModelRepository

    config = ServeConfig(models=[ModelConfig("ctr", str(root / "ctr"))], model_roots=[str(root)])
    config.check()
    with pytest.raises(SluiceError, match="resolves outside the model roots"):
        ModelRepository(config)
