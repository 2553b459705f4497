"""Markdown-ish model output -> runs of text with their HTML tags, in chunks that a stream resumes from.

A safe subset of Markdown becomes tags (```lang fences -> <pre><code class="language-lang">, `code` ->
<code>, **bold** / # heading -> <b>, *italic* / _italic_ -> <i>, ~~strike~~ -> <s>,
[text](http...) -> <a>); everything else is literal text. Markup that is not closed stays literal,
except an open ``` fence, which runs to the end (so a half-streamed code block already looks right).

The text is parsed chunk by chunk: a fenced block's body is never parsed, and the text between fences is
cut at a line start once a chunk holds MIN_CHUNK characters. Inline markup never spans a line, so such a
cut changes nothing. A line that runs on past LONG_LINE characters is cut at a space that no markup found
within the next LONG_LINE characters spans (at 2 * LONG_LINE characters when there is none): markup
spanning more than that on one line stays literal. The cuts depend on the text alone, so parsing a
growing text chunk by chunk, each chunk once later text can no longer change it (`advance`), gives
exactly the runs of parsing the whole text at once, for a bounded cost per chunk.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from bot.services.mdscan import scan

Tag = tuple[str, str]  # (opening html, closing html)
BOLD: Tag = ("<b>", "</b>")
ITALIC: Tag = ("<i>", "</i>")
STRIKE: Tag = ("<s>", "</s>")
CODE: Tag = ("<code>", "</code>")

MIN_CHUNK = 1024
LONG_LINE = 2048


@dataclass(frozen=True, slots=True)
class Run:
    text: str
    tags: tuple[Tag, ...] = ()


def u16len(text: str) -> int:
    if text.isascii():  # the common case, without building an encoded copy
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def escape(text: str) -> str:
    return html.escape(text, quote=False)


# --- inline markup -------------------------------------------------------------------------

_TAGS = {"bold": BOLD, "strike": STRIKE, "ital": ITALIC}


def _inline(text: str, tags: tuple[Tag, ...], line_start: bool = True) -> list[Run]:
    runs: list[Run] = []
    pos = 0
    for m in scan(text, line_start):
        if m.start > pos:
            runs.append(Run(text[pos:m.start], tags))
        if m.kind == "code":
            runs.append(Run(m.body, (CODE,)))  # Telegram: code contains and joins no entity
        elif m.kind == "head":  # "# # x" is a heading in a heading: one <b>, or the tags outgrow a message
            runs += _inline(m.body, tags if BOLD in tags else (*tags, BOLD))
        elif m.kind == "link":
            href = html.escape(m.url, quote=True)
            runs += _inline(m.body, (*tags, (f'<a href="{href}">', "</a>")))
        else:
            tag = _TAGS[m.kind]
            inner = tags if tag in tags else (*tags, tag)  # **a **b** c**: never nest a tag in itself
            runs += _inline(m.body, inner)
        pos = m.end
    if pos < len(text):
        runs.append(Run(text[pos:], tags))
    return runs


def _merge(runs: list[Run]) -> list[Run]:
    # neighbours with the same tags are joined once at the end: += in a loop would be quadratic
    out: list[Run] = []
    texts: list[str] = []
    for run in runs:
        if not run.text:
            continue
        if out and out[-1].tags == run.tags:
            texts.append(run.text)
            continue
        if len(texts) > 1:
            out[-1] = Run("".join(texts), out[-1].tags)
        out.append(run)
        texts = [run.text]
    if len(texts) > 1:
        out[-1] = Run("".join(texts), out[-1].tags)
    return out


# --- chunks --------------------------------------------------------------------------------

_FENCE = "```"
_LANG = re.compile(r"([\w#+.-]*)[^\S\n]*")  # a fence's language line, before its newline
_CLOSER = re.compile(r"\n?```")
_SPACE = re.compile(r"\s")


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where parsing resumes: a position, and the code block open there (None: ordinary text)."""

    pos: int = 0
    fence: Tag | None = None
    line_start: bool = True  # a heading may start at pos


