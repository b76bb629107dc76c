"""Checks on names people choose for users and keys. Anything printable is allowed, quotes and
semicolons included: names are bound as parameters, never spliced into SQL."""

from __future__ import annotations

import unicodedata

from ember.db.tables import NAME_LENGTH
from ember.errors import BadRequest, InvalidName


def check_name(name: object, what: str) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidName(f"{what} name must not be empty")
    if len(name) > NAME_LENGTH:
        raise InvalidName(f"{what} name is longer than {NAME_LENGTH} characters")
    if name != name.strip():
        raise InvalidName(f"{what} name must not start or end with whitespace")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in name):
        raise InvalidName(f"{what} name must not contain control characters")
    return name


def check_limit(value: int | None, what: str) -> int | None:
    """Per-key limits are positive integers, or None for the role's default."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise BadRequest(f"{what} must be a positive integer")
    return value
