"""Human formatting for CLI tables, the way Ollama's CLI prints them."""

from __future__ import annotations

from datetime import datetime


def human_size(n: int) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value >= 10 else f"{value:.1f} {unit}"
    return f"{n} B"


def _span(seconds: float) -> str:
    if seconds < 1:
        return "Less than a second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    if seconds < 120:
        return "About a minute"
    if seconds < 3600:
        return f"{int(seconds // 60)} minutes"
    if seconds < 7200:
        return "About an hour"
    if seconds < 86400:
        return f"{int(seconds // 3600)} hours"
    if seconds < 86400 * 14:
        return f"{int(seconds // 86400)} days"
    if seconds < 86400 * 60:
        return f"{int(seconds // (86400 * 7))} weeks"
    return f"{int(seconds // (86400 * 30))} months"


def relative_time(text: str, now: datetime | None = None) -> str:
    when = datetime.fromisoformat(text)
    now = now or datetime.now(when.tzinfo)
    delta = (when - now).total_seconds()
    if delta > 86400 * 365 * 50:
        return "Forever"
    return f"{_span(abs(delta))} {'from now' if delta > 0 else 'ago'}"


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["    ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
             for row in [headers, *rows]]
    return "\n".join(lines)
