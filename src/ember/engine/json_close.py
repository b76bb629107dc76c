"""Where a JSON answer stands, and the shortest text that finishes it validly (pure, no llama.cpp).

``JsonTracker`` follows text produced under a ``format`` grammar one character at a time: which containers are
open, which keys each object has, how many items each array has, and the scalar in progress. ``closing()``
is the shortest continuation that makes the whole text parse and satisfy the schema's structural keywords
(``required``, ``minItems``, ``enum``/``const``, ``minLength``, numeric bounds, ``$ref``, ``anyOf``/``oneOf``).
The closing is found by feeding small steps into a copy of the tracker until it is complete, so the tracker
and the closing can never disagree about the grammar.
"""

from __future__ import annotations

import copy
import enum
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

Schema = dict[str, Any]

# Format "json" is any object (llama.cpp's JSON grammar's root is an object).
ANY_OBJECT: Schema = {"type": "object"}
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?\Z")
_NUMBER_CHARS = frozenset("0123456789+-.eE")
_WHITESPACE = frozenset(" \t\n\r")
# Hostile schemas (anyOf inside anyOf, huge minItems) must not turn one closing into unbounded work.
_MAX_WORK = 20_000
_MAX_SIZE = 100_000
_TYPE_OF_FIRST = {"{": "object", "[": "array", '"': "string", "t": "boolean", "f": "boolean", "n": "null"}


class Phase(enum.Enum):
    FIRST = "first"  # object: after "{" / array: after "["
    AFTER_COMMA = "after_comma"
    COLON = "colon"  # object: a key is done, ":" is next
    VALUE = "value"  # object: ":" is done, the value is next
    AFTER_VALUE = "after_value"


@dataclass
class Frame:
    """An open object or array."""

    is_object: bool
    schema: Schema
    phase: Phase = Phase.FIRST
    keys: list[str] = field(default_factory=list)
    key: str | None = None  # object: the key whose value comes next
    count: int = 0  # array: items so far


@dataclass
class Scalar:
    """A string, number or literal (true/false/null, an enum or const member, a schema-bound key) in progress."""

    kind: str  # "string", "number" or "literal"
    schema: Schema
    text: str = ""  # what was read of it (strings: without the opening quote)
    is_key: bool = False
    candidates: tuple[str, ...] = ()  # literal: the texts it can still become
    escape: int = -1  # string: -1 none, 0 after a backslash, 1..4 hex digits of \\u read (1 = none yet)
    chars: int = 0  # string: characters so far, an escape counting one


class SchemaTooComplex(ValueError):
    """Closing this schema would take more work or text than the limits allow."""


