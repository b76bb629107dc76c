"""The engine's front door: generate, chat and embed requests in, neutral events out.

HTTP layers (Ollama's /api, OpenAI's /v1) shape these events into their own wire formats.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from ember.config import Settings
from ember.engine.json_close import minimal_instance
from ember.engine.logprobs import MAX_TOP_LOGPROBS
from ember.engine.messages import Done, TokenLogprob
from ember.engine.parsers import ThinkingParser, ToolCallParser
from ember.engine.prompt import ModelTraits, render_chat, render_generate
from ember.engine.scheduler import Lease, Scheduler
from ember.engine.traits import traits_for
from ember.errors import BadRequest, CapabilityError, ContextOverflow, DeadlineExceeded
from ember.options import Sampling, merge_options, parse_options, sampling_from
from ember.store import LocalModel, ModelStore


@dataclass
class GenerateParams:
    model: str
    prompt: str = ""
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    raw: bool = False
    context: list[int] | None = None
    images: list[str] = field(default_factory=list)
    format: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    keep_alive: float | None = None
    think: bool | str | None = None
    truncate: bool = True
    logprobs: bool = False
    top_logprobs: int = 0
    shift: bool = True


@dataclass
class ChatParams:
    model: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    format: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    keep_alive: float | None = None
    think: bool | str | None = None
    truncate: bool = True
    logprobs: bool = False
    top_logprobs: int = 0
    shift: bool = True


@dataclass
class Started:
    """The prompt is ready and generation is about to begin."""

    model: str
    prompt_tokens: int
    truncated: bool = False
    dropped: int = 0  # messages (chat) or tokens (generate) cut to fit the context


@dataclass
class Delta:
    content: str = ""
    thinking: str = ""
    logprobs: list[TokenLogprob] = field(default_factory=list)  # of the tokens this text came from, when asked


@dataclass
class ToolCalls:
    calls: list[dict[str, Any]]


@dataclass
class Finished:
    model: str
    done_reason: str
    total_duration: int = 0
    load_duration: int = 0
    prompt_eval_count: int = 0
    prompt_eval_duration: int = 0
    eval_count: int = 0
    eval_duration: int = 0
    prompt_cache_count: int = 0
    truncated: bool = False
    context: list[int] | None = None
    closed_early: bool = False  # the format answer was closed with forced tokens to fit num_predict

    def stats(self) -> dict[str, int]:
        """Ollama's metric fields, omitted when zero as Go's omitempty does."""
        keys = ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count",
                "eval_duration")
        return {k: v for k, v in asdict(self).items() if k in keys and v}


Event = Started | Delta | ToolCalls | Finished


@dataclass
class Embeddings:
    model: str
    vectors: list[list[float]]
    prompt_tokens: int
    total_duration: int
    load_duration: int


@dataclass
class _Prompt:
    tokens: list[int]
    dropped: int = 0


PromptBuilder = Callable[[Lease, int], Awaitable[_Prompt]]


class EngineObserver(Protocol):
    """Told about each request's milestones (the API's /metrics implements it); must not block."""

    def resolved(self, model: str) -> None:
        """The request is for this model (its resolved display name)."""

    def queue_wait(self, model: str, seconds: float) -> None:
        """A request got its slot after ``seconds`` (queueing and loading the model included)."""

    def first_token(self, model: str, seconds: float) -> None:
        """The first generated token arrived ``seconds`` after generation was requested."""

    def finished(self, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        """A request completed with these token counts (embeddings: completion_tokens is 0)."""


class _Unobserved:
    def resolved(self, model: str) -> None:
        pass

    def queue_wait(self, model: str, seconds: float) -> None:
        pass

    def first_token(self, model: str, seconds: float) -> None:
        pass

    def finished(self, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        pass


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class Engine:
    def __init__(self, settings: Settings, store: ModelStore, scheduler: Scheduler,
                 observer: EngineObserver | None = None) -> None:
        self.settings = settings
        self.store = store
        self.scheduler = scheduler
        self.observer: EngineObserver = observer or _Unobserved()
        self._traits: dict[str, ModelTraits] = {}

    # -- models --------------------------------------------------------------------------------------

    async def resolve(self, name: str) -> tuple[LocalModel, ModelTraits]:
        if not name:
            raise BadRequest("model is required")
        model = await asyncio.to_thread(self.store.resolve, name)
        self.observer.resolved(model.name.display)
        traits = self._traits.get(model.digest)
        if traits is None:
            traits = await asyncio.to_thread(traits_for, model)
            self._traits[model.digest] = traits
        return model, traits

    async def load(self, name: str, keep_alive: float | None, options: dict[str, Any]) -> Finished:
        """Empty prompt / messages: load the model (or unload it with keep_alive 0)."""
        model, _ = await self.resolve(name)
        if keep_alive == 0:
            await self.scheduler.unload(model)
            return Finished(model.name.display, "unload")
        opts = merge_options(parse_options(model.params), options)
        async with self.scheduler.lease(model, num_ctx=opts.get("num_ctx"), keep_alive=keep_alive) as lease:
            self.observer.queue_wait(model.name.display, lease.load_duration)
        return Finished(model.name.display, "load")

    # -- generation ----------------------------------------------------------------------------------

    async def generate(self, p: GenerateParams) -> AsyncGenerator[Event, None]:
        model, traits = await self.resolve(p.model)
        self._check_common(model, traits, p.think, bool(p.images))
        if p.raw and (p.template or p.system or p.context):
            raise BadRequest("raw mode does not support template, system, or context")
        if p.suffix and not traits.supports("insert"):
            raise CapabilityError(f"{model.name.display} does not support insert")
        system = p.system if p.system is not None else model.system
        # Templates render in a worker thread: a long or hostile one must not stall other streams.
        text = p.prompt if p.raw else await asyncio.to_thread(
            render_generate, traits, p.prompt, system=system, suffix=p.suffix, template=p.template)
        opts = merge_options(parse_options(model.params), p.options)

        async def build(lease: Lease, limit: int) -> _Prompt:
            tokens = list(p.context or []) + await lease.runner.tokenize(text, add_special=not p.context)
            return self._fit_tokens(tokens, limit, p.truncate)

        async for event in self._run(model, traits, opts, p.format, p.keep_alive, p.think, build,
                                     tools=False, want_context=not p.raw,
                                     top_logprobs=_top_logprobs(p.logprobs, p.top_logprobs),
                                     shift=p.shift and p.truncate):
            yield event

    async def chat(self, p: ChatParams) -> AsyncGenerator[Event, None]:
        if len(p.messages) > self.settings.max_messages:
            raise BadRequest(f"too many messages: {len(p.messages)} (at most {self.settings.max_messages}, "
                             "EMBER_MAX_MESSAGES)")
        model, traits = await self.resolve(p.model)
        images = any(m.get("images") for m in p.messages)
        self._check_common(model, traits, p.think, images)
        if p.tools and not traits.supports("tools"):
            raise CapabilityError(f"{model.name.display} does not support tools")
        messages = self._with_model_messages(model, p.messages)
        opts = merge_options(parse_options(model.params), p.options)
        think = self._think_flag(traits, p.think)

        async def build(lease: Lease, limit: int) -> _Prompt:
            return await self._fit_messages(lease, traits, messages, p.tools, think, limit, p.truncate)

        async for event in self._run(model, traits, opts, p.format, p.keep_alive, p.think, build,
                                     tools=bool(p.tools), want_context=False,
                                     top_logprobs=_top_logprobs(p.logprobs, p.top_logprobs),
                                     shift=p.shift and p.truncate):
            yield event

    def _check_common(self, model: LocalModel, traits: ModelTraits, think: bool | str | None,
                      images: bool) -> None:
        if traits.embedding_only:
            raise CapabilityError(f'"{model.name.display}" does not support generate')
        if think not in (None, False) and not traits.supports("thinking"):
            raise CapabilityError(f'"{model.name.display}" does not support thinking')
        if images and not traits.supports("vision"):
            raise CapabilityError(f"{model.name.display} does not support vision (images)")

    @staticmethod
    def _think_flag(traits: ModelTraits, think: bool | str | None) -> bool | None:
        if not traits.supports("thinking"):
            return None
        return think not in (False, "none")

    @staticmethod
    def _with_model_messages(model: LocalModel, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        merged = [dict(m) for m in model.messages] + [dict(m) for m in messages]
        if model.system and not (merged and merged[0].get("role") == "system"):
            merged.insert(0, {"role": "system", "content": model.system})
        return merged

    def _fit_tokens(self, tokens: list[int], limit: int, truncate: bool) -> _Prompt:
        if len(tokens) < limit:
            return _Prompt(tokens)
        if not truncate:
            raise ContextOverflow(
                f"the prompt is {len(tokens)} tokens and the context window is {limit} tokens "
                "(truncate is false; raise num_ctx or shorten the prompt)")
        keep = limit - 1
        return _Prompt(tokens[len(tokens) - keep:], dropped=len(tokens) - keep)

    async def _fit_messages(self, lease: Lease, traits: ModelTraits, messages: list[dict[str, Any]],
                            tools: list[dict[str, Any]], think: bool | None, limit: int,
                            truncate: bool) -> _Prompt:
        """Drop the fewest oldest non-system messages (never the last one) that make the prompt fit.

        Fewer dropped messages never make a shorter prompt, so a binary search over how many to drop finds
        it with O(log n) renders instead of one per dropped message (quadratic in a long chat)."""
        droppable = [i for i, m in enumerate(messages[:-1]) if m.get("role") != "system"]

        async def tokens_without(count: int) -> list[int]:
            gone = set(droppable[:count])
            kept = [m for i, m in enumerate(messages) if i not in gone]
            text = await asyncio.to_thread(render_chat, traits, kept, tools=tools, think=think)
            return await lease.runner.tokenize(text, add_special=not text.startswith(traits.bos_text or "\0"))

        tokens = await tokens_without(0)
        if len(tokens) < limit:
            return _Prompt(tokens)
        if not truncate:
            raise ContextOverflow(
                f"the prompt is {len(tokens)} tokens and the context window is {limit} tokens "
                "(truncate is false; raise num_ctx or shorten the conversation)")
        fewest, most = 1, len(droppable)
        shortest = await tokens_without(most) if droppable else tokens
        if len(shortest) >= limit:  # even the last message alone is too long: keep its tail
            return _Prompt(self._fit_tokens(shortest, limit, truncate).tokens, most + 1)
        best = shortest
        while fewest < most:
            middle = (fewest + most) // 2
            candidate = await tokens_without(middle)
            if len(candidate) < limit:
                most, best = middle, candidate
            else:
                fewest = middle + 1
        return _Prompt(best, most)

    async def _run(self, model: LocalModel, traits: ModelTraits, opts: dict[str, Any], fmt: Any,
                   keep_alive: float | None, think: bool | str | None, build: PromptBuilder, *, tools: bool,
                   want_context: bool, top_logprobs: int | None, shift: bool) -> AsyncGenerator[Event, None]:
        started = time.monotonic()
        deadline = asyncio.get_running_loop().time() + self.settings.request_timeout
        async with AsyncExitStack() as stack:
            lease, limit, prompt = await self._prepare(stack, model, opts, keep_alive, build, deadline)
            if not prompt.tokens:
                raise BadRequest("the prompt is empty: the template rendered no text")
            sampling = sampling_from(opts, max_predict=self.settings.max_predict)
            await _check_format_fits(lease, fmt, sampling.num_predict)
            yield Started(model.name.display, len(prompt.tokens), bool(prompt.dropped), prompt.dropped)
            parsers = _Parsers(ThinkingParser() if self._think_flag(traits, think) else None,
                               ToolCallParser() if tools else None)
            events = lease.runner.generate(prompt.tokens, _runner_options(sampling, fmt), tuple(sampling.stop),
                                           sampling.num_predict, limit, deadline, top_logprobs=top_logprobs,
                                           keep=self._keep(sampling, prompt, lease) if shift else None)
            stats = Done(0, "stop")
            logprobs: list[TokenLogprob] = []  # text a parser holds back keeps its logprobs until it comes out
            first = True
            try:
                async for event in events:
                    if isinstance(event, Done):
                        stats = event
                        break
                    if first:
                        first = False
                        self.observer.first_token(model.name.display, time.monotonic() - started)
                    logprobs.extend(event.logprobs)
                    delta = parsers.split(event.text)
                    if delta.content or delta.thinking:
                        delta.logprobs, logprobs = logprobs, []
                        yield delta
            except TimeoutError:
                raise self._deadline_error() from None
            finally:
                await events.aclose()
            for item in parsers.finish():
                if isinstance(item, Delta):
                    item.logprobs, logprobs = logprobs, []
                yield item
            context = prompt.tokens + stats.tokens if want_context else None
            self.observer.finished(model.name.display, len(prompt.tokens), stats.eval_count)
            yield _finished(model, stats, prompt, lease, time.monotonic() - started, context)

    async def _prepare(self, stack: AsyncExitStack, model: LocalModel, opts: dict[str, Any],
                       keep_alive: float | None, build: PromptBuilder,
                       deadline: float) -> tuple[Lease, int, _Prompt]:
        """Take a slot (queueing, loading) and build the prompt, all within the request's deadline."""
        try:
            async with asyncio.timeout_at(deadline):
                lease = await stack.enter_async_context(
                    self.scheduler.lease(model, num_ctx=opts.get("num_ctx"), keep_alive=keep_alive))
                self.observer.queue_wait(model.name.display, lease.load_duration)
                limit = min(int(opts.get("num_ctx") or lease.loaded.num_ctx), lease.loaded.num_ctx)
                return lease, limit, await build(lease, limit)
        except TimeoutError:
            raise self._deadline_error() from None

    def _keep(self, sampling: Sampling, prompt: _Prompt, lease: Lease) -> int | None:
        """Tokens a context shift keeps: num_keep (all of the prompt when negative or longer), plus BOS."""
        if not self.settings.context_shift:
            return None
        keep = sampling.num_keep
        if keep < 0 or keep > len(prompt.tokens):
            return len(prompt.tokens)
        return min(keep + int(lease.loaded.info.add_bos), len(prompt.tokens))

    def _deadline_error(self) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"request exceeded its deadline of {self.settings.request_timeout:g}s (EMBER_REQUEST_TIMEOUT)")

    # -- embeddings ----------------------------------------------------------------------------------

    async def embed(self, name: str, inputs: list[str], *, truncate: bool, options: dict[str, Any],
                    keep_alive: float | None, normalize: bool, dimensions: int | None = None) -> Embeddings:
        started = time.monotonic()
        model, _ = await self.resolve(name)
        opts = merge_options(parse_options(model.params), options)
        deadline = asyncio.get_running_loop().time() + self.settings.request_timeout
        try:
            async with asyncio.timeout_at(deadline), self.scheduler.lease(
                model, num_ctx=opts.get("num_ctx"), keep_alive=keep_alive
            ) as lease:
                self.observer.queue_wait(model.name.display, lease.load_duration)
                limit = min(int(opts.get("num_ctx") or lease.loaded.num_ctx), lease.loaded.num_ctx)
                results = await lease.runner.embed(inputs, truncate, limit) if inputs else []
        except TimeoutError:
            raise self._deadline_error() from None
        self.observer.finished(model.name.display, sum(n for _, n in results), 0)
        vectors = [_shape(vec, normalize, dimensions) for vec, _ in results]
        return Embeddings(model.name.display, vectors, sum(n for _, n in results),
                          _ns(time.monotonic() - started), _ns(lease.load_duration))


