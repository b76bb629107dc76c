"""The runner child process: owns one model's llama.cpp context and serves the parent over a pipe.

The messages both ways are the types in ``engine.messages``.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

from ember.engine.batcher import Batcher
from ember.engine.llama import Batch, Context, ContextSpec, Model, Sampler
from ember.engine.logprobs import token_logprob
from ember.engine.messages import (
    Cancel,
    Command,
    Embed,
    Events,
    Exit,
    Failed,
    FailureKind,
    Generate,
    LoadError,
    Ready,
    RequestEvent,
    Result,
    RunnerInfo,
    RunnerSpec,
    Tokenize,
    TokenLogprob,
)

_KV_BYTES = {"f16": 2.0, "q8_0": 34 / 32, "q4_0": 18 / 32}
# While busy without output (a long prompt read in chunks, a batch of embeddings), the runner still says it is
# alive this often, so the parent's stall watchdog only ever fires on a runner that is really stuck.
HEARTBEAT_S = 0.5


class LlamaBackend:
    """Adapts engine.llama objects to the Batcher's Backend protocol."""

    def __init__(self, model: Model, ctx: Context, spec: ContextSpec) -> None:
        self.model = model
        self.ctx = ctx
        self.n_batch = spec.n_batch
        self.n_ctx_per_seq = spec.n_ctx_per_seq
        self.n_vocab = model.n_vocab
        self.batch = Batch(spec.n_batch + spec.n_seq, spec.n_seq)

    def new_sampler(self, opts: dict[str, Any]) -> Sampler:
        if int(opts.get("repeat_last_n", 64)) < 0:  # Ollama's -1: penalise over the whole context
            opts = {**opts, "repeat_last_n": self.n_ctx_per_seq}
        return Sampler(self.model, opts)

    def sample(self, sampler: Sampler, index: int) -> int:
        return sampler.sample(self.ctx, index)

    def logprob(self, index: int, token: int, top_n: int) -> TokenLogprob:
        return token_logprob(self.ctx.logits(index, self.n_vocab), token, top_n, self.model.piece)

    def free_sampler(self, sampler: Sampler | None) -> None:
        if sampler is not None:
            sampler.close()

    def is_eog(self, token: int) -> bool:
        return self.model.is_eog(token)

    def piece(self, token: int) -> bytes:
        return self.model.piece(token)

    def tokenize(self, text: str) -> list[int]:
        return self.model.tokenize(text, add_special=False, parse_special=False)

    def drop(self, seq: int, start: int) -> None:
        self.ctx.drop(seq, start)

    def copy_prefix(self, src: int, dst: int, length: int) -> None:
        self.ctx.copy_prefix(src, dst, length)

    def shift(self, seq: int, keep: int, discard: int) -> bool:
        return self.ctx.shift(seq, keep, discard)

    def decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        self.batch.clear()
        for token, pos, seq, logits in entries:
            self.batch.add(token, pos, seq, logits)
        self.ctx.decode(self.batch)


