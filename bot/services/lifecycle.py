"""The life of one request, owned here from its reservation to its one terminal state.

    serve   claim the user's slot (busy: a refusal row, and "wait")
            -> reserve: charge, and open the request as running under this process's lease, in one
               transaction with the chat history it needs (refused: a row, and the reason said;
               a duplicate update: silence)
            -> the work runs as the slot's task (what /cancel stops); its hooks log failed attempts and
               provider job ids as they happen
            -> before the first part of the answer goes out the work asks the gate (mark_delivering,
               refused once the request was canceled), and says when it reached the user (mark_delivered)
            -> one terminal transition: served (charge kept), or failed/canceled, refunded if and only if
               nothing was delivered; then the user is told what really happened
    cancel  `bot.services.cancel`: the database decides (cancel_open), and the work is stopped.

A database write that fails (locked, disk full, connection lost) is retried with backoff. A terminal
transition that still fails is logged at ERROR and kept, with what this process knows (was the answer
delivered?), for the sweeper (`bot.services.sweeper`) to finish; its lease stays renewed meanwhile.
Orphans of other processes, and resumed provider jobs, are the sweeper's too.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession

from bot.metrics import Metrics
from bot.queue import QUEUE_OWNER, Job, WorkKind
from bot.redaction import scrub
from bot.services.answers import AnswerFailed, Answers, Ask, Delivered, Work, WorkState
from bot.services.delivery import MediaFetchError
from bot.services.durable import DurableWrites, WriteFailed, attempt_record, served_record
from bot.services.failures import category_name, credits_text, failure_text, refusal_text, with_outcome
from bot.services.leases import Leases
from bot.services.running import Slot, Slots
from bot.services.vision import recalled
from bot.services.writes import WriteQueue
from bot.settings import Settings
from db.repo import history, lifecycle
from db.repo.records import AttemptRecord, Budget, Closed, Reservation
from providers import (
    AllProvidersFailed,
    Attempt,
    CallHooks,
    Category,
    ChatMessage,
    GenerationRequest,
    LabelConfig,
    ProviderError,
    ProviderManager,
)

T = TypeVar("T")
RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0, 4.0)
MakeWork = Callable[[Ask, str, GenerationRequest], Work]
UNLIMITED = frozenset({Category.VIDEO})  # long jobs that mostly wait on the provider: no turn to wait for


class Queue(Protocol):
    """Where a front hands reserved requests to the workers (distributed mode; see `bot.queue`)."""

    def lease_until(self) -> datetime:
        """How long a reserved request may wait in the queue before the sweeper refunds it."""

    async def enqueue(self, job: Job) -> None: ...

    def reserving(self, user_id: int) -> AbstractAsyncContextManager[bool]:
        """Held around a reservation: True while this front alone reserves for the user."""

    async def stop(self, canceled: list[int], delivering: list[int]) -> None:
        """Tell the workers: stop these canceled requests; stop delivering these."""


class Revoked(Exception):
    """The request is no longer this process's to deliver: canceled, or taken over."""


@dataclass
class Run:
    """One request this process works on."""

    request_id: int
    ask: Ask
    slot: Slot
    category: Category
    state: WorkState
    job: tuple[str, str] | None = None  # (provider, job id) once the provider gave one
    delivered: bool = False  # part of the answer reached the user (known here even if not written down)
    successes: list[AttemptRecord] = dataclasses.field(default_factory=list)  # kept by the close
    label: str = ""  # the label's name, for the metrics


class _Gate:
    def __init__(self, life: RequestLife, run: Run) -> None:
        self.life, self.run = life, run

    async def delivering(self) -> None:
        owner, rid = self.life.leases.owner, self.run.request_id
        if not await self.life.write(lambda s: lifecycle.mark_delivering(s, rid, owner), rid):
            raise Revoked(rid)

    async def delivered(self) -> None:
        self.run.delivered = True  # the close says so too if this write fails
        owner, rid = self.life.leases.owner, self.run.request_id
        try:
            await self.life.write(lambda s: lifecycle.mark_delivered(s, rid, owner), rid)
        except WriteFailed:
            pass

    @property
    def stop_requested(self) -> bool:
        return self.run.slot.stop_delivery


