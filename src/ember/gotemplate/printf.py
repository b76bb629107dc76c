"""fmt.Sprintf and fmt's ``%v``, for the ``print``/``println``/``printf`` template functions."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ember.gotemplate.values import go_print, go_quote, go_type

MAX_WIDTH = 1_000_000
_VERB = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d+))?([a-zA-Z%])")


def fmt_v(value: Any) -> str:
    """fmt's ``%v``: like an action prints, except that nil shows as ``<nil>``."""
    return "<nil>" if value is None else go_print(value)


def go_sprintf(fmt: str, args: Sequence[Any]) -> str:
    """fmt.Sprintf for the verbs templates use: %s %v %d %q %t %f %g %e %x %X %c %%, with flags and width."""
    out: list[str] = []
    used = 0
    last = 0
    for match in _VERB.finditer(fmt):
        out.append(fmt[last:match.start()])
        last = match.end()
        flags, width, precision, verb = match.groups()
        if verb == "%":
            out.append("%")
            continue
        if used >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        value = args[used]
        used += 1
        if _too_large(precision):
            out.append("%!(BADPREC)")
            precision = None
        if _too_large(width):
            out.append("%!(BADWIDTH)")
            width = None
        text = _format_verb(verb, value, precision)
        out.append(_pad(text, flags, int(width) if width else 0, verb))
    out.append(fmt[last:])
    if used < len(args):
        extra = ", ".join(f"{go_type(v)}={fmt_v(v)}" for v in args[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _too_large(number: str | None) -> bool:
    """Go's fmt refuses widths and precisions over 10^6, so a template cannot ask for gigabytes of padding."""
    return number is not None and (len(number) > 7 or int(number) > MAX_WIDTH)


def _format_verb(verb: str, value: Any, precision: str | None) -> str:
    is_int = isinstance(value, int) and not isinstance(value, bool)
    is_number = is_int or isinstance(value, float)
    if verb == "v" or (verb == "s" and not isinstance(value, bytes)):
        text = fmt_v(value)
        return text[: int(precision)] if precision and verb == "s" else text
    if verb == "d" and is_int:
        return str(value)
    if verb == "q" and isinstance(value, str):
        return go_quote(value)
    if verb == "q" and is_int:
        return "'" + _rune(value) + "'"
    if verb == "t" and isinstance(value, bool):
        return "true" if value else "false"
    if verb in "fFeEgG" and is_number:
        digits = int(precision) if precision else (6 if verb in "fFeE" else None)
        if digits is None:
            return fmt_v(float(value))
        return f"{float(value):.{digits}{verb}}"
    if verb in "xX" and (is_int or isinstance(value, str)):
        text = format(value, "x") if is_int else value.encode().hex()
        return text.upper() if verb == "X" else text
    if verb == "c" and is_int:
        return _rune(value)
    return f"%!{verb}({go_type(value)}={fmt_v(value)})"


def _rune(value: int) -> str:
    """The character for code point ``value``; U+FFFD for anything that is not one, as Go prints it."""
    if 0 <= value <= 0x10FFFF and not 0xD800 <= value <= 0xDFFF:
        return chr(value)
    return "\ufffd"


def _pad(text: str, flags: str, width: int, verb: str) -> str:
    if len(text) >= width:
        return text
    if "-" in flags:
        return text.ljust(width)
    if "0" in flags and verb in "dfFeEgGxX":
        sign = text[0] if text[:1] in "+-" else ""
        return sign + text[len(sign):].rjust(width - len(sign), "0")
    return text.rjust(width)
