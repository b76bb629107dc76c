"""Model policies: per model, admin-set defaults (system prompt, options) and options callers cannot override."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from sqlalchemy import delete, select

from ember.db.database import Database
from ember.db.tables import ModelPolicyRow, utcnow
from ember.errors import BadRequest
from ember.names import ModelName


@dataclass(frozen=True)
class ModelPolicy:
    model: str
    system: str | None = None
    defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # Ollama option -> value
    locked: frozenset[str] = frozenset()  # option names non-admin callers cannot override ("system" allowed)

    @classmethod
    def from_row(cls, row: ModelPolicyRow) -> ModelPolicy:
        return cls(model=row.model, system=row.system, defaults=MappingProxyType(dict(row.defaults or {})),
                   locked=frozenset(row.locked or ()))


def get_policies(db: Database) -> dict[str, ModelPolicy]:
    """Every policy, keyed by the model's display name (``x:latest``)."""
    with db.reading() as session:
        return {row.model: ModelPolicy.from_row(row) for row in session.scalars(select(ModelPolicyRow))}


def get_policy(db: Database, model: str) -> ModelPolicy | None:
    with db.reading() as session:
        row = session.get(ModelPolicyRow, policy_key(model))
        return ModelPolicy.from_row(row) if row is not None else None


def set_policy(db: Database, policy: ModelPolicy) -> None:
    """Create or replace the policy for ``policy.model``."""
    key = policy_key(policy.model)
    _check_json(policy.defaults)
    with db.session() as session:
        row = session.get(ModelPolicyRow, key) or ModelPolicyRow(model=key)
        row.system = policy.system
        row.defaults = dict(policy.defaults)
        row.locked = sorted(policy.locked)
        row.updated_at = utcnow()
        session.add(row)


def delete_policy(db: Database, model: str) -> bool:
    with db.session() as session:
        result = session.execute(delete(ModelPolicyRow).where(ModelPolicyRow.model == policy_key(model)))
        return bool(getattr(result, "rowcount", 0))


def _check_json(defaults: Mapping[str, Any]) -> None:
    try:
        json.dumps(dict(defaults), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"policy defaults must be JSON values: {exc}") from exc


def policy_key(model: str) -> str:
    """Policies are stored under the model's display name, so ``x`` and ``x:latest`` share one."""
    return ModelName.parse(model).display