class JsonTracker:
    def __init__(self, schema: Schema, root: Schema | None = None) -> None:
        self.root = root if root is not None else schema
        self.top = schema
        self.stack: list[Frame] = []
        self.scalar: Scalar | None = None
        self.started = False
        self.lost = False  # text the tracker cannot follow: no closing is promised
        self._work = 0

    @classmethod
    def for_format(cls, fmt: Any) -> JsonTracker:
        return cls(ANY_OBJECT if fmt == "json" else dict(fmt))

    def copy(self) -> JsonTracker:
        twin = JsonTracker(self.top, self.root)
        twin.stack = [copy.copy(f) for f in self.stack]
        for frame in twin.stack:
            frame.keys = list(frame.keys)
        twin.scalar = copy.copy(self.scalar)
        twin.started, twin.lost = self.started, self.lost
        return twin

    # -- reading -----------------------------------------------------------------------------------------

    def feed(self, text: str) -> None:
        for ch in text:
            if self.lost:
                return
            self._char(ch)

    def _char(self, ch: str) -> None:
        if self.scalar is not None and self._scalar_char(self.scalar, ch):
            return
        if ch in _WHITESPACE:
            return
        if not self.stack:
            if self.started:
                self.lost = True
            else:
                self.started = True
                self._begin_value(self.top, ch)
            return
        frame = self.stack[-1]
        if frame.is_object:
            self._object_char(frame, ch)
        else:
            self._array_char(frame, ch)

    def _object_char(self, frame: Frame, ch: str) -> None:
        phase = frame.phase
        if phase in (Phase.FIRST, Phase.AFTER_COMMA) and ch == '"':
            self._begin_key(frame)
        elif phase is Phase.FIRST and ch == "}" or phase is Phase.AFTER_VALUE and ch == "}":
            self._close_container()
        elif phase is Phase.AFTER_VALUE and ch == ",":
            frame.phase = Phase.AFTER_COMMA
        elif phase is Phase.COLON and ch == ":":
            frame.phase = Phase.VALUE
        elif phase is Phase.VALUE:
            self._begin_value(self._property_schema(frame, frame.key or ""), ch)
        else:
            self.lost = True

    def _array_char(self, frame: Frame, ch: str) -> None:
        phase = frame.phase
        if phase in (Phase.FIRST, Phase.AFTER_VALUE) and ch == "]":
            self._close_container()
        elif phase is Phase.AFTER_VALUE and ch == ",":
            frame.phase = Phase.AFTER_COMMA
        elif phase in (Phase.FIRST, Phase.AFTER_COMMA):
            self._begin_value(self._item_schema(frame), ch)
        else:
            self.lost = True

    def _begin_key(self, frame: Frame) -> None:
        names = _closed_names(self._resolve(frame.schema))
        if names is None:
            self.scalar = Scalar("string", {}, is_key=True)
            return
        left = tuple(dict.fromkeys(t for n in names if n not in frame.keys
                                   for t in (json.dumps(n), json.dumps(n, ensure_ascii=False))))
        self.scalar = Scalar("literal", {}, text='"', is_key=True, candidates=left)
        if not left:
            self.lost = True

    def _begin_value(self, schema: Schema, ch: str) -> None:
        chosen = self._choose(schema, ch)
        if chosen is None:
            self.lost = True
            return
        literals = _literals(chosen)
        if literals is not None:
            self.scalar = Scalar("literal", chosen, candidates=literals)
            self._scalar_char(self.scalar, ch)
        elif ch in "{[":
            self.stack.append(Frame(is_object=ch == "{", schema=chosen))
        elif ch == '"':
            self.scalar = Scalar("string", chosen)
        elif ch == "-" or ch.isdigit():
            self.scalar = Scalar("number", chosen, text=ch)
        elif ch in "tfn":
            self.scalar = Scalar("literal", chosen, text=ch,
                                 candidates=tuple(w for w in ("true", "false", "null") if w[0] == ch))
        else:
            self.lost = True

    def _scalar_char(self, scalar: Scalar, ch: str) -> bool:
        """Take ``ch`` into the scalar; False when the scalar ended before it (``ch`` belongs to the parent)."""
        if scalar.kind == "string":
            self._string_char(scalar, ch)
            return True
        if scalar.kind == "number":
            if ch in _NUMBER_CHARS:
                scalar.text += ch
                return True
            self._end_scalar(valid=bool(_NUMBER.match(scalar.text)))
            return False
        grown = scalar.text + ch
        if any(c.startswith(grown) for c in scalar.candidates):
            scalar.text = grown
            return True
        self._end_scalar(valid=scalar.text in scalar.candidates)
        return False

    def _string_char(self, scalar: Scalar, ch: str) -> None:
        if scalar.escape == 0:
            scalar.escape = 1 if ch == "u" else -1
            if ch != "u":
                scalar.chars += 1
        elif scalar.escape > 0:
            scalar.escape = -1 if scalar.escape == 4 else scalar.escape + 1
            if scalar.escape == -1 and not 0xD800 <= _hex((scalar.text + ch)[-4:]) <= 0xDBFF:
                scalar.chars += 1  # the first half of a surrogate pair is not a character yet
        elif ch == "\\":
            scalar.escape = 0
        elif ch == '"':
            self._end_scalar(valid=True)
            return
        else:
            scalar.chars += 1
        scalar.text += ch

    def _end_scalar(self, *, valid: bool) -> None:
        scalar = self.scalar
        assert scalar is not None
        self.scalar = None
        if not valid:
            self.lost = True
        elif scalar.is_key:
            frame = self.stack[-1]
            frame.key = json.loads(scalar.text) if scalar.kind == "literal" else _unescape(scalar.text)
            frame.keys.append(frame.key or "")
            frame.phase = Phase.COLON
        else:
            self._value_done()

    def _close_container(self) -> None:
        self.stack.pop()
        self._value_done()

    def _value_done(self) -> None:
        if self.stack:
            frame = self.stack[-1]
            frame.phase = Phase.AFTER_VALUE
            frame.count += 1

    # -- schemas -----------------------------------------------------------------------------------------

    def _resolve(self, schema: Schema) -> Schema:
        """Follow local ``$ref``s and fold ``allOf`` into one schema."""
        for _ in range(32):
            ref = schema.get("$ref")
            if not isinstance(ref, str) or not ref.startswith("#"):
                break
            target: Any = self.root
            for part in [p for p in ref[1:].split("/") if p]:
                target = target.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(target, dict) else {}
            found = target if isinstance(target, dict) else {}
            schema = {**{k: v for k, v in schema.items() if k != "$ref"}, **found}
        parts = schema.get("allOf")
        if isinstance(parts, list):
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in parts:
                if isinstance(part, dict):
                    merged = _merge(merged, self._resolve(part))
            schema = merged
        return schema

    def _branches(self, schema: Schema) -> list[Schema]:
        schema = self._resolve(schema)
        options = schema.get("anyOf") or schema.get("oneOf")
        if isinstance(options, list) and options:
            base = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
            return [b for o in options if isinstance(o, dict) for b in self._branches(_merge(base, o))]
        kinds = schema.get("type")
        if isinstance(kinds, list):
            return [{**schema, "type": k} for k in kinds]
        return [schema]

    def _choose(self, schema: Schema, ch: str) -> Schema | None:
        """The branch of ``schema`` a value starting with ``ch`` follows (the first that fits)."""
        for branch in self._branches(schema):
            literals = _literals(branch)
            if literals is not None:
                if any(c.startswith(ch) for c in literals):
                    return branch
                continue
            kind = branch.get("type")
            first = _TYPE_OF_FIRST.get(ch, "number" if ch == "-" or ch.isdigit() else "")
            if kind is None or kind == first or kind == "integer" and first == "number":
                return branch
        return None

    def _property_schema(self, frame: Frame, key: str) -> Schema:
        schema = self._resolve(frame.schema)
        props = schema.get("properties")
        if isinstance(props, dict) and isinstance(props.get(key), dict):
            return dict(props[key])
        extra = schema.get("additionalProperties")
        return dict(extra) if isinstance(extra, dict) else {}

    def _item_schema(self, frame: Frame) -> Schema:
        schema = self._resolve(frame.schema)
        prefix = schema.get("prefixItems")
        if isinstance(prefix, list) and frame.count < len(prefix) and isinstance(prefix[frame.count], dict):
            return dict(prefix[frame.count])
        items = schema.get("items")
        return dict(items) if isinstance(items, dict) else {}

    # -- closing -----------------------------------------------------------------------------------------

    @property
    def complete(self) -> bool:
        if self.lost or self.stack or not self.started:
            return False
        return self.scalar is None or self._scalar_is_whole(self.scalar)

    def _scalar_is_whole(self, scalar: Scalar) -> bool:
        if scalar.kind == "number":
            return bool(_NUMBER.match(scalar.text)) and _fits_bounds(self._resolve(scalar.schema), scalar.text)
        return scalar.kind == "literal" and scalar.text in scalar.candidates

    def closing(self) -> str | None:
        """The shortest text found that completes the answer validly; None when the text went off-track."""
        twin = self.copy()
        out: list[str] = []
        for _ in range(10_000):  # bounded: a schema that recurses through required properties must not hang
            if twin.lost:
                return None
            if twin.complete:
                return "".join(out)
            step = twin._next_step()
            if step is None:
                return None
            out.append(step)
            twin.feed(step)
        return None

    def _next_step(self) -> str | None:
        scalar = self.scalar
        if scalar is not None and not self._scalar_is_whole(scalar):
            return self._finish_scalar(scalar)
        if scalar is not None and scalar.is_key:
            return ":"
        if not self.stack:
            return self.minimal(self.top) if not self.started else None
        frame = self.stack[-1]
        if scalar is not None:  # a whole number or literal: what follows it ends it
            return self._after_value_step(frame)
        return self._object_step(frame) if frame.is_object else self._array_step(frame)

    def _finish_scalar(self, scalar: Scalar) -> str | None:
        if scalar.kind == "string":
            if scalar.escape == 0:
                return "n"
            if scalar.escape > 0:
                return "0" * (5 - scalar.escape)
            short = max(0, _bounded(self._resolve(scalar.schema).get("minLength")) - scalar.chars)
            return "a" * short + '"'
        if scalar.kind == "number":
            return _number_rest(self._resolve(scalar.schema), scalar.text)
        return self._best_literal_rest(scalar)

    def _best_literal_rest(self, scalar: Scalar) -> str | None:
        options = [c[len(scalar.text):] for c in scalar.candidates if c.startswith(scalar.text)]
        if not options:
            return None
        if not scalar.is_key:
            return min(options, key=len)
        frame = self.stack[-1]
        missing = self._missing_required(frame)
        # A key: prefer a required property still missing (it must come anyway), then the cheapest value.
        return min(options, key=lambda rest: (json.loads(scalar.text + rest) not in missing,
                                              len(rest) + len(self.minimal(self._property_schema(
                                                  frame, json.loads(scalar.text + rest)))),
                                              rest))

    def _object_step(self, frame: Frame) -> str | None:
        if frame.phase is Phase.COLON:
            return ":"
        if frame.phase is Phase.VALUE:
            return self.minimal(self._property_schema(frame, frame.key or ""))
        if frame.phase is Phase.AFTER_VALUE:
            return self._after_value_step(frame)
        missing = self._missing_required(frame)
        if missing:
            return json.dumps(missing[0])
        # After "{" nothing is owed; after "," a member is: its key is finished by the following steps.
        return "}" if frame.phase is Phase.FIRST else '"'

    def _array_step(self, frame: Frame) -> str | None:
        if frame.phase is Phase.AFTER_VALUE:
            return self._after_value_step(frame)
        if frame.phase is Phase.FIRST and not self._short_of_items(frame):
            return "]"
        return self.minimal(self._item_schema(frame))

    def _after_value_step(self, frame: Frame) -> str:
        """What follows a finished (or finishable) value in ``frame``: another member or item if owed, else the end.

        A scalar still open here has not been counted yet, so an array owes one item fewer."""
        if frame.is_object:
            return "," if self._missing_required(frame) else "}"
        pending = 1 if self.scalar is not None else 0
        return "," if self._short_of_items(frame, pending) else "]"

    def _short_of_items(self, frame: Frame, pending: int = 0) -> bool:
        return frame.count + pending < int(self._resolve(frame.schema).get("minItems") or 0)

    def _missing_required(self, frame: Frame) -> list[str]:
        required = self._resolve(frame.schema).get("required")
        if not isinstance(required, list):
            return []
        return [k for k in required if isinstance(k, str) and k not in frame.keys]

    # -- smallest instances ------------------------------------------------------------------------------

    def minimal(self, schema: Schema, depth: int = 0) -> str:
        """The shortest text found that is a valid instance of ``schema`` (compact JSON)."""
        self._work += 1
        if depth > 32 or self._work > _MAX_WORK:
            raise SchemaTooComplex("the schema is too deep or too branched to close")
        found = [self._minimal_branch(b, depth) for b in self._branches(schema)]
        return min(found, key=len) if found else "null"

    def _minimal_branch(self, schema: Schema, depth: int) -> str:
        literals = _literals(schema)
        if literals is not None:
            return min(literals, key=len) if literals else "null"
        kind = schema.get("type")
        if kind == "object" or kind is None and "properties" in schema:
            props = _dict(schema.get("properties"))
            members = [f"{json.dumps(key)}:{self.minimal(_dict(props.get(key)), depth + 1)}"
                       for key in schema.get("required") or []]
            return "{" + ",".join(members) + "}"
        if kind == "array":
            count = _bounded(schema.get("minItems"))
            return "[" + ",".join([self.minimal(_dict(schema.get("items")), depth + 1)] * count) + "]"
        if kind == "string":
            return '"' + "a" * _bounded(schema.get("minLength")) + '"'
        if kind in ("number", "integer"):
            return _smallest_number(schema)
        if kind == "boolean":
            return "true"
        if kind == "null":
            return "null"
        return "0"


