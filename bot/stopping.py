"""SIGTERM and SIGINT stop the bot cleanly in every phase: waiting for Telegram, polling, webhook.

aiogram handles signals only inside start_polling; before it (the wait for an unreachable Telegram) the
default SIGTERM action killed the process with 143, skipping every close. Here the signals only set an
event, and whatever phase is running is ended in the way that phase can end cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable

from loguru import logger


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM (on the running loop; they no longer kill the process)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # no loop signal handlers on Windows
            loop.add_signal_handler(sig, stop.set)
    return stop


class Serving:
    """Runs the bot's serving coroutine until it ends or `stop` is set.

    `serve` calls `started(ends_itself)` on reaching its long-running phase: webhook mode ends itself on
    `stop` (its server then closes in order), polling is asked to stop through the dispatcher by
    `stop_serving`. Before that phase (waiting for Telegram) the task is simply cancelled: nothing is
    half-open there.
    """

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        self._phase: str = "starting"

    def started(self, *, ends_itself: bool) -> None:
        self._phase = "ends itself" if ends_itself else "asked to stop"

    async def run(self, serve: Awaitable[None], stop_serving: Callable[[], Awaitable[None]]) -> None:
        task = asyncio.ensure_future(serve)
        stopped = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if task.done():
            task.result()  # a StartupError (or any failure) is the caller's to report
            return
        logger.info("stopping on a signal ({})", self._phase)
        if self._phase == "asked to stop":
            try:
                await stop_serving()
            except RuntimeError:  # it had not really begun: nothing to stop gracefully
                task.cancel()
        elif self._phase == "starting":
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
