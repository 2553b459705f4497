"""Streaming text through the manager: fallback only before the first delta reaches the caller.

    stream = manager.stream_text(request)
    async for delta in stream: ...
    stream.result            # the Result, once the stream has ended

Before the first delta a failure moves on to the next provider, exactly like `generate`. After it, the
caller has already shown text from this provider, so switching would splice two answers: the failure is
recorded and raised as the provider's `ProviderError` (the hooks' `on_result` gets an
`AllProvidersFailed` with every attempt, so accounting can close the request). A provider whose adapter
cannot stream serves the whole answer as a single delta.

Time: a stream that shows no text within the provider's `first_token_timeout_s` fails `unavailable` and
falls back (nothing was shown); one still running after `total_timeout_s` fails `unavailable` too, raised
to the caller if text was shown. Both count from the stream's start (`_Deadline`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field

from providers.attempt import Runtime, admit, context_for
from providers.base import CallContext
from providers.calls import FallbackWalk, build_result, falls_back
from providers.errors import ErrorKind, ProviderError
from providers.health import Block
from providers.result import Reporter, Result
from providers.routing import Candidate, Chain
from providers.types import AdapterResult, GenerationRequest, StreamChunk, Usage


class TextStream:
    """An async iterator of str deltas; `result` is set when it has ended successfully."""

    def __init__(self, rt: Runtime, chain: Chain, request: GenerationRequest, reporter: Reporter) -> None:
        self.result: Result | None = None
        self._deltas = _stream_chain(rt, chain, request, reporter, self)

    def __aiter__(self) -> TextStream:
        return self

    async def __anext__(self) -> str:
        return await self._deltas.__anext__()

    async def aclose(self) -> None:
        """Stop early (the provider's connection is released)."""
        await self._deltas.aclose()


@dataclass(slots=True)
class _Progress:
    model: str
    parts: list[str] = field(default_factory=list)
    usage: Usage | None = None
    cost_micros: int | None = None
    job_id: str | None = None

    def output(self) -> AdapterResult:
        return AdapterResult(self.model, "".join(self.parts), (), self.usage or Usage(), self.cost_micros, self.job_id)


async def _deltas(candidate: Candidate, request: GenerationRequest, ctx: CallContext,
                  progress: _Progress) -> AsyncGenerator[str, None]:
    adapter = candidate.adapter
    if not adapter.streams_text:
        out = await adapter.generate(request, candidate.model, ctx)
        progress.usage, progress.cost_micros, progress.job_id = out.usage, out.cost_micros, out.job_id
        progress.model = out.model or progress.model
        if out.text:
            progress.parts.append(out.text)
            yield out.text
        return
    chunks = adapter.stream_text(request, candidate.model, ctx)
    deadline = _Deadline(candidate.provider, ctx)
    try:
        while (chunk := await deadline.next(chunks)) is not None:
            if chunk.usage is not None:
                progress.usage = chunk.usage
            if chunk.cost_micros is not None:
                progress.cost_micros = chunk.cost_micros
            progress.model = chunk.model or progress.model
            if chunk.text:
                deadline.said_something = True
                progress.parts.append(chunk.text)
                yield chunk.text
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


class _Deadline:
    """The time a stream may take: until its first text (`ctx.first_token_s`), and in all (`ctx.total_s`),
    both from its start. `timeout_s` is per read, so keep-alives or a trickle never trip it.

    Only the wait for the adapter's next chunk is timed, never the caller's handling of a delta: a timeout
    scope must not stay open across a `yield`, or it would cancel whatever the caller awaits meanwhile."""

    def __init__(self, provider: str, ctx: CallContext) -> None:
        self.provider, self.ctx = provider, ctx
        self.started = asyncio.get_running_loop().time()
        self.said_something = False

    async def next(self, chunks: AsyncIterator[StreamChunk]) -> StreamChunk | None:
        """The next chunk, None at the end; past a deadline, `unavailable` (the adapter's stream is cancelled)."""
        first = not self.said_something
        limit = self.ctx.first_token_s if first else self.ctx.total_s
        scope = asyncio.timeout_at(self.started + limit)
        try:
            async with scope:
                return await anext(chunks)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            if not scope.expired():
                raise  # the adapter's own TimeoutError, not our deadline
            what = f"no text within {limit:g}s" if first else f"the stream still running after {limit:g}s"
            raise ProviderError(ErrorKind.UNAVAILABLE, what, provider=self.provider) from None


async def _stream_chain(rt: Runtime, chain: Chain, request: GenerationRequest, reporter: Reporter,
                        stream: TextStream) -> AsyncGenerator[str, None]:
    walk = FallbackWalk(rt, chain, request)
    while (candidate := await walk.next()) is not None:
        run = admit(rt, candidate, chain.category, len(walk.attempts), reporter)
        if isinstance(run, Block):
            walk.skipped[candidate.provider] = run
            continue
        progress = _Progress(candidate.model)
        ctx = context_for(rt, candidate, request.category, reporter)
        async with run:
            async with aclosing(_deltas(candidate, request, ctx, progress)) as deltas:
                async for delta in deltas:
                    run.may_have_hung = False  # a stream that delivered text did not hang, however long it ran
                    yield delta
            run.output = progress.output()
        assert run.attempt is not None
        walk.attempts.append(run.attempt)
        if run.output is not None:
            stream.result = build_result(chain, candidate, run.output, walk.attempts, walk.started)
            await reporter.result(stream.result)
            return
        error = run.error
        assert error is not None
        if progress.parts:  # the caller has text from this provider: no switching now
            await reporter.result(walk.failure(stopped=True))
            raise error
        if not falls_back(rt.settings, error.kind):
            break
        walk.failed(candidate, error.kind)
    failure = walk.failure()
    await reporter.result(failure)
    raise failure