def _top_logprobs(wanted: bool, top: int) -> int | None:
    if not 0 <= top <= MAX_TOP_LOGPROBS:
        raise BadRequest(f"top_logprobs must be between 0 and {MAX_TOP_LOGPROBS}")
    return top if wanted else None


async def _check_format_fits(lease: Lease, fmt: Any, num_predict: int) -> None:
    """A format whose smallest valid answer needs more tokens than num_predict can never be answered: say so."""
    if fmt in (None, ""):
        return
    smallest = await asyncio.to_thread(minimal_instance, fmt)  # bounded, but a big schema is not free
    needed = len(await lease.runner.tokenize(smallest, add_special=False)) if smallest else 0
    if needed > num_predict:
        shown = smallest if len(smallest) <= 120 else smallest[:117] + "..."
        raise BadRequest(f"the format's smallest valid answer ({shown}) takes {needed} tokens, more than "
                         f"num_predict ({num_predict}): allow at least {needed}")


def _runner_options(sampling: Sampling, fmt: Any) -> dict[str, Any]:
    opts = asdict(sampling)
    opts.pop("stop", None)
    opts.pop("grammar", None)
    if fmt not in (None, ""):
        opts["format"] = fmt
    return opts


@dataclass
class _Parsers:
    """The output parsers a request needs: reasoning first, then tool calls on what is left."""

    thinking: ThinkingParser | None
    calls: ToolCallParser | None

    def split(self, text: str) -> Delta:
        reasoning, content = self.thinking.feed(text) if self.thinking else ("", text)
        if self.calls and content:
            content = self.calls.feed(content)
        return Delta(content=content, thinking=reasoning)

    def finish(self) -> list[Event]:
        reasoning, content = self.thinking.flush() if self.thinking else ("", "")
        if self.calls:
            content = (self.calls.feed(content) if content else "") + self.calls.flush()
        events: list[Event] = []
        if content or reasoning:
            events.append(Delta(content=content, thinking=reasoning))
        if self.calls and self.calls.calls:
            events.append(ToolCalls(self.calls.calls))
        return events


def _finished(model: LocalModel, stats: Done, prompt: _Prompt, lease: Lease, elapsed: float,
              context: list[int] | None) -> Finished:
    return Finished(
        model=model.name.display,
        done_reason=stats.done_reason,
        total_duration=_ns(elapsed),
        load_duration=_ns(lease.load_duration),
        prompt_eval_count=len(prompt.tokens),
        prompt_eval_duration=_ns(stats.prompt_eval_duration),
        eval_count=stats.eval_count,
        eval_duration=_ns(stats.eval_duration),
        prompt_cache_count=stats.prompt_cached,
        truncated=bool(prompt.dropped),
        context=context,
        closed_early=stats.closed_early,
    )


def _shape(vector: list[float], normalize: bool, dimensions: int | None) -> list[float]:
    if dimensions:
        vector = vector[:dimensions]
    if not normalize:
        return vector
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]
