"""Prompt-lookup drafts: where a guess comes from, and that checking it never changes what is generated."""

from __future__ import annotations

from ember.engine.lookup import draft
from tests.engine.test_batcher import done_of, make, req, run, text_of


def test_the_tokens_after_the_latest_repeat_of_the_tail_are_the_guess() -> None:
    history = [1, 2, 3, 9, 9, 1, 2, 3, 7, 8, 5, 1, 2, 3]
    assert draft(history, 2) == [7, 8], "the latest earlier occurrence wins"
    assert draft(history, 0) == []
    assert draft([4, 5, 6], 3) == [], "nothing repeats"
    assert draft([5, 6, 1, 5, 6], 4) == [1, 5, 6], "the guess may run into the tail itself"


def test_a_single_token_match_is_no_guess() -> None:
    assert draft([1, 2, 3, 4, 1], 3) == []


def test_drafts_change_nothing_but_how_many_tokens_one_decode_carries() -> None:
    prompt = [ord(c) for c in "copy this: abcdefgh"]
    reply = "abcdefgh xbcdefgh"
    outputs = []
    for lookup in (0, 4):
        batcher, backend, events = make(n_slots=1)
        batcher.lookup = lookup
        batcher.submit(req(1, prompt, reply, num_predict=40))
        run(batcher)
        outputs.append((text_of(events, 1), done_of(events, 1).eval_count, len(backend.decoded)))
        if lookup:
            assert batcher.accepted > 0 and batcher.drafted > batcher.accepted
            assert backend.dropped[-1][1] < 60, "cells of rejected guesses were removed"
    assert outputs[0][:2] == outputs[1][:2] == (reply, len(reply))
    assert outputs[1][2] < outputs[0][2], "fewer decode steps with drafts"
