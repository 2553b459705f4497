"""The one-pass inline scanner finds exactly what the old regex found, and stays linear on hostile input."""

from __future__ import annotations

import html
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.services import textfmt
from bot.services.textfmt import BOLD, CODE, ITALIC, STRIKE, Run, Tag, to_html

# The regex the scanner replaced, kept here only as the reference it must agree with. It is correct
# but quadratic: each lazy body re-scans the rest of the line from every opening marker.
_OLD_INLINE = re.compile(
    r"(?P<code>`(?P<code_body>[^`\n]+)`)"
    r"|(?P<head>^[ \t]{0,3}\#{1,6}[ \t]+(?P<head_body>[^\n]+?)[ \t#]*$)"
    r"|(?P<link>\[(?P<link_text>[^\]\n]+)\]\((?P<link_url>https?://[^\s()<>\"]+)\))"
    r"|(?P<bold>\*\*(?P<bold_body>(?=\S)[^\n]*?\S)\*\*)"
    r"|(?P<strike>~~(?P<strike_body>(?=\S)[^\n]*?\S)~~)"
    r"|(?P<ital>(?<![\w*])\*(?P<ital_body>[^\s*][^\n*]*?(?<=[^\s*]))\*(?![\w*]))"
    r"|(?P<ital2>(?<![\w_])_(?P<ital2_body>[^\s_][^\n_]*?(?<=[^\s_]))_(?![\w_]))",
    re.M,
)


def old_inline(text: str, tags: tuple[Tag, ...]) -> list[Run]:
    runs: list[Run] = []
    pos = 0
    for m in _OLD_INLINE.finditer(text):
        if m.start() > pos:
            runs.append(Run(text[pos:m.start()], tags))
        if m.group("code") is not None:
            runs.append(Run(m.group("code_body"), (CODE,)))
        elif m.group("head") is not None:
            runs += old_inline(m.group("head_body"), tags if BOLD in tags else (*tags, BOLD))
        elif m.group("link") is not None:
            href = html.escape(m.group("link_url"), quote=True)
            runs += old_inline(m.group("link_text"), (*tags, (f'<a href="{href}">', "</a>")))
        else:
            name = next(n for n in ("bold", "strike", "ital", "ital2") if m.group(n) is not None)
            tag = {"bold": BOLD, "strike": STRIKE, "ital": ITALIC, "ital2": ITALIC}[name]
            inner = tags if tag in tags else (*tags, tag)
            runs += old_inline(m.group(f"{name}_body"), inner)
        pos = m.end()
    if pos < len(text):
        runs.append(Run(text[pos:], tags))
    return runs


# markers, their neighbours and characters whose class (\s, \w) is easy to get wrong
tokens = st.sampled_from(["**", "*", "~~", "~", "_", "`", "``", "[", "]", "](", "(", ")", "](https://a.b/c)",
                          "http://", "#", "## ", "# ", "   ", " ", "\t", "\n", "\n\n", "a", "bc", "é", "٣",
                          "\u00a0", "\u2003", "<", "&", "\r", "x_y", "\"", "#x", "****", "~~~"])
markdownish = st.lists(st.one_of(tokens, st.text(max_size=3)), max_size=120).map("".join)


@settings(max_examples=1500, deadline=None)
@given(text=markdownish)
def test_scanner_parses_every_text_exactly_as_the_old_regex(text: str) -> None:
    # rule: same runs, same text, same tags, in the same order, before any merging
    assert textfmt._inline(text, ()) == old_inline(text, ())


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_scanner_agrees_with_the_old_regex_on_arbitrary_unicode(text: str) -> None:
    assert textfmt._inline(text, ()) == old_inline(text, ())


def test_merging_neighbours_with_equal_tags_keeps_text_and_order() -> None:
    runs = [Run("a", (CODE,)), Run("", ()), Run("b", (CODE,)), Run("c", ()), Run("d", ()), Run("e", (CODE,))]
    assert textfmt._merge(runs) == [Run("ab", (CODE,)), Run("cd", ()), Run("e", (CODE,))]


def test_a_long_unclosed_bold_line_still_converts_to_literal_text() -> None:
    assert to_html("**a " * 3) == "**a **a **a "
