"""The runner child process: owns one model's llama.cpp context and serves the parent over a pipe.

Messages from the parent (tuples): ``generate``, ``cancel``, ``tokenize``, ``embed``, ``ping``, ``exit``.
Messages to the parent: ``ready``/``load_error`` once, then ``token``, ``done``, ``result``, ``error``.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
from multiprocessing.connection import Connection
from typing import Any

from ember.engine.batcher import Batcher, Request
from ember.engine.llama import Batch, Context, ContextSpec, Model, Sampler

_KV_BYTES = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}


class LlamaBackend:
    """Adapts engine.llama objects to the Batcher's Backend protocol."""

    def __init__(self, model: Model, ctx: Context, spec: ContextSpec) -> None:
        self.model = model
        self.ctx = ctx
        self.n_batch = spec.n_batch
        self.n_ctx_per_seq = spec.n_ctx_per_seq
        self.batch = Batch(spec.n_batch + spec.n_seq, spec.n_seq)

    def new_sampler(self, opts: dict[str, Any]) -> Sampler:
        if int(opts.get("repeat_last_n", 64)) < 0:  # Ollama's -1: penalise over the whole context
            opts = {**opts, "repeat_last_n": self.n_ctx_per_seq}
        return Sampler(self.model, opts)

    def sample(self, sampler: Sampler, index: int) -> int:
        return sampler.sample(self.ctx, index)

    def free_sampler(self, sampler: Sampler | None) -> None:
        if sampler is not None:
            sampler.close()

    def is_eog(self, token: int) -> bool:
        return self.model.is_eog(token)

    def piece(self, token: int) -> bytes:
        return self.model.piece(token)

    def drop(self, seq: int, start: int) -> None:
        self.ctx.drop(seq, start)

    def decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        self.batch.clear()
        for token, pos, seq, logits in entries:
            self.batch.add(token, pos, seq, logits)
        self.ctx.decode(self.batch)


class Runner:
    def __init__(self, conn: Connection, spec: dict[str, Any]) -> None:
        self.conn = conn
        self.spec = spec
        self.model = Model(spec["model_path"], spec.get("adapters") or [], num_gpu=int(spec.get("num_gpu", 0)))
        n_ctx = min(int(spec["num_ctx"]), self.model.n_ctx_train or int(spec["num_ctx"]))
        self.ctx_spec = ContextSpec(
            n_ctx_per_seq=n_ctx,
            n_seq=int(spec["num_parallel"]),
            n_batch=int(spec["num_batch"]),
            n_thread=int(spec["num_thread"]),
            kv_cache_type=spec.get("kv_cache_type", "f16"),
            flash_attention=spec.get("flash_attention"),
        )
        self.ctx = Context(self.model, self.ctx_spec)
        self.backend = LlamaBackend(self.model, self.ctx, self.ctx_spec)
        # Events of one step go to the parent in one message: one wake-up per step, not per token.
        self.pending: list[tuple[Any, ...]] = []
        self.batcher = Batcher(self.backend, self.ctx_spec.n_seq, emit=self.pending.append)
        self.embed_ctx: Context | None = None

    def info(self) -> dict[str, Any]:
        return {
            "n_ctx_train": self.model.n_ctx_train,
            "num_ctx": self.ctx_spec.n_ctx_per_seq,
            "num_parallel": self.ctx_spec.n_seq,
            "n_embd": self.model.n_embd,
            "add_bos": self.model.add_bos,
            "size": self.model.size + self._kv_bytes(),
            "kv_size_per_slot": self._kv_bytes() // self.ctx_spec.n_seq,
        }

    def _kv_bytes(self) -> int:
        import llama_cpp as L

        model = self.model.ptr
        n_head = max(1, int(L.llama_model_n_head(model)))
        head_dim = self.model.n_embd // n_head
        per_token = 2 * int(L.llama_model_n_layer(model)) * int(L.llama_model_n_head_kv(model)) * head_dim
        total = self.ctx_spec.n_ctx_per_seq * self.ctx_spec.n_seq
        return int(per_token * total * _KV_BYTES[self.ctx_spec.kv_cache_type])

    def serve(self) -> None:
        while True:
            timeout: float | None = 0 if self.batcher.busy else None
            while self.conn.poll(timeout):
                if not self.handle(self.conn.recv()):
                    return
                timeout = 0
            if self.batcher.busy:
                try:
                    self.batcher.step()
                except Exception as exc:  # a failed decode must not take the other requests down silently
                    self.batcher.fail_all(f"llama.cpp decode failed: {exc}")
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self.conn.send(("events", self.pending[:]))
            self.pending.clear()

    def handle(self, msg: tuple[Any, ...]) -> bool:
        op = msg[0]
        if op == "generate":
            _, rid, tokens, opts, stop, num_predict, num_ctx = msg
            self.batcher.submit(Request(rid, tokens, opts, tuple(stop), num_predict, num_ctx))
        elif op == "cancel":
            self.batcher.cancel(msg[1])
        elif op == "tokenize":
            _, rid, text, add_special = msg
            self.conn.send(("result", rid, self.model.tokenize(text, add_special=add_special)))
        elif op == "embed":
            self._embed(*msg[1:])
        elif op == "ping":
            self.conn.send(("result", msg[1], "pong"))
        elif op == "exit":
            return False
        return True

    def _embed(self, rid: int, texts: list[str], truncate: bool, num_ctx: int) -> None:
        try:
            self.conn.send(("result", rid, [self._embed_one(t, truncate, num_ctx) for t in texts]))
        except ValueError as exc:
            self.conn.send(("error", rid, str(exc), "bad_request"))
        except Exception as exc:
            self.conn.send(("error", rid, f"embedding failed: {exc}"))

    def _embed_one(self, text: str, truncate: bool, num_ctx: int) -> tuple[list[float], int]:
        limit = min(num_ctx, self.model.n_ctx_train or num_ctx)
        ctx = self._embedding_context(limit)
        tokens = self.model.tokenize(text, add_special=True)
        if len(tokens) > limit:
            if not truncate:
                raise ValueError("the input length exceeds the context length")
            tokens = tokens[:limit]
        if not tokens:
            tokens = self.model.tokenize(" ", add_special=True)
        ctx.drop(0, 0)
        batch = Batch(len(tokens), 1)
        try:
            for pos, token in enumerate(tokens):
                batch.add(token, pos, 0, True)
            ctx.decode(batch)
        finally:
            batch.close()
        vector = ctx.embedding(0, self.model.n_embd)
        if not all(math.isfinite(v) for v in vector):
            raise RuntimeError("non-finite embedding")
        return vector, len(tokens)

    def _embedding_context(self, n_ctx: int) -> Context:
        if self.embed_ctx is None or self.embed_ctx.n_ctx_per_seq < n_ctx:
            if self.embed_ctx is not None:
                self.embed_ctx.close()
            spec = ContextSpec(n_ctx_per_seq=n_ctx, n_seq=1, n_batch=n_ctx, n_thread=self.ctx_spec.n_thread)
            self.embed_ctx = Context(self.model, spec, embeddings=True)
        return self.embed_ctx


def main(conn: Connection, spec: dict[str, Any]) -> None:
    """Serve one model until the parent says exit or goes away."""
    try:
        runner = Runner(conn, spec)
    except Exception as exc:
        conn.send(("load_error", str(exc)))
        return
    conn.send(("ready", runner.info()))
    with contextlib.suppress(EOFError, BrokenPipeError, KeyboardInterrupt):
        runner.serve()  # these mean the parent went away: nothing left to serve


if __name__ == "__main__":
    main(Connection(int(sys.argv[1])), json.loads(sys.argv[2]))
