"""The digest chart: always a real PNG, bars where there was spend, nothing drawn from thin air."""

from __future__ import annotations

import io

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib import image as mpimg

from bot.services.chart import _BAR, _LINE, ProviderPoint, spend_and_success_png

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(mpimg.imread(io.BytesIO(png), format="png"))


def _has_colour(pixels: np.ndarray, hex_colour: str) -> bool:
    rgb = np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    return bool((np.abs(pixels[..., :3] - rgb).max(axis=-1) < 0.02).any())


def test_empty_data_is_still_a_valid_png_without_bars() -> None:
    png = spend_and_success_png([])
    assert png.startswith(PNG_MAGIC)
    pixels = _pixels(png)
    assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert not _has_colour(pixels, _BAR)
    assert not _has_colour(pixels, _LINE)


def test_spend_draws_bars_and_success_rate_draws_markers() -> None:
    png = spend_and_success_png([ProviderPoint("openai", 1_500_000, 0.9),
                                 ProviderPoint("anthropic", 250_000, 0.5)], title="Yesterday")
    pixels = _pixels(png)
    assert _has_colour(pixels, _BAR)
    assert _has_colour(pixels, _LINE)


def test_provider_without_attempts_gets_no_marker() -> None:
    pixels = _pixels(spend_and_success_png([ProviderPoint("openai", 1_000, None)]))
    assert _has_colour(pixels, _BAR)
    # The legend still shows one marker; without a data point the colour covers only that sample.
    with_rate = _pixels(spend_and_success_png([ProviderPoint("openai", 1_000, 0.7)]))
    line_rgb = np.array([int(_LINE[i:i + 2], 16) / 255 for i in (1, 3, 5)])

    def count(p: np.ndarray) -> int:
        return int((np.abs(p[..., :3] - line_rgb).max(axis=-1) < 0.02).sum())

    assert count(with_rate) > count(pixels)


def test_names_with_dollars_are_drawn_as_text_not_math() -> None:
    png = spend_and_success_png([ProviderPoint("a$b", 1, 1.0), ProviderPoint("a$\\frac{$b", 2, 0.0)], title="$x")
    assert png.startswith(PNG_MAGIC)


@settings(max_examples=5, deadline=None)
@given(st.lists(st.builds(ProviderPoint,
                          st.text(min_size=1, max_size=30),
                          st.integers(min_value=0, max_value=10**12),
                          st.one_of(st.none(), st.floats(min_value=0.0, max_value=1.0))),
                max_size=8))
def test_any_data_gives_a_decodable_png(points: list[ProviderPoint]) -> None:
    png = spend_and_success_png(points, title="t")
    assert png.startswith(PNG_MAGIC)
    assert _pixels(png).ndim == 3
