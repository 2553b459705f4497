"""How fast are stats and request logging at scale? Prints figures; asserts nothing.

    python bench/stats_scale.py --rows 1000000 10000000 [--db PATH] [--keep] [--tz UTC Europe/Moscow]
    python bench/stats_scale.py --rows 1000000 --database-url postgresql+asyncpg://postgres@127.0.0.1/bench_stats

For each size: a SQLite file migrated by Alembic is filled with that many requests (~1.3 attempts each)
over 90 days, 12 providers, 5 categories, 10k users, using raw sqlite3 and executemany in big transactions
(indexes dropped during the fill and rebuilt after, as a bulk import would). With --database-url (or
DATABASE_URL) naming a PostgreSQL database, the bench creates that database (it refuses one that exists,
unless --existing), fills it with COPY (secondary indexes and foreign keys dropped during the fill, then
rebuilt, then VACUUM ANALYZE), and drops it at the end unless --keep. The rollups are then filled by
`db.repo.rollups.rebuild_rollups`, the same function the tests check against the write side. Every stats
query and the digest are timed (median of 5 runs) for today / 7d / 30d, then 10k requests with attempts are
logged through the real repository functions (per request: reserve, attempts, close, commit).
The ledger is not filled: balances are not what this measures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import literal, select
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from db.engine import make_engine, make_session_maker, upgrade_database
from db.periods import period_named
from db.repo import stats
from db.repo.lifecycle import close_failed, close_served, record_attempts, reserve_request
from db.repo.records import AttemptRecord, ServedRecord
from db.repo.rollups import rebuild_rollups

SELECT_ONE = select(literal(1))
OWNER = "bench"  # the process that logs the requests
FAR = datetime(2100, 1, 1, tzinfo=UTC)  # a lease that never runs out

USERS = 10_000
DAYS = 90
PROVIDERS = [f"provider{i:02d}" for i in range(12)]
CATEGORIES = ["text", "image", "image_edit", "video", "audio"]
CREDITS = [1, 3, 3, 10, 2]
TYPICAL_MS = [1500, 8000, 9000, 60000, 2500]
KINDS = ["rate_limited", "quota_exhausted", "auth", "unavailable", "invalid_response", "bad_request",
         "content_policy"]
KIND_P = [0.45, 0.05, 0.02, 0.35, 0.05, 0.05, 0.03]
STATUS_OF = {"rate_limited": 429, "quota_exhausted": 402, "auth": 401, "unavailable": 503,
             "invalid_response": 200, "bad_request": 400, "content_policy": 400}
CHUNK = 250_000


def route(category: int, position: int) -> int:
    return (category * 2 + position * 3) % len(PROVIDERS)


def stamps(seconds: np.ndarray) -> list[str]:
    """SQLAlchemy's SQLite DATETIME text ('YYYY-MM-DD HH:MM:SS.ffffff'), so string comparisons agree."""
    text = np.datetime_as_string((seconds * 1e6).astype("datetime64[us]"), unit="us")
    return np.char.replace(text, "T", " ").tolist()  # type: ignore[no-any-return]


def datetimes(seconds: np.ndarray) -> list[datetime]:
    """Naive UTC datetimes, as PostgreSQL's COPY takes them for a timestamp column."""
    return (seconds * 1e6).astype("datetime64[us]").tolist()  # type: ignore[no-any-return]


REQUEST_COLUMNS = ("id", "user_id", "chat_id", "label", "category", "prompt", "status", "route_first_provider",
                   "provider", "model", "fallback", "cost_micros", "credits_charged", "credits_refunded",
                   "latency_ms", "created_at", "finished_at")
ATTEMPT_COLUMNS = ("request_id", "provider", "model", "category", "position", "kind", "http_status", "latency_ms",
                   "cost_micros", "started_at")


