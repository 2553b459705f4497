"""What users paid beside what the providers cost: Stars valued in USD at STARS_USD_RATE, and the margin.

Money stays exact: Stars are integers, the rate a Decimal, and the value is rounded once, half-up, to
whole micro-USD (`providers.config.round_micros`), the unit every provider cost is kept in. The margin is
net revenue (purchases minus refunds of the period) minus the provider cost the same report shows.
"""

from __future__ import annotations

from decimal import Decimal

from bot.i18n import Translate
from bot.services.reports import usd
from db.repo.revenue import Revenue
from providers.config import round_micros
from providers.types import MICROS_PER_USD


def stars_micros(stars: int, rate: Decimal) -> int:
    """`stars` Telegram Stars in whole micro-USD at `rate` USD a Star."""
    return round_micros(Decimal(stars) * rate * MICROS_PER_USD)


def revenue_text(revenue: Revenue, cost_micros: int, rate: Decimal, t: Translate) -> str:
    """Two lines: Stars received (net of refunds) and their USD value; the margin after provider cost."""
    value = stars_micros(revenue.stars_net, rate)
    return t("admin.revenue.line", stars=revenue.stars_net, usd=usd(value), rate=usd(stars_micros(1, rate)),
             purchases=revenue.purchases, refunds=revenue.refunds, stars_refunded=revenue.stars_refunded) + "\n" + \
        t("admin.revenue.margin", cost=usd(cost_micros), margin=usd(value - cost_micros))
