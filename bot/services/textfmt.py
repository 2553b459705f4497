"""Model output -> Telegram HTML that Telegram never rejects, split into messages that fit.

The front of three modules: `bot.services.mdparse` turns Markdown-ish text into runs of plain text with
their tags (its docstring lists the Markdown subset), `bot.services.splitter` packs runs into messages
within Telegram's limit, and `bot.services.streamfmt` does both for a growing answer, formatting only its
open end on each edit. Everything here is linear in the length of the text.
"""

from __future__ import annotations

from bot.services.mdparse import BOLD, CODE, ITALIC, STRIKE, Run, Tag, _inline, _merge, escape, parse, u16len
from bot.services.splitter import TELEGRAM_LIMIT, Splitter, html_to_plain, render

__all__ = ["BOLD", "CODE", "ITALIC", "STRIKE", "TELEGRAM_LIMIT", "Run", "Tag", "_inline", "_merge", "escape",
           "html_to_plain", "parse", "plain_text", "render", "split_html", "split_runs", "to_html", "u16len"]


def plain_text(text: str) -> str:
    """What the reader sees: the text with its Markdown markup consumed."""
    return "".join(run.text for run in parse(text))


def to_html(text: str) -> str:
    """The whole text as one HTML string (no length limit)."""
    return render(parse(text))


def split_runs(runs: list[Run], limit: int = TELEGRAM_LIMIT) -> list[str]:
    splitter = Splitter(limit)
    splitter.feed(runs)
    return splitter.finish()


def split_html(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """`text` (Markdown-ish model output) as HTML messages, each at most `limit` UTF-16 units."""
    return split_runs(parse(text), limit)
