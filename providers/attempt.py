"""One attempt at one provider, the skeleton every call shares (plain, streamed, resumed):

    run = admit(rt, candidate, category, order_no, reporter)     # a Block when health keeps it out
    async with run:                                              # timed from here
        run.output = await adapter.generate(...)                 # a ProviderError is swallowed and recorded
    run.attempt, run.output, run.error                           # the record; output on success, error on failure

On leaving the block the outcome is recorded exactly once: success (health, spend, latency) when `output`
was set, failure (health, maybe an alert) for a `ProviderError` or an adapter bug. A cancellation or an
early close of a stream says nothing about the provider: the ticket is released and it propagates.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType

from loguru import logger

from providers.base import CallContext
from providers.bodies import DEFAULT_MAX_MEDIA_BYTES
from providers.budget import DailySpend
from providers.config import ManagerSettings
from providers.errors import Attempt, ErrorKind, ProviderError
from providers.health import Alert, Block, Clock, HealthBook, Ticket
from providers.redact import redact
from providers.result import Reporter
from providers.routing import Candidate, LatencyBook
from providers.types import AdapterResult, Category


@dataclass(frozen=True, slots=True)
class Runtime:
    """The manager's shared state, as the call helpers need it."""

    settings: ManagerSettings
    health: HealthBook
    spend: DailySpend
    latency: LatencyBook
    clock: Clock
    alert: Callable[[Alert], None]  # fire-and-forget: an alert never delays a user's answer
    max_media_bytes: int = DEFAULT_MAX_MEDIA_BYTES  # the cap of a media answer's body (the bot's MAX_MEDIA_BYTES)


def context_for(rt: Runtime, candidate: Candidate, category: Category, reporter: Reporter) -> CallContext:
    config = candidate.adapter.config
    provider, model = candidate.provider, candidate.model
    return CallContext(
        timeout_s=config.timeout_s,
        on_job_id=lambda job_id: reporter.job_id(provider, model, job_id),
        poll_interval_s=float(config.options.get("poll_interval_s", 1.0)),
        max_poll_s=float(config.options.get("max_poll_s", 600.0)),
        total_timeout_s=config.total_deadline_s,
        first_token_timeout_s=config.first_token_deadline_s,
        media=category is not Category.TEXT,
        max_media_bytes=rt.max_media_bytes,
    )


def as_provider_error(candidate: Candidate, exc: Exception) -> ProviderError:
    """An adapter bug must not take the whole route down: it counts as a broken answer."""
    logger.opt(exception=exc).error("adapter {} raised {}", candidate.provider, type(exc).__name__)
    return ProviderError(ErrorKind.INVALID_RESPONSE, f"adapter error: {type(exc).__name__}",
                         provider=candidate.provider)


class AttemptRun:
    """One admitted call, as an async context manager; see the module docstring.

    `may_have_hung`: clear it once the call has shown progress (a stream that delivered text did not
    hang, however long it ran). `job_id`: stamped on a failure that names no job (a resumed job).
    `adapter_bugs`: whether an exception other than ProviderError is recorded as `invalid_response`
    (True) or propagates unrecorded (False)."""

    def __init__(self, rt: Runtime, candidate: Candidate, ticket: Ticket, order_no: int, reporter: Reporter, *,
                 job_id: str | None = None, adapter_bugs: bool = True) -> None:
        self.rt, self.candidate, self.ticket, self.order_no, self.reporter = rt, candidate, ticket, order_no, reporter
        self.job_id, self.adapter_bugs = job_id, adapter_bugs
        self.may_have_hung = True
        self.output: AdapterResult | None = None
        self.attempt: Attempt | None = None
        self.error: ProviderError | None = None
        self.started: tuple[datetime, float] = (rt.clock.now(), time.perf_counter())

    async def __aenter__(self) -> AttemptRun:
        self.started = (self.rt.clock.now(), time.perf_counter())
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool:
        if exc is None and self.output is not None:
            self.attempt = await self._succeeded(self.output)
            return False
        if isinstance(exc, ProviderError):
            exc.provider = exc.provider or self.candidate.provider
            error = exc
        elif isinstance(exc, Exception) and self.adapter_bugs:
            error = as_provider_error(self.candidate, exc)
        else:  # cancelled, a stream closed early, or a bug left to propagate: tells nothing about the provider
            self.rt.health.release(self.ticket)
            if exc is None:
                raise RuntimeError("an attempt ended with neither output nor error")
            return False
        if self.job_id is not None:
            error.job_id = error.job_id or self.job_id
        # Every failure passes here on its way to the log, the alerts and the request log: the one place
        # that keeps the provider's own key out of them, whatever the adapter echoed.
        error.message = redact(error.message, [self.candidate.adapter.config.api_key])
        error.args = (error.message,)  # repr() shows args, not the message
        self.output, self.error = None, error
        self.attempt = await self._failed(error)
        return True

    async def _failed(self, error: ProviderError) -> Attempt:
        rt, candidate, category = self.rt, self.candidate, self.ticket.category
        latency_ms = (time.perf_counter() - self.started[1]) * 1000.0
        await self.reporter.drain()
        # No HTTP status and the whole timeout spent: a hang (or a job that never finished), not a quick 5xx.
        hung = (self.may_have_hung and error.kind is ErrorKind.UNAVAILABLE and error.status is None
                and latency_ms >= candidate.adapter.config.timeout_s * 1000.0)
        alert = rt.health.failure(self.ticket, error, hung=hung)
        attempt = Attempt(candidate.provider, candidate.model, category, self.order_no, error.kind, error.status,
                          latency_ms, job_id=error.job_id, message=error.message[:500], started_at=self.started[0])
        logger.bind(provider=candidate.provider, model=candidate.model, category=str(category)).info(
            "{} {} {} failed: {} {} after {:.0f} ms: {}", candidate.provider, candidate.model, category,
            error.kind, error.status or "-", latency_ms, error.message[:200])
        await self.reporter.attempt(attempt)
        if alert is not None:
            rt.alert(alert)
        return attempt

    async def _succeeded(self, out: AdapterResult) -> Attempt:
        rt, candidate, category = self.rt, self.candidate, self.ticket.category
        latency_ms = (time.perf_counter() - self.started[1]) * 1000.0
        await self.reporter.drain()
        cost = out.cost_micros if out.cost_micros is not None else candidate.prices.cost_micros(category, out.usage)
        rt.health.success(self.ticket)
        rt.spend.add(candidate.provider, cost)
        rt.latency.add(candidate.provider, category, latency_ms)
        attempt = Attempt(candidate.provider, out.model or candidate.model, category, self.order_no, None, None,
                          latency_ms, cost, out.usage, out.job_id, started_at=self.started[0])
        await self.reporter.attempt(attempt)
        return attempt


def admit(rt: Runtime, candidate: Candidate, category: Category, order_no: int,
          reporter: Reporter) -> AttemptRun | Block:
    """An attempt the health book lets through, or the block that keeps it out."""
    ticket = rt.health.admit(candidate.provider, category)
    if isinstance(ticket, Block):
        return ticket
    return AttemptRun(rt, candidate, ticket, order_no, reporter)
