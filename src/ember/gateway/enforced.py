"""The pipeline's guards wired to the limits, model policy and metrics modules.

``Enforced`` is what ``create_web_app`` uses: per-key (else per-role) limits through the limiter (in memory,
or Redis with EMBER_REDIS_URL), the model policy of the requested model, and the app's own Prometheus
registry. Model policies are read from the database at most every ``POLICY_TTL_S`` seconds: a request does no
database read for them, and an admin's change applies within that time.
"""

from __future__ import annotations

import logging
import time
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from ember.config import Settings
from ember.db.database import Database
from ember.db.policies import ModelPolicy, get_policies, policy_key
from ember.edge import Api
from ember.errors import InvalidModelName, RateLimited
from ember.gateway.auth import Principal
from ember.gateway.guards import Admission, Guards, PolicyResult
from ember.gateway.limits import Limiter, quota_for
from ember.gateway.metrics import GatewayMetrics
from ember.gateway.policy import apply_policy

log = logging.getLogger(__name__)

POLICY_TTL_S = 5.0


class PolicyCache:
    def __init__(self, database: Database, ttl: float = POLICY_TTL_S) -> None:
        self.database = database
        self.ttl = ttl
        self._policies: dict[str, ModelPolicy] = {}
        self._expires = 0.0

    def get(self, model: str) -> ModelPolicy | None:
        now = time.monotonic()
        if now >= self._expires:
            self._expires = now + self.ttl
            try:
                self._policies = get_policies(self.database)
            except SQLAlchemyError as exc:  # keep the last known policies rather than fail requests
                log.warning("could not read model policies (keeping the last known ones): %s", exc)
        try:
            return self._policies.get(policy_key(model))
        except InvalidModelName:
            return None


class Enforced(Guards):
    def __init__(self, settings: Settings, database: Database, limiter: Limiter, metrics: GatewayMetrics) -> None:
        self.settings = settings
        self.limiter = limiter
        self.gateway_metrics = metrics
        self.policies = PolicyCache(database)

    async def admit(self, principal: Principal) -> Admission:
        quota = quota_for(principal.key, principal.user_role, self.settings)
        try:
            return await self.limiter.admit(principal.subject, quota)
        except RateLimited as exc:
            self.gateway_metrics.rate_limited(exc.limit)
            raise

    def apply_policy(self, body: dict[str, Any], *, api: Api, model: str, principal: Principal) -> PolicyResult:
        outcome = apply_policy(body, api=api, policy=self.policies.get(model), settings=self.settings,
                               privileged=principal.privileged)
        return PolicyResult(body if outcome.body == body else outcome.body, outcome.overridden)

    def active(self, model: str) -> AbstractContextManager[None]:
        return self.gateway_metrics.active(model)

    def request_done(self, *, route: str, model: str, status: int, duration_s: float, ttft_s: float | None,
                     prompt_tokens: int, completion_tokens: int) -> None:
        self.gateway_metrics.request_done(route=route, model=model, status=status, duration_s=duration_s,
                                          ttft_s=ttft_s, prompt_tokens=prompt_tokens,
                                          completion_tokens=completion_tokens)

    def engine_health(self, node: str, healthy: bool) -> None:
        self.gateway_metrics.engine_health(node, healthy)

    def metrics(self) -> tuple[bytes, str] | None:
        return self.gateway_metrics.render()

    async def aclose(self) -> None:
        await self.limiter.aclose()
