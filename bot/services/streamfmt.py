"""The messages of a streamed answer, re-formatting only its open end on each edit.

Each edit of a streamed answer used to convert the whole text so far, so a long answer cost more at
every edit. Here the text that later deltas cannot change is parsed once (`mdparse.advance`) and fed to
a `Splitter`, whose closed messages are final: they are kept as HTML and never formatted again. Each call
formats only the rest: the open message (under one message of text) and the unparsed end of the text
(under a few thousand characters, see `mdparse`), so its cost does not grow with the answer.

The result is exactly the one-shot `split_html` of the same text, less the parts without visible text.
"""

from __future__ import annotations

from bot.services.mdparse import Cursor, advance
from bot.services.splitter import TELEGRAM_LIMIT, Splitter, html_to_plain


def visible(parts: list[str]) -> list[str]:
    """The parts that show some text: Telegram refuses an empty message."""
    return [part for part in parts if html_to_plain(part).strip()]


class StreamLayout:
    """`parts(text)` for a text that grows between calls; a text that does not extend the last one
    starts over (correct, only not incremental)."""

    def __init__(self, limit: int = TELEGRAM_LIMIT) -> None:
        self.limit = limit
        self._start()

    def _start(self) -> None:
        self._seen = ""
        self._cursor = Cursor()
        self._splitter = Splitter(self.limit)
        self._frozen: list[str] = []
        self.converted = 0  # characters handed to the Markdown parser by the last call

    @property
    def frozen(self) -> int:
        """How many leading parts are final: later calls return them unchanged."""
        return len(self._frozen)

    def parts(self, text: str) -> list[str]:
        if not text.startswith(self._seen):
            self._start()
        self._seen = text
        before = self._cursor.pos
        settled, self._cursor = advance(text, self._cursor, final=False)
        self._splitter.feed(settled)
        self._frozen += visible(self._splitter.done)
        self._splitter.done.clear()
        tail = self._splitter.copy()
        rest, _ = advance(text, self._cursor, final=True)
        tail.feed(rest)
        self.converted = len(text) - before
        return [*self._frozen, *visible(tail.finish())]
