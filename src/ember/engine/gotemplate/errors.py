"""The one error type templates raise, and how parse/execution errors name their line."""

from __future__ import annotations

from ember.errors import BadRequest


class TemplateError(BadRequest):
    """A template that does not parse, or fails while executing."""


def template_error(line: int, message: str) -> TemplateError:
    return TemplateError(f"template: line {line}: {message}")
