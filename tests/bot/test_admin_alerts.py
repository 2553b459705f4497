"""Provider alerts: every admin told once per incident, in their language, with no key in the text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiogram import Bot
from hypothesis import given
from hypothesis import strategies as st

from bot.services.alerts import AlertNotifier, redact_secrets
from providers.errors import ErrorKind
from providers.health import Alert
from tests.bot import admin_support as support
from tests.bot.admin_support import (
    ADMIN,
    ADMIN_RU,
    Sessions,
    add_user,
    make_settings,
)
from tests.fakes.telegram import FakeTelegram

# pytest fixtures shared by the admin tests (assigned, not imported, so they are not taken for unused names)
admin_db_template, sessions, fake, bot = support.admin_db_template, support.sessions, support.fake, support.bot

SOON = datetime.now(UTC) + timedelta(hours=1)


def _alert(provider: str = "openai", kind: ErrorKind = ErrorKind.QUOTA_EXHAUSTED, until: datetime = SOON,
           message: str = "You exceeded your current quota") -> Alert:
    return Alert(provider, kind, message, until)


async def test_one_message_per_admin_per_incident(fake: FakeTelegram, bot: Bot) -> None:
    notify = AlertNotifier(bot, make_settings())
    await notify(_alert())
    await notify(_alert())  # the same incident delivered again
    assert len(fake.texts(ADMIN)) == 1 and len(fake.texts(ADMIN_RU)) == 1
    assert "openai" in fake.texts(ADMIN)[0] and "out of quota" in fake.texts(ADMIN)[0]

    await notify(_alert(kind=ErrorKind.AUTH))  # another kind is another incident
    await notify(_alert(provider="anthropic"))  # and so is another provider
    assert len(fake.texts(ADMIN)) == 3
    assert "rejects its API key" in fake.texts(ADMIN)[1]

    await notify(_alert(until=SOON + timedelta(hours=2)))  # the manager opened a new incident: later deadline
    assert len(fake.texts(ADMIN)) == 4


async def test_the_deadline_is_shown_in_the_bot_timezone(fake: FakeTelegram, bot: Bot) -> None:
    until = datetime(2031, 5, 4, 22, 15, tzinfo=UTC)
    await AlertNotifier(bot, make_settings(timezone="Asia/Tokyo"))(_alert(until=until))
    assert "2031-05-05 07:15" in fake.texts(ADMIN)[0]


async def test_no_key_and_no_markup_reaches_the_chat(fake: FakeTelegram, bot: Bot) -> None:
    message = "Incorrect API key provided: sk-proj-AbCdEf0123456789xyz. <b>& more</b>"
    await AlertNotifier(bot, make_settings())(_alert(kind=ErrorKind.AUTH, message=message))
    text = fake.texts(ADMIN)[0]
    assert "sk-proj" not in text and "AbCdEf0123456789" not in text
    assert "<b>& more</b>" in text  # shown literally: escaped, not parsed


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=32,
               max_size=64), st.sampled_from(["sk-", "sk-proj-", "hf_", "r8_", "gsk_", "xai-", ""]))
def test_redaction_removes_key_shaped_strings(secret: str, prefix: str) -> None:
    out = redact_secrets(f"bad key {prefix}{secret} given")
    assert secret not in out and out.startswith("bad key ") and out.endswith(" given")


async def test_a_blocked_admin_does_not_stop_the_others(fake: FakeTelegram, bot: Bot) -> None:
    fake.block(ADMIN)
    await AlertNotifier(bot, make_settings())(_alert())
    assert fake.texts(ADMIN_RU) and not fake.texts(ADMIN)


async def test_each_admin_in_their_own_language(fake: FakeTelegram, bot: Bot, sessions: Sessions) -> None:
    await add_user(sessions, ADMIN, language="en")
    await add_user(sessions, ADMIN_RU, language="ru")
    await AlertNotifier(bot, make_settings(), sessions=sessions)(_alert())
    assert "закончилась квота" in fake.texts(ADMIN_RU)[0]
    assert "out of quota" in fake.texts(ADMIN)[0]
