"""The request log of a period as CSV bytes, written row by row from `db.repo.stats.export_rows`; the
purchases and refunds of the period likewise (`db.repo.revenue.export_payment_rows`), with their USD value.

UTF-8 with a byte-order mark, so spreadsheet programs show non-Latin prompts correctly. Text cells that
start like a formula (=, +, -, @) are prefixed with an apostrophe: prompts are user input, and a
spreadsheet must not run them (CSV injection).
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from bot.services.revenue import stars_micros
from db.periods import Period
from db.repo.revenue import export_payment_rows
from db.repo.stats import export_rows

# Telegram bots may upload documents up to 50 MB; past this the CSV is sent gzip-compressed.
MAX_PLAIN_BYTES = 45 * 1024 * 1024
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> str | int | float:
    if value is None:
        return ""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, Decimal):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


async def csv_bytes(rows: AsyncIterable[Mapping[str, Any]] | Iterable[Mapping[str, Any]],
                    columns: Sequence[str] | None = None) -> bytes:
    """CSV of `rows`; the header is `columns`, else the first row's keys. Unknown keys are dropped."""
    buf = io.StringIO()
    writer: csv.DictWriter[str] | None = None
    if columns:
        writer = _writer(buf, columns)
    async for row in _aiter(rows):
        if writer is None:
            writer = _writer(buf, list(row.keys()))
        writer.writerow({k: csv_cell(v) for k, v in row.items()})
    return b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8")


async def export_csv(session: AsyncSession, period: Period) -> tuple[bytes, int]:
    """The request log of `period` as CSV, and how many requests it holds."""
    counted = _Counted(export_rows(session, period))
    data = await csv_bytes(counted, columns=None)
    return data, counted.count


async def export_payments_csv(session: AsyncSession, period: Period, rate: Decimal) -> tuple[bytes, int]:
    """Purchases (positive) and refunds (negative) of `period` as CSV, and how many rows it holds."""
    rows = []
    async for row in export_payment_rows(session, period):
        usd = (Decimal(stars_micros(row["stars"], rate)) / 1_000_000).quantize(Decimal("0.000001"))
        rows.append({**row, "usd": usd})  # a Decimal: a refund's minus is a number, not a formula
    return await csv_bytes(rows, columns=None), len(rows)


class _Counted:
    def __init__(self, rows: AsyncIterable[Mapping[str, Any]]) -> None:
        self.rows = rows
        self.count = 0

    async def __aiter__(self) -> AsyncIterator[Mapping[str, Any]]:
        async for row in self.rows:
            self.count += 1
            yield row


def fit_for_telegram(data: bytes, filename: str) -> tuple[bytes, str]:
    """The document to upload: as is, or gzip-compressed when too big for a bot upload."""
    if len(data) <= MAX_PLAIN_BYTES:
        return data, filename
    return gzip.compress(data, compresslevel=6), filename + ".gz"


def _writer(buf: io.StringIO, columns: Sequence[str]) -> csv.DictWriter[str]:
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    return writer


async def _aiter(
    rows: AsyncIterable[Mapping[str, Any]] | Iterable[Mapping[str, Any]],
) -> AsyncIterator[Mapping[str, Any]]:
    if isinstance(rows, AsyncIterable):
        async for row in rows:
            yield row
    else:
        for row in rows:
            yield row