def minimal_instance(fmt: Any) -> str:
    """The shortest valid answer to ``format`` ("json" or a schema) that the closing logic knows."""
    try:
        return JsonTracker.for_format(fmt).closing() or ""
    except Exception:  # a schema this code cannot walk: no up-front check, the grammar still applies
        return ""


def _literals(schema: Schema) -> tuple[str, ...] | None:
    # llama.cpp's schema grammar writes enum and const members as json.dumps does, so the text matches this.
    # The unescaped spelling is accepted too, for grammars that write non-ASCII text as it is.
    if "const" in schema:
        values = [schema["const"]]
    elif isinstance(schema.get("enum"), list):
        values = schema["enum"]
    else:
        return None
    return tuple(dict.fromkeys(t for v in values for t in (json.dumps(v), json.dumps(v, ensure_ascii=False))))


def _closed_names(schema: Schema) -> list[str] | None:
    """The keys an object may have, when the grammar allows only its listed properties; None: any key."""
    props = schema.get("properties")
    extra = schema.get("additionalProperties")
    if not isinstance(props, dict) or extra is True or isinstance(extra, dict):
        return None
    return [k for k in props if isinstance(k, str)]


def _merge(a: Schema, b: Schema) -> Schema:
    merged = {**a, **b}
    for key in ("properties",):
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            merged[key] = {**a[key], **b[key]}
    if isinstance(a.get("required"), list) and isinstance(b.get("required"), list):
        merged["required"] = list(dict.fromkeys([*a["required"], *b["required"]]))
    return merged


