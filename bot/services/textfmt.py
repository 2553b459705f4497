"""Model output -> Telegram HTML that Telegram never rejects, split into messages that fit.

A safe subset of Markdown becomes tags (```lang fences -> <pre><code class="language-lang">, `code` ->
<code>, **bold** / # heading -> <b>, *italic* / _italic_ -> <i>, ~~strike~~ -> <s>,
[text](http...) -> <a>); everything else is `html.escape`d. Markup that is not closed stays literal
text, except an open ``` fence, which runs to the end (so a half-streamed code block already looks right).

Splitting works on the parsed runs, never on HTML: a part closes the tags still open at its end and
the next part reopens them, words are not cut unless one alone is longer than a message, and a break
at a line end is preferred when one is near. Lengths are counted in UTF-16 code units of the HTML
itself, which bounds what Telegram counts (the text after entity parsing) from above.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from bot.services.mdscan import scan

TELEGRAM_LIMIT = 4096

Tag = tuple[str, str]  # (opening html, closing html)
BOLD: Tag = ("<b>", "</b>")
ITALIC: Tag = ("<i>", "</i>")
STRIKE: Tag = ("<s>", "</s>")
CODE: Tag = ("<code>", "</code>")


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


# --- parsing -------------------------------------------------------------------------------

_FENCE = re.compile(r"```(?:([\w#+.-]*)[^\S\n]*\n)?(.*?)(?:\n?```|\Z)", re.S)


def parse(text: str) -> list[Run]:
    """The text as runs of plain text, each with the formatting tags around it."""
    runs: list[Run] = []
    pos = 0
    for fence in _FENCE.finditer(text):
        runs += _inline(text[pos:fence.start()], ())
        lang, body = fence.group(1) or "", fence.group(2)
        tag: Tag = (f'<pre><code class="language-{escape(lang)}">' if lang else "<pre><code>", "</code></pre>")
        if body:
            runs.append(Run(body, (tag,)))
        pos = fence.end()
    runs += _inline(text[pos:], ())
    return _merge(runs)


def _inline(text: str, tags: tuple[Tag, ...]) -> list[Run]:
    runs: list[Run] = []
    pos = 0
    for m in scan(text):
        if m.start > pos:
            runs.append(Run(text[pos:m.start], tags))
        if m.kind == "code":
            runs.append(Run(m.body, (CODE,)))  # Telegram: code contains and joins no entity
        elif m.kind == "head":
            runs += _inline(m.body, (*tags, BOLD))
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


_TAGS = {"bold": BOLD, "strike": STRIKE, "ital": ITALIC}


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


def plain_text(text: str) -> str:
    """What the reader sees: the text with its Markdown markup consumed."""
    return "".join(run.text for run in parse(text))


def render(runs: list[Run]) -> str:
    builder = _Part()
    for run in runs:
        builder.add(((run.text, run.tags),))
    return builder.html()


def to_html(text: str) -> str:
    """The whole text as one HTML string (no length limit)."""
    return render(parse(text))


_TAG = re.compile(r"<[^>]*>")


def html_to_plain(fragment: str) -> str:
    """The plain text of our own HTML: the fallback when Telegram still cannot parse a part."""
    return html.unescape(_TAG.sub("", fragment))


# --- splitting -----------------------------------------------------------------------------

Piece = tuple[str, tuple[Tag, ...]]
Atom = tuple[Piece, ...]  # a word or a whitespace stretch; a word may span runs (**bold**word)


class _Part:
    """One message under construction: its HTML so far and the tags open at its end."""

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.stack: tuple[Tag, ...] = ()
        self.length = 0  # UTF-16 length of chunks
        self.atoms: list[Atom] = []

    def _transition(self, stack: tuple[Tag, ...], tags: tuple[Tag, ...]) -> tuple[str, tuple[Tag, ...]]:
        if stack == tags:  # most pieces continue the formatting of the one before
            return "", tags
        common = 0
        while common < min(len(stack), len(tags)) and stack[common] == tags[common]:
            common += 1
        closing = "".join(tag[1] for tag in reversed(stack[common:]))
        opening = "".join(tag[0] for tag in tags[common:])
        return closing + opening, tags

    def cost(self, atom: Atom) -> int:
        """The part's total length, closing tags included, if `atom` were added."""
        total, stack = self.length, self.stack
        for text, tags in atom:
            glue, stack = self._transition(stack, tags)
            total += u16len(glue) + u16len(escape(text))
        return total + sum(u16len(tag[1]) for tag in stack)

    def add(self, atom: Atom) -> None:
        for text, tags in atom:
            glue, self.stack = self._transition(self.stack, tags)
            chunk = glue + escape(text)
            self.chunks.append(chunk)
            self.length += u16len(chunk)
        self.atoms.append(atom)

    def html(self) -> str:
        return "".join(self.chunks) + "".join(tag[1] for tag in reversed(self.stack))

    def replace_with(self, other: _Part) -> None:
        self.chunks, self.stack, self.length, self.atoms = other.chunks, other.stack, other.length, other.atoms


