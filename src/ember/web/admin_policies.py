"""Admin: per-model policies (default system prompt and options, options callers may not override).

The gateway applies them on every request (ember.gateway.policy); this module only checks and stores them.
Values are checked here as the engine would check them, so a policy can never make every request a 400.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ember.db.policies import ModelPolicy, delete_policy, get_policies, set_policy
from ember.durations import parse_keep_alive
from ember.errors import BadRequest, PolicyNotFound
from ember.gateway.policy import KEEP_ALIVE, SYSTEM
from ember.names import ModelName
from ember.options import OPTION_TYPES
from ember.web.admin_guard import admin_page, require_admin
from ember.web.chat_json import MAX_SYSTEM_CHARS, json_body, string_list, text_field
from ember.web.chat_models import checked_options
from ember.web.services import web

DEFAULTABLE = (*sorted(OPTION_TYPES), KEEP_ALIVE)
LOCKABLE = (SYSTEM, *DEFAULTABLE)
MAX_BODY = 64 * 1024


def policy_json(policy: ModelPolicy) -> dict[str, Any]:
    return {"model": policy.model, "system": policy.system, "defaults": dict(policy.defaults),
            "locked": sorted(policy.locked)}


async def policies_page(request: Request) -> Response:
    return await admin_page(request, "admin_policies.html", section="policies")


async def list_all(request: Request) -> Response:
    await require_admin(request)
    policies = await anyio.to_thread.run_sync(get_policies, web(request).database)
    return JSONResponse({"policies": [policy_json(p) for _, p in sorted(policies.items())],
                         "options": {**{name: OPTION_TYPES[name] for name in sorted(OPTION_TYPES)},
                                     KEEP_ALIVE: "duration"}})


async def put(request: Request) -> Response:
    """PUT {"system": str|null, "defaults": {option: value}, "locked": [option]}: create or replace."""
    await require_admin(request)
    policy = checked_policy(request.path_params["model"], await json_body(request, max_bytes=MAX_BODY))
    await anyio.to_thread.run_sync(set_policy, web(request).database, policy)
    return JSONResponse(policy_json(policy))


async def delete(request: Request) -> Response:
    await require_admin(request)
    model = request.path_params["model"]
    ModelName.parse(model)
    if not await anyio.to_thread.run_sync(delete_policy, web(request).database, model):
        raise PolicyNotFound(model)
    return Response(status_code=204)


def checked_policy(model: str, body: dict[str, Any]) -> ModelPolicy:
    display = ModelName.parse(model).display  # InvalidModelName (400) says what is wrong
    system = text_field(body, "system", limit=MAX_SYSTEM_CHARS)
    locked = frozenset(string_list(body, "locked", limit=len(LOCKABLE)))
    unknown = sorted(locked - set(LOCKABLE))
    if unknown:
        raise BadRequest(f"cannot lock unknown options: {', '.join(unknown)}")
    return ModelPolicy(model=display, system=system or None, defaults=checked_defaults(body.get("defaults")),
                       locked=locked)


def checked_defaults(value: Any) -> dict[str, Any]:
    """Known options with values of the right type and range (null drops a default), and keep_alive."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest('"defaults" must be an object')
    options = checked_options({name: option for name, option in value.items() if name != KEEP_ALIVE})
    keep_alive = value.get(KEEP_ALIVE)
    if keep_alive is None:
        return options
    parse_keep_alive(keep_alive)  # BadRequest names the problem
    return {**options, KEEP_ALIVE: keep_alive}
