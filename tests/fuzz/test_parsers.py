"""Fuzzing the parsers that read untrusted text and bytes directly (issue 14): the Modelfile parser, the
Go-template engine, the GGUF reader and the model-name parser.

Each may refuse its input only with a typed ``EmberError``. Anything else (IndexError, RecursionError,
UnicodeError, struct.error, MemoryError...) is a bug, and so is an example that runs past ``TIME_BOUND_S``
(a SIGALRM timer interrupts it and fails the example as a hang).
"""

from __future__ import annotations

import random
import signal
import struct
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ember.errors import EmberError
from ember.gotemplate import parse_template, prompt_from_template, render
from ember.modelfile import parse_modelfile
from ember.names import ModelName
from ember.store.gguf import model_info, read_gguf
from tests.fuzz.values import IN_CI, JSON_ANY, as_parsed, odd_text
from tests.store.gguf_builder import build_gguf, kv, tensor_info, tiny_model

TIME_BOUND_S = 5.0
QUICK = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=IN_CI)
SLOW = settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=IN_CI)


class Hang(Exception):
    """An example ran past TIME_BOUND_S."""


@contextmanager
def time_bound(seconds: float = TIME_BOUND_S) -> Iterator[None]:
    def on_alarm(signum: int, frame: Any) -> None:
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def typed_errors_only(work: Callable[[], Any]) -> Any:
    """Run ``work`` within the time bound; a typed EmberError is a fine answer, anything else propagates."""
    with time_bound():
        try:
            return work()
        except EmberError:
            return None


# ------------------------------------------------------------------------------------------------ Modelfile

COMMANDS = st.sampled_from(["FROM", "from", "PARAMETER", "TEMPLATE", "SYSTEM", "ADAPTER", "LICENSE", "MESSAGE",
                            "REQUIRES", "QUANTIZE", "#", "", "From"])
PARAMETER_NAMES = st.sampled_from(["num_ctx", "temperature", "stop", "top_k", "seed", "use_mmap", "mirostat",
                                   "nope", "num_predict", ""])
MODELFILE_VALUES = st.one_of(
    odd_text(), st.sampled_from(['"""', '"', '""""', '"""x"""', '"x', '"a\\"b"', "\\", "~", "~/x", "../../etc/passwd",
                                 "/dev/zero", "9" * 5000, "1e999", "NaN", "-1", "true", "TRUE", "0x10", "smollm2:135m",
                                 "user", "bot", "\t", "\r\n"]),
)


@st.composite
def modelfiles(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 5)) == 0:
        return draw(st.text(max_size=200))
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        parts = [draw(COMMANDS)]
        if parts[0].upper() == "PARAMETER":
            parts.append(draw(PARAMETER_NAMES))
        if parts[0].upper() == "MESSAGE":
            parts.append(draw(st.sampled_from(["user", "assistant", "system", "tool", "bot", ""])))
        parts.extend(draw(st.lists(MODELFILE_VALUES, max_size=3)))
        lines.append(draw(st.sampled_from([" ", "\t", "  "])).join(parts))
    return draw(st.sampled_from(["\n", "\r\n", "\r"])).join(lines)


def check_modelfile(text: str, base_dir: Path) -> None:
    def work() -> None:
        parsed = parse_modelfile(text, base_dir)
        parsed.to_create_fields()

    typed_errors_only(work)


@QUICK
@given(text=modelfiles())
def test_modelfile_parser_raises_only_typed_errors(text: str) -> None:
    check_modelfile(text, Path(tempfile.gettempdir()))


# ------------------------------------------------------------------------------------------------ templates

