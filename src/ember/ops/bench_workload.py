"""Deterministic prompts for benchmarks: `ember bench` and the side-by-side benchmark in the repository's bench/.

Every prompt is a pure function of (scenario, index), so request *i* of a scenario is byte-for-byte the same
for every server. Each prompt starts with a tag naming its scenario and index, so no two requests share more
than the chat template's preamble: a server's prompt cache only helps where a scenario is about it (the
second turn of a conversation).
"""

from __future__ import annotations

import random
from typing import Protocol

Message = dict[str, str]


class Counter(Protocol):
    """Counts tokens of a text and of a rendered chat prompt (bench/ counts with the model's vocabulary)."""

    def count(self, text: str) -> int: ...

    def count_chat(self, messages: list[Message]) -> int: ...


class RoughCounter:
    """About 1.35 tokens per word: close enough to size a prompt; servers report the exact counts."""

    def count(self, text: str) -> int:
        return max(1, round(len(text.split()) * 1.35)) if text else 0

    def count_chat(self, messages: list[Message]) -> int:
        return sum(self.count(m["content"]) + 4 for m in messages) + 20


STORY_TOPICS = [
    "a lighthouse keeper who finds an old map hidden in the wall",
    "a young baker who opens a shop in a city of giants",
    "two rival inventors racing to build the first flying ship",
    "a cat who becomes the mayor of a small mountain village",
    "a lost astronaut who lands on a planet covered in forests",
    "a librarian who discovers that one book rewrites itself every night",
    "a fisherman who catches a talking fish that knows the future",
    "a girl who builds a robot out of kitchen tools",
    "an old knight who has to protect a bridge for one last day",
    "a travelling musician who plays for a kingdom of birds",
    "a detective who solves crimes in a floating city",
    "a gardener whose plants grow into a maze overnight",
]


def story_prompt(scenario: str, i: int) -> list[Message]:
    """A short prompt that makes a small instruct model talk for well over 128 tokens."""
    topic = STORY_TOPICS[i % len(STORY_TOPICS)]
    return [{
        "role": "user",
        "content": (f"[{scenario} #{i}] Write a very long and detailed story about {topic}. "
                    "Describe every character, every place and every event in great detail, "
                    "chapter by chapter."),
    }]


_PLACES = ["Aldbury", "Brennick", "Corvale", "Dunmere", "Eastwick", "Farrowdale", "Glenhollow", "Harrowgate",
           "Ironford", "Juniper Bay", "Kestrel Point", "Larkspur", "Millbrook", "Northcliff", "Oakhaven",
           "Pinecrest", "Queensmere", "Riverton", "Stonebridge", "Thornbury"]
_GOODS = ["wool", "copper pots", "dried fish", "apples", "glass beads", "salt", "timber", "honey", "linen",
          "iron nails", "barley", "cheese", "lamp oil", "rope", "paper", "clay bricks"]
_EVENTS = ["a spring flood", "a new stone bridge", "a harvest festival", "a long winter", "a fire in the market",
           "the opening of a school", "a visit from the governor", "a dispute over water rights",
           "the arrival of the railway", "a bumper crop of wheat"]


def _paragraph(rng: random.Random, k: int) -> str:
    a, b = rng.sample(_PLACES, 2)
    g1, g2 = rng.sample(_GOODS, 2)
    ev = rng.choice(_EVENTS)
    return (f"Section {k}. The town of {a} lies {rng.randint(3, 90)} kilometres from {b}, and about "
            f"{rng.randint(300, 20000)} people live there. Its weekly market is known for {g1} and {g2}, "
            f"which traders carry along the old road on {rng.randint(2, 40)} carts every week. In the year "
            f"{rng.randint(1700, 1990)} the town was changed by {ev}; the council recorded "
            f"{rng.randint(10, 500)} complaints and {rng.randint(1, 60)} new buildings in the following "
            f"decade. Visitors usually stay for {rng.randint(1, 9)} days and remember the {g1} more than "
            "anything else.")


def document(n_tokens: int, seed: int, counter: Counter) -> str:
    """A deterministic filler document of about ``n_tokens`` tokens (never fewer)."""
    rng = random.Random(seed)
    paras: list[str] = []
    total = 0
    k = 1
    while total < n_tokens and k < 10_000:
        p = _paragraph(rng, k)
        paras.append(p)
        total += counter.count(p) + 1
        k += 1
    return "\n".join(paras)


def prefill_prompt(i: int, n_tokens: int, counter: Counter) -> list[Message]:
    """About ``n_tokens`` of prompt in total (template included), different for every ``i``."""
    head = f"[prefill #{i}] Read the following notes.\n\n"
    tail = "\n\nIn one word, which town is mentioned first?"
    overhead = counter.count_chat([{"role": "user", "content": head + tail}])
    doc = document(max(16, n_tokens - overhead), seed=1000 + i, counter=counter)
    return [{"role": "user", "content": head + doc + tail}]


def conversation_turn1(i: int, n_tokens: int, counter: Counter) -> list[Message]:
    head = f"[conversation #{i}] Here are my notes about some towns.\n\n"
    tail = "\n\nPlease summarise these notes in detail, town by town."
    overhead = counter.count_chat([{"role": "user", "content": head + tail}])
    doc = document(max(16, n_tokens - overhead), seed=5000 + i, counter=counter)
    return [{"role": "user", "content": head + doc + tail}]


def conversation_turn2(turn1: list[Message], answer: str) -> list[Message]:
    return [*turn1, {"role": "assistant", "content": answer},
            {"role": "user", "content": "Thank you. Now tell me more about the third town, in detail."}]
