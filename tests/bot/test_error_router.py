"""An update whose handler fails unexpectedly: one ERROR line with the traceback, and a reply with its reference."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from db.models import User
from db.rollup_tables import provider_rollups
from tests.bot.core_harness import CoreHarness

ADMIN = 1001  # the harness's ADMIN_IDS
USER = 2002
REF = re.compile(r"\(ref\. ([0-9a-f]{6})\)|\(код ([0-9a-f]{6})\)")


@pytest.fixture
def records() -> Iterator[list[dict[str, Any]]]:
    """Every loguru record at INFO and above while the test runs."""
    found: list[dict[str, Any]] = []
    sink = logger.add(lambda message: found.append(message.record), level="INFO")
    yield found
    logger.remove(sink)


def break_stats(h: CoreHarness) -> None:
    """/stats reads the provider rollups: without the table every /stats is a database error."""
    with sqlite3.connect(h.db_path) as conn:
        conn.execute(f"DROP TABLE {provider_rollups.name}")


def reference(text: str | None) -> str:
    match = REF.search(text or "")
    assert match, text
    return match.group(1) or match.group(2)


def errors_of(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r["level"].name == "ERROR"]


async def test_a_database_error_in_an_admin_command_is_logged_once_and_answered_with_its_reference(
        tmp_path: Path, records: list[dict[str, Any]]) -> None:
    async with CoreHarness.start(tmp_path) as h:
        break_stats(h)
        update_id = await h.say(ADMIN, "/stats")
        reply = h.tg.last_text(ADMIN)
        assert reply is not None and reply.startswith("😵 Something went wrong on our side")
        ref = reference(reply)
        [line] = errors_of(records)
        assert line["extra"] == {"update_id": update_id, "user_id": ADMIN, "ref": ref}
        assert ref in line["message"] and str(update_id) in line["message"]
        assert line["exception"] is not None and "OperationalError" in line["message"]


async def test_the_error_reply_is_in_the_users_language(tmp_path: Path, records: list[dict[str, Any]]) -> None:
    async with CoreHarness.start(tmp_path) as h:
        break_stats(h)
        await h.say(ADMIN, "/stats", language_code="ru")
        reply = h.tg.last_text(ADMIN)
        assert reply is not None and reply.startswith("😵 У нас что-то пошло не так")
        assert reference(reply) in errors_of(records)[0]["message"]


async def test_a_user_who_blocked_the_bot_costs_one_error_line_and_an_info_line_not_a_crash(
        tmp_path: Path, records: list[dict[str, Any]]) -> None:
    async with CoreHarness.start(tmp_path) as h:
        break_stats(h)
        h.tg.block(ADMIN)
        await h.say(ADMIN, "/stats")  # returns: the error is handled even though nobody could be told
        assert h.tg.texts(ADMIN) == []
        [line] = errors_of(records)
        ref = line["extra"]["ref"]
        assert any(r["level"].name == "INFO" and f"ref {ref}" in r["message"] and "not sent" in r["message"]
                   for r in records)


async def test_other_commands_still_work_after_a_failure(tmp_path: Path, records: list[dict[str, Any]]) -> None:
    async with CoreHarness.start(tmp_path) as h:
        break_stats(h)
        await h.say(ADMIN, "/stats")
        await h.say(ADMIN, "/help")
        assert "What I can do" in (h.tg.last_text(ADMIN) or "")
        assert len(errors_of(records)) == 1


async def test_an_error_before_the_user_is_known_is_answered_in_the_telegram_users_language(
        tmp_path: Path, records: list[dict[str, Any]]) -> None:
    async with CoreHarness.start(tmp_path) as h:
        with sqlite3.connect(h.db_path) as conn:  # the user middleware's upsert fails: there is no `t` yet
            conn.execute(f"DROP TABLE {User.__tablename__}")
        await h.say(USER, "hello", language_code="ru")
        reply = h.tg.last_text(USER)
        assert reply is not None and reply.startswith("😵 У нас что-то пошло не так")
        [line] = errors_of(records)
        assert line["extra"]["user_id"] == USER and reference(reply) == line["extra"]["ref"]
