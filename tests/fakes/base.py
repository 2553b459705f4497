"""A loopback aiohttp server base shared by every fake provider and the fake Bot API.

A fake records every call, and plays scripted scenarios before falling back to its normal behaviour:

    fake.fail_next(429, {"error": {...}}, headers={"retry-after": "2"})   # the next call fails like this
    fake.latency_s = 0.2        # every answer waits first
    fake.hang = True            # never answers (the client's timeout must fire)
    fake.on_call = hook         # `await hook(call)` before answering each call (fault injection)
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes
    json: Any = None
    form: dict[str, Any] = field(default_factory=dict)  # multipart/form-data fields (bytes for files)
    filenames: dict[str, str] = field(default_factory=dict)  # multipart file field -> the file name sent


@dataclass
class Scripted:
    status: int
    body: Any  # dict/list -> JSON, bytes/str -> raw
    headers: dict[str, str] = field(default_factory=dict)
    path_contains: str | None = None  # only for calls whose path contains this


class FakeServer:
    """Subclasses add routes in `routes(app)`; handlers call `await self.record(request)` first."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.script: deque[Scripted] = deque()
        self.latency_s = 0.0
        self.hang = False
        self.on_call: Callable[[Call], Awaitable[None]] | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle ---------------------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self, port: int = 0) -> FakeServer:
        """Listen on 127.0.0.1:`port` (0: any free port; a stopped fake can come back on its old one)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        self.routes(app)
        # A short shutdown: a `hang` handler sleeps for an hour, and stop() would otherwise wait 60 s for it.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- scenarios ---------------------------------------------------------------------------
    def fail_next(self, status: int, body: Any, headers: dict[str, str] | None = None,
                  times: int = 1, path_contains: str | None = None) -> None:
        for _ in range(times):
            self.script.append(Scripted(status, body, dict(headers or {}), path_contains))

    def calls_to(self, fragment: str) -> list[Call]:
        return [c for c in self.calls if fragment in c.path]

    async def record(self, request: web.Request) -> Call:
        body = await request.read()
        call = Call(request.method, request.path, dict(request.headers), dict(request.query), body)
        ctype = request.headers.get("Content-Type", "")
        if "json" in ctype and body:
            try:
                call.json = json.loads(body)
            except ValueError:
                call.json = None
        elif "multipart/form-data" in ctype:
            call.form, call.filenames = await _parse_multipart(request, body)
        self.calls.append(call)
        return call

    async def pre(self, request: web.Request) -> tuple[Call, web.StreamResponse | None]:
        """Record the call, apply latency/hang, and answer from the script when one matches."""
        call = await self.record(request)
        if self.on_call is not None:
            await self.on_call(call)
        if self.hang:
            await asyncio.sleep(3600)
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        for item in list(self.script):
            if item.path_contains is None or item.path_contains in request.path:
                self.script.remove(item)
                return call, respond(item.status, item.body, item.headers)
        return call, None


def respond(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    if isinstance(body, (bytes, str)):
        data = body.encode() if isinstance(body, str) else body
        return web.Response(status=status, body=data, headers=headers)
    return web.json_response(body, status=status, headers=headers)


async def _parse_multipart(request: web.Request, body: bytes) -> tuple[dict[str, Any], dict[str, str]]:
    from aiohttp import BodyPartReader, MultipartReader
    from aiohttp.streams import StreamReader

    protocol = request.protocol
    stream = StreamReader(protocol, 2**16, loop=asyncio.get_running_loop())
    stream.feed_data(body)
    stream.feed_eof()
    reader = MultipartReader(request.headers, stream)
    fields: dict[str, Any] = {}
    filenames: dict[str, str] = {}
    while True:
        part = await reader.next()
        if part is None:
            break
        assert isinstance(part, BodyPartReader)
        data = await part.read(decode=False)
        name = part.name or ""
        fields[name] = bytes(data) if part.filename else bytes(data).decode("utf-8", "replace")
        if part.filename:
            filenames[name] = part.filename
    return fields, filenames
