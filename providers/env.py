"""The environment provider keys are read from: the process environment over a `.env` file.

One implementation for the bot and `python -m providers`, so a key the bot finds in `.env` is never
reported missing by `python -m providers check`.
"""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values


def provider_env(env_file: str | Path | None = ".env") -> dict[str, str]:
    """The `.env` file (when it exists) under the real environment: the real environment wins.

    pydantic-settings reads `.env` only into its own fields; provider keys (OPENAI_API_KEY, ...) would be
    lost without this. The real environment wins, as it does for the bot's Settings.
    """
    merged: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ)
    return merged
