"""Scale-out benchmark: the 1,000-user burst on PostgreSQL + Redis, one front and 1, 2 and 4 workers.

Every run gets a fresh PostgreSQL database and an emptied Redis database; the front (`python -m bot`) and
the workers (`python -m bot.worker`) are subprocesses against the loopback fake Bot API and a fake
OpenAI-compatible provider that waits 200 ms (both in this process). Printed per worker count: answered,
reply latency p50/p99, throughput, and CPU ms per message in the front and in the workers (from
/proc/<pid>/stat). Targets: nothing lost; the front spends at most 1 ms of CPU per message; 2 workers give
at least 1.6 times the throughput of 1. Figures only, no asserts.

    .venv/bin/python bench/scale_out.py [--users 1000] [--latency 0.2] [--workers 1,2,4]
        [--postgres postgresql+asyncpg://postgres@127.0.0.1:5432/postgres] [--redis redis://127.0.0.1:6379/12]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bot_load import (  # noqa: E402
    FIRST_USER,
    cpu_seconds,
    environment,
    final_reply_at,
    percentile,
    start_fakes,
    wait_all,
)
from tests.e2e.distributed import PgDatabase, WorkerProcess, flush_redis  # noqa: E402
from tests.e2e.harness import BotProcess  # noqa: E402


@dataclass
class Figures:
    workers: int
    answered: int
    users: int
    p50_ms: float
    p99_ms: float
    throughput: float  # answers per second, first push to last answer
    front_cpu_ms: float
    worker_cpu_ms: float


async def one_run(workers: int, users: int, latency: float, pg_admin: str, redis: str, keep: bool,
                  durable: bool = True, sends_per_second: float = 10_000) -> Figures:
    tmp = Path(tempfile.mkdtemp(prefix="scale-out-"))
    await flush_redis(redis)
    db = await PgDatabase(pg_admin).create()
    if not durable:  # what the commits' fsyncs cost: a setting of the bench's own database only
        await db.rows(f'ALTER DATABASE "{db.name}" SET synchronous_commit = off')
    tg, llm, providers = await start_fakes(tmp, latency)
    env = {**environment(tmp, tg, providers), "DATABASE_URL": db.url, "REDIS_URL": redis,
           "WORKER_CONCURRENCY": "64", "THROTTLE_RATE": "1000",
           # the fake Bot API has no flood limit: Telegram's 30 a second would cap every run at ~30 answers/s
           "TELEGRAM_SENDS_PER_SECOND": str(sends_per_second)}
    front = BotProcess(env, tmp / "front.log", tg)
    procs = [WorkerProcess(env, tmp / f"worker{n}.log", tg) for n in range(workers)]
    loop = asyncio.get_running_loop()
    try:
        await front.start()
        for proc in procs:
            await proc.start()
        tg.push_message(FIRST_USER - 1, "warm up")
        await wait_all(tg, [FIRST_USER - 1], 60)
        front_before = cpu_seconds(front.pid)
        workers_before = sum(cpu_seconds(p.pid) for p in procs)
        ids = list(range(FIRST_USER, FIRST_USER + users))
        pushed: dict[int, float] = {}
        t0 = loop.time()
        for uid in ids:
            pushed[uid] = loop.time()
            tg.push_message(uid, f"Hello, I am user {uid}", first_name=f"U{uid}")
        await wait_all(tg, ids, 300)
        front_cpu = cpu_seconds(front.pid) - front_before
        worker_cpu = sum(cpu_seconds(p.pid) for p in procs) - workers_before
        await where_time_went(db)
        done = {u: at for u in ids if (at := final_reply_at(tg, u)) is not None}
        lat = [(done[u] - pushed[u]) * 1000 for u in done] or [float("nan")]
        wall = (max(done.values()) - t0) if done else float("nan")
        return Figures(workers, len(done), users, percentile(lat, 0.5), percentile(lat, 0.99), len(done) / wall,
                       front_cpu / users * 1000, worker_cpu / users * 1000)
    finally:
        for proc in (front, *procs):
            await proc.stop(grace=30.0)
        await tg.stop()
        await llm.stop()
        await db.drop()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f'logs kept in {tmp}')


async def where_time_went(db: PgDatabase) -> None:
    """Medians from the request log: reserved -> provider called (queue and start), the call itself, and
    call answered -> request closed (streaming to Telegram and the close)."""
    rows = await db.rows(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM a.started_at - r.created_at)) AS before,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY a.latency_ms) AS call,"
        " percentile_cont(0.5) WITHIN GROUP (ORDER BY EXTRACT(EPOCH FROM r.finished_at - a.started_at)"
        "   - a.latency_ms / 1000.0) AS after"
        " FROM requests r JOIN attempts a ON a.request_id = r.id WHERE r.status = 'served'")
    if rows and rows[0]["call"] is not None:
        row = rows[0]
        print(f"  request log p50: reserved -> provider called {row['before'] * 1000:.0f} ms, "
              f"call {row['call']:.0f} ms, answered -> closed {row['after'] * 1000:.0f} ms", flush=True)


async def run(args: argparse.Namespace) -> None:
    results = []
    for workers in [int(n) for n in args.workers.split(",")]:
        figures = await one_run(workers, args.users, args.latency, args.postgres, args.redis, args.keep,
                                not args.no_fsync)
        results.append(figures)
        print(f"{workers} worker(s): answered {figures.answered}/{figures.users}, p50 {figures.p50_ms:.0f} ms, "
              f"p99 {figures.p99_ms:.0f} ms, throughput {figures.throughput:.0f} msg/s, CPU per message: "
              f"front {figures.front_cpu_ms:.2f} ms, workers {figures.worker_cpu_ms:.2f} ms", flush=True)
    base = results[0]
    lost = sum(r.users - r.answered for r in results)
    print(f"targets: nothing lost {'OK' if lost == 0 else f'MISSED ({lost} unanswered)'}; front CPU <= 1 ms "
          f"per message {'OK' if all(r.front_cpu_ms <= 1 for r in results) else 'MISSED'} "
          f"(worst {max(r.front_cpu_ms for r in results):.2f} ms)")
    for r in results[1:]:
        ratio = r.throughput / base.throughput
        verdict = f" (target >= 1.6: {'OK' if ratio >= 1.6 else 'MISSED'})" if r.workers == 2 * base.workers else ""
        print(f"throughput {r.workers} workers / {base.workers}: {ratio:.2f}x{verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.2, help="provider latency in seconds")
    parser.add_argument("--workers", default="1,2,4", help="worker counts to run, comma-separated")
    parser.add_argument("--postgres", default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--keep", action="store_true", help="keep the temp dirs (logs)")
    parser.add_argument("--no-fsync", action="store_true",
                        help="synchronous_commit=off on the bench database: shows what commit flushes cost")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
