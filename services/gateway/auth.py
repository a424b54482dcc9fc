"""API-key authentication: `Authorization: Bearer KEY`, keys from HAIC_API_KEYS."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.gateway.errors import AuthenticationError, GatewayConfigError

bearer_scheme = HTTPBearer(auto_error=False, description="An API key from HAIC_API_KEYS")


class ApiKeys:
    """The accepted keys; refuses to exist without any, so the gateway cannot start open by mistake."""

    def __init__(self, keys: Sequence[str]) -> None:
        cleaned = [key.strip() for key in keys if key.strip()]
        if not cleaned:
            raise GatewayConfigError("no API key configured: set HAIC_API_KEYS to one or more comma-separated keys")
        self._keys = [key.encode() for key in cleaned]

    def accepts(self, presented: str) -> bool:
        candidate = presented.encode()
        matched = False
        for key in self._keys:  # every key is compared, so timing says nothing about which matched
            matched |= hmac.compare_digest(candidate, key)
        return matched


async def require_api_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]
) -> None:
    """FastAPI dependency: 401 with a reason and `WWW-Authenticate: Bearer` unless a valid key is sent."""
    if credentials is None or not credentials.credentials:
        raise AuthenticationError(
            "missing_api_key",
            "send an API key as `Authorization: Bearer <key>`",
            headers={"WWW-Authenticate": 'Bearer realm="haic"'},
        )
    keys: ApiKeys = request.app.state.api_keys
    if not keys.accepts(credentials.credentials):
        raise AuthenticationError(
            "invalid_api_key",
            "the API key is not valid",
            headers={"WWW-Authenticate": 'Bearer realm="haic", error="invalid_token"'},
        )
