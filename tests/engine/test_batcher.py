"""Scheduling edge cases of the batcher, with a scripted backend (no model): what each step feeds, when
slots free up, how stop strings split across tokens, and which slot a request lands in."""

from __future__ import annotations

import json
from typing import Any

from ember.engine.batcher import Batcher
from ember.engine.messages import Done, Failed, FailureKind, Generate, RequestEvent, Token, TokenLogprob

EOS = 0


class ScriptedBackend:
    """Each sequence 'generates' the tokens scripted for its request; pieces are chr(token)."""

    n_batch = 16
    n_ctx_per_seq = 64
    n_vocab = 1000

    def __init__(self) -> None:
        self.decoded: list[list[tuple[int, int, int, bool]]] = []
        self.dropped: list[tuple[int, int]] = []
        self.scripts: dict[int, list[int]] = {}
        self.shifts: list[tuple[int, int, int]] = []
        self.copies: list[tuple[int, int, int]] = []

    def new_sampler(self, opts: dict[str, Any]) -> Any:
        return list(opts["script"])

    def sample(self, sampler: Any, index: int) -> int:
        return int(sampler.pop(0)) if sampler else EOS

    def free_sampler(self, sampler: Any) -> None:
        pass

    def is_eog(self, token: int) -> bool:
        return token == EOS

    def piece(self, token: int) -> bytes:
        return chr(token).encode()

    def logprob(self, index: int, token: int, top_n: int) -> TokenLogprob:
        # a made-up value that names the token, so a test can see which entry went where
        top = (TokenLogprob("?", -0.1, b"?"),) * top_n
        return TokenLogprob(chr(token), -token / 1000, chr(token).encode(), top)

    def tokenize(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def drop(self, seq: int, start: int) -> None:
        self.dropped.append((seq, start))

    def shift(self, seq: int, keep: int, discard: int) -> bool:
        self.shifts.append((seq, keep, discard))
        return True

    def copy_prefix(self, src: int, dst: int, length: int) -> None:
        self.copies.append((src, dst, length))

    def decode(self, entries: list[tuple[int, int, int, bool]]) -> None:
        self.decoded.append(list(entries))


def make(n_slots: int = 2) -> tuple[Batcher, ScriptedBackend, list[RequestEvent]]:
    events: list[RequestEvent] = []
    backend = ScriptedBackend()
    return Batcher(backend, n_slots, events.append), backend, events


def run(batcher: Batcher, limit: int = 100) -> None:
    for _ in range(limit):
        if not batcher.busy:
            return
        batcher.step()
    raise AssertionError("batcher did not finish")


def text_of(events: list[RequestEvent], rid: int) -> str:
    return "".join(e.text for e in events if isinstance(e, Token) and e.rid == rid)


def done_of(events: list[RequestEvent], rid: int) -> Done:
    return next(e for e in events if isinstance(e, Done) and e.rid == rid)


def req(rid: int, prompt: list[int], reply: str, options_format: Any = None, **kw: Any) -> Generate:
    options: dict[str, Any] = {"script": [ord(c) for c in reply]}
    if options_format is not None:
        options["format"] = options_format
    return Generate(rid, prompt, options, **kw)


def test_two_requests_share_each_decode_step() -> None:
    batcher, backend, events = make()
    batcher.submit(req(1, [1, 2, 3], "ab", num_predict=10))
    batcher.submit(req(2, [4, 5], "cd", num_predict=10))
    run(batcher)
    assert text_of(events, 1) == "ab" and text_of(events, 2) == "cd"
    first = backend.decoded[0]
    assert {seq for _, _, seq, _ in first} == {0, 1}, "both prompts go into the first batch"
    assert [logits for *_, logits in first] == [False, False, True, False, True]
    assert all(len(step) == 2 for step in backend.decoded[1:]), "then one token per sequence per step"


def test_num_predict_ends_with_length() -> None:
    batcher, _, events = make()
    batcher.submit(req(1, [1], "abcdef", num_predict=3))
    run(batcher)
    assert text_of(events, 1) == "abc"
    assert done_of(events, 1).done_reason == "length"
    assert done_of(events, 1).eval_count == 3


def test_stop_string_split_across_tokens_is_not_emitted() -> None:
    batcher, _, events = make()
    batcher.submit(req(1, [1], "hello END more", num_predict=50, stop=("END",)))
    run(batcher)
    assert text_of(events, 1) == "hello "
    assert done_of(events, 1).done_reason == "stop"


def test_each_token_logprob_travels_with_the_text_it_produced() -> None:
    batcher, _, events = make()
    batcher.submit(req(1, [1], "abEc", num_predict=50, stop=("END",), top_logprobs=2))
    batcher.submit(req(2, [1], "xy", num_predict=50))
    run(batcher)
    chunks = [e for e in events if isinstance(e, Token) and e.rid == 1]
    # "E" may start the stop string, so it waits; its logprob waits with it and leaves with "Ec"
    assert [(c.text, [lp.token for lp in c.logprobs]) for c in chunks] == \
        [("a", ["a"]), ("b", ["b"]), ("Ec", ["E", "c"])]
    assert all(len(lp.top) == 2 for c in chunks for lp in c.logprobs)
    assert all(not e.logprobs for e in events if isinstance(e, Token) and e.rid == 2), "not asked, not computed"


def test_partial_stop_prefix_is_released_when_it_does_not_match() -> None:
    batcher, _, events = make()
    batcher.submit(req(1, [1], "aEb", num_predict=50, stop=("END",)))
    run(batcher)
    assert text_of(events, 1) == "aEb"


def test_cancel_frees_the_slot_for_a_waiting_request() -> None:
    batcher, _, events = make(n_slots=1)
    batcher.submit(req(1, [1], "x" * 40, num_predict=40))
    batcher.submit(req(2, [2], "ok", num_predict=10))
    batcher.step()
    assert batcher.slots[0].request is not None and batcher.slots[0].request.rid == 1
    batcher.cancel(1)
    assert done_of(events, 1).done_reason == "cancel"
    assert batcher.slots[0].request is not None and batcher.slots[0].request.rid == 2
    run(batcher)
    assert text_of(events, 2) == "ok"
    assert len(text_of(events, 1)) <= 1


def test_request_goes_to_slot_with_longest_prefix_and_reuses_it() -> None:
    batcher, backend, events = make()
    batcher.submit(req(1, [1, 2, 3, 4], "a", num_predict=1))
    batcher.submit(req(2, [9, 9], "b", num_predict=1))
    run(batcher)
    backend.decoded.clear()
    batcher.submit(req(3, [1, 2, 3, 4, 5, 6], "c", num_predict=1))
    run(batcher)
    assert done_of(events, 3).prompt_cached == 4
    assert [t for t, *_ in backend.decoded[0]] == [5, 6], "only the new tail is evaluated"


def test_identical_prompt_still_evaluates_its_last_token() -> None:
    batcher, backend, events = make(n_slots=1)
    batcher.submit(req(1, [1, 2, 3], "a", num_predict=1))
    run(batcher)
    backend.decoded.clear()
    batcher.submit(req(2, [1, 2, 3], "a", num_predict=1))
    run(batcher)
    assert done_of(events, 2).prompt_cached == 2
    assert [t for t, *_ in backend.decoded[0]] == [3]


def test_long_prompt_is_chunked_while_others_decode() -> None:
    batcher, backend, events = make()
    batcher.submit(req(1, [1], "x" * 30, num_predict=30))
    batcher.step()
    batcher.step()
    backend.n_batch = 64
    batcher.submit(req(2, list(range(1, 200)), "y", num_predict=1))
    batcher.step()
    step = backend.decoded[-1]
    assert any(seq == 0 for _, _, seq, _ in step), "the decoding sequence still advances"
    assert sum(1 for _, _, seq, _ in step if seq == 1) < 199, "the newcomer's prompt is chunked"


def test_context_full_without_shift_ends_with_length() -> None:
    batcher, backend, events = make(n_slots=1)
    backend.n_ctx_per_seq = 8
    batcher.slots[0].cached = []
    batcher.submit(req(1, [1, 2, 3, 4, 5], "abcdefgh", num_predict=100))
    run(batcher)
    assert done_of(events, 1).done_reason == "length"
    assert len(text_of(events, 1)) <= 3


def test_a_full_context_shifts_and_generation_goes_on() -> None:
    batcher, backend, events = make(n_slots=1)
    backend.n_ctx_per_seq = 8
    batcher.submit(req(1, [1, 2, 3, 4, 5], "abcdefghij", num_predict=10, keep=2))
    run(batcher)
    assert text_of(events, 1) == "abcdefghij" and done_of(events, 1).done_reason == "length"
    assert backend.shifts and all(keep == 2 and discard > 0 for _, keep, discard in backend.shifts)
    positions = [pos for step in backend.decoded for _, pos, _, _ in step]
    assert max(positions) < 8, "no token is ever placed past num_ctx"
    # the shifted entries are not what a fresh prompt would compute: only the kept prefix is reused later
    batcher.submit(req(2, [1, 2, 3, 4, 5], "z", num_predict=1))
    run(batcher)
    assert done_of(events, 2).prompt_cached == 2


def test_decode_failure_fails_everyone_in_flight() -> None:
    batcher, backend, events = make()
    batcher.submit(req(1, [1], "abc", num_predict=10))
    batcher.submit(req(2, [2], "abc", num_predict=10))
    batcher.fail_all("boom")
    assert [e.rid for e in events if isinstance(e, Failed)] == [1, 2]
    assert not batcher.busy


def test_empty_prompts_and_foreign_token_ids_fail_alone_and_leave_the_slots_free() -> None:
    batcher, backend, events = make(n_slots=1)
    batcher.submit(req(1, [], "never"))
    batcher.submit(req(2, [1, 1000], "never"))
    batcher.submit(req(3, [-5, 2], "never"))
    failed = [e for e in events if isinstance(e, Failed)]
    assert [(e.rid, e.kind) for e in failed] == [(1, FailureKind.BAD_REQUEST), (2, FailureKind.BAD_REQUEST),
                                                 (3, FailureKind.BAD_REQUEST)]
    assert failed[0].message == "the prompt is empty"
    assert "outside the vocabulary (0 to 999)" in failed[1].message
    assert not batcher.busy and backend.decoded == []
    batcher.submit(req(4, [1, 2], "ok"))
    while batcher.busy:
        batcher.step()
    assert text_of(events, 4) == "ok"


def test_a_format_answer_that_would_overrun_is_closed_within_num_predict() -> None:
    batcher, _, events = make()
    batcher.submit(req(1, [1], '{"name": "an endless name', num_predict=14, options_format="json"))
    run(batcher)
    done = done_of(events, 1)
    assert text_of(events, 1) == '{"name": "an"}'
    assert done.done_reason == "length" and done.closed_early and done.eval_count == 14
    assert done.tokens == [ord(c) for c in '{"name": "an"}']


def test_a_format_answer_that_fits_is_not_marked_closed_early() -> None:
    batcher, _, events = make()
    batcher.submit(req(1, [1], '{"a": 1}', num_predict=20, options_format="json"))
    run(batcher)
    assert text_of(events, 1) == '{"a": 1}'
    done = done_of(events, 1)
    assert done.done_reason == "stop" and not done.closed_early


def test_the_dropped_token_loses_its_logprob() -> None:
    batcher, _, events = make()
    batcher.submit(req(1, [1], '["abc', num_predict=3, top_logprobs=0,
                       options_format={"type": "array"}))
    run(batcher)
    assert text_of(events, 1) == "[]", 'the quote would need "]" too: 4 tokens'
    assert [lp.token for e in events if isinstance(e, Token) for lp in e.logprobs] == ["["]


def test_a_format_answer_is_closed_before_a_full_context_ends_it() -> None:
    batcher, _, events = make()
    batcher.submit(req(1, [1, 2, 3, 4], '{"name": "an endless name that goes on', num_predict=50, num_ctx=18,
                       options_format="json"))
    run(batcher)
    done = done_of(events, 1)
    assert done.done_reason == "length" and done.closed_early
    assert text_of(events, 1) == '{"name": "an"}', "14 tokens: the context (18) less the prompt (4)"
    assert json.loads(text_of(events, 1)) == {"name": "an"} and done.eval_count == 14


def test_requests_with_one_new_prefix_read_it_once_and_copy_it() -> None:
    batcher, backend, events = make(n_slots=3)
    system = list(range(100, 140))  # 40 tokens: more than MIN_SHARED_PREFIX
    for rid, tail in ((1, [7]), (2, [8, 9]), (3, [10])):
        batcher.submit(req(rid, system + tail, "x", num_predict=1))
    run(batcher)
    fed = [(seq, pos) for step in backend.decoded for _, pos, seq, _ in step]
    assert sum(1 for seq, pos in fed if pos < 40) == 40, "the shared 40 tokens were evaluated once"
    assert sorted(dst for _, dst, _ in backend.copies) == [1, 2]
    assert all(src == 0 and length == 40 for src, _, length in backend.copies)
    assert [done_of(events, rid).prompt_cached for rid in (1, 2, 3)] == [0, 40, 40]
    assert all(text_of(events, rid) == "x" for rid in (1, 2, 3))


def test_a_short_shared_prefix_is_not_worth_a_copy() -> None:
    batcher, backend, events = make(n_slots=2)
    batcher.submit(req(1, [1, 2, 3, 4], "x", num_predict=1))
    batcher.submit(req(2, [1, 2, 3, 5], "y", num_predict=1))
    run(batcher)
    assert backend.copies == []
    assert done_of(events, 2).prompt_cached == 0


def test_a_waiting_request_goes_on_alone_when_the_reader_is_cancelled() -> None:
    batcher, backend, events = make(n_slots=2)
    system = list(range(100, 150))
    batcher.submit(req(1, system + [7], "x", num_predict=1))
    batcher.submit(req(2, system + [8], "y", num_predict=1))
    batcher.cancel(1)
    run(batcher)
    assert text_of(events, 2) == "y"
    assert done_of(events, 2).prompt_cached == 0


def test_a_prefix_another_slot_holds_while_it_decodes_is_copied() -> None:
    batcher, backend, events = make(n_slots=2)
    system = list(range(100, 150))
    batcher.submit(req(1, system + [7], "abcdefgh", num_predict=8))
    for _ in range(5):  # 51 prompt tokens in batches of 16, then one decode step
        batcher.step()
    batcher.submit(req(2, system + [9], "y", num_predict=1))
    run(batcher)
    assert backend.copies == [(0, 1, 50)]
    assert done_of(events, 2).prompt_cached == 50
    assert text_of(events, 1) == "abcdefgh" and text_of(events, 2) == "y"
