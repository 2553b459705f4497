"""Which URLs handed back by a provider may be fetched, and fetching them within limits.

A provider's answer can name any URL; fetching it blindly lets whoever controls that answer (or a redirect
on the way) make us read internal services and hand their bytes to a user. So a URL is fetched only if

    - its origin (scheme, host, port) is exactly that of a configured provider `base_url` (a local proxy
      or a loopback fake is trusted because the operator configured it), or
    - it is https and its host resolves only to public addresses (no loopback, private, link-local,
      multicast, reserved or unspecified address, IPv4 or IPv6, IPv4-mapped included).

The address checked is the address connected to: the request goes to that IP, with the name in the Host
header and in TLS (SNI and certificate check), so a DNS answer that changes between the check and the
connection (rebinding) cannot move it to an internal address.

Redirects are followed by hand, each hop checked again, at most `max_redirects`. Bytes are counted as they
arrive and the download stops past `max_bytes` (`providers.bodies`, the reader every provider body goes
through); one deadline covers the whole download, not each read.

    policy = OutboundPolicy(manager.allowed_origins())
    data = await policy.fetch(client, url, max_bytes=50 << 20, deadline_s=120)   # or raises FetchError

Messages and logs name the host only: signed URLs carry tokens in their path and query.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from loguru import logger

from providers.bodies import BodyTooLarge, read_capped

Origin = tuple[str, str, int]  # scheme, lower-case host (no brackets), port
Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_REDIRECTS = 5
_DEFAULT_PORTS = {"http": 80, "https": 443}


class FetchError(Exception):
    """A provider URL could not be fetched: refused by the policy, an HTTP failure, too large, too slow."""


class FetchRefused(FetchError):
    """The policy will not fetch this URL (or a redirect to it)."""


def host_of(url: str) -> str:
    """The host alone, for messages and logs."""
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


def origin_of(url: str) -> Origin | None:
    """(scheme, host, port) of an http(s) URL, the port filled in; None for anything else."""
    try:
        parts = urlsplit(url.strip())
        scheme, host = parts.scheme.lower(), parts.hostname
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:  # a port that is no number, or out of range
        return None
    if scheme not in _DEFAULT_PORTS or not host or port is None:
        return None
    return scheme, host, port


def origins(urls: Iterable[str]) -> frozenset[Origin]:
    return frozenset(o for o in map(origin_of, urls) if o is not None)


def is_public_address(address: str) -> bool:
    """False for loopback, private, link-local, multicast, reserved, unspecified and shared (CGNAT) ranges."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 reaches 127.0.0.1; before 3.13 ipaddress does not say so
    return not (ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved
                or ip.is_unspecified or not ip.is_global)


async def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, from the event loop's resolver (off the loop thread)."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise FetchRefused(f"cannot resolve {host}") from exc
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    allowed_origins: frozenset[Origin] = frozenset()  # configured provider base URLs, trusted as they are
    max_redirects: int = MAX_REDIRECTS
    resolver: Resolver = resolve

    async def check(self, url: str) -> str | None:
        """Raise FetchRefused unless `url` may be fetched (see the module docstring); the checked address
        to connect to, or None for a configured origin (trusted as it is, by name)."""
        origin = origin_of(url)
        if origin is None:
            raise FetchRefused(f"not an http(s) URL (host {host_of(url)})")
        scheme, host, port = origin
        if origin in self.allowed_origins:
            return None
        if scheme != "https":
            raise FetchRefused(f"plain http to {host}, which is not a configured provider")
        addresses = await self.resolver(host, port)
        if not addresses:
            raise FetchRefused(f"cannot resolve {host}")
        blocked = [a for a in addresses if not is_public_address(a)]
        if blocked:
            raise FetchRefused(f"{host} resolves to {blocked[0]}, which is not a public address")
        return addresses[0]

    async def fetch(self, client: httpx.AsyncClient, url: str, *, max_bytes: int, deadline_s: float) -> bytes:
        """The body at `url` after checked redirects, at most `max_bytes`, all within `deadline_s`."""
        hop = [url]  # the URL being fetched now, for messages when the deadline strikes mid-hop
        try:
            async with asyncio.timeout(deadline_s):
                return await self._fetch(client, hop, max_bytes)
        except TimeoutError as exc:
            raise FetchError(f"download from {host_of(hop[0])} took longer than {deadline_s:g} s") from exc
        except httpx.HTTPError as exc:
            raise FetchError(f"download from {host_of(hop[0])} failed: {type(exc).__name__}") from exc
        except FetchRefused as exc:
            logger.warning("refused to fetch provider media: {}", exc)
            raise

    async def _fetch(self, client: httpx.AsyncClient, hop: list[str], max_bytes: int) -> bytes:
        for redirects in range(self.max_redirects + 1):
            address = await self.check(hop[0])
            request = pinned_request(client, hop[0], address)
            response = await client.send(request, stream=True, follow_redirects=False)
            try:
                if response.next_request is not None:  # a redirect with a Location; checked on the next turn
                    if redirects == self.max_redirects:
                        raise FetchRefused(f"more than {self.max_redirects} redirects (last at {host_of(hop[0])})")
                    hop[0] = str(response.next_request.url)
                    continue
                return await _body(response, host_of(hop[0]), max_bytes)
            finally:
                await response.aclose()
        raise AssertionError("unreachable: the last turn returns or raises")


def pinned_request(client: httpx.AsyncClient, url: str, address: str | None) -> httpx.Request:
    """GET `url`, connecting to `address` when given: the IP in the URL, the name in the Host header and in
    TLS (`sni_hostname`, which is also the name the certificate must match)."""
    if address is None:
        return client.build_request("GET", url)
    parsed = httpx.URL(url)
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    host_header = parsed.host if parsed.port is None else f"{parsed.host}:{parsed.port}"
    return client.build_request("GET", parsed.copy_with(host=str(ip)), headers={"Host": host_header},
                                extensions={"sni_hostname": parsed.host})


async def _body(response: httpx.Response, host: str, max_bytes: int) -> bytes:
    if not 200 <= response.status_code < 300:  # a 3xx without a Location is no file either
        raise FetchError(f"HTTP {response.status_code} from {host}")
    try:
        return await read_capped(response, max_bytes)
    except BodyTooLarge as exc:
        what = f"announces {exc.declared} bytes" if exc.declared is not None else f"sent more than {max_bytes} bytes"
        raise FetchError(f"{host} {what}, over the cap") from exc
