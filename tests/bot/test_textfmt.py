"""Model output -> Telegram HTML parts: escaped, balanced, under the limit, nothing lost, words whole."""

from __future__ import annotations

from html.parser import HTMLParser
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.services.textfmt import html_to_plain, parse, plain_text, split_html, to_html, u16len

ALLOWED = {"b", "i", "s", "code", "pre", "a"}


class _Balance(HTMLParser):
    """Fails on an unknown tag, a close without its open, or a tag left open."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED:
            self.errors.append(f"unknown tag {tag}")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unbalanced </{tag}> with open {self.stack}")
        else:
            self.stack.pop()


def assert_balanced(part: str) -> None:
    checker = _Balance()
    checker.feed(part)
    checker.close()
    assert not checker.errors, (checker.errors, part)
    assert not checker.stack, (checker.stack, part)


words = st.text(alphabet="abcxyz<>&\"'é😀", min_size=1, max_size=10)
markup = st.sampled_from(["**", "*", "_", "`", "```", "```python\n", "\n```\n", "~~", "# ", "\n", "\n\n", " ",
                          "[link](https://example.com/?a=1&b=<2>)", "snake_case_name", "  "])
documents = st.lists(st.one_of(words, markup, st.just(" ")), max_size=300).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=documents, limit=st.integers(min_value=200, max_value=600))
def test_parts_fit_balance_and_lose_nothing(text: str, limit: int) -> None:
    parts = split_html(text, limit)
    for part in parts:
        assert u16len(part) <= limit
        assert_balanced(part)
    assert "".join(html_to_plain(p) for p in parts) == plain_text(text)


@settings(max_examples=200, deadline=None)
@given(text=documents, limit=st.integers(min_value=200, max_value=600))
def test_no_word_is_cut_when_every_word_fits(text: str, limit: int) -> None:
    # every word here is short, so no part boundary may fall inside one
    plains = [html_to_plain(p) for p in split_html(text, limit)]
    for left, right in pairwise(plains):
        assert left[-1:].isspace() or right[:1].isspace(), (left[-20:], right[:20])


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=st.characters(blacklist_characters="*_`~#[", blacklist_categories=("Cs",)),
                    max_size=3000))
def test_text_without_markup_comes_back_exactly(text: str) -> None:
    assert plain_text(text) == text
    parts = split_html(text, 4096)
    assert "".join(html_to_plain(p) for p in parts) == text
    assert all(u16len(p) <= 4096 for p in parts)


@settings(max_examples=50, deadline=None)
@given(word=st.text(alphabet="ab&<😀", min_size=50, max_size=400), limit=st.integers(min_value=40, max_value=90))
def test_a_word_longer_than_a_message_is_cut_but_kept(word: str, limit: int) -> None:
    parts = split_html(f"**{word}**", limit)
    assert all(u16len(p) <= limit for p in parts)
    assert "".join(html_to_plain(p) for p in parts) == word
    for part in parts:
        assert_balanced(part)


def test_markdown_subset_becomes_html_and_the_rest_is_escaped() -> None:
    text = "# Title\nHi **bold _it_** `a<b>` & [docs](https://x.io/?a=1&b=2) snake_case 2 * 3 * 4 ~~old~~"
    assert to_html(text) == (
        "<b>Title</b>\nHi <b>bold <i>it</i></b> <code>a&lt;b&gt;</code> &amp; "
        '<a href="https://x.io/?a=1&amp;b=2">docs</a> snake_case 2 * 3 * 4 <s>old</s>'
    )


def test_code_fence_keeps_its_language_and_content_verbatim() -> None:
    text = "Look:\n```python\nif a < b and **c**:\n    pass\n```\ndone"
    assert to_html(text) == (
        'Look:\n<pre><code class="language-python">if a &lt; b and **c**:\n    pass</code></pre>\ndone'
    )


def test_unclosed_fence_runs_to_the_end_and_unclosed_bold_stays_literal() -> None:
    assert to_html("**half\n```js\nlet x = 1") == '**half\n<pre><code class="language-js">let x = 1</code></pre>'


def test_split_code_block_reopens_its_language_in_each_part() -> None:
    text = "```sql\n" + "\n".join(f"select {i} from t;" for i in range(200)) + "\n```"
    parts = split_html(text, 500)
    assert len(parts) > 3
    for part in parts:
        assert part.startswith('<pre><code class="language-sql">') and part.endswith("</code></pre>")
        assert_balanced(part)
    assert "".join(html_to_plain(p) for p in parts) == plain_text(text)


def test_split_prefers_a_line_break_to_the_middle_of_a_line() -> None:
    paragraph = "word " * 60
    parts = split_html(f"{paragraph}\n{paragraph}", 400)
    assert html_to_plain(parts[0]).endswith("\n")


def test_code_never_nests_inside_other_entities() -> None:
    runs = parse("**bold `code` bold**")
    assert [r.tags for r in runs if r.text == "code"] == [(("<code>", "</code>"),)]
