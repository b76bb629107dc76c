from __future__ import annotations

import pytest

from ember.errors import InvalidModelName
from ember.names import ModelName

FULL_DEFAULT = "registry.ollama.ai/library/qwen3:latest"


@pytest.mark.parametrize("text", [
    "qwen3", "qwen3:latest", "library/qwen3", "library/qwen3:latest", "registry.ollama.ai/library/qwen3",
    FULL_DEFAULT, "https://registry.ollama.ai/library/qwen3", "http://registry.ollama.ai/library/qwen3:latest",
])
def test_equivalent_spellings_resolve_to_one_name(text: str) -> None:
    name = ModelName.parse(text)
    assert name.full == FULL_DEFAULT
    assert name.display == "qwen3:latest"


@pytest.mark.parametrize(("text", "parts", "display"), [
    ("qwen3:1.7b", ("registry.ollama.ai", "library", "qwen3", "1.7b"), "qwen3:1.7b"),
    ("user/model", ("registry.ollama.ai", "user", "model", "latest"), "user/model:latest"),
    ("hf.co/bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M",
     ("hf.co", "bartowski", "Qwen2.5-7B-Instruct-GGUF", "Q4_K_M"), "hf.co/bartowski/Qwen2.5-7B-Instruct-GGUF:Q4_K_M"),
    ("localhost:5000/ns/model:tag", ("localhost:5000", "ns", "model", "tag"), "localhost:5000/ns/model:tag"),
    ("localhost:5000/ns/model", ("localhost:5000", "ns", "model", "latest"), "localhost:5000/ns/model:latest"),
    ("http://localhost:5000/ns/model", ("localhost:5000", "ns", "model", "latest"), "localhost:5000/ns/model:latest"),
    ("smollm2:135m", ("registry.ollama.ai", "library", "smollm2", "135m"), "smollm2:135m"),
    ("a_b.c-d:x_y.z-1", ("registry.ollama.ai", "library", "a_b.c-d", "x_y.z-1"), "a_b.c-d:x_y.z-1"),
])
def test_parts_and_shortest_display(text: str, parts: tuple[str, ...], display: str) -> None:
    name = ModelName.parse(text)
    assert name.parts == parts
    assert name.display == display


def test_repository_and_full() -> None:
    name = ModelName.parse("hf.co/bartowski/Model-GGUF:Q8_0")
    assert name.repository == "bartowski/Model-GGUF"
    assert name.full == "hf.co/bartowski/Model-GGUF:Q8_0"
    assert str(name) == name.display


def test_key_ignores_case_but_display_keeps_it() -> None:
    upper, lower = ModelName.parse("Library/Qwen3:Latest"), ModelName.parse("qwen3")
    assert upper.key == lower.key
    assert upper != lower
    assert upper.display == "Qwen3:Latest"  # "Library" is the default namespace in any case


@pytest.mark.parametrize("text", [
    "", ":", "x:", ":tag", "/x", "x/", "a//b", "a/b/c/d", "h/a/b/c:t", "..", "../x", "x/..", "a..b", "x:..",
    "x y", "x\n", "x\t", "x\x00", "back\\slash", "ns.with.dot/model", "-x", ".x", "x:-tag", "x:tag/y",
    "m" * 81, "x:" + "t" * 81, "n" * 81 + "/m", "h" * 351 + "/n/m", "x@sha256:00", "ünïcode",
])
def test_bad_names_are_rejected(text: str) -> None:
    with pytest.raises(InvalidModelName) as exc_info:
        ModelName.parse(text)
    assert exc_info.value.status == 400
    assert exc_info.value.message == "invalid model name"


def test_longest_valid_parts_are_accepted() -> None:
    name = ModelName.parse("h" * 350 + "/" + "n" * 80 + "/" + "m" * 80 + ":" + "t" * 80)
    assert len(name.model) == 80 and len(name.host) == 350


def test_with_tag_validates() -> None:
    assert ModelName.parse("x").with_tag("1b").display == "x:1b"
    with pytest.raises(InvalidModelName):
        ModelName.parse("x").with_tag("")
