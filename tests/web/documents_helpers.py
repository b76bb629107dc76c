"""Helpers of the documents API tests: uploads as the chat page sends them, and waiting for indexing."""

from __future__ import annotations

import time
from typing import Any

from tests.web.harness import Browser


def upload(browser: Browser, name: str, data: bytes, *, content_type: str = "application/octet-stream",
           **target: str) -> Any:
    return browser.post("/ui/api/documents", files={"file": (name, data, content_type)}, data=target)


def uploaded(browser: Browser, name: str, data: bytes, **target: str) -> dict[str, Any]:
    response = upload(browser, name, data, **target)
    assert response.status_code == 202, response.text
    document: dict[str, Any] = response.json()
    return document


def wait_indexed(browser: Browser, document_id: str, within: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        response = browser.get(f"/ui/api/documents/{document_id}")
        assert response.status_code == 200, response.text
        document: dict[str, Any] = response.json()
        if document["status"] != "indexing":
            return document
        assert time.monotonic() < deadline, f"still indexing: {document}"
        time.sleep(0.1)
