"""No secret is written anywhere: after a served chat, a fallback, a provider failure whose error body
echoes the key, and a photo download that fails (aiohttp's error quotes the file URL, token included),
neither the bot's log nor any text in its database holds the bot token or a provider key."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tests.e2e.conftest import Database, StartBot
from tests.e2e.flows import ask, eventually, settle
from tests.e2e.harness import PRIMARY_KEY, SECONDARY_KEY, SECONDARY_REPLY, Fakes
from tests.fakes.openai import PNG_1X1, openrouter_error
from tests.fakes.telegram_state import StoredFile
from tests.support.botenv import REPLICATE_KEY

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="package")]
USER = 2301


class GoneFile(StoredFile):
    """A file getFile still describes but the file route no longer has: the download is a 404."""

    def api(self) -> dict[str, Any]:
        return {**super().api(), "file_path": "photos/gone.jpg"}


def echoing(key: str, status: int) -> dict[str, object]:
    """An error body that quotes the request back, as some gateways and proxies do."""
    return openrouter_error(status, f"bad request: Authorization: Bearer {key}; url https://x.example/?key={key}")


def served(db: Database) -> list[object]:
    return [r for r in db.requests(USER) if r["status"] == "served"]


def stored_texts(db: Database) -> list[str]:
    """Every text value of every row of every table."""
    tables = [r["name"] for r in db.rows("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return [value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            for table in tables for row in db.rows(f'SELECT * FROM "{table}"')
            for value in tuple(row) if isinstance(value, (str, bytes))]


async def test_neither_the_log_nor_the_database_holds_a_secret(fakes: Fakes, start_bot: StartBot,
                                                               db: Database) -> None:
    tg = fakes.telegram
    bot = await start_bot()
    await ask(tg, USER, "/start")
    await ask(tg, USER, "A first question")  # served by the first provider
    await eventually(lambda: len(served(db)) == 1, what="the first request served")

    fakes.primary.fail_next(429, echoing(PRIMARY_KEY, 429))  # falls back: the key sits in the attempt
    tg.push_message(USER, "A second question")
    await tg.wait_for(lambda: SECONDARY_REPLY in tg.texts(USER), timeout=20)
    await eventually(lambda: len(served(db)) == 2, what="the second request served")

    # The first provider cools down after its 429; the second's 400 never falls back: the request fails.
    fakes.secondary.fail_next(400, echoing(SECONDARY_KEY, 400))
    tg.push_message(USER, "A third question")
    await eventually(lambda: [r for r in db.requests(USER) if r["status"] == "failed"], what="a failed request")

    before = len(tg.files)
    tg.push_photo(USER, PNG_1X1, caption="/edit inpaint a red hat")
    [photo] = list(tg.files.values())[before:]
    tg.files[photo.file_id] = GoneFile(**dataclasses.asdict(photo))
    await settle(tg)
    await eventually(lambda: "/file/bot***/photos/gone.jpg" in bot.log(), what="the failed download logged")
    assert await bot.stop() == 0

    secrets = {"bot token": tg.token, "token secret": tg.token.split(":", 1)[1], "primary key": PRIMARY_KEY,
               "secondary key": SECONDARY_KEY, "replicate key": REPLICATE_KEY}
    log_lines = bot.log().splitlines()
    texts = stored_texts(db)
    assert any(PRIMARY_KEY not in t and "***" in t for t in texts), "the echoed error was stored, masked"
    for name, secret in secrets.items():
        assert not [line for line in log_lines if secret in line], f"the {name} is in the log"
        assert not [text for text in texts if secret in text], f"the {name} is in the database"
