"""A dead primary must cost (almost) nothing: 1,000 requests with the primary answering 402, then with it
hanging past its timeout, against a run where the primary is absent from the route.

One process, two loopback fakes (tests/fakes/openai.py): "primary" (openai) and "backup" (groq). Prints
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

from loguru import logger

from providers.config import ManagerSettings, Prices, ProviderConfig, ProvidersConfig, RouteConfig
from providers.errors import AllProvidersFailed
from providers.manager import ProviderManager
from providers.types import Category, GenerationRequest
from tests.fakes.openai import FakeOpenAI

PRIMARY_TIMEOUT_S = 0.2
WARMUP, BLOCK = 100, 10
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
    """One scenario: its own fakes and manager; requests are timed one by one."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.latencies: list[float] = []
        self.failed = 0
        self.stack = contextlib.AsyncExitStack()

    async def start(self, n: int) -> None:
        self.primary = await self.stack.enter_async_context(FakeOpenAI("openai"))
        self.backup = await self.stack.enter_async_context(FakeOpenAI("groq"))
        route = ("backup",) if self.name == "absent" else ("primary", "backup")
        self.manager = ProviderManager(config(self.primary, self.backup, route))
        self.stack.push_async_callback(self.manager.aclose)
        for i in range(WARMUP):  # warm connections to the backup, without touching the primary
            await self.manager.generate(GenerationRequest(Category.TEXT, prompt=f"warm {i}"), route=["backup"])
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
    runs = [Run(name) for name in ("absent", "402", "hang")]
    for run in runs:
        await run.start(n)
    # Interleaved in blocks, so drift in the machine hits every scenario alike.
    for block in range(n // BLOCK):
        for run in runs[block % 3:] + runs[:block % 3]:
            for i in range(BLOCK):
                await run.request(block * BLOCK + i)
    base = statistics.median(runs[0].latencies)
    print(f"{n} sequential chat requests per run (interleaved in blocks of {BLOCK}); primary timeout "
          f"{PRIMARY_TIMEOUT_S} s; loopback fakes")
    print(f"{'run':<10}{'primary calls':>14}{'failed':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'p50 ratio':>11}")
    for run in runs:
        ordered = sorted(run.latencies)
        p50, p99 = statistics.median(ordered), ordered[int(0.99 * (len(ordered) - 1))]
        print(f"{run.name:<10}{len(run.primary.calls):>14}{run.failed:>8}{p50:9.3f}{p99:9.3f}{ordered[-1]:9.1f}"
              f"{p50 / base:11.3f}")
    print("targets: 1 primary call per cooldown window (402: 1 h long cooldown; hang: the circuit, 60 s), "
          "p50 ratio <= 1.05")
    for run in runs:
        await run.stack.aclose()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