def chunk_rows(rng: np.random.Generator, first_id: int, size: int, total: int, start: float,
               when: Callable[[np.ndarray], list[Any]]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """One chunk of requests and their attempts as tuples of REQUEST_COLUMNS and ATTEMPT_COLUMNS; `when`
    turns epoch seconds into what the database takes for a timestamp."""
    ids = np.arange(first_id, first_id + size)
    t = start + (ids - 1 + rng.random(size)) * (DAYS * 86400 / total)
    user = (rng.random(size) ** 2 * USERS).astype(np.int64) + 1  # a few users spend most
    cat = rng.integers(0, len(CATEGORIES), size)
    n_att = rng.choice([1, 2, 3], size=size, p=[0.75, 0.2, 0.05])
    served = rng.random(size) < 0.97
    attempts: list[tuple[Any, ...]] = []
    last_cost = np.zeros(size, dtype=np.int64)
    last_lat = np.zeros(size, dtype=np.int64)
    for pos in range(3):
        rows = np.nonzero(n_att > pos)[0]
        ok = (n_att[rows] == pos + 1) & served[rows]
        prov = (cat[rows] * 2 + pos * 3) % len(PROVIDERS)
        typical = np.array(TYPICAL_MS)[cat[rows]]
        lat = (typical * rng.lognormal(0, 0.5, rows.size) * np.where(ok, 1, 0.2)).astype(np.int64)
        cost = np.where(ok, (1000 + prov * 150) * (1 + cat[rows] * 20) * rng.uniform(0.5, 1.5, rows.size), 0)
        cost = cost.astype(np.int64)
        kinds = np.where(ok, None, rng.choice(np.array(KINDS, dtype=object), rows.size, p=KIND_P))
        last_cost[rows], last_lat[rows] = cost, lat
        attempts += zip(ids[rows].tolist(), [PROVIDERS[p] for p in prov], ["model"] * rows.size,
                        [CATEGORIES[c] for c in cat[rows]], [pos] * rows.size, kinds.tolist(),
                        [STATUS_OF.get(k, 200) for k in kinds], lat.tolist(), cost.tolist(),  # type: ignore[arg-type]
                        when(t[rows] + pos * 2), strict=True)
    charged = np.array(CREDITS)[cat]
    last_prov = [PROVIDERS[route(c, n - 1)] if s else None for c, n, s in zip(cat, n_att, served, strict=True)]
    requests = list(zip(
        ids.tolist(), user.tolist(), user.tolist(), [CATEGORIES[c] + " label" for c in cat],
        [CATEGORIES[c] for c in cat], ["a prompt"] * size, np.where(served, "served", "failed").tolist(),
        [PROVIDERS[route(c, 0)] for c in cat], last_prov, ["model"] * size, ((n_att > 1) & served).tolist(),
        np.where(served, last_cost, 0).tolist(), charged.tolist(), np.where(served, 0, charged).tolist(),
        last_lat.tolist(), when(t), when(t + last_lat / 1000), strict=True))
    return requests, attempts


def fill_chunk(con: sqlite3.Connection, rng: np.random.Generator, first_id: int, size: int, total: int,
               start: float) -> int:
    requests, attempts = chunk_rows(rng, first_id, size, total, start, stamps)
    con.executemany(f"INSERT INTO requests ({', '.join(REQUEST_COLUMNS)}) VALUES ({', '.join('?' * 17)})",
                    requests)
    con.executemany(f"INSERT INTO attempts ({', '.join(ATTEMPT_COLUMNS)}) VALUES ({', '.join('?' * 10)})",
                    attempts)
    return len(attempts)


def fill(path: Path, total: int) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-1000000")
    indexes = con.execute("SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL"
                          " AND tbl_name IN ('requests', 'attempts')").fetchall()
    for name, _ in indexes:
        con.execute(f"DROP INDEX {name}")
    now = time.time()
    con.execute("BEGIN")
    con.executemany("INSERT INTO users (id, username, credits, labels, created_at, last_seen_at)"
                    " VALUES (?, ?, 1000000, '{}', ?, ?)",
                    [(u, f"user{u}", *stamps(np.array([now - DAYS * 86400, now]))) for u in range(1, USERS + 1)])
    con.execute("COMMIT")
    rng = np.random.default_rng(7)
    started, attempts = time.perf_counter(), 0
    for first in range(1, total + 1, CHUNK):
        con.execute("BEGIN")
        attempts += fill_chunk(con, rng, first, min(CHUNK, total - first + 1), total, now - DAYS * 86400)
        con.execute("COMMIT")
        done = min(first + CHUNK - 1, total)
        print(f"  filled {done:>10,} requests, {attempts:>10,} attempts ({time.perf_counter() - started:.0f} s)",
              flush=True)
    for name, sql in indexes:
        t0 = time.perf_counter()
        con.execute(sql)
        print(f"  index {name}: {time.perf_counter() - t0:.0f} s", flush=True)
    con.execute("ANALYZE")
    con.close()


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def pg_fill(url: str, total: int) -> None:
    """The same rows as `fill`, into PostgreSQL by COPY. Secondary indexes and foreign keys go during the
    fill and come back after it (as a bulk import would do); then VACUUM ANALYZE, so the covering index is
    read alone (index-only scans need the visibility map)."""
    import asyncpg

    con = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await con.execute("SET synchronous_commit = off; SET maintenance_work_mem = '512MB'")
        foreign = await con.fetch(
            "SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS def FROM pg_constraint"
            " WHERE contype = 'f' AND conrelid::regclass::text IN ('requests', 'attempts')")
        indexes = await con.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
            " AND tablename IN ('requests', 'attempts') AND indexname NOT IN"
            " (SELECT conname FROM pg_constraint WHERE contype IN ('p', 'u'))")
        for fk in foreign:
            await con.execute(f'ALTER TABLE {fk["tbl"]} DROP CONSTRAINT "{fk["conname"]}"')
        for index in indexes:
            await con.execute(f'DROP INDEX "{index["indexname"]}"')
        now = time.time()
        joined, seen = datetimes(np.array([now - DAYS * 86400, now]))
        await con.copy_records_to_table(
            "users", columns=["id", "username", "credits", "labels", "created_at", "last_seen_at"],
            records=[(u, f"user{u}", 1_000_000, "{}", joined, seen) for u in range(1, USERS + 1)])
        rng = np.random.default_rng(7)
        started, attempts = time.perf_counter(), 0
        for first in range(1, total + 1, CHUNK):
            requests, rows = chunk_rows(rng, first, min(CHUNK, total - first + 1), total, now - DAYS * 86400,
                                        datetimes)
            await con.copy_records_to_table("requests", columns=list(REQUEST_COLUMNS), records=requests)
            await con.copy_records_to_table("attempts", columns=list(ATTEMPT_COLUMNS), records=rows)
            attempts += len(rows)
            done = min(first + CHUNK - 1, total)
            print(f"  filled {done:>10,} requests, {attempts:>10,} attempts ({time.perf_counter() - started:.0f} s)",
                  flush=True)
        # the ids were given: the sequences move past them, or the logging part would collide
        for table in ("requests", "attempts"):
            await con.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        for index in indexes:
            t0 = time.perf_counter()
            await con.execute(index["indexdef"])
            print(f"  index {index['indexname']}: {time.perf_counter() - t0:.0f} s", flush=True)
        for fk in foreign:
            t0 = time.perf_counter()
            await con.execute(f'ALTER TABLE {fk["tbl"]} ADD CONSTRAINT "{fk["conname"]}" {fk["def"]}')
            print(f"  foreign key {fk['conname']}: {time.perf_counter() - t0:.0f} s", flush=True)
        t0 = time.perf_counter()
        await con.execute("VACUUM ANALYZE")
        print(f"  vacuum analyze: {time.perf_counter() - t0:.0f} s", flush=True)
    finally:
        await con.close()


