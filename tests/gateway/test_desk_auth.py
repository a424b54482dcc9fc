"""The review desk's sign-in and its protection (issue 15): reviewer keys, the haic_desk session cookie, the CSRF
token and Origin checks of requests that change state, and the security headers of every /desk answer.

The gateway runs for real (catalog consumer on a real broker); `require_caller` is also called directly with
requests of every shape, so its decisions are checked whatever routes carry it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest
from fastapi import FastAPI
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.testclient import TestClient
from starlette.requests import Request

from services.core.settings import Settings
from services.gateway.app import create_app
from services.gateway.auth import (
    CSRF_HEADER,
    SESSION_COOKIE,
    ApiKeys,
    Caller,
    ForbiddenError,
    require_caller,
    require_reviewer,
)
from services.gateway.desk import CONTENT_SECURITY_POLICY
from services.gateway.errors import AuthenticationError

from .conftest import API_KEY, AUTH, running_gateway

pytestmark = pytest.mark.kafka

ALICE_KEY = "alice-key-0123"
BOB_KEY = "bob-key-4567"
ORIGIN = "http://testserver"  # TestClient's base URL: the gateway's own origin in these tests


@pytest.fixture
def desk_settings(gateway_settings: Settings) -> Settings:
    return gateway_settings.model_copy(update={"reviewers": [f"alice:{ALICE_KEY}", f"bob:{BOB_KEY}"]})


@pytest.fixture
def desk(desk_settings: Settings) -> Iterator[TestClient]:
    with running_gateway(desk_settings) as client:
        yield client


def _sign_in(client: TestClient, key: str = ALICE_KEY) -> dict:
    response = client.post("/desk/session", json={"key": key})
    assert response.status_code == 200, response.text
    return response.json()


def test_sign_in_session_and_sign_out(desk: TestClient) -> None:
    assert desk.get("/desk/session").status_code == 401  # not signed in
    signed_in = desk.post("/desk/session", json={"key": ALICE_KEY}, headers={"Origin": ORIGIN})
    assert signed_in.status_code == 200
    body = signed_in.json()
    assert body["reviewer"] == "alice" and len(body["csrf_token"]) >= 32
    cookie = signed_in.headers["set-cookie"]
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert cookie.startswith(f"{SESSION_COOKIE}=") and {"httponly", "path", "max-age", "samesite"} <= attributes
    assert "samesite=strict" in cookie.lower() and "path=/" in cookie.lower() and "max-age=43200" in cookie.lower()
    assert "secure" not in attributes  # plain http on 127.0.0.1 (`haic up`) must keep the cookie
    assert signed_in.headers["cache-control"] == "no-store"
    session_id = desk.cookies[SESSION_COOKIE]
    assert ALICE_KEY not in session_id and body["csrf_token"] not in session_id

    # a reload gets the same session and token back
    again = desk.get("/desk/session")
    assert again.status_code == 200 and again.json() == body

    # signing out is a state change: the CSRF header is needed
    refused = desk.delete("/desk/session")
    assert refused.status_code == 403 and refused.json()["detail"]["code"] == "csrf_failed"
    assert desk.get("/desk/session").status_code == 200
    out = desk.delete("/desk/session", headers={CSRF_HEADER: body["csrf_token"], "Origin": ORIGIN})
    assert out.status_code == 204 and SESSION_COOKIE not in desk.cookies
    # the old cookie is worthless now, even sent again by hand
    stale = desk.get("/desk/session", headers={"Cookie": f"{SESSION_COOKIE}={session_id}"})
    assert stale.status_code == 401


def test_a_new_sign_in_ends_the_previous_session(desk: TestClient) -> None:
    first = _sign_in(desk)
    first_id = desk.cookies[SESSION_COOKIE]
    second = _sign_in(desk, BOB_KEY)
    assert second["reviewer"] == "bob" and second["csrf_token"] != first["csrf_token"]
    desk.cookies.clear()
    assert desk.get("/desk/session", headers={"Cookie": f"{SESSION_COOKIE}={first_id}"}).status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"key": "not-a-key"}, 401, "invalid_api_key"),
        ({"key": ALICE_KEY + "x"}, 401, "invalid_api_key"),
        ({"key": API_KEY}, 403, "not_a_reviewer"),  # an API key without the reviewer role
    ],
)
def test_sign_in_refusals(desk: TestClient, body: dict, status: int, code: str) -> None:
    response = desk.post("/desk/session", json=body)
    assert response.status_code == status and response.json()["detail"]["code"] == code
    assert SESSION_COOKIE not in desk.cookies


def test_the_review_api_with_the_cookie_and_with_keys(desk: TestClient) -> None:
    """The rules on the review API's own routes: reads with the cookie alone, writes with its token; keys need none."""
    body = _sign_in(desk)
    render = "/v1/review/clips/clip_0000000000000000/render"  # an unknown clip: 404 once the caller is let in
    caption = {"caption": {"subjects": []}}
    assert desk.get("/v1/review/queue").status_code == 200
    for headers in (
        {},
        {CSRF_HEADER: "wrong"},
        {CSRF_HEADER: body["csrf_token"], "Origin": "https://evil.example"},
    ):
        refused = desk.post(render, json=caption, headers=headers)
        assert refused.status_code == 403 and refused.json()["detail"]["code"] == "csrf_failed", headers
    allowed = desk.post(render, json=caption, headers={CSRF_HEADER: body["csrf_token"], "Origin": ORIGIN})
    assert allowed.status_code == 404, allowed.text
    desk.cookies.clear()
    assert desk.get("/v1/review/queue").status_code == 401
    # a Bearer key needs no CSRF token, whatever Origin a client claims: browsers never attach one by themselves
    for key in (ALICE_KEY, API_KEY):
        by_key = desk.post(
            render, json=caption, headers={"Authorization": f"Bearer {key}", "Origin": "https://x.example"}
        )
        assert by_key.status_code == 404, by_key.text
    # submitting needs the reviewer role, before anything about the clip is looked at
    review = {"checks_review_id": "", "decision": "accepted", "caption": {}, "items": [], "note": ""}
    submit = desk.post("/v1/review/clips/clip_0000000000000000/reviews", json=review, headers=AUTH)
    assert submit.status_code == 403 and submit.json()["detail"]["code"] == "not_a_reviewer"