def advance(text: str, cursor: Cursor, final: bool) -> tuple[list[Run], Cursor]:
    """The runs of `text` from `cursor` on, and where to resume.

    `final`: the text ends here, so all of it is parsed. Otherwise parsing stops where more text could
    still change what comes before (an unfinished chunk, a fence's first line, a possible closing ```)."""
    runs: list[Run] = []
    more = True
    while more:
        if cursor.fence is None:
            cursor, more = _text(text, cursor, final, runs)
        else:
            cursor, more = _fence_body(text, cursor, final, runs)
    return runs, cursor


def _text(text: str, cur: Cursor, final: bool, runs: list[Run]) -> tuple[Cursor, bool]:
    fence = text.find(_FENCE, cur.pos)
    complete = fence >= 0 or final  # the chunk cannot grow past `limit` any more
    limit = fence if fence >= 0 else len(text) if final else len(text) - 2  # a ``` may start in the last 2
    cut = _next_cut(text, cur.pos, limit, complete, cur.line_start) if limit > cur.pos else None
    if cut is None:
        if not complete:
            return cur, False
        cut = max(limit, cur.pos)
    if cut > cur.pos:
        runs += _inline(text[cur.pos:cut], (), cur.line_start)
    if cut == fence:
        opened = _open_fence(text, fence, final)
        if opened is None:
            return Cursor(cut), False
        return Cursor(opened[0], opened[1]), True
    if cut >= len(text):
        return Cursor(cut, None, text[cut - 1:cut] in ("", "\n")), False
    return Cursor(cut, None, text[cut - 1] == "\n"), True


def _next_cut(text: str, pos: int, limit: int, complete: bool, line_start: bool) -> int | None:
    """Where the chunk starting at `pos` ends (at most `limit`), or None if the text cannot tell yet."""
    newline = text.find("\n", pos + MIN_CHUNK - 1, min(limit, pos + LONG_LINE - 1))
    if newline >= 0:
        return newline + 1
    far = pos + 2 * LONG_LINE
    if limit < far and not complete:
        return None
    return _long_line_cut(text[pos:min(limit, far)], line_start, pos)


def _long_line_cut(window: str, line_start: bool, offset: int) -> int | None:
    # a space at LONG_LINE or later that no markup found in the window spans
    at = LONG_LINE - 1
    for m in scan(window, line_start):
        if m.end <= at:
            continue
        space = _SPACE.search(window, at, m.start)
        if space:
            return offset + space.end()
        at = max(at, m.end)
    space = _SPACE.search(window, at)
    if space:
        return offset + space.end()
    return offset + len(window) if len(window) == 2 * LONG_LINE else None


def _open_fence(text: str, start: int, final: bool) -> tuple[int, Tag] | None:
    """Where the body of the fence at `start` begins, and its tag; None until its first line is known."""
    lang = _LANG.match(text, start + 3)
    assert lang is not None  # the pattern matches the empty string
    if lang.end() < len(text) and text[lang.end()] == "\n":
        name, body = lang.group(1), lang.end() + 1
    elif lang.end() < len(text) or final:
        name, body = "", start + 3  # no language line: the body starts right after the ```
    else:
        return None
    opening = f'<pre><code class="language-{escape(name)}">' if name else "<pre><code>"
    return body, (opening, "</code></pre>")


def _fence_body(text: str, cur: Cursor, final: bool, runs: list[Run]) -> tuple[Cursor, bool]:
    assert cur.fence is not None
    closer = _CLOSER.search(text, cur.pos)
    if closer is not None:
        end, after, more = closer.start(), Cursor(closer.end()), True
    else:
        # unclosed: it runs to the end, but the last 3 characters may yet become "\n```"
        end = len(text) if final else max(cur.pos, len(text) - 3)
        after, more = Cursor(end, cur.fence), False
    if end > cur.pos:
        runs.append(Run(text[cur.pos:end], (cur.fence,)))
    return after, more


def parse(text: str) -> list[Run]:
    """The text as runs of plain text, each with the formatting tags around it."""
    return _merge(advance(text, Cursor(), final=True)[0])