TEMPLATE_PIECES = st.sampled_from([
    "{{", "}}", "{{-", "-}}", "{{ ", " }}", "{{/*", "*/}}", ".", ".Prompt", ".System", ".Messages", ".Tools",
    ".Response", ".Content", ".Role", ".ToolCalls", ".Function.Arguments", "$", "$x", "$x :=", "$i, $m :=", "=",
    "range", "if", "else", "else if", "with", "end", "break", "continue", "define", "template", "block", "|",
    "(", ")", "printf", '"%s"', '"%d"', '"%v"', '"%q"', '"%x"', '"%-5.2f"', '"%*d"', '"%[2]d"', '"%!"', "index",
    "slice", "len", "json", "eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not", "print", "println", "html",
    "js", "urlquery", "call", "currentDate", "toTypeScriptType", "1", "-1", "0", "99999999999999999999", "1e999",
    "0x1F", "'a'", '"x"', "`raw`", "true", "false", "nil", " ", "\n", "text", "<|im_start|>", '"%c"', '"%U"',
    "'\\U00110000'", "'\\ud800'", "'\\777'", "'\\x'", '"\\U0010FFFF"', "-99999999999", "2147483648",
])


NESTERS = st.sampled_from([("(", ")"), ("{{if 1}}", "{{end}}"), ("{{range .x}}", "{{end}}"),
                           ("{{with .x}}", "{{end}}"), ("{{ (", ") }}")])


@st.composite
def templates(draw: st.DrawFn) -> str:
    choice = draw(st.integers(0, 7))
    if choice == 0:
        return draw(st.text(max_size=100))
    if choice == 1:  # deep nesting, as a hostile TEMPLATE in a Modelfile or request would send
        opener, closer = draw(NESTERS)
        depth = draw(st.integers(1, 3000))
        inner = "1" if opener.endswith("(") else draw(TEMPLATE_PIECES)
        text = opener * depth + inner + closer * depth
        return "{{" + text + "}}" if opener == "(" else text
    pieces = draw(st.lists(st.one_of(TEMPLATE_PIECES, TEMPLATE_PIECES, TEMPLATE_PIECES, odd_text(8)), max_size=30))
    return " ".join(pieces) if draw(st.booleans()) else "".join(pieces)


ROLES = st.sampled_from(["system", "user", "assistant", "tool", "bot"])
MESSAGES = st.lists(st.fixed_dictionaries({"role": ROLES, "content": odd_text()}, optional={
    "tool_calls": st.just([{"function": {"name": "f", "arguments": {"a": [1, {"b": None}]}}}]),
    "thinking": odd_text(), "images": st.just(["aGk="]), "tool_name": odd_text(8)}), max_size=5)
