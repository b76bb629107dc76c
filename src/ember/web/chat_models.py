"""Which models a UI user may chat with, with each model's admin policy, and the check that a chat's saved
system prompt and options do not touch what the policy locks.

The gateway enforces locks on every request anyway; refusing to save a locked option (403) tells the user at
once instead of silently replacing their value on each turn.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread

from ember.db.database import Database
from ember.db.policies import ModelPolicy, get_policies, get_policy, policy_key
from ember.db.sessions import WebUser
from ember.errors import BadRequest, Forbidden
from ember.gateway import listings
from ember.gateway.auth import Principal
from ember.names import ModelName
from ember.options import OPTION_TYPES, coerce_option
from ember.web.services import WebUI

MAX_MODEL_CHARS = 255


async def usable_models(ui: WebUI, user: WebUser) -> list[dict[str, Any]]:
    """The models on the engines this user may use, each with its policy's defaults, locks and system."""
    principal = Principal(key=None, user=user)
    tags = await listings.merged_tags(ui.gateway.pool, principal.allows_model)
    policies = await anyio.to_thread.run_sync(get_policies, ui.database)
    models = []
    for row in tags["models"]:
        name = str(row.get("name", ""))
        policy = policies.get(_key(name))
        models.append({"name": name,
                       "defaults": dict(policy.defaults) if policy else {},
                       "locked": sorted(policy.locked) if policy else [],
                       "system": policy.system if policy else None})
    return models


def checked_model(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_MODEL_CHARS:
        raise BadRequest('"model" must be a model name')
    ModelName.parse(value.strip())  # InvalidModelName (400) says what is wrong
    return value.strip()


def checked_options(value: Any) -> dict[str, Any]:
    """Known Ollama options with values of the right type (coerced as the engine would)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest('"options" must be an object')
    unknown = sorted(name for name in value if name not in OPTION_TYPES)
    if unknown:
        raise BadRequest(f"unknown options: {', '.join(unknown)}")
    return {name: coerce_option(name, v) for name, v in value.items() if v is not None}


def check_locks(database: Database, user: WebUser, model: str, system: str | None,
                options: dict[str, Any]) -> None:
    """Forbidden if a non-admin sets an option (or the system prompt) the model's policy locks."""
    if user.role == "admin":
        return  # admins may override locks, in the UI as with an admin key
    policy = get_policy(database, model)
    if policy is None:
        return
    touched = sorted(set(options) & policy.locked) + (["system"] if system and "system" in policy.locked else [])
    if touched:
        raise Forbidden(f"the admin has locked {', '.join(touched)} for model {model!r}; remove "
                        f"{'it' if len(touched) == 1 else 'them'} from the chat's settings")


def policy_for(database: Database, model: str) -> ModelPolicy | None:
    return get_policy(database, model)


def _key(name: str) -> str:
    try:
        return policy_key(name)
    except BadRequest:
        return name
