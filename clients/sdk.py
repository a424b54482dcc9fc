"""Python client of the gateway's HTTP API."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx


class GatewayError(RuntimeError):
    """The gateway answered with an error status; `code` is its reason code when it gave one."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(f"{status_code} {code}: {message}")
        self.status_code = status_code
        self.code = code
        self.message = message


class HaicClient:
    def __init__(self, base_url: str, api_key: str, timeout_s: float = 120.0) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"), headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout_s
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HaicClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def _checked(response: httpx.Response) -> dict[str, Any]:
        if response.is_success:
            return response.json()
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text
        if isinstance(detail, dict):
            raise GatewayError(response.status_code, detail.get("code", ""), detail.get("message", str(detail)))
        raise GatewayError(response.status_code, "", str(detail))

    def submit(
        self, path: Path, description: str = "", source_url: str = "", external_id: str = "", batch: str = ""
    ) -> dict[str, Any]:
        """Uploads a video; returns {video_id, status, status_url, duplicate}."""
        fields = {"description": description, "source_url": source_url, "external_id": external_id, "batch": batch}
        data = {k: v for k, v in fields.items() if v}
        with path.open("rb") as f:
            # The gateway never uses the file name as a path; send a neutral one.
            response = self._http.post("/v1/videos", files={"file": ("upload", f)}, data=data)
        return self._checked(response)

    def register(
        self, uri: str, description: str = "", source_url: str = "", external_id: str = "", batch: str = ""
    ) -> dict[str, Any]:
        """Registers a video by reference (a path in an allowed root, s3:// or http(s)://): the gateway reads
        it in place; returns {video_id, status, status_url, duplicate}."""
        body = {"uri": uri, "description": description, "source_url": source_url, "external_id": external_id}
        if batch:
            body["batch"] = batch
        return self._checked(self._http.post("/v1/videos/by-reference", json=body))

    def backlog(self) -> dict[str, Any]:
        """{stages: {stage: messages behind}, total, unsettled_videos}."""
        return self._checked(self._http.get("/v1/backlog"))

    def video(self, video_id: str) -> dict[str, Any]:
        return self._checked(self._http.get(f"/v1/videos/{video_id}"))

    def videos(self, status: str | None = None, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        return self._checked(self._http.get("/v1/videos", params=params))

    def clip(self, clip_id: str) -> dict[str, Any]:
        return self._checked(self._http.get(f"/v1/clips/{clip_id}"))

    def report(
        self,
        since: str | None = None,
        until: str | None = None,
        video_ids: list[str] | None = None,
        batch: str | None = None,
    ) -> dict[str, Any]:
        """The yield report (GET /v1/report) of videos uploaded in [since, until) (RFC 3339), of the given
        ids, of a batch, or of every video."""
        params: dict[str, Any] = {}
        if batch:
            params["batch"] = batch
        if since:
            params["since"] = since
        if until:
            params["until"] = until
        if video_ids:
            params["video_id"] = video_ids
        return self._checked(self._http.get("/v1/report", params=params))

    def events(self, video_id: str, timeout_s: float = 600.0) -> Iterator[tuple[str, dict[str, Any]]]:
        """The video's progress events as (event name, data) until it settles."""
        with self._http.stream("GET", f"/v1/videos/{video_id}/events", timeout=timeout_s) as response:
            if not response.is_success:
                response.read()
                self._checked(response)
            name, data = "message", []
            for line in response.iter_lines():
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line and data:
                    yield name, json.loads("\n".join(data))
                    if name == "settled":
                        return
                    name, data = "message", []

    def wait(self, video_id: str, timeout_s: float = 600.0, poll_s: float = 0.5) -> dict[str, Any]:
        """Polls until the video has settled; returns its final status document."""
        deadline = time.monotonic() + timeout_s
        while True:
            video = self.video(video_id)
            if video.get("settled"):
                return video
            if time.monotonic() > deadline:
                raise TimeoutError(f"video {video_id} still {video.get('status')} after {timeout_s} s")
            time.sleep(poll_s)
