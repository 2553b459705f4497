"""Load benchmark: 1,000 users each send a message at once to `python -m bot`.

The bot runs as a subprocess against the loopback fake Bot API and a fake OpenAI-compatible provider that
waits 200 ms before answering. Printed: wall time until every user has the full reply, reply latency
p50/p99 per user (from the update being pushed to the final reply text being on Telegram), the bot's peak
RSS (VmHWM), its CPU time per message, and the Bot API traffic it took. Targets: all answered, p50 at most
half the wall time (answers go out as they are ready, not all at the end), at most 4 ms of CPU per
message, p99 <= 500 ms, RSS <= 150 MB. Figures only, no asserts. `bench/request_path.py` counts the
database round trips of one message.

    .venv/bin/python bench/bot_load.py [--users 1000] [--latency 0.2] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.harness import BotProcess  # noqa: E402
from tests.fakes.openai import FakeOpenAI  # noqa: E402
from tests.fakes.telegram import FakeTelegram  # noqa: E402

KEY = "sk-bench-test"
REPLY = "Sure, here is a short answer from the benchmark model, streamed word by word."
FIRST_USER = 10_000_000
PROVIDERS = """\
[providers.llm]
kind = "openai"
base_url = "{url}"
timeout_s = 30
models = {{ text = "gpt-4o-mini" }}
prices = {{ text_in_per_1k = 0.00015, text_out_per_1k = 0.0006 }}

[routes]
text = ["llm"]

