"""`python -m bot.worker`: a worker of the distributed mode (REDIS_URL set). Run as many as wanted.

A worker takes jobs from the generation queue (`bot.queue`), calls the providers, streams and delivers
with its own `Bot` (the same token), and closes each request. It renews the leases of what it runs, and
its sweeper finishes the orphans of workers that died: a provider job is resumed (polled, never created
again), anything else is refunded and the user told. /cancel reaches it as a signal from the front.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from loguru import logger

from bot.errors import StartupError
from bot.i18n import Translate, language_for
from bot.queue import TASK_NAME, Job, queue_name
from bot.services.answers import Ask, WorkState
from bot.services.lifecycle import RequestLife, Run
from bot.settings import Settings
from bot.shared.base import uncancellable
from db.repo import lifecycle
from providers.config import ProvidersConfig

if TYPE_CHECKING:
    from bot.core import Core

PREFIX = "aibot:"


async def take_job(life: RequestLife, job: Job) -> None:
    """Run one job: take the request with one guarded update (a job delivered again, canceled meanwhile,
    or refunded after waiting too long finds it taken and is dropped), then work on it like one process."""
    rid, owner, until = job.request_id, life.leases.owner, life.leases.until()
    if not await life.write(lambda s: lifecycle.start(s, rid, owner, until), rid):
        logger.info("request {}: no longer waiting in the queue; its message is dropped", rid)
        return
    life.leases.hold(rid)
    ask = Ask(life.bot, job.chat_id, job.user_id, Translate(language_for(job.lang)), job.reply_to, job.update_id,
              job.thread_id)
    slot = life.slots.for_reserved(job.user_id, rid)
    try:
        label = life.manager.catalogue.get(job.label)
        route = life.manager.route_for(job.request.category, label) if label is not None else []
        run = Run(rid, ask, slot, job.request.category, WorkState(route), label=job.label)
        if label is None:  # the providers file changed between the front and this worker
            await life.fail(run, "internal", f"label {job.label!r} is unknown here", ask.t("errors.internal", ref=rid))
            return
        await life.supervise(run, life.make_work(job.work, job.transcriber)(ask, label.name, job.request))
    finally:
        life.slots.release(slot)


class Worker:
    def __init__(self, core: Core, redis_url: str) -> None:
        from bot.services.dispatch import make_broker

        assert core.shared.redis is not None  # REDIS_URL is set: the core's shared pieces have the client
        self.core, self.settings = core, core.settings
        self.redis = core.shared.redis  # stop signals and the queue depth; closed with the core
        # a message unacknowledged this long (its worker died before taking the request) goes to another
        self.broker = make_broker(redis_url, PREFIX, idle_s=max(60.0, 2 * self.settings.request_lease_seconds))

        async def run_request(data: dict[str, Any]) -> None:
            await take_job(core.life, Job.from_wire(data))

        self.broker.register_task(run_request, task_name=TASK_NAME)
        self.depth = 0  # messages waiting in the queue or taken and not yet acknowledged, for /metrics
        core.metrics.set_queue_depth_source(lambda: self.depth)

    async def run(self, stop: asyncio.Event) -> None:
        from taskiq.acks import AcknowledgeType
        from taskiq.api import run_receiver_task

        from bot.services.dispatch import listen_for_stops

        core = self.core
        await core.start()
        await self.broker.startup()
        if self.settings.metrics_port:  # GET /metrics (Prometheus), like a front's
            await core.metrics.serve(self.settings.metrics_host, self.settings.metrics_port)
        taken = await core.sweeper.sweep()  # what dead workers left, before new work comes in
        if taken:
            logger.info("took over {} orphaned request(s)", taken)
        scheduler = AsyncIOScheduler(timezone=self.settings.tz)
        core.sweeper.schedule(scheduler, self.settings.sweep_interval_seconds, self.settings.request_lease_seconds)
        scheduler.add_job(self._measure_queue, "interval", seconds=self.settings.request_lease_seconds / 3,
                          id="queue_depth", coalesce=True, max_instances=1)
        scheduler.start()
        listening = asyncio.Event()
        tasks = [asyncio.create_task(listen_for_stops(self.redis, PREFIX, core.slots.stop, listening))]
        await listening.wait()
        tasks.append(asyncio.create_task(run_receiver_task(
            self.broker, max_async_tasks=self.settings.worker_concurrency, max_prefetch=0,
            ack_time=AcknowledgeType.WHEN_EXECUTED, propagate_exceptions=False)))
        logger.info("worker {} takes requests (at most {} at once)", core.life.leases.owner,
                    self.settings.worker_concurrency)
        try:
            await stop.wait()
        finally:
            scheduler.shutdown(wait=False)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await core.slots.shutdown()
            await self.broker.shutdown()

    async def _measure_queue(self) -> None:
        try:
            groups = await uncancellable(self.redis.xinfo_groups(queue_name(PREFIX)))
        except Exception as exc:
            logger.debug("queue depth unknown: {}", type(exc).__name__)
            return
        for group in groups:
            if group.get("name") in (self.broker.consumer_group_name, self.broker.consumer_group_name.encode()):
                self.depth = int(group.get("lag") or 0) + int(group.get("pending") or 0)


def main() -> int:
    from bot.__main__ import prepare

    prepared = prepare()
    if isinstance(prepared, int):
        return prepared
    settings, config = prepared
    if settings.redis_url is None:
        print("error: a worker needs REDIS_URL (the queue it takes requests from)", file=sys.stderr)
        return 1
    try:
        asyncio.run(_run(settings, config))
    except KeyboardInterrupt:
        pass
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


async def _run(settings: Settings, config: ProvidersConfig) -> None:
    """Migrate, build, work until SIGTERM/SIGINT (a signal during the migration is a clean stop too)."""
    from bot.__main__ import migrate
    from bot.core import build_core, freeze_startup_heap
    from bot.stopping import stop_on_signals

    stop = stop_on_signals()
    await migrate(settings)
    core = build_core(settings, config)
    freeze_startup_heap()
    assert settings.redis_url is not None
    worker = Worker(core, settings.redis_url.get_secret_value())
    try:
        await worker.run(stop)
    finally:
        await core.aclose()
        logger.info("worker stopped")


if __name__ == "__main__":
    sys.exit(main())
