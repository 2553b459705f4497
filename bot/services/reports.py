"""Admin reports as Telegram HTML: money, rates and times for people, and monospaced <pre> tables.

Tables are laid out on the raw text (padding counts what a monospaced font shows: wide East Asian
characters take two cells) and escaped afterwards, so `&` or `<` in a provider or user name never shifts a
column and never breaks Telegram's HTML parser. Figures come from `db.repo.stats`; wording from the
locale files (`admin.*` keys).
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import ROUND_HALF_UP, Decimal

from bot.i18n import Translate
from bot.services.textfmt import u16len
from db.periods import Period
from db.repo.stats_types import ProviderStats, RequestTotals, UserUsage
from db.repo.users import UserView
from providers.manager import ProviderHealth
from providers.types import MICROS_PER_USD

TELEGRAM_LIMIT = 4096
CAPTION_LIMIT = 1024
DASH = "—"


# --- figures --------------------------------------------------------------------------------

def usd(micros: int | None) -> str:
    """Integer micro-USD as dollars: cents once it is a dollar or more, more digits below that."""
    if micros is None:
        return DASH
    amount = Decimal(micros) / MICROS_PER_USD
    size = abs(amount)
    if size == 0:
        return "$0"
    places = 2 if size >= 1 else 4 if size >= Decimal("0.01") else 6
    text = f"{abs(amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)):,.{places}f}"
    return ("-$" if amount < 0 else "$") + text


def pct(rate: float | None) -> str:
    """A 0..1 share as a percentage; one decimal only where rounding would hide a failure (99.6%)."""
    if rate is None:
        return DASH
    value = rate * 100
    if 99 < value < 100 or 0 < value < 1:
        return f"{value:.1f}%"
    return f"{value:.0f}%"


def duration_ms(value: float | None) -> str:
    if value is None:
        return DASH
    if value < 1000:
        return f"{value:.0f}ms"
    if value < 60_000:
        return f"{value / 1000:.1f}s"
    return f"{value / 60_000:.1f}m"


def moment(when: datetime | None, tz: tzinfo, now: datetime | None = None) -> str:
    """A deadline in the admin's time zone: `14:05 (in 42m)`, with the date when it is not today."""
    if when is None:
        return DASH
    now = now or datetime.now(UTC)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    local, local_now = when.astimezone(tz), now.astimezone(tz)
    stamp = local.strftime("%H:%M") if local.date() == local_now.date() else local.strftime("%Y-%m-%d %H:%M")
    seconds = (when - now).total_seconds()
    if seconds <= 0:
        return stamp
    left = f"{seconds / 60:.0f}m" if seconds < 3600 else f"{seconds / 3600:.1f}h"
    return f"{stamp} (in {left})"


# --- monospaced tables ------------------------------------------------------------------------

def display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 0 if unicodedata.combining(ch) else 1
               for ch in text)


def fit(text: str, width: int) -> str:
    """`text` cut to at most `width` display cells, with an ellipsis when something was cut."""
    if display_width(text) <= width:
        return text
    out, used = [], 0
    for ch in text:
        w = display_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def _pad(text: str, width: int, right: bool) -> str:
    gap = " " * max(0, width - display_width(text))
    return gap + text if right else text + gap


def _one_line(value: object) -> str:
    return str(value).replace("\r", " ").replace("\n", " ")


def pre_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, numeric_from: int = 1,
              max_first: int = 14) -> str:
    """A <pre> table: the first column left-aligned (cut to `max_first` cells), the others right-aligned."""
    cells = [[fit(_one_line(r[0]), max_first), *map(_one_line, r[1:])] for r in [header, *rows]]
    widths = [max(display_width(row[i]) for row in cells) for i in range(len(header))]
    lines = [" ".join(_pad(cell, widths[i], i >= numeric_from) for i, cell in enumerate(row)) for row in cells]
    lines.insert(1, "-" * sum(widths) + "-" * (len(widths) - 1))
    return "<pre>" + html.escape("\n".join(lines), quote=False) + "</pre>"


