"""The outbound-fetch policy: which provider URLs may be fetched, redirects checked hop by hop, size and time caps."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from providers.outbound import FetchError, FetchRefused, OutboundPolicy, is_public_address, origin_of, origins
from tests.fakes.media_host import MediaHost


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.9.9.9", "10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "192.0.2.1",
    "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.1.2.3",
    "::ffff:169.254.169.254", "2001:db8::1", "not an address",
])
def test_loopback_private_link_local_multicast_reserved_and_unspecified_addresses_are_not_public(
        address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "93.184.215.14", "2606:4700:4700::1111",
                                     "::ffff:8.8.8.8"])
def test_internet_addresses_are_public(address: str) -> None:
    assert is_public_address(address)


def test_an_origin_is_scheme_host_and_port_with_the_default_port_filled_in() -> None:
    assert origin_of("https://API.example.com/v1") == ("https", "api.example.com", 443)
    assert origin_of("http://127.0.0.1:8080/v1") == ("http", "127.0.0.1", 8080)
    assert origin_of("http://[::1]:9/x") == ("http", "::1", 9)
    assert origin_of("ftp://example.com/") is None and origin_of("http://example.com:99999/") is None
    assert origins(["http://127.0.0.1:1/v1", "not a url"]) == {("http", "127.0.0.1", 1)}


def resolver(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        return table[host]
    return resolve


async def test_https_to_a_public_host_passes_and_to_a_host_with_any_private_address_is_refused() -> None:
    policy = OutboundPolicy(resolver=resolver({"cdn.example": ["93.184.215.14"],
                                               "sneaky.example": ["93.184.215.14", "10.0.0.5"],
                                               "mapped.example": ["::ffff:127.0.0.1"]}))
    await policy.check("https://cdn.example/out.png?sig=secret")
    with pytest.raises(FetchRefused, match=r"sneaky\.example resolves to 10\.0\.0\.5") as refused:
        await policy.check("https://sneaky.example/out.png?sig=secret")
    assert "sig=secret" not in str(refused.value)
    with pytest.raises(FetchRefused, match="not a public address"):
        await policy.check("https://mapped.example/x")
    with pytest.raises(FetchRefused, match="plain http"):
        await policy.check("http://cdn.example/out.png")
    with pytest.raises(FetchRefused, match="not an http"):
        await policy.check("file:///etc/passwd")


async def test_an_https_url_to_localhost_is_refused_by_its_resolved_address() -> None:
    with pytest.raises(FetchRefused, match="localhost resolves to"):
        await OutboundPolicy().check("https://localhost:9/secret")


@pytest.fixture
async def hosts() -> AsyncIterator[tuple[MediaHost, MediaHost, httpx.AsyncClient]]:
    async with MediaHost() as trusted, MediaHost() as other, httpx.AsyncClient() as client:
        yield trusted, other, client


def trusting(host: MediaHost) -> OutboundPolicy:
    return OutboundPolicy(origins([host.url + "/v1"]))


async def test_a_configured_origin_is_fetched_even_on_loopback(hosts: tuple[MediaHost, MediaHost,
                                                                              httpx.AsyncClient]) -> None:
    trusted, _, client = hosts
    assert await trusting(trusted).fetch(client, f"{trusted.url}/file/100", max_bytes=1000,
                                         deadline_s=5) == b"x" * 100


async def test_redirects_within_the_configured_origin_are_followed_up_to_five(
        hosts: tuple[MediaHost, MediaHost, httpx.AsyncClient]) -> None:
    trusted, _, client = hosts
    # /hop/4 -> 3 -> 2 -> 1 -> 0 -> /file/10: five redirects
    assert await trusting(trusted).fetch(client, f"{trusted.url}/hop/4", max_bytes=100, deadline_s=5) == b"x" * 10
    with pytest.raises(FetchRefused, match="more than 5 redirects"):
        await trusting(trusted).fetch(client, f"{trusted.url}/hop/5", max_bytes=100, deadline_s=5)


async def test_a_redirect_to_another_loopback_port_is_refused_before_it_is_fetched(
        hosts: tuple[MediaHost, MediaHost, httpx.AsyncClient]) -> None:
    trusted, other, client = hosts
    with pytest.raises(FetchRefused, match=r"127\.0\.0\.1"):
        await trusting(trusted).fetch(client, f"{trusted.url}/hop/1?to={other.url}/secret", max_bytes=1000,
                                      deadline_s=5)
    with pytest.raises(FetchRefused, match="localhost"):
        await trusting(trusted).fetch(client, f"http://localhost:{other.port}/secret", max_bytes=1000,
                                      deadline_s=5)
    assert other.calls == []


async def test_a_body_over_the_cap_is_aborted_announced_or_not(
        hosts: tuple[MediaHost, MediaHost, httpx.AsyncClient]) -> None:
    trusted, _, client = hosts
    with pytest.raises(FetchError, match="announces 5000 bytes, over the cap"):
        await trusting(trusted).fetch(client, f"{trusted.url}/file/5000", max_bytes=1000, deadline_s=5)
    with pytest.raises(FetchError, match="sent more than 1000 bytes"):
        await trusting(trusted).fetch(client, f"{trusted.url}/chunked/50000", max_bytes=1000, deadline_s=5)


async def test_a_body_that_trickles_past_the_total_deadline_is_aborted(
        hosts: tuple[MediaHost, MediaHost, httpx.AsyncClient]) -> None:
    trusted, _, client = hosts  # each byte comes well within any read timeout; the whole never does
    with pytest.raises(FetchError, match=r"took longer than 0\.5 s"):
        await trusting(trusted).fetch(client, f"{trusted.url}/trickle", max_bytes=1000, deadline_s=0.5)


async def test_an_http_error_names_the_status_and_host_only(
        hosts: tuple[MediaHost, MediaHost, httpx.AsyncClient]) -> None:
    trusted, _, client = hosts
    with pytest.raises(FetchError, match=r"HTTP 404 from 127\.0\.0\.1") as failed:
        await trusting(trusted).fetch(client, f"{trusted.url}/missing?token=abc", max_bytes=10, deadline_s=5)
    assert "token" not in str(failed.value)


async def test_the_checked_address_is_the_one_connected_to_with_the_name_kept_for_host_and_tls() -> None:
    """DNS rebinding: a name that resolved to a public address at the check must not be resolved again to
    connect (a second answer could be 127.0.0.1). The request goes to the checked IP; the name travels in
    the Host header and as the TLS server name, which the certificate is checked against."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"png bytes")

    policy = OutboundPolicy(resolver=resolver({"cdn.example": ["93.184.215.14"],
                                               "v6.example": ["2606:2800:220:1:248:1893:25c8:1946"]}))
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        assert await policy.fetch(client, "https://cdn.example/out.png?sig=s", max_bytes=100, deadline_s=5) \
            == b"png bytes"
        await policy.fetch(client, "https://v6.example:8443/x", max_bytes=100, deadline_s=5)
    first, second = seen
    assert first.url.host == "93.184.215.14" and first.url.path == "/out.png" and first.url.query == b"sig=s"
    assert first.headers["host"] == "cdn.example" and first.extensions["sni_hostname"] == "cdn.example"
    assert second.url.host == "2606:2800:220:1:248:1893:25c8:1946" and second.url.port == 8443
    assert second.headers["host"] == "v6.example:8443" and second.extensions["sni_hostname"] == "v6.example"


async def test_a_configured_origin_is_fetched_by_its_name(hosts: tuple[MediaHost, MediaHost,
                                                                       httpx.AsyncClient]) -> None:
    trusted, _, client = hosts
    assert await trusting(trusted).check(trusted.url + "/file/10") is None  # trusted as configured: no pin
    assert len(await trusting(trusted).fetch(client, trusted.url + "/file/10", max_bytes=100, deadline_s=5)) == 10
