"""Turning messages into a prompt string: the model's Go TEMPLATE layer, else the GGUF's Jinja chat
template, else a plain documented format for models that ship neither (base models).

Plain format (docs/api.md): each message as ``"<Role>: <content>\\n\\n"`` and then ``"Assistant:"``;
``/api/generate`` on such a model sends the system prompt and the prompt separated by a blank line.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jinja2 import Template, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from ember.errors import BadRequest
from ember.gotemplate import prompt_from_template

_THINK_MARKERS = ("<think>", "enable_thinking", "reasoning_content")


@dataclass(frozen=True)
class ModelTraits:
    """What a model can do and how to prompt it; derived from its GGUF metadata and store layers."""

    name: str
    go_template: str | None
    chat_template: str | None
    bos_text: str = ""
    eos_text: str = ""
    embedding_only: bool = False
    has_projector: bool = False
    model_info: dict[str, Any] = field(default_factory=dict)

    @property
    def capabilities(self) -> list[str]:
        caps = ["embedding"] if self.embedding_only else ["completion"]
        template = self.go_template or self.chat_template or ""
        if (self.go_template and ".Tools" in self.go_template) or (
            not self.go_template and self.chat_template and "tools" in self.chat_template
        ):
            caps.append("tools")
        if self.go_template and ".Suffix" in self.go_template:
            caps.append("insert")
        if self.has_projector:
            caps.append("vision")
        if any(marker in template for marker in _THINK_MARKERS):
            caps.append("thinking")
        return caps

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities


def render_chat(traits: ModelTraits, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None,
                think: bool | None) -> str:
    if traits.go_template is not None:
        return prompt_from_template(traits.go_template, system=None, messages=messages, tools=tools or [],
                                    think=think)
    if traits.chat_template:
        return _render_jinja(traits, messages, tools, think)
    return _render_plain(messages)


def render_generate(traits: ModelTraits, prompt: str, *, system: str | None, suffix: str | None,
                    template: str | None) -> str:
    """The /api/generate prompt: a one-message chat through the model's template, or Ollama's
    ``{{ .Prompt }}`` default when the model has no template at all."""
    go_template = template if template is not None else traits.go_template
    if go_template is not None:
        messages = [{"role": "user", "content": prompt}]
        return prompt_from_template(go_template, system=system, messages=messages, tools=[], suffix=suffix)
    if traits.chat_template:
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": prompt}
        ]
        return _render_jinja(traits, messages, None, None)
    return f"{system}\n\n{prompt}" if system else prompt


def _render_plain(messages: list[dict[str, Any]]) -> str:
    parts = [f"{m['role'].capitalize()}: {m.get('content') or ''}\n\n" for m in messages]
    return "".join(parts) + "Assistant:"


def _raise_exception(message: str) -> None:
    raise BadRequest(f"chat template error: {message}")


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _tojson(value: Any, indent: int | None = None, ensure_ascii: bool = False, **_: Any) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=ensure_ascii)


_ENV = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
_ENV.filters["tojson"] = _tojson
_ENV.globals["raise_exception"] = _raise_exception
_ENV.globals["strftime_now"] = _strftime_now


@functools.lru_cache(maxsize=32)
def _compiled(source: str) -> Template:
    return _ENV.from_string(source)


def _render_jinja(traits: ModelTraits, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                  think: bool | None) -> str:
    assert traits.chat_template is not None
    try:
        return _compiled(traits.chat_template).render(
            messages=[_jinja_message(m) for m in messages],
            tools=tools or None,
            add_generation_prompt=True,
            bos_token=traits.bos_text,
            eos_token=traits.eos_text,
            enable_thinking=bool(think) if think is not None else True,
        )
    except BadRequest:
        raise
    except TemplateError as exc:
        raise BadRequest(f"chat template error: {exc}") from None


def _jinja_message(message: dict[str, Any]) -> dict[str, Any]:
    out = {"role": message["role"], "content": message.get("content") or ""}
    if message.get("tool_calls"):
        out["tool_calls"] = [
            {"type": "function", "function": {"name": c["function"]["name"],
                                              "arguments": c["function"].get("arguments", {})}}
            for c in message["tool_calls"]
        ]
    if message.get("tool_name"):
        out["name"] = message["tool_name"]
    if message.get("tool_call_id"):
        out["tool_call_id"] = message["tool_call_id"]
    if message.get("thinking"):
        out["reasoning_content"] = message["thinking"]
    return out
