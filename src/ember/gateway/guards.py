"""The request pipeline's call sites for limits, model policy and metrics.

The pipeline calls these in a fixed order: ``admit`` before anything is forwarded (raises RateLimited),
``apply_policy`` on the JSON body before it is forwarded, ``active`` around the forwarding, and ``finish`` /
``request_done`` once the answer is over (with the token counts read from it). ``Guards`` here lets every
request through unchanged; the limits, policy and metrics modules plug in behind the same methods.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

from ember.edge import Api
from ember.gateway.auth import Principal


class Admission(Protocol):
    """One admitted request: headers for every response, and ``finish`` to release and charge it (idempotent)."""

    headers: dict[str, str]

    async def finish(self, tokens: int) -> None: ...


@dataclass
class Unmetered:
    headers: dict[str, str] = field(default_factory=dict)

    async def finish(self, tokens: int) -> None:
        return None


@dataclass(frozen=True)
class PolicyResult:
    body: dict[str, Any]
    overridden: tuple[str, ...] = ()


class Guards:
    """Limits, policy and metrics for the pipeline. This base admits everyone and changes nothing."""

    async def admit(self, principal: Principal) -> Admission:
        return Unmetered()

    def apply_policy(self, body: dict[str, Any], *, api: Api, model: str, principal: Principal) -> PolicyResult:
        return PolicyResult(body)

    def active(self, model: str) -> AbstractContextManager[None]:
        return nullcontext()

    def request_done(self, *, route: str, model: str, status: int, duration_s: float, ttft_s: float | None,
                     prompt_tokens: int, completion_tokens: int) -> None:
        return None

    def engine_health(self, node: str, healthy: bool) -> None:
        return None

    def metrics(self) -> tuple[bytes, str] | None:
        """The web role's /metrics body and content type, or None when metrics are not wired in."""
        return None

    async def aclose(self) -> None:
        """Release what the guards hold (a Redis connection)."""
        return None
