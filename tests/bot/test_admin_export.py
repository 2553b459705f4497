"""CSV export of the request log: header, rows, cells that a spreadsheet would run, big files."""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.services.export import MAX_PLAIN_BYTES, csv_bytes, csv_cell, fit_for_telegram

BOM = b"\xef\xbb\xbf"


def _read(data: bytes) -> list[list[str]]:
    assert data.startswith(BOM)
    return list(csv.reader(io.StringIO(data[len(BOM):].decode("utf-8"), newline="")))


async def _agen(rows: list[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for row in rows:
        yield row


async def test_header_from_columns_even_without_rows() -> None:
    assert _read(await csv_bytes(_agen([]), columns=["id", "provider"])) == [["id", "provider"]]


async def test_rows_from_an_async_iterator_in_order_with_typed_cells() -> None:
    when = datetime(2026, 11, 21, 10, 30, tzinfo=UTC)
    rows = [{"id": 1, "created_at": when, "provider": "openai", "cost_micros": 1500, "prompt": None},
            {"id": 2, "created_at": when, "provider": "anthropic", "cost_micros": 0, "prompt": "привет, мир"}]
    table = _read(await csv_bytes(_agen(rows)))
    assert table[0] == ["id", "created_at", "provider", "cost_micros", "prompt"]
    assert table[1] == ["1", "2026-11-21T10:30:00+00:00", "openai", "1500", ""]
    assert table[2][4] == "привет, мир"


async def test_plain_iterables_work_too_and_unknown_keys_are_dropped() -> None:
    table = _read(await csv_bytes([{"a": 1, "secret": "x"}], columns=["a"]))
    assert table == [["a"], ["1"]]


def test_formula_like_text_is_defused() -> None:
    assert csv_cell("=HYPERLINK(\"http://x\")") == "'=HYPERLINK(\"http://x\")"
    assert csv_cell("+1") == "'+1"
    assert csv_cell("@SUM(A1)") == "'@SUM(A1)"
    assert csv_cell(-5) == -5  # numbers are numbers, not formulas
    assert csv_cell(True) == 1


@settings(max_examples=50)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=5))
async def test_any_prompt_text_survives_the_round_trip(prompts: list[str]) -> None:
    rows = [{"n": i, "prompt": p} for i, p in enumerate(prompts)]
    table = _read(await csv_bytes(rows))
    assert len(table) == len(prompts) + 1
    for i, ((n, cell), original) in enumerate(zip(table[1:], prompts, strict=True)):
        assert int(n) == i
        assert cell == csv_cell(original)


def test_big_exports_are_compressed_to_fit_a_bot_upload() -> None:
    small = b"a,b\r\n1,2\r\n"
    assert fit_for_telegram(small, "log.csv") == (small, "log.csv")
    big = b"x" * (MAX_PLAIN_BYTES + 1)
    data, name = fit_for_telegram(big, "log.csv")
    assert name == "log.csv.gz"
    assert gzip.decompress(data) == big
