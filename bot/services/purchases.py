"""A paid charge granted, a refund made outside /refund recorded: the one path for both, whoever found
them, a payment's own update (`bot.handlers.payments`) or Telegram's list of Star transactions
(`bot.services.star_ledger`).

- `grant_payment`: the payload must be a signed invoice of this payer at this amount, or the payment is
  kept with no credits; `record_purchase` grants once per charge id (a unique row), committed through
  `DurableWrites` before anyone is told. Two finders racing grant once: one of them sees `new`.
- `record_outside_refund`: `record_refund` once per charge id; None when there is nothing new to tell.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from loguru import logger

from bot.i18n import Translate
from bot.services.durable import DurableWrites, WriteFailed
from bot.services.invoices import InvoiceSigner, paid_as_invoiced
from bot.services.writes import WriteQueue
from db.repo.payments import Refund, record_purchase, record_refund


@dataclass(frozen=True, slots=True)
class PaidCharge:
    """What a successful payment says, from its message or from its Star transaction."""

    charge_id: str  # telegram_payment_charge_id, the Star transaction's id
    payer_id: int
    payload: str
    currency: str
    amount: int
    provider_charge_id: str | None = None


class Outcome(StrEnum):
    GRANTED = "done"  # the values are the keys of the texts under [buy]
    ALREADY = "already"
    UNVERIFIED = "unverified"
    NOT_RECORDED = "not_recorded"


@dataclass(frozen=True, slots=True)
class Grant:
    charge_id: str
    outcome: Outcome
    new: bool  # this call wrote the payment (False: granted before, or not written at all)
    credits: int = 0  # the payment's credits (0 for one that did not verify)
    balance: int = 0

    def text(self, t: Translate) -> str:
        """What the payer is told."""
        return t(f"buy.{self.outcome}", credits=self.credits, balance=self.balance, charge=self.charge_id)


async def grant_payment(paid: PaidCharge, invoices: InvoiceSigner, db_writes: WriteQueue) -> Grant:
    invoice = invoices.read(paid.payload)
    valid = paid_as_invoiced(invoice, payer_id=paid.payer_id, currency=paid.currency, total_amount=paid.amount)
    credits = invoice.pack.credits if valid and invoice is not None else 0
    log = logger.bind(user_id=paid.payer_id, charge_id=paid.charge_id)
    try:
        purchase = await DurableWrites(db_writes).write(lambda s: record_purchase(
            s, charge_id=paid.charge_id, user_id=paid.payer_id, credits=credits, stars=paid.amount,
            payload=paid.payload[:128], provider_charge_id=paid.provider_charge_id))
    except WriteFailed:
        log.error("payment {} of user {} ({} {}, payload {!r}) NOT recorded: the next reading of Telegram's Star "
                  "transactions grants it (STARS_RECONCILE_MINUTES), else grant it by hand", paid.charge_id,
                  paid.payer_id, paid.amount, paid.currency, paid.payload)
        return Grant(paid.charge_id, Outcome.NOT_RECORDED, new=False)
    found = purchase.payment
    if not valid:
        log.error("payment {} of user {} does not match a signed invoice: recorded with no credits",
                  paid.charge_id, paid.payer_id)
        return Grant(paid.charge_id, Outcome.UNVERIFIED, purchase.new, found.credits, purchase.balance)
    if purchase.new:
        log.info("user {} bought {} credits for {} Stars", paid.payer_id, credits, paid.amount)
        return Grant(paid.charge_id, Outcome.GRANTED, True, found.credits, purchase.balance)
    log.info("payment {} delivered again; credited once", paid.charge_id)
    return Grant(paid.charge_id, Outcome.ALREADY, False, found.credits, purchase.balance)


async def record_outside_refund(charge_id: str, db_writes: WriteQueue) -> Refund | None:
    """A refund Telegram made (not through /refund): recorded once; None for an unknown charge id or one
    recorded before. Raises `WriteFailed` when the database keeps failing."""
    refund = await DurableWrites(db_writes).write(lambda s: record_refund(s, charge_id))
    if refund is None or not refund.new:
        return None
    logger.info("payment {} refunded outside /refund; recorded", charge_id)
    return refund


def refund_text(refund: Refund, t: Translate) -> str:
    return t("buy.refunded", stars=refund.payment.stars, credits=refund.payment.credits_debited,
             balance=refund.balance)
