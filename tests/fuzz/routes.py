"""The shapes of Ember's POST routes, as hypothesis strategies for valid-ish bodies with hostile mutations.

Each route declares its fields with a strategy of plausible values. A generated body starts from a valid
one and then has a few fields replaced by hostile values (wrong types, huge or NaN numbers, odd Unicode,
deep nesting, long lists), removed, or joined by unknown fields; sometimes the whole body is raw garbage.

``tame`` then applies the few rules that keep a run short and harmless whatever was drawn:
- generation stays short (a small ``num_predict``/``max_tokens`` wherever the body would be valid);
- pull and push only ever reach loopback (a closed port), or fail name validation before any I/O;
- create, copy and delete only write or remove scratch models (``fuzz-*``), never the shared test models.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from ember.errors import InvalidModelName
from ember.names import DEFAULT_HOST, ModelName
from tests.fuzz.values import HOSTILE, JSON_ANY, LONG_TEXT, NUMBERS, TRAVERSAL, Raw, encode, nested, odd_text

BUNDLED = "smollm2:135m"
SCRATCH_PREFIX = "fuzz-"
MAX_FUZZ_PREDICT = 4
# Prompts are truncated to this many tokens unless a body asks for less: a 2,000-token prompt takes up to a
# minute on a busy 2-core machine, which would test the CPU, not the server.
MAX_FUZZ_CTX = 256

Body = dict[str, Any]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    fields: dict[str, st.SearchStrategy[Any]]
    required: tuple[str, ...] = ()
    tame: Callable[[Body], Body] = field(default=lambda body: body)

    @property
    def openai(self) -> bool:
        return self.path.startswith("/v1/")


# ------------------------------------------------------------------------------------------------ values

MODEL_NAMES = st.one_of(
    st.just(BUNDLED), st.just(BUNDLED), st.just(BUNDLED),
    st.sampled_from(["SMOLLM2:135M", "library/smollm2:135m", "registry.ollama.ai/library/smollm2:135m",
                     "smollm2", "nope:latest", "no/such/model:x", "fuzz-missing", "http://smollm2:135m",
                     "smollm2:135m:extra", "", " ", ":", "/", "a" * 300]),
    TRAVERSAL, odd_text(),
)

OPTION_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "num_ctx": st.one_of(st.sampled_from([64, 128, 256]), NUMBERS),
    "num_batch": st.one_of(st.sampled_from([1, 8, 512]), NUMBERS),
    "num_keep": st.one_of(st.integers(-1, 64), NUMBERS),
    "seed": st.one_of(st.integers(-1, 2**32), NUMBERS),
    "top_k": st.one_of(st.integers(-1, 100), NUMBERS),
    "top_p": st.one_of(st.floats(0, 1), NUMBERS),
    "min_p": st.one_of(st.floats(0, 1), NUMBERS),
    "typical_p": st.one_of(st.floats(0, 1), NUMBERS),
    "repeat_last_n": st.one_of(st.integers(-1, 128), NUMBERS),
    "temperature": st.one_of(st.floats(0, 2), NUMBERS),
    "repeat_penalty": st.one_of(st.floats(0, 2), NUMBERS),
    "presence_penalty": st.one_of(st.floats(-2, 2), NUMBERS),
    "frequency_penalty": st.one_of(st.floats(-2, 2), NUMBERS),
    "stop": st.one_of(st.lists(odd_text(8), max_size=4), odd_text(8), HOSTILE),
    "num_thread": st.one_of(st.integers(0, 4), NUMBERS),
    "num_gpu": st.one_of(st.integers(-1, 2), NUMBERS),
    "use_mmap": st.one_of(st.booleans(), HOSTILE),
    "mirostat": NUMBERS, "penalize_newline": st.booleans(), "unknown_option": HOSTILE,
    "num_predict": st.one_of(st.integers(0, MAX_FUZZ_PREDICT), NUMBERS),
}


@st.composite
def options(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 9)) == 0:
        return draw(HOSTILE)
    names = draw(st.lists(st.sampled_from(sorted(OPTION_VALUES)), max_size=6, unique=True))
    return {name: draw(OPTION_VALUES[name]) for name in names}


KEEP_ALIVE = st.one_of(st.sampled_from(["5m", "0", "-1", "1h30m", "300ms", "10", "-5m", "5 m", "m", "1e9h",
                                        "99999999999999999999h", "", ".s"]),
                       st.integers(-10, 10**6), NUMBERS, HOSTILE)
PROMPT = st.one_of(odd_text(), st.sampled_from(["Hi", "Say one word.", ""]), LONG_TEXT)
TOKEN_IDS = st.one_of(st.lists(st.integers(0, 49151), max_size=40), st.lists(NUMBERS, max_size=8),
                      st.lists(st.integers(-(2**40), 2**40), max_size=8))
TEMPLATES = st.one_of(
    st.sampled_from(["", "{{ .Prompt }}", "{{ .System }} {{ .Prompt }}", "{{", "}}", "{{ end }}",
                     "{{ range .Messages }}{{ .Content }}{{ end }}", "{{ template \"x\" }}",
                     "{{ define \"x\" }}{{ template \"x\" }}{{ end }}{{ template \"x\" }}",
                     "{{ range $i := .Messages }}{{ range $.Messages }}{{ . }}{{ end }}{{ end }}",
                     "{{ printf \"%999999999d\" 1 }}", "{{ index .Messages 99 }}", "{{ slice .Prompt 5 2 }}",
                     "{{ len 3 }}", "{{ .Prompt.Nope.Deeper }}", "{{ call .Prompt }}", "{{ json .Messages }}",
                     '{{ printf "%c" -1 }}', '{{ printf "%q" 99999999999 }}', "{{ '\\U00110000' }}",
                     "{{" + "(" * 2000 + "1" + ")" * 2000 + "}}", "{{if 1}}" * 1500 + "{{end}}" * 1500]),
    odd_text(),
)
VALID_ROLES = st.sampled_from(["user", "assistant", "system", "tool"])
ROLES = st.one_of(VALID_ROLES, VALID_ROLES, VALID_ROLES, st.sampled_from(["developer", "USER", "bot", ""]))
IMAGES = st.one_of(st.lists(st.sampled_from(["aGVsbG8=", "not base64!", "", "iVBORw0KGgo="]), max_size=2),
                   HOSTILE)


@st.composite
def ollama_message(draw: st.DrawFn) -> Any:
    message: dict[str, Any] = {"role": draw(ROLES), "content": draw(PROMPT)}
    extra = draw(st.sampled_from(["", "", "", "images", "tool_calls", "thinking", "hostile"]))
    if extra == "images":
        message["images"] = draw(IMAGES)
    elif extra == "tool_calls":
        message["tool_calls"] = draw(st.one_of(
            st.just([{"function": {"name": "f", "arguments": {"a": 1}}}]), HOSTILE))
    elif extra == "thinking":
        message["thinking"] = draw(odd_text())
    elif extra == "hostile":
        message[draw(st.sampled_from(["role", "content", "tool_name"]))] = draw(HOSTILE)
    return message


@st.composite
def openai_message(draw: st.DrawFn) -> Any:
    role = draw(ROLES)
    kind = draw(st.sampled_from(["text", "text", "text", "parts", "tool_calls", "hostile"]))
    if kind == "text":
        return {"role": role, "content": draw(PROMPT)}
    if kind == "parts":
        parts = draw(st.lists(st.one_of(
            st.builds(lambda t: {"type": "text", "text": t}, odd_text()),
            st.sampled_from([{"type": "image_url", "image_url": {"url": "data:image/png;base64,aGk="}},
                             {"type": "image_url", "image_url": {"url": "http://127.0.0.1:1/x.png"}},
                             {"type": "image_url", "image_url": "data:;base64,%%%"},
                             {"type": "refusal", "refusal": "no"}, {"type": "audio"}, {}]),
            HOSTILE), max_size=3))
        return {"role": role, "content": parts}
    if kind == "tool_calls":
        arguments = draw(st.one_of(st.just('{"a": 1}'), st.just("{not json"), st.just("[1]"), HOSTILE))
        return {"role": "assistant", "content": None,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": arguments}}]}
    return draw(st.one_of(HOSTILE, st.fixed_dictionaries({"role": ROLES, "content": HOSTILE})))


TOOLS = st.one_of(
    st.just([{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}]),
    st.just([{"type": "function", "function": {"name": "f", "parameters": nested(40, {})}}]),
    HOSTILE,
)
FORMATS = st.one_of(st.sampled_from(["json", "", "yaml", {"type": "object"},
                                     {"type": "object", "properties": {"a": {"type": "integer"}}},
                                     {"type": "array", "items": {"$ref": "#"}}, {"$ref": "#/nowhere"},
                                     {"type": "string", "pattern": "(a+)+$"}]),
                    HOSTILE)
RESPONSE_FORMATS = st.one_of(
    st.sampled_from([{"type": "text"}, {"type": "json_object"},
                     {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
                     {"type": "json_schema", "json_schema": {"schema": "nope"}}, {"type": "xml"}]),
    HOSTILE)
BOOLS = st.one_of(st.booleans(), st.booleans(), HOSTILE)
THINK = st.one_of(st.sampled_from([True, False, "low", "high", "max", "ultra"]), HOSTILE)
EMBED_INPUT = st.one_of(odd_text(), st.lists(odd_text(), min_size=1, max_size=8),
                        st.integers(1, 6).map(lambda n: [f"item {i}" for i in range(n)]),
                        LONG_TEXT, TOKEN_IDS, HOSTILE)


# ---------------------------------------------------------------------------------------------- taming

def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cap(mapping: dict[str, Any], key: str, high: int, lowest_valid: int = 0) -> None:
    """A missing value, or a valid one above ``high`` (or negative but >= ``lowest_valid``: "no limit")
    becomes ``high``. Invalid values stay, for the server to refuse."""
    value = mapping.get(key)
    if value is None or (_is_number(value) and math.isfinite(value)
                         and (value > high or lowest_valid <= value < 0)):
        mapping[key] = high


def _short_work(options: Any) -> Any:
    """Options that keep generation to a few tokens and prompts to MAX_FUZZ_CTX tokens, where valid."""
    if not isinstance(options, dict):
        return options
    options = dict(options)
    _cap(options, "num_predict", MAX_FUZZ_PREDICT, lowest_valid=-2)
    _cap(options, "num_ctx", MAX_FUZZ_CTX)
    return options


def tame_ollama_generation(body: Body) -> Body:
    if body.get("options") is None:
        body["options"] = {}
    body["options"] = _short_work(body["options"])
    return body


def tame_embedding(body: Body) -> Body:
    if body.get("options") is None:
        body["options"] = {}
    if isinstance(body["options"], dict):
        body["options"] = dict(body["options"])
        _cap(body["options"], "num_ctx", MAX_FUZZ_CTX)
    return body


def tame_openai_generation(body: Body) -> Body:
    """The first of max_completion_tokens/max_tokens that is present decides; an int there is made small."""
    if isinstance(body.get("options"), dict):
        body["options"] = _short_work(body["options"])
    _cap(body, "num_ctx", MAX_FUZZ_CTX)
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            body[key] = min(abs(value), MAX_FUZZ_PREDICT)
        return body
    body["max_tokens"] = MAX_FUZZ_PREDICT
    return body


def tame_v1_embedding(body: Body) -> Body:
    if isinstance(body.get("options"), dict):
        body["options"] = dict(body["options"])
        _cap(body["options"], "num_ctx", MAX_FUZZ_CTX)
    _cap(body, "num_ctx", MAX_FUZZ_CTX)
    return body


def _parsed(name: Any) -> ModelName | None:
    if not isinstance(name, str):
        return None
    try:
        return ModelName.parse(name)
    except InvalidModelName:
        return None


def loopback_name(name: Any, port: int) -> Any:
    """A name that parses is moved onto a closed loopback port; one that does not is left to fail."""
    parsed = _parsed(name)
    if parsed is None:
        return name
    return ModelName(f"127.0.0.1:{port}", parsed.namespace, parsed.model, parsed.tag).full


def scratch_name(name: Any) -> Any:
    """A name that parses is turned into a scratch model's name in the default namespace."""
    parsed = _parsed(name)
    if parsed is None or (parsed.model.startswith(SCRATCH_PREFIX) and parsed.host == DEFAULT_HOST):
        return name
    model = (SCRATCH_PREFIX + parsed.model)[:80]
    return ModelName(DEFAULT_HOST, parsed.namespace, model, parsed.tag).display


