"""Tokens: the template source cut into text and the contents of ``{{ … }}`` actions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ember.gotemplate.errors import template_error

_SPACE = " \t\r\n"
_KEYWORDS = frozenset({"if", "else", "end", "range", "with", "define", "template", "block", "break",
                       "continue", "nil", "true", "false"})
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VARIABLE = re.compile(r"\$[A-Za-z0-9_]*")
_NUMBER = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|(?:\d[\d_]*\.?[\d_]*|\.\d[\d_]*)(?:[eE][+-]?\d+)?)"
)
_STRING_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
                   "\\": "\\", '"': '"', "'": "'"}
_SIMPLE = {"(": "lparen", ")": "rparen", "|": "pipe", ",": "comma", "=": "assign"}


@dataclass(frozen=True)
class Token:
    kind: str  # text open close ident keyword field var string number dot lparen rparen pipe declare assign comma eof
    value: Any
    line: int
    spaced: bool = False  # whitespace came right before it (separates operands from chained fields)


def tokenize(source: str) -> list[Token]:
    return _Lexer(source).run()


class _Lexer:
    def __init__(self, source: str) -> None:
        self.src = source
        self.pos = 0
        self.line = 1
        self.tokens: list[Token] = []
        self.trim_next_text = False

    def run(self) -> list[Token]:
        while self.pos < len(self.src):
            start = self.src.find("{{", self.pos)
            end = len(self.src) if start < 0 else start
            text = self.src[self.pos:end]
            trim_left = start >= 0 and self.src.startswith("-", start + 2) and self._space_at(start + 3)
            self._emit_text(text, trim_left)
            self._advance_to(end)
            if start < 0:
                break
            self._action(trim_left)
        self.tokens.append(Token("eof", None, self.line))
        return self.tokens

    def _space_at(self, index: int) -> bool:
        return index < len(self.src) and self.src[index] in _SPACE

    def _emit_text(self, text: str, trim_left: bool) -> None:
        # Trimming happens at lex time, as in Go, so later tree edits see already-trimmed text.
        if self.trim_next_text:
            text = text.lstrip(_SPACE)
            self.trim_next_text = False
        if trim_left:
            text = text.rstrip(_SPACE)
        if text:
            self.tokens.append(Token("text", text, self.line))

    def _advance_to(self, index: int) -> None:
        self.line += self.src.count("\n", self.pos, index)
        self.pos = index

    def _action(self, trim_left: bool) -> None:
        open_line = self.line
        self._advance_to(self.pos + (3 if trim_left else 2))
        if self.src.startswith("/*", self._skip_space_from(self.pos)):
            self._comment(open_line)
            return
        self.tokens.append(Token("open", None, open_line))
        while True:
            spaced = self._skip_space()
            if self.pos >= len(self.src):
                raise template_error(open_line, "unclosed action")
            if spaced and self.src.startswith("-}}", self.pos):
                self._close(3, trim_right=True)
                return
            if self.src.startswith("}}", self.pos):
                self._close(2, trim_right=False)
                return
            self._token(spaced)

    def _close(self, length: int, *, trim_right: bool) -> None:
        self.tokens.append(Token("close", None, self.line))
        self._advance_to(self.pos + length)
        self.trim_next_text = trim_right

    def _comment(self, open_line: int) -> None:
        start = self._skip_space_from(self.pos)
        end = self.src.find("*/", start + 2)
        if end < 0:
            raise template_error(open_line, "unclosed comment")
        after = self._skip_space_from(end + 2)
        trim_right = self.src.startswith("-}}", after)
        if not (trim_right or self.src.startswith("}}", after)):
            raise template_error(open_line, "comment ends before closing delimiter")
        self._advance_to(after + (3 if trim_right else 2))
        self.trim_next_text = trim_right

    def _skip_space_from(self, index: int) -> int:
        while index < len(self.src) and self.src[index] in _SPACE:
            index += 1
        return index

    def _skip_space(self) -> bool:
        end = self._skip_space_from(self.pos)
        skipped = end > self.pos
        self._advance_to(end)
        return skipped

    def _token(self, spaced: bool) -> None:
        ch, line = self.src[self.pos], self.line
        if self.src.startswith(":=", self.pos):
            self._push("declare", None, 2, spaced)
        elif ch in _SIMPLE:
            self._push(_SIMPLE[ch], None, 1, spaced)
        elif ch == '"':
            self._quoted_string(spaced)
        elif ch == "`":
            self._raw_string(spaced)
        elif ch == "'":
            self._char_constant(spaced)
        elif ch == "." and (match := _IDENT.match(self.src, self.pos + 1)):
            self._push("field", match.group(0), len(match.group(0)) + 1, spaced)
        elif ch == "$":
            match = _VARIABLE.match(self.src, self.pos)
            assert match is not None
            self._push("var", match.group(0), len(match.group(0)), spaced)
        elif (number := _NUMBER.match(self.src, self.pos)) and number.group(0) not in ("+", "-", "."):
            self._push("number", _number_value(number.group(0), line), len(number.group(0)), spaced)
        elif ch == ".":
            self._push("dot", None, 1, spaced)
        elif match := _IDENT.match(self.src, self.pos):
            word = match.group(0)
            self._push("keyword" if word in _KEYWORDS else "ident", word, len(word), spaced)
        else:
            raise template_error(line, f"unexpected {ch!r} in action")

    def _push(self, kind: str, value: Any, length: int, spaced: bool) -> None:
        self.tokens.append(Token(kind, value, self.line, spaced))
        self._advance_to(self.pos + length)

    def _raw_string(self, spaced: bool) -> None:
        end = self.src.find("`", self.pos + 1)
        if end < 0:
            raise template_error(self.line, "unterminated raw quoted string")
        self._push("string", self.src[self.pos + 1:end], end + 1 - self.pos, spaced)

    def _quoted_string(self, spaced: bool) -> None:
        out: list[str] = []
        index = self.pos + 1
        while True:
            if index >= len(self.src) or self.src[index] == "\n":
                raise template_error(self.line, "unterminated quoted string")
            ch = self.src[index]
            if ch == '"':
                break
            if ch == "\\":
                decoded, index = _unescape(self.src, index, self.line)
                out.append(decoded)
                continue
            out.append(ch)
            index += 1
        self._push("string", "".join(out), index + 1 - self.pos, spaced)

    def _char_constant(self, spaced: bool) -> None:
        index = self.pos + 1
        if self.src.startswith("\\", index):
            decoded, index = _unescape(self.src, index, self.line)
        else:
            decoded, index = self.src[index:index + 1], index + 1
        if len(decoded) != 1 or not self.src.startswith("'", index):
            raise template_error(self.line, "malformed character constant")
        self._push("number", ord(decoded), index + 1 - self.pos, spaced)


def _unescape(src: str, index: int, line: int) -> tuple[str, int]:
    """Decode one Go escape starting at the backslash; returns the text and the index after it."""
    kind = src[index + 1:index + 2]
    if kind in _STRING_ESCAPES:
        return _STRING_ESCAPES[kind], index + 2
    widths = {"x": 2, "u": 4, "U": 8}
    if kind in widths:
        digits = src[index + 2:index + 2 + widths[kind]]
        if len(digits) == widths[kind] and all(c in "0123456789abcdefABCDEF" for c in digits):
            code = int(digits, 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:  # as Go: not a Unicode code point
                raise template_error(line, f"escape sequence is invalid Unicode code point \\{kind}{digits}")
            return chr(code), index + 2 + widths[kind]
    octal = src[index + 1:index + 4]
    if len(octal) == 3 and all(c in "01234567" for c in octal):
        return chr(int(octal, 8)), index + 4
    raise template_error(line, f"invalid escape sequence \\{kind}")


def _number_value(text: str, line: int) -> int | float:
    clean = text.replace("_", "")
    try:
        if clean.lstrip("+-")[:2].lower() in ("0x", "0b", "0o"):
            return int(clean, 0)
        if any(c in clean for c in ".eE"):
            return float(clean)
        return int(clean, 10)
    except ValueError:
        raise template_error(line, f"bad number syntax: {text!r}") from None