[labels."Chat"]
category = "text"
credits = 1
"""


def environment(tmp: Path, tg: FakeTelegram, providers: Path) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin", "HOME": str(tmp), "MPLCONFIGDIR": str(tmp), "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1", "BOT_TOKEN": tg.token, "TELEGRAM_API_URL": tg.url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp / 'bot.db'}", "PROVIDERS_FILE": str(providers),
        "ADMIN_IDS": "1", "FREE_CREDITS": "100", "DIGEST_TIME": "03:17", "TIMEZONE": "UTC",
        "LOG_LEVEL": "INFO", "LLM_API_KEY": KEY, "WEBHOOK_URL": "",
        # the fake Bot API has no flood limit: Telegram's 30 messages a second per bot would cap the burst at
        # ~30 answers a second and hide what the bot itself can do
        "TELEGRAM_SENDS_PER_SECOND": "10000",
    }


def peak_rss_mb(pid: int) -> tuple[float, float]:
    """(VmHWM, VmRSS) in MB from /proc/<pid>/status."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            fields[key] = int(value.split()[0]) / 1024
    return fields.get("VmHWM", 0.0), fields.get("VmRSS", 0.0)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def final_reply_at(tg: FakeTelegram, chat_id: int) -> float | None:
    """Loop time at which the whole reply first stood in a message of this chat."""
    times = [at for m in tg.sent.get(chat_id, []) for text, at in zip(m.history, m.history_at, strict=True)
             if text == REPLY]
    return min(times) if times else None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def wait_all(tg: FakeTelegram, users: list[int], limit_s: float) -> None:
    """Poll every 50 ms (a predicate re-checked on every API call would steal the fake's CPU)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    waiting = set(users)
    while waiting and loop.time() < deadline:
        waiting = {u for u in waiting if final_reply_at(tg, u) is None}
        await asyncio.sleep(0.05)


async def start_fakes(tmp: Path, latency: float) -> tuple[FakeTelegram, FakeOpenAI, Path]:
    """The fake Bot API, the fake provider answering after `latency` seconds, and a providers file for it."""
    tg, llm = FakeTelegram(), FakeOpenAI(dialect="openai", api_key=KEY)
    llm.reply_text, llm.latency_s = REPLY, latency
    await tg.start()
    await llm.start()
    providers = tmp / "providers.toml"
    providers.write_text(PROVIDERS.format(url=llm.url), encoding="utf-8")
    return tg, llm, providers


async def run(users: int, latency: float, keep: bool) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bot-load-"))
    tg, llm, providers = await start_fakes(tmp, latency)
    bot = BotProcess(environment(tmp, tg, providers), tmp / "bot.log", tg)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        await bot.start()
        print(f"bot polling after {loop.time() - started:.2f} s (pid {bot.pid}); log: {bot.log_path}")
        # warm-up: first-use costs (imports, first DB connection) are not what this measures
        tg.push_message(FIRST_USER - 1, "warm up")
        await wait_all(tg, [FIRST_USER - 1], 30)
        calls_before, cpu_before = len(tg.calls), cpu_seconds(bot.pid)

        ids = list(range(FIRST_USER, FIRST_USER + users))
        pushed = {}
        t0 = loop.time()
        for uid in ids:
            pushed[uid] = loop.time()
            tg.push_message(uid, f"Hello, I am user {uid}", first_name=f"U{uid}")
        await wait_all(tg, ids, 120)
        hwm, rss = peak_rss_mb(bot.pid)
        busy = cpu_seconds(bot.pid) - cpu_before
        report(tg, llm, ids, pushed, t0, calls_before, hwm, rss, latency)
        per_user_ms = busy / len(ids) * 1000
        print(f"bot CPU time during the burst: {busy:.1f} s ({per_user_ms:.1f} ms per user; "
              f"the bot is one event loop, so CPU time close to the wall time means CPU-bound); "
              f"target <= 4 ms per message {'OK' if per_user_ms <= 4 else 'MISSED'}")
    finally:
        stopping = loop.time()
        code = await bot.stop(grace=30.0)
        print(f"bot stopped by SIGTERM in {loop.time() - stopping:.1f} s (exit code {code})")
        await tg.stop()
        await llm.stop()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def report(tg: FakeTelegram, llm: FakeOpenAI, ids: list[int], pushed: dict[int, float], t0: float,
           calls_before: int, hwm: float, rss: float, latency: float) -> None:
    done = {u: at for u in ids if (at := final_reply_at(tg, u)) is not None}
    lat = [(done[u] - pushed[u]) * 1000 for u in done]
    first = [(min(m.history_at[0] for m in tg.sent[u]) - pushed[u]) * 1000 for u in ids if tg.sent.get(u)]
    methods = Counter(c.path.rsplit("/", 1)[-1] for c in tg.calls[calls_before:])
    print(f"users: {len(ids)}, answered with the full reply: {len(done)}, provider latency {latency * 1000:.0f} ms")
    if lat:
        wall_ms = (max(done.values()) - t0) * 1000
        p50 = percentile(lat, 0.5)
        print(f"wall time until all answered: {wall_ms / 1000:.2f} s")
        print(f"reply latency ms: p50 {p50:.0f}  p99 {percentile(lat, 0.99):.0f}  "
              f"max {max(lat):.0f}  mean {statistics.fmean(lat):.0f}")
        print(f"p50 / wall time: {p50 / wall_ms:.2f} (target <= 0.50: {'OK' if p50 <= wall_ms / 2 else 'MISSED'})")
    if first:
        print(f"first message latency ms: p50 {percentile(first, 0.5):.0f}  p99 {percentile(first, 0.99):.0f}")
    print(f"bot peak RSS (VmHWM): {hwm:.1f} MB, RSS at the end: {rss:.1f} MB")
    print(f"Bot API calls: {dict(methods.most_common())}")
    print(f"provider calls: {len(llm.calls_to('/chat/completions'))}")
    missing = [u for u in ids if u not in done][:5]
    if missing:
        print(f"not answered (first 5): {[(u, tg.texts(u)) for u in missing]}")
    print(f"targets: all answered {'OK' if len(done) == len(ids) else 'MISSED'}, "
          f"p99 <= 500 ms {'OK' if lat and percentile(lat, 0.99) <= 500 else 'MISSED'}, "
          f"RSS <= 150 MB {'OK' if hwm <= 150 else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.2, help="provider latency in seconds")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (log, database)")
    args = parser.parse_args()
    asyncio.run(run(args.users, args.latency, args.keep))


if __name__ == "__main__":
    main()