def _name_keys(body: Body, change: Callable[[Any], Any]) -> Body:
    for key in ("model", "name"):
        if key in body:
            body[key] = change(body[key])
    return body


def tame_registry(port: int) -> Callable[[Body], Body]:
    def tame(body: Body) -> Body:
        return _name_keys(body, lambda name: loopback_name(name, port))
    return tame


def tame_scratch(body: Body) -> Body:
    return _name_keys(body, scratch_name)


def tame_copy(body: Body) -> Body:
    if "destination" in body:
        body["destination"] = scratch_name(body["destination"])
    return body


# ---------------------------------------------------------------------------------------------- routes

def _common_generation(openai: bool) -> dict[str, st.SearchStrategy[Any]]:
    fields = {"model": MODEL_NAMES, "stream": BOOLS, "keep_alive": KEEP_ALIVE, "options": options(),
              "truncate": BOOLS}
    if openai:
        fields.update({"max_tokens": st.one_of(st.integers(-5, 10**6), NUMBERS, HOSTILE),
                       "max_completion_tokens": st.one_of(st.integers(-5, 10**6), HOSTILE),
                       "temperature": OPTION_VALUES["temperature"], "top_p": OPTION_VALUES["top_p"],
                       "seed": OPTION_VALUES["seed"], "stop": OPTION_VALUES["stop"],
                       "num_ctx": OPTION_VALUES["num_ctx"], "n": st.one_of(st.integers(-1, 3), HOSTILE),
                       "stream_options": st.one_of(st.just({"include_usage": True}), HOSTILE),
                       "logprobs": st.one_of(st.booleans(), HOSTILE), "user": odd_text()})
    return fields