def _atoms(runs: list[Run]) -> list[Atom]:
    atoms: list[list[Piece]] = []
    last_space: bool | None = None
    for run in runs:
        for token in re.findall(r"\s+|\S+", run.text):
            space = token[0].isspace()
            if atoms and space == last_space:
                atoms[-1].append((token, run.tags))  # the same word (or gap) continues across runs
            else:
                atoms.append([(token, run.tags)])
            last_space = space
    return [tuple(a) for a in atoms]


def _cut(atom: Atom, budget: int) -> tuple[Atom, Atom]:
    """The longest head of an over-long atom that fits an empty part, and the rest (by characters)."""
    probe = _Part()
    head: list[Piece] = []
    for index, (text, tags) in enumerate(atom):
        lo, hi = 0, min(len(text), budget)  # each character takes at least one unit: never probe more
        while lo < hi:  # binary search for the most characters of this piece that still fit
            mid = (lo + hi + 1) // 2
            if probe.cost(((text[:mid], tags),)) <= budget:  # probe holds head: no re-walk of it
                lo = mid
            else:
                hi = mid - 1
        if lo < len(text):
            if lo == 0 and not head:
                lo = 1  # a tag pair alone cannot exceed a real budget; never loop without progress
            head_atom = (*head, (text[:lo], tags)) if lo else tuple(head)
            rest = ((text[lo:], tags), *atom[index + 1:])
            return tuple(head_atom), rest
        head.append((text, tags))
        probe.add(((text, tags),))
    return tuple(head), ()


def split_runs(runs: list[Run], limit: int = TELEGRAM_LIMIT) -> list[str]:
    parts: list[_Part] = [_Part()]
    pending = _atoms(runs)
    pending.reverse()  # a stack: pop() takes the next atom
    while pending:
        atom = pending.pop()
        part = parts[-1]
        if part.cost(atom) <= limit:
            part.add(atom)
            continue
        if part.atoms:
            pending.append(atom)  # it opens the next part, after any tail moved there by _rebalance
            parts.append(_rebalance(part, limit, pending))
            continue
        head, rest = _cut(atom, limit)  # one word longer than a whole message
        part.add(head)
        parts.append(_Part())
        if rest:
            pending.append(rest)
    return [p.html() for p in parts if p.atoms]


def _rebalance(part: _Part, limit: int, pending: list[Atom]) -> _Part:
    """Start the next part; first move the tail after a late line break of `part` into it, if any.

    "Late" means the shortened part still holds at least half a message, so a break never leaves a
    stub behind; without one the part ends between two words.
    """
    atoms = part.atoms
    for index in range(len(atoms) - 2, -1, -1):
        atom = atoms[index]
        if not (atom[0][0][0].isspace() and any("\n" in text for text, _ in atom)):
            continue
        shorter = _Part()
        for kept in atoms[: index + 1]:
            shorter.add(kept)
        if shorter.length * 2 >= limit:
            pending.extend(reversed(atoms[index + 1:]))
            part.replace_with(shorter)
        break
    return _Part()


def split_html(text: str, limit: int = TELEGRAM_LIMIT) -> list[str]:
    """`text` (Markdown-ish model output) as HTML messages, each at most `limit` UTF-16 units."""
    return split_runs(parse(text), limit)
