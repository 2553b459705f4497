"""Invoice payloads for credit packs, and the checks a pre-checkout query must pass.

A payload names the pack (credits and Stars) and the user it was made for, and carries an HMAC of both:
`cp1.<credits>.<stars>.<user id>.<mac>`, at most about 60 of the 128 bytes Telegram allows. The key is
PAYMENT_SECRET, else one derived from BOT_TOKEN, so every front of one bot signs and verifies alike and
nobody without the key can make a payload for a cheaper pack, another price or another payer.

At pre-checkout a payment goes through only when the payload verifies, names the user who pays, asks the
amount it names, in Stars, and its pack is still offered at that price (CREDIT_PACKS may have changed
since the invoice was sent). A failed check is a key of `buy.refused.*`, shown to the user by Telegram.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from bot.settings import CreditPack, Settings

STARS = "XTR"  # Telegram Stars: no payment provider, the provider token is empty
_VERSION = "cp1"
_MAC_BYTES = 16
_KEY_LABEL = b"credit-pack invoices"
_BODY = re.compile(rf"{_VERSION}\.([0-9]{{1,9}})\.([0-9]{{1,9}})\.([0-9]{{1,19}})")

Problem = Literal["bad_payload", "not_yours", "wrong_amount", "pack_gone"]


@dataclass(frozen=True, slots=True)
class Invoice:
    """What a verified payload says: this pack, for this user."""

    pack: CreditPack
    user_id: int


class InvoiceSigner:
    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def for_settings(cls, settings: Settings) -> InvoiceSigner:
        secret = settings.payment_secret or settings.bot_token
        return cls(hmac.new(_KEY_LABEL, secret.get_secret_value().encode(), hashlib.sha256).digest())

    def _mac(self, body: str) -> str:
        digest = hmac.new(self._key, body.encode(), hashlib.sha256).digest()[:_MAC_BYTES]
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, pack: CreditPack, user_id: int) -> str:
        body = f"{_VERSION}.{pack.credits}.{pack.stars}.{user_id}"
        return f"{body}.{self._mac(body)}"

    def read(self, payload: str) -> Invoice | None:
        """The invoice a payload names, or None when it is not one of ours or was changed."""
        body, _, mac = payload.rpartition(".")
        if not hmac.compare_digest(self._mac(body).encode(), mac.encode()):
            return None
        match = _BODY.fullmatch(body)
        if match is None:
            return None
        credits, stars, user_id = (int(group) for group in match.groups())
        return Invoice(CreditPack(credits, stars), user_id)


def checkout_problem(invoice: Invoice | None, *, payer_id: int, currency: str, total_amount: int,
                     packs: Collection[CreditPack]) -> Problem | None:
    """Why this pre-checkout query must be refused; None: it may go through."""
    if invoice is None:
        return "bad_payload"
    if invoice.user_id != payer_id:
        return "not_yours"
    if currency != STARS or total_amount != invoice.pack.stars:
        return "wrong_amount"
    if invoice.pack not in packs:
        return "pack_gone"
    return None


def paid_as_invoiced(invoice: Invoice | None, *, payer_id: int, currency: str, total_amount: int) -> bool:
    """A successful payment matches its verified invoice (the pack may have been withdrawn since: what was
    paid for is granted)."""
    return checkout_problem(invoice, payer_id=payer_id, currency=currency, total_amount=total_amount,
                            packs=() if invoice is None else (invoice.pack,)) is None
