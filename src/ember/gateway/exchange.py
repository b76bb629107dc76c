"""One request through the gateway, from arrival to its audit row: who, what, where it went, what it cost."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime

from starlette.requests import Request

from ember.db.audit import AuditEvent
from ember.db.tables import utcnow
from ember.errors import EmberError
from ember.gateway.accounting import Usage
from ember.gateway.auth import Principal
from ember.gateway.guards import Admission

MAX_KEPT_RESPONSE = 1024 * 1024  # response bodies kept for the audit log (EMBER_AUDIT_BODIES) are cut here


@dataclass
class Exchange:
    request_id: str
    method: str
    route: str
    client: str | None
    time: datetime
    started: float
    principal: Principal | None = None
    admission: Admission | None = None  # set once limits admitted the request; finished exactly once
    model: str | None = None
    node: str | None = None
    status: int = 0
    error: str | None = None
    usage: Usage | None = None
    first_byte_at: float | None = None
    headers: dict[str, str] = field(default_factory=dict)  # added to every response: rate limits, overrides
    prompt_body: str | None = None
    response_chunks: list[bytes] | None = None  # kept only with EMBER_AUDIT_BODIES
    _kept: int = 0

    @classmethod
    def begin(cls, request: Request, route: str) -> Exchange:
        request_id = secrets.token_hex(8)
        return cls(request_id=request_id, method=request.method, route=route,
                   client=request.client.host if request.client else None, time=utcnow(),
                   started=time.perf_counter(), headers={"x-request-id": request_id})

    def fail(self, exc: EmberError) -> None:
        self.status, self.error = exc.status, exc.message

    def keep(self, chunk: bytes) -> None:
        if self.response_chunks is not None and self._kept < MAX_KEPT_RESPONSE:
            self.response_chunks.append(chunk[:MAX_KEPT_RESPONSE - self._kept])
            self._kept += len(chunk)

    @property
    def duration_s(self) -> float:
        return time.perf_counter() - self.started

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_byte_at is None else self.first_byte_at - self.started

    def audit_event(self) -> AuditEvent:
        usage = self.usage
        ttft = self.ttft_s
        response = b"".join(self.response_chunks).decode("utf-8", "replace") if self.response_chunks else None
        return AuditEvent(
            time=self.time, request_id=self.request_id,
            user_name=self.principal.user_name if self.principal else None,
            key_name=self.principal.key_name if self.principal else None,
            client=self.client, method=self.method, route=self.route, model=self.model, status=self.status,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            ttft_ms=round(ttft * 1000, 3) if ttft is not None else None,
            duration_ms=round(self.duration_s * 1000, 3),
            done_reason=usage.done_reason if usage else None, node=self.node, error=self.error,
            prompt_body=self.prompt_body, response_body=response)
