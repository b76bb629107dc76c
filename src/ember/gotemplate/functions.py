"""The template functions (Go's builtins plus Ollama's ``json``, ``currentDate``, ``yesterdayDate``)."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ember.gotemplate.errors import TemplateError, template_error
from ember.gotemplate.printf import fmt_v, go_sprintf
from ember.gotemplate.values import Struct, go_json, go_type, truth


class Call:
    """Arguments of one function call, with arity checks that raise template errors."""

    def __init__(self, name: str, args: list[Any], line: int) -> None:
        self.name, self.args, self.line = name, args, line

    def fail(self, message: str) -> TemplateError:
        return template_error(self.line, f"error calling {self.name}: {message}")

    def arity(self, low: int, high: int | None = None) -> None:
        high = low if high is None else high
        if not low <= len(self.args) <= high:
            want = str(low) if low == high else f"{low} to {high}"
            raise template_error(self.line, f"wrong number of args for {self.name}: want {want} got {len(self.args)}")


def _fn_not(call: Call) -> Any:
    call.arity(1)
    return not truth(call.args[0])


def _fn_len(call: Call) -> Any:
    call.arity(1)
    value = call.args[0]
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value.encode())  # Go's len counts bytes
    if isinstance(value, Sequence | Mapping):
        return len(value)
    raise call.fail(f"len of type {go_type(value)}")


def _fn_index(call: Call) -> Any:
    call.arity(1, 1 << 16)
    value = call.args[0]
    for key in call.args[1:]:
        if value is None:
            return None
        if isinstance(value, Mapping):
            value = value.get(key)
        elif isinstance(value, list | tuple | str):
            position = _int_arg(call, key)
            items = value.encode() if isinstance(value, str) else value
            if not 0 <= position < len(items):
                raise call.fail(f"index out of range: {position}")
            value = items[position]
        else:
            raise call.fail(f"can't index item of type {go_type(value)}")
    return value


def _fn_slice(call: Call) -> Any:
    call.arity(1, 4)
    value = call.args[0]
    if value is None:
        return None
    if not isinstance(value, list | tuple | str):
        raise call.fail(f"can't slice item of type {go_type(value)}")
    items: bytes | Sequence[Any] = value.encode() if isinstance(value, str) else value
    bounds = [_int_arg(call, a) for a in call.args[1:]]
    if isinstance(value, str) and len(bounds) == 3:
        raise call.fail("cannot 3-index slice a string")
    limits = [0, *bounds] if bounds else [0]
    if any(b < 0 or b > len(items) for b in bounds) or limits != sorted(limits):
        raise call.fail(f"index out of range: {bounds}")
    start = bounds[0] if bounds else 0
    stop = bounds[1] if len(bounds) > 1 else len(items)
    piece = items[start:stop]
    if isinstance(piece, bytes):
        return piece.decode("utf-8", "replace")
    return list(piece)


def _int_arg(call: Call, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise call.fail(f"cannot index slice/array with type {go_type(value)}")
    return value


def _equal(left: Any, right: Any) -> bool:
    # Python's True == 1 must not leak into Go semantics, where bool and int never compare equal.
    if isinstance(left, bool) != isinstance(right, bool):
        return False
    if isinstance(left, Struct) or isinstance(right, Struct):
        return left is right
    return bool(left == right)


def _fn_eq(call: Call) -> Any:
    if len(call.args) < 2:
        raise call.fail("missing argument for comparison")
    return any(_equal(call.args[0], other) for other in call.args[1:])


def _fn_ne(call: Call) -> Any:
    call.arity(2)
    return not _equal(call.args[0], call.args[1])


def _ordered(call: Call) -> tuple[Any, Any]:
    call.arity(2)
    left, right = call.args
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (left, right))
    if not numbers and not (isinstance(left, str) and isinstance(right, str)):
        raise call.fail("incompatible types for comparison")
    return left, right


def _fn_lt(call: Call) -> Any:
    left, right = _ordered(call)
    return left < right


def _fn_le(call: Call) -> Any:
    left, right = _ordered(call)
    return left <= right


def _fn_gt(call: Call) -> Any:
    left, right = _ordered(call)
    return left > right


def _fn_ge(call: Call) -> Any:
    left, right = _ordered(call)
    return left >= right


def _fn_print(call: Call) -> Any:
    """fmt.Sprint: a space goes between operands when neither side is a string."""
    out: list[str] = []
    for i, value in enumerate(call.args):
        if i and not isinstance(value, str) and not isinstance(call.args[i - 1], str):
            out.append(" ")
        out.append(fmt_v(value))
    return "".join(out)


def _fn_println(call: Call) -> Any:
    return " ".join(fmt_v(v) for v in call.args) + "\n"


def _fn_printf(call: Call) -> Any:
    if not call.args or not isinstance(call.args[0], str):
        raise call.fail("printf needs a format string")
    return go_sprintf(call.args[0], call.args[1:])


def _fn_json(call: Call) -> Any:
    call.arity(1)
    return go_json(call.args[0])


def _fn_current_date(call: Call) -> Any:
    call.arity(0)
    return _dt.date.today().isoformat()


def _fn_yesterday_date(call: Call) -> Any:
    call.arity(0)
    return (_dt.date.today() - _dt.timedelta(days=1)).isoformat()


FUNCTIONS: dict[str, Callable[[Call], Any]] = {
    "not": _fn_not, "len": _fn_len, "index": _fn_index, "slice": _fn_slice,
    "eq": _fn_eq, "ne": _fn_ne, "lt": _fn_lt, "le": _fn_le, "gt": _fn_gt, "ge": _fn_ge,
    "print": _fn_print, "println": _fn_println, "printf": _fn_printf, "json": _fn_json,
    "currentDate": _fn_current_date, "yesterdayDate": _fn_yesterday_date,
}
# ``and``/``or`` evaluate their arguments lazily (Go 1.18+), so the executor runs them itself.
SHORT_CIRCUIT = frozenset({"and", "or"})
KNOWN_FUNCTIONS = frozenset(FUNCTIONS) | SHORT_CIRCUIT
