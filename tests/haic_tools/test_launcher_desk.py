"""`haic up` and the review desk (issue 15): without HAIC_REVIEWERS the launcher makes one reviewer once, gives
the gateway its key, and prints the desk's URL that signs in as them; the gateway, configured from exactly the
environment the launcher gives it, accepts that sign-in. No stack is started: the environment and the URL are
what the launcher hands on."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from haic_tools.launcher import LOCAL_REVIEWER, LocalStack, StackPorts, ensure_reviewer
from services.core.settings import GatewayServiceSettings, Settings, load
from services.gateway.app import create_app


def test_a_reviewer_is_made_once_and_the_desk_url_signs_in_as_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HAIC_REVIEWERS", raising=False)
    monkeypatch.delenv("HAIC_API_KEYS", raising=False)
    settings = Settings(data_dir=tmp_path / "haic")
    name, key = ensure_reviewer(settings)
    assert name == LOCAL_REVIEWER and len(key) >= 32
    assert ensure_reviewer(settings) == (name, key)  # kept: the URL printed yesterday still works
    assert (tmp_path / "haic" / "reviewer_key").stat().st_mode & 0o777 == 0o600

    stack = LocalStack(settings, StackPorts.free())
    stack.ensure_keys()
    assert stack.reviewer == (name, key) and stack.api_key != key
    url = urlsplit(stack.desk_url)
    assert f"{url.scheme}://{url.netloc}" == stack.gateway_url and url.path == "/desk/"
    assert url.fragment == f"key={key}"  # in the fragment: never sent to a server, nor logged by one
    assert f"review desk  {stack.desk_url}" in stack.describe().splitlines()

    # the gateway, configured as the launcher starts it, takes the URL's key as a reviewer's
    for variable, value in stack._service_env("gateway").items():
        if variable.startswith("HAIC_"):
            monkeypatch.setenv(variable, value)
    gateway = TestClient(create_app(load(GatewayServiceSettings)))
    signed_in = gateway.post("/desk/session", json={"key": key})
    assert signed_in.status_code == 200 and signed_in.json()["reviewer"] == LOCAL_REVIEWER
    api = gateway.post("/desk/session", json={"key": stack.api_key})
    assert api.status_code == 403 and api.json()["detail"]["code"] == "not_a_reviewer"


def test_configured_reviewers_are_used_as_they_are(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "haic", reviewers=["alice:k1", "bob:k2"], api_keys=["api"])
    stack = LocalStack(settings, StackPorts.free())
    stack.ensure_keys()
    assert stack.reviewer == ("alice", "k1") and stack.desk_url.endswith("/desk/#key=k1")
    assert stack._service_env("gateway")["HAIC_REVIEWERS"] == "alice:k1,bob:k2"
    assert not (tmp_path / "haic" / "reviewer_key").exists()
