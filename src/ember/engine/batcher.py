"""Continuous batching over sequence slots sharing one llama.cpp context.

One ``step()`` builds one batch: every decoding slot contributes its last sampled token, and slots still
reading their prompt contribute a chunk of it; one ``llama_decode`` serves them all. A slot keeps the tokens
in its KV cache after a request ends, so the next request with the longest common prefix reuses them.
"""

from __future__ import annotations

import codecs
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ember.engine.lookup import draft
from ember.engine.messages import Done, Failed, FailureKind, Generate, RequestEvent, Token, TokenLogprob
from ember.engine.prefix_share import common_prefix, plan_share
from ember.engine.structured import Closing, ClosingBudget

Emit = Callable[[RequestEvent], None]

# While other slots are decoding, a newcomer's prompt is fed in chunks this large, so their
# next token is delayed by one small prefill instead of the whole prompt.
_PREFILL_CHUNK_WHILE_DECODING = 128
# A prefix shared with another slot is copied (or waited for) only when it saves at least this many tokens of
# prefill: the copy moves the other slot's whole KV stream, which costs about as much as a few tokens.
MIN_SHARED_PREFIX = 32


class Backend(Protocol):
    """What the batcher needs from llama.cpp; the real one is engine.llama, tests may pass a fake."""

    n_batch: int
    n_ctx_per_seq: int
    n_vocab: int

    def new_sampler(self, opts: dict[str, Any]) -> Any: ...
    def sample(self, sampler: Any, index: int) -> int: ...
    def free_sampler(self, sampler: Any) -> None: ...
    def is_eog(self, token: int) -> bool: ...
    def piece(self, token: int) -> bytes: ...
    def tokenize(self, text: str) -> list[int]: ...
    def logprob(self, index: int, token: int, top_n: int) -> TokenLogprob: ...
    def drop(self, seq: int, start: int) -> None: ...
    def shift(self, seq: int, keep: int, discard: int) -> bool: ...
    def copy_prefix(self, src: int, dst: int, length: int) -> None: ...
    def decode(self, entries: list[tuple[int, int, int, bool]]) -> None: ...


@dataclass
class Slot:
    seq: int
    cached: list[int] = field(default_factory=list)  # tokens whose KV entries are in the cache
    last_used: float = 0.0
    request: Generate | None = None
    pending: list[int] = field(default_factory=list)  # prompt tokens not yet evaluated
    next_token: int | None = None  # sampled, to be fed at the next step
    sampler: Any = None
    generated: int = 0
    output: list[int] = field(default_factory=list)  # generated token ids, for /api/generate's context
    reused: int = 0
    # After a context shift, cache entries past this many tokens were moved, not computed where they now sit:
    # a later request may reuse only the part before it.
    exact: int | None = None
    text_held: str = ""
    decoder: Any = None
    logprobs: list[TokenLogprob] = field(default_factory=list)  # of sampled tokens whose text is not out yet
    t_start: float = 0.0
    t_first: float = 0.0
    limit: int = 0
    closing: ClosingBudget | None = None  # a ``format`` answer: ends validly within num_predict
    closed_early: bool = False
    # Another slot is reading a prompt that starts like this one's: this slot waits until that slot's cache holds
    # the shared part, then copies it instead of evaluating it a second time.
    wait_for: Slot | None = None


