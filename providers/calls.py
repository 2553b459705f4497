"""One call to one provider (`call_provider`), the fallback walk over a chain (`run_chain`), and the
resumption of a job created before (`resume_job`).

The manager is the only place for order, retries, cooldowns and the attempt log (style.md). Here:
- a recoverable failure moves on at once to the next ready provider; nothing sleeps while another can serve;
- `unavailable` earns at most one quick retry of the same provider, and only once every other provider
  has been tried;
- bad_request and content_policy stop the walk (content_policy falls back when the settings say so);
- a provider that cannot serve the request at all (`Adapter.supports`) is skipped, never called.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from datetime import datetime

from providers.attempt import AttemptRun, Runtime, admit, context_for
from providers.config import ManagerSettings
from providers.errors import AllProvidersFailed, Attempt, ErrorKind
from providers.health import Block, Ticket
from providers.result import Reporter, Result
from providers.routing import Candidate, Chain, incapable, order
from providers.types import AdapterResult, GenerationRequest


def falls_back(settings: ManagerSettings, kind: ErrorKind) -> bool:
    return kind.recoverable or (kind is ErrorKind.CONTENT_POLICY and settings.fallback_on_content_policy)


async def call_provider(rt: Runtime, candidate: Candidate, request: GenerationRequest, order_no: int,
                        reporter: Reporter) -> tuple[Attempt, AdapterResult | None] | Block:
    """One admitted call; returns its attempt (and output on success), or the block that kept it out."""
    run = admit(rt, candidate, request.category, order_no, reporter)
    if isinstance(run, Block):
        return run
    async with run:
        ctx = context_for(rt, candidate, request.category, reporter)
        run.output = await candidate.adapter.generate(request, candidate.model, ctx)
    assert run.attempt is not None
    return run.attempt, run.output


def retry_at(rt: Runtime, chain: Chain, attempts: list[Attempt],
             capable: list[Candidate] | None = None) -> datetime | None:
    """The earliest moment a retry can work: the soonest any usable provider of the chain (able to serve
    the request: `capable`, default all) is callable again (now, for one that failed without a cooldown).
    None when waiting cannot help."""
    if any(a.kind is not None and not falls_back(rt.settings, a.kind) for a in attempts):
        return None
    moments = []
    for candidate in chain.candidates if capable is None else capable:
        block = (rt.health.blocked(candidate.provider, chain.category)
                 or rt.spend.blocked(candidate.provider, candidate.daily_budget_micros))
        moments.append(block.until if block is not None else rt.clock.now())
    return min(moments, default=None)


def build_result(chain: Chain, candidate: Candidate, out: AdapterResult, attempts: list[Attempt],
                 started: float) -> Result:
    final = attempts[-1]
    return Result(chain.category, out.text, out.media, candidate.provider, final.model, out.usage,
                  final.cost_micros, (time.perf_counter() - started) * 1000.0, list(attempts), out.job_id)


class FallbackWalk:
    """The order of calls for one request: the ready providers once each, then at most one quick retry
    of the first provider that failed `unavailable` (only now that nobody else is left). It keeps the
    attempts made and the providers skipped, for the result or the one error."""

    def __init__(self, rt: Runtime, chain: Chain, request: GenerationRequest) -> None:
        self.rt, self.chain = rt, chain
        self.started = time.perf_counter()
        ready, blocked = order(chain, rt.health, rt.spend, rt.latency)
        unable = incapable(chain, request)  # what the request needs outweighs a cooldown: it is the reason given
        self.skipped: Skipped = {**chain.unusable, **blocked, **unable}
        self.capable = [c for c in chain.candidates if c.provider not in unable]
        self.attempts: list[Attempt] = []
        self.queue = deque(c for c in ready if c.provider not in unable)
        self.retryable: Candidate | None = None
        self.retried = False

    def failed(self, candidate: Candidate, kind: ErrorKind) -> None:
        if kind is ErrorKind.UNAVAILABLE and self.retryable is None:
            self.retryable = candidate

    async def next(self) -> Candidate | None:
        if self.queue:
            return self.queue.popleft()
        again = self.retryable
        if again is None or self.retried or self.rt.health.blocked(again.provider, self.chain.category):
            return None
        self.retried = True
        await asyncio.sleep(self.rt.settings.quick_retry_delay_s)
        return again

    def failure(self, *, stopped: bool = False) -> AllProvidersFailed:
        """The one error for the caller; `stopped`: the walk was cut short, so waiting cannot help."""
        reasons = {name: why if isinstance(why, str) else why.reason for name, why in self.skipped.items()}
        retry = None if stopped else retry_at(self.rt, self.chain, self.attempts, self.capable)
        return AllProvidersFailed(self.chain.category, self.attempts, retry, reasons)


Skipped = dict[str, "Block | str"]  # provider -> why not tried; Blocks are put into words only on failure


async def run_chain(rt: Runtime, chain: Chain, request: GenerationRequest, reporter: Reporter) -> Result:
    walk = FallbackWalk(rt, chain, request)
    while (candidate := await walk.next()) is not None:
        outcome = await call_provider(rt, candidate, request, len(walk.attempts), reporter)
        if isinstance(outcome, Block):  # blocked since order() ran (a concurrent call failed)
            walk.skipped[candidate.provider] = outcome
            continue
        record, out = outcome
        walk.attempts.append(record)
        if out is not None:
            result = build_result(chain, candidate, out, walk.attempts, walk.started)
            await reporter.result(result)
            return result
        assert record.kind is not None
        if not falls_back(rt.settings, record.kind):
            break
        walk.failed(candidate, record.kind)
    failure = walk.failure()
    await reporter.result(failure)
    raise failure


async def resume_job(rt: Runtime, candidate: Candidate, job_id: str, request: GenerationRequest,
                     reporter: Reporter) -> Result:
    """Poll a job created before to its end. It is already paid for, so health never holds it back: the
    ticket is not admitted, only accounted."""
    category, provider = request.category, candidate.provider
    ticket = Ticket(provider, category, rt.clock.monotonic(), trial=False)
    chain = Chain(category, (provider,), (candidate,), "priority", {}, f"{provider}={candidate.model}")
    run = AttemptRun(rt, candidate, ticket, 0, reporter, job_id=job_id, adapter_bugs=False)
    async with run:
        ctx = context_for(rt, candidate, category, reporter)
        out = await candidate.adapter.resume(job_id, request, candidate.model, ctx)
        run.output = out if out.job_id is not None else dataclasses.replace(out, job_id=job_id)
    assert run.attempt is not None
    if run.output is None:
        failure = AllProvidersFailed(category, [run.attempt], None)
        await reporter.result(failure)
        raise failure from run.error
    result = build_result(chain, candidate, run.output, [run.attempt], run.started[1])
    await reporter.result(result)
    return result
