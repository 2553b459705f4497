"""A streamed answer formatted incrementally ends exactly as the one-shot conversion, at bounded work per edit."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.services.mdparse import LONG_LINE, MIN_CHUNK
from bot.services.streamfmt import StreamLayout, visible
from bot.services.textfmt import split_html, u16len
from tests.bot.test_textfmt import assert_balanced

# ordinary markup, and the units of the adversarial inputs: unclosed markers, surrogates, open fences
tokens = st.sampled_from(["**", "*", "_", "`", "``", "```", "```python\n", "\n```\n", "~~", "# ", "\n", "\n\n",
                          " ", "  ", "[", "](", "[l](https://e.com/?a=1&b=<2>)", "snake_case", "ab", "xyz<>&",
                          "é", "😀", "- ", "    - ", "**ab ", "~~ab ", "[ab ", "``a ", "**a**b~~c~~"])
documents = st.lists(st.one_of(tokens, st.text(alphabet="ab &<😀\n", max_size=8)), max_size=300).map("".join)
# few line breaks and many repeats: lines long enough to be cut at spaces or hard at 2 * LONG_LINE
long_lines = st.tuples(st.lists(tokens.filter(lambda t: "\n" not in t), min_size=1, max_size=12).map("".join),
                       st.integers(min_value=100, max_value=800), documents).map(lambda t: t[0] * t[1] + t[2])


def stream(text: str, deltas: list[int], limit: int) -> tuple[list[str], StreamLayout]:
    """Feed `text` in growing prefixes; every call keeps the parts frozen by the calls before it."""
    layout, end, frozen = StreamLayout(limit), 0, []
    step = iter(deltas)
    while end < len(text):
        end = min(len(text), end + next(step, 97))
        parts = layout.parts(text[:end])
        assert parts[:len(frozen)] == frozen  # a finished message never changes
        frozen = parts[:layout.frozen]
    return layout.parts(text), layout


def assert_same_as_one_shot(text: str, deltas: list[int], limit: int) -> None:
    streamed, _ = stream(text, deltas, limit)
    assert streamed == visible(split_html(text, limit))
    for part in streamed:
        assert u16len(part) <= limit  # counted in UTF-16 units, as Telegram counts
        assert_balanced(part)


@settings(max_examples=300, deadline=None)
@given(text=documents, deltas=st.lists(st.integers(min_value=1, max_value=300)),
       limit=st.integers(min_value=120, max_value=4096))
def test_streamed_parts_equal_the_one_shot_parts(text: str, deltas: list[int], limit: int) -> None:
    assert_same_as_one_shot(text, deltas, limit)


@settings(max_examples=30, deadline=None)
@given(text=long_lines, deltas=st.lists(st.integers(min_value=1, max_value=3000), max_size=40),
       limit=st.sampled_from([300, 4096]))
def test_long_lines_stream_the_same_as_one_shot(text: str, deltas: list[int], limit: int) -> None:
    # rule: the cuts of a long line depend on the text alone, so the stream meets them where one-shot does
    assert_same_as_one_shot(text, deltas, limit)


ADVERSARIAL = ["**ab ", "~~ab ", "[ab ", "``a ", "**~~[_*ab ", "😀**é😀 ", "**a**b~~c~~", "```a ",
               "- **item `x\n  - ~~sub [y\n", "```py\nx = '**a** <b>'\n"]


def test_each_edit_converts_only_the_open_end_of_a_long_answer() -> None:
    # rule: per edit, the Markdown parser sees the new delta plus at most one unfinished chunk, however
    # long the answer already is; and the open message holds less than one message of text
    for unit in ADVERSARIAL:
        text = (unit * (32768 // len(unit) + 1))[:32768]
        layout = StreamLayout()
        for end in range(100, len(text) + 1, 250):
            parts = layout.parts(text[:end])
            assert layout.converted <= 2 * LONG_LINE + MIN_CHUNK + 250, (unit, end)
            assert len(parts) - layout.frozen <= 3, (unit, end)
        assert layout.frozen >= 3, unit  # 32 KB makes at least 4 messages


def test_a_text_that_does_not_extend_the_last_one_starts_over() -> None:
    layout = StreamLayout(200)
    layout.parts("a line of words\n" * 300)
    assert layout.frozen > 0
    assert layout.parts("**other** text") == visible(split_html("**other** text", 200))
