"""Login attempts are rate-limited per account and per client address, so that passwords cannot be guessed
at speed. The gateway's limiter counts them (in memory, or in Redis when EMBER_REDIS_URL is set, so that
several web replicas share the counts)."""

from __future__ import annotations

from ember.errors import RateLimited
from ember.gateway.limits import Limiter, Quota

PER_ACCOUNT = Quota(rpm=5)  # attempts per minute for one user name, from anywhere
PER_ADDRESS = Quota(rpm=20)  # attempts per minute from one client address, for any names


class LoginLimits:
    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter

    async def admit(self, name: str, address: str | None) -> None:
        """Count one attempt; RateLimited (429 with Retry-After) when either limit is spent."""
        checks = [(f"login:name:{name.lower()}", PER_ACCOUNT, "this account")]
        if address:
            checks.append((f"login:addr:{address}", PER_ADDRESS, "this address"))
        for subject, quota, what in checks:
            try:
                admission = await self.limiter.admit(subject, quota)
            except RateLimited as exc:
                raise RateLimited(f"too many login attempts for {what}: try again in {exc.retry_after:.0f} s",
                                  limit=exc.limit, retry_after=exc.retry_after, headers=exc.headers) from exc
            await admission.finish(0)

    async def aclose(self) -> None:
        await self.limiter.aclose()