class Runner:
    def __init__(self, conn: Connection, spec: RunnerSpec) -> None:
        self.conn = conn
        self.spec = spec
        self.model = Model(spec.model_path, list(spec.adapters), num_gpu=spec.num_gpu)
        n_ctx = min(spec.num_ctx, self.model.n_ctx_train or spec.num_ctx)
        self.ctx_spec = ContextSpec(
            n_ctx_per_seq=n_ctx,
            n_seq=spec.num_parallel,
            n_batch=spec.num_batch,
            n_thread=spec.num_thread,
            kv_cache_type=spec.kv_cache_type,
            flash_attention=spec.flash_attention,
        )
        self.ctx = Context(self.model, self.ctx_spec)
        self.backend = LlamaBackend(self.model, self.ctx, self.ctx_spec)
        # Events of one step go to the parent in one message: one wake-up per step, not per token.
        self.pending: list[RequestEvent] = []
        self.batcher = Batcher(self.backend, self.ctx_spec.n_seq, emit=self.pending.append,
                               share_prefix=spec.shared_prefix, lookup=spec.prompt_lookup)
        self.embed_ctx: Context | None = None
        self.last_sent = time.monotonic()
        # Messages that arrived while an embedding batch ran; they are handled, in order, once it ends.
        self.deferred: deque[Command] = deque()

    def info(self) -> RunnerInfo:
        return RunnerInfo(
            n_ctx_train=self.model.n_ctx_train,
            num_ctx=self.ctx_spec.n_ctx_per_seq,
            num_parallel=self.ctx_spec.n_seq,
            n_embd=self.model.n_embd,
            add_bos=self.model.add_bos,
            size=self.model.size + self._kv_bytes(),
            kv_size_per_slot=self._kv_bytes() // self.ctx_spec.n_seq,
        )

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
            while self.deferred:
                if not self._handle_safely(self.deferred.popleft()):
                    return
            timeout: float | None = 0 if self.batcher.busy else None
            while not self.deferred and self.conn.poll(timeout):
                if not self._handle_safely(self.conn.recv()):
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
            self._send_events(self.pending[:])
            self.pending.clear()
        elif self.batcher.busy:
            self._heartbeat()

    def _heartbeat(self) -> None:
        if time.monotonic() - self.last_sent >= HEARTBEAT_S:
            self._send_events([])

    def _send_events(self, events: list[RequestEvent]) -> None:
        self.conn.send(Events(events))
        self.last_sent = time.monotonic()

    def _handle_safely(self, msg: Command) -> bool:
        """One request's bad input fails that request, never the runner and everyone else's requests."""
        try:
            return self.handle(msg)
        except Exception as exc:
            rid = getattr(msg, "rid", None)
            if rid is None:
                raise
            self.conn.send(Failed(rid, f"the request could not be processed: {exc}", FailureKind.BAD_REQUEST))
            return True

    def handle(self, msg: Command) -> bool:
        """Act on one message from the parent; False means exit."""
        match msg:
            case Generate():
                self.batcher.submit(msg)
            case Cancel(rid):
                self.batcher.cancel(rid)
            case Tokenize(rid, text, add_special):
                self.conn.send(Result(rid, self.model.tokenize(text, add_special=add_special)))
            case Embed():
                self._embed(msg)
            case Exit():
                return False
        return True

    def _embed(self, msg: Embed) -> None:
        try:
            vectors: list[tuple[list[float], int]] = []
            for text in msg.texts:
                vectors.append(self._embed_one(text, msg.truncate, msg.num_ctx))
                self._heartbeat()
                if self._cancelled_meanwhile(msg.rid):
                    return  # nobody waits for the answer any more
            self.conn.send(Result(msg.rid, vectors))
        except ValueError as exc:
            self.conn.send(Failed(msg.rid, str(exc), FailureKind.BAD_REQUEST))
        except Exception as exc:
            self.conn.send(Failed(msg.rid, f"embedding failed: {exc}"))

    def _cancelled_meanwhile(self, rid: int) -> bool:
        """Reads what arrived during a batch: a cancel of this batch ends it; anything else waits its turn."""
        cancelled = False
        while self.conn.poll(0):
            msg = self.conn.recv()
            if isinstance(msg, Cancel) and msg.rid == rid:
                cancelled = True
            else:
                self.deferred.append(msg)
        return cancelled

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


def main(conn: Connection, spec: RunnerSpec) -> None:
    """Serve one model until the parent says exit or goes away."""
    try:
        runner = Runner(conn, spec)
    except Exception as exc:
        conn.send(LoadError(str(exc)))
        return
    conn.send(Ready(runner.info()))
    with contextlib.suppress(EOFError, BrokenPipeError, KeyboardInterrupt):
        runner.serve()  # these mean the parent went away: nothing left to serve


if __name__ == "__main__":
    main(Connection(int(sys.argv[1])), RunnerSpec.from_json(sys.argv[2]))
