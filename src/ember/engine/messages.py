"""The runner protocol: every message between the API process and a runner process, as a type.

Small frozen dataclasses, pickled over the socket pair. Requests carry an id (``rid``) that the runner
echoes in the events it sends back; one step's events travel together in one ``Events`` message.

    API process -> runner     Generate, Cancel, Tokenize, Embed, Exit
    runner -> API process     Ready | LoadError (once), then Events(Token | Done | Failed), Result, Failed
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunnerSpec:
    """What a runner loads, and how; passed to the child process as JSON on its command line."""

    name: str
    model_path: str
    num_ctx: int
    num_parallel: int
    num_batch: int
    num_thread: int
    adapters: tuple[str, ...] = ()
    num_gpu: int = 0
    kv_cache_type: str = "f16"
    flash_attention: bool | None = None
    shared_prefix: bool = True
    prompt_lookup: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RunnerSpec:
        raw = json.loads(text)
        raw["adapters"] = tuple(raw.get("adapters") or ())
        return cls(**raw)


@dataclass(frozen=True)
class RunnerInfo:
    """What a runner reports once its model is loaded."""

    n_ctx_train: int
    num_ctx: int
    num_parallel: int
    n_embd: int
    add_bos: bool
    size: int
    kv_size_per_slot: int


# -- API process -> runner ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Generate:
    rid: int
    tokens: list[int]
    options: dict[str, Any]
    stop: tuple[str, ...] = ()
    num_predict: int = 128
    num_ctx: int = 0
    top_logprobs: int | None = None  # None: no log-probabilities; n: the chosen token's and the n likeliest
    keep: int | None = None  # context shift: tokens kept at the start when num_ctx fills; None: stop instead


@dataclass(frozen=True)
class Cancel:
    rid: int


@dataclass(frozen=True)
class Tokenize:
    rid: int
    text: str
    add_special: bool = True


@dataclass(frozen=True)
class Embed:
    rid: int
    texts: list[str]
    truncate: bool
    num_ctx: int


@dataclass(frozen=True)
class Exit:
    pass


Command = Generate | Cancel | Tokenize | Embed | Exit


# -- runner -> API process ----------------------------------------------------------------------------


class FailureKind(enum.Enum):
    BAD_REQUEST = "bad_request"  # the request cannot be served as asked: a 400 for the client
    INTERNAL = "internal"  # llama.cpp failed: the runner is suspect
    CRASHED = "crashed"  # the runner died or wedged (made up by the API process, never sent)


@dataclass(frozen=True)
class Ready:
    info: RunnerInfo


@dataclass(frozen=True)
class LoadError:
    message: str


@dataclass(frozen=True)
class TokenLogprob:
    """A token's log-probability under the model's distribution before sampling; ``top`` are the likeliest."""

    token: str
    logprob: float
    bytes: bytes
    top: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class Token:
    rid: int
    text: str
    logprobs: tuple[TokenLogprob, ...] = ()  # of the tokens whose text this is, when asked for


@dataclass(frozen=True)
class Done:
    rid: int
    done_reason: str
    prompt_eval_count: int = 0
    prompt_cached: int = 0
    prompt_eval_duration: float = 0.0  # seconds
    eval_count: int = 0
    eval_duration: float = 0.0  # seconds
    tokens: list[int] = field(default_factory=list)  # generated ids, for /api/generate's context
    closed_early: bool = False  # a format answer was ended with forced closing tokens to fit num_predict


@dataclass(frozen=True)
class Failed:
    rid: int
    message: str
    kind: FailureKind = FailureKind.INTERNAL


@dataclass(frozen=True)
class Result:
    rid: int
    value: Any


RequestEvent = Token | Done | Failed


@dataclass(frozen=True)
class Events:
    """One decode step's events, sent together: one wake-up of the API process per step, not per token."""

    events: list[RequestEvent]


Reply = Ready | LoadError | Events | Result | Failed