def routes(closed_port: int) -> list[Route]:
    ollama_gen = _common_generation(openai=False)
    openai_gen = _common_generation(openai=True)
    embed_common = {"model": MODEL_NAMES, "keep_alive": KEEP_ALIVE, "options": options(), "truncate": BOOLS}
    embed_v1 = {"model": MODEL_NAMES, "options": options(), "num_ctx": OPTION_VALUES["num_ctx"], "user": odd_text(),
                "dimensions": st.one_of(st.integers(-2, 1000), HOSTILE)}
    registry_fields = {"model": MODEL_NAMES, "name": MODEL_NAMES, "insecure": BOOLS, "stream": BOOLS,
                       "username": odd_text(), "password": odd_text()}
    return [
        Route("POST", "/api/generate", {
            **ollama_gen, "prompt": PROMPT, "suffix": st.one_of(odd_text(), HOSTILE), "system": odd_text(),
            "template": TEMPLATES, "raw": BOOLS, "context": st.one_of(TOKEN_IDS, HOSTILE), "images": IMAGES,
            "format": FORMATS, "think": THINK}, ("model", "prompt"), tame_ollama_generation),
        Route("POST", "/api/chat", {
            **ollama_gen, "messages": st.one_of(st.lists(ollama_message(), min_size=1, max_size=6), HOSTILE),
            "tools": TOOLS, "format": FORMATS, "think": THINK}, ("model", "messages"), tame_ollama_generation),
        Route("POST", "/api/embed", {**embed_common, "input": EMBED_INPUT,
                                     "dimensions": st.one_of(st.integers(-2, 1000), HOSTILE)}, ("model", "input"),
              tame_embedding),
        Route("POST", "/api/embeddings", {**embed_common, "prompt": st.one_of(PROMPT, HOSTILE)},
              ("model", "prompt"), tame_embedding),
        Route("POST", "/api/show", {"model": MODEL_NAMES, "name": MODEL_NAMES, "verbose": BOOLS,
                                    "system": odd_text(), "template": TEMPLATES}, ("model",)),
        Route("POST", "/api/create", {
            "model": MODEL_NAMES, "from": st.one_of(st.just(BUNDLED), MODEL_NAMES, TRAVERSAL, HOSTILE),
            "template": TEMPLATES, "system": st.one_of(odd_text(), HOSTILE), "license": st.one_of(odd_text(), HOSTILE),
            "parameters": st.one_of(options(), HOSTILE), "stream": BOOLS,
            "messages": st.one_of(st.lists(ollama_message(), max_size=3), HOSTILE),
            "files": st.one_of(st.dictionaries(TRAVERSAL, st.sampled_from(["sha256:" + "0" * 64, "../x"]),
                                               max_size=2), HOSTILE),
            "adapters": st.one_of(st.dictionaries(TRAVERSAL, TRAVERSAL, max_size=1), HOSTILE),
            "quantize": st.one_of(st.sampled_from(["q4_K_M", "q8_0", "Q99", ""]), HOSTILE),
            "modelfile": st.one_of(st.sampled_from(["FROM smollm2:135m\nPARAMETER num_ctx 1",
                                                    "FROM ../../etc/passwd", "FROM /dev/zero", "PARAMETER",
                                                    'TEMPLATE """{{ .Prompt', "FROM smollm2:135m\nMESSAGE bot x"]),
                                   odd_text()),
        }, ("model", "from"), tame_scratch),
        Route("POST", "/api/copy", {"source": MODEL_NAMES, "destination": MODEL_NAMES}, ("source", "destination"),
              tame_copy),
        Route("DELETE", "/api/delete", {"model": MODEL_NAMES, "name": MODEL_NAMES}, ("model",), tame_scratch),
        Route("POST", "/api/pull", registry_fields, ("model",), tame_registry(closed_port)),
        Route("POST", "/api/push", registry_fields, ("model",), tame_registry(closed_port)),
        Route("POST", "/v1/chat/completions", {
            **openai_gen, "messages": st.one_of(st.lists(openai_message(), min_size=1, max_size=6), HOSTILE),
            "tools": TOOLS, "tool_choice": st.one_of(st.sampled_from(["auto", "none", "required"]),
                                                     st.just({"type": "function", "function": {"name": "zzz"}}),
                                                     HOSTILE),
            "response_format": RESPONSE_FORMATS, "reasoning_effort": THINK}, ("model", "messages"),
            tame_openai_generation),
        Route("POST", "/v1/completions", {
            **openai_gen, "prompt": st.one_of(PROMPT, st.lists(odd_text(), max_size=3), TOKEN_IDS),
            "suffix": odd_text(),
            "echo": BOOLS, "best_of": st.one_of(st.integers(0, 3), HOSTILE)}, ("model", "prompt"),
            tame_openai_generation),
        Route("POST", "/v1/embeddings", {
            **embed_v1, "input": EMBED_INPUT,
            "encoding_format": st.one_of(st.sampled_from(["float", "base64", "hex"]), HOSTILE)}, ("model", "input"),
            tame_v1_embedding),
    ]