def esc(text: object) -> str:
    return html.escape(str(text), quote=False)


def split_blocks(blocks: Sequence[str], limit: int = TELEGRAM_LIMIT) -> list[str]:
    """Join blocks (paragraphs or whole tables) into messages under `limit`, never cutting one open.

    A single block over the limit can only come from a table with hundreds of rows; it is cut between
    its lines, each part closed and reopened as <pre>.
    """
    messages: list[str] = []
    current = ""
    for block in (b for piece in blocks for b in _cut_block(piece, limit)):
        candidate = f"{current}\n\n{block}" if current else block
        if u16len(candidate) <= limit:  # Telegram counts UTF-16 units: an emoji in a name is two
            current = candidate
            continue
        messages.append(current)
        current = block
    if current:
        messages.append(current)
    return messages


def _cut_block(block: str, limit: int) -> list[str]:
    if u16len(block) <= limit:
        return [block]
    is_pre = block.startswith("<pre>") and block.endswith("</pre>")
    body = block[5:-6] if is_pre else block
    wrap = 11 if is_pre else 0
    parts: list[str] = []
    current = ""
    for line in body.split("\n"):
        line = line[: limit - wrap]  # a lone over-long line is cut; not produced by our own tables
        candidate = f"{current}\n{line}" if current else line
        if u16len(candidate) + wrap > limit:
            parts.append(current)
            candidate = line
        current = candidate
    parts.append(current)
    return [f"<pre>{p}</pre>" if is_pre else p for p in parts if p]


# --- admin reports --------------------------------------------------------------------------

def period_text(period: Period, t: Translate, tz: tzinfo) -> str:
    """`yesterday (2026-11-21)` or `last 7 days (2026-11-15 – 2026-11-21)`, dates in the bot's zone."""
    first = period.start.astimezone(tz).date()
    last = (period.end - timedelta(microseconds=1)).astimezone(tz).date()
    span = first.isoformat() if last <= first else f"{first.isoformat()} – {last.isoformat()}"
    name = t(f"admin.period.{period.name}") if period.name else ""
    return f"{esc(name)} ({span})" if name else span


def user_name(tg_id: int, username: str | None, first_name: str | None) -> str:
    return f"@{username}" if username else first_name or str(tg_id)


def stats_blocks(stats: Sequence[ProviderStats], totals: RequestTotals, heading: str, t: Translate) -> list[str]:
    """/stats: reliability and money tables per provider, failures by kind, fallback rate."""
    blocks = [heading]
    if not stats:
        return [*blocks, t("admin.no_data")]
    blocks.append(t("admin.stats.reliability") + "\n" + pre_table(
        [t("admin.col.provider"), t("admin.col.requests"), t("admin.col.ok"), t("admin.col.failed"),
         t("admin.col.rate")],
        [[s.provider, str(s.attempts), str(s.successes), str(s.failed), pct(s.success_rate)] for s in stats]))
    blocks.append(t("admin.stats.money") + "\n" + pre_table(
        [t("admin.col.provider"), t("admin.col.spend"), t("admin.col.avg_cost"), t("admin.col.avg_latency"),
         t("admin.col.p95")],
        [[s.provider, usd(s.cost_micros), usd(s.avg_cost_micros) if s.successes else DASH,
          duration_ms(s.avg_latency_ms), duration_ms(s.p95_latency_ms)] for s in stats]))
    failing = [s for s in stats if s.failures]
    if failing:
        lines = [f"• <b>{esc(s.provider)}</b>: " + ", ".join(
            f"{esc(kind)} {count}" for kind, count in sorted(s.failures.items(), key=lambda kv: -kv[1]))
            for s in failing]
        blocks.append(t("admin.stats.failures") + "\n" + "\n".join(lines))
    blocks.append(t("admin.stats.total", spend=usd(sum(s.cost_micros for s in stats)),
                    requests=sum(s.attempts for s in stats)) + "\n" +
                  t("admin.stats.fallback", rate=pct(totals.fallback_rate if totals.served else None),
                    served=totals.served, fallbacks=totals.fallbacks) + "\n" +
                  t("admin.stats.refused", refused=totals.refused))
    return blocks


