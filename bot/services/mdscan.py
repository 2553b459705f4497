"""The inline Markdown constructs of one text, found in a single left-to-right pass.

This replaces one regex alternation (code | heading | link | **bold** | ~~strike~~ | *ital* | _ital_)
whose lazy bodies re-scanned the rest of the line from every opening marker: a long line of
unclosed `**`, `~~` or `[` cost O(n²) and froze the event loop on each streamed edit. Here every
"where is the closer" question is answered from a cursor that only moves forward (or a precomputed
list of closer positions), so a whole text costs O(n). The matches are exactly the regex's:
leftmost first, then the first alternative in the order above, then the shortest body.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

# where a construct can start; a heading starts at a line start followed by up to 3 blanks and a #
_START = re.compile(r"[`\[*~_]|^(?=[ \t]{0,3}#)", re.M)
_URL = re.compile(r"\((https?://[^\s()<>\"]+)\)")
_HEAD = re.compile(r"[ \t]{0,3}#{1,6}([ \t]+)")


@dataclass(frozen=True, slots=True)
class Inline:
    kind: str  # "code", "head", "link", "bold", "strike", "ital"
    start: int
    end: int
    body: str
    url: str = ""


def _word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"  # what the regex's \w means for str patterns


class _Next:
    """The next `char` at or after a position before the line end, for positions that only grow.

    A cached answer stays right until the position passes it, and a "none on this line" answer
    stays right for the rest of the line, so each character is looked at about once.
    """

    def __init__(self, text: str, char: str) -> None:
        self.text, self.char = text, char
        self.lo, self.hi, self.found = -1, -1, -1  # answer `found` holds for positions lo..min(found, hi)

    def at(self, pos: int, eol: int) -> int:
        if self.lo <= pos and eol == self.hi and (self.found == -1 or pos <= self.found):
            return self.found
        self.lo, self.hi, self.found = pos, eol, self.text.find(self.char, pos, eol)
        return self.found


class _Closers:
    """Positions of `marker` preceded by a non-space character (a valid **/~~ closer), in order."""

    def __init__(self, text: str, marker: str) -> None:
        self.spots = [m.start() for m in re.finditer(rf"(?<=\S)(?={re.escape(marker)})", text)]
        self.index = 0

    def first_from(self, pos: int) -> int:
        while self.index < len(self.spots) and self.spots[self.index] < pos:
            self.index += 1
        return self.spots[self.index] if self.index < len(self.spots) else -1


def scan(text: str, line_start: bool = True) -> Iterator[Inline]:
    """The constructs of `text`, in order, never overlapping; the text between them is literal.

    `line_start=False`: `text` continues a line, so no heading starts at its first character."""
    scanner = _Scanner(text, line_start)
    pos = 0
    while (start := _START.search(text, pos)) is not None:
        found = scanner.at(start.start())
        if found is None:
            pos = start.start() + 1
        else:
            yield found
            pos = found.end


class _Scanner:
    def __init__(self, text: str, line_start: bool = True) -> None:
        self.text, self.line_start = text, line_start
        self.eol_at = -1
        self.eol = -1
        self.backtick, self.bracket = _Next(text, "`"), _Next(text, "]")
        self.star, self.underscore = _Next(text, "*"), _Next(text, "_")
        self.bold, self.strike = _Closers(text, "**"), _Closers(text, "~~")
        self.urls: dict[int, tuple[int, str] | None] = {}

    def _line_end(self, pos: int) -> int:
        if pos > self.eol or self.eol_at < 0:
            end = self.text.find("\n", pos)
            self.eol, self.eol_at = (len(self.text) if end < 0 else end), pos
        return self.eol

    def at(self, pos: int) -> Inline | None:
        eol, ch = self._line_end(pos), self.text[pos]
        if ch == "`":
            return self._code(pos, eol)
        if ch == "[":
            return self._link(pos, eol)
        if ch == "*":
            return self._paired(pos, eol, "bold", self.bold) or self._italic(pos, eol, "*", self.star)
        if ch == "~":
            return self._paired(pos, eol, "strike", self.strike)
        if ch == "_":
            return self._italic(pos, eol, "_", self.underscore)
        return self._head(pos, eol)

    def _code(self, pos: int, eol: int) -> Inline | None:
        close = self.backtick.at(pos + 1, eol)
        if close <= pos + 1:
            return None
        return Inline("code", pos, close + 1, self.text[pos + 1:close])

    def _link(self, pos: int, eol: int) -> Inline | None:
        close = self.bracket.at(pos + 1, eol)
        if close <= pos + 1:
            return None
        if close not in self.urls:  # many `[` share one `]`: check its (url) once
            m = _URL.match(self.text, close + 1)
            self.urls[close] = (m.end(), m.group(1)) if m else None
        url = self.urls[close]
        if url is None:
            return None
        return Inline("link", pos, url[0], self.text[pos + 1:close], url[1])

    def _paired(self, pos: int, eol: int, kind: str, closers: _Closers) -> Inline | None:
        marker = self.text[pos] * 2
        text = self.text
        if not text.startswith(marker, pos) or pos + 2 >= eol or text[pos + 2].isspace():
            return None
        close = closers.first_from(pos + 3)  # the body has at least one character
        if close < 0 or close + 2 > eol:
            return None
        return Inline(kind, pos, close + 2, text[pos + 2:close])

    def _italic(self, pos: int, eol: int, mark: str, nxt: _Next) -> Inline | None:
        text = self.text
        if pos > 0 and (_word(text[pos - 1]) or text[pos - 1] == mark):
            return None
        if pos + 1 >= eol or text[pos + 1].isspace() or text[pos + 1] == mark:
            return None
        close = nxt.at(pos + 2, eol)  # the body holds no marker, so only the first one can close
        if close < 0 or text[close - 1].isspace():
            return None
        if close + 1 < len(text) and (_word(text[close + 1]) or text[close + 1] == mark):
            return None
        return Inline("ital", pos, close + 1, text[pos + 1:close])

    def _head(self, pos: int, eol: int) -> Inline | None:
        if pos == 0 and not self.line_start:
            return None
        m = _HEAD.match(self.text, pos, eol)
        if m is None:
            return None
        body_start, blanks = m.end(), m.end(1) - m.start(1)
        stripped = self.text[body_start:eol].rstrip(" \t#")  # the trailing blanks and #s are not body
        if stripped:
            body_end = body_start + len(stripped)
        elif body_start < eol:
            body_end = body_start + 1  # the body must hold a character, even a #
        elif blanks >= 2:
            body_start, body_end = body_start - 1, body_start  # "#  ": the last blank is the body
        else:
            return None
        return Inline("head", pos, eol, self.text[body_start:body_end])