# ------------------------------------------------------------------------------------------------ bodies

RAW_BODIES = st.sampled_from([
    b"", b" ", b"null", b"[]", b"1", b'"x"', b"{", b'{"model": ', b"\xff\xfe\x00", b'{"model": "\xff"}',
    b'{"model": "smollm2:135m",}', b"{'model': 'x'}", b"\x00" * 64, b'{"model": "smollm2:135m"}' * 2,
    b'{"model": "smollm2:135m", "model": 5}', b"[" * 5000, b'{"a":' * 500 + b"1" + b"}" * 500,
    json.dumps({"model": "\ud800" * 1000}).encode(),
])


@st.composite
def body_for(draw: st.DrawFn, route: Route) -> bytes:
    """Encoded bytes of a mutated body for ``route`` (or, one time in twelve, raw garbage)."""
    if draw(st.integers(0, 11)) == 0:
        return draw(RAW_BODIES)
    optional = sorted(set(route.fields) - set(route.required))
    plain = draw(st.integers(0, 3)) == 0  # only the required fields, unmutated: mostly valid bodies
    chosen = draw(st.lists(st.sampled_from(optional), max_size=4, unique=True)) if optional and not plain else []
    present = [*route.required, *chosen]
    body: Body = {name: draw(route.fields[name]) for name in present}
    for _ in range(0 if plain else draw(st.integers(0, 3))):
        _mutate(draw, body, route)
    return encode(route.tame(body))


def _mutate(draw: st.DrawFn, body: Body, route: Route) -> None:
    action = draw(st.sampled_from(["hostile", "hostile", "drop", "unknown", "raw_number"]))
    name = draw(st.sampled_from(sorted(route.fields)))
    if action == "hostile":
        body[name] = draw(HOSTILE)
    elif action == "drop":
        body.pop(name, None)
    elif action == "unknown":
        body[draw(odd_text(16))] = draw(JSON_ANY)
    else:
        body[name] = Raw(draw(st.sampled_from(["NaN", "1e999", "9" * 5000, "-" + "1" * 4301])))
