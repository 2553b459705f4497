"""Errors of the bot process itself (not of providers or users)."""

from __future__ import annotations


class StartupError(Exception):
    """A problem that stops the start: `python -m bot` prints it as one line and exits with 1."""
