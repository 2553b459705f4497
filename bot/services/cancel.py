"""/cancel's protocol: the database decides what a cancel does, then the work is told.

    waiting its turn      -> it will not start; nothing was charged            ("not_started")
    reservation written   -> waits for it (a /cancel never lands before the refund path exists)
    cancel_open           -> every open request of the user whose answer has not started to go out is
                             canceled and refunded in one transaction; its work is stopped ("refunded")
    answer going out      -> nothing refunded; a streamed text stops where it is      ("delivering")
    nothing open          -> "too_late" when a request had just finished, else "nothing"
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from loguru import logger

from bot.services.lifecycle import RequestLife
from db.repo import lifecycle

CANCEL_WAIT_S = 10.0  # how long /cancel waits for a reservation being written
CancelResult = Literal["refunded", "delivering", "too_late", "pending", "nothing", "not_started"]


@dataclass(frozen=True, slots=True)
class CancelReply:
    result: CancelResult
    refunded: int = 0


async def cancel(life: RequestLife, user_id: int) -> CancelReply:
    """The user's /cancel, answered with what really happened."""
    slot = life.slots.get(user_id)
    if slot is not None and not slot.admitted:
        slot.canceled = True  # still waiting its turn: it will not start
        return CancelReply("not_started")
    if slot is not None and not slot.reserved.is_set():
        try:
            await asyncio.wait_for(slot.reserved.wait(), CANCEL_WAIT_S)
        except TimeoutError:
            slot.canceled = True  # the reservation is still being written: its owner cancels it
            return CancelReply("pending")
    outcome = await life.write(lambda s: lifecycle.cancel_open(s, user_id))
    for closed in outcome.canceled:  # counted where the transition is made (the work's owner may be elsewhere)
        life.metrics.request_closed(closed.category, closed.label, "", "canceled", None, closed.refunded)
    canceled = [c.request_id for c in outcome.canceled]
    if slot is not None and slot.request_id is not None:
        if slot.request_id in canceled:
            slot.cancel()
        elif slot.request_id in outcome.delivering:
            slot.stop_delivery = True
    if life.queue is not None:  # the work runs in a worker: tell it (the refund is done already)
        try:
            await life.queue.stop(canceled, list(outcome.delivering))
        except Exception as exc:
            logger.warning("could not signal the workers to stop {}: {}", canceled, type(exc).__name__)
    if outcome.canceled:
        return CancelReply("refunded", outcome.refunded)
    if outcome.delivering:
        return CancelReply("delivering")
    return CancelReply("too_late" if slot is not None and slot.request_id is not None else "nothing")
