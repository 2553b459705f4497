"""Admin side of Telegram Stars: /refund (once, confirmed with `force` when the credits are spent, nothing
changed when Telegram refuses), /payments, and revenue beside provider spend in /stats, the digest and
/export."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bot.i18n import Translate
from db.periods import period_named
from db.repo.users import grant_credits
from tests.bot.admin_support import ADMIN, TZ, USER, Logged, admin_harness, log_requests
from tests.bot.core_harness import CoreHarness
from tests.bot.stars_support import PACKS, ledger, purchase

EN = Translate("en")


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[CoreHarness]:
    async with admin_harness(tmp_path, credit_packs=PACKS) as harness:
        await harness.say(ADMIN, "/start")
        yield harness


def payment(h: CoreHarness, charge: str) -> tuple[str, int, int]:
    [row] = h.rows("SELECT status, credits, credits_debited FROM payments WHERE charge_id = ?", charge)
    return row["status"], row["credits"], row["credits_debited"]


async def test_a_refund_returns_the_stars_takes_the_credits_back_and_happens_once(h: CoreHarness) -> None:
    charge = await purchase(h, USER)
    assert h.credits(USER) == 110
    await h.say(ADMIN, f"/refund {charge.charge_id}")
    assert h.tg.stars.charges[charge.charge_id].refunded
    assert "50 ⭐ refunded" in (h.tg.last_text(ADMIN) or "") and "100 of the 100" in (h.tg.last_text(ADMIN) or "")
    assert h.credits(USER) == 10 and payment(h, charge.charge_id) == ("refunded", 100, 100)
    assert "was refunded" in (h.tg.last_text(USER) or "")

    calls = len(h.tg.calls_of("refundStarPayment"))
    await h.say(ADMIN, f"/refund {charge.charge_id}")
    assert "was refunded on" in (h.tg.last_text(ADMIN) or "")
    assert len(h.tg.calls_of("refundStarPayment")) == calls
    assert ledger(h, USER) == [(10, "free"), (100, "purchase"), (-100, "purchase_refund")]


async def test_spent_credits_need_force_and_then_the_balance_goes_to_zero_not_below(h: CoreHarness) -> None:
    charge = await purchase(h, USER)
    async with h.live.sessions() as s, s.begin():
        await grant_credits(s, USER, -105, reason="admin_grant")  # as good as spent: 5 left
    await h.say(ADMIN, f"/refund {charge.charge_id}")
    asked = h.tg.last_text(ADMIN) or ""
    assert "5 credits left of the 100" in asked and f"/refund {charge.charge_id} force" in asked
    assert h.tg.calls_of("refundStarPayment") == [] and payment(h, charge.charge_id) == ("paid", 100, 0)

    await h.say(ADMIN, f"/refund {charge.charge_id} force")
    assert h.credits(USER) == 0 and payment(h, charge.charge_id) == ("refunded", 100, 5)
    assert "5 of the 100" in (h.tg.last_text(ADMIN) or "")
    assert sum(delta for delta, _ in ledger(h, USER)) == 0


async def test_a_refund_telegram_refuses_changes_nothing(h: CoreHarness) -> None:
    charge = await purchase(h, USER)
    h.tg.stars.refund_refusals.append("REFUND_PERIOD_EXPIRED")
    await h.say(ADMIN, f"/refund {charge.charge_id}")
    told = h.tg.last_text(ADMIN) or ""
    assert "REFUND_PERIOD_EXPIRED" in told and "Nothing changed" in told
    assert h.credits(USER) == 110 and payment(h, charge.charge_id) == ("paid", 100, 0)
    assert ledger(h, USER) == [(10, "free"), (100, "purchase")]


async def test_a_refund_telegram_made_already_is_recorded_now(h: CoreHarness) -> None:
    charge = await purchase(h, USER)
    h.tg.stars.charges[charge.charge_id].refunded = True  # refunded, then the bot died before recording it
    await h.say(ADMIN, f"/refund {charge.charge_id}")
    assert "already" in (h.tg.last_text(ADMIN) or "") and payment(h, charge.charge_id) == ("refunded", 100, 100)
    assert h.credits(USER) == 10


async def test_telegrams_refund_notice_is_recorded_once_beside_refund(h: CoreHarness) -> None:
    first, second = await purchase(h, USER), await purchase(h, USER, button=1)
    assert h.credits(USER) == 660
    h.tg.stars.notify_refunds = True
    await h.say(ADMIN, f"/refund {first.charge_id}")
    assert first.refund_update_id is not None
    await h.feed(first.refund_update_id)  # Telegram's own notice of the refund /refund made
    assert h.credits(USER) == 560

    await h.feed(h.tg.stars.refund_outside(second.charge_id))  # refunded without /refund
    assert h.credits(USER) == 10 and payment(h, second.charge_id) == ("refunded", 550, 550)
    assert "550 credits were taken back" in (h.tg.last_text(USER) or "")
    assert [r for r in ledger(h, USER) if r[1] == "purchase_refund"] == [(-100, "purchase_refund"),
                                                                         (-550, "purchase_refund")]


async def test_refund_usage_and_an_unknown_charge(h: CoreHarness) -> None:
    await h.say(ADMIN, "/refund")
    assert "Usage" in (h.tg.last_text(ADMIN) or "")
    await h.say(ADMIN, "/refund some-charge please")
    assert "Usage" in (h.tg.last_text(ADMIN) or "")
    await h.say(ADMIN, "/refund no-such-charge")
    assert "No payment has the charge id no-such-charge" in (h.tg.last_text(ADMIN) or "")


async def test_payments_stats_digest_and_export_show_revenue_beside_provider_cost(h: CoreHarness) -> None:
    bought, refunded = await purchase(h, USER, button=1), await purchase(h, USER)
    await log_requests(h.live.sessions, period_named("today", TZ).start + timedelta(minutes=1),
                       [Logged(USER, "text", [("alpha", None, 123, 1_000_000)])])  # $1.00 of provider cost
    await h.say(ADMIN, f"/refund {refunded.charge_id}")
    # 300 Stars paid, 50 refunded: 250 net, $3.25 at $0.013; margin $3.25 - $1.00
    revenue = "Revenue: 250 ⭐ ≈ $3.25 at $0.0130 a Star (2 bought, 1 refunded: 50 ⭐)."
    margin = "Margin, revenue minus provider cost $1.00: $2.25."

    await h.say(ADMIN, "/payments")
    listing = h.tg.last_text(ADMIN) or ""
    assert revenue in listing and margin in listing
    assert bought.charge_id in listing and refunded.charge_id in listing and "−100 credits" in listing

    await h.say(ADMIN, "/stats")
    assert revenue in (h.tg.last_text(ADMIN) or "") and margin in (h.tg.last_text(ADMIN) or "")
    await h.say(ADMIN, "/digest today")
    [photo] = h.tg.media(ADMIN, "photo")[-1:]
    assert revenue in photo.plain and margin in photo.plain

    await h.say(ADMIN, "/export")
    requests_csv, payments_csv = h.tg.media(ADMIN, "document")[-2:]
    assert requests_csv.file is not None and requests_csv.file.filename.startswith("requests-")
    assert payments_csv.file is not None and revenue in payments_csv.plain
    rows = list(csv.DictReader(io.StringIO(payments_csv.file.data.decode("utf-8-sig"))))
    assert [(r["kind"], r["credits"], r["stars"], r["usd"]) for r in rows] == [
        ("purchase", "550", "250", "3.250000"), ("purchase", "100", "50", "0.650000"),
        ("refund", "-100", "-50", "-0.650000")]


async def test_payments_in_a_quiet_period_says_so(h: CoreHarness) -> None:
    await h.say(ADMIN, "/payments yesterday")
    assert EN("admin.payments.none") in (h.tg.last_text(ADMIN) or "")


async def test_payments_says_how_many_events_it_did_not_list(h: CoreHarness,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bot.handlers.admin_payments.SHOWN_EVENTS", 1)
    await purchase(h, USER, button=1)
    refunded = await purchase(h, USER)
    await h.say(ADMIN, f"/refund {refunded.charge_id}")
    await h.say(ADMIN, "/payments")  # two purchases and a refund: one listed, two more
    assert EN("admin.payments.more", n=2) in (h.tg.last_text(ADMIN) or "")
