"""Settings parsing: ADMIN_IDS forms, DIGEST_TIME, TIMEZONE, `.env` reaching the providers loader."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from bot.settings import Settings, provider_env


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env from the working directory
    for name in ("BOT_TOKEN", "ADMIN_IDS", "TIMEZONE", "DIGEST_TIME", "FREE_CREDITS", "LOG_LEVEL",
                 "TELEGRAM_API_URL", "WEBHOOK_URL", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(("raw", "want"), [
    ("1,2,3", {1, 2, 3}), (" 10 , 20 ", {10, 20}), ("[5, 6]", {5, 6}), ("7", {7}), ("", set()),
    ("[]", set()), ("123456789", {123456789}),
])
def test_admin_ids_forms(monkeypatch: pytest.MonkeyPatch, raw: str, want: set[int]) -> None:
    monkeypatch.setenv("ADMIN_IDS", raw)
    settings = Settings()
    assert settings.admin_ids == want
    assert all(settings.is_admin(i) for i in want)


@pytest.mark.parametrize(("raw", "bad"), [
    ("1,abc", "'abc'"), ('[1, "x"]', "'x'"), ("[1,", "'[1,'"), ("[123456789.9, true]", "123456789.9"),
    ("[true]", "True"), ("1_2_3", "'1_2_3'"), ("123.0", "'123.0'"), ("[1e3]", "1000.0"), ("1 2;3", "'1 2;3'"),
    ("+5", "'+5'"), ("-5", "'-5'"), ("0", "'0'"), ("[0]", "0"), ("1,,2", "''"), ("\u0661\u0662", "'\u0661\u0662'"),
    ('{"a": 1}', "'{\"a\": 1}'"), ('["7"]', "'7'"), ("[[1]]", "[1]"), ("0x10", "'0x10'"), ("1e3", "'1e3'"),
])
def test_anything_but_plain_integers_is_a_settings_error_naming_the_bad_value(
        monkeypatch: pytest.MonkeyPatch, raw: str, bad: str) -> None:
    monkeypatch.setenv("ADMIN_IDS", raw)
    with pytest.raises(ValidationError, match="ADMIN_IDS") as caught:
        Settings()
    assert bad in str(caught.value)


def test_defaults() -> None:
    settings = Settings()
    assert settings.database_url == "sqlite+aiosqlite:///./data/bot.db"
    assert settings.digest_time == time(9, 0)
    assert settings.timezone == "UTC" and settings.free_credits == 20
    assert settings.daily_credit_limit == 0 and settings.monthly_credit_limit == 0
    assert settings.telegram_api_url is None and settings.webhook_url is None
    assert settings.bot_token.get_secret_value() == ""


def test_bad_timezone_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIMEZONE", "Mars/Olympus_Mons")
    with pytest.raises(ValidationError, match="TIMEZONE"):
        Settings()
    monkeypatch.setenv("TIMEZONE", "Europe/Moscow")
    assert Settings().tz.key == "Europe/Moscow"


@pytest.mark.parametrize(("raw", "ok"), [("07:30", True), ("23:59", True), ("24:00", False), ("7h", False)])
def test_digest_time(monkeypatch: pytest.MonkeyPatch, raw: str, ok: bool) -> None:
    monkeypatch.setenv("DIGEST_TIME", raw)
    if ok:
        assert Settings().digest_time.strftime("%H:%M") == raw
    else:
        with pytest.raises(ValidationError, match="DIGEST_TIME"):
            Settings()


def test_dotenv_is_read_and_the_token_stays_secret(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BOT_TOKEN=123:abc\nADMIN_IDS=42\nOPENAI_API_KEY=sk-from-file\n")
    settings = Settings()
    assert settings.bot_token.get_secret_value() == "123:abc"
    assert "123:abc" not in repr(settings) and "123:abc" not in str(settings.model_dump())
    assert settings.admin_ids == {42}


def test_provider_keys_from_dotenv_reach_the_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("OPENAI_API_KEY=sk-from-file\nANTHROPIC_API_KEY=a-file\n")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "a-env")
    env = provider_env(tmp_path / ".env")
    assert env["OPENAI_API_KEY"] == "sk-from-file"
    assert env["ANTHROPIC_API_KEY"] == "a-env"  # the real environment wins, as for Settings
    assert provider_env(tmp_path / "missing.env").get("OPENAI_API_KEY") is None


def test_blank_optional_urls_mean_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_API_URL", "")
    monkeypatch.setenv("WEBHOOK_URL", "  ")
    settings = Settings()
    assert settings.telegram_api_url is None and settings.webhook_url is None
