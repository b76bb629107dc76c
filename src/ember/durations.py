"""Go-style durations ("5m", "1h30m", "300ms", "-1m", "0") and Ollama's keep_alive forms."""

from __future__ import annotations

import math
import re

from ember.errors import BadRequest

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
FOREVER = math.inf


def parse_go_duration(text: str) -> float:
    """Seconds for a Go duration string; negative durations mean forever (as keep_alive reads them)."""
    text = text.strip()
    if text in ("0", "+0", "-0"):
        return 0.0
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    pos, total = 0, 0.0
    while pos < len(body):
        match = _PART.match(body, pos)
        if not match:
            raise BadRequest(f'time: invalid duration "{text}"' if pos else f'time: missing unit in duration "{text}"')
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not body:
        raise BadRequest(f'time: invalid duration "{text}"')
    return FOREVER if sign < 0 else total


_DAYS = re.compile(r"(\d+(?:\.\d*)?)d((?:\d.*)?)")


def parse_duration(text: str) -> float:
    """Environment and CLI form: a Go duration, a plain number of seconds, or days first ("30d", "1d12h").

    Go has no day unit; retention and key expiry are naturally said in days. Negative = forever.
    """
    try:
        seconds = float(text)
    except ValueError:
        days = _DAYS.fullmatch(text.strip())
        if days is None:
            return parse_go_duration(text)
        rest = days.group(2)
        return float(days.group(1)) * 86400.0 + (parse_go_duration(rest) if rest else 0.0)
    return FOREVER if seconds < 0 else seconds


def parse_keep_alive(value: object) -> float | None:
    """Request form: JSON number = seconds, JSON string = Go duration; None = not given."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise BadRequest("keep_alive must be a number of seconds or a duration string")
    if isinstance(value, int | float):
        if math.isnan(value):  # JSON NaN: no expiry time can be computed from it (it broke /api/ps)
            raise BadRequest("keep_alive must be a number of seconds or a duration string, got NaN")
        return FOREVER if value < 0 else float(value)
    if isinstance(value, str):
        return parse_go_duration(value)
    raise BadRequest("keep_alive must be a number of seconds or a duration string")
