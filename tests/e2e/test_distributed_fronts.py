"""Several fronts in webhook mode behind one URL, on PostgreSQL + Redis with a worker: any front takes any
update, and an update that reaches two of them (Telegram retrying to another instance) is served once:
one request, one charge, one answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests.e2e.conftest import E2E, _dump
from tests.e2e.distributed import PgDatabase, WebhookFront, WorkerProcess, free_port, services
from tests.e2e.flows import eventually
from tests.e2e.harness import FREE_CREDITS, PRIMARY_REPLY, Fakes

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="package")]
REDIS_DB = 11
SECRET = "one-secret-for-every-front"
PATH = "/telegram"


@dataclass
class Fronts:
    fakes: Fakes
    db: PgDatabase
    fronts: list[WebhookFront]
    ports: list[int]
    worker: WorkerProcess


@E2E(scope="module", loop_scope="package")
async def fronts(tmp_path_factory: pytest.TempPathFactory, mpl_dir: Path) -> AsyncIterator[Fronts]:
    tmp = tmp_path_factory.mktemp("fronts")
    async with services(tmp, REDIS_DB, MPLCONFIGDIR=str(mpl_dir), WEBHOOK_URL=f"https://bot.example.org{PATH}",
                        WEBHOOK_SECRET=SECRET, WEBHOOK_HOST="127.0.0.1") as (fakes, db, env):
        ports = [free_port(), free_port()]
        procs = [WebhookFront({**env, "WEBHOOK_PORT": str(port)}, tmp / f"front{n}.log", fakes.telegram)
                 for n, port in enumerate(ports)]
        worker = WorkerProcess(env, tmp / "worker.log", fakes.telegram)
        try:
            await procs[0].start()  # the first migrates; the second finds the database ready
            await procs[1].start()
            await worker.start()
            yield Fronts(fakes, db, procs, ports, worker)
        finally:
            for process in (*procs, worker):
                await process.stop()


async def post(port: int, update: dict[str, object]) -> int:
    async with aiohttp.ClientSession() as session, session.post(
            f"http://127.0.0.1:{port}{PATH}", json=update,
            headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as response:
        return response.status


async def test_an_update_posted_to_two_fronts_is_served_once(fronts: Fronts) -> None:
    tg, user = fronts.fakes.telegram, 3201
    try:
        update_id = tg.push_message(user, "Hello from behind the load balancer")
        update = tg._update_log[update_id]  # what Telegram would post; both fronts get the very same update
        statuses = await asyncio.gather(*(post(port, update) for port in fronts.ports))
        assert statuses == [200, 200]
        await tg.wait_for(lambda: PRIMARY_REPLY in " ".join(tg.texts(user)), timeout=30)
        [request_row] = await eventually(lambda: _served(fronts.db, user), what="the request served")
        await asyncio.sleep(1.0)  # time enough for a second answer, had the duplicate been served
        assert len(await fronts.db.requests(user)) == 1
        assert [t for t in tg.texts(user) if PRIMARY_REPLY in t] == [PRIMARY_REPLY]
        assert await fronts.db.credits(user) == FREE_CREDITS - 1
        assert request_row["update_id"] == update_id

        second = tg.push_message(user, "And a second question")  # any front takes any update
        assert await post(fronts.ports[1], tg._update_log[second]) == 200
        await eventually(lambda: _count_served(fronts.db, user, 2), within_s=30, what="the second served")
    except BaseException:
        for front in fronts.fronts:
            _dump(front, fronts.fakes)
        print(f"----- worker log -----\n{fronts.worker.log()[-20000:]}")
        raise


async def _served(db: PgDatabase, user: int) -> list[dict[str, object]]:
    return [r for r in await db.requests(user) if r["status"] == "served"]


async def _count_served(db: PgDatabase, user: int, n: int) -> bool:
    return len(await _served(db, user)) == n
