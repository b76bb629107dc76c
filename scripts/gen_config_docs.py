"""Regenerate docs/configuration.md from ember.config (tests/test_docs.py checks it is current)."""

from __future__ import annotations

from pathlib import Path

from ember.config import describe

HEADER = """# Configuration

Ember reads one settings object at start-up from the environment. Every setting has an `EMBER_*` name;
where Ollama has the same knob its `OLLAMA_*` name works too (the `EMBER_*` name wins when both are set).
Durations accept Go-style strings (`5m`, `1h30m`, `300ms`) or a number of seconds; a negative keep-alive
means forever. `ember serve --help` prints the same table.

| variables | default | meaning |
|---|---|---|
"""

NOTES = """
## Notes
- `OLLAMA_HOST` accepts `host`, `host:port`, `:port`, `http://host[:port]` and `[::1]:port`. Binding to a
  non-loopback address logs a loud warning: the engine API has no authentication of its own yet.
- `OLLAMA_DEBUG=1` is read as `EMBER_LOG_LEVEL=debug`.
- `OLLAMA_KV_CACHE_TYPE=q8_0|q4_0` turns flash attention on (llama.cpp needs it for a quantized V cache)
  unless `OLLAMA_FLASH_ATTENTION` says otherwise.
- KV cache memory per model is `num_ctx × num_parallel` tokens; `/api/ps` reports weights plus KV as `size`.
"""


def render() -> str:
    rows = []
    for env, default, help_text in describe():
        names = ", ".join(f"`{e}`" for e in env.split(", "))
        rows.append(f"| {names} | `{default}` | {help_text} |")
    return HEADER + "\n".join(rows) + "\n" + NOTES


if __name__ == "__main__":
    Path(__file__).resolve().parent.parent.joinpath("docs/configuration.md").write_text(render(), encoding="utf-8")