async def pg_admin(url: str, sql: str) -> Any:
    """Run `sql` on the server's `postgres` database (to create or drop the bench's own database)."""
    import asyncpg

    con = await asyncpg.connect(asyncpg_dsn(make_url(url).set(database="postgres").render_as_string(False)))
    try:
        return await (con.fetchval(sql) if sql.startswith("SELECT") else con.execute(sql))
    finally:
        await con.close()


async def timed(make: Callable[[], Awaitable[Any]], runs: int = 5) -> tuple[float, float]:
    """Median wall and CPU milliseconds (CPU of the whole process: the aiosqlite thread included). CPU
    moves far less than wall time when other work shares the machine."""
    wall, cpu = [], []
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        await make()
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return statistics.median(wall), statistics.median(cpu)


async def time_stats(url: str, tz: str) -> None:
    engine = make_engine(url)
    sessions = make_session_maker(engine)
    print(f"\n  stats query, ms (median of 5: wall / CPU), TIMEZONE={tz}")
    print(" " * 44 + "".join(f"{p:>14}" for p in ("today", "7d", "30d")))
    async with sessions() as s:
        queries: dict[str, Callable[[Any], Awaitable[Any]]] = {
            "provider_stats (all)": lambda p: stats.provider_stats(s, p),
            "provider_stats (text)": lambda p: stats.provider_stats(s, p, "text"),
            "fallback_rate": lambda p: stats.fallback_rate(s, p),
            "request_totals": lambda p: stats.request_totals(s, p),
            "cost_comparison (image)": lambda p: stats.cost_comparison(s, p, "image"),
            "recommended (video)": lambda p: stats.recommended(s, p, "video", 20),
            "top_users (10)": lambda p: stats.top_users(s, p, 10),
            "digest": lambda p: stats.digest(s, p),
        }
        for name, query in queries.items():
            cells = [await timed(lambda q=query, n=n: q(period_named(n, tz))) for n in ("today", "7d", "30d")]
            print(f"  {name:<42}" + "".join(f"{w:>8.1f} /{c:>4.0f}" for w, c in cells), flush=True)
        wall, cpu = await timed(lambda: stats.user_usage(s, random.randint(1, USERS), tz))
        print(f"  {'user_usage (/balance, a random user)':<42}{wall:>8.1f} /{cpu:>4.0f}")
    await engine.dispose()


