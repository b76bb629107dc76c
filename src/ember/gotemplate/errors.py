"""The one error type templates raise, and how parse/execution errors name their line."""

from __future__ import annotations

from ember.errors import TemplateError

__all__ = ["TemplateError", "template_error"]


def template_error(line: int, message: str) -> TemplateError:
    return TemplateError(f"template: line {line}: {message}")
