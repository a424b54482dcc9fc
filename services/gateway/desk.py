"""The review desk's serving (issue 15): the page and its assets under /desk, and the browser's sign-in.

`POST /desk/session` trades a reviewer's key for a session cookie (`haic_desk`, HttpOnly, SameSite=Strict) and
the session's CSRF token, which the page sends back as `X-CSRF-Token` on every request that changes state
(services/gateway/auth.py checks it). The page and its assets are static files (services/gateway/desk/static,
shipped as package data); every /desk answer carries a Content-Security-Policy that allows only the gateway's own
scripts, styles, media and API, so text from a caption can never run as script even if the page mishandled it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import BaseModel, Field
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.gateway.auth import (
    SESSION_COOKIE,
    ApiKeys,
    DeskSession,
    DeskSessions,
    ForbiddenError,
    csrf_checked,
    same_origin,
    session_of,
    unauthenticated,
)
from services.gateway.errors import NotFoundError
from services.gateway.schemas import ErrorBody, MalformedBody

STATIC_DIR = Path(__file__).parent / "desk" / "static"
DESK_PREFIX = "/desk"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",  # the page's URL may still hold #key=... until the page removes it
    "x-frame-options": "DENY",  # frame-ancestors for browsers that predate it
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}


class SignIn(BaseModel):
    key: Annotated[str, Field(min_length=1, max_length=4096, description="A reviewer's key (HAIC_REVIEWERS)")]


class DeskSessionBody(BaseModel):
    reviewer: str
    csrf_token: str = Field(description="Send it as X-CSRF-Token on every POST/PUT/PATCH/DELETE made with the cookie")


_auth_errors: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Not a valid key, or no live session"},
    403: {"model": ErrorBody, "description": "not_a_reviewer, or csrf_failed"},
}
router = APIRouter(prefix=DESK_PREFIX, tags=["review desk"], responses=_auth_errors)


def _body(session: DeskSession, response: Response) -> DeskSessionBody:
    response.headers["cache-control"] = "no-store"  # the CSRF token is the session's: no cache may keep it
    return DeskSessionBody(reviewer=session.reviewer, csrf_token=session.csrf_token)


@router.post("/session", responses={400: {"model": MalformedBody, "description": "The body is not JSON"}})
async def sign_in(body: SignIn, request: Request, response: Response) -> DeskSessionBody:
    """Sign a browser in with a reviewer's key: sets the `haic_desk` cookie and answers the CSRF token.

    401 `invalid_api_key` for a key that is not valid, 403 `not_a_reviewer` for an API key without the reviewer
    role, 403 `csrf_failed` from another origin (another site must not sign a browser in as someone else).
    """
    if not same_origin(request):
        raise ForbiddenError("csrf_failed", "sign in from the gateway's own origin")
    keys: ApiKeys = request.app.state.api_keys
    caller = keys.identify(body.key)
    if caller is None:
        raise unauthenticated("invalid_api_key", "the API key is not valid")
    if caller.reviewer is None:
        raise ForbiddenError("not_a_reviewer", "this API key has no reviewer role (HAIC_REVIEWERS)")
    sessions: DeskSessions = request.app.state.desk_sessions
    previous = request.cookies.get(SESSION_COOKIE)
    if previous:  # a new sign-in replaces the browser's session, so no forgotten session stays valid
        sessions.end(previous)
    session_id, session = sessions.create(caller.reviewer)
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=int(sessions.lifetime_s),
        path="/",
        httponly=True,  # no script (injected or not) can read it
        samesite="strict",  # browsers attach it to no request another site starts
        secure=request.url.scheme == "https",  # plain http on 127.0.0.1 (haic up) must still get it
    )
    return _body(session, response)


@router.get("/session")
async def current_session(request: Request, response: Response) -> DeskSessionBody:
    """The signed-in reviewer and the session's CSRF token (a reloaded page gets it again); 401 otherwise."""
    found = session_of(request)
    if found is None:
        raise unauthenticated("no_session", "not signed in to the review desk")
    return _body(found[1], response)


@router.delete("/session", status_code=204)
async def sign_out(request: Request) -> Response:
    """Sign out: ends the session (its cookie is worthless from now on) and clears the cookie. Needs the
    session's X-CSRF-Token like every other request that changes state."""
    found = session_of(request)
    if found is None:
        raise unauthenticated("no_session", "not signed in to the review desk")
    session_id, session = found
    if not csrf_checked(request, session):
        raise ForbiddenError("csrf_failed", "signing out needs the session's X-CSRF-Token from the gateway's origin")
    sessions: DeskSessions = request.app.state.desk_sessions
    sessions.end(session_id)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("", include_in_schema=False)
async def desk_redirect() -> RedirectResponse:
    # relative asset URLs in index.html resolve against /desk/, not /
    return RedirectResponse(f"{DESK_PREFIX}/", status_code=308)


@router.get("/", include_in_schema=False)
async def desk_page() -> FileResponse:
    index = STATIC_DIR / "index.html"
    if not index.is_file():
        raise NotFoundError("desk_not_installed", f"the review desk's page is missing ({index})")
    return FileResponse(index, media_type="text/html; charset=utf-8", headers={"cache-control": "no-cache"})


class DeskSecurityHeaders:
    """ASGI middleware: the security headers on every answer under /desk (the page, its assets, sign-in, and
    errors such as a missing asset's 404), whichever route or mount produced it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path != DESK_PREFIX and not path.startswith(f"{DESK_PREFIX}/"):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [
                    (name.encode(), value.encode())
                    for name, value in SECURITY_HEADERS.items()
                    if name.encode() not in present
                ]
                if b"cache-control" not in present:  # assets revalidate (ETag): a new release shows at once
                    extra.append((b"cache-control", b"no-cache"))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_desk(app: FastAPI) -> None:
    """The desk's routes, its assets under /desk/static and its security headers, on the gateway's app."""
    app.include_router(router)
    # check_dir=False: a gateway built without the page still serves the API (the page then answers 404)
    app.mount(f"{DESK_PREFIX}/static", StaticFiles(directory=STATIC_DIR, check_dir=False), name="desk-static")
    app.add_middleware(DeskSecurityHeaders)