def _attempts(rng: random.Random, cat: int) -> list[AttemptRecord]:
    n = rng.choices([1, 2, 3], [0.75, 0.2, 0.05])[0]
    return [AttemptRecord(PROVIDERS[route(cat, pos)], "model", CATEGORIES[cat], pos,
                          None if pos == n - 1 else "unavailable", 200 if pos == n - 1 else 503, 900.0,
                          1200 if pos == n - 1 else 0) for pos in range(n)]


async def log_one(s: Any, rng: random.Random, update_id: int, batched: bool) -> None:
    cat = rng.randrange(len(CATEGORIES))
    attempts = _attempts(rng, cat)
    res = await reserve_request(s, owner=OWNER, lease_until=FAR, tg_id=rng.randint(1, USERS), update_id=update_id,
                                label="label", category=CATEGORIES[cat], prompt="a prompt", credits=CREDITS[cat],
                                chat_id=1, route_first_provider=PROVIDERS[route(cat, 0)])
    assert res.ok and res.request_id is not None
    if not batched:
        for attempt in attempts:
            await record_attempts(s, res.request_id, [attempt])
        attempts = []
    if rng.random() < 0.97:
        served = ServedRecord(PROVIDERS[route(cat, len(attempts) - 1)], "model", 1200, 900.0,
                              usage={"output_tokens": 40})
        await close_served(s, res.request_id, OWNER, served, attempts)
    else:
        await close_failed(s, res.request_id, OWNER, error_kind="unavailable", message="all failed",
                           attempts=attempts)


async def time_logging(url: str, count: int, first_update: int, batched: bool) -> None:
    engine = make_engine(url)
    sessions = make_session_maker(engine)
    samples, rng = [], random.Random(3)
    cpu = time.process_time()
    for i in range(count):
        t0 = time.perf_counter()
        async with sessions() as s, s.begin():
            await log_one(s, rng, first_update + i, batched)
        samples.append((time.perf_counter() - t0) * 1000)
    cpu_ms = (time.process_time() - cpu) * 1000 / count
    await engine.dispose()
    samples.sort()
    how = "attempts passed to close" if batched else "record_attempts per attempt"
    print(f"  {how:<28} median {statistics.median(samples):.2f} ms, p99 {samples[int(len(samples) * 0.99)]:.2f}"
          f" ms, mean {statistics.fmean(samples):.2f} ms, CPU {cpu_ms:.2f} ms per request", flush=True)


async def statement_floor(url: str, count: int = 2000) -> None:
    """What one trivial statement costs through SQLAlchemy + aiosqlite here, for scale."""
    engine = make_engine(url)
    async with make_session_maker(engine)() as s:
        conn = await s.connection()
        t0 = time.perf_counter()
        for _ in range(count):
            await conn.execute(SELECT_ONE)
        floor = (time.perf_counter() - t0) * 1e6 / count
    await engine.dispose()
    driver = make_url(url).get_driver_name()
    print(f"  (for scale: one 'SELECT 1' through SQLAlchemy + {driver} costs {floor:.0f} us on this machine)")