class Batcher:
    def __init__(self, backend: Backend, n_slots: int, emit: Emit, *, share_prefix: bool = True,
                 lookup: int = 0) -> None:
        self.backend = backend
        self.share_prefix = share_prefix
        self.lookup = lookup  # prompt-lookup draft tokens per step; 0: off
        self.drafted = 0
        self.accepted = 0
        self.slots = [Slot(seq=i) for i in range(n_slots)]
        self.waiting: deque[Generate] = deque()
        self.emit = emit

    # -- requests in and out --------------------------------------------------------------------------

    def submit(self, request: Generate) -> None:
        problem = self._invalid(request)
        if problem:
            self.emit(Failed(request.rid, problem, FailureKind.BAD_REQUEST))
            return
        self.waiting.append(request)
        self._assign()

    def _invalid(self, request: Generate) -> str | None:
        """What llama.cpp would crash or hang on: no tokens at all, or ids outside the vocabulary."""
        if not request.tokens:
            return "the prompt is empty"
        n_vocab = self.backend.n_vocab
        if any(not 0 <= t < n_vocab for t in request.tokens):
            return f"the prompt has token ids outside the vocabulary (0 to {n_vocab - 1})"
        return None

    def cancel(self, request_id: int) -> None:
        for i, request in enumerate(self.waiting):
            if request.rid == request_id:
                del self.waiting[i]
                self.emit(Done(request_id, "cancel"))
                return
        for slot in self.slots:
            if slot.request is not None and slot.request.rid == request_id:
                self._finish(slot, "cancel", flush=False)
                self._assign()
                return

    @property
    def busy(self) -> bool:
        return any(s.request is not None for s in self.slots)

    def fail_all(self, message: str) -> None:
        """A decode failed: every request in flight gets the error and the caches are dropped."""
        for slot in self.slots:
            if slot.request is not None:
                self.emit(Failed(slot.request.rid, message))
                self.backend.free_sampler(slot.sampler)
                slot.request, slot.sampler, slot.pending, slot.next_token = None, None, [], None
            slot.wait_for = None
            self.backend.drop(slot.seq, 0)
            slot.cached = []

    def _assign(self) -> None:
        while self.waiting:
            free = [s for s in self.slots if s.request is None]
            if not free:
                return
            request = self.waiting.popleft()
            self._start(self._best_slot(free, request.tokens), request)

    def _best_slot(self, free: list[Slot], tokens: list[int]) -> Slot:
        return max(free, key=lambda s: (common_prefix(s.cached, tokens), -s.last_used))

    def _start(self, slot: Slot, request: Generate) -> None:
        # Re-evaluate at least the last prompt token: its logits are what the first sample needs.
        reuse = min(common_prefix(slot.cached, request.tokens), len(request.tokens) - 1)
        if slot.exact is not None:
            reuse = min(reuse, slot.exact)
        slot.exact = None
        self.backend.drop(slot.seq, reuse)
        slot.cached = slot.cached[:reuse]
        slot.request = request
        slot.pending = request.tokens[reuse:]
        slot.reused = reuse
        slot.next_token = None
        slot.generated = 0
        slot.output = []
        slot.text_held = ""
        slot.logprobs = []
        slot.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        slot.t_start = time.perf_counter()
        slot.t_first = 0.0
        slot.limit = min(request.num_ctx or self.backend.n_ctx_per_seq, self.backend.n_ctx_per_seq)
        fmt = request.options.get("format")
        slot.closing = ClosingBudget(fmt, self.backend.tokenize) if fmt not in (None, "") else None
        slot.closed_early = False
        try:
            slot.sampler = self.backend.new_sampler(request.options)
        except Exception as exc:
            slot.request = None
            self.emit(Failed(request.rid, str(exc), FailureKind.BAD_REQUEST))
            return
        if self.share_prefix:
            self._share(slot)

    # -- prompt prefixes shared between slots ---------------------------------------------------------

    def _share(self, slot: Slot) -> None:
        """Take the longest prefix another slot has cached, or wait for one that another slot is reading now."""
        assert slot.request is not None
        tokens = slot.request.tokens
        plan = plan_share([(o, o.cached, o.exact, self._reading(o)) for o in self.slots if o is not slot],
                          tokens, slot.reused, MIN_SHARED_PREFIX)
        if plan.wait_for is not None:
            slot.wait_for = plan.wait_for
        elif plan.copy_from is not None:
            self.backend.copy_prefix(plan.copy_from.seq, slot.seq, plan.length)
            slot.cached = tokens[:plan.length]
            slot.pending = tokens[plan.length:]
            slot.reused = plan.length

    @staticmethod
    def _reading(slot: Slot) -> list[int]:
        """The prompt tokens a slot is about to evaluate (none when it waits itself)."""
        return slot.pending if slot.request is not None and slot.wait_for is None else []

    def _resolve_waits(self) -> None:
        for slot in self.slots:
            donor = slot.wait_for
            if slot.request is None or donor is None:
                continue
            if donor.request is not None and donor.wait_for is None and donor.pending and \
                    common_prefix(donor.cached + donor.pending, slot.request.tokens) > len(donor.cached):
                continue  # the shared part is still being read
            slot.wait_for = None
            self._share(slot)

    # -- one decode step -----------------------------------------------------------------------------

    def step(self) -> None:
        self._resolve_waits()
        entries: list[tuple[int, int, int, bool]] = []
        samplers: list[tuple[Slot, int]] = []
        feeding: list[tuple[Slot, list[int], bool]] = []
        verifying: list[tuple[Slot, int, list[int]]] = []
        decoding = sum(1 for s in self.slots if s.request is not None and s.next_token is not None)
        spare = self.backend.n_batch - decoding  # what drafts may add to the batch
        for slot in self.slots:
            if slot.request is not None and slot.next_token is not None:
                fed = [slot.next_token, *self._draft(slot, spare)]
                spare -= len(fed) - 1
                verifying.append((slot, len(entries), fed))
                for offset, token in enumerate(fed):
                    entries.append((token, len(slot.cached) + offset, slot.seq, True))
        budget = self.backend.n_batch - len(entries)
        if entries:
            budget = min(budget, _PREFILL_CHUNK_WHILE_DECODING)
        for slot in self.slots:
            if slot.request is None or not slot.pending or budget <= 0 or slot.wait_for is not None:
                continue
            chunk = slot.pending[:budget]
            last = len(chunk) == len(slot.pending)
            base = len(slot.cached)
            for offset, token in enumerate(chunk):
                is_last = last and offset == len(chunk) - 1
                if is_last:
                    samplers.append((slot, len(entries)))
                entries.append((token, base + offset, slot.seq, is_last))
            feeding.append((slot, chunk, True))
            budget -= len(chunk)
        if not entries:
            return
        self.backend.decode(entries)
        for slot, tokens, from_prompt in feeding:
            slot.cached.extend(tokens)
            if from_prompt:
                slot.pending = slot.pending[len(tokens):]
            else:
                slot.next_token = None
        for slot, index, fed in verifying:
            self._verify(slot, index, fed)
        for slot, index in samplers:
            if slot.request is not None:
                self._sample_at(slot, index)
        self._assign()

    def _sample_at(self, slot: Slot, index: int) -> int:
        assert slot.request is not None
        token = self.backend.sample(slot.sampler, index)
        top_n = slot.request.top_logprobs
        if top_n is not None and not self.backend.is_eog(token):
            slot.logprobs.append(self.backend.logprob(index, token, top_n))
        self._after_sample(slot, token)
        return token

    # -- prompt-lookup decoding -------------------------------------------------------------------------

    def _draft(self, slot: Slot, spare: int) -> list[int]:
        """Guessed tokens to feed after the sampled one; none near the context's end (no shift mid-draft)."""
        request = slot.request
        assert request is not None
        room = min(self.lookup, spare, slot.limit - len(slot.cached) - 3, request.num_predict - slot.generated)
        if room <= 0:
            return []
        guess = draft(request.tokens + slot.output, room)
        self.drafted += len(guess)
        return guess

    def _verify(self, slot: Slot, index: int, fed: list[int]) -> None:
        """Sample at each fed position in order, as plain decoding would, while the samples confirm the draft.

        Each position's logits saw exactly the tokens plain decoding would have fed before it, and the sampler
        sees the same calls in the same order, so the output (and its distribution) is unchanged. Cells of the
        draft tokens that were not confirmed are removed from the cache.
        """
        kept = 0
        for k, token in enumerate(fed):
            slot.cached.append(token)
            slot.next_token = None
            kept += 1
            sampled = self._sample_at(slot, index + k)
            if k + 1 == len(fed) or slot.request is None or sampled != fed[k + 1]:
                break
            self.accepted += 1
        if kept < len(fed):  # a draft leaves room for itself, so no context shift happened above
            self.backend.drop(slot.seq, len(slot.cached))

    def _after_sample(self, slot: Slot, token: int) -> None:
        request = slot.request
        assert request is not None
        if slot.generated == 0:
            slot.t_first = time.perf_counter()
        if self.backend.is_eog(token):
            self._finish(slot, "stop")
            return
        before = slot.decoder.getstate()
        text = slot.decoder.decode(self.backend.piece(token))
        closing = slot.closing.admit(text, slot.generated + 1, self._budget(slot)) if slot.closing else None
        if closing is not None:
            slot.decoder.setstate(before)
            if request.top_logprobs is not None and slot.logprobs:
                slot.logprobs.pop()  # the dropped token's
            self._close_early(slot, closing)
            return
        slot.generated += 1
        slot.output.append(token)
        if self._push_text(slot, text):
            self._finish(slot, "stop", flush=False)
            return
        if slot.generated >= request.num_predict:
            self._finish(slot, "length")
            return
        if len(slot.cached) + 1 >= slot.limit and not self._shift(slot):
            self._finish(slot, "length")
            return
        slot.next_token = token

    def _budget(self, slot: Slot) -> int:
        """Tokens the answer may have: num_predict, and the context's room when it cannot shift."""
        request = slot.request
        assert request is not None
        if request.keep is not None:
            return request.num_predict
        return min(request.num_predict, slot.limit - len(request.tokens))

    def _close_early(self, slot: Slot, closing: Closing) -> None:
        """End a ``format`` answer with forced closing tokens instead of the token that would not fit."""
        slot.generated += len(closing.tokens)
        slot.output.extend(closing.tokens)
        slot.closed_early = True
        slot.text_held += slot.decoder.decode(b"", final=True) + closing.text
        self._finish(slot, "length")

    def _shift(self, slot: Slot) -> bool:
        """Make room by dropping the older half of what follows the kept prefix (Ollama's context shift)."""
        request = slot.request
        assert request is not None
        if request.keep is None:
            return False
        keep = min(max(request.keep, 0), slot.limit - 2)
        discard = (len(slot.cached) - keep) // 2
        if discard <= 0 or not self.backend.shift(slot.seq, keep, discard):
            return False
        del slot.cached[keep:keep + discard]
        slot.exact = keep if slot.exact is None else min(slot.exact, keep)
        return True

    def _push_text(self, slot: Slot, text: str) -> bool:
        """Emit text that cannot be part of a stop string; True when a stop string was hit."""
        request = slot.request
        assert request is not None
        held = slot.text_held + text
        for stop in request.stop:
            at = held.find(stop)
            if at >= 0:
                if at:
                    self._emit_text(slot, held[:at])
                slot.text_held = ""
                return True
        keep = _longest_stop_prefix_suffix(held, request.stop)
        out, slot.text_held = held[: len(held) - keep], held[len(held) - keep:]
        if out:
            self._emit_text(slot, out)
        return False

    def _emit_text(self, slot: Slot, text: str) -> None:
        assert slot.request is not None
        self.emit(Token(slot.request.rid, text, tuple(slot.logprobs)))
        slot.logprobs = []

    def _finish(self, slot: Slot, reason: str, *, flush: bool = True) -> None:
        request = slot.request
        assert request is not None
        if flush:
            tail = slot.text_held + slot.decoder.decode(b"", final=True)
            if tail:
                self._emit_text(slot, tail)
        now = time.perf_counter()
        first = slot.t_first or now
        self.emit(Done(
            request.rid, reason,
            prompt_eval_count=len(request.tokens),
            prompt_cached=slot.reused,
            prompt_eval_duration=first - slot.t_start,
            eval_count=slot.generated,
            eval_duration=now - first,
            tokens=slot.output,
            closed_early=slot.closed_early,
        ))
        self.backend.free_sampler(slot.sampler)
        slot.sampler = None
        slot.closing = None
        slot.wait_for = None
        slot.request = None
        slot.pending = []
        slot.next_token = None
        slot.last_used = now


def _longest_stop_prefix_suffix(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest tail of ``text`` that could still grow into one of ``stops``."""
    best = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:k]):
                best = k
                break
    return best
