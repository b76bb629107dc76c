"""Hypothesis strategies for hostile JSON values, and an encoder that can put anything into a body.

Python's ``json`` cannot write a 5,000-digit integer (it refuses ints that long) and writes lone
surrogates only as ``\\udXXX`` escapes, which is what a hostile client sends anyway. ``Raw`` carries JSON text
that goes into the body verbatim, so any number literal (``NaN``, ``1e999``, 10,000 digits) can be sent.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

MAX_TEXT = 64


@dataclass(frozen=True)
class Raw:
    """JSON text spliced into the encoded body as is."""

    text: str


def encode(value: Any) -> bytes:
    """JSON bytes for ``value``; ``Raw`` parts are spliced in, lone surrogates become ``\\udXXX`` escapes."""
    raws: list[str] = []

    def placeholder(obj: Any) -> str:
        if isinstance(obj, Raw):
            raws.append(obj.text)
            return f"\x00raw{len(raws) - 1}\x00"
        raise TypeError(f"cannot encode {type(obj).__name__}")

    text = json.dumps(value, default=placeholder, allow_nan=True)
    for index, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x00raw{index}\x00"), raw, 1)
    return text.encode()


SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
ODD_CHARS = st.sampled_from(["\x00", "\u202e", "\ufeff", "\ufffd", "\U0001f525", "\u0301", "\n", "\r",
                             "\t", '"', "\\", "{{", "}}", "<|im_start|>", "<|im_end|>", "<s>", "</s>"])


@st.composite
def odd_text(draw: st.DrawFn, max_size: int = MAX_TEXT) -> str:
    """Short text mixing any code point, lone surrogates and characters templates and tokenizers dislike."""
    parts = draw(st.lists(st.one_of(st.text(max_size=8), SURROGATES, ODD_CHARS), max_size=max_size // 4))
    return "".join(parts)[:max_size]


TRAVERSAL = st.sampled_from([
    "../../etc/passwd", "../../../../../../etc/shadow", "/etc/passwd", "..", ".", "/", "//", "./x",
    "x/../../y", "..\\..\\windows\\win.ini", "%2e%2e%2fetc%2fpasswd", "/proc/self/mem", "/proc/self/environ",
    "/dev/zero", "/dev/urandom", "/tmp", "~/.ssh/id_rsa", "sha256:../../x", "sha256-" + "0" * 64,
    "file:///etc/passwd", "x\x00y", "a" * 400, "a/b/c/d/e", "http://[::1]:1/x", "CON", "NUL:latest",
])

HUGE_NUMBERS = st.sampled_from([
    Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e999"), Raw("-1e999"), Raw("1e-999"),
    Raw("9" * 5000), Raw("-" + "9" * 5000), Raw("1" + "0" * 4400), Raw("0." + "0" * 5000 + "1"),
    Raw("123456789012345678901234567890"), Raw("-0"), Raw("1E400"),
])

NUMBERS = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, -2, 1, 2**31, 2**31 - 1, -(2**31), 2**63, 2**64, -(2**63) - 1, 2**53 + 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    HUGE_NUMBERS,
)


def nested(depth: int, leaf: Any = 0) -> Any:
    """``depth`` levels of alternating lists and objects (the server allows 64)."""
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


DEEP = st.integers(min_value=50, max_value=300).map(nested)
LONG_LISTS = st.one_of(
    st.integers(min_value=100, max_value=5000).map(lambda n: [0] * n),
    st.integers(min_value=100, max_value=2000).map(lambda n: ["x"] * n),
    st.integers(min_value=50, max_value=500).map(lambda n: [{"role": "user", "content": "x"}] * n),
)
LONG_TEXT = st.sampled_from([10_000, 100_000, 400_000]).map(lambda n: "x " * (n // 2))

SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, odd_text(), TRAVERSAL)
JSON_ANY = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(odd_text(16), inner, max_size=4)), max_leaves=12)

# A value of any type or size a hostile client might put in a field.
HOSTILE = st.one_of(SCALARS, JSON_ANY, DEEP, LONG_LISTS, LONG_TEXT,
                    st.just({}), st.just([]), st.just(""), st.just("   "))

# In CI the examples are fixed (derandomized), so a run there is reproducible and a red build always means a
# regression; local runs explore new examples each time.
IN_CI = bool(os.environ.get("CI"))


def as_parsed(value: Any) -> Any:
    """What the server's JSON parser makes of ``value`` (templates see parsed data, never ``Raw`` text)."""
    try:
        return json.loads(encode(value))
    except ValueError:  # e.g. an integer with more digits than Python parses: the server answers 400
        return None
