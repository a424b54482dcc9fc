"""Authentication: API keys (`Authorization: Bearer KEY`, HAIC_API_KEYS), reviewer keys (HAIC_REVIEWERS, also
API keys) and the review desk's browser sessions (cookie `haic_desk`, with a CSRF token).

A program sends its key on every request; a browser signs in once (`POST /desk/session`, services/gateway/desk.py)
and then sends the cookie. Browsers attach cookies by themselves, also to requests another site makes them send,
so a request that changes state with the cookie must also carry the session's CSRF token in `X-CSRF-Token` (a
header no other origin can set without CORS, which the gateway does not grant) and, when the browser says where it
comes from (`Origin`), come from the gateway's own origin. A Bearer key needs neither: browsers never attach one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.gateway.errors import AuthenticationError, GatewayConfigError, GatewayError

bearer_scheme = HTTPBearer(auto_error=False, description="An API key from HAIC_API_KEYS or a reviewer's key")

SESSION_COOKIE = "haic_desk"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Sessions held at once: each sign-in prunes the expired ones, and past this the oldest go first, so a flood
# of sign-ins (each needs a valid key) cannot grow the gateway's memory without bound.
MAX_SESSIONS = 10_000


class ForbiddenError(GatewayError):
    """Authenticated, but not allowed: `not_a_reviewer`, `csrf_failed`."""

    status_code = 403


@dataclass(frozen=True)
class Caller:
    """Who sent a request."""

    reviewer: str | None  # the reviewer's name when the key (or session) has the reviewer role, else None
    session: bool  # signed in through the desk's cookie (unsafe methods then passed the CSRF check)


class ApiKeys:
    """The accepted keys, API keys and reviewers' keys; refuses to exist without any, so the gateway cannot start
    open by mistake."""

    def __init__(self, keys: Sequence[str], reviewers: Mapping[str, str] | None = None) -> None:
        """`reviewers`: reviewer name by key (ReviewSettings.reviewer_keys). A key in both lists is a reviewer's."""
        reviewer_keys = {key.encode(): name for key, name in (reviewers or {}).items()}
        cleaned = [key.strip().encode() for key in keys if key.strip()]
        if not cleaned and not reviewer_keys:
            raise GatewayConfigError(
                "no API key configured: set HAIC_API_KEYS to one or more comma-separated keys "
                "(or HAIC_REVIEWERS to name:key pairs)"
            )
        self._keys: list[tuple[bytes, str | None]] = [(key, None) for key in cleaned if key not in reviewer_keys]
        self._keys += list(reviewer_keys.items())

    def identify(self, presented: str) -> Caller | None:
        """The caller a key stands for (session False), or None for a key that is not accepted."""
        candidate = presented.encode()
        found: Caller | None = None
        for key, reviewer in self._keys:  # every key is compared, so timing says nothing about which matched
            if hmac.compare_digest(candidate, key):
                found = Caller(reviewer=reviewer, session=False)
        return found

    def accepts(self, presented: str) -> bool:
        return self.identify(presented) is not None


@dataclass(frozen=True)
class DeskSession:
    reviewer: str
    csrf_token: str
    expires_at: float  # time.monotonic()