def test_sign_in_refusals_of_shape_and_origin(desk: TestClient) -> None:
    # no JSON body: a cross-site <form> can only send form or text/plain bodies
    as_form = desk.post("/desk/session", data={"key": ALICE_KEY})
    as_text = desk.post("/desk/session", content=f'{{"key": "{ALICE_KEY}"}}', headers={"Content-Type": "text/plain"})
    assert as_form.status_code == 422 and as_text.status_code == 422
    foreign = desk.post("/desk/session", json={"key": ALICE_KEY}, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403 and foreign.json()["detail"]["code"] == "csrf_failed"
    assert SESSION_COOKIE not in desk.cookies


def test_reviewer_keys_are_api_keys(desk: TestClient) -> None:
    assert desk.get("/v1/videos", headers={"Authorization": f"Bearer {BOB_KEY}"}).status_code == 200
    assert desk.get("/v1/videos", headers=AUTH).status_code == 200
    # the desk's cookie is no key for the rest of the API
    _sign_in(desk)
    assert desk.get("/v1/videos").status_code == 401


def test_security_headers_on_every_desk_answer(desk: TestClient) -> None:
    page = desk.get("/desk/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert desk.get("/desk", follow_redirects=False).headers["location"] == "/desk/"
    for response in (page, desk.get("/desk/static/no-such-asset.js"), desk.post("/desk/session", json={"key": "x"})):
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY and "'unsafe-inline'" not in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert "content-security-policy" not in desk.get("/healthz").headers  # the API's JSON is left as it was


def test_session_expires(desk_settings: Settings) -> None:
    settings = desk_settings.model_copy(update={"review_session_hours": 1 / 3600})  # one second
    with running_gateway(settings) as client:
        signed_in = client.post("/desk/session", json={"key": ALICE_KEY})
        assert "max-age=1" in signed_in.headers["set-cookie"].lower()
        body = signed_in.json()
        # sent by hand: the browser drops the cookie at its Max-Age, the server must not rely on that
        cookie = {"Cookie": f"{SESSION_COOKIE}={client.cookies[SESSION_COOKIE]}"}
        client.cookies.clear()
        assert client.get("/desk/session", headers=cookie).json()["reviewer"] == "alice"
        time.sleep(1.2)
        expired = client.get("/desk/session", headers=cookie)
        assert expired.status_code == 401
        refused = client.delete("/desk/session", headers={**cookie, CSRF_HEADER: body["csrf_token"]})
        assert refused.status_code == 401


# --- require_caller's decisions, request by request ---


@pytest.fixture
def app(make_settings: Callable[..., Settings]) -> FastAPI:
    """The gateway's app without its runtime: require_caller reads only the keys and the sessions."""
    return create_app(make_settings(api_keys=[API_KEY], reviewers=[f"alice:{ALICE_KEY}"]))


def _request(app: FastAPI, method: str, headers: dict[str, str]) -> Request:
    scope = {
        "type": "http",
        "method": method,
        "scheme": "http",
        "server": ("127.0.0.1", 8080),
        "path": "/v1/review/clips/c/reviews",
        "query_string": b"",
        "headers": [(name.lower().encode(), value.encode()) for name, value in headers.items()],
        "app": app,
    }
    return Request(scope)


def _caller(app: FastAPI, method: str, headers: dict[str, str], bearer: str | None = None) -> Caller:
    credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=bearer) if bearer else None
    return asyncio.run(require_caller(_request(app, method, headers), credentials))


def test_require_caller_by_bearer_key(app: FastAPI) -> None:
    # no CSRF header, no Origin check: a browser never attaches a Bearer key by itself
    alice = _caller(app, "POST", {"Origin": "https://evil.example"}, bearer=ALICE_KEY)
    assert alice == Caller(reviewer="alice", session=False)
    assert _caller(app, "DELETE", {}, bearer=API_KEY) == Caller(reviewer=None, session=False)
    with pytest.raises(AuthenticationError) as refused:
        _caller(app, "GET", {}, bearer="wrong")
    assert refused.value.code == "invalid_api_key"
    with pytest.raises(AuthenticationError) as missing:
        _caller(app, "GET", {})
    assert missing.value.code == "missing_api_key"
    assert asyncio.run(require_reviewer(alice)) == "alice"
    with pytest.raises(ForbiddenError) as not_reviewer:
        asyncio.run(require_reviewer(Caller(reviewer=None, session=False)))
    assert not_reviewer.value.code == "not_a_reviewer" and not_reviewer.value.status_code == 403


def test_require_caller_by_session_cookie(app: FastAPI) -> None:
    session_id, session = app.state.desk_sessions.create("alice")
    cookie = {"Cookie": f"{SESSION_COOKIE}={session_id}", "Host": "127.0.0.1:8080"}
    token = {CSRF_HEADER: session.csrf_token}
    signed_in = Caller(reviewer="alice", session=True)
    assert _caller(app, "GET", cookie) == signed_in  # reads need no token
    assert _caller(app, "POST", {**cookie, **token}) == signed_in
    assert _caller(app, "POST", {**cookie, **token, "Origin": "http://127.0.0.1:8080"}) == signed_in
    assert _caller(app, "DELETE", {**cookie, **token, "Sec-Fetch-Site": "same-origin"}) == signed_in
    # behind a proxy that ends TLS: the browser's origin is https, the request reaches the gateway as http
    behind_tls = {**cookie, **token, "Host": "desk.example", "Origin": "https://desk.example"}
    assert _caller(app, "POST", {**behind_tls, "X-Forwarded-Proto": "https"}) == signed_in
    with pytest.raises(ForbiddenError):
        _caller(app, "POST", behind_tls)
    refusals = [
        ("POST", cookie),  # no token
        ("DELETE", cookie),
        ("PUT", {**cookie, CSRF_HEADER: session.csrf_token[:-1] + "x"}),  # a wrong token
        ("POST", {**cookie, CSRF_HEADER: ""}),
        ("POST", {**cookie, **token, "Origin": "https://evil.example"}),  # a foreign origin
        ("POST", {**cookie, **token, "Origin": "http://127.0.0.1:8081"}),  # another port is another origin
        ("POST", {**cookie, **token, "Origin": "https://127.0.0.1:8080"}),
        ("POST", {**cookie, **token, "Origin": "null"}),
        ("PATCH", {**cookie, **token, "Sec-Fetch-Site": "cross-site"}),
    ]
    for method, headers in refusals:
        with pytest.raises(ForbiddenError) as refused:
            _caller(app, method, headers)
        assert refused.value.code == "csrf_failed", (method, headers)
    with pytest.raises(AuthenticationError) as unknown:
        _caller(app, "GET", {"Cookie": f"{SESSION_COOKIE}=forged"})
    assert unknown.value.code == "session_expired"


def test_reviewers_setting_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAIC_REVIEWERS", " alice:k1 , bob:k2,")
    settings = Settings()
    assert settings.reviewer_keys == {"k1": "alice", "k2": "bob"}
    keys = ApiKeys([], settings.reviewer_keys)  # reviewers alone are enough keys to start
    assert keys.identify("k2") == Caller(reviewer="bob", session=False) and keys.identify("k3") is None
    for bad in ("alice", "al ice:k1", "<b>:k1", "alice:", "alice:k1,alice:k2", "alice:k1,bob:k1", "x" * 65 + ":k"):
        monkeypatch.setenv("HAIC_REVIEWERS", bad)
        with pytest.raises(ValueError, match="reviewer"):
            Settings()


def test_a_malformed_reviewers_setting_never_prints_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    # a pair missing its colon may be a bare key; pydantic would print the whole value (input_value)
    for bad in ("alice:secret-one,secret-two", "alice:secret-one,bob:secret-one", "al ice:secret-one"):
        monkeypatch.setenv("HAIC_REVIEWERS", bad)
        with pytest.raises(ValueError) as refused:
            Settings()
        assert "secret" not in str(refused.value), str(refused.value)
