"""Telegram Stars in the fake Bot API: sendInvoice, answerPreCheckoutQuery, refundStarPayment,
getStarTransactions, and what a paying user makes Telegram send (`FakeTelegram.stars`):

    invoice = fake.stars.invoices[-1]                  # what the bot sent with sendInvoice
    checkout = fake.stars.pay(user_id, invoice)        # pre_checkout_query; an ok answer charges the user,
                                                       # then Telegram sends the successful_payment message
    checkout.answer, checkout.charge                   # the bot's answer; the charge it led to
    fake.stars.checkout(user_id, payload, 50)          # a pre-checkout of any payload (a forged one)
    fake.stars.deliver_payment(charge_id)              # that payment's message once more, as a new update
    fake.stars.refund_outside(charge_id)               # refunded without the bot: a refunded_payment update
    fake.stars.refund_unseen(charge_id)                # ... and that update lost
    fake.stars.charge_unseen(user_id, invoice)         # charged, its successful_payment update lost
    fake.stars.transactions                            # the bot's Star transactions, oldest first
    fake.stars.reads                                   # (offset, limit) of each getStarTransactions

As on Telegram: an invoice in Stars (XTR) has an empty provider token and exactly one price; a
pre-checkout query is answered once, ok or with an error message; a charge is refunded once. Every charge
and every refund is a Star transaction (getStarTransactions, oldest first, at most 100 at a time): a charge
incoming from its user with the invoice payload, a refund outgoing to that user under the charge's id.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.fakes.telegram_methods import Params, api, chat_id_of, record_sent
from tests.fakes.telegram_state import bad_request

if TYPE_CHECKING:
    from tests.fakes.telegram import FakeTelegram


@dataclass
class Invoice:
    chat_id: int
    message_id: int
    title: str
    description: str
    payload: str
    currency: str
    amount: int
    provider_token: str | None


@dataclass
class Checkout:
    query_id: str
    user_id: int
    payload: str
    currency: str
    amount: int
    update_id: int = 0
    answer: dict[str, Any] | None = None  # {"ok": bool, "error_message": str | None} once answered
    charge: Charge | None = None  # made when the bot said ok


@dataclass
class Charge:
    charge_id: str
    user_id: int
    payload: str
    amount: int
    update_ids: list[int] = field(default_factory=list)  # the successful_payment updates carrying it
    refunded: bool = False
    refund_update_id: int | None = None  # the refunded_payment message's update, when sent


class StarPayments:
    """Invoices sent, pre-checkout queries and their answers, charges made and refunded."""

    def __init__(self, fake: FakeTelegram) -> None:
        self.fake = fake
        self.invoices: list[Invoice] = []
        self.checkouts: dict[str, Checkout] = {}
        self.charges: dict[str, Charge] = {}
        self.refund_refusals: list[str] = []  # the next refunds fail with these descriptions
        self.notify_refunds = False  # a refund also sends the user's chat a refunded_payment message
        self.transactions: list[dict[str, Any]] = []  # getStarTransactions' list, oldest first
        self.reads: list[tuple[int, int]] = []  # (offset, limit) of each getStarTransactions
        self._next = 0

    def _id(self) -> int:
        self._next += 1
        return self._next

    # --- what a paying user does -----------------------------------------------------------------
    def checkout(self, user_id: int, payload: str, amount: int, currency: str = "XTR") -> Checkout:
        """The user pressed Pay: Telegram asks the bot first (a pre_checkout_query update)."""
        user = self.fake.users.get(user_id) or self.fake.remember_user(user_id, "Tester", "en", None, None)
        query_id = f"pcq{user_id}x{self._id()}"
        checkout = self.checkouts[query_id] = Checkout(query_id, user_id, payload, currency, amount)
        checkout.update_id = self.fake.push_update({"pre_checkout_query": {
            "id": query_id, "from": user, "currency": currency, "total_amount": amount,
            "invoice_payload": payload}})
        return checkout

    def pay(self, user_id: int, invoice: Invoice) -> Checkout:
        return self.checkout(user_id, invoice.payload, invoice.amount, invoice.currency)

    def deliver_payment(self, charge_id: str) -> int:
        """The successful_payment message of a charge, as a new update (another front, a retry)."""
        charge = self.charges[charge_id]
        message = self.fake.new_message(charge.user_id, self.fake.users[charge.user_id], {"successful_payment": {
            "currency": "XTR", "total_amount": charge.amount, "invoice_payload": charge.payload,
            "telegram_payment_charge_id": charge.charge_id, "provider_payment_charge_id": ""}})
        update_id = self.fake.push_update({"message": message})
        charge.update_ids.append(update_id)
        return update_id

    def _charge(self, checkout: Checkout, *, deliver: bool = True) -> Charge:
        charge_id = f"stxFake{checkout.user_id}C{self._id():04d}"
        charge = Charge(charge_id, checkout.user_id, checkout.payload, checkout.amount)
        self.charges[charge_id] = charge
        self._transaction(charge, "source")
        if deliver:
            self.deliver_payment(charge_id)
        return charge

    def charge_unseen(self, user_id: int, invoice: Invoice) -> Charge:
        """The user paid the invoice, but its successful_payment update never reached the bot (a crash
        after the update was fetched): only the Star transactions know of it."""
        if user_id not in self.fake.users:
            self.fake.remember_user(user_id, "Tester", "en", None, None)
        checkout = Checkout(f"pcq{user_id}x{self._id()}", user_id, invoice.payload, invoice.currency, invoice.amount)
        return self._charge(checkout, deliver=False)

    def refund_outside(self, charge_id: str) -> int:
        """The charge refunded without the bot asking (e.g. by Telegram): the refunded_payment update."""
        charge = self.charges[charge_id]
        self._refund(charge)
        return self._notify_refund(charge)

    def refund_unseen(self, charge_id: str) -> None:
        """Refunded without the bot asking, and the refunded_payment update never reached the bot."""
        self._refund(self.charges[charge_id])

    def _refund(self, charge: Charge) -> None:
        charge.refunded = True
        self._transaction(charge, "receiver")

    def _transaction(self, charge: Charge, side: str) -> None:
        """`side`: "source" for the user's payment (incoming), "receiver" for its refund (outgoing)."""
        partner: dict[str, Any] = {"type": "user", "transaction_type": "invoice_payment",
                                   "user": self.fake.users[charge.user_id]}
        if side == "source":
            partner["invoice_payload"] = charge.payload
        self.transactions.append({"id": charge.charge_id, "amount": charge.amount, "date": int(time.time()),
                                  side: partner})

    def _notify_refund(self, charge: Charge) -> int:
        message = self.fake.new_message(charge.user_id, self.fake.users[charge.user_id], {"refunded_payment": {
            "currency": "XTR", "total_amount": charge.amount, "invoice_payload": charge.payload,
            "telegram_payment_charge_id": charge.charge_id}})
        charge.refund_update_id = self.fake.push_update({"message": message})
        return charge.refund_update_id


