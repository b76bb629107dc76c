"""Model policies applied to a request body before it is forwarded to an engine.

In this order:
1. Admin defaults (system prompt, options, keep_alive) fill in what the request left out.
2. Locked options: for callers that are not privileged (admin keys are), the policy's value replaces what
   the request set; a locked option without a default value is removed, so the model's own value applies.
3. Server maxima (EMBER_MAX_NUM_CTX, EMBER_MAX_PREDICT, EMBER_MAX_KEEP_ALIVE) lower larger values for every
   caller, privileged or not. They apply to what a request asks for; a request that asks for nothing gets the
   engine's defaults.

Every option the server replaced is named in the X-Ember-Overridden response header. Values the engine will
refuse (wrong types, out of range) are passed through untouched so the engine's 400 explains them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ember.config import Settings
from ember.durations import parse_keep_alive
from ember.errors import BadRequest
from ember.options import OPTION_TYPES

if TYPE_CHECKING:
    from ember.db.policies import ModelPolicy

OVERRIDE_HEADER = "X-Ember-Overridden"
SYSTEM = "system"
KEEP_ALIVE = "keep_alive"
Api = Literal["ollama", "openai"]

_MISSING: Any = object()


@dataclass(frozen=True)
class PolicyOutcome:
    body: dict[str, Any]
    overridden: tuple[str, ...]  # option names the server replaced, in the order it did so


def apply_policy(body: dict[str, Any], *, api: Api, policy: ModelPolicy | None, settings: Settings,
                 privileged: bool) -> PolicyOutcome:
    """The body to forward (a copy; ``body`` is not changed) and what was overridden."""
    request = _Request(body, api)
    overridden: list[str] = []
    if policy is not None:
        _fill_defaults(request, policy)
        if not privileged:
            overridden += _enforce_locks(request, policy)
    overridden += _apply_maxima(request, settings)
    return PolicyOutcome(request.body, tuple(dict.fromkeys(overridden)))


def _fill_defaults(request: _Request, policy: ModelPolicy) -> None:
    if policy.system is not None and request.get(SYSTEM) is _MISSING:
        request.set(SYSTEM, policy.system)
    for name, value in policy.defaults.items():
        if request.get(name) is _MISSING:
            request.set(name, value)


def _enforce_locks(request: _Request, policy: ModelPolicy) -> list[str]:
    if SYSTEM in policy.locked:
        request.check_system_cannot_be_bypassed()
    overridden = []
    for name in sorted(policy.locked):
        wanted = policy.system if name == SYSTEM else policy.defaults.get(name, _MISSING)
        asked = request.get(name)
        if asked is not _MISSING and not _same(asked, wanted):
            overridden.append(name)
        if wanted is _MISSING or wanted is None:
            request.remove(name)
        else:
            request.set(name, wanted)
    return overridden


def _apply_maxima(request: _Request, settings: Settings) -> list[str]:
    overridden = []
    num_ctx = request.get("num_ctx")
    if settings.max_num_ctx > 0 and _is_number(num_ctx) and num_ctx > settings.max_num_ctx:
        request.set("num_ctx", settings.max_num_ctx)
        overridden.append("num_ctx")
    num_predict = request.get("num_predict")
    # -1 (no limit) and -2 (fill the context) are Ollama's ways of asking for more than any maximum.
    if _is_number(num_predict) and (num_predict < 0 or num_predict > settings.max_predict):
        request.set("num_predict", settings.max_predict)
        overridden.append("num_predict")
    if _keep_alive_over(request.get(KEEP_ALIVE), settings.max_keep_alive):
        request.set(KEEP_ALIVE, _seconds(settings.max_keep_alive))
        overridden.append(KEEP_ALIVE)
    return overridden


def _keep_alive_over(asked: Any, maximum: float) -> bool:
    if asked is _MISSING or asked is None or maximum < 0 or math.isinf(maximum):
        return False
    try:
        seconds = parse_keep_alive(asked)
    except BadRequest:
        return False  # the engine refuses it with its own message
    return seconds is not None and seconds > maximum


def _seconds(value: float) -> int | float:
    return int(value) if value == int(value) else value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


def _same(a: Any, b: Any) -> bool:
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    return type(a) is type(b) and bool(a == b)


class _Request:
    """Reads and writes one option wherever the API keeps it, on a copy of the body.

    Ollama: options in ``options``, ``keep_alive`` and (generate) ``system`` at the top, the system prompt of a
    chat in a leading system message. OpenAI: options at the top level (the engine also reads an ``options``
    object, which the top level overrides), ``num_predict`` as ``max_completion_tokens`` / ``max_tokens``
    (which override both), the system prompt in a leading system or developer message.
    """

    def __init__(self, body: dict[str, Any], api: Api) -> None:
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        options = body.get("options")
        if options is not None and not isinstance(options, dict):
            raise BadRequest("options must be an object")
        self.api = api
        self.body = dict(body)
        self.body_options: dict[str, Any] | None = dict(options) if options is not None else None
        if self.body_options is not None:
            self.body["options"] = self.body_options

    # -- one option, wherever it lives ------------------------------------------------------------------------

    def get(self, name: str) -> Any:
        if name == SYSTEM:
            return self._get_system()
        for container, key in self._places(name):
            if container is not None and container.get(key) is not None:
                return container[key]
        return _MISSING

    def set(self, name: str, value: Any) -> None:
        if name == SYSTEM:
            self._set_system(value)
            return
        places = [(c, k) for c, k in self._places(name) if c is not None and c.get(k) is not None]
        if not places:  # not asked for anywhere: write it where a client of this API would
            places = [self._home(name)]
        for container, key in places:
            container[key] = value

    def remove(self, name: str) -> None:
        if name == SYSTEM:
            self._set_system(None)
            return
        for container, key in self._places(name):
            if container is not None:
                container.pop(key, None)

    def _places(self, name: str) -> list[tuple[dict[str, Any] | None, str]]:
        """Where ``name`` may be, the place the engine reads first first."""
        if name == KEEP_ALIVE or name not in OPTION_TYPES:
            return [(self.body, name)] if name == KEEP_ALIVE else [(self.body_options, name)]
        if self.api == "ollama":
            return [(self.body_options, name)]
        top = [(self.body, "max_completion_tokens"), (self.body, "max_tokens")] if name == "num_predict" else []
        return [*top, (self.body, name), (self.body_options, name)]

    def _home(self, name: str) -> tuple[dict[str, Any], str]:
        if name == KEEP_ALIVE:
            return self.body, name
        if self.api == "openai" and name in OPTION_TYPES:
            return self.body, "max_tokens" if name == "num_predict" else name
        if self.body_options is None:
            self.body_options = self.body["options"] = {}
        return self.body_options, name

    # -- the system prompt ------------------------------------------------------------------------------------

    def _system_roles(self) -> tuple[str, ...]:
        return ("system", "developer") if self.api == "openai" else ("system",)

    def _messages(self) -> list[Any] | None:
        messages = self.body.get("messages")
        return messages if isinstance(messages, list) else None

    def _get_system(self) -> Any:
        messages = self._messages()
        if messages is None:
            return self.body.get(SYSTEM, _MISSING) if self._takes_system_field() else _MISSING
        for message in messages:
            if isinstance(message, dict) and message.get("role") in self._system_roles():
                return message.get("content", "")
        return _MISSING

    def _set_system(self, text: str | None) -> None:
        messages = self._messages()
        if messages is None:
            if not self._takes_system_field():
                return  # embeddings and OpenAI completions have no system prompt
            if text is None:
                self.body.pop(SYSTEM, None)
            else:
                self.body[SYSTEM] = text
            return
        kept = [m for m in messages if not (isinstance(m, dict) and m.get("role") in self._system_roles())]
        self.body["messages"] = ([{"role": "system", "content": text}] if text is not None else []) + kept

    def _takes_system_field(self) -> bool:
        """Ollama's /api/generate has a ``system`` field; it is the only body with a prompt and no messages.
        In raw mode there is no template to put a system prompt in (the engine refuses one)."""
        return self.api == "ollama" and "prompt" in self.body and not self.body.get("raw")

    def check_system_cannot_be_bypassed(self) -> None:
        """A locked system prompt would be skipped by /api/generate's raw mode or a template of the caller's."""
        if self.api == "ollama" and "prompt" in self.body and (self.body.get("raw") or self.body.get("template")):
            raise BadRequest("this model's system prompt is locked: raw mode and custom templates are not allowed")
