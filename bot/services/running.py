"""The requests this process is working on: one at a time per user, and how /cancel reaches one.

A `Slot` is in memory only; what a request owes or was refunded is in the database (`db.repo.lifecycle`).
A slot exists from before the reservation is written until the request's work has ended, so a /cancel
that arrives while the reservation is being written waits for it (`reserved`) instead of missing it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass(eq=False)
class Slot:
    user_id: int
    request_id: int | None = None
    task: asyncio.Task[None] | None = None
    reserved: asyncio.Event = field(default_factory=asyncio.Event)  # the reservation is written (or refused)
    admitted: bool = False  # its turn came (see PARALLEL_REQUESTS): the reservation is being written
    canceled: bool = False  # by the user: the work stops, and the refund is the cancel's, not the work's
    stop_delivery: bool = False  # /cancel came while the answer was going out: stop it where it is

    def reservation_done(self, request_id: int | None) -> None:
        self.request_id = request_id
        self.reserved.set()

    def cancel(self) -> None:
        """The request was canceled in the database: stop its work."""
        self.canceled = True
        if self.task is not None:
            self.task.cancel()


class Slots:
    def __init__(self) -> None:
        self._running: dict[int, Slot] = {}
        self.background: set[asyncio.Task[None]] = set()

    def claim(self, user_id: int) -> Slot | None:
        """The user's slot, or None when a request of theirs is already running."""
        if user_id in self._running:
            return None
        slot = self._running[user_id] = Slot(user_id)
        return slot

    def for_reserved(self, user_id: int, request_id: int) -> Slot:
        """The slot of a request reserved elsewhere (a job from the queue, a resumed orphan): admitted and
        its reservation done, so /cancel treats it as running. The user's own slot when it is free; else a
        slot of its own, which /cancel still reaches through the database and `stop`."""
        slot = self.claim(user_id) or Slot(user_id)
        slot.admitted = True
        slot.reservation_done(request_id)
        return slot

    def release(self, slot: Slot) -> None:
        if self._running.get(slot.user_id) is slot:
            del self._running[slot.user_id]

    def waiting(self) -> int:
        """Requests waiting for their turn (PARALLEL_REQUESTS): claimed, not admitted, nothing reserved yet."""
        return sum(1 for slot in self._running.values() if not slot.admitted and not slot.reserved.is_set())

    def get(self, user_id: int) -> Slot | None:
        return self._running.get(user_id)

    def stop(self, canceled: list[int], delivering: list[int]) -> None:
        """Canceled in the database elsewhere (a front of the distributed mode): stop their work here."""
        for slot in self._running.values():
            if slot.request_id in canceled:
                slot.cancel()
            elif slot.request_id in delivering:
                slot.stop_delivery = True

    def spawn(self, task: asyncio.Task[None]) -> None:
        """Keep a reference to a background task until it ends (the loop holds only weak ones)."""
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def shutdown(self, grace_s: float = 5.0) -> None:
        """Stop every running request (each one's work decides what the stop means for it)."""
        tasks = [slot.task for slot in self._running.values() if slot.task is not None] + list(self.background)
        for task in tasks:
            task.cancel()
        if tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), grace_s)
