"""One streaming chat request against either API, timed on the client side.

* ``ollama``: Ember's native ``POST /api/chat`` (NDJSON); the final chunk carries ``prompt_eval_count``,
  ``prompt_eval_duration``, ``eval_count`` and ``eval_duration`` (ns).
* ``openai``: ``POST /v1/chat/completions`` with ``stream: true`` (server-sent events), used for
  ``llama-server`` (whose last chunks carry ``usage`` and ``timings``) and ``python -m llama_cpp.server``
  (which reports no counts in streams: tokens are then counted with the model's own vocabulary).

All three servers render the same prompt with the model's chat template, so the requests are the same
token sequences everywhere (the report shows the prompt token counts the servers saw, as a check).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from workload import Message, TokenCounter


@dataclass
class Result:
    ok: bool
    t_start: float                      # perf_counter at send
    ttft_s: float | None = None         # send -> first chunk with generated text
    latency_s: float | None = None      # send -> end of stream
    gen_tokens: int = 0
    gen_tokens_source: str = ""         # "server" | "tokenizer"
    prompt_tokens: int | None = None    # as reported by the server, else counted locally
    prompt_tokens_source: str = ""
    prompt_cached: int | None = None    # prompt tokens the server took from its cache, if reported
    server_prompt_ms: float | None = None   # server's own prompt-processing time, if reported
    server_decode_ms: float | None = None   # server's own generation time, if reported
    chunks: int = 0
    finish_reason: str | None = None
    text: str = field(default="", repr=False)
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("text")
        d["text_chars"] = len(self.text)
        return d


class ChatClient:
    def __init__(self, base_url: str, api: str, model: str, counter: TokenCounter,
                 timeout_s: float = 300.0, stream_usage: bool = False) -> None:
        self.base_url = base_url
        self.stream_usage = stream_usage
        self.api = api
        self.model = model
        self.counter = counter
        self.timeout_s = timeout_s
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=10.0), limits=limits)

    async def aclose(self) -> None:
        await self.http.aclose()

    def _body(self, messages: list[Message], max_tokens: int) -> tuple[str, dict[str, Any]]:
        if self.api == "ollama":
            return "/api/chat", {
                "model": self.model, "messages": messages, "stream": True,
                "options": {"num_predict": max_tokens, "temperature": 0, "seed": 42},
            }
        body: dict[str, Any] = {
            "model": self.model, "messages": messages, "stream": True,
            "max_tokens": max_tokens, "temperature": 0, "seed": 42,
        }
        if self.stream_usage:
            body["stream_options"] = {"include_usage": True}   # llama-server
        return "/v1/chat/completions", body

    async def chat(self, messages: list[Message], max_tokens: int) -> Result:
        path, body = self._body(messages, max_tokens)
        t0 = time.perf_counter()
        res = Result(ok=False, t_start=t0)
        parts: list[str] = []
        final: dict[str, Any] = {}
        try:
            async with self.http.stream("POST", self.base_url + path, json=body) as r:
                if r.status_code != 200:
                    res.error = f"HTTP {r.status_code}: {(await r.aread())[:300]!r}"
                    return res
                async for line in r.aiter_lines():
                    if not line:
                        continue
                    if self.api == "openai":
                        if not line.startswith("data:"):
                            continue
                        line = line[5:].strip()
                        if line == "[DONE]":
                            break
                    chunk = json.loads(line)
                    res.chunks += 1
                    if "error" in chunk:
                        res.error = str(chunk["error"])[:300]
                        return res
                    piece = self._piece(chunk, final)
                    if piece:
                        if res.ttft_s is None:
                            res.ttft_s = time.perf_counter() - t0
                        parts.append(piece)
            res.latency_s = time.perf_counter() - t0
        except (httpx.HTTPError, json.JSONDecodeError) as e:
            res.error = f"{type(e).__name__}: {e}"[:300]
            return res
        res.text = "".join(parts)
        self._counts(res, final, messages)
        if res.ttft_s is None or res.finish_reason is None:
            # a stream that ends without text or without a finish reason was cut short by the server
            res.error = (f"stream ended without {'generated text' if res.ttft_s is None else 'a finish reason'}"
                         f" after {res.chunks} chunk(s)")
            return res
        res.ok = True
        return res

    def _piece(self, chunk: dict[str, Any], final: dict[str, Any]) -> str:
        if self.api == "ollama":
            if chunk.get("done"):
                final.update(chunk)
            msg = chunk.get("message") or {}
            return str(msg.get("content") or "")
        for key in ("usage", "timings"):
            if chunk.get(key):
                final[key] = chunk[key]
        choices = chunk.get("choices") or []
        if not choices:
            return ""
        c = choices[0]
        if c.get("finish_reason"):
            final["finish_reason"] = c["finish_reason"]
        return str((c.get("delta") or {}).get("content") or "")

    def _counts(self, res: Result, final: dict[str, Any], messages: list[Message]) -> None:
        if self.api == "ollama":
            res.finish_reason = final.get("done_reason") or ("stop" if final.get("done") else None)
            if "eval_count" in final:
                res.gen_tokens, res.gen_tokens_source = int(final["eval_count"]), "server"
            if "prompt_eval_count" in final:
                res.prompt_tokens, res.prompt_tokens_source = int(final["prompt_eval_count"]), "server"
            if final.get("prompt_cache_count") is not None or "prompt_eval_count" in final:
                res.prompt_cached = int(final.get("prompt_cache_count") or 0)
            if final.get("prompt_eval_duration") is not None:
                res.server_prompt_ms = final["prompt_eval_duration"] / 1e6
            if final.get("eval_duration") is not None:
                res.server_decode_ms = final["eval_duration"] / 1e6
        else:
            res.finish_reason = final.get("finish_reason")
            usage = final.get("usage") or {}
            timings = final.get("timings") or {}
            if "completion_tokens" in usage:
                res.gen_tokens, res.gen_tokens_source = int(usage["completion_tokens"]), "server"
            elif "predicted_n" in timings:
                res.gen_tokens, res.gen_tokens_source = int(timings["predicted_n"]), "server"
            if "prompt_tokens" in usage:
                res.prompt_tokens, res.prompt_tokens_source = int(usage["prompt_tokens"]), "server"
            if "cache_n" in timings:  # llama-server
                res.prompt_cached = int(timings["cache_n"])
            if "prompt_ms" in timings:
                res.server_prompt_ms = float(timings["prompt_ms"])
            if "predicted_ms" in timings:
                res.server_decode_ms = float(timings["predicted_ms"])
        if not res.gen_tokens_source:
            res.gen_tokens, res.gen_tokens_source = self.counter.count(res.text), "tokenizer"
        if res.prompt_tokens is None:
            res.prompt_tokens = self.counter.count_chat(messages)
            res.prompt_tokens_source = "tokenizer"
