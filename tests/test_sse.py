"""The shared SSE parser: comments, multi-line data, CR/LF/CRLF, any chunking of the bytes, its bounds."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from providers.adapters import sse
from providers.adapters.sse import SseEvent, SseTooLong, iter_lines, iter_sse, iter_sse_lines


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _events(raw: bytes, sizes: list[int] | None = None) -> list[SseEvent]:
    """Feed `raw` through a real httpx.Response, cut into chunks of the given sizes."""
    parts, rest = [], raw
    for size in sizes or []:
        parts.append(rest[:size])
        rest = rest[size:]
    parts.append(rest)
    response = httpx.Response(200, content=_chunks([p for p in parts if p]))
    return [event async for event in iter_sse(response)]


async def test_openai_style_data_events_and_done() -> None:
    raw = b'data: {"a":1}\n\ndata: {"a":2}\n\ndata: [DONE]\n\n'
    events = await _events(raw)
    assert [e.data for e in events] == ['{"a":1}', '{"a":2}', "[DONE]"]
    assert all(e.event is None for e in events)


async def test_comment_lines_are_skipped() -> None:
    raw = b": OPENROUTER PROCESSING\n\ndata: x\n: OPENROUTER PROCESSING\n\n:\n\n"
    assert await _events(raw) == [SseEvent(None, "x")]


async def test_named_events_multiline_data_and_ids() -> None:
    raw = b"event: message_start\nid: 7\ndata: line one\ndata: line two\n\nevent: ping\ndata: {}\n\n"
    # the last event id persists until changed (WHATWG "last event ID buffer")
    assert await _events(raw) == [SseEvent("message_start", "line one\nline two", "7"), SseEvent("ping", "{}", "7")]


async def test_crlf_and_bare_cr_line_ends() -> None:
    raw = b"event: a\r\ndata: 1\r\n\r\nevent: b\rdata: 2\r\r"
    assert await _events(raw) == [SseEvent("a", "1"), SseEvent("b", "2")]


async def test_crlf_split_between_chunks_is_one_line_end() -> None:
    raw = b"data: 1\r\n\r\ndata: 2\r\n\r\n"
    # cut right between "\r" and "\n": a naive parser sees an extra blank line and splits wrongly
    assert await _events(raw, [8, 1, 1]) == [SseEvent(None, "1"), SseEvent(None, "2")]


async def test_space_after_colon_is_optional_and_stripped_once() -> None:
    assert await _events(b"data:x\n\ndata:  y\n\n") == [SseEvent(None, "x"), SseEvent(None, " y")]


async def test_unterminated_last_event_is_dropped() -> None:
    # a cut stream must not hand out half a JSON document
    assert await _events(b'data: {"a":1}\n\ndata: {"b":') == [SseEvent(None, '{"a":1}')]


async def test_event_without_data_is_not_dispatched() -> None:
    assert await _events(b"event: lonely\n\ndata: z\n\n") == [SseEvent(None, "z")]


async def test_unicode_line_separators_inside_json_are_kept() -> None:
    # httpx.aiter_lines would split on U+2028 and U+0085; SSE must not
    text = "a\u2028b\u0085c"
    raw = ("data: " + json.dumps({"t": text}, ensure_ascii=False) + "\n\n").encode()
    events = await _events(raw, [9, 1, 1, 1])
    assert json.loads(events[0].data)["t"] == text


async def test_iter_lines_keeps_multibyte_characters_split_across_chunks() -> None:
    raw = "привет\nмир\n".encode()
    lines = [line async for line in iter_lines(_chunks([raw[:3], raw[3:9], raw[9:]]))]
    assert lines == ["привет", "мир"]


async def test_iter_sse_lines_accepts_plain_lines() -> None:
    async def lines() -> AsyncIterator[str]:
        for line in ["event: e", "data: d", ""]:
            yield line

    assert [e async for e in iter_sse_lines(lines())] == [SseEvent("e", "d")]


_text = st.text(st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]), max_size=20)


@settings(max_examples=150, deadline=None)
@given(
    payloads=st.lists(st.tuples(st.none() | st.sampled_from(["ping", "message_delta"]), st.lists(_text, min_size=1,
                                                                                                 max_size=3)),
                      max_size=6),
    line_end=st.sampled_from(["\n", "\r\n", "\r"]),
    keepalive=st.booleans(),
    sizes=st.lists(st.integers(1, 7), max_size=40),
)
def test_any_chunking_and_line_end_gives_the_same_events(
    payloads: list[tuple[str | None, list[str]]], line_end: str, keepalive: bool, sizes: list[int]
) -> None:
    raw = ""
    for name, data_lines in payloads:
        if keepalive:
            raw += ": OPENROUTER PROCESSING" + line_end + line_end
        if name:
            raw += f"event: {name}{line_end}"
        raw += "".join(f"data: {d}{line_end}" for d in data_lines) + line_end
    expected = [SseEvent(name, "\n".join(lines)) for name, lines in payloads]
    assert asyncio.run(_events(raw.encode(), sizes)) == expected


# --- bounds: a line cap, and linear work per byte -----------------------------------------------

class _CountingEol:
    """Stands in for the splitter's line-end scanner and counts how many bytes it is asked to look at."""

    def __init__(self) -> None:
        self.scanned = 0
        self.calls = 0

    def finditer(self, chunk: bytes, pos: int = 0) -> Iterator[re.Match[bytes]]:
        self.calls += 1
        self.scanned += len(chunk) - pos
        return _REAL_EOL.finditer(chunk, pos)