class RequestLife:
    def __init__(self, settings: Settings, writes: WriteQueue, manager: ProviderManager, bot: Bot,
                 answers: Answers, slots: Slots, leases: Leases, queue: Queue | None = None, *,
                 metrics: Metrics) -> None:
        self.metrics = metrics  # bot.metrics: counted at each terminal transition and attempt
        self.settings, self.manager, self.bot, self.answers = settings, manager, bot, answers
        self.slots, self.leases = slots, leases
        self.queue = queue  # set on a front of the distributed mode: the work runs in a worker
        self.durable = DurableWrites(writes)
        self.write = self.durable.write
        self.budget = Budget(settings.daily_credit_limit, settings.monthly_credit_limit, settings.timezone)
        self.unfinished: dict[int, Callable[[], Awaitable[None]]] = {}  # closes the sweeper tries again
        # Turns, first come first served: under a burst every request would otherwise move through each
        # step together with all the others, and every answer would go out at the end of the burst
        self.turns = asyncio.Semaphore(settings.parallel_requests)

    # --- serve ---------------------------------------------------------------------------------
    def make_work(self, kind: WorkKind, transcriber: str | None = None) -> MakeWork:
        """The work of a kind; a voice message's names its transcription label too."""
        if kind == "voice":
            if transcriber is None:
                raise ValueError("a voice message needs its transcription label")
            return lambda ask, label, request: self.answers.voice(ask, label, request, transcriber)
        return self.answers.text if kind == "text" else self.answers.media

    async def serve(self, ask: Ask, label: LabelConfig, request: GenerationRequest, work: WorkKind,
                    history_chars: int | None = None, *, transcriber: LabelConfig | None = None) -> None:
        """`transcriber` (a voice message): its label's credits are reserved with `label`'s, in the same
        request row, and refunded with them; the work transcribes first (`Answers.voice`)."""
        slot = self.slots.claim(ask.user_id)
        if slot is None:
            await self._refuse_busy(ask, label, request)
            return
        try:
            async with contextlib.nullcontext() if request.category in UNLIMITED else self.turns:
                await self._serve(ask, slot, label, request, work, history_chars, transcriber)
        finally:
            self.slots.release(slot)

    async def _serve(self, ask: Ask, slot: Slot, label: LabelConfig, request: GenerationRequest, work: WorkKind,
                     history_chars: int | None, transcriber: LabelConfig | None = None) -> None:
        slot.admitted = True
        credits = label.credits + (transcriber.credits if transcriber is not None else 0)
        if slot.canceled:  # /cancel came while it waited its turn: nothing was charged
            slot.reservation_done(None)
            return
        try:
            route = self.manager.route_for(request.category, label)
            try:
                reservation, past = await self._reserve(ask, label, request, route, history_chars, credits)
            finally:
                slot.reservation_done(None)  # whatever happened, a waiting /cancel may look now
            if reservation.status == "duplicate":
                logger.info("update {} was served before (request {})", ask.update_id, reservation.request_id)
                return
            if not reservation.ok:
                self.metrics.refused(str(request.category), label.name, reservation.status)
            if reservation.status == "busy":  # another front holds a request of this user
                await ask.say(ask.t("errors.wait"))
                return
            if not reservation.ok or reservation.request_id is None:
                if text := refusal_text(reservation, credits, ask.t, self.settings.timezone,
                                        can_buy=bool(self.settings.credit_packs)):
                    await ask.say(text)
                return
            slot.request_id = reservation.request_id
            self.metrics.reserved(str(request.category), label.name, credits)
            if past:
                request = dataclasses.replace(request, messages=(*past, *request.messages))
            if self.queue is not None:
                await self._enqueue(ask, Job(reservation.request_id, ask.user_id, ask.chat_id, ask.t.lang, label.name,
                                             work, request, ask.reply_to, ask.update_id, ask.thread_id,
                                             transcriber.name if transcriber is not None else None))
                return
            run = Run(reservation.request_id, ask, slot, request.category, WorkState(route), label=label.name)
            made = self.make_work(work, transcriber.name if transcriber is not None else None)
            await self.supervise(run, made(ask, label.name, request))
        except WriteFailed:
            await ask.say(ask.t("errors.not_started"))

    async def _enqueue(self, ask: Ask, job: Job) -> None:
        """Hand a reserved request to the workers; if the queue cannot take it, refund it at once."""
        assert self.queue is not None
        try:
            await self.queue.enqueue(job)
        except Exception as exc:
            logger.opt(exception=exc).error("request {}: the queue refused it ({})", job.request_id,
                                            type(exc).__name__)
            why = scrub(str(exc))[:500]
            closed = await self.write(lambda s: lifecycle.close_failed(
                s, job.request_id, QUEUE_OWNER, error_kind="queue", message=why), job.request_id)
            if closed is not None:
                await ask.say(with_outcome(ask.t("errors.queue_failed"), closed, ask.t))

    async def _reserve(self, ask: Ask, label: LabelConfig, request: GenerationRequest, route: list[str],
                       history_chars: int | None, credits: int) -> tuple[Reservation, list[ChatMessage]]:
        # a front reserves for whichever worker takes the request; one process reserves for itself
        queue = self.queue
        owner, until = (QUEUE_OWNER, queue.lease_until()) if queue else (self.leases.owner, self.leases.until())

        async def reserve(session: AsyncSession) -> tuple[Reservation, list[ChatMessage]]:
            done = await lifecycle.reserve_request(
                session, owner=owner, lease_until=until, tg_id=ask.user_id, update_id=ask.update_id,
                chat_id=ask.chat_id, thread_id=ask.thread_id, label=label.name, category=str(request.category),
                prompt=request.prompt, credits=credits, budget=self.budget,
                route_first_provider=route[0] if route else None, start=queue is None, exclusive=queue is not None)
            if not done.ok or history_chars is None:
                return done, []
            past = await history.load_history(session, ask.conversation, history_chars, prune=True)
            return done, recalled(past)  # the newest image kept by reference (bot.services.vision)

        if queue is None:
            reservation, past = await self.write(reserve)
            if reservation.ok and reservation.request_id is not None:
                self.leases.hold(reservation.request_id)
            return reservation, past
        async with queue.reserving(ask.user_id) as alone:
            if not alone:  # another front is reserving for this user right now
                return await self._busy_row(ask, label, request), []
            return await self.write(reserve)

    async def refused_as_busy(self, ask: Ask, label: LabelConfig, request: GenerationRequest) -> bool:
        """Refuse now, as serve() would, when a request of the user's is running: lets a handler skip
        costly preparation (downloading a photo) that serve() would throw away. serve() still decides."""
        if self.slots.get(ask.user_id) is None:
            return False
        await self._refuse_busy(ask, label, request)
        return True

    async def _refuse_busy(self, ask: Ask, label: LabelConfig, request: GenerationRequest) -> None:
        self.metrics.refused(str(request.category), label.name, "busy")
        await self._busy_row(ask, label, request)
        await ask.say(ask.t("errors.wait"))

    async def _busy_row(self, ask: Ask, label: LabelConfig, request: GenerationRequest) -> Reservation:
        try:
            rid = await self.write(lambda s: lifecycle.refuse(
                s, tg_id=ask.user_id, update_id=ask.update_id, chat_id=ask.chat_id, label=label.name,
                category=str(request.category), prompt=request.prompt, reason="busy"))
        except WriteFailed:
            rid = None  # a refusal that could not be logged is still a refusal
        return Reservation("busy", rid, 0)

    async def supervise(self, run: Run, work: Work, failed_key: str | None = None) -> None:
        """Run the work as the slot's task (what /cancel stops) and wait for it to end."""
        if run.slot.canceled:  # /cancel gave up waiting for the reservation: it is ours to cancel
            await self._cancel_unstarted(run)
            return
        task = run.slot.task = asyncio.create_task(self._run(run, work, failed_key))
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:  # the bot is shutting down: stop the work too
            task.cancel()
            raise
        if not task.cancelled() and (error := task.exception()) is not None:
            self.abandon(run.request_id, error)

    async def _cancel_unstarted(self, run: Run) -> None:
        # A WriteFailed here must not reach serve(), which would tell a charged user nothing was charged
        try:
            closed = await self.close_failed(run, "canceled", "canceled by the user", canceled=True)
        except WriteFailed:
            self.unfinished[run.request_id] = lambda: self._cancel_unstarted(run)
            return
        if closed is not None:
            await run.ask.say(run.ask.t("cancel.done", credits=credits_text(closed.refunded, run.ask.t)))

    def abandon(self, request_id: int, error: BaseException) -> None:
        """A close failed for a reason retrying cannot fix (a bug): stop renewing the lease, so the
        sweeper finishes the request (refunded unless its answer was delivered) instead of it staying open."""
        logger.bind(request_id=request_id).opt(exception=error).error(
            "request {}: its close failed ({}); left for the sweeper", request_id, type(error).__name__)
        self.unfinished.pop(request_id, None)
        self.leases.drop(request_id)

    async def _run(self, run: Run, work: Work, failed_key: str | None) -> None:
        log = logger.bind(request_id=run.request_id, user_id=run.ask.user_id)
        t, category = run.ask.t, str(run.category)
        try:
            delivered = await work(self._hooks(run), _Gate(self, run), run.state)
        except asyncio.CancelledError:
            await self._stopped(run)
            if not run.slot.canceled:
                raise
        except Revoked:  # canceled (the cancel answered the user), or taken over by another owner
            self.leases.drop(run.request_id)
        except AnswerFailed as exc:
            await self.fail(run, exc.kind, exc.key, t(failed_key or exc.key, category=category_name(category, t)),
                            canceled=exc.canceled)
        except (AllProvidersFailed, ProviderError) as exc:
            log.info("request {} failed: {}", run.request_id, exc)
            text = t(failed_key, category=category_name(category, t)) if failed_key \
                else failure_text(exc, category, t, self.settings.tz)
            await self.fail(run, str(exc.kind), str(exc), text)
        except MediaFetchError as exc:
            log.warning("request {}: media could not be fetched: {}", run.request_id, exc)
            await self.fail(run, "media_fetch", str(exc), t("errors.media_failed"))
        except TelegramAPIError as exc:  # the answer could not be delivered (blocked the bot, chat gone)
            log.info("request {}: Telegram refused the answer: {}", run.request_id, exc)
            await self.fail(run, "telegram", str(exc), t("errors.internal", ref=run.request_id))
        except Exception as exc:  # WriteFailed included: the request fails, and the close may wait for the db
            log.opt(exception=exc).error("request {} crashed: {}", run.request_id, type(exc).__name__)
            await self.fail(run, "internal", type(exc).__name__, t("errors.internal", ref=run.request_id))
        else:
            await self.served(run, delivered)

    def _hooks(self, run: Run) -> CallHooks:
        rid, owner = run.request_id, self.leases.owner

        async def on_attempt(attempt: Attempt) -> None:
            self.metrics.attempt(attempt.provider, str(attempt.category), attempt.kind, attempt.latency_ms / 1000)
            if attempt.kind is None:  # a success is kept by the close, in the same transaction
                run.successes.append(attempt_record(attempt))
                return
            run.state.failed(attempt)
            await self.write(lambda s: lifecycle.record_attempts(s, rid, [attempt_record(attempt)]), rid)

        async def on_job_id(provider: str, model: str, job_id: str) -> None:
            run.job, run.state.provider = (provider, job_id), provider
            await self.write(lambda s: lifecycle.set_job(s, rid, owner, provider, model, job_id), rid)

        return CallHooks(on_attempt=on_attempt, on_job_id=on_job_id)

    # --- terminal transitions ------------------------------------------------------------------
    async def served(self, run: Run, delivered: Delivered) -> None:
        rid, owner, attempts = run.request_id, self.leases.owner, list(run.successes)

        async def close(session: AsyncSession) -> bool:
            closed = await lifecycle.close_served(session, rid, owner, served_record(delivered.result), attempts)
            if closed and delivered.exchange is not None:
                await history.append_exchange(session, *delivered.exchange)
            return closed

        try:
            closed = await self.write(close, rid)
        except WriteFailed:
            self.unfinished[rid] = lambda: self.served(run, delivered)
            return
        if closed:
            self.metrics.request_closed(str(run.category), run.label, delivered.result.provider, "served",
                                        time.monotonic() - run.ask.received)
        self.leases.drop(rid)

    async def close_failed(self, run: Run, kind: str, message: str, *, canceled: bool = False) -> Closed | None:
        """The owner's failure transition; None when the request is no longer its own (raises WriteFailed
        when the database keeps failing)."""
        rid, owner, attempts = run.request_id, self.leases.owner, list(run.successes)
        closed = await self.write(lambda s: lifecycle.close_failed(
            s, rid, owner, error_kind=kind, message=scrub(message)[:500], canceled=canceled, attempts=attempts,
            delivered=run.delivered), rid)
        if closed is not None:
            self.metrics.request_closed(str(run.category), run.label, "", closed.status,
                                        time.monotonic() - run.ask.received, closed.refunded)
        self.leases.drop(rid)
        return closed

    async def fail(self, run: Run, kind: str, message: str, text: str, *, canceled: bool = False) -> None:
        """Close as failed and tell the user what it meant for their credits."""
        try:
            closed = await self.close_failed(run, kind, message, canceled=canceled)
        except WriteFailed:
            self.unfinished[run.request_id] = lambda: self.fail(run, kind, message, text, canceled=canceled)
            return
        if closed is not None:
            await run.ask.say(with_outcome(text, closed, run.ask.t))

    async def _stopped(self, run: Run) -> None:
        """Cancelled by the user: the cancel already refunded; ask the provider to stop. By a shutdown: a
        request with a provider job stays open, to be resumed; any other is closed and the user told."""
        if run.slot.canceled:
            self.leases.drop(run.request_id)
            if run.job is not None:
                await self.manager.cancel(*run.job)
            return
        if run.job is not None:
            self.leases.drop(run.request_id)  # the next start takes it over and polls the job
            return
        try:
            closed = await self.close_failed(run, "interrupted", "the bot stopped during the request")
        except WriteFailed:
            return  # the next start finishes it
        if closed is not None:
            text = with_outcome(run.ask.t("errors.interrupted"), closed, run.ask.t)
            try:  # the bot is going down: a best-effort word
                await asyncio.wait_for(run.ask.say(text), 3.0)
            except TimeoutError:
                pass
