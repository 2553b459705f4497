"""Finishing what no one is finishing: run at start-up and every SWEEP_INTERVAL_SECONDS.

    1. this process's own closes that the database refused earlier are tried again (they carry what only
       this process knows: whether the answer reached the user)
    2. orphans, open requests whose lease ran out or whose owner is known gone (`bot.services.leases`),
       are taken over, one guarded update each, so two sweepers never finish the same one:
         delivered            -> served (the answer reached the user; only the close was lost)
         with a provider job  -> resumed: polled to its end and delivered, never created again
         anything else        -> failed, refunded, and the user told
Lease renewal, every third of a lease, is here too: one statement for every request this process holds.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from functools import partial

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.i18n import Translate, language_for
from bot.services.answers import Ask, WorkState
from bot.services.durable import WriteFailed, transient
from bot.services.failures import category_name
from bot.services.leases import gone_owners
from bot.services.lifecycle import RequestLife, Run
from bot.services.running import Slot
from db.periods import utcnow
from db.repo import lifecycle
from db.repo.records import Orphan, ServedRecord
from db.repo.users import get_user
from providers import Category, GenerationRequest


class Sweeper:
    def __init__(self, life: RequestLife, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.life, self.sessions = life, sessions
        self.leases = life.leases

    async def sweep(self, now: datetime | None = None) -> int:
        """Finish what is left unfinished; returns how many orphans were taken over."""
        await self._retry_unfinished()
        now = now or utcnow()
        async with self.sessions() as session:
            gone = gone_owners(self.leases.owner, await lifecycle.open_owners(session))
            found = await lifecycle.orphans(session, now, gone)
        taken = 0
        for orphan in found:
            if orphan.request_id in self.leases:  # ours and alive: the next renewal fixes its lease
                continue
            take = partial(lifecycle.take_over, orphan=orphan, owner=self.leases.owner,
                           lease_until=self.leases.until(now))
            try:
                if not await self.life.write(take, orphan.request_id):
                    continue  # another sweeper was first, or its owner came back
            except WriteFailed:
                return taken  # the database is down: the next sweep tries again
            taken += 1
            logger.warning("request {} of user {} was orphaned (owner {}); finishing it", orphan.request_id,
                           orphan.tg_id, orphan.owner)
            self.leases.hold(orphan.request_id)
            await self._finish(orphan)
        return taken

    async def _retry_unfinished(self) -> None:
        for request_id, close in list(self.life.unfinished.items()):
            del self.life.unfinished[request_id]
            logger.info("request {}: trying its close again", request_id)
            try:
                await close()  # puts itself back when the database still fails
            except Exception as exc:
                self.life.abandon(request_id, exc)

    async def _finish(self, orphan: Orphan) -> None:
        ask = await self._ask_for(orphan)
        slot = Slot(orphan.tg_id)
        slot.reservation_done(orphan.request_id)
        run = Run(orphan.request_id, ask, slot, Category(orphan.category), WorkState([]), label=orphan.label)
        if orphan.delivered_at is not None:  # the answer reached the user; only the close was lost
            served = ServedRecord(provider=orphan.job_provider or "", model=orphan.job_model or "",
                                  cost_micros=0, latency_ms=0)
            try:
                if await self.life.write(lambda s: lifecycle.close_served(s, run.request_id, self.leases.owner,
                                                                          served), run.request_id):
                    self.life.metrics.request_closed(orphan.category, orphan.label, served.provider, "served", None)
            except WriteFailed:
                pass  # not renewed from here on: its lease runs out again and a later sweep takes it
            self.leases.drop(run.request_id)
        elif orphan.job_id and orphan.job_provider in self.life.manager.catalogue.enabled_providers():
            self.life.slots.spawn(asyncio.create_task(self.resume(orphan, ask)))
        else:
            text = ask.t("resume.failed", category=category_name(orphan.category, ask.t))
            await self.life.fail(run, "orphaned", "its process stopped before the request finished", text)

    async def resume(self, orphan: Orphan, ask: Ask) -> None:
        """Poll the provider job of a taken-over request to its end and deliver; never creates it again."""
        assert orphan.job_id is not None and orphan.job_provider is not None
        slots = self.life.slots
        slot = slots.for_reserved(orphan.tg_id, orphan.request_id)
        request = GenerationRequest(Category(orphan.category), prompt=orphan.prompt)
        work = self.life.answers.resumed(ask, orphan.job_provider, orphan.job_id, orphan.job_model or "", request)
        run = Run(orphan.request_id, ask, slot, request.category, WorkState([orphan.job_provider]),
                  job=(orphan.job_provider, orphan.job_id), label=orphan.label)
        logger.info("resuming request {}: {} job {}", orphan.request_id, orphan.job_provider, orphan.job_id)
        try:
            await self.life.supervise(run, work, failed_key="resume.failed")
        finally:
            slots.release(slot)

    async def _ask_for(self, orphan: Orphan) -> Ask:
        async with self.sessions() as session:
            user = await get_user(session, orphan.tg_id)
        # the row says where it was asked (a group's forum topic too), so the answer goes where it was awaited
        return Ask(self.life.bot, orphan.chat_id or orphan.tg_id, orphan.tg_id,
                   Translate(language_for(user.language if user else None)), thread_id=orphan.thread_id)

    def schedule(self, scheduler: AsyncIOScheduler, sweep_s: float, lease_s: float) -> None:
        """The sweep every `sweep_s` (SWEEP_INTERVAL_SECONDS) and lease renewal every third of `lease_s`
        (REQUEST_LEASE_SECONDS): a front of one process and every worker alike."""
        scheduler.add_job(self.sweep, "interval", seconds=sweep_s, id="sweep", coalesce=True, max_instances=1,
                          replace_existing=True)
        scheduler.add_job(self.renew_leases, "interval", seconds=lease_s / 3, id="leases", coalesce=True,
                          max_instances=1, replace_existing=True)

    async def renew_leases(self) -> None:
        """Push this process's leases on (every third of a lease)."""
        held = self.leases.held()
        if not held:
            return
        owner, until = self.leases.owner, self.leases.until()
        try:
            await self.life.durable.writes.run(lambda s: lifecycle.renew_leases(s, owner, held, until))
        except Exception as exc:
            if not transient(exc):
                raise
            logger.warning("could not renew {} lease(s): {}", len(held), type(exc).__name__)
