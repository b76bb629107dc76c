"""Ollama's Modelfile: parsing into ``/api/create`` fields, and printing a model back as one.

The grammar is line-oriented: ``# comment`` lines, and ``INSTRUCTION value`` where the value is bare (to the
end of the line), ``"double-quoted"`` or ``\"\"\"triple-quoted\"\"\"`` (both may span lines). See docs/modelfile.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ember.errors import BadRequest, ModelfileError
from ember.gotemplate import go_float, go_quote
from ember.options import LEGACY_OPTIONS, OPTION_TYPES, coerce_option

COMMANDS = ("from", "license", "template", "system", "adapter", "parameter", "message", "requires")
MESSAGE_ROLES = ("system", "user", "assistant")
_PARAM_NAME = re.compile(r"[A-Za-z0-9_]+")
_DIGEST = re.compile(r"sha256[:-][0-9a-f]{64}")
_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


@dataclass
class Modelfile:
    """A parsed Modelfile. ``from_path`` is set when FROM named an existing file or directory."""

    from_: str
    from_path: Path | None = None
    adapters: list[str] = field(default_factory=list)
    template: str | None = None
    system: str | None = None
    licenses: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    messages: list[dict[str, str]] = field(default_factory=list)
    requires: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_create_fields(self) -> dict[str, Any]:
        """The JSON fields of an ``/api/create`` request; only instructions that were present appear.

        ``from`` is a model name, a ``sha256:`` digest, or the absolute path of a local GGUF file or
        safetensors directory; a client turns a path into ``files`` after uploading the blob.
        """
        fields: dict[str, Any] = {"from": str(self.from_path) if self.from_path else self.from_}
        if self.adapters:
            fields["adapters"] = list(self.adapters)
        if self.template is not None:
            fields["template"] = self.template
        if self.system is not None:
            fields["system"] = self.system
        if self.licenses:
            fields["license"] = list(self.licenses)
        if self.parameters:
            fields["parameters"] = {k: list(v) if isinstance(v, list) else v for k, v in self.parameters.items()}
        if self.messages:
            fields["messages"] = [dict(m) for m in self.messages]
        if self.requires is not None:
            fields["requires"] = self.requires
        return fields


@dataclass(frozen=True)
class _Instruction:
    line: int
    command: str
    value: str
    word: str = ""  # PARAMETER's name, MESSAGE's role


def parse_modelfile(text: str, base_dir: Path | None = None) -> Modelfile:
    """Parse Modelfile text. Relative FROM/ADAPTER paths resolve against ``base_dir`` (``~`` is expanded)."""
    builder = _Builder(base_dir)
    for instruction in _instructions(text.removeprefix("\ufeff")):
        builder.add(instruction)
    return builder.finish()


class _Builder:
    def __init__(self, base_dir: Path | None) -> None:
        self.base_dir = base_dir
        self.from_: tuple[str, Path | None] | None = None
        self.result = Modelfile(from_="")

    def add(self, ins: _Instruction) -> None:
        handler = getattr(self, f"_on_{ins.command}")
        handler(ins)

    def finish(self) -> Modelfile:
        if self.from_ is None:
            raise ModelfileError("no FROM line")
        self.result.from_, self.result.from_path = self.from_
        return self.result

    def _on_from(self, ins: _Instruction) -> None:
        if _DIGEST.fullmatch(ins.value):
            self.from_ = ("sha256:" + ins.value[7:], None)
            return
        path = _expand_path(ins.value, self.base_dir)
        # A FROM that names nothing on disk is a model name, as in Ollama.
        self.from_ = (ins.value, path) if path is not None and safe_exists(path) else (ins.value, None)

    def _on_adapter(self, ins: _Instruction) -> None:
        path = _expand_path(ins.value, self.base_dir)
        self.result.adapters.append(str(path) if path is not None else ins.value)

    def _on_template(self, ins: _Instruction) -> None:
        self.result.template = ins.value

    def _on_system(self, ins: _Instruction) -> None:
        self.result.system = ins.value

    def _on_license(self, ins: _Instruction) -> None:
        self.result.licenses.append(ins.value)

    def _on_requires(self, ins: _Instruction) -> None:
        self.result.requires = ins.value

    def _on_message(self, ins: _Instruction) -> None:
        role = ins.word.lower()
        if role not in MESSAGE_ROLES:
            raise ModelfileError(
                f'(line {ins.line}): message role must be one of "system", "user", or "assistant"'
            )
        self.result.messages.append({"role": role, "content": ins.value})

    def _on_parameter(self, ins: _Instruction) -> None:
        name = ins.word.lower()
        if not _PARAM_NAME.fullmatch(name):
            raise ModelfileError(f"(line {ins.line}): invalid parameter name {ins.word!r}")
        if name in LEGACY_OPTIONS:
            self.result.warnings.append(f"parameter {name} is deprecated and was ignored")
            return
        if name not in OPTION_TYPES:
            raise ModelfileError(f"(line {ins.line}): unknown parameter '{ins.word}'")
        value = _typed_parameter(name, ins.value, ins.line)
        params = self.result.parameters
        if name == "stop":
            params.setdefault("stop", []).extend(value)
        else:
            params[name] = value


def _typed_parameter(name: str, text: str, line: int) -> Any:
    kind = OPTION_TYPES[name]
    try:
        if kind == "int":
            return coerce_option(name, int(text.strip(), 10))
        if kind == "float":
            return coerce_option(name, float(text.strip()))
        if kind == "bool":
            return coerce_option(name, _go_bool(text.strip()))
        return coerce_option(name, text)
    except (ValueError, BadRequest):
        expected = {"int": "an integer", "float": "a number", "bool": "true or false"}.get(kind, "a string")
        raise ModelfileError(
            f"(line {line}): invalid value {text!r} for parameter '{name}': expected {expected}"
        ) from None


def _go_bool(text: str) -> bool:
    """strconv.ParseBool, which Ollama uses for boolean parameters."""
    if text in _GO_TRUE:
        return True
    if text in _GO_FALSE:
        return False
    raise ValueError(text)


def expand_user(value: str) -> Path:
    """``Path(value).expanduser()``, except that an unknown ``~user`` stays as written (and then simply does
    not exist) instead of raising RuntimeError."""
    try:
        return Path(value).expanduser()
    except (RuntimeError, ValueError):  # no such user; or a NUL or surrogate the OS cannot look up
        return Path(value)


def safe_exists(path: Path, check: str = "exists") -> bool:
    """``path.exists()`` (or ``is_file``/``is_dir``) that says False for names the OS refuses outright
    (too long, a NUL byte) instead of raising."""
    try:
        return bool(getattr(path, check)())
    except (OSError, ValueError):
        return False


def _expand_path(value: str, base_dir: Path | None) -> Path | None:
    """An absolute path for FROM/ADAPTER, or None when a relative path has nothing to resolve against."""
    path = expand_user(value)
    if path.is_absolute():
        return path
    if base_dir is None:
        return None
    return (base_dir.expanduser() / path).absolute()


# ---------------------------------------------------------------------------------------------- scanning


def _instructions(text: str) -> Iterator[_Instruction]:
    scanner = _Scanner(text)
    while not scanner.at_end():
        instruction = scanner.next_instruction()
        if instruction is not None:
            yield instruction


class _Scanner:
    """Reads one instruction at a time; quoted values may run over several lines."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def next_instruction(self) -> _Instruction | None:
        start_line = self.line
        head = self._rest_of_line().strip()
        if not head or head.startswith("#"):
            self._consume_line()
            return None
        word = head.split(None, 1)[0]
        command = word.lower()
        if command not in COMMANDS:
            raise ModelfileError(
                f'(line {start_line}): command must be one of "from", "license", "template", "system", '
                f'"adapter", "parameter", "message", or "requires"'
            )
        self._skip_inline_space()
        self.pos += len(word)
        self._skip_inline_space()
        # PARAMETER and MESSAGE carry a first word (name, role) before the value.
        first = self._word() if command in ("parameter", "message") else ""
        value = self._value(start_line)
        if value is None:
            raise ModelfileError(f"(line {start_line}): missing value for {command.upper()}")
        return _Instruction(start_line, command, value, first)

    def _word(self) -> str:
        match = re.compile(r"[^\s\"]*").match(self.text, self.pos)
        assert match is not None
        self.pos = match.end()
        self._skip_inline_space()
        return match.group(0)

    def _value(self, start_line: int) -> str | None:
        """The quoted or bare value; None when the line ends without one (an empty quote is a value)."""
        for quote in ('"""', '"'):
            if self.text.startswith(quote, self.pos):
                return self._quoted(quote, start_line)
        bare = self._rest_of_line().strip()
        self._consume_line()
        return bare or None

    def _quoted(self, quote: str, start_line: int) -> str:
        begin = self.pos + len(quote)
        end = self.text.find(quote, begin)
        if end < 0:
            raise ModelfileError(f"(line {start_line}): unterminated {quote} string")
        body = self.text[begin:end]
        self.line += body.count("\n")
        self.pos = end + len(quote)
        trailing = self._rest_of_line()
        if trailing.strip():
            raise ModelfileError(f"(line {self.line}): unexpected text after closing {quote}: {trailing.strip()!r}")
        self._consume_line()
        return body

    def _rest_of_line(self) -> str:
        end = self.text.find("\n", self.pos)
        return self.text[self.pos:] if end < 0 else self.text[self.pos:end]

    def _consume_line(self) -> None:
        end = self.text.find("\n", self.pos)
        if end < 0:
            self.pos = len(self.text)
        else:
            self.pos = end + 1
            self.line += 1

    def _skip_inline_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r":
            self.pos += 1


