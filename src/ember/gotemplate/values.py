"""Template values as Go sees them: structs, truth, field lookup, type names, and how values print."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ember.gotemplate.errors import template_error


@dataclass(frozen=True)
class Struct:
    """A Go struct value: fields by Go name, plus the JSON that ``json.Marshal`` would produce for it.

    Ollama's message and tool types print as JSON (they implement ``String``), so printing a Struct does too.
    """

    fields: Mapping[str, Any]
    json: Any


def truth(value: Any) -> bool:
    """Go's template truth: false, 0, nil and empty strings, lists and maps are false; structs are true."""
    if value is None:
        return False
    if isinstance(value, Struct):
        return True
    if isinstance(value, bool | int | float):
        return bool(value)
    if isinstance(value, str | bytes | Sequence | Mapping):
        return len(value) > 0
    return True


def field(value: Any, name: str, line: int) -> Any:
    """``value.name``: nil stays nil, as with ``missingkey=zero``; other non-map values are an error."""
    if value is None:
        return None
    if isinstance(value, Struct):
        return value.fields.get(name)
    if isinstance(value, Mapping):
        return value.get(name)
    raise template_error(line, f"can't evaluate field {name} in type {go_type(value)}")


def go_type(value: Any) -> str:
    names = {bool: "bool", int: "int", float: "float64", str: "string", list: "[]interface {}",
             tuple: "[]interface {}", dict: "map[string]interface {}"}
    return names.get(type(value), type(value).__name__)


def go_float(value: float) -> str:
    """Go's ``%v`` of a float64 (strconv 'g', shortest): exponent form when the exponent is < -4 or >= 6."""
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    # repr gives the shortest digits that round-trip, as Go's shortest formatting does.
    sign, digit_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + exponent  # position of the decimal point relative to the digit string
    minus = "-" if sign else ""
    sci = point - 1
    if sci < -4 or sci >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{minus}{mantissa}e{'-' if sci < 0 else '+'}{abs(sci):02d}"
    if point <= 0:
        return f"{minus}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return minus + digits + "0" * (point - len(digits))
    return f"{minus}{digits[:point]}.{digits[point:]}"


_GO_ESCAPES = {"\a": r"\a", "\b": r"\b", "\f": r"\f", "\n": r"\n", "\r": r"\r", "\t": r"\t", "\v": r"\v",
               "\\": r"\\", '"': r"\""}


def go_quote(text: str) -> str:
    """strconv.Quote: printable runes kept, the rest escaped as Go writes them."""
    out = ['"']
    for ch in text:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def go_json(value: Any) -> str:
    """Go's ``json.Marshal``: compact, UTF-8 kept, ``<``, ``>``, ``&`` escaped; integral floats print bare."""
    text = json.dumps(_json_ready(value), ensure_ascii=False, separators=(",", ":"))
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                         ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(raw, escaped)
    return text


def _json_ready(value: Any) -> Any:
    if isinstance(value, Struct):
        return _json_ready(value.json)
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    return value


def go_print(value: Any) -> str:
    """How an action prints a value (fmt's ``%v``); nil prints as nothing, maps and structs as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, Struct | Mapping):
        return go_json(value)
    if isinstance(value, list | tuple):
        return "[" + " ".join("<nil>" if v is None else go_print(v) for v in value) + "]"
    return str(value)
