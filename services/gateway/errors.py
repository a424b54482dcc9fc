"""Typed errors of the gateway. Each one renders as `{"detail": {"code", "message", "video_id"?}}`."""

from __future__ import annotations


class GatewayConfigError(RuntimeError):
    """The gateway cannot start with this configuration (no API key, unknown final stage, bad catalog URL)."""


class GatewayError(Exception):
    """An error answered to the client with `status_code` and a machine-readable `code`."""

    status_code = 500

    def __init__(
        self,
        code: str,
        message: str,
        *,
        video_id: str = "",
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.video_id = video_id
        if status_code is not None:
            self.status_code = status_code
        self.headers = headers or {}

    def body(self) -> dict[str, object]:
        detail: dict[str, object] = {"code": self.code, "message": self.message}
        if self.video_id:
            detail["video_id"] = self.video_id
        return {"detail": detail}


class AuthenticationError(GatewayError):
    status_code = 401


class UploadRejectedError(GatewayError):
    """The upload was refused; `status_code` is 400, 413, 415, 422 or 503 depending on `code`."""

    status_code = 422


class NotFoundError(GatewayError):
    status_code = 404


class NotReadyError(GatewayError):
    status_code = 503