def cost_blocks(ranked: Sequence[ProviderStats], heading: str, t: Translate) -> list[str]:
    """/cost: providers that served anything, cheapest per result first."""
    if not ranked:
        return [heading, t("admin.no_data")]
    return [heading, pre_table(
        [t("admin.col.provider"), t("admin.col.avg_cost"), t("admin.col.rate"), t("admin.col.ok"),
         t("admin.col.spend")],
        [[s.provider, usd(s.avg_cost_micros), pct(s.success_rate), str(s.successes), usd(s.cost_micros)]
         for s in ranked])]


def recommended_blocks(pick: ProviderStats | None, ranked: Sequence[ProviderStats], heading: str,
                       period: str, min_attempts: int, t: Translate) -> list[str]:
    if pick is None:
        return [heading, t("admin.recommended.none", min_attempts=min_attempts, period=period)]
    blocks = [heading, t("admin.recommended.pick", provider=esc(pick.provider), avg=usd(pick.avg_cost_micros),
                         rate=pct(pick.success_rate), attempts=pick.attempts)]
    others = [s for s in ranked if s.provider != pick.provider and s.success_rate > 0.8 and s.attempts >= min_attempts]
    if others:
        blocks.append(t("admin.recommended.others") + "\n" + pre_table(
            [t("admin.col.provider"), t("admin.col.avg_cost"), t("admin.col.rate"), t("admin.col.requests")],
            [[s.provider, usd(s.avg_cost_micros), pct(s.success_rate), str(s.attempts)] for s in others]))
    return blocks


def providers_blocks(health: Sequence[ProviderHealth], t: Translate, tz: tzinfo, tz_name: str,
                     now: datetime | None = None) -> list[str]:
    """/providers: enabled or disabled and why, cooldowns and open circuits with their deadlines."""
    blocks = [t("admin.providers.title", tz=esc(tz_name))]
    for item in health:
        if not item.enabled:
            blocks.append(t("admin.providers.disabled", name=esc(item.name), reason=esc(item.disabled_reason or "")))
            continue
        lines = [t("admin.providers.enabled", name=esc(item.name))]
        for category, state in item.categories.items():
            until = moment(state.cooldown_until, tz, now)
            if state.circuit != "closed":
                lines.append(t("admin.providers.circuit", category=esc(category), state=esc(state.circuit),
                               until=until))
            elif state.cooldown_until is not None:
                lines.append(t("admin.providers.cooldown", category=esc(category), until=until,
                               reason=esc(state.reason or "")))
        if item.daily_budget_micros:
            lines.append(t("admin.providers.budget", spent=usd(item.spent_today_micros),
                           budget=usd(item.daily_budget_micros)))
        if len(lines) == 1:
            lines.append(t("admin.providers.healthy"))
        blocks.append("\n  ".join(lines))
    return blocks


def user_card(view: UserView, usage: UserUsage | None, t: Translate, tz: tzinfo) -> str:
    name = " ".join(p for p in (view.first_name, view.last_name) if p) or user_name(view.tg_id, view.username, None)
    if view.username:
        name = f"{name} (@{view.username})"
    u = usage or UserUsage(view.tg_id, view.credits, 0, 0, 0, 0, 0, 0)
    return t("admin.user.card", name=esc(name), id=view.tg_id,
             admin=t("admin.user.admin_mark") if view.is_admin else "", language=esc(view.language or DASH),
             joined=view.created_at.astimezone(tz).strftime("%Y-%m-%d"),
             seen=view.last_seen_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"), credits=u.credits_left,
             today_requests=u.requests_today, today_credits=u.credits_today, today_spend=usd(u.cost_today_micros),
             month_requests=u.requests_month, month_credits=u.credits_month,
             month_spend=usd(u.cost_month_micros))