def _stars(fake: FakeTelegram) -> StarPayments:
    return fake.stars


@api("sendInvoice")
async def send_invoice(fake: FakeTelegram, p: Params) -> Any:
    chat_id = chat_id_of(fake, p)
    title, description = p.get_str("title") or "", p.get_str("description") or ""
    payload, currency = p.get_str("payload") or "", p.get_str("currency") or ""
    prices = p.get_json("prices")
    if not 1 <= len(title) <= 32:
        raise bad_request("INVOICE_TITLE_INVALID" if title else "title is empty")
    if not 1 <= len(description) <= 255:
        raise bad_request("INVOICE_DESCRIPTION_INVALID" if description else "description is empty")
    if not 1 <= len(payload.encode()) <= 128:
        raise bad_request("INVOICE_PAYLOAD_INVALID")
    if currency != "XTR":
        raise bad_request("CURRENCY_INVALID")  # the fake knows Telegram Stars only
    if p.get_str("provider_token"):
        raise bad_request("PAYMENT_PROVIDER_INVALID")  # Stars take no payment provider
    if not isinstance(prices, list) or len(prices) != 1 or int(prices[0].get("amount", 0)) < 1:
        raise bad_request("STARS_INVOICE_INVALID")  # one price, a positive number of Stars
    amount = int(prices[0]["amount"])
    invoice = {"title": title, "description": description, "start_parameter": "", "currency": currency,
               "total_amount": amount}
    message = record_sent(fake, chat_id, "sendInvoice", {"invoice": invoice}, p, None, media_kind="invoice")
    _stars(fake).invoices.append(Invoice(chat_id, message["message_id"], title, description, payload, currency,
                                         amount, p.raw.get("provider_token")))
    return message


@api("answerPreCheckoutQuery")
async def answer_pre_checkout_query(fake: FakeTelegram, p: Params) -> Any:
    stars = _stars(fake)
    checkout = stars.checkouts.get(p.get_str("pre_checkout_query_id") or "")
    if checkout is None or checkout.answer is not None:
        raise bad_request("QUERY_ID_INVALID")
    ok, error = p.get_bool("ok"), p.get_str("error_message")
    if not ok and not error:
        raise bad_request("ERROR_MESSAGE_EMPTY")  # a refusal must tell the user why
    checkout.answer = {"ok": ok, "error_message": error}
    if ok:
        checkout.charge = stars._charge(checkout)
    return True


@api("refundStarPayment")
async def refund_star_payment(fake: FakeTelegram, p: Params) -> Any:
    stars = _stars(fake)
    charge = stars.charges.get(p.get_str("telegram_payment_charge_id") or "")
    if charge is None or charge.user_id != p.get_int("user_id"):
        raise bad_request("CHARGE_ID_INVALID")
    if stars.refund_refusals:
        raise bad_request(stars.refund_refusals.pop(0))
    if charge.refunded:
        raise bad_request("CHARGE_ALREADY_REFUNDED")
    stars._refund(charge)
    if stars.notify_refunds:
        stars._notify_refund(charge)
    return True


@api("getStarTransactions")
async def get_star_transactions(fake: FakeTelegram, p: Params) -> Any:
    offset, limit = p.get_int("offset", 0) or 0, p.get_int("limit", 100) or 100
    if offset < 0:
        raise bad_request("offset must be non-negative")
    if not 1 <= limit <= 100:
        raise bad_request("limit must be between 1 and 100")
    _stars(fake).reads.append((offset, limit))
    return {"transactions": _stars(fake).transactions[offset:offset + limit]}