_REAL_EOL = sse._EOL


async def _counted(parts: list[bytes], fed: list[int]) -> AsyncIterator[bytes]:
    for part in parts:
        fed[0] += len(part)
        yield part


async def test_a_2_mb_line_without_a_line_end_is_refused_once_it_passes_the_cap() -> None:
    fed = [0]
    parts = [b"data: "] + [b"x" * 65536] * 32  # 2 MB and never a line end
    with pytest.raises(SseTooLong):
        async for _ in iter_lines(_counted(parts, fed)):
            pass
    assert sse.MAX_LINE_BYTES < fed[0] <= sse.MAX_LINE_BYTES + 65536  # stopped at the chunk that passed the cap


async def test_a_line_just_under_the_cap_passes_and_many_small_data_lines_cannot_add_up() -> None:
    line = b"data: " + b"x" * (sse.MAX_LINE_BYTES - 6) + b"\n"
    assert [len(x) async for x in iter_lines(_chunks([line[:1000], line[1000:]]))] == [sse.MAX_LINE_BYTES]
    many = b"data: " + b"y" * 1000 + b"\n"
    with pytest.raises(SseTooLong):
        await _events(many * (sse.MAX_LINE_BYTES // 1000 + 2))  # one event, never closed by a blank line


@settings(max_examples=60, deadline=None)
@given(raw=st.lists(st.sampled_from([b"ab", b"\r", b"\n", b"\r\n", "\u00e9".encode(), b"x" * 50]), max_size=200)
       .map(b"".join),
       sizes=st.lists(st.integers(1, 300), max_size=40))
def test_the_splitter_looks_at_each_byte_once_whatever_the_chunking(raw: bytes, sizes: list[int]) -> None:
    parts, rest = [], raw
    for size in sizes:
        parts.append(rest[:size])
        rest = rest[size:]
    parts = [p for p in [*parts, rest] if p]
    counter = _CountingEol()

    async def split() -> list[str]:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sse, "_EOL", counter)
            return [line async for line in iter_lines(_chunks(parts))]

    lines = asyncio.run(split())
    # Each chunk is scanned once, from where it starts (an LF finishing a CRLF split across chunks is skipped).
    assert counter.calls == len(parts)
    assert len(raw) - len(parts) <= counter.scanned <= len(raw)
    # ...and the lines are what a whole-buffer split gives.
    expected = re.split(rb"\r\n|\r|\n", raw)
    if expected and expected[-1] == b"":
        expected.pop()
    assert lines == [x.decode("utf-8", "replace") for x in expected]


async def test_a_long_line_arriving_in_small_chunks_costs_work_in_proportion_to_its_bytes() -> None:
    counter = _CountingEol()
    line = b"data: " + b"z" * 500_000 + b"\n\n"
    parts = [line[i:i + 100] for i in range(0, len(line), 100)]  # 5 000 chunks: a re-scanning parser does 1.25e9
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sse, "_EOL", counter)
        lines = [x async for x in iter_lines(_chunks(parts))]
    assert [len(x) for x in lines] == [len(line) - 2, 0]
    assert counter.scanned == len(line)
