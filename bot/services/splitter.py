"""Runs -> Telegram HTML messages that fit, packed greedily and closed as soon as they are known.

A message takes whole words (maximal stretches of space or of non-space, across runs) while its HTML,
with the tags still open at its end closed, fits the limit. When the next word does not fit, the message
ends, moved back to just after its last line break if that still leaves at least half a message; one word
longer than a whole message is cut by characters. The next message reopens the tags. Lengths are UTF-16
code units of the HTML, which bounds what Telegram counts (the text after entity parsing) from above.

The length of a message's HTML only grows as characters are added to it, so its end is found by walking
its runs once to the first character that does not fit: whole runs are measured with one escape each,
and only the run where the limit falls is searched. A message closes as soon as a run past its end is
fed, and nothing after that can change it, which lets a stream keep the closed messages (`Splitter.done`)
and format only the open one again.
"""

from __future__ import annotations

import html
import re
from bisect import bisect_right

from bot.services.mdparse import Run, Tag, escape, u16len

TELEGRAM_LIMIT = 4096
_SPACES = re.compile(r"\s*")
_WORD = re.compile(r"\S*")
_TAG = re.compile(r"<[^>]*>")


def html_to_plain(fragment: str) -> str:
    """The plain text of our own HTML: the fallback when Telegram still cannot parse a part."""
    return html.unescape(_TAG.sub("", fragment))


def _glue(stack: tuple[Tag, ...], tags: tuple[Tag, ...]) -> str:
    """The HTML that closes what `stack` has and `tags` has not, then opens the rest of `tags`."""
    common = 0
    while common < min(len(stack), len(tags)) and stack[common] == tags[common]:
        common += 1
    return "".join(tag[1] for tag in reversed(stack[common:])) + "".join(tag[0] for tag in tags[common:])


def _closing(tags: tuple[Tag, ...]) -> str:
    return "".join(tag[1] for tag in reversed(tags))


def render(runs: list[Run]) -> str:
    out: list[str] = []
    stack: tuple[Tag, ...] = ()
    for run in runs:
        if run.tags != stack:  # most runs of a message differ in tags, but not all: skip the no-op
            out.append(_glue(stack, run.tags))
            stack = run.tags
        out.append(escape(run.text))
    out.append(_closing(stack))
    return "".join(out)


def _fit(text: str, room: int) -> tuple[int, int]:
    """How many leading characters of `text` fit in `room` units once escaped, and their units."""
    head = text[:max(room, 0)]  # every character takes at least one unit
    units = u16len(escape(head))
    if units <= room:
        return len(head), units
    lo, hi = 0, len(head) - 1  # escapes and surrogate pairs take more: search the longest head that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if u16len(escape(head[:mid])) <= room:
            lo = mid
        else:
            hi = mid - 1
    return lo, u16len(escape(head[:lo]))


class Splitter:
    """Messages from runs fed in order; `done` holds the closed ones, `finish()` adds the open one."""

    def __init__(self, limit: int = TELEGRAM_LIMIT) -> None:
        self.limit = limit
        self.done: list[str] = []
        self._open: list[Run] = []  # the runs of the open message

    def copy(self) -> Splitter:
        """A splitter holding the same open message and no closed ones."""
        other = Splitter(self.limit)
        other._open = list(self._open)
        return other

    def feed(self, runs: list[Run]) -> None:
        self._open += [run for run in runs if run.text]
        while (first_over := self._first_over()) is not None:
            self._close(first_over)

    def finish(self) -> list[str]:
        return [*self.done, render(self._open)] if self._open else list(self.done)

    def _first_over(self) -> tuple[int, int] | None:
        """The first character of the open message (run, offset) that does not fit; None if all fit."""
        total = 0
        stack: tuple[Tag, ...] = ()
        for index, run in enumerate(self._open):
            glue = u16len(_glue(stack, run.tags)) if run.tags != stack else 0
            room = self.limit - total - glue - u16len(_closing(run.tags))
            count, units = _fit(run.text, room)
            if count < len(run.text):
                return index, count
            total, stack = total + glue + units, run.tags
        return None

    def _close(self, first_over: tuple[int, int]) -> None:
        index, count = first_over
        runs = self._open
        flat = "".join(run.text for run in runs[:index]) + runs[index].text[:count + 1]
        over = len(flat) - 1  # the character that does not fit
        same = (_SPACES if flat[over].isspace() else _WORD).match(flat[over - 1::-1] if over else "")
        assert same is not None  # both patterns match the empty string
        end = over - same.end()  # the start of the word (or gap) holding it
        starts = [0]
        for run in runs[:index + 1]:
            starts.append(starts[-1] + len(run.text))
        if end > 0:
            end = self._after_line_break(flat, end, starts)
        else:
            end = max(over, 1)  # one word longer than a message: cut it by characters
        self.done.append(render(self._take(starts, end)))

    def _after_line_break(self, flat: str, end: int, starts: list[int]) -> int:
        newline = flat.rfind("\n", 0, end)
        if newline < 0:
            return end
        gap = _SPACES.match(flat, newline)
        assert gap is not None
        if gap.end() >= end:
            return end  # the message already ends with this line break
        head = self._head(starts, gap.end())
        if 2 * (u16len(render(head)) - u16len(_closing(head[-1].tags))) < self.limit:
            return end  # a break there would leave less than half a message
        return gap.end()

    def _head(self, starts: list[int], end: int) -> list[Run]:
        """The runs of the first `end` characters of the open message."""
        index = bisect_right(starts, end) - 1
        head = self._open[:index]
        if end > starts[index]:
            head.append(Run(self._open[index].text[:end - starts[index]], self._open[index].tags))
        return head

    def _take(self, starts: list[int], end: int) -> list[Run]:
        """Remove the first `end` characters from the open message and return their runs."""
        head = self._head(starts, end)
        index = bisect_right(starts, end) - 1
        rest = self._open[index:]
        if end > starts[index]:
            rest[0] = Run(rest[0].text[end - starts[index]:], rest[0].tags)
        self._open = [run for run in rest[:1] if run.text] + rest[1:]
        return head
