"""One user request from input to answer: validate, reserve credits, call the providers, deliver, close.

    validate (nothing charged when empty or too long) -> claim the user's slot (one at a time)
    -> reserve credits + open the request (own committed transaction; a duplicate update: silence)
    -> a task that calls the manager (each attempt and job id written as it happens) and delivers
    -> closed as served, or failed with a refund and a short human message

The task is what /cancel cancels (`bot.services.jobs`). What each kind of answer does is in
`bot.services.answers`; the wording of failures in `bot.services.failures`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from aiogram import Bot
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.i18n import Translate, language_for
from bot.services.answers import AnswerFailed, Answers, Ask, Produce, WorkState
from bot.services.bookkeeping import RequestBook
from bot.services.delivery import MediaFetchError
from bot.services.failures import category_name, failure_text, refusal_text
from bot.services.jobs import JobRegistry, RunningJob
from bot.services.writes import WriteQueue
from bot.settings import Settings
from db.repo.records import Budget, ResumableJob
from db.repo.users import UserView, get_user
from providers.config import LabelConfig
from providers.errors import AllProvidersFailed, Attempt, ProviderError
from providers.manager import ProviderManager
from providers.result import CallHooks
from providers.types import Category, ChatMessage, GenerationRequest


class GenerationService:
    def __init__(self, settings: Settings, sessions: async_sessionmaker[AsyncSession], manager: ProviderManager,
                 jobs: JobRegistry, bot: Bot, writes: WriteQueue | None = None) -> None:
        self.settings = settings
        self.bot = bot  # resumed jobs have no incoming message to answer through
        self.sessions = sessions
        self.manager = manager
        self.jobs = jobs
        self.book = RequestBook(sessions, writes)
        self.answers = Answers(settings, manager, self.book)
        self.budget = Budget(settings.daily_credit_limit, settings.monthly_credit_limit, settings.timezone)

    def label_for(self, user: UserView, category: Category) -> LabelConfig | None:
        """The user's choice for the category while it still exists, else the file's first label."""
        config = self.manager.config
        chosen = config.labels.get(user.label_for(str(category)) or "")
        if chosen is not None and chosen.category is category:
            return chosen
        return config.default_label(category)

    def invalid_input(self, prompt: str, t: Translate, usage_key: str) -> str | None:
        """Why the input cannot be sent (empty, too long), checked before anything is charged."""
        if not prompt.strip():
            return t(usage_key)
        if len(prompt) > self.settings.max_prompt_chars:
            return t("errors.too_long", length=len(prompt), limit=self.settings.max_prompt_chars)
        return None

    # --- entry points ------------------------------------------------------------------------
    async def chat(self, ask: Ask, user: UserView, text: str) -> None:
        label = self.label_for(user, Category.TEXT)
        if label is None:
            await ask.say(ask.t("errors.no_label", category=category_name("text", ask.t)))
            return
        if problem := self.invalid_input(text, ask.t, "errors.empty"):
            await ask.say(problem)
            return
        budget = max(0, self.settings.history_max_chars - len(text))
        past = await self.book.history(ask.user_id, budget)  # read even with no budget: it prunes
        messages = (*(ChatMessage(role, content) for role, content in past), ChatMessage("user", text))
        request = GenerationRequest(Category.TEXT, prompt=text, messages=messages)
        await self.run(ask, label, request, self.answers.text(ask, label.name, request))

    async def media(self, ask: Ask, user: UserView, request: GenerationRequest, usage_key: str) -> None:
        label = self.label_for(user, request.category)
        if label is None:
            await ask.say(ask.t("errors.no_label", category=category_name(str(request.category), ask.t)))
            return
        if request.category is not Category.IMAGE_EDIT or request.prompt:
            if problem := self.invalid_input(request.prompt, ask.t, usage_key):
                await ask.say(problem)
                return
        await self.run(ask, label, request, self.answers.media(ask, label.name, request))

    async def resume(self, item: ResumableJob) -> None:
        """Finish a job started before a restart: poll it, deliver, close; refund and tell when it failed."""
        async with self.sessions() as session:
            user = await get_user(session, item.tg_id)
        ask = Ask(self.bot, item.chat_id or item.tg_id, item.tg_id,
                  Translate(language_for(user.language if user else None)))
        request = GenerationRequest(Category(item.category), prompt=item.prompt)
        job = self.jobs.claim(item.tg_id) or RunningJob(item.tg_id)
        job.request_id, job.credits, job.provider_job = item.request_id, item.credits, (item.provider, item.job_id)
        produce = self.answers.resumed(ask, item.provider, item.job_id, item.model, request)
        try:
            await self._supervise(job, self._serve(ask, job, request.category, [item.provider], produce,
                                                   failed_key="resume.failed"))
        finally:
            self.jobs.release(job)

    # --- the common flow ---------------------------------------------------------------------
    async def run(self, ask: Ask, label: LabelConfig, request: GenerationRequest, produce: Produce) -> None:
        job = self.jobs.claim(ask.user_id)
        if job is None:
            await ask.say(ask.t("errors.wait"))
            return
        try:
            route = self.manager.route_for(request.category, label)
            reservation = await self.book.reserve(
                tg_id=ask.user_id, update_id=ask.update_id, chat_id=ask.chat_id, label=label.name,
                category=str(request.category), prompt=request.prompt, credits=label.credits,
                budget=self.budget, first_provider=route[0] if route else None)
            if reservation.status == "duplicate":
                logger.info("update {} was served before (request {})", ask.update_id, reservation.request_id)
                return
            if not reservation.ok or reservation.request_id is None:
                if text := refusal_text(reservation, label.credits, ask.t, self.settings.timezone):
                    await ask.say(text)
                return
            job.request_id, job.credits = reservation.request_id, label.credits
            if job.cancelled:  # /cancel arrived while the reservation was being made
                await self.book.failed(job.request_id, "canceled", canceled=True)
                return
            await self._supervise(job, self._serve(ask, job, request.category, route, produce))
        finally:
            self.jobs.release(job)

    async def _supervise(self, job: RunningJob, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` as the job's task (what /cancel cancels) and wait for it to end."""
        job.task = asyncio.create_task(work)
        try:
            await asyncio.wait({job.task})
        except asyncio.CancelledError:  # the bot is shutting down: stop the work too
            job.task.cancel()
            raise

    async def _serve(self, ask: Ask, job: RunningJob, category: Category, route: list[str], produce: Produce,
                     failed_key: str | None = None) -> None:
        assert job.request_id is not None
        request_id = job.request_id
        state = WorkState(request_id, route)
        log = logger.bind(request_id=request_id, user_id=ask.user_id)
        try:
            await produce(self._hooks(job, state), state)
        except asyncio.CancelledError:
            await self._stopped(job, ask)
            if not job.cancelled:
                raise
        except AnswerFailed as exc:
            await self.book.failed(request_id, exc.kind, exc.key)
            await ask.say(ask.t(failed_key or exc.key, category=category_name(str(category), ask.t)))
        except (AllProvidersFailed, ProviderError) as exc:
            log.info("request {} failed: {}", request_id, exc)
            await self.book.failed(request_id, str(exc.kind), str(exc))
            await ask.say(ask.t(failed_key, category=category_name(str(category), ask.t)) if failed_key
                          else failure_text(exc, str(category), ask.t, self.settings.tz))
        except MediaFetchError as exc:
            log.warning("request {}: media could not be fetched: {}", request_id, exc)
            await self.book.failed(request_id, "media_fetch", str(exc))
            await ask.say(ask.t("errors.media_failed"))
        except Exception as exc:
            log.opt(exception=exc).error("request {} crashed: {}", request_id, type(exc).__name__)
            await self.book.failed(request_id, "internal", type(exc).__name__)
            await ask.say(ask.t("errors.internal", ref=request_id))

    def _hooks(self, job: RunningJob, state: WorkState) -> CallHooks:
        async def on_attempt(attempt: Attempt) -> None:
            if attempt.kind is not None:
                state.failed(attempt)
            await self.book.attempt(state.request_id, attempt)

        async def on_job_id(provider: str, model: str, job_id: str) -> None:
            job.provider_job = (provider, job_id)
            state.provider = provider
            await self.book.job(state.request_id, provider, model, job_id)

        return CallHooks(on_attempt=on_attempt, on_job_id=on_job_id)

    async def _stopped(self, job: RunningJob, ask: Ask) -> None:
        """Cancelled by the user: refund, and ask the provider to stop. By a shutdown: a request with a
        provider job stays open to be resumed at the next start; any other is refunded and the user told."""
        assert job.request_id is not None
        if job.cancelled:
            await self.book.failed(job.request_id, "canceled", "cancelled by the user", canceled=True)
            if job.provider_job is not None:
                await self.cancel_provider_job(*job.provider_job)
        elif job.provider_job is None:
            if await self.book.failed(job.request_id, "interrupted", "the bot stopped during the request"):
                with contextlib.suppress(Exception):  # the bot is going down; a best-effort word
                    await asyncio.wait_for(ask.say(ask.t("errors.interrupted")), 3.0)

    async def cancel_provider_job(self, provider: str, job_id: str) -> None:
        adapter = self.manager.adapters.get(provider)
        if adapter is None:
            return
        with contextlib.suppress(Exception):  # best effort: the refund does not depend on it
            await asyncio.wait_for(adapter.cancel(job_id), 10.0)