# ---------------------------------------------------------------------------------------------- rendering


def render_modelfile(
    *,
    name: str,
    model_path: str | Path,
    template: str | None = None,
    system: str | None = None,
    params: Mapping[str, Any] | None = None,
    licenses: Iterable[str] = (),
    messages: Iterable[Mapping[str, Any]] = (),
    adapters: Iterable[str | Path] = (),
    projectors: Iterable[str | Path] = (),
) -> str:
    """A model printed the way ``ollama show --modelfile`` prints it (the /api/show ``modelfile`` field)."""
    lines = [f"FROM {model_path}"]
    lines += [f"ADAPTER {_quote(str(path))}" for path in adapters]
    lines += [f"FROM {path}" for path in projectors]
    if template:
        lines.append(f"TEMPLATE {_quote(template)}")
    if system:
        lines.append(f"SYSTEM {_quote(system)}")
    for key, value in (params or {}).items():
        values = value if isinstance(value, list | tuple) else [value]
        lines += [f"PARAMETER {key} {_quote(go_value(v))}" for v in values]
    lines += [f"LICENSE {_quote(text)}" for text in licenses]
    lines += [f"MESSAGE {m['role']} {_quote(str(m.get('content') or ''))}" for m in messages]
    header = (
        '# Modelfile generated by "ollama show"\n'
        "# To build a new Modelfile based on this, replace FROM with:\n"
        f"# FROM {name}\n\n"
    )
    return header + "".join(line + "\n" for line in lines)


def _quote(value: str) -> str:
    """Ollama's rule: wrap only values with a newline or edge spaces; triple quotes if they hold a quote."""
    if "\n" in value or value.startswith(" ") or value.endswith(" "):
        return f'"""{value}"""' if '"' in value else f'"{value}"'
    return value


def render_parameters(params: Mapping[str, Any]) -> str:
    """The /api/show ``parameters`` field: ``%-30s %#v`` per value, list values repeating their key."""
    rows: list[str] = []
    for key, value in params.items():
        values = value if isinstance(value, list | tuple) else [value]
        rows += [f"{key:<30} {go_sharp_value(v)}" for v in values]
    return "\n".join(rows)


def go_value(value: Any) -> str:
    """Go's ``%v`` of a JSON-decoded value (numbers are float64 there, so 1.0 prints as ``1``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    return str(value)


def go_sharp_value(value: Any) -> str:
    """Go's ``%#v``: strings Go-quoted, other scalars as ``%v``."""
    return go_quote(value) if isinstance(value, str) else go_value(value)
