"""The one list of the process's secrets (the bot token, every provider key), and what keeps them out of
the log and the database: `scrub()` for a text about to be stored, `RedactingSink` for every log line.

`python -m bot` fills the list at start-up with `remember()`; until then nothing is masked.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import TextIO

from providers.redact import MIN_SECRET_LENGTH, redact

_SECRETS: set[str] = set()
_KEY_SUFFIXES = ("_API_KEY", "_API_TOKEN", "_KEY", "_TOKEN")


def remember(secrets: Iterable[str | None]) -> None:
    """Add secrets to the list; a later addition (keys named by the providers file) still applies."""
    _SECRETS.update(s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH)


def forget_all() -> None:
    """For tests: the list is process-wide."""
    _SECRETS.clear()


def provider_keys(env: Mapping[str, str]) -> list[str]:
    """Values of the environment that look like keys (OPENAI_API_KEY, HF_TOKEN, FAL_KEY, ...)."""
    return [v for k, v in env.items() if len(v) >= MIN_SECRET_LENGTH and k.endswith(_KEY_SUFFIXES)]


def scrub(text: str) -> str:
    return redact(text, _SECRETS)


class RedactingSink:
    """A loguru sink: loguru hands it the whole formatted line (message, exception and traceback), which
    is written with every secret masked. A patcher on `record["message"]` would miss the exception."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def __call__(self, line: str) -> None:
        stream = self.stream or sys.stderr  # looked up per line: tests swap sys.stderr
        stream.write(scrub(line))
        stream.flush()
