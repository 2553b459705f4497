"""/metrics through the real app: requests served, refused, canceled and failed, then one scrape over loopback."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import Metrics
from bot.webhook import run_webhook
from tests.bot.core_harness import FIRST_REPLY, CoreHarness, eventually
from tests.fakes.openai import openai_error

USER, POOR = 2002, 3003
CHAT = {"category": "text", "label": "Fast chat"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of the page, keyed by its name and labels."""
    async with aiohttp.ClientSession() as client, client.get(url) as response:
        assert response.status == 200 and response.content_type == "text/plain"
        text = await response.text()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def test_metrics_count_what_happened_to_requests_and_show_provider_health(tmp_path: Path) -> None:
    port = free_port()
    async with CoreHarness.start(tmp_path, metrics_host="127.0.0.1", metrics_port=port) as h:
        await h.user_with_credits(USER, 10)
        await h.user_with_credits(POOR, 0)

        await h.say(USER, "hello")  # served by the first provider
        assert FIRST_REPLY in h.tg.texts(USER)

        h.first.hang = True  # a request that runs until /cancel; meanwhile another one is refused as busy
        running = h.say_later(USER, "never answered")
        await eventually(lambda: len(h.first.calls_to("/chat/completions")) == 2)
        await h.say(USER, "and this?")
        await h.say(USER, "/cancel")
        await asyncio.wait_for(running, 5)
        h.first.hang = False

        limited = openai_error("Rate limit reached", "requests", "rate_limit_exceeded")
        h.first.fail_next(429, limited, headers={"retry-after": "110"})
        h.second.fail_next(429, limited, headers={"retry-after": "170"})
        await h.say(USER, "anyone?")  # both providers rate limited: failed, refunded

        await h.say(POOR, "hello")  # no credits: refused before any work
        assert [r["status"] for r in h.requests(USER)] == ["served", "canceled", "refused", "failed"]

        m = await scrape(f"http://127.0.0.1:{port}/metrics")

    requests = "bot_requests_total"
    assert value(m, requests, **CHAT, provider="first", outcome="served") == 1
    assert value(m, requests, **CHAT, provider="", outcome="failed") == 1
    assert value(m, requests, **CHAT, provider="", outcome="canceled") == 1
    assert value(m, requests, **CHAT, provider="", outcome="refused") == 2
    assert value(m, "bot_request_refusals_total", **CHAT, reason="busy") == 1
    assert value(m, "bot_request_refusals_total", **CHAT, reason="insufficient") == 1
    # charged for three requests (served, canceled, failed); the canceled and the failed one given back
    assert value(m, "bot_credits_charged_total", **CHAT) == 3
    assert value(m, "bot_credits_refunded_total", **CHAT) == 2
    assert value(m, "bot_request_duration_seconds_count", category="text", outcome="served") == 1
    assert value(m, "bot_request_duration_seconds_count", category="text", outcome="failed") == 1

    attempts = "bot_provider_attempts_total"
    assert value(m, attempts, provider="first", category="text", kind="ok") == 1
    assert value(m, attempts, provider="first", category="text", kind="rate_limited") == 1
    assert value(m, attempts, provider="second", category="text", kind="rate_limited") == 1
    assert value(m, "bot_provider_attempt_duration_seconds_count", provider="first", category="text") == 2

    # the 429s cooled both providers down for their Retry-After; their circuits stay closed
    assert value(m, "bot_provider_blocked", provider="first", category="text", reason="rate_limited") == 1
    assert 100 < (value(m, "bot_provider_cooldown_seconds", provider="first", category="text") or 0) <= 110
    assert value(m, "bot_provider_blocked", provider="first", category="image", reason="rate_limited") is None
    assert value(m, "bot_provider_cooldown_seconds", provider="first", category="image") == 0
    assert value(m, "bot_provider_circuit", provider="first", category="text", state="closed") == 1
    assert value(m, "bot_provider_circuit", provider="first", category="text", state="open") == 0
    assert value(m, "bot_provider_enabled", provider="second") == 1
    assert value(m, "bot_queue_depth") == 0
    assert not any(str(USER) in v for _, labels in m for _, v in labels)  # never a user id


async def test_the_webhook_server_serves_metrics_too(tmp_path: Path) -> None:
    port = free_port()
    async with CoreHarness.start(tmp_path, webhook_url="https://bot.example.com/tg/hook", webhook_host="127.0.0.1",
                                 webhook_port=port, webhook_secret="s3cret_Token-1") as h:
        assert h.app is not None and not h.app.life.metrics.servers  # METRICS_PORT 0: no server of its own
        stop = asyncio.Event()
        server = asyncio.create_task(run_webhook(h.app, stop))
        await h.tg.wait_for(lambda: h.tg.webhook.get("url"))
        m = await scrape(f"http://127.0.0.1:{port}/metrics")
        stop.set()
        await asyncio.wait_for(server, 10)
    assert value(m, "bot_queue_depth") == 0
    assert value(m, "bot_provider_circuit", provider="first", category="text", state="closed") == 1


async def test_each_metrics_has_its_own_registry_and_server() -> None:
    one, two = Metrics(), Metrics()  # no collision: neither uses the global registry
    one.refused("text", "Fast chat", "busy")
    server = await one.serve("127.0.0.1", 0)
    try:
        m = await scrape(f"http://127.0.0.1:{server.port}/metrics")
    finally:
        await one.aclose()
        await one.aclose()
    assert value(m, "bot_request_refusals_total", category="text", label="Fast chat", reason="busy") == 1
    assert b"bot_request_refusals_total{" not in two.render()
