"""API keys: refused start without keys, 401 with a reason, open health and docs endpoints.

These requests never reach the runtime (no lifespan), so no broker is needed.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from services.core.settings import Settings
from services.gateway.app import create_app
from services.gateway.auth import ApiKeys
from services.gateway.errors import GatewayConfigError

from .conftest import API_KEY


@pytest.fixture
def client(make_settings: Callable[..., Settings]) -> TestClient:
    return TestClient(create_app(make_settings(api_keys=[API_KEY, "second-key"])))


def test_gateway_refuses_to_start_without_keys(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(GatewayConfigError, match="HAIC_API_KEYS"):
        create_app(make_settings(api_keys=[]))
    with pytest.raises(GatewayConfigError, match="HAIC_API_KEYS"):
        ApiKeys([" ", ""])


def test_keys_come_comma_separated_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAIC_API_KEYS", "alpha, beta,,")
    keys = ApiKeys(Settings().api_keys)
    assert keys.accepts("alpha") and keys.accepts("beta")
    assert not keys.accepts("gamma") and not keys.accepts("alph") and not keys.accepts("")


def test_unknown_final_stage_is_a_config_error(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(GatewayConfigError, match="HAIC_CATALOG_FINAL_STAGE"):
        create_app(make_settings(api_keys=[API_KEY], catalog_final_stage="captions"))


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing_api_key"),
        ({"Authorization": "Bearer wrong-key"}, "invalid_api_key"),
        ({"Authorization": f"Bearer {API_KEY}x"}, "invalid_api_key"),
    ],
)
@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/videos"), ("GET", "/v1/videos"), ("GET", "/v1/clips/c")])
def test_api_requires_a_valid_key(client: TestClient, method: str, path: str, headers: dict, code: str) -> None:
    response = client.request(method, path, headers=headers)
    assert response.status_code == 401
    assert response.json()["detail"]["code"] == code
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_valid_key_passes_authentication(client: TestClient) -> None:
    # without the lifespan the runtime is absent: getting past auth shows up as 503 "starting"
    for key in (API_KEY, "second-key"):
        response = client.get("/v1/videos", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 503
        assert response.json()["detail"]["code"] == "starting"


def test_health_and_docs_are_open(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/docs").status_code == 200
    assert client.get("/metrics").status_code == 200
    assert "haic_gateway_uploads_total" in client.get("/metrics").text


def test_openapi_declares_the_multipart_upload_and_bearer_auth(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/videos"]["post"]["requestBody"]
    schema = body["content"]["multipart/form-data"]["schema"]
    assert schema["required"] == ["file"]
    assert schema["properties"]["file"]["format"] == "binary"
    assert set(schema["properties"]) == {"file", "description", "source_url", "external_id", "batch"}
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "/v1/videos/{video_id}/events" in spec["paths"]
