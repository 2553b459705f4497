"""Money is exact: every price kind, from the providers file to the stored cost, against Decimal arithmetic."""

from __future__ import annotations

import tomllib
from decimal import ROUND_HALF_UP, Decimal, localcontext

from hypothesis import example, given
from hypothesis import strategies as st

from providers.config import Prices, usd_to_micros
from providers.loader import parse_providers
from providers.types import Category, Usage

# A price as written in the file: up to 9 decimal places of USD, so a fraction of a micro-USD per unit.
usd = st.decimals(min_value=0, max_value=100, places=9, allow_nan=False, allow_infinity=False)
counts = st.integers(min_value=0, max_value=10_000_000)
durations = st.floats(min_value=0, max_value=36_000, allow_nan=False, allow_infinity=False)


def from_file(key: str, price: Decimal) -> Prices:
    """The prices the way the bot gets them: TOML text (a float) through the loader."""
    data = tomllib.loads(f"[providers.p]\nkind = 'openai'\nprices = {{ {key} = {price} }}\n")
    return parse_providers(data, "test", env={}).providers["p"].prices


def expected(amount_usd: Decimal) -> int:
    """The rule: the exact decimal amount in micro-USD, rounded once, half-up."""
    return int((amount_usd * 1_000_000).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@given(usd, counts, counts)
def test_text_costs_each_1k_tokens_in_and_out_exactly(price: Decimal, tokens_in: int, tokens_out: int) -> None:
    p_in, p_out = from_file("text_in_per_1k", price), from_file("text_out_per_1k", price)
    usage = Usage(input_tokens=tokens_in, output_tokens=tokens_out)
    assert p_in.cost_micros(Category.TEXT, usage) == expected(price * tokens_in / 1000)
    assert p_out.cost_micros(Category.TEXT, usage) == expected(price * tokens_out / 1000)


@given(usd, st.integers(min_value=0, max_value=1000))
def test_images_and_edits_cost_each_image_exactly(price: Decimal, images: int) -> None:
    usage = Usage(images=images)
    assert from_file("image", price).cost_micros(Category.IMAGE, usage) == expected(price * max(images, 1))
    assert from_file("image_edit", price).cost_micros(Category.IMAGE_EDIT, usage) == expected(price * max(images, 1))


@given(usd, durations)
@example(Decimal("0.0001"), 0.29)  # int(0.29 * 100) was 28: float truncation, one micro-USD low
def test_video_costs_each_second_exactly_as_the_duration_is_written(price: Decimal, seconds: float) -> None:
    usage = Usage(seconds=seconds)
    assert from_file("video_per_second", price).cost_micros(Category.VIDEO, usage) == expected(
        price * Decimal(repr(seconds)))
    assert from_file("video", price).cost_micros(Category.VIDEO, usage) == expected(price)


@given(usd, counts)
def test_speech_costs_each_1k_characters_exactly(price: Decimal, characters: int) -> None:
    usage = Usage(characters=characters)
    assert from_file("audio_per_1k_chars", price).cost_micros(Category.AUDIO, usage) == expected(
        price * characters / 1000)


@given(st.decimals(min_value=0, max_value=10_000, places=9, allow_nan=False, allow_infinity=False))
def test_a_reported_usd_cost_or_budget_rounds_half_up_to_the_micro(amount: Decimal) -> None:
    assert usd_to_micros(float(amount)) == usd_to_micros(str(amount)) == expected(amount)


def test_half_a_micro_rounds_up_not_to_even() -> None:
    assert usd_to_micros("0.0000005") == 1 and usd_to_micros("0.0000025") == 3


@given(usd, durations)
@example(Decimal("0.006"), 90.0)  # a minute and a half at $0.006 a minute: 9,000 micro-USD
def test_transcription_costs_each_minute_of_recording_exactly(price: Decimal, seconds: float) -> None:
    usage = Usage(seconds=seconds)
    with localcontext() as ctx:
        ctx.prec = 60
        want = expected(price * Decimal(repr(seconds)) / 60)
    assert from_file("transcription_per_minute", price).cost_micros(Category.TRANSCRIPTION, usage) == want
