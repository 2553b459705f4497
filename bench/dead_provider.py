"""A dead primary must cost (almost) nothing: 1,000 requests with the primary answering 402, then with it
hanging past its timeout, against a run where the primary is absent from the route.

One process, loopback fakes (tests/fakes/openai.py): a "primary" (openai) per run, one shared "backup" (groq). Prints
how many calls reached the primary and the p50 latency ratio against the absent run. Targets: one call
per cooldown window (the window outlasts the run), ratio <= 1.05. No asserts: figures only.

    .venv/bin/python bench/dead_provider.py [N]
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from loguru import logger

from providers.config import ManagerSettings, Prices, ProviderConfig, ProvidersConfig, RouteConfig
from providers.errors import AllProvidersFailed
from providers.manager import ProviderManager, make_client
from providers.types import Category, GenerationRequest
from tests.fakes.openai import FakeOpenAI

PRIMARY_TIMEOUT_S = 0.2
WARMUP = 100
QUOTA_402 = {"error": {"message": "Insufficient Balance", "type": "invalid_request_error", "param": None,
                       "code": "invalid_request_error"}}


def config(primary: FakeOpenAI, backup: FakeOpenAI, route: tuple[str, ...]) -> ProvidersConfig:
    def provider(name: str, kind: str, url: str, timeout_s: float) -> ProviderConfig:
        return ProviderConfig(name=name, kind=kind, base_url=url, api_key="test-key", api_key_env="X",
                              timeout_s=timeout_s, models={Category.TEXT: f"{name}-model"},
                              prices=Prices(text_in_per_1k=150, text_out_per_1k=600))

    providers = {"primary": provider("primary", "openai", primary.url, PRIMARY_TIMEOUT_S),
                 "backup": provider("backup", "groq", backup.url, 10.0)}
    return ProvidersConfig("bench", providers, {Category.TEXT: RouteConfig(Category.TEXT, route)}, {},
                           ManagerSettings())  # the defaults: 1 h long cooldown, 60 s circuit


class Run:
    """One scenario: its own primary fake and manager. The backup fake and the HTTP client are shared by
    every run (two identical runs with separate servers differ by more than the 5% being measured)."""

    def __init__(self, name: str, backup: FakeOpenAI, client: httpx.AsyncClient) -> None:
        self.name, self.backup, self.client = name, backup, client
        self.latencies: list[float] = []
        self.failed = 0
        self.stack = contextlib.AsyncExitStack()

    async def start(self, n: int) -> None:
        self.primary = await self.stack.enter_async_context(FakeOpenAI("openai"))
        route = ("backup",) if self.name == "absent" else ("primary", "backup")
        self.manager = ProviderManager(config(self.primary, self.backup, route), client=self.client)
        self.stack.push_async_callback(self.manager.aclose)
        if self.name == "402":
            self.primary.fail_next(402, QUOTA_402, times=n)  # every call it gets is refused
        elif self.name == "hang":
            self.primary.hang = True

    async def request(self, i: int) -> None:
        start = time.perf_counter_ns()
        try:
            await self.manager.generate(GenerationRequest(Category.TEXT, prompt=f"question {i}"))
        except AllProvidersFailed:
            self.failed += 1
        self.latencies.append((time.perf_counter_ns() - start) / 1e6)


async def main(n: int) -> None:
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    async with FakeOpenAI("groq") as backup:
        client = make_client()
        runs = [Run(name, backup, client) for name in ("absent", "402", "hang")]
        for run in runs:
            await run.start(n)
        for i in range(WARMUP):  # warm connections to the backup, without touching a primary
            await runs[0].request(-i)
        runs[0].latencies.clear()
        # Round-robin, one request each in turn, so load from the rest of the machine hits every run alike.
        for i in range(n):
            for run in runs[i % 3:] + runs[:i % 3]:
                await run.request(i)
        report(n, runs)
        for run in runs:
            await run.stack.aclose()
        await client.aclose()


def report(n: int, runs: list[Run]) -> None:
    absent = runs[0].latencies
    base = statistics.median(absent)
    print(f"{n} sequential chat requests per run (round-robin, one request each in turn); primary timeout "
          f"{PRIMARY_TIMEOUT_S} s; loopback fakes")
    print(f"{'run':<10}{'primary calls':>14}{'failed':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'p50 ratio':>11}"
          f"{'paired':>9}")
    for run in runs:
        ordered = sorted(run.latencies)
        p50, p99 = statistics.median(ordered), ordered[int(0.99 * (len(ordered) - 1))]
        # The median of per-round ratios: each round's requests ran back to back, so a busy machine
        # (other processes on the same cores) cancels out better than in the ratio of two medians.
        paired = statistics.median(mine / theirs for mine, theirs in zip(run.latencies, absent, strict=True))
        print(f"{run.name:<10}{len(run.primary.calls):>14}{run.failed:>8}{p50:9.3f}{p99:9.3f}{ordered[-1]:9.1f}"
              f"{p50 / base:11.3f}{paired:9.3f}")
    print("targets: 1 primary call per cooldown window (402: 1 h long cooldown; hang: the circuit, 60 s), "
          "p50 ratio <= 1.05")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