def _bounds(schema: Schema) -> tuple[float, float]:
    low, high = -math.inf, math.inf
    if isinstance(schema.get("minimum"), int | float):
        low = float(schema["minimum"])
    if isinstance(schema.get("maximum"), int | float):
        high = float(schema["maximum"])
    return low, high


def _fits_bounds(schema: Schema, text: str) -> bool:
    value = float(text)
    low, high = _bounds(schema)
    if schema.get("type") == "integer" and not value.is_integer():
        return False
    if isinstance(schema.get("exclusiveMinimum"), int | float) and value <= schema["exclusiveMinimum"]:
        return False
    if isinstance(schema.get("exclusiveMaximum"), int | float) and value >= schema["exclusiveMaximum"]:
        return False
    return low <= value <= high


def _smallest_number(schema: Schema) -> str:
    low, high = _bounds(schema)
    if isinstance(schema.get("exclusiveMinimum"), int | float):
        low = max(low, math.floor(schema["exclusiveMinimum"]) + 1)
    if isinstance(schema.get("exclusiveMaximum"), int | float):
        high = min(high, math.ceil(schema["exclusiveMaximum"]) - 1)
    value = 0.0 if low <= 0 <= high else (math.ceil(low) if low > 0 else math.floor(high))
    if schema.get("type") == "number" and not low <= value <= high:
        value = low
    return str(int(value)) if float(value).is_integer() else repr(value)


def _number_rest(schema: Schema, text: str) -> str | None:
    """The shortest digits that make ``text`` a number within the schema's bounds (up to three digits)."""
    for width in range(1, 4):
        for n in range(10 ** width):
            suffix = str(n).zfill(width)
            if _NUMBER.match(text + suffix) and _fits_bounds(schema, text + suffix):
                return suffix
    return None


def _bounded(value: Any) -> int:
    count = int(value or 0)
    if count > _MAX_SIZE:
        raise SchemaTooComplex(f"{count} is too large a minimum to close")
    return count


def _dict(value: Any) -> Schema:
    return value if isinstance(value, dict) else {}


def _hex(digits: str) -> int:
    try:
        return int(digits, 16)
    except ValueError:
        return -1


def _unescape(body: str) -> str:
    try:
        value = json.loads('"' + body + '"')
    except ValueError:
        return body
    return value if isinstance(value, str) else body
