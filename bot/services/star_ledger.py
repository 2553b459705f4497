"""Reconciling with Telegram's own list of the bot's Star transactions (getStarTransactions).

A payment's update can be lost: aiogram confirms updates as it fetches them, so a process that crashes
before the grant commits never sees that payment again. Telegram's list still has it. The rules:

- The list is oldest first. `feed_positions["star_transactions"]` counts the transactions already read;
  a run reads from there, 100 at a time, until a page comes back short, and stores the new position
  after each page's writes have committed. A write that keeps failing ends the run before it, so the
  next run reads that transaction again. Reading one again is harmless: every step below is once-only.
- An incoming invoice payment from a user whose charge id (= the transaction's id) has no payment row
  is granted by `grant_payment`, the successful_payment handler's own path: the unique charge id makes
  a race with the real update grant once. The user is upserted first, as the update's middleware would,
  and told as on the normal path; the log gets one INFO line per payment reconciled.
- An outgoing transaction to a user under the id of a payment still `paid` is its refund: recorded by
  `record_outside_refund`, as Telegram's refunded_payment notice is, and the user told the same.
- Runs at start-up and every STARS_RECONCILE_MINUTES, each run claiming `stars:reconcile` first
  (bot.shared.once, in Redis when REDIS_URL is set), so one process of the bot reads at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import StarTransaction, TransactionPartnerUser, User
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from loguru import logger
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.i18n import Translate, language_for
from bot.services.durable import DurableWrites, WriteFailed
from bot.services.invoices import STARS, InvoiceSigner
from bot.services.purchases import Outcome, PaidCharge, grant_payment, record_outside_refund, refund_text
from bot.services.telegram_retry import with_retry
from bot.services.writes import WriteQueue
from bot.settings import Settings
from bot.shared.once import Claims
from db.repo.payments import payment_statuses
from db.repo.positions import advance_position, read_position
from db.repo.users import upsert_user

FEED = "star_transactions"
PAGE = 100  # the most getStarTransactions gives at once
JOB_ID = "stars_reconcile"
CLAIM = "stars:reconcile"
INVOICE_PAYMENT = "invoice_payment"


@dataclass
class Reconciled:
    """What one run did."""

    read: int = 0  # transactions read
    position: int = 0  # stored at the end
    granted: list[str] = field(default_factory=list)  # charge ids written by this run
    refunded: list[str] = field(default_factory=list)
    stopped: bool = False  # a write failed: the rest waits for the next run


class StarLedger:
    def __init__(self, bot: Bot, sessions: async_sessionmaker[AsyncSession], db_writes: WriteQueue,
                 invoices: InvoiceSigner, settings: Settings, claims: Claims) -> None:
        self.bot, self.sessions, self.db_writes = bot, sessions, db_writes
        self.invoices, self.settings, self.claims = invoices, settings, claims

    async def reconcile(self) -> Reconciled:
        """One run from the stored position to the end of the list. Raises Telegram's errors."""
        async with self.sessions() as session:
            done = Reconciled(position=await read_position(session, FEED))
        while not done.stopped:
            page = (await self.bot.get_star_transactions(offset=done.position, limit=PAGE)).transactions
            settled = await self._settle(page, done)
            done.read += settled
            if settled:
                done.position = await self._store(done.position + settled)
            if len(page) < PAGE:
                break
        return done

    async def _store(self, position: int) -> int:
        """The position stored: ours, or a larger one another process stored meanwhile."""
        return await DurableWrites(self.db_writes).write(lambda s: advance_position(s, FEED, position))

    async def scheduled(self) -> Reconciled | None:
        """A run if no other process has one going (the claim); Telegram or the database failing is logged,
        never raised: the next run reads from the same position."""
        if not await self.claims.claim(CLAIM, self.claim_ttl_s):
            return None
        try:
            done = await self.reconcile()
        except (TelegramAPIError, WriteFailed) as exc:
            logger.warning("Star transactions not reconciled this time: {}", exc)
            return None
        except Exception:  # a bug here must not keep the bot from starting, nor hide: logged with its trace
            logger.exception("Star transactions not reconciled: unexpected error")
            return None
        if done.granted or done.refunded:
            logger.info("Star transactions reconciled: {} read, {} payment(s) granted, {} refund(s) recorded",
                        done.read, len(done.granted), len(done.refunded))
        return done

    @property
    def claim_ttl_s(self) -> float:
        # Half the interval: the next tick of any process finds it free. A run longer than that may meet
        # another one; both are once-only, and the position only moves forward.
        return max(30.0, self.settings.stars_reconcile_minutes * 30.0)

    async def _settle(self, page: Sequence[StarTransaction], done: Reconciled) -> int:
        """Grant and record what the database lacks, in the list's order; how many were settled."""
        async with self.sessions() as session:
            statuses = await payment_statuses(session, {t.id for t in page})
        for settled, transaction in enumerate(page):
            incoming, outgoing = transaction.source, transaction.receiver
            try:
                if (isinstance(incoming, TransactionPartnerUser) and incoming.transaction_type == INVOICE_PAYMENT
                        and incoming.invoice_payload is not None and transaction.id not in statuses):
                    if not await self._grant(transaction, incoming.user, incoming.invoice_payload, done):
                        done.stopped = True
                        return settled
                    statuses[transaction.id] = "paid"
                elif isinstance(outgoing, TransactionPartnerUser) and statuses.get(transaction.id) == "paid":
                    await self._refund(transaction.id, outgoing.user, done)
                    statuses[transaction.id] = "refunded"
            except WriteFailed:
                done.stopped = True
                return settled
        return len(page)

    async def _grant(self, transaction: StarTransaction, payer: User, payload: str, done: Reconciled) -> bool:
        """False when the payment could not be written."""
        t = await self._meet(payer)
        grant = await grant_payment(PaidCharge(transaction.id, payer.id, payload, STARS, transaction.amount),
                                    self.invoices, self.db_writes)
        if not grant.new:  # written by the real update meanwhile, or not written at all
            return grant.outcome is not Outcome.NOT_RECORDED
        done.granted.append(transaction.id)
        logger.info("payment {} of user {} ({} Stars, {:%Y-%m-%d %H:%M} UTC) missed by the bot: reconciled from "
                    "Telegram's Star transactions, {} credits", transaction.id, payer.id, transaction.amount,
                    transaction.date, grant.credits)
        await self._tell(payer.id, grant.text(t))
        return True

    async def _refund(self, charge_id: str, payer: User, done: Reconciled) -> None:
        refund = await record_outside_refund(charge_id, self.db_writes)
        if refund is None:
            return
        done.refunded.append(charge_id)
        await self._tell(payer.id, refund_text(refund, await self._meet(payer)))

    async def _meet(self, payer: User) -> Translate:
        """The payer upserted as their update's middleware would have (a payment's user row must exist), in
        their language."""
        settings = self.settings
        view = await DurableWrites(self.db_writes).write(lambda s: upsert_user(
            s, payer.id, username=payer.username, first_name=payer.first_name, last_name=payer.last_name,
            language=payer.language_code, is_admin=settings.is_admin(payer.id), free_credits=settings.free_credits))
        return Translate(language_for(view.language))

    async def _tell(self, user_id: int, text: str) -> None:
        try:
            await with_retry(lambda: self.bot.send_message(user_id, text), attempts=3, max_wait_s=30.0,
                             retry_network=False)
        except TelegramAPIError as exc:  # blocked the bot, or gone: what they were owed is on the balance
            logger.warning("user {} not told of a reconciled payment: {}", user_id, type(exc).__name__)


def schedule_reconciliation(scheduler: AsyncIOScheduler, ledger: StarLedger, settings: Settings) -> None:
    """Every STARS_RECONCILE_MINUTES (the start-up run is `BotApp.on_startup`'s); never when it is 0."""
    if not settings.stars_reconcile_minutes:
        return
    scheduler.add_job(ledger.scheduled, "interval", minutes=settings.stars_reconcile_minutes, id=JOB_ID,
                      coalesce=True, max_instances=1, replace_existing=True)