class DeskSessions:
    """Signed-in browsers: a random opaque id (the cookie's value) maps to the reviewer, the CSRF token and the
    expiry, in this process's memory.

    Server-side rather than an HMAC-signed cookie: signing out (and expiry) really ends the session, as the id
    means nothing once it is removed here, with no signing secret to generate, share or rotate. The price: a
    restart signs everyone out (the page signs in again with its key), and replicas behind one address would
    each need the browser's own (sticky sessions). The map is keyed by the id's SHA-256, so neither a lookup's
    timing nor a memory dump gives away a usable cookie.
    """

    def __init__(self, lifetime_s: float) -> None:
        self.lifetime_s = lifetime_s
        self._sessions: dict[bytes, DeskSession] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _digest(session_id: str) -> bytes:
        return hashlib.sha256(session_id.encode()).digest()

    def create(self, reviewer: str) -> tuple[str, DeskSession]:
        """A new session of that reviewer: (the cookie's value, the session)."""
        session_id = secrets.token_urlsafe(32)
        session = DeskSession(reviewer, secrets.token_urlsafe(32), time.monotonic() + self.lifetime_s)
        with self._lock:
            now = time.monotonic()
            for digest in [d for d, held in self._sessions.items() if held.expires_at <= now]:
                del self._sessions[digest]
            while len(self._sessions) >= MAX_SESSIONS:  # dicts keep insertion order: the oldest first
                del self._sessions[next(iter(self._sessions))]
            self._sessions[self._digest(session_id)] = session
        return session_id, session

    def get(self, session_id: str) -> DeskSession | None:
        """The live session of that cookie value, or None (unknown, signed out or expired)."""
        digest = self._digest(session_id)
        with self._lock:
            session = self._sessions.get(digest)
            if session is not None and session.expires_at <= time.monotonic():
                del self._sessions[digest]
                return None
        return session

    def end(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(self._digest(session_id), None)


def same_origin(request: Request) -> bool:
    """The browser's `Origin`, when it sent one, is the gateway's own (scheme, host and port of this request).

    Absent: not a browser's cross-origin request (browsers send Origin on every cross-origin POST/DELETE and on
    same-origin fetches that are not GET/HEAD; the CSRF header still has to be there). `null` (sandboxed frames,
    file: pages) is foreign. Behind a proxy that ends TLS the request arrives as http: the scheme the proxy says
    it was received with (`X-Forwarded-Proto`) counts too. Another site cannot add that header to a browser's
    request (a non-simple header needs a CORS preflight, which the gateway never grants).
    """
    origin = request.headers.get("origin")
    if origin is None:
        return True
    parts = urlsplit(origin)
    if parts.path.strip("/") or not parts.netloc:
        return False
    host = request.headers.get("host", "")
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    schemes = {request.url.scheme} | ({forwarded} if forwarded in ("http", "https") else set())
    return any(
        parts.scheme == scheme and _netloc(parts.scheme, parts.netloc) == _netloc(scheme, host) for scheme in schemes
    )


def _netloc(scheme: str, netloc: str) -> str:
    """host:port in lower case with the scheme's default port spelled out (Origin omits it, Host may not)."""
    netloc = netloc.lower()
    if netloc and not netloc.endswith("]") and ":" in netloc.rsplit("]", 1)[-1]:
        return netloc
    return f"{netloc}:{443 if scheme == 'https' else 80}"


def csrf_checked(request: Request, session: DeskSession) -> bool:
    """An unsafe request made with the cookie carries the session's token and no foreign Origin; safe methods
    pass (they change nothing, and another origin cannot read their answers)."""
    if request.method in SAFE_METHODS:
        return True
    presented = request.headers.get(CSRF_HEADER, "")
    token_ok = hmac.compare_digest(presented.encode(), session.csrf_token.encode())
    # Fetch metadata, where the browser sends it, says the same as Origin: refuse what it calls cross-site.
    fetch_site_ok = request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")
    return token_ok and same_origin(request) and fetch_site_ok


def unauthenticated(code: str, message: str) -> AuthenticationError:
    error = "" if code == "missing_api_key" else ', error="invalid_token"'
    return AuthenticationError(code, message, headers={"WWW-Authenticate": f'Bearer realm="haic"{error}'})


def _by_key(request: Request, key: str) -> Caller:
    keys: ApiKeys = request.app.state.api_keys
    caller = keys.identify(key)
    if caller is None:
        raise unauthenticated("invalid_api_key", "the API key is not valid")
    return caller


def session_of(request: Request) -> tuple[str, DeskSession] | None:
    """The request's desk session (cookie value, session), if its cookie names a live one."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None
    sessions: DeskSessions = request.app.state.desk_sessions
    session = sessions.get(session_id)
    return None if session is None else (session_id, session)


async def require_caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
) -> Caller:
    """FastAPI dependency: the caller by its Bearer key, else by its desk cookie (with the CSRF check on unsafe
    methods: 403 `csrf_failed`); 401 with a reason and `WWW-Authenticate: Bearer` otherwise."""
    if credentials is not None and credentials.credentials:
        return _by_key(request, credentials.credentials)
    if request.cookies.get(SESSION_COOKIE):
        found = session_of(request)
        if found is None:
            raise unauthenticated("session_expired", "the desk session has expired or was signed out: sign in again")
        _, session = found
        if not csrf_checked(request, session):
            raise ForbiddenError(
                "csrf_failed",
                f"a request that changes state with the desk's cookie needs the session's {CSRF_HEADER} header "
                "and must come from the gateway's own origin",
            )
        return Caller(reviewer=session.reviewer, session=True)
    raise unauthenticated("missing_api_key", "send an API key as `Authorization: Bearer <key>`")


async def require_reviewer(caller: Annotated[Caller, Depends(require_caller)]) -> str:
    """FastAPI dependency: the reviewer's name; 403 `not_a_reviewer` for a key without the reviewer role."""
    if caller.reviewer is None:
        raise ForbiddenError("not_a_reviewer", "only a reviewer's key (HAIC_REVIEWERS) may do this")
    return caller.reviewer


async def require_api_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
) -> None:
    """FastAPI dependency of /v1: 401 with a reason and `WWW-Authenticate: Bearer` unless a valid key (an API key
    or a reviewer's) is sent as Bearer; the desk's cookie is not accepted here."""
    if credentials is None or not credentials.credentials:
        raise unauthenticated("missing_api_key", "send an API key as `Authorization: Bearer <key>`")
    _by_key(request, credentials.credentials)
