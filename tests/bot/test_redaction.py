"""The log sink masks the bot token and provider keys in the whole line: the message, the exception and
its traceback, for loguru calls and for `logging` records of aiogram/aiohttp alike."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from loguru import logger

from bot.__main__ import _InterceptHandler
from bot.redaction import RedactingSink, forget_all, provider_keys, remember, scrub

TOKEN = "123456789:AAHfakeTokenForTheRedactionTest_x"
KEY = "sk-provider-key-for-redaction"
FORMAT = "{level} | {message}"


@pytest.fixture
def out() -> Iterator[io.StringIO]:
    remember([TOKEN, KEY])
    stream = io.StringIO()
    sink = logger.add(RedactingSink(stream), level="DEBUG", format=FORMAT, backtrace=False, diagnose=False)
    try:
        yield stream
    finally:
        logger.remove(sink)
        forget_all()


def download(url: str) -> None:
    raise OSError(f"404, message='Not Found', url='{url}'")


def test_an_exception_and_its_traceback_reach_the_log_without_the_token(out: io.StringIO) -> None:
    url = f"http://127.0.0.1:1/file/bot{TOKEN}/photos/file_1.jpg"
    try:
        download(url)
    except OSError as exc:
        logger.opt(exception=exc).error("photo download failed: {}", exc)
    text = out.getvalue()
    assert "Traceback" in text and "photos/file_1.jpg" in text and "***" in text
    assert TOKEN not in text and TOKEN.split(":")[1] not in text


def test_a_logging_record_with_exc_info_goes_through_the_same_mask(out: io.StringIO) -> None:
    std = logging.getLogger("tests.redaction.aiohttp")
    std.addHandler(_InterceptHandler())
    std.propagate = False
    try:
        try:
            raise RuntimeError(f"Authorization: Bearer {KEY}")
        except RuntimeError:
            std.exception("request to %s failed", f"https://api.example/?key={KEY}")
    finally:
        std.handlers.clear()
    text = out.getvalue()
    assert "request to https://api.example/?key=***" in text and "RuntimeError: Authorization: Bearer ***" in text
    assert KEY not in text


def test_secrets_are_taken_from_key_like_variables_and_scrub_masks_them() -> None:
    env = {"OPENAI_API_KEY": KEY, "HF_TOKEN": "hf_abcdefghij", "FAL_KEY": "short", "PATH": "/usr/bin:/bin"}
    assert sorted(provider_keys(env)) == sorted([KEY, "hf_abcdefghij"])
    remember(provider_keys(env))
    try:
        assert scrub(f"upstream said {KEY} and hf_abcdefghij") == "upstream said *** and ***"
    finally:
        forget_all()
