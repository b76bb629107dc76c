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

LIMITS = """
## Limits on a request
Every route checks its body before any work; a value outside these limits is a 4xx naming the field.

| limit | value | setting |
|---|---|---|
| JSON body size (blob uploads excepted: streamed to disk) | {max_body} bytes | `EMBER_MAX_BODY_BYTES` (413) |
| time for a JSON body to arrive / longest pause in an upload | {body_timeout:g} s | `EMBER_BODY_TIMEOUT` (408) |
| JSON nesting depth | {depth} levels | fixed (400) |
| messages in one chat | {max_messages} | `EMBER_MAX_MESSAGES` (400) |
| `num_ctx` | {min_ctx} to {max_ctx}; then clamped to the model's trained context | fixed (400) |
| generated tokens (`num_predict`) | capped at {max_predict} | `EMBER_MAX_PREDICT` |
| `stop` sequences | {stops} of at most {stop_len} characters | fixed (400) |
| whole request, queue wait and load included | {request_timeout:g} s | `EMBER_REQUEST_TIMEOUT` (504) |
| Go template execution (`template`, Modelfile `TEMPLATE`) | {steps} steps, {chars} characters of output | fixed (400) |
| other options | `top_p`, `min_p`, `typical_p` 0 to 1; `temperature` 0 to 100; `top_k` -1 to 2^20; penalties in range | fixed (400) |

Strings are checked for valid Unicode the same way on every route: a lone UTF-16 surrogate (JSON `"\\ud800"`)
is replaced with U+FFFD, as llama.cpp does with invalid UTF-8, rather than refused. `/api/create` reads only
regular files (not FIFOs, devices, directories or sparse files).
"""


def limits() -> str:
    from ember.api.bodies import MAX_JSON_DEPTH
    from ember.config import Settings
    from ember.gotemplate.execute import MAX_OUTPUT_CHARS, MAX_STEPS
    from ember.options import MAX_NUM_CTX, MAX_STOP_LENGTH, MAX_STOP_SEQUENCES, MIN_NUM_CTX

    s = Settings()
    return LIMITS.format(max_body=s.max_body_bytes, body_timeout=s.body_timeout, depth=MAX_JSON_DEPTH,
                         max_messages=s.max_messages, min_ctx=MIN_NUM_CTX, max_ctx=MAX_NUM_CTX,
                         max_predict=s.max_predict, stops=MAX_STOP_SEQUENCES, stop_len=MAX_STOP_LENGTH,
                         request_timeout=s.request_timeout, steps=MAX_STEPS, chars=MAX_OUTPUT_CHARS)


def render() -> str:
    rows = []
    for env, default, help_text in describe():
        names = ", ".join(f"`{e}`" for e in env.split(", "))
        rows.append(f"| {names} | `{default}` | {help_text} |")
    return HEADER + "\n".join(rows) + "\n" + NOTES + limits()


if __name__ == "__main__":
    Path(__file__).resolve().parent.parent.joinpath("docs/configuration.md").write_text(render(), encoding="utf-8")
