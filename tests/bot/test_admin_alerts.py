"""Provider alerts: every admin told once per incident, in their language, with no key in the text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from bot.services.alerts import redact_secrets
from providers.errors import ErrorKind
from providers.health import Alert
from providers.manager import AlertHook
from tests.bot import admin_support as support
from tests.bot.admin_support import ADMIN, ADMIN_RU, add_user, admin_harness
from tests.bot.core_harness import CoreHarness

h = support.h  # the app as `python -m bot` builds it (assigned, not imported: not taken for an unused name)

SOON = datetime.now(UTC) + timedelta(hours=1)


def _notifier(h: CoreHarness) -> AlertHook:
    """The notifier build_app gave the provider manager: what a real incident goes through."""
    notify = h.live.manager.on_alert
    assert notify is not None
    return notify


def _alert(provider: str = "openai", kind: ErrorKind = ErrorKind.QUOTA_EXHAUSTED, until: datetime = SOON,
           message: str = "You exceeded your current quota") -> Alert:
    return Alert(provider, kind, message, until)


async def test_one_message_per_admin_per_incident(h: CoreHarness) -> None:
    notify = _notifier(h)
    await notify(_alert())
    await notify(_alert())  # the same incident delivered again
    assert len(h.tg.texts(ADMIN)) == 1 and len(h.tg.texts(ADMIN_RU)) == 1
    assert "openai" in h.tg.texts(ADMIN)[0] and "out of quota" in h.tg.texts(ADMIN)[0]

    await notify(_alert(kind=ErrorKind.AUTH))  # another kind is another incident
    await notify(_alert(provider="anthropic"))  # and so is another provider
    assert len(h.tg.texts(ADMIN)) == 3
    assert "rejects its API key" in h.tg.texts(ADMIN)[1]

    await notify(_alert(until=SOON + timedelta(hours=2)))  # the manager opened a new incident: later deadline
    assert len(h.tg.texts(ADMIN)) == 4


async def test_the_deadline_is_shown_in_the_bot_timezone(tmp_path: Path) -> None:
    until = datetime(2031, 5, 4, 22, 15, tzinfo=UTC)
    async with admin_harness(tmp_path, timezone="Asia/Tokyo") as h:
        await _notifier(h)(_alert(until=until))
        assert "2031-05-05 07:15" in h.tg.texts(ADMIN)[0]


async def test_no_key_and_no_markup_reaches_the_chat(h: CoreHarness) -> None:
    message = "Incorrect API key provided: sk-proj-AbCdEf0123456789xyz. <b>& more</b>"
    await _notifier(h)(_alert(kind=ErrorKind.AUTH, message=message))
    text = h.tg.texts(ADMIN)[0]
    assert "sk-proj" not in text and "AbCdEf0123456789" not in text
    assert "<b>& more</b>" in text  # shown literally: escaped, not parsed


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=32,
               max_size=64), st.sampled_from(["sk-", "sk-proj-", "hf_", "r8_", "gsk_", "xai-", ""]))
def test_redaction_removes_key_shaped_strings(secret: str, prefix: str) -> None:
    out = redact_secrets(f"bad key {prefix}{secret} given")
    assert secret not in out and out.startswith("bad key ") and out.endswith(" given")


async def test_a_blocked_admin_does_not_stop_the_others(h: CoreHarness) -> None:
    h.tg.block(ADMIN)
    await _notifier(h)(_alert())
    assert h.tg.texts(ADMIN_RU) and not h.tg.texts(ADMIN)


async def test_each_admin_in_their_own_language(h: CoreHarness) -> None:
    await add_user(h.live.sessions, ADMIN, language="en")
    await add_user(h.live.sessions, ADMIN_RU, language="ru")
    await _notifier(h)(_alert())
    assert "закончилась квота" in h.tg.texts(ADMIN_RU)[0]
    assert "out of quota" in h.tg.texts(ADMIN)[0]
