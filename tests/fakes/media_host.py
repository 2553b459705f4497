"""A loopback host of provider media for the outbound-fetch policy: files, redirect chains, slow bodies, secrets.

    GET /file/{size}            `size` bytes of b"x", with a Content-Length
    GET /chunked/{size}         the same, chunked (no Content-Length: only counting catches it)
    GET /hop/{n}?to=URL         302 to /hop/{n-1}, ..., and from /hop/0 to `to` (default: /file/10)
    GET /trickle                one byte every `trickle_every_s`, for a minute
    GET /secret                 what an internal service would not want in a chat
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from tests.fakes.base import FakeServer

SECRET = b'{"secret": "internal-only-token"}'


class MediaHost(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.trickle_every_s = 0.1

    async def __aenter__(self) -> MediaHost:
        await self.start()
        return self

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/file/{size}", self._file)
        app.router.add_get("/chunked/{size}", self._chunked)
        app.router.add_get("/hop/{n}", self._hop)
        app.router.add_get("/trickle", self._trickle)
        app.router.add_get("/secret", self._secret)

    async def _file(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        return web.Response(body=b"x" * int(request.match_info["size"]), content_type="image/png")

    async def _chunked(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        left = int(request.match_info["size"])
        while left > 0:
            await response.write(b"x" * min(left, 4096))
            left -= 4096
        await response.write_eof()
        return response

    async def _hop(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        n = int(request.match_info["n"])
        target = request.query.get("to", f"{self.url}/file/10")
        if n <= 0:
            raise web.HTTPFound(target)
        raise web.HTTPFound(str(request.url.with_path(f"/hop/{n - 1}").with_query(to=target)))

    async def _trickle(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        for _ in range(600):
            await response.write(b"x")
            await asyncio.sleep(self.trickle_every_s)
        return response

    async def _secret(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        return web.Response(body=SECRET, content_type="application/json")
