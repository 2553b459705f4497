"""One call to one provider (`call_provider`), and the fallback walk over a chain (`run_chain`).

The manager is the only place for order, retries, cooldowns and the attempt log (style.md). Here:
- a recoverable failure moves on at once to the next ready provider; nothing sleeps while another can serve;
- `unavailable` earns at most one quick retry of the same provider, and only once every other provider
  has been tried;
- bad_request and content_policy stop the walk (content_policy falls back when the settings say so).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from loguru import logger

from providers.base import CallContext
from providers.budget import DailySpend
from providers.config import ManagerSettings
from providers.errors import AllProvidersFailed, Attempt, ErrorKind, ProviderError
from providers.health import Alert, Block, Clock, HealthBook, Ticket
from providers.result import Reporter, Result
from providers.routing import Candidate, Chain, LatencyBook, order
from providers.types import AdapterResult, Category, GenerationRequest


@dataclass(frozen=True, slots=True)
class Runtime:
    """The manager's shared state, as the call helpers need it."""

    settings: ManagerSettings
    health: HealthBook
    spend: DailySpend
    latency: LatencyBook
    clock: Clock
    alert: Callable[[Alert], None]  # fire-and-forget: an alert never delays a user's answer


def context_for(candidate: Candidate, reporter: Reporter) -> CallContext:
    options = candidate.adapter.config.options
    provider, model = candidate.provider, candidate.model
    return CallContext(
        timeout_s=candidate.adapter.config.timeout_s,
        on_job_id=lambda job_id: reporter.job_id(provider, model, job_id),
        poll_interval_s=float(options.get("poll_interval_s", 1.0)),
        max_poll_s=float(options.get("max_poll_s", 600.0)),
    )


def falls_back(settings: ManagerSettings, kind: ErrorKind) -> bool:
    return kind.recoverable or (kind is ErrorKind.CONTENT_POLICY and settings.fallback_on_content_policy)


def as_provider_error(candidate: Candidate, exc: Exception) -> ProviderError:
    """An adapter bug must not take the whole route down: it counts as a broken answer."""
    logger.opt(exception=exc).error("adapter {} raised {}", candidate.provider, type(exc).__name__)
    return ProviderError(ErrorKind.INVALID_RESPONSE, f"adapter error: {type(exc).__name__}",
                         provider=candidate.provider)


async def record_failure(rt: Runtime, candidate: Candidate, ticket: Ticket, error: ProviderError,
                         category: Category, order_no: int, started: tuple[datetime, float],
                         reporter: Reporter, *, may_have_hung: bool = True) -> Attempt:
    latency_ms = (time.perf_counter() - started[1]) * 1000.0
    await reporter.drain()
    # No HTTP status and the whole timeout spent: a hang (or a job that never finished), not a quick 5xx.
    hung = (may_have_hung and error.kind is ErrorKind.UNAVAILABLE and error.status is None
            and latency_ms >= candidate.adapter.config.timeout_s * 1000.0)
    alert = rt.health.failure(ticket, error, hung=hung)
    attempt = Attempt(candidate.provider, candidate.model, category, order_no, error.kind, error.status,
                      latency_ms, job_id=error.job_id, message=error.message[:500], started_at=started[0])
    logger.bind(provider=candidate.provider, model=candidate.model, category=str(category)).info(
        "{} {} {} failed: {} {} after {:.0f} ms: {}", candidate.provider, candidate.model, category, error.kind,
        error.status or "-", latency_ms, error.message[:200])
    await reporter.attempt(attempt)
    if alert is not None:
        rt.alert(alert)
    return attempt


async def record_success(rt: Runtime, candidate: Candidate, ticket: Ticket, out: AdapterResult,
                         category: Category, order_no: int, started: tuple[datetime, float],
                         reporter: Reporter) -> Attempt:
    latency_ms = (time.perf_counter() - started[1]) * 1000.0
    await reporter.drain()
    cost = out.cost_micros if out.cost_micros is not None else candidate.prices.cost_micros(category, out.usage)
    rt.health.success(ticket)
    rt.spend.add(candidate.provider, cost)
    rt.latency.add(candidate.provider, category, latency_ms)
    attempt = Attempt(candidate.provider, out.model or candidate.model, category, order_no, None, None,
                      latency_ms, cost, out.usage, out.job_id, started_at=started[0])
    await reporter.attempt(attempt)
    return attempt


async def call_provider(rt: Runtime, candidate: Candidate, request: GenerationRequest, order_no: int,
                        reporter: Reporter) -> tuple[Attempt, AdapterResult | None] | Block:
    """One admitted call; returns its attempt (and output on success), or the block that kept it out."""
    ticket = rt.health.admit(candidate.provider, request.category)
    if isinstance(ticket, Block):
        return ticket
    started = (rt.clock.now(), time.perf_counter())
    try:
        out = await candidate.adapter.generate(request, candidate.model, context_for(candidate, reporter))
    except ProviderError as err:
        err.provider = err.provider or candidate.provider
        return await record_failure(rt, candidate, ticket, err, request.category, order_no, started, reporter), None
    except Exception as exc:
        broken = as_provider_error(candidate, exc)
        return await record_failure(rt, candidate, ticket, broken, request.category, order_no, started,
                                    reporter), None
    except BaseException:  # cancelled: tells nothing about the provider
        rt.health.release(ticket)
        raise
    return await record_success(rt, candidate, ticket, out, request.category, order_no, started, reporter), out


def retry_at(rt: Runtime, chain: Chain, attempts: list[Attempt]) -> datetime | None:
    """The earliest moment a retry can work: the soonest any usable provider of the chain is callable
    again (now, for one that failed without a cooldown). None when waiting cannot help."""
    if any(a.kind is not None and not falls_back(rt.settings, a.kind) for a in attempts):
        return None
    moments = []
    for candidate in chain.candidates:
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

    def __init__(self, rt: Runtime, chain: Chain) -> None:
        self.rt, self.chain = rt, chain
        self.started = time.perf_counter()
        ready, blocked = order(chain, rt.health, rt.spend, rt.latency)
        self.skipped: Skipped = {**chain.unusable, **blocked}
        self.attempts: list[Attempt] = []
        self.queue = deque(ready)
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
        retry = None if stopped else retry_at(self.rt, self.chain, self.attempts)
        return AllProvidersFailed(self.chain.category, self.attempts, retry, reasons)


Skipped = dict[str, "Block | str"]  # provider -> why not tried; Blocks are put into words only on failure


async def run_chain(rt: Runtime, chain: Chain, request: GenerationRequest, reporter: Reporter) -> Result:
    walk = FallbackWalk(rt, chain)
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
