"""Captions are cut by what Telegram counts (UTF-16 code units after entity parsing), never inside an emoji
or an HTML escape, so a paid image is always delivered whatever its prompt."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from bot.services.captions import CAPTION_LIMIT, ELLIPSIS, caption_html, cut_u16
from bot.services.reports import split_blocks
from bot.services.textfmt import u16len
from tests.bot.core_harness import CoreHarness
from tests.fakes.telegram_state import check_text

USER = 2002
# Hostile text: astral emoji (two UTF-16 units each), characters HTML must escape, combining marks, CJK
hostile = st.text(st.sampled_from("a <>&;\n\u00e9\u0301\u4e2d\U0001F600\U0001F44D\U0001F3FD\u200d&amp;"), max_size=1500)
anything = st.text(max_size=1500)  # any code point hypothesis can put in a str (no lone surrogates)


@given(st.one_of(hostile, anything), st.integers(min_value=1, max_value=1100))
@example("\U0001F600" * 600, CAPTION_LIMIT)
@example("&" * 2000, CAPTION_LIMIT)
def test_a_cut_fits_keeps_every_character_whole_and_takes_as_much_as_fits(text: str, limit: int) -> None:
    cut = cut_u16(text, limit)
    assert u16len(cut) <= limit
    if u16len(text) <= limit:
        assert cut == text
    else:  # a prefix of whole code points plus the ellipsis, and the next code point would not have fitted
        kept = cut.removesuffix(ELLIPSIS)
        assert cut.endswith(ELLIPSIS) and text.startswith(kept)
        assert u16len(kept + text[len(kept)] + ELLIPSIS) > limit


@given(st.one_of(hostile, anything))
@example("\U0001F600" * 600)
@example("<b>&amp;</b> " * 200)
def test_an_escaped_caption_is_accepted_by_the_bot_api_and_reads_as_the_cut_prompt(prompt: str) -> None:
    plain, entities = check_text(caption_html(prompt), "HTML", caption=True)  # raises as Telegram would
    assert plain == cut_u16(prompt, CAPTION_LIMIT) and entities == []


@given(st.lists(st.text(st.sampled_from("ab \U0001F600\u4e2d"), min_size=1, max_size=300), max_size=40))
def test_report_messages_fit_in_utf16_units_whatever_the_names_hold(blocks: list[str]) -> None:
    assert all(u16len(part) <= 1024 for part in split_blocks(blocks, limit=1024))


@pytest.fixture
async def h(tmp_path: Path) -> AsyncIterator[CoreHarness]:
    async with CoreHarness.start(tmp_path) as harness:
        yield harness


@pytest.mark.parametrize("prompt", ["\U0001F600" * 600, "a<b>&c \U0001F44D\U0001F3FD " * 120, "&" * 1100])
async def test_an_image_with_a_prompt_longer_than_a_caption_is_delivered(h: CoreHarness, prompt: str) -> None:
    await h.say(USER, f"/image {prompt}")
    [photo] = h.tg.media(USER, "photo")
    assert photo.plain == cut_u16(prompt, CAPTION_LIMIT) and u16len(photo.plain) <= CAPTION_LIMIT
    [request] = h.requests(USER)
    assert request["status"] == "served" and h.credits(USER) == 5  # charged once, for an image received
