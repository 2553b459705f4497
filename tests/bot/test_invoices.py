"""Invoice payloads and CREDIT_PACKS: a payload reads back as signed, any change to it is refused, a key
comes from PAYMENT_SECRET or else the bot token; the pre-checkout rules; packs parse strictly."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.services.invoices import Invoice, InvoiceSigner, checkout_problem, paid_as_invoiced
from bot.settings import CreditPack, Settings

SIGNER = InvoiceSigner(b"k" * 32)
PACK = CreditPack(100, 50)


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@given(credits=st.integers(1, 999_999_999), stars=st.integers(1, 999_999_999), user=st.integers(1, 2**63 - 1))
def test_a_signed_payload_reads_back_and_fits_telegrams_128_bytes(credits: int, stars: int, user: int) -> None:
    payload = SIGNER.sign(CreditPack(credits, stars), user)
    assert len(payload.encode()) <= 128
    assert SIGNER.read(payload) == Invoice(CreditPack(credits, stars), user)


@given(position=st.integers(0, 200), char=st.characters(codec="ascii"))
def test_any_change_to_a_payload_is_refused(position: int, char: str) -> None:
    payload = SIGNER.sign(PACK, 2002)
    index = position % len(payload)
    changed = payload[:index] + char + payload[index + 1:]
    assert SIGNER.read(changed) is None or changed == payload


def test_the_key_is_payment_secret_else_the_bot_token() -> None:
    by_token = InvoiceSigner.for_settings(settings(bot_token="123:abc")).sign(PACK, 1)
    assert InvoiceSigner.for_settings(settings(bot_token="123:abc")).read(by_token) is not None
    assert InvoiceSigner.for_settings(settings(bot_token="123:other")).read(by_token) is None
    by_secret = InvoiceSigner.for_settings(settings(bot_token="123:abc", payment_secret="s3cret")).sign(PACK, 1)
    assert by_secret != by_token
    assert InvoiceSigner.for_settings(settings(bot_token="9:new", payment_secret="s3cret")).read(by_secret)


def test_pre_checkout_rules() -> None:
    mine = Invoice(PACK, 7)
    common = {"payer_id": 7, "currency": "XTR", "total_amount": 50, "packs": (PACK,)}
    assert checkout_problem(mine, **common) is None  # type: ignore[arg-type]
    assert checkout_problem(None, **common) == "bad_payload"  # type: ignore[arg-type]
    assert checkout_problem(mine, **{**common, "payer_id": 8}) == "not_yours"  # type: ignore[arg-type]
    assert checkout_problem(mine, **{**common, "total_amount": 49}) == "wrong_amount"  # type: ignore[arg-type]
    assert checkout_problem(mine, **{**common, "currency": "USD"}) == "wrong_amount"  # type: ignore[arg-type]
    assert checkout_problem(mine, **{**common, "packs": (CreditPack(100, 60),)}) == "pack_gone"  # type: ignore[arg-type]
    assert paid_as_invoiced(mine, payer_id=7, currency="XTR", total_amount=50)  # withdrawn since: still granted
    assert not paid_as_invoiced(mine, payer_id=7, currency="XTR", total_amount=5)


def test_credit_packs_and_the_stars_rate_parse_strictly() -> None:
    parsed = settings(credit_packs=" 100:50, 550:250 ,")
    assert parsed.credit_packs == (CreditPack(100, 50), CreditPack(550, 250))
    assert settings().credit_packs == () and str(settings().stars_usd_rate) == "0.013"
    assert str(settings(stars_usd_rate="0.0125").stars_usd_rate) == "0.0125"
    for bad in ("100", "100:0", "0:5", "-1:5", "1.5:2", "100:50,100:50", "١٠٠:50", "a:b"):
        with pytest.raises(ValidationError, match="CREDIT_PACKS"):
            settings(credit_packs=bad)
    with pytest.raises(ValidationError):
        settings(stars_usd_rate="-0.01")