async def rebuild(url: str) -> None:
    engine = make_engine(url)
    async with make_session_maker(engine)() as s, s.begin():
        await rebuild_rollups(s)
    await engine.dispose()


def run(rows: int, path: Path, tzs: list[str], log_count: int, existing: bool = False) -> None:
    print(f"\n=== {rows:,} requests -> {path}", flush=True)
    url = f"sqlite+aiosqlite:///{path}"
    if not existing:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        upgrade_database(url)
        t0 = time.perf_counter()
        fill(path, rows)
        t1 = time.perf_counter()
        asyncio.run(rebuild(url))
        print(f"  fill {t1 - t0:.0f} s, rollup rebuild {time.perf_counter() - t1:.0f} s,"
              f" file {path.stat().st_size / 1e9:.2f} GB", flush=True)
    measure(url, rows, tzs, log_count)


def run_postgres(rows: int, url: str, tzs: list[str], log_count: int, existing: bool, keep: bool) -> None:
    name = make_url(url).database
    if not name or name in ("postgres", "template0", "template1"):
        raise SystemExit(f"name a database of the bench's own in the URL, not {name!r}")
    print(f"\n=== {rows:,} requests -> PostgreSQL database {name}", flush=True)
    there = asyncio.run(pg_admin(url, f"SELECT count(*) FROM pg_database WHERE datname = '{name}'"))
    if not existing:
        if there:
            raise SystemExit(f"database {name} exists: the bench fills a database it creates (drop it first,"
                             " or time it as it is with --existing)")
        asyncio.run(pg_admin(url, f'CREATE DATABASE "{name}"'))
    try:
        if not existing:
            upgrade_database(url)
            t0 = time.perf_counter()
            asyncio.run(pg_fill(url, rows))
            t1 = time.perf_counter()
            asyncio.run(rebuild(url))
            size = asyncio.run(pg_admin(url, f"SELECT pg_database_size('{name}')"))
            print(f"  fill {t1 - t0:.0f} s, rollup rebuild {time.perf_counter() - t1:.0f} s,"
                  f" database {size / 1e9:.2f} GB", flush=True)
        measure(url, rows, tzs, log_count)
    finally:
        if not keep and not existing:
            asyncio.run(pg_admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def measure(url: str, rows: int, tzs: list[str], log_count: int) -> None:
    for tz in tzs:
        asyncio.run(time_stats(url, tz))
    print(f"\n  logging {log_count:,} requests through db.repo.lifecycle"
          " (reserve_request + attempts + close + commit, one transaction each):")
    asyncio.run(statement_floor(url))
    asyncio.run(time_logging(url, log_count, first_update=10 * rows, batched=False))
    asyncio.run(time_logging(url, log_count, first_update=11 * rows, batched=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--db", type=Path, help="database file (default: a temporary folder)")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                        help="a PostgreSQL database for the bench to create, fill and drop (default: DATABASE_URL;"
                             " without either, SQLite)")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--tz", nargs="+", default=["UTC", "Europe/Moscow"], help="TIMEZONE(s) to time stats in")
    parser.add_argument("--log", type=int, default=10_000, help="requests to log through the repositories")
    parser.add_argument("--existing", action="store_true",
                        help="time an already filled database (kept by an earlier --keep run) instead of filling")
    args = parser.parse_args()
    from loguru import logger

    logger.remove()  # keep the figures readable
    if args.database_url and make_url(args.database_url).get_backend_name() != "sqlite":
        if make_url(args.database_url).get_backend_name() != "postgresql":
            raise SystemExit("--database-url: PostgreSQL (postgresql+asyncpg://...) or SQLite")
        for rows in args.rows:
            run_postgres(rows, args.database_url, args.tz, args.log, args.existing, args.keep)
        return
    if args.database_url:  # a SQLite URL: its file
        args.db = Path(str(make_url(args.database_url).database))
    folder = Path(tempfile.mkdtemp(prefix="stats_scale_"))
    for rows in args.rows:
        path = args.db or folder / f"bench_{rows}.db"
        run(rows, path, args.tz, args.log, args.existing)
        if not args.keep and not args.existing:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
    if not args.keep:
        folder.rmdir()


if __name__ == "__main__":
    main()
