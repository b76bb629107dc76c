"""The shape both roles' probe endpoints share: ``/healthz`` (liveness) and ``/readyz`` (readiness).

A probe answers 200 with ``{"status": "ok", ...}`` when every check passed, else 503 with
``{"status": "fail", ...}``; ``checks`` names each check, whether it passed, and a one-line detail, so an
operator reading ``kubectl describe`` or ``curl`` sees which one failed. This is a leaf: the engine app, the
web role and ``ember health`` all use it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HEALTHZ = "/healthz"
READYZ = "/readyz"
PROBE_PATHS = (HEALTHZ, READYZ)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


@dataclass(frozen=True)
class Readiness:
    """The result of one probe: ok only when every check is."""

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def status_code(self) -> int:
        return 200 if self.ok else 503

    def failed(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]

    def to_json(self) -> dict[str, Any]:
        return {"status": "ok" if self.ok else "fail", "checks": [check.to_json() for check in self.checks]}

    @classmethod
    def from_json(cls, body: Any) -> Readiness:
        """Parse a probe body (as ``ember health`` reads it); anything malformed raises ValueError."""
        if not isinstance(body, dict) or not isinstance(body.get("checks"), list):
            raise ValueError("not a probe body: expected an object with a 'checks' list")
        checks = []
        for item in body["checks"]:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise ValueError("not a probe body: each check needs a 'name'")
            checks.append(Check(item["name"], item.get("ok") is True, str(item.get("detail", ""))))
        return cls(tuple(checks))
