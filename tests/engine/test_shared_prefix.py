"""One prefill for a shared system prompt, on the bundled model: eight requests arriving together evaluate the
shared ~500 tokens once, and answer exactly what each answers alone."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ember.engine.batcher import MIN_SHARED_PREFIX, Batcher
from ember.engine.llama import Context, ContextSpec, Model
from ember.engine.messages import Done, Generate, RequestEvent
from ember.engine.prefix_share import common_prefix
from ember.engine.runner_main import LlamaBackend
from ember.store.bundled import bundled_gguf_path

N_USERS = 8
SYSTEM = " ".join(
    f"Rule {i}: answer politely, briefly and truthfully, and mention the {word} when it helps."
    for i, word in enumerate(["weather", "ocean", "library", "garden", "river", "mountain", "market", "school"] * 3)
)
QUESTIONS = ["What is 2+2?", "Name a color.", "Say hello.", "What is the sun?", "Name a fruit.",
             "Count to three.", "What is rain?", "Name an animal."]


def chat(question: str) -> str:
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{question}<|im_end|>\n"
            "<|im_start|>assistant\n")


@pytest.fixture(scope="module")
def model() -> Iterator[Model]:
    loaded = Model(str(bundled_gguf_path()))
    yield loaded
    loaded.close()


def make(model: Model, share: bool, n_seq: int = N_USERS) -> tuple[Batcher, list[RequestEvent], Context]:
    spec = ContextSpec(n_ctx_per_seq=1024, n_seq=n_seq, n_batch=512, n_thread=2)
    ctx = Context(model, spec)
    events: list[RequestEvent] = []
    return Batcher(LlamaBackend(model, ctx, spec), n_seq, events.append, share_prefix=share), events, ctx


def request(model: Model, rid: int) -> Generate:
    return Generate(rid, model.tokenize(chat(QUESTIONS[rid])), {"temperature": 0}, num_predict=16)


def serve(model: Model, prompts: list[Generate], share: bool, n_seq: int = N_USERS) -> dict[int, Done]:
    """Submit the prompts together to a fresh context and run until every one is done."""
    batcher, events, ctx = make(model, share, n_seq)
    try:
        for p in prompts:
            batcher.submit(p)
        run(batcher)
    finally:
        ctx.close()
    return dones(events)


def run(batcher: Batcher) -> None:
    for _ in range(2000):
        if not batcher.busy:
            return
        batcher.step()
    raise AssertionError("the batcher did not finish")


def dones(events: list[RequestEvent]) -> dict[int, Done]:
    return {e.rid: e for e in events if isinstance(e, Done)}


def test_eight_users_behind_one_system_prompt_prefill_it_once(model: Model) -> None:
    prompts = [request(model, rid) for rid in range(N_USERS)]
    shared = min(common_prefix(prompts[0].tokens, p.tokens) for p in prompts[1:])
    assert 400 <= shared <= 600, f"the shared system prompt is {shared} tokens"

    together = serve(model, prompts, share=True)
    cached = sorted(d.prompt_cached for d in together.values())
    assert cached[0] == 0, "the first request evaluated its whole prompt"
    assert all(c >= shared - MIN_SHARED_PREFIX for c in cached[1:]), cached
    for p in prompts:  # only what another prompt also starts with can come from another slot
        assert together[p.rid].prompt_cached <= max(common_prefix(p.tokens, q.tokens) for q in prompts if q is not p)

    # The same requests one at a time, each on an empty cache: the reference answers. llama.cpp's results for
    # a sequence depend on how its tokens are split into steps (measured: up to 0.84 in one logit between a
    # step with one and with several tokens of that sequence), and in a shared batch a prompt is read in other
    # chunks than alone, so greedy decoding can flip a near-tie later in an answer, with or without sharing
    # (seen: one token in 3 x 12 without sharing). Exact: every first token (from the prompt, the part sharing
    # changes); whole answers: most of them.
    alone = {p.rid: run_alone(model, p) for p in prompts}
    unshared = serve(model, prompts, share=False)
    for rid in range(N_USERS):
        assert together[rid].tokens[:1] == alone[rid].tokens[:1], f"request {rid} started differently"
    same_shared = sum(together[rid].tokens == alone[rid].tokens for rid in range(N_USERS))
    same_unshared = sum(unshared[rid].tokens == alone[rid].tokens for rid in range(N_USERS))
    print(f"whole answers equal to one-at-a-time: shared {same_shared}/8, unshared {same_unshared}/8")
    assert same_shared >= N_USERS // 2


def run_alone(model: Model, p: Generate) -> Done:
    done = serve(model, [p], share=False, n_seq=1)[p.rid]
    assert done.prompt_cached == 0
    return done


def test_without_sharing_every_request_reads_its_whole_prompt(model: Model) -> None:
    served = serve(model, [request(model, rid) for rid in range(3)], share=False)
    assert [d.prompt_cached for d in served.values()] == [0, 0, 0]
