"""A small synchronous HTTP client for the engine API, used by the CLI (and usable by scripts)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from ember.config import Settings


class ClientError(Exception):
    """The server answered with an error, or could not be reached. ``str()`` is one clear line."""

    def __init__(self, message: str, status: int | None = None, *, unreachable: bool = False,
                 timed_out: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.unreachable = unreachable  # nothing answered at the address
        self.timed_out = timed_out  # connected, but no full answer within the timeout


class Client:
    def __init__(self, base_url: str, timeout: float | None = None, *, api_key: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        connect = 5.0 if timeout is None else min(timeout, 5.0)
        self._http = httpx.Client(base_url=self.base_url, timeout=httpx.Timeout(timeout, connect=connect),
                                  headers=headers)

    @classmethod
    def from_settings(cls, settings: Settings) -> Client:
        return cls(settings.base_url)

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise ClientError(f"could not connect to ember at {self.base_url}: is `ember serve` running?",
                              unreachable=True) from None
        except httpx.TimeoutException:
            raise ClientError(f"{self.base_url}{path} did not answer in time", timed_out=True) from None
        except httpx.HTTPError as exc:
            raise ClientError(f"request to {self.base_url}{path} failed: {exc}") from None
        _raise_for_error(response)
        if not response.content:
            return None
        return response.json()

    def stream(self, path: str, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """POST and yield each NDJSON line; an ``error`` line raises ClientError."""
        try:
            with self._http.stream("POST", path, json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for_error(response)
                for line in response.iter_lines():
                    if not line.strip():
                        continue
                    item = json.loads(line)
                    if "error" in item:
                        raise ClientError(str(item["error"]))
                    yield item
        except httpx.ConnectError:
            raise ClientError(f"could not connect to ember at {self.base_url}: is `ember serve` running?") from None
        except httpx.HTTPError as exc:
            raise ClientError(f"request to {self.base_url}{path} failed: {exc}") from None

    def has_blob(self, digest: str) -> bool:
        try:
            self.request("HEAD", f"/api/blobs/{digest}")
        except ClientError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def upload_blob(self, digest: str, path: Path) -> None:
        """Stream a file to /api/blobs; the server verifies the digest."""
        try:
            with path.open("rb") as fh:
                response = self._http.post(f"/api/blobs/{digest}", content=fh)
        except httpx.HTTPError as exc:
            raise ClientError(f"uploading {path} failed: {exc}") from None
        _raise_for_error(response)



def _raise_for_error(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        message = response.json().get("error", response.text)
        if isinstance(message, dict):
            message = message.get("message", str(message))
    except (ValueError, AttributeError):
        message = response.text or response.reason_phrase
    raise ClientError(str(message), response.status_code)
