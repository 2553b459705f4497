"""Report formatting: money from micro-USD, monospaced tables that stay aligned and escaped, and the
admin reports as HTML that Telegram's parser (the fake's tdlib rules) accepts."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from bot.i18n import Translate
from bot.services.reports import (
    display_width,
    fit,
    moment,
    pct,
    pre_table,
    providers_blocks,
    split_blocks,
    stats_blocks,
    usd,
)
from db.repo.stats_types import ProviderStats, RequestTotals
from providers.health import CategoryHealth, CircuitState
from providers.manager import ProviderHealth
from providers.types import Category
from tests.fakes.telegram_state import parse_html

EN = Translate("en")
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def test_usd_examples() -> None:
    assert usd(0) == "$0"
    assert usd(1_500_000) == "$1.50"
    assert usd(1_234_567_890) == "$1,234.57"
    assert usd(42_000) == "$0.0420"
    assert usd(150) == "$0.000150"
    assert usd(-2_000_000) == "-$2.00"
    assert usd(None) == "—"


@given(st.integers(min_value=-10**13, max_value=10**13))
def test_usd_is_the_amount_to_the_shown_precision(micros: int) -> None:
    text = usd(micros)
    shown = Decimal(text.replace("$", "").replace(",", "")) * 1_000_000
    digits = len(text.split(".")[1]) if "." in text else 6
    assert abs(shown - micros) <= Decimal(10) ** (6 - digits) / 2


def test_pct_keeps_a_near_miss_visible() -> None:
    assert (pct(None), pct(1.0), pct(0.0), pct(0.5)) == ("—", "100%", "0%", "50%")
    assert pct(0.995) == "99.5%"  # not rounded up to a perfect score
    assert pct(0.004) == "0.4%"


def test_moment_in_the_admins_zone() -> None:
    assert moment(NOW + timedelta(minutes=42), BERLIN, NOW) == "13:42 (in 42m)"
    assert moment(NOW + timedelta(days=1, hours=3), BERLIN, NOW) == "2026-03-11 16:00 (in 27.0h)"
    assert moment(None, BERLIN, NOW) == "—"


def test_fit_counts_wide_characters_as_two_cells() -> None:
    assert fit("openai", 10) == "openai"
    assert fit("very-long-provider-name", 8) == "very-lo…"
    cut = fit("日本語のプロバイダ", 7)
    assert display_width(cut) <= 7 and cut.endswith("…")


cells = st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc", "Zl", "Zp"]) | st.sampled_from("\n&<>"),
                min_size=1, max_size=20)


@given(st.lists(st.tuples(cells, cells, cells), min_size=1, max_size=8))
def test_tables_are_aligned_escaped_and_accepted_by_telegram(rows: list[tuple[str, str, str]]) -> None:
    table = pre_table(["name", "a", "b"], [list(r) for r in rows])
    assert table.startswith("<pre>") and table.endswith("</pre>")
    plain, _entities = parse_html(table)  # raises like Telegram on bad HTML
    inner = html.unescape(table[5:-6])
    assert plain == inner
    lines = inner.split("\n")
    assert len(lines) == len(rows) + 2
    assert len({display_width(line) for line in lines}) == 1  # every line as wide as the rule under the header


def test_split_blocks_never_cuts_a_block_and_respects_the_limit() -> None:
    blocks = [f"<b>part {n}</b> " + "x" * 300 for n in range(30)]
    messages = split_blocks(blocks, limit=1000)
    assert all(len(m) <= 1000 for m in messages)
    assert "\n\n".join(messages) == "\n\n".join(blocks)
    huge = pre_table(["p", "n"], [[f"provider{n}", str(n)] for n in range(500)])
    parts = split_blocks([huge])
    assert len(parts) > 1 and all(len(p) <= 4096 and p.startswith("<pre>") and p.endswith("</pre>") for p in parts)
    for part in parts:
        parse_html(part)


def _stats(name: str, attempts: int, ok: int, cost: int, **failures: int) -> ProviderStats:
    return ProviderStats(name, None, attempts, ok, failures, ok / attempts, cost, cost // max(ok, 1),
                         120.0, 480.0, ok, 0)


def test_stats_report_escapes_names_and_shows_every_figure() -> None:
    stats = [_stats("a&b<c>", 4, 3, 60_000, rate_limited=1), _stats("beta", 2, 1, 5_000, unavailable=1)]
    totals = RequestTotals(requests=5, served=4, failed=1, fallbacks=1, cost_micros=65_000)
    text = "\n\n".join(stats_blocks(stats, totals, "<b>Stats</b>", EN))
    plain, _ = parse_html(text)
    assert "a&amp;b&lt;c&gt;" in text and "a&b<c>" in plain
    squeezed = " ".join(plain.split())
    assert "a&b<c> 4 3 1 75%" in squeezed and "beta 2 1 1 50%" in squeezed
    assert "$0.0600 $0.0200 120ms 480ms" in squeezed
    assert "rate_limited 1" in plain and "unavailable 1" in plain
    assert "Fallback rate: 25% of 4 served requests" in plain


def test_stats_report_without_data_says_so() -> None:
    text = "\n".join(stats_blocks([], RequestTotals(), "<b>Stats</b>", EN))
    assert "No requests in this period." in text


def test_providers_report_has_reasons_and_deadlines_in_local_time() -> None:
    health = [
        ProviderHealth("openai", "openai", True, None, {
            Category.TEXT: CategoryHealth(NOW + timedelta(minutes=30), "rate_limited", CircuitState.CLOSED, 0),
            Category.IMAGE: CategoryHealth(NOW + timedelta(minutes=1), "circuit_open", CircuitState.OPEN, 3)},
            0, None),
        ProviderHealth("groq", "groq", False, "no API key (set GROQ_API_KEY)", {}, 0, None),
        ProviderHealth("anthropic", "anthropic", True, None,
                       {Category.TEXT: CategoryHealth(None, None, CircuitState.CLOSED, 0)}, 250_000, 1_000_000),
    ]
    text = "\n\n".join(providers_blocks(health, EN, BERLIN, "Europe/Berlin", NOW))
    plain, _ = parse_html(text)
    assert "text: cooling down until 13:30 (in 30m), rate_limited" in plain
    assert "image: circuit open, retry at 13:01 (in 1m)" in plain
    assert "groq: disabled, no API key (set GROQ_API_KEY)" in plain
    assert re.search(r"anthropic\n\s+daily budget: \$0\.2500 of \$1\.00 spent", plain)
