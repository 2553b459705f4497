"""What the manager adds to one chat request: a direct httpx call vs the same request through it.

One process, one loopback fake OpenAI (tests/fakes/openai.py), one shared client (the manager's own
settings). Sequential requests after a warm-up, direct and managed alternating one by one, so load from
the rest of the machine hits both alike. Prints figures only; targets: median added <= 0.2 ms, p99 <= 1 ms.

    .venv/bin/python bench/manager_overhead.py [N]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from loguru import logger

from providers.config import ManagerSettings, Prices, ProviderConfig, ProvidersConfig, RouteConfig
from providers.manager import ProviderManager, make_client
from providers.types import Category, GenerationRequest
from tests.fakes.openai import FakeOpenAI

WARMUP = 300


def config(base_url: str) -> ProvidersConfig:
    openai = ProviderConfig(name="openai", kind="openai", base_url=base_url, api_key="test-key",
                            api_key_env="OPENAI_API_KEY", timeout_s=10.0, models={Category.TEXT: "gpt-4o-mini"},
                            prices=Prices(text_in_per_1k=150, text_out_per_1k=600))
    route = RouteConfig(Category.TEXT, ("openai",))
    return ProvidersConfig("bench", {"openai": openai}, {Category.TEXT: route}, {}, ManagerSettings())


async def direct(client: httpx.AsyncClient, url: str, prompt: str) -> str:
    """What a hand-written call does: the same JSON body, headers, timeout and parsing."""
    response = await client.post(f"{url}/chat/completions", timeout=10.0,
                                 headers={"Authorization": "Bearer test-key"},
                                 json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]})
    response.raise_for_status()
    return str(response.json()["choices"][0]["message"]["content"])


async def managed(manager: ProviderManager, prompt: str) -> str:
    result = await manager.generate(GenerationRequest(Category.TEXT, prompt=prompt))
    return result.text or ""


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main(n: int) -> None:
    logger.remove()  # as in production at INFO: nothing is logged on the success path
    logger.add(sys.stderr, level="WARNING")
    async with FakeOpenAI() as fake:
        client = make_client()
        manager = ProviderManager(config(fake.url), client=client)
        for i in range(WARMUP):
            await direct(client, fake.url, f"warm {i}")
            await managed(manager, f"warm {i}")
        times: dict[str, list[float]] = {"direct": [], "manager": []}
        for k in range(n):  # one of each in turn, who goes first alternating
            for name in ("direct", "manager") if k % 2 == 0 else ("manager", "direct"):
                prompt = f"question {k}"
                start = time.perf_counter_ns()
                text = await (direct(client, fake.url, prompt) if name == "direct" else managed(manager, prompt))
                times[name].append((time.perf_counter_ns() - start) / 1e6)
                assert text == fake.reply_text
        await manager.aclose()
        await client.aclose()
    d, m = times["direct"], times["manager"]
    print(f"requests: {len(d)} direct + {len(m)} through the manager (after {WARMUP} warm-up each), loopback fake")
    print(f"{'':10}{'median ms':>12}{'p99 ms':>10}{'mean ms':>10}")
    for name, samples in times.items():
        print(f"{name:10}{statistics.median(samples):12.3f}{pct(samples, 0.99):10.3f}{statistics.fmean(samples):10.3f}")
    print(f"added by the manager: median {statistics.median(m) - statistics.median(d):+.3f} ms (target <= 0.2), "
          f"p99 {pct(m, 0.99) - pct(d, 0.99):+.3f} ms (target <= 1)")
    # Each pair ran back to back: the median of the differences shrugs off a busy machine better.
    added = [mine - theirs for mine, theirs in zip(m, d, strict=True)]
    print(f"paired (manager minus direct, request by request): median {statistics.median(added):+.3f} ms")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
