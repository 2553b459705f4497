"""Prometheus metrics of one process (a front or a worker), served as text at /metrics.

Each `Metrics` owns its registry (never the global one), so several apps in one process do not collide.
Labels are bounded: categories, label names and providers come from the providers file, kinds and
reasons from fixed sets; never a user id or a request id. The names, and what counts each one, are in
docs/interfaces.md ("Metrics").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from bot.errors import StartupError
from providers.health import CircuitState
from providers.manager import ProviderHealth

OUTCOMES = ("served", "failed", "canceled", "refused")
REQUEST_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800)
ATTEMPT_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("bot_requests", "Requests that reached a terminal state in this process; provider "
                                "is the one that served (empty unless served)",
                                ["category", "label", "provider", "outcome"], registry=r)
        self.refusals = Counter("bot_request_refusals", "Requests refused before any work (busy, insufficient, "
                                "budget_day, budget_month)", ["category", "label", "reason"], registry=r)
        self.request_seconds = Histogram("bot_request_duration_seconds", "From the message to the terminal state",
                                         ["category", "outcome"], buckets=REQUEST_BUCKETS, registry=r)
        self.attempts = Counter("bot_provider_attempts", "Provider calls by outcome: ok or the error kind",
                                ["provider", "category", "kind"], registry=r)
        self.attempt_seconds = Histogram("bot_provider_attempt_duration_seconds", "One provider call",
                                         ["provider", "category"], buckets=ATTEMPT_BUCKETS, registry=r)
        self.charged = Counter("bot_credits_charged", "Credits charged at reservation", ["category", "label"],
                               registry=r)
        self.refunded = Counter("bot_credits_refunded", "Credits given back by a failure or a cancel",
                                ["category", "label"], registry=r)
        self._live = _Live()
        r.register(self._live)
        self.servers: list[MetricsServer] = []  # started by serve(); closed by aclose()

    # --- what the app reports as it happens ------------------------------------------------------
    def reserved(self, category: str, label: str, credits: int) -> None:
        if credits:
            self.charged.labels(category, label).inc(credits)

    def refused(self, category: str, label: str, reason: str) -> None:
        self.requests.labels(category, label, "", "refused").inc()
        self.refusals.labels(category, label, reason).inc()

    def request_closed(self, category: str, label: str, provider: str, outcome: str, latency_s: float | None,
                       refunded: int = 0) -> None:
        """A terminal transition this process made (served, failed, canceled); latency None when unknown."""
        self.requests.labels(category, label, provider if outcome == "served" else "", outcome).inc()
        if latency_s is not None:
            self.request_seconds.labels(category, outcome).observe(max(0.0, latency_s))
        if refunded:
            self.refunded.labels(category, label).inc(refunded)

    def attempt(self, provider: str, category: str, kind: str | None, latency_s: float) -> None:
        self.attempts.labels(provider, category, kind or "ok").inc()
        self.attempt_seconds.labels(provider, category).observe(max(0.0, latency_s))

    # --- read at scrape time -------------------------------------------------------------------
    def set_queue_depth_source(self, source: Callable[[], int]) -> None:
        """Requests waiting for their turn (embedded mode), or the worker queue's depth."""
        self._live.queue_depth = source

    def watch_providers(self, snapshot: Callable[[], Sequence[ProviderHealth]], now: Callable[[], datetime]) -> None:
        """Cooldowns and circuits per provider and category, read from `snapshot()` at each scrape."""
        self._live.snapshot, self._live.now = snapshot, now

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def handle(self, request: web.Request) -> web.Response:
        """GET /metrics, for any aiohttp app (the webhook server adds it too)."""
        return web.Response(body=self.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def serve(self, host: str, port: int) -> MetricsServer:
        """A standalone server with GET /metrics only; port 0 takes a free one (see `MetricsServer.port`)."""
        app = web.Application()
        app.router.add_get("/metrics", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            await runner.cleanup()
            raise StartupError(f"cannot serve metrics on {host}:{port} (METRICS_HOST/METRICS_PORT): {exc}") from exc
        server = MetricsServer(runner)
        self.servers.append(server)
        return server

    async def aclose(self) -> None:
        """Stop every server serve() started; safe twice."""
        while self.servers:
            await self.servers.pop().aclose()


class MetricsServer:
    def __init__(self, runner: web.AppRunner) -> None:
        self.runner = runner

    @property
    def port(self) -> int:
        return int(self.runner.addresses[0][1])

    async def aclose(self) -> None:
        await self.runner.cleanup()


class _Live(Collector):
    """The gauges whose values exist elsewhere: asked for at scrape time, never stored here."""

    def __init__(self) -> None:
        self.queue_depth: Callable[[], int] | None = None
        self.snapshot: Callable[[], Sequence[ProviderHealth]] | None = None
        self.now: Callable[[], datetime] | None = None

    def describe(self) -> list[Metric]:
        return []  # values appear and go at scrape time: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("bot_queue_depth", "Requests waiting for a turn to start")
        depth.add_metric([], float(self.queue_depth()) if self.queue_depth is not None else 0.0)
        yield depth
        if self.snapshot is None or self.now is None:
            return
        families: dict[str, Any] = {
            "enabled": GaugeMetricFamily("bot_provider_enabled", "1 when the provider has its key and adapter",
                                         labels=["provider"]),
            "spent": GaugeMetricFamily("bot_provider_spent_today_micros", "Provider cost today, in micro-dollars",
                                       labels=["provider"]),
            "cooldown": GaugeMetricFamily("bot_provider_cooldown_seconds", "Seconds until the provider may be "
                                          "called again for the category (0: now)", labels=["provider", "category"]),
            "blocked": GaugeMetricFamily("bot_provider_blocked", "1 for each provider/category that may not be "
                                         "called now, with why", labels=["provider", "category", "reason"]),
            "circuit": GaugeMetricFamily("bot_provider_circuit", "1 for the circuit's state (closed, open, half_open)",
                                         labels=["provider", "category", "state"]),
            "failures": GaugeMetricFamily("bot_provider_consecutive_failures", "Failures since the last success",
                                          labels=["provider", "category"]),
        }
        now = self.now()
        for provider in self.snapshot():
            families["enabled"].add_metric([provider.name], 1.0 if provider.enabled else 0.0)
            families["spent"].add_metric([provider.name], float(provider.spent_today_micros))
            for category, health in provider.categories.items():
                where = [provider.name, str(category)]
                wait = 0.0 if health.cooldown_until is None else (health.cooldown_until - now).total_seconds()
                families["cooldown"].add_metric(where, max(0.0, wait))
                if health.cooldown_until is not None:
                    families["blocked"].add_metric([*where, health.reason or "unknown"], 1.0)
                for state in CircuitState:
                    families["circuit"].add_metric([*where, str(state)], 1.0 if health.circuit is state else 0.0)
                families["failures"].add_metric(where, float(health.consecutive_failures))
        yield from families.values()