TOOLS = st.lists(st.just({"type": "function", "function": {
    "name": "get", "description": "d", "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "enum": ["a", "b"]}, "n": {"type": ["integer", "null"]}}}}}), max_size=2)
DATA = st.fixed_dictionaries({}, optional={
    "Prompt": odd_text(), "System": odd_text(), "Response": odd_text(),
    "Messages": st.lists(JSON_ANY.map(as_parsed), max_size=4), "Tools": st.lists(JSON_ANY.map(as_parsed), max_size=3),
    "x": JSON_ANY.map(as_parsed), "Think": st.booleans()})


@QUICK
@given(template=templates(), data=DATA)
def test_template_parse_and_render_raise_only_typed_errors(template: str, data: dict[str, Any]) -> None:
    typed_errors_only(lambda: parse_template(template))
    typed_errors_only(lambda: render(template, data))


@QUICK
@given(template=templates(), system=st.one_of(st.none(), odd_text()), messages=MESSAGES, tools=TOOLS,
       suffix=st.one_of(st.none(), odd_text()), think=st.one_of(st.none(), st.booleans()))
def test_prompt_from_template_raises_only_typed_errors(template: str, system: str | None,
                                                       messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                                                       suffix: str | None, think: bool | None) -> None:
    typed_errors_only(lambda: prompt_from_template(template, system=system, messages=messages, tools=tools,
                                                   suffix=suffix, think=think))


# ------------------------------------------------------------------------------------------------ GGUF

def gguf_variants() -> list[bytes]:
    arrays = [kv("tokenizer.ggml.tokens", "arr:str", ["a", "b", "c"]), kv("a.nested", "arr:u32", [1, 2, 3]),
              kv("general.architecture", "str", "llama"), kv("x.f", "f64", float("nan")), kv("x.b", "bool", True)]
    return [tiny_model(), build_gguf(arrays, [tensor_info("w", (4, 4), 0, 0)], data=b"\0" * 64),
            build_gguf(arrays, version=2), build_gguf([], [])]


SEEDS = gguf_variants()
HEADER_FIELDS = st.sampled_from([0, 2 ** 32 - 1, 2 ** 63, 2 ** 64 - 1, 1, 7, 10 ** 9])


@st.composite
def mutated_ggufs(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        action = draw(st.sampled_from(["flip", "u64", "u32", "truncate", "insert", "delete"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if action == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif action == "u64" and len(data) >= at + 8:
            data[at:at + 8] = struct.pack("<Q", draw(HEADER_FIELDS))
        elif action == "u32" and len(data) >= at + 4:
            data[at:at + 4] = struct.pack("<I", draw(st.sampled_from([0, 1, 9, 12, 13, 2 ** 31, 2 ** 32 - 1])))
        elif action == "truncate":
            del data[at:]
        elif action == "insert":
            data[at:at] = draw(st.binary(max_size=16))
        else:
            del data[at:at + draw(st.integers(1, 16))]
    return bytes(data)


GGUF_DIR = Path(tempfile.mkdtemp(prefix="ember-fuzz-gguf-"))


def check_gguf(data: bytes) -> None:
    path = GGUF_DIR / f"fuzz-{random.getrandbits(32):08x}.gguf"
    path.write_bytes(data)
    try:
        def work() -> None:
            info = read_gguf(path)
            model_info(info, verbose=True)
            model_info(info)
            _ = (info.parameter_count, info.file_type_name)

        typed_errors_only(work)
    finally:
        path.unlink()


@QUICK
@given(data=st.one_of(mutated_ggufs(), mutated_ggufs(), st.binary(max_size=64).map(lambda b: b"GGUF" + b)))
def test_gguf_reader_raises_only_typed_errors(data: bytes) -> None:
    check_gguf(data)


# ------------------------------------------------------------------------------------------------ names

NAME_PARTS = st.sampled_from(["http://", "https://", "HTTP://", "registry.ollama.ai", "127.0.0.1:5000", "[::1]",
                              "library", "user", "smollm2", "135m", "latest", "..", ".", "/", ":", "@", "sha256:",
                              "-", "_", "a" * 81, "a" * 351, "\x00", "\u00e9", "\ud800"])


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck), derandomize=IN_CI)
@given(text=st.one_of(st.text(max_size=60), st.lists(st.one_of(NAME_PARTS, odd_text(8)), max_size=8).map("".join)))
def test_name_parser_raises_only_typed_errors(text: str) -> None:
    def work() -> None:
        name = ModelName.parse(text)
        _ = (name.display, name.full, name.key, name.repository, name.parts)
        name.with_tag("latest")
        assert ".." not in "/".join(name.parts), "a parsed name must never climb out of the store"
        assert ModelName.parse(name.full) == name, "a parsed name must parse back to itself"

    typed_errors_only(work)


# ------------------------------------------------------------------------------------------------ slow suite

@pytest.mark.slow
@SLOW
@given(text=modelfiles())
def test_many_modelfiles(text: str) -> None:
    check_modelfile(text, Path(tempfile.gettempdir()))


@pytest.mark.slow
@SLOW
@given(template=templates(), data=DATA)
def test_many_templates(template: str, data: dict[str, Any]) -> None:
    typed_errors_only(lambda: render(template, data))


@pytest.mark.slow
@SLOW
@given(data=mutated_ggufs())
def test_many_ggufs(data: bytes) -> None:
    check_gguf(data)
